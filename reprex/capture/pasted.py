"""`reprex capture --from-traceback`: a bundle from a pasted traceback.

The run can't be recorded, so the outcome comes from the parsed text; the
environment is this one (probes), and the source files it names are taken when
they exist under the working directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from reprex.capture.pipeline import CaptureError, CaptureOptions, CaptureResult, build_bundle, write_bundle
from reprex.record import Outcome, parse_traceback_text
from reprex.signature import compute


def capture_traceback(text: str, options: CaptureOptions, *, write: bool = True) -> CaptureResult:
    exc = parse_traceback_text(text)
    if exc is None:
        raise CaptureError("no Python traceback found in the input (expected 'Traceback (most recent call last):')")
    outcome = Outcome(outcome="exception", exception=exc, recorded=False)
    cwd = Path.cwd().resolve()
    named = []
    for frame in _all_frames(exc):
        path = Path(frame.get("file", ""))
        if path.is_file():
            named.append(str(path.resolve()))
    script = None
    app = [p for p in named if cwd in Path(p).parents]
    if app:
        script = Path(app[0])
    outcome.opened = named
    from reprex.record import recorder

    outcome.facts = recorder().facts()
    for key in ("main_file", "main_spec", "console_script", "argv", "orig_argv"):
        outcome.facts.pop(key, None)  # they describe reprex itself, not the pasted run
    modules = {}
    for frame in _all_frames(exc):
        loc = frame.get("file", "")
        for marker in ("site-packages/", "dist-packages/"):
            if marker in loc:
                modules[loc.split(marker, 1)[1].split("/", 1)[0].removesuffix(".py")] = loc
    outcome.modules = modules
    entry = {"argv": ["python", script.name] if script else ["<pasted traceback>"], "cwd": str(cwd),
             "kind": "script" if script else "other", "python_args": [script.relative_to(cwd).as_posix()] if script else []}
    bundle = build_bundle(outcome, argv=entry["argv"], cwd=cwd, environ=dict(os.environ), python=sys.executable,
                          options=options, entry=entry, script=script)
    bundle.manifest["source"] = "pasted-traceback"
    bundle.finalize()
    result = CaptureResult(outcome, compute(outcome), bundle=bundle)
    if write:
        result.path = write_bundle(bundle, options.output, cwd)
    return result


def _all_frames(exc):
    while exc:
        yield from exc.get("frames") or []
        exc = exc.get("cause") or exc.get("context")
