"""The machinery of pytest-reprex's standalone script: re-run one failed test without pytest's runner.

pytest-reprex copies this file unchanged next to each script it writes (as
`_reprex_pytest_entry.py`, see pytest_reprex.script); the script holds only what is particular to
its test (constants, fixture sources, the values block) and calls `configure` then `main`. It is
a real module rather than text inside a template so that it is linted and read like any other
code. Standard library only (pytest only for the values that need it): a replay environment
has the bundle's pins installed, never reprex.
"""

import ast
import base64
import importlib
import importlib.util
import inspect
import os
import pickle
import re
import shutil
import sys
import tempfile
from pathlib import Path, PurePath

# Set by configure() from the script's constants.
HERE = Path(".")
NODEID = ""
SYS_PATH: list = []  # the test run's sys.path entries inside its root, relative
CWD = "."  # the test's working directory, relative
CONFTESTS: list = []  # (import name, file) as pytest loaded them
TEST_MODULE = ""
TEST_FILE = ""
TEST_FUNCTION = ""
TEST_CLASS: list = []
UNITTEST = False
ARGNAMES: list = []
OLD_BASE = None  # pytest's basetemp when the test failed
TMP_REL = None  # the test's tmp_path, relative to it
TMP_DIRS: list = []
NEW_BASE = None
TMP_PATH = None
_OLD_RE = None

_NO_PARAM = object()
VALUES: dict = {}
_GENERATORS: list = []
_LOADED: dict = {}  # relative file -> module (two conftest.py files may share the name `conftest`)


def configure(script, *, nodeid, sys_path, cwd, conftests, test_module, test_file, test_function, test_class,
              unittest, argnames, old_base, tmp_rel, tmp_dirs):
    """Take the script's constants; make this run's basetemp when the failed run had one."""
    global HERE, NODEID, SYS_PATH, CWD, CONFTESTS, TEST_MODULE, TEST_FILE, TEST_FUNCTION, TEST_CLASS
    global UNITTEST, ARGNAMES, OLD_BASE, TMP_REL, TMP_DIRS, NEW_BASE, TMP_PATH, _OLD_RE
    HERE = Path(script).resolve().parent
    NODEID, SYS_PATH, CWD, CONFTESTS = nodeid, sys_path, cwd, conftests
    TEST_MODULE, TEST_FILE, TEST_FUNCTION, TEST_CLASS = test_module, test_file, test_function, test_class
    UNITTEST, ARGNAMES, OLD_BASE, TMP_REL, TMP_DIRS = unittest, argnames, old_base, tmp_rel, tmp_dirs
    NEW_BASE = Path(tempfile.mkdtemp(prefix="reprex-pytest-")) if OLD_BASE else None
    TMP_PATH = NEW_BASE / TMP_REL if NEW_BASE is not None and TMP_REL else None
    _OLD_RE = re.compile(re.escape(OLD_BASE) + r"(?=[/\\]|$)") if OLD_BASE else None


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
        return {_retmp(k, depth + 1): _retmp(v, depth + 1) for k, v in value.items()}
    attrs = getattr(value, "__dict__", None)
    if isinstance(attrs, dict) and not isinstance(value, type) and not inspect.ismodule(value) \
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
        self.node = type("Node", (), {"name": TEST_FUNCTION, "nodeid": NODEID})()
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
    kwargs = {arg: (_Request(name, param) if arg == "request" else VALUES[arg]) for arg in argnames}
    value = function(**kwargs)
    if inspect.isgenerator(value):
        _GENERATORS.append(value)
        value = next(value)
    return value


def main(make_values):
    """Import the test run's modules as pytest did, make the values (the script's block), call the test."""
    for entry in reversed(SYS_PATH):
        path = str((HERE / entry).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    os.chdir(HERE / CWD)
    for name, rel in CONFTESTS:
        _load(name, rel)
    module = _load(TEST_MODULE, TEST_FILE)
    _restore_tmp()
    make_values()
    owner = module
    for part in TEST_CLASS:
        owner = getattr(owner, part)
    if UNITTEST:
        owner.setUpClass()
        owner(TEST_FUNCTION).debug()
        return
    test = getattr(owner() if TEST_CLASS else module, TEST_FUNCTION)
    result = test(**{name: VALUES[name] for name in ARGNAMES})
    if inspect.iscoroutine(result):
        import asyncio

        asyncio.run(result)
