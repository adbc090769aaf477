"""Re-resolve a bundle's top-level pins for another target (Python, platform).

The bundle's own pins are an installed solution for the capture machine; another
target (arm64 vs x86_64, another Python) may need other builds or have none. uv
resolves for a foreign target when present; otherwise pip's resolver does, in
dry-run mode with --platform/--python-version (pip-compile can't target a
platform other than the one it runs on). Packages with no build for the target
are named: they are the reason for `env-incompatible`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reprex.bundle import Bundle
from reprex.pins import canonical, parse_requirements

_NO_MATCH = re.compile(r"No matching distribution found for ([A-Za-z0-9_.\-\[\]]+)"
                       r"|Package '([A-Za-z0-9_.\-]+)' requires a different Python")
_UV_NO_MATCH = re.compile(r"(?:no wheels|there is no version of|no matching distribution)[^\n]*?\b([A-Za-z0-9_.\-]+)(?:==|\b)",
                          re.I)


@dataclass
class LockResult:
    python: str
    platform: str
    pins: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # packages with no build for the target
    tool: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.error

    def to_dict(self) -> dict:
        return {"python": self.python, "platform": self.platform, "pins": self.pins, "missing": self.missing,
                "tool": self.tool, "error": self.error, "verdict": None if self.ok else "env-incompatible"}


def top_level(bundle: Bundle) -> list[str]:
    """The pins of what the run imported directly (all pins for bundles that don't say)."""
    lines = parse_requirements(bundle.text("requirements.txt"))
    roots = {canonical(r) for r in (bundle.manifest.get("pins") or {}).get("roots") or ()}
    if not roots:
        return lines
    return [line for line in lines if canonical(re.split(r"[=<>!~ @\[]", line, 1)[0]) in roots]


def _pip_resolve(reqs: list[str], python: str, platform: str, timeout: float) -> tuple[list[str], str]:
    with tempfile.TemporaryDirectory(prefix="reprex-lock-") as tmp:
        req_file = Path(tmp) / "requirements.in"
        req_file.write_text("\n".join(reqs) + "\n")
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
               "--disable-pip-version-check", "--only-binary=:all:", "--target", str(Path(tmp) / "t"),
               "--python-version", python, "--implementation", "cp", "--report", str(report), "-r", str(req_file)]
        for tag in platform.split(","):
            cmd += ["--platform", tag.strip()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            return [], proc.stderr or proc.stdout
        data = json.loads(report.read_text())
        pins = sorted(f"{item['metadata']['name']}=={item['metadata']['version']}" for item in data.get("install", []))
        return pins, ""


def _uv_resolve(uv: str, reqs: list[str], python: str, platform: str, timeout: float) -> tuple[list[str], str]:
    proc = subprocess.run([uv, "pip", "compile", "-", "--quiet", "--no-header", "--no-annotate",
                           "--python-version", python, "--python-platform", platform, "--only-binary", ":all:"],
                          input="\n".join(reqs) + "\n", capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return [], proc.stderr or proc.stdout
    return sorted(parse_requirements(proc.stdout)), ""


def _missing_from(error: str) -> list[str]:
    names = [a or b for a, b in _NO_MATCH.findall(error)] or _UV_NO_MATCH.findall(error)
    return sorted({re.split(r"[=<>!~\[]", n, 1)[0] for n in names})


def lock(bundle: Bundle, python: str, platform: str, *, timeout: float = 600.0) -> LockResult:
    reqs = top_level(bundle)
    result = LockResult(python=python, platform=platform)
    if not reqs:
        result.tool = "none"
        return result
    uv = shutil.which("uv")
    result.tool = "uv" if uv and "," not in platform else "pip"

    def resolve(items: list[str]) -> tuple[list[str], str]:
        if result.tool == "uv":
            return _uv_resolve(uv, items, python, platform, timeout)
        return _pip_resolve(items, python, platform, timeout)

    remaining = list(reqs)
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
        remaining = [r for r in remaining if canonical(re.split(r"[=<>!~ @\[]", r, 1)[0]) not in wanted]
        if not remaining:
            return result
    if not result.missing:
        lines = [line for line in error.strip().splitlines() if line.strip()]
        result.error = (lines[-1] if lines else "the resolver failed")[:400]
    return result
