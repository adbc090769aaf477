"""Which installed modules an env image byte-compiles: the bundle's list of what its run
imported, checked, as the data file that reprex/templates/docker-compile.py reads in the build.

The list is a stranger's data: it reaches the build as a file of the context, never as text of
the build script or a shell line; a name that isn't a dotted identifier is dropped, a list over
MAX_NAMES is ignored whole (everything is compiled, as for a bundle without a list). The list
only chooses which of the installed sources get a .pyc: it can't add code or change what runs.

It is not part of the image's key: bundles with the same pins share one image, whose bytecode
covers what the first one's run imported; another bundle's extra modules compile in memory on
each run (a read-only root: no .pyc written), as every module does in an image made by hand.
"""

from __future__ import annotations

import re

from reprex.bundle import Bundle

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}(?:\.[A-Za-z_][A-Za-z0-9_]{0,99}){0,15}")
MAX_NAMES = 10_000
EVERYTHING = "*\n"


def compile_list(bundle: Bundle) -> tuple[str, str | None]:
    """(the file's text, a note when the bundle's list was refused or trimmed).

    run.json's `package_modules` (dotted names) -> "modules"; an older bundle's top-level
    `modules` -> "packages" (each imported package whole, but its tests); neither -> "*"."""
    run = bundle.json("run.json", {}) or {}
    for key, mode in (("package_modules", "modules"), ("modules", "packages")):
        listed = run.get(key) if isinstance(run, dict) else None
        if not isinstance(listed, list):
            continue
        if len(listed) > MAX_NAMES:
            return EVERYTHING, (f"run.json's {key} lists {len(listed)} modules (over {MAX_NAMES}): "
                                f"ignored, the image compiles every module")
        valid = [n for n in listed if isinstance(n, str) and NAME.fullmatch(n) and (mode == "modules" or "." not in n)]
        note = (f"run.json's {key}: {len(listed) - len(valid)} malformed module name(s) ignored"
                if len(valid) < len(listed) else None)
        return mode + "\n" + "".join(n + "\n" for n in sorted(set(valid))), note
    return EVERYTHING, None
