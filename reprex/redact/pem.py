"""Step 1: PEM private key blocks, whole, and the base64 lines above an END line
whose BEGIN was cut off (an output tail). A rule of :mod:`reprex.redact.rules`.
"""

from __future__ import annotations

import re
from functools import partial

from reprex.redact.patterns import PEM_BODY_AFTER_QUOTE, PEM_BODY_LINE
from reprex.redact.text import after_match, ph, rx, scan



def _pem_block(st, m: re.Match[str]) -> tuple[int, int, str]:
    s, p = st.s, st.p
    end = p.pem_end.search(s, m.end(), m.end() + 65536)
    stop = end.end() if end else p.pem_body.match(s, m.end()).end()  # type: ignore[union-attr]
    st.add("pem-private-key")
    return m.start(), stop, ph("pem-private-key")


def pem_blocks(st) -> None:
    if "PRIVATE KEY-----" in st.s:
        st.s = scan(st.p.pem_begin, st.s, st.s, partial(_pem_block, st))


def pem_body_start(s: str, end: int) -> int:
    """Start of the run of base64 (and PEM header) lines just above ``end`` (the
    ``-----END`` line), with real or escaped (``\\n``) line breaks; ``end`` if none."""
    start = end
    limit = max(0, end - 65536)
    i = end
    while i > limit:
        j = i
        while j > limit and s[j - 1] in " \t":
            j -= 1
        if s.endswith("\\n", limit, j):
            j -= 2
        elif j > limit and s[j - 1] == "\n":
            j -= 1
        else:
            break
        k = j
        while k > limit and s[k - 1] != "\n" and not s.endswith("\\n", limit, k):
            k -= 1
        line = s[k:j]
        if not line.strip(" \t'\"\r") or not rx(PEM_BODY_LINE).fullmatch(line):
            m = rx(PEM_BODY_AFTER_QUOTE).search(line)  # key = '<body>\n...: the first line
            if m:
                start = k + m.start(1)
            break
        start = i = k
    return start


def _pem_orphan(st, m: re.Match[str]) -> tuple[int, int, str] | None:
    start = pem_body_start(st.s, m.start())
    if start == m.start():
        return None
    st.add("pem-private-key")
    return start, m.end(), ph("pem-private-key")


def pem_orphans(st) -> None:
    if "-----END" in st.s and "PRIVATE KEY" in st.s:
        st.s = scan(st.p.pem_end, st.s, st.s, partial(_pem_orphan, st), after_match)
