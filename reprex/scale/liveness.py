"""Which nodes are gone, as soon as anything says so.

`ray.nodes()` is the GCS's view, and the GCS learns of a raylet's death from missed health
checks: about 15 s after a node is killed (ray.cluster_utils.Cluster, Ray 2.60, idle machine;
more on a loaded one), while a task's owner hears in under a second (its worker's connection
closes and Ray raises NodeDiedError naming the node). A node some task was told is dead is
remembered here, and the driver's view of the cluster is ray.nodes() with those marked dead:
bundles only that node could run are said at once, and no lost bundle is sent back to it.
Ray's words are "dead or unavailable": a node the GCS still calls alive TRUST_GCS_S after the
error was only unreachable for a while, and is forgotten here.
"""

from __future__ import annotations

import re
import time

from reprex.scale import cluster as _cluster

TRUST_GCS_S = 90.0  # several times the GCS's own time to call a silent node dead

_dead: dict[str, float] = {}  # node id -> when a task was told it died
_told = 0  # how many nodes were ever marked (see generation)
_NODE_IN_ERROR = re.compile(r"node ID: ([0-9a-f]{16,})")


def node_in_error(exc: BaseException) -> str:
    """The node id a Ray error names ("" when it names none)."""
    m = _NODE_IN_ERROR.search(str(exc))
    return m.group(1) if m else ""


def mark_dead(node_id: str) -> None:
    global _told
    if node_id and node_id not in _dead:
        _dead[node_id] = time.monotonic()
        _told += 1


def generation() -> int:
    """Changes when a node is newly known dead (a driver then looks at its other tasks now)."""
    return _told


def view(nodes: list[dict]) -> list[dict]:
    """`nodes` with every node known dead said dead."""
    out = []
    now = time.monotonic()
    for n in nodes:
        node = n.get("NodeID")
        if node in _dead and (n.get("Alive") or n.get("alive")):
            if now - _dead[node] > TRUST_GCS_S:  # the GCS never agreed: it was alive after all
                del _dead[node]
                out.append(n)
                continue
            n = {k: v for k, v in n.items() if k != "alive"}
            n["Alive"] = False
        out.append(n)
    return out


def nodes(ray) -> list[dict]:
    return view(_cluster.nodes(ray))
