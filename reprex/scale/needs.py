"""What a bundle asks of a Ray node, and whether any node of the cluster has it.

Custom resources say what a node *can* do (a reachable Docker daemon, an architecture), so a
task asks for a sliver of them (TINY): how many replays run at once is the CPUs' business.
The feasibility check runs before a task is submitted: Ray would queue an infeasible task
forever, and a bundle no node can run is `env-incompatible`, said at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DOCKER = "reprex_docker"
ARCH_PREFIX = "reprex_arch_"
TINY = 0.001
NO_NODE = "no node in the cluster can run it"


def arch_resource(machine: str) -> str:
    """`reprex_arch_x86_64` for x86_64 (or amd64): the one spelling nodes and bundles share."""
    from reprex.replay.target import uname_machine

    return ARCH_PREFIX + re.sub(r"[^a-z0-9_]", "_", uname_machine(machine))[:40]


@dataclass
class Needs:
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    resources: dict[str, float] = field(default_factory=dict)

    def as_node_resources(self) -> dict[str, float]:
        """Everything one node must hold, in `ray.nodes()`'s spelling."""
        out = dict(self.resources)
        if self.num_cpus:
            out["CPU"] = self.num_cpus
        if self.num_gpus:
            out["GPU"] = self.num_gpus
        return out

    def describe(self) -> str:
        parts = []
        for key, value in sorted(self.as_node_resources().items()):
            parts.append(key if value == TINY else f"{key}: {value:g}")
        return ", ".join(parts) or "nothing"


def gpu_count(bundle, options) -> float:
    """GPUs the task holds: none for a bundle that didn't run on a GPU (whatever --gpus says:
    a grant is for the bundles that need one); for one that did, the user's `--gpus N`, else
    one. Holding one places the task on a GPU node; the device grant is still the user's
    `--gpus` (without it the docker backend says env-incompatible, as `reprex replay` does)."""
    from reprex.replay.base import needs_gpu

    if options.gpus == "none" or not needs_gpu(bundle):
        return 0.0
    if options.gpus and options.gpus.isdigit():
        return float(options.gpus)
    return 1.0


def bundle_needs(bundle, options, *, arch_known: bool, num_cpus: float = 1.0) -> Needs:
    """A docker replay (`auto` on a cluster means docker: the local backend runs a bundle on
    the host, only when the user says so) needs a node with a daemon; a bundle's recorded
    machine needs that architecture, when the cluster's nodes say theirs (`arch_known`)."""
    needs = Needs(num_cpus=num_cpus, num_gpus=gpu_count(bundle, options))
    if options.backend in ("auto", "docker"):
        needs.resources[DOCKER] = TINY
    machine = (bundle.manifest.get("platform") or {}).get("machine")
    if arch_known and isinstance(machine, str) and machine:
        needs.resources[arch_resource(machine)] = TINY
    return needs


def alive_nodes(nodes: list[dict]) -> list[dict]:
    return [n for n in nodes if n.get("Alive") or n.get("alive")]


def arch_known(nodes: list[dict]) -> bool:
    return any(k.startswith(ARCH_PREFIX) for n in alive_nodes(nodes) for k in (n.get("Resources") or {}))


def fits(needs: Needs, node: dict) -> bool:
    have = node.get("Resources") or {}
    return all(have.get(k, 0.0) + 1e-9 >= v for k, v in needs.as_node_resources().items())


def why_not(needs: Needs, nodes: list[dict]) -> str | None:
    """None when some live node can run it; else the env-incompatible reason, naming what
    no node has (or that no single node has all of it)."""
    alive = alive_nodes(nodes)
    if any(fits(needs, n) for n in alive):
        return None
    wanted = needs.as_node_resources()
    missing = [k for k, v in sorted(wanted.items())
               if not any((n.get("Resources") or {}).get(k, 0.0) + 1e-9 >= v for n in alive)]
    if missing:
        return f"{NO_NODE}: it needs {', '.join(_shown(k, wanted[k]) for k in missing)}, which no node has"
    return f"{NO_NODE}: no single node has all of {needs.describe()}"


def _shown(key: str, value: float) -> str:
    return key if value == TINY else f"{key} {value:g}"
