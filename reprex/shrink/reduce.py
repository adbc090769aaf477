"""The reduction core: which candidates to ask the oracle about, and in what order.

Pure: no replay, no files. A `Judge` wraps the caller's oracle with a memo keyed by the
candidate's hash, a call budget, a deadline and a thread pool; `reduce_chunks` removes
chunks of a list by adaptive group testing, back to front. It is Lithium's halving with
the chunk size chosen from the density of needed chunks seen so far (Hwang's generalized
binary splitting): about m*log2(n/m) + 2m calls for m needed of n, where fixed halving
spends ~1.5x that on scattered needs. With `jobs > 1` the next few questions on both
branches of the answer tree are asked at once (speculation), so a wall-clock step costs
one oracle call while the call count grows by what was guessed wrong.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

Candidate = str | bytes
Interesting = Callable[[Candidate], bool]
T = TypeVar("T")


@dataclass
class Stats:
    """What a reduction cost and achieved; sizes are bytes (UTF-8 for text)."""

    calls: int = 0
    cache_hits: int = 0
    interesting: int = 0
    seconds: float = 0.0
    before: int = 0
    after: int = 0
    statements_before: int | None = None
    statements_after: int | None = None
    passes: dict[str, int] = field(default_factory=dict)  # oracle calls per pass

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class Exhausted(Exception):
    """The call budget or the deadline ran out; the best result so far stands."""


def size_of(candidate: Candidate) -> int:
    return len(candidate.encode() if isinstance(candidate, str) else candidate)


def digest(candidate: Candidate) -> str:
    data = candidate.encode("utf-8", "surrogatepass") if isinstance(candidate, str) else candidate
    return hashlib.sha256(data).hexdigest()


class Judge:
    """The caller's oracle behind a memo, a budget, a deadline and `jobs` threads.

    Also keeps the best (smallest) interesting candidate seen, so a reduction cut short
    by the budget still returns something the oracle accepted.
    """

    def __init__(self, interesting: Interesting, *, jobs: int = 1, budget: int | None = None,
                 deadline: float | None = None, on_progress: Callable[[dict], None] | None = None,
                 stats: Stats | None = None):
        self.interesting = interesting
        self.jobs = max(1, int(jobs))
        self.budget = budget
        self.deadline = deadline  # a time.monotonic() value
        self.on_progress = on_progress
        self.stats = stats or Stats()
        self.memo: dict[str, bool] = {}
        self.phase = "start"
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="reprex-shrink") if self.jobs > 1 else None
        self._started = time.monotonic()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def known(self, candidate: Candidate) -> bool | None:
        return self.memo.get(digest(candidate))

    def _left(self) -> int:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return 0
        if self.budget is None:
            return 1 << 30
        return max(0, self.budget - self.stats.calls)

    def check(self) -> None:
        """Raise Exhausted once no call is left (long walks stop instead of building candidates)."""
        if self._left() <= 0:
            raise Exhausted()

    def out_of_time(self) -> bool:
        """Has the deadline passed? A walk answered from the memo alone asks no call, so only this
        stops it (an input of one repeated byte: every candidate of a size is the same bytes)."""
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _call(self, candidate: Candidate) -> bool:
        try:
            ok = bool(self.interesting(candidate))
        except Exception:  # an oracle that breaks on one candidate judges it uninteresting
            ok = False
        return ok

    def ask_many(self, candidates: Sequence[Candidate]) -> list[bool]:
        """Judge candidates (in parallel when jobs > 1); raise Exhausted only if none could be asked."""
        keys = [digest(c) for c in candidates]
        fresh: dict[str, Candidate] = {}
        for key, cand in zip(keys, candidates):
            if key in self.memo or key in fresh:
                self.stats.cache_hits += 1
            else:
                fresh[key] = cand
        if fresh:
            room = self._left()
            if room <= 0:
                raise Exhausted()
            todo = list(fresh.items())[:room]
            if self._pool is not None and len(todo) > 1:
                results = list(self._pool.map(self._call, [c for _, c in todo]))
            else:
                results = [self._call(c) for _, c in todo]
            with self._lock:
                for (key, cand), ok in zip(todo, results):
                    self.memo[key] = ok
                    self.stats.calls += 1
                    self.stats.passes[self.phase] = self.stats.passes.get(self.phase, 0) + 1
                    if ok:
                        self.stats.interesting += 1
            self._report()
        answers = []
        for key in keys:
            if key not in self.memo:
                raise Exhausted()
            answers.append(self.memo[key])
        return answers

    def ask(self, candidate: Candidate) -> bool:
        return self.ask_many([candidate])[0]

    def first(self, candidates: Sequence[Candidate]) -> int | None:
        """Index of the first interesting candidate (asked `jobs` at a time), or None."""
        for start in range(0, len(candidates), self.jobs):
            batch = candidates[start:start + self.jobs]
            try:
                answers = self.ask_many(batch)
            except Exhausted:
                # budget for only part of the batch: ask one at a time until it runs out
                answers = []
                for cand in batch:
                    answers.append(self.ask(cand))
            for i, ok in enumerate(answers):
                if ok:
                    return start + i
        return None

    def _report(self, **extra) -> None:
        if self.on_progress is None:
            return
        info = {"phase": self.phase, "calls": self.stats.calls, "cache_hits": self.stats.cache_hits,
                "interesting": self.stats.interesting, "size": self.stats.after,
                "seconds": round(time.monotonic() - self._started, 3), **extra}
        try:
            self.on_progress(info)
        except Exception:
            pass

    def improved(self, size: int) -> None:
        self.stats.after = size
        self._report(improved=True)


def run_reduction(original: Candidate, reduce: Callable[[Judge], Candidate], interesting: Interesting, *,
                  stats: Stats | None = None, jobs: int = 1, budget: int | None = None,
                  deadline: float | None = None, on_progress: Callable[[dict], None] | None = None,
                  ) -> tuple[Candidate, Stats]:
    """One reduction with its own judge: the result is never larger than the original, and a
    budget or deadline that runs out leaves the best found so far."""
    started = time.monotonic()
    stats = stats or Stats()
    stats.before = stats.after = size_of(original)
    judge = Judge(interesting, jobs=jobs, budget=budget, deadline=deadline, on_progress=on_progress, stats=stats)
    best = original
    try:
        best = reduce(judge)
    except Exhausted:
        pass
    finally:
        judge.close()
    if size_of(best) >= size_of(original):
        best = original
    stats.after = size_of(best)
    stats.seconds = round(time.monotonic() - started, 3)
    return best, stats


@dataclass(frozen=True)
class _Split:
    """Group-testing state over chunk indices; immutable so speculation can branch it."""

    undecided: tuple[int, ...]
    dropped: frozenset[int] = frozenset()
    kept: frozenset[int] = frozenset()
    group: tuple[int, ...] | None = None  # a set known to hold a needed chunk, being bisected
    removed: int = 0
    found: int = 0
    probed: bool = False  # "drop them all" was asked and refused
    gallop: bool = False  # after that, find the last needed chunk by doubling groups, not bisecting

    def done(self) -> bool:
        return not self.undecided and self.group is None

    def question(self) -> frozenset[int]:
        """The chunks to drop (on top of `dropped`) in the next candidate."""
        if self.group is not None:
            return frozenset(self.group[len(self.group) // 2:])
        return frozenset(self.undecided[len(self.undecided) - self._group_size():])

    def _group_size(self) -> int:
        n = len(self.undecided)
        if self.found == 0 and not self.probed:
            return n  # first: everything (the file may not matter at all)
        # then (gallop, or once one is found) groups sized by the gap between needed chunks so far
        gap = (self.removed + self.found) / max(1, self.found)
        return min(n, 1 << max(0, int(math.log2(max(1.0, gap)))))

    def answer(self, ok: bool) -> _Split:
        asked = self.question()
        step = functools.partial(replace, self, probed=True)
        if self.group is None:
            n = len(self.undecided)
            g = self._group_size()
            head, grp = self.undecided[:n - g], self.undecided[n - g:]
            if ok:
                return step(undecided=head, dropped=self.dropped | asked, removed=self.removed + g)
            if g == 1:
                return step(undecided=head, kept=self.kept | asked, found=self.found + 1)
            if self.gallop and not self.probed and self.found == 0:
                return step()  # not all droppable: look for the last needed chunk from the back
            return step(undecided=head, group=grp)
        half = len(self.group) // 2
        front, back = self.group[:half], self.group[half:]
        if ok:
            state = step(dropped=self.dropped | asked, group=front, removed=self.removed + len(back))
        elif len(back) == 1:
            # back holds the needed chunk; front goes back to the undecided pile
            return step(undecided=self.undecided + front, kept=self.kept | asked, group=None, found=self.found + 1)
        else:
            state = step(undecided=self.undecided + front, group=back)
        if state.group is not None and len(state.group) == 1:
            # a one-chunk group known to hold a needed chunk: kept without asking
            return replace(state, kept=state.kept | set(state.group), group=None, found=state.found + 1)
        return state


class _Chunks(Generic[T]):
    """The chunks and the candidates recently built from them (a few: each is a whole file)."""

    def __init__(self, chunks: Sequence[T], build: Callable[[list[T]], Candidate | None], keep: int):
        self.chunks = list(chunks)
        self.build_fn = build
        self.keep = keep
        self._cache: dict[frozenset[int], Candidate | None] = {}

    def build(self, dropped: frozenset[int]) -> Candidate | None:
        if dropped not in self._cache:
            kept = [c for i, c in enumerate(self.chunks) if i not in dropped]
            try:
                built = self.build_fn(kept)
            except Exception:
                built = None
            while len(self._cache) >= self.keep:
                del self._cache[next(iter(self._cache))]
            self._cache[dropped] = built
        return self._cache[dropped]


def reduce_chunks(chunks: Sequence[T], build: Callable[[list[T]], Candidate | None], judge: Judge, *,
                  dense: bool = False, keep: Iterable[int] = (), gallop: bool = False) -> list[T]:
    """Drop what the oracle lets go of; `build` returns None for a candidate that isn't valid
    (it costs no call and counts as uninteresting). Returns the kept chunks, in order.

    `dense`: expect most chunks to be needed (a list already reduced once), so start by
    asking one chunk at a time (m calls) instead of bisecting (about 2m). `keep`: indices
    kept without asking (the caller knows them needed from an earlier round). `gallop`: the
    last chunk is likely needed (a script's statements: the failing one ends it), so after
    "drop them all" is refused, look for the last needed one with groups doubling from the
    back (1 call when it is the last) rather than bisecting the whole list (log2(n) calls).
    Stops quietly when the budget runs out: everything not yet dropped is kept.
    """
    work = _Chunks(chunks, build, keep=8 * judge.jobs + 8)
    fixed = frozenset(keep)
    state = _Split(tuple(i for i in range(len(work.chunks)) if i not in fixed), kept=fixed, found=1 if dense else 0,
                   gallop=gallop)
    try:
        while not state.done() and not judge.out_of_time():
            known = _verdict(state, work, judge)
            if known is None:
                _speculate(state, work, judge)
                known = judge.ask(work.build(state.dropped | state.question()))
            state = state.answer(known)
    except Exhausted:
        pass
    return [c for i, c in enumerate(work.chunks) if i not in state.dropped]


def _verdict(state: _Split, work: _Chunks, judge: Judge) -> bool | None:
    cand = work.build(state.dropped | state.question())
    if cand is None:
        return False
    return judge.known(cand)


def _speculate(state: _Split, work: _Chunks, judge: Judge) -> None:
    """Ask up to `jobs` of the nearest unknown questions on both branches at once."""
    if judge.jobs <= 1:
        return
    batch: list[Candidate] = []
    seen: set[str] = set()
    frontier = [state]
    while frontier and len(batch) < judge.jobs:
        nxt = []
        for s in frontier:
            if s.done():
                continue
            cand = work.build(s.dropped | s.question())
            known = False if cand is None else judge.known(cand)
            if known is not None:
                nxt.append(s.answer(known))
                continue
            key = digest(cand)
            if key not in seen and len(batch) < judge.jobs:
                seen.add(key)
                batch.append(cand)
            nxt.extend((s.answer(True), s.answer(False)))
        frontier = nxt[: 4 * judge.jobs]
    if len(batch) > 1:
        try:
            judge.ask_many(batch)
        except Exhausted:
            pass
