"""What does `reprex replay` cost next to doing the same thing by hand with Docker?

One run captures examples/quickstart (`python train.py config.json`, a KeyError) with this
interpreter, then measures, interleaved (every repetition runs every case once, in a rotating
order, so load hits all cases alike; a reprex case with a target runs back to back with its
baseline, in alternating order, and is judged on the median of the paired ratios), the wall
time of:

  * warm docker replay: `reprex replay X --backend docker --json` (CLI; also without --json)
    and `replay()` (library), the
    environment image already built, against a bare `docker run` of the same image
    (`docker run --rm --network none -v WORK:/w -w /w IMAGE python train.py config.json`);
    target: CLI <= 1.5x the bare run;
  * cold docker replay: the environment image removed first (`docker rmi`; the host wheel
    cache stays warm) and built without Docker's layer cache (REPREX_DOCKER_NO_CACHE=1),
    against `docker build --no-cache` of an equivalent hand-written Dockerfile (base image,
    the same wheels, a venv, `pip install --no-index`) + `docker run` of it; target <= 1.1x;
  * warm local replay: `reprex replay X --backend local` (CLI) and the library; target <= 1 s;
  * `--runs 10` (library, docker, warm) against 10 x one warm library replay (each run is a
    fresh container, so ~1x: only prepare is paid once);
  * what the CLI pays before any work: interpreter start + the imports of a docker replay.

    .venv/bin/python benchmarks/replay.py [--reps 5] [--image python:3.11-slim] [--pin six==1.17.0 ...]
                                          [--json out.json]

Needs a Docker engine and the base image (`bash scripts/ensure_docker.sh && bash scripts/base_image.sh`).
A private cache (REPREX_CACHE_DIR) in a temp dir keeps the user's cache out of it.

Cold replays of bundles with real pins (scikit-learn, Ray) against the same environment made by
hand with uv, locally and in Docker, are benchmarks/replay_cold.py (issue 13).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from timing import median  # noqa: E402  (benchmarks/ is the script's own dir)

TARGETS = {"warm_cli": 1.5, "cold": 1.1, "local_s": 1.0}

HAND_DOCKERFILE = """\
FROM {base}
COPY wheels/ /wheels/
RUN python3 -m venv /venv && if ls /wheels/*.whl >/dev/null 2>&1; then \\
    /venv/bin/pip install --no-index --no-deps --disable-pip-version-check /wheels/*.whl; fi
COPY work/ /w/
WORKDIR /w
CMD ["/venv/bin/python", "train.py", "config.json"]
"""


def sh(argv: list[str], *, env: dict | None = None, cwd: Path | None = None, expect=(0,)) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if expect is not None and proc.returncode not in expect:
        tail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(argv)[:160]} exited {proc.returncode}: {' | '.join(tail)}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--image", default=os.environ.get("REPREX_TEST_IMAGE", "python:3.11-slim"))
    ap.add_argument("--pin", action="append", default=[], metavar="NAME==VERSION",
                    help="add a pin to the captured bundle (the quickstart imports only the stdlib), "
                         "so the builds install something; repeatable")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="reprex-bench-replay-"))
    cache = tmp / "cache"
    os.environ["REPREX_CACHE_DIR"] = str(cache)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPREX_") or k == "REPREX_CACHE_DIR"}
    # bytecode cached as an installed wheel's would be (an editable checkout otherwise recompiles)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")

    from reprex.bundle import Bundle
    from reprex.capture.pipeline import CaptureOptions, capture_command
    from reprex.replay import ReplayOptions, replay
    from reprex.replay.base import lock_hash, requirements, work_files
    import docker

    client = docker.from_env()  # the benchmark's own housekeeping; reprex itself doesn't need the SDK warm
    client.images.get(args.image)  # fail early: run scripts/base_image.sh

    # -- the bundle ------------------------------------------------------------------
    example = tmp / "quickstart"
    shutil.copytree(ROOT / "examples" / "quickstart", example)
    captured = capture_command([sys.executable, "train.py", "config.json"], CaptureOptions(tee=False), cwd=str(example))
    bundle_path = captured.path
    bundle = Bundle.read(bundle_path)
    if args.pin:
        bundle.files["requirements.txt"] = (bundle.text("requirements.txt") + "\n".join(args.pin) + "\n").encode()
        bundle.finalize().write(bundle_path)
        bundle = Bundle.read(bundle_path)
    n_pins = len(requirements(bundle))
    work = tmp / "work"
    for rel, data in work_files(bundle).items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(data)
    print(f"bundle {bundle_path.name}: {n_pins} pins, signature {bundle.manifest['expect']['signature']['id']}; "
          f"image {args.image}; {args.reps} reps", file=sys.stderr)

    docker_opts = ReplayOptions(backend="docker", image=args.image)
    from reprex.replay.docker import ENV_REPO

    for image in client.images.list(name=ENV_REPO):  # start cold: the wheel cache gets filled too
        if image.labels.get("org.reprex.lock") == lock_hash(bundle):
            client.images.remove(image.id, force=True)
    first = replay(bundle, docker_opts)  # builds the env image and fills the wheel cache
    assert first.verdict == "reproduced", (first.verdict, first.reason)
    env_image = first.image
    local_first = replay(bundle, ReplayOptions(backend="local"))
    assert local_first.verdict == "reproduced", (local_first.verdict, local_first.reason)

    # the hand-written equivalent: same base, same wheels (from reprex's host wheel cache)
    hand = tmp / "hand"
    (hand / "wheels").mkdir(parents=True)
    for wheel_dir in (cache / "wheels").glob(f"{lock_hash(bundle)}-*"):
        for whl in wheel_dir.glob("*.whl"):
            shutil.copy2(whl, hand / "wheels" / whl.name)
    if n_pins and not any((hand / "wheels").glob("*.whl")):
        raise RuntimeError("no wheels in reprex's cache for the hand-written build")
    shutil.copytree(work, hand / "work")
    (hand / "Dockerfile").write_text(HAND_DOCKERFILE.format(base=args.image))

    cli = [sys.executable, "-m", "reprex", "replay", str(bundle_path), "--json"]
    bare = ["docker", "run", "--rm", "--network", "none", "-v", f"{work}:/w:ro", "-w", "/w", env_image,
            "/opt/reprex/venv/bin/python", "train.py", "config.json"]

    # Cold means no layer cache on either side: other reprex-env images (same base, same pins)
    # share reprex's install layer, so both builds run without Docker's build cache.
    def cold_reprex() -> float:
        sh(["docker", "rmi", "-f", env_image], expect=None)
        return sh([*cli, "--backend", "docker", "--image", args.image], env={**env, "REPREX_DOCKER_NO_CACHE": "1"})

    def cold_hand() -> float:
        sh(["docker", "rmi", "-f", "reprex-bench-hand:1"], expect=None)
        took = sh(["docker", "build", "--no-cache", "-q", "-t", "reprex-bench-hand:1", str(hand)], env=env)
        took += sh(["docker", "run", "--rm", "--network", "none", "reprex-bench-hand:1"], expect=(1,))
        return took

    def lib(options: ReplayOptions):
        def run() -> float:
            start = time.perf_counter()
            result = replay(bundle, options)
            took = time.perf_counter() - start
            assert result.verdict == "reproduced", (result.verdict, result.reason)
            return took
        return run

    cases = {
        "warm_cli": lambda: sh([*cli, "--backend", "docker", "--image", args.image], env=env),
        "warm_cli_human": lambda: sh([*cli[:-1], "--backend", "docker", "--image", args.image], env=env),
        "warm_lib": lib(docker_opts),
        "bare_run": lambda: sh(bare, expect=(1,)),
        "cold_reprex": cold_reprex,
        "cold_hand": cold_hand,
        "local_cli": lambda: sh([*cli, "--backend", "local"], env=env),
        "local_lib": lib(ReplayOptions(backend="local")),
        "runs10": lib(ReplayOptions(backend="docker", image=args.image, runs=10)),
        # what the CLI pays before any work: interpreter start + the imports of a docker replay
        "cli_imports": lambda: sh([sys.executable, "-c", "import reprex.cli, reprex.cli.replay, reprex.bundle, "
                                   "reprex.replay, reprex.replay.docker, reprex.record, reprex.signature"],
                                  env=env),
    }
    samples: dict[str, list[float]] = {k: [] for k in cases}
    # A reprex case and its baseline run back to back (which one first alternates), so the
    # machine's load hits both alike; targets are judged on the median of the paired ratios.
    partner = {"warm_cli": "bare_run", "cold_reprex": "cold_hand"}
    keys = [k for k in cases if k not in partner.values()]
    for rep in range(args.reps):
        order = keys[rep % len(keys):] + keys[:rep % len(keys)]
        for key in order:  # cold_reprex rebuilds the env image, so the warm cases find it again
            pair = [key, partner[key]] if key in partner else [key]
            for k in (pair if rep % 2 == 0 else pair[::-1]):
                samples[k].append(cases[k]())
        print(f"  rep {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    sh(["docker", "rmi", "-f", "reprex-bench-hand:1"], expect=None)

    m = {k: median(v) for k, v in samples.items()}
    paired = {k: median([a / b for a, b in zip(samples[k], samples[v])]) for k, v in partner.items()}
    one_warm = m["warm_lib"]
    rows = [
        ("warm docker replay, CLI", m["warm_cli"], "bare `docker run` of the env image", m["bare_run"],
         f"<= {TARGETS['warm_cli']}x", paired["warm_cli"] <= TARGETS["warm_cli"]),
        ("warm docker replay, CLI (human output, not a terminal)", m["warm_cli_human"],
         "bare `docker run` of the env image", m["bare_run"], "-", None),
        ("warm docker replay, library", m["warm_lib"], "bare `docker run` of the env image", m["bare_run"], "-", None),
        ("cold docker replay, CLI (image removed)", m["cold_reprex"], "`docker build` (hand-written) + `docker run`",
         m["cold_hand"], f"<= {TARGETS['cold']}x", paired["cold_reprex"] <= TARGETS["cold"]),
        ("warm local replay, CLI", m["local_cli"], "-", None, f"<= {TARGETS['local_s']} s",
         m["local_cli"] <= TARGETS["local_s"]),
        ("warm local replay, library", m["local_lib"], "-", None, f"<= {TARGETS['local_s']} s",
         m["local_lib"] <= TARGETS["local_s"]),
        ("CLI start + imports of a docker replay", m["cli_imports"], "-", None, "-", None),
        ("`--runs 10`, docker, library", m["runs10"], "10 x one warm library replay", 10 * one_warm,
         "~1x (fresh container per run)", None),
    ]
    lines = ["| case | reprex (s) | baseline | baseline (s) | ratio | target | |",
             "|---|---:|---|---:|---:|---|---|"]
    paired_by_label = {rows[0][0]: paired["warm_cli"], rows[3][0]: paired["cold_reprex"]}
    for label, value, base_label, base, target, ok in rows:
        ratio = f"{value / base:.2f}x" if base else "-"
        if label in paired_by_label:  # judged on the paired ratios' median; the medians' ratio beside it
            ratio = f"{paired_by_label[label]:.2f}x (medians: {ratio})"
        verdict = "-" if ok is None else ("PASS" if ok else "FAIL")
        lines.append(f"| {label} | {value:.3f} | {base_label} | {'-' if base is None else f'{base:.3f}'} | {ratio} "
                     f"| {target} | {verdict} |")
    print()
    print(f"reprex replay benchmark: examples/quickstart ({n_pins} pins), base image {args.image}, "
          f"env image {env_image}, medians of {args.reps} interleaved reps; a ratio with a target is the "
          f"median of per-repetition ratios (reprex and its baseline run back to back)")
    print()
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, "medians": m, "paired_ratios": paired, "pins": n_pins,
                                         "image": args.image}, indent=2))
        print(f"\nwrote {args.json}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
