"""A captured bundle replays its test under the session's own options.

A conftest.py registers options that decide an outcome: a test marked slow is skipped without
`--runslow`, a test fails only under `--env=staging`. A bundle whose replay left those out would
run the test skipped, or passing, and say `fixed` for a bug that is still there. The replay's
command line carries what the conftest (or a plugin) registered, as typed, and never what only
selects or stops the session (-k, -x, --lf, --maxfail) nor reprex's own options. Each case runs
the bundle's own command line without the carried options too: the test then skips, passes or
xpasses, which the replay would have judged `fixed` before they were carried. On pytest 7.x (no
verbosity_assertions) the session's -v is what shapes an assertion message: it goes as well.
"""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bisect_cases import make_venv
from bisect_index import bisect_index  # noqa: F401 (the fixture)
from pytest_reprex.session_args import carried_options
from reprex.bundle import Bundle
from test_plugin_fidelity import replay

pytest_plugins = ["pytester"]

PY = sys.executable

CONFTEST = """
import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run the tests marked slow")
    parser.addoption("--env", default="dev", help="the deployment the tests talk to")
    parser.addoption("--token", default="", help="an API token")
    parser.addoption("-Q", "--queue", action="append", default=[], help="a queue to drain")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="needs --runslow"))
"""

TESTS = """
import pytest


@pytest.mark.slow
def test_slow_path(pytestconfig):
    raise RuntimeError("the slow path broke")


def test_settings(pytestconfig):
    env = pytestconfig.getoption("env")
    assert env in ("dev", "prod"), f"no settings for {env}"


@pytest.mark.xfail(reason="queues are drained elsewhere")
def test_queues(pytestconfig):
    assert pytestconfig.getoption("queue") == [], "queues left to drain"


def test_passes():
    pass
"""

TOKEN = "ghp_" + "Zq8Rk2Lm9Vx4Tn7Pb3Wc6Hy1Aa2Bb3Cc4Dd5"


def _project(root: Path) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "conftest.py").write_text(CONFTEST)
    (root / "tests" / "test_deploy.py").write_text(TESTS)
    (root / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: needs --runslow\n")
    return root


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


@pytest.fixture(scope="module")
def captured(tmp_path_factory, cache):
    """The suite run with its conftest's options, and with options that only select or stop it:
    -x then --maxfail=5 (the last wins: every failure is captured), -k, --lf (no cache yet: all)."""
    root = _project(tmp_path_factory.mktemp("session-options"))
    proc = subprocess.run([PY, "-m", "pytest", "--runslow", "--env", "staging", "-Q", "a", "-x", "--maxfail=5",
                           "-k", "not passes", "--lf", "--runxfail", "--reprex-capture", "out", "tests"],
                          cwd=root, env=_env(), capture_output=True, text=True, timeout=300)
    assert "3 failed, 1 deselected" in proc.stdout, proc.stdout + proc.stderr
    return root


CARRIED = ["--runslow", "--env=staging", "--queue=a", "--runxfail"]


@pytest.mark.parametrize("test, without", [("test_slow_path", "1 skipped"), ("test_settings", "1 passed"),
                                           ("test_queues", "1 xpassed")])
def test_the_conftests_options_replay_with_the_test(captured, tmp_path, test, without):
    path = captured / "out" / f"tests-test_deploy-{test}.reprex.zip"
    b = Bundle.read(path)
    assert (b.manifest["test"]["mode"], b.manifest["test"]["reproduces"]) == ("pytest", True), b.manifest["test"]
    args = b.manifest["entry"]["python_args"]
    assert args == ["-m", "pytest", "-p", "no:cacheprovider", "-p", "no:reprex", "--rootdir=.", "-c", "pytest.ini",
                    "-o", "verbosity_assertions=0", *CARRIED, "-q", f"tests/test_deploy.py::{test}"]
    # what the replay ran before: the same command line, less what the conftest registered
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.startswith("files/"):
                (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / name).write_bytes(zf.read(name))
    bare = subprocess.run([PY, *(a for a in args if a not in CARRIED)], cwd=tmp_path / "files", env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert without in bare.stdout, bare.stdout + bare.stderr
    result = replay(path, "--backend", "local", "--strict")
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result


def test_a_secret_in_an_option_value_means_no_pytest_form(tmp_path, cache):
    """The token would have to go into the bundle's command line: the bundle has no pytest form and
    says which option, and the token is nowhere in it."""
    root = _project(tmp_path)
    (root / "tests" / "test_token.py").write_text(
        "def test_no_token(pytestconfig):\n    assert not pytestconfig.getoption('token'), 'ran with a token'\n")
    proc = subprocess.run([PY, "-m", "pytest", "-p", "no:cacheprovider", f"--token={TOKEN}", "--reprex-capture", "out",
                           "tests/test_token.py"], cwd=root, env=_env(), capture_output=True, text=True, timeout=300)
    assert "1 failed" in proc.stdout, proc.stdout + proc.stderr
    [path] = (root / "out").glob("*.reprex.zip")
    with zipfile.ZipFile(path) as zf:
        assert not any(TOKEN[4:20].encode() in zf.read(info) for info in zf.infolist())
    test = Bundle.read(path).manifest["test"]
    assert (test["mode"], test["reproduces"]) == ("standalone", False), test
    assert ("no pytest form: redaction changed the value of the session's option --token, so the test can't run "
            "as it did") in test["mode_reason"]


SHAPES = """
def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true")
    parser.addoption("--env", default="dev")
    parser.addoption("-Q", "--queue", action="append", default=[])
    parser.addoption("-Z", dest="zone")
    parser.addoption("-R", "--remote", action="store_true")
    parser.addoption("--tags", nargs="*")
    parser.addoption("--level", nargs="?", const="high")
    parser.addoption("--pair", nargs=2)
"""


def test_options_are_read_as_argparse_reads_them(pytester, monkeypatch):
    """Every shape an option takes on the command line, in the order typed, PYTEST_ADDOPTS first
    (the replay's environment has none); pytest's own options that select, stop or report, an
    installed plugin's workers (xdist's -n) and reprex's own stay out."""
    pytester.makeconftest(SHAPES)
    pytester.makepyfile(test_x="def test_a():\n    pass\n")
    monkeypatch.setenv("PYTEST_ADDOPTS", "--env=prod")
    from_file = pytest.version_tuple >= (8, 2)  # `@FILE`: its lines are arguments
    (pytester.path / "more-args.txt").write_text("--env\nfrom file\n-k\nb\n")
    config = pytester.parseconfigure(
        *(["@more-args.txt"] if from_file else []),
        "--runslow", "-xv", "-Qa", "-Q", "b", "-RQc", "--env=-x", "-Z", "north", "--tags", "a", "b", "--level",
        "-k", "a or b", "--pair", "x", "y", "-n", "2", "--lf", "--maxfail", "3", "--runxfail",
        "--reprex-capture", "out", "test_x.py::test_a", "--", "--runslow")
    assert carried_options(config) == [
        "--env=prod", *(["--env=from file"] if from_file else []), "--runslow", "--queue=a", "--queue=b", "-R",
        "--queue=c", "--env=-x", "-Znorth", "--tags", "a", "b", "--level", "--pair", "x", "y", "--runxfail"]


# -- pytest < 8.1: assertion messages follow -v -------------------------------------------------

# the plugin's floor (the pins tests/test_footprint.py holds it to), and the last 7.x
OLD_PYTESTS = {"7.0.0": {"pluggy": "1.0.0", "iniconfig": "1.1.1", "py": "1.11.0", "tomli": "2.0.1"},
               "7.4.4": {"pluggy": "1.0.0", "iniconfig": "2.0.0", "packaging": "23.2"}}


@pytest.fixture(scope="module", params=sorted(OLD_PYTESTS))
def old_pytest(request, bisect_index, tmp_path_factory):  # noqa: F811
    """(python, version): a venv with an old pytest from the loopback index (fetched once), and
    reprex (this checkout and the dependencies it runs with here) on its path after it."""
    import sysconfig

    import reprex

    pins = {"pytest": request.param, **OLD_PYTESTS[request.param]}
    for name, version in pins.items():
        bisect_index.add(name, [version])
    python = make_venv(bisect_index, pins, tmp_path_factory.mktemp("old-pytest") / "venv")
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "reprex-checkout.pth").write_text(
        f"{Path(reprex.__file__).resolve().parents[1]}\n{sysconfig.get_paths()['purelib']}\n")
    return python, request.param


def test_old_pytest_replays_the_sessions_verbosity(old_pytest, bisect_index, tmp_path, cache):  # noqa: F811
    """Before 8.1 there is no verbosity_assertions: under -v a list comparison's message is the
    full diff, and only the session's -v (carried as --verbosity, one up for the form's -q) gets
    it back; the capture's own pytest re-run must fail with that message to reproduce. The
    conftest's --runslow goes too: the parser internals it is read from hold on 7.x."""
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_lists.py").write_text(
        "import pytest\n\n\n@pytest.mark.slow\ndef test_lists(pytestconfig):\n    assert [1, 2, 3] == [1, 2, 4]\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: needs --runslow\n")
    python, old = old_pytest
    env = {k: v for k, v in _env().items() if k not in ("CI", "BUILD_NUMBER")}
    version = subprocess.run([str(python), "-m", "pytest", "--version"], env=env, capture_output=True, text=True)
    assert f"pytest {old}" in version.stdout + version.stderr
    proc = subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-v",
                           "--runslow", "--reprex-capture", "out"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "1 failed" in proc.stdout, proc.stdout + proc.stderr
    path = tmp_path / "out" / "test_lists-test_lists.reprex.zip"
    b = Bundle.read(path)
    assert (b.manifest["test"]["mode"], b.manifest["test"]["reproduces"]) == ("pytest", True), b.manifest["test"]
    assert b.manifest["test"]["pytest"] == old
    assert b.manifest["entry"]["python_args"] == [
        "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:reprex", "--rootdir=.", "-c", "pytest.ini",
        "-p", "no:xdist", "--verbosity=2", "--runslow", "-q", "test_lists.py::test_lists"]
    assert "Full diff:" in b.manifest["expect"]["signature"]["message"]
    for line in b.text("requirements.txt").splitlines():
        name, _, version = line.partition("==")
        if version and not line.startswith("#"):
            bisect_index.add(name, [version.strip()])
    result = replay(path, "--backend", "local", "--strict", env=bisect_index.environ(env))
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result
