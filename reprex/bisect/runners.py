"""Replay processes for the probes `--jobs N` runs at once, so Ctrl-C can stop them.

Why processes: a signal reaches only the main thread, so a replay running in a worker thread
(a venv build, a container it waits on over the daemon's socket) would go on to its end while
the user waits. Each parallel probe is replayed instead by `reprex.scale.runner` (the child a
Ray worker keeps, for the same reason): one request per line, reprex imported once per
process. `cancel()` sends each busy one SIGTERM, which unwinds its replay as Ctrl-C unwinds
`reprex replay` (the run's process group killed, its container removed), and waits for them.
Probes replayed on the main thread (--jobs 1, the calibration) stay in this process: the
signal reaches them there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

UNWIND_S = 20.0  # a cancelled replay's time to remove its container before it is killed


class Cancelled(BaseException):
    """The bisection was stopped while this probe replayed: it has no verdict (never logged)."""


class Runners:
    """A pool of replay processes, one per probe running at once; thread-safe."""

    def __init__(self):
        self._idle: list[subprocess.Popen] = []
        self._busy: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.cancelled = threading.Event()
        self._dir: str | None = None  # the probes' bundles (0700), made on first use

    def replay(self, bundle, options):
        """`bundle` replayed with `options` in a runner process: a ReplayResult (infra-error when
        the process died on its own); Cancelled when cancel() stopped it."""
        from reprex.scale.judge import sealed

        proc = self._take()
        with self._lock:
            self._dir = self._dir or tempfile.mkdtemp(prefix="reprex-bisect-")
        fd, path = tempfile.mkstemp(suffix=".reprex.zip", dir=self._dir)
        started = time.monotonic()
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(sealed(bundle).to_zip_bytes())
            doc = self._ask(proc, {"path": path, "options": dataclasses.asdict(options)})
        finally:
            with contextlib.suppress(OSError):  # close() may have removed the folder already
                os.unlink(path)
            self._give_back(proc)
        return _result(doc, bundle, time.monotonic() - started)

    def _take(self) -> subprocess.Popen:
        with self._lock:
            if self.cancelled.is_set():
                raise Cancelled()
            while self._idle:
                proc = self._idle.pop()
                if proc.poll() is None:
                    break
            else:
                proc = subprocess.Popen([sys.executable, "-m", "reprex.scale.runner"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, cwd=tempfile.gettempdir(),
                                        start_new_session=True)  # stopped by cancel(), in order
            self._busy.add(proc)
            return proc

    def _give_back(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._busy.discard(proc)
            if proc.poll() is None and not self.cancelled.is_set():
                self._idle.append(proc)

    def _ask(self, proc: subprocess.Popen, request: dict) -> dict:
        """The runner's answer line; a cancel's SIGTERM ends the runner, and with it the wait."""
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except (BrokenPipeError, OSError, ValueError):
            line = b""
        if self.cancelled.is_set():
            raise Cancelled()
        if not line.endswith(b"\n"):
            proc.kill()
            return {"error": f"the probe's replay process died (exit {proc.wait()})"}
        try:
            doc = json.loads(line)
        except ValueError:
            doc = None
        return doc if isinstance(doc, dict) else {"error": "the probe's replay process answered garbage"}

    def cancel(self, grace_s: float = UNWIND_S) -> None:
        """Stop every running replay (SIGTERM: each unwinds and cleans up), waiting up to `grace_s`
        for them, then kill what is left. No probe starts afterwards."""
        with self._lock:
            self.cancelled.set()
            busy, idle = list(self._busy), list(self._idle)
            self._idle.clear()
        for proc in busy:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in idle:
            _close_stdin(proc)
        _wait_all(busy + idle, grace_s)

    def close(self) -> None:
        """The idle runners leave (end of input); the probes' folder goes."""
        with self._lock:
            idle, self._idle = list(self._idle), []
        for proc in idle:
            _close_stdin(proc)
        _wait_all(idle, 5.0)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)


def _close_stdin(proc: subprocess.Popen) -> None:
    try:
        proc.stdin.close()
    except OSError:
        pass


def _wait_all(procs: list[subprocess.Popen], grace_s: float) -> None:
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _result(doc: dict, bundle, seconds: float):
    """The runner's answer as the ReplayResult an in-process replay gives."""
    from types import SimpleNamespace

    from reprex.scale.judge import from_scale

    result = doc.get("result") if isinstance(doc.get("result"), dict) else None
    verdict = result.get("verdict") if result and isinstance(result.get("verdict"), str) else "infra-error"
    reason = str((result or {}).get("reason") or doc.get("error") or "")
    return from_scale(SimpleNamespace(result=result, verdict=verdict, reason=reason, seconds=seconds, node="",
                                      node_ip="", attempts=1), bundle)
