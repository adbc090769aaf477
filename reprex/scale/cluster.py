"""The Ray connection and what reprex asks of it: connect (an open session, an address, or a
new local cluster advertising this machine's reprex resources), the nodes, and a wait that
lets Ctrl-C through as itself."""

from __future__ import annotations

import os

from reprex.errors import ReprexError


class ScaleError(ReprexError):
    """The cluster can't be used at all (no Ray, no cluster at that address)."""

    exit_code = 3


def connect(address: str | None = "auto"):
    """Ray, connected: the session already open in this process, else the cluster at
    `address` ("auto": RAY_ADDRESS or the one running on this machine, else a new local one;
    "local" or None: a new local one, advertising this machine's reprex resources)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as exc:
        raise ScaleError(f"--ray needs Ray on this machine (pip install 'reprex[ray]'): {exc}") from None
    if ray.is_initialized():
        return ray
    import logging

    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    if address not in (None, "local", "auto"):
        _reachable(address)
    if address not in (None, "local"):
        try:
            ray.init(address=address, **quiet)
            return ray
        except ConnectionError as exc:
            if address != "auto":
                raise ScaleError(f"cannot reach the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
        except Exception as exc:  # a malformed address, a version mismatch
            raise ScaleError(f"cannot connect to the Ray cluster at {address}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    from reprex.scale.node import node_resources

    try:
        ray.init(address="local", include_dashboard=False, resources=node_resources(), **quiet)
    except Exception as exc:
        raise ScaleError(f"cannot start a local Ray cluster: {type(exc).__name__}: {first_line(exc)}") from None
    return ray


def _reachable(address: str, timeout: float = 5.0) -> None:
    """A HOST:PORT that doesn't answer, said in one line at once (Ray itself retries for
    half a minute, logging each try)."""
    import re
    import socket

    m = re.fullmatch(r"(?:ray://)?\[?([^\[\]]+?)\]?:(\d{1,5})", address)
    if not m:
        return
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout).close()
    except OSError as exc:
        raise ScaleError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def wait(ray, refs: list, **kw):
    """ray.wait, with a signal handler's exception (Ctrl-C as reprex's Interrupted) raised as
    itself: Ray's wait checks signals in Cython and wraps it in a SystemError."""
    try:
        return ray.wait(refs, **kw)
    except SystemError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, BaseException) and not isinstance(cause, Exception):
            raise cause.with_traceback(None) from None
        raise


def nodes(ray) -> list[dict]:
    return ray.nodes()


def node_info(nodes: list[dict], node_id: str) -> dict:
    return next((n for n in nodes if n.get("NodeID") == node_id), {})


def alive(nodes: list[dict], node_id: str) -> bool:
    info = node_info(nodes, node_id)
    return bool(info.get("Alive") or info.get("alive"))


def first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
