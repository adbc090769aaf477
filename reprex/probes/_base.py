"""The two types every probe sees: the context it reads and the exception that skips it.

Kept apart from the runner so probe modules can import them without a cycle.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Iterable, Mapping


class ProbeSkipped(Exception):
    """Raised by a probe that does not apply to this run (status "skipped", the reason as error)."""


@dataclass
class ProbeContext:
    """What the probes may know about the failing run; nothing here is redacted yet."""

    python_executable: str  # the interpreter the user's program ran with (may differ from sys.executable)
    imported: frozenset[str]  # top-level module names the failing run imported
    environ: Mapping[str, str]  # the environment the program ran with
    target_facts: dict = field(default_factory=dict)  # facts the in-process recorder gathered (may be {})
    cwd: str = "."

    @classmethod
    def from_current_process(cls, imported: Iterable[str] = (), **overrides) -> "ProbeContext":
        """A context describing this very interpreter (handy for tests, benchmarks and `reprex doctor`)."""
        values = dict(
            python_executable=sys.executable,
            imported=frozenset(imported),
            environ=dict(os.environ),
            target_facts={},
            cwd=os.getcwd(),
        )
        values.update(overrides)
        return cls(**values)
