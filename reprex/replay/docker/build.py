"""The replay's environment image, made in one step: a root container of the base image runs
templates/docker-build.sh over what the archive API put into it (uv, the pins' wheels
downloaded on the host, the recorder, the compile script and its list; streamed from where
they are, context.py), and is committed as the image, its config set in the same commit.

Why not `docker build`: the classic builder commits a layer per step, and the wheels and uv
had to come in through COPY steps of their own (~100 MB committed twice: the COPY layer, then
the install layer above it), then USER and LABEL steps (a container and a commit each). Here
one commit holds only what the install wrote: the context is removed before it.

Nothing of a bundle is spliced into a script: its Python X.Y and the base image's name reach
docker-build.sh as arguments (and are checked here anyway); the list of modules to
byte-compile is a file of the archive (compile_list.py), read by templates/docker-compile.py.
A `--with` image is one more such step over the env image of the pins (which stays shared).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import os
import re
import shutil
import socket
import tarfile
import tempfile
import time
import uuid
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from reprex.interrupt import shielded
from reprex.replay.base import Deadline, EnvIncompatible, InfraError, Progress
from reprex.replay.docker.context import Member, TarStream
from reprex.replay.docker.daemon import http_errors, one_line
from reprex.replay.docker.engine import EngineError
from reprex.replay.docker.images import check_image_ref, find_image
from reprex.replay.docker.layout import LABEL, UID
from reprex.replay.wheels import WheelSet

if TYPE_CHECKING:
    from reprex.replay.docker.env import DockerEnv

PYTHON_XY = re.compile(r"\d{1,2}\.\d{1,3}")
CONTEXT = "tmp/reprex"  # where the archive lands in the build container (docker-build.sh's $ctx)
MARKERS = ("reprex-python-mismatch:", "reprex-no-python:", "reprex-no-venv:")
NO_PYTHON = "has no python3"  # how docker-build.sh's reprex-no-python reason ends


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    """A root-owned member with no time stamp: the same bytes make the same tar."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid = len(data), mode, 0, 0, 0
    tar.addfile(info, io.BytesIO(data))


def add_file(tar: tarfile.TarFile, name: str, path: Path, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid = path.stat().st_size, mode, 0, 0, 0
    with open(path, "rb") as fh:
        tar.addfile(info, fh)


@lru_cache(maxsize=1)
def compile_script() -> bytes:
    """templates/docker-compile.py, which byte-compiles the listed modules in the build."""
    from reprex.templates import template_text

    return template_text("docker-compile.py").encode()


@lru_cache(maxsize=1)
def build_script() -> str:
    """templates/docker-build.sh, the build container's command."""
    from reprex.templates import template_text

    return template_text("docker-build.sh")


def recorder_bytes() -> bytes:
    """The recorder, as the image carries it (its hash is part of the image's key)."""
    from reprex.record import RECORDER_FILE

    return RECORDER_FILE.read_bytes()


def recipe_digest() -> str:
    """What makes an image besides its inputs (the build and compile scripts): part of its key."""
    return hashlib.sha256(build_script().encode() + b"\0" + compile_script()).hexdigest()


def image_labels(base: str, xy: str, lock: str) -> dict[str, str]:
    """The env image's labels (`reprex cache`, tests): checked values only."""
    check_image_ref(base, "the base image")
    if not PYTHON_XY.fullmatch(xy) or not re.fullmatch(r"[0-9a-f]{16}", lock):
        raise InfraError(f"refusing to build: Python {xy!r:.40} or lock {lock!r:.40} is malformed")
    return {LABEL: "1", f"{LABEL}.base": base, f"{LABEL}.lock": lock, f"{LABEL}.python": xy,
            f"{LABEL}.compile": hashlib.sha256(compile_script()).hexdigest()[:16]}


_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}


def uv_for_image(machine: str | None) -> Path | None:
    """The host's uv binary, to install with in the image: when it runs here and the image's arch
    is this machine's (it is one native binary). The build script still checks that it runs there
    (a musl image can't run a glibc build) and falls back to pip."""
    import platform

    from reprex import installer

    if machine and _ARCH.get(machine, machine) != _ARCH.get(platform.machine(), platform.machine()):
        return None
    found = installer.uv()
    return Path(found) if found and platform.system() == "Linux" else None


def pins_members(pins: WheelSet, recorder: bytes, modules: str) -> list[Member]:
    """MODE=pins's archive: the wheels, the recorder, the compile script and its list."""
    members: list[Member] = [(f"{CONTEXT}/wheels/{whl.name}", whl, 0o644) for whl in pins.wheels]
    return members + [(f"{CONTEXT}/sitecustomize.py", recorder, 0o644),
                      (f"{CONTEXT}/compile.py", compile_script(), 0o644),
                      (f"{CONTEXT}/modules.txt", modules.encode("ascii"), 0o644)]


def with_members(with_set: WheelSet) -> list[Member]:
    """MODE=with's archive: the --with wheels."""
    return [(f"{CONTEXT}/with/{whl.name}", whl, 0o644) for whl in with_set.wheels]


def build(env: DockerEnv, tag: str, parent: dict, mode: str, members: list[Member], labels: dict[str, str],
          setup: Deadline, progress: Progress, machine: str | None = None, xy: str = "",
          base: str = "") -> dict:
    """The step runs without a network: it installs offline, and it runs the venv's Python
    (byte-compiling, the facts), where a pinned wheel's .pth file would run as root. Only a base
    image without python3 is given one, again, for apt to fetch the distro's python3."""
    try:
        return _build(env, tag, parent, mode, members, labels, setup, progress, machine, xy, base, "none")
    except EnvIncompatible as exc:
        if mode != "pins" or not exc.reason.endswith(NO_PYTHON):
            raise
        progress("build: the base image has no python3; again with a network for apt")
        return _build(env, tag, parent, mode, members, labels, setup, progress, machine, xy, base, "bridge")


def _build(env: DockerEnv, tag: str, parent: dict, mode: str, members: list[Member], labels: dict[str, str],
           setup: Deadline, progress: Progress, machine: str | None, xy: str, base: str, network: str) -> dict:
    """Make `tag` from the image `parent` (inspect data): MODE=pins installs the pins into a venv
    of the base image, MODE=with the --with wheels over an env image (docker-build.sh). The
    image's config is the parent's with the run's uid and `labels`. A "reprex-..." line in a
    failed step's output is an image that can't hold the bundle (env-incompatible), anything
    else an infra-error. Returns the image's inspect data."""
    if mode == "pins":
        check_image_ref(base, "the base image")
        if not PYTHON_XY.fullmatch(xy):
            raise InfraError(f"refusing to build: Python {xy!r:.40} is malformed")
    uv = uv_for_image(machine)
    if uv is not None:
        members = [(f"{CONTEXT}/uv/uv", uv, 0o755), *members]
    engine = env.engine
    argv = ["/bin/sh", "-c", build_script(), "sh", mode, xy or "-", base or "-"]
    config = {"Image": parent["Id"], "Entrypoint": argv, "Cmd": None, "User": "0:0",
              "Labels": {LABEL: "1"}, "AttachStdout": True, "AttachStderr": True,
              "OpenStdin": False, "Tty": False, "NetworkDisabled": network == "none",
              "HostConfig": {"NetworkMode": network}}
    cid = None
    output: list[str] = []
    from reprex.replay.docker.inputs import inputs_mode

    host_dir = Path(tempfile.mkdtemp(prefix="reprex-build-")) if inputs_mode(engine) == "bind" else None
    try:
        if host_dir is not None:  # the daemon shares our files: nothing to send, nothing to remove
            lay_out(host_dir, members)
            config["HostConfig"]["Mounts"] = [
                {"Type": "tmpfs", "Target": "/tmp"},
                {"Type": "bind", "Source": str(host_dir / CONTEXT), "Target": f"/{CONTEXT}", "ReadOnly": True}]
        with shielded():  # a signal can't come between the daemon's create and our knowing its id
            cid = engine.create(config, f"reprex-build-{tag.rpartition(':')[2]}-{uuid.uuid4().hex[:8]}")
        if host_dir is None:
            _put_archive(env, cid, TarStream(members), setup)
        stream = engine.attach(cid, timeout=setup.left())
        try:
            engine.start(cid)
            _read_output(stream, output, setup, progress)
        finally:
            stream.close()
        status = engine.wait(cid, timeout=setup.left())
        if status != 0:
            hit = next((l for l in reversed(output) for m in MARKERS if l.startswith(m)), None)
            if hit:
                raise EnvIncompatible(hit.split(":", 1)[1].strip())
            detail = next((l for l in reversed(output) if l.lower().startswith(("error", "×", "reprex-"))),
                          output[-1] if output else "")
            raise InfraError(f"building the replay image failed: the install step exited {status}"
                             + (f" ({detail[:300]})" if detail else ""))
        progress(f"build: committing {tag}")
        repo, _, key = tag.rpartition(":")
        engine.json("POST", "/commit", params={"container": cid, "repo": repo, "tag": key, "pause": False,
                                               "comment": f"reprex env image ({mode})"},
                    body=image_config(parent, labels), timeout=setup.left())
        # deleting the step's files takes seconds (~250 MB of venv): the daemon does it while the
        # replay goes on; its stopped container is swept like any other if that fails
        with shielded():
            engine.remove_soon(cid)
            cid = None
    except (InfraError, EnvIncompatible):
        raise
    except (socket.timeout, TimeoutError):
        raise setup.expired() from None
    except EngineError as exc:
        raise InfraError(f"building the replay image failed: {one_line(exc)}") from None
    except (OSError, ValueError, http_errors()) as exc:  # connection trouble
        raise InfraError(f"building {tag} failed: {one_line(exc)}") from None
    finally:
        with shielded():
            if cid is not None:
                with contextlib.suppress(Exception):
                    engine.remove(cid)
            if host_dir is not None:
                shutil.rmtree(host_dir, ignore_errors=True)
    image = find_image(engine, tag)
    if image is None:
        raise InfraError(f"building {tag} reported success but the image is missing")
    return image


def image_config(parent: dict, labels: dict[str, str]) -> dict:
    """The committed image's config: the parent's (environment, command, entrypoint, workdir)
    with the unprivileged user and our labels. Entrypoint and Cmd are never left null: the
    daemon would fill them from the build container's."""
    config = copy.deepcopy(parent.get("Config") or {})
    config["User"] = f"{UID}:{UID}"
    config["Labels"] = {**(config.get("Labels") or {}), **labels}
    config["Entrypoint"] = config.get("Entrypoint") or []
    config["Cmd"] = config.get("Cmd") or []
    return config


def lay_out(root: Path, members: list[Member]) -> None:
    """The members as files under `root` (a bind mount's source): the wheels and uv linked from
    where they are when the file system allows, else copied."""
    for name, data, mode in members:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            try:
                os.link(data, target)  # the cache's file itself: its mode stays the cache's
                continue
            except OSError:
                shutil.copyfile(data, target)
        os.chmod(target, mode)
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        os.chmod(folder, 0o755)


class _Body:
    """The archive as http.client reads a request body: a megabyte at a time."""

    def __init__(self, stream: TarStream):
        self.stream = stream

    def read(self, _n: int = -1) -> bytes:
        return self.stream.read(1 << 20)


def _put_archive(env: DockerEnv, cid: str, stream: TarStream, setup: Deadline) -> None:
    """The archive unpacked at / of the created container, streamed (`docker cp` of a tar)."""
    conn, res = env.engine.open("PUT", f"/containers/{cid}/archive", params={"path": "/"}, body=_Body(stream),
                                headers={"Content-Type": "application/x-tar", "Content-Length": str(stream.size)},
                                timeout=setup.left())
    try:
        data = res.read(1 << 20)
    finally:
        conn.close()
    if res.status != 200:
        from reprex.replay.docker.engine import _error_message

        raise EngineError(_error_message(data, res.status), res.status)


def _read_output(stream, output: list[str], setup: Deadline, progress: Progress) -> None:
    """The build step's output, the last 200 lines kept; past the setup deadline, expired."""
    pending = b""
    stream.settimeout(max(0.05, setup.at - time.monotonic()))
    for _, data in stream.frames():
        pending += data
        *lines, pending = pending.split(b"\n")
        if len(pending) > 1 << 16:  # a line without end: cut
            lines, pending = [*lines, pending], b""
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                output.append(line)
                if line.startswith("reprex-"):
                    progress(f"build: {line[:200]}")
        del output[:-200]
        if time.monotonic() > setup.at:
            raise setup.expired()
    if pending.strip():
        output.append(pending.decode("utf-8", "replace").strip())
