"""The host-side watchdog's own process (started by watchdog.watch, never imported by reprex).

Run as `python -I -S watchdog_child.py ENGINE_PY ENDPOINT_JSON CONTAINER_ID DEADLINE_S` with a
pipe from reprex on stdin: "done" ends it; the pipe closing without it (reprex died) removes
the container; the deadline passing first kills it. Standard library only, and engine.py is
loaded by path: a detached process outlives the interpreter state it came from.
"""

import importlib.util
import json
import os
import select
import sys


def engine(engine_py: str, endpoint: dict):
    spec = importlib.util.spec_from_file_location("_reprex_watchdog_engine", engine_py)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    tls = endpoint["tls_dir"]
    e = mod.Engine(endpoint["host"], tls_dir=mod.Path(tls) if tls else None, tls_verify=endpoint["verify"],
                   timeout=30)
    e.ping(10)
    return e


def main(argv: list[str]) -> int:
    engine_py, endpoint, cid, deadline = argv[0], json.loads(argv[1]), argv[2], float(argv[3])
    if os.fork():  # reprex's own child leaves at once: a Ray worker's death kills its children, not a grandchild
        return 0
    timeout = deadline
    while True:
        ready = select.select([0], [], [], timeout)[0]
        if not ready:  # past the deadline: stop it (reprex, if alive, still removes it)
            try:
                engine(engine_py, endpoint).kill(cid)
            except Exception:
                pass
            timeout = None
            continue
        data = os.read(0, 64)
        if data.startswith(b"done"):
            return 0
        if not data:  # reprex is gone without a word: nobody else will remove the container
            try:
                engine(engine_py, endpoint).remove(cid)
            except Exception:
                pass
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
