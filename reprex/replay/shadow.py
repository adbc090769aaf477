"""`--with PATH`: the checkout's own packages replace the bundle's copies of them.

A bundle carries the project's own source files when the failing run opened them (files/mypkg/,
files/src/flask/), and the replay's work dir comes first on sys.path (the script's dir, pytest's
rootdir or `pythonpath = src`, the entry's pythonpath): the bundle's copy would shadow the fixed
checkout that `--with ../fixed` installed, and the replay would say `reproduced` for a fix.

So for each `--with` spec that is a local path (a checkout, a wheel file), the files its install
provides are listed (the overlay's RECORD on the local backend, the built wheel's members on
docker), and the work files that are a copy of one of them under an import root (a directory that
is not itself a package) are left out of the replay's work dir. Only the replay's scratch copy
(local) or input mount (docker): the bundle is never changed. Files of other packages, the
entry's own files, conftest.py files and a `tests`/`test` package a wheel ships stay.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

# top-level names a sloppy wheel ships that are the project's tests, not the code under test
_KEEP_NAMES = {"tests", "test", "testing", "conftest", "docs", "examples", "__pycache__"}


def is_local(spec: str) -> bool:
    """A spec naming a path on this machine (a checkout, a wheel or sdist file)."""
    return os.path.exists(spec)


def _importable(rel: str) -> bool:
    """A path a package install provides that could be shadowed: under a top-level import name."""
    parts = rel.split("/")
    if not parts or not parts[0] or parts[0] in ("..", ".") or parts[0].endswith((".dist-info", ".data", ".pth")):
        return False
    if "__pycache__" in parts or rel.endswith((".pyc", ".pyo")):
        return False
    return top_name(rel) not in _KEEP_NAMES


def top_name(rel: str) -> str:
    """The import name a provided path belongs to: `mypkg/x.py` -> mypkg, `six.py` -> six,
    `_speedups.cpython-311-x86_64-linux-gnu.so` -> _speedups."""
    first = rel.split("/", 1)[0]
    return first.split(".", 1)[0] if "/" not in rel else first


def record_paths(dist_info: Path) -> list[str]:
    """The installed files a dist-info's RECORD names, relative to the install dir."""
    try:
        text = (dist_info / "RECORD").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for row in csv.reader(io.StringIO(text)):
        if row and _importable(row[0].replace("\\", "/")):
            out.append(row[0].replace("\\", "/"))
    return out


def wheel_paths(wheel: Path) -> list[str]:
    """The files a wheel installs into site-packages (its members, less its metadata)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return []
    out = []
    for name in names:
        parts = name.split("/")
        if len(parts) > 2 and parts[0].endswith(".data") and parts[1] in ("purelib", "platlib"):
            name = "/".join(parts[2:])  # installed into site-packages too
        if not name.endswith("/") and _importable(name):
            out.append(name)
    return out


def dist_infos(directory: Path) -> set[str]:
    try:
        return {p.name for p in directory.iterdir() if p.name.endswith(".dist-info")}
    except OSError:
        return set()


@dataclass
class Replaced:
    """The work files left out, and one line per spec saying what replaced what."""

    drop: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def keep(self, files: dict[str, bytes]) -> dict[str, bytes]:
        return {rel: data for rel, data in files.items() if rel not in self.drop} if self.drop else files


def plan(files, provided: dict[str, list[str]], keep: set[str] = frozenset()) -> Replaced:
    """Which work files (`files`: bundle-relative paths) are a copy of what a `--with` spec
    provides (`provided`: spec -> the paths its install holds). A work file `P/x` is a copy when
    `x` is a provided path and P is an import root: the work dir itself or a directory with no
    `__init__.py` among the work files (inside a package, `P/mypkg` is a subpackage, not mypkg).
    `keep`: files never left out (the entry's script and arguments)."""
    names = set(files)
    out = Replaced()
    for spec, paths in provided.items():
        wanted = set(paths)
        hits: dict[str, list[str]] = {}  # import name -> the dirs its copies were under
        for rel in sorted(names):
            if rel in keep or rel.rsplit("/", 1)[-1] == "conftest.py":
                continue
            parts = rel.split("/")
            for i in range(len(parts)):
                tail = "/".join(parts[i:])
                if tail not in wanted:
                    continue
                prefix = "/".join(parts[:i])
                if prefix and f"{prefix}/__init__.py" in names:
                    continue
                out.drop.add(rel)
                where = f"{prefix}/{top_name(tail)}" if prefix else top_name(tail)
                seen = hits.setdefault(top_name(tail), [])
                if where not in seen:
                    seen.append(where)
                break
        if hits:
            copies = ", ".join(f"{n} ({', '.join(w)})" if w != [n] else n for n, w in sorted(hits.items()))
            out.notes.append(f"--with {spec} replaces the bundle's copy of {copies}")
    return out


def entry_files(args: list[str], files) -> set[str]:
    """The entry's arguments that name work files (the script, pytest's test files): kept."""
    names = set(files)
    out = set()
    for arg in args:
        rel = arg.split("::", 1)[0]
        rel = rel[2:] if rel.startswith("./") else rel
        if rel in names:
            out.add(rel)
    return out
