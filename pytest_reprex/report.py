"""Plain-text pieces of the pytest reports: the verdict, both signatures side by side,
the message diff, the replay output and the environment diff."""

from __future__ import annotations

import difflib
import re
import textwrap

COLUMN = 46
LOG_TAIL = 6000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def inert(text: str) -> str:
    """Control characters shown as escapes: a bundle's output and messages reach the terminal
    through pytest's report, and must not retitle it, clear it or plant hyperlinks."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _cells(text: str, width: int = COLUMN) -> list[str]:
    lines: list[str] = []
    for raw in (text or "").splitlines() or [""]:
        lines.extend(textwrap.wrap(raw, width, break_long_words=True, break_on_hyphens=False) or [""])
    return lines[:12]


def side_by_side(expected, observed) -> str:
    """The expected (bundle) and observed (replay) signatures in two columns."""
    rows = [("id", expected.id, observed.id if observed else "-"),
            ("kind", expected.kind, observed.kind if observed else "-"),
            ("types", "\n".join(expected.types) or "-", "\n".join(observed.types) if observed else "-"),
            ("frames", "\n".join(expected.frames) or "-", "\n".join(observed.frames) if observed else "-"),
            ("message", expected.message or "-", (observed.message or "-") if observed else "-")]
    out = [f"{'':<9} {'expected (bundle)':<{COLUMN}} | observed (replay)",
           f"{'':<9} {'-' * COLUMN} | {'-' * COLUMN}"]
    for label, left, right in rows:
        lcells, rcells = _cells(left), _cells(right)
        mark = " " if left == right else "*"
        for i in range(max(len(lcells), len(rcells))):
            head = f"{mark}{label}" if i == 0 else ""
            lcell = lcells[i] if i < len(lcells) else ""
            rcell = rcells[i] if i < len(rcells) else ""
            out.append(f"{head:<9} {lcell:<{COLUMN}} | {rcell}".rstrip())
    return "\n".join(out)


def message_diff(pair) -> str:
    if not pair:
        return ""
    expected, observed = pair
    lines = difflib.ndiff((expected or "").splitlines() or [""], (observed or "").splitlines() or [""])
    return "\n".join(line for line in lines if not line.startswith("?"))


def where(result) -> str:
    text = result.backend or "?"
    if result.image:
        text += f" ({result.image})"
    if result.runs > 1:
        runs = f"{result.reproduced_runs} of {result.runs} runs reproduced"
    else:
        runs = "1 run" if result.runs == 1 else "before any run"
    return f"on {text} in {result.duration_s:.1f}s, {runs}"


def verdict_section(result, expect: str, source: str | None = None) -> str:
    lines = []
    if source:
        lines.append(f"bundle:    {source}")
    lines += [f"verdict:   {result.verdict} (expected {expect})",
              f"replay:    {where(result)}"]
    if result.reason:
        lines.append(f"reason:    {result.reason}")
    if len(result.run_verdicts) > 1:
        lines.append(f"runs:      {', '.join(result.run_verdicts)}")
    lines.append(f"expected:  {result.expected_signature.short()}")
    if result.signature is not None:
        lines.append(f"observed:  {result.signature.short()}")
    return "\n".join(lines)


def diff_section(result) -> str:
    if not result.diff:
        return ""
    width = max(len(row["what"]) for row in result.diff)
    lines = [f"{'':<{width}}  bundle -> replay"]
    for row in result.diff[:60]:
        lines.append(f"{row['what']:<{width}}  {row['bundle']} -> {row['replay']}")
    return "\n".join(lines)


def logs_section(result) -> str:
    logs = result.logs or ""
    if len(logs) > LOG_TAIL:
        logs = "...\n" + logs[-LOG_TAIL:]
    return logs.rstrip()


def sections(result, expect: str, source: str | None = None) -> list[tuple[str, str]]:
    out = [("reprex verdict", verdict_section(result, expect, source))]
    logs = logs_section(result)
    if logs:
        out.append(("reprex replay output", logs))
    diff = diff_section(result)
    if diff:
        out.append(("reprex environment diff", diff))
    return [(title, inert(text)) for title, text in out]


def failure_text(result, expect: str, name: str, strict: bool = False) -> str:
    """The failure message of a bundle item whose verdict did not meet the expectation."""
    verdict = result.verdict
    head = f"reprex {name}: expected `{expect}`, got `{verdict}` {where(result)}"
    body: list[str] = []
    exp = result.expected_signature
    if verdict == "different":
        body.append("the replay failed, but not the way the bundle did:")
        body.append(side_by_side(exp, result.signature))
    elif verdict == "flaky":
        body.append(f"flaky: reproduced in {result.reproduced_runs} of {result.runs} runs "
                    f"({', '.join(result.run_verdicts)})")
        if result.signature is not None and not result.signature.matches(exp):
            body.append(side_by_side(exp, result.signature))
    elif verdict == "fixed" and expect == "reproduced":
        body.append("the failure no longer reproduces: the repro ran to completion.")
        body.append(f"expected:  {exp.short()}")
        body.append("If the bug is fixed, mark the bundle `expect = \"fixed\"` (a NAME.reprex.toml sidecar) "
                    "or retire it.")
    elif verdict == "reproduced" and expect == "fixed":
        body.append("the failure still reproduces:")
        body.append(f"signature: {exp.short()}")
    elif verdict == "env-incompatible":
        body.append(f"cannot replay here (failing under --reprex-strict): {result.reason}")
    else:
        if result.reason:
            body.append(result.reason)
        if result.signature is not None:
            body.append(side_by_side(exp, result.signature))
    if result.message_diff and verdict in ("different", "flaky", "reproduced"):
        if strict or verdict != "reproduced":
            body.append("message diff (- bundle, + replay):")
            body.append(textwrap.indent(message_diff(result.message_diff), "  "))
    return inert(head + "\n" + "\n".join(body))
