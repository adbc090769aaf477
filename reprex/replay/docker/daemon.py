"""Finding the Docker daemon like the docker CLI does, and connecting to it.

DOCKER_HOST, else DOCKER_CONTEXT / the current context, else the default socket; unix
sockets and tcp/TLS. Runs and builds speak to it through engine.py (the standard library over
the socket); the docker SDK is imported only to pull a missing base image (sdk_client:
registry credentials and their helpers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from reprex.replay.base import InfraError
from reprex.replay.docker.engine import Engine, tls_from_env

DEFAULT_HOST = "unix:///var/run/docker.sock"
PING_TIMEOUT = 5.0
API_TIMEOUT = 120.0


def docker_config_dir() -> Path:
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
            name = json.loads((docker_config_dir() / "config.json").read_text("utf-8")).get("currentContext")
        except (OSError, ValueError, AttributeError):
            name = None
    if name and name != "default":
        digest = hashlib.sha256(name.encode()).hexdigest()
        meta_path = docker_config_dir() / "contexts" / "meta" / digest / "meta.json"
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
        except (OSError, ValueError):
            raise InfraError(f"docker context {name!r} not found ({meta_path}); run `docker context use default` "
                             "or use --backend local") from None
        endpoint = (meta.get("Endpoints") or {}).get("docker") or {}
        if endpoint.get("Host"):
            tls = docker_config_dir() / "contexts" / "tls" / digest / "docker"
            return Endpoint(endpoint["Host"], f"docker context {name!r}", tls if tls.is_dir() else None,
                            bool(endpoint.get("SkipTLSVerify")))
    return Endpoint(DEFAULT_HOST, "default socket")


def one_line(exc: BaseException) -> str:
    """An error as one bounded line, for a reason the user reads."""
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
        raise InfraError(f"the Docker host {ep.host} ({ep.source}) can't be used: {one_line(exc)}; "
                         "use --backend local") from None
    try:
        engine.ping(timeout)
    except Exception as exc:  # OSError, EngineError, TLS trouble, http.client errors
        raise InfraError(f"no Docker daemon reachable at {ep.host} ({ep.source}): {one_line(exc)}; "
                         "start dockerd or use --backend local") from None
    engine.endpoint = ep
    return engine


def sdk_client(engine: Engine):
    """A docker SDK client for the same daemon, for pulls only (registry credentials and helpers)."""
    try:
        import docker
    except Exception as exc:  # not installed, or broken by an older requests/urllib3 a project pins
        raise InfraError(f"pulling a missing base image needs the docker package ({one_line(exc)}): "
                         "pip install 'reprex[docker]'") from None
    found = getattr(docker, "__version__", "0")
    if not found.split(".")[0].isdigit() or int(found.split(".")[0]) < 7:
        raise InfraError(f"pulling a missing base image needs docker>=7 (found {found}): "
                         "pip install 'reprex[docker]'")
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
        raise InfraError(f"the docker SDK cannot talk to {ep.host}: {one_line(exc)}") from None
    if ep.host.startswith(("unix://", "npipe://")):
        client.api.trust_env = False  # no proxy for a local socket
    return client


@contextlib.contextmanager
def api_timeout(client, seconds: float):
    """The SDK client's request timeout for one pull, restored after."""
    previous = client.api.timeout
    client.api.timeout = seconds
    try:
        yield
    finally:
        client.api.timeout = previous



def http_errors() -> type:
    """http.client's base error: what an engine call raises when the daemon answers badly."""
    import http.client

    return http.client.HTTPException

