"""Render the standalone script that re-runs one failed test without pytest's runner.

The script is standard library only (plus whatever the test itself imports), lives at
the top of the bundle's files/ (the test run's root directory), and is the bundle's
entry: `reprex replay` runs it under the recorder exactly like capture did.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

PICKLE_LINE = 76


@dataclass
class Value:
    """How the script makes one fixture value or parameter."""

    name: str
    # literal | pickle | source | tmp_path | tmpdir | tmp_path_factory | monkeypatch | request | stub | unsupported
    how: str
    type: str = ""
    # literal repr or base64 pickle (for literal / pickle). The bundle's redaction sees only this
    # text, never the pickled bytes: capture embeds neither form when redaction would change the
    # value's repr or pickle (pytest_reprex.capture.Secrets)
    expr: str = "None"
    note: str = ""
    # for how == "source": the fixture function, run in its defining module's namespace
    module: str = ""
    module_file: str = ""  # relative to the work dir
    function: str = ""
    source: str = ""
    lineno: int = 1
    argnames: list[str] = field(default_factory=list)
    param: "Value | None" = None  # request.param of a parametrized fixture
    autouse: bool = False

    def manifest(self) -> dict:
        out = {"how": self.how, "type": self.type}
        if self.note:
            out["note"] = self.note
        if self.how == "source":
            out["fixture"] = f"{self.module}.{self.function}"
        if self.autouse:
            out["autouse"] = True
        return out


@dataclass
class Plan:
    nodeid: str
    module: str  # the test module's import name in the test run
    module_file: str  # relative to the work dir
    function: str  # the test function's name (without parameters)
    class_path: list[str]  # enclosing classes, outermost first
    unittest: bool
    argnames: list[str]  # what the test function is called with
    values: list[Value]  # in evaluation order (dependencies first)
    conftests: list[tuple[str, str]]  # (import name, relative file), outermost first
    sys_path: list[str]  # the test run's sys.path entries inside the work dir, relative
    cwd: str  # the test's working directory, relative to the work dir
    hash_seed: str | None = None
    old_base: str | None = None  # pytest's basetemp in the failed run
    tmp_rel: str | None = None  # the test's tmp_path, relative to basetemp
    tmp_dirs: list[str] = field(default_factory=list)  # directories to recreate under the new basetemp
    random_state: str | None = None  # repr of random.getstate() at the call
    randomly_seed: object = None
    tool_version: str = ""


def _pickle_text(b64: str) -> str:
    lines = textwrap.wrap(b64, PICKLE_LINE)
    return '"""\n' + "\n".join(lines) + '\n"""'


def _value_expr(value: Value, var: str) -> list[str]:
    if value.how == "literal":
        return [f"{var} = _retmp({value.expr})"]
    if value.how == "pickle":
        return [f"{var} = _retmp(_unpickle({_pickle_text(value.expr)}))"]
    if value.how == "tmp_path":
        return [f"{var} = TMP_PATH"]
    if value.how == "tmpdir":
        return [f"{var} = _legacy_path(TMP_PATH)"]
    if value.how == "tmp_path_factory":
        return [f"{var} = _TmpPathFactory(NEW_BASE)"]
    if value.how == "monkeypatch":
        return [f"{var} = _monkeypatch()"]
    if value.how == "request":
        return [f"{var} = _Request(None, None)"]
    if value.how == "stub":
        return [f"{var} = _stub"]
    if value.how == "source":
        lines = []
        param = "_NO_PARAM"
        if value.param is not None:
            lines += _value_expr(value.param, "_param")
            param = "_param"
        lines.append(f"{var} = _fixture({value.module!r}, {value.module_file!r}, {value.function!r}, "
                     f"_SOURCES[{value.name!r}], {value.lineno}, {value.argnames!r}, {param})")
        return lines
    return [f"{var} = None  # {value.how}: {value.note or 'not reproducible outside pytest'}"]


def render(plan: Plan) -> str:
    value_doc = "\n".join(f"    {v.name}: {v.how}{' (autouse)' if v.autouse else ''}"
                          f"{' -- ' + v.note if v.note else ''}" for v in plan.values) or "    (none)"
    sources = {v.name: v.source for v in plan.values if v.how == "source"}
    body: list[str] = []
    for value in plan.values:
        body += _value_expr(value, f"VALUES[{value.name!r}]")
    if plan.random_state:
        body.append("random.setstate(RANDOM_STATE)  # pytest-randomly's state when the test started")
    values_block = textwrap.indent("\n".join(body), "    ") if body else "    pass"
    return _TEMPLATE.format(
        nodeid_repr=repr(plan.nodeid), tool_version=plan.tool_version, value_doc=value_doc,
        hash_seed=repr(plan.hash_seed), sys_path=repr(plan.sys_path), cwd=repr(plan.cwd),
        conftests=repr(plan.conftests), module=repr(plan.module), module_file=repr(plan.module_file),
        function=repr(plan.function), class_path=repr(plan.class_path), unittest=repr(plan.unittest),
        argnames=repr(plan.argnames), old_base=repr(plan.old_base), tmp_rel=repr(plan.tmp_rel),
        tmp_dirs=repr(plan.tmp_dirs), sources=_sources_literal(sources),
        random_state=plan.random_state or "None", randomly_seed=repr(plan.randomly_seed),
        values_block=values_block,
    )


def _sources_literal(sources: dict[str, str]) -> str:
    if not sources:
        return "{}"
    parts = ["{"]
    for name, src in sources.items():
        parts.append(f"    {name!r}: {src!r},")
    parts.append("}")
    return "\n".join(parts)


_TEMPLATE = '''\
#!/usr/bin/env python3
"""Standalone reproduction of a failed pytest test (NODEID below),
written by pytest-reprex {tool_version}.

It imports the test module from this directory and calls the test function with the
fixture values and parameters it had when it failed, without pytest's runner:

    python THIS_FILE        (from the bundle's files/ directory)

Values:
{value_doc}
"""
import os
import sys

NODEID = {nodeid_repr}
HASH_SEED = {hash_seed}  # PYTHONHASHSEED of the test run (None: it was random)
if HASH_SEED is not None and os.environ.get("PYTHONHASHSEED") != HASH_SEED:
    os.environ["PYTHONHASHSEED"] = HASH_SEED
    os.execv(sys.executable, [sys.executable] + sys.argv)

import ast
import base64
import importlib
import importlib.util
import inspect
import pickle
import random
import re
import shutil
import tempfile
from pathlib import Path, PurePath

HERE = Path(__file__).resolve().parent
SYS_PATH = {sys_path}  # the test run's sys.path entries inside its root, relative
CWD = {cwd}  # the test's working directory, relative
CONFTESTS = {conftests}  # (import name, file) as pytest loaded them
TEST_MODULE = {module}
TEST_FILE = {module_file}
TEST_FUNCTION = {function}
TEST_CLASS = {class_path}
UNITTEST = {unittest}
ARGNAMES = {argnames}
OLD_BASE = {old_base}  # pytest's basetemp when the test failed
TMP_REL = {tmp_rel}  # the test's tmp_path, relative to it
TMP_DIRS = {tmp_dirs}
RANDOMLY_SEED = {randomly_seed}
RANDOM_STATE = {random_state}
_SOURCES = {sources}
_NO_PARAM = object()
VALUES = {{}}
_GENERATORS = []
_LOADED = {{}}  # relative file -> module (two conftest.py files may share the name `conftest`)


def _load(name, rel):
    """Import a module of the test run under the name pytest gave it, from its file here."""
    if rel in _LOADED:
        return _LOADED[rel]
    path = (HERE / rel).resolve()
    module = None
    if name in sys.modules and Path(getattr(sys.modules[name], "__file__", "") or "").resolve() == path:
        module = sys.modules[name]
    else:
        try:
            found = importlib.import_module(name)
            if Path(getattr(found, "__file__", "") or "").resolve() == path:
                module = found
        except ModuleNotFoundError as exc:
            if not (exc.name and (name == exc.name or name.startswith(exc.name + "."))):
                raise
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    _LOADED[rel] = module
    return module


def _unpickle(text):
    return pickle.loads(base64.b64decode("".join(text.split())))


NEW_BASE = Path(tempfile.mkdtemp(prefix="reprex-pytest-")) if OLD_BASE else None
TMP_PATH = NEW_BASE / TMP_REL if NEW_BASE is not None and TMP_REL else None
_OLD_RE = re.compile(re.escape(OLD_BASE) + r"(?=[/\\\\]|$)") if OLD_BASE else None


def _retmp(value, depth=0):
    """Point paths into the old run's temporary directories at this run's copies."""
    if _OLD_RE is None or depth > 6:
        return value
    if isinstance(value, str):
        return _OLD_RE.sub(lambda m: str(NEW_BASE), value)
    if isinstance(value, PurePath):
        text = str(value)
        return type(value)(_retmp(text)) if _OLD_RE.search(text) else value
    if type(value) in (list, tuple, set, frozenset):
        return type(value)(_retmp(v, depth + 1) for v in value)
    if type(value) is dict:
        return {{_retmp(k, depth + 1): _retmp(v, depth + 1) for k, v in value.items()}}
    attrs = getattr(value, "__dict__", None)
    if isinstance(attrs, dict) and not isinstance(value, type) and not inspect.ismodule(value) \\
            and not callable(value):
        for key, item in list(attrs.items()):
            new = _retmp(item, depth + 1)
            if new is not item:
                try:
                    object.__setattr__(value, key, new)
                except Exception:
                    pass
    return value


def _restore_tmp():
    if NEW_BASE is None:
        return
    snapshot = HERE / "_reprex_tmp"
    for rel in TMP_DIRS:
        (NEW_BASE / rel).mkdir(parents=True, exist_ok=True)
    if snapshot.is_dir():
        shutil.copytree(snapshot, NEW_BASE, dirs_exist_ok=True)
    if TMP_PATH is not None:
        TMP_PATH.mkdir(parents=True, exist_ok=True)


class _TmpPathFactory:
    def __init__(self, base):
        self._base = base

    def getbasetemp(self):
        return self._base

    def mktemp(self, basename, numbered=True):
        if not numbered:
            path = self._base / basename
            path.mkdir()
            return path
        return Path(tempfile.mkdtemp(prefix=basename, dir=self._base))


def _legacy_path(path):
    from _pytest.compat import legacy_path

    return legacy_path(path)


def _monkeypatch():
    import pytest

    return pytest.MonkeyPatch()


def _stub(*args, **kwargs):
    return None


class _Request:
    """Just enough of pytest's `request` for fixtures that read `request.param`."""

    def __init__(self, fixturename, param):
        self.fixturename = fixturename
        if param is not _NO_PARAM and param is not None:
            self.param = param
        self.node = type("Node", (), {{"name": TEST_FUNCTION, "nodeid": NODEID}})()
        self.config = None
        self.function = None

    def addfinalizer(self, finalizer):
        pass

    def getfixturevalue(self, name):
        return VALUES[name]


def _fixture(module_name, module_file, name, source, lineno, argnames, param):
    """Run a fixture function from its source, in its own module's namespace."""
    module = _load(module_name, module_file)
    namespace = vars(module)
    tree = ast.parse(source)
    tree.body[0].decorator_list = []
    ast.increment_lineno(tree, lineno - 1)
    missing = object()
    previous = namespace.get(name, missing)
    exec(compile(tree, module.__file__, "exec"), namespace)
    function = namespace[name]
    if previous is missing:
        del namespace[name]
    else:
        namespace[name] = previous
    kwargs = {{arg: (_Request(name, param) if arg == "request" else VALUES[arg]) for arg in argnames}}
    value = function(**kwargs)
    if inspect.isgenerator(value):
        _GENERATORS.append(value)
        value = next(value)
    return value


def main():
    for entry in reversed(SYS_PATH):
        path = str((HERE / entry).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    os.chdir(HERE / CWD)
    for name, rel in CONFTESTS:
        _load(name, rel)
    module = _load(TEST_MODULE, TEST_FILE)
    _restore_tmp()
{values_block}
    owner = module
    for part in TEST_CLASS:
        owner = getattr(owner, part)
    if UNITTEST:
        owner.setUpClass()
        owner(TEST_FUNCTION).debug()
        return
    test = getattr(owner() if TEST_CLASS else module, TEST_FUNCTION)
    result = test(**{{name: VALUES[name] for name in ARGNAMES}})
    if inspect.iscoroutine(result):
        import asyncio

        asyncio.run(result)


main()
'''
