"""The one home of what reprex writes out and the data it ships: read here, never found by path.

Everything in this package is package data, read with importlib.resources, so a checkout, an
editable install and a wheel see the same files (no probing of two paths, no build-time
force-include):

- string.Template files (`*.tmpl`: write `$$` for a dollar sign) and the docker scripts
  (`docker-build.sh`, the env image's one step; `docker-run.sh`, `docker-dump.sh`), which take values as arguments;
- generated code as real modules, linted like the rest of reprex: `pytest_entry.py` (copied
  beside each standalone test script) and the `check-serve` repros `serve-*-repro.py` (copied
  with their parameter block rendered; hyphenated so that nothing imports them by accident).
  Standard library only where a bundle carries them: a replay has the bundle's pins, not reprex;
- `images.json`: data, not a template (the docker backend's base images and CUDA table). It
  lives here rather than in a reprex/data/ of its own so that everything reprex ships that is
  not reprex's own code has one place and one loader.
"""

from __future__ import annotations

from importlib import resources
from string import Template


def template_text(name: str) -> str:
    """The text of one shipped file of this package."""
    try:
        return resources.files(__name__).joinpath(name).read_text("utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"reprex template {name!r} not found: the installation is incomplete") from None


def render_template(name: str, **values) -> str:
    return Template(template_text(name)).substitute(**values)
