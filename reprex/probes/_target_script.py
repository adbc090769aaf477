"""Facts read inside the target interpreter when the recorder gave none.

This file is both imported (for this process) and sent whole as `python -c` source
to another interpreter, so it is standard library only, has no relative imports and
prints one JSON line when run as a script: `python -c <this file> python|distributions`.
It mirrors the shapes of the recorder's facts (reprex/_inject/sitecustomize.py).
"""

import json
import platform
import sys


def python_facts():
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "sys_path": list(sys.path),
    }


def distributions():
    from importlib import metadata

    out = []
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
            if not name:
                continue
            direct = dist.read_text("direct_url.json")
            try:
                direct_url = json.loads(direct) if direct else None
            except ValueError:
                direct_url = None
            out.append(
                {
                    "name": name,
                    "version": dist.version,
                    "requires": dist.requires or [],
                    "direct_url": direct_url,
                    "installer": (dist.read_text("INSTALLER") or "").strip() or None,
                    "location": str(getattr(dist, "_path", "") or ""),
                }
            )
        except Exception:
            continue
    return out


if __name__ == "__main__":
    _what = sys.argv[1] if len(sys.argv) > 1 else "python"
    _facts = distributions() if _what == "distributions" else python_facts()
    sys.stdout.write("\n__REPREX_FACTS__" + json.dumps(_facts) + "\n")
