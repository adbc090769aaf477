"""`env` probe: which environment variables were set, and the values of the few that shape
ML runs (CUDA, threading, framework and Python switches).

Names are always kept (their presence alone explains many failures); values only for an
allowlist, and never for a name that looks like a secret. Values are redacted again later
in the pipeline; this allowlist is the first wall, not the only one.
"""

from __future__ import annotations

from typing import Mapping

VALUE_PREFIXES = (
    "CUDA_", "NVIDIA_", "RAY_", "PYTHON", "OMP_", "MKL_", "OPENBLAS_", "TORCH_", "PYTORCH_",
    "NCCL_", "XLA_", "JAX_", "TF_", "HF_", "CUBLAS_", "CUDNN_",
)
VALUE_NAMES = frozenset({
    "LD_LIBRARY_PATH", "LD_PRELOAD", "PATH", "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "LANG", "LC_ALL", "TZ",
    "CI", "BUILD_NUMBER",  # pytest's assertion messages are whole on CI: a replay must see the same
})


def looks_secret(name: str) -> bool:
    """The redactor's rule for environment variable names (one rule for the whole tool)."""
    from reprex.redact import looks_secret_name

    return looks_secret_name(name, strict=False)


def value_allowed(name: str, prefixes: tuple[str, ...] = VALUE_PREFIXES) -> bool:
    """True when the variable's value may be recorded: allowlisted and not secret-looking."""
    if looks_secret(name):
        return False
    upper = name.upper()
    return upper in VALUE_NAMES or upper.startswith(prefixes)


def filter_environ(environ: Mapping[str, str], prefixes: tuple[str, ...] = VALUE_PREFIXES, names_only_prefix: str = "") -> dict:
    """{"names": sorted names, "values": {allowlisted name: value}}; optionally only names with a prefix."""
    names = sorted(n for n in environ if n.upper().startswith(names_only_prefix))
    return {"names": names, "values": {n: environ[n] for n in names if value_allowed(n, prefixes)}}


def probe(ctx) -> dict:
    return filter_environ(ctx.environ)
