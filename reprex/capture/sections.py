"""Extra manifest sections (`ray`, plugins' own), registered like probes so the pipeline
imports none of them.

A section is `fn(outcome, *, cwd, environ) -> JSON value or None`; a non-None value goes
into the manifest under the section's name, scrubbed by the bundle's redactor. Built-ins
are named as "module:function" and imported only when a capture runs; plugins register
under the "reprex.sections" entry-point group (built-in names and manifest keys win).
"""

from __future__ import annotations

import importlib
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

ENTRY_POINT_GROUP = "reprex.sections"

BUILTIN_SECTIONS: dict[str, str] = {
    "ray": "reprex.ray.section:ray_section",
}

Section = Callable[..., Any]


def _load(ref: str) -> Section:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def available_sections() -> dict[str, Callable[[], Section]]:
    """name -> a loader for its function; built-ins first, then entry points by name."""
    found: dict[str, Callable[[], Section]] = {name: (lambda ref=ref: _load(ref)) for name, ref in
                                               BUILTIN_SECTIONS.items()}
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # broken metadata somewhere on sys.path must not break capture
        return found
    for ep in sorted(eps, key=lambda e: e.name):
        found.setdefault(ep.name, ep.load)
    return found


def sections(outcome, *, cwd: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """Every section with something to say. A plugin that fails is left out; a built-in's
    error is reprex's own bug and propagates."""
    out: dict[str, Any] = {}
    for name, load in available_sections().items():
        builtin = name in BUILTIN_SECTIONS
        try:
            value = load()(outcome, cwd=cwd, environ=environ)
        except Exception:
            if builtin:
                raise
            continue
        if value is not None:
            out[name] = value
    return out
