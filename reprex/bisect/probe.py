"""A probe: the bundle with other pins, ready for replay.

A release probe (`pkg==V`) changes as little as it can: the bundle's roots and `pkg==V` are
re-resolved by `uv pip compile` with the bundle's own pins as the existing output file,
which uv keeps as preferences, so only what V's metadata requires moves. Wheels only
(nothing from a bundle's pins is built on the host). A release that can't be resolved is a
skip with the resolver's reason, never a verdict. A pin-set probe (modes 2 and 3) is
installed as given: it already is a full solution.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from reprex import installer
from reprex.bundle import Bundle
from reprex.pins import canonical, parse_requirements

RESOLVE_TIMEOUT = 300.0
_EXACT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#,]+)\s*$")


class Unresolvable(Exception):
    """A probe that can't be made (the release's requirements conflict, no wheel): a skip."""


@dataclass(frozen=True)
class Target:
    """What a probe resolves for: the bundle's Python and machine."""

    python: str  # X.Y.Z as the bundle ran it
    machine: str  # uname style

    @property
    def xy(self) -> str:
        return ".".join(self.python.split(".")[:2])

    @property
    def uv_platform(self) -> str:
        return f"{self.machine}-unknown-linux-gnu"


def target_of(bundle: Bundle) -> Target:
    from reprex.replay.base import python_xy
    from reprex.replay.target import uname_machine

    xy = python_xy(bundle)  # checked: it names build steps
    full = str((bundle.manifest.get("python") or {}).get("version") or xy)
    full = full if re.fullmatch(r"\d{1,2}\.\d{1,3}\.\d{1,4}", full) else xy + ".0"
    import platform as _platform

    machine = uname_machine((bundle.manifest.get("platform") or {}).get("machine") or _platform.machine())
    if not re.fullmatch(r"[a-z0-9_]{1,20}", machine):
        machine = uname_machine(_platform.machine())
    return Target(python=full, machine=machine)


def lines_of(bundle: Bundle) -> list[str]:
    """The bundle's requirement lines, checked by replay's rules (a stranger's pins)."""
    from reprex.replay.base import requirements
    from reprex.replay.pin_rules import check_bundle_requirements

    lines = requirements(bundle)
    check_bundle_requirements(lines)
    return lines


def exact_pins(lines: list[str]) -> dict[str, str]:
    """{canonical name: version} of the `name==version` lines; other lines are not pins."""
    out = {}
    for line in lines:
        m = _EXACT.match(line.strip())
        if m:
            out[canonical(m.group(1))] = m.group(3)
    return out


def pin_lines(pins: Mapping[str, str]) -> list[str]:
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def with_lines(bundle: Bundle, lines: list[str]) -> Bundle:
    """The bundle with these requirement lines: what replay installs (its lock hash follows)."""
    files = dict(bundle.files)
    files["requirements.txt"] = ("\n".join(lines) + "\n").encode()
    return Bundle(manifest=bundle.manifest, files=files, source=bundle.source)


def roots(bundle: Bundle) -> list[str]:
    """The names the run imported directly (every pinned name for a bundle that doesn't say)."""
    from reprex.lock import top_level
    from reprex.replay.pin_rules import check_bundle_requirement

    out = []
    for line in top_level(bundle):
        try:
            out.append(canonical(check_bundle_requirement(line).name))
        except Exception:  # a line replay would refuse: not a root to resolve
            continue
    return sorted(set(out))


def resolve_release(bundle: Bundle, name: str, version: str, target: Target, *,
                    timeout: float = RESOLVE_TIMEOUT, compile=None) -> list[str]:
    """The bundle's pins with `name==version`, re-resolved around it; Unresolvable says why not.
    `compile`: runners.Resolutions.compile of the bisection (its environment; Ctrl-C stops it)."""
    from reprex.bisect.runners import Resolutions

    lines = lines_of(bundle)
    name = canonical(name)
    current = exact_pins(lines)
    if current.get(name) == version:
        return lines  # the bundle itself
    wanted = [r for r in roots(bundle) if r != name] + [f"{name}=={version}"]
    if installer.uv() is None:
        return _pip_fallback(lines, name, version)
    compile = compile or Resolutions().compile
    args = ["-", "--quiet", "--no-header", "--no-annotate", "--only-binary", ":all:", "--python-version",
            target.python, "--python-platform", target.uv_platform]
    with tempfile.TemporaryDirectory(prefix="reprex-bisect-") as tmp:
        prefs = Path(tmp) / "requirements.txt"
        # the existing output file: uv keeps these versions wherever the new requirement allows
        prefs.write_text("\n".join(l for l in lines if not l.startswith(f"{name}==")) + "\n")
        try:
            proc = compile([*args, "-o", str(prefs)], timeout, "\n".join(wanted) + "\n")
            if proc is None:
                return _pip_fallback(lines, name, version)
        except subprocess.TimeoutExpired:
            raise Unresolvable(f"resolving {name}=={version} took longer than {timeout:.0f}s") from None
        except OSError as exc:
            raise Unresolvable(f"cannot run uv: {exc.strerror or exc}") from None
        if proc.returncode != 0:
            raise Unresolvable(f"unresolvable with the bundle's pins: {name}=={version}: "
                               f"{installer.last_error(proc)}")
        text = prefs.read_text()
    resolved = parse_requirements(text)
    if not resolved:
        raise Unresolvable(f"{name}=={version}: the resolver gave no pins")
    # lines that are not exact pins (a wheel URL) are the bundle's own: kept as they were
    others = [l for l in lines if not _EXACT.match(l.strip()) and canonical(_name(l)) not in exact_pins(resolved)]
    return sorted(resolved + others)


def keep_base(lines: list[str], base: list[str], name: str) -> list[str]:
    """`lines` (a release resolved over `base`) with the base's exact pins that the resolution
    dropped put back (a dependency the release no longer needs stays installed, as upgrading it
    in place would leave it), so the probe differs from the base only where it had to."""
    have = {canonical(_name(l)) for l in lines}
    extra = [l for l in base
             if _EXACT.match(l.strip()) and canonical(_name(l)) not in have | {canonical(name)}]
    return sorted([*lines, *extra]) if extra else lines


def moved_around(a: list[str], b: list[str], name: str) -> dict[str, tuple[str, str]]:
    """{other name: (version in a, version in b)} of the pins both `a` and `b` hold at different
    versions, `name` aside: the surroundings that moved between two probes of `name`'s releases
    (a dependency one release adds or drops is part of that release, not a move)."""
    pa, pb = exact_pins(a), exact_pins(b)
    name = canonical(name)
    return {n: (pa[n], pb[n]) for n in sorted(set(pa) & set(pb)) if n != name and pa[n] != pb[n]}


def marker_env(target: Target) -> dict[str, str]:
    """PEP 508 marker values of the bundle's interpreter (CPython on Linux)."""
    return {"python_version": target.xy, "python_full_version": target.python, "implementation_name": "cpython",
            "implementation_version": target.python, "platform_python_implementation": "CPython",
            "platform_system": "Linux", "sys_platform": "linux", "os_name": "posix",
            "platform_machine": target.machine, "platform_release": "", "platform_version": "", "extra": ""}


def _applies(req, env: dict[str, str], *, extras_bind: bool) -> bool:
    """Does a requirement bind here? `extras_bind`: one behind an extra is taken as binding (another
    distribution may have been installed with that extra): a needless resolve costs a fraction of a
    second, a missed one a wrong probe."""
    if req.marker is None:
        return True
    if extras_bind and "extra" in str(req.marker):
        return True
    return req.marker.evaluate(env)


def quick_lines(bundle: Bundle, name: str, version: str, requires: list[str] | None, target: Target) -> list[str] | None:
    """`name==version` over the bundle's pins as they are, when nothing needs re-resolving: every
    requirement of that release is met by a pin, and no other pinned distribution's recorded
    requirement on `name` (environment.json, as capture found them installed) excludes it. None
    when uv must resolve (metadata unknown, a requirement unmet, extras, a pin not recorded)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    if requires is None:
        return None
    lines = lines_of(bundle)
    pins = exact_pins(lines)
    name = canonical(name)
    if pins.get(name) == version:
        return lines  # the bundle itself (its lock hash, so its own replay is not run twice)
    if name not in pins or any(canonical(_name(l)) == name and "[" in l for l in lines):
        return None  # not pinned yet (uv places it), or pinned with extras (their deps move too)
    env = marker_env(target)
    try:
        v = Version(version)
        for text in requires:
            req = Requirement(text)
            if not _applies(req, env, extras_bind=False):  # its own pin names no extras (checked above)
                continue
            have = pins.get(canonical(req.name))
            if have is None or req.extras or not req.specifier.contains(Version(have), prereleases=True):
                return None
        installed = _recorded_requires(bundle)
        if installed is None or any(n not in installed for n in pins if n != name):
            return None
        for dist, reqs in installed.items():
            if dist == name or dist not in pins:
                continue
            for text in reqs:
                req = Requirement(text)
                if canonical(req.name) == name and _applies(req, env, extras_bind=True) and \
                        not req.specifier.contains(v, prereleases=True):
                    return None
    except (InvalidRequirement, InvalidVersion, TypeError):
        return None
    return sorted([l for l in lines if canonical(_name(l)) != name] + [f"{name}=={version}"])


def _recorded_requires(bundle: Bundle) -> dict[str, list[str]] | None:
    """{canonical name: Requires-Dist} of the distributions capture found installed, or None."""
    env = bundle.json("environment.json", {}) or {}
    try:
        dists = env["packages"]["value"]["distributions"]
    except (KeyError, TypeError):
        return None
    out: dict[str, list[str]] = {}
    for d in dists if isinstance(dists, list) else ():
        if isinstance(d, dict) and isinstance(d.get("name"), str) and isinstance(d.get("requires"), list):
            out[canonical(d["name"])] = [r for r in d["requires"] if isinstance(r, str)][:500]
    return out or None


def _pip_fallback(lines: list[str], name: str, version: str) -> list[str]:
    """Without uv: the release substituted with the other pins as they are (no re-resolution)."""
    kept = [l for l in lines if canonical(_name(l)) != name]
    return sorted(kept + [f"{name}=={version}"])


def _name(line: str) -> str:
    return re.split(r"[=<>!~ @\[;]", line.strip(), 1)[0]


def changed(before: list[str], after: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """{name: (old version, new version)} of what a probe moved: shown in the probe's log."""
    a, b = exact_pins(before), exact_pins(after)
    return {n: (a.get(n), b.get(n)) for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)}
