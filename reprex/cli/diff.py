"""`reprex diff A B`: two environments side by side (bundles, or `here`), like diff's exit status."""

from __future__ import annotations

import json
import sys

import click

from reprex.cli._common import CONTEXT, Command, load_bundle, make_console

HERE = "here"
_STYLE = {"changed": "yellow", "added": "green", "removed": "red"}


def _side(source: str, python: str | None):
    from reprex.envdiff import side_from_bundle, side_here

    if source == HERE:
        return side_here(python)
    return side_from_bundle(load_bundle(source), label=source)


def _print_table(result) -> None:
    """rich's table on stdout; every cell is data (control characters shown escaped, no markup)."""
    from rich.table import Table
    from rich.text import Text

    from reprex.envdiff import note, shown
    from reprex.escape import terminal

    rows, hidden = shown(result)
    cell = lambda value, style="": Text("-" if value is None else terminal(value), style=style)  # noqa: E731
    table = Table(show_header=True, title_justify="left")
    table.add_column("")
    table.add_column("what", no_wrap=True)
    table.add_column("A", overflow="fold")
    table.add_column("B", overflow="fold")
    table.add_column("note")
    section = None
    for row in rows:
        if section is not None and row["section"] != section:
            table.add_section()
        section = row["section"]
        style = _STYLE.get(row["kind"], "dim")
        mark = "" if row["kind"] == "same" else row["kind"]
        table.add_row(Text(mark, style=style), cell(row["what"]), cell(row["a"], style), cell(row["b"], style),
                      Text(note(row), style="bold" if "major" in (row.get("flags") or ()) else ""))
    console = make_console(stderr=False)
    console.print(f"A: {terminal(result.a, False)}\nB: {terminal(result.b, False)}", markup=False, highlight=False)
    console.print(table, markup=False, highlight=False)
    for name, count in hidden.items():
        console.print(f"{count} {'pins' if name == 'pins' else 'environment variables'} the same on both sides",
                      markup=False, style="dim")
    n = len(result.differences)
    console.print(f"{n} difference(s)" if n else "no differences", markup=False, style="bold")


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("a")
@click.argument("b")
@click.option("--python", "python", metavar="PATH",
              help=f"With `{HERE}`: the interpreter whose environment is probed (default: reprex's own).")
@click.option("--strict", is_flag=True, help="Also compare the failures' normalized messages.")
@click.option("--venue", type=click.Choice(["gh"]), help="gh: GitHub issue markdown instead of the table.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: {a, b, same, differences, sections}.")
def diff(a, b, python, strict, venue, as_json):
    """Compare two environments side by side: Python, platform, GPU/CUDA, pins,
    environment variable names (never values) and the failure signature.

    A and B are bundles (a path, directory or URI) or `here`: this machine, probed as
    `reprex capture` probes a run (with --python PATH, that interpreter's packages).

    \b
    Exit codes: 0 the same, 1 different, 2 usage error.
    """
    from reprex.envdiff import compare, to_markdown

    if python and HERE not in (a, b):
        raise click.UsageError(f"--python describes `{HERE}`; neither A nor B is `{HERE}`")
    if venue and as_json:
        raise click.UsageError("use --json or --venue, not both")
    result = compare(_side(a, python), _side(b, python), strict=strict)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    elif venue == "gh":
        click.echo(to_markdown(result), nl=False)
    else:
        _print_table(result)
    sys.exit(0 if result.same else 1)
