"""The scrub: an ordered list of rules, each a small function of one :class:`Text`.

The order is the contract (the numbered list in :mod:`reprex.redact`): PEM blocks before
literals before token formats before headers, URLs, query strings, key = value
and the context rules, then flags, then decoding, then machine identity last.
Rules in :data:`CASED_RULES` read the text as is; the rest also read its
lower-cased twin (``st.low``), kept in step by :meth:`Text.update`.
"""

from __future__ import annotations

import re
from functools import partial

from reprex.redact.context import credential_calls, key_values, pairs, yaml_blocks
from reprex.redact.decode import base64_runs, escaped_wide, mostly_printable, percent_runs
from reprex.redact.names import classify, cls_kind, flag_class
from reprex.redact.patterns import PORT_THEN_PATH, USER_PASS, patterns
from reprex.redact.pem import pem_blocks, pem_orphans
from reprex.redact.text import (
    after_key, after_match, at_value, closing_quote, lower, ph, rx, scan, scan_bytes, word_char_before,
)
from reprex.redact.values import BORING_VALUES, looks_like_token, sk_key_like, unquote, value_is_secret

Counts = dict  # (kind, where) -> int


class Text:
    """One scrub in progress: the text, its lower-cased twin, where it goes and the
    counts found so far; ``red`` is the Redactor (its literals and identity)."""

    __slots__ = ("s", "low", "where", "counts", "depth", "red", "p")

    def __init__(self, red, s: str, where: str, counts: Counts, depth: int) -> None:
        self.red, self.s, self.where, self.counts, self.depth = red, s, where, counts, depth
        self.low: str = ""
        self.p = patterns()

    def add(self, kind: str) -> None:
        key = (kind, self.where)
        self.counts[key] = self.counts.get(key, 0) + 1

    def update(self, new: str) -> None:
        if new is not self.s:
            self.s, self.low = new, lower(new)

    def hits(self, text: str, depth: int) -> list[str]:
        return hits(self.red, text, depth)

    def decoded_hits(self, data: bytes, depth: int, basic: bool = False) -> list[str]:
        return decoded_hits(self.red, data, depth, basic)


# -- 2. literal secrets (environment values, extra_secrets) in every form

def _literal(st: Text, m: re.Match[str]) -> tuple[int, int, str] | None:
    if m.lastgroup == "ph":
        return None
    kind = st.red.literals.kind.get(m.group(), "env-secret")
    st.add(kind)
    return m.start(), m.end(), ph(kind)


def literals(st: Text) -> None:
    lits = st.red.literals
    if lits.items:
        found = lits.pattern_for(st.s)
        if found is not None:
            st.s = scan(found, st.s, st.s, partial(_literal, st), after_match)


# -- 3. token formats with a fixed prefix (case-sensitive, on the text itself)

def _token(st: Text, kind: str, m: re.Match[str]) -> tuple[int, int, str] | None:
    if m.re.groups:
        start, end = m.span("v")
    else:
        start, end = m.span()
        if word_char_before(st.s, start):
            return None
        if kind == "api-key" and m.group().startswith("sk-") and not sk_key_like(st.s, m):
            return None
        if kind == "twitter-token" and len(set(m.group()[21:])) < 8:
            return None  # base64 of zero bytes (pickled arrays) is a run of A's, not a bearer token
    st.add(kind)
    return start, end, ph(kind)


def tokens(st: Text) -> None:
    s = st.s  # (a local: this loop runs for every text, ~60 formats)
    for kind, src, guard in st.p.tokens:
        if guard not in s:
            continue  # (a substring test is far cheaper than a regex scan)
        s = st.s = scan(rx(src), s, s, partial(_token, st, kind))


# -- 4. Authorization headers, then bare Bearer tokens

def _auth(st: Text, m: re.Match[str]) -> tuple[int, int, str] | None:
    s, low = st.s, st.low
    if word_char_before(low, m.start()):
        return None
    if m["scheme"] is not None:
        start = m.start("sval")
        q = m["sep"].rstrip()[-1:]
        if q in ("'", '"'):  # quoted: up to the closing quote (Digest has inner quotes)
            end = closing_quote(s, start, q)
        elif m["scheme"] in ("digest", "aws4-hmac-sha256", "hmac", "mac", "oauth"):
            end = closing_quote(s, start, "\n")  # name="value", ... to the line end
        else:
            end = m.end("sval")
        val = s[start:end].rstrip()
        if not val or "<redacted:" in val or val[0] in "{$%<":
            return None
        kind = "bearer" if m["scheme"] == "bearer" else "authorization"
        st.add(kind)
        return start, start + len(val), ph(kind)
    start, end = m.span("val")
    val = s[start:end]
    if not (len(val) >= 8 and any(c.isdigit() for c in val)):
        return None
    st.add("authorization")
    return start, end, ph("authorization")


def _after_sep(m: re.Match[str]) -> int:
    return m.end("sep")


def authorization(st: Text) -> None:
    st.update(scan(st.p.auth_lc, st.low, st.s, partial(_auth, st), _after_sep))


def _bearer(st: Text, m: re.Match[str]) -> tuple[int, int, str] | None:
    if word_char_before(st.low, m.start()):
        return None
    val = m["val"]
    if not (any(c.isdigit() for c in val) or len(val) >= 20):
        return None
    st.add("bearer")
    return m.start("val"), m.end("val"), ph("bearer")


def bearer(st: Text) -> None:
    st.update(scan(st.p.bearer_lc, st.low, st.s, partial(_bearer, st), at_value))


# -- 5. credentials in URLs (any scheme)

def _url(st: Text, m: re.Match[str]) -> tuple[int, int, str] | None:
    if not word_char_before(st.s, m.start()):
        return None  # no scheme
    ui = m["ui"]
    user, colon, pw = ui.partition(":")
    if colon and rx(PORT_THEN_PATH).match(pw):
        return None  # host:8080/path@x: a port and a path, no password
    if colon:
        # `TOKEN:@host` (Gemfury, `__token__:@`-style indexes): the user part is the secret
        if not pw and not (user and (looks_like_token(user) or user == "__token__")):
            return None
    elif not looks_like_token(ui):
        return None
    st.add("url-credentials")
    return m.start("ui"), m.end("ui"), ph("url-credentials")


def _after_scheme(m: re.Match[str]) -> int:
    return m.start() + 3


def url_credentials(st: Text) -> None:
    st.update(scan(st.p.url, st.s, st.s, partial(_url, st), _after_scheme))


# -- 6. secret query parameters

def _query(st: Text, m: re.Match[str]) -> tuple[int, int, str] | None:
    val = m["val"]
    if len(val) < 4 or val in BORING_VALUES:
        return None
    st.add("query-secret")
    return m.start("val"), m.end("val"), ph("query-secret")


def query_secrets(st: Text) -> None:
    st.update(scan(st.p.query_lc, st.low, st.s, partial(_query, st), at_value))


# -- 7a. AWS secret access keys next to their name (7b and 7c: reprex.redact.context)

def _aws(st: Text, m: re.Match[str]) -> tuple[int, int, str] | None:
    start = m.start()
    if not ("access" in m.group() or st.low.endswith(("aws", "aws_"), max(0, start - 4), start)):
        return None
    st.add("aws-secret-key")
    return m.start("val"), m.end("val"), ph("aws-secret-key")


def aws_secret_keys(st: Text) -> None:
    if ("=" in st.s or ":" in st.s) and "secret" in st.low:
        st.update(scan(st.p.aws_secret_lc, st.low, st.s, partial(_aws, st), at_value))


# -- 8. --password VALUE flags, curl -u, mysql -p, Dockerfile ENV, .netrc passwords

def _flag(st: Text, m: re.Match[str]) -> tuple[int, int, str] | None:
    s = st.s
    key = s[m.start("key"):m.end("key")].lstrip("-")
    cls = flag_class(key)
    if cls is None:
        return None
    vs, ve = m.span("val")
    if ve < len(st.low) and st.low[ve] == "<":
        return None  # runs into a placeholder: already handled
    qo, inner, qc = unquote(s[vs:ve])
    if not value_is_secret(key, cls, inner, bool(qo)):
        return None
    kind = cls_kind(cls)
    st.add(kind)
    return vs + len(qo), ve - len(qc), ph(kind)


def flags(st: Text) -> None:
    st.update(scan(st.p.flag_lc, st.low, st.s, partial(_flag, st), after_key))


def _password_value(st: Text, m: re.Match[str]) -> tuple[int, int, str] | None:
    if m["val"] in BORING_VALUES:
        return None
    st.add("password")
    return m.start("val"), m.end("val"), ph("password")


def user_flags(st: Text) -> None:
    st.update(scan(st.p.user_flag_lc, st.low, st.s, partial(_password_value, st), at_value))


def mysql_passwords(st: Text) -> None:
    if "mysql" in st.low or "mariadb" in st.low:
        st.update(scan(st.p.mysql_p_lc, st.low, st.s, partial(_password_value, st), after_match))


def _docker_env(st: Text, m: re.Match[str]) -> tuple[int, int, str] | None:
    s = st.s
    key = s[m.start("key"):m.end("key")]
    cls = classify(key, False)
    vs, ve = m.span("val")
    qo, inner, qc = unquote(s[vs:ve].rstrip())
    if cls is None or not value_is_secret(key, "strong" if cls == "weak" else cls, inner, bool(qo)):
        return None
    kind = cls_kind(cls)
    st.add(kind)
    return vs + len(qo), vs + len(qo) + len(inner), ph(kind)


def docker_env(st: Text) -> None:
    if "env " in st.low or "arg " in st.low:
        st.update(scan(st.p.docker_env_lc, st.low, st.s, partial(_docker_env, st), after_key))


def _netrc(st: Text, m: re.Match[str]) -> tuple[int, int, str] | None:
    low = st.low
    start = m.start()
    if word_char_before(low, start):
        return None
    line = low[low.rfind("\n", 0, start) + 1:start]
    if line.strip() and not st.p.netrc_ctx_lc.search(line):
        return None
    if m["val"] in BORING_VALUES:
        return None
    st.add("password")
    return m.start("val"), m.end("val"), ph("password")


def netrc_passwords(st: Text) -> None:
    st.update(scan(st.p.netrc_lc, st.low, st.s, partial(_netrc, st), at_value))


# -- 10. machine identity: home (before user name), hostname, user name

def identity(st: Text) -> None:
    st.s = st.red.identity.replace(st.s, st.low, st.where, st.counts)


#: Rules that read the text as is (no lower-cased twin yet).
CASED_RULES = (pem_blocks, pem_orphans, literals, tokens)
#: The rest, in order, each with the text it needs (None: the rule checks for itself).
#: A rule runs only when its needle is in the lower-cased text: one substring test
#: here is cheaper than a call, and most rules meet most texts without their needle.
#: (Step 9, encoded secrets, is the three decode rules.)
RULES = (
    ("authori", authorization), ("bearer", bearer),
    ("://", url_credentials),
    ("=", query_secrets),
    (None, aws_secret_keys), (None, key_values),
    (",", pairs), (",", credential_calls), (None, yaml_blocks),
    ("-", flags), ("-", user_flags), (None, mysql_passwords), (None, docker_env), ("password", netrc_passwords),
    (None, base64_runs), (None, percent_runs), ("\\x00", escaped_wide),
    (None, identity),
)


def scrub(red, s: str, where: str, counts: Counts, depth: int = 0) -> str:
    """Run every rule over ``s``, adding what was replaced to ``counts``."""
    st = Text(red, s, where, counts, depth)
    for rule in CASED_RULES:
        rule(st)
    st.low = lower(st.s)
    for needle, rule in RULES:
        if needle is None or needle in st.low:
            rule(st)
    return st.s


def _wide_view(red, counts: Counts, where: str, depth: int, enc: str, m: re.Match[bytes]) -> tuple[int, int, bytes] | None:
    try:
        text = m.group().decode(enc)
    except UnicodeDecodeError:
        return None
    kinds = hits(red, text, depth + 1)
    if not kinds:
        return None
    counts[(kinds[0], where)] = counts.get((kinds[0], where), 0) + 1
    return m.start(), m.end(), ph(kinds[0]).encode(enc)


def scrub_bytes(red, b: bytes, where: str, counts: Counts, depth: int) -> bytes:
    """:func:`scrub` for bytes: as UTF-8 (surrogateescape round-trips anything), then
    literal secrets in UTF-16LE, then UTF-16/32 runs decoded and scrubbed."""
    s = b.decode("utf-8", "surrogateescape")
    out = scrub(red, s, where, counts, depth).encode("utf-8", "surrogateescape")
    if b"\x00" not in out:
        return out
    for needle, rep, kind in red.literals.utf16:
        k = out.count(needle)
        if k:
            out = out.replace(needle, rep)
            counts[(kind, where)] = counts.get((kind, where), 0) + k
    if depth >= 2:
        return out
    for wide, enc in patterns().wide_views:
        out = scan_bytes(wide, out, partial(_wide_view, red, counts, where, depth, enc))
    return out


def hits(red, text: str, depth: int) -> list[str]:
    """Kinds found in ``text`` (most frequent first), counted nowhere."""
    counts: Counts = {}
    scrub(red, text, "", counts, depth)
    return [k for (k, _), n in sorted(counts.items(), key=lambda kv: -kv[1]) if n]


def decoded_hits(red, data: bytes, depth: int, basic: bool = False) -> list[str]:
    """Kinds found in decoded bytes: as UTF-8 text (a ``user:password`` pair counts
    when the text is nothing else), and as UTF-16/32 text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and mostly_printable(text):
        kinds = hits(red, text, depth)
        if kinds:
            return kinds
        if rx(USER_PASS).fullmatch(text.strip()) and (basic or len(text.strip()) >= 12):
            return ["basic-auth"]
        return []
    if b"\x00" in data:
        counts: Counts = {}
        scrub_bytes(red, data, "", counts, depth)
        return [k for (k, _), n in counts.items() if n]
    return []
