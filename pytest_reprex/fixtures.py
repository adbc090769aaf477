"""The plugin's fixtures: `reprex_replay` (replay a bundle inside a test, options layered
like a collected bundle's) and `reprex_bundle_factory` (a real bundle from a failing
script). plugin.py imports them so pytest registers them with the plugin; the library is
imported only when one is used.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_reprex import options as opts
from pytest_reprex.state import FIXTURE_RESULTS, sandboxed_backend, state_of


@pytest.fixture
def reprex_replay(request):
    """Replay a bundle and return its `reprex.replay.ReplayResult`, for custom assertions.

        def test_still_broken(reprex_replay):
            result = reprex_replay("reprexes/skew.reprex.zip", runs=3)
            assert result.verdict == "reproduced"

    `bundle` is a path (relative paths also tried next to the test file) or a Bundle;
    keyword options (backend, image, gpus, runs, timeout, network, expect, with, strict,
    keep) win over `--reprex-*`, which win over `@pytest.mark.reprex(...)` and the ini.
    The verdict becomes the junitxml property `reprex_verdict`; on failure, the report
    shows the replay output, the verdict and the environment diff.
    """
    config = request.config
    state = state_of(config)
    node = request.node
    marker = node.get_closest_marker("reprex")
    rootpath = Path(config.rootpath)
    marker_layer = opts.layer(marker.kwargs if marker else {}, "@pytest.mark.reprex", rootpath,
                              keys=opts.OPTION_KEYS)
    results = node.stash.setdefault(FIXTURE_RESULTS, [])

    def run(bundle, **options):
        from reprex.bundle import Bundle
        from reprex.replay import replay

        if not isinstance(bundle, Bundle):
            path = Path(bundle)
            if not path.is_absolute() and not path.exists():
                beside = Path(node.path).parent / path
                if beside.exists():
                    path = beside
            from reprex.bundle import BundleError

            try:
                bundle, error = Bundle.read(path), None
            except (BundleError, OSError) as exc:
                bundle, error = None, str(exc)
            if error is not None:  # outside the except: the report shows one line, not a chain
                pytest.fail(f"reprex: {error}", pytrace=False)
        try:
            kwargs_layer = opts.layer(options, "reprex_replay()", rootpath, keys=opts.OPTION_KEYS)
        except opts.OptionError as exc:
            raise TypeError(str(exc)) from None
        merged = opts.merge(state.ini_layer, marker_layer, state.cli_layer, kwargs_layer)
        merged["backend"] = sandboxed_backend(state, merged["backend"], bundle.name)
        if merged["backend"] != "local":
            state.docker_bundles.add(bundle.id)
        from pytest_reprex.items import interruptible

        result = interruptible(replay, bundle, opts.replay_options(merged, state.pass_env))
        results.append((result, merged["expect"], bundle.source or bundle.name))
        node.user_properties.append(("reprex_verdict", result.verdict))
        return result

    return run


@pytest.fixture
def reprex_bundle_factory(tmp_path_factory):
    """Build a real bundle inside a test: run a failing Python script under the recorder.

        def test_bug(reprex_bundle_factory, reprex_replay):
            bundle = reprex_bundle_factory("import json\\njson.loads('{')\\n")
            assert reprex_replay(bundle).verdict == "reproduced"

    Arguments: `source` (the script), `files` ({relative path: str | bytes} written beside
    it), `script` (its file name, default app.py), `args` (its command-line arguments),
    `name`, `timeout`, `allow_success`, `directory` (to write the bundle zip into; default
    a fresh temporary directory). Returns the `reprex.bundle.Bundle`, with `.source` set
    to the written zip.
    """
    def make(source: str | None = None, *, files: dict | None = None, script: str = "app.py", args=(),
             name: str | None = None, timeout: float | None = None, allow_success: bool = False,
             directory=None):
        import sys
        import textwrap

        from reprex.capture.pipeline import CaptureOptions, capture_command

        work = tmp_path_factory.mktemp("reprex-work")
        for rel, data in (files or {}).items():
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                target.write_bytes(data)
            else:
                target.write_text(data)
        if source is not None:
            (work / script).write_text(textwrap.dedent(source))
        if not (work / script).is_file():
            raise ValueError(f"no script {script!r}: pass `source` or put it in `files`")
        out_dir = Path(directory) if directory is not None else tmp_path_factory.mktemp("reprex-bundles")
        options = CaptureOptions(tee=False, name=name, timeout=timeout, allow_success=allow_success)
        result = capture_command([sys.executable, script, *map(str, args)], options, cwd=str(work), write=False)
        if result.bundle is None:
            raise AssertionError(f"no bundle: {result.message}")
        bundle = result.bundle
        path = bundle.write(out_dir / f"{bundle.name}.reprex.zip")
        bundle.source = str(path)
        return bundle

    return make
