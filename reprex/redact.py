"""Secret scrubbing, used by every writer before anything reaches a bundle.

Bundles are attached to public issues, so nothing secret may leave the machine.
A :class:`Redactor` scrubs strings, bytes, JSON-like objects and environment
mappings, and keeps a tally of what it replaced as ``(kind, where, count)``
entries (never the values) for the manifest's ``redactions`` list;
:meth:`Redactor.finds` asks the same question without scrubbing (argument pickles
are judged with it, see ``reprex.capture.pickles``).

What it catches, in this order:

1. PEM private key blocks (the whole block), and the base64 lines above an END
   line whose BEGIN was cut off;
2. literal values of environment variables whose *names* look secret
   (``HF_TOKEN``, ``DB_PASSWORD``, ``AWS_SECRET_ACCESS_KEY`` ...), passwords
   found in URL-valued variables, and ``extra_secrets``; each also in its
   URL-encoded, base64 and backslash-escaped forms (and UTF-16LE in bytes);
3. token formats with a fixed prefix: GitHub, GitLab, AWS access key ids, Slack,
   Stripe (keys and ``whsec_``), ``sk-`` keys (OpenAI, Anthropic ...), SendGrid,
   HuggingFace, Google, PyPI, npm, JWTs, and every prefixed rule of gitleaks'
   default set (listed in ``_GITLEAKS_CHECKED``);
4. ``Authorization`` header values in any syntax, then bare ``Bearer`` tokens;
5. ``user:password@`` (and token-only userinfo) in URLs of any scheme; the
   password may hold any character but ``@`` and white space (``Tq3/Zx9+Lm``);
6. secret query parameters (``access_token=``, ``sig=``, ``X-Amz-Signature=`` ...);
7. values beside a name that looks secret: ``key = value`` in any config-ish
   syntax (yaml, ini, toml, .env, JSON, dict and kwargs reprs), pairs such as
   ``("X-Api-Key", "...")`` and header lists, credential call shapes
   (``auth=("user", "pw")``, ``HTTPBasicAuth("u", "pw")``), YAML values on the
   next line or in block scalars; AWS secret keys;
8. ``--password VALUE`` style flags and ``.netrc`` ``password`` entries;
9. encoded secrets: base64/base64url runs (and ``Basic`` credentials), percent-
   encoded runs and UTF-16/UTF-32 text (raw in bytes, escaped in reprs), each
   decoded and scrubbed with all of the above, two levels deep;
10. this machine's home directory, hostname and user name (``<home>``,
   ``<hostname>``, ``<user>``; home first, so ``/home/alice/x`` -> ``<home>/x``).

One rule says whether a name looks secret (:func:`looks_secret_name`): variable,
key, header, flag, attribute, class and file names all go through it.

Why not detect-secrets: measured on the same corpora (benchmarks/redact_formats.py)
it caught 102 of 130 planted secrets (this module: 130), flagged 363 of 414 ordinary
values (hashes, UUIDs, base64 images: its entropy plugins) against 0, and took
13 s per MB against 0.2 s.

Standard library only; patterns are compiled once, on first use, so importing
this module is cheap. Case-insensitive patterns run against a lower-cased copy
of the text (same length, same offsets), which keeps the regex engine on its
fast literal-prefix paths. ``Redactor.text`` is idempotent: placeholders are
never matched or counted again.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping

__all__ = [
    "REDACTED",
    "HOSTNAME_PLACEHOLDER",
    "USER_PLACEHOLDER",
    "HOME_PLACEHOLDER",
    "KINDS",
    "looks_secret_name",
    "name_class",
    "Redaction",
    "Redactor",
]

REDACTED = "<redacted:{kind}>"
HOSTNAME_PLACEHOLDER = "<hostname>"
USER_PLACEHOLDER = "<user>"
HOME_PLACEHOLDER = "<home>"

#: Every kind a Redactor can report.
KINDS = (
    "api-key",  # sk-... (OpenAI, Anthropic, ...), SendGrid SG.x.y
    "authorization",  # Authorization header values other than Bearer
    "aws-access-key",  # AKIA/ASIA... key ids
    "aws-secret-key",  # next to an aws_secret_access_key-style name
    "bearer",  # Bearer tokens (header or bare)
    "config-secret",  # key = value pairs / dict fields / flags whose name looks secret
    "env-secret",  # literal values of secret-looking environment variables
    "extra-secret",  # literal values passed as extra_secrets
    "github-token",
    "gitlab-token",
    "google-api-key",
    "google-oauth-token",
    "home",
    "hostname",
    "huggingface-token",
    "jwt",
    "npm-token",
    "password",  # password = ..., .netrc password, {"password": ...}, --password x
    "pem-private-key",
    "pypi-token",
    "query-secret",  # ?access_token=, &sig=, X-Amz-Signature= ...
    "slack-token",
    "stripe-key",
    "url-credentials",
    "username",
    "basic-auth",  # user:password pairs found by decoding (Basic headers, base64 blobs)
    "cut-fragment",  # base64 lines left at the start of a cut text (a key whose BEGIN line was cut)
    # vendor formats (gitleaks' default rules with a fixed prefix)
    "twilio-key", "mailgun-key", "shopify-token", "square-token", "databricks-token",
    "digitalocean-token", "doppler-token", "dynatrace-token", "atlassian-token", "postman-token",
    "pulumi-token", "grafana-token", "vault-token", "terraform-token", "linear-token",
    "sentry-token", "newrelic-key", "age-secret-key", "twitter-token", "alibaba-key",
    "facebook-token", "planetscale-token", "prefect-token", "readme-token", "rubygems-token",
    "sendinblue-key", "duffel-token", "easypost-token", "flutterwave-key", "frameio-token",
    "flyio-token", "clojars-token", "cloudflare-key", "nuget-key", "artifactory-key",
    "azure-client-secret", "telegram-bot-token",
)


def _ph(kind: str) -> str:
    return REDACTED.format(kind=kind)


_PLACEHOLDER_SRC = r"<redacted:[a-z0-9-]+>|<home>|<user>|<hostname>"


@dataclass(frozen=True)
class Redaction:
    """One entry of the manifest's ``redactions`` list: never the value."""

    kind: str
    where: str
    count: int

    def as_dict(self) -> dict:
        return {"kind": self.kind, "where": self.where, "count": self.count}


# --------------------------------------------------------------------------
# Names that look secret
# --------------------------------------------------------------------------

_PASSWORD_WORDS = frozenset(
    {"password", "passwd", "passphrase", "pass", "pwd", "pw", "passwords", "passcode"}
)
_STRONG_WORDS = frozenset(
    {
        "secret", "secrets", "credential", "credentials", "creds", "cred",
        "apikey", "apikeys", "privatekey", "accesskey", "secretkey", "clientsecret",
        "authtoken", "accesstoken", "refreshtoken", "apitoken", "idtoken",
        "dsn", "salt", "jwt", "bearer", "cookie", "cookies", "connstr",
        "connectionstring", "sessionid", "sessiontoken", "sessionkey", "webhook",
        "signingkey", "encryptionkey", "masterkey", "licensekey", "privatetoken",
    }
)
# The last word of a name that says "this is about a secret, not the secret".
_TRAILING_NOT_SECRET = frozenset(
    {
        "file", "files", "filename", "path", "paths", "dir", "directory", "sock",
        "socket", "home", "url", "uri", "urls", "endpoint", "host", "hostname",
        "port", "server", "domain", "region", "timeout", "ttl", "expiry",
        "expires", "expiration", "length", "len", "size", "count", "max", "min",
        "limit", "enabled", "enable", "disabled", "disable", "required", "type",
        "kind", "mode", "name", "names", "prefix", "suffix", "format", "algorithm",
        "alg", "version", "policy", "lifetime", "age", "duration", "interval",
        "backend", "engine", "class", "cls", "provider", "method", "scheme",
        "source", "location", "header", "field", "env", "var", "variable",
        "user", "username", "login", "email", "helper", "command", "cmd",
        "manager", "store", "level", "strategy", "style", "hint", "label",
        "error", "exception", "errors",
    }
)
# Words next to "token" that mean the NLP kind of token (pad_token, max_tokens ...).
_TOKEN_CONTEXT = frozenset(
    {
        "pad", "eos", "bos", "unk", "sep", "cls", "mask", "special", "added",
        "num", "n", "start", "end", "usage", "total", "prompt", "completion",
        "input", "output", "per", "budget", "vocab", "decoder", "encoder",
        "position", "index", "idx", "embedding", "embeddings", "logits", "prob",
        "probs", "chunk", "window", "context", "stop", "split", "tokens",
        "tokenizer", "image", "audio", "video", "text", "vision", "boi", "eoi",
        "fim", "think", "tool", "pred", "predicted", "generated", "new", "first",
        "last", "next", "unknown", "separator", "padding", "invalid", "unexpected",
    }
)
# Qualifiers that make "key" a secret in text and dict keys (api_key, secret_key ...).
_KEY_QUALIFIERS = frozenset(
    {
        "api", "access", "secret", "private", "auth", "signing", "sign", "encryption",
        "encrypt", "master", "client", "account", "service", "subscription",
        "license", "licence", "session", "ssh", "deploy", "app", "application",
        "consumer", "admin", "write", "read", "x", "openai", "anthropic", "hf",
        "aws", "gcp", "google", "azure", "stripe", "sendgrid", "mailgun", "twilio",
        "wandb", "comet", "neptune", "kaggle", "pinecone", "cohere", "groq",
        "mistral", "together", "replicate", "datadog", "dd", "sentry", "github",
        "gitlab", "slack", "discord", "telegram", "bot", "storage", "shared",
        "jwt", "hmac", "cipher", "crypto", "aes", "rsa", "root", "ocp", "apim",
        "gemini", "langchain", "langsmith", "serp", "serper", "tavily", "voyage",
        "deepseek", "fireworks", "perplexity", "huggingface", "hub", "ngrok",
        "algolia", "mapbox", "firebase", "supabase", "anon", "role", "user",
    }
)
# ... and those that make "key" not a secret even in an environment variable name.
_KEY_NOT_SECRET_QUALIFIERS = frozenset(
    {
        "sort", "primary", "foreign", "partition", "cache", "public", "pub", "hot",
        "map", "lookup", "index", "group", "routing", "shard", "dedup",
        "idempotency", "object", "s3", "bucket", "row", "column", "hash", "kv",
        "registry", "layout", "dict", "state", "input", "output", "label", "metric",
    }
)
# Exact environment variable names that look secret but are not.
_ENV_NOT_SECRET = frozenset(
    {
        "PWD", "OLDPWD", "SSH_AUTH_SOCK", "GPG_AGENT_INFO", "SESSION_MANAGER",
        "DESKTOP_SESSION", "DBUS_SESSION_BUS_ADDRESS", "KEYTIMEOUT",
        "GNOME_KEYRING_CONTROL", "GNOME_KEYRING_PID", "TOKENIZERS_PARALLELISM",
        "SSH_ASKPASS", "GIT_ASKPASS", "SUDO_ASKPASS", "KRB5CCNAME", "XAUTHORITY",
        "PYTHONHASHSEED", "TERM_SESSION_ID", "SECURITYSESSIONID",
    }
)

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


#: Compiled on first use (a capture compiles only what its text needs; the CLI starts faster).
_rx = lru_cache(maxsize=None)(re.compile)


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD_SPLIT.split(name) if w]


@lru_cache(maxsize=4096)
def _name_class(name: str, strict: bool) -> str | None:
    """Classify a variable / key / header / flag name.

    Returns ``"password"``, ``"authorization"``, ``"strong"`` (clearly a
    secret), ``"weak"`` (token/session/auth-ish: in prose, values must look
    random) or None. ``strict`` is for keys found in text and dicts (fewer false
    positives: ``key`` needs a qualifier like ``api_key``); environment
    variable names use the broad rules (any ``*_KEY``, ``PRIVATE``, ``SESSION``).
    """
    words = _words(name)
    if not words:
        return None
    if not strict:
        up = name.upper()
        if up in _ENV_NOT_SECRET or up.startswith("XDG_"):
            return None
    if words[-1] in _TRAILING_NOT_SECRET and "webhook" not in words:
        return None
    for w in words:
        if w in _PASSWORD_WORDS or w.endswith(("password", "passwd")):
            return "password"
    for w in words:
        if w in ("authorization", "authorisation") or w.endswith("authorization"):
            return "authorization"
    for w in words:
        if w in _STRONG_WORDS or w.endswith(("secret", "apikey", "privatekey", "accesskey")):
            return "strong"
    ctx = any(w in _TOKEN_CONTEXT for w in words)
    for i, w in enumerate(words):
        if w == "token" or (w.endswith("token") and len(w) > 5):
            if ctx or any(x in ("id", "ids") for x in words[i + 1:]):
                continue
            return "strong" if (not strict or len(words) > 1 or w != "token") else "weak"
    for i, w in enumerate(words):
        if w in ("key", "keys"):
            if strict:
                if any(q in _KEY_QUALIFIERS for q in words[:i]):
                    return "strong"
            elif not (i > 0 and words[i - 1] in _KEY_NOT_SECRET_QUALIFIERS):
                return "strong"
    if "auth" in words or "oauth" in words:
        return "weak"
    if "session" in words and (not strict or any(w in ("id", "key", "token", "cookie") for w in words)):
        return "weak"
    if "signature" in words or "sig" in words:
        return "weak" if strict else "strong"
    if ("connection" in words and "string" in words) or ("conn" in words and (not strict or "str" in words)):
        return "strong"
    if not strict and "private" in words:
        return "strong"
    return None


def looks_secret_name(name: str | bytes, *, strict: bool = True) -> bool:
    """The one rule for "this name looks secret" (a variable, key, header, flag,
    attribute, class or file stem). ``strict=False`` is the broad rule for
    environment variable names (any ``*_KEY``, ``*_PRIVATE*``, ``*SESSION*``)."""
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).decode("utf-8", "replace")
    if not isinstance(name, str) or len(name) > 200:
        return False
    return _name_class(name, strict) is not None


def name_class(name: str, strict: bool = True) -> str | None:
    """``password`` / ``authorization`` / ``strong`` / ``weak`` / None (see :func:`looks_secret_name`)."""
    return _name_class(name, strict) if isinstance(name, str) and len(name) <= 200 else None


def _flag_class(name: str) -> str | None:
    """A command-line flag (``--token``): naming it is intent, so weak is strong."""
    cls = _name_class(name, True)
    return "strong" if cls == "weak" else cls


def _cls_kind(cls: str) -> str:
    return cls if cls in ("password", "authorization") else "config-secret"


# --------------------------------------------------------------------------
# Values that look secret
# --------------------------------------------------------------------------

_YAML_BLOCK_INDICATOR = re.compile(r"[|>][-+0-9]{0,3}")
_BORING_VALUES = frozenset(
    {
        "", "0", "1", "true", "false", "yes", "no", "on", "off", "none", "null",
        "nil", "undefined", "str", "string", "bytes", "int", "optional", "any",
        "secretstr", "secretbytes", "required", "redacted", "***", "xxx", "...",
        "empty", "unset", "n/a", "na", "<none>", "true,", "false,", "missing",
        "invalid", "expired", "str)", "str,", "str]",
    }
)
_BOOLISH = frozenset(
    {"", "0", "1", "true", "false", "yes", "no", "on", "off", "none", "null", "y", "n", "t", "f"}
)
_SHELL_REF = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(?::?-[^}]*)?\}?")
_CODE_REF_PREFIXES = (
    "${", "{", "%(", "%s", "<", "os.environ", "os.getenv", "getenv(", "env(",
    "process.env", "ENV[", "!", "&", "*",
)
_AUTH_SCHEMES = (
    "bearer", "token", "basic", "digest", "bot", "apikey", "api-key", "key",
    "sso-key", "negotiate", "ntlm", "hmac", "aws4-hmac-sha256", "otp", "jwt",
    "dpop", "mac", "gssapi", "oauth", "splunk", "ssws",
)
_ONLY_PLACEHOLDER = re.compile(
    r"\s*(?:(?:bearer|token|basic|bot)\s+)?<redacted:[a-z0-9-]+>\s*", re.I
)
_DOTTED_IDENT = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?")
_PLAIN_WORDS = re.compile(r"[a-z]+(?:[_.:-]+[a-z]+)*|[A-Z][a-z]+(?:[A-Z][a-z]+)*")
_TOKENISH = re.compile(r"[A-Za-z0-9_.~+/=-]+")
_PATH_EXT = re.compile(r"\.(?:json|pem|key|crt|cert|txt|ya?ml|cfg|ini|toml|sock|env|p12|pfx|gpg|asc|db)$", re.I)


def _unquote(val: str) -> tuple[str, str, str]:
    for q in ('"""', "'''", '\\"', "\\'", '"', "'"):
        if len(val) >= 2 * len(q) and val.startswith(q) and val.endswith(q):
            return q, val[len(q):-len(q)], q
    return "", val, ""


def _value_is_secret(key: str, cls: str, inner: str, quoted: bool) -> bool:
    """Is ``inner`` (the value next to a secret-looking ``key``) worth redacting?"""
    v = inner.strip()
    if "<redacted:" in v or v in ("<home>", "<user>", "<hostname>"):
        return False
    lv = v.lower()
    if lv in _BORING_VALUES:
        return False
    if not quoted:
        first = v.split(None, 1)[0]
        if first.startswith(_CODE_REF_PREFIXES) or "(" in first or "[" in first or _SHELL_REF.fullmatch(first):
            return False  # code / references: password=get_password(), token=os.environ[...], $VAR
        if _DOTTED_IDENT.fullmatch(first) or first.lower() == key.lower().lstrip("-"):
            return False  # code: password=self.password, password=password
    elif v.startswith(("${", "{{", "%(")) or set(v) <= {"*", "x", "X", "\u2022"}:
        return False  # templates and masks
    if cls == "password":
        if not quoted and "pwd" in _words(key) and v.startswith(("/", "~")):
            return False  # pwd: /some/dir is a working directory
        return True
    if cls == "authorization":
        return lv not in _AUTH_SCHEMES and len(v) >= 4
    if cls == "strong":
        return len(v) >= 4
    # weak (token / session / auth): prose like "unexpected token: expected ...",
    # tokenizer output like {"token": "hello"}: only random-looking values count.
    if len(v) < 8 or " " in v:
        return False
    if _PLAIN_WORDS.fullmatch(v):
        return _random_letters(lv)  # the high-entropy fallback: only here, where a name says secret
    return any(c.isdigit() for c in v) or len(v) >= 20 or (v != lv and v != v.upper())


def _random_letters(v: str) -> bool:
    """Letters drawn at random rather than words: long, high Shannon entropy and few
    vowels (uniform letters are ~19% vowels, English ~38%)."""
    import math

    letters = [c for c in v if c.isalpha()]
    if len(letters) < 16:
        return False
    counts: dict[str, int] = {}
    for c in letters:
        counts[c] = counts.get(c, 0) + 1
    n = len(letters)
    entropy = -sum(k / n * math.log2(k / n) for k in counts.values())
    vowels = sum(counts.get(c, 0) for c in "aeiouy") / n
    return entropy >= 3.5 and vowels < 0.25


_SEGMENT_SPLIT = re.compile(r"[-_]")
_PORT_THEN_PATH = r"\d{1,5}(?:[/?#]|$)"


def _sk_key_like(s: str, m: re.Match[str]) -> bool:
    """``sk-`` + random, not a hyphenated name like ``task-sk-learn-stage-2``."""
    if m.start() > 0 and s[m.start() - 1] == "-":
        return False
    body = m.group()[3:]
    return (
        any(c.isdigit() for c in body)
        and any(c.isalpha() for c in body)
        and max(len(seg) for seg in _SEGMENT_SPLIT.split(body)) >= 12
    )


def _looks_like_token(s: str) -> bool:
    return (
        len(s) >= 16
        and _TOKENISH.fullmatch(s) is not None
        and any(c.isdigit() for c in s)
        and any(c.isalpha() for c in s)
    )


def _looks_like_path(v: str) -> bool:
    """A secret-named variable holding a file path (GOOGLE_APPLICATION_CREDENTIALS)."""
    if not (v.startswith(("/", "~/", "./")) or (len(v) > 2 and v[1] == ":" and v[2] in "\\/")):
        return False
    if any(c.isspace() for c in v) or "+" in v or "=" in v:
        return False
    try:
        if os.path.exists(os.path.expanduser(v)):
            return True
    except (OSError, ValueError):
        pass
    return _PATH_EXT.search(v) is not None


_COMMON_USERNAMES = frozenset(
    {
        "root", "admin", "administrator", "user", "users", "ubuntu", "debian",
        "runner", "test", "tests", "guest", "nobody", "app", "dev", "developer",
        "docker", "jenkins", "vagrant", "home", "hostname", "redacted", "python",
        "vscode", "codespace", "node", "daemon", "system", "default", "local",
        "main", "master", "build", "worker", "ray", "data", "model", "ec2-user",
        "centos", "fedora", "alpine", "www-data", "postgres", "mysql", "git",
        "runneradmin", "circleci", "gitpod", "colab", "kaggle", "nvidia", "jovyan",
    }
)
_COMMON_HOSTNAMES = frozenset(
    {"localhost", "localhost.localdomain", "ubuntu", "debian", "raspberrypi", "host", "unknown"}
)


# --------------------------------------------------------------------------
# Patterns (compiled on first use)
# --------------------------------------------------------------------------

# Stems a secret-looking key must contain (the names are then judged by _name_class).
_STEMS = r"(?:pass|pw|secret|token|key|auth|cred|cookie|session|private|sig|dsn|conn|salt|jwt|bearer)"
_QUOTED_VALUE = (
    r"""\"\"\"(?:(?!\"\"\")[\s\S]){1,4096}\"\"\""""  # TOML / Python multi-line strings
    r"""|'''(?:(?!''')[\s\S]){1,4096}'''|"""
    r"""\\"(?:(?!\\").){0,4096}\\"|\\'(?:(?!\\').){0,4096}\\'"""
    r"""|"(?:[^"\\\n]|\\.){0,4096}"|'(?:[^'\\\n]|\\.){0,4096}'"""
)


class _Patterns:
    """All compiled patterns. Patterns whose name ends in ``_lc`` are lower-case
    only and run against the lower-cased copy of the text."""

    def __init__(self) -> None:
        c = re.compile
        self.pem_begin = c(r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
        self.pem_end = c(r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
        self.pem_body = c(r"[A-Za-z0-9+/=\s\\:,.-]*")  # a truncated block: the base64 that follows
        # (kind, pattern): each starts with a literal so the engine can skip
        # ahead fast. A group "v" limits the replacement to that part.
        def tok(prefix: str, rest: str, left: str = "A-Za-z0-9_") -> str:
            # literal prefix first (fast scan), then the left word boundary as
            # a fixed-width lookbehind, so a long run of token characters is
            # rejected at each position in O(1) instead of being rescanned.
            return re.escape(prefix) + r"(?<![%s].{%d})" % (left, len(prefix)) + rest

        tokens = [
            ("github-token", tok("gh", r"[pousr]_[A-Za-z0-9]{30,255}\b")),
            ("github-token", tok("github_pat_", r"[A-Za-z0-9_]{30,255}\b")),
            ("gitlab-token", tok("gl", r"(?:pat|dt|rt|ptt|cbt|oas|ft|imt|agent|soat)-[A-Za-z0-9_-]{20,}")),
            ("aws-access-key", tok("A", r"(?:KIA|SIA|GPA|IDA|ROA|IPA|NPA|NVA|BIA|CCA)[A-Z0-9]{16}\b")),
            ("slack-token", tok("xox", r"[abposre]-[A-Za-z0-9-]{10,}")),
            ("slack-token", tok("xapp-", r"\d-[A-Za-z0-9-]{10,}")),
            ("slack-token", (r"hooks\.slack\.com/services/(?P<v>[A-Za-z0-9_/-]{20,})")),
            ("stripe-key", tok("sk_", r"(?:live|test)_[A-Za-z0-9]{10,}")),
            ("stripe-key", tok("rk_", r"(?:live|test)_[A-Za-z0-9]{10,}")),
            ("api-key", tok("sk-", r"[A-Za-z0-9_-]{20,}", left="A-Za-z0-9_-")),
            ("api-key", tok("SG.", r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}")),
            ("huggingface-token", tok("hf_", r"[A-Za-z0-9]{30,}\b")),
            ("google-api-key", tok("AIza", r"[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])")),
            ("google-oauth-token", tok("ya29.", r"[A-Za-z0-9_-]{20,}")),
            ("pypi-token", tok("pypi-AgE", r"[A-Za-z0-9_-]{40,}")),
            ("npm-token", tok("npm_", r"[A-Za-z0-9]{36}\b")),
            ("jwt", tok("eyJ", r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")),
            # Formats from gitleaks' default rule set that carry a vendor prefix (the list
            # checked is in _GITLEAKS_CHECKED); keyword-only rules are the key = value rules.
            ("stripe-key", tok("whsec_", r"[A-Za-z0-9+/=]{24,}")),
            ("twilio-key", tok("SK", r"[0-9a-fA-F]{32}\b")),
            ("mailgun-key", tok("key-", r"[0-9a-f]{32}\b")),
            ("shopify-token", tok("shp", r"(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b")),
            ("square-token", tok("sq0", r"(?:atp|csp)-[0-9A-Za-z_-]{22,60}")),
            ("square-token", tok("EAAA", r"[0-9A-Za-z_+-]{60}\b")),
            ("databricks-token", tok("dapi", r"[a-f0-9]{32}(?:-\d)?\b")),
            ("digitalocean-token", tok("do", r"[por]_v1_[a-f0-9]{64}\b")),
            ("doppler-token", tok("dp.", r"(?:pt|st|sa|scim|audit|ct)\.[A-Za-z0-9]{40,44}")),
            ("dynatrace-token", tok("dt0c01.", r"[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}")),
            ("atlassian-token", tok("ATATT3", r"[A-Za-z0-9_=-]{100,}")),
            ("postman-token", tok("PMAK-", r"[a-f0-9]{24}-[a-f0-9]{34}")),
            ("pulumi-token", tok("pul-", r"[a-f0-9]{40}\b")),
            ("grafana-token", tok("glc_", r"[A-Za-z0-9+/]{32,400}={0,2}")),
            ("grafana-token", tok("glsa_", r"[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}")),
            ("vault-token", tok("hv", r"[sb]\.[A-Za-z0-9_-]{24,}")),
            ("terraform-token", (r"\.atlasv1\.(?P<v>[A-Za-z0-9_=-]{60,70})")),
            ("linear-token", tok("lin_api_", r"[A-Za-z0-9]{40}\b")),
            ("sentry-token", tok("sntrys_", r"[A-Za-z0-9+/=_-]{50,}")),
            ("sentry-token", tok("sntryu_", r"[a-f0-9]{64}\b")),
            ("newrelic-key", tok("NRAK-", r"[A-Z0-9]{27}\b")),
            ("age-secret-key", tok("AGE-SECRET-KEY-1", r"[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}")),
            ("twitter-token", tok("AAAAAAAAAAAAAAAAAAAAA", r"[A-Za-z0-9%]{30,}")),
            ("alibaba-key", tok("LTAI", r"[A-Za-z0-9]{20}\b")),
            ("facebook-token", tok("EAA", r"[MC][A-Za-z0-9]{100,}")),
            ("planetscale-token", tok("pscale_", r"(?:tkn|pw|oauth)_[A-Za-z0-9=._-]{32,64}")),
            ("prefect-token", tok("pnu_", r"[A-Za-z0-9]{36}\b")),
            ("readme-token", tok("rdme_", r"[a-z0-9]{70}\b")),
            ("rubygems-token", tok("rubygems_", r"[a-f0-9]{48}\b")),
            ("sendinblue-key", tok("xkeysib-", r"[a-f0-9]{64}-[A-Za-z0-9]{16}")),
            ("duffel-token", tok("duffel_", r"(?:test|live)_[A-Za-z0-9_=-]{43}")),
            ("easypost-token", tok("EZ", r"[AT]K[A-Za-z0-9]{54}")),
            ("flutterwave-key", tok("FLWSECK", r"(?:_TEST)?-[a-hA-H0-9]{32}-X")),
            ("frameio-token", tok("fio-u-", r"[A-Za-z0-9_=-]{64}")),
            ("flyio-token", tok("fo1_", r"[A-Za-z0-9_-]{43}")),
            ("flyio-token", tok("fm2_", r"[A-Za-z0-9+/]{100,}={0,3}")),
            ("clojars-token", tok("CLOJARS_", r"[a-z0-9]{60}")),
            ("huggingface-token", tok("api_org_", r"[A-Za-z0-9]{34}\b")),
            ("google-oauth-token", tok("GOCSPX-", r"[A-Za-z0-9_-]{28}")),
            ("cloudflare-key", tok("v1.0-", r"[a-f0-9]{24}-[a-f0-9]{146}")),
            ("nuget-key", tok("oy2", r"[a-z0-9]{43}\b")),
            ("artifactory-key", tok("AKCp", r"[A-Za-z0-9]{69}")),
            ("gitlab-token", tok("GR1348941", r"[A-Za-z0-9_-]{20}")),
            ("azure-client-secret", (r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])")),
            ("telegram-bot-token", (r"(?<![0-9])[0-9]{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])")),
        ]
        guards = {"azure-client-secret": "Q~", "telegram-bot-token": ":AA"}
        # (sources, compiled on first use: most never meet their prefix in a capture)
        self.tokens = [(kind, src, guards.get(kind) or _literal_prefix(src)) for kind, src in tokens]
        self.auth_lc = c(
            r"""authori[sz]ation(?P<sep>\\?["']?[ \t]*[:=][ \t]*\\?["']?)"""
            r"(?:(?P<scheme>" + "|".join(re.escape(x) for x in _AUTH_SCHEMES) + r")[ \t]+"
            r"""(?P<sval>[^\r\n'"\\]+)|(?P<val>[^\s'"\\,;{}$%<]+))"""
        )
        self.bearer_lc = c(r"bearer[ \t]+(?P<val>[a-z0-9._~+/-]{8,}=*)")
        # userinfo: a user part without / ? # : @, then an optional password that may hold
        # any character but @ and white space (`app:Tq3/Zx9+Lm@db`: drivers read it so)
        self.url = c(r"://(?P<ui>[^\s/?#:@'\"<>\\]*(?::[^\s@'\"<>\\]*)?)@")
        self.query_lc = c(
            r"[?&;](?:access_token|refresh_token|id_token|auth_token|token|api_key"
            r"|apikey|api-key|key|client_secret|secret|password|passwd|pwd|sig|signature"
            r"|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature"
            r"|x-goog-credential|code|private_token|sessionid|session_token|auth)="
            r"(?P<val>[^&#\s\"'<>\\]+)"
        )
        self.aws_secret_lc = c(
            r"""secret_?(?:access_?)?key\\?["']?[ \t]*(?::|=>|=)[ \t]*\\?["']?"""
            r"(?P<val>[a-z0-9/+]{30,}={0,2})(?![a-z0-9/+=])"
        )
        # key = value: a fast pre-scan finds "stem...<sep>", the full pattern
        # then matches from the start of the key.
        # (a bare "key" is never a secret key in text: it needs a qualifier)
        # ((?=(x))\1 is an atomic x: no backtracking through a long run of key characters)
        self.kv_pre_lc = c(
            _STEMS.replace("|key|", r"|key(?<=[\w.-]key)|")
            + r"""(?=([\w.-]{0,80}))\1\\?["']?[ \t]*(?:=|:(?!:))"""
        )
        self.kv_lc = c(
            r"(?P<key>[a-z_][\w.-]{0,200})"  # (the pre-scan found a stem in it)
            r"""(?P<sep>\\?["']?[ \t]*(?::[ \t]*[a-z_][\w.\[\]|, ]{0,60}?[ \t]*=(?!=)|:=|=>|=(?!=)|:(?!:))[ \t]*)"""
        )
        # the value, matched only once the key has been judged secret (values are
        # bounded so a long line without delimiters cannot go quadratic)
        self.kv_val_lc = c(
            _QUOTED_VALUE +
            r"""|[^\s'",;)}\]<>][^\s'",;)}\]<>]{0,4095}"""
            r"""(?:[ \t]+(?![#;]|//)[^\s'",;)}\]<>=:]{1,4096}(?=[ \t\r\n]|\Z)){0,64}"""
        )
        self.flag_lc = c(
            r"(?P<key>-(?<![\w-]-)-?(?:[a-z][\w-]{0,60}?)?" + _STEMS + r"[\w-]{0,60})(?P<sep>[ \t]+)"
            r"""(?P<val>"(?:[^"\\\n]|\\.){0,4096}"|'(?:[^'\\\n]|\\.){0,4096}'|[^\s'"<>-][^\s'"<>]{0,4095})"""
        )
        self.netrc_lc = c(
            r"password[ \t]+(?P<val>[^\s'\"<]+)"
            r"(?=[ \t]*(?:$|(?:machine|login|account|macdef|default)\b))",
            re.M,
        )
        self.netrc_ctx_lc = c(r"\b(?:machine|default)\b")
        # mysql -pPASSWORD (the password glued to the flag)
        self.mysql_p_lc = c(r"""\b(?:mysql|mysqldump|mysqladmin|mariadb)\b[^\n]{0,300}?[ \t]-p(?P<val>[^\s'"<>]{3,})""")
        # Dockerfile `ENV NAME value` (`ENV NAME=value` and `ARG NAME=value` are key = value)
        self.docker_env_lc = c(r"^[ \t]*env[ \t]+(?P<key>[a-z_]\w{0,100})[ \t]+(?P<val>[^\s=][^\n]{0,4095})$", re.M)
        # ("X-Api-Key", "value"), [b"authorization", b"..."], ('password', 'x'): a pair
        # whose first item names the second
        _item = r"""(?:(?!(?P=%s))[^\\\n]|\\.){1,4096}"""
        self.pair_lc = c(
            r"""[(\[][ \t]*b?(?P<q>['"])(?P<key>[a-z_][\w.-]{0,80})(?P=q)[ \t]*,[ \t]*b?(?P<q2>['"])"""
            r"(?P<val>" + _item % "q2" + r")(?P=q2)"
        )
        # auth=("user", "pw"), HTTPBasicAuth("user", "pw"), smtp.login("user", "pw"),
        # 'credentials': ['user', 'pw']: the second item is a password
        self.cred_call_lc = c(
            r"""(?P<kw>auth|basicauth|digestauth|proxyauth|credentials?|creds|login|password_credentials"""
            r"""|set_password)['"]?[ \t]*[=:]?[ \t]*[(\[][ \t]*b?(?P<q>['"])(?:(?!(?P=q))[^\\\n]|\\.){0,256}(?P=q)[ \t]*,"""
            r"""(?:[ \t]*b?(?P<q3>['"])(?:(?!(?P=q3))[^\\\n]|\\.){0,256}(?P=q3)[ \t]*,)?"""
            r"""[ \t]*b?(?P<q2>['"])(?P<val>""" + _item % "q2" + r")(?P=q2)"
        )
        # a YAML key whose value is on the next lines: `password:` / `token: >-` / `key: |`
        self.yaml_key_lc = c(
            r"""^(?P<ind>[ \t]*)(?:-[ \t]+)?(?P<kq>["']?)(?P<key>[a-z_][\w.-]{0,100})(?P=kq)[ \t]*:[ \t]*"""
            r"(?P<block>[|>][-+0-9]{0,3})?[ \t]*(?:#[^\n]*)?\r?$",
            re.M,
        )
        # base64 / base64url runs: decoded and scrubbed
        self.b64 = c(r"[A-Za-z0-9+/_=-]{16,}")
        # UTF-16/32 text shown as escapes in a bytes repr: b'A\\x00K\\x00...'
        # (one pattern for either byte order: the NULs are dropped, whatever their side)
        _ch = r"[\x20\x21\x23-\x26\x28-\x5b\x5d-\x7e]"
        self.escaped_wide = c(r"(?:\\x00){0,3}(?:%s(?:\\x00){1,3}){5,}%s?" % (_ch, _ch))
        # UTF-16/32 runs of printable ASCII in raw bytes
        self.wide_views = [
            (re.compile(rb"(?:[\x20-\x7e]\x00\x00\x00){6,}"), "utf-32-le"),
            (re.compile(rb"(?:\x00\x00\x00[\x20-\x7e]){6,}"), "utf-32-be"),
            (re.compile(rb"(?:[\x20-\x7e]\x00){6,}"), "utf-16-le"),
            (re.compile(rb"(?:\x00[\x20-\x7e]){6,}"), "utf-16-be"),
        ]
        # curl -u user:pass, --user=user:pass, ['-u', 'user:pass']
        self.user_flag_lc = c(
            r"""-(?<![\w-]-)(?:u|-user|-proxy-user)(?:[ \t=]+|(?P<q>['"]),[ \t]*['"])"""
            r"""[^\s:'"<>]+:(?P<val>[^\s'"<>]+)"""
        )


#: gitleaks default rules (config/gitleaks.toml) checked against this module. Prefixed
#: formats have a token pattern above; keyword rules (generic-api-key, *-api-token,
#: *-client-secret, heroku, discord, okta, ...) are the secret-name rules of step 7;
#: private-key and jwt have their own steps. Not covered: rules that are a bare hex or
#: UUID with no prefix and no name beside it (indistinguishable from a digest or id).
_GITLEAKS_CHECKED = (
    "adafruit-api-key (keyword)", "adobe-client-secret (keyword)", "age-secret-key", "airtable-api-key (keyword)",
    "alibaba-access-key-id", "alibaba-secret-key (keyword)", "anthropic-api-key", "anthropic-admin-api-key",
    "artifactory-api-key", "asana-client-secret (keyword)", "atlassian-api-token", "authress-service-client-access-key (keyword)",
    "aws-access-token", "azure-ad-client-secret", "beamer-api-token (keyword)", "bitbucket-client-secret (keyword)",
    "clojars-api-token", "cloudflare-origin-ca-key", "databricks-api-token", "datadog-access-token (keyword)",
    "digitalocean-access-token", "digitalocean-pat", "digitalocean-refresh-token", "discord-api-token (keyword)",
    "doppler-api-token", "dropbox-api-token (keyword)", "duffel-api-token", "dynatrace-api-token",
    "easypost-api-token", "easypost-test-api-token", "facebook-access-token", "facebook-secret (keyword)",
    "flutterwave-secret-key", "fly.io-access-token", "frameio-api-token", "gcp-api-key", "generic-api-key (keyword)",
    "github-app-token", "github-fine-grained-pat", "github-oauth", "github-pat", "github-refresh-token",
    "gitlab-pat", "gitlab-ptt", "gitlab-rrt", "gitlab-runner-authentication-token", "gitlab-deploy-token",
    "gocardless-api-token (keyword)", "grafana-cloud-api-token", "grafana-service-account-token",
    "hashicorp-tf-api-token", "heroku-api-key (keyword)", "hubspot-api-key (keyword)", "huggingface-access-token",
    "huggingface-organization-api-token", "jwt", "linear-api-key", "mailchimp-api-key (keyword)", "mailgun-private-api-token",
    "new-relic-user-api-key", "npm-access-token", "nuget-api-key", "okta-access-token (keyword)", "openai-api-key",
    "planetscale-api-token", "planetscale-password", "planetscale-oauth-token", "postman-api-token",
    "prefect-api-token", "private-key", "pulumi-api-token", "pypi-upload-token", "readme-api-token",
    "rubygems-api-token", "sendgrid-api-token", "sendinblue-api-token", "sentry-org-token", "sentry-user-token",
    "shopify-access-token", "shopify-custom-access-token", "shopify-private-app-access-token",
    "shopify-shared-secret", "slack-bot-token", "slack-user-token", "slack-app-token", "slack-webhook-url",
    "square-access-token", "stripe-access-token", "telegram-bot-api-token", "twilio-api-key",
    "twitter-bearer-token", "vault-service-token", "vault-batch-token",
)


def _literal_prefix(pattern: str) -> str:
    """The literal text a pattern starts with (each token pattern has one): a cheap guard."""
    m = re.match(r"(?:\\[^A-Za-z0-9]|[A-Za-z0-9_~-])+", pattern)
    return re.sub(r"\\(.)", r"\1", m.group()) if m else ""


_PATTERNS: _Patterns | None = None
_PATTERNS_LOCK = threading.Lock()


def _patterns() -> _Patterns:
    global _PATTERNS
    if _PATTERNS is None:
        with _PATTERNS_LOCK:
            if _PATTERNS is None:
                _PATTERNS = _Patterns()
    return _PATTERNS


def _lower(s: str) -> str:
    """Lower-case copy with the same length (so match offsets carry over)."""
    low = s.lower()
    if len(low) != len(s):  # only U+0130 lower-cases to two code points
        low = s.replace("\u0130", "i").lower()
    return low


_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")


def _closing_quote(s: str, start: int, q: str) -> int:
    """Index of the first unescaped ``q`` (or line end) at or after ``start``."""
    i, n = start, len(s)
    while i < n:
        c = s[i]
        if c == q or c in "\r\n":
            return i
        if c == "\\":
            if s.startswith(("\\r", "\\n"), i):  # an escaped line break in a repr
                return i
            i += 2
            continue
        i += 1
    return n


def _word_char_before(s: str, i: int) -> bool:
    return i > 0 and (s[i - 1].isalnum() or s[i - 1] == "_")


class _Edit:
    """Collects replacements of (start, end) spans of ``src``; spans come in order."""

    __slots__ = ("src", "parts", "last")

    def __init__(self, src: str) -> None:
        self.src = src
        self.parts: list[str] = []
        self.last = 0

    def put(self, start: int, end: int, text: str) -> None:
        self.parts.append(self.src[self.last:start])
        self.parts.append(text)
        self.last = end

    def result(self) -> str:
        if not self.parts:
            return self.src
        self.parts.append(self.src[self.last:])
        return "".join(self.parts)


def _scan(
    pattern: re.Pattern[str],
    hay: str,
    src: str,
    handle: Callable[[re.Match[str]], tuple[int, int, str] | None],
    resume: Callable[[re.Match[str]], int] | None = None,
) -> str:
    """Search ``pattern`` in ``hay`` (``src`` or its lower-cased twin) and let
    ``handle`` return a (start, end, replacement) for ``src``, or None to
    decline; after a declined match scanning resumes at ``resume(m)`` (default:
    one past the match start) so a declined key never hides a later secret."""
    edit = _Edit(src)
    search = pattern.search
    pos, n = 0, len(hay)
    while pos <= n:
        m = search(hay, pos)
        if m is None:
            break
        r = handle(m)
        if r is None:
            pos = max(resume(m) if resume else m.start() + 1, m.start() + 1)
            continue
        start, end, text = r
        edit.put(start, end, text)
        pos = max(end, m.start() + 1)
    return edit.result()


def _scan_bytes(
    pattern: re.Pattern[bytes], src: bytes, handle: Callable[[re.Match[bytes]], tuple[int, int, bytes] | None]
) -> bytes:
    """:func:`_scan` for bytes (declined matches resume at their end)."""
    parts: list[bytes] = []
    last = pos = 0
    while True:
        m = pattern.search(src, pos)
        if m is None:
            break
        r = handle(m)
        pos = max(m.end(), m.start() + 1)
        if r is not None:
            parts.append(src[last:r[0]])
            parts.append(r[2])
            last = r[1]
    if not parts:
        return src
    parts.append(src[last:])
    return b"".join(parts)


_PEM_BODY_LINE = r"[ \t'\"]*(?:[A-Za-z0-9+/=]{16,}|[A-Za-z-]+: [^\n]{0,200}|)[ \t'\"]*(?:\\r)?"
_PEM_BODY_AFTER_QUOTE = r"""['"]([A-Za-z0-9+/=]{16,})[ \t]*(?:\\r)?$"""
_PCT = r"%[0-9A-Fa-f]{2}"
_PCT_RUN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789%._~+-")
_USER_PASS = r"[^\s:]{1,64}:[^\s]{6,}"
_YAML_ENTRY = r"[ \t]*(?:-(?:[ \t]|$)|[\w.\"'-]+[ \t]*:(?:[ \t]|$))"
_CUT_HEAD = r"(?:\[\.\.\. [^\n]{0,80}cut[^\n]{0,80}\]\r?\n)?(?P<body>)(?:[ \t]*[A-Za-z0-9+/=]{16,}[ \t]*\r?\n)+"


def _pem_body_start(s: str, end: int) -> int:
    """Start of the run of base64 (and PEM header) lines just above ``end`` (the
    ``-----END`` line), with real or escaped (``\\n``) line breaks; ``end`` if none."""
    start = end
    limit = max(0, end - 65536)
    i = end
    while i > limit:
        j = i
        while j > limit and s[j - 1] in " \t":
            j -= 1
        if s.endswith("\\n", limit, j):
            j -= 2
        elif j > limit and s[j - 1] == "\n":
            j -= 1
        else:
            break
        k = j
        while k > limit and s[k - 1] != "\n" and not s.endswith("\\n", limit, k):
            k -= 1
        line = s[k:j]
        if not line.strip(" \t'\"\r") or not _rx(_PEM_BODY_LINE).fullmatch(line):
            m = _rx(_PEM_BODY_AFTER_QUOTE).search(line)  # key = '<body>\n...: the first line
            if m:
                start = k + m.start(1)
            break
        start = i = k
    return start


def _mostly_printable(text: str) -> bool:
    if not text:
        return False
    bad = sum(1 for c in text if not (c.isprintable() or c in "\n\r\t"))
    return bad * 20 <= len(text)


def _b64decode(run: str) -> bytes | None:
    """Decode a base64 or base64url run (padding optional); None if it isn't one."""
    import binascii

    body = run.rstrip("=")
    if len(body) % 4 == 1:
        return None
    padded = body + "=" * (-len(body) % 4)
    try:
        if "-" in body or "_" in body:
            if "+" in body or "/" in body:
                return None
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


# --------------------------------------------------------------------------
# Redactor
# --------------------------------------------------------------------------

Counts = dict  # (kind, where) -> int


class Redactor:
    """Scrub secrets and machine identity from text, bytes, objects and environments.

    One Redactor per capture: it remembers what it replaced (kinds and counts,
    never values) for :meth:`report` / :meth:`preview`. Thread-safe.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        extra_secrets: Iterable[str] = (),
        hostname: str | None = None,
        username: str | None = None,
        home: str | None = None,
    ) -> None:
        if environ is None:
            environ = os.environ
        self._p = _patterns()
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}

        # Literal secrets: form -> kind, tried longest first.
        literals: dict[str, str] = {}
        for value in extra_secrets:
            if isinstance(value, str) and len(value.strip()) >= 3:
                for form in _forms(value):
                    literals.setdefault(form, "extra-secret")
        for name, value in environ.items():
            if not isinstance(name, str) or not isinstance(value, str):
                continue
            if _name_class(name, False) is not None and _env_value_collectable(value):
                for form in _forms(value):
                    literals.setdefault(form, "env-secret")
            if "://" in value:  # DATABASE_URL=postgres://u:pw@h/db: the password
                for m in self._p.url.finditer(value):
                    user, _, pw = m["ui"].partition(":")
                    if not pw and user != "__token__" and _looks_like_token(user):
                        pw = user  # https://TOKEN:@host: the token is the user part
                    if len(pw) >= 6 and "<" not in pw:
                        for form in _forms(pw):
                            literals.setdefault(form, "env-secret")
        self._literals = sorted(literals.items(), key=lambda kv: (-len(kv[0]), kv[0]))
        self._literal_kind = dict(self._literals)
        self._literal_re_cache: dict[tuple[str, ...], re.Pattern[str]] = {}
        self._utf16 = [
            (form.encode("utf-16-le"), _ph(kind).encode("utf-16-le"), kind)
            for form, kind in self._literals
            if form.isascii() and len(form) >= 6
        ]

        # Machine identity.
        if hostname is None:
            try:
                import socket

                hostname = socket.gethostname()
            except Exception:
                hostname = ""
        if username is None:
            try:
                import getpass

                username = getpass.getuser()
            except Exception:
                username = ""
        if home is None:
            try:
                from pathlib import Path

                home = str(Path.home())
            except Exception:
                home = ""
        self.hostname = hostname or ""
        self.username = username or ""
        self.home = home or ""
        self._ident_re = self._build_identity_re()

    def _build_identity_re(self) -> re.Pattern[str] | None:
        """One lower-case pattern: placeholders (kept), home, hostname, user.
        No named groups: they would cost the engine its fast first-char scan;
        the handler tells the alternatives apart by the matched text."""
        alts: list[str] = []
        self._ident_kind: dict[str, str] = {}
        home = self.home.rstrip("/\\")
        if len(home) >= 2:
            variants = {home}
            if os.path.isabs(home):  # e.g. /Users/x vs /private/var/... via symlinks
                try:
                    real = os.path.realpath(home)
                    if len(real) >= 2:
                        variants.add(real)
                except (OSError, ValueError):
                    pass
            for h in list(variants):
                if "\\" in h:
                    variants.add(h.replace("\\", "/"))
                    variants.add(h.replace("\\", "\\\\"))
            lows = sorted({_lower(v) for v in variants}, key=len, reverse=True)
            self._ident_kind.update(dict.fromkeys(lows, "home"))
            alts.append(r"(?:%s)(?![a-z0-9_.-])" % "|".join(re.escape(v) for v in lows))
        host = self.hostname
        hosts = []
        if (
            len(host) >= 3
            and host.lower() not in _COMMON_HOSTNAMES
            and not re.fullmatch(r"[\d.]+|[0-9a-fA-F:]*:[0-9a-fA-F:]*", host)
        ):
            hosts.append(host)
            short = host.split(".")[0]
            if short != host and len(short) >= 3 and short.lower() not in _COMMON_HOSTNAMES:
                hosts.append(short)
        if hosts:
            lows = [_lower(h) for h in hosts]
            for h in lows:
                self._ident_kind.setdefault(h, "hostname")
            alts.append(r"(?:%s)(?![a-z0-9])" % "|".join(re.escape(h) for h in lows))
        user = self.username
        if len(user) >= 3 and user.lower() not in _COMMON_USERNAMES:
            self._ident_kind.setdefault(_lower(user), "username")
            alts.append(r"%s(?![a-z0-9])" % re.escape(_lower(user)))
        if not alts:
            return None
        return re.compile(r"%s|%s" % (_PLACEHOLDER_SRC, "|".join(alts)))

    # -- bookkeeping -----------------------------------------------------------

    def _merge(self, counts: Counts) -> None:
        if counts:
            with self._lock:
                for key, n in counts.items():
                    self._counts[key] = self._counts.get(key, 0) + n

    def _count(self, kind: str, where: str, n: int = 1) -> None:
        self._merge({(kind, where): n})

    def report(self) -> list[Redaction]:
        """Aggregated redactions, sorted by (where, kind)."""
        with self._lock:
            items = sorted((w, k, n) for (k, w), n in self._counts.items() if n > 0)
        return [Redaction(kind=k, where=w, count=n) for w, k, n in items]

    def preview(self) -> list[dict]:
        """Same as :meth:`report`, as plain ``{"kind", "where", "count"}`` dicts."""
        return [r.as_dict() for r in self.report()]

    # -- text ------------------------------------------------------------------

    def text(self, s: str, where: str) -> str:
        """Scrub a string, recording counts per (kind, where). Idempotent."""
        if not s:
            return s
        counts: Counts = {}
        out = self._scrub(s, where, counts)
        self._merge(counts)
        return out

    def _scrub(self, s: str, where: str, counts: Counts, depth: int = 0) -> str:
        p = self._p

        def add(kind: str) -> None:
            key = (kind, where)
            counts[key] = counts.get(key, 0) + 1

        # 1. PEM private key blocks, whole.
        if "PRIVATE KEY-----" in s:
            def pem(m: re.Match[str]) -> tuple[int, int, str]:
                end = p.pem_end.search(s, m.end(), m.end() + 65536)
                stop = end.end() if end else p.pem_body.match(s, m.end()).end()  # type: ignore[union-attr]
                add("pem-private-key")
                return m.start(), stop, _ph("pem-private-key")

            s = _scan(p.pem_begin, s, s, pem)
        # 1b. An END line whose BEGIN was cut off (an output tail): the base64 lines above it.
        if "-----END" in s and "PRIVATE KEY" in s:
            def orphan(m: re.Match[str]) -> tuple[int, int, str] | None:
                start = _pem_body_start(s, m.start())
                if start == m.start():
                    return None
                add("pem-private-key")
                return start, m.end(), _ph("pem-private-key")

            s = _scan(p.pem_end, s, s, orphan, lambda m: m.end())

        # 2. Literal secrets.
        if self._literals:
            s = self._scrub_literals(s, add)

        # 3. Token shapes (case-sensitive, on the text itself).
        for kind, src, guard in p.tokens:
            if guard not in s:
                continue  # (a substring test is far cheaper than a regex scan)
            rx = _rx(src)

            def token(m: re.Match[str], kind: str = kind) -> tuple[int, int, str] | None:
                if m.re.groups:
                    start, end = m.span("v")
                else:
                    start, end = m.span()
                    if _word_char_before(s, start):
                        return None
                    if kind == "api-key" and m.group().startswith("sk-") and not _sk_key_like(s, m):
                        return None
                add(kind)
                return start, end, _ph(kind)

            s = _scan(rx, s, s, token)

        low = _lower(s)

        def relower(new: str) -> None:
            nonlocal s, low
            if new is not s:
                s, low = new, _lower(new)

        # 4. Authorization headers, then bare Bearer tokens.
        if "authori" in low:
            def auth(m: re.Match[str]) -> tuple[int, int, str] | None:
                if _word_char_before(low, m.start()):
                    return None
                if m["scheme"] is not None:
                    start = m.start("sval")
                    q = m["sep"].rstrip()[-1:]
                    if q in ("'", '"'):  # quoted: up to the closing quote (Digest has inner quotes)
                        end = _closing_quote(s, start, q)
                    elif m["scheme"] in ("digest", "aws4-hmac-sha256", "hmac", "mac", "oauth"):
                        end = _closing_quote(s, start, "\n")  # name="value", ... to the line end
                    else:
                        end = m.end("sval")
                    val = s[start:end].rstrip()
                    if not val or "<redacted:" in val or val[0] in "{$%<":
                        return None
                    kind = "bearer" if m["scheme"] == "bearer" else "authorization"
                    add(kind)
                    return start, start + len(val), _ph(kind)
                start, end = m.span("val")
                val = s[start:end]
                if not (len(val) >= 8 and any(c.isdigit() for c in val)):
                    return None
                add("authorization")
                return start, end, _ph("authorization")

            relower(_scan(p.auth_lc, low, s, auth, lambda m: m.end("sep")))
        if "bearer" in low:
            def bearer(m: re.Match[str]) -> tuple[int, int, str] | None:
                if _word_char_before(low, m.start()):
                    return None
                val = m["val"]
                if not (any(c.isdigit() for c in val) or len(val) >= 20):
                    return None
                add("bearer")
                return m.start("val"), m.end("val"), _ph("bearer")

            relower(_scan(p.bearer_lc, low, s, bearer, lambda m: m.start("val")))

        # 5. Credentials in URLs (any scheme).
        if "://" in s:
            def url(m: re.Match[str]) -> tuple[int, int, str] | None:
                if not _word_char_before(s, m.start()):
                    return None  # no scheme
                ui = m["ui"]
                user, colon, pw = ui.partition(":")
                if colon and _rx(_PORT_THEN_PATH).match(pw):
                    return None  # host:8080/path@x: a port and a path, no password
                if colon:
                    # `TOKEN:@host` (Gemfury, `__token__:@`-style indexes): the user part is the secret
                    if not pw and not (user and (_looks_like_token(user) or user == "__token__")):
                        return None
                elif not _looks_like_token(ui):
                    return None
                add("url-credentials")
                return m.start("ui"), m.end("ui"), _ph("url-credentials")

            relower(_scan(p.url, s, s, url, lambda m: m.start() + 3))

        # 6. Secret query parameters.
        if "=" in s:
            def query(m: re.Match[str]) -> tuple[int, int, str] | None:
                val = m["val"]
                if len(val) < 4 or val in _BORING_VALUES:
                    return None
                add("query-secret")
                return m.start("val"), m.end("val"), _ph("query-secret")

            relower(_scan(p.query_lc, low, s, query, lambda m: m.start("val")))

        if "=" in s or ":" in s:
            # 7a. AWS secret access keys next to their name.
            if "secret" in low:
                def aws(m: re.Match[str]) -> tuple[int, int, str] | None:
                    st = m.start()
                    if not ("access" in m.group() or low.endswith(("aws", "aws_"), max(0, st - 4), st)):
                        return None
                    add("aws-secret-key")
                    return m.start("val"), m.end("val"), _ph("aws-secret-key")

                relower(_scan(p.aws_secret_lc, low, s, aws, lambda m: m.start("val")))

            # 7b. key = value pairs whose key looks secret.
            relower(self._scrub_kv(s, low, add))

        # 7c. Values beside a secret-looking name that `key = value` can't see: pairs
        # (("X-Api-Key", "..."), header lists), credential call shapes (auth=("u", "pw")),
        # YAML values on the next line or in block scalars.
        if "," in s:
            relower(self._scrub_pairs(s, low, add))
        if ":" in s and "\n" in s:
            relower(self._scrub_yaml_blocks(s, low, add))

        # 8. --password VALUE flags, .netrc passwords.
        if "-" in s:
            def flag(m: re.Match[str]) -> tuple[int, int, str] | None:
                key = s[m.start("key"):m.end("key")].lstrip("-")
                cls = _flag_class(key)
                if cls is None:
                    return None
                vs, ve = m.span("val")
                if ve < len(low) and low[ve] == "<":
                    return None  # runs into a placeholder: already handled
                qo, inner, qc = _unquote(s[vs:ve])
                if not _value_is_secret(key, cls, inner, bool(qo)):
                    return None
                kind = _cls_kind(cls)
                add(kind)
                return vs + len(qo), ve - len(qc), _ph(kind)

            relower(_scan(p.flag_lc, low, s, flag, lambda m: m.end("key")))

            def user_flag(m: re.Match[str]) -> tuple[int, int, str] | None:
                if m["val"] in _BORING_VALUES:
                    return None
                add("password")
                return m.start("val"), m.end("val"), _ph("password")

            relower(_scan(p.user_flag_lc, low, s, user_flag, lambda m: m.start("val")))
        if "mysql" in low or "mariadb" in low:
            def mysql_p(m: re.Match[str]) -> tuple[int, int, str] | None:
                if m["val"] in _BORING_VALUES:
                    return None
                add("password")
                return m.start("val"), m.end("val"), _ph("password")

            relower(_scan(p.mysql_p_lc, low, s, mysql_p, lambda m: m.end()))
        if "env " in low or "arg " in low:
            def docker_env(m: re.Match[str]) -> tuple[int, int, str] | None:
                key = s[m.start("key"):m.end("key")]
                cls = _name_class(key, False)
                vs, ve = m.span("val")
                qo, inner, qc = _unquote(s[vs:ve].rstrip())
                if cls is None or not _value_is_secret(key, "strong" if cls == "weak" else cls, inner, bool(qo)):
                    return None
                kind = _cls_kind(cls)
                add(kind)
                return vs + len(qo), vs + len(qo) + len(inner), _ph(kind)

            relower(_scan(p.docker_env_lc, low, s, docker_env, lambda m: m.end("key")))
        if "password" in low:
            def netrc(m: re.Match[str]) -> tuple[int, int, str] | None:
                st = m.start()
                if _word_char_before(low, st):
                    return None
                line = low[low.rfind("\n", 0, st) + 1:st]
                if line.strip() and not p.netrc_ctx_lc.search(line):
                    return None
                if m["val"] in _BORING_VALUES:
                    return None
                add("password")
                return m.start("val"), m.end("val"), _ph("password")

            relower(_scan(p.netrc_lc, low, s, netrc, lambda m: m.start("val")))

        # 8b. Encoded secrets: base64 runs (and Basic credentials), percent-encoded runs,
        # UTF-16/UTF-32 bytes shown as escapes, each decoded and scrubbed (two levels deep).
        if depth < 2:
            relower(self._scrub_encoded(s, add, depth))

        # 9. Machine identity: home (before user name), hostname, user name.
        if self._ident_re is not None:
            # Inline loop: home paths can occur tens of thousands of times in a log.
            names = {"home": HOME_PLACEHOLDER, "hostname": HOSTNAME_PLACEHOLDER, "username": USER_PLACEHOLDER}
            found = {"home": 0, "hostname": 0, "username": 0}
            kinds = self._ident_kind
            parts: list[str] = []
            last = 0
            for m in self._ident_re.finditer(low):
                ident = kinds.get(m.group())
                if ident is None:  # a placeholder
                    continue
                st = m.start()
                if ident != "home" and st and low[st - 1].isalnum():
                    continue  # hostname / user name only as a whole word
                parts.append(s[last:st])
                parts.append(names[ident])
                last = m.end()
                found[ident] += 1
            if parts:
                parts.append(s[last:])
                s = "".join(parts)
                for kind, k in found.items():
                    if k:
                        counts[(kind, where)] = counts.get((kind, where), 0) + k
        return s

    def _scrub_kv(self, s: str, low: str, add: Callable[[str], None]) -> str:
        p = self._p
        edit = _Edit(s)
        pos, n = 0, len(low)
        pre_search, kv_match, val_match = p.kv_pre_lc.search, p.kv_lc.match, p.kv_val_lc.match
        while pos < n:
            c = pre_search(low, pos)
            if c is None:
                break
            # walk back from the stem to the start of the key
            ks = c.start()
            stop = max(pos, ks - 80)
            while ks > stop and low[ks - 1] in _KEY_CHARS:
                ks -= 1
            while ks < c.start() and not (low[ks].isalpha() or low[ks] == "_"):
                ks += 1
            m = kv_match(low, ks)
            if m is None or (ks > 0 and low[ks - 1] in _KEY_CHARS and low[ks - 1] != "-"):
                pos = c.end()  # (not c.start() + 1: a long run of stems would go quadratic)
                continue
            key = s[ks:m.end("key")]
            cls = _name_class(key, True)
            v = val_match(low, m.end()) if cls is not None else None
            if v is None:
                pos = m.end("key")
                continue
            vs, ve = v.span()
            if low.endswith(("//", "@"), 0, ks) or ("." in key and low[vs].isdigit() and ":" in m["sep"]):
                cls = None  # a host name (auth.example.com:8443), not a key
            if cls is not None and not (ve < n and low[ve] == "<" and low[vs] not in "\"'"):
                # (an unquoted value that runs into a placeholder was already handled:
                # SENTRY_DSN=https://<redacted:url-credentials>@host)
                qo, inner, qc = _unquote(s[vs:ve])
                if cls == "weak" and not qo:
                    inner = inner.split(None, 1)[0]  # token: abc123 expired at ...
                    ve = vs + len(inner)
                if not qo and _YAML_BLOCK_INDICATOR.fullmatch(inner.strip()):
                    pos = ve  # `password: |-`: the value is the block below (_scrub_yaml_blocks)
                    continue
                if _value_is_secret(key, cls, inner, bool(qo)):
                    kind = _cls_kind(cls)
                    add(kind)
                    edit.put(vs + len(qo), ve - len(qc), _ph(kind))
                    pos = ve
                    continue
            pos = m.end("key")
        return edit.result()

    def _scrub_literals(self, s: str, add: Callable[[str], None]) -> str:
        present = tuple(form for form, _ in self._literals if form in s)
        if not present:
            return s
        rx = self._literal_re_cache.get(present)
        if rx is None:
            alts = []
            for form in present:
                e = re.escape(form)
                if form.isdigit():
                    e = r"(?<!\d)%s(?!\d)" % e
                alts.append(e)
            rx = re.compile(r"(?P<ph>%s)|(?P<lit>%s)" % (_PLACEHOLDER_SRC, "|".join(alts)))
            with self._lock:
                if len(self._literal_re_cache) > 256:
                    self._literal_re_cache.clear()
                self._literal_re_cache[present] = rx
        kinds = self._literal_kind

        def lit(m: re.Match[str]) -> tuple[int, int, str] | None:
            if m.lastgroup == "ph":
                return None
            kind = kinds.get(m.group(), "env-secret")
            add(kind)
            return m.start(), m.end(), _ph(kind)

        return _scan(rx, s, s, lit, lambda m: m.end())

    # -- bytes -----------------------------------------------------------------

    def bytes(self, b: bytes, where: str) -> bytes:
        """Scrub file contents. UTF-8 with surrogateescape round-trips any bytes,
        so binary files get the same scrubbing (literal secrets embedded as ASCII
        are caught); UTF-16/UTF-32 runs of text are decoded and scrubbed too."""
        if not b:
            return b
        counts: Counts = {}
        out = self._bytes(b, where, counts, 0)
        self._merge(counts)
        return out

    def _bytes(self, b: bytes, where: str, counts: Counts, depth: int) -> bytes:
        s = b.decode("utf-8", "surrogateescape")
        out = self._scrub(s, where, counts, depth).encode("utf-8", "surrogateescape")
        if b"\x00" not in out:
            return out
        for needle, rep, kind in self._utf16:
            k = out.count(needle)
            if k:
                out = out.replace(needle, rep)
                counts[(kind, where)] = counts.get((kind, where), 0) + k
        if depth >= 2:
            return out
        for rx, enc in self._p.wide_views:
            def view(m: re.Match[bytes], enc: str = enc) -> tuple[int, int, bytes] | None:
                try:
                    text = m.group().decode(enc)
                except UnicodeDecodeError:
                    return None
                kinds = self._hits(text, depth + 1)
                if not kinds:
                    return None
                counts[(kinds[0], where)] = counts.get((kinds[0], where), 0) + 1
                return m.start(), m.end(), _ph(kinds[0]).encode(enc)

            out = _scan_bytes(rx, out, view)
        return out

    # -- asking without scrubbing ----------------------------------------------------

    def finds(self, data: str | bytes) -> list[str]:
        """The kinds this redactor would replace in ``data`` (text or bytes, with every
        decoding it tries), without counting them: for deciding what to leave out."""
        if not data:
            return []
        counts: Counts = {}
        if isinstance(data, (bytes, bytearray)):
            self._bytes(bytes(data), "", counts, 0)
        else:
            self._scrub(data, "", counts, 0)
        return sorted({k for (k, _), n in counts.items() if n})

    def _hits(self, text: str, depth: int) -> list[str]:
        counts: Counts = {}
        self._scrub(text, "", counts, depth)
        return [k for (k, _), n in sorted(counts.items(), key=lambda kv: -kv[1]) if n]

    def _decoded_hits(self, data: bytes, depth: int, basic: bool = False) -> list[str]:
        """Kinds found in decoded bytes: as UTF-8 text (a ``user:password`` pair counts
        when the text is nothing else), and as UTF-16/32 text."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and _mostly_printable(text):
            kinds = self._hits(text, depth)
            if kinds:
                return kinds
            if _rx(_USER_PASS).fullmatch(text.strip()) and (basic or len(text.strip()) >= 12):
                return ["basic-auth"]
            return []
        if b"\x00" in data:
            counts: Counts = {}
            self._bytes(data, "", counts, depth)
            return [k for (k, _), n in counts.items() if n]
        return []

    def text_after_cut(self, s: str, where: str) -> str:
        """Scrub a text whose beginning was cut off (an output tail): base64 lines left
        at its start are what remains of something whose first line is gone (a key's
        BEGIN line), so they go too."""
        m = _rx(_CUT_HEAD).match(s)
        if m and m.end() > m.start("body"):
            self._count("cut-fragment", where)
            s = s[:m.start("body")] + _ph("cut-fragment") + "\n" + s[m.end():]
        return self.text(s, where)

    # -- context rules -------------------------------------------------------------

    def _scrub_pairs(self, s: str, low: str, add: Callable[[str], None]) -> str:
        p = self._p

        def pair(m: re.Match[str]) -> tuple[int, int, str] | None:
            key = s[m.start("key"):m.end("key")]
            cls = _name_class(key, True)
            if cls is None:
                return None
            vs, ve = m.span("val")
            if not _value_is_secret(key, cls, s[vs:ve], True):
                return None
            kind = _cls_kind(cls)
            add(kind)
            return vs, ve, _ph(kind)

        s2 = _scan(p.pair_lc, low, s, pair, lambda m: m.start("val"))
        if s2 is not s:
            s, low = s2, _lower(s2)
        if "auth" in low or "cred" in low or "login" in low or "password" in low:
            def cred(m: re.Match[str]) -> tuple[int, int, str] | None:
                if _word_char_before(low, m.start()) and not m.group("kw").endswith("auth"):
                    return None  # (HTTPBasicAuth, session.auth: any prefix; login/creds: a word)
                vs, ve = m.span("val")
                inner = s[vs:ve]
                if not _value_is_secret("password", "password", inner, True):
                    return None
                add("password")
                return vs, ve, _ph("password")

            s = _scan(p.cred_call_lc, low, s, cred, lambda m: m.start("val"))
        return s

    def _scrub_yaml_blocks(self, s: str, low: str, add: Callable[[str], None]) -> str:
        """``password:`` then an indented value on the next lines, or ``token: >-`` /
        ``key: |`` block scalars: the whole value goes."""
        edit = _Edit(s)
        last = 0
        for m in self._p.yaml_key_lc.finditer(low):
            if m.start() < last:
                continue
            key = s[m.start("key"):m.end("key")]
            cls = _name_class(key, True)
            if cls is None:
                continue
            indent = len(m.group("ind").expandtabs())
            block = m.group("block")
            pos = m.end()
            first = end = -1
            stop = min(len(s), m.end() + 65536)  # (a value is not megabytes long: stay linear)
            while pos < stop:
                nl = s.find("\n", pos + 1)
                line_end = len(s) if nl < 0 else nl
                line = s[pos + 1:line_end] if s[pos] == "\n" else s[pos:line_end]
                start = line_end - len(line)
                if line.strip():
                    if len(line) - len(line.lstrip(" \t")) <= indent:
                        break
                    if first < 0:
                        if not block and _rx(_YAML_ENTRY).match(line):
                            break  # a nested mapping or list: its own keys are judged
                        first = start + len(line) - len(line.lstrip(" \t"))
                    end = start + len(line.rstrip())
                if nl < 0:
                    break
                pos = nl
            if first < 0:
                continue
            if not block and s.startswith(",", end - 1):
                end -= 1  # "password":\n  "value",  (JSON)
            if not block and end - first >= 2 and s[first] in "\"'" and s[end - 1] == s[first]:
                first, end = first + 1, end - 1
            value = s[first:end].strip()
            judged = value.split(None, 1)[0] if cls == "weak" else value  # token: prose is not a token
            if not _value_is_secret(key, cls, judged, True):
                continue
            kind = _cls_kind(cls)
            add(kind)
            edit.put(first, end, _ph(kind))
            last = end
        return edit.result()

    # -- encodings -------------------------------------------------------------------

    def _scrub_encoded(self, s: str, add: Callable[[str], None], depth: int) -> str:
        p = self._p

        if len(s) >= 16:
            # (a plain finditer loop: this runs on every run of 16+ word characters)
            edit = _Edit(s)
            for m in p.b64.finditer(s):
                run = m.group()
                if run.islower() or run.isupper():
                    continue  # hex digests, paths, identifiers: base64 of text mixes cases
                offset = m.start()
                for piece in (run.split("=") if "=" in run.rstrip("=") else (run,)):
                    # (`key=c2stcHJv...`: the run holds a name and a value)
                    start = offset
                    offset += len(piece) + 1
                    if len(piece) < 16 or piece.islower() or piece.isupper():
                        continue
                    end = start + len(piece)
                    while end < m.end() and s[end] == "=":
                        end += 1
                    data = _b64decode(s[start:end])
                    if data is None or len(data) < 8:
                        continue
                    basic = s[max(0, start - 6):start].lower().rstrip() == "basic"
                    kinds = self._decoded_hits(data, depth + 1, basic=basic)
                    if kinds:
                        add(kinds[0])
                        edit.put(start, end, _ph(kinds[0]))
            s = edit.result()
        if "%" in s:
            s = self._scrub_percent(s, add, depth)
        if "\\x00" in s:
            def esc(m: re.Match[str]) -> tuple[int, int, str] | None:
                text = m.group().replace("\\x00", "")
                kinds = self._hits(text, depth + 1)
                if not kinds:
                    return None
                add(kinds[0])
                return m.start(), m.end(), _ph(kinds[0])

            s = _scan(p.escaped_wide, s, s, esc, lambda m: m.end())
        return s

    def _scrub_percent(self, s: str, add: Callable[[str], None], depth: int) -> str:
        from urllib.parse import unquote, unquote_plus

        edit = _Edit(s)
        done = 0
        for m in _rx(_PCT).finditer(s):
            if m.start() < done:
                continue
            a, b = m.start(), m.end()
            while a > done and s[a - 1] in _PCT_RUN:
                a -= 1
            while b < len(s) and s[b] in _PCT_RUN:
                b += 1
            done = b
            run = s[a:b]
            if b - a < 12:
                continue  # (too short to hide a secret worth decoding: `a%20b`)
            kinds: list[str] = []
            for decoded in {unquote(run), unquote_plus(run)}:
                if decoded != run:
                    kinds = kinds or self._hits(decoded, depth + 1)
            if kinds:
                add(kinds[0])
                edit.put(a, b, _ph(kinds[0]))
        return edit.result()

    # -- objects ---------------------------------------------------------------

    def obj(self, o: Any, where: str) -> Any:
        """Recursively scrub JSON-like data (dicts, lists, tuples, sets, str, bytes).

        A dict key that looks secret (``password``, ``Authorization``,
        ``api_key``, ``client_secret`` ...) gets its value replaced entirely
        (strings/bytes; under such a key lists are redacted item by item and
        dicts recurse). In a list of strings (argv), the item after a flag like
        ``--token`` is redacted. Numbers, bools and None pass through; path
        objects stay paths; any other object becomes its scrubbed ``repr()``.
        """
        return self._obj(o, where, 0)

    def _secret_value(self, v: Any, key: str, cls: str, where: str, depth: int) -> Any:
        """The value under a secret-looking key (or after a secret flag)."""
        kind = _cls_kind(cls)
        if cls == "authorization" and isinstance(v, str) and v.strip().lower().startswith("bearer "):
            kind = "bearer"
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, (str, bytes, bytearray)):
            inner = v if isinstance(v, str) else bytes(v).decode("utf-8", "surrogateescape")
            if not inner.strip() or "<redacted:" in inner:
                return self._obj(v, where, depth + 1)
            if cls == "weak" and (
                inner.strip().lower() in _BOOLISH or not _value_is_secret(key, cls, inner, True)
            ):
                return self._obj(v, where, depth + 1)
            # A recognised token keeps its specific kind ("Bearer <redacted:jwt>");
            # anything else under a secret key is replaced whole.
            counts: Counts = {}
            scrubbed = self._scrub(inner, where, counts)
            if scrubbed != inner and _ONLY_PLACEHOLDER.fullmatch(scrubbed):
                self._merge(counts)
                return scrubbed if isinstance(v, str) else scrubbed.encode("utf-8", "surrogateescape")
            self._count(kind, where)
            return _ph(kind) if isinstance(v, str) else _ph(kind).encode()
        if isinstance(v, (int, float)):
            if cls == "password":
                self._count(kind, where)
                return _ph(kind)
            return v
        if isinstance(v, Mapping):
            return self._obj(v, where, depth + 1)
        if isinstance(v, (list, tuple, set, frozenset)):
            item_cls = "strong" if cls == "weak" else cls  # auth=("user", "pw")
            items = [self._secret_value(x, key, item_cls, where, depth + 1) for x in v]
            if isinstance(v, list):
                return items
            if hasattr(v, "_fields"):
                return type(v)(*items)
            try:
                return type(v)(items)
            except TypeError:
                return items
        return self._secret_value(repr(v), key, cls, where, depth)

    def _obj(self, o: Any, where: str, depth: int) -> Any:
        if depth > 100:
            return _ph("too-deep")
        if isinstance(o, str):
            return self.text(o, where)
        if o is None or isinstance(o, (bool, int, float)):
            return o
        if isinstance(o, (bytes, bytearray)):
            return self.bytes(bytes(o), where)
        if isinstance(o, Mapping):
            out = {}
            for k, v in o.items():
                cls = name_class(k if isinstance(k, str) else k.decode("utf-8", "replace")) \
                    if isinstance(k, (str, bytes)) else None
                nk = self._obj(k, where, depth + 1)
                if cls is not None:
                    out[nk] = self._secret_value(v, k, cls, where, depth)
                else:
                    out[nk] = self._obj(v, where, depth + 1)
            return out
        if isinstance(o, (list, tuple)):
            if len(o) == 2 and isinstance(o[0], (str, bytes)) and isinstance(o[1], (str, bytes, bytearray)):
                cls = name_class(o[0] if isinstance(o[0], str) else o[0].decode("utf-8", "replace"))
                if cls is not None:  # ("X-Api-Key", "..."), (b"authorization", b"Bearer ...")
                    pair = [self._obj(o[0], where, depth + 1), self._secret_value(o[1], str(o[0]), cls, where, depth)]
                    return pair if isinstance(o, list) else (type(o)(*pair) if hasattr(o, "_fields") else tuple(pair))
            res = []
            flag, flag_cls = "", None
            for x in o:
                if flag in ("u", "user", "proxy-user") and isinstance(x, str) and ":" in x and "<" not in x:
                    user, _, pw = x.partition(":")
                    flag = ""
                    if pw:
                        self._count("password", where)
                        res.append(self.text(user, where) + ":" + _ph("password"))
                        continue
                if flag_cls is not None and isinstance(x, str) and x and not x.startswith("-"):
                    res.append(self._secret_value(x, flag, flag_cls, where, depth))
                    flag_cls = None
                    continue
                flag_cls = None
                flag = ""
                if isinstance(x, str) and x in ("-u", "--user", "--proxy-user"):
                    flag = x.lstrip("-")
                elif isinstance(x, str) and x.startswith("-") and "=" not in x and len(x) > 2:
                    flag = x.lstrip("-")
                    flag_cls = _flag_class(flag) if flag else None
                res.append(self._obj(x, where, depth + 1))
            if isinstance(o, list):
                return res
            if hasattr(o, "_fields"):
                return type(o)(*res)
            return tuple(res)
        if isinstance(o, (set, frozenset)):
            return type(o)(self._obj(x, where, depth + 1) for x in o)
        if isinstance(o, os.PathLike):
            scrubbed = self.text(os.fspath(o), where)
            try:
                return type(o)(scrubbed)  # type: ignore[call-arg]
            except Exception:
                return scrubbed
        return self.text(repr(o), where)

    # -- environment -------------------------------------------------------------

    def env(self, environ: Mapping[str, str], where: str) -> dict[str, str]:
        """Names kept; values of secret-looking names become
        ``<redacted:env-secret>`` (except empty/boolean values and file paths,
        which are kept, scrubbed); every other value is scrubbed with :meth:`text`."""
        out: dict[str, str] = {}
        for name, value in environ.items():
            value = "" if value is None else str(value)
            if _name_class(str(name), False) is not None:
                v = value.strip()
                if v.lower() in _BOOLISH or "<redacted:" in v or _looks_like_path(v):
                    out[name] = self.text(value, where)
                else:
                    self._count("env-secret", where)
                    out[name] = _ph("env-secret")
            else:
                out[name] = self.text(value, where)
        return out


def _env_value_collectable(value: str) -> bool:
    v = value.strip()
    if len(v) < 6 or v.lower() in _BOOLISH or "<redacted:" in v:
        return False
    return not _looks_like_path(v)


def _forms(value: str) -> list[str]:
    """The value plus the encodings it is cheap to look for."""
    from urllib.parse import quote, quote_plus

    forms = [value]
    stripped = value.strip()
    if stripped != value and len(stripped) >= 3:
        forms.append(stripped)
    raw = stripped.encode("utf-8", "surrogatepass")
    for f in (
        quote(stripped, safe=""),
        quote(stripped),
        quote_plus(stripped),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        stripped.encode("unicode_escape").decode("ascii"),
        stripped.replace("\\", "\\\\").replace('"', '\\"'),
    ):
        if len(f) >= 6 and f not in forms:
            forms.append(f)
    return forms
