"""An env image's build context as a tar that is read, never written: the daemon gets the
wheels while they are read from the cache, as `docker build` streams its context, instead of
after a ~100 MB copy into a temporary file (which spilled to disk past 64 MB).

The bytes are those tarfile writes for the same members (root-owned, no time stamps, PAX
headers, blocks and the end record padded alike): the same inputs make the same context.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from reprex.replay.base import InfraError

Member = tuple[str, "bytes | Path", int]  # (name in the tar, its bytes or the file holding them, mode)


def header(name: str, size: int, mode: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid = size, mode, 0, 0, 0
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarStream:
    """A file-like read() over the tar of `members`; `size` is known before the first byte."""

    def __init__(self, members: list[Member]):
        self.parts: list[bytes | tuple[Path, int]] = []
        offset = 0
        for name, data, mode in members:
            size = len(data) if isinstance(data, bytes) else data.stat().st_size
            head, pad = header(name, size, mode), -size % tarfile.BLOCKSIZE
            self.parts += [head, data if isinstance(data, bytes) else (data, size), b"\0" * pad]
            offset += len(head) + size + pad
        end = 2 * tarfile.BLOCKSIZE
        end += -(offset + end) % tarfile.RECORDSIZE
        self.parts.append(b"\0" * end)
        self.size = offset + end
        self._chunks = self._generate()
        self._pending = memoryview(b"")

    def _generate(self):
        for part in self.parts:
            if isinstance(part, bytes):
                yield part
                continue
            path, left = part
            with open(path, "rb") as fh:
                while left:
                    block = fh.read(min(left, 1 << 20))
                    if not block:
                        raise InfraError(f"{path.name} shrank while the build context was sent")
                    left -= len(block)
                    yield block

    def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes (all that is left for n < 0); b"" at the end."""
        if n < 0:
            out, self._pending = bytes(self._pending) + b"".join(self._chunks), memoryview(b"")
            return out
        while not self._pending:
            block = next(self._chunks, None)
            if block is None:
                return b""
            self._pending = memoryview(block)
        out, self._pending = bytes(self._pending[:n]), self._pending[n:]
        return out
