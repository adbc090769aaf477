"""`reprex bisect --date` over a two-package co-release: the culprit named only with evidence.

The shape of pydantic#5993 (pydantic 2 stops coercing int to str; pydantic 2.0 came out the same
day as the pydantic-core release it pins exactly), with made-up packages built here and served
from a loopback index with the upload times set: `rpx-toplib` 2.0 validates through
`rpx-corelib` 2.0 and raises on an int; toplib 1.x coerces it and needs no corelib at all.

The naive answer blamed the core: its releases were probed over the bundle's pins, where the
resolver (toplib 2.x pins corelib exactly) moved toplib back to 1.x for every older core, so
every old core passed and the first bad core "was" 2.0. The core's release can only be judged
together with toplib 2.0, and toplib's own releases over the good pins with core 2.0 show the
break. Real captures, real uv resolutions as of the upload times, real replays (local backend).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bisect_cases import make_venv
from bisect_index import bisect_index, build_wheel  # noqa: F401 (the fixture)

TOP, CORE = "rpx-toplib", "rpx-corelib"
CORE_SRC = {
    "1": "__version__ = {v!r}\n\ndef as_text(value):\n    return str(value)\n",
    "2": ("__version__ = {v!r}\n\nclass ValidationError(ValueError):\n    pass\n\n"
          "def validate_str(value):\n    if not isinstance(value, str):\n"
          "        raise ValidationError('Input should be a valid string [type=string_type]')\n    return value\n"),
}
TOP_SRC = {
    "1": "class Model:\n    def __init__(self, value):\n        self.value = str(value)  # coerced\n",
    "2": ("import rpx_corelib\n\nclass Model:\n    def __init__(self, value):\n"
          "        self.value = rpx_corelib.validate_str(value)\n"),
}
# (version, upload time): 2.0 of both the same day, minutes apart, as pydantic 2.0 / pydantic-core 2.0.1;
# toplib 1.2 is a later maintenance release of the old line, uploaded after the break
CORE_RELEASES = [("1.0", "2024-01-10T09:00:00Z"), ("1.1", "2024-02-05T09:00:00Z"), ("2.0", "2024-03-01T10:00:00Z"),
                 ("2.1", "2024-04-02T10:00:00Z")]
TOP_RELEASES = [("1.0", "2024-01-10T09:30:00Z"), ("1.1", "2024-02-12T09:30:00Z"), ("2.0", "2024-03-01T10:20:00Z"),
                ("2.1", "2024-04-02T10:20:00Z"), ("1.2", "2024-05-20T08:00:00Z")]
SCRIPT = ("import rpx_corelib\nfrom rpx_toplib import Model\n"
          "print('core', rpx_corelib.__version__, 'value', Model(value=42).value.upper())\n")
BAD_PINS = {TOP: "2.1", CORE: "2.1"}


def _serve(index, wheels: Path) -> None:
    for version, when in CORE_RELEASES:
        mod = {"rpx_corelib/__init__.py": CORE_SRC[version[0]].format(v=version)}
        index.add_built(build_wheel(wheels, CORE, version, mod), upload_time=when)
    for version, when in TOP_RELEASES:
        requires = [f"{CORE}=={version}.*"] if version.startswith("2") else []
        mod = {"rpx_toplib/__init__.py": TOP_SRC[version[0]]}
        index.add_built(build_wheel(wheels, TOP, version, mod, requires), upload_time=when)


def _capture(index, work: Path, script: str, name: str) -> Path:
    python = make_venv(index, BAD_PINS, work / f"venv-{name}")
    app = work / f"app-{name}"
    app.mkdir(exist_ok=True)
    (app / "app.py").write_text(script)
    out = work / f"{name}.reprex.zip"
    proc = subprocess.run([sys.executable, "-m", "reprex", "capture", "-q", "-o", str(out), "--", str(python),
                           "app.py"], cwd=app, env=index.environ(), capture_output=True, text=True, timeout=300)
    assert out.exists(), proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def corelease(bisect_index, tmp_path_factory):  # noqa: F811
    work = tmp_path_factory.mktemp("bisect-corelease")
    _serve(bisect_index, work / "wheels")
    env = bisect_index.environ()
    env["REPREX_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    return {"work": work, "env": env, "index": bisect_index,
            "bundle": _capture(bisect_index, work, SCRIPT, "coerce")}


def _bisect(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reprex", "bisect", *args], capture_output=True, text=True,
                          env=env, timeout=900, stdin=subprocess.DEVNULL)


def test_the_naive_answer_is_really_wrong_here(corelease, monkeypatch):
    """What the old hand-over probed: the core's previous release over the bundle's pins. uv moves
    toplib back to 1.x for it (2.x pins the core exactly), and that passes: a core release that
    is 'good' only because the package that shows the bug went away."""
    import os

    from reprex.bisect.probe import resolve_release, target_of
    from reprex.bundle import Bundle

    for key in [k for k in os.environ if k.startswith(("PIP_", "UV_")) and k != "UV_CACHE_DIR"]:
        monkeypatch.delenv(key)
    for key, value in corelease["env"].items():
        if key.startswith(("PIP_", "UV_")):
            monkeypatch.setenv(key, value)
    bundle = Bundle.read(corelease["bundle"])
    lines = resolve_release(bundle, CORE, "1.1", target_of(bundle))
    assert f"{CORE}==1.1" in lines and f"{TOP}==1.2" in lines, lines  # as pydantic 1.10.27 came with old cores


def test_date_names_the_package_whose_release_breaks_it_not_its_co_release(corelease):
    proc = _bisect(str(corelease["bundle"]), "--date", "--start", "2024-04-10", "--backend", "local", "--json",
                   "--no-write", env=corelease["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert (data["dates"]["last_good"], data["dates"]["first_bad"]) == ("2024-02-29", "2024-03-01")
    assert data["culprits"] == [CORE, TOP]  # toplib 2.0 can't run on core 1.1: both changes are needed
    findings = {f["package"]: f for f in data["findings"]}
    # the core: no release named, and why (its old pin with toplib 2.0 is not good: a different failure)
    assert findings[CORE]["first_bad"] is None and findings[CORE]["last_good"] is None
    assert f"with {TOP} 2.0 judged skip" in findings[CORE]["reason"], findings[CORE]
    assert f"changes only together with {TOP}" in findings[CORE]["reason"]
    # toplib: its releases over the good pins with core 2.0, so 1.1 and 2.0 judged with the same core;
    # 1.2 (uploaded after the first bad day) is not a release the break came between
    assert (findings[TOP]["first_bad"], findings[TOP]["last_good"]) == ("2.0", "1.1"), findings[TOP]
    assert f"first bad: {TOP} 2.0 (last good 1.1)" in data["summary"]
    assert f"first bad: {CORE}" not in data["summary"]
    # the evidence: toplib 1.1 judged good and 2.0 bad with the same core (2.0), the rest as the good day
    judged = {(s["changed"].get(TOP, [None, "2.1"])[1], s["changed"].get(CORE, [None, "2.1"])[1]): s["verdict"]
              for s in data["steps"] if s["verdict"] in ("good", "bad")}
    assert judged[("1.1", "2.0")] == "good" and judged[("2.0", "2.0")] == "bad", judged
    assert all(not s["label"].startswith(f"{CORE} ") for s in data["steps"]), [s["label"] for s in data["steps"]]


def test_without_start_the_search_begins_at_the_newest_upload_among_the_pins(corelease):
    """The bundle was captured today; its pins were all uploaded by 2024-04-02: the search starts
    there instead of spending probes on the two years after."""
    proc = _bisect(str(corelease["bundle"]), "--date", "--backend", "local", "--json", "--no-write",
                   env=corelease["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["dates"]["start"] == "2024-04-02"
    assert data["dates"]["first_bad"] == "2024-03-01"
    assert f"first bad: {TOP} 2.0 (last good 1.1)" in data["summary"]


def test_the_week_limit_is_said_with_the_start_to_try(corelease, tmp_path):
    """A failure every release has, and a package old enough that the oldest day within the limit
    still resolves: the limit ends the search, and the one line says where to start to look further
    back. (When the oldest days have no resolution at all, the line says only that.)"""
    index = corelease["index"]
    for version, when in (("0.9", "2019-06-03T10:00:00Z"), ("1.0", "2024-03-05T10:00:00Z")):
        index.add_built(build_wheel(tmp_path / "wheels", "rpx-oldlib", version,
                                    {"rpx_oldlib/__init__.py": f"VERSION = {version!r}\n"}), upload_time=when)
    python = make_venv(index, {"rpx-oldlib": "1.0"}, tmp_path / "venv")
    (tmp_path / "app.py").write_text("import rpx_oldlib\nrpx_oldlib.removed_long_ago()\n")
    bundle = tmp_path / "old.reprex.zip"
    subprocess.run([sys.executable, "-m", "reprex", "capture", "-q", "-o", str(bundle), "--", str(python), "app.py"],
                   cwd=tmp_path, env=index.environ(), capture_output=True, text=True, timeout=300)
    assert bundle.exists()
    proc = _bisect(str(bundle), "--date", "--backend", "local", "--no-write", env=corelease["env"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    said = proc.stdout + proc.stderr
    # no --start: from 2024-03-05 (rpx-oldlib 1.0's upload), 156 weeks back is 2021-03-09, where 0.9 resolves
    assert "no day back to 2021-03-09 (156 weeks, the limit)" in said, said
    assert "to search further back, try --start 2021-03-09" in said, said
    assert "Traceback" not in said
