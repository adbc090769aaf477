"""The releases of one package on the configured index, and which of them a bisection may probe.

The index is the host pip's (reprex.installer.pip_settings: index-url, extra-index-url,
find-links directories, cert): the same place a probe's install will fetch from, so a
release listed here is one the probe can get. Pages are read as PEP 691 JSON when the
index speaks it, else PEP 503 HTML. A release a probe can't use is filtered out with a
reason (Requires-Python, no wheel for the bundle's Python and platform, yanked, a
pre-release): a bisection reports those and never blames them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Mapping

from reprex.errors import ReprexError

DEFAULT_INDEX = "https://pypi.org/simple/"
ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
MAX_PAGE = 32 << 20  # a project page (numpy's JSON page is ~6 MB)
MAX_METADATA = 4 << 20
TIMEOUT = 30.0
PRE_RELEASE = "pre-release (use --pre)"
_CHANGELOG = re.compile(r"change|release|history|news|what'?s ?new", re.I)


class IndexError_(ReprexError):
    """The index could not be read (infrastructure: exit 3)."""

    exit_code = 3


@dataclass
class File:
    filename: str
    url: str
    requires_python: str | None = None
    yanked: bool | str = False
    upload_time: str | None = None
    metadata: bool = False  # PEP 658/714: url + ".metadata" holds the core metadata


@dataclass
class Release:
    version: str
    files: list[File] = field(default_factory=list)

    @property
    def yanked(self) -> bool:
        return bool(self.files) and all(f.yanked for f in self.files)

    @property
    def upload_time(self) -> str | None:
        times = [f.upload_time for f in self.files if f.upload_time]
        return min(times) if times else None


@dataclass
class Listing:
    """What a bisection may probe (ascending) and what it may not, with why."""

    name: str
    candidates: list[Release]
    excluded: list[tuple[str, str]]  # (version, reason), ascending
    index: str = ""  # where it was read (credentials removed)

    def versions(self) -> list[str]:
        return [r.version for r in self.candidates]


# -- reading the index ------------------------------------------------------------------------

def index_urls(environ: Mapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """(index URLs, find-links directories) as the host's pip is configured."""
    from reprex.installer import pip_settings

    pip = pip_settings(environ)
    no_index = (pip.get("no-index") or "").strip().lower() in ("1", "true", "yes", "on")
    urls = [] if no_index else [(pip.get("index-url") or DEFAULT_INDEX).split()[0]]
    if not no_index:
        urls += (pip.get("extra-index-url") or "").split()
    links = [p for p in (pip.get("find-links") or "").split() if not p.startswith(("http:", "https:"))]
    return urls, [p[len("file://"):] if p.startswith("file://") else p for p in links]


def public(url: str) -> str:
    """A URL as it may be shown: no user or password."""
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        parts = parts._replace(netloc=host)
    return urllib.parse.urlunsplit(parts)


_CONTEXTS: dict[str | None, ssl.SSLContext] = {}


def _ssl_context(environ: Mapping[str, str] | None) -> ssl.SSLContext:
    """pip's `cert` (else the system's CAs); made once per file: loading CAs costs ~0.1 s a time."""
    from reprex.installer import pip_settings

    cert = pip_settings(environ).get("cert")
    if cert not in _CONTEXTS:
        try:
            _CONTEXTS[cert] = ssl.create_default_context(cafile=cert) if cert else ssl.create_default_context()
        except (OSError, ssl.SSLError):
            _CONTEXTS[cert] = ssl.create_default_context()
    return _CONTEXTS[cert]


def _get(url: str, *, accept: str, limit: int, environ: Mapping[str, str] | None = None) -> tuple[bytes, str, str]:
    """(body, content type, final URL); credentials in the URL go as Basic auth, never in the request line."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        path = urllib.request.url2pathname(parts.path)
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
        with open(path, "rb") as fh:
            return fh.read(limit + 1)[:limit + 1], "text/html", "file://" + urllib.request.pathname2url(path)
    if parts.scheme not in ("http", "https"):
        raise IndexError_(f"index URL {public(url)!r}: only http, https and file indexes are read")
    request = urllib.request.Request(public(url), headers={"Accept": accept, "User-Agent": "reprex-bisect"})
    if parts.username or parts.password:
        token = f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(token.encode()).decode())
    context = _ssl_context(environ) if parts.scheme == "https" else None
    with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as resp:
        body = resp.read(limit + 1)
        return body, resp.headers.get("Content-Type", ""), resp.geturl()


def _json_files(data: dict, base: str) -> list[File]:
    out = []
    for item in data.get("files") or []:
        if not isinstance(item, dict) or not isinstance(item.get("filename"), str) or not isinstance(item.get("url"), str):
            continue
        yanked = item.get("yanked", False)
        meta = item.get("core-metadata", item.get("data-dist-info-metadata", item.get("dist-info-metadata")))
        rp = item.get("requires-python")
        out.append(File(filename=item["filename"], url=urllib.parse.urljoin(base, item["url"]),
                        requires_python=rp if isinstance(rp, str) and rp.strip() else None,
                        yanked=yanked if isinstance(yanked, (bool, str)) else bool(yanked),
                        upload_time=item.get("upload-time") if isinstance(item.get("upload-time"), str) else None,
                        metadata=bool(meta)))
    return out


class _Anchors(HTMLParser):
    def __init__(self, base: str):
        super().__init__()
        self.base = base
        self.files: list[File] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "base":
            href = dict(attrs).get("href")
            if href:
                self.base = urllib.parse.urljoin(self.base, href)
        if tag == "a":
            self._open = dict(attrs)
            self._text = ""

    def handle_data(self, data):
        if self._open is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag != "a" or self._open is None:
            return
        attrs, self._open = self._open, None
        href = attrs.get("href")
        if not href:
            return
        url = urllib.parse.urljoin(self.base, href)
        name = self._text.strip() or urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        yanked = attrs.get("data-yanked")
        meta = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        self.files.append(File(filename=name, url=url, requires_python=attrs.get("data-requires-python") or None,
                               yanked=(yanked or True) if yanked is not None else False,
                               metadata=meta is not None and meta != "false"))


def _page_files(index: str, name: str, environ: Mapping[str, str] | None) -> list[File]:
    url = index.rstrip("/") + "/" + name + "/"
    try:
        body, ctype, final = _get(url, accept=ACCEPT, limit=MAX_PAGE, environ=environ)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise IndexError_(f"{public(url)}: HTTP {exc.code}") from None
    except FileNotFoundError:
        return []
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise IndexError_(f"{public(url)}: {why}") from None
    if len(body) > MAX_PAGE:
        raise IndexError_(f"{public(url)}: the project page is over {MAX_PAGE >> 20} MB")
    if "json" in ctype:
        try:
            data = json.loads(body)
        except ValueError:
            raise IndexError_(f"{public(url)}: not valid JSON") from None
        return _json_files(data if isinstance(data, dict) else {}, final)
    parser = _Anchors(final)
    parser.feed(body.decode("utf-8", "replace"))
    return parser.files


def _link_files(directory: str, name: str) -> list[File]:
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return []
    return [File(filename=e, url="file://" + urllib.request.pathname2url(os.path.join(directory, e)))
            for e in entries if _version_of(e, name)]


def _version_of(filename: str, name: str) -> str | None:
    """The version a distribution file holds, when it is `name`'s (wheel or sdist)."""
    from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, canonicalize_name, \
        parse_sdist_filename, parse_wheel_filename

    try:
        if filename.endswith(".whl"):
            dist, version, _, _ = parse_wheel_filename(filename)
        elif filename.endswith((".tar.gz", ".zip")):
            dist, version = parse_sdist_filename(filename)
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return None
    return str(version) if dist == canonicalize_name(name) else None


def fetch_releases(name: str, environ: Mapping[str, str] | None = None) -> tuple[list[Release], str]:
    """Every release of `name` on the configured indexes and find-links, ascending, and where."""
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,200}[A-Za-z0-9])?", name or ""):
        raise ReprexError(f"{name!r} is not a package name")
    project = canonicalize_name(name)
    urls, links = index_urls(environ)
    by_version: dict[str, Release] = {}
    seen: set[str] = set()
    for files in [*(_page_files(u, project, environ) for u in urls), *(_link_files(d, project) for d in links)]:
        for f in files:
            version = _version_of(f.filename, project)
            if version is None or f.filename in seen:
                continue
            seen.add(f.filename)
            by_version.setdefault(version, Release(version)).files.append(f)
    out = []
    for version, release in by_version.items():
        try:
            Version(version)
        except InvalidVersion:
            continue
        out.append(release)
    out.sort(key=lambda r: Version(r.version))
    return out, ", ".join(public(u) for u in urls + links)


# -- which releases a probe can use ---------------------------------------------------------------

def supported_tags(python: str, machine: str, glibc: str = "2.36") -> set:
    """The wheel tags a CPython `python` (X.Y) on Linux `machine` installs."""
    from packaging import tags

    from reprex.replay.target import platform_tags

    major, minor = (int(p) for p in python.split(".")[:2])
    plats = platform_tags(machine, glibc)
    interp = f"cp{major}{minor}"
    found = set(tags.cpython_tags((major, minor), abis=[interp, "abi3", "none"], platforms=plats))
    found |= set(tags.compatible_tags((major, minor), interpreter=interp, platforms=plats))
    return found


def _why_not(release: Release, python_full: str, python: str, wanted: set, machine: str) -> str:
    """Why no file of `release` installs on the target ('' when one does)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.utils import parse_wheel_filename

    usable, requires = [], set()
    for f in release.files:
        if f.requires_python:
            try:
                if not SpecifierSet(f.requires_python).contains(python_full, prereleases=True):
                    requires.add(f.requires_python)
                    continue
            except InvalidSpecifier:
                pass
        usable.append(f)
    if not usable:
        return f"requires Python {', '.join(sorted(requires))}; the bundle ran {python_full}"
    wheels = [f for f in usable if f.filename.endswith(".whl")]
    for f in wheels:
        try:
            if any(t in wanted for t in parse_wheel_filename(f.filename)[3]):
                return ""
        except ValueError:
            continue
    nodot = python.replace(".", "")
    if not wheels:
        return f"no wheel (sdist only) for cp{nodot}"
    return f"no cp{nodot} wheel for {machine}"


def list_releases(name: str, *, python: str, machine: str, glibc: str = "2.36", pre: bool = False,
                  yanked: bool = False, keep: tuple[str, ...] = (), environ: Mapping[str, str] | None = None,
                  releases: list[Release] | None = None) -> Listing:
    """The releases of `name` a probe can install for CPython `python` (X.Y or X.Y.Z) on `machine`,
    ascending, and the rest with why. Versions in `keep` (the bundle's own pin, a --good/--bad the
    user named) pass the yanked and pre-release filters: they are known or asked for."""
    from packaging.version import Version

    if releases is None:
        releases, where = fetch_releases(name, environ)
    else:
        where = ""
    python_full = python if python.count(".") >= 2 else python + ".0"
    xy = ".".join(python.split(".")[:2])
    wanted = supported_tags(xy, machine, glibc)
    kept = {str(Version(v)) for v in keep if v}
    candidates, excluded = [], []
    for release in releases:
        version = Version(release.version)
        asked = str(version) in kept
        if not asked and version.is_prerelease and not pre:
            excluded.append((release.version, PRE_RELEASE))
            continue
        if not asked and release.yanked and not yanked:
            reason = next((f.yanked for f in release.files if isinstance(f.yanked, str) and f.yanked), "")
            excluded.append((release.version, "yanked" + (f": {reason[:200]}" if reason else "") + " (use --yanked)"))
            continue
        why = _why_not(release, python_full, xy, wanted, machine)
        if why:
            excluded.append((release.version, why))
            continue
        candidates.append(release)
    return Listing(name=name, candidates=candidates, excluded=excluded, index=where)


# -- the changelog link --------------------------------------------------------------------------

_METADATA: dict[str, object] = {}  # .metadata URL -> parsed message (or None): read once per process


def core_metadata(release: Release, environ: Mapping[str, str] | None = None):
    """The release's core metadata (an email.message.Message) from its PEP 658 `.metadata` file,
    when the index serves one; None otherwise (never a wheel download for it)."""
    from email.parser import HeaderParser

    for f in release.files:
        if not f.metadata or not f.url.startswith(("http:", "https:", "file:")):
            continue
        url = f.url.split("#", 1)[0] + ".metadata"
        if url not in _METADATA:
            try:
                body, _, _ = _get(url, accept="*/*", limit=MAX_METADATA, environ=environ)
                _METADATA[url] = HeaderParser().parsestr(body[:MAX_METADATA].decode("utf-8", "replace"))
            except (urllib.error.URLError, OSError, ValueError, IndexError_):
                _METADATA[url] = None
        if _METADATA[url] is not None:
            return _METADATA[url]
    return None


def requires_dist(release: Release, environ: Mapping[str, str] | None = None) -> list[str] | None:
    """The release's Requires-Dist lines, or None when its metadata can't be had cheaply."""
    meta = core_metadata(release, environ)
    return None if meta is None else [str(r) for r in meta.get_all("Requires-Dist") or []]


def changelog_url(release: Release, name: str = "", environ: Mapping[str, str] | None = None) -> str | None:
    """The release notes / changelog URL the release's metadata names (Project-URL), read from its
    PEP 658 `.metadata` file when the index serves one, else, for files hosted by PyPI, from
    PyPI's JSON API; None otherwise (never a wheel download just for a link)."""
    meta = core_metadata(release, environ)
    if meta is not None:
        return _pick({label: link for label, _, link in (str(e).partition(",") for e in
                                                         meta.get_all("Project-URL") or [])})
    if name and any(urllib.parse.urlsplit(f.url).hostname == "files.pythonhosted.org" for f in release.files):
        url = f"https://pypi.org/pypi/{urllib.parse.quote(name)}/{urllib.parse.quote(release.version)}/json"
        try:
            body, _, _ = _get(url, accept="application/json", limit=MAX_PAGE, environ=environ)
            urls = (json.loads(body).get("info") or {}).get("project_urls") or {}
        except (urllib.error.URLError, OSError, ValueError, AttributeError, IndexError_):
            return None
        return _pick(urls) if isinstance(urls, dict) else None
    return None


def _pick(urls: Mapping[str, str]) -> str | None:
    """The changelog-like link among labelled project URLs: https only, no markup characters."""
    for label, link in urls.items():
        link = str(link).strip()
        if _CHANGELOG.search(str(label)) and re.fullmatch(r"https://[^\s<>\"'`()\[\]]{1,500}", link):
            return link
    return None
