"""`pytest --reprex-capture DIR`: turn each failing test into a bundle.

For a failed test this module
1. plans how a standalone script can rebuild every value the test function got
   (pytest_reprex.plan); `tmp_path` and paths into pytest's temporary
   directories point at a copy of what was there when the test started.
   A value that holds a secret is never embedded: the bundle's redactor can scrub a
   literal's text but not the bytes inside a base64 pickle, so a literal or a pickle
   is used only when redaction changes neither its repr nor its pickled bytes;
   otherwise it is rebuilt from its fixture's source (flagged) or left out
   (`unsupported`). See reprex.capture.tests.Secrets;
2. copies the test run's local files (the test module, its conftest.py files and pytest's
   config file, the project modules imported, the files the test read) into a scratch
   work dir;
3. hands them to reprex.capture.failed_test.build_test_bundle (library work, no pytest):
   it re-runs the test there, as the standalone script and/or as pytest on the one node
   id (`pytest_form`), and builds the bundle from the run that fails like the test did
   (types, frames, message), so the bundle's expected signature is pytest's failure and
   its own entry produces it. The script is not tried when it can't work (values it can't
   rebuild, setup errors). When neither form fails like the test did, the bundle expects
   the test's failure and is marked `reproduces: false`.
Collection errors (a test module that no longer imports) become pytest-form bundles too
(`capture_collect_error`).
This module reads pytest's objects (fixture definitions, conftests, tmp_path); the
values, snapshots and the bundle itself are the library's.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import traceback
from pathlib import Path

from pytest_reprex.plan import make_plan
from pytest_reprex.plan import script_name as script_name_for
from pytest_reprex.script import HELPER, write
from pytest_reprex.session_args import carried_options
from reprex.capture.failed_test import Forms, build_test_bundle, scratch_environ
from reprex.capture.inputs import DEFAULT_MAX_FILE
from reprex.capture.tests import (Secrets, Tree, carried_secrets, materialize, paths_in, rename_test_tmp,
                                  snapshot_files, under)

MAX_COPY_FILES = 5000

# The audit hook is process-wide and permanent; it records only while a sink is set: `sink`
# during one test's call (the files the test read), `session` for the whole session, but only
# under the rootdir (data files a module or a class setup read before any test ran: pint's
# default_en.txt, read by a setup_class, is what its re-runs need beside its modules).
_AUDIT = {"installed": False, "sink": None, "session": None, "root": None}


def _audit(event, args):
    sink, session = _AUDIT["sink"], _AUDIT["session"]
    if event != "open" or (sink is None and session is None):
        return
    try:
        path, mode, flags = args
        if path is None or isinstance(path, int):
            return
        if mode is not None:
            reading = "r" in mode and "+" not in mode
        else:
            reading = (flags or 0) & 3 == os.O_RDONLY
        if reading:
            full = os.path.abspath(os.fsdecode(path))
            if sink is not None:
                sink.add(full)
            if session is not None and full.startswith(_AUDIT["root"]):
                session.add(full)
    except Exception:
        pass


def install_audit_hook(root: Path) -> set:
    """Start recording the files read under `root` (pytest's rootdir); returns that set."""
    if not _AUDIT["installed"]:
        sys.addaudithook(_audit)
        _AUDIT["installed"] = True
    if _AUDIT["session"] is None:
        _AUDIT["root"] = os.path.join(os.path.abspath(root), "")
        _AUDIT["session"] = set()
    return _AUDIT["session"]


def begin_recording_opens() -> set:
    sink: set = set()
    _AUDIT["sink"] = sink
    return sink


def end_recording_opens() -> None:
    _AUDIT["sink"] = None


@dataclasses.dataclass
class Captured:
    nodeid: str
    path: Path | None
    reproduces: bool = False  # the bundle's entry failed like the test at capture
    flagged: list[str] = dataclasses.field(default_factory=list)
    error: str = ""
    mode: str = ""  # standalone | pytest
    reason: str = ""  # why this mode (and why it does not reproduce, when it doesn't)


class CaptureState:
    def __init__(self, directory: Path, max_count: int, timeout: float, session_opened: set | None = None,
                 every: bool = False):
        self.directory = directory
        self.max_count = max_count
        self.timeout = timeout
        self.every = every  # --reprex-capture-all: also failures with the signature of one already captured
        self.count = 0
        self.firsts: dict[str, str] = {}  # signature id -> the node id captured for it
        self.results: list[Captured] = []
        self.session_opened = session_opened if session_opened is not None else set()
        self.names: dict[str, str] = {}  # bundle name -> the node id it was given to
        # Re-runs fork from warm servers (reprex.warm): the first failure of a test file pays
        # for the interpreter and its imports, the next ones don't. REPREX_WARM=0: all cold.
        from reprex.warm import Warm, enabled

        self.warm = Warm() if enabled() else None

    def close(self) -> None:
        if self.warm is not None:
            self.warm.close()


# -- pytest's temporary directories ------------------------------------------------------

def basetemp(item) -> Path | None:
    factory = (item.funcargs or {}).get("tmp_path_factory") or getattr(item.config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None)
    return Path(base).resolve() if base else None


def snapshot(item) -> dict | None:
    """What the test's temporary directories held when it started (before its call).

    Runs before every test's call while capturing, so it stays cheap: small files are read
    now, bigger ones only noted (size, mtime) and read if the test fails and they are
    unchanged (see `materialize`)."""
    base = basetemp(item)
    if base is None:
        return None
    funcargs = item.funcargs or {}
    roots: list[Path] = []
    tmp = funcargs.get("tmp_path")
    if tmp is not None:
        roots.append(Path(tmp).resolve())
    for value in funcargs.values():
        for text in paths_in(value):
            try:
                path = Path(text).resolve()
            except (OSError, ValueError):
                continue
            if under(path, base) and path != base and path.exists():
                roots.append(path)
    return snapshot_files(base, roots, Path(tmp).resolve() if tmp is not None else None)


# -- the work tree ----------------------------------------------------------------------------

def work_files(path, tree: Tree, opened: set, extra=()) -> list[str]:
    """Relative paths of the project files a re-run of the test at `path` may need."""
    wanted: list[str] = []
    seen: set[str] = set()

    def add(path) -> None:
        rel = tree.rel(path)
        if rel is None or rel == "." or rel in seen:
            return
        full = tree.base / rel
        if not full.is_file() or full.suffix in (".pyc", ".pyo"):
            return
        seen.add(rel)
        wanted.append(rel)

    add(path)
    for rel in extra:
        add(tree.base / rel)
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and file.endswith(".py"):
            add(file)
    for path in sorted(opened):
        try:
            if os.path.getsize(path) <= DEFAULT_MAX_FILE:  # a bundle carries no bigger input
                add(path)
        except OSError:
            pass
    # packages on the way to the test module
    for rel in list(wanted):
        parent = (tree.base / rel).parent
        while under(parent, tree.base) and parent != tree.base:
            init = parent / "__init__.py"
            if init.exists():
                add(init)
            parent = parent.parent
    return wanted[:MAX_COPY_FILES]


MAX_NAME = 100


def bundle_name(nodeid: str, taken: dict | None = None) -> str:
    """A file-safe name for the test's bundle. A name cut to MAX_NAME, or one another node id
    of this session already has (`taken`: name -> node id), ends in a hash of the whole id:
    networkx's long parametrized ids all cut to one name, and each bundle overwrote the last."""
    import hashlib

    name = nodeid.replace(".py::", "-").replace("::", "-").replace("/", "-")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip(".-") or "test"
    if len(name) > MAX_NAME or (taken is not None and taken.get(name, nodeid) != nodeid):
        name = name[:MAX_NAME - 9].rstrip(".-") + "-" + hashlib.sha256(nodeid.encode()).hexdigest()[:8]
    if taken is not None:
        taken[name] = nodeid
    return name


def capture_failure(item, excinfo, state: CaptureState, snap: dict | None, opened: set,
                    random_state: str | None, when: str = "call") -> Captured:
    """A bundle for a test that failed in `when` (setup, call or teardown)."""
    tree, env, secrets = _context(item.config, item.path, Path(snap["base"]) if snap else None,
                                  carried_secrets(dict(item.funcargs or {})))
    # A parametrize id can carry a secret: nothing in the bundle (its name, file names, the
    # manifest, the script) is derived from the raw id.
    nodeid = secrets.redact(item.nodeid)
    if nodeid != item.nodeid:
        snap = rename_test_tmp(snap, secrets)
    plan, values = make_plan(item, tree, snap, random_state, secrets, nodeid)
    pytest_args, no_pytest = pytest_form(item.config, item.nodeid, nodeid, tree, secrets)
    if pytest_args is not None and getattr(plan, "randomly_seed", None) is not None \
            and str(plan.randomly_seed).isdigit():
        pytest_args[-1:-1] = [f"--randomly-seed={plan.randomly_seed}"]
    unsupported = [v.name for v in values if v.how == "unsupported"]
    skip = (f"an error in the test's {when}: the script has no pytest {when}" if when != "call"
            else f"values it can't rebuild: {', '.join(unsupported)}" if unsupported else "")
    cls = getattr(item, "cls", None)
    function = getattr(item, "originalname", None) or item.name.split("[")[0]
    forms = Forms(nodeid=nodeid, when=when, function=f"{cls.__qualname__}.{function}" if cls else function,
                  write_script=lambda target: write(plan, target), script_name=script_name_for(item, tree),
                  skip_standalone=skip, pytest_args=pytest_args, no_pytest=no_pytest)
    name = bundle_name(nodeid + ("" if when == "call" else f" ({when})"), state.names)
    name = name if when == "call" or name.endswith(f"-{when}") else f"{name}-{when}"
    extra = [rel for _, rel in plan.conftests] + [v.module_file for v in values if v.module_file]
    copied = work_files(item.path, tree, _read(state, opened), extra + _config_files(item.config, tree))
    tmp_files = materialize(snap)
    flagged = [v.name for v in values if v.how in ("source", "unsupported")]
    test = {
        "nodeid": nodeid,
        "script": forms.script_name,
        "values": {v.name: v.manifest() for v in values},
        "flagged": flagged,
        "seeds": {"PYTHONHASHSEED": plan.hash_seed, "randomly_seed": plan.randomly_seed,
                  "random_state": plan.random_state is not None},
        "tmp": {"copied": len(tmp_files), "skipped": (snap or {}).get("skipped", [])},
        "pytest": _pytest_version(),
    }
    built = build_test_bundle(base=tree.base, work_files=copied, tmp_files=tmp_files, forms=forms, name=name,
                              expected=_record(excinfo), env=env, timeout=state.timeout, test=test,
                              output=state.directory / f"{name}.reprex.zip", extra_secrets=secrets.extra(),
                              warm=state.warm)
    return Captured(item.nodeid, built.path, built.reproduces, flagged, mode=built.mode, reason=built.reason)


def capture_collect_error(collector, excinfo, state: CaptureState) -> Captured:
    """A bundle for a test module that failed to import at collection: its repro is pytest
    collecting that module (a dependency that dropped a name breaks here first)."""
    tree, env, secrets = _context(collector.config, collector.path)
    nodeid = secrets.redact(collector.nodeid)
    pytest_args, no_pytest = pytest_form(collector.config, collector.nodeid, nodeid, tree, secrets)
    if pytest_args is None:
        return Captured(collector.nodeid, None, error=f"no bundle for a collection error: {no_pytest}")
    forms = Forms(nodeid=nodeid, when="collect", skip_standalone="a collection error", pytest_args=pytest_args,
                  no_pytest=no_pytest)
    name = bundle_name(nodeid.removesuffix(".py") + " (collect)", state.names)
    name = name if name.endswith("-collect") else f"{name}-collect"
    copied = work_files(collector.path, tree, _read(state, set()), _config_files(collector.config, tree))
    test = {"nodeid": nodeid, "pytest": _pytest_version()}
    built = build_test_bundle(base=tree.base, work_files=copied, tmp_files={}, forms=forms, name=name,
                              expected=_record(excinfo), env=env, timeout=state.timeout, test=test,
                              output=state.directory / f"{name}.reprex.zip")
    return Captured(collector.nodeid, built.path, built.reproduces, mode=built.mode, reason=built.reason)


# The conftest form's script takes the name of the standalone script's machinery, whose frame
# reprex.capture.same_failure leaves out when it compares a re-run with pytest's failure.
CONFTEST_SCRIPT = HELPER

_CONFTEST_HEAD = '''"""reprex: pytest could not import {conftest} (it exits 4 before running any test).

This script imports that file the way pytest did (import mode {mode}): the ini's pythonpath
first on sys.path, then the import itself.
"""
import importlib
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for entry in reversed({pythonpath!r}):
    sys.path.insert(0, os.path.join(HERE, entry))
'''
_CONFTEST_IMPORT = {
    "prepend": "sys.path.insert(0, os.path.join(HERE, {root!r}))\nimportlib.import_module({name!r})\n",
    "append": "sys.path.append(os.path.join(HERE, {root!r}))\nimportlib.import_module({name!r})\n",
    "importlib": ("spec = importlib.util.spec_from_file_location({name!r}, os.path.join(HERE, {conftest!r}))\n"
                  "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"),
}


def conftest_script(config, path: Path, tree: Tree) -> tuple[str | None, str]:
    """The text of a script that imports the conftest.py at `path` as pytest imports it, or
    None and why there is none."""
    rel = tree.rel(path)
    if rel is None:
        return None, "the conftest.py lies outside pytest's rootdir"
    mode = str(getattr(config.known_args_namespace, "importmode", None) or "prepend")
    try:
        from _pytest.pathlib import CouldNotResolvePathError, resolve_pkg_root_and_module_name
    except ImportError:  # pytest < 8.1: a conftest without __init__.py beside it (the common case)
        root, name = Path(path).parent, Path(path).stem
        if (root / "__init__.py").exists():
            return None, "this pytest can't say under which name it imports the conftest.py"
    else:
        try:
            root, name = resolve_pkg_root_and_module_name(Path(path))
        except CouldNotResolvePathError:
            root, name = Path(path).parent, Path(path).stem
    root_rel = tree.rel(root)
    if root_rel is None:
        return None, "the conftest.py's package root lies outside pytest's rootdir"
    try:
        entries = [tree.rel(p) for p in config.getini("pythonpath")]
    except (ValueError, KeyError):
        entries = []
    if mode not in _CONFTEST_IMPORT:
        return None, f"unknown import mode {mode!r}"
    fields = {"conftest": rel, "mode": mode, "name": name, "root": root_rel,
              "pythonpath": [e for e in entries if e is not None]}
    return (_CONFTEST_HEAD + _CONFTEST_IMPORT[mode]).format(**fields), ""


def capture_conftest_error(config, path: Path, cause: BaseException, state: CaptureState) -> Captured:
    """A bundle for a conftest.py that failed to import while pytest loaded its initial
    conftests: pytest exits 4 before any collection or test hook, and its runs record no
    failure, so there is no pytest form; the repro is the import itself (`conftest_script`),
    an ordinary exception with the conftest's frames."""
    tree, env, secrets = _context(config, path)
    nodeid = tree.rel(path) or Path(path).name
    text, why = conftest_script(config, Path(path), tree)
    if text is None or secrets.redact(text) != text:
        why = why or "redaction changed the script that imports it"
        return Captured(nodeid, None, error=f"no bundle for the conftest's import error: {why}")
    forms = Forms(nodeid=nodeid, when="collect", write_script=lambda target: target.write_text(text, "utf-8"),
                  script_name=CONFTEST_SCRIPT, no_pytest="pytest exits 4 on a conftest.py that does not import, "
                                                         "before it reports a failure a replay could record")
    name = bundle_name(nodeid.removesuffix(".py") + " (collect)", state.names)
    name = name if name.endswith("-collect") else f"{name}-collect"
    frames = [f for f, _ in traceback.walk_tb(cause.__traceback__)]
    extra = [r for r in (tree.rel(f.f_code.co_filename) for f in frames) if r not in (None, ".")]
    copied = work_files(path, tree, _read(state, set()), extra + _config_files(config, tree))
    test = {"nodeid": nodeid, "script": CONFTEST_SCRIPT, "pytest": _pytest_version()}
    built = build_test_bundle(base=tree.base, work_files=copied, tmp_files={}, forms=forms, name=name,
                              expected=_record_exc(cause), env=env, timeout=state.timeout, test=test,
                              output=state.directory / f"{name}.reprex.zip", warm=state.warm)
    return Captured(nodeid, built.path, built.reproduces, mode=built.mode, reason=built.reason)


def failure_key(excinfo, when: str) -> str:
    """A failure of this session as its bundle would tell it apart: the phase, the signature
    (reprex.signature: exception types, top in-app frames) and the normalized message. Failures
    that share it are one (twenty modules failing to import one package); a parametrized test
    failing with each parameter in its message is not."""
    from reprex.signature import innermost, normalize_message, top_frames, type_list

    record = _record(excinfo)
    inner = innermost(record) or {}
    return repr((when, type_list(record), top_frames(inner.get("frames") or []),
                 normalize_message(inner.get("message"))))


def _context(config, path, old_base: Path | None = None, carried=()) -> tuple[Tree, dict, Secrets]:
    base = Path(config.rootpath)
    if not under(Path(path).resolve(), base.resolve()):
        base = Path(path).parent
    env = scratch_environ()
    return Tree(base, old_base), env, Secrets(env, carried)  # the same environment the bundle's own redactor gets


def _read(state: CaptureState, opened: set) -> set:
    """What the test read, and what the session read under the rootdir, bundles of this session aside."""
    out = set(opened)
    for path in list(state.session_opened):
        if not under(Path(path), state.directory):
            out.add(path)
    return out


def _record(excinfo) -> dict:
    return _record_exc(excinfo.value)


def _record_exc(exc: BaseException) -> dict:
    from reprex.record import recorder

    return recorder().exception_record(exc)


def pytest_form(config, raw_nodeid: str, nodeid: str, tree: Tree, secrets: Secrets) -> tuple[list[str] | None, str]:
    """Python arguments that run this one node under pytest in a copy of the rootdir, with the
    same config file and the session's options that change outcomes or messages, or None and
    why not. This plugin stays out (`-p no:reprex`: the replay has no reprex) and so does the
    cache, which would write next to the tests."""
    if nodeid != raw_nodeid:
        return None, "redaction changed the node id, so it can't select the test"
    if nodeid.startswith("-") or Path(config.rootpath).resolve() != tree.base:
        return None, "the test lies outside pytest's rootdir"
    args = ["-m", "pytest", "-p", "no:cacheprovider", "-p", "no:reprex", "--rootdir=."]
    if config.inipath is not None:
        rel = tree.rel(config.inipath)
        if rel is None:
            return None, "pytest's config file lies outside the rootdir"
        args += ["-c", rel]
    args += _session_options(config)
    changed = [i for i, arg in enumerate(args) if secrets.redact(arg) != arg]
    if changed:
        return None, f"redaction changed {_option_named(args, changed[0], secrets)}, so the test can't run as it did"
    return args + ["-q", nodeid], ""


def _option_named(args: list[str], i: int, secrets: Secrets) -> str:
    """Which option redaction changed, by its name when the name itself holds no secret."""
    arg = args[i]
    if arg.startswith("--") and "=" in arg:
        name = arg.split("=", 1)[0]
    elif i > 0 and args[i - 1].startswith("-") and not arg.startswith("-"):
        name = args[i - 1]
    else:
        name = ""
    if name and secrets.redact(name) == name:
        return f"the value of the session's option {name}"
    return "an option of the session"


def _session_options(config) -> list[str]:
    """The session's options that change a test's outcome or message (addopts come with -c;
    `carried_options` says which of the typed ones, beyond these, go too)."""
    option = config.option
    out: list[str] = []
    for name in getattr(option, "plugins", None) or ():  # -p NAME / -p no:NAME
        if "reprex" not in str(name) and name != "no:cacheprovider":
            out += ["-p", str(name)]
    for spec in getattr(option, "pythonwarnings", None) or ():  # -W error::DeprecationWarning
        out += ["-W", str(spec)]
    for spec in getattr(option, "override_ini", None) or ():  # -o name=value
        out += ["-o", str(spec)]
    mode = getattr(option, "importmode", None)
    if isinstance(mode, str) and mode != "prepend":
        out.append(f"--import-mode={mode}")
    capture = getattr(option, "capture", None)
    if isinstance(capture, str) and capture != "fd":
        out.append(f"--capture={capture}")
    if config.pluginmanager.hasplugin("xdist") and getattr(option, "numprocesses", None):
        out += ["-n", "0"]  # addopts may ask for workers; the recorder sees failures in this process only
    if hasattr(config, "get_verbosity"):  # pytest 8.1+: assertion messages as verbose as the session's
        out += ["-o", f"verbosity_assertions={config.get_verbosity('assertions')}"]
    else:  # before, they follow -v: the session's level, plus the one the form's closing -q takes off
        verbose = getattr(option, "verbose", 0)
        if isinstance(verbose, int) and verbose != -1:
            out.append(f"--verbosity={verbose + 1}")
    return out + carried_options(config)  # --runslow, --env=staging: the conftest's and plugins' own


def _config_files(config, tree: Tree) -> list[str]:
    """pytest's config file and every conftest.py it loaded under the rootdir."""
    import inspect

    files = [config.inipath] if config.inipath is not None else []
    for plugin in config.pluginmanager.get_plugins():
        file = getattr(plugin, "__file__", None) if inspect.ismodule(plugin) else None
        if file and os.path.basename(file) == "conftest.py":
            files.append(file)
    return [rel for rel in (tree.rel(f) for f in files) if rel not in (None, ".")]


def _pytest_version() -> str:
    import pytest

    return pytest.__version__
