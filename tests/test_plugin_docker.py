"""The pytest plugin against the real Docker engine: a folder of real bundles (the
dependency_skew example, captured in a venv with its pin, and two programs written against
packaging<22) reproduces under two pytest-xdist workers; the same folder passes under
`--reprex-expect fixed` with the fixing versions installed over the pins; the quickstart
example and a captured failing test replay in containers; Ctrl-C leaves no container.

In CI (CI=true) the `docker_client` fixture fails instead of skipping when no engine is up."""

pytest_plugins = ["pytester"]

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reprex.bundle import Bundle
from reprex.capture.pipeline import CaptureOptions, capture_command

pytestmark = pytest.mark.docker

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent

# Both written against packaging<22 (LegacyVersion); both fixed by installing packaging==21.3.
SKEW = """\
from packaging.version import parse

def newest(tags):
    from packaging.version import LegacyVersion
    return max(parse(t) for t in tags if not isinstance(parse(t), LegacyVersion))

print(newest(["1.0", "2.0", "nightly"]))
"""
LENIENT = """\
from packaging.version import parse

def newest(tags):
    return max(parse(t) for t in tags)

print("newest", newest(["1.0", "2.0", "nightly"]))
"""


def capture(workdir: Path, source: str, name: str = "app.py", args=()) -> Bundle:
    workdir.mkdir(parents=True, exist_ok=True)
    if source:
        (workdir / name).write_text(source)
    result = capture_command([PY, name, *args], CaptureOptions(tee=False), cwd=str(workdir), write=False)
    assert result.bundle is not None, result.message
    return result.bundle


@pytest.fixture(scope="module")
def flask_python(tmp_path_factory) -> Path:
    """A throwaway venv with what the dependency_skew example pinned (flask==2.2.2): today's Werkzeug."""
    venv = tmp_path_factory.mktemp("skew-venv") / "venv"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    proc = subprocess.run([PY, "-m", "pip", "--python", str(python), "install", "-q", "--disable-pip-version-check",
                           "-r", str(ROOT / "examples" / "dependency_skew" / "requirements.txt")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return python


@pytest.fixture(scope="module")
def folder(tmp_path_factory, cache, flask_python) -> Path:
    """Real bundles of real failures: zips and a directory."""
    out = tmp_path_factory.mktemp("reprexes")
    example = tmp_path_factory.mktemp("dependency_skew")
    shutil.copytree(ROOT / "examples" / "dependency_skew", example, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.reprex.zip", ".venv*"))
    result = capture_command([str(flask_python), "app.py"], CaptureOptions(tee=False), cwd=str(example), write=False)
    assert result.bundle.manifest["expect"]["signature"]["types"] == ["ImportError"]
    result.bundle.write(out / "dependency_skew.reprex.zip")
    skew = capture(tmp_path_factory.mktemp("skew"), SKEW)
    lenient = capture(tmp_path_factory.mktemp("lenient"), LENIENT)
    assert skew.manifest["expect"]["signature"]["types"] == ["ImportError"]
    assert lenient.manifest["expect"]["signature"]["types"] == ["packaging.version.InvalidVersion"]
    skew.write(out / "skew.reprex.zip")
    lenient.write(out / "lenient")
    return out


def test_folder_of_real_bundles_reproduces_then_passes_as_fixed(pytester, folder, base_image, docker_client):
    shutil.copytree(folder, pytester.path / "reprexes")
    common = ["--reprex-backend", "docker", "--reprex-image", base_image, "-p", "no:cacheprovider"]

    result = pytester.runpytest(*common, "-n", "2", "-rA")
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert out.count("verdict:   reproduced (expected reproduced)") == 3
    assert "replay:    on docker (reprex-env:" in out
    assert "cannot import name 'url_quote' from 'werkzeug.urls'" in out

    fixes = ["--reprex-with", "werkzeug==2.3.8", "--reprex-with", "packaging==21.3"]
    result = pytester.runpytest(*common, *fixes, "--reprex-expect", "fixed", "-rA")
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert out.count("verdict:   fixed (expected fixed)") == 3
    assert "200 {'status': 'ok'}" in out  # the Flask service answered its health check
    assert "newest 2.0" in out  # the lenient program ran to completion under packaging 21.3
    # and without the fixes the same expectation fails
    result = pytester.runpytest(*common, "--reprex-expect", "fixed")
    result.assert_outcomes(failed=3)


def test_example_and_captured_test_bundles_replay_in_containers(pytester, tmp_path, base_image, docker_client, cache):
    examples = pytester.path / "reprexes"
    examples.mkdir()
    quickstart = tmp_path / "quickstart"
    shutil.copytree(ROOT / "examples" / "quickstart", quickstart)
    capture(quickstart, "", name="train.py", args=["config.json"]).write(examples / "quickstart.reprex.zip")

    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "test_shop.py").write_text(textwrap.dedent("""\
        import pytest

        @pytest.fixture
        def prices():
            return {"apple": 3, "pear": 4}

        @pytest.mark.parametrize("item", ["apple", "plum"])
        def test_price(prices, item):
            assert prices[item] > 0
        """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run([PY, "-m", "pytest", "-p", "no:cacheprovider", f"--reprex-capture={examples}", "-q"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "1 failed, 1 passed" in proc.stdout, proc.stdout + proc.stderr
    assert (examples / "test_shop-test_price-plum.reprex.zip").is_file()

    result = pytester.runpytest("--reprex-backend", "docker", "--reprex-image", base_image, "-p", "no:cacheprovider",
                                "-rA")
    result.assert_outcomes(passed=2)
    assert result.stdout.str().count("on docker (reprex-env:") == 2


SLEEPER = """\
import time

def check():
    time.sleep(600)
    raise KeyError("a")

check()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_killed_session_leaves_no_running_container(tmp_path, base_image, docker_client, cache, sig):
    """Ctrl-C and SIGTERM unwind the replay (its container is removed, the session ends as
    interrupted); after SIGKILL nothing of reprex runs, and the container stops itself at
    the replay's timeout."""
    work = tmp_path / "work"
    bundle = capture(work, 'def check():\n    raise KeyError("a")\ncheck()\n')
    bundle.files["files/app.py"] = SLEEPER.encode()
    bundle.finalize()
    (tmp_path / "reprexes").mkdir()
    bundle.write(tmp_path / "reprexes" / "sleeper.reprex.zip")
    label = {"label": f"org.reprex.bundle={bundle.id}"}
    timeout = 5
    proc = subprocess.Popen([PY, "-m", "pytest", "-p", "no:cacheprovider", "reprexes", "--reprex-backend", "docker",
                             "--reprex-image", base_image, "--reprex-timeout", str(timeout)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not docker_client.containers.list(filters={**label, "status": "running"}):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the replay container never started"
            time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        if sig == signal.SIGKILL:
            # no one is left to remove it: the container ends on its own, at the timeout (+ a margin)
            while docker_client.containers.list(filters={**label, "status": "running"}):
                assert time.monotonic() - started < timeout + 30, "the container outlived the replay's timeout"
                time.sleep(0.5)
            return
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
        assert "KeyboardInterrupt" in out or "Interrupted" in out, out
        left = docker_client.containers.list(all=True, filters=label)
        assert not left, [c.name for c in left]
    finally:
        for c in docker_client.containers.list(all=True, filters=label):
            c.remove(force=True)


def test_a_bundles_url_pin_is_fetched_only_with_reprex_allow_urls(pytester, tmp_path, base_image, docker_client,
                                                                  cache, listener, offline_pip):
    """A collected bundle pinning `name @ https://127.0.0.1:PORT/...whl` (a listener of this test):
    without the user's --reprex-allow-urls nothing connects there and the item says why; with it,
    the host's download reaches the listener (so the first half can fail)."""
    at = f"127.0.0.1:{listener.port}"
    boom = capture(tmp_path / "app", "def check():\n    raise KeyError('a')\ncheck()\n")
    files = dict(boom.files)
    files["requirements.txt"] = f"evilwheel @ https://{at}/evilwheel-1.0-py3-none-any.whl\n".encode()
    Bundle(manifest=dict(boom.manifest), files=files).finalize().write(pytester.path / "urlpin.reprex.zip")
    pytester.makeini(f"[pytest]\nreprex_image = {base_image}\nreprex_backend = docker\n")
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"*env-incompatible*{at}*--reprex-allow-urls*"])
    assert listener.hits == []
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider", "--reprex-allow-urls")
    assert result.parseoutcomes().get("skipped", 0) == 0, result.stdout.str()[-2000:]
    assert listener.wait_for_hit(), "the granted URL pin was not fetched: the check above proves nothing"
