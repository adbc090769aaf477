"""`python` probe: which interpreter ran the program and what kind of environment it lives in.

Replay has to rebuild the same kind of interpreter, so the facts come from the target
interpreter (recorder facts, else a bounded query of ctx.python_executable), and only
from this process when that is the same interpreter or the query fails.
"""

from __future__ import annotations

import os
from typing import Mapping

from . import _proc, _target_script

KEYS = ("version", "implementation", "executable", "prefix", "base_prefix", "sys_path")


def read_pyvenv_cfg(prefix: str) -> dict[str, str] | None:
    """The `key = value` pairs of PREFIX/pyvenv.cfg, or None when there is none."""
    try:
        with open(os.path.join(prefix, "pyvenv.cfg"), encoding="utf-8", errors="replace") as fh:
            text = fh.read(64 * 1024)
    except OSError:
        return None
    cfg = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            cfg[key.strip().lower()] = value.strip()
    return cfg


def detect_env(prefix: str, base_prefix: str, environ: Mapping[str, str], pyvenv_cfg: dict | None) -> dict:
    """Classify the environment; flags can overlap (a venv made from a pyenv or conda Python)."""
    prefix = prefix or ""
    base_prefix = base_prefix or prefix
    uv_vars = sorted(k for k in environ if k == "UV" or k.startswith("UV_"))
    virtualenv = os.path.normpath(prefix) != os.path.normpath(base_prefix) or pyvenv_cfg is not None
    uv_run = "UV_RUN_RECURSION_DEPTH" in environ or "UV" in environ  # set by `uv run` for its child
    uv = bool(pyvenv_cfg and "uv" in pyvenv_cfg) or (uv_run and virtualenv)
    conda_prefix = environ.get("CONDA_PREFIX")
    conda = any(os.path.isdir(os.path.join(p, "conda-meta")) for p in {prefix, base_prefix} if p) or bool(
        conda_prefix and os.path.normpath(conda_prefix) in {os.path.normpath(prefix), os.path.normpath(base_prefix)}
    )
    pyenv_root = environ.get("PYENV_ROOT") or ""
    pyenv = "/.pyenv/" in base_prefix.replace(os.sep, "/") or bool(
        pyenv_root and os.path.normpath(base_prefix).startswith(os.path.normpath(pyenv_root) + os.sep)
    )
    if uv:
        kind = "uv"
    elif virtualenv:
        kind = "virtualenv"
    elif conda:
        kind = "conda"
    elif pyenv:
        kind = "pyenv"
    else:
        kind = "system"
    return {
        "kind": kind,
        "virtualenv": virtualenv,
        "uv": uv,
        "uv_run": uv_run,
        "uv_env_vars": uv_vars,
        "conda": conda,
        "conda_prefix": conda_prefix,
        "conda_env": environ.get("CONDA_DEFAULT_ENV"),
        "pyenv": pyenv,
        "pyenv_version": environ.get("PYENV_VERSION"),
        "pyvenv_cfg": pyvenv_cfg,
    }


def probe(ctx) -> dict:
    facts = (ctx.target_facts or {}).get("python")
    source, note = "target", None
    if not facts:
        if _proc.same_interpreter(ctx.python_executable):
            facts, source = _target_script.python_facts(), "process"
        else:
            try:
                facts, source = _proc.query_target(ctx, "python"), "subprocess"
            except Exception as exc:  # fall back, but say so: these facts may be the wrong interpreter's
                facts, source = _target_script.python_facts(), "process"
                note = f"could not query {ctx.python_executable}: {type(exc).__name__}: {exc}"
    value = {key: facts.get(key) for key in KEYS}
    value["source"] = source
    if note:
        value["note"] = note
    prefix = value.get("prefix") or ""
    value["env"] = detect_env(prefix, value.get("base_prefix") or prefix, ctx.environ, read_pyvenv_cfg(prefix))
    return value
