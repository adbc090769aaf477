"""`reprex share`: upload a bundle under a content-addressed name and say how to replay it, verified.

The object is `<name>-<first 16 hex of its sha256>.reprex.zip` under the target prefix, so
sharing the same bytes twice lands on the same URL (the second time finds it there and
uploads nothing), and the printed replay command carries the whole digest
(`reprex replay URL#sha256=...`): whoever can write to the bucket can't swap the bundle.

A bundle is shared only when its redaction can be vouched for (`redaction_gaps`), since a
shared URL is as public as the issue it is pasted into; `force` overrides that.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from reprex.errors import BundleError, ReprexError
from reprex.fetch import safe_uri
from reprex.upload import Progress

DIGEST_PREFIX = 16  # hex characters of the sha256 in the object name: 64 bits, no accidental collisions
SCHEMES = ("s3://", "gs://", "azure://", "file://", "https://")


class ShareRefused(ReprexError):
    """A bundle or target share won't use (redaction it can't vouch for, a bad target): exit 2."""


@dataclass
class Shared:
    url: str
    sha256: str
    size: int
    uploaded: bool  # False: the same bytes were already there
    body: str  # the GitHub issue body, linking the shared copy
    gaps: list[str]  # what redaction_gaps found (non-empty only when forced)

    @property
    def verified_url(self) -> str:
        return f"{self.url}#sha256={self.sha256}"

    def to_json(self) -> dict:
        return {"url": self.url, "sha256": self.sha256, "size": self.size, "body": self.body,
                "already_shared": not self.uploaded, "redaction_gaps": self.gaps}


def object_name(bundle_name: str, sha256: str) -> str:
    """A name safe in every backend's key syntax (the bundle's name is a stranger's text)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", bundle_name).strip(".-")[:80] or "bundle"
    return f"{stem}-{sha256[:DIGEST_PREFIX]}.reprex.zip"


def target_prefix(target: str) -> str:
    """TARGET as a URL prefix ending in '/'. A plain path is a file:// directory. Credentials
    in the URL, a query (a presigned URL) or a fragment are refused: keys come from the
    environment, and a prefix takes many names."""
    if "://" not in target:
        return Path(target).expanduser().resolve().as_uri().rstrip("/") + "/"
    if target.startswith("http://"):
        raise ShareRefused(f"{safe_uri(target)}: share over https:// only (a token would travel in clear)")
    if not target.startswith(SCHEMES):
        raise ShareRefused(f"{safe_uri(target)}: share to {', '.join(s + '...' for s in SCHEMES)} or a directory")
    rest = target.split("://", 1)[1]
    if "@" in rest.split("/", 1)[0]:
        raise ShareRefused(f"{safe_uri(target)}: credentials come from the environment, never from the target URL")
    if "?" in target or "#" in target:
        raise ShareRefused(f"{safe_uri(target)}: a target is a prefix: no ?query or #fragment")
    if not rest.strip("/"):
        raise ShareRefused(f"{target}: name a bucket, host or directory")
    return target.rstrip("/") + "/"


# -- is the redaction complete? ---------------------------------------------------------------

def redaction_gaps(bundle, environ: Mapping[str, str] | None = None) -> list[str]:
    """Why this bundle's redaction can't be vouched for; empty when it can.

    Incomplete means any of:
    - no redactions report: `redactions` is missing, or an entry lacks a str kind and where
      and an int count. reprex.draft.seal always writes one, so without it the bundle was not
      sealed by reprex's redaction at all;
    - a file under files/ that is binary (a NUL byte, or not UTF-8): capture leaves those out
      ("can't be checked for secrets") unless --include forced them in, and redaction sees
      only their text runs, never what a compressed or pickled payload holds;
    - an argument pickle kept in run.json that capture's own judgment (reprex.capture.scrub
      .scrub_pickle) would now drop;
    - anything a Redactor over the sharer's environment would still replace, in any member:
      the secrets this machine holds now (the upload's own credentials among them), its
      identity, every token format, in every encoding the redactor decodes.
    Not gaps: files skipped and pickles dropped (left out, and listed), probes that failed
    (they recorded nothing) - the report is complete about those.
    """
    from reprex.redact import Redactor

    gaps: list[str] = []
    if not _report_ok(bundle.manifest.get("redactions")):
        gaps.append("reprex.json has no complete redactions report (not sealed by reprex's redaction)")
    red = Redactor(dict(os.environ if environ is None else environ))
    for name, data in sorted(bundle.entries().items()):
        if name.startswith("files/") and _binary(data):
            gaps.append(f"{name} is binary: redaction can't read it (it was added with --include)")
        kinds = red.finds(data)
        if kinds:
            gaps.append(f"{name} still holds what redaction replaces ({', '.join(kinds)})")
    run = bundle.json("run.json", {})
    for where, why in _pickle_gaps(run, red):
        gaps.append(f"run.json: the pickle of {where} is kept, but {why}")
    return gaps


def _report_ok(report) -> bool:
    return isinstance(report, list) and all(
        isinstance(r, dict) and isinstance(r.get("kind"), str) and isinstance(r.get("where"), str)
        and isinstance(r.get("count"), int) and not isinstance(r.get("count"), bool) for r in report)


def _binary(data: bytes) -> bool:
    if b"\0" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _pickle_gaps(node, red, depth: int = 0) -> list[tuple[str, str]]:
    """Kept argument pickles ({"repr", "pickle"} items) that capture's judgment would now drop."""
    from reprex.capture.scrub import scrub_pickle

    out: list[tuple[str, str]] = []
    if depth > 64:
        return out
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict) and isinstance(value.get("pickle"), str):
                why = scrub_pickle(copy.deepcopy(value), red)
                if why:
                    out.append((f"argument {str(key)[:80]!r}", why))
            else:
                out.extend(_pickle_gaps(value, red, depth + 1))
    elif isinstance(node, list):
        for value in node:
            out.extend(_pickle_gaps(value, red, depth + 1))
    return out


# -- sharing --------------------------------------------------------------------------------------

def digest(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def share(source: str | os.PathLike, target: str, *, force: bool = False,
          environ: Mapping[str, str] | None = None, progress: Progress | None = None) -> Shared:
    """Upload the bundle at `source` (a local zip or directory) under `target`; the issue body
    links it. Its id is checked on reading, its redaction before anything leaves the machine."""
    from reprex import upload
    from reprex.bundle import Bundle
    from reprex.render import ShareLink, render

    if "://" in str(source):
        raise ShareRefused(f"{safe_uri(str(source))}: share a bundle file or directory on this machine")
    path = Path(source)
    prefix = target_prefix(target)  # before reading: a bad target is a usage error either way
    bundle = Bundle.read(path)
    gaps = redaction_gaps(bundle, environ)
    if gaps and not force:
        more = f" (and {len(gaps) - 1} more)" if len(gaps) > 1 else ""
        raise ShareRefused(f"{path}: not shared, its redaction is incomplete: {gaps[0]}{more}; "
                           "check it, or share it anyway with --force")
    tmp = None
    if path.is_dir():  # the same deterministic zip `capture` writes
        fd, tmp = tempfile.mkstemp(prefix="reprex-share-", suffix=".reprex.zip")
        with os.fdopen(fd, "wb") as fh:
            fh.write(bundle.to_zip_bytes())
        path = Path(tmp)
    try:
        sha256, size = digest(path)
        url = prefix + object_name(bundle.name, sha256)
        uploaded = not upload.exists(url, size, sha256)
        if uploaded:
            upload.put(url, path, progress)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return Shared(url=url, sha256=sha256, size=size, uploaded=uploaded,
                  body=render(bundle, "gh", share=ShareLink(url, sha256)), gaps=gaps)


def share_link(url: str, bundle_file: Path | None):
    """`render --share URL`: the link and its digest, from URL#sha256=... or else from the
    bundle file's own bytes (a directory has no bytes to pin: give the digest)."""
    from reprex.fetch import split_digest
    from reprex.render import ShareLink

    base, sha256 = split_digest(url) if "#" in url else (url, None)
    if not base.startswith(SCHEMES):  # what `reprex replay` fetches: a typo is not a link to print
        raise ShareRefused(f"--share {safe_uri(base)}: not a URL reprex replay fetches "
                           f"({', '.join(s + '...' for s in SCHEMES)})")
    if sha256 is None:
        if bundle_file is None or not bundle_file.is_file():
            raise ShareRefused("--share needs URL#sha256=<digest> unless BUNDLE is the shared file itself")
        sha256, _ = digest(bundle_file)
    elif bundle_file is not None and bundle_file.is_file() and digest(bundle_file)[0] != sha256:
        raise BundleError(f"{bundle_file}: its sha256 is not the {sha256} that --share names")
    return ShareLink(base, sha256)
