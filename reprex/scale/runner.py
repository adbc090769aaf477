"""The replay process the Ray task talks to: `python -m reprex.scale.runner`, one JSON request
per line on stdin ({"path", "options"}), one JSON answer per line on stdout ({"result"} or
{"error"} for a bundle that can't be read). It lives as long as its Ray worker, so reprex's
replay is imported once per worker, not once per bundle.

Why a process: Ray cancels a running task by raising KeyboardInterrupt between bytecodes,
which never comes while a replay waits on the daemon's socket; a real SIGTERM to this
process does (reprex.interrupt unwinds the replay, its container removed), as it does for
`reprex replay`. It then exits, and the worker's next task starts another.

Ray usually takes this process down with its worker (the raylet kills a dead worker's process
group; a worker whose raylet died kills its children on its way out). When raylet and worker
are SIGKILLed together (`ray stop --force`, a node's processes killed at once) nobody does, and
this process, orphaned, would replay on until the replay's own timeout, its container with it.
So it watches its parent: once reparented, it sends itself SIGTERM and unwinds as for a cancel.
The watch is here, on the node, because the driver may not reach that node's Docker daemon at
all (a remote machine); a whole machine that dies takes its containers with it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

PARENT_POLL_S = 1.0


def answer(request: dict) -> dict:
    from reprex.bundle import Bundle
    from reprex.errors import ReprexError
    from reprex.replay import ReplayOptions, replay

    options = ReplayOptions(**request["options"])
    try:
        bundle = Bundle.read(request["path"])
    except (ReprexError, ValueError, OSError, RecursionError, MemoryError) as exc:
        text = str(exc.message if isinstance(exc, ReprexError) else f"{type(exc).__name__}: {exc}")
        return {"error": text.splitlines()[0][:300] if text else type(exc).__name__}
    return {"result": replay(bundle, options).to_dict()}


def watch_parent(poll_s: float = PARENT_POLL_S) -> None:
    """SIGTERM to this process once its parent (the Ray worker) is gone."""
    parent = os.getppid()

    def run() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=run, name="reprex-parent-watch", daemon=True).start()


def main() -> int:
    from reprex.interrupt import Interrupted, on_signals

    watch_parent()
    import reprex.replay.docker.backend  # noqa: F401  (imported once, ahead of the first request)

    # the answers get a descriptor of their own; fd 1 (what a replay's tools inherit) is stderr
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        with on_signals():
            while True:
                line = sys.stdin.readline()
                if not line:  # the worker is gone
                    return 0
                answers.write(json.dumps(answer(json.loads(line))) + "\n")
                answers.flush()
    except Interrupted as exc:
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
