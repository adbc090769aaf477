"""Reading a package index the way pip is configured to: one project's files, with their facts.

PEP 691 JSON when the index speaks it, else PEP 503 HTML (the `data-*` attributes), plus
find-links directories; index URLs, credentials and the certificate come from the host pip's
settings (reprex.installer.pip_settings), the same places a probe's install fetches from.
Credentials travel as Basic auth, never in a request line or anything shown (`public`).
Core metadata (PEP 658 `.metadata`) is read once per file per process.
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


class IndexUnreachable(ReprexError):
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
class IndexConfig:
    """Where releases are listed from: index URLs (the main one first), find-links directories,
    and what chose the main index (said to the user: `--index-url`, `UV_INDEX_URL`, a uv.toml...)."""

    urls: list[str]
    links: list[str]
    source: str

    def shown(self) -> str:
        """`http://host/simple/ (from PIP_INDEX_URL)`: no credentials."""
        where = ", ".join(public(u) for u in self.urls + self.links) or "no index (no-index)"
        return f"{where} (from {self.source})"


def _on(value) -> bool:
    return str(value if value is not None else "").strip().lower() in ("1", "true", "yes", "on")


def uv_toml(environ: Mapping[str, str]) -> tuple[str, dict] | None:
    """(path, settings) of the uv.toml uv would read (UV_CONFIG_FILE, else the user's, else the
    system's; none with UV_NO_CONFIG), its `[pip]` table over the top level. Read only."""
    import tomllib

    if _on(environ.get("UV_NO_CONFIG")):
        return None
    home = os.path.expanduser("~")
    user = os.path.join(environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "uv", "uv.toml")
    for path in ([environ["UV_CONFIG_FILE"]] if environ.get("UV_CONFIG_FILE") else [user, "/etc/uv/uv.toml"]):
        try:
            with open(path, "rb") as fh:
                data = tomllib.loads(fh.read(1 << 20).decode("utf-8"))
        except (OSError, ValueError):  # absent, unreadable, not TOML: uv would say so itself
            continue
        pip = data.get("pip") if isinstance(data.get("pip"), dict) else {}
        return path, {**data, **pip}
    return None


def _uv_toml_index(settings: dict) -> tuple[str | None, list[str], list[str], bool]:
    """(main index, extra indexes, find-links, no-index) from uv.toml settings."""
    def strings(value) -> list[str]:
        value = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        return [v for v in value if isinstance(v, str) and v.strip()]

    main = next(iter(strings(settings.get("index-url"))), None)
    extras = strings(settings.get("extra-index-url"))
    for entry in settings.get("index") if isinstance(settings.get("index"), list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            if entry.get("default") is True and main is None:
                main = entry["url"]
            else:
                extras.append(entry["url"])
    return main, extras, strings(settings.get("find-links")), settings.get("no-index") is True


def configured_index(environ: Mapping[str, str] | None = None, index_url: str | None = None) -> IndexConfig:
    """Where a probe's install looks, the main index chosen in this order: `index_url` (bisect's
    --index-url), UV_DEFAULT_INDEX / UV_INDEX_URL, a uv.toml, PIP_INDEX_URL, pip's configuration
    files, then PyPI. Extra indexes and find-links come from the same family (uv's, or pip's).
    The same rule as reprex.installer's: the installs go through uv, which reads its own settings
    and, only when it has none, is given pip's; so a uv.toml wins over PIP_INDEX_URL for both."""
    from reprex.installer import pip_settings

    env = os.environ if environ is None else environ
    uv_main = [(n, env[n].split()[0]) for n in ("UV_DEFAULT_INDEX", "UV_INDEX_URL") if (env.get(n) or "").split()]
    uv_extra = (env.get("UV_INDEX") or "").split() + (env.get("UV_EXTRA_INDEX_URL") or "").split()
    uv_links = (env.get("UV_FIND_LINKS") or "").replace(",", " ").split()
    toml = uv_toml(env)
    if uv_main or uv_extra or uv_links or env.get("UV_NO_INDEX") or toml:
        t_main, t_extra, t_links, t_none = _uv_toml_index(toml[1]) if toml else (None, [], [], False)
        no_index = _on(env.get("UV_NO_INDEX")) or (t_none and not uv_main)
        main, source = (uv_main[0][1], uv_main[0][0]) if uv_main else \
            (t_main, f"uv.toml {toml[0]}") if t_main else (DEFAULT_INDEX, "the default, PyPI")
        extras = [u.split("=", 1)[-1] if "=" in u.split("://")[0] else u for u in uv_extra] or t_extra
        urls, links = ([] if no_index else [main] + extras), uv_links or t_links
    else:
        pip = pip_settings(env)
        no_index = _on(pip.get("no-index"))
        main = (pip.get("index-url") or "").split()
        source = "PIP_INDEX_URL" if env.get("PIP_INDEX_URL") else "pip.conf" if main else "the default, PyPI"
        urls = [] if no_index else [main[0] if main else DEFAULT_INDEX] + (pip.get("extra-index-url") or "").split()
        links = (pip.get("find-links") or "").split()
    if index_url:
        urls, source = [index_url] + urls[1:], "--index-url"
    if no_index and not index_url:
        source = "no-index"
    links = [p for p in links if not p.startswith(("http:", "https:"))]
    return IndexConfig(urls, [p[len("file://"):] if p.startswith("file://") else p for p in links], source)


def index_urls(environ: Mapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """(index URLs, find-links directories) where a probe's install looks (configured_index)."""
    found = configured_index(environ)
    return found.urls, found.links


INDEX_VARIABLES = ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL")


def index_environ(index_url: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: this process's, copied) with `index_url` as the main index of the
    installs (uv's and pip's variables): bisect's --index-url, handed to the processes that
    resolve and install (never in an argv, never set in this process: a library caller's
    environment, and its other threads', stay as they were)."""
    out = dict(os.environ if environ is None else environ)
    out.update({name: index_url for name in INDEX_VARIABLES})
    return out


def redactor(url: str | None):
    """A function that takes `url`'s credentials out of a text (uv's and pip's messages may show
    the URL they fetched): the URL as public() shows it, `user:password@` dropped, the password
    alone (as typed or percent-decoded) replaced by `****`. The identity without credentials."""
    parts = urllib.parse.urlsplit(url or "")
    if not (parts.username or parts.password):
        return lambda text: text
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@"
    secrets = {s for s in (parts.password, urllib.parse.unquote(parts.password or "")) if s}
    if not secrets:  # a token given as the user name alone
        secrets = {s for s in (parts.username, urllib.parse.unquote(parts.username or "")) if s}

    def scrub(text: str) -> str:
        if not isinstance(text, str):
            return text
        text = text.replace(url, public(url)).replace(userinfo, "")
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "****")
        return text

    return scrub


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


def fetch(url: str, *, accept: str, limit: int, environ: Mapping[str, str] | None = None) -> tuple[bytes, str, str]:
    """(body, content type, final URL); credentials in the URL go as Basic auth, never in the request line."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        path = urllib.request.url2pathname(parts.path)
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
        with open(path, "rb") as fh:
            return fh.read(limit + 1)[:limit + 1], "text/html", "file://" + urllib.request.pathname2url(path)
    if parts.scheme not in ("http", "https"):
        raise IndexUnreachable(f"index URL {public(url)!r}: only http, https and file indexes are read")
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
        body, ctype, final = fetch(url, accept=ACCEPT, limit=MAX_PAGE, environ=environ)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise IndexUnreachable(f"{public(url)}: HTTP {exc.code}") from None
    except FileNotFoundError:
        return []
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise IndexUnreachable(f"{public(url)}: {why}") from None
    if len(body) > MAX_PAGE:
        raise IndexUnreachable(f"{public(url)}: the project page is over {MAX_PAGE >> 20} MB")
    if "json" in ctype:
        try:
            data = json.loads(body)
        except ValueError:
            raise IndexUnreachable(f"{public(url)}: not valid JSON") from None
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


def fetch_releases(name: str, environ: Mapping[str, str] | None = None,
                   index_url: str | None = None) -> tuple[list[Release], str]:
    """Every release of `name` on the configured indexes and find-links (configured_index),
    ascending, and where they were read (the URLs, credentials removed)."""
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,200}[A-Za-z0-9])?", name or ""):
        raise ReprexError(f"{name!r} is not a package name")
    project = canonicalize_name(name)
    config = configured_index(environ, index_url)
    urls, links = config.urls, config.links
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
                body, _, _ = fetch(url, accept="*/*", limit=MAX_METADATA, environ=environ)
                _METADATA[url] = HeaderParser().parsestr(body[:MAX_METADATA].decode("utf-8", "replace"))
            except (urllib.error.URLError, OSError, ValueError, IndexUnreachable):
                _METADATA[url] = None
        if _METADATA[url] is not None:
            return _METADATA[url]
    return None
