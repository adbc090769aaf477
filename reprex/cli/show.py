"""`reprex show` and `reprex render`: read a bundle, print its summary or its issue body."""

from __future__ import annotations

from pathlib import Path

import click

from reprex.cli._common import CONTEXT, Command, fail, load_bundle, make_console


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("bundle")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest and summary as JSON.")
def show(bundle, as_json):
    """Summarize a bundle: failure, signature, Python/platform/GPU, pins, files, size."""
    from reprex.render import render, summary_facts

    b = load_bundle(bundle)
    if as_json:
        click.echo(render(b, "json"))
        return
    from rich.table import Table
    from rich.text import Text

    from reprex.escape import terminal
    from reprex.render import skipped_files

    def data(value) -> Text:  # bundle text: never markup, never a terminal escape
        return Text(terminal(value, multiline=False))

    console = make_console(stderr=False)
    table = Table(title=data(f"{b.name}  ({b.size // 1024 or 1} KB, id {b.id[:12]})"), show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in summary_facts(b):
        table.add_row(key, data(value))
    console.print(table)
    for path, size, reason in skipped_files(b):
        console.print(Text.assemble(("not included", "yellow"), " ", data(f"{path} ({size} bytes): {reason}")))


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("bundle")
@click.option("--venue", type=click.Choice(["gh", "text", "json"]), default="gh", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write to a file instead of stdout.")
@click.option("--share", "share_url", metavar="URL",
              help="gh: link the shared copy at URL (URL#sha256=..., as `reprex share` prints it) and "
                   "give its verified replay command.")
def render(bundle, venue, output, share_url):
    """Render a bundle as a GitHub issue body (gh), plain text, or JSON."""
    from reprex.render import render as do_render

    link = None
    if share_url is not None:
        if venue != "gh":
            fail("--share goes with --venue gh")
        from reprex.share import share_link

        local = Path(bundle)
        link = share_link(share_url, local if "://" not in bundle and local.is_file() else None)
    text = do_render(load_bundle(bundle), venue, share=link)  # a BundleError ends the command (`Command`)
    if output:
        from reprex.fsutil import atomic_write_text

        if Path(output).is_dir():
            fail(f"{output} is a directory; give a file name")
        try:
            atomic_write_text(output, text)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}")
    else:
        click.echo(text)

