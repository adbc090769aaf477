"""`pytest --reprex-ray ADDRESS` against a real two-node Ray cluster on this machine.

The head advertises no Docker (`reprex_docker` absent), the worker node does: every docker replay
must land on the worker, which the junit report's `reprex_node` property names. pytest (in a
subprocess, as a user runs it; also under two xdist workers) still reports one item per bundle:
reproduced bundles pass, a bundle expected `fixed` fails with the usual report, a malformed
bundle is an ERROR of one line, a GPU bundle is skipped as env-incompatible "no node in the
cluster can run it" (failed under --reprex-strict), and Ctrl-C while a replay runs on the node
leaves no container behind.
"""

from __future__ import annotations

pytest_plugins = ["pytester"]

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from reprex.bundle import Bundle  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.docker]
PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from scale_corpus import build_corpus  # noqa: E402

SLEEPER = "import time\n\n\ndef check():\n    time.sleep(600)\n    raise KeyError('a')\n\n\ncheck()\n"
GPU = {"count": 1, "models": ["NVIDIA A100-SXM4-80GB"], "driver": "550.54.15", "compute_capabilities": ["8.0"],
       "cuda": "12.4"}


@pytest.fixture(scope="module")
def cluster(ray_available, docker_client, base_image, cache):
    """A head without Docker and a worker node with it (4 logical CPUs: four replays at once; a
    replay mostly waits on the daemon and the container)."""
    from ray.cluster_utils import Cluster

    arch = "reprex_arch_x86_64"
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {arch: 1.0},
                                                      "include_dashboard": False})
    worker = c.add_node(num_cpus=4, resources={arch: 1.0, "reprex_docker": 1.0})
    c.wait_for_nodes()
    c.worker_id = worker.node_id
    c.head_id = c.head_node.node_id
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, cache) -> list[Bundle]:
    """Four captured bundles of distinct failures, stdlib only (one environment)."""
    paths = build_corpus(tmp_path_factory.mktemp("ray-corpus"), n=4, locks=1)
    return [Bundle.read(p) for p in paths]


def _folder(root: Path, corpus: list[Bundle]) -> Path:
    folder = root / "reprexes"
    folder.mkdir()
    for i, bundle in enumerate(corpus):
        bundle.write(folder / f"b{i}.reprex.zip")
    (folder / "b3.reprex.toml").write_text('expect = "fixed"\n')  # it still reproduces: a failure
    (folder / "broken.reprex.zip").write_bytes(b"PK\x03\x04 not a zip at all")
    return folder


def gpu_bundle(bundle: Bundle) -> Bundle:
    """The same failure, recorded on a CUDA machine (the manifest's gpu, a cuda probe that worked)."""
    gpu = Bundle.from_entries(dict(bundle.entries()))
    gpu.manifest["gpu"] = dict(GPU)
    env = json.loads(gpu.files["environment.json"])
    env["cuda"] = {"status": "ok", "value": {"runtime": "12.4"}, "error": None}
    gpu.files["environment.json"] = json.dumps(env).encode()
    return gpu.finalize()


def run(pytester, cluster, base_image, *args: str, timeout: float = 600):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--reprex-ray", cluster.address,
                                         "--reprex-image", base_image, *args, timeout=timeout)


def properties(xml: Path) -> dict[str, dict[str, list[str]]]:
    """testcase name -> property name -> values, from a junit report."""
    out: dict[str, dict[str, list[str]]] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        props = out.setdefault(case.get("name"), {})
        for prop in case.iter("property"):
            props.setdefault(prop.get("name"), []).append(prop.get("value"))
    return out


def test_bundles_replay_on_the_node_that_has_docker_one_item_each(pytester, cluster, corpus, base_image):
    folder = _folder(pytester.path, corpus)
    gpu_bundle(corpus[0]).write(folder / "cuda.reprex.zip")
    result = run(pytester, cluster, base_image, "-rA", "--junitxml", "out.xml")
    result.assert_outcomes(passed=3, failed=1, errors=1, skipped=1)
    out = result.stdout.str()
    assert out.count("verdict:   reproduced (expected reproduced)") == 3, out
    assert f"on docker on ray node {cluster.worker_id} (reprex-env:" in out
    assert "reprex b3: expected `fixed`, got `reproduced`" in out
    assert "no node in the cluster can run it" in out and "GPU" in out
    broken = [line for line in out.splitlines() if "reprex broken:" in line]
    assert broken and "Traceback" not in out, out
    props = properties(pytester.path / "out.xml")
    ran = {name: p["reprex_node"] for name, p in props.items() if "reprex_node" in p}
    assert sorted(ran) == ["b0", "b1", "b2", "b3"], props
    assert all(nodes == [cluster.worker_id] for nodes in ran.values()), (ran, cluster.head_id)
    assert props["cuda"].get("reprex_verdict") == ["env-incompatible"], props["cuda"]
    assert f"on ray nodes: {cluster.worker_id} 4" in out


def test_under_xdist_each_worker_submits_its_own_and_reports_each_bundle_once(pytester, cluster, corpus,
                                                                              base_image):
    _folder(pytester.path, corpus)
    result = run(pytester, cluster, base_image, "-n", "2", "-rA", "--junitxml", "out.xml")
    result.assert_outcomes(passed=3, failed=1, errors=1)
    props = properties(pytester.path / "out.xml")
    assert sorted(props) == ["b0", "b1", "b2", "b3", "broken"], props
    assert all(p.get("reprex_node") == [cluster.worker_id] for name, p in props.items() if name != "broken"), props


def test_a_gpu_bundle_fails_under_strict_when_no_node_has_a_gpu(pytester, cluster, corpus, base_image):
    (pytester.path / "reprexes").mkdir()
    gpu_bundle(corpus[1]).write(pytester.path / "reprexes" / "cuda.reprex.zip")
    started = time.monotonic()
    result = run(pytester, cluster, base_image, "--reprex-strict", timeout=180)
    result.assert_outcomes(errors=0, failed=1)
    assert "cannot replay here (failing under --reprex-strict): no node in the cluster can run it" in \
        result.stdout.str()
    assert time.monotonic() - started < 120  # said at once, not after waiting for a GPU node forever


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["alone", "xdist"])
def test_replays_are_submitted_ahead_so_they_overlap_on_the_cluster(pytester, cluster, corpus, base_image, xdist):
    """Four bundles whose repro sleeps 10 s first. An item whose replay starts at its own turn
    takes >= 10 s; submitted ahead to a node with 4 slots, the replays run at once while pytest
    waits on the first, and the items after it find theirs (nearly) done: all three after the
    first, or under xdist the second of each worker (each worker submits the items queued for it)."""
    folder = pytester.path / "reprexes"
    folder.mkdir()
    for i, bundle in enumerate(corpus):
        slow = Bundle.from_entries(dict(bundle.entries()))
        entry = next(name for name in slow.files if name.startswith("files/app_"))
        slow.files[entry] = b"import time\ntime.sleep(10)\n" + slow.files[entry]  # same frames, same failure
        slow.finalize().write(folder / f"slow{i}.reprex.zip")
    result = run(pytester, cluster, base_image, "--junitxml", "out.xml", *xdist)
    result.assert_outcomes(passed=4)
    times = sorted(float(case.get("time")) for case in ET.parse(pytester.path / "out.xml").getroot().iter("testcase"))
    ahead = sum(t < 10 for t in times)
    assert len(times) == 4 and ahead >= (2 if xdist else 3), f"items took {times}: the replays were not submitted ahead"


def test_an_unreachable_cluster_fails_each_item_with_one_line(pytester, corpus):
    (pytester.path / "reprexes").mkdir()
    corpus[0].write(pytester.path / "reprexes" / "b0.reprex.zip")
    corpus[1].write(pytester.path / "reprexes" / "b1.reprex.zip")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--reprex-ray", "127.0.0.1:9", timeout=180)
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    assert out.count("cannot reach the Ray cluster at 127.0.0.1:9") >= 2, out
    assert "Traceback" not in out


def test_an_address_that_is_a_path_is_a_usage_error_of_one_line(pytester):
    (pytester.path / "tests").mkdir()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--reprex-ray", "tests/")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--reprex-ray 'tests/': use auto, local, HOST:PORT or ray://HOST:PORT" in err
    assert "--reprex-ray=auto" in err and "Traceback" not in err


def test_ctrl_c_cancels_the_replays_on_the_cluster_and_leaves_no_container(tmp_path, cluster, corpus, base_image,
                                                                           docker_client):
    sleeper = Bundle.from_entries(dict(corpus[2].entries()))
    entry = next(name for name in sleeper.files if name.startswith("files/app_"))
    sleeper.files[entry] = SLEEPER.encode()  # interrupted long before it would fail
    sleeper.finalize()
    (tmp_path / "reprexes").mkdir()
    sleeper.write(tmp_path / "reprexes" / "sleeper.reprex.zip")
    label = {"label": f"org.reprex.bundle={sleeper.id}"}
    proc = subprocess.Popen([PY, "-m", "pytest", "-p", "no:cacheprovider", "reprexes", "--reprex-ray",
                             cluster.address, "--reprex-image", base_image, "--reprex-timeout", "300"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not docker_client.containers.list(filters={**label, "status": "running"}):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the replay container never started on the node"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
        deadline = time.monotonic() + 60  # the cancelled task removes its container on its way out
        while docker_client.containers.list(all=True, filters=label):
            assert time.monotonic() < deadline, [c.name for c in docker_client.containers.list(all=True,
                                                                                                 filters=label)]
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for c in docker_client.containers.list(all=True, filters=label):
            c.remove(force=True)
