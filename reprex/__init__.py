"""reprex: turn a failing Python run into a self-contained, redacted, replayable bundle.

The public API is imported lazily so `import reprex` (and `reprex --help`) stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__", "capture_command", "capture_exception", "recording", "install", "Bundle", "replay"]


def __getattr__(name):
    if name == "capture_command":
        from reprex.capture.command import capture_command

        return capture_command
    if name in ("capture_exception", "recording", "install"):
        from reprex import api

        return getattr(api, name)
    if name == "Bundle":
        from reprex.bundle import Bundle

        return Bundle
    if name == "replay":
        from reprex.replay import replay

        return replay
    raise AttributeError(f"module 'reprex' has no attribute {name!r}")
