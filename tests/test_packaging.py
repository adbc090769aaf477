"""The package as users get it: a wheel in a fresh venv, and a CLI that starts light."""

import ast
import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("docker", "ray", "piptools", "torch", "jsonschema", "smart_open", "reprex.probes", "reprex.replay.local")


@pytest.mark.parametrize("argv", [["--help"], ["capture", "--help"], ["replay", "--help"], ["--version"]])
def test_cli_help_imports_nothing_heavy(argv):
    code = ("import sys\nfrom reprex.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_captures(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(dist.glob("reprex-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {f"reprex/templates/{p.name}" for p in (ROOT / "reprex" / "templates").iterdir() if p.is_file()}
    assert "reprex/templates/repro_launcher.py.tmpl" in shipped and "reprex/templates/images.json" in shipped
    assert shipped <= set(names), sorted(shipped - set(names))  # every template and data file ships
    assert not any(n.startswith("templates/") for n in names)  # one home: inside the package
    assert "reprex/schema/bundle-v1.schema.json" in names and "reprex/_inject/sitecustomize.py" in names
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True,
                             timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    work = tmp_path / "work"
    work.mkdir()
    (work / "boom.py").write_text("def f():\n    raise RuntimeError('from a wheel')\nf()\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    proc = subprocess.run([str(env_dir / "bin" / "reprex"), "capture", "-q", "--json", "--", str(py), "boom.py"],
                          cwd=work, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1, proc.stderr  # capture exits with the program's own status
    info = json.loads(proc.stdout)
    with zipfile.ZipFile(info["written"]) as zf:
        launcher = zf.read("repro.py").decode()
    assert "Reproduction captured by reprex" in launcher  # rendered from the shipped template
    assert info["signature"]["types"] == ["RuntimeError"]
    # the fast path comes with the install: uv is the wheel's binary, in this venv, and runs
    found = subprocess.run([str(py), "-c", "from reprex import installer; print(installer.uv())"],
                           capture_output=True, text=True, timeout=60, env=env)
    assert found.stdout.strip() == str(env_dir / "bin" / "uv"), found.stderr


def test_every_declared_dependency_is_imported_by_the_package():
    """A dependency nobody imports is weight on every install (pip-tools was one)."""
    import re
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    source = "\n".join(p.read_text() for d in ("reprex", "pytest_reprex") for p in (ROOT / d).rglob("*.py"))
    for dep in deps:
        module = re.split(r"[<>=!~;\[ ]", dep, 1)[0].replace("-", "_").lower()
        assert re.search(rf"^\s*(?:import|from) {module}\b", source, re.M), f"{dep} is declared but never imported"


# Generated code that a bundle carries runs where only the bundle's pins are installed.
BUNDLED_CODE = {"pytest_entry.py": set(), "serve-import-repro.py": set(), "serve-fetch-repro.py": {"smart_open"}}


@pytest.mark.parametrize("name", sorted(BUNDLED_CODE))
def test_code_copied_into_bundles_imports_only_the_standard_library_at_top_level(name):
    from reprex.templates import template_text

    tree = ast.parse(template_text(name), name)
    imported = set()
    for node in tree.body:  # imports inside functions run only for the values that need them
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported, name
    assert imported - set(sys.stdlib_module_names) == BUNDLED_CODE[name]
