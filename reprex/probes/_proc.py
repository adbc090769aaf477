"""Bounded subprocesses for probes.

Every external command a probe runs goes through `run`: argv only (never a shell),
a timeout that is also capped by the runner's deadline for the calling probe, and
the whole process group killed on timeout, so a wrapper script's children (a hung
`python`, a stuck driver query) never outlive the capture.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Mapping, Sequence

_local = threading.local()
_MIN_TIMEOUT = 0.05


class CommandTimeout(Exception):
    """A probe's command ran past its time limit and was killed."""


def set_deadline(deadline: float | None) -> None:
    """Record (for this thread) the monotonic time by which the running probe must finish."""
    _local.deadline = deadline


def bounded(timeout: float) -> float:
    """`timeout`, shortened to what is left of this thread's probe deadline."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None:
        timeout = min(timeout, deadline - time.monotonic())
    return max(timeout, _MIN_TIMEOUT)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        try:
            proc.kill()
        except OSError:
            pass


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.CompletedProcess:
    """Run argv with captured text output; raise CommandTimeout when it takes too long."""
    limit = bounded(timeout)
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        text=True,
        errors="replace",
        start_new_session=(os.name == "posix"),
    )
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            proc.communicate(timeout=1.0)
        except subprocess.TimeoutExpired:  # something escaped the group and holds the pipes
            for stream in (proc.stdout, proc.stderr):
                try:
                    stream.close()
                except Exception:
                    pass
        raise CommandTimeout(f"{os.path.basename(argv[0])} timed out after {limit:.3g}s") from None
    finally:
        if proc.poll() is None:  # interrupted some other way: never leave it running
            _kill_group(proc)
            proc.wait()
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def describe_exit(returncode: int) -> str:
    """'killed by SIGSEGV' for a negative return code, else 'exited with status N'."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


def last_line(text: str | None) -> str:
    """The last non-empty line of some output, trimmed for a one-line error."""
    for line in reversed((text or "").splitlines()):
        if line.strip():
            return line.strip()[:300]
    return ""


def target_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The run's environment for re-running its interpreter, minus reprex's own recorder switches."""
    return {k: v for k, v in environ.items() if not k.startswith("REPREX_")}


def same_interpreter(executable: str) -> bool:
    """True when `executable` names this process's interpreter (symlinks NOT resolved: a venv's
    python links to its base interpreter but has another prefix)."""
    if not executable:
        return True
    return os.path.normcase(os.path.abspath(executable)) == os.path.normcase(os.path.abspath(sys.executable))


def run_python(ctx, code: str, args: Sequence[str] = (), *, timeout: float) -> subprocess.CompletedProcess:
    """Run `code` with the run's interpreter, environment and working directory."""
    cwd = ctx.cwd if ctx.cwd and os.path.isdir(ctx.cwd) else None
    return run([ctx.python_executable, "-c", code, *args], timeout=timeout, env=target_env(ctx.environ), cwd=cwd)


_FACTS_MARKER = "__REPREX_FACTS__"


def query_target(ctx, what: str, *, timeout: float = 15.0):
    """Run _target_script.py in the run's interpreter and return its JSON ("python" or "distributions")."""
    from . import _target_script

    with open(_target_script.__file__, encoding="utf-8") as fh:
        source = fh.read()
    done = run_python(ctx, source, [what], timeout=timeout)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_FACTS_MARKER):
            import json

            return json.loads(line[len(_FACTS_MARKER):])
    raise RuntimeError(f"{ctx.python_executable} {describe_exit(done.returncode)}: {last_line(done.stderr) or 'no output'}")
