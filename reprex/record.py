"""Read what the injected recorder wrote, into one Outcome.

The recorder writes raw events; this module decides what the run's outcome was
(exception, signal, exit, timeout, or success) the same way for capture and replay.
"""

from __future__ import annotations

import json
import re
import signal as _signal
from dataclasses import dataclass, field
from pathlib import Path


INJECT_DIR = Path(__file__).parent / "_inject"
RECORDER_FILE = INJECT_DIR / "sitecustomize.py"


def recorder():
    """The recorder file as a module of this process (Recorder, exception_record, facts, ...):
    the same code capture and replay inject, so what the library records in-process (an API
    capture, the pytest plugin) has the shape and signature of a recorded run."""
    from reprex._inject import sitecustomize

    return sitecustomize


@dataclass
class Outcome:
    """What one run of the program did, as recorded."""

    outcome: str  # exception | signal | exit | timeout | success
    exit_code: int | None = None
    exception: dict | None = None  # recorder exception record (main thread, or first thread failure)
    thread_exceptions: list[dict] = field(default_factory=list)
    signal: str | None = None
    fault_frames: list[dict] = field(default_factory=list)
    fault_text: str = ""
    opened: list[str] = field(default_factory=list)
    connects: list[dict] = field(default_factory=list)  # network connections the program made
    modules: dict[str, str | None] = field(default_factory=dict)
    package_modules: list[str] = field(default_factory=list)  # dotted, installed .py modules imported
    facts: dict = field(default_factory=dict)
    start: dict = field(default_factory=dict)
    duration_s: float = 0.0
    output_tail: list[list[str]] = field(default_factory=list)  # [[stream, text], ...] in arrival order
    recorded: bool = False  # did a Python process claim the record dir?
    test_failures: list[dict] = field(default_factory=list)  # pytest/unittest: [{test, when, exception}]
    # Python child processes of the run (record dir's children/): module -> distributions for
    # what they imported, versions of those, and how many import sets / whether capped.
    child_module_dists: dict[str, list[str]] = field(default_factory=dict)
    child_versions: dict[str, str] = field(default_factory=dict)
    children: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.outcome != "success"

    def to_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "exception": self.exception,
            "thread_exceptions": self.thread_exceptions,
            "fault_frames": self.fault_frames,
            "duration_s": round(self.duration_s, 3),
            # argument pickles only for the failure the bundle is about (outcome.exception, scrubbed)
            "test_failures": [_without_arg_values(t) for t in self.test_failures],
        }


def _without_arg_values(value):
    if isinstance(value, dict):
        return {k: _without_arg_values(v) for k, v in value.items() if k != "arg_values"}
    if isinstance(value, list):
        return [_without_arg_values(v) for v in value]
    return value


MAX_RECORD_BYTES = 32 * 1024 * 1024


def read_record_file(path: Path, limit: int = MAX_RECORD_BYTES) -> str:
    """A record file's text, read defensively: the program under record can write to
    the record dir, so no links, no FIFOs or devices (they'd hang us), and a size cap."""
    import os
    import stat as _stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return ""
    try:
        if not _stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit)
    finally:
        os.close(fd)
    return data.decode("utf-8", "surrogateescape")


MAX_LISTED = 10_000  # files opened / connections kept from one record


def read_events(record_dir: Path) -> list[dict]:
    events = []
    for line in read_record_file(Path(record_dir) / "events.jsonl").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if isinstance(event, dict):
            events.append(event)
    return events


def signal_name(returncode: int | None) -> str | None:
    if returncode is None:
        return None
    num = -returncode if returncode < 0 else (returncode - 128 if 128 < returncode < 160 else None)
    if not num:
        return None
    try:
        return _signal.Signals(num).name
    except ValueError:
        return f"SIG{num}"


def load_outcome(record_dir: Path, returncode: int | None, *, timed_out: bool = False,
                 duration_s: float = 0.0, output_tail: list | None = None,
                 signal_exit_codes: bool = False) -> Outcome:
    """Combine the recorder's events, the faulthandler log and the exit status.

    signal_exit_codes: treat 128+N as death by signal N (a shell or container init
    reports signals that way).
    """
    events = read_events(record_dir)
    out = Outcome(outcome="success", exit_code=returncode, duration_s=duration_s,
                  output_tail=output_tail or [])
    child_exception = None  # a child's failure the recorded process passed on without raising
    exited_normally = False
    opened: set[str] = set()  # linear in the events: a record is the program's to fill (32 MiB cap)
    for ev in events:
        kind = ev.get("ev")
        if kind == "start":
            out.start = ev
            out.recorded = True
        elif kind == "open":
            path = ev.get("path")
            if isinstance(path, str) and path not in opened and len(opened) < MAX_LISTED:
                opened.add(path)
                out.opened.append(path)
        elif kind == "connect":
            if len(out.connects) < MAX_LISTED:
                out.connects.append({"address": ev.get("address"), "family": ev.get("family")})
        elif kind == "import":
            if isinstance(ev.get("module"), str):
                out.modules.setdefault(ev["module"], None)
        elif kind == "modules":
            out.modules.update(ev.get("modules") or {})
            listed = ev.get("package_modules")
            if isinstance(listed, list):
                out.package_modules = [m for m in listed[:MAX_LISTED] if isinstance(m, str)]
            exited_normally = exited_normally or ev.get("why") == "atexit"
        elif kind == "facts":
            out.facts = {k: v for k, v in ev.items() if k != "ev"}
        elif kind == "test_failure" and isinstance(ev.get("exception"), dict) and len(out.test_failures) < 100:
            out.test_failures.append({"test": str(ev.get("test")), "when": ev.get("when"),
                                      "exception": ev["exception"]})
        elif kind == "child_exception" and isinstance(ev.get("exception"), dict):
            child_exception = ev["exception"]
        elif kind == "exception" and ev.get("exception"):
            if ev.get("thread") == "MainThread":
                out.exception = ev["exception"]
            else:
                out.thread_exceptions.append(ev["exception"])
    out.fault_text = read_record_file(Path(record_dir) / "fault.log")[-200_000:]
    if out.fault_text:
        out.fault_frames = parse_faulthandler(out.fault_text)

    sig = None
    if returncode is not None and returncode < 0:
        sig = signal_name(returncode)
    elif signal_exit_codes and returncode is not None and 128 < returncode < 160 and not exited_normally:
        # An init reports death by signal N as 128+N; but sys.exit(130) looks the same,
        # and then the recorder's atexit hook will have run.
        sig = signal_name(returncode)

    if timed_out:
        out.outcome = "timeout"
    elif out.exception is not None:
        out.outcome = "exception"
    elif sig is not None:
        out.outcome = "signal"
        out.signal = sig
    elif returncode and out.test_failures:
        # A test runner caught the tests' exceptions and exited non-zero: the first failing
        # test's exception is the bundle's; the signature takes every failing test.
        out.outcome = "exit"
        out.exception = out.test_failures[0]["exception"]
    elif returncode:
        out.outcome = "exit"
        # A program that catches its own exception and exits non-zero: recover the
        # last traceback it printed, so the signature still names the failure.
        stderr = "".join(text for stream, text in out.output_tail if stream == "stderr")
        parsed = parse_traceback_text(stderr)
        if parsed is not None:
            parsed["from_output"] = True
            out.exception = parsed
        if child_exception is not None:
            out.exception = _with_child(out.exception, child_exception)
    elif out.thread_exceptions:
        out.outcome = "exception"
        out.exception = out.thread_exceptions[0]
    _read_children(Path(record_dir), out)
    return out


def _same_failure(a: dict, b: dict) -> bool:
    from reprex.signature import innermost

    x, y = innermost(a) or a, innermost(b) or b
    return x.get("type") == y.get("type") and (x.get("message") or "").strip() == (y.get("message") or "").strip()


def _with_child(parsed: dict | None, child: dict) -> dict:
    """A run that exited non-zero without raising, with a child that failed: the child's
    recorded exception when nothing else was printed (or what was printed is the child's own
    traceback), else the printed traceback with the child as the cause of its CalledProcessError."""
    if parsed is None or _same_failure(parsed, child):
        return child
    link, depth = parsed, 0
    while link is not None and depth < 20:
        if link.get("type", "").rpartition(".")[2] == "CalledProcessError" and not link.get("cause"):
            link["cause"] = child
            break
        link = link.get("cause") or (None if link.get("suppress_context") else link.get("context"))
        depth += 1
    return parsed


MAX_CHILD_FILES = 300  # import sets read from children/ (the recorder keeps at most 256)


def _read_children(record_dir: Path, out: Outcome) -> None:
    """What the run's Python child processes imported (children/m-*.json): their modules join
    the run's, so the pins take them, and a child's own script counts as an input it read."""
    import os
    import stat as _stat

    folder = record_dir / "children"
    try:
        if not _stat.S_ISDIR(os.lstat(folder).st_mode):
            return
        names = sorted(n for n in os.listdir(folder) if n.startswith("m-") and n.endswith(".json"))
        capped = (folder / "capped").exists()
        failures = sum(1 for n in os.listdir(folder) if n.startswith("x-") and n.endswith(".json"))
    except OSError:
        return
    sets = 0
    listed = set(out.opened)
    for name in names[:MAX_CHILD_FILES]:
        try:
            item = json.loads(read_record_file(folder / name, 1 << 20) or "null")
        except json.JSONDecodeError:
            continue
        if not isinstance(item, dict) or not isinstance(item.get("modules"), dict):
            continue
        sets += 1
        preloaded = set(x for x in item.get("preloaded") or () if isinstance(x, str))
        for module, path in list(item["modules"].items())[:2000]:
            if isinstance(module, str) and module not in preloaded and (path is None or isinstance(path, str)):
                if out.modules.get(module) is None:
                    out.modules[module] = path
        for module, dists in (item.get("module_dists") or {}).items():
            if isinstance(module, str) and isinstance(dists, list):
                known = out.child_module_dists.setdefault(module, [])
                known.extend(d for d in dists if isinstance(d, str) and d not in known)
        for dist, version in (item.get("versions") or {}).items():
            if isinstance(dist, str) and isinstance(version, str):
                out.child_versions.setdefault(dist, version)
        read = [item.get("main_file")] + list(item.get("opened") or [])[:500]
        for path in read:
            if isinstance(path, str) and path not in listed and len(out.opened) < MAX_LISTED:
                listed.add(path)
                out.opened.append(path)
    if sets or failures or capped:
        out.children = {"import_sets": sets, "failures": failures, "capped": capped}


# -- faulthandler -----------------------------------------------------------------

_FAULT_FRAME = re.compile(r'^\s+File "(?P<file>.*)", line (?P<line>\d+) in (?P<func>\S+)')
_FAULT_THREAD = re.compile(r"^(?P<current>Current thread|Thread) (?P<id>0x[0-9a-f]+)", re.I)


def parse_faulthandler(text: str) -> list[dict]:
    """Frames of the dump's current (or first) thread, innermost first, as in the dump."""
    blocks: list[tuple[bool, list[dict]]] = []
    for line in text.splitlines():
        m = _FAULT_THREAD.match(line)
        if m:
            blocks.append((m.group("current").lower().startswith("current"), []))
            continue
        m = _FAULT_FRAME.match(line)
        if m:
            if not blocks:
                blocks.append((True, []))
            blocks[-1][1].append({"file": m.group("file"), "line": int(m.group("line")),
                                  "function": m.group("func"), "qualname": m.group("func")})
    if not blocks:
        return []
    # The last dump wins (a hang dumps once at the timeout); prefer its current thread.
    current = [frames for is_current, frames in blocks if is_current]
    return current[-1] if current else blocks[-1][1]


# -- traceback text -------------------------------------------------------------------

_TB_HEAD = "Traceback (most recent call last):"
_TB_FRAME = re.compile(r'^\s*File "(?P<file>[^"]*)", line (?P<line>\d+)(?:, in (?P<func>.+))?$')
_TB_EXC = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Group|[A-Z]\w*))(?::\s?(?P<msg>.*))?$")
_CHAIN_CAUSE = "The above exception was the direct cause of the following exception:"
_CHAIN_CONTEXT = "During handling of the above exception, another exception occurred:"


def parse_traceback_text(text: str) -> dict | None:
    """Parse the last printed traceback (with its chain) into a recorder-shaped record.

    Handles chained tracebacks, `^^^^` markers, and log prefixes before each line
    (Ray prints tracebacks inside log lines), by anchoring on the header's column.
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.rstrip().endswith(_TB_HEAD)]
    if not starts:
        return None
    # Group consecutive tracebacks joined by chain markers; take the last group.
    records: list[tuple[str | None, dict]] = []
    link: str | None = None
    last_end = -1
    for start in starts:
        if start < last_end:
            continue
        between = "\n".join(lines[last_end + 1:start]) if last_end >= 0 else ""
        if last_end >= 0 and _CHAIN_CAUSE not in between and _CHAIN_CONTEXT not in between:
            records = []
        link = "cause" if _CHAIN_CAUSE in between else ("context" if _CHAIN_CONTEXT in between else None)
        rec, end = _parse_one(lines, start)
        if rec is None:
            continue
        records.append((link, rec))
        last_end = end
    if not records:
        return None
    # Outermost first in text; the last one printed is the one raised.
    result = None
    for link, rec in records:
        if result is not None:
            rec.setdefault("cause", None)
            rec.setdefault("context", None)
            rec["cause" if link == "cause" else "context"] = result
        result = rec
    return result


def _parse_one(lines: list[str], start: int) -> tuple[dict | None, int]:
    prefix_len = len(lines[start]) - len(lines[start].lstrip()) if lines[start].lstrip().startswith(_TB_HEAD) \
        else lines[start].index(_TB_HEAD)
    frames: list[dict] = []
    i = start + 1
    while i < len(lines):
        line = lines[i][prefix_len:] if len(lines[i]) >= prefix_len else lines[i]
        m = _TB_FRAME.match(line)
        if m:
            source = ""
            if i + 1 < len(lines):
                nxt = lines[i + 1][prefix_len:]
                if nxt.startswith("    ") and not _TB_FRAME.match(nxt):
                    source = nxt.strip()
            func = (m.group("func") or "<module>").strip()
            frames.append({"file": m.group("file"), "line": int(m.group("line")), "function": func,
                           "qualname": func, "source": source})
            i += 1
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith(("^", "~")) or line.startswith("    ") or stripped.startswith("..."):
            i += 1
            continue
        m = _TB_EXC.match(stripped)
        if m:
            message = [m.group("msg") or ""]
            j = i + 1
            while j < len(lines) and lines[j].strip() and not lines[j].rstrip().endswith(_TB_HEAD) \
                    and _CHAIN_CAUSE not in lines[j] and _CHAIN_CONTEXT not in lines[j]:
                message.append(lines[j][prefix_len:])
                j += 1
            return ({"type": m.group("type"), "message": "\n".join(message).strip(), "notes": [],
                     "frames": frames, "cause": None, "context": None, "suppress_context": False}, j - 1)
        i += 1
    return None, i


# -- formatting ---------------------------------------------------------------------

def format_exception(exc: dict | None, *, _depth: int = 0) -> str:
    """A recorder exception record as Python prints it (chain first, raised last)."""
    if not exc or _depth > 20:
        return ""
    parts = []
    if exc.get("cause"):
        parts.append(format_exception(exc["cause"], _depth=_depth + 1))
        parts.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif exc.get("context") and not exc.get("suppress_context"):
        parts.append(format_exception(exc["context"], _depth=_depth + 1))
        parts.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    child = exc.get("child")
    if isinstance(child, dict):
        argv = " ".join(str(a) for a in (child.get("argv") or [])[:20]).replace("\n", "\\n")
        parts.append(f"In child process {child.get('pid')} ({argv[:300]}):\n")
    if exc.get("frames"):
        parts.append("Traceback (most recent call last):\n")
        for frame in exc["frames"]:
            parts.append(f'  File "{frame.get("file")}", line {frame.get("line")}, in {frame.get("function")}\n')
            if frame.get("source"):
                parts.append(f"    {frame['source']}\n")
    message = exc.get("message") or ""
    parts.append(f"{exc.get('type', 'Exception')}: {message}\n" if message else f"{exc.get('type', 'Exception')}\n")
    for note in exc.get("notes") or ():
        parts.append(f"{note}\n")
    for i, child in enumerate(exc.get("children") or (), 1):
        body = format_exception(child, _depth=_depth + 1)
        parts.append(f"  +---------------- {i} ----------------\n")
        parts.append("".join("  | " + line + "\n" for line in body.splitlines()))
    return "".join(parts)


def outcome_text(out: Outcome, scrub=None) -> str:
    """The original failure as text: the traceback, the crash dump, or the exit status.

    ``scrub`` (the redactor's text scrub) runs on the whole text before any cut, so a cut
    never leaves a fragment of a secret the redactor can no longer recognise."""
    scrub = scrub or (lambda t: t)
    if out.outcome in ("exception", "exit") and out.exception:
        text = format_exception(out.exception)
        if out.outcome == "exit":
            text = f"(process exited with status {out.exit_code}; traceback recovered from its output)\n" + text
        return scrub(text)
    if out.outcome in ("signal", "timeout"):
        head = (f"Process killed by {out.signal}\n" if out.outcome == "signal"
                else f"Timed out after {out.duration_s:.1f}s; stacks at that moment:\n")
        return scrub(head + out.fault_text)
    if out.outcome == "exit":
        stderr = scrub("".join(text for stream, text in out.output_tail if stream == "stderr"))
        if len(stderr) > 8000:  # cut at a line break, after scrubbing
            cut = stderr[-8000:]
            stderr = cut.split("\n", 1)[1] if "\n" in cut else cut
        return f"Process exited with status {out.exit_code}\n" + stderr
    return scrub("The run succeeded.\n")
