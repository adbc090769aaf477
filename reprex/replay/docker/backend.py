"""The docker backend: one environment image per (base image, lock hash), runs that change nothing.

This module is the Backend protocol's two steps and the run's isolation; the rest has a module
of its own in this package: daemon (finding it), images (which image, GPUs), build (the
environment image), inputs (the work files in), stream (the output and record out), layout
(what host and container agree on), cleanup (what a run or an interrupted replay leaves).

prepare(): find the daemon like the docker CLI does, pick the base image (`--image`, else
`python:X.Y-slim`; GPU bundles get a device request; an `nvidia/cuda` runtime image only when
the run loaded the system's CUDA libraries), download the pins' wheels ON THE HOST with the
host's pip configuration, and make `reprex-env:<hash>` in one committed container step that runs
reprex/templates/docker-build.sh over them (build.py). The image is reused while its inputs
match: a warm replay is one container.

run(): a hermetic container: no network (a bundle may ask for one; only --network grants it),
non-root uid 10001, all capabilities dropped, no-new-privileges, pids/memory limits, read-only
root with tmpfs /tmp, docker's init so signals and crashes behave like on a host; the work
files mounted read-only and copied to a scratch dir; the recorder injected via PYTHONPATH
writes into /reprex/record, a tmpfs. When the program is done, the run script writes the
record's regular files (size-capped, links and FIFOs skipped) to stdout after a per-run marker
(reprex/templates/docker-run.sh), so the one attach stream that carries the output carries the
record too: no host directory the program could plant FIFOs, links or huge files in, and no
extra API calls. The host parses that stream in memory with its own caps and reads it with the
same load_outcome() as capture. Never the host's environment. The container is removed in
`finally` (never auto_remove).

The bundle's requirements are checked before anything else (pin_rules.check_bundle_requirements)
and downloaded binary-only: nothing from a bundle is built or run on the host; its URL pins
are fetched (by the host, from the addresses they name) only with the user's `allow_urls`. Every other
value of the bundle that reaches the daemon is checked against a strict pattern (its Python
version, which names the base image and reaches the build script as an argument; its id, in labels and the
container name) or passed as data (the entry's argv, environment values); nothing in it
chooses the isolation: network, GPUs, image, timeout and limits come from the user's options.
The container ends on its own at the timeout (a watchdog in the run script) even if reprex
is killed, and a detached watchdog on the host (docker/watchdog.py) removes it if reprex dies
without doing so; SIGTERM/SIGINT unwind through the `finally` that removes it (reprex.interrupt).

The daemon is spoken to through engine.py (the standard library over the socket); the docker
SDK is imported only to pull a missing base image (daemon.sdk_client: registry credentials).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
import time
import uuid
from pathlib import Path

from reprex.bundle import Bundle, safe_member_name
from reprex.replay.base import (Deadline, EnvIncompatible, InfraError, Progress, ReplayOptions, RunOutput,
                                base_environ, entry_args, lock_hash, python_xy, replay_environ,
                                replay_pythonpath, requirements, work_files)
from reprex.replay.docker.build import (build, image_labels, pins_members, recipe_digest, recorder_bytes,
                                        with_members)
from reprex.replay.docker.cleanup import remove_run
from reprex.replay.docker.compile_list import compile_list
from reprex.replay.docker.daemon import connect, http_errors, one_line
from reprex.replay.docker.engine import Engine, EngineError, Stream
from reprex.replay.docker.env import DockerEnv
from reprex.replay.docker.images import (NETWORK_ASKED, check_gpu, check_image_ref, choose_image, device_requests,
                                         ensure_image, find_image, gpu_problem, image_machine, images_table,
                                         resolve_gpus)
from reprex.replay.docker.inputs import inputs_mode, inputs_tar, write_inputs
from reprex.replay.docker.layout import (ENV_REPO, IN_DIR, INJECT, LABEL, PATH, RECORD_DIR, UID, VENV,
                                         WATCHDOG_MARGIN_S, WORK_DIR, bundle_label, dump_script, record_emit,
                                         run_script, watchdog_s)
from reprex.replay.docker.stream import RunStream
from reprex.replay.docker.watchdog import watch
from reprex.interrupt import shielded
from reprex.replay.pin_rules import check_bundle_requirements, check_url_grant
from reprex.replay.shadow import entry_files
from reprex.replay.shadow import plan as plan_replaced
from reprex.replay.target import Target
from reprex.replay.wheels import pins_wheels, with_wheels


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(*parts: str) -> str:
    """An env image's tag: what it is made of, hashed."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


class DockerBackend:
    name = "docker"
    mem_limit = os.environ.get("REPREX_DOCKER_MEMORY", "2g")
    pids_limit = 256
    # A minimal local Ray cluster (num_cpus=2) is ~11 processes and ~200 threads, and threads
    # count against the pids limit: bundles whose run imported ray get more room.
    pids_limit_ray = 4096
    shm_size = 1 << 30
    tmpfs_size = "1g"
    record_size = "64m"
    pull_timeout = float(os.environ.get("REPREX_PULL_TIMEOUT", "120"))
    # after a timeout's kill, how long the run script gets to write the record
    grace_s = 30.0

    # -- prepare ------------------------------------------------------------------
    def prepare(self, bundle: Bundle, options: ReplayOptions, progress: Progress) -> DockerEnv:
        # a refused value: before anything runs (pins, Python version, id, GPU ask, image name)
        check_bundle_requirements(requirements(bundle))
        check_url_grant(requirements(bundle), options.allow_urls)
        python_xy(bundle)
        bundle_label(bundle)
        resolve_gpus(bundle, options)
        if options.image:
            check_image_ref(options.image)
        engine = connect()
        env = DockerEnv(engine=engine, tag="", base_image="", base_id="", image_id="", machine="", gpus=None,
                        network="none", reused=False, progress=progress)
        try:
            return self._prepare(env, bundle, options, progress)
        except BaseException:
            self.close(env, options)
            raise

    def _prepare(self, env: DockerEnv, bundle: Bundle, options: ReplayOptions, progress: Progress) -> DockerEnv:
        setup = Deadline(options.setup_timeout)  # downloads and the build together
        xy = python_xy(bundle)
        gpus = resolve_gpus(bundle, options)
        base = check_image_ref(choose_image(bundle, options, gpus), "the base image")
        base_image = ensure_image(env, base, xy, progress, self.pull_timeout)
        # the image's architecture is what its containers run as (the daemon's, but for emulation)
        machine = image_machine(base_image) or "x86_64"
        if gpus:
            check_gpu(env, base, gpus, bundle, progress)
        network = options.network or "none"  # the user's grant only
        if not options.network and bundle.manifest.get("network") is True:
            env.notes.append(NETWORK_ASKED)
            progress(NETWORK_ASKED)

        lock = lock_hash(bundle)
        target = Target(xy, machine, images_table()["cpu"].get("glibc", "2.36"))
        from reprex.fsutil import cache_root, hold_in_use, locked

        cache = cache_root()
        with_set = None
        if options.with_specs:
            with_set = with_wheels(list(options.with_specs), target, cache, setup, progress)
            env.with_set = with_set  # cleaned up by close()
            if with_set.provided:  # a checkout's packages replace the bundle's copies of them
                files = work_files(bundle)
                env.replaced = plan_replaced(files, with_set.provided, entry_files(entry_args(bundle), files))
                for note in env.replaced.notes:
                    env.notes.append(note)
                    progress(note)
        recorder = recorder_bytes()
        labels = image_labels(base, xy, lock)
        key = _key(base_image["Id"], json.dumps(labels, sort_keys=True), machine, _sha256(recorder), recipe_digest())
        tag = f"{ENV_REPO}:{key}"
        with locked(cache / "docker" / f"{key}.lock"):
            image = find_image(env.engine, tag)
            reused = image is not None
            if image is None:
                machine_ran = (bundle.manifest.get("platform") or {}).get("machine")
                try:
                    pins = pins_wheels(requirements(bundle), lock, target, cache, setup, progress,
                                       allow_urls=options.allow_urls)
                except EnvIncompatible as exc:
                    if machine_ran and machine_ran != machine:
                        raise EnvIncompatible(f"the bundle ran on {machine_ran}, the Docker daemon is {machine}, "
                                              f"and there is {exc.reason}") from None
                    raise
                modules, note = compile_list(bundle)
                if note:
                    progress(note)
                progress(f"building {tag} ({len(pins.wheels)} wheels)")
                image = build(env, tag, base_image, "pins", pins_members(pins, recorder, modules), labels, setup,
                              progress, machine=machine, xy=xy, base=base)
            else:
                progress(f"reusing image {tag}")
            env.hold = hold_in_use(cache / "docker" / f"{key}.lock")  # until close(): a prune leaves it
        if with_set is not None and with_set.wheels:
            # the --with wheels: one more step over the pins' image, which stays shared
            key = _key(key, with_set.digest())
            tag = f"{ENV_REPO}:{key}"
            with locked(cache / "docker" / f"{key}.lock"):
                found = find_image(env.engine, tag)
                reused = found is not None
                if found is None:
                    progress(f"building {tag} ({len(with_set.wheels)} --with wheels over {image['Id'][7:19]})")
                    found = build(env, tag, image, "with", with_members(with_set), labels, setup, progress,
                                  machine=machine)
                else:
                    progress(f"reusing image {tag}")
                pins_hold, env.hold = env.hold, hold_in_use(cache / "docker" / f"{key}.lock")
                pins_hold.close()
            image = found
        env.tag, env.base_image, env.base_id, env.image_id = tag, base, base_image["Id"], image["Id"]
        env.machine, env.gpus, env.network, env.reused = machine, gpus, network, reused
        return env

    # -- run ----------------------------------------------------------------------
    def container_config(self, env: DockerEnv, bundle: Bundle, options: ReplayOptions, indir: Path | None,
                         nonce: str) -> dict:
        environ = {**replay_environ(bundle), **options.pass_env, **base_environ("/tmp", PATH, tmpdir="/tmp"),
                   "PYTHONPATH": ":".join([INJECT, *replay_pythonpath(bundle, WORK_DIR)]),
                   "REPREX_RECORD_DIR": RECORD_DIR, "REPREX_RECORD_FACTS": "0", "PYTHONUNBUFFERED": "1",
                   "VIRTUAL_ENV": VENV}
        if env.gpus:
            environ["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
        elif options.gpus == "none":
            environ["CUDA_VISIBLE_DEVICES"] = ""
        labels = {LABEL: "1", f"{LABEL}.bundle": bundle_label(bundle)}
        if options.keep:
            labels[f"{LABEL}.keep"] = "1"
        memory = _bytes(self.mem_limit)
        host = {
            "NetworkMode": env.network, "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"],
            "PidsLimit": self.pids_limit_for(bundle), "Memory": memory, "MemorySwap": memory,
            "ShmSize": self.shm_size, "ReadonlyRootfs": True, "Init": env.init,
            "Tmpfs": {"/tmp": f"rw,exec,nosuid,nodev,size={self.tmpfs_size},mode=1777",
                      "/home/reprex": f"rw,nosuid,nodev,size=64m,uid={UID},gid={UID},mode=0700",
                      RECORD_DIR: f"rw,nosuid,nodev,noexec,size={self.record_size},uid={UID},gid={UID},mode=0700"},
            # the work files: a read-only bind mount of a host dir, or (a daemon on another
            # machine) an anonymous volume they are copied into, root-owned, before the start
            "Mounts": [{"Target": IN_DIR, "Source": str(indir), "Type": "bind", "ReadOnly": True} if indir else
                       {"Target": IN_DIR, "Type": "volume"}],
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "50m", "max-file": "1"}},
        }
        if env.gpus:
            host["DeviceRequests"] = device_requests(env.gpus)
        return {
            "Image": env.tag,
            "Cmd": ["sh", "-c", run_script(), "sh", nonce, str(watchdog_s(options)), record_emit(),
                    f"{VENV}/bin/python", *entry_args(bundle)],
            "StopTimeout": 2,
            "Env": [f"{k}={v}" for k, v in environ.items()], "User": f"{UID}:{UID}", "WorkingDir": "/tmp",
            "Labels": labels, "AttachStdout": True, "AttachStderr": True, "OpenStdin": False, "Tty": False,
            "NetworkDisabled": env.network == "none", "HostConfig": host,
        }

    def run(self, env: DockerEnv, bundle: Bundle, options: ReplayOptions) -> RunOutput:
        from reprex.record import load_outcome

        engine = env.engine
        # checked and budgeted before anything is written
        files = work_files(bundle)
        if env.replaced is not None:  # the input mount only: the bundle keeps its files
            files = env.replaced.keep(files)
        files = {safe_member_name(rel): data for rel, data in files.items()}
        bind = inputs_mode(engine) == "bind"
        nonce = uuid.uuid4().hex
        name = f"reprex-{bundle_label(bundle)[:12]}-{nonce[:8]}"
        indir = recdir = cid = watchdog = None
        try:
            if bind:
                indir = Path(tempfile.mkdtemp(prefix="reprex-in-"))
                write_inputs(indir, files)
            recdir = Path(tempfile.mkdtemp(prefix="reprex-record-"))  # the host's copy of the record (0700)
            config = self.container_config(env, bundle, options, indir, nonce)
            try:
                with shielded():  # a signal can't come between the daemon's create and our knowing its id
                    cid = engine.create(config, name)
                    # a backstop outside the container, for when this process dies without cleaning up
                    watchdog = watch(engine, cid, watchdog_s(options) + WATCHDOG_MARGIN_S)
                if indir is None:
                    engine.put_archive(cid, IN_DIR, inputs_tar(files))
                stream = engine.attach(cid, timeout=30)
            except EngineError as exc:
                if exc.not_found:
                    raise InfraError(f"the environment image {env.tag} disappeared; replay again to rebuild it") from None
                raise InfraError(f"docker could not set up the container: {one_line(exc)}") from None
            except (OSError, ValueError, http_errors()) as exc:
                raise InfraError(f"lost the Docker daemon creating the container: {one_line(exc)}") from None
            out = RunStream(nonce)
            try:
                started = time.monotonic()
                try:
                    engine.start(cid)
                except EngineError as exc:
                    problem = gpu_problem(exc)
                    if problem is not None:
                        raise problem from None
                    raise InfraError(f"docker could not start the container: {one_line(exc)}") from None
                except (OSError, ValueError, http_errors()) as exc:
                    raise InfraError(f"lost the Docker daemon starting the container: {one_line(exc)}") from None
                timed_out = self._read(stream, out, engine, cid, started + options.timeout)
                duration = time.monotonic() - started
            finally:
                stream.close()
            out.finish()
            try:
                status = engine.wait(cid, timeout=self.grace_s)
            except (EngineError, OSError, ValueError, http_errors()) as exc:
                raise InfraError(f"docker wait failed: {one_line(exc)}") from None
            facts = None
            for rec_name, data in out.record_files().items():
                if rec_name == "facts.json":
                    facts = data
                    continue
                with os.fdopen(os.open(recdir / rec_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
                    fh.write(data)
            tail = out.tail.text()
            outcome = load_outcome(recdir, status, timed_out=timed_out, duration_s=duration, output_tail=tail,
                                   signal_exit_codes=True)
            if facts and not outcome.facts:
                with contextlib.suppress(ValueError):
                    parsed = json.loads(facts)
                    outcome.facts = parsed if isinstance(parsed, dict) else {}
            logs = "".join(text for _, text in tail)
            if status == 137 and not timed_out:
                with contextlib.suppress(Exception):
                    if (engine.inspect(cid).get("State") or {}).get("OOMKilled"):
                        logs += f"\n[reprex] the container was killed for using more than {self.mem_limit} of memory\n"
            return RunOutput(outcome, logs)
        finally:
            with shielded():  # every path, a signal's included: the container and the temp dirs go
                remove_run(env, options, name, cid, indir, recdir)
                if watchdog is not None:
                    watchdog.done()

    def _read(self, stream: Stream, out: RunStream, engine: Engine, cid: str, deadline: float) -> bool:
        """Read the run's output and record until the container's streams close; True if it
        ran past the deadline. Then: a stack dump and the recorded process killed (the run
        script still writes the record), and if the container lingers `grace_s`, it is killed."""
        timed_out = killed = False
        while True:
            stream.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                for name, data in stream.frames():
                    out.feed(name, data)
                    if time.monotonic() > deadline:
                        raise socket.timeout()  # a program that never stops printing
                return timed_out
            except (socket.timeout, TimeoutError):
                if not timed_out:
                    timed_out = True
                    self._dump_and_kill(engine, cid)
                elif not killed:
                    killed = True
                    with contextlib.suppress(Exception):
                        engine.kill(cid)
                else:
                    raise InfraError(f"container {cid[:12]} did not stop after being killed") from None
                deadline = time.monotonic() + self.grace_s
            except (OSError, http_errors()) as exc:
                raise InfraError(f"lost the Docker daemon while the container ran: {one_line(exc)}") from None

    @staticmethod
    def _dump_and_kill(engine: Engine, cid: str) -> None:
        """Inside the container (the record is on its tmpfs): SIGUSR1 to the process that
        claimed the record (faulthandler dumps every thread's stack), then SIGKILL to it, so
        the run script still writes the record. No claim or a refused exec: the container is
        killed from outside."""
        try:  # bounded as a whole: the program can hold the exec's stream open or feed it
            code, _ = engine.exec_run(cid, ["sh", "-c", dump_script()], user=f"{UID}:{UID}", timeout=10)
        except Exception:
            code = -1
        # 137: the run script's own `kill -KILL -1` took the dump script down once the killed
        # program let it go on: it did its job, and the record is on its way out
        if code not in (0, 137):
            with contextlib.suppress(Exception):
                engine.kill(cid)

    def pids_limit_for(self, bundle: Bundle) -> int:
        modules = (bundle.json("run.json", {}) or {}).get("modules") or []
        return self.pids_limit_ray if "ray" in modules else self.pids_limit

    # -- describe / close ------------------------------------------------------------
    def describe(self, env: DockerEnv) -> dict:
        return {"backend": "docker", "image": env.tag, "image_id": env.image_id, "base_image": env.base_image,
                "gpus": env.gpus, "network": env.network, "reused": env.reused,
                "platform": {"system": "Linux", "machine": env.machine}, "notes": list(env.notes)}

    def close(self, env: DockerEnv, options: ReplayOptions) -> None:
        with shielded():
            self._close(env)

    @staticmethod
    def _close(env: DockerEnv) -> None:
        if env.hold is not None:
            env.hold.close()
            env.hold = None
        if env.with_set is not None:
            env.with_set.cleanup()
        if env.sdk is not None:
            with contextlib.suppress(Exception):
                env.sdk.close()


def _bytes(size: str | int) -> int:
    """'2g' -> bytes, as docker run --memory reads it."""
    from reprex.fsutil import parse_size

    try:
        return parse_size(size)
    except ValueError:
        raise InfraError(f"REPREX_DOCKER_MEMORY={size!r}: use a size like 2g or 512m") from None
