"""The minimal failing call: from a recorded failure to a small script that fails on its own.

The reducer proposes candidates on the host from the bundle's data alone
(reprex.extract_propose: frames whose arguments can be rebuilt, each written out as a
script that calls the function directly; nothing of the bundle is unpickled, imported or
run here). A separate oracle (reprex.extract_oracle) judges each candidate by
running it through a replay backend, sandboxed unless the user vouches for the bundle; a
candidate is kept only if it fails the same way as the original. Otherwise the full entry
stays and the report says why.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable

from reprex.bundle import Bundle, BundleError
from reprex.extract_oracle import DEFAULT_TIMEOUT, JudgeOptions, JudgeUnavailable, Oracle, extracted_entry
from reprex.extract_propose import ExtractError, build_script, bundle_json, candidate_frames, clean, frames_of
from reprex.signature import chain, frame_key, innermost, type_list

MAX_CANDIDATES = 4
_REQ_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

__all__ = ["extract", "extract_into", "ExtractReport", "ExtractError", "JudgeUnavailable", "build_script",
           "candidate_frames", "same_failure", "clean"]


@dataclass
class ExtractReport:
    kept: str  # "extracted" | "original"
    message: str
    function: str | None = None
    script: str | None = None
    attempts: list[dict] = field(default_factory=list)
    bundle: Bundle | None = None
    backend: str | None = None  # where the candidates were judged (None: no candidate got that far)

    def to_dict(self) -> dict:
        return {"kept": self.kept, "message": self.message, "function": self.function, "attempts": self.attempts,
                "backend": self.backend}


# -- judging ---------------------------------------------------------------------------------

def same_failure(original: dict, candidate_outcome, function: str) -> bool:
    """Same innermost exception type, and the same frames from the raise point up to the
    extracted function (by qualname: locations differ once the source is inlined).
    The candidate's record came from bundle code: anything malformed is not a match."""
    try:
        return _same_failure(original, candidate_outcome, function)
    except (AttributeError, TypeError, ValueError, RecursionError):
        return False


def _same_failure(original: dict, candidate_outcome, function: str) -> bool:
    exc = candidate_outcome.exception
    if candidate_outcome.outcome != "exception" or not isinstance(exc, dict) or not exc:
        return False
    want = innermost(original) or original
    got = innermost(exc) or exc
    if want.get("type") != got.get("type"):
        return False

    def names(frames):
        out = []
        for f in reversed(frames or []):
            if frame_key(f) is None:
                continue
            out.append(f.get("qualname"))
            if f.get("qualname") == function:
                break
        return out

    return names(want.get("frames")) == names(got.get("frames"))


def _frames_running(original: dict, frames: list[dict], function: str) -> list[tuple[int, dict]]:
    """(index, frame) of the frames running `function`: in the innermost exception's frames, else
    in an outer one's of the chain (`raise X from Y` in the caller: the function that called the
    failing code is only in the outer traceback). Extraction reruns the whole call either way."""
    def running(fs):
        return [(i, f) for i, f in enumerate(fs) if isinstance(f, dict)
                and function in (f.get("qualname"), f.get("function"))]

    found = running(frames)
    if found:
        return found
    try:
        links = chain(original)
    except (AttributeError, TypeError, RecursionError):
        return []
    for link in reversed(links):
        if isinstance(link, dict) and isinstance(link.get("frames"), list):
            found = running(link["frames"])
            if found:
                return found
    return []


def _observed(outcome) -> str:
    """What a judged run did, in a few words fit to show (it is bundle code's output)."""
    try:
        if isinstance(outcome.exception, dict) and outcome.exception:
            return clean(" <- ".join(str(t) for t in type_list(outcome.exception)), 200)
    except (AttributeError, TypeError, RecursionError):
        pass
    return clean(outcome.outcome, 40)


# -- the whole step --------------------------------------------------------------------------

def _noop(_: str) -> None:
    pass


def extract(bundle: Bundle, *, frame: int | None = None, function: str | None = None, backend: str = "docker",
            image: str | None = None, timeout: float = DEFAULT_TIMEOUT, network: str = "none", gpus: str = "none",
            allow_urls: bool = False, progress: Callable[[str], None] = _noop) -> ExtractReport:
    """Propose candidate calls from the bundle's data, judge them with `backend`.

    backend: "docker" (a sandboxed container, the default) or "local" (a virtualenv on
    this machine: it runs the bundle's code here, so only for a bundle the user trusts).
    Raises JudgeUnavailable when a candidate needs judging and the backend can't be had.
    """
    judge = JudgeOptions(backend=backend, image=image, timeout=timeout, network=network, gpus=gpus,
                         allow_urls=allow_urls)
    if backend not in ("docker", "local"):
        raise ValueError(f"unknown backend {backend!r}; choose docker or local")
    run = bundle_json(bundle, "run.json")
    original = run.get("exception")
    if not isinstance(original, dict) or not original:
        expect = bundle.manifest.get("expect") if isinstance(bundle.manifest.get("expect"), dict) else {}
        return ExtractReport("original", "nothing to extract: the recorded failure has no Python exception "
                                         f"({clean(expect.get('outcome'), 40)})")
    frames = frames_of(original)
    if frame is not None:
        index = frame if frame >= 0 else len(frames) + frame
        if not 0 <= index < len(frames):
            return ExtractReport("original", f"--frame {frame} is out of range (0..{len(frames) - 1})")
        candidates = [(index, frames[index])]
    elif function is not None:
        candidates = _frames_running(original, frames, function)
        if not candidates:
            return ExtractReport("original", f"no frame runs a function named {clean(function, 100)!r}")
    else:
        candidates = candidate_frames(original)[:MAX_CANDIDATES]
    attempts: list[dict] = []
    planned = []  # (index, frame, name, script or None, how or the reason it can't be built), innermost first
    for index, chosen in candidates:
        name = f"{clean(chosen.get('module'), 100)}.{clean(chosen.get('qualname'), 100)}"
        try:
            script, how = build_script(bundle, chosen)
        except ExtractError as exc:
            script, how = None, str(exc)
        planned.append((index, chosen, name, script, how))
    judged = any(script is not None for *_, script, _ in planned)
    if not judged:  # nothing to run: no backend is started
        attempts = [{"frame": index, "function": name, "result": why} for index, _, name, _, why in planned]
    else:
        from reprex.replay import ReplayProblem

        with Oracle(bundle, judge, progress) as oracle:
            for index, chosen, name, script, how in planned:
                if script is None:
                    attempts.append({"frame": index, "function": name, "result": how})
                    continue
                progress(f"judging {name}() ({backend})")
                try:
                    outcome = oracle.run(script)
                except ReplayProblem as exc:
                    attempts.append({"frame": index, "function": name,
                                     "result": f"{exc.verdict}: {clean(exc.reason)}"})
                    continue
                if same_failure(original, outcome, chosen.get("qualname")):
                    try:
                        new = _with_extracted(bundle, script, outcome, name, how)
                    except BundleError as exc:  # what the run reported doesn't make a bundle we could read back
                        attempts.append({"frame": index, "function": name,
                                         "result": f"same failure, but not a valid bundle: {clean(str(exc))}"})
                        continue
                    attempts.append({"frame": index, "function": name, "result": f"kept ({how})"})
                    return ExtractReport("extracted", f"kept the extracted call {name}() ({how}); it fails the "
                                                      f"same way on its own ({backend})", function=name,
                                         script=script, attempts=attempts, bundle=new, backend=backend)
                attempts.append({"frame": index, "function": name,
                                 "result": f"different failure: {_observed(outcome)}"})
    why = "; ".join(f"{a['function']}: {a['result']}" for a in attempts) or "no frame with recorded arguments"
    return ExtractReport("original", f"kept the full script: no call could be isolated ({why})", attempts=attempts,
                         backend=backend if judged else None)


def _narrowed_requirements(bundle: Bundle, outcome) -> tuple[str, int] | None:
    """The original lock cut down to the closure of what the extracted call imported.

    The judged run's facts came from bundle code, so they only choose which of the
    bundle's own requirement lines stay: nothing of theirs is written. None: keep the lock."""
    from reprex.pins import canonical, closure, parse_requirements, roots_for

    facts = outcome.facts if isinstance(outcome.facts, dict) else {}
    if not facts.get("distributions"):
        return None
    try:
        wanted = {canonical(p.name) for p in closure(facts, roots_for(facts, outcome.modules or {}))}
    except Exception:  # facts we can't read: the full lock is still right
        return None
    lines = ["# Exact pins: the original lock, cut to the closure of what the extracted call imported "
             "(written by reprex)."]
    for raw in bundle.text("requirements.txt").splitlines():
        parsed = parse_requirements(raw)
        match = _REQ_NAME.match(parsed[0]) if parsed else None
        if match and canonical(match.group(0)) in wanted:
            lines.append(raw.rstrip())
    return "\n".join(lines) + "\n", len(lines) - 1


def _with_extracted(bundle: Bundle, script: str, outcome, function: str, how: str) -> Bundle:
    """The bundle with the extracted call as its entry; the original entry is kept beside it.
    What the judged run reported is bundle code's output: redacted and bounded here."""
    from reprex.draft import Draft, seal
    from reprex.redact import Redactor
    from reprex.signature import redacted_signature

    red = Redactor()
    draft = Draft.of(bundle, red)
    script = red.text(script, "repro.py")
    signature = redacted_signature(outcome, red)
    files, manifest = draft.files, draft.manifest
    files["original/repro.py"] = files.get("repro.py", b"")
    files["original/requirements.txt"] = files.get("requirements.txt", b"")
    files["repro.py"] = script.encode()
    pins = manifest.get("pins") if isinstance(manifest.get("pins"), dict) else {}
    narrowed = _narrowed_requirements(bundle, outcome)
    if narrowed is not None:
        files["requirements.txt"] = narrowed[0].encode()
        pins = {**pins, "count": narrowed[1]}
    manifest["original_entry"] = manifest.get("entry")
    manifest["original_expect"] = manifest.get("expect")
    manifest["entry"] = extracted_entry(bundle.manifest)
    exc = outcome.exception if isinstance(outcome.exception, dict) else {}
    inner = innermost(exc) or exc

    def text(record: dict, key: str, limit: int) -> str | None:
        value = record.get(key)
        return value[:limit] if isinstance(value, str) else None

    exit_code = outcome.exit_code if isinstance(outcome.exit_code, int) else None
    manifest["expect"] = {"outcome": "exception", "exit_code": exit_code,
                          "exception": {"type": text(exc, "type", 300),
                                        "message": red.text(text(exc, "message", 20000) or "", "traceback")[:2000],
                                        "innermost_type": text(inner, "type", 300)},
                          "signature": signature.to_dict()}
    manifest["extracted"] = {"function": function, "how": how}
    manifest["pins"] = pins
    new = seal(draft)
    Bundle.from_entries(new.entries(), source="the extracted bundle")  # the read-side checks, before it is kept
    return new


def extract_into(path: str | os.PathLike, **kwargs) -> ExtractReport:
    """Extract in place: the bundle at `path` is rewritten (atomically) only if a call was kept."""
    bundle = Bundle.read(path)
    report = extract(bundle, **kwargs)
    if report.bundle is not None:
        report.bundle.write(path)
    return report
