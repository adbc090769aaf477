"""What an interrupted bisection had learned, in one line: the current good/bad bounds.

Ctrl-C leaves no `bisect` section (nothing half-done is written), so this line is all the
user keeps: enough to start again with `--good V --bad V` and not redo the probes.
"""

from __future__ import annotations


def so_far(probes: list, plan=None) -> str:
    """`so far: urllib3 broke after 1.26.15, by 2.0.2 (3 releases in between); 4 probes`.
    `probes`: oracle.Probe; `plan`: modes.ReleasePlan (None outside the releases mode)."""
    judged = [p for p in probes if p.label != "the bundle's own pins"]
    counts = {v: sum(p.verdict == v for p in judged) for v in ("good", "bad", "skip")}
    tail = f"{len(judged)} probe{'s' if len(judged) != 1 else ''} judged ({counts['good']} good, " \
           f"{counts['bad']} bad, {counts['skip']} skipped)"
    if plan is None:
        return f"so far: {tail}"
    from packaging.version import Version

    prefix = f"{plan.name} "
    seen = {p.label[len(prefix):]: p.verdict for p in judged if p.label.startswith(prefix)}
    bad = min([Version(plan.bad), *(Version(v) for v, verdict in seen.items() if verdict == "bad")])
    goods = [Version(v) for v, verdict in seen.items() if verdict == "good" and Version(v) < bad]
    if not goods:
        return f"so far: {plan.name} {bad} is bad, no good release found yet; {tail}"
    good = max(goods)
    between = [v for v in plan.listing.versions() if good < Version(v) < bad]
    rest = f"{len(between)} release{'s' if len(between) != 1 else ''} in between" if between \
        else f"first bad {plan.name} {bad}"
    return f"so far: {plan.name} broke after {good}, by {bad} ({rest}); {tail} " \
           f"(resume with --good {good} --bad {bad})"
