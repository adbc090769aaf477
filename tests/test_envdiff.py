"""`reprex diff A B` over real bundles captured in real venvs (uv), `here`, the JSON and
GitHub outputs, and replay's environment differences through the same library."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from reprex.bundle import Bundle
from reprex.record import RECORDER_FILE
from reprex.replay.diff import environment_diff

PY = sys.executable
UV = str(Path(PY).parent / "uv")
APP = """\
import six
import packaging
try:
    import idna
except ImportError:
    idna = None


def main():
    six.reraise(ValueError, ValueError("boom " + ("with" if idna else "without") + " idna"))


main()
"""
# One environment for every capture and `here`: its variable names are part of what is compared.
ENV = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8",
       **{k: v for k, v in os.environ.items() if k.startswith(("UV_", "PIP_"))}}
PINS_A = ["six==1.16.0", "packaging==22.0"]
PINS_B = ["six==1.15.0", "packaging==24.0", "idna==3.7"]


def run(*argv, env=None, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=env or {**os.environ, **ENV})


def reprex(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return run(PY, "-m", "reprex", *args, env=env or ENV, cwd=cwd)


def make_venv(path: Path, python: str, pins: list[str]) -> Path:
    done = run(UV, "venv", "-q", "--python", python, path)
    assert done.returncode == 0, done.stderr
    done = run(UV, "pip", "install", "-q", "--python", path / "bin" / "python", *pins)
    assert done.returncode == 0, done.stderr
    return path / "bin" / "python"


def capture(python: Path, workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "app.py").write_text(APP)
    out = workdir / "app.reprex.zip"
    done = reprex("capture", "-o", out, "--", python, "app.py", cwd=workdir)
    assert done.returncode == 1 and out.is_file(), done.stdout + done.stderr  # the program's own status
    return out


def version_of(python: str) -> str | None:
    try:
        done = run(python, "-c", "import platform; print(platform.python_version())", timeout=30)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def other_patch_release() -> str | None:
    """A Python 3.11 of another patch release than this one, when this machine has one."""
    ours = platform.python_version()
    found = run(UV, "python", "list", "--only-installed", "--output-format", "json", timeout=60)
    candidates = [p.get("path") for p in (json.loads(found.stdout) if found.returncode == 0 else [])
                  if isinstance(p, dict)]
    candidates += ["/usr/bin/python3.11", "/usr/local/bin/python3.11",
                   *map(str, sorted(Path("/root/.pyenv/versions").glob("3.11.*/bin/python3.11")))]
    for path in filter(None, candidates):
        version = version_of(path) if os.path.exists(path) else None
        if version and version.startswith("3.11.") and version != ours:
            return path
    return None


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("envdiff")
    va = make_venv(root / "va", PY, PINS_A)
    vb = make_venv(root / "vb", PY, PINS_B)
    out = {"va": va, "vb": vb, "a": capture(va, root / "a"), "b": capture(vb, root / "b"), "root": root}
    other = other_patch_release()
    if other is not None:
        out["c"] = capture(make_venv(root / "vc", other, PINS_A), root / "c")
        out["c_crafted"] = False
    else:
        # No second 3.11 patch release on this machine: the pair differs by an edit of A's copy
        # where capture writes the Python version (manifest and the python probe), resealed.
        bundle = Bundle.read(out["a"])
        bundle.manifest["python"]["version"] = "3.11.2"
        env = json.loads(bundle.files["environment.json"])
        env["python"]["value"]["version"] = "3.11.2"
        bundle.files["environment.json"] = json.dumps(env).encode()
        out["c"] = bundle.finalize().write(root / "c.reprex.zip")
        out["c_crafted"] = True
    return out


def differing(result: dict) -> set[tuple]:
    return {(r["section"], r["what"], r["a"], r["b"], r["kind"]) for r in result["sections"] if r["kind"] != "same"}


def diff_json(*args, env=None) -> tuple[int, dict]:
    done = reprex("diff", "--json", *args, env=env)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_bundles_from_venvs_with_other_pins_differ_in_exactly_those_pins(bundles):
    code, result = diff_json(bundles["a"], bundles["b"])
    assert code == 1 and result["same"] is False and result["differences"] == 3
    assert differing(result) == {
        ("pins", "pin six", "1.16.0", "1.15.0", "changed"),
        ("pins", "pin packaging", "22.0", "24.0", "changed"),
        ("pins", "pin idna", None, "3.7", "added"),
    }
    flags = {r["what"]: r["flags"] for r in result["sections"] if r["section"] == "pins"}
    assert flags == {"pin six": ["in-frames"], "pin packaging": ["major"], "pin idna": []}  # six.reraise raised
    # the JSON shape: one row per fact, in section order, the same ones included
    assert result["a"] == str(bundles["a"]) and result["b"] == str(bundles["b"])
    assert all(set(r) >= {"section", "what", "a", "b", "kind"} for r in result["sections"])
    sections = [r["section"] for r in result["sections"]]
    assert sections == sorted(sections, key=["python", "platform", "gpu", "pins", "env", "signature"].index)
    same = {r["what"]: r["a"] for r in result["sections"] if r["kind"] == "same"}
    assert same["python"] == platform.python_version() and same["gpu"] == "none" and "env PATH" in same
    assert "signature.message" not in same  # messages only with --strict
    code, strict = diff_json("--strict", bundles["a"], bundles["b"])
    assert differing(strict) - differing(result) == {
        ("signature", "signature.message", "boom without idna", "boom with idna", "changed")}


def test_bundles_from_two_python_patch_releases_differ_in_the_python_version_only(bundles):
    ours = platform.python_version()
    other = Bundle.read(bundles["c"]).manifest["python"]["version"]
    assert other != ours, bundles["c_crafted"]
    code, result = diff_json(bundles["a"], bundles["c"])
    assert code == 1
    assert differing(result) == {("python", "python", ours, other, "changed")}


def test_a_bundle_against_itself_is_the_same_and_the_table_says_so(bundles):
    done = reprex("diff", bundles["a"], bundles["a"])
    assert done.returncode == 0, done.stderr
    assert "no differences" in done.stdout and "2 pins the same on both sides" in done.stdout
    assert "pin six" not in done.stdout  # same pins are counted, not listed
    done = reprex("diff", bundles["a"], bundles["b"])
    assert done.returncode == 1
    assert "pin six" in done.stdout and "major" in done.stdout and "3 difference(s)" in done.stdout


def test_here_is_probed_as_capture_probes_a_run(bundles):
    """`here` with the venv A was captured in and the capture's environment: nothing differs;
    against B, B's pins and a variable only this shell has."""
    code, result = diff_json("here", bundles["a"], "--python", bundles["va"])
    assert (code, differing(result)) == (0, set()), differing(result)
    assert {r["what"] for r in result["sections"]} >= {"python", "platform.libc", "cpu.simd", "pin six", "env PATH"}
    code, result = diff_json("here", bundles["b"], "--python", bundles["va"], env={**ENV, "EXTRA_SETTING": "1"})
    assert code == 1
    assert differing(result) == {
        ("pins", "pin six", "1.16.0", "1.15.0", "changed"),
        ("pins", "pin packaging", "22.0", "24.0", "changed"),
        ("pins", "pin idna", None, "3.7", "added"),
        ("env", "env EXTRA_SETTING", "set", None, "removed"),
    }
    assert "1" not in {r["a"] for r in result["sections"] if r["section"] == "env"}  # names, never values


def test_replay_environment_differences_come_from_the_same_rows(bundles):
    """What replay reports: the bundle's pins against what its env has installed (B's venv
    here, read by the recorder as a replay's is), in replay's {what, bundle, replay} shape."""
    facts = json.loads(run(bundles["vb"], RECORDER_FILE, "--facts").stdout)
    info = {"platform": {"system": platform.system(), "machine": platform.machine()}, "gpus": None}
    rows = environment_diff(Bundle.read(bundles["a"]), facts, info)
    assert rows == [{"what": "pin packaging", "bundle": "22.0", "replay": "24.0"},
                    {"what": "pin six", "bundle": "1.16.0", "replay": "1.15.0"}]
    info = {"platform": {"system": platform.system(), "machine": "aarch64"}, "gpus": None}
    facts["python"]["version"] = "3.12.0"
    facts["distributions"] = [d for d in facts["distributions"] if d["name"] != "six"]
    rows = environment_diff(Bundle.read(bundles["a"]), facts, info)
    assert rows == [{"what": "python", "bundle": platform.python_version(), "replay": "3.12.0"},
                    {"what": "platform.machine", "bundle": platform.machine(), "replay": "aarch64"},
                    {"what": "pin packaging", "bundle": "22.0", "replay": "24.0"},
                    {"what": "pin six", "bundle": "1.16.0", "replay": "missing"}]


HOSTILE = "<img src=x onerror=alert(1)> [click](https://evil.example) @octocat #1 `tick` | pipe \x1b]8;;http://e\x07"


def test_gh_markdown_and_the_table_escape_a_crafted_bundle(bundles, tmp_path):
    """Every string of a bundle that diff shows, crafted: the distro, a GPU model, an
    environment variable name, a signature frame and a requirements.txt pin name."""
    bundle = Bundle.read(bundles["b"])
    bundle.manifest["platform"]["distro"] = HOSTILE
    bundle.manifest["gpu"] = {"count": 1, "models": [HOSTILE], "driver": "535.1", "compute_capabilities": ["8.0"],
                              "cuda": "12.2"}
    bundle.manifest["expect"]["signature"]["frames"][0] = HOSTILE
    env = json.loads(bundle.files["environment.json"])
    env["env"]["value"]["names"].append(HOSTILE)
    bundle.files["environment.json"] = json.dumps(env).encode()
    # (requirements.txt ends a line at " #": a pin name can't hold the whole string)
    bundle.files["requirements.txt"] += b"<b>pin</b>[x](https://evil.example)`t`|\x1b[31m==1.0\n"
    crafted = bundle.finalize().write(tmp_path / "crafted.reprex.zip")
    done = reprex("diff", "--venue", "gh", bundles["a"], crafted)
    assert done.returncode == 1, done.stderr
    md = done.stdout
    assert md.count("evil") == 5  # every crafted string is shown...
    for raw in ("<img", "<b>", "[click]", "[x]", "@octocat", "#1", "`tick`", "`t`", "\x1b", "\x07"):  # ...none live
        assert raw not in md, raw
    assert "&lt;img" in md and "\\[click\\]" in md and "@\u200boctocat" in md and "\\x1b" in md
    assert "pin &lt;b&gt;pin&lt;/b&gt;\\[x\\]" in md
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert all(line.replace("\\|", "").count("|") == 6 for line in table), table  # no cell breaks out
    done = reprex("diff", bundles["a"], crafted)
    assert done.returncode == 1 and "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "\\x1b" in done.stdout


def test_bad_input_is_one_line_and_exit_2(bundles, tmp_path):
    garbage = tmp_path / "garbage.reprex.zip"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    for args in ([tmp_path / "missing.reprex.zip", bundles["a"]], [bundles["a"], garbage]):
        done = reprex("diff", *args)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("reprex: error:") and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    done = reprex("diff", "--json", tmp_path / "missing.reprex.zip", bundles["a"])
    assert done.returncode == 2 and json.loads(done.stdout)["exit"] == 2
    done = reprex("diff", "here", bundles["a"], "--python", tmp_path / "no-python")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = reprex("diff", bundles["a"], bundles["b"], "--python", PY)  # --python without `here`
    assert done.returncode == 2 and "Traceback" not in done.stderr


def gpu_copy(bundles, tmp_path, name: str, driver: str, cuda: str, arch: list[str]) -> Path:
    """A's bundle as a GPU machine's capture writes it (the manifest's gpu summary and the cuda
    probe's torch facts): this machine has no GPU, so the values are set, in capture's shapes."""
    bundle = Bundle.read(bundles["a"])
    bundle.manifest["gpu"] = {"count": 2, "models": ["NVIDIA A100-SXM4-80GB"] * 2, "driver": driver,
                              "compute_capabilities": ["8.0"], "cuda": cuda}
    env = json.loads(bundle.files["environment.json"])
    env["cuda"] = {"status": "ok", "error": None, "duration_s": 0.1, "value": {
        "frameworks": {"torch": {"version": "2.3.1", "cuda": cuda, "arch_list": arch}},
        "capabilities": [], "capabilities_source": None, "arch_mismatch": [], "ptx_jit_only": []}}
    bundle.files["environment.json"] = json.dumps(env).encode()
    return bundle.finalize().write(tmp_path / f"{name}.reprex.zip")


def test_gpu_driver_cuda_and_torch_arch_list_side_by_side(bundles, tmp_path):
    old = gpu_copy(bundles, tmp_path, "old", "535.104.05", "12.1", ["sm_80", "sm_86"])
    new = gpu_copy(bundles, tmp_path, "new", "550.54.15", "12.4", ["sm_80", "sm_90"])
    code, result = diff_json(old, new)
    assert code == 1
    assert differing(result) == {
        ("gpu", "gpu.driver", "535.104.05", "550.54.15", "changed"),
        ("gpu", "gpu.cuda", "12.1", "12.4", "changed"),
        ("gpu", "torch.cuda", "12.1", "12.4", "changed"),
        ("gpu", "torch.arch_list", "sm_80 sm_86", "sm_80 sm_90", "changed"),
    }
    code, result = diff_json(bundles["a"], new)  # no GPU against a GPU: the one row says it
    assert ("gpu", "gpu", "none", "2x NVIDIA A100-SXM4-80GB, NVIDIA A100-SXM4-80GB", "changed") in differing(result)
    assert not {r for r in differing(result) if r[1] in ("gpu.driver", "torch.cuda")}  # unknown on A: not a row


def test_gh_markdown_of_many_differing_pins_stays_an_issue_body(bundles, tmp_path):
    bundle = Bundle.read(bundles["a"])
    long = "x" * 250  # long pin names, escaped wider (<> -> &lt;&gt;): the cut counts the escaped text
    bundle.files["requirements.txt"] += "".join(f"pkg-{i}-<{long}>=={i}.0\n" for i in range(1000)).encode()
    many = bundle.finalize().write(tmp_path / "many.reprex.zip")
    done = reprex("diff", "--venue", "gh", bundles["a"], many)
    assert done.returncode == 1 and len(done.stdout) < 65536
    assert "more rows left out" in done.stdout and "**1000 difference(s).**" in done.stdout


def test_major_change_takes_versions_of_any_length():
    """Found by the hostile sweep (req-huge-line): a bundle's one 1 MB pin made int() raise."""
    from reprex.envdiff import major_change

    assert major_change("1" * 100000 + ".0", "2.0") and not major_change("01.2", "1.3")
    assert major_change("1.0", "2.0") and not major_change("1.0", "1.9") and not major_change("x", "1")
