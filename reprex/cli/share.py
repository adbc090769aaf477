"""`reprex share`: upload a bundle, print its verified URL and the issue body that links it."""

from __future__ import annotations

import json

import click

from reprex.cli._common import CONTEXT, Command

PROGRESS_FROM = 8 * 1024 * 1024  # smaller uploads finish before a progress line would help


def _progress():
    """A stderr line per ~10% of a big upload."""
    shown = [-1]

    def report(done: int, total: int) -> None:
        if total < PROGRESS_FROM:
            return
        tenth = done * 10 // total
        if tenth != shown[0]:
            shown[0] = tenth
            click.echo(f"reprex: uploading {done * 100 // total}% ({done / 1e6:.1f} of {total / 1e6:.1f} MB)", err=True)

    return report


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("bundle")
@click.argument("target")
@click.option("--force", is_flag=True, help="Share even when the bundle's redaction can't be vouched for.")
@click.option("--json", "as_json", is_flag=True, help="Print {url, sha256, size, body} as JSON.")
def share(bundle, target, force, as_json):
    """Upload BUNDLE under TARGET and print `URL#sha256=...` and the issue body that links it.

    \b
    TARGET is a prefix: s3://bucket/dir, gs://bucket/dir, azure://container/dir,
    https://host/dir (HTTP PUT), file:///dir or a directory. The object is named
    NAME-<sha256 prefix>.reprex.zip, so sharing the same bundle again uploads nothing.
    Credentials come from the environment only: boto3's chain (AWS_*; AWS_ENDPOINT_URL
    for an S3-compatible server), google-auth, AZURE_STORAGE_CONNECTION_STRING, and
    REPREX_HTTP_BEARER_TOKEN / REPREX_HTTP_HEADERS for https.
    """
    from reprex.escape import terminal
    from reprex.share import share as do_share

    result = do_share(bundle, target, force=force, progress=None if as_json else _progress())
    if as_json:
        click.echo(json.dumps(result.to_json()))
        return
    for gap in result.gaps:
        click.echo(f"reprex: warning: shared with --force although {terminal(gap, multiline=False)}", err=True)
    click.echo(f"reprex: {'uploaded' if result.uploaded else 'already shared'}: {result.url} "
               f"({result.size} bytes)", err=True)
    click.echo(result.verified_url)
    click.echo()
    click.echo(result.body)
