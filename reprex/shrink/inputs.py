"""Shrinking a bundled input file with passes that know its format.

JSON (and YAML when PyYAML is importable) is reduced as a tree: items of each object and
array, outermost first, then scalars made shorter. CSV/TSV: rows (the header stays), then
columns. Anything else that is text: lines, then runs of characters; otherwise bytes. A
structured format is used only when the oracle accepts its normalised round trip (same
rule as scripts); when it doesn't, the file is shrunk as text. Files are parsed with safe
loaders only (json, csv, yaml.safe_load); nothing in them is run here.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reprex.shrink.reduce import Exhausted, Judge, Stats, reduce_chunks, run_reduction, size_of

MAX_PIECES = 4096  # a text/bytes pass starts from at most this many pieces
# and never splits into more than this many in a round: a round's candidates are built in O(pieces)
# each, and a file of one repeated byte has the memo answer thousands of them without a call, so a
# 64 MiB input split to bytes was gigabytes of pieces and hours of building (past any --budget);
# files up to this size still go down to single characters
MAX_ROUND_PIECES = 4 * MAX_PIECES
# a file over this is never parsed as a tree or table, nor split into lines (a 64 MiB JSON or YAML
# is gigabytes of objects and, in PyYAML, minutes of parsing): it is shrunk in pieces
MAX_PARSED_BYTES = 4 * 1024 * 1024
# a JSON/YAML tree is walked (recursively) only within these bounds, else it is shrunk as text:
# nesting past MAX_DEPTH would overflow the walk's stack, and YAML aliases can make a small file a
# tree of 9**9 nodes (a billion laughs: a walk that never ends). A tree written out has at most
# about one node per byte; one whose nodes, an alias's counted each time it is reached (as the
# walk visits them), outnumber NODES_PER_BYTE times its bytes is an alias bomb, not data
MAX_DEPTH = 100  # as a bundle's own JSON (reprex.bundle.MAX_JSON_DEPTH)
NODES_PER_BYTE = 10
_JSON_NAMES = (".json", ".geojson", ".ipynb")
_CSV = {".csv": ",", ".tsv": "\t"}
_YAML = (".yaml", ".yml")


def shrink_input(name: str, data: bytes, interesting: Callable[[bytes], bool], *, jobs: int = 1,
                 budget: int | None = None, deadline: float | None = None,
                 on_progress: Callable[[dict], None] | None = None) -> tuple[bytes, Stats]:
    """The smallest content for file `name` the oracle still calls interesting, and the cost."""
    return run_reduction(data, lambda judge: _shrink(name, data, judge), interesting, jobs=jobs, budget=budget,
                         deadline=deadline, on_progress=on_progress)


def drop_unread(files: Mapping[str, Any] | Iterable[str], read_names: Iterable[str]) -> Any:
    """The bundled files the run opened: a dict for a mapping, else a list of names.

    A file `data/x.csv` counts as read when a recorded path is it or ends with `/data/x.csv`
    (the run read it from its own working directory, wherever that was).
    """
    opened = {os.path.normpath(p).replace(os.sep, "/") for p in read_names if isinstance(p, str) and p}

    def read(name: str) -> bool:
        rel = os.path.normpath(name).replace(os.sep, "/")
        return any(p == rel or p.endswith("/" + rel) for p in opened)

    if isinstance(files, Mapping):
        return {k: v for k, v in files.items() if read(k)}
    return [k for k in files if read(k)]


def kind_of(name: str, data: bytes) -> str:
    """json, csv, tsv, yaml, text or bytes: by extension, then by what the content parses as."""
    ext = os.path.splitext(name.lower())[1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes"
    if len(data) > MAX_PARSED_BYTES:
        return "text"
    if ext in _JSON_NAMES or (ext not in _CSV and ext not in _YAML and text.lstrip()[:1] in ("{", "[")):
        try:
            json.loads(text)
            return "json"
        except (ValueError, RecursionError, MemoryError):  # RecursionError: nested past json's stack
            pass
    if ext in _CSV:
        return ext[1:]
    if ext in _YAML and _yaml() is not None:
        return "yaml"
    return "text"


def _shrink(name: str, data: bytes, judge: Judge) -> bytes:
    kind = kind_of(name, data)
    if kind == "bytes":
        return _pieces(data, judge, "bytes")
    best = None
    if kind in ("json", "yaml"):
        best = _structured(kind, data, judge)
    elif kind in ("csv", "tsv"):
        best = _table(kind, data, judge)
    if best is None:  # plain text, or a format whose round trip the oracle refused
        best = _text(data.decode("utf-8"), judge).encode("utf-8")
    return best


# structured: JSON / YAML ---------------------------------------------------------------


def _yaml():
    try:
        import yaml  # optional; only its safe loader and dumper are used
    except ImportError:
        return None
    return yaml


def _codec(kind: str, data: bytes):
    """(value, dump) for a JSON/YAML file: JSON dumps compact, YAML block style (the round trip is asked first)."""
    text = data.decode("utf-8")
    if kind == "json":
        value = json.loads(text)
        ascii_only = text.isascii()

        def dump(v: Any) -> bytes:
            return json.dumps(v, ensure_ascii=ascii_only, separators=(",", ":")).encode("utf-8")  # no final newline
        return value, dump
    yaml = _yaml()
    value = yaml.safe_load(text)

    def dump(v: Any) -> bytes:
        return yaml.safe_dump(v, sort_keys=False, allow_unicode=True, default_flow_style=None).encode("utf-8")
    return value, dump


def _structured(kind: str, data: bytes, judge: Judge) -> bytes | None:
    """None: not this format after all, or its normalised form isn't interesting."""
    judge.phase = "roundtrip"
    try:
        value, dump = _codec(kind, data)
        if not _walkable(value, max_nodes=NODES_PER_BYTE * len(data) + 1000):  # too deep, or an alias bomb
            return None
        normal = dump(value)
    except Exception:  # malformed or exotic (yaml tags), nested past the parser's stack: shrink it as text
        return None
    if normal != data and not judge.ask(normal):
        return None
    tree = _Tree(value, dump, judge)
    try:
        tree.run()
    except Exhausted:
        pass
    return tree.best


class _Tree:
    """Objects and arrays reduced outermost first, back to front; then scalars shortened."""

    def __init__(self, value: Any, dump: Callable[[Any], bytes], judge: Judge):
        self.value, self.dump, self.judge = value, dump, judge
        self.best = dump(value)
        self.dense = False

    def run(self) -> None:
        while True:
            before = self.best
            self._visit(())
            self.dense = True
            if self.best == before:
                return

    def _accept(self, value: Any) -> None:
        self.value, self.best = value, self.dump(value)
        self.judge.improved(len(self.best))

    def _visit(self, path: tuple) -> None:
        self.judge.check()
        node = _get(self.value, path)
        if path and not isinstance(node, (dict, list)):
            self._scalar(path, node)
            return
        if isinstance(node, dict):
            self.judge.phase = "keys"
            items = list(node.items())
            kept = reduce_chunks(items, lambda k: self.dump(_put(self.value, path, dict(k))), self.judge,
                                 dense=self.dense)
            if len(kept) < len(items):
                self._accept(_put(self.value, path, dict(kept)))
            for key in reversed(list(_get(self.value, path).keys())):
                self._visit(path + (key,))
        elif isinstance(node, list):
            self.judge.phase = "items"
            kept = reduce_chunks(node, lambda k: self.dump(_put(self.value, path, list(k))), self.judge,
                                 dense=self.dense)
            if len(kept) < len(node):
                self._accept(_put(self.value, path, list(kept)))
            for i in reversed(range(len(_get(self.value, path)))):
                self._visit(path + (i,))

    def _scalar(self, path: tuple, node: Any) -> None:
        self.judge.phase = "scalars"
        options, seen = [], set()
        for simpler in _simpler(node):
            cand = self.dump(_put(self.value, path, simpler))
            if len(cand) < len(self.best) and cand not in seen:
                seen.add(cand)
                options.append((cand, simpler))
        options.sort(key=lambda o: len(o[0]))
        hit = self.judge.first([c for c, _ in options])
        if hit is not None:
            self._accept(_put(self.value, path, options[hit][1]))


def _simpler(value: Any) -> list[Any]:
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int):
        return [v for v in (0, 1, value // 2) if abs(v) < abs(value)]
    if isinstance(value, float):
        return [0, 1, int(value)]
    if isinstance(value, str):  # 0 is the shortest value there is; then empty, one character
        return [0] + [v for v in dict.fromkeys((value[:0], value[:1])) if len(v) < len(value)]
    return []


def _walkable(value: Any, *, max_nodes: int, max_depth: int = MAX_DEPTH) -> bool:
    """Is the tree within the walk's bounds? Counted without recursion, an aliased node each time
    it is reached (so a billion laughs stops the count at max_nodes, not at 9**9)."""
    stack, nodes = [(value, 0)], 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes or depth > max_depth:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return True


def _get(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def _put(value: Any, path: tuple, new: Any) -> Any:
    """A copy with the value at path replaced, sharing everything off the path."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _put(value[head], rest, new)
    return copy


# tables: CSV / TSV -----------------------------------------------------------------------


def _table(kind: str, data: bytes, judge: Judge) -> bytes | None:
    judge.phase = "roundtrip"
    text = data.decode("utf-8")
    delimiter = "\t" if kind == "tsv" else ","
    terminator = "\r\n" if "\r\n" in text else "\n"
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error:
        return None
    if len(rows) < 2:
        return None

    def dump(table: list[list[str]]) -> bytes:
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator=terminator).writerows(table)
        return out.getvalue().encode("utf-8")

    normal = dump(rows)
    if normal != data and not judge.ask(normal):
        return None
    header, body = rows[0], rows[1:]
    judge.phase = "rows"
    body = reduce_chunks(body, lambda kept: dump([header] + kept), judge)  # stops quietly on the budget
    best = dump([header] + body)
    judge.improved(len(best))
    width = max(len(r) for r in [header] + body)
    judge.phase = "columns"

    def columns(kept: list[int]) -> bytes | None:
        return dump([[r[i] for i in kept if i < len(r)] for r in [header] + body]) if kept else None

    kept = reduce_chunks(list(range(width)), columns, judge)
    if len(kept) < width:
        best = columns(kept) or best
        judge.improved(len(best))
    return best


# text and bytes ----------------------------------------------------------------------------


def _text(text: str, judge: Judge) -> str:
    """Lines, then runs of characters (a file over MAX_PARSED_BYTES: runs of characters only)."""
    if len(text) > MAX_PARSED_BYTES:
        return _pieces(text, judge, "chars")
    judge.phase = "lines"
    lines = text.splitlines(keepends=True)
    kept = reduce_chunks(lines, lambda k: "".join(k).encode("utf-8"), judge)
    text = "".join(kept)
    judge.improved(size_of(text))
    return _pieces(text, judge, "chars")


def _pieces(data: Any, judge: Judge, phase: str) -> Any:
    """Runs of characters or bytes, coarse to fine: MAX_PIECES at first, halved each round down to
    single ones, but never more than MAX_ROUND_PIECES in a round."""
    judge.phase = phase
    encode = (lambda s: s.encode("utf-8")) if isinstance(data, str) else bytes
    empty = data[:0]
    step = -(-len(data) // MAX_PIECES)
    while data and not judge.out_of_time():  # memo answers cost no call: only the clock stops them
        pieces = [data[i:i + step] for i in range(0, len(data), step)]
        kept = reduce_chunks(pieces, lambda k: encode(empty.join(k)), judge)
        if len(kept) < len(pieces):
            data = empty.join(kept)
            judge.improved(len(encode(data)))
        finer = max(1, min(step // 2, -(-len(data) // MAX_PIECES)), -(-len(data) // MAX_ROUND_PIECES))
        if step == 1 or finer >= step:
            break
        step = finer
    return data
