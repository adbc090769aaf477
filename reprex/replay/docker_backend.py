"""The docker backend: one environment image per (base image, lock hash), runs that change nothing.

prepare(): find the daemon like the docker CLI does, pick the base image (`--image`, else
`python:X.Y-slim`; GPU bundles get a device request; an `nvidia/cuda` runtime image only when
the run loaded the system's CUDA libraries), download the pins' wheels ON THE HOST with the
host's pip configuration, and build `reprex-env:<hash>` from templates/Dockerfile.replay with
an in-memory build context. The image is reused while its inputs match: a warm replay is one
`docker run`.

run(): a hermetic container: no network (unless the bundle needs one), non-root uid 10001,
all capabilities dropped, no-new-privileges, pids/memory limits, read-only root with a tmpfs
/tmp, docker's init so signals and crashes behave like on a host; the work files mounted
read-only and copied to a scratch dir; the recorder injected via PYTHONPATH writes into
/reprex/record, an anonymous docker volume (no host directory the program could plant
FIFOs, links or huge files in): after the run the host copies out only the regular files
events.jsonl, fault.log and claim, each size-capped, through the archive API, and reads
them with the same load_outcome() as capture. Never the host's environment. The container
(and its volume) is removed in `finally` (never auto_remove).

The bundle's requirements are checked before anything else (wheels.check_bundle_requirements)
and downloaded binary-only: nothing from a bundle is built or run on the host.

`docker` (the SDK) is imported lazily: importing reprex.replay or the CLI never needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from reprex.bundle import Bundle, safe_member_name
from reprex.replay.base import (EnvIncompatible, InfraError, Progress, ReplayOptions, RunOutput, base_environ,
                                entry_args, lock_hash, needs_gpu, python_xy, replay_environ, replay_pythonpath,
                                requirements,
                                work_files)
from reprex.replay.wheels import (Target, WheelSet, check_bundle_requirements, pins_wheels, uname_machine,
                                  with_wheels)

DEFAULT_HOST = "unix:///var/run/docker.sock"
PING_TIMEOUT = 5.0
API_TIMEOUT = 120.0
ENV_REPO = "reprex-env"
LABEL = "org.reprex"
VENV = "/opt/reprex/venv"
INJECT = "/opt/reprex/inject"
IN_DIR = "/reprex/in"
RECORD_DIR = "/reprex/record"
WORK_DIR = "/tmp/work"
UID = 10001
PATH = f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin"
# The work files are copied from the read-only input mount to a scratch dir, then the
# entry is exec'd so the Python process is the init's direct child (signals reach it).
RUN_SCRIPT = f'mkdir -p {WORK_DIR} /tmp/tmp && cp -R {IN_DIR}/. {WORK_DIR}/ && cd {WORK_DIR} && exec "$@"'
TAIL_BYTES = 64 * 1024
# What the host reads back of the record dir (the program can write there too): these
# names, regular files only, at most this many bytes of each.
RECORD_FILES = {"events.jsonl": 32 << 20, "fault.log": 16 << 20, "claim": 64}
# Go's os.FileMode type bits (dir, symlink, device, named pipe, socket, char device, irregular),
# as in the archive API's X-Docker-Container-Path-Stat header.
_GO_MODE_TYPE = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)
# Dockerfile.replay's ${with_steps}: `--with` wheels over the pins (a layer of their own, so
# the pinned layers below stay shared with the plain image).
WITH_STEPS = (f"COPY with/ /tmp/reprex/with/\n"
              f"RUN {VENV}/bin/python -m pip install --no-index --no-deps --force-reinstall --no-cache-dir "
              f"--disable-pip-version-check --no-warn-script-location /tmp/reprex/with/*.whl "
              f"&& rm -rf /tmp/reprex && chmod -R a+rX /opt/reprex\n")
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


def connect(timeout: float = PING_TIMEOUT):
    """A docker client for the daemon the CLI would use, pinged; InfraError when none answers."""
    try:
        import docker
    except ImportError:
        raise InfraError("the docker backend needs the `docker` Python package (pip install docker); "
                         "or use --backend local") from None
    ep = daemon_endpoint()
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
        client = docker.DockerClient(base_url=ep.host, version="auto", timeout=timeout, **kwargs)
        client.ping()
    except Exception as exc:  # DockerException, requests errors, TLS trouble
        raise InfraError(f"no Docker daemon reachable at {ep.host} ({ep.source}): {_one_line(exc)}; "
                         "start dockerd or use --backend local") from None
    client.api.timeout = API_TIMEOUT
    if ep.host.startswith(("unix://", "npipe://")):
        client.api.trust_env = False  # no proxy for a local socket: skips an os.environ scan per request
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


def resolve_gpus(bundle: Bundle, options: ReplayOptions) -> str | None:
    """None (no GPU) | "all" | "N"."""
    if options.gpus == "none":
        return None
    if options.gpus:
        return options.gpus
    return "all" if needs_gpu(bundle) else None


def device_requests(gpus: str | None) -> list:
    if not gpus:
        return []
    from docker.types import DeviceRequest

    count = -1 if gpus == "all" else int(gpus)
    return [DeviceRequest(count=count, capabilities=[["gpu"]])]


def gpu_problem(exc: BaseException) -> EnvIncompatible | None:
    if GPU_DRIVER_ERROR in str(exc):
        return EnvIncompatible(NO_GPU_RUNTIME)
    return None


# -- logs ---------------------------------------------------------------------------

_TS = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d) ")


def _entries(raw: bytes, stream: str) -> list[tuple[tuple, int, str, bytes]]:
    out = []
    for i, line in enumerate(raw.splitlines(keepends=True)):
        m = _TS.match(line)
        if m:
            key = (m.group(1), (m.group(2) or b"").ljust(9, b"0")[:9], m.group(3))
            out.append((key, i, stream, line[m.end():]))
        elif out:  # a continuation without its own timestamp
            key, _, _, data = out[-1]
            out[-1] = (key, out[-1][1], stream, data + line)
        else:
            out.append(((b"", b"", b""), i, stream, line))
    return out


def merge_logs(stdout: bytes, stderr: bytes, limit: int = TAIL_BYTES) -> list[list[str]]:
    """`docker logs --timestamps` of both streams -> [[stream, text], ...] in the order written,
    adjacent chunks of one stream joined, only the last `limit` bytes kept."""
    merged = heapq.merge(_entries(stdout, "stdout"), _entries(stderr, "stderr"), key=lambda e: e[0])
    chunks: list[list] = []
    for _, _, stream, data in merged:
        if chunks and chunks[-1][0] == stream:
            chunks[-1][1] += data
        else:
            chunks.append([stream, bytearray(data)])
    total = sum(len(c[1]) for c in chunks)
    while total > limit and chunks:
        excess = total - limit
        if len(chunks[0][1]) <= excess:
            total -= len(chunks.pop(0)[1])
        else:
            del chunks[0][1][:excess]
            total -= excess
    return [[s, bytes(b).decode("utf-8", "replace")] for s, b in chunks]


# -- the backend ----------------------------------------------------------------------

@dataclass
class DockerEnv:
    client: object
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


class DockerBackend:
    name = "docker"
    mem_limit = os.environ.get("REPREX_DOCKER_MEMORY", "2g")
    pids_limit = 256
    # A minimal local Ray cluster (num_cpus=2) is ~11 processes and ~200 threads, and threads
    # count against the pids limit: bundles whose run imported ray get more room.
    pids_limit_ray = 4096
    shm_size = "1g"
    tmpfs_size = "1g"
    pull_timeout = float(os.environ.get("REPREX_PULL_TIMEOUT", "120"))

    # -- prepare ------------------------------------------------------------------
    def prepare(self, bundle: Bundle, options: ReplayOptions, progress: Progress) -> DockerEnv:
        check_bundle_requirements(requirements(bundle))  # a refused line: before anything runs
        client = connect()
        try:
            return self._prepare(client, bundle, options, progress)
        except BaseException:
            client.close()
            raise

    def _prepare(self, client, bundle: Bundle, options: ReplayOptions, progress: Progress) -> DockerEnv:
        import docker.errors

        xy = python_xy(bundle)
        try:
            info = client.info()
        except docker.errors.DockerException as exc:
            raise InfraError(f"docker info failed: {_one_line(exc)}") from None
        machine = uname_machine(info.get("Architecture")) or "x86_64"
        gpus = resolve_gpus(bundle, options)
        base = choose_image(bundle, options, gpus)
        base_image = self._ensure_image(client, base, xy, progress)
        if gpus:
            self._check_gpu(client, info, base, gpus, bundle, progress)
        network = options.network or ("bridge" if bundle.manifest.get("network") else "none")

        lock = lock_hash(bundle)
        target = Target(xy, machine, images_table()["cpu"].get("glibc", "2.36"))
        from reprex.replay.local import _locked, cache_root

        cache = cache_root()
        with_set = None
        try:
            if options.with_specs:
                with_set = with_wheels(list(options.with_specs), target, cache, options.setup_timeout, progress)
            recorder = _recorder_bytes()
            dockerfile = self._dockerfile(base, xy, lock, bool(with_set and with_set.wheels))
            key = hashlib.sha256("\0".join([
                base_image.id, lock, machine, with_set.digest() if with_set else "", _sha256(recorder),
                _sha256(dockerfile.encode())]).encode()).hexdigest()[:16]
            tag = f"{ENV_REPO}:{key}"
            with _locked(cache / "docker" / f"{key}.lock"):
                image = self._find_image(client, tag)
                reused = image is not None
                if image is None:
                    machine_ran = (bundle.manifest.get("platform") or {}).get("machine")
                    try:
                        pins = pins_wheels(requirements(bundle), lock, target, cache, options.setup_timeout, progress)
                    except EnvIncompatible as exc:
                        if machine_ran and machine_ran != machine:
                            raise EnvIncompatible(f"the bundle ran on {machine_ran}, the Docker daemon is {machine}, "
                                                  f"and there is {exc.reason}") from None
                        raise
                    image = self._build(client, tag, dockerfile, pins, with_set, recorder, options=options,
                                        progress=progress)
                else:
                    progress(f"reusing image {tag}")
        except BaseException:
            if with_set is not None:
                with_set.cleanup()
            raise
        return DockerEnv(client=client, tag=tag, base_image=base, base_id=base_image.id, image_id=image.id,
                         machine=machine, gpus=gpus, network=network, reused=reused, progress=progress,
                         with_set=with_set, init=bool(info.get("InitBinary", "docker-init")))

    @staticmethod
    def _find_image(client, tag: str):
        import docker.errors

        try:
            return client.images.get(tag)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.DockerException as exc:
            raise InfraError(f"docker image inspect {tag} failed: {_one_line(exc)}") from None

    def _ensure_image(self, client, image: str, xy: str, progress: Progress):
        from docker.utils import parse_repository_tag

        found = self._find_image(client, image)
        if found is not None:
            return found
        progress(f"pulling {image}")
        repo, tag = parse_repository_tag(image)
        reason = None
        try:
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
                return client.images.get(image)
        except Exception as exc:  # APIError, ImageNotFound, request timeouts
            reason = getattr(exc, "explanation", None) or _one_line(exc)
        raise InfraError(f"the image {image} is not available locally and pulling it failed "
                         f"({' '.join(str(reason).split())[:300]}); get it with `docker pull {image}` "
                         f"or pass --image with a local image that has Python {xy}")

    def _check_gpu(self, client, info: dict, base: str, gpus: str, bundle: Bundle, progress: Progress) -> None:
        """Fail before a long build: a tiny container with the same GPU request (and the
        host driver's version, for the CUDA compatibility check)."""
        import docker.errors

        runtimes = info.get("Runtimes") or {}
        progress("checking GPU access" + ("" if "nvidia" in runtimes else " (no nvidia runtime registered)"))
        container = None
        try:
            container = client.containers.create(
                base, ["sh", "-c", "nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null "
                                   "| head -n 1 || true"],
                device_requests=device_requests(gpus), network_mode="none",
                environment={"NVIDIA_DRIVER_CAPABILITIES": "compute,utility"},
                labels={LABEL: "1", f"{LABEL}.probe": "gpu"})
            container.start()
            container.wait(timeout=60)
            driver = container.logs(stdout=True, stderr=False).decode("utf-8", "replace").strip()
        except docker.errors.APIError as exc:
            problem = gpu_problem(exc)
            if problem is not None:
                raise problem from None
            raise InfraError(f"a GPU container could not start: {_one_line(exc)}") from None
        except Exception as exc:
            raise InfraError(f"checking GPU access failed: {_one_line(exc)}") from None
        finally:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.remove(force=True)
        cuda = bundle_cuda(bundle)
        if driver and driver_too_old(cuda, driver):
            raise EnvIncompatible(f"the bundle's build is for CUDA {cuda}, which needs NVIDIA driver >= "
                                  f"{min_driver(cuda)}; the Docker host's driver is {driver}")

    @staticmethod
    def _dockerfile(base: str, xy: str, lock: str, with_specs: bool) -> str:
        from reprex.templates import render_template

        labels = " ".join(f"{k}={json.dumps(v)}" for k, v in {
            LABEL: "1", f"{LABEL}.base": base, f"{LABEL}.lock": lock, f"{LABEL}.python": xy}.items())
        return render_template("Dockerfile.replay", base_image=base, python_xy=xy,
                               with_steps=WITH_STEPS if with_specs else "", labels=labels)

    def _build(self, client, tag: str, dockerfile: str, pins: WheelSet, with_set: WheelSet | None, recorder: bytes,
               options: ReplayOptions, progress: Progress):
        import docker.errors

        n_with = len(with_set.wheels) if with_set else 0
        progress(f"building {tag} ({len(pins.wheels)} wheels" + (f" + {n_with} --with" if n_with else "") + ")")
        context = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        with context:
            with tarfile.open(fileobj=context, mode="w") as tar:
                _add_bytes(tar, "Dockerfile", dockerfile.encode())
                _add_bytes(tar, "wheels/.keep", b"")
                for whl in pins.wheels:
                    _add_file(tar, f"wheels/{whl.name}", whl)
                for whl in (with_set.wheels if with_set else []):
                    _add_file(tar, f"with/{whl.name}", whl)
                _add_bytes(tar, "sitecustomize.py", recorder)
            context.seek(0)
            deadline = time.monotonic() + options.setup_timeout
            output: list[str] = []
            error = None
            try:
                with _api_timeout(client, options.setup_timeout):
                    # REPREX_DOCKER_NO_CACHE=1: no layer reuse (a suspect cache; cold-build benchmarks)
                    stream = client.api.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True,
                                              pull=False, decode=True,
                                              nocache=os.environ.get("REPREX_DOCKER_NO_CACHE") == "1")
                    for chunk in stream:
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
                        if time.monotonic() > deadline:
                            raise InfraError(f"building {tag} took longer than {options.setup_timeout:.0f}s")
            except docker.errors.DockerException as exc:
                error = _one_line(exc)
            except InfraError:
                raise
            except Exception as exc:  # requests timeouts and connection trouble
                raise InfraError(f"building {tag} failed: {_one_line(exc)}") from None
        for marker in ("reprex-python-mismatch:", "reprex-no-python:", "reprex-no-venv:"):
            hit = next((l for l in reversed(output) if l.startswith(marker)), None)
            if hit and error:
                raise EnvIncompatible(hit[len(marker):].strip())
        if error:
            detail = next((l for l in reversed(output) if l.lower().startswith("error")), "")
            raise InfraError(f"building the replay image failed: {error}" + (f" ({detail[:300]})" if detail else ""))
        image = self._find_image(client, tag)
        if image is None:
            raise InfraError(f"building {tag} reported success but the image is missing")
        return image

    # -- run ----------------------------------------------------------------------
    def run(self, env: DockerEnv, bundle: Bundle, options: ReplayOptions) -> RunOutput:
        import docker.errors
        from docker.types import LogConfig, Mount

        from reprex.record import load_outcome

        indir = Path(tempfile.mkdtemp(prefix="reprex-in-"))
        recdir = Path(tempfile.mkdtemp(prefix="reprex-record-"))  # the host's copy of the record (0700)
        os.chmod(indir, 0o755)
        for rel, data in work_files(bundle).items():
            target = indir / safe_member_name(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(0o644)
        for root, dirs, _ in os.walk(indir):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)

        environ = {**replay_environ(bundle), **base_environ("/tmp", PATH),
                   "PYTHONPATH": ":".join([INJECT, *replay_pythonpath(bundle, WORK_DIR)]),
                   "REPREX_RECORD_DIR": RECORD_DIR, "PYTHONUNBUFFERED": "1",
                   "VIRTUAL_ENV": VENV}
        if env.gpus:
            environ["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
        elif options.gpus == "none":
            environ["CUDA_VISIBLE_DEVICES"] = ""
        name = f"reprex-{bundle.id[:12]}-{uuid.uuid4().hex[:8]}"
        labels = {LABEL: "1", f"{LABEL}.bundle": bundle.id}
        if options.keep:
            labels[f"{LABEL}.keep"] = "1"
        tmpfs_opts = f"rw,exec,nosuid,nodev,size={self.tmpfs_size},mode=1777"
        kwargs = dict(
            image=env.tag,
            command=["sh", "-c", RUN_SCRIPT, "sh", f"{VENV}/bin/python", *entry_args(bundle)],
            name=name, labels=labels, environment=environ, user=f"{UID}:{UID}", working_dir="/tmp",
            network_mode=env.network, cap_drop=["ALL"], security_opt=["no-new-privileges"],
            pids_limit=self.pids_limit_for(bundle), mem_limit=self.mem_limit, memswap_limit=self.mem_limit,
            shm_size=self.shm_size, read_only=True,
            tmpfs={"/tmp": tmpfs_opts, "/home/reprex": f"rw,nosuid,nodev,size=64m,uid={UID},gid={UID},mode=0700"},
            # The record dir: an anonymous volume (owned by uid 10001 through the image's
            # /reprex/record), removed with the container; never a host directory.
            mounts=[Mount(IN_DIR, str(indir), type="bind", read_only=True),
                    Mount(RECORD_DIR, None, type="volume")],
            init=env.init, stdin_open=False, tty=False, detach=True,
            log_config=LogConfig(type="json-file", config={"max-size": "50m", "max-file": "1"}),
            device_requests=device_requests(env.gpus) or None,
        )
        container = None
        try:
            try:
                container = env.client.containers.create(**kwargs)
            except docker.errors.ImageNotFound:
                raise InfraError(f"the environment image {env.tag} disappeared; replay again to rebuild it") from None
            except docker.errors.APIError as exc:
                raise InfraError(f"docker could not create the container: {_one_line(exc)}") from None
            started = time.monotonic()
            try:
                container.start()
            except docker.errors.APIError as exc:
                problem = gpu_problem(exc)
                if problem is not None:
                    raise problem from None
                raise InfraError(f"docker could not start the container: {_one_line(exc)}") from None
            timed_out = False
            try:
                status = self._wait(container, options.timeout)
            except _WaitTimeout:
                timed_out = True
                self._dump_and_kill(container)
                try:
                    status = self._wait(container, 30)
                except _WaitTimeout:
                    raise InfraError(f"container {name} did not stop after being killed") from None
            duration = time.monotonic() - started
            try:
                out = container.logs(stdout=True, stderr=False, timestamps=True)
                err = container.logs(stdout=False, stderr=True, timestamps=True)
            except docker.errors.DockerException as exc:
                raise InfraError(f"docker logs failed: {_one_line(exc)}") from None
            tail = merge_logs(out, err)
            copy_record(container, recdir)
            outcome = load_outcome(recdir, status, timed_out=timed_out, duration_s=duration, output_tail=tail,
                                   signal_exit_codes=True)
            logs = "".join(text for _, text in tail)
            if status == 137 and not timed_out:
                with contextlib.suppress(Exception):
                    container.reload()
                    if (container.attrs.get("State") or {}).get("OOMKilled"):
                        logs += f"\n[reprex] the container was killed for using more than {self.mem_limit} of memory\n"
            return RunOutput(outcome, logs)
        finally:
            if options.keep:
                if container is not None:
                    env.kept.append(name)
                    env.progress(f"kept container {name} (inputs {indir}, record copied to {recdir}); "
                                 f"remove it with `docker rm -f -v {name}`")
            else:
                if container is not None:
                    with contextlib.suppress(Exception):
                        container.remove(force=True, v=True)  # v: its anonymous record volume too
                shutil.rmtree(indir, ignore_errors=True)
                shutil.rmtree(recdir, ignore_errors=True)

    def pids_limit_for(self, bundle: Bundle) -> int:
        modules = (bundle.json("run.json", {}) or {}).get("modules") or []
        return self.pids_limit_ray if "ray" in modules else self.pids_limit

    @staticmethod
    def _wait(container, timeout: float) -> int:
        import docker.errors
        import requests.exceptions

        deadline = time.monotonic() + timeout
        try:
            result = container.wait(timeout=max(1, timeout))
        except requests.exceptions.RequestException as exc:
            if time.monotonic() >= deadline - 0.5:
                raise _WaitTimeout() from None
            raise InfraError(f"lost the Docker daemon while waiting for the container: {_one_line(exc)}") from None
        except docker.errors.DockerException as exc:
            raise InfraError(f"docker wait failed: {_one_line(exc)}") from None
        return int(result.get("StatusCode", -1))

    @staticmethod
    def _dump_and_kill(container) -> None:
        """Ask the recorded process for a stack dump (SIGUSR1 -> faulthandler), then kill.

        docker's init (tini) forwards SIGUSR1 to its child, which is the exec'd Python; if no
        dump lands (a launcher whose child is the recorded process), signal the pid the
        recorder claimed from inside the container. The record is looked at through the
        archive API (sizes, the small claim file), never through a host directory."""

        def size() -> int:
            stat = _record_stat(container, "fault.log")
            return int(stat.get("size") or 0) if stat else 0

        def dumped(before: int, wait: float) -> bool:
            end = time.monotonic() + wait
            while time.monotonic() < end:
                if size() > before:
                    time.sleep(0.1)  # let faulthandler finish writing
                    return True
                time.sleep(0.05)
            return False

        before = size()
        with contextlib.suppress(Exception):
            container.kill(signal="SIGUSR1")
        if not dumped(before, 1.0):
            try:
                pid = int((read_record_file(container, "claim") or b"").decode("ascii").strip())
            except (UnicodeDecodeError, ValueError):
                pid = None
            if pid and pid > 0:
                with contextlib.suppress(Exception):
                    container.exec_run(["sh", "-c", f"kill -USR1 {pid}"], user=f"{UID}:{UID}")
                    dumped(before, 1.0)
        with contextlib.suppress(Exception):
            container.kill()

    # -- describe / close ------------------------------------------------------------
    def describe(self, env: DockerEnv) -> dict:
        return {"backend": "docker", "image": env.tag, "image_id": env.image_id, "base_image": env.base_image,
                "gpus": env.gpus, "network": env.network, "reused": env.reused,
                "platform": {"system": "Linux", "machine": env.machine}}

    def close(self, env: DockerEnv, options: ReplayOptions) -> None:
        if env.with_set is not None:
            env.with_set.cleanup()
        with contextlib.suppress(Exception):
            env.client.close()


class _WaitTimeout(Exception):
    pass


# -- reading the record back ---------------------------------------------------------------

class _Capped(io.RawIOBase):
    """At most `limit` bytes of `raw`, then end of file."""

    def __init__(self, raw, limit: int):
        self.raw, self.left = raw, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.left <= 0:
            return 0
        data = self.raw.read(min(len(buf), self.left, 1 << 20))
        if not data:
            return 0
        buf[:len(data)] = data
        self.left -= len(data)
        return len(data)


def _archive_response(container, path: str, method: str = "get"):
    api = container.client.api
    url = api._url("/containers/{0}/archive", container.id)
    if method == "head":
        return api.head(url, params={"path": path}, timeout=30)
    return api._get(url, params={"path": path}, stream=True, headers={"Accept-Encoding": "identity"})


def _path_stat(res) -> dict | None:
    from docker.utils import decode_json_header

    raw = res.headers.get("X-Docker-Container-Path-Stat")
    if res.status_code != 200 or not raw:
        return None
    try:
        stat = decode_json_header(raw)
    except Exception:
        return None
    return stat if isinstance(stat, dict) else None


def _record_stat(container, name: str) -> dict | None:
    """The archive API's stat of RECORD_DIR/name (no content read), None if absent."""
    try:
        res = _archive_response(container, f"{RECORD_DIR}/{name}", "head")
    except Exception:
        return None
    try:
        return _path_stat(res)
    finally:
        res.close()


def read_record_file(container, name: str) -> bytes | None:
    """RECORD_DIR/name from the container (running or stopped) if it is a regular file: at
    most RECORD_FILES[name] bytes of it. A link, FIFO, directory or device gives None:
    the archive API reports its type before any content is read, and dockerd's tar never
    reads a FIFO or follows a link."""
    limit = RECORD_FILES[name]
    try:
        res = _archive_response(container, f"{RECORD_DIR}/{name}")
    except Exception:
        return None
    try:
        stat = _path_stat(res)
        if stat is None or int(stat.get("mode") or 0) & _GO_MODE_TYPE:
            return None
        # the tar: headers (a pax one at most a few KiB) + the content, cut at the cap
        with tarfile.open(fileobj=io.BufferedReader(_Capped(res.raw, limit + (1 << 20))), mode="r|") as tar:
            member = tar.next()
            if member is None or not member.isreg() or member.name != name:
                return None
            fh = tar.extractfile(member)
            return fh.read(min(limit, member.size)) if fh is not None else None
    except Exception:  # a cut or odd tar, connection trouble: no such record file
        return None
    finally:
        res.close()


def copy_record(container, recdir: Path) -> None:
    """The record's files into recdir (a fresh host dir of ours), from one archive of
    RECORD_DIR: regular files named in RECORD_FILES only, each capped, and the whole stream
    cut at their caps' sum (+4 MiB for headers and what else lies there). Links, FIFOs and
    anything else the program left there never reach the host; a program that buries its
    own record under junk loses the record, not the host's time or memory."""
    top = RECORD_DIR.rsplit("/", 1)[1]
    try:
        res = _archive_response(container, RECORD_DIR)
    except Exception:
        return
    try:
        if res.status_code != 200:
            return
        budget = sum(RECORD_FILES.values()) + (4 << 20)
        with tarfile.open(fileobj=io.BufferedReader(_Capped(res.raw, budget)), mode="r|") as tar:
            for member in tar:
                parts = member.name.split("/")
                if len(parts) != 2 or parts[0] != top or parts[1] not in RECORD_FILES or not member.isreg():
                    continue
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                data = fh.read(min(RECORD_FILES[parts[1]], member.size))
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                with os.fdopen(os.open(recdir / parts[1], flags, 0o600), "wb") as out:
                    out.write(data)
    except Exception:  # a stream cut at the budget, an odd one, connection trouble: keep what was read
        pass
    finally:
        res.close()


def _recorder_bytes() -> bytes:
    from reprex.record import RECORDER_FILE

    return RECORDER_FILE.read_bytes()


def _age_s(stamp: str | None) -> float | None:
    """Seconds since a docker RFC 3339 (nanosecond) time stamp; None if unset/unparsable."""
    import datetime as dt

    if not stamp or stamp.startswith("0001-"):
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", stamp)
    if not m:
        return None
    when = dt.datetime.fromisoformat(m.group(1) + "." + (m.group(2) or "0")[:6].ljust(6, "0")
                                     + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return (dt.datetime.now(dt.timezone.utc) - when).total_seconds()


def sweep(client=None, *, min_age_s: float = 60.0, include_kept: bool = False) -> int:
    """Remove stopped containers labelled org.reprex=1: leftovers of interrupted replays.

    Only containers that finished (or were created and never started) at least `min_age_s`
    ago, so a replay running beside us (pytest-xdist) keeps the container it is reading;
    containers kept with --keep stay unless include_kept. Returns how many were removed."""
    import docker.errors

    own = client is None
    if own:
        client = connect()
    removed = 0
    try:
        for container in client.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
            state = container.attrs.get("State") or {}
            status = state.get("Status") or container.status
            if status not in ("exited", "dead", "created"):
                continue
            if not include_kept and (container.labels or {}).get(f"{LABEL}.keep") == "1":
                continue
            age = _age_s(state.get("FinishedAt")) if status != "created" else None
            if age is None:
                age = _age_s(container.attrs.get("Created"))
            if age is not None and age < min_age_s:
                continue
            try:
                container.remove(force=True, v=True)
                removed += 1
            except docker.errors.NotFound:
                pass
    finally:
        if own:
            client.close()
    return removed
