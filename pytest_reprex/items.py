"""Collected bundles: `*.reprex.zip` files and directories holding `reprex.json`.

Each bundle is one item named after it. The replay runs in the item's setup, so that
infrastructure trouble is reported as an ERROR (not a failure) and an environment
that can't be made here as a SKIP; the call phase then judges the verdict against
the expectation.

A bundle's own manifest field `pytest` may set only `expect`, `runs`, `timeout`,
`strict`, `skip` and `marks`: a downloaded bundle must not pick a less isolated
backend or make the host install anything (see `pytest_reprex.options`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_reprex import options as opts


class ReprexMismatch(Exception):
    """The verdict did not meet the expectation; the message is the whole report."""


class _BundleCollector:
    def collect(self):
        yield ReprexItem.from_parent(self, name=opts.bundle_stem(Path(self.path)), bundle_path=Path(self.path))


class ReprexFile(_BundleCollector, pytest.File):
    """A `NAME.reprex.zip` bundle."""


class ReprexDir(_BundleCollector, pytest.File):
    """A directory bundle (it holds `reprex.json`); nothing inside it is collected. Not a
    `pytest.Directory` on purpose: pytest imports the conftest.py of every Directory it
    collects, and a stranger's bundle may ship one (pytest >= 8 asks for it by
    `pytest_collect_directory`)."""


def _skip_here(reason: str):
    """Skip, reported at the bundle's path rather than this module's."""
    try:
        return pytest.skip.Exception(reason, _use_item_location=True)
    except TypeError:  # pytest without the private flag
        return pytest.skip.Exception(reason)


def interruptible(replay, bundle, options):
    """The replay, with SIGTERM (and SIGINT) unwinding it like Ctrl-C: its container and temp
    dirs are removed on the way out, then pytest ends the session as interrupted. Without
    this, SIGTERM would end pytest on the spot and leave the container running until its own
    timeout."""
    from reprex.interrupt import Interrupted, on_signals

    try:
        with on_signals():
            return replay(bundle, options)
    except Interrupted as exc:
        raise KeyboardInterrupt(str(exc)) from None


class ReprexItem(pytest.Item):
    def __init__(self, *, bundle_path: Path, **kwargs):
        super().__init__(**kwargs)
        self.bundle_path = bundle_path
        self.reprex_result = None
        self.reprex_expect = "reproduced"
        self.reprex_strict = False
        self._layers: list[dict] = []
        self._load_error: str | None = None
        self._ignored: list[str] = []  # manifest-field options the bundle may not set for itself
        self._asked: dict = {}  # what the manifest field asked for (bounded by the user's layers)
        base = Path(self.config.rootpath)
        try:
            field = opts.read_manifest_field(bundle_path)
            if field:
                # only what can't weaken isolation (see opts.MANIFEST_KEYS): the bundle may come from anyone
                lay, self._ignored = opts.manifest_layer(field, f"{bundle_path.name}: manifest field `pytest`", base)
                self._layers.append(lay)
                self._asked = lay
            sidecar = opts.sidecar_path(bundle_path)
            if sidecar is not None:
                self._layers.append(opts.layer(opts.read_sidecar(sidecar), str(sidecar), base))
        except (opts.OptionError, OSError) as exc:
            self._load_error = str(exc)
        for lay in self._layers:
            for mark in lay.get("marks") or ():
                self.add_marker(mark)
            if lay.get("skip"):
                self.add_marker(pytest.mark.skip(reason=lay["skip"]))

    def reportinfo(self):
        return self.bundle_path, 0, f"reprex bundle {self.name}"

    def _merged(self) -> dict:
        from pytest_reprex.state import state_of

        state = state_of(self.config)
        layers = [state.ini_layer, *self._layers]
        marker = self.get_closest_marker("reprex")
        if marker is not None:
            if marker.args:
                raise opts.OptionError("@pytest.mark.reprex takes keyword options only")
            layers.append(opts.layer(marker.kwargs, "@pytest.mark.reprex", Path(self.config.rootpath),
                                     keys=opts.OPTION_KEYS))
        layers.append(state.cli_layer)
        merged = opts.merge(*layers)
        if self._asked:  # the bundle's own asks, bounded by what the user's layers grant
            granted = opts.merge(*(lay for lay in layers if lay is not self._asked))
            merged.update({k: v for k, v in opts.bound_asks(self._asked, granted).items()
                           if merged.get(k) == self._asked.get(k)})  # unless a higher layer set it
        return merged

    def setup(self) -> None:
        from pytest_reprex.state import sandboxed_backend, state_of

        state = state_of(self.config)
        if self._load_error:
            pytest.fail(f"reprex {self.name}: {self._load_error}", pytrace=False)
        if self._ignored:
            self.warn(pytest.PytestWarning(
                f"reprex {self.name}: ignored {', '.join(self._ignored)} in the bundle's manifest field `pytest` "
                "(a bundle may not choose its own backend, network, image, GPUs or installs; set them in a "
                "sidecar file, the marker, the ini file or on the command line)"))
        try:
            merged, error = self._merged(), None
        except opts.OptionError as exc:
            merged, error = None, str(exc)
        if error is not None:
            pytest.fail(f"reprex {self.name}: {error}", pytrace=False)
        self.reprex_expect = merged["expect"]
        self.reprex_strict = merged["strict"]
        from reprex.bundle import Bundle, BundleError
        from reprex.replay import replay

        from pytest_reprex.report import inert, where

        try:  # data only: a malformed bundle is an error here, with or without Docker
            bundle, error = Bundle.read(self.bundle_path), None
        except (BundleError, OSError) as exc:
            bundle, error = None, str(exc)
        if error is not None:  # outside the except: the report shows one line, not a chain
            pytest.fail(inert(f"reprex {self.name}: {error}"), pytrace=False)
        from pytest_reprex.cluster import dispatch_of

        dispatch = dispatch_of(self.config)
        if dispatch is not None:  # --reprex-ray: a node replays it; this waits for its result
            result = dispatch.result_for(self, bundle)
        else:
            merged["backend"] = sandboxed_backend(state, merged["backend"], self.name)
            if merged["backend"] != "local":
                state.docker_bundles.add(bundle.id)
            result = interruptible(replay, bundle, opts.replay_options(merged, state.pass_env))
        self.reprex_result = result
        self.user_properties.append(("reprex_verdict", result.verdict))
        if result.verdict == "infra-error":
            pytest.fail(inert(f"reprex {self.name}: infra-error {where(result)}: {result.reason}"), pytrace=False)
        if result.verdict == "env-incompatible":
            if not self.reprex_strict:
                raise _skip_here(inert(f"reprex {self.name}: env-incompatible: {result.reason}"))

    def runtest(self) -> None:
        result = self.reprex_result
        if result is None or result.verdict == self.reprex_expect:
            return
        from pytest_reprex.report import failure_text

        raise ReprexMismatch(failure_text(result, self.reprex_expect, self.name, strict=self.reprex_strict))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ReprexMismatch):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)
