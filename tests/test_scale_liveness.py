"""The driver's view of which nodes are gone (reprex.scale.liveness): a node a task was told
died is dead at once, ahead of ray.nodes(); one the GCS keeps calling alive is trusted again."""

from __future__ import annotations

import pytest

from reprex.scale import liveness
from reprex.scale.needs import Needs, why_not

ONLY = {"NodeID": "a" * 56, "Alive": True, "Resources": {"CPU": 1.0, "reprex_docker": 1.0,
                                                           "reprex_arch_s390x": 1.0}}


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(liveness, "_dead", {})


def test_a_node_named_in_a_node_died_error_is_dead_before_the_gcs_says_so():
    err = RuntimeError("Task failed because the node it was running on is dead or unavailable. "
                       f"Node IP: 10.0.0.5, node ID: {ONLY['NodeID']}. This can happen if ...")
    needs = Needs(resources={"reprex_docker": 0.001, "reprex_arch_s390x": 0.001})
    assert why_not(needs, liveness.view([ONLY])) is None
    before = liveness.generation()
    liveness.mark_dead(liveness.node_in_error(err))
    assert liveness.generation() != before  # the driver looks at its other tasks now
    [seen] = liveness.view([ONLY])
    assert seen["Alive"] is False and ONLY["Alive"] is True  # ray.nodes()'s own dict untouched
    assert "reprex_arch_s390x" in why_not(needs, liveness.view([ONLY]))


def test_a_node_the_gcs_keeps_calling_alive_is_trusted_again(monkeypatch):
    liveness.mark_dead(ONLY["NodeID"])
    assert liveness.view([ONLY])[0]["Alive"] is False
    monkeypatch.setattr(liveness, "TRUST_GCS_S", -1.0)  # long past: the error was a blip
    assert liveness.view([ONLY])[0]["Alive"] is True
    monkeypatch.setattr(liveness, "TRUST_GCS_S", 90.0)
    assert liveness.view([ONLY])[0]["Alive"] is True  # forgotten, not dead again


def test_an_error_that_names_no_node_marks_nothing():
    before = liveness.generation()
    liveness.mark_dead(liveness.node_in_error(RuntimeError("worker crashed")))
    assert liveness.generation() == before and liveness.view([ONLY])[0]["Alive"] is True
