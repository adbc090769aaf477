"""`reprex bisect --good-lock` and `--date` end to end: a real capture, real uv resolutions as of
real upload dates, real replays on the local backend, from a loopback index of PyPI's files.

The case: a Flask-era program using click, itsdangerous and werkzeug together fails once werkzeug
2.1.0 removed `werkzeug.security.safe_str_cmp` (https://github.com/maxcountryman/flask-seasurf/issues/109;
changelog https://werkzeug.palletsprojects.com/en/2.1.x/changes/#version-2-1-0: "Remove previously
deprecated code ... safe_str_cmp", pallets/werkzeug#2359). Click 8.1.0 came out the same day
(2022-03-28, both uploads on PyPI within 20 minutes), so the day's diff has two suspects and the pin
diff must tell them apart: click 8.1 removed things too, but nothing this program uses.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from bisect_cases import Case, capture_case
from bisect_index import bisect_index  # noqa: F401 (the fixture)

CASE = Case(
    name="flask-era-safe-str-cmp",
    package="werkzeug",
    releases=("2.0.2", "2.0.3", "2.1.0", "2.1.1", "2.1.2"),
    first_bad="2.1.0", last_good="2.0.3",
    bad_pins={"werkzeug": "2.1.2", "click": "8.1.3", "itsdangerous": "2.1.2"},
    deps={"click": ("8.0.3", "8.0.4", "8.1.0", "8.1.1", "8.1.2", "8.1.3"),
          "itsdangerous": ("2.0.1", "2.1.0", "2.1.1", "2.1.2")},
    script=("import click\n"
            "from itsdangerous import URLSafeSerializer\n"
            "from werkzeug.security import safe_str_cmp\n"
            "token = URLSafeSerializer('secret-key').dumps({'user': 1})\n"
            "print(click.style('token ok:', bold=True), safe_str_cmp(token, token))\n"),
    issue="https://github.com/maxcountryman/flask-seasurf/issues/109",
    changelog="https://werkzeug.palletsprojects.com/en/2.1.x/changes/#version-2-1-0",
)
GOOD_LOCK = "werkzeug==2.0.3\nclick==8.0.4\nitsdangerous==2.0.1\n"  # what a Flask 2.0 app had pinned


def _bisect(*args, env, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reprex", "bisect", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def case(bisect_index, tmp_path_factory):  # noqa: F811
    work = tmp_path_factory.mktemp("bisect-modes")
    bundle = capture_case(bisect_index, CASE, work)
    env = bisect_index.environ()
    env["REPREX_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))  # fresh envs: every probe a real install
    return {"bundle": bundle, "env": env, "work": work, "index": bisect_index}


def test_the_bundle_pins_what_the_program_imports(case):
    import zipfile

    with zipfile.ZipFile(case["bundle"]) as zf:
        pins = zf.read("requirements.txt").decode()
    for name, version in CASE.bad_pins.items():
        assert f"{name}=={version}".lower() in pins.lower(), pins


def test_good_lock_finds_the_one_changed_pin_then_its_release(case):
    lock = case["work"] / "requirements-good.txt"
    lock.write_text(GOOD_LOCK)
    proc = _bisect(str(case["bundle"]), "--good-lock", str(lock), "--backend", "local", "--json", "--no-write",
                   env=case["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["mode"] == "lock" and data["culprits"] == ["werkzeug"]
    assert [(f["package"], f["first_bad"], f["last_good"]) for f in data["findings"]] == [("werkzeug", "2.1.0",
                                                                                           "2.0.3")]
    assert "first bad: werkzeug 2.1.0 (last good 2.0.3)" in data["summary"]
    verdicts = [s["verdict"] for s in data["steps"]]
    assert "good" in verdicts and "bad" in verdicts and "skip" not in verdicts, data["steps"]
    # the bundle itself, the 2 baselines, ddmin over 3 names (4: {click} {itsdangerous, werkzeug},
    # then each of those two), then werkzeug 2.0.3 in the bundle's environment (a new one: click
    # 8.1.3 there) and the 2 releases between it and 2.1.2
    assert data["replays"] <= 1 + 2 + 4 + 3, [s["label"] for s in data["steps"]]


def test_a_good_lock_that_still_fails_is_said_in_one_line(case):
    lock = case["work"] / "requirements-not-good.txt"
    lock.write_text(GOOD_LOCK.replace("werkzeug==2.0.3", "werkzeug==2.1.0"))
    proc = _bisect(str(case["bundle"]), "--good-lock", str(lock), "--backend", "local", env=case["env"])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "the good pins judged bad, not good" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_date_finds_the_day_then_the_pin_then_the_release(case):
    """In parallel (--jobs 2): days resolved and probes replayed two at a time, same answer."""
    proc = _bisect(str(case["bundle"]), "--date", "--start", "2022-05-15", "--backend", "local", "--json",
                   "--no-write", "--jobs", "2", env=case["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["mode"] == "date"
    # werkzeug 2.1.0 and click 8.1.0 were both uploaded on 2022-03-28: the day's diff has both
    assert (data["dates"]["last_good"], data["dates"]["first_bad"]) == ("2022-03-27", "2022-03-28")
    assert data["culprits"] == ["werkzeug"]
    assert [(f["package"], f["first_bad"], f["last_good"]) for f in data["findings"]] == [("werkzeug", "2.1.0",
                                                                                           "2.0.3")]
    assert "broke between 2022-03-27 and 2022-03-28" in data["summary"]
    # steps of 1, 2, 4 weeks back, then the days between (2 a round), each a distinct environment
    # judged once, then the 2-name diff and werkzeug's two releases in the bundle's environment
    assert data["replays"] <= 16, [s["label"] for s in data["steps"]]
    labels = [s["label"] for s in data["steps"]]
    assert len(labels) == len(set(labels)), labels


def test_resolve_as_of_uses_the_index_upload_times(case, monkeypatch):
    from reprex.bisect.dates import Unresolvable, resolve_as_of

    for key in [k for k in list(__import__("os").environ) if k.startswith(("PIP_", "UV_")) and k != "UV_CACHE_DIR"]:
        monkeypatch.delenv(key)
    for key, value in case["env"].items():
        if key.startswith(("PIP_", "UV_")):
            monkeypatch.setenv(key, value)
    utc = dt.timezone.utc
    reqs = ["werkzeug", "click"]
    before = resolve_as_of(reqs, dt.datetime(2022, 3, 28, 17, 37, tzinfo=utc), python="3.11")
    between = resolve_as_of(reqs, dt.datetime(2022, 3, 28, 17, 50, tzinfo=utc), python="3.11")
    after = resolve_as_of(reqs, dt.datetime(2022, 3, 28, 23, 59, 59, tzinfo=utc), python="3.11",
                          platform="x86_64-unknown-linux-gnu")
    assert before == {"click": "8.0.4", "werkzeug": "2.0.3"}
    assert between == {"click": "8.1.0", "werkzeug": "2.0.3"}  # click's upload was 17:37:48, werkzeug's 17:55:57
    assert after == {"click": "8.1.0", "werkzeug": "2.1.0"}
    with pytest.raises(Unresolvable, match="no resolution as of 2021-01-01: ") as caught:
        resolve_as_of(reqs, dt.datetime(2021, 1, 1, tzinfo=utc), python="3.11")
    assert "\n" not in caught.value.message


@pytest.mark.docker
def test_good_lock_on_the_docker_backend(case, base_image):
    """The same pin-set probes as environment images: same culprit, same release (~80 s)."""
    lock = case["work"] / "requirements-good.txt"
    lock.write_text(GOOD_LOCK)
    proc = _bisect(str(case["bundle"]), "--good-lock", str(lock), "--backend", "docker", "--image", base_image,
                   "--json", "--no-write", env=case["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["backend"] == "docker" and data["culprits"] == ["werkzeug"]
    assert [(f["package"], f["first_bad"], f["last_good"]) for f in data["findings"]] == [("werkzeug", "2.1.0",
                                                                                           "2.0.3")]
    assert all(s["replay"] in ("reproduced", "fixed") for s in data["steps"]), data["steps"]
