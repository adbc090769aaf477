"""The reducer's tree surgery and the questions it asks of a Python AST (reprex.shrink.script).

Edits never mutate: a copy is made of the nodes on the path to the change and the rest is
shared (`replace_at`, `with_items`, `splice`), except `without_param`, which edits a whole
tree at once (a parameter and every call's argument) and so copies it whole. Nothing here
runs or imports the source.
"""

from __future__ import annotations

import ast
import copy

Path = tuple[tuple[str, int | None], ...]  # fields (and list indexes) from the module to a node

PURE = (ast.Name, ast.Attribute, ast.Constant)  # as an expression statement: a no-op
CONSTANTS = (0,)  # one short stand-in; more cost a call each, for every expression
SHORT_STRING = 4  # strings up to this long are tried as each of their characters



def plain_functions(tree: ast.AST) -> list[str]:
    """Names of functions defined once (not as a method, undecorated) and never used other than
    by a plain call (a name passed around may be called with any arguments)."""
    defs: dict[str, int] = {}
    methods = {id(item) for node in ast.walk(tree) if isinstance(node, ast.ClassDef) for item in node.body}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # a method is called through its object, a decorated function by whatever wraps it
            plain = id(node) not in methods and not node.decorator_list
            defs[node.name] = defs.get(node.name, 0) + (1 if plain else 2)
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            called.add(id(node.func))
    other = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called}
    return [name for name, count in defs.items() if count == 1 and name not in other]


def unread_params(tree: ast.AST, name: str) -> list[str]:
    """Plain positional parameters of function `name` that nothing in it reads."""
    func = next(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name)
    if func.args.vararg or func.args.posonlyargs:
        return []
    read = {n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("locals", "vars", "eval")
           for n in ast.walk(func)):
        return []
    return [a.arg for a in func.args.args if a.arg not in read]


def without_param(tree: ast.Module, name: str, param: str) -> ast.Module | None:
    """A copy without the parameter and its argument at every call; None when a call's
    arguments can't be matched to it (a *args or **kwargs there)."""
    new = copy.deepcopy(tree)
    for node in ast.walk(new):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            args = node.args
            index = [a.arg for a in args.args].index(param)
            first_default = len(args.args) - len(args.defaults)
            if index >= first_default:
                del args.defaults[index - first_default]
            elif args.defaults:
                return None  # a parameter without a default before ones with: positions would shift
            del args.args[index]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name:
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                return None
            position = param_index(tree, name, param)
            if position < len(node.args):
                del node.args[position]
            node.keywords = [k for k in node.keywords if k.arg != param]
    return new


def param_index(tree: ast.AST, name: str, param: str) -> int:
    func = next(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name)
    return [a.arg for a in func.args.args].index(param)


def dead_assignment(node: ast.stmt, tree: ast.AST) -> bool:
    """An assignment to plain names that nothing reads, of a value that may do something."""
    if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None or isinstance(node.value, PURE):
        return False
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if not all(isinstance(t, ast.Name) for t in targets):
        return False
    names = {t.id for t in targets}
    return not any(isinstance(n, ast.Name) and n.id in names and not isinstance(n.ctx, ast.Store)
                   for n in ast.walk(tree))


def still_read(stmt: ast.AST, tree: ast.AST) -> bool:
    """Does something outside this statement read every name it binds (plain bindings only)?"""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        names = {stmt.name}
    elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
        names = {(a.asname or a.name).split(".")[0] for a in stmt.names}
    elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if not all(isinstance(t, ast.Name) for t in targets) or any(isinstance(n, ast.NamedExpr)
                                                                      for n in ast.walk(stmt)):
            return False
        names = {t.id for t in targets}
    else:
        return False
    inside = {id(n) for n in ast.walk(stmt)}
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
            and id(n) not in inside}
    return "*" not in names and names <= read


def node_key(node: ast.AST) -> str:
    try:
        return type(node).__name__ + ":" + ast.unparse(node)
    except Exception:
        return ast.dump(node)


def binds(node: ast.AST) -> bool:
    """Does this list item bind a name (a def, class, import, assignment target, parameter)?"""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom,
                         ast.arg, ast.alias, ast.Global, ast.Nonlocal)):
        return True
    return any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) or isinstance(n, ast.NamedExpr)
               for n in ast.walk(node))


def skip_field(node: ast.AST, name: str) -> bool:
    return isinstance(node, (ast.Name, ast.Constant)) or name in ("ctx",)


def binds_only(stmt: ast.stmt) -> set[str]:
    """Names a top-level statement binds, when binding is all it does (else empty)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, ast.Import):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    if isinstance(stmt, ast.ImportFrom) and stmt.module != "__future__":
        names = {a.asname or a.name for a in stmt.names}
        return set() if "*" in names else names
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        value = stmt.value
        if value is not None and not side_effect_free(value):
            return set()
        if all(isinstance(t, ast.Name) for t in targets):
            return {t.id for t in targets}
    return set()


def side_effect_free(expr: ast.expr) -> bool:
    return all(isinstance(n, (ast.Constant, ast.Name, ast.Load, ast.Tuple, ast.List, ast.Dict, ast.Set,
                              ast.UnaryOp, ast.BinOp, ast.operator, ast.unaryop, ast.Lambda, ast.arguments,
                              ast.arg, ast.expr_context))
               for n in ast.walk(expr))


def dunder_all(tree: ast.Module) -> set[str]:
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in stmt.targets):
            return {"__all__"} | {e.value for e in getattr(stmt.value, "elts", []) if isinstance(e, ast.Constant)
                                  and isinstance(e.value, str)}
    return set()


def liftable(node: ast.stmt) -> list[list[ast.stmt]]:
    """Bodies a compound statement could be replaced by, shortest-looking first."""
    out: list[list[ast.stmt]] = []
    if isinstance(node, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith)):
        out.append(node.body)
        if getattr(node, "orelse", None):
            out.append(node.orelse)
    elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
        out.append(node.body)
        out.extend(h.body for h in node.handlers)
        if node.orelse:
            out.append(node.body + node.orelse)
        if node.finalbody:
            out.append(node.finalbody)
            out.append(node.body + node.finalbody)
    return out


def smaller(node: ast.expr) -> list[ast.expr]:
    """Replacements for an expression: its child expressions, then short constants."""
    out: list[ast.expr] = []
    if isinstance(node, ast.Call) and not node.args and not node.keywords:
        out.append(node.func)  # `raise E()` as `raise E`
    for child in ast.iter_child_nodes(node):
        if isinstance(node, ast.Call) and child is node.func:
            continue
        if isinstance(child, ast.expr) and not isinstance(getattr(child, "ctx", None), (ast.Store, ast.Del)):
            out.append(child)
        elif isinstance(child, ast.comprehension):
            out.append(child.iter)
    if isinstance(node, ast.Constant):
        out.extend(simpler_literal(node.value))
    elif not isinstance(node, ast.Name):
        out.extend(ast.Constant(value=c) for c in CONSTANTS)
    width = len(ast.unparse(node))
    seen, kept = set(), []
    for cand in out:
        text = ast.unparse(cand)
        if len(text) < width and text not in seen:
            seen.add(text)
            kept.append(cand)
    # shortest first; at equal width the stand-in before a child (`assert 0` reads as a placeholder,
    # `assert 8` as a value that matters)
    return sorted(kept, key=lambda c: (len(ast.unparse(c)), not (isinstance(c, ast.Constant) and c.value == 0)))


def simpler_literal(value: object) -> list[ast.expr]:
    """Few stand-ins per literal: each extra guess costs a call for every literal in the script."""
    if isinstance(value, bool) or value is None or value is Ellipsis:
        return []
    if isinstance(value, (int, float)):
        return [ast.Constant(0)] if value else []
    if isinstance(value, (str, bytes)):  # empty, else one character (a value that must be non-empty)
        # a short string is tried as each of its characters (`'1.0'` fails as `'d'`? then as `'.'`),
        # a long one as its first only: a call per character
        chars = [value[i:i + 1] for i in range(len(value) if len(value) <= SHORT_STRING else 1)]
        return [ast.Constant(v) for v in dict.fromkeys([value[:0], *chars]) if len(v) < len(value)]
    return []


def node_at(tree: ast.AST, path: Path) -> ast.AST | None:
    node = tree
    for name, index in path:
        node = getattr(node, name, None)
        if index is not None:
            if not isinstance(node, list) or index >= len(node):
                return None
            node = node[index]
        if node is None:
            return None
    return node


def replace_at(tree: ast.AST, path: Path, value: object) -> ast.AST:
    """A copy of the tree with the node at path replaced, sharing everything off the path."""
    if not path:
        return value  # type: ignore[return-value]
    (name, index), rest = path[0], path[1:]
    new = copy.copy(tree)
    child = getattr(tree, name)
    if index is None:
        setattr(new, name, replace_at(child, rest, value))
    else:
        items = list(child)
        items[index] = replace_at(items[index], rest, value)
        setattr(new, name, items)
    return new


def with_items(tree: ast.AST, path: Path, name: str, items: list) -> ast.AST:
    """A copy of the tree with a list field of the node at path replaced."""
    node = copy.copy(node_at(tree, path))
    setattr(node, name, list(items))
    return replace_at(tree, path, node)


def splice(tree: ast.AST, path: Path, name: str, index: int, items: list) -> ast.AST:
    """A copy with list element `index` of the node at path replaced by several."""
    current = getattr(node_at(tree, path), name)
    return with_items(tree, path, name, current[:index] + list(items) + current[index + 1:])
