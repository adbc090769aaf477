"""Bundle format v1: deterministic zips and reads that never trust the archive."""

import io
import stat
import zipfile

import pytest

from reprex.bundle import Bundle, BundleError, canonical_json


def _manifest(**over):
    m = {
        "schema": 1, "id": "0" * 64, "name": "demo", "created": "2026-01-01T00:00:00Z",
        "tool": {"name": "reprex", "version": "0"}, "entry": {"argv": ["python", "a.py"], "cwd": "."},
        "python": {"version": "3.11.7", "implementation": "CPython"},
        "platform": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.36"}, "gpu": None,
        "expect": {"outcome": "exception", "signature": {"id": "x", "kind": "exception", "types": ["E"], "frames": []}},
        "network": False, "redactions": [],
    }
    m.update(over)
    return m


def _bundle():
    return Bundle(_manifest(), {"repro.py": b"raise SystemExit(1)\n", "files/a.py": b"x = 1\n",
                                "requirements.txt": b"six==1.16.0\n"}).finalize()


def test_zip_is_byte_identical_and_id_is_content_hash(tmp_path):
    a = _bundle().write(tmp_path / "a.reprex.zip").read_bytes()
    b = _bundle().write(tmp_path / "b.reprex.zip").read_bytes()
    assert a == b
    changed = _bundle()
    changed.files["files/a.py"] = b"x = 2\n"
    assert changed.finalize().id != _bundle().id
    with zipfile.ZipFile(io.BytesIO(a)) as zf:
        names = [i.filename for i in zf.infolist()]
        assert names == sorted(names)
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert {(i.external_attr >> 16) & 0o777 for i in zf.infolist()} == {0o644}


def test_directory_and_zip_round_trip(tmp_path):
    original = _bundle()
    for target in (tmp_path / "d", tmp_path / "z.reprex.zip"):
        original.write(target)
        again = Bundle.read(target)
        assert again.files == original.files
        assert again.manifest == original.manifest


def _zip_with(tmp_path, name, data=b"x", *, mode=None, manifest=None):
    path = tmp_path / "evil.reprex.zip"
    manifest = manifest or _manifest()
    manifest["id"] = Bundle(manifest, {name: data}).content_id()  # what stops the read is the entry itself
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("reprex.json", canonical_json(manifest))
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        if mode is not None:
            info.external_attr = mode << 16
        zf.writestr(info, data)
    return path


@pytest.mark.parametrize("name", ["/etc/passwd", "../escape.py", "files/../../escape.py", "C:/x.py", "files\\..\\x"])
def test_unsafe_names_are_refused(tmp_path, name):
    with pytest.raises(BundleError, match="unsafe"):
        Bundle.read(_zip_with(tmp_path, name))


def test_symlink_entry_is_refused(tmp_path):
    with pytest.raises(BundleError, match="symbolic link"):
        Bundle.read(_zip_with(tmp_path, "files/link", b"/etc/passwd", mode=stat.S_IFLNK | 0o777))


def test_symlink_in_directory_bundle_is_refused(tmp_path):
    root = tmp_path / "b"
    _bundle().write(root)
    (root / "files" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(BundleError, match="symbolic link"):
        Bundle.read(root)


def test_zip_bomb_is_refused(tmp_path):
    with pytest.raises(BundleError, match="zip bomb"):
        Bundle.read(_zip_with(tmp_path, "files/big.txt", b"\0" * (8 * 1024 * 1024)))


def test_unknown_schema_gets_a_clear_error(tmp_path):
    with pytest.raises(BundleError, match="unsupported bundle schema 2"):
        Bundle.read(_zip_with(tmp_path, "repro.py", manifest=_manifest(schema=2)))


def test_manifest_is_validated(tmp_path):
    bad = _manifest()
    del bad["expect"]
    with pytest.raises(BundleError, match="expect"):
        Bundle.read(_zip_with(tmp_path, "repro.py", manifest=bad))


def test_not_a_zip(tmp_path):
    path = tmp_path / "x.reprex.zip"
    path.write_text("hello")
    with pytest.raises(BundleError, match="not a reprex bundle"):
        Bundle.read(path)


def test_extract_inputs_stays_inside_workdir(tmp_path):
    b = _bundle()
    b.extract_inputs(tmp_path / "w")
    assert (tmp_path / "w" / "a.py").read_bytes() == b"x = 1\n"
    b.files["files/../../x"] = b"no"
    with pytest.raises(BundleError):
        b.extract_inputs(tmp_path / "w2")
    assert not (tmp_path / "x").exists()


def test_write_is_atomic_and_refuses_to_clobber_a_non_bundle_dir(tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "data.txt").write_text("keep me")
    with pytest.raises(BundleError, match="not a bundle directory"):
        _bundle().write(target)
    assert (target / "data.txt").read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".reprex-")]


def test_every_read_checks_the_schema_in_full_without_third_party_packages(tmp_path, monkeypatch):
    """The shipped validator is standard library only (it must work in a project's venv with an
    old attrs, where jsonschema broke) and leaves nothing in the cache: a read writes nothing."""
    import subprocess
    import sys

    monkeypatch.setenv("REPREX_CACHE_DIR", str(tmp_path / "cache"))
    good = _zip_with(tmp_path, "repro.py")
    probe = ("import sys; from reprex.bundle import Bundle; Bundle.read(sys.argv[1]); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jsonschema', 'fastjsonschema', 'attrs')))")
    proc = subprocess.run([sys.executable, "-c", probe, str(good)], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
    assert not (tmp_path / "cache").exists()

    bad = _manifest()
    del bad["expect"]
    (tmp_path / "bad").mkdir()
    for _ in range(2):  # a failure is the same every time
        with pytest.raises(BundleError, match=r"invalid reprex\.json at \(top\): must contain \['expect'\]"):
            Bundle.read(_zip_with(tmp_path / "bad", "repro.py", manifest=bad))
