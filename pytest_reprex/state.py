"""The plugin's per-session state, apart from the hooks: plugin.py (the hooks) and items.py
(the collected bundles) both read it, and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pytest_reprex import options as opts

@dataclass
class State:
    collect: bool = True
    cli_layer: dict = field(default_factory=dict)
    ini_layer: dict = field(default_factory=dict)
    docker: tuple | None = None  # (reachable, why) once asked
    docker_bundles: set = field(default_factory=set)  # ids of bundles replayed on a backend other than local
    verdicts: dict = field(default_factory=dict)
    nodes: dict = field(default_factory=dict)  # Ray node -> bundles it replayed (--reprex-ray)
    capture: object = None  # pytest_reprex.capture.CaptureState when --reprex-capture is given
    bundles: list = field(default_factory=list)  # (nodeid, path, reproduces, error, mode) seen in reports
    capture_errors: list = field(default_factory=list)
    same_as: dict = field(default_factory=dict)  # captured node id -> failing node ids with its signature
    uncaptured: set = field(default_factory=set)  # failing node ids past --reprex-capture-max
    pass_env: dict = field(default_factory=dict)  # --reprex-env / ini reprex_env: never from a bundle


STATE = pytest.StashKey[State]()

FIXTURE_RESULTS = pytest.StashKey[list]()  # (result, expect, source) of each reprex_replay() call


def state_of(config) -> State:
    state = config.stash.get(STATE, None)
    if state is None:
        state = State()
        config.stash[STATE] = state
    return state


def docker_status(state: State) -> tuple:
    if state.docker is None:
        try:
            from reprex.replay import docker_available

            state.docker = docker_available()
        except Exception as exc:  # never let the probe itself break a session
            state.docker = (False, f"{type(exc).__name__}: {exc}")
    return state.docker


def sandboxed_backend(state: State, backend: str, name: str) -> str:
    """The backend a replay really uses. `auto` means Docker when reachable and never falls
    back to the host: a collected bundle may be a stranger's, and the local backend runs its
    code here. Without Docker the replay is skipped (failed under CI=true); `local` is
    chosen only by the user (command line, ini, sidecar, marker or fixture keyword)."""
    if backend == "local":
        return backend
    ok, why = docker_status(state)
    if ok:
        return "docker"
    if backend == "docker":
        message = f"reprex {name}: the docker backend was asked for, but Docker is unreachable: {why}"
    else:
        message = (f"reprex {name}: Docker is unreachable ({why}); bundles replay only in a container unless "
                   "you choose --reprex-backend local, which runs the bundle's code on this host (for bundles "
                   "you trust)")
    if opts.in_ci():
        pytest.fail(message + " (CI=true: failing instead of skipping)", pytrace=False)
    try:
        raise pytest.skip.Exception(message, _use_item_location=True)
    except TypeError:  # pytest without the private flag
        raise pytest.skip.Exception(message) from None
