"""The machinery of pytest-reprex's standalone script: re-run one failed test without pytest's runner.

pytest-reprex copies this file unchanged next to each script it writes (as
`_reprex_pytest_entry.py`, see pytest_reprex.script); the script holds only what is particular to
its test (constants, fixture sources, the values block) and calls `configure` then `main`. It is
a real module rather than text inside a template so that it is linted and read like any other
code. Standard library only (pytest only for the values that need it, and for assertion
rewriting when the replay has it): a replay environment has the bundle's pins installed, never
reprex.

What pytest does around a test is done here in pytest's order: xunit setups (`setup_module`,
`setup_class`, `setup_method`, `setup_function`, unittest's `setUpClass`) and fixtures run as
the script's values block lists them; their teardowns (and generator fixtures' ends) run after
the test in reverse, even when it fails, and an error there is printed, never raised over the
test's own failure (pytest reports it apart, as a teardown error).
"""

import ast
import base64
import builtins
import importlib
import importlib.util
import inspect
import os
import pickle
import re
import shutil
import sys
import tempfile
import traceback
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
REWRITE: list = []  # (import name, file) of the modules pytest rewrote the asserts of
ASSERT_CONFIG: dict = {}  # what pytest's comparison explanations read of its config in the failed run
WARNINGS: dict = {}  # pytest's warning filters around the test
NEW_BASE = None
TMP_PATH = None
_OLD_RE = None

_NO_PARAM = object()
VALUES: dict = {}
_FINALIZERS: list = []  # teardowns, in setup order (run reversed after the test)
_LOADED: dict = {}  # relative file -> module (two conftest.py files may share the name `conftest`)
_REWRITE_PATHS: set = set()  # resolved files whose asserts are rewritten, when pytest is importable
_REWRITE_NAMES: set = set()  # the last part of their import names
# The test's module, class and instance, set by main() before the values block runs.
_MODULE = None
_CLASS = None
_INSTANCE = None


def configure(script, *, nodeid, sys_path, cwd, conftests, test_module, test_file, test_function, test_class,
              unittest, argnames, old_base, tmp_rel, tmp_dirs, rewrite=(), assert_config=None, warning_filters=None):
    """Take the script's constants; make this run's basetemp when the failed run had one."""
    global HERE, NODEID, SYS_PATH, CWD, CONFTESTS, TEST_MODULE, TEST_FILE, TEST_FUNCTION, TEST_CLASS
    global UNITTEST, ARGNAMES, OLD_BASE, TMP_REL, TMP_DIRS, NEW_BASE, TMP_PATH, _OLD_RE, REWRITE, ASSERT_CONFIG
    global WARNINGS
    HERE = Path(script).resolve().parent
    NODEID, SYS_PATH, CWD, CONFTESTS = nodeid, sys_path, cwd, conftests
    TEST_MODULE, TEST_FILE, TEST_FUNCTION, TEST_CLASS = test_module, test_file, test_function, test_class
    UNITTEST, ARGNAMES, OLD_BASE, TMP_REL, TMP_DIRS = unittest, argnames, old_base, tmp_rel, tmp_dirs
    REWRITE, ASSERT_CONFIG, WARNINGS = list(rewrite), dict(assert_config or {}), dict(warning_filters or {})
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
        loader = _RewriteLoader() if path in _REWRITE_PATHS else None
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
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
        _FINALIZERS.append(finalizer)

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
        generator = value
        value = next(generator)
        _FINALIZERS.append(lambda: _finish(generator, name))
    return value


def _finish(generator, name):
    """A generator fixture's teardown: run it to its end, as pytest does after the test."""
    try:
        next(generator)
    except StopIteration:
        return
    raise ValueError(f"fixture function {name} has more than one 'yield'")


# -- assertion rewriting: the asserts pytest rewrote fail with pytest's messages -------------

class _RewriteLoader:
    """Loads a module with its asserts rewritten by the replay's own pytest (no pyc is written)."""

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        from _pytest.assertion.rewrite import rewrite_asserts

        path = module.__spec__.origin
        source = Path(path).read_bytes()
        tree = ast.parse(source, filename=path)
        rewrite_asserts(tree, source, path, None)
        exec(compile(tree, path, "exec", dont_inherit=True), module.__dict__)


class _RewriteFinder:
    """Routes the imports of the rewritten files (and only those) through `_RewriteLoader`, as
    pytest's import hook does: by the file a name resolves to, so `conftest` twice is fine."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        import importlib.machinery

        if name.rpartition(".")[2] not in _REWRITE_NAMES:
            return None  # every other import, quickly
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or not spec.origin or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None
        if Path(spec.origin).resolve() not in _REWRITE_PATHS:
            return None
        return importlib.util.spec_from_file_location(
            name, spec.origin, loader=_RewriteLoader(), submodule_search_locations=spec.submodule_search_locations)

    @staticmethod
    def invalidate_caches():
        pass


class _AssertConfig:
    """The few reads pytest's comparison explanations make of its config (verbosity, the
    truncation and diff ini options), answered as in the failed run; plain text, no colour."""

    def __init__(self, facts):
        self._verbosity = int(facts.get("verbosity", 0))
        self._ini = dict(facts.get("ini") or {})
        self.option = type("Option", (), {"verbose": self._verbosity, "assertmode": "rewrite"})()
        self.pluginmanager = self

    def get_verbosity(self, verbosity_type=None):
        return self._verbosity

    def getoption(self, name, default=None, skip=False):
        return getattr(self.option, name, default)

    def getvalue(self, name):
        return getattr(self.option, name, None)

    def getini(self, name):
        return self._ini.get(name)

    def has_plugin(self, name):
        return False

    hasplugin = has_plugin

    def get_terminal_writer(self):
        return self

    @staticmethod
    def _highlight(source, lexer="python"):
        return source


def _explainer(config):
    """pytest's `callbinrepr` for this run: the conftests' `pytest_assertrepr_compare` hooks
    (innermost first), then pytest's own, the first explanation truncated as pytest would."""
    import _pytest.assertion as assertion
    from _pytest.assertion import truncate

    given = {"config": config}

    def callbinrepr(op, left, right):
        hooks = [getattr(_LOADED.get(rel), "pytest_assertrepr_compare", None) for _, rel in reversed(CONFTESTS)]
        try:
            for hook in [h for h in hooks if callable(h)] + [assertion.pytest_assertrepr_compare]:
                given.update(op=op, left=left, right=right)
                params = inspect.signature(hook).parameters
                lines = hook(**{k: v for k, v in given.items() if k in params})
                if not lines:
                    continue
                if hasattr(truncate, "materialize_with_truncation"):
                    lines = truncate.materialize_with_truncation(lines, config)
                elif hasattr(truncate, "truncate_if_required"):
                    lines = truncate.truncate_if_required(lines, type("Item", (), {"config": config})())
                if lines:
                    return "\n~".join(line.replace("\n", "\\n") for line in lines).replace("%", "%%")
        except Exception:
            return None  # a plainer message, never another failure than the test's
        return None

    return callbinrepr


def _install_rewrite():
    """Rewrite what pytest rewrote and explain comparisons like it, when pytest is importable here."""
    if not REWRITE:
        return
    try:
        from _pytest.assertion import util
    except ImportError:
        return  # no pytest in the replay: plain asserts, plain messages
    _REWRITE_PATHS.update((HERE / rel).resolve() for _, rel in REWRITE)
    _REWRITE_NAMES.update(name.rpartition(".")[2] for name, _ in REWRITE)
    sys.meta_path.insert(0, _RewriteFinder)
    config = _AssertConfig(ASSERT_CONFIG)
    util._reprcompare = _explainer(config)
    if hasattr(util, "_config"):
        util._config = config
    ci = bool(ASSERT_CONFIG.get("ci"))
    from _pytest.assertion import truncate

    for name in ("running_on_ci", "_running_on_ci"):  # truncation as in the failed run, whatever CI is here
        if callable(getattr(truncate, name, None)):
            setattr(truncate, name, lambda: ci)


_CAUGHT = []  # the warnings context the filters live in (open until the script ends)


def _warning_filters():
    """pytest's warning filters around the test (so `filterwarnings = error` raises here too),
    with warnings recorded rather than printed as pytest does; only where pytest parses them."""
    if not WARNINGS:
        return
    try:
        from _pytest.config import parse_warning_filter
    except ImportError:
        return
    import warnings

    context = warnings.catch_warnings(record=True)
    context.__enter__()
    _CAUGHT.append(context)
    if WARNINGS.get("deprecations"):
        warnings.filterwarnings("always", category=DeprecationWarning)
        warnings.filterwarnings("always", category=PendingDeprecationWarning)
    for text, escape in WARNINGS.get("filters") or []:
        try:
            warnings.filterwarnings(*parse_warning_filter(text, escape=escape))
        except ImportError:
            continue  # pytest warns and goes on


# -- xunit setups and teardowns, as pytest's own autouse fixtures call them ------------------

def _call_optional(func, arg):
    """pytest's _call_with_optional_argument: pass `arg` only to a function that takes one."""
    count = func.__code__.co_argcount - (1 if inspect.ismethod(func) else 0)
    return func(arg) if count else func()


def _owner(path):
    owner = _MODULE
    for part in path:
        owner = getattr(owner, part)
    return owner


def _xunit_call(kind, owner, name):
    """(function, argument) of pytest's call of the xunit method `name` for this test."""
    if kind == "package":
        target = _load(owner[0], owner[1])
        return getattr(target, name), target
    if kind == "module":
        return getattr(_MODULE, name), _MODULE
    if kind == "function":
        return getattr(_MODULE, name), getattr(_MODULE, TEST_FUNCTION)
    if kind == "class":  # pytest's getimfunc: a classmethod's function, called with the test's class
        found = getattr(_owner(owner), name)
        return getattr(found, "__func__", found), _CLASS
    if kind == "method":
        return getattr(_INSTANCE, name), getattr(_INSTANCE, TEST_FUNCTION)
    raise ValueError(f"unknown xunit setup {kind!r}")


def _xunit(kind, owner, setup, teardown):
    """One of pytest's xunit fixtures: `kind` says which (module, class, method, function,
    unittest_class, unittest_method, package); `owner` is where `setup`/`teardown` live."""
    if kind == "unittest_class":
        return _unittest_class(_owner(owner), setup, teardown)
    if kind == "unittest_method":  # pytest calls the plain functions with the case and its test method
        def call(name):
            getattr(_owner(owner), name)(_INSTANCE, getattr(_INSTANCE, TEST_FUNCTION))
    else:
        def call(name):
            _call_optional(*_xunit_call(kind, owner, name))
    if setup:
        call(setup)
    if teardown:
        _FINALIZERS.append(lambda: call(teardown))


def _unittest_class(cls, setup, teardown):
    """pytest's unittest class fixture: setUpClass, then after the test tearDownClass and the
    class cleanups, whose errors are raised as pytest raises them."""
    cleanup = getattr(cls, "doClassCleanups", lambda: None)

    def raise_cleanup_errors():
        errors = [exc for _, exc, _ in (getattr(cls, "tearDown_exceptions", None) or [])]
        if len(errors) == 1:
            raise errors[0]
        if errors:
            group = getattr(builtins, "ExceptionGroup", None)
            if group is None:  # before 3.11 pytest raises the backport's
                from exceptiongroup import ExceptionGroup as group
            raise group("Unittest class cleanup errors", errors)

    if setup:
        try:
            getattr(cls, setup)()
        except Exception:
            cleanup()
            raise_cleanup_errors()
            raise

    def finish():
        try:
            if teardown:
                getattr(cls, teardown)()
        finally:
            cleanup()
            raise_cleanup_errors()

    _FINALIZERS.append(finish)


def _teardown():
    """Run the teardowns, innermost first; print their errors (pytest reports them apart)."""
    while _FINALIZERS:
        finalizer = _FINALIZERS.pop()
        try:
            finalizer()
        except Exception:
            sys.stderr.write("reprex: error in a teardown after the test (pytest reports it as a separate "
                             "error, not as the test's failure):\n" + traceback.format_exc(chain=False))


# -- unittest.TestCase: run as pytest runs it, the first failure it reports is raised --------

class _UnitResult:
    """The result object pytest hands TestCase.run: keeps failures (subtests' too) in order."""

    def __init__(self):
        self.failures = []  # exc_info tuples in the order pytest reports them
        self.outcome = None  # "skipped" / "xfailed" when pytest would report that instead

    def startTest(self, test):
        pass

    def stopTest(self, test):
        pass

    def addSuccess(self, test):
        pass

    def addDuration(self, test, elapsed):
        pass

    def addError(self, test, exc_info):
        self.failures.append(exc_info)

    addFailure = addError

    def addSubTest(self, test, subtest, exc_info):
        if exc_info is not None:
            self.failures.append(exc_info)

    def addSkip(self, test, reason):
        self.outcome = self.outcome or "skipped"

    def addExpectedFailure(self, test, exc_info, reason=""):
        self.outcome = self.outcome or "xfailed"

    def addUnexpectedSuccess(self, test, reason=None):
        try:
            import pytest

            pytest.fail("Unexpected success", pytrace=False)
        except ImportError:
            try:
                raise AssertionError("Unexpected success") from None
            except AssertionError:
                self.failures.append(sys.exc_info())
        except BaseException:
            self.failures.append(sys.exc_info())


def _run_unittest(case):
    result = _UnitResult()
    case(result=result)
    if result.failures:
        raise result.failures[0][1].with_traceback(result.failures[0][2])
    if result.outcome:
        sys.stderr.write(f"reprex: the test was {result.outcome} here, as pytest would report it\n")


def _hide_machinery():
    """A failure's traceback starts at the test's own code, as pytest shows it: the outer frames
    of the script and of this module are dropped before the excepthook (the recorder's, when
    one runs) sees it, so a replay's frames are the test's, not this harness's."""
    ours = {os.path.abspath(__file__), os.path.abspath(getattr(sys.modules["__main__"], "__file__", "") or "")}
    previous = sys.excepthook

    def excepthook(etype, value, tb):
        if value is not None:
            tb = value.__traceback__ or tb
            while tb is not None and tb.tb_next is not None and \
                    os.path.abspath(tb.tb_frame.f_code.co_filename) in ours:
                tb = tb.tb_next
            value = value.with_traceback(tb)
        previous(etype, value, tb)

    sys.excepthook = excepthook


def main(make_values):
    """Import the test run's modules as pytest did, make the values (the script's block, setups
    included), call the test, then run the teardowns."""
    global _MODULE, _CLASS, _INSTANCE
    _hide_machinery()
    for entry in reversed(SYS_PATH):
        path = str((HERE / entry).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    os.chdir(HERE / CWD)
    _install_rewrite()
    for name, rel in CONFTESTS:
        _load(name, rel)
    module = _MODULE = _load(TEST_MODULE, TEST_FILE)
    _restore_tmp()
    owner = _CLASS = _owner(TEST_CLASS) if TEST_CLASS else None
    if owner is not None:
        _INSTANCE = owner(TEST_FUNCTION) if UNITTEST else owner()
    _warning_filters()
    try:
        make_values()
        if UNITTEST:
            _run_unittest(_INSTANCE)
            return
        test = getattr(_INSTANCE if owner is not None else module, TEST_FUNCTION)
        result = test(**{name: VALUES[name] for name in ARGNAMES})
        if inspect.iscoroutine(result):
            import asyncio

            asyncio.run(result)
    finally:
        _teardown()
