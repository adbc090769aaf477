"""Capture bundles the project's own packages whole: the other `.py` files of every package
directory under the working dir that the run imported from, not only the files it opened.

Field trial (requests-toolbelt 0.10.1 + urllib3 2.0, requests/toolbelt#354): the package's
`__init__` imports a name the new dependency removed, then `from . import adapters`. The failing
run stops before that import, so a bundle of what it opened lacks `adapters/`; the fixed replay
(`--with` the old release) then failed with another ImportError (`different`), never `fixed`.

Real captures and replays: `oldlib3`, a pure-Python stand-in for urllib3, is served in two
releases by a loopback index (2.0 removed `appengine`) and installed for real; nothing but
loopback is contacted. Budgets, exclusions, secrets, links and venvs are checked on real runs.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bisect_index import build_wheel

from reprex import installer
from reprex.bundle import Bundle
from reprex.capture.pipeline import CaptureOptions, capture_command
from reprex.replay import ReplayOptions, replay

PY = sys.executable
# The environment before this module's loopback index replaced the pip/uv configuration: what the
# plugin's replay needs to install pytest from wherever this machine installs it.
BASE_ENV = dict(os.environ)

RELEASES = {
    "1.0": "VERSION = '1.0'\nappengine = 'gae'\n",
    "2.0": "VERSION = '2.0'\n",  # `appengine` removed, as urllib3 2.0 removed urllib3.contrib.appengine
}

TOOLBELT = {
    "toolbelt/__init__.py": """
        from oldlib3 import appengine  # what requests_toolbelt/_compat.py did

        from . import adapters
        from .adapters.source import SourceAdapter
    """,
    "toolbelt/adapters/__init__.py": "from . import source\n",
    "toolbelt/adapters/source.py": "class SourceAdapter:\n    name = 'source'\n",
    "toolbelt/utils.py": "def unused():\n    return 1\n",
    "app.py": """
        import toolbelt

        print(toolbelt.SourceAdapter.name)
    """,
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def reprex_cli(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "reprex", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def skipped(bundle: Bundle) -> dict[str, str]:
    return {s["path"]: s["reason"] for s in bundle.manifest["files"]["skipped"]}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A PEP 503 index on loopback with oldlib3 1.0 and 2.0; pip and uv see it and nothing else."""
    import http.server
    import threading

    root = tmp_path_factory.mktemp("index")
    project = root / "simple" / "oldlib3"
    wheels = [build_wheel(project, "oldlib3", v, {"oldlib3/__init__.py": src}) for v, src in RELEASES.items()]
    (project / "index.html").write_text(
        "<html><body>\n" + "".join(f'<a href="{w.name}">{w.name}</a>\n' for w in wheels) + "</body></html>\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/simple"
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("PIP_", "UV_")):
                mp.delenv(name)
        mp.setenv("PIP_CONFIG_FILE", os.devnull)
        mp.setenv("PIP_INDEX_URL", url)
        mp.setenv("UV_CACHE_DIR", str(root / "uv-cache"))
        mp.setenv("XDG_CONFIG_HOME", str(root / "xdg"))
        yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def venv(index, tmp_path_factory):
    """The capture's interpreter: a virtualenv with oldlib3 2.0 installed."""
    path = tmp_path_factory.mktemp("capture-venv") / "venv"
    assert installer.run(installer.venv_argv(PY, path), 120).returncode == 0
    python = path / "bin" / "python"
    proc = installer.install(python, "--no-deps", "oldlib3==2.0", timeout=300)
    assert proc.returncode == 0, proc.stderr
    return python


@pytest.fixture(scope="module")
def toolbelt_bundle(venv, cache, tmp_path_factory) -> Bundle:
    work = write_tree(tmp_path_factory.mktemp("toolbelt"), TOOLBELT)
    result = capture_command([str(venv), "app.py"], CaptureOptions(tee=False), cwd=str(work), write=False)
    assert result.bundle is not None, result.message
    return result.bundle


def test_the_package_the_failing_import_stopped_in_is_bundled_whole(toolbelt_bundle):
    files = toolbelt_bundle.files
    assert toolbelt_bundle.manifest["expect"]["exception"]["type"] == "ImportError"
    assert "oldlib3==2.0" in toolbelt_bundle.text("requirements.txt")
    opened = json.loads(files["run.json"])["opened"]
    assert not any(p.endswith("adapters/source.py") for p in opened)  # the failing run never got there
    for name in ("toolbelt/__init__.py", "toolbelt/adapters/__init__.py", "toolbelt/adapters/source.py",
                 "toolbelt/utils.py"):
        assert f"files/{name}" in files, name
        assert f"files/{name}" in toolbelt_bundle.manifest["files"]["copied"]
    assert files["files/toolbelt/adapters/source.py"].decode() == TOOLBELT["toolbelt/adapters/source.py"]


def test_the_fix_replays_fixed_and_the_bug_reproduced(toolbelt_bundle):
    assert replay(toolbelt_bundle, ReplayOptions(backend="local", strict=True)).verdict == "reproduced"
    fixed = replay(toolbelt_bundle, ReplayOptions(backend="local", with_specs=["oldlib3==1.0"], expect="fixed"))
    assert fixed.verdict == "fixed", fixed.reason


def test_without_the_packages_other_files_the_fix_is_not_fixed(toolbelt_bundle):
    """What capture wrote before: only what the failing run opened. The fixed run then dies at
    `from . import adapters`, so the verdict can't be `fixed`: the files above are what makes it."""
    dropped = [n for n in toolbelt_bundle.files if n.startswith("files/toolbelt/") and n != "files/toolbelt/__init__.py"]
    files = {k: v for k, v in toolbelt_bundle.files.items() if k not in dropped}
    manifest = json.loads(json.dumps(toolbelt_bundle.manifest))
    manifest["files"]["copied"] = [c for c in manifest["files"]["copied"] if c not in dropped]
    old = Bundle(manifest=manifest, files=files).finalize()
    result = replay(old, ReplayOptions(backend="local", with_specs=["oldlib3==1.0"]))
    assert result.verdict != "fixed", result.reason
    assert "ModuleNotFoundError" in result.signature.types or "ImportError" in result.signature.types


def test_docker_replay_with_the_fix_is_fixed(toolbelt_bundle, base_image, docker_client, cache):
    fixed = replay(toolbelt_bundle, ReplayOptions(backend="docker", image=base_image, with_specs=["oldlib3==1.0"]))
    assert fixed.verdict == "fixed", fixed.reason


# -- budgets: what the run read comes first, the package's other files fill what is left -------------

def big_package(root: Path, modules: int, size: int) -> None:
    files = {"app.py": "import big\nopen('data.txt').read()\nraise KeyError('boom')\n",
             "data.txt": "x" * 3000 + "\n",
             "big/__init__.py": "from . import m00\n"}
    for i in range(modules):
        files[f"big/m{i:02d}.py"] = f"# module {i}\n" + "VALUE = 1  # padding\n" * (size // 21)
    write_tree(root, files)


def test_package_files_take_what_the_budget_leaves_and_the_rest_is_listed(tmp_path):
    big_package(tmp_path, modules=40, size=2000)
    (tmp_path / "big" / "huge.py").write_text("X = 1\n" * 2000)  # 12000 bytes: over --max-file-size
    proc = reprex_cli("capture", "-q", "--json", "--max-total", "30000", "--max-file-size", "10000",
                      "-o", "b.reprex.zip", "--", PY, "app.py", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    bundle = Bundle.read(tmp_path / "b.reprex.zip")
    files = bundle.manifest["files"]
    # the run's own reads are all there, whatever the package's size
    for name in ("app.py", "data.txt", "big/__init__.py", "big/m00.py"):
        assert f"files/{name}" in bundle.files, name
    assert files["total_bytes"] <= 30000
    bundled = sorted(n for n in bundle.files if n.startswith("files/big/m"))
    assert 5 < len(bundled) < 40
    assert bundled == [f"files/big/m{i:02d}.py" for i in range(len(bundled))]  # in order, no holes
    reasons = skipped(bundle)
    assert reasons["big/huge.py"].startswith("over the per-file limit (10000 bytes)")
    first_left = f"big/m{len(bundled):02d}.py"
    assert reasons[first_left].startswith("over the total budget (30000 bytes)")
    assert "package the run imported" in reasons[first_left]
    # every package file is either bundled or accounted for: one by one, then in one line
    named = [p for p in reasons if p.startswith("big/m")]
    rest = reasons.get("big/", "")
    count = int(rest.split(" ", 1)[0]) if rest else 0
    assert len(bundled) + len(named) + count == 40, (reasons, bundled)
    assert len(reasons) <= 22
    show = reprex_cli("show", "b.reprex.zip", cwd=tmp_path)
    assert "big/huge.py" in show.stdout and "over the per-file limit" in show.stdout


def test_a_small_budget_never_displaces_what_the_run_read(tmp_path):
    big_package(tmp_path, modules=5, size=2000)
    proc = reprex_cli("capture", "-q", "--max-total", "6000", "-o", "b.reprex.zip", "--", PY, "app.py",
                      cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    bundle = Bundle.read(tmp_path / "b.reprex.zip")
    assert "files/data.txt" in bundle.files and "files/big/m00.py" in bundle.files
    assert not [n for n in bundle.files if n.startswith("files/big/m0") and n != "files/big/m00.py"]
    assert {f"big/m0{i}.py" for i in range(1, 5)} <= set(skipped(bundle))


# -- what is never taken ----------------------------------------------------------------------------

PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n-----END RSA PRIVATE KEY-----\n"
TOKEN = "ghp_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6"


def test_only_the_projects_packages_and_never_secrets_links_excluded_or_venvs(tmp_path):
    outside = write_tree(tmp_path / "outside", {"elsewhere.py": "OUTSIDE = 'outside-marker'\n"})
    work = write_tree(tmp_path / "work", {
        "__init__.py": "",  # the working dir itself is no package of the run's
        "unused_top.py": "X = 1\n",
        "app.py": """
            import sys
            sys.path.insert(0, "vendor/site-packages")
            sys.path.insert(0, "myenv/lib")
            import pkg, instpkg, envpkg
            raise KeyError(pkg.NAME)
        """,
        "pkg/__init__.py": "NAME = 'pkg'\n",
        "pkg/settings.py": f"API_TOKEN = {TOKEN!r}\n",
        "pkg/keys_inline.py": f"KEY = '''{PRIVATE_KEY}'''\n",
        "pkg/generated/__init__.py": "",
        "pkg/generated/table.py": "TABLE = []\n",
        "pkg/.hidden/mod.py": "X = 1\n",
        "pkg/data.json": "{}\n",
        "pkg/sub/deep.py": "DEEP = 1\n",  # a namespace subpackage: importable as pkg.sub.deep
        "notapkg/mod.py": "X = 1\n",  # no __init__.py and nothing imported from it
        "vendor/site-packages/instpkg/__init__.py": "",
        "vendor/site-packages/instpkg/other.py": "X = 1\n",
        "myenv/pyvenv.cfg": "home = /usr/bin\n",
        "myenv/lib/envpkg/__init__.py": "",
        "myenv/lib/envpkg/other.py": "X = 1\n",
    })
    (work / "pkg" / "linked.py").symlink_to(outside / "elsewhere.py")
    result = capture_command([PY, "app.py"], CaptureOptions(tee=False, exclude=["pkg/generated/*"]),
                             cwd=str(work), write=False)
    bundle = result.bundle
    names = set(bundle.files)
    assert {"files/pkg/__init__.py", "files/pkg/settings.py", "files/pkg/sub/deep.py"} <= names
    for name in ("pkg/linked.py", "pkg/generated/table.py", "pkg/generated/__init__.py", "pkg/.hidden/mod.py",
                 "pkg/data.json", "unused_top.py", "notapkg/mod.py", "vendor/site-packages/instpkg/other.py",
                 "myenv/lib/envpkg/other.py", "pkg/keys_inline.py"):
        assert f"files/{name}" not in names, name
    reasons = skipped(bundle)
    assert reasons["pkg/generated/table.py"] == "excluded"
    assert "private key" in reasons["pkg/keys_inline.py"]
    assert not any("elsewhere" in p or "linked" in p for p in reasons)
    # a package file goes through redaction like every other carrier
    assert TOKEN not in bundle.files["files/pkg/settings.py"].decode()
    assert {"count": 1, "kind": "github-token", "where": "files/pkg/settings.py"} in bundle.manifest["redactions"]
    path = bundle.write(tmp_path / "b.reprex.zip")
    data = path.read_bytes()
    assert b"outside-marker" not in data and TOKEN.encode() not in data


def test_a_failed_import_from_cached_bytecode_still_brings_its_package(tmp_path):
    """The second run of a project imports from __pycache__: it opens no .py of the package."""
    work = write_tree(tmp_path, {
        "app.py": "import os, sys\nif os.environ.get('BREAK') == '1':\n    sys.modules['gone'] = None\nimport pkg\n",
        "pkg/__init__.py": "import gone\nfrom . import later\n",
        "pkg/later.py": "X = 1\n",
        "gone.py": "",
    })
    subprocess.run([PY, "-c", "import compileall; compileall.compile_dir('.', quiet=1)"], cwd=work, check=True)
    env = {**os.environ, "BREAK": "1"}
    proc = subprocess.run([PY, "-m", "reprex", "capture", "-q", "-o", "b.reprex.zip", "--", PY, "app.py"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    bundle = Bundle.read(work / "b.reprex.zip")
    assert "files/pkg/later.py" in bundle.files


# -- the pytest plugin: a test module failing at collection -----------------------------------------

def test_plugin_capture_of_an_import_error_bundles_the_package(tmp_path, cache):
    write_tree(tmp_path, {
        "pkg/__init__.py": """
            import os

            if os.environ.get("SIBLINGS_DEP_FIXED") != "1":
                raise ImportError("cannot import name 'appengine' from 'urllib3.contrib'")

            from .adapters import source
        """,
        "pkg/adapters/__init__.py": "",
        "pkg/adapters/source.py": "VALUE = 1\n",
        "tests/test_source.py": "import pkg\n\n\ndef test_source():\n    assert pkg.source.VALUE == 1\n",
        "pytest.ini": "[pytest]\npythonpath = .\n",
    })
    env = {k: v for k, v in BASE_ENV.items() if not k.startswith("PYTEST_") and k != "SIBLINGS_DEP_FIXED"}
    env["REPREX_CACHE_DIR"] = str(cache)
    proc = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--reprex-capture=out"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    path = tmp_path / "out" / "tests-test_source-collect.reprex.zip"
    assert "files/pkg/adapters/source.py" in Bundle.read(path).files
    done = subprocess.run([PY, "-m", "reprex", "replay", str(path), "--backend", "local", "--json",
                           "--env", "SIBLINGS_DEP_FIXED=1", "--expect", "fixed"],
                          env=env, capture_output=True, text=True, timeout=600)
    result = json.loads(done.stdout)
    assert (result["verdict"], done.returncode) == ("fixed", 0), result


def test_plugin_capture_of_a_package_over_the_budget_says_what_it_left_out(tmp_path):
    """A failing test's scratch copy takes the package's other files only within the default
    budget (5 MiB): the rest is named in the bundle's skip list, never silently dropped."""
    files = {"pkg/__init__.py": "raise ImportError('gone')\n", "tests/test_x.py": "import pkg\n\n\ndef test_x():\n    pass\n",
             "pytest.ini": "[pytest]\npythonpath = .\n"}
    write_tree(tmp_path, files)
    line = "X = 1  # a line of padding, for size\n"
    for i in range(60):  # 60 x ~100 KiB
        (tmp_path / "pkg" / f"m{i:02d}.py").write_text(line * (100 * 1024 // len(line)))
    env = {k: v for k, v in BASE_ENV.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--reprex-capture=out"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    bundle = Bundle.read(tmp_path / "out" / "tests-test_x-collect.reprex.zip")
    manifest = bundle.manifest["files"]
    bundled = [n for n in bundle.files if n.startswith("files/pkg/m")]
    assert 40 < len(bundled) < 60 and manifest["total_bytes"] <= 5 * 1024 * 1024
    left = {s["path"]: s["reason"] for s in manifest["skipped"] if s["path"].startswith("pkg/")}
    counted = sum(int(r.split(" ", 1)[0]) for p, r in left.items() if p == "pkg/") + len(
        [p for p in left if p != "pkg/"])
    assert len(bundled) + counted == 60, left
    assert all("budget" in reason for reason in left.values()), left
