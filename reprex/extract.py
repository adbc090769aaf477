"""The minimal failing call: from a recorded failure to a small script that fails on its own.

The reducer proposes candidates (frames whose arguments can be rebuilt, innermost
first) and a separate oracle judges them: each candidate script is run under the
recorder, and it is kept only if it fails the same way as the original. Otherwise
the full entry stays and the report says why.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reprex.bundle import Bundle, canonical_json
from reprex.signature import frame_key, innermost, type_list

MAX_INLINE_CHARS = 20000
MAX_CANDIDATES = 4
_BUILTINS = set(dir(builtins)) | {"__file__", "__name__", "__doc__", "__builtins__", "__spec__", "__package__"}


class ExtractError(Exception):
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

    def to_dict(self) -> dict:
        return {"kept": self.kept, "message": self.message, "function": self.function, "attempts": self.attempts}


# -- arguments --------------------------------------------------------------------

def rebuild_argument(name: str, item: dict) -> Argument:
    text = item.get("repr")
    if text is not None and "<redacted" not in text:
        try:
            ast.literal_eval(text)
            return Argument(name, text, "literal")
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    if item.get("pickle"):
        return Argument(name, f"_unpickle({item['pickle']!r})", "pickle")
    why = item.get("pickle_dropped") or "neither a literal nor picklable"
    raise ExtractError(f"argument {name!r} ({item.get('type', '?')}) can't be rebuilt: {why}")


def call_expression(function: str, frame: dict) -> tuple[str, list[Argument]]:
    """`f(a, b, *args, k=v, **kw)` from the frame's recorded arguments, in signature order."""
    values = frame.get("arg_values") or {}
    names = frame.get("args") or []
    spec = frame.get("argspec") or {}
    n_pos = spec.get("positional", len(names))
    args: list[Argument] = []
    positional: list[str] = []
    keywords: list[str] = []
    for i, name in enumerate(names):
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
    """
    if "." in qualname:
        raise ExtractError(f"{qualname} is not a module-level function (a method or closure)")
    tree = ast.parse(source)
    bindings = _top_level_bindings(tree)
    if qualname not in bindings or not isinstance(bindings[qualname], (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise ExtractError(f"{qualname} not found as a function in {module}")
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
            raise ExtractError(f"{module}.{qualname} uses {name!r}, which is not defined at module level")
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
        raise ExtractError(f"inlining {qualname} needs {len(code)} characters of {module}, over the "
                           f"{MAX_INLINE_CHARS} limit")
    return code, sorted(set(imports))


# -- candidates -----------------------------------------------------------------------

def candidate_frames(exc: dict) -> list[tuple[int, dict]]:
    """Frames worth extracting, innermost first: installed-package (then app) functions
    whose arguments were recorded, skipping stdlib and the recorder."""
    inner = innermost(exc) or exc
    frames = inner.get("frames") or []
    out = []
    for index in range(len(frames) - 1, -1, -1):
        frame = frames[index]
        if frame.get("kind") not in ("package", "app") or frame.get("qualname") == "<module>":
            continue
        if frame.get("arg_values") is None:
            continue
        out.append((index, frame))
    packages = [c for c in out if c[1].get("kind") == "package"]
    return packages + [c for c in out if c[1].get("kind") != "package"]


def _source_of(frame: dict) -> str:
    path = frame.get("file") or ""
    try:
        return Path(path).read_text("utf-8")
    except OSError:
        raise ExtractError(f"the source of {frame.get('loc')} is not available on this machine ({path})") from None


def build_script(bundle: Bundle, frame: dict, *, inline: bool = True) -> tuple[str, str]:
    """(script text, how: 'inlined' | 'imported') for calling this frame's function."""
    qualname = frame.get("qualname") or frame.get("function")
    module = frame.get("module") or ""
    call, args = call_expression(qualname.rsplit(".", 1)[-1], frame)
    header = []
    how = "imported"
    body = ""
    if inline:
        try:
            body, _ = inline_function(_source_of(frame), qualname, module)
            how = "inlined"
        except (ExtractError, SyntaxError):
            if frame.get("kind") == "app":
                raise
            body = ""
    if how == "imported":
        if "." in qualname or not module or module == "__main__":
            raise ExtractError(f"{qualname} can't be imported by name from {module or 'the main script'}")
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
    doc = (f'"""Minimal failing call extracted by reprex from {bundle.name}.reprex.zip:\n'
           f"{module}.{qualname}(...) called directly with the arguments it received.\n"
           f"Source {'inlined from ' + str(frame.get('loc')) if how == 'inlined' else 'imported from ' + module}."
           f'\n"""\n')
    flagged = [a.name for a in args if a.how == "pickle"]
    note = f"# arguments rebuilt from pickles (check them): {', '.join(flagged)}\n" if flagged else ""
    parts = [doc, prelude, *header, f"# --- {'inlined from ' + str(frame.get('loc')) if how == 'inlined' else 'the call'} ---",
             body, "", note + call]
    return "\n".join(p for p in parts if p is not None).rstrip() + "\n", how


def _relative_sys_path(bundle: Bundle) -> list[str]:
    env = bundle.json("environment.json", {}) or {}
    value = (env.get("python") or {}).get("value") or {}
    entries = value.get("sys_path") or []
    cwd = (bundle.manifest.get("entry") or {}).get("cwd") or ""
    out = []
    for entry in entries:
        if not entry or not cwd:
            continue
        if entry == cwd or entry.startswith(cwd.rstrip("/") + "/"):
            rel = os.path.relpath(entry, cwd)
            if rel not in out:
                out.append(rel)
    return out or ["."]


def _safe_env(bundle: Bundle) -> dict:
    from reprex.replay.base import replay_environ

    return replay_environ(bundle)


# -- the oracle ------------------------------------------------------------------------------

def same_failure(original: dict, candidate_outcome, function: str) -> bool:
    """Same innermost exception type, and the same frames from the raise point up to the
    extracted function (by qualname: locations differ once the source is inlined)."""
    exc = candidate_outcome.exception
    if candidate_outcome.outcome != "exception" or not exc:
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


def _run_candidate(script: str, bundle: Bundle, python: str, timeout: float):
    from reprex.capture.runner import run_recorded

    with tempfile.TemporaryDirectory(prefix="reprex-extract-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        bundle.extract_inputs(work)
        (work / "repro.py").write_text(script)
        env = {k: v for k, v in os.environ.items() if not k.startswith("REPREX_")}
        env.pop("PYTHONPATH", None)
        result = run_recorded([python, "repro.py"], cwd=work, env=env, timeout=timeout, tee=False)
        return result.outcome


# -- the whole step --------------------------------------------------------------------------

def extract(bundle: Bundle, *, frame: int | None = None, function: str | None = None,
            python: str | None = None, timeout: float = 60.0) -> ExtractReport:
    run = bundle.json("run.json", {}) or {}
    original = run.get("exception")
    if not original:
        return ExtractReport("original", "nothing to extract: the recorded failure has no Python exception "
                                         f"({bundle.manifest['expect']['outcome']})")
    inner = innermost(original) or original
    frames = inner.get("frames") or []
    if frame is not None:
        index = frame if frame >= 0 else len(frames) + frame
        if not 0 <= index < len(frames):
            return ExtractReport("original", f"--frame {frame} is out of range (0..{len(frames) - 1})")
        candidates = [(index, frames[index])]
    elif function is not None:
        candidates = [(i, f) for i, f in enumerate(frames) if f.get("qualname") == function
                      or f.get("function") == function]
        if not candidates:
            return ExtractReport("original", f"no frame runs a function named {function!r}")
    else:
        candidates = candidate_frames(original)[:MAX_CANDIDATES]
    python = python or sys.executable
    attempts = []
    for index, chosen in candidates:
        name = f"{chosen.get('module')}.{chosen.get('qualname')}"
        try:
            script, how = build_script(bundle, chosen)
        except ExtractError as exc:
            attempts.append({"frame": index, "function": name, "result": str(exc)})
            continue
        outcome = _run_candidate(script, bundle, python, timeout)
        if same_failure(original, outcome, chosen.get("qualname")):
            attempts.append({"frame": index, "function": name, "result": f"kept ({how})"})
            new = _with_extracted(bundle, script, outcome, name, how, python)
            return ExtractReport("extracted", f"kept the extracted call {name}() ({how}); it fails the same way "
                                              "on its own", function=name, script=script, attempts=attempts,
                                 bundle=new)
        got = " <- ".join(type_list(outcome.exception)) if outcome.exception else outcome.outcome
        attempts.append({"frame": index, "function": name, "result": f"different failure: {got}"})
    why = "; ".join(f"{a['function']}: {a['result']}" for a in attempts) or "no frame with recorded arguments"
    return ExtractReport("original", f"kept the full script: no call could be isolated ({why})", attempts=attempts)


def _with_extracted(bundle: Bundle, script: str, outcome, function: str, how: str, python: str) -> Bundle:
    """The bundle with the extracted call as its entry; the original entry is kept beside it."""
    from reprex.pins import closure, requirements_txt, roots_for
    from reprex.redact import Redactor

    red = Redactor()
    script = red.text(script, "repro.py")
    from reprex.signature import redacted_signature

    signature = redacted_signature(outcome, red)
    files = dict(bundle.files)
    files["original/repro.py"] = files.get("repro.py", b"")
    files["original/requirements.txt"] = files.get("requirements.txt", b"")
    files["repro.py"] = script.encode()
    facts = outcome.facts or {}
    if facts.get("distributions"):
        pins = closure(facts, roots_for(facts, outcome.modules))
        files["requirements.txt"] = red.text(requirements_txt(pins), "requirements.txt").encode()
        pin_count = len(pins)
    else:
        pin_count = bundle.manifest.get("pins", {}).get("count", 0)
    manifest = json.loads(canonical_json(bundle.manifest))
    manifest["original_entry"] = manifest["entry"]
    manifest["original_expect"] = manifest["expect"]
    manifest["entry"] = {"argv": ["python", "repro.py"], "cwd": manifest["entry"].get("cwd", "."),
                         "kind": "extracted", "python_args": []}
    exc = outcome.exception or {}
    manifest["expect"] = {"outcome": outcome.outcome, "exit_code": outcome.exit_code,
                          "exception": {"type": exc.get("type"), "message": red.text(exc.get("message") or "",
                                                                                        "traceback")[:2000]},
                          "signature": signature.to_dict()}
    manifest["extracted"] = {"function": function, "how": how}
    manifest["pins"] = {**manifest.get("pins", {}), "count": pin_count}
    new = Bundle(manifest=manifest, files=files)
    from reprex.render import render

    new.files["README.md"] = red.text(render(new, "gh"), "README.md").encode()
    manifest["redactions"] = manifest.get("redactions", []) + [
        {"kind": r.kind, "where": r.where, "count": r.count} for r in red.report()]
    return new.finalize()


def extract_into(path: str | os.PathLike, **kwargs) -> ExtractReport:
    """Extract in place: the bundle at `path` is rewritten (atomically) only if a call was kept."""
    bundle = Bundle.read(path)
    report = extract(bundle, **kwargs)
    if report.bundle is not None:
        report.bundle.write(path)
    return report
