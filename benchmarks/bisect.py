"""`reprex bisect --package` on the real regressions of tests/bisect_cases.py (issue 14's "done when").

Per case, against the loopback index of PyPI's own files (tests/bisect_index.py; fetched once
into .pytest_cache/d/bisect-wheels, then no network):

  * probes: replays `reprex bisect` used (the bundle's own included) vs the bound
    ceil(log2(releases in range)) + 2 + skipped probes (range: from --good, or the oldest
    release probed, up to the bad pin; releases that can't be installed here left out) vs a
    plain linear scan (the bundle's own, then back one release at a time until one passes);
  * wall time per probe: the bisection's wall time / its replays, with an empty
    REPREX_CACHE_DIR (every probe builds its environment), vs one cold replay of the same bundle
    (`reprex replay B --json`, empty REPREX_CACHE_DIR); uv's own cache is warm for both (a
    warm-up run fills it). Target <= 1.2x. Median over --reps.

    .venv/bin/python benchmarks/bisect.py [--reps 3] [--cases urllib3-method-whitelist,...]
                                          [--backend local|docker] [--image reprex-base:py3.11]
                                          [--jobs N] [--json out.json]

Exits 1 when a case names the wrong release or misses a target.
"""

from __future__ import annotations

import os
import sys

# This file is named like the standard library's bisect (which random and tempfile import):
# its own folder goes last on the path so `import bisect` still finds the standard one.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bisect_cases import BY_NAME, CASES, Case, bisect_argv, capture_case, linear_scan, probe_budget  # noqa: E402
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
    replay = [sys.executable, "-m", "reprex", "replay", str(bundle), "--json", *backend_args(args)]
    timed(bisect, fresh_cache("warmup"))  # fills uv's cache (and the docker base image's layers)
    cold, per_probe, data, stderr = [], [], {}, ""
    for rep in range(args.reps):
        order = [("replay", replay), ("bisect", bisect)]
        for what, argv in (order if rep % 2 == 0 else order[::-1]):
            seconds, out, err = timed(argv, fresh_cache(f"{what}-{rep}"))
            if what == "replay":
                if out.get("verdict") != "reproduced":
                    raise SystemExit(f"{case.name}: cold replay said {out.get('verdict')!r}: {err[-400:]}")
                cold.append(seconds)
            else:
                data, stderr = out, err
                per_probe.append(seconds / max(1, out.get("replays") or 1))
    if not data.get("findings"):
        raise SystemExit(f"{case.name}: reprex bisect gave no result: {stderr[-800:]}")
    finding = data["findings"][0]
    used, bound = probe_budget(data, case)
    return {"case": case.name, "package": case.package, "first_bad": finding["first_bad"],
            "expected": case.expected_first_bad, "last_good": finding["last_good"],
            "skipped": len(finding["skipped"]), "probes": used, "bound": bound, "linear": linear_scan(case),
            "per_probe_s": median(per_probe), "cold_replay_s": median(cold),
            "ratio": median(per_probe) / median(cold), "summary": data.get("summary", "")}


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
    head = f"{'case':38} {'first bad':>10} {'right':>5} {'probes':>6} {'bound':>5} {'linear':>6} {'skip':>4} " \
           f"{'s/probe':>8} {'cold':>6} {'ratio':>6}"
    print(f"reprex bisect --package, backend {args.backend}, --jobs {args.jobs}, median of {args.reps}")
    print(head)
    print("-" * len(head))
    for r in rows:
        right = r["first_bad"] == r["expected"]
        ok = right and r["probes"] <= r["bound"] and r["ratio"] <= PROBE_TARGET
        failed |= not ok
        print(f"{r['case']:38} {str(r['first_bad']):>10} {'yes' if right else 'NO':>5} {r['probes']:>6} "
              f"{r['bound']:>5} {r['linear']:>6} {r['skipped']:>4} {r['per_probe_s']:>8.2f} "
              f"{r['cold_replay_s']:>6.2f} {r['ratio']:>5.2f}x{'' if ok else '  FAIL'}")
    total = {k: sum(r[k] for r in rows) for k in ("probes", "bound", "linear")}
    print(f"{'total':38} {'':>10} {'':>5} {total['probes']:>6} {total['bound']:>5} {total['linear']:>6}")
    print(f"targets: probes <= bound (ceil(log2(releases in range)) + 2 + skipped probes); "
          f"s/probe <= {PROBE_TARGET}x one cold replay")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
