"""Locate the shipped templates/ (inside the wheel, or at the top of a checkout)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from string import Template


@lru_cache(maxsize=1)
def templates_dir() -> Path:
    here = Path(__file__).parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("reprex templates/ not found: the installation is incomplete")


def template_text(name: str) -> str:
    return (templates_dir() / name).read_text("utf-8")


def render_template(name: str, **values) -> str:
    return Template(template_text(name)).substitute(**values)
