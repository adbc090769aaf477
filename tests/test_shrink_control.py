"""`reprex shrink --fixed-with SPEC`: a differential oracle on real regressions.

A signature-only oracle takes a candidate that fails with the same exception type in the
same function, so `from packaging import LegacyVersion` (a name that was never there: an
ImportError in `newest` on every version) passes for the removed name's ImportError. With
the fix as a control a candidate must also not fail that way under it. Cases from
tests/fixtures/fidelity (each cites its public issue): packaging 22.0 removed LegacyVersion
(fixed by 21.3), urllib3 2.0 removed Retry(method_whitelist=) (fixed by 1.26.18), whose
Retry urllib3 re-exports at the top, so there the shorter import is the same bug.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reprex.bundle import Bundle
from reprex.replay import ReplayOptions, replay

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "fidelity"))
from cases import CASES, capture  # noqa: E402

PY = sys.executable


@pytest.fixture(scope="module")
def captured(tmp_path_factory, cache):
    root = tmp_path_factory.mktemp("control")
    return {name: capture(next(c for c in CASES if c.name == name), root).write(root / f"{name}.reprex.zip")
            for name in ("legacy_version", "retry_whitelist")}


def shrink_cli(*args, timeout=600):
    return subprocess.run([PY, "-m", "reprex", "shrink", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())


def test_the_fix_keeps_a_removed_names_import_where_it_was(captured, tmp_path):
    out = tmp_path / "legacy.shrunk.reprex.zip"
    # --loose: the signature alone, so only the control can tell the shorter import apart (strict,
    # the default for a steady message, refuses it by its message already)
    proc = shrink_cli(captured["legacy_version"], "--backend", "local", "--fixed-with", "packaging==21.3",
                      "--loose", "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["strict"] is False
    assert summary["control"]["with"] == ["packaging==21.3"] and summary["control"]["verdict"] == "fixed"
    # `from packaging import LegacyVersion` reproduced, and was refused because it does with the fix too
    assert summary["rejected"].get("reproduced with the fix", 0) >= 1, summary["rejected"]
    small = Bundle.read(out)
    script = small.text("files/app.py")
    assert "from packaging.version import LegacyVersion" in script and summary["after"]["statements"] < 6
    assert small.manifest["shrunk"]["control"]["verdict"] == "fixed"
    assert replay(small, ReplayOptions(backend="local")).verdict == "reproduced"
    assert replay(small, ReplayOptions(backend="local", with_specs=["packaging==21.3"])).verdict == "fixed"


def test_the_fix_lets_a_reexported_name_come_from_the_top_and_replays_on_both_backends(captured, tmp_path,
                                                                                      base_image):
    out = tmp_path / "retry.shrunk.reprex.zip"
    proc = shrink_cli(captured["retry_whitelist"], "--backend", "local", "--fixed-with", "urllib3==1.26.18",
                      "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    script = Bundle.read(out).text("files/app.py")
    assert "from urllib3 import Retry" in script and "method_whitelist" in script, script
    for backend, image in (("local", None), ("docker", base_image)):
        small = Bundle.read(out)
        assert replay(small, ReplayOptions(backend=backend, image=image)).verdict == "reproduced", backend
        fixed = replay(small, ReplayOptions(backend=backend, image=image, with_specs=["urllib3==1.26.18"]))
        assert fixed.verdict == "fixed", (backend, fixed.reason)


def test_without_the_fix_the_import_path_is_not_shortened(captured, tmp_path):
    """No control: the pass that could trade the bug for another is not asked at all."""
    out = tmp_path / "plain.shrunk.reprex.zip"
    proc = shrink_cli(captured["retry_whitelist"], "--backend", "local", "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    assert "control" not in json.loads(proc.stdout)
    assert "from urllib3.util.retry import Retry" in Bundle.read(out).text("files/app.py")


@pytest.mark.parametrize("spec, message, code", [
    ("packaging==22.0", "still fails the same way with --fixed-with packaging==22.0: that doesn't fix it", 1),
    ("packaging==0.0.0.dev999", "could not be run with --fixed-with packaging==0.0.0.dev999", 3),
])
def test_a_fix_that_doesnt_fix_or_doesnt_install_is_refused_in_one_line(captured, tmp_path, spec, message, code):
    out = tmp_path / "never.reprex.zip"
    proc = shrink_cli(captured["legacy_version"], "--backend", "local", "--fixed-with", spec, "-o", out)
    assert proc.returncode == code, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def _with_bisect(path: Path, out: Path, package, first_bad, last_good) -> Path:
    """The bundle with a `bisect` section as `reprex bisect` writes it (reprex.bisect.section)."""
    from reprex.bisect import BisectResult, Finding
    from reprex.bisect.section import with_section

    result = BisectResult(mode="package", findings=[Finding(package=package, first_bad=first_bad,
                                                            last_good=last_good)])
    return with_section(Bundle.read(path), result).write(out)


def test_fixed_with_auto_takes_the_last_good_release_bisect_found(captured, tmp_path):
    bisected = _with_bisect(captured["legacy_version"], tmp_path / "bisected.reprex.zip", "Packaging", "22.0", "21.3")
    out = tmp_path / "auto.shrunk.reprex.zip"
    proc = shrink_cli(bisected, "--backend", "local", "--fixed-with", "auto", "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    assert "the fix, from the bundle's bisect result: packaging==21.3" in proc.stderr
    control = json.loads(proc.stdout)["control"]
    assert control["with"] == ["packaging==21.3"] and control["verdict"] == "fixed"


@pytest.mark.parametrize("package, last_good", [
    ("x @ file:///etc/passwd", "1.0"),  # a spec that is a URL, not a name
    ("packaging", "21.3 ; os_name == 'posix'"),  # not a version
    ("../../outside", "1.0"),
])
def test_fixed_with_auto_refuses_a_crafted_bisect_section(captured, tmp_path, package, last_good):
    """The section is the bundle's: what isn't a plain name and version never becomes a spec."""
    bisected = tmp_path / "crafted.reprex.zip"
    from reprex.draft import Draft, seal
    from reprex.redact import Redactor

    draft = Draft.of(Bundle.read(captured["legacy_version"]), Redactor())
    draft.add("bisect", {"mode": "package", "findings": [{"package": package, "first_bad": "22.0",
                                                          "last_good": last_good}]})
    seal(draft).write(bisected)
    proc = shrink_cli(bisected, "--backend", "local", "--fixed-with", "auto", "-o", tmp_path / "x.zip")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("reprex: error: --fixed-with auto: the bundle's bisect")
    assert "Traceback" not in proc.stderr and "installing" not in proc.stderr and not (tmp_path / "x.zip").exists()


def test_fixed_with_auto_without_a_bisect_result_says_what_to_run(captured, tmp_path):
    proc = shrink_cli(captured["legacy_version"], "--backend", "local", "--fixed-with", "auto", "-o", tmp_path / "x")
    assert proc.returncode == 1 and "run `reprex bisect BUNDLE --package NAME` first" in proc.stderr


@pytest.mark.parametrize("specs", [[""], ["  "], ["auto", "packaging==21.3"]])
def test_a_malformed_fixed_with_is_a_usage_error_before_anything_runs(captured, tmp_path, specs):
    args = [a for spec in specs for a in ("--fixed-with", spec)]
    proc = shrink_cli(captured["legacy_version"], "--backend", "local", *args, "-o", tmp_path / "x.zip")
    assert proc.returncode == 2 and "--fixed-with" in proc.stderr, proc.stderr
    assert "calibrating" not in proc.stderr and "Traceback" not in proc.stderr


def test_capture_fixed_with_shrinks_the_fresh_bundle_against_the_fix(tmp_path, cache):
    # `capture --fixed-with` implies --shrink and judges with the fix as a control: the removed
    # name's import stays where it was (a signature-only judge may take `from packaging import ...`).
    from cases import HERE, make_env

    case = next(c for c in CASES if c.name == "legacy_version")
    python = make_env(case, tmp_path)
    work = tmp_path / "work"
    shutil.copytree(HERE / case.name, work)
    out = tmp_path / "legacy.reprex.zip"
    proc = subprocess.run([PY, "-m", "reprex", "capture", "-q", "--fixed-with", "packaging==21.3", "-o", str(out),
                           "--", str(python), "app.py"], cwd=work, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr  # the program's own status
    assert "shrink: " in proc.stderr and "not shrunk" not in proc.stderr, proc.stderr
    bundle = Bundle.read(out)
    assert bundle.manifest["shrunk"]["control"]["with"] == ["packaging==21.3"]
    assert bundle.manifest["shrunk"]["control"]["verdict"] == "fixed"
    script = bundle.text("files/app.py")
    assert "from packaging.version import LegacyVersion" in script
    assert bundle.manifest["shrunk"]["after"]["statements"] < bundle.manifest["shrunk"]["before"]["statements"]
    assert replay(bundle, ReplayOptions(backend="local", with_specs=["packaging==21.3"])).verdict == "fixed"


@pytest.mark.parametrize("specs, message", [(["auto"], "a fresh capture has none"), ([" "], "an empty spec")])
def test_capture_fixed_with_refuses_auto_and_empty_before_running(tmp_path, specs, message):
    marker = tmp_path / "ran"
    args = [a for spec in specs for a in ("--fixed-with", spec)]
    proc = subprocess.run([PY, "-m", "reprex", "capture", *args, "--", PY, "-c", f"open({str(marker)!r}, 'w')"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not marker.exists()  # refused before the program ran
