"""The Ray task: one bundle's replay on the node Ray chose, exactly as `reprex replay` runs it.

The bundle comes as its zip's bytes (through the object store), is written to a temp file
and replayed by reprex.scale.runner in a child process, read with the same checks as a
bundle from disk; nothing of it is imported or unpickled here. Before the replay the task
leaves a mark in the cluster's key-value store (which node), so a driver whose task died
with its node can say where.

Cancelling: `ray.cancel` raises KeyboardInterrupt in this task, which sends the child
SIGTERM (it unwinds the replay and removes its container) and waits for it; a forced cancel
or a dead node kills the worker and the child with it, and the docker backend's host
watchdog removes the container when its pipe closes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

KV_PREFIX = "reprex-scale/"
UNWIND_S = 60.0  # a cancelled replay's time to remove its container before it is killed


def mark_key(key: str) -> str:
    return KV_PREFIX + key


def replay_bundle(bundle_bytes: bytes, options, key: str) -> dict:
    import ray

    node = ray.get_runtime_context().get_node_id()
    _mark(key, node)
    started = time.monotonic()
    out = {"node": node, "node_ip": _node_ip(), "result": None, "verdict": "infra-error", "reason": ""}
    fd, path = tempfile.mkstemp(prefix="reprex-scale-", suffix=".reprex.zip")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(bundle_bytes)
        code, stdout, stderr = _run(path, json.dumps(dataclasses.asdict(options)))
        try:
            doc = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
        except ValueError:
            doc = {}
        if code == 0 and doc.get("verdict"):
            out.update(result=doc, verdict=doc["verdict"], reason=doc.get("reason") or "")
        elif code == 2 and doc.get("error"):
            out["reason"] = f"not a readable reprex bundle on this node: {doc['error']}"
        else:
            tail = (stderr.strip().splitlines() or [""])[-1][:300]
            out["reason"] = f"the replay process on this node exited {code}" + (f": {tail}" if tail else "")
        return out
    finally:
        os.unlink(path)
        out["seconds"] = round(time.monotonic() - started, 3)


def _run(path: str, options_json: str) -> tuple[int, str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "reprex.scale.runner", path], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    try:
        feed = options_json
        while True:  # short waits: Ray's KeyboardInterrupt comes between bytecodes, never in a long one
            try:
                stdout, stderr = proc.communicate(feed, timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                feed = None
    except BaseException:  # ray.cancel's KeyboardInterrupt: the replay unwinds, then the task ends
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(UNWIND_S)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    return proc.returncode, stdout, stderr


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
