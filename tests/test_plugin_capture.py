"""`pytest --reprex-capture DIR`: failing tests become bundles that `reprex replay` reproduces
outside the test suite. One project holds every shape the standalone script has to rebuild:
a plain test reading a data file through a project module, a method of a test class, a
parametrized test, a fixture-heavy test (tmp_path filled by a fixture, a dict fixture, an
unpicklable object from a parametrized fixture, an autouse fixture that sets the
environment), a test whose failure depends on PYTHONHASHSEED, and one that uses `capsys`,
which the script can't rebuild (its bundle replays the test under pytest instead)."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from reprex.bundle import Bundle

PY = sys.executable
SEED = "7"

CALC = """
import json

def load(path):
    with open(path) as fh:
        return json.load(fh)

def ratio(cfg):
    return cfg["num"] / cfg["den"]
"""

CONFTEST = """
import os
import threading

import pytest


class Client:
    def __init__(self, settings, name):
        self.lock = threading.Lock()  # not picklable
        self.settings = settings
        self.name = name

    def get(self, key):
        with self.lock:
            return self.settings[key]


@pytest.fixture(autouse=True)
def app_mode(monkeypatch):
    monkeypatch.setenv("APP_MODE", "strict")


@pytest.fixture
def settings():
    return {"mode": "fast", "limit": 3}


@pytest.fixture(params=["primary"])
def client(settings, request):
    return Client(settings, request.param)


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "rows.txt"
    path.write_text("a\\nb\\n")
    (tmp_path / "big.txt").write_text("x" * 100_000)  # over the eager-read size: read at the failure
    return path
"""

# A stand-in for pytest-randomly (same plugin name and options): reseeds `random` before each
# test's call. The script must restore that state for a random-dependent failure to reproduce.
ROOT_CONFTEST = """
import random


class FakeRandomly:
    def pytest_runtest_call(self, item):
        random.seed(item.config.getoption("randomly_seed"))


def pytest_addoption(parser):
    parser.addoption("--randomly-seed", dest="randomly_seed", type=int, default=1234)
    parser.addoption("--randomly-dont-reset-seed", dest="randomly_reset_seed", action="store_false", default=True)


def pytest_configure(config):
    config.pluginmanager.register(FakeRandomly(), "randomly")
"""

TESTS = """
import os
import random

import pytest

import calc

PARITY = {parity}
FIRST = {first!r}


def test_plain():
    cfg = calc.load("data/cfg.json")
    assert calc.ratio(cfg) > 0


class TestGroup:
    def test_method(self):
        assert os.environ["APP_MODE"] == "lenient"


@pytest.mark.parametrize("n, expected", [(1, 1), (2, 5)])
def test_param(n, expected):
    assert n * n == expected


def test_fixtures(tmp_path, settings, client, data_file):
    rows = data_file.read_text().split()
    assert len((tmp_path / "big.txt").read_text()) == 100_000
    (tmp_path / "written-by-the-test.txt").write_text("x")
    assert client.name == "primary" and os.environ["APP_MODE"] == "strict"
    client.get("missing-" + str(len(rows)))


def test_hash_order():
    if hash("reprex") % 2 == PARITY:
        raise KeyError("the seeded order")
    raise ValueError("another seed's order")


def test_random():
    if random.random() == FIRST:
        raise KeyError("the seeded sequence")
    raise ValueError("another sequence")


def test_output(capsys):
    print("hello")
    assert capsys.readouterr().out == "bye\\n"


def test_passes(settings):
    assert settings["limit"] == 3
"""


@pytest.fixture(scope="module")
def captured(tmp_path_factory, cache):
    """Run the project's tests once with --reprex-capture; returns (project dir, pytest output)."""
    pytester_like = tmp_path_factory.mktemp("project")
    parity = int(subprocess.check_output([PY, "-c", "print(hash('reprex') % 2)"], text=True,
                                         env={**os.environ, "PYTHONHASHSEED": SEED}))
    (pytester_like / "calc.py").write_text(CALC)
    (pytester_like / "data").mkdir()
    (pytester_like / "data" / "cfg.json").write_text('{"num": 1, "den": 0}')
    (pytester_like / "tests").mkdir()
    (pytester_like / "tests" / "conftest.py").write_text(CONFTEST)
    first = __import__("random").Random(1234).random()
    (pytester_like / "conftest.py").write_text(ROOT_CONFTEST)
    (pytester_like / "tests" / "test_app.py").write_text(TESTS.format(parity=parity, first=first))
    (pytester_like / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONHASHSEED"] = SEED
    proc = subprocess.run([PY, "-m", "pytest", "-p", "no:cacheprovider", "--reprex-capture", "out", "-q"],
                          cwd=pytester_like, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return pytester_like, proc.stdout


def bundle_for(project: Path, stem: str) -> Bundle:
    return Bundle.read(project / "out" / f"tests-test_app-{stem}.reprex.zip")


def reprex_replay(path: Path) -> dict:
    proc = subprocess.run([PY, "-m", "reprex", "replay", str(path), "--backend", "local", "--json"],
                          capture_output=True, text=True, timeout=300)
    return {"exit": proc.returncode, **json.loads(proc.stdout)}


def test_one_bundle_per_failing_test_and_a_summary(captured):
    project, out = captured
    names = sorted(p.name for p in (project / "out").glob("*.reprex.zip"))
    assert names == [f"tests-test_app-{s}.reprex.zip" for s in
                     ["TestGroup-test_method", "test_fixtures-primary", "test_hash_order", "test_output",
                      "test_param-2-5", "test_plain", "test_random"]]
    assert "7 failed, 2 passed" in out
    assert f"tests/test_app.py::test_plain: wrote {project / 'out' / 'tests-test_app-test_plain.reprex.zip'}" in out
    # capsys: the script can't rebuild it, so the bundle replays the test under pytest instead
    assert "tests/test_app.py::test_output: wrote" in out and "test_output.reprex.zip (replays under pytest)" in out
    assert "warning: re-run alone" not in out


@pytest.mark.parametrize("stem, types", [
    ("test_plain", ["ZeroDivisionError"]),
    ("TestGroup-test_method", ["AssertionError"]),
    ("test_param-2-5", ["AssertionError"]),
    ("test_fixtures-primary", ["KeyError"]),
    ("test_hash_order", ["KeyError"]),
    ("test_random", ["KeyError"]),
])
def test_reprex_replay_reproduces_each_captured_test(captured, stem, types):
    project, _ = captured
    path = project / "out" / f"tests-test_app-{stem}.reprex.zip"
    bundle = Bundle.read(path)
    test = bundle.manifest["test"]
    assert test["standalone_reproduces"] is True and test["test_failure"] == types
    assert bundle.manifest["entry"]["kind"] == "test"
    assert bundle.manifest["expect"]["signature"]["types"] == types
    result = reprex_replay(path)
    assert (result["verdict"], result["exit"]) == ("reproduced", 0), result


def test_plain_test_bundles_the_module_and_file_it_read(captured):
    project, _ = captured
    bundle = bundle_for(project, "test_plain")
    assert {"files/calc.py", "files/data/cfg.json", "files/tests/test_app.py", "files/tests/conftest.py",
            "files/reprex_test_plain.py"} <= set(bundle.files)
    assert bundle.manifest["entry"]["python_args"] == ["reprex_test_plain.py"]
    frames = bundle.manifest["expect"]["signature"]["frames"]
    assert frames[:2] == ["calc.py:ratio", "test_app.py:test_plain"]


def test_parameters_are_literals(captured):
    project, _ = captured
    bundle = bundle_for(project, "test_param-2-5")
    values = bundle.manifest["test"]["values"]
    assert values["n"]["how"] == values["expected"]["how"] == "literal"
    script = bundle.text("files/reprex_test_param.py")
    assert "VALUES['n'] = _retmp(2)" in script and "VALUES['expected'] = _retmp(5)" in script


def test_fixture_values_literal_pickle_source_and_tmp_path(captured):
    project, _ = captured
    bundle = bundle_for(project, "test_fixtures-primary")
    test = bundle.manifest["test"]
    values = test["values"]
    assert values["settings"]["how"] == "literal"
    # a path into tmp_path, pointed at the copy; where pytest's basetemp names this machine's user
    # (/tmp/pytest-of-alice), redaction would change the pickle: rebuilt from its fixture's source then
    from reprex.redact import Redactor

    identifying = Redactor().text(str(project), "x") != str(project)
    assert values["data_file"]["how"] == ("source" if identifying else "pickle")
    assert values["tmp_path"]["how"] == "tmp_path"
    assert values["client"]["how"] == "source" and values["client"]["type"] == "conftest.Client"
    assert values["client"]["fixture"] == "conftest.client"
    assert values["app_mode"] == {"how": "source", "type": "NoneType", "fixture": "conftest.app_mode",
                                  "autouse": True}
    assert sorted(test["flagged"]) == ["app_mode", "client"] + (["data_file"] if identifying else [])
    # tmp_path as the fixtures left it before the call, not what the test wrote
    tmp = sorted(n for n in bundle.files if n.startswith("files/_reprex_tmp/"))
    assert [n.rsplit("/", 1)[1] for n in tmp] == ["big.txt", "rows.txt"]
    assert len(bundle.files[tmp[0]]) == 100_000
    assert test["seeds"]["PYTHONHASHSEED"] == SEED


def test_hash_seed_travels_with_the_bundle(captured, tmp_path):
    project, _ = captured
    path = project / "out" / "tests-test_app-test_hash_order.reprex.zip"
    bundle = Bundle.read(path)
    env_values = bundle.json("environment.json")["env"]["value"]["values"]
    assert env_values["PYTHONHASHSEED"] == SEED
    # run plainly, without the seed: the script re-executes itself with it
    with zipfile.ZipFile(path) as zf:
        zf.extractall(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    for _ in range(2):
        proc = subprocess.run([PY, "reprex_test_hash_order.py"], cwd=tmp_path / "files", env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and "KeyError: 'the seeded order'" in proc.stderr, proc.stderr


def test_pytest_randomly_state_is_restored(captured):
    project, _ = captured
    bundle = bundle_for(project, "test_random")
    assert bundle.manifest["test"]["seeds"]["randomly_seed"] == 1234
    assert bundle.manifest["test"]["seeds"]["random_state"] is True
    assert "random.setstate(RANDOM_STATE)" in bundle.text("files/reprex_test_random.py")
    # both conftest.py files (each imported as `conftest`) are loaded, outermost first
    assert "CONFTESTS = [('conftest', 'conftest.py'), ('conftest', 'tests/conftest.py')]" in \
        bundle.text("files/reprex_test_random.py")


def test_editable_pins_of_the_project_are_dropped(captured):
    """The project's own code travels in files/; an editable install of it must not be pinned."""
    from reprex.capture.failed_test import drop_editable_pins

    project, _ = captured
    bundle = bundle_for(project, "test_plain")
    bundle.files["requirements.txt"] = b"myproj==0.1\npytest==9.0\n"
    bundle.manifest["pins"]["flagged"] = [{"name": "MyProj", "version": "0.1", "line": "myproj==0.1",
                                           "flags": ["editable"]}]
    drop_editable_pins(bundle)
    assert bundle.text("requirements.txt") == "pytest==9.0\n"
    assert bundle.manifest["pins"]["dropped_editable"] == ["myproj"]


def test_a_test_the_script_cannot_rebuild_is_flagged_and_replays_under_pytest(captured):
    project, _ = captured
    path = project / "out" / "tests-test_app-test_output.reprex.zip"
    bundle = Bundle.read(path)
    test = bundle.manifest["test"]
    assert test["values"]["capsys"]["how"] == "unsupported" and "capsys" in test["flagged"]
    # predicted to fail, the script is not even run; pytest on the one test fails like the session did
    assert (test["standalone_reproduces"], test["mode"], test["reproduces"]) == (False, "pytest", True)
    assert "standalone_outcome" not in test
    assert bundle.manifest["entry"]["python_args"][-1] == "tests/test_app.py::test_output"
    assert bundle.manifest["expect"]["signature"]["types"] == ["exit:1", "tests/test_app.py::test_output: AssertionError"]
    result = reprex_replay(path)
    assert result["verdict"] == "reproduced" and result["exit"] == 0, result


# -- secrets: a fixture value or a test id holding one must not reach the bundle ----------------

TOKEN = "Zq8Rk2Lm9Vx4Tn7Pb3Wc6Hy1"  # the value of MY_SERVICE_TOKEN in the captured run

SECRET_CONFTEST = """
import os
from dataclasses import dataclass

import pytest


@dataclass
class Settings:
    endpoint: str
    token: str


@pytest.fixture
def settings():
    return Settings("https://api.example.invalid", os.environ["MY_SERVICE_TOKEN"])


@pytest.fixture
def plain():
    return Settings("https://api.example.invalid", "not-a-secret")


def _service_token():
    return os.environ["MY_SERVICE_TOKEN"]


@pytest.fixture
def raw_token():
    return _service_token()


@pytest.fixture
def rows(tmp_path):
    path = tmp_path / "rows.txt"
    path.write_text("a\\nb\\n")
    return path
"""

SECRET_TESTS = """
import os

import pytest


def test_call(settings, plain):
    assert settings.endpoint.startswith("https://other")


def test_literal(raw_token):
    assert raw_token == "something else"


@pytest.mark.parametrize("key", [os.environ["MY_SERVICE_TOKEN"]])
def test_auth(key, tmp_path, rows):
    assert rows.read_text() == "a\\nb\\n" and (tmp_path / "rows.txt").exists()
    assert key == "something else"
"""


@pytest.fixture(scope="module")
def secret_capture(tmp_path_factory, cache):
    project = tmp_path_factory.mktemp("secret-project")
    (project / "tests").mkdir()
    (project / "tests" / "conftest.py").write_text(SECRET_CONFTEST)
    (project / "tests" / "test_secret.py").write_text(SECRET_TESTS)
    (project / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["MY_SERVICE_TOKEN"] = TOKEN
    proc = subprocess.run([PY, "-m", "pytest", "-p", "no:cacheprovider", "--reprex-capture", "out", "-q"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "3 failed" in proc.stdout, proc.stdout + proc.stderr
    return project


def _decoded_base64_chunks(text: str):
    """Every base64-looking run in the text, decoded (the script's pickles are wrapped over lines)."""
    import base64
    import re

    for block in re.findall(r'"""\n([A-Za-z0-9+/=\n]+)\n"""', text):
        yield base64.b64decode("".join(block.split()))
    for run in re.findall(r"[A-Za-z0-9+/]{16,}={0,2}", text):
        try:
            yield base64.b64decode(run + "=" * (-len(run) % 4))
        except ValueError:
            pass


def assert_no_secret(path: Path) -> None:
    """Not the token, nor a piece of it (pytest cuts tmp directory names to 30 characters), in the zip's
    file name, its member names, any member's bytes, or any base64 run in them, decoded."""
    piece = TOKEN[:10]
    assert piece not in path.name
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            assert piece not in info.filename, info.filename
            data = zf.read(info)
            assert piece.encode() not in data, info.filename
            for chunk in _decoded_base64_chunks(data.decode("utf-8", "replace")):
                assert piece.encode() not in chunk, info.filename
    assert piece.encode() not in path.read_bytes()


def test_a_fixture_value_holding_an_env_secret_is_not_pickled(secret_capture):
    path = secret_capture / "out" / "tests-test_secret-test_call.reprex.zip"
    assert_no_secret(path)
    bundle = Bundle.read(path)
    values = bundle.manifest["test"]["values"]
    # rebuilt from the fixture's source (flagged), not pickled; a value without a secret still is
    assert values["settings"]["how"] == "source" and values["settings"]["fixture"] == "conftest.settings"
    assert "a secret" in values["settings"]["note"] and "settings" in bundle.manifest["test"]["flagged"]
    assert values["plain"]["how"] == "pickle"
    script = bundle.text("files/reprex_test_call.py")
    assert "VALUES['settings'] = _fixture(" in script
    assert any(b"not-a-secret" in chunk for chunk in _decoded_base64_chunks(script))
    assert bundle.manifest["test"]["standalone_reproduces"] is True


def test_a_literal_holding_an_env_secret_is_not_embedded(secret_capture):
    path = secret_capture / "out" / "tests-test_secret-test_literal.reprex.zip"
    assert_no_secret(path)
    bundle = Bundle.read(path)
    assert bundle.manifest["test"]["values"]["raw_token"]["how"] == "source"
    assert "VALUES['raw_token'] = _retmp(" not in bundle.text("files/reprex_test_literal.py")


def test_a_parametrized_secret_stays_out_of_names_manifest_and_bytes(secret_capture):
    written = sorted(p.name for p in (secret_capture / "out").glob("*.reprex.zip"))
    assert written == ["tests-test_secret-test_auth-redacted-env-secret.reprex.zip",
                       "tests-test_secret-test_call.reprex.zip", "tests-test_secret-test_literal.reprex.zip"]
    path = secret_capture / "out" / written[0]
    assert_no_secret(path)
    bundle = Bundle.read(path)
    manifest = bundle.manifest
    assert manifest["name"] == "tests-test_secret-test_auth-redacted-env-secret"
    assert manifest["test"]["nodeid"] == "tests/test_secret.py::test_auth[<redacted:env-secret>]"
    assert manifest["entry"]["argv"][-1] == manifest["test"]["nodeid"]
    assert TOKEN[:10] not in json.dumps(manifest)
    values = manifest["test"]["values"]
    assert values["key"]["how"] == "unsupported"
    # pytest named tmp_path after the id (a piece of the token): the bundle's copy is renamed, and the
    # fixture value pointing into it is rebuilt from its source rather than pickled
    assert "files/_reprex_tmp/tmp_path0/rows.txt" in bundle.files
    assert values["rows"]["how"] == "source"
    # the script can't have the key, so it fails otherwise (assert None == ...), and the redacted id
    # can't select the test under pytest: the bundle expects the test's failure and says it differs
    test = manifest["test"]
    assert (test["standalone_reproduces"], test["reproduces"], test["mode"]) == (False, False, "standalone")
    assert "no pytest form: redaction changed the node id" in test["mode_reason"]


PYDANTIC_CONFTEST = """
import os

import pytest
from pydantic import BaseModel, SecretStr


class Account(BaseModel):
    user: str
    password: SecretStr


@pytest.fixture
def api_key():
    return SecretStr(os.environ["APP_SETTING_X"])


@pytest.fixture
def account():
    return Account(user="alice", password=SecretStr(os.environ["APP_SETTING_X"]))
"""

PYDANTIC_TESTS = """
def test_uses_secrets(api_key, account):
    assert api_key.get_secret_value() == account.user
"""


def test_a_fixture_holding_a_pydantic_secretstr_never_reaches_the_bundle(tmp_path, cache):
    """SecretStr's repr is `SecretStr('**********')` and the variable's name says nothing, so only
    reading the pickle (its SecretStr type) tells that it carries a secret: it must not be pickled."""
    pytest.importorskip("pydantic")
    secret = "q8Zt3mK1vXr7Lw2n" + os.urandom(4).hex()
    project = tmp_path / "pydantic-project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "conftest.py").write_text(PYDANTIC_CONFTEST)
    (project / "tests" / "test_pyd.py").write_text(PYDANTIC_TESTS)
    (project / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["APP_SETTING_X"] = secret
    proc = subprocess.run([PY, "-m", "pytest", "-p", "no:cacheprovider", "--reprex-capture", "out", "-q"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "1 failed" in proc.stdout, proc.stdout + proc.stderr
    [path] = (project / "out").glob("*.reprex.zip")
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            data = zf.read(info)
            assert secret.encode() not in data, info.filename
            for chunk in _decoded_base64_chunks(data.decode("utf-8", "replace")):
                assert secret.encode() not in chunk, info.filename
    values = Bundle.read(path).manifest["test"]["values"]
    assert values["api_key"]["how"] != "pickle" and values["account"]["how"] != "pickle", values
