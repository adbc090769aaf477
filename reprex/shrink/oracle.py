"""The judge of `reprex shrink`: does a candidate bundle still fail the same way?

A candidate is the bundle with some entries replaced (a script, an input, the
requirements) or removed. It is run by a replay backend exactly as `reprex replay`
runs a bundle, and it is interesting only when the run's verdict is `reproduced`
(the same signature; with `strict`, the same normalized message too, which keeps a
reducer from trading the failing data path for a bare `raise`); every other verdict
is logged and counts as not interesting. With a control (`--fixed-with SPEC`: what fixes the
bug, as `replay --with` takes it) the oracle is differential: a candidate that reproduces must
also not reproduce with the fix, or it shows another bug, one that fails everywhere (a name
imported from where it never was raises the same ImportError in the same function).
The bundle's code runs only in that backend: local runs it on this machine (the
user's own bundles), docker in the sandbox (a stranger's). With `ray` (an address) each
run is a task on that cluster instead (reprex.scale.judge): the candidate's bytes travel,
the node prepares (and caches) the environment, and no Outcome comes back, only the verdict.

Costs: one prepared environment per lock hash, reused for every candidate with that
lock (a script or input candidate costs one run); judged candidates are memoized by
content hash; calibration sets the per-call timeout and, for a flaky bundle, how many
runs a candidate gets (interesting when any of them reproduces). Thread-safe: with
`--jobs N` the reducers call `interesting` from several threads at once.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from reprex.bundle import Bundle, BundleError, canonical_json
from reprex.errors import ReprexError

BACKENDS = ("local", "docker")
CALIBRATION_RUNS = 3
FLOOR_RATE = 0.3  # below it a bundle is too flaky to shrink (each call would need many runs)
MAX_REPEATS = 5
TIMEOUT_FACTOR = 10.0
MIN_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 300.0

Changes = dict  # bundle entry name -> new bytes, or None to remove it


class ShrinkRefused(ReprexError):
    """The original bundle can't be shrunk here (it doesn't reproduce, or too rarely)."""

    exit_code = 1


class OracleUnavailable(ReprexError):
    """No backend can run the candidates (no daemon, an environment that won't install)."""

    exit_code = 3


@dataclass
class Calibration:
    runs: int
    reproduced: int
    median_s: float
    timeout_s: float
    repeats: int  # runs per candidate: interesting when any of them reproduces
    verdicts: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.reproduced / self.runs if self.runs else 0.0

    def to_dict(self) -> dict:
        return {"runs": self.runs, "reproduced": self.reproduced, "rate": round(self.rate, 3),
                "median_s": round(self.median_s, 3), "timeout_s": round(self.timeout_s, 1),
                "repeats": self.repeats, "verdicts": self.verdicts}


class BundlePin(str):
    """A `name==version` fix the bundle chose (`--fixed-with auto`: the last good release its
    `bisect` section names). It is run as one of the candidate's own pins, replacing that
    package's line in requirements.txt, so replay's rules for a stranger's pins hold (checked,
    wheels only, nothing built on the host or a Ray node), never as a `--with` spec: those are the
    user's own, and a `--with` release with no wheel is built from its sdist, running its code
    there. (An auto release with no wheel makes the control env-incompatible: refused.)"""


def with_pins(requirements: str, pins: list[str]) -> bytes:
    """requirements.txt with each of `pins` (`name==version`) in place of that name's line."""
    from reprex.pins import canonical

    names = {canonical(_REQ_NAME.match(p).group(0)) for p in pins}
    kept = []
    for line in requirements.splitlines():
        m = _REQ_NAME.match(line.strip())
        if m is None or line.strip().startswith("#") or canonical(m.group(0)) not in names:
            kept.append(line)
    return ("\n".join([*kept, *pins]) + "\n").encode()


_REQ_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def repeats_for(rate: float, miss: float = 0.05) -> int:
    """Runs per candidate so that a candidate failing like the original is missed at most
    `miss` of the time (OR of r runs), capped at MAX_REPEATS."""
    if rate >= 1.0:
        return 1
    if rate <= 0.0:
        return MAX_REPEATS
    return max(1, min(MAX_REPEATS, math.ceil(math.log(miss) / math.log(1.0 - rate))))


def candidate_bundle(bundle: Bundle, changes: Changes) -> Bundle:
    """The bundle with `changes` applied: same manifest, Python and entry."""
    manifest = json.loads(canonical_json(bundle.manifest))
    files = dict(bundle.files)
    for name, data in changes.items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    return Bundle(manifest=manifest, files=files).finalize()


def _digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode("utf-8", "surrogatepass") + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


class Oracle:
    """Judges candidates of one bundle; a context manager that lets go of its environments."""

    def __init__(self, bundle: Bundle, *, backend: str = "local", image: str | None = None, network: str = "none",
                 gpus: str = "none", allow_urls: bool = False, strict: bool | None = False, timeout: float | None = None,
                 progress: Callable[[str], None] = lambda m: None, log: Callable[[str], None] = lambda m: None,
                 ray: str | None = None, control: list[str] | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose local or docker")
        from reprex.replay.base import ReplayOptions
        from reprex.signature import Signature

        self.bundle = bundle
        self.base: Changes = {}  # what has been accepted so far; candidates are changes on top of it
        self.expected = Signature.from_dict((bundle.manifest.get("expect") or {}).get("signature"))
        if self.expected is None:
            raise ShrinkRefused("the bundle records no failure signature: nothing to keep while shrinking")
        self.options = ReplayOptions(backend=backend, image=image, network=network, gpus=gpus, allow_urls=allow_urls,
                                     timeout=timeout, strict=strict is not False)
        # strict None: the message is kept too when it holds steady over the calibration runs (a
        # candidate that fails the same way with another message is most often another bug)
        self.strict_auto = strict is None
        self.control_verdict: str | None = None  # the original's verdict with the fix
        self.control = list(control or [])  # what fixes the bug (a differential oracle)
        # the user's --with specs, and the bundle's own choice (BundlePin), which runs as a pin
        self._control_specs = [str(c) for c in self.control if not isinstance(c, BundlePin)]
        self._control_pins = [str(c) for c in self.control if isinstance(c, BundlePin)]
        self.control_runs = 0
        self.granted_timeout = timeout  # the user's: every run gets it (no calibrated timeout, a hang waits it)
        self.progress = progress
        self.log = log
        self.ray = ray  # a cluster's address: every run is a task there
        self.nodes: dict[str, int] = {}  # with ray: Ray node id -> runs it did
        self.repeats = 1
        self.calls = 0  # candidates judged (memo misses)
        self.cache_hits = 0
        self.runs = 0  # backend runs, calibration and verification included
        self.rejected: dict[str, int] = {}  # verdict -> how many candidates got it
        self._memo: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._envs: dict[str, object] = {}  # lock hash -> prepared env (or the ReplayProblem it raised)
        self._env_locks: dict[str, threading.Lock] = {}
        self._backend = None
        self._warm = None  # reprex.shrink.warm_runs.WarmRuns once the environment is known (local only)

    # -- environments ---------------------------------------------------------------------
    def __enter__(self) -> "Oracle":
        from reprex.replay import pick_backend

        if self.ray is not None:  # the nodes' daemons run the candidates: nothing to prepare here
            from reprex.scale.cluster import connect

            connect(self.ray)  # once, before the reducers' threads
            return self
        if self.options.backend == "docker":
            from reprex.replay import docker_available

            ok, why = docker_available()
            if not ok:
                raise OracleUnavailable(f"no Docker daemon to run the candidates in ({why}); use --backend local "
                                        "for a bundle you trust (your own)")
        self._backend = pick_backend(self.options.backend)
        return self

    def __exit__(self, *exc_info) -> None:
        from reprex.interrupt import shielded

        with shielded():
            for env in self._envs.values():
                if not isinstance(env, Exception):
                    try:
                        self._backend.close(env, self.options)
                    except Exception:  # cleanup trouble must not hide the result
                        pass
            self._envs.clear()
            if self._warm is not None:
                self._warm.close()

    def _options(self, control: bool):
        from dataclasses import replace

        return replace(self.options, with_specs=list(self._control_specs)) if control else self.options

    def _control_changes(self, changes: Changes | None) -> Changes:
        """`changes` with the bundle-chosen fix pins (BundlePin) in the candidate's requirements.txt."""
        changes = dict(changes or {})
        if self._control_pins:
            current = {**self.bundle.files, **self.base, **changes}.get("requirements.txt")
            text = (current or b"").decode("utf-8", "replace")
            changes["requirements.txt"] = with_pins(text, self._control_pins)
        return changes

    def _env(self, candidate: Bundle, options):
        """The prepared environment for the candidate's lock and --with specs (prepared once, by one thread)."""
        from reprex.replay.base import lock_hash

        key = lock_hash(candidate, *options.with_specs)
        with self._lock:
            gate = self._env_locks.setdefault(key, threading.Lock())
        with gate:
            env = self._envs.get(key)
            if env is None:
                from reprex.replay import InfraError, ReplayProblem

                try:
                    env = self._backend.prepare(candidate, options, self.progress)
                except ReplayProblem as exc:
                    env = exc
                except Exception as exc:  # the machinery broke on this lock: infra-error, never a traceback
                    env = InfraError(f"could not prepare the environment: {_one_line(f'{type(exc).__name__}: {exc}')}")
                self._envs[key] = env
        if isinstance(env, Exception):
            raise env
        return env

    # -- one run ----------------------------------------------------------------------------
    def run(self, changes: Changes | None = None, control: bool = False) -> tuple[str, object]:
        """One run of base+changes (with the control's fix when `control`): (verdict, Outcome or
        the reason it has none; on a cluster None for a run that reproduced)."""
        from reprex.replay import ReplayProblem, judge_run

        options = self._options(control)
        if control:
            changes = self._control_changes(changes)
        if self.ray is not None:
            return self._run_on_cluster(changes, options)

        try:
            candidate = candidate_bundle(self.bundle, {**self.base, **(changes or {})})
            if options.with_specs:  # a fix's release moves the pins it needs, as `replay --with` does
                from reprex.replay.with_resolve import plan

                planned = plan(candidate, options, wheels_only=self._backend.name == "docker")
                candidate, options = planned.bundle, replace(options, with_specs=planned.specs)
            env = self._env(candidate, options)
            out = self._backend.run(env, candidate, options)
        except ReplayProblem as exc:
            return exc.verdict, exc.reason
        except BundleError as exc:
            return "infra-error", f"not a valid bundle: {exc}"
        except Exception as exc:  # the machinery broke (as replay() reports it): infra-error, never a traceback
            return "infra-error", _one_line(f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self.runs += 1
        verdict, _ = judge_run(self.expected, out.outcome, self.options.strict)
        return verdict, out.outcome

    def _run_on_cluster(self, changes: Changes | None, options) -> tuple[str, object]:
        from dataclasses import replace

        from reprex.scale.judge import replay_on_cluster

        try:
            candidate = candidate_bundle(self.bundle, {**self.base, **(changes or {})})
            result = replay_on_cluster(candidate, replace(options, runs=1), self.ray)
        except BundleError as exc:
            return "infra-error", f"not a valid bundle: {exc}"
        except Exception as exc:  # the cluster broke (gone, unreachable): infra-error, never a traceback
            return "infra-error", _one_line(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}")
        finally:
            with self._lock:
                self.runs += 1
        if result.node:
            with self._lock:
                self.nodes[result.node] = self.nodes.get(result.node, 0) + 1
        return result.verdict, None if result.verdict == "reproduced" else (result.reason or result.verdict)

    # -- calibration ----------------------------------------------------------------------
    def _warm_up(self, outcome) -> None:
        """Local candidate runs fork from warm servers that preload what `outcome` imported."""
        from reprex.warm import enabled

        if self.options.backend == "local" and enabled() and hasattr(self._backend, "runner"):
            from reprex.shrink.warm_runs import WarmRuns

            self._warm = WarmRuns(getattr(outcome, "modules", None))
            self._backend.runner = self._warm

    def calibrate(self, runs: int = CALIBRATION_RUNS, floor: float = FLOOR_RATE, force: bool = False) -> Calibration:
        """Run the original `runs` times: its reproduction rate, median time, the per-call
        timeout (10x the median, clamped; a hang keeps its captured wait) and the repeats."""
        from reprex.replay.base import run_timeout

        from reprex.replay import judge_run

        verdicts, loose, seconds = [], [], []
        self.options.timeout = run_timeout(self.bundle, self.options)
        for i in range(max(1, runs)):
            self.progress(f"calibrating: run {i + 1}/{runs} of the original")
            started = time.monotonic()
            verdict, detail = self.run()
            if verdict in ("infra-error", "env-incompatible"):
                raise OracleUnavailable(f"the original bundle could not be run ({verdict}): {_one_line(detail)}")
            verdicts.append(verdict)
            judged = verdict != "reproduced" and self.options.strict and hasattr(detail, "outcome")
            loose.append(judge_run(self.expected, detail, False)[0] if judged else verdict)
            if i == 0:  # it prepared the environment: the later runs are timed, as candidates will run
                self._warm_up(detail)
                if runs > 1:
                    continue
            seconds.append(time.monotonic() - started)
        k = verdicts.count("reproduced")
        if self.strict_auto and loose.count("reproduced") > k:  # the message itself varies from run to run
            self.options.strict = False
            verdicts, k = loose, loose.count("reproduced")
            self.log(f"the message differs between runs of the original ({len(verdicts) - k} of {len(verdicts)}): "
                     "candidates are judged on the signature alone")
        median = statistics.median(seconds)
        hang = (self.bundle.manifest.get("expect") or {}).get("outcome") == "timeout"
        if not hang and not self.granted_timeout:
            self.options.timeout = min(MAX_TIMEOUT_S, max(MIN_TIMEOUT_S, TIMEOUT_FACTOR * median))
        cal = Calibration(runs=len(verdicts), reproduced=k, median_s=median, timeout_s=self.options.timeout,
                          repeats=repeats_for(k / len(verdicts)), verdicts=verdicts)
        if k == 0:
            raise ShrinkRefused(f"the original bundle does not reproduce here ({', '.join(sorted(set(verdicts)))} "
                                f"in {len(verdicts)} runs): nothing to shrink against")
        if cal.rate < floor and not force:
            raise ShrinkRefused(f"the original reproduces in only {k} of {len(verdicts)} runs (under the "
                                f"{floor:.0%} floor); --force shrinks it anyway with {cal.repeats} runs per candidate")
        self.repeats = cal.repeats
        if self.control:
            self._check_control()
        return cal

    def _check_control(self) -> None:
        """The fix must fix the original, or it can't tell this bug from another."""
        fix = " ".join(self.control)
        self.progress(f"calibrating: the original with the fix ({fix})")
        verdict, detail = self.run(control=True)
        self.control_runs += 1
        self.control_verdict = verdict
        if verdict == "reproduced":
            raise ShrinkRefused(f"the original still fails the same way with --fixed-with {fix}: that doesn't fix it, "
                                "so it can't tell this bug from another")
        if verdict in ("infra-error", "env-incompatible"):
            raise OracleUnavailable(f"the original could not be run with --fixed-with {fix} ({verdict}): "
                                    f"{_one_line(detail)}")

    # -- the oracle the reducers call -----------------------------------------------------
    def interesting(self, changes: Changes) -> bool:
        """Does base+changes still fail the same way? Memoized by content; thread-safe."""
        files = dict(self.bundle.files)
        for name, data in {**self.base, **changes}.items():
            if data is None:
                files.pop(name, None)
            else:
                files[name] = data
        key = _digest(files)
        with self._lock:
            if key in self._memo:
                self.cache_hits += 1
                return self._memo[key]
            self.calls += 1
        verdict = "?"
        for _ in range(self.repeats):
            verdict, _detail = self.run(changes)
            if verdict == "reproduced":
                break
        ok = verdict == "reproduced"
        if ok and self.control:  # the same failure with the fix too: another bug (or one it can't tell)
            fixed, _detail = self.run(changes, control=True)
            with self._lock:
                self.control_runs += 1
            # the fix must do to the candidate what it did to the original (`fixed`: pass): a candidate
            # that fails with the fix too, in any way, fails everywhere, and is another bug
            if fixed in ("reproduced", "infra-error", "env-incompatible") or \
                    (self.control_verdict == "fixed" and fixed != "fixed"):
                ok, verdict = False, f"{fixed} with the fix"
        with self._lock:
            self._memo[key] = ok
            if not ok:
                self.rejected[verdict] = self.rejected.get(verdict, 0) + 1
        if not ok:
            self.log(f"candidate rejected: {verdict}")
        return ok

    def current(self, cold: bool = False):
        """One run of the accepted state: its Outcome when it reproduced, else None. `cold`:
        not forked from a warm server, whose preloads a run reports as imported. Call it
        between phases only (no candidate running at the same time)."""
        runner = getattr(self._backend, "runner", None)
        if cold and runner is not None:
            self._backend.runner = None
        try:
            verdict, outcome = self.run()
        finally:
            if cold and runner is not None:
                self._backend.runner = runner
        return outcome if verdict == "reproduced" else None

    def warm_stats(self) -> dict | None:
        """How many local runs forked warm, ran cold, or fell back (None: no warm starts)."""
        return self._warm.stats() if self._warm is not None else None

    def accept(self, changes: Changes) -> None:
        """Make `changes` part of every later candidate."""
        self.base.update(changes)

    def verify(self, runs: int) -> tuple[list[str], object]:
        """Run the accepted state `runs` times: each run's verdict, and a reproducing run's
        Outcome (None if none reproduced)."""
        verdicts, reproducing = [], None
        for i in range(max(1, runs)):
            self.progress(f"verifying: run {i + 1}/{runs} of the shrunk bundle")
            verdict, outcome = self.run()
            verdicts.append(verdict)
            if verdict == "reproduced":
                reproducing = outcome
        return verdicts, reproducing


def _one_line(detail, limit: int = 300) -> str:
    text = detail if isinstance(detail, str) else getattr(detail, "outcome", str(detail))
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."
