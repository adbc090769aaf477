"""`reprex lock`: re-resolve a bundle's top-level pins for another target, for real
(the package index this machine is configured with)."""

import json
import subprocess
import sys

import pytest

from reprex.capture.pipeline import CaptureOptions, capture_command
from reprex.lock import lock

PY = sys.executable


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    work = tmp_path_factory.mktemp("lock")
    (work / "uses_packaging.py").write_text("import packaging.version\nraise SystemExit('stop')\n")
    return capture_command([PY, "uses_packaging.py"], CaptureOptions(tee=False), cwd=str(work)).bundle


def test_roots_are_recorded(bundle):
    assert bundle.manifest["pins"]["roots"] == ["packaging"]


def test_resolves_for_another_arch_and_python(bundle):
    result = lock(bundle, "3.12", "manylinux2014_aarch64")
    assert result.ok, result.error or result.missing
    assert any(p.startswith("packaging==") for p in result.pins)


def test_no_build_for_the_target_is_env_incompatible(bundle, tmp_path):
    path = bundle.write(tmp_path / "b.reprex.zip")
    proc = subprocess.run([PY, "-m", "reprex", "lock", str(path), "--python", "3.6", "--platform",
                           "manylinux2014_x86_64", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "env-incompatible" and data["missing"] == ["packaging"]


def test_bad_python_is_a_usage_error(bundle, tmp_path):
    path = bundle.write(tmp_path / "b.reprex.zip")
    proc = subprocess.run([PY, "-m", "reprex", "lock", str(path), "--python", "three", "--platform", "x"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "use X.Y" in proc.stderr


# -- a stranger's bundle: lock follows replay's rules (issue 9) --------------------------------

@pytest.fixture
def evil_project(tmp_path):
    """A project whose build (setup.py) would leave a marker: what -e / file:// / sdists build."""
    root = tmp_path / "evilproj"
    root.mkdir()
    marker = tmp_path / "pwned"
    (root / "setup.py").write_text(f"open({str(marker)!r}, 'w').write('built')\n"
                                   "from setuptools import setup\nsetup(name='evilproj', version='1.0')\n")
    return root, marker


def crafted(bundle, tmp_path, requirements: str, roots: list[str]):
    from reprex.bundle import Bundle

    m = json.loads(json.dumps(bundle.manifest))
    m["pins"]["roots"] = roots
    files = dict(bundle.files)
    files["requirements.txt"] = requirements.encode()
    return Bundle(manifest=m, files=files).finalize().write(tmp_path / f"crafted-{len(list(tmp_path.iterdir()))}"
                                                                       ".reprex.zip")


def cli_lock(path, *extra):
    proc = subprocess.run([PY, "-m", "reprex", "lock", str(path), "--python", "3.11", "--platform",
                           "manylinux2014_x86_64", *extra], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.mark.parametrize("kind", ["editable", "file-url", "extra-index-url", "find-links", "http-url", "git-http",
                                  "index-url"])
def test_a_bundles_option_lines_and_local_projects_are_refused_before_the_resolver(
        bundle, tmp_path, evil_project, listener, offline_pip, kind):
    project, marker = evil_project
    at = f"127.0.0.1:{listener.port}"
    line = {"editable": f"-e {project}", "file-url": f"evilproj @ file://{project}",
            "extra-index-url": f"--extra-index-url http://{at}/simple", "find-links": f"--find-links http://{at}/",
            "http-url": f"evilproj @ http://{at}/evilproj-1.0.tar.gz",
            "git-http": f"evilproj @ git+http://{at}/evil.git", "index-url": f"--index-url http://{at}/simple"}[kind]
    path = crafted(bundle, tmp_path, f"{line}\npackaging==24.0\n", ["evilproj", "packaging"])
    proc = cli_lock(path, "--json")
    assert proc.returncode == 3, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "infra-error" and data["pins"] == []
    assert data["error"].startswith("refusing requirement line ") and "from the bundle" in data["error"]
    assert not marker.exists()
    assert listener.hits == []


def test_an_sdist_is_never_built_to_lock_it(bundle, tmp_path, evil_project, monkeypatch, offline_pip):
    """The only evilproj the index has is an sdist whose setup.py leaves a marker: binary-only
    resolution names it as having no build, and builds nothing."""
    import tarfile

    project, marker = evil_project
    (project / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: evilproj\nVersion: 1.0\n")
    links = tmp_path / "links"
    links.mkdir()
    with tarfile.open(links / "evilproj-1.0.tar.gz", "w:gz") as tar:
        tar.add(project, arcname="evilproj-1.0")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    path = crafted(bundle, tmp_path, "evilproj==1.0\n", ["evilproj"])
    proc = cli_lock(path, "--json")
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["missing"] == ["evilproj"]
    assert not marker.exists()


def test_git_and_sdist_references_are_never_handed_to_the_resolver(bundle, tmp_path, listener, offline_pip):
    at = f"127.0.0.1:{listener.port}"
    path = crafted(bundle, tmp_path, f"gitpkg @ git+https://{at}/evil.git\nsdistpkg @ https://{at}/s-1.0.tar.gz\n",
                   ["gitpkg", "sdistpkg"])
    proc = cli_lock(path, "--json", "--allow-urls")  # even granted: no wheel, nothing fetched or built
    assert proc.returncode == 3, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "env-incompatible" and data["missing"] == ["gitpkg", "sdistpkg"]
    assert "never built on the host" in data["reason"]
    assert listener.hits == []


def test_a_url_pin_is_fetched_only_with_the_users_grant(bundle, tmp_path, listener, offline_pip):
    at = f"127.0.0.1:{listener.port}"
    path = crafted(bundle, tmp_path, f"evilwheel @ https://{at}/evilwheel-1.0-py3-none-any.whl\n", ["evilwheel"])
    proc = cli_lock(path, "--json")
    assert proc.returncode == 3, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "env-incompatible" and data["pins"] == []
    assert at in data["reason"] and "--allow-urls" in data["reason"] and "\n" not in data["reason"]
    assert listener.hits == []
    # the user's grant: then (and only then) this machine connects to the address the bundle named
    proc = cli_lock(path, "--json", "--allow-urls")
    assert proc.returncode == 3 and json.loads(proc.stdout)["verdict"] is not None, proc.stderr
    assert listener.wait_for_hit(), "the granted URL pin was not fetched: the test above proves nothing"


def test_the_bundles_text_is_printed_as_text(bundle, tmp_path, offline_pip):
    path = crafted(bundle, tmp_path, "-e [bold red]x[/bold red] \x1b]0;title\x07\n", ["x"])
    proc = cli_lock(path)
    assert proc.returncode == 3
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("infra-error: refusing requirement line"), proc.stderr
    assert "[bold red]x[/bold red]" in proc.stderr and "\x1b" not in proc.stderr and "\x07" not in proc.stderr
