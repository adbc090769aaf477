"""A Serve application's working_dir, materialized the way Ray does it (for check-serve).

Ray's own steps, reproduced without Ray: the headers its runtime_env download sends, the
size cap, unzipping with the single top-level directory removed (ray/_private/
runtime_env/packaging.py), and then the working dir copied as bundle files (secret files
and skipped directories left out) and the files an import path could resolve to.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path, PurePosixPath
from typing import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

from reprex.capture.inputs import SECRET_FILE_PATTERNS, SKIP_DIRS
from reprex.ray.section import BEARER_ENV, USER_AGENT_ENV

DEFAULT_USER_AGENT = "ray-runtime-env-curl/1.0"
MAX_DOWNLOAD = 512 * 1024 * 1024
MAC_OS_DIR = "__MACOSX"


# -- Ray's steps, reproduced ------------------------------------------------------------

def ray_headers(environ: Mapping[str, str]) -> dict:
    """The headers Ray sends with http(s) working_dir downloads (ProtocolsProvider._http_headers)."""
    headers = {"User-Agent": environ.get(USER_AGENT_ENV, DEFAULT_USER_AGENT), "Accept": "*/*"}
    if environ.get(BEARER_ENV):
        headers["Authorization"] = f"Bearer {environ[BEARER_ENV]}"
    return headers


def fetch(url: str, environ: Mapping[str, str]) -> bytes:
    try:
        import smart_open
    except Exception as exc:  # an optional extra (reprex[fetch] or reprex[ray])
        raise RuntimeError(f"fetching an http(s) working_dir needs smart_open ({exc}): "
                           "pip install 'reprex[fetch]'") from None

    with smart_open.open(url, "rb", transport_params={"headers": ray_headers(environ), "timeout": 60}) as fin:
        data = fin.read(MAX_DOWNLOAD + 1)
    if len(data) > MAX_DOWNLOAD:
        raise ValueError(f"the working_dir archive is over {MAX_DOWNLOAD // 2 ** 20} MiB")
    return data


def _safe_top_dir(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and ":" not in name


def top_level_dir(names: list[str]) -> str | None:
    """Ray's get_top_level_dir_from_compressed_package: the single top-level directory, if any
    (a second one named __MACOSX is ignored)."""
    top = None
    for name in names:
        if "/" not in name:
            return None
        head = name.split("/")[0]
        if head == MAC_OS_DIR:
            continue
        if top is None:
            if not _safe_top_dir(head):
                return None
            top = head
        elif head != top:
            return None
    return top


def unpack_like_ray(data: bytes, target: Path, *, remove_top_level_directory: bool) -> None:
    """Ray's unzip_package: unsafe names skipped, the single top-level directory removed."""
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        top = top_level_dir(names) if remove_top_level_directory else None
        for info in zf.infolist():
            name = info.filename
            if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
                continue
            parts = PurePosixPath(name).parts
            if top is not None:
                if not parts or parts[0] != top:
                    continue  # __MACOSX beside the top-level directory
                parts = parts[1:]
            if not parts or ".." in parts:
                continue
            dest = (root / Path(*parts)).resolve()
            if root not in dest.parents and dest != root:
                continue
            if name.endswith("/"):
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)


def split_credentials(url: str) -> tuple[str, str | None]:
    """(url without user:token@, the userinfo or None)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), unquote(userinfo)


# -- the working dir, as files -------------------------------------------------------------

def _is_secret_file(rel: str) -> bool:
    import fnmatch

    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in SECRET_FILE_PATTERNS)


def copy_tree(src: Path, dst: Path, *, max_file: int, max_total: int) -> tuple[list[str], list[dict]]:
    """Copy what a repro of this working_dir may need: Python files first, then the rest, within
    the bundle's budget; never secrets files, VCS or virtualenv directories."""
    files = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if any(part in SKIP_DIRS for part in rel.split("/")[:-1]) or not path.is_file() or path.is_symlink():
            continue
        files.append((rel, path))
    files.sort(key=lambda item: (not item[0].endswith(".py"), item[0]))
    copied, skipped, total = [], [], 0
    for rel, path in files:
        size = path.stat().st_size
        if _is_secret_file(rel):
            skipped.append({"path": rel, "size": size, "reason": "looks like a secrets file"})
        elif size > max_file:
            skipped.append({"path": rel, "size": size, "reason": f"over the per-file limit ({max_file} bytes)"})
        elif total + size > max_total:
            skipped.append({"path": rel, "size": size, "reason": f"over the total budget ({max_total} bytes)"})
        else:
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            copied.append(rel)
            total += size
    return copied, skipped


def module_candidates(root: Path, module: str) -> list[tuple[str, str]]:
    """(dotted path from the working_dir root, file) for each file that could be `module` (for the hint)."""
    tail = module.split(".")
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in SKIP_DIRS for part in rel.parts):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts and parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > len(tail) and parts[-len(tail):] == tail and all(p.isidentifier() for p in parts):
            found.append((".".join(parts), rel.as_posix()))
    return found[:5]
