"""Run an entry under the recorder, tee its output, and load the Outcome.

Below both capture and replay (the local backend, check-serve, the pytest plugin): every
way reprex runs a program records it identically, and replay needs nothing of capture.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from reprex.record import INJECT_DIR, Outcome, load_outcome
from reprex.tail import TAIL_BYTES, TAIL_MARGIN, Tail


def recorder_env(base: Mapping[str, str], record_dir: Path, inject_dir: Path = INJECT_DIR) -> dict[str, str]:
    env = dict(base)
    env["REPREX_RECORD_DIR"] = str(record_dir)
    previous = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(inject_dir) + (os.pathsep + previous if previous else "")
    env["PYTHONUNBUFFERED"] = "1"  # keep stdout and stderr in their real order
    return env


@dataclass
class RunResult:
    outcome: Outcome
    record_dir: Path
    returncode: int | None
    timed_out: bool


# After the entry exits, how long background children that still hold its stdout/stderr
# may keep talking before the run counts as over. (Not the recorded process's exit when it is
# a grandchild: `sh -c "python a.py && python b.py"` goes on after the recorded a.py.)
DRAIN_S = 0.5


def run_recorded(argv: Sequence[str], *, cwd: str | os.PathLike | None = None,
                 env: Mapping[str, str] | None = None, timeout: float | None = None,
                 tee: bool = True, record_dir: Path | None = None,
                 on_output: Callable[[str, bytes], None] | None = None, spawn=None) -> RunResult:
    """Run argv under the recorder. On timeout, ask the recorded process for a stack
    dump (SIGUSR1 -> faulthandler), then kill the whole process group (and the recorded
    process, which setsid may have put out of its reach). The run ends when the entry exits:
    a background child that keeps the pipes open is killed, not waited for. Interrupted (KeyboardInterrupt, or
    reprex.interrupt.Interrupted for SIGTERM), the signal is passed on to the program, which is
    then stopped, and our record dir is removed before re-raising. `spawn(argv, cwd, env)`
    starts the process instead of subprocess.Popen (reprex.warm: a forked warm start); what it
    returns has Popen's pid, stdout, stderr, poll() and wait()."""
    own_dir = record_dir is None  # ours to delete: it holds unredacted locals and argv
    record_dir = Path(record_dir or tempfile.mkdtemp(prefix="reprex-record-"))
    try:
        return _run(argv, cwd, env, timeout, tee, record_dir, on_output, spawn)
    finally:
        if own_dir and not os.environ.get("REPREX_KEEP_RECORD"):
            shutil.rmtree(record_dir, ignore_errors=True)


def _run(argv, cwd, env, timeout, tee, record_dir: Path, on_output, spawn=None) -> RunResult:
    record_dir.mkdir(parents=True, exist_ok=True)
    full_env = recorder_env(env if env is not None else os.environ, record_dir)
    tail = Tail(TAIL_BYTES + TAIL_MARGIN)
    started = time.monotonic()
    try:
        if spawn is not None:
            proc = spawn(list(argv), cwd, full_env)
        else:
            proc = subprocess.Popen(list(argv), cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"command not found: {argv[0]}") from None
    except PermissionError:
        raise PermissionError(f"command is not executable: {argv[0]}") from None
    timed_out = False
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    sinks = {"stdout": getattr(sys.stdout, "buffer", None), "stderr": getattr(sys.stderr, "buffer", None)}
    deadline = started + timeout if timeout else None
    ending_at = None  # once the entry is gone: stop reading then
    try:
        while sel.get_map():
            now = time.monotonic()
            if ending_at is not None and now >= ending_at:
                break
            wait = None if deadline is None else max(0.0, deadline - now)
            if deadline is not None and wait == 0.0 and not timed_out:
                timed_out = True
                _dump_and_kill(proc, record_dir)
                deadline = None
                continue
            step = 0.2 if wait is None else min(wait, 0.2)
            if ending_at is not None:
                step = min(step, max(0.0, ending_at - now))
            for key, _ in sel.select(timeout=step):
                data = os.read(key.fileobj.fileno(), 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                tail.add(key.data, data)
                if on_output is not None:
                    on_output(key.data, data)
                if tee and sinks[key.data] is not None:
                    sinks[key.data].write(data)
                    sinks[key.data].flush()
            if ending_at is None and proc.poll() is not None:
                ending_at = time.monotonic() + DRAIN_S
        returncode = proc.wait()
    except BaseException as exc:
        # Ctrl-C or SIGTERM to reprex: pass it on (the program's stack is recorded), then stop it.
        _signal_group(proc, getattr(exc, "signum", signal.SIGINT))
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        raise
    finally:
        sel.close()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        # Whatever is left in the group (background children holding the pipes) goes too.
        _signal_group(proc, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait()
    outcome = load_outcome(record_dir, returncode, timed_out=timed_out,
                           duration_s=time.monotonic() - started, output_tail=tail.as_text())
    return RunResult(outcome, record_dir, returncode, timed_out)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _dump_and_kill(proc: subprocess.Popen, record_dir: Path) -> None:
    pid = None
    try:
        pid = int((record_dir / "claim").read_text())
    except (OSError, ValueError):
        pass
    if pid is not None and hasattr(signal, "SIGUSR1"):
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass
        # faulthandler writes from a signal handler: give it a moment to land.
        fault = record_dir / "fault.log"
        for _ in range(20):
            time.sleep(0.05)
            if fault.exists() and fault.stat().st_size > 0:
                time.sleep(0.05)
                break
    _signal_group(proc, signal.SIGKILL)
    if pid is not None and pid != proc.pid:
        # A recorded grandchild may live in its own session (setsid), out of the group's reach.
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
