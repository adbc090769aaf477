"""`reprex bisect --package` on the real regressions of tests/bisect_cases.py (issue 14's "done when").

Per case, against the loopback index of PyPI's own files (tests/bisect_index.py; fetched once
into .pytest_cache/d/bisect-wheels, then no network):

  * probes, two ways: with the range given (--good the case's oldest release; the issue's
    bound ceil(log2(releases in range)) + 2 + skipped probes applies), and with no --good (reprex
    steps back 1, 2, 4... from the bundle's pin; the bound printed is the same formula over the
    releases from the oldest one it probed). Replays counted include the bundle's own (the bad
    baseline). Next to them a plain linear scan: the bundle's own, then back one release at a
    time until one passes (releases that can't be installed here passed over);
  * wall time per probe: the bisection's wall time / its replays, with an empty
    REPREX_CACHE_DIR (every probe builds its environment; on docker the env images of the
    locks involved are removed first, so each probe builds its image), vs one cold replay of the
    same bundle (`reprex replay B --json`, the same way cold); uv's own cache is warm for both (a
    warm-up run fills it). Target <= 1.2x, judged on the median of each repetition's own ratio
    (a replay and a bisection back to back, which goes first alternating). Also printed: a
    step's own seconds as the bisection logs them (without the CLI's start and the listing).

    .venv/bin/python benchmarks/bisection.py [--reps 3] [--cases urllib3-method-whitelist,...]
                                          [--backend local|docker] [--image reprex-base:py3.11]
                                          [--jobs N] [--json out.json]

Exits 1 when a case names the wrong release or misses a target.
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
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bisect_cases import (BY_NAME, CASES, Case, bisect_argv, capture_case, linear_scan, oldest_good,  # noqa: E402
                          probe_budget)
from bisect_index import FileCache, IndexServer, cache_dir  # noqa: E402
from timing import median  # noqa: E402

PROBE_TARGET = 1.2


def timed(argv: list[str], env: dict) -> tuple[float, dict, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800)
    seconds = time.perf_counter() - start
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        data = {}
    return seconds, data, proc.stderr


def drop_env_images(locks: set[str]) -> None:
    """Remove the docker env images of these lock hashes (only ours: other runs' images stay), so
    a docker probe or replay is cold: it builds its image."""
    for lock in sorted(locks):
        ids = subprocess.run(["docker", "images", "-q", "--filter", f"label=org.reprex.lock={lock}"],
                             capture_output=True, text=True, timeout=60).stdout.split()
        if ids:
            subprocess.run(["docker", "rmi", "-f", *sorted(set(ids))], capture_output=True, timeout=300)


def locks_of(result: dict) -> set[str]:
    return {s["lock"] for s in result.get("steps", []) if s.get("lock")}


def backend_args(args) -> list[str]:
    return ["--backend", args.backend] + (["--image", args.image] if args.backend == "docker" else [])


def run_case(index: IndexServer, case: Case, work: Path, args) -> dict:
    bundle = capture_case(index, case, work / "capture")
    env = index.environ()

    def fresh_cache(tag: str) -> dict:
        folder = work / f"cache-{tag}"
        shutil.rmtree(folder, ignore_errors=True)
        return {**env, "REPREX_CACHE_DIR": str(folder)}

    jobs = ["--jobs", str(args.jobs)] if args.jobs > 1 else []
    bisect = bisect_argv(case, bundle, work / "out.reprex.zip", *backend_args(args), *jobs)
    known = bisect_argv(case, bundle, work / "known.reprex.zip", *backend_args(args), *jobs, "--good",
                        oldest_good(case))
    replay = [sys.executable, "-m", "reprex", "replay", str(bundle), "--json", *backend_args(args)]
    _, warm, _ = timed(bisect, fresh_cache("warmup"))  # fills uv's cache (and the host's wheel cache)
    locks = locks_of(warm)
    cold, per_probe, per_step, data, stderr = [], [], [], {}, ""
    for rep in range(args.reps):  # a replay and a bisection back to back, which goes first alternating
        order = [("replay", replay), ("bisect", bisect)]
        for what, argv in (order if rep % 2 == 0 else order[::-1]):
            if args.backend == "docker":
                drop_env_images(locks)
            seconds, out, err = timed(argv, fresh_cache(f"{what}-{rep}"))
            locks |= locks_of(out)
            if what == "replay":
                if out.get("verdict") != "reproduced":
                    raise SystemExit(f"{case.name}: cold replay said {out.get('verdict')!r}: {err[-400:]}")
                cold.append(seconds)
            else:
                data, stderr = out, err
                steps = out.get("steps") or [{}]
                per_probe.append(seconds / max(1, out.get("replays") or 1))
                per_step.append(sum(s.get("seconds") or 0 for s in steps) / len(steps))
    _, given, given_err = timed(known, fresh_cache("known"))
    if args.backend == "docker":
        drop_env_images(locks | locks_of(given))
    for what, result, err in (("bisect", data, stderr), ("bisect --good", given, given_err)):
        if not result.get("findings"):
            raise SystemExit(f"{case.name}: reprex {what} gave no result: {err[-800:]}")
    finding = data["findings"][0]
    used, bound, _ = probe_budget(data, case, case.good)
    used_known, bound_known, n_known = probe_budget(given, case, oldest_good(case))
    return {"case": case.name, "package": case.package, "first_bad": finding["first_bad"],
            "expected": case.expected_first_bad, "last_good": finding["last_good"],
            "known_first_bad": given["findings"][0]["first_bad"], "skipped": len(finding["skipped"]),
            "probes": used, "bound": bound, "probes_known": used_known, "bound_known": bound_known,
            "releases_known": n_known, "linear": linear_scan(case),
            "per_probe_s": median(per_probe), "per_step_s": median(per_step), "cold_replay_s": median(cold),
            # each repetition's pair judged on its own (the machine's load drifts between pairs)
            "ratio": median([p / c for p, c in zip(per_probe, cold)]), "summary": data.get("summary", "")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cases", default=",".join(c.name for c in CASES))
    parser.add_argument("--backend", choices=["local", "docker"], default="local")
    parser.add_argument("--image", default="reprex-base:py3.11")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    unknown = [n for n in args.cases.split(",") if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    index = IndexServer(FileCache(cache_dir())).start()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="reprex-bench-bisect-") as tmp:
            for name in args.cases.split(","):
                print(f"... {name}", file=sys.stderr, flush=True)
                rows.append(run_case(index, BY_NAME[name], Path(tmp) / name, args))
    finally:
        index.stop()
    failed = False
    head = (f"{'case':36} {'first bad':>9} {'right':>5} | {'range':>5} {'probes':>6} {'bound':>5} | "
            f"{'probes':>6} {'bound':>5} | {'linear':>6} {'skip':>4} | {'s/probe':>7} {'step':>5} {'cold':>5} "
            f"{'ratio':>6}")
    print(f"reprex bisect --package, backend {args.backend}, --jobs {args.jobs}, median of {args.reps} "
          f"(time: the step-back runs)")
    print(f"{'':36} {'':>9} {'':>5} | {'--good oldest given':^19} | {'no --good':^14} |")
    print(head)
    print("-" * len(head))
    for r in rows:
        right = r["first_bad"] == r["expected"] == r["known_first_bad"]
        ok = right and r["probes_known"] <= r["bound_known"] and r["ratio"] <= PROBE_TARGET
        failed |= not ok
        back = "" if r["probes"] <= r["bound"] else "!"
        print(f"{r['case']:36} {str(r['first_bad']):>9} {'yes' if right else 'NO':>5} | {r['releases_known']:>5} "
              f"{r['probes_known']:>6} {r['bound_known']:>5} | {r['probes']:>5}{back:1} {r['bound']:>5} | "
              f"{r['linear']:>6} {r['skipped']:>4} | {r['per_probe_s']:>7.2f} {r['per_step_s']:>5.2f} "
              f"{r['cold_replay_s']:>5.2f} {r['ratio']:>5.2f}x{'' if ok else '  FAIL'}")
    total = {k: sum(r[k] for r in rows) for k in ("releases_known", "probes_known", "bound_known", "probes",
                                                   "bound", "linear")}
    print(f"{'total':36} {'':>9} {'':>5} | {total['releases_known']:>5} {total['probes_known']:>6} "
          f"{total['bound_known']:>5} | {total['probes']:>6} {total['bound']:>5} | {total['linear']:>6}")
    print("probes = replays, the bundle's own included; bound = ceil(log2(releases in range)) + 2 + skipped "
          "probes (no --good: the range starts at the oldest release probed; '!' over it); linear = a scan back "
          "from the pin; skip = releases reported as not probeable; s/probe = the bisection's wall time / its "
          "replays, step = a step's own seconds as the JSON logs them, cold = one cold `reprex replay`, ratio = "
          "median over the repetitions of s/probe / cold. Targets: right, probes <= bound with the range given, "
          f"s/probe <= {PROBE_TARGET}x one cold replay")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
