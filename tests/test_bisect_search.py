"""The bisect search algorithms (reprex.bisect.search, pindiff): pure, judged by a made-up oracle.

The oracle here is a function of the candidate (a release index, a set of pins) so every
boundary, skip pattern and job count can be swept; the real oracle (replay) is exercised
end to end in test_bisect_modes.py and test_bisect_e2e.py.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
import threading
import time

import pytest

from reprex.bisect.dates import Unresolvable, first_bad_date, loosen, stamp
from reprex.bisect.pindiff import apply, changed, ddmin, describe, minimal_change
from reprex.bisect.search import BAD, GOOD, SKIP, BisectError, first_bad, search


def oracle(first: int, skips=(), calls=None):
    """Releases 0..n-1: bad from `first` on, `skips` can't be judged."""
    def test(i):
        if calls is not None:
            calls.append(i)
        if i in skips:
            return SKIP, f"no cp311 wheel for {i}"
        return (BAD, "same signature") if i >= first else (GOOD, "fixed")
    return test


def bound(n_in_range: int) -> int:
    return math.ceil(math.log2(n_in_range)) + 2


@pytest.mark.parametrize("n", [2, 3, 5, 8, 13, 33, 100])
def test_known_ends_find_every_boundary_within_log2_plus_2(n):
    for first in range(1, n):
        found = first_bad(list(range(n)), oracle(first), good=0)
        assert (found.first_bad, found.last_good) == (first, first - 1)
        assert found.probes <= bound(n), (n, first, [s.label for s in found.steps])
        assert not found.skipped and not found.ambiguous


def test_the_real_cases_fit_log2_plus_2():
    """tests/bisect_cases.py's regressions, judged by their changelogs' first bad release, within
    ceil(log2(releases from the oldest probed to the bad pin)) + 2 probes (benchmarks/bisection.py's
    measure, where the replay of the bundle itself stands for the bad end's probe)."""
    from packaging.version import Version

    from bisect_cases import CASES

    for case in CASES:
        listed = [v for v in case.releases if v not in case.yanked and v not in case.no_cp311]
        first = Version(case.expected_first_bad)
        good = listed.index(case.good) if case.good else None
        calls = []

        def test(v):
            calls.append(listed.index(v))
            return (BAD, "") if Version(v) >= first else (GOOD, "")
        found = first_bad(listed, test, good=good)
        assert found.first_bad == case.expected_first_bad, case.name
        assert found.probes <= bound(len(listed) - min(calls)), (case.name, [s.label for s in found.steps])


def test_baselines_are_probed_first_and_every_probe_is_a_step():
    calls = []
    found = first_bad(list(range(10)), oracle(6, calls=calls), good=2)
    assert calls[:2] == [9, 2]
    assert [s.label for s in found.steps] == [str(c) for c in calls]
    assert [s.verdict for s in found.steps[:2]] == [BAD, GOOD]
    assert all(s.seconds >= 0 for s in found.steps)


def test_unknown_good_splits_the_listed_range_and_leaves_the_oldest_alone():
    calls = []
    found = first_bad(list(range(40)), oracle(20, calls=calls))
    assert calls[:2] == [39, 19]  # the bad end, then the middle of the 39 below it
    assert 0 not in calls
    assert (found.first_bad, found.last_good) == (20, 19)
    assert found.probes == len(set(calls)) <= bound(39 - min(calls) + 1)


def test_every_break_keeps_the_budget_with_good_unknown():
    """ceil(log2(releases from the oldest probed to the bad one)) + 2: benchmarks/bisection.py's
    measure of the issue's budget, at every position of the break in lists of 2 to 80."""
    for n in range(2, 81):
        for first in range(1, n):
            calls = []
            found = first_bad(list(range(n)), oracle(first, calls=calls))
            assert (found.first_bad, found.last_good) == (first, first - 1)
            assert found.probes <= bound(n - min(calls)), (n, first, calls)


def test_everything_bad_down_to_the_oldest_is_no_good_release():
    calls = []
    found = first_bad(list(range(9)), lambda i: (calls.append(i), (BAD, "same signature"))[1])
    assert found.first_bad is None and 0 in calls
    assert found.reason == "no good candidate: every one tried from 0 to 8 judged bad or was skipped"


def test_a_skipped_good_end_steps_back_1_2_4_and_skips_ask_their_neighbour():
    calls = []
    found = first_bad(list(range(40)), oracle(5, skips={30, 29, 28}, calls=calls), good=30)
    # 30 can't be judged: back from it 1 (29: skipped, so 28, skipped, so 27), 2 (covered), 4, 8, 16...
    assert calls[:9] == [39, 30, 29, 28, 27, 26, 22, 14, 0]
    assert (found.first_bad, found.last_good) == (5, 4)
    assert [item for item, _ in found.skipped] == [28, 29, 30]
    assert found.skipped[0][1] == "no cp311 wheel for 28"


def test_skips_are_never_blamed_and_an_unresolved_boundary_is_named():
    # 4 and 5 can't be judged; the failure starts at 5: the boundary is somewhere in 4, 5, 6
    found = first_bad(list(range(10)), oracle(5, skips={4, 5}), good=0)
    assert found.first_bad == 6 and found.last_good == 3
    assert found.ambiguous == [4, 5, 6]
    assert {item for item, _ in found.skipped} == {4, 5}


def test_a_skip_away_from_the_boundary_leaves_no_ambiguity():
    found = first_bad(list(range(16)), oracle(11, skips={7, 8}), good=0)
    assert (found.first_bad, found.last_good, found.ambiguous) == (11, 10, [])


@pytest.mark.parametrize("verdict_at_bad,why", [(GOOD, "the bad end 9 judged good (fixed)"),
                                               (SKIP, "the bad end 9 judged skip (no cp311 wheel for 9)")])
def test_a_bad_end_that_is_not_bad_ends_the_search_with_the_reason(verdict_at_bad, why):
    test = oracle(10, skips={9} if verdict_at_bad == SKIP else ())
    found = first_bad(list(range(10)), test)
    assert found.first_bad is None and found.last_good is None
    assert found.reason == why and found.probes == 1


def test_a_good_end_that_is_bad_is_said():
    found = first_bad(list(range(10)), oracle(2), good=3)
    assert found.first_bad is None and found.reason == "the good end 3 judged bad"


def test_no_good_release_at_all():
    found = first_bad(["1.0", "1.1", "1.2", "2.0"], lambda v: (BAD, ""), label=lambda v: f"v{v}")
    assert found.first_bad is None
    assert found.reason == "no good candidate: every one tried from v1.0 to v2.0 judged bad or was skipped"


def test_a_long_run_of_skips_is_jumped_not_crept_through():
    # 81 releases in a row can't be judged (no wheel, say); the break is well past them
    skips = set(range(60, 141))
    found = first_bad(list(range(200)), oracle(170, skips), good=0)
    assert (found.first_bad, found.last_good, found.ambiguous) == (170, 169, [])
    assert found.probes <= bound(200) + 3, [s.label for s in found.steps]
    # inside the run, the boundary can only be narrowed to the run's end: all named, none blamed
    found = first_bad(list(range(200)), oracle(100, skips), good=0)
    assert found.first_bad == 141 and found.last_good == 59 and found.ambiguous == [*range(60, 141), 141]


def test_bad_input_is_a_one_line_error():
    with pytest.raises(BisectError, match="older than the bad"):
        first_bad([1, 2, 3], oracle(1), good=2, bad=1)
    with pytest.raises(BisectError, match="outside the 3"):
        first_bad([1, 2, 3], oracle(1), bad=5)
    assert first_bad([], oracle(0)).reason == "no candidates to bisect"
    with pytest.raises(ValueError, match="'maybe'"):
        first_bad([1, 2], lambda i: ("maybe", ""))


def test_an_oracle_error_propagates():
    def test(i):
        if i not in (0, 7):  # the baselines pass, the first split's probes fail
            raise RuntimeError("docker went away")
        return oracle(5)(i)
    with pytest.raises(RuntimeError, match="docker went away"):
        first_bad(list(range(8)), test, good=0, jobs=3)


def test_sweep_every_boundary_skip_pattern_and_job_count():
    """The answer is right (or the true boundary is among `ambiguous`), never a skipped one,
    for every boundary, good given or not, jobs 1-4 and random skips."""
    rng = random.Random(14)
    for n, first, jobs, known_good in itertools.product(range(2, 18), range(1, 17), (1, 2, 3, 4), (True, False)):
        if first >= n:
            continue
        skips = set(rng.sample(range(n - 1), k=rng.randint(0, (n - 1) // 3))) - {0}
        found = first_bad(list(range(n)), oracle(first, skips), good=0 if known_good else None, jobs=jobs)
        blamed = {item for item, _ in found.skipped}
        assert found.first_bad not in blamed
        if found.first_bad is None:  # only when skips hid every good one
            assert not known_good and all(i in skips or i >= first for i in range(n)), found.reason
            continue
        if found.ambiguous:
            assert first in found.ambiguous and found.first_bad == found.ambiguous[-1]
            assert all(i in blamed for i in found.ambiguous[:-1])
        else:
            assert found.first_bad == first and found.last_good == first - 1
        assert len({s.label for s in found.steps}) == found.probes  # nothing probed twice


def test_parallel_rounds_probe_several_at_once_and_need_fewer_rounds():
    lock = threading.Lock()
    running = {"now": 0, "most": 0, "rounds": 0}

    def test(i):
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        time.sleep(0.05)
        with lock:
            running["now"] -= 1
        return oracle(37)(i)

    start = time.monotonic()
    found = first_bad(list(range(64)), test, good=0, jobs=4)
    parallel_wall = time.monotonic() - start
    assert (found.first_bad, found.last_good) == (37, 36)
    assert running["most"] == 4
    serial = first_bad(list(range(64)), oracle(37), good=0, jobs=1)
    # 4-ary: ~log5(62) rounds after the baselines, against ~log2(62) serial probes
    assert parallel_wall < 0.05 * serial.probes * 0.75, (parallel_wall, serial.probes)


def test_search_skips_what_is_already_known():
    asked = []

    def judge(indices):
        asked.extend(indices)
        return [BAD if i >= 30 else GOOD for i in indices]
    bounds = search(judge, bad=40, good=0, known={40: BAD, 0: GOOD, 20: GOOD})
    assert (bounds.lo, bounds.hi) == (29, 30)
    assert not {0, 20, 40} & set(asked)
    assert min(asked) > 20


# -- pindiff ------------------------------------------------------------------------------------

GOOD_PINS = {"pandas": "1.5.3", "numpy": "1.23.5", "six": "1.16.0", "pytz": "2022.7", "tzdata": "2022.7"}
BAD_PINS = {"pandas": "2.0.0", "numpy": "1.24.2", "pytz": "2023.3", "tzdata": "2023.3", "python-dateutil": "2.8.2"}


def pin_oracle(culprit_sets, skip_when=None, log=None):
    """BAD when every package of one of `culprit_sets` has its bad pin; SKIP when `skip_when` says."""
    def test(pins):
        if log is not None:
            log.append(dict(pins))
        if skip_when and skip_when(pins):
            return SKIP, "no resolution"
        hit = any(all(pins.get(n) == BAD_PINS.get(n) and (n in pins) == (n in BAD_PINS) for n in s)
                  for s in culprit_sets)
        return (BAD, "same signature") if hit else (GOOD, "fixed")
    return test


def test_changed_apply_describe():
    assert changed(GOOD_PINS, BAD_PINS) == ["numpy", "pandas", "python-dateutil", "pytz", "six", "tzdata"]
    mixed = apply(GOOD_PINS, BAD_PINS, ["pandas", "six", "python-dateutil"])
    assert mixed == {"numpy": "1.23.5", "pandas": "2.0.0", "python-dateutil": "2.8.2", "pytz": "2022.7",
                     "tzdata": "2022.7"}
    assert describe(GOOD_PINS, BAD_PINS, ["six", "pandas"]) == "good + pandas 2.0.0, -six"
    assert describe(GOOD_PINS, BAD_PINS, []) == "good pins"


@pytest.mark.parametrize("jobs", [1, 3])
@pytest.mark.parametrize("culprits", [["pandas"], ["numpy"], ["python-dateutil"], ["six"], ["numpy", "pandas"],
                                      ["pytz", "tzdata", "six"]])
def test_minimal_change_finds_the_culprits(culprits, jobs):
    log = []
    names, steps = minimal_change(GOOD_PINS, BAD_PINS, pin_oracle([culprits], log=log), jobs=jobs)
    assert names == sorted(culprits)
    assert log[0] == GOOD_PINS and log[1] == dict(sorted(BAD_PINS.items()))  # baselines first
    assert [s.label for s in steps[:2]] == ["good pins", "bad pins"]
    assert len(steps) == len(log) == len({tuple(sorted(p.items())) for p in log})  # nothing probed twice


def test_minimal_change_goes_around_unresolvable_mixes():
    # pandas 2 can't be installed with the old numpy: those mixes are SKIPs, never the answer
    def no_resolution(pins):
        return pins.get("pandas") == "2.0.0" and pins.get("numpy") == "1.23.5"
    names, steps = minimal_change(GOOD_PINS, BAD_PINS, pin_oracle([["pandas", "numpy"]], no_resolution))
    assert names == ["numpy", "pandas"]
    assert any(s.verdict == SKIP for s in steps)


def test_minimal_change_baselines_must_hold():
    with pytest.raises(BisectError, match="the good pins judged bad, not good: same signature"):
        minimal_change(GOOD_PINS, BAD_PINS, lambda pins: (BAD, "same signature"))
    with pytest.raises(BisectError, match="the bad pins judged skip, not bad: no resolution"):
        minimal_change(GOOD_PINS, BAD_PINS, lambda pins: (GOOD, "") if pins == GOOD_PINS else (SKIP, "no resolution"))
    with pytest.raises(BisectError, match="same versions"):
        minimal_change(GOOD_PINS, dict(GOOD_PINS), pin_oracle([["pandas"]]))


def test_ddmin_is_one_minimal_on_many_changes():
    names = [f"p{i:02d}" for i in range(40)]
    for culprit in ({"p07"}, {"p03", "p31"}, {"p10", "p11", "p39"}):
        asked = []

        def judge(subsets):
            asked.extend(subsets)
            return [BAD if culprit <= s else GOOD for s in subsets]
        assert ddmin(names, judge) == culprit
        distinct = len(set(asked))  # minimal_change memoizes: a repeated subset is not probed again
        if len(culprit) == 1:
            assert distinct <= math.ceil(math.log2(40)) + 1, distinct  # a binary search, in effect
        assert distinct < len(names), distinct  # fewer than trying one name at a time (which misses pairs)


# -- dates (the resolver made up here; the real one, uv --exclude-newer, in test_bisect_modes.py) --

UTC = dt.timezone.utc
UPLOADS = {  # package -> [(version, upload time)], as an index lists them
    "lib": [("1.0", "2023-01-05T12:00"), ("1.1", "2023-02-10T08:00"), ("2.0", "2023-03-15T12:00"),
            ("2.1", "2023-05-01T09:00")],
    "dep": [("1.0", "2022-12-01T12:00"), ("1.1", "2023-03-15T15:00"), ("1.2", "2023-04-20T10:00")],
}


def timeline_resolve(calls=None):
    def resolve(reqs, when, *, python, platform):
        if calls is not None:
            calls.append(when)
        pins = {}
        for name in reqs:
            seen = [v for v, t in UPLOADS[name] if dt.datetime.fromisoformat(t).replace(tzinfo=UTC) <= when]
            if not seen:
                raise Unresolvable(f"no release of {name} as of {when:%Y-%m-%d}")
            pins[name] = seen[-1]
        return pins
    return resolve


def lib2_is_bad(pins):
    return (BAD, "same signature") if pins["lib"].startswith("2.") else (GOOD, "fixed")


@pytest.mark.parametrize("jobs", [1, 3])
def test_first_bad_date_finds_the_upload_day_and_its_neighbouring_resolutions(jobs):
    probed = []

    def test(pins):
        probed.append(dict(pins))
        return lib2_is_bad(pins)
    found = first_bad_date(["lib==2.1", "dep==1.2"], test, start=dt.datetime(2023, 6, 1, 10, 0, tzinfo=UTC),
                           python="3.11", resolve=timeline_resolve(), jobs=jobs)
    last_good, first_bad_day, good_pins, bad_pins, steps = found
    assert (last_good.date(), first_bad_day.date()) == (dt.date(2023, 3, 14), dt.date(2023, 3, 15))
    assert good_pins == {"lib": "1.1", "dep": "1.0"} and bad_pins == {"lib": "2.0", "dep": "1.1"}
    assert found.reason == ""
    # a probe per distinct environment: days that resolve alike are not judged again (a day with
    # no resolution is a step, a SKIP, but nothing is probed)
    judged = [s for s in steps if not s.reason.startswith("no release of")]
    assert len(probed) == len(judged) == len({tuple(sorted(p.items())) for p in probed})
    assert len(steps) <= 6, [s.label for s in steps]
    assert steps[0].label == "as of 2023-06-01" and steps[0].verdict == BAD


def test_first_bad_date_steps_back_by_weeks_and_skips_days_without_a_resolution():
    calls = []
    found = first_bad_date(["lib"], lib2_is_bad, start=dt.datetime(2023, 5, 10, 6, 0, tzinfo=UTC), python="3.11",
                           resolve=timeline_resolve(calls))
    assert [c.date().isoformat() for c in calls[:6]] == ["2023-05-10", "2023-05-03", "2023-04-26", "2023-04-12",
                                                         "2023-03-15", "2023-01-18"]  # back 1, 2, 4, 8, 16 weeks
    assert calls[0] == dt.datetime(2023, 5, 10, 6, 0, tzinfo=UTC)  # the start itself: nothing after it counts
    assert calls[1] == dt.datetime(2023, 5, 3, 23, 59, 59, tzinfo=UTC)  # other days: their last second
    assert found.first_bad_day.date() == dt.date(2023, 3, 15) and found.bad_pins == {"lib": "2.0"}

    # every day back to before lib existed is bad or unresolvable: no good day, said why
    found = first_bad_date(["lib"], lambda pins: (BAD, "same"), start=dt.datetime(2023, 3, 20, tzinfo=UTC),
                           python="3.11", resolve=timeline_resolve(), max_weeks=20)
    assert found.last_good_day is None and found.good_pins == {}
    assert found.reason == "no day back to 2022-10-31 (20 weeks) resolves to pins that pass"
    assert any(s.verdict == SKIP and "no release of lib" in s.reason for s in found.steps)

    # the oldest day within the limit still resolves (and fails): the limit ended it, and the line says
    # where to start to look further back
    found = first_bad_date(["lib"], lambda pins: (BAD, "same"), start=dt.datetime(2023, 5, 10, tzinfo=UTC),
                           python="3.11", resolve=timeline_resolve(), max_weeks=2)
    assert found.last_good_day is None
    assert found.reason == ("no day back to 2023-04-26 (2 weeks, the limit) resolves to pins that pass; "
                            "to search further back, try --start 2023-04-26")


def test_first_bad_date_does_not_walk_day_by_day_through_days_without_a_resolution():
    calls = []
    found = first_bad_date(["lib"], lambda pins: (BAD, "same"), start=dt.datetime(2023, 3, 20, tzinfo=UTC),
                           python="3.11", resolve=timeline_resolve(calls))
    assert found.last_good_day is None
    assert len(calls) <= 12, [c.date().isoformat() for c in calls]  # 1, 3, 7... weeks back, then the oldest day


def test_first_bad_date_start_must_be_bad():
    found = first_bad_date(["lib"], lambda pins: (GOOD, "ran to completion"),
                           start=dt.datetime(2023, 6, 1, tzinfo=UTC), python="3.11", resolve=timeline_resolve())
    assert found.first_bad_day is None
    assert found.reason == "the resolution as of 2023-06-01 judged good (ran to completion): nothing to bisect"
    assert len(found.steps) == 1


def test_loosen_drops_exact_pins_and_refuses_what_has_no_upload_date():
    assert loosen(["pandas[sql]==2.0.0", "# comment", "", "Jinja2==2.11.3  # via flask", "numpy>=1.20"]) == \
        ["pandas[sql]", "Jinja2", "numpy>=1.20"]
    for line in ["foo @ https://example.com/foo.whl", "--index-url http://x", "foo==${VERSION}", "foo==1; \x1b"]:
        with pytest.raises(BisectError, match="as of a date"):
            loosen([line])
    with pytest.raises(BisectError, match="no top-level requirements"):
        loosen(["# nothing"])
    assert stamp(dt.datetime(2023, 3, 15, 23, 59, 59)) == "2023-03-15T23:59:59Z"
    assert stamp(dt.datetime(2023, 3, 16, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == "2023-03-15T23:00:00Z"
