"""The bisection's result written into the bundle: a `bisect` manifest section, so `render`
puts "what changed" into the issue body.

Written through a Draft opened from the bundle and sealed once (README re-rendered, id
reset), and scrubbed by the same redactor rules as everything else a bundle holds: probe
reasons quote replay output and resolver errors.
"""

from __future__ import annotations

from reprex.bundle import Bundle

MAX_STEPS = 200  # probes listed in the section (the count is always whole)
MAX_TEXT = 500  # characters of one reason


def section(result) -> dict:
    """The manifest section for a BisectResult (plain JSON: strings, numbers, lists)."""
    data = result.to_dict()
    steps = data.pop("steps")
    data["steps"] = [{**s, "reason": str(s.get("reason") or "")[:MAX_TEXT]} for s in steps[:MAX_STEPS]]
    data["steps_cut"] = max(0, len(steps) - MAX_STEPS)
    for finding in data["findings"]:
        for item in finding["skipped"]:
            item["reason"] = str(item["reason"])[:MAX_TEXT]
    data["reason"] = str(data.get("reason") or "")[:MAX_TEXT]
    return data


def with_section(bundle: Bundle, result) -> Bundle:
    """A new bundle: `bundle` with its `bisect` section replaced by this result's."""
    from reprex.draft import Draft, seal
    from reprex.redact import Redactor

    draft = Draft.of(bundle, Redactor())
    draft.manifest.pop("bisect", None)
    draft.add("bisect", section(result))
    new = seal(draft)
    Bundle.from_entries(new.entries(), source="the bisected bundle")  # the read-side checks, before it is kept
    return new
