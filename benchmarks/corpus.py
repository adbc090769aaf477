"""The fidelity corpus (tests/fixtures/fidelity/cases.py) for a benchmark run from a checkout:
the checkout and the corpus on sys.path, Ray quiet, then the corpus's names re-exported."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "tests" / "fixtures" / "fidelity"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from cases import CASES, CHECKS, capture, run_checks  # noqa: E402

__all__ = ["CASES", "CHECKS", "ROOT", "capture", "run_checks"]
