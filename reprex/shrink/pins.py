"""Shrinking a bundle's requirements: first to what the shrunk run still imports, then by
dropping the remaining pins while the failure stays (each candidate is a new lock, so
the oracle installs it: a pin set that won't install is simply not interesting).

Only the bundle's own requirement lines are kept or dropped; nothing the judged run
reported is written into the file.
"""

from __future__ import annotations

from typing import Callable, Sequence

REQUIREMENTS = "requirements.txt"


def requirement_lines(text: str) -> list[tuple[str, bool]]:
    """Each line of a requirements file with whether it is a requirement (not a comment or blank)."""
    from reprex.pins import parse_requirements

    return [(line, bool(parse_requirements(line))) for line in text.splitlines()]


def pin_count(text: str) -> int:
    return sum(1 for _, real in requirement_lines(text) if real)


def drop_chunks(items: Sequence, ok: Callable[[list], bool]) -> list:
    """Drop chunks of 2^k items, back to front, halving k down to single items (Lithium's
    order): whatever `ok` still accepts without the chunk stays dropped."""
    items = list(items)
    chunk = 1 << max(0, len(items).bit_length() - 1) if items else 0
    while chunk >= 1 and items:
        end = len(items)
        while end > 0:
            start = max(0, end - chunk)
            candidate = items[:start] + items[end:]
            if ok(candidate):
                items = candidate
            end = start
        chunk //= 2
    return items


def _text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode() if lines else b""


def shrink_pins(oracle, *, progress: Callable[[str], None] = lambda m: None,
                stop: Callable[[], bool] = lambda: False) -> dict:
    """Cut the accepted state's requirements.txt: {before, after, imported_cut}; the oracle's
    base holds the result."""
    from reprex.shrink.oracle import candidate_bundle

    current = candidate_bundle(oracle.bundle, oracle.base)
    text = current.text(REQUIREMENTS)
    before = pin_count(text)
    result = {"before": before, "after": before, "imported_cut": False}
    if before == 0:
        return result
    narrowed = _imported_only(current, oracle.last_outcome)
    if narrowed is not None and pin_count(narrowed) < before and not stop():
        progress(f"pins: trying the {pin_count(narrowed)} the shrunk run imports (of {before})")
        data = narrowed.encode()
        if oracle.interesting({REQUIREMENTS: data}):
            oracle.accept({REQUIREMENTS: data})
            text, result["imported_cut"] = narrowed, True
    lines = requirement_lines(text)
    comments = [line for line, real in lines if not real and line.strip()]
    pins = [line for line, real in lines if real]

    def ok(candidate: list[str]) -> bool:
        if stop():
            return False
        progress(f"pins: trying {len(candidate)} of {len(pins)}")
        return oracle.interesting({REQUIREMENTS: _text(comments[:1] + candidate)})

    kept = drop_chunks(pins, ok)
    if len(kept) < len(pins):
        oracle.accept({REQUIREMENTS: _text(comments[:1] + kept)})
    result["after"] = len(kept)
    return result


def _imported_only(bundle, outcome) -> str | None:
    """The lock cut to the closure of what `outcome` imported (extract's rule), or None."""
    if outcome is None:
        return None
    from reprex.extract import _narrowed_requirements

    cut = _narrowed_requirements(bundle, outcome)
    return cut[0] if cut is not None else None
