"""The examples/ round trips: capture -> replay (`reproduced`) -> the documented fix -> `fixed`.

Each example runs from a copy of its folder, as a newcomer would from the README. Replays
use the local backend; the docker variants (marked `docker`) replay the same bundles in
a container with the base image. Ray examples start real local clusters (marked `ray`).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from reprex.bundle import Bundle  # noqa: E402
from reprex.capture.pipeline import CaptureOptions, capture_command  # noqa: E402
from reprex.replay import ReplayOptions, replay  # noqa: E402

PY = sys.executable
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Token-shaped test values (not real tokens): fine-grained and classic GitHub styles.
FINE_GRAINED = ("github_pat_11EXAMPLE0" + "AbCdEfGhIjKlMn_"
                + "0123456789abcdefghijABCDEFGHIJ0123456789klmnopqrstuvwxyzKLMNOPQ")
CLASSIC = "ghp_" + "ExAmPlEcLaSsIcT0kEn0123456789abcdef"


def copy_example(name: str, dest: Path) -> Path:
    target = dest / name
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.reprex.zip", ".venv*"))
    return target


def reprex_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([PY, "-m", "reprex", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def assert_never_contains(zip_path: Path, secret: str) -> None:
    """Byte by byte: the raw zip, and every entry decompressed, in every encoding a token travels in."""
    forms = {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode(),
             base64.b64encode(f"x-access-token:{secret}".encode()).decode(), secret[-20:]}
    raw = zip_path.read_bytes()
    for form in forms:
        assert form.encode() not in raw, f"{form[:8]}... in the raw zip bytes"
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            data = zf.read(info)
            for form in forms:
                assert form.encode() not in data, f"{form[:8]}... in {info.filename}"
                assert form not in info.filename


def with_fixed_repro(bundle: Bundle, old: bytes, new: bytes) -> Bundle:
    """The documented fix applied to the bundle's extracted call."""
    fixed = Bundle(manifest=json.loads(json.dumps(bundle.manifest)), files=dict(bundle.files))
    assert old in fixed.files["repro.py"]
    fixed.files["repro.py"] = fixed.files["repro.py"].replace(old, new)
    return fixed.finalize()


def docker_options(base_image: str, **kwargs) -> ReplayOptions:
    return ReplayOptions(backend="docker", image=base_image, **kwargs)


# == ray_serve_import_path ================================================================

@pytest.fixture(scope="module")
def serve_repo(tmp_path_factory):
    return copy_example("ray_serve_import_path", tmp_path_factory.mktemp("serve")) / "repo"


@pytest.fixture(scope="module")
def serve_check(serve_repo, cache):
    out = serve_repo.parent / "bundles"
    proc = reprex_cli("check-serve", "serving/config.yaml", "-o", str(out), "--json", cwd=serve_repo)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    (app,) = report["applications"]
    return app, Bundle.read(app["bundle"])


@pytest.mark.ray
def test_serve_import_path_fails_inside_importlib_with_real_ray(ray_available, serve_repo, cache):
    result = capture_command([PY, "serving/deploy.py", "serving/config.yaml"],
                             CaptureOptions(tee=False, timeout=180), cwd=str(serve_repo))
    assert result.bundle is not None, result.message
    sig = result.bundle.manifest["expect"]["signature"]
    # The story: the stack points at importlib and Ray's import_attr, not at the team's code.
    assert sig["types"] == ["ModuleNotFoundError"] and "No module named 'app'" in sig["message"]
    assert sig["frames"] == ["importlib/__init__.py:import_module", "ray/_common/utils.py:import_module_and_attr",
                             "ray/_common/utils.py:import_attr"]
    envs = result.outcome.facts["ray_runtime_envs"]
    assert {"source": "ray.init", "runtime_env": {"working_dir": "."}} in envs
    from reprex.ray.section import ray_section

    section = ray_section(result.outcome, cwd=serve_repo, environ={})
    (config,) = section["serve_configs"]  # read from the files the driver opened
    assert config["path"] == "serving/config.yaml" and config["applications"][0]["import_path"] == "app.main:deployment"


def test_serve_import_path_check_serve_extracts_import_attr_alone(serve_check):
    app, bundle = serve_check
    assert app["status"] == "failed" and app["step"] == "import_path"
    assert app["error"]["type"] == "ModuleNotFoundError"
    assert "import paths are dotted from the working_dir root" in app["hint"]
    assert "'serving.app.main:deployment'" in app["hint"]
    m = bundle.manifest
    assert m["entry"]["kind"] == "extracted" and m["entry"]["python_args"] == []
    assert m["extracted"]["function"] == "import_attr" and m["hint"] == app["hint"]
    repro = bundle.text("repro.py")
    assert "def import_attr(full_path" in repro and "import ray" not in repro and "from ray" not in repro
    reqs = bundle.text("requirements.txt").lower()
    assert "ray" not in reqs and "yaml" not in reqs  # nothing but the standard library
    assert "files/serving/app/main.py" in bundle.files  # the working dir travels for the fix
    assert m["expect"]["signature"]["types"] == ["ModuleNotFoundError"]


def test_serve_import_path_replays_without_ray_then_fixed(serve_check, serve_repo):
    _, bundle = serve_check
    result = replay(bundle, ReplayOptions(backend="local"))
    assert result.verdict == "reproduced", result.reason
    # The documented fix: the import path dotted from the working_dir root.
    fixed = with_fixed_repro(bundle, b"IMPORT_PATH = 'app.main:deployment'",
                             b"IMPORT_PATH = 'serving.app.main:deployment'")
    assert replay(fixed, ReplayOptions(backend="local", expect="fixed")).verdict == "fixed"
    # ... and applied to the config, check-serve has nothing left to report.
    config = serve_repo / "serving" / "config.yaml"
    config.write_text(config.read_text().replace("import_path: app.main:deployment",
                                                 "import_path: serving.app.main:deployment"))
    try:
        proc = reprex_cli("check-serve", "serving/config.yaml", "-o", str(serve_repo.parent / "after"),
                          cwd=serve_repo)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert not list((serve_repo.parent / "after").glob("*.reprex.zip"))
    finally:
        config.write_text(config.read_text().replace("serving.app.main:deployment", "app.main:deployment"))


@pytest.mark.docker
def test_serve_import_path_replays_in_docker(serve_check, docker_client, base_image):
    _, bundle = serve_check
    replayed = replay(bundle, docker_options(base_image))
    assert replayed.verdict == "reproduced", (replayed.reason, replayed.logs[-2000:])
    fixed = with_fixed_repro(bundle, b"IMPORT_PATH = 'app.main:deployment'",
                             b"IMPORT_PATH = 'serving.app.main:deployment'")
    assert replay(fixed, docker_options(base_image, expect="fixed")).verdict == "fixed"


# == ray_working_dir_fetch ================================================================

@pytest.fixture(scope="module")
def fake_github():
    sys.path.insert(0, str(EXAMPLES / "ray_working_dir_fetch"))
    try:
        import fake_github as module
    finally:
        sys.path.pop(0)
    # This private repository accepts the classic token only (the fine-grained one lacks it).
    server, url = module.start(accept=[CLASSIC])
    yield server, url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def fetch_dir(tmp_path_factory, fake_github):
    _, url = fake_github
    folder = copy_example("ray_working_dir_fetch", tmp_path_factory.mktemp("fetch"))
    config = folder / "serve_config.yaml"
    config.write_text(config.read_text().replace(
        "http://127.0.0.1:8765/acme/topic-service/archive/3f2c9a1d5e7b8c0f4a6d2e1b9c8a7f6e5d4c3b2a.zip", url))
    assert url in config.read_text()
    return folder


def url_config(folder: Path, url: str, token: str, name: str) -> Path:
    """The same config with the token in the URL (https://user:TOKEN@host/...)."""
    with_creds = url.replace("http://", f"http://x-access-token:{token}@")
    path = folder / name
    path.write_text((folder / "serve_config.yaml").read_text().replace(url, with_creds))
    return path


@pytest.mark.ray
def test_working_dir_404_with_real_ray_has_the_fetch_signature(ray_available, fetch_dir, fake_github, cache):
    server, _ = fake_github
    env = {**os.environ, "RAY_RUNTIME_ENV_BEARER_TOKEN": FINE_GRAINED}
    result = capture_command([PY, "deploy.py", "serve_config.yaml"], CaptureOptions(tee=False, timeout=180),
                             cwd=str(fetch_dir), env=env)
    assert result.bundle is not None, result.message
    sig = result.bundle.manifest["expect"]["signature"]
    # RuntimeEnvSetupError in the driver, unwrapped to the runtime-env agent's own failure.
    assert sig["types"] == ["requests.exceptions.HTTPError"], sig
    assert sig["frames"][0] == "requests/models.py:raise_for_status"
    assert any(r["token_kind"] == "fine-grained" and r["status"] == 404 for r in server.requests)
    assert result.bundle.json("run.json")["exception"]["remote"]["kind"] == "runtime_env"
    path = result.bundle.write(fetch_dir / "deploy.reprex.zip")
    assert_never_contains(path, FINE_GRAINED)


def test_working_dir_fetch_bearer_check_serve_round_trip(fetch_dir, fake_github, cache, monkeypatch):
    out = fetch_dir / "bearer"
    proc = reprex_cli("check-serve", "serve_config.yaml", "-o", str(out), "--json", cwd=fetch_dir,
                      env={"RAY_RUNTIME_ENV_BEARER_TOKEN": FINE_GRAINED})
    assert proc.returncode == 1, proc.stderr
    assert FINE_GRAINED not in proc.stdout + proc.stderr
    (app,) = json.loads(proc.stdout)["applications"]
    assert app["step"] == "working_dir" and app["error"]["type"] == "requests.exceptions.HTTPError"
    assert "GitHub answers 404, not 403" in app["hint"] and "fine-grained" in app["hint"]
    path = Path(app["bundle"])
    assert_never_contains(path, FINE_GRAINED)
    bundle = Bundle.read(path)
    repro = bundle.text("repro.py")
    assert 'smart_open.open(url, "rb", transport_params={"headers": headers, "timeout": 60})' in repro
    assert bundle.manifest["network"] is True and bundle.manifest["extracted"]["function"] == "smart_open.open"
    pins = {line.split("==")[0].lower() for line in bundle.text("requirements.txt").splitlines()
            if "==" in line}
    assert {"smart-open", "smart_open"} & pins and "requests" in pins and "ray" not in pins
    # Replayed by someone without the token: the private repository is a 404 for them too.
    replayed = replay(bundle, ReplayOptions(backend="local"))
    assert replayed.verdict == "reproduced", (replayed.reason, replayed.logs[-2000:])
    # The fix: a token that can see the repository (a classic token with the repo scope here).
    proc = reprex_cli("check-serve", "serve_config.yaml", "-o", str(fetch_dir / "bearer-fixed"), cwd=fetch_dir,
                      env={"RAY_RUNTIME_ENV_BEARER_TOKEN": CLASSIC})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The same bundle, replayed on a machine that has the classic token in its environment.
    import reprex.replay.local as local

    original = local.replay_environ
    monkeypatch.setattr(local, "replay_environ",
                        lambda b: {**original(b), "RAY_RUNTIME_ENV_BEARER_TOKEN": CLASSIC})
    assert replay(bundle, ReplayOptions(backend="local", expect="fixed")).verdict == "fixed"


def test_working_dir_fetch_url_credentials_never_reach_the_bundle(fetch_dir, fake_github, cache):
    server, url = fake_github
    config = url_config(fetch_dir, url, FINE_GRAINED, "serve_config_url_token.yaml")
    out = fetch_dir / "url"
    before = len(server.requests)
    proc = reprex_cli("check-serve", config.name, "-o", str(out), "--json", cwd=fetch_dir)
    assert proc.returncode == 1, proc.stderr
    assert FINE_GRAINED not in proc.stdout + proc.stderr
    assert any(r["auth"] == "basic" and r["token_kind"] == "fine-grained" for r in server.requests[before:])
    (app,) = json.loads(proc.stdout)["applications"]
    assert app["working_dir"].startswith("http://<redacted:url-credentials>@127.0.0.1:")
    assert "in the URL" in app["hint"]
    path = Path(app["bundle"])
    assert_never_contains(path, FINE_GRAINED)
    bundle = Bundle.read(path)
    assert "REPREX_URL_CREDENTIALS" in bundle.text("repro.py")
    replayed = replay(bundle, ReplayOptions(backend="local"))
    assert replayed.verdict == "reproduced", (replayed.reason, replayed.logs[-2000:])
    fixed = url_config(fetch_dir, url, CLASSIC, "serve_config_url_classic.yaml")
    proc = reprex_cli("check-serve", fixed.name, "-o", str(fetch_dir / "url-fixed"), cwd=fetch_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# == dependency_skew ======================================================================

@pytest.fixture(scope="module")
def skew_venv(tmp_path_factory):
    """A throwaway venv with what the team pinned (flask==2.2.2): pip picks today's Werkzeug."""
    venv = tmp_path_factory.mktemp("skew-venv") / "venv"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    proc = subprocess.run([PY, "-m", "pip", "--python", str(python), "install", "-q", "--disable-pip-version-check",
                           "-r", str(EXAMPLES / "dependency_skew" / "requirements.txt")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return python


@pytest.fixture(scope="module")
def skew_bundle(skew_venv, tmp_path_factory, cache):
    folder = copy_example("dependency_skew", tmp_path_factory.mktemp("skew"))
    result = capture_command([str(skew_venv), "app.py"], CaptureOptions(tee=False), cwd=str(folder))
    assert result.bundle is not None, result.message
    return result.bundle


def test_dependency_skew_round_trip(skew_bundle):
    sig = skew_bundle.manifest["expect"]["signature"]
    assert sig["types"] == ["ImportError"] and "url_quote" in sig["message"]
    assert sig["frames"][0] == "flask/app.py:<module>"  # flask/app.py: from werkzeug.urls import url_quote
    pins = skew_bundle.text("requirements.txt")
    assert "Flask==2.2.2" in pins and "Werkzeug==3." in pins
    replayed = replay(skew_bundle, ReplayOptions(backend="local"))
    assert replayed.verdict == "reproduced", (replayed.reason, replayed.logs[-2000:])
    # The documented fix: pin Werkzeug below 3.0.
    result = replay(skew_bundle, ReplayOptions(backend="local", with_specs=["werkzeug==2.3.8"], expect="fixed"))
    assert result.verdict == "fixed", result.reason


@pytest.mark.docker
def test_dependency_skew_replays_in_docker(skew_bundle, docker_client, base_image):
    replayed = replay(skew_bundle, docker_options(base_image))
    assert replayed.verdict == "reproduced", (replayed.reason, replayed.logs[-2000:])
    result = replay(skew_bundle, docker_options(base_image, with_specs=["werkzeug==2.3.8"], expect="fixed"))
    assert result.verdict == "fixed", result.reason


# == embedding_dim_mismatch ===============================================================

@pytest.fixture(scope="module")
def embedding(tmp_path_factory, cache):
    folder = copy_example("embedding_dim_mismatch", tmp_path_factory.mktemp("emb"))
    result = capture_command([PY, "search.py", "reset my account password"], CaptureOptions(tee=False),
                             cwd=str(folder))
    assert result.bundle is not None, result.message
    return folder, result.bundle


def fixed_config(bundle: Bundle) -> Bundle:
    """The documented fix: query with the model the index was built with."""
    fixed = Bundle(manifest=json.loads(json.dumps(bundle.manifest)), files=dict(bundle.files))
    config = json.loads(fixed.files["files/config.json"])
    config["query_model"] = "topics-encoder-v1"
    fixed.files["files/config.json"] = json.dumps(config).encode()
    return fixed.finalize()


def test_embedding_dim_mismatch_silent_then_loud(embedding):
    folder, bundle = embedding
    silent = subprocess.run([PY, "search.py", "--no-check", "reset my account password"], cwd=folder,
                            capture_output=True, text=True, timeout=60)
    assert silent.returncode == 0 and "recipe" in silent.stdout.splitlines()[0]  # confidently wrong
    sig = bundle.manifest["expect"]["signature"]
    assert sig["types"] == ["EmbeddingDimensionError"]
    assert sig["frames"][:2] == ["search.py:check_dimensions", "search.py:search"]
    assert {"files/index.json", "files/config.json", "files/embed.py"} <= set(bundle.files)
    replayed = replay(bundle, ReplayOptions(backend="local"))
    assert replayed.verdict == "reproduced", (replayed.reason, replayed.logs[-2000:])
    assert replay(fixed_config(bundle), ReplayOptions(backend="local", expect="fixed")).verdict == "fixed"


@pytest.mark.docker
def test_embedding_dim_mismatch_replays_in_docker(embedding, docker_client, base_image):
    _, bundle = embedding
    replayed = replay(bundle, docker_options(base_image))
    assert replayed.verdict == "reproduced", (replayed.reason, replayed.logs[-2000:])
    assert replay(fixed_config(bundle), docker_options(base_image, expect="fixed")).verdict == "fixed"


# == every example folder documents its commands =========================================

@pytest.mark.parametrize("name", ["ray_serve_import_path", "ray_working_dir_fetch", "dependency_skew",
                                  "embedding_dim_mismatch"])
def test_example_readme_has_the_round_trip(name):
    text = (EXAMPLES / name / "README.md").read_text()
    for command in ("reprex capture", "reprex replay"):
        assert command in text, f"{name}/README.md does not show `{command}`"
    assert "fixed" in text and "reproduced" in text
