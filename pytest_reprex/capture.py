"""`pytest --reprex-capture DIR`: turn each failing test into a bundle.

For a failed test this module
1. plans how a standalone script can rebuild every value the test function got:
   a literal (its repr round-trips through `ast.literal_eval`), a pickle, or, for a
   value that does neither, its fixture function's source run in its own module
   (flagged in the manifest); `tmp_path` and paths into pytest's temporary
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

import ast
import dataclasses
import inspect
import os
import re
import sys
import textwrap
from pathlib import Path

from pytest_reprex.script import Plan, Value, write
from reprex.capture.tests import (Secrets, Tree, as_literal, as_pickle, build_test_bundle, holds_secret, materialize,
                                  paths_in, rename_test_tmp, scratch_environ, snapshot_files, type_name, under)

MAX_COPY_FILES = 5000
BUILTIN = {"tmp_path": "tmp_path", "tmpdir": "tmpdir", "tmp_path_factory": "tmp_path_factory",
           "monkeypatch": "monkeypatch", "request": "request", "record_property": "stub",
           "record_xml_attribute": "stub", "record_testsuite_property": "stub"}

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


# -- paths ---------------------------------------------------------------------------

# -- values ----------------------------------------------------------------------------

def _fixture_source(fixturedef, tree: Tree):
    """(module name, its file, function name, dedented source, first line) of a project fixture, or None."""
    func = getattr(fixturedef, "func", None)
    if func is None or inspect.ismethod(func):
        return None
    func = getattr(func, "__func__", func)
    try:
        file = inspect.getsourcefile(func)
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None
    rel = tree.rel(file) if file else None
    if rel is None:
        return None
    if getattr(func, "__qualname__", "") != getattr(func, "__name__", None):
        return None  # defined in a class or a function: no module-level name to run it under
    module = getattr(func, "__module__", None)
    if not module or module not in sys.modules:
        return None
    try:
        node = ast.parse(source).body[0]
    except SyntaxError:
        return None
    if not isinstance(node, ast.FunctionDef) or node.name != func.__name__:
        return None  # async fixtures and odd shapes
    return module, rel, func.__name__, source, func.__code__.co_firstlineno


def _param_value(name: str, param, secrets: Secrets) -> Value:
    expr = as_literal(param, secrets)
    if expr is not None:
        return Value(f"{name}.param", "literal", type_name(param), expr)
    blob = as_pickle(param, secrets)
    if blob is not None:
        return Value(f"{name}.param", "pickle", type_name(param), blob)
    if holds_secret(param):
        return Value(f"{name}.param", "unsupported", type_name(param),
                     note="request.param: redaction would change it (a secret): left out of the bundle")
    return Value(f"{name}.param", "unsupported", type_name(param),
                 note="request.param neither a literal nor picklable")


def plan_values(item, tree: Tree, secrets: Secrets | None = None) -> list[Value]:
    """How the script makes each value; nothing that holds a secret is embedded (see `Secrets`)."""
    if secrets is None:
        secrets = Secrets()
    info = item._fixtureinfo
    funcargs = item.funcargs or {}
    params = dict(getattr(getattr(item, "callspec", None), "params", {}) or {})
    planned: dict[str, Value] = {}
    visiting: set[str] = set()

    def fixturedef(name):
        defs = info.name2fixturedefs.get(name)
        return defs[-1] if defs else None

    def source_value(name, fd, autouse=False) -> Value | None:
        found = _fixture_source(fd, tree) if fd is not None else None
        if found is None:
            return None
        module, module_file, function, source, lineno = found
        for dep in fd.argnames:
            if dep != "request":
                make(dep)
        param = None
        if getattr(fd, "params", None) is not None and name in params:
            param = _param_value(name, params[name], secrets)
        return Value(name, "source", type_name(funcargs.get(name)), module=module, module_file=module_file,
                     function=function,
                     source=source, lineno=lineno, argnames=list(fd.argnames), param=param, autouse=autouse)

    def make(name, autouse=False):
        if name in planned or name in visiting:
            return
        visiting.add(name)
        try:
            if name in BUILTIN:
                planned[name] = Value(name, BUILTIN[name], type_name(funcargs.get(name)))
                return
            fd = fixturedef(name)
            if autouse:  # its side effects matter, not its value: run it if it is the project's
                value = source_value(name, fd, autouse=True)
                if value is not None:
                    planned[name] = value
                return
            value = funcargs.get(name)
            expr = as_literal(value, secrets)
            if expr is not None:
                planned[name] = Value(name, "literal", type_name(value), expr)
                return
            blob = as_pickle(value, secrets)
            if blob is not None:
                planned[name] = Value(name, "pickle", type_name(value), blob)
                return
            secret = holds_secret(value)
            made = source_value(name, fd)
            if made is not None:
                made.note = ("redaction would change it (a secret): rebuilt from its fixture's source" if secret
                             else "not picklable: rebuilt from its fixture's source")
                planned[name] = made
                return
            planned[name] = Value(name, "unsupported", type_name(value),
                                  note="redaction would change it (a secret): left out of the bundle" if secret
                                  else "neither a literal nor picklable, and not a project fixture")
        finally:
            visiting.discard(name)

    argnames = list(info.argnames)
    for name in info.initialnames:
        if name not in argnames:
            make(name, autouse=True)
    for name in argnames:
        make(name)
    return list(planned.values())


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

def _conftests(item, tree: Tree) -> list[tuple[str, str]]:
    """The conftest.py modules pytest loaded for this test, outermost first."""
    test_dir = Path(item.path).resolve().parent
    found = []
    modules = [m for m in item.config.pluginmanager.get_plugins()
               if inspect.ismodule(m) and os.path.basename(getattr(m, "__file__", "") or "") == "conftest.py"]
    for module in modules:
        name = module.__name__
        file = getattr(module, "__file__", None)
        if not file:
            continue
        path = Path(file).resolve()
        rel = tree.rel(path)
        if rel is None or not under(test_dir, path.parent):
            continue
        found.append((len(path.parts), name, rel))
    return [(name, rel) for _, name, rel in sorted(found)]


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


def _sys_path(tree: Tree) -> list[str]:
    out = []
    for entry in sys.path:
        rel = tree.rel(entry or os.getcwd())
        if rel is not None and Path(tree.base / rel).is_dir() and rel not in out:
            out.append(rel)
    return out


def _script_name(item, tree: Tree) -> str:
    stem = re.sub(r"[^A-Za-z0-9_]", "_", getattr(item, "originalname", None) or item.name.split("[")[0])
    name = f"reprex_{stem}.py"
    n = 1
    while (tree.base / name).exists():
        n += 1
        name = f"reprex_{stem}_{n}.py"
    return name


def bundle_name(nodeid: str) -> str:
    name = nodeid.replace(".py::", "-").replace("::", "-").replace("/", "-")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip(".-") or "test"
    return name[:100]


def make_plan(item, tree: Tree, snap: dict | None, random_state: str | None,
              secrets: Secrets | None = None, nodeid: str | None = None) -> tuple[Plan, list[Value]]:
    """`nodeid`: the test's id as the bundle may show it (redacted)."""
    import unittest

    from reprex import __version__

    values = plan_values(item, tree, secrets)
    cls = getattr(item, "cls", None)
    is_unittest = isinstance(cls, type) and issubclass(cls, unittest.TestCase)
    class_path = cls.__qualname__.split(".") if cls is not None else []
    cwd_rel = tree.rel(os.getcwd()) or "."
    seed = os.environ.get("PYTHONHASHSEED")
    plan = Plan(
        nodeid=nodeid or item.nodeid, module=item.module.__name__,
        module_file=tree.rel(item.path) or Path(item.path).name,
        function=getattr(item, "originalname", None) or item.name.split("[")[0], class_path=class_path,
        unittest=is_unittest, argnames=[] if is_unittest else list(item._fixtureinfo.argnames),
        values=[] if is_unittest else values, conftests=_conftests(item, tree), sys_path=_sys_path(tree),
        cwd=cwd_rel if Path(tree.base / cwd_rel).is_dir() else ".",
        hash_seed=seed if seed and seed.isdigit() else None,
        old_base=snap["base"] if snap else None, tmp_rel=snap["tmp_rel"] if snap else None,
        tmp_dirs=snap["dirs"] if snap else [], random_state=random_state,
        randomly_seed=_randomly_seed(item.config), tool_version=__version__,
    )
    return plan, plan.values


def _randomly_seed(config):
    if not config.pluginmanager.hasplugin("randomly"):
        return None
    seed = config.getoption("randomly_seed", None)
    return seed if isinstance(seed, (int, str)) else None


def randomly_active(config) -> bool:
    return config.pluginmanager.hasplugin("randomly") and bool(config.getoption("randomly_reset_seed", True))


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
    script_name = _script_name(item, tree)
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
