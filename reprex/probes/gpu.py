"""`gpu` probe: NVIDIA GPUs, driver and the CUDA version the driver supports.

NVML (pynvml, only if importable) first, else `nvidia-smi` with a timeout. No GPU is a
normal result (count 0), not a failure. nvidia-smi's text is parsed by pure functions so
they are tested on output recorded from real machines (tests/fixtures/gpu/).
"""

from __future__ import annotations

import csv
import re
import shutil
import threading

from . import _proc

QUERY_FIELDS = ("index", "name", "uuid", "driver_version", "memory.total", "compute_cap", "mig.mode.current", "pci.bus_id")
# drivers before ~510 reject compute_cap (and very old ones mig.mode.current): "is not a valid field to query"
FALLBACK_FIELDS = ("index", "name", "uuid", "driver_version", "memory.total", "pci.bus_id")
SMI_TIMEOUT = 10.0

_FIELD_KEYS = {
    "index": "index",
    "name": "name", "gpu_name": "name",
    "uuid": "uuid", "gpu_uuid": "uuid",
    "driver_version": "driver_version",
    "memory.total": "memory_total_mib",
    "compute_cap": "compute_capability",
    "mig.mode.current": "mig_mode",
    "pci.bus_id": "pci_bus_id", "gpu_bus_id": "pci_bus_id",
}
GPU_KEYS = ("index", "name", "uuid", "memory_total_mib", "compute_capability", "mig_mode", "pci_bus_id")
_HEADER_CELL = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\s*\[[^\]]*\])?$")
_MISSING = {"", "n/a", "[n/a]", "[not supported]", "not supported", "[unknown error]", "[insufficient permissions]"}


def _field_name(header_cell: str) -> str:
    """'memory.total [MiB]' -> 'memory.total'."""
    return header_cell.split("[", 1)[0].strip().lower()


def _clean(key: str, raw: str):
    value = raw.strip()
    if value.lower() in _MISSING:
        return None
    if key in ("index",):
        return int(value) if value.isdigit() else value
    if key == "memory_total_mib":
        number = value.split()[0]  # "81559 MiB" with units, "81559" with nounits
        return int(number) if number.isdigit() else value
    return value


def parse_nvidia_smi_csv(text: str, fields=QUERY_FIELDS) -> list[dict]:
    """Rows of `nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]`.

    A header line, when present, names the columns (in any order); otherwise `fields`
    does. Known fields get normalized keys (GPU_KEYS, driver_version), others keep their
    query name; '[N/A]'-style values become None.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    columns = [c.strip().lower() for c in fields]
    first = next(csv.reader([lines[0]], skipinitialspace=True))
    if all(_HEADER_CELL.match(cell.strip()) for cell in first):  # headers are lowercase field names
        columns = [_field_name(cell) for cell in first]
        lines = lines[1:]
    rows = []
    for cells in csv.reader(lines, skipinitialspace=True):
        if len(cells) != len(columns):
            continue  # a warning line or a truncated row, not data
        row = {}
        for column, cell in zip(columns, cells, strict=True):  # lengths checked above
            key = _FIELD_KEYS.get(column, column)
            row[key] = _clean(key, cell)
        rows.append(row)
    return rows


def _version(text: str | None) -> str | None:
    return text if text and re.fullmatch(r"\d+(\.\d+)*", text) else None


def parse_nvidia_smi_header(text: str) -> dict:
    """Driver and supported-CUDA versions from plain `nvidia-smi` (or `nvidia-smi -q`) output.

    Handles the table banner ('Driver Version: 535.54.03   CUDA Version: 12.2'), the R610+
    banner ('KMD Version: ...  CUDA UMD Version: 13.3') and the -q layout ('CUDA Version : 12.2').
    """
    smi = re.search(r"NVIDIA-SMI\s+(\S+)", text)
    driver = re.search(r"(?:Driver|KMD) Version\s*:\s*(\S+)", text)
    cuda = re.search(r"CUDA(?: UMD)? Version\s*:\s*(\S+)", text)
    return {
        "nvidia_smi_version": _version(smi.group(1)) if smi else None,
        "driver_version": _version(driver.group(1)) if driver else None,
        "cuda_version": _version(cuda.group(1)) if cuda else None,
    }


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _try(fn, *args):
    try:
        return fn(*args)
    except Exception:
        return None


def from_nvml() -> dict | None:
    """GPU facts through NVML, or None when pynvml is missing or NVML cannot start."""
    try:
        import pynvml
    except Exception:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        cuda = _try(pynvml.nvmlSystemGetCudaDriverVersion_v2) or _try(pynvml.nvmlSystemGetCudaDriverVersion)
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            cc = _try(pynvml.nvmlDeviceGetCudaComputeCapability, h)
            mig = _try(pynvml.nvmlDeviceGetMigMode, h)
            mem = _try(pynvml.nvmlDeviceGetMemoryInfo, h)
            pci = _try(pynvml.nvmlDeviceGetPciInfo, h)
            gpus.append({
                "index": i,
                "name": _text(_try(pynvml.nvmlDeviceGetName, h) or "") or None,
                "uuid": _text(_try(pynvml.nvmlDeviceGetUUID, h) or "") or None,
                "memory_total_mib": mem.total // (1024 * 1024) if mem is not None else None,
                "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
                "mig_mode": ("Enabled" if mig[0] else "Disabled") if mig else None,
                "pci_bus_id": _text(pci.busId) if pci is not None else None,
            })
        return {
            "driver": _text(_try(pynvml.nvmlSystemGetDriverVersion) or "") or None,
            "cuda_driver_version": f"{cuda // 1000}.{(cuda % 1000) // 10}" if isinstance(cuda, int) and cuda else None,
            "gpus": gpus,
            "source": "nvml",
        }
    finally:
        _try(pynvml.nvmlShutdown)


def from_nvidia_smi(exe: str) -> dict:
    """GPU facts from the nvidia-smi CSV query plus its banner (for the CUDA version)."""
    fields = QUERY_FIELDS
    done = _proc.run([exe, "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"], timeout=SMI_TIMEOUT)
    if done.returncode != 0 and "valid field" in (done.stdout + done.stderr).lower():
        fields = FALLBACK_FIELDS
        done = _proc.run([exe, "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"], timeout=SMI_TIMEOUT)
    result = {"driver": None, "cuda_driver_version": None, "gpus": [], "source": "nvidia-smi"}
    if done.returncode != 0:  # e.g. "couldn't communicate with the NVIDIA driver": a fact worth keeping
        result["error"] = f"nvidia-smi {_proc.describe_exit(done.returncode)}: {_proc.last_line(done.stdout + done.stderr)}"
        return result
    rows = parse_nvidia_smi_csv(done.stdout, fields)
    result["gpus"] = [{key: row.get(key) for key in GPU_KEYS} for row in rows]
    result["driver"] = next((row["driver_version"] for row in rows if row.get("driver_version")), None)
    try:
        banner = parse_nvidia_smi_header(_proc.run([exe], timeout=SMI_TIMEOUT).stdout)
        result["cuda_driver_version"] = banner["cuda_version"]
        result["driver"] = result["driver"] or banner["driver_version"]
    except _proc.CommandTimeout:
        result["error"] = "plain nvidia-smi timed out (CUDA version unknown)"
    return result


_cache_lock = threading.Lock()
_cache: dict = {}


def detect_gpus(refresh: bool = False) -> dict:
    """NVML, else nvidia-smi, else none; shared by the gpu and cuda probes (one query per process)."""
    with _cache_lock:
        if "value" in _cache and not refresh:
            return _cache["value"]
        found = from_nvml()
        if found is None:
            exe = shutil.which("nvidia-smi")
            found = from_nvidia_smi(exe) if exe else {"driver": None, "cuda_driver_version": None, "gpus": [], "source": None}
        if "error" not in found:
            _cache["value"] = found
        return found


def summarize(found: dict, environ) -> dict:
    gpus = found.get("gpus") or []
    value = {
        "count": len(gpus),
        "models": list(dict.fromkeys(g["name"] for g in gpus if g.get("name"))),
        "driver": found.get("driver"),
        "cuda_driver_version": found.get("cuda_driver_version"),
        "compute_capabilities": sorted(
            {str(g["compute_capability"]) for g in gpus if g.get("compute_capability")},
            key=lambda c: tuple(int(x) if x.isdigit() else -1 for x in c.split(".")),
        ),
        "gpus": gpus,
        "visible_devices": {k: environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")},
        "source": found.get("source"),
        "notes": [],
    }
    if found.get("error"):
        value["error"] = found["error"]
    rocm = shutil.which("rocm-smi")
    if rocm:
        value["notes"].append(f"rocm-smi present at {rocm} (AMD GPUs are not probed)")
    return value


def probe(ctx) -> dict:
    return summarize(detect_gpus(), ctx.environ)
