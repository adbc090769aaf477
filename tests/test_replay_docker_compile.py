"""Env images byte-compile only the installed modules the captured run imported (issue 13), in
the one step that makes the image (a container committed: no layers of wheels, no metadata steps).

A real capture of a program that imports one lexer of pygments (hundreds of modules), replayed
in docker: the image holds .pyc for what the run imported and not for the rest; a module the
list missed still imports on the read-only root. The list is a stranger's data: crafted names
never reach the build, an oversized list is ignored, and the in-image script checks it again.
The build context is streamed: byte for byte the tar that tarfile writes.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import textwrap
import time
import uuid
from importlib import metadata
from pathlib import Path

import pytest

from reprex.bundle import Bundle
from reprex.capture.pipeline import CaptureOptions, capture_command
from reprex.replay import ReplayOptions, replay
from reprex.replay.base import InfraError
from reprex.replay.docker.build import add_bytes, add_file
from reprex.replay.docker.compile_list import EVERYTHING, MAX_NAMES, compile_list
from reprex.replay.docker.context import TarStream
from reprex.templates import template_text

pytestmark = pytest.mark.docker

PYGMENTS = f"pygments=={metadata.version('pygments')}"  # the test env's: in the pip cache
LEXER = """
    import sys
    from pygments.lexers.python import PythonLexer

    def main():
        tokens = list(PythonLexer().get_tokens("x = 1"))
        raise LookupError(f"no style for {len(tokens)} tokens")
    main()
"""
# a lexer the captured run never imported: no .pyc in the image, still importable
OTHER_LEXER = """
    import os, sys
    import pygments.lexers.haskell as haskell

    cache = os.path.join(os.path.dirname(haskell.__file__), "__pycache__")
    compiled = any(n.startswith("haskell.") for n in os.listdir(cache)) if os.path.isdir(cache) else False
    # one write (print writes each argument apart, and stderr's traceback may land between them)
    sys.stdout.write(f"dont_write_bytecode {sys.dont_write_bytecode} haskell_pyc {compiled}\\n")
    sys.stdout.flush()

    def main():
        raise LookupError("no style for 3 tokens")
    main()
"""
SITE = "/opt/reprex/venv/lib/python3.11/site-packages"


def capture(python: Path, workdir: Path, script: str) -> Bundle:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "app.py").write_text(textwrap.dedent(script))
    result = capture_command([str(python), "app.py"], CaptureOptions(tee=False, timeout=120), cwd=str(workdir))
    assert result.bundle is not None, result.message
    return result.bundle


def with_run(bundle: Bundle, *, script: str | None = None, **run_changes) -> Bundle:
    """The bundle with its script or run.json's keys replaced (None removes a key)."""
    files = dict(bundle.files)
    if script is not None:
        files["files/app.py"] = textwrap.dedent(script).encode()
    run = json.loads(files["run.json"])
    for key, value in run_changes.items():
        if value is None:
            run.pop(key, None)
        else:
            run[key] = value
    files["run.json"] = json.dumps(run).encode()
    return Bundle(manifest=dict(bundle.manifest), files=files).finalize()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("reprex-cache-compile")
    mp.setenv("REPREX_CACHE_DIR", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def fresh_base(docker_client, base_image):
    """Aliases of the base image, one per build the test wants: the alias is in the Dockerfile
    (FROM, labels), so in the env image's key, and each build is a cold one that no earlier
    session's image stands in for. Aliases and the images built on them are removed after."""
    made: list[str] = []

    def alias() -> str:
        name = f"reprex-test-compile:{uuid.uuid4().hex[:12]}"
        docker_client.images.get(base_image).tag(name)
        made.append(name)
        return name

    yield alias
    for name in made:
        for image in docker_client.images.list(filters={"label": f"org.reprex.base={name}"}):
            subprocess.run(["docker", "rmi", "-f", image.id], capture_output=True, timeout=120)
        subprocess.run(["docker", "rmi", name], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def lexer_bundle(tmp_path_factory) -> Bundle:
    venv = tmp_path_factory.mktemp("venv-pygments") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(venv / "bin" / "python"),
                    "install", "-q", "--no-deps", PYGMENTS], check=True, timeout=300)
    bundle = capture(venv / "bin" / "python", tmp_path_factory.mktemp("lexer"), LEXER)
    assert bundle.manifest["expect"]["signature"]["types"] == ["LookupError"]
    return bundle


def run_replay(bundle: Bundle, image: str, **kw):
    lines: list[str] = []
    result = replay(bundle, ReplayOptions(backend="docker", image=image, timeout=120, **kw), progress=lines.append)
    return result, lines


def image_pycs(docker_client, image: str) -> set[str]:
    """The image's bytecode under site-packages, as source paths relative to it."""
    out = docker_client.containers.run(image, ["sh", "-c", f"cd {SITE} && find . -name '*.pyc'"], remove=True,
                                       network_disabled=True).decode()
    found = set()
    for line in out.split():
        folder, _, name = line[2:].rpartition("/__pycache__/")
        found.add(f"{folder}/{name.split('.')[0]}.py")
    return found


def test_the_image_compiles_what_the_run_imported_and_nothing_else(lexer_bundle, fresh_base, docker_client,
                                                                  cache_dir):
    listed = json.loads(lexer_bundle.text("run.json"))["package_modules"]
    assert "pygments.lexers.python" in listed and "pygments.lexers.haskell" not in listed

    base = fresh_base()
    result, lines = run_replay(lexer_bundle, base)
    assert result.verdict == "reproduced", (result.reason, result.logs)
    assert any("building" in line for line in lines), lines
    pycs = image_pycs(docker_client, result.image)
    # the imported modules and their packages' __init__ ...
    for path in ("pygments/__init__.py", "pygments/lexers/__init__.py", "pygments/lexers/python.py",
                 "pygments/lexer.py", "pygments/token.py"):
        assert path in pycs, sorted(pycs)
    # ... and nothing of the hundreds of modules the run never imported
    assert "pygments/lexers/haskell.py" not in pycs
    assert "pygments/formatters/html.py" not in pycs
    assert len([p for p in pycs if p.startswith("pygments/")]) == len([m for m in listed if m.startswith("pygments")])

    # a module the list missed imports from source on the read-only root; nothing is written
    other, _ = run_replay(with_run(lexer_bundle, script=OTHER_LEXER), base)
    assert other.verdict == "reproduced", (other.reason, other.logs)
    assert other.image == result.image  # same pins, same image: the list is not part of its key
    assert "dont_write_bytecode True haskell_pyc False" in other.logs, other.logs


def test_an_older_bundle_compiles_the_packages_it_imported_whole(lexer_bundle, fresh_base, docker_client, cache_dir):
    old = with_run(lexer_bundle, package_modules=None)
    assert compile_list(old)[0].startswith("packages\n")
    result, _ = run_replay(old, fresh_base())
    assert result.verdict == "reproduced", (result.reason, result.logs)
    pycs = image_pycs(docker_client, result.image)
    assert {"pygments/lexers/haskell.py", "pygments/formatters/html.py"} <= pycs
    assert not [p for p in pycs if "/tests/" in p or "/test/" in p]


@pytest.mark.parametrize("inputs", ["bind", "copy"])
def test_the_env_image_is_one_layer_over_its_base_and_keeps_its_config(lexer_bundle, docker_client, base_image,
                                                                        cache_dir, inputs, monkeypatch):
    """The build container runs as root whatever the base's user, and is committed as the image:
    one layer over the base, none of the build's inputs (wheels, uv, the archive) in it, the
    base's environment, command and labels kept, the run's uid as its user. The inputs reach
    it as a read-only bind mount (a daemon that shares our files) or through the archive API."""
    monkeypatch.setenv("REPREX_DOCKER_INPUTS", inputs)
    name = f"reprex-test-compile:nonroot-{uuid.uuid4().hex[:12]}"
    dockerfile = (f"FROM {base_image}\nUSER nobody\nENV FROM_BASE=kept\nLABEL test.base.label=kept\n"
                  'CMD ["python3", "-V"]\n')
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=name, rm=True)
    try:
        result, lines = run_replay(lexer_bundle, name)
        assert result.verdict == "reproduced", (result.reason, result.logs)
        assert any(line.startswith("building") for line in lines), lines
        image, base = docker_client.images.get(result.image), docker_client.images.get(name)
        config = image.attrs["Config"]
        assert config["User"] == "10001:10001"
        assert "FROM_BASE=kept" in config["Env"] and config["Cmd"] == ["python3", "-V"]
        assert not config.get("Entrypoint")
        assert config["Labels"]["test.base.label"] == "kept" and config["Labels"]["org.reprex.base"] == name
        assert len(image.history()) == len(base.history()) + 1
        probe = ("id -u; ls /tmp/reprex /opt/reprex/bin 2>&1 | grep -c 'No such file';"
                 f" ls {SITE} | grep -c '[.]whl$'; ls /opt/reprex")
        out = docker_client.containers.run(result.image, ["sh", "-c", probe], entrypoint=[], remove=True,
                                           network_disabled=True).decode().split()
        assert out[:3] == ["10001", "2", "0"], out
        assert sorted(out[3:]) == ["build", "facts.json", "inject", "venv"], out
        # no build container is left behind (the daemon removes it while the replay goes on)
        key = result.image.rpartition(":")[2]
        for _ in range(120):
            if not docker_client.containers.list(all=True, filters={"name": f"reprex-build-{key}-"}):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the build container is still there a minute on")
    finally:
        for made in docker_client.images.list(filters={"label": f"org.reprex.base={name}"}):
            subprocess.run(["docker", "rmi", "-f", made.id], capture_output=True, timeout=120)
        subprocess.run(["docker", "rmi", name], capture_output=True, timeout=120)


HOSTILE_NAMES = ["../../etc/passwd", "pygments/lexers/python", "pygments;touch /tmp/pwned", "$(touch /tmp/pwned)",
                 "`id`", "pygments.lexers.python\nRUN id", "a b", "", ".pygments", "pygments..lexers", "é",
                 "x" * 5000, 7, None, {"a": 1}, ["pygments"], "pygments.token"]


def test_crafted_names_never_reach_the_build(lexer_bundle, fresh_base, docker_client, cache_dir):
    crafted = with_run(lexer_bundle, package_modules=HOSTILE_NAMES)
    text, note = compile_list(crafted)
    assert text == "modules\npygments.token\n"
    assert note and "16 malformed" in note

    result, lines = run_replay(crafted, fresh_base())
    assert result.verdict == "reproduced", (result.reason, result.logs)
    assert any("malformed module name" in line for line in lines), lines
    out = docker_client.containers.run(
        result.image, ["sh", "-c", "cat /opt/reprex/build/modules.txt; ls /tmp/pwned 2>&1 || :"], remove=True,
        network_disabled=True).decode()
    assert out.startswith("modules\npygments.token\n") and "No such file" in out, out
    assert "pygments/token.py" in image_pycs(docker_client, result.image)


def test_an_oversized_list_is_ignored_whole(lexer_bundle):
    huge = with_run(lexer_bundle, package_modules=[f"m{i}" for i in range(100_000)])
    text, note = compile_list(huge)
    assert text == EVERYTHING and f"over {MAX_NAMES}" in note
    # not a list at all: the older list, then nothing
    assert compile_list(with_run(lexer_bundle, package_modules={"a": 1}))[0].startswith("packages\n")
    assert compile_list(with_run(lexer_bundle, package_modules=None, modules=None)) == (EVERYTHING, None)


def test_the_in_image_script_checks_the_list_again(tmp_path):
    """docker-compile.py in a venv (the env python it runs with in the image): its own checks,
    whatever file it is handed."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for rel in ("pkg/__init__.py", "pkg/used.py", "pkg/unused.py", "pkg/tests/test_x.py", "pkg/sub/__init__.py",
                "pkg/sub/deep.py", "solo.py"):
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text("VALUE = 1\n")
    outside = tmp_path / "outside.py"
    outside.write_text("VALUE = 1\n")
    (site / "pkg" / "link.py").symlink_to(outside)
    script = tmp_path / "compile.py"
    script.write_text(template_text("docker-compile.py"))

    def compiled(listing: str) -> set[str]:
        for pyc in site.rglob("*.pyc"):
            pyc.unlink()
        (tmp_path / "list.txt").write_text(listing)
        subprocess.run([str(python), "-I", str(script), str(tmp_path / "list.txt")], check=True, timeout=120)
        return {str(p.parent.parent.relative_to(site) / p.name.split(".")[0]) for p in site.rglob("*.pyc")}

    assert compiled("modules\npkg.sub.deep\npkg.used\n") == {"pkg/__init__", "pkg/used", "pkg/sub/__init__",
                                                             "pkg/sub/deep"}
    # pkg.link is a name: its package's __init__ is compiled, its file (a link out of site-packages) is not
    assert compiled("modules\n../outside\n/etc/passwd\npkg;id\npkg.link\npkg.used.\nsolo\n") == {"pkg/__init__",
                                                                                                    "solo"}
    assert not list(tmp_path.glob("__pycache__/*"))
    assert compiled("packages\npkg\n") == {"pkg/__init__", "pkg/used", "pkg/unused", "pkg/sub/__init__",
                                           "pkg/sub/deep"}
    everything = {"pkg/__init__", "pkg/used", "pkg/unused", "pkg/sub/__init__", "pkg/sub/deep", "solo"}
    assert compiled("*\n") == everything
    assert compiled("bogus mode\npkg\n") == everything
    assert compiled("modules\n" + "m\n" * (MAX_NAMES + 1)) == everything


def test_the_streamed_build_context_is_the_tar_tarfile_writes(tmp_path):
    """context.TarStream sends the wheels as it reads them; its bytes and announced size must be
    tarfile's, or the daemon reads a broken context (long and non-ASCII names, sizes on and off
    the 512-byte blocks, an executable)."""
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(bytes(range(256)) * 4099)
    tool = tmp_path / "uv"
    tool.write_bytes(b"\x7fELF" * 128)
    members = [("Dockerfile", b"FROM x\n", 0o644), ("uv/.keep", b"", 0o644), ("uv/uv", tool, 0o755),
               ("reprex/wheels/" + "n" * 150 + ".whl", wheel, 0o644), ("é/ü.txt", b"x" * 1024, 0o644)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in members:
            (add_bytes if isinstance(data, bytes) else add_file)(tar, name, data, mode)
    stream = TarStream(members)
    got = b"".join(iter(lambda: stream.read(1000), b""))
    assert stream.size == len(buf.getvalue()) and got == buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(got)) as tar:
        assert tar.extractfile("uv/uv").read() == tool.read_bytes() and tar.getmember("uv/uv").mode == 0o755

    # a wheel that shrinks between the size and the send: a one-line refusal, not a short tar
    stream = TarStream(members)
    wheel.write_bytes(b"short")
    with pytest.raises(InfraError, match="shrank while the build context was sent"):
        b"".join(iter(lambda: stream.read(1 << 16), b""))
