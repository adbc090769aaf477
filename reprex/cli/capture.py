"""`reprex capture`: run a command under the recorder (or read a pasted traceback, or take
the newest `reprex.install()` bundle) and write the bundle."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from reprex.cli._common import CONTEXT, Command, check_fixed_with, fail, make_console, size


@click.command(cls=Command,
               context_settings={**CONTEXT, "ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Bundle path: NAME.reprex.zip, or a directory.")
@click.option("--name", help="Bundle name (default: the script or module name).")
@click.option("--timeout", type=float, help="Seconds before the run counts as hung; its stacks are recorded.")
@click.option("--allow-success", is_flag=True, help="Write a bundle even if the command succeeds.")
@click.option("--include", multiple=True, metavar="GLOB", help="Also bundle these files (relative to the cwd).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Never bundle these files.")
@click.option("--max-file-size", default="2M", show_default=True, help="Largest input file to copy.")
@click.option("--max-total", default="5M", show_default=True, help="Budget for all input files.")
@click.option("--network/--no-network", default=None, help="Does the repro need a network? (default: detected)")
@click.option("--from-traceback", "from_traceback", type=click.Path(allow_dash=True),
              help="Build a bundle from a pasted traceback (FILE or - for stdin) instead of running a command.")
@click.option("--last", is_flag=True, help="Take the newest bundle written by reprex.install().")
@click.option("--preview", is_flag=True, help="Show what would go into the bundle; write nothing.")
@click.option("--extract", is_flag=True, help="Also extract the minimal failing call (see `reprex extract`).")
@click.option("--shrink", "shrink_after", is_flag=True,
              help="Also shrink the bundle in place (see `reprex shrink`; judged on this machine).")
@click.option("--fixed-with", "control", multiple=True, metavar="SPEC",
              help="What fixes the bug ('pkg==X', a path; repeatable), for the shrinking: a candidate must also "
                   "not fail that way with it (see `reprex shrink --fixed-with`). Implies --shrink.")
@click.option("-q", "--quiet", is_flag=True, help="Don't echo the program's output.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object describing the result.")
@click.option("--exit-zero", is_flag=True,
              help="Exit 0 once the bundle is written, whatever the program's own exit status.")
def capture(command, output, name, timeout, allow_success, include, exclude, max_file_size, max_total, network,
            from_traceback, last, preview, extract, shrink_after, control, quiet, as_json, exit_zero):
    """Run COMMAND under the recorder; if it fails, write NAME.reprex.zip.

    Exits with the program's own status (128+N for a signal, 124 for a --timeout hang), so a
    CI job that runs `reprex capture -- pytest ...` still fails; --exit-zero for 0 instead.

    \b
      reprex capture -- python app.py --config prod.yaml
      reprex capture -- python -m mypkg.cli serve
      reprex capture --timeout 60 -- pytest-free-script args
      reprex capture --from-traceback traceback.txt
    """
    from reprex.capture.command import CaptureOptions

    if timeout is not None and timeout <= 0:
        raise click.BadParameter("must be a positive number of seconds", param_hint="--timeout")
    if control:
        check_fixed_with(control, auto=False)
        shrink_after = True

    options = CaptureOptions(output=output, name=name, timeout=timeout, allow_success=allow_success,
                             include=include, exclude=exclude, max_file_size=size(max_file_size),
                             max_total=size(max_total), network=network, tee=not quiet and not as_json)
    if last:
        return _capture_last(output, as_json)
    try:
        if from_traceback:
            from reprex.capture.pasted import capture_traceback

            text = sys.stdin.read() if from_traceback == "-" else _read_text(from_traceback)
            result = capture_traceback(text, options, write=not preview)
        else:
            if not command:
                raise click.UsageError("no command given: use `reprex capture -- python app.py`")
            from reprex.capture.command import capture_command
            from reprex.interrupt import Interrupted, on_signals

            try:
                with on_signals():
                    if quiet or as_json:
                        result = capture_command(list(command), options, write=not preview)
                    else:
                        with make_console().status("capturing...", spinner="dots") as status:
                            result = capture_command(list(command), options, write=not preview,
                                                     progress=lambda msg: status.update(msg))
            except Interrupted as exc:
                # The program was stopped and the unredacted record removed on the way out.
                fail(f"{exc}: no bundle written", exc.exit_code)
            if extract and result.bundle is not None and result.path is not None:
                from reprex.extract import JudgeUnavailable, extract_into
                from reprex.interrupt import Interrupted, on_signals

                try:  # the user's own fresh capture: its candidates are judged on this machine
                    with on_signals():
                        message = extract_into(result.path, backend="local").message
                except JudgeUnavailable as exc:
                    message = f"not extracted: {exc.reason}"
                except Interrupted as exc:  # the bundle stays as captured; the judging cleaned up after itself
                    fail(f"{exc} while extracting; {result.path} is the full capture", exc.exit_code)
                click.echo(click.style("extract:", bold=True) + f" {message}", err=True)  # data: no markup
            if shrink_after and result.bundle is not None and result.path is not None:
                from reprex.shrink.step import ShrinkOptions, shrink_into

                try:  # the user's own fresh capture: its candidates are judged on this machine
                    with on_signals():
                        result.bundle, message = shrink_into(result.path, ShrinkOptions(control=list(control)))
                except Interrupted as exc:  # the bundle stays as captured
                    fail(f"{exc} while shrinking; {result.path} is the full capture", exc.exit_code)
                click.echo(click.style("shrink:", bold=True) + f" {message}", err=True)  # data: no markup
    except OSError as exc:  # (a CaptureError or BundleError is a ReprexError: `Command` ends with its line)
        fail(f"cannot write {exc.filename or output or 'the bundle'}: {exc.strerror or exc}")
    status = 0 if exit_zero or from_traceback else program_status(result.outcome)
    if result.bundle is None:
        if as_json:
            click.echo(json.dumps({"written": None, "outcome": result.outcome.outcome, "message": result.message}))
        else:
            say(click.style("reprex:", fg="green") + f" {result.message}")
        sys.exit(status)
    if preview:
        _print_preview(result.bundle, as_json)
        sys.exit(status)
    if as_json:
        click.echo(json.dumps({"written": str(result.path), "name": result.bundle.name,
                               "signature": result.bundle.manifest["expect"]["signature"],
                               "outcome": result.outcome.outcome, "size": result.path.stat().st_size,
                               "redactions": result.bundle.manifest["redactions"]}))
        sys.exit(status)
    # The summary is a few styled lines: click's styling, so `capture -q` never loads rich
    # (its console is ~16 ms of the start-up that the capture overhead target counts).
    sig = result.bundle.manifest["expect"]["signature"]
    say(click.style("captured", fg="red", bold=True) + f" {result.outcome.outcome}: {' <- '.join(sig['types'])}  "
        + click.style(f"signature {sig['id']}", dim=True))
    redacted = sum(r["count"] for r in result.bundle.manifest["redactions"])
    say(click.style("wrote", bold=True) + f" {result.path} ({result.path.stat().st_size // 1024 or 1} KB, "
        f"{result.bundle.manifest['pins']['count']} pins, {redacted} redactions)")
    if result.skipped_files:
        say(click.style(f"{len(result.skipped_files)} file(s) not included", fg="yellow")
            + "; `reprex show` lists them")
    failures = getattr(result.outcome, "test_failures", None)
    if failures:
        say(f"{len(failures)} failing test(s) recorded, the signature takes them all; for one bundle "
            "per failing test run " + click.style("pytest --reprex-capture=DIR", bold=True))
    say("next: " + click.style(f"reprex render {result.path} --venue gh", bold=True) + " for the issue body, "
        + click.style(f"reprex replay {result.path}", bold=True) + " to check it")
    sys.exit(status)


def say(line: str) -> None:
    """One line of the capture summary on stderr (stdout stays free for the program's own);
    click drops the styling when stderr is not a terminal."""
    click.echo(line, err=True)


def program_status(outcome) -> int:
    """The captured program's own exit status, as a shell would report it."""
    if outcome.outcome == "success":
        return 0
    if outcome.outcome == "timeout":
        return 124
    code = outcome.exit_code
    if code is None:
        return 1
    if code < 0:
        return min(128 - code, 255)
    return min(code, 255)  # 0 too: a failure only in a thread left the program's own status 0


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text("utf-8", "replace")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


def _capture_last(output, as_json):
    from reprex.api import last_bundle

    path = last_bundle()
    if path is None:
        fail("no bundle from reprex.install() found in the cache")
    if output:
        import shutil

        shutil.copyfile(path, output)
        path = Path(output)
    click.echo(json.dumps({"written": str(path)}) if as_json else str(path))


def _print_preview(bundle, as_json):
    entries = bundle.entries()
    data = {"name": bundle.name, "entries": {k: len(v) for k, v in sorted(entries.items())},
            "size_zip": len(bundle.to_zip_bytes()), "redactions": bundle.manifest["redactions"],
            "signature": bundle.manifest["expect"]["signature"], "skipped": bundle.manifest["files"]["skipped"]}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from rich.table import Table

    console = make_console(stderr=False)
    table = Table(title=f"preview: {bundle.name} (nothing written)")
    table.add_column("entry")
    table.add_column("bytes", justify="right")
    for name, nbytes in data["entries"].items():
        table.add_row(name, str(nbytes))
    console.print(table)
    console.print(f"zip size: {data['size_zip']} bytes")
    for r in data["redactions"]:
        console.print(f"redacted {r['count']}x {r['kind']} in {r['where']}")
    for s in data["skipped"]:
        console.print(f"[yellow]not included[/] {s['path']}: {s['reason']}")


