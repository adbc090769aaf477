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
from test_bisect_cli import RELEASES, REPRO, _capture

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


def _launch(argv: list[str], env: dict, tmp: Path) -> tuple[subprocess.Popen, list[str]]:
    """`reprex bisect` started with its temp files under `tmp`, its stderr lines gathered as they come."""
    proc = subprocess.Popen(argv, env={**env, "TMPDIR": str(tmp)}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    proc.reader = threading.Thread(target=lambda: stderr.extend(iter(proc.stderr.readline, "")), daemon=True)
    proc.reader.start()
    return proc, stderr


def _ctrl_c(proc: subprocess.Popen, stderr: list[str], wait_s: float = 120) -> float:
    """SIGINT, as Ctrl-C sends it; the seconds until the run ended."""
    interrupted = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"bisect still running {wait_s:.0f} s after Ctrl-C; stderr:\n{''.join(stderr)[-3000:]}")
    took = time.monotonic() - interrupted
    proc.reader.join(timeout=10)
    return took


def _stopped_cleanly(proc: subprocess.Popen, stderr: list[str], bundle: Path, original: bytes, tmp: Path) -> str:
    """Exit 130, no traceback, no result, the bundle as it was, no temp file of the run's left:
    the last line of stderr (the bounds line), checked for its form."""
    text = "".join(stderr)
    assert proc.returncode == 130, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    last = text.strip().splitlines()[-1]
    assert last.startswith("reprex: interrupted by SIGINT;") and "nothing written" in last, last
    assert proc.stdout.read() == ""  # no result printed: the search did not end
    assert bundle.read_bytes() == original
    assert not [p.name for p in tmp.iterdir() if p.name.startswith(("reprex-", ".reprex-"))]
    return last


@pytest.mark.parametrize("backend, jobs, index_url", [("local", 1, False), ("local", 2, False), ("docker", 2, False),
                                                     ("local", 1, True)])
def test_ctrl_c_stops_the_probes_says_the_bounds_and_exits_130(slow_case, backend, jobs, index_url, request,
                                                               tmp_path):
    """(With --index-url every replay is a runner process's, started with the index in its
    environment, the main thread's too: Ctrl-C stops that one as it stops the others.)"""
    docker_client = request.getfixturevalue("docker_client") if backend == "docker" else None
    image = request.getfixturevalue("base_image") if docker_client is not None else None
    before_containers = _containers(docker_client) if docker_client else set()
    bundle: Path = slow_case["bundle"]
    original = bundle.read_bytes()
    argv = [sys.executable, "-m", "reprex", "bisect", str(bundle), "--package", "itsdangerous",
            "--backend", backend, "--jobs", str(jobs), "--timeout", "300"]
    if image:
        argv += ["--image", image]
    if index_url:
        argv += ["--index-url", slow_case["env"]["UV_INDEX_URL"]]
    tmp = tmp_path / "tmp"  # the run's temp files (probe bundles, records, inputs): none may be left
    tmp.mkdir()
    proc, stderr = _launch(argv, slow_case["env"], tmp)
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
        took = _ctrl_c(proc, stderr, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took < 20, f"took {took:.1f}s to stop after Ctrl-C (the probes sleep 60 s)"
    last = _stopped_cleanly(proc, stderr, bundle, original, tmp)
    assert "so far: itsdangerous 2.1.2 is bad" in last or "so far: itsdangerous broke after" in last, last
    assert f"{len([1 for l in stderr if ': good (' in l or ': bad (' in l or ': skip (' in l])} probe" in last, last
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


# -- Ctrl-C while a probe's pins are being resolved (`uv pip compile`) ----------------------------

class StallingIndex(IndexServer):
    """An index that lists every release but never answers for a file of any release other than
    the bundle's own (2.1.2): a resolution that needs one hangs there, as on an index that stopped
    answering. It serves no PEP 658 metadata, so bisect can't tell a release's requirements and
    has every probe resolved by uv (a release whose requirements fit is otherwise installed as is)."""

    def __init__(self, files_from):
        super().__init__(files_from)
        self.stalled: list[str] = []
        self._gate = threading.Event()

    def add(self, *args, **kwargs):
        added = super().add(*args, **kwargs)
        for f in added:
            f.metadata = None
        return added

    def respond(self, path: str, accept: str):
        import re
        from urllib.parse import unquote

        match = re.fullmatch(r"/files/[^/]+/([^/?]+)", unquote(path.split("?", 1)[0]))
        if match and "-2.1.2-" not in match.group(1) and "-2.1.2." not in match.group(1):
            self.stalled.append(path)
            self._gate.wait()  # until stop(): the client gives up first, or is killed
            return 503, "text/plain", b"stopped\n"
        return super().respond(path, accept)

    def start(self) -> "StallingIndex":
        super().start()
        self._server.handle_error = lambda request, address: None  # a killed client's broken pipe
        return self

    def stop(self) -> None:
        self._gate.set()
        super().stop()


@pytest.fixture(scope="module")
def stalling_case(tmp_path_factory):
    index = StallingIndex(FileCache(cache_dir())).start()
    try:
        index.add("itsdangerous", RELEASES)
        env = index.environ()
        env["REPREX_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
        env["UV_HTTP_TIMEOUT"] = "900"  # uv waits on the stalled file far longer than the test does
        bundle = _capture(env, tmp_path_factory.mktemp("stalling-case"), REPRO)
        yield {"bundle": bundle, "env": env, "index": index}
    finally:
        index.stop()


def _resolvers(pids: set[int], procs: dict) -> set[int]:
    """The `uv pip compile` processes among `pids`."""
    return {p for p in pids if p in procs and b"\0compile\0" in procs[p][2] and procs[p][0] == "uv"}


@pytest.mark.parametrize("mode, jobs", [("package", 1), ("package", 2), ("date", 2)])
def test_ctrl_c_kills_a_resolution_that_hangs(stalling_case, mode, jobs, tmp_path):
    """The probes' resolutions hang on the index (the main thread's with --jobs 1, the worker
    threads' with --jobs 2, in both the releases and the dates modes; 2.1.2, the bundle's own pin,
    was uploaded on 2022-03-24, so the dates search's first steps back resolve to 2.1.1): Ctrl-C
    ends the run at once all the same, with no uv process left behind, nothing written, and the
    bounds line."""
    index: StallingIndex = stalling_case["index"]
    bundle: Path = stalling_case["bundle"]
    original = bundle.read_bytes()
    how = ["--package", "itsdangerous"] if mode == "package" else ["--date", "--start", "2022-03-25"]
    argv = [sys.executable, "-m", "reprex", "bisect", str(bundle), *how, "--backend", "local", "--jobs", str(jobs)]
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    stalled_before = len(index.stalled)
    proc, stderr = _launch(argv, stalling_case["env"], tmp)
    try:
        # every running probe's resolution is waiting on the index (jobs of them at once)
        _until(f"{jobs} stalled resolution(s)", lambda: len(index.stalled) - stalled_before >= jobs, 600, proc, stderr)
        resolvers = _until("the uv resolvers", lambda: _resolvers(_descendants(proc.pid, _procs()), _procs()),
                           60, proc, stderr)
        ours = _descendants(proc.pid, _procs())
        took = _ctrl_c(proc, stderr)  # uv itself would wait 900 s on the index
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took < 60, f"took {took:.1f}s to stop after Ctrl-C"
    last = _stopped_cleanly(proc, stderr, bundle, original, tmp)
    assert "so far:" in last and "0 probes judged" in last, last  # a killed resolution is no probe, no skip
    time.sleep(0.5)  # a killed orphan is reaped by init
    left = _procs()
    assert not (set(left) & resolvers), "a uv resolution is still running"
    assert not (set(left) & ours), [left[p][2][:200] for p in set(left) & ours]
