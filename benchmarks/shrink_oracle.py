"""The hand-written oracle benchmarks/shrink.py gives every tool: exit 0 when a candidate still
fails the way the case's original does.

    python shrink_oracle.py CASE_DIR CANDIDATE_FILE

Copies the case's files into a fresh directory with CANDIDATE_FILE as the case's target,
runs the case's program in this interpreter (benchmarks/shrink.py starts the oracle with the
case's own; a 30 s timeout) and compares the failure:
exception type, the innermost 3 frames as file:function, and the message when the case
asks for it. That is reprex's signature written by hand, as a user of the peers would. A
case with a `control` interpreter (the pins that fix the bug) is differential, as C-Reduce's
tests for a miscompilation are: a candidate that fails the same way there too shows a bug
that isn't this one, and is refused (one more run, only for candidates that pass the first).
Appends a line to $SHRINK_ORACLE_COUNTER per run so every tool's calls are counted alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

def outcome(case_dir: Path, spec: dict, candidate: bytes | None) -> dict | None:
    """Run the case's program in this process (one interpreter start per call, for every tool)."""
    with tempfile.TemporaryDirectory(prefix="shrink-oracle-") as tmp:
        run_dir = Path(tmp)
        for path in case_dir.rglob("*"):
            rel = path.relative_to(case_dir)
            if rel.parts[0].startswith(".") or path.is_dir():
                continue
            dest = run_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if str(rel) == spec["target"] and candidate is not None:
                dest.write_bytes(candidate)
            else:
                shutil.copy(path, dest)
        os.chdir(run_dir)
        sys.argv = list(spec["argv"])
        sys.path.insert(0, str(run_dir))
        signal.signal(signal.SIGALRM, _timeout)
        signal.alarm(30)
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                runpy.run_path(sys.argv[0], run_name="__main__")
        except _Timeout:
            return None
        except BaseException as exc:  # noqa: BLE001 - the failure is what we compare
            frames = [f"{os.path.basename(f.filename)}:{f.name}" for f in traceback.extract_tb(exc.__traceback__)
                      if "runpy" not in f.filename and not f.filename.endswith("shrink_oracle.py")]
            return {"type": type(exc).__name__, "frames": frames[-3:], "message": str(exc)}
        finally:
            signal.alarm(0)
            os.chdir(case_dir)
    return None


class _Timeout(BaseException):
    pass


def _timeout(signum, frame):
    raise _Timeout()


def same(a: dict | None, b: dict | None, message: bool) -> bool:
    if a is None or b is None:
        return False
    keys = ("type", "frames", "message") if message else ("type", "frames")
    return all(a[k] == b[k] for k in keys)


def controlled(case_dir: Path, spec: dict, candidate: Path, expected: dict) -> bool:
    """Does the candidate also fail this way under the pins that fix the bug? Then it shows
    another bug (one that fails everywhere), not this one: `from packaging import LegacyVersion`
    fails the same way on 21.3 as on 22.0."""
    control = spec.get("control")
    if not control:
        return False
    proc = subprocess.run([control, *spec["flags"], __file__, "--outcome", str(case_dir), str(candidate)],
                          capture_output=True, text=True, timeout=60)
    try:
        return same(json.loads(proc.stdout.strip().splitlines()[-1]), expected, spec["message"])
    except (ValueError, IndexError):
        return False


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--outcome":  # the control run: this interpreter's outcome on stdout
        case_dir, candidate = Path(argv[1]), Path(argv[2])
        spec = json.loads((case_dir / ".case.json").read_text())
        got = outcome(case_dir, spec, candidate.read_bytes())
        sys.stdout.write(json.dumps(got) + "\n")
        sys.stdout.flush()
        os._exit(0)
    case_dir, candidate = Path(argv[0]), Path(argv[1])
    counter = os.environ.get("SHRINK_ORACLE_COUNTER")
    if counter:
        with open(counter, "a") as fh:
            fh.write("1\n")
    spec = json.loads((case_dir / ".case.json").read_text())
    candidate_bytes = candidate.read_bytes()
    expected_path = case_dir / ".expected.json"
    if expected_path.exists():
        expected = json.loads(expected_path.read_text())
    else:
        expected = outcome(case_dir, spec, None)
        tmp = expected_path.with_suffix(f".{os.getpid()}")
        tmp.write_text(json.dumps(expected))
        os.replace(tmp, expected_path)
        return 0
    got = outcome(case_dir, spec, candidate_bytes)
    verdict = same(got, expected, spec["message"]) and not controlled(case_dir, spec, candidate, expected)
    os._exit(0 if verdict else 1)  # the candidate's threads and atexit hooks are not waited for


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
