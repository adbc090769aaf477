"""Shared fixtures for reprex's tests.

Tests that need real infrastructure ask for it through a fixture:

* ``docker_client`` -- a ``docker.DockerClient`` for a reachable engine,
* ``base_image``    -- name of a local Python 3.11 image (``$REPREX_TEST_IMAGE``,
  default ``python:3.11-slim``; ``scripts/base_image.sh`` provides one offline),
* ``ray_available`` -- the imported ``ray`` module.

When the thing is missing, the test is skipped with the reason -- except in CI
(``CI=true``), where it fails instead: CI must run every test for real.
``bash scripts/test.sh`` installs and starts all of it, so locally nothing is skipped
either when that script is used.
"""

from __future__ import annotations

import os

import pytest

DEFAULT_IMAGE = "python:3.11-slim"


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
