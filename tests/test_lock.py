"""`reprex lock`: re-resolve a bundle's top-level pins for another target, for real
(the package index this machine is configured with)."""

import json
import subprocess
import sys

import pytest

from reprex.capture.pipeline import CaptureOptions, capture_command
from reprex.lock import lock

PY = sys.executable


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    work = tmp_path_factory.mktemp("lock")
    (work / "uses_packaging.py").write_text("import packaging.version\nraise SystemExit('stop')\n")
    return capture_command([PY, "uses_packaging.py"], CaptureOptions(tee=False), cwd=str(work)).bundle


def test_roots_are_recorded(bundle):
    assert bundle.manifest["pins"]["roots"] == ["packaging"]


def test_resolves_for_another_arch_and_python(bundle):
    result = lock(bundle, "3.12", "manylinux2014_aarch64")
    assert result.ok, result.error or result.missing
    assert any(p.startswith("packaging==") for p in result.pins)


def test_no_build_for_the_target_is_env_incompatible(bundle, tmp_path):
    path = bundle.write(tmp_path / "b.reprex.zip")
    proc = subprocess.run([PY, "-m", "reprex", "lock", str(path), "--python", "3.6", "--platform",
                           "manylinux2014_x86_64", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "env-incompatible" and data["missing"] == ["packaging"]


def test_bad_python_is_a_usage_error(bundle, tmp_path):
    path = bundle.write(tmp_path / "b.reprex.zip")
    proc = subprocess.run([PY, "-m", "reprex", "lock", str(path), "--python", "three", "--platform", "x"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "use X.Y" in proc.stderr
