"""`ray` probe: the Ray facts that explain runtime_env / working_dir failures, without importing ray.

Importing ray in the reprex process is slow and can start threads, so the version comes
from distribution metadata. `.netrc` matters because Ray (via smart_open/requests) may send
its credentials when fetching a working_dir URL: record only whether one exists, never its
contents.
"""

from __future__ import annotations

import os

from reprex.pins import canonical as _normalize

from . import _proc
from ._base import ProbeSkipped
from .envvars import filter_environ


def _ray_version(ctx) -> tuple[str | None, str | None]:
    for dist in (ctx.target_facts or {}).get("distributions") or ():
        if _normalize(str(dist.get("name", ""))) == "ray":
            return dist.get("version"), "target"
    if _proc.same_interpreter(ctx.python_executable):
        from importlib import metadata

        try:
            return metadata.version("ray"), "process"
        except metadata.PackageNotFoundError:
            return None, "process"
    return None, None


def netrc_facts(environ) -> dict:
    """Whether a netrc file is in play (NETRC, else ~/.netrc); existence only."""
    env_path = environ.get("NETRC")
    home = environ.get("HOME") or os.path.expanduser("~")
    default = os.path.join(home, ".netrc")
    return {
        "netrc_env_set": env_path is not None,
        "netrc_exists": bool(env_path and os.path.isfile(env_path)) or os.path.isfile(default),
    }


def probe(ctx) -> dict:
    if "ray" not in ctx.imported:
        raise ProbeSkipped("the run did not import ray")
    version, source = _ray_version(ctx)
    value = {"version": version, "version_source": source, "env": filter_environ(ctx.environ, names_only_prefix="RAY_")}
    value.update(netrc_facts(ctx.environ))
    return value
