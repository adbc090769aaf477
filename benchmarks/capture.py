"""How much does `reprex capture` cost, next to what users already run to describe an environment?

One run measures, side by side and interleaved (every repetition runs every case once, in a
rotating order, so machine load hits all cases alike), the wall time (and the CPU time, which
shared machines disturb much less) of:

  * `python script.py` alone: a 10-line script that reads a small file and raises;
  * `reprex capture -q -o X -- python script.py` (the CLI) and `capture_command(...)` (the
    library, in this process, imports warm): overhead = capture - `python script.py`,
    paired per repetition; CLI minus library is the CLI's start-up and imports;
  * peers run as a user would: `python -m pip freeze`, scooby, session_info2, session_info,
    `python -m torch.utils.collect_env` (torch venv), `reprozip trace` + `reprozip pack`;
  * with a torch venv: `reprex capture` of a script that imports torch (the cuda probe then
    runs a torch subprocess) against `python script_torch.py` alone.

It then reports bundle sizes, ratios, PASS/FAIL against the targets (capture overhead median
<= 0.5 s and below `pip freeze`; bundle <= 50 KiB), and where reprex's time goes: a per-phase
clock on the pipeline's own progress messages, per-probe durations, the recorder's cost in the
child, `-X importtime` of the CLI and a cProfile of one in-process capture (capture_breakdown.py).

    .venv/bin/python benchmarks/capture.py [--reps 7] [--torch-python /tmp/bench-torch/bin/python]
                                           [--reprozip /tmp/bench-reprozip/bin/reprozip] [--json out.json]

Optional peers are used when present and reported as skipped otherwise; nothing is installed.
Children run with bytecode cached under the temp dir (PYTHONPYCACHEPREFIX), as an installed
wheel would have it, even where PYTHONDONTWRITEBYTECODE is set (then the uncached CLI is a row).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "benchmarks"):  # reprex itself, and this script's sibling modules
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from capture_breakdown import breakdown  # noqa: E402
from timing import children_cpu, clean_env, fmt_bytes, fmt_s, importable, stats, timed_run  # noqa: E402

TARGET_OVERHEAD_S = 0.5
# `reprex capture` exits with the program's own status (the script raises: 1), or 0 where
# an older CLI exited 0 once the bundle was written
_CAPTURE_OK = {0, 1}
TARGET_BUNDLE_BYTES = 50 * 1024
REPROZIP_DOC_BYTES = 10.8e6  # ../shared/ENVIRONMENT.md: `reprozip pack` of a 10-line script
DEFAULT_TORCH_PYTHON = "/tmp/bench-torch/bin/python"
DEFAULT_REPROZIP = "/tmp/bench-reprozip/bin/reprozip"

SCRIPT = '''\
import sys


def parse(path):
    rows = []
    with open(path) as fh:
        for line in fh:
            name, value = line.strip().split(",")
            rows.append((name, int(value)))  # 'x' on the last line: ValueError
    return rows


print(parse(sys.argv[1] if len(sys.argv) > 1 else "data.txt"))
'''
SCRIPT_TORCH = "import torch  # noqa: F401  (the cuda probe then queries torch in a subprocess)\n" + SCRIPT
DATA = "alpha,1\nbeta,2\ngamma,x\n"


class Case:
    def __init__(self, key: str, label: str, fn: Callable[[], tuple[float, float]]):
        self.key, self.label, self.fn = key, label, fn
        self.samples: list[float] = []  # wall seconds
        self.cpu: list[float] = []  # CPU seconds (user + sys, children included)


# -- main -----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=7, help="repetitions per case (default 7)")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first (default 1)")
    ap.add_argument("--python", default=sys.executable, help="interpreter that runs script.py (default: this one)")
    ap.add_argument("--reprex", default=None, help="reprex executable (default: next to --python, else -m reprex)")
    ap.add_argument("--torch-python", default=DEFAULT_TORCH_PYTHON,
                    help=f"interpreter with torch, for collect_env and the torch capture ({DEFAULT_TORCH_PYTHON})")
    ap.add_argument("--reprozip", default=DEFAULT_REPROZIP,
                    help=f"reprozip executable (default {DEFAULT_REPROZIP}, else on PATH)")
    ap.add_argument("--no-peers", action="store_true", help="only reprex and python alone")
    ap.add_argument("--no-breakdown", action="store_true", help="skip the phase timer, importtime and cProfile")
    ap.add_argument("--no-pyc-cache", action="store_true",
                    help="run children with the environment as it is (default: cache bytecode under the temp dir)")
    ap.add_argument("--json", type=Path, help="also write every sample and derived number here")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target FAILs")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    if args.reps < 1:
        ap.error("--reps must be >= 1")

    tmp = Path(tempfile.mkdtemp(prefix="reprex-bench-capture-"))
    try:
        return run_benchmark(args, tmp)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def run_benchmark(args, tmp: Path) -> int:
    from reprex.capture.pipeline import CaptureOptions, capture_command

    python = args.python
    if args.reprex:
        reprex_cmd = [args.reprex]
    else:
        beside = Path(python).parent / "reprex"
        reprex_cmd = [str(beside)] if beside.exists() else [python, "-m", "reprex"]
    env = clean_env(None if args.no_pyc_cache else tmp / "pycache")
    (tmp / "script.py").write_text(SCRIPT)
    (tmp / "script_torch.py").write_text(SCRIPT_TORCH)
    (tmp / "data.txt").write_text(DATA)
    notes: list[str] = []
    sizes: dict[str, int] = {}

    cases: list[Case] = []

    def add(key, label, fn):
        cases.append(Case(key, label, fn))

    add("python", "python script.py (alone)", lambda: timed_run([python, "script.py"], tmp, env, {1}))
    cli_out = tmp / "cli.reprex.zip"
    add("cli", "reprex capture -q (CLI)",
        lambda: timed_run(reprex_cmd + ["capture", "-q", "-o", str(cli_out), "--", python, "script.py"], tmp, env,
                          _CAPTURE_OK))

    lib_out = tmp / "lib.reprex.zip"
    lib_options = CaptureOptions(output=lib_out, tee=False)

    def lib_capture() -> tuple[float, float]:
        cpu0, start = time.process_time() + children_cpu(), time.perf_counter()
        result = capture_command([python, "script.py"], lib_options, cwd=str(tmp), env=env)
        elapsed, cpu = time.perf_counter() - start, time.process_time() + children_cpu() - cpu0
        if result.path is None:
            raise RuntimeError(f"library capture wrote no bundle: {result.message}")
        return elapsed, cpu

    start = time.perf_counter()
    lib_capture()  # imports the pipeline's lazy modules (probes, redact, render, jsonschema)
    notes.append(f"library first call in this process (lazy imports included): {time.perf_counter() - start:.3f} s")
    add("lib", "capture_command() (library)", lib_capture)
    if not args.no_pyc_cache and os.environ.get("PYTHONDONTWRITEBYTECODE"):
        raw_env = clean_env(None)
        add("cli_nopyc", "reprex capture -q (CLI, no .pyc as-is env)",
            lambda: timed_run(reprex_cmd + ["capture", "-q", "-o", str(cli_out), "--", python, "script.py"], tmp,
                              raw_env, _CAPTURE_OK))
        notes.append("PYTHONDONTWRITEBYTECODE is set here: cases run with PYTHONPYCACHEPREFIX=<tmp>/pycache "
                     "(bytecode cached, as for an installed wheel); 'no .pyc as-is env' shows the checkout's cost")
    add("version", "reprex --version (CLI floor)", lambda: timed_run(reprex_cmd + ["--version"], tmp, env, {0}))

    torch_python = None
    if not args.no_peers:
        add("pip_freeze", "python -m pip freeze", lambda: timed_run([python, "-m", "pip", "freeze"], tmp, env, {0}))
        peers = [("scooby", "scooby.Report()", "import scooby; print(scooby.Report())"),
                 ("session_info2", "session_info2.session_info()",
                  "import session_info2; print(session_info2.session_info())"),
                 ("session_info", "session_info.show()", "import session_info; session_info.show(html=False)")]
        for module, label, code in peers:
            if importable(python, module, env):
                add(module, label, lambda code=code: timed_run([python, "-c", code], tmp, env, {0}))
            else:
                notes.append(f"{module}: not importable in {python}, skipped")
        if args.torch_python and Path(args.torch_python).exists() and importable(args.torch_python, "torch", env):
            torch_python = args.torch_python
        elif importable(python, "torch", env):
            torch_python = python
        if torch_python:
            torch_out = tmp / "torch.reprex.zip"
            add("torch_python", "torch: python script_torch.py",
                lambda: timed_run([torch_python, "script_torch.py"], tmp, env, {1}))
            add("torch_cli", "torch: reprex capture -q (CLI)",
                lambda: timed_run(reprex_cmd + ["capture", "-q", "-o", str(torch_out), "--", torch_python,
                                                "script_torch.py"], tmp, env, _CAPTURE_OK))
            add("collect_env", "torch: python -m torch.utils.collect_env",
                lambda: timed_run([torch_python, "-m", "torch.utils.collect_env"], tmp, env, {0}))
        else:
            notes.append(f"torch: not importable in {args.torch_python} nor {python}; collect_env and the torch "
                         "capture skipped (make one: python3 -m venv /tmp/bench-torch && "
                         "/tmp/bench-torch/bin/pip install torch==2.13.0)")
        reprozip = args.reprozip if args.reprozip and Path(args.reprozip).exists() else shutil.which("reprozip")
        if reprozip:
            rpz = tmp / "script.rpz"

            def reprozip_run() -> tuple[float, float]:
                trace = timed_run([reprozip, "trace", "--overwrite", "-d", str(tmp / "rz-trace"), python, "script.py"],
                                  tmp, env, None)
                if rpz.exists():
                    rpz.unlink()
                pack = timed_run([reprozip, "pack", "-d", str(tmp / "rz-trace"), str(rpz)], tmp, env, {0})
                return trace[0] + pack[0], trace[1] + pack[1]

            add("reprozip", "reprozip trace + pack", reprozip_run)
        else:
            notes.append("reprozip: not installed, trace+pack not measured; bundle size from ENVIRONMENT.md")

    load_before = os.getloadavg()[0]
    print(f"reprex capture benchmark: {args.reps} reps (+{args.warmup} warm-up), python {python}, "
          f"{os.cpu_count()} CPUs, load average {load_before:.2f}, tmp {tmp}", flush=True)
    for rnd in range(args.warmup + args.reps):
        order = cases[rnd % len(cases):] + cases[:rnd % len(cases)]
        for case in order:
            wall, cpu = case.fn()
            if rnd >= args.warmup:
                case.samples.append(wall)
                case.cpu.append(cpu)
        print(f"  round {rnd + 1}/{args.warmup + args.reps} done", file=sys.stderr, flush=True)

    by_key = {c.key: c for c in cases}
    results: dict[str, dict] = {c.key: {"label": c.label, **stats(c.samples), "cpu": statistics.median(c.cpu),
                                        "samples": c.samples, "cpu_samples": c.cpu} for c in cases}
    notes.insert(0, f"load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after the timed rounds"
                    " on a machine shared with other work: wall times vary with it, CPU times much less")

    def paired(a: str, b: str) -> list[float]:
        return [x - y for x, y in zip(by_key[a].samples, by_key[b].samples)]

    def paired_cpu(a: str, b: str) -> float:
        return statistics.median([x - y for x, y in zip(by_key[a].cpu, by_key[b].cpu)])

    derived: dict[str, dict] = {}
    derived["cli_overhead"] = {"label": "= reprex CLI overhead (CLI - python)", **stats(paired("cli", "python")),
                               "cpu": paired_cpu("cli", "python")}
    if "cli_nopyc" in by_key:
        derived["cli_nopyc_overhead"] = {"label": "= CLI overhead, no .pyc", **stats(paired("cli_nopyc", "python")),
                                         "cpu": paired_cpu("cli_nopyc", "python")}
    derived["lib_overhead"] = {"label": "= library overhead (lib - python)", **stats(paired("lib", "python")),
                               "cpu": paired_cpu("lib", "python")}
    derived["cli_startup"] = {"label": "= CLI start-up (CLI - library)", **stats(paired("cli", "lib")),
                              "cpu": paired_cpu("cli", "lib")}
    if "torch_cli" in by_key:
        derived["torch_overhead"] = {"label": "= torch: reprex CLI overhead",
                                     **stats(paired("torch_cli", "torch_python")),
                                     "cpu": paired_cpu("torch_cli", "torch_python")}

    sizes["reprex bundle (script.py)"] = cli_out.stat().st_size
    if "torch_cli" in by_key:
        sizes["reprex bundle (script_torch.py)"] = (tmp / "torch.reprex.zip").stat().st_size
    if "reprozip" in by_key:
        sizes["reprozip .rpz (script.py)"] = (tmp / "script.rpz").stat().st_size

    # -- table ----------------------------------------------------------------------------
    lines = []
    header = f"{'case (wall time; cpu = user+sys median)':<44}{'median s':>10}{'min s':>10}{'max s':>10}{'cpu s':>10}"
    lines += [header, "-" * len(header)]
    table_order = ["python", "cli", "cli_overhead", "cli_nopyc", "cli_nopyc_overhead", "lib", "lib_overhead",
                   "version", "cli_startup", "pip_freeze", "scooby", "session_info2", "session_info",
                   "torch_python", "torch_cli", "torch_overhead", "collect_env", "reprozip"]
    for key in table_order:
        row = results.get(key) or derived.get(key)
        if row:
            lines.append(f"{row['label']:<44}{fmt_s(row['median']):>10}{fmt_s(row['min']):>10}{fmt_s(row['max']):>10}"
                         f"{fmt_s(row['cpu']):>10}")
    lines.append("")
    for label, size in sizes.items():
        lines.append(f"{label:<44}{size:>10} bytes ({fmt_bytes(size)})")
    if "reprozip" not in by_key:
        lines.append(f"{'reprozip .rpz (ENVIRONMENT.md, not measured)':<44}{int(REPROZIP_DOC_BYTES):>10} bytes")
    print()
    print("\n".join(lines))

    # -- ratios and targets ---------------------------------------------------------------
    overhead = derived["cli_overhead"]["median"]
    ratios = []

    def ratio(label: str, num: float, den_key: str) -> None:
        den = results.get(den_key) or derived.get(den_key)
        if den and den["median"] > 0:
            ratios.append((label, num / den["median"]))

    ratio("reprex overhead / pip freeze", overhead, "pip_freeze")
    ratio("reprex overhead / scooby", overhead, "scooby")
    ratio("reprex overhead / session_info2", overhead, "session_info2")
    ratio("reprex overhead / collect_env", overhead, "collect_env")
    if "torch_overhead" in derived:
        ratio("torch: reprex overhead / collect_env", derived["torch_overhead"]["median"], "collect_env")
    ratio("reprex overhead / reprozip trace+pack", overhead, "reprozip")
    rpz_size = sizes.get("reprozip .rpz (script.py)", REPROZIP_DOC_BYTES)
    ratios.append(("reprex bundle / reprozip .rpz", sizes["reprex bundle (script.py)"] / rpz_size))
    print()
    for label, value in ratios:
        print(f"{label:<44}{value:>10.3f}")

    checks = [(f"capture overhead median <= {TARGET_OVERHEAD_S} s", overhead <= TARGET_OVERHEAD_S,
               f"{overhead:.3f} s")]
    if "pip_freeze" in results:
        checks.append(("capture overhead median < pip freeze median", overhead < results["pip_freeze"]["median"],
                       f"{overhead:.3f} s vs {results['pip_freeze']['median']:.3f} s"))
    bundle = sizes["reprex bundle (script.py)"]
    checks.append((f"bundle <= {TARGET_BUNDLE_BYTES // 1024} KiB", bundle <= TARGET_BUNDLE_BYTES, fmt_bytes(bundle)))
    print()
    for label, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {detail}")
    if "pip_freeze" in results:
        print(f"info  CPU time (less load-sensitive): capture overhead {derived['cli_overhead']['cpu']:.3f} s "
              f"vs pip freeze {results['pip_freeze']['cpu']:.3f} s")
    for note in notes:
        print(f"note: {note}")

    report = {"reps": args.reps, "python": python, "cases": results, "derived": derived, "sizes": sizes,
              "ratios": dict(ratios), "checks": [{"target": t, "pass": ok, "value": d} for t, ok, d in checks],
              "notes": notes}
    if not args.no_breakdown:
        report["breakdown"] = breakdown(args, python, reprex_cmd, tmp, env, capture_command, CaptureOptions,
                                        results["python"]["median"], torch_python)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nwrote {args.json}")
    return 1 if args.check and not all(ok for _, ok, _ in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
