"""Replay at scale on a Ray cluster: one Ray task per bundle, placed on a node that can run
it, results streamed to a JSON-lines file that a stopped run resumes from.

Importing this package loads no Ray: `dispatch` does, when a replay is submitted.

* `needs`    -- what a bundle asks of a node (Ray resources) and whether any node has it
* `node`     -- what a node advertises (`python -m reprex.scale.node` for `ray start --resources`)
* `task`     -- the Ray task itself: the bundle's bytes to a temp file, handed to `runner`
* `runner`   -- the replay process a worker keeps (so a cancel can unwind a replay with SIGTERM)
* `dispatch` -- `replay_many`, `replay_remote`: submit, place, retry, cancel
* `corpus`   -- which bundles a run replays (paths, URIs, a DIR of them)
* `results`  -- the JSON-lines results file and `--resume`
* `summary`  -- the end table: per verdict, per node, slowest bundles
* `command`  -- the `reprex replay --ray` face: progress, summary, `--json`, exit code
"""

from __future__ import annotations

__all__ = ["ScaleResult", "RemoteReplay", "replay_many", "replay_remote"]


def __getattr__(name: str):
    if name in __all__:
        from reprex.scale import dispatch

        return getattr(dispatch, name)
    raise AttributeError(name)
