"""More of the field trial of `pytest --reprex-capture` (Flask 2.0.x + Werkzeug 2.1,
requests-toolbelt 0.10.1 + urllib3 2.0), cut down to a few lines each, no index needed:

1. a conftest.py that no longer imports (`import urllib3.contrib.appengine`): pytest exits 4
   before any test or collection hook, and the plugin wrote nothing and said nothing;
2. an `xfail(strict=True)` test that passes (`[XPASS(strict)]`): no exception, no bundle, no word;
3. twenty test modules failing to import the same package: twenty bundles of one failure, then
   `--reprex-capture-max` stopped capturing without saying which failing tests have no bundle.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reprex.bundle import Bundle

PY = sys.executable

# what urllib3 2.0 did to requests-toolbelt 0.10.1: the package raises at import, two modules deep
RAISES = """
import os

if os.environ.get("FIELD_DEP_FIXED") != "1":
    raise ImportError("cannot import name 'appengine' from 'urllib3.contrib'")
"""


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "FIELD_DEP_FIXED"}


def pytest_run(root: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--reprex-capture=out", *extra],
                          cwd=root, env=clean_env(), capture_output=True, text=True, timeout=600)


def replay(path: Path, *extra: str) -> dict:
    proc = subprocess.run([PY, "-m", "reprex", "replay", str(path), "--backend", "local", "--json", *extra],
                          capture_output=True, text=True, timeout=600, env=clean_env())
    assert proc.stdout, proc.stderr
    return {"exit": proc.returncode, **json.loads(proc.stdout)}


def reprex_section(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"-+ reprex -+", line))
    out = []
    for line in lines[start + 1:]:
        if line.startswith(("===", "---")):
            break
        out.append(line)
    return out


def make_package(root: Path) -> None:
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("from . import _compat\n")
    (root / "pkg" / "_compat.py").write_text("from . import _shim\n")
    (root / "pkg" / "_shim.py").write_text(RAISES)
    (root / "pytest.ini").write_text("[pytest]\npythonpath = .\n")


def test_a_conftest_that_does_not_import_is_captured(tmp_path, cache):
    make_package(tmp_path)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text("import pkg\n")
    (tmp_path / "tests" / "test_ok.py").write_text("def test_ok():\n    pass\n")
    proc = pytest_run(tmp_path)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's own status, unchanged
    assert "ImportError while loading conftest" in proc.stderr
    path = tmp_path / "out" / "tests-conftest-collect.reprex.zip"
    assert f"tests/conftest.py: wrote {path}" in reprex_section(proc.stderr), proc.stderr
    bundle = Bundle.read(path)
    test = bundle.manifest["test"]
    assert (test["nodeid"], test["when"], test["reproduces"]) == ("tests/conftest.py", "collect", True), test
    assert {"files/tests/conftest.py", "files/pkg/_shim.py"} <= set(bundle.files)
    assert bundle.manifest["expect"]["signature"]["frames"][:3] == \
        ["_shim.py:<module>", "_compat.py:<module>", "__init__.py:<module>"]
    result = replay(path, "--strict")
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result
    result = replay(path, "--env", "FIELD_DEP_FIXED=1", "--expect", "fixed")
    assert (result["verdict"], result["exit"]) == ("fixed", 0), result


def test_a_conftest_error_in_a_package_under_importlib_mode(tmp_path, cache):
    """The script imports the conftest as pytest's import mode does: `tests` a package, the
    importlib mode; the bundle still fails at the conftest's own frames."""
    make_package(tmp_path)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "__init__.py").write_text("")
    (tmp_path / "tests" / "conftest.py").write_text("import pkg\n")
    (tmp_path / "tests" / "test_ok.py").write_text("def test_ok():\n    pass\n")
    proc = pytest_run(tmp_path, "--import-mode=importlib")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    test = Bundle.read(tmp_path / "out" / "tests-conftest-collect.reprex.zip").manifest["test"]
    assert test["reproduces"] is True, test


def test_a_strict_xfail_that_passes_is_named_not_silent(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import pytest\n\n\n@pytest.mark.xfail(strict=True, reason='known bug')\ndef test_x():\n    pass\n")
    proc = pytest_run(tmp_path)
    assert "1 failed" in proc.stdout, proc.stdout + proc.stderr
    section = reprex_section(proc.stdout)
    assert len(section) == 1 and section[0].startswith("test_x.py::test_x: could not write a bundle: a strict "
                                                        "xfail that passed ([XPASS(strict)])"), section
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def _three_modules(root: Path) -> None:
    make_package(root)
    (root / "tests").mkdir()
    for name in "abc":
        (root / "tests" / f"test_{name}.py").write_text(f"import pkg\n\n\ndef test_{name}():\n    pass\n")


def test_failures_with_one_signature_are_captured_once_and_counted(tmp_path, cache):
    _three_modules(tmp_path)
    proc = pytest_run(tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tests-test_a-collect.reprex.zip"]
    section = reprex_section(proc.stdout)
    assert ("tests/test_a.py: 2 more failing tests with its signature and message, not captured again "
            "(tests/test_b.py, tests/test_c.py; --reprex-capture-all writes a bundle for each)") in section, section


def test_capture_all_writes_each(tmp_path, cache):
    _three_modules(tmp_path)
    proc = pytest_run(tmp_path, "--reprex-capture-all")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(list((tmp_path / "out").iterdir())) == 3
    assert not any("not captured again" in line for line in reprex_section(proc.stdout))


def test_the_cap_says_what_it_left_out(tmp_path, cache):
    (tmp_path / "test_m.py").write_text("def test_a():\n    assert 1 == 2\n\n\ndef test_b():\n    raise KeyError(1)\n"
                                        "\n\ndef test_c():\n    raise ValueError(2)\n\n\ndef test_d():\n    pass\n")
    proc = pytest_run(tmp_path, "--reprex-capture-max=1")
    assert "3 failed, 1 passed" in proc.stdout, proc.stdout + proc.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["test_m-test_a.reprex.zip"]
    section = reprex_section(proc.stdout)
    assert ("stopped capturing at --reprex-capture-max 1: 2 more failing tests without a bundle "
            "(test_m.py::test_b, test_m.py::test_c); raise the cap with --reprex-capture-max N or ini "
            "reprex_capture_max") in section, section


# -- what the bundle says about its re-runs (reprex/capture/failed_test.py: scratch paths, the
# exception named, the skip reason)

# A plugin the session loads (-p) that raises, out of pytest's reach, in any other process: as the
# filterwarnings=error shape's recorder warning did, the pytest form's re-run ends with an exception.
SESSION_PLUGIN = """
import os


def pytest_load_initial_conftests(early_config, parser, args):
    if os.environ.get("PYTEST_FIELD_SESSION") != "1":
        raise RuntimeError("not the session:\\x1b[2J 'quoted'")
"""


def test_a_rerun_that_raised_names_the_exception(tmp_path, cache):
    (tmp_path / "fieldplug.py").write_text(SESSION_PLUGIN)
    (tmp_path / "test_c.py").write_text("def test_c(pytestconfig):\n    assert pytestconfig.getini('markers') == 1\n")
    proc = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "fieldplug",
                           "--reprex-capture=out"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**clean_env(), "PYTEST_FIELD_SESSION": "1"})
    assert "1 failed" in proc.stdout, proc.stdout + proc.stderr
    test = Bundle.read(tmp_path / "out" / "test_c-test_c.reprex.zip").manifest["test"]
    assert test["reproduces"] is False
    said = "pytest run differs: it raised RuntimeError: \"not the session:\\x1b[2J 'quoted'\""
    assert said in test["mode_reason"], test["mode_reason"]
    assert "\x1b" not in proc.stdout and said in proc.stdout, proc.stdout


def test_tracebacks_show_the_projects_paths(tmp_path, cache):
    make_package(tmp_path)
    (tmp_path / "pkg" / "_shim.py").write_text("def ratio(a, b):\n    return a / b\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_p.py").write_text("from pkg._shim import ratio\n\n\ndef test_p():\n"
                                                  "    assert ratio(1, 0)\n")
    (tmp_path / "tests" / "test_q.py").write_text("import pkg.nothing_here\n")
    proc = pytest_run(tmp_path, "--continue-on-collection-errors")
    assert "1 failed, 1 error" in proc.stdout, proc.stdout + proc.stderr
    for name, mode in (("tests-test_p-test_p", "standalone"), ("tests-test_q-collect", "pytest")):
        bundle = Bundle.read(tmp_path / "out" / f"{name}.reprex.zip")
        assert bundle.manifest["test"]["mode"] == mode
        run = json.loads(bundle.files["run.json"])
        # the re-run's own facts (its sys.path among the probes) may name the copy it ran in; what it
        # failed with, and the files it read, are the project's
        shown = [bundle.files["traceback.txt"].decode(), json.dumps(run.get("exception")),
                 json.dumps(run["outcome"]), json.dumps(run["opened"]), json.dumps(run["output_tail"])]
        shown += [line for line in bundle.files["README.md"].decode().splitlines() if 'File "' in line]
        assert not [text for text in shown if "reprex-pytest-capture" in text], name
    text = Bundle.read(tmp_path / "out" / "tests-test_p-test_p.reprex.zip").files["traceback.txt"].decode()
    assert f'File "{tmp_path.resolve()}/pkg/_shim.py", line 2, in ratio' in text, text
    result = replay(tmp_path / "out" / "tests-test_p-test_p.reprex.zip", "--strict")
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result


def test_a_project_file_the_rerun_read_in_place_is_not_called_outside(tmp_path, cache):
    """Flask 2.0.3's src/Flask.egg-info/PKG-INFO, read through the editable install's path:
    inside the project, not 'outside the working directory'."""
    home = tmp_path.resolve()
    root = home / "Flask-2.0.3"  # under the home directory, as the field trial's checkout was
    root.mkdir()
    data = root / "data.txt"
    data.write_text("41\n")
    (root / "test_d.py").write_text(f"def test_d():\n    assert open({str(data)!r}).read() == '42\\n'\n")
    proc = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--reprex-capture=out"], cwd=root,
                          env={**clean_env(), "HOME": str(home)}, capture_output=True, text=True, timeout=600)
    assert "1 failed" in proc.stdout, proc.stdout + proc.stderr
    skipped = Bundle.read(root / "out" / "test_d-test_d.reprex.zip").manifest["files"]["skipped"]
    reasons = {item["path"]: item["reason"] for item in skipped}
    assert "<home>/Flask-2.0.3/data.txt" in reasons, skipped
    assert reasons["<home>/Flask-2.0.3/data.txt"].startswith("in the project"), skipped
