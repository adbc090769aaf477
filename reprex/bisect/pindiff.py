"""Which of the pins that differ between a good and a bad environment bring the failure back.

Delta debugging (Zeller's ddmin) over the names whose pins differ: a candidate is the good
pins with some of the bad pins applied. Pure (no I/O of its own); the test judges a full pin
dict GOOD, BAD or SKIP, and a SKIP (an unresolvable mix, another failure) counts as "not
the failure", never as blame. Baselines first, so a wrong good lock is said before any
search: the good pins must judge GOOD and the bad pins BAD.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from reprex.bisect.search import BAD, GOOD, BisectError, Step, Test, run_batch


def changed(good: Mapping[str, str], bad: Mapping[str, str]) -> list[str]:
    """Names whose pin differs (changed, added or removed), sorted."""
    return sorted(name for name in {*good, *bad} if good.get(name) != bad.get(name))


def apply(good: Mapping[str, str], bad: Mapping[str, str], names: Sequence[str]) -> dict[str, str]:
    """The good pins with `names` as the bad pins have them (absent there: removed)."""
    pins = dict(good)
    for name in names:
        if name in bad:
            pins[name] = bad[name]
        else:
            pins.pop(name, None)
    return dict(sorted(pins.items()))


def describe(good: Mapping[str, str], bad: Mapping[str, str], names: Sequence[str]) -> str:
    """A probe's label: which bad pins it takes, e.g. `good + pandas 2.0.0, -six`."""
    if not names:
        return "good pins"
    if len(names) == len(changed(good, bad)):
        return "bad pins"
    parts = [f"{name} {bad[name]}" if name in bad else f"-{name}" for name in sorted(names)]
    return "good + " + ", ".join(parts)


def minimal_change(good: Mapping[str, str], bad: Mapping[str, str], test: Test, *,
                   jobs: int = 1) -> tuple[list[str], list[Step]]:
    """The names of a 1-minimal set of pin changes that turns the good pins bad (each one of
    them needed), and every probe run. Raises BisectError when there is no difference or a
    baseline judges otherwise."""
    diff = changed(good, bad)
    if not diff:
        raise BisectError("the good and the bad environments pin the same versions: nothing to bisect")
    steps: list[Step] = []
    seen: dict[frozenset[str], str] = {}

    def judge(subsets: list[frozenset[str]]) -> list[str]:
        todo = [s for s in dict.fromkeys(subsets) if s not in seen]
        if todo:
            batch = run_batch([sorted(s) for s in todo], lambda names: test(apply(good, bad, names)),
                              lambda names: describe(good, bad, names), jobs)
            steps.extend(batch)
            seen.update((s, step.verdict) for s, step in zip(todo, batch))
        return [seen[s] for s in subsets]

    baseline = judge([frozenset(), frozenset(diff)])
    for which, verdict, want in (("good", baseline[0], GOOD), ("bad", baseline[1], BAD)):
        if verdict != want:
            step = next(s for s in steps if s.label == f"{which} pins")
            raise BisectError(f"the {which} pins judged {verdict}, not {want}"
                              + (f": {step.reason}" if step.reason else ""))
    return sorted(ddmin(diff, judge, jobs=jobs)), steps


def ddmin(changes: Sequence[str], judge: Callable[[list[frozenset[str]]], list[str]], *,
          jobs: int = 1) -> frozenset[str]:
    """Zeller's ddmin: subsets, then complements, at granularity n doubling until single changes.
    `judge` takes a batch (it may run them in parallel); the first BAD in order wins, so the
    answer does not depend on `jobs`."""
    current = frozenset(changes)
    n = 2
    while len(current) >= 2:
        ordered = sorted(current)
        chunks = [frozenset(ordered[i * len(ordered) // n:(i + 1) * len(ordered) // n]) for i in range(n)]
        chosen = _first_bad(chunks, judge, jobs)
        if chosen is not None:
            current, n = chosen, 2
            continue
        complements = [current - chunk for chunk in chunks] if n > 2 else []
        chosen = _first_bad(complements, judge, jobs)
        if chosen is not None:
            current, n = chosen, max(n - 1, 2)
            continue
        if n >= len(current):
            break
        n = min(len(current), 2 * n)
    return current


def _first_bad(subsets: list[frozenset[str]], judge, jobs: int) -> frozenset[str] | None:
    """The first of `subsets` that judges BAD, asking `jobs` at a time (stopping at a BAD)."""
    step = max(jobs, 1)
    for start in range(0, len(subsets), step):
        batch = subsets[start:start + step]
        for subset, verdict in zip(batch, judge(batch)):
            if verdict == BAD:
                return subset
    return None
