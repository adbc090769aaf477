"""What run.json and environment.json must look like, checked on every read.

The tools walk these files with .get() chains and loops; a value of the wrong type there would
be a traceback from inside the tool, so each field a tool relies on is checked where it is used
(bundle.Bundle.from_entries runs SIDE_FILES). Apart from bundle.py to keep that module one job.
"""

from __future__ import annotations

from reprex.errors import BundleError

# -- the side files' shapes ----------------------------------------------------------
# The tools walk run.json and environment.json with .get() chains and loops; a value of
# the wrong type there would be a traceback, so each is checked where a tool relies on it.

def _type_name(value) -> str:
    return "null" if value is None else {dict: "object", list: "array", str: "string", bool: "boolean",
                                          int: "integer", float: "number"}.get(type(value), type(value).__name__)


def _expect(value, types: tuple, where: str) -> None:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        want = " or ".join(_type_name(t()) if t is not type(None) else "null" for t in types)
        raise BundleError(f"{where} is {_type_name(value)}, expected {want}; refusing the bundle")


_OBJ, _LIST, _STR, _OPT_STR, _OPT_OBJ = (dict,), (list,), (str,), (str, type(None)), (dict, type(None))


def _fields(obj: dict, spec: dict, where: str) -> None:
    for key, types in spec.items():
        if key in obj:
            _expect(obj[key], types, f"{where}.{key}")


def _items(value, types: tuple, where: str) -> None:
    for i, item in enumerate(value or []):
        _expect(item, types, f"{where}[{i}]")


def _check_exception(exc, where: str) -> None:
    _expect(exc, _OPT_OBJ, where)
    if exc is None:
        return
    _fields(exc, {"type": _OPT_STR, "message": _OPT_STR, "notes": _LIST, "frames": _LIST, "cause": _OPT_OBJ,
                  "context": _OPT_OBJ, "children": _LIST, "remote": _OPT_OBJ}, where)
    _items(exc.get("notes"), _STR, f"{where}.notes")
    for i, frame in enumerate(exc.get("frames") or []):
        here = f"{where}.frames[{i}]"
        _expect(frame, _OBJ, here)
        _fields(frame, {"file": _OPT_STR, "line": (int, type(None)), "function": _OPT_STR, "qualname": _OPT_STR,
                        "module": _OPT_STR, "kind": _OPT_STR, "loc": _OPT_STR, "source": _OPT_STR,
                        "args": _LIST, "argspec": _OPT_OBJ, "locals": _OPT_OBJ}, here)
        _items(frame.get("args"), _STR, f"{here}.args")
    for key in ("cause", "context"):
        _check_exception(exc.get(key), f"{where}.{key}")
    for i, child in enumerate(exc.get("children") or []):
        _check_exception(child, f"{where}.children[{i}]")


def _check_run(run, where: str) -> None:
    _expect(run, _OBJ, where)
    _fields(run, {"outcome": _OPT_OBJ, "output_tail": _LIST, "opened": _LIST, "connects": _LIST,
                  "modules": _LIST}, where)
    for i, item in enumerate(run.get("output_tail") or []):
        _expect(item, _LIST, f"{where}.output_tail[{i}]")
        if len(item) != 2:
            raise BundleError(f"{where}.output_tail[{i}] is not a [stream, text] pair; refusing the bundle")
        _items(item, _STR, f"{where}.output_tail[{i}]")
    _items(run.get("opened"), _STR, f"{where}.opened")
    _items(run.get("modules"), _STR, f"{where}.modules")
    if "exception" in run:
        _check_exception(run["exception"], f"{where}.exception")


def _check_environment(env, where: str) -> None:
    _expect(env, _OBJ, where)
    for name, probe in env.items():
        here = f"{where}.{name}"
        _expect(probe, _OBJ, here)
        _fields(probe, {"status": _STR, "error": (str, type(None), dict, list)}, here)
        value = probe.get("value")
        if name in ("env", "cuda", "python"):
            _expect(value, _OPT_OBJ, f"{here}.value")
        if not isinstance(value, dict):
            continue
        if name == "env":
            _fields(value, {"names": _LIST, "values": _OBJ}, f"{here}.value")
            _items(value.get("names"), _STR, f"{here}.value.names")
        elif name == "cuda":
            _fields(value, {"frameworks": _OBJ}, f"{here}.value")
            for fw, facts in (value.get("frameworks") or {}).items():
                _expect(facts, _OBJ, f"{here}.value.frameworks.{fw}")
        elif name == "python":
            _fields(value, {"sys_path": _LIST}, f"{here}.value")
            _items(value.get("sys_path"), _STR, f"{here}.value.sys_path")


SIDE_FILES = {"run.json": _check_run, "environment.json": _check_environment}
