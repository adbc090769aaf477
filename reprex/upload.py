"""Put one local file at a URL: file://, https:// (PUT), or s3://, gs://, azure:// through smart_open.

Credentials come only from the environment and the providers' own chains (reprex.fetch's
`transport_params` and `http_headers`, the same ones a fetch uses), never from an argument.
Writes are atomic where the backend allows: file:// goes to a temp name beside the target
and is renamed; an S3/GCS/Azure object appears only when its upload completes (smart_open
aborts a failed multipart upload); an https PUT is as atomic as the server makes it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from reprex.errors import ReprexError
from reprex.fetch import CHUNK, file_path, http_headers, safe_uri, transport_params

Progress = Callable[[int, int], None]  # (bytes sent, total)


class UploadError(ReprexError):
    """The upload failed (network, permissions, the server said no): the machinery, exit 3."""

    exit_code = 3


class _Counting:
    """A reader that reports progress as its bytes are read (by requests or our copy loop)."""

    def __init__(self, fh, total: int, progress: Progress | None):
        self.fh, self.total, self.done, self.progress = fh, total, 0, progress

    def read(self, n: int = -1) -> bytes:
        chunk = self.fh.read(n)
        self.done += len(chunk)
        if self.progress is not None and chunk:
            self.progress(self.done, self.total)
        return chunk

    def __len__(self) -> int:  # requests sends a Content-Length instead of chunking
        return self.total


def exists(url: str, size: int, sha256: str) -> bool:
    """Whether the object is already at `url`: for file:// the same bytes (a local read);
    elsewhere the same size, from one cheap look, never a download (the digest in the
    printed URL still refuses other bytes at replay). Any doubt says no: the upload then
    runs and reports what is really wrong."""
    if url.startswith("file://"):
        import hashlib

        path = file_path(url)
        if not path.is_file() or path.stat().st_size != size:
            return False
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
        return h.hexdigest() == sha256
    if url.startswith("https://"):
        return _http_exists(url, size)
    if url.startswith("s3://"):
        return _s3_exists(url, size)
    try:
        import smart_open

        with smart_open.open(url, "rb", transport_params=transport_params(url), compression="disable") as fh:
            return fh.seek(0, os.SEEK_END) == size  # s3/gs/azure readers know the length: no download
    except Exception:
        return False


def put(url: str, source: Path, progress: Progress | None = None) -> None:
    size = source.stat().st_size
    try:
        if url.startswith("file://"):
            _put_file(file_path(url), source, size, progress)
        elif url.startswith("https://"):
            _put_http(url, source, size, progress)
        else:
            _put_smart_open(url, source, size, progress)
    except ReprexError:
        raise
    except Exception as exc:  # boto3, google, azure, requests, OSError: one line each
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UploadError(f"cannot upload to {safe_uri(url)}: {safe_uri(msg)}") from None


def _put_file(path: Path, source: Path, size: int, progress: Progress | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as fh:
            reader = _Counting(fh, size, progress)
            while chunk := reader.read(CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared bundle from the other readers
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _put_smart_open(url: str, source: Path, size: int, progress: Progress | None) -> None:
    try:
        import smart_open
    except Exception as exc:
        raise UploadError(f"uploading to {safe_uri(url.split('://', 1)[0])}:// needs smart_open "
                          f"({safe_uri(str(exc))}): pip install 'reprex[fetch]'") from None
    with open(source, "rb") as fh, smart_open.open(url, "wb", transport_params=transport_params(url),
                                                   compression="disable") as out:
        reader = _Counting(fh, size, progress)
        while chunk := reader.read(CHUNK):
            out.write(chunk)


def _s3_exists(url: str, size: int) -> bool:
    """One HEAD through boto3 (its own env chain, AWS_ENDPOINT_URL included): smart_open's
    reader would retry an unreachable endpoint for a minute before the upload even starts."""
    try:
        import boto3

        bucket, _, key = url[len("s3://"):].partition("/")
        return boto3.client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"] == size
    except Exception:
        return False


def _http_exists(url: str, size: int) -> bool:
    import requests

    try:
        resp = requests.head(url, headers=http_headers(), timeout=30, allow_redirects=True)
    except requests.RequestException:
        return False
    _refuse_auth(resp, url)
    return resp.status_code == 200 and resp.headers.get("Content-Length") == str(size)


def _put_http(url: str, source: Path, size: int, progress: Progress | None) -> None:
    import requests

    headers = {**http_headers(), "Content-Type": "application/zip"}
    with open(source, "rb") as fh:
        resp = requests.put(url, data=_Counting(fh, size, progress), headers=headers, timeout=300)
    _refuse_auth(resp, url)
    if resp.status_code not in (200, 201, 204):
        raise UploadError(f"cannot upload to {safe_uri(url)}: the server answered HTTP {resp.status_code}")


def _refuse_auth(resp, url: str) -> None:
    if resp.status_code in (401, 403):
        raise UploadError(f"{safe_uri(url)}: HTTP {resp.status_code}, not allowed (credentials come from "
                          "REPREX_HTTP_BEARER_TOKEN / REPREX_HTTP_HEADERS in the environment)")
