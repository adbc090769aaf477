"""Which releases of a package a bisection may probe, and what the chosen one's notes say.

A release a probe can't use is filtered out with a reason (Requires-Python, no wheel for the
bundle's Python and platform, yanked, a pre-release): a bisection reports those and never
blames them. The releases themselves come from the configured index (reprex.bisect.index).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
from dataclasses import dataclass
from typing import Mapping

from reprex.bisect.index import MAX_PAGE, IndexUnreachable, Release, core_metadata, fetch, fetch_releases

PRE_RELEASE = "pre-release (use --pre)"
LATER = "uploaded after the first bad day"  # a date search's culprit: not a release the break came between
_CHANGELOG = re.compile(r"change|release|history|news|what'?s ?new", re.I)


@dataclass
class Listing:
    """What a bisection may probe (ascending) and what it may not, with why."""

    name: str
    candidates: list[Release]
    excluded: list[tuple[str, str]]  # (version, reason), ascending
    index: str = ""  # where it was read (credentials removed)

    def versions(self) -> list[str]:
        return [r.version for r in self.candidates]


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
                  releases: list[Release] | None = None, index_url: str | None = None) -> Listing:
    """The releases of `name` a probe can install for CPython `python` (X.Y or X.Y.Z) on `machine`,
    ascending, and the rest with why. Versions in `keep` (the bundle's own pin, a --good/--bad the
    user named) pass the yanked and pre-release filters: they are known or asked for."""
    from packaging.version import Version

    if releases is None:
        releases, where = fetch_releases(name, environ, index_url)
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

def requires_dist(release: Release, environ: Mapping[str, str] | None = None) -> list[str] | None:
    """The release's Requires-Dist lines, or None when its metadata can't be had cheaply."""
    meta = core_metadata(release, environ)
    return None if meta is None else [str(r) for r in meta.get_all("Requires-Dist") or []]


def changelog_url(release: Release, name: str = "", environ: Mapping[str, str] | None = None,
                  index_url: str | None = None) -> str | None:
    """The release notes / changelog URL the release's metadata names (Project-URL), read from its
    PEP 658 `.metadata` file when the index serves one, else from the index's JSON API (PyPI's
    `/pypi/NAME/VERSION/json`, beside `/simple/`) when the files are the index's own or PyPI's;
    None otherwise (never a wheel download just for a link)."""
    meta = core_metadata(release, environ)
    if meta is not None:
        return _pick({label: link for label, _, link in (str(e).partition(",") for e in
                                                         meta.get_all("Project-URL") or [])})
    url = _json_api(release, name, environ, index_url) if name else None
    if url is None:
        return None
    try:
        body, _, _ = fetch(url, accept="application/json", limit=MAX_PAGE, environ=environ)
        urls = (json.loads(body).get("info") or {}).get("project_urls") or {}
    except (urllib.error.URLError, OSError, ValueError, AttributeError, IndexUnreachable):
        return None
    return _pick(urls) if isinstance(urls, dict) else None


def _json_api(release: Release, name: str, environ: Mapping[str, str] | None, index_url: str | None) -> str | None:
    """Where the release's JSON (Warehouse's API) is: beside the configured index's `/simple/`
    when the files come from that index's host; PyPI's for files hosted by PyPI."""
    from reprex.bisect.index import configured_index

    hosts = {urllib.parse.urlsplit(f.url).hostname for f in release.files}
    path = f"pypi/{urllib.parse.quote(name)}/{urllib.parse.quote(release.version)}/json"
    for index in configured_index(environ, index_url).urls[:1]:
        parts = urllib.parse.urlsplit(index)
        root = parts.path.rstrip("/")
        if parts.scheme in ("http", "https") and root.endswith("/simple") and hosts == {parts.hostname}:
            return urllib.parse.urlunsplit(parts._replace(path=root[:-len("simple")] + path, query="", fragment=""))
    if hosts == {"files.pythonhosted.org"}:
        return f"https://pypi.org/{path}"
    return None


def _pick(urls: Mapping[str, str]) -> str | None:
    """The changelog-like link among labelled project URLs: https only, no markup characters."""
    for label, link in urls.items():
        link = str(link).strip()
        if _CHANGELOG.search(str(label)) and re.fullmatch(r"https://[^\s<>\"'`()\[\]]{1,500}", link):
            return link
    return None
