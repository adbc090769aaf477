"""Replay at scale on a real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster):
a head that runs nothing and worker nodes that each advertise their own reprex resources.

* bundles land on nodes that can run them (architecture), a GPU bundle with no GPU node is
  env-incompatible at once, and a bundle follows its environment (lock hash) to its node;
* killing a worker node mid-run loses no result: the lost task runs again elsewhere, or is
  an infra-error naming the node when no retry is left; bundles only that node could run are
  said within seconds, not after their replays' time, and no replay's container outlives it;
* `--resume` continues a stopped run (a cut line in the results file is not a result);
* Ctrl-C on `reprex replay --ray` cancels the task and leaves no container.

Replays are real docker replays of one captured bundle (one environment image for all), its
script swapped per test. 2 cores: every node has one CPU, the head none.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from reprex.bundle import Bundle  # noqa: E402
from reprex.capture.pipeline import CaptureOptions, capture_command  # noqa: E402
from reprex.replay import ReplayOptions  # noqa: E402
from reprex.scale import results as results_file  # noqa: E402
from reprex.scale.dispatch import SOFT_CANCEL_S, replay_many, replay_remote  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.docker]
PY = sys.executable
X86 = {"reprex_docker": 1, "reprex_arch_x86_64": 1}
ARM = {"reprex_docker": 1, "reprex_arch_aarch64": 1}  # says it's an arm node: where arm bundles must go

APP = """
import time


def main():
    time.sleep({sleep})
    raise RuntimeError("boom {tag}")


main()
"""


def script(sleep: float = 0, tag: str = "") -> str:
    return textwrap.dedent(APP).format(sleep=sleep, tag=tag)


@pytest.fixture(scope="module")
def cluster(ray_available, docker_client, cache):
    from ray.cluster_utils import Cluster

    ray = ray_available
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = {"x86": c.add_node(num_cpus=1, resources=X86), "x86b": c.add_node(num_cpus=1, resources=X86),
             "arm": c.add_node(num_cpus=1, resources=ARM)}
    ray.init(address=c.address, log_to_driver=False)
    c.wait_for_nodes()
    c.named = nodes
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def base(tmp_path_factory, cache) -> Bundle:
    work = tmp_path_factory.mktemp("app")
    (work / "app.py").write_text(script(tag="base"))
    result = capture_command([PY, "app.py"], CaptureOptions(tee=False, timeout=120), cwd=str(work))
    assert result.bundle is not None, result.message
    return result.bundle


def variant(bundle: Bundle, body: str, *, machine: str | None = None, gpu: bool = False) -> Bundle:
    """The bundle with its script swapped (same pins: same environment), or another
    recorded machine, or a recorded GPU run."""
    manifest = copy.deepcopy(bundle.manifest)
    files = dict(bundle.files)
    files["files/app.py"] = body.encode()
    if machine:
        manifest["platform"]["machine"] = machine
    if gpu:
        manifest["gpu"] = {"count": 1, "models": ["NVIDIA H100"], "driver": "550.54", "compute_capabilities": ["9.0"],
                           "cuda": "12.4"}
        env = json.loads(files["environment.json"])
        env["cuda"] = {"status": "ok", "value": {"frameworks": {"torch": {"cuda": "12.4"}}}, "error": None}
        files["environment.json"] = json.dumps(env).encode()
    return Bundle(manifest=manifest, files=files).finalize()


def write(tmp: Path, name: str, bundle: Bundle) -> str:
    return str(bundle.write(tmp / f"{name}.reprex.zip"))


@pytest.fixture
def options(base_image) -> ReplayOptions:
    return ReplayOptions(backend="docker", image=base_image, timeout=120)


def node_of(cluster, name: str) -> str:
    return cluster.named[name].node_id


def lines(path: Path) -> list[dict]:
    return list(results_file.read(path))


# -- placement ------------------------------------------------------------------------

def test_bundles_land_on_nodes_that_can_run_them(cluster, base, options, tmp_path):
    x86 = write(tmp_path, "x86", variant(base, script(tag="x86")))
    arm = write(tmp_path, "arm", variant(base, script(tag="arm"), machine="aarch64"))
    gpu = write(tmp_path, "gpu", variant(base, script(tag="gpu"), gpu=True))
    out = tmp_path / "results.jsonl"
    started = time.monotonic()
    got = {Path(r.bundle).name.split(".")[0]: r for r in replay_many([x86, arm, gpu], options, results=out)}

    assert got["x86"].verdict == "reproduced", got["x86"]
    assert got["x86"].node in (node_of(cluster, "x86"), node_of(cluster, "x86b"))
    assert got["x86"].result["backend"] == "docker" and got["x86"].attempts == 1
    assert got["arm"].node == node_of(cluster, "arm"), got["arm"]  # the only node that says aarch64
    # no node has a GPU: said at once, nothing submitted
    assert got["gpu"].verdict == "env-incompatible" and got["gpu"].attempts == 0 and not got["gpu"].node, got["gpu"]
    assert got["gpu"].reason.startswith("no node in the cluster can run it"), got["gpu"].reason
    assert "GPU" in got["gpu"].reason
    assert time.monotonic() - started < 120
    assert {row["bundle_id"] for row in lines(out)} == {r.bundle_id for r in got.values()}


def test_a_gpu_bundle_goes_to_the_gpu_node_and_a_cpu_bundle_takes_no_gpu(cluster, base, options, tmp_path):
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1, resources=X86)  # Ray's word only: no device here
    cluster.wait_for_nodes()
    try:
        gpu = write(tmp_path, "gpu", variant(base, script(tag="gpu2"), gpu=True))
        cpu = write(tmp_path, "cpu", variant(base, script(tag="cpu2")))
        granted = ReplayOptions(**{**options.__dict__, "gpus": "1"})
        got = {Path(r.bundle).name.split(".")[0]: r for r in replay_many([gpu, cpu], granted)}
    finally:
        cluster.remove_node(gpu_node)
    assert got["gpu"].node == gpu_node.node_id and got["gpu"].attempts == 1, got["gpu"]
    # the grant was not applied to the CPU bundle: no device asked of a daemon that has none
    assert got["cpu"].verdict == "reproduced", got["cpu"]


def test_a_node_advertises_what_it_can_run():
    run = subprocess.run([PY, "-m", "reprex.scale.node"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    advertised = json.loads(run.stdout)
    import platform

    from reprex.replay.target import uname_machine

    assert advertised == {f"reprex_arch_{uname_machine(platform.machine())}": 1.0, "reprex_docker": 1.0}


def test_a_bundle_no_node_has_the_arch_for_is_env_incompatible(cluster, base, options, tmp_path):
    riscv = write(tmp_path, "riscv", variant(base, script(tag="riscv"), machine="riscv64"))
    [r] = replay_many([riscv], options)
    assert r.verdict == "env-incompatible" and "reprex_arch_riscv64" in r.reason, r.reason


def test_a_bundle_follows_its_environment_to_the_node_that_has_it(cluster, base, options, tmp_path):
    out = tmp_path / "results.jsonl"
    [first] = replay_many([write(tmp_path, "first", variant(base, script(tag="first")))], options, results=out)
    assert first.verdict == "reproduced" and first.lock_hash, first
    for i in range(3):  # each alone: a free preferred node takes it (a 1 in 3**3 chance otherwise)
        [again] = replay_many([write(tmp_path, f"again{i}", variant(base, script(tag=f"again{i}")))], options,
                              results=out, resume=True)
        assert again.lock_hash == first.lock_hash
        assert again.node == first.node, (i, again.node, first.node)


# -- faults ---------------------------------------------------------------------------

def _kill_where_started(cluster, handle_box: dict, names, killed: dict) -> None:
    """A thread: once the named bundle's task (the first of several names to start) has
    started, SIGKILL its node's processes; `killed` says which node, which bundle and when."""
    names = (names,) if isinstance(names, str) else tuple(names)
    end = time.monotonic() + 180
    while time.monotonic() < end:
        for name in names:
            handle = handle_box.get(name)
            node = handle.started_on() if handle is not None else None
            if node:
                time.sleep(2)  # into the replay: the container runs
                victim = next(n for n in cluster.list_all_nodes() if n.node_id == node)
                killed.update(node=node, name=name)
                cluster.remove_node(victim, allow_graceful=False)
                killed["at"] = time.monotonic()
                return
        time.sleep(0.2)


def test_killing_a_worker_node_mid_run_loses_no_result(cluster, base, options, tmp_path, docker_client):
    spare = cluster.add_node(num_cpus=1, resources=X86)  # what the killed node leaves for later tests
    cluster.wait_for_nodes()
    slow_bundle = variant(base, script(sleep=12, tag="slow"))
    bundles = [write(tmp_path, "slow", slow_bundle)] + \
        [write(tmp_path, f"fast{i}", variant(base, script(tag=f"fast{i}"))) for i in range(3)]
    out = tmp_path / "results.jsonl"
    handles, killed = {}, {}
    on_submit = lambda h: handles.__setitem__(Path(h.bundle).name.split(".")[0], h)  # noqa: E731
    killer = threading.Thread(target=_kill_where_started, args=(cluster, handles, "slow", killed), daemon=True)
    killer.start()
    got = replay_many(bundles, options, results=out, on_submit=on_submit)
    killer.join(5)

    assert killed.get("node"), "the slow bundle's node was never killed"
    by_name = {Path(r.bundle).name.split(".")[0]: r for r in got}
    slow = by_name["slow"]
    assert slow.verdict == "reproduced" and slow.attempts == 2, slow
    assert slow.node != killed["node"]  # run again elsewhere
    assert all(by_name[f"fast{i}"].verdict == "reproduced" for i in range(3)), by_name
    rows = lines(out)
    assert sorted(r["bundle_id"] for r in rows) == sorted({r.bundle_id for r in got}) and len(rows) == 4
    # the killed replay's container went with it (the host watchdog removed it)
    assert _no_containers(docker_client, slow_bundle.id), "a killed replay left its container"
    assert spare.node_id


def test_a_task_lost_with_no_retry_left_is_infra_error_naming_the_node(cluster, base, options):
    spare = cluster.add_node(num_cpus=1, resources=X86)
    cluster.wait_for_nodes()
    bundle = variant(base, script(sleep=30, tag="doomed"))
    handle = replay_remote(bundle.to_zip_bytes(), options, source="doomed", max_retries=0)
    killed: dict = {}
    _kill_where_started(cluster, {"doomed": handle}, "doomed", killed)
    r = handle.result(timeout=120)
    assert r.verdict == "infra-error" and r.attempts == 1, r
    assert r.node == killed["node"] and killed["node"] in r.reason, r.reason
    assert "died" in r.reason, r.reason
    assert spare.node_id


def test_bundles_waiting_for_a_node_that_dies_are_not_waited_for_forever(cluster, base, options, tmp_path,
                                                                       docker_client):
    """The only s390x node dies with one s390x replay running and one queued behind it: the
    lost one can't run again anywhere and the queued one never will; both are said, not hung,
    and the lost replay's container doesn't outlive its node."""
    only = cluster.add_node(num_cpus=1, resources={"reprex_docker": 1, "reprex_arch_s390x": 1})
    cluster.wait_for_nodes()
    bundles = {name: variant(base, script(sleep=600, tag=f"s390x-{name}"), machine="s390x") for name in "ab"}
    paths = [write(tmp_path, name, b) for name, b in bundles.items()]
    patient = ReplayOptions(**{**options.__dict__, "timeout": 900})  # a replay left alone would run its 600 s
    handles, killed = {}, {}
    on_submit = lambda h: handles.__setitem__(Path(h.bundle).name.split(".")[0], h)  # noqa: E731
    # whichever Ray starts first is the running one (waiting for "a" would wait for "b"'s whole replay)
    killer = threading.Thread(target=_kill_where_started, args=(cluster, handles, ("a", "b"), killed), daemon=True)
    killer.start()
    when: dict = {}  # bundle -> seconds after the kill its result came
    on_result = lambda r: when.__setitem__(Path(r.bundle).name.split(".")[0],  # noqa: E731
                                           round(time.monotonic() - killed.get("at", float("inf")), 1))
    got = {Path(r.bundle).name.split(".")[0]: r for r in replay_many(paths, patient, on_submit=on_submit,
                                                                      on_result=on_result)}
    killer.join(5)
    assert killed.get("node") == only.node_id
    running, queued = killed["name"], "b" if killed["name"] == "a" else "a"
    # neither waited for its 600 s sleep, nor forever (about 2 s on an idle machine; room for a loaded one)
    assert 0 <= max(when.values()) < 120, when
    for name in (running, queued):
        assert got[name].verdict == "env-incompatible", got[name]
        assert "no node in the cluster can run it" in got[name].reason and "reprex_arch_s390x" in got[name].reason
    assert "any more" in got[running].reason and only.node_id in got[running].reason, got[running].reason
    assert got[queued].attempts == 1 and not got[queued].node, got[queued]  # it never ran
    # the orphaned replay unwound itself (its parent watch) instead of sleeping on
    assert _no_containers(docker_client, bundles[running].id), "the lost replay's container outlived its node"


def test_a_replay_whose_node_is_force_stopped_leaves_no_container(cluster, base, options, docker_client):
    """`ray stop --force` on a node (or anything that SIGKILLs its raylet and workers at once):
    no Ray process is left to clean up, and the replay process, orphaned, unwinds itself (its
    container removed) instead of replaying on for its whole timeout."""
    node = cluster.add_node(num_cpus=1, resources={"reprex_docker": 1, "reprex_arch_ppc64le": 1})
    cluster.wait_for_nodes()
    bundle = variant(base, script(sleep=600, tag="orphan"), machine="ppc64le")
    patient = ReplayOptions(**{**options.__dict__, "timeout": 900})  # left alone it would run its 600 s
    handle = replay_remote(bundle.to_zip_bytes(), patient, source="orphan", max_retries=0)
    label = {"label": f"org.reprex.bundle={bundle.id}"}
    end = time.monotonic() + 180
    while time.monotonic() < end and not docker_client.containers.list(filters=label):
        time.sleep(0.5)
    assert docker_client.containers.list(filters=label), "the replay's container never started"
    raylet = node.all_processes["raylet"][0].process.pid
    [worker] = [pid for pid in _children(raylet) if b"replay_bundle" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    # both at once: the raylet can't kill the worker's process group, nor the worker its children
    os.kill(raylet, signal.SIGKILL)
    os.kill(worker, signal.SIGKILL)
    cluster.remove_node(node, allow_graceful=False)  # the node's other processes
    r = handle.result(timeout=120)
    assert r.verdict == "infra-error" and node.node_id in r.reason and "died" in r.reason, r
    assert _no_containers(docker_client, bundle.id), "a replay whose node was force-stopped left its container"


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            pass
    return out


def _no_containers(docker_client, bundle_id: str, seconds: float = 60) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not docker_client.containers.list(all=True, filters={"label": f"org.reprex.bundle={bundle_id}"}):
            return True
        time.sleep(0.5)
    return False


# -- resume -----------------------------------------------------------------------------

def test_resume_continues_a_stopped_run(cluster, base, options, tmp_path):
    bundles = [write(tmp_path, f"b{i}", variant(base, script(tag=f"resume{i}"))) for i in range(4)]
    out = tmp_path / "results.jsonl"

    class Stop(Exception):
        pass

    def stop_after_two(result):
        if len(lines(out)) >= 2:
            raise Stop()

    with pytest.raises(Stop):
        replay_many(bundles, options, results=out, on_result=stop_after_two)
    first = lines(out)
    assert len(first) == 2
    with open(out, "ab") as fh:  # a run killed mid-write leaves a cut line
        fh.write(b'{"bundle_id": "cut-short", "verd')

    again: list = []
    got = replay_many(bundles, options, results=out, resume=True, on_result=again.append)
    done_before = {row["bundle_id"] for row in first}
    assert len(again) == 2 and not {r.bundle_id for r in again} & done_before
    assert sorted(r.resumed for r in got) == [False, False, True, True]
    rows = lines(out)
    assert len(rows) == 4 and len({row["bundle_id"] for row in rows}) == 4
    assert all(row["verdict"] == "reproduced" for row in rows)


def test_cli_replays_a_directory_and_resume_replays_nothing_twice(cluster, base, base_image, tmp_path):
    corpus = tmp_path / "corpus"
    for i in range(2):
        write(corpus, f"c{i}", variant(base, script(tag=f"cli{i}")))
    (corpus / "junk.zip").write_bytes(b"not a zip")
    out = tmp_path / "results.jsonl"
    cmd = [PY, "-m", "reprex", "replay", str(corpus), "--ray", cluster.address, "--image", base_image,
           "--results", str(out), "--json"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 3, first.stderr  # the junk is an infra-error; the highest exit wins
    doc = json.loads(first.stdout)
    verdicts = sorted(r["verdict"] for r in doc["results"])
    assert verdicts == ["infra-error", "reproduced", "reproduced"], doc
    assert doc["summary"]["verdicts"] == {"reproduced": 2, "infra-error": 1}
    assert {n["node"] for n in doc["summary"]["nodes"]} - {"-"}
    assert "Traceback" not in first.stderr

    again = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    doc = json.loads(again.stdout)
    resumed = sorted((r["verdict"], r["resumed"]) for r in doc["results"])
    # the unreadable one has no id to resume by: it is read (and refused) again, never replayed
    assert resumed == [("infra-error", False), ("reproduced", True), ("reproduced", True)], doc
    assert len(out.read_text().splitlines()) == 4  # the junk's line each time; the two replays once
    assert len(lines(out)) == 2  # a line without an id is no result to resume by


# -- Ctrl-C -----------------------------------------------------------------------------

def test_ctrl_c_cancels_and_leaves_no_container(cluster, base, base_image, tmp_path, docker_client):
    slow = variant(base, script(sleep=120, tag="interrupted"))
    path = write(tmp_path, "slow", slow)
    out = tmp_path / "results.jsonl"
    proc = subprocess.Popen([PY, "-m", "reprex", "replay", path, "--ray", cluster.address, "--image", base_image,
                             "--results", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 180
        label = {"label": f"org.reprex.bundle={slow.id}"}
        while time.monotonic() < end and not docker_client.containers.list(filters=label):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.5)
        assert docker_client.containers.list(filters=label), "the replay's container never started"
        proc.send_signal(signal.SIGINT)
        asked = time.monotonic()
        _, err = proc.communicate(timeout=90)
        took = time.monotonic() - asked
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "cancelled and cleaned up" in err and "Traceback" not in err, err
    # the task unwound its replay (SIGTERM to the replay process), not killed after SOFT_CANCEL_S
    assert took < SOFT_CANCEL_S - 5, took
    assert _no_containers(docker_client, slow.id), "Ctrl-C left the replay's container"
    assert lines(out) == []  # a cancelled replay is no result: --resume runs it again


# -- the CLI without a cluster ------------------------------------------------------------

def test_several_bundles_need_ray(tmp_path):
    run = subprocess.run([PY, "-m", "reprex", "replay", "a.zip", "b.zip"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "need --ray" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run([PY, "-m", "reprex", "replay", "a.zip", "--ray", "--resume"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and "--resume needs --results" in run.stderr


def test_ray_takes_an_address_or_leaves_the_bundle_alone():
    from reprex.scale.command import split_ray_value

    assert split_ray_value("auto", ("a.zip",)) == ("auto", ("a.zip",))
    assert split_ray_value("10.0.0.5:6379", ("a.zip",)) == ("10.0.0.5:6379", ("a.zip",))
    assert split_ray_value("ray://head:10001", ()) == ("ray://head:10001", ())
    assert split_ray_value("a.zip", ("b.zip",)) == ("auto", ("a.zip", "b.zip"))
    assert split_ray_value("corpus", ()) == ("auto", ("corpus",))
