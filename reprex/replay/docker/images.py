"""Which image a replay starts from, and getting it: the image table (reprex/templates/images.json),
the CUDA/driver choice for GPU bundles, the user's GPU grant, pulling a missing base image, and
the GPU check that fails before a long build.

Data, not code, decides the images: edit images.json (read with reprex.templates.template_text).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from functools import lru_cache
from typing import TYPE_CHECKING

from reprex.bundle import Bundle
from reprex.replay.base import EnvIncompatible, InfraError, Progress, ReplayOptions, needs_gpu, python_xy
from reprex.replay.docker.daemon import api_timeout, one_line
from reprex.replay.docker.engine import Engine, EngineError
from reprex.replay.docker.layout import LABEL
from reprex.interrupt import shielded
from reprex.replay.target import uname_machine

if TYPE_CHECKING:
    from reprex.replay.docker.env import DockerEnv

# What may name a base image (the build's, messages): an image reference.
IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}")
GPU_DRIVER_ERROR = "could not select device driver"
NO_GPU_RUNTIME = ("GPU requested but the Docker daemon has no NVIDIA runtime: install the NVIDIA Container Toolkit "
                  "(nvidia-ctk runtime configure --runtime=docker) and restart dockerd")


@lru_cache(maxsize=1)
def images_table() -> dict:
    from reprex.templates import template_text

    return json.loads(template_text("images.json"))


def version_tuple(text) -> tuple[int, ...] | None:
    """'12.1.1' -> (12, 1, 1); None when there is no number in it."""
    parts = re.findall(r"\d+", str(text or ""))
    return tuple(int(p) for p in parts) if parts else None


def min_driver(torch_cuda: str | None) -> str | None:
    """The oldest NVIDIA driver that can run a build for CUDA `torch_cuda` (None: unknown)."""
    version = version_tuple(torch_cuda)
    if not version:
        return None
    table = images_table()["cuda_driver"]
    if version[0] >= 11:
        return table["minor_compat_minimum"].get(str(version[0]))
    return table["toolkit_driver"].get(".".join(str(v) for v in version[:2]))


def driver_too_old(torch_cuda: str | None, driver_version: str | None) -> bool:
    """True when a host driver `driver_version` cannot run a CUDA `torch_cuda` build.

    From CUDA 11 on, minor version compatibility lets a build run on any driver of at least
    the major family's minimum (NVIDIA's table, in reprex/templates/images.json); unknowns -> False.
    """
    need = version_tuple(min_driver(torch_cuda))
    have = version_tuple(driver_version)
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
    """The nvidia/cuda runtime image for system CUDA X.Y: that version, else the newest older one of its major."""
    images = images_table()["gpu"]["system_cuda"]["images"]
    want = version_tuple(version)
    if not want:
        return None
    if f"{want[0]}.{want[1] if len(want) > 1 else 0}" in images:
        return images[f"{want[0]}.{want[1] if len(want) > 1 else 0}"]
    same_major = [(v, img) for v, img in images.items() if version_tuple(v)[0] == want[0]
                  and version_tuple(v) <= want]
    return max(same_major, key=lambda item: version_tuple(item[0]))[1] if same_major else None


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
    """An image reference as the build and its messages may hold it."""
    if not isinstance(image, str) or not IMAGE_REF.fullmatch(image) or "//" in image:
        raise InfraError(f"{what} {image!r:.120}: not an image reference")
    return image


def device_requests(gpus: str | None) -> list[dict]:
    """The API's HostConfig.DeviceRequests for `--gpus all|N` (docker run --gpus)."""
    if not gpus:
        return []
    count = -1 if gpus == "all" else int(gpus)
    return [{"Driver": "", "Count": count, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}}]


def gpu_problem(exc: BaseException) -> EnvIncompatible | None:
    """A daemon error that means "no GPU runtime here" as the env-incompatible it is."""
    if GPU_DRIVER_ERROR in str(exc):
        return EnvIncompatible(NO_GPU_RUNTIME)
    return None


def image_machine(image: dict) -> str | None:
    """The architecture an image's containers run as (uname -m spelling), or None."""
    return uname_machine(image.get("Architecture")) or None


# -- getting the image -------------------------------------------------------------------

def find_image(engine: Engine, tag: str) -> dict | None:
    """The image's inspect data, None when the daemon has no such image."""
    try:
        return engine.image(tag)
    except (EngineError, OSError) as exc:
        raise InfraError(f"docker image inspect {tag} failed: {one_line(exc)}") from None


def ensure_image(env: DockerEnv, image: str, xy: str, progress: Progress, pull_timeout: float) -> dict:
    """The base image's inspect data, pulled first (docker SDK, registry credentials) if missing."""
    found = find_image(env.engine, image)
    if found is not None:
        return found
    progress(f"pulling {image}")
    reason = None
    try:
        client = env.client  # first: its InfraError says how to get the SDK
        from docker.utils import parse_repository_tag

        repo, tag = parse_repository_tag(image)
        with api_timeout(client, pull_timeout):
            # a stream: errors after the first byte (manifest unknown, ...) come inside it
            stream = client.api.pull(image if "@" in image else repo, tag=None if "@" in image else tag or "latest",
                                     stream=True, decode=True)
            deadline = time.monotonic() + pull_timeout
            last = None
            for chunk in stream:
                if chunk.get("error"):
                    reason = chunk["error"]
                status = chunk.get("status")
                if status and status != last and not chunk.get("progressDetail"):
                    last = status
                    progress(f"pull: {status[:120]}")
                if time.monotonic() > deadline:
                    reason = f"took longer than {pull_timeout:.0f}s"
                    break
        if reason is None:
            found = find_image(env.engine, image)
            if found is not None:
                return found
            reason = "the pull reported success but the image is missing"
    except InfraError as exc:
        reason = exc.reason
    except Exception as exc:  # APIError, ImageNotFound, request timeouts
        reason = getattr(exc, "explanation", None) or one_line(exc)
    raise InfraError(f"the image {image} is not available locally and pulling it failed "
                     f"({' '.join(str(reason).split())[:300]}); get it with `docker pull {image}` "
                     f"or pass --image with a local image that has Python {xy}")


def check_gpu(env: DockerEnv, base: str, gpus: str, bundle: Bundle, progress: Progress) -> None:
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
        raise InfraError(f"a GPU container could not start: {one_line(exc)}") from None
    except Exception as exc:
        raise InfraError(f"checking GPU access failed: {one_line(exc)}") from None
    finally:
        with shielded():
            if cid is not None:
                with contextlib.suppress(Exception):
                    engine.remove(cid)
    cuda = bundle_cuda(bundle)
    if driver and driver_too_old(cuda, driver):
        raise EnvIncompatible(f"the bundle's build is for CUDA {cuda}, which needs NVIDIA driver >= "
                              f"{min_driver(cuda)}; the Docker host's driver is {driver}")
