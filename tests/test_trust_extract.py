"""`reprex extract` on a stranger's bundle: nothing of it runs on this machine.

Candidates are written from the bundle's data alone (names checked, values as literals,
pickles left for the script to load) and judged in a container; the local backend only
with the user's say-so. Every hostile bundle here is derived from a real captured one:
a failure inside an installed-looking package (a real directory on PYTHONPATH, like
site-packages) whose frame extract picks first. Each payload tries to leave a marker
file on the host at a path the test chose, and to reach a listener the test starts on
the Docker bridge gateway; the tests assert neither happens without a grant.
"""

from __future__ import annotations

import ast
import base64
import copy
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from reprex.bundle import Bundle
from reprex.capture.pipeline import CaptureOptions, capture_command
from reprex.extract import ExtractError, build_script, extract
from reprex.extract_oracle import candidate_bundle

PY = sys.executable

PARSE = '''\
import json


def load(text, strict=True):
    return json.loads(text)
'''


@pytest.fixture(scope="module")
def seed(tmp_path_factory, cache) -> Bundle:
    """A real bundle: app.py calls fw.parse.load('{'), which fails inside json."""
    root = tmp_path_factory.mktemp("seed")
    site = root / "site" / "site-packages"
    (site / "fw").mkdir(parents=True)
    (site / "fw" / "__init__.py").write_text("")
    (site / "fw" / "parse.py").write_text(PARSE)
    work = root / "work"
    work.mkdir()
    (work / "app.py").write_text("import fw.parse\n\nfw.parse.load('{')\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(site))
        result = capture_command([PY, "app.py"], CaptureOptions(tee=False), cwd=str(work), write=False)
    assert result.bundle is not None
    assert result.bundle.manifest["expect"]["signature"]["types"] == ["json.decoder.JSONDecodeError"]
    return result.bundle


def _frames(run: dict) -> list[dict]:
    return run["exception"]["frames"]


def derive(seed: Bundle, *, edit_run=None, files: dict[str, bytes] | None = None, edit_manifest=None) -> Bundle:
    """A finalized variant (content and id agree): what a careful attacker would send."""
    manifest = copy.deepcopy(seed.manifest)
    if edit_manifest:
        edit_manifest(manifest)
    entries = dict(seed.files)
    if edit_run:
        run = json.loads(entries["run.json"])
        edit_run(run)
        entries["run.json"] = json.dumps(run).encode()
    entries.update(files or {})
    return Bundle(manifest, entries).finalize()


def load_frame(run: dict) -> dict:
    return next(f for f in _frames(run) if f.get("qualname") == "load")


class Reduce:
    """Pickled on this side only; loading it calls os.system(command)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def pickle_variant(seed: Bundle, marker: Path) -> Bundle:
    """load()'s argument as a pickle whose loading runs `touch MARKER` (no repr to fall back on)."""
    blob = base64.b64encode(pickle.dumps(Reduce(f"touch {marker}"))).decode()

    def edit(run):
        load_frame(run)["arg_values"]["text"] = {"type": "evil.Obj", "pickle": blob}
    return derive(seed, edit_run=edit)


EVIL_TYPE = "\x1b]0;pwned\x07Evil\x1b[2J"
HANG = "def boom(x):\n    while True:\n        pass\n"


def module_variant(seed: Bundle, marker: Path, target: tuple[str, int] | None, body: str | None = None) -> Bundle:
    """A frame naming module `evilmod` as an installed package; the bundle ships
    files/evilmod.py, whose import writes MARKER and connects to `target`."""
    payload = textwrap.dedent(f"""\
        import socket
        try:
            open({str(marker)!r}, "w").write("pwned")
        except OSError:
            pass
        try:
            socket.create_connection({target!r}, timeout=2).sendall(b"evilmod\\n")
        except (OSError, TypeError):
            pass
        """)
    body = body or f"def boom(x):\n    raise type({EVIL_TYPE!r}, (Exception,), {{}})('\\x1b[31m' + str(x))\n"
    frame = {"kind": "package", "module": "evilmod", "qualname": "boom", "function": "boom", "loc": "evilmod.py",
             "file": "/nonexistent/site-packages/evilmod.py", "line": 1, "source": "x", "args": ["x"],
             "argspec": {"positional": 1, "varargs": None, "varkw": None},
             "arg_values": {"x": {"type": "builtins.int", "repr": "1"}}}

    def edit(run):
        _frames(run).append(frame)

    def ask_network(m):
        m["network"] = True  # it asks; only the user grants
    return derive(seed, edit_run=edit, files={"files/evilmod.py": (payload + body).encode()},
                  edit_manifest=ask_network)


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Temp files of in-process calls land here, so the test can see that none are left."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


@pytest.fixture
def candidates(monkeypatch):
    """The ids of the candidate bundles the oracle ran (their containers carry the id)."""
    import reprex.extract_oracle as oracle

    ids: list[str] = []
    real = oracle.candidate_bundle

    def recording(bundle, script):
        made = real(bundle, script)
        ids.append(made.id)
        return made
    monkeypatch.setattr(oracle, "candidate_bundle", recording)
    return ids


@pytest.fixture
def listener(docker_client):
    """A TCP listener on the Docker bridge gateway: where a container with a network reaches the host."""
    import ipaddress

    configs = (docker_client.networks.get("bridge").attrs.get("IPAM") or {}).get("Config") or []
    config = next(c for c in configs if c.get("Gateway") or c.get("Subnet"))
    gateway = config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))
    sock = socket.socket()
    sock.bind((gateway, 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def reached(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return out
        conn.settimeout(2)
        with conn:
            try:
                out.append(conn.recv(100))
            except OSError:
                out.append(b"")


def no_containers_left(docker_client, ids: list[str]) -> None:
    assert ids, "no candidate was run"
    for bundle_id in ids:
        left = docker_client.containers.list(all=True, filters={"label": f"org.reprex.bundle={bundle_id}"})
        assert not left, f"candidate containers left: {[c.name for c in left]}"


def cli(*args: str, env: dict | None = None):
    return subprocess.run([PY, "-m", "reprex", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


# -- docker: payloads run only in the sandbox -------------------------------------------------

@pytest.mark.docker
def test_a_reduce_pickle_is_loaded_only_in_the_container(seed, base_image, tmp_path, private_tmp, candidates,
                                                         docker_client):
    marker = tmp_path / "pwned-pickle"
    bundle = pickle_variant(seed, marker)
    report = extract(bundle, backend="docker", image=base_image)
    assert not marker.exists()  # the host never unpickled it
    # it was unpickled in the container: os.system's status (an int) reached load()
    assert report.kept == "original", report.message
    assert report.attempts[0]["function"] == "fw.parse.load"
    assert report.attempts[0]["result"] == "different failure: TypeError", report.attempts
    assert report.backend == "docker"
    assert list(private_tmp.iterdir()) == []
    no_containers_left(docker_client, candidates)


@pytest.mark.docker
def test_a_bundled_module_is_imported_only_in_the_container_without_a_network(seed, base_image, tmp_path,
                                                                             listener):
    marker = tmp_path / "pwned-module"
    path = module_variant(seed, marker, listener.getsockname()).write(tmp_path / "evil.reprex.zip")
    before = path.read_bytes()
    proc = cli("extract", str(path), "--image", base_image, env={"TMPDIR": str(tmp_path)})
    assert proc.returncode == 1, proc.stderr
    assert not marker.exists()
    assert reached(listener) == []  # the bundle asked for a network and got none
    assert "Traceback" not in proc.stderr
    # the module ran in the container: its exception came back, as escaped text
    assert "evilmod.boom: different failure: evilmod.\\x1b]0;pwned\\x07Evil\\x1b[2J" in proc.stderr, proc.stderr
    for seq in ("\x1b", "\x07"):
        assert seq not in proc.stdout + proc.stderr
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("reprex-")] == []


@pytest.mark.docker
def test_a_network_only_when_the_user_grants_it(seed, base_image, tmp_path, listener, candidates, docker_client):
    """The control for the test above: with --network bridge the same payload does reach the
    listener (so its silence there means something), and still writes nothing on the host."""
    marker = tmp_path / "pwned-granted"
    bundle = module_variant(seed, marker, listener.getsockname())
    report = extract(bundle, backend="docker", image=base_image, network="bridge")
    assert report.kept == "original"
    assert reached(listener) == [b"evilmod\n"]
    assert not marker.exists()
    no_containers_left(docker_client, candidates)


@pytest.mark.docker
def test_a_candidate_that_hangs_is_stopped_at_the_timeout(seed, base_image, tmp_path, private_tmp, candidates,
                                                          docker_client):
    bundle = module_variant(seed, tmp_path / "pwned-hang", None, body=HANG)
    report = extract(bundle, backend="docker", image=base_image, timeout=2)
    assert report.kept == "original"
    assert report.attempts[0]["result"] == "different failure: timeout", report.attempts
    assert list(private_tmp.iterdir()) == []
    no_containers_left(docker_client, candidates)


@pytest.mark.docker
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_judging_removes_the_candidate_container(seed, base_image, tmp_path, docker_client, sig):
    bundle = module_variant(seed, tmp_path / "pwned-signal", None, body=HANG)
    path = bundle.write(tmp_path / "hang.reprex.zip")
    script, _ = build_script(bundle, _frames(bundle.json("run.json"))[-1])
    label = f"org.reprex.bundle={candidate_bundle(bundle, script).id}"  # the first candidate's container
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([PY, "-m", "reprex", "extract", str(path), "--image", base_image, "--timeout", "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp)})
    try:
        for _ in range(600):  # until the candidate runs (or the command ended early: then the asserts say why)
            if proc.poll() is not None or docker_client.containers.list(filters={"label": label}):
                break
            time.sleep(0.1)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    assert "the extraction was stopped and cleaned up" in err and "Traceback" not in err, err
    assert docker_client.containers.list(all=True, filters={"label": label}) == []
    assert list(tmp.iterdir()) == []


@pytest.mark.docker
def test_judging_reuses_the_environment_image_of_the_bundles_replay(seed, base_image):
    from reprex.replay import ReplayOptions, replay

    result = replay(seed, ReplayOptions(backend="docker", image=base_image))
    assert result.verdict == "different" and result.image  # fw is no pin; the extracted call won't need it
    said: list[str] = []
    report = extract(seed, backend="docker", image=base_image, progress=said.append)
    assert report.kept == "extracted", report.message
    assert f"reusing image {result.image}" in said, said


@pytest.mark.docker
def test_the_real_failure_is_still_extracted_in_place_through_docker(seed, base_image, tmp_path):
    path = seed.write(tmp_path / "seed.reprex.zip")
    proc = cli("extract", str(path), "--image", base_image, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["kept"] == "extracted" and out["backend"] == "docker" and out["written"] == str(path)
    bundle = Bundle.read(path)
    assert bundle.manifest["extracted"] == {"function": "fw.parse.load", "how": "inlined"}
    script = bundle.text("repro.py")
    assert "def load(text, strict=True)" in script and "load('{', True)" in script
    from reprex.replay import ReplayOptions, replay

    assert replay(bundle, ReplayOptions(backend="docker", image=base_image)).verdict == "reproduced"


# -- without a sandbox: refused, unless the user vouches for the bundle ------------------------

def test_no_daemon_and_no_local_grant_is_a_one_line_error(seed, tmp_path):
    marker = tmp_path / "pwned-nodaemon"
    path = pickle_variant(seed, marker).write(tmp_path / "evil.reprex.zip")
    proc = cli("extract", str(path), env={"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"})
    assert proc.returncode == 3, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("reprex: error: no Docker daemon to judge the candidates in") and "--backend local" in err
    assert not marker.exists()


def test_local_backend_is_documented_as_running_the_bundle_here():
    proc = cli("extract", "--help")
    assert "RUNS THE BUNDLE'S CODE ON THIS MACHINE" in " ".join(proc.stdout.split())


# -- the script is written from data: nothing of the bundle becomes code ---------------------

PAYLOAD = "__import__('os').system('touch /tmp/PWNED')"


def frame_of(bundle: Bundle) -> dict:
    return load_frame(bundle.json("run.json"))


def assert_no_injected_code(script: str) -> None:
    tree = ast.parse(script)  # still valid Python
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            assert name not in ("system", "__import__", "exec", "eval"), ast.unparse(node)


@pytest.mark.parametrize("field, value", [
    ("module", f"fw.parse import load\n{PAYLOAD}\nfrom fw.parse"),
    ("qualname", f"load(1)\n{PAYLOAD}\nload"),
    ("args", ["text", f"x=1); {PAYLOAD}; ("]),
    ("argspec", {"positional": "1); " + PAYLOAD}),
])
def test_names_that_carry_code_are_refused_or_inert(seed, field, value):
    frame = frame_of(seed)
    frame[field] = value
    if field == "args":
        frame["arg_values"][value[1]] = {"repr": "1"}
    try:
        script, _ = build_script(seed, frame)
    except ExtractError as exc:
        assert "is not a Python" in str(exc)
        return
    assert_no_injected_code(script)


@pytest.mark.parametrize("item", [
    {"repr": f"'{{'  # a comment would swallow the closing paren\n{PAYLOAD}"},
    {"repr": PAYLOAD},
    {"pickle": f"AAAA'); {PAYLOAD}; ('"},
    {"repr": "<redacted:token>", "pickle": "not base64!"},
])
def test_argument_values_that_carry_code_are_refused(seed, item):
    frame = frame_of(seed)
    frame["arg_values"]["text"] = item
    with pytest.raises(ExtractError, match="can't be rebuilt|not base64"):
        build_script(seed, frame)


def test_a_literal_is_rewritten_from_its_value(seed):
    frame = frame_of(seed)
    frame["arg_values"]["text"] = {"repr": "'{'  # trailing"}
    script, _ = build_script(seed, frame)
    assert script.rstrip().endswith("load('{', True)")


def test_text_that_lands_in_the_docstring_and_comments_stays_text(seed):
    frame = frame_of(seed)
    frame["loc"] = f'parse.py"""\n{PAYLOAD}\n"""\x1b]0;x\x07'
    bundle = Bundle(copy.deepcopy(seed.manifest), dict(seed.files))
    bundle.manifest["name"] = f'x"""\n{PAYLOAD}\n"""'  # in memory: the schema would refuse it on read
    script, how = build_script(bundle, frame)
    assert how == "inlined"
    assert_no_injected_code(script)
    assert "\x1b" not in script and "\x07" not in script


# -- source files: the bundle's own, or this machine's only when they are what ran ---------------

def test_a_host_file_named_by_the_bundle_is_not_read_into_the_script(seed, tmp_path):
    private = tmp_path / "private.py"
    private.write_text("def load(text, strict=True):\n    return 'TOP-SECRET-VALUE'\n")
    frame = frame_of(seed)
    frame.update(file=str(private), line=2, source="return json.loads(text)")  # not what that file holds
    script, how = build_script(seed, frame)
    assert how == "imported" and "TOP-SECRET-VALUE" not in script
    assert "from fw.parse import load" in script
    # no recorded line at all: not read either
    frame.pop("source")
    assert "TOP-SECRET-VALUE" not in build_script(seed, frame)[0]
    # a FIFO at that path neither blocks nor is read
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)
    frame.update(file=str(fifo), source="return 'TOP-SECRET-VALUE'")
    assert build_script(seed, frame)[1] == "imported"
    # the control: the file whose recorded line matches is what ran, and is inlined
    frame.update(file=str(private), line=2, source="return 'TOP-SECRET-VALUE'")
    script, how = build_script(seed, frame)
    assert how == "inlined" and "TOP-SECRET-VALUE" in script


def test_an_app_frame_is_inlined_from_the_bundles_own_copy(seed):
    cwd = seed.manifest["entry"]["cwd"]
    frame = {"kind": "app", "module": "helpers", "qualname": "parse", "function": "parse", "loc": "helpers.py",
             "file": f"{cwd}/helpers.py", "line": 2, "args": ["s"], "argspec": {"positional": 1},
             "arg_values": {"s": {"repr": "'{'"}}}
    bundle = derive(seed, files={"files/helpers.py": b"def parse(s):\n    return 'FROM-THE-BUNDLE'\n"})
    script, how = build_script(bundle, frame)
    assert how == "inlined" and "FROM-THE-BUNDLE" in script
    assert not Path(f"{cwd}/helpers.py").exists()


def test_sys_path_entries_stay_inside_the_work_dir(seed):
    cwd = seed.manifest["entry"]["cwd"]
    env = seed.json("environment.json")
    env["python"]["value"]["sys_path"] = [cwd, f"{cwd}/lib", f"{cwd}/../../etc", "/usr/lib/python3", 7, None]
    bundle = derive(seed, files={"environment.json": json.dumps(env).encode()})
    script, _ = build_script(bundle, frame_of(bundle))
    assert "for p in ['.', 'lib']]" in script
