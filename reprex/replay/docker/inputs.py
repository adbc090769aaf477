"""How the bundle's work files reach the container: a read-only bind mount of a host dir when
the daemon shares our file system, else a tar through the archive API into a volume.

Either way the tree is laid out from checked member names (bundle.safe_member_name), root-owned
and readable by the run's uid, and a tree that can't be laid out is the bundle's fault, said in
one line.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from reprex.replay.base import InfraError
from reprex.replay.docker.build import add_bytes
from reprex.replay.docker.engine import Engine


def inputs_mode(engine: Engine) -> str:
    """How the work files reach the container: "bind" (a host dir, read-only) when the daemon
    is on this machine's unix socket, "copy" (the archive API into a volume) when it is
    reached over tcp, as docker:dind in CI is, and may not see our files.
    REPREX_DOCKER_INPUTS=bind|copy decides instead."""
    chosen = os.environ.get("REPREX_DOCKER_INPUTS", "").strip().lower()
    if chosen in ("bind", "copy"):
        return chosen
    if chosen:
        raise InfraError(f"REPREX_DOCKER_INPUTS={chosen!r}: use bind or copy")
    return "bind" if engine.host.startswith("unix://") else "copy"


def write_inputs(indir: Path, files: dict[str, bytes]) -> None:
    """The work files under indir, readable by the run's uid; a tree that can't be laid out
    (a file where a directory must go) is the bundle's fault, said in one line."""
    os.chmod(indir, 0o755)
    try:
        for rel, data in files.items():
            target = indir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(0o644)
    except OSError as exc:
        raise InfraError(f"refusing the bundle: its files/ can't be laid out as a directory tree "
                         f"({exc.strerror or type(exc).__name__}: {exc.filename and Path(exc.filename).name!r:.80})"
                         ) from None
    for root, dirs, _ in os.walk(indir):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)


def inputs_tar(files: dict[str, bytes]) -> bytes:
    """The work files as a tar for the archive API: root-owned, files 0644, dirs 0755."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = sorted({"/".join(rel.split("/")[:i]) for rel in files for i in range(1, rel.count("/") + 1)})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for rel, data in sorted(files.items()):
            add_bytes(tar, rel, data)
    return buf.getvalue()
