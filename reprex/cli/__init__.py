"""The `reprex` command: a thin click layer over the library.

The group names one module per command family (capture, show/render, replay/extract/lock,
check-serve, cache) and imports a command's module only when that command runs (or help
lists it): `reprex capture` then pays for the capture module alone, which is the start-up
its overhead target counts. Those modules share reprex/cli/_common.py and never import
this one. Heavy modules (docker, rich's console, jsonschema, the probes) are imported
inside the commands.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from reprex import __version__
from reprex.cli._common import CONTEXT, Group, echo_json_error

# command name -> (module under reprex.cli, attribute): imported when the command is asked for
COMMANDS = {
    "capture": ("capture", "capture"), "show": ("show", "show"), "render": ("show", "render"),
    "replay": ("replay", "replay"), "extract": ("replay", "extract"), "lock": ("replay", "lock"),
    "check-serve": ("serve", "check_serve"), "cache": ("cache", "cache"),
    "share": ("share", "share"), "diff": ("diff", "diff"),
    "bisect": ("bisect", "bisect"), "shrink": ("shrink", "shrink"),
}


class _Main(Group):
    """The `reprex` group. With --json anywhere on the command line, a usage error (a bad
    option, a missing argument) is also one JSON object on stdout, like the command's
    other answers, instead of only click's usage text."""

    def list_commands(self, ctx):
        return sorted(n for n in {*COMMANDS, *super().list_commands(ctx)} if self.get_command(ctx, n) is not None)

    def get_command(self, ctx, name):
        if name in COMMANDS and name not in self.commands:
            module, attr = COMMANDS[name]
            try:
                found = importlib.util.find_spec(f"reprex.cli.{module}")
            except ImportError:
                found = None
            if found is None:  # a command still being built: not listed, "no such command"
                return None
            self.add_command(getattr(importlib.import_module(f"reprex.cli.{module}"), attr), name)
        return super().get_command(ctx, name)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        ours = argv[:argv.index("--")] if "--" in argv else argv  # not the captured command's own --json
        if not standalone_mode or "--json" not in ours:
            return super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=standalone_mode, **extra)
        try:
            super().main(args=argv, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            echo_json_error(exc.format_message(), exc.exit_code)
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(0)


@click.group(cls=_Main, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="reprex")
def main() -> None:
    """Capture a failing Python run as a self-contained, redacted bundle, and replay it.

    \b
      reprex capture -- python app.py --config prod.yaml
      reprex show app.reprex.zip
      reprex render app.reprex.zip --venue gh > issue.md
      reprex replay app.reprex.zip
    """
