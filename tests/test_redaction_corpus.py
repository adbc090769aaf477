"""Issue 10's leak corpus, end to end: 100+ secrets in 20+ formats planted the way real
code carries them (argument pickles whose repr hides them, base64 / Basic / UTF-16 /
percent-encoded, beside a name in header tuples, call keywords, YAML block scalars, INI,
JSON, argv and the environment, URLs with `/` and `+` in the password, a key cut by the
output tail, whole secret files), one real `capture_command`, then every byte of the
bundle searched: the zip, each entry, every base64 run decoded, UTF-16/32 views, and the
strings inside every argument pickle (walked, never loaded). The tally is printed.

Values the redactor can know only from context are made at run time inside the program
(a seeded RNG the test replays), so they never appear as literals in its source.
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
import string
import sys
import textwrap
import urllib.parse
import zipfile
from pathlib import Path

import pytest

from reprex.capture.pickles import walk
from reprex.capture.pipeline import CaptureOptions, capture_command

PY = sys.executable
ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
_rng = random.Random(1010_2026)


def _r(n, alphabet=ALNUM):
    while True:
        s = "".join(_rng.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in s) or not any(c.isdigit() for c in alphabet):
            return s


# -- formats: two of each, glued from pieces so this file holds no scanner-shaped literal ----
FORMATS = {
    "github-classic": lambda: "gh" + "p_" + _r(36),
    "github-fine": lambda: "github" + "_pat_" + _r(22) + "_" + _r(59),
    "gitlab": lambda: "gl" + "pat-" + _r(20),
    "aws-access-key": lambda: "AK" + "IA" + _r(16, UPPER_DIGITS),
    "slack": lambda: "xo" + "xb-" + _r(11, string.digits) + "-" + _r(12, string.digits) + "-" + _r(24),
    "openai": lambda: "s" + "k-proj-" + _r(48),
    "anthropic": lambda: "s" + "k-ant-api03-" + _r(60),
    "huggingface": lambda: "h" + "f_" + _r(34, string.ascii_letters),
    "google-api": lambda: "AI" + "za" + _r(35),
    "stripe-live": lambda: "s" + "k_live_" + _r(24),
    "stripe-webhook": lambda: "wh" + "sec_" + _r(32),
    "npm": lambda: "n" + "pm_" + _r(36),
    "pypi": lambda: "py" + "pi-AgEIcHlwaS5vcmc" + _r(60),
    "sendgrid": lambda: "S" + "G." + _r(22) + "." + _r(43),
    "twilio": lambda: "S" + "K" + _r(32, HEX),
    "shopify": lambda: "sh" + "pat_" + _r(32, HEX),
    "databricks": lambda: "da" + "pi" + _r(32, HEX),
    "digitalocean": lambda: "do" + "p_v1_" + _r(64, HEX),
    "vault": lambda: "hv" + "s." + _r(90),
    "linear": lambda: "lin" + "_api_" + _r(40),
    "doppler": lambda: "dp" + ".pt." + _r(43),
    "postman": lambda: "PM" + "AK-" + _r(24, HEX) + "-" + _r(34, HEX),
    "telegram": lambda: _r(9, string.digits) + ":" + "AA" + _r(33),
    "azure-client-secret": lambda: _r(3) + "8Q" + "~" + _r(34),
    "jwt": lambda: "ey" + "J" + base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")[3:]
                   + "." + base64.urlsafe_b64encode(b'{"sub":"42","n":"' + _r(12).encode() + b'"}').decode().rstrip("=")
                   + "." + _r(43),
}
TOKENS = {f"{fmt}#{i}": make() for fmt, make in FORMATS.items() for i in (1, 2)}
_tok = list(TOKENS.items())
# literal carriers for the format tokens (the source keeps them all as well)
LIT_CARRIERS = ("stdout", "stderr", "message", "local")
PLACED = {name: LIT_CARRIERS[i % len(LIT_CARRIERS)] for i, (name, _) in enumerate(_tok)}

# -- context-only secrets: written into files / env / argv by the test ------------------------
CTX = {f"{carrier}#{i}": _r(22) for carrier in ("yaml-next-line", "yaml-block", "ini", "json", "env", "argv",
                                                "secret-file") for i in (1, 2, 3, 4)}
CTX["auth-tuple#1"] = "Hunter2-" + _r(10)
CTX["auth-tuple#2"] = "Hunter3-" + _r(10)
CTX["call-keyword#1"] = _r(18)
CTX["call-keyword#2"] = _r(18)
PEM_LINES = [_r(64, ALNUM + "+/") for _ in range(80)]

# -- made at run time inside the program: the test replays the same RNG ------------------------
RUNTIME_SEED = 4242
RUNTIME_N = 48


def runtime_secret(i):
    """The program makes each on demand, so no variable of its frames holds it bare."""
    rng = random.Random(RUNTIME_SEED * 1000 + i)
    return "".join(rng.choice(ALNUM) for _ in range(24))


RT = [runtime_secret(i) for i in range(RUNTIME_N)]
RUNTIME = {
    **{f"pickle-hidden-field#{i}": RT[i] for i in range(4)},
    **{f"pickle-masked-repr#{i}": RT[4 + i] for i in range(4)},
    **{f"pickle-secret-type#{i}": RT[8 + i] for i in range(4)},
    **{f"header-tuple#{i}": RT[12 + i] for i in range(4)},
    **{f"basic-header#{i}": RT[16 + i] for i in range(4)},
    **{f"url-slash-plus#{i}": RT[20 + i][:8] + "/" + RT[20 + i][8:16] + "+" + RT[20 + i][16:] for i in range(4)},
    **{f"percent-dsn#{i}": RT[24 + i] for i in range(4)},
    **{f"base64-bytes#{i}": "s" + "k-proj-" + RT[28 + i] + RT[29 + i] for i in range(0, 4, 2)},
    **{f"utf16-bytes#{i}": "AK" + "IA" + RT[32 + i][:16].upper() for i in range(4)},
    **{f"pickle-dict#{i}": RT[36 + i] for i in range(4)},
}

ALL = {**TOKENS, **CTX, **RUNTIME, **{f"pem-line#{i}": line for i, line in enumerate(PEM_LINES)}}


def _app_source() -> str:
    by = {c: [v for n, v in _tok if PLACED[n] == c] for c in LIT_CARRIERS}
    return textwrap.dedent(f"""\
        import base64, dataclasses, json, random, sys, urllib.parse

        def rt(i):
            rng = random.Random({RUNTIME_SEED} * 1000 + i)
            return "".join(rng.choice({ALNUM!r}) for _ in range(24))

        for name in ("config.yaml", "settings.ini", "service.json", "secrets/db_password.txt", "secrets/api.txt",
                     "key.txt", "token", "prod.txt"):
            open(name).read()

        @dataclasses.dataclass
        class Config:
            host: str
            blob: str = dataclasses.field(repr=False, default="")

        class Masked:
            def __init__(self, conn):
                self.conn = conn
            def __repr__(self):
                return "Masked(conn='***')"

        class SecretValue:
            def __init__(self, v):
                self._v = v
            def __repr__(self):
                return "SecretValue('**********')"

        class Plain:
            def __init__(self):
                self.rows = [1, 2, 3]
            def __repr__(self):
                return f"Plain(rows={{self.rows}})"

        for line in {by["stdout"]!r}:
            print("token in use:", line, flush=True)
        for i in range(4):
            dsn = "postgresql://app:" + rt(24 + i) + "@db.internal/prod"
            print("redirect=" + urllib.parse.quote(dsn, safe=""), flush=True)
        def emit_key():
            print("-----BEGIN " + "PRIVATE KEY-----", flush=True)
            for line in {PEM_LINES!r}:
                print(line, flush=True)
            print("-----END " + "PRIVATE KEY-----", flush=True)

        emit_key()
        # The recorder keeps 64 KiB + a 16 KiB margin raw and cuts into the key there; the
        # scrubbed text is then cut to 64 KiB (reprex/tail.py TAIL_MARGIN)
        sys.stdout.write(("log line " + "z" * 70 + "\\n") * 965)
        sys.stdout.flush()
        for line in {by["stderr"]!r}:  # (after the key: stderr may arrive out of step with stdout)
            print("warning: rejected", line, file=sys.stderr, flush=True)

        def get(url, auth=None, timeout=3):
            return None

        get("https://api.example.com/a", auth=("admin", {CTX["auth-tuple#1"]!r}))
        session_auth = ("deploy", {CTX["auth-tuple#2"]!r})

        def connect(cfgs, masked, vaulted, headers, b64_blobs, wide, basic, records, plain, retries=3):
            literals = {by["local"]!r}
            client = dict(token={CTX["call-keyword#1"]!r}, retries=3)
            client2 = dict(api_key={CTX["call-keyword#2"]!r})
            urls = ["postgresql://app:" + rt(20 + i)[:8] + "/" + rt(20 + i)[8:16] + "+" + rt(20 + i)[16:] + "@db/prod"
                    for i in range(4)]
            raise ConnectionError("could not connect to " + urls[0] + " or " + urls[1] + "; also tried "
                                  + " ".join(urls[2:]) + " with " + " ".join({by["message"]!r}))

        connect(
            [Config("db.internal", rt(i)) for i in range(4)],
            [Masked(rt(4 + i)) for i in range(4)],
            [SecretValue(rt(8 + i)) for i in range(4)],
            [(b"x-api-key", rt(12).encode()), ("X-Auth-Token", rt(13)), [b"authorization", b"Bearer " + rt(14).encode()],
             ("X-Vault-Token", rt(15))],
            [base64.b64encode(("s" + "k-proj-" + rt(28 + i) + rt(29 + i)).encode()) for i in range(0, 4, 2)],
            [("AK" + "IA" + rt(32 + i)[:16].upper()).encode("utf-16-le") for i in range(4)],
            ["Basic " + base64.b64encode(("admin:" + rt(16 + i)).encode()).decode() for i in range(4)],
            [{{"password": rt(36 + i), "user": "svc"}} for i in range(4)],
            Plain(),
        )
    """)


@pytest.fixture(scope="module")
def corpus_bundle(tmp_path_factory):
    work = tmp_path_factory.mktemp("leakcorpus")
    y = CTX
    (work / "config.yaml").write_text(
        "database:\n  host: db.internal\n"
        f"  password:\n    {y['yaml-next-line#1']}\n"
        f"  admin_password:\n      {y['yaml-next-line#2']}\n"
        f"api:\n  token: >-\n    {y['yaml-block#1']}\n  retries: 3\n"
        f"  client_secret: |\n    {y['yaml-block#2']}\n    {y['yaml-block#3']}\n"
        f"services:\n  - name: cache\n    api_key:\n      {y['yaml-next-line#3']}\n"
        f"  - name: queue\n    secret_token: >\n      {y['yaml-block#4']}\n"
        f"legacy_passwd:\n  {y['yaml-next-line#4']}\n")
    (work / "settings.ini").write_text("[auth]\n" + "".join(
        f"{k} = {y[f'ini#{i}']}\n" for i, k in enumerate(("client_secret", "password", "signing_key", "access_token"), 1)))
    (work / "service.json").write_text(json.dumps({
        "name": "svc", "api_key": y["json#1"], "auth": {"password": y["json#2"]}, "refresh_token": y["json#3"],
        "headers": {"X-Api-Key": y["json#4"]}}, indent=2))
    (work / "secrets").mkdir()
    (work / "secrets" / "db_password.txt").write_text(y["secret-file#1"] + "\n")
    (work / "secrets" / "api.txt").write_text(y["secret-file#2"] + "\n")
    (work / "key.txt").write_text(y["secret-file#3"] + "\n")
    (work / "token").write_text(y["secret-file#4"] + "\n")
    (work / "prod.txt").write_text(_r(30) + "\n")
    (work / "app.py").write_text(_app_source())
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "OMP_NUM_THREADS": "2",
           "MYAPP_TOKEN": y["env#1"], "PAYMENTS_API_KEY": y["env#2"], "DB_PASSWORD": y["env#3"],
           "SESSION_SECRET": y["env#4"]}
    argv = [PY, "app.py", "--api-token", y["argv#1"], f"--db-password={y['argv#2']}", "--secret", y["argv#3"],
            "--client-secret", y["argv#4"]]
    result = capture_command(argv, CaptureOptions(tee=False, include=["*.yaml", "*.ini", "*.json"]),
                             cwd=str(work), env=env)
    path = result.bundle.write(work / "app.reprex.zip")
    return result, path


def _b64_runs(data: bytes):
    for m in re.finditer(rb"[A-Za-z0-9+/_=-]{16,}", data):
        run = m.group().rstrip(b"=")
        for dec in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                yield dec(run + b"=" * (-len(run) % 4))
            except Exception:
                pass


def _pickle_strings(data: bytes):
    """Strings inside every argument pickle a run.json carries (walked, never loaded)."""
    try:
        record = json.loads(data)
    except ValueError:
        return
    stack = [record]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("pickle"), str):
                _, values = walk(base64.b64decode(node["pickle"]))
                yield b"\n".join(v.encode("utf-8", "surrogatepass") if isinstance(v, str) else bytes(v) for v in values)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _haystacks(zip_path: Path):
    raw = zip_path.read_bytes()
    yield "zip bytes", raw
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        for info in zf.infolist():
            data = zf.read(info)
            yield info.filename, data
            if b"\x00" in data:  # UTF-16/32 text of either byte order, read as ASCII
                yield f"{info.filename} (UTF-16/32 view)", data.replace(b"\x00", b"")
            for decoded in _b64_runs(data):
                yield f"{info.filename} (base64)", decoded
            for strings in _pickle_strings(data):
                yield f"{info.filename} (pickle strings)", strings


def _forms(value: str) -> set[bytes]:
    raw = value.encode()
    forms = {raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw).rstrip(b"="),
             urllib.parse.quote(value, safe="").encode(), value.encode("utf-16-le"), value.encode("utf-16-be")}
    if len(value) >= 24:  # what a cut leaves of it
        forms |= {raw[:16], raw[-16:]}
    return {f for f in forms if len(f) >= 8}


def _format_of(name: str) -> str:
    return name.split("#")[0]


def test_leak_corpus_has_the_breadth_the_issue_asks_for():
    formats = {_format_of(n) for n in TOKENS}
    assert len(ALL) >= 100 and len(set(ALL.values())) == len(ALL)
    assert len(formats) >= 20


def test_no_planted_secret_reaches_any_byte_of_the_bundle(corpus_bundle, capsys):
    result, path = corpus_bundle
    hay = list(_haystacks(path))
    leaks = []
    for name, value in ALL.items():
        for form in _forms(value):
            if name == "jwt#1" or name == "jwt#2":
                if form == value.encode()[:16]:
                    continue  # a JWT's head is the public {"alg":...} header
            for where, data in hay:
                if form in data:
                    leaks.append((name, where))
                    break
    carriers = sorted({_format_of(n) for n in list(CTX) + list(RUNTIME)} | {"pem-cut-by-tail"} | set(LIT_CARRIERS))
    with capsys.disabled():  # the tally shows in every run, not only with -s
        print(f"\n[leak corpus] {len(ALL)} planted secrets, {len({_format_of(n) for n in TOKENS})} token formats, "
              f"{len(carriers)} carriers, {len(hay)} haystacks searched (zip, entries, base64, UTF-16/32, "
              f"pickles): {len({n for n, _ in leaks})} leaked")
    assert leaks == [], leaks


def test_the_corpus_exercises_what_it_claims(corpus_bundle):
    result, path = corpus_bundle
    b = result.bundle
    run = b.json("run.json")
    tail = "".join(t for _, t in run["output_tail"])
    # the raw tail really cut into the key (its orphan body was scrubbed as a cut fragment),
    # and the final cut after scrubbing left no part of the key
    assert run["output_tail"][0][1].startswith("[... earlier output cut")
    assert "BEGIN " + "PRIVATE" not in tail and "END " + "PRIVATE" not in tail
    # secret files are listed, not copied, with why
    skipped = {s["path"]: s["reason"] for s in b.manifest["files"]["skipped"]}
    for rel in ("secrets/db_password.txt", "secrets/api.txt", "key.txt", "token", "prod.txt"):
        assert rel in skipped and f"files/{rel}" not in b.files, rel
    # pickles that hide secrets are dropped and said so; a harmless one is kept
    frames = [f for f in run["exception"]["frames"] if f.get("function") == "connect"]
    args = frames[0]["arg_values"]
    for name in ("cfgs", "masked", "vaulted", "headers", "b64_blobs", "wide", "basic", "records"):
        assert "pickle" not in args[name] and args[name].get("pickle_dropped"), name
    assert "pickle" in args["plain"]
    dropped = {(d["argument"], d["reason"]) for d in b.manifest["pickles_dropped"]}
    assert ("vaulted", "holds a SecretValue (a type that carries secrets)") in dropped
    assert any(arg == "masked" and "hidden" in why for arg, why in dropped)
    # the signature message went through the URL parser too
    assert "<redacted:url-credentials>@db/prod" in b.manifest["expect"]["signature"]["message"]
    kinds = {r["kind"] for r in b.manifest["redactions"]}
    assert {"url-credentials", "stripe-key", "basic-auth", "cut-fragment", "config-secret", "password"} <= kinds
