"""pip and uv command lines, run one way: the host's wheels, the local envs and lock all install alike.

pip is always this interpreter's (`sys.executable -m pip`) with the host's own configuration
(indexes, find-links, certificates) as is: nothing is overridden. uv, when on PATH, makes and
fills virtualenvs and resolves for a foreign target much faster; pip is the fallback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence


def uv() -> str | None:
    return shutil.which("uv")


def pip_argv(*args: str, python: str | Path | None = None) -> list[str]:
    """`python -m pip ARGS` of this interpreter; with `python`, acting on that interpreter's environment."""
    target = ["--python", str(python)] if python is not None else []
    progress = ["--progress-bar", "off"] if args and args[0] in ("download", "wheel") else []
    return [sys.executable, "-m", "pip", *target, "--disable-pip-version-check", *args[:1], *progress, *args[1:]]


def install_argv(python: str | Path, *args: str) -> list[str]:
    """`pip install ARGS` into `python`'s environment: uv's when there is one, else the host's pip."""
    found = uv()
    if found:
        return [found, "pip", "install", "--python", str(python), *args]
    return pip_argv("install", *args, python=python)


def venv_argv(python: str, venv: Path) -> list[str]:
    """A bare virtualenv for `python` at `venv` (uv's, else the stdlib's, without pip)."""
    found = uv()
    return [found, "venv", "--quiet", "--python", python, str(venv)] if found else \
        [python, "-m", "venv", "--without-pip", str(venv)]


def run(argv: Sequence[str], timeout: float | None, *, cwd: str | None = None,
        input: str | None = None) -> subprocess.CompletedProcess:
    """Run to completion, output captured as text, stdin closed unless `input` is given; a timeout
    raises subprocess.TimeoutExpired and a missing program OSError, for the caller to word."""
    stdin = None if input is not None else subprocess.DEVNULL
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd, input=input,
                          stdin=stdin)


def last_error(proc: subprocess.CompletedProcess) -> str:
    """The line that says why pip or uv failed: its last `error...` line, else its last line."""
    lines = [l.strip() for l in (proc.stderr or proc.stdout or "").splitlines() if l.strip()]
    errors = [l for l in lines if l.lower().startswith("error")]
    return (errors[-1] if errors else (lines[-1] if lines else f"exit status {proc.returncode}"))[:400]
