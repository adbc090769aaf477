"""`reprex replay B --with PATH` where PATH is a checkout of the project under test.

The bundle carries the project's own source (files/mypkg/, files/src/mypkg/) because the failing
run opened it, and the replay's work dir comes first on sys.path: without care the bundle's copy
shadows the checkout `--with` installed, and a fix replays as `reproduced`. These capture real
projects (a script and a pytest run), then replay them with a fixed and an unfixed checkout on
both backends: the checkout's packages replace the bundle's copies, everything else stays.
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
from reprex.replay import shadow

PY = sys.executable
PYPROJECT = ('[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
             '[project]\nname = "mypkg"\nversion = "1.0"\n')


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def reprex(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "reprex", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=clean_env())


def replay(path: Path, backend: str, *extra: str, image: str | None = None) -> dict:
    args = ["replay", str(path), "--backend", backend, "--json", *extra]
    if image:
        args += ["--image", image]
    proc = reprex(*args)
    assert proc.stdout, proc.stderr
    return {"exit": proc.returncode, **json.loads(proc.stdout)}


# -- the projects ---------------------------------------------------------------------

def flat_project(root: Path, value: int, *, new_module: bool = False) -> Path:
    """A flat layout: mypkg/ beside the script, which also imports a helper module of its own."""
    (root / "mypkg").mkdir(parents=True)
    if new_module:  # the fix moved f into a module the bundle never saw
        (root / "mypkg" / "__init__.py").write_text("from mypkg._impl import f\n")
        (root / "mypkg" / "_impl.py").write_text(f"def f():\n    return {value}\n")
    else:
        (root / "mypkg" / "__init__.py").write_text(f"def f():\n    return {value}\n")
    (root / "helper.py").write_text("WANT = 2\n")
    (root / "app.py").write_text("import helper\nfrom mypkg import f\n\n"
                                 "assert f() == helper.WANT, f'f() gave {f()}'\n")
    (root / "pyproject.toml").write_text(PYPROJECT + '[tool.setuptools]\npackages = ["mypkg"]\n')
    return root


def src_project(root: Path, value: int) -> Path:
    """A src/ layout run by pytest with `pythonpath = src` (Flask's shape), a conftest beside the tests."""
    (root / "src" / "mypkg").mkdir(parents=True)
    (root / "src" / "mypkg" / "__init__.py").write_text("from mypkg.core import f\n")
    (root / "src" / "mypkg" / "core.py").write_text(f"def f():\n    return {value}\n")
    (root / "tests").mkdir()
    (root / "tests" / "conftest.py").write_text("import pytest\n\n\n@pytest.fixture\ndef want():\n    return 2\n")
    (root / "tests" / "test_f.py").write_text("import mypkg\n\n\ndef test_f(want):\n    assert mypkg.f() == want\n")
    (root / "pytest.ini").write_text("[pytest]\npythonpath = src\n")
    (root / "pyproject.toml").write_text(PYPROJECT)
    return root


@pytest.fixture(scope="module")
def script_case(tmp_path_factory, cache):
    """A script's bundle (files/mypkg/, files/helper.py), a fixed checkout and an unfixed one."""
    base = tmp_path_factory.mktemp("with-checkout-script")
    proj = flat_project(base / "proj", 1)
    fixed = flat_project(base / "fixed", 2, new_module=True)
    unfixed = flat_project(base / "unfixed", 1)
    proc = reprex("capture", "-o", str(base / "app.reprex"), "--", PY, "app.py", cwd=proj, timeout=300)
    path = base / "app.reprex"
    assert path.exists(), proc.stdout + proc.stderr
    files = Bundle.read(path).files
    assert {"files/mypkg/__init__.py", "files/helper.py", "files/app.py"} <= set(files), sorted(files)
    return path, fixed, unfixed


@pytest.fixture(scope="module")
def pytest_case(tmp_path_factory, cache):
    """A pytest run's bundle (`reprex capture -- python -m pytest`: files/src/mypkg/, files/tests/,
    pytest.ini's `pythonpath = src` puts the bundle's src first), a fixed and an unfixed checkout."""
    base = tmp_path_factory.mktemp("with-checkout-pytest")
    proj = src_project(base / "proj", 1)
    fixed = src_project(base / "fixed", 2)
    unfixed = src_project(base / "unfixed", 1)
    path = base / "tests.reprex"
    proc = reprex("capture", "-o", str(path), "--", PY, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                  "tests/test_f.py", cwd=proj, timeout=300)
    assert path.exists(), proc.stdout + proc.stderr
    bundle = Bundle.read(path)
    assert bundle.manifest["entry"]["python_args"][:2] == ["-m", "pytest"], bundle.manifest["entry"]
    assert {"files/src/mypkg/__init__.py", "files/src/mypkg/core.py", "files/tests/test_f.py",
            "files/tests/conftest.py", "files/pytest.ini"} <= set(bundle.files), sorted(bundle.files)
    return path, fixed, unfixed


def check_fixed(result: dict, spec: Path, where: str) -> None:
    assert (result["verdict"], result["exit"]) == ("fixed", 0), result
    assert f"--with {spec} replaces the bundle's copy of {where}" in result["reason"], result


# -- local ----------------------------------------------------------------------------

def test_local_script_with_the_fixed_checkout_is_fixed(script_case):
    path, fixed, unfixed = script_case
    assert replay(path, "local")["verdict"] == "reproduced"
    # the fix's package as a whole (its new module too), the bundle's helper.py still beside the script
    check_fixed(replay(path, "local", "--with", str(fixed), "--expect", "fixed"), fixed, "mypkg")
    # the bundle itself is untouched
    assert "files/mypkg/__init__.py" in Bundle.read(path).files


def test_local_script_with_an_unfixed_checkout_still_reproduces(script_case):
    path, _, unfixed = script_case
    result = replay(path, "local", "--with", str(unfixed))
    assert result["verdict"] == "reproduced", result
    assert f"--with {unfixed} replaces the bundle's copy of mypkg" in result["reason"], result


def test_local_relative_checkout_path_is_named_as_given(script_case):
    path, fixed, _ = script_case
    proc = subprocess.run([PY, "-m", "reprex", "replay", str(path), "--backend", "local", "--with", "../fixed", "--expect", "fixed"],
                          cwd=fixed.parent / "unfixed", capture_output=True, text=True, timeout=600, env=clean_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fixed on local" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert "--with ../fixed replaces the bundle's copy of mypkg" in proc.stdout + proc.stderr


def test_local_pytest_form_with_the_fixed_checkout_is_fixed(pytest_case):
    path, fixed, unfixed = pytest_case
    assert replay(path, "local")["verdict"] == "reproduced"
    check_fixed(replay(path, "local", "--with", str(fixed), "--expect", "fixed"), fixed, "mypkg (src/mypkg)")
    # the tests and their conftest stay: an unfixed checkout still fails the same test
    result = replay(path, "local", "--with", str(unfixed))
    assert result["verdict"] == "reproduced", result


def test_local_plugin_bundle_with_the_fixed_checkout_is_fixed(tmp_path, cache):
    """`pytest --reprex-capture` (either form it picks), then the README's loop: `--with` the fix."""
    proj = src_project(tmp_path / "proj", 1)
    fixed = src_project(tmp_path / "fixed", 2)
    proc = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--reprex-capture=out"], cwd=proj,
                          env=clean_env(), capture_output=True, text=True, timeout=300)
    assert "1 failed" in proc.stdout, proc.stdout + proc.stderr
    path = proj / "out" / "tests-test_f-test_f.reprex.zip"
    assert "files/src/mypkg/core.py" in Bundle.read(path).files
    assert replay(path, "local")["verdict"] == "reproduced"
    check_fixed(replay(path, "local", "--with", str(fixed), "--expect", "fixed"), fixed, "mypkg (src/mypkg)")


def test_a_checkout_of_another_project_replaces_nothing(script_case, tmp_path):
    """A checkout of another project replaces nothing: the bundle's mypkg is what runs."""
    path, _, _ = script_case
    other = tmp_path / "other"
    (other / "otherpkg").mkdir(parents=True)
    (other / "otherpkg" / "__init__.py").write_text("X = 1\n")
    (other / "pyproject.toml").write_text(PYPROJECT.replace('"mypkg"', '"otherpkg"')
                                          + '[tool.setuptools]\npackages = ["otherpkg"]\n')
    result = replay(path, "local", "--with", str(other))
    assert result["verdict"] == "reproduced", result
    assert "replaces" not in result["reason"], result


# -- docker ---------------------------------------------------------------------------

@pytest.mark.docker
def test_docker_script_with_the_fixed_checkout_is_fixed(script_case, base_image):
    path, fixed, unfixed = script_case
    check_fixed(replay(path, "docker", "--with", str(fixed), "--expect", "fixed", image=base_image), fixed, "mypkg")
    result = replay(path, "docker", "--with", str(unfixed), image=base_image)
    assert result["verdict"] == "reproduced", result


@pytest.mark.docker
def test_docker_pytest_form_with_the_fixed_checkout_is_fixed(pytest_case, base_image):
    path, fixed, _ = pytest_case
    check_fixed(replay(path, "docker", "--with", str(fixed), "--expect", "fixed", image=base_image), fixed,
                "mypkg (src/mypkg)")


# -- which work files are the checkout's ----------------------------------------------

def test_only_copies_under_an_import_root_are_left_out():
    files = {"app.py": b"", "helper.py": b"", "mypkg/__init__.py": b"", "mypkg/core.py": b"",
             "src/mypkg/__init__.py": b"", "vendor/__init__.py": b"", "vendor/mypkg/__init__.py": b"",
             "tests/conftest.py": b"", "tests/test_f.py": b"", "mypkg/stale.py": b""}
    provided = {"../fixed": ["mypkg/__init__.py", "mypkg/core.py", "mypkg/new.py", "conftest.py", "tests/test_f.py"]}
    out = shadow.plan(files, provided, shadow.entry_files(["-m", "pytest", "tests/test_f.py::test_f"], files))
    # vendor/mypkg is vendor.mypkg, a subpackage; a module the fix deleted stays but can't be imported
    assert out.drop == {"mypkg/__init__.py", "mypkg/core.py", "src/mypkg/__init__.py"}
    assert out.notes == ["--with ../fixed replaces the bundle's copy of mypkg (mypkg, src/mypkg)"]
    assert out.keep(files).keys() == files.keys() - out.drop


def test_the_provided_paths_leave_metadata_scripts_and_tests_out(tmp_path):
    import zipfile

    wheel = tmp_path / "mypkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in ("mypkg/__init__.py", "mypkg/data/t.html", "six.py", "mypkg-1.0.dist-info/RECORD",
                     "mypkg-1.0.data/scripts/run", "mypkg-1.0.data/purelib/extra.py", "tests/__init__.py", "mypkg/__pycache__/x.cpython-311.pyc"):
            zf.writestr(name, "")
    assert shadow.wheel_paths(wheel) == ["mypkg/__init__.py", "mypkg/data/t.html", "six.py", "extra.py"]
    dist = tmp_path / "site" / "mypkg-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "RECORD").write_text("mypkg/__init__.py,sha256=x,1\n../../bin/run,,\nmypkg-1.0.dist-info/RECORD,,\n"
                                 "_speedups.cpython-311-x86_64-linux-gnu.so,sha256=y,2\n")
    paths = shadow.record_paths(dist)
    assert paths == ["mypkg/__init__.py", "_speedups.cpython-311-x86_64-linux-gnu.so"]
    assert {shadow.top_name(p) for p in paths} == {"mypkg", "_speedups"}
