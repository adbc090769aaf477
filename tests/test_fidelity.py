"""Verdicts that don't lie on real-world failures (issue 11): each case of the corpus in
tests/fixtures/fidelity (a failure from a public issue tracker, pinned so that it depends
on the versions) is captured in its pinned env, then replayed on the local and the docker
backend: plain and --strict must read `reproduced`, a fixing --with `fixed`, a non-fixing
--with `reproduced`. benchmarks/fidelity.py prints the same checks as a table."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "fidelity"))
from cases import CASES, EXPECTED, capture, run_checks  # noqa: E402

IDS = [c.name for c in CASES]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, cache):
    root = tmp_path_factory.mktemp("fidelity")
    return {case.name: capture(case, root) for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_capture_signs_the_failure(bundles, case):
    sig = bundles[case.name].manifest["expect"]["signature"]
    assert tuple(sig["types"]) == case.types, sig
    assert sig["frames"][0] == case.top_frame, sig
    pins = bundles[case.name].text("requirements.txt").lower()
    assert all(pin in pins for pin in case.pins if not pin.startswith(("pytest", "pluggy", "iniconfig"))), pins
    if case.host_env:
        assert "ray==" in pins, pins


def _assert_rows(case, rows):
    wrong = [(check, expected, got, detail) for check, expected, got, detail in rows if got != expected]
    assert not wrong, f"{case.name} ({case.issue}): {wrong}"
    assert [check for check, *_ in rows] == list(EXPECTED)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_local_verdicts(bundles, case):
    _assert_rows(case, run_checks(case, bundles[case.name], "local"))


@pytest.mark.docker
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_docker_verdicts(bundles, case, base_image):
    _assert_rows(case, run_checks(case, bundles[case.name], "docker", image=base_image))
