"""The one rule for "this name looks secret", and the class of secret it names.

Variable, key, header, flag, attribute, class and file names all go through
:func:`looks_secret_name`, so the env probe, the pickle check, the pipeline's
locals and every text rule agree on what a secret-looking name is.
"""

from __future__ import annotations

import re
from functools import lru_cache

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


def words_of(name: str) -> list[str]:
    return [w.lower() for w in _WORD_SPLIT.split(name) if w]


@lru_cache(maxsize=4096)
def classify(name: str, strict: bool) -> str | None:
    """Classify a variable / key / header / flag name.

    Returns ``"password"``, ``"authorization"``, ``"strong"`` (clearly a
    secret), ``"weak"`` (token/session/auth-ish: in prose, values must look
    random) or None. ``strict`` is for keys found in text and dicts (fewer false
    positives: ``key`` needs a qualifier like ``api_key``); environment
    variable names use the broad rules (any ``*_KEY``, ``PRIVATE``, ``SESSION``).
    """
    words = words_of(name)
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
    return classify(name, strict) is not None


def name_class(name: str, strict: bool = True) -> str | None:
    """``password`` / ``authorization`` / ``strong`` / ``weak`` / None (see :func:`looks_secret_name`)."""
    return classify(name, strict) if isinstance(name, str) and len(name) <= 200 else None


def flag_class(name: str) -> str | None:
    """A command-line flag (``--token``): naming it is intent, so weak is strong."""
    cls = classify(name, True)
    return "strong" if cls == "weak" else cls


def cls_kind(cls: str) -> str:
    """The kind a value under a name of class ``cls`` is reported as."""
    return cls if cls in ("password", "authorization") else "config-secret"
