"""The docker replay backend, one module per job (see backend.py for how a replay runs).

    daemon    finding the daemon like the docker CLI does; connect(), the SDK for pulls
    engine    the Engine API over the socket, standard library only
    images    the image table, CUDA/driver choice, the GPU grant, pulls
    build     the environment image: one root container (templates/docker-build.sh, no network)
              over the wheels, uv and recorder, committed with the image's config
    inputs    the work files into the container (bind mount or archive)
    stream    the run's output and record, split from one attach stream
    layout    paths, uid, labels and the run/dump scripts host and container share
    backend   DockerBackend: prepare() and run()
    cleanup   remove_run(), sweep(), cleanup(): what replays leave behind
    watchdog  the host-side backstop that removes a container if reprex dies

Importing this package imports the backend; reprex.replay imports it only when a replay
asks for Docker, so the CLI starts without it.
"""

from reprex.replay.docker.backend import DockerBackend
from reprex.replay.docker.env import DockerEnv
from reprex.replay.docker.cleanup import cleanup, sweep
from reprex.replay.docker.daemon import connect, daemon_endpoint
from reprex.replay.docker.layout import ENV_REPO, LABEL

__all__ = ["DockerBackend", "DockerEnv", "cleanup", "sweep", "connect", "daemon_endpoint", "ENV_REPO", "LABEL"]
