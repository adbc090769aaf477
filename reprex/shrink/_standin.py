"""Line-level stand-ins for reprex.shrink.script / reprex.shrink.inputs, used only until those
land (same signatures): drop chunks of lines, back to front, while the oracle agrees."""

from __future__ import annotations

import time
from dataclasses import dataclass

from reprex.shrink.pins import drop_chunks


@dataclass
class Stats:
    calls: int = 0
    cache_hits: int = 0
    interesting: int = 0
    seconds: float = 0.0
    before: int = 0
    after: int = 0


def _lines(data, interesting, budget, deadline, joiner, valid=lambda c: True):
    started, stats = time.monotonic(), Stats(before=len(data))
    lines = data.splitlines(keepends=True)

    def ok(candidate):
        if (budget is not None and stats.calls >= budget) or (deadline and time.monotonic() > deadline):
            return False
        if not valid(joiner(candidate)):
            return False
        stats.calls += 1
        good = interesting(joiner(candidate))
        stats.interesting += good
        return good

    out = joiner(drop_chunks(lines, ok))
    stats.after, stats.seconds = len(out), time.monotonic() - started
    return out, stats


def shrink_script(source, interesting, *, jobs=1, budget=None, deadline=None, on_progress=None):
    def valid(text):
        try:
            compile(text, "<candidate>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            return False
        return True

    return _lines(source, interesting, budget, deadline, "".join, valid)


def shrink_input(name, data, interesting, *, jobs=1, budget=None, deadline=None, on_progress=None):
    return _lines(data, interesting, budget, deadline, b"".join)
