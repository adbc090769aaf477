"""Bundle format v1 (a contract, see DESIGN.md): manifest, deterministic zip, safe reads.

Writing is deterministic (sorted entries, fixed timestamps and modes), so the same
bundle always gives the same bytes. Reading never trusts the archive: it refuses
absolute paths, `..`, links, duplicates, oversized entries and zip bombs (per entry and
for the archive as a whole) before anything is written; every JSON file goes through one
loader with size and depth limits; the manifest is validated against the shipped JSON
Schema, run.json and environment.json by the types the tools rely on; and the content
must hash to the manifest's id, so an edited or tampered bundle says so.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

from reprex.bundle_shapes import SIDE_FILES
from reprex.errors import BundleError

SCHEMA_VERSION = 1
MANIFEST = "reprex.json"
SUFFIX = ".reprex.zip"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
MAX_ENTRIES = 5000
MAX_ENTRY_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 256 * 1024 * 1024
MAX_RATIO = 200  # uncompressed / compressed, for entries over 1 MiB, and for the whole archive
RATIO_FLOOR = 8 * 1024 * 1024  # below this much in all, the whole-archive ratio doesn't matter
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_JSON_BYTES = 32 * 1024 * 1024  # run.json, environment.json
MAX_JSON_DEPTH = 100  # real files nest under 60 (a 20-deep exception chain with locals)
SCHEMA_FILE = Path(__file__).parent / "schema" / "bundle-v1.schema.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _nests_over(value, limit: int) -> bool:
    """Deeper than `limit` containers? Walked without recursion, so any depth is safe to ask."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def load_json(data: bytes, what: str, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH):
    """The one way a bundle's JSON is parsed: bounded in size and nesting (a deep file would
    crash the parser or whatever walks it next), every failure a one-line BundleError."""
    if len(data) > max_bytes:
        raise BundleError(f"{what} is {len(data)} bytes, over the {max_bytes}-byte limit; refusing it")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError(f"{what} is not UTF-8 text") from None
    try:
        value = json.loads(text)  # the C parser stops at the recursion limit with RecursionError
    except json.JSONDecodeError as exc:
        raise BundleError(f"{what} is not valid JSON ({_one_line(exc)})") from None
    except RecursionError:
        value = None
        deep = True
    except ValueError as exc:
        raise BundleError(f"{what} can't be read ({_one_line(exc) or type(exc).__name__})") from None
    else:
        deep = isinstance(value, (dict, list)) and _nests_over(value, max_depth)
    if deep:
        raise BundleError(f"{what} nests deeper than {max_depth} levels; refusing it")
    return value


def canonical_json(data) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def safe_member_name(name: str) -> str:
    """The entry name if it is a plain relative path inside the bundle, else BundleError."""
    if not name or "\x00" in name or "\\" in name:
        raise BundleError(f"unsafe entry name {name!r}")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise BundleError(f"unsafe entry {name!r}: absolute path")
    parts = PurePosixPath(name).parts
    if any(p in ("..", "") for p in parts) or ".." in name.split("/"):
        raise BundleError(f"unsafe entry {name!r}: parent-directory reference")
    return "/".join(parts)


_REQUIRED = ("schema", "id", "name", "created", "tool", "entry", "python", "platform", "gpu", "expect", "network",
             "redactions")


def validate_manifest(manifest: dict) -> None:
    """The bundle contract: JSON Schema bundle-v1, checked by the validator generated from it
    (reprex/schema/bundle_v1.py: standard library only, ~1 ms to import, microseconds to run),
    so every read checks in full and no third-party package sits on this trust boundary."""
    if not isinstance(manifest, dict):
        raise BundleError("reprex.json is not a JSON object")
    schema = manifest.get("schema")
    if schema != SCHEMA_VERSION:
        raise BundleError(f"unsupported bundle schema {schema!r}: this reprex reads schema {SCHEMA_VERSION}; "
                          "upgrade reprex or recapture the bundle")
    from reprex.schema import bundle_v1
    from reprex.schema.errors import JsonSchemaValueException

    try:
        bundle_v1.validate(manifest)
    except JsonSchemaValueException as err:
        raise BundleError(f"invalid reprex.json at {_one_line(err.where, 200)}: {_one_line(err.reason, 200)}") from None


@dataclass
class Bundle:
    manifest: dict
    files: dict[str, bytes] = field(default_factory=dict)  # every entry but reprex.json
    source: str | None = None

    # -- content ----------------------------------------------------------------
    def content_id(self) -> str:
        h = hashlib.sha256()
        body = {k: v for k, v in self.manifest.items() if k != "id"}
        h.update(canonical_json(body))
        for name in sorted(self.files):
            h.update(name.encode("utf-8") + b"\0" + hashlib.sha256(self.files[name]).digest())
        return h.hexdigest()

    def finalize(self) -> "Bundle":
        """Set the content id. The full JSON Schema check runs on every read (the contract);
        writing checks only the required keys (the reader is the one to distrust)."""
        for name in list(self.files):
            safe_member_name(name)
        missing = [k for k in _REQUIRED if k not in self.manifest]
        if missing or self.manifest.get("schema") != SCHEMA_VERSION:
            raise BundleError(f"incomplete manifest: missing {', '.join(missing) or 'schema'}")
        self.manifest["id"] = self.content_id()
        return self

    def entries(self) -> dict[str, bytes]:
        return {MANIFEST: canonical_json(self.manifest), **self.files}

    @property
    def name(self) -> str:
        return self.manifest.get("name", "bundle")

    @property
    def id(self) -> str:
        return self.manifest.get("id", "")

    def text(self, name: str, default: str = "") -> str:
        data = self.files.get(name)
        return default if data is None else data.decode("utf-8", "replace")

    def json(self, name: str, default=None):
        """A JSON entry, parsed by the bounded loader (BundleError, never a parser's traceback)."""
        data = self.files.get(name)
        return default if data is None else load_json(data, name)

    def input_files(self) -> dict[str, bytes]:
        """files/ entries with the prefix removed: the program's working directory."""
        return {n[len("files/"):]: b for n, b in self.files.items() if n.startswith("files/")}

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.entries().values())

    # -- writing ----------------------------------------------------------------
    def to_zip_bytes(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for name, data in sorted(self.entries().items()):
                info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                zf.writestr(info, data)
        return buf.getvalue()

    def write(self, path: str | os.PathLike) -> Path:
        """Write as a zip (name ends in .zip) or a directory; atomically either way."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name.endswith(".zip"):
            data = self.to_zip_bytes()
            fd, tmp = tempfile.mkstemp(prefix=".reprex-", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 is too private for a file to share
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return path
        tmpdir = Path(tempfile.mkdtemp(prefix=".reprex-", dir=path.parent))
        try:
            for name, data in self.entries().items():
                target = tmpdir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            if path.exists():
                if not (path / MANIFEST).exists():
                    raise BundleError(f"{path} exists and is not a bundle directory; not overwriting it")
                shutil.rmtree(path)
            os.replace(tmpdir, path)
        except BaseException:
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise
        return path

    def extract_inputs(self, workdir: Path) -> None:
        """Lay files/ out as the working directory (names were checked on read)."""
        workdir = Path(workdir).resolve()
        for rel, data in self.input_files().items():
            target = (workdir / safe_member_name(rel)).resolve()
            if workdir not in target.parents:
                raise BundleError(f"unsafe entry files/{rel}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    # -- reading ----------------------------------------------------------------
    @classmethod
    def read(cls, path: str | os.PathLike) -> "Bundle":
        path = Path(path)
        if path.is_dir():
            entries = _read_dir(path)
        elif path.is_file():
            try:
                with zipfile.ZipFile(path) as zf:
                    entries = _read_zip(zf, archive_bytes=path.stat().st_size)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
                raise BundleError(f"{path}: not a reprex bundle (bad zip: {_one_line(exc)})") from None
        else:
            raise BundleError(f"{path}: no such bundle file or directory")
        return cls.from_entries(entries, source=str(path))

    @classmethod
    def from_entries(cls, entries: dict[str, bytes], source: str | None = None) -> "Bundle":
        if MANIFEST not in entries:
            raise BundleError(f"{source or 'bundle'}: no {MANIFEST}; not a reprex bundle")
        raw = entries.pop(MANIFEST)
        where = source or "bundle"
        manifest = load_json(raw, f"{where}: {MANIFEST}", max_bytes=MAX_MANIFEST_BYTES)
        validate_manifest(manifest)
        for name, check in SIDE_FILES.items():
            if name in entries:
                check(load_json(entries[name], f"{where}: {name}"), f"{where}: {name}")
        bundle = cls(manifest=manifest, files=entries, source=source)
        try:
            content_id = bundle.content_id()
        except ValueError:  # a lone surrogate (JSON can spell one) has no UTF-8 form to hash
            raise BundleError(f"{where}: {MANIFEST} holds text that is not valid Unicode; refusing it") from None
        if content_id != manifest["id"]:
            raise BundleError(f"{where}: its content does not match its id (tampered with, or edited without "
                              "finalize()); refusing it")
        return bundle


def _check_sizes(sizes: Iterable[tuple[str, int, int]], archive_bytes: int | None = None) -> None:
    total = 0
    count = 0
    for name, size, compressed in sizes:
        count += 1
        if count > MAX_ENTRIES:
            raise BundleError(f"bundle has more than {MAX_ENTRIES} entries; refusing it")
        if size > MAX_ENTRY_BYTES:
            raise BundleError(f"entry {name!r} is {size} bytes, over the {MAX_ENTRY_BYTES}-byte limit; refusing it")
        if size > 1024 * 1024 and compressed > 0 and size / compressed > MAX_RATIO:
            raise BundleError(f"entry {name!r} expands {size // max(compressed, 1)}x: looks like a zip bomb; refusing it")
        total += size
        if total > MAX_TOTAL_BYTES:
            raise BundleError(f"bundle expands past {MAX_TOTAL_BYTES} bytes; refusing it")
    _check_ratio(total, archive_bytes)


def _check_ratio(total: int, archive_bytes: int | None) -> None:
    """Many entries each just under the per-entry check still make a bomb together."""
    if archive_bytes and total > RATIO_FLOOR and total / archive_bytes > MAX_RATIO:
        raise BundleError(f"a {archive_bytes}-byte bundle expands to {total} bytes ({total // archive_bytes}x): "
                          "looks like a zip bomb; refusing it")


def _read_zip(zf: zipfile.ZipFile, archive_bytes: int | None = None) -> dict[str, bytes]:
    infos = [i for i in zf.infolist() if not i.is_dir()]
    seen = set()
    for info in infos:
        name = safe_member_name(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise BundleError(f"unsafe entry {info.filename!r}: symbolic link")
        if name in seen:
            raise BundleError(f"duplicate entry {name!r}")
        seen.add(name)
    _check_sizes(((i.filename, i.file_size, i.compress_size) for i in infos), archive_bytes)
    entries = {}
    total = 0
    for info in infos:
        # Declared sizes can lie: count what actually comes out.
        try:
            with zf.open(info) as fh:
                data = fh.read(MAX_ENTRY_BYTES + 1)
        except (RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            # encrypted entries, unknown compression, corrupt deflate data, bad CRC
            raise BundleError(f"entry {info.filename!r} can't be read: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if len(data) > MAX_ENTRY_BYTES:
            raise BundleError(f"entry {info.filename!r} is over the size limit; refusing it")
        total += len(data)
        if total > MAX_TOTAL_BYTES:
            raise BundleError(f"bundle expands past {MAX_TOTAL_BYTES} bytes; refusing it")
        _check_ratio(total, archive_bytes)
        entries[safe_member_name(info.filename)] = data
    return entries


def _read_dir(root: Path) -> dict[str, bytes]:
    entries = {}
    sizes = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            if full.is_symlink():
                raise BundleError(f"unsafe entry {full.relative_to(root)}: symbolic link")
        for name in filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if not full.is_file():
                raise BundleError(f"unsafe entry {rel}: not a regular file")  # a FIFO would hang the read
            size = full.stat().st_size
            sizes.append((rel, size, size))
            entries[safe_member_name(rel)] = full
    _check_sizes(sizes)
    return {k: p.read_bytes() for k, p in entries.items()}
