"""The test infrastructure itself: a real Docker engine and a usable Python base image."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker


def run(client, image, *cmd) -> str:
    out = client.containers.run(image, list(cmd), remove=True, network_disabled=True)
    return out.decode().strip()


def test_base_image_runs_python_311(docker_client, base_image):
    assert run(docker_client, base_image, "python3", "-c", "import sys; print(sys.version)").startswith("3.11")
    # `python` must exist too (Debian only ships `python3`; base_image.sh adds the link).
    assert run(docker_client, base_image, "python", "-c", "import platform; print(platform.python_version())").startswith("3.11")


def test_venv_works_in_base_image(docker_client, base_image):
    # Debian's python3 is "externally managed" (PEP 668): replay images install into a venv.
    out = run(
        docker_client,
        base_image,
        "sh",
        "-c",
        "python3 -m venv /tmp/v && /tmp/v/bin/python -m pip --version && /tmp/v/bin/python -c 'import sys; print(sys.prefix)'",
    )
    assert out.splitlines()[-1] == "/tmp/v"
    assert "pip " in out


def test_daemon_runtimes(docker_client):
    runtimes = docker_client.info()["Runtimes"]
    assert isinstance(runtimes, dict)
    assert "runc" in runtimes
