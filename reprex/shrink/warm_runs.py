"""Warm starts for shrink's local candidate runs (reprex.warm's fork servers).

A candidate run on the local backend is one interpreter start, the recorder's and the
repro's imports, then the repro; shrinking asks for hundreds of them. Forked from a
server that has the interpreter up and the original run's site-packages modules imported
(never those reprex.warm calls unsafe to fork), a run costs the repro and the record.

Differences from the plugin's use: each local run has a fresh HOME (a scratch dir), so
HOME is a per-run value here; a server is started even with nothing to preload (the
interpreter's and the recorder's start are still saved); as many servers as runs at
once (a server runs one job at a time), per interpreter (a pin change is another venv).
A run whose PYTHONPATH is set runs cold: the server's sys.path would keep another run's
work dir. `REPREX_WARM=0` turns it off, as for the plugin.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from reprex.warm import PER_RUN_ENV, Warm, preloads

KEY = "shrink"
MAX_FALLBACKS = 3  # a server that keeps failing: that thread runs cold from then on


class _Warm(Warm):
    @staticmethod
    def _env_key(env) -> tuple:
        return tuple(sorted((k, v) for k, v in env.items() if k not in PER_RUN_ENV and k != "HOME"))


class WarmRuns:
    """A drop-in for reprex.recorded.run_recorded (LocalBackend.runner)."""

    def __init__(self, modules: dict | None):
        self.preload = preloads(modules or {})
        self._idle: dict[str, list[Warm]] = {}  # interpreter -> servers not running a job now
        self._all: list[Warm] = []
        self._lock = threading.Lock()

    def _take(self, python: str) -> Warm:
        with self._lock:
            idle = self._idle.setdefault(python, [])
            if idle:
                return idle.pop()
            warm = _Warm(python, max_servers=1)
            self._all.append(warm)
            return warm

    def __call__(self, argv, *, cwd, env, timeout=None, **kwargs):
        from reprex.recorded import recorder_env, run_recorded

        if "PYTHONPATH" in env:
            return run_recorded(argv, cwd=cwd, env=env, timeout=timeout, **kwargs)
        warm = self._take(argv[0])
        try:
            if warm.stats["fallback"] >= MAX_FALLBACKS:
                return run_recorded(argv, cwd=cwd, env=env, timeout=timeout, **kwargs)
            if KEY not in warm.servers:
                warm._start(KEY, recorder_env(env, Path(os.devnull)), self.preload)
                warm.env_keys[KEY] = warm._env_key(env)
            return warm.run(KEY, argv, cwd=cwd, env=env, timeout=timeout, **kwargs)
        finally:
            with self._lock:
                self._idle[argv[0]].append(warm)

    def stats(self) -> dict:
        out = {"warm": 0, "cold": 0, "fallback": 0}
        with self._lock:
            for warm in self._all:
                for k, v in warm.stats.items():
                    out[k] = out.get(k, 0) + v
        return out

    def close(self) -> None:
        with self._lock:
            for warm in self._all:
                warm.close()
            self._all.clear()
