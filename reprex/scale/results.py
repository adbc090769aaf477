"""The results file: one JSON object per finished bundle, appended as each finishes and
synced to disk, so a run stopped at any point keeps every result it had; `--resume` reads it
back and skips the bundles already there.

A line cut short by a crash is not a result: it is skipped when read, and the next append
starts on a fresh line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from reprex.errors import ReprexError


class ResultsError(ReprexError):
    exit_code = 2


def read(path: Path) -> Iterator[dict]:
    """The finished results in `path` (none when it doesn't exist), oldest first."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ResultsError(f"cannot read the results file {path}: {exc.strerror or exc}") from None
    with fh:
        for raw in fh:
            try:
                row = json.loads(raw)
            except ValueError:  # a line cut short (the run died mid-write)
                continue
            if isinstance(row, dict) and isinstance(row.get("bundle_id"), str) and row["bundle_id"] \
                    and isinstance(row.get("verdict"), str):
                yield row


class Writer:
    """Appends result lines; each is flushed and fsynced before the next bundle is reported."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.path, "ab")
            if self.fh.tell() and not _ends_with_newline(self.path):
                self.fh.write(b"\n")  # after a cut line: ours starts fresh
        except OSError as exc:
            raise ResultsError(f"cannot write the results file {path}: {exc.strerror or exc}") from None

    def write(self, row: dict) -> None:
        self.fh.write(json.dumps(row, sort_keys=True).encode() + b"\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
