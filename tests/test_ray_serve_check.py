"""`reprex check-serve` pieces: Ray's semantics reproduced (compared with Ray's own code), and
the working_dir kinds the examples don't cover (local zip, file://, missing dirs, skips)."""

from __future__ import annotations

import io
import json
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from reprex.bundle import Bundle
from reprex.ray import repro_templates
from reprex.ray.serve_check import check_serve, leaked
from reprex.ray.working_dir import split_credentials, top_level_dir, unpack_like_ray

PY = sys.executable


def make_zip(names: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in names.items():
            zf.writestr(name, data)
    return buf.getvalue()


ZIPS = {
    "github": {"repo-abc/": b"", "repo-abc/app/main.py": b"x = 1\n", "repo-abc/README": b"r"},
    "macos": {"top/a.py": b"", "__MACOSX/._a.py": b"", "top/b/c.py": b""},
    "flat": {"a.py": b"", "b/c.py": b""},
    "two tops": {"one/a.py": b"", "two/b.py": b""},
    "top file first": {"a.py": b"", "top/b.py": b""},
}


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.ray
@pytest.mark.parametrize("kind", sorted(ZIPS))
def test_zip_handling_matches_ray(ray_available, kind, tmp_path):
    from ray._private.runtime_env.packaging import get_top_level_dir_from_compressed_package, unzip_package

    data = make_zip(ZIPS[kind])
    archive = tmp_path / "pkg.zip"
    archive.write_bytes(data)
    assert top_level_dir(zipfile.ZipFile(archive).namelist()) == get_top_level_dir_from_compressed_package(
        str(archive))
    unzip_package(str(archive), str(tmp_path / "ray"), remove_top_level_directory=True, unlink_zip=False)
    unpack_like_ray(data, tmp_path / "ours", remove_top_level_directory=True)
    assert tree(tmp_path / "ours") == tree(tmp_path / "ray") - {p for p in tree(tmp_path / "ray")
                                                                if p.startswith("__MACOSX/")}


IMPORT_PATHS = ["os.path:join", "os.path.join", "json:dumps", "a:b:c", "no_such_module_xyz.sub:attr",
                "os:no_such_attribute", "os.path"]


@pytest.mark.ray
@pytest.mark.parametrize("path", IMPORT_PATHS)
def test_import_attr_copy_matches_ray(ray_available, path):
    from ray._common.utils import import_attr as ray_import_attr

    namespace: dict = {"importlib": __import__("importlib")}
    exec(repro_templates.IMPORT_ATTR, namespace)

    def outcome(fn):
        try:
            return ("ok", fn(path))
        except Exception as exc:
            return (type(exc).__name__, str(exc))

    assert outcome(namespace["import_attr"]) == outcome(ray_import_attr)


def test_split_credentials():
    assert split_credentials("https://u:t0k@h.example/x.zip?a=1") == ("https://h.example/x.zip?a=1", "u:t0k")
    assert split_credentials("https://h.example/x.zip") == ("https://h.example/x.zip", None)


def test_leaked_finds_secrets_in_compressed_entries():
    secret = "ghp_" + "s" * 36
    data = make_zip({"a.txt": b"nothing", "b.json": ("prefix " + secret * 50).encode()})
    assert secret.encode() not in data  # compressed away: only decompression finds it
    assert leaked(data, [secret]) == ["b.json"]
    assert leaked(make_zip({"a.txt": b"clean"}), [secret]) == []


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("REPREX_CACHE_DIR", str(tmp_path / "cache"))
    write(tmp_path / "code" / "svc" / "__init__.py", "")
    write(tmp_path / "code" / "svc" / "api.py", "app = 'the app'\n")
    write(tmp_path / "code" / ".env", "SECRET_KEY=do-not-copy-me\n")
    # A remote-style zip (single top-level directory, stripped) served from file://.
    archive = tmp_path / "code.zip"
    archive.write_bytes(make_zip({"code-1/svc/__init__.py": b"", "code-1/svc/api.py": b"app = 'zipped'\n"}))
    return tmp_path


def test_local_dirs_zips_and_skips(project):
    write(project / "serve.yaml", f"""
        applications:
          - name: good
            import_path: svc.api:app
            runtime_env: {{working_dir: code}}
          - name: zipped
            import_path: svc.api:app
            runtime_env: {{working_dir: "file://{project / 'code.zip'}"}}
          - name: wrong-attr
            import_path: svc.api:missing
            runtime_env: {{working_dir: code}}
          - name: missing-dir
            import_path: svc.api:app
            runtime_env: {{working_dir: nowhere}}
          - name: s3
            import_path: svc.api:app
            runtime_env: {{working_dir: "s3://bucket/code.zip"}}
    """)
    report = check_serve("serve.yaml", cwd=project, out_dir=project / "out")
    by_name = {a.name: a for a in report.apps}
    assert by_name["good"].status == "ok" and by_name["zipped"].status == "ok"
    assert by_name["s3"].status == "skipped"
    assert by_name["missing-dir"].status == "failed" and by_name["missing-dir"].bundle is None
    bad = by_name["wrong-attr"]
    assert bad.status == "failed" and bad.error["type"] == "AttributeError" and "'missing'" in bad.hint
    bundle = Bundle.read(bad.bundle)
    assert "files/svc/api.py" in bundle.files and "files/.env" not in bundle.files  # never secrets files
    assert bundle.manifest["ray"]["serve_configs"][0]["path"] == "serve.yaml"
    assert bundle.manifest["serve_check"]["application"] == "wrong-attr"
    assert not report.ok
    assert json.loads(json.dumps(report.to_dict()))["applications"][0]["name"] == "good"


def test_no_working_dir_uses_the_serve_run_working_dir(project):
    write(project / "serve.yaml", "applications:\n  - {name: a, import_path: svc.api:app}\n")
    assert check_serve("serve.yaml", cwd=project, out_dir=project / "o1").apps[0].status == "failed"
    report = check_serve("serve.yaml", cwd=project, out_dir=project / "o2", working_dir="code")
    assert report.ok and report.apps[0].status == "ok"


def test_a_working_dir_with_its_own_repro_py_is_nested(project):
    write(project / "code" / "repro.py", "raise SystemExit('the user file, not ours')\n")
    write(project / "serve.yaml", "applications:\n  - {name: a, import_path: svc.api:nope, "
                                  "runtime_env: {working_dir: code}}\n")
    (app,) = check_serve("serve.yaml", cwd=project, out_dir=project / "out").apps
    bundle = Bundle.read(app.bundle)
    assert "files/working_dir/repro.py" in bundle.files and "files/working_dir/svc/api.py" in bundle.files
    assert "WORKING_DIR = os.path.normpath(os.path.join(HERE, 'working_dir'))" in bundle.text("repro.py")
    assert app.error["type"] == "AttributeError"


def test_cli_usage_errors(project):
    import subprocess

    write(project / "empty.yaml", "proxy_location: EveryNode\n")
    proc = subprocess.run([PY, "-m", "reprex", "check-serve", "empty.yaml"], cwd=project, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "no applications" in proc.stderr
