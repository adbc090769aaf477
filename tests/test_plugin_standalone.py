"""The standalone script of `pytest --reprex-capture` does what pytest did around the test.

Real pytest runs of small projects this file writes: xunit setups (setup_module,
setup_function, setup_class, setup_method, a package's setup_module), unittest's
setUpModule/setUpClass/setUp and subTest, teardowns that fail after a failing test, pytest's
assertion messages, and an installed plugin's autouse fixture the script can't run. Each
failure here depends on its setup having run: without it the test would fail otherwise (the
Pint case: `'TestX' object has no attribute 'ureg'` instead of the real AttributeError), so
a script that skips a setup fails these tests."""

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from reprex.bundle import Bundle

PY = sys.executable

PKG_INIT = """
def setup_module(module):
    module.READY = "package set up"
"""

XUNIT = """
import math

import tests

CALLS = []


def setup_module(module):
    module.CONFIG = {"scale": 2}


def teardown_module():
    CALLS.append("teardown_module")


def setup_function(function):
    function.prepared = function.__name__


def teardown_function(function):
    raise RuntimeError("teardown_function fails after the test")


def test_module_setup():
    assert tests.READY == "package set up"
    assert CONFIG["scale"] * 2 == 5


def test_function_setup():
    assert test_function_setup.prepared == "something else"


def test_list():
    assert [1, 2] == [1, 3]


def test_conftest_explains():
    assert {1, 2} == {1}


class TestClassSetup:
    @classmethod
    def setup_class(cls):
        cls.ureg = {}

    def setup_method(self, method):
        self.name = method.__name__

    def test_class_setup(self):
        assert self.name == "test_class_setup"
        self.ureg["float"] = math.numpy_float


class TestPlainSetupClass:
    def setup_class(cls):
        cls.rows = [1, 2, 3]

    def teardown_method(self, method):
        raise OSError("teardown_method fails after the test")

    def test_plain_setup_class(self):
        return self.rows[7]
"""

UNIT = """
import unittest

LOG = []


def setUpModule():
    LOG.append("module")


class TestUnit(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.limit = len(LOG) + 2

    def setUp(self):
        self.items = list(range(self.limit))

    def tearDown(self):
        raise RuntimeError("tearDown fails after the test")

    def test_limit(self):
        self.assertEqual(len(self.items), 4)


class TestSub(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base = 3

    def test_sub(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertLess(i + self.base, 4)

    @unittest.expectedFailure
    def test_expected(self):
        self.assertEqual(1, 2)


class TestCleanup(unittest.TestCase):
    def setUp(self):
        self.handle = {"open": True}
        self.addCleanup(self.handle.pop, "closed")

    def test_cleanup(self):
        self.handle.clear()
"""

CONFTEST = """
def pytest_assertrepr_compare(op, left, right):
    if isinstance(left, set) and isinstance(right, set) and op == "==":
        return ["sets differ", f"   only left: {sorted(left - right)}"]
"""

PLUGIN = """
import pytest


@pytest.fixture(autouse=True)
def demo_env(monkeypatch):
    monkeypatch.setenv("DEMO_MODE", "on")
"""

PLUGIN_TESTS = """
import os


def test_plugin_env():
    assert os.environ.get("DEMO_MODE") == "off"
"""


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("CI", None)  # pytest's default truncation, as in a terminal
    return {**env, **extra}


def _pytest(project: Path, *args: str, **env) -> str:
    proc = subprocess.run([PY, "-m", "pytest", "-p", "no:cacheprovider", "--reprex-capture", "out", *args],
                          cwd=project, env=_env(**env), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return proc.stdout


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory, cache):
    """One capture run (default verbosity) of the xunit and unittest tests; (dir, pytest's output)."""
    root = _write(tmp_path_factory.mktemp("standalone"),
                  {"tests/__init__.py": PKG_INIT, "tests/conftest.py": CONFTEST, "tests/test_xunit.py": XUNIT,
                   "tests/test_unit.py": UNIT})
    return root, _pytest(root)


def _bundle(root: Path, stem: str) -> Path:
    path = root / "out" / f"{stem}.reprex.zip"
    assert path.is_file(), sorted(p.name for p in (root / "out").iterdir())
    return path


def _run_script(path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """The bundle's script, run by hand from its files/ as a reader of the bundle would."""
    with zipfile.ZipFile(path) as zf:
        zf.extractall(tmp_path)
    script = Bundle.read(path).manifest["test"]["script"]
    return subprocess.run([PY, script], cwd=tmp_path / "files", env=_env(), capture_output=True, text=True,
                          timeout=120)


def _pytest_message(out: str, title: str) -> str:
    """The E lines pytest printed under the section `title` (`___ title ___`), as one message."""
    sections = re.split(r"^_{3,} (.+?) _{3,}$|^={3,}.*$", out, flags=re.M)
    if title not in sections:  # before pytest 9 (no subtest reports) the test's own section
        title = title.split(" (")[0]
    body = sections[sections.index(title) + 1]
    lines = [line for line in body.splitlines() if line.startswith("E   ")]
    indent = len(lines[0]) - len(lines[0][1:].lstrip())  # pytest indents them as the failing line
    return "\n".join(line[indent:] for line in lines)


CASES = [  # bundle stem, section title in pytest's output, type, what pytest's message says (setup ran)
    ("tests-test_xunit-test_module_setup", "test_module_setup", "AssertionError", "assert (2 * 2) == 5"),
    ("tests-test_xunit-test_function_setup", "test_function_setup", "AssertionError",
     "assert 'test_function_setup' == 'something else'\n"),
    ("tests-test_xunit-test_list", "test_list", "AssertionError", "assert [1, 2] == [1, 3]\n"),
    ("tests-test_xunit-TestClassSetup-test_class_setup", "TestClassSetup.test_class_setup", "AttributeError",
     "module 'math' has no attribute 'numpy_float'"),
    ("tests-test_xunit-TestPlainSetupClass-test_plain_setup_class", "TestPlainSetupClass.test_plain_setup_class",
     "IndexError", "list index out of range"),
    ("tests-test_unit-TestUnit-test_limit", "TestUnit.test_limit", "AssertionError", "3 != 4"),
    ("tests-test_unit-TestSub-test_sub", "TestSub.test_sub (i=1)", "AssertionError", "4 not less than 4"),
    ("tests-test_unit-TestCleanup-test_cleanup", "TestCleanup.test_cleanup", "KeyError", "'closed'"),
    ("tests-test_xunit-test_conftest_explains", "test_conftest_explains", "AssertionError",
     "assert sets differ\n     only left: [2]"),
]


@pytest.mark.parametrize("stem, title, type_, says", CASES, ids=[c[0].split("-", 2)[-1] for c in CASES])
def test_the_script_fails_with_pytests_failure_type_and_message(project, tmp_path, stem, title, type_, says):
    root, out = project
    printed = _pytest_message(out, title)  # pytest shows a rewritten assert's message bare, others typed
    message = printed.removeprefix(f"{type_}: ")
    assert says in message and (message.startswith("assert ") or printed.startswith(f"{type_}: ")), printed
    path = _bundle(root, stem)
    expect = Bundle.read(path).manifest["expect"]
    assert (expect["exception"]["type"], expect["exception"]["message"]) == (type_, message)
    proc = _run_script(path, tmp_path)
    assert proc.returncode == 1, proc.stderr
    # the test's failure is the script's last word, whatever a teardown raised after it
    assert proc.stderr.rstrip().endswith(f"{type_}: {message}"), proc.stderr


def test_xunit_setups_are_recorded_in_pytests_order(project):
    root, _ = project
    manifest = Bundle.read(_bundle(root, "tests-test_xunit-TestClassSetup-test_class_setup")).manifest
    values = manifest["test"]["values"]
    xunit = {v["kind"]: (v["setup"], v["teardown"]) for v in values.values() if v["how"] == "xunit"}
    assert xunit == {"package": ("setup_module", None), "module": ("setup_module", "teardown_module"),
                     "class": ("setup_class", None), "method": ("setup_method", None)}
    assert manifest["test"]["flagged"] == []
    script = Bundle.read(_bundle(root, "tests-test_xunit-TestClassSetup-test_class_setup")).text(
        "files/reprex_test_class_setup.py")
    calls = [line.split("= ")[1].split("(")[1].split(",")[0] for line in script.splitlines()
             if "= _xunit(" in line]
    assert calls == ["'package'", "'module'", "'class'", "'method'"]  # wider scopes first, as pytest
    assert "TestClassSetup.setup_class (class): xunit" in script  # the docstring says what is replayed


def test_setup_function_is_not_run_for_methods_and_unittest_setups_are_recorded(project):
    root, _ = project
    values = Bundle.read(_bundle(root, "tests-test_unit-TestUnit-test_limit")).manifest["test"]["values"]
    kinds = sorted(v["kind"] for v in values.values() if v["how"] == "xunit")
    assert kinds == ["module", "package", "unittest_class"]
    plain = Bundle.read(_bundle(root, "tests-test_xunit-TestPlainSetupClass-test_plain_setup_class"))
    kinds = sorted(v["kind"] for v in plain.manifest["test"]["values"].values() if v["how"] == "xunit")
    assert kinds == ["class", "method", "module", "package"]  # not setup_function: pytest skips it for methods


def test_teardown_errors_are_printed_after_the_failure_not_raised_over_it(project, tmp_path):
    root, _ = project
    proc = _run_script(_bundle(root, "tests-test_xunit-test_function_setup"), tmp_path)
    assert "RuntimeError: teardown_function fails after the test" in proc.stderr
    assert proc.stderr.index("teardown_function fails") < proc.stderr.rindex("AssertionError: assert")


def test_an_expected_failure_is_not_captured(project):
    root, _ = project
    assert not list((root / "out").glob("*test_expected*"))


@pytest.mark.parametrize("stem", ["tests-test_xunit-TestClassSetup-test_class_setup",
                                  "tests-test_xunit-test_list", "tests-test_unit-TestUnit-test_limit"])
def test_reprex_replay_local_reproduces(project, stem):
    import json

    root, _ = project
    proc = subprocess.run([PY, "-m", "reprex", "replay", str(_bundle(root, stem)), "--backend", "local", "--json"],
                          capture_output=True, text=True, timeout=300)
    result = json.loads(proc.stdout)
    assert (result["verdict"], proc.returncode) == ("reproduced", 0), proc.stdout + proc.stderr


def test_the_script_without_pytest_falls_back_to_plain_asserts(project, tmp_path):
    """Where pytest isn't importable the module is imported plainly: the same failure, pytest's
    explanation gone."""
    root, _ = project
    path = _bundle(root, "tests-test_xunit-test_list")
    with zipfile.ZipFile(path) as zf:
        zf.extractall(tmp_path)
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoPytest:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pytest', '_pytest'):\n"
        "            raise ImportError('no pytest here')\n"
        "sys.meta_path.insert(0, _NoPytest())\n")
    proc = subprocess.run([PY, "reprex_test_list.py"], cwd=tmp_path / "files", capture_output=True, text=True,
                          env=_env(PYTHONPATH=str(blocker)), timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.rstrip().splitlines()[-1] == "AssertionError", proc.stderr


def test_verbosity_of_the_failed_run_shapes_the_message(tmp_path):
    root = _write(tmp_path / "verbose", {"tests/test_v.py": "def test_list():\n    assert [1, 2] == [1, 3]\n"})
    out = _pytest(root, "-vv")
    printed = _pytest_message(out, "test_list")
    assert "Full diff" in printed
    path = _bundle(root, "tests-test_v-test_list")
    proc = _run_script(path, tmp_path / "run")
    assert proc.stderr.rstrip().endswith("AssertionError: " + printed), proc.stderr


WARNING_TESTS = """
import warnings

import pytest


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_warns():
    warnings.warn("quiet please", UserWarning)
    warnings.warn("a runtime one", RuntimeWarning)
    warnings.warn("old api", DeprecationWarning)
"""


def test_pytests_warning_filters_apply_in_the_script(tmp_path):
    """`filterwarnings = error` makes a warning the test's failure; ini ignores and marks still hold."""
    ini = "[pytest]\nfilterwarnings =\n    error\n    ignore:quiet:UserWarning\n"
    root = _write(tmp_path / "warn", {"pytest.ini": ini, "tests/test_w.py": WARNING_TESTS})
    out = _pytest(root)
    assert "DeprecationWarning: old api" in out
    proc = _run_script(_bundle(root, "tests-test_w-test_warns"), tmp_path / "run")
    assert proc.returncode == 1 and proc.stderr.rstrip().endswith("DeprecationWarning: old api"), proc.stderr


def test_an_installed_plugins_autouse_fixture_is_flagged(tmp_path):
    """A plugin outside the project (loaded with -p): the script can't run its fixture, and says so."""
    plugins = _write(tmp_path / "site", {"reprex_demo_plugin.py": PLUGIN})
    root = _write(tmp_path / "proj", {"tests/test_env.py": PLUGIN_TESTS})
    _pytest(root, "-p", "reprex_demo_plugin", PYTHONPATH=str(plugins))
    [path] = (root / "out").glob("*.reprex.zip")
    test = Bundle.read(path).manifest["test"]
    assert test["values"]["demo_env"]["how"] == "unsupported" and test["values"]["demo_env"]["autouse"] is True
    note = test["values"]["demo_env"]["note"]
    assert "demo_env" in note and "reprex_demo_plugin" in note
    assert "demo_env" in test["flagged"]
