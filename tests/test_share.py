"""`reprex share` and verified fetches, end to end against real servers on loopback.

* S3: moto's standalone server (`moto_server`, a separate process) reached over HTTP by
  smart_open/boto3 exactly as real S3: the endpoint is AWS_ENDPOINT_URL in the environment
  (boto3 >= 1.28 reads it), nothing on the command line.
* HTTPS: a ThreadingHTTPServer behind a certificate the test signs with its own CA
  (`cryptography`), trusted through REQUESTS_CA_BUNDLE; PUT/GET/HEAD need a bearer token.
* file:// and plain directories.

Each CLI call runs with its own TMPDIR, so "the temp file is deleted" is checked for real.
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import io
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import pytest

from reprex.bundle import Bundle, BundleError
from reprex.capture.pipeline import CaptureOptions, capture_command
from reprex.fetch import DigestMismatch, FetchError, fetch_bundle, split_digest
from reprex.render import GH_LIMIT, ShareLink, gh_length, render
from reprex.share import ShareRefused, object_name, redaction_gaps, share, target_prefix

PY = sys.executable
BUCKET = "reprex-shared"
TOKEN = "tok-3c1f9a7e5d2b4c6a8e0f1a2b3c4d5e6f"


# -- helpers --------------------------------------------------------------------------------

def _capture(tmp: Path, source: str = "def f():\n    return 1 / 0\nf()\n") -> Bundle:
    (tmp / "app.py").write_text(textwrap.dedent(source))
    result = capture_command([PY, "app.py"], CaptureOptions(tee=False), cwd=str(tmp))
    assert result.bundle is not None, result.message
    return result.bundle


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("capture")
    return _capture(tmp).write(tmp / "app.reprex.zip")


def cli(*args: str, env: dict, tmp: Path) -> subprocess.CompletedProcess:
    """`reprex ARGS` in a subprocess whose temp directory is `tmp/t` (checked for leftovers)."""
    (tmp / "t").mkdir(exist_ok=True)
    return subprocess.run([PY, "-m", "reprex", *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **env, "TMPDIR": str(tmp / "t")})


def one_line_error(proc: subprocess.CompletedProcess, code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reprex: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def assert_reproduces(verified_url: str, env: dict, cache: Path, tmp: Path) -> None:
    """`reprex replay URL#sha256=...` on the local backend says reproduced, and leaves no download."""
    replayed = cli("replay", verified_url, "--backend", "local", "--json",
                   env={**env, "REPREX_CACHE_DIR": str(cache)}, tmp=tmp)
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["verdict"] == "reproduced"
    assert no_fetch_leftovers(tmp)


def no_fetch_leftovers(tmp: Path) -> bool:
    return not [p for p in (tmp / "t").iterdir() if p.name.startswith("reprex-fetch-")]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- an S3-compatible server ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto_server on loopback, and the environment that points boto3 at it."""
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        pytest.fail("moto_server is missing: pip install -e '.[test]' (moto[server])", pytrace=False)
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "AKIDLOOPBACKTEST0001",
           "AWS_SECRET_ACCESS_KEY": "loopback-secret-9f8e7d6c5b4a3210", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        import boto3

        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"moto_server did not start: {log.read_text()[-2000:]}", pytrace=False)
                time.sleep(0.1)
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                              aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        client.create_bucket(Bucket=BUCKET)
        yield env, client
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _key(url: str) -> str:
    assert url.startswith(f"s3://{BUCKET}/")
    return url[len(f"s3://{BUCKET}/"):]


def test_capture_share_to_s3_then_replay_the_printed_url_reproduces(bundle_file, s3, tmp_path, cache):
    env, client = s3
    proc = cli("share", str(bundle_file), f"s3://{BUCKET}/bugs/", env=env, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    verified, blank, body = proc.stdout.split("\n", 2)
    digest = sha256(bundle_file.read_bytes())
    url = f"s3://{BUCKET}/bugs/app-{digest[:16]}.reprex.zip"
    assert verified == f"{url}#sha256={digest}" and blank == ""
    assert f"reprex replay '{verified}'" in body and f"sha256 {digest}" in body
    assert "uploaded" in proc.stderr
    stored = client.get_object(Bucket=BUCKET, Key=_key(url))["Body"].read()
    assert stored == bundle_file.read_bytes()  # the file's own bytes, so sha256sum agrees

    assert_reproduces(verified, env, cache, tmp_path)


def test_a_flipped_byte_in_the_stored_object_is_refused(bundle_file, s3, tmp_path):
    env, client = s3
    proc = cli("share", str(bundle_file), f"s3://{BUCKET}/tamper", "--json", env=env, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    shared = json.loads(proc.stdout)
    key = _key(shared["url"])
    data = bytearray(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0x01
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(data))

    for command in ("replay", "show", "render"):
        refused = cli(command, f"{shared['url']}#sha256={shared['sha256']}", env=env, tmp=tmp_path)
        line = one_line_error(refused, 2)
        assert shared["sha256"] in line and sha256(bytes(data)) in line  # both digests named
    assert no_fetch_leftovers(tmp_path)


def test_resharing_is_idempotent_same_url_no_second_upload(bundle_file, s3, tmp_path):
    env, client = s3
    first = json.loads(cli("share", str(bundle_file), f"s3://{BUCKET}/again", "--json", env=env,
                           tmp=tmp_path).stdout)
    assert first["already_shared"] is False
    before = client.head_object(Bucket=BUCKET, Key=_key(first["url"]))["LastModified"]
    time.sleep(1.1)  # S3 times have one-second resolution: a second PUT would move it
    again = cli("share", str(bundle_file), f"s3://{BUCKET}/again/", env=env, tmp=tmp_path)
    assert again.returncode == 0 and "already shared" in again.stderr, again.stderr
    assert again.stdout.splitlines()[0] == f"{first['url']}#sha256={first['sha256']}"
    assert client.head_object(Bucket=BUCKET, Key=_key(first["url"]))["LastModified"] == before
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="again/")["Contents"]
    assert [o["Key"] for o in listed] == [_key(first["url"])]


# -- HTTPS with a self-signed CA and a bearer token ---------------------------------------------------

def _make_ca_and_cert(tmp: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject, issuer, key, signer, *, ca: bool, san=None):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reprex test CA")])
    ca = cert(ca_name, ca_name, ca_key, ca_key, ca=True)
    leaf = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name, key, ca_key, ca=False,
                san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class _Store(http.server.BaseHTTPRequestHandler):
    """PUT/GET/HEAD of whole objects in memory, behind a bearer token; counts PUTs."""

    objects: dict[str, bytes] = {}
    puts: list[str] = []

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_PUT(self):
        if self._authorized():
            self.objects[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
            self.puts.append(self.path)
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_HEAD(self, body=False):
        if not self._authorized():
            return
        data = self.objects.get(self.path)
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        if body and data:
            self.wfile.write(data)

    def do_GET(self):
        self.do_HEAD(body=True)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def https(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    ca, cert, key = _make_ca_and_cert(tmp)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    handler = type("Store", (_Store,), {"objects": {}, "puts": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"REQUESTS_CA_BUNDLE": str(ca), "SSL_CERT_FILE": str(ca), "REPREX_HTTP_BEARER_TOKEN": TOKEN}
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", env, handler
    finally:
        server.shutdown()


def test_share_over_https_put_with_bearer_then_verified_replay(bundle_file, https, tmp_path, cache):
    base, env, store = https
    proc = cli("share", str(bundle_file), f"{base}/bundles", env=env, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    verified = proc.stdout.splitlines()[0]
    digest = sha256(bundle_file.read_bytes())
    path = f"/bundles/app-{digest[:16]}.reprex.zip"
    assert verified == f"{base}{path}#sha256={digest}"
    assert store.objects[path] == bundle_file.read_bytes() and store.puts == [path]
    assert f"The bundle: <{base}{path}>" in proc.stdout  # an https link GitHub makes clickable

    again = cli("share", str(bundle_file), f"{base}/bundles/", env=env, tmp=tmp_path)
    assert again.returncode == 0 and "already shared" in again.stderr and store.puts == [path]

    assert_reproduces(verified, env, cache, tmp_path)


def test_https_wrong_token_is_one_line_for_share_and_replay(bundle_file, https, tmp_path):
    base, env, store = https
    wrong = {**env, "REPREX_HTTP_BEARER_TOKEN": "not-the-token-0000"}
    line = one_line_error(cli("share", str(bundle_file), f"{base}/denied", env=wrong, tmp=tmp_path), 3)
    assert "HTTP 401" in line and "not-the-token" not in line
    assert not [p for p in store.puts if p.startswith("/denied/")]
    store.objects["/denied/b.reprex.zip"] = bundle_file.read_bytes()
    digest = sha256(bundle_file.read_bytes())
    line = one_line_error(cli("replay", f"{base}/denied/b.reprex.zip#sha256={digest}", "--backend", "local",
                              env=wrong, tmp=tmp_path), 2)
    assert "cannot fetch" in line and "401" in line
    assert no_fetch_leftovers(tmp_path)


def test_https_tls_is_verified_against_the_ca_given(bundle_file, https, tmp_path):
    import certifi

    base, env, store = https
    public_roots = {**env, "REQUESTS_CA_BUNDLE": certifi.where(), "SSL_CERT_FILE": certifi.where()}
    line = one_line_error(cli("share", str(bundle_file), f"{base}/tls", env=public_roots, tmp=tmp_path), 3)
    assert "certificate" in line.lower() and not [p for p in store.puts if p.startswith("/tls/")]


def test_plain_http_and_credentials_in_the_target_are_refused(bundle_file, tmp_path):
    line = one_line_error(cli("share", str(bundle_file), "https://alice:hunter2pass@example.invalid/x",
                              env={}, tmp=tmp_path), 2)
    assert "credentials come from the environment" in line and "hunter2pass" not in line
    assert "https:// only" in one_line_error(cli("share", str(bundle_file), "http://127.0.0.1:9/x", env={},
                                                 tmp=tmp_path), 2)
    assert "no ?query" in one_line_error(cli("share", str(bundle_file), "https://h.invalid/x?sig=abc", env={},
                                             tmp=tmp_path), 2)
    assert "share to" in one_line_error(cli("share", str(bundle_file), "ftp://h.invalid/x", env={}, tmp=tmp_path), 2)
    no_azure = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": ""}
    assert "AZURE_STORAGE_CONNECTION_STRING" in one_line_error(
        cli("share", str(bundle_file), "azure://container/x", env=no_azure, tmp=tmp_path), 2)


# -- file:// and directories -----------------------------------------------------------------------------

def test_file_target_is_written_atomically_and_replays_verified(bundle_file, tmp_path, cache):
    dest = tmp_path / "shelf with space"
    proc = cli("share", str(bundle_file), dest.as_uri(), "--json", env={}, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    shared = json.loads(proc.stdout)
    assert set(shared) >= {"url", "sha256", "size", "body"} and shared["size"] == bundle_file.stat().st_size
    files = list(dest.iterdir())
    assert [f.name for f in files] == [object_name("app", shared["sha256"])]  # no .part left behind
    assert files[0].read_bytes() == bundle_file.read_bytes() and files[0].stat().st_mode & 0o777 == 0o644
    assert_reproduces(f"{shared['url']}#sha256={shared['sha256']}", {}, cache, tmp_path)
    # A plain directory is the same place; sharing again finds it there.
    again = cli("share", str(bundle_file), str(dest), env={}, tmp=tmp_path)
    assert "already shared" in again.stderr and again.stdout.startswith(shared["url"] + "#sha256=")
    data = bytearray(files[0].read_bytes())  # same name and size, other bytes: replaced, not trusted
    data[-30] ^= 0x01
    files[0].write_bytes(bytes(data))
    fixed = cli("share", str(bundle_file), str(dest), env={}, tmp=tmp_path)
    assert "uploaded" in fixed.stderr and files[0].read_bytes() == bundle_file.read_bytes()


def test_a_directory_bundle_is_shared_as_its_deterministic_zip(tmp_path):
    import tempfile

    bundle = _capture(tmp_path)
    directory = bundle.write(tmp_path / "app.reprex")
    before = set(Path(tempfile.gettempdir()).glob("reprex-share-*"))
    shared = share(directory, str(tmp_path / "out"))
    assert Path(shared.url[len("file://"):]).read_bytes() == bundle.to_zip_bytes()
    assert shared.sha256 == sha256(bundle.to_zip_bytes()) and shared.uploaded
    assert set(Path(tempfile.gettempdir()).glob("reprex-share-*")) == before


def test_progress_is_reported_while_uploading(tmp_path):
    from reprex import upload

    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    seen: list[tuple[int, int]] = []
    upload.put((tmp_path / "dst" / "big.bin").as_uri(), src, lambda done, total: seen.append((done, total)))
    assert len(seen) >= 3 and seen[-1] == (src.stat().st_size,) * 2
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


# -- redaction must be complete before anything leaves the machine ----------------------------------------

def _with_file(bundle_file: Path, tmp: Path, name: str, data: bytes) -> Path:
    b = Bundle.read(bundle_file)
    b.files[name] = data
    b.manifest["files"]["copied"] = sorted([*b.manifest["files"]["copied"], name])
    return b.finalize().write(tmp / "edited.reprex.zip")


def test_incomplete_redaction_is_refused_unless_forced(bundle_file, tmp_path):
    leaky = _with_file(bundle_file, tmp_path, "files/notes.txt",
                       b"deploy with ghp_" + b"A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8" + b"\n")
    dest = tmp_path / "out"
    line = one_line_error(cli("share", str(leaky), str(dest), env={}, tmp=tmp_path), 2)
    assert "redaction is incomplete" in line and "files/notes.txt" in line and "--force" in line
    assert "A1b2C3d4" not in line and not dest.exists()
    forced = cli("share", str(leaky), str(dest), "--force", env={}, tmp=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "warning: shared with --force although files/notes.txt" in forced.stderr
    assert len(list(dest.iterdir())) == 1


def test_the_sharers_own_secrets_and_unreadable_files_are_gaps(bundle_file, tmp_path):
    value = "q7Zr-internal-deploy-passphrase-55"
    edited = Bundle.read(_with_file(bundle_file, tmp_path, "files/config.txt", f"phrase {value}\n".encode()))
    assert redaction_gaps(edited, environ={}) == []  # capture's environment didn't know it
    gaps = redaction_gaps(edited, environ={"DEPLOY_PASSWORD": value})  # the sharer's does
    assert gaps and "files/config.txt" in gaps[0] and value not in " ".join(gaps)

    binary = Bundle.read(_with_file(bundle_file, tmp_path, "files/model.bin", b"\x00\x01weights\x80\xff"))
    assert any("files/model.bin is binary" in g for g in redaction_gaps(binary, environ={}))
    assert redaction_gaps(Bundle.read(bundle_file), environ={}) == []  # a fresh capture has none

    no_report = Bundle.read(bundle_file)
    no_report.manifest["redactions"] = [{"kind": "token", "where": "argv"}]  # in memory only: no count
    assert any("no complete redactions report" in g for g in redaction_gaps(no_report, environ={}))


def test_a_kept_pickle_the_sharer_would_drop_is_a_gap(bundle_file):
    import base64
    import pickle

    secret = "s3cr3t-value-for-pickle-XY99"
    b = Bundle.read(bundle_file)
    run = json.loads(b.files["run.json"])
    run["exception"] = {"frames": [{"qualname": "f", "arg_values": {
        "cfg": {"type": "builtins.dict", "repr": "{...}", "pickle": base64.b64encode(pickle.dumps({"x": secret})).decode()}}}]}
    b.files["run.json"] = json.dumps(run).encode()
    gaps = redaction_gaps(b, environ={"API_TOKEN": secret})
    assert any("the pickle of argument 'cfg' is kept" in g for g in gaps), gaps


# -- verified fetch, the bundle's own id, the target's shape ---------------------------------------------

def test_digest_fragment_parsing(tmp_path, bundle_file):
    d = "a" * 64
    assert split_digest(f"s3://b/k.zip#sha256={d.upper()}") == ("s3://b/k.zip", d)
    assert split_digest("s3://b/k.zip") == ("s3://b/k.zip", None)
    for bad in ("s3://b/k#sha256=abc", "s3://b/k#md5=" + "0" * 32, "https://h/k#"):
        with pytest.raises(FetchError, match="#sha256=<64 hex digits>") as err:
            split_digest(bad)
        assert err.value.exit_code == 2
    odd = tmp_path / "odd#name.reprex.zip"  # a real local file with '#' in its name is a path
    shutil.copy(bundle_file, odd)
    assert split_digest(str(odd)) == (str(odd), None)


def test_local_paths_with_a_digest_are_verified_copies(bundle_file, tmp_path):
    digest = sha256(bundle_file.read_bytes())
    copy = fetch_bundle(f"{bundle_file}#sha256={digest}")
    try:
        assert copy != bundle_file and copy.read_bytes() == bundle_file.read_bytes()
    finally:
        copy.unlink()
    with pytest.raises(DigestMismatch, match="0" * 64) as err:
        fetch_bundle(f"{bundle_file.as_uri()}#sha256={'0' * 64}")
    assert isinstance(err.value, BundleError) and err.value.exit_code == 2
    line = one_line_error(cli("show", f"{bundle_file}#sha256=xyz", env={}, tmp=tmp_path), 2)
    assert "#sha256=<64 hex digits>" in line


def test_the_bundle_id_is_checked_on_every_read(bundle_file, tmp_path):
    """bundle.py already verifies the manifest id against the content (Bundle.from_entries):
    a byte flipped in a member, re-zipped with valid CRCs, is refused as tampering."""
    with zipfile.ZipFile(bundle_file) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    data = bytearray(members["traceback.txt"])
    data[0] ^= 0x01
    members["traceback.txt"] = bytes(data)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    tampered = tmp_path / "tampered.reprex.zip"
    tampered.write_bytes(buf.getvalue())
    with pytest.raises(BundleError, match="does not match its id"):
        Bundle.read(tampered)
    line = one_line_error(cli("show", str(tampered), env={}, tmp=tmp_path), 2)
    assert "does not match its id" in line
    raw = bytearray(bundle_file.read_bytes())  # and in the archive itself: a CRC or zip error
    raw[len(raw) // 3] ^= 0x01
    (tmp_path / "raw.reprex.zip").write_bytes(bytes(raw))
    one_line_error(cli("show", str(tmp_path / "raw.reprex.zip"), env={}, tmp=tmp_path), 2)


def test_object_names_and_prefixes(tmp_path):
    d = "0123456789abcdef" * 4
    assert object_name("app", d) == "app-0123456789abcdef.reprex.zip"
    assert object_name("../../etc/x y\n", d) == "etc-x-y-0123456789abcdef.reprex.zip"
    assert object_name("...", d) == "bundle-0123456789abcdef.reprex.zip"
    assert target_prefix("s3://b") == "s3://b/" and target_prefix("s3://b/p//") == "s3://b/p/"
    assert target_prefix(str(tmp_path)) == tmp_path.as_uri() + "/"
    with pytest.raises(ShareRefused):
        target_prefix("s3://")


# -- the GitHub body ----------------------------------------------------------------------------------------

def test_render_share_embeds_the_link_and_the_verified_command(bundle_file, tmp_path):
    digest = sha256(bundle_file.read_bytes())
    url = "https://bugs.example.com/b/app.reprex.zip"
    proc = cli("render", str(bundle_file), "--venue", "gh", "--share", url, env={}, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"The bundle: <{url}>" in proc.stdout and f"reprex replay '{url}#sha256={digest}'" in proc.stdout
    assert "Attach" not in proc.stdout  # the link replaces the attachment note
    same = cli("render", str(bundle_file), "--share", f"{url}#sha256={digest}", env={}, tmp=tmp_path)
    assert same.stdout == proc.stdout
    line = one_line_error(cli("render", str(bundle_file), "--share", f"{url}#sha256={'1' * 64}", env={},
                              tmp=tmp_path), 2)
    assert "1" * 64 in line
    one_line_error(cli("render", str(bundle_file), "--venue", "text", "--share", url, env={}, tmp=tmp_path), 2)
    # a link reprex replay could not fetch is a mistake to say, not a link to print
    line = one_line_error(cli("render", str(bundle_file), "--share", "javascript:alert(1)", env={}, tmp=tmp_path), 2)
    assert "not a URL reprex replay fetches" in line


def test_a_hostile_share_url_stays_text(bundle_file):
    body = render(Bundle.read(bundle_file), "gh",
                  share=ShareLink("https://x.invalid/<img src=x onerror=alert(1)>/@maintainer", "ab" * 32))
    line = next(x for x in body.splitlines() if x.startswith("The bundle:"))
    assert "<img" not in line and "&lt;img" in line and "@maintainer" not in line  # not a link, not a mention
    assert body.count("<img") == 1 and "'https://x.invalid/<img" in body.split("```sh\n")[1].split("```")[0]


def test_the_gh_body_notes_githubs_attachment_rule(bundle_file):
    body = render(Bundle.read(bundle_file), "gh")
    assert "Attach app.reprex.zip to this issue: GitHub takes .zip files up to 25 MB" in body
    assert "reprex share" in body


def test_huge_text_keeps_the_gh_body_under_the_limit_with_its_structure(bundle_file):
    b = Bundle.read(bundle_file)
    wide = "\U0001F525"  # two UTF-16 units: GitHub may count those
    b.files["traceback.txt"] = ("Traceback line " + wide * 40 + "\n").encode() * 5000
    b.files["repro.py"] = ("x = '" + "y" * 200 + "'\n").encode() * 2000
    b.files["requirements.txt"] = "".join(f"pkg{i}==1.{i}\n" for i in range(20000)).encode()
    b.files["run.json"] = json.dumps({"output_tail": [["stdout", "out " * 100000]]}).encode()
    body = render(b, "gh")
    assert gh_length(body) <= GH_LIMIT
    assert body.count("<details>") == body.count("</details>") >= 5  # cut inside sections, not across
    assert body.count("characters cut by reprex") >= 4 and "fit GitHub's issue size limit" not in body
    assert body.rstrip().endswith("</sub>")


def test_hostile_escaping_blowup_still_fits_without_the_last_resort_cut(bundle_file):
    """'&' and '<' escape to 5 and 4 characters: the table and the skipped list shrink too."""
    b = Bundle.read(bundle_file)
    b.manifest["entry"] = {"argv": ["python", "&" * 100000], "cwd": "<" * 5000}
    b.manifest["expect"]["exception"]["message"] = "&<" * 50000
    b.manifest["files"]["skipped"] = [{"path": "&" * 5000, "size": 1, "reason": "<" * 5000}] * 500
    b.files["traceback.txt"] = b"`" * 200000
    body = render(b, "gh")
    assert gh_length(body) <= GH_LIMIT and "fit GitHub's issue size limit" not in body
    assert body.count("<details>") == body.count("</details>") == 6
