"""The redact package's seams: what other modules may rely on, and the rule order
that decides which kind a secret is reported as."""

from __future__ import annotations

import json
import subprocess
import sys

from reprex.redact import Redactor, looks_secret_name, name_class, value_is_secret


def test_import_is_stdlib_only():
    # DESIGN.md: the redactor runs wherever reprex runs; it may not pull a dependency in.
    code = (
        "import sys, json; before = set(sys.modules); import reprex.redact; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out)
    foreign = [
        m for m in loaded
        if m.split(".")[0] not in sys.stdlib_module_names and m != "reprex" and not m.startswith("reprex.redact")
    ]
    assert foreign == []
    assert "reprex.redact.rules" in loaded


def test_public_name_rule():
    assert looks_secret_name("HF_TOKEN", strict=False) and looks_secret_name(b"db_password")
    assert not looks_secret_name("pad_token") and not looks_secret_name("SSH_AUTH_SOCK", strict=False)
    assert name_class("Authorization") == "authorization" and name_class("api_key") == "strong"
    assert name_class("key") is None and name_class(42) is None  # type: ignore[arg-type]


def test_public_value_rule():
    assert not value_is_secret("password", "password", "get_password()", False)  # code, not a value
    assert not value_is_secret("token", "weak", "hello", True)  # tokenizer output
    assert value_is_secret("password", "password", "hunter2!", True)
    assert value_is_secret("client_secret", "strong", "9fQ2xLm4", True)


def test_rule_order_decides_the_kind():
    token = "ghp_" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7d"
    red = Redactor({"DEPLOY_TOKEN": token}, hostname="buildhost-7", username="alice", home="/home/alice")
    # literal values (step 2) come before token formats (step 3)
    assert red.text(f"clone with {token}", "a") == "clone with <redacted:env-secret>"
    # home (before user name): /home/alice/x is <home>/x, not /home/<user>/x
    assert red.text("/home/alice/x by alice on buildhost-7", "b") == "<home>/x by <user> on <hostname>"
    # PEM blocks (step 1) swallow what is inside them, token-shaped or not
    pem = "-----BEGIN RSA PRIVATE KEY-----\n" + token + "\n-----END RSA PRIVATE KEY-----"
    assert red.text(pem, "c") == "<redacted:pem-private-key>"
    assert [(r.kind, r.where) for r in red.report()] == [
        ("env-secret", "a"), ("home", "b"), ("hostname", "b"), ("username", "b"), ("pem-private-key", "c"),
    ]
