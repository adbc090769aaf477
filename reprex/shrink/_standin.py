"""A line-level stand-in for reprex.shrink.inputs.shrink_input (same signature), used only
until that lands: drop chunks of lines while the oracle agrees."""

from __future__ import annotations

import time

from reprex.shrink.reduce import Judge, Stats, reduce_chunks


def shrink_input(name, data, interesting, *, jobs=1, budget=None, deadline=None, on_progress=None):
    started = time.monotonic()
    stats = Stats(before=len(data), after=len(data))
    judge = Judge(interesting, jobs=jobs, budget=budget, deadline=deadline, on_progress=on_progress, stats=stats)
    try:
        out = b"".join(reduce_chunks(data.splitlines(keepends=True), b"".join, judge))
    finally:
        judge.close()
    stats.after, stats.seconds = len(out), round(time.monotonic() - started, 3)
    return out, stats
