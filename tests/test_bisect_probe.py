"""A release probe's pins: kept as the bundle's where they fit (no resolver run), re-resolved by uv
where the release or another pin asks for it; the bundle's own release is the bundle itself."""

from __future__ import annotations

import json

import pytest

from reprex.bisect.probe import Target, quick_lines, with_lines
from reprex.bundle import Bundle
from reprex.replay.base import lock_hash

TARGET = Target(python="3.11.7", machine="x86_64")


def bundle(pins: list[str], installed: dict[str, list[str]] | None) -> Bundle:
    files = {"requirements.txt": ("\n".join(pins) + "\n").encode()}
    if installed is not None:
        dists = [{"name": n, "version": "0", "requires": r} for n, r in installed.items()]
        files["environment.json"] = json.dumps({"packages": {"status": "ok", "value": {"distributions": dists}}}).encode()
    return Bundle(manifest={"python": {"version": "3.11.7"}, "platform": {"machine": "x86_64"}}, files=files)


FLASK = bundle(["Flask==2.0.3", "Jinja2==3.1.2", "MarkupSafe==2.1.3", "Werkzeug==2.0.3", "click==8.1.3",
                "itsdangerous==2.1.2"],
               {"flask": ["Werkzeug>=2.0", "Jinja2>=3.0", "itsdangerous>=2.0", "click>=7.1.2"],
                "jinja2": ["MarkupSafe>=2.0", 'Babel>=2.7; extra == "i18n"'], "markupsafe": [],
                "werkzeug": ['watchdog; extra == "watchdog"'], "click": [], "itsdangerous": []})


def test_the_bundles_own_release_is_the_bundle():
    """Same lines, same lock hash: the bundle's own replay answers for it (names keep their case)."""
    lines = quick_lines(FLASK, "jinja2", "3.1.2", [], TARGET)
    assert lines == FLASK.text("requirements.txt").split()
    assert lock_hash(with_lines(FLASK, lines)) == lock_hash(FLASK)


def test_a_release_that_fits_the_pins_moves_only_itself():
    lines = quick_lines(FLASK, "jinja2", "3.0.3", ["MarkupSafe>=2.0", 'Babel>=2.7; extra == "i18n"'], TARGET)
    assert lines is not None and "jinja2==3.0.3" in lines and "Jinja2==3.1.2" not in lines
    assert len(lines) == 6


@pytest.mark.parametrize("requires,why", [
    (["MarkupSafe>=2.2"], "its own requirement is not met by the pins"),
    (["Babel>=2.7"], "it needs a package the bundle lacks"),
    (["MarkupSafe[extra]>=2.0"], "an extra moves more than the pin"),
    (None, "its metadata is not known"),
])
def test_uv_resolves_when_the_release_asks(requires, why):
    assert quick_lines(FLASK, "jinja2", "3.0.3", requires, TARGET) is None, why


def test_another_pins_requirement_sends_it_to_uv():
    """Flask says Jinja2>=3.0: 2.11.3 would break Flask's pin, so uv decides what moves."""
    assert quick_lines(FLASK, "jinja2", "2.11.3", ["MarkupSafe>=0.23"], TARGET) is None
    # ... also behind an extra another distribution may have been installed with
    b = bundle(["a==1.0", "b==1.0"], {"a": ['b<1.0; extra == "x"'], "b": []})
    assert quick_lines(b, "b", "1.1", [], TARGET) is None
    # a marker that does not hold on the bundle's Python doesn't bind
    b = bundle(["a==1.0", "b==1.0"], {"a": ['b<1.0; python_version < "3.8"'], "b": []})
    assert quick_lines(b, "b", "1.1", [], TARGET) == ["a==1.0", "b==1.1"]


def test_without_recorded_requirements_uv_resolves():
    assert quick_lines(bundle(["a==1.0", "b==1.0"], None), "b", "1.1", [], TARGET) is None
    assert quick_lines(bundle(["a==1.0", "b==1.0"], {"b": []}), "b", "1.1", [], TARGET) is None  # a unrecorded
