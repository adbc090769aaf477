"""Do `pytest --reprex-capture` bundles replay the failure pytest saw, on real old test suites? (issue 18)

Each suite is an unmodified sdist from the package index whose own tests fail on this
machine's Python 3.11 with today's dependencies, for reasons users hit:

- networkx 2.5 (https://pypi.org/project/networkx/2.5/), nine of its test files, with numpy
  1.26 and scipy 1.17: `np.float` (removed in numpy 1.24,
  https://numpy.org/doc/stable/release/1.24.0-notes.html#expired-deprecations), `random.sample`
  of a set (removed in Python 3.11, https://docs.python.org/3/whatsnew/3.11.html#random; also
  inside an xunit `setup_class`: a setup error), `scipy.errstate` and `csr_matrix.A` (removed
  from SciPy, https://docs.scipy.org/doc/scipy/release/1.14.0-notes.html#expired-deprecations)
  and nose-style `setup(self)` methods that pytest 8 no longer calls
  (https://docs.pytest.org/en/stable/deprecations.html#support-for-tests-written-for-nose).
- pyflakes 2.1.1 (https://pypi.org/project/pyflakes/2.1.1/): unittest `TestCase` tests that
  compare Python's syntax error messages and columns, which changed in 3.10/3.11
  (https://docs.python.org/3/whatsnew/3.10.html#better-error-messages,
  https://github.com/PyCQA/pyflakes/issues/622).
- seaborn 0.10.1 (https://pypi.org/project/seaborn/0.10.1/), two test classes of
  test_relational.py, with pandas 2.2, numpy 1.26 and matplotlib 3.8: class fixtures that build
  `pd.Int64Index` (removed in pandas 2.0,
  https://pandas.pydata.org/docs/whatsnew/v2.0.0.html#removal-of-prior-version-deprecations-changes:
  fixture setup errors), `np.float`/`np.bool` (numpy 1.24, above) and ragged `np.array` input
  (now a ValueError, https://numpy.org/doc/stable/release/1.24.0-notes.html#expired-deprecations).
- patsy 0.5.1 (https://pypi.org/project/patsy/0.5.1/): `from collections import Mapping`
  (the aliases were removed in Python 3.10, https://docs.python.org/3/whatsnew/3.10.html#removed,
  https://github.com/pydata/patsy/issues/171): every test module is a collection error.

Per suite: `pip download --no-deps --no-binary :all:` the sdist (its tests ship inside), a uv
venv with the pinned dependencies, the old package installed as its developers would
(`uv pip install -e .`) and reprex from this tree (`uv pip install -e ROOT`). Then pytest runs
twice, without and with `--reprex-capture` (both `--continue-on-collection-errors`, junit xml,
timed: overhead = difference / failing tests), each bundle is replayed with the suite venv's
`reprex replay BUNDLE --json`, and each test that failed in the plain run is judged against
pytest's own junit record (type and message of its `<failure>`/`<error>`, collection errors
included; messages compared after reprex.signature.normalize_message and collapsing whitespace):

- genuine: a bundle, verdict `reproduced`, and both the bundle's expected failure and the
  replay's failure have junit's type and message;
- wrong failure: `reproduced`, but the failure is not the one pytest saw (a false `reproduced`);
- different / fixed / other: the verdict said so (other: flaky, env-incompatible, infra-error,
  a replay that gave no JSON);
- no bundle: the capture run wrote none for the test.

    .venv/bin/python benchmarks/plugin_suites.py [--suite NAME ...] [--backend local] [--backend docker]
                                                 [--work DIR] [--json out.json] [--details out.md]

Sdists, extracted sources and venvs are cached under --work (default /tmp/reprex-plugin-suites);
each run's bundles, junit files and replay outputs go to a fresh WORK/runs/<time>/.
Needs the package index (first run) and, for docker, an engine and the image (--image).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from plugin_judge import judge, junit_failures, junit_key  # noqa: E402  (beside this file)


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    sdist: str  # name==version
    deps: tuple[str, ...]
    args: tuple[str, ...]  # pytest's arguments, run in the extracted sdist
    why: str


SUITES = [
    Suite("networkx-2.5", "networkx==2.5", ("numpy==1.26.4", "scipy==1.17.1", "pytest==9.2.0"),
          ("networkx/tests/test_convert_numpy.py",
           "networkx/generators/tests/test_internet_as_graphs.py",
           "networkx/generators/tests/test_directed.py",
           "networkx/generators/tests/test_expanders.py",
           "networkx/algorithms/tests/test_triads.py",
           "networkx/algorithms/tests/test_structuralholes.py",
           "networkx/algorithms/bipartite/tests/test_matching.py",
           "networkx/algorithms/centrality/tests/test_betweenness_centrality.py",
           "networkx/linalg/tests/test_algebraic_connectivity.py"),
          "np.float (numpy 1.24), random.sample(set) (3.11, also in setup_class), scipy removals, "
          "nose-style setup() not called by pytest 8"),
    Suite("pyflakes-2.1.1", "pyflakes==2.1.1", ("pytest==9.2.0",), ("pyflakes",),
          "unittest TestCase asserts on SyntaxError messages/columns that changed in 3.10/3.11"),
    Suite("seaborn-0.10.1", "seaborn==0.10.1",
          ("numpy==1.26.4", "pandas==2.2.3", "matplotlib==3.8.4", "scipy==1.13.1", "pytest==9.2.0"),
          ("seaborn/tests/test_relational.py::TestRelationalPlotter",
           "seaborn/tests/test_relational.py::TestRelPlotter"),
          "pd.Int64Index in class fixtures (pandas 2.0: setup errors), np.float/np.bool, ragged arrays"),
    Suite("patsy-0.5.1", "patsy==0.5.1", ("numpy==1.26.4", "six==1.17.0", "pytest==9.2.0"), ("patsy",),
          "from collections import Mapping (removed in 3.10): collection errors"),
]
BY_NAME = {s.name: s for s in SUITES}
CLASSES = ("genuine", "wrong failure", "different", "fixed", "other", "no bundle")


def uv_bin() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def sh(argv: list, cwd: Path | None = None, env: dict | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def checked(argv: list, **kw) -> subprocess.CompletedProcess:
    proc = sh(argv, **kw)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"plugin_suites: {' '.join(map(str, argv[:4]))} ... failed: {tail[0]}")
    return proc


# -- setting a suite up (cached) -------------------------------------------------------------------

def sdist_path(suite: Suite, work: Path) -> Path:
    name, version = suite.sdist.split("==")
    folder = work / "sdists"
    folder.mkdir(parents=True, exist_ok=True)

    def found():
        return [p for p in folder.iterdir()
                if p.name.lower().startswith(f"{name.lower()}-{version}.") and p.name.endswith((".tar.gz", ".zip"))]

    if not found():
        checked([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                 suite.sdist, "-d", folder])
    return found()[0]


def source_dir(suite: Suite, work: Path) -> Path:
    """The sdist extracted once; the editable install points here, so it stays put."""
    base = work / suite.name
    src = base / "src"
    if (base / ".extracted").exists():
        return src
    archive = sdist_path(suite, work)
    shutil.rmtree(src, ignore_errors=True)
    tmp = base / "extract"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    (top,) = list(tmp.iterdir())
    top.rename(src)
    tmp.rmdir()
    (base / ".extracted").write_text(archive.name)
    return src


def venv_dir(suite: Suite, work: Path, src: Path) -> Path:
    venv = work / suite.name / "venv"
    # reprex is editable (every run captures with the tree as it is now); its own dependencies
    # can change with pyproject.toml, so the venv is remade when that file does
    pyproject = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    want = json.dumps({"deps": suite.deps, "reprex": str(ROOT), "pyproject": pyproject, "src": str(src), "seed": True})
    marker = venv / ".plugin-suites"
    if marker.exists() and marker.read_text() == want:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    uv = uv_bin()
    # --seed: pip in the venv, as the docker backend downloads wheels on the host with pip
    checked([uv, "venv", "-q", "--seed", "-p", sys.executable, venv])
    py = venv / "bin" / "python"
    checked([uv, "pip", "install", "-q", "-p", py, *suite.deps, "-e", src, "-e", ROOT])
    marker.write_text(want)
    return venv


def versions(venv: Path) -> dict:
    out = sh([uv_bin(), "pip", "freeze", "-p", venv / "bin" / "python"]).stdout
    return dict(line.split("==", 1) for line in out.splitlines() if "==" in line)


# -- bundles and replays --------------------------------------------------------------------------

def manifests(folder: Path) -> dict:
    """{junit key: (bundle path, manifest)} for the bundles the capture run wrote."""
    out = {}
    for path in sorted(folder.glob("*.reprex.zip")):
        try:
            with zipfile.ZipFile(path) as zf:
                manifest = json.loads(zf.read("reprex.json"))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            print(f"  unreadable bundle {path.name}: {exc}", file=sys.stderr)
            continue
        nodeid = (manifest.get("test") or {}).get("nodeid")
        if nodeid:
            out[junit_key(nodeid)] = (path, manifest)
    return out


def replay(venv: Path, bundle: Path, backend: str, image: str, env: dict, log: Path) -> dict:
    argv = [venv / "bin" / "reprex", "replay", bundle, "--json", "--backend", backend]
    if backend == "docker":
        argv += ["--image", image]
    started = time.monotonic()
    try:
        proc = sh(argv, env=env, timeout=900)
    except subprocess.TimeoutExpired:
        return {"verdict": "no-json", "reason": "replay timed out (900 s)", "wall_s": 900.0}
    log.write_text(f"$ {' '.join(map(str, argv))}\nrc={proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        data = {"verdict": "no-json", "reason": f"rc={proc.returncode}: {last[:200]}"}
    data["wall_s"] = round(time.monotonic() - started, 2)
    return data


# -- one suite --------------------------------------------------------------------------------

def run_pytest(venv: Path, src: Path, suite: Suite, junit: Path, env: dict, extra=()) -> tuple[float, int, str]:
    argv = [venv / "bin" / "python", "-m", "pytest", "-p", "no:cacheprovider", "-q",
            "--continue-on-collection-errors", "-o", "junit_family=xunit1", f"--junitxml={junit}",
            *extra, *suite.args]
    started = time.monotonic()
    proc = sh(argv, cwd=src, env=env, timeout=3600)
    elapsed = time.monotonic() - started
    junit.with_suffix(".log").write_text(proc.stdout + "\n--- stderr\n" + proc.stderr)
    return elapsed, proc.returncode, (proc.stdout.strip().splitlines() or [""])[-1]


def run_suite(suite: Suite, work: Path, run_dir: Path, backends: list[str], image: str) -> dict:
    print(f"== {suite.name}: {suite.why}", flush=True)
    src = source_dir(suite, work)
    venv = venv_dir(suite, work, src)
    out = run_dir / suite.name
    out.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "REPREX_"))}
    env.update(PYTHONDONTWRITEBYTECODE="1", REPREX_CACHE_DIR=str(work / "reprex-cache"))

    load_before = round(os.getloadavg()[0], 2)
    plain_s, plain_rc, plain_tail = run_pytest(venv, src, suite, out / "plain.xml", env)
    bundles = out / "bundles"
    cap_s, cap_rc, cap_tail = run_pytest(venv, src, suite, out / "capture.xml", env,
                                         ("--reprex-capture", bundles, "--reprex-capture-max", "1000"))
    print(f"  pytest: {plain_s:.1f} s ({plain_tail}); with capture: {cap_s:.1f} s ({cap_tail}); "
          f"load average {load_before} before", flush=True)
    failing = junit_failures(out / "plain.xml")
    captured_failing = junit_failures(out / "capture.xml")
    found = manifests(bundles) if bundles.exists() else {}
    nodeids = {junit_key(m.get("test", {}).get("nodeid", "")): m["test"]["nodeid"] for _, m in found.values()}

    rows = []
    for key, junit in sorted(failing.items()):
        classname, name = key
        nodeid = nodeids.get(key) or junit["nodeid"]
        path, manifest = found.get(key, (None, None))
        test = (manifest or {}).get("test") or {}
        row = {"test": nodeid, "junit": junit, "bundle": path.name if path else None,
               "mode": test.get("mode"), "standalone_reproduces": test.get("standalone_reproduces"),
               "pytest_reproduces": test.get("pytest_reproduces"), "replays": {}}
        if key not in captured_failing:
            row["note"] = "did not fail in the capture run"
        for backend in backends:
            result = None
            if path is not None:
                result = replay(venv, path, backend, image, env, out / f"{path.name}.{backend}.log")
            cls, reason = judge(junit, nodeid, manifest, result)
            row["replays"][backend] = {"class": cls, "reason": reason,
                                       "verdict": (result or {}).get("verdict"),
                                       "duration_s": (result or {}).get("wall_s")}
            print(f"  [{backend}] {cls:13} {nodeid}" + (f"  -- {reason[:200]}" if reason else ""), flush=True)
        rows.append(row)
    extra = sorted(set(found) - set(failing))
    n = len(failing)
    return {"suite": suite.name, "sdist": suite.sdist, "why": suite.why, "args": list(suite.args),
            "versions": versions(venv), "failing": n, "bundles": sum(1 for r in rows if r["bundle"]),
            "bundles_for_passing_tests": [" :: ".join(k) for k in extra],
            "plain_s": round(plain_s, 2), "capture_s": round(cap_s, 2), "load_before": load_before,
            "overhead_per_failing_s": round((cap_s - plain_s) / n, 3) if n else None,
            "exit_codes": [plain_rc, cap_rc], "backends": backends, "rows": rows, "run_dir": str(out)}


# -- report -------------------------------------------------------------------------------------

def counts(result: dict, backend: str) -> dict:
    c = {k: 0 for k in CLASSES}
    for row in result["rows"]:
        c[row["replays"][backend]["class"]] += 1
    return c


def modes(result: dict) -> str:
    pytest_mode = sum(1 for r in result["rows"] if r["mode"] == "pytest")
    standalone = sum(1 for r in result["rows"] if r["bundle"] and r["mode"] != "pytest")
    return f"{standalone}/{pytest_mode}"


def table(results: list[dict], backends: list[str]) -> str:
    head = (f"{'suite':16} {'backend':7} {'failing':>7} {'bundles':>7} {'genuine':>7} {'wrong':>5} "
            f"{'differ':>6} {'fixed':>5} {'other':>5} {'no bnd':>6} {'st/py':>6} {'ovh s/fail':>10}")
    lines = [head, "-" * len(head)]
    for backend in backends:
        total = {k: 0 for k in CLASSES}
        fail = bund = 0
        cap = plain = 0.0
        mine = [r for r in results if backend in r["backends"]]
        for r in mine:
            c = counts(r, backend)
            total = {k: total[k] + c[k] for k in CLASSES}
            fail += r["failing"]
            bund += r["bundles"]
            cap += r["capture_s"]
            plain += r["plain_s"]
            ovh = f"{r['overhead_per_failing_s']:.2f}" if r["overhead_per_failing_s"] is not None else "-"
            lines.append(f"{r['suite']:16} {backend:7} {r['failing']:>7} {r['bundles']:>7} {c['genuine']:>7} "
                         f"{c['wrong failure']:>5} {c['different']:>6} {c['fixed']:>5} {c['other']:>5} "
                         f"{c['no bundle']:>6} {modes(r):>6} {ovh:>10}")
        ovh = f"{(cap - plain) / fail:.2f}" if fail else "-"
        st = sum(int(modes(r).split("/")[0]) for r in mine)
        py = sum(int(modes(r).split("/")[1]) for r in mine)
        lines.append(f"{'total':16} {backend:7} {fail:>7} {bund:>7} {total['genuine']:>7} {total['wrong failure']:>5} "
                     f"{total['different']:>6} {total['fixed']:>5} {total['other']:>5} {total['no bundle']:>6} "
                     f"{f'{st}/{py}':>6} {ovh:>10}")
    return "\n".join(lines)


def details(results: list[dict], backends: list[str]) -> str:
    out = []
    for r in results:
        out.append(f"### {r['suite']} ({r['why']})\n")
        out.append(f"pytest {r['plain_s']} s, with capture {r['capture_s']} s; run dir {r['run_dir']}\n")
        for row in r["rows"]:
            j = row["junit"]
            per = "; ".join(f"{b}: **{row['replays'][b]['class']}**"
                            + (f" ({row['replays'][b]['reason'][:400]})" if row['replays'][b]['reason'] else "")
                            for b in r["backends"])
            out.append(f"- `{row['test']}` [{j['when']}: {j['type']}: {j['message'][:120]!r}] mode={row['mode']} "
                       f"standalone_reproduces={row['standalone_reproduces']} -- {per}"
                       + (f" ({row['note']})" if row.get("note") else ""))
        if r["bundles_for_passing_tests"]:
            out.append(f"- bundles for tests that did not fail in the plain run: {r['bundles_for_passing_tests']}")
        out.append("")
    return "\n".join(out)


def _head() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", help=f"only these ({', '.join(BY_NAME)})")
    parser.add_argument("--backend", action="append", choices=["local", "docker"], help="default: local")
    parser.add_argument("--docker-suite", action="append", default=[], metavar="NAME",
                        help="also replay this suite's bundles on docker (docker rows only for these)")
    parser.add_argument("--image", default=os.environ.get("REPREX_TEST_IMAGE", "python:3.11-slim"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/reprex-plugin-suites"))
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--details", type=Path, help="also write one markdown line per failing test")
    args = parser.parse_args(argv)
    unknown = [n for n in args.suite or [] if n not in BY_NAME]
    if unknown:
        parser.error(f"no such suite {unknown[0]!r}; choose from {', '.join(BY_NAME)}")
    suites = [s for s in SUITES if not args.suite or s.name in args.suite]
    backends = args.backend or ["local"]
    work = args.work.resolve()
    run_dir = work / "runs" / time.strftime("%Y%m%d-%H%M%S")
    unknown = [n for n in args.docker_suite if n not in BY_NAME]
    if unknown:
        parser.error(f"no such suite {unknown[0]!r}; choose from {', '.join(BY_NAME)}")
    started = _head()
    results = [run_suite(s, work, run_dir, backends + (["docker"] if s.name in args.docker_suite
                                                          and "docker" not in backends else []), args.image)
               for s in suites]
    backends = backends + (["docker"] if args.docker_suite and "docker" not in backends else [])
    # reprex is installed editable: a commit that lands during the run is used from then on
    head = started if _head() == started else f"{started}..{_head()}"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nreprex at {head}; load average {load} at the end; st/py = standalone / pytest-mode bundles; "
          "ovh = (capture run - plain run) / failing")
    print(table(results, backends))
    if args.json:
        args.json.write_text(json.dumps({"reprex": head, "backends": backends, "loadavg_end": os.getloadavg(), "suites": results}, indent=1))
    if args.details:
        args.details.write_text(details(results, backends))
    return 0


if __name__ == "__main__":
    sys.exit(main())
