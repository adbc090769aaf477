"""Run probes concurrently, each bounded by a timeout; never raise.

Each probe runs in its own daemon thread, so the total time is about the slowest probe
and a probe that overruns is abandoned (a daemon thread cannot hold up interpreter exit;
its subprocesses are capped by the same deadline in _proc). A probe's outcome is always
one of ok / failed / skipped with a one-line error.
"""

from __future__ import annotations

import json
import threading
import time
from importlib import metadata
from typing import Any, Callable, Iterable

from . import _proc, cuda, envvars, gpu, interpreter, packages, rayinfo, system
from ._base import ProbeContext, ProbeSkipped

ENTRY_POINT_GROUP = "reprex.probes"

BUILTIN_PROBES: dict[str, Callable[[ProbeContext], Any]] = {
    "python": interpreter.probe,
    "platform": system.probe,
    "packages": packages.probe,
    "gpu": gpu.probe,
    "cuda": cuda.probe,
    "env": envvars.probe,
    "ray": rayinfo.probe,
}


class EntryPointProbe:
    """A plugin probe, loaded only when run: a broken plugin fails its own probe, inside the timeout."""

    def __init__(self, entry_point: metadata.EntryPoint):
        self.entry_point = entry_point
        self.__name__ = entry_point.name

    def __call__(self, ctx: ProbeContext) -> Any:
        fn = self.entry_point.load()
        if not callable(fn):
            raise TypeError(f"entry point {self.entry_point.value!r} is not callable")
        return fn(ctx)

    def __repr__(self) -> str:
        return f"<EntryPointProbe {self.entry_point.name} = {self.entry_point.value}>"


def available_probes() -> dict[str, Callable[[ProbeContext], Any]]:
    """Built-in probes plus entry points in group "reprex.probes" (built-in names win)."""
    probes: dict[str, Callable[[ProbeContext], Any]] = dict(BUILTIN_PROBES)
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # broken metadata somewhere on sys.path must not break capture
        return probes
    for ep in sorted(eps, key=lambda e: e.name):
        probes.setdefault(ep.name, EntryPointProbe(ep))
    return probes


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def _result(status: str, value: Any = None, error: str | None = None, duration: float = 0.0) -> dict:
    return {"status": status, "value": value, "error": error, "duration_s": round(duration, 4)}


def _call(fn: Callable[[ProbeContext], Any], ctx: ProbeContext, deadline: float, slot: dict) -> None:
    start = time.monotonic()
    _proc.set_deadline(deadline)
    try:
        value = fn(ctx)
        json.dumps(value)  # the bundle writer must be able to store it
        slot["result"] = _result("ok", value, None, time.monotonic() - start)
    except ProbeSkipped as exc:
        slot["result"] = _result("skipped", None, str(exc) or "skipped", time.monotonic() - start)
    except BaseException as exc:  # noqa: BLE001 - a probe, even a plugin calling sys.exit, never breaks capture
        slot["result"] = _result("failed", None, one_line(exc), time.monotonic() - start)
    finally:
        _proc.set_deadline(None)


def run_probes(ctx: ProbeContext, *, only: Iterable[str] | None = None, timeout: float = 10.0) -> dict[str, dict]:
    """name -> {"status": "ok"|"failed"|"skipped", "value": ..., "error": str|None, "duration_s": float}"""
    try:
        probes = available_probes()
    except Exception:
        probes = dict(BUILTIN_PROBES)
    if isinstance(only, str):
        only = [only]
    names = list(dict.fromkeys(only)) if only is not None else list(probes)
    start = time.monotonic()
    deadline = start + timeout
    results: dict[str, dict] = {}
    running: dict[str, tuple[threading.Thread, dict]] = {}
    for name in names:
        fn = probes.get(name)
        if fn is None:
            results[name] = _result("failed", None, f"unknown probe {name!r}")
            continue
        slot: dict = {}
        thread = threading.Thread(target=_call, args=(fn, ctx, deadline, slot), name=f"reprex-probe-{name}", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # can't start new thread
            results[name] = _result("failed", None, one_line(exc))
            continue
        running[name] = (thread, slot)
    for name, (thread, slot) in running.items():
        thread.join(max(0.0, deadline - time.monotonic()))
        if "result" in slot:
            results[name] = slot["result"]
        else:
            results[name] = _result("failed", None, f"timed out after {timeout:g}s", time.monotonic() - start)
    return {name: results[name] for name in sorted(results)}
