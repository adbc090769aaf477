"""The three ways `reprex bisect` searches, over one oracle: a package's releases, a good lock's
changed pins (then the culprit's releases), and dates (then as with a good lock).

Each fills a BisectResult; what a probe is (oracle.py, probe.py) and how the search walks
(search.py, pindiff.py, dates.py) live apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from reprex.bisect import BisectOptions, BisectResult, Finding
from reprex.bisect.oracle import Oracle
from reprex.pins import canonical


def make_oracle(bundle, options: BisectOptions, progress: Callable[[str], None]) -> Oracle:
    from reprex.replay import ReplayOptions

    replay_options = ReplayOptions(backend=options.backend, image=options.image, timeout=options.timeout,
                                   strict=options.strict, network="none", gpus=None)
    environ = None
    if options.index_url:
        from reprex.bisect.index import index_environ

        environ = index_environ(options.index_url)  # for the resolvers and replays started, never set here
    oracle = Oracle(bundle, replay_options, progress, ray=options.ray, environ=environ)
    if (options.jobs > 1 or environ is not None) and options.ray is None:
        from reprex.bisect.runners import Runners

        oracle.runners = Runners(environ)  # parallel probes in processes a Ctrl-C can stop
    return oracle


def _version(text: str | None, what: str):
    from packaging.version import InvalidVersion, Version

    from reprex.bisect.search import BisectError

    if text is None:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        raise BisectError(f"{what} {text!r} is not a version") from None


def _index_of(versions: list[str], wanted, name: str, listing, what: str) -> int:
    from packaging.version import Version

    from reprex.bisect.search import BisectError

    for i, v in enumerate(versions):
        if Version(v) == wanted:
            return i
    why = next((r for v, r in listing.excluded if Version(v) == wanted), None)
    if why:
        raise BisectError(f"the {what} release {name} {wanted} can't be probed here: {why}")
    raise BisectError(f"{name} {wanted} (the {what} end) is not on the index ({listing.index or 'none configured'})")


@dataclass
class ReleasePlan:
    """What a release search will walk: checked before any replay, so bad input costs none."""

    name: str
    listing: object  # releases.Listing
    bad: str
    good: str | None
    bad_i: int
    good_i: int | None


def plan_releases(oracle: Oracle, name: str, *, good: str | None, bad: str | None, options: BisectOptions,
                  progress: Callable[[str], None], until=None) -> ReleasePlan:
    """The releases of `name` up to the bad one (default: the bundle's pin), and where --good sits.
    `until` (a date search's first bad day, a datetime): releases first uploaded after it are left
    out (the ends kept), as a maintenance release of the old line uploaded years later is not one
    the break came between."""
    from reprex.bisect.index import configured_index
    from reprex.bisect.probe import exact_pins
    from reprex.bisect.releases import list_releases
    from reprex.bisect.search import BisectError

    name = canonical(name)
    bad = bad or exact_pins(oracle.lines).get(name)
    if not bad:
        raise BisectError(f"{name} is not pinned in the bundle; name the failing release with --bad V")
    bad_v, good_v = _version(bad, "--bad"), _version(good, "--good")
    if good_v is not None and good_v >= bad_v:
        raise BisectError(f"--good {good} must be older than the bad release {bad}")
    progress(f"listing the releases of {name} from {configured_index(index_url=options.index_url).shown()}")
    listing = list_releases(name, python=oracle.target.python, machine=oracle.target.machine, pre=options.pre,
                            yanked=options.yanked, keep=tuple(v for v in (good, bad) if v),
                            index_url=options.index_url)
    if until is not None:
        _drop_later(listing, until, keep={str(v) for v in (bad_v, good_v) if v is not None})
    versions = listing.versions()
    bad_i = _index_of(versions, bad_v, name, listing, "bad")
    good_i = _index_of(versions, good_v, name, listing, "good") if good_v is not None else None
    return ReleasePlan(name=name, listing=listing, bad=bad, good=good, bad_i=bad_i, good_i=good_i)


def _drop_later(listing, until, keep: set[str]) -> None:
    """Move the listing's candidates first uploaded after `until` to its exclusions (LATER)."""
    from packaging.version import Version

    from reprex.bisect.dates import _parse_time
    from reprex.bisect.releases import LATER

    kept, later = [], []
    for release in listing.candidates:
        when = _parse_time(release.upload_time) if release.upload_time else None
        if when is not None and when > until and str(Version(release.version)) not in keep:
            later.append((release.version, LATER))
        else:
            kept.append(release)
    if later:
        listing.candidates = kept
        listing.excluded = sorted([*listing.excluded, *later], key=lambda item: Version(item[0]))


def search_releases(oracle: Oracle, plan: ReleasePlan, *, options: BisectOptions,
                    progress: Callable[[str], None], base: list[str] | None = None) -> Finding:
    """Where among the plan's releases the failure starts, probing each in the bundle's environment
    (or over `base`'s lines). A first bad is named only with its evidence: it and the last good
    were judged with the same other pins; when the resolver had to move another pin between them
    (the release needs another package's release, as pydantic 2.0 needs pydantic-core 2.0.1), the
    boundary is that pair's, and this package alone is not named."""
    from packaging.version import Version

    from reprex.bisect.probe import moved_around
    from reprex.bisect.releases import LATER, PRE_RELEASE, changelog_url
    from reprex.bisect.search import first_bad

    name, listing, bad_i, good_i = plan.name, plan.listing, plan.bad_i, plan.good_i
    versions = listing.versions()
    bad_v, good_v = Version(plan.bad), Version(plan.good) if plan.good else None
    candidates = versions[:bad_i + 1]
    progress(f"{name}: {len(candidates) - (good_i or 0)} releases up to {plan.bad}"
             + (f" from {plan.good}" if plan.good else "") + f"; {len(listing.excluded)} excluded")
    installed: dict[str, list[str]] = {}  # version -> the lines its probe installed
    probe, probed = oracle.release(name, {r.version: r for r in listing.candidates}, base=base,
                                   record=installed), []

    def test(version: str):
        probed.append(Version(version))
        return probe(version)

    found = first_bad(candidates, test, bad=bad_i, good=good_i, jobs=options.jobs, label=lambda v: f"{name} {v}")
    if found.first_bad is None:
        return Finding(package=name, first_bad=None, last_good=None, skipped=list(found.skipped),
                       candidates=len(candidates), reason=found.reason or "the search ended without a first bad "
                                                                           "release")
    moved = moved_around(installed.get(found.last_good, []), installed.get(found.first_bad, []), name) \
        if found.last_good in installed and found.first_bad in installed else {}
    if moved:
        shown = ", ".join(f"{n} {a} -> {b}" for n, (a, b) in list(moved.items())[:4])
        return Finding(package=name, first_bad=None, last_good=None, skipped=list(found.skipped),
                       candidates=len(candidates),
                       reason=f"{found.last_good} judged good and {found.first_bad} bad, but other pins moved "
                              f"between those probes ({shown}): {name} alone is not shown to bring the failure")
    lo = Version(found.last_good) if found.last_good else None
    hi = Version(found.first_bad)
    # releases a probe could not install within the range searched: reported, never blamed; those
    # between the last good and the first bad leave the boundary among them
    oldest = min([*probed, *([good_v] if good_v is not None else [])], default=hi)
    unprobed = [(v, r) for v, r in listing.excluded if oldest <= Version(v) <= bad_v and r not in (PRE_RELEASE, LATER)]
    skipped = sorted([*found.skipped, *unprobed], key=lambda item: Version(item[0]))
    between = [v for v, _ in unprobed if (lo is None or Version(v) > lo) and Version(v) < hi]
    ambiguous = list(found.ambiguous)
    if between:
        ambiguous = sorted({*ambiguous, *between, found.first_bad}, key=Version)
    release = next((r for r in listing.candidates if r.version == found.first_bad), None)
    link = changelog_url(release, name=name, index_url=options.index_url) if release is not None \
        else None  # one metadata read
    lo_i = versions.index(found.last_good) if found.last_good in versions else 0
    return Finding(package=name, first_bad=found.first_bad, last_good=found.last_good, skipped=skipped,
                   ambiguous=ambiguous, candidates=bad_i - lo_i + 1, changelog=link)


def by_package(oracle: Oracle, result: BisectResult, plan: ReleasePlan, *, options: BisectOptions,
               progress: Callable[[str], None]) -> None:
    finding = search_releases(oracle, plan, options=options, progress=progress)
    result.findings.append(finding)
    if not finding.first_bad:
        result.reason = finding.reason


def _diff_label(bad_pins: dict[str, str], whose: str = "the bundle's") -> Callable[[dict[str, str]], str]:
    def label(pins: dict[str, str]) -> str:
        moved = sorted(n for n in set(pins) | set(bad_pins) if pins.get(n) != bad_pins.get(n))
        shown = ", ".join(f"{n} {pins.get(n) or '(none)'}" for n in moved[:6])
        return f"{len(moved)} pins moved from {whose}" + (f": {shown}" if moved else "") + \
            (" ..." if len(moved) > 6 else "")

    return label


def by_lock(oracle: Oracle, result: BisectResult, good_pins: dict[str, str], *, options: BisectOptions,
            progress: Callable[[str], None], bad_pins: dict[str, str] | None = None, until=None) -> None:
    """The minimal set of changed pins that brings the failure back, then each culprit's releases.

    A culprit's releases are searched over its own base: the good pins with the other culprits'
    changes applied, where (ddmin's 1-minimality) this one's change alone turns good into bad.
    Both ends are judged there first; when its old pin isn't good there (the other culprits
    can't run without its new one: a co-release such as pydantic and pydantic-core) or its new
    pin isn't bad, no release of it is named, only why."""
    from reprex.bisect.pindiff import apply, minimal_change
    from reprex.bisect.probe import exact_pins, pin_lines
    from reprex.bisect.search import BAD, GOOD, BisectError

    own = bad_pins is None
    bad_pins = dict(bad_pins if bad_pins is not None else exact_pins(oracle.lines))
    good_pins = {canonical(k): v for k, v in good_pins.items()}
    label = _diff_label(bad_pins, "the bundle's" if own else "the first bad day's")
    moved = sorted(n for n in set(good_pins) | set(bad_pins) if good_pins.get(n) != bad_pins.get(n))
    progress(f"{len(moved)} pins differ between the good lock and the bundle; finding the minimal set")
    culprits, _steps = minimal_change(good_pins, bad_pins, lambda pins: oracle.pins(pins, label(pins)),
                                      jobs=options.jobs)
    result.culprits = list(culprits)
    for name in culprits:
        old, new = good_pins.get(name), bad_pins.get(name)
        others = [c for c in culprits if c != name]
        base = apply(good_pins, bad_pins, others)  # `name` as the good pins have it (or absent)
        both = apply(good_pins, bad_pins, culprits)
        ends = [oracle.pins(base, label(base)), oracle.pins(both, label(both))]
        if ends[0][0] != GOOD or ends[1][0] != BAD:
            result.findings.append(Finding(package=name, first_bad=None, last_good=None,
                                           reason=_no_evidence(name, old, new, others, bad_pins, ends)))
            continue
        if not old or not new:
            result.findings.append(Finding(package=name, first_bad=new, last_good=old,
                                           reason="added" if not old else "removed"))
            continue
        try:
            if _version(old, name) > _version(new, name):
                result.findings.append(Finding(package=name, first_bad=new, last_good=old,
                                               reason=f"moved down from {old} to {new}; releases not bisected"))
                continue
            plan = plan_releases(oracle, name, good=old, bad=new, options=options, progress=progress, until=until)
            if others:
                progress(f"{name}: its releases over the good pins with "
                         + ", ".join(f"{c} {bad_pins.get(c, '(removed)')}" for c in others))
            result.findings.append(search_releases(oracle, plan, options=options, progress=progress,
                                                   base=pin_lines(base)))
        except BisectError as exc:  # the culprit stands; only its releases could not be searched
            result.findings.append(Finding(package=name, first_bad=None, last_good=old,
                                           reason=f"{old} -> {new}; releases not bisected: {exc.message}"))
    if not result.found:
        result.reason = next((f.reason for f in result.findings if f.reason), "") or \
            "no changed pin brings the failure back on its own"


def _short(reason: str) -> str:
    """A probe's reason as a word or two (`different`, `unresolvable with ...`): the rest is in its step."""
    return reason.split(": ", 1)[0][:80]


def _no_evidence(name: str, old, new, others: list[str], bad_pins: dict[str, str],
                 ends: list[tuple[str, str]]) -> str:
    """Why a culprit's releases were not searched: one end did not judge as ddmin's answer says."""
    with_ = (" with " + ", ".join(f"{c} {bad_pins.get(c, '(removed)')}" for c in others)) if others else ""
    (v_old, r_old), (v_new, r_new) = ends
    if v_old != "good":
        said = f"{name} {old or '(absent)'}{with_} judged {v_old}" + (f" ({_short(r_old)})" if r_old else "")
        alone = f"it changes only together with {', '.join(others)}" if others else "its old pin is not good"
    else:
        said = f"{name} {new or '(removed)'}{with_} judged {v_new}" + (f" ({_short(r_new)})" if r_new else "")
        alone = "its new pin does not bring the failure back there"
    return f"{old or '(absent)'} -> {new or '(removed)'} not bisected: {said}; {alone}"


def by_date(oracle: Oracle, result: BisectResult, *, start, options: BisectOptions,
            progress: Callable[[str], None]) -> None:
    """Resolve the roots as of earlier days until one passes, then bisect the two days' pin diff."""
    import functools
    from datetime import datetime, timezone

    from reprex.bisect.dates import first_bad_date, resolve_as_of
    from reprex.bisect.probe import exact_pins, roots

    if start is None:
        from reprex.bisect.dates import newest_upload

        newest = newest_upload(exact_pins(oracle.lines), index_url=options.index_url, jobs=max(options.jobs, 4))
        if newest is not None:
            start, which = newest
            progress(f"starting from {start:%Y-%m-%d}: the newest upload among the bundle's pins ({which})")
        else:
            created = oracle.bundle.manifest.get("created")
            try:
                start = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
            except ValueError:
                start = datetime.now(timezone.utc)
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    names = roots(oracle.bundle)
    progress(f"resolving {', '.join(names[:5])}{' ...' if len(names) > 5 else ''} as of earlier dates "
             f"from {start.date()}")
    label = _diff_label(exact_pins(oracle.lines))
    resolve = functools.partial(resolve_as_of, compile=oracle.resolutions.compile)
    found = first_bad_date(names, lambda pins: oracle.pins(pins, "a day's pins, " + label(pins)), start=start,
                           python=oracle.target.python, platform=oracle.target.uv_platform, jobs=options.jobs,
                           resolve=resolve)
    last_good, first_bad_day, good_pins, bad_pins, _steps = found
    result.dates = {"last_good": _iso(last_good), "first_bad": _iso(first_bad_day), "start": _iso(start)}
    if last_good is None or first_bad_day is None:
        result.reason = getattr(found, "reason", "") or "no earlier date where the failure goes away was found"
        return
    by_lock(oracle, result, good_pins, options=options, progress=progress, bad_pins=bad_pins, until=first_bad_day)


def _iso(when) -> str | None:
    return when.date().isoformat() if when is not None else None
