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
timer around the pipeline's steps (exclusive time), per-probe durations, the recorder's cost in
the child, `-X importtime` of the CLI and a cProfile of one in-process capture.

    .venv/bin/python benchmarks/capture.py [--reps 7] [--torch-python /tmp/bench-torch/bin/python]
                                           [--reprozip /tmp/bench-reprozip/bin/reprozip] [--json out.json]

Optional peers are used when present and reported as skipped otherwise; nothing is installed.
Children run with bytecode cached under the temp dir (PYTHONPYCACHEPREFIX), as an installed
wheel would have it, even where PYTHONDONTWRITEBYTECODE is set (then the uncached CLI is a row).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

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


# -- helpers ---------------------------------------------------------------------------

def clean_env(pycache: Path | None) -> dict[str, str]:
    """The user's environment minus reprex's own switches. With `pycache`, bytecode is cached
    there (PYTHONPYCACHEPREFIX) even where PYTHONDONTWRITEBYTECODE is set, as an installed
    wheel's .pyc files would be: otherwise an editable checkout recompiles every reprex
    module on every CLI start, which no user of a released reprex pays."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPREX_")}
    env.setdefault("REPROZIP_USAGE_STATS", "off")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(argv: list[str], cwd: Path, env: dict, expect: set[int] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its waited-for children)."""
    cpu0, start = _children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu0
    if expect is not None and proc.returncode not in expect:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(argv)[:120]} exited {proc.returncode}: {' | '.join(tail)}")
    return elapsed, cpu


def importable(python: str, module: str, env: dict) -> bool:
    try:
        return subprocess.run([python, "-c", f"import {module}"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=120).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt_s(x: float) -> str:
    return f"{x:8.3f}"


def fmt_bytes(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{int(n)} B"


class Case:
    def __init__(self, key: str, label: str, fn: Callable[[], tuple[float, float]]):
        self.key, self.label, self.fn = key, label, fn
        self.samples: list[float] = []  # wall seconds
        self.cpu: list[float] = []  # CPU seconds (user + sys, children included)


# -- phase timer for the breakdown ----------------------------------------------------------

class PhaseTimer:
    """Exclusive wall time per phase: wrapping functions that call each other charges each
    phase only for its own time. Wrappers of one `group` do not nest (a redaction call made
    by another redaction call stays with the outer one). Main thread only (probes run in
    threads; their runner is timed as one phase, and each probe reports its own duration)."""

    def __init__(self):
        self.totals: dict[str, float] = {}
        self.stack: list[list] = []  # [label, group, start, child_time]
        self.main = threading.get_ident()
        self.undo: list[tuple[object, str, object]] = []

    def wrap(self, owner, attr: str, label, group: str | None = None) -> bool:
        original = owner.__dict__.get(attr) if isinstance(owner, type) else getattr(owner, attr, None)
        if original is None or not callable(original):
            return False
        timer = self

        def wrapper(*args, **kwargs):
            if threading.get_ident() != timer.main or (group and timer.stack and timer.stack[-1][1] == group):
                return original(*args, **kwargs)
            name = label(args, kwargs) if callable(label) else label
            timer.stack.append([name, group, time.perf_counter(), 0.0])
            try:
                return original(*args, **kwargs)
            finally:
                name, _, start, child = timer.stack.pop()
                elapsed = time.perf_counter() - start
                timer.totals[name] = timer.totals.get(name, 0.0) + elapsed - child
                if timer.stack:
                    timer.stack[-1][3] += elapsed

        wrapper.__wrapped__ = original
        setattr(owner, attr, wrapper)
        self.undo.append((owner, attr, original))
        return True

    def restore(self) -> None:
        for owner, attr, original in reversed(self.undo):
            setattr(owner, attr, original)
        self.undo.clear()


_REDACT_WHERE = {"environment.json": "environment.json", "locals": "run record (locals)", "run.json": "run.json",
                 "traceback": "traceback/exception", "README.md": "README.md", "requirements.txt": "requirements.txt",
                 "repro.py": "repro.py", "argv": "argv", "opened": "opened paths", "network": "connections",
                 "files": "files manifest", "stdout": "output tail", "stderr": "output tail"}


def _redact_label(args, kwargs) -> str:
    where = kwargs.get("where", args[2] if len(args) > 2 else "")
    return "redact: " + _REDACT_WHERE.get(where, "input files")


def instrument(timer: PhaseTimer) -> None:
    import reprex.bundle as bundle_mod
    import reprex.capture.pipeline as pipeline
    import reprex.capture.runner as runner
    import reprex.probes as probes_pkg
    import reprex.redact as redact_mod
    import reprex.render as render_mod

    timer.wrap(pipeline, "capture_command", "glue: capture_command")
    timer.wrap(pipeline, "build_bundle", "glue: build_bundle")
    timer.wrap(pipeline, "run_recorded", "run program under recorder (child + tee)")
    timer.wrap(runner, "load_outcome", "load recorded events")
    timer.wrap(pipeline, "python_of", "resolve interpreter")
    timer.wrap(pipeline, "compute", "failure signature")
    timer.wrap(pipeline, "_fallback_facts", "fallback facts subprocess")
    timer.wrap(probes_pkg, "run_probes", "probes (concurrent, wall)")
    for name in ("roots_for", "closure", "requirements_txt"):
        timer.wrap(pipeline, name, "pins (closure of imports)")
    for name in ("collect_inputs", "app_module_files"):
        timer.wrap(pipeline, name, "inputs (files to bundle)")
    timer.wrap(redact_mod.Redactor, "__init__", "redact: Redactor() setup", group="redact")
    for name in ("text", "bytes", "obj", "env"):
        timer.wrap(redact_mod.Redactor, name, _redact_label, group="redact")
    timer.wrap(pipeline, "_scrub_pickles", "redact: argument pickles", group="redact")
    timer.wrap(pipeline, "canonical_json", "json encode")
    timer.wrap(pipeline, "render_template", "render repro.py")
    timer.wrap(render_mod, "render", "render README.md")
    timer.wrap(bundle_mod, "validate_manifest", "validate manifest (jsonschema)")
    timer.wrap(bundle_mod.Bundle, "content_id", "content id (sha256)")
    timer.wrap(bundle_mod.Bundle, "to_zip_bytes", "zip (deflate)")
    timer.wrap(pipeline, "write_bundle", "write bundle file")


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
        cpu0, start = time.process_time() + _children_cpu(), time.perf_counter()
        result = capture_command([python, "script.py"], lib_options, cwd=str(tmp), env=env)
        elapsed, cpu = time.perf_counter() - start, time.process_time() + _children_cpu() - cpu0
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


def breakdown(args, python, reprex_cmd, tmp, env, capture_command, CaptureOptions, python_alone, torch_python):
    out: dict = {}
    print("\n== where reprex's time goes (library, warm, median of", args.reps, "captures) ==")
    timer = PhaseTimer()
    instrument(timer)
    from reprex.capture import pipeline

    options = CaptureOptions(output=tmp / "bd.reprex.zip", tee=False)
    per_phase: dict[str, list[float]] = {}
    totals, rests, probe_durations = [], [], {}
    try:
        for _ in range(args.reps):
            timer.totals.clear()
            start = time.perf_counter()
            result = pipeline.capture_command([python, "script.py"], options, cwd=str(tmp), env=env)
            totals.append(time.perf_counter() - start)
            rests.append(totals[-1] - sum(timer.totals.values()))
            for name, value in timer.totals.items():
                per_phase.setdefault(name, []).append(value)
            for name, probe in (result.bundle.json("environment.json") or {}).items():
                if isinstance(probe, dict) and "duration_s" in probe:
                    probe_durations.setdefault(name, []).append(probe["duration_s"])
    finally:
        timer.restore()
    total = statistics.median(totals)
    rows = sorted(((statistics.median(v + [0.0] * (len(totals) - len(v))), k) for k, v in per_phase.items()),
                  reverse=True)
    rest = statistics.median(rests)
    print(f"{'phase (exclusive time; phases < 0.5 ms not shown)':<52}{'median ms':>10}{'share':>8}")
    for value, name in rows:
        if value >= 0.0005:
            print(f"{name:<52}{value * 1e3:>10.1f}{value / total:>8.0%}")
    print(f"{'(untimed rest)':<52}{rest * 1e3:>10.1f}{rest / total:>8.0%}")
    print(f"{'total capture_command (medians need not add up)':<52}{total * 1e3:>10.1f}")
    out["phases_ms"] = {name: value * 1e3 for value, name in rows}
    out["total_ms"] = total * 1e3
    print("probes (each in its own thread; the phase above is the slowest one plus joins):  " +
          ", ".join(f"{k} {statistics.median(v) * 1e3:.1f} ms" for k, v in sorted(probe_durations.items())))
    out["probes_ms"] = {k: statistics.median(v) * 1e3 for k, v in probe_durations.items()}

    out["child"] = child_costs(args.reps, python, tmp, env, python_alone)
    out["importtime"] = import_times(python, reprex_cmd, tmp, env)
    out["cli_cprofile"] = profile_cli(python, tmp, env)
    out["cprofile"] = profile_once(capture_command, options, python, tmp, env)
    if torch_python:
        out["torch_probes_ms"] = torch_probes(capture_command, CaptureOptions, torch_python, tmp, env)
    return out


# The recorder, unchanged, except that its module-level facts() (looked up when the run ends)
# returns nothing: the difference to the real recorder is what reading the facts costs.
NOFACTS_SHIM = '''\
_real = {real!r}
with open(_real, encoding="utf-8") as _fh:
    exec(compile(_fh.read(), _real, "exec"), globals())
facts = lambda: {{}}
'''


def child_costs(reps: int, python: str, tmp: Path, env: dict, python_alone: float) -> dict:
    """The recorder's cost inside the program's process, and how much of it is the
    installed-distribution facts read at exit (measured with a copy of the recorder
    that skips them; skipped if the recorder's text no longer matches)."""
    from reprex.recorded import recorder_env
    from reprex.record import INJECT_DIR

    real = INJECT_DIR / "sitecustomize.py"
    variants = {"recorder": INJECT_DIR}
    if "\ndef facts(" in real.read_text():
        nofacts = tmp / "inject-nofacts"
        nofacts.mkdir(exist_ok=True)
        (nofacts / "sitecustomize.py").write_text(NOFACTS_SHIM.format(real=str(real)))
        variants["recorder without facts()"] = nofacts
    samples: dict[str, list[float]] = {"python alone": []}
    samples.update({k: [] for k in variants})
    for _ in range(reps):
        samples["python alone"].append(timed_run([python, "script.py"], tmp, env, {1})[0])
        for name, inject in variants.items():
            record = Path(tempfile.mkdtemp(prefix="rec-", dir=tmp))
            samples[name].append(timed_run([python, "script.py"], tmp, recorder_env(env, record, inject), {1})[0])
            shutil.rmtree(record, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in samples.items()}
    print("\nchild process (script.py): " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in med.items()))
    print(f"  recorder cost in the child: {(med['recorder'] - med['python alone']) * 1e3:.1f} ms", end="")
    if "recorder without facts()" in med:
        print(f", of which the facts() read at exit (importlib.metadata + every dist's METADATA): "
              f"{(med['recorder'] - med['recorder without facts()']) * 1e3:.1f} ms")
    else:
        print()
    return {k: v * 1e3 for k, v in med.items()}


def import_times(python: str, reprex_cmd: list[str], tmp: Path, env: dict, top: int = 10) -> dict:
    """`-X importtime` of the CLI capture: top-level imports by cumulative time."""
    proc = subprocess.run([python, "-X", "importtime", "-m", "reprex", "capture", "-q", "-o",
                           str(tmp / "imp.reprex.zip"), "--", python, "script.py"], cwd=tmp, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tops = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if not name.startswith(" ") or name.startswith("  ") or not cumulative.strip().isdigit():
            continue  # nested import, or the header line
        tops.append((int(cumulative) / 1e3, name.strip()))
    total = sum(ms for ms, _ in tops)
    tops.sort(reverse=True)
    print(f"\nCLI imports (python -X importtime -m reprex capture ...): {total:.0f} ms in top-level imports; "
          f"top {top}:")
    print("  " + ", ".join(f"{name} {ms:.1f}" for ms, name in tops[:top]))
    return {"total_ms": total, "top": [{"module": n, "ms": ms} for ms, n in tops[:top]]}


def profile_cli(python: str, tmp: Path, env: dict) -> dict:
    """cProfile of one whole CLI capture (profiling inflates times; read the shares).
    The groups overlap: imports include the regex compiles done at import time, etc."""
    prof_file = tmp / "cli.prof"
    subprocess.run([python, "-m", "cProfile", "-o", str(prof_file), "-m", "reprex", "capture", "-q", "-o",
                    str(tmp / "prof.reprex.zip"), "--", python, "script.py"], cwd=tmp, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not prof_file.exists():
        return {}
    st = pstats.Stats(str(prof_file), stream=io.StringIO())
    groups = {
        "whole CLI process (profiled)": lambda f, fn: fn == "<module>" and f.endswith("reprex/__main__.py"),
        "  all imports (importlib _find_and_load)": lambda f, fn: fn == "_find_and_load",
        "  capture_command": lambda f, fn: fn == "capture_command" and f.endswith("pipeline.py"),
        "    run_recorded (child)": lambda f, fn: fn == "run_recorded",
        "    validate_manifest (jsonschema import+build)": lambda f, fn: fn == "validate_manifest",
        "    pins.closure (packaging import)": lambda f, fn: fn == "closure" and f.endswith("pins.py"),
        "    Redactor.obj/text/bytes (redaction)": lambda f, fn: f.endswith("redact.py") and fn in ("obj", "bytes"),
        "  rich console + status (cli._console, status)": lambda f, fn: (fn == "_console" and f.endswith("cli.py"))
        or (fn == "status" and f.endswith("rich/console.py")),
        "  re.compile, anywhere": lambda f, fn: fn == "_compile" and f.endswith("re/__init__.py"),
    }
    out = {}
    for label, match in groups.items():
        out[label] = sum(ct for (f, _, fn), (_, _, _, ct, _) in st.stats.items() if match(f, fn)) * 1e3
    print("\ncProfile of one CLI capture (`python -m cProfile -m reprex capture ...`; inflated, overlapping):")
    for label, ms in out.items():
        print(f"  {label:<52}{ms:8.1f} ms")
    return out


def profile_once(capture_command, options, python: str, tmp: Path, env: dict, top: int = 12) -> list[dict]:
    """cProfile of one warm capture_command (main thread; probe threads are not profiled)."""
    prof = cProfile.Profile()
    prof.enable()
    capture_command([python, "script.py"], options, cwd=str(tmp), env=env)
    prof.disable()
    st = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (filename, lineno, func), (cc, nc, tt, ct, _) in st.stats.items():
        rows.append({"function": f"{Path(filename).name}:{lineno}({func})", "path": filename, "calls": nc,
                     "tottime_ms": tt * 1e3, "cumtime_ms": ct * 1e3})
    own = sorted((r for r in rows if "/reprex/" in r["path"]), key=lambda r: r["cumtime_ms"], reverse=True)
    hot = sorted(rows, key=lambda r: r["tottime_ms"], reverse=True)
    print(f"\ncProfile of one capture_command (cumulative, reprex functions; top {top}):")
    for r in own[:top]:
        print(f"  {r['cumtime_ms']:8.1f} ms  {r['calls']:>7} calls  {r['function']}")
    print(f"cProfile (own time, any function; top {top // 2}):")
    for r in hot[:top // 2]:
        print(f"  {r['tottime_ms']:8.1f} ms  {r['calls']:>7} calls  {r['function']}")
    return [{k: v for k, v in r.items() if k != "path"} for r in own[:top]]


def torch_probes(capture_command, CaptureOptions, torch_python: str, tmp: Path, env: dict) -> dict:
    start = time.perf_counter()
    result = capture_command([torch_python, "script_torch.py"], CaptureOptions(output=tmp / "bd-torch.reprex.zip",
                                                                               tee=False), cwd=str(tmp), env=env)
    total = time.perf_counter() - start
    probes = {k: v["duration_s"] * 1e3 for k, v in (result.bundle.json("environment.json") or {}).items()
              if isinstance(v, dict) and "duration_s" in v}
    print(f"\ntorch capture (library, one run, {total:.2f} s): probes " +
          ", ".join(f"{k} {v:.0f} ms" for k, v in sorted(probes.items())))
    return {"total_ms": total * 1e3, **probes}


if __name__ == "__main__":
    sys.exit(main())
