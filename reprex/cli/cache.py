"""`reprex cache info|prune`: what replay keeps between runs, and cleaning it up."""

from __future__ import annotations

import json
import time

import click

from reprex.cli._common import CONTEXT, Group

_LABELS = {"env": "local envs", "wheels": "wheel dirs", "image": "docker images", "validated": "schema checks",
           "resolved": "--with resolutions"}


def _human(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _age(ts: float) -> str:
    days = (time.time() - ts) / 86400
    return "today" if days < 1 else f"{days:.0f} days ago"


@click.group(cls=Group, context_settings=CONTEXT)
def cache() -> None:
    """Inspect or prune what replay keeps between runs: local virtualenvs, downloaded
    wheels, docker environment images (reprex-env:*) and passed schema checks.

    \b
      reprex cache info
      reprex cache prune                  # unused for 30 days
      reprex cache prune --older-than 0   # everything not in use right now
    """


@cache.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(as_json):
    """Where the cache is, and what is in it (sizes, last use)."""
    from reprex.cache import inventory
    from reprex.fsutil import cache_root

    items, docker_error = inventory()
    if as_json:
        click.echo(json.dumps({"cache": str(cache_root()), "items": [i.to_dict() for i in items],
                               "docker": docker_error or "ok"}))
        return
    click.echo(f"cache: {cache_root()}")
    for kind, label in _LABELS.items():
        mine = [i for i in items if i.kind == kind]
        if kind == "image" and docker_error:
            click.echo(f"  {label}: unknown ({docker_error})")
            continue
        if kind in ("validated", "resolved"):
            count = mine[0].name.split()[0] if mine else "0"
            click.echo(f"  {label}: {count}")
            continue
        last = max((i.last_used for i in mine), default=None)
        click.echo(f"  {label}: {len(mine)}, {_human(sum(i.size for i in mine))}"
                   + (f", last used {_age(last)}" if last else ""))
        for item in sorted(mine, key=lambda i: i.last_used):
            click.echo(f"    {item.name}  {_human(item.size)}  {_age(item.last_used)}")
    if any(i.kind == "image" for i in items):
        click.echo("  (an image's size is what removing it frees: layers shared with others are not counted)")


@cache.command(context_settings=CONTEXT)
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="DAYS", help="Remove what was last used more than DAYS ago (0: all not in use).")
@click.option("--dry-run", is_flag=True, help="Say what would go; remove nothing.")
@click.option("--include-kept", is_flag=True, help="Also remove containers kept with `reprex replay --keep`.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def prune(older_than, dry_run, include_kept, as_json):
    """Remove cached envs, wheels and reprex-env images unused for --older-than days, and
    stopped replay containers. Items a running replay holds, and images a container
    uses, stay. Bundles written by reprex.install() are never touched."""
    from reprex.cache import prune as do_prune

    result = do_prune(older_than * 86400, dry_run=dry_run, include_kept=include_kept)
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "removed": [i.to_dict() for i in result.removed],
                               "kept": [{**i.to_dict(), "why": why} for i, why in result.kept],
                               "containers_removed": result.containers, "freed_bytes": result.freed,
                               "docker": result.docker_error or "ok"}))
        return
    verb = "would remove" if dry_run else "removed"
    for item in result.removed:
        click.echo(f"{verb} {_LABELS[item.kind][:-1]} {item.name} ({_human(item.size)}, used {_age(item.last_used)})")
    for item, why in result.kept:
        if why != "used recently":
            click.echo(f"kept {_LABELS[item.kind][:-1]} {item.name}: {why}")
    recent = sum(1 for _, why in result.kept if why == "used recently")
    click.echo(f"{verb} {len(result.removed)} item(s), {_human(result.freed)}"
               + (f" and {result.containers} stopped container(s)" if result.containers else "")
               + (f"; {recent} used in the last {older_than:g} days stay" if recent else ""))
    if result.docker_error:
        click.echo(f"docker images not looked at: {result.docker_error}", err=True)
