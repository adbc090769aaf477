"""May an argument pickle go into a bundle? Decided by reading it, never by loading it.

A pickle is only as safe as every string inside it, and a repr can hide what the pickle
keeps: pydantic's ``SecretStr('**********')``, a ``field(repr=False)``, an object whose
``__repr__`` masks its state. So the pickle's opcodes are walked with :mod:`pickletools`
(nothing is unpickled or imported) and it is left out when

* it references a type that exists to carry secrets (``SecretStr``, cookie jars, auth
  objects, credentials, private keys, SSL contexts ...);
* any string or bytes constant in it holds something the redactor would replace, in
  every decoding the redactor tries (base64, percent-encoding, UTF-16/32 ...);
* a constant named like a secret (``password``, ``api_key``) is followed by a value;
* a value in it doesn't show in the argument's repr (the repr hides a field).
"""

from __future__ import annotations

import pickletools
import re
from typing import Any

# Modules whose objects carry credentials whatever their class is called.
SECRET_MODULES = (
    "http.cookiejar", "http.cookies", "requests.auth", "requests.cookies", "httpx._auth", "aiohttp.helpers",
    "urllib.request", "botocore.credentials", "boto3.session", "google.oauth2", "google.auth", "paramiko",
    "ssl", "_ssl", "keyring", "oauthlib", "authlib", "jwt", "cryptography.hazmat", "azure.identity",
    "azure.core.credentials", "pydantic.types", "pydantic.v1.types", "pydantic_core", "hvac", "smtplib",
    "ftplib", "imaplib", "poplib", "netrc", "secrets", "getpass", "huggingface_hub.utils._auth",
)
_NAME_SHAPED = re.compile(r"_{0,2}[a-z][a-z0-9_]{0,63}")

_STRING_OPS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
                         "SHORT_BINUNICODE", "BINUNICODE8"})
_BYTES_OPS = frozenset({"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})


def walk(blob: bytes) -> tuple[list[str], list[Any]]:
    """(globals referenced as ``module.qualname``, string and bytes constants in order).
    Raises ValueError for something that isn't a well-formed pickle."""
    globals_: list[str] = []
    values: list[Any] = []
    memo: dict[int, Any] = {}
    recent: list[Any] = [None, None]  # the last two things pushed (strings, or None)
    try:
        for op, arg, _pos in pickletools.genops(blob):
            name = op.name
            if name in _STRING_OPS or name in _BYTES_OPS:
                value = arg
                if name in ("STRING", "BINSTRING", "SHORT_BINSTRING") and isinstance(value, bytes):
                    value = value.decode("latin-1")
                values.append(value)
                recent = [recent[-1], value]
            elif name == "GLOBAL" or name == "INST":
                module, _, qual = str(arg).partition(" ")
                globals_.append(f"{module}.{qual}")
                recent = [recent[-1], None]
            elif name == "STACK_GLOBAL":
                module, qual = recent
                if isinstance(module, str) and isinstance(qual, str):
                    globals_.append(f"{module}.{qual}")
                    # the two names are references, not values
                    for ref in (qual, module):
                        if values and values[-1] == ref:
                            values.pop()
                else:
                    globals_.append("<unknown>.<unknown>")
                recent = [recent[-1], None]
            elif name == "MEMOIZE":
                memo[len(memo)] = recent[-1]
            elif name in _PUT_OPS:
                memo[int(arg)] = recent[-1]
            elif name in _GET_OPS:
                value = memo.get(int(arg))
                recent = [recent[-1], value]
            elif name in ("EXT1", "EXT2", "EXT4"):
                globals_.append("<extension>.<registry>")
                recent = [recent[-1], None]
            elif op.stack_after:
                recent = [recent[-1], None]
    except Exception as exc:  # genops raises ValueError and friends on garbage
        raise ValueError(f"not a readable pickle: {type(exc).__name__}") from None
    return globals_, values


def secret_type(qualname: str) -> bool:
    """Does this global name a type (or function) that exists to carry secrets?"""
    from reprex.redact import looks_secret_name

    module, _, name = qualname.rpartition(".")
    if any(module == m or module.startswith(m + ".") for m in SECRET_MODULES):
        return True
    if module == "<extension>":
        return True  # copyreg extension codes: can't tell what they are
    return any(looks_secret_name(part) for part in name.split(".") if part)


def verdict(blob: bytes, repr_text: str | None, red) -> str | None:
    """None when the pickle may be kept, else why it must be left out (never a value)."""
    if repr_text is None:
        return "its value is too large to check for secrets"
    try:
        globals_, values = walk(blob)
    except ValueError as exc:
        return str(exc)
    for qual in globals_:
        if secret_type(qual):
            return f"holds a {qual.rsplit('.', 1)[-1]} (a type that carries secrets)"
    from reprex.redact import name_class, value_is_secret

    texts = [v for v in values if isinstance(v, str)]
    if texts and red.finds("\n".join(texts)):
        return "holds a secret"
    for v in values:
        if isinstance(v, (bytes, bytearray)) and red.finds(bytes(v)):
            return "holds a secret"
    for key, value in zip(values, values[1:]):
        if not isinstance(key, str) or len(key) > 80 or not value:
            continue
        cls = name_class(key)
        if cls is None:
            continue
        inner = value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")
        if value_is_secret(key, cls, inner, True):
            return f"holds a value named {key!r}, which looks secret"
    for v in texts:
        if len(v) < 4 or _NAME_SHAPED.fullmatch(v):
            continue  # attribute names and short tags
        if v not in repr_text and repr(v)[1:-1] not in repr_text:
            return "holds a value its repr doesn't show (a hidden field)"
    return None
