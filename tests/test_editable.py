"""Editable installs of every kind are the user's checkout: flagged `editable` with their kind,
never pinned as a release, their imported code bundled under files/, and replay imports it
from there. Each case is a real install into a fresh venv (pip/uv from the index, setuptools
doing what it does), captured by `reprex capture` and replayed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from reprex.bundle import Bundle
from reprex.pins import parse_requirements

PY = sys.executable
UV = str(Path(PY).parent / "uv")
SETUP = "from setuptools import setup\nsetup(name={name!r}, version='0.1', packages=[{name!r}]{extra})\n"
CORE = "def boom(n):\n    return check(n)\n\n\ndef check(n):\n    raise ValueError(f'bad value {n}')\n"
APP = "import {name}\n{name}.boom(3)\n"


def run(*argv, cwd=None, env=None, timeout=300):
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done


def venv(path: Path, *, seed: bool = False) -> Path:
    run(UV, "venv", "-q", "--python", PY, *(["--seed"] if seed else []), path)
    return path / "bin" / "python"


def site_packages(python: Path) -> Path:
    return Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())


def project(root: Path, name: str, *, src: bool = False) -> Path:
    """A small setuptools project: `name/__init__.py` re-exports `core.boom`, which raises."""
    pkg = root / "src" / name if src else root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .core import boom\n")
    (pkg / "core.py").write_text(CORE)
    (pkg / "unused.py").write_text("VALUE = 1\n")  # never imported: bundled with its package all the same
    extra = ", package_dir={'': 'src'}" if src else ""
    (root / "setup.py").write_text(SETUP.format(name=name, extra=extra))
    return root


def capture(python: Path, workdir: Path, name: str, out: Path) -> Bundle:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "app.py").write_text(APP.format(name=name))
    done = subprocess.run([PY, "-m", "reprex", "capture", "-o", str(out), "--", str(python), "app.py"],
                          cwd=workdir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and out.is_file(), done.stdout + done.stderr  # the program's own status
    return Bundle.read(out)


def replay(bundle_path: Path, *extra: str) -> dict:
    done = subprocess.run([PY, "-m", "reprex", "replay", "--json", *extra, str(bundle_path)],
                          capture_output=True, text=True, timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_bundled_editable(bundle: Bundle, name: str, kind: str, home: str):
    pins = bundle.manifest["pins"]
    flagged = [p for p in pins["flagged"] if p["name"] == name]
    assert flagged and flagged[0]["flags"] == ["editable"] and flagged[0]["editable_kind"] == kind, pins
    assert name not in {r.split("==")[0] for r in parse_requirements(bundle.text("requirements.txt"))}
    assert f"# {name}==0.1  # editable ({kind})" in bundle.text("requirements.txt")
    prefix = f"files/{home}/{name}/" if home != "." else f"files/{name}/"
    copied = set(bundle.manifest["files"]["copied"])
    assert {prefix + "__init__.py", prefix + "core.py", prefix + "unused.py"} <= copied, copied
    assert home in bundle.manifest["entry"]["pythonpath"]
    assert "raise ValueError" in bundle.text(prefix + "core.py")
    packages = {d["name"]: d for d in bundle.json("environment.json")["packages"]["value"]["distributions"]}
    assert packages[name]["provenance"]["editable"] is True
    assert packages[name]["provenance"]["editable_kind"] == kind


@pytest.fixture(scope="module")
def root(tmp_path_factory, cache):
    return tmp_path_factory.mktemp("editable")


# -- (a) PEP 660: `pip install -e .` with a modern setuptools (an import-hook finder) ---------------

@pytest.fixture(scope="module")
def pep660(root):
    python = venv(root / "v660", seed=True)
    proj = project(root / "proj660", "hookpkg")
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-build-isolation", "-e", proj)
    site = site_packages(python)
    assert list(site.glob("__editable___hookpkg_*_finder.py")), sorted(p.name for p in site.iterdir())
    out = root / "pep660.reprex.zip"
    return capture(python, root / "work660", "hookpkg", out), out


def test_pep660_finder_install_is_editable_and_bundled(pep660):
    bundle, _ = pep660
    assert_bundled_editable(bundle, "hookpkg", "pep660", "_reprex_editable/hookpkg")


def test_pep660_replays_locally_from_the_bundled_code(pep660):
    result = replay(pep660[1], "--backend", "local")
    assert result["verdict"] == "reproduced", result
    assert result["signature"]["frames"][:2] == ["core.py:check", "core.py:boom"]


# -- (b) legacy `setup.py develop`: an .egg-link, easy-install.pth, metadata in the checkout ---------

@pytest.fixture(scope="module")
def egg_link(root):
    python = venv(root / "vegg")
    run(UV, "pip", "install", "-q", "--python", python, "setuptools<64")
    proj = project(root / "projegg", "eggpkg")
    run(python, "setup.py", "-q", "develop", cwd=proj)
    site = site_packages(python)
    assert (site / "eggpkg.egg-link").is_file() and (proj / "eggpkg.egg-info").is_dir()
    assert not list(site.glob("eggpkg*.dist-info"))  # nothing but the .egg-link says it is installed
    out = root / "egg.reprex.zip"
    return capture(python, root / "workegg", "eggpkg", out), out


def test_egg_link_install_is_editable_and_bundled(egg_link):
    bundle, _ = egg_link
    assert_bundled_editable(bundle, "eggpkg", "egg-link", "_reprex_editable/eggpkg")
    assert bundle.manifest["pins"]["roots"] == ["eggpkg"]


def test_egg_link_replays_locally(egg_link):
    result = replay(egg_link[1], "--backend", "local")
    assert result["verdict"] == "reproduced", result


@pytest.mark.docker
def test_egg_link_replays_in_docker(egg_link, base_image):
    """No release of eggpkg exists: only the bundled checkout can make this reproduce."""
    result = replay(egg_link[1], "--backend", "docker", "--image", base_image)
    assert result["verdict"] == "reproduced", result
    assert result["backend"] == "docker"


def test_show_says_the_checkout_is_bundled(egg_link):
    done = subprocess.run([PY, "-m", "reprex", "render", "--venue", "text", str(egg_link[1])],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "eggpkg 0.1 (editable, bundled as files)" in done.stdout


# -- (c) a plain .pth path entry (`conda develop`), metadata in the checkout ---------------------------

@pytest.fixture(scope="module")
def pth(root):
    python = venv(root / "vpth")
    run(UV, "pip", "install", "-q", "--python", python, "setuptools")
    proj = project(root / "projpth", "pthpkg")
    run(python, "setup.py", "-q", "egg_info", cwd=proj)  # the metadata a develop install leaves behind
    (site_packages(python) / "conda.pth").write_text(f"{proj}\n")
    out = root / "pth.reprex.zip"
    return capture(python, root / "workpth", "pthpkg", out), out


def test_pth_path_entry_is_editable_and_bundled(pth):
    bundle, path = pth
    assert_bundled_editable(bundle, "pthpkg", "pth", "_reprex_editable/pthpkg")
    assert replay(path, "--backend", "local")["verdict"] == "reproduced"


@pytest.fixture(scope="module")
def hatch(root):
    """hatchling's editable wheel: a `_editable_impl_<name>.pth` path entry, as flit and pdm do."""
    python = venv(root / "vhatch", seed=True)
    proj = project(root / "projhatch", "hatchpkg")
    (proj / "setup.py").unlink()
    (proj / "pyproject.toml").write_text('[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
                                         '[project]\nname = "hatchpkg"\nversion = "0.1"\n')
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", proj)
    assert (site_packages(python) / "_editable_impl_hatchpkg.pth").read_text().strip() == str(proj)
    return python


def test_hatch_pth_install_is_editable_and_bundled(hatch, root):
    out = root / "hatch.reprex.zip"
    bundle = capture(hatch, root / "workhatch", "hatchpkg", out)
    assert_bundled_editable(bundle, "hatchpkg", "pth", "_reprex_editable/hatchpkg")
    assert replay(out, "--backend", "local")["verdict"] == "reproduced"


def test_pth_install_without_direct_url_is_still_editable(hatch, root):
    """An installer that writes no PEP 610 direct_url.json (pip before 20.1): the .pth its
    RECORD lists, pointing into a checkout, is what says editable."""
    direct = site_packages(hatch) / "hatchpkg-0.1.dist-info" / "direct_url.json"
    assert json.loads(direct.read_text())["dir_info"] == {"editable": True}  # pip wrote one
    direct.unlink()
    bundle = capture(hatch, root / "workhatch2", "hatchpkg", root / "hatch2.reprex.zip")
    assert_bundled_editable(bundle, "hatchpkg", "pth", "_reprex_editable/hatchpkg")


# -- (d) a src-layout checkout outside the working dir (PEP 660, a static path .pth) ------------------

@pytest.fixture(scope="module")
def src_layout(root):
    python = venv(root / "vsrc", seed=True)
    proj = project(root / "checkouts" / "srcproj", "srcpkg", src=True)
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-build-isolation", "-e", proj)
    out = root / "src.reprex.zip"
    return capture(python, root / "worksrc", "srcpkg", out), out


def test_src_layout_outside_the_work_dir_is_importable_on_replay(src_layout):
    bundle, path = src_layout
    assert_bundled_editable(bundle, "srcpkg", "pep660", "_reprex_editable/srcpkg")
    assert not any(f.startswith("files/_reprex_editable/srcpkg/src/") for f in bundle.manifest["files"]["copied"])
    assert replay(path, "--backend", "local")["verdict"] == "reproduced"


def test_src_layout_inside_the_work_dir_puts_src_on_the_path(root):
    """Run from the checkout itself: the code is under the work dir already, `src` must be importable."""
    python = venv(root / "vinside", seed=True)
    proj = project(root / "inside", "insidepkg", src=True)
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-build-isolation", "-e", proj)
    out = root / "inside.reprex.zip"
    bundle = capture(python, proj / "scripts", "insidepkg", out)  # the run's cwd: proj/scripts
    assert_bundled_editable(bundle, "insidepkg", "pep660", "_reprex_editable/insidepkg")
    inside = capture(python, proj, "insidepkg", root / "inside2.reprex.zip")  # cwd: the checkout
    assert inside.manifest["entry"]["pythonpath"] == ["src"]
    assert "files/src/insidepkg/core.py" in inside.manifest["files"]["copied"]
    assert replay(root / "inside2.reprex.zip", "--backend", "local")["verdict"] == "reproduced"


# -- the pytest plugin's captures: the project's tests import a sibling checkout ---------------------

def test_plugin_capture_bundles_a_sibling_egg_link_checkout(root):
    """`pytest --reprex-capture`, run by a venv that also sees this project's venv (for pytest
    and the plugin) and holds a `setup.py develop` install of a checkout beside the project."""
    python = venv(root / "vplugin")
    run(UV, "pip", "install", "-q", "--python", python, "setuptools<64")
    site = site_packages(python)
    (site / "zz_reprex_dev.pth").write_text(f"import site; site.addsitedir({str(site_packages(Path(PY)))!r})\n")
    lib = project(root / "siblings" / "lib", "siblib")
    run(python, "setup.py", "-q", "develop", cwd=lib)
    app = root / "siblings" / "app"
    (app / "tests").mkdir(parents=True)
    (app / "tests" / "test_it.py").write_text("import siblib\n\n\ndef test_boom():\n    siblib.boom(2)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run([python, "-m", "pytest", "-p", "no:cacheprovider", "--reprex-capture", "out", "-q"],
                          cwd=app, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "ValueError" in done.stdout, done.stdout + done.stderr
    path = app / "out" / "tests-test_it-test_boom.reprex.zip"
    bundle = Bundle.read(path)
    assert_bundled_editable(bundle, "siblib", "egg-link", "_reprex_editable/siblib")
    assert bundle.manifest["pins"]["dropped_editable"] == ["siblib"]
    assert replay(path, "--backend", "local")["verdict"] == "reproduced"


# -- not editable: a wheel that ships a .pth of its own --------------------------------------------

def _wheel(path: Path) -> Path:
    """A release wheel whose .pth runs an import hook and adds one of its own dirs."""
    files = {
        "hooked/__init__.py": "def boom():\n    raise KeyError('hooked')\n",
        "hooked_extra/helper.py": "X = 1\n",
        "hooked.pth": "import os\nhooked_extra\n",
        "hooked-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: hooked\nVersion: 1.0\n",
        "hooked-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + "hooked-1.0.dist-info/RECORD,,\n"
    wheel = path / "hooked-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in {**files, "hooked-1.0.dist-info/RECORD": record}.items():
            zf.writestr(name, text)
    return wheel


def test_a_wheel_with_its_own_pth_is_pinned_as_a_release(root):
    python = venv(root / "vwheel")
    run(UV, "pip", "install", "-q", "--python", python, _wheel(root))
    site = site_packages(python)
    assert (site / "hooked.pth").is_file()
    out = root / "wheel.reprex.zip"
    (root / "workwheel").mkdir()
    (root / "workwheel" / "app.py").write_text("import hooked, hooked_extra.helper\nhooked.boom()\n")
    done = subprocess.run([PY, "-m", "reprex", "capture", "-o", str(out), "--", str(python), "app.py"],
                          cwd=root / "workwheel", capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    bundle = Bundle.read(out)
    assert "hooked==1.0" in parse_requirements(bundle.text("requirements.txt"))
    assert not [p for p in bundle.manifest["pins"]["flagged"] if "editable" in p["flags"]]
    assert not [f for f in bundle.manifest["files"]["copied"] if "hooked" in f]
    assert "pythonpath" not in bundle.manifest["entry"]


# -- the classification itself, on real layouts --------------------------------------------------

def test_classifier_leaves_eggs_and_target_dirs_alone(tmp_path):
    """An easy_install egg (metadata in EGG-INFO) and a `pip install --target` dir are releases."""
    from reprex.editables import annotate

    egg = tmp_path / "site-packages" / "old-1.0-py3.11.egg" / "EGG-INFO"
    egg.mkdir(parents=True)
    target = tmp_path / "target" / "lib-2.0.dist-info"
    target.mkdir(parents=True)
    dists = [{"name": "old", "version": "1.0", "location": str(egg)},
             {"name": "lib", "version": "2.0", "location": str(target)}]
    assert [d["editable"] for d in annotate(dists, [str(tmp_path / "site-packages")])] == [None, None]


def test_a_big_checkout_fills_the_budget_with_what_ran_first_and_lists_the_rest_once(tmp_path):
    """What the run opened goes in before the rest of its package; what doesn't fit is one line."""
    from reprex.capture.inputs import EDITABLE_DIR, collect_inputs, editable_trees

    pkg = tmp_path / "checkout" / "bigpkg"
    pkg.mkdir(parents=True)
    for i in range(40):
        (pkg / f"m{i:02}.py").write_text(f"X = {i}  # " + "x" * 1000 + "\n")
    (pkg / "__init__.py").write_text("from . import m39\n")
    work = tmp_path / "work"
    work.mkdir()
    trees = editable_trees({"bigpkg": str(pkg / "__init__.py")}, {"bigpkg": str(tmp_path / "checkout")})
    inputs = collect_inputs(work, script=None, opened=[str(pkg / "m39.py")], editables=trees, max_total=5000)
    home = f"{EDITABLE_DIR}/bigpkg/bigpkg"
    assert f"files/{home}/m39.py" in inputs.files and f"files/{home}/__init__.py" in inputs.files
    assert len(inputs.files) == 5 and inputs.pythonpath == [f"{EDITABLE_DIR}/bigpkg"]
    assert [s["reason"] for s in inputs.skipped] == ["36 more source files of editable installs: over the budget"]


def test_a_hostile_site_dir_does_not_break_capture(tmp_path):
    """A .pth line with a NUL, an unreadable .egg-link, a dangling one: skipped, the rest still read."""
    from reprex.editables import annotate

    site = tmp_path / "site-packages"
    checkout = tmp_path / "proj"
    (checkout / "proj.egg-info").mkdir(parents=True)
    site.mkdir()
    (site / "bad.pth").write_bytes(b"/tmp/a\x00b\n")
    (site / "gone.egg-link").symlink_to(tmp_path / "nowhere")
    (site / "proj.egg-link").write_text(f"{checkout}\n.\n")
    dists = [{"name": "proj", "version": "1", "location": str(checkout / "proj.egg-info")}]
    assert annotate(dists, [str(site)])[0]["editable"] == {"kind": "egg-link", "root": str(checkout.resolve())}
