"""`reprex check-serve`: check a Ray Serve config without a cluster (Ray-specific faces)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from reprex.cli._common import CONTEXT, Command, fail, make_console, size


@click.command("check-serve", cls=Command, context_settings=CONTEXT)
@click.argument("config", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path),
              help="Directory for the bundles (default: the current directory).")
@click.option("--app", "apps", multiple=True, metavar="NAME", help="Check only these applications. Repeatable.")
@click.option("--working-dir", type=click.Path(path_type=Path),
              help="Working dir for applications whose runtime_env has none, as `serve run --working-dir` "
                   "(default: the current directory).")
@click.option("--python", help="Interpreter that imports the application (default: the one running reprex).")
@click.option("--timeout", type=float, default=120, show_default=True, help="Seconds per step.")
@click.option("--max-file-size", default="2M", show_default=True, help="Largest working_dir file to bundle.")
@click.option("--max-total", default="5M", show_default=True, help="Budget for the working_dir's files.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every application's result.")
def check_serve(config, out_dir, apps, working_dir, python, timeout, max_file_size, max_total, as_json):
    """Check a Ray Serve config without a cluster: fetch each working_dir and import each
    import_path the way Ray does, and bundle the minimal failing call of whatever fails.

    \b
      reprex check-serve serve_config.yaml
      RAY_RUNTIME_ENV_BEARER_TOKEN=... reprex check-serve deploy/prod.yaml -o bundles/

    Relative working_dirs are taken from the current directory, as `serve run` does.
    Exit codes: 0 every application checks out, 1 something failed (bundles written), 2 usage error.
    """
    from reprex.ray.serve_check import check_serve as run_check

    console = make_console()
    # a ServeCheckError (the config can't be checked at all) ends the command with its line (`Command`)
    if as_json:
        report = run_check(config, out_dir=out_dir, python=python, timeout=timeout, apps=list(apps),
                           working_dir=working_dir, max_file=size(max_file_size), max_total=size(max_total))
    else:
        with console.status("checking...", spinner="dots") as status:
            report = run_check(config, out_dir=out_dir, python=python, timeout=timeout, apps=list(apps),
                               working_dir=working_dir, max_file=size(max_file_size), max_total=size(max_total),
                               progress=lambda msg: status.update(msg))
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        sys.exit(0 if report.ok else 1)
    if apps and not report.apps:
        fail(f"no application named {', '.join(apps)} in {config}")
    for app in report.apps:
        where = f"[bold]{app.name}[/] ({app.import_path}"
        where += f", working_dir {app.working_dir})" if app.working_dir else ")"
        if app.status == "ok":
            console.print(f"[green]ok[/]      {where}", highlight=False)
        elif app.status == "skipped":
            console.print(f"[yellow]skipped[/] {where}: {'; '.join(app.notes)}", highlight=False)
        else:
            error = app.error or {}
            first = (error.get("message") or "").splitlines()[0] if error.get("message") else ""
            console.print(f"[bold red]failed[/]  {where}", highlight=False)
            console.print(f"  {app.step}: {error.get('type')}: {first}", markup=False, highlight=False)
            if app.hint:
                console.print(f"  hint: {app.hint}", markup=False, highlight=False)
            if app.bundle:
                console.print(f"  wrote {app.bundle}; check it with: reprex replay {app.bundle}", markup=False,
                              highlight=False)
            for note in app.notes:
                console.print(f"  note: {note}", markup=False, highlight=False)
    sys.exit(0 if report.ok else 1)
