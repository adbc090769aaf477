"""Render a bundle for a venue: GitHub issue markdown, plain text, or JSON.

One mapping from venue name to renderer. The GitHub body stays under the issue
limit of 65,536 characters: long sections are cut from the middle with a note.
"""

from __future__ import annotations

import json
from typing import Callable

from reprex.pins import parse_requirements

GH_LIMIT = 65536
_SECTION_BUDGET = {"traceback": 20000, "output": 8000, "requirements": 12000, "environment": 12000}


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit // 3]
    tail = text[-(2 * limit // 3):]
    dropped = len(text) - len(head) - len(tail)
    return f"{head}\n... [{dropped} characters cut by reprex; the full text is in the bundle] ...\n{tail}"


def _fence(text: str, lang: str = "") -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def summary_facts(bundle) -> list[tuple[str, str]]:
    m = bundle.manifest
    expect = m.get("expect", {})
    sig = expect.get("signature", {})
    gpu = m.get("gpu")
    gpu_text = "none"
    if gpu:
        gpu_text = f"{gpu['count']}x {', '.join(sorted(set(gpu.get('models') or [])))}; driver {gpu.get('driver')}; " \
                   f"CUDA {gpu.get('cuda')}; cc {', '.join(gpu.get('compute_capabilities') or [])}"
    plat = m.get("platform", {})
    pins = parse_requirements(bundle.text("requirements.txt"))
    files = m.get("files", {})
    exc = expect.get("exception") or {}
    failure = expect.get("outcome", "?")
    if exc:
        failure = f"{exc.get('type')}: {(exc.get('message') or '').splitlines()[0][:200] if exc.get('message') else ''}"
    elif expect.get("signal"):
        failure = f"killed by {expect['signal']}"
    elif expect.get("outcome") == "exit":
        failure = f"exit status {expect.get('exit_code')}"
    return [
        ("failure", failure),
        ("signature", f"{sig.get('id', '?')}  {' <- '.join(sig.get('types') or [])}"),
        ("frames", " < ".join(sig.get("frames") or []) or "-"),
        ("command", " ".join(m.get("entry", {}).get("argv") or [])),
        ("python", f"{m.get('python', {}).get('implementation')} {m.get('python', {}).get('version')}"),
        ("platform", f"{plat.get('system')} {plat.get('machine')} ({plat.get('distro') or plat.get('release') or ''}), "
                     f"libc {plat.get('libc')}"),
        ("gpu", gpu_text),
        ("pins", f"{len(pins)} packages"),
        ("files", f"{len(files.get('copied') or [])} copied, {len(files.get('skipped') or [])} skipped"),
        ("network", "needed" if m.get("network") else "not needed"),
        ("redactions", _redaction_summary(m.get("redactions") or [])),
    ]


def _redaction_summary(redactions: list[dict]) -> str:
    by_kind: dict[str, int] = {}
    for r in redactions:
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + r["count"]
    return ", ".join(f"{kind} x{count}" for kind, count in sorted(by_kind.items())) or "none"


def _output_text(bundle) -> str:
    run = bundle.json("run.json", {}) or {}
    return "".join(text for _, text in run.get("output_tail") or [])


def _environment_lines(bundle) -> str:
    env = bundle.json("environment.json", {}) or {}
    lines = []
    for name, probe in sorted(env.items()):
        status = probe.get("status") if isinstance(probe, dict) else "?"
        if name in ("packages", "env"):
            value = probe.get("value") if isinstance(probe, dict) else None
            count = len(value) if isinstance(value, list) else len((value or {}).get("names", [])) \
                if isinstance(value, dict) else 0
            lines.append(f"{name}: {status} ({count} entries; see environment.json)")
            continue
        value = probe.get("value") if isinstance(probe, dict) else probe
        text = json.dumps(value, sort_keys=True, default=str)
        lines.append(f"{name}: {status} {text[:1500]}" + (f" error={probe.get('error')}" if probe.get("error") else ""))
    return "\n".join(lines)


def render_gh(bundle) -> str:
    m = bundle.manifest
    name = m.get("name", "bundle")
    facts = summary_facts(bundle)
    table = "\n".join("| %s | %s |" % (k, v.replace("|", "\\|")) for k, v in facts)
    sections = [
        f"## Failure captured by reprex: `{name}`",
        "",
        "| | |\n|---|---|\n" + table,
        "",
        "Reproduce it in a clean environment (verdict: reproduced / fixed / different):",
        "",
        _fence(f"reprex replay {name}.reprex.zip", "sh"),
        "",
        "<details><summary>Traceback</summary>\n\n"
        + _fence(_cut(bundle.text("traceback.txt"), _SECTION_BUDGET["traceback"]), "pytb") + "\n\n</details>",
        "",
        "<details><summary>repro.py</summary>\n\n" + _fence(_cut(bundle.text("repro.py"), 12000), "python")
        + "\n\n</details>",
        "",
        "<details><summary>Output (tail, stdout and stderr in order)</summary>\n\n"
        + _fence(_cut(_output_text(bundle), _SECTION_BUDGET["output"])) + "\n\n</details>",
        "",
        "<details><summary>requirements.txt (exact pins)</summary>\n\n"
        + _fence(_cut(bundle.text("requirements.txt"), _SECTION_BUDGET["requirements"])) + "\n\n</details>",
        "",
        "<details><summary>Environment probes</summary>\n\n"
        + _fence(_cut(_environment_lines(bundle), _SECTION_BUDGET["environment"])) + "\n\n</details>",
    ]
    skipped = (m.get("files") or {}).get("skipped") or []
    if skipped:
        lines = "\n".join(f"- `{s['path']}` ({s['size']} bytes): {s['reason']}" for s in skipped[:50])
        sections += ["", "<details><summary>Files not included</summary>\n\n" + lines + "\n\n</details>"]
    sections += ["", f"<sub>reprex {m.get('tool', {}).get('version')}, bundle schema {m.get('schema')}; "
                     "secrets were redacted before this was written.</sub>", ""]
    body = "\n".join(sections)
    if len(body) > GH_LIMIT:  # last resort: keep the head, which holds the facts
        note = "\n\n... [cut by reprex to fit GitHub's issue size limit; see the bundle] ...\n"
        body = body[: GH_LIMIT - len(note)] + note
    return body


def render_text(bundle) -> str:
    facts = summary_facts(bundle)
    width = max(len(k) for k, _ in facts)
    lines = [f"{k.rjust(width)}  {v}" for k, v in facts]
    return "\n".join(lines) + "\n\n" + bundle.text("traceback.txt")


def render_json(bundle) -> str:
    return json.dumps({"manifest": bundle.manifest, "summary": dict(summary_facts(bundle))}, indent=2,
                      sort_keys=True)


VENUES: dict[str, Callable] = {"gh": render_gh, "text": render_text, "json": render_json}


def render(bundle, venue: str = "gh") -> str:
    try:
        return VENUES[venue](bundle)
    except KeyError:
        raise ValueError(f"unknown venue {venue!r}; choose from {', '.join(VENUES)}") from None
