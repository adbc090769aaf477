"""Capture inside Ray tasks and actors: write the bundle where the failure happened.

A failure in a worker reaches the driver as `RayTaskError(Cause)`, with the worker's
frames reduced to text. Inside the worker the exception still has its frames and
arguments; `capture_failures` / `capturing` bundle it there (the same steps as
`reprex.capture_exception`, plus the worker's Ray facts) and hand the path to the driver:
as a note on the re-raised exception (`reprex.ray.bundle_path(err)` finds it), or as the
task's return value (`on_error="return"`).

On a local cluster the path is on this machine. On a multi-node cluster it is on the
worker's node: point `out` (or REPREX_RAY_BUNDLE_DIR) at shared storage.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

NOTE_PREFIX = "reprex: bundle written to "
BUNDLE_DIR_ENV = "REPREX_RAY_BUNDLE_DIR"
_NOTE = re.compile(re.escape(NOTE_PREFIX) + r"(?P<path>\S+\.reprex\.zip)")


@dataclass
class CapturedFailure:
    """What a task returns with on_error="return": the bundle, and what failed."""

    path: str | None
    type: str
    message: str
    signature: dict = field(default_factory=dict)
    node_ip: str | None = None
    pid: int | None = None
    error: str | None = None  # why no bundle could be written
    extracted: str | None = None  # with extract=True: what `reprex extract` kept, and why

    def __bool__(self) -> bool:  # `if result:` reads as "the task succeeded"
        return False


def default_dir() -> Path:
    env = os.environ.get(BUNDLE_DIR_ENV)
    if env:
        return Path(env)
    from reprex.api import cache_dir

    return cache_dir()


def worker_facts() -> dict:
    """The worker's side of the story: node, pid, task/actor ids, the runtime_env it runs in."""
    facts: dict[str, Any] = {"pid": os.getpid()}
    try:
        import ray

        if not ray.is_initialized():
            return facts
        ctx = ray.get_runtime_context()
        for key, getter in (("node_id", "get_node_id"), ("job_id", "get_job_id"), ("task_id", "get_task_id"),
                            ("actor_id", "get_actor_id"), ("worker_id", "get_worker_id")):
            try:
                value = getattr(ctx, getter)()
                if value is not None:
                    facts[key] = str(value)
            except Exception:
                pass
        try:
            from reprex.ray.section import runtime_env_summary

            facts["runtime_env"] = runtime_env_summary(dict(ctx.runtime_env or {}))
        except Exception:
            pass
        try:
            facts["node_ip"] = ray.util.get_node_ip_address()
        except Exception:
            pass
    except Exception:
        pass
    return facts


def write_worker_bundle(exc: BaseException, out: str | os.PathLike | None = None, *, name: str | None = None,
                        function: str | None = None) -> tuple[Path, dict]:
    """Bundle a caught exception from inside a worker; returns (path, manifest)."""
    from reprex.api import outcome_from_exception
    from reprex.capture.pipeline import CaptureOptions, assemble, write_bundle
    from reprex.draft import seal
    from reprex.ray.section import ray_section

    outcome = outcome_from_exception(exc)
    _drop_own_frames(outcome.exception)
    cwd = Path.cwd()
    directory = Path(out) if out else default_dir()
    directory.mkdir(parents=True, exist_ok=True)
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    options = CaptureOptions(output=directory, name=name)
    draft = assemble(outcome, argv=argv, cwd=cwd, environ=dict(os.environ), python=sys.executable, options=options)
    red = draft.redactor
    section = draft.manifest.get("ray") or red.obj(ray_section(outcome, cwd=cwd, environ=os.environ) or {}, "ray")
    section = dict(section)
    section["worker"] = red.obj({**worker_facts(), "function": function}, "ray")
    draft.manifest["ray"] = section
    bundle = seal(draft)
    return write_bundle(bundle, directory, cwd), bundle.manifest


def _drop_own_frames(record: dict | None, depth: int = 0) -> None:
    """This module's wrapper frames are where the exception was caught, not part of the failure."""
    if not record or depth > 20:
        return
    here = os.path.realpath(__file__)
    record["frames"] = [f for f in record.get("frames") or [] if os.path.realpath(f.get("file") or "") != here]
    for key in ("cause", "context"):
        _drop_own_frames(record.get(key), depth + 1)


def _qualified(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', getattr(fn, '__name__', '?'))}"


def _extract(path: Path, qualname: str | None) -> str:
    """Replace the worker's entry (default_worker.py, not replayable) with the failing call itself."""
    try:
        from reprex.extract import extract_into

        # the worker's own bundle, just written: judged on this machine (the local backend)
        report = extract_into(path, function=qualname, backend="local") if qualname else \
            extract_into(path, backend="local")
        return f"{report.kept}: {report.message}"
    except Exception as exc:  # the bundle as written stays valid
        return f"original: extraction failed ({type(exc).__name__}: {exc})"


def _handle(exc: BaseException, *, out, name, function, on_error, extract=False, qualname=None) -> CapturedFailure:
    """Write the bundle; never let bundling hide the user's exception."""
    info = CapturedFailure(path=None, type=type(exc).__qualname__, message=str(exc)[:2000])
    try:
        path, manifest = write_worker_bundle(exc, out, name=name, function=function)
        worker = (manifest.get("ray") or {}).get("worker") or {}
        info.path, info.node_ip, info.pid = str(path), worker.get("node_ip"), worker.get("pid")
        info.signature = manifest["expect"]["signature"]
        if extract:
            info.extracted = _extract(path, qualname)
        note = f"{NOTE_PREFIX}{path}" + (f" (node {info.node_ip})" if info.node_ip else "")
    except Exception as inner:  # a bundle is a bonus; the failure is the news
        info.error = f"{type(inner).__name__}: {inner}"
        note = f"reprex: could not write a bundle: {info.error}"
    if on_error == "raise" and hasattr(exc, "add_note"):
        exc.add_note(note)
    print(note, file=sys.stderr)
    return info


def capture_failures(fn: Callable | type | None = None, *, out: str | os.PathLike | None = None,
                     on_error: str = "raise", name: str | None = None, extract: bool = False):
    """Decorate a Ray task function, an actor method or an actor class (all its public methods).

    When the call raises, a bundle is written from the worker. With on_error="raise" (default)
    the exception is re-raised with a note naming the bundle (`bundle_path(err)` on the driver);
    with on_error="return" the call returns a CapturedFailure instead.

    extract=True also runs `reprex extract` on the bundle, so its entry is the failing call
    itself rather than Ray's worker process; that calls the function again (in a fresh
    interpreter, with the recorded arguments), so it is off by default: opt in only for code
    whose re-execution is harmless.

        @ray.remote
        @reprex.ray.capture_failures(out="/shared/bundles")
        def load(rows): ...
    """
    if on_error not in ("raise", "return"):
        raise ValueError("on_error must be 'raise' or 'return'")

    def decorate(target):
        if inspect.isclass(target):
            for attr, value in list(vars(target).items()):
                if inspect.isfunction(value) and (not attr.startswith("_") or attr == "__init__"):
                    setattr(target, attr, decorate(value))
            return target
        function = _qualified(target)
        bundle_name = name or re.sub(r"[<>]", "", getattr(target, "__qualname__", "task")).replace(".", "-")

        if inspect.iscoroutinefunction(target):
            @functools.wraps(target)
            async def async_wrapper(*args, **kwargs):
                try:
                    return await target(*args, **kwargs)
                except Exception as exc:
                    info = _handle(exc, out=out, name=bundle_name, function=function, on_error=on_error,
                                   extract=extract, qualname=getattr(target, "__qualname__", None))
                    if on_error == "return":
                        return info
                    raise

            return async_wrapper

        @functools.wraps(target)
        def wrapper(*args, **kwargs):
            try:
                return target(*args, **kwargs)
            except Exception as exc:
                info = _handle(exc, out=out, name=bundle_name, function=function, on_error=on_error,
                               extract=extract, qualname=getattr(target, "__qualname__", None))
                if on_error == "return":
                    return info
                raise

        return wrapper

    return decorate if fn is None else decorate(fn)


@contextlib.contextmanager
def capturing(out: str | os.PathLike | None = None, *, name: str | None = None):
    """`with reprex.ray.capturing(): ...` inside a task or actor method: bundle any exception
    escaping the block from the worker, note the path on it, and re-raise it."""
    try:
        yield
    except Exception as exc:
        _handle(exc, out=out, name=name, function=None, on_error="raise")
        raise


def bundle_path(error: BaseException | str | None) -> str | None:
    """The bundle a worker wrote for this failure, read on the driver from the RayTaskError
    (its cause's notes, or the remote traceback text), or None."""
    if error is None:
        return None
    texts: list[str] = []
    if isinstance(error, str):
        texts.append(error)
    else:
        seen = 0
        item: Any = error
        while item is not None and seen < 10:
            state = getattr(item, "__dict__", {}) or {}
            texts.extend(str(n) for n in state.get("__notes__") or ())
            if isinstance(state.get("traceback_str"), str):
                texts.append(state["traceback_str"])
            try:
                texts.append(str(item))
            except Exception:
                pass
            item = state.get("cause") or item.__cause__ or item.__context__
            seen += 1
    for text in texts:
        m = _NOTE.search(text)
        if m:
            return m.group("path")
    return None
