"""Python child processes of a captured run: their imports join the pins, and the uncaught
exception of the child a CalledProcessError (or a non-zero exit) came from is the failure's
cause, so the signature names the child's bug rather than `check=True` in the parent.

Real captures and replays: a pure-Python package `oldapi` served by a loopback index in two
releases (1.0 has `oldapi.legacy`, 2.0 removed it: the shape of numpy 1.24 dropping np.float),
installed for real into the capture's virtualenv and the replays' environments. Nothing but
loopback is contacted."""

import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from bisect_index import build_wheel

from reprex import installer
from reprex.bundle import Bundle
from reprex.capture.pipeline import CaptureOptions, capture_command
from reprex.record import load_outcome
from reprex.replay import ReplayOptions, replay
from reprex.signature import compute, compute_without_children

PY = sys.executable
# The signature id reprex gave the run in test_a_run_without_children_keeps_its_signature before
# child processes were recorded (measured with that version's recorder, reader and signature).
OLD_ID = "09e65d581d102661"
REPO = Path(__file__).resolve().parent.parent
INJECT = REPO / "reprex" / "_inject"

RELEASES = {
    "1.0": "VERSION = '1.0'\nlegacy = float\n",
    "2.0": "VERSION = '2.0'\nmodern = float\n",  # `legacy` removed
}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A PEP 503 index on loopback with oldapi 1.0 and 2.0; pip and uv see it and nothing else."""
    root = tmp_path_factory.mktemp("index")
    project = root / "simple" / "oldapi"
    wheels = [build_wheel(project, "oldapi", v, {"oldapi/__init__.py": src}) for v, src in RELEASES.items()]
    (project / "index.html").write_text(
        "<html><body>\n" + "".join(f'<a href="{w.name}">{w.name}</a>\n' for w in wheels) + "</body></html>\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/simple"
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("PIP_", "UV_")):
                mp.delenv(name)
        mp.setenv("PIP_CONFIG_FILE", os.devnull)
        mp.setenv("PIP_INDEX_URL", url)
        mp.setenv("UV_CACHE_DIR", str(root / "uv-cache"))
        mp.setenv("XDG_CONFIG_HOME", str(root / "xdg"))
        yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def venv(index, tmp_path_factory):
    """The capture's interpreter: a virtualenv with oldapi 2.0 (and nothing else) installed."""
    path = tmp_path_factory.mktemp("capture-venv") / "venv"
    assert installer.run(installer.venv_argv(PY, path), 120).returncode == 0
    python = path / "bin" / "python"
    proc = installer.install(python, "--no-deps", "oldapi==2.0", timeout=300)
    assert proc.returncode == 0, proc.stderr
    return python


def _capture(tmp: Path, python: Path, files: dict[str, str], argv=("app.py",)) -> Bundle:
    for name, text in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(textwrap.dedent(text))
    result = capture_command([str(python), *argv], CaptureOptions(tee=False), cwd=str(tmp))
    assert result.bundle is not None, result.message
    return result.bundle


NUMPY_SHAPE = {"app.py": """
    import subprocess, sys
    subprocess.run([sys.executable, "-c", "import oldapi; oldapi.legacy"], check=True)
"""}


@pytest.fixture(scope="module")
def child_bundle(venv, cache, tmp_path_factory):
    return _capture(tmp_path_factory.mktemp("child"), venv, NUMPY_SHAPE)


def _reqs(bundle: Bundle) -> list[str]:
    return [line.split(" #")[0].strip() for line in bundle.text("requirements.txt").splitlines()
            if line.strip() and not line.startswith("#")]


def test_what_only_the_child_imported_is_pinned_and_its_exception_is_the_cause(child_bundle):
    assert _reqs(child_bundle) == ["oldapi==2.0"]
    sig = child_bundle.manifest["expect"]["signature"]
    assert sig["types"] == ["subprocess.CalledProcessError", "AttributeError"]
    assert sig["frames"] == ["<string>:<module>"]
    assert "has no attribute 'legacy'" in sig["message"]
    run = child_bundle.json("run.json")
    cause = run["exception"]["cause"]
    assert cause["type"] == "AttributeError" and cause["child"]["argv"][1:3] == ["-c", "import oldapi; oldapi.legacy"]
    text = child_bundle.text("traceback.txt")
    assert "In child process" in text and text.index("AttributeError") < text.index("CalledProcessError")
    assert child_bundle.manifest["children"]["failures"] == 1


def test_the_signature_without_children_is_what_reprex_gave_before(child_bundle):
    """For a bundle captured before children were recorded: its signature stopped at the
    CalledProcessError in app.py, which compute_without_children gives back."""
    from reprex.record import Outcome

    run = child_bundle.json("run.json")
    outcome = Outcome(outcome="exception", exit_code=1, exception=run["exception"])
    assert compute(outcome).types == ["subprocess.CalledProcessError", "AttributeError"]
    old = compute_without_children(outcome)
    assert old.types == ["subprocess.CalledProcessError"] and old.frames == ["subprocess.py:run", "app.py:<module>"]


def test_replay_reproduced_with_the_pin_fixed_with_the_old_release(child_bundle):
    assert replay(child_bundle, ReplayOptions(backend="local")).verdict == "reproduced"
    assert replay(child_bundle, ReplayOptions(backend="local", strict=True)).verdict == "reproduced"
    fixed = replay(child_bundle, ReplayOptions(backend="local", with_specs=["oldapi==1.0"], expect="fixed"))
    assert fixed.verdict == "fixed", fixed.reason


def test_without_the_childs_package_the_replay_is_different(child_bundle):
    """A bundle that lost the pin (what capture wrote before children were recorded): the child
    now fails with ModuleNotFoundError, and only CalledProcessError is alike."""
    files = dict(child_bundle.files)
    files["requirements.txt"] = b"# no pins\n"
    manifest = json.loads(json.dumps(child_bundle.manifest))
    manifest["pins"]["count"] = 0
    stripped = Bundle(manifest=manifest, files=files).finalize()
    result = replay(stripped, ReplayOptions(backend="local"))
    assert result.verdict == "different", result.reason
    assert result.signature.types == ["subprocess.CalledProcessError", "ModuleNotFoundError"]


def test_a_bundle_captured_before_children_were_recorded_still_reproduces(child_bundle):
    """Its stored signature ends at the parent's CalledProcessError: a replay that now carries the
    child's cause is judged against that too (and the same bundle without the child's package is
    still `different` with the new signature: see above)."""
    from reprex.record import Outcome

    run = child_bundle.json("run.json")
    old = compute_without_children(Outcome(outcome="exception", exit_code=1, exception=run["exception"]))
    manifest = json.loads(json.dumps(child_bundle.manifest))
    manifest["expect"]["signature"] = old.to_dict()
    manifest["expect"]["signature"]["message"] = ""
    older = Bundle(manifest=manifest, files=dict(child_bundle.files)).finalize()
    result = replay(older, ReplayOptions(backend="local"))
    assert result.verdict == "reproduced", result.reason
    assert result.signature.types == ["subprocess.CalledProcessError"]
    fixed = replay(older, ReplayOptions(backend="local", with_specs=["oldapi==1.0"]))
    assert fixed.verdict == "fixed", fixed.reason


def test_the_cli_says_it_too(child_bundle, tmp_path):
    path = child_bundle.write(tmp_path / "child.reprex.zip")
    reprex = [PY, "-m", "reprex"]
    proc = subprocess.run([*reprex, "replay", str(path), "--backend", "local", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and json.loads(proc.stdout)["verdict"] == "reproduced", proc.stderr
    proc = subprocess.run([*reprex, "replay", str(path), "--backend", "local", "--with", "oldapi==1.0",
                           "--expect", "fixed", "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and json.loads(proc.stdout)["verdict"] == "fixed", proc.stderr


WRAPPED = {
    "app.py": """
        import subprocess
        subprocess.check_call(["sh", "run.sh"])
    """,
    "run.sh": "set -e\nexec \"$PYTHON\" -m tool\n",
    "tool.py": """
        import subprocess, sys
        def build():
            subprocess.check_output([sys.executable, "steps/inner.py"])
        build()
    """,
    "steps/inner.py": """
        import oldapi
        def convert(x):
            return oldapi.legacy(x)
        convert("1.5")
    """,
}


def test_shell_wrapper_python_m_and_a_nested_child(venv, cache, tmp_path, monkeypatch):
    """app.py -> sh run.sh -> python -m tool -> python steps/inner.py: the innermost child's
    failure is the cause of each CalledProcessError on the way up, its import is pinned, and
    every file of the chain is bundled, so the replay reproduces it."""
    monkeypatch.setenv("PYTHON", str(venv))
    bundle = _capture(tmp_path, venv, WRAPPED)
    assert _reqs(bundle) == ["oldapi==2.0"]
    sig = bundle.manifest["expect"]["signature"]
    assert sig["types"] == ["subprocess.CalledProcessError", "subprocess.CalledProcessError", "AttributeError"]
    assert sig["frames"] == ["inner.py:convert", "inner.py:<module>"]
    assert {"files/run.sh", "files/tool.py", "files/steps/inner.py"} <= set(bundle.files)
    # the replay's PYTHON is its own interpreter, as the run's was
    monkeypatch.setenv("PYTHON", "python")
    result = replay(bundle, ReplayOptions(backend="local", pass_env={"PYTHON": "python"}))
    assert result.verdict == "reproduced", result.reason
    fixed = replay(bundle, ReplayOptions(backend="local", pass_env={"PYTHON": "python"},
                                         with_specs=["oldapi==1.0"]))
    assert fixed.verdict == "fixed", fixed.reason


EXIT_ONLY = {"app.py": """
    import subprocess, sys
    proc = subprocess.run([sys.executable, "child.py"], capture_output=True)
    sys.exit(proc.returncode)
""", "child.py": """
    import oldapi
    oldapi.legacy
"""}


def test_a_non_zero_exit_passed_on_from_a_child_is_the_childs_failure(venv, cache, tmp_path):
    """The parent raises nothing and prints nothing (it swallowed the child's stderr)."""
    bundle = _capture(tmp_path, venv, EXIT_ONLY)
    sig = bundle.manifest["expect"]["signature"]
    assert sig["kind"] == "exit" and sig["types"] == ["exit:1", "AttributeError"]
    assert sig["frames"] == ["child.py:<module>"]
    assert _reqs(bundle) == ["oldapi==2.0"]
    assert replay(bundle, ReplayOptions(backend="local")).verdict == "reproduced"


def _record(tmp: Path, source: str, *args: str, env: dict | None = None):
    """Run `python app.py` under the recorder by hand (what capture does), keep the record dir."""
    record = tmp / "record"
    record.mkdir()
    (tmp / "app.py").write_text(textwrap.dedent(source))
    environ = {**os.environ, "REPREX_RECORD_DIR": str(record), "PYTHONPATH": str(INJECT), **(env or {})}
    environ.pop("REPREX_RECORD_PARENT", None)
    proc = subprocess.run([PY, "app.py", *args], cwd=tmp, env=environ, capture_output=True, text=True, timeout=600)
    return record, load_outcome(record, proc.returncode, output_tail=[["stderr", proc.stderr]])


MANY = """
    import subprocess, sys
    code = "import {mod}\\nraise ValueError('child %d failed')"
    for i in range(150):
        proc = subprocess.run([sys.executable, "-c", code.format(mod=("mod_a", "mod_b", "mod_c")[i % 3]) % i],
                              capture_output=True)
        assert proc.returncode == 1, proc.stderr
    subprocess.run([sys.executable, "-c", "raise KeyError('the last one')"], check=True)
"""


def test_thousands_of_children_are_bounded_and_the_last_failure_is_the_cause(tmp_path):
    """150 failing children (the recorder keeps the newest 64 failure files) importing three
    distinct sets of modules (one file per set), then the one check=True names."""
    for name in ("mod_a", "mod_b", "mod_c"):
        (tmp_path / f"{name}.py").write_text("VALUE = 1\n")
    record, outcome = _record(tmp_path, MANY)
    children = record / "children"
    failures = [p for p in children.iterdir() if p.name.startswith("x-")]
    assert len(failures) == 64  # one at a time here, so exactly the cap
    sets = [p for p in children.iterdir() if p.name.startswith("m-")]
    assert len(sets) == 3  # one file per distinct set of imports, not per child
    assert all(p.stat().st_size <= 512 * 1024 for p in children.iterdir())
    assert {"mod_a", "mod_b", "mod_c"} <= set(outcome.modules)
    assert outcome.children == {"import_sets": 3, "failures": 64, "capped": False}
    sig = compute(outcome)
    assert sig.types == ["subprocess.CalledProcessError", "KeyError"]
    assert "the last one" in outcome.exception["cause"]["message"]
    # the main record is the main process's alone
    events = [json.loads(line) for line in (record / "events.jsonl").read_text().splitlines()]
    assert {e["pid"] for e in events if e["ev"] == "start"} == {outcome.start["pid"]}


def test_a_caught_childs_failure_is_not_the_cause_of_a_later_non_python_command(tmp_path):
    """A Python child failed and was handled; then `sh -c 'exit 3'` fails with check=True:
    nothing of the earlier child may be blamed."""
    record, outcome = _record(tmp_path, """
        import subprocess, sys
        subprocess.run([sys.executable, "-c", "raise ValueError('handled')"], capture_output=True)
        subprocess.run(["sh", "-c", "exit 3"], check=True)
    """)
    assert compute(outcome).types == ["subprocess.CalledProcessError"]
    assert outcome.exception.get("cause") is None


def test_a_run_without_children_keeps_its_signature(tmp_path):
    """No child, nothing changes: the record has the same signature id as before children were
    recorded (the id below is what reprex computed for this run then)."""
    record, outcome = _record(tmp_path, """
        def parse(text):
            return int(text)
        parse("x")
    """)
    sig = compute(outcome)
    assert sig.types == ["ValueError"] and sig.frames == ["app.py:parse", "app.py:<module>"]
    assert sig.id == OLD_ID
    assert not outcome.children and not list((record / "children").iterdir())


def test_without_a_record_dir_the_recorder_is_inert(tmp_path):
    (tmp_path / "app.py").write_text(
        "import os, subprocess, sys\n"
        "subprocess.run([sys.executable, '-c', 'import os; print(os.environ.get(\"REPREX_RECORD_PARENT\"))'])\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REPREX_RECORD")}
    environ["PYTHONPATH"] = str(INJECT)
    proc = subprocess.run([PY, "app.py"], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "None" and list(tmp_path.iterdir()) == [tmp_path / "app.py"]


def test_docker_replay_takes_the_childs_failure(child_bundle, base_image, docker_client, cache):
    options = dict(backend="docker", image=base_image)
    assert replay(child_bundle, ReplayOptions(**options)).verdict == "reproduced"
    fixed = replay(child_bundle, ReplayOptions(**options, with_specs=["oldapi==1.0"]))
    assert fixed.verdict == "fixed", fixed.reason
