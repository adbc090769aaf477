"""Get a bundle from a path or a URI (https://, s3://, gs://, file://) with smart_open.

Remote bundles are downloaded to a private temp file with a size cap, then read
with the same safety checks as local ones.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from reprex.bundle import MAX_TOTAL_BYTES
from reprex.errors import ReprexError

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class FetchError(ReprexError):
    """The bundle could not be fetched; one line for the user."""


def http_headers(environ=None) -> dict[str, str]:
    """Headers for https bundle URIs, from the environment (never from the command line)."""
    environ = os.environ if environ is None else environ
    headers = {}
    token = environ.get("REPREX_HTTP_BEARER_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for item in filter(None, (environ.get("REPREX_HTTP_HEADERS") or "").split("\n")):
        name, sep, value = item.partition(":")
        if sep:
            headers[name.strip()] = value.strip()
    return headers


def fetch_bundle(source: str, *, limit: int = MAX_TOTAL_BYTES) -> Path:
    if not _URI.match(source):
        return Path(source)
    if source.startswith("file://"):
        return Path(source[len("file://"):])
    try:
        import smart_open
    except ImportError:  # pragma: no cover - a declared dependency
        raise FetchError("smart_open is not installed; cannot fetch remote bundles") from None
    params = {"headers": http_headers(), "timeout": 60} if source.startswith(("http://", "https://")) else {}
    fd, tmp = tempfile.mkstemp(prefix="reprex-fetch-", suffix=".reprex.zip")
    try:
        total = 0
        with os.fdopen(fd, "wb") as out, smart_open.open(source, "rb", transport_params=params,
                                                          compression="disable") as src:
            while chunk := src.read(1024 * 1024):
                total += len(chunk)
                if total > limit:
                    raise FetchError(f"{_safe(source)}: larger than {limit} bytes; refusing it")
                out.write(chunk)
        return Path(tmp)
    except FetchError:
        Path(tmp).unlink(missing_ok=True)
        raise
    except Exception as exc:  # smart_open raises many kinds; give one line
        Path(tmp).unlink(missing_ok=True)
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FetchError(f"cannot fetch {_safe(source)}: {_safe(msg)}") from None


def _safe(text: str) -> str:
    """Never echo credentials from a URI: userinfo, presigned query strings, tokens."""
    from reprex.redact import Redactor

    text = re.sub(r"://[^/@\s]+@", "://<redacted>@", text)
    text = re.sub(r"\?[^\s'\"]*", "?<query redacted>", text)
    return Redactor().text(text, "error")
