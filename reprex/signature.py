"""Failure signatures (a contract, see DESIGN.md) and verdicts.

A signature names a failure stably across machines: the exception chain's types
and the top three in-app frames of the innermost exception, keyed by qualname and
a location with no line numbers. Messages are normalized and kept beside it, and
compared only in strict mode.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

TOP_FRAMES = 3
VERDICT_EXIT = {"reproduced": 0, "different": 1, "fixed": 1, "flaky": 1, "env-incompatible": 3, "infra-error": 3}

_SITE = re.compile(r"[\\/](?:site|dist)-packages[\\/](.+)$")
_STDLIB = re.compile(r"[\\/]lib[\\/]python\d+(?:\.\d+)?t?[\\/](.+)$")
_NOISE_STDLIB = ("runpy.py", "importlib/_bootstrap.py", "importlib/_bootstrap_external.py", "threading.py",
                 "unittest/case.py", "unittest/suite.py", "unittest/main.py", "unittest/runner.py")
_NOISE_PACKAGES = ("_pytest/", "pluggy/", "pytest/", "reprex/_inject/", "pytest_reprex/")


def classify(filename: str) -> tuple[str, str]:
    """(kind, loc) for a frame file from parsed text, where the recorder's layout is unknown."""
    if not filename or filename.startswith("<"):
        return ("frozen", filename) if filename.startswith("<frozen ") else ("app", filename or "<unknown>")
    norm = filename.replace("\\", "/")
    m = _SITE.search(norm)
    if m:
        return "package", m.group(1).replace("\\", "/")
    m = _STDLIB.search(norm)
    if m:
        return "stdlib", m.group(1).replace("\\", "/")
    if norm.endswith("_inject/sitecustomize.py"):
        return "recorder", "sitecustomize.py"
    return "app", norm.rsplit("/", 1)[-1]


def frame_key(frame: dict) -> str | None:
    """`loc:qualname`, or None for frames the signature drops."""
    kind, loc = frame.get("kind"), frame.get("loc")
    if not kind or not loc:
        kind, loc = classify(frame.get("file", ""))
    if kind in ("frozen", "recorder"):
        return None
    if kind == "stdlib" and loc.startswith(_NOISE_STDLIB):
        return None
    if kind == "package" and loc.startswith(_NOISE_PACKAGES):
        return None
    return f"{loc}:{frame.get('qualname') or frame.get('function') or '?'}"


def top_frames(frames: list[dict], innermost_last: bool = True, n: int = TOP_FRAMES) -> list[str]:
    ordered = list(reversed(frames)) if innermost_last else list(frames)
    keys = [k for k in (frame_key(f) for f in ordered) if k]
    return keys[:n]


def chain(exc: dict | None) -> list[dict]:
    """Exceptions from the one raised down to its root cause."""
    out: list[dict] = []
    seen = 0
    while exc is not None and seen < 20:
        out.append(exc)
        seen += 1
        exc = exc.get("cause") or (None if exc.get("suppress_context") else exc.get("context"))
    return out


def type_list(exc: dict | None) -> list[str]:
    types = []
    for item in chain(exc):
        name = item.get("type", "?")
        children = [c for c in (item.get("children") or []) if c]
        if children:
            name += "[" + ",".join(sorted({c.get("type", "?") for c in children})) + "]"
        types.append(name)
    return types


def innermost(exc: dict | None) -> dict | None:
    """The deepest exception in the chain that has frames: where the failure happened."""
    links = chain(exc)
    for item in reversed(links):
        if item.get("frames"):
            if item.get("children"):
                first = next((c for c in item["children"] if c and c.get("frames")), None)
                if first is not None:
                    return first
            return item
    return links[-1] if links else None


# Ray's execution machinery in a worker's traceback (the frames ray/exceptions.py hides too).
_RAY_INTERNAL = ("ray/worker.py", "ray/_private/", "ray/util/tracing/", "ray/_raylet.pyx")


def unwrap_remote(exc: dict | None, _depth: int = 0) -> dict | None:
    """The chain with each Ray wrapper (RayTaskError(Cause), RayActorError, RuntimeEnvSetupError,
    recorded with a `remote` part) replaced by the remote cause parsed from the worker's
    traceback, so a failure inside a task has the cause's signature."""
    if not exc or _depth > 20:
        return exc
    remote = exc.get("remote")
    if remote:
        return remote_exception(remote) or ray_error_exception(exc, remote) or exc
    out = dict(exc)
    for key in ("cause", "context"):
        if exc.get(key):
            out[key] = unwrap_remote(exc[key], _depth + 1)
    return out


def ray_error_exception(exc: dict, remote: dict) -> dict | None:
    """Ray's own error with no remote traceback (a worker or actor that died, a lost object):
    typed by the error and why it happened, framed by the task or actor method it belongs to
    and the driver's own frames, not Ray's (Worker.get_objects < get < wrapper fits any task)."""
    error = remote.get("error")
    if not error:
        return None
    why = [str(remote[k]) for k in ("reason", "exit_type") if remote.get(k)]
    if remote.get("exit_code") is not None:
        why.append(f"exit code {remote['exit_code']}")
    frames = [f for f in exc.get("frames") or []
              if not any(m in (f.get("file") or "").replace("\\", "/") for m in _RAY_DRIVER)]
    target = remote.get("target")
    if target:
        frames.append({"kind": "ray", "loc": f"ray-{remote.get('kind') or 'task'}", "qualname": target,
                       "function": target, "file": ""})
    return {**exc, "type": error + (f"[{', '.join(why)}]" if why else ""), "frames": frames, "remote": None}


# Ray's driver-side machinery between the app's ray.get and the error.
_RAY_DRIVER = ("/ray/_private/", "/ray/worker.py", "/ray/_raylet", "/ray/util/client")


def remote_exception(remote: dict) -> dict | None:
    """A recorder-shaped record of the remote cause, Ray-internal frames dropped."""
    from reprex.record import parse_traceback_text

    parsed = parse_traceback_text(remote.get("traceback") or "")
    if parsed is None:
        if not remote.get("type"):
            return None
        return {"type": remote["type"], "message": remote.get("message") or "", "notes": [], "frames": [],
                "cause": None, "context": None, "suppress_context": False}
    item, depth = parsed, 0
    while item is not None and depth < 20:
        item["frames"] = [f for f in item.get("frames") or []
                          if not any(m in (f.get("file") or "").replace("\\", "/") for m in _RAY_INTERNAL)]
        item = item.get("cause") or item.get("context")
        depth += 1
    return parsed


# A path differs between capture and replay by nature (home, venv, site-packages, temp and
# work dirs; capture's copy is also redacted to `<home>/...`): only its last part is kept.
_PATH = re.compile(r"(?:(?<![\w.<>/:~-])/|<home>/|~/)[^\s'\"()\[\]{},;:=|`]*")
_TEMP_NAME = re.compile(r"^(?:tmp|reprex-[a-z]+-|pytest-)[\w.-]*$|^[\w-]*\d[\w-]*$")
_NORMALIZERS = [
    (re.compile(r"0x[0-9a-fA-F]+"), "<addr>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\b[0-9a-f]{32,64}\b"), "<hash>"),
    # a number, not the digits of a name: urllib3, float64, py311 stay (float32 vs float64 is another bug)
    (re.compile(r"\bv\d+(?:\.\d+)+"), "v<n>"),  # a version: v2.0.1
    (re.compile(r"(?<![A-Za-z0-9.])\d+(?:\.\d+)*"), "<n>"),
]
_DIGITS = re.compile(r"\d+(?:\.\d+)*")
_LEGACY = re.compile(r"[A-Za-z]<n>")  # a message stored before names kept their digits


def _path(match: re.Match) -> str:
    parts = [p for p in match.group(0).split("/") if p]
    last = parts[-1] if parts else ""
    if not last or last in ("<home>", "~") or _TEMP_NAME.match(last):
        return "<path>"
    return "<path>/" + last


def normalize_message(message: str | None) -> str:
    """The message as compared in strict mode, the same for capture and replay: addresses,
    ids, numbers and the machine-specific part of every absolute path made placeholders."""
    text = (message or "").strip()
    text = _PATH.sub(_path, text)
    for pattern, repl in _NORMALIZERS:
        text = pattern.sub(repl, text)
    return text[:2000]


@dataclass
class Signature:
    kind: str  # exception | signal | exit | timeout | success
    types: list[str] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)
    message: str = ""  # normalized; compared only in strict mode

    @property
    def id(self) -> str:
        blob = json.dumps([self.kind, self.types, self.frames], separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "types": self.types, "frames": self.frames,
                "message": self.message}

    @classmethod
    def from_dict(cls, data: dict | None) -> "Signature | None":
        if not data:
            return None
        return cls(kind=data.get("kind", "?"), types=list(data.get("types") or []),
                   frames=list(data.get("frames") or []), message=data.get("message", ""))

    def matches(self, other: "Signature | None", strict: bool = False) -> bool:
        if other is None or self.id != other.id:
            return False
        if not strict:
            return True
        # Normalized again: a bundle written by an older reprex stored a less normalized message.
        mine, theirs = normalize_message(self.message), normalize_message(other.message)
        if mine == theirs:
            return True
        if _LEGACY.search(mine) or _LEGACY.search(theirs):  # stored when every digit run was <n>
            return _DIGITS.sub("<n>", mine) == _DIGITS.sub("<n>", theirs)
        return False

    def short(self) -> str:
        head = " <- ".join(self.types) or self.kind
        return f"{head} @ {' < '.join(self.frames) or '-'}"


def compute(outcome: Any) -> Signature:
    """Signature of an Outcome (reprex.record.Outcome)."""
    kind = outcome.outcome
    if kind == "success":
        return Signature("success")
    if kind == "exit" and getattr(outcome, "test_failures", None):
        return _tests_signature(outcome)
    if kind == "exception" or (kind == "exit" and outcome.exception):
        exc = unwrap_remote(outcome.exception)
        inner = innermost(exc)
        types = type_list(exc)
        if kind == "exit":
            types = [f"exit:{outcome.exit_code}"] + types
        return Signature(kind, types, top_frames((inner or {}).get("frames") or []),
                         normalize_message(_raw_message(outcome)))
    if kind == "signal":
        return Signature("signal", [outcome.signal or "?"], top_frames(outcome.fault_frames, innermost_last=False))
    if kind == "timeout":
        return Signature("timeout", ["timeout"], top_frames(outcome.fault_frames, innermost_last=False))
    return Signature("exit", [f"exit:{outcome.exit_code}"], [])


def without_children(exc: dict | None, _depth: int = 0) -> dict | None:
    """The chain as a reprex that didn't record child processes saw it: each cause taken from a
    Python child (marked `child` by the recorder) dropped. For comparing with a bundle captured
    before children were recorded, whose signature stops at the CalledProcessError."""
    if not isinstance(exc, dict) or _depth > 20:
        return exc
    out = dict(exc)
    for key in ("cause", "context"):
        link = exc.get(key)
        if isinstance(link, dict) and link.get("child") and key == "cause":
            out[key] = None
        elif link:
            out[key] = without_children(link, _depth + 1)
    return out


def compute_without_children(outcome: Any) -> Signature:
    """compute() of the outcome with no child-process causes (see without_children): equal to
    compute() for a run whose failure took nothing from a child."""
    from dataclasses import replace

    if not getattr(outcome, "exception", None) or getattr(outcome, "test_failures", None):
        return compute(outcome)
    return compute(replace(outcome, exception=without_children(outcome.exception)))


def redacted_signature(outcome, red, where: str = "traceback") -> Signature:
    """The signature to store: types and frames as computed (so ids match replays),
    the message taken from the redacted text. Normalizing first would break a
    secret's shape (digits become <n>) and let it slip past the redactor."""
    sig = compute(outcome)
    if sig.message:
        sig.message = normalize_message(red.text(_raw_message(outcome), where))
    return sig


MAX_TESTS = 10


def _tests_signature(outcome: Any) -> Signature:
    """A test run that exited non-zero: which tests failed (node ids, sorted) and how, each
    with its exception chain and top in-app frames, so another failing test is `different`."""
    types, frames = [f"exit:{outcome.exit_code}"], []
    failures = sorted(outcome.test_failures, key=lambda t: (str(t.get("test")), str(t.get("when"))))
    for item in failures[:MAX_TESTS]:
        exc = unwrap_remote(item.get("exception"))
        test = str(item.get("test"))
        when = "" if item.get("when") in ("call", "failure", "error", None) else f" ({item['when']})"
        types.append(f"{test}{when}: " + " <- ".join(type_list(exc)))
        frames.extend(f"{test} > {key}" for key in top_frames((innermost(exc) or {}).get("frames") or []))
    if len(failures) > MAX_TESTS:
        types.append(f"+{len(failures) - MAX_TESTS} more failing tests")
    return Signature("exit", types, frames, normalize_message(_raw_message(outcome)))


def _raw_message(outcome: Any) -> str:
    """The message the signature keeps, before normalizing: the innermost exception's of the
    chain with Ray's wrappers replaced by their remote causes (what compute() reads too)."""
    failures = getattr(outcome, "test_failures", None)
    if failures and outcome.outcome == "exit":
        first = min(failures, key=lambda t: (str(t.get("test")), str(t.get("when"))))
        exc = unwrap_remote(first.get("exception"))
    else:
        exc = unwrap_remote(getattr(outcome, "exception", None))
    inner = innermost(exc)
    return (inner or exc or {}).get("message") or ""
