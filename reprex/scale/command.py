"""The face of `reprex replay BUNDLE... | DIR --ray`: many bundles replayed as tasks on a Ray
cluster, with progress on stderr (done/total, verdict counts, ETA), an end summary, `--json`.

reprex/cli/replay.py hands over to `replay_on_ray` when --ray is given (the CLI's modules
import only reprex.cli._common of the CLI, so this lives with the library it drives).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import click


# what --ray's optional value may be; anything else is the first bundle (`--ray a.zip b.zip`)
_ADDRESS = re.compile(r"auto|local|(?:ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}")


def split_ray_value(value: str | None, bundles: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """--ray takes an optional address; a value that is not one was the first bundle."""
    if value is None or _ADDRESS.fullmatch(value):
        return value, bundles
    return "auto", (value, *bundles)


def replay_on_ray(sources: tuple[str, ...], options, address: str, results: str | None, resume: bool,
                  as_json: bool) -> None:
    from reprex.scale.corpus import expand

    if resume and not results:
        raise click.UsageError("--resume needs --results FILE (the file of the run to continue)")
    bundles = expand(list(sources))
    # Ray prints the cluster's errors (a node died, ...) on sys.stdout from a thread of its own:
    # they go to stderr, and stdout keeps the one JSON object
    stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        code, doc = _run(bundles, options, address, Path(results) if results else None, resume, as_json)
    except BaseException:
        sys.stdout = stdout  # a one-line error (under --json, its JSON object) goes where it always does
        raise
    if as_json:
        click.echo(json.dumps(doc), file=stdout)
    sys.exit(code)


def _run(bundles: list[str], options, address: str, results: Path | None, resume: bool,
         as_json: bool) -> tuple[int, dict]:
    from reprex.interrupt import Interrupted, on_signals
    from reprex.replay import exit_code
    from reprex.scale.dispatch import connect, replay_many
    from reprex.scale.summary import render, summarize

    ray = connect(address)
    started = time.monotonic()
    shown = _Progress(len(bundles), quiet=as_json)
    if not as_json:
        click.echo(f"reprex: replaying {len(bundles)} bundle(s) on Ray: {_cluster(ray)}", err=True)
    try:
        with on_signals(), shown:
            done = replay_many(bundles, options, address=address, results=results, resume=resume,
                               on_result=shown.add, on_resumed=shown.resumed)
    except Interrupted as exc:
        where = f"; {shown.count} result(s) are in {results} (--resume continues)" if results else ""
        click.echo(f"reprex: {exc}; the outstanding replays were cancelled and cleaned up{where}", err=True)
        sys.exit(exc.exit_code)
    summary = summarize(done, wall_s=time.monotonic() - started)
    code = max((exit_code(r.verdict, options.expect) for r in done), default=0)
    if not as_json:
        render(summary, make_console())
    rows = [{**r.to_dict(), "resumed": r.resumed} for r in done]
    return code, {"results": rows, "summary": summary, "exit": code}


def make_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _cluster(ray) -> str:
    from reprex.scale.needs import DOCKER, alive_nodes

    nodes = alive_nodes(ray.nodes())
    total = lambda key: sum((n.get("Resources") or {}).get(key, 0) for n in nodes)  # noqa: E731
    docker = sum(1 for n in nodes if (n.get("Resources") or {}).get(DOCKER))
    return f"{len(nodes)} node(s), {total('CPU'):g} CPU(s), {total('GPU'):g} GPU(s), {docker} with Docker"


class _Progress:
    """rich's progress bar on a terminal, one line per bundle in a log, nothing under --json."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet, self.count = total, quiet, 0
        self.verdicts: dict[str, int] = {}
        self.bar = self.task = None
        if not quiet and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[verdicts]}"), TextColumn("ETA"), TimeRemainingColumn(),
                                console=make_console(), transient=False)
            self.task = self.bar.add_task("replaying", total=total, verdicts="")

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def resumed(self, item) -> None:
        """A bundle that has a result in the file already: done, without a line of its own
        (the summary counts them)."""
        self.count += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1)

    def add(self, item) -> None:
        from reprex.escape import terminal

        self.count += 1
        self.verdicts[item.verdict] = self.verdicts.get(item.verdict, 0) + 1
        if self.quiet:
            return
        counts = " ".join(f"{v} {n}" for v, n in sorted(self.verdicts.items()))
        if self.bar is not None:
            self.bar.update(self.task, advance=1, verdicts=counts)
            return
        node = f" on {item.node[:12]}" if item.node else ""
        reason = f": {terminal(item.reason, False)[:200]}" if item.reason and item.verdict != "reproduced" else ""
        click.echo(f"reprex: [{self.count}/{self.total}] {item.verdict} {terminal(item.bundle, False)}{node} "
                   f"({item.seconds:.1f}s){reason}", err=True)
