"""pytest11 entry point: replay reprex bundles as tests, capture failing tests as bundles.

pytest loads this module in every session of every project with reprex installed,
so it imports only the standard library, pytest and the small option helpers at the
top; the library (`reprex.replay`, `reprex.capture`, ...) is imported inside the hooks
that need it, and only when a bundle is collected or `--reprex-capture` is given.

Options (each has an ini twin named with underscores, e.g. `reprex_backend`):
  --reprex-backend auto|local|docker   --reprex-image IMAGE      --reprex-gpus none|all|N
  --reprex-runs N                      --reprex-with SPEC (repeatable; `.` = the project)
  --reprex-expect reproduced|fixed     --reprex-strict           --reprex-timeout SECONDS
  --reprex-network none|bridge         --reprex-capture DIR      --reprex-capture-max N
  --reprex-capture-all (a bundle for each failing test, also when several share one signature)
  --reprex-allow-urls (command line and ini only: a sidecar, marker or bundle can't grant it)
  --reprex-ray [ADDRESS]  replay the collected bundles as tasks on a Ray cluster (pytest_reprex.cluster)
Per bundle: a sidecar `NAME.reprex.toml` / `NAME.reprex.json`, the manifest field
`pytest` (only expect, runs, timeout, strict, skip, marks: the bundle can't choose its
own isolation), or `@pytest.mark.reprex(...)`; see pytest_reprex.options for precedence.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pytest_reprex import options as opts
from pytest_reprex.fixtures import reprex_bundle_factory, reprex_replay  # noqa: F401 (this plugin's fixtures)
from pytest_reprex.state import FIXTURE_RESULTS, STATE, State, state_of

_SNAPSHOT = pytest.StashKey[dict]()
_OPENED = pytest.StashKey[set]()
_RANDOM = pytest.StashKey[str]()
_CAPTURED = pytest.StashKey[bool]()


def bundle_dir_around(path: Path) -> Path | None:
    """The directory bundle (a folder holding reprex.json) that `path` is or lies in, if any."""
    for candidate in (path, *path.parents):
        if (candidate / "reprex.json").is_file():
            return candidate
    return None


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # old style: pluggy before 1.2 (pytest 7) has no wrapper=True
def pytest_load_initial_conftests(early_config, parser, args):
    """pytest imports conftest.py from each directory named on the command line before any
    collection hook runs; inside a directory bundle that file is the bundle author's code.
    Refuse such an argument (its parent directory collects the bundle safely).

    With --reprex-capture, a conftest.py that fails to import here ends the session (exit 4)
    before pytest_configure: its bundle is written here, and said so on stderr."""
    _refuse_bundle_conftests(early_config)
    audit = None
    if _capture_settings(early_config, early_config.known_args_namespace) is not None:
        from pytest_reprex.capture import install_audit_hook

        audit = install_audit_hook(Path(early_config.rootpath))  # what the conftests read goes in the bundle
    outcome = yield
    exc = outcome.excinfo[1] if outcome.excinfo else None
    if audit is not None and exc is not None and type(exc).__name__ == "ConftestImportFailure":
        path = getattr(exc, "path", None)
        cause = getattr(exc, "cause", None) or getattr(exc, "excinfo", (None, None))[1] or exc.__cause__
        if path is not None and isinstance(cause, Exception):
            _capture_conftest(early_config, Path(path), cause, audit)


def _capture_conftest(config, path: Path, cause: BaseException, audit: set) -> None:
    from pytest_reprex.capture import Captured, CaptureState, capture_conftest_error

    directory, _, timeout = _capture_settings(config, config.known_args_namespace)
    state = CaptureState(directory, 1, timeout, audit)
    try:
        result = capture_conftest_error(config, path, cause, state)
    except Exception as exc:  # the conftest's own error is what the user must see
        result = Captured(str(path), None, error=f"{type(exc).__name__}: {exc}")
    finally:
        state.close()
    if result.path is None:
        lines = [f"{result.nodeid}: could not write a bundle: {result.error}"]
    else:
        lines = [f"{result.nodeid}: wrote {result.path}", f"replay it: reprex replay {result.path}"]
        if not result.reproduces:
            lines.append(f"  warning: {NOT_REPRODUCED}: {result.reason} (marked reproduces: false)")
    sys.stderr.write("\n".join([f"{'-' * 36} reprex {'-' * 36}", *lines]) + "\n")
    sys.stderr.flush()


def _capture_settings(config, ns) -> tuple[Path, int, float] | None:
    """(directory, most bundles, timeout) when capturing, from the command line (`ns`: the
    parsed options, or the early namespace before pytest_configure) or the ini file; else None."""
    directory = getattr(ns, "reprex_capture", None)
    base = Path(config.invocation_params.dir)
    if not directory and config.getini("reprex_capture"):
        directory = config.getini("reprex_capture")
        base = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
    if not directory:
        return None
    most = getattr(ns, "reprex_capture_max", None)
    if most is None:
        text = str(config.getini("reprex_capture_max") or "20")
        if not text.isdigit():
            raise pytest.UsageError(f"reprex: ini reprex_capture_max = {text!r}: not a whole number")
        most = int(text)
    try:
        timeout = getattr(ns, "reprex_timeout", None) or opts.check_value(
            "timeout", config.getini("reprex_timeout") or None, "ini", "ini reprex_timeout =") or 120.0
    except opts.OptionError as exc:
        raise pytest.UsageError(f"reprex: {exc}") from None
    path = Path(os.path.expanduser(directory))
    return (base / path).resolve() if not path.is_absolute() else path, most, timeout


def _refuse_bundle_conftests(early_config) -> None:
    ns = early_config.known_args_namespace
    if getattr(ns, "noconftest", False) or not early_config.getini("reprex_collect"):
        return
    base = Path(early_config.invocation_params.dir)
    for arg in getattr(ns, "file_or_dir", None) or [str(base)]:  # no argument: pytest starts from here
        path = Path(os.path.abspath(base / str(arg).split("::")[0]))
        if not path.exists():
            continue
        bundle = bundle_dir_around(path)
        if bundle is not None:
            raise pytest.UsageError(
                f"reprex: {arg} is inside the directory bundle {bundle}: pytest would import its conftest.py on "
                f"this host before the bundle is replayed; pass {bundle.parent} instead (or zip the bundle)")


# -- options ---------------------------------------------------------------------------

def pytest_addoption(parser):
    group = parser.getgroup("reprex", "reprex: replay bundles as tests, capture failing tests as bundles")
    group.addoption("--reprex-backend", dest="reprex_backend", choices=opts.BACKENDS, default=None,
                    help="where collected bundles replay: auto (docker when reachable, else skipped: a bundle runs on "
                         "this host only with local, for bundles you trust), local, docker.")
    group.addoption("--reprex-image", dest="reprex_image", metavar="IMAGE", default=None,
                    help="base image for the docker backend (default: from the bundle's Python).")
    group.addoption("--reprex-gpus", dest="reprex_gpus", metavar="none|all|N", default=None,
                    help="GPUs for the replay (default: what the bundle needs).")
    group.addoption("--reprex-runs", dest="reprex_runs", metavar="N", type=int, default=None,
                    help="replay each bundle N times; some-but-not-all reproductions is `flaky`.")
    group.addoption("--reprex-with", dest="reprex_with", metavar="SPEC", action="append", default=[],
                    help="install SPEC over the bundle's pins ('pkg==X', a path; `.` = the project under test). "
                         "Repeatable.")
    group.addoption("--reprex-expect", dest="reprex_expect", choices=opts.EXPECTS, default=None,
                    help="the verdict that passes: reproduced (default) or fixed.")
    group.addoption("--reprex-strict", dest="reprex_strict", action="store_true", default=None,
                    help="compare messages too, and fail (not skip) bundles that can't replay here.")
    group.addoption("--reprex-timeout", dest="reprex_timeout", metavar="SECONDS", type=float, default=None,
                    help="seconds per replay run (default 300, or as long as the captured run hung).")
    group.addoption("--reprex-network", dest="reprex_network", choices=opts.NETWORKS, default=None,
                    help="network for the replay (default: none unless the bundle needs one).")
    group.addoption("--reprex-allow-urls", dest="reprex_allow_urls", action="store_true", default=None,
                    help="download bundles' `name @ https://...` pins from the addresses they name (this machine "
                         "connects there); default: such a bundle is env-incompatible. Never taken from a bundle.")
    group.addoption("--reprex-env", dest="reprex_env", metavar="NAME[=VALUE]", action="append", default=[],
                    help="reprex: pass NAME from this environment (or NAME=VALUE) into every replay, for a "
                         "credential the repros need; scrubbed from reports. Repeatable.")
    group.addoption("--reprex-ray", dest="reprex_ray", metavar="ADDRESS", nargs="?", const="auto", default=None,
                    help="replay the collected bundles as tasks on a Ray cluster: auto (default: RAY_ADDRESS or the "
                         "cluster `ray start` made here, else a new one on this machine), local, HOST:PORT or ray://HOST:PORT. Each node replays in its "
                         "own Docker (or local with --reprex-backend local); pytest still reports one item per "
                         "bundle. Works with or instead of xdist.")
    group.addoption("--reprex-capture", dest="reprex_capture", metavar="DIR", default=None,
                    help="write a bundle for each failing test into DIR.")
    group.addoption("--reprex-capture-max", dest="reprex_capture_max", metavar="N", type=int, default=None,
                    help="capture at most N failing tests per process (default 20).")
    group.addoption("--reprex-capture-all", dest="reprex_capture_all", action="store_true", default=None,
                    help="a bundle for every failing test; by default a failure with the signature and message of one "
                         "already captured is counted, not captured again.")
    parser.addini("reprex_backend", "reprex: replay backend (auto, local, docker)", default="")
    parser.addini("reprex_image", "reprex: base image for the docker backend", default="")
    parser.addini("reprex_gpus", "reprex: GPUs for the replay (none, all, N)", default="")
    parser.addini("reprex_runs", "reprex: replay each bundle N times", default="")
    parser.addini("reprex_with", "reprex: specs to install over the pins, one a line", type="linelist", default=[])
    parser.addini("reprex_expect", "reprex: the verdict that passes (reproduced, fixed)", default="")
    parser.addini("reprex_strict", "reprex: compare messages; fail bundles that can't replay here", type="bool",
                  default=False)
    parser.addini("reprex_timeout", "reprex: seconds per replay run", default="")
    parser.addini("reprex_network", "reprex: network for the replay (none, bridge)", default="")
    parser.addini("reprex_allow_urls", "reprex: download bundles' `name @ https://...` pins from the addresses "
                  "they name", type="bool", default=False)
    parser.addini("reprex_collect", "reprex: collect *.reprex.zip and bundle directories as tests", type="bool",
                  default=True)
    parser.addini("reprex_env", "reprex: environment variable names passed into every replay, one a line",
                  type="linelist", default=[])
    parser.addini("reprex_ray", "reprex: replay collected bundles on this Ray cluster (auto, local, HOST:PORT)",
                  default="")
    parser.addini("reprex_capture", "reprex: write a bundle for each failing test into this directory", default="")
    parser.addini("reprex_capture_max", "reprex: capture at most N failing tests per process", default="")
    parser.addini("reprex_capture_all", "reprex: a bundle for every failing test, also those whose failure has the "
                  "signature and message of one already captured", type="bool", default=False)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "reprex(**options): replay options (backend, image, gpus, runs, timeout, network, expect, with, "
                   "strict) for collected bundles and for the reprex_replay fixture")
    state = state_of(config)
    try:
        state.cli_layer = opts.cli_layer(config)
        state.ini_layer = opts.ini_layer(config)
    except opts.OptionError as exc:
        raise pytest.UsageError(f"reprex: {exc}") from None
    from reprex.replay.base import parse_pass_env

    try:  # only the user's command line and ini: a bundle or its sidecar never picks host variables
        state.pass_env = parse_pass_env(list(config.getini("reprex_env")) + list(config.getoption("reprex_env") or []))
    except ValueError as exc:
        raise pytest.UsageError(f"reprex: {str(exc).replace('--env', '--reprex-env')}") from None
    state.collect = bool(config.getini("reprex_collect"))
    address = config.getoption("reprex_ray", None)
    label = "--reprex-ray"
    if address is None and config.getini("reprex_ray"):
        address, label = config.getini("reprex_ray"), "ini reprex_ray ="
    if address is not None:
        from pytest_reprex import cluster

        try:
            cluster.install(config, opts.ray_address(address, label))
        except opts.OptionError as exc:
            raise pytest.UsageError(f"reprex: {exc}") from None
    config.pluginmanager.register(_ReportWatcher(state), "reprex-report-watcher")
    settings = _capture_settings(config, config.option)
    if settings is not None:
        from pytest_reprex.capture import CaptureState, install_audit_hook

        directory, most, timeout = settings
        state.capture = CaptureState(directory, most, timeout, install_audit_hook(Path(config.rootpath)),
                                     every=bool(config.getoption("reprex_capture_all", None)
                                                or config.getini("reprex_capture_all")))


# -- collection ---------------------------------------------------------------------------

def pytest_collect_file(file_path: Path, parent):
    if file_path.name.endswith(".reprex.zip") and state_of(parent.config).collect:
        from pytest_reprex.items import ReprexFile

        return ReprexFile.from_parent(parent, path=file_path)
    return None


def pytest_ignore_collect(collection_path: Path, config):
    state = config.stash.get(STATE, None)
    if state is not None and not state.collect and (collection_path / "reprex.json").is_file():
        return True  # not collected as a bundle, and its files/ are a captured program, not tests
    if state is not None and state.capture is not None:
        directory, path = state.capture.directory, Path(collection_path).resolve()
        if path == directory or directory in path.parents:
            return True  # this session's own output: bundles written there are not tests of this run
    return None


if int(pytest.__version__.split(".")[0]) >= 8:  # directory collectors came with pytest 8
    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(path: Path, parent):
        if (path / "reprex.json").is_file() and state_of(parent.config).collect:
            from pytest_reprex.items import ReprexDir

            return ReprexDir.from_parent(parent, path=path)
        return None


# -- running and reporting -----------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    state = item.config.stash.get(STATE, None)
    if state is not None and state.capture is not None and isinstance(item, pytest.Function):
        from pytest_reprex.capture import snapshot

        try:
            snap = snapshot(item)
            if snap is not None:
                item.stash[_SNAPSHOT] = snap
        except Exception as exc:  # capture must never break the test run
            state.capture_errors.append(f"{item.nodeid}: snapshot of tmp_path failed: {exc}")
    yield


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    state = pyfuncitem.config.stash.get(STATE, None)
    if state is None or state.capture is None:
        yield
        return
    from pytest_reprex import capture, plan

    if plan.randomly_active(pyfuncitem.config):
        import random

        pyfuncitem.stash[_RANDOM] = repr(random.getstate())
    pyfuncitem.stash[_OPENED] = capture.begin_recording_opens()
    try:
        yield
    finally:
        capture.end_recording_opens()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    from_item = getattr(item, "reprex_result", None)
    if from_item is not None and (call.when == "call" or (call.when == "setup" and report.outcome != "passed")):
        from pytest_reprex.report import sections

        report.sections.extend(sections(from_item, item.reprex_expect, str(item.bundle_path)))
    if call.when == "call":
        results = item.stash.get(FIXTURE_RESULTS, None)
        if results:
            from pytest_reprex.report import sections

            for i, (result, expect, source) in enumerate(results, 1):
                for title, text in sections(result, expect, source):
                    report.sections.append((f"{title} ({i})" if len(results) > 1 else title, text))
    state = item.config.stash.get(STATE, None)
    if (state is not None and state.capture is not None and report.failed and call.excinfo is not None
            and isinstance(item, pytest.Function) and not hasattr(report, "wasxfail")
            and call.when in ("setup", "call", "teardown") and not item.stash.get(_CAPTURED, False)):
        item.stash[_CAPTURED] = True  # one bundle a test: a teardown error after a failure is its echo
        _capture(item, call, report, state)
    elif (state is not None and state.capture is not None and report.failed and call.excinfo is None
            and call.when == "call" and str(report.longrepr).startswith("[XPASS(strict)]")
            and not item.stash.get(_CAPTURED, False)):
        item.stash[_CAPTURED] = True
        report.user_properties.append(("reprex_capture_error", XPASS_STRICT))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    state = collector.config.stash.get(STATE, None)
    if state is None or state.capture is None or not isinstance(collector, pytest.Module):
        return
    # Every xdist worker collects every module, and the controller shows the first report of an
    # error it gets: each writes the bundle (the same one, atomically) so that report names it.
    report = outcome.get_result()
    call = getattr(report, "call", None)  # pytest keeps the CallInfo there for collect_one_node
    if report.failed and call is not None and call.excinfo is not None:
        _capture(collector, call, report, state)


def _capture(node, call, report, state: State) -> None:
    from pytest_reprex.capture import Captured, capture_collect_error, capture_failure, failure_key

    cap = state.capture
    if isinstance(call.excinfo.value, (KeyboardInterrupt, SystemExit)):
        return
    if not hasattr(report, "user_properties"):
        report.user_properties = []  # a collect report (xdist sends it to the controller with its attributes)
    props = getattr(node, "user_properties", None)  # a test's, for junitxml; reports copy them
    key = None
    if not cap.every:
        try:
            key = failure_key(call.excinfo, call.when)
        except Exception:  # no key: captured on its own
            key = None
    first = cap.firsts.get(key) if key is not None else None
    if first is not None or cap.count >= cap.max_count:
        why = ("reprex_same_as", first) if first is not None else ("reprex_uncaptured", "max")
        report.user_properties.append(why)  # the summary counts them (also from xdist workers)
        if props is not None:
            props.append(why)
        return
    if key is not None:
        cap.firsts[key] = node.nodeid
    cap.count += 1
    try:
        if isinstance(node, pytest.Function):
            result = capture_failure(node, call.excinfo, cap, node.stash.get(_SNAPSHOT, None),
                                     node.stash.get(_OPENED, set()), node.stash.get(_RANDOM, None), call.when)
        else:
            result = capture_collect_error(node, call.excinfo, cap)
    except Exception as exc:  # a failed capture must not hide the test's own failure
        result = Captured(node.nodeid, None, error=f"{type(exc).__name__}: {exc}")
    cap.results.append(result)
    if result.path is None:
        report.sections.append(("reprex bundle", f"could not write a bundle: {result.error}"))
        report.user_properties.append(("reprex_capture_error", result.error))
        if props is not None:
            props.append(("reprex_capture_error", result.error))
        return
    lines = [f"wrote {result.path}", f"replay it: reprex replay {result.path}"]
    if result.mode == "pytest":
        lines.append("it replays the test under pytest (the standalone script did not fail like the test)")
    if not result.reproduces:
        lines.append(f"warning: {NOT_REPRODUCED}: {result.reason} (reproduces: false in the manifest)")
    if result.flagged:
        lines.append(f"rebuilt from fixture source or missing: {', '.join(result.flagged)}")
    report.sections.append(("reprex bundle", "\n".join(lines)))
    written = [("reprex_bundle", str(result.path)), ("reprex_reproduces", result.reproduces),
               ("reprex_mode", result.mode)]
    report.user_properties.extend(written)
    if props is not None:
        props.extend(written)


NOT_REPRODUCED = "re-run alone, the test did not fail as it did in this session"
# A strict xfail that passed raises nothing, and a replay's recorder sees only exceptions: its
# run would end `exit:1` with no failing test, which any other failure of pytest also gives.
XPASS_STRICT = ("a strict xfail that passed ([XPASS(strict)]) raises no exception, and a replay records no "
                "failure for it, so no bundle could tell it from another failure")


class _ReportWatcher:
    """Per-session: remembers the bundles written for failing tests (also by xdist workers,
    whose reports reach the controller with their user properties)."""

    def __init__(self, state: State):
        self.state = state

    def pytest_runtest_logreport(self, report):
        if report.when == "teardown":
            for name, value in getattr(report, "user_properties", None) or ():
                if name == "reprex_verdict":
                    self.state.verdicts[value] = self.state.verdicts.get(value, 0) + 1
                elif name == "reprex_node":
                    self.state.nodes[value] = self.state.nodes.get(value, 0) + 1
        self._bundle(report)

    def pytest_collectreport(self, report):
        self._bundle(report)

    def _bundle(self, report) -> None:
        props = dict(getattr(report, "user_properties", None) or [])
        if props.get("reprex_same_as"):
            self.state.same_as.setdefault(props["reprex_same_as"], set()).add(report.nodeid)
        elif props.get("reprex_uncaptured"):
            self.state.uncaptured.add(report.nodeid)
        if "reprex_bundle" in props or "reprex_capture_error" in props:
            entry = (report.nodeid, props.get("reprex_bundle"), props.get("reprex_reproduces"),
                     props.get("reprex_capture_error"), props.get("reprex_mode"))
            if entry not in self.state.bundles:  # later reports of a test carry its properties too
                self.state.bundles.append(entry)


def pytest_sessionfinish(session, exitstatus):
    state = session.config.stash.get(STATE, None)
    if state is not None and state.docker_bundles:
        remove_containers(state.docker_bundles)
    from pytest_reprex import cluster

    cluster.finish(session.config)  # what -x, Ctrl-C or xdist's stealing left in flight
    if state is not None and state.capture is not None:
        state.capture.close()  # the warm servers the captures forked from


def remove_containers(bundle_ids) -> int:
    """Remove what replays of these bundles left behind (the backend removes each container in
    `finally`; a hard interrupt can still leave one), then sweep older reprex leftovers.

    Runs at the end of every session (also after Ctrl-C) in each process that replayed on
    Docker; by then no replay of this process is running, so its own bundles' stopped
    containers can go whatever their age (reprex.replay.docker.cleanup). Never raises."""
    try:
        from reprex.replay.docker import cleanup

        return cleanup(bundles=bundle_ids)
    except Exception:
        return 0


def _more(n: int) -> str:
    return f"{n} more failing test" + ("" if n == 1 else "s")


def _names(nodeids, shown: int = 3) -> str:
    names = sorted(nodeids)
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = config.stash.get(STATE, None)
    if state is None:
        return
    lines = []
    for nodeid, path, reproduces, error, mode in state.bundles:
        if error:
            lines.append(f"{nodeid}: could not write a bundle: {error}")
            continue
        lines.append(f"{nodeid}: wrote {path}" + (" (replays under pytest)" if mode == "pytest" else ""))
        if reproduces in (False, "False"):
            lines.append(f"  warning: {NOT_REPRODUCED} (marked reproduces: false)")
    lines += [f"warning: {e}" for e in state.capture_errors]
    warm = getattr(state.capture, "warm", None)
    if warm is not None and warm.stats["warm"]:
        lines.append(f"re-runs: {warm.stats['warm']} forked warm, {warm.stats['cold']} cold"
                     + (f", {warm.stats['fallback']} fell back to cold" if warm.stats["fallback"] else "")
                     + " (REPREX_WARM=0: all cold)")
    for first, others in state.same_as.items():
        lines.append(f"{first}: {_more(len(others))} with its signature and message, not captured again "
                     f"({_names(others)}; --reprex-capture-all writes a bundle for each)")
    if state.uncaptured:
        most = state.capture.max_count if state.capture is not None else "N"
        lines.append(f"stopped capturing at --reprex-capture-max {most}: {_more(len(state.uncaptured))} "
                     f"without a bundle ({_names(state.uncaptured)}); raise the cap with "
                     "--reprex-capture-max N or ini reprex_capture_max")
    if state.verdicts:
        counts = ", ".join(f"{n} {v}" for v, n in sorted(state.verdicts.items()))
        lines.append(f"replayed bundles: {counts}")
    if state.nodes:
        lines.append("on ray nodes: " + ", ".join(f"{node} {n}" for node, n in sorted(state.nodes.items())))
    if lines:
        terminalreporter.write_sep("-", "reprex")
        for line in lines:
            terminalreporter.write_line(line)
