"""What differs between the bundle's environment and the replay's: Python, platform, GPU, pins."""

from __future__ import annotations

from reprex.bundle import Bundle
from reprex.pins import canonical, parse_requirements


def _pinned(bundle: Bundle) -> dict[str, str]:
    out = {}
    for line in parse_requirements(bundle.text("requirements.txt")):
        if "==" in line:
            name, _, version = line.partition("==")
            out[canonical(name)] = version.strip()
    return out


def environment_diff(bundle: Bundle, replay_facts: dict, backend_info: dict) -> list[dict]:
    rows = []
    m = bundle.manifest
    py = (replay_facts or {}).get("python") or {}
    if py.get("version") and py["version"] != m["python"]["version"]:
        rows.append({"what": "python", "bundle": m["python"]["version"], "replay": py["version"]})
    plat = backend_info.get("platform") or {}
    for key in ("system", "machine"):
        if plat.get(key) and plat[key] != m["platform"].get(key):
            rows.append({"what": f"platform.{key}", "bundle": m["platform"].get(key), "replay": plat[key]})
    gpu = m.get("gpu")
    if gpu and not backend_info.get("gpus"):
        rows.append({"what": "gpu", "bundle": f"{gpu['count']}x {', '.join(gpu.get('models') or [])}",
                     "replay": "none"})
    installed = {canonical(d["name"]): d["version"] for d in (replay_facts or {}).get("distributions") or ()}
    if installed:
        for name, version in sorted(_pinned(bundle).items()):
            have = installed.get(name)
            if have != version:
                rows.append({"what": f"pin {name}", "bundle": version, "replay": have or "missing"})
    return rows
