"""The docker backend: one environment image per (base image, lock hash), runs that change nothing.

prepare(): find the daemon like the docker CLI does, pick the base image (`--image`, else
`python:X.Y-slim`; GPU bundles get a device request; an `nvidia/cuda` runtime image only when
the run loaded the system's CUDA libraries), download the pins' wheels ON THE HOST with the
host's pip configuration, and build `reprex-env:<hash>` from templates/Dockerfile.replay with
an in-memory build context. The image is reused while its inputs match: a warm replay is one
container.

run(): a hermetic container: no network (a bundle may ask for one; only --network grants it),
non-root uid 10001,
all capabilities dropped, no-new-privileges, pids/memory limits, read-only root with tmpfs
/tmp, docker's init so signals and crashes behave like on a host; the work files mounted
read-only and copied to a scratch dir; the recorder injected via PYTHONPATH writes into
/reprex/record, a tmpfs. When the program is done, the run script writes the record's
regular files (size-capped, links and FIFOs skipped) to stdout after a per-run marker, so
the one attach stream that carries the output carries the record too: no host directory the
program could plant FIFOs, links or huge files in, and no extra API calls. The host parses
that stream in memory with its own caps and reads it with the same load_outcome() as
capture. Never the host's environment. The container is removed in `finally` (never
auto_remove).

The bundle's requirements are checked before anything else (wheels.check_bundle_requirements)
and downloaded binary-only: nothing from a bundle is built or run on the host; its URL pins
are fetched (by the host, from the addresses they name) only with the user's `allow_urls`. Every other
value of the bundle that reaches the daemon is checked against a strict pattern (its Python
version, which names the base image and goes into the Dockerfile; its id, in labels and the
container name) or passed as data (the entry's argv, environment values); nothing in it
chooses the isolation: network, GPUs, image, timeout and limits come from the user's options.
The container ends on its own at the timeout (a watchdog in the run script) even if reprex
is killed, and a detached watchdog on the host (replay.watchdog) removes it if reprex dies
without doing so; SIGTERM/SIGINT unwind through the `finally` that removes it (replay.interrupt).

The daemon is spoken to through reprex.replay.engine (the standard library over the socket);
the docker SDK is imported only to pull a missing base image (sdk_client: registry credentials).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import socket
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from reprex.bundle import Bundle, safe_member_name
from reprex.replay.base import (DEFAULT_TIMEOUT, Deadline, EnvIncompatible, InfraError, Progress, ReplayOptions,
                                RunOutput, base_environ, entry_args, lock_hash, needs_gpu, python_xy, refused,
                                replay_environ, replay_pythonpath, requirements, work_files)
from reprex.replay.engine import Engine, EngineError, Stream, tls_from_env
from reprex.replay.interrupt import shielded
from reprex.replay.watchdog import watch
from reprex.replay.wheels import (Target, WheelSet, check_bundle_requirements, check_url_grant, pins_wheels,
                                  uname_machine, with_wheels)

DEFAULT_HOST = "unix:///var/run/docker.sock"
PING_TIMEOUT = 5.0
API_TIMEOUT = 120.0
ENV_REPO = "reprex-env"
LABEL = "org.reprex"
VENV = "/opt/reprex/venv"
INJECT = "/opt/reprex/inject"
FACTS = "/opt/reprex/facts.json"
IN_DIR = "/reprex/in"
RECORD_DIR = "/reprex/record"
WORK_DIR = "/tmp/work"
UID = 10001
PATH = f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin"
TAIL_BYTES = 64 * 1024
# What the host takes of the record (the program can write there too): these names, at
# most this many bytes of each; facts.json is the image's, written at build time.
RECORD_FILES = {"claim": 64, "events.jsonl": 32 << 20, "fault.log": 16 << 20, "facts.json": 4 << 20}
RECORD_MAGIC = b"\x1e[reprex-record "
# The run script's watchdog ends the container this long after the replay's timeout, when
# reprex (which handles the timeout itself, with a stack dump) is no longer there to do it.
WATCHDOG_MARGIN_S = 10
# What may be spliced into the Dockerfile: an image reference, a Python X.Y, a lock hash.
IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}")
PYTHON_XY = re.compile(r"\d{1,2}\.\d{1,3}")
BUNDLE_ID = re.compile(r"[0-9a-f]{64}")
# $1 is the run's marker nonce, $2 the watchdog's seconds, the rest is the entry. First a
# watchdog: a subshell that kills every process of the run's uid (the run script included,
# so the container ends) if the run is still going $2 seconds on. The work files are copied from the
# read-only input mount to a scratch dir; the entry runs in the foreground (a child of sh,
# signals and stdin as usual); then every other process of the run's uid is killed (what
# `exec python` under the init got when the container stopped; here it also means nothing
# can write into the record or the stream while it goes out), and the record goes to
# stdout: the marker, and for each regular file a "name size" line and that many bytes,
# then "end". sh keeps the entry's status.
_EMIT = " ".join(f"{name}:{path}:{RECORD_FILES[name]}" for name, path in [
    ("claim", f"{RECORD_DIR}/claim"), ("events.jsonl", f"{RECORD_DIR}/events.jsonl"),
    ("fault.log", f"{RECORD_DIR}/fault.log"), ("facts.json", FACTS)])
RUN_SCRIPT = (
    'n=$1; w=$2; shift 2; (sleep "$w"; kill -KILL -1) </dev/null >/dev/null 2>&1 & '
    f'mkdir -p {WORK_DIR} /tmp/tmp && cp -R {IN_DIR}/. {WORK_DIR}/ && cd {WORK_DIR} || exit 125; '
    '"$@"; rc=$?; kill -KILL -1 2>/dev/null; '
    # stdout left non-blocking by the program (asyncio's write pipes do): the record's write-out
    # would meet EAGAIN at a full pipe, so clear the flag (builtins only unless it is set)
    'fl=0; while read -r k v; do [ "$k" = flags: ] && fl=$v; done 2>/dev/null < /proc/self/fdinfo/1; '
    f'[ $(( 0$fl & 04000 )) -ne 0 ] && {VENV}/bin/python -I -S -c "import fcntl, os; '
    'f = fcntl.fcntl(1, fcntl.F_GETFL); fcntl.fcntl(1, fcntl.F_SETFL, f & ~os.O_NONBLOCK)"; '
    f'printf "\\n\\036[reprex-record %s]\\n" "$n"; '
    f'for e in {_EMIT}; do f=${{e#*:}}; cap=${{f##*:}}; f=${{f%:*}}; '
    'if [ -f "$f" ] && [ ! -L "$f" ]; then s=$(wc -c 2>/dev/null < "$f") || continue; [ "$s" -gt "$cap" ] && s=$cap; '
    'printf "%s %s\\n" "${e%%:*}" "$s"; head -c "$s" "$f"; fi; done; '
    'printf "end\\n"; exit $rc')
# On a timeout: inside the container, ask the process that claimed the record for a stack
# dump (SIGUSR1 -> faulthandler), give it up to 2 s to land, then kill that process; the run
# script then writes the record as usual.
DUMP_SCRIPT = (
    f'c={RECORD_DIR}/claim; [ -f "$c" ] && [ ! -L "$c" ] || exit 3; '
    'p=$(head -c 20 "$c" 2>/dev/null); case "$p" in ""|*[!0-9]*) exit 3;; esac; '
    f'size() {{ wc -c 2>/dev/null < {RECORD_DIR}/fault.log || echo 0; }}; s0=$(size); '
    'kill -USR1 "$p" 2>/dev/null || exit 4; i=0; while [ $i -lt 20 ]; do sleep 0.1; '
    '[ "$(size)" -gt "$s0" ] && { sleep 0.2; break; }; i=$((i+1)); done; kill -KILL "$p" 2>/dev/null; exit 0')
# Dockerfile.replay's ${with_steps}: `--with` wheels over the pins (a layer of their own, so
# the pinned layers below stay shared with the plain image), then the facts again.
WITH_STEPS = (f"COPY with/ /tmp/reprex/with/\n"
              f"RUN {VENV}/bin/python -m pip install --no-index --no-deps --force-reinstall --no-cache-dir "
              f"--disable-pip-version-check --no-warn-script-location /tmp/reprex/with/*.whl "
              f"&& rm -rf /tmp/reprex && ({VENV}/bin/python -I {INJECT}/sitecustomize.py --facts > {FACTS} "
              f"|| echo '{{}}' > {FACTS}) && chmod -R a+rX /opt/reprex\n")
GPU_DRIVER_ERROR = "could not select device driver"
NO_GPU_RUNTIME = ("GPU requested but the Docker daemon has no NVIDIA runtime: install the NVIDIA Container Toolkit "
                  "(nvidia-ctk runtime configure --runtime=docker) and restart dockerd")


# -- finding the daemon ---------------------------------------------------------------

def _docker_config_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


@dataclass
class Endpoint:
    host: str
    source: str  # DOCKER_HOST | docker context NAME | default socket
    tls_dir: Path | None = None
    skip_tls_verify: bool = False


def daemon_endpoint() -> Endpoint:
    """Where the docker CLI would talk: DOCKER_HOST, else DOCKER_CONTEXT / the current
    context (~/.docker/config.json "currentContext" -> contexts/meta/<sha256(name)>/meta.json),
    else the default socket."""
    host = os.environ.get("DOCKER_HOST")
    if host:
        return Endpoint(host, "DOCKER_HOST")
    name = os.environ.get("DOCKER_CONTEXT")
    if not name:
        try:
            name = json.loads((_docker_config_dir() / "config.json").read_text("utf-8")).get("currentContext")
        except (OSError, ValueError, AttributeError):
            name = None
    if name and name != "default":
        digest = hashlib.sha256(name.encode()).hexdigest()
        meta_path = _docker_config_dir() / "contexts" / "meta" / digest / "meta.json"
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
        except (OSError, ValueError):
            raise InfraError(f"docker context {name!r} not found ({meta_path}); run `docker context use default` "
                             "or use --backend local") from None
        endpoint = (meta.get("Endpoints") or {}).get("docker") or {}
        if endpoint.get("Host"):
            tls = _docker_config_dir() / "contexts" / "tls" / digest / "docker"
            return Endpoint(endpoint["Host"], f"docker context {name!r}", tls if tls.is_dir() else None,
                            bool(endpoint.get("SkipTLSVerify")))
    return Endpoint(DEFAULT_HOST, "default socket")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def connect(timeout: float = PING_TIMEOUT) -> Engine:
    """The daemon the docker CLI would use, pinged (which settles the API version);
    InfraError when none answers."""
    ep = daemon_endpoint()
    if ep.source == "DOCKER_HOST":
        tls_dir, verify = tls_from_env()
    else:
        tls_dir, verify = ep.tls_dir, ep.tls_dir is not None and not ep.skip_tls_verify
    try:
        engine = Engine(ep.host, tls_dir=tls_dir, tls_verify=verify, timeout=API_TIMEOUT)
    except Exception as exc:  # an unsupported scheme, unreadable TLS files
        raise InfraError(f"the Docker host {ep.host} ({ep.source}) can't be used: {_one_line(exc)}; "
                         "use --backend local") from None
    try:
        engine.ping(timeout)
    except Exception as exc:  # OSError, EngineError, TLS trouble, http.client errors
        raise InfraError(f"no Docker daemon reachable at {ep.host} ({ep.source}): {_one_line(exc)}; "
                         "start dockerd or use --backend local") from None
    engine.endpoint = ep
    return engine


def sdk_client(engine: Engine):
    """A docker SDK client for the same daemon, for pulls only (registry credentials and helpers)."""
    try:
        import docker
    except ImportError:
        raise InfraError("pulling a missing base image needs the `docker` Python package (pip install docker); "
                         "or use --backend local") from None
    ep = getattr(engine, "endpoint", None) or daemon_endpoint()
    kwargs: dict = {}
    try:
        if ep.source == "DOCKER_HOST":
            env_kwargs = docker.utils.kwargs_from_env()  # DOCKER_TLS_VERIFY / DOCKER_CERT_PATH
            if env_kwargs.get("tls"):
                kwargs["tls"] = env_kwargs["tls"]
        elif ep.tls_dir is not None:
            from docker.tls import TLSConfig

            cert, key, ca = (ep.tls_dir / "cert.pem", ep.tls_dir / "key.pem", ep.tls_dir / "ca.pem")
            kwargs["tls"] = TLSConfig(client_cert=(str(cert), str(key)) if cert.exists() and key.exists() else None,
                                      ca_cert=str(ca) if ca.exists() else None, verify=not ep.skip_tls_verify)
        client = docker.DockerClient(base_url=ep.host, version=engine.api, timeout=API_TIMEOUT, **kwargs)
    except Exception as exc:
        raise InfraError(f"the docker SDK cannot talk to {ep.host}: {_one_line(exc)}") from None
    if ep.host.startswith(("unix://", "npipe://")):
        client.api.trust_env = False  # no proxy for a local socket
    return client


# -- data: images and CUDA drivers -------------------------------------------------------

@lru_cache(maxsize=1)
def images_table() -> dict:
    from reprex.templates import template_text

    return json.loads(template_text("images.json"))


def _version_tuple(text) -> tuple[int, ...] | None:
    parts = re.findall(r"\d+", str(text or ""))
    return tuple(int(p) for p in parts) if parts else None


def min_driver(torch_cuda: str | None) -> str | None:
    """The oldest NVIDIA driver that can run a build for CUDA `torch_cuda` (None: unknown)."""
    version = _version_tuple(torch_cuda)
    if not version:
        return None
    table = images_table()["cuda_driver"]
    if version[0] >= 11:
        return table["minor_compat_minimum"].get(str(version[0]))
    return table["toolkit_driver"].get(".".join(str(v) for v in version[:2]))


def driver_too_old(torch_cuda: str | None, driver_version: str | None) -> bool:
    """True when a host driver `driver_version` cannot run a CUDA `torch_cuda` build.

    From CUDA 11 on, minor version compatibility lets a build run on any driver of at least
    the major family's minimum (NVIDIA's table, in templates/images.json); unknowns -> False.
    """
    need = _version_tuple(min_driver(torch_cuda))
    have = _version_tuple(driver_version)
    if not need or not have:
        return False
    return have < need


def bundle_cuda(bundle: Bundle) -> str | None:
    """The CUDA version the bundle's frameworks were built for (torch first)."""
    env = bundle.json("environment.json", {}) or {}
    frameworks = ((env.get("cuda") or {}).get("value") or {}).get("frameworks") or {}
    for name in ("torch", "tensorflow"):
        cuda = (frameworks.get(name) or {}).get("cuda")
        if cuda:
            return str(cuda)
    return ((bundle.manifest.get("gpu") or {}).get("cuda")) or None


_SYSTEM_CUDA = re.compile(r"/usr/local/cuda(?:-(\d+\.\d+))?/(?:targets/[^/\"]+/)?lib(?:64)?/lib(?:cudart|cublas|cudnn|"
                          r"cufft|curand|cusolver|cusparse|nvrtc)[^\"/]*\.so")


def system_cuda(bundle: Bundle) -> str | None:
    """'X.Y' (or '' when unknown) if the run loaded system CUDA libraries, else None."""
    text = bundle.text("run.json") + bundle.text("environment.json")
    m = _SYSTEM_CUDA.search(text)
    if not m:
        return None
    return m.group(1) or bundle_cuda(bundle) or ""


def cuda_image(version: str) -> str | None:
    images = images_table()["gpu"]["system_cuda"]["images"]
    want = _version_tuple(version)
    if not want:
        return None
    if f"{want[0]}.{want[1] if len(want) > 1 else 0}" in images:
        return images[f"{want[0]}.{want[1] if len(want) > 1 else 0}"]
    same_major = [(v, img) for v, img in images.items() if _version_tuple(v)[0] == want[0]
                  and _version_tuple(v) <= want]
    return max(same_major, key=lambda item: _version_tuple(item[0]))[1] if same_major else None


def choose_image(bundle: Bundle, options: ReplayOptions, gpus: str | None) -> str:
    """`--image` wins; GPU runs that loaded system CUDA get an nvidia/cuda runtime image; else python:X.Y-slim."""
    if options.image:
        return options.image
    xy = python_xy(bundle)
    table = images_table()
    if gpus:
        version = system_cuda(bundle)
        if version is not None:
            image = cuda_image(version) if version else None
            if image:
                return image
        return table["gpu"]["default"].format(xy=xy)
    return table["cpu"]["image"].format(xy=xy)


NETWORK_ASKED = ("the repro asked for a network; it ran without one, since only the user grants it "
                 "(--network bridge)")
GPU_ASKED = ("the bundle ran on a GPU and asks for one; only the user grants it: --gpus all "
             "(or --gpus none to replay without)")


def resolve_gpus(bundle: Bundle, options: ReplayOptions) -> str | None:
    """None (no GPU) | "all" | "N", from the user's --gpus only: a bundle that needs a GPU
    asks (env-incompatible until granted), it never gets a device on its own say."""
    if options.gpus == "none":
        return None
    if options.gpus:
        return options.gpus
    if needs_gpu(bundle):
        raise EnvIncompatible(GPU_ASKED)
    return None


def check_image_ref(image: str, what: str = "--image") -> str:
    """An image reference as the Dockerfile's FROM line and build messages may hold it."""
    if not isinstance(image, str) or not IMAGE_REF.fullmatch(image) or "//" in image:
        raise InfraError(f"{what} {image!r:.120}: not an image reference")
    return image


def bundle_label(bundle: Bundle) -> str:
    """The bundle's id, for labels and container names: a sha256 or nothing."""
    if not isinstance(bundle.id, str) or not BUNDLE_ID.fullmatch(bundle.id):
        raise refused("id", bundle.id, "is not a sha256 content id")
    return bundle.id


def device_requests(gpus: str | None) -> list[dict]:
    """The API's HostConfig.DeviceRequests for `--gpus all|N` (docker run --gpus)."""
    if not gpus:
        return []
    count = -1 if gpus == "all" else int(gpus)
    return [{"Driver": "", "Count": count, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}}]


def gpu_problem(exc: BaseException) -> EnvIncompatible | None:
    if GPU_DRIVER_ERROR in str(exc):
        return EnvIncompatible(NO_GPU_RUNTIME)
    return None


# -- the run's output and record, from one attach stream -------------------------------------

class Tail:
    """The last `limit` bytes of a run's output as [[stream, text], ...] in the order written,
    adjacent chunks of one stream joined."""

    def __init__(self, limit: int = TAIL_BYTES):
        self.limit, self.total, self.chunks = limit, 0, []

    def add(self, stream: str, data: bytes) -> None:
        if not data:
            return
        if self.chunks and self.chunks[-1][0] == stream:
            self.chunks[-1][1] += data
        else:
            self.chunks.append([stream, bytearray(data)])
        self.total += len(data)
        while self.total > self.limit and self.chunks:
            excess = self.total - self.limit
            if len(self.chunks[0][1]) <= excess:
                self.total -= len(self.chunks.pop(0)[1])
            else:
                del self.chunks[0][1][:excess]
                self.total -= excess

    def drop_stdout_end(self, n: int) -> None:
        """Take back the last n bytes given as stdout (they turned out to be the marker's),
        from as many stdout chunks as they spread over (stderr may have come between)."""
        for chunk in reversed(self.chunks):
            if n <= 0:
                break
            if chunk[0] == "stdout":
                take = min(n, len(chunk[1]))
                del chunk[1][len(chunk[1]) - take:]
                self.total -= take
                n -= take
        self.chunks = [c for c in self.chunks if c[1]]
        for i in range(len(self.chunks) - 1, 0, -1):  # neighbours of one stream join again
            if self.chunks[i][0] == self.chunks[i - 1][0]:
                self.chunks[i - 1][1] += self.chunks.pop(i)[1]

    def text(self) -> list[list[str]]:
        return [[s, bytes(b).decode("utf-8", "replace")] for s, b in self.chunks]


class RunStream:
    """Splits the container's stdout at the run's record marker: before it, the program's
    output (kept as a Tail); after it, the record (kept up to the caps' sum, the rest read
    and dropped so the container never blocks on a full pipe)."""

    def __init__(self, nonce: str, limit: int = TAIL_BYTES):
        self.marker = b"\n" + RECORD_MAGIC + nonce.encode() + b"]\n"
        self.tail = Tail(limit)
        self.pending = b""  # stdout that may be the start of the marker: held back
        self.carry = b""  # the same, already handed to the tail because stderr came between
        self.record: bytearray | None = None
        self.budget = sum(RECORD_FILES.values()) + 4096

    def _held(self, buf: bytes) -> int:
        """Length of the longest end of `buf` that could begin the marker."""
        start = max(0, len(buf) - len(self.marker) + 1)
        at = buf.find(b"\n", start)
        while at >= 0:
            if self.marker.startswith(buf[at:]):
                return len(buf) - at
            at = buf.find(b"\n", at + 1)
        return 0

    def feed(self, stream: str, data: bytes) -> None:
        if self.record is not None:
            if stream == "stdout":
                self.record += data[:max(0, self.budget - len(self.record))]
            else:
                self.tail.add(stream, data)
            return
        if stream != "stdout":
            if self.pending:  # keep the order written; remember it in case the marker goes on
                self.tail.add("stdout", self.pending)
                self.carry, self.pending = self.carry + self.pending, b""
            self.tail.add(stream, data)
            return
        buf = self.carry + self.pending + data
        at = buf.find(self.marker)
        if at >= 0:
            if at < len(self.carry):  # the marker began in bytes the tail already has
                self.tail.drop_stdout_end(len(self.carry) - at)
            else:
                self.tail.add("stdout", buf[len(self.carry):at])
            self.carry = self.pending = b""
            self.record = bytearray()
            self.feed("stdout", buf[at + len(self.marker):])
            return
        own = buf[len(self.carry):]
        held = self._held(buf)
        if held > len(own):  # a possible marker start reaches back into the carried bytes
            self.carry, self.pending = self.carry[len(buf) - held:], own
        else:
            self.tail.add("stdout", own[:len(own) - held])
            self.carry, self.pending = b"", own[len(own) - held:]

    def finish(self) -> None:
        if self.record is None and self.pending:
            self.tail.add("stdout", self.pending)
        self.pending = self.carry = b""

    def record_files(self) -> dict[str, bytes]:
        """The record's files by name: the known names only, each within its cap; parsing
        stops at the first thing that is not a well-formed entry."""
        files: dict[str, bytes] = {}
        data = bytes(self.record or b"")
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos, pos + 64)
            if nl < 0:
                break
            head = data[pos:nl].decode("ascii", "replace").split(" ")
            if head == ["end"] or len(head) != 2 or head[0] not in RECORD_FILES or head[0] in files:
                break
            try:
                size = int(head[1])
            except ValueError:
                break
            if size < 0 or size > RECORD_FILES[head[0]] or nl + 1 + size > len(data):
                break
            files[head[0]] = data[nl + 1:nl + 1 + size]
            pos = nl + 1 + size
        return files


# -- the backend ----------------------------------------------------------------------

@dataclass
class DockerEnv:
    engine: Engine
    tag: str
    base_image: str
    base_id: str
    image_id: str
    machine: str
    gpus: str | None
    network: str
    reused: bool
    progress: Progress
    init: bool = True  # docker's init (tini) as pid 1: signals forwarded, zombies reaped
    with_set: WheelSet | None = None
    kept: list[str] = field(default_factory=list)
    scratch: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for the verdict's reason (an ask not granted)
    sdk: object = None  # the docker SDK client, made only to pull
    hold: object = None  # the shared in-use lock on the env image (fsutil.hold_in_use), closed by close()

    @property
    def client(self):
        if self.sdk is None:
            self.sdk = sdk_client(self.engine)
        return self.sdk


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _api_timeout(client, seconds: float):
    previous = client.api.timeout
    client.api.timeout = seconds
    try:
        yield
    finally:
        client.api.timeout = previous


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid = len(data), mode, 0, 0, 0
    tar.addfile(info, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid = path.stat().st_size, 0o644, 0, 0, 0
    with open(path, "rb") as fh:
        tar.addfile(info, fh)


def _image_machine(image: dict) -> str | None:
    return uname_machine(image.get("Architecture")) or None


class DockerBackend:
    name = "docker"
    mem_limit = os.environ.get("REPREX_DOCKER_MEMORY", "2g")
    pids_limit = 256
    # A minimal local Ray cluster (num_cpus=2) is ~11 processes and ~200 threads, and threads
    # count against the pids limit: bundles whose run imported ray get more room.
    pids_limit_ray = 4096
    shm_size = 1 << 30
    tmpfs_size = "1g"
    record_size = "64m"
    pull_timeout = float(os.environ.get("REPREX_PULL_TIMEOUT", "120"))
    # after a timeout's kill, how long the run script gets to write the record
    grace_s = 30.0

    # -- prepare ------------------------------------------------------------------
    def prepare(self, bundle: Bundle, options: ReplayOptions, progress: Progress) -> DockerEnv:
        # a refused value: before anything runs (pins, Python version, id, GPU ask, image name)
        check_bundle_requirements(requirements(bundle))
        check_url_grant(requirements(bundle), options.allow_urls)
        python_xy(bundle)
        bundle_label(bundle)
        resolve_gpus(bundle, options)
        if options.image:
            check_image_ref(options.image)
        engine = connect()
        env = DockerEnv(engine=engine, tag="", base_image="", base_id="", image_id="", machine="", gpus=None,
                        network="none", reused=False, progress=progress)
        try:
            return self._prepare(env, bundle, options, progress)
        except BaseException:
            self.close(env, options)
            raise

    def _prepare(self, env: DockerEnv, bundle: Bundle, options: ReplayOptions, progress: Progress) -> DockerEnv:
        setup = Deadline(options.setup_timeout)  # downloads and the build together
        xy = python_xy(bundle)
        gpus = resolve_gpus(bundle, options)
        base = check_image_ref(choose_image(bundle, options, gpus), "the base image")
        base_image = self._ensure_image(env, base, xy, progress)
        # the image's architecture is what its containers run as (the daemon's, but for emulation)
        machine = _image_machine(base_image) or "x86_64"
        if gpus:
            self._check_gpu(env, base, gpus, bundle, progress)
        network = options.network or "none"  # the user's grant only
        if not options.network and bundle.manifest.get("network") is True:
            env.notes.append(NETWORK_ASKED)
            progress(NETWORK_ASKED)

        lock = lock_hash(bundle)
        target = Target(xy, machine, images_table()["cpu"].get("glibc", "2.36"))
        from reprex.fsutil import cache_root, hold_in_use, locked

        cache = cache_root()
        with_set = None
        if options.with_specs:
            with_set = with_wheels(list(options.with_specs), target, cache, setup, progress)
            env.with_set = with_set  # cleaned up by close()
        recorder = _recorder_bytes()
        dockerfile = self._dockerfile(base, xy, lock, bool(with_set and with_set.wheels),
                                      (base_image.get("Config") or {}).get("User") or "")
        key = hashlib.sha256("\0".join([
            base_image["Id"], lock, machine, with_set.digest() if with_set else "", _sha256(recorder),
            _sha256(dockerfile.encode())]).encode()).hexdigest()[:16]
        tag = f"{ENV_REPO}:{key}"
        with locked(cache / "docker" / f"{key}.lock"):
            image = self._find_image(env.engine, tag)
            reused = image is not None
            if image is None:
                machine_ran = (bundle.manifest.get("platform") or {}).get("machine")
                try:
                    pins = pins_wheels(requirements(bundle), lock, target, cache, setup, progress,
                                       allow_urls=options.allow_urls)
                except EnvIncompatible as exc:
                    if machine_ran and machine_ran != machine:
                        raise EnvIncompatible(f"the bundle ran on {machine_ran}, the Docker daemon is {machine}, "
                                              f"and there is {exc.reason}") from None
                    raise
                image = self._build(env, tag, dockerfile, pins, with_set, recorder, setup=setup,
                                    progress=progress)
            else:
                progress(f"reusing image {tag}")
            env.hold = hold_in_use(cache / "docker" / f"{key}.lock")  # until close(): a prune leaves it
        env.tag, env.base_image, env.base_id, env.image_id = tag, base, base_image["Id"], image["Id"]
        env.machine, env.gpus, env.network, env.reused = machine, gpus, network, reused
        return env

    @staticmethod
    def _find_image(engine: Engine, tag: str) -> dict | None:
        try:
            return engine.image(tag)
        except (EngineError, OSError) as exc:
            raise InfraError(f"docker image inspect {tag} failed: {_one_line(exc)}") from None

    def _ensure_image(self, env: DockerEnv, image: str, xy: str, progress: Progress) -> dict:
        found = self._find_image(env.engine, image)
        if found is not None:
            return found
        progress(f"pulling {image}")
        reason = None
        try:
            from docker.utils import parse_repository_tag

            client = env.client
            repo, tag = parse_repository_tag(image)
            with _api_timeout(client, self.pull_timeout):
                # a stream: errors after the first byte (manifest unknown, ...) come inside it
                stream = client.api.pull(image if "@" in image else repo, tag=None if "@" in image else tag or "latest",
                                         stream=True, decode=True)
                deadline = time.monotonic() + self.pull_timeout
                last = None
                for chunk in stream:
                    if chunk.get("error"):
                        reason = chunk["error"]
                    status = chunk.get("status")
                    if status and status != last and not chunk.get("progressDetail"):
                        last = status
                        progress(f"pull: {status[:120]}")
                    if time.monotonic() > deadline:
                        reason = f"took longer than {self.pull_timeout:.0f}s"
                        break
            if reason is None:
                found = self._find_image(env.engine, image)
                if found is not None:
                    return found
                reason = "the pull reported success but the image is missing"
        except InfraError as exc:
            reason = exc.reason
        except Exception as exc:  # APIError, ImageNotFound, request timeouts
            reason = getattr(exc, "explanation", None) or _one_line(exc)
        raise InfraError(f"the image {image} is not available locally and pulling it failed "
                         f"({' '.join(str(reason).split())[:300]}); get it with `docker pull {image}` "
                         f"or pass --image with a local image that has Python {xy}")

    def _check_gpu(self, env: DockerEnv, base: str, gpus: str, bundle: Bundle, progress: Progress) -> None:
        """Fail before a long build: a tiny container with the same GPU request (and the
        host driver's version, for the CUDA compatibility check)."""
        engine = env.engine
        try:
            runtimes = engine.info().get("Runtimes") or {}
        except (EngineError, OSError, ValueError):
            runtimes = {}
        progress("checking GPU access" + ("" if "nvidia" in runtimes else " (no nvidia runtime registered)"))
        cid = None
        try:
            with shielded():  # a signal can't come between the daemon's create and our knowing its id
                cid = engine.create({
                    "Image": base, "Cmd": ["sh", "-c", "nvidia-smi --query-gpu=driver_version --format=csv,noheader "
                                                       "2>/dev/null | head -n 1 || true"],
                    "Env": ["NVIDIA_DRIVER_CAPABILITIES=compute,utility"],
                    "Labels": {LABEL: "1", f"{LABEL}.probe": "gpu"},
                    "HostConfig": {"NetworkMode": "none", "DeviceRequests": device_requests(gpus)}})
            stream = engine.attach(cid, timeout=60)
            try:
                engine.start(cid)
                driver = b"".join(data for name, data in stream.frames() if name == "stdout")
            finally:
                stream.close()
            driver = driver.decode("utf-8", "replace").strip()
        except EngineError as exc:
            problem = gpu_problem(exc)
            if problem is not None:
                raise problem from None
            raise InfraError(f"a GPU container could not start: {_one_line(exc)}") from None
        except Exception as exc:
            raise InfraError(f"checking GPU access failed: {_one_line(exc)}") from None
        finally:
            with shielded():
                if cid is not None:
                    with contextlib.suppress(Exception):
                        engine.remove(cid)
        cuda = bundle_cuda(bundle)
        if driver and driver_too_old(cuda, driver):
            raise EnvIncompatible(f"the bundle's build is for CUDA {cuda}, which needs NVIDIA driver >= "
                                  f"{min_driver(cuda)}; the Docker host's driver is {driver}")

    @staticmethod
    def _dockerfile(base: str, xy: str, lock: str, with_specs: bool, base_user: str = "") -> str:
        from reprex.templates import render_template

        # the only values spliced into the text: checked here, where they are spliced
        check_image_ref(base, "the base image")
        if not PYTHON_XY.fullmatch(xy) or not re.fullmatch(r"[0-9a-f]{16}", lock):
            raise InfraError(f"refusing to build: Python {xy!r:.40} or lock {lock!r:.40} is malformed")
        labels = " ".join(f"{k}={json.dumps(v)}" for k, v in {
            LABEL: "1", f"{LABEL}.base": base, f"{LABEL}.lock": lock, f"{LABEL}.python": xy}.items())
        as_root = base_user.split(":")[0] in ("", "root", "0")
        return render_template("Dockerfile.replay", base_image=base, python_xy=xy,
                               user_root="" if as_root else "USER root\n",
                               with_steps=WITH_STEPS if with_specs else "", labels=labels)

    def _build(self, env: DockerEnv, tag: str, dockerfile: str, pins: WheelSet, with_set: WheelSet | None,
               recorder: bytes, setup: Deadline, progress: Progress) -> dict:
        n_with = len(with_set.wheels) if with_set else 0
        progress(f"building {tag} ({len(pins.wheels)} wheels" + (f" + {n_with} --with" if n_with else "") + ")")
        context = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        with context:
            with tarfile.open(fileobj=context, mode="w") as tar:
                _add_bytes(tar, "Dockerfile", dockerfile.encode())
                _add_bytes(tar, "reprex/wheels/.keep", b"")
                for whl in pins.wheels:
                    _add_file(tar, f"reprex/wheels/{whl.name}", whl)
                _add_bytes(tar, "reprex/sitecustomize.py", recorder)
                for whl in (with_set.wheels if with_set else []):
                    _add_file(tar, f"with/{whl.name}", whl)
            size = context.tell()
            context.seek(0)
            output: list[str] = []
            error = None
            try:
                # REPREX_DOCKER_NO_CACHE=1: no layer reuse (a suspect cache; cold-build benchmarks)
                params = {"t": tag, "rm": True, "forcerm": True, "pull": False,
                          "nocache": os.environ.get("REPREX_DOCKER_NO_CACHE") == "1"}
                for chunk in env.engine.build(context, size, params, timeout=setup.left()):
                    if "error" in chunk:
                        error = " ".join(str(chunk.get("error")).split())
                    text = chunk.get("stream")
                    if text:
                        for line in _ANSI.sub("", text).splitlines():  # RUN's stderr comes in red
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
                error = _one_line(exc)
            except InfraError:
                raise
            except (socket.timeout, TimeoutError):
                raise setup.expired() from None
            except Exception as exc:  # connection trouble
                raise InfraError(f"building {tag} failed: {_one_line(exc)}") from None
        for marker in ("reprex-python-mismatch:", "reprex-no-python:", "reprex-no-venv:"):
            hit = next((l for l in reversed(output) if l.startswith(marker)), None)
            if hit and error:
                raise EnvIncompatible(hit[len(marker):].strip())
        if error:
            detail = next((l for l in reversed(output) if l.lower().startswith("error")), "")
            raise InfraError(f"building the replay image failed: {error}" + (f" ({detail[:300]})" if detail else ""))
        image = self._find_image(env.engine, tag)
        if image is None:
            raise InfraError(f"building {tag} reported success but the image is missing")
        return image

    # -- run ----------------------------------------------------------------------
    def container_config(self, env: DockerEnv, bundle: Bundle, options: ReplayOptions, indir: Path | None,
                         nonce: str) -> dict:
        environ = {**replay_environ(bundle), **options.pass_env, **base_environ("/tmp", PATH),
                   "PYTHONPATH": ":".join([INJECT, *replay_pythonpath(bundle, WORK_DIR)]),
                   "REPREX_RECORD_DIR": RECORD_DIR, "REPREX_RECORD_FACTS": "0", "PYTHONUNBUFFERED": "1",
                   "VIRTUAL_ENV": VENV}
        if env.gpus:
            environ["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
        elif options.gpus == "none":
            environ["CUDA_VISIBLE_DEVICES"] = ""
        labels = {LABEL: "1", f"{LABEL}.bundle": bundle_label(bundle)}
        if options.keep:
            labels[f"{LABEL}.keep"] = "1"
        memory = _bytes(self.mem_limit)
        host = {
            "NetworkMode": env.network, "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"],
            "PidsLimit": self.pids_limit_for(bundle), "Memory": memory, "MemorySwap": memory,
            "ShmSize": self.shm_size, "ReadonlyRootfs": True, "Init": env.init,
            "Tmpfs": {"/tmp": f"rw,exec,nosuid,nodev,size={self.tmpfs_size},mode=1777",
                      "/home/reprex": f"rw,nosuid,nodev,size=64m,uid={UID},gid={UID},mode=0700",
                      RECORD_DIR: f"rw,nosuid,nodev,noexec,size={self.record_size},uid={UID},gid={UID},mode=0700"},
            # the work files: a read-only bind mount of a host dir, or (a daemon on another
            # machine) an anonymous volume they are copied into, root-owned, before the start
            "Mounts": [{"Target": IN_DIR, "Source": str(indir), "Type": "bind", "ReadOnly": True} if indir else
                       {"Target": IN_DIR, "Type": "volume"}],
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "50m", "max-file": "1"}},
        }
        if env.gpus:
            host["DeviceRequests"] = device_requests(env.gpus)
        return {
            "Image": env.tag, "Cmd": ["sh", "-c", RUN_SCRIPT, "sh", nonce, str(watchdog_s(options)), f"{VENV}/bin/python",
                                      *entry_args(bundle)],
            "StopTimeout": 2,
            "Env": [f"{k}={v}" for k, v in environ.items()], "User": f"{UID}:{UID}", "WorkingDir": "/tmp",
            "Labels": labels, "AttachStdout": True, "AttachStderr": True, "OpenStdin": False, "Tty": False,
            "NetworkDisabled": env.network == "none", "HostConfig": host,
        }

    def run(self, env: DockerEnv, bundle: Bundle, options: ReplayOptions) -> RunOutput:
        from reprex.record import load_outcome

        engine = env.engine
        # checked and budgeted before anything is written
        files = {safe_member_name(rel): data for rel, data in work_files(bundle).items()}
        bind = inputs_mode(engine) == "bind"
        nonce = uuid.uuid4().hex
        name = f"reprex-{bundle_label(bundle)[:12]}-{nonce[:8]}"
        indir = recdir = cid = watchdog = None
        try:
            if bind:
                indir = Path(tempfile.mkdtemp(prefix="reprex-in-"))
                write_inputs(indir, files)
            recdir = Path(tempfile.mkdtemp(prefix="reprex-record-"))  # the host's copy of the record (0700)
            config = self.container_config(env, bundle, options, indir, nonce)
            try:
                with shielded():  # a signal can't come between the daemon's create and our knowing its id
                    cid = engine.create(config, name)
                    # a backstop outside the container, for when this process dies without cleaning up
                    watchdog = watch(engine, cid, watchdog_s(options) + WATCHDOG_MARGIN_S)
                if indir is None:
                    engine.put_archive(cid, IN_DIR, inputs_tar(files))
                stream = engine.attach(cid, timeout=30)
            except EngineError as exc:
                if exc.not_found:
                    raise InfraError(f"the environment image {env.tag} disappeared; replay again to rebuild it") from None
                raise InfraError(f"docker could not set up the container: {_one_line(exc)}") from None
            except (OSError, ValueError, http_errors()) as exc:
                raise InfraError(f"lost the Docker daemon creating the container: {_one_line(exc)}") from None
            out = RunStream(nonce)
            try:
                started = time.monotonic()
                try:
                    engine.start(cid)
                except EngineError as exc:
                    problem = gpu_problem(exc)
                    if problem is not None:
                        raise problem from None
                    raise InfraError(f"docker could not start the container: {_one_line(exc)}") from None
                except (OSError, ValueError, http_errors()) as exc:
                    raise InfraError(f"lost the Docker daemon starting the container: {_one_line(exc)}") from None
                timed_out = self._read(stream, out, engine, cid, started + options.timeout)
                duration = time.monotonic() - started
            finally:
                stream.close()
            out.finish()
            try:
                status = engine.wait(cid, timeout=self.grace_s)
            except (EngineError, OSError, ValueError, http_errors()) as exc:
                raise InfraError(f"docker wait failed: {_one_line(exc)}") from None
            facts = None
            for rec_name, data in out.record_files().items():
                if rec_name == "facts.json":
                    facts = data
                    continue
                with os.fdopen(os.open(recdir / rec_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
                    fh.write(data)
            tail = out.tail.text()
            outcome = load_outcome(recdir, status, timed_out=timed_out, duration_s=duration, output_tail=tail,
                                   signal_exit_codes=True)
            if facts and not outcome.facts:
                with contextlib.suppress(ValueError):
                    parsed = json.loads(facts)
                    outcome.facts = parsed if isinstance(parsed, dict) else {}
            logs = "".join(text for _, text in tail)
            if status == 137 and not timed_out:
                with contextlib.suppress(Exception):
                    if (engine.inspect(cid).get("State") or {}).get("OOMKilled"):
                        logs += f"\n[reprex] the container was killed for using more than {self.mem_limit} of memory\n"
            return RunOutput(outcome, logs)
        finally:
            with shielded():  # every path, a signal's included: the container and the temp dirs go
                self._cleanup(env, options, name, cid, indir, recdir)
                if watchdog is not None:
                    watchdog.done()

    @staticmethod
    def _cleanup(env: DockerEnv, options: ReplayOptions, name: str, cid: str | None, indir: Path | None,
                 recdir: Path | None) -> None:
        if options.keep and cid is not None:
            env.kept.append(name)
            env.progress(f"kept container {name} (inputs {indir or 'copied into it'}, record copied to {recdir}); "
                         f"remove it with `docker rm -f {name}`")
            return
        if cid is not None:
            with contextlib.suppress(Exception):
                env.engine.remove(cid)
        for path in (indir, recdir):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)

    def _read(self, stream: Stream, out: RunStream, engine: Engine, cid: str, deadline: float) -> bool:
        """Read the run's output and record until the container's streams close; True if it
        ran past the deadline. Then: a stack dump and the recorded process killed (the run
        script still writes the record), and if the container lingers `grace_s`, it is killed."""
        timed_out = killed = False
        while True:
            stream.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                for name, data in stream.frames():
                    out.feed(name, data)
                    if time.monotonic() > deadline:
                        raise socket.timeout()  # a program that never stops printing
                return timed_out
            except (socket.timeout, TimeoutError):
                if not timed_out:
                    timed_out = True
                    self._dump_and_kill(engine, cid)
                elif not killed:
                    killed = True
                    with contextlib.suppress(Exception):
                        engine.kill(cid)
                else:
                    raise InfraError(f"container {cid[:12]} did not stop after being killed") from None
                deadline = time.monotonic() + self.grace_s
            except (OSError, http_errors()) as exc:
                raise InfraError(f"lost the Docker daemon while the container ran: {_one_line(exc)}") from None

    @staticmethod
    def _dump_and_kill(engine: Engine, cid: str) -> None:
        """Inside the container (the record is on its tmpfs): SIGUSR1 to the process that
        claimed the record (faulthandler dumps every thread's stack), then SIGKILL to it, so
        the run script still writes the record. No claim or a refused exec: the container is
        killed from outside."""
        try:  # bounded as a whole: the program can hold the exec's stream open or feed it
            code, _ = engine.exec_run(cid, ["sh", "-c", DUMP_SCRIPT], user=f"{UID}:{UID}", timeout=10)
        except Exception:
            code = -1
        # 137: the run script's own `kill -KILL -1` took the dump script down once the killed
        # program let it go on: it did its job, and the record is on its way out
        if code not in (0, 137):
            with contextlib.suppress(Exception):
                engine.kill(cid)

    def pids_limit_for(self, bundle: Bundle) -> int:
        modules = (bundle.json("run.json", {}) or {}).get("modules") or []
        return self.pids_limit_ray if "ray" in modules else self.pids_limit

    # -- describe / close ------------------------------------------------------------
    def describe(self, env: DockerEnv) -> dict:
        return {"backend": "docker", "image": env.tag, "image_id": env.image_id, "base_image": env.base_image,
                "gpus": env.gpus, "network": env.network, "reused": env.reused,
                "platform": {"system": "Linux", "machine": env.machine}, "notes": list(env.notes)}

    def close(self, env: DockerEnv, options: ReplayOptions) -> None:
        with shielded():
            self._close(env)

    @staticmethod
    def _close(env: DockerEnv) -> None:
        if env.hold is not None:
            env.hold.close()
            env.hold = None
        if env.with_set is not None:
            env.with_set.cleanup()
        if env.sdk is not None:
            with contextlib.suppress(Exception):
                env.sdk.close()


def inputs_mode(engine: Engine) -> str:
    """How the work files reach the container: "bind" (a host dir, read-only) when the daemon
    is on this machine's unix socket, "copy" (the archive API into a volume) when it is
    reached over tcp, as docker:dind in CI is, and may not see our files.
    REPREX_DOCKER_INPUTS=bind|copy decides instead."""
    chosen = os.environ.get("REPREX_DOCKER_INPUTS", "").strip().lower()
    if chosen in ("bind", "copy"):
        return chosen
    if chosen:
        raise InfraError(f"REPREX_DOCKER_INPUTS={chosen!r}: use bind or copy")
    return "bind" if engine.host.startswith("unix://") else "copy"


def write_inputs(indir: Path, files: dict[str, bytes]) -> None:
    """The work files under indir, readable by the run's uid; a tree that can't be laid out
    (a file where a directory must go) is the bundle's fault, said in one line."""
    os.chmod(indir, 0o755)
    try:
        for rel, data in files.items():
            target = indir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(0o644)
    except OSError as exc:
        raise InfraError(f"refusing the bundle: its files/ can't be laid out as a directory tree "
                         f"({exc.strerror or type(exc).__name__}: {exc.filename and Path(exc.filename).name!r:.80})"
                         ) from None
    for root, dirs, _ in os.walk(indir):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)


def watchdog_s(options: ReplayOptions) -> int:
    """When the run script's watchdog ends the container: after the replay's own timeout
    handling had its chance."""
    return math.ceil(options.timeout or DEFAULT_TIMEOUT) + WATCHDOG_MARGIN_S


def inputs_tar(files: dict[str, bytes]) -> bytes:
    """The work files as a tar for the archive API: root-owned, files 0644, dirs 0755."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = sorted({"/".join(rel.split("/")[:i]) for rel in files for i in range(1, rel.count("/") + 1)})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for rel, data in sorted(files.items()):
            _add_bytes(tar, rel, data)
    return buf.getvalue()


def http_errors() -> type:
    import http.client

    return http.client.HTTPException


def _bytes(size: str | int) -> int:
    """'2g' -> bytes, as docker run --memory reads it."""
    from reprex.fsutil import parse_size

    try:
        return parse_size(size)
    except ValueError:
        raise InfraError(f"REPREX_DOCKER_MEMORY={size!r}: use a size like 2g or 512m") from None


def _recorder_bytes() -> bytes:
    from reprex.record import RECORDER_FILE

    return RECORDER_FILE.read_bytes()


def _age_s(stamp: str | int | None) -> float | None:
    """Seconds since a docker time stamp: RFC 3339 (nanoseconds) or Unix seconds; None if unset."""
    import datetime as dt

    if isinstance(stamp, (int, float)):
        return time.time() - stamp if stamp > 0 else None
    if not stamp or stamp.startswith("0001-"):
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", stamp)
    if not m:
        return None
    when = dt.datetime.fromisoformat(m.group(1) + "." + (m.group(2) or "0")[:6].ljust(6, "0")
                                     + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return (dt.datetime.now(dt.timezone.utc) - when).total_seconds()


def sweep(engine: Engine | None = None, *, min_age_s: float = 60.0, include_kept: bool = False,
          labels: list[str] | None = None) -> int:
    """Remove stopped containers labelled org.reprex=1 (and `labels`, "key=value" each):
    leftovers of interrupted replays.

    Only containers that finished (or were created and never started) at least `min_age_s`
    ago, so a replay running beside us (pytest-xdist) keeps the container it is reading;
    containers kept with --keep stay unless include_kept. Returns how many were removed."""
    own = engine is None
    if own:
        engine = connect()
    removed = 0
    for summary in engine.containers(labels=[f"{LABEL}=1", *(labels or [])]):
        if summary.get("State") not in ("exited", "dead", "created"):
            continue
        if not include_kept and (summary.get("Labels") or {}).get(f"{LABEL}.keep") == "1":
            continue
        try:
            state = engine.inspect(summary["Id"]).get("State") or {}
        except EngineError as exc:
            if exc.not_found:
                continue
            raise
        age = _age_s(state.get("FinishedAt")) if summary.get("State") != "created" else None
        if age is None:
            age = _age_s(summary.get("Created"))
        if age is not None and age < min_age_s:
            continue
        try:
            engine.remove(summary["Id"])
            removed += 1
        except EngineError as exc:
            if not exc.not_found:
                raise
    return removed
