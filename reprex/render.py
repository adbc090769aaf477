"""Render a bundle for a venue: GitHub issue markdown, plain text, or JSON.

One mapping from venue name to renderer. Everything a bundle holds is a stranger's
text, so each venue escapes it for where it lands (reprex.escape): markdown and HTML
for gh, control characters for text. The GitHub body stays under the issue limit of
65,536 characters: long sections are cut from the middle with a note, and cut harder
until the whole body fits. A shared bundle (`reprex share`, `render --share URL`) is
linked with its verified replay command (`reprex replay URL#sha256=...`).
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Callable, NamedTuple

from reprex.escape import md_fence, md_inline, terminal
from reprex.pins import parse_requirements

GH_LIMIT = 65536
# GitHub takes .zip attachments on issues, "25MB for all other files" (not images or videos):
# https://docs.github.com/en/get-started/writing-on-github/working-with-advanced-formatting/attaching-files
GH_ATTACH_LIMIT_MB = 25
_BUDGET_SCALES = (1.0, 0.5, 0.25, 0.1, 0.03)  # section budgets shrink until the body fits
_LINKABLE = re.compile(r"https://[A-Za-z0-9.-]+(?::\d+)?(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?")
_SECTION_BUDGET = {"traceback": 20000, "repro": 12000, "output": 8000, "requirements": 12000, "environment": 12000}
FACT_LIMIT = 1000  # characters of one summary value (a long argv, a long message)
SKIPPED_SHOWN = 50


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit // 3]
    tail = text[-(2 * limit // 3):]
    dropped = len(text) - len(head) - len(tail)
    return f"{head}\n... [{dropped} characters cut by reprex; the full text is in the bundle] ...\n{tail}"


def _fence(text: str, lang: str = "") -> str:
    return md_fence(text, lang)


def _obj(value) -> dict:
    return value if isinstance(value, dict) else {}


def _strs(value) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def summary_facts(bundle) -> list[tuple[str, str]]:
    """(key, value) pairs of plain, unescaped text: each venue escapes them itself."""
    m = bundle.manifest
    expect = _obj(m.get("expect"))
    sig = _obj(expect.get("signature"))
    gpu = _obj(m.get("gpu"))
    gpu_text = "none"
    if gpu:
        gpu_text = f"{gpu.get('count')}x {', '.join(sorted(set(_strs(gpu.get('models')))))}; " \
                   f"driver {gpu.get('driver')}; CUDA {gpu.get('cuda')}; " \
                   f"cc {', '.join(_strs(gpu.get('compute_capabilities')))}"
    plat = _obj(m.get("platform"))
    pins = parse_requirements(bundle.text("requirements.txt"))
    files = _obj(m.get("files"))
    exc = _obj(expect.get("exception"))
    failure = str(expect.get("outcome", "?"))
    if exc:
        message = exc.get("message") if isinstance(exc.get("message"), str) else ""
        failure = f"{exc.get('type')}: {message.splitlines()[0][:200] if message.strip() else ''}"
    elif expect.get("signal"):
        failure = f"killed by {expect['signal']}"
    elif expect.get("outcome") == "exit":
        failure = f"exit status {expect.get('exit_code')}"
    python = _obj(m.get("python"))
    facts = [
        ("failure", failure),
        ("signature", f"{sig.get('id', '?')}  {' <- '.join(_strs(sig.get('types')))}"),
        ("frames", " < ".join(_strs(sig.get("frames"))) or "-"),
        ("command", " ".join(_strs(_obj(m.get("entry")).get("argv")))),
        ("python", f"{python.get('implementation')} {python.get('version')}"),
        ("platform", f"{plat.get('system')} {plat.get('machine')} ({plat.get('distro') or plat.get('release') or ''}), "
                     f"libc {plat.get('libc')}"),
        ("gpu", gpu_text),
        ("pins", f"{len(pins)} packages"),
        *_editable_fact(m),
        *_bisect_facts(m),
        ("files", f"{len(files.get('copied') or [])} copied, {len(files.get('skipped') or [])} skipped"),
        ("network", "needed" if m.get("network") else "not needed"),
        ("redactions", _redaction_summary(m.get("redactions"))),
    ]
    return [(k, v[:FACT_LIMIT] + "..." if len(v) > FACT_LIMIT else v) for k, v in facts]


def _editable_fact(m: dict) -> list[tuple[str, str]]:
    """Editable installs: the user's checkout, bundled as files instead of pinned."""
    flagged = _obj(m.get("pins")).get("flagged")
    names = [f"{p.get('name')} {p.get('version')} (editable, bundled as files)"
             for p in flagged if isinstance(p, dict) and "editable" in _strs(p.get("flags"))] \
        if isinstance(flagged, list) else []
    return [("editable", ", ".join(names))] if names else []


def _bisect_facts(m: dict) -> list[tuple[str, str]]:
    """`reprex bisect`'s answer (its `bisect` section): the one-line summary and release-notes links."""
    found = _obj(m.get("bisect"))
    if not found:
        return []
    facts = [("bisect", str(found.get("summary") or found.get("reason") or "no result"))]
    for finding in found.get("findings") or []:
        if isinstance(finding, dict) and isinstance(finding.get("changelog"), str):
            facts.append(("release notes", f"{finding.get('package')}: {finding['changelog']}"))  # keys aren't escaped
    return facts


def _bisect_probes(bundle) -> str:
    """One line per probe of the `bisect` section (label, verdict, reason), for a fenced block."""
    steps = _obj(bundle.manifest.get("bisect")).get("steps")
    return "\n".join(f"{s.get('label')}: {s.get('verdict')} ({s.get('replay')}) {s.get('reason') or ''}".rstrip()
                     for s in steps if isinstance(s, dict)) if isinstance(steps, list) else ""


def skipped_files(bundle) -> list[tuple[str, int, str]]:
    """The manifest's files not included, as (path, size, reason)."""
    out = []
    for s in _obj(bundle.manifest.get("files")).get("skipped") or []:
        if isinstance(s, dict):
            size = s.get("size")
            out.append((str(s.get("path", "?")), size if isinstance(size, int) else 0, str(s.get("reason", ""))))
    return out


def _redaction_summary(redactions) -> str:
    by_kind: dict[str, int] = {}
    for r in redactions if isinstance(redactions, list) else []:
        if isinstance(r, dict) and isinstance(r.get("count"), int):
            kind = str(r.get("kind"))
            by_kind[kind] = by_kind.get(kind, 0) + r["count"]
    return ", ".join(f"{kind} x{count}" for kind, count in sorted(by_kind.items())) or "none"


def _output_text(bundle) -> str:
    run = bundle.json("run.json", {}) or {}
    tail = run.get("output_tail") if isinstance(run, dict) else None
    return "".join(item[1] for item in tail or [] if isinstance(item, list) and len(item) == 2
                   and isinstance(item[1], str))


def _environment_lines(bundle) -> str:
    env = bundle.json("environment.json", {}) or {}
    lines = []
    for name, probe in sorted(env.items() if isinstance(env, dict) else []):
        probe = probe if isinstance(probe, dict) else {"status": "?", "value": probe}
        status = probe.get("status")
        value = probe.get("value")
        if name in ("packages", "env"):
            count = len(value) if isinstance(value, list) else len(value.get("names") or []) \
                if isinstance(value, dict) else 0
            lines.append(f"{name}: {status} ({count} entries; see environment.json)")
            continue
        text = json.dumps(value, sort_keys=True, default=str)
        lines.append(f"{name}: {status} {text[:1500]}" + (f" error={probe.get('error')}" if probe.get("error") else ""))
    return "\n".join(lines)


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


class ShareLink(NamedTuple):
    """Where a bundle was shared and the sha256 of its bytes there."""

    url: str
    sha256: str

    @property
    def verified(self) -> str:
        return f"{self.url}#sha256={self.sha256}"


def gh_length(text: str) -> int:
    """Length as GitHub may count it: UTF-16 code units (never fewer than code points)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _where_section(name: str, share: ShareLink | None) -> list[str]:
    """How the maintainer gets the bundle: the shared copy, verified, or an attachment."""
    if share is None:
        zip_name = md_inline(name + ".reprex.zip", 200)
        return [
            "Reproduce it in a clean environment (verdict: reproduced / fixed / different):",
            "",
            _fence(f"reprex replay {shlex.quote(name + '.reprex.zip')}", "sh"),
            "",
            f"Attach {zip_name} to this issue: GitHub takes .zip files up to {GH_ATTACH_LIMIT_MB} MB. "
            "A bigger bundle: `reprex share` it and paste the link it prints.",
        ]
    link = f"<{share.url}>" if _LINKABLE.fullmatch(share.url) else md_inline(share.url, 2000)
    return [
        f"The bundle: {link} (sha256 {md_inline(share.sha256, 64)})",
        "",
        "Reproduce it in a clean environment (verdict: reproduced / fixed / different); the digest "
        "makes reprex refuse any other bytes:",
        "",
        _fence(f"reprex replay {shlex.quote(share.verified)}", "sh"),
    ]


def render_gh(bundle, share: ShareLink | None = None) -> str:
    """The GitHub issue body, under GitHub's limit: section budgets shrink until it fits."""
    for scale in _BUDGET_SCALES:
        body = _render_gh(bundle, share, scale)
        if gh_length(body) <= GH_LIMIT:
            return body
    note = "\n\n... [cut by reprex to fit GitHub's issue size limit; see the bundle] ...\n"
    while gh_length(body + note) > GH_LIMIT:  # last resort: keep the head, which holds the facts
        body = body[: len(body) - (gh_length(body + note) - GH_LIMIT)]
    return body + note


def _render_gh(bundle, share: ShareLink | None, scale: float) -> str:
    """Bundle text is only ever in a fenced block or md_inline-escaped, so it can't close a
    <details>, add HTML or images, mention anyone or link an issue."""
    budget = {k: max(500, int(v * scale)) for k, v in _SECTION_BUDGET.items()}
    m = bundle.manifest
    name = str(m.get("name", "bundle"))
    fact_limit = max(80, int(FACT_LIMIT * scale))  # escaping can make a value 5x longer: it shrinks too
    table = "\n".join(f"| {k} | {md_inline(v, fact_limit)} |" for k, v in summary_facts(bundle))
    sections = [
        f"## Failure captured by reprex: {md_inline(name, 200)}",
        "",
        "| | |\n|---|---|\n" + table,
        "",
        *_where_section(name, share),
        "",
        _details("Traceback", _fence(_cut(bundle.text("traceback.txt"), budget["traceback"]), "pytb")),
        "",
        _details("repro.py", _fence(_cut(bundle.text("repro.py"), budget["repro"]), "python")),
        "",
        _details("Output (tail, stdout and stderr in order)",
                 _fence(_cut(_output_text(bundle), budget["output"]))),
        "",
        _details("requirements.txt (exact pins)",
                 _fence(_cut(bundle.text("requirements.txt"), budget["requirements"]))),
        "",
        _details("Environment probes", _fence(_cut(_environment_lines(bundle), budget["environment"]))),
    ]
    probes = _bisect_probes(bundle)
    if probes:
        sections += ["", _details("reprex bisect: every probe", _fence(_cut(probes, budget["output"])))]
    skipped = skipped_files(bundle)
    if skipped:
        shown, width = max(5, int(SKIPPED_SHOWN * scale)), max(40, int(300 * scale))
        lines = "\n".join(f"- {md_inline(path, width)} ({size} bytes): {md_inline(reason, width)}"
                          for path, size, reason in skipped[:shown])
        if len(skipped) > shown:
            lines += f"\n- ... and {len(skipped) - shown} more (see reprex.json)"
        sections += ["", _details("Files not included", lines)]
    sections += ["", f"<sub>reprex {md_inline(_obj(m.get('tool')).get('version'), 40)}, bundle schema "
                     f"{md_inline(m.get('schema'), 10)}; secrets were redacted before this was written.</sub>", ""]
    return "\n".join(sections)


def render_text(bundle) -> str:
    """Plain text for a terminal: control characters shown, never sent."""
    facts = summary_facts(bundle)
    width = max(len(k) for k, _ in facts)
    lines = [f"{k.rjust(width)}  {terminal(v, multiline=False)}" for k, v in facts]
    return "\n".join(lines) + "\n\n" + terminal(bundle.text("traceback.txt"))


def render_json(bundle) -> str:
    # json.dumps escapes every control character (ensure_ascii), so this is terminal-safe as is.
    return json.dumps({"manifest": bundle.manifest, "summary": dict(summary_facts(bundle))}, indent=2,
                      sort_keys=True)


VENUES: dict[str, Callable] = {"gh": render_gh, "text": render_text, "json": render_json}


def render(bundle, venue: str = "gh", share: ShareLink | None = None) -> str:
    renderer = VENUES.get(venue)
    if renderer is None:
        raise ValueError(f"unknown venue {venue!r}; choose from {', '.join(VENUES)}")
    return render_gh(bundle, share) if venue == "gh" else renderer(bundle)
