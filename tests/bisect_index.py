"""A package index on loopback for the bisect tests: real files from PyPI, fetched once, served
as PEP 691 JSON and PEP 503 HTML with the real per-file facts (upload-time, yanked,
requires-python, hashes, PEP 658 metadata).

Why: a bisection's answer depends on which releases the index lists and when each was
uploaded; pypi.org changes every day (new releases, yanks), so a test that asked it would
break for reasons that have nothing to do with reprex. Each file is fetched once (a normal
registry download, hash-checked) into a cache that outlives the test session, together with
its PEP 691 entry, and served from there with no network.

Use:

    index = IndexServer(FileCache(cache_dir()))
    index.add("urllib3", ["1.26.18", "2.0.0"])          # the best cp311 manylinux/pure wheel of each
    index.add("markupsafe", ["2.1.1"], python="3.10")   # a release that has no wheel for 3.11
    index.start()
    subprocess.run([...], env=index.environ())          # pip and uv see this index and nothing else

or the `bisect_index` fixture (session-scoped; tests add the releases they need).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import threading
import urllib.request
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterable, Mapping
from urllib.parse import unquote

import pytest
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

PYPI_SIMPLE = os.environ.get("REPREX_TEST_PYPI_SIMPLE", "https://pypi.org/simple/")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
_REPO = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Where fetched files live between sessions: $REPREX_BISECT_WHEELS, else pytest's cache
    folder of this checkout (the same path the fixture uses, so the benchmark shares it)."""
    override = os.environ.get("REPREX_BISECT_WHEELS")
    return Path(override) if override else _REPO / ".pytest_cache" / "d" / "bisect-wheels"


def linux_tags(python: str, machine: str = "x86_64") -> list[Tag]:
    """The wheel tags a CPython `python` (X.Y) on glibc Linux accepts, best first (what pip would pick)."""
    xy = tuple(int(p) for p in python.split("."))
    platforms = [f"manylinux_2_{n}_{machine}" for n in range(36, 4, -1)]
    platforms += [f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}", f"linux_{machine}"]
    return [*cpython_tags(xy, platforms=platforms), *compatible_tags(xy, f"cp{xy[0]}{xy[1]}", platforms=platforms)]


@dataclass
class IndexFile:
    """One served file and its PEP 691 facts."""

    project: str
    version: str
    path: Path
    upload_time: str
    yanked: bool | str = False
    requires_python: str | None = None
    metadata: bytes | None = None  # the wheel's METADATA, served as PEP 658 `<file>.metadata`

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


class FetchError(RuntimeError):
    pass


class FileCache:
    """Real files from PyPI, fetched once: `<root>/<project>/<filename>` plus `<filename>.json`
    (the file's PEP 691 entry as PyPI listed it on the day it was fetched)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._listing: dict[str, list[dict]] = {}
        self._lock = threading.Lock()

    def release_files(self, project: str, version: str, *, python: str = "3.11", sdist: bool = False,
                      machine: str = "x86_64") -> list[IndexFile]:
        """The best wheel of `project==version` for CPython `python` on Linux (or its sdist):
        from the cache, else fetched."""
        name = canonicalize_name(project)
        folder = self.root / name
        marker = folder / f"{version}-{'sdist' if sdist else 'py' + python}.pick"
        if not marker.exists():
            entry = self._pick(name, version, python, sdist, machine)
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / entry["filename"]
            if not target.exists():
                self._download(entry, target)
            _write_atomic(folder / (entry["filename"] + ".json"), json.dumps(entry, indent=1))
            _write_atomic(marker, entry["filename"])
        return [self._load(name, version, folder / marker.read_text().strip())]

    def _pick(self, name: str, version: str, python: str, sdist: bool, machine: str) -> dict:
        entries = []
        for entry in self._files(name):
            fn = entry["filename"]
            try:
                if fn.endswith(".whl"):
                    _, v, _, tags = parse_wheel_filename(fn)
                else:
                    _, v = parse_sdist_filename(fn)
                    tags = frozenset()
            except ValueError:
                continue
            if str(v) == version:
                entries.append((entry, tags))
        if sdist:
            found = [e for e, tags in entries if not e["filename"].endswith(".whl")]
            if found:
                return found[0]
            raise FetchError(f"{name} {version}: no sdist on {PYPI_SIMPLE}")
        ranked = {tag: i for i, tag in enumerate(linux_tags(python, machine))}
        best = [(min(ranked[t] for t in tags if t in ranked), e)
                for e, tags in entries if any(t in ranked for t in tags)]
        if not best:
            raise FetchError(f"{name} {version}: no wheel for CPython {python} on Linux {machine} at {PYPI_SIMPLE}")
        return min(best, key=lambda pair: pair[0])[1]

    def _files(self, name: str) -> list[dict]:
        with self._lock:
            if name not in self._listing:
                request = urllib.request.Request(PYPI_SIMPLE.rstrip("/") + f"/{name}/", headers={"Accept": JSON_TYPE})
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        self._listing[name] = json.load(response)["files"]
                except OSError as exc:
                    raise FetchError(f"can't list {name} at {PYPI_SIMPLE} (needed once, then cached under "
                                     f"{self.root}): {exc}") from None
            return self._listing[name]

    def _download(self, entry: dict, target: Path) -> None:
        partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.part")  # sessions share it
        digest = hashlib.sha256()
        with urllib.request.urlopen(entry["url"], timeout=300) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        want = (entry.get("hashes") or {}).get("sha256")
        if want and digest.hexdigest() != want:
            partial.unlink()
            raise FetchError(f"{entry['filename']}: sha256 {digest.hexdigest()} is not PyPI's {want}")
        partial.replace(target)

    def _load(self, name: str, version: str, path: Path) -> IndexFile:
        entry = json.loads(path.with_name(path.name + ".json").read_text())
        metadata = None
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as zf:
                meta = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
                metadata = zf.read(meta[0]) if meta else None
        return IndexFile(project=name, version=version, path=path, upload_time=entry.get("upload-time") or "",
                         yanked=entry.get("yanked") or False, requires_python=entry.get("requires-python"),
                         metadata=metadata)


def build_wheel(dest: Path, name: str, version: str, modules: Mapping[str, str],
                requires: Iterable[str] = ()) -> Path:
    """A pure-Python wheel of a made-up project (`modules`: path in the wheel -> source), byte for
    byte the same for the same arguments (fixed timestamps), with its METADATA, WHEEL and RECORD."""
    import base64

    dest.mkdir(parents=True, exist_ok=True)
    stem = f"{canonicalize_name(name).replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    metadata = "Metadata-Version: 2.1\n" f"Name: {name}\n" f"Version: {version}\n" + \
        "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {**modules, f"{info}/METADATA": metadata,
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: reprex-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    out = dest / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, text in files.items():
            entry = zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            zf.writestr(entry, text)
    return out


def _write_atomic(path: Path, text: str) -> None:
    """Other test sessions read the same cache: a reader sees the old file or the whole new one."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    partial.write_text(text)
    partial.replace(path)


@dataclass
class IndexServer:
    """PEP 691 JSON (when asked for by Accept) and PEP 503 HTML on 127.0.0.1, for the files added."""

    files_from: FileCache
    json_api: bool = True  # False: HTML only, as an old or minimal index serves
    projects: dict[str, dict[str, IndexFile]] = field(default_factory=dict)  # name -> filename -> file
    requests: list[str] = field(default_factory=list)  # every path asked for, in order
    port: int = 0

    def add(self, project: str, versions: Iterable[str], *, python: str = "3.11", sdist: bool = False,
            yanked: bool | str | None = None, upload_time: str | None = None) -> list[IndexFile]:
        """Serve these releases of `project` (fetched once). `yanked`/`upload_time` override PyPI's
        facts for a test that needs a particular index state; by default they are PyPI's own."""
        added = []
        for version in versions:
            for f in self.files_from.release_files(project, version, python=python, sdist=sdist):
                if yanked is not None:
                    f.yanked = yanked
                if upload_time is not None:
                    f.upload_time = upload_time
                self.projects.setdefault(f.project, {})[f.filename] = f
                added.append(f)
        return added

    def add_built(self, path: Path, *, upload_time: str, yanked: bool | str = False) -> IndexFile:
        """Serve a wheel made here (build_wheel): a made-up project, with the upload time a test needs."""
        name, version, _, _ = parse_wheel_filename(path.name)
        with zipfile.ZipFile(path) as zf:
            meta = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
            metadata = zf.read(meta[0])
        f = IndexFile(project=str(name), version=str(version), path=path, upload_time=upload_time, yanked=yanked,
                      metadata=metadata)
        self.projects.setdefault(f.project, {})[f.filename] = f
        return f

    def remove(self, project: str, version: str | None = None) -> None:
        """Stop serving a project (or one release of it)."""
        files = self.projects.get(canonicalize_name(project), {})
        for fn in [fn for fn, f in files.items() if version is None or f.version == version]:
            del files[fn]

    # -- serving ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The simple index root, e.g. http://127.0.0.1:PORT/simple/"""
        return f"http://127.0.0.1:{self.port}/simple/"

    def start(self) -> "IndexServer":
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                index.requests.append(self.path)
                status, ctype, body = index.respond(self.path, self.headers.get("Accept", ""))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-cache")  # a test may change what a project lists
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()

    def respond(self, path: str, accept: str) -> tuple[int, str, bytes]:
        path = unquote(path.split("?", 1)[0])
        want_json = self.json_api and JSON_TYPE in accept
        if path in ("/simple", "/simple/"):
            return self._root(want_json)
        match = re.fullmatch(r"/simple/([^/]+)/?", path)
        if match:
            name = canonicalize_name(match.group(1))
            if name != match.group(1):  # PEP 503: redirect-free, but only the normalized name exists
                name = name if name in self.projects else match.group(1)
            if name not in self.projects or not self.projects[name]:
                return 404, "text/plain", b"no such project\n"
            return self._project(name, want_json)
        match = re.fullmatch(r"/files/([^/]+)/([^/]+?)(\.metadata)?", path)
        if match:
            f = self.projects.get(match.group(1), {}).get(match.group(2))
            if f is None:
                return 404, "text/plain", b"no such file\n"
            if match.group(3):
                if f.metadata is None:
                    return 404, "text/plain", b"no metadata\n"
                return 200, "application/octet-stream", f.metadata
            return 200, "application/octet-stream", f.path.read_bytes()
        return 404, "text/plain", b"not found\n"

    def _root(self, want_json: bool) -> tuple[int, str, bytes]:
        names = sorted(n for n, files in self.projects.items() if files)
        if want_json:
            body = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
            return 200, JSON_TYPE, json.dumps(body).encode()
        links = "".join(f'<a href="/simple/{n}/">{n}</a>\n' for n in names)
        return 200, "text/html", f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode()

    def _project(self, name: str, want_json: bool) -> tuple[int, str, bytes]:
        files = sorted(self.projects[name].values(), key=lambda f: f.filename)
        if want_json:
            return 200, JSON_TYPE, json.dumps(self._json(name, files)).encode()
        return 200, "text/html", self._html(name, files).encode()

    def _json(self, name: str, files: list[IndexFile]) -> dict:
        entries = []
        for f in files:
            entry = {"filename": f.filename, "url": f"/files/{name}/{f.filename}", "hashes": {"sha256": f.sha256},
                     "requires-python": f.requires_python, "yanked": f.yanked, "upload-time": f.upload_time,
                     "size": f.path.stat().st_size}
            if f.metadata is not None:
                meta = {"sha256": hashlib.sha256(f.metadata).hexdigest()}
                entry["core-metadata"] = entry["data-dist-info-metadata"] = meta
            entries.append(entry)
        versions = sorted({f.version for f in files})
        return {"meta": {"api-version": "1.1"}, "name": name, "versions": versions, "files": entries}

    def _html(self, name: str, files: list[IndexFile]) -> str:
        rows = []
        for f in files:
            attrs = [f'href="/files/{name}/{f.filename}#sha256={f.sha256}"']
            if f.requires_python:
                attrs.append(f'data-requires-python="{html.escape(f.requires_python)}"')
            if f.yanked:
                reason = f.yanked if isinstance(f.yanked, str) else ""
                attrs.append(f'data-yanked="{html.escape(reason)}"')
            if f.metadata is not None:
                digest = hashlib.sha256(f.metadata).hexdigest()
                attrs.append(f'data-dist-info-metadata="sha256={digest}"')
                attrs.append(f'data-core-metadata="sha256={digest}"')
            rows.append(f"<a {' '.join(attrs)}>{html.escape(f.filename)}</a><br/>")
        body = "\n".join(rows)
        return (f'<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.1">'
                f"<title>Links for {name}</title></head><body><h1>Links for {name}</h1>\n{body}\n</body></html>\n")

    # -- clients ---------------------------------------------------------------------------

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default os.environ) with pip and uv pointed at this index and nothing else:
        no pip.conf, no find-links, no extra index, no uv.toml."""
        env = {k: v for k, v in (os.environ if base is None else base).items()
               if not (k.startswith(("PIP_", "UV_")) and k != "UV_CACHE_DIR")}
        env.update({
            "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": self.url, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_RETRIES": "0", "PIP_TIMEOUT": "30", "PIP_NO_INPUT": "1",
            "UV_NO_CONFIG": "1", "UV_INDEX_URL": self.url, "UV_NO_PROGRESS": "1", "UV_HTTP_TIMEOUT": "30",
        })
        return env


@pytest.fixture(scope="session")
def bisect_index():
    """A loopback index for the session, serving nothing until a test adds releases to it."""
    index = IndexServer(FileCache(cache_dir())).start()
    yield index
    index.stop()
