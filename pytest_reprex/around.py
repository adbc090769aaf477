"""What pytest's config does around a test that the standalone script does too: which project
modules had their asserts rewritten, what the comparison explanations read of the config
(verbosity, truncation), and the warning filters. Read at capture from pytest's objects;
the script applies them only where pytest is importable (reprex/templates/pytest_entry.py).
"""

from __future__ import annotations

import fnmatch
import os
import sys

from reprex.capture.tests import Tree


def rewritten(item, tree: Tree, conftests: list[str]) -> list[tuple[str, str]]:
    """(import name, relative file) of the project modules this test runs whose asserts pytest
    rewrote: its module, its conftests (`conftests`: relative files), helpers registered with
    `register_assert_rewrite` and plugins, and the other test modules its module or class
    draws on (a base class in a test module). The rest of the session's test modules stay out."""
    config = item.config
    if getattr(config.option, "assertmode", "rewrite") != "rewrite":
        return []
    try:
        from _pytest.assertion.rewrite import assertstate_key

        state = config.stash.get(assertstate_key, None)
    except (ImportError, AttributeError):  # before pytest 7
        state = getattr(config, "_assertstate", None)
    names = getattr(getattr(state, "hook", None), "_rewritten_names", None)
    if isinstance(names, dict):  # pytest 8: name -> file
        found = {name: str(path) for name, path in names.items()}
    elif names is not None:  # pytest 7: names
        found = {name: getattr(sys.modules.get(name), "__file__", None) or "" for name in names}
    else:  # no hook to ask: what pytest rewrites by default
        found = {item.module.__name__: str(item.path)}
    try:
        patterns = list(config.getini("python_files"))
    except ValueError:
        patterns = ["test_*.py", "*_test.py"]
    drawn = _modules_drawn_on(item)
    out = []
    for name, file in found.items():
        rel = tree.rel(file) if file else None
        if rel is None or not rel.endswith(".py"):
            continue
        test_file = any(fnmatch.fnmatch(os.path.basename(rel), pat) for pat in patterns)
        if rel in conftests or name in drawn or not test_file:
            out.append((name, rel))
    if (item.module.__name__, tree.rel(item.path)) not in out and tree.rel(item.path):
        out.append((item.module.__name__, tree.rel(item.path)))
    return sorted(out)


def _modules_drawn_on(item) -> set[str]:
    """The test's module and the modules its globals and class hierarchy come from."""
    module = item.module
    names = {module.__name__}
    for value in list(vars(module).values()):
        names.add(value.__name__ if isinstance(value, type(module)) else getattr(value, "__module__", None))
    for cls in getattr(getattr(item, "cls", None), "__mro__", ()):
        names.add(cls.__module__)
    return {n for n in names if isinstance(n, str)}


def warning_filters(item) -> dict:
    """The warning filters pytest's warnings plugin set around the test, in its order: ini
    `filterwarnings`, then -W (escaped), then the test's `filterwarnings` marks. A project
    with `filterwarnings = error` fails on a warning; the script must too."""
    config = item.config
    if not config.pluginmanager.has_plugin("warnings"):
        return {}
    filters = [[arg, False] for arg in config.getini("filterwarnings")]
    filters += [[arg, True] for arg in (getattr(config.known_args_namespace, "pythonwarnings", None) or [])]
    for mark in item.iter_markers(name="filterwarnings"):
        filters += [[arg, False] for arg in mark.args if isinstance(arg, str)]
    return {"deprecations": not sys.warnoptions, "filters": filters}


_ASSERT_INI = ("truncation_limit_lines", "truncation_limit_chars", "assertion_text_diff_style")


def assert_config(config) -> dict:
    """What pytest's comparison explanations read of the config: verbosity, the truncation and
    diff ini options, whether it ran on CI (no truncation there)."""
    try:
        verbosity = config.get_verbosity(config.VERBOSITY_ASSERTIONS)
    except AttributeError:  # before pytest 8
        verbosity = config.getoption("verbose", 0)
    ini = {}
    for name in _ASSERT_INI:
        try:
            value = config.getini(name)
        except (ValueError, KeyError):
            continue
        if value is None or isinstance(value, (str, int)):
            ini[name] = value
    try:
        from _pytest.compat import running_on_ci
    except ImportError:
        ci = any(os.environ.get(var) for var in ("CI", "BUILD_NUMBER"))
    else:
        ci = running_on_ci()
    return {"verbosity": int(verbosity or 0), "ini": ini, "ci": bool(ci)}
