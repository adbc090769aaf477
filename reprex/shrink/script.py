"""Shrinking Python source at the AST level, outermost block first.

Rounds, repeated until one changes nothing: annotations, then top-level statements that
bind names nothing reads, are dropped together (one call each); then, top level first and
back to front, each block is reduced by reprex.shrink.reduce (galloping from its end, where a
script's failing statement usually is) and each statement tried as something smaller
(if/with/try/for/while lifted to a body, an unread assignment or a `return` to its value);
then the other lists (arguments, items, import names, defaults) and each expression as one
of its children or a short constant (a short string as each of its characters), and each
`from a.b.c import x` as `from a import x`, then `from a.b import x` (with a differential
oracle only: see shrink_script). Shortcuts
(what a round kept or refused isn't asked again) hold until the rounds converge; sweeps
without them follow. A candidate that doesn't compile costs no oracle call. The source is
parsed, never run or imported here; the oracle (the caller's) runs it.

Trees are never mutated: a candidate copies the nodes on the path to the change and
shares the rest, so building one costs the depth of the change, not the tree's size.
"""

from __future__ import annotations

import ast
import copy
import re
import warnings
from collections.abc import Callable

from reprex.shrink.ast_edits import (PURE, Path, binds, binds_only, dead_assignment, dunder_all, liftable, node_at,
                                       node_key, plain_functions, replace_at, skip_field, smaller, splice,
                                       still_read, unread_params, with_items, without_param)
from reprex.shrink.reduce import Exhausted, Judge, Stats, reduce_chunks, run_reduction, size_of


# list fields worth reducing, per node type; the rest (comparators, targets...) rarely shrink alone
_LISTS = {
    ast.Module: ("body",),
    ast.FunctionDef: ("decorator_list", "body"),
    ast.AsyncFunctionDef: ("decorator_list", "body"),
    ast.ClassDef: ("decorator_list", "bases", "keywords", "body"),
    ast.If: ("body", "orelse"),
    ast.For: ("body", "orelse"),
    ast.AsyncFor: ("body", "orelse"),
    ast.While: ("body", "orelse"),
    ast.With: ("items", "body"),
    ast.AsyncWith: ("items", "body"),
    ast.Try: ("body", "handlers", "orelse", "finalbody"),
    ast.ExceptHandler: ("body",),
    ast.Import: ("names",),
    ast.ImportFrom: ("names",),
    ast.Call: ("args", "keywords"),
    ast.List: ("elts",),
    ast.Tuple: ("elts",),
    ast.Set: ("elts",),
    ast.BoolOp: ("values",),
    ast.arguments: ("args", "kwonlyargs", "defaults"),
}
if hasattr(ast, "TryStar"):
    _LISTS[ast.TryStar] = _LISTS[ast.Try]
_BLOCKS = ("body", "orelse", "finalbody", "handlers")
# a source over this is neither parsed nor shrunk: ast.parse holds ~250 bytes of objects per byte of
# source (10 MB of `v1=1` lines: 2.5 GB, 90 s), and a bundle's module may be 64 MiB
MAX_SOURCE_BYTES = 2 * 1024 * 1024


def count_statements(source: str) -> int:
    """Statements in a Python source (0: it doesn't parse, or nests past what the parser or this
    stack takes: a hostile bundle's `x = ----...1` is a MemoryError in ast.parse; or is over
    MAX_SOURCE_BYTES, never parsed)."""
    if size_of(source) > MAX_SOURCE_BYTES:
        return 0
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return 0
    return sum(isinstance(n, ast.stmt) for n in ast.walk(tree))


def count_tokens(source: str | bytes) -> int | None:
    """Tokens, layout and comments left out: the size measure of the reduction literature
    (C-Reduce, Perses), blind to formatting and to the length of names. None: not tokenizable."""
    import io
    import tokenize

    layout = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT,
              tokenize.ENDMARKER, tokenize.ENCODING}
    data = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
    try:
        return sum(t.type not in layout for t in tokenize.tokenize(io.BytesIO(data).readline))
    except (tokenize.TokenError, SyntaxError, ValueError):
        return None


def render(tree: ast.AST) -> str | None:
    """Source for a tree, or None when it isn't valid Python (never asked of the oracle)."""
    try:
        source = ast.unparse(ast.fix_missing_locations(tree))  # no final newline: a byte is a byte
        with warnings.catch_warnings():  # `0[1]` and friends compile with a SyntaxWarning
            warnings.simplefilter("ignore")
            compile(source, "<candidate>", "exec", dont_inherit=True)
    except Exception:  # unparse refuses some hand-made trees; compile the rest
        return None
    return source


def pins_of(message: str | None, normalize: Callable[[str], str] | None = None) -> Callable[[object], bool]:
    """Which literals the failure's message shows: a predicate for `shrink_script(pinned=...)`.

    For an oracle that compares the message (replay --strict, or a hand-written one), a literal
    whose text appears in that message as a whole token almost surely can't change or go
    without changing the message: asking costs a call each and is answered no. `normalize`: the
    oracle's own normalisation (reprex's puts numbers, paths and ids as placeholders); a
    literal it would rewrite is never pinned, since the oracle doesn't see it.
    """
    text = message or ""

    def pinned(value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)) or not text:
            return False
        token = value if isinstance(value, str) else repr(value)
        if not token.strip() or (normalize is not None and normalize(token) != token):
            return False
        # a whole token: `17` is in "[3, 17]" but not in "170" or "1.17"; `a` not in "and"
        return re.search(r"(?<![\w.])" + re.escape(token) + r"(?!\w|\.\d)", text) is not None \
            if re.match(r"[\w.]", token[0]) or re.search(r"\w$", token) else token in text

    return pinned


def shrink_script(source: str, interesting: Callable[[str], bool], *, jobs: int = 1, budget: int | None = None,
                  deadline: float | None = None, on_progress: Callable[[dict], None] | None = None,
                  pinned: Callable[[object], bool] | None = None, differential: bool = False) -> tuple[str, Stats]:
    """The smallest source the oracle still calls interesting, and what finding it cost.

    The normalised (`ast.unparse`) form of the source is asked first; if the oracle
    rejects it (formatting mattered) or the source doesn't parse, the source comes back as is.
    `pinned` (see pins_of): literals the oracle's message shows, never replaced or dropped.
    `differential`: the oracle also refuses what fails with the bug's fix, so passes that can
    trade the failure for one that fails everywhere (shorter import paths) are safe to ask.
    """
    def reduce(judge: Judge) -> str:
        if size_of(source) > MAX_SOURCE_BYTES:
            return source  # too big to parse here: kept as it is
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):  # MemoryError: nesting the parser refuses
            return source
        normal = render(tree)
        judge.phase = "roundtrip"
        # a source that differs from its normal form only by trailing whitespace runs the same: not asked
        if normal is None or (normal != source.rstrip() and not judge.ask(normal)):
            return source
        reducer = _Reducer(tree, normal, judge, pinned, differential)
        try:
            best = reducer.run()
        except RecursionError:  # a tree deeper than this stack walks (a 300-branch elif chain): what was
            best = reducer.source  # accepted before the walk got too deep stands
        return best if judge.known(best) else source  # only what the oracle accepted, or the source

    stats = Stats(statements_before=count_statements(source))
    best, stats = run_reduction(source, reduce, interesting, stats=stats, jobs=jobs, budget=budget,
                                deadline=deadline, on_progress=on_progress)
    stats.statements_after = count_statements(best)
    return best, stats


class _Reducer:
    """Rounds of structure (whole statements, lifts) then expressions, until one changes nothing;
    then sweeps without the shortcuts below (and with names as `0`) until one changes nothing.
    A replacement rejected once is not asked again in a later round (the context rarely changes
    its answer, and expressions are most calls); a statement kept once stays kept while the
    names it binds are still read."""

    def __init__(self, tree: ast.Module, source: str, judge: Judge,
                 pinned: Callable[[object], bool] | None = None, differential: bool = False):
        self.tree = tree
        self.differential = differential
        self.source = source
        self.judge = judge
        self.pinned = pinned or (lambda value: False)
        self.dense = False  # after the first round most lists are already minimal
        self.rejected: set[tuple[str, str]] = set()
        self.needed: set[str] = set()  # list items kept by an earlier round, as text
        self.sweep = False

    def run(self) -> str:
        try:
            while True:
                before = self.source
                self._drop_annotations()
                self._drop_unused()
                self._drop_params()
                self._visit((), statements=True)
                self._visit((), statements=False)
                self.dense = True
                if self.source == before:
                    if self.sweep:
                        break
                    # converged with the shortcuts: rounds without them (and names as 0 too) until
                    # one changes nothing, for what a change elsewhere made possible
                    self.sweep = True
                if self.sweep:
                    self.rejected.clear()  # (kept statements stay kept: their own text decides them)
        except Exhausted:
            pass
        return self.source

    # candidates ---------------------------------------------------------------------

    def _accept(self, tree: ast.Module, source: str, path: Path | None = None) -> None:
        """Take a smaller tree; `path`: where it changed inside statements that stay (a statement
        kept last round stays kept when only its insides shrank: its text changed, not its role)."""
        if path:
            for depth in range(1, len(path) + 1):
                before = node_at(self.tree, path[:depth])
                if isinstance(before, ast.stmt) and node_key(before) in self.needed:
                    self.needed.add(node_key(node_at(tree, path[:depth])))
        self.tree, self.source = tree, source
        self.judge.improved(size_of(source))

    def _try(self, trees: list[ast.Module], keys: list[tuple[str, str]] | None = None,
             path: Path | None = None) -> bool:
        """Take the first interesting of these trees (in order); False if none is."""
        cands, valid, asked = [], [], []
        for i, t in enumerate(trees):
            key = keys[i] if keys else None
            if key in self.rejected:
                continue
            src = render(t)
            if src is not None and size_of(src) < size_of(self.source) and src not in cands:
                cands.append(src)
                valid.append(t)
                asked.append(key)
        if not cands:
            return False
        hit = self.judge.first(cands)
        self.rejected.update(k for k in asked[:len(cands) if hit is None else hit] if k)
        if hit is None:
            return False
        self._accept(valid[hit], cands[hit], path)
        return True

    def _is_pinned(self, node: object) -> bool:
        """A literal the compared message shows (`-1` included: a minus and a constant in the tree)."""
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
                and isinstance(node.operand.value, (int, float)) and not isinstance(node.operand.value, bool):
            return self.pinned(-node.operand.value)
        return isinstance(node, ast.Constant) and self.pinned(node.value)

    # passes -------------------------------------------------------------------------

    def _drop_annotations(self) -> None:
        """All parameter and return annotations at once (one call, and no `x: 0` stand-ins later)."""
        if not any((isinstance(n, ast.arg) and n.annotation is not None)
                   or (isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.returns is not None)
                   for n in ast.walk(self.tree)):
            return  # nothing to drop: no deep copy (a deep tree's copy is deep recursion)
        tree = copy.deepcopy(self.tree)
        found = False
        for node in ast.walk(tree):
            if isinstance(node, ast.arg) and node.annotation is not None:
                node.annotation, found = None, True
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
                node.returns, found = None, True
        if found:
            self.judge.phase = "annotations"
            self._try([tree])

    def _drop_params(self) -> None:
        """A function's parameter its body never reads, with the argument every call passes for
        it (one call each): `def quoted(path)` ... `quoted('')` as `def quoted()` ... `quoted()`.
        Only functions called by their plain name, with no *args at the call or in the def."""
        for name in plain_functions(self.tree):
            params = unread_params(self.tree, name)
            for param in reversed(params):
                key = ("param", f"{name}.{param}")
                if key in self.rejected:
                    continue
                tree = without_param(self.tree, name, param)
                if tree is not None:
                    self.judge.phase = "params"
                    self._try([tree], [key])

    def _drop_unused(self) -> None:
        """Every top-level def/class/import/plain assignment whose names nothing reads, at once."""
        self.judge.phase = "unused"
        loaded = {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Store)}
        loaded |= {n.value.id for n in ast.walk(self.tree)
                   if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
        exported = dunder_all(self.tree)
        keep = [s for s in self.tree.body if not binds_only(s) or binds_only(s) & (loaded | exported)]
        if len(keep) < len(self.tree.body):
            self._try([with_items(self.tree, (), "body", keep or [ast.Pass()])])

    def _visit(self, path: Path, *, statements: bool) -> None:
        """statements=True: blocks and lifts only; False: expressions and the other lists."""
        self.judge.check()
        node = node_at(self.tree, path)
        if path:
            self._replace(path, node, statements)
            node = node_at(self.tree, path)
        if node is None or isinstance(node, ast.JoinedStr):
            return
        for name in _LISTS.get(type(node), ()):
            if (name in _BLOCKS) == statements:
                self._reduce_list(path, name)
        if isinstance(node, ast.Dict) and not statements:
            self._reduce_dict(path)
        node = node_at(self.tree, path)
        for name, value in reversed(list(ast.iter_fields(node))):
            if isinstance(value, list):
                for i in reversed(range(len(value))):
                    current = getattr(node_at(self.tree, path), name, None)
                    if isinstance(current, list) and i < len(current) and isinstance(current[i], ast.AST):
                        if not statements or isinstance(current[i], (ast.stmt, ast.excepthandler)):
                            self._visit(path + ((name, i),), statements=statements)
            elif isinstance(value, ast.AST) and not statements and not skip_field(node, name):
                self._visit(path + ((name, None),), statements=statements)

    def _reduce_list(self, path: Path, name: str) -> None:
        node = node_at(self.tree, path)
        items = getattr(node, name, None)
        if not isinstance(items, list) or not items:
            return
        self.judge.phase = "statements" if name in _BLOCKS else "lists"
        empty = [ast.Pass()] if name == "body" else []

        def build(kept: list) -> str | None:
            return render(with_items(self.tree, path, name, kept or empty))

        # short argument/item lists are mostly needed: one at a time beats bisecting them
        dense = self.dense or (name not in _BLOCKS and len(items) <= 4)
        keys = [node_key(item) for item in items]
        # kept last round, binding no name or only names still read elsewhere (a binding may have
        # lost its last use since)
        known = [i for i, item in enumerate(items) if (keys[i] in self.needed
                 and (not binds(item) or still_read(item, self.tree))) or self._is_pinned(item)]
        kept = reduce_chunks(items, build, self.judge, dense=dense, keep=known, gallop=name in _BLOCKS)
        self.needed.update(node_key(item) for item in kept)
        if len(kept) < len(items):
            tree = with_items(self.tree, path, name, kept or empty)
            self._accept(tree, render(tree) or self.source, path if name not in _BLOCKS else None)

    def _reduce_dict(self, path: Path) -> None:
        node = node_at(self.tree, path)
        pairs = list(zip(node.keys, node.values))
        if not pairs:
            return
        self.judge.phase = "lists"

        def dict_with(kept: list) -> ast.Module:
            new = copy.copy(node_at(self.tree, path))
            new.keys, new.values = [k for k, _ in kept], [v for _, v in kept]
            return replace_at(self.tree, path, new)

        known = [i for i, (k, v) in enumerate(pairs) if self._is_pinned(k) or self._is_pinned(v)]
        kept = reduce_chunks(pairs, lambda kept: render(dict_with(kept)), self.judge, dense=self.dense, keep=known)
        if len(kept) < len(pairs):
            tree = dict_with(kept)
            self._accept(tree, render(tree) or self.source, path)

    def _replace(self, path: Path, node: ast.AST, statements: bool) -> None:
        """Try the node as something smaller: a lifted body, a child, a constant."""
        parent_field, index = path[-1]
        parent_path = path[:-1]
        if statements:
            if isinstance(node, ast.stmt) and index is not None:
                self.judge.phase = "lift"
                bodies = liftable(node)
                if dead_assignment(node, self.tree) or (isinstance(node, ast.Return) and node.value is not None
                                                         and not isinstance(node.value, PURE)):
                    bodies.append([ast.Expr(node.value)])  # `total = f()` nobody reads, `return f()`: `f()`
                if isinstance(node, (ast.For, ast.AsyncFor)) and not isinstance(node.iter, PURE):
                    bodies.append([ast.Expr(node.iter)])  # the loop's failure may be in making the iterable
                options = [splice(self.tree, parent_path, parent_field, index, body) for body in bodies]
                self._try(options)
            return
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and "." in node.module \
                and self.differential:
            # `from urllib3.util.retry import Retry` as `from urllib3 import Retry`: packages re-export.
            # Only with a control: `from packaging import LegacyVersion` fails as the removed name's
            # import did, in the same frame, but on every version: another bug
            self.judge.phase = "imports"
            parts = node.module.split(".")
            options, keys = [], []
            for n in range(1, len(parts)):
                shorter = copy.copy(node)
                shorter.module = ".".join(parts[:n])
                options.append(replace_at(self.tree, path, shorter))
                keys.append((node_key(node), shorter.module))
            self._try(options, keys, path)
            return
        if isinstance(node, ast.expr) and not isinstance(getattr(node, "ctx", None), (ast.Store, ast.Del)):
            parent = node_at(self.tree, parent_path)
            if isinstance(parent, ast.Call) and parent_field == "func":
                return  # calling a constant: never the same failure
            if isinstance(node, ast.Attribute) and not self.sweep:
                return  # an attribute as its object rarely is; as 0, in the sweeps only
            if self._is_pinned(node):
                return  # the message shows it
            self.judge.phase = "expressions"
            statement = isinstance(parent, ast.Expr)
            options, keys = [], []
            text = ast.unparse(node)
            stand_ins = smaller(node)
            if isinstance(node, ast.Attribute) or (self.sweep and isinstance(node, ast.Name) and len(node.id) > 1):
                stand_ins = [ast.Constant(0)]
            for child in stand_ins:
                if statement and isinstance(child, PURE):
                    continue  # `f(x)` as `x` on its own line is the statement dropped, already tried
                options.append(replace_at(self.tree, path, child))
                keys.append((text, ast.unparse(child)))
            self._try(options, keys, path)
