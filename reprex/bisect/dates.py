"""Which day broke it, when no good environment is known: resolve the top-level requirements as
of earlier dates (uv's `--exclude-newer`, which reads each file's upload time from the index,
PEP 700) and search the days like releases.

Back 1, 2, 4... weeks from `start` for a day whose resolution passes, then the days between.
Many days resolve to the same pins: those inherit the verdict without a probe, so the probes
are the distinct environments judged. The two neighbouring resolutions are the good and bad
pins that reprex.bisect.pindiff narrows next.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable, NamedTuple, Sequence

from reprex.bisect.search import SKIP, BisectError, Step, Test, pool_map, run_batch, search

Pins = dict  # canonical name -> version
Resolve = Callable[..., Pins]


class Unresolvable(BisectError):
    """The requirements have no resolution as of a date (a SKIP for that day, never blamed)."""


class DateFound(NamedTuple):
    last_good_day: dt.datetime | None
    first_bad_day: dt.datetime | None
    good_pins: Pins
    bad_pins: Pins
    steps: list[Step]


class DateResult(DateFound):
    """DateFound (unpacks as five) with `reason`: why no day was found, when none was."""
    reason: str = ""


def loosen(requirements: Sequence[str]) -> list[str]:
    """The requirement lines without their exact pins (`pandas[sql]==2.0.0` -> `pandas[sql]`), so an
    older date can resolve older releases; ranges and markers are kept. The lines come from a
    bundle: anything but a plain requirement (options, URLs, `${VAR}`, which uv expands) is refused."""
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for line in requirements:
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith("#"):
            continue
        shown = text if len(text) <= 120 else text[:120] + "..."
        try:
            req = Requirement(text)
        except InvalidRequirement:
            raise BisectError(f"cannot resolve {shown!r} as of a date: not a requirement") from None
        if req.url or "$" in text or not text.isprintable():
            raise BisectError(f"cannot resolve {shown!r} as of a date: only index requirements have upload dates")
        spec = ",".join(str(s) for s in req.specifier if s.operator not in ("==", "==="))
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        marker = f"; {req.marker}" if req.marker else ""
        out.append(f"{req.name}{extras}{spec}{marker}")
    if not out:
        raise BisectError("no top-level requirements to resolve as of a date")
    return out


def stamp(when: dt.datetime) -> str:
    """An RFC 3339 UTC timestamp for uv (a naive datetime is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_as_of(requirements: list[str], when: dt.datetime, *, python: str, platform: str | None = None,
                  timeout: float = 300.0, compile=None) -> Pins:
    """`uv pip compile --exclude-newer WHEN` of `requirements` (checked, on stdin) for `python`
    (X.Y) and `platform` (uv's --python-platform; None: this machine), wheels only, with the host
    pip's indexes (reprex.installer). Raises Unresolvable with uv's reason. `compile`:
    runners.Resolutions.compile of the bisection (its environment; Ctrl-C stops it)."""
    import subprocess

    from reprex import installer
    from reprex.bisect.runners import Resolutions
    from reprex.pins import canonical, parse_requirements

    args = ["-", "--quiet", "--no-header", "--no-annotate", "--exclude-newer", stamp(when),
            "--python-version", python, "--only-binary", ":all:"]
    if platform:
        args += ["--python-platform", platform]
    if installer.uv() is None:
        raise BisectError("resolving as of a date needs uv (--exclude-newer), and uv can't run here")
    lines = [line for line in requirements if line.strip()]
    for line in lines:
        if "$" in line or not line.isprintable() or line.lstrip().startswith("-"):
            raise BisectError(f"refusing requirement {line[:120]!r} for a dated resolution")
    try:
        proc = (compile or Resolutions().compile)(args, timeout, "\n".join(lines) + "\n")
        if proc is None:
            raise BisectError("resolving as of a date needs uv (--exclude-newer), and uv can't run here")
    except subprocess.TimeoutExpired:
        raise Unresolvable(f"uv took longer than {timeout:.0f}s to resolve as of {stamp(when)}") from None
    except OSError as exc:
        raise BisectError(f"cannot run uv: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        raise Unresolvable(f"no resolution as of {when:%Y-%m-%d}: {installer.last_error(proc)}")
    pins: Pins = {}
    for line in parse_requirements(proc.stdout):
        name, sep, version = line.partition("==")
        if sep:
            pins[canonical(name.split("[", 1)[0].strip())] = version.split(";", 1)[0].strip()
    return dict(sorted(pins.items()))


def first_bad_date(requirements: Sequence[str], test_pins: Test, *, start: dt.datetime, python: str,
                   platform: str | None = None, jobs: int = 1, max_weeks: int = 156,
                   resolve: Resolve = resolve_as_of) -> DateResult:
    """(last good day, first bad day, their pins, steps) for the top-level `requirements` (exact
    pins loosened); `start`'s resolution must judge BAD. Steps are the distinct environments
    probed; a day with no resolution is a SKIP. `resolve(reqs, when, python=, platform=)` is
    uv's by default."""
    reqs = loosen(requirements)
    n = max_weeks * 7 + 1
    days = day_ends(start, n)
    resolved: dict[int, Pins | Unresolvable] = {}
    judged: dict[tuple, tuple[str, str]] = {}  # pins -> (verdict, reason)
    steps: list[Step] = []

    def resolve_day(i: int) -> Pins | Unresolvable:
        try:
            return resolve(reqs, days[i], python=python, platform=platform)
        except Unresolvable as exc:
            return exc

    def judge(indices: list[int]) -> list[str]:
        todo = [i for i in indices if i not in resolved]
        resolved.update(zip(todo, pool_map(resolve_day, todo, jobs)))  # Ctrl-C: Oracle.cancel stops the rest
        fresh: dict[tuple, int] = {}
        for i in indices:
            pins = resolved[i]
            if isinstance(pins, Unresolvable):
                steps.append(Step(f"as of {days[i]:%Y-%m-%d}", SKIP, pins.message))
            elif _key(pins) not in judged:
                fresh.setdefault(_key(pins), i)
        batch = run_batch(list(fresh), lambda key: test_pins(dict(key)),
                          lambda key: f"as of {days[fresh[key]]:%Y-%m-%d}", jobs)
        steps.extend(batch)
        judged.update((key, (step.verdict, step.reason)) for key, step in zip(fresh, batch))
        return [SKIP if isinstance(resolved[i], Unresolvable) else judged[_key(resolved[i])][0] for i in indices]

    bounds = search(judge, bad=n - 1, good=None, jobs=jobs, step_back=True, stride=7, neighbours=False)
    pins_at = {i: p for i, p in resolved.items() if not isinstance(p, Unresolvable)}
    if bounds.why == "bad-end":
        first = steps[0] if steps else None
        said = f"{first.verdict}" + (f" ({first.reason})" if first and first.reason else "") if first else "?"
        return _result(None, None, {}, pins_at.get(n - 1, {}), steps,
                       f"the resolution as of {start:%Y-%m-%d} judged {said}: nothing to bisect")
    if bounds.why:
        reason = f"no day back to {days[0]:%Y-%m-%d} ({max_weeks} weeks) resolves to pins that pass"
        if 0 in pins_at:  # the oldest day still resolves: the limit, not the packages' history, ended it
            reason = (f"no day back to {days[0]:%Y-%m-%d} ({max_weeks} weeks, the limit) resolves to pins that "
                      f"pass; to search further back, try --start {days[0]:%Y-%m-%d}")
        return _result(None, days[bounds.hi], {}, pins_at.get(bounds.hi, {}), steps, reason)
    return _result(days[bounds.lo], days[bounds.hi], pins_at[bounds.lo], pins_at[bounds.hi], steps, "")


def day_ends(start: dt.datetime, n: int) -> list[dt.datetime]:
    """The `n` days up to `start`'s, oldest first, each as its last second (UTC), so a release
    counts on the day it was uploaded; `start` itself is the last (nothing after it counts)."""
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.timezone.utc)
    start = start.astimezone(dt.timezone.utc)
    last = dt.datetime.combine(start.date(), dt.time(23, 59, 59), tzinfo=dt.timezone.utc)
    return [min(last - dt.timedelta(days=n - 1 - i), start) for i in range(n)]


def _key(pins: Pins) -> tuple:
    return tuple(sorted(pins.items()))


def _result(good_day, bad_day, good_pins, bad_pins, steps, reason) -> DateResult:
    result = DateResult(good_day, bad_day, dict(good_pins), dict(bad_pins), steps)
    result.reason = reason
    return result


def newest_upload(pins: dict[str, str], *, index_url: str | None = None, environ=None,
                  jobs: int = 4) -> tuple[dt.datetime, str] | None:
    """(the end of that day, `name version`) of the newest first upload among `pins`' exact
    releases, as the index lists them (PEP 691 `upload-time`; HTML pages and find-links have
    none): the day the bundle's environment first existed, where a search back in time starts. None when no
    pin's upload time is known. A release missing from the index, or an index that can't be
    read, counts as unknown, never as an error."""
    from packaging.version import InvalidVersion, Version

    from reprex.bisect.index import fetch_releases
    from reprex.errors import ReprexError

    def one(item: tuple[str, str]) -> tuple[dt.datetime, str] | None:
        name, version = item
        try:
            releases, _ = fetch_releases(name, environ, index_url)
            wanted = Version(version)
        except (ReprexError, InvalidVersion, OSError, ValueError):
            return None
        for release in releases:
            try:
                same = Version(release.version) == wanted
            except InvalidVersion:
                continue
            if same and release.upload_time:
                when = _parse_time(release.upload_time)
                return (when, f"{name} {version}") if when is not None else None
        return None

    found = [r for r in pool_map(one, sorted(pins.items()), jobs) if r is not None]
    if not found:
        return None
    when, which = max(found, key=lambda r: r[0])
    # the end of that day: a release's other wheels often come minutes or hours after its first
    return dt.datetime.combine(when.astimezone(dt.timezone.utc).date(), dt.time(23, 59, 59),
                               tzinfo=dt.timezone.utc), which


def _parse_time(text: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
