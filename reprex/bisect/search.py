"""Where along an ordered list the failure starts: the search, apart from what a probe is.

Pure (no I/O of its own): a `test` judges one candidate GOOD, BAD or SKIP, as `git bisect
run` does with exit codes. Releases are a finite list, so it is split from the middle;
dates step back 1, 2, 4... weeks first (dates.py). A skipped candidate is never blamed: the search goes around it,
and when skips leave the boundary among several candidates they are all named
(`Found.ambiguous`). With `jobs > 1` a round probes several candidates at once (speculative
k-ary splits): more probes in all, fewer rounds of waiting.
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

from reprex.errors import ReprexError

GOOD, BAD, SKIP = "good", "bad", "skip"
VERDICTS = (GOOD, BAD, SKIP)

T = TypeVar("T")
Test = Callable[[T], "tuple[str, str]"]  # item -> (GOOD|BAD|SKIP, reason)


class BisectError(ReprexError):
    """A bisection that can't start: bad input, or a baseline that did not judge as told."""


@dataclass
class Step:
    label: str
    verdict: str
    reason: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"label": self.label, "verdict": self.verdict, "reason": self.reason,
                "seconds": round(self.seconds, 3)}


@dataclass
class Found:
    first_bad: Any | None
    last_good: Any | None
    steps: list[Step] = field(default_factory=list)  # every probe, in the order run
    skipped: list[tuple[Any, str]] = field(default_factory=list)  # never blamed
    ambiguous: list[Any] = field(default_factory=list)  # skips left the boundary among these
    reason: str = ""  # why nothing was found, when first_bad is None

    @property
    def probes(self) -> int:
        return len(self.steps)


def run_batch(items: Sequence[T], test: Test, label: Callable[[T], str], jobs: int) -> list[Step]:
    """Judge `items` (in parallel up to `jobs`), one Step each in the order given; an exception
    from `test` as pool_map says."""
    def one(item: T) -> Step:
        start = time.monotonic()
        verdict, reason = test(item)
        if verdict not in VERDICTS:
            raise ValueError(f"a bisect test returned {verdict!r}, not one of {VERDICTS}")
        return Step(label(item), verdict, reason or "", time.monotonic() - start)

    return pool_map(one, items, jobs)


R = TypeVar("R")


def pool_map(fn: Callable[[T], R], items: Sequence[T], jobs: int) -> list[R]:
    """`fn` of each item, in up to `jobs` threads, in the order given. An exception from `fn` (the
    oracle's infra trouble) propagates once the others end; a signal's (Ctrl-C: a BaseException
    in this thread) at once, without waiting for them: whoever runs the probes stops them
    (Oracle.cancel), or the user would wait out every running replay and resolution."""
    if jobs <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    pool = ThreadPoolExecutor(max_workers=min(jobs, len(items)), thread_name_prefix="reprex-bisect")
    try:
        out = list(pool.map(fn, items))
    except Exception:
        pool.shutdown(wait=True)
        raise
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return out


Judge = Callable[[list[int]], list[str]]  # indices -> verdicts, same order


@dataclass
class Bounds:
    """What a search over indices ended with: `lo` the last good (None: none found), `hi` the
    first bad (None: the bad end wasn't bad), `skipped` the indices judged SKIP, and `why`
    ("" when a boundary was found, else "bad-end", "good-end" or "no-good")."""
    lo: int | None
    hi: int | None
    skipped: set[int]
    why: str = ""


def search(judge: Judge, *, bad: int, good: int | None, jobs: int = 1, step_back: bool = False, stride: int = 1,
           neighbours: bool = True, known: dict[int, str] | None = None) -> Bounds:
    """The first bad index at or below `bad`. Baselines first: `bad` must judge BAD and a given
    `good` must not. Without `good`, the range below `bad` is split as if a good end sat just
    below index 0 (never probed: the oldest is only asked when everything above it is bad).
    With `step_back` (dates), or when the given good end was skipped, the search first steps
    back `stride` x 1, 2, 4... until one judges GOOD, a skip asking its older neighbour
    (`neighbours`; else the next step: the day before a day with no resolution rarely has
    one). The range is split `jobs` points a round. `known`: verdicts already judged."""
    verdicts: dict[int, str] = dict(known or {})
    skipped: set[int] = {i for i, v in verdicts.items() if v == SKIP}

    def ask(indices: list[int]) -> None:
        todo = [i for i in dict.fromkeys(indices) if i not in verdicts]
        if todo:
            for i, verdict in zip(todo, judge(todo)):
                verdicts[i] = verdict
                if verdict == SKIP:
                    skipped.add(i)

    ask([bad] if good is None else [bad, good])
    if verdicts[bad] != BAD:
        return Bounds(None, None, skipped, "bad-end")
    hi, lo = bad, -1  # -1: the virtual good end below the oldest
    if good is not None and verdicts[good] == BAD:
        return Bounds(None, bad, skipped, "good-end")
    if good is not None and verdicts[good] == GOOD:
        lo = good
    elif good is not None or step_back:
        found, hi = _step_back(bad if good is None else good, hi, verdicts, ask, jobs, stride, neighbours)
        if found is None:
            return Bounds(None, hi, skipped, "no-good")
        lo = found
    while True:
        inner = [i for i in range(lo + 1, hi) if i not in skipped]
        if not inner:
            return Bounds(lo, hi, skipped) if lo >= 0 else Bounds(None, hi, skipped, "no-good")
        points = _split_points(inner, skipped, jobs)
        ask(points)
        hi = min([hi, *(i for i in points if verdicts[i] == BAD)])
        lo = max([lo, *(i for i in points if verdicts[i] == GOOD and i < hi)])


def _split_points(inner: list[int], skipped: set[int], jobs: int) -> list[int]:
    """Where to probe next among the untested `inner` indices: the median (`jobs` evenly spaced
    points when parallel). A median next to a skip would creep through a run of skips one at a
    time (skips come in runs: releases without a wheel, days that resolve alike), so then the
    median of the longest untested run is asked instead."""
    k = min(max(jobs, 1), len(inner))
    if k > 1:
        return sorted({inner[(j + 1) * len(inner) // (k + 1)] for j in range(k)})
    mid = inner[len(inner) // 2]
    if mid - 1 not in skipped and mid + 1 not in skipped:
        return [mid]
    runs: list[list[int]] = [[inner[0]]]
    for i in inner[1:]:
        if i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    longest = max(runs, key=len)
    return [longest[len(longest) // 2]]


def _step_back(origin: int, hi: int, verdicts: dict[int, str], ask: Callable[[list[int]], None], jobs: int,
               stride: int, neighbours_on_skip: bool = True) -> tuple[int | None, int]:
    """(last good, first bad) found stepping back from `origin` 1, 2, 4... (x `stride`), as
    cargo-bisect-rustc searches back for a good start; (None, first bad) when index 0 is passed
    without a GOOD."""
    offsets = (stride << k for k in itertools.count())
    neighbours: list[int] = []
    exhausted = False
    while True:
        points: list[int] = []
        while len(points) < max(jobs, 1):
            if neighbours:
                p = neighbours.pop(0)
            elif not exhausted:
                p = max(origin - next(offsets), 0)
                exhausted = p == 0
            else:
                break
            if p < hi and p not in verdicts and p not in points:
                points.append(p)
        if not points:
            return None, hi
        ask(points)
        hi = min([hi, *(p for p in points if verdicts[p] == BAD)])
        goods = [p for p in points if verdicts[p] == GOOD and p < hi]
        if goods:
            return max(goods), hi
        wanted = neighbours + [p - 1 for p in points if verdicts[p] == SKIP and neighbours_on_skip]
        neighbours = sorted({p for p in wanted if 0 <= p < hi and p not in verdicts}, reverse=True)


def first_bad(candidates: Sequence[T], test: Test, *, bad: int | None = None, good: int | None = None,
              jobs: int = 1, label: Callable[[T], str] = str) -> Found:
    """The first candidate (oldest first) that judges BAD, with the last GOOD before it.

    `bad` defaults to the newest. With `good` unknown the listed range is split from the middle
    (its oldest is probed only if everything above it is bad): stepping back 1, 2, 4... from
    `bad` costs about twice log2 of the distance to the last good release, which breaks the
    budget of ceil(log2(releases from the oldest probed to `bad`)) + 2 once that release is more
    than a few back, as it is when a bundle pins this year's release of last year's break.
    Splitting the list keeps within it wherever the break is. Every probe is a Step; SKIPs are
    listed and never blamed.
    """
    n = len(candidates)
    if n == 0:
        return Found(None, None, reason="no candidates to bisect")
    bad = n - 1 if bad is None else bad
    if not 0 <= bad < n:
        raise BisectError(f"the bad index {bad} is outside the {n} candidates")
    if good is not None and not 0 <= good < bad:
        raise BisectError(f"the good candidate must be older than the bad one (index {good} vs {bad})")
    steps: list[Step] = []
    reasons: dict[int, str] = {}

    def judge(indices: list[int]) -> list[str]:
        batch = run_batch([candidates[i] for i in indices], test, label, jobs)
        steps.extend(batch)
        reasons.update((i, step.reason) for i, step in zip(indices, batch))
        return [step.verdict for step in batch]

    bounds = search(judge, bad=bad, good=good, jobs=jobs)
    return found_from(bounds, candidates, steps, reasons, label, bad=bad, good=good)


def found_from(bounds: Bounds, candidates: Sequence[T], steps: list[Step], reasons: dict[int, str],
               label: Callable[[T], str] = str, *, bad: int, good: int | None = None) -> Found:
    """A Found over `candidates` from a search's index bounds, its reason worded with labels."""
    skipped = [(candidates[i], reasons.get(i, "")) for i in sorted(bounds.skipped)]
    if bounds.why:
        said = {s.label: s for s in steps}
        if bounds.why == "bad-end":
            step = said.get(label(candidates[bad]))
            why = f"the bad end {label(candidates[bad])} judged {step.verdict if step else '?'}"
            why += f" ({step.reason})" if step and step.reason else ""
        elif bounds.why == "good-end":
            why = f"the good end {label(candidates[good])} judged bad"
        else:
            oldest = min((i for i in reasons if i not in bounds.skipped), default=bounds.hi)
            why = (f"no good candidate: every one tried from {label(candidates[oldest])} to "
                   f"{label(candidates[bad])} judged bad or was skipped")
        return Found(None, None, steps, skipped, reason=why)
    lo, hi = bounds.lo, bounds.hi
    between = [i for i in range(lo + 1, hi) if i in bounds.skipped]
    ambiguous = [candidates[i] for i in [*between, hi]] if between else []
    return Found(candidates[hi], candidates[lo], steps, skipped, ambiguous)
