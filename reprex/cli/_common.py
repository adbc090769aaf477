"""What every `reprex` command shares: the console, the one-line failure, bundle loading,
size options, and the command class that turns a `ReprexError` into that failure.

Command modules import this, never the group module (reprex/cli/__init__.py), so there
is no import circle. Heavy modules (rich, the bundle reader) load inside the functions.
"""

from __future__ import annotations

import json
import sys
import tempfile

import click

from reprex.errors import ReprexError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def make_console(stderr: bool = True):
    """rich's console (stderr by default: stdout stays free for --json and rendered text)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def fail(message: str, code: int = 2) -> None:
    """One line on stderr and a non-zero exit; under --json also one JSON object on stdout,
    since that is what the caller parses."""
    from reprex.escape import terminal

    message = terminal(message, multiline=False)  # messages quote bundle text: no terminal escapes
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.params.get("as_json"):
        echo_json_error(message, code)
    click.echo(f"reprex: error: {message}", err=True)
    sys.exit(code)


def echo_json_error(message: str, code: int) -> None:
    """The one JSON shape of an error on stdout under --json (a failure or a usage error)."""
    click.echo(json.dumps({"error": message, "exit": code}))


class Command(click.Command):
    """A command whose `ReprexError` ends it with `fail` (one line, the error's exit code)
    instead of a traceback: the one place the CLI catches reprex's own errors."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ReprexError as exc:
            fail(exc.message, exc.exit_code)


class Group(click.Group):
    """A command group whose commands are `Command`s (`@group.command` makes one)."""

    command_class = Command


def load_bundle(source: str):
    """The bundle at `source` (a path, directory or URI); a bundle that can't be had ends the
    command with one line (fetch and read errors are `ReprexError`s)."""
    from reprex.bundle import Bundle
    from reprex.fetch import fetch_bundle

    path = fetch_bundle(source)
    try:
        return Bundle.read(path)
    except OSError as exc:
        fail(f"{source}: {exc.strerror or exc}")
    except (RecursionError, MemoryError, ValueError) as exc:  # a reader the loader's bounds missed
        fail(f"{source}: not a readable reprex bundle ({type(exc).__name__})")
    finally:
        if str(path) != source and str(path).startswith(tempfile.gettempdir()) and "reprex-fetch-" in str(path):
            path.unlink(missing_ok=True)  # a downloaded copy


def size(value: str) -> int:
    """A size option's value (500k, 5M) in bytes."""
    from reprex.fsutil import parse_size

    try:
        return parse_size(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size (e.g. 500k, 5M)") from None


def check_fixed_with(control, auto: bool = True) -> None:
    """--fixed-with's specs as usage errors, before anything runs (shrink's and capture's)."""
    if any(not spec.strip() for spec in control):
        raise click.BadParameter("an empty spec; name what fixes the bug: 'pkg==X', a path"
                                 + (", or auto" if auto else ""), param_hint="--fixed-with")
    if "auto" in control and not auto:
        raise click.BadParameter("auto takes the fix from a bisect result, which a fresh capture has none of: "
                                 "name the fix ('pkg==X', a path)", param_hint="--fixed-with")
    if "auto" in control and len(control) > 1:
        raise click.BadParameter("auto stands alone (it takes every release the bisect section names)",
                                 param_hint="--fixed-with")
