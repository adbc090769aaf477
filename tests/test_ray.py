"""Ray-aware capture on a real local cluster.

* a failure raised inside a task, captured from the driver, has the remote cause's signature
  and replays `reproduced` (the replay runs the same driver with a real Ray, local backend);
* runtime_envs passed to ray.init / .options are recorded without secrets;
* reprex.ray.capture_failures / capturing write the bundle from the worker (task and actor)
  and hand its path to the driver.

One local cluster per module (ray.init takes ~2.5 s here, 2 cores shared); the captured
drivers start their own short-lived clusters, as a user's script would.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from reprex.bundle import Bundle  # noqa: E402
from reprex.capture.pipeline import CaptureOptions, capture_command  # noqa: E402
from reprex.record import Outcome  # noqa: E402
from reprex.signature import compute, unwrap_remote  # noqa: E402

pytestmark = pytest.mark.ray
PY = sys.executable
TOKEN = "ghp_" + "R4yT35tT0k3nN0tR34lxxxxxxxxxxxxxxxxx"[:36]

DRIVER = '''
import ray


def parse_row(row):
    return int(row["count"])


@ray.remote(max_retries=0)
def load(rows):
    return [parse_row(r) for r in rows]


if __name__ == "__main__":
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"DB_PASSWORD": "hunter2-but-longer"}})
    task = load.options(runtime_env={"working_dir": "https://me:%s@example.invalid/o/r/archive/abc.zip?sig=s3cr3t",
                                     "pip": ["requests==2.31.0"]})
    print(ray.get(load.remote([{"count": "3"}, {"count": "three"}])))
''' % TOKEN


@pytest.fixture(scope="module")
def task_capture(ray_available, tmp_path_factory, cache):
    tmp = tmp_path_factory.mktemp("ray-task")
    (tmp / "etl.py").write_text(textwrap.dedent(DRIVER))
    result = capture_command([PY, "etl.py"], CaptureOptions(tee=False, timeout=180), cwd=str(tmp))
    assert result.bundle is not None, result.message
    return result


def test_task_failure_has_the_remote_cause_signature(task_capture):
    sig = task_capture.bundle.manifest["expect"]["signature"]
    assert sig["types"] == ["ValueError"], sig
    assert sig["frames"] == ["etl.py:parse_row", "etl.py:<listcomp>", "etl.py:load"], sig
    exc = json.loads(task_capture.bundle.files["run.json"])["exception"]
    remote = exc["remote"]
    assert remote["kind"] == "task" and remote["type"] == "ValueError" and remote["function"].endswith("load")
    assert isinstance(remote["pid"], int) and remote["ip"]
    assert "invalid literal for int()" in remote["message"]
    assert "Traceback (most recent call last):" in remote["traceback"]


def test_runtime_envs_are_recorded_without_secrets(task_capture):
    from reprex.ray.section import ray_section

    envs = task_capture.outcome.facts["ray_runtime_envs"]
    init = next(e for e in envs if e["source"] == "ray.init")
    assert init["runtime_env"] == {"env_vars": ["DB_PASSWORD"]}  # names only
    task = next(e for e in envs if e["source"].startswith("task:"))
    wd = task["runtime_env"]["working_dir"]
    assert wd.startswith("https://<redacted:url-credentials>@example.invalid/o/r/archive/abc.zip")
    assert "s3cr3t" not in wd and task["runtime_env"]["credentials_in"] == ["working_dir"]
    assert task["runtime_env"]["pip"] == ["requests==2.31.0"]
    section = ray_section(task_capture.outcome, cwd=Path.cwd(), environ={})
    assert section["version"] and section["remote_cause"]["type"] == "ValueError"
    assert set(section["working_dir_auth"]) >= {"bearer_token_set", "netrc_exists", "netrc_env_set"}
    blob = task_capture.path.read_bytes()
    with zipfile.ZipFile(task_capture.path) as zf:
        contents = b"".join(zf.read(n) for n in zf.namelist())
    for secret in (TOKEN.encode(), b"hunter2-but-longer", b"s3cr3t"):
        assert secret not in blob and secret not in contents


def test_bundle_manifest_has_the_ray_section(task_capture):
    # Needs the one-line hook in reprex/capture/pipeline.py build_bundle (see reprex/ray/section.py).
    section = task_capture.bundle.manifest.get("ray")
    assert section is not None, "build_bundle does not add manifest['ray'] yet"
    assert section["remote_cause"]["type"] == "ValueError"
    assert any(e["source"] == "ray.init" for e in section["runtime_envs"])


def test_task_failure_replays_reproduced_with_real_ray(task_capture, cache):
    from reprex.replay import ReplayOptions, replay

    assert "ray==" in task_capture.bundle.text("requirements.txt")
    result = replay(task_capture.bundle, ReplayOptions(backend="local", timeout=240, setup_timeout=600))
    assert result.verdict == "reproduced", (result.reason, result.logs[-3000:])
    assert result.signature.types == ["ValueError"]
    # --strict compares the cause's message on both sides (capture stored the wrapper's before)
    assert task_capture.bundle.manifest["expect"]["signature"]["message"].startswith("invalid literal for int()")
    strict = replay(task_capture.bundle, ReplayOptions(backend="local", timeout=240, strict=True))
    assert strict.verdict == "reproduced", (strict.reason, strict.logs[-3000:])


def test_unwrap_is_pure_and_drops_ray_internals():
    remote_tb = textwrap.dedent('''\
        Traceback (most recent call last):
          File "python/ray/_raylet.pyx", line 1900, in ray._raylet.execute_task
          File "/site/lib/python3.11/site-packages/ray/_private/worker.py", line 900, in main_loop
          File "/work/job.py", line 4, in f
            raise KeyError("k")
        KeyError: 'k'
    ''')
    record = {"type": "ray.exceptions.RayTaskError", "message": "...", "frames": [{"file": "/work/driver.py",
              "qualname": "<module>", "function": "<module>"}], "cause": None, "context": None,
              "remote": {"kind": "task", "traceback": remote_tb, "type": "KeyError"}}
    unwrapped = unwrap_remote(record)
    assert unwrapped["type"] == "KeyError" and [f["function"] for f in unwrapped["frames"]] == ["f"]
    assert record["remote"]["traceback"] == remote_tb  # the record itself is untouched
    sig = compute(Outcome(outcome="exception", exception=record, recorded=True))
    assert sig.types == ["KeyError"] and sig.frames == ["job.py:f"]
    # Caught and re-raised in the driver: the chain keeps the driver's exception on top.
    wrapped = {"type": "RuntimeError", "message": "job failed", "frames": record["frames"], "cause": record,
               "context": None}
    assert compute(Outcome(outcome="exception", exception=wrapped, recorded=True)).types == ["RuntimeError",
                                                                                               "KeyError"]


# -- reprex.ray inside workers -----------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(ray_available):
    ray = ray_available
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


def _helpers(out: Path):
    import reprex.ray

    def parse_row(row):
        return int(row["count"])

    def load(rows):
        return [parse_row(r) for r in rows]

    class Model:
        def __init__(self, dim):
            self.dim = dim

        def predict(self, vec):
            if len(vec) != self.dim:
                raise ValueError(f"expected {self.dim} values, got {len(vec)}")
            return sum(vec)

    def divide(x):
        with reprex.ray.capturing(out=str(out), name="divide"):
            return 1 / x

    return load, Model, divide


def test_capture_failures_in_a_task_hands_the_path_to_the_driver(cluster, tmp_path):
    import reprex.ray

    ray = cluster
    load, _, _ = _helpers(tmp_path)
    task = ray.remote(max_retries=0)(reprex.ray.capture_failures(load, out=str(tmp_path)))
    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(task.remote([{"count": "x"}]))
    path = reprex.ray.bundle_path(info.value)
    assert path and Path(path).is_file() and Path(path).parent == tmp_path
    bundle = Bundle.read(path)
    sig = bundle.manifest["expect"]["signature"]
    assert sig["types"] == ["ValueError"]
    assert sig["frames"][0] == "test_ray.py:_helpers.<locals>.parse_row"
    assert "test_ray.py:_helpers.<locals>.load" in sig["frames"]
    assert not any("capture_failures" in f for f in sig["frames"])  # the wrapper is not the failure
    worker = bundle.manifest["ray"]["worker"]
    assert worker["pid"] != os.getpid() and worker["function"].endswith("load") and worker.get("task_id")
    frames = json.loads(bundle.files["run.json"])["exception"]["frames"]
    load_frame = next(f for f in frames if f["function"] == "load")
    assert "'x'" in load_frame["arg_values"]["rows"]["repr"]  # the call can be rebuilt from the bundle


def test_capture_failures_on_an_actor_returns_the_failure(cluster, tmp_path):
    import reprex.ray

    ray = cluster
    _, Model, _ = _helpers(tmp_path)
    actor_cls = ray.remote(reprex.ray.capture_failures(Model, out=str(tmp_path), on_error="return"))
    actor = actor_cls.remote(3)
    assert ray.get(actor.predict.remote([1, 2, 3])) == 6
    failure = ray.get(actor.predict.remote([1, 2]))
    assert isinstance(failure, reprex.ray.CapturedFailure) and not failure
    assert failure.type == "ValueError" and "expected 3 values, got 2" in failure.message
    bundle = Bundle.read(failure.path)
    assert bundle.manifest["expect"]["signature"]["frames"][0] == "test_ray.py:_helpers.<locals>.Model.predict"
    assert bundle.manifest["ray"]["worker"].get("actor_id")


def test_capturing_context_manager_reraises_with_the_path(cluster, tmp_path):
    import reprex.ray

    ray = cluster
    _, _, divide = _helpers(tmp_path)
    task = ray.remote(max_retries=0)(divide)
    with pytest.raises(ZeroDivisionError) as info:  # RayTaskError(ZeroDivisionError)
        ray.get(task.remote(0))
    path = reprex.ray.bundle_path(info.value)
    assert path == str(tmp_path / "divide.reprex.zip")
    assert Bundle.read(path).manifest["expect"]["signature"]["types"] == ["ZeroDivisionError"]


def test_actor_death_in_init_is_unwrapped_to_its_cause(cluster):
    from reprex.api import outcome_from_exception

    ray = cluster

    class Broken:
        def __init__(self, path):
            raise FileNotFoundError(f"no model at {path}")

        def ping(self):
            return "pong"

    actor = ray.remote(max_restarts=0)(Broken).remote("/models/topics.bin")
    with pytest.raises(ray.exceptions.RayActorError) as info:
        ray.get(actor.ping.remote())
    outcome = outcome_from_exception(info.value)
    remote = outcome.exception["remote"]
    assert remote["kind"] == "actor" and remote.get("actor_id")
    sig = compute(outcome)
    assert sig.types == ["FileNotFoundError"], sig
    assert sig.frames[0].endswith("Broken.__init__") or sig.frames[0].endswith(":__init__")


# -- issue 11 finding 3: Ray's own errors (dead workers and actors) name the task and the cause ------

CRASH = """
import os, sys, threading
import ray

ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)


@ray.remote(max_retries=0)
def flush_shard():
    os._exit(3)


@ray.remote(max_retries=0)
def compact_shard():
    os._exit(3)


@ray.remote(max_restarts=0)
class Shard:
    def load(self):
        os._exit(7)


class LockedError(Exception):
    def __init__(self, lock):
        super().__init__("shard is locked")
        self.lock = lock  # a lock can't be pickled: Ray can't send this exception back as is


@ray.remote(max_retries=0)
def write_shard():
    raise LockedError(threading.Lock())


def run(which):
    if which == "actor":
        return ray.get(Shard.remote().load.remote())
    if which == "unpicklable":
        return ray.get(write_shard.remote())
    return ray.get({"flush": flush_shard, "compact": compact_shard}[which].remote())


run(sys.argv[1])
"""


@pytest.fixture(scope="module")
def crash_captures(ray_available, tmp_path_factory, cache):
    tmp = tmp_path_factory.mktemp("ray-crash")
    (tmp / "shards.py").write_text(CRASH)
    out = {}
    for which in ("flush", "actor", "unpicklable"):
        result = capture_command([PY, "shards.py", which], CaptureOptions(tee=False, timeout=180,
                                 output=tmp / f"{which}.reprex.zip"), cwd=str(tmp))
        assert result.bundle is not None, result.message
        out[which] = result.bundle
    return out


def test_dead_worker_and_actor_signatures_name_the_task_and_the_cause(crash_captures):
    flush = crash_captures["flush"].manifest["expect"]["signature"]
    assert flush["types"] == ["ray.exceptions.WorkerCrashedError"], flush
    assert flush["frames"] == ["ray-system:__main__.flush_shard", "shards.py:run", "shards.py:<module>"], flush
    actor = crash_captures["actor"].manifest["expect"]["signature"]
    assert actor["types"] == ["ray.exceptions.ActorDiedError[SYSTEM_ERROR]"], actor
    assert actor["frames"][0] == "ray-actor:Shard.load", actor
    assert not any("worker.py" in f or "client_mode_hook" in f for f in flush["frames"] + actor["frames"])
    unpicklable = crash_captures["unpicklable"].manifest["expect"]["signature"]
    assert unpicklable["types"] == ["LockedError"] and unpicklable["frames"] == ["shards.py:write_shard"]
    assert unpicklable["message"] == "shard is locked"  # the cause's, not Ray's header and traceback


def test_another_task_dying_the_same_way_reads_different(crash_captures, cache):
    from reprex.replay import ReplayOptions, replay

    bundle = crash_captures["flush"]
    same = replay(bundle, ReplayOptions(backend="local", timeout=240, setup_timeout=600, strict=True))
    assert same.verdict == "reproduced", (same.reason, same.logs[-3000:])
    argv = bundle.manifest["entry"]["python_args"]
    assert argv[-1] == "flush"
    bundle.files["files/shards.py"] = bundle.files["files/shards.py"].replace(
        b'{"flush": flush_shard, "compact": compact_shard}', b'{"flush": compact_shard, "compact": flush_shard}')
    bundle.finalize()
    other = replay(bundle, ReplayOptions(backend="local", timeout=240))
    assert other.verdict == "different", (other.reason, other.logs[-3000:])
    assert other.signature.frames[0] == "ray-system:__main__.compact_shard"


def test_ray_error_without_remote_traceback_is_typed_by_its_cause():
    """Pure: the record shape the recorder writes for an actor that died."""
    record = {"type": "ray.exceptions.ActorDiedError", "message": "The actor died unexpectedly", "cause": None,
              "context": None, "frames": [
                  {"file": "/app/job.py", "qualname": "<module>", "function": "<module>", "kind": "app",
                   "loc": "job.py"},
                  {"file": "/v/lib/python3.11/site-packages/ray/_private/client_mode_hook.py",
                   "qualname": "wrapper", "function": "wrapper", "kind": "package",
                   "loc": "ray/_private/client_mode_hook.py"},
                  {"file": "/v/lib/python3.11/site-packages/ray/_private/worker.py",
                   "qualname": "Worker.get_objects", "function": "get_objects", "kind": "package",
                   "loc": "ray/_private/worker.py"}],
              "remote": {"kind": "actor", "error": "ray.exceptions.ActorDiedError", "exit_type": "USER_ERROR",
                         "exit_code": 137, "target": "Trainer.step", "traceback": "The actor died unexpectedly"}}
    sig = compute(Outcome(outcome="exception", exception=record, recorded=True))
    assert sig.types == ["ray.exceptions.ActorDiedError[USER_ERROR, exit code 137]"]
    assert sig.frames == ["ray-actor:Trainer.step", "job.py:<module>"]
    record["remote"]["target"] = "Trainer.save"
    assert compute(Outcome(outcome="exception", exception=record, recorded=True)).frames[0] == \
        "ray-actor:Trainer.save"
