"""A failing test, made into a bundle: the library half of `pytest --reprex-capture`.

The plugin (pytest_reprex.capture) reads pytest's objects: the test's fixtures, its
temporary directories, its conftests. Everything after that is here, with no pytest
import: which values may be embedded (`Secrets`, `as_literal`, `as_pickle`), the
snapshot of its temporary files. `build_test_bundle` (reprex.capture.failed_test) re-runs
the test standalone or under pytest and builds the bundle from the run that fails like the
test did, so the bundle's expected signature is pytest's failure, produced by its own entry.
"""

from __future__ import annotations

import ast
import base64
import inspect
import os
import pickle
import sys
import textwrap
from pathlib import Path

from reprex.capture.inputs import SKIP_DIRS

MAX_PICKLE = 2 * 1024 * 1024
PICKLE_LINE = 76  # the width pytest_reprex.script wraps a pickle's base64 at
MAX_LITERAL = 20000
MAX_SNAPSHOT_FILE = 2 * 1024 * 1024
MAX_SNAPSHOT_TOTAL = 10 * 1024 * 1024
MAX_SNAPSHOT_FILES = 500
EAGER_BYTES = 64 * 1024  # files up to this size are read before the call; bigger ones only stat'ed
_EXCLUDED_PARTS = SKIP_DIRS | {".nox", "site-packages", "dist-packages"}


# -- paths ---------------------------------------------------------------------------

def _prefixes() -> list[Path]:
    out = []
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        try:
            out.append(Path(prefix).resolve())
        except OSError:
            pass
    return out


def under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class Tree:
    """The test run's root directory and what in it belongs to the project."""

    def __init__(self, base: Path, old_base: Path | None):
        self.base = base.resolve()
        self.old_base = old_base.resolve() if old_base else None
        self.prefixes = [p for p in _prefixes() if p != self.base]

    def rel(self, path) -> str | None:
        """Path relative to the base if it is a project file there, else None."""
        try:
            real = Path(path).resolve()
        except (OSError, ValueError):
            return None
        if not under(real, self.base):
            return None
        if self.old_base is not None and under(real, self.old_base):
            return None
        if any(under(real, p) for p in self.prefixes):
            return None
        rel = real.relative_to(self.base)
        if any(part in _EXCLUDED_PARTS for part in rel.parts[:-1]):
            return None
        return rel.as_posix() or "."


# -- values ----------------------------------------------------------------------------

class Secrets:
    """Tells whether text or bytes hold something the bundle's redactor would scrub.

    The check uses a `reprex.redact.Redactor` over the same environment as the bundle's
    own, so "holds a secret" means exactly "redaction would change it": a value that
    does must not be embedded in the script, where (as a pickle) redaction can't see it
    or (as a literal) it would be replaced and the value changed. `hidden` adds strings
    that count as secret too (the per-test tmp directory name pytest derived from a
    test id that carried a secret, possibly truncated: see `rename_test_tmp`). `carried`:
    the text inside the test's values of types that exist to carry secrets (`carried_secrets`),
    which no rule recognizes by name or shape."""

    def __init__(self, environ: dict | None = None, carried=()):
        from reprex.redact import Redactor

        self.carried = list(carried)
        self.red = Redactor(dict(os.environ) if environ is None else environ, extra_secrets=self.carried)
        self.hidden: list[str] = []

    def extra(self) -> list[str]:
        """What the bundle's own redactor must be told, beyond its environment."""
        return self.carried + self.hidden

    def redact(self, text: str) -> str:
        return self.red.text(text, "test")

    def in_text(self, text: str) -> bool:
        return self.red.text(text, "locals") != text or any(h in text for h in self.hidden)

    def in_bytes(self, blob: bytes) -> bool:
        if self.red.bytes(blob, "locals") != blob:
            return True
        return any(h.encode("utf-8", "surrogateescape") in blob for h in self.hidden)

    def in_value(self, value, blob: bytes | None = None) -> bool:
        """Whether a value's repr (or, when given, its pickle) holds a secret. A pickle is judged
        as capture judges argument pickles (reprex.capture.pickles.verdict, read, never loaded):
        a secret-carrying type (pydantic's SecretStr), a secret in any decoding, a value the
        repr hides; a value without a repr can't vouch for its pickle."""
        try:
            text = repr(value)
        except Exception:
            text = None
        if text is not None and self.in_text(text):
            return True
        if blob is None:
            return text is None
        if self.in_bytes(blob):
            return True
        from reprex.capture.pickles import verdict

        return verdict(blob, text, self.red) is not None


def carried_secrets(value, depth: int = 0) -> list[str]:
    """The plain text inside values of types made to carry secrets (pydantic's SecretStr and
    SecretBytes: anything with `get_secret_value`). Such a value's repr hides it, but the test's
    failure may not (`assert key.get_secret_value() == ...` under assertion rewriting), and
    nothing in the text says it is a secret: the bundle's redactor has to be told."""
    if depth > 4:
        return []
    try:
        getter = getattr(type(value), "get_secret_value", None)
        if callable(getter):
            secret = getter(value)
            if isinstance(secret, bytes):
                secret = secret.decode("utf-8", "replace")
            return [secret] if isinstance(secret, str) and len(secret) >= 3 else []
        if isinstance(value, (str, bytes, int, float, type)) or value is None or inspect.ismodule(value):
            return []
        if isinstance(value, dict):
            items = [v for pair in list(value.items())[:200] for v in pair]
        elif isinstance(value, (list, tuple, set, frozenset)):
            items = list(value)[:200]
        else:
            attrs = getattr(value, "__dict__", None)
            items = list(attrs.values())[:100] if isinstance(attrs, dict) else []
    except Exception:  # a property or __getattr__ that raises: nothing to learn there
        return []
    return [s for item in items for s in carried_secrets(item, depth + 1)]


def type_name(value) -> str:
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def as_literal(value, secrets: Secrets | None = None) -> str | None:
    """The value's repr when it round-trips through `ast.literal_eval` and holds no secret."""
    try:
        text = repr(value)
    except Exception:
        return None
    if len(text) > MAX_LITERAL:
        return None
    try:
        back = ast.literal_eval(text)
    except Exception:
        return None
    try:
        if type(back) is not type(value) or back != value:
            return None
    except Exception:
        return None
    if secrets is not None and secrets.in_text(text):
        return None
    return text


def as_pickle(value, secrets: Secrets | None = None) -> str | None:
    """The value's pickle, base64, when it loads back and neither its bytes nor its repr
    hold a secret (the bundle's redaction only ever sees the base64 text)."""
    try:
        blob = pickle.dumps(value, protocol=4)
        if len(blob) > MAX_PICKLE:
            return None
        pickle.loads(blob)
    except Exception:
        return None
    if secrets is not None and secrets.in_value(value, blob):
        return None
    text = base64.b64encode(blob).decode("ascii")
    # The bundle's redactor scrubs the text the script carries; a match there (a run of
    # zero bytes reads as a token prefix) would corrupt the pickle, so that text is judged too:
    # as one line and wrapped as the script wraps it (pytest_reprex.script.PICKLE_LINE).
    if secrets is not None and (secrets.in_text(text) or secrets.in_text(textwrap.fill(text, PICKLE_LINE))):
        return None
    return text


def holds_secret(value) -> bool:
    """For a value `as_literal` and `as_pickle` turned down with the secrets check: whether
    they did so only because of a secret in it."""
    return as_literal(value) is not None or as_pickle(value) is not None


# -- pytest's temporary directories, as snapshot ------------------------------------------

def paths_in(value, depth=0):
    """Strings in a fixture value that look like paths (where its temporary files may be)."""
    if depth > 4:
        return
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if isinstance(text, str) and len(text) < 4096 and os.sep in text:
            yield text
        return
    if isinstance(value, (list, tuple, set, frozenset)):
        for v in list(value)[:200]:
            yield from paths_in(v, depth + 1)
    elif isinstance(value, dict):
        for k, v in list(value.items())[:200]:
            yield from paths_in(k, depth + 1)
            yield from paths_in(v, depth + 1)
    else:
        attrs = getattr(value, "__dict__", None)
        if isinstance(attrs, dict) and not isinstance(value, type) and not inspect.ismodule(value):
            for v in list(attrs.values())[:100]:
                yield from paths_in(v, depth + 1)


def snapshot_files(base: Path, roots: list[Path], tmp: Path | None) -> dict:
    """What `roots` (under pytest's base temp dir `base`; `tmp` is the test's tmp_path) hold now.

    Runs before every test's call while capturing, so it stays cheap: small files are read
    now, bigger ones only noted (size, mtime) and read if the test fails and they are
    unchanged (see `materialize`)."""
    files: dict[str, bytes | tuple] = {}
    dirs: set[str] = set()
    skipped: list[dict] = []
    total = 0
    for root in roots:
        walk = [root] if root.is_file() else sorted(p for p in root.rglob("*"))
        if root.is_dir():
            dirs.add(root.relative_to(base).as_posix())
        for path in walk:
            rel = path.relative_to(base).as_posix()
            if path.is_symlink():
                continue
            if path.is_dir():
                dirs.add(rel)
                continue
            if rel in files or not path.is_file():
                continue
            size = path.stat().st_size
            if size > MAX_SNAPSHOT_FILE or total + size > MAX_SNAPSHOT_TOTAL or len(files) >= MAX_SNAPSHOT_FILES:
                skipped.append({"path": rel, "size": size, "reason": "over the snapshot budget"})
                continue
            if size <= EAGER_BYTES:
                files[rel] = path.read_bytes()
            else:
                st = path.stat()
                files[rel] = (str(path), st.st_size, st.st_mtime_ns)
            total += size
    tmp_rel = tmp.relative_to(base).as_posix() if tmp is not None else None
    return {"base": str(base), "tmp_rel": tmp_rel, "files": files, "dirs": sorted(dirs), "skipped": skipped}


def materialize(snap: dict | None) -> dict[str, bytes]:
    """The snapshot's file contents; big files the test changed since are dropped (and noted)."""
    if not snap:
        return {}
    out = {}
    for rel, data in snap["files"].items():
        if isinstance(data, bytes):
            out[rel] = data
            continue
        path, size, mtime = data
        try:
            st = os.stat(path)
            if (st.st_size, st.st_mtime_ns) == (size, mtime):
                out[rel] = Path(path).read_bytes()
                continue
        except OSError:
            pass
        snap["skipped"].append({"path": rel, "size": size, "reason": "changed by the test before it failed"})
    return out


def rename_test_tmp(snap: dict | None, secrets: Secrets) -> dict | None:
    """The snapshot with the test's own tmp directory renamed, for a test whose id carried a
    secret: pytest names that directory after the test id (sanitized, cut to 30 characters),
    so it may hold a piece of the secret the redactor no longer recognizes. Its old name
    becomes a `hidden` secret: values holding paths into it are not embedded either."""
    if not snap or not snap.get("tmp_rel"):
        return snap
    old = snap["tmp_rel"].split("/")[0]
    taken = {rel.split("/")[0] for rel in [*snap["files"], *snap["dirs"]]}
    n, new = 0, "tmp_path0"
    while new in taken:
        n += 1
        new = f"tmp_path{n}"

    def move(rel: str) -> str:
        return new + rel[len(old):] if rel == old or rel.startswith(old + "/") else rel

    secrets.hidden.append(old)
    return {**snap, "tmp_rel": move(snap["tmp_rel"]), "files": {move(k): v for k, v in snap["files"].items()},
            "dirs": sorted(move(d) for d in snap["dirs"]),
            "skipped": [{**entry, "path": move(entry["path"])} for entry in snap["skipped"]]}
