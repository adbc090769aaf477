"""What reprex keeps between runs, and removing what has gone unused.

Everything replay reuses is keyed by content and guarded by a `<name>.lock` file beside it
(reprex.fsutil.locked), whose mtime is set each time the lock is taken: that is the
item's last use. Items:

  envs/py3.11-<hash>/         local-backend virtualenvs
  wheels/<lock>-<target>/     pins' wheels downloaded on the host; wheels/with-<hash>/ for --with
  docker/<key>.lock           docker env images reprex-env:<key> (the image lives in the daemon)
  validated/xx/<hash>         schema checks that passed (tiny)
  resolved/xx/<key>.json      `--with NAME==V` resolutions (tiny; reprex.replay.with_resolve)
  bundles/                    bundles written by reprex.install(): the user's, never pruned here

A replay holds `<name>.inuse` shared while it uses an item (fsutil.hold_in_use); an item is
removed only when both its locks can be taken exclusively, so one being built or used is
left alone. Images still used by a container are left alone (the daemon refuses, and we say
so). Lock files are kept (tiny): unlinking one a process waits on would break the exclusion.
Stopped reprex containers that interrupted replays left go too, through the docker backend's
one cleanup seam (reprex.replay.docker.cleanup), which the pytest plugin also ends a session with.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from reprex.fsutil import cache_root, lock_for, use_lock

KINDS = ("env", "wheels", "image", "validated", "resolved")
MARKERS = {"validated": "schema checks", "resolved": "--with resolutions"}  # tiny files: one line each kind


@dataclass
class Item:
    kind: str  # env | wheels | image | validated | resolved
    name: str
    size: int
    last_used: float  # Unix time
    path: str | None = None  # the directory or file; None for images
    image: str | None = None  # the image reference, for images

    def to_dict(self) -> dict:
        return asdict(self)


def _tree_size(path: Path) -> int:
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except (NotADirectoryError, FileNotFoundError, PermissionError):
            try:
                total += current.stat().st_size if current.is_file() else 0
            except OSError:
                pass
    return total


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _dir_items(root: Path, kind: str) -> list[Item]:
    if not root.is_dir():
        return []
    items = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or entry.is_symlink():
            continue
        lock = lock_for(entry)
        used = _mtime(lock) or _mtime(entry) or 0.0
        items.append(Item(kind, entry.name, _tree_size(entry), used, path=str(entry)))
    return items


def _marker_items(root: Path, kind: str) -> list[Item]:
    if not root.is_dir():
        return []
    files = [p for p in root.glob("*/*") if p.is_file()]
    if not files:
        return []
    # one line for all of them: thousands of tiny markers are not worth listing one by one
    return [Item(kind, f"{len(files)} {MARKERS[kind]}", sum(_size(p) for p in files),
                 max(_mtime(p) or 0.0 for p in files), path=str(root))]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def image_items(engine, cache: Path) -> list[Item]:
    """reprex-env images in the daemon; last use from cache/docker/<key>.lock, else their
    creation. Sizes are what removing the image frees: its own layers, not those it shares
    with the base image and the other env images (`docker system df -v`)."""
    from reprex.replay.docker.layout import ENV_REPO, LABEL

    items = []
    for image in (engine.json("GET", "/system/df") or {}).get("Images") or []:
        if (image.get("Labels") or {}).get(LABEL) != "1":
            continue
        own = int(image.get("Size") or 0) - max(0, int(image.get("SharedSize") or 0))
        for ref in image.get("RepoTags") or []:
            if not ref.startswith(f"{ENV_REPO}:"):
                continue
            key = ref.split(":", 1)[1]
            used = _mtime(cache / "docker" / f"{key}.lock") or float(image.get("Created") or 0)
            items.append(Item("image", ref, own, used, image=ref))
    return items


def inventory(cache: Path | None = None, *, engine=None, docker: bool = True) -> tuple[list[Item], str | None]:
    """(items, why docker images are missing or None)."""
    cache = cache or cache_root()
    items = _dir_items(cache / "envs", "env") + _dir_items(cache / "wheels", "wheels") + \
        [i for kind in MARKERS for i in _marker_items(cache / kind, kind)]
    why = None
    if docker:
        try:
            if engine is None:
                from reprex.replay.docker import connect

                engine = connect()
            items += image_items(engine, cache)
        except Exception as exc:  # InfraError (no daemon), EngineError
            why = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return items, why


@dataclass
class PruneResult:
    removed: list[Item]
    kept: list[tuple[Item, str]]  # (item, why it stays)
    containers: int = 0  # stopped reprex containers removed
    docker_error: str | None = None

    @property
    def freed(self) -> int:
        return sum(i.size for i in self.removed)


def _try_lock(lock: Path):
    """The lock if nobody holds it (without touching its mtime), else None."""
    try:
        fh = open(lock, "a")
    except OSError:
        return None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    return fh


def _free(lock: Path) -> list | None:
    """Both locks of an item (its build lock and its in-use lock) taken exclusively, or None
    when a replay is building or using it. Lock files are never unlinked: a process waiting
    on one must keep excluding the others."""
    first = _try_lock(lock)
    if first is None:
        return None
    second = _try_lock(use_lock(lock))
    if second is None:
        first.close()
        return None
    return [first, second]


def prune(older_than_s: float, *, dry_run: bool = False, cache: Path | None = None, engine=None,
          docker: bool = True, include_kept: bool = False) -> PruneResult:
    """Remove items last used more than `older_than_s` ago (0: everything not in use)."""
    cache = cache or cache_root()
    cutoff = time.time() - older_than_s
    items, why = inventory(cache, engine=engine, docker=docker)
    result = PruneResult([], [], docker_error=why)
    for item in items:
        if item.last_used > cutoff:
            result.kept.append((item, "used recently"))
            continue
        if item.kind == "image":
            held = _free(cache / "docker" / f"{item.image.split(':', 1)[1]}.lock")
            if held is None:
                result.kept.append((item, "in use"))
                continue
            try:
                if not dry_run:
                    engine = engine or _engine()
                    engine.call("DELETE", f"/images/{item.image}")
                result.removed.append(item)
            except Exception as exc:
                status = getattr(exc, "status", 0)
                result.kept.append((item, "used by a container" if status == 409 else f"docker: {exc}"))
            finally:
                for fh in held:
                    fh.close()
            continue
        path = Path(item.path)
        if item.kind in MARKERS:
            if not dry_run:
                for marker in path.glob("*/*"):
                    if (_mtime(marker) or 0) <= cutoff:
                        marker.unlink(missing_ok=True)
            result.removed.append(item)
            continue
        held = _free(lock_for(path))
        if held is None:
            result.kept.append((item, "in use"))
            continue
        try:
            if not dry_run:
                shutil.rmtree(path, ignore_errors=True)
            result.removed.append(item)
        finally:
            for fh in held:
                fh.close()
    if docker and result.docker_error is None:
        try:
            from reprex.replay.docker import cleanup

            if not dry_run:
                # never younger than a minute: a replay beside us may have created one not yet started
                result.containers = cleanup(engine or _engine(), min_age_s=max(60.0, older_than_s),
                                            include_kept=include_kept)
        except Exception as exc:
            result.docker_error = getattr(exc, "reason", None) or str(exc)
    return result


def _engine():
    from reprex.replay.docker import connect

    return connect()
