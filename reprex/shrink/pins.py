"""Shrinking a bundle's requirements: first to what the shrunk run still imports, then by
dropping the remaining pins while the failure stays (each candidate is a new lock, so
the oracle installs it: a pin set that won't install is simply not interesting).

Only the bundle's own requirement lines are kept or dropped; nothing the judged run
reported is written into the file.
"""

from __future__ import annotations

from typing import Callable

REQUIREMENTS = "requirements.txt"


def requirement_lines(text: str) -> list[tuple[str, bool]]:
    """Each line of a requirements file with whether it is a requirement (not a comment or blank)."""
    from reprex.pins import parse_requirements

    return [(line, bool(parse_requirements(line))) for line in text.splitlines()]


def pin_count(text: str) -> int:
    return sum(1 for _, real in requirement_lines(text) if real)


def _text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode() if lines else b""


def shrink_pins(oracle, *, jobs: int = 1, budget: int | None = None, deadline: float | None = None,
                progress: Callable[[str], None] = lambda m: None) -> dict:
    """Cut the accepted state's requirements.txt: {before, after, imported_cut, calls}; the
    oracle's base holds the result."""
    from reprex.shrink.oracle import candidate_bundle
    from reprex.shrink.reduce import Exhausted, Judge, reduce_chunks

    current = candidate_bundle(oracle.bundle, oracle.base)
    text = current.text(REQUIREMENTS)
    before = pin_count(text)
    result = {"before": before, "after": before, "imported_cut": False, "calls": 0}
    if before == 0:
        return result

    def interesting(data: bytes) -> bool:
        progress(f"pins: trying {pin_count(data.decode())} of {before}")
        return oracle.interesting({REQUIREMENTS: data})

    judge = Judge(interesting, jobs=jobs, budget=budget, deadline=deadline)
    try:
        narrowed = _imported_only(current, oracle.current(cold=True))
        try:
            if narrowed is not None and pin_count(narrowed) < before and judge.ask(narrowed.encode()):
                oracle.accept({REQUIREMENTS: narrowed.encode()})
                text, result["imported_cut"] = narrowed, True
        except Exhausted:  # no budget left: the pins stay
            pass
        lines = requirement_lines(text)
        header = [line for line, real in lines if not real and line.strip()][:1]
        pins = [line for line, real in lines if real]
        kept = reduce_chunks(pins, lambda chosen: _text(header + chosen), judge)  # stops quietly when spent
    finally:
        judge.close()
    if len(kept) < len(pins):
        oracle.accept({REQUIREMENTS: _text(header + kept)})
    result["after"], result["calls"] = len(kept), judge.stats.calls
    return result


def _imported_only(bundle, outcome) -> str | None:
    """The lock cut to the closure of what `outcome` imported (extract's rule), or None."""
    if outcome is None:
        return None
    from reprex.extract import _narrowed_requirements

    cut = _narrowed_requirements(bundle, outcome)
    return cut[0] if cut is not None else None
