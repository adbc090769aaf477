"""Cold replays of bundles with real pins, next to the same environment made by hand with uv (issue 13).

Split out of benchmarks/replay.py (which times warm replays of a stdlib-only bundle). Two
bundles are captured at setup, each in a directory holding only its script:

  * sklearn: `LogisticRegression().fit` on one class (ValueError), run in a venv of
    scikit-learn 1.9.1 + its dependencies (7 pins: scipy's wheel is ~35 MB, numpy's ~16 MB),
    built once with uv and kept under /tmp/reprex-bench-cold/;
  * ray: `ray.ObjectRef(b"not-an-id")` (ValueError) run in this interpreter's env (Ray 2.60:
    20 pins, ray's wheel ~80 MB). No cluster is started: it measures the environment, not Ray's start.

Then, per repetition and bundle (pairs back to back, which goes first alternating; the order
of the pairs rotating; each pair judged on the median of its per-repetition ratios):

  * cold local: `reprex replay B --backend local --json` with an empty REPREX_CACHE_DIR (no
    env, no wheels, no cached manifest check of reprex's own), the host's pip and uv caches warm
    (a warm-up replay filled them) vs by hand in a fresh dir: `uv venv --python THIS_PYTHON` +
    `uv pip install --no-deps -r requirements.txt` + `python SCRIPT` in the bundle's files;
    target <= 1.1x;
  * cold docker: the env image removed (since cdb58b0 an env image is one committed container
    step, with no layer cache to reuse; REPREX_DOCKER_NO_CACHE=1 is still set, for older commits'
    classic builds), reprex's host wheel cache warm, vs `docker build --no-cache` of
    a hand-written Dockerfile (same base image, uv's binary and the same wheels in the context,
    `uv venv` of the image's Debian python3 + `uv pip install --no-index --no-deps`, as reprex's
    image is a venv of the base's python3) + `docker run --rm --network none`; target <= 1.1x;
  * cold docker, empty cache (no target): the same replay with an empty REPREX_CACHE_DIR, so the
    host-side wheel fetch (from the pip/uv cache) is paid too, against the same hand build.

    .venv/bin/python benchmarks/replay_cold.py [--reps 3] [--image reprex-base:py3.11]
                                               [--bundles sklearn,ray] [--cases cold_docker,...]
                                               [--json out.json]

--cases picks among cold_local, cold_docker and cold_docker_empty (default: all three), each with
its by-hand peer: on a loaded machine more repetitions of the one case a change touches beat
fewer of all.

Needs a Docker engine and the base image (`bash scripts/ensure_docker.sh && bash scripts/base_image.sh`)
and the package index (setup installs scikit-learn and, where this env has none, uv into /tmp).
Images and containers it makes are removed at the end.
"""

from __future__ import annotations

import os
import sys

# benchmarks/bisect.py would stand in for the standard library's bisect (random and tempfile import
# it): the script's own directory goes last on the path, not first
BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != BENCH] + [BENCH]

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from timing import median  # noqa: E402  (benchmarks/, the script's own dir)

TARGET = 1.1
CASES = ("cold_local", "cold_docker", "cold_docker_empty")  # each timed beside its by-hand peer
KEEP = Path("/tmp/reprex-bench-cold")  # the sklearn venv and a uv for the by-hand peers, reused across runs
SKLEARN_PINS = ["scikit-learn==1.9.1"]

SCRIPTS = {
    "sklearn": ("fit.py", """\
import numpy as np
from sklearn.linear_model import LogisticRegression

X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
y = np.array([0, 0, 0])  # one class only: fit() refuses
LogisticRegression().fit(X, y)
"""),
    "ray": ("job.py", """\
import ray

# the job names an object by a hand-written id before it starts a cluster
ref = ray.ObjectRef(b"not-an-id")
"""),
}

HAND_DOCKERFILE = """\
FROM {base}
COPY uv /usr/local/bin/uv
COPY wheels/ /wheels/
RUN uv venv --quiet --python /usr/bin/python3 /venv \\
 && UV_LINK_MODE=copy uv pip install --quiet --python /venv/bin/python --no-index --no-deps --no-cache /wheels/*.whl
COPY work/ /w/
WORKDIR /w
CMD {cmd}
"""


def sh(argv: list[str], *, env: dict | None = None, cwd: Path | None = None, expect=(0,)) -> tuple[float, str]:
    """(wall seconds, stdout) of a command; an unexpected exit status raises with its last lines."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if expect is not None and proc.returncode not in expect:
        tail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(map(str, argv))[:160]} exited {proc.returncode}: {' | '.join(tail)}")
    return elapsed, proc.stdout.decode("utf-8", "replace")


def find_uv(env: dict) -> str:
    """uv for the by-hand peers: the project env's (the `uv` package), PATH's, else one pip-installed under KEEP."""
    try:
        import uv  # noqa: PLC0415
        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    if shutil.which("uv"):
        return shutil.which("uv")
    venv = KEEP / "uv-venv"
    if not (venv / "bin" / "uv").exists():
        sh([sys.executable, "-m", "venv", str(venv)], env=env)
        sh([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "uv"], env=env)
    return str(venv / "bin" / "uv")


def sklearn_python(uv: str, env: dict) -> str:
    venv = KEEP / "sklearn-venv"
    if not (venv / ".ready").exists():
        shutil.rmtree(venv, ignore_errors=True)
        sh([uv, "venv", "-q", "--python", sys.executable, str(venv)], env=env)
        sh([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *SKLEARN_PINS], env=env)
        (venv / ".ready").write_text("")
    return str(venv / "bin" / "python")


@dataclass
class Case:
    name: str
    bundle: Path
    pins: int
    wheels_mb: float
    largest: str
    exit_code: int
    work: Path
    hand_ctx: Path
    entry: list[str]
    images: set[str] = field(default_factory=set)


def make_case(name: str, python: str, tmp: Path, base: str, uv: str, env: dict) -> Case:
    from reprex.bundle import Bundle
    from reprex.replay.base import entry_args, requirements, work_files

    script, text = SCRIPTS[name]
    where = tmp / f"capture-{name}"
    where.mkdir()
    (where / script).write_text(text)
    sh([sys.executable, "-m", "reprex", "capture", "-q", "--", python, script], env=env, cwd=where, expect=None)
    path = where / (Path(script).stem + ".reprex.zip")
    bundle = Bundle.read(path)
    exit_code = int(bundle.manifest["expect"].get("exit_code") or 1)
    work = tmp / f"work-{name}"
    for rel, data in work_files(bundle).items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(data)
    (tmp / f"requirements-{name}.txt").write_text(bundle.text("requirements.txt"))
    ctx = tmp / f"hand-{name}"
    (ctx / "wheels").mkdir(parents=True)
    sh([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", "-d", str(ctx / "wheels"),
        "-r", str(tmp / f"requirements-{name}.txt")], env=env)
    wheels = sorted((ctx / "wheels").glob("*.whl"), key=lambda p: p.stat().st_size)
    shutil.copy2(uv, ctx / "uv")
    shutil.copytree(work, ctx / "work")
    entry = entry_args(bundle)
    (ctx / "Dockerfile").write_text(HAND_DOCKERFILE.format(base=base, cmd=json.dumps(["/venv/bin/python", *entry])))
    return Case(name, path, len(requirements(bundle)), sum(p.stat().st_size for p in wheels) / 1e6,
                f"{wheels[-1].name} ({wheels[-1].stat().st_size / 1e6:.0f} MB)", exit_code, work, ctx, entry)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--image", default=os.environ.get("REPREX_TEST_IMAGE", "reprex-base:py3.11"))
    ap.add_argument("--bundles", default="sklearn,ray")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    names = [n for n in args.bundles.split(",") if n]
    if not names or any(n not in SCRIPTS for n in names):
        ap.error(f"--bundles: a comma-separated subset of {','.join(SCRIPTS)}")
    cases_run = [k for k in args.cases.split(",") if k]
    if not cases_run or any(k not in CASES for k in cases_run):
        ap.error(f"--cases: a comma-separated subset of {','.join(CASES)}")
    if "cold_docker_empty" in cases_run and "cold_docker" not in cases_run:
        ap.error("--cases: cold_docker_empty is set against cold_docker's by-hand peer: add cold_docker")

    KEEP.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="reprex-bench-cold-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPREX_")}
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # reprex's own bytecode cached, as an installed wheel's would be
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    # the reprex of this checkout (a copy of another commit measures that commit), not the env's install
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still remove the images (finally below)
    uv = find_uv(env)
    sh(["docker", "image", "inspect", args.image])  # fail early: run scripts/base_image.sh
    _, which = sh([sys.executable, "-c", "from reprex import installer; print(installer.uv() or 'pip')"], env=env,
                  expect=None)
    installer = which.strip() or "unknown"
    load0 = os.getloadavg()
    pythons = {"sklearn": lambda: sklearn_python(uv, env), "ray": lambda: sys.executable}
    try:
        cases = {n: make_case(n, pythons[n](), tmp, args.image, uv, env) for n in names}
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for c in cases.values():
        print(f"bundle {c.name}: {c.pins} pins, {c.wheels_mb:.0f} MB of wheels, largest {c.largest}", file=sys.stderr)
    print(f"reprex installs with: {installer}; by-hand peers: {uv}; image {args.image}; {args.reps} reps",
          file=sys.stderr)

    cli = [sys.executable, "-m", "reprex", "replay"]
    counter = iter(range(1_000_000))

    def reprex_replay(c: Case, backend: str, cache: Path, extra_env: dict | None = None) -> float:
        argv = [*cli, str(c.bundle), "--backend", backend, "--json"] + (["--image", args.image]
                                                                      if backend == "docker" else [])
        took, out = sh(argv, env={**env, "REPREX_CACHE_DIR": str(cache), **(extra_env or {})})
        result = json.loads(out)
        assert result["verdict"] == "reproduced", (c.name, backend, result["verdict"], result.get("reason"))
        if result.get("image"):
            c.images.add(result["image"])
        return took

    def cold_local(c: Case) -> float:
        cache = tmp / f"cache-local-{next(counter)}"
        try:
            return reprex_replay(c, "local", cache)
        finally:
            shutil.rmtree(cache, ignore_errors=True)

    def hand_local(c: Case) -> float:
        venv = tmp / f"hand-venv-{next(counter)}"
        try:
            took = sh([uv, "venv", "-q", "--python", sys.executable, str(venv)], env=env)[0]
            took += sh([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "--no-deps", "-r",
                        str(tmp / f"requirements-{c.name}.txt")], env=env)[0]
            took += sh([str(venv / "bin" / "python"), *c.entry], env=env, cwd=c.work, expect=(c.exit_code,))[0]
            return took
        finally:
            shutil.rmtree(venv, ignore_errors=True)

    def drop_images(c: Case) -> None:
        for image in c.images:
            sh(["docker", "rmi", "-f", image], expect=None)

    def cold_docker(c: Case) -> float:
        drop_images(c)
        return reprex_replay(c, "docker", tmp / f"cache-docker-{c.name}", {"REPREX_DOCKER_NO_CACHE": "1"})

    def cold_docker_empty(c: Case) -> float:
        drop_images(c)
        cache = tmp / f"cache-docker-empty-{next(counter)}"
        try:
            return reprex_replay(c, "docker", cache, {"REPREX_DOCKER_NO_CACHE": "1"})
        finally:
            shutil.rmtree(cache, ignore_errors=True)

    def hand_docker(c: Case) -> float:
        tag = f"reprex-bench-hand-{c.name}:1"
        sh(["docker", "rmi", "-f", tag], expect=None)
        took = sh(["docker", "build", "--no-cache", "-q", "-t", tag, str(c.hand_ctx)], env=env)[0]
        took += sh(["docker", "run", "--rm", "--network", "none", tag], expect=(c.exit_code,))[0]
        return took

    kinds = {"cold_local": cold_local, "hand_local": hand_local, "cold_docker": cold_docker,
             "hand_docker": hand_docker, "cold_docker_empty": cold_docker_empty}
    partner = {"cold_local": "hand_local", "cold_docker": "hand_docker"}
    samples = {f"{n}/{k}": [] for n in names for k in kinds}
    try:
        for c in cases.values():  # warm-up, untimed: fills the pip/uv caches and reprex's docker wheel cache
            if "cold_local" in cases_run:
                reprex_replay(c, "local", tmp / f"cache-warmup-{c.name}")
                hand_local(c)
            if {"cold_docker", "cold_docker_empty"} & set(cases_run):
                cold_docker(c)
        units = [(n, k) for n in names for k in cases_run]
        for rep in range(args.reps):
            order = units[rep % len(units):] + units[:rep % len(units)]
            for n, k in order:
                pair = [k, partner[k]] if k in partner else [k]
                for kind in (pair if rep % 2 == 0 else pair[::-1]):
                    samples[f"{n}/{kind}"].append(kinds[kind](cases[n]))
            print(f"  rep {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    finally:
        for c in cases.values():
            drop_images(c)
            sh(["docker", "rmi", "-f", f"reprex-bench-hand-{c.name}:1"], expect=None)
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = os.getloadavg()

    m = {k: median(v) for k, v in samples.items() if v}
    ratios = {f"{n}/{k}": median([a / b for a, b in zip(samples[f"{n}/{k}"], samples[f"{n}/{v}"])])
              for n in names for k, v in partner.items() if k in cases_run}
    empty_ratio = {n: median([a / b for a, b in zip(samples[f"{n}/cold_docker_empty"], samples[f"{n}/hand_docker"])])
                   for n in names if "cold_docker_empty" in cases_run}
    lines = ["| bundle | case | reprex (s) | by hand | by hand (s) | ratio (paired) | target | |",
             "|---|---|---:|---|---:|---:|---|---|"]
    failed = False
    for n in names:
        c = cases[n]
        label = f"{n} ({c.pins} pins, {c.wheels_mb:.0f} MB)"
        for k, what, hand in (("cold_local", "cold local replay, CLI (empty REPREX_CACHE_DIR)",
                               "`uv venv` + `uv pip install --no-deps -r` + `python`"),
                              ("cold_docker", "cold docker replay, CLI (image removed, wheel cache warm)",
                               "`docker build --no-cache` (uv, hand-written) + `docker run`")):
            if k not in cases_run:
                continue
            r = ratios[f"{n}/{k}"]
            ok = r <= TARGET
            failed |= not ok
            lines.append(f"| {label} | {what} | {m[f'{n}/{k}']:.2f} | {hand} | {m[f'{n}/{partner[k]}']:.2f} | "
                         f"{r:.2f}x | <= {TARGET}x | {'PASS' if ok else 'FAIL'} |")
        if n in empty_ratio:
            lines.append(f"| {label} | cold docker replay, CLI (empty REPREX_CACHE_DIR: wheels fetched too) | "
                         f"{m[f'{n}/cold_docker_empty']:.2f} | the same hand build | {m[f'{n}/hand_docker']:.2f} | "
                         f"{empty_ratio[n]:.2f}x | - | - |")
    print()
    print(f"reprex cold replay benchmark: reprex installs with {installer}; by-hand peers with {uv}; base image "
          f"{args.image}; medians of {args.reps} reps; load average {load0[0]:.1f} at start, {load1[0]:.1f} at end "
          f"({os.cpu_count()} CPUs)")
    print()
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, "medians": m, "paired_ratios": ratios,
                                         "empty_cache_ratios": empty_ratio, "installer": installer,
                                         "image": args.image, "load": [load0, load1],
                                         "bundles": {n: {"pins": c.pins, "wheels_mb": round(c.wheels_mb, 1),
                                                         "largest": c.largest} for n, c in cases.items()}},
                                        indent=2))
        print(f"\nwrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
