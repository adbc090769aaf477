"""Pick the local files a run read, within a size budget, for the bundle's files/.

Only files under the working directory are taken (plus the entry script), with
paths relative to it, and the imported code of editable installs (the user's checkout,
never pinned as a release): a checkout outside the working directory lands under
`_reprex_editable/<name>/`, and each import root becomes an entry `pythonpath` dir. Files that are secrets as a whole (keys, .env, .netrc, a
`secrets/` directory, a file that is one token) are listed with the reason, never
copied, unless the user includes them explicitly (then they are still redacted like
every other carrier).

The project's own packages come whole: for each package directory under the working dir
(not site-packages, not a venv) that holds a module the run read or imported, its other
`.py` files (sibling modules, subpackages) are bundled too, after everything the run read
and within the same budgets. A failure at import time stops before the package's next
import, which the fixed run reaches (requests-toolbelt 0.10.1 + urllib3 2: `from . import
extra` after the import that failed): without the rest of the package that run fails
another way, never `fixed`. What did not fit is listed in the skip list.
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
_NOT_PACKAGE_DIRS = frozenset({"site-packages", "dist-packages"})
_MAX_SIBLING_LINES = 20  # skip-list lines naming left-out package files one by one; then one per package
_SIBLING_NOTE = ": another source file of a package the run imported"


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
                   editables: Iterable[EditableTree] = (), siblings: bool = True) -> Inputs:
    """The files for files/: the entry script, `include` matches, what the run opened and
    imported (`opened`, `app_modules`), editable checkouts, then (`siblings`) the other source
    files of the project's packages those lie in; each within `max_file` and `max_total`."""
    cwd = Path(cwd).resolve()
    opened = list(opened)
    app_modules = list(app_modules)
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
    for path in opened + app_modules:
        candidates.append((Path(path), False, False))
    candidates += [(f, False, True) for tree in editables for f in tree.files]
    sibling_of: dict[Path, Path] = {}  # a package's other source file -> its top package dir
    first_sibling = len(candidates)  # the candidates from here on are package files (sibling_of)
    if siblings:
        hints = ([script] if script is not None else []) + opened + app_modules
        sources, truncated = package_siblings(cwd, hints)
        for package, files in sources.items():
            for f in files:
                sibling_of.setdefault(f, package)
        candidates += [(f, False, False) for f in sorted(sibling_of, key=lambda f: (len(f.parts), f))]
        for package in truncated:
            out.skipped.append({"path": package.relative_to(cwd).as_posix() + "/", "size": 0,
                                "reason": f"more than {_MAX_TREE_FILES} source files in the package: "
                                          "the rest were not looked at"})
    seen: set[Path] = set()
    over: list[int] = []  # sizes of package files that did not fit: one line for all of them
    left_out: list[tuple[Path, dict]] = []  # package siblings not bundled: (their package, skip entry)
    for i, (path, explicit, package_file) in enumerate(candidates):
        sibling = sibling_of[path] if i >= first_sibling else None
        if sibling is None:
            skip = out.skipped.append
        else:
            def skip(entry: dict, package: Path = sibling) -> None:
                left_out.append((package, entry))
        try:  # a package file's folder is resolved already: only a link needs resolving
            real = path.resolve() if sibling is None or path.is_symlink() else path
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
            elif home is not None and sibling is None:  # an editable checkout elsewhere: beside the work dir
                rel = f"{home[1]}/{real.relative_to(home[0]).as_posix()}"
            elif sibling is not None:
                continue  # a package file linked from outside the project: never bundled, nothing to say
            else:
                skip({"path": str(real), "size": _size(real), "reason": "outside the working directory"})
                continue
        if any(part in SKIP_DIRS for part in rel.split("/")[:-1]):
            continue
        size = _size(real)
        if _matches(rel, exclude):
            skip({"path": rel, "size": size, "reason": "excluded"})
            continue
        if sibling is not None and (size > max_file or out.total + size > max_total):
            # before its content is read: a big package costs a stat per file once the budget is spent
            limit = (f"over the per-file limit ({max_file} bytes)" if size > max_file
                     else f"over the total budget ({max_total} bytes)")
            skip({"path": rel, "size": size, "reason": limit + _SIBLING_NOTE})
            continue
        secret = None if (explicit and _matches(rel, include)) else secret_file_reason(rel, real, size)
        if secret:
            skip({"path": rel, "size": size, "reason": f"{secret} (use --include to add it)"})
            continue
        if not (explicit and _matches(rel, include)) and _is_binary(real):
            skip({"path": rel, "size": size,
                  "reason": "binary or compressed: can't be checked for secrets (use --include to add it)"})
            continue
        if package_file and (size > max_file or out.total + size > max_total):
            over.append(size)
            continue
        if size > max_file:
            skip({"path": rel, "size": size, "reason": f"over the per-file limit ({max_file} bytes)"})
            continue
        if out.total + size > max_total:
            skip({"path": rel, "size": size, "reason": f"over the total budget ({max_total} bytes)"})
            continue
        out.files["files/" + rel] = real
        out.total += size
        if is_script:
            out.script_rel = rel
    if over:
        out.skipped.append({"path": EDITABLE_DIR, "size": sum(over),
                            "reason": f"{len(over)} more source files of editable installs: over the budget"})
    out.skipped.extend(_sibling_lines(left_out, cwd))
    copied = set(out.files)
    for root, home in homes.items():
        if home not in out.pythonpath and any(
                k.startswith("files/" + ("" if home == "." else home + "/")) for k in copied):
            out.pythonpath.append(home)
    return out


def package_siblings(cwd: Path, hints: Iterable) -> tuple[dict[Path, list[Path]], list[Path]]:
    """The project's packages that hold one of `hints` (files the run read or imported), each
    with all its `.py` files (sibling modules and subpackages, shallow ones first), and the
    packages with more than _MAX_TREE_FILES of them (the rest not walked).

    A package is the outermost directory with an `__init__.py` above a hint, strictly under
    `cwd` (the working dir is never a package of its own here): never in site-packages, a
    venv, a hidden or SKIP_DIRS directory. A `__pycache__/*.pyc` hint counts for its package."""
    cwd = Path(cwd).resolve()
    tops: dict[Path, Path | None] = {}  # a hint's directory -> its top package (None: not in one)
    packages: set[Path] = set()
    for hint in hints:
        try:
            folder = Path(hint).resolve().parent
        except (OSError, ValueError, TypeError):
            continue
        if folder.name == "__pycache__":
            folder = folder.parent
        if folder not in tops:
            tops[folder] = _top_package(folder, cwd)
        if tops[folder] is not None:
            packages.add(tops[folder])
    found: dict[Path, list[Path]] = {}
    truncated: list[Path] = []
    for package in sorted(packages):
        if any(_within(package, other) for other in packages if other != package):
            continue
        files, more = _package_sources(package)
        found[package] = files
        if more:
            truncated.append(package)
    return found, truncated


def _top_package(folder: Path, cwd: Path) -> Path | None:
    if folder == cwd or cwd not in folder.parents:
        return None
    parts = folder.relative_to(cwd).parts
    if any(part in SKIP_DIRS or part in _NOT_PACKAGE_DIRS or part.startswith(".") for part in parts):
        return None
    if not (folder / "__init__.py").is_file():
        return None
    top = folder
    while top.parent != cwd and (top.parent / "__init__.py").is_file():
        top = top.parent
    # a venv under the working dir (any name): its packages are installed ones, not the project's
    here = cwd
    for part in top.relative_to(cwd).parts:
        here = here / part
        if (here / "pyvenv.cfg").exists():
            return None
    return top


def _package_sources(package: Path) -> tuple[list[Path], bool]:
    """A package's .py files (not following links to directories), shallow ones first, at most
    _MAX_TREE_FILES; and whether there were more."""
    import os

    out: list[Path] = []
    for here, dirs, names in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and d not in _NOT_PACKAGE_DIRS
                         and not d.startswith(".") and not os.path.exists(os.path.join(here, d, "pyvenv.cfg")))
        out.extend(Path(here) / n for n in sorted(names) if n.endswith(".py"))
        if len(out) > _MAX_TREE_FILES:
            break
    out.sort(key=lambda f: (len(f.parts), f))
    return out[:_MAX_TREE_FILES], len(out) > _MAX_TREE_FILES


def _sibling_lines(left_out: list[tuple[Path, dict]], cwd: Path) -> list[dict]:
    """Skip-list lines for package files left out: the first few one by one, then one per package."""
    lines = [entry for _, entry in left_out[:_MAX_SIBLING_LINES]]
    rest: dict[Path, list[dict]] = {}
    for package, entry in left_out[_MAX_SIBLING_LINES:]:
        rest.setdefault(package, []).append(entry)
    for package, entries in sorted(rest.items()):
        reasons = sorted({e["reason"].split(" (", 1)[0].split(":", 1)[0] for e in entries})
        lines.append({"path": package.relative_to(cwd).as_posix() + "/", "size": sum(e["size"] for e in entries),
                      "reason": f"{len(entries)} more source files of this package left out "
                                f"({'; '.join(reasons)})"})
    return lines


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
