"""Get a bundle from a path or a URI (https://, s3://, gs://, azure://, file://) with smart_open.

Remote bundles are downloaded to a private temp file with a size cap, then read
with the same safety checks as local ones. A `#sha256=<64 hex>` fragment (what
`reprex share` prints) pins the exact bytes: they are hashed while they arrive and
a mismatch is refused before anything reads them, so a swapped or tampered object
on a shared bucket never reaches the bundle reader.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import unquote

from reprex.bundle import MAX_TOTAL_BYTES
from reprex.errors import BundleError, ReprexError

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_DIGEST = re.compile(r"sha256=([0-9a-fA-F]{64})")
CHUNK = 1024 * 1024


class FetchError(ReprexError):
    """The bundle could not be fetched; one line for the user."""


class DigestMismatch(FetchError, BundleError):
    """The bytes fetched are not the ones the #sha256= fragment names (a bundle error: exit 2)."""


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


def transport_params(uri: str, environ=None) -> dict:
    """smart_open's transport parameters for `uri`, from the environment only.

    s3: boto3's own chain (AWS_* variables, ~/.aws, instance roles); an S3-compatible
    server is AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3 (boto3 >= 1.28 reads both), so
    nothing about the endpoint or its keys is ever on a command line. gs: google-auth's
    default credentials. azure: smart_open needs a client, made from
    AZURE_STORAGE_CONNECTION_STRING."""
    environ = os.environ if environ is None else environ
    if uri.startswith(("http://", "https://")):
        return {"headers": http_headers(environ), "timeout": 60}
    if uri.startswith("azure://"):
        conn = environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if not conn:
            raise FetchError("azure:// needs AZURE_STORAGE_CONNECTION_STRING in the environment")
        try:
            from azure.storage.blob import BlobServiceClient
        except ImportError:
            raise FetchError("azure:// needs azure-storage-blob: pip install 'smart_open[azure]'") from None
        return {"client": BlobServiceClient.from_connection_string(conn)}
    return {}


def file_path(url: str) -> Path:
    """The local path of a file:// URL (file:///abs/path, percent-decoded as file URLs are)."""
    return Path(unquote(url[len("file://"):]))


def split_digest(source: str) -> tuple[str, str | None]:
    """(`source` without its `#sha256=` fragment, the lower-case digest or None).

    Only a URI, or a path that does not exist as written, has a fragment (a local file may
    have '#' in its name). Any other fragment is a usage error: a typo must not silently
    turn a verified fetch into an unverified one."""
    base, sep, fragment = source.rpartition("#")
    if not sep or not (_URI.match(source) or not Path(source).exists()):
        return source, None
    found = _DIGEST.fullmatch(fragment)
    if found is None:
        raise FetchError(f"{safe_uri(source)}: a bundle's #fragment must be #sha256=<64 hex digits>")
    return base, found.group(1).lower()


def fetch_bundle(source: str, *, limit: int = MAX_TOTAL_BYTES) -> Path:
    """A local path to read the bundle at `source` from: the path itself, or a private temp
    copy (named reprex-fetch-*) of a download or of a local file a digest was asked for."""
    source, digest = split_digest(source)
    if not _URI.match(source) or source.startswith("file://"):
        path = file_path(source) if source.startswith("file://") else Path(source)
        if digest is None:
            return path
        if not path.is_file():
            raise FetchError(f"{safe_uri(source)}: a #sha256= digest needs a bundle file (this is "
                             f"{'a directory' if path.is_dir() else 'not there'})")
        return _copy(source, lambda: open(path, "rb"), digest, limit)
    try:
        import smart_open
    except Exception as exc:  # an optional extra: missing, or broken by a project's older pins
        raise FetchError(f"fetching {safe_uri(source.split('://', 1)[0])}:// bundles needs smart_open ({safe_uri(str(exc))}): "
                         "pip install 'reprex[fetch]', or download the bundle and pass its path") from None
    params = transport_params(source)
    return _copy(source, lambda: smart_open.open(source, "rb", transport_params=params, compression="disable"),
                 digest, limit)


def _copy(source: str, opener, digest: str | None, limit: int) -> Path:
    """Copy into a private temp file, hashing as it goes; refuse an oversize or mismatched one."""
    fd, tmp = tempfile.mkstemp(prefix="reprex-fetch-", suffix=".reprex.zip")
    try:
        total, h = 0, hashlib.sha256()
        with os.fdopen(fd, "wb") as out, opener() as src:
            while chunk := src.read(CHUNK):
                total += len(chunk)
                if total > limit:
                    raise FetchError(f"{safe_uri(source)}: larger than {limit} bytes; refusing it")
                h.update(chunk)
                out.write(chunk)
        if digest is not None and h.hexdigest() != digest:
            raise DigestMismatch(f"{safe_uri(source)}: its sha256 is {h.hexdigest()}, not the {digest} its "
                                 "#sha256= names (tampered with, or another upload); refusing it")
        return Path(tmp)
    except FetchError:
        Path(tmp).unlink(missing_ok=True)
        raise
    except Exception as exc:  # smart_open raises many kinds; give one line
        Path(tmp).unlink(missing_ok=True)
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FetchError(f"cannot fetch {safe_uri(source)}: {safe_uri(msg)}") from None


def safe_uri(text: str) -> str:
    """Never echo credentials from a URI: userinfo, presigned query strings, tokens."""
    from reprex.redact import Redactor

    text = re.sub(r"://[^/@\s]+@", "://<redacted>@", text)
    text = re.sub(r"\?[^\s'\"#]*", "?<query redacted>", text)
    return Redactor().text(text, "error")
