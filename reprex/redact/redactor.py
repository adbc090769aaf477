"""The Redactor: one per capture, the bookkeeping around the rules.

It holds what this capture knows (literal secrets, machine identity), runs
:mod:`reprex.redact.rules` over text, bytes, JSON-like objects and environments,
and tallies what it replaced as ``(kind, where, count)``, never the values.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from reprex.redact.identity import Identity
from reprex.redact.literals import Literals
from reprex.redact.names import classify, cls_kind, flag_class, name_class
from reprex.redact.patterns import CUT_HEAD
from reprex.redact.rules import Counts, scrub, scrub_bytes
from reprex.redact.text import ph, rx
from reprex.redact.values import BOOLISH, ONLY_PLACEHOLDER, looks_like_path, value_is_secret


@dataclass(frozen=True)
class Redaction:
    """One entry of the manifest's ``redactions`` list: never the value."""

    kind: str
    where: str
    count: int

    def as_dict(self) -> dict:
        return {"kind": self.kind, "where": self.where, "count": self.count}


class Redactor:
    """Scrub secrets and machine identity from text, bytes, objects and environments.

    One Redactor per capture: it remembers what it replaced (kinds and counts,
    never values) for :meth:`report` / :meth:`preview`. Thread-safe.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        extra_secrets: Iterable[str] = (),
        hostname: str | None = None,
        username: str | None = None,
        home: str | None = None,
    ) -> None:
        if environ is None:
            environ = os.environ
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self.literals = Literals(environ, extra_secrets)
        self.identity = Identity(hostname, username, home)
        self.hostname = self.identity.hostname
        self.username = self.identity.username
        self.home = self.identity.home

    # -- bookkeeping -----------------------------------------------------------

    def _merge(self, counts: Counts) -> None:
        if counts:
            with self._lock:
                for key, n in counts.items():
                    self._counts[key] = self._counts.get(key, 0) + n

    def _count(self, kind: str, where: str, n: int = 1) -> None:
        self._merge({(kind, where): n})

    def report(self) -> list[Redaction]:
        """Aggregated redactions, sorted by (where, kind)."""
        with self._lock:
            items = sorted((w, k, n) for (k, w), n in self._counts.items() if n > 0)
        return [Redaction(kind=k, where=w, count=n) for w, k, n in items]

    def preview(self) -> list[dict]:
        """Same as :meth:`report`, as plain ``{"kind", "where", "count"}`` dicts."""
        return [r.as_dict() for r in self.report()]

    # -- text and bytes ----------------------------------------------------------

    def text(self, s: str, where: str) -> str:
        """Scrub a string, recording counts per (kind, where). Idempotent."""
        if not s:
            return s
        counts: Counts = {}
        out = scrub(self, s, where, counts)
        self._merge(counts)
        return out

    def bytes(self, b: bytes, where: str) -> bytes:
        """Scrub file contents. UTF-8 with surrogateescape round-trips any bytes,
        so binary files get the same scrubbing (literal secrets embedded as ASCII
        are caught); UTF-16/UTF-32 runs of text are decoded and scrubbed too."""
        if not b:
            return b
        counts: Counts = {}
        out = scrub_bytes(self, b, where, counts, 0)
        self._merge(counts)
        return out

    def finds(self, data: str | bytes) -> list[str]:
        """The kinds this redactor would replace in ``data`` (text or bytes, with every
        decoding it tries), without counting them: for deciding what to leave out."""
        if not data:
            return []
        counts: Counts = {}
        if isinstance(data, (bytes, bytearray)):
            scrub_bytes(self, bytes(data), "", counts, 0)
        else:
            scrub(self, data, "", counts, 0)
        return sorted({k for (k, _), n in counts.items() if n})

    def text_after_cut(self, s: str, where: str) -> str:
        """Scrub a text whose beginning was cut off (an output tail): base64 lines left
        at its start are what remains of something whose first line is gone (a key's
        BEGIN line), so they go too."""
        m = rx(CUT_HEAD).match(s)
        if m and m.end() > m.start("body"):
            self._count("cut-fragment", where)
            s = s[:m.start("body")] + ph("cut-fragment") + "\n" + s[m.end():]
        return self.text(s, where)

    # -- objects ---------------------------------------------------------------

    def obj(self, o: Any, where: str) -> Any:
        """Recursively scrub JSON-like data (dicts, lists, tuples, sets, str, bytes).

        A dict key that looks secret (``password``, ``Authorization``,
        ``api_key``, ``client_secret`` ...) gets its value replaced entirely
        (strings/bytes; under such a key lists are redacted item by item and
        dicts recurse). In a list of strings (argv), the item after a flag like
        ``--token`` is redacted. Numbers, bools and None pass through; path
        objects stay paths; any other object becomes its scrubbed ``repr()``.
        """
        return self._obj(o, where, 0)

    def _secret_value(self, v: Any, key: str, cls: str, where: str, depth: int) -> Any:
        """The value under a secret-looking key (or after a secret flag)."""
        kind = cls_kind(cls)
        if cls == "authorization" and isinstance(v, str) and v.strip().lower().startswith("bearer "):
            kind = "bearer"
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, (str, bytes, bytearray)):
            inner = v if isinstance(v, str) else bytes(v).decode("utf-8", "surrogateescape")
            if not inner.strip() or "<redacted:" in inner:
                return self._obj(v, where, depth + 1)
            if cls == "weak" and (
                inner.strip().lower() in BOOLISH or not value_is_secret(key, cls, inner, True)
            ):
                return self._obj(v, where, depth + 1)
            # A recognised token keeps its specific kind ("Bearer <redacted:jwt>");
            # anything else under a secret key is replaced whole.
            counts: Counts = {}
            scrubbed = scrub(self, inner, where, counts)
            if scrubbed != inner and ONLY_PLACEHOLDER.fullmatch(scrubbed):
                self._merge(counts)
                return scrubbed if isinstance(v, str) else scrubbed.encode("utf-8", "surrogateescape")
            self._count(kind, where)
            return ph(kind) if isinstance(v, str) else ph(kind).encode()
        if isinstance(v, (int, float)):
            if cls == "password":
                self._count(kind, where)
                return ph(kind)
            return v
        if isinstance(v, Mapping):
            return self._obj(v, where, depth + 1)
        if isinstance(v, (list, tuple, set, frozenset)):
            item_cls = "strong" if cls == "weak" else cls  # auth=("user", "pw")
            items = [self._secret_value(x, key, item_cls, where, depth + 1) for x in v]
            if isinstance(v, list):
                return items
            if hasattr(v, "_fields"):
                return type(v)(*items)
            try:
                return type(v)(items)
            except TypeError:
                return items
        return self._secret_value(repr(v), key, cls, where, depth)

    def _obj(self, o: Any, where: str, depth: int) -> Any:
        if depth > 100:
            return ph("too-deep")
        if isinstance(o, str):
            return self.text(o, where)
        if o is None or isinstance(o, (bool, int, float)):
            return o
        if isinstance(o, (bytes, bytearray)):
            return self.bytes(bytes(o), where)
        if isinstance(o, Mapping):
            out = {}
            for k, v in o.items():
                cls = name_class(k if isinstance(k, str) else k.decode("utf-8", "replace")) \
                    if isinstance(k, (str, bytes)) else None
                nk = self._obj(k, where, depth + 1)
                if cls is not None:
                    out[nk] = self._secret_value(v, k, cls, where, depth)
                else:
                    out[nk] = self._obj(v, where, depth + 1)
            return out
        if isinstance(o, (list, tuple)):
            if len(o) == 2 and isinstance(o[0], (str, bytes)) and isinstance(o[1], (str, bytes, bytearray)):
                cls = name_class(o[0] if isinstance(o[0], str) else o[0].decode("utf-8", "replace"))
                if cls is not None:  # ("X-Api-Key", "..."), (b"authorization", b"Bearer ...")
                    pair = [self._obj(o[0], where, depth + 1), self._secret_value(o[1], str(o[0]), cls, where, depth)]
                    return pair if isinstance(o, list) else (type(o)(*pair) if hasattr(o, "_fields") else tuple(pair))
            res = []
            flag, flag_cls = "", None
            for x in o:
                if flag in ("u", "user", "proxy-user") and isinstance(x, str) and ":" in x and "<" not in x:
                    user, _, pw = x.partition(":")
                    flag = ""
                    if pw:
                        self._count("password", where)
                        res.append(self.text(user, where) + ":" + ph("password"))
                        continue
                if flag_cls is not None and isinstance(x, str) and x and not x.startswith("-"):
                    res.append(self._secret_value(x, flag, flag_cls, where, depth))
                    flag_cls = None
                    continue
                flag_cls = None
                flag = ""
                if isinstance(x, str) and x in ("-u", "--user", "--proxy-user"):
                    flag = x.lstrip("-")
                elif isinstance(x, str) and x.startswith("-") and "=" not in x and len(x) > 2:
                    flag = x.lstrip("-")
                    flag_cls = flag_class(flag) if flag else None
                res.append(self._obj(x, where, depth + 1))
            if isinstance(o, list):
                return res
            if hasattr(o, "_fields"):
                return type(o)(*res)
            return tuple(res)
        if isinstance(o, (set, frozenset)):
            return type(o)(self._obj(x, where, depth + 1) for x in o)
        if isinstance(o, os.PathLike):
            scrubbed = self.text(os.fspath(o), where)
            try:
                return type(o)(scrubbed)  # type: ignore[call-arg]
            except Exception:
                return scrubbed
        return self.text(repr(o), where)

    # -- environment -------------------------------------------------------------

    def env(self, environ: Mapping[str, str], where: str) -> dict[str, str]:
        """Names kept; values of secret-looking names become
        ``<redacted:env-secret>`` (except empty/boolean values and file paths,
        which are kept, scrubbed); every other value is scrubbed with :meth:`text`."""
        out: dict[str, str] = {}
        for name, value in environ.items():
            value = "" if value is None else str(value)
            if classify(str(name), False) is not None:
                v = value.strip()
                if v.lower() in BOOLISH or "<redacted:" in v or looks_like_path(v):
                    out[name] = self.text(value, where)
                else:
                    self._count("env-secret", where)
                    out[name] = ph("env-secret")
            else:
                out[name] = self.text(value, where)
        return out
