"""`reprex bisect --ray` and `reprex shrink --ray` on a real local Ray cluster
(ray.cluster_utils.Cluster): a head that runs nothing and one worker node with Docker, so
every replay that reaches a node shows which one it was.

* bisect on a real regression (tests/bisect_cases.py, served by a loopback index) names the
  first bad release a bisection without --ray names (the e2e tests check that one), and
  every probe, the bundle's own replay included, ran on the worker node;
* shrink on a captured failure judges its candidates on the worker and writes a bundle
  that still replays `reproduced` here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from bisect_cases import BY_NAME, bisect_argv, capture_case
from bisect_index import FileCache, IndexServer, cache_dir

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

pytestmark = [pytest.mark.ray, pytest.mark.docker]
PY = sys.executable
WORKER = {"reprex_docker": 1, "reprex_arch_x86_64": 1}
CASE = BY_NAME["itsdangerous-jws"]  # six releases, one pure-Python wheel each


@pytest.fixture(scope="module")
def index():
    served = IndexServer(FileCache(cache_dir())).start()
    yield served
    served.stop()


@pytest.fixture(scope="module")
def cluster(ray_available, docker_client, cache, index):
    """Head (no CPUs) + one Docker worker; its processes see the loopback index, as the
    machine that runs a probe's install would."""
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as mp:
        for key, value in index.environ().items():
            if os.environ.get(key) != value:
                mp.setenv(key, value)
        for key in [k for k in os.environ if k.startswith(("PIP_", "UV_")) and k not in index.environ()]:
            mp.delenv(key)
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        c.worker = c.add_node(num_cpus=2, resources=WORKER)
        c.wait_for_nodes()
        yield c
        c.shutdown()


def reprex(argv: list[str], env: dict | None = None, timeout: float = 600, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def test_bisect_probes_run_on_the_cluster(index, cluster, base_image, tmp_path):
    bundle = capture_case(index, CASE, tmp_path / "case")
    out = tmp_path / "out.reprex.zip"
    proc = reprex(bisect_argv(CASE, bundle, out, "--backend", "docker", "--image", base_image,
                              "--ray", cluster.address, "--jobs", "2"), env=index.environ())
    assert proc.stdout.strip(), f"exit {proc.returncode}, no JSON; stderr:\n{proc.stderr[-2000:]}"
    data = json.loads(proc.stdout)
    assert proc.returncode == 0, (data["summary"], data["steps"], proc.stderr[-2000:])
    (finding,) = data["findings"]
    assert (finding["first_bad"], finding["last_good"]) == (CASE.expected_first_bad, CASE.last_good), data["summary"]
    replayed = [s for s in data["steps"] if s["runs"]]
    assert len(replayed) >= 3, data["steps"]  # the bundle itself, then at least a good and a bad probe
    assert {s.get("node") for s in replayed} == {cluster.worker.node_id}, data["steps"]
    assert {s["verdict"] for s in replayed} == {"good", "bad"}
    # the record travels with the bundle
    from reprex.bundle import Bundle

    steps = Bundle.read(out).manifest["bisect"]["steps"]
    assert {s.get("node") for s in steps if s["runs"]} == {cluster.worker.node_id}


APP = """
import json


def load(path):
    with open(path) as fh:
        return json.load(fh)


def total(rows):
    out = 0
    for row in rows:
        out += row["price"] * row["qty"]
    return out


def main():
    rows = load("orders.json")
    label = "orders"
    print(label, len(rows))
    print(total(rows))


main()
"""


@pytest.fixture(scope="module")
def app_bundle(cache, tmp_path_factory):
    """A captured KeyError (the third order has no qty), with its input file."""
    app = tmp_path_factory.mktemp("app")
    (app / "app.py").write_text(textwrap.dedent(APP))
    (app / "orders.json").write_text(json.dumps([{"price": 3, "qty": 2}, {"price": 5, "qty": 1}, {"price": 7}]))
    bundle = app.parent / "app.reprex.zip"
    cap = reprex([PY, "-m", "reprex", "capture", "-q", "-o", str(bundle), "--", PY, "app.py"], timeout=300, cwd=app)
    assert bundle.exists(), cap.stderr[-2000:]
    return bundle


def test_shrink_candidates_are_judged_on_the_cluster(cluster, app_bundle, base_image, tmp_path):
    bundle = app_bundle
    out = tmp_path / "small.reprex.zip"
    proc = reprex([PY, "-m", "reprex", "shrink", str(bundle), "--ray", cluster.address, "--backend", "docker",
                   "--image", base_image, "--budget", "25", "--verify-runs", "1", "--keep-pins", "--jobs", "2",
                   "--json", "-o", str(out)])
    assert proc.stdout.strip(), f"exit {proc.returncode}, no JSON; stderr:\n{proc.stderr[-2000:]}"
    data = json.loads(proc.stdout)
    assert proc.returncode == 0 and data["written"] == str(out), (data, proc.stderr[-2000:])
    assert data["ray"]["nodes"] == {cluster.worker.node_id: data["runs"]}  # every run, on the worker
    assert data["calls"] <= 25 and data["runs"] >= data["calls"]
    assert data["after"]["bundle_bytes"] < data["before"]["bundle_bytes"]
    again = reprex([PY, "-m", "reprex", "replay", str(out), "--backend", "docker", "--image", base_image, "--json"],
                   timeout=300)
    assert json.loads(again.stdout)["verdict"] == "reproduced", again.stderr[-2000:]


@pytest.mark.parametrize("tool", ["shrink", "bisect"])
def test_an_address_that_is_not_one_or_does_not_answer_is_one_line(tool, app_bundle, tmp_path):
    import socket

    extra = ["--package", "itsdangerous", "--no-write"] if tool == "bisect" else ["-o", str(tmp_path / "x.zip")]
    bad = reprex([PY, "-m", "reprex", tool, str(app_bundle), *extra, "--ray", "no such host"], timeout=60)
    assert bad.returncode == 2 and "--ray" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gone = reprex([PY, "-m", "reprex", tool, str(app_bundle), *extra, "--ray", f"127.0.0.1:{port}"], timeout=60)
    assert gone.returncode == 3, gone.stderr
    assert gone.stderr.strip().splitlines() == \
        [f"reprex: error: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused"], gone.stderr
    assert "Traceback" not in gone.stderr and not (tmp_path / "x.zip").exists()
