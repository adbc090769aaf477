"""The Ray task: one bundle's replay on the node Ray chose, exactly as `reprex replay` runs it.

The bundle comes as its zip's bytes (through the object store) and is read with the same
checks as a bundle from disk; nothing of it is imported or unpickled. Before the replay the
task leaves a mark in the cluster's key-value store (which node, when), so a driver whose
task died with its node can say where. A `ray.cancel` arrives as KeyboardInterrupt, which
unwinds the replay's `finally` (its container removed); a forced cancel kills the worker,
and the docker backend's host watchdog removes the container when its pipe closes.
"""

from __future__ import annotations

import os
import tempfile
import time

KV_PREFIX = "reprex-scale/"


def mark_key(key: str) -> str:
    return KV_PREFIX + key


def replay_bundle(bundle_bytes: bytes, options, key: str) -> dict:
    import ray

    node = ray.get_runtime_context().get_node_id()
    _mark(key, node)
    started = time.monotonic()
    out = {"node": node, "node_ip": _node_ip(), "result": None, "verdict": "infra-error", "reason": ""}
    try:
        from reprex.bundle import Bundle
        from reprex.errors import ReprexError
        from reprex.replay import replay

        try:
            bundle = _read(Bundle, bundle_bytes)
        except (ReprexError, ValueError, OSError) as exc:
            out["reason"] = f"not a readable reprex bundle on this node: {str(exc).splitlines()[0][:300]}"
            return out
        result = replay(bundle, options)
        out.update(result=result.to_dict(), verdict=result.verdict, reason=result.reason)
        return out
    finally:
        out["seconds"] = round(time.monotonic() - started, 3)


def _read(Bundle, data: bytes):
    fd, path = tempfile.mkstemp(prefix="reprex-scale-", suffix=".reprex.zip")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return Bundle.read(path)
    finally:
        os.unlink(path)


def _mark(key: str, node: str) -> None:
    try:
        from ray.experimental import internal_kv

        internal_kv._internal_kv_put(mark_key(key), node.encode(), overwrite=True)
    except Exception:  # the mark only names the node in an infra-error; the replay goes on
        pass


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:
        return ""
