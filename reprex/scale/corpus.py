"""Which bundles a run replays: the paths and URIs given, with a directory that is not itself a
bundle standing for the bundles under it (`*.zip` files and bundle directories, sorted)."""

from __future__ import annotations

import os
from pathlib import Path

from reprex.errors import ReprexError

MANIFEST = "reprex.json"
MAX_BUNDLES = 100_000


class CorpusError(ReprexError):
    exit_code = 2


def expand(sources: list[str]) -> list[str]:
    out: list[str] = []
    for source in sources:
        path = Path(source)
        if "://" in source or not path.is_dir() or (path / MANIFEST).is_file():
            out.append(source)
            continue
        found = sorted(_walk(path))
        if not found:
            raise CorpusError(f"{source}: no bundles in this directory (*.zip files or bundle directories)")
        out.extend(found)
        if len(out) > MAX_BUNDLES:
            raise CorpusError(f"over {MAX_BUNDLES} bundles given; split the run")
    return out


def _walk(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):  # links to directories are not followed
        if MANIFEST in filenames and Path(dirpath) != root:
            dirnames[:] = []
            yield dirpath
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.endswith(".zip") and not name.startswith("."):
                yield os.path.join(dirpath, name)
