"""Warm starts: recorded runs forked from a Python that has imported their heavy
dependencies already, so a run costs the run and not the interpreter's imports.

The pytest plugin's captures are the user: each failing test is re-run once, standalone
or under pytest, in a scratch copy of the project, and that run used to cost a whole
interpreter start plus the test's imports (numpy, pandas, pytest itself: most of a
second) for every failure. The first run for a key (a test file) is cold; what it
imported from site-packages becomes the preload list of a warm server for that key
(reprex/_inject/_reprex_warm.py), and the next runs of that key fork from it.

Fidelity rules: a warm child gets the run's environment, working directory, argv and
`sys.orig_argv`, and the recorder is armed in it with the preloaded list a cold start
would have had, so the preloaded modules still count as the run's imports (pinned
alike). Modules that are unsafe to fork after importing (they start threads or own
devices at import) are never preloaded. Anything odd falls back to a cold run.
`REPREX_WARM=0` turns warm starts off.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from reprex.record import INJECT_DIR

SERVER = "_reprex_warm"
# Imported only in the child: they start threads, hold devices or patch themselves at
# import (the recorder hooks ray's import), so a fork after importing them is unsafe or unfaithful.
NEVER_PRELOAD = frozenset({"ray", "tensorflow", "jax", "jaxlib", "grpc", "torch", "mpi4py", "cupy", "numba",
                           "sitecustomize", "usercustomize", "__main__", SERVER, "reprex", "pytest_reprex"})
PER_RUN_ENV = ("REPREX_RECORD_DIR", "TMPDIR")
READY_TIMEOUT_S = 60.0
MAX_SERVERS = 2


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get("REPREX_WARM", "1").strip().lower() not in ("0", "false", "no", "off") \
        and hasattr(os, "fork") and hasattr(socket, "send_fds")


def pytest_plugin_modules() -> set[str]:
    """Top-level modules of this interpreter's pytest plugins (entry points `pytest11`).
    pytest rewrites their asserts when it imports them; imported ahead, they would run
    unrewritten (and pytest would warn), so they are imported in the child as usual."""
    from importlib import metadata

    try:
        return {ep.value.split(":")[0].split(".")[0].strip() for ep in metadata.entry_points(group="pytest11")}
    except Exception:
        return set()


def preloads(modules: Mapping[str, str | None], exclude=frozenset()) -> list[str]:
    """The top-level modules of a cold run worth importing ahead: installed packages'."""
    out = []
    for name, file in sorted(modules.items()):
        if name in NEVER_PRELOAD or name in exclude or name.startswith("_reprex") or not name.isidentifier():
            continue
        if file and ("site-packages" in file or "dist-packages" in file):
            out.append(name)
    return out


class WarmProcess:
    """A forked run, seen from here the way subprocess.Popen shows a child."""

    def __init__(self, server: "Server", pid: int, stdout, stderr):
        self.server = server
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = None

    def _take(self, timeout: float | None) -> None:
        if self.returncode is not None:
            return
        message = self.server.receive(timeout)
        if message is None:
            return
        if "exit" not in message:
            raise RuntimeError(f"warm server: unexpected answer {message!r}")
        self.returncode = int(message["exit"])
        self.server.busy = False

    def poll(self):
        self._take(0)
        return self.returncode

    def wait(self, timeout: float | None = None):
        self._take(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired("warm run", timeout)
        return self.returncode


class Server:
    """One warm interpreter with its preloads, talking over a SOCK_SEQPACKET pair."""

    def __init__(self, python: str, env: Mapping[str, str], preload: list[str]):
        self.python = python
        self.preload = preload
        self.busy = False
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        server_env = {k: v for k, v in env.items() if k not in PER_RUN_ENV}
        try:
            self.proc = subprocess.Popen([python, "-m", SERVER, str(theirs.fileno()), *preload],
                                         cwd=str(INJECT_DIR), env=server_env, pass_fds=[theirs.fileno()],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        finally:
            theirs.close()
        self.ready = None  # the server's first message, once read

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        if self.ready is None:
            message = self.receive(timeout)
            if not message or not message.get("ready"):
                self.close()
                return False
            self.ready = message
        return True

    def receive(self, timeout: float | None) -> dict | None:
        if timeout is not None:
            readable, _, _ = select.select([self.sock], [], [], timeout)
            if not readable:
                return None
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("the warm server is gone")
        return json.loads(data)

    def spawn(self, argv: list[str], cwd, env: Mapping[str, str]) -> WarmProcess:
        if self.busy:
            raise RuntimeError("warm server busy")
        if os.path.realpath(argv[0]) != os.path.realpath(self.python) or len(argv) < 2:
            raise ValueError("not a run of this interpreter")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            job = {"args": argv[1:], "cwd": os.path.abspath(cwd or os.getcwd()), "env": dict(env),
                   "record_dir": env["REPREX_RECORD_DIR"], "preloaded": self.ready["preloaded"]}
            socket.send_fds(self.sock, [json.dumps(job).encode()], [out_w, err_w])
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        self.busy = True
        message = self.receive(READY_TIMEOUT_S)
        if not message or "pid" not in message:
            os.close(out_r)
            os.close(err_r)
            raise RuntimeError(f"warm server: no child ({message!r})")
        return WarmProcess(self, int(message["pid"]), os.fdopen(out_r, "rb", 0), os.fdopen(err_r, "rb", 0))

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()


class Warm:
    """Warm servers by key, learned from cold runs; `run` is run_recorded with warm starts."""

    def __init__(self, python: str | None = None, max_servers: int = MAX_SERVERS):
        self.python = python or sys.executable
        self.max_servers = max_servers
        self.servers: dict[str, Server] = {}
        self.env_keys: dict[str, tuple] = {}
        self.stats = {"warm": 0, "cold": 0, "fallback": 0}
        self.exclude: set[str] | None = None

    @staticmethod
    def _env_key(env: Mapping[str, str]) -> tuple:
        return tuple(sorted((k, v) for k, v in env.items() if k not in PER_RUN_ENV))

    def run(self, key: str, argv, *, cwd, env: Mapping[str, str], timeout: float | None = None, **kwargs):
        """reprex.recorded.run_recorded, forked from the key's warm server when there is one."""
        from reprex.recorded import recorder_env, run_recorded

        server = self.servers.get(key)
        usable = (server is not None and os.path.realpath(argv[0]) == os.path.realpath(self.python)
                  and self.env_keys.get(key) == self._env_key(env))
        if usable and server.wait_ready():
            try:
                result = run_recorded(argv, cwd=cwd, env=env, timeout=timeout, spawn=server.spawn, **kwargs)
                self.stats["warm"] += 1
                return result
            except (OSError, RuntimeError, ValueError, ConnectionError, json.JSONDecodeError):
                self.stats["fallback"] += 1
                self._drop(key)
        result = run_recorded(argv, cwd=cwd, env=env, timeout=timeout, **kwargs)
        self.stats["cold"] += 1
        if key not in self.servers and os.path.realpath(argv[0]) == os.path.realpath(self.python):
            if self.exclude is None:
                same = os.path.realpath(self.python) == os.path.realpath(sys.executable)
                self.exclude = pytest_plugin_modules() if same else set()
            wanted = preloads(result.outcome.modules, self.exclude)
            if wanted:
                self._start(key, recorder_env(env, Path(os.devnull)), wanted)
                self.env_keys[key] = self._env_key(env)
        return result

    def _start(self, key: str, env: Mapping[str, str], preload: list[str]) -> None:
        while len(self.servers) >= self.max_servers:
            self._drop(next(iter(self.servers)))
        try:
            self.servers[key] = Server(self.python, env, preload)
        except OSError:
            pass

    def _drop(self, key: str) -> None:
        server = self.servers.pop(key, None)
        if server is not None:
            try:
                server.close()
            except OSError:
                pass

    def close(self) -> None:
        for key in list(self.servers):
            self._drop(key)
