"""One replay in a process of its own, for the Ray task: `python -m reprex.scale.runner PATH`
with the ReplayOptions as JSON on stdin, the ReplayResult as JSON on stdout.

Why a process: Ray cancels a running task by raising KeyboardInterrupt between bytecodes,
which never comes while the replay waits on the daemon's socket; a real SIGTERM to this
process does (reprex.interrupt unwinds the replay, its container removed), as for
`reprex replay`. Exit 2 with {"error": ...} for a bundle that can't be read.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from reprex.interrupt import Interrupted, on_signals

    try:
        with on_signals():
            from reprex.bundle import Bundle
            from reprex.errors import ReprexError
            from reprex.replay import ReplayOptions, replay

            options = ReplayOptions(**json.loads(sys.stdin.read()))
            try:
                bundle = Bundle.read(argv[0])
            except (ReprexError, ValueError, OSError, RecursionError, MemoryError) as exc:
                text = exc.message if isinstance(exc, ReprexError) else f"{type(exc).__name__}: {exc}"
                print(json.dumps({"error": str(text).splitlines()[0][:300] if str(text) else type(exc).__name__}))
                return 2
            result = replay(bundle, options)
    except Interrupted as exc:
        return exc.exit_code
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
