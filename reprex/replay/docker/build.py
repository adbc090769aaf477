"""The replay's environment image: the Dockerfile, the build context (the pins' wheels,
downloaded on the host, and the recorder; streamed from where they are, context.py), and the
build through the Engine API.

Dockerfile.replay and Dockerfile.with are templates in reprex/templates/; what of a bundle is
spliced into them (its Python X.Y, the lock hash, the base image's name) is checked here,
where it is spliced. The list of modules to byte-compile is not spliced: it goes into the
context as a data file (compile_list.py), read by templates/docker-compile.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import tarfile
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from reprex.replay.base import Deadline, EnvIncompatible, InfraError, Progress
from reprex.replay.docker.compile_list import EVERYTHING
from reprex.replay.docker.context import Member, TarStream
from reprex.replay.docker.daemon import one_line
from reprex.replay.docker.engine import EngineError
from reprex.replay.docker.images import check_image_ref, find_image
from reprex.replay.docker.layout import LABEL
from reprex.replay.wheels import WheelSet

if TYPE_CHECKING:
    from reprex.replay.docker.env import DockerEnv

PYTHON_XY = re.compile(r"\d{1,2}\.\d{1,3}")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@lru_cache(maxsize=1)
def with_steps() -> str:
    """Dockerfile.replay's ${with_steps}: the --with wheels over the pins, then the facts again
    (the template's comment lines left out: they are not part of the image's key)."""
    from reprex.templates import template_text

    return "".join(line for line in template_text("Dockerfile.with").splitlines(True) if not line.startswith("#"))


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    """A root-owned member with no time stamp: the same bytes make the same context."""
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


def recorder_bytes() -> bytes:
    """The recorder, as the image carries it (its hash is part of the image's key)."""
    from reprex.record import RECORDER_FILE

    return RECORDER_FILE.read_bytes()


def dockerfile(base: str, xy: str, lock: str, with_specs: bool, base_user: str = "") -> str:
    """Dockerfile.replay rendered: the only values of a bundle spliced into it are checked here."""
    from reprex.templates import render_template

    # the only values spliced into the text: checked here, where they are spliced
    check_image_ref(base, "the base image")
    if not PYTHON_XY.fullmatch(xy) or not re.fullmatch(r"[0-9a-f]{16}", lock):
        raise InfraError(f"refusing to build: Python {xy!r:.40} or lock {lock!r:.40} is malformed")
    # the compile script's hash: the Dockerfile's text (so the image's key) changes with it
    labels = " ".join(f"{k}={json.dumps(v)}" for k, v in {
        LABEL: "1", f"{LABEL}.base": base, f"{LABEL}.lock": lock, f"{LABEL}.python": xy,
        f"{LABEL}.compile": hashlib.sha256(compile_script()).hexdigest()[:16]}.items())
    as_root = base_user.split(":")[0] in ("", "root", "0")
    return render_template("Dockerfile.replay", base_image=base, python_xy=xy,
                           user_root="" if as_root else "USER root\n",
                           with_steps=with_steps() if with_specs else "", labels=labels)

_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}


def uv_for_image(machine: str | None) -> Path | None:
    """The host's uv binary, to install with in the image: when it runs here and the image's arch
    is this machine's (it is one native binary). The Dockerfile still checks that it runs there
    (a musl image can't run a glibc build) and falls back to pip."""
    import platform

    from reprex import installer

    if machine and _ARCH.get(machine, machine) != _ARCH.get(platform.machine(), platform.machine()):
        return None
    found = installer.uv()
    return Path(found) if found and platform.system() == "Linux" else None


def build(env: DockerEnv, tag: str, dockerfile: str, pins: WheelSet, with_set: WheelSet | None,
          recorder: bytes, setup: Deadline, progress: Progress, machine: str | None = None,
          modules: str = EVERYTHING) -> dict:
    """Build `tag` from a streamed context (the Dockerfile, uv, the pins' wheels, the recorder,
    the compile script and its list, the --with wheels); its inspect data. A "reprex-..." line
    in a failed build's output is an image that can't hold the bundle (env-incompatible),
    anything else an infra-error. `machine`: the image's arch (uv goes in only for this
    machine's); `modules`: compile_list()'s text (default: compile everything)."""
    n_with = len(with_set.wheels) if with_set else 0
    progress(f"building {tag} ({len(pins.wheels)} wheels" + (f" + {n_with} --with" if n_with else "") + ")")
    uv = uv_for_image(machine)
    members: list[Member] = [("Dockerfile", dockerfile.encode(), 0o644), ("uv/.keep", b"", 0o644)]
    if uv is not None:
        members.append(("uv/uv", uv, 0o755))
    members.append(("reprex/wheels/.keep", b"", 0o644))
    members += [(f"reprex/wheels/{whl.name}", whl, 0o644) for whl in pins.wheels]
    members += [("reprex/sitecustomize.py", recorder, 0o644), ("reprex/compile.py", compile_script(), 0o644),
                ("reprex/modules.txt", modules.encode("ascii"), 0o644)]
    members += [(f"with/{whl.name}", whl, 0o644) for whl in (with_set.wheels if with_set else [])]
    context = TarStream(members)
    output: list[str] = []
    error = None
    try:
        # REPREX_DOCKER_NO_CACHE=1: no layer reuse (a suspect cache; cold-build benchmarks)
        params = {"t": tag, "rm": True, "forcerm": True, "pull": False,
                  "nocache": os.environ.get("REPREX_DOCKER_NO_CACHE") == "1"}
        for chunk in env.engine.build(context, context.size, params, timeout=setup.left()):
            if "error" in chunk:
                error = " ".join(str(chunk.get("error")).split())
            text = chunk.get("stream")
            if text:
                for line in ANSI.sub("", text).splitlines():  # RUN's stderr comes in red
                    line = line.strip()
                    if not line:
                        continue
                    output.append(line)
                    del output[:-200]
                    if line.startswith("Step "):
                        progress(f"build: {line[:160]}")
            if time.monotonic() > setup.at:
                raise setup.expired()
    except EngineError as exc:
        error = one_line(exc)
    except InfraError:
        raise
    except (socket.timeout, TimeoutError):
        raise setup.expired() from None
    except Exception as exc:  # connection trouble
        raise InfraError(f"building {tag} failed: {one_line(exc)}") from None
    for marker in ("reprex-python-mismatch:", "reprex-no-python:", "reprex-no-venv:"):
        hit = next((l for l in reversed(output) if l.startswith(marker)), None)
        if hit and error:
            raise EnvIncompatible(hit[len(marker):].strip())
    if error:
        detail = next((l for l in reversed(output) if l.lower().startswith("error")), "")
        raise InfraError(f"building the replay image failed: {error}" + (f" ({detail[:300]})" if detail else ""))
    image = find_image(env.engine, tag)
    if image is None:
        raise InfraError(f"building {tag} reported success but the image is missing")
    return image
