"""The docker replay backend against a real Docker engine and real captures.

One captured bundle (and so one environment image) is shared by most tests; the hostile
programs are that bundle with its script swapped, so they reuse the image too.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from importlib import metadata
from pathlib import Path

import pytest

from reprex.bundle import Bundle
from reprex.capture.pipeline import CaptureOptions, capture_command
from reprex.replay import ReplayOptions, exit_code, pick_backend, replay
from reprex.replay.base import EnvIncompatible, InfraError

pytestmark = pytest.mark.docker

PY = sys.executable
BUNDLE_IDS: set[str] = set()  # every bundle replayed here, for the leftover check


# -- helpers ------------------------------------------------------------------------

def make_venv(path: Path, *packages: str) -> Path:
    subprocess.run([PY, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    if packages:
        subprocess.run([PY, "-m", "pip", "--disable-pip-version-check", "--python", str(python), "install", "-q",
                        "--no-deps", *packages], check=True, timeout=300)
    return python


def capture(python: Path, workdir: Path, script: str, name: str = "app.py") -> Bundle:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / name).write_text(textwrap.dedent(script))
    result = capture_command([str(python), name], CaptureOptions(tee=False, timeout=120), cwd=str(workdir))
    assert result.bundle is not None, result.message
    return result.bundle


def variant(bundle: Bundle, script: str | None = None, *, requirements: str | None = None,
            python: str | None = None, machine: str | None = None) -> Bundle:
    """The same bundle with its script (or pins, or recorded Python/arch) replaced."""
    manifest = copy.deepcopy(bundle.manifest)
    files = dict(bundle.files)
    if script is not None:
        files["files/app.py"] = textwrap.dedent(script).encode()
    if requirements is not None:
        files["requirements.txt"] = requirements.encode()
    if python is not None:
        manifest["python"]["version"] = python
    if machine is not None:
        manifest["platform"]["machine"] = machine
    return Bundle(manifest=manifest, files=files).finalize()


BOOM_TAIL = """
def main():
    raise RuntimeError("boom")
main()
"""


def hostile(body: str) -> str:
    """A program that does `body`, then fails like BOOM (same signature: reproduced)."""
    return textwrap.dedent(body) + BOOM_TAIL


def run_replay(bundle: Bundle, base_image: str, **kw):
    BUNDLE_IDS.add(bundle.id)
    lines: list[str] = []
    options = ReplayOptions(backend="docker", image=kw.pop("image", base_image), **kw)
    result = replay(bundle, options, progress=lines.append)
    return result, lines


def last_json_line(logs: str, marker: str) -> dict:
    """The JSON object after the last `marker`. Found anywhere in a line and read up to its own
    end: stdout and stderr come from two pipes, and print() writes its newline apart, so under
    load a piece of the traceback can land just before the marker or right after the object."""
    for line in reversed(logs.splitlines()):
        at = line.find(marker)
        if at >= 0:
            return json.JSONDecoder().raw_decode(line[at + len(marker):])[0]
    raise AssertionError(f"no {marker!r} line in the replay output:\n{logs[-3000:]}")


# -- shared fixtures --------------------------------------------------------------------

@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A cache (wheels, build locks) of this test session, shared by xdist workers so their
    builds of one image take turns."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    path = root / "reprex-cache-docker"
    path.mkdir(exist_ok=True)
    mp.setenv("REPREX_CACHE_DIR", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def empty_python(tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp("venv-empty") / "venv")


# Docker stamps each log line when its (per-stream) copier reads it: the merged order is
# the real one for writes more than a millisecond or so apart, hence the pauses.
BOOM = """
    import sys, time
    def main():
        print("out-1", flush=True)
        time.sleep(0.05)
        print("err-1", file=sys.stderr, flush=True)
        time.sleep(0.05)
        print("out-2", flush=True)
        time.sleep(0.05)
        raise RuntimeError("boom")
    main()
"""


@pytest.fixture(scope="module")
def boom_bundle(empty_python, tmp_path_factory) -> Bundle:
    bundle = capture(empty_python, tmp_path_factory.mktemp("boom"), BOOM)
    assert bundle.manifest["expect"]["signature"]["types"] == ["RuntimeError"]
    assert bundle.text("requirements.txt").strip().startswith("#")  # no pins
    return bundle


@pytest.fixture(scope="module")
def boom_replayed(boom_bundle, base_image, docker_client, cache_dir):
    """The first (possibly cold) replay: builds the environment image the other tests reuse."""
    result, lines = run_replay(boom_bundle, base_image, timeout=120)
    assert result.verdict == "reproduced", (result.reason, result.logs)
    return result, lines


@pytest.fixture(scope="module", autouse=True)
def _no_leftovers(docker_client):
    yield
    # every container of this module's bundles is gone once the tests are done
    left = [c.name for c in docker_client.containers.list(all=True, filters={"label": "org.reprex=1"})
            if (c.labels or {}).get("org.reprex.bundle") in BUNDLE_IDS]
    assert not left, f"leftover replay containers: {left}"


# -- reproduce, warm reuse ------------------------------------------------------------------

def test_capture_then_replay_reproduces_and_warm_replay_reuses_the_image(boom_bundle, boom_replayed, base_image,
                                                                          docker_client):
    first, _ = boom_replayed
    assert first.backend == "docker"
    assert first.image.startswith("reprex-env:")
    image_id = docker_client.images.get(first.image).id
    labels = docker_client.images.get(first.image).labels
    assert labels.get("org.reprex") == "1"

    started = time.monotonic()
    second, lines = run_replay(boom_bundle, base_image)
    warm_s = time.monotonic() - started
    assert second.verdict == "reproduced", second.reason
    assert second.image == first.image
    assert docker_client.images.get(second.image).id == image_id  # nothing rebuilt
    assert any(line.startswith("reusing image") for line in lines), lines
    assert not any(line.startswith(("build", "downloading")) for line in lines), lines
    assert warm_s < 15
    # stdout and stderr come back merged in the order the program wrote them
    logs = second.logs
    assert logs.index("out-1") < logs.index("err-1") < logs.index("out-2") < logs.index("RuntimeError: boom")
    assert exit_code(second.verdict) == 0


SEGFAULT = """
    import ctypes
    def crash():
        print("about to crash", flush=True)
        ctypes.string_at(0)
    crash()
"""


def test_a_segfault_reproduces_as_a_signal(empty_python, tmp_path_factory, base_image, cache_dir):
    bundle = capture(empty_python, tmp_path_factory.mktemp("segv"), SEGFAULT)
    expected = bundle.manifest["expect"]["signature"]
    assert (expected["kind"], expected["types"]) == ("signal", ["SIGSEGV"])
    result, _ = run_replay(bundle, base_image)  # same (empty) pins: the shared image
    assert result.verdict == "reproduced", (result.reason, result.logs)
    assert result.signature.kind == "signal" and any("crash" in f for f in result.signature.frames)


# -- --with: fixed ---------------------------------------------------------------------------

FIXABLE = """
    from packaging.utils import canonicalize_version

    def normalized(version):
        return canonicalize_version(version, strip_trailing_zero=False)  # packaging >= 22

    print(normalized("1.0.0"))
"""


def test_with_a_fixing_version_gives_fixed(tmp_path_factory, base_image, docker_client, cache_dir):
    new = metadata.version("packaging")  # what this environment has (and its indexes serve)
    assert int(new.split(".")[0]) >= 22
    python = make_venv(tmp_path_factory.mktemp("venv-old") / "venv", "packaging==21.3")
    bundle = capture(python, tmp_path_factory.mktemp("fixable"), FIXABLE)
    assert "packaging==21.3" in bundle.text("requirements.txt")
    assert bundle.manifest["expect"]["signature"]["types"] == ["TypeError"]

    pinned, _ = run_replay(bundle, base_image)
    assert pinned.verdict == "reproduced", (pinned.reason, pinned.logs)

    fixed, lines = run_replay(bundle, base_image, with_specs=[f"packaging=={new}"], expect="fixed")
    assert fixed.verdict == "fixed", (fixed.reason, fixed.logs)
    assert fixed.image != pinned.image  # the --with image is its own, the pinned one stays warm
    assert "1.0.0" in fixed.logs
    # the environment facts come from the image (written at build, --with step included)
    assert not [row for row in pinned.diff if row["what"].startswith("pin ")], pinned.diff
    assert {"what": "pin packaging", "bundle": "21.3", "replay": new} in fixed.diff, fixed.diff
    assert exit_code(fixed.verdict, "fixed") == 0
    assert exit_code(pinned.verdict, "fixed") == 1


def test_with_a_local_checkout_is_built_on_the_host(boom_bundle, boom_replayed, base_image, tmp_path, cache_dir):
    project = tmp_path / "fixmod"
    (project / "src" / "fixmod").mkdir(parents=True)
    (project / "src" / "fixmod" / "__init__.py").write_text("VALUE = 'from-the-checkout'\n")
    (project / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "fixmod"
        version = "2.0"
    """))
    bundle = variant(boom_bundle, "import fixmod\nprint('fixmod says', fixmod.VALUE)\n")
    result, lines = run_replay(bundle, base_image, with_specs=[str(project)])
    assert result.verdict == "fixed", (result.reason, result.logs)
    assert "fixmod says from-the-checkout" in result.logs
    assert any(line.startswith(f"getting --with {project}") for line in lines), lines


# -- hostile programs are contained --------------------------------------------------------------

WRITES = """
    import json, os
    results = {}
    for path in ["/etc/reprex-pwned", "/opt/reprex/pwned", "/opt/reprex/venv/bin/pwned", "/reprex/in/pwned",
                 "/usr/local/pwned", "/pwned", "/root/pwned", os.path.join(os.getcwd(), "ok.txt")]:
        try:
            with open(path, "w") as fh:
                fh.write("x")
            results[path] = "written"
        except OSError as exc:
            results[path] = type(exc).__name__
    results["cwd"] = os.getcwd()
    results["uid"] = os.getuid()
    print("WRITES " + json.dumps(results), flush=True)
"""


def test_writes_outside_the_work_dir_fail(boom_bundle, boom_replayed, base_image):
    result, _ = run_replay(variant(boom_bundle, hostile(WRITES)), base_image)
    assert result.verdict == "reproduced", (result.reason, result.logs)
    seen = last_json_line(result.logs, "WRITES ")
    assert seen["cwd"] == "/tmp/work"
    assert seen["uid"] == 10001
    assert seen["/tmp/work/ok.txt"] == "written"
    outside = {k: v for k, v in seen.items() if k.startswith("/") and not k.startswith("/tmp/work")}
    assert outside and all(v in ("OSError", "PermissionError") for v in outside.values()), seen


NETWORK = """
    import json, socket
    results = {}
    try:
        socket.create_connection(("1.1.1.1", 80), timeout=3).close()
        results["connect"] = "connected"
    except OSError as exc:
        results["connect"] = type(exc).__name__ + ": " + str(exc)
    try:
        socket.getaddrinfo("pypi.org", 443)
        results["dns"] = "resolved"
    except OSError as exc:
        results["dns"] = type(exc).__name__
    import os
    results["interfaces"] = sorted(os.listdir("/sys/class/net"))
    print("NET " + json.dumps(results), flush=True)
"""


def test_network_connections_fail(boom_bundle, boom_replayed, base_image):
    bundle = variant(boom_bundle, hostile(NETWORK))
    assert bundle.manifest["network"] is False
    result, _ = run_replay(bundle, base_image)
    assert result.verdict == "reproduced", (result.reason, result.logs)
    seen = last_json_line(result.logs, "NET ")
    assert seen["connect"] != "connected" and "unreachable" in seen["connect"].lower(), seen
    assert seen["dns"] != "resolved", seen
    assert seen["interfaces"] == ["lo"], seen


FORK_BOMB = """
    import json, os, time
    forked, error = 0, None
    for _ in range(2000):  # bounded: stops at the first refusal
        try:
            pid = os.fork()
        except OSError as exc:
            error = "%s: %s" % (type(exc).__name__, exc)
            break
        if pid == 0:
            time.sleep(3)
            os._exit(0)
        forked += 1
    print("FORKS " + json.dumps({"forked": forked, "error": error}), flush=True)
"""


def test_fork_bomb_hits_the_pids_limit_and_the_host_survives(boom_bundle, boom_replayed, base_image, docker_client):
    from reprex.replay.docker import DockerBackend

    result, _ = run_replay(variant(boom_bundle, hostile(FORK_BOMB)), base_image, timeout=60)
    assert result.verdict == "reproduced", (result.reason, result.logs)
    seen = last_json_line(result.logs, "FORKS ")
    assert seen["error"] and "temporarily unavailable" in seen["error"].lower(), seen
    assert 0 < seen["forked"] < DockerBackend.pids_limit
    # the host and the daemon are fine
    assert subprocess.run(["true"], timeout=10).returncode == 0
    assert docker_client.ping()


SLEEP_FOREVER = """
    import time
    def wait_forever():
        print("sleeping", flush=True)
        while True:
            time.sleep(3600)
    wait_forever()
"""


def test_sleep_forever_is_killed_at_the_timeout(boom_bundle, boom_replayed, base_image, docker_client):
    bundle = variant(boom_bundle, SLEEP_FOREVER)
    result, _ = run_replay(bundle, base_image, timeout=3)
    # kind "timeout" means the run was killed by the timeout (no wall-clock assertion: noisy machines)
    assert result.signature is not None and result.signature.kind == "timeout", (result.reason, result.logs)
    assert result.verdict == "different"
    assert exit_code(result.verdict) == 1
    # the SIGUSR1 stack dump landed: the hang's frames are in the signature
    assert any("wait_forever" in f for f in result.signature.frames), result.signature.frames
    assert "sleeping" in result.logs
    assert not docker_client.containers.list(all=True, filters={"label": f"org.reprex.bundle={bundle.id}"})


ENVIRON = """
    import json, os
    print("ENV " + json.dumps(dict(os.environ)), flush=True)
"""


def test_the_host_environment_does_not_leak(boom_bundle, boom_replayed, base_image, monkeypatch):
    monkeypatch.setenv("HOST_ONLY_CANARY", "canary-4b1d9e")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "canary-secret-77c2")
    result, _ = run_replay(variant(boom_bundle, hostile(ENVIRON)), base_image)
    assert result.verdict == "reproduced", (result.reason, result.logs)
    seen = last_json_line(result.logs, "ENV ")
    assert "HOST_ONLY_CANARY" not in seen and "AWS_SECRET_ACCESS_KEY" not in seen
    assert "canary" not in result.logs
    assert seen["HOME"] == "/tmp"
    assert seen["PATH"].startswith("/opt/reprex/venv/bin:")
    assert seen["PYTHONPATH"] == "/opt/reprex/inject"


# -- infra-error and env-incompatible ---------------------------------------------------------------

def test_no_daemon_is_an_infra_error_with_a_one_line_reason(boom_bundle, tmp_path, monkeypatch):
    sock = tmp_path / "closed.sock"
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))  # exists, but nobody listens
    s.close()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    from reprex.replay.docker import connect

    with pytest.raises(InfraError) as info:
        connect()
    assert f"unix://{sock}" in info.value.reason
    result = replay(boom_bundle, ReplayOptions(backend="docker"))
    assert result.verdict == "infra-error"
    assert "\n" not in result.reason
    assert result.reason.startswith(f"no Docker daemon reachable at unix://{sock}")
    assert result.reason.endswith("start dockerd or use --backend local")
    assert exit_code(result.verdict) == 3
    assert pick_backend("auto").name == "local"


def test_missing_image_is_an_infra_error(boom_bundle, cache_dir):
    result, _ = run_replay(boom_bundle, "unused", image="reprex-does-not-exist:1")
    assert result.verdict == "infra-error"
    assert "reprex-does-not-exist:1" in result.reason
    assert "docker pull" in result.reason and "--image" in result.reason


def test_a_pin_that_does_not_exist_is_an_infra_error(boom_bundle, boom_replayed, base_image, cache_dir):
    bundle = variant(boom_bundle, requirements="six==0.0.999\n")
    result, _ = run_replay(bundle, base_image)
    assert result.verdict == "infra-error", result.reason
    assert "six==0.0.999" in result.reason


def test_gpu_without_an_nvidia_runtime_is_env_incompatible(boom_bundle, boom_replayed, base_image, docker_client):
    assert "nvidia" not in (docker_client.info().get("Runtimes") or {})
    result, lines = run_replay(boom_bundle, base_image, gpus="all")
    assert result.verdict == "env-incompatible"
    assert result.reason.startswith("GPU requested but the Docker daemon has no NVIDIA runtime")
    assert "nvidia-ctk runtime configure" in result.reason
    assert exit_code(result.verdict) == 3
    # failed before any build, and its probe container is gone
    assert not any(line.startswith("build") for line in lines), lines
    assert not docker_client.containers.list(all=True, filters={"label": "org.reprex.probe=gpu"})


def test_an_image_with_another_python_is_env_incompatible(boom_bundle, base_image, cache_dir):
    result, _ = run_replay(variant(boom_bundle, python="3.9.18"), base_image)
    assert result.verdict == "env-incompatible", result.reason
    assert "Python 3.11" in result.reason and "3.9" in result.reason


def test_other_arch_without_wheels_is_env_incompatible(boom_bundle, base_image, cache_dir, monkeypatch):
    """A daemon on another arch: pure wheels are fine, a binary-only pin is listed."""
    import reprex.replay.docker.images as images

    rpds = metadata.version("rpds-py")  # compiled (Rust): wheels for common arches only
    bundle = variant(boom_bundle, requirements=f"six==1.16.0\nrpds-py=={rpds}\n")
    monkeypatch.setattr(images, "uname_machine", lambda arch: "mips64")  # the daemon says it is a mips64
    result, _ = run_replay(bundle, base_image)
    assert result.verdict == "env-incompatible", result.reason
    assert f"rpds-py=={rpds}" in result.reason and "six" not in result.reason
    assert "mips64" in result.reason and "x86_64" in result.reason


# -- the bundle's code never runs on the host (H7) ---------------------------------------------------

REFUSED = "from the bundle: only name==version pins and https direct references are installed"


def evil_project(root: Path, name: str, marker: Path) -> Path:
    """A project whose setup.py, if anything ever runs it, writes `marker`."""
    project = root / name
    project.mkdir(parents=True)
    (project / "setup.py").write_text(textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("setup.py ran on the host")
        from setuptools import setup
        setup(name={name!r}, version="1.0", py_modules=[])
    """))
    return project


def test_a_file_url_requirement_is_refused_and_never_built_on_the_host(boom_bundle, base_image, tmp_path,
                                                                         cache_dir):
    marker = tmp_path / "marker"
    project = evil_project(tmp_path, "evilpkg", marker)
    line = f"evilpkg @ file://{project}"
    bundle = variant(boom_bundle, requirements=f"six==1.16.0\n{line}\n")
    result, lines = run_replay(bundle, base_image)
    assert result.verdict == "infra-error", (result.reason, result.logs)
    assert result.reason == f"refusing requirement line {line!r} {REFUSED}"
    assert "\n" not in result.reason
    assert not marker.exists()
    assert not any(l.startswith(("downloading", "build", "pulling")) for l in lines), lines


@pytest.mark.parametrize("line", [
    "--index-url http://x",
    "--extra-index-url=http://x/simple",
    "-e /tmp/somewhere",
    "-r /etc/passwd",
    "--find-links /tmp",
    "--trusted-host x",
    "./local/checkout",
    "/abs/path/pkg.tar.gz",
    "six",
    "six>=1.16",
    "six==1.16.0 --hash=sha256:00",
    "six @ http://example.invalid/six-1.16.0-py2.py3-none-any.whl",
    "six @ git+ssh://git@example.invalid/six.git",
    "six @ git+file:///tmp/six",
])
def test_option_lines_and_local_requirements_are_refused(boom_bundle, base_image, cache_dir, line):
    bundle = variant(boom_bundle, requirements=f"six==1.16.0\n{line}\n")
    result, lines = run_replay(bundle, base_image)
    assert result.verdict == "infra-error", (line, result.reason)
    assert result.reason == f"refusing requirement line {line!r} {REFUSED}"
    assert not any(l.startswith(("downloading", "build")) for l in lines), lines


def test_accepted_requirement_lines():
    from reprex.replay.pin_rules import check_bundle_requirement

    for line in ["six==1.16.0", "Foo_Bar[x,y]==1.0+cpu ; python_version >= '3.8'",
                 "pkg @ https://example.invalid/pkg-1.0-py3-none-any.whl",
                 "pkg @ git+https://example.invalid/pkg.git@0123abc#subdirectory=src"]:
        check_bundle_requirement(line)


def test_an_sdist_only_pin_is_env_incompatible_and_not_built(boom_bundle, boom_replayed, base_image, tmp_path,
                                                             cache_dir, monkeypatch):
    """The index has evilsdist==1.0 only as an sdist (its setup.py writes a marker): never
    built on the host; nor is a git direct reference (pip would build it too)."""
    import tarfile

    marker = tmp_path / "marker"
    project = evil_project(tmp_path / "src", "evilsdist", marker)
    (project / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: evilsdist\nVersion: 1.0\n")
    links = tmp_path / "links"
    links.mkdir()
    with tarfile.open(links / "evilsdist-1.0.tar.gz", "w:gz") as tar:
        tar.add(project, arcname="evilsdist-1.0")
    monkeypatch.setenv("PIP_FIND_LINKS", " ".join(filter(None, [os.environ.get("PIP_FIND_LINKS"), str(links)])))
    git = "gitpkg @ git+https://example.invalid/gitpkg.git@0123abc"
    bundle = variant(boom_bundle, requirements=f"six==1.16.0\nevilsdist==1.0\n{git}\n")
    result, _ = run_replay(bundle, base_image)
    assert result.verdict == "env-incompatible", (result.reason, result.logs)
    assert "evilsdist==1.0" in result.reason and git in result.reason and "six" not in result.reason
    assert "never built on the host" in result.reason and "--backend local" in result.reason
    assert "\n" not in result.reason
    assert not marker.exists()


# -- the record dir is the container's, not the host's (M3) --------------------------------------------

HOSTILE_RECORD = """
    import os
    rec = os.environ["REPREX_RECORD_DIR"]
    canary = {canary!r}
    os.unlink(os.path.join(rec, "events.jsonl"))
    os.mkfifo(os.path.join(rec, "events.jsonl"))  # a host reading it would block forever
    for name in ("fault.log", "claim"):
        path = os.path.join(rec, name)
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(canary, path)  # a host path: a host following it would read the canary
    os.symlink("/", os.path.join(rec, "root"))
    with open(os.path.join(rec, "junk"), "wb") as fh:
        fh.write(b"x" * (10 << 20))
    print("planted", sorted(os.listdir(rec)), flush=True)
"""


def test_a_hostile_record_dir_neither_hangs_the_replay_nor_reaches_the_host(boom_bundle, boom_replayed, base_image,
                                                                              docker_client, tmp_path):
    import shutil
    import threading

    canary = tmp_path / "canary.txt"
    canary.write_text("host-canary-5e1f")
    bundle = variant(boom_bundle, hostile(HOSTILE_RECORD.format(canary=str(canary))))
    box: dict = {}

    def go():
        try:
            box["result"] = run_replay(bundle, base_image, timeout=60, keep=True)
        except BaseException as exc:  # pragma: no cover - reported below
            box["error"] = exc

    worker = threading.Thread(target=go, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(120)
    try:
        assert not worker.is_alive(), "the replay hung on the record dir"
        assert "error" not in box, box.get("error")
        result, lines = box["result"]
        assert time.monotonic() - started < 60
        assert "planted" in result.logs
        # Its own record destroyed, the run is judged on what is left (no start event: the
        # recorder's events went to the unlinked file): any verdict but a hang.
        assert result.verdict in ("reproduced", "different", "infra-error"), (result.reason, result.logs)
        assert "host-canary" not in json.dumps(result.to_dict()) and "host-canary" not in result.logs
        kept = next(l for l in lines if l.startswith("kept container"))
        (container,) = docker_client.containers.list(all=True, filters={"label": f"org.reprex.bundle={bundle.id}"})
        # the record dir was the container's own tmpfs: no host directory, no volume
        assert "/reprex/record" in (container.attrs["HostConfig"].get("Tmpfs") or {})
        assert not [m for m in container.attrs["Mounts"] if m["Destination"] == "/reprex/record"]
        # the host's copy holds what came back: regular files by name, capped; here a FIFO
        # and links: nothing
        copy = Path(kept.split("record copied to ", 1)[1].split(")", 1)[0])
        assert sorted(p.name for p in copy.iterdir()) == []
        shutil.rmtree(copy)
        shutil.rmtree(kept.split("(inputs ", 1)[1].split(",", 1)[0])
    finally:
        for container in docker_client.containers.list(all=True, filters={"label": f"org.reprex.bundle={bundle.id}"}):
            container.remove(force=True, v=True)


FORGED_MARKER = """
    import sys
    fake = "\\x1e[reprex-record " + "0" * 32 + "]"
    sys.stdout.write("\\n" + fake + "\\nclaim 1\\n1end\\n")
    sys.stdout.flush()
    print("after the fake marker", flush=True)
"""


def test_a_forged_record_marker_is_just_output(boom_bundle, boom_replayed, base_image):
    """The record marker carries a per-run nonce: a program printing a marker of its own
    neither hides its output nor replaces the recorder's record."""
    result, _ = run_replay(variant(boom_bundle, hostile(FORGED_MARKER)), base_image)
    assert result.verdict == "reproduced", (result.reason, result.logs)
    assert result.signature.kind == "exception" and result.signature.types == ["RuntimeError"]
    assert "after the fake marker" in result.logs and "[reprex-record 0000" in result.logs


def test_the_record_comes_back_with_the_output(boom_replayed):
    """The plain run's record came back in the attach stream: the signature is the
    recorder's exception event, not a traceback parsed from the output, and the
    environment facts are the image's (the diff names the replay's Python)."""
    result, _ = boom_replayed
    assert result.signature.kind == "exception" and result.signature.types == ["RuntimeError"]
    assert "[reprex-record" not in result.logs and "events.jsonl" not in result.logs


# -- an exit status above 128 is not a signal when the program exited normally (M5) -------------------

EXIT_130 = """
    import sys
    print("stopping with 130", flush=True)
    sys.exit(130)
"""


def test_sys_exit_130_replays_as_an_exit_not_sigint(empty_python, tmp_path_factory, base_image, cache_dir):
    bundle = capture(empty_python, tmp_path_factory.mktemp("exit130"), EXIT_130)
    expected = bundle.manifest["expect"]["signature"]
    assert expected["kind"] == "exit", expected
    result, _ = run_replay(bundle, base_image)  # the shared image (no pins)
    assert result.verdict == "reproduced", (result.reason, result.signature, result.logs)
    assert result.signature.kind == "exit"


# -- pure pieces -----------------------------------------------------------------------------------

MARKER_NONCE = "ab12"


def _run_stream(pieces):
    from reprex.replay.docker.stream import RunStream

    rs = RunStream(MARKER_NONCE)
    for stream, data in pieces:
        rs.feed(stream, data)
    rs.finish()
    return rs


def _record(*entries: tuple[str, bytes], end: bool = True) -> bytes:
    body = b"".join(f"{name} {len(data)}\n".encode() + data for name, data in entries)
    return body + (b"end\n" if end else b"")


def test_run_stream_splits_output_and_record_wherever_the_frames_break():
    """The marker (printed by the run script) may arrive split across frames, with stderr in
    between: at every split point the output keeps its order and bytes, and the record
    after the marker is parsed whole."""
    marker = b"\n\x1e[reprex-record " + MARKER_NONCE.encode() + b"]\n"
    data = b"out-1\nout-2\n" + marker + _record(("claim", b"42"), ("events.jsonl", b'{"ev": "x"}\n'))
    for i in range(len(data)):
        for j in range(i, len(data), 3):
            rs = _run_stream([("stdout", data[:i]), ("stderr", b"E\n"), ("stdout", data[i:j]), ("stdout", data[j:])])
            out = "".join(text for stream, text in rs.tail.text() if stream == "stdout")
            assert out == "out-1\nout-2\n", (i, j, rs.tail.text())
            assert "".join(text for stream, text in rs.tail.text() if stream == "stderr") == "E\n"
            assert rs.record_files() == {"claim": b"42", "events.jsonl": b'{"ev": "x"}\n'}, (i, j)
    # two stderr frames falling inside the marker (found by review: a residue of it stayed)
    short = b"out\n" + marker + _record(("claim", b"7"))
    for i in range(1, len(short)):
        for j in range(i, len(short), 2):
            rs = _run_stream([("stdout", short[:i]), ("stderr", b"E1"), ("stdout", short[i:j]), ("stderr", b"E2"),
                              ("stdout", short[j:])])
            assert "".join(x for s, x in rs.tail.text() if s == "stdout") == "out\n", (i, j, rs.tail.text())
            assert rs.record_files() == {"claim": b"7"}, (i, j)
    # order as written
    rs = _run_stream([("stdout", b"a\n"), ("stderr", b"b\n"), ("stdout", b"c\n" + marker + b"end\n")])
    assert rs.tail.text() == [["stdout", "a\n"], ["stderr", "b\n"], ["stdout", "c\n"]]
    # no marker (the run script never got there): all of it is output
    rs = _run_stream([("stdout", b"x\n"), ("stdout", b"\n\x1e[reprex-rec")])
    assert rs.record_files() == {} and rs.tail.text() == [["stdout", "x\n\n\x1e[reprex-rec"]]
    # the output tail is bounded
    from reprex.replay.docker.stream import RunStream

    small = RunStream(MARKER_NONCE, limit=4)
    small.feed("stdout", b"0123456789")
    small.finish()
    assert small.tail.text() == [["stdout", "6789"]]


def test_run_stream_takes_only_known_capped_record_files():
    from reprex.replay.docker.layout import RECORD_FILES
    from reprex.replay.docker.stream import RunStream

    marker = b"\n\x1e[reprex-record " + MARKER_NONCE.encode() + b"]\n"
    cap = RECORD_FILES["claim"]
    cases = [
        (_record(("claim", b"7"), ("other", b"x"), ("events.jsonl", b"e")), {"claim": b"7"}),  # unknown name: stop
        (_record(("claim", b"1" * (cap + 1))), {}),  # over its cap
        (_record(("claim", b"7"), ("claim", b"8")), {"claim": b"7"}),  # a name twice
        (b"claim 5\n12", {}),  # cut short
        (b"claim -1\n", {}),
        (b"claim x\n", {}),
        (_record(("fault.log", b"Fatal"), end=False), {"fault.log": b"Fatal"}),
    ]
    for record, expected in cases:
        assert _run_stream([("stdout", marker + record)]).record_files() == expected, record
    # a record bigger than every cap together is read and dropped past the budget, not kept
    rs = RunStream(MARKER_NONCE)
    rs.feed("stdout", marker)
    for _ in range(rs.budget // (1 << 20) + 3):
        rs.feed("stdout", b"z" * (1 << 20))
    assert len(rs.record) == rs.budget


def test_driver_table():
    from reprex.replay.docker.images import driver_too_old, min_driver

    assert driver_too_old("12.1", "470.82.01")
    assert not driver_too_old("12.1", "525.60.13")
    assert not driver_too_old("12.4", "535.104.05")  # minor version compatibility
    assert driver_too_old("13.0", "575.57.08")
    assert not driver_too_old("11.8", "450.80.02")
    assert driver_too_old("10.2", "418.39")
    assert not driver_too_old(None, "470") and not driver_too_old("12.1", None)
    assert min_driver("12.8") == "525.60.13"


def test_image_choice(boom_bundle):
    from reprex.replay.docker.images import choose_image, resolve_gpus

    def gpu_bundle(opened: list[str]) -> Bundle:
        manifest = copy.deepcopy(boom_bundle.manifest)
        manifest["gpu"] = {"count": 1, "models": ["NVIDIA A10G"], "driver": "535.104.05",
                           "compute_capabilities": ["8.6"], "cuda": "12.2"}
        files = dict(boom_bundle.files)
        files["environment.json"] = json.dumps({"cuda": {"status": "ok", "value": {
            "frameworks": {"torch": {"version": "2.3.1+cu121", "cuda": "12.1"}}}}}).encode()
        files["run.json"] = json.dumps({"opened": opened}).encode()
        return Bundle(manifest=manifest, files=files)

    cpu = ReplayOptions()
    assert choose_image(boom_bundle, cpu, resolve_gpus(boom_bundle, cpu)) == "python:3.11-slim"
    assert choose_image(boom_bundle, ReplayOptions(image="mine:1"), None) == "mine:1"
    wheels_cuda = gpu_bundle(["/tmp/x/data.csv"])
    with pytest.raises(EnvIncompatible, match="only the user grants it: --gpus all"):
        resolve_gpus(wheels_cuda, cpu)  # the bundle asks; it gets no device on its own say
    assert resolve_gpus(wheels_cuda, ReplayOptions(gpus="all")) == "all"
    assert resolve_gpus(wheels_cuda, ReplayOptions(gpus="none")) is None
    assert resolve_gpus(boom_bundle, ReplayOptions(gpus="2")) == "2"
    assert choose_image(wheels_cuda, cpu, "all") == "python:3.11-slim"  # torch brings its own CUDA
    system_cuda = gpu_bundle(["/usr/local/cuda-12.1/lib64/libcudart.so.12"])
    assert choose_image(system_cuda, cpu, "all") == "nvidia/cuda:12.1.1-runtime-ubuntu22.04"
    assert choose_image(system_cuda, ReplayOptions(image="mine:1"), "all") == "mine:1"


def test_ray_bundles_get_a_larger_pids_limit(boom_bundle):
    from reprex.replay.docker import DockerBackend

    backend = DockerBackend()
    assert backend.pids_limit_for(boom_bundle) == DockerBackend.pids_limit
    files = dict(boom_bundle.files)
    files["run.json"] = json.dumps({"modules": ["json", "ray", "ray.serve"]}).encode()
    ray_bundle = Bundle(manifest=copy.deepcopy(boom_bundle.manifest), files=files)
    assert backend.pids_limit_for(ray_bundle) == DockerBackend.pids_limit_ray > DockerBackend.pids_limit


def test_daemon_endpoint_follows_the_docker_context(tmp_path, monkeypatch):
    import hashlib

    from reprex.replay.docker import daemon_endpoint

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert daemon_endpoint().host == "unix:///var/run/docker.sock"
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    meta = tmp_path / "contexts" / "meta" / hashlib.sha256(b"remote").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": "remote", "Endpoints": {
        "docker": {"Host": "unix:///run/other.sock", "SkipTLSVerify": False}}}))
    ep = daemon_endpoint()
    assert (ep.host, ep.source) == ("unix:///run/other.sock", "docker context 'remote'")
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2375")
    assert daemon_endpoint().host == "tcp://10.0.0.1:2375"


def test_sweep_removes_exited_replay_containers(docker_client, base_image):
    from reprex.replay.docker import connect, sweep

    container = docker_client.containers.create(base_image, ["true"], labels={"org.reprex": "1",
                                                                               "org.reprex.bundle": "sweep-test"})
    BUNDLE_IDS.add("sweep-test")
    try:
        engine = connect()
        # only this test's container: age 0 would also take what replays beside us (xdist) just made
        own = ["org.reprex.bundle=sweep-test"]
        sweep(engine, min_age_s=3600, labels=own)  # too young: left alone
        assert docker_client.containers.list(all=True, filters={"label": "org.reprex.bundle=sweep-test"})
        assert sweep(engine, min_age_s=0, labels=own) == 1
        assert not docker_client.containers.list(all=True, filters={"label": "org.reprex.bundle=sweep-test"})
    finally:
        try:
            container.remove(force=True)
        except Exception:
            pass


def test_cleanup_removes_the_named_bundles_stopped_containers_whatever_their_age(docker_client, base_image):
    """The seam the pytest plugin ends a session with: its own bundles' stopped containers go at
    once; a kept one, a running one and another bundle's young one stay."""
    from reprex.replay.docker import cleanup, connect

    def make(bundle: str, keep: bool = False, cmd=("true",)):
        labels = {"org.reprex": "1", "org.reprex.bundle": bundle, **({"org.reprex.keep": "1"} if keep else {})}
        BUNDLE_IDS.add(bundle)
        return docker_client.containers.create(base_image, list(cmd), labels=labels)

    ours, kept, running, other = (make("cleanup-ours"), make("cleanup-ours", keep=True),
                                  make("cleanup-ours", cmd=("sleep", "60")), make("cleanup-other"))
    running.start()
    try:
        # a sweep age no container of this test reaches: only the named bundle's go, at age 0
        assert cleanup(connect(), bundles={"cleanup-ours"}, min_age_s=3600) >= 1
        left = {c.id for c in docker_client.containers.list(all=True, filters={"label": "org.reprex=1"})}
        assert ours.id not in left
        assert {kept.id, running.id, other.id} <= left
    finally:
        for c in (ours, kept, running, other):
            try:
                c.remove(force=True)
            except Exception:
                pass


def test_the_scripts_run_inside_use_the_layout_the_host_mounts():
    """The run and dump scripts are shell files (reprex/templates/); the paths they name are the
    ones the backend mounts and the image lays out, and the record list they get covers every
    file the host parses, with its cap."""
    from reprex.replay.docker import layout

    run, dump = layout.run_script(), layout.dump_script()
    assert f"cp -R {layout.IN_DIR}/. {layout.WORK_DIR}/ && cd {layout.WORK_DIR}" in run
    assert f"c={layout.RECORD_DIR}/claim" in dump and f"{layout.RECORD_DIR}/fault.log" in dump
    words = layout.record_emit().split()
    assert [w.split(":")[0] for w in words] == list(layout.RECORD_FILES)
    assert all(w.rsplit(":", 1)[1] == str(layout.RECORD_FILES[w.split(":")[0]]) for w in words)
    for script in (run, dump):
        assert subprocess.run(["sh", "-n", "-c", script], capture_output=True).returncode == 0


@pytest.mark.docker
def test_src_layout_replays_in_docker(tmp_path, docker_client, base_image, monkeypatch):
    from reprex.capture.pipeline import CaptureOptions, capture_command
    from reprex.replay import ReplayOptions, replay

    (tmp_path / "src" / "mylib").mkdir(parents=True)
    (tmp_path / "src" / "mylib" / "__init__.py").write_text("def load(p):\n    return open(p).read().split(',')[5]\n")
    (tmp_path / "data.csv").write_text("a,b\n")
    (tmp_path / "run.py").write_text("import sys, mylib\nprint(mylib.load(sys.argv[1]))\n")
    monkeypatch.setenv("PYTHONPATH", "src")
    bundle = capture_command([sys.executable, "run.py", str(tmp_path / "data.csv")], CaptureOptions(tee=False),
                             cwd=str(tmp_path)).bundle
    monkeypatch.delenv("PYTHONPATH")
    result = replay(bundle, ReplayOptions(backend="docker", image=base_image))
    assert result.verdict == "reproduced", result.reason + result.logs


# -- the Engine API client ---------------------------------------------------------------------------

def test_engine_answers_and_errors_are_clear(docker_client, base_image, monkeypatch):
    """reprex's socket client against the real daemon: the calls a replay makes, and how
    the daemon's errors come back (404 as not found, messages kept, one line)."""
    from reprex.replay.docker import connect
    from reprex.replay.docker.engine import Engine, EngineError

    engine = connect()
    assert tuple(int(x) for x in engine.api.split(".")) >= (1, 40)
    assert engine.image(base_image)["Id"] == docker_client.images.get(base_image).id
    assert engine.image("reprex-does-not-exist:1") is None
    with pytest.raises(EngineError) as info:
        engine.create({"Image": "reprex-does-not-exist:1", "Cmd": ["true"]})
    assert info.value.not_found and "reprex-does-not-exist" in str(info.value) and "\n" not in str(info.value)
    cid = engine.create({"Image": base_image, "Cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"],
                         "Labels": {"org.reprex": "1", "org.reprex.bundle": "engine-test"}})
    BUNDLE_IDS.add("engine-test")
    try:
        stream = engine.attach(cid, timeout=30)
        engine.start(cid)
        frames = list(stream.frames())
        stream.close()
        assert sorted(frames) == [("stderr", b"err\n"), ("stdout", b"out\n")]
        assert engine.wait(cid, timeout=30) == 3
        with pytest.raises(EngineError) as info:  # exec in a stopped container: a 409 with its reason
            engine.exec_run(cid, ["true"])
        assert info.value.status == 409 and "not running" in str(info.value)
    finally:
        engine.remove(cid)
    assert engine.image(base_image) is not None
    with pytest.raises(EngineError, match="ssh:// Docker hosts are not supported"):
        Engine("ssh://user@host")
    monkeypatch.setenv("DOCKER_HOST", "ssh://user@host")  # said as what it is, not as a daemon that is down
    with pytest.raises(InfraError) as info:
        connect()
    assert info.value.reason.startswith("the Docker host ssh://user@host (DOCKER_HOST) can't be used: ssh://")
    assert "start dockerd" not in info.value.reason


def test_env_reaches_the_container_and_is_scrubbed(boom_bundle, boom_replayed, base_image):
    code = """
        import json, os
        print("TOKEN " + json.dumps(os.environ.get("SERVICE_TOKEN")), flush=True)
    """
    secret = "tok-docker-5b8e1a"
    result, _ = run_replay(variant(boom_bundle, hostile(code)), base_image, pass_env={"SERVICE_TOKEN": secret})
    assert result.verdict == "reproduced", (result.reason, result.logs)
    assert last_json_line(result.logs, "TOKEN ") == "<--env SERVICE_TOKEN>"
    assert secret not in result.logs and secret not in json.dumps(result.to_dict())


def test_inputs_are_copied_in_when_the_daemon_may_not_share_our_files(boom_bundle, boom_replayed, base_image,
                                                                     docker_client, monkeypatch):
    """A daemon over tcp (docker:dind in CI) can't see a host dir: the work files go in through
    the archive API, into a volume, root-owned; the replay is the same."""
    from reprex.replay.docker.inputs import inputs_mode
    from reprex.replay.docker.engine import Engine

    assert inputs_mode(Engine("unix:///var/run/docker.sock")) == "bind"
    assert inputs_mode(Engine("tcp://docker:2376")) == "copy"
    monkeypatch.setenv("REPREX_DOCKER_INPUTS", "copy")
    assert inputs_mode(Engine("unix:///var/run/docker.sock")) == "copy"
    code = """
        import os
        print("WRITABLE", os.access("/reprex/in/app.py", os.W_OK), sorted(os.listdir("/reprex/in")), flush=True)
    """
    bundle = variant(boom_bundle, hostile(code))
    try:
        result, lines = run_replay(bundle, base_image, keep=True)
        assert result.verdict == "reproduced", (result.reason, result.logs)
        assert "WRITABLE False ['app.py']" in result.logs
        (container,) = docker_client.containers.list(all=True, filters={"label": f"org.reprex.bundle={bundle.id}"})
        (inputs,) = [m for m in container.attrs["Mounts"] if m["Destination"] == "/reprex/in"]
        assert inputs["Type"] == "volume"
        kept = next(line for line in lines if "inputs copied into it" in line)
        shutil.rmtree(kept.split("record copied to ", 1)[1].split(")", 1)[0])
    finally:
        for container in docker_client.containers.list(all=True, filters={"label": f"org.reprex.bundle={bundle.id}"}):
            container.remove(force=True, v=True)
    monkeypatch.setenv("REPREX_DOCKER_INPUTS", "sideways")
    result, _ = run_replay(bundle, base_image)
    assert result.verdict == "infra-error" and "REPREX_DOCKER_INPUTS='sideways'" in result.reason


def test_env_denies_a_network_the_bundle_asks_for(boom_bundle, boom_replayed, base_image):
    bundle = variant(boom_bundle, hostile("import socket\nprint('NET', socket.gethostname(), flush=True)\n"))
    bundle = Bundle(manifest={**bundle.manifest, "network": True}, files=bundle.files).finalize()
    result, lines = run_replay(bundle, base_image, pass_env={"SERVICE_TOKEN": "tok-net-0a9b8c"})
    assert result.verdict == "reproduced", (result.reason, result.logs)
    assert any("asked for a network; it ran without one" in line for line in lines), lines
    assert "--network bridge" in result.reason


STOP_THE_DUMP = """
    import os, signal, time
    if os.fork() == 0:  # a watcher: freeze whatever reprex execs into the container to dump stacks
        while True:
            for pid in os.listdir("/proc"):
                try:
                    if pid.isdigit() and b"reprex/record/claim" in open(f"/proc/{pid}/cmdline", "rb").read():
                        os.kill(int(pid), signal.SIGSTOP)
                except OSError:
                    pass
            time.sleep(0.02)
    print("hanging", flush=True)
    while True:
        time.sleep(3600)
"""


def test_a_program_that_freezes_the_stack_dump_cannot_hang_the_replay(boom_bundle, boom_replayed, base_image,
                                                                       docker_client):
    import threading

    bundle = variant(boom_bundle, STOP_THE_DUMP)
    box: dict = {}
    worker = threading.Thread(target=lambda: box.setdefault("r", run_replay(bundle, base_image, timeout=3)),
                              daemon=True)
    worker.start()
    worker.join(120)  # timeout 3 s + the dump's own 10 s bound + a kill: far less than this
    assert not worker.is_alive(), "the replay hung on a frozen stack dump"
    result, _ = box["r"]
    assert result.verdict in ("different", "infra-error"), (result.verdict, result.reason)
    assert "hanging" in result.logs
    assert not docker_client.containers.list(all=True, filters={"label": f"org.reprex.bundle={bundle.id}"})


NONBLOCKING_STDOUT = """
    import fcntl, os, sys
    for i in range(60000):  # a record of a few MiB: its write-out meets a full pipe now and then
        try:
            open(f"/tmp/missing-{i:06d}-" + "x" * 40)
        except OSError:
            pass
    flags = fcntl.fcntl(1, fcntl.F_GETFL)
    fcntl.fcntl(1, fcntl.F_SETFL, flags | os.O_NONBLOCK)  # and left so, as asyncio's write pipes do
    print("nonblocking", flush=True)
"""


def test_a_program_leaving_stdout_non_blocking_still_returns_its_record(boom_bundle, boom_replayed, base_image):
    result, _ = run_replay(variant(boom_bundle, hostile(NONBLOCKING_STDOUT)), base_image, timeout=120)
    assert result.verdict == "reproduced", (result.verdict, result.reason, result.logs[-400:])
    assert result.signature.kind == "exception"
