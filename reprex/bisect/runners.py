"""Replay and resolver processes for the probes, so Ctrl-C can stop them.

Why processes: a signal reaches only the main thread, so a replay running in a worker thread
(a venv build, a container it waits on over the daemon's socket) would go on to its end while
the user waits. Each parallel probe is replayed instead by `reprex.scale.runner` (the child a
Ray worker keeps, for the same reason): one request per line, reprex imported once per
process. `cancel()` sends each busy one SIGTERM, which unwinds its replay as Ctrl-C unwinds
`reprex replay` (the run's process group killed, its container removed), and waits for them.
Probes replayed on the main thread (--jobs 1, the calibration) stay in this process: the
signal reaches them there; unless the installs need an environment of their own (--index-url):
then every replay is a runner's, started with that environment, as this process's is not changed.

A probe's resolution (`uv pip compile`, Resolutions) runs in a process group of its own for
the same reason: one in a worker thread would run on to its end while the interpreter, on its
way out, waits for that thread. `cancel()` kills them (a resolution leaves nothing to clean up).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

UNWIND_S = 20.0  # a cancelled replay's time to remove its container before it is killed


class Cancelled(BaseException):
    """The bisection was stopped while this probe replayed: it has no verdict (never logged)."""


class Runners:
    """A pool of replay processes, one per probe running at once; thread-safe. `environ`: theirs
    (None: this process's)."""

    def __init__(self, environ: dict[str, str] | None = None):
        self.environ = environ
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
        answered = False
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(sealed(bundle).to_zip_bytes())
            doc = self._ask(proc, {"path": path, "options": dataclasses.asdict(options)})
            answered = True
        finally:
            with contextlib.suppress(OSError):  # close() may have removed the folder already
                os.unlink(path)
            if answered:
                self._give_back(proc)
            # else (Ctrl-C in this thread, or a cancel): it stays busy, for cancel() or close() to stop
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
                from reprex.scale.task import start_runner

                # its own session: stopped by cancel(), in order; the installs' environment
                proc = start_runner(start_new_session=True, env=self.environ)
            self._busy.add(proc)
            return proc

    def _give_back(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._busy.discard(proc)
            if proc.poll() is None and not self.cancelled.is_set():
                self._idle.append(proc)

    def _ask(self, proc: subprocess.Popen, request: dict) -> dict:
        """The runner's answer; a cancel's SIGTERM ends the runner, and with it the wait."""
        from reprex.scale.task import ask

        doc = ask(proc, request)
        if self.cancelled.is_set():
            raise Cancelled()
        if doc is None:
            proc.kill()
            return {"error": f"the probe's replay process died (exit {proc.wait()})"}
        return doc

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
        """The idle runners leave (end of input), any still busy are stopped (SIGTERM, as by
        cancel()); the probes' folder goes."""
        with self._lock:
            idle, self._idle = list(self._idle), []
            busy = [p for p in self._busy if p.poll() is None]
        for proc in idle:
            _close_stdin(proc)
        for proc in busy:
            proc.send_signal(signal.SIGTERM)
        _wait_all(idle, 5.0)
        _wait_all(busy, UNWIND_S)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)


class Resolutions:
    """The probes' resolutions (`uv pip compile`) running now, each in a process group of its own,
    with the installs' environment (`environ`; None: this process's); thread-safe. cancel() kills
    them all, and no resolution starts afterwards."""

    def __init__(self, environ: dict[str, str] | None = None):
        self.environ = environ
        self.cancelled = threading.Event()
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def compile(self, args: list[str], timeout: float | None, input: str) -> subprocess.CompletedProcess | None:
        """`uv pip compile ARGS` with the host pip's indexes (reprex.installer's translation, made
        from `environ`), `input` on stdin: its CompletedProcess (text), None without uv.
        subprocess.TimeoutExpired past `timeout`, OSError when uv can't start (for the caller to
        word); Cancelled when cancel() killed it, a signal's exception (Ctrl-C here) after killing it."""
        from reprex import installer

        found = installer.uv()
        if found is None:
            return None
        environ = dict(os.environ if self.environ is None else self.environ)
        argv = [found, "pip", "compile", *installer.uv_config_args(environ), *args]
        with self._lock:
            if self.cancelled.is_set():
                raise Cancelled()
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=installer.uv_environ(environ), start_new_session=True,
                                    cwd=installer.UV_CWD)
            self._running.add(proc)
        with proc:  # its pipes closed and the process reaped, however this ends
            try:
                out, err = proc.communicate(input, timeout=timeout)
            except BaseException:  # its timeout, or Ctrl-C in this (the main) thread
                _kill_group(proc)
                raise
            finally:
                with self._lock:
                    self._running.discard(proc)
        if self.cancelled.is_set():
            raise Cancelled()
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled.set()
            running = list(self._running)
        for proc in running:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL to the process and whatever it started (its own session's group)."""
    if proc.returncode is None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)


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
