"""A failed test made into a bundle whose expected signature is pytest's failure, or honestly not.

The test can be re-run two ways: the standalone script (no pytest: pytest_reprex.script)
or pytest itself on the one node id. A form is used only when its scratch run fails the way
the test did, judged on the whole failure (reprex.capture.same_failure: types, frames up to
the test function, normalized message), never on types alone: a harness error of the same
type must not become a bundle that "reproduces". The standalone form is tried first when
it can work (it needs nothing of pytest at replay), pytest next; when neither fails like the
test, the bundle expects the test's own failure and says so (`test.reproduces: false`).
No pytest import: the plugin (pytest_reprex.capture) describes the test in `Forms`.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

from reprex.capture.same_failure import difference
from reprex.capture.tests import under
from reprex.pins import canonical


@dataclasses.dataclass
class Forms:
    """The failed test and the ways it may be re-run."""

    nodeid: str  # as the bundle may show it (redacted)
    when: str = "call"  # collect | setup | call | teardown
    function: str | None = None  # the test function's qualname: where a failure's frame span ends
    write_script: Callable[[Path], None] | None = None  # writes the standalone script (and its helper)
    script_name: str = ""
    skip_standalone: str = ""  # why the standalone script is not tried (it can't rebuild the test)
    pytest_args: list[str] | None = None  # python arguments running the test under pytest
    no_pytest: str = ""  # why there is no pytest form


@dataclasses.dataclass
class BuiltBundle:
    path: Path
    reproduces: bool  # its entry failed like the test at capture
    mode: str  # standalone | pytest
    reason: str


def scratch_environ() -> dict:
    import os

    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTEST_", "COV_CORE_", "REPREX_RECORD")) and k not in ("PYTHONPATH",)}


def drop_editable_pins(draft) -> None:
    """An editable install is the project under test, copied as files: not a pin to install."""
    flagged = (draft.manifest.get("pins") or {}).get("flagged") or []
    names = {canonical(p["name"]) for p in flagged if "editable" in (p.get("flags") or [])}
    if not names:
        return
    kept = []
    for line in draft.files.get("requirements.txt", b"").decode("utf-8", "replace").splitlines():
        head = re.split(r"[=<>@ ;\[]", line.strip(), maxsplit=1)[0]
        if canonical(head) in names:
            continue
        kept.append(line)
    draft.files["requirements.txt"] = ("\n".join(kept) + "\n").encode() if kept else b""
    draft.manifest["pins"]["dropped_editable"] = sorted(names)


def pytest_failure(outcome, nodeid: str, when: str) -> dict | None:
    """The recorded failure of `nodeid` at `when` in a pytest run, if it failed there."""
    for failure in getattr(outcome, "test_failures", None) or ():
        if failure.get("test") == nodeid and (failure.get("when") or "call") == when:
            return failure.get("exception")
    return None


_RUNNER = ("_pytest/", "pluggy/")


def quiet_runner_frames(exc: dict | None, depth: int = 0) -> dict | None:
    """The record without the locals of pytest's and pluggy's own frames (funcargs, the item,
    its tmp directory named after the test id): noise to a reader, and a place for a secret."""
    if not isinstance(exc, dict) or depth > 20:
        return exc
    frames = [{k: v for k, v in f.items() if k not in ("locals", "arg_values")}
              if str(f.get("loc") or "").startswith(_RUNNER) else f for f in exc.get("frames") or []]
    out = {**exc, "frames": frames}
    for key in ("cause", "context"):
        if exc.get(key):
            out[key] = quiet_runner_frames(exc[key], depth + 1)
    if exc.get("children"):
        out["children"] = [quiet_runner_frames(c, depth + 1) for c in exc["children"]]
    return out


def _ended(outcome, nodeid: str | None = None) -> str:
    """How a re-run that did not fail like the test ended, in a few words."""
    from reprex.signature import type_list

    for failure in getattr(outcome, "test_failures", None) or ():
        if failure.get("test") == nodeid:
            return f"it failed in {failure.get('when')} instead: {' <- '.join(type_list(failure.get('exception')))}"
    if outcome.outcome == "success":
        return "it ran without the failure"
    if outcome.outcome == "exit":
        return f"it exited with status {outcome.exit_code} and no failure of the test"
    if outcome.outcome == "exception" and outcome.exception:
        return f"it raised {' <- '.join(type_list(outcome.exception))}{_said(outcome.exception)}"
    if outcome.outcome == "signal":
        return f"it was killed by {outcome.signal or 'a signal'}"
    if outcome.outcome == "timeout":
        return "it timed out"
    return f"it ended with {outcome.outcome}"


_SAID = 300


def _said(exc: dict) -> str:
    """`: 'message'` of the exception (escaped, as repr shows it), whole or not at all: a cut
    could leave a secret's fragment the bundle's redactor no longer recognizes."""
    from reprex.signature import innermost

    message = str((innermost(exc) or exc or {}).get("message") or "")
    if not message:
        return ""
    if len(message) > _SAID:
        return f" ({len(message)} characters of message)"
    return f": {message!r}"


def build_test_bundle(*, base: Path, work_files: list[str], tmp_files: dict[str, bytes], forms: Forms, name: str,
                      expected: dict, env: dict, timeout: float | None, test: dict, output: Path,
                      extra_secrets=(), warm=None) -> BuiltBundle:
    """Re-run the test in a scratch copy of the project (`work_files` under `base`) in the forms
    it has, and write the bundle of the first one that fails like `expected` (the recorder's
    record of the test's exception) to `output`. The bundle's redactor works over `env` and
    `extra_secrets` (what the plugin found secret in the test's values and ids). `warm`: a
    reprex.warm.Warm whose servers the runs fork from (per test file and form) when it has one."""
    from reprex.redact import Redactor

    if forms.write_script is None and forms.pytest_args is None:
        raise ValueError(f"no way to re-run {forms.nodeid}: {forms.no_pytest or 'no standalone script'}")
    scratch = _Scratch(forms, quiet_runner_frames(expected), env, timeout,
                       Redactor(env, extra_secrets=list(extra_secrets)), warm)
    try:
        scratch.copy(base, work_files)
        scratch.base = Path(base)
        return scratch.bundle(tmp_files, base, test, name, output)
    finally:
        shutil.rmtree(scratch.root, ignore_errors=True)


class _Scratch:
    """One failed test's scratch copy, the runs made there, and what they showed."""

    def __init__(self, forms: Forms, expected: dict, env: dict, timeout: float | None, red, warm=None):
        self.forms, self.expected, self.timeout, self.red, self.warm = forms, expected, timeout, red, warm
        self.root = Path(tempfile.mkdtemp(prefix="reprex-pytest-capture-"))
        self.base: Path | None = None  # the project the scratch copy is of
        self.work = self.root / "work"
        (self.root / "tmp").mkdir()
        self.env = {**env, "TMPDIR": str(self.root / "tmp")}  # what the runs make in tmp goes with the scratch
        self.not_copied: dict[str, tuple[int, int]] = {}  # package dir -> (files, bytes) over the budget

    def copy(self, base: Path, work_files: list[str]) -> None:
        """The project's files the session used, and the other source files of its packages
        (reprex.capture.inputs.package_siblings), so the bundle can carry what only a fixed
        run imports; those within the capture's default budgets, as the bundle takes them."""
        from reprex.capture.inputs import DEFAULT_MAX_FILE, DEFAULT_MAX_TOTAL, package_siblings

        self.work.mkdir()
        for rel in work_files:
            target = self.work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(base / rel, target)
        root = base.resolve()
        have = {(root / rel).as_posix() for rel in work_files}
        total = 0
        found, _ = package_siblings(root, [root / rel for rel in work_files])
        package_of = {f: package for package, files in found.items() for f in files}
        for path in sorted(package_of, key=lambda f: (len(f.parts), f)):
            if path.as_posix() in have or path.is_symlink():
                continue
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size > DEFAULT_MAX_FILE or total + size > DEFAULT_MAX_TOTAL:
                # the bundle could not carry it either: said in its skip list (see _write)
                package = package_of[path].relative_to(root).as_posix() + "/"
                count, nbytes = self.not_copied.get(package, (0, 0))
                self.not_copied[package] = (count + 1, nbytes + size)
                continue
            target = self.work / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            total += size

    def run(self, python_args: list[str]):
        from reprex.recorded import run_recorded

        argv = [sys.executable, *python_args]
        if self.warm is not None:  # one warm server per test file and form: they import alike
            key = f"{_test_file(self.forms.nodeid)}|{'pytest' if python_args[:1] == ['-m'] else 'script'}"
            return self.warm.run(key, argv, cwd=self.work, env=self.env, timeout=self.timeout, tee=False).outcome
        return run_recorded(argv, cwd=self.work, env=self.env, timeout=self.timeout, tee=False).outcome

    def bundle(self, tmp_files: dict[str, bytes], base: Path, test: dict, name: str, output: Path) -> BuiltBundle:
        from reprex.signature import type_list

        forms, expected = self.forms, self.expected
        record = {"when": forms.when, "test_failure": type_list(expected), "standalone_reproduces": False}
        notes: list[str] = []
        standalone = None

        def write(outcome, mode: str, reproduces: bool, reason: str) -> BuiltBundle:
            entry = _pytest_entry(forms, base) if mode == "pytest" else _standalone_entry(forms, base)
            return _write(self, outcome, entry, test, {**record, "mode": mode, "reproduces": reproduces,
                                                      "mode_reason": reason}, name, output)

        # The script first when it can work (it needs nothing of pytest at replay); not at all when it
        # can't and pytest can: a second scratch run costs about a second.
        if forms.write_script is not None and not (forms.skip_standalone and forms.pytest_args is not None):
            for rel, data in tmp_files.items():
                target = self.work / "_reprex_tmp" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            forms.write_script(self.work / forms.script_name)  # and its machinery beside it
            standalone = self.run([forms.script_name])
            got = standalone.exception if standalone.outcome == "exception" else None
            diff = difference(expected, got, function=forms.function) if got else _ended(standalone)
            record["standalone_reproduces"] = diff is None
            record["standalone_outcome"] = {"outcome": standalone.outcome, "types": type_list(got) if got else [],
                                            "exit_code": standalone.exit_code}
            if diff is None:
                return write(standalone, "standalone", True, "the standalone script fails like the test did")
            notes.append(f"standalone run differs: {diff}")
        elif forms.write_script is not None:
            notes.append(f"standalone script not tried: {forms.skip_standalone}")
        else:
            notes.append(f"no standalone script: {forms.skip_standalone or 'not for this kind of failure'}")
        if forms.pytest_args is None:
            notes.append(f"no pytest form: {forms.no_pytest}")
            expecting = dataclasses.replace(standalone, outcome="exception", exception=expected, exit_code=1,
                                            signal=None)
            return write(expecting, "standalone", False, "; ".join(notes))
        ran = self.run(forms.pytest_args)
        ran.test_failures = [{**t, "exception": quiet_runner_frames(t.get("exception"))} for t in ran.test_failures]
        got = pytest_failure(ran, forms.nodeid, forms.when)
        diff = difference(expected, got, function=forms.function) if got else _ended(ran, forms.nodeid)
        record["pytest_reproduces"] = diff is None
        if diff is None:
            return write(ran, "pytest", True, "; ".join(notes))
        notes.append(f"pytest run differs: {diff}")
        # Neither: the bundle expects the test's own failure, in the shape a pytest run records it.
        expecting = dataclasses.replace(
            ran, outcome="exit", exit_code=2 if forms.when == "collect" else 1, exception=None, signal=None,
            test_failures=[{"test": forms.nodeid, "when": forms.when, "exception": expected}])
        return write(expecting, "pytest", False, "; ".join(notes))


def _standalone_entry(forms: Forms, base: Path) -> dict:
    return {"argv": ["python", "-m", "pytest", forms.nodeid], "cwd": str(base), "kind": "test",
            "python_args": [forms.script_name]}


def _pytest_entry(forms: Forms, base: Path) -> dict:
    return {"argv": ["python", *forms.pytest_args], "cwd": str(base), "kind": "test",
            "python_args": list(forms.pytest_args)}


def _write(scratch: _Scratch, outcome, entry: dict, test: dict, record: dict, name: str,
           output: Path) -> BuiltBundle:
    """Assemble the bundle from the chosen run (its pins, its files), change the draft, seal it."""
    from reprex.capture.inputs import DEFAULT_MAX_TOTAL
    from reprex.capture.pipeline import CaptureOptions, assemble
    from reprex.draft import seal
    from reprex.escape import md_inline
    from reprex.signature import innermost

    forms, work = scratch.forms, scratch.work
    pytest_mode = record["mode"] == "pytest"
    outcome = _as_the_projects(outcome, work, scratch.base)
    # The entry's own file is always wanted: the script, or the test module pytest runs.
    script = work / (_test_file(forms.nodeid) if pytest_mode else forms.script_name)
    draft = assemble(outcome, argv=[sys.executable, *entry["python_args"]], cwd=work, environ=scratch.env,
                     python=sys.executable, options=CaptureOptions(tee=False, name=name), entry=entry,
                     script=script if script.is_file() and under(script.resolve(), work.resolve()) else None,
                     redactor=scratch.red)
    if pytest_mode:
        failure = pytest_failure(outcome, forms.nodeid, forms.when)
        if failure and not draft.manifest["expect"].get("exception"):
            inner = innermost(failure) or failure
            draft.manifest["expect"]["exception"] = scratch.red.obj(
                {"type": failure.get("type"), "message": (failure.get("message") or "")[:2000],
                 "innermost_type": inner.get("type")}, "traceback")
        draft.readme_notes.append("Replays the test under pytest: " + md_inline(" ".join(entry["argv"]), 600))
    if not record["reproduces"]:
        if draft.readme_notes:
            draft.readme_notes.append("")  # a paragraph of its own
        draft.readme_notes.append("**Not reproduced at capture:** re-run alone, the test did not fail as it did in "
                                  "its session (" + md_inline(record["mode_reason"], 600) + "); the bundle expects "
                                  "the session's failure.")
    draft.add("test", {**test, **record})  # scrubbed by the bundle's redactor like every other part
    files = draft.manifest.get("files") or {}
    if files.get("skipped"):  # reads of the script's own copies of tmp_path: not inputs
        root = str(scratch.root)
        files["skipped"] = [f for f in files["skipped"] if not str(f.get("path", "")).startswith(root)]
        for item in files["skipped"]:  # the check was against the scratch copy, not the project
            if item.get("reason") == "outside the working directory" and _in_project(item.get("path"), scratch.base,
                                                                                      draft.redactor):
                item["reason"] = IN_PROJECT
    for package, (count, size) in sorted(scratch.not_copied.items()):
        files.setdefault("skipped", []).append(scratch.red.obj(
            {"path": package, "size": size, "reason": f"{count} more source files of this package left out "
                                                      f"(over the total budget ({DEFAULT_MAX_TOTAL} bytes))"}, "files"))
    _opened_in_project(draft, work, scratch.base)
    drop_editable_pins(draft)
    return BuiltBundle(seal(draft).write(output), bool(record["reproduces"]), record["mode"], record["mode_reason"])


IN_PROJECT = ("in the project, but the re-run read it there, not from the copy it ran in (an editable install's "
              "path, or an absolute one): not included")


def _in_project(path, base: Path | None, red) -> bool:
    """Is `path` (as the manifest lists it: redacted) a file of the project at `base`?"""
    if not isinstance(path, str) or base is None:
        return False
    for root in {str(base), str(base.resolve()), red.text(str(base), "files")}:
        if path.startswith(root.rstrip("/") + "/"):
            return True
    return False


def _as_the_projects(outcome, work: Path, base: Path | None):
    """The run as if it ran in the project: the scratch copy's paths in its exceptions (frames,
    messages, locals), test failures, crash dump and output made the project's (`base`), so a
    bundle's traceback shows tests/test_x.py where the user has it, and `entry.cwd` (the
    project) leads to the bundle's own copy of each frame's file. Frame keys are file names
    and normalized messages keep a path's last part only: the signature does not change.
    What the run opened and imported keeps the scratch paths the inputs are read from."""
    if base is None:
        return outcome
    olds = sorted({str(work), str(work.resolve())}, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(o) for o in olds) + r"(?=[/\\\s'\":,)\]]|$)")
    new = str(base)

    def walk(value, depth: int = 0):
        if isinstance(value, str):
            return pattern.sub(lambda _: new, value)
        if depth > 60:
            return value
        if isinstance(value, list):
            return [walk(v, depth + 1) for v in value]
        if isinstance(value, dict):
            return {k: walk(v, depth + 1) for k, v in value.items()}
        return value

    return dataclasses.replace(outcome, exception=walk(outcome.exception),
                               thread_exceptions=walk(outcome.thread_exceptions),
                               test_failures=walk(outcome.test_failures), fault_frames=walk(outcome.fault_frames),
                               fault_text=walk(outcome.fault_text), output_tail=walk(outcome.output_tail))


def _opened_in_project(draft, work: Path, base: Path | None) -> None:
    """run.json's list of the files the run opened, with the project's paths for its scratch
    copy's (the inputs were read from the copy by then). The project's path is redacted as
    every path in the bundle is (the home directory)."""
    import json

    from reprex.bundle import canonical_json

    raw = draft.files.get("run.json")
    if base is None or raw is None:
        return
    run = json.loads(raw)
    new = draft.redactor.text(str(base), "opened")
    olds = sorted({str(work), str(work.resolve())}, key=len, reverse=True)

    def rebased(path):
        for old in olds:
            if isinstance(path, str) and (path == old or path.startswith(old + "/")):
                return new + path[len(old):]
        return path

    if isinstance(run.get("opened"), list):
        run["opened"] = [rebased(p) for p in run["opened"]]
        draft.files["run.json"] = canonical_json(run)


def _test_file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]
