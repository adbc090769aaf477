"""Where `reprex capture`'s time goes: the part of benchmarks/capture.py that explains its numbers.

The pipeline's phases come from the `progress` callback capture_command already takes (a
phase runs from one message to the next), so nothing of reprex is patched and a renamed
function can't make a row silently vanish; cProfile gives the detail inside a phase. Also:
per-probe durations, the recorder's cost in the child, `-X importtime` of the CLI.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from timing import timed_run

RUN_PHASE = "run the program under the recorder (child + tee), load its record, sign it"
WRITE_PHASE = "write the bundle (zip, file)"


class PhaseClock:
    """A `progress` callback that timestamps each message: the pipeline's own phase boundaries."""

    def __init__(self):
        self.marks: list[tuple[str, float]] = [("(before the first message)", time.perf_counter())]
        self.end: float | None = None

    def __call__(self, message: str) -> None:
        self.mark(RUN_PHASE if message.startswith("running ") else message)

    def mark(self, name: str) -> None:
        self.marks.append((name, time.perf_counter()))

    def stop(self) -> None:
        self.end = time.perf_counter()

    def phases(self) -> dict[str, float]:
        ends = [t for _, t in self.marks[1:]] + [self.end if self.end is not None else time.perf_counter()]
        out: dict[str, float] = {}
        for (name, start), end in zip(self.marks, ends):
            out[name] = out.get(name, 0.0) + end - start
        return out

    def total(self) -> float:
        return (self.end if self.end is not None else time.perf_counter()) - self.marks[0][1]


def breakdown(args, python, reprex_cmd, tmp, env, capture_command, CaptureOptions, python_alone, torch_python):
    out: dict = {}
    print("\n== where reprex's time goes (library, warm, median of", args.reps, "captures) ==")
    from reprex.capture.pipeline import write_bundle

    options = CaptureOptions(output=tmp / "bd.reprex.zip", tee=False)
    per_phase: dict[str, list[float]] = {}
    totals, probe_durations = [], {}
    for _ in range(args.reps):
        clock = PhaseClock()
        result = capture_command([python, "script.py"], options, cwd=str(tmp), env=env, progress=clock,
                                 write=False)
        clock.mark(WRITE_PHASE)
        write_bundle(result.bundle, options.output, tmp)
        clock.stop()
        totals.append(clock.total())
        for name, value in clock.phases().items():
            per_phase.setdefault(name, []).append(value)
        for name, probe in (result.bundle.json("environment.json") or {}).items():
            if isinstance(probe, dict) and "duration_s" in probe:
                probe_durations.setdefault(name, []).append(probe["duration_s"])
    total = statistics.median(totals)
    rows = [(statistics.median(v + [0.0] * (len(totals) - len(v))), k) for k, v in per_phase.items()]
    print(f"{'phase (from one progress message to the next)':<64}{'median ms':>10}{'share':>8}")
    for value, name in rows:
        print(f"{name:<64}{value * 1e3:>10.1f}{value / total:>8.0%}")
    print(f"{'total capture_command + write (medians need not add up)':<64}{total * 1e3:>10.1f}")
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
        "    Redactor.obj/text/bytes (redaction)": lambda f, fn: "/reprex/redact/" in f and fn in ("obj", "bytes"),
        "  rich console + status (cli make_console, status)":
            lambda f, fn: (fn in ("make_console", "_console") and "/reprex/cli" in f)
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
