"""Rules that find a secret by the name beside it: ``key = value`` in any config-ish
syntax, ``("X-Api-Key", "...")`` pairs, credential call shapes and YAML values on
the next lines. Each is one rule of :mod:`reprex.redact.rules` (steps 7b and 7c).
"""

from __future__ import annotations

import re
from functools import partial

from reprex.redact.names import classify, cls_kind
from reprex.redact.patterns import YAML_ENTRY
from reprex.redact.text import KEY_CHARS, Edit, at_value, ph, rx, scan, word_char_before
from reprex.redact.values import PYTHON_SOURCE, YAML_BLOCK_INDICATOR, unquote, value_is_secret


def key_values(st) -> None:
    """7b. ``key = value`` pairs whose key looks secret: a fast pre-scan finds a stem
    and a separator, the key is walked back to its start and judged, then the value."""
    s, low = st.s, st.low
    if not ("=" in s or ":" in s):
        return
    p = st.p
    edit = Edit(s)
    pos, n = 0, len(low)
    pre_search, kv_match, val_match = p.kv_pre_lc.search, p.kv_lc.match, p.kv_val_lc.match
    while pos < n:
        c = pre_search(low, pos)
        if c is None:
            break
        # walk back from the stem to the start of the key
        ks = c.start()
        stop = max(pos, ks - 80)
        while ks > stop and low[ks - 1] in KEY_CHARS:
            ks -= 1
        while ks < c.start() and not (low[ks].isalpha() or low[ks] == "_"):
            ks += 1
        m = kv_match(low, ks)
        if m is None or (ks > 0 and low[ks - 1] in KEY_CHARS and low[ks - 1] != "-"):
            pos = c.end()  # (not c.start() + 1: a long run of stems would go quadratic)
            continue
        key = s[ks:m.end("key")]
        cls = classify(key, True)
        v = val_match(low, m.end()) if cls is not None else None
        if v is None:
            pos = m.end("key")
            continue
        vs, ve = v.span()
        if low.endswith(("//", "@"), 0, ks) or ("." in key and low[vs].isdigit() and ":" in m["sep"]):
            cls = None  # a host name (auth.example.com:8443), not a key
        if cls is not None and not (ve < n and low[ve] == "<" and low[vs] not in "\"'"):
            # (an unquoted value that runs into a placeholder was already handled:
            # SENTRY_DSN=https://<redacted:url-credentials>@host)
            qo, inner, qc = unquote(s[vs:ve])
            if cls == "weak" and not qo:
                inner = inner.split(None, 1)[0]  # token: abc123 expired at ...
                ve = vs + len(inner)
            if not qo and YAML_BLOCK_INDICATOR.fullmatch(inner.strip()):
                pos = ve  # `password: |-`: the value is the block below (yaml_blocks)
                continue
            statement = st.where.endswith(PYTHON_SOURCE) and not s[s.rfind("\n", 0, ks) + 1:ks].strip()
            if value_is_secret(key, cls, inner, bool(qo), statement):
                kind = cls_kind(cls)
                st.add(kind)
                edit.put(vs + len(qo), ve - len(qc), ph(kind))
                pos = ve
                continue
        pos = m.end("key")
    st.update(edit.result())


def _pair(st, m: re.Match[str]) -> tuple[int, int, str] | None:
    s = st.s
    key = s[m.start("key"):m.end("key")]
    cls = classify(key, True)
    if cls is None:
        return None
    vs, ve = m.span("val")
    if not value_is_secret(key, cls, s[vs:ve], True):
        return None
    kind = cls_kind(cls)
    st.add(kind)
    return vs, ve, ph(kind)


def pairs(st) -> None:
    """7c. ``("X-Api-Key", "...")``, header lists: a pair whose first item names the second."""
    st.update(scan(st.p.pair_lc, st.low, st.s, partial(_pair, st), at_value))


def _credential(st, m: re.Match[str]) -> tuple[int, int, str] | None:
    if word_char_before(st.low, m.start()) and not m.group("kw").endswith("auth"):
        return None  # (HTTPBasicAuth, session.auth: any prefix; login/creds: a word)
    vs, ve = m.span("val")
    inner = st.s[vs:ve]
    if not value_is_secret("password", "password", inner, True):
        return None
    st.add("password")
    return vs, ve, ph("password")


def credential_calls(st) -> None:
    """7c. ``auth=("u", "pw")``, ``HTTPBasicAuth("u", "pw")``, ``login("u", "pw")``."""
    low = st.low
    if "auth" in low or "cred" in low or "login" in low or "password" in low:
        st.update(scan(st.p.cred_call_lc, low, st.s, partial(_credential, st), at_value))


def yaml_blocks(st) -> None:
    """7c. ``password:`` then an indented value on the next lines, or ``token: >-`` /
    ``key: |`` block scalars: the whole value goes."""
    s = st.s
    if not (":" in s and "\n" in s):
        return
    edit = Edit(s)
    last = 0
    for m in st.p.yaml_key_lc.finditer(st.low):
        if m.start() < last:
            continue
        key = s[m.start("key"):m.end("key")]
        cls = classify(key, True)
        if cls is None:
            continue
        indent = len(m.group("ind").expandtabs())
        block = m.group("block")
        pos = m.end()
        first = end = -1
        stop = min(len(s), m.end() + 65536)  # (a value is not megabytes long: stay linear)
        while pos < stop:
            nl = s.find("\n", pos + 1)
            line_end = len(s) if nl < 0 else nl
            line = s[pos + 1:line_end] if s[pos] == "\n" else s[pos:line_end]
            start = line_end - len(line)
            if line.strip():
                if len(line) - len(line.lstrip(" \t")) <= indent:
                    break
                if first < 0:
                    if not block and rx(YAML_ENTRY).match(line):
                        break  # a nested mapping or list: its own keys are judged
                    first = start + len(line) - len(line.lstrip(" \t"))
                end = start + len(line.rstrip())
            if nl < 0:
                break
            pos = nl
        if first < 0:
            continue
        if not block and s.startswith(",", end - 1):
            end -= 1  # "password":\n  "value",  (JSON)
        if not block and end - first >= 2 and s[first] in "\"'" and s[end - 1] == s[first]:
            first, end = first + 1, end - 1
        value = s[first:end].strip()
        judged = value.split(None, 1)[0] if cls == "weak" else value  # token: prose is not a token
        if not value_is_secret(key, cls, judged, True):
            continue
        kind = cls_kind(cls)
        st.add(kind)
        edit.put(first, end, ph(kind))
        last = end
    st.update(edit.result())
