"""SIGTERM and SIGINT as an exception that unwinds a replay, so its `finally` blocks remove
the container and the temp dirs (SIGTERM would otherwise end the process on the spot).

`on_signals()` installs the handlers around a command (main thread only: elsewhere it does
nothing and Python's defaults stay); `shielded()` holds a signal back while cleanup runs, and
raises it once the cleanup is done, so a second Ctrl-C can't cut a removal in half.
"""

from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_depth = 0  # how many shielded() blocks are open (main thread)
_pending: list[int] = []  # signals that came while shielded


class Interrupted(BaseException):
    """A signal asked the replay to stop; `exit_code` is the shell's 128 + signal number.
    A BaseException, like KeyboardInterrupt: `except Exception` in the machinery lets it by."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum


def _handler(signum, _frame) -> None:
    if _depth:
        _pending.append(signum)
        return
    raise Interrupted(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def on_signals():
    """SIGINT/SIGTERM raise Interrupted in the main thread while the block runs."""
    if not _main_thread():
        yield
        return
    previous = {}
    try:
        for sig in SIGNALS:
            previous[sig] = signal.signal(sig, _handler)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _pending.clear()


@contextlib.contextmanager
def shielded():
    """Cleanup that a signal must not cut short: a signal that arrives meanwhile is raised
    when the outermost shielded block ends (unless an exception is already on its way out)."""
    global _depth
    if not _main_thread():
        yield
        return
    _depth += 1
    failed = True
    try:
        yield
        failed = False
    finally:
        _depth -= 1
        if _depth == 0 and _pending:
            signum = _pending[0]
            _pending.clear()
            if not failed:
                raise Interrupted(signum)
