"""What a node offers reprex's Ray tasks, as custom resources: `reprex_docker` when a Docker
daemon answers here, `reprex_arch_<machine>` always.

Ray can't add resources to a running node, so they are given when it starts:

    ray start --address HEAD:6379 --resources "$(python -m reprex.scale.node)"
"""

from __future__ import annotations

import json
import platform


def node_resources(*, docker: bool | None = None) -> dict[str, float]:
    from reprex.scale.needs import DOCKER, arch_resource

    if docker is None:
        from reprex.replay import docker_available

        docker = docker_available()[0]
    out = {arch_resource(platform.machine()): 1.0}
    if docker:
        out[DOCKER] = 1.0
    return out


if __name__ == "__main__":
    print(json.dumps(node_resources()))
