"""Which installed distributions are development (editable) installs, and of what kind.

Such a distribution's code is the user's checkout, not a release: pinning `name==version`
would make replay install something else (or fail). Recognised here, on the host after the
run (so the recorder inside the user's process stays as cheap as it was), from the facts
it wrote plus a look at the site directories:

- `pep660`: setuptools' `__editable__.<name>-<ver>.pth` / `__editable___<name>_<ver>_finder.py`
- `pth`: a `.pth` path entry into a project tree (flit/hatch/pdm editables, setuptools
  compat mode, `conda develop`)
- `egg-link`: `setup.py develop` / legacy `pip install -e` (an `.egg-link` beside `easy-install.pth`)
- `path`: metadata in a project tree reached some other way (PYTHONPATH, the working dir)
- `pep610`: only `direct_url.json` says editable (a custom import hook)

Metadata that lives in a project tree, not in a site directory, is the strongest signal.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlparse

from reprex.pins import canonical as _canon

SITE_NAMES = ("site-packages", "dist-packages")
_PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg")
_HOOK = re.compile(r"^__editable___?\.?(?P<name>.+?)(?:[-_]\d[\w.]*?)?(?:_finder\.py|\.pth)$")
_MAX_PTH = 64 * 1024  # a .pth larger than this is not a list of paths worth reading


def _real(path: str) -> str:
    return os.path.realpath(path)


def site_dirs(dists: list[dict], sys_path=()) -> set[str]:
    """Site directories (as given and resolved): named so on sys.path or holding a distribution's metadata."""
    given = {p for p in sys_path or () if isinstance(p, str) and os.path.basename(p.rstrip("/")) in SITE_NAMES}
    given |= {os.path.dirname(str(d.get("location") or "")) for d in dists}
    given = {p for p in given if os.path.basename(p) in SITE_NAMES and os.path.isdir(p)}
    return given | {_real(p) for p in given}


class _Sites:
    """What the site directories say about development installs, read once."""

    def __init__(self, sites: set[str]):
        self.sites = sites
        self.egg_links: set[str] = set()  # project dirs an .egg-link points at
        self.pth_paths: dict[str, str] = {}  # project dir on a .pth line -> that .pth file
        self.hooks: set[str] = set()  # canonical names with setuptools' __editable__ files
        for site in sorted({_real(s) for s in sites}):
            try:
                names = os.listdir(site)
            except OSError:
                continue
            for name in names:
                try:
                    self._read(site, name)
                except (OSError, ValueError):  # a NUL in a .pth line, a dangling link: not ours to judge
                    continue

    def _read(self, site: str, name: str) -> None:
        path = os.path.join(site, name)
        if name.startswith("__editable__"):
            match = _HOOK.match(name)
            if match:
                self.hooks.add(_canon(match.group("name")))
        if name.endswith(".egg-link"):
            first = _lines(path)[:1]
            if first:
                self.egg_links.add(_real(os.path.join(site, first[0])))
        elif name.endswith(".pth"):
            for line in _lines(path):
                if line.startswith(("#", "import ", "import\t")):
                    continue
                target = _real(os.path.join(site, line))
                if not self.in_site(target) and os.path.isdir(target):
                    self.pth_paths.setdefault(target, path)

    def in_site(self, path: str) -> bool:
        return path in self.sites or any(path.startswith(s + os.sep) for s in self.sites)

    def owners(self, name: str) -> list[tuple[str, str]]:
        """(project dir, .pth) pairs whose .pth file is named for `name` (`name.pth`, hatch's
        `_editable_impl_name.pth`, `__editable__.name-1.0.pth`): only those RECORDs are read."""
        return [(target, pth) for target, pth in self.pth_paths.items() if _pth_hint(pth) == name]


def _pth_hint(pth: str) -> str:
    stem = os.path.basename(pth)[:-len(".pth")]
    for prefix in ("__editable__.", "_editable_impl_"):
        stem = stem[len(prefix):] if stem.startswith(prefix) else stem
    return _canon(re.sub(r"-\d[\w.]*$", "", stem.lstrip("_")))


def _lines(path: str) -> list[str]:
    try:
        if os.path.getsize(path) > _MAX_PTH:
            return []
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [line.strip() for line in fh if line.strip()]
    except OSError:
        return []


def _is_project(path: str) -> bool:
    """A checkout: a project file in the dir or its parent (a `src/` layout)."""
    return any(os.path.isfile(os.path.join(d, f)) for d in (path, os.path.dirname(path)) for f in _PROJECT_FILES)


def _record_pths(location: str) -> list[str]:
    """The .pth files a dist-info's RECORD lists (read only when a .pth points outside the sites)."""
    try:
        with open(os.path.join(location, "RECORD"), encoding="utf-8", errors="replace") as fh:
            heads = [line.split(",", 1)[0] for line in fh]
    except OSError:
        return []
    site = os.path.dirname(location)
    return [_real(os.path.join(site, h)) for h in heads if h.endswith(".pth") and "/" not in h]


def _url_root(direct: dict) -> str | None:
    url = direct.get("url")
    if isinstance(url, str) and url.startswith("file:"):
        return _real(unquote(urlparse(url).path)) or None
    return None


def classify(dist: dict, sites: _Sites) -> dict | None:
    """{"kind", "root"} for a development install, else None. `root` is the checkout (or its
    import dir) whose files are the distribution's code; None when only a hook knows it."""
    direct = dist.get("direct_url") if isinstance(dist.get("direct_url"), dict) else {}
    location = str(dist.get("location") or "")
    parent = os.path.dirname(location)
    if parent not in sites.sites:  # the common case, a site dir as given, needs no realpath
        location = _real(location) if location else ""
        parent = os.path.dirname(location)
    name = _canon(str(dist.get("name") or ""))
    if (direct.get("dir_info") or {}).get("editable") if isinstance(direct.get("dir_info"), dict) else False:
        root = _url_root(direct)
        if name in sites.hooks:
            kind = "pep660"
        elif root and any(p == root or p.startswith(root + os.sep) for p in sites.pth_paths):
            kind = "pth"
        else:
            kind = "pep610"
        return {"kind": kind, "root": root}
    if location.endswith(".egg-info") and os.path.basename(parent) != "EGG-INFO" and not sites.in_site(parent):
        # setuptools leaves <name>.egg-info in the checkout for PEP 660 installs too: run from
        # there, it is found before the dist-info in site-packages
        kind = "egg-link" if parent in sites.egg_links else "pep660" if name in sites.hooks \
            else "pth" if parent in sites.pth_paths else "path"
        return {"kind": kind, "root": parent}
    if not location.endswith(".dist-info") or not sites.in_site(parent):
        return None
    if name in sites.hooks:
        return {"kind": "pep660", "root": None}
    candidates = sites.owners(name)
    if candidates:
        owned = set(_record_pths(location))
        for target, pth in candidates:
            if pth in owned and _is_project(target):
                return {"kind": "pth", "root": target}
    return None


def annotate(dists: list[dict] | None, sys_path=()) -> list[dict]:
    """Set `editable` ({"kind", "root"} or None) on every distribution record, once."""
    dists = [d for d in dists or () if isinstance(d, dict)]
    if not dists or all("editable" in d for d in dists):
        return dists
    sites = _Sites(site_dirs(dists, sys_path))
    for dist in dists:
        if "editable" not in dist:
            try:
                dist["editable"] = classify(dist, sites)
            except (OSError, ValueError, TypeError):
                dist["editable"] = None
    return dists


def annotate_facts(facts: dict) -> list[dict]:
    """annotate() over a recorder's facts (its distributions and sys.path)."""
    python = facts.get("python") if isinstance(facts.get("python"), dict) else {}
    return annotate(facts.get("distributions"), python.get("sys_path") or ())


def kind_of(dist: dict) -> str | None:
    info = dist.get("editable")
    return info.get("kind") if isinstance(info, dict) else None

