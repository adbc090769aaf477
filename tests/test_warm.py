"""Warm starts (reprex.warm): a run forked from a preloaded interpreter must be recorded
exactly as a cold `python SCRIPT` / `python -m MODULE` run of the same entry: same outcome,
signature, frames, pins, exit status, environment, working directory and argv."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap

import pytest

from reprex.pins import closure, roots_for
from reprex.signature import compute
from reprex.warm import Warm, enabled, preloads

PY = sys.executable


def _pins(outcome):
    pre = set(outcome.start.get("preloaded") or ())
    roots = roots_for(outcome.facts, {m: f for m, f in outcome.modules.items() if m not in pre})
    return sorted(f"{p.name}=={p.version}" for p in closure(outcome.facts, roots))


def _env():
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "REPREX_"))}


@pytest.fixture
def warm():
    w = Warm(PY)
    yield w
    w.close()


def _runs(warm, key, argv, cwd, n=3, **kwargs):
    """The first run is cold and teaches the key's preloads; the others fork."""
    results = [warm.run(key, argv, cwd=cwd, env=kwargs.pop("env", _env()), timeout=120, tee=False, **kwargs)
               for _ in range(n)]
    return results


def test_a_warm_run_is_recorded_like_a_cold_one(tmp_path, warm):
    (tmp_path / "lib_use.py").write_text(textwrap.dedent("""
        import click, packaging.version

        def parse(text):
            return packaging.version.Version(text)
    """))
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import lib_use

        def main():
            lib_use.parse("not a version")

        main()
    """))
    cold, first_warm, second_warm = _runs(warm, "app", [PY, "app.py"], tmp_path)
    assert warm.stats["cold"] == 1 and warm.stats["warm"] == 2, warm.stats
    assert "click" in warm.servers["app"].preload and "packaging" in warm.servers["app"].preload
    for run in (first_warm, second_warm):
        assert run.returncode == cold.returncode == 1
        assert run.outcome.outcome == "exception"
        assert compute(run.outcome).to_dict() == compute(cold.outcome).to_dict()
        assert [f["loc"] for f in run.outcome.exception["frames"]] == \
            [f["loc"] for f in cold.outcome.exception["frames"]]
        assert _pins(run.outcome) == _pins(cold.outcome)
        assert {"click", "packaging"} <= {p.split("==")[0].lower() for p in _pins(run.outcome)}
        stderr = "".join(text for stream, text in run.outcome.output_tail if stream == "stderr")
        assert stderr.startswith("Traceback (most recent call last):\n  File ") and "app.py" in stderr.splitlines()[1]
        assert "_reprex_warm" not in stderr and "runpy" not in stderr


def test_warm_child_gets_the_runs_environment_cwd_and_argv(tmp_path, warm):
    work = tmp_path / "work"
    work.mkdir()
    (work / "show.py").write_text(textwrap.dedent("""
        import json, os, sys, tempfile
        import packaging
        print(json.dumps({"cwd": os.getcwd(), "argv": sys.argv, "orig_argv": sys.orig_argv[1:],
                          "x": os.environ.get("REPREX_WARM_TEST_X"), "tmp": tempfile.gettempdir(),
                          "path0": sys.path[0], "main": __name__, "file": __file__}))
        raise SystemExit(int(sys.argv[1]))
    """))
    outs = []
    for i, code in enumerate(("3", "4", "5")):
        tmp = tmp_path / f"tmp{i}"
        tmp.mkdir()
        env = {**_env(), "REPREX_WARM_TEST_X": "value", "TMPDIR": str(tmp)}  # TMPDIR is per run
        run = warm.run("show", [PY, "show.py", code], cwd=work, env=env, timeout=120, tee=False)
        assert run.returncode == int(code) and run.outcome.outcome == "exit"
        stdout = "".join(text for stream, text in run.outcome.output_tail if stream == "stdout")
        seen = json.loads(stdout)
        assert seen == {"cwd": str(work), "argv": ["show.py", code], "orig_argv": ["show.py", code],
                        "x": "value", "tmp": str(tmp), "path0": str(work), "main": "__main__",
                        "file": str(work / "show.py")}, seen
        outs.append(seen)
    assert warm.stats["warm"] == 2
    # Any other variable may have been read at start-up (by Python or a preload): a run whose
    # environment differs in one is cold.
    other = warm.run("show", [PY, "show.py", "0"], cwd=work, env={**_env(), "REPREX_WARM_TEST_X": "other"},
                     timeout=120, tee=False)
    assert warm.stats["cold"] == 2 and '"x": "other"' in "".join(t for _, t in other.outcome.output_tail)


def test_pytest_module_runs_and_unittest_failures_are_recorded_warm(tmp_path, warm):
    """`python -m pytest NODE` forked from a server that preloaded pytest (and with it
    unittest): the recorder still sees each failing test, TestCase ones included."""
    (tmp_path / "test_mod.py").write_text(textwrap.dedent("""
        import unittest
        import packaging.version

        class TestCase(unittest.TestCase):
            def test_bad(self):
                packaging.version.Version("nope")

        def test_plain():
            assert packaging.version.Version("1.0") == packaging.version.Version("2.0")
    """))
    argv = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:reprex", "test_mod.py"]
    cold, warm1, warm2 = _runs(warm, "pytest-mode", argv, tmp_path)
    assert "pytest" in warm.servers["pytest-mode"].preload
    assert warm.stats["warm"] == 2
    for run in (warm1, warm2):
        assert run.returncode == cold.returncode == 1
        assert sorted(t["test"] for t in run.outcome.test_failures) == \
            sorted(t["test"] for t in cold.outcome.test_failures) == \
            ["test_mod.py::TestCase::test_bad", "test_mod.py::test_plain"]
        assert compute(run.outcome).to_dict() == compute(cold.outcome).to_dict()
        assert _pins(run.outcome) == _pins(cold.outcome)


def test_unittest_main_failures_are_recorded_when_unittest_was_preloaded(tmp_path, warm):
    (tmp_path / "ut.py").write_text(textwrap.dedent("""
        import unittest
        import packaging.version
        import pytest  # preloaded by the server: pytest imports unittest before the recorder is armed

        class T(unittest.TestCase):
            def test_it(self):
                packaging.version.Version("nope")

        unittest.main()
    """))
    cold, warm1 = _runs(warm, "ut", [PY, "ut.py"], tmp_path, n=2)
    assert warm.stats["warm"] == 1 and "unittest" not in warm.servers["ut"].preload
    assert [t["test"] for t in warm1.outcome.test_failures] == [t["test"] for t in cold.outcome.test_failures]
    assert warm1.outcome.test_failures and compute(warm1.outcome).to_dict() == compute(cold.outcome).to_dict()


def test_signals_and_timeouts_end_a_warm_run_as_they_end_a_cold_one(tmp_path, warm):
    from reprex.recorded import run_recorded

    (tmp_path / "ends.py").write_text(textwrap.dedent("""
        import os, signal, sys, time
        import packaging

        def spin():
            time.sleep(600)

        if sys.argv[1] == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif sys.argv[1] == "hang":
            spin()
    """))
    warm.run("ends", [PY, "ends.py", "ok"], cwd=tmp_path, env=_env(), timeout=120, tee=False)  # teaches
    assert "packaging" in warm.servers["ends"].preload
    for mode, timeout in (("segv", 120), ("hang", 4)):
        argv = [PY, "ends.py", mode]
        cold = run_recorded(argv, cwd=tmp_path, env=_env(), timeout=timeout + 20 if mode == "hang" else timeout,
                            tee=False) if mode == "segv" else None
        hot = warm.run("ends", argv, cwd=tmp_path, env=_env(), timeout=timeout, tee=False)
        if cold is not None:
            assert hot.returncode == cold.returncode == -signal.SIGSEGV
            assert hot.outcome.outcome == cold.outcome.outcome == "signal"
        else:
            assert hot.timed_out and hot.outcome.outcome == "timeout"
            assert "spin" in json.dumps(hot.outcome.fault_frames)
    assert warm.stats["warm"] == 2 and warm.stats["fallback"] == 0


def test_a_dead_server_falls_back_to_a_cold_run(tmp_path, warm):
    (tmp_path / "app.py").write_text("import packaging.version\npackaging.version.Version('x')\n")
    cold, _ = _runs(warm, "app", [PY, "app.py"], tmp_path, n=2)
    server = warm.servers["app"]
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    again = warm.run("app", [PY, "app.py"], cwd=tmp_path, env=_env(), timeout=120, tee=False)
    assert warm.stats["fallback"] == 1
    assert compute(again.outcome).to_dict() == compute(cold.outcome).to_dict()


def test_only_installed_packages_are_preloaded_and_never_the_unsafe_ones():
    modules = {"numpy": "/v/lib/python3.11/site-packages/numpy/__init__.py",
               "ray": "/v/lib/python3.11/site-packages/ray/__init__.py",
               "torch": "/v/lib/python3.11/site-packages/torch/__init__.py",
               "mylib": "/home/u/project/mylib/__init__.py", "json": "/usr/lib/python3.11/json/__init__.py",
               "xdist": "/v/lib/python3.11/site-packages/xdist/__init__.py", "failed_optional": None,
               "os.path": "/v/lib/python3.11/site-packages/x.py"}
    assert preloads(modules, exclude={"xdist"}) == ["numpy"]


def test_warm_starts_can_be_turned_off():
    assert enabled({}) and not enabled({"REPREX_WARM": "0"}) and not enabled({"REPREX_WARM": "off"})


def test_plugin_captures_of_one_test_file_fork_warm_and_replay_reproduced(tmp_path):
    """The user: `pytest --reprex-capture` with several failures in one test file. The
    first re-run is cold, the next fork from its server; every bundle is the same as a cold
    capture's (signature, pins) and replays reproduced."""
    import subprocess
    import zipfile

    (tmp_path / "test_many.py").write_text(textwrap.dedent("""
        import packaging.version
        import pytest

        @pytest.mark.parametrize("text", ["a", "b", "c", "d"])
        def test_parse(text):
            packaging.version.Version(text)
    """))

    def capture(out, warm_flag):
        env = {**_env(), "REPREX_WARM": warm_flag}
        run = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--reprex-capture", out,
                              "test_many.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert "4 failed" in run.stdout, run.stdout + run.stderr
        manifests = {}
        for path in sorted((tmp_path / out).glob("*.reprex.zip")):
            with zipfile.ZipFile(path) as zf:
                manifests[path.name] = (json.loads(zf.read("reprex.json")), zf.read("requirements.txt"))
        return run.stdout, manifests

    hot_out, hot = capture("warm", "1")
    cold_out, cold = capture("cold", "0")
    assert "re-runs: 3 forked warm, 1 cold" in hot_out, hot_out
    assert "forked warm" not in cold_out
    assert sorted(hot) == sorted(cold) and len(hot) == 4
    for name in hot:
        (hm, hreq), (cm, creq) = hot[name], cold[name]
        assert hm["expect"]["signature"] == cm["expect"]["signature"]
        assert hreq == creq and b"packaging==" in hreq
        assert hm["test"]["reproduces"] is True and hm["test"]["mode"] == cm["test"]["mode"]
    replay = subprocess.run([PY, "-m", "reprex", "replay", str(sorted((tmp_path / "warm").glob("*.zip"))[-1]),
                             "--backend", "local", "--json"], capture_output=True, text=True, timeout=600)
    assert json.loads(replay.stdout)["verdict"] == "reproduced", replay.stdout + replay.stderr
