"""Ctrl-C during `reprex bisect`: it stops within seconds, with --jobs 1 and --jobs N, on the
local and docker backends; the probes' processes and containers go with it, the bundle is left
as it was, and one line says what was learned (the current good/bad bounds), exit 130.

The bundle is real (tests/test_bisect_cli.py's capture of itsdangerous 2.1.2 from the loopback
index); its script sleeps 60 s under any other release before failing, so every probe is slow
while the bundle's own replay (the calibration) is quick. The sleeping program renames itself
(/proc/self/comm) to a marker of this test, so it can be found wherever it runs (a venv on the
host, or a container, whose processes the host's /proc lists too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from bisect_index import FileCache, IndexServer, cache_dir
from test_bisect_cli import RELEASES, _capture

SLOW = """\
import time
from importlib.metadata import version

if version("itsdangerous") != "2.1.2":
    try:
        with open("/proc/self/comm", "w") as fh:
            fh.write({marker!r})
    except OSError:
        pass
    time.sleep(60)
from itsdangerous import TimedJSONWebSignatureSerializer
"""


@pytest.fixture(scope="module")
def slow_case(tmp_path_factory):
    index = IndexServer(FileCache(cache_dir())).start()
    try:
        index.add("itsdangerous", RELEASES)
        env = index.environ()
        env["REPREX_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
        marker = "rxslow" + uuid.uuid4().hex[:8]
        bundle = _capture(env, tmp_path_factory.mktemp("slow-case"), SLOW.format(marker=marker))
        yield {"bundle": bundle, "env": env, "marker": marker}
    finally:
        index.stop()


def _procs() -> dict[int, tuple[str, int, bytes]]:
    """pid -> (comm, parent pid, cmdline) of every process this host lists."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if state != "Z":  # a zombie holds nothing; its parent reaps it
            out[int(entry)] = (comm, ppid, cmdline)
    return out


def _descendants(root: int, procs: dict) -> set[int]:
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (_, ppid, _) in procs.items() if ppid in frontier} - found
        found |= frontier
    return found


def _until(what: str, check, timeout: float, proc: subprocess.Popen, stderr: list[str]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"{what} did not happen (exit {proc.poll()}); stderr:\n{''.join(stderr)[-3000:]}")


def _containers(docker_client) -> set[str]:
    return {c.id for c in docker_client.containers.list(all=True, filters={"label": "org.reprex"})}


@pytest.mark.parametrize("backend, jobs", [("local", 1), ("local", 2), ("docker", 2)])
def test_ctrl_c_stops_the_probes_says_the_bounds_and_exits_130(slow_case, backend, jobs, request, tmp_path):
    docker_client = request.getfixturevalue("docker_client") if backend == "docker" else None
    image = request.getfixturevalue("base_image") if docker_client is not None else None
    before_containers = _containers(docker_client) if docker_client else set()
    bundle: Path = slow_case["bundle"]
    original = bundle.read_bytes()
    argv = [sys.executable, "-m", "reprex", "bisect", str(bundle), "--package", "itsdangerous",
            "--backend", backend, "--jobs", str(jobs), "--timeout", "300"]
    if image:
        argv += ["--image", image]
    tmp = tmp_path / "tmp"  # the run's temp files (probe bundles, records, inputs): none may be left
    tmp.mkdir()
    proc = subprocess.Popen(argv, env={**slow_case["env"], "TMPDIR": str(tmp)}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        # the probes are under way (progress says so), then their programs are asleep
        _until("a probe's replay", lambda: any(": replaying" in l and "probe itsdangerous" in l for l in stderr),
               600, proc, stderr)
        marker = slow_case["marker"]
        sleepers = _until(f"{jobs} sleeping probe(s)",
                          lambda: {p for p, (comm, _, _) in _procs().items() if comm == marker}
                          if len([1 for comm, _, _ in _procs().values() if comm == marker]) >= jobs else None,
                          600, proc, stderr)
        procs = _procs()
        ours = _descendants(proc.pid, procs)  # the runners, their installers and runs (docker: the CLI's side)
        running = _containers(docker_client) - before_containers if docker_client else set()
        if docker_client:
            assert running, "the docker probes' containers were not found"
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        took = time.monotonic() - interrupted
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(stderr)
    assert proc.returncode == 130, text[-3000:]
    assert took < 20, f"took {took:.1f}s to stop after Ctrl-C (the probes sleep 60 s)"
    assert "Traceback" not in text, text[-3000:]
    last = text.strip().splitlines()[-1]
    assert last.startswith("reprex: interrupted by SIGINT;") and "nothing written" in last, last
    assert "so far: itsdangerous 2.1.2 is bad" in last or "so far: itsdangerous broke after" in last, last
    assert f"{len([1 for l in stderr if ': good (' in l or ': bad (' in l or ': skip (' in l])} probe" in last, last
    assert proc.stdout.read() == ""  # no result printed: the search did not end
    # nothing half-done: the bundle is as it was, no temp file of the run's is left
    assert bundle.read_bytes() == original
    assert not [p.name for p in tmp.iterdir() if p.name.startswith(("reprex-", ".reprex-"))]
    # nothing left running: the sleeping programs, this run's processes, its containers
    time.sleep(0.5)  # a killed orphan is reaped by init
    left = _procs()
    assert not [p for p, (comm, _, _) in left.items() if comm == marker], "a probe's program is still running"
    assert sleepers and not (set(left) & sleepers)
    assert not (set(left) & ours), [left[p][2][:200] for p in set(left) & ours]
    if docker_client:
        assert not (_containers(docker_client) & running), "a probe's container was left behind"


def test_the_bounds_line_names_the_last_good_and_first_bad_so_far():
    """What the interrupted search knew, from the probes logged (skips and the bundle's own replay
    are no bound), with the flags that start it again from there."""
    from reprex.bisect.index import Release
    from reprex.bisect.interim import so_far
    from reprex.bisect.modes import ReleasePlan
    from reprex.bisect.oracle import Probe
    from reprex.bisect.releases import Listing

    versions = ["1.0", "1.1", "1.2", "1.3", "1.4", "2.0"]
    plan = ReleasePlan(name="pkg", listing=Listing("pkg", [Release(v) for v in versions], []), bad="2.0",
                       good=None, bad_i=5, good_i=None)
    own = Probe("the bundle's own pins", "bad", "reproduced")
    probes = [own, Probe("pkg 1.1", "good", "fixed"), Probe("pkg 1.4", "bad", "reproduced"),
              Probe("pkg 1.2", "skip", "different"), Probe("pkg 1.0", "good", "fixed")]
    assert so_far(probes, plan) == ("so far: pkg broke after 1.1, by 1.4 (2 releases in between); 4 probes judged "
                                    "(2 good, 1 bad, 1 skipped) (resume with --good 1.1 --bad 1.4)")
    assert so_far([own, Probe("pkg 1.3", "good", "fixed"), Probe("pkg 1.4", "bad", "reproduced")], plan).startswith(
        "so far: pkg broke after 1.3, by 1.4 (first bad pkg 1.4)")
    assert so_far([own], plan) == "so far: pkg 2.0 is bad, no good release found yet; 0 probes judged " \
                                  "(0 good, 0 bad, 0 skipped)"
    assert so_far([own, Probe("good + pkg 2.0", "bad", "reproduced")]) == \
        "so far: 1 probe judged (0 good, 1 bad, 0 skipped)"
