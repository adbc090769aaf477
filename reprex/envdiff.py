"""Two environments side by side: what differs between a bundle's machine and another
bundle's, this machine's (`here`), or a replay's.

"Works on my machine" is usually answered by a difference in Python patch release, a pin,
libc, CUDA or an environment variable, so every comparable fact is a row (section, what,
a, b, kind). A fact one side doesn't know (a probe that failed or was skipped, a backend
that can't tell) is left out rather than shown as a difference; a fact known to be absent
(no GPU, a package not installed) is None and is one. Bundle text is a stranger's: rows
hold it raw and each output (the CLI's table, `to_markdown`) escapes it where it lands.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field

from reprex.errors import ReprexError
from reprex.pins import canonical, parse_requirements
from reprex.signature import chain, classify

SECTIONS = ("python", "platform", "gpu", "pins", "env", "signature")
FRAMEWORKS = ("torch", "jax", "jaxlib", "cupy", "tensorflow")  # what the cuda probe looks at
_MAJOR = re.compile(r"^\s*(?:\d+!)?(\d+)")


class DiffError(ReprexError):
    """An environment that can't be read (the `here` interpreter didn't answer)."""


@dataclass
class Side:
    """One environment's comparable facts. In `facts` a missing key is unknown, None absent."""

    label: str
    facts: dict[str, str | None] = field(default_factory=dict)
    pins: dict[str, str] | None = None  # canonical name -> version; None: unknown
    installed: bool = False  # pins are everything installed (here, a replay), not a run's closure
    env_names: set[str] | None = None
    signature: dict | None = None
    frame_modules: set[str] = field(default_factory=set)  # top-level modules of non-app failing frames


@dataclass
class EnvDiff:
    a: str
    b: str
    rows: list[dict]

    @property
    def differences(self) -> list[dict]:
        return [r for r in self.rows if r["kind"] != "same"]

    @property
    def same(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "same": self.same, "differences": len(self.differences),
                "sections": self.rows}


# -- reading a side ----------------------------------------------------------------------

def _obj(value) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value) -> str | None:
    return None if value is None else str(value)


def _probe_ok(environment: dict, name: str) -> dict | None:
    """A probe's value when it ran (None when it failed, was skipped or isn't there)."""
    probe = _obj(environment.get(name))
    return _obj(probe.get("value")) if probe.get("status") == "ok" else None


def _facts(manifest: dict, environment: dict) -> dict[str, str | None]:
    """The scalar facts of a manifest-shaped summary and its environment.json-shaped probes."""
    out: dict[str, str | None] = {}
    py, plat = _obj(manifest.get("python")), _obj(manifest.get("platform"))
    for key in ("version", "implementation"):
        if py.get(key):
            out["python" if key == "version" else f"python.{key}"] = str(py[key])
    for key in ("system", "machine", "libc", "distro", "release"):
        if key in plat:
            out[f"platform.{key}"] = _text(plat[key])
    cpu = _obj(_obj(_probe_ok(environment, "platform")).get("cpu"))
    if isinstance(cpu.get("simd"), list):
        out["cpu.simd"] = " ".join(str(f) for f in cpu["simd"]) or None
    probes = _obj(manifest.get("probes"))
    gpu = manifest.get("gpu")
    if isinstance(gpu, dict):
        out["gpu"] = f"{gpu.get('count')}x {', '.join(str(m) for m in gpu.get('models') or [])}".strip()
        out["gpu.driver"], out["gpu.cuda"] = _text(gpu.get("driver")), _text(gpu.get("cuda"))
        out["gpu.compute_capabilities"] = " ".join(str(c) for c in gpu.get("compute_capabilities") or []) or None
    elif probes.get("gpu") == "ok":  # no GPU: its driver and CUDA rows would only repeat that
        out["gpu"] = "none"
    cuda = _probe_ok(environment, "cuda")
    if cuda is not None:
        torch = _obj(_obj(cuda.get("frameworks")).get("torch"))
        out["torch.cuda"] = _text(torch.get("cuda"))
        out["torch.arch_list"] = " ".join(str(a) for a in torch.get("arch_list") or []) or None
    return out


def _env_names(environment: dict) -> set[str] | None:
    names = _obj(_obj(environment.get("env")).get("value")).get("names")
    return {str(n) for n in names} if isinstance(names, list) else None


def bundle_pins(bundle) -> dict[str, str]:
    """requirements.txt's `name==version` pins by canonical name (URL pins have no version to compare)."""
    out = {}
    for line in parse_requirements(bundle.text("requirements.txt")):
        name, eq, version = line.partition("==")
        words = version.split(";")[0].split()
        if eq and name.strip():
            out[canonical(name.strip())] = words[0] if words else ""
    return out


def _frame_modules(run: dict) -> set[str]:
    """Top-level modules of the failing frames outside the app: the packages the failure went through."""
    out = set()
    for exc in chain(_obj(run.get("exception")) or None):
        for frame in exc.get("frames") or ():
            if not isinstance(frame, dict):
                continue
            kind, loc = classify(str(frame.get("file") or ""))
            if kind == "package" and loc:
                out.add(canonical(loc.split("/", 1)[0].removesuffix(".py")))
    return out


def side_from_bundle(bundle, label: str | None = None) -> Side:
    m = bundle.manifest
    environment = _obj(bundle.json("environment.json", {}))
    return Side(label=label or bundle.name, facts=_facts(m, environment), pins=bundle_pins(bundle),
                env_names=_env_names(environment), signature=_obj(_obj(m.get("expect")).get("signature")) or None,
                frame_modules=_frame_modules(_obj(bundle.json("run.json", {}))))


def installed_pins(distributions) -> dict[str, str]:
    return {canonical(str(d["name"])): str(d.get("version")) for d in distributions or ()
            if isinstance(d, dict) and d.get("name")}


def _interpreter_facts(python: str) -> dict:
    """The recorder's facts() read in `python`, started as a captured run starts it (its
    site, PYTHONPATH and user site count), minus the recorder's own switch."""
    from reprex.record import RECORDER_FILE

    env = {k: v for k, v in os.environ.items() if k != "REPREX_RECORD_DIR"}
    try:
        proc = subprocess.run([python, str(RECORDER_FILE), "--facts"], capture_output=True, text=True, timeout=60,
                              env=env, stdin=subprocess.DEVNULL)
        facts = json.loads(proc.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        detail = getattr(exc, "strerror", None) or type(exc).__name__
        raise DiffError(f"{python}: cannot read its environment ({detail})") from None
    if not isinstance(facts, dict):
        raise DiffError(f"{python}: cannot read its environment (no facts)")
    return facts


def side_here(python: str | None = None, *, probe_timeout: float = 10.0, label: str = "here") -> Side:
    """This machine with `python` (default: this interpreter), probed as capture probes a run."""
    from reprex.capture.pipeline import _gpu_summary, _platform_summary
    from reprex.probes import ProbeContext, run_probes

    python = python or sys.executable
    facts = _interpreter_facts(python)
    names = {canonical(str(d.get("name"))) for d in facts.get("distributions") or () if isinstance(d, dict)}
    tops = {t for d in facts.get("distributions") or () if isinstance(d, dict) for t in d.get("top_level") or ()}
    ctx = ProbeContext(python_executable=python, imported=frozenset((names | tops) & set(FRAMEWORKS)),
                       environ=dict(os.environ), target_facts=facts, cwd=os.getcwd())
    probes = run_probes(ctx, timeout=probe_timeout)
    py = _obj(facts.get("python"))
    manifest = {"python": {"version": py.get("version"), "implementation": py.get("implementation")},
                "platform": _platform_summary(probes), "gpu": _gpu_summary(probes),
                "probes": {k: _obj(v).get("status") for k, v in probes.items()}}
    packages = _probe_ok(probes, "packages") or {}
    return Side(label=label, facts=_facts(manifest, probes), pins=installed_pins(packages.get("distributions")),
                installed=True, env_names=_env_names(probes))


# -- comparing ---------------------------------------------------------------------------

def _kind(a, b) -> str:
    if a == b:
        return "same"
    return "added" if a is None else "removed" if b is None else "changed"


def _row(section: str, what: str, a, b, **extra) -> dict:
    return {"section": section, "what": what, "a": a, "b": b, "kind": _kind(a, b), **extra}


def major_change(a: str | None, b: str | None) -> bool:
    """Compared as digit strings: a bundle's version may be a million digits long, past what
    int() converts."""
    ma, mb = _MAJOR.match(a or ""), _MAJOR.match(b or "")
    return bool(ma and mb and (ma.group(1).lstrip("0") or "0") != (mb.group(1).lstrip("0") or "0"))


def _pin_rows(a: Side, b: Side) -> list[dict]:
    if a.pins is None or b.pins is None:
        return []
    # A run's closure against everything installed: only what the run needed is compared.
    if a.installed and not b.installed:
        names = set(b.pins)
    elif b.installed and not a.installed:
        names = set(a.pins)
    else:
        names = set(a.pins) | set(b.pins)
    in_frames = a.frame_modules | b.frame_modules
    rows = []
    for name in sorted(names):
        va, vb = a.pins.get(name), b.pins.get(name)
        flags = (["major"] if major_change(va, vb) else []) + (["in-frames"] if name in in_frames else [])
        rows.append(_row("pins", f"pin {name}", va, vb, flags=flags))
    return rows


def _signature_rows(a: Side, b: Side, strict: bool) -> list[dict]:
    if not a.signature or not b.signature:
        return []
    rows = []
    for key, joiner in (("types", " <- "), ("frames", ", ")):
        va, vb = (joiner.join(str(x) for x in s.get(key) or []) for s in (a.signature, b.signature))
        rows.append(_row("signature", f"signature.{key}", va, vb))
    if strict:
        rows.append(_row("signature", "signature.message", _text(a.signature.get("message")),
                         _text(b.signature.get("message"))))
    return rows


def compare(a: Side, b: Side, *, strict: bool = False) -> EnvDiff:
    """Every fact both sides know, as rows in SECTIONS order; the message only with `strict`."""
    rows = []
    for what in sorted(set(a.facts) & set(b.facts), key=_fact_order):
        rows.append(_row(_section(what), what, a.facts[what], b.facts[what]))
    rows += _pin_rows(a, b)
    if a.env_names is not None and b.env_names is not None:
        rows += [_row("env", f"env {n}", "set" if n in a.env_names else None, "set" if n in b.env_names else None)
                 for n in sorted(a.env_names | b.env_names)]
    rows += _signature_rows(a, b, strict)
    return EnvDiff(a.label, b.label, rows)


_FACT_ORDER = ("python", "python.implementation", "platform.system", "platform.machine", "platform.libc",
               "platform.distro", "platform.release", "cpu.simd", "gpu", "gpu.driver", "gpu.cuda",
               "gpu.compute_capabilities", "torch.cuda", "torch.arch_list")


def _section(what: str) -> str:
    return "python" if what.startswith("python") else "gpu" if what.startswith(("gpu", "torch")) else "platform"


def _fact_order(what: str) -> tuple[int, str]:
    return (_FACT_ORDER.index(what) if what in _FACT_ORDER else len(_FACT_ORDER), what)


# -- showing -----------------------------------------------------------------------------

MD_BUDGET = 50_000  # the table's characters: with a bundle's own body, under GitHub's 65,536 a comment
_LISTED = ("pins", "env")  # long sections: their differing rows only, and a count of the rest


def shown(diff: EnvDiff) -> tuple[list[dict], dict[str, int]]:
    """The rows a reader sees (every fact, but only differing pins and variables) and how
    many same rows each long section hides."""
    rows, hidden = [], {}
    for row in diff.rows:
        if row["section"] in _LISTED and row["kind"] == "same":
            hidden[row["section"]] = hidden.get(row["section"], 0) + 1
        else:
            rows.append(row)
    return rows, hidden


def note(row: dict) -> str:
    return ", ".join({"major": "major", "in-frames": "in failing frames"}[f] for f in row.get("flags") or ())


def to_markdown(diff: EnvDiff) -> str:
    """GitHub markdown: every bundle string md_inline-escaped (no HTML, links, mentions or breaks)."""
    from reprex.escape import md_inline

    rows, hidden = shown(diff)
    cell = lambda value: "_(none)_" if value is None else md_inline(value, 300)  # noqa: E731
    lines = [f"### Environment differences: {md_inline(diff.a, 200)} vs {md_inline(diff.b, 200)}", "",
             "| | what | a | b | note |", "|---|---|---|---|---|"]
    size, kept = 0, 0
    for row in rows:
        mark = "" if row["kind"] == "same" else md_inline(row["kind"])
        line = (f"| {mark} | {md_inline(row['what'], 200)} | {cell(row['a'])} | {cell(row['b'])} | "
                f"{md_inline(note(row))} |")
        size += len(line) + 1
        if size > MD_BUDGET:
            break
        lines.append(line)
        kept += 1
    lines.append("")
    if kept < len(rows):
        lines.append(f"{len(rows) - kept} more rows left out (`reprex diff --json` lists them all).")
    for section, count in hidden.items():
        lines.append(f"{count} {'pins' if section == 'pins' else 'environment variables'} the same on both sides.")
    lines.append(f"**{len(diff.differences)} difference(s).**" if diff.differences else "**No differences.**")
    return "\n".join(lines) + "\n"
