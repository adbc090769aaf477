"""The minimal failing call: from a recorded failure to a small script that fails on its own.

The reducer proposes candidates on the host from the bundle's data alone: frames whose
arguments can be rebuilt (literals, else pickles), innermost first, each written out as a
script that calls the function directly. Nothing of the bundle is unpickled, imported or
run here, and every bundle value that reaches the script is validated (names) or written
as a literal (values). A separate oracle (reprex.extract_oracle) judges each candidate by
running it through a replay backend, sandboxed unless the user vouches for the bundle; a
candidate is kept only if it fails the same way as the original. Otherwise the full entry
stays and the report says why.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from typing import Callable

from reprex.bundle import Bundle, BundleError
from reprex.errors import ReprexError
from reprex.extract_oracle import DEFAULT_TIMEOUT, JudgeOptions, JudgeUnavailable, Oracle, extracted_entry
from reprex.signature import frame_key, innermost, type_list

MAX_INLINE_CHARS = 20000
MAX_CANDIDATES = 4
MAX_LITERAL_CHARS = 100_000  # a recorded repr longer than this is not rebuilt from text
MAX_PICKLE_CHARS = 1 << 20  # base64 text of a recorded pickle (the recorder keeps 64 KiB)
MAX_SOURCE_BYTES = 1 << 20  # a source file read to inline a function
MAX_TEXT = 300  # bundle- or sandbox-made text in a message
_BUILTINS = set(dir(builtins)) | {"__file__", "__name__", "__doc__", "__builtins__", "__spec__", "__package__"}
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_REQ_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

__all__ = ["extract", "extract_into", "ExtractReport", "ExtractError", "JudgeUnavailable", "build_script",
           "candidate_frames", "same_failure", "clean"]


class ExtractError(ReprexError):
    """This frame can't be isolated; the message says why."""


@dataclass
class Argument:
    name: str
    code: str  # a Python expression that rebuilds the value
    how: str  # literal | pickle


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


# -- untrusted text and names ---------------------------------------------------------

def clean(value, limit: int = MAX_TEXT) -> str:
    """Bundle- or sandbox-made text as it may be shown: one line, printable characters only
    (others spelled as escapes, so no terminal sequence or newline gets through), bounded."""
    text = value if isinstance(value, str) else repr(value)
    cut = len(text) > limit
    text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text[:limit])
    return text + "..." if cut else text


def _doc_text(value, limit: int = 200) -> str:
    """Text for the script's docstring and comments: clean, and unable to close a string."""
    return clean(value, limit).replace("\\", "/").replace('"', "'")


def _name(value, what: str) -> str:
    if isinstance(value, str) and value.isidentifier() and not keyword.iskeyword(value):
        return value
    raise ExtractError(f"{what} {clean(value, 80)} is not a Python name")


def _is_module(value) -> bool:
    return isinstance(value, str) and bool(value) and all(
        p.isidentifier() and not keyword.iskeyword(p) for p in value.split("."))


def _json(bundle: Bundle, name: str) -> dict:
    """A JSON member of the bundle as a dict; {} when it is missing or malformed."""
    try:
        value = bundle.json(name, {})
    except (BundleError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


# -- arguments --------------------------------------------------------------------

def _literal(text: str) -> str | None:
    """The recorded repr as a canonical literal (re-written, so nothing of the text but its
    value reaches the script), or None when it isn't one."""
    try:
        value = ast.literal_eval(text)
        code = repr(value)
        if ast.literal_eval(code) != value:
            return None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return code


def rebuild_argument(name: str, item) -> Argument:
    if not isinstance(item, dict):
        raise ExtractError(f"argument {name!r} was not recorded")
    text = item.get("repr")
    if isinstance(text, str) and len(text) <= MAX_LITERAL_CHARS and "<redacted" not in text:
        code = _literal(text)
        if code is not None:
            return Argument(name, code, "literal")
    blob = item.get("pickle")
    if isinstance(blob, str) and blob:
        if len(blob) > MAX_PICKLE_CHARS or not _BASE64.fullmatch(blob):
            raise ExtractError(f"argument {name!r}: its recorded pickle is not base64 of at most "
                               f"{MAX_PICKLE_CHARS} characters")
        return Argument(name, f"_unpickle({blob!r})", "pickle")
    why = item.get("pickle_dropped") or "neither a literal nor picklable"
    raise ExtractError(f"argument {name!r} ({clean(item.get('type', '?'), 120)}) can't be rebuilt: {clean(why)}")


def call_expression(function: str, frame: dict) -> tuple[str, list[Argument]]:
    """`f(a, b, *args, k=v, **kw)` from the frame's recorded arguments, in signature order."""
    function = _name(function, "function")
    values = frame.get("arg_values")
    names = frame.get("args") or []
    spec = frame.get("argspec") if isinstance(frame.get("argspec"), dict) else {}
    if not isinstance(values, dict) or not isinstance(names, list):
        raise ExtractError("the frame's arguments were not recorded")
    n_pos = spec.get("positional", len(names))
    if not isinstance(n_pos, int) or isinstance(n_pos, bool):
        n_pos = len(names)
    args: list[Argument] = []
    positional: list[str] = []
    keywords: list[str] = []
    for i, name in enumerate(names):
        name = _name(name, "argument")
        if name not in values:
            raise ExtractError(f"argument {name!r} was not recorded")
        arg = rebuild_argument(name, values[name])
        args.append(arg)
        if name == spec.get("varargs"):
            positional.append(f"*{arg.code}")
        elif name == spec.get("varkw"):
            keywords.append(f"**{arg.code}")
        elif i < n_pos:
            positional.append(arg.code)
        else:
            keywords.append(f"{name}={arg.code}")
    return f"{function}({', '.join(positional + keywords)})", args


# -- source ---------------------------------------------------------------------------

def _free_names(node: ast.AST) -> set[str]:
    """Names a function reads that it doesn't bind itself (ignoring builtins)."""
    bound: set[str] = set()
    used: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            (bound if isinstance(sub.ctx, (ast.Store, ast.Del)) else used).add(sub.id)
        elif isinstance(sub, ast.arg):
            bound.add(sub.arg)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub is not node:
            bound.add(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            for alias in sub.names:
                bound.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            bound.add(sub.name)
    return used - bound - _BUILTINS


def _top_level_bindings(tree: ast.Module) -> dict[str, ast.stmt]:
    out: dict[str, ast.stmt] = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[stmt.name] = stmt
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                out[(alias.asname or alias.name).split(".")[0]] = stmt
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    out[target.id] = stmt
    return out


def _is_stdlib(module: str) -> bool:
    top = module.split(".")[0]
    return top in sys.stdlib_module_names or top == "__future__"


def inline_function(source: str, qualname: str, module: str) -> tuple[str, list[str]]:
    """The function's source plus the module-level names it needs, recursively.

    Returns (code, imported top-level modules). Raises ExtractError when the
    function is not module-level or needs names that can't be carried along.
    The source is only parsed here, never run.
    """
    if "." in qualname:
        raise ExtractError(f"{clean(qualname)} is not a module-level function (a method or closure)")
    try:
        return _inline(source, qualname, module)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ExtractError(f"the source of {clean(module)} does not parse: {clean(str(exc), 120)}") from None


def _inline(source: str, qualname: str, module: str) -> tuple[str, list[str]]:
    tree = ast.parse(source)
    bindings = _top_level_bindings(tree)
    if qualname not in bindings or not isinstance(bindings[qualname], (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise ExtractError(f"{clean(qualname)} not found as a function in {clean(module)}")
    needed: list[ast.stmt] = []
    seen: set[str] = set()
    pending = [qualname]
    imports: list[str] = []
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        stmt = bindings.get(name)
        if stmt is None:
            raise ExtractError(f"{clean(module)}.{clean(qualname)} uses {clean(name)!r}, which is not defined at "
                               "module level")
        if isinstance(stmt, ast.ImportFrom) and stmt.level:
            # A relative import of the framework itself: carry the import over absolutely.
            base = module.rsplit(".", stmt.level)[0] if stmt.level <= module.count(".") else module
            target = f"{base}.{stmt.module}" if stmt.module else base
            stmt = ast.ImportFrom(module=target, names=stmt.names, level=0)
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in stmt.names] if isinstance(stmt, ast.Import) else [stmt.module or ""]
            if any(m.split(".")[0] == "reprex" for m in mods):
                continue  # reprex's own capture helpers are not part of the failing call
            imports.extend(m.split(".")[0] for m in mods)
        if stmt not in needed:
            needed.append(stmt)
        if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
            pending.extend(_free_names(stmt))
    # Keep the module's own order so definitions come before use.
    order = {id(s): i for i, s in enumerate(tree.body)}
    needed.sort(key=lambda s: order.get(id(s), -1))
    code = "\n\n".join(ast.get_source_segment(source, s) or ast.unparse(s) for s in needed)
    if len(code) > MAX_INLINE_CHARS:
        raise ExtractError(f"inlining {qualname} needs {len(code)} characters of {clean(module)}, over the "
                           f"{MAX_INLINE_CHARS} limit")
    return code, sorted(set(imports))


def _source_of(bundle: Bundle, frame: dict) -> str:
    """The frame's source text: the bundle's own copy of a file from the working dir, else
    the file on this machine (see _host_source). Read, never imported."""
    path = frame.get("file")
    where = clean(frame.get("loc") or path)
    if not isinstance(path, str) or not path or path.startswith("<"):
        raise ExtractError(f"the source of {where} was not recorded")
    cwd = (bundle.manifest.get("entry") or {}).get("cwd") if isinstance(bundle.manifest.get("entry"), dict) else None
    if isinstance(cwd, str) and cwd and path.startswith(cwd.rstrip("/") + "/"):
        data = bundle.files.get("files/" + path[len(cwd.rstrip("/")) + 1:])
        if data is not None and len(data) <= MAX_SOURCE_BYTES:
            return data.decode("utf-8", "replace")
    return _host_source(frame, path, where)


def _host_source(frame: dict, path: str, where: str) -> str:
    """A source file on this machine (an installed package's, typically), taken only when
    it is a regular .py file holding, at the recorded line, the text the run recorded
    there: a bundle can't pull an arbitrary file of this machine into its script."""
    line, recorded = frame.get("line"), frame.get("source")
    missing = ExtractError(f"the source of {where} is not available on this machine")
    if not (os.path.isabs(path) and path.endswith(".py") and isinstance(line, int) and line > 0
            and isinstance(recorded, str) and recorded.strip()):
        raise missing
    try:  # non-blocking, so a FIFO at that path can't stall us; checked on the open descriptor
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except (OSError, ValueError):
        raise missing from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SOURCE_BYTES:
            raise missing
        data = os.read(fd, MAX_SOURCE_BYTES + 1)
    except OSError:
        raise missing from None
    finally:
        os.close(fd)
    text = data.decode("utf-8", "replace")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if line > len(lines) or lines[line - 1].strip()[:500] != recorded:
        raise ExtractError(f"the source of {where} on this machine is not the code the run executed")
    return text


# -- candidates -----------------------------------------------------------------------

def _frames_of(exc: dict) -> list[dict]:
    try:
        inner = innermost(exc) or exc
    except (AttributeError, TypeError, RecursionError):
        return []
    frames = inner.get("frames") if isinstance(inner, dict) else None
    return [f if isinstance(f, dict) else {} for f in frames] if isinstance(frames, list) else []


def candidate_frames(exc: dict) -> list[tuple[int, dict]]:
    """Frames worth extracting, innermost first: installed-package (then app) functions
    whose arguments were recorded, skipping stdlib and the recorder."""
    frames = _frames_of(exc)
    out = []
    for index in range(len(frames) - 1, -1, -1):
        frame = frames[index]
        if frame.get("kind") not in ("package", "app") or frame.get("qualname") == "<module>":
            continue
        if not isinstance(frame.get("arg_values"), dict):
            continue
        out.append((index, frame))
    packages = [c for c in out if c[1].get("kind") == "package"]
    return packages + [c for c in out if c[1].get("kind") != "package"]


def build_script(bundle: Bundle, frame: dict, *, inline: bool = True) -> tuple[str, str]:
    """(script text, how: 'inlined' | 'imported') for calling this frame's function.

    Only text: names are checked to be Python names, values go in as literals (or as
    pickles the script itself loads, wherever the oracle runs it)."""
    qualname = frame.get("qualname") or frame.get("function")
    if not isinstance(qualname, str) or not qualname:
        raise ExtractError("the frame names no function")
    module = frame.get("module") or ""
    if module and not _is_module(module):
        raise ExtractError(f"module {clean(module, 80)} is not a Python module name")
    call, args = call_expression(qualname.rsplit(".", 1)[-1], frame)
    header = []
    how = "imported"
    body = ""
    if inline:
        try:
            body, _ = inline_function(_source_of(bundle, frame), qualname, module)
            how = "inlined"
        except ExtractError:
            if frame.get("kind") == "app":
                raise
            body = ""
    if how == "imported":
        if "." in qualname or not module or module == "__main__":
            raise ExtractError(f"{clean(qualname)} can't be imported by name from {clean(module) or 'the main script'}")
        body = f"from {module} import {qualname}"
    if any(a.how == "pickle" for a in args):
        header.append("import base64\nimport pickle\n\n\ndef _unpickle(blob):\n"
                      "    return pickle.loads(base64.b64decode(blob))  # recorded argument value")
    sys_path = _relative_sys_path(bundle)
    prelude = "import os\nimport sys\n\n"
    prelude += "HERE = os.path.dirname(os.path.abspath(__file__))\n"
    prelude += f"sys.path[:0] = [os.path.join(HERE, p) for p in {sys_path!r}]  # as in the original run\n"
    env = _safe_env(bundle)
    if env:
        prelude += f"os.environ.update({env!r})  # non-secret values recorded at capture\n"
    where = _doc_text(frame.get("loc"))
    doc = (f'"""Minimal failing call extracted by reprex from {_doc_text(bundle.name, 100)}.reprex.zip:\n'
           f"{module}.{qualname}(...) called directly with the arguments it received.\n"
           f"Source {'inlined from ' + where if how == 'inlined' else 'imported from ' + module}."
           f'\n"""\n')
    flagged = [a.name for a in args if a.how == "pickle"]
    note = f"# arguments rebuilt from pickles (check them): {', '.join(flagged)}\n" if flagged else ""
    parts = [doc, prelude, *header, f"# --- {'inlined from ' + where if how == 'inlined' else 'the call'} ---",
             body, "", note + call]
    return "\n".join(p for p in parts if p is not None).rstrip() + "\n", how


def _relative_sys_path(bundle: Bundle) -> list[str]:
    env = _json(bundle, "environment.json")
    python = env.get("python") if isinstance(env.get("python"), dict) else {}
    value = python.get("value") if isinstance(python.get("value"), dict) else {}
    entries = value.get("sys_path") if isinstance(value.get("sys_path"), list) else []
    entry = bundle.manifest.get("entry") if isinstance(bundle.manifest.get("entry"), dict) else {}
    cwd = entry.get("cwd") if isinstance(entry.get("cwd"), str) else ""
    out = []
    for item in entries:
        if not isinstance(item, str) or not item or not cwd:
            continue
        if item == cwd or item.startswith(cwd.rstrip("/") + "/"):
            rel = os.path.relpath(item, cwd)
            if rel not in out and rel.split(os.sep)[0] != "..":  # only inside the work dir
                out.append(rel)
    return out or ["."]


def _safe_env(bundle: Bundle) -> dict:
    from reprex.replay.base import replay_environ

    try:
        return replay_environ(bundle)
    except (BundleError, AttributeError, TypeError, ValueError, RecursionError):
        return {}


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
    run = _json(bundle, "run.json")
    original = run.get("exception")
    if not isinstance(original, dict) or not original:
        expect = bundle.manifest.get("expect") if isinstance(bundle.manifest.get("expect"), dict) else {}
        return ExtractReport("original", "nothing to extract: the recorded failure has no Python exception "
                                         f"({clean(expect.get('outcome'), 40)})")
    frames = _frames_of(original)
    if frame is not None:
        index = frame if frame >= 0 else len(frames) + frame
        if not 0 <= index < len(frames):
            return ExtractReport("original", f"--frame {frame} is out of range (0..{len(frames) - 1})")
        candidates = [(index, frames[index])]
    elif function is not None:
        candidates = [(i, f) for i, f in enumerate(frames) if f.get("qualname") == function
                      or f.get("function") == function]
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
