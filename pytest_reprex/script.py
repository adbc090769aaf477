"""Render the standalone script that re-runs one failed test without pytest's runner.

The script is standard library only (plus whatever the test itself imports), lives at
the top of the bundle's files/ (the test run's root directory), and is the bundle's
entry: `reprex replay` runs it under the recorder exactly like capture did. It holds what is
particular to its test (reprex/templates/pytest_script.py.tmpl); the machinery common to all
is a real module, reprex/templates/pytest_entry.py, that `write` copies beside it.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from reprex.capture.tests import PICKLE_LINE  # the capture check judges the text at this wrapping
from reprex.templates import render_template, template_text

# The script's machinery, copied beside it: reprex/templates/pytest_entry.py under this name
# (a leading underscore and a prefix no test project uses).
HELPER = "_reprex_pytest_entry.py"


@dataclass
class Value:
    """How the script makes one fixture value or parameter."""

    name: str
    # literal | pickle | source | xunit | tmp_path | tmpdir | tmp_path_factory | monkeypatch | request | stub
    # | namespace | unsupported
    how: str
    type: str = ""
    # literal repr or base64 pickle (for literal / pickle). The bundle's redaction sees only this
    # text, never the pickled bytes: capture embeds neither form when redaction would change the
    # value's repr or pickle (pytest_reprex.capture.Secrets)
    expr: str = "None"
    note: str = ""
    # for how == "source": the fixture function, run in its defining module's namespace
    module: str = ""
    module_file: str = ""  # relative to the work dir
    function: str = ""
    source: str = ""
    lineno: int = 1
    argnames: list[str] = field(default_factory=list)
    param: "Value | None" = None  # request.param of a parametrized fixture
    autouse: bool = False
    # for how == "xunit": one of pytest's own setup fixtures. `function` is its kind (module,
    # function, class, method, unittest_class, unittest_method, package), `owner` where the
    # methods live (class path in the test module; for a package: its import name and file)
    setup: str | None = None
    teardown: str | None = None
    owner: list[str] = field(default_factory=list)

    def manifest(self) -> dict:
        out = {"how": self.how, "type": self.type}
        if self.note:
            out["note"] = self.note
        if self.how == "source":
            out["fixture"] = f"{self.module}.{self.function}"
        if self.how == "xunit":
            out.update(kind=self.function, setup=self.setup, teardown=self.teardown)
        if self.autouse:
            out["autouse"] = True
        return out


@dataclass
class Plan:
    nodeid: str
    module: str  # the test module's import name in the test run
    module_file: str  # relative to the work dir
    function: str  # the test function's name (without parameters)
    class_path: list[str]  # enclosing classes, outermost first
    unittest: bool
    argnames: list[str]  # what the test function is called with
    values: list[Value]  # in evaluation order (dependencies first)
    conftests: list[tuple[str, str]]  # (import name, relative file), outermost first
    sys_path: list[str]  # the test run's sys.path entries inside the work dir, relative
    cwd: str  # the test's working directory, relative to the work dir
    hash_seed: str | None = None
    old_base: str | None = None  # pytest's basetemp in the failed run
    tmp_rel: str | None = None  # the test's tmp_path, relative to basetemp
    tmp_dirs: list[str] = field(default_factory=list)  # directories to recreate under the new basetemp
    random_state: str | None = None  # repr of random.getstate() at the call
    randomly_seed: object = None
    tool_version: str = ""
    # (import name, relative file) of the modules whose asserts pytest rewrote; the script
    # rewrites them too when pytest is importable where it runs
    rewrite: list[tuple[str, str]] = field(default_factory=list)
    # what pytest's comparison explanations read: {"verbosity": int, "ini": {...}, "ci": bool}
    assert_config: dict = field(default_factory=dict)
    # pytest's warning filters for the test: {"deprecations": bool, "filters": [[text, escape], ...]}
    warnings: dict = field(default_factory=dict)


def _pickle_text(b64: str) -> str:
    lines = textwrap.wrap(b64, PICKLE_LINE)
    return '"""\n' + "\n".join(lines) + '\n"""'


def _value_expr(value: Value, var: str) -> list[str]:
    if value.how == "literal":
        return [f"{var} = _retmp({value.expr})"]
    if value.how == "pickle":
        return [f"{var} = _retmp(_unpickle({_pickle_text(value.expr)}))"]
    if value.how == "tmp_path":
        return [f"{var} = TMP_PATH"]
    if value.how == "tmpdir":
        return [f"{var} = _legacy_path(TMP_PATH)"]
    if value.how == "tmp_path_factory":
        return [f"{var} = _TmpPathFactory(NEW_BASE)"]
    if value.how == "monkeypatch":
        return [f"{var} = _monkeypatch()"]
    if value.how == "request":
        return [f"{var} = _Request(None, None)"]
    if value.how == "stub":
        return [f"{var} = _stub"]
    if value.how == "namespace":
        return [f"{var} = {{}}"]
    if value.how == "xunit":
        return [f"{var} = _xunit({value.function!r}, {value.owner!r}, {value.setup!r}, {value.teardown!r})"]
    if value.how == "source":
        lines = []
        param = "_NO_PARAM"
        if value.param is not None:
            lines += _value_expr(value.param, "_param")
            param = "_param"
        lines.append(f"{var} = _fixture({value.module!r}, {value.module_file!r}, {value.function!r}, "
                     f"_SOURCES[{value.name!r}], {value.lineno}, {value.argnames!r}, {param})")
        return lines
    return [f"{var} = None  # {value.how}: {value.note or 'not reproducible outside pytest'}"]


def _doc_name(value: Value) -> str:
    if value.how != "xunit":
        return value.name
    where = ".".join(value.owner[:1] if value.function == "package" else value.owner)
    names = "/".join(n for n in (value.setup, value.teardown) if n)
    return f"{where + '.' if where else ''}{names} ({value.function})"


def render(plan: Plan) -> str:
    """The script's text; it runs only with `HELPER` (see `write`) beside it."""
    value_doc = "\n".join(f"    {_doc_name(v)}: {v.how}{' (autouse)' if v.autouse else ''}"
                          f"{' -- ' + v.note if v.note else ''}" for v in plan.values) or "    (none)"
    sources = {v.name: v.source for v in plan.values if v.how == "source"}
    body: list[str] = []
    for value in plan.values:
        body += _value_expr(value, f"VALUES[{value.name!r}]")
    if plan.random_state:
        body.append("random.setstate(RANDOM_STATE)  # pytest-randomly's state when the test started")
    values_block = textwrap.indent("\n".join(body), "    ") if body else "    pass"
    return render_template(
        "pytest_script.py.tmpl", helper_name=HELPER[:-3],
        nodeid_repr=repr(plan.nodeid), tool_version=plan.tool_version, value_doc=value_doc,
        hash_seed=repr(plan.hash_seed), sys_path=repr(plan.sys_path), cwd=repr(plan.cwd),
        conftests=repr(plan.conftests), module=repr(plan.module), module_file=repr(plan.module_file),
        function=repr(plan.function), class_path=repr(plan.class_path), unittest=repr(plan.unittest),
        argnames=repr(plan.argnames), old_base=repr(plan.old_base), tmp_rel=repr(plan.tmp_rel),
        tmp_dirs=repr(plan.tmp_dirs), sources=_sources_literal(sources),
        random_state=plan.random_state or "None", randomly_seed=repr(plan.randomly_seed),
        values_block=values_block, rewrite=repr(plan.rewrite), assert_config=repr(plan.assert_config),
        warnings=repr(plan.warnings),
    )


def write(plan: Plan, path: Path) -> None:
    """Write the script at `path` and its machinery (reprex/templates/pytest_entry.py) beside it."""
    path.write_text(render(plan), "utf-8")
    (path.parent / HELPER).write_text(template_text("pytest_entry.py"), "utf-8")


def _sources_literal(sources: dict[str, str]) -> str:
    if not sources:
        return "{}"
    parts = ["{"]
    for name, src in sources.items():
        parts.append(f"    {name!r}: {src!r},")
    parts.append("}")
    return "\n".join(parts)
