"""`reprex shrink`: a smaller bundle that fails the same way (reprex.shrink.step)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from reprex.cli._common import CONTEXT, Command, check_fixed_with, fail, load_bundle, make_console
from reprex.escape import terminal

LOG_EVERY_S = 10.0


def default_output(source: str) -> Path:
    """NAME.shrunk.reprex.zip beside a local bundle (in the current directory for a URI)."""
    path = Path(os.path.abspath(source)) if "://" not in source else Path(source)  # `.` has no name
    name = path.name if "://" not in source else source.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".reprex.zip", ".zip"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    stem = f"{name or 'bundle'}.shrunk.reprex.zip"
    return path.with_name(stem) if "://" not in source else Path(stem)


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("bundle")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Where the shrunk bundle goes (default: NAME.shrunk.reprex.zip beside BUNDLE).")
@click.option("--budget", type=click.IntRange(min=1), metavar="CALLS",
              help="Stop proposing after this many judged candidates (all phases together).")
@click.option("--time", "time_s", type=click.FloatRange(min=0, min_open=True), metavar="S",
              help="Stop proposing after this many seconds (the final verification still runs).")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Judge this many candidates at once.")
@click.option("--keep-inputs", is_flag=True, help="Leave the bundled input files as they are.")
@click.option("--keep-pins", is_flag=True, help="Leave requirements.txt as it is.")
@click.option("--backend", type=click.Choice(["auto", "local", "docker"]), default="auto", show_default=True,
              help="Where each candidate runs (auto: docker when a daemon answers, as `reprex replay` picks; with "
                   "--ray: docker on the nodes). local: RUNS THE BUNDLE'S CODE "
                   "ON THIS MACHINE (with --ray: on the nodes), many times (a virtualenv, your user): only for a "
                   "bundle you trust, e.g. your own. docker: a sandboxed container per candidate (no network), "
                   "for anyone else's bundle.")
@click.option("--image", help="Base image for the docker backend (default: as `reprex replay` picks it).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="S",
              help="Seconds per run (default: 10x the original's median run, 10-300 s; a hang waits as long as "
                   "its capture did, up to 300 s).")
@click.option("--verify-runs", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Runs of the shrunk bundle at the end; its reproduction rate is recorded.")
@click.option("--strict/--loose", default=None,
              help="--strict: keep the normalized message too, not only the signature (as `reprex replay "
                   "--strict`). --loose: the signature alone, so a candidate may swap the failing data path for "
                   "another of the same type. Default: strict when the message holds steady over the calibration "
                   "runs, else loose (said).")
@click.option("--fixed-with", "control", multiple=True, metavar="SPEC",
              help="What fixes the bug, as `replay --with` takes it ('pkg==X', a path); repeatable. Each candidate "
                   "that still fails must pass with it, as the original does, so the result can't turn into another "
                   "bug that fails everywhere (a name imported from where it never was). `auto`: the last good "
                   "release a `reprex bisect` of this bundle found. Costs one more run per kept candidate.")
@click.option("--force", is_flag=True, help="Shrink a bundle that reproduces too rarely (OR of several runs).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="auto", default=None, metavar="[auto|ADDRESS]",
              help="Judge each candidate as a task on a Ray cluster (auto: the running one, else a new local one; "
                   "or HOST:PORT, ray://HOST:PORT, local); with --jobs N, N at once there.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: sizes before/after, calls, rate.")
def shrink(bundle, output, budget, time_s, jobs, keep_inputs, keep_pins, backend, image, timeout, verify_runs,
           strict, control, force, ray_address, as_json):
    """Shrink BUNDLE to what its failure needs: the script, the inputs and the pins.

    Each candidate (a smaller script, input or requirements.txt) is replayed; it is kept
    only when it still fails with the same signature. The original entries stay in the
    new bundle under original/.

    \b
      reprex shrink app.reprex.zip --backend local      # your own bundle: fast
      reprex shrink issue-123.reprex.zip --jobs 4       # docker: a stranger's
      reprex shrink app.reprex.zip --time 120 --json
      reprex shrink issue-123.reprex.zip --ray 10.0.0.5:6379 --jobs 8
      reprex shrink app.reprex.zip --fixed-with packaging==21.3
    """
    from reprex.interrupt import Interrupted, on_signals
    from reprex.shrink.step import ShrinkOptions
    from reprex.shrink.step import shrink as run_shrink

    if ray_address is not None:
        from reprex.scale.judge import address_error

        if address_error(ray_address):
            raise click.BadParameter(address_error(ray_address), param_hint="--ray")
    check_fixed_with(control)
    loaded = load_bundle(bundle)
    if control == ("auto",):
        from reprex.errors import ReprexError
        from reprex.shrink.step import fix_from_bisect

        try:
            control = fix_from_bisect(loaded)
        except ReprexError as exc:
            fail(str(exc), exc.exit_code)
        click.echo(f"reprex shrink: the fix, from the bundle's bisect result: {' '.join(control)}", err=True)
    if backend == "auto":
        backend = "docker" if ray_address is not None else _auto_backend()
    target = output or default_output(bundle)
    options = ShrinkOptions(backend=backend, image=image, jobs=jobs, budget=budget, time_s=time_s,
                            keep_inputs=keep_inputs, keep_pins=keep_pins, force=force, verify_runs=verify_runs,
                            strict=strict, timeout=timeout, ray=ray_address, control=list(control))
    stdout = sys.stdout
    try:
        with on_signals():
            if ray_address is not None:
                from reprex.scale.judge import connect_and_say

                connect_and_say(ray_address, quiet=as_json)  # once, before the reducers' threads
                sys.stdout = sys.stderr  # Ray's own messages (a node died) must not mix into the JSON
            if as_json:
                report = run_shrink(loaded, options)
            elif sys.stderr.isatty():
                from rich.text import Text

                with make_console().status("shrinking...", spinner="dots") as status:
                    report = run_shrink(loaded, options, progress=lambda msg: status.update(Text(terminal(msg, False))))
            else:  # a log, not a terminal: a line per phase, and one every LOG_EVERY_S within it
                report = run_shrink(loaded, options, progress=_Lines())
    except Interrupted as exc:
        fail(f"{exc}: nothing written", exc.exit_code)
    finally:
        sys.stdout = stdout
    summary = report.summary
    written = None
    if summary.get("kept") == "shrunk":
        try:
            written = str(report.bundle.write(target))
        except OSError as exc:
            fail(f"cannot write {target}: {exc.strerror or exc}")
    if as_json:
        click.echo(json.dumps({"written": written, **summary}))
    else:
        _print_summary(summary, written)
    raise SystemExit(0 if written else 1)


class _Lines:
    """Progress for a log: the first message of each phase, then one every LOG_EVERY_S."""

    def __init__(self):
        self.phase, self.at = None, 0.0

    def __call__(self, message: str) -> None:
        phase, now = message.split(":", 1)[0], time.monotonic()
        if phase != self.phase or now - self.at >= LOG_EVERY_S:
            self.phase, self.at = phase, now
            click.echo(f"reprex: {terminal(message, False)}", err=True)


def _on_ray(summary: dict) -> str:
    nodes = (summary.get("ray") or {}).get("nodes")
    return "" if nodes is None else f" on Ray ({len(nodes)} node{'s' if len(nodes) != 1 else ''})"


def _print_summary(summary: dict, written: str | None) -> None:
    from rich.table import Table
    from rich.text import Text

    before, after = summary["before"], summary["after"]
    table = Table(title="reprex shrink", title_justify="left")
    table.add_column("")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")

    def row(what, old, new) -> None:  # input names are the bundle's: shown as plain text
        table.add_row(*(Text(terminal(str(v), False)) for v in (what, old, new)))

    row("statements", before["statements"], after["statements"])
    row("script bytes", before["script_bytes"], after["script_bytes"])
    for name, size in before["inputs"].items():
        row(f"input {name}", size, after["inputs"].get(name, "removed"))
    row("pins", before["pins"], after["pins"])
    row("bundle bytes", before["bundle_bytes"], after["bundle_bytes"])
    console = make_console()
    console.print(table)
    verify, cal = summary["verify"], summary["calibration"]
    lines = [f"{summary['calls']} candidates judged ({summary['cache_hits']} cached, {summary['runs']} runs) in "
             f"{summary['seconds']:.1f}s on {summary['backend']}{_on_ray(summary)}; the original reproduced in "
             f"{cal['reproduced']}/{cal['runs']} runs, the result in {verify['reproduced']}/{verify['runs']}"]
    control = summary.get("control")
    if control:
        lines.append(f"with the fix ({' '.join(control['with'])}): {control['verdict']} "
                     f"({control['runs']} runs with it in all)")
    if summary.get("stopped"):
        lines.append(f"stopped early: the {'--budget' if summary['stopped'] == 'budget' else '--time'} ran out; "
                     "what was accepted by then is kept")
    if written:
        lines.append(f"wrote {written} (the original entries are under original/)")
    else:
        lines.append("the shrunk bundle did not reproduce when verified: nothing written")
    for line in lines:
        console.print(Text(terminal(line, False)))


def _auto_backend() -> str:
    """Docker when a daemon answers (a stranger's bundle stays sandboxed), else local, said aloud:
    the same choice `reprex replay` makes."""
    from reprex.replay import docker_available

    ok, why = docker_available()
    if ok:
        return "docker"
    click.echo(f"reprex shrink: no Docker ({why}); candidates run on this machine (--backend local)", err=True)
    return "local"
