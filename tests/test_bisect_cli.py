"""`reprex bisect` as a user runs it: one-line errors, --json, the `bisect` section in the bundle
and in `render`, and one real mode-1 bisection on the local backend.

The real case: itsdangerous 2.1.0 removed TimedJSONWebSignatureSerializer
(https://itsdangerous.palletsprojects.com/en/stable/changes/#version-2-1-0: "Remove previously
deprecated code ... JWS functionality: Use a dedicated library such as Authlib instead";
reported as https://github.com/pallets/itsdangerous/issues/257). Its wheels are pure Python and
tiny, served from a loopback index (tests/bisect_index.py) so pypi.org's state never matters.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bisect_index import FileCache, IndexServer, cache_dir

PY = sys.executable
RELEASES = ["2.0.0", "2.0.1", "2.1.0", "2.1.1", "2.1.2"]
REPRO = "from itsdangerous import TimedJSONWebSignatureSerializer\nprint(TimedJSONWebSignatureSerializer)\n"


def _reprex(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "reprex", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _capture(env: dict, work: Path, script: str) -> Path:
    """A real `reprex capture` of `script` in a venv with itsdangerous 2.1.2 from the loopback index."""
    from reprex import installer

    uv = installer.uv()
    assert uv, "the tests need uv (a dependency of reprex)"
    venv = work / "venv"
    if not venv.exists():
        subprocess.run([uv, "venv", "--quiet", "--python", PY, str(venv)], check=True, env=env)
        subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                        "itsdangerous==2.1.2"], check=True, env=env)
    (work / "repro.py").write_text(script)
    bundle = work / "b.reprex.zip"
    proc = _reprex("capture", "-q", "-o", str(bundle), "--", str(venv / "bin" / "python"), "repro.py", env=env,
                   cwd=work)
    assert bundle.exists(), proc.stderr
    return bundle


@pytest.fixture(scope="module")
def bisect_index():
    """This module's own loopback index: the releases listed are exactly RELEASES, whatever other
    modules add to theirs."""
    index = IndexServer(FileCache(cache_dir())).start()
    yield index
    index.stop()


@pytest.fixture(scope="module")
def case(bisect_index, tmp_path_factory):
    """A real bundle: itsdangerous 2.1.2 installed from the loopback index, the repro captured."""
    bisect_index.add("itsdangerous", RELEASES)
    env = bisect_index.environ()
    env["REPREX_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))  # fresh envs: the probes are real installs
    work = tmp_path_factory.mktemp("bisect-case")
    return {"bundle": _capture(env, work, REPRO), "env": env, "index": bisect_index, "work": work}


def test_mode1_local_finds_the_release_and_writes_the_section(case, tmp_path):
    out = tmp_path / "bisected.reprex.zip"
    proc = _reprex("bisect", str(case["bundle"]), "--package", "itsdangerous", "--backend", "local", "--json",
                   "-o", str(out), env=case["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    finding = data["findings"][0]
    assert (finding["first_bad"], finding["last_good"]) == ("2.1.0", "2.0.1")
    assert data["summary"].startswith("first bad: itsdangerous 2.1.0 (last good 2.0.1)")
    # 5 releases, bad end known: stepping back 1, 2 from 2.1.2 then one split at most
    assert data["replays"] <= 5, data["steps"]
    assert all(s["verdict"] in ("good", "bad", "skip") for s in data["steps"])
    assert data["steps"][0]["label"] == "the bundle's own pins"
    # the section is in the written bundle, and render shows it
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("reprex.json"))
        readme = zf.read("README.md").decode()
    assert manifest["bisect"]["findings"][0]["first_bad"] == "2.1.0"
    assert "first bad: itsdangerous 2.1.0" in readme
    shown = _reprex("render", str(out), "--venue", "text", env=case["env"])
    assert "first bad: itsdangerous 2.1.0" in shown.stdout, shown.stderr
    # the original is left alone with -o
    with zipfile.ZipFile(case["bundle"]) as zf:
        assert "bisect" not in json.loads(zf.read("reprex.json"))


def test_probes_are_memoized_and_good_given(case, tmp_path):
    """With --good the search starts bounded: the bundle itself, the good end, then splits."""
    proc = _reprex("bisect", str(case["bundle"]), "--package", "itsdangerous", "--good", "2.0.0",
                   "--backend", "local", "--json", "--no-write", env=case["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["findings"][0]["first_bad"] == "2.1.0"
    labels = [s["label"] for s in data["steps"]]
    assert len(labels) == len(set(labels)), labels  # no probe replayed twice
    assert data["written"] is None


def test_bad_input_is_one_line(case, tmp_path):
    b = str(case["bundle"])
    checks = [
        (("bisect", b), "choose one mode"),
        (("bisect", b, "--package", "itsdangerous", "--date"), "choose one mode, not --package and --date"),
        (("bisect", b, "--bad", "2.1.0"), "choose one mode"),
        (("bisect", b, "--package", "itsdangerous", "--good", "9.9"), "must be older"),
        (("bisect", b, "--package", "itsdangerous", "--good", "not a version"), "is not a version"),
        (("bisect", b, "--package", "no-such-pkg"), "not pinned in the bundle"),
        (("bisect", b, "--package", "itsdangerous", "--bad", "2.1.3"), "not on the index"),
        (("bisect", b, "--good-lock", str(tmp_path / "missing.txt")), "missing.txt"),
        (("bisect", str(tmp_path / "nope.reprex.zip"), "--package", "x"), "nope.reprex.zip"),
    ]
    for args, said in checks:
        proc = _reprex(*args, "--backend", "local", env=case["env"])
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert said in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "replaying" not in proc.stderr, (args, proc.stderr)  # bad input costs no replay
        lines = [l for l in proc.stderr.splitlines() if l.startswith(("reprex: error", "Error"))]
        assert len(lines) == 1, proc.stderr
    proc = _reprex("bisect", b, "--package", "itsdangerous", "--bad", "2.1.3", "--json", "--backend", "local",
                   env=case["env"])
    assert json.loads(proc.stdout)["exit"] == 2


def test_a_bundle_that_passes_here_exits_1(case, tmp_path):
    """--bad at a release that works: the bundle itself still fails, so the search says the bad end
    judged good; nothing is blamed, exit 1."""
    proc = _reprex("bisect", str(case["bundle"]), "--package", "itsdangerous", "--bad", "2.0.1",
                   "--backend", "local", "--json", "--no-write", env=case["env"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert not data["found"] and data["findings"][0]["first_bad"] is None
    assert "2.0.1" in data["summary"] and "good" in data["summary"]


def test_section_is_escaped_in_the_issue_body(case, tmp_path):
    """The `bisect` section is a bundle's text like any other: render escapes it wherever it lands."""
    from reprex.bisect import BisectResult, Finding
    from reprex.bisect.oracle import Probe
    from reprex.bisect.section import with_section
    from reprex.bundle import Bundle
    from reprex.render import render

    evil = "<img src=x onerror=alert(1)> @maintainer [x](javascript:alert(1))"
    result = BisectResult(mode="package", findings=[Finding(package=evil, first_bad="1.0", last_good="0.9",
                                                            changelog="https://example.org/changes")],
                          probes=[Probe(label=evil, verdict="bad", replay="reproduced", reason="```\n</details>",
                                        runs=1)])
    new = with_section(Bundle.read(case["bundle"]), result)
    body = render(new, venue="gh")
    outside, fence = [], None  # fenced blocks are code to GitHub: the text outside them is what must be inert
    for line in body.splitlines():
        ticks = re.match(r"^(`{3,})", line)
        if fence is None and ticks:
            fence = ticks.group(1)
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is None:
            outside.append(line)
    text = "\n".join(outside)
    assert "<img" not in text and "@maintainer" not in text and " [x](javascript:" not in text
    assert text.count("</details>") == text.count("<details>")
    assert "reprex bisect: every probe" in text
    assert "first bad:" in body and "example.org/changes" in body
    assert Bundle.from_entries(new.entries()).manifest["bisect"]["findings"][0]["first_bad"] == "1.0"


def test_flaky_repeats_and_summary():
    from reprex.bisect import BisectResult, Finding
    from reprex.bisect.oracle import Probe, repeats_for

    assert repeats_for(1.0) == 1
    assert repeats_for(0.5) == 5  # 0.5**5 = 3% of bad probes would look good
    assert repeats_for(0.9) == 2 and repeats_for(0.01) == 20  # capped
    result = BisectResult(mode="package", runs_per_probe=5, reproduction_rate=0.5,
                          findings=[Finding("pandas", "2.0.0", "1.5.3",
                                            skipped=[("1.5.0", "no cp311 wheel for x86_64"),
                                                     ("1.5.1", "no cp311 wheel for x86_64")])],
                          probes=[Probe("p", "bad", "reproduced", runs=5)] * 5)
    assert result.summary() == ("first bad: pandas 2.0.0 (last good 1.5.3); 5 probes, 2 skipped (no cp311 wheel "
                                "for x86_64: 1.5.0, 1.5.1); flaky: 5 runs per probe (reproduced 50% of the "
                                "original's runs)")
    assert result.exit_code == 0 and BisectResult(mode="date").exit_code == 1


def test_flaky_bundle_probes_repeated(case, tmp_path):
    """A failure that shows every other run (a counter file the local backend's runs share): the
    original's 4 runs reproduce 2, so each probe runs up to 5 times (0.5**5: a bad release looks good
    3% of the time), a bad one only until it reproduces; the summary says so; the answer stays right."""
    counter = tmp_path / "runs"
    script = (f"from pathlib import Path\nc = Path({str(counter)!r})\n"
              "n = int(c.read_text()) + 1 if c.exists() else 1\nc.write_text(str(n))\n"
              "if n % 2:\n    from itsdangerous import TimedJSONWebSignatureSerializer\n")
    work = tmp_path / "flaky"
    work.mkdir()
    (work / "venv").symlink_to(case["work"] / "venv")
    bundle = _capture(case["env"], work, script)
    proc = _reprex("bisect", str(bundle), "--package", "itsdangerous", "--good", "2.0.0", "--runs", "4",
                   "--backend", "local", "--json", "--no-write", env=case["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert (data["reproduction_rate"], data["runs_per_probe"]) == (0.5, 5)
    assert data["findings"][0]["first_bad"] == "2.1.0"
    assert "flaky: 5 runs per probe (reproduced 50% of the original's runs)" in data["summary"]
    # the original ran 4 times; a good probe all 5, a bad one stops at its first reproduction
    assert data["steps"][0]["runs"] == 4
    for step in data["steps"][1:]:
        if step["verdict"] == "good":
            assert (step["runs"], step["reproduced_runs"]) == (5, 0), step
        else:  # every other run fails: the first or the second reproduces
            assert step["runs"] in (1, 2) and step["reproduced_runs"] == 1, step
