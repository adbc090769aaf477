"""The literal secrets one capture knows: values of secret-looking environment
variables, passwords inside URL-valued variables and ``extra_secrets``, each also
in the encoded forms it is cheap to look for (URL-encoded, base64, escaped, UTF-16LE).
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Iterable, Mapping

from reprex.redact.names import classify
from reprex.redact.patterns import patterns
from reprex.redact.text import PLACEHOLDER_SRC, ph
from reprex.redact.values import BOOLISH, looks_like_path, looks_like_token


class Literals:
    """Form -> kind, tried longest first; one alternation compiled per set of forms present."""

    def __init__(self, environ: Mapping[str, str], extra_secrets: Iterable[str]) -> None:
        found: dict[str, str] = {}
        for value in extra_secrets:
            if isinstance(value, str) and len(value.strip()) >= 3:
                for form in forms(value):
                    found.setdefault(form, "extra-secret")
        url = patterns().url
        for name, value in environ.items():
            if not isinstance(name, str) or not isinstance(value, str):
                continue
            if classify(name, False) is not None and env_value_collectable(value):
                for form in forms(value):
                    found.setdefault(form, "env-secret")
            if "://" in value:  # DATABASE_URL=postgres://u:pw@h/db: the password
                for m in url.finditer(value):
                    user, _, pw = m["ui"].partition(":")
                    if not pw and user != "__token__" and looks_like_token(user):
                        pw = user  # https://TOKEN:@host: the token is the user part
                    if len(pw) >= 6 and "<" not in pw:
                        for form in forms(pw):
                            found.setdefault(form, "env-secret")
        self.items = sorted(found.items(), key=lambda kv: (-len(kv[0]), kv[0]))
        self.kind = dict(self.items)
        self.utf16 = [
            (form.encode("utf-16-le"), ph(kind).encode("utf-16-le"), kind)
            for form, kind in self.items
            if form.isascii() and len(form) >= 6
        ]
        self._cache: dict[tuple[str, ...], re.Pattern[str]] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.items)

    def pattern_for(self, s: str) -> re.Pattern[str] | None:
        """One pattern for the forms present in ``s`` (placeholders matched and kept), or None."""
        present = tuple(form for form, _ in self.items if form in s)
        if not present:
            return None
        found = self._cache.get(present)
        if found is None:
            alts = []
            for form in present:
                e = re.escape(form)
                if form.isdigit():
                    e = r"(?<!\d)%s(?!\d)" % e
                alts.append(e)
            found = re.compile(r"(?P<ph>%s)|(?P<lit>%s)" % (PLACEHOLDER_SRC, "|".join(alts)))
            with self._lock:
                if len(self._cache) > 256:
                    self._cache.clear()
                self._cache[present] = found
        return found


def env_value_collectable(value: str) -> bool:
    v = value.strip()
    if len(v) < 6 or v.lower() in BOOLISH or "<redacted:" in v:
        return False
    return not looks_like_path(v)


def forms(value: str) -> list[str]:
    """The value plus the encodings it is cheap to look for."""
    from urllib.parse import quote, quote_plus

    out = [value]
    stripped = value.strip()
    if stripped != value and len(stripped) >= 3:
        out.append(stripped)
    raw = stripped.encode("utf-8", "surrogatepass")
    for f in (
        quote(stripped, safe=""),
        quote(stripped),
        quote_plus(stripped),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        stripped.encode("unicode_escape").decode("ascii"),
        stripped.replace("\\", "\\\\").replace('"', '\\"'),
    ):
        if len(f) >= 6 and f not in out:
            out.append(f)
    return out
