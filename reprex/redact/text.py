"""Placeholders and the span-editing scan every rule is built on.

A rule finds matches in the text (or its lower-cased twin, same offsets) and
says which span to replace; :func:`scan` stitches the result together once, so
a long log is copied a handful of times, not once per secret.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable

REDACTED = "<redacted:{kind}>"
HOSTNAME_PLACEHOLDER = "<hostname>"
USER_PLACEHOLDER = "<user>"
HOME_PLACEHOLDER = "<home>"

#: Every placeholder this package writes (never matched or counted again: idempotence).
PLACEHOLDER_SRC = r"<redacted:[a-z0-9-]+>|<home>|<user>|<hostname>"

#: Characters of a config key (``[a-z0-9_.-]``), on the lower-cased text.
KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")

#: Compiled on first use (a capture compiles only what its text needs; the CLI starts faster).
rx = lru_cache(maxsize=None)(re.compile)


def ph(kind: str) -> str:
    """The placeholder for ``kind``."""
    return REDACTED.format(kind=kind)


def lower(s: str) -> str:
    """Lower-case copy with the same length (so match offsets carry over)."""
    low = s.lower()
    if len(low) != len(s):  # only U+0130 lower-cases to two code points
        low = s.replace("\u0130", "i").lower()
    return low


def closing_quote(s: str, start: int, q: str) -> int:
    """Index of the first unescaped ``q`` (or line end) at or after ``start``."""
    i, n = start, len(s)
    while i < n:
        c = s[i]
        if c == q or c in "\r\n":
            return i
        if c == "\\":
            if s.startswith(("\\r", "\\n"), i):  # an escaped line break in a repr
                return i
            i += 2
            continue
        i += 1
    return n


def word_char_before(s: str, i: int) -> bool:
    return i > 0 and (s[i - 1].isalnum() or s[i - 1] == "_")


class Edit:
    """Collects replacements of (start, end) spans of ``src``; spans come in order."""

    __slots__ = ("src", "parts", "last")

    def __init__(self, src: str) -> None:
        self.src = src
        self.parts: list[str] = []
        self.last = 0

    def put(self, start: int, end: int, text: str) -> None:
        self.parts.append(self.src[self.last:start])
        self.parts.append(text)
        self.last = end

    def result(self) -> str:
        if not self.parts:
            return self.src
        self.parts.append(self.src[self.last:])
        return "".join(self.parts)


def scan(
    pattern: re.Pattern[str],
    hay: str,
    src: str,
    handle: Callable[[re.Match[str]], tuple[int, int, str] | None],
    resume: Callable[[re.Match[str]], int] | None = None,
) -> str:
    """Search ``pattern`` in ``hay`` (``src`` or its lower-cased twin) and let
    ``handle`` return a (start, end, replacement) for ``src``, or None to
    decline; after a declined match scanning resumes at ``resume(m)`` (default:
    one past the match start) so a declined key never hides a later secret."""
    edit = Edit(src)
    search = pattern.search
    pos, n = 0, len(hay)
    while pos <= n:
        m = search(hay, pos)
        if m is None:
            break
        r = handle(m)
        if r is None:
            pos = max(resume(m) if resume else m.start() + 1, m.start() + 1)
            continue
        start, end, text = r
        edit.put(start, end, text)
        pos = max(end, m.start() + 1)
    return edit.result()


def scan_bytes(
    pattern: re.Pattern[bytes], src: bytes, handle: Callable[[re.Match[bytes]], tuple[int, int, bytes] | None]
) -> bytes:
    """:func:`scan` for bytes (declined matches resume at their end)."""
    parts: list[bytes] = []
    last = pos = 0
    while True:
        m = pattern.search(src, pos)
        if m is None:
            break
        r = handle(m)
        pos = max(m.end(), m.start() + 1)
        if r is not None:
            parts.append(src[last:r[0]])
            parts.append(r[2])
            last = r[1]
    if not parts:
        return src
    parts.append(src[last:])
    return b"".join(parts)


# resume points for declined matches (module-level, not lambdas per call)
def after_match(m: re.Match[str]) -> int:
    return m.end()


def at_value(m: re.Match[str]) -> int:
    return m.start("val")


def after_key(m: re.Match[str]) -> int:
    return m.end("key")
