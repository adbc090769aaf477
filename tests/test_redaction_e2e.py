"""Secrets never leave the machine: a corpus of planted secrets, every carrier of a real
capture (argv, environment, traceback, locals, stdout/stderr, input files, pins from
PEP 610 metadata, probes), and a byte-level search of the zip and every entry in it."""

import base64
import hashlib
import io
import json
import random
import re
import string
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from reprex.capture.pipeline import CaptureOptions, capture_command

PY = sys.executable
_rng = random.Random(20261122)


def _rand(n, alphabet=string.ascii_letters + string.digits):
    return "".join(_rng.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# Built by concatenation so this file itself holds no scanner-shaped literal.
S = {
    "gh_classic": "ghp" + "_" + _rand(36),
    "gh_oauth": "gho" + "_" + _rand(36),
    "gh_fine": "github" + "_pat_" + _rand(22) + "_" + _rand(59),
    "gh_server": "ghs" + "_" + _rand(36),
    "aws_id": "AKIA" + _rand(16, string.ascii_uppercase + string.digits),
    "aws_secret": _rand(40, string.ascii_letters + string.digits + "/+"),
    "slack": "xox" + "b-" + _rand(11, string.digits) + "-" + _rand(12, string.digits) + "-" + _rand(24),
    "openai": "sk-" + "proj-" + _rand(48),
    "anthropic": "sk-" + "ant-api03-" + _rand(40),
    "hf": "hf" + "_" + _rand(34),
    "google": "AI" + "za" + _rand(35),
    "stripe": "sk" + "_live_" + _rand(24),
    "jwt": "eyJ" + _b64url(b'{"alg":"HS256","typ":"JWT"}')[3:] + "." + _b64url(b'{"sub":"1234567890"}') + "."
           + _rand(43),
    "url_pw": _rand(18),
    "url_token_user": "ghp" + "_" + _rand(36),
    "bearer": _rand(40),
    "basic": base64.b64encode(("alice:" + _rand(12)).encode()).decode(),
    "query_token": _rand(32),
    "amz_sig": _rand(64, "0123456789abcdef"),
    "yaml_pw": _rand(20),
    "ini_secret": _rand(24),
    "dotenv_api_key": _rand(32),
    "kwarg_pw": _rand(16),
    "env_token": _rand(30),
    "env_db_password": _rand(22),
    "env_session": _rand(26),
    "ray_bearer": _rand(40),
    "netrc_pw": _rand(20),
    "pem_body": _rand(64, string.ascii_letters + string.digits + "+/"),
    "vcs_token": "ghp" + "_" + _rand(36),
    "stdout_key": "sk-" + _rand(40),
    "stderr_cookie": _rand(32),
    "redis_pw": _rand(20),
    "argv_flag_value": _rand(28),
    # letters only: message normalization turns digits into <n>, which once hid a token
    # from the redactor while most of it stayed in the signature message
    "dict_pw": _rand(24, string.ascii_letters),
    "tail_cut_token": "ghp" + "_" + _rand(36, string.ascii_letters),
    "msg_url_token": "ghp" + "_" + _rand(17, string.ascii_letters) + "7" + _rand(18, string.ascii_letters),
}


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    work = tmp_path_factory.mktemp("redact")
    site = work / "site-packages"
    # A VCS-installed distribution whose PEP 610 URL carries a token (pins carrier).
    (site / "vcsdep").mkdir(parents=True)
    (site / "vcsdep" / "__init__.py").write_text("VALUE = 1\n")
    info = site / "vcsdep-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vcsdep\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("vcsdep\n")
    (info / "direct_url.json").write_text(json.dumps({
        "url": f"https://x-access-token:{S['vcs_token']}@github.com/acme/vcsdep.git",
        "vcs_info": {"vcs": "git", "commit_id": "a" * 40}}))
    (info / "RECORD").write_text("vcsdep/__init__.py,,\n")
    (work / "config.yaml").write_text(textwrap.dedent(f"""\
        database:
          host: db.internal
          password: {S['yaml_pw']}
        redis: redis://:{S['redis_pw']}@cache:6379/0
        aws_secret_access_key = {S['aws_secret']}
    """))
    (work / "settings.ini").write_text(f"[auth]\nclient_secret = {S['ini_secret']}\n")
    (work / "service.env.txt").write_text(f"API_KEY={S['dotenv_api_key']}\n")
    (work / "netrc.txt").write_text(f"machine github.com login alice password {S['netrc_pw']}\n")
    (work / "deploy_key.txt").write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n" + S["pem_body"] + "\n" + S["pem_body"][::-1]
        + "\n-----END OPENSSH PRIVATE KEY-----\n")
    (work / "app.py").write_text(textwrap.dedent(f"""\
        import sys, vcsdep
        for name in ("config.yaml", "settings.ini", "service.env.txt", "netrc.txt", "deploy_key.txt"):
            open(name).read()
        line = "cut here {S['tail_cut_token']}\\n"
        sys.stdout.write(line)
        sys.stdout.write("z" * (64 * 1024 - 20 - 1) + "\\n")
        sys.stdout.flush()
        print("using key {S['stdout_key']}", flush=True)
        print("Cookie: session={S['stderr_cookie']}", file=sys.stderr, flush=True)
        def connect(url, headers, password, tokens, opts):
            github = {S['gh_classic']!r}
            oauth = {S['gh_oauth']!r}
            fine = {S['gh_fine']!r}
            server = {S['gh_server']!r}
            aws = {S['aws_id']!r}
            slack = {S['slack']!r}
            openai = {S['openai']!r}
            anthropic = {S['anthropic']!r}
            hf = {S['hf']!r}
            google = {S['google']!r}
            stripe = {S['stripe']!r}
            jwt = {S['jwt']!r}
            raise ConnectionError(f"401 for {{url}} with headers {{headers}} "
                                  "(retry: https://ci:{S['msg_url_token']}@mirror.example.com/x)")
        connect(
            "https://bob:{S['url_pw']}@api.example.com/v1?access_token={S['query_token']}"
            "&X-Amz-Signature={S['amz_sig']}",
            {{"Authorization": "Bearer {S['bearer']}", "Proxy-Authorization": "Basic {S['basic']}"}},
            password={S['kwarg_pw']!r},
            tokens=["https://{S['url_token_user']}@github.com/acme/private.git"],
            opts={{"password": {S['dict_pw']!r}, "retries": 3}},
        )
    """))
    env = {
        "PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(work),
        "GITHUB_TOKEN": S["env_token"], "DB_PASSWORD": S["env_db_password"], "SESSION_ID": S["env_session"],
        "RAY_RUNTIME_ENV_BEARER_TOKEN": S["ray_bearer"], "OMP_NUM_THREADS": "2",
    }
    argv = [PY, "app.py", "--api-token", S["argv_flag_value"], f"--db=postgres://u:{S['env_db_password']}@db/x"]
    result = capture_command(argv, CaptureOptions(tee=False, include=["*.txt", "*.yaml", "*.ini"]),
                             cwd=str(work), env=env)
    path = result.bundle.write(work / "app.reprex.zip")
    return result, path


def test_corpus_is_big_enough():
    assert len(S) >= 30 and len(set(S.values())) == len(S)


def _haystacks(zip_path: Path):
    raw = zip_path.read_bytes()
    yield "zip bytes", raw
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        for info in zf.infolist():
            data = zf.read(info)
            yield info.filename, data
            # also inside any base64 a bundle might carry (argument pickles)
            for token in data.split(b'"'):
                if len(token) > 40 and token[:4].isalnum():
                    try:
                        yield info.filename + " (base64)", base64.b64decode(token, validate=True)
                    except Exception:
                        pass


@pytest.mark.parametrize("name", sorted(S))
def test_secret_appears_in_no_byte_of_the_bundle(captured, name):
    _, path = captured
    secret = S[name].encode()
    forms = {secret, base64.b64encode(secret), secret.replace(b"/", b"%2F")}
    # fragments between digits: message normalization turns digits into <n>
    forms |= {f.encode() for f in re.split(r"\d+", S[name]) if len(f) >= 12}
    # and the ends of a secret: what is left when a cut (output tail, repr) falls inside it
    if len(S[name]) >= 24:
        forms.add(S[name][-16:].encode())
        if name != "jwt":  # a JWT's head is the standard, public {"alg":...} header
            forms.add(S[name][:16].encode())
    for where, data in _haystacks(path):
        for form in forms:
            assert form not in data, f"{name} leaked in {where}"


def test_what_was_redacted_is_listed_without_values(captured):
    result, path = captured
    reds = result.bundle.manifest["redactions"]
    wheres = {r["where"] for r in reds}
    for carrier in ("argv", "traceback", "locals", "stdout", "stderr", "files/config.yaml", "requirements.txt"):
        assert any(w == carrier or w.startswith(carrier) for w in wheres), f"no redaction recorded in {carrier}"
    assert all(set(r) == {"kind", "where", "count"} for r in reds)
    manifest = json.dumps(result.bundle.manifest)
    assert not any(v in manifest for v in S.values())


def test_redacted_bundle_is_still_useful(captured):
    result, _ = captured
    b = result.bundle
    assert b.manifest["expect"]["signature"]["types"] == ["ConnectionError"]
    assert "vcsdep @ git+https://" in b.text("requirements.txt")
    assert "db.internal" in b.files["files/config.yaml"].decode()  # non-secrets survive
    env = b.json("environment.json")["env"]["value"]
    assert "GITHUB_TOKEN" in env["names"] and "GITHUB_TOKEN" not in env["values"]
    assert env["values"].get("OMP_NUM_THREADS") == "2"
    assert hashlib.sha256(b.files["files/app.py"]).hexdigest()  # the script is there, scrubbed
