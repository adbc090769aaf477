"""Rules for secrets hidden in an encoding: base64/base64url runs (and ``Basic``
credentials), percent-encoded runs and UTF-16/32 text shown as escapes. Each run
is decoded and scrubbed with every rule, two levels deep (``st.depth``).
"""

from __future__ import annotations

import base64
import re
from functools import partial

from reprex.redact.patterns import PCT, PCT_RUN
from reprex.redact.text import Edit, after_match, ph, rx, scan


def mostly_printable(text: str) -> bool:
    if not text:
        return False
    bad = sum(1 for c in text if not (c.isprintable() or c in "\n\r\t"))
    return bad * 20 <= len(text)


def b64decode(run: str) -> bytes | None:
    """Decode a base64 or base64url run (padding optional); None if it isn't one."""
    import binascii

    body = run.rstrip("=")
    if len(body) % 4 == 1:
        return None
    padded = body + "=" * (-len(body) % 4)
    try:
        if "-" in body or "_" in body:
            if "+" in body or "/" in body:
                return None
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def base64_runs(st) -> None:
    s = st.s
    if st.depth >= 2 or len(s) < 16:
        return
    depth = st.depth
    # (a plain finditer loop: this runs on every run of 16+ word characters)
    edit = Edit(s)
    for m in st.p.b64.finditer(s):
        run = m.group()
        if run.islower() or run.isupper():
            continue  # hex digests, paths, identifiers: base64 of text mixes cases
        offset = m.start()
        for piece in (run.split("=") if "=" in run.rstrip("=") else (run,)):
            # (`key=c2stcHJv...`: the run holds a name and a value)
            start = offset
            offset += len(piece) + 1
            if len(piece) < 16 or piece.islower() or piece.isupper():
                continue
            end = start + len(piece)
            while end < m.end() and s[end] == "=":
                end += 1
            data = b64decode(s[start:end])
            if data is None or len(data) < 8:
                continue
            basic = s[max(0, start - 6):start].lower().rstrip() == "basic"
            kinds = st.decoded_hits(data, depth + 1, basic=basic)
            if kinds:
                st.add(kinds[0])
                edit.put(start, end, ph(kinds[0]))
    st.update(edit.result())


def percent_runs(st) -> None:
    s = st.s
    if st.depth >= 2 or "%" not in s:
        return
    from urllib.parse import unquote, unquote_plus

    edit = Edit(s)
    done = 0
    for m in rx(PCT).finditer(s):
        if m.start() < done:
            continue
        a, b = m.start(), m.end()
        while a > done and s[a - 1] in PCT_RUN:
            a -= 1
        while b < len(s) and s[b] in PCT_RUN:
            b += 1
        done = b
        run = s[a:b]
        if b - a < 12:
            continue  # (too short to hide a secret worth decoding: `a%20b`)
        kinds: list[str] = []
        for decoded in {unquote(run), unquote_plus(run)}:
            if decoded != run:
                kinds = kinds or st.hits(decoded, st.depth + 1)
        if kinds:
            st.add(kinds[0])
            edit.put(a, b, ph(kinds[0]))
    st.update(edit.result())


def _escaped(st, m: re.Match[str]) -> tuple[int, int, str] | None:
    text = m.group().replace("\\x00", "")
    kinds = st.hits(text, st.depth + 1)
    if not kinds:
        return None
    st.add(kinds[0])
    return m.start(), m.end(), ph(kinds[0])


def escaped_wide(st) -> None:
    if st.depth < 2:
        st.update(scan(st.p.escaped_wide, st.s, st.s, partial(_escaped, st), after_match))
