"""Tests for reprex.redact: secrets must never reach a bundle.

Every planted secret is generated here from a seeded RNG and glued together
from pieces, so this file itself holds no secret-shaped string.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import string
import time
import urllib.parse
from collections import namedtuple
from pathlib import PurePosixPath

import pytest

from reprex.redact import KINDS, REDACTED, Redaction, Redactor

RNG = random.Random(20240611)
LOWER = string.ascii_lowercase
UPPER = string.ascii_uppercase
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


def rand(n: int, alphabet: str = ALNUM) -> str:
    """Random string that always has a letter and a digit when the alphabet does."""
    while True:
        s = "".join(RNG.choice(alphabet) for _ in range(n))
        has_alpha = any(c.isalpha() for c in alphabet)
        has_digit = any(c.isdigit() for c in alphabet)
        if (not has_alpha or any(c.isalpha() for c in s)) and (not has_digit or any(c.isdigit() for c in s)):
            return s


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def make_jwt() -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": rand(10, DIGITS), "name": "svc", "iat": 1700000000}).encode())
    return header + "." + payload + "." + rand(43, ALNUM + "_-")


def make_pem(label: str) -> str:
    body = "\n".join(rand(64, ALNUM + "+/") for _ in range(6))
    dash = "-" * 5
    return f"{dash}BEGIN {label} PRIVATE{' KEY'}{dash}\n{body}\n{dash}END {label} PRIVATE{' KEY'}{dash}"


# Identity injected into every Redactor (never this machine's).
HOST = "alice-ws7.corp.example.net"
USER = "alice"
HOME = "/home/alice"

# --------------------------------------------------------------------------
# The corpus: (name, secret, carrier text, expected kind)
# --------------------------------------------------------------------------

S: dict[str, str] = {
    "ghp": "gh" + "p_" + rand(36),
    "gho": "gh" + "o_" + rand(36),
    "ghu": "gh" + "u_" + rand(36),
    "ghs": "gh" + "s_" + rand(36),
    "ghr": "gh" + "r_" + rand(36),
    "github_pat": "github" + "_pat_" + rand(22) + "_" + rand(59),
    "gitlab": "gl" + "pat-" + rand(20, ALNUM + "_-"),
    "akia": "AK" + "IA" + rand(16, UPPER + DIGITS),
    "asia": "AS" + "IA" + rand(16, UPPER + DIGITS),
    "aws_secret": rand(40, ALNUM + "/+"),
    "slack_bot": "xo" + "xb-" + rand(12, DIGITS) + "-" + rand(13, DIGITS) + "-" + rand(24),
    "slack_user": "xo" + "xp-" + rand(12, DIGITS) + "-" + rand(12, DIGITS) + "-" + rand(32, HEX),
    "openai": "s" + "k-" + rand(48),
    "openai_proj": "s" + "k-proj-" + rand(74, ALNUM + "_-"),
    "anthropic": "s" + "k-ant-api03-" + rand(93, ALNUM + "_-") + "AA",
    "hf": "h" + "f_" + rand(34, string.ascii_letters),
    "google": "AI" + "za" + rand(35, ALNUM + "_-"),
    "stripe_live": "s" + "k_live_" + rand(24),
    "stripe_restricted": "r" + "k_live_" + rand(24),
    "pypi": "py" + "pi-AgEIcHlwaS5vcmc" + rand(70, ALNUM + "_-"),
    "npm": "n" + "pm_" + rand(36),
    "jwt": make_jwt(),
    "pem_rsa": make_pem("RSA"),
    "pem_openssh": make_pem("OPENSSH"),
    "url_userpass": rand(16),
    "postgres_pw": rand(12),
    "redis_pw": rand(20),
    "url_token_only": rand(40, HEX),
    "auth_bearer": rand(32, ALNUM + "._-"),
    "auth_token": rand(40, HEX),
    "auth_basic": base64.b64encode(("deploy:" + rand(12)).encode()).decode(),
    "bare_bearer": rand(30),
    "q_access_token": rand(32),
    "q_api_key": rand(24),
    "q_sig": rand(40) + "%2B" + rand(4) + "%3D",
    "q_amz_sig": rand(64, HEX),
    "yaml_password": rand(1, LOWER) + rand(13, ALNUM + "!@%^"),
    "ini_secret": rand(20),
    "dotenv_password": rand(18),
    "kwargs_password": rand(11),
    "netrc_password": rand(15),
    "locals_api_key": rand(26),
    "cli_password": rand(14),
    "cli_token": rand(30),
    "env_literal": rand(24),
    "env_special": rand(6) + "/+" + rand(6) + "=" + rand(4),
    "env_dsn_pw": rand(14),
    "extra": rand(18),
}

# Environment for the Redactor: names that look secret, values not shaped like any token.
ENV = {
    "MYAPP_SERVICE_TOKEN": S["env_literal"],
    "LEGACY_DB_PASSWORD": S["env_special"],
    "DATABASE_URL": "postgresql://app:" + S["env_dsn_pw"] + "@db.internal:5432/prod",
    "PATH": "/usr/local/bin:/usr/bin:" + HOME + "/.local/bin",
    "XDG_SESSION_TYPE": "wayland",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GOOGLE_APPLICATION_CREDENTIALS": "/etc/gcp/service-account.json",
}

CORPUS: list[tuple[str, str, str, str]] = [
    # name, secret, carrier, kind
    ("ghp", S["ghp"], f"remote: using token {S['ghp']} for push", "github-token"),
    ("gho", S["gho"], f'  File "app.py", line 3, in <module>\n    client = Github("{S["gho"]}")', "github-token"),
    ("ghu", S["ghu"], f"{{'tok': '{S['ghu']}', 'n': 1}}", "github-token"),
    ("ghs", S["ghs"], f"fatal: https://x-access-token:{S['ghs']}@github.com/org/repo.git", "github-token"),
    ("ghr", S["ghr"], f"refresh={S['ghr']}", "github-token"),
    ("github_pat", S["github_pat"], f"GH auth failed for {S['github_pat']}\n", "github-token"),
    ("gitlab", S["gitlab"], f"git clone https://oauth2:{S['gitlab']}@gitlab.com/g/p.git", "gitlab-token"),
    ("akia", S["akia"], f"aws_access_key_id = {S['akia']}", "aws-access-key"),
    ("asia", S["asia"], f"Credentials(access_key='{S['asia']}', method='sts')", "aws-access-key"),
    ("aws_secret", S["aws_secret"], f"aws_secret_access_key = {S['aws_secret']}\n", "aws-secret-key"),
    ("slack_bot", S["slack_bot"], f"SlackApiError: invalid_auth for {S['slack_bot']}", "slack-token"),
    ("slack_user", S["slack_user"], f"SLACK_USER={S['slack_user']}", "slack-token"),
    ("openai", S["openai"], f"openai.AuthenticationError: Incorrect API key provided: {S['openai']}.", "api-key"),
    ("openai_proj", S["openai_proj"], f"client = OpenAI(api_base='x', k={S['openai_proj']!r})", "api-key"),
    ("anthropic", S["anthropic"], f"anthropic.AuthenticationError: invalid x-api-key {S['anthropic']}", "api-key"),
    ("hf", S["hf"], f"huggingface_hub.login(token='{S['hf']}')", "huggingface-token"),
    ("google", S["google"], f"GET https://maps.googleapis.com/maps/api/geocode/json?address=x&key={S['google']}", "google-api-key"),
    ("stripe_live", S["stripe_live"], f'stripe.api_key = "{S["stripe_live"]}"', "stripe-key"),
    ("stripe_restricted", S["stripe_restricted"], f"using {S['stripe_restricted']} for refunds", "stripe-key"),
    ("pypi", S["pypi"], f"twine upload -u __token__ -p {S['pypi']} dist/*", "pypi-token"),
    ("npm", S["npm"], f"//registry.npmjs.org/:_authToken={S['npm']}", "npm-token"),
    ("jwt", S["jwt"], f"id_token: {S['jwt']}", "jwt"),
    ("pem_rsa", S["pem_rsa"], f"key = '''{S['pem_rsa']}'''\nnext_line = 1", "pem-private-key"),
    ("pem_openssh", S["pem_openssh"], f"{{'deploy_key': {S['pem_openssh']!r}, 'n': 2}}", "pem-private-key"),
    ("url_userpass", S["url_userpass"], f"ConnectionError: https://deploy:{S['url_userpass']}@example.com/api", "url-credentials"),
    ("postgres_pw", S["postgres_pw"], f"connection to postgresql://app:{S['postgres_pw']}@db.internal:5432/prod failed", "url-credentials"),
    ("redis_pw", S["redis_pw"], f"Error connecting to redis://:{S['redis_pw']}@cache.internal:6379/0.", "url-credentials"),
    ("url_token_only", S["url_token_only"], f"git clone https://{S['url_token_only']}@github.com/org/private.git", "url-credentials"),
    ("auth_bearer", S["auth_bearer"], f"Authorization: Bearer {S['auth_bearer']}\r\nHost: api.example.com\r\n", "bearer"),
    ("auth_token", S["auth_token"], f"{{'Authorization': 'token {S['auth_token']}', 'Accept': 'application/json'}}", "authorization"),
    ("auth_basic", S["auth_basic"], f'{{"Authorization": "Basic {S["auth_basic"]}"}}', "authorization"),
    ("bare_bearer", S["bare_bearer"], f"401 Unauthorized for Bearer {S['bare_bearer']}", "bearer"),
    ("q_access_token", S["q_access_token"], f"GET /v1/me?access_token={S['q_access_token']}&fields=id", "query-secret"),
    ("q_api_key", S["q_api_key"], f"https://api.example.com/v2?foo=1&api_key={S['q_api_key']}", "query-secret"),
    ("q_sig", S["q_sig"], f"https://acct.blob.core.windows.net/c/b.bin?sv=2021-08-06&sig={S['q_sig']}", "query-secret"),
    ("q_amz_sig", S["q_amz_sig"], f"https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={S['q_amz_sig']}", "query-secret"),
    ("yaml_password", S["yaml_password"], f"database:\n  user: app\n  password: {S['yaml_password']}\n", "password"),
    ("ini_secret", S["ini_secret"], f"[oauth]\nclient_id = my-app\nclient_secret = {S['ini_secret']}\n", "config-secret"),
    ("dotenv_password", S["dotenv_password"], f"DEBUG=1\nexport DB_PASSWORD=\"{S['dotenv_password']}\"\n", "password"),
    ("kwargs_password", S["kwargs_password"], f"Config(host='db', password='{S['kwargs_password']}', port=5432)", "password"),
    ("netrc_password", S["netrc_password"], f"machine api.example.com\n  login deploy\n  password {S['netrc_password']}\n", "password"),
    ("locals_api_key", S["locals_api_key"], f"{{'api_key': '{S['locals_api_key']}', 'retries': 3}}", "config-secret"),
    ("cli_password", S["cli_password"], f"python app.py --password {S['cli_password']} --epochs 3", "password"),
    ("cli_token", S["cli_token"], f"python app.py --auth-token={S['cli_token']}", "config-secret"),
    ("env_literal", S["env_literal"], f"connecting with {S['env_literal']} ...", "env-secret"),
    ("env_special_urlenc", S["env_special"], "pw=" + urllib.parse.quote(S["env_special"], safe="") + " sent", "env-secret"),
    ("env_literal_b64", S["env_literal"], "blob " + base64.b64encode(S["env_literal"].encode()).decode() + " end", "env-secret"),
    ("env_dsn_pw", S["env_dsn_pw"], f"psql: auth failed with {S['env_dsn_pw']}", "env-secret"),
    ("extra", S["extra"], f"session {S['extra']} rejected", "extra-secret"),
]


def forms(secret: str) -> list[str]:
    """Forms of a secret that must not survive (the raw one, and encodings)."""
    out = [secret]
    if "%" not in secret:
        out.append(urllib.parse.quote(secret, safe=""))
    return out


def make(**kw) -> Redactor:
    kw.setdefault("extra_secrets", [S["extra"]])
    return Redactor(ENV, hostname=HOST, username=USER, home=HOME, **kw)


def assert_scrubbed(out: str | bytes, secrets) -> None:
    for secret in secrets:
        for f in forms(secret):
            needle = f.encode() if isinstance(out, bytes) else f
            assert needle not in out, f"secret survived: {f[:12]}..."


def test_corpus_is_big_and_distinct():
    assert len(CORPUS) >= 30
    secrets = {c[1] for c in CORPUS}
    assert len(secrets) >= 30
    kinds = {c[3] for c in CORPUS}
    assert kinds <= set(KINDS)
    # every pattern family is covered
    assert {
        "github-token", "aws-access-key", "aws-secret-key", "slack-token", "api-key",
        "huggingface-token", "google-api-key", "stripe-key", "jwt", "pem-private-key",
        "url-credentials", "bearer", "authorization", "query-secret", "password",
        "config-secret", "env-secret", "extra-secret",
    } <= kinds


@pytest.mark.parametrize("name,secret,carrier,kind", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_case(name, secret, carrier, kind):
    r = make()
    out = r.text(carrier, "case")
    assert secret not in out
    if "%" not in secret:
        assert urllib.parse.quote(secret, safe="") not in out
    assert REDACTED.format(kind=kind) in out
    assert r.report() == [Redaction(kind=kind, where="case", count=1)]
    # idempotent, and a second pass counts nothing new
    assert r.text(out, "case") == out
    assert r.report() == [Redaction(kind=kind, where="case", count=1)]


def test_corpus_all_at_once_and_idempotent():
    r = make()
    text = "\n".join(c[2] for c in CORPUS)
    once = r.text(text, "stdout")
    assert_scrubbed(once, [c[1] for c in CORPUS])
    first = r.report()
    assert sum(x.count for x in first) >= len(CORPUS)
    assert r.text(once, "stdout") == once
    assert r.report() == first


# --------------------------------------------------------------------------
# Carriers
# --------------------------------------------------------------------------


def test_argv_list():
    r = make()
    argv = [
        "python", "train.py",
        "--token", S["cli_token"],
        "--password=" + S["cli_password"],
        "--db", "postgresql://app:" + S["postgres_pw"] + "@db:5432/x",
        "--api-key", S["locals_api_key"],
        "--hf", S["hf"],
        "--max-tokens", "512",
        "--output-dir", HOME + "/runs/7",
    ]
    out = r.obj(argv, "argv")
    assert isinstance(out, list) and len(out) == len(argv)
    assert_scrubbed(json.dumps(out), [S["cli_token"], S["cli_password"], S["postgres_pw"], S["locals_api_key"], S["hf"]])
    assert out[:3] == ["python", "train.py", "--token"]
    assert out[3] == "<redacted:config-secret>"
    assert out[4] == "--password=<redacted:password>"
    assert out[6] == "postgresql://<redacted:url-credentials>@db:5432/x"
    assert out[8] == "<redacted:config-secret>"
    assert out[10] == "<redacted:huggingface-token>"
    assert out[11:13] == ["--max-tokens", "512"]
    assert out[14] == "<home>/runs/7"
    kinds = {(x.kind, x.count) for x in r.report()}
    assert kinds == {
        ("config-secret", 2), ("password", 1), ("url-credentials", 1),
        ("huggingface-token", 1), ("home", 1),
    }
    assert {x.where for x in r.report()} == {"argv"}


def test_argv_as_text():
    r = make()
    cmd = f"python app.py --password {S['cli_password']} --token {S['cli_token']} --max-tokens 100"
    out = r.text(cmd, "argv")
    assert_scrubbed(out, [S["cli_password"], S["cli_token"]])
    assert out.endswith("--max-tokens 100")


TRACEBACK = f'''Traceback (most recent call last):
  File "{HOME}/proj/app.py", line 42, in <module>
    main()
  File "{HOME}/proj/app.py", line 37, in main
    client = Client(url="https://deploy:{S['url_userpass']}@api.example.com", token="{S['ghp']}")
  File "/usr/lib/python3.11/site-packages/httpx/_client.py", line 1013, in send
    raise HTTPStatusError(f"401 for {{request.url}}", request=request, response=response)
httpx.HTTPStatusError: 401 Unauthorized for url 'https://api.example.com/v1/items?access_token={S['q_access_token']}'
  headers: {{'authorization': 'Bearer {S['jwt']}', 'user-agent': 'python-httpx/0.27.0'}}
During handling of the above exception, another exception occurred:
KeyError: 'api_key'
'''


def test_traceback_text():
    r = make()
    out = r.text(TRACEBACK, "traceback")
    assert_scrubbed(out, [S["url_userpass"], S["ghp"], S["q_access_token"], S["jwt"]])
    assert 'File "<home>/proj/app.py", line 42, in <module>' in out
    assert "/usr/lib/python3.11/site-packages/httpx/_client.py" in out
    assert "KeyError: 'api_key'" in out
    assert "'authorization': 'Bearer <redacted:jwt>'" in out
    got = {(x.kind, x.count) for x in r.report()}
    assert got == {("home", 2), ("url-credentials", 1), ("github-token", 1), ("query-secret", 1), ("jwt", 1)}


def test_locals_reprs():
    Config = dataclasses.make_dataclass("Config", ["host", "password", "timeout"])
    local_vars = {
        "self": "<app.Worker object at 0x7f3a2b1c9d40>",
        "api_key": S["locals_api_key"],
        "headers": {"Authorization": "token " + S["auth_token"]},
        "cfg": Config("db", S["kwargs_password"], 30),
        "pem": S["pem_openssh"],
        "n_tokens": 512,
    }
    r = make()
    # what the recorder writes: one repr per local
    text = "\n".join(f"{k} = {v!r}" for k, v in local_vars.items())
    out = r.text(text, "locals")
    assert_scrubbed(out, [S["locals_api_key"], S["auth_token"], S["kwargs_password"], S["pem_openssh"]])
    assert "<app.Worker object at 0x7f3a2b1c9d40>" in out
    assert "n_tokens = 512" in out
    assert "timeout=30" in out
    assert "api_key = '<redacted:config-secret>'" in out
    assert "headers = {'Authorization': 'token <redacted:authorization>'}" in out
    assert "password='<redacted:password>'" in out
    assert "pem = '<redacted:pem-private-key>'" in out
    got = {(x.kind, x.count) for x in r.report()}
    assert got == {("config-secret", 1), ("authorization", 1), ("password", 1), ("pem-private-key", 1)}

    # and the same data as a structure
    r2 = make()
    obj = r2.obj({k: (v if not dataclasses.is_dataclass(v) else repr(v)) for k, v in local_vars.items()}, "locals")
    assert obj["api_key"] == "<redacted:config-secret>"
    assert obj["headers"] == {"Authorization": "<redacted:authorization>"}
    assert S["kwargs_password"] not in obj["cfg"]
    assert obj["pem"] == "<redacted:pem-private-key>"
    assert obj["n_tokens"] == 512


def test_stdout_text():
    r = make()
    lines = [
        "epoch 1: loss=0.123 lr=3e-4",
        f"[wandb] logging in with {S['env_literal']}",
        f"export OPENAI_API_KEY={S['openai']}",
        f"DEBUG urllib3: https://hooks.slack.com/services/T0{rand(8, UPPER + DIGITS)}/B0{rand(8, UPPER + DIGITS)}/{rand(24)} 200",
        f"Using {S['anthropic']} against api.anthropic.com",
        f"user {USER} on {HOST} (short {HOST.split('.')[0]})",
        "done in 12.3s",
    ]
    out = r.text("\n".join(lines), "stdout")
    assert_scrubbed(out, [S["env_literal"], S["openai"], S["anthropic"]])
    assert "hooks.slack.com/services/<redacted:slack-token>" in out
    assert "user <user> on <hostname> (short <hostname>)" in out
    assert out.startswith("epoch 1: loss=0.123 lr=3e-4\n")
    assert out.endswith("done in 12.3s")


YAML = f"""\
model: meta-llama/Llama-3-8B
max_new_tokens: 256
pad_token: "<pad>"
database:
  host: db.internal
  user: app
  password: {S['yaml_password']}
hub:
  token: "{S['hf']}"
aws:
  aws_access_key_id: {S['akia']}
  aws_secret_access_key: {S['aws_secret']}
cache_dir: {HOME}/.cache/models
"""

INI = f"""\
[server]
port = 8080
[oauth]
client_id = my-app
client_secret = {S['ini_secret']}
signing_key = "{S['locals_api_key']}"
"""

DOTENV = f"""\
# local settings
DEBUG=1
DB_PASSWORD={S['dotenv_password']}
STRIPE_SECRET_KEY={S['stripe_live']}
SENTRY_DSN=https://{rand(32, HEX)}@o1.ingest.sentry.io/42
SESSION_TIMEOUT=3600
"""


def test_file_bytes_yaml_ini_env():
    r = make()
    y = r.bytes(YAML.encode(), "files/config.yaml")
    i = r.bytes(INI.encode(), "files/settings.ini")
    e = r.bytes(DOTENV.encode(), "files/.env")
    assert all(isinstance(x, bytes) for x in (y, i, e))
    assert_scrubbed(y, [S["yaml_password"], S["hf"], S["akia"], S["aws_secret"]])
    assert_scrubbed(i, [S["ini_secret"], S["locals_api_key"]])
    assert_scrubbed(e, [S["dotenv_password"], S["stripe_live"]])
    ytext = y.decode()
    assert "max_new_tokens: 256" in ytext and 'pad_token: "<pad>"' in ytext
    assert "  password: <redacted:password>\n" in ytext
    assert "cache_dir: <home>/.cache/models" in ytext
    assert "model: meta-llama/Llama-3-8B" in ytext
    assert "port = 8080" in i.decode()
    etext = e.decode()
    assert "SESSION_TIMEOUT=3600" in etext and "DEBUG=1" in etext
    assert "sentry.io" in etext and "https://<redacted:url-credentials>@o1.ingest.sentry.io/42" in etext
    report = {(x.where, x.kind): x.count for x in r.report()}
    assert report == {
        ("files/.env", "password"): 1,
        ("files/.env", "stripe-key"): 1,
        ("files/.env", "url-credentials"): 1,
        ("files/config.yaml", "aws-access-key"): 1,
        ("files/config.yaml", "aws-secret-key"): 1,
        ("files/config.yaml", "home"): 1,
        ("files/config.yaml", "huggingface-token"): 1,
        ("files/config.yaml", "password"): 1,
        ("files/settings.ini", "config-secret"): 2,
    }
    # sorted by (where, kind)
    keys = [(x.where, x.kind) for x in r.report()]
    assert keys == sorted(keys)


def test_binary_file_with_env_secret():
    r = make()
    secret = S["env_literal"]
    blob = (
        b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) + b"\x00\xff\xfe"
        + secret.encode() + b"\x00\x00"
        + secret.encode("utf-16-le") + b"\x00"
        + b"\xc3\x28 invalid utf-8 \xa0\xa1" + bytes(RNG.randrange(256) for _ in range(2000))
    )
    out = r.bytes(blob, "files/model.bin")
    assert secret.encode() not in out
    assert secret.encode("utf-16-le") not in out
    assert b"<redacted:env-secret>" in out
    assert "<redacted:env-secret>".encode("utf-16-le") in out
    assert out.startswith(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    assert b"\xc3\x28 invalid utf-8 \xa0\xa1" in out
    assert r.report() == [Redaction("env-secret", "files/model.bin", 2)]
    # untouched binaries come back byte-identical
    clean = bytes(RNG.randrange(256) for _ in range(4096)).replace(b"/home", b"/hxme")
    assert r.bytes(clean, "files/clean.bin") == clean


def test_json_probe_values_obj():
    r = make()
    probe = {
        "status": "ok",
        "value": {
            "request": {
                "url": "https://api.example.com/x?token=" + S["q_access_token"],
                "headers": {
                    "Authorization": "Bearer " + S["auth_bearer"],
                    "X-Api-Key": S["q_api_key"],
                    "Accept": "application/json",
                },
            },
            "oauth": {"client_id": "my-app", "client_secret": S["ini_secret"]},
            "credentials": {"user": "deploy", "password": "x"},
            "auth": ("deploy", S["kwargs_password"]),
            "tokens": [1, 2, 3],
            "max_tokens": 4096,
            "use_auth_token": True,
            "api_key": None,
            "gpu": {"name": "NVIDIA H100", "uuid": "GPU-2f1c9a4e-1b2c-4d5e-8f90-a1b2c3d4e5f6"},
            "env": {"HOME": HOME},
            "nested": [{"session_id": rand(32, HEX)}, {"note": "unexpected token"}],
        },
        "error": None,
    }
    out = r.obj(probe, "environment.json")
    dumped = json.dumps(out)
    assert_scrubbed(dumped, [S["q_access_token"], S["auth_bearer"], S["q_api_key"], S["ini_secret"], S["kwargs_password"]])
    v = out["value"]
    assert v["request"]["headers"]["Authorization"] == "Bearer <redacted:bearer>"  # scheme kept
    assert v["request"]["headers"]["X-Api-Key"] == "<redacted:config-secret>"
    assert v["request"]["headers"]["Accept"] == "application/json"
    assert v["request"]["url"] == "https://api.example.com/x?token=<redacted:query-secret>"
    assert v["oauth"] == {"client_id": "my-app", "client_secret": "<redacted:config-secret>"}
    assert v["credentials"] == {"user": "deploy", "password": "<redacted:password>"}
    assert v["auth"] == ("<redacted:config-secret>", "<redacted:config-secret>")
    assert v["tokens"] == [1, 2, 3] and v["max_tokens"] == 4096
    assert v["use_auth_token"] is True and v["api_key"] is None
    assert v["gpu"] == probe["value"]["gpu"]
    assert v["env"] == {"HOME": "<home>"}
    assert v["nested"][0]["session_id"] == "<redacted:config-secret>"
    assert v["nested"][1] == {"note": "unexpected token"}
    assert out["status"] == "ok" and out["error"] is None
    assert probe["value"]["credentials"]["password"] == "x"  # input untouched
    assert {x.where for x in r.report()} == {"environment.json"}


def test_obj_nested_structures():
    r = make()
    Pair = namedtuple("Pair", "name value")
    data = {
        1: [S["ghp"], (S["openai"], {S["akia"]}), b"bytes " + S["env_literal"].encode()],
        "path": PurePosixPath(HOME + "/data/train.jsonl"),
        "pair": Pair("x", S["hf"]),
        "frozen": frozenset({"a", S["npm"]}),
        "deep": {"a": {"b": {"c": [{"password": 12345678}, {"Password": ""}]}}},
        "other": object(),
        "float": 1.5,
        ("tuple", "key"): "v",
        "Cookie": "sessionid=" + rand(32, HEX),
        "private_key": S["pem_rsa"],
        "DB_PASSWORD_FILE": "/run/secrets/db",
    }
    out = r.obj(data, "probe")
    flat = repr(out)
    assert_scrubbed(flat, [S["ghp"], S["openai"], S["akia"], S["env_literal"], S["hf"], S["npm"], S["pem_rsa"]])
    assert out[1][0] == "<redacted:github-token>"
    assert out[1][1][0] == "<redacted:api-key>"
    assert out[1][1][1] == {"<redacted:aws-access-key>"}
    assert out[1][2] == b"bytes <redacted:env-secret>"
    assert out["path"] == PurePosixPath("<home>/data/train.jsonl")
    assert isinstance(out["pair"], Pair) and out["pair"].value == "<redacted:huggingface-token>"
    assert isinstance(out["frozen"], frozenset) and "<redacted:npm-token>" in out["frozen"]
    assert out["deep"]["a"]["b"]["c"] == [{"password": "<redacted:password>"}, {"Password": ""}]
    assert isinstance(out["other"], str) and out["other"].startswith("<object object at 0x")
    assert out["float"] == 1.5
    assert out[("tuple", "key")] == "v"
    assert out["Cookie"] == "<redacted:config-secret>"
    assert out["private_key"] == "<redacted:pem-private-key>"
    assert out["DB_PASSWORD_FILE"] == "/run/secrets/db"
    # idempotent on structures too
    before = r.report()
    assert r.obj(out, "probe") == out
    assert r.report() == before


def test_obj_secret_keys_replaced_entirely():
    r = make()
    out = r.obj(
        {
            "password": "x",
            "Authorization": "Digest username=bob, response=" + rand(32, HEX),
            "authorization": "Bearer " + S["jwt"],
            "apiKey": "short1",
            "clientSecret": "abc12",
            "accessToken": "tkn-" + rand(10),
            "pad_token": "<pad>",
            "eos_token_id": 2,
            "token_type": "Bearer",
            "max_tokens": 100,
            "keyboard": "us",
            "sort_key": "name",
            "primary_key": "id",
        },
        "probe",
    )
    assert out["password"] == "<redacted:password>"
    assert out["Authorization"] == "<redacted:authorization>"
    assert out["authorization"] == "Bearer <redacted:jwt>"
    assert out["apiKey"] == "<redacted:config-secret>"
    assert out["clientSecret"] == "<redacted:config-secret>"
    assert out["accessToken"] == "<redacted:config-secret>"
    for k in ("pad_token", "eos_token_id", "token_type", "max_tokens", "keyboard", "sort_key", "primary_key"):
        assert out[k] in ("<pad>", 2, "Bearer", 100, "us", "name", "id"), k


def test_env():
    r = make()
    environ = {
        "HF_TOKEN": S["hf"],
        "MYAPP_SERVICE_TOKEN": S["env_literal"],
        "AWS_SECRET_ACCESS_KEY": S["aws_secret"],
        "DB_PASS": "short",
        "PGPASSWORD": S["dotenv_password"],
        "WANDB_API_KEY": rand(40, HEX),
        "SENTRY_DSN": "https://" + rand(32, HEX) + "@o1.ingest.sentry.io/1",
        "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=" + rand(20),
        "SSH_AUTH_SOCK": "/tmp/ssh-XXXX/agent.123",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "GITHUB_TOKEN": "",
        "GOOGLE_APPLICATION_CREDENTIALS": HOME + "/keys/sa.json",
        "XDG_SESSION_TYPE": "wayland",
        "KEYBOARD_LAYOUT": "us",
        "PATH": "/usr/bin:" + HOME + "/.local/bin",
        "PWD": HOME + "/proj",
        "NOTES": "token is " + S["env_literal"],
        "CUDA_VISIBLE_DEVICES": "0,1",
        "PYTHONHASHSEED": "0",
        "HOSTNAME": HOST,
        "USER": USER,
    }
    out = r.env(environ, "environment.json")
    assert list(out) == list(environ)  # names kept, order kept
    for name in ("HF_TOKEN", "MYAPP_SERVICE_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASS", "PGPASSWORD",
                 "WANDB_API_KEY", "SENTRY_DSN", "AZURE_STORAGE_CONNECTION_STRING"):
        assert out[name] == "<redacted:env-secret>", name
    assert out["SSH_AUTH_SOCK"] == "/tmp/ssh-XXXX/agent.123"
    assert out["HF_HUB_DISABLE_IMPLICIT_TOKEN"] == "1"
    assert out["GITHUB_TOKEN"] == ""
    assert out["GOOGLE_APPLICATION_CREDENTIALS"] == "<home>/keys/sa.json"
    assert out["XDG_SESSION_TYPE"] == "wayland"
    assert out["KEYBOARD_LAYOUT"] == "us"
    assert out["PATH"] == "/usr/bin:<home>/.local/bin"
    assert out["PWD"] == "<home>/proj"
    assert out["NOTES"] == "token is <redacted:env-secret>"
    assert out["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert out["HOSTNAME"] == "<hostname>" and out["USER"] == "<user>"
    counts = {x.kind: x.count for x in r.report()}
    assert counts["env-secret"] == 9
    assert counts["home"] == 3


def test_env_literals_collected_from_environ():
    secret = rand(20)
    r = Redactor({"SOME_VENDOR_APIKEY": secret, "ENABLE_AUTH": "true", "AUTH_MODE": "oauth2"},
                 hostname="h", username="u", home="/nonexistent-home-dir")
    assert r.text(f"a {secret} b", "x") == "a <redacted:env-secret> b"
    # boolean / mode values are not collected, so ordinary words survive
    assert r.text("oauth2 is true", "x") == "oauth2 is true"
    # escaped and encoded forms
    r2 = Redactor({"DB_PASSWORD": 'pa"ss\\word!9'}, hostname="h", username="u", home="/nonexistent-home-dir")
    assert r2.text(json.dumps({"dsn": 'pa"ss\\word!9'}), "x") == '{"dsn": "<redacted:env-secret>"}'
    assert r2.text(urllib.parse.quote_plus('pa"ss\\word!9'), "x") == "<redacted:env-secret>"


# --------------------------------------------------------------------------
# Non-secrets survive
# --------------------------------------------------------------------------

NON_SECRETS = [
    "commit " + rand(40, HEX),
    "merge " + rand(7, HEX) + ".." + rand(7, HEX),
    "uuid 9f1c2d3e-4b5a-6c7d-8e9f-0a1b2c3d4e5f",
    "sha256:" + rand(64, HEX),
    "digest = " + rand(64, HEX),
    "<torch.nn.Linear object at 0x7f3a2b1c9d40>",
    "SyntaxError: unexpected token ':'",
    "json.decoder.JSONDecodeError: invalid token: expected value at line 1",
    "Looking in indexes: https://pypi.org/simple, https://download.pytorch.org/whl/cu121",
    "ray://127.0.0.1:10001 and http://localhost:8265/#/jobs",
    "ssh://git@github.com/org/repo.git",
    "/usr/lib/python3.11/site-packages/torch/__init__.py",
    "/root/.cache/huggingface/hub",
    "torch==2.1.0+cu121 nvidia-cudnn-cu12==8.9.2.26",
    "max_tokens=512, pad_token='<pad>', eos_token='</s>', token_type_ids=[0, 0, 1]",
    '{"max_new_tokens": 256, "bos_token_id": 1, "tokenizer_class": "LlamaTokenizer"}',
    "KeyError: 'api_key'",
    "def login(user: str, password: str) -> None:",
    "    password: Optional[str] = None",
    "    token = os.environ['HF_TOKEN']",
    "    password = get_password()",
    "sorted(items, key=lambda x: x[0]); key=value; keyboard=us",
    "The bearer of bad news. Authorization required.",
    "12 passed, 1 skipped in 3.21s",
    "session.run(fetches) with session_config=None",
    "base64 SGVsbG8gV29ybGQ= decoded",
    "image python:3.11-slim on cuda:0, driver 535.104.05",
    "task-sk-learn-pipeline-stage-000000001 finished",
    "sk-learn-pipeline-stage-000000001 done",
    "export TOKENIZERS_PARALLELISM=false",
    "password: ********",
    "api_key: ${OPENAI_API_KEY}",
    "secret: {{ vault_secret }}",
    "pkg_resources.DistributionNotFound: The 'malice>=1.0' distribution was not found",
    "AKIA is the prefix of AWS key ids; ghp_ of GitHub ones",
    "wayland session on root@buildbox",
    # everyday ML / Python output
    "Setting `pad_token_id` to `eos_token_id`:2 for open-end generation.",
    "Your token has been saved to /root/.cache/huggingface/token",
    "Missing key(s) in state_dict: \"model.embed_tokens.weight\".",
    "outputs = model(input_ids=ids, attention_mask=mask, past_key_values=None, use_cache=True)",
    "auth_type: oauth",
    "secret_name: my-secret",
    "botocore.exceptions.NoCredentialsError: Unable to locate credentials",
    "TypeError: __init__() got an unexpected keyword argument 'token'",
    "cookie_jar: <RequestsCookieJar[]>",
    "GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0, max_new_tokens=128)",
    "jwt.exceptions.ExpiredSignatureError: Signature has expired",
    "PASSED tests/test_auth.py::test_login_with_password",
    "token: some_identifier_name",
    "password: $DB_PASSWORD and token: ${HF_TOKEN:-}",
    "private: false",
]


def test_non_secrets_survive():
    r = make()
    text = "\n".join(NON_SECRETS)
    out = r.text(text, "stdout")
    assert out == text, [(a, b) for a, b in zip(text.splitlines(), out.splitlines()) if a != b]
    assert r.report() == []


def test_url_without_credentials_and_paths_survive():
    r = make()
    s = "see https://github.com/org/repo/issues/12?tab=1#x and /opt/conda/envs/py311/bin/python"
    assert r.text(s, "x") == s


# --------------------------------------------------------------------------
# Identity: hostname, user name, home
# --------------------------------------------------------------------------


def test_identity_placeholders():
    r = Redactor({}, hostname="gpu-node-17.cluster.example.org", username="jdoe42", home="/home/jdoe42")
    s = (
        "/home/jdoe42/project/app.py\n"
        "/home/jdoe42\n"
        "/home/jdoe42x/other\n"
        "/tmp/jdoe42-cache/x jdoe42@gpu-node-17 JDOE42\n"
        "ssh gpu-node-17.cluster.example.org; notjdoe42 jdoe421\n"
    )
    out = r.text(s, "traceback")
    assert out == (
        "<home>/project/app.py\n"
        "<home>\n"
        "/home/jdoe42x/other\n"
        "/tmp/<user>-cache/x <user>@<hostname> <user>\n"
        "ssh <hostname>; notjdoe42 jdoe421\n"
    )
    counts = {x.kind: x.count for x in r.report()}
    assert counts == {"home": 2, "username": 3, "hostname": 2}
    assert r.text(out, "traceback") == out


def test_home_before_username_and_root():
    r = Redactor({}, hostname="ip-10-0-1-23.ec2.internal", username="root", home="/root")
    s = "File /root/.cache/pip/x.py; the root cause; chroot /rootfs; ip-10-0-1-23 up"
    out = r.text(s, "traceback")
    assert out == "File <home>/.cache/pip/x.py; the root cause; chroot /rootfs; <hostname> up"


def test_windows_home():
    r = Redactor({}, hostname="DESKTOP-7Q2", username="Alice", home="C:\\Users\\Alice")
    s = 'File "C:\\Users\\Alice\\proj\\app.py" and repr C:\\\\Users\\\\Alice\\\\proj and C:/Users/Alice/x on desktop-7q2'
    out = r.text(s, "traceback")
    assert "Alice" not in out and "alice" not in out.lower()
    assert out.count("<home>") == 3
    assert out.endswith("on <hostname>")


def test_defaults_use_this_machine(monkeypatch):
    import socket
    from pathlib import Path

    monkeypatch.setenv("REPREX_TEST_SECRET_TOKEN", "v" + rand(20))
    r = Redactor()  # os.environ, this machine's identity
    tok = __import__("os").environ["REPREX_TEST_SECRET_TOKEN"]
    assert tok not in r.text("x " + tok, "x")
    home = str(Path.home())
    if len(home) > 2:
        assert r.text(home + "/zz", "x").startswith("<home>")
    host = socket.gethostname()
    if len(host) >= 3 and host.lower() not in ("localhost",) and not host.replace(".", "").isdigit():
        assert host not in r.text(f"on {host} now", "x")


# --------------------------------------------------------------------------
# API details
# --------------------------------------------------------------------------


def test_report_and_preview():
    r = make()
    r.text(f"a {S['ghp']} b {S['ghs']}", "stdout")
    r.text(f"password: {S['yaml_password']}", "files/a.yaml")
    r.text(f"x {S['ghp']}", "argv")
    rep = r.report()
    assert rep == [
        Redaction("github-token", "argv", 1),
        Redaction("password", "files/a.yaml", 1),
        Redaction("github-token", "stdout", 2),
    ]
    assert r.preview() == [
        {"kind": "github-token", "where": "argv", "count": 1},
        {"kind": "password", "where": "files/a.yaml", "count": 1},
        {"kind": "github-token", "where": "stdout", "count": 2},
    ]
    json.dumps(r.preview())
    with pytest.raises(dataclasses.FrozenInstanceError):
        rep[0].count = 5  # type: ignore[misc]
    # never the value
    assert S["ghp"] not in repr(rep) and S["ghp"] not in json.dumps(r.preview())


def test_placeholder_format():
    assert REDACTED.format(kind="jwt") == "<redacted:jwt>"
    assert all(k == k.lower() and " " not in k for k in KINDS)


def test_idempotent_on_every_carrier():
    r = make()
    for text, where in [(TRACEBACK, "traceback"), (YAML, "files/c.yaml"), (INI, "files/s.ini"), (DOTENV, "files/.env")]:
        once = r.text(text, where)
        before = r.report()
        assert r.text(once, where) == once
        assert r.report() == before
    b = r.bytes(YAML.encode(), "files/b.yaml")
    before = r.report()
    assert r.bytes(b, "files/b.yaml") == b
    assert r.report() == before


def test_empty_inputs():
    r = make()
    assert r.text("", "x") == ""
    assert r.bytes(b"", "x") == b""
    assert r.obj({}, "x") == {} and r.obj([], "x") == [] and r.obj(None, "x") is None
    assert r.env({}, "x") == {}
    assert r.report() == []


def test_performance_5mb():
    """A sanity run on 5 MB (no timing assertion); see the time with ``pytest -s``."""
    r = make()
    chunk = "\n".join([TRACEBACK, YAML, INI, DOTENV] + NON_SECRETS + [
        f"step {i}: loss=0.{i:04d} tokens/s=1234.5 path={HOME}/runs/{i} sha={rand(40, HEX)}" for i in range(200)
    ])
    text = chunk * (5_000_000 // len(chunk) + 1)
    assert len(text) >= 5_000_000
    t0 = time.perf_counter()
    out = r.text(text, "stdout")
    dt = time.perf_counter() - t0
    assert_scrubbed(out, [S[k] for k in ("url_userpass", "ghp", "q_access_token", "jwt", "yaml_password",
                                         "hf", "akia", "aws_secret", "ini_secret", "dotenv_password")])
    assert HOME not in out
    print(f"\n[redact] text(): {len(text) / 1e6:.1f} MB in {dt:.3f}s ({len(text) / 1e6 / dt:.1f} MB/s)")
    t0 = time.perf_counter()
    r.bytes(text.encode(), "files/big.log")
    dt = time.perf_counter() - t0
    print(f"[redact] bytes(): {len(text) / 1e6:.1f} MB in {dt:.3f}s ({len(text) / 1e6 / dt:.1f} MB/s)")


def test_more_header_and_cli_forms():
    r = make()
    resp = rand(32, HEX)
    digest = f'Authorization: Digest username="bob", realm="api", nonce="{rand(16, HEX)}", response="{resp}"\r\nHost: x'
    out = r.text(digest, "stdout")
    assert resp not in out and out.endswith("\r\nHost: x")
    repr_digest = f"{{'Authorization': 'Digest username=\"bob\", response=\"{resp}\"', 'Accept': '*/*'}}"
    out = r.text(repr_digest, "locals")
    assert resp not in out and out.endswith(", 'Accept': '*/*'}")
    pw = rand(14)
    assert r.text(f"curl -u deploy:{pw} https://x", "argv") == "curl -u deploy:<redacted:password> https://x"
    assert r.text(f"CalledProcessError: Command ['curl', '--user', 'deploy:{pw}'] returned 22", "traceback") == (
        "CalledProcessError: Command ['curl', '--user', 'deploy:<redacted:password>'] returned 22"
    )
    assert r.obj(["curl", "-u", f"deploy:{pw}", "-X", "POST"], "argv") == [
        "curl", "-u", "deploy:<redacted:password>", "-X", "POST",
    ]
    bcrypt = "$2b$12$" + rand(53, ALNUM + "./")
    assert r.text(f"password_hash: {bcrypt}", "files/u.yaml") == "password_hash: <redacted:password>"
    cookie = rand(32, HEX)
    out = r.text(f"Cookie: sessionid={cookie}; theme=dark", "stdout")
    assert cookie not in out


def test_env_name_rules():
    r = Redactor(
        {
            "SORT_KEY": "timestamp",  # not a secret: a sort key
            "PUBLIC_KEY_ID": "abcdef123",
            "XDG_SESSION_DESKTOP": "ubuntu",
            "DESKTOP_SESSION": "ubuntu-wayland",
            "SSH_AUTH_SOCK": "/tmp/ssh-abc/agent.1",
            "KAGGLE_KEY": "kagglevalue" + rand(8),
            "MYSQL_PWD": "mysqlpw" + rand(6),
            "NGROK_AUTHTOKEN": "ngrok" + rand(20),
        },
        hostname="h", username="u", home="/nonexistent-home-dir",
    )
    text = "sorted by timestamp on ubuntu-wayland, ubuntu; abcdef123 /tmp/ssh-abc/agent.1"
    assert r.text(text, "x") == text
    out = r.env({"KAGGLE_KEY": "k" * 10, "MYSQL_PWD": "p" * 8, "NGROK_AUTHTOKEN": "n" * 12, "SORT_KEY": "timestamp"}, "env")
    assert out == {
        "KAGGLE_KEY": "<redacted:env-secret>",
        "MYSQL_PWD": "<redacted:env-secret>",
        "NGROK_AUTHTOKEN": "<redacted:env-secret>",
        "SORT_KEY": "timestamp",
    }


def test_container_hostname_and_short_names():
    r = Redactor({}, hostname="3f2a1b4c5d6e", username="ab", home="/")
    assert r.text("running on 3f2a1b4c5d6e; ab cd; /usr/lib", "x") == "running on <hostname>; ab cd; /usr/lib"


def test_thread_safety_counts():
    import threading

    r = make()
    line = f"token {S['ghp']} and {S['openai']}\n" * 50

    def work():
        for _ in range(20):
            r.text(line, "stdout")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = {x.kind: x.count for x in r.report()}
    assert counts == {"github-token": 4 * 20 * 50, "api-key": 4 * 20 * 50}


@pytest.mark.parametrize(
    "text",
    [
        ("key" * 30 + "=") * 2000,
        ("api_key" * 30 + "=") * 2000,
        "eyJ" * 100_000,
        "-----BEGIN RSA PRIVATE" + " KEY-----x'" * 5000,
        "password=" + "a b " * 100_000,
        ("x" * 5000 + "password=") * 50,
        "https://" + "a:b@" * 50_000,
        "sk-" * 100_000,
        "QUJD" * 100_000,
        "a%20b " * 50_000,
        "a\\x00" * 100_000,
        "password:\n" + "  x\n" * 100_000,
        "('api_key', '" * 20_000,
        "auth=('a', '" * 20_000,
        "-----END PRIVATE" + " KEY-----\n" * 10_000,
    ],
    ids=["key-run", "api-key-run", "eyJ-run", "pem-no-end", "long-value", "long-lines", "userinfo-run", "sk-run",
         "base64-run", "percent-run", "escaped-utf16-run", "yaml-block-run", "pair-run", "auth-tuple-run", "pem-end-run"],
)
def test_pathological_inputs_stay_linear(text):
    # Regression guard for quadratic scanning: each finishes in well under a second.
    r = make()
    out = r.text(text, "p")
    assert r.text(out, "p") == out


def test_token_as_user_with_empty_password_is_redacted():
    token = "Xq9k" + "Lm2Pz8Kw4Rt7Vb3Nc6Hd1" + "Z3"
    red = Redactor({}, hostname="h", username="u", home="/nonexistent")
    out = red.text(f"https://{token}:@pypi.fury.io/acme/simple", "requirements.txt")
    assert token not in out and "<redacted:url-credentials>" in out
    assert "__token__" not in red.text("https://__token__:@upload.example.org/legacy", "x")
    env_red = Redactor({"PIP_INDEX_URL": f"https://{token}:@pypi.fury.io/acme/"}, hostname="h", username="u",
                       home="/nonexistent")
    assert token not in env_red.text(f"index at {token} failed", "stderr")
