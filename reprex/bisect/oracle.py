"""The bisection's oracle: replay a probe and say bad, good or skip.

`reproduced` (the bundle's own signature) is bad, `fixed` is good; `different`,
`env-incompatible`, `infra-error` and a probe that can't be resolved are skips, reported
with their reason and never blamed. Probes are memoized by lock hash (two releases that
resolve to the same pins are one replay), and each replay is logged.

A flaky bundle is measured first: the original is replayed `runs` times, and from its
reproduction rate p each probe is replayed r times, r the smallest count with (1-p)^r <=
MISS (a bad release looks good by chance at most that often): bad at the first run that
reproduces, good only when all r ran fixed.

With `ray` (an address) every replay, the original's included, is a task on that cluster
(reprex.scale.judge), and each probe records the node it ran on.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from reprex.bisect.search import BAD, GOOD, SKIP
from reprex.bundle import Bundle
from reprex.errors import ReprexError

MISS = 0.05
MAX_REPEAT = 20


class NotReproduced(ReprexError):
    """The original bundle does not fail here: there is nothing to bisect."""

    exit_code = 1


class BaselineInfra(ReprexError):
    """The original bundle could not be replayed here (infra-error, env-incompatible)."""

    exit_code = 3


@dataclass
class Probe:
    """One replay the bisection ran."""

    label: str
    verdict: str  # good | bad | skip
    replay: str  # the replay's verdict, or `unresolvable`
    reason: str = ""
    seconds: float = 0.0
    runs: int = 0
    reproduced_runs: int = 0
    lock: str = ""
    changed: dict = field(default_factory=dict)  # name -> [old, new] against the bundle's pins
    resolve_s: float = 0.0  # of `seconds`: making the probe's pins (uv pip compile)
    node: str = ""  # with --ray: the Ray node its (last) replay ran on

    def to_dict(self) -> dict:
        return {"label": self.label, "verdict": self.verdict, "replay": self.replay, "reason": self.reason,
                "seconds": round(self.seconds, 2), "runs": self.runs, "reproduced_runs": self.reproduced_runs,
                "lock": self.lock, "changed": {k: list(v) for k, v in self.changed.items()},
                "resolve_s": round(self.resolve_s, 2), **({"node": self.node} if self.node else {})}


def repeats_for(rate: float) -> int:
    """Runs per probe so that a bad probe shows no reproduction at most MISS of the time."""
    if rate >= 1.0:
        return 1
    if rate <= 0.0:
        return MAX_REPEAT
    return max(1, min(MAX_REPEAT, math.ceil(math.log(MISS) / math.log(1.0 - rate))))


class Oracle:
    """Judges probes of one bundle on one backend; thread-safe (probes may run in parallel)."""

    def __init__(self, bundle: Bundle, options, progress: Callable[[str], None] = lambda _: None,
                 ray: str | None = None, environ: dict[str, str] | None = None):
        from reprex.bisect.probe import lines_of, target_of
        from reprex.bisect.runners import Resolutions

        self.bundle = bundle
        self.options = replace(options, runs=1)
        self.progress = progress
        self.ray = ray  # a cluster's address: replays are its tasks
        self.runners = None  # runners.Runners: replay processes for probes off the main thread (--jobs N)
        # the installs' environment (--index-url's; None: this process's): with one, every replay
        # here is a runner's, started with it (this process's own environment is never changed)
        self.environ = environ
        self.resolutions = Resolutions(environ)  # the probes' `uv pip compile` runs, stopped by cancel()
        self.target = target_of(bundle)
        self.lines = lines_of(bundle)
        self.repeat = 1
        self.rate: float | None = None
        self.probes: list[Probe] = []
        self._memo: dict[str, tuple[str, str]] = {}
        self._busy: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    # -- the original first --------------------------------------------------------------------
    def calibrate(self, runs: int = 1) -> float:
        """Replay the original `runs` times: its reproduction rate sets the probes' repeat count,
        and a bundle that does not fail here ends the bisection before it starts."""
        self.progress(f"replaying the bundle itself ({runs} run{'s' if runs > 1 else ''}) to confirm it fails here")
        started = time.monotonic()
        result = self._replay_one(self.bundle, replace(self.options, runs=runs), self.progress)
        k = result.reproduced_runs if result.verdict in ("reproduced", "flaky") else 0
        self._log(Probe(label="the bundle's own pins", verdict=BAD if k else SKIP, replay=result.verdict,
                        reason=result.reason, seconds=time.monotonic() - started, runs=result.runs,
                        reproduced_runs=k, lock=self._hash(self.bundle), node=getattr(result, "node", "")))
        if result.verdict in ("infra-error", "env-incompatible"):
            raise BaselineInfra(f"the bundle itself can't be replayed here ({result.verdict}: "
                                f"{result.reason or 'no reason given'})")
        if not k:
            raise NotReproduced(f"the bundle does not fail here ({result.verdict}"
                                f"{': ' + result.reason if result.reason else ''}); nothing to bisect")
        self.rate = k / max(1, result.runs)
        self.repeat = repeats_for(self.rate) if self.rate < 1 else 1
        with self._lock:
            self._memo[self._hash(self.bundle)] = (BAD, "the bundle's own pins")
        return self.rate

    # -- probes -------------------------------------------------------------------------------
    def release(self, name: str, releases: Mapping[str, object] | None = None, *, base: list[str] | None = None,
                record: dict[str, list[str]] | None = None) -> Callable[[str], tuple[str, str]]:
        """A test of `name`'s releases: version -> (verdict, reason), for search.first_bad. With the
        listing's `releases` (version -> releases.Release), a release whose metadata says the pins
        already fit is probed without a resolver run (probe.quick_lines).

        `base`: the requirement lines the releases are probed over instead of the bundle's (a
        culprit's releases over the lock where it alone flips the verdict); uv keeps them as
        preferences, and a base pin the resolution no longer needs stays installed, so two probes
        differ only where a release's metadata forces a move. `record`: version -> the lines its
        probe installed (what the search's answer is checked against)."""
        from reprex.bisect.probe import Unresolvable, keep_base, quick_lines, resolve_release, with_lines
        from reprex.bisect.releases import requires_dist

        over = self.bundle if base is None else with_lines(self.bundle, base)

        def test(version: str) -> tuple[str, str]:
            label = f"{name} {version}"
            self.progress(f"probe {label}: resolving")
            started = time.monotonic()
            try:
                release = (releases or {}).get(version)
                # quick_lines checks against the requirements capture recorded: the bundle's own versions
                requires = requires_dist(release) if release is not None and base is None else None
                lines = quick_lines(over, name, version, requires, self.target) or \
                    resolve_release(over, name, version, self.target, compile=self.resolutions.compile)
                if base is not None:
                    lines = keep_base(lines, base, name)
                if record is not None:
                    record[version] = list(lines)
            except Unresolvable as exc:
                self._log(Probe(label=label, verdict=SKIP, replay="unresolvable", reason=str(exc),
                                seconds=time.monotonic() - started))
                return SKIP, str(exc)
            return self.lines_test(lines, label, resolve_s=time.monotonic() - started)

        return test

    def pins(self, pins: Mapping[str, str], label: str | None = None) -> tuple[str, str]:
        """A full pin set (modes 2 and 3), installed as given."""
        from reprex.bisect.probe import pin_lines

        return self.lines_test(pin_lines(pins), label or f"{len(pins)} pins")

    def lines_test(self, lines: list[str], label: str, resolve_s: float = 0.0) -> tuple[str, str]:
        from reprex.bisect.probe import changed, with_lines

        probe_bundle = with_lines(self.bundle, lines)
        try:
            key = self._hash(probe_bundle)
        except ReprexError as exc:  # a line replay refuses
            self._log(Probe(label=label, verdict=SKIP, replay="refused", reason=exc.message))
            return SKIP, exc.message
        while True:
            with self._lock:
                if key in self._memo:
                    return self._memo[key]
                waiting = self._busy.get(key)
                if waiting is None:
                    self._busy[key] = threading.Event()
                    break
            waiting.wait()  # the same pins are being replayed by another thread: its answer is ours
        try:
            verdict, reason = self._replay(probe_bundle, label, key, changed(self.lines, lines), resolve_s)
            with self._lock:
                self._memo[key] = (verdict, reason)
            return verdict, reason
        finally:
            with self._lock:
                self._busy.pop(key).set()

    def _replay(self, probe_bundle: Bundle, label: str, key: str, moved: dict,
                resolve_s: float = 0.0) -> tuple[str, str]:
        """Up to `repeat` runs, one replay each (the environment is reused), stopping at the first
        reproduction: a bad probe of a flaky bundle costs about 1/rate runs, a good one all of them."""
        from reprex.replay import judge

        self.progress(f"probe {label}: replaying" + (f" (up to {self.repeat} runs)" if self.repeat > 1 else ""))
        started = time.monotonic()
        verdicts, reasons, node = [], [], ""
        for i in range(self.repeat):
            result = self._replay_one(probe_bundle, replace(self.options, runs=1),
                                      lambda msg: self.progress(f"probe {label}: {msg}"))
            node = getattr(result, "node", "") or node
            verdicts.append(result.verdict)
            reasons.append(result.reason)
            if result.verdict in ("reproduced", "flaky") or result.verdict in ("infra-error", "env-incompatible"):
                break  # bad is settled; trouble would only repeat itself
        combined = judge(verdicts)
        k = sum(v in ("reproduced", "flaky") for v in verdicts)
        if k:
            verdict, reason = BAD, f"reproduced in {k} of {len(verdicts)} runs"
        elif combined == "fixed":
            verdict, reason = GOOD, f"fixed in {len(verdicts)} of {len(verdicts)} runs"
        else:
            why = next((r for v, r in zip(verdicts, reasons) if v != "fixed" and r), "")
            verdict, reason = SKIP, f"{combined}: {why}" if why else combined
        self._log(Probe(label=label, verdict=verdict, replay=combined, reason=reason,
                        seconds=time.monotonic() - started + resolve_s, runs=len(verdicts), reproduced_runs=k,
                        lock=key, changed=moved, resolve_s=resolve_s, node=node))
        where = f" on node {node[:12]}" if node else ""
        self.progress(f"probe {label}: {verdict} ({reason}){where}")
        return verdict, reason

    def _replay_one(self, bundle: Bundle, options, progress: Callable[[str], None]):
        """A ReplayResult: replayed here (in a runner process when off the main thread, where a
        signal can't reach it, or when the installs have an environment of their own), or with
        `ray` as a task on the cluster."""
        if self.ray is None:
            if self.runners is not None and (self.environ is not None
                                             or threading.current_thread() is not threading.main_thread()):
                return self.runners.replay(bundle, options)
            from reprex.replay import replay

            return replay(bundle, options, progress=progress)
        from reprex.scale.judge import replay_on_cluster

        progress("replaying on the Ray cluster")
        return replay_on_cluster(bundle, options, self.ray)

    def cancel(self) -> None:
        """Stop the probes resolving and replaying in other threads (Ctrl-C): their processes and
        containers go, and they log nothing."""
        self.resolutions.cancel()
        if self.runners is not None:
            self.runners.cancel()

    def close(self) -> None:
        if self.runners is not None:
            self.runners.close()

    def _log(self, probe: Probe) -> None:
        with self._lock:
            self.probes.append(probe)

    @staticmethod
    def _hash(bundle: Bundle) -> str:
        from reprex.replay.base import lock_hash

        return lock_hash(bundle)

    @property
    def replays(self) -> int:
        """Replays run (memo hits and unresolvable releases cost none)."""
        return sum(1 for p in self.probes if p.runs)
