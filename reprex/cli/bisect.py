"""`reprex bisect`: which release, set of changed pins, or day brought a bundle's failure."""

from __future__ import annotations

import json
import os
import re
import sys

import click

from reprex.cli._common import CONTEXT, Command, fail, load_bundle, make_console
from reprex.errors import ReprexError


def _good_lock(path: str) -> dict[str, str]:
    """`name==version` lines of a requirements / pip freeze / uv pip compile file."""
    from reprex.bisect.probe import exact_pins
    from reprex.pins import parse_requirements

    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(4 << 20)
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"--good-lock {path}: {getattr(exc, 'strerror', None) or exc}") from None
    pins = exact_pins(parse_requirements(text))
    if not pins:
        raise click.UsageError(f"--good-lock {path}: no `name==version` lines in it")
    return pins


def _start(value: str | None):
    from datetime import datetime, timezone

    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint="--start") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("bundle")
@click.option("--package", metavar="NAME", help="Mode 1: bisect the releases of this package.")
@click.option("--good", metavar="V|BUNDLE",
              help="With --package: a release known to work (default: found by stepping back 1, 2, 4... "
                   "releases). Without: a bundle (or directory) whose pins are known to work (mode 2).")
@click.option("--bad", metavar="V", help="With --package: the failing release (default: the bundle's pin).")
@click.option("--pre", is_flag=True, help="Also probe pre-releases.")
@click.option("--yanked", is_flag=True, help="Also probe yanked releases.")
@click.option("--good-lock", metavar="FILE",
              help="Mode 2: a requirements file (pip freeze, uv pip compile) of an environment that works.")
@click.option("--date", "by_date", is_flag=True,
              help="Mode 3: resolve the bundle's top-level requirements as of earlier dates until it passes.")
@click.option("--start", metavar="DATE", help="With --date: search back from this day (default: the day the newest of the bundle's pins "
                   "was uploaded, else the capture's).")
@click.option("--backend", type=click.Choice(["auto", "local", "docker"]), default="auto", show_default=True,
              help="Where each probe is replayed. local RUNS THE BUNDLE'S CODE ON THIS MACHINE (your own bundles).")
@click.option("--image", help="Base image for the docker backend.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Probes replayed at once (speculative k-ary splits: more probes, fewer rounds).")
@click.option("--runs", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Replay the bundle itself N times first; a flaky rate sets how often each probe is repeated.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds per replay run (default: as `reprex replay`).")
@click.option("--strict", is_flag=True, help="Also compare normalized messages (as `reprex replay --strict`).")
@click.option("-o", "--output", help="Write the bundle with its `bisect` section here (default: BUNDLE in place).")
@click.option("--no-write", is_flag=True, help="Leave the bundle as it is.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="auto", default=None, metavar="[auto|ADDRESS]",
              help="Replay each probe as a task on a Ray cluster (auto: the running one, else a new local one; or "
                   "HOST:PORT, ray://HOST:PORT, local); with --jobs N a round's probes run at once there. "
                   "The backend on the nodes is docker unless --backend local.")
@click.option("--index-url", metavar="URL",
              help="The package index to list releases from and install probes from (default: UV_DEFAULT_INDEX / "
                   "UV_INDEX_URL, PIP_INDEX_URL, a uv.toml, pip.conf, then PyPI).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the result.")
def bisect(bundle, package, good, bad, pre, yanked, good_lock, by_date, start, backend, image, jobs, runs, timeout,
           strict, output, no_write, ray_address, index_url, as_json):
    """Find which release, set of changed pins, or day brought BUNDLE's failure.

    Each probe replays the bundle with other pins: `reproduced` is bad, `fixed` is good,
    anything else (different, env-incompatible, a release that won't install) is skipped,
    reported and never blamed.

    \b
    reprex bisect B.reprex.zip --package urllib3            # releases up to the bundle's pin
    reprex bisect B.reprex.zip --package urllib3 --good 1.26.15
    reprex bisect B.reprex.zip --good-lock requirements-that-worked.txt
    reprex bisect B.reprex.zip --date
    reprex bisect B.reprex.zip --package urllib3 --ray 10.0.0.5:6379 --jobs 4
    \b
    Exit codes: 0 a first bad was named, 1 the search ended without one,
    2 usage error, 3 the replays can't run here (infra-error, env-incompatible).
    """
    from reprex.bisect import BisectOptions
    from reprex.bisect import bisect as do_bisect
    from reprex.interrupt import Interrupted, on_signals

    modes = [m for m, on in (("--package", package), ("--good-lock", good_lock),
                             ("--good BUNDLE", good and not package), ("--date", by_date)) if on]
    if len(modes) != 1:
        raise click.UsageError("choose one mode: --package NAME, --good-lock FILE, --good BUNDLE or --date"
                               if not modes else f"choose one mode, not {' and '.join(modes)}")
    if bad and not package:
        raise click.UsageError("--bad names a release: use it with --package")
    if start and not by_date:
        raise click.UsageError("--start goes with --date")
    if output and no_write:
        raise click.UsageError("-o and --no-write contradict each other")
    if index_url is not None and not re.fullmatch(r"(https?|file)://[^\s]+", index_url):
        raise click.BadParameter("an index URL is http://, https:// or file://", param_hint="--index-url")
    good_pins = _good_lock(good_lock) if good_lock else None
    if good and not package:
        from reprex.bisect.probe import exact_pins, lines_of

        good_pins = exact_pins(lines_of(load_bundle(good)))
    when = _start(start)
    if ray_address is not None:
        from reprex.scale.judge import address_error, cluster_backend

        if address_error(ray_address):
            raise click.BadParameter(address_error(ray_address), param_hint="--ray")
        backend = cluster_backend(backend)
    elif backend == "auto":
        from reprex.replay import docker_available

        backend = "docker" if docker_available()[0] else "local"
    b = load_bundle(bundle)
    if backend == "local" and not as_json:
        where = "the cluster's nodes" if ray_address is not None else "this machine"
        click.echo(f"reprex: warning: --backend local runs this bundle's code on {where}", err=True)
    options = BisectOptions(backend=backend, jobs=jobs, runs=runs, pre=pre, yanked=yanked, timeout=timeout,
                            image=image, strict=strict, ray=ray_address, index_url=index_url)
    kwargs = dict(package=package, good=good if package else None, bad=bad, good_pins=good_pins, date=by_date,
                  start=when, options=options)
    stdout = sys.stdout
    try:
        with on_signals():
            if ray_address is not None:
                from reprex.scale.judge import connect_and_say

                connect_and_say(ray_address, quiet=as_json)  # once, before any probe thread
                sys.stdout = sys.stderr  # Ray's own messages (a node died) must not mix into the JSON
            result = _run(do_bisect, b, kwargs, as_json)
    except Interrupted as exc:
        from reprex.escape import terminal

        learned = getattr(exc, "partial", "")
        click.echo(f"reprex: {exc}; the bisection was stopped, its replays cleaned up and nothing written"
                   + (f"; {terminal(learned, False)}" if learned else ""), err=True)
        sys.exit(exc.exit_code)
    except ReprexError:
        raise
    except Exception as exc:  # the machinery broke: one line, never a traceback (exit 3, as infra)
        detail = str(exc).splitlines()[0] if str(exc) else ""
        fail(f"bisect failed: {type(exc).__name__}: {detail}"[:400], 3)
    finally:
        sys.stdout = stdout
    written = None if no_write else _write(b, bundle, output, result)
    if as_json:
        data = result.to_dict()
        data["written"] = written
        click.echo(json.dumps(data))
        sys.exit(result.exit_code)
    _print(result, written)
    sys.exit(result.exit_code)


def _run(do_bisect, bundle, kwargs, as_json):
    from reprex.escape import terminal

    if as_json:  # stdout's object says it all (where the releases came from: `index`); stderr only errors
        return do_bisect(bundle, progress=lambda msg: None, **kwargs)
    if sys.stderr.isatty():
        from rich.text import Text

        console = make_console()
        with console.status("bisecting...", spinner="dots") as status:
            def say(msg: str) -> None:
                if ": good (" in msg or ": bad (" in msg or ": skip (" in msg:
                    console.print(Text("  " + terminal(msg, False)))  # each probe's answer stays on screen
                status.update(Text(terminal(msg, False)))

            return do_bisect(bundle, progress=say, **kwargs)
    return do_bisect(bundle, progress=lambda msg: click.echo(f"reprex: {terminal(msg, False)}", err=True), **kwargs)


def _write(bundle, source: str, output: str | None, result) -> str | None:
    """The bundle with its `bisect` section, at -o or in place (a local file or directory only)."""
    from reprex.bisect.section import with_section

    target = output or source
    if not output and not os.path.exists(source):
        click.echo("reprex: the bundle is not a local file; use -o to keep the result in a copy", err=True)
        return None
    new = with_section(bundle, result)
    try:
        return str(new.write(target))
    except OSError as exc:
        fail(f"{target}: {exc.strerror or exc}", 2)


def _print(result, written: str | None) -> None:
    from reprex.escape import terminal

    style = {"fg": "red", "bold": True} if result.found else {"fg": "yellow", "bold": True}
    click.secho(terminal(result.summary(), False), **style)
    for finding in result.findings:
        if finding.changelog:
            click.echo(f"changes in {terminal(finding.package, False)}: {terminal(finding.changelog, False)}")
    click.echo(f"{len(result.probes)} probes logged ({result.replays} replays on {result.backend}"
               f"{' on Ray' if any(getattr(p, 'node', '') for p in result.probes) else ''}) in "
               f"{result.duration_s:.1f}s" + (f"; written into {terminal(written, False)}" if written else ""),
               err=True)
