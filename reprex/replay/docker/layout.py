"""What the host and the container agree on: paths, the run's uid, labels, the record's files,
and the two scripts that run inside (reprex/templates/docker-run.sh, docker-dump.sh).

One module so that build, run and cleanup can't drift apart: the image lays these paths out
(templates/docker-build.sh), the backend mounts and names them, the run script writes the record from
them and the stream parser reads it back with the same caps.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

from reprex.bundle import Bundle
from reprex.replay.base import DEFAULT_TIMEOUT, ReplayOptions, refused

ENV_REPO = "reprex-env"
LABEL = "org.reprex"
VENV = "/opt/reprex/venv"
INJECT = "/opt/reprex/inject"
FACTS = "/opt/reprex/facts.json"
IN_DIR = "/reprex/in"
RECORD_DIR = "/reprex/record"
WORK_DIR = "/tmp/work"
UID = 10001
PATH = f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin"
# What the host takes of the record (the program can write there too): these names, at
# most this many bytes of each; facts.json is the image's, written at build time.
RECORD_FILES = {"claim": 64, "events.jsonl": 32 << 20, "fault.log": 16 << 20, "facts.json": 4 << 20}
RECORD_PATHS = {"claim": f"{RECORD_DIR}/claim", "events.jsonl": f"{RECORD_DIR}/events.jsonl",
                "fault.log": f"{RECORD_DIR}/fault.log", "facts.json": FACTS}
RECORD_MAGIC = b"\x1e[reprex-record "
# The run script's watchdog ends the container this long after the replay's timeout, when
# reprex (which handles the timeout itself, with a stack dump) is no longer there to do it.
WATCHDOG_MARGIN_S = 10
BUNDLE_ID = re.compile(r"[0-9a-f]{64}")


@lru_cache(maxsize=1)
def run_script() -> str:
    """The container's command: `sh -c run_script() sh NONCE WATCHDOG_S record_emit() PYTHON ARGS...`."""
    from reprex.templates import template_text

    return template_text("docker-run.sh")


@lru_cache(maxsize=1)
def dump_script() -> str:
    """Exec'd in the container on a timeout: the recorded process's stack dump, then its kill."""
    from reprex.templates import template_text

    return template_text("docker-dump.sh")


def record_emit() -> str:
    """The run script's third argument: the record's files as name:path:cap words."""
    return " ".join(f"{name}:{RECORD_PATHS[name]}:{cap}" for name, cap in RECORD_FILES.items())


def bundle_label(bundle: Bundle) -> str:
    """The bundle's id, for labels and container names: a sha256 or nothing."""
    if not isinstance(bundle.id, str) or not BUNDLE_ID.fullmatch(bundle.id):
        raise refused("id", bundle.id, "is not a sha256 content id")
    return bundle.id


def watchdog_s(options: ReplayOptions) -> int:
    """When the run script's watchdog ends the container: after the replay's own timeout
    handling had its chance."""
    return math.ceil(options.timeout or DEFAULT_TIMEOUT) + WATCHDOG_MARGIN_S
