"""reprex.installer: uv from its wheel, the host pip's configuration handed to uv, pip when uv can't run.

The indexes here are a real HTTP server on loopback serving wheels this test writes, and a
find-links folder; nothing else is reachable (uv's cache is private to each test)."""

import base64
import hashlib
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
import zipfile
from pathlib import Path

import pytest

from reprex import installer

PY = sys.executable


def _wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal, valid pure-Python wheel whose module says its version."""
    mod = name.replace("-", "_")
    info = f"{mod}-{version}.dist-info"
    files = {
        f"{mod}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{mod}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return out


class _Index:
    """A PEP 503 simple index on loopback that logs the paths asked for."""

    def __init__(self, root: Path):
        self.root, self.paths = root, []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def do_GET(self):
                outer.paths.append(self.path)
                super().do_GET()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"

    def add(self, name: str, version: str, under: str = "simple") -> None:
        project = self.root / under / name
        whl = _wheel(project, name, version)
        links = "".join(f'<a href="{p.name}">{p.name}</a>\n' for p in sorted(project.glob("*.whl")))
        (project / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
        assert whl.exists()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def index(tmp_path):
    served = _Index(tmp_path / "served")
    yield served
    served.close()


@pytest.fixture
def pip_conf(tmp_path, monkeypatch):
    """The user's pip configuration is this one file and these variables only; uv has its own
    cache and no configuration of the user's."""
    for name in list(os.environ):
        if name.startswith(("PIP_", "UV_")):
            monkeypatch.delenv(name)
    monkeypatch.delenv("REPREX_UV", raising=False)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no user uv.toml / pip.conf
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg-dirs"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    conf = tmp_path / "pip.conf"
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    return conf


def test_uv_is_the_wheels_binary_and_runs():
    from uv import find_uv_bin

    assert installer.uv() == find_uv_bin()
    out = subprocess.run([installer.uv(), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("uv ")


def test_pip_settings_follow_pips_precedence(tmp_path, pip_conf, monkeypatch):
    """Files: [install] over [global]; a PIP_* variable over any file; PIP_CONFIG_FILE=/dev/null: no file."""
    pip_conf.write_text("[global]\nindex-url = http://127.0.0.1:9/simple\ntimeout = 7\n"
                        "[install]\nfind-links = /srv/a /srv/b\n[freeze]\nindex-url = http://ignored\n")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "http://127.0.0.1:8/x http://127.0.0.1:8/y")
    monkeypatch.setenv("PIP_CERT", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("PIP_TRUSTED_HOST", "127.0.0.1")
    got = installer.pip_settings()
    assert got == {"index-url": "http://127.0.0.1:9/simple", "timeout": "7", "find-links": "/srv/a /srv/b",
                   "extra-index-url": "http://127.0.0.1:8/x http://127.0.0.1:8/y",
                   "cert": str(tmp_path / "ca.pem"), "trusted-host": "127.0.0.1"}
    # index locations by environment (a URL may hold a credential: argv is world-readable), the rest as flags
    assert installer.uv_config_args() == ["--index-strategy", "unsafe-best-match", "--allow-insecure-host",
                                          "127.0.0.1"]
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    env = installer.uv_environ()
    assert {k: env[k] for k in ("UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS")} == {
        "UV_INDEX_URL": "http://127.0.0.1:9/simple", "UV_EXTRA_INDEX_URL": "http://127.0.0.1:8/x http://127.0.0.1:8/y",
        "UV_FIND_LINKS": "/srv/a,/srv/b"}
    assert env["SSL_CERT_FILE"] == str(tmp_path / "ca.pem") and env["UV_HTTP_TIMEOUT"] == "7"
    monkeypatch.setenv("SSL_CERT_FILE", "/users/own.pem")  # the user's own setting for uv wins
    assert installer.uv_environ()["SSL_CERT_FILE"] == "/users/own.pem"
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    assert "index-url" not in installer.pip_settings() and "UV_INDEX_URL" not in installer.uv_environ()
    monkeypatch.setenv("PIP_CONFIG_FILE", str(pip_conf))
    monkeypatch.setenv("UV_DEFAULT_INDEX", "http://127.0.0.1:7/own")  # the user configured uv: its indexes stand
    env = installer.uv_environ()
    assert "UV_INDEX_URL" not in env and "UV_FIND_LINKS" not in env
    assert "--index-strategy" not in installer.uv_config_args()


def test_a_uv_toml_counts_as_uvs_own_config_unless_uv_is_told_to_read_none(tmp_path, pip_conf, monkeypatch):
    """A user's uv.toml: uv reads it, so pip's index isn't passed on (bisect's listing follows the
    same rule); with UV_NO_CONFIG uv reads no uv.toml, so pip's index is its only one."""
    pip_conf.write_text("[global]\nindex-url = http://127.0.0.1:9/simple\n")
    for name in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS",
                 "UV_NO_INDEX", "UV_CONFIG_FILE", "UV_NO_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "config" / "uv").mkdir(parents=True)
    (tmp_path / "config" / "uv" / "uv.toml").write_text('index-url = "http://127.0.0.1:8/uvs"\n')
    assert "UV_INDEX_URL" not in installer.uv_environ()
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    assert installer.uv_environ()["UV_INDEX_URL"] == "http://127.0.0.1:9/simple"


def test_uv_installs_from_the_indexes_and_find_links_pip_is_configured_with(tmp_path, index, pip_conf,
                                                                             monkeypatch):
    """pip.conf names two loopback indexes, PIP_FIND_LINKS a folder: uv installs from all three, and
    takes the best version over them, as pip would (uv alone stops at the first index that has it)."""
    index.add("probe-one", "1.0")
    index.add("probe-two", "1.0")
    index.add("probe-two", "1.5", under="more")
    index.add("probe-three", "3.0", under="more")
    links = tmp_path / "links"
    _wheel(links, "probe-two", "2.0")
    base = index.url.rsplit("/", 1)[0]
    pip_conf.write_text(f"[global]\nindex-url = {base}/simple\nextra-index-url = {base}/more\n")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    venv = tmp_path / "venv"
    proc = installer.run(installer.venv_argv(PY, venv), 60)
    assert proc.returncode == 0, proc.stderr
    proc = installer.install(venv / "bin" / "python", "--no-deps", "probe-one==1.0", "probe-two", "probe-three",
                             timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import probe_one, probe_two, probe_three as t; "
                          "print(probe_one.VERSION, probe_two.VERSION, t.VERSION)"],
                         capture_output=True, text=True)
    assert out.stdout.split() == ["1.0", "2.0", "3.0"], out.stderr
    assert "/simple/probe-one/" in index.paths and "/more/probe-three/" in index.paths
    assert not [a for a in installer.install_argv(venv / "bin" / "python", "x") if base in a or str(links) in a]

    # lock's resolver (uv pip compile) reads the same configuration
    proc = installer.run(installer.compile_argv("-", "--quiet", "--no-header", "--no-annotate"), 60,
                         input="probe-one\nprobe-two<2\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["probe-one==1.0", "probe-two==1.5"]


def test_install_is_offline_from_uvs_cache_when_it_can(tmp_path, index, pip_conf):
    """The second env of the same pins asks the index nothing: the wheel is in uv's cache."""
    index.add("probe-one", "1.0")
    pip_conf.write_text(f"[global]\nindex-url = {index.url}\n")
    for n in (1, 2):
        venv = tmp_path / f"venv{n}"
        assert installer.run(installer.venv_argv(PY, venv), 60).returncode == 0
        proc = installer.install(venv / "bin" / "python", "--no-deps", "probe-one==1.0", timeout=120)
        assert proc.returncode == 0, proc.stderr
        if n == 1:
            asked = len(index.paths)
            assert asked >= 1
    assert len(index.paths) == asked
    assert list((tmp_path / "venv2" / "lib").glob("python*/site-packages/probe_one/__init__.py"))


def test_a_wrong_pin_is_an_error_naming_it(tmp_path, index, pip_conf):
    index.add("probe-one", "1.0")
    pip_conf.write_text(f"[global]\nindex-url = {index.url}\n")
    venv = tmp_path / "venv"
    assert installer.run(installer.venv_argv(PY, venv), 60).returncode == 0
    proc = installer.install(venv / "bin" / "python", "--no-deps", "probe-one==9.9", timeout=120)
    assert proc.returncode != 0
    line = installer.last_error(proc)  # the one line a replay's reason shows: it says why, not only that
    assert "probe-one" in line and "9.9" in line and "\n" not in line, proc.stderr


def test_when_uv_cant_run_local_replay_uses_pip_and_says_so_once(tmp_path):
    """REPREX_UV names a file that is no program: the replay still reproduces, with a pip-made
    venv, and stderr says once why it is slower."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text(textwrap.dedent("""\
        import packaging.version
        raise KeyError(packaging.version.Version("1.0").major)
    """))
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPREX_")}
    env["REPREX_CACHE_DIR"] = str(cache)
    cap = subprocess.run([PY, "-m", "reprex.cli", "capture", "--", PY, "app.py"], cwd=app, env=env,
                         capture_output=True, text=True)
    bundle = app / "app.reprex.zip"
    assert bundle.exists(), cap.stderr[-2000:]
    broken = tmp_path / "uv"
    broken.write_text("not a program\n")  # not executable: exec fails
    env["REPREX_UV"] = str(broken)
    proc = subprocess.run([PY, "-m", "reprex.cli", "replay", str(bundle), "--backend", "local", "--json"],
                          env=env, capture_output=True, text=True)
    assert json.loads(proc.stdout)["verdict"] == "reproduced", proc.stderr[-2000:]
    said = [l for l in proc.stderr.splitlines() if "using pip" in l]
    assert len(said) == 1 and str(broken) in said[0], proc.stderr
    venvs = [p for p in (cache / "envs").iterdir() if p.is_dir()]
    assert len(venvs) == 1
    assert "uv =" not in (venvs[0] / "pyvenv.cfg").read_text()  # the stdlib's venv, filled by pip
    assert list(venvs[0].glob("lib/python*/site-packages/packaging-*.dist-info"))

    # the default: uv (the wheel's) made the env
    env.pop("REPREX_UV")
    env["REPREX_CACHE_DIR"] = str(tmp_path / "cache2")
    proc = subprocess.run([PY, "-m", "reprex.cli", "replay", str(bundle), "--backend", "local", "--json"],
                          env=env, capture_output=True, text=True)
    assert json.loads(proc.stdout)["verdict"] == "reproduced", proc.stderr[-2000:]
    assert "using pip" not in proc.stderr
    (made,) = [p for p in (tmp_path / "cache2" / "envs").iterdir() if p.is_dir()]
    assert "uv =" in (made / "pyvenv.cfg").read_text()


@pytest.mark.docker
def test_docker_images_install_with_the_hosts_uv_and_pip_when_told(tmp_path, docker_client, base_image, cache,
                                                                    monkeypatch):
    """The env image's pins are installed by the host's uv (put in for the build: same arch), offline, with
    bytecode compiled (the run's root fs is read-only); with uv off, by pip, to the same effect."""
    from reprex.capture.pipeline import CaptureOptions, capture_command
    from reprex.replay import ReplayOptions, replay

    (tmp_path / "app.py").write_text("import packaging.version\nraise KeyError(packaging.version.Version('1').major)\n")
    result = capture_command([PY, "app.py"], CaptureOptions(tee=False, timeout=120), cwd=str(tmp_path))
    assert result.bundle is not None, result.message
    site = "/opt/reprex/venv/lib/python3*/site-packages"
    probe = (f"echo $(cat {site}/packaging-*.dist-info/INSTALLER); ls {site}/packaging/__pycache__ | grep -c 'version.*pyc$';"
             " test -x /opt/reprex/bin/uv && echo has-uv || echo no-uv")
    seen = {}
    for mode in ("uv", "off"):
        if mode == "off":
            monkeypatch.setenv("REPREX_UV", "off")
        out = replay(result.bundle, ReplayOptions(backend="docker", image=base_image))
        assert out.verdict == "reproduced", out.reason
        seen[mode] = docker_client.containers.run(out.image, ["sh", "-c", probe], remove=True,
                                                  network_mode="none").decode().split()
        docker_client.images.remove(out.image, force=True)  # the next mode builds afresh
    assert seen["uv"] == ["uv", "1", "no-uv"]  # used in the build, not left in the image
    assert seen["off"] == ["pip", "1", "no-uv"]


def test_uv_goes_into_an_image_only_of_this_machines_arch():
    import platform

    from reprex.replay.docker.build import uv_for_image

    here = platform.machine()
    other = "aarch64" if here == "x86_64" else "x86_64"
    assert uv_for_image(here) == Path(installer.uv())
    assert uv_for_image({"x86_64": "amd64", "aarch64": "arm64"}.get(here, here)) == Path(installer.uv())
    assert uv_for_image(other) is None


def test_a_venv_without_pip_downloads_with_pythons_own_pip_wheel(tmp_path, index, pip_conf):
    """Found by benchmarks/plugin_suites.py: reprex installed into a `uv venv` (no pip) could
    not download wheels for a docker replay. That venv's Python still ships pip's wheel for
    ensurepip, and pip runs from its wheel; the user's pip configuration still applies."""
    from reprex.installer import uv

    index.add("tiny-pkg", "1.0")
    pip_conf.write_text(f"[global]\nindex-url = {index.url}\n")
    venv = tmp_path / "nopip"
    subprocess.run([uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    assert subprocess.run([str(python), "-c", "import pip"], capture_output=True).returncode != 0
    dest = tmp_path / "wheels"
    code = ("import subprocess, sys; from reprex import installer\n"
            f"argv = installer.pip_argv('download', '--no-deps', '-d', {str(dest)!r}, 'tiny-pkg==1.0')\n"
            "print(argv[1]); sys.exit(subprocess.run(argv).returncode)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.run([str(python), "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0].endswith(".whl/pip")
    assert [p.name for p in dest.glob("*.whl")] == ["tiny_pkg-1.0-py3-none-any.whl"]
    assert any("tiny-pkg" in p for p in index.paths)
