"""`reprex capture` on real runs: exceptions, crashes, hangs, console scripts, inputs."""

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from reprex.bundle import Bundle
from reprex.capture.pipeline import CaptureOptions, capture_command

PY = sys.executable


def reprex_cli(*args, cwd, env=None, check=True, code=0):
    """`reprex ARGS`; with check, it must exit `code` (a capture exits with the program's status)."""
    proc = subprocess.run([PY, "-m", "reprex", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)
    if check and proc.returncode != code:
        raise AssertionError(f"reprex {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def app(tmp_path):
    write(tmp_path / "conf" / "settings.json", '{"rows": 3}')
    write(tmp_path / "helpers.py", """
        import json
        def load(path):
            with open(path) as fh:
                return json.load(fh)
    """)
    write(tmp_path / "app.py", """
        import sys
        import helpers
        def main(argv):
            cfg = helpers.load("conf/settings.json")
            print("loaded", cfg, flush=True)
            print("about to fail", file=sys.stderr, flush=True)
            return cfg["columns"]
        main(sys.argv[1:])
    """)
    return tmp_path


def test_capture_exception_writes_a_replayable_bundle(app):
    proc = reprex_cli("capture", "-q", "--json", "--", PY, "app.py", "--flag", cwd=app, code=1)
    info = json.loads(proc.stdout)
    assert info["outcome"] == "exception"
    bundle = Bundle.read(info["written"])
    m = bundle.manifest
    assert m["name"] == "app"
    assert m["expect"]["signature"]["types"] == ["KeyError"]
    assert m["expect"]["signature"]["frames"] == ["app.py:main", "app.py:<module>"]
    assert m["entry"]["python_args"] == ["app.py", "--flag"]
    # the script, the module it imported from the work tree, and the file it read
    assert {"files/app.py", "files/helpers.py", "files/conf/settings.json"} <= set(bundle.files)
    run = bundle.json("run.json")
    frames = run["exception"]["frames"]
    assert frames[-1]["qualname"] == "main" and "cfg" in frames[-1]["locals"]
    order = [stream for stream, _ in run["output_tail"]]
    assert order == ["stdout", "stderr", "stderr"] or order[:2] == ["stdout", "stderr"]
    assert "KeyError: 'columns'" in bundle.text("traceback.txt")
    assert "reprex replay app.reprex.zip" in bundle.text("README.md")
    # repro.py runs on its own and fails the same way
    out = app / "unpacked"
    with zipfile.ZipFile(info["written"]) as zf:
        zf.extractall(out)
    repro = subprocess.run([PY, "repro.py"], cwd=out, capture_output=True, text=True, timeout=60)
    assert repro.returncode == 1 and "KeyError: 'columns'" in repro.stderr


def test_success_writes_nothing_unless_allowed(tmp_path):
    write(tmp_path / "ok.py", "print('fine')\n")
    proc = reprex_cli("capture", "-q", "--", PY, "ok.py", cwd=tmp_path)
    assert "succeeded" in proc.stderr + proc.stdout
    assert not list(tmp_path.glob("*.reprex.zip"))
    reprex_cli("capture", "-q", "--allow-success", "--", PY, "ok.py", cwd=tmp_path)
    bundle = Bundle.read(tmp_path / "ok.reprex.zip")
    assert bundle.manifest["expect"]["outcome"] == "success"


def test_segfault_is_captured_with_faulthandler_frames(tmp_path):
    write(tmp_path / "crash.py", """
        import ctypes
        import click
        def deref():
            return ctypes.string_at(0)
        deref()
    """)
    result = capture_command([PY, "crash.py"], CaptureOptions(tee=False), cwd=str(tmp_path))
    assert result.outcome.outcome == "signal" and result.outcome.signal == "SIGSEGV"
    sig = result.bundle.manifest["expect"]["signature"]
    assert sig["types"] == ["SIGSEGV"]
    assert "crash.py:deref" in sig["frames"]
    assert "Segmentation fault" in result.bundle.text("traceback.txt")
    # The crash left no facts: they are read afresh (with site-packages: a -S run pinned nothing)
    assert any(line.lower().startswith("click==") for line in result.bundle.text("requirements.txt").splitlines())


def test_abort_is_captured(tmp_path):
    write(tmp_path / "abort.py", "import os\ndef boom():\n    os.abort()\nboom()\n")
    result = capture_command([PY, "abort.py"], CaptureOptions(tee=False), cwd=str(tmp_path))
    assert result.outcome.signal == "SIGABRT"
    assert "abort.py:boom" in result.bundle.manifest["expect"]["signature"]["frames"]


def test_hang_is_captured_with_stacks_at_timeout(tmp_path):
    write(tmp_path / "hang.py", """
        import threading, time
        def spin():
            while True:
                time.sleep(0.05)
        threading.Thread(target=spin, daemon=True).start()
        def wait_forever():
            threading.Event().wait()
        wait_forever()
    """)
    result = capture_command([PY, "hang.py"], CaptureOptions(tee=False, timeout=2), cwd=str(tmp_path))
    assert result.outcome.outcome == "timeout"
    sig = result.bundle.manifest["expect"]["signature"]
    assert sig["kind"] == "timeout"
    assert sig["frames"][-2:] == ["hang.py:wait_forever", "hang.py:<module>"]
    assert "spin" in result.bundle.text("traceback.txt")  # other threads' stacks too


def test_thread_exception_and_exception_group_and_notes(tmp_path):
    write(tmp_path / "grp.py", """
        import threading
        def worker():
            raise ValueError("in a thread")
        t = threading.Thread(target=worker); t.start(); t.join()
        def fail():
            try:
                {}["k"]
            except KeyError as exc:
                err = ExceptionGroup("several", [TypeError("t"), exc])
                err.add_note("while loading shards")
                raise RuntimeError("wrapper") from err
        fail()
    """)
    result = capture_command([PY, "grp.py"], CaptureOptions(tee=False), cwd=str(tmp_path))
    exc = result.outcome.exception
    assert exc["type"] == "RuntimeError"
    assert exc["cause"]["type"] == "ExceptionGroup" and exc["cause"]["notes"] == ["while loading shards"]
    assert [c["type"] for c in exc["cause"]["children"]] == ["TypeError", "KeyError"]
    assert result.outcome.thread_exceptions[0]["type"] == "ValueError"
    assert result.bundle.manifest["expect"]["signature"]["types"] == ["RuntimeError", "ExceptionGroup[KeyError,TypeError]"]


def test_module_and_caught_exit(tmp_path):
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "cli.py", """
        import sys, traceback
        def run():
            try:
                int("not a number")
            except ValueError:
                traceback.print_exc()
                sys.exit(4)
        if __name__ == "__main__":
            run()
    """)
    result = capture_command([PY, "-m", "pkg.cli"], CaptureOptions(tee=False), cwd=str(tmp_path))
    m = result.bundle.manifest
    assert m["entry"]["kind"] == "module" and m["entry"]["python_args"] == ["-m", "pkg.cli"]
    assert m["expect"]["outcome"] == "exit" and m["expect"]["exit_code"] == 4
    # the traceback the program printed names the failure
    assert m["expect"]["signature"]["types"] == ["exit:4", "ValueError"]
    assert m["expect"]["signature"]["frames"] == ["cli.py:run"]  # print_exc shows the frames below the handler


def test_console_script_is_replayed_through_its_entry_point(tmp_path):
    """A real console script: pip's `pip` entry point, asked for a bogus command."""
    pip = Path(sys.executable).parent / "pip"
    if not pip.exists():
        pytest.skip(f"no pip console script next to {sys.executable}")
    write(tmp_path / "boom.py", "")
    result = capture_command([str(pip), "--isolated", "definitely-not-a-command"], CaptureOptions(tee=False),
                             cwd=str(tmp_path))
    entry = result.bundle.manifest["entry"]
    assert entry["kind"] == "console"
    assert entry["python_args"][0] == "-c" and "pip._internal.cli.main" in entry["python_args"][1]
    assert result.bundle.manifest["name"] == "pip"


def test_input_budget_and_secret_files(tmp_path):
    write(tmp_path / "big.bin", "x" * 5000)
    write(tmp_path / ".env", "API_TOKEN=abc\n")
    write(tmp_path / "small.txt", "hi")
    write(tmp_path / "reader.py", """
        for name in ("big.bin", ".env", "small.txt"):
            open(name).read()
        raise SystemExit("stop")
    """)
    result = capture_command([PY, "reader.py"], CaptureOptions(tee=False, max_file_size=1000), cwd=str(tmp_path))
    files = result.bundle.manifest["files"]
    assert "files/small.txt" in files["copied"]
    reasons = {s["path"]: s["reason"] for s in files["skipped"]}
    assert "per-file limit" in reasons["big.bin"]
    assert "secrets file" in reasons[".env"]
    assert "files/.env" not in result.bundle.files


def test_bad_inputs_give_one_line_errors(tmp_path):
    proc = reprex_cli("capture", "--", "definitely-not-a-program-xyz", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("reprex: error: command not found")
    assert "Traceback" not in proc.stderr
    proc = reprex_cli("capture", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "no command given" in proc.stderr
    (tmp_path / "junk.reprex.zip").write_text("junk")
    proc = reprex_cli("show", "junk.reprex.zip", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "not a reprex bundle" in proc.stderr and "Traceback" not in proc.stderr
    proc = reprex_cli("capture", "--max-total", "lots", "--", PY, "x.py", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "not a size" in proc.stderr


def test_from_traceback(tmp_path):
    write(tmp_path / "svc.py", "def handler(x):\n    return 1 / x\n")
    text = textwrap.dedent(f"""\
        2026-11-22 10:00:01 ERROR worker crashed
        Traceback (most recent call last):
          File "{tmp_path}/svc.py", line 2, in handler
            return 1 / x
                   ~~^~~
        ZeroDivisionError: division by zero
    """)
    (tmp_path / "tb.txt").write_text(text)
    proc = reprex_cli("capture", "--from-traceback", "tb.txt", "--json", cwd=tmp_path)
    bundle = Bundle.read(json.loads(proc.stdout)["written"])
    assert bundle.manifest["expect"]["signature"]["types"] == ["ZeroDivisionError"]
    assert bundle.manifest["expect"]["signature"]["frames"] == ["svc.py:handler"]
    assert "files/svc.py" in bundle.files
    proc = reprex_cli("capture", "--from-traceback", "-", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "no Python traceback" in proc.stderr


def test_python_api_capture_exception_and_recording(tmp_path):
    write(tmp_path / "lib_user.py", """
        import reprex
        def risky(n):
            return [1, 2][n]
        try:
            risky(5)
        except IndexError as exc:
            print(reprex.capture_exception(exc, "caught.reprex.zip"))
        with reprex.recording("ctx.reprex.zip"):
            risky(7)
    """)
    proc = subprocess.run([PY, "lib_user.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "IndexError" in proc.stderr
    for name in ("caught", "ctx"):
        bundle = Bundle.read(tmp_path / f"{name}.reprex.zip")
        sig = bundle.manifest["expect"]["signature"]
        assert sig["types"] == ["IndexError"] and sig["frames"][0] == "lib_user.py:risky"


def test_preview_writes_nothing(app):
    proc = reprex_cli("capture", "-q", "--preview", "--json", "--", PY, "app.py", cwd=app, code=1)
    data = json.loads(proc.stdout)
    assert "files/app.py" in data["entries"] and data["size_zip"] > 0
    assert not list(app.glob("*.reprex.zip"))


def test_render_venues(app):
    reprex_cli("capture", "-q", "--", PY, "app.py", cwd=app, code=1)
    gh = reprex_cli("render", "app.reprex.zip", "--venue", "gh", cwd=app).stdout
    assert "<details><summary>Traceback</summary>" in gh and len(gh) < 65536
    text = reprex_cli("render", "app.reprex.zip", "--venue", "text", cwd=app).stdout
    assert "KeyError" in text
    data = json.loads(reprex_cli("show", "app.reprex.zip", "--json", cwd=app).stdout)
    assert data["manifest"]["name"] == "app"


def test_install_hook_and_capture_last(tmp_path):
    cache = tmp_path / "cache"
    write(tmp_path / "crashy.py", """
        import reprex
        reprex.install()
        def explode():
            raise LookupError("no such shard")
        explode()
    """)
    env = {**os.environ, "REPREX_CACHE_DIR": str(cache)}
    proc = subprocess.run([PY, "crashy.py"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and "LookupError: no such shard" in proc.stderr  # the original hook still ran
    assert "reprex: wrote" in proc.stderr
    reprex_cli("capture", "--last", "-o", "mine.reprex.zip", cwd=tmp_path, env={"REPREX_CACHE_DIR": str(cache)})
    bundle = Bundle.read(tmp_path / "mine.reprex.zip")
    assert bundle.manifest["expect"]["signature"]["frames"][0] == "crashy.py:explode"
    none = reprex_cli("capture", "--last", cwd=tmp_path, env={"REPREX_CACHE_DIR": str(tmp_path / "empty")},
                      check=False)
    assert none.returncode == 2 and "no bundle" in none.stderr


def test_editable_and_local_version_pins_are_flagged(tmp_path):
    site = tmp_path / "site-packages"
    src = tmp_path / "src"
    write(src / "devlib" / "__init__.py", "X = 1\n")
    info = site / "devlib-0.3.dev0.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: devlib\nVersion: 0.3.dev0\n")
    write(info / "direct_url.json", json.dumps({"url": f"file://{src}", "dir_info": {"editable": True}}))
    write(site / "devlib.pth", str(src) + "\n")
    write(tmp_path / "w" / "use.py", "import devlib\nraise SystemExit(2)\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = f"import site; site.addsitedir({str(site)!r}); import runpy; runpy.run_path('use.py', run_name='__main__')"
    result = capture_command([PY, "-c", code], CaptureOptions(tee=False), cwd=str(tmp_path / "w"), env=env)
    flagged = result.bundle.manifest["pins"]["flagged"]
    assert [(p["name"], p["flags"]) for p in flagged] == [("devlib", ["editable"])]
    assert "# devlib==0.3.dev0  # editable" in result.bundle.text("requirements.txt")  # kept, not installed


def test_exclude_and_long_output_fit_the_issue_limit(tmp_path):
    write(tmp_path / "secret_data.csv", "a,b\n")
    write(tmp_path / "noisy.py", """
        import sys
        open("secret_data.csv").read()
        for i in range(20000):
            print("progress line", i, "x" * 80)
        def deep(n):
            if n == 0:
                raise RecursionError("deep " + "y" * 5000)
            return deep(n - 1)
        deep(150)
    """)
    result = capture_command([PY, "noisy.py"], CaptureOptions(tee=False, exclude=["*.csv"]), cwd=str(tmp_path))
    assert "files/secret_data.csv" not in result.bundle.files
    assert {"path": "secret_data.csv", "size": 4, "reason": "excluded"} in result.bundle.manifest["files"]["skipped"]
    from reprex.render import GH_LIMIT, render
    body = render(result.bundle, "gh")
    assert len(body) <= GH_LIMIT and "characters cut by reprex" in body


def test_a_package_whose_import_failed_is_still_pinned(tmp_path):
    """A package that fails while importing is gone from sys.modules at exit; it must be pinned all the same."""
    site = tmp_path / "site-packages"
    write(site / "brokenpkg" / "__init__.py", "from packaging.version import LegacyVersion\n")
    info = site / "brokenpkg-2.0.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: brokenpkg\nVersion: 2.0\nRequires-Dist: packaging\n")
    write(info / "top_level.txt", "brokenpkg\n")
    write(tmp_path / "w" / "use.py", "import brokenpkg\n")
    result = capture_command([PY, "use.py"], CaptureOptions(tee=False), cwd=str(tmp_path / "w"),
                             env={**os.environ, "PYTHONPATH": str(site)})
    reqs = result.bundle.text("requirements.txt")
    assert "brokenpkg==2.0" in reqs and "packaging==" in reqs


def test_output_tail_never_starts_inside_a_token():
    from reprex.tail import TAIL_BYTES, Tail as _Tail

    token = "ghp_" + "Q" * 36
    tail = _Tail()
    tail.add("stdout", f"cut here {token}\n".encode())
    tail.add("stdout", b"z" * (TAIL_BYTES - 20) + b"\n")  # the limit falls inside the token
    text = "".join(t for _, t in tail.as_text())
    assert "QQQQ" not in text and text.startswith("[... earlier output cut by reprex ...]\n")
    assert text.endswith("z\n")


def test_a_secret_whose_name_falls_before_the_tail_cut_is_still_scrubbed(tmp_path):
    """The tail is scrubbed before it is cut: a YAML block scalar whose key line falls just
    before the 64 KiB cut (cut inside its first line) leaves no bare value behind."""
    from reprex.tail import TAIL_BYTES

    first, value = "  " + "a1B2" * 5 + "\n", "  Hunter2-" + "x7Qp" * 6 + "\n"
    head = "password: |-\n" + first + value
    filler_len = TAIL_BYTES - len(first) - len(value) + 5  # the plain cut falls 5 chars into `first`
    filler = ("log line ok\n" * (filler_len // 12 + 1))[:filler_len - 1] + "\n"
    (tmp_path / "app.py").write_text(
        "import sys\n"
        f"head = {head.replace('x7Qp' * 6, '@')!r}.replace('@', 'x7Qp' * 6)\n"  # no secret in the source
        f"sys.stdout.write(head + {filler!r})\n"
        "sys.stdout.flush()\n"
        "raise SystemExit(3)\n")
    result = capture_command([PY, "app.py"], CaptureOptions(tee=False), cwd=str(tmp_path))
    tail = result.bundle.json("run.json")["output_tail"]
    text = "".join(t for _, t in tail)
    assert sum(len(t) for _, t in tail) <= TAIL_BYTES + 64 and text.endswith("log line o\n")
    assert not [name for name, data in result.bundle.entries().items() if b"x7Qpx7Qp" in data]


def test_long_values_are_cut_between_tokens_not_inside_them():
    from reprex._inject.sitecustomize import cut_between_tokens

    secret = "AKIA" + "B" * 16
    text = "x " * 140 + secret + " tail"
    cut = cut_between_tokens(text, 300)
    assert secret not in cut and "BBBB" not in cut and cut.endswith("...")
    assert cut_between_tokens("short", 300) == "short"


def test_binary_inputs_are_listed_not_copied_unless_included(tmp_path):
    import gzip
    import pickle

    with gzip.open(tmp_path / "settings.json.gz", "wt") as fh:
        fh.write('{"api_token": "tok-' + "S" * 30 + '"}')
    (tmp_path / "state.pkl").write_bytes(pickle.dumps({"password": "P" * 20}))
    write(tmp_path / "load.py", """
        import gzip, pickle
        gzip.open("settings.json.gz").read()
        pickle.load(open("state.pkl", "rb"))
        raise SystemExit(1)
    """)
    result = capture_command([PY, "load.py"], CaptureOptions(tee=False), cwd=str(tmp_path))
    reasons = {s["path"]: s["reason"] for s in result.bundle.manifest["files"]["skipped"]}
    assert reasons["settings.json.gz"].startswith("binary") and reasons["state.pkl"].startswith("binary")
    assert not any(name.endswith((".gz", ".pkl")) for name in result.bundle.files)
    included = capture_command([PY, "load.py"], CaptureOptions(tee=False, include=["state.pkl"]), cwd=str(tmp_path))
    assert "files/state.pkl" in included.bundle.files


def test_a_forked_child_that_fails_does_not_fail_the_run(tmp_path):
    write(tmp_path / "forks.py", """
        import os
        pid = os.fork()
        if pid == 0:
            try:
                raise ValueError("in the child")
            finally:
                os._exit(3)
        os.waitpid(pid, 0)
        print("parent fine")
    """)
    result = capture_command([PY, "forks.py"], CaptureOptions(tee=False, allow_success=True), cwd=str(tmp_path))
    assert result.outcome.outcome == "success" and result.outcome.exception is None


def test_exit_code_above_128_is_not_a_signal_when_the_program_exited(tmp_path):
    from reprex.record import load_outcome
    from reprex.recorded import run_recorded

    write(tmp_path / "bye.py", "import sys\nsys.exit(130)\n")
    rec = tmp_path / "rec"
    run_recorded([PY, "bye.py"], cwd=tmp_path, tee=False, record_dir=rec)
    as_init_reports = load_outcome(rec, 130, signal_exit_codes=True)  # how docker's init reports it
    assert as_init_reports.outcome == "exit" and as_init_reports.signal is None
    (rec / "events.jsonl").write_text("")  # no atexit: a real death by SIGINT
    assert load_outcome(rec, 130, signal_exit_codes=True).signal == "SIGINT"


def test_record_files_that_are_not_regular_files_are_ignored(tmp_path):
    from reprex.record import load_outcome

    rec = tmp_path / "rec"
    rec.mkdir()
    os.mkfifo(rec / "events.jsonl")  # would block a plain open() forever
    (rec / "fault.log").symlink_to("/etc/passwd")
    out = load_outcome(rec, 1)
    assert out.outcome == "exit" and out.fault_text == "" and not out.recorded


def test_capture_leaves_no_unredacted_record_behind(tmp_path, monkeypatch):
    import tempfile

    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    write(tmp_path / "x.py", "raise KeyError('k')\n")
    capture_command([PY, "x.py"], CaptureOptions(tee=False), cwd=str(tmp_path), write=False)
    assert not list(private.glob("reprex-record-*"))


def test_more_bad_inputs_are_one_line_errors(tmp_path):
    write(tmp_path / "x.py", "raise KeyError('k')\n")
    cases = [
        (["capture", "-q", "--", "sh", "-c", "exit 3"], "no Python process ran under the recorder"),
        (["capture", "-q", "--timeout", "-1", "--", PY, "x.py"], "positive number of seconds"),
        (["capture", "-q", "-o", "/proc/nope/x.reprex.zip", "--", PY, "x.py"], "cannot write"),
        (["show", str(tmp_path)], "no reprex.json"),
    ]
    for args, expected in cases:
        proc = reprex_cli(*args, cwd=tmp_path, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert expected in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    reprex_cli("capture", "-q", "--", PY, "x.py", cwd=tmp_path, code=1)
    proc = reprex_cli("render", "x.reprex.zip", "-o", str(tmp_path), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "is a directory" in proc.stderr


def test_fetch_errors_never_echo_secrets(tmp_path):
    sig = "a1b2c3d4" * 8
    proc = reprex_cli("show", f"https://user:pw-{sig}@nonexistent.invalid/x.reprex.zip?X-Amz-Signature={sig}",
                      cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "cannot fetch" in proc.stderr
    assert sig not in proc.stderr and "Traceback" not in proc.stderr


def test_unreadable_zip_entries_are_bundle_errors(tmp_path):
    import zipfile as zf_mod

    from reprex.bundle import BundleError
    write(tmp_path / "x.py", "raise KeyError('k')\n")
    bundle = capture_command([PY, "x.py"], CaptureOptions(tee=False), cwd=str(tmp_path)).bundle
    path = bundle.write(tmp_path / "ok.reprex.zip")
    data = bytearray(path.read_bytes())
    with zf_mod.ZipFile(path) as zf:
        info = zf.getinfo("traceback.txt")
    start = info.header_offset + 30 + len(info.filename)
    data[start:start + 8] = b"\xff" * 8  # corrupt the deflate stream
    (tmp_path / "bad.reprex.zip").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="can't be read"):
        Bundle.read(tmp_path / "bad.reprex.zip")


def test_json_mode_errors_are_json_on_stdout(tmp_path):
    """Scripts parse stdout under --json: bad input and usage errors come as one JSON object
    there too (and the usual line on stderr), with the same exit code."""
    cases = [
        (["replay", "--json", "missing.reprex.zip"], "missing.reprex.zip: no such bundle"),
        (["replay", "--json", "--runs", "0", "x.zip"], "'--runs'"),
        (["show", "--json"], "Missing argument 'BUNDLE'"),
        (["capture", "--json", "--timeout", "-1", "--", PY, "x.py"], "positive number of seconds"),
    ]
    for args, expected in cases:
        proc = reprex_cli(*args, cwd=tmp_path, check=False)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        answer = json.loads(proc.stdout)
        assert answer["exit"] == 2 and expected in answer["error"], (args, answer)
        assert expected in proc.stderr and "Traceback" not in proc.stderr
    # a --json that belongs to the captured command does not change reprex's own errors
    proc = reprex_cli("capture", "--bogus", "--", PY, "x.py", "--json", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stdout == "" and "--bogus" in proc.stderr


def test_a_record_full_of_junk_events_is_read_in_bounds(tmp_path):
    """A record is the program's to fill: events without their keys are skipped, and the
    opened/connect lists stop at MAX_LISTED (a set keeps the reading linear)."""
    from reprex.record import MAX_LISTED, load_outcome

    lines = [json.dumps({"ev": "start", "pid": 1})]
    lines += [json.dumps({"ev": "open", "path": f"/data/{i}.csv"}) for i in range(MAX_LISTED + 500)]
    lines += [json.dumps({"ev": "open"}), json.dumps({"ev": "import"}), json.dumps({"ev": "open", "path": 7})]
    lines += [json.dumps({"ev": "connect", "address": ["10.0.0.1", i]}) for i in range(MAX_LISTED + 5)]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    out = load_outcome(tmp_path, 0)
    assert out.recorded and len(out.opened) == MAX_LISTED and out.opened[0] == "/data/0.csv"
    assert len(out.connects) == MAX_LISTED


def test_sizes_parse_one_way_everywhere():
    """One parser for --max-file-size / --max-total and REPREX_DOCKER_MEMORY."""
    from reprex.fsutil import parse_size

    assert [parse_size(s) for s in ("500k", "5M", "2g", "2GB", "1.5m", "100", 7)] == \
        [500 << 10, 5 << 20, 2 << 30, 2 << 30, 3 << 19, 100, 7]
    for bad in ("lots", "-5", "", "k", "nan", "inf", "1e400"):
        with pytest.raises(ValueError):
            parse_size(bad)


# -- issue 11 finding 7, issue 9 finding 4, issue 11 findings 4 and 5: how a capture ends ------------

def test_capture_exits_with_the_programs_status(tmp_path):
    """CI runs `reprex capture -- CMD`: the job must still fail when CMD failed."""
    write(tmp_path / "boom.py", "raise ValueError('bad')\n")
    write(tmp_path / "three.py", "import sys\nprint('Traceback? no', file=sys.stderr)\nsys.exit(3)\n")
    write(tmp_path / "ok.py", "print('fine')\n")
    write(tmp_path / "segv.py", "import ctypes\nctypes.string_at(0)\n")
    assert reprex_cli("capture", "-q", "--", PY, "boom.py", cwd=tmp_path, check=False).returncode == 1
    assert (tmp_path / "boom.reprex.zip").exists()
    assert reprex_cli("capture", "-q", "--json", "--", PY, "three.py", cwd=tmp_path, check=False).returncode == 3
    assert reprex_cli("capture", "-q", "--", PY, "segv.py", cwd=tmp_path, check=False).returncode == 128 + 11
    assert reprex_cli("capture", "-q", "--", PY, "ok.py", cwd=tmp_path, check=False).returncode == 0
    proc = reprex_cli("capture", "-q", "--exit-zero", "-o", "again.reprex.zip", "--", PY, "boom.py", cwd=tmp_path,
                      check=False)
    assert proc.returncode == 0 and (tmp_path / "again.reprex.zip").exists()
    write(tmp_path / "hang.py", "import time\nwhile True:\n    time.sleep(0.05)\n")
    assert reprex_cli("capture", "-q", "--timeout", "2", "--", PY, "hang.py", cwd=tmp_path,
                      check=False).returncode == 124


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return False


def test_background_child_holding_stdout_does_not_hold_the_capture(tmp_path):
    """The recorded process's end is the run's end: its RuntimeError is recorded, not a hang,
    and the background child that kept the pipes open is stopped."""
    write(tmp_path / "app.py", """
        import subprocess
        child = subprocess.Popen(["sleep", "600"])
        open("child.pid", "w").write(str(child.pid))
        raise RuntimeError("failed after starting a helper")
    """)
    proc = reprex_cli("capture", "-q", "--json", "--timeout", "60", "--", PY, "app.py", cwd=tmp_path, code=1)
    info = json.loads(proc.stdout)
    assert info["outcome"] == "exception"
    assert info["signature"]["types"] == ["RuntimeError"] and info["signature"]["frames"] == ["app.py:<module>"]
    assert not _alive(int((tmp_path / "child.pid").read_text()))


def test_a_shell_entry_runs_on_after_the_recorded_python_ends(tmp_path):
    """The entry's exit ends the run, not the recorded grandchild's: later steps still run."""
    write(tmp_path / "first.py", "print('first step done')\n")
    write(tmp_path / "second.py", "import time\ntime.sleep(3)\nopen('second.done', 'w').write('ok')\n"
                                  "raise SystemExit('second step failed')\n")
    proc = reprex_cli("capture", "-q", "--json", "--", "sh", "-c", f"{PY} first.py && {PY} second.py",
                      cwd=tmp_path, code=1)
    assert (tmp_path / "second.done").exists()
    assert json.loads(proc.stdout)["outcome"] == "exit"


def test_hang_of_a_grandchild_in_its_own_session_keeps_its_record(tmp_path):
    """entry (sh) -> setsid python: the killed group doesn't reach the recorded process, which
    must still be dumped, recorded and stopped."""
    write(tmp_path / "hang.py", """
        import os, time
        open("hang.pid", "w").write(str(os.getpid()))
        def wait_for_lock():
            while True:
                time.sleep(0.05)
        wait_for_lock()
    """)
    write(tmp_path / "run.sh", f"setsid {PY} hang.py\necho after\n")
    proc = reprex_cli("capture", "-q", "--json", "--timeout", "3", "--", "sh", "run.sh", cwd=tmp_path, code=124)
    info = json.loads(proc.stdout)
    assert info["outcome"] == "timeout"
    assert info["signature"]["frames"][:2] == ["hang.py:wait_for_lock", "hang.py:<module>"]
    assert not _alive(int((tmp_path / "hang.pid").read_text()))


@pytest.mark.parametrize("sig,code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_killed_capture_removes_its_unredacted_record(tmp_path, sig, code):
    import signal

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    write(tmp_path / "slow.py", """
        import os, time
        open("slow.pid", "w").write(str(os.getpid()))
        print("ready", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([PY, "-m", "reprex", "capture", "--", PY, "slow.py"], cwd=tmp_path,
                            env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        records = list(tmp.glob("reprex-record-*"))
        assert len(records) == 1 and (records[0] / "events.jsonl").exists()  # the thing that must go
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert "interrupted" in err and "Traceback" not in err
    assert not records[0].exists() and not list(tmp.iterdir())
    assert not _alive(int((tmp_path / "slow.pid").read_text()))
    assert not list(tmp_path.glob("*.reprex.zip"))


# -- issue 11 finding 6: a test runner that swallows the exception into exit status 1 -----------------

TESTS = """
    def total(rows):
        return sum(r["n"] for r in rows)

    def test_ok():
        assert total([{"n": 1}]) == 1

    def test_total_of_a_bad_row():
        assert total([{"n": 1}, {"m": 2}]) == 3
"""


def test_capture_of_pytest_records_each_failing_test(tmp_path):
    from reprex.replay import ReplayOptions, replay

    write(tmp_path / "tests" / "test_calc.py", TESTS)
    proc = reprex_cli("capture", "-q", "--json", "-o", "t.reprex.zip", "--", PY, "-m", "pytest", "-q",
                      "-p", "no:cacheprovider", "tests", cwd=tmp_path, code=1)
    sig = json.loads(proc.stdout)["signature"]
    assert sig["types"] == ["exit:1", "tests/test_calc.py::test_total_of_a_bad_row: KeyError"], sig
    assert sig["frames"][0] == "tests/test_calc.py::test_total_of_a_bad_row > test_calc.py:total.<locals>.<genexpr>"
    bundle = Bundle.read(tmp_path / "t.reprex.zip")
    failures = bundle.json("run.json")["outcome"]["test_failures"]
    assert [f["test"] for f in failures] == ["tests/test_calc.py::test_total_of_a_bad_row"]
    assert "KeyError: 'n'" in bundle.text("traceback.txt")
    human = reprex_cli("capture", "-o", "h.reprex.zip", "--", PY, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                       "tests", cwd=tmp_path, code=1)
    assert "--reprex-capture" in human.stderr
    assert replay(bundle, ReplayOptions(backend="local")).verdict == "reproduced"
    # Another test failing instead, with the same exit status 1, is not the same failure.
    other = bundle.files["files/tests/test_calc.py"].decode().replace('{"m": 2}', '{"n": 2}') \
        .replace("test_ok():\n    assert total([{\"n\": 1}]) == 1", "test_ok():\n    assert total([]) == 1")
    bundle.files["files/tests/test_calc.py"] = other.encode()
    bundle.finalize()
    result = replay(bundle, ReplayOptions(backend="local"))
    assert result.verdict == "different", result.reason
    assert result.signature.types == ["exit:1", "tests/test_calc.py::test_ok: AssertionError"]


def test_capture_of_unittest_records_each_failing_test(tmp_path):
    write(tmp_path / "test_units.py", """
        import unittest

        class Parse(unittest.TestCase):
            def test_int(self):
                self.assertEqual(int("7"), 7)

            def test_bad(self):
                int("seven")
    """)
    proc = reprex_cli("capture", "-q", "--json", "--", PY, "-m", "unittest", "test_units", cwd=tmp_path, code=1)
    sig = json.loads(proc.stdout)["signature"]
    assert sig["types"] == ["exit:1", "test_units.Parse.test_bad: ValueError"], sig
    assert sig["frames"] == ["test_units.Parse.test_bad > test_units.py:Parse.test_bad"]


def test_a_section_plugin_adds_a_scrubbed_manifest_key_and_never_a_contract_one(tmp_path, monkeypatch):
    """Manifest sections are registered like probes (entry-point group "reprex.sections"):
    a plugin's value lands under its name, scrubbed; one named like a contract key can't
    replace it; one that raises is left out and capture goes on."""
    plugins = tmp_path / "plugins"
    write(plugins / "mysections.py", """
        def facts(outcome, *, cwd, environ):
            return {"outcome": outcome.outcome, "token": "ghp_" + "Z" * 36}

        def name(outcome, *, cwd, environ):
            return "hijacked"

        def broken(outcome, *, cwd, environ):
            raise RuntimeError("a broken plugin")
    """)
    write(plugins / "mysections-0.1.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: mysections\nVersion: 0.1\n")
    write(plugins / "mysections-0.1.dist-info" / "entry_points.txt",
          "[reprex.sections]\nmyfacts = mysections:facts\nname = mysections:name\nbroken = mysections:broken\n")
    monkeypatch.syspath_prepend(str(plugins))
    write(tmp_path / "app" / "boom.py", "raise KeyError('x')\n")
    result = capture_command([PY, "boom.py"], CaptureOptions(tee=False), cwd=str(tmp_path / "app"), write=False)
    manifest = result.bundle.manifest
    assert manifest["myfacts"]["outcome"] == "exception"
    assert "Z" * 36 not in json.dumps(manifest["myfacts"]) and "redacted" in manifest["myfacts"]["token"]
    assert manifest["name"] == "boom" and "broken" not in manifest
    assert any(r["where"] == "myfacts" for r in manifest["redactions"])
    assert "ray" not in manifest  # the built-in section has nothing to say about this run


def test_a_sealed_draft_of_a_finished_bundle_describes_its_final_manifest(app):
    """Draft.of + seal (what extract does): the README is rendered once from the changed
    manifest and scrubbed, the bundle's own redactions stay listed and the new redactor's
    are added, and the result passes the read-side checks."""
    from reprex.draft import Draft, seal
    from reprex.redact import Redactor

    bundle = capture_command([PY, "app.py"], CaptureOptions(tee=False), cwd=str(app), write=False).bundle
    bundle.manifest["redactions"] = [{"kind": "env-secret", "where": "argv", "count": 2}]
    bundle.finalize()
    token = "ghp_" + "K" * 36
    draft = Draft.of(bundle, Redactor({}))
    draft.manifest["name"] = "renamed-by-the-draft"
    draft.readme_notes.append(f"**Hint:** try again with {token}")
    sealed = seal(draft)
    readme = sealed.text("README.md")
    assert "renamed-by-the-draft" in readme and "**Hint:** try again with" in readme.split("\n", 3)[2]
    assert token not in readme and token not in bundle.text("README.md")
    assert sealed.manifest["redactions"][0] == {"kind": "env-secret", "where": "argv", "count": 2}
    assert {"kind": "github-token", "where": "README.md", "count": 1} in sealed.manifest["redactions"]
    assert bundle.manifest["name"] != "renamed-by-the-draft"  # the finished bundle is left as it was
    back = Bundle.from_entries(sealed.entries())
    assert back.id == sealed.id == sealed.content_id()


@pytest.mark.parametrize("tail, code", [("", 0), ("sys.exit(3)", 3)])
def test_capture_exits_with_the_programs_own_status_when_only_a_thread_failed(tmp_path, tail, code):
    # A thread's exception leaves the program's status as the program set it: `reprex capture`
    # in a CI job must not fail a run that passed (nor pass one that failed).
    write(tmp_path / "app.py", f"""
        import sys, threading
        def worker():
            raise ValueError("in a thread")
        t = threading.Thread(target=worker); t.start(); t.join()
        {tail}
    """)
    proc = reprex_cli("capture", "-q", "-o", str(tmp_path / "app.reprex.zip"), "--", PY, "app.py",
                      cwd=tmp_path, code=code)
    assert "ValueError" in Bundle.read(tmp_path / "app.reprex.zip").manifest["expect"]["signature"]["types"]
    assert "captured" in proc.stderr
