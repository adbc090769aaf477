"""The proposing half of `reprex extract`: from a bundle's data, candidate scripts that call
one recorded frame's function directly.

Candidates are written on the host from the bundle's data alone: frames whose arguments
can be rebuilt (literals, else pickles), innermost first. Nothing of the bundle is
unpickled, imported or run here, and every bundle value that reaches a script is
validated (names) or written as a literal (values). Judging them is reprex.extract's
(through reprex.extract_oracle), never this module's.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import os
import re
import stat
import sys
from dataclasses import dataclass

from reprex.bundle import Bundle, BundleError
from reprex.errors import ReprexError
from reprex.signature import innermost

MAX_INLINE_CHARS = 20000
MAX_LITERAL_CHARS = 100_000  # a recorded repr longer than this is not rebuilt from text
MAX_PICKLE_CHARS = 1 << 20  # base64 text of a recorded pickle (the recorder keeps 64 KiB)
MAX_SOURCE_BYTES = 1 << 20  # a source file read to inline a function
MAX_TEXT = 300  # bundle- or sandbox-made text in a message
_BUILTINS = set(dir(builtins)) | {"__file__", "__name__", "__doc__", "__builtins__", "__spec__", "__package__"}
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")

class ExtractError(ReprexError):
    """This frame can't be isolated; the message says why."""


@dataclass
class Argument:
    name: str
    code: str  # a Python expression that rebuilds the value
    how: str  # literal | pickle


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


def bundle_json(bundle: Bundle, name: str) -> dict:
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

def frames_of(exc: dict) -> list[dict]:
    try:
        inner = innermost(exc) or exc
    except (AttributeError, TypeError, RecursionError):
        return []
    frames = inner.get("frames") if isinstance(inner, dict) else None
    return [f if isinstance(f, dict) else {} for f in frames] if isinstance(frames, list) else []


def candidate_frames(exc: dict) -> list[tuple[int, dict]]:
    """Frames worth extracting, innermost first: installed-package (then app) functions
    whose arguments were recorded, skipping stdlib and the recorder."""
    frames = frames_of(exc)
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
    env = bundle_json(bundle, "environment.json")
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
