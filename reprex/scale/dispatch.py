"""Replays as Ray tasks: `replay_many` for a corpus (placed, retried, streamed to a results
file), `replay_remote` for one bundle submitted now and collected later (the pytest plugin).

Placement is Ray's, from what each task asks (reprex.scale.needs), plus a soft preference
for the node whose cache already holds the bundle's environment (its lock hash, learned
from earlier results). Retries are ours, not Ray's: a task lost with its node or worker is
submitted again (bounded), and the last loss is reported `infra-error` with the node and why.
"""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path
from typing import Callable, Sequence

from reprex.errors import ReprexError
from reprex.replay.base import ReplayOptions
from reprex.scale import needs as _needs
from reprex.scale import cluster as _cluster
from reprex.scale import liveness as _liveness
from reprex.scale.cluster import ScaleError, connect
from reprex.scale.remote import MAX_RETRIES, POLL_S, RemoteReplay, ScaleResult, _Settled

SOFT_CANCEL_S = 30.0  # a cancelled task's time to unwind (its container removed) before it is killed

__all__ = ["ScaleError", "ScaleResult", "RemoteReplay", "connect", "replay_many", "replay_remote", "submit",
           "cancel_all", "load"]


# -- submitting ----------------------------------------------------------------------

def load(source: str):
    """The bundle at a path, directory or URI, read with every check `reprex replay` makes."""
    import tempfile

    from reprex.bundle import Bundle
    from reprex.fetch import fetch_bundle

    path = fetch_bundle(source)
    try:
        return Bundle.read(path)
    finally:
        if str(path) != source and str(path).startswith(tempfile.gettempdir()) and "reprex-fetch-" in str(path):
            path.unlink(missing_ok=True)  # a downloaded copy


def _unreadable(source: str, exc: BaseException) -> ScaleResult:
    text = exc.message if isinstance(exc, ReprexError) else f"{type(exc).__name__}: {_cluster.first_line(exc)}"
    return ScaleResult(bundle=source, bundle_id="", verdict="infra-error",
                       reason=f"not a readable reprex bundle: {text}"[:400])


def submit(ray, source: str, bundle, options: ReplayOptions, nodes: list[dict], *, num_cpus: float = 1.0,
           prefer: dict[str, str] | None = None, max_retries: int = MAX_RETRIES) -> RemoteReplay | ScaleResult:
    """One bundle onto the cluster, or its env-incompatible result when no node can run it."""
    from dataclasses import replace

    from reprex.replay.base import lock_hash

    if options.backend == "auto":  # on a cluster, auto is docker: local runs a bundle on the host, asked for only
        options = replace(options, backend="docker")
    needs = _needs.bundle_needs(bundle, options, arch_known=_needs.arch_known(nodes), num_cpus=num_cpus)
    if not needs.num_gpus and options.gpus not in (None, "none"):
        options = replace(options, gpus="none")  # a task Ray gave no GPU takes no device
    why = _needs.why_not(needs, nodes)
    if why is not None:
        return ScaleResult(bundle=source, bundle_id=bundle.id, verdict="env-incompatible", reason=why)
    try:
        lock = lock_hash(bundle)
    except ReprexError:  # the replay itself says what is wrong with it
        lock = ""
    return RemoteReplay(ray, source, bundle.id, bundle.to_zip_bytes(), options, needs, lock_hash=lock,
                        prefer=(prefer or {}).get(lock), max_retries=max_retries)


def replay_remote(bundle_bytes: bytes, options: ReplayOptions, *, address: str | None = "auto",
                  source: str = "", num_cpus: float = 1.0, prefer: dict[str, str] | None = None,
                  max_retries: int = MAX_RETRIES) -> RemoteReplay:
    """Submit one bundle (its zip's bytes) now; `.result()` later. A bundle no node can run, or
    one that can't be read, comes back already settled."""
    import tempfile

    from reprex.bundle import Bundle

    ray = connect(address)
    fd, path = tempfile.mkstemp(prefix="reprex-scale-", suffix=".reprex.zip")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(bundle_bytes)
        try:
            bundle = Bundle.read(path)
        except (ReprexError, ValueError, OSError, RecursionError, MemoryError) as exc:
            return _Settled(_unreadable(source or "bundle", exc))
    finally:
        os.unlink(path)
    item = submit(ray, source or bundle.name, bundle, options, _liveness.nodes(ray), num_cpus=num_cpus,
                  prefer=prefer, max_retries=max_retries)
    return item if isinstance(item, RemoteReplay) else _Settled(item)


def replay_many(bundles: Sequence[str | Path], options: ReplayOptions, *, address: str | None = "auto",
                results: Path | None = None, resume: bool = False,
                on_result: Callable[[ScaleResult], None] | None = None,
                on_submit: Callable[[RemoteReplay], None] | None = None,
                on_resumed: Callable[[ScaleResult], None] | None = None, num_cpus: float = 1.0,
                window: int | None = None, max_retries: int = MAX_RETRIES) -> list[ScaleResult]:
    """Replay every bundle on the cluster; a result is written to `results` (and handed to
    `on_result`) as it finishes. With `resume`, bundles that already have a line in `results`
    are not replayed again: they come back with `resumed=True`. At most `window` tasks are
    out at once (default: twice the cluster's CPUs), so later bundles can follow earlier
    ones to the node that has their environment. An exception (Ctrl-C) cancels what is out
    and lets it unwind (its containers removed) before it propagates."""
    from reprex.scale import results as _results

    if resume and results is None:
        raise ScaleError("--resume needs --results FILE (the file of the run to continue)")
    previous: dict[str, dict] = {}
    if resume:
        for row in _results.read(Path(results)):
            previous[row["bundle_id"]] = row
    prefer = {row["lock_hash"]: row["node"] for row in previous.values()
              if row.get("lock_hash") and row.get("node") and _built(row.get("verdict"))}
    ray = connect(address)
    nodes = _liveness.nodes(ray)
    if window is None:
        window = max(4, 2 * int(sum((n.get("Resources") or {}).get("CPU", 0) for n in _needs.alive_nodes(nodes))))
    writer = _results.Writer(Path(results)) if results is not None else None
    out: list[ScaleResult] = []
    todo = deque(str(b) for b in bundles)
    inflight: dict = {}  # ObjectRef -> RemoteReplay

    def finish(item: ScaleResult) -> None:
        if writer is not None:
            writer.write(item.to_dict())
        if item.lock_hash and item.node and _built(item.verdict):
            prefer[item.lock_hash] = item.node
        out.append(item)
        if on_result is not None:
            on_result(item)

    checked, seen = time.monotonic(), _liveness.generation()
    try:
        while todo or inflight:
            while todo and len(inflight) < window:
                source = todo.popleft()
                try:
                    bundle = load(source)
                except (ReprexError, ValueError, OSError, RecursionError, MemoryError) as exc:
                    finish(_unreadable(source, exc))
                    continue
                if bundle.id in previous:
                    out.append(ScaleResult.from_dict(previous[bundle.id]))
                    if on_resumed is not None:
                        on_resumed(out[-1])
                    continue
                item = submit(ray, source, bundle, options, nodes, num_cpus=num_cpus, prefer=prefer,
                              max_retries=max_retries)
                if isinstance(item, ScaleResult):
                    finish(item)
                    continue
                inflight[item.ref] = item
                if on_submit is not None:
                    on_submit(item)
            if not inflight:
                continue
            ready, _ = _cluster.wait(ray, list(inflight), num_returns=1, timeout=POLL_S)
            for ref in ready:
                item = inflight.pop(ref)
                settled = item.settle()
                if settled is None:
                    inflight[item.ref] = item  # lost with its node: out again
                else:
                    finish(settled)
            if time.monotonic() - checked >= POLL_S or _liveness.generation() != seen:
                # dead nodes: their tasks' errors may come late or never; one a task was told of, at once
                checked, seen, nodes = time.monotonic(), _liveness.generation(), _liveness.nodes(ray)
                for ref, item in list(inflight.items()):
                    settled = item.check(nodes)
                    if settled is not None or item.ref is not ref:
                        del inflight[ref]
                    if settled is not None:
                        finish(settled)
                    elif item.ref is not ref:
                        inflight[item.ref] = item  # lost with its node: out again
    except BaseException:
        from reprex.interrupt import shielded

        with shielded():  # a second Ctrl-C waits for the cancelled replays to be cleaned up
            cancel_all(ray, list(inflight.values()))
        raise
    finally:
        if writer is not None:
            writer.close()
    return out


def _built(verdict) -> bool:
    """A verdict that means the bundle's environment was made on its node."""
    return verdict in ("reproduced", "different", "fixed", "flaky")


def cancel_all(ray, items: list[RemoteReplay], grace_s: float = SOFT_CANCEL_S) -> None:
    """Ask every task to stop (KeyboardInterrupt in the task: its replay's `finally` removes
    its container), wait `grace_s` for them to unwind, then kill what is left (the host
    watchdog removes a killed replay's container)."""
    for item in items:
        item.cancel()
    refs = [item.ref for item in items if item.ref is not None]
    end = time.monotonic() + grace_s
    while refs and time.monotonic() < end:
        ready, refs = ray.wait(refs, num_returns=len(refs), timeout=min(0.5, max(0.0, end - time.monotonic())))
    for item in items:
        if item.ref in refs:
            item.cancel(force=True)
        item._forget()
