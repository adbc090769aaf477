"""`reprex bisect --package` end to end on real regressions (tests/bisect_cases.py): a bundle made
by a real `reprex capture` under the bad pins, then the CLI against a loopback index of PyPI's
own files, every probe a real replay (local venvs; docker for four cases).

What must hold on every case: the first bad release is the changelog's (or, without --yanked,
the first non-yanked one after it), the last good is right, each probe's verdict agrees with
the release (bad from the first bad on, good before it), releases that can't be probed here
(yanked, no cp311 wheel) are reported and never blamed, the probe count stays within
ceil(log2(releases in range)) + 2 (+ skips), and the bundle written carries a `bisect` section
that `render` shows.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from bisect_cases import (BY_NAME, CASES, Case, bisect_argv, capture_case, changelog_links, oldest_good,
                          probe_budget, release_steps, serve)
from bisect_index import FileCache, IndexServer, cache_dir

from reprex.bundle import Bundle

PY = sys.executable


@pytest.fixture(scope="module")
def bisect_index():
    """This module's own loopback index (other modules' releases must not change its ranges)."""
    index = IndexServer(FileCache(cache_dir())).start()
    yield index
    index.stop()


@pytest.fixture(scope="module")
def bundles(bisect_index, cache, tmp_path_factory):
    """Each case's bundle, captured once for the module."""
    made = {}

    def get(name: str):
        if name not in made:
            made[name] = capture_case(bisect_index, BY_NAME[name], tmp_path_factory.mktemp(name))
        return made[name]

    return get


def bisect(index, bundle, case: Case, out, *extra: str) -> dict:
    proc = subprocess.run(bisect_argv(case, bundle, out, *extra), capture_output=True, text=True, timeout=900,
                          env=index.environ())
    assert proc.stdout.strip(), f"exit {proc.returncode}, no JSON; stderr:\n{proc.stderr[-2000:]}"
    data = json.loads(proc.stdout)
    data["_exit"], data["_stderr"] = proc.returncode, proc.stderr
    return data


def check_finding(data: dict, case: Case, *, first_bad: str, out, index: IndexServer) -> None:
    assert data["_exit"] == 0, data["_stderr"][-2000:]
    assert data["found"] is True
    (finding,) = data["findings"]
    assert (finding["package"], finding["first_bad"], finding["last_good"]) == \
        (case.package, first_bad, case.last_good), data["summary"]
    # each probe judged as the release really behaves (the changelog's boundary)
    order = list(case.releases)
    for version, verdict in release_steps(data, case):
        truth = "bad" if order.index(version) >= order.index(case.first_bad) else "good"
        assert verdict == truth, f"{case.package} {version} judged {verdict}: {data['summary']}"
    # never blamed, always reported
    assert finding["first_bad"] not in case.skipped
    reported = {s["version"] for s in finding["skipped"]}
    missing = [v for v in case.skipped if v not in reported]
    assert not missing, f"releases that can't be probed here went unreported: {missing}; {data['summary']}"
    # ...and where they sit between the last good and the first bad, the answer says it is not sure
    between = [v for v in case.skipped if order.index(case.last_good) < order.index(v) < order.index(first_bad)]
    assert set(between) <= set(finding["ambiguous"]), (between, finding["ambiguous"])
    # the release notes of the first bad release, where its metadata names them
    links = changelog_links(index, case.package, first_bad)
    if links:
        assert finding["changelog"] in links, (finding["changelog"], links)
    # the result travels with the bundle and shows in the issue body
    written = Bundle.read(out)
    assert written.manifest["bisect"]["findings"][0]["first_bad"] == first_bad
    body = subprocess.run([PY, "-m", "reprex", "render", str(out), "--venue", "gh"], capture_output=True,
                          text=True, timeout=120)
    assert body.returncode == 0 and f"first bad: {case.package} {first_bad}" in body.stdout, body.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_first_bad_release_local(case, bundles, bisect_index, tmp_path):
    """No --good (except coverage's, whose range must hold releases without a cp311 wheel):
    reprex steps back from the bundle's pin by itself."""
    out = tmp_path / "out.reprex.zip"
    data = bisect(bisect_index, bundles(case.name), case, out, "--backend", "local")
    check_finding(data, case, first_bad=case.expected_first_bad, out=out, index=bisect_index)
    assert f"/simple/{case.package}/" in bisect_index.requests  # the releases came from the loopback index


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_probes_within_log2_bound(case, bundles, bisect_index, tmp_path):
    """The issue's bound, with the range given (--good the oldest release served): replays (the
    bundle's own included) <= ceil(log2(releases in range)) + 2, plus probes that had to be skipped."""
    good = oldest_good(case)
    data = bisect(bisect_index, bundles(case.name), case, tmp_path / "out.reprex.zip", "--backend", "local",
                  "--good", good)
    assert data["_exit"] == 0, data["_stderr"][-2000:]
    assert data["findings"][0]["first_bad"] == case.expected_first_bad, data["summary"]
    used, bound, n = probe_budget(data, case, good)
    assert used <= bound, f"{used} replays for {n} releases (bound {bound}): {data['summary']}"


def test_yanked_releases_are_probed_when_asked(bundles, bisect_index, tmp_path):
    """--yanked: urllib3 2.0.0, yanked on PyPI, is the changelog's first bad and is named."""
    case = BY_NAME["urllib3-method-whitelist"]
    data = bisect(bisect_index, bundles(case.name), case, tmp_path / "out.reprex.zip", "--backend", "local",
                  "--yanked")
    assert data["_exit"] == 0, data["_stderr"][-2000:]
    (finding,) = data["findings"]
    assert (finding["first_bad"], finding["last_good"]) == ("2.0.0", "1.26.18"), data["summary"]


def test_a_release_that_cannot_be_installed_is_skipped_never_blamed(bundles, tmp_path):
    """An index with packaging 21.2 but no pyparsing < 3 (which 21.2 requires): the probe of 21.2
    can't resolve, so it is skipped with the resolver's reason, and the answer is 22.0 with 21.2
    named as a release that could not be judged."""
    case = BY_NAME["packaging-legacy-version"]
    bundle = bundles(case.name)
    index = IndexServer(FileCache(cache_dir())).start()
    try:
        index.add("packaging", ["21.0", "21.2", "22.0", "23.1"])
        index.add("pyparsing", ["3.0.9"])
        data = bisect(index, bundle, case, tmp_path / "out.reprex.zip", "--backend", "local", "--good", "21.0")
    finally:
        index.stop()
    assert data["_exit"] == 0, data["_stderr"][-2000:]
    (finding,) = data["findings"]
    assert (finding["first_bad"], finding["last_good"]) == ("22.0", "21.0"), data["summary"]
    skipped = {s["version"]: s["reason"] for s in finding["skipped"]}
    assert list(skipped) == ["21.2"] and "resolv" in skipped["21.2"], skipped
    assert "21.2" in finding["ambiguous"]
    assert ("21.2", "skip") in release_steps(data, case)


def test_an_html_only_index_gives_the_same_answer(bundles, tmp_path):
    """PEP 503 HTML alone (no JSON API, as many mirrors serve): yanked releases are still known by
    data-yanked, and urllib3's answer is the same."""
    case = BY_NAME["urllib3-method-whitelist"]
    bundle = bundles(case.name)
    index = IndexServer(FileCache(cache_dir()), json_api=False).start()
    try:
        serve(index, case)
        out = tmp_path / "out.reprex.zip"
        data = bisect(index, bundle, case, out, "--backend", "local")
        check_finding(data, case, first_bad=case.expected_first_bad, out=out, index=index)
    finally:
        index.stop()


def test_runs_measure_a_steady_failure_and_spend_one_run_per_probe(bundles, bisect_index, tmp_path):
    """--runs 3: the bundle itself is replayed 3 times first; a failure that reproduces every time
    needs no repeats, so each probe is one run (said in the JSON)."""
    case = BY_NAME["itsdangerous-jws"]
    out = tmp_path / "out.reprex.zip"
    data = bisect(bisect_index, bundles(case.name), case, out, "--backend", "local", "--runs", "3")
    check_finding(data, case, first_bad=case.expected_first_bad, out=out, index=bisect_index)
    assert (data["reproduction_rate"], data["runs_per_probe"]) == (1.0, 1)
    own, *probes = data["steps"]
    assert (own["runs"], own["reproduced_runs"]) == (3, 3)
    assert probes and all(s["runs"] == 1 for s in probes)


def test_parallel_probes_find_the_same_release(bundles, bisect_index, tmp_path):
    """--jobs 2 (speculative k-ary splits: probes replayed two at a time) on the widest range: the
    same answer, every probe judged as its release behaves, the section written as in a serial run."""
    case = BY_NAME["importlib-metadata-entry-points-get"]
    out = tmp_path / "out.reprex.zip"
    data = bisect(bisect_index, bundles(case.name), case, out, "--backend", "local", "--jobs", "2")
    check_finding(data, case, first_bad=case.first_bad, out=out, index=bisect_index)


@pytest.mark.docker
@pytest.mark.parametrize("name", ["packaging-legacy-version", "itsdangerous-jws", "werkzeug-safe-str-cmp",
                                  "click-get-terminal-size"])
def test_first_bad_release_docker(name, bundles, bisect_index, base_image, tmp_path):
    """The same search with each probe replayed in a container (packaging's probes below 22
    must add pyparsing to the image's environment)."""
    case = BY_NAME[name]
    data = bisect(bisect_index, bundles(case.name), case, tmp_path / "out.reprex.zip", "--backend", "docker",
                  "--image", base_image)
    check_finding(data, case, first_bad=case.expected_first_bad, out=tmp_path / "out.reprex.zip",
                  index=bisect_index)
    assert data["backend"] == "docker"
