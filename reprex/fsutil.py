"""Atomic writes (a temp file beside the target, then rename: nothing is half-written) and the cache dir."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str | int) -> int:
    """'500k', '5M', '2g', '2GB', '1.5m' or a byte count -> bytes; ValueError otherwise."""
    if isinstance(text, int):
        return text
    value = str(text).strip().lower().removesuffix("b")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = float(value[:len(value) - len(unit)]) if value else float("nan")
    if not 0 <= number < float("inf"):
        raise ValueError(f"{text!r} is not a size")
    return int(number * _UNITS[unit])


def cache_root() -> Path:
    """reprex's cache: REPREX_CACHE_DIR, else the platform's user cache dir."""
    if os.environ.get("REPREX_CACHE_DIR"):
        return Path(os.environ["REPREX_CACHE_DIR"])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("reprex"))


def lock_for(item: Path) -> Path:
    """The lock file guarding a cached item: `<name>.lock` beside it (the whole name: env and
    wheel dir names have dots, which Path.with_suffix would cut at)."""
    return item.parent / f"{item.name}.lock"


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on `path` (one builder per cached item: pytest-xdist workers, parallel
    CLIs). Taking it stamps the file's mtime: the item's last use, for `reprex cache prune`."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            os.utime(path)
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def use_lock(lock: Path) -> Path:
    """The lock beside `X.lock` that users of the item hold shared: `X.inuse`."""
    stem = lock.name[:-len(".lock")] if lock.name.endswith(".lock") else lock.name
    return lock.with_name(stem + ".inuse")


def hold_in_use(lock: Path):
    """A shared hold on the cached item `lock` guards, for as long as the returned file is
    open: take it while holding `lock` (no gap a prune could use); `reprex cache prune`
    removes an item only when it can take both locks exclusively."""
    import fcntl

    fh = open(use_lock(lock), "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_SH)
    except BaseException:
        fh.close()
        raise
    return fh
