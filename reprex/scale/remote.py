"""One bundle's replay on the cluster: `RemoteReplay` submits its Ray task, knows where it
started, and settles it -- resubmitting an attempt lost with its node or worker (bounded),
then an infra-error naming the node and why; a task waiting for nodes that have all left is
env-incompatible instead of queued forever. `ScaleResult` is what every bundle ends as.

A lost attempt is noticed two ways: Ray's own error when the task's worker goes, and, between
waits, the node it started on no longer alive (`check`): a worker can outlive its raylet, and
then Ray's word would come only when the replay ends by itself, minutes later.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field

from reprex.replay.base import ReplayOptions
from reprex.scale import needs as _needs
from reprex.scale import cluster as _cluster
from reprex.scale import liveness as _liveness
from reprex.scale.task import mark_key

POLL_S = 2.0  # how often a wait looks at the cluster (dead nodes, stranded tasks)
MAX_RETRIES = 2


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


def _task():
    import ray

    from reprex.scale.task import replay_bundle

    global _REMOTE
    if _REMOTE is None:
        _REMOTE = ray.remote(max_retries=0)(replay_bundle)  # retries are ours (see RemoteReplay.settle)
    return _REMOTE


_REMOTE = None


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
        self._started: dict[int, str] = {}  # attempt -> the node it started on
        self._submit()

    def _submit(self) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        opts: dict = {"num_cpus": self.needs.num_cpus, "num_gpus": self.needs.num_gpus,
                      "resources": dict(self.needs.resources)}
        if self.prefer and _cluster.alive(_liveness.nodes(self.ray), self.prefer):
            opts["scheduling_strategy"] = _affinity(NodeAffinitySchedulingStrategy, self.prefer)
        self.attempts += 1
        self.ref = _task().options(**opts).remote(self.data_ref, self.options, f"{self.key}/{self.attempts}")

    def started_on(self) -> str | None:
        """The node the current attempt started on, once it has."""
        from ray.experimental import internal_kv

        attempt = self.attempts
        if attempt in self._started:
            return self._started[attempt]
        try:
            value = internal_kv._internal_kv_get(mark_key(f"{self.key}/{attempt}"))
        except Exception:
            return None
        if not value:
            return None
        self._started[attempt] = value.decode()
        return self._started[attempt]

    def done(self) -> bool:
        return self.final is not None or bool(_cluster.wait(self.ray, [self.ref], timeout=0)[0])

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
            if isinstance(exc, rex.NodeDiedError):  # Ray's word, well ahead of ray.nodes()'s
                _liveness.mark_dead(_liveness.node_in_error(exc))
            return self._lost(*self._loss(exc))
        except rex.RayError as exc:  # the task itself raised: the machinery broke
            return self._finish("infra-error", f"the replay task failed: {_cluster.first_line(exc)}")
        result = out.get("result") or {}
        return self._finish(out.get("verdict") or "infra-error", out.get("reason") or "", node=out.get("node", ""),
                            node_ip=out.get("node_ip", ""), seconds=float(out.get("seconds") or 0.0), result=result)

    def _loss(self, exc=None, nodes: list[dict] | None = None) -> tuple[str, str]:
        """Which node the lost attempt ran on (the error's text, or its start mark) and why."""
        node = (_liveness.node_in_error(exc) if exc is not None else "") or self.started_on() or ""
        info = _cluster.node_info(nodes if nodes is not None else _liveness.nodes(self.ray), node) if node else {}
        if info and not (info.get("Alive") or info.get("alive")):
            why = info.get("DeathReasonMessage") or ""
            why = f"the node died ({why})" if why else "the node died"
        elif exc is not None:
            why = f"{type(exc).__name__}: {_cluster.first_line(exc)[:200]}"
        else:
            why = "the node is gone"
        return node, why

    def _lost(self, node: str, why: str) -> ScaleResult | None:
        """The current attempt is lost: out again while retries and a live node that can run it
        are left (None: `ref` is the new attempt's), else said."""
        self.lost_on = node
        self.failures.append(f"attempt {self.attempts} on node {node or '?'}: {why}")
        if self.attempts <= self.max_retries:
            left = _needs.why_not(self.needs, _liveness.nodes(self.ray))
            if left is not None:  # the node that died was the last that could run it
                return self._finish("env-incompatible", f"{left} any more ({self.failures[-1]})", node=node)
            self._submit()
            return None
        return self._finish("infra-error", f"its task was lost {self.attempts} times (node died or worker "
                                           f"crashed); last {self.failures[-1]}", node=node)

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

    def check(self, nodes: list[dict]) -> ScaleResult | None:
        """Between waits, against the cluster as it is now (`liveness.nodes`): an attempt whose
        node is gone is lost (its task force-cancelled, then out again or said, as `settle`
        does) without waiting for Ray's error; a task still waiting for a node after the nodes
        that could run it left is env-incompatible instead of waiting forever. Its result when
        it has one now; None otherwise (`ref` may then be a new attempt's)."""
        if self.final is not None:
            return None
        node = self.started_on()
        if node:
            info = _cluster.node_info(nodes, node)
            if not info or info.get("Alive") or info.get("alive"):  # not in `nodes`: newer than it, not dead
                return None
            self._abandon()
            return self._lost(*self._loss(nodes=nodes))
        why = _needs.why_not(self.needs, nodes)
        if why is None:
            return None
        self._abandon()
        if self.failures:  # it did run, on a node that has died since
            return self._finish("env-incompatible", f"{why} any more ({self.failures[-1]})", node=self.lost_on)
        return self._finish("env-incompatible", why)

    def _abandon(self) -> None:
        """Stop waiting for the current attempt: its task is force-cancelled where Ray still can
        (a dead node's worker is gone already; its replay process unwinds on its own)."""
        try:
            self.ray.cancel(self.ref, force=True)
        except Exception:
            pass

    def result(self, timeout: float | None = None) -> ScaleResult:
        """Wait for the verdict (TimeoutError after `timeout` seconds)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.final is not None:
                return self.final
            left = POLL_S if end is None else min(POLL_S, end - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"{self.bundle}: no verdict within {timeout:g}s")
            if _cluster.wait(self.ray, [self.ref], timeout=left)[0]:
                if self.settle() is not None:
                    return self.final
            elif self.check(_liveness.nodes(self.ray)) is not None:
                return self.final

    def cancel(self, force: bool = False) -> None:
        if self.final is None and self.ref is not None:
            try:
                self.ray.cancel(self.ref, force=force)
            except Exception:
                pass
        if force:
            self._forget()


class _Settled(RemoteReplay):
    """A RemoteReplay that never went to the cluster: its result is known already."""

    def __init__(self, result: ScaleResult):  # noqa: super().__init__ would submit
        self.final, self.ref, self.attempts = result, None, 0
        self.bundle, self.bundle_id = result.bundle, result.bundle_id

    def done(self) -> bool:
        return True

    def started_on(self) -> str | None:
        return None


def _affinity(strategy, node_id: str):
    """Prefer the node that built the environment, but spill to another when it is busy:
    soft affinity alone waits for the preferred node while others sit idle."""
    try:
        return strategy(node_id, soft=True, _spill_on_unavailable=True)
    except TypeError:  # a Ray without the spill flag: soft affinity as it has it
        return strategy(node_id, soft=True)
