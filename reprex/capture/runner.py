"""Which interpreter a captured command will run: `python ...` itself, or a script's shebang.

Capture probes that interpreter for pins; running the command itself is reprex.recorded's job.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Sequence

_PYTHON_NAME = re.compile(r"^(?:python|pypy)(?:\d+(?:\.\d+)?)?(?:\.exe)?$")


def python_of(argv: Sequence[str], path: str | None = None) -> str | None:
    """The interpreter a command will run: `python ...` itself, or a script's shebang."""
    if not argv:
        return None
    exe = shutil.which(argv[0], path=path) or (argv[0] if os.path.isfile(argv[0]) else None)
    if exe is None:
        return None
    if _PYTHON_NAME.match(os.path.basename(argv[0])):
        return exe
    try:
        with open(exe, "rb") as fh:
            first = fh.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    parts = first[2:].split()
    if not parts:
        return None
    if os.path.basename(parts[0]) == "env":
        parts = [p for p in parts[1:] if not p.startswith("-")]
        if not parts:
            return None
        return shutil.which(parts[0], path=path)
    return parts[0] if "python" in os.path.basename(parts[0]) or "pypy" in parts[0] else None
