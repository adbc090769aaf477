"""Field trial of `pytest --reprex-capture` (Flask 2.0.x + Werkzeug 2.1, requests-toolbelt 0.10.1
+ urllib3 2.0): the shapes that went wrong there, cut down to a few lines each, no index needed.

1. A test module that fails at import because a dependency removed a name
   (https://github.com/requests/toolbelt/issues/354: `from urllib3.contrib import appengine`).
   The bundle holds only the files the failing run opened, so the package's *next* import, which
   the fixed run reaches, is missing from it. The fix is stood in for by `--env`, read where the
   removed name was imported. With the fix the replay fails with an ImportError at the same
   frame ("cannot import name 'extra' from partially initialized module"): the same signature,
   so the verdict says `reproduced` for a bug the fix removed. (Fixed: capture bundles the other
   `.py` files of the project's own packages the run imported, reprex/capture/inputs.py.)
2. A project with `filterwarnings = error` (Flask's setup.cfg): the pytest form of a bundle loads
   the recorder as a plugin, pytest warns `Module already imported so cannot be rewritten:
   sitecustomize`, the warning is an error, and pytest never starts. (Fixed: the recorder's
   docstring says PYTEST_DONT_REWRITE, which pytest honours.)
3. `--with` a checkout that fixes the project under test: the bundle's own copy of the project's
   package is first on sys.path, so the replay still runs the old code and says `reproduced`.
   (Fixed: reprex/replay/shadow.py leaves the bundle's copies of what a local --with path
   installs out of the replay's work files.)

All three are fixed now; the tests keep them fixed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reprex.bundle import Bundle

PY = sys.executable

PACKAGE_INIT = """
import os

if os.environ.get("FIELD_DEP_FIXED") != "1":
    # what urllib3 2.0 did to requests-toolbelt 0.10.1's _compat.py
    raise ImportError("cannot import name 'appengine' from 'urllib3.contrib'")

from . import extra
"""

TEST_IMPORTS_PACKAGE = """
import pkg


def test_extra():
    assert pkg.extra.VALUE == 1
"""


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "FIELD_DEP_FIXED"}


def capture(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--reprex-capture=out"],
                          cwd=root, env=clean_env(), capture_output=True, text=True, timeout=300)


def replay(path: Path, *extra: str) -> dict:
    proc = subprocess.run([PY, "-m", "reprex", "replay", str(path), "--backend", "local", "--json", *extra],
                          capture_output=True, text=True, timeout=600, env=clean_env())
    assert proc.stdout, proc.stderr
    return {"exit": proc.returncode, **json.loads(proc.stdout)}


@pytest.fixture(scope="module")
def import_error_bundle(tmp_path_factory, cache) -> Path:
    root = tmp_path_factory.mktemp("field-import")
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text(PACKAGE_INIT)
    (root / "pkg" / "extra.py").write_text("VALUE = 1\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_extra.py").write_text(TEST_IMPORTS_PACKAGE)
    (root / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    proc = capture(root)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # a collection error
    path = root / "out" / "tests-test_extra-collect.reprex.zip"
    assert path.exists(), proc.stdout + proc.stderr
    return path


def test_import_error_bundle_reproduces_without_the_fix(import_error_bundle):
    test = Bundle.read(import_error_bundle).manifest["test"]
    assert (test["mode"], test["when"], test["reproduces"]) == ("pytest", "collect", True)
    result = replay(import_error_bundle, "--strict")
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result


def test_strict_tells_the_fixed_runs_import_error_apart(import_error_bundle):
    result = replay(import_error_bundle, "--strict", "--env", "FIELD_DEP_FIXED=1")
    assert result["verdict"] != "reproduced", result


def test_the_fix_is_not_called_reproduced(import_error_bundle):
    result = replay(import_error_bundle, "--env", "FIELD_DEP_FIXED=1", "--expect", "fixed")
    assert (result["verdict"], result["exit"]) == ("fixed", 0), result
    assert "files/pkg/extra.py" in Bundle.read(import_error_bundle).files


def test_pytest_form_runs_under_filterwarnings_error(tmp_path, cache):
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings =\n    error\n")
    (tmp_path / "test_config.py").write_text(
        "def test_config(pytestconfig):\n    assert pytestconfig.getini('filterwarnings') == []\n")
    proc = capture(tmp_path)
    assert "1 failed" in proc.stdout, proc.stdout + proc.stderr
    path = tmp_path / "out" / "test_config-test_config.reprex.zip"
    test = Bundle.read(path).manifest["test"]
    assert test["mode"] == "pytest"
    assert test["reproduces"] is True, test["mode_reason"]
    result = replay(path, "--strict")
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result


def test_with_the_fixed_checkout_is_fixed(tmp_path, cache):
    """README's loop: `--reprex-expect fixed --reprex-with .` for the pull request that fixes it.
    Found on Flask 2.0.1 (editable, src/ layout): `--with` a Flask 2.0.3 checkout said reproduced."""
    for name, value in (("proj", 1), ("fixed", 2)):
        root = tmp_path / name
        (root / "src" / "mypkg").mkdir(parents=True)
        (root / "src" / "mypkg" / "__init__.py").write_text(f"def f():\n    return {value}\n")
        (root / "tests").mkdir()
        (root / "tests" / "test_f.py").write_text("import mypkg\n\n\ndef test_f():\n    assert mypkg.f() == 2\n")
        (root / "pytest.ini").write_text("[pytest]\npythonpath = src\n")
        (root / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
            '[project]\nname = "mypkg"\nversion = "1.0"\n')
    proc = capture(tmp_path / "proj")
    assert "1 failed" in proc.stdout, proc.stdout + proc.stderr
    path = tmp_path / "proj" / "out" / "tests-test_f-test_f.reprex.zip"
    assert replay(path)["verdict"] == "reproduced"
    result = replay(path, "--with", str(tmp_path / "fixed"), "--expect", "fixed")
    assert (result["verdict"], result["exit"]) == ("fixed", 0), result
