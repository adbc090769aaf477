"""`reprex replay`, `reprex extract` and `reprex lock`: run, reduce or re-resolve a bundle
somewhere clean, and report the verdict."""

from __future__ import annotations

import json
import os
import re
import sys

import click

from reprex.cli._common import CONTEXT, Command, fail, load_bundle, make_console

_VERDICT_STYLE = {"reproduced": {"fg": "red", "bold": True}, "fixed": {"fg": "green", "bold": True},
                  "different": {"fg": "yellow", "bold": True}, "flaky": {"fg": "magenta", "bold": True},
                  "env-incompatible": {"fg": "cyan", "bold": True},
                  "infra-error": {"fg": "white", "bg": "red", "bold": True}}


def _gpus(value: str | None) -> str | None:
    if value is None or value in ("none", "all"):
        return value
    if value.isdigit() and int(value) > 0:
        return value
    raise click.BadParameter(f"{value!r}: use none, all or a count")


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("bundles", nargs=-1, required=True, metavar="BUNDLE...")
@click.option("--backend", type=click.Choice(["auto", "local", "docker"]), default="auto", show_default=True,
              help="auto: docker when a daemon is reachable, else a local virtualenv (with --ray: docker).")
@click.option("--image", help="Base image for the docker backend (default: python:X.Y-slim for the bundle's Python).")
@click.option("--gpus", help="none, all or N (default: none; a bundle that ran on a GPU asks for this grant).")
@click.option("--runs", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Run N times; some-but-not-all reproductions is `flaky`.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds per run before it is killed (default: 300, or as long as the captured run hung).")
@click.option("--network", type=click.Choice(["none", "bridge"]),
              help="Default: none. A bundle may ask for a network; only this grants one.")
@click.option("--expect", type=click.Choice(["reproduced", "fixed"]), default="reproduced", show_default=True,
              help="With `fixed`, exit 0 means the failure is gone.")
@click.option("--with", "with_specs", multiple=True, metavar="SPEC",
              help="Install over the pins: 'pkg==X' or 'pkg>=2' (a release: the other pins it requires move too, "
                   "said in the reason), a local checkout path or 'pkg @ git+URL' (over the pins as is). Repeatable.")
@click.option("--env", "pass_env", multiple=True, metavar="NAME[=VALUE]",
              help="Pass NAME from this shell (or NAME=VALUE) into the replay: a credential the repro needs. "
                   "Never written anywhere; its value is scrubbed from the output. Repeatable.")
@click.option("--allow-urls", is_flag=True,
              help="Download the bundle's `name @ https://...` pins from the addresses they name (this machine "
                   "connects there). Default: such a bundle is env-incompatible on the docker backend.")
@click.option("--strict", is_flag=True, help="Also compare the normalized messages.")
@click.option("--keep", is_flag=True, help="Keep the work dir (and container) for inspection.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the verdict.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="auto", default=None, metavar="[auto|ADDRESS]",
              help="Replay each bundle as a task on a Ray cluster (auto: the running one, else a new local one; "
                   "or HOST:PORT, ray://HOST:PORT, local). Takes several bundles, or a DIR of them.")
@click.option("--results", type=click.Path(dir_okay=False), metavar="FILE",
              help="With --ray: append one JSON line per finished bundle to FILE.")
@click.option("--resume", is_flag=True, help="With --ray: skip the bundles that already have a line in --results.")
def replay(bundles, backend, image, gpus, runs, timeout, network, expect, with_specs, pass_env, allow_urls, strict,
           keep, as_json, ray_address, results, resume):
    """Replay BUNDLE (a path, directory or URI) in a clean environment and give a verdict.

    With --ray, replay many (BUNDLE... or a DIR of bundles) across a Ray cluster: each on a
    node that can run it, results streamed to --results, a summary per verdict and node.

    \b
    Exit codes: 0 reproduced (or fixed with --expect fixed), 1 different/fixed/flaky,
    2 usage error, 3 env-incompatible or infra-error (with --ray: the highest of all bundles').
    """
    if ray_address is not None:
        from reprex.scale.command import split_ray_value

        ray_address, bundles = split_ray_value(ray_address, bundles)
    elif len(bundles) > 1 or results or resume:
        raise click.UsageError("several bundles, --results and --resume need --ray")
    bundle = bundles[0]
    from reprex.replay import ReplayOptions, exit_code
    from reprex.replay import replay as do_replay
    from reprex.escape import terminal
    from reprex.replay.base import MIN_SCRUB, parse_pass_env
    from reprex.interrupt import Interrupted, on_signals

    for spec in with_specs:  # a path that isn't there: said as such, not as the installer's guess at a URL
        if spec.startswith(("./", "../", "/", "~")) and not os.path.exists(os.path.expanduser(spec)):
            raise click.BadParameter(f"{spec}: no such file or directory", param_hint="--with")
    try:
        passed = parse_pass_env(list(pass_env))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    for name, value in passed.items():
        if len(value) < MIN_SCRUB:
            click.echo(f"reprex: warning: --env {name}: a value of under {MIN_SCRUB} characters is not scrubbed "
                       "from the output", err=True)
    options = ReplayOptions(backend=backend, image=image, gpus=_gpus(gpus), runs=runs, timeout=timeout,
                            network=network, expect=expect, with_specs=list(with_specs), keep=keep, strict=strict,
                            pass_env=passed, allow_urls=allow_urls)
    if ray_address is not None:
        from reprex.scale.command import replay_on_ray

        replay_on_ray(bundles, options, ray_address, results, resume, as_json)
    # SIGTERM/SIGINT unwind the replay (its container and temp dirs are removed): exit 143/130
    try:
        with on_signals():
            b = load_bundle(bundle)
            if as_json:
                result = do_replay(b, options)
            elif sys.stderr.isatty():
                from rich.text import Text

                with make_console().status("replaying...", spinner="dots") as status:
                    result = do_replay(b, options, progress=lambda msg: status.update(Text(terminal(msg, False))))
            else:  # a log, not a terminal: progress as lines, and no rich to import
                result = do_replay(b, options,
                                   progress=lambda msg: click.echo(f"reprex: {terminal(msg, False)}", err=True))
    except Interrupted as exc:
        click.echo(f"reprex: {exc}; the replay was stopped and cleaned up", err=True)
        sys.exit(exc.exit_code)
    code = exit_code(result.verdict, expect)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        sys.exit(code)
    _print_result(b, result)
    sys.exit(code)


def _print_result(bundle, result) -> None:
    """The verdict on stderr (stdout stays free for --json), styled by click; rich only for
    the side-by-side table of a different or flaky run. The bundle's text and the replayed
    program's output are data: control characters shown escaped, no markup read in them."""
    from reprex.escape import terminal

    style = _VERDICT_STYLE.get(result.verdict, {"bold": True})
    where = terminal(result.backend or "?", False)
    if result.image:
        where += f" ({terminal(result.image, False)})"
    runs = f", {result.reproduced_runs}/{result.runs} runs reproduced" if result.runs > 1 else ""
    echo = lambda text="", **kw: click.secho(text, err=True, **kw)  # noqa: E731
    click.echo(click.style(result.verdict, **style) + f" on {where} in {result.duration_s:.1f}s{runs}", err=True)
    if result.reason:
        echo(f"reason: {terminal(result.reason, False)}")
    if result.verdict in ("different", "flaky") and result.signature is not None:
        from rich.table import Table
        from rich.text import Text

        cell = lambda value: Text(terminal(value))  # noqa: E731
        console = make_console()
        table = Table(show_header=True)
        table.add_column("")
        table.add_column("expected (bundle)")
        table.add_column("observed (replay)")
        exp, got = result.expected_signature, result.signature
        table.add_row("id", cell(exp.id), cell(got.id))
        table.add_row("kind", cell(exp.kind), cell(got.kind))
        table.add_row("types", cell("\n".join(exp.types)), cell("\n".join(got.types)))
        table.add_row("frames", cell("\n".join(exp.frames)), cell("\n".join(got.frames)))
        table.add_row("message", cell(exp.message[:200]), cell(got.message[:200]))
        console.print(table, markup=False, highlight=False)
        if result.logs:
            echo("replay output (tail):", dim=True)
            echo(terminal(result.logs[-3000:]))
    if result.diff:
        echo("environment differences (bundle -> replay):", dim=True)
        for row in result.diff[:30]:
            echo("  " + terminal(f"{row['what']}: {row['bundle']} -> {row['replay']}", False))


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("bundle")
@click.option("--frame", type=int, help="Frame index in the innermost traceback (0 = outermost, -1 = innermost).")
@click.option("--function", help="Extract the call to the function with this name (qualname).")
@click.option("--backend", type=click.Choice(["docker", "local"]), default="docker", show_default=True,
              help="Where each candidate call is run to judge it. docker: a sandboxed container (no network, "
                   "the replay's environment image). local: RUNS THE BUNDLE'S CODE ON THIS MACHINE (a "
                   "virtualenv, your user): only for a bundle you trust, e.g. your own.")
@click.option("--image", help="Base image for the docker backend (default: as `reprex replay` picks it).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds per candidate run.")
@click.option("--network", type=click.Choice(["none", "bridge"]), default="none", show_default=True,
              help="Grant the candidate runs a network (a bundle can't ask for one here).")
@click.option("--gpus", default="none", show_default=True, help="Grant the candidate runs GPUs: none, all or N.")
@click.option("--allow-urls", is_flag=True,
              help="Download the bundle's `name @ https://...` pins from the addresses they name (this machine "
                   "connects there), as `reprex replay --allow-urls` does.")
@click.option("-o", "--output", help="Write the result here instead of rewriting BUNDLE in place.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object describing what was kept.")
def extract(bundle, frame, function, backend, image, timeout, network, gpus, allow_urls, output, as_json):
    """Turn BUNDLE's failure into a minimal failing call that runs on its own.

    The chosen frame's function is called directly with the arguments it received
    (its source inlined when it can be, so the framework needn't be installed). The
    candidates are written from the bundle's data on this machine and judged by running
    them in a container (--backend local: on this machine); a call is kept only if it
    fails the same way, otherwise the full script stays.

    \b
    Exit codes: 0 a call was kept, 1 the full script stays, 2 usage error,
    3 no backend to judge in (no Docker daemon, no such Python, ...).
    """
    from reprex.extract import extract as do_extract
    from reprex.interrupt import Interrupted, on_signals

    if frame is not None and function is not None:
        raise click.UsageError("use --frame or --function, not both")
    gpus = _gpus(gpus)
    b = load_bundle(bundle)
    if backend == "local" and not as_json:
        click.echo("reprex: warning: --backend local runs this bundle's code on this machine", err=True)
    kwargs = dict(frame=frame, function=function, backend=backend, image=image, timeout=timeout, network=network,
                  gpus=gpus, allow_urls=allow_urls)
    # SIGTERM/SIGINT unwind the judging (a candidate's container and temp dirs are removed): exit 143/130
    try:
        with on_signals():
            if as_json or not sys.stderr.isatty():
                say = (lambda msg: None) if as_json else (lambda msg: click.echo(f"reprex: {msg}", err=True))
                report = do_extract(b, progress=say, **kwargs)
            else:
                from rich.text import Text

                with make_console().status("extracting the failing call...", spinner="dots") as status:
                    report = do_extract(b, progress=lambda msg: status.update(Text(msg)), **kwargs)
    except Interrupted as exc:  # (JudgeUnavailable, no backend to judge in, ends the command with exit 3)
        click.echo(f"reprex: {exc}; the extraction was stopped and cleaned up", err=True)
        sys.exit(exc.exit_code)
    target = output or (bundle if not bundle.startswith(("http://", "https://", "s3://", "gs://")) else None)
    written = None
    if report.bundle is not None:
        if target is None:
            fail("a remote bundle can't be rewritten in place; pass -o PATH")
        try:
            written = str(report.bundle.write(target))
        except OSError as exc:
            fail(f"cannot write {target}: {exc.strerror or exc}")
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "written": written}))
    else:  # the message holds bundle- and sandbox-made text: cleaned by extract, printed without markup
        style = {"fg": "green", "bold": True} if report.kept == "extracted" else {"fg": "yellow", "bold": True}
        click.echo(click.style(report.kept, **style) + f": {report.message}", err=True)
        if written:
            click.echo(f"wrote {written}; its entry is now repro.py (the original is under original/)", err=True)
    sys.exit(0 if report.kept == "extracted" else 1)


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("bundle")
@click.option("--python", "python_version", required=True, help="Target Python, e.g. 3.12.")
@click.option("--platform", "platform_tag", required=True,
              help="Target platform tag(s), e.g. manylinux2014_aarch64 (comma-separated for several).")
@click.option("--allow-urls", is_flag=True,
              help="Resolve the bundle's `name @ https://...` wheel pins from the addresses they name (this "
                   "machine connects there). Default: such a bundle is env-incompatible.")
@click.option("-o", "--output", help="Write the re-resolved requirements here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def lock(bundle, python_version, platform_tag, allow_urls, output, as_json):
    """Re-resolve BUNDLE's top-level pins for another Python/platform.

    Only the bundle's `name==version` pins (and, with --allow-urls, its https wheel
    references) are resolved, from wheels only: nothing of the bundle is built or run here.

    \b
    Exit codes: 0 every package has a build for the target, 2 usage error,
    3 env-incompatible (naming the packages that don't) or infra-error.
    """
    from rich.text import Text

    from reprex.escape import terminal
    from reprex.lock import lock as do_lock

    if not re.fullmatch(r"\d+\.\d+", python_version):
        raise click.BadParameter(f"{python_version!r}: use X.Y, e.g. 3.12", param_hint="--python")
    if not re.fullmatch(r"[A-Za-z0-9_.]+(,[A-Za-z0-9_.]+)*", platform_tag):
        raise click.BadParameter(f"{platform_tag!r}: use platform tags, e.g. manylinux2014_aarch64",
                                 param_hint="--platform")
    b = load_bundle(bundle)
    console = make_console()
    with console.status(Text(f"resolving for Python {python_version} on {platform_tag}..."), spinner="dots"):
        result = do_lock(b, python_version, platform_tag, allow_urls=allow_urls)
    if result.pins and output:
        from reprex.fsutil import atomic_write_text

        atomic_write_text(output, "\n".join(result.pins) + "\n")
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:  # package names and reasons are the bundle's (or the resolver's) text: no markup, no escapes
        data = lambda text: Text(terminal(text, False))  # noqa: E731
        target = f"Python {python_version} on {platform_tag}"
        if result.ok:
            console.print(Text.assemble(("resolved", "bold green"),
                                        f" {len(result.pins)} pins for {target} (with {result.tool})"))
            if not output:
                click.echo("\n".join(terminal(pin, False) for pin in result.pins))
        elif result.verdict == "env-incompatible":
            why = result.reason or f"no build for {target}: {', '.join(result.missing)}"
            console.print(Text.assemble(("env-incompatible", "bold cyan"), ": ", data(why)), soft_wrap=True)
        else:
            console.print(Text.assemble(("infra-error", "bold white on red"), ": ", data(result.error)), soft_wrap=True)
    sys.exit(0 if result.ok else 3)
