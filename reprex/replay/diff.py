"""What differs between the bundle's environment and the replay's: reprex.envdiff's rows
for the facts a replay knows (Python, platform, GPUs granted, installed pins), in the
{what, bundle, replay} shape that replay's JSON has always had."""

from __future__ import annotations

from reprex.bundle import Bundle
from reprex.envdiff import Side, compare, installed_pins, side_from_bundle


def replay_side(replay_facts: dict | None, backend_info: dict) -> Side:
    """What the replay's recorder and backend tell; the rest stays unknown (not a difference)."""
    facts: dict[str, str | None] = {}
    py = (replay_facts or {}).get("python") or {}
    for key, what in (("version", "python"), ("implementation", "python.implementation")):
        if py.get(key):
            facts[what] = str(py[key])
    plat = backend_info.get("platform") or {}
    for key in ("system", "machine"):
        if plat.get(key):
            facts[f"platform.{key}"] = str(plat[key])
    if not backend_info.get("gpus"):
        facts["gpu"] = "none"
    installed = installed_pins((replay_facts or {}).get("distributions"))
    return Side(label="replay", facts=facts, pins=installed or None, installed=True)


def environment_diff(bundle: Bundle, replay_facts: dict, backend_info: dict) -> list[dict]:
    result = compare(side_from_bundle(bundle), replay_side(replay_facts, backend_info))
    missing = lambda value: "missing" if value is None else value  # noqa: E731
    return [{"what": row["what"], "bundle": missing(row["a"]), "replay": missing(row["b"])}
            for row in result.differences]
