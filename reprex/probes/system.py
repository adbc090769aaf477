"""`platform` probe: OS, CPU, memory and container facts that decide whether a failure can
be replayed elsewhere (arch, libc, SIMD for prebuilt wheels, /dev/shm for DataLoader and
Ray's object store, cgroup limits for OOM kills).

Parsers are pure functions over file text so they are tested on recorded samples; every
read is optional, a missing file gives None rather than a failed probe.
"""

from __future__ import annotations

import os
import platform as _platform
import shutil
import sys
from typing import Callable, Mapping

from . import _proc

SIMD_FLAGS = (
    "sse4_2", "avx", "avx2", "avx512f", "avx512bw", "avx512_vnni", "amx_tile", "fma", "f16c", "neon", "asimd", "sve",
)
_UNLIMITED = 2**62  # cgroup v1 reports "no limit" as a huge page-aligned number


def _read(path: str, limit: int = 1 << 20) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(limit)
    except OSError:
        return None


def parse_os_release(text: str | None) -> dict | None:
    if not text:
        return None
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            fields[key.strip()] = value.strip().strip('"').strip("'")
    return {
        "id": fields.get("ID"),
        "name": fields.get("NAME"),
        "version_id": fields.get("VERSION_ID"),
        "pretty_name": fields.get("PRETTY_NAME"),
    }


def parse_cpuinfo(text: str | None) -> dict:
    """CPU model and flag set from /proc/cpuinfo (x86 'flags', Arm 'Features')."""
    model, flags = None, set()
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if model is None and key in ("model name", "hardware", "cpu model", "processor") and not value.strip().isdigit():
            model = value.strip() or None
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return {"model": model, "flags": flags}


def simd_subset(flags) -> list[str]:
    """The SIMD features that decide which prebuilt kernels a wheel can run."""
    return [f for f in SIMD_FLAGS if f in set(flags)]


def parse_meminfo(text: str | None) -> int | None:
    for line in (text or "").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * (1024 if len(parts) < 3 or parts[2].lower() == "kb" else 1)
    return None


def detect_container(exists: Callable[[str], bool], cgroup_text: str | None, environ: Mapping[str, str]) -> dict:
    """Signals that we run in a container; `runtime` is the first one recognized."""
    signals = []
    if exists("/.dockerenv"):
        signals.append("/.dockerenv")
    if exists("/run/.containerenv"):
        signals.append("/run/.containerenv")
    text = (cgroup_text or "").lower()
    for word in ("docker", "kubepods", "containerd", "libpod", "lxc", "crio"):
        if word in text:
            signals.append(f"cgroup:{word}")
    if "KUBERNETES_SERVICE_HOST" in environ:
        signals.append("KUBERNETES_SERVICE_HOST")
    runtime = None
    if "KUBERNETES_SERVICE_HOST" in signals or "cgroup:kubepods" in signals:
        runtime = "kubernetes"
    elif "/run/.containerenv" in signals or "cgroup:libpod" in signals:
        runtime = "podman"
    elif "/.dockerenv" in signals or "cgroup:docker" in signals:
        runtime = "docker"
    elif signals:
        runtime = signals[0].split(":")[-1]
    return {"in_container": bool(signals), "runtime": runtime, "signals": signals}


def parse_cpu_max(text: str | None) -> float | None:
    """cgroup v2 cpu.max ('200000 100000' -> 2.0 CPUs; 'max ...' -> None)."""
    parts = (text or "").split()
    if len(parts) >= 1 and parts[0].isdigit():
        period = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 100000
        return round(int(parts[0]) / period, 3) if period else None
    return None


def _limit(text: str | None) -> int | None:
    text = (text or "").strip()
    if text.isdigit() and int(text) < _UNLIMITED:
        return int(text)
    return None


def cgroup_limits(proc_self_cgroup: str | None, read: Callable[[str], str | None] = _read) -> dict:
    """Memory and CPU limits of this process's cgroup (v2 unified, else v1 controllers)."""
    paths = {}
    for line in (proc_self_cgroup or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                paths[controller] = parts[2]
    result = {"version": None, "memory_limit_bytes": None, "cpu_limit": None}
    if "" in paths and read("/sys/fs/cgroup/cgroup.controllers") is not None:
        result["version"] = 2
        for base in (f"/sys/fs/cgroup{paths['']}".rstrip("/"), "/sys/fs/cgroup"):
            mem, cpu = read(base + "/memory.max"), read(base + "/cpu.max")
            if mem is not None or cpu is not None:
                result["memory_limit_bytes"], result["cpu_limit"] = _limit(mem), parse_cpu_max(cpu)
                break
        return result
    if "memory" in paths or "cpu" in paths:
        result["version"] = 1
        for base in (f"/sys/fs/cgroup/memory{paths.get('memory', '')}".rstrip("/"), "/sys/fs/cgroup/memory"):
            mem = read(base + "/memory.limit_in_bytes")
            if mem is not None:
                result["memory_limit_bytes"] = _limit(mem)
                break
        for base in ("/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"):
            quota, period = read(base + "/cpu.cfs_quota_us"), read(base + "/cpu.cfs_period_us")
            if quota is not None and period is not None:
                q, p = quota.strip(), period.strip()
                if q.isdigit() and p.isdigit() and int(p):
                    result["cpu_limit"] = round(int(q) / int(p), 3)
                break
    return result


def shm_bytes(path: str = "/dev/shm") -> int | None:
    try:
        st = os.statvfs(path)
    except (OSError, AttributeError):
        return None
    return st.f_frsize * st.f_blocks


def libc_facts(executable: str) -> dict:
    """The C library in use. os.confstr reports the glibc actually loaded; platform.libc_ver
    scans the interpreter binary and reports the newest symbol version it *requires*."""
    try:
        scanned = list(_platform.libc_ver(executable if executable and os.path.isfile(executable) else sys.executable))
    except Exception:
        scanned = ["", ""]
    try:
        confstr = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        confstr = None
    name, version = (confstr.partition(" ")[0], confstr.partition(" ")[2]) if confstr else tuple(scanned)
    return {"name": name or None, "version": version or None, "gnu_libc_version": confstr, "libc_ver": scanned}


def _sysctl(name: str) -> str | None:
    exe = shutil.which("sysctl") or ("/usr/sbin/sysctl" if os.path.exists("/usr/sbin/sysctl") else None)
    if not exe:
        return None
    try:
        done = _proc.run([exe, "-n", name], timeout=3)
    except Exception:
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def cpu_facts() -> dict:
    if sys.platform == "darwin":
        model = _sysctl("machdep.cpu.brand_string")
        features = (_sysctl("machdep.cpu.features") or "") + " " + (_sysctl("machdep.cpu.leaf7_features") or "")
        flags = {f.lower().replace(".", "_") for f in features.split()}  # SSE4.2 -> sse4_2
        if "avx1_0" in flags:
            flags.add("avx")
        if _platform.machine() == "arm64":
            flags |= {"neon", "asimd"}
    else:
        info = parse_cpuinfo(_read("/proc/cpuinfo", 4 << 20))
        model, flags = info["model"], info["flags"]
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {"model": model, "simd": simd_subset(flags), "logical_cores": os.cpu_count(), "affinity_cores": affinity}


def memory_total_bytes() -> int | None:
    if sys.platform == "darwin":
        value = _sysctl("hw.memsize")
        return int(value) if value and value.isdigit() else None
    total = parse_meminfo(_read("/proc/meminfo"))
    if total is None and hasattr(os, "sysconf"):
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            total = None
    return total


def probe(ctx) -> dict:
    cgroup_text = _read("/proc/self/cgroup")
    uname = _platform.uname()
    return {
        "system": uname.system,
        "release": uname.release,
        "kernel_version": uname.version,
        "machine": uname.machine,
        "distro": parse_os_release(_read("/etc/os-release") or _read("/usr/lib/os-release")),
        "mac_ver": _platform.mac_ver()[0] or None,
        "libc": libc_facts(ctx.python_executable),
        "cpu": cpu_facts(),
        "memory_total_bytes": memory_total_bytes(),
        "shm_bytes": shm_bytes(),
        "container": detect_container(os.path.exists, cgroup_text, {**os.environ, **dict(ctx.environ)}),
        "cgroup": cgroup_limits(cgroup_text),
    }
