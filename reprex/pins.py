"""Exact pins: installed metadata -> the closure of what the run imported.

Offline and resolver-free: the installed environment already is a solution, so
walking Requires-Dist (markers evaluated for the target interpreter) from the
imported distributions gives the smallest faithful requirements.txt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NORMALIZE = re.compile(r"[-_.]+")
# Never pinned: the installer's own tooling, and reprex, which replay injects itself.
_TOOLING = {"pip", "setuptools", "wheel", "reprex", "distribute"}


def canonical(name: str) -> str:
    return _NORMALIZE.sub("-", name).lower()


@dataclass
class Pin:
    name: str
    version: str
    line: str  # the requirements.txt line
    flags: list[str] = field(default_factory=list)  # editable, vcs, local-path, local-version
    editable_kind: str | None = None  # pep660, pth, egg-link, path, pep610 (reprex.editables)

    def to_dict(self) -> dict:
        out = {"name": self.name, "version": self.version, "line": self.line, "flags": self.flags}
        if self.editable_kind:
            out["editable_kind"] = self.editable_kind
        return out


def _marker_env(python_version: str | None) -> dict:
    from packaging.markers import default_environment

    env = default_environment()
    if python_version:
        parts = python_version.split(".")
        env["python_full_version"] = python_version
        env["python_version"] = ".".join(parts[:2])
    return env


def pin_line(dist: dict) -> Pin:
    """One distribution -> its pin, honouring PEP 610 provenance and development installs
    (`editable`, set by reprex.editables.annotate)."""
    name, version = dist["name"], dist["version"]
    flags: list[str] = []
    if "+" in version:
        flags.append("local-version")
    editable = dist.get("editable")
    if isinstance(editable, dict):
        # Its code is the user's checkout, bundled as files: never a release to install.
        return Pin(name, version, f"# {name}=={version}", flags + ["editable"], str(editable.get("kind") or "pep610"))
    direct = dist.get("direct_url") or {}
    url = direct.get("url", "")
    if direct.get("vcs_info"):
        vcs = direct["vcs_info"]
        commit = vcs.get("commit_id") or vcs.get("requested_revision") or ""
        flags.append("vcs")
        line = f"{name} @ {vcs.get('vcs', 'git')}+{url}@{commit}" if commit else f"{name} @ {vcs.get('vcs', 'git')}+{url}"
        if direct.get("subdirectory"):
            line += f"#subdirectory={direct['subdirectory']}"
        return Pin(name, version, line, flags)
    if (direct.get("dir_info") or {}).get("editable"):  # facts not annotated: PEP 610 alone
        return Pin(name, version, f"# {name}=={version}", flags + ["editable"], "pep610")
    if url.startswith("file:"):
        flags.append("local-path")
    elif url and direct.get("archive_info") is not None:
        flags.append("url")
        return Pin(name, version, f"{name} @ {url}", flags)
    return Pin(name, version, f"{name}=={version}", flags)


def roots_for(facts: dict, imported: dict | list | set) -> set[str]:
    """Canonical names of the distributions that provide the imported modules."""
    import sys

    module_dists = facts.get("module_dists") or {}
    dists = facts.get("distributions") or ()
    by_top: dict[str, list[str]] = {}
    for dist in dists:
        for top in dist.get("top_level") or ():
            by_top.setdefault(top, []).append(dist["name"])
    by_name = {canonical(d["name"]): d["name"] for d in dists}
    names = set()
    for module in imported:
        found = module_dists.get(module)
        if not found and module not in sys.stdlib_module_names:
            # A package whose import failed is gone from sys.modules by exit time, so
            # the recorder couldn't map it: its import event and metadata still can.
            found = by_top.get(module) or ([by_name[canonical(module)]] if canonical(module) in by_name else [])
        for dist in found or ():
            names.add(canonical(dist))
    # Editable installs live outside site-packages: match module files to their source tree.
    if isinstance(imported, dict):
        for dist, root in editable_roots(facts).items():
            if any(path and under(path, root) and "/_inject/" not in path
                   for name, path in imported.items() if name != "sitecustomize"):
                names.add(canonical(dist))
    return names


def editable_roots(facts: dict) -> dict[str, str]:
    """Distribution name -> the checkout its editable install points at (tooling left out:
    replay brings its own reprex)."""
    from reprex.editables import annotate_facts

    return {d["name"]: d["editable"]["root"] for d in annotate_facts(facts)
            if isinstance(d.get("editable"), dict) and d["editable"].get("root")
            and canonical(str(d["name"])) not in _TOOLING}


def under(path: str, root: str) -> bool:
    """Is `path` the checkout's own code? Not a venv or site dir that happens to lie inside it."""
    import os

    real, root = os.path.realpath(path), root.rstrip(os.sep)
    if not root or not real.startswith(root + os.sep):
        return False
    parts = real[len(root) + 1:].split(os.sep)[:-1]
    return not any(p in ("site-packages", "dist-packages") or p.startswith(".") for p in parts)


def closure(facts: dict, roots: set[str], extra_roots: dict[str, set[str]] | None = None) -> list[Pin]:
    """Walk Requires-Dist from the roots through installed distributions."""
    if not roots and not extra_roots:
        return []  # and skip importing packaging, the slowest part of an empty walk
    from packaging.requirements import InvalidRequirement, Requirement

    from reprex.editables import annotate_facts

    annotate_facts(facts)
    installed = {canonical(d["name"]): d for d in facts.get("distributions") or ()}
    base_env = _marker_env((facts.get("python") or {}).get("version"))
    wanted: dict[str, set[str]] = {}  # name -> extras requested
    # Tooling is neither pinned nor walked: its dependencies are not the program's.
    stack = [(r, set()) for r in roots if r in installed and r not in _TOOLING]
    for name, extras in (extra_roots or {}).items():
        if name in installed:
            stack.append((name, set(extras)))
    while stack:
        name, extras = stack.pop()
        known = wanted.get(name)
        if known is not None and extras <= known:
            continue
        wanted[name] = (known or set()) | extras
        for text in installed[name].get("requires") or ():
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is not None:
                active = [""] + sorted(wanted[name])
                if not any(req.marker.evaluate({**base_env, "extra": e}) for e in active):
                    continue
            dep = canonical(req.name)
            if dep in installed and dep not in _TOOLING:
                stack.append((dep, set(req.extras)))
    pins = [pin_line(installed[n]) for n in sorted(wanted) if n not in _TOOLING]
    return pins


def requirements_txt(pins: list[Pin]) -> str:
    lines = ["# Exact pins: the installed closure of what the run imported (written by reprex)."]
    for pin in pins:
        note = f"  # {', '.join(pin.flags)}" if pin.flags and pin.flags != ["local-version"] else ""
        if "editable" in pin.flags:
            note += f" ({pin.editable_kind or 'pep610'}): its imported code is bundled in files/"
        lines.append(pin.line + note)
    return "\n".join(lines) + "\n"


def parse_requirements(text: str) -> list[str]:
    """Requirement lines of a bundle's requirements.txt (comments and blanks dropped)."""
    out = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out
