"""The run's output and its record, from the one attach stream that carries both.

The run script prints a per-run marker after the program is done, then the record's files;
RunStream splits stdout there (the marker may arrive split across frames, with stderr in
between), keeps the output's tail (reprex.tail, the buffer capture uses too) and parses the
record with the host's own caps.
"""

from __future__ import annotations

from reprex.replay.docker.layout import RECORD_FILES, RECORD_MAGIC
from reprex.tail import TAIL_BYTES, Tail


class RunStream:
    """Splits the container's stdout at the run's record marker: before it, the program's
    output (kept as a Tail); after it, the record (kept up to the caps' sum, the rest read
    and dropped so the container never blocks on a full pipe)."""

    def __init__(self, nonce: str, limit: int = TAIL_BYTES):
        self.marker = b"\n" + RECORD_MAGIC + nonce.encode() + b"]\n"
        self.tail = Tail(limit)
        self.pending = b""  # stdout that may be the start of the marker: held back
        self.carry = b""  # the same, already handed to the tail because stderr came between
        self.record: bytearray | None = None
        self.budget = sum(RECORD_FILES.values()) + 4096

    def _held(self, buf: bytes) -> int:
        """Length of the longest end of `buf` that could begin the marker."""
        start = max(0, len(buf) - len(self.marker) + 1)
        at = buf.find(b"\n", start)
        while at >= 0:
            if self.marker.startswith(buf[at:]):
                return len(buf) - at
            at = buf.find(b"\n", at + 1)
        return 0

    def feed(self, stream: str, data: bytes) -> None:
        if self.record is not None:
            if stream == "stdout":
                self.record += data[:max(0, self.budget - len(self.record))]
            else:
                self.tail.add(stream, data)
            return
        if stream != "stdout":
            if self.pending:  # keep the order written; remember it in case the marker goes on
                self.tail.add("stdout", self.pending)
                self.carry, self.pending = self.carry + self.pending, b""
            self.tail.add(stream, data)
            return
        buf = self.carry + self.pending + data
        at = buf.find(self.marker)
        if at >= 0:
            if at < len(self.carry):  # the marker began in bytes the tail already has
                self.tail.drop_stdout_end(len(self.carry) - at)
            else:
                self.tail.add("stdout", buf[len(self.carry):at])
            self.carry = self.pending = b""
            self.record = bytearray()
            self.feed("stdout", buf[at + len(self.marker):])
            return
        own = buf[len(self.carry):]
        held = self._held(buf)
        if held > len(own):  # a possible marker start reaches back into the carried bytes
            self.carry, self.pending = self.carry[len(buf) - held:], own
        else:
            self.tail.add("stdout", own[:len(own) - held])
            self.carry, self.pending = b"", own[len(own) - held:]

    def finish(self) -> None:
        if self.record is None and self.pending:
            self.tail.add("stdout", self.pending)
        self.pending = self.carry = b""

    def record_files(self) -> dict[str, bytes]:
        """The record's files by name: the known names only, each within its cap; parsing
        stops at the first thing that is not a well-formed entry."""
        files: dict[str, bytes] = {}
        data = bytes(self.record or b"")
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos, pos + 64)
            if nl < 0:
                break
            head = data[pos:nl].decode("ascii", "replace").split(" ")
            if head == ["end"] or len(head) != 2 or head[0] not in RECORD_FILES or head[0] in files:
                break
            try:
                size = int(head[1])
            except ValueError:
                break
            if size < 0 or size > RECORD_FILES[head[0]] or nl + 1 + size > len(data):
                break
            files[head[0]] = data[nl + 1:nl + 1 + size]
            pos = nl + 1 + size
        return files
