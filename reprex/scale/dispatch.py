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
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from reprex.errors import ReprexError
from reprex.replay.base import ReplayOptions
from reprex.scale import needs as _needs
from reprex.scale.task import mark_key

POLL_S = 2.0  # how often a wait looks at the cluster (dead nodes, stranded tasks)
SOFT_CANCEL_S = 30.0  # a cancelled task's time to unwind (its container removed) before it is killed
MAX_RETRIES = 2


class ScaleError(ReprexError):
    """The cluster can't be used at all (no Ray, no cluster at that address)."""

    exit_code = 3


@dataclass
class ScaleResult:
    bundle: str  # the path or URI it was given as
    bundle_id: str
    verdict: str
    reason: str
    node: str = ""  # Ray node id ("" when it never reached a node)
    seconds: float = 0.0  # the task's time on its node
    attempts: int = 0
    result: dict = field(default_factory=dict)  # ReplayResult.to_dict(); {} when no replay ran
    node_ip: str = ""
    lock_hash: str = ""
    resumed: bool = False  # read back from the results file, not replayed in this run

    def to_dict(self) -> dict:
        row = asdict(self)
        row.pop("resumed")
        return row

    @classmethod
    def from_dict(cls, row: dict) -> "ScaleResult":
        known = {k: row[k] for k in cls.__dataclass_fields__ if k in row and k != "resumed"}
        item = cls(**{"bundle": "", "bundle_id": "", "verdict": "infra-error", "reason": "", **known})
        item.resumed = True
        return item


# -- the cluster ---------------------------------------------------------------------

def connect(address: str | None = "auto"):
    """Ray, connected: the session already open in this process, else the cluster at
    `address` ("auto": RAY_ADDRESS or the one running on this machine, else a new local one;
    "local" or None: a new local one, advertising this machine's reprex resources)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as exc:
        raise ScaleError(f"--ray needs Ray on this machine (pip install 'reprex[ray]'): {exc}") from None
    if ray.is_initialized():
        return ray
    import logging

    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    if address not in (None, "local", "auto"):
        _reachable(address)
    if address not in (None, "local"):
        try:
            ray.init(address=address, **quiet)
            return ray
        except ConnectionError as exc:
            if address != "auto":
                raise ScaleError(f"cannot reach the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
        except Exception as exc:  # a malformed address, a version mismatch
            raise ScaleError(f"cannot connect to the Ray cluster at {address}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    from reprex.scale.node import node_resources

    try:
        ray.init(address="local", include_dashboard=False, resources=node_resources(), **quiet)
    except Exception as exc:
        raise ScaleError(f"cannot start a local Ray cluster: {type(exc).__name__}: {_first_line(exc)}") from None
    return ray


def _reachable(address: str, timeout: float = 5.0) -> None:
    """A HOST:PORT that doesn't answer, said in one line at once (Ray itself retries for
    half a minute, logging each try)."""
    import re
    import socket

    m = re.fullmatch(r"(?:ray://)?\[?([^\[\]]+?)\]?:(\d{1,5})", address)
    if not m:
        return
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout).close()
    except OSError as exc:
        raise ScaleError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def _wait(ray, refs: list, **kw):
    """ray.wait, with a signal handler's exception (Ctrl-C as reprex's Interrupted) raised as
    itself: Ray's wait checks signals in Cython and wraps it in a SystemError."""
    try:
        return ray.wait(refs, **kw)
    except SystemError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, BaseException) and not isinstance(cause, Exception):
            raise cause.with_traceback(None) from None
        raise


def _nodes(ray) -> list[dict]:
    return ray.nodes()


def _node_info(nodes: list[dict], node_id: str) -> dict:
    return next((n for n in nodes if n.get("NodeID") == node_id), {})


def _alive(nodes: list[dict], node_id: str) -> bool:
    info = _node_info(nodes, node_id)
    return bool(info.get("Alive") or info.get("alive"))


def _task():
    import ray

    from reprex.scale.task import replay_bundle

    global _REMOTE
    if _REMOTE is None:
        _REMOTE = ray.remote(max_retries=0)(replay_bundle)  # retries are ours (see RemoteReplay.settle)
    return _REMOTE


_REMOTE = None


# -- one bundle's task -----------------------------------------------------------------

class RemoteReplay:
    """One bundle on the cluster: `ref` is the current attempt's ObjectRef (for ray.wait);
    `result()` waits for the verdict, resubmitting a task lost with its node or worker."""

    def __init__(self, ray, bundle: str, bundle_id: str, data: bytes, options: ReplayOptions,
                 needs: _needs.Needs, *, lock_hash: str = "", prefer: str | None = None,
                 max_retries: int = MAX_RETRIES):
        self.ray, self.bundle, self.bundle_id, self.options = ray, bundle, bundle_id, options
        self.needs, self.lock_hash, self.prefer, self.max_retries = needs, lock_hash, prefer, max_retries
        self.key = f"{uuid.uuid4().hex[:16]}/{bundle_id[:16] or 'bundle'}"
        self.data_ref = ray.put(data)  # once: every attempt reads the same object
        self.attempts = 0
        self.ref = None
        self.final: ScaleResult | None = None
        self.failures: list[str] = []  # one line per lost attempt
        self.lost_on = ""  # the node of the last lost attempt
        self._submit()

    def _submit(self) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        opts: dict = {"num_cpus": self.needs.num_cpus, "num_gpus": self.needs.num_gpus,
                      "resources": dict(self.needs.resources)}
        if self.prefer and _alive(_nodes(self.ray), self.prefer):
            opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(self.prefer, soft=True)
        self.attempts += 1
        self.ref = _task().options(**opts).remote(self.data_ref, self.options, f"{self.key}/{self.attempts}")

    def started_on(self) -> str | None:
        """The node the current attempt started on, once it has."""
        from ray.experimental import internal_kv

        try:
            value = internal_kv._internal_kv_get(mark_key(f"{self.key}/{self.attempts}"))
        except Exception:
            return None
        return value.decode() if value else None

    def done(self) -> bool:
        return self.final is not None or bool(_wait(self.ray, [self.ref], timeout=0)[0])

    def settle(self) -> ScaleResult | None:
        """The current attempt has finished: its ScaleResult, or None when it was lost and has
        been submitted again (then `ref` is the new attempt's)."""
        if self.final is not None:
            return self.final
        from ray import exceptions as rex

        try:
            out = self.ray.get(self.ref)
        except rex.TaskCancelledError:
            return self._finish("infra-error", "the replay was cancelled")
        except (rex.NodeDiedError, rex.WorkerCrashedError, rex.ObjectLostError, rex.OwnerDiedError,
                rex.RaySystemError, rex.LocalRayletDiedError) as exc:
            node, why = self._loss(exc)
            self.lost_on = node
            self.failures.append(f"attempt {self.attempts} on node {node or '?'}: {why}")
            if self.attempts <= self.max_retries:
                left = _needs.why_not(self.needs, _nodes(self.ray))
                if left is not None:  # the node that died was the last that could run it
                    return self._finish("env-incompatible", f"{left} any more ({self.failures[-1]})", node=node)
                self._submit()
                return None
            return self._finish("infra-error", f"its task was lost {self.attempts} times (node died or worker "
                                               f"crashed); last {self.failures[-1]}", node=node)
        except rex.RayError as exc:  # the task itself raised: the machinery broke
            return self._finish("infra-error", f"the replay task failed: {_first_line(exc)}")
        result = out.get("result") or {}
        return self._finish(out.get("verdict") or "infra-error", out.get("reason") or "", node=out.get("node", ""),
                            node_ip=out.get("node_ip", ""), seconds=float(out.get("seconds") or 0.0), result=result)

    def _loss(self, exc) -> tuple[str, str]:
        """Which node the lost attempt ran on (its start mark, or the error's text) and why."""
        import re

        node = self.started_on() or ""
        m = re.search(r"node ID: ([0-9a-f]{16,})", str(exc))
        if m:
            node = m.group(1)
        info = _node_info(_nodes(self.ray), node) if node else {}
        why = info.get("DeathReasonMessage") if info and not (info.get("Alive") or info.get("alive")) else ""
        if info and not (info.get("Alive") or info.get("alive")):
            why = f"the node died ({why})" if why else "the node died"
        else:
            why = f"{type(exc).__name__}: {_first_line(exc)[:200]}"
        return node, why

    def _finish(self, verdict: str, reason: str, *, node: str = "", node_ip: str = "", seconds: float = 0.0,
                result: dict | None = None) -> ScaleResult:
        self.final = ScaleResult(bundle=self.bundle, bundle_id=self.bundle_id, verdict=verdict, reason=reason,
                                 node=node, node_ip=node_ip, seconds=seconds, attempts=self.attempts,
                                 result=result or {}, lock_hash=self.lock_hash)
        self._forget()
        return self.final

    def _forget(self) -> None:
        try:
            from ray.experimental import internal_kv

            internal_kv._internal_kv_del(mark_key(self.key + "/"), del_by_prefix=True)
        except Exception:
            pass

    def stranded(self, nodes: list[dict]) -> ScaleResult | None:
        """A task still waiting for a node after the nodes that could run it left: cancelled
        and env-incompatible, instead of waiting forever."""
        if self.final is not None or self.started_on():
            return None
        why = _needs.why_not(self.needs, nodes)
        if why is None:
            return None
        try:
            self.ray.cancel(self.ref, force=True)
        except Exception:
            pass
        if self.failures:  # it did run, on a node that has died since
            return self._finish("env-incompatible", f"{why} any more ({self.failures[-1]})", node=self.lost_on)
        return self._finish("env-incompatible", why)

    def result(self, timeout: float | None = None) -> ScaleResult:
        """Wait for the verdict (TimeoutError after `timeout` seconds)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.final is not None:
                return self.final
            left = POLL_S if end is None else min(POLL_S, end - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"{self.bundle}: no verdict within {timeout:g}s")
            if _wait(self.ray, [self.ref], timeout=left)[0]:
                if self.settle() is not None:
                    return self.final
            elif self.stranded(_nodes(self.ray)) is not None:
                return self.final

    def cancel(self, force: bool = False) -> None:
        if self.final is None and self.ref is not None:
            try:
                self.ray.cancel(self.ref, force=force)
            except Exception:
                pass
        if force:
            self._forget()


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    text = exc.message if isinstance(exc, ReprexError) else f"{type(exc).__name__}: {_first_line(exc)}"
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
    item = submit(ray, source or bundle.name, bundle, options, _nodes(ray), num_cpus=num_cpus, prefer=prefer,
                  max_retries=max_retries)
    return item if isinstance(item, RemoteReplay) else _Settled(item)


class _Settled(RemoteReplay):
    """A RemoteReplay that never went to the cluster: its result is known already."""

    def __init__(self, result: ScaleResult):  # noqa: super().__init__ would submit
        self.final, self.ref, self.attempts = result, None, 0
        self.bundle, self.bundle_id = result.bundle, result.bundle_id

    def done(self) -> bool:
        return True

    def started_on(self) -> str | None:
        return None


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
    nodes = _nodes(ray)
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

    checked = time.monotonic()
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
            ready, _ = _wait(ray, list(inflight), num_returns=1, timeout=POLL_S)
            for ref in ready:
                item = inflight.pop(ref)
                settled = item.settle()
                if settled is None:
                    inflight[item.ref] = item  # lost with its node: out again
                else:
                    finish(settled)
            if time.monotonic() - checked >= POLL_S:
                checked, nodes = time.monotonic(), _nodes(ray)
                for ref, item in list(inflight.items()):
                    stuck = item.stranded(nodes)
                    if stuck is not None:
                        del inflight[ref]
                        finish(stuck)
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
