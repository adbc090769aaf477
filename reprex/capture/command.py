"""`capture_command`: run a command under the recorder, then bundle its failure.

Light on purpose: the program starts before the rest of capture is imported (that loads on a
second thread while the program runs: `_prefetch`), since `reprex capture` is measured by
what it adds to the program's own time (benchmarks/capture.py, against `pip freeze`).
reprex.capture.pipeline assembles the bundle and re-exports these names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from reprex.capture.inputs import DEFAULT_MAX_FILE, DEFAULT_MAX_TOTAL
from reprex.capture.runner import python_of
from reprex.errors import ReprexError
from reprex.recorded import run_recorded
from reprex.signature import Signature, compute

if TYPE_CHECKING:
    from reprex.bundle import Bundle
    from reprex.record import Outcome

Progress = Callable[[str], None]


class CaptureError(ReprexError):
    """Capture could not proceed; one line for the user."""


@dataclass
class CaptureOptions:
    output: Path | None = None
    name: str | None = None
    timeout: float | None = None
    allow_success: bool = False
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    max_file_size: int = DEFAULT_MAX_FILE
    max_total: int = DEFAULT_MAX_TOTAL
    network: bool | None = None  # None: decided from what the run connected to
    tee: bool = True
    probe_timeout: float = 10.0


@dataclass
class CaptureResult:
    outcome: Outcome
    signature: Signature
    bundle: Bundle | None = None
    path: Path | None = None
    message: str = ""
    skipped_files: list[dict] = field(default_factory=list)


def _noop(_: str) -> None:
    pass


# What bundling imports after the run: loaded on a second thread while the program runs (the
# main thread waits in select() then), so a short run's capture doesn't pay for them after it.
_ASSEMBLE_MODULES = ("reprex.capture.pipeline", "reprex.probes", "reprex.redact", "reprex.capture.sections",
                     "reprex.editables", "packaging.requirements", "packaging.markers", "reprex.render", "ast")


def _prefetch():
    import importlib
    import threading

    def load() -> None:
        for name in _ASSEMBLE_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # assemble() imports it again and says what is wrong
                pass

    thread = threading.Thread(target=load, name="reprex-prefetch", daemon=True)
    thread.start()
    return thread


def capture_command(argv: Sequence[str], options: CaptureOptions | None = None, *, cwd: str | None = None,
                    env: dict | None = None, progress: Progress = _noop, write: bool = True) -> CaptureResult:
    """Run argv under the recorder and, if it fails, build (and write) its bundle."""
    options = options or CaptureOptions()
    if not argv:
        raise CaptureError("no command given: use `reprex capture -- python app.py`")
    cwd_path = Path(cwd or os.getcwd()).resolve()
    environ = dict(os.environ if env is None else env)
    python = python_of(argv, path=environ.get("PATH"))
    progress(f"running {' '.join(argv)[:80]}")
    loading = _prefetch()
    try:
        run = run_recorded(argv, cwd=cwd_path, env=environ, timeout=options.timeout, tee=options.tee)
    except (FileNotFoundError, PermissionError) as exc:
        raise CaptureError(str(exc)) from None
    finally:
        loading.join()  # no import of those modules races the thread's
    outcome = run.outcome
    signature = compute(outcome)
    if not outcome.failed and not options.allow_success:
        return CaptureResult(outcome, signature, message="the command succeeded: no bundle written "
                                                         "(use --allow-success to capture it anyway)")
    if not outcome.recorded:
        # Nothing to replay: the bundle would hold only an exit status and a guessed entry.
        raise CaptureError("no Python process ran under the recorder, so there is nothing to bundle "
                           f"(exit status {outcome.exit_code}); the command must start Python without "
                           "-I, -E or -S (python script.py, python -m mod, a console script, a wrapper that runs one)")
    from reprex.capture.pipeline import build_bundle

    bundle = build_bundle(outcome, argv=list(argv), cwd=cwd_path, environ=environ,
                          python=python or (outcome.facts.get("python") or {}).get("executable"),
                          options=options, progress=progress)
    result = CaptureResult(outcome, signature, bundle=bundle,
                           skipped_files=bundle.manifest.get("files", {}).get("skipped", []))
    if write:
        result.path = write_bundle(bundle, options.output, cwd_path)
    return result


def default_output(bundle: Bundle, cwd: Path) -> Path:
    from reprex.bundle import SUFFIX

    return cwd / f"{bundle.name}{SUFFIX}"


def write_bundle(bundle: Bundle, output: Path | None, cwd: Path) -> Path:
    path = Path(output) if output else default_output(bundle, cwd)
    if path.is_dir() and not (path / "reprex.json").exists():
        path = default_output(bundle, path)
    return bundle.write(path)
