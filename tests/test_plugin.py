"""The pytest plugin, end to end through `pytester`: collection, verdict mapping, options and
ini settings, report sections, the junitxml property, the fixtures, CI behaviour without
Docker, and a pytest-xdist run. Bundles are real captures made at test time; the other
verdicts come from the same capture with its files, pins or recorded Python changed."""

pytest_plugins = ["pytester"]

import copy
import re
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reprex.bundle import Bundle
from reprex.capture.pipeline import CaptureOptions, capture_command

PY = sys.executable

APP = """\
def check():
    raise KeyError("a")
check()
"""


@pytest.fixture(scope="module")
def counter(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("flaky") / "counter"


def variant(bundle: Bundle, app: str | None = None, *, requirements: str | None = None, python: str | None = None,
            manifest: dict | None = None) -> Bundle:
    m = copy.deepcopy(bundle.manifest)
    files = dict(bundle.files)
    if app is not None:
        files["files/app.py"] = textwrap.dedent(app).encode()
    if requirements is not None:
        files["requirements.txt"] = requirements.encode()
    if python is not None:
        m["python"]["version"] = python
    m.update(manifest or {})
    return Bundle(manifest=m, files=files).finalize()


def _other_micro() -> str:
    v = sys.version_info
    return f"{v.major}.{v.minor}.{0 if v.micro else 1}"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, cache, counter) -> dict[str, Bundle]:
    work = tmp_path_factory.mktemp("capture")
    (work / "app.py").write_text(APP)
    result = capture_command([PY, "app.py"], CaptureOptions(tee=False), cwd=str(work), write=False)
    boom = result.bundle
    assert boom.manifest["expect"]["signature"]["frames"] == ["app.py:check", "app.py:<module>"]
    flaky = f"""\
        import pathlib
        p = pathlib.Path({str(counter)!r})
        n = int(p.read_text()) if p.exists() else 0
        p.write_text(str(n + 1))
        def check():
            if n % 2 == 0:
                raise KeyError("a")
        check()
        """
    return {
        "boom": boom,
        # same types and frames, another message: reproduced, but different under --reprex-strict
        "msg": variant(boom, 'def check():\n    raise KeyError("zzz")\ncheck()\n'),
        # another exception, and another recorded Python patch level (an environment diff row)
        "different": variant(boom, 'def check():\n    raise ValueError("b")\ncheck()\n', python=_other_micro()),
        "fixed": variant(boom, "def check():\n    return 1\ncheck()\n"),
        "infra": variant(boom, requirements="packaging==0.0.0.404\n"),
        "old": variant(boom, python="3.4.10"),
        "flaky": variant(boom, flaky),
    }


def place(pytester, bundles: dict, *names: str, folder: str = "reprexes") -> Path:
    """Write the named bundles as zips (a trailing / writes a directory bundle)."""
    target = pytester.path / folder
    target.mkdir(exist_ok=True)
    for name in names:
        if name.endswith("/"):
            bundles[name[:-1]].write(target / name[:-1])
        else:
            bundles[name].write(target / f"{name}.reprex.zip")
    return target


def junit_properties(path: Path) -> dict[str, dict[str, str]]:
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        out[case.get("name")] = props
    return out


# -- collection ----------------------------------------------------------------------------

def test_collects_zip_and_directory_bundles_named_after_them(pytester, bundles):
    folder = place(pytester, bundles, "boom", "fixed/")
    # a directory bundle's contents are never collected, even a file that looks like tests
    (folder / "fixed" / "files" / "test_inside.py").write_text("def test_inside():\n    pass\n")
    (folder / "notes.zip").write_bytes(b"not a bundle")
    (folder / "boom.reprex.toml").write_text('marks = ["slow"]\n')
    pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n")

    result = pytester.runpytest("--collect-only", "-q")
    ids = [line for line in result.stdout.lines if "::" in line]
    assert sorted(ids) == ["reprexes/boom.reprex.zip::boom", "reprexes/fixed::fixed", "test_plain.py::test_ok"]

    # a sidecar's marks apply to the bundle's item
    result = pytester.runpytest("--collect-only", "-q", "-m", "slow")
    assert [line for line in result.stdout.lines if "::" in line] == ["reprexes/boom.reprex.zip::boom"]

    # and a project can turn collection off
    pytester.makeini("[pytest]\nreprex_collect = false\n")
    result = pytester.runpytest("--collect-only", "-q")
    assert [line for line in result.stdout.lines if "::" in line] == ["test_plain.py::test_ok"]


# -- verdicts -------------------------------------------------------------------------------

def test_every_verdict_maps_to_its_outcome_with_report_sections(pytester, bundles, counter):
    folder = place(pytester, bundles, "boom", "different", "fixed", "infra", "old", "flaky")
    (folder / "flaky.reprex.toml").write_text("runs = 4\n")
    counter.unlink(missing_ok=True)

    result = pytester.runpytest("--reprex-backend", "local", "-rA", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=3, skipped=1, errors=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "PASSED reprexes/boom.reprex.zip::boom",
        "SKIPPED * reprex old: env-incompatible: no Python 3.4 on this machine*",
        "ERROR reprexes/infra.reprex.zip::infra - *infra-error*",
        "FAILED reprexes/different.reprex.zip::different - *",
        "FAILED reprexes/fixed.reprex.zip::fixed - *",
        "FAILED reprexes/flaky.reprex.zip::flaky - *",
    ])
    # different: both signatures side by side, the message diff, the environment diff
    assert "reprex different: expected `reproduced`, got `different` on local" in out
    assert re.search(r"\*types\s+KeyError\s+\| ValueError", out), out
    assert re.search(r" frames\s+app\.py:check\s+\| app\.py:check", out), out
    assert "message diff (- bundle, + replay):" in out and "  - 'a'" in out and "  + b" in out
    env_diff = out[out.index("reprex environment diff"):]
    assert re.search(rf"python\s+{re.escape(_other_micro())} -> {re.escape(sys.version.split()[0])}", env_diff)
    # the replay output (the repro's own traceback) and the verdict sections
    assert "reprex replay output" in out and 'raise ValueError("b")' in out
    assert "verdict:   different (expected reproduced)" in out
    # fixed, flaky, infra-error
    assert "the failure no longer reproduces" in out
    assert "flaky: reproduced in 2 of 4 runs (reproduced, fixed, reproduced, fixed)" in out
    assert "ERROR at setup of reprex bundle infra" in out
    assert "installing the pins failed" in out
    assert "replayed bundles: 1 different, 1 env-incompatible, 1 fixed, 1 flaky, 1 infra-error, 1 reproduced" in out

    props = junit_properties(pytester.path / "junit.xml")
    assert {name: p.get("reprex_verdict") for name, p in props.items()} == {
        "boom": "reproduced", "different": "different", "fixed": "fixed", "infra": "infra-error",
        "old": "env-incompatible", "flaky": "flaky"}


def test_strict_compares_messages_and_fails_what_cannot_replay(pytester, bundles):
    place(pytester, bundles, "msg", "old")
    result = pytester.runpytest("--reprex-backend", "local")
    result.assert_outcomes(passed=1, skipped=1)

    result = pytester.runpytest("--reprex-backend", "local", "--reprex-strict")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "reprex msg: expected `reproduced`, got `different`" in out
    assert "  - 'a'" in out and "  + 'zzz'" in out
    assert "cannot replay here (failing under --reprex-strict): no Python 3.4" in out


# -- options, ini, per-bundle overrides -------------------------------------------------------

CONFTEST_MARKER = """
import pytest

def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.reprex(expect="fixed"))
"""


@pytest.mark.parametrize("where", ["cli", "ini", "toml-sidecar", "json-sidecar", "manifest", "marker"])
def test_expect_fixed_from_every_place(pytester, bundles, where):
    if where == "manifest":
        marked = {k: variant(bundles[k], manifest={"pytest": {"expect": "fixed"}}) for k in ("boom", "fixed")}
        folder = place(pytester, marked, "boom", "fixed/")
    else:
        folder = place(pytester, bundles, "boom", "fixed/")
    args = ["--reprex-backend", "local"]
    if where == "cli":
        args += ["--reprex-expect", "fixed"]
    elif where == "ini":
        pytester.makeini("[pytest]\nreprex_expect = fixed\n")
    elif where == "toml-sidecar":
        for name in ("boom", "fixed"):
            (folder / f"{name}.reprex.toml").write_text('expect = "fixed"\n')
    elif where == "json-sidecar":
        for name in ("boom", "fixed"):
            (folder / f"{name}.reprex.json").write_text('{"expect": "fixed"}')
    elif where == "marker":
        pytester.makeconftest(CONFTEST_MARKER)
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["reprex boom: expected `fixed`, got `reproduced` on local*",
                                 "FAILED reprexes/boom.reprex.zip::boom - *"])
    assert "the failure still reproduces" in result.stdout.str()


def test_precedence_command_line_over_bundle_over_ini(pytester, bundles):
    folder = place(pytester, bundles, "boom", "fixed")
    pytester.makeini("[pytest]\nreprex_backend = local\nreprex_expect = fixed\n")
    (folder / "boom.reprex.toml").write_text('expect = "reproduced"\n')
    # the sidecar beats the ini: boom passes as reproduced, fixed passes as fixed
    pytester.runpytest().assert_outcomes(passed=2)
    # the command line beats both
    result = pytester.runpytest("--reprex-expect", "reproduced")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED reprexes/fixed.reprex.zip::fixed - *"])


def test_a_bundles_manifest_field_cannot_choose_its_own_isolation(pytester, bundles, monkeypatch):
    """A downloaded bundle's `pytest` field asking for the local backend (or installs, the
    network, an image, GPUs) is ignored; what it may set (expect, runs ...) still counts."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/reprex-test.sock")
    monkeypatch.delenv("CI", raising=False)
    hostile = {"backend": "local", "with": ["./evil"], "network": "bridge", "image": "evil/img:1", "gpus": "all",
               "keep": True, "expect": "fixed", "runs": 2}
    folder = place(pytester, {"boom": variant(bundles["boom"], manifest={"pytest": hostile})}, "boom")

    # the resolved options for the item keep the configured backend (the default, auto)
    items, _ = pytester.inline_genitems(str(folder))
    [item] = items
    merged = item._merged()
    assert (merged["backend"], merged["with"], merged["network"], merged["image"], merged["gpus"]) == \
        ("auto", [], None, None, None)
    assert (merged["keep"], merged["expect"], merged["runs"]) == (False, "fixed", 2)

    # ... and so does the replay: the ini asks for docker, which is unreachable: a skip, not a local run
    pytester.makeini("[pytest]\nreprex_backend = docker\n")
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1, warnings=1)
    result.stdout.fnmatch_lines(["*reprex boom: ignored backend, gpus, image, keep, network, with in the bundle's "
                                 "manifest field `pytest`*",
                                 "SKIPPED * reprex boom: the docker backend was asked for, but Docker is "
                                 "unreachable*"])
    # the repository's owner still may: the sidecar picks local, and the manifest's `expect` holds
    (folder / "boom.reprex.toml").write_text('backend = "local"\n')
    result = pytester.runpytest()
    result.assert_outcomes(failed=1, warnings=1)
    result.stdout.fnmatch_lines(["reprex boom: expected `fixed`, got `reproduced` on local*"])


def test_the_manifest_field_layer_keeps_only_harmless_options(tmp_path):
    from pytest_reprex import options

    lay, ignored = options.manifest_layer({"backend": "local", "with_": ".", "expect": "fixed", "timeout": 5,
                                          "strict": "yes", "skip": "later", "marks": ["slow"]}, "m", tmp_path)
    assert lay == {"expect": "fixed", "timeout": 5.0, "strict": True, "skip": "later", "marks": ["slow"]}
    assert ignored == ["backend", "with_"]
    with pytest.raises(options.OptionError, match="m: unknown option 'bakend'"):
        options.manifest_layer({"bakend": "local"}, "m", tmp_path)
    assert set(options.MANIFEST_KEYS).isdisjoint({"backend", "with", "network", "image", "gpus", "keep"})


def test_ini_and_command_line_options_reach_the_replay_options(pytester):
    from pytest_reprex import options
    from pytest_reprex.state import state_of

    pytester.makeini(textwrap.dedent("""\
        [pytest]
        reprex_backend = local
        reprex_image = example/img:1
        reprex_gpus = none
        reprex_runs = 3
        reprex_timeout = 12.5
        reprex_network = bridge
        reprex_expect = fixed
        reprex_strict = true
        reprex_with =
            packaging==21.3
            ./vendor/pkg.whl
        reprex_capture = captured
        reprex_capture_max = 3
        """))
    config = pytester.parseconfigure("--reprex-runs", "5", "--reprex-with", ".", "--reprex-gpus", "all")
    state = state_of(config)
    merged = options.merge(state.ini_layer, state.cli_layer)
    ro = options.replay_options(merged)
    root = str(pytester.path)
    assert (ro.backend, ro.image, ro.gpus, ro.runs, ro.timeout, ro.network, ro.expect, ro.strict) == \
        ("local", "example/img:1", "all", 5, 12.5, "bridge", "fixed", True)
    assert ro.with_specs == ["packaging==21.3", f"{root}/vendor/pkg.whl", root]
    assert (state.capture.directory, state.capture.max_count) == (pytester.path / "captured", 3)


def test_bad_values_are_usage_errors_or_item_errors(pytester, bundles):
    pytester.makeini("[pytest]\nreprex_runs = lots\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*reprex: ini reprex_runs = 'lots': not a whole number*"])

    result = pytester.runpytest("-c", "/dev/null", "--reprex-gpus", "lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*reprex: --reprex-gpus 'lots': use none, all or a count*"])

    pytester.makeini("[pytest]\n")
    folder = place(pytester, bundles, "boom")
    (folder / "boom.reprex.toml").write_text("runz = 3\n")
    result = pytester.runpytest("--reprex-backend", "local")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*boom.reprex.toml: unknown option 'runz'*"])


def test_with_dot_installs_the_project_under_test(pytester, tmp_path):
    """`--reprex-with .`: the bundle's missing module is the project itself; installing the
    working tree over the pins fixes it."""
    work = tmp_path / "capture"
    work.mkdir()
    (work / "app.py").write_text("import reprexdemo\nprint('answer', reprexdemo.answer())\n")
    bundle = capture_command([PY, "app.py"], CaptureOptions(tee=False), cwd=str(work), write=False).bundle
    assert bundle.manifest["expect"]["signature"]["types"] == ["ModuleNotFoundError"]
    (pytester.path / "reprexes").mkdir()
    bundle.write(pytester.path / "reprexes" / "demo.reprex.zip")
    pytester.makefile(".toml", pyproject=textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "reprexdemo"
        version = "0.1"
        [tool.setuptools]
        packages = ["reprexdemo"]
        [tool.pytest.ini_options]
        testpaths = ["reprexes"]
        """))
    (pytester.path / "reprexdemo").mkdir()
    (pytester.path / "reprexdemo" / "__init__.py").write_text("def answer():\n    return 42\n")

    result = pytester.runpytest("--reprex-backend", "local", "--reprex-with", ".", "--reprex-expect", "fixed", "-rP")
    result.assert_outcomes(passed=1)
    assert "answer 42" in result.stdout.str()


# -- fixtures ---------------------------------------------------------------------------------

FIXTURE_TESTS = """
import pytest

SOURCE = "def f():\\n    raise KeyError('x')\\nf()\\n"


def test_factory_and_replay(reprex_bundle_factory, reprex_replay):
    bundle = reprex_bundle_factory(SOURCE, name="kx")
    assert bundle.name == "kx" and bundle.source.endswith("kx.reprex.zip")
    result = reprex_replay(bundle, backend="local")
    assert result.verdict == "reproduced"
    assert result.expected_signature.types == ["KeyError"]
    # by path, with the options as keywords
    again = reprex_replay(bundle.source, backend="local", runs=2, expect="fixed")
    assert again.runs == 2 and again.reproduced_runs == 2


@pytest.mark.reprex(backend="local", runs=3)
def test_marker_sets_defaults(reprex_bundle_factory, reprex_replay):
    result = reprex_replay(reprex_bundle_factory(SOURCE))
    assert result.backend == "local" and result.runs == 3


def test_files_and_args(reprex_bundle_factory, reprex_replay):
    bundle = reprex_bundle_factory("import sys\\nopen(sys.argv[1]).read()['k']\\n", files={"in.txt": "data"},
                                   args=["in.txt"])
    assert "files/in.txt" in bundle.files
    assert reprex_replay(bundle, backend="local").verdict == "reproduced"


def test_failing_assertion_gets_the_sections(reprex_bundle_factory, reprex_replay):
    result = reprex_replay(reprex_bundle_factory(SOURCE), backend="local")
    assert result.verdict == "fixed"


def test_unknown_option(reprex_bundle_factory, reprex_replay):
    with pytest.raises(TypeError, match="unknown option 'rnus'"):
        reprex_replay(reprex_bundle_factory(SOURCE), rnus=2)
"""


def test_fixtures_replay_and_build_bundles(pytester, cache):
    pytester.makepyfile(test_fixtures=FIXTURE_TESTS)
    result = pytester.runpytest("--junitxml=junit.xml")
    result.assert_outcomes(passed=4, failed=1)
    out = result.stdout.str()
    failure = out[out.index("test_failing_assertion_gets_the_sections"):]
    assert "reprex verdict" in failure and "verdict:   reproduced (expected reproduced)" in failure
    assert "reprex replay output" in failure and "KeyError: 'x'" in failure
    props = junit_properties(pytester.path / "junit.xml")
    assert props["test_failing_assertion_gets_the_sections"] == {"reprex_verdict": "reproduced"}


# -- Docker unreachable: skip locally, fail in CI -------------------------------------------------

def test_unreachable_docker_skips_locally_and_fails_in_ci(pytester, bundles, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/reprex-test.sock")
    monkeypatch.delenv("CI", raising=False)
    place(pytester, bundles, "boom")
    result = pytester.runpytest("--reprex-backend", "docker", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * reprex boom: the docker backend was asked for, but Docker is "
                                 "unreachable: no Docker daemon reachable at unix:///nonexistent/reprex-test.sock*"])

    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("--reprex-backend", "docker")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*Docker is unreachable*(CI=true: failing instead of skipping)*"])


def marker_app(marker: Path) -> str:
    """The boom app, writing `marker` first: proof of where the bundle's code ran."""
    return f"open({str(marker)!r}, 'w').write('ran')\n" + APP


def test_auto_never_runs_a_bundle_on_the_host_without_docker(pytester, bundles, monkeypatch, tmp_path):
    """`auto` is Docker or nothing: a collected bundle may be a stranger's, and the local
    backend would run its code here. Skipped without Docker, an error in CI; only the user's
    own `--reprex-backend local` runs it on the host."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/reprex-test.sock")
    marker = tmp_path / "ran-on-host"
    place(pytester, {"boom": variant(bundles["boom"], marker_app(marker)), "old": bundles["old"]}, "boom", "old")
    monkeypatch.delenv("CI", raising=False)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED * reprex boom: Docker is unreachable (*); bundles replay only in a "
                                 "container unless you choose --reprex-backend local*"])
    assert not marker.exists()
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*reprex boom: Docker is unreachable*(CI=true: failing instead of skipping)*"])
    assert not marker.exists()
    # the control: the user's choice runs it here, and the marker says so
    pytester.runpytest("--reprex-backend", "local").assert_outcomes(passed=1, skipped=1)
    assert marker.read_text() == "ran"


def test_the_reprex_replay_fixture_does_not_fall_back_to_the_host(pytester, bundles, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/reprex-test.sock")
    monkeypatch.delenv("CI", raising=False)
    marker = tmp_path / "ran-on-host"
    folder = place(pytester, {"boom": variant(bundles["boom"], marker_app(marker))}, "boom", folder="data")
    pytester.makepyfile(test_fixture=f"""
        def test_auto(reprex_replay):
            reprex_replay({str(folder / "boom.reprex.zip")!r})

        def test_garbage(reprex_replay, tmp_path):
            (tmp_path / "x.reprex.zip").write_bytes(b"PK not really")
            reprex_replay(str(tmp_path / "x.reprex.zip"))
        """)
    pytester.makeini("[pytest]\nreprex_collect = false\n")
    result = pytester.runpytest("-rsf")
    result.assert_outcomes(skipped=1, failed=1)
    result.stdout.fnmatch_lines_random(["SKIPPED * reprex app: Docker is unreachable*",
                                 "reprex: */x.reprex.zip: not a reprex bundle (bad zip*"])
    assert "Traceback" not in result.stdout.str() and "During handling" not in result.stdout.str()
    assert not marker.exists()


def test_a_directory_bundles_conftest_is_never_imported(pytester, bundles, tmp_path):
    """pytest imports conftest.py from every Directory node it collects and from every
    directory named on its command line; a directory bundle is neither (its files are the
    bundle author's code)."""
    marker = tmp_path / "conftest-ran"
    code = f"open({str(marker)!r}, 'a').write('x')\n".encode()
    evil = copy.deepcopy(bundles["boom"])
    evil.files.update({"conftest.py": code, "files/conftest.py": code, "files/__init__.py": code,
                       "files/test_evil.py": code + b"def test_evil():\n    pass\n"})
    folder = place(pytester, {"evil": evil.finalize()}, "evil/")
    result = pytester.runpytest("--reprex-backend", "local", "reprexes")
    result.assert_outcomes(passed=1)
    assert not marker.exists()
    # named on the command line: refused before pytest would import its conftest.py
    for arg in ("reprexes/evil", "reprexes/evil/files", "reprexes/evil/files/test_evil.py"):
        result = pytester.runpytest_subprocess("--reprex-backend", "local", arg)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
        result.stderr.fnmatch_lines([f"*reprex: {arg} is inside the directory bundle {folder / 'evil'}: pytest "
                                     f"would import its conftest.py*"])
        assert not marker.exists()
    # or started from inside one, with no argument
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder / "evil" / "files")
        result = pytester.run(PY, "-m", "pytest", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    assert not marker.exists()
    # a project that does not collect bundles treats the folder as its own
    pytester.makeini("[pytest]\nreprex_collect = false\n")
    pytester.runpytest_subprocess("reprexes/evil/files")
    assert marker.exists()


def test_a_bundles_asks_for_time_and_runs_are_bounded_by_the_users_grant(pytester, bundles):
    asks = {"timeout": 1e9, "runs": 100000}
    folder = place(pytester, {"boom": variant(bundles["boom"], manifest={"pytest": asks}),
                              "low": variant(bundles["boom"], manifest={"pytest": {"timeout": 3, "runs": 2}})},
                   "boom", "low")
    pytester.makeini("[pytest]\nreprex_timeout = 7\n")
    items, _ = pytester.inline_genitems(str(folder))
    merged = {item.name: item._merged() for item in items}
    assert (merged["boom"]["timeout"], merged["boom"]["runs"]) == (7.0, 5)  # more than granted: the grant
    assert (merged["low"]["timeout"], merged["low"]["runs"]) == (3.0, 2)  # less: the ask
    pytester.makeini("[pytest]\n")
    items, _ = pytester.inline_genitems(str(folder), "--reprex-runs", "9")
    merged = {item.name: item._merged() for item in items}
    assert merged["boom"]["timeout"] == 300.0 and merged["boom"]["runs"] == 9  # the command line wins


def test_malformed_bundles_are_errors_of_their_own_items_only(pytester, bundles):
    folder = place(pytester, bundles, "boom")
    (folder / "garbage.reprex.zip").write_bytes(b"\x00" * 100)
    tampered = copy.deepcopy(bundles["boom"])
    tampered.files["files/app.py"] = b"print('swapped after the id was computed')\n"
    tampered.write(folder / "tampered.reprex.zip")
    deep = ("{" + '"a":[' * 50000 + "]" * 50000 + "}").encode()
    import zipfile

    with zipfile.ZipFile(folder / "deep.reprex.zip", "w") as zf:
        zf.writestr("reprex.json", deep)
    result = pytester.runpytest("--reprex-backend", "local", "-rE")
    result.assert_outcomes(passed=1, errors=3)
    out = result.stdout.str()
    assert "Traceback" not in out and "RecursionError" not in out and "During handling" not in out
    result.stdout.fnmatch_lines_random(["ERROR reprexes/garbage.reprex.zip::garbage - Failed: reprex garbage: *",
                                        "ERROR reprexes/tampered.reprex.zip::tampered - Failed: reprex tampered: *",
                                        "ERROR reprexes/deep.reprex.zip::deep - Failed: reprex deep: *"])


def test_the_replays_output_reaches_the_terminal_inert(pytester, bundles):
    """A bundle's output and messages come back in the report; escape sequences in them are
    shown, not obeyed (no retitled terminal, no hyperlinks, no cleared screen)."""
    app = ('import sys\nprint("\\x1b]0;PWNED\\x07\\x1b[2J out")\n'
           'raise ValueError("\\x1b]8;;http://example.invalid\\x1b\\\\click\\x1b]8;;\\x1b\\\\")\n')
    place(pytester, {"esc": variant(bundles["boom"], app)}, "esc")
    result = pytester.runpytest("--reprex-backend", "local")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "\x1b]" not in out and "\x1b[2J" not in out and "\x07" not in out
    assert "\\x1b]0;PWNED\\x07" in out  # shown as text


# -- pytest-xdist ---------------------------------------------------------------------------------

def test_xdist_two_workers(pytester, bundles, counter):
    folder = place(pytester, bundles, "boom", "msg", "different", "fixed", "flaky")
    (folder / "flaky.reprex.toml").write_text("runs = 2\n")
    counter.unlink(missing_ok=True)
    pytester.makepyfile(test_fails="def test_fails():\n    assert {'a': 1}['a'] == 2\n")
    result = pytester.runpytest("-n", "2", "--reprex-backend", "local", "--reprex-capture", "captured")
    result.assert_outcomes(passed=2, failed=4)
    out = result.stdout.str()
    assert "created: 2/2 workers" in out
    assert "flaky: reproduced in 1 of 2 runs" in out
    assert "replayed bundles: 1 different, 1 fixed, 1 flaky, 2 reproduced" in out  # from the workers' reports
    # a worker captured the failing test; the controller's summary names the bundle
    written = sorted((pytester.path / "captured").glob("*.reprex.zip"))
    assert [p.name for p in written] == ["test_fails-test_fails.reprex.zip"]
    assert f"test_fails.py::test_fails: wrote {written[0]}" in out


TOKEN_APP = """\
import os
def check():
    token = os.environ.get("SERVICE_TOKEN")
    if not token:
        raise PermissionError("no token")
    raise KeyError("shard for " + token)
check()
"""


def test_reprex_env_passes_a_credential_from_the_command_line_or_ini_only(pytester, cache, monkeypatch):
    """--reprex-env / ini reprex_env hand a host variable to every replay (scrubbed from the
    report); a bundle's sidecar can't ask for one."""
    secret = "tok-plugin-4c7d2e"
    monkeypatch.setenv("SERVICE_TOKEN", secret)
    work = pytester.path / "capture"
    work.mkdir()
    (work / "app.py").write_text(TOKEN_APP)
    bundle = capture_command([PY, "app.py"], CaptureOptions(tee=False), cwd=str(work), write=False).bundle
    assert bundle.manifest["expect"]["signature"]["types"] == ["KeyError"]
    target = pytester.path / "reprexes"
    target.mkdir()
    bundle.write(target / "token.reprex.zip")
    (target / "token.reprex.toml").write_text('env = ["SERVICE_TOKEN"]\n')  # a sidecar asking for it
    bad_sidecar = pytester.runpytest("--reprex-backend", "local", "reprexes")
    assert "unknown option 'env'" in bad_sidecar.stdout.str()
    (target / "token.reprex.toml").unlink()

    without = pytester.runpytest("--reprex-backend", "local", "reprexes")
    without.assert_outcomes(failed=1)  # PermissionError: different
    passed = pytester.runpytest("--reprex-backend", "local", "--reprex-env", "SERVICE_TOKEN", "-rA", "reprexes")
    passed.assert_outcomes(passed=1)
    pytester.makeini("[pytest]\nreprex_env =\n    SERVICE_TOKEN\n")
    from_ini = pytester.runpytest("--reprex-backend", "local", "--reprex-strict", "-rA", "reprexes")
    from_ini.assert_outcomes(failed=1)  # strict: the bundle's redacted message is not the real one
    assert secret not in from_ini.stdout.str() and "<--env SERVICE_TOKEN>" in from_ini.stdout.str()
    bad = pytester.runpytest("--reprex-env", "PATH=/x", "reprexes")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR and "--reprex-env PATH" in bad.stderr.str()


def test_url_pins_are_allowed_by_the_command_line_or_ini_only(pytester, bundles):
    """`--reprex-allow-urls` / ini `reprex_allow_urls` grant the host's download of a bundle's
    `name @ https://...` pins; a sidecar, the marker, the fixture or the bundle's own manifest
    field can't."""
    from pytest_reprex import options
    from pytest_reprex.state import state_of

    def granted(*args) -> bool:
        state = state_of(pytester.parseconfigure(*args))
        return options.replay_options(options.merge(state.ini_layer, state.cli_layer)).allow_urls

    pytester.makeini("[pytest]\n")
    assert granted() is False
    assert granted("--reprex-allow-urls") is True
    pytester.makeini("[pytest]\nreprex_allow_urls = true\n")
    assert granted() is True

    lay, ignored = options.manifest_layer({"allow_urls": True, "expect": "fixed"}, "m", pytester.path)
    assert lay == {"expect": "fixed"} and ignored == ["allow_urls"]
    for where in ("sidecar", "@pytest.mark.reprex", "reprex_replay()"):
        with pytest.raises(options.OptionError, match=f"{re.escape(where)}: allow_urls is granted only by "
                                                      "--reprex-allow-urls or ini reprex_allow_urls"):
            options.layer({"allow_urls": True}, where, pytester.path)

    # end to end: a sidecar's grant is an error of its own item; the manifest's is ignored with a warning
    pytester.makeini("[pytest]\n")
    folder = place(pytester, {"asks": variant(bundles["boom"], manifest={"pytest": {"allow_urls": True}}),
                              "sidecar": bundles["boom"]}, "asks", "sidecar")
    (folder / "sidecar.reprex.toml").write_text("allow_urls = true\n")
    items, _ = pytester.inline_genitems(str(folder))
    merged = {item.name: item._merged() for item in items if item.name == "asks"}
    assert merged["asks"].get("allow_urls") is None
    result = pytester.runpytest("--reprex-backend", "local", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1, warnings=1)
    result.stdout.fnmatch_lines(["*sidecar.reprex.toml: allow_urls is granted only by --reprex-allow-urls*",
                                 "*reprex asks: ignored allow_urls in the bundle's manifest field `pytest`*"])


def test_the_manifest_field_is_read_with_the_bundle_json_bounds(tmp_path):
    """Collection reads a bundle's `pytest` field as every bundle JSON is read (size and nesting
    bounded): a manifest over them gives no field (its item reports the bundle as broken)."""
    import json
    import zipfile

    from pytest_reprex.options import read_manifest_field
    from reprex.bundle import MAX_JSON_DEPTH, MAX_MANIFEST_BYTES

    def bundle_dir(name: str, text: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "reprex.json").write_text(text)
        return folder

    field = {"expect": "fixed"}
    assert read_manifest_field(bundle_dir("plain", json.dumps({"pytest": field}))) == field
    deep = "[" * (MAX_JSON_DEPTH + 20) + "]" * (MAX_JSON_DEPTH + 20)  # json.loads reads it; the bound doesn't
    assert read_manifest_field(bundle_dir("deep", '{"pytest": {"expect": "fixed"}, "junk": %s}' % deep)) is None
    big = json.dumps({"pytest": field, "junk": "x" * MAX_MANIFEST_BYTES})
    assert read_manifest_field(bundle_dir("big", big)) is None
    with zipfile.ZipFile(tmp_path / "big.reprex.zip", "w") as zf:
        zf.writestr("reprex.json", big)
    assert read_manifest_field(tmp_path / "big.reprex.zip") is None
