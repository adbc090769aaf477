"""pytest's own setups around a test, as the standalone script replays them.

pytest runs xunit-style methods (setup_module, setup_class, setup_method, setup_function and
their teardowns; unittest's setUpClass) through autouse fixtures of its own, named after the
module or class (`_xunit_setup_class_fixture_<qualname>`, ...), and a package's setup_module
when it sets up the Package collector. Their source is pytest's, so the plan can't run them
from source: it recognizes them here and the script calls the same methods with the same
arguments (reprex/templates/pytest_entry.py `_xunit`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pytest_reprex.script import Value
from reprex.capture.tests import Tree


def _first_plain(obj, names) -> str | None:
    """pytest's _get_first_non_fixture_func, by name: the xunit method it calls, if any."""
    from _pytest.fixtures import getfixturemarker

    for name in names:
        found = getattr(obj, name, None)
        if found is not None and getfixturemarker(found) is None:
            return name
    return None


def xunit_setups(item) -> dict[str, Value | None]:
    """pytest's own autouse fixtures for this test (python.py's xunit ones, unittest.py's), by
    fixture name, as the script replays them (None: one that does nothing for this test)."""
    import unittest

    from _pytest.python import Class, Module, Package

    found: dict[str, Value | None] = {}
    nose = item.config.pluginmanager.has_plugin("nose")  # pytest 7: nose-style setup/teardown too
    also = ("setup",) if nose else ()
    also_down = ("teardown",) if nose else ()

    def add(name, kind, owner, setup, teardown):
        if setup or teardown:
            found[name] = Value(name, "xunit", function=kind, owner=owner, setup=setup, teardown=teardown,
                                autouse=True)

    for node in item.listchain():
        obj = getattr(node, "obj", None)
        if isinstance(node, Module) and not isinstance(node, Package) and obj is not None:
            add(f"_xunit_setup_module_fixture_{obj.__name__}", "module", [],
                _first_plain(obj, ("setUpModule", "setup_module", *also)),
                _first_plain(obj, ("tearDownModule", "teardown_module", *also_down)))
            add(f"_xunit_setup_function_fixture_{obj.__name__}", "function", [],
                _first_plain(obj, ("setup_function",)), _first_plain(obj, ("teardown_function",)))
            if getattr(item, "instance", None) is not None:  # a method: setup_method's job, not this one's
                found[f"_xunit_setup_function_fixture_{obj.__name__}"] = None
        elif isinstance(node, Class) and isinstance(obj, type):
            owner = obj.__qualname__.split(".")
            qual = obj.__qualname__
            add(f"_xunit_setup_class_fixture_{qual}", "class", owner,
                _first_plain(obj, ("setup_class",)), _first_plain(obj, ("teardown_class",)))
            if issubclass(obj, unittest.TestCase):
                add(f"_unittest_setUpClass_fixture_{qual}", "unittest_class", owner,
                    "setUpClass" if getattr(obj, "setUpClass", None) else None,
                    "tearDownClass" if getattr(obj, "tearDownClass", None) else None)
                add(f"_unittest_setup_method_fixture_{qual}", "unittest_method", owner,
                    "setup_method" if getattr(obj, "setup_method", None) else None,
                    "teardown_method" if getattr(obj, "teardown_method", None) else None)
            else:
                add(f"_xunit_setup_method_fixture_{qual}", "method", owner,
                    _first_plain(obj, ("setup_method", *also)), _first_plain(obj, ("teardown_method", *also_down)))
    return found


def package_setups(item, tree: Tree) -> list[Value]:
    """setup_module of the packages' __init__.py on the way to the test: pytest calls them
    when it sets up the Package collector (not through a fixture), before any fixture."""
    from _pytest.python import Package

    out = []
    for node in item.listchain():
        if not isinstance(node, Package):
            continue
        init = Path(node.path)
        if init.name != "__init__.py":  # pytest 8 names the directory, pytest 7 the file
            init = init / "__init__.py"
        rel = tree.rel(init)
        module = next((m for m in list(sys.modules.values())
                       if getattr(m, "__file__", None) and Path(m.__file__).resolve() == init.resolve()), None)
        if rel is None or module is None:
            continue
        setup = _first_plain(module, ("setUpModule", "setup_module"))
        teardown = _first_plain(module, ("tearDownModule", "teardown_module"))
        if setup or teardown:
            out.append(Value(f"_package_setup_{module.__name__}", "xunit", function="package",
                             owner=[module.__name__, rel], setup=setup, teardown=teardown, autouse=True))
    return out
