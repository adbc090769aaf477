"""`cuda` probe: what the run's ML frameworks see of CUDA, and whether their kernels fit the GPUs.

Only when the run imported torch/jax/cupy/tensorflow. Importing those in the reprex
process is slow, can initialize CUDA and can crash, so a bounded subprocess of the run's
own interpreter imports them and prints JSON; a crash or hang there fails this probe only.
When torch is the only one and the host has no GPU device, the recorded run's own view of
torch's build (read at exit from attributes, see the recorder) is all there is to know,
and the subprocess (1.5-2.5 s of importing torch again) is skipped.
The "built for the wrong GPU" check (`arch_mismatches`) is a pure function.
"""

from __future__ import annotations

import json
import re

from . import _proc
from ._base import ProbeSkipped

FRAMEWORKS = ("torch", "jax", "jaxlib", "cupy", "tensorflow")
SUBPROCESS_TIMEOUT = 20.0
_MARKER = "__REPREX_CUDA__"

SCRIPT = r'''
import json, sys
wanted = set(sys.argv[1:])
out = {}

def guard(fn):
    try:
        return fn()
    except BaseException as exc:  # a framework that fails to load is a fact, not a crash
        return {"error": "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:300] if str(exc) else "")}

def try_(fn, default=None):
    try:
        return fn()
    except Exception:
        return default

def torch_facts():
    import torch
    d = {"version": torch.__version__, "cuda": getattr(torch.version, "cuda", None),
         "hip": getattr(torch.version, "hip", None)}
    d["cudnn"] = try_(lambda: torch.backends.cudnn.version())
    d["is_available"] = try_(lambda: bool(torch.cuda.is_available()), False)
    arch = try_(lambda: list(torch.cuda.get_arch_list()), []) or []
    if not arch and hasattr(torch._C, "_cuda_getArchFlags"):  # get_arch_list() is [] when CUDA is unusable
        arch = (try_(torch._C._cuda_getArchFlags, "") or "").split()
    d["arch_list"] = arch
    d["device_count"] = try_(lambda: torch.cuda.device_count(), 0) if d["is_available"] else 0
    d["devices"] = []
    for i in range(d["device_count"] or 0):
        cap = try_(lambda: torch.cuda.get_device_capability(i))
        d["devices"].append({"index": i, "name": try_(lambda: torch.cuda.get_device_name(i)),
                             "capability": "%d.%d" % tuple(cap) if cap else None})
    return d

def jax_facts():
    import jax
    d = {"version": jax.__version__}
    d["jaxlib"] = try_(lambda: __import__("jaxlib").__version__)
    d["backend"] = try_(lambda: jax.default_backend())
    devs = try_(lambda: jax.devices(), []) or []
    d["devices"] = [{"name": str(x), "kind": getattr(x, "device_kind", None), "platform": getattr(x, "platform", None),
                     "capability": getattr(x, "compute_capability", None)} for x in devs]
    return d

def cupy_facts():
    import cupy
    rt = cupy.cuda.runtime
    d = {"version": cupy.__version__, "runtime": try_(rt.runtimeGetVersion), "driver": try_(rt.driverGetVersion)}
    n = try_(rt.getDeviceCount, 0) or 0
    d["devices"] = []
    for i in range(n):
        cc = try_(lambda: cupy.cuda.Device(i).compute_capability)
        d["devices"].append({"index": i, "capability": "%s.%s" % (cc[:-1], cc[-1]) if cc else None})
    return d

def tf_facts():
    import tensorflow as tf
    info = try_(lambda: dict(tf.sysconfig.get_build_info()), {}) or {}
    caps = info.get("cuda_compute_capabilities") or []
    return {"version": tf.__version__, "cuda": info.get("cuda_version"), "cudnn": info.get("cudnn_version"),
            "arch_list": [str(c) for c in caps],
            "gpus": [d.name for d in (try_(lambda: tf.config.list_physical_devices("GPU"), []) or [])]}

if "torch" in wanted:
    out["torch"] = guard(torch_facts)
if wanted & {"jax", "jaxlib"}:
    out["jax"] = guard(jax_facts)
if "cupy" in wanted:
    out["cupy"] = guard(cupy_facts)
if "tensorflow" in wanted:
    out["tensorflow"] = guard(tf_facts)
sys.stdout.write("\n__REPREX_CUDA__" + json.dumps(out, default=str) + "\n")
'''

_ARCH = re.compile(r"^(sm|compute)_(\d+)([af]?)$")


def _parse_arch(entry: str):
    m = _ARCH.match(str(entry).strip().lower())
    if not m or len(m.group(2)) < 2:
        return None
    digits = m.group(2)
    return m.group(1), (int(digits[:-1]), int(digits[-1])), m.group(3)


def parse_capability(cap) -> tuple[int, int] | None:
    """'9.0', (9, 0), [9, 0], 'sm_90' or '90' -> (9, 0)."""
    if isinstance(cap, (tuple, list)) and len(cap) == 2:
        return int(cap[0]), int(cap[1])
    text = str(cap).strip().lower()
    if "." in text:
        major, _, minor = text.partition(".")
        return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None
    text = text.removeprefix("sm_").removeprefix("compute_").rstrip("af")
    return (int(text[:-1]), int(text[-1])) if text.isdigit() and len(text) >= 2 else None


def supported_by(capability, arch_list) -> str | None:
    """The arch_list entry that lets a GPU of `capability` run the build's kernels, or None.

    CUDA rules: a cubin sm_XY runs on X.Z for Z >= Y (same major); sm_XYa only on X.Y
    exactly; sm_XYf on the same major with Z >= Y; PTX compute_XY is JIT-compiled forward
    to any capability >= X.Y (slow first start, but it runs). Exact SASS is preferred.
    """
    cap = parse_capability(capability)
    if cap is None:
        return None
    sass, ptx = [], []
    for entry in arch_list or ():
        parsed = _parse_arch(entry)
        if not parsed:
            continue
        kind, (major, minor), suffix = parsed
        if suffix == "a":
            ok = cap == (major, minor)
        elif kind == "sm" or suffix == "f":
            ok = cap[0] == major and cap[1] >= minor
        else:
            ok = cap >= (major, minor)
        if ok:
            (sass if kind == "sm" else ptx).append(((major, minor), entry))
    for group in (sass, ptx):
        if group:
            return max(group)[1]
    return None


def arch_mismatches(capabilities, arch_list) -> list[dict]:
    """GPUs whose capability no entry of a framework's arch list can run.

    `capabilities`: items that are a capability ('9.0', (9, 0)) or {"name", "capability"}.
    An empty/unknown arch_list (CPU-only build) yields no mismatch: there is nothing to judge.
    """
    arch_list = [str(a) for a in (arch_list or ())]
    if not any(_parse_arch(a) for a in arch_list):
        return []
    out = []
    for item in capabilities or ():
        name, cap = (item.get("name"), item.get("capability")) if isinstance(item, dict) else (None, item)
        parsed = parse_capability(cap) if cap is not None else None
        if parsed is None or supported_by(parsed, arch_list) is not None:
            continue
        out.append({"gpu": name or f"{parsed[0]}.{parsed[1]}", "sm": f"sm_{parsed[0]}{parsed[1]}", "arch_list": arch_list})
    return out


def ptx_only(capabilities, arch_list) -> list[dict]:
    """GPUs that run only through PTX JIT (no matching cubin): works, but a known source of slow
    starts and of 'no kernel image' errors in extensions built without PTX."""
    out = []
    for item in capabilities or ():
        name, cap = (item.get("name"), item.get("capability")) if isinstance(item, dict) else (None, item)
        entry = supported_by(cap, arch_list) if cap is not None else None
        if entry and entry.lower().startswith("compute_"):
            parsed = parse_capability(cap)
            out.append({"gpu": name or f"{parsed[0]}.{parsed[1]}", "sm": f"sm_{parsed[0]}{parsed[1]}", "via": entry})
    return out


def _device_capabilities(frameworks: dict) -> tuple[list[dict], str | None]:
    """GPU capabilities as the frameworks saw them; None source when none reported any."""
    for fw in ("torch", "jax", "cupy"):
        devices = (frameworks.get(fw) or {}).get("devices") or []
        caps = [{"name": d.get("name") or d.get("kind"), "capability": d.get("capability")} for d in devices if d.get("capability")]
        if caps:
            return caps, fw
    return [], None


def _gpu_probe_capabilities() -> list[dict]:
    from . import gpu

    try:
        found = gpu.detect_gpus()
    except Exception:
        return []
    return [{"name": g.get("name"), "capability": g.get("compute_capability")} for g in found.get("gpus", []) if g.get("compute_capability")]


def parse_output(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(_MARKER):
            return json.loads(line[len(_MARKER):])
    return None


def gpu_device_visible() -> bool:
    """An NVIDIA, AMD (ROCm) or WSL GPU device node exists on this host."""
    import glob
    import os

    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/kfd") or os.path.exists("/dev/dxg")


def recorded_torch(ctx) -> dict | None:
    """torch's facts as the recorded run itself saw its build, when they settle everything:
    torch only, no GPU device on the host (so nothing is available), a CUDA or CPU build."""
    facts = ((ctx.target_facts or {}).get("frameworks") or {}).get("torch") or {}
    if not facts.get("version") or facts.get("hip") or gpu_device_visible():
        return None
    return {"version": facts["version"], "cuda": facts.get("cuda"), "hip": None, "cudnn": None,
            "is_available": False, "arch_list": list(facts.get("arch_list") or []), "device_count": 0,
            "devices": [], "source": "recorded run (no GPU device here, so no second import of torch)"}


def probe(ctx) -> dict:
    wanted = sorted(set(ctx.imported) & set(FRAMEWORKS))
    if not wanted:
        raise ProbeSkipped("the run imported none of " + ", ".join(FRAMEWORKS))
    torch_facts = recorded_torch(ctx) if wanted == ["torch"] else None
    if torch_facts is not None:
        done, frameworks = None, {"torch": torch_facts}
    else:
        done = _proc.run_python(ctx, SCRIPT, wanted, timeout=SUBPROCESS_TIMEOUT)
        frameworks = parse_output(done.stdout)
    if frameworks is None:
        detail = _proc.last_line(done.stderr) or _proc.last_line(done.stdout) or "no output"
        raise RuntimeError(f"framework query ({ctx.python_executable}) {_proc.describe_exit(done.returncode)}: {detail}")
    caps, source = _device_capabilities(frameworks)
    if not caps:
        caps = _gpu_probe_capabilities()
        source = "gpu-probe" if caps else None
    mismatch, via_ptx = [], []
    for fw in ("torch", "tensorflow"):
        arch_list = (frameworks.get(fw) or {}).get("arch_list") or []
        for entry in arch_mismatches(caps, arch_list):
            mismatch.append({**entry, "framework": fw})
        for entry in ptx_only(caps, arch_list):
            via_ptx.append({**entry, "framework": fw})
    value = {
        "frameworks": frameworks,
        "capabilities": caps,
        "capabilities_source": source,
        "arch_mismatch": mismatch,
        "ptx_jit_only": via_ptx,
    }
    if done is not None and done.returncode != 0:
        value["exit"] = _proc.describe_exit(done.returncode)  # e.g. a segfault at interpreter exit
    return value
