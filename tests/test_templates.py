"""Generated code and templates: every name the code reads ships, and what is written runs on its own.

The standalone pytest script and the check-serve repros are copied into bundles, where a
replay has only the bundle's pins: they run here in a bare interpreter, from a directory that
holds nothing but what the bundle would.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_reprex.script import HELPER, Plan, Value, write
from reprex.ray import repro_templates
from reprex.templates import render_template, template_text

ROOT = Path(__file__).resolve().parents[1]


def _named_in_code() -> set[str]:
    names = set()
    for path in [*(ROOT / "reprex").rglob("*.py"), *(ROOT / "pytest_reprex").rglob("*.py")]:
        text = path.read_text("utf-8")
        names |= set(re.findall(r"""(?:template_text|render_template)\(\s*["']([^"']+)["']""", text))
    return names | {repro_templates.IMPORT_TEMPLATE, repro_templates.FETCH_TEMPLATE}


def test_every_template_the_code_reads_ships_in_the_package():
    names = _named_in_code()
    assert {"docker-build.sh", "images.json", "repro_launcher.py.tmpl", "pytest_script.py.tmpl",
            "pytest_entry.py"} <= names
    shipped = {p.name for p in (ROOT / "reprex" / "templates").iterdir()}
    assert names <= shipped, sorted(names - shipped)


def test_a_missing_template_is_a_one_line_error():
    with pytest.raises(FileNotFoundError, match="reprex template 'nope.tmpl' not found"):
        template_text("nope.tmpl")
    with pytest.raises(KeyError):  # a placeholder left unfilled never renders half a file
        render_template("repro_launcher.py.tmpl")


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


def test_pytest_script_runs_with_its_machinery_beside_it_even_without_its_directory_on_sys_path(tmp_path):
    old_base = "/tmp/pytest-of-someone/pytest-7"
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_app.py").write_text(
        "def test_reads(tmp_path, where):\n"
        "    assert where == str(tmp_path / 'data.txt')\n"
        "    raise RuntimeError('reached ' + open(where).read())\n")
    (tmp_path / "_reprex_tmp" / "test_reads0").mkdir(parents=True)
    (tmp_path / "_reprex_tmp" / "test_reads0" / "data.txt").write_text("the snapshot")
    plan = Plan(nodeid="tests/test_app.py::test_reads", module="test_app", module_file="tests/test_app.py",
                function="test_reads", class_path=[], unittest=False, argnames=["tmp_path", "where"],
                values=[Value("tmp_path", "tmp_path"),
                        Value("where", "literal", expr=repr(f"{old_base}/test_reads0/data.txt"))],
                conftests=[], sys_path=["tests"], cwd=".", old_base=old_base, tmp_rel="test_reads0",
                tmp_dirs=["test_reads0"])
    write(plan, tmp_path / "reprex_test_reads.py")
    assert (tmp_path / HELPER).read_text("utf-8") == template_text("pytest_entry.py")
    # -P: the script's directory is not on sys.path, as under a runner that sets PYTHONSAFEPATH
    proc = _run([sys.executable, "-P", "reprex_test_reads.py"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "RuntimeError: reached the snapshot"
    assert 'tests/test_app.py", line 3, in test_reads' in proc.stderr


def test_check_serve_import_repro_is_its_template_with_only_the_parameters_rendered(tmp_path):
    hostile = 'svc:app"\nimport os; os.remove("x")  # """'
    text = repro_templates.import_repro(config="serve.yaml", app="a", import_path=hostile, subdir="working_dir",
                                        ray_version="2.60", hint='a """ hint \\ with quotes')
    tree = ast.parse(text)
    assert ast.get_docstring(tree).endswith('Hint: a \'\'\' hint \\ with quotes')
    params = {n.targets[0].id: n.value for n in tree.body
              if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)}
    assert ast.literal_eval(params["IMPORT_PATH"]) == hostile  # data, never code
    assert "# reprex:" not in text
    template = template_text(repro_templates.IMPORT_TEMPLATE)
    assert text.endswith(template.split(repro_templates.END, 1)[1])  # the code after the parameters, as is

    (tmp_path / "working_dir").mkdir()
    (tmp_path / "working_dir" / "svc.py").write_text("app = 'built from ' + __file__.rsplit('/', 2)[-2]\n")
    good = repro_templates.import_repro(config="serve.yaml", app="a", import_path="svc:app", subdir="working_dir",
                                        ray_version=None, hint=None)
    (tmp_path / "repro.py").write_text(good)
    proc = _run([sys.executable, "repro.py"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "svc:app -> 'built from working_dir'"
