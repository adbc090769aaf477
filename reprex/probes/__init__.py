"""Environment probes: the facts about a failing run's machine and interpreter that go into
environment.json (python, platform, packages, gpu, cuda, env, ray, plus plugins registered
under the "reprex.probes" entry-point group).

Each probe is a small function `probe(ctx) -> JSON value`; `run_probes` runs them
concurrently under a timeout and never raises. Probe modules use the standard library only
(pynvml if importable); ML frameworks are only ever imported in a bounded subprocess.
"""

from ._base import ProbeContext, ProbeSkipped
from ._runner import BUILTIN_PROBES, ENTRY_POINT_GROUP, available_probes, run_probes
from .cuda import arch_mismatches
from .gpu import parse_nvidia_smi_csv, parse_nvidia_smi_header

__all__ = [
    "BUILTIN_PROBES",
    "ENTRY_POINT_GROUP",
    "ProbeContext",
    "ProbeSkipped",
    "arch_mismatches",
    "available_probes",
    "parse_nvidia_smi_csv",
    "parse_nvidia_smi_header",
    "run_probes",
]
