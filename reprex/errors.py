"""One base for the errors reprex reports to its user.

Each subclass is a trouble the user can act on: it carries the exit code the command
ends with and a one-line message, so the CLI catches `ReprexError` once instead of class
by class. Standard library only, imported by the lowest modules (bundle, fetch, replay).
"""

from __future__ import annotations


class ReprexError(Exception):
    """A trouble for the user: `message` is one line, `exit_code` the command's status."""

    exit_code = 2  # a usage or input error, unless a subclass says otherwise

    @property
    def message(self) -> str:
        """What the user reads; the CLI prints it with control characters (newlines too) escaped."""
        return str(self)


class BundleError(ReprexError):
    """A bundle that can't be read or written; the message is one line for the user."""
