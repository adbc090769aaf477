"""`pytest --reprex-capture` bundles reproduce *pytest's* failure, or say they don't.

One real project fails every way the plugin has to tell apart: a test of a module that read
its data file at import (before any test ran: the file still goes with the bundle), an xunit
`setup_class` test whose real failure is a removed attribute (a harness that skips
setup_class raises an AttributeError too, with another message: never a `reproduced` on
that), a test that only fails under pytest (the `pytestconfig` fixture, which the standalone
script can't rebuild), a test whose failure names the running test (pytest sets
PYTEST_CURRENT_TEST; the script's run fails with the same type, frames and another message),
a module that no longer imports (a collection error), a fixture that raises (a setup error)
or raises after its yield (a teardown error), and a test that fails only after an earlier
test changed module state (neither re-run fails like that: the honest fallback). The
comparison itself is checked on records of real runs.
"""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from reprex.bundle import Bundle
from reprex.capture.same_failure import difference, frame_span
from reprex.recorded import run_recorded

PY = sys.executable

UNITS = """
import os
import types

# read once, at import (collection, before any test ran), like pint's default_en.txt
with open(os.path.join(os.path.dirname(__file__), "definitions.txt")) as fh:
    DEFINITIONS = fh.read().split()

# what the code was written against: numpy<1.24 had np.float; this one has only float64
np = types.SimpleNamespace(float64=float)


class Registry:
    def parse(self, text):
        return text.split()[0]


def to_float(value):
    return np.float(value)
"""

CONFTEST = """
import pytest


@pytest.fixture
def database():
    raise ConnectionRefusedError("database at port 5432 is down")


@pytest.fixture
def server():
    yield "http://127.0.0.1:9"
    raise TimeoutError("server did not stop")
"""

TESTS = """
import os

import units


class TestUnits:
    @classmethod
    def setup_class(cls):
        cls.ureg = units.Registry()

    def test_convert(self):
        assert units.to_float(self.ureg.parse("1 m")) == 1.0


def test_definitions():
    assert units.DEFINITIONS == ["metre", "inch"]


def test_runner_name():
    # pytest names the running test in the environment; the standalone script is no pytest
    running = os.environ.get("PYTEST_CURRENT_TEST", "outside pytest")
    raise LookupError(running.split(" ")[0])


def test_config(pytestconfig):
    assert pytestconfig.getini("markers")[0] == "slow"


def test_uses_database(database):
    assert database


def test_uses_server(server):
    assert server.startswith("http")


SEEN = []


def test_first():
    SEEN.append("warm")


def test_second():
    assert not SEEN, "the cache was warmed by an earlier test"
"""

BROKEN = """
from units import float_  # removed in the version installed now


def test_never_runs():
    assert float_(1) == 1.0
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory, cache):
    """The project, run once with --reprex-capture (collection errors don't stop the session)."""
    root = tmp_path_factory.mktemp("fidelity")
    (root / "units.py").write_text(UNITS)
    (root / "definitions.txt").write_text("metre\nsecond\n")
    (root / "tests").mkdir()
    (root / "tests" / "conftest.py").write_text(CONFTEST)
    (root / "tests" / "test_units.py").write_text(TESTS)
    (root / "tests" / "test_broken.py").write_text(BROKEN)
    (root / "pytest.ini").write_text("[pytest]\npythonpath = .\nmarkers =\n    fast: quick ones\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run([PY, "-m", "pytest", "-p", "no:cacheprovider", "--reprex-capture", "out", "-q",
                           "--continue-on-collection-errors"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return root, proc.stdout


def bundle(root: Path, stem: str) -> tuple[Path, Bundle]:
    path = root / "out" / f"{stem}.reprex.zip"
    return path, Bundle.read(path)


def replay(path: Path, *extra: str, env: dict | None = None) -> dict:
    proc = subprocess.run([PY, "-m", "reprex", "replay", str(path), "--json", *extra],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.stdout, proc.stderr
    return {"exit": proc.returncode, **json.loads(proc.stdout)}


def test_every_failure_becomes_a_bundle(project):
    root, out = project
    names = sorted(p.name for p in (root / "out").glob("*.reprex.zip"))
    assert names == sorted(f"{stem}.reprex.zip" for stem in (
        "tests-test_broken-collect", "tests-test_units-TestUnits-test_convert", "tests-test_units-test_config",
        "tests-test_units-test_definitions", "tests-test_units-test_runner_name", "tests-test_units-test_second",
        "tests-test_units-test_uses_database-setup", "tests-test_units-test_uses_server-teardown"))
    assert "tests/test_units.py::test_config: wrote" in out and "(replays under pytest)" in out
    # the one bundle that does not reproduce says so, in the section and in the summary
    assert out.count("warning: re-run alone, the test did not fail as it did in this session") == 2
    assert ("warning: re-run alone, the test did not fail as it did in this session: standalone run differs: "
            "it ran without the failure; pytest run differs: it ran without the failure") in out


def test_setup_class_failure_reproduces_pytests_message_never_the_harness_error(project):
    root, _ = project
    path, b = bundle(root, "tests-test_units-TestUnits-test_convert")
    sig = b.manifest["expect"]["signature"]
    assert "AttributeError" in sig["types"][-1]
    assert sig["message"] == "'types.SimpleNamespace' object has no attribute 'float'"
    assert "units.py:to_float" in " ".join(sig["frames"])
    test = b.manifest["test"]
    assert test["reproduces"] is True and test["mode"] in ("standalone", "pytest")
    if test["mode"] == "pytest":  # the script ran without setup_class: its own AttributeError was not taken
        assert "has no attribute 'ureg'" in test["mode_reason"]
    result = replay(path, "--backend", "local", "--strict")
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result
    assert result["signature"]["message"] == sig["message"]


def test_pytest_only_failure_replays_under_pytest(project):
    root, _ = project
    path, b = bundle(root, "tests-test_units-test_config")
    test, entry = b.manifest["test"], b.manifest["entry"]
    assert (test["mode"], test["reproduces"], test["standalone_reproduces"]) == ("pytest", True, False)
    assert test["mode_reason"] == "standalone script not tried: values it can't rebuild: pytestconfig"
    assert "standalone_outcome" not in test  # predicted to fail: no second scratch run
    assert entry["python_args"] == ["-m", "pytest", "-p", "no:cacheprovider", "-p", "no:reprex", "--rootdir=.",
                                    "-c", "pytest.ini", "-o", "verbosity_assertions=-1", "-q",
                                    "tests/test_units.py::test_config"]
    assert {"files/pytest.ini", "files/tests/test_units.py", "files/tests/conftest.py", "files/units.py"} <= set(b.files)
    assert not any("reprex_" in name for name in b.files)  # no standalone script in a pytest-mode bundle
    pins = b.text("requirements.txt")
    assert "pytest==" in pins and "pluggy==" in pins
    sig = b.manifest["expect"]["signature"]
    assert sig["types"] == ["exit:1", "tests/test_units.py::test_config: AssertionError"]
    assert sig["message"].startswith("assert 'fast: quick ones' == 'slow'")
    readme = b.text("README.md")
    assert ("Replays the test under pytest: python -m pytest -p no:cacheprovider -p no:reprex --rootdir=. "
            "-c pytest.ini -o verbosity\\_assertions=-1 -q tests/test\\_units.py::test\\_config") in readme
    result = replay(path, "--backend", "local", "--strict")
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result


def test_a_data_file_read_before_the_test_goes_with_the_bundle(project):
    """Read at import, during collection: not by the test's call, still what its re-runs need."""
    root, _ = project
    path, b = bundle(root, "tests-test_units-test_definitions")
    assert b.manifest["test"]["reproduces"] is True, b.manifest["test"]["mode_reason"]
    assert b.text("files/definitions.txt") == "metre\nsecond\n"
    result = replay(path, "--backend", "local", "--strict")
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result


def test_same_type_from_the_script_is_not_taken_for_the_tests_failure(project):
    """Same exception type, same frames, another message: the script's run is not the test's failure."""
    root, _ = project
    path, b = bundle(root, "tests-test_units-test_runner_name")
    test = b.manifest["test"]
    assert (test["mode"], test["reproduces"], test["standalone_reproduces"]) == ("pytest", True, False)
    assert test["standalone_outcome"]["types"] == ["LookupError"]
    assert test["mode_reason"] == ("standalone run differs: message 'outside' instead of "
                                   "'tests/test_units.py::test_runner_name'")
    assert b.manifest["expect"]["signature"]["message"] == "tests/test_units.py::test_runner_name"
    result = replay(path, "--backend", "local", "--strict")
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result


@pytest.mark.docker
@pytest.mark.parametrize("stem", ["tests-test_units-test_config", "tests-test_broken-collect"])
def test_pytest_mode_bundle_reproduces_in_docker(project, base_image, docker_client, stem):
    """A read-only root with a writable /tmp: pytest must not need to write beside the tests."""
    root, _ = project
    path, _ = bundle(root, stem)
    result = replay(path, "--backend", "docker", "--image", base_image, "--strict")
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result
    assert result["backend"] == "docker"


def test_collection_error_bundle_reproduces(project):
    root, _ = project
    path, b = bundle(root, "tests-test_broken-collect")
    test = b.manifest["test"]
    assert (test["mode"], test["when"], test["reproduces"]) == ("pytest", "collect", True)
    assert b.manifest["entry"]["python_args"][-1] == "tests/test_broken.py"
    sig = b.manifest["expect"]["signature"]
    assert sig["types"] == ["exit:2", "tests/test_broken.py (collect): _pytest.nodes.Collector.CollectError <- "
                                      "ImportError"]
    assert sig["frames"][0] == "tests/test_broken.py > test_broken.py:<module>"
    assert sig["message"] == "cannot import name 'float_' from 'units' (<path>/units.py)"
    assert b.manifest["expect"]["exception"]["innermost_type"] == "ImportError"
    result = replay(path, "--backend", "local", "--strict")
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result


def test_setup_error_bundle_reproduces(project):
    root, _ = project
    path, b = bundle(root, "tests-test_units-test_uses_database-setup")
    test = b.manifest["test"]
    assert (test["mode"], test["when"], test["reproduces"]) == ("pytest", "setup", True)
    assert test["mode_reason"].startswith("standalone script not tried: an error in the test's setup")
    sig = b.manifest["expect"]["signature"]
    assert sig["types"] == ["exit:1", "tests/test_units.py::test_uses_database (setup): ConnectionRefusedError"]
    assert sig["frames"] == ["tests/test_units.py::test_uses_database > conftest.py:database"]
    result = replay(path, "--backend", "local")
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result


def test_teardown_error_bundle_reproduces(project):
    root, _ = project
    path, b = bundle(root, "tests-test_units-test_uses_server-teardown")
    test = b.manifest["test"]
    assert (test["mode"], test["when"], test["reproduces"]) == ("pytest", "teardown", True)
    assert b.manifest["expect"]["signature"]["types"] == [
        "exit:1", "tests/test_units.py::test_uses_server (teardown): TimeoutError"]
    result = replay(path, "--backend", "local", "--strict")
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result


def test_state_from_an_earlier_test_gives_the_honest_fallback(project):
    root, _ = project
    path, b = bundle(root, "tests-test_units-test_second")
    test = b.manifest["test"]
    assert test["reproduces"] is False and test["standalone_reproduces"] is False
    assert test["pytest_reproduces"] is False
    assert test["mode_reason"] == ("standalone run differs: it ran without the failure; "
                                   "pytest run differs: it ran without the failure")
    # the expected signature is still pytest's failure in the session, not what a re-run did
    sig = b.manifest["expect"]["signature"]
    assert sig["types"] == ["exit:1", "tests/test_units.py::test_second: AssertionError"]
    assert "the cache was warmed by an earlier test" in sig["message"]
    assert "**Not reproduced at capture:** re-run alone, the test did not fail as it did in its session" \
        in b.text("README.md")
    result = replay(path, "--backend", "local")
    assert result["verdict"] == "fixed" and result["exit"] == 1, result


def test_a_node_id_redaction_changed_gets_no_pytest_form(tmp_path, cache):
    """A parametrize id holding a secret can't select the test once redacted: the bundle says so."""
    token = "Zq8Rk2Lm9Vx4Tn7Pb3Wc6Hy1"
    (tmp_path / "test_secret.py").write_text(
        "import os, pytest\n\n"
        "@pytest.mark.parametrize('key', [os.environ['MY_SERVICE_TOKEN']])\n"
        "def test_auth(key, pytestconfig):\n    assert key == 'other'\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["MY_SERVICE_TOKEN"] = token
    proc = subprocess.run([PY, "-m", "pytest", "-p", "no:cacheprovider", "--reprex-capture", "out", "-q"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "1 failed" in proc.stdout, proc.stdout + proc.stderr
    [path] = (tmp_path / "out").glob("*.reprex.zip")
    with zipfile.ZipFile(path) as zf:
        assert not any(token[:10].encode() in zf.read(info) for info in zf.infolist())
    test = Bundle.read(path).manifest["test"]
    assert test["mode"] == "standalone" and test["reproduces"] is False
    assert "no pytest form: redaction changed the node id, so it can't select the test" in test["mode_reason"]


SESSION_TESTS = """
import warnings


def old_api():
    warnings.warn("old_api is deprecated", DeprecationWarning)
    return 1


def test_lists(capsys):
    assert [1, 2, 3] == [1, 2, 4]


def test_warns(capsys):
    assert old_api() == 1
"""


def test_pytest_form_keeps_the_sessions_options(tmp_path, cache):
    """The pytest form runs -q, and with the session's own -W, -p, -o: under -v (off CI) a list
    comparison's message is the full diff, and under -W error a deprecation is the failure."""
    (tmp_path / "test_session.py").write_text(SESSION_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k not in ("CI", "BUILD_NUMBER")}
    proc = subprocess.run([PY, "-m", "pytest", "-p", "no:cacheprovider", "--reprex-capture", "out", "-v",
                           "-W", "error::DeprecationWarning"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "2 failed" in proc.stdout, proc.stdout + proc.stderr
    for stem, message in [("test_lists", "Full diff:"), ("test_warns", "old_api is deprecated")]:
        path = tmp_path / "out" / f"test_session-{stem}.reprex.zip"
        b = Bundle.read(path)
        assert (b.manifest["test"]["mode"], b.manifest["test"]["reproduces"]) == ("pytest", True), b.manifest["test"]
        args = b.manifest["entry"]["python_args"]
        assert "verbosity_assertions=1" in args and args[args.index("-W") + 1] == "error::DeprecationWarning"
        assert message in b.manifest["expect"]["signature"]["message"]
        result = replay(path, "--backend", "local", "--strict")
        assert (result["verdict"], result["exit"]) == ("reproduced", 0), result


# -- the comparison, on records of real runs ----------------------------------------------------

HARNESS = """
import types

np = types.SimpleNamespace(float64=float)


class TestUnits:
    def test_convert(self):
        {body}


def {runner}():
    TestUnits().test_convert()


{runner}()
"""


def record(tmp_path: Path, where: str, body: str, runner: str = "main") -> dict:
    """The recorder's exception record of one real run of test_units.py in tmp_path/where."""
    (tmp_path / where).mkdir()
    (tmp_path / where / "test_units.py").write_text(HARNESS.format(body=body, runner=runner))
    outcome = run_recorded([PY, "test_units.py"], cwd=tmp_path / where, tee=False).outcome
    assert outcome.outcome == "exception", outcome
    return outcome.exception


TEST = "TestUnits.test_convert"


def test_same_type_other_message_is_a_different_failure(tmp_path):
    real = record(tmp_path, "real", "np.float(1)")
    harness = record(tmp_path, "harness", "self.ureg.parse('1 m')")
    assert real["type"] == harness["type"] == "AttributeError"
    assert difference(real, harness, function=TEST) == (
        "message \"'TestUnits' object has no attribute 'ureg'\" instead of "
        "\"'types.SimpleNamespace' object has no attribute 'float'\"")


def test_frames_count_up_to_the_test_function_only(tmp_path):
    under_pytest = record(tmp_path, "pytest", "np.float(1)", runner="run_by_pytest")
    by_script = record(tmp_path, "script", "np.float(2)", runner="run_by_the_script")
    assert frame_span(under_pytest, TEST) == ["test_units.py:TestUnits.test_convert"]
    assert difference(under_pytest, by_script, function=TEST) is None
    # without the test function to stop at, the callers count, and they differ
    assert difference(under_pytest, by_script) == (
        "frames test_units.py:TestUnits.test_convert < test_units.py:run_by_the_script < test_units.py:<module> "
        "instead of test_units.py:TestUnits.test_convert < test_units.py:run_by_pytest < test_units.py:<module>")
    # same type and message, raised one call deeper: another failure
    deeper = record(tmp_path, "deeper", "(lambda: np.float(1))()")
    assert difference(under_pytest, deeper, function=TEST) == (
        "frames test_units.py:TestUnits.test_convert.<locals>.<lambda> < test_units.py:TestUnits.test_convert "
        "instead of test_units.py:TestUnits.test_convert")


def test_other_types_and_no_failure(tmp_path):
    real = record(tmp_path, "real", "np.float(1)")
    key = record(tmp_path, "key", "{}['x']")
    assert difference(real, key) == "types KeyError instead of AttributeError"
    assert difference(real, None) == "it raised nothing"


def test_long_parametrized_ids_get_one_bundle_each(tmp_path):
    """Found on networkx 2.5 (benchmarks/plugin_suites.py): four parametrized ids longer than
    the name limit cut to one bundle name, and each bundle overwrote the last."""
    import subprocess
    import sys

    (tmp_path / "test_long.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.parametrize('method', ['lanczos', 'tracemin_lu', 'tracemin_pcg', 'tracemin_chol'])\n"
        "@pytest.mark.parametrize('matrix', ['normalized_laplacian_matrix_with_a_very_long_parameter_id_0123456789'])\n"
        "def test_buckminsterfullerene_algebraic_connectivity_of_a_long_name(method, matrix):\n"
        "    raise AttributeError(method)\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--reprex-capture=out",
                          "test_long.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert "4 failed" in run.stdout, run.stdout + run.stderr
    names = sorted(p.name for p in (tmp_path / "out").glob("*.reprex.zip"))
    assert len(names) == 4 and all(len(n) <= 100 + len(".reprex.zip") for n in names), names
