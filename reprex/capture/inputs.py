"""Pick the local files a run read, within a size budget, for the bundle's files/.

Only files under the working directory are taken (plus the entry script), with
paths relative to it, and the imported code of editable installs (the user's checkout,
never pinned as a release): a checkout outside the working directory lands under
`_reprex_editable/<name>/`, and each import root becomes an entry `pythonpath` dir. Files that are secrets as a whole (keys, .env, .netrc, a
`secrets/` directory, a file that is one token) are listed with the reason, never
copied, unless the user includes them explicitly (then they are still redacted like
every other carrier).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

DEFAULT_MAX_TOTAL = 5 * 1024 * 1024
DEFAULT_MAX_FILE = 2 * 1024 * 1024
SECRET_FILE_PATTERNS = (".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*", "id_ed25519*", "id_ecdsa*",
                        ".netrc", "_netrc", ".pypirc", ".npmrc", "credentials", "credentials.*", "*.kdbx",
                        ".git-credentials", "service-account*.json", ".dockercfg", "config.json.docker")
_RECORDER_DIR = (Path(__file__).parent.parent / "_inject").resolve()
SKIP_DIRS = {".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache", ".tox"}
EDITABLE_DIR = "_reprex_editable"
_MAX_TREE_FILES = 5000  # source files walked per editable package (the byte budget still applies)


@dataclass
class EditableTree:
    """Imported top-level modules of one editable install that share an import root."""

    name: str  # the distribution
    root: Path  # the directory on sys.path they were imported from
    files: list[Path] = field(default_factory=list)


@dataclass
class Inputs:
    files: dict[str, Path] = field(default_factory=dict)  # bundle-relative path -> source path
    skipped: list[dict] = field(default_factory=list)  # {"path", "size", "reason"}
    total: int = 0
    script_rel: str | None = None  # where the entry script landed
    pythonpath: list[str] = field(default_factory=list)  # bundle-relative import roots of editables

    def manifest(self) -> dict:
        return {"copied": sorted(self.files), "skipped": self.skipped, "total_bytes": self.total}


def _matches(rel: str, patterns: Iterable[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def collect_inputs(cwd: Path, *, script: Path | None, opened: Iterable[str], app_modules: Iterable[str] = (),
                   include: Iterable[str] = (), exclude: Iterable[str] = (),
                   max_file: int = DEFAULT_MAX_FILE, max_total: int = DEFAULT_MAX_TOTAL,
                   editables: Iterable[EditableTree] = ()) -> Inputs:
    cwd = Path(cwd).resolve()
    include = list(include)
    exclude = list(exclude)
    out = Inputs()
    editables = list(editables)
    homes = _editable_homes(editables, cwd)  # import root -> its bundle-relative dir
    outside = sorted(((root, rel) for root, rel in homes.items() if not _within(root, cwd)),
                     key=lambda item: -len(item[0].parts))
    candidates: list[tuple[Path, bool, bool]] = []  # (path, explicitly wanted, an editable's package file)
    if script is not None:
        candidates.append((Path(script), True, False))
    for pattern in include:  # explicit ones first: the first sighting of a file decides
        for match in sorted(cwd.glob(pattern)):
            if match.is_file():
                candidates.append((match, True, False))
    for path in list(opened) + list(app_modules):
        candidates.append((Path(path), False, False))
    candidates += [(f, False, True) for tree in editables for f in tree.files]
    seen: set[Path] = set()
    over: list[int] = []  # sizes of package files that did not fit: one line for all of them
    for path, explicit, package_file in candidates:
        try:
            real = path.resolve()
        except OSError:
            continue
        if real in seen or not real.is_file() or real.parent == _RECORDER_DIR:
            continue
        seen.add(real)
        is_script = script is not None and real == Path(script).resolve()
        try:
            rel = real.relative_to(cwd).as_posix()
        except ValueError:
            home = next(((root, h) for root, h in outside if _within(real, root)), None)
            if is_script:
                rel = real.name  # the entry script from elsewhere: run it from the work dir
            elif home is not None:  # an editable checkout elsewhere: beside the work dir
                rel = f"{home[1]}/{real.relative_to(home[0]).as_posix()}"
            else:
                out.skipped.append({"path": str(real), "size": _size(real), "reason": "outside the working directory"})
                continue
        if any(part in SKIP_DIRS for part in rel.split("/")[:-1]):
            continue
        size = _size(real)
        if _matches(rel, exclude):
            out.skipped.append({"path": rel, "size": size, "reason": "excluded"})
            continue
        secret = None if (explicit and _matches(rel, include)) else secret_file_reason(rel, real, size)
        if secret:
            out.skipped.append({"path": rel, "size": size, "reason": f"{secret} (use --include to add it)"})
            continue
        if not (explicit and _matches(rel, include)) and _is_binary(real):
            out.skipped.append({"path": rel, "size": size,
                                "reason": "binary or compressed: can't be checked for secrets (use --include to add it)"})
            continue
        if package_file and (size > max_file or out.total + size > max_total):
            over.append(size)
            continue
        if size > max_file:
            out.skipped.append({"path": rel, "size": size, "reason": f"over the per-file limit ({max_file} bytes)"})
            continue
        if out.total + size > max_total:
            out.skipped.append({"path": rel, "size": size, "reason": f"over the total budget ({max_total} bytes)"})
            continue
        out.files["files/" + rel] = real
        out.total += size
        if is_script:
            out.script_rel = rel
    if over:
        out.skipped.append({"path": EDITABLE_DIR, "size": sum(over),
                            "reason": f"{len(over)} more source files of editable installs: over the budget"})
    copied = set(out.files)
    for root, home in homes.items():
        if home not in out.pythonpath and any(
                k.startswith("files/" + ("" if home == "." else home + "/")) for k in copied):
            out.pythonpath.append(home)
    return out


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _editable_homes(editables: list[EditableTree], cwd: Path) -> dict[Path, str]:
    """Where each import root lands in files/: as it lies under the working dir, else beside it."""
    from reprex.pins import canonical

    homes: dict[Path, str] = {}
    for tree in editables:
        if tree.root in homes:
            continue
        if _within(tree.root, cwd):
            homes[tree.root] = tree.root.relative_to(cwd).as_posix() or "."
            continue
        home, n = f"{EDITABLE_DIR}/{canonical(tree.name)}", 1
        while home in homes.values():
            n += 1
            home = f"{EDITABLE_DIR}/{canonical(tree.name)}-{n}"
        homes[tree.root] = home
    return homes


def editable_trees(modules: dict[str, str | None], roots: dict[str, str]) -> list[EditableTree]:
    """The imported top-level modules of editable installs (`roots`: distribution -> checkout),
    with every source file of an imported package: a cached .pyc means an import opens no
    .py, so what the run opened is not the whole package."""
    from reprex.pins import under

    trees: dict[Path, EditableTree] = {}
    for name, path in sorted(modules.items()):
        if not path or name in ("__main__", "sitecustomize"):
            continue
        dist = next((d for d, root in sorted(roots.items()) if under(path, root)), None)
        if dist is None:
            continue
        real = Path(path).resolve()
        package = real.parent if real.stem == "__init__" else None
        root = (package or real).parent
        tree = trees.setdefault(root, EditableTree(dist, root))
        tree.files.extend(_sources(package) if package is not None else [real])
    return list(trees.values())


def _sources(package: Path) -> list[Path]:
    import os

    out: list[Path] = []
    for here, dirs, names in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        out.extend(Path(here) / n for n in sorted(names) if n.endswith((".py", ".pyi")))
        if len(out) >= _MAX_TREE_FILES:
            return out[:_MAX_TREE_FILES]
    return out


_CODE_SUFFIXES = (".py", ".pyi", ".pyx")
_SECRET_DIRS = frozenset({"secrets", ".secrets", "secret", "credentials", ".credentials", "private", "keys", ".ssh"})
_ONE_TOKEN = re.compile(r"[\x21-\x7e]{8,4096}")
_NOT_A_TOKEN = re.compile(r"v?\d+(?:\.\d+)+[\w.+-]*|[./~][\w./-]*|[a-z]+://[^@]*|true|false|none|null", re.I)


def secret_file_reason(rel: str, path: Path, size: int) -> str | None:
    """Why a file is a secret as a whole (so it is listed, never copied), or None.

    By name: the usual credential files, anything under a `secrets/`-like directory, a
    data file whose name says secret (`db_password.txt`, `key.txt`; code files are
    scrubbed instead, so the program still runs). By content: a private key, a service
    account, or a whole file that is one token-like line."""
    from reprex.redact import name_class

    if _matches(rel, SECRET_FILE_PATTERNS):
        return "looks like a secrets file"
    parts = rel.split("/")
    if any(part.lower() in _SECRET_DIRS for part in parts[:-1]):
        return "lies in a secrets directory"
    stem = parts[-1].split(".", 1)[0] or parts[-1]
    if not parts[-1].endswith(_CODE_SUFFIXES) and name_class(stem, strict=False) in ("password", "strong", "authorization"):
        return "its name says it holds a secret"
    if size > 64 * 1024:
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return None
    if b"PRIVATE KEY-----" in head or (b'"private_key"' in head and b"service_account" in head):
        return "holds a private key"
    text = head.decode("utf-8", "replace").strip()
    if "\n" not in text and _ONE_TOKEN.fullmatch(text) and not _NOT_A_TOKEN.fullmatch(text):
        letters, digits = any(c.isalpha() for c in text), any(c.isdigit() for c in text)
        if (letters and digits) or (len(text) >= 16 and text != text.lower() and text != text.upper()):
            return "its whole content is one token-like line: looks like a secret"
    return None


def _is_binary(path: Path) -> bool:
    """Redaction reads text; a gzip, a pickle or an image could carry a secret it can't see."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8192)
    except OSError:
        return True
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 4  # a multi-byte character cut by the 8 KiB read is fine
    return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def app_module_files(modules: dict[str, str | None], cwd: Path) -> list[str]:
    """Files of imported modules that live in the working tree (the user's own code)."""
    cwd = Path(cwd).resolve()
    out = []
    for name, path in modules.items():
        if not path:
            continue
        real = Path(path).resolve()
        if cwd in real.parents and "site-packages" not in real.parts and "dist-packages" not in real.parts:
            out.append(str(real))
    return out
