"""One replay on the cluster, answered as a local replay would be: the seam `reprex bisect
--ray` (each probe) and `reprex shrink --ray` (each candidate) call instead of replaying here.

The bundle's bytes travel through `replay_remote` (placement, retries and trust as `reprex
replay --ray`: docker on the node unless the user chose local); the task's dict comes back
as a ReplayResult with the node it ran on. Thread-safe: `--jobs N` calls it from N threads.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from reprex.replay import ReplayResult
from reprex.signature import Signature


@dataclass
class ClusterResult(ReplayResult):
    node: str = ""  # Ray node id ("" when it never reached a node)
    node_ip: str = ""
    attempts: int = 0


def connect_and_say(address: str, quiet: bool = False) -> None:
    """Connect now (a bad address is one line before any work) and say which cluster it is."""
    import click

    from reprex.scale.cluster import connect
    from reprex.scale.command import _cluster

    ray = connect(address)
    if not quiet:
        click.echo(f"reprex: replaying on Ray: {_cluster(ray)}", err=True)


def address_error(value: str) -> str | None:
    """Why a --ray value is not an address (None: it is one)."""
    from reprex.scale.command import _ADDRESS

    if _ADDRESS.fullmatch(value):
        return None
    return f"{value!r} is not auto, local, HOST:PORT or ray://HOST:PORT (give --ray after BUNDLE, or --ray auto)"


def cluster_backend(backend: str) -> str:
    """`auto` on a cluster is Docker on the node (the sandbox); `local` only when the user said so."""
    return "local" if backend == "local" else "docker"


def replay_on_cluster(bundle, options, address: str | None = "auto", *, source: str = "") -> ClusterResult:
    """Replay `bundle` (a Bundle) with `options` on one node of the cluster at `address`."""
    from reprex.scale.dispatch import cancel_all, replay_remote

    options = replace(options, backend=cluster_backend(options.backend))
    item = replay_remote(sealed(bundle).to_zip_bytes(), options, address=address, source=source or bundle.name)
    try:
        done = item.result()
    except BaseException:  # Ctrl-C: the task stops and removes its container before this propagates
        from reprex.interrupt import shielded

        with shielded():
            cancel_all(item.ray, [item])
        raise
    return from_scale(done, bundle)


def sealed(bundle):
    """The bundle with an id that matches its content: a node reads it with every check, and a
    bisect probe (the bundle with other pins) is made in memory without one. A copy: the
    caller's manifest is shared with the original's."""
    from reprex.bundle import Bundle

    if bundle.id and bundle.id == bundle.content_id():
        return bundle
    return Bundle(manifest=dict(bundle.manifest), files=dict(bundle.files), source=bundle.source).finalize()


def from_scale(item, bundle) -> ClusterResult:
    """A ScaleResult as the ReplayResult the task's replay made (or, when none ran, its verdict alone)."""
    doc = item.result if isinstance(item.result, dict) else {}
    expected = Signature.from_dict((bundle.manifest.get("expect") or {}).get("signature")) or Signature(kind="?")
    signature = doc.get("signature")
    verdicts = doc.get("run_verdicts")
    return ClusterResult(
        verdict=item.verdict, reason=item.reason or str(doc.get("reason") or ""),
        signature=Signature.from_dict(signature) if isinstance(signature, dict) else None,
        expected_signature=expected, runs=_int(doc.get("runs")), reproduced_runs=_int(doc.get("reproduced_runs")),
        backend=doc.get("backend") if isinstance(doc.get("backend"), str) else None,
        image=doc.get("image") if isinstance(doc.get("image"), str) else None,
        duration_s=float(item.seconds or 0.0),
        run_verdicts=[v for v in verdicts if isinstance(v, str)] if isinstance(verdicts, list) else [],
        node=item.node, node_ip=item.node_ip, attempts=item.attempts)


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
