"""Replay a bundle and judge the outcome: reproduced, different, fixed, flaky,
env-incompatible or infra-error (a contract, see DESIGN.md).

The bundle is the only thing replay reads. Infrastructure trouble is never
reported as `fixed`: a run that never reached Python is an infra-error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from reprex.bundle import Bundle
from reprex.replay.base import (EnvIncompatible, InfraError, Progress, ReplayOptions, ReplayProblem, RunOutput,
                                scrub_passed, scrub_run, scrub_tree)
from reprex.replay.diff import environment_diff
from reprex.interrupt import Interrupted, shielded
from reprex.signature import VERDICT_EXIT, Signature, compute, compute_without_children

__all__ = ["replay", "ReplayOptions", "ReplayResult", "judge", "pick_backend", "exit_code", "EnvIncompatible",
           "InfraError", "ReplayProblem", "Interrupted"]


@dataclass
class ReplayResult:
    verdict: str
    signature: Signature | None
    expected_signature: Signature
    runs: int = 0
    reproduced_runs: int = 0
    backend: str | None = None
    image: str | None = None
    duration_s: float = 0.0
    reason: str = ""
    diff: list[dict] = field(default_factory=list)
    logs: str = ""
    run_verdicts: list[str] = field(default_factory=list)
    message_diff: tuple[str, str] | None = None
    # pins other than the --with releases' own that moved when the pins were re-resolved around
    # them (reprex.replay.with_resolve): {name: [old or None, new]}
    with_moved: dict[str, list] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "signature": self.signature.to_dict() if self.signature else None,
            "expected_signature": self.expected_signature.to_dict(),
            "runs": self.runs,
            "reproduced_runs": self.reproduced_runs,
            "run_verdicts": self.run_verdicts,
            "backend": self.backend,
            "image": self.image,
            "duration_s": round(self.duration_s, 3),
            "reason": self.reason,
            "diff": self.diff,
            "with_moved": self.with_moved,
        }


def exit_code(verdict: str, expect: str = "reproduced") -> int:
    if expect == "fixed":
        if verdict == "fixed":
            return 0
        if verdict == "reproduced":
            return 1
    return VERDICT_EXIT.get(verdict, 3)


def judge_run(expected: Signature, outcome, strict: bool = False) -> tuple[str, Signature]:
    observed = compute(outcome)
    if not outcome.recorded:
        return "infra-error", observed
    if observed.matches(expected, strict=strict):
        return "reproduced", observed
    if outcome.outcome == "success":
        return "fixed", observed
    # a bundle captured before child processes were recorded: its signature ends at the parent's
    # CalledProcessError, which this run now carries the child's failure under
    older = compute_without_children(outcome)
    if older.id != observed.id and older.matches(expected, strict=strict):
        return "reproduced", older
    return "different", observed


def judge(run_verdicts: list[str]) -> str:
    """Combine per-run verdicts: all reproduced, some (flaky), all fixed, else different."""
    if not run_verdicts:
        return "infra-error"
    if "infra-error" in run_verdicts:
        return "infra-error"
    k = run_verdicts.count("reproduced")
    if k == len(run_verdicts):
        return "reproduced"
    if k > 0:
        return "flaky"
    if all(v == "fixed" for v in run_verdicts):
        return "fixed"
    return "different"


def docker_available() -> tuple[bool, str]:
    try:
        from reprex.replay.docker import connect
    except ImportError as exc:
        return False, f"docker backend unavailable: {exc}"
    try:
        connect()
    except ReplayProblem as exc:
        return False, exc.reason
    return True, ""


def pick_backend(name: str):
    if name == "auto":
        ok, _ = docker_available()
        name = "docker" if ok else "local"
    if name == "docker":
        from reprex.replay.docker import DockerBackend

        return DockerBackend()
    if name == "local":
        from reprex.replay.local import LocalBackend

        return LocalBackend()
    raise ValueError(f"unknown backend {name!r}; choose auto, local or docker")


def _noop(_: str) -> None:
    pass


def replay(bundle: Bundle, options: ReplayOptions | None = None, progress: Progress = _noop) -> ReplayResult:
    options = options or ReplayOptions()
    if not options.timeout:
        from dataclasses import replace as _replace

        from reprex.replay.base import run_timeout

        options = _replace(options, timeout=run_timeout(bundle, options))
    expected = Signature.from_dict(bundle.manifest["expect"]["signature"])
    started = time.monotonic()
    result = ReplayResult(verdict="infra-error", signature=None, expected_signature=expected)
    env = None
    backend = None
    try:
        backend = pick_backend(options.backend)
        result.backend = backend.name
        original, with_note = bundle, ""
        if options.with_specs:  # a release's own requirements move the pins they need, and say so
            from dataclasses import replace as _replace

            from reprex.replay.with_resolve import plan

            planned = plan(bundle, options, wheels_only=backend.name == "docker", progress=progress)
            bundle, options = planned.bundle, _replace(options, with_specs=planned.specs)
            result.with_moved = {n: [old, new] for n, (old, new) in planned.moved.items()}
            with_note = planned.note()
        env = backend.prepare(bundle, options, progress)
        info = backend.describe(env)
        result.image = info.get("image")
        outputs: list[RunOutput] = []
        shown = None  # the verdict of the run whose signature and logs are reported
        for i in range(max(1, options.runs)):
            progress(f"run {i + 1}/{options.runs}" if options.runs > 1 else "running the repro")
            out = backend.run(env, bundle, options)
            verdict, observed = judge_run(expected, out.outcome, options.strict)
            if options.pass_env:  # judged on the raw run; what is reported is scrubbed, signature included
                out = scrub_run(out, options.pass_env)
                observed = compute(out.outcome)
            outputs.append(out)
            result.run_verdicts.append(verdict)
            if result.signature is None or (verdict != "reproduced" and shown == "reproduced"):
                result.signature, result.logs, shown = observed, out.logs, verdict
        result.runs = len(outputs)
        result.reproduced_runs = result.run_verdicts.count("reproduced")
        result.verdict = judge(result.run_verdicts)
        if result.verdict == "infra-error":
            result.reason = "the replay never started the recorded Python process (see the logs)"
        elif result.verdict == "flaky":
            result.reason = f"reproduced in {result.reproduced_runs} of {result.runs} runs"
        elif result.verdict == "different":
            result.reason = f"expected {expected.short()}; got {result.signature.short()}"
        # what the bundle asked for and was not granted; the pins a --with release moved
        notes = [n for n in [*(info.get("notes") or ()), with_note] if n]
        if notes:
            result.reason = "; ".join([result.reason, *notes] if result.reason else notes)
        last = outputs[-1].outcome
        result.diff = environment_diff(original, last.facts, info)
        if result.signature and expected.message != result.signature.message:
            result.message_diff = (expected.message, result.signature.message)
    except ReplayProblem as exc:
        result.verdict = exc.verdict
        result.reason = exc.reason
    except Exception as exc:  # the machinery broke: never a traceback, never `fixed`
        result.verdict = "infra-error"
        detail = str(exc).splitlines()[0] if str(exc) else ""
        result.reason = f"replay failed: {type(exc).__name__}: {detail}"[:400]
    finally:
        if backend is not None and env is not None:
            with shielded():  # a signal waits until the environment is let go
                try:
                    backend.close(env, options)
                except Exception:  # cleanup trouble must not hide the verdict
                    pass
        result.duration_s = time.monotonic() - started
        if options.pass_env:
            _scrub(result, options.pass_env)
    return result


def _scrub(result: ReplayResult, pass_env: dict[str, str]) -> None:
    """Values passed with --env leave the replay only as `<--env NAME>` (judged before this):
    every string of the result, whatever put it there; the reason may have been capped."""
    scrub_tree(result, pass_env)
    result.reason = scrub_passed(result.reason, pass_env, cut_end=True)
