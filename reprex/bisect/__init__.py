"""`reprex bisect`: which release (or which set of changed pins, or which day) brought a bundle's failure.

The oracle is replay (oracle.py): reproduced = bad, fixed = good, anything else = skip,
never blamed. Three modes share it: releases of one package (releases.py lists what a
probe can install, probe.py makes each probe), a known-good lock (pindiff's ddmin over the
changed pins, then the culprit's releases), and dates (dates.py resolves the roots as of
earlier days, then as with a good lock). The search itself is search.py's, pure.

Light to import: everything heavy loads inside `bisect()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

EXIT_FOUND, EXIT_NONE, EXIT_USAGE, EXIT_INFRA = 0, 1, 2, 3


@dataclass
class BisectOptions:
    backend: str = "local"  # local | docker (replay's backends)
    jobs: int = 1
    runs: int = 1  # replays of the original first: a flaky bundle's rate sets each probe's repeats
    pre: bool = False
    yanked: bool = False
    timeout: float | None = None  # per replay run
    image: str | None = None
    strict: bool = False
    ray: str | None = None  # a Ray cluster's address: each probe's replay is a task there
    index_url: str | None = None  # the index releases are listed from and probes install from (else configured)


@dataclass
class Finding:
    """Where one package's failure starts among its releases."""

    package: str
    first_bad: str | None
    last_good: str | None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (version, why): never blamed
    ambiguous: list[str] = field(default_factory=list)
    candidates: int = 0  # releases in the searched range
    changelog: str | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        return {"package": self.package, "first_bad": self.first_bad, "last_good": self.last_good,
                "skipped": [{"version": v, "reason": r} for v, r in self.skipped], "ambiguous": self.ambiguous,
                "candidates": self.candidates, "changelog": self.changelog, "reason": self.reason}


@dataclass
class BisectResult:
    mode: str  # package | lock | date
    findings: list[Finding] = field(default_factory=list)
    culprits: list[str] = field(default_factory=list)  # modes 2 and 3: the minimal set of changed pins
    dates: dict = field(default_factory=dict)  # mode 3: last_good / first_bad days
    probes: list = field(default_factory=list)  # oracle.Probe, in the order run
    runs_per_probe: int = 1
    reproduction_rate: float | None = None
    backend: str = ""
    reason: str = ""  # why nothing was found
    duration_s: float = 0.0
    index: str = ""  # where the releases were listed (credentials removed)

    @property
    def found(self) -> bool:
        """A first bad release named, or (modes 2 and 3) the pins whose change brings the failure back."""
        return bool(self.culprits) or any(f.first_bad for f in self.findings)

    @property
    def exit_code(self) -> int:
        return EXIT_FOUND if self.found else EXIT_NONE

    @property
    def replays(self) -> int:
        return sum(1 for p in self.probes if p.runs)

    def summary(self) -> str:
        """One line: `first bad: pandas 2.0.0 (last good 1.5.3); 5 probes, 2 skipped (...)`."""
        skips = [p for p in self.probes if p.verdict == "skip" and p.label != "the bundle's own pins"]
        counts = f"{self.replays} probe{'s' if self.replays != 1 else ''}"
        if not self.found:
            head = f"no first bad found: {self.reason or 'the search ended without one'}"
            return f"{head}; {counts}"
        parts = []
        for f in self.findings:
            if not f.first_bad:
                parts.append(f"{f.package}: {f.reason}" if f.reason else f.package)
                continue
            text = f"first bad: {f.package} {f.first_bad}" + (f" (last good {f.last_good})" if f.last_good else "")
            if f.ambiguous and len(f.ambiguous) > 1:
                text += f" (or one of {', '.join(f.ambiguous[:-1])}, which could not be judged)"
            parts.append(text)
        tail = counts
        skipped = [v for f in self.findings for v, _ in f.skipped]
        if skipped:
            why = _group_reasons([(v, r) for f in self.findings for v, r in f.skipped])
            tail += f", {len(skipped)} skipped ({why})"
        elif skips:
            tail += f", {len(skips)} skipped"
        if self.runs_per_probe > 1:
            tail += f"; flaky: {self.runs_per_probe} runs per probe (reproduced {self.reproduction_rate:.0%} " \
                    "of the original's runs)"
        lead = ""
        if self.culprits:
            lead = f"changed pins that bring the failure back: {', '.join(self.culprits)}; "
        if self.dates.get("first_bad"):
            lead = f"broke between {self.dates.get('last_good')} and {self.dates.get('first_bad')}; " + lead
        return lead + "; ".join(parts) + "; " + tail

    def to_dict(self) -> dict:
        return {"mode": self.mode, "found": self.found, "summary": self.summary(),
                "findings": [f.to_dict() for f in self.findings], "culprits": self.culprits, "dates": self.dates,
                "probes": len(self.probes), "replays": self.replays,
                "steps": [p.to_dict() for p in self.probes], "runs_per_probe": self.runs_per_probe,
                "reproduction_rate": self.reproduction_rate, "backend": self.backend, "reason": self.reason,
                "duration_s": round(self.duration_s, 2), "exit": self.exit_code,
                **({"index": self.index} if self.index else {})}


def _group_reasons(items: list[tuple[str, str]]) -> str:
    """`no cp311 wheel: 1.5.0, 1.5.1; yanked: 2.0.0` (reasons in the order first met)."""
    by: dict[str, list[str]] = {}
    for version, reason in items:
        short = (reason or "skipped").split(" (use --")[0].split(": ")[0][:80]
        by.setdefault(short, []).append(version)
    return "; ".join(f"{why}: {', '.join(vs)}" for why, vs in by.items())


def bisect(bundle, *, package: str | None = None, good: str | None = None, bad: str | None = None,
           good_pins: Mapping[str, str] | None = None, date: bool = False, start=None,
           options: BisectOptions | None = None, progress: Callable[[str], None] = lambda _: None) -> BisectResult:
    """Bisect `bundle`'s failure: by `package` releases, from `good_pins`, or by `date`."""
    from reprex.bisect.index import redactor
    from reprex.bisect.search import BisectError
    from reprex.errors import ReprexError

    options = options or BisectOptions()
    chosen = [m for m, on in (("package", package), ("lock", good_pins is not None), ("date", date)) if on]
    if len(chosen) != 1:
        raise BisectError("choose one of --package NAME, --good-lock FILE / --good BUNDLE, or --date")
    # the probes' installs look where the listing did (--index-url reaches their processes as
    # environment, modes.make_oracle); its credentials never in what is said, returned or written
    scrub = redactor(options.index_url)
    try:
        result = _search(bundle, chosen[0], package=package, good=good, bad=bad, good_pins=good_pins, start=start,
                         options=options, progress=lambda msg: progress(scrub(msg)))
    except ReprexError as exc:
        if scrub(str(exc)) != str(exc):
            exc.args = (scrub(str(exc)),)
        raise
    except BaseException as exc:
        if isinstance(getattr(exc, "partial", None), str):
            exc.partial = scrub(exc.partial)
        raise
    _scrub_result(result, scrub)
    return result


def _scrub_result(result: BisectResult, scrub: Callable[[str], str]) -> None:
    """Every text of `result` (uv's messages in a probe's reason may hold the index URL) scrubbed."""
    for probe in result.probes:
        probe.reason = scrub(probe.reason)
    for finding in result.findings:
        finding.reason = scrub(finding.reason)
        finding.changelog = scrub(finding.changelog) if finding.changelog else finding.changelog
        finding.skipped = [(v, scrub(r)) for v, r in finding.skipped]
    result.reason = scrub(result.reason)
    result.index = scrub(result.index)


def _search(bundle, mode: str, *, package, good, bad, good_pins, start, options: BisectOptions,
            progress: Callable[[str], None]) -> BisectResult:
    import time

    from reprex.bisect.modes import by_date, by_lock, by_package, make_oracle, plan_releases

    started = time.monotonic()
    oracle = make_oracle(bundle, options, progress)
    result = BisectResult(mode=mode, backend=options.backend)
    # bad input (an unknown package or release) is said before any replay
    plan = plan_releases(oracle, package, good=good, bad=bad, options=options, progress=progress) if package \
        else None
    result.index = plan.listing.index if plan is not None else ""
    try:
        result.reproduction_rate = oracle.calibrate(options.runs)
        result.runs_per_probe = oracle.repeat
        if plan is not None:
            by_package(oracle, result, plan, options=options, progress=progress)
        elif good_pins is not None:
            by_lock(oracle, result, dict(good_pins), options=options, progress=progress)
        else:
            by_date(oracle, result, start=start, options=options, progress=progress)
    except BaseException as exc:
        if not isinstance(exc, Exception):  # Ctrl-C: the probes running elsewhere stop before it goes on
            from reprex.interrupt import shielded

            with shielded():
                oracle.cancel()
            from reprex.bisect.interim import so_far

            exc.partial = so_far(list(oracle.probes), plan)  # what was learned, for the one line said
        raise
    finally:
        result.probes = list(oracle.probes)
        result.duration_s = time.monotonic() - started
        oracle.close()
    return result

