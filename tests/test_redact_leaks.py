"""Issue 10: redaction against realistic code. Each test plants a secret the way real
programs carry one (hidden from repr, encoded, beside a name, in an unknown format, in a
URL with odd characters, cut off, in a file of its own) and checks it can't get through.

Secrets are generated from a seeded RNG and glued from pieces, so this file holds none.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import pickle
import random
import string
import urllib.parse
from pathlib import Path

import pytest

from reprex.capture.inputs import collect_inputs, secret_file_reason
from reprex.capture.pickles import secret_type, verdict, walk
from reprex.record import Outcome, outcome_text
from reprex.redact import Redactor, looks_secret_name

RNG = random.Random(1010)
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


def rand(n: int, alphabet: str = ALNUM) -> str:
    while True:
        s = "".join(RNG.choice(alphabet) for _ in range(n))
        if not any(c.isalpha() for c in alphabet) or any(c.isalpha() for c in s):
            if not any(c.isdigit() for c in alphabet) or any(c.isdigit() for c in s):
                return s


def red() -> Redactor:
    return Redactor({}, hostname="buildhost7", username="alice", home="/home/alice")


# -- URL userinfo: any characters ---------------------------------------------------------

@pytest.mark.parametrize("pw", ["Tq3/Zx9+Lm2Wv8Rk", "a?b#c" + rand(8), "pa:ss" + rand(8), "x%2Fy" + rand(6)])
def test_url_password_with_any_characters(pw):
    r = red()
    for text in (f"postgresql://app:{pw}@db/prod failed", f"could not connect: 'mysql://root:{pw}@localhost:3306/x'"):
        out = r.text(text, "traceback")
        assert pw not in out and "<redacted:url-credentials>@" in out, out


def test_url_without_userinfo_keeps_its_port_and_path():
    r = red()
    for text in ("GET https://host:8080/a/b@c failed", "see https://github.com/org/repo@v1.2", "ssh://git@github.com/x"):
        assert r.text(text, "x") == text


# -- pickles: read, never loaded -------------------------------------------------------------

@dataclasses.dataclass
class _Config:
    host: str
    password: str = dataclasses.field(repr=False, default="")


@dataclasses.dataclass
class _Hidden:
    host: str
    blob: str = dataclasses.field(repr=False, default="")


@dataclasses.dataclass
class _Visible:
    host: str
    port: int


class _Masked:
    def __init__(self, conn):
        self.conn = conn

    def __repr__(self):
        return "Masked(conn='***')"


def _judge(value) -> str | None:
    return verdict(pickle.dumps(value, protocol=4), repr(value), red())


def test_pickle_with_a_repr_hidden_field_is_dropped():
    assert "password" in _judge(_Config("db", "Hunter2-" + rand(8)))
    assert "hidden field" in _judge(_Hidden("db", rand(14)))
    assert "hidden field" in _judge(_Masked(rand(16)))


def test_pickle_holding_a_secret_in_any_decoding_is_dropped():
    token = "sk-" + "proj-" + rand(40)
    assert _judge({"note": "using " + token}) == "holds a secret"
    assert _judge([base64.b64encode(token.encode())]) == "holds a secret"
    akia = "AK" + "IA" + rand(16, string.ascii_uppercase + string.digits)
    assert _judge((akia.encode("utf-16-le"), 1)) == "holds a secret"
    assert _judge({"dsn": "postgresql://app:Tq3/Zx9+" + rand(10) + "@db/prod"}) == "holds a secret"


def test_pickle_of_a_secret_carrying_type_is_dropped_by_its_name():
    # What pydantic's SecretStr pickles to (protocol 2), built by hand: nothing is imported.
    blob = (b"\x80\x02cpydantic.types\nSecretStr\nq\x00)\x81q\x01}q\x02X\r\x00\x00\x00_secret_valueq\x03"
            b"X\x07\x00\x00\x00hunter2q\x04sb.")
    globals_, values = walk(blob)
    assert globals_ == ["pydantic.types.SecretStr"] and "hunter2" in values
    assert "SecretStr" in verdict(blob, "SecretStr('**********')", red())
    for qual in ("http.cookiejar.CookieJar", "requests.auth.HTTPBasicAuth", "app.models.ApiCredentials",
                 "httpx._auth.BasicAuth", "botocore.credentials.Credentials", "ssl.SSLContext"):
        assert secret_type(qual), qual
    for qual in ("numpy.core.multiarray._reconstruct", "pathlib.PurePosixPath", "collections.OrderedDict",
                 "torch._utils._rebuild_tensor_v2", "transformers.PreTrainedTokenizerFast", "requests.sessions.Session"):
        assert not secret_type(qual), qual


def test_ordinary_pickles_are_kept():
    import collections
    import datetime
    import decimal
    from pathlib import PurePosixPath

    for value in (_Visible("db.internal", 5432), PurePosixPath("/data/train.jsonl"), datetime.datetime(2024, 1, 2),
                  decimal.Decimal("1.25"), collections.OrderedDict(a="hello world", b=[1, 2]), {"alpha", "beta-gamma"},
                  b"\x00\x01binary data", "it's a \"quoted\"\nline", ("naïve café", 3.5)):
        assert _judge(value) is None, value


def test_garbage_and_oversized_pickles_are_dropped_with_a_reason():
    assert verdict(b"not a pickle at all", "x", red()).startswith("not a readable pickle")
    assert verdict(pickle.dumps(1), None, red()) == "its value is too large to check for secrets"


# -- encodings --------------------------------------------------------------------------------

def test_basic_credentials_and_base64_tokens_are_decoded():
    r = red()
    basic = base64.b64encode(("admin:" + rand(18)).encode()).decode()
    out = r.text(f"auth_header = 'Basic {basic}'", "locals")
    assert basic not in out and "<redacted:basic-auth>" in out
    token = "sk-" + "ant-api03-" + rand(40)
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        blob = enc(token.encode())
        out = r.text(f"payload = {blob!r}", "locals")
        assert blob.decode() not in out and "<redacted:api-key>" in out
    # base64 of JSON holding a password (a k8s secret, a JWT-less config blob)
    cfg = base64.b64encode(b'{"user": "svc", "password": "' + rand(14).encode() + b'"}').decode()
    assert cfg not in r.text(f"data: {cfg}", "files/secret.yaml")


def test_utf16_and_utf32_views_of_bytes():
    r = red()
    akia = "AK" + "IA" + rand(16, string.ascii_uppercase + string.digits)
    for enc in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
        raw = b"\x00\x01header" + akia.encode(enc) + b"\xff trailer"
        out = r.bytes(raw, "files/blob.bin")
        assert akia.encode(enc) not in out and out.startswith(b"\x00\x01header") and out.endswith(b"\xff trailer")
        shown = repr(akia.encode(enc))  # a bytes local, as the recorder writes it
        assert akia not in r.text(shown, "locals").replace("\\x00", "")


def test_percent_encoded_credentials():
    r = red()
    pw = rand(16)
    dsn = urllib.parse.quote(f"postgresql://app:{pw}@db/prod", safe="")
    out = r.text(f"GET /callback?next={dsn}&x=1", "stdout")
    assert pw not in urllib.parse.unquote(out) and out.endswith("&x=1")


def test_ordinary_encoded_data_survives():
    r = red()
    png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
    texts = [f"img = 'data:image/png;base64,{png}'", "q=hello%20world%21&lang=en%2Dus",
             repr("plain text here".encode("utf-16-le")), base64.b64encode(b"just a harmless sentence here").decode()]
    for t in texts:
        assert r.text(t, "x") == t
    assert r.report() == []


# -- context rules ----------------------------------------------------------------------------

def test_header_tuples_and_pairs():
    r = red()
    a, b, c = rand(24), rand(20), rand(32)
    text = f"headers = [(b'x-api-key', b'{a}'), ('X-Auth-Token', '{b}'), ('Accept', 'application/json')]\n" \
           f"scope = {{'type': 'http', 'headers': [[b'authorization', b'Bearer {c}']]}}"
    out = r.text(text, "locals")
    for s in (a, b, c):
        assert s not in out
    assert "('Accept', 'application/json')" in out
    obj = r.obj({"headers": [(b"x-api-key", a.encode()), ("X-Auth-Token", b), ("Accept", "text/html")]}, "locals")
    assert obj["headers"][0][1] != a.encode() and obj["headers"][1][1] != b and obj["headers"][2][1] == "text/html"


def test_credentials_in_call_shapes():
    r = red()
    pw = "Hunter2-" + rand(8)
    for line in (f'r = requests.get(url, auth=("admin", "{pw}"))', f"session.auth = ('admin', '{pw}')",
                 f"auth = HTTPBasicAuth('admin', '{pw}')", f"smtp.login('me@example.com', '{pw}')",
                 f"{{'auth': ('admin', '{pw}'), 'timeout': 3}}"):
        out = r.text(line, "traceback")
        assert pw not in out and ("admin" in out or "me@example.com" in out), line


def test_yaml_next_line_and_block_scalars():
    r = red()
    a, b, c = rand(20), rand(24), rand(30)
    text = (f"db:\n  host: db.internal\n  password:\n    {a}\n  port: 5432\n"
            f"api:\n  token: >-\n    {b}\n  retries: 3\n"
            f"tls:\n  private_key: |\n    {c}\n    {c[::-1]}\n"
            "credentials:\n  user: svc\n  region: eu\n")
    out = r.text(text, "files/config.yaml")
    for s in (a, b, c, c[::-1]):
        assert s not in out
    for kept in ("host: db.internal", "port: 5432", "retries: 3", "user: svc", "region: eu"):
        assert kept in out
    assert r.text(out, "files/config.yaml") == out


@pytest.mark.parametrize("indicator", ["|", "|-", "|+", ">", ">-", ">+", "|2", ">-2"])
@pytest.mark.parametrize("key", ["password", "token", "secret", "api_key"])
def test_every_block_scalar_indicator_hides_its_value(indicator, key):
    """`password: |-` once matched as `key: value` with the value `|-`, so the block below
    it stayed in the bundle."""
    r = red()
    first, second = rand(18), rand(26)
    out = r.text(f"svc:\n  {key}: {indicator}\n    {first}\n    {second}\n  port: 5432\n", "stdout")
    assert first not in out and second not in out, out
    assert f"{key}: {indicator}" in out and "port: 5432" in out


def test_config_syntaxes_beside_a_secret_name():
    r = red()
    vals = [rand(22) for _ in range(6)]
    text = (f"[db]\npassword = {vals[0]}\n"                       # INI
            f'api_key = "{vals[1]}"\n'                            # TOML
            f"export CLIENT_SECRET={vals[2]}\n"                   # .env
            f'{{"access_token": "{vals[3]}"}}\n'                  # JSON
            f"python app.py --db-password {vals[4]}\n"            # command line
            f"client = Client(token='{vals[5]}', retries=3)\n")   # call keyword in a source line
    out = r.text(text, "files/mixed")
    for v in vals:
        assert v not in out
    assert "retries=3" in out


# -- formats ----------------------------------------------------------------------------------

FORMATS = {
    "stripe-key": "whsec_" + rand(32),
    "twilio-key": "SK" + rand(32, HEX),
    "mailgun-key": "key-" + rand(32, HEX),
    "shopify-token": "shpat_" + rand(32, HEX),
    "databricks-token": "dapi" + rand(32, HEX),
    "digitalocean-token": "dop_v1_" + rand(64, HEX),
    "doppler-token": "dp.pt." + rand(43),
    "postman-token": "PMAK-" + rand(24, HEX) + "-" + rand(34, HEX),
    "pulumi-token": "pul-" + rand(40, HEX),
    "grafana-token": "glsa_" + rand(32) + "_" + rand(8, HEX),
    "vault-token": "hvs." + rand(90),
    "linear-token": "lin_api_" + rand(40),
    "newrelic-key": "NRAK-" + rand(27, string.ascii_uppercase + string.digits),
    "age-secret-key": "AGE-SECRET-KEY-1" + "".join(RNG.choice("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L") for _ in range(58)),
    "alibaba-key": "LTAI" + rand(20),
    "prefect-token": "pnu_" + rand(36),
    "rubygems-token": "rubygems_" + rand(48, HEX),
    "sendinblue-key": "xkeysib-" + rand(64, HEX) + "-" + rand(16),
    "google-oauth-token": "GOCSPX-" + rand(28),
    "azure-client-secret": rand(3) + "8Q~" + rand(34),
    "telegram-bot-token": rand(9, string.digits) + ":AA" + rand(33),
    "sentry-token": "sntryu_" + rand(64, HEX),
    "planetscale-token": "pscale_tkn_" + rand(43),
}


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_vendor_formats(kind):
    r = red()
    token = FORMATS[kind]
    out = r.text(f"client = connect({token!r})  # {token}", "traceback")
    assert out == f"client = connect('<redacted:{kind}>')  # <redacted:{kind}>", out


# -- cut text ---------------------------------------------------------------------------------

def _pem_body(lines=5):
    return "\n".join(rand(64, ALNUM + "+/") for _ in range(lines))


def test_a_key_whose_begin_line_was_cut_off():
    r = red()
    body = _pem_body()
    tail = "[... earlier output cut by reprex ...]\n" + body + "\n-----END " + "PRIVATE KEY-----\nlog line 1\n"
    out = r.text_after_cut(tail, "stdout")
    assert all(line not in out for line in body.splitlines())
    assert out.endswith("log line 1\n")
    # no END line either: the base64 lines at the start of a cut text still go
    out = r.text_after_cut("[... earlier output cut by reprex ...]\n" + body + "\nnormal log\n", "stdout")
    assert all(line not in out for line in body.splitlines()) and out.endswith("normal log\n")
    # escaped line breaks, as in a repr
    body2 = "\\n".join(rand(64) for _ in range(3))
    out = r.text("key_tail = '" + body2 + "\\n-----END RSA " + "PRIVATE KEY-----'", "locals")
    assert all(part not in out for part in body2.split("\\n"))


def test_outcome_text_scrubs_before_cutting():
    r = red()
    token = "gh" + "p_" + rand(36)
    stderr = "x" * 7990 + "\n" + "using " + token + "\n" + "y" * 40 + "\n"
    out = Outcome(outcome="exit", exit_code=3, output_tail=[["stderr", stderr]])
    text = outcome_text(out, scrub=lambda t: r.text(t, "traceback"))
    assert token not in text and token[-12:] not in text and "<redacted:github-token>" in text


# -- secret files -----------------------------------------------------------------------------

def test_secret_files_by_name_and_content(tmp_path):
    files = {
        "secrets/db_password.txt": rand(20) + "\n",
        "key.txt": rand(40) + "\n",
        "prod.txt": rand(40) + "\n",
        "db_password": "hunter2\n",
        "conf/token.json": '{"t": 1}',
        "sa.json": '{"type": "service_account", "private_key": "x"}',
        "run_id.txt": rand(32, HEX) + "\n",
        "data.csv": "a,b\n1,2\n",
        "VERSION": "1.20.3-beta\n",
        "notes.txt": "just some words here\n",
        "tokenizer.json": '{"vocab": {}}',
        "app_secrets.py": "X = 1\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    reasons = {rel: secret_file_reason(rel, tmp_path / rel, len(t)) for rel, t in files.items()}
    for rel in ("secrets/db_password.txt", "key.txt", "prod.txt", "db_password", "conf/token.json", "sa.json", "run_id.txt"):
        assert reasons[rel], rel
    for rel in ("data.csv", "VERSION", "notes.txt", "tokenizer.json", "app_secrets.py"):
        assert reasons[rel] is None, rel
    got = collect_inputs(tmp_path, script=None, opened=[str(tmp_path / r) for r in files])
    skipped = {s["path"]: s["reason"] for s in got.skipped}
    assert "files/key.txt" not in got.files and "name says" in skipped["key.txt"]
    assert "files/prod.txt" not in got.files and "one token-like line" in skipped["prod.txt"]
    assert "secrets directory" in skipped["secrets/db_password.txt"]
    assert "files/data.csv" in got.files and "files/app_secrets.py" in got.files
    # --include still wins
    forced = collect_inputs(tmp_path, script=None, opened=[str(tmp_path / "key.txt")], include=["key.txt"])
    assert "files/key.txt" in forced.files


# -- one rule for names -----------------------------------------------------------------------

def test_one_rule_for_secret_names():
    from reprex.probes import envvars

    for name in ("HF_TOKEN", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "STRIPE_API_KEY", "SESSION_COOKIE", "RAY_AUTH_MODE",
                 "TOKENIZERS_PARALLELISM", "SORT_KEY", "CUDA_VISIBLE_DEVICES", "PWD", "GITHUB_TOKEN", "MY_PRIVATE_THING"):
        assert envvars.looks_secret(name) == looks_secret_name(name, strict=False), name
    assert looks_secret_name("password") and looks_secret_name(b"x-api-key") and looks_secret_name("SecretStr")
    assert not looks_secret_name("pad_token") and not looks_secret_name("max_tokens") and not looks_secret_name("sort_key")


def test_findings_are_reported_not_counted():
    r = red()
    token = "gh" + "p_" + rand(36)
    assert r.finds(f"x {token}") == ["github-token"]
    assert r.finds(base64.b64encode(token.encode())) == ["github-token"]
    assert r.finds("nothing to see") == [] and r.report() == []


def test_env_probe_values_follow_the_same_rule(tmp_path: Path):
    from reprex.probes import envvars

    env = {"RAY_AUTH_MODE": "disabled", "RAY_REDIS_PASSWORD": rand(12), "HF_HUB_TOKEN": rand(20), "OMP_NUM_THREADS": "2"}
    values = envvars.filter_environ(env)["values"]
    assert values == {"RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "2"}


def test_real_pydantic_secret_fields_never_reach_a_bundle(tmp_path):
    """The issue's first leak, with the real library: a SecretStr repr passes every text
    check, its pickle holds the password."""
    pytest.importorskip("pydantic")
    import sys
    import textwrap
    import zipfile

    from reprex.capture.pipeline import CaptureOptions, capture_command

    (tmp_path / "app.py").write_text(textwrap.dedent("""\
        import random
        from pydantic import BaseModel, SecretStr

        class Settings(BaseModel):
            host: str
            password: SecretStr

        def connect(settings, retries=3):
            raise ConnectionError("authentication failed for " + settings.host)

        rng = random.Random(99)
        connect(Settings(host="db.internal", password="".join(rng.choice("abcdefXYZ0123456789") for _ in range(20))))
    """))
    rng = random.Random(99)
    secret = "".join(rng.choice("abcdefXYZ0123456789") for _ in range(20))
    result = capture_command([sys.executable, "app.py"], CaptureOptions(tee=False), cwd=str(tmp_path),
                             env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    path = result.bundle.write(tmp_path / "app.reprex.zip")
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            data = zf.read(name)
            assert secret.encode() not in data, name
            for run in __import__("re").findall(rb"[A-Za-z0-9+/=]{40,}", data):
                try:
                    assert secret.encode() not in base64.b64decode(run + b"=" * (-len(run) % 4)), name
                except ValueError:
                    pass
    dropped = {(d["argument"], d["reason"]) for d in result.bundle.manifest["pickles_dropped"]}
    assert ("settings", "holds a SecretStr (a type that carries secrets)") in dropped


def test_more_shapes_beside_a_secret_name():
    r = red()
    vals = [rand(16) for _ in range(7)]
    cases = [
        (f'password = """\n{vals[0]}\n"""\n', "password"),                        # TOML multi-line
        (f"token = '''{vals[1]}'''\n", "config-secret"),                          # TOML literal
        (f'{{\n  "password":\n    "{vals[2]}",\n  "n": 1\n}}', "password"),        # pretty JSON, next line
        (f"mysql -p{vals[3]} -u root prod", "password"),                          # glued flag
        (f"ENV API_TOKEN {vals[4]}\n", "config-secret"),                          # Dockerfile
        (f'keyring.set_password("svc", "me", "{vals[5]}")', "password"),          # call shape, 3 args
        (f"ARG DB_PASSWORD={vals[6]}\n", "password"),
    ]
    for text, kind in cases:
        out = r.text(text, "files/x")
        assert not any(v in out for v in vals) and f"<redacted:{kind}>" in out, out
    for text in ("ENV PATH /usr/bin\n", "ENV HF_TOKEN $HF_TOKEN\n", "mysql -u root -p\n", '{"n":\n  1}'):
        assert r.text(text, "files/x") == text


def test_high_entropy_fallback_only_beside_a_secret_name():
    r = red()
    letters = "qxzvbnmkwrtplhgfdsjc"  # random-looking lowercase: no digit, no case to tell it by
    assert r.text(f"token: {letters}", "x") == "token: <redacted:config-secret>"
    assert r.text(f"name: {letters}", "x") == f"name: {letters}"  # no secret name beside it: kept
    for words in ("internationalization_configuration", "unexpected_end_of_input_stream"):
        assert r.text(f"token: {words}", "x") == f"token: {words}"


def test_argument_items_scalars_fast_containers_walked():
    from reprex.capture.scrub import scrub_pickle as _scrub_pickles

    r = red()
    token = "gh" + "p_" + rand(36)

    def item(value):
        return {"type": type(value).__module__ + "." + type(value).__qualname__, "repr": repr(value),
                "pickle": base64.b64encode(pickle.dumps(value, protocol=4)).decode()}

    kept = item("data/train.csv")
    assert _scrub_pickles(kept, r) is None and "pickle" in kept
    leaked = item("using " + token)
    assert _scrub_pickles(leaked, r) == "its repr held a secret" and "pickle" not in leaked
    assert token not in leaked["repr"]
    hidden = item(_Hidden("db", rand(16)))
    assert "hidden field" in _scrub_pickles(hidden, r) and "pickle" not in hidden
    bad = {"type": "builtins.str", "repr": "'x'", "pickle": "@@not base64@@"}
    assert _scrub_pickles(bad, r) == "not valid base64" and "pickle" not in bad


@pytest.mark.parametrize("url, secret", [
    ("postgresql://app:Tq3/Zx9+Lm2Wv8Rk@db/prod", "Tq3/Zx9+Lm2Wv8Rk"),
    ("https://user:tok/en@host:8443/a/b.zip", "tok/en"),
    ("s3://AKIDEXAMPLE:wJalr/XUtnF+EMI@bucket/key", "wJalr/XUtnF+EMI"),
    ("https://ghp_tokenonly123@github.com/o/r.zip", "ghp_tokenonly123"),
])
def test_recorder_strips_url_credentials_even_with_slashes(url, secret):
    """The recorder's own pass (runtime_env summaries): a password holding `/` used to survive it."""
    from reprex._inject.sitecustomize import _strip_deep

    out = _strip_deep({"working_dir": url, "py_modules": [url]})
    assert secret not in json.dumps(out)
    assert out["working_dir"].endswith(url.rsplit("@", 1)[1])


def test_recorder_url_strip_leaves_paths_with_colons_and_at_signs_alone():
    from reprex._inject.sitecustomize import _strip_deep

    for text in ("https://host/path:x@y", "file:///tmp/a@b", "https://example.org/~u/a:b"):
        assert _strip_deep(text) == text


def test_key_value_text_inside_python_strings_is_still_redacted():
    """The Python-source exemption (an unquoted name beside a secret-looking key is code) holds
    for assignment statements only: `session=VALUE` inside a string literal is data."""
    from reprex.redact import Redactor

    red = Redactor({})
    value = "nXYSnL5yfM90F2Us" + "Qw8ZkR2tPbV7aLc3"
    for line in (f'print("Cookie: session={value}", file=sys.stderr)', f"headers = 'token={value}'",
                 f"x = 1; password = {value}"):
        assert value not in red.text(line, "files/app.py"), line
    assert red.text("    PASS = ignore\n", "files/checker.py") == "    PASS = ignore\n"
