"""Removing what replays leave in the daemon and on disk: one run's container and temp dirs,
and the stopped `org.reprex=1` containers an interrupted replay left behind.

The one library seam for it: the backend removes each run's leftovers in `finally`
(remove_run), the pytest plugin ends a session with cleanup(bundles=...), and `reprex cache
prune` (reprex.cache) sweeps with its age. Nothing here removes a container that may still
be in use: a running one, one younger than `min_age_s`, or one kept with --keep.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from reprex.replay.base import ReplayOptions
from reprex.replay.docker.daemon import connect
from reprex.replay.docker.engine import Engine, EngineError
from reprex.replay.docker.layout import LABEL

if TYPE_CHECKING:
    from reprex.replay.docker.env import DockerEnv

STOPPED = ("exited", "dead", "created")


def remove_run(env: DockerEnv, options: ReplayOptions, name: str, cid: str | None, indir: Path | None,
               recdir: Path | None) -> None:
    """One run's container and host temp dirs, gone; with --keep, the container and its dirs
    stay and the user is told how to remove them."""
    if options.keep and cid is not None:
        env.kept.append(name)
        env.progress(f"kept container {name} (inputs {indir or 'copied into it'}, record copied to {recdir}); "
                     f"remove it with `docker rm -f {name}`")
        return
    if cid is not None:
        with contextlib.suppress(Exception):
            env.engine.remove(cid)
    for path in (indir, recdir):
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


def age_s(stamp: str | int | None) -> float | None:
    """Seconds since a docker time stamp: RFC 3339 (nanoseconds) or Unix seconds; None if unset."""
    import datetime as dt

    if isinstance(stamp, (int, float)):
        return time.time() - stamp if stamp > 0 else None
    if not stamp or stamp.startswith("0001-"):
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", stamp)
    if not m:
        return None
    when = dt.datetime.fromisoformat(m.group(1) + "." + (m.group(2) or "0")[:6].ljust(6, "0")
                                     + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return (dt.datetime.now(dt.timezone.utc) - when).total_seconds()


def sweep(engine: Engine | None = None, *, min_age_s: float = 60.0, include_kept: bool = False,
          labels: list[str] | None = None) -> int:
    """Remove stopped containers labelled org.reprex=1 (and `labels`, "key=value" each):
    leftovers of interrupted replays.

    Only containers that finished (or were created and never started) at least `min_age_s`
    ago, so a replay running beside us (pytest-xdist) keeps the container it is reading;
    containers kept with --keep stay unless include_kept. Returns how many were removed."""
    if engine is None:
        engine = connect()
    removed = 0
    for summary in engine.containers(labels=[f"{LABEL}=1", *(labels or [])]):
        if summary.get("State") not in STOPPED:
            continue
        if not include_kept and (summary.get("Labels") or {}).get(f"{LABEL}.keep") == "1":
            continue
        try:
            state = engine.inspect(summary["Id"]).get("State") or {}
        except EngineError as exc:
            if exc.not_found:
                continue
            raise
        age = age_s(state.get("FinishedAt")) if summary.get("State") != "created" else None
        if age is None:
            age = age_s(summary.get("Created"))
        if age is not None and age < min_age_s:
            continue
        try:
            engine.remove(summary["Id"])
            removed += 1
        except EngineError as exc:
            if not exc.not_found:
                raise
    return removed


def cleanup(engine: Engine | None = None, *, bundles: Collection[str] = (), min_age_s: float = 60.0,
            include_kept: bool = False) -> int:
    """What replays left in the daemon: the stopped containers of `bundles` (ids) whatever
    their age (the caller knows none of its replays of them is running), never a kept one;
    then every stopped reprex container older than `min_age_s` (sweep). Returns how many
    were removed; the daemon's errors are raised."""
    if engine is None:
        engine = connect()
    removed = 0
    if bundles:
        for summary in engine.containers(labels=[f"{LABEL}=1"]):
            labels = summary.get("Labels") or {}
            if labels.get(f"{LABEL}.bundle") not in bundles or labels.get(f"{LABEL}.keep") == "1":
                continue
            if summary.get("State") in STOPPED:
                try:
                    engine.remove(summary["Id"])
                    removed += 1
                except Exception:
                    pass
    return removed + sweep(engine, min_age_s=min_age_s, include_kept=include_kept)
