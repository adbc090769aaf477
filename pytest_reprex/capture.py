"""`pytest --reprex-capture DIR`: turn each failing test into a bundle.

For a failed test this module
1. plans how a standalone script can rebuild every value the test function got
   (pytest_reprex.plan); `tmp_path` and paths into pytest's temporary
   directories point at a copy of what was there when the test started.
   A value that holds a secret is never embedded: the bundle's redactor can scrub a
   literal's text but not the bytes inside a base64 pickle, so a literal or a pickle
   is used only when redaction changes neither its repr nor its pickled bytes;
   otherwise it is rebuilt from its fixture's source (flagged) or left out
   (`unsupported`). See reprex.capture.tests.Secrets;
2. copies the test run's local files (the test module, its conftest.py files, the
   project modules imported, the files the test read) into a scratch work dir and
   writes the script there;
3. hands them to reprex.capture.tests.build_test_bundle (library work, no pytest):
   it runs the script once under the recorder and builds the bundle from *that* run,
   so the bundle's expected signature is exactly what its own entry produces.
   When the script does not fail like the test did, the bundle expects the test's
   failure instead and is marked `standalone_reproduces: false`.
This module reads pytest's objects (fixture definitions, conftests, tmp_path); the
values, snapshots and the bundle itself are the library's.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path

from pytest_reprex.plan import make_plan
from pytest_reprex.plan import script_name as script_name_for
from pytest_reprex.script import write
from reprex.capture.tests import (Secrets, Tree, build_test_bundle, materialize, paths_in, rename_test_tmp,
                                  scratch_environ, snapshot_files, under)

MAX_COPY_FILES = 5000

# The audit hook is process-wide and permanent; it records only while a sink is set.
_AUDIT = {"installed": False, "sink": None}


def _audit(event, args):
    sink = _AUDIT["sink"]
    if sink is None or event != "open":
        return
    try:
        path, mode, flags = args
        if path is None or isinstance(path, int):
            return
        if mode is not None:
            reading = "r" in mode and "+" not in mode
        else:
            reading = (flags or 0) & 3 == os.O_RDONLY
        if reading:
            sink.add(os.path.abspath(os.fsdecode(path)))
    except Exception:
        pass


def install_audit_hook() -> None:
    if not _AUDIT["installed"]:
        sys.addaudithook(_audit)
        _AUDIT["installed"] = True


def begin_recording_opens() -> set:
    sink: set = set()
    _AUDIT["sink"] = sink
    return sink


def end_recording_opens() -> None:
    _AUDIT["sink"] = None


@dataclasses.dataclass
class Captured:
    nodeid: str
    path: Path | None
    reproduces: bool = False
    flagged: list[str] = dataclasses.field(default_factory=list)
    error: str = ""


class CaptureState:
    def __init__(self, directory: Path, max_count: int, timeout: float):
        self.directory = directory
        self.max_count = max_count
        self.timeout = timeout
        self.count = 0
        self.results: list[Captured] = []


# -- pytest's temporary directories ------------------------------------------------------

def basetemp(item) -> Path | None:
    factory = (item.funcargs or {}).get("tmp_path_factory") or getattr(item.config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None)
    return Path(base).resolve() if base else None


def snapshot(item) -> dict | None:
    """What the test's temporary directories held when it started (before its call).

    Runs before every test's call while capturing, so it stays cheap: small files are read
    now, bigger ones only noted (size, mtime) and read if the test fails and they are
    unchanged (see `materialize`)."""
    base = basetemp(item)
    if base is None:
        return None
    funcargs = item.funcargs or {}
    roots: list[Path] = []
    tmp = funcargs.get("tmp_path")
    if tmp is not None:
        roots.append(Path(tmp).resolve())
    for value in funcargs.values():
        for text in paths_in(value):
            try:
                path = Path(text).resolve()
            except (OSError, ValueError):
                continue
            if under(path, base) and path != base and path.exists():
                roots.append(path)
    return snapshot_files(base, roots, Path(tmp).resolve() if tmp is not None else None)


# -- the work tree ----------------------------------------------------------------------------

def work_files(item, tree: Tree, opened: set, extra=()) -> list[str]:
    """Relative paths of the project files a standalone run may need."""
    wanted: list[str] = []
    seen: set[str] = set()

    def add(path) -> None:
        rel = tree.rel(path)
        if rel is None or rel == "." or rel in seen:
            return
        full = tree.base / rel
        if not full.is_file() or full.suffix in (".pyc", ".pyo"):
            return
        seen.add(rel)
        wanted.append(rel)

    add(item.path)
    for rel in extra:
        add(tree.base / rel)
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and file.endswith(".py"):
            add(file)
    for path in sorted(opened):
        add(path)
    # packages on the way to the test module
    for rel in list(wanted):
        parent = (tree.base / rel).parent
        while under(parent, tree.base) and parent != tree.base:
            init = parent / "__init__.py"
            if init.exists():
                add(init)
            parent = parent.parent
    return wanted[:MAX_COPY_FILES]


def bundle_name(nodeid: str) -> str:
    name = nodeid.replace(".py::", "-").replace("::", "-").replace("/", "-")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip(".-") or "test"
    return name[:100]


def capture_failure(item, excinfo, state: CaptureState, snap: dict | None, opened: set,
                    random_state: str | None) -> Captured:
    from reprex.record import recorder

    base = Path(item.config.rootpath)
    if not under(Path(item.path).resolve(), base.resolve()):
        base = Path(item.path).parent
    tree = Tree(base, Path(snap["base"]) if snap else None)
    env = scratch_environ()
    secrets = Secrets(env)  # the same environment the bundle's own redactor gets
    # A parametrize id can carry a secret: nothing in the bundle (its name, file names, the
    # manifest, the script) is derived from the raw id.
    nodeid = secrets.redact(item.nodeid)
    if nodeid != item.nodeid:
        snap = rename_test_tmp(snap, secrets)
    plan, values = make_plan(item, tree, snap, random_state, secrets, nodeid)
    script_name = script_name_for(item, tree)
    name = bundle_name(nodeid)
    extra = [rel for _, rel in plan.conftests] + [v.module_file for v in values if v.module_file]
    copied = work_files(item, tree, opened, extra)
    tmp_files = materialize(snap)
    flagged = [v.name for v in values if v.how in ("source", "unsupported")]
    test = {
        "nodeid": nodeid,
        "script": script_name,
        "values": {v.name: v.manifest() for v in values},
        "flagged": flagged,
        "seeds": {"PYTHONHASHSEED": plan.hash_seed, "randomly_seed": plan.randomly_seed,
                  "random_state": plan.random_state is not None},
        "tmp": {"copied": len(tmp_files), "skipped": (snap or {}).get("skipped", [])},
        "pytest": _pytest_version(),
    }
    path, reproduces = build_test_bundle(
        base=tree.base, work_files=copied, tmp_files=tmp_files, write_script=lambda target: write(plan, target),
        script_name=script_name, nodeid=nodeid, name=name,
        expected=recorder().exception_record(excinfo.value), env=env, timeout=state.timeout,
        test=test, output=state.directory / f"{name}.reprex.zip")
    return Captured(item.nodeid, path, reproduces, flagged)


def _pytest_version() -> str:
    import pytest

    return pytest.__version__
