"""The last bytes of a run's output, in the order written: one buffer for every way a run is read.

Capture and the local backend read a process's pipes, the docker backend an attach stream;
all of them keep the same bounded tail, so a bundle's output and a replay's logs are cut alike.
"""

from __future__ import annotations

TAIL_BYTES = 64 * 1024  # what a bundle keeps of the output
# Kept beyond TAIL_BYTES so redaction sees a secret that straddles the final cut whole;
# the pipeline scrubs first, then cuts to TAIL_BYTES (capture/scrub.py: scrub_tail).
TAIL_MARGIN = 16 * 1024
CUT_MARK = "[... earlier output cut by reprex ...]"


class Tail:
    """The last `limit` bytes of stdout and stderr as [[stream, bytes], ...] in the order they
    arrived, adjacent chunks of one stream joined, lines kept whole.

    Two pipes keep no order between them (the docker daemon copies each in its own goroutine),
    and an unbuffered print() is several writes: "MARKER", " ", "False\n" can arrive with a
    traceback from the other pipe between them. The rest of a line one stream left open goes
    onto that line, so each stream's lines read whole; each stream's own bytes stay in order."""

    truncated = False

    def __init__(self, limit: int = TAIL_BYTES):
        self.limit = limit
        self.chunks: list[list] = []
        self.size = 0

    def add(self, stream: str, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.chunks and self.chunks[-1][0] != stream:
            own = next((c for c in reversed(self.chunks) if c[0] == stream), None)
            if own is not None and own[1] and own[1][-1:] not in (b"\n", b"\r"):
                end = _line_end(data)
                own[1] += data[:end]
                data = data[end:]
        if data and self.chunks and self.chunks[-1][0] == stream:
            self.chunks[-1][1] += data
        elif data:
            self.chunks.append([stream, bytearray(data)])
        while self.size > self.limit and self.chunks:
            head = self.chunks[0]
            excess = self.size - self.limit
            self.truncated = True
            if len(head[1]) <= excess:
                self.chunks.pop(0)
                self.size -= len(head[1])
            else:
                del head[1][:excess]
                self.size -= excess

    def drop_stdout_end(self, n: int) -> None:
        """Take back the last n bytes given as stdout (a stream parser found they were not the
        program's), from as many stdout chunks as they spread over (stderr may have come between)."""
        for chunk in reversed(self.chunks):
            if n <= 0:
                break
            if chunk[0] == "stdout":
                take = min(n, len(chunk[1]))
                del chunk[1][len(chunk[1]) - take:]
                self.size -= take
                n -= take
        self.chunks = [c for c in self.chunks if c[1]]
        for i in range(len(self.chunks) - 1, 0, -1):  # neighbours of one stream join again
            if self.chunks[i][0] == self.chunks[i - 1][0]:
                self.chunks[i - 1][1] += self.chunks.pop(i)[1]

    def text(self) -> list[list[str]]:
        """The chunks decoded, exactly as kept."""
        return [[s, bytes(b).decode("utf-8", "replace")] for s, b in self.chunks]

    def as_text(self) -> list[list[str]]:
        """The chunks decoded, a cut marked: the cut may fall inside a token, leaving a fragment
        no redactor recognises, so the partial first line is dropped for CUT_MARK."""
        chunks = self.text()
        if self.truncated and chunks:
            first = chunks[0][1]
            chunks[0][1] = CUT_MARK + "\n" + (first.split("\n", 1)[1] if "\n" in first else "")
        return chunks


def _line_end(data: bytes) -> int:
    """Where the line open at data's start ends (past its newline or carriage return), or len."""
    ends = [i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0]
    return min(ends) + 1 if ends else len(data)
