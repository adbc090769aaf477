"""Python API: bundle an exception from inside a program, or on every crash.

Uses the same recorder code as `reprex capture`, in-process, so a bundle made from
a caught exception has the same shape and signature as a captured run.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from reprex.capture.pipeline import CaptureOptions, build_bundle, write_bundle
from reprex.record import Outcome, recorder


def outcome_from_exception(exc: BaseException) -> Outcome:
    module = recorder()
    return Outcome(outcome="exception", exit_code=None, exception=module.exception_record(exc),
                   modules=module.Recorder.imported_modules(), facts=module.facts(), recorded=True)


def capture_exception(exc: BaseException, out: str | os.PathLike | None = None, *, name: str | None = None,
                      include=(), network: bool | None = None) -> Path:
    """Write a bundle for a caught exception; returns its path."""
    outcome = outcome_from_exception(exc)
    cwd = Path.cwd()
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    options = CaptureOptions(output=Path(out) if out else None, name=name, include=include, network=network)
    bundle = build_bundle(outcome, argv=argv, cwd=cwd, environ=dict(os.environ), python=sys.executable,
                          options=options)
    return write_bundle(bundle, options.output, cwd)


@contextlib.contextmanager
def recording(out: str | os.PathLike | None = None, **kwargs):
    """`with reprex.recording(): ...` bundles any exception escaping the block, then re-raises it."""
    try:
        yield
    except Exception as exc:
        try:
            path = capture_exception(exc, out, **kwargs)
            print(f"reprex: wrote {path}", file=sys.stderr)
        except Exception as inner:  # never mask the user's exception
            print(f"reprex: could not write a bundle: {inner}", file=sys.stderr)
        raise


def cache_dir() -> Path:
    from reprex.fsutil import cache_root

    return cache_root() / "bundles"


def install() -> None:
    """An excepthook that always writes a bundle to the cache; `reprex capture --last` finds it."""
    previous = sys.excepthook

    def hook(etype, value, tb):
        try:
            if value is not None and value.__traceback__ is None:
                value = value.with_traceback(tb)
            directory = cache_dir()
            directory.mkdir(parents=True, exist_ok=True)
            path = capture_exception(value, directory)
            print(f"reprex: wrote {path}", file=sys.stderr)
        except Exception as inner:
            print(f"reprex: could not write a bundle: {inner}", file=sys.stderr)
        previous(etype, value, tb)

    sys.excepthook = hook


def last_bundle() -> Path | None:
    directory = cache_dir()
    if not directory.is_dir():
        return None
    bundles = sorted(directory.glob("*.reprex.zip"), key=lambda p: p.stat().st_mtime)
    return bundles[-1] if bundles else None
