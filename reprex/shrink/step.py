"""`reprex shrink` as one step: calibrate -> script -> inputs -> pins -> verify -> a new bundle.

The reducers (reprex.shrink.script, reprex.shrink.inputs) propose smaller entries; the
oracle (reprex.shrink.oracle) runs each candidate through a replay backend and keeps
it only when the failure's signature stays. The result is a new bundle: the accepted
entries replace the original ones, which are kept under `original/` (as extract does),
and a `shrunk` manifest section says what changed and how reliably the result fails.
"""

from __future__ import annotations

import json
import posixpath
import re
import time
from dataclasses import dataclass, field
from typing import Callable

from reprex.bundle import Bundle
from reprex.shrink.oracle import Oracle, candidate_bundle
from reprex.shrink.pins import REQUIREMENTS, pin_count, shrink_pins

VERIFY_RUNS = 3


@dataclass
class ShrinkOptions:
    backend: str = "local"
    image: str | None = None
    jobs: int = 1
    budget: int | None = None  # oracle calls, all phases together
    time_s: float | None = None  # wall-clock seconds, all phases together
    keep_inputs: bool = False
    keep_pins: bool = False
    force: bool = False
    strict: bool | None = None  # the normalized message must stay too (replay --strict); None: when steady
    timeout: float | None = None  # seconds per run, the user's grant (None: 10x the calibrated median)
    verify_runs: int = VERIFY_RUNS
    network: str = "none"
    gpus: str = "none"
    allow_urls: bool = False
    ray: str | None = None  # a Ray cluster's address: each candidate is judged by a task there
    control: list[str] = field(default_factory=list)  # --fixed-with: what fixes the bug (a differential oracle)


@dataclass
class ShrinkReport:
    bundle: Bundle
    summary: dict
    log: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return self.summary


def statements(source: bytes) -> int:
    """Statements in a Python source (0: it doesn't parse). Parsed only, never run."""
    from reprex.shrink.script import count_statements

    try:
        return count_statements(source.decode("utf-8", "replace"))
    except (RecursionError, MemoryError):  # a hostile bundle's nesting
        return 0


def fix_from_bisect(bundle: Bundle) -> list[str]:
    """`--fixed-with auto`: the last good release of each package the bundle's `bisect` section
    blames, as `name==version`. The section is the bundle's (a stranger's): a name or version
    that isn't a plain PEP 508 name / PEP 440 version is refused, never passed on as a spec
    (which could be a path or a URL), and the release is installed as the bundle's pins are
    (wheels only: oracle.BundlePin), never built from an sdist on the host."""
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    from reprex.shrink.oracle import BundlePin, ShrinkRefused

    section = bundle.manifest.get("bisect")
    findings = section.get("findings") if isinstance(section, dict) else None
    specs = []
    for finding in findings if isinstance(findings, list) else []:
        if not isinstance(finding, dict) or not finding.get("first_bad"):
            continue
        name, good = finding.get("package"), finding.get("last_good")
        if not isinstance(name, str) or not isinstance(good, str) or not _PACKAGE.fullmatch(name):
            raise ShrinkRefused("--fixed-with auto: the bundle's bisect section names no usable package and release")
        try:
            version = Version(good)
        except InvalidVersion:
            raise ShrinkRefused("--fixed-with auto: the bundle's bisect section has a last good release that "
                                "isn't a version") from None
        # a pin of the candidates' own, never a --with spec (which builds an sdist on the host)
        specs.append(BundlePin(f"{canonicalize_name(name)}=={version}"))
    if not specs:
        raise ShrinkRefused("--fixed-with auto: the bundle has no bisect result with a last good release "
                            "(run `reprex bisect BUNDLE --package NAME` first, or name the fix: --fixed-with pkg==X)")
    return specs


_PACKAGE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")


def script_targets(bundle: Bundle) -> list[str]:
    """The Python entries to shrink: the entry script first, then the bundled local modules."""
    entry = bundle.manifest.get("entry") if isinstance(bundle.manifest.get("entry"), dict) else {}
    args = entry.get("python_args") if isinstance(entry.get("python_args"), list) else []
    first = None
    if entry.get("kind") == "extracted" or not args:
        first = "repro.py"
    elif args[0] == "-m" and len(args) > 1 and isinstance(args[1], str):
        mod = args[1].replace(".", "/")
        first = next((n for n in (f"files/{mod}.py", f"files/{mod}/__main__.py") if n in bundle.files), None)
    elif isinstance(args[0], str) and args[0].endswith(".py"):
        first = "files/" + posixpath.normpath(args[0])
    targets = [first] if first in bundle.files else []
    targets += sorted(n for n in bundle.files if n.startswith("files/") and n.endswith(".py") and n != first)
    return targets


def input_targets(bundle: Bundle) -> list[str]:
    return sorted(n for n in bundle.files if n.startswith("files/") and not n.endswith(".py"))


def shrink(bundle: Bundle, options: ShrinkOptions | None = None,
           progress: Callable[[str], None] = lambda m: None) -> ShrinkReport:
    """Shrink `bundle`; raises ShrinkRefused / OracleUnavailable when it can't be judged."""
    import warnings

    with warnings.catch_warnings():  # compiling candidates warns about code that was meant to fail
        warnings.simplefilter("ignore", SyntaxWarning)
        return _shrink(bundle, options or ShrinkOptions(), progress)


def _shrink(bundle: Bundle, options: ShrinkOptions, progress: Callable[[str], None]) -> ShrinkReport:
    from reprex.redact import Redactor
    from reprex.shrink.inputs import shrink_input
    from reprex.shrink.script import pins_of, shrink_script
    from reprex.signature import normalize_message

    started = time.monotonic()
    deadline = started + options.time_s if options.time_s else None
    log: list[str] = []
    before = _sizes(bundle, {})
    phases: dict[str, dict] = {}
    with Oracle(bundle, backend=options.backend, image=options.image, network=options.network, gpus=options.gpus,
                allow_urls=options.allow_urls, strict=options.strict, timeout=options.timeout,
                progress=progress, log=log.append, ray=options.ray, control=options.control) as oracle:
        calibration = oracle.calibrate(force=options.force)

        def left() -> int | None:
            return None if options.budget is None else max(0, options.budget - oracle.calls)

        def stop() -> bool:
            return (deadline is not None and time.monotonic() > deadline) or left() == 0

        def shown(what: str):
            def on_progress(info: dict) -> None:
                size = info.get("size", info.get("after"))
                progress(f"{what}: {oracle.calls} calls" + (f", {size} bytes" if size is not None else ""))
            return on_progress

        common = {"jobs": max(1, options.jobs), "deadline": deadline}
        # --strict compares the normalized message: the literals it shows are not asked about
        pinned = pins_of(oracle.expected.message, normalize_message) if oracle.options.strict else None
        _drop_unimported(oracle, script_targets(bundle)[1:], progress)
        for name in script_targets(bundle):
            if stop():
                break
            if name in oracle.base:  # removed whole above
                continue
            try:
                source = bundle.files[name].decode("utf-8")
            except UnicodeDecodeError:
                continue
            progress(f"script {name}: {oracle.calls} calls")
            text, stats = shrink_script(source, lambda s, n=name: oracle.interesting({n: s.encode()}),
                                        budget=left(), on_progress=shown(f"script {name}"), pinned=pinned,
                                        differential=bool(options.control), **common)
            if text != source and oracle.interesting({name: text.encode()}):
                oracle.accept({name: text.encode()})
            phases[name] = _stats(stats)
        if not options.keep_inputs and not stop():
            _drop_unread(oracle, input_targets(bundle), progress)
            for name in input_targets(bundle):
                if stop() or name in oracle.base:
                    continue
                progress(f"input {name}: {oracle.calls} calls")
                data, stats = shrink_input(name[len("files/"):], bundle.files[name],
                                           lambda b, n=name: oracle.interesting({n: b}),
                                           budget=left(), on_progress=shown(f"input {name}"), **common)
                if data != bundle.files[name] and oracle.interesting({name: data}):
                    oracle.accept({name: data})
                phases[name] = _stats(stats)
        if not options.keep_pins and not stop():
            phases[REQUIREMENTS] = shrink_pins(oracle, budget=left(), progress=progress, **common)
        red = Redactor()  # what is verified is what gets written: the entries as redaction leaves them
        oracle.accept({name: None if data is None else red.bytes(data, name) for name, data in oracle.base.items()})
        verdicts, outcome = oracle.verify(options.verify_runs)
        control = None
        if options.control:  # the shrunk bundle with the fix, once: it must not fail that way there
            fixed, _ = oracle.run(control=True)
            oracle.control_runs += 1
            control = {"with": list(options.control), "runs": oracle.control_runs, "verdict": fixed}
        reproduced = verdicts.count("reproduced")
        summary = {
            "backend": options.backend, "strict": oracle.options.strict,
            **({"ray": {"nodes": dict(oracle.nodes)}} if options.ray else {}),
            **({"control": control} if control else {}),
            "before": before,
            "after": _sizes(bundle, oracle.base),
            "calls": oracle.calls, "cache_hits": oracle.cache_hits, "runs": oracle.runs,
            "warm_starts": oracle.warm_stats(),
            "rejected": dict(sorted(oracle.rejected.items())),
            "calibration": calibration.to_dict(),
            "verify": {"runs": len(verdicts), "reproduced": reproduced,
                       "rate": round(reproduced / len(verdicts), 3), "verdicts": verdicts},
            "phases": phases,
            "changed": sorted(oracle.base),
            "stopped": ("budget" if left() == 0 else "time") if stop() else None,  # what cut the search short
            "seconds": round(time.monotonic() - started, 2),
        }
        if reproduced == 0:  # never hand back a bundle that doesn't fail: keep the original
            summary["kept"] = "original"
            return ShrinkReport(bundle=bundle, summary=summary, log=log)
        summary["kept"] = "shrunk"
        return ShrinkReport(bundle=_sealed(bundle, oracle.base, summary, red, outcome), summary=summary, log=log)


def _stats(stats) -> dict:
    return stats.as_dict() if hasattr(stats, "as_dict") else dict(vars(stats))


def _drop_unimported(oracle: Oracle, names: list[str], progress) -> None:
    """Bundled modules the reproducing run neither imported nor opened (capture bundles a
    package's other modules, for the fixed run): one candidate without all of them, so each
    doesn't cost a pass of its own. Kept when the failure needs them after all."""
    from reprex.shrink.inputs import drop_unread

    if not names:
        return
    outcome = oracle.current()
    modules = getattr(outcome, "modules", None) or {}
    seen = [p for p in (getattr(outcome, "opened", None) or [])] + [p for p in modules.values() if isinstance(p, str)]
    used = set(drop_unread([n[len("files/"):] for n in names], seen))
    unused = [n for n in names if n[len("files/"):] not in used]
    if unused:
        progress(f"script: removing {len(unused)} bundled modules the run never imported")
        if oracle.interesting(dict.fromkeys(unused)):
            oracle.accept(dict.fromkeys(unused))


def _drop_unread(oracle: Oracle, names: list[str], progress) -> None:
    """Inputs the reproducing run never opened: removed together, else one at a time."""
    from reprex.shrink.inputs import drop_unread

    outcome = oracle.current()
    read = set(drop_unread([n[len("files/"):] for n in names], getattr(outcome, "opened", None) or []))
    unread = [n for n in names if n[len("files/"):] not in read]
    if not unread:
        return
    progress(f"inputs: removing {len(unread)} the run never opened")
    if oracle.interesting(dict.fromkeys(unread)):
        oracle.accept(dict.fromkeys(unread))
        return
    for name in unread:
        if oracle.interesting({name: None}):
            oracle.accept({name: None})


def _sizes(bundle: Bundle, changes: dict) -> dict:
    files = candidate_bundle(bundle, changes).files
    scripts = [n for n in script_targets(bundle) if n in files]
    return {"statements": sum(statements(files[n]) for n in scripts),
            "script_bytes": sum(len(files[n]) for n in scripts),
            "inputs": {n[len("files/"):]: len(files[n]) for n in input_targets(bundle) if n in files},
            "pins": pin_count(files.get(REQUIREMENTS, b"").decode("utf-8", "replace")),
            "bundle_bytes": sum(len(v) for v in files.values())}


def _sealed(bundle: Bundle, changes: dict, summary: dict, red, outcome) -> Bundle:
    """The new bundle: accepted entries in (redacted by `red` already), the originals under
    original/, a `shrunk` section (scrubbed by `red`), and the expected message of what the
    shrunk bundle does (`outcome`, a verification run: bundle code's output, redacted here)."""
    from reprex.draft import Draft, seal
    from reprex.signature import redacted_signature

    draft = Draft.of(bundle, red)
    files, manifest = draft.files, draft.manifest
    for name, data in sorted(changes.items()):
        if name in files:
            files.setdefault(f"original/{name}", files[name])  # a bundle shrunk twice keeps the first original
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    copied = sorted(n for n in files if n.startswith("files/"))
    if isinstance(manifest.get("files"), dict):
        manifest["files"] = {**manifest["files"], "copied": copied,
                             "total_bytes": sum(len(files[n]) for n in copied)}
    if isinstance(manifest.get("pins"), dict):
        manifest["pins"] = {**manifest["pins"],
                            "count": pin_count(files.get(REQUIREMENTS, b"").decode("utf-8", "replace"))}
    manifest.pop("shrunk", None)
    expect = manifest.get("expect") if isinstance(manifest.get("expect"), dict) else {}
    # a run on a cluster brings back no Outcome: the expected signature stays the original's
    signature = redacted_signature(outcome, red) if outcome is not None else None
    old = expect.get("signature") if isinstance(expect.get("signature"), dict) else {}
    if signature is not None and signature.id == old.get("id") and signature.message != old.get("message"):
        # same failure, another message (a shorter input, a constant): replay --strict judges by this one
        manifest.setdefault("original_expect", json.loads(json.dumps(expect)))
        manifest["expect"] = {**expect, "signature": signature.to_dict()}
        exception = expect.get("exception")
        if isinstance(exception, dict) and isinstance(getattr(outcome, "exception", None), dict):
            message = outcome.exception.get("message")
            if isinstance(message, str):
                manifest["expect"]["exception"] = {**exception,
                                                   "message": red.text(message[:20000], "traceback")[:2000]}
    draft.readme_notes.append(_readme_note(summary))
    draft.add("shrunk", {k: summary[k] for k in ("backend", "strict", "before", "after", "calls", "cache_hits",
                                                  "runs", "calibration", "verify", "changed", "seconds", "control")
                         if k in summary})
    new = seal(draft)
    Bundle.from_entries(new.entries(), source="the shrunk bundle")  # the read-side checks, before it is kept
    return new


def shrink_into(path, options: ShrinkOptions | None = None) -> tuple[Bundle, str]:
    """Shrink the bundle at `path` in place (`capture --shrink`): (the bundle now there, one
    line saying what happened). A bundle that can't be shrunk stays as it was."""
    from reprex.errors import ReprexError

    bundle = Bundle.read(path)
    try:
        report = shrink(bundle, options)
    except ReprexError as exc:
        return bundle, f"not shrunk: {exc.message}"
    if report.summary.get("kept") != "shrunk":
        return bundle, "not shrunk: the shrunk bundle did not reproduce when verified"
    report.bundle.write(path)
    before, after = report.summary["before"], report.summary["after"]
    return report.bundle, (f"{before['statements']} -> {after['statements']} statements, "
                           f"{sum(before['inputs'].values())} -> {sum(after['inputs'].values())} input bytes, "
                           f"{before['pins']} -> {after['pins']} pins ({report.summary['calls']} candidates judged; "
                           "the original entries are under original/)")


def _readme_note(summary: dict) -> str:
    """The issue body's line about the shrinking (numbers and fixed words only)."""
    before, after, verify = summary["before"], summary["after"], summary["verify"]
    return (f"Shrunk by `reprex shrink`: {before['statements']} -> {after['statements']} statements, "
            f"{sum(before['inputs'].values())} -> {sum(after['inputs'].values())} input bytes, "
            f"{before['pins']} -> {after['pins']} pins; the result reproduced in {verify['reproduced']} of "
            f"{verify['runs']} runs. The original entries are under `original/`.")
