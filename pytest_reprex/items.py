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


if hasattr(pytest, "Directory"):  # pytest >= 8
    class ReprexDir(_BundleCollector, pytest.Directory):
        """A directory bundle (it holds `reprex.json`); nothing inside it is collected."""


def _skip_here(reason: str):
    """Skip, reported at the bundle's path rather than this module's."""
    try:
        return pytest.skip.Exception(reason, _use_item_location=True)
    except TypeError:  # pytest without the private flag
        return pytest.skip.Exception(reason)


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
        base = Path(self.config.rootpath)
        try:
            field = opts.read_manifest_field(bundle_path)
            if field:
                # only what can't weaken isolation (see opts.MANIFEST_KEYS): the bundle may come from anyone
                lay, self._ignored = opts.manifest_layer(field, f"{bundle_path.name}: manifest field `pytest`", base)
                self._layers.append(lay)
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
        from pytest_reprex.plugin import state_of

        state = state_of(self.config)
        layers = [state.ini_layer, *self._layers]
        marker = self.get_closest_marker("reprex")
        if marker is not None:
            if marker.args:
                raise opts.OptionError("@pytest.mark.reprex takes keyword options only")
            layers.append(opts.layer(marker.kwargs, "@pytest.mark.reprex", Path(self.config.rootpath),
                                     keys=opts.OPTION_KEYS))
        layers.append(state.cli_layer)
        return opts.merge(*layers)

    def setup(self) -> None:
        from pytest_reprex.plugin import docker_status, state_of

        state = state_of(self.config)
        if self._load_error:
            pytest.fail(f"reprex {self.name}: {self._load_error}", pytrace=False)
        if self._ignored:
            self.warn(pytest.PytestWarning(
                f"reprex {self.name}: ignored {', '.join(self._ignored)} in the bundle's manifest field `pytest` "
                "(a bundle may not choose its own backend, network, image, GPUs or installs; set them in a "
                "sidecar file, the marker, the ini file or on the command line)"))
        try:
            merged = self._merged()
        except opts.OptionError as exc:
            pytest.fail(f"reprex {self.name}: {exc}", pytrace=False)
        self.reprex_expect = merged["expect"]
        self.reprex_strict = merged["strict"]
        if merged["backend"] == "docker":
            ok, why = docker_status(state)
            if not ok:
                message = f"reprex {self.name}: the docker backend was asked for, but Docker is unreachable: {why}"
                if opts.in_ci():
                    pytest.fail(message + " (CI=true: failing instead of skipping)", pytrace=False)
                raise _skip_here(message)
        from reprex.bundle import Bundle, BundleError
        from reprex.replay import replay

        try:
            bundle = Bundle.read(self.bundle_path)
        except BundleError as exc:
            pytest.fail(f"reprex {self.name}: {exc}", pytrace=False)
        if merged["backend"] != "local":
            state.docker_bundles.add(bundle.id)
        result = replay(bundle, opts.replay_options(merged, state.pass_env))
        self.reprex_result = result
        self.user_properties.append(("reprex_verdict", result.verdict))
        from pytest_reprex.report import where

        if result.verdict == "infra-error":
            pytest.fail(f"reprex {self.name}: infra-error {where(result)}: {result.reason}", pytrace=False)
        if result.verdict == "env-incompatible":
            if opts.in_ci() and merged["backend"] == "auto" and result.backend in (None, "local"):
                ok, why = docker_status(state)
                if not ok:
                    pytest.fail(f"reprex {self.name}: can't replay without Docker ({result.reason}), and CI=true "
                                f"but Docker is unreachable: {why}", pytrace=False)
            if not self.reprex_strict:
                raise _skip_here(f"reprex {self.name}: env-incompatible: {result.reason}")

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
