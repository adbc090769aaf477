"""Is the value beside a secret-looking name a secret, or code, a template, prose?

The judgments that keep false positives near zero: ``password=get_password()``,
``token: expected ')'``, ``pad_token: "<pad>"`` stay; a random-looking value under
a secret name goes. Also the shape tests for bare tokens and file paths.
"""

from __future__ import annotations

import os
import re

from reprex.redact.names import words_of

YAML_BLOCK_INDICATOR = re.compile(r"[|>][-+0-9]{0,3}")
BORING_VALUES = frozenset(
    {
        "", "0", "1", "true", "false", "yes", "no", "on", "off", "none", "null",
        "nil", "undefined", "str", "string", "bytes", "int", "optional", "any",
        "secretstr", "secretbytes", "required", "redacted", "***", "xxx", "...",
        "empty", "unset", "n/a", "na", "<none>", "true,", "false,", "missing",
        "invalid", "expired", "str)", "str,", "str]",
    }
)
BOOLISH = frozenset(
    {"", "0", "1", "true", "false", "yes", "no", "on", "off", "none", "null", "y", "n", "t", "f"}
)
_SHELL_REF = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(?::?-[^}]*)?\}?")
_CODE_REF_PREFIXES = (
    "${", "{", "%(", "%s", "<", "os.environ", "os.getenv", "getenv(", "env(",
    "process.env", "ENV[", "!", "&", "*",
)
AUTH_SCHEMES = (
    "bearer", "token", "basic", "digest", "bot", "apikey", "api-key", "key",
    "sso-key", "negotiate", "ntlm", "hmac", "aws4-hmac-sha256", "otp", "jwt",
    "dpop", "mac", "gssapi", "oauth", "splunk", "ssws",
)
ONLY_PLACEHOLDER = re.compile(
    r"\s*(?:(?:bearer|token|basic|bot)\s+)?<redacted:[a-z0-9-]+>\s*", re.I
)
_DOTTED_IDENT = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?")
_PLAIN_WORDS = re.compile(r"[a-z]+(?:[_.:-]+[a-z]+)*|[A-Z][a-z]+(?:[A-Z][a-z]+)*")
_TOKENISH = re.compile(r"[A-Za-z0-9_.~+/=-]+")
_PATH_EXT = re.compile(r"\.(?:json|pem|key|crt|cert|txt|ya?ml|cfg|ini|toml|sock|env|p12|pfx|gpg|asc|db)$", re.I)


def unquote(val: str) -> tuple[str, str, str]:
    for q in ('"""', "'''", '\\"', "\\'", '"', "'"):
        if len(val) >= 2 * len(q) and val.startswith(q) and val.endswith(q):
            return q, val[len(q):-len(q)], q
    return "", val, ""


PYTHON_SOURCE = (".py", ".pyi", ".pyw", ".pyx")
_IDENT = re.compile(r"[A-Za-z_]\w*")


def value_is_secret(key: str, cls: str, inner: str, quoted: bool, statement: bool = False) -> bool:
    """Is ``inner`` (the value next to a secret-looking ``key``) worth redacting?
    ``statement``: the pair is an assignment statement of Python source (the key starts its
    line); an unquoted name there is code (``PASS = ignore``, ``TOKEN = Token``), since a
    secret would be a string literal. (Inside a string, ``"session=abc..."`` is not code.)"""
    v = inner.strip()
    if not quoted and statement and _IDENT.fullmatch(v.split(None, 1)[0] if v else ""):
        return False
    if "<redacted:" in v or v in ("<home>", "<user>", "<hostname>"):
        return False
    lv = v.lower()
    if lv in BORING_VALUES:
        return False
    if not quoted:
        first = v.split(None, 1)[0]
        if first.startswith(_CODE_REF_PREFIXES) or "(" in first or "[" in first or _SHELL_REF.fullmatch(first):
            return False  # code / references: password=get_password(), token=os.environ[...], $VAR
        if _DOTTED_IDENT.fullmatch(first) or first.lower() == key.lower().lstrip("-"):
            return False  # code: password=self.password, password=password
    elif v.startswith(("${", "{{", "%(")) or set(v) <= {"*", "x", "X", "\u2022"}:
        return False  # templates and masks
    if cls == "password":
        if not quoted and "pwd" in words_of(key) and v.startswith(("/", "~")):
            return False  # pwd: /some/dir is a working directory
        return True
    if cls == "authorization":
        return lv not in AUTH_SCHEMES and len(v) >= 4
    if cls == "strong":
        return len(v) >= 4
    # weak (token / session / auth): prose like "unexpected token: expected ...",
    # tokenizer output like {"token": "hello"}: only random-looking values count.
    if len(v) < 8 or " " in v:
        return False
    if _PLAIN_WORDS.fullmatch(v):
        return _random_letters(lv)  # the high-entropy fallback: only here, where a name says secret
    return any(c.isdigit() for c in v) or len(v) >= 20 or (v != lv and v != v.upper())


def _random_letters(v: str) -> bool:
    """Letters drawn at random rather than words: long, high Shannon entropy and few
    vowels (uniform letters are ~19% vowels, English ~38%)."""
    import math

    letters = [c for c in v if c.isalpha()]
    if len(letters) < 16:
        return False
    counts: dict[str, int] = {}
    for c in letters:
        counts[c] = counts.get(c, 0) + 1
    n = len(letters)
    entropy = -sum(k / n * math.log2(k / n) for k in counts.values())
    vowels = sum(counts.get(c, 0) for c in "aeiouy") / n
    return entropy >= 3.5 and vowels < 0.25


_SEGMENT_SPLIT = re.compile(r"[-_]")


def sk_key_like(s: str, m: re.Match[str]) -> bool:
    """``sk-`` + random, not a hyphenated name like ``task-sk-learn-stage-2``."""
    if m.start() > 0 and s[m.start() - 1] == "-":
        return False
    body = m.group()[3:]
    return (
        any(c.isdigit() for c in body)
        and any(c.isalpha() for c in body)
        and max(len(seg) for seg in _SEGMENT_SPLIT.split(body)) >= 12
    )


def looks_like_token(s: str) -> bool:
    return (
        len(s) >= 16
        and _TOKENISH.fullmatch(s) is not None
        and any(c.isdigit() for c in s)
        and any(c.isalpha() for c in s)
    )


def looks_like_path(v: str) -> bool:
    """A secret-named variable holding a file path (GOOGLE_APPLICATION_CREDENTIALS)."""
    if not (v.startswith(("/", "~/", "./")) or (len(v) > 2 and v[1] == ":" and v[2] in "\\/")):
        return False
    if any(c.isspace() for c in v) or "+" in v or "=" in v:
        return False
    try:
        if os.path.exists(os.path.expanduser(v)):
            return True
    except (OSError, ValueError):
        pass
    return _PATH_EXT.search(v) is not None
