"""reprex for Ray: capture inside tasks and actors, and check Serve configs without a cluster.

    import reprex.ray

    @ray.remote
    @reprex.ray.capture_failures            # bundle written in the worker, path noted on the error
    def load(rows): ...

    try:
        ray.get(load.remote(rows))
    except ray.exceptions.RayTaskError as err:
        print(reprex.ray.bundle_path(err))

Nothing here imports ray at import time. Failures raised in workers are also recognised
when a driver is run under `reprex capture`: the recorder records the remote cause and the
signature is the cause's (see reprex.signature.unwrap_remote).
"""

from __future__ import annotations

from reprex.ray.worker import CapturedFailure, bundle_path, capture_failures, capturing, write_worker_bundle

__all__ = ["CapturedFailure", "bundle_path", "capture_failures", "capturing", "write_worker_bundle", "check_serve"]


def __getattr__(name):
    if name == "check_serve":
        from reprex.ray.serve_check import check_serve

        return check_serve
    raise AttributeError(f"module 'reprex.ray' has no attribute {name!r}")
