"""`reprex extract`: from a failure deep in a framework to a call that fails on its own.

The "framework" here is a real package directory on a site-packages path, laid out
like Ray's `import_attr` case: the user's config names an import path that can't work
from where the code runs, and the error surfaces inside the framework's importer.
Candidates are judged in a container (the default) or, for the user's own capture
(`capture --extract`), by the local backend.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reprex.bundle import Bundle
from reprex.capture.pipeline import CaptureOptions, capture_command
from reprex.extract import extract
from reprex.replay import ReplayOptions, replay

PY = sys.executable

IMPORTER = '''
import importlib
import logging

logger = logging.getLogger(__name__)
SEPARATOR = ":"


def import_attr(full_path, *, reload_module=False):
    """Like ray._common.utils.import_attr: 'pkg.mod:attr' or 'pkg.mod.attr'."""
    if full_path is None:
        raise TypeError("import path cannot be None")
    if SEPARATOR in full_path:
        module_name, attr_name = full_path.split(SEPARATOR)
    else:
        module_name, _, attr_name = full_path.rpartition(".")
    module = importlib.import_module(module_name)
    if reload_module:
        importlib.reload(module)
    return getattr(module, attr_name)
'''

SERVE = '''
import threading
from fw.utils import import_attr


class Controller:
    def __init__(self):
        self.lock = threading.Lock()  # not picklable: a method call can't be rebuilt

    def deploy(self, app):
        return _build(app["import_path"], app.get("reload", False))


def _build(path, reload_module):
    return import_attr(path, reload_module=reload_module)


def run(config):
    return [Controller().deploy(app) for app in config["applications"]]
'''


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def project(tmp_path, monkeypatch, cache):
    site = tmp_path / "site" / "site-packages"
    write(site / "fw" / "__init__.py", "")
    write(site / "fw" / "utils.py", IMPORTER)
    write(site / "fw" / "serve.py", SERVE)
    repo = tmp_path / "repo"
    write(repo / "apps" / "nested" / "__init__.py", "")
    write(repo / "apps" / "nested" / "main.py", "app = 'the deployment'\n")
    write(repo / "serve_app.py", """
        import fw.serve
        CONFIG = {"applications": [{"name": "topics", "import_path": "nested.main:app"}]}
        print(fw.serve.run(CONFIG))
    """)
    monkeypatch.setenv("PYTHONPATH", str(site))
    return repo


@pytest.mark.docker
def test_extracts_the_importer_alone_and_replays_without_the_framework(project, base_image):
    # The fixed path imports files the failing run never read: include them.
    result = capture_command([PY, "serve_app.py"], CaptureOptions(tee=False, include=["apps/**/*.py"]),
                             cwd=str(project))
    original = result.bundle
    assert original.manifest["expect"]["signature"]["types"] == ["ModuleNotFoundError"]
    report = extract(original, backend="docker", image=base_image)  # judged in the sandbox
    assert report.kept == "extracted", report.message
    assert report.function == "fw.utils.import_attr" and report.backend == "docker"
    script = report.bundle.text("repro.py")
    assert "def import_attr(full_path" in script and "import fw" not in script  # inlined, no framework
    assert "SEPARATOR = ':'" in script or 'SEPARATOR = ":"' in script  # module-level names carried along
    assert "import_attr('nested.main:app', reload_module=False)" in script
    m = report.bundle.manifest
    assert m["entry"]["kind"] == "extracted" and m["original_entry"]["python_args"] == ["serve_app.py"]
    assert "original/repro.py" in report.bundle.files
    # The replay env has no framework at all: PYTHONPATH isn't passed to replays.
    opts = ReplayOptions(backend="docker", image=base_image)
    verdict = replay(report.bundle, opts)
    assert verdict.verdict == "reproduced", verdict.reason
    # The documented fix: dotted from the working-dir root.
    fixed = report.bundle
    fixed.files["repro.py"] = fixed.files["repro.py"].replace(b"'nested.main:app'", b"'apps.nested.main:app'")
    fixed.finalize()
    assert replay(fixed, opts).verdict == "fixed"
    # and the local backend, for the user's own bundle, judges the same way
    assert extract(original, backend="local").kept == "extracted"


def test_a_frame_that_cannot_be_isolated_keeps_the_full_script(project):
    result = capture_command([PY, "serve_app.py"], CaptureOptions(tee=False), cwd=str(project))
    path = result.bundle.write(project / "app.reprex.zip")
    before = path.read_bytes()
    proc = subprocess.run([PY, "-m", "reprex", "extract", str(path), "--function", "Controller.deploy", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["kept"] == "original" and report["written"] is None
    assert "argument 'self' (fw.serve.Controller) can't be rebuilt" in report["message"]
    assert path.read_bytes() == before  # nothing rewritten


def test_cli_extract_in_place_and_capture_extract(project):
    proc = subprocess.run([PY, "-m", "reprex", "capture", "-q", "--extract", "--", PY, "serve_app.py"],
                          cwd=project, capture_output=True, text=True, timeout=180, env=os.environ.copy())
    # the user's own fresh capture: judged by the local backend, no Docker needed
    assert "kept the extracted call fw.utils.import_attr() (inlined); it fails the same way on its own (local)" \
        in proc.stderr, proc.stderr
    bundle = Bundle.read(project / "serve_app.reprex.zip")
    assert bundle.manifest["extracted"]["function"] == "fw.utils.import_attr"
    assert bundle.manifest["entry"]["kind"] == "extracted"


def test_frame_out_of_range_is_reported(project):
    result = capture_command([PY, "serve_app.py"], CaptureOptions(tee=False), cwd=str(project))
    report = extract(result.bundle, frame=99)
    assert report.kept == "original" and "out of range" in report.message


@pytest.mark.docker
def test_extract_fetches_a_url_pin_only_with_allow_urls(project, tmp_path, base_image, listener, offline_pip):
    """A bundle pinning `name @ https://127.0.0.1:PORT/...whl` (a listener of this test): without
    the user's --allow-urls `reprex extract` connects nowhere and says why (exit 3); with it the
    host's download of the pin reaches the listener, so the first half can fail."""
    at = f"127.0.0.1:{listener.port}"
    result = capture_command([PY, "serve_app.py"], CaptureOptions(tee=False), cwd=str(project), write=False)
    files = dict(result.bundle.files)
    files["requirements.txt"] = f"evilwheel @ https://{at}/evilwheel-1.0-py3-none-any.whl\n".encode()
    path = Bundle(manifest=dict(result.bundle.manifest), files=files).finalize().write(tmp_path / "u.reprex.zip")
    before = path.read_bytes()
    command = [PY, "-m", "reprex", "extract", str(path), "--image", base_image, "--json"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "--allow-urls" in proc.stdout + proc.stderr and at in proc.stdout + proc.stderr
    assert listener.hits == [] and path.read_bytes() == before
    proc = subprocess.run(command + ["--allow-urls"], capture_output=True, text=True, timeout=300,
                          env=os.environ.copy())
    assert listener.wait_for_hit(), "the granted URL pin was not fetched: " + (proc.stdout + proc.stderr)[-2000:]


def test_function_is_found_in_an_outer_exception_of_the_chain(tmp_path, cache):
    # `raise X from Y` inside the called code: the caller (`reset_schema`) is only in the outer
    # exception's traceback, not in the root cause's (SQLAlchemy 2.0's ObjectNotExecutableError
    # from an AttributeError, sqlalchemy/sqlalchemy#9155, is that shape).
    write(tmp_path / "app.py", """
        def lookup(table, key):
            try:
                return table[key]
            except KeyError as err:
                raise LookupError("no such column: " + key) from err

        def reset_schema(table, key):
            return lookup(table, key)

        reset_schema({"id": 1}, "name")
    """)
    result = capture_command([PY, "app.py"], CaptureOptions(tee=False), cwd=str(tmp_path))
    assert result.bundle.manifest["expect"]["signature"]["types"] == ["LookupError", "KeyError"]
    report = extract(result.bundle, function="reset_schema", backend="local")
    assert report.kept == "extracted", report.message
    assert report.function.endswith("reset_schema")
    assert "reset_schema({'id': 1}, 'name')" in report.bundle.text("repro.py")
    assert replay(report.bundle, ReplayOptions(backend="local")).verdict == "reproduced"
    assert extract(result.bundle, function="no_such_function", backend="local").kept == "original"
