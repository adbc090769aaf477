"""Re-resolve a bundle's top-level pins for another target (Python, platform).

The bundle's own pins are an installed solution for the capture machine; another
target (arm64 vs x86_64, another Python) may need other builds or have none. uv
resolves for a foreign target (with the host pip's indexes, reprex.installer); where uv
can't run, pip's resolver does, in dry-run mode with --platform/--python-version
(pip-compile can't target a platform other than the one it runs on, which is why
pip-tools is no dependency). Packages with no build for the target
are named: they are the reason for `env-incompatible`.

The bundle is a stranger's input and the resolver runs on the host, so lock follows
replay's rules (reprex.replay.pin_rules): every requirement line must pass
check_bundle_requirements (no option lines, `-e`, `file://`, http, local paths), the
resolver gets the lines as arguments (pip) and resolves from wheels only (nothing is
built, so no setup.py runs here), git and sdist references are not handed to it at all
(they have no wheel: listed as missing), and `name @ https://...` wheel pins, which make
this machine connect to an address the bundle chose, need the user's `allow_urls`.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reprex import installer
from reprex.bundle import Bundle
from reprex.pins import canonical, parse_requirements

_NO_MATCH = re.compile(r"No matching distribution found for ([A-Za-z0-9_.\-\[\]]+)"
                       r"|Package '([A-Za-z0-9_.\-]+)' requires a different Python")
_UV_NO_MATCH = re.compile(r"(?:no wheels|there is no version of|no matching distribution)[^\n]*?\b([A-Za-z0-9_.\-]+)(?:==|\b)"
                          r"|\b([A-Za-z0-9_.\-]+)==\S+ (?:cannot be used|depends on Python|has no (?:usable |matching )?wheels)", re.I)


@dataclass
class LockResult:
    python: str
    platform: str
    pins: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # packages with no build for the target
    tool: str = ""
    error: str = ""  # infra-error: a refused bundle, or the resolver failed
    reason: str = ""  # env-incompatible for a reason beyond `missing` (an ungranted URL pin)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.error and not self.reason

    @property
    def verdict(self) -> str | None:
        if self.ok:
            return None
        return "infra-error" if self.error else "env-incompatible"

    def to_dict(self) -> dict:
        return {"python": self.python, "platform": self.platform, "pins": self.pins, "missing": self.missing,
                "tool": self.tool, "error": self.error, "reason": self.reason, "verdict": self.verdict}


def top_level(bundle: Bundle) -> list[str]:
    """The pins of what the run imported directly (all pins for bundles that don't say)."""
    lines = parse_requirements(bundle.text("requirements.txt"))
    pins = bundle.manifest.get("pins")
    roots = {canonical(r) for r in ((pins.get("roots") if isinstance(pins, dict) else None) or ())
             if isinstance(r, str)}
    if not roots:
        return lines
    return [line for line in lines if canonical(re.split(r"[=<>!~ @\[;]", line, 1)[0].strip()) in roots]


def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess | str:
    """The resolver's result, or why it could not run (one line)."""
    try:
        return installer.run(cmd, timeout, **kw)
    except subprocess.TimeoutExpired:
        return f"the resolver took longer than {timeout:.0f}s"
    except OSError as exc:
        return f"cannot run {cmd[0]}: {exc.strerror or exc}"


def _pip_resolve(reqs: list[str], python: str, platform: str, timeout: float) -> tuple[list[str], str]:
    """pip's resolver, wheels only, the (checked) lines as arguments after `--`: never through a
    requirements file, where a line could be read as an option or have `${VAR}` expanded."""
    with tempfile.TemporaryDirectory(prefix="reprex-lock-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = installer.pip_argv("install", "--dry-run", "--quiet", "--ignore-installed", "--only-binary=:all:",
                                 "--target", str(Path(tmp) / "t"), "--python-version", python,
                                 "--implementation", "cp", "--report", str(report))
        for tag in platform.split(","):
            cmd += ["--platform", tag.strip()]
        proc = _run(cmd + ["--", *reqs], timeout)
        if isinstance(proc, str):
            return [], proc
        if proc.returncode != 0:
            return [], proc.stderr or proc.stdout or f"pip exited with status {proc.returncode}"
        try:
            data = json.loads(report.read_text())
            pins = sorted(f"{item['metadata']['name']}=={item['metadata']['version']}"
                          for item in data.get("install", []))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return [], "pip's resolution report could not be read"
        return pins, ""


def _uv_resolve(reqs: list[str], python: str, platform: str, timeout: float) -> tuple[list[str], str]:
    """uv's resolver with the host pip's indexes, wheels only (`--only-binary :all:`: no sdist is
    used, so none is built); the lines are checked and hold no `$` (uv expands `${VAR}` in
    requirement input)."""
    cmd = installer.compile_argv("-", "--quiet", "--no-header", "--no-annotate", "--python-version", python,
                                 "--python-platform", platform, "--only-binary", ":all:")
    if cmd is None:
        return [], "uv can't run here"
    proc = _run(cmd, timeout, input="\n".join(reqs) + "\n")
    if isinstance(proc, str):
        return [], proc
    if proc.returncode != 0:
        return [], proc.stderr or proc.stdout or f"uv exited with status {proc.returncode}"
    return sorted(parse_requirements(proc.stdout)), ""


def _missing_from(error: str) -> list[str]:
    names = [a or b for a, b in _NO_MATCH.findall(error)] or [a or b for a, b in _UV_NO_MATCH.findall(error)]
    return sorted({re.split(r"[=<>!~\[]", n, 1)[0] for n in names})


def lock(bundle: Bundle, python: str, platform: str, *, allow_urls: bool = False,
         timeout: float = 600.0) -> LockResult:
    from reprex.replay.base import ReplayProblem, requirements
    from reprex.replay.pin_rules import (check_bundle_requirement, check_bundle_requirements, check_url_grant,
                                         source_reference)

    result = LockResult(python=python, platform=platform)
    try:  # replay's rules, over every line of the bundle (not only the roots)
        lines = requirements(bundle)
        check_bundle_requirements(lines)
        check_url_grant(lines, allow_urls)
    except ReplayProblem as exc:
        if exc.verdict == "env-incompatible":
            result.reason = exc.reason
        else:
            result.error = exc.reason
        return result
    reqs = top_level(bundle)
    # git and sdist references have no wheel, and resolving one would build it here: never handed over
    sources = [r for r in reqs if source_reference(r)]
    for line in sources:
        result.missing.append(canonical(check_bundle_requirement(line).name))
    reqs = [r for r in reqs if r not in sources]
    if sources:
        result.reason = (f"no wheel for Python {python} on {platform} of: {', '.join(sources)} (git and sdist "
                         "references from a bundle are never built on the host)")
    if not reqs:
        result.tool = "none"
        return result
    uv = installer.uv()
    result.tool = "uv" if uv and "," not in platform and not any("$" in r for r in reqs) else "pip"

    def resolve(items: list[str]) -> tuple[list[str], str]:
        if result.tool == "uv":
            return _uv_resolve(items, python, platform, timeout)
        return _pip_resolve(items, python, platform, timeout)

    remaining = list(reqs)
    error = ""
    for _ in range(20):  # resolvers stop at the first package with no build: drop it and go on
        pins, error = resolve(remaining)
        if not error:
            if not result.missing:
                result.pins = pins
            return result
        missing = [m for m in _missing_from(error) if m not in result.missing]
        if not missing:
            break
        result.missing.extend(missing)
        wanted = {canonical(m) for m in missing}
        remaining = [r for r in remaining if canonical(re.split(r"[=<>!~ @\[;]", r, 1)[0].strip()) not in wanted]
        if not remaining:
            return result
    if not result.missing:
        lines = [line for line in error.strip().splitlines() if line.strip()]
        result.error = (lines[-1] if lines else "the resolver failed")[:400]
    return result
