"""Replay at scale: 32 bundles replayed one after another vs as Ray tasks on a local cluster, in one
run, plus what a model of 1-64 nodes needs (issue 16).

One run:

  * builds a corpus of N really captured bundles (benchmarks/scale_corpus.py: N distinct failures
    over L pin sets, i.e. L environments) and starts a one-node local Ray cluster advertising
    `reprex_docker` (the node's daemon answers) with --cpus logical CPUs;
  * cold: the corpus's environment images removed, the whole corpus replayed serially with
    `replay()` (what `reprex replay` does per bundle), then removed again and replayed with
    `reprex.scale.replay_many` (each replay a Ray task, bundles through the object store);
  * warm, --reps times, alternating which goes first: serial `replay()` of the corpus vs
    `replay_many` at each concurrency of --slots (a task asks for cpus/slots CPUs, so that many
    replays run at once), every verdict checked `reproduced`;
  * the machine's CPU use (/proc/stat) in each phase: a docker replay waits on the daemon, the
    container's start and the repro's own interpreter, so one replay at a time leaves much of
    the 2 cores idle; that idle share is what concurrency on the same cores gets back;
  * Ray's own per-task cost: a no-op task with a bundle-sized payload through the object store,
    one at a time (latency) and all at once (the driver's throughput);
  * the model of 1-64 nodes from those numbers (see model() and benchmarks/README.md).

    .venv/bin/python benchmarks/scale.py [--n 32] [--locks 4] [--reps 5] [--cpus 8] [--slots 4,6]
                                         [--image reprex-base:py3.11] [--json out.json]

Needs a Docker engine and the base image (`bash scripts/ensure_docker.sh && bash scripts/base_image.sh`)
and Ray. A private cache (REPREX_CACHE_DIR) in a temp dir keeps the user's cache out of it.
"""

from __future__ import annotations

import sys

# This script's own folder goes last on the path, not first: a sibling named like a standard
# module (benchmarks/bisect.py) must not stand in for it (tempfile -> random -> bisect).
_HERE = __file__.rpartition("/")[0] or "."
sys.path[:] = [p for p in sys.path if p not in (_HERE, "")] + [_HERE]

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scale_corpus import build_corpus  # noqa: E402  (benchmarks/ is the script's own dir)
from timing import median  # noqa: E402

TARGET = 1.8  # warm docker replays, Ray on one 2-core machine vs serial
MODEL_NODES = (1, 2, 4, 8, 16, 32, 64)
PLACEMENTS = ("spill", "pinned", "random")


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine: the daemon, containerd and the containers too."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def own_cpu() -> float:
    """CPU seconds of this process and its waited-for children (the serial replays run here)."""
    import resource

    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


class Phase:
    """Wall time, the machine's busy cores (everyone's: the daemon, containerd, the containers,
    and other users' work) and this process's own CPU over a block."""

    def __enter__(self):
        self.t0, self.c0, self.own0 = time.perf_counter(), cpu_ticks(), own_cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.own = own_cpu() - self.own0
        busy, total = (a - b for a, b in zip(cpu_ticks(), self.c0))
        self.busy_cores = (os.cpu_count() or 1) * busy / total if total else 0.0


def remove_env_images(client, locks: set[str]) -> int:
    """The corpus's environment images (their lock labels), unless a container uses one."""
    from reprex.replay.docker import ENV_REPO

    gone = 0
    for image in client.images.list(name=ENV_REPO):
        if image.labels.get("org.reprex.lock") in locks:
            try:
                client.images.remove(image.id, force=False)
                gone += 1
            except Exception:  # in use by someone's running replay: leave it
                pass
    return gone


def serial(bundles, options) -> tuple[Phase, list[float]]:
    from reprex.replay import replay

    each = []
    with Phase() as phase:
        for bundle in bundles:
            start = time.perf_counter()
            result = replay(bundle, options)
            each.append(time.perf_counter() - start)
            if result.verdict != "reproduced":
                raise RuntimeError(f"serial {bundle.name}: {result.verdict}: {result.reason}")
    return phase, each


def on_ray(paths, options, address: str, num_cpus: float) -> tuple[Phase, list]:
    from reprex.scale import replay_many

    with Phase() as phase:
        results = replay_many([str(p) for p in paths], options, address=address, num_cpus=num_cpus)
    bad = [(r.bundle, r.verdict, r.reason) for r in results if r.verdict != "reproduced"]
    if bad:
        raise RuntimeError(f"ray: {len(bad)} not reproduced, e.g. {bad[0]}")
    return phase, results


def ray_overhead(ray, payload: int, count: int = 200) -> dict:
    """Seconds per no-op task carrying `payload` bytes through the object store: one at a time
    (submit, wait: the latency a replay pays on top) and all at once (the driver's ceiling)."""
    @ray.remote(num_cpus=1)  # as a replay task asks: the node's running workers take them, none start
    def noop(data: bytes) -> int:
        return len(data)

    blob = os.urandom(payload)
    ray.get([noop.remote(ray.put(blob)) for _ in range(20)])  # workers up
    start = time.perf_counter()
    for _ in range(count // 4):
        ray.get(noop.remote(ray.put(blob)))
    latency = (time.perf_counter() - start) / (count // 4)
    start = time.perf_counter()
    ray.get([noop.remote(ray.put(blob)) for _ in range(count)])
    pipelined = (time.perf_counter() - start) / count
    return {"latency_s": latency, "pipelined_s": pipelined, "payload_bytes": payload}


# -- the model ---------------------------------------------------------------------------------

def builds(n_nodes: int, bundles: int, envs: int, placement: str) -> float:
    """Environment builds for `bundles` spread evenly over `envs` environments on `n_nodes` nodes.

    random:   Ray places each task anywhere: an environment is built on every node that draws one
              of its bundles (balls into bins);
    spill:    lock-hash affinity that may spill a busy preferred node's queue elsewhere: an
              environment spreads only over the nodes its share of the work needs (n/envs);
    pinned:   affinity without spilling (Ray's soft NodeAffinity waits for a busy node): each
              environment is built once, and its bundles queue on that node."""
    per_env = bundles / envs
    spread = n_nodes * (1 - (1 - 1 / n_nodes) ** per_env)  # expected distinct nodes an env's bundles hit
    if placement == "random":
        return envs * spread
    if placement == "spill":
        return envs * min(spread, max(1.0, n_nodes / envs))
    return float(envs)


def model(n_nodes: int, *, bundles: int, envs: int, warm_rate: float, build_s: float, driver_s: float,
          start_s: float, placement: str = "spill") -> dict:
    """Seconds and throughput for `bundles` over `envs` environments on `n_nodes` nodes like this one.

    warm_rate: warm replays per second one node sustains (measured, best concurrency);
    build_s:   one environment build (cold replay minus warm replay, measured);
    driver_s:  the driver's cost per task, pipelined (measured no-op with a bundle-sized payload);
    start_s:   connecting the driver to the cluster.
    A build holds its node for build_s (conservative: the node's other slots keep replaying
    meanwhile); the driver submits and collects every task, so it bounds the rate too."""
    made = builds(n_nodes, bundles, envs, placement)
    used = min(n_nodes, envs) if placement == "pinned" else n_nodes  # nodes that get work
    work = bundles / (used * warm_rate) + made * build_s / used
    total = start_s + max(work, bundles * driver_s)
    return {"nodes": n_nodes, "seconds": total, "per_s": bundles / total, "builds": made,
            "hit_rate": 1 - made / bundles, "driver_bound": bundles * driver_s > work}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=32, help="bundles in the corpus")
    ap.add_argument("--locks", type=int, default=4, help="environments (pin sets) they share")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cpus", type=int, default=8, help="logical CPUs of the local Ray node")
    ap.add_argument("--slots", default="4,6", help="concurrencies to try (replays at once)")
    ap.add_argument("--image", default=os.environ.get("REPREX_TEST_IMAGE", "python:3.11-slim"))
    ap.add_argument("--model-bundles", type=int, default=500)
    ap.add_argument("--model-envs", type=int, default=20)
    ap.add_argument("--no-cold", action="store_true", help="skip the cold phase")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    slots = [int(s) for s in args.slots.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="reprex-bench-scale-"))
    os.environ["REPREX_CACHE_DIR"] = str(tmp / "cache")  # before ray.init: the workers inherit it
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import docker

    from reprex.bundle import Bundle
    from reprex.replay import ReplayOptions
    from reprex.replay.base import lock_hash

    client = docker.from_env()
    client.images.get(args.image)  # fail early: run scripts/base_image.sh
    t0 = time.perf_counter()
    paths = build_corpus(tmp / "corpus", args.n, args.locks, first=1)
    bundles = [Bundle.read(p) for p in paths]
    locks = {lock_hash(b) for b in bundles}
    size = median([p.stat().st_size for p in paths])
    print(f"corpus: {len(paths)} bundles over {len(locks)} environments, median {size:.0f} bytes, captured in "
          f"{time.perf_counter() - t0:.1f}s; image {args.image}; load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    options = ReplayOptions(backend="docker", image=args.image)

    import logging

    import ray

    from reprex.scale.node import node_resources

    with Phase() as started:
        ray.init(address="local", num_cpus=args.cpus, resources=node_resources(docker=True), include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING)
    address = ray.get_runtime_context().gcs_address
    out: dict = {"n": args.n, "envs": len(locks), "cpus": args.cpus, "image": args.image, "slots": slots,
                 "ray_start_s": started.wall, "load_before": os.getloadavg()[0]}

    if not args.no_cold:
        remove_env_images(client, locks)
        cold_serial, cold_each = serial(bundles, options)
        remove_env_images(client, locks)
        cold_ray, _ = on_ray(paths, options, address, args.cpus / max(slots))  # first Ray pass: workers start too
        out["cold"] = {"serial_s": cold_serial.wall, "ray_s": cold_ray.wall, "serial_busy": cold_serial.busy_cores,
                       "ray_busy": cold_ray.busy_cores, "serial_each": cold_each}
        print(f"cold: serial {cold_serial.wall:.1f}s, ray ({max(slots)} at once) {cold_ray.wall:.1f}s", file=sys.stderr)
    else:
        on_ray(paths[:max(slots)], options, address, args.cpus / max(slots))  # workers up, images built

    warm: dict[str, list] = {"serial": [], **{f"ray{s}": [] for s in slots}}
    busy: dict[str, list] = {k: [] for k in warm}
    each_all: list[float] = []
    own_all: list[float] = []
    for rep in range(args.reps):
        cases = ["serial", *(f"ray{s}" for s in slots)]
        for case in (cases if rep % 2 == 0 else cases[::-1]):
            if case == "serial":
                phase, each = serial(bundles, options)
                each_all += each
                own_all.append(phase.own / len(bundles))
            else:
                phase, _ = on_ray(paths, options, address, args.cpus / int(case[3:]))
            warm[case].append(phase.wall)
            busy[case].append(phase.busy_cores)
        print(f"  rep {rep + 1}/{args.reps}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in warm.items())
              + f" (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    overhead = ray_overhead(ray, int(size))
    ray.shutdown()

    m = {k: median(v) for k, v in warm.items()}
    # each rep's serial pass against the same rep's Ray passes (run back to back, the order
    # alternating), so a burst of someone else's load hits both sides of a ratio alike
    paired = {k: median([a / b for a, b in zip(warm["serial"], v)]) for k, v in warm.items()}
    best = max((k for k in m if k != "serial"), key=lambda k: paired[k])
    speedup = paired[best]
    warm_each = median(each_all)
    build_s = max(0.0, median(out["cold"]["serial_each"][:len(locks)]) - warm_each) if "cold" in out else 0.0
    out.update(warm_s=m, paired=paired, warm_busy={k: median(v) for k, v in busy.items()}, best=best, speedup=speedup,
               warm_replay_s=warm_each, own_cpu_per_replay_s=median(own_all), build_s=build_s, ray_overhead=overhead, load_after=os.getloadavg()[0],
               samples=warm)
    rate = args.n / m[best]
    start_s = 1.0  # connecting a driver to a running cluster (ray.init(address=...)), not starting one
    out["model"] = {"bundles": args.model_bundles, "envs": args.model_envs, "warm_rate": rate,
                    **{placement: [model(n, bundles=args.model_bundles, envs=args.model_envs, warm_rate=rate,
                                         build_s=build_s, driver_s=overhead["pipelined_s"], start_s=start_s,
                                         placement=placement) for n in MODEL_NODES]
                       for placement in PLACEMENTS}}
    report(out, args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)  # the corpus and the private cache (the env images stay)
    return 0 if speedup >= TARGET else 1


def report(out: dict, args) -> None:
    m, b = out["warm_s"], out["warm_busy"]
    print(f"\n{out['n']} bundles over {out['envs']} environments, docker replays ({out['image']}), "
          f"one local Ray node with {out['cpus']} logical CPUs on {os.cpu_count()} cores; median of {args.reps}")
    print(f"{'case':<10} {'wall s':>8} {'busy cores':>11} {'per s':>7} {'vs serial':>10}  (median of per-rep ratios)")
    for key in m:
        print(f"{key:<10} {m[key]:>8.2f} {b[key]:>11.2f} {out['n'] / m[key]:>7.2f} {out['paired'][key]:>9.2f}x")
    if "cold" in out:
        c = out["cold"]
        print(f"cold (images removed): serial {c['serial_s']:.1f}s ({c['serial_busy']:.2f} cores busy), "
              f"ray {c['ray_s']:.1f}s ({c['ray_busy']:.2f}); one build ~{out['build_s']:.1f}s")
    o = out["ray_overhead"]
    print(f"one warm replay {out['warm_replay_s']:.2f}s wall, {out['own_cpu_per_replay_s']:.2f}s CPU of reprex's own "
          f"process (the rest of the replay is the daemon, the container and waiting); ray.init {out['ray_start_s']:.1f}s; a no-op task with "
          f"{o['payload_bytes']} bytes: {o['latency_s'] * 1000:.1f} ms alone, {o['pipelined_s'] * 1000:.2f} ms "
          f"pipelined; load {out['load_before']:.1f} -> {out['load_after']:.1f}")
    verdict = "PASS" if out["speedup"] >= TARGET else "FAIL"
    print(f"ray ({out['best']}) vs serial: {out['speedup']:.2f}x (target >= {TARGET}x): {verdict}")
    mod = out["model"]
    print(f"\nmodel: {mod['bundles']} bundles over {mod['envs']} environments on nodes like this one "
          f"({mod['warm_rate']:.2f} warm replays/s each, a build {out['build_s']:.1f}s); s, bundles/s, cache hits")
    print(f"{'nodes':>5}" + "".join(f" | {p + ' (s, /s, hits)':>26}" for p in PLACEMENTS))
    for row in zip(*(mod[p] for p in PLACEMENTS)):
        cells = "".join(f" | {r['seconds']:>8.1f} {r['per_s']:>7.1f} {r['hit_rate']:>8.1%}" + ("*" if r["driver_bound"]
                                                                                              else " ")
                        for r in row)
        print(f"{row[0]['nodes']:>5}{cells}")
    print("* bound by the driver's per-task cost")

if __name__ == "__main__":
    sys.exit(main())
