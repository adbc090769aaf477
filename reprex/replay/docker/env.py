"""What prepare() hands run() and close(): the environment image and what was granted.

Its own module so that images, build and cleanup can name the type without importing the
backend that uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reprex.replay.base import Progress
from reprex.replay.docker.daemon import sdk_client
from reprex.replay.docker.engine import Engine
from reprex.replay.shadow import Replaced
from reprex.replay.wheels import WheelSet


@dataclass
class DockerEnv:
    engine: Engine
    tag: str
    base_image: str
    base_id: str
    image_id: str
    machine: str
    gpus: str | None
    network: str
    reused: bool
    progress: Progress
    init: bool = True  # docker's init (tini) as pid 1: signals forwarded, zombies reaped
    with_set: WheelSet | None = None
    replaced: Replaced | None = None  # the bundle's copies of what a local --with path provides: not mounted
    kept: list[str] = field(default_factory=list)
    scratch: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for the verdict's reason (an ask not granted)
    sdk: object = None  # the docker SDK client, made only to pull
    hold: object = None  # the shared in-use lock on the env image (fsutil.hold_in_use), closed by close()

    @property
    def client(self):
        if self.sdk is None:
            self.sdk = sdk_client(self.engine)
        return self.sdk
