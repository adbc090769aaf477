"""`reprex replay` on the local backend: real venvs, real pip installs, real verdicts."""

import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from reprex.bundle import Bundle
from reprex.capture.pipeline import CaptureOptions, capture_command
from reprex.replay import ReplayOptions, exit_code, judge, replay

PY = sys.executable


def _capture(tmp: Path, source: str, name="app.py", **opts) -> Bundle:
    (tmp / name).write_text(textwrap.dedent(source))
    result = capture_command([PY, name], CaptureOptions(tee=False, **opts), cwd=str(tmp))
    assert result.bundle is not None, result.message
    return result.bundle


SKEW = """
    # Code written against packaging<22, which still had LegacyVersion.
    from packaging.version import parse
    def newest(tags):
        from packaging.version import LegacyVersion
        return max(parse(t) for t in tags if not isinstance(parse(t), LegacyVersion))
    print(newest(["1.0", "2.0", "nightly"]))
"""


@pytest.fixture(scope="module")
def skew_bundle(tmp_path_factory, cache):
    tmp = tmp_path_factory.mktemp("skew")
    return _capture(tmp, SKEW)


def test_pins_are_the_imported_closure(skew_bundle):
    reqs = skew_bundle.text("requirements.txt")
    assert "packaging==" in reqs
    assert "click==" not in reqs and "rich==" not in reqs  # installed but never imported


def test_reproduced_then_warm_reuse(skew_bundle, cache):
    first = replay(skew_bundle, ReplayOptions(backend="local"))
    assert first.verdict == "reproduced", first.reason
    assert first.expected_signature.types == ["ImportError"]
    envs = list((cache / "envs").glob("py*"))
    assert len([e for e in envs if e.is_dir()]) == 1
    second = replay(skew_bundle, ReplayOptions(backend="local", runs=2))
    assert second.verdict == "reproduced" and second.reproduced_runs == 2
    assert [e for e in (cache / "envs").glob("py*") if e.is_dir()] == [e for e in envs if e.is_dir()]


def test_a_warm_env_keeps_its_bytecode_and_facts_from_the_first_run(skew_bundle, tmp_path, monkeypatch):
    """uv installs no bytecode: the env's first run writes it (into the cached env, not the work
    dir), and the env's facts are read once, beside that run, for the later runs instead of
    reading every distribution again; the environment diff is the same either way."""
    monkeypatch.setenv("REPREX_CACHE_DIR", str(tmp_path))  # this env's first run is the one below
    first = replay(skew_bundle, ReplayOptions(backend="local"))
    (venv,) = [e for e in (tmp_path / "envs").glob("py*") if e.is_dir()]
    assert not list(venv.glob(".reprex-facts.json.*"))  # no temp file left
    assert list(venv.glob("lib/python*/site-packages/packaging/__pycache__/version.*.pyc"))
    saved = json.loads((venv / ".reprex-facts.json").read_text())
    assert any(d["name"] == "packaging" for d in saved["distributions"])
    again = replay(skew_bundle, ReplayOptions(backend="local"))
    assert again.verdict == first.verdict == "reproduced"
    assert again.diff == first.diff
    for dist in saved["distributions"]:  # later runs take the env's facts from the file
        if dist["name"] == "packaging":
            dist["version"] = "0.0.1"
    (venv / ".reprex-facts.json").write_text(json.dumps(saved))
    third = replay(skew_bundle, ReplayOptions(backend="local"))
    assert [row["replay"] for row in third.diff if row["what"] == "pin packaging"] == ["0.0.1"]


def test_fixed_with_an_older_pin_and_expect_fixed(skew_bundle):
    result = replay(skew_bundle, ReplayOptions(backend="local", with_specs=["packaging==21.3"], expect="fixed"))
    assert result.verdict == "fixed", result.reason
    assert exit_code(result.verdict, "fixed") == 0
    assert exit_code(result.verdict, "reproduced") == 1
    assert any(row["what"] == "pin packaging" for row in result.diff) or result.diff == []


def test_different_when_the_failure_changes(tmp_path, cache):
    bundle = _capture(tmp_path, "def f():\n    raise KeyError('a')\nf()\n")
    bundle.files["files/app.py"] = b"def f():\n    raise ValueError('b')\nf()\n"
    bundle.finalize()
    result = replay(bundle, ReplayOptions(backend="local"))
    assert result.verdict == "different"
    assert result.signature.types == ["ValueError"] and result.expected_signature.types == ["KeyError"]
    assert exit_code(result.verdict) == 1


def test_flaky_counts_k_of_n(tmp_path, cache):
    marker = tmp_path / "counter"
    source = f"""
        import pathlib
        p = pathlib.Path({str(marker)!r})
        n = int(p.read_text()) if p.exists() else 0
        p.write_text(str(n + 1))
        def check(n):
            if n % 2 == 0:
                raise RuntimeError("even run")
        check(n)
    """
    bundle = _capture(tmp_path, source)
    result = replay(bundle, ReplayOptions(backend="local", runs=4))
    assert result.verdict == "flaky" and result.reproduced_runs == 2 and result.runs == 4
    assert "2 of 4" in result.reason


def test_hang_reproduces_as_timeout(tmp_path, cache):
    bundle = _capture(tmp_path, "import time\ndef stuck():\n    time.sleep(3600)\nstuck()\n", timeout=1.5)
    assert bundle.manifest["expect"]["outcome"] == "timeout"
    from reprex.replay.base import DEFAULT_TIMEOUT, run_timeout

    chosen = run_timeout(bundle, ReplayOptions())  # as long as the capture hung, not 300 s
    assert chosen == pytest.approx(bundle.json("run.json")["outcome"]["duration_s"]) and chosen < DEFAULT_TIMEOUT
    assert run_timeout(bundle, ReplayOptions(timeout=7)) == 7
    result = replay(bundle, ReplayOptions(backend="local"))
    assert result.verdict == "reproduced", result.reason


def test_install_failure_is_infra_error_not_fixed(tmp_path, cache):
    bundle = _capture(tmp_path, "raise SystemExit(3)\n")
    bundle.files["requirements.txt"] = b"packaging==0.0.0.404\n"
    bundle.finalize()
    result = replay(bundle, ReplayOptions(backend="local"))
    assert result.verdict == "infra-error"
    assert "installing the pins failed" in result.reason and "\n" not in result.reason


def test_missing_python_is_env_incompatible(tmp_path, cache):
    bundle = _capture(tmp_path, "raise SystemExit(3)\n")
    bundle.manifest["python"]["version"] = "3.4.10"
    bundle.finalize()
    result = replay(bundle, ReplayOptions(backend="local"))
    assert result.verdict == "env-incompatible" and "no Python 3.4" in result.reason
    assert exit_code(result.verdict) == 3


def test_judge_rules():
    assert judge(["reproduced"] * 3) == "reproduced"
    assert judge(["reproduced", "fixed"]) == "flaky"
    assert judge(["fixed", "fixed"]) == "fixed"
    assert judge(["fixed", "different"]) == "different"
    assert judge(["fixed", "infra-error"]) == "infra-error"
    assert judge([]) == "infra-error"


class _BearerHandler(http.server.SimpleHTTPRequestHandler):
    token = "s3cr3t-bearer-value"

    def do_GET(self):
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self.send_error(404)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


def test_replay_from_an_http_uri_with_bearer_header(tmp_path, cache):
    bundle = _capture(tmp_path, "def f():\n    return 1 / 0\nf()\n")
    served = tmp_path / "srv"
    served.mkdir()
    bundle.write(served / "b.reprex.zip")
    handler = lambda *a, **k: _BearerHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/b.reprex.zip"
    try:
        env = {**os.environ, "REPREX_CACHE_DIR": str(cache)}
        cmd = [PY, "-m", "reprex", "replay", url, "--backend", "local", "--json"]
        denied = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert denied.returncode == 2 and "cannot fetch" in denied.stderr and "Traceback" not in denied.stderr
        ok = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                            env={**env, "REPREX_HTTP_BEARER_TOKEN": _BearerHandler.token})
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["verdict"] == "reproduced"
    finally:
        server.shutdown()


def test_cli_replay_exit_codes(tmp_path, cache):
    bundle = _capture(tmp_path, "def f():\n    return 1 / 0\nf()\n")
    path = bundle.write(tmp_path / "z.reprex.zip")
    env = {**os.environ, "REPREX_CACHE_DIR": str(cache)}
    base = [PY, "-m", "reprex", "replay", str(path), "--backend", "local"]
    assert subprocess.run(base, env=env, capture_output=True, timeout=120).returncode == 0
    assert subprocess.run(base + ["--expect", "fixed"], env=env, capture_output=True, timeout=120).returncode == 1
    bad = subprocess.run(base + ["--gpus", "lots"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "use none, all or a count" in bad.stderr


def test_with_a_local_checkout_over_the_lock(skew_bundle, tmp_path):
    """The maintainer's loop: their working tree of the pinned package, installed over the lock."""
    checkout = tmp_path / "packaging-checkout"
    (checkout / "src" / "packaging").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "packaging"
        version = "99.0"
    """))
    (checkout / "src" / "packaging" / "__init__.py").write_text("")
    (checkout / "src" / "packaging" / "version.py").write_text(textwrap.dedent("""\
        class LegacyVersion(str):
            pass
        def parse(text):
            return LegacyVersion(text) if not text[0].isdigit() else tuple(int(p) for p in text.split("."))
    """))
    result = replay(skew_bundle, ReplayOptions(backend="local", with_specs=[str(checkout)], expect="fixed"))
    assert result.verdict == "fixed", result.reason + result.logs
    assert any(row == {"what": "pin packaging", "bundle": row["bundle"], "replay": "99.0"} for row in result.diff)


def test_code_names_that_look_secret_keep_their_signature(tmp_path, cache):
    """`auth_token.py:refresh` reads like a key:value pair to a redactor; the stored
    signature must keep it, or replay could never match it."""
    (tmp_path / "auth_token.py").write_text("def refresh():\n    raise PermissionError('expired')\nrefresh()\n")
    result = capture_command([PY, "auth_token.py"], CaptureOptions(tee=False), cwd=str(tmp_path))
    assert result.bundle.manifest["expect"]["signature"]["frames"][0] == "auth_token.py:refresh"
    assert replay(result.bundle, ReplayOptions(backend="local")).verdict == "reproduced"


def test_unexpected_machinery_errors_are_infra_errors(tmp_path, cache):
    bundle = _capture(tmp_path, "raise SystemExit(3)\n")
    bundle.files["files/a"] = b"a file"
    bundle.files["files/a/b"] = b"and a file below it"  # can't both exist on disk
    bundle.finalize()
    result = replay(bundle, ReplayOptions(backend="local"))
    assert result.verdict == "infra-error" and result.reason.startswith("replay failed:")


def test_src_layout_and_absolute_paths_replay_from_the_bundle(tmp_path, cache, monkeypatch):
    """PYTHONPATH=src and an absolute path argument: replay must use the bundled copies."""
    (tmp_path / "src" / "mylib").mkdir(parents=True)
    (tmp_path / "src" / "mylib" / "__init__.py").write_text("def load(p):\n    return open(p).read().split(',')[5]\n")
    (tmp_path / "data.csv").write_text("a,b\n")
    (tmp_path / "run.py").write_text("import sys, mylib\nprint(mylib.load(sys.argv[1]))\n")
    monkeypatch.setenv("PYTHONPATH", "src")
    result = capture_command([PY, "run.py", str(tmp_path / "data.csv")], CaptureOptions(tee=False), cwd=str(tmp_path))
    entry = result.bundle.manifest["entry"]
    assert entry["python_args"] == ["run.py", "data.csv"] and entry["pythonpath"] == ["src"]
    (tmp_path / "data.csv").write_text("1,2,3,4,5,6,7\n")  # "fixed" on the host: replay must not see it
    monkeypatch.delenv("PYTHONPATH")
    verdict = replay(result.bundle, ReplayOptions(backend="local"))
    assert verdict.verdict == "reproduced", verdict.reason + verdict.logs


NEEDS_TOKEN = """
    import os
    token = os.environ.get("SERVICE_TOKEN")
    print("token is", token, flush=True)
    if not token:
        raise PermissionError("SERVICE_TOKEN is not set")
    raise ValueError(f"bad shard for token {token}")
"""


def test_env_passes_a_credential_into_the_replay_and_scrubs_it(tmp_path, cache, monkeypatch):
    """A failure that needs a credential: captured with it, replayed without it the failure is
    another; with --env it reproduces, and the value never appears in what reprex prints."""
    secret = "tok-9f2c61d0e7"
    monkeypatch.setenv("SERVICE_TOKEN", secret)
    bundle = _capture(tmp_path, NEEDS_TOKEN)
    assert bundle.manifest["expect"]["signature"]["types"] == ["ValueError"]
    path = bundle.write(tmp_path / "t.reprex.zip")
    assert secret.encode() not in path.read_bytes()
    env = {**os.environ, "REPREX_CACHE_DIR": str(cache)}
    base = [PY, "-m", "reprex", "replay", str(path), "--backend", "local", "--json"]

    without = subprocess.run(base, env={k: v for k, v in env.items() if k != "SERVICE_TOKEN"},
                             capture_output=True, text=True, timeout=120)
    assert json.loads(without.stdout)["verdict"] == "different"
    passed = subprocess.run(base + ["--env", "SERVICE_TOKEN"], env=env, capture_output=True, text=True, timeout=120)
    answer = json.loads(passed.stdout)
    assert answer["verdict"] == "reproduced", answer
    assert secret not in passed.stdout + passed.stderr
    assert "<--env SERVICE_TOKEN>" in answer["signature"]["message"]
    human = subprocess.run([*base[:-1], "--env", f"SERVICE_TOKEN={secret}"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert human.returncode == 0 and secret not in human.stdout + human.stderr
    # the library reports it scrubbed too (logs included)
    result = replay(bundle, ReplayOptions(backend="local", pass_env={"SERVICE_TOKEN": secret}))
    assert result.verdict == "reproduced" and "token is <--env SERVICE_TOKEN>" in result.logs
    assert secret not in json.dumps(result.to_dict()) + result.logs
    # bad --env uses: one line, exit 2
    for spec, reason in [("NOT_SET_ANYWHERE_X", "not set in this environment"),
                         ("PATH=/tmp", "reprex sets PATH itself"), ("REPREX_RECORD_DIR=/x", "reprex sets"),
                         ("1BAD=x", "not an environment variable name")]:
        bad = subprocess.run(base + ["--env", spec], env=env, capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and reason in json.loads(bad.stdout)["error"], (spec, bad.stdout)


def test_env_values_cut_by_the_output_tail_leave_no_part_behind(tmp_path, cache):
    """The output tail keeps the last 64 KiB: wherever the cut falls inside a passed value, and
    however the message normalizes it, no 6-character piece of it is reported."""
    secret = "hf_Q7w2Zk9LmP4xT1vB8nR3sY6c"
    results = []
    for shift in (3, 9, 17):
        source = f"""
            import os, sys
            token = os.environ["HF_TOKEN"]
            sys.stdout.write(token + "y" * (64 * 1024 - {shift}))
            sys.stdout.flush()
            raise RuntimeError("token_" + token + "_" + token)
        """
        work = tmp_path / f"s{shift}"
        work.mkdir()
        (work / "app.py").write_text(textwrap.dedent(source))
        with_env = {**os.environ, "HF_TOKEN": secret}
        proc = subprocess.run([PY, "-m", "reprex", "capture", "-q", "-o", str(work / "b.reprex.zip"), "--", PY,
                               "app.py"], cwd=work, env=with_env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr  # the program's own status
        bundle = Bundle.read(work / "b.reprex.zip")
        result = replay(bundle, ReplayOptions(backend="local", pass_env={"HF_TOKEN": secret}))
        assert result.verdict == "reproduced", (result.reason, result.logs[-500:])
        results.append(json.dumps(result.to_dict()) + result.logs)
    pieces = {secret[i:i + 6] for i in range(len(secret) - 5)}  # (a program re-encoding it is out of reach)
    for text in results:
        assert not [p for p in pieces if p in text], [p for p in pieces if p in text]


def test_a_passed_value_that_is_a_common_word_does_not_change_the_verdict(tmp_path, cache):
    """The run is judged as it happened; only what is reported is scrubbed. A value like
    `--env STAGE=train` that also names the failing function must not make it `different`."""
    bundle = _capture(tmp_path, "def train():\n    raise ValueError('stage failed')\ntrain()\n")
    assert "app.py:train" in bundle.manifest["expect"]["signature"]["frames"]
    result = replay(bundle, ReplayOptions(backend="local", pass_env={"STAGE": "train"}))
    assert result.verdict == "reproduced", (result.verdict, result.signature)
    assert "app.py:<--env STAGE>" in result.signature.frames and "train" not in json.dumps(result.to_dict()["signature"])


# -- issue 11 finding 1: a --with that does not fix the bug reads `reproduced` -------------------

INVALID = """
    from packaging.version import parse
    print(parse("nightly"))   # packaging>=22 raises InvalidVersion; 21.x gave a LegacyVersion
"""


def test_non_fixing_with_reads_reproduced_and_fixing_with_fixed(tmp_path, cache):
    """The --with overlay (pip --target on PYTHONPATH) holds packages: its frames keep their
    package-relative location, so the signature doesn't change when the pin doesn't help."""
    bundle = _capture(tmp_path, INVALID)
    frames = bundle.manifest["expect"]["signature"]["frames"]
    assert frames[0] == "packaging/version.py:Version.__init__" and frames[-1] == "app.py:<module>", frames
    same = replay(bundle, ReplayOptions(backend="local", with_specs=["packaging==22.0"]))
    assert same.verdict == "reproduced", same.reason
    assert same.signature.frames == frames
    fixed = replay(bundle, ReplayOptions(backend="local", with_specs=["packaging==21.3"]))
    assert fixed.verdict == "fixed", fixed.reason


# -- issue 11 finding 2: --strict on the same machine -----------------------------------------------

STRICT_CASES = {
    # the script's absolute path, under a home directory that capture redacts to <home>
    "home": """
        import os
        open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "missing.csv"))
    """,
    # a site-packages path: the venv differs between capture and replay
    "site": """
        import packaging
        raise RuntimeError("plugin registry broken at " + packaging.__file__)
    """,
    # a fresh temp dir each run
    "temp": """
        import tempfile
        raise FileExistsError("lock held in " + tempfile.mkdtemp())
    """,
}


@pytest.mark.parametrize("case", sorted(STRICT_CASES))
def test_strict_round_trip_on_the_same_machine(tmp_path, cache, monkeypatch, case):
    home = tmp_path / "home"
    work = home / "proj"
    work.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))  # the redactor's home: paths under it become <home>/...
    bundle = _capture(work, STRICT_CASES[case])
    stored = bundle.manifest["expect"]["signature"]["message"]
    result = replay(bundle, ReplayOptions(backend="local", strict=True))
    assert result.verdict == "reproduced", (result.reason, stored, result.signature.message)
    assert "<path>" in stored and str(tmp_path) not in stored and "site-packages" not in stored, stored


def test_strict_still_tells_messages_apart(tmp_path, cache):
    bundle = _capture(tmp_path, "import os\nopen(os.path.join(os.getcwd(), 'a.csv'))\n")
    bundle.files["files/app.py"] = b"import os\nopen(os.path.join(os.getcwd(), 'b.csv'))\n"
    bundle.finalize()
    assert replay(bundle, ReplayOptions(backend="local")).verdict == "reproduced"
    strict = replay(bundle, ReplayOptions(backend="local", strict=True))
    assert strict.verdict == "different", strict.reason
