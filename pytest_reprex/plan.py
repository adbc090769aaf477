"""How a standalone script rebuilds what a failed test got: the plan for pytest_reprex.script.

Reads pytest's objects (the test's fixture definitions, params, conftests, class) and says
for each value how the script makes it: a literal (its repr round-trips through
`ast.literal_eval`), a pickle, or, for a value that does neither, its fixture function's
source run in its own module (flagged in the manifest). Nothing that holds a secret is
embedded (reprex.capture.tests.Secrets). pytest's own setups are pytest_reprex.xunit's, what
its config does around the test (assert rewriting, warning filters) pytest_reprex.around's.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import sys
import textwrap
from pathlib import Path

from pytest_reprex.around import assert_config, rewritten, warning_filters
from pytest_reprex.script import Plan, Value
from pytest_reprex.xunit import package_setups, xunit_setups
from reprex.capture.tests import Secrets, Tree, as_literal, as_pickle, holds_secret, type_name, under

BUILTIN = {"tmp_path": "tmp_path", "tmpdir": "tmpdir", "tmp_path_factory": "tmp_path_factory",
           "monkeypatch": "monkeypatch", "request": "request", "record_property": "stub",
           "record_xml_attribute": "stub", "record_testsuite_property": "stub",
           "doctest_namespace": "namespace"}  # a dict autouse fixtures fill for doctests (networkx's conftest)


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
        return Value(f"{name}.param", "literal", type_name(param), expr)
    blob = as_pickle(param, secrets)
    if blob is not None:
        return Value(f"{name}.param", "pickle", type_name(param), blob)
    if holds_secret(param):
        return Value(f"{name}.param", "unsupported", type_name(param),
                     note="request.param: redaction would change it (a secret): left out of the bundle")
    return Value(f"{name}.param", "unsupported", type_name(param),
                 note="request.param neither a literal nor picklable")


def plan_values(item, tree: Tree, secrets: Secrets | None = None) -> list[Value]:
    """How the script makes each value, setups included, in the order pytest made them;
    nothing that holds a secret is embedded (see `Secrets`)."""
    if secrets is None:
        secrets = Secrets()
    info = item._fixtureinfo
    xunit = xunit_setups(item)
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
        return Value(name, "source", type_name(funcargs.get(name)), module=module, module_file=module_file,
                     function=function,
                     source=source, lineno=lineno, argnames=list(fd.argnames), param=param, autouse=autouse)

    def make(name, autouse=False):
        if name in planned or name in visiting:
            return
        visiting.add(name)
        try:
            if name in BUILTIN:
                planned[name] = Value(name, BUILTIN[name], type_name(funcargs.get(name)))
                return
            fd = fixturedef(name)
            if name in xunit and getattr(getattr(fd, "func", None), "__module__", "").startswith("_pytest."):
                if xunit[name] is not None:
                    planned[name] = xunit[name]
                return
            if autouse:  # its side effects matter, not its value: run it if it is the project's
                value = source_value(name, fd, autouse=True)
                if value is None:
                    where = getattr(getattr(fd, "func", None), "__module__", None) or "?"
                    value = Value(name, "unsupported", type_name(funcargs.get(name)), autouse=True,
                                  note=f"autouse fixture {name} (from {where}) is not the project's: "
                                       "the script can't run it")
                planned[name] = value
                return
            value = funcargs.get(name)
            expr = as_literal(value, secrets)
            if expr is not None:
                planned[name] = Value(name, "literal", type_name(value), expr)
                return
            blob = as_pickle(value, secrets)
            if blob is not None:
                planned[name] = Value(name, "pickle", type_name(value), blob)
                return
            secret = holds_secret(value)
            made = source_value(name, fd)
            if made is not None:
                made.note = ("redaction would change it (a secret): rebuilt from its fixture's source" if secret
                             else "not picklable: rebuilt from its fixture's source")
                planned[name] = made
                return
            planned[name] = Value(name, "unsupported", type_name(value),
                                  note="redaction would change it (a secret): left out of the bundle" if secret
                                  else "neither a literal nor picklable, and not a project fixture")
        finally:
            visiting.discard(name)

    argnames = list(info.argnames)
    # pytest makes the closure's names in order (wider scopes first), each one's dependencies
    # before it; a name only some value depends on is made when that value needs it
    order = [n for n in info.names_closure if n in info.initialnames or n in argnames]
    order += [n for n in [*info.initialnames, *argnames] if n not in order]
    for name in order:
        make(name, autouse=name not in argnames)
    return package_setups(item, tree) + list(planned.values())


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
        if rel is None or not under(test_dir, path.parent):
            continue
        found.append((len(path.parts), name, rel))
    return [(name, rel) for _, name, rel in sorted(found)]


def _sys_path(tree: Tree) -> list[str]:
    out = []
    for entry in sys.path:
        rel = tree.rel(entry or os.getcwd())
        if rel is not None and Path(tree.base / rel).is_dir() and rel not in out:
            out.append(rel)
    return out


def script_name(item, tree: Tree) -> str:
    stem = re.sub(r"[^A-Za-z0-9_]", "_", getattr(item, "originalname", None) or item.name.split("[")[0])
    name = f"reprex_{stem}.py"
    n = 1
    while (tree.base / name).exists():
        n += 1
        name = f"reprex_{stem}_{n}.py"
    return name


def make_plan(item, tree: Tree, snap: dict | None, random_state: str | None,
              secrets: Secrets | None = None, nodeid: str | None = None) -> tuple[Plan, list[Value]]:
    """`nodeid`: the test's id as the bundle may show it (redacted)."""
    import unittest

    from reprex import __version__

    values = plan_values(item, tree, secrets)
    conftests = _conftests(item, tree)
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
        values=values, conftests=conftests, sys_path=_sys_path(tree),
        cwd=cwd_rel if Path(tree.base / cwd_rel).is_dir() else ".",
        hash_seed=seed if seed and seed.isdigit() else None,
        old_base=snap["base"] if snap else None, tmp_rel=snap["tmp_rel"] if snap else None,
        tmp_dirs=snap["dirs"] if snap else [], random_state=random_state,
        randomly_seed=_randomly_seed(item.config), tool_version=__version__,
        rewrite=rewritten(item, tree, [rel for _, rel in conftests]), assert_config=assert_config(item.config),
        warnings=warning_filters(item),
    )
    return plan, plan.values


def _randomly_seed(config):
    if not config.pluginmanager.hasplugin("randomly"):
        return None
    seed = config.getoption("randomly_seed", None)
    return seed if isinstance(seed, (int, str)) else None


def randomly_active(config) -> bool:
    return config.pluginmanager.hasplugin("randomly") and bool(config.getoption("randomly_reset_seed", True))
