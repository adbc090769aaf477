"""A host-side backstop for one replay container, for when reprex itself can't clean up.

The run script's watchdog (inside the container) ends a run that outlives its timeout, but it
runs as the program's uid, so a hostile program can kill it. This one runs on the host, in a
session of its own (a Ctrl-C to reprex's process group doesn't reach it): a small detached
Python that holds the read end of a pipe from reprex. reprex writes "done" when it has dealt
with the container; if the pipe closes without that (reprex was SIGKILLed or died), the
watchdog removes the container; if the deadline passes first, it kills it. The process is
watchdog_child.py, a real module run by path; it speaks to the daemon through engine.py,
loaded by path (standard library only, no reprex import).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ENGINE_PY = Path(__file__).with_name("engine.py")
CHILD_PY = Path(__file__).with_name("watchdog_child.py")  # the watchdog process itself

_running: list[subprocess.Popen] = []


class Watchdog:
    def __init__(self, proc: subprocess.Popen | None):
        self.proc = proc

    def done(self) -> None:
        """reprex has dealt with the container (removed or kept it): the watchdog leaves."""
        proc, self.proc = self.proc, None
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(b"done\n")
            proc.stdin.close()
        except OSError:
            pass


def watch(engine, cid: str, deadline_s: float) -> Watchdog:
    """Start the backstop for container `cid` of the daemon `engine` speaks to. Best effort:
    a host that can't start it still has the run script's watchdog."""
    for proc in list(_running):  # reap the ones that left (no zombies in a long session)
        if proc.poll() is not None:
            _running.remove(proc)
    endpoint = {"host": engine.host, "tls_dir": str(engine.tls_dir) if getattr(engine, "tls_dir", None) else None,
                "verify": bool(getattr(engine, "tls_verify", False))}
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", str(CHILD_PY), str(ENGINE_PY), json.dumps(endpoint),
                                 cid, str(deadline_s)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, cwd="/",
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    except OSError:
        return Watchdog(None)
    _running.append(proc)
    return Watchdog(proc)
