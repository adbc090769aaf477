"""Tests for reprex.probes: real runs on this machine, real subprocesses, recorded GPU output."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from importlib import metadata
from pathlib import Path

import pytest

from reprex.probes import (
    ProbeContext,
    ProbeSkipped,
    arch_mismatches,
    available_probes,
    parse_nvidia_smi_csv,
    parse_nvidia_smi_header,
    run_probes,
)
from reprex.probes import _proc, _runner, cuda, envvars, gpu, interpreter, packages, system

FIXTURES = Path(__file__).parent / "fixtures" / "gpu"
BUILTINS = {"python", "platform", "packages", "gpu", "cuda", "env", "ray"}

# Real torch.cuda.get_arch_list() outputs, as posted publicly:
# torch 2.11.0+cu126 and 2.11.0+cu128: https://github.com/pytorch/pytorch/issues/182250
ARCH_CU126 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]
ARCH_CU128_211 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
# torch's warning text listing its arch list on an H100 (an older cu11x build, with PTX for 3.7):
# https://github.com/amithkk/stable-diffusion-k8s/issues/10
ARCH_WITH_PTX37 = ["sm_37", "sm_50", "sm_60", "sm_61", "sm_70", "sm_75", "sm_80", "sm_86", "compute_37"]
# torch 1.13.0+cu117 on an H100, which then failed with "no kernel image is available":
# https://github.com/HazyResearch/hyena-dna/issues/76
ARCH_CU117 = ["sm_37", "sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86"]


def load_fixture(name: str) -> tuple[dict, str]:
    """(header metadata, body): leading '# key: value' lines are provenance, the rest is output."""
    meta, lines = {}, (FIXTURES / name).read_text().splitlines(keepends=True)
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        key, sep, value = lines[i][1:].partition(":")
        if sep and key.strip().isidentifier():
            meta[key.strip()] = value.strip()
        i += 1
    return meta, "".join(lines[i:])


def make_ctx(**overrides) -> ProbeContext:
    return ProbeContext.from_current_process(**overrides)


def write_script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def pid_gone(pid: int, within: float = 5.0) -> bool:
    """True once pid no longer runs (a zombie awaiting reaping counts as gone)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            if "State:\tZ" in Path(f"/proc/{pid}/status").read_text():
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------- runner


def test_all_builtin_probes_run_on_this_machine():
    results = run_probes(make_ctx())
    assert BUILTINS <= set(results)
    for name in ("python", "platform", "packages", "gpu", "env"):
        assert results[name]["status"] == "ok", (name, results[name]["error"])
        assert results[name]["error"] is None
        assert results[name]["duration_s"] >= 0
    # nothing imported: the framework probes don't apply
    assert results["cuda"]["status"] == "skipped"
    assert results["ray"]["status"] == "skipped"
    json.dumps(results)  # environment.json must be writable as is


def test_only_restricts_and_unknown_name_fails():
    assert set(run_probes(make_ctx(), only="env")) == {"env"}
    results = run_probes(make_ctx(), only=["env", "no-such-probe"])
    assert set(results) == {"env", "no-such-probe"}
    assert results["env"]["status"] == "ok"
    assert results["no-such-probe"]["status"] == "failed"
    assert "unknown probe" in results["no-such-probe"]["error"]


def test_probe_past_timeout_is_abandoned_as_failed(monkeypatch):
    release = threading.Event()

    def slow(ctx):
        release.wait(30)
        return "late"

    monkeypatch.setitem(_runner.BUILTIN_PROBES, "slow", slow)
    try:
        results = run_probes(make_ctx(), only=["slow", "env"], timeout=0.5)
    finally:
        release.set()
    assert results["slow"]["status"] == "failed"
    assert results["slow"]["value"] is None
    assert "timed out after 0.5s" in results["slow"]["error"]
    assert results["env"]["status"] == "ok"  # the others still report


def test_probe_that_raises_fails_with_one_line_message(monkeypatch):
    def boom(ctx):
        raise ValueError("bad\nthing")

    def leaves(ctx):
        sys.exit(3)

    monkeypatch.setitem(_runner.BUILTIN_PROBES, "boom", boom)
    monkeypatch.setitem(_runner.BUILTIN_PROBES, "leaves", leaves)
    results = run_probes(make_ctx(), only=["boom", "leaves"])
    assert results["boom"] == {**results["boom"], "status": "failed", "value": None, "error": "ValueError: bad thing"}
    assert results["leaves"]["status"] == "failed"
    assert results["leaves"]["error"].startswith("SystemExit")


def test_skipped_and_unserializable_values(monkeypatch):
    def skip(ctx):
        raise ProbeSkipped("not relevant here")

    monkeypatch.setitem(_runner.BUILTIN_PROBES, "skip", skip)
    monkeypatch.setitem(_runner.BUILTIN_PROBES, "weird", lambda ctx: {"x": object()})
    results = run_probes(make_ctx(), only=["skip", "weird"])
    assert results["skip"]["status"] == "skipped"
    assert results["skip"]["error"] == "not relevant here"
    assert results["weird"]["status"] == "failed"
    assert "TypeError" in results["weird"]["error"]


def _make_dist(root: Path, name: str, module_source: str, entry_points: str) -> None:
    (root / f"{name}.py").write_text(module_source)
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_entry_point_probes_load_and_broken_ones_fail(tmp_path, monkeypatch):
    _make_dist(tmp_path, "myprobe", "def probe(ctx):\n    return {'hello': sorted(ctx.imported)}\n",
               "[reprex.probes]\nhello = myprobe:probe\n")
    _make_dist(tmp_path, "brokenprobe", "raise RuntimeError('plugin exploded on import')\n",
               "[reprex.probes]\nbroken = brokenprobe:probe\n")
    _make_dist(tmp_path, "shadowprobe", "def probe(ctx):\n    return 'shadow'\n",
               "[reprex.probes]\ngpu = shadowprobe:probe\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in ("myprobe", "brokenprobe", "shadowprobe"):
        monkeypatch.delitem(sys.modules, mod, raising=False)

    probes = available_probes()
    assert BUILTINS | {"hello", "broken"} <= set(probes)
    assert probes["gpu"] is gpu.probe  # a plugin cannot replace a built-in

    results = run_probes(make_ctx(imported={"numpy", "ray"}), only=["hello", "broken", "gpu"])
    assert results["hello"]["status"] == "ok"
    assert results["hello"]["value"] == {"hello": ["numpy", "ray"]}
    assert results["broken"]["status"] == "failed"
    assert results["broken"]["error"] == "RuntimeError: plugin exploded on import"
    assert results["gpu"]["status"] == "ok" and results["gpu"]["value"] != "shadow"


def test_all_probes_including_plugins_by_default(tmp_path, monkeypatch):
    _make_dist(tmp_path, "myprobe2", "def probe(ctx):\n    return 42\n", "[reprex.probes]\nanswer = myprobe2:probe\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "myprobe2", raising=False)
    results = run_probes(make_ctx())
    assert results["answer"]["value"] == 42
    assert list(results) == sorted(results)


# ---------------------------------------------------------------- bounded subprocesses


def test_command_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    script = write_script(tmp_path / "hang", f"sleep 30 &\necho $! > {pidfile}\nwait\n")
    with pytest.raises(_proc.CommandTimeout, match="timed out after 0.3s"):
        _proc.run([script], timeout=0.3)
    assert pid_gone(int(pidfile.read_text()))


def test_command_timeout_is_capped_by_the_probe_deadline(tmp_path):
    script = write_script(tmp_path / "hang", "sleep 30\n")
    _proc.set_deadline(time.monotonic() + 0.3)
    try:
        with pytest.raises(_proc.CommandTimeout):
            _proc.run([script], timeout=60)
    finally:
        _proc.set_deadline(None)


def test_describe_exit_names_signals():
    assert _proc.describe_exit(-11) == "killed by SIGSEGV"
    assert _proc.describe_exit(2) == "exited with status 2"


# ---------------------------------------------------------------- python


def test_python_probe_describes_this_interpreter():
    value = interpreter.probe(make_ctx())
    assert value["version"] == platform.python_version()
    assert value["implementation"] == platform.python_implementation()
    assert value["executable"] == sys.executable
    assert value["sys_path"] == sys.path
    assert value["source"] == "process"
    assert value["env"]["virtualenv"] == (sys.prefix != sys.base_prefix)
    assert value["env"]["kind"] in {"uv", "virtualenv", "conda", "pyenv", "system"}


def test_python_probe_prefers_recorder_facts():
    facts = {"python": {"version": "3.10.14", "implementation": "CPython", "executable": "/opt/py/bin/python",
                        "prefix": "/nonexistent/venv", "base_prefix": "/opt/py", "sys_path": ["/x"]}}
    value = interpreter.probe(make_ctx(target_facts=facts, python_executable="/opt/py/bin/python"))
    assert value["source"] == "target"
    assert value["version"] == "3.10.14"
    assert value["env"]["virtualenv"] is True
    assert value["env"]["kind"] == "virtualenv"


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory) -> Path:
    """A real venv (no pip) with one hand-laid distribution carrying PEP 610 metadata."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, timeout=30).stdout.strip()
    info = Path(site) / "demo_pkg-1.0+cu121.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0+cu121\nRequires-Dist: numpy>=1.26\n")
    (info / "INSTALLER").write_text("uv\n")
    (info / "direct_url.json").write_text(json.dumps({"url": "file:///src/demo", "dir_info": {"editable": True}}))
    return python


def test_python_probe_queries_a_different_interpreter(venv_python):
    ctx = make_ctx(python_executable=str(venv_python))
    value = interpreter.probe(ctx)
    assert value["source"] == "subprocess"
    assert Path(value["prefix"]) == venv_python.parent.parent
    assert value["env"]["virtualenv"] is True
    assert value["env"]["kind"] == "virtualenv"
    assert "home" in value["env"]["pyvenv_cfg"]


def test_python_probe_falls_back_when_interpreter_is_missing(tmp_path):
    value = interpreter.probe(make_ctx(python_executable=str(tmp_path / "nope" / "python")))
    assert value["source"] == "process"
    assert "could not query" in value["note"]


def test_detect_env_uv_conda_pyenv(tmp_path):
    uv_venv = tmp_path / "uvenv"
    uv_venv.mkdir()
    (uv_venv / "pyvenv.cfg").write_text("home = /usr/bin\nimplementation = CPython\nuv = 0.4.18\n")
    env = interpreter.detect_env(str(uv_venv), "/usr", {}, interpreter.read_pyvenv_cfg(str(uv_venv)))
    assert env["kind"] == "uv" and env["uv"] and env["virtualenv"]

    conda = tmp_path / "miniconda3"
    (conda / "conda-meta").mkdir(parents=True)
    env = interpreter.detect_env(str(conda), str(conda), {"CONDA_PREFIX": str(conda), "CONDA_DEFAULT_ENV": "base"}, None)
    assert env["kind"] == "conda" and env["conda_env"] == "base" and not env["virtualenv"]

    env = interpreter.detect_env("/root/.pyenv/versions/3.11.7", "/root/.pyenv/versions/3.11.7", {"UV": "/bin/uv"}, None)
    assert env["kind"] == "pyenv" and env["uv_run"] and not env["uv"] and env["uv_env_vars"] == ["UV"]

    # a project venv entered through `uv run` (pyvenv.cfg without a uv key, e.g. made by venv)
    env = interpreter.detect_env("/proj/.venv", "/usr", {"UV_RUN_RECURSION_DEPTH": "1"}, {"home": "/usr/bin"})
    assert env["kind"] == "uv" and env["virtualenv"]


# ---------------------------------------------------------------- platform


def test_platform_probe_on_this_machine():
    value = system.probe(make_ctx())
    assert value["machine"] == platform.machine()
    assert value["system"] == platform.system()
    assert value["release"] == platform.release()
    assert value["memory_total_bytes"] > 0
    assert value["cpu"]["logical_cores"] == os.cpu_count()
    assert set(value["cpu"]["simd"]) <= set(system.SIMD_FLAGS)
    if hasattr(os, "sched_getaffinity"):
        assert value["cpu"]["affinity_cores"] == len(os.sched_getaffinity(0))
    if os.path.isdir("/dev/shm"):
        assert value["shm_bytes"] > 0
    if sys.platform.startswith("linux"):
        assert value["memory_total_bytes"] == system.parse_meminfo(Path("/proc/meminfo").read_text())
        cpuinfo = system.parse_cpuinfo(Path("/proc/cpuinfo").read_text())
        assert value["cpu"]["simd"] == system.simd_subset(cpuinfo["flags"])
        if "avx2" in cpuinfo["flags"]:
            assert "avx2" in value["cpu"]["simd"]
        assert value["libc"]["gnu_libc_version"] == os.confstr("CS_GNU_LIBC_VERSION")
        assert value["libc"]["name"] == "glibc"
    if os.path.exists("/etc/os-release"):
        assert value["distro"]["name"] in Path("/etc/os-release").read_text()
    assert value["container"]["in_container"] == bool(value["container"]["signals"])
    if os.path.exists("/.dockerenv"):
        assert "/.dockerenv" in value["container"]["signals"]


def test_container_and_cgroup_parsers():
    assert system.detect_container(lambda p: False, "0::/\n", {}) == {"in_container": False, "runtime": None, "signals": []}
    found = system.detect_container(lambda p: p == "/run/.containerenv", "0::/\n", {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert found["runtime"] == "kubernetes" and found["signals"] == ["/run/.containerenv", "KUBERNETES_SERVICE_HOST"]
    assert system.parse_cpu_max("max 100000\n") is None
    assert system.parse_cpu_max("250000 100000\n") == 2.5

    files = {"/sys/fs/cgroup/cgroup.controllers": "cpu memory", "/sys/fs/cgroup/app.slice/memory.max": "4294967296\n",
             "/sys/fs/cgroup/app.slice/cpu.max": "200000 100000\n"}
    v2 = system.cgroup_limits("0::/app.slice\n", files.get)
    assert v2 == {"version": 2, "memory_limit_bytes": 4294967296, "cpu_limit": 2.0}
    files = {"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
             "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n", "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"}
    v1 = system.cgroup_limits("4:memory:/\n1:cpu,cpuacct:/\n", files.get)
    assert v1 == {"version": 1, "memory_limit_bytes": None, "cpu_limit": None}  # unlimited is not a limit


def test_os_release_parser_on_this_machine():
    if not os.path.exists("/etc/os-release"):
        pytest.skip("no /etc/os-release on this OS")
    parsed = system.parse_os_release(Path("/etc/os-release").read_text())
    fields = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    assert parsed["id"] == fields["ID"].strip('"')


# ---------------------------------------------------------------- gpu: recorded output


def test_fixtures_all_name_their_public_source():
    names = sorted(p.name for p in FIXTURES.iterdir())
    assert len(names) >= 8
    for name in names:
        meta, body = load_fixture(name)
        assert meta["source"].startswith("https://github.com/"), name
        assert "command" in meta and body.strip(), name


def test_csv_with_header_multi_gpu():
    meta, body = load_fixture("csv_header_titanv_rtx5880.csv")
    rows = parse_nvidia_smi_csv(body)
    assert [(r["index"], r["name"], r["compute_capability"], r["driver_version"]) for r in rows] == [
        (0, "NVIDIA TITAN V", "7.0", "570.86.15"),
        (1, "NVIDIA RTX 5880 Ada Generation", "8.9", "570.86.15"),
    ]
    assert rows[0]["compute_mode"] == "Default"  # an unknown field keeps its query name


def test_csv_mig_modes_and_not_available():
    _, body = load_fixture("csv_header_mig_mode_4gpu.csv")
    rows = parse_nvidia_smi_csv(body)
    assert [r["mig_mode"] for r in rows] == ["Enabled", "Disabled", "Disabled", "Disabled"]
    assert rows[0]["uuid"] == "GPU-ec845691-fb46-e16d-abfb-b135308cb39f"
    assert rows[0]["mig.mode.pending"] == "Enabled"
    _, body = load_fixture("csv_header_mig_na_rtx.csv")
    assert parse_nvidia_smi_csv(body) == [{"mig_mode": None}]


def test_csv_noheader_uses_the_query_fields():
    meta, body = load_fixture("csv_noheader_nounits_rtx2080.csv")
    rows = parse_nvidia_smi_csv(body, meta["fields"].split(","))
    assert len(rows) == 1
    row = rows[0]
    assert row["name"] == "GeForce RTX 2080"
    assert row["uuid"] == "GPU-22b2c6ac-2d49-4863-197c-9c469071178a"  # gpu_uuid alias
    assert row["memory_total_mib"] == 7979
    assert row["driver_version"] == "440.64"
    assert row["temperature.memory"] is None  # "N/A"
    meta, body = load_fixture("csv_noheader_h100nvl.csv")
    assert parse_nvidia_smi_csv(body, meta["fields"].split(",")) == [{"name": "NVIDIA H100 NVL", "pci.device_id": "0x232110DE"}]


def test_csv_rows_that_do_not_fit_are_dropped():
    _, body = load_fixture("csv_header_titanv_rtx5880.csv")
    assert parse_nvidia_smi_csv("") == []
    assert len(parse_nvidia_smi_csv(body + "some warning, printed\n")) == 2


@pytest.mark.parametrize(
    "name, smi, driver, cuda_version",
    [
        ("smi_a10g_535_cuda12.2.txt", "535.247.01", "535.247.01", "12.2"),
        ("smi_2xa100_580_cuda13.0.txt", "580.126.09", "580.126.09", "13.0"),
        ("smi_2xb200_r610_kmd_umd.txt", "610.43.02", "610.43.02", "13.3"),
        ("smi_2xa100_mig_510_cuda11.6.txt", "510.47.03", "510.47.03", "11.6"),
        ("smi_3xgtx680_331_no_cuda.txt", "331.62", "331.62", None),
        ("smi_q_gtx1080ti_442_cuda10.2.txt", None, "442.92", "10.2"),
        ("smi_q_580_cuda_not_found.txt", None, "580.105.06", None),
    ],
)
def test_plain_nvidia_smi_header(name, smi, driver, cuda_version):
    _, body = load_fixture(name)
    assert parse_nvidia_smi_header(body) == {"nvidia_smi_version": smi, "driver_version": driver, "cuda_version": cuda_version}


def _fake_nvidia_smi(tmp_path: Path, csv_fixture: str, banner_fixture: str) -> str:
    """An `nvidia-smi` that replays recorded output: CSV for --query-gpu, the banner otherwise."""
    csv_path, banner_path = tmp_path / "query.csv", tmp_path / "banner.txt"
    csv_path.write_text(load_fixture(csv_fixture)[1])
    banner_path.write_text(load_fixture(banner_fixture)[1])
    return write_script(tmp_path / "nvidia-smi", textwrap.dedent(f"""\
        case "$1" in
          --query-gpu=*) cat {csv_path} ;;
          *) cat {banner_path} ;;
        esac
    """))


def test_gpu_from_nvidia_smi_process_on_recorded_output(tmp_path):
    exe = _fake_nvidia_smi(tmp_path, "csv_header_titanv_rtx5880.csv", "smi_a10g_535_cuda12.2.txt")
    found = gpu.from_nvidia_smi(exe)
    value = gpu.summarize(found, {"CUDA_VISIBLE_DEVICES": "1"})
    assert value["count"] == 2
    assert value["models"] == ["NVIDIA TITAN V", "NVIDIA RTX 5880 Ada Generation"]
    assert value["compute_capabilities"] == ["7.0", "8.9"]
    assert value["driver"] == "570.86.15"
    assert value["cuda_driver_version"] == "12.2"
    assert value["source"] == "nvidia-smi"
    assert value["visible_devices"] == {"CUDA_VISIBLE_DEVICES": "1", "NVIDIA_VISIBLE_DEVICES": None}
    assert set(value["gpus"][0]) == set(gpu.GPU_KEYS)


def test_gpu_old_driver_without_compute_cap_field_is_retried(tmp_path):
    log = tmp_path / "calls"
    # the message of drivers that predate compute_cap (see https://github.com/huggingface/candle/issues/733)
    exe = write_script(tmp_path / "nvidia-smi", textwrap.dedent(f"""\
        echo "$1" >> {log}
        case "$1" in
          *compute_cap*) echo 'Field "compute_cap" is not a valid field to query.'; exit 2 ;;
          --query-gpu=*) echo '0, Tesla K80, GPU-daade63e-6b82-4c36-32c5-8929377b9e2b, 470.182.03, 11441, 3E3F8E05:00:00.0' ;;
          *) echo '| NVIDIA-SMI 470.182.03   Driver Version: 470.182.03   CUDA Version: 11.4     |' ;;
        esac
    """))
    found = gpu.from_nvidia_smi(exe)
    assert [g["name"] for g in found["gpus"]] == ["Tesla K80"]
    assert found["gpus"][0]["compute_capability"] is None
    assert found["cuda_driver_version"] == "11.4"
    assert len(log.read_text().splitlines()) == 3


def test_gpu_driver_not_loaded_is_reported_not_raised(tmp_path, monkeypatch):
    write_script(tmp_path / "nvidia-smi", textwrap.dedent("""\
        echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."
        exit 9
    """))
    monkeypatch.setattr(gpu, "_cache", {})
    monkeypatch.setattr(gpu, "from_nvml", lambda: None)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    results = run_probes(make_ctx(), only=["gpu"])
    value = results["gpu"]["value"]
    assert results["gpu"]["status"] == "ok"
    assert value["count"] == 0 and value["source"] == "nvidia-smi"
    assert "exited with status 9" in value["error"] and "couldn't communicate" in value["error"]
    assert gpu._cache == {}  # a failed query is not cached


def test_gpu_from_nvml_with_an_nvml_double(monkeypatch):
    """from_nvml against a stand-in `pynvml` (API shape of nvidia-ml-py; numbers from the A10G
    fixture: driver 535.247.01, CUDA 12.2, 23028 MiB, bus 00000000:00:1E.0; A10G is sm_86)."""
    import types

    class NVMLError(Exception):
        pass

    def not_supported(*args):
        raise NVMLError("Not Supported")

    calls = []
    fake = types.SimpleNamespace(
        nvmlInit=lambda: calls.append("init"),
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlSystemGetDriverVersion=lambda: b"535.247.01",
        nvmlSystemGetCudaDriverVersion_v2=lambda: 12020,
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: ("handle", i),
        nvmlDeviceGetName=lambda h: "NVIDIA A10G",
        nvmlDeviceGetUUID=not_supported,
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=23028 * 1024 * 1024),
        nvmlDeviceGetCudaComputeCapability=lambda h: (8, 6),
        nvmlDeviceGetMigMode=not_supported,
        nvmlDeviceGetPciInfo=lambda h: types.SimpleNamespace(busId=b"00000000:00:1E.0"),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    found = gpu.from_nvml()
    assert calls == ["init", "shutdown"]
    assert found == {
        "driver": "535.247.01", "cuda_driver_version": "12.2", "source": "nvml",
        "gpus": [{"index": 0, "name": "NVIDIA A10G", "uuid": None, "memory_total_mib": 23028,
                  "compute_capability": "8.6", "mig_mode": None, "pci_bus_id": "00000000:00:1E.0"}],
    }
    fake.nvmlInit = not_supported  # NVML library present but no driver: fall through to nvidia-smi
    assert gpu.from_nvml() is None


def test_gpu_probe_real_no_gpu_path(monkeypatch):
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi; the no-GPU path needs a machine without one")
    monkeypatch.setattr(gpu, "_cache", {})
    results = run_probes(make_ctx(environ={"CUDA_VISIBLE_DEVICES": ""}), only=["gpu"])
    assert results["gpu"]["status"] == "ok"
    value = results["gpu"]["value"]
    if value["source"] == "nvml":
        pytest.skip("pynvml found a GPU through NVML")
    assert value["count"] == 0 and value["gpus"] == [] and value["models"] == []
    assert value["source"] is None and value["driver"] is None
    assert value["visible_devices"]["CUDA_VISIBLE_DEVICES"] == ""


# ---------------------------------------------------------------- cuda


@pytest.mark.parametrize("cap", ["12.0", (12, 0)])
def test_arch_mismatch_blackwell_on_cu126_wheel(cap):
    assert arch_mismatches([{"name": "NVIDIA GeForce RTX 5090", "capability": cap}], ARCH_CU126) == [
        {"gpu": "NVIDIA GeForce RTX 5090", "sm": "sm_120", "arch_list": ARCH_CU126}
    ]


def test_arch_mismatch_rules_on_real_arch_lists():
    # same major, newer minor runs the older cubin (an RTX 4090, 8.9, on sm_86 kernels)
    assert arch_mismatches(["8.9", "9.0", "7.0"], ARCH_CU126) == []
    # B200 (10.0) on cu126 has no kernel
    assert [m["sm"] for m in arch_mismatches(["10.0"], ARCH_CU126)] == ["sm_100"]
    # the regression in pytorch#182250: cu128 builds of 2.11 dropped V100
    assert [m["sm"] for m in arch_mismatches([{"name": "Tesla V100-SXM2-16GB", "capability": "7.0"}], ARCH_CU128_211)] == ["sm_70"]
    assert arch_mismatches(["12.0", "10.0"], ARCH_CU128_211) == []
    # H100 on torch 1.13+cu117: no sm_90 and no PTX -> flagged (the thread failed with 'no kernel image')
    assert [m["sm"] for m in arch_mismatches(["9.0"], ARCH_CU117)] == ["sm_90"]
    # with compute_37 PTX present, 9.0 runs through JIT: not a mismatch, but reported as PTX-only
    assert arch_mismatches(["9.0"], ARCH_WITH_PTX37) == []
    assert cuda.ptx_only(["9.0"], ARCH_WITH_PTX37) == [{"gpu": "9.0", "sm": "sm_90", "via": "compute_37"}]
    # an older GPU than anything built: 3.5 has no sm_3x <= 3.5 and PTX 3.7 does not run backwards
    assert [m["sm"] for m in arch_mismatches(["3.5"], ARCH_WITH_PTX37)] == ["sm_35"]
    # arch-specific 'a' cubins run on that exact capability only (GB10 is 12.1)
    assert arch_mismatches(["12.0"], ["sm_120a"]) == []
    assert [m["sm"] for m in arch_mismatches(["12.1"], ["sm_120a"])] == ["sm_121"]
    # a CPU-only build has no arch list: nothing to judge
    assert arch_mismatches(["9.0"], []) == []


def test_supported_by_prefers_sass_over_ptx():
    assert cuda.supported_by("8.6", ["sm_80", "compute_80"]) == "sm_80"
    assert cuda.supported_by("9.0", ["sm_80", "compute_80"]) == "compute_80"
    assert cuda.supported_by("7.5", ["sm_80", "compute_80"]) is None


def test_cuda_probe_skipped_without_frameworks():
    results = run_probes(make_ctx(imported={"numpy", "requests"}), only=["cuda"])
    assert results["cuda"]["status"] == "skipped"
    assert "torch" in results["cuda"]["error"]


def test_cuda_probe_interpreter_that_hangs_times_out(tmp_path):
    fake = write_script(tmp_path / "python", "sleep 30\n")
    results = run_probes(make_ctx(imported={"torch"}, python_executable=fake), only=["cuda"], timeout=1.0)
    assert results["cuda"]["status"] == "failed"
    assert "timed out" in results["cuda"]["error"]


def test_cuda_probe_own_subprocess_timeout_kills_the_interpreter(tmp_path, monkeypatch):
    pidfile = tmp_path / "sleep.pid"
    fake = write_script(tmp_path / "python", f"sleep 30 &\necho $! > {pidfile}\nwait\n")
    monkeypatch.setattr(cuda, "SUBPROCESS_TIMEOUT", 0.5)
    results = run_probes(make_ctx(imported={"torch"}, python_executable=fake), only=["cuda"], timeout=10)
    assert results["cuda"]["status"] == "failed"
    assert results["cuda"]["error"] == "CommandTimeout: python timed out after 0.5s"
    assert pid_gone(int(pidfile.read_text()))


def test_cuda_probe_interpreter_that_segfaults(tmp_path):
    fake = write_script(tmp_path / "python", "echo 'Fatal Python error: Segmentation fault' >&2\nkill -SEGV $$\n")
    results = run_probes(make_ctx(imported={"torch", "numpy"}, python_executable=fake), only=["cuda"])
    assert results["cuda"]["status"] == "failed"
    assert "killed by SIGSEGV" in results["cuda"]["error"]
    assert "Segmentation fault" in results["cuda"]["error"]


def test_cuda_probe_without_torch_installed_reports_import_error():
    try:
        metadata.version("torch")
        pytest.skip("torch is installed in this interpreter")
    except metadata.PackageNotFoundError:
        pass
    results = run_probes(make_ctx(imported={"torch"}), only=["cuda"])
    assert results["cuda"]["status"] == "ok"
    assert results["cuda"]["value"]["frameworks"]["torch"]["error"].startswith("ModuleNotFoundError")


def test_cuda_probe_full_script_against_a_torch_api_double(tmp_path):
    """Runs the real probe script in a real interpreter against a stand-in `torch` module
    (the API shape only; the arch list is a real cu126 one) to exercise parsing and flagging."""
    stub = tmp_path / "stubs" / "torch"
    (stub / "backends").mkdir(parents=True)
    (stub / "__init__.py").write_text(textwrap.dedent("""\
        __version__ = "2.11.0+cu126"
        class version:
            cuda = "12.6"
            hip = None
        from . import backends, cuda
    """))
    (stub / "backends" / "__init__.py").write_text("from . import cudnn\n")
    (stub / "backends" / "cudnn.py").write_text("def version():\n    return 90100\n")
    (stub / "cuda.py").write_text(textwrap.dedent(f"""\
        def is_available(): return True
        def get_arch_list(): return {ARCH_CU126!r}
        def device_count(): return 2
        def get_device_capability(i): return [(9, 0), (12, 0)][i]
        def get_device_name(i): return ["NVIDIA H100 80GB HBM3", "NVIDIA GeForce RTX 5090"][i]
    """))
    environ = {**os.environ, "PYTHONPATH": str(tmp_path / "stubs")}
    results = run_probes(make_ctx(imported={"torch"}, environ=environ), only=["cuda"])
    assert results["cuda"]["status"] == "ok", results["cuda"]["error"]
    value = results["cuda"]["value"]
    torch_facts = value["frameworks"]["torch"]
    assert torch_facts["version"] == "2.11.0+cu126" and torch_facts["cudnn"] == 90100
    assert [d["capability"] for d in torch_facts["devices"]] == ["9.0", "12.0"]
    assert value["capabilities_source"] == "torch"
    assert value["arch_mismatch"] == [
        {"gpu": "NVIDIA GeForce RTX 5090", "sm": "sm_120", "arch_list": ARCH_CU126, "framework": "torch"}
    ]


def _torch_python() -> str | None:
    """An interpreter with real torch: REPREX_TEST_TORCH_PYTHON, else this one if it has torch."""
    candidate = os.environ.get("REPREX_TEST_TORCH_PYTHON")
    if candidate and os.path.exists(candidate):
        return candidate
    try:
        metadata.version("torch")
        return sys.executable
    except metadata.PackageNotFoundError:
        return None


@pytest.mark.slow
def test_cuda_probe_with_real_torch():
    python = _torch_python()
    if python is None:
        pytest.skip("torch is not installed (set REPREX_TEST_TORCH_PYTHON to an interpreter that has it)")
    results = run_probes(make_ctx(imported={"torch"}, python_executable=python), only=["cuda"], timeout=60)
    assert results["cuda"]["status"] == "ok", results["cuda"]["error"]
    facts = results["cuda"]["value"]["frameworks"]["torch"]
    expected = subprocess.run([python, "-c", "import torch; print(torch.__version__)"],
                              capture_output=True, text=True, timeout=120).stdout.strip()
    assert facts["version"] == expected
    if not facts["is_available"]:
        assert facts["device_count"] == 0 and facts["devices"] == []


# ---------------------------------------------------------------- packages


def test_packages_probe_lists_this_interpreter():
    value = packages.probe(make_ctx())
    assert value["source"] == "process"
    dists = {d["normalized_name"]: d for d in value["distributions"]}
    assert dists["pytest"]["version"] == metadata.version("pytest")
    names = [d["normalized_name"] for d in value["distributions"]]
    assert names == sorted(names)


def test_packages_probe_from_recorder_facts_with_pep610_provenance():
    # direct_url.json documents as given in PEP 610's examples
    facts = {"distributions": [
        {"name": "torch", "version": "2.1.0+cu121", "requires": ["filelock"], "direct_url": None, "installer": "pip", "location": "/x"},
        {"name": "My_Pkg", "version": "0.1", "requires": [], "installer": "pip", "location": "/y",
         "direct_url": {"url": "file:///home/user/project", "dir_info": {"editable": True}}},
        {"name": "pip", "version": "20.2", "requires": [], "installer": "pip", "location": "/z",
         "direct_url": {"url": "https://github.com/pypa/pip.git",
                        "vcs_info": {"vcs": "git", "requested_revision": "1.3.1",
                                     "commit_id": "7921be1537eac1e97bc40179a57f0349c2aee67d"}}},
        {"name": "pip", "version": "19.0", "requires": [], "installer": "pip", "location": "/shadowed", "direct_url": None},
        {"name": "wheel", "version": "0.35", "requires": [], "installer": "uv", "location": "/w",
         "direct_url": {"url": "https://files.example/wheel-0.35.whl", "archive_info": {"hashes": {"sha256": "abc"}}}},
    ]}
    value = packages.probe(make_ctx(target_facts=facts))
    assert value["source"] == "target"
    dists = {d["normalized_name"]: d for d in value["distributions"]}
    assert [d["normalized_name"] for d in value["distributions"]] == ["my-pkg", "pip", "torch", "wheel"]
    assert dists["torch"]["local_version"] == "cu121"
    assert dists["my-pkg"]["provenance"]["editable"] is True
    assert dists["my-pkg"]["provenance"]["local_path"] == "/home/user/project"
    assert dists["pip"]["provenance"]["vcs"] == {"vcs": "git", "commit_id": "7921be1537eac1e97bc40179a57f0349c2aee67d",
                                                "requested_revision": "1.3.1"}
    assert dists["pip"]["shadowed"] == [{"version": "19.0", "location": "/shadowed"}]
    assert dists["wheel"]["provenance"]["archive_hash"] == "sha256=abc"
    assert dists["wheel"]["installer"] == "uv"


def test_packages_probe_queries_a_different_interpreter(venv_python):
    value = packages.probe(make_ctx(python_executable=str(venv_python)))
    assert value["source"] == "subprocess"
    demo = [d for d in value["distributions"] if d["normalized_name"] == "demo-pkg"]
    assert demo and demo[0]["version"] == "1.0+cu121" and demo[0]["local_version"] == "cu121"
    assert demo[0]["provenance"]["editable"] is True and demo[0]["provenance"]["local_path"] == "/src/demo"
    assert demo[0]["installer"] == "uv" and demo[0]["requires"] == ["numpy>=1.26"]
    assert "pytest" not in {d["normalized_name"] for d in value["distributions"]}  # not this process's packages


# ---------------------------------------------------------------- env and ray


ENVIRON = {
    "CUDA_VISIBLE_DEVICES": "0,1",
    "HF_TOKEN": "hf_should_not_appear",
    "HF_HOME": "/data/hf",
    "RAY_ADDRESS": "ray://head:10001",
    "RAY_REDIS_PASSWORD": "hunter2",
    "AWS_SECRET_ACCESS_KEY": "xyz",
    "PYTHONPATH": "/src",
    "OMP_NUM_THREADS": "4",
    "PATH": "/usr/bin:/bin",
    "HOME": "/nonexistent-home",
    "NCCL_DEBUG": "INFO",
    "WANDB_API_KEY": "k",
    "EDITOR": "vim",
}


def test_env_probe_names_always_values_only_allowlisted():
    value = envvars.probe(make_ctx(environ=ENVIRON))
    assert value["names"] == sorted(ENVIRON)
    assert value["values"] == {
        "CUDA_VISIBLE_DEVICES": "0,1", "HF_HOME": "/data/hf", "RAY_ADDRESS": "ray://head:10001", "PYTHONPATH": "/src",
        "OMP_NUM_THREADS": "4", "PATH": "/usr/bin:/bin", "NCCL_DEBUG": "INFO",
    }
    text = json.dumps(value)
    for secret in ("hf_should_not_appear", "hunter2", "xyz"):
        assert secret not in text


def test_ray_probe_skipped_unless_ray_imported():
    results = run_probes(make_ctx(imported={"torch"}, environ=ENVIRON), only=["ray"])
    assert results["ray"]["status"] == "skipped"


def test_ray_probe_version_env_and_netrc_presence_only(tmp_path):
    (tmp_path / ".netrc").write_text("machine example.com login me password netrc-sentinel-value\n")
    facts = {"distributions": [{"name": "ray", "version": "2.9.3", "requires": [], "direct_url": None,
                                "installer": "pip", "location": "/x"}]}
    ctx = make_ctx(imported={"ray"}, environ={**ENVIRON, "HOME": str(tmp_path)}, target_facts=facts)
    results = run_probes(ctx, only=["ray"])
    assert results["ray"]["status"] == "ok"
    value = results["ray"]["value"]
    assert value["version"] == "2.9.3" and value["version_source"] == "target"
    assert value["env"] == {"names": ["RAY_ADDRESS", "RAY_REDIS_PASSWORD"], "values": {"RAY_ADDRESS": "ray://head:10001"}}
    assert value["netrc_exists"] is True and value["netrc_env_set"] is False
    assert "netrc-sentinel-value" not in json.dumps(value)

    no_netrc = run_probes(make_ctx(imported={"ray"}, environ={"HOME": str(tmp_path / "empty")}), only=["ray"])
    assert no_netrc["ray"]["value"]["netrc_exists"] is False


TORCH_BUILD = {"torch": {"version": "2.11.0+cu128", "cuda": "12.8", "hip": None,
                         "arch_list": ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]}}


def test_cuda_probe_takes_the_recorded_torch_build_when_no_gpu_is_there(monkeypatch, tmp_path):
    """No GPU device on the host: the recorded run's view of torch's build is all there is, and
    no interpreter is started (a missing one proves it); with a device, or another framework
    imported, the subprocess runs as before."""
    missing = str(tmp_path / "no-such-python")
    monkeypatch.setattr(cuda, "gpu_device_visible", lambda: False)
    ctx = make_ctx(imported={"torch"}, python_executable=missing, target_facts={"frameworks": TORCH_BUILD})
    results = run_probes(ctx, only=["cuda"])
    assert results["cuda"]["status"] == "ok", results["cuda"]
    torch_facts = results["cuda"]["value"]["frameworks"]["torch"]
    assert torch_facts["version"] == "2.11.0+cu128" and torch_facts["cuda"] == "12.8"
    assert torch_facts["arch_list"] == TORCH_BUILD["torch"]["arch_list"]
    assert torch_facts["is_available"] is False and torch_facts["devices"] == []
    assert torch_facts["source"].startswith("recorded run")

    for visible, imported, facts in [(True, {"torch"}, TORCH_BUILD), (False, {"torch", "jax"}, TORCH_BUILD),
                                     (False, {"torch"}, {}),  # an older recorder: no facts
                                     (False, {"torch"}, {"torch": {**TORCH_BUILD["torch"], "hip": "6.2"}})]:
        monkeypatch.setattr(cuda, "gpu_device_visible", lambda v=visible: v)
        ctx = make_ctx(imported=imported, python_executable=missing, target_facts={"frameworks": facts})
        result = run_probes(ctx, only=["cuda"])["cuda"]
        assert result["status"] == "failed" and "no-such-python" in result["error"], (visible, imported, facts)


def test_the_recorder_reads_a_real_torch_build_without_a_second_import(tmp_path):
    """A capture with real torch on this GPU-less machine: the bundle's torch facts are the
    recorded run's and match what torch says of itself."""
    python = _torch_python()
    if python is None:
        pytest.skip("torch is not installed (set REPREX_TEST_TORCH_PYTHON to an interpreter that has it)")
    if cuda.gpu_device_visible():
        pytest.skip("a GPU device is visible here: the probe rightly imports torch in a subprocess")
    from reprex.capture.pipeline import CaptureOptions, capture_command

    (tmp_path / "t.py").write_text("import torch\nraise ValueError(torch.zeros(2).shape)\n")
    bundle = capture_command([python, "t.py"], CaptureOptions(tee=False), cwd=str(tmp_path), write=False).bundle
    probe = json.loads(bundle.files["environment.json"])["cuda"]
    assert probe["status"] == "ok", probe
    facts = probe["value"]["frameworks"]["torch"]
    truth = json.loads(subprocess.run(
        [python, "-c", "import json, torch; print(json.dumps([torch.__version__, torch.version.cuda, "
                       "torch.cuda.get_arch_list()]))"], capture_output=True, text=True, timeout=120).stdout)
    assert [facts["version"], facts["cuda"], facts["arch_list"]] == truth
    assert facts["source"].startswith("recorded run")
