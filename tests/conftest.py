"""Shared fixtures for reprex's tests.

Tests that need real infrastructure ask for it through a fixture:

* ``docker_client`` -- a ``docker.DockerClient`` for a reachable engine,
* ``base_image``    -- name of a local Python 3.11 image (``$REPREX_TEST_IMAGE``,
  default ``python:3.11-slim``; ``scripts/base_image.sh`` provides one offline),
* ``ray_available`` -- the imported ``ray`` module.

and, shared so that test modules don't redeclare them: ``cache`` (REPREX_CACHE_DIR for one
module), ``listener`` (a loopback TCP listener that counts connections) and ``offline_pip``
(pip sees only an empty local index).

When the thing is missing, the test is skipped with the reason -- except in CI
(``CI=true``), where it fails instead: CI must run every test for real.
``bash scripts/test.sh`` installs and starts all of it, so locally nothing is skipped
either when that script is used.
"""

from __future__ import annotations

import os

import pytest

DEFAULT_IMAGE = "python:3.11-slim"

# Programs the tests capture and replay (e.g. the fidelity corpus's failing pytest suite):
# data, not tests of this project.
collect_ignore = ["fixtures"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def unavailable(what: str, reason: str) -> None:
    """Fail in CI, skip elsewhere."""
    if in_ci():
        pytest.fail(f"{what} is required in CI but unavailable: {reason}", pytrace=False)
    pytest.skip(f"no {what} available: {reason} (run `bash scripts/test.sh`)")


@pytest.fixture(scope="session")
def docker_client():
    try:
        import docker

        client = docker.from_env()  # version="auto": negotiates with older daemons
        client.ping()
    except Exception as exc:  # ImportError, DockerException, connection errors
        unavailable("Docker engine", f"{type(exc).__name__}: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    name = os.environ.get("REPREX_TEST_IMAGE", DEFAULT_IMAGE)
    import docker.errors

    try:
        docker_client.images.get(name)
    except docker.errors.ImageNotFound:
        unavailable("base image", f"{name!r} not present locally (scripts/base_image.sh builds it)")
    return name


@pytest.fixture(scope="session")
def ray_available():
    try:
        import ray
    except Exception as exc:
        unavailable("Ray", f"cannot import ray: {type(exc).__name__}: {exc}")
    return ray


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A reprex cache (venvs, wheels) private to one test module and reused within it."""
    path = tmp_path_factory.mktemp("reprex-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPREX_CACHE_DIR", str(path))
        yield path


class Listener:
    """A TCP listener on loopback that remembers every connection (the only peer a test may have)."""

    def __init__(self):
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hits: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.hits.append(conn.recv(200) or b"<connected>")
                except OSError:
                    self.hits.append(b"<connected>")

    def wait_for_hit(self, seconds: float = 30.0) -> bool:
        import time

        end = time.monotonic() + seconds
        while not self.hits and time.monotonic() < end:
            time.sleep(0.1)
        return bool(self.hits)

    def close(self):
        self.sock.close()


@pytest.fixture
def listener():
    """A loopback listener: a bundle's URL that reprex must not fetch unless granted points here."""
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def offline_pip(monkeypatch, tmp_path):
    """pip sees no index but an empty folder on this machine, and gives up on a peer at once."""
    index = tmp_path / "empty-index"
    index.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", index.as_uri())
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "5")
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    return index
