"""`pytest --reprex-capture DIR`: turn each failing test into a bundle.

For a failed test this module
1. plans how a standalone script can rebuild every value the test function got:
   a literal (its repr round-trips through `ast.literal_eval`), a pickle, or, for a
   value that does neither, its fixture function's source run in its own module
   (flagged in the manifest); `tmp_path` and paths into pytest's temporary
   directories point at a copy of what was there when the test started.
   A value that holds a secret is never embedded: the bundle's redactor can scrub a
   literal's text but not the bytes inside a base64 pickle, so a literal or a pickle
   is used only when redaction changes neither its repr nor its pickled bytes;
   otherwise it is rebuilt from its fixture's source (flagged) or left out
   (`unsupported`). See `Secrets`;
2. copies the test run's local files (the test module, its conftest.py files, the
   project modules imported, the files the test read) into a scratch work dir and
   writes the script there;
3. runs the script once under the recorder, and builds the bundle from *that* run,
   so the bundle's expected signature is exactly what its own entry produces.
   When the script does not fail like the test did, the bundle expects the test's
   failure instead and is marked `standalone_reproduces: false`.
"""

from __future__ import annotations

import ast
import base64
import dataclasses
import inspect
import os
import pickle
import re
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

from pytest_reprex.script import Plan, Value, write

MAX_PICKLE = 2 * 1024 * 1024
MAX_LITERAL = 20000
MAX_SNAPSHOT_FILE = 2 * 1024 * 1024
MAX_SNAPSHOT_TOTAL = 10 * 1024 * 1024
MAX_SNAPSHOT_FILES = 500
EAGER_BYTES = 64 * 1024  # files up to this size are read before the call; bigger ones only stat'ed
MAX_COPY_FILES = 5000
BUILTIN = {"tmp_path": "tmp_path", "tmpdir": "tmpdir", "tmp_path_factory": "tmp_path_factory",
           "monkeypatch": "monkeypatch", "request": "request", "record_property": "stub",
           "record_xml_attribute": "stub", "record_testsuite_property": "stub"}
_EXCLUDED_PARTS = {".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache", ".tox",
                   ".nox", "site-packages", "dist-packages"}

# The audit hook is process-wide and permanent; it records only while a sink is set.
_AUDIT = {"installed": False, "sink": None}


def _audit(event, args):
    sink = _AUDIT["sink"]
    if sink is None or event != "open":
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
            sink.add(os.path.abspath(os.fsdecode(path)))
    except Exception:
        pass


def install_audit_hook() -> None:
    if not _AUDIT["installed"]:
        sys.addaudithook(_audit)
        _AUDIT["installed"] = True


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
    reproduces: bool = False
    flagged: list[str] = dataclasses.field(default_factory=list)
    error: str = ""


class CaptureState:
    def __init__(self, directory: Path, max_count: int, timeout: float):
        self.directory = directory
        self.max_count = max_count
        self.timeout = timeout
        self.count = 0
        self.results: list[Captured] = []


# -- paths ---------------------------------------------------------------------------

def _prefixes() -> list[Path]:
    out = []
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        try:
            out.append(Path(prefix).resolve())
        except OSError:
            pass
    return out


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class Tree:
    """The test run's root directory and what in it belongs to the project."""

    def __init__(self, base: Path, old_base: Path | None):
        self.base = base.resolve()
        self.old_base = old_base.resolve() if old_base else None
        self.prefixes = [p for p in _prefixes() if p != self.base]

    def rel(self, path) -> str | None:
        """Path relative to the base if it is a project file there, else None."""
        try:
            real = Path(path).resolve()
        except (OSError, ValueError):
            return None
        if not _under(real, self.base):
            return None
        if self.old_base is not None and _under(real, self.old_base):
            return None
        if any(_under(real, p) for p in self.prefixes):
            return None
        rel = real.relative_to(self.base)
        if any(part in _EXCLUDED_PARTS for part in rel.parts[:-1]):
            return None
        return rel.as_posix() or "."


# -- values ----------------------------------------------------------------------------

class Secrets:
    """Tells whether text or bytes hold something the bundle's redactor would scrub.

    The check uses a `reprex.redact.Redactor` over the same environment as the bundle's
    own, so "holds a secret" means exactly "redaction would change it": a value that
    does must not be embedded in the script, where (as a pickle) redaction can't see it
    or (as a literal) it would be replaced and the value changed. `hidden` adds strings
    that count as secret too (the per-test tmp directory name pytest derived from a
    test id that carried a secret, possibly truncated: see `_rename_test_tmp`)."""

    def __init__(self, environ: dict | None = None):
        from reprex.redact import Redactor

        self.red = Redactor(dict(os.environ) if environ is None else environ)
        self.hidden: list[str] = []

    def redact(self, text: str) -> str:
        return self.red.text(text, "test")

    def in_text(self, text: str) -> bool:
        return self.red.text(text, "locals") != text or any(h in text for h in self.hidden)

    def in_bytes(self, blob: bytes) -> bool:
        if self.red.bytes(blob, "locals") != blob:
            return True
        return any(h.encode("utf-8", "surrogateescape") in blob for h in self.hidden)

    def in_value(self, value, blob: bytes | None = None) -> bool:
        """Whether a value's repr (or, when given, its pickle) holds a secret. A pickle is judged
        as capture judges argument pickles (reprex.capture.pickles.verdict, read, never loaded):
        a secret-carrying type (pydantic's SecretStr), a secret in any decoding, a value the
        repr hides; a value without a repr can't vouch for its pickle."""
        try:
            text = repr(value)
        except Exception:
            text = None
        if text is not None and self.in_text(text):
            return True
        if blob is None:
            return text is None
        if self.in_bytes(blob):
            return True
        from reprex.capture.pickles import verdict

        return verdict(blob, text, self.red) is not None


def _type_name(value) -> str:
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def as_literal(value, secrets: Secrets | None = None) -> str | None:
    """The value's repr when it round-trips through `ast.literal_eval` and holds no secret."""
    try:
        text = repr(value)
    except Exception:
        return None
    if len(text) > MAX_LITERAL:
        return None
    try:
        back = ast.literal_eval(text)
    except Exception:
        return None
    try:
        if type(back) is not type(value) or back != value:
            return None
    except Exception:
        return None
    if secrets is not None and secrets.in_text(text):
        return None
    return text


def as_pickle(value, secrets: Secrets | None = None) -> str | None:
    """The value's pickle, base64, when it loads back and neither its bytes nor its repr
    hold a secret (the bundle's redaction only ever sees the base64 text)."""
    try:
        blob = pickle.dumps(value, protocol=4)
        if len(blob) > MAX_PICKLE:
            return None
        pickle.loads(blob)
    except Exception:
        return None
    if secrets is not None and secrets.in_value(value, blob):
        return None
    return base64.b64encode(blob).decode("ascii")


def _holds_secret(value) -> bool:
    """For a value `as_literal` and `as_pickle` turned down with the secrets check: whether
    they did so only because of a secret in it."""
    return as_literal(value) is not None or as_pickle(value) is not None


def _fixture_source(fixturedef, tree: Tree):
    """(module name, its file, function name, dedented source, first line) of a project fixture, or None."""
    func = getattr(fixturedef, "func", None)
    if func is None or inspect.ismethod(func):
        return None
    func = getattr(func, "__func__", func)
    try:
        file = inspect.getsourcefile(func)
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None
    rel = tree.rel(file) if file else None
    if rel is None:
        return None
    if getattr(func, "__qualname__", "") != getattr(func, "__name__", None):
        return None  # defined in a class or a function: no module-level name to run it under
    module = getattr(func, "__module__", None)
    if not module or module not in sys.modules:
        return None
    try:
        node = ast.parse(source).body[0]
    except SyntaxError:
        return None
    if not isinstance(node, ast.FunctionDef) or node.name != func.__name__:
        return None  # async fixtures and odd shapes
    return module, rel, func.__name__, source, func.__code__.co_firstlineno


def _param_value(name: str, param, secrets: Secrets) -> Value:
    expr = as_literal(param, secrets)
    if expr is not None:
        return Value(f"{name}.param", "literal", _type_name(param), expr)
    blob = as_pickle(param, secrets)
    if blob is not None:
        return Value(f"{name}.param", "pickle", _type_name(param), blob)
    if _holds_secret(param):
        return Value(f"{name}.param", "unsupported", _type_name(param),
                     note="request.param: redaction would change it (a secret): left out of the bundle")
    return Value(f"{name}.param", "unsupported", _type_name(param),
                 note="request.param neither a literal nor picklable")


def plan_values(item, tree: Tree, secrets: Secrets | None = None) -> list[Value]:
    """How the script makes each value; nothing that holds a secret is embedded (see `Secrets`)."""
    if secrets is None:
        secrets = Secrets()
    info = item._fixtureinfo
    funcargs = item.funcargs or {}
    params = dict(getattr(getattr(item, "callspec", None), "params", {}) or {})
    planned: dict[str, Value] = {}
    visiting: set[str] = set()

    def fixturedef(name):
        defs = info.name2fixturedefs.get(name)
        return defs[-1] if defs else None

    def source_value(name, fd, autouse=False) -> Value | None:
        found = _fixture_source(fd, tree) if fd is not None else None
        if found is None:
            return None
        module, module_file, function, source, lineno = found
        for dep in fd.argnames:
            if dep != "request":
                make(dep)
        param = None
        if getattr(fd, "params", None) is not None and name in params:
            param = _param_value(name, params[name], secrets)
        return Value(name, "source", _type_name(funcargs.get(name)), module=module, module_file=module_file,
                     function=function,
                     source=source, lineno=lineno, argnames=list(fd.argnames), param=param, autouse=autouse)

    def make(name, autouse=False):
        if name in planned or name in visiting:
            return
        visiting.add(name)
        try:
            if name in BUILTIN:
                planned[name] = Value(name, BUILTIN[name], _type_name(funcargs.get(name)))
                return
            fd = fixturedef(name)
            if autouse:  # its side effects matter, not its value: run it if it is the project's
                value = source_value(name, fd, autouse=True)
                if value is not None:
                    planned[name] = value
                return
            value = funcargs.get(name)
            expr = as_literal(value, secrets)
            if expr is not None:
                planned[name] = Value(name, "literal", _type_name(value), expr)
                return
            blob = as_pickle(value, secrets)
            if blob is not None:
                planned[name] = Value(name, "pickle", _type_name(value), blob)
                return
            secret = _holds_secret(value)
            made = source_value(name, fd)
            if made is not None:
                made.note = ("redaction would change it (a secret): rebuilt from its fixture's source" if secret
                             else "not picklable: rebuilt from its fixture's source")
                planned[name] = made
                return
            planned[name] = Value(name, "unsupported", _type_name(value),
                                  note="redaction would change it (a secret): left out of the bundle" if secret
                                  else "neither a literal nor picklable, and not a project fixture")
        finally:
            visiting.discard(name)

    argnames = list(info.argnames)
    for name in info.initialnames:
        if name not in argnames:
            make(name, autouse=True)
    for name in argnames:
        make(name)
    return list(planned.values())


# -- pytest's temporary directories ------------------------------------------------------

def basetemp(item) -> Path | None:
    factory = (item.funcargs or {}).get("tmp_path_factory") or getattr(item.config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None)
    return Path(base).resolve() if base else None


def _paths_in(value, depth=0):
    if depth > 4:
        return
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if isinstance(text, str) and len(text) < 4096 and os.sep in text:
            yield text
        return
    if isinstance(value, (list, tuple, set, frozenset)):
        for v in list(value)[:200]:
            yield from _paths_in(v, depth + 1)
    elif isinstance(value, dict):
        for k, v in list(value.items())[:200]:
            yield from _paths_in(k, depth + 1)
            yield from _paths_in(v, depth + 1)
    else:
        attrs = getattr(value, "__dict__", None)
        if isinstance(attrs, dict) and not isinstance(value, type) and not inspect.ismodule(value):
            for v in list(attrs.values())[:100]:
                yield from _paths_in(v, depth + 1)


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
        for text in _paths_in(value):
            try:
                path = Path(text).resolve()
            except (OSError, ValueError):
                continue
            if _under(path, base) and path != base and path.exists():
                roots.append(path)
    files: dict[str, bytes | tuple] = {}
    dirs: set[str] = set()
    skipped: list[dict] = []
    total = 0
    for root in roots:
        walk = [root] if root.is_file() else sorted(p for p in root.rglob("*"))
        if root.is_dir():
            dirs.add(root.relative_to(base).as_posix())
        for path in walk:
            rel = path.relative_to(base).as_posix()
            if path.is_symlink():
                continue
            if path.is_dir():
                dirs.add(rel)
                continue
            if rel in files or not path.is_file():
                continue
            size = path.stat().st_size
            if size > MAX_SNAPSHOT_FILE or total + size > MAX_SNAPSHOT_TOTAL or len(files) >= MAX_SNAPSHOT_FILES:
                skipped.append({"path": rel, "size": size, "reason": "over the snapshot budget"})
                continue
            if size <= EAGER_BYTES:
                files[rel] = path.read_bytes()
            else:
                st = path.stat()
                files[rel] = (str(path), st.st_size, st.st_mtime_ns)
            total += size
    tmp_rel = Path(tmp).resolve().relative_to(base).as_posix() if tmp is not None else None
    return {"base": str(base), "tmp_rel": tmp_rel, "files": files, "dirs": sorted(dirs), "skipped": skipped}


def materialize(snap: dict | None) -> dict[str, bytes]:
    """The snapshot's file contents; big files the test changed since are dropped (and noted)."""
    if not snap:
        return {}
    out = {}
    for rel, data in snap["files"].items():
        if isinstance(data, bytes):
            out[rel] = data
            continue
        path, size, mtime = data
        try:
            st = os.stat(path)
            if (st.st_size, st.st_mtime_ns) == (size, mtime):
                out[rel] = Path(path).read_bytes()
                continue
        except OSError:
            pass
        snap["skipped"].append({"path": rel, "size": size, "reason": "changed by the test before it failed"})
    return out


# -- the work tree ----------------------------------------------------------------------------

def _conftests(item, tree: Tree) -> list[tuple[str, str]]:
    """The conftest.py modules pytest loaded for this test, outermost first."""
    test_dir = Path(item.path).resolve().parent
    found = []
    modules = [m for m in item.config.pluginmanager.get_plugins()
               if inspect.ismodule(m) and os.path.basename(getattr(m, "__file__", "") or "") == "conftest.py"]
    for module in modules:
        name = module.__name__
        file = getattr(module, "__file__", None)
        if not file:
            continue
        path = Path(file).resolve()
        rel = tree.rel(path)
        if rel is None or not _under(test_dir, path.parent):
            continue
        found.append((len(path.parts), name, rel))
    return [(name, rel) for _, name, rel in sorted(found)]


def work_files(item, tree: Tree, opened: set, extra=()) -> list[str]:
    """Relative paths of the project files a standalone run may need."""
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

    add(item.path)
    for rel in extra:
        add(tree.base / rel)
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and file.endswith(".py"):
            add(file)
    for path in sorted(opened):
        add(path)
    # packages on the way to the test module
    for rel in list(wanted):
        parent = (tree.base / rel).parent
        while _under(parent, tree.base) and parent != tree.base:
            init = parent / "__init__.py"
            if init.exists():
                add(init)
            parent = parent.parent
    return wanted[:MAX_COPY_FILES]


def _sys_path(tree: Tree) -> list[str]:
    out = []
    for entry in sys.path:
        rel = tree.rel(entry or os.getcwd())
        if rel is not None and Path(tree.base / rel).is_dir() and rel not in out:
            out.append(rel)
    return out


def _script_name(item, tree: Tree) -> str:
    stem = re.sub(r"[^A-Za-z0-9_]", "_", getattr(item, "originalname", None) or item.name.split("[")[0])
    name = f"reprex_{stem}.py"
    n = 1
    while (tree.base / name).exists():
        n += 1
        name = f"reprex_{stem}_{n}.py"
    return name


def bundle_name(nodeid: str) -> str:
    name = nodeid.replace(".py::", "-").replace("::", "-").replace("/", "-")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip(".-") or "test"
    return name[:100]


def _rename_test_tmp(snap: dict | None, secrets: Secrets) -> dict | None:
    """The snapshot with the test's own tmp directory renamed, for a test whose id carried a
    secret: pytest names that directory after the test id (sanitized, cut to 30 characters),
    so it may hold a piece of the secret the redactor no longer recognizes. Its old name
    becomes a `hidden` secret: values holding paths into it are not embedded either."""
    if not snap or not snap.get("tmp_rel"):
        return snap
    old = snap["tmp_rel"].split("/")[0]
    taken = {rel.split("/")[0] for rel in [*snap["files"], *snap["dirs"]]}
    n, new = 0, "tmp_path0"
    while new in taken:
        n += 1
        new = f"tmp_path{n}"

    def move(rel: str) -> str:
        return new + rel[len(old):] if rel == old or rel.startswith(old + "/") else rel

    secrets.hidden.append(old)
    return {**snap, "tmp_rel": move(snap["tmp_rel"]), "files": {move(k): v for k, v in snap["files"].items()},
            "dirs": sorted(move(d) for d in snap["dirs"]),
            "skipped": [{**entry, "path": move(entry["path"])} for entry in snap["skipped"]]}


def make_plan(item, tree: Tree, snap: dict | None, random_state: str | None,
              secrets: Secrets | None = None, nodeid: str | None = None) -> tuple[Plan, list[Value]]:
    """`nodeid`: the test's id as the bundle may show it (redacted)."""
    import unittest

    from reprex import __version__

    values = plan_values(item, tree, secrets)
    cls = getattr(item, "cls", None)
    is_unittest = isinstance(cls, type) and issubclass(cls, unittest.TestCase)
    class_path = cls.__qualname__.split(".") if cls is not None else []
    cwd_rel = tree.rel(os.getcwd()) or "."
    seed = os.environ.get("PYTHONHASHSEED")
    plan = Plan(
        nodeid=nodeid or item.nodeid, module=item.module.__name__,
        module_file=tree.rel(item.path) or Path(item.path).name,
        function=getattr(item, "originalname", None) or item.name.split("[")[0], class_path=class_path,
        unittest=is_unittest, argnames=[] if is_unittest else list(item._fixtureinfo.argnames),
        values=[] if is_unittest else values, conftests=_conftests(item, tree), sys_path=_sys_path(tree),
        cwd=cwd_rel if Path(tree.base / cwd_rel).is_dir() else ".",
        hash_seed=seed if seed and seed.isdigit() else None,
        old_base=snap["base"] if snap else None, tmp_rel=snap["tmp_rel"] if snap else None,
        tmp_dirs=snap["dirs"] if snap else [], random_state=random_state,
        randomly_seed=_randomly_seed(item.config), tool_version=__version__,
    )
    return plan, plan.values


def _randomly_seed(config):
    if not config.pluginmanager.hasplugin("randomly"):
        return None
    seed = config.getoption("randomly_seed", None)
    return seed if isinstance(seed, (int, str)) else None


def randomly_active(config) -> bool:
    return config.pluginmanager.hasplugin("randomly") and bool(config.getoption("randomly_reset_seed", True))


def scratch_environ() -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "COV_CORE_", "REPREX_RECORD")) and k not in ("PYTHONPATH",)}
    return env


def _drop_editable_pins(bundle) -> None:
    flagged = (bundle.manifest.get("pins") or {}).get("flagged") or []
    names = {re.sub(r"[-_.]+", "-", p["name"]).lower() for p in flagged if "editable" in (p.get("flags") or [])}
    if not names:
        return
    kept = []
    for line in bundle.text("requirements.txt").splitlines():
        head = re.split(r"[=<>@ ;\[]", line.strip(), maxsplit=1)[0]
        if re.sub(r"[-_.]+", "-", head).lower() in names:
            continue
        kept.append(line)
    bundle.files["requirements.txt"] = ("\n".join(kept) + "\n").encode() if kept else b""
    bundle.manifest["pins"]["dropped_editable"] = sorted(names)


def _rerender_readme(bundle, environ: dict) -> None:
    """The README describes the manifest as finally written (scrubbed again, as capture does)."""
    from reprex.redact import Redactor
    from reprex.render import render

    bundle.files["README.md"] = Redactor(environ).bytes(render(bundle, venue="gh").encode(), "README.md")


def capture_failure(item, excinfo, state: CaptureState, snap: dict | None, opened: set,
                    random_state: str | None) -> Captured:
    from reprex.record import recorder
    from reprex.capture.pipeline import CaptureOptions, build_bundle
    from reprex.recorded import run_recorded
    from reprex.signature import type_list

    base = Path(item.config.rootpath)
    if not _under(Path(item.path).resolve(), base.resolve()):
        base = Path(item.path).parent
    tree = Tree(base, Path(snap["base"]) if snap else None)
    env = scratch_environ()
    secrets = Secrets(env)  # the same environment the bundle's own redactor gets
    # A parametrize id can carry a secret: nothing in the bundle (its name, file names, the
    # manifest, the script) is derived from the raw id.
    nodeid = secrets.redact(item.nodeid)
    if nodeid != item.nodeid:
        snap = _rename_test_tmp(snap, secrets)
    plan, values = make_plan(item, tree, snap, random_state, secrets, nodeid)
    script_name = _script_name(item, tree)
    name = bundle_name(nodeid)
    scratch_root = Path(tempfile.mkdtemp(prefix="reprex-pytest-capture-"))
    scratch = scratch_root / "work"
    (scratch_root / "tmp").mkdir()
    try:
        scratch.mkdir()
        extra = [rel for _, rel in plan.conftests] + [v.module_file for v in values if v.module_file]
        for rel in work_files(item, tree, opened, extra):
            target = scratch / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tree.base / rel, target)
        tmp_files = materialize(snap)
        for rel, data in tmp_files.items():
            target = scratch / "_reprex_tmp" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        write(plan, scratch / script_name)  # and its machinery beside it
        env["TMPDIR"] = str(scratch_root / "tmp")  # the script's copies of tmp_path go away with the scratch
        run = run_recorded([sys.executable, script_name], cwd=scratch, env=env, timeout=state.timeout, tee=False)
        expected = recorder().exception_record(excinfo.value)
        want = type_list(expected)
        standalone = run.outcome
        got = type_list(standalone.exception) if standalone.outcome == "exception" else []
        reproduces = bool(want) and got == want
        outcome = standalone if reproduces else dataclasses.replace(
            standalone, outcome="exception", exception=expected, exit_code=1, signal=None)
        entry = {"argv": ["python", "-m", "pytest", nodeid], "cwd": str(tree.base), "kind": "test",
                 "python_args": [script_name]}
        flagged = [v.name for v in values if v.how in ("source", "unsupported")]
        test = {
            "nodeid": nodeid,
            "script": script_name,
            "standalone_reproduces": reproduces,
            "test_failure": want,
            "standalone_outcome": {"outcome": standalone.outcome, "types": got,
                                   "exit_code": standalone.exit_code},
            "values": {v.name: v.manifest() for v in values},
            "flagged": flagged,
            "seeds": {"PYTHONHASHSEED": plan.hash_seed, "randomly_seed": plan.randomly_seed,
                      "random_state": plan.random_state is not None},
            "tmp": {"copied": len(tmp_files), "skipped": (snap or {}).get("skipped", [])},
            "pytest": _pytest_version(),
        }
        # build_bundle passes manifest_extra through the bundle's redactor (red.obj) as well
        bundle = build_bundle(outcome, argv=[sys.executable, script_name], cwd=scratch, environ=env,
                              python=sys.executable, options=CaptureOptions(tee=False, name=name), entry=entry,
                              script=scratch / script_name, manifest_extra={"test": test})
        files = bundle.manifest.get("files") or {}
        if files.get("skipped"):  # reads of the script's own copies of tmp_path: not inputs
            files["skipped"] = [f for f in files["skipped"] if not str(f.get("path", "")).startswith(str(scratch_root))]
        _drop_editable_pins(bundle)
        _rerender_readme(bundle, env)
        bundle.finalize()
        path = bundle.write(state.directory / f"{name}.reprex.zip")
        return Captured(item.nodeid, path, reproduces, flagged)
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)


def _pytest_version() -> str:
    import pytest

    return pytest.__version__
