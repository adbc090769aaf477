"""Timing helpers shared by benchmarks/capture.py and its breakdown (capture_breakdown.py).

Wall time next to CPU time (user + sys of the command and its waited-for children), which a
shared machine disturbs much less.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from pathlib import Path


def clean_env(pycache: Path | None) -> dict[str, str]:
    """The user's environment minus reprex's own switches. With `pycache`, bytecode is cached
    there (PYTHONPYCACHEPREFIX) even where PYTHONDONTWRITEBYTECODE is set, as an installed
    wheel's .pyc files would be: otherwise an editable checkout recompiles every reprex
    module on every CLI start, which no user of a released reprex pays."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPREX_")}
    env.setdefault("REPROZIP_USAGE_STATS", "off")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(argv: list[str], cwd: Path, env: dict, expect: set[int] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its waited-for children)."""
    cpu0, start = children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    elapsed, cpu = time.perf_counter() - start, children_cpu() - cpu0
    if expect is not None and proc.returncode not in expect:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(argv)[:120]} exited {proc.returncode}: {' | '.join(tail)}")
    return elapsed, cpu


def importable(python: str, module: str, env: dict) -> bool:
    try:
        return subprocess.run([python, "-c", f"import {module}"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=120).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt_s(x: float) -> str:
    return f"{x:8.3f}"


def fmt_bytes(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{int(n)} B"
