"""The `reprex` command's shape: reprex's own errors share one base the CLI catches once
(one line, the error's exit code, a JSON object under --json), and the command modules
share reprex/cli/_common.py instead of importing the group (no import circle)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import reprex
from reprex.bundle import BundleError
from reprex.capture.pipeline import CaptureError, CaptureOptions, capture_command
from reprex.errors import ReprexError
from reprex.extract import ExtractError
from reprex.extract_oracle import JudgeUnavailable
from reprex.fetch import FetchError
from reprex.ray.serve_check import ServeCheckError
from reprex.replay.base import EnvIncompatible, InfraError, ReplayProblem
from pytest_reprex.options import OptionError

PY = sys.executable
CLI_DIR = Path(reprex.__file__).parent / "cli"


def reprex_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "reprex", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


@pytest.mark.parametrize("cls, code", [
    (BundleError, 2), (FetchError, 2), (CaptureError, 2), (ExtractError, 2), (ServeCheckError, 2),
    (OptionError, 2), (JudgeUnavailable, 3), (ReplayProblem, 3), (InfraError, 3), (EnvIncompatible, 3)])
def test_reprex_errors_share_one_base_and_carry_their_exit_code(cls, code):
    error = cls("the one line")
    assert isinstance(error, ReprexError) and error.exit_code == code
    assert error.message == "the one line"


def test_option_errors_stay_value_errors_for_the_plugin():
    assert issubclass(OptionError, ValueError)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, expected: str) -> None:
    assert proc.returncode == code, proc.stdout + proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["exit"] == code and expected in answer["error"]
    assert proc.stderr.startswith("reprex: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr


def test_a_reprex_error_inside_a_command_ends_it_with_one_line_and_its_exit_code(tmp_path):
    """JudgeUnavailable (exit 3) from `extract` with no daemon, ServeCheckError (exit 2)
    from `check-serve`: neither command catches them; the CLI's one catch does."""
    (tmp_path / "boom.py").write_text("def f(x):\n    return 1 / x\n\nf(0)\n")
    result = capture_command([PY, "boom.py"], CaptureOptions(tee=False), cwd=str(tmp_path), write=False)
    bundle = result.bundle.write(tmp_path / "boom.reprex.zip")
    before = bundle.read_bytes()
    proc = reprex_cli("extract", str(bundle), "--json", cwd=tmp_path,
                      env={"DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"})
    assert_one_line_error(proc, 3, "no Docker daemon to judge the candidates in")
    assert bundle.read_bytes() == before

    (tmp_path / "serve.yaml").write_text("applications: []\n")
    proc = reprex_cli("check-serve", "serve.yaml", "--json", cwd=tmp_path)
    assert_one_line_error(proc, 2, "serve.yaml: no applications")


def cli_imports(path: Path) -> set[str]:
    """The reprex.cli modules `path` imports (at any depth of the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("reprex.cli"):
            names.update(f"{node.module}.{a.name}" if node.module == "reprex.cli" else node.module
                         for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("reprex.cli"))
    return names


def test_command_modules_import_only_the_shared_module_never_the_group():
    modules = sorted(p for p in CLI_DIR.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert {p.stem for p in modules} >= {"_common", "capture", "show", "replay", "serve", "cache"}
    for path in modules:
        assert cli_imports(path) <= {"reprex.cli._common"}, path.name


def test_the_library_never_imports_the_cli():
    root = Path(reprex.__file__).parent
    for path in [*root.rglob("*.py"), *(root.parent / "pytest_reprex").rglob("*.py")]:
        if CLI_DIR not in path.parents and path.name != "__main__.py":
            assert not cli_imports(path), path


def test_python_dash_m_reprex_cli_is_the_command(tmp_path):
    proc = subprocess.run([PY, "-m", "reprex.cli", "--version"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"reprex, version {reprex.__version__}"
    proc = subprocess.run([PY, "-m", "reprex.cli", "cache", "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "prune" in proc.stdout and "info" in proc.stdout


def test_replay_with_a_path_that_is_not_there_is_a_usage_error(tmp_path):
    # uv runs from / (a bundle's uv.toml is not read): a relative path it can't find would read as
    # "Distribution not found at: file:///nope"; say what is wrong before anything runs
    (tmp_path / "b.zip").write_bytes(b"not read")
    proc = reprex_cli("replay", "b.zip", "--backend", "local", "--with", "./nope", cwd=tmp_path)
    assert proc.returncode == 2 and "--with: ./nope: no such file or directory" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
