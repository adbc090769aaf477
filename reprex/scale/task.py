"""The Ray task: one bundle's replay on the node Ray chose, exactly as `reprex replay` runs it.

The bundle comes as its zip's bytes (through the object store), is written to a temp file
and replayed by reprex.scale.runner, a child process this worker keeps (reprex imported
once), read with the same checks as a bundle from disk; nothing of it is imported or
unpickled here. Before the replay the task leaves a mark in the cluster's key-value store
(which node), so a driver whose task died with its node can say where.

Cancelling: `ray.cancel` raises KeyboardInterrupt in this task, which sends the runner
SIGTERM (it unwinds the replay and removes its container) and waits for it; a forced cancel
kills the worker and the runner with it (the raylet kills the worker's process group), and
the docker backend's host watchdog removes the container when its pipe closes. A runner
orphaned with nobody left to kill it (raylet and worker SIGKILLed at once: `ray stop
--force`) sees its parent gone and unwinds by itself (runner.watch_parent).
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

KV_PREFIX = "reprex-scale/"
UNWIND_S = 60.0  # a cancelled replay's time to remove its container before it is killed

_runner: subprocess.Popen | None = None  # this worker's replay process, reused by its tasks


class RunnerGone(Exception):
    pass


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
        try:
            doc = _ask({"path": path, "options": dataclasses.asdict(options)})
        except RunnerGone as exc:
            out["reason"] = str(exc)
            return out
        if isinstance(doc.get("result"), dict) and doc["result"].get("verdict"):
            out.update(result=doc["result"], verdict=doc["result"]["verdict"], reason=doc["result"].get("reason", ""))
        else:
            out["reason"] = f"not a readable reprex bundle on this node: {doc.get('error') or 'no answer'}"
        return out
    finally:
        os.unlink(path)
        out["seconds"] = round(time.monotonic() - started, 3)


def _ask(request: dict) -> dict:
    """One request to this worker's runner (started, or started again, as needed) and its answer."""
    global _runner
    if _runner is None or _runner.poll() is not None:
        _runner = start_runner()
    proc = _runner
    try:
        doc = ask(proc, request)
    except BaseException:  # ray.cancel's KeyboardInterrupt: the replay unwinds, then the task ends
        _runner = None
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(UNWIND_S)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    if doc is None:
        _runner = None
        proc.kill()
        raise RunnerGone(f"the replay process on this node died (exit {proc.wait()})")
    return doc


def start_runner(**popen) -> subprocess.Popen:
    """A replay process (reprex.scale.runner) waiting for requests on its stdin; `popen`: more of
    Popen's arguments (bisect's: its own session, the environment its installs read)."""
    return subprocess.Popen([sys.executable, "-m", "reprex.scale.runner"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, cwd=tempfile.gettempdir(), **popen)


def ask(proc: subprocess.Popen, request: dict) -> dict | None:
    """One request line to a runner and its answer line, parsed: None when the runner ended
    without a whole answer (it died, or was stopped), {"error": ...} for a line that is not a
    JSON object. The Ray task's and bisect's client, one protocol.

    The answer is waited for in short steps: Ray's KeyboardInterrupt comes between bytecodes,
    never inside one long wait (a signal handler's exception, Ctrl-C in bisect's main thread,
    comes either way); it propagates, and the caller stops the runner."""
    buf = b""
    try:
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        proc.stdin.flush()
        fd = proc.stdout.fileno()
        while not buf.endswith(b"\n") and not proc.stdout.closed:  # closed: bisect's cancel() is done with it
            if select.select([fd], [], [], 0.5)[0]:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                buf += chunk
    except (OSError, ValueError):  # a pipe the runner closed, or one closed here after it was stopped
        pass
    if not buf.endswith(b"\n"):
        return None
    try:
        doc = json.loads(buf)
    except ValueError:
        doc = None
    return doc if isinstance(doc, dict) else {"error": "the replay process answered garbage"}


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
