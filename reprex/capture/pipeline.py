"""Capture: run -> record -> probes -> pins -> redact -> bundle.

The one place that assembles a bundle from a recorded run (`assemble` -> a Draft that
reprex.draft.seal turns into the bundle); the CLI, the Python API, check-serve and the
pytest plugin all come through here.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform as _platform
import subprocess
from pathlib import Path

from reprex import __version__
from reprex.bundle import SUFFIX, Bundle, canonical_json
from reprex.capture.command import (CaptureError, CaptureOptions, CaptureResult, Progress, _noop, capture_command,
                                    default_output, write_bundle)
from reprex.capture.inputs import Inputs, app_module_files, collect_inputs, editable_trees
from reprex.capture.scrub import scrub_arguments, scrub_tail
from reprex.draft import Draft
from reprex.pins import canonical, closure, editable_roots, requirements_txt, roots_for
from reprex.record import RECORDER_FILE, Outcome, outcome_text
from reprex.signature import redacted_signature
from reprex.templates import render_template

# capture_command and its option/result types live in reprex.capture.command (light, so the
# program starts first); they are this module's API too.
__all__ = ["CaptureError", "CaptureOptions", "CaptureResult", "Progress", "assemble", "build_bundle",
           "capture_command", "default_output", "write_bundle"]


# -- assembling -----------------------------------------------------------------------

def _fallback_facts(python: str | None, modules: dict) -> dict:
    """Facts for a run that died before the recorder could write them (a hard crash)."""
    if not python:
        return {}
    try:
        # -I, not -S: site must run, or site-packages (every distribution) is missing from the facts
        proc = subprocess.run([python, "-I", str(RECORDER_FILE), "--facts"], capture_output=True, text=True,
                              timeout=20, env={k: v for k, v in os.environ.items() if k != "REPREX_RECORD_DIR"})
        facts = json.loads(proc.stdout)
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError):
        return {}
    # The fresh process ran nothing of the program: keep only what describes the environment.
    for key in ("main_file", "main_spec", "console_script", "argv", "orig_argv"):
        facts.pop(key, None)
    # It imported nothing either: map the recorded imports by top-level name.
    by_top: dict[str, list[str]] = {}
    for dist in facts.get("distributions") or ():
        for top in dist.get("top_level") or ():
            if top in modules:
                by_top.setdefault(top, []).append(dist["name"])
    facts["module_dists"] = by_top
    return facts


def _with_child_dists(facts: dict, outcome: Outcome) -> dict:
    """The facts with the run's child processes' module -> distribution map beside the recorded
    process's own (which wins), so what only a child imported is pinned too."""
    if not outcome.child_module_dists:
        return facts
    merged = {m: list(d) for m, d in outcome.child_module_dists.items()}
    merged.update(facts.get("module_dists") or {})
    return {**facts, "module_dists": merged}


def _child_dists_not_installed(facts: dict, outcome: Outcome) -> list[str]:
    """Distributions a child imported that the recorded interpreter's environment lacks (or
    has at another version): the child ran another Python, and its pin can't be written."""
    installed = {canonical(d.get("name", "")): d.get("version") for d in facts.get("distributions") or ()}
    if not installed:
        return []
    out = []
    for dist, version in sorted(outcome.child_versions.items()):
        have = installed.get(canonical(dist), "<missing>")
        if have != version:
            out.append(f"{dist}=={version}")
    return out


def _entry(outcome: Outcome, argv: list[str], cwd: Path, inputs: Inputs) -> dict:
    """How replay re-runs the program: Python arguments relative to files/."""
    facts = outcome.facts
    orig = list(facts.get("orig_argv") or outcome.start.get("orig_argv") or [])
    args = orig[1:] if orig else list(argv[1:])
    kind = "other"
    console = facts.get("console_script")
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-c":
            kind = "code"
            break
        if arg == "-m":
            kind = "module"
            break
        if arg in ("-X", "-W", "-Q") and i + 1 < len(args):
            i += 2
            continue
        if arg.startswith("-") and arg != "-":
            i += 1
            continue
        kind = "script"
        break
    if console and kind == "script":
        module, _, attr = console["value"].partition(":")
        attr = attr.strip() or "main"
        code = (f"import sys; from {module.strip()} import {attr.split('.')[0]} as _entry; "
                f"sys.argv[0] = {console['name']!r}; sys.exit(_entry{attr[len(attr.split('.')[0]):]}())")
        return {"argv": argv, "cwd": str(cwd), "kind": "console", "python_args": ["-c", code] + args[i + 1:]}
    if kind == "script" and i < len(args):
        if inputs.script_rel:
            args[i] = inputs.script_rel
    # Paths into the working tree become relative, so replay reads the bundled copies
    # (files/ is laid out as the working dir) rather than whatever is at that path.
    args = args[:i + 1] + [_relative_arg(a, cwd) for a in args[i + 1:]]
    return {"argv": argv, "cwd": str(cwd), "kind": kind, "python_args": args}


def _relative_arg(arg: str, cwd: Path) -> str:
    name, eq, value = arg.partition("=") if arg.startswith("-") else ("", "", arg)
    if not os.path.isabs(value):
        return arg
    try:
        rel = Path(value).resolve().relative_to(cwd).as_posix()
    except (ValueError, OSError):
        return arg
    return f"{name}{eq}{rel}" if eq else rel


def _pythonpath_entries(environ: dict, cwd: Path) -> list[str]:
    """PYTHONPATH entries inside the working tree (a `src/` layout), relative to it."""
    out = []
    for entry in (environ.get("PYTHONPATH") or "").split(os.pathsep):
        if not entry:
            continue
        try:
            rel = (cwd / entry).resolve().relative_to(cwd).as_posix()
        except (ValueError, OSError):
            continue
        if rel not in out:
            out.append(rel)
    return out


def _script_from_argv(orig_argv: list[str], cwd: Path) -> str | None:
    """The script a `python [opts] script.py` command line runs (for runs that died early)."""
    args = orig_argv[1:]
    i = 0
    while i < len(args):
        if args[i] in ("-c", "-m", "-"):
            return None
        if args[i] in ("-X", "-W"):
            i += 2
            continue
        if args[i].startswith("-"):
            i += 1
            continue
        path = Path(args[i]) if os.path.isabs(args[i]) else cwd / args[i]
        return str(path) if path.is_file() else None
    return None


def _created() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (_dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch and epoch.isdigit()
            else _dt.datetime.now(_dt.timezone.utc))
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _bundle_name(options: CaptureOptions, entry: dict, argv: list[str]) -> str:
    if options.name:
        name = options.name
    else:
        args = entry.get("python_args") or []
        if entry["kind"] == "script" and args:
            name = Path(next(a for a in args if not a.startswith("-") or a == "-")).stem
        elif entry["kind"] == "module" and "-m" in args:
            name = args[args.index("-m") + 1].rsplit(".", 1)[-1]
        elif entry["kind"] == "console":
            name = Path(argv[0]).name
        else:
            name = Path(argv[0]).stem or "repro"
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip(".-") or "repro"
    return safe[:100]


def _gpu_summary(probes: dict) -> dict | None:
    gpu = (probes.get("gpu") or {}).get("value") or {}
    if not gpu.get("count"):
        return None
    cuda = gpu.get("cuda_driver_version")
    torch_cuda = ((probes.get("cuda") or {}).get("value") or {}).get("torch", {}) or {}
    return {"count": int(gpu["count"]), "models": list(gpu.get("models") or []), "driver": gpu.get("driver"),
            "compute_capabilities": list(gpu.get("compute_capabilities") or []),
            "cuda": torch_cuda.get("cuda") or cuda}


def _platform_summary(probes: dict) -> dict:
    value = (probes.get("platform") or {}).get("value") or {}
    libc = value.get("libc")
    if isinstance(libc, dict):
        libc = " ".join(str(libc[k]) for k in ("name", "version") if libc.get(k)) or None
    if not libc:
        name, version = _platform.libc_ver()
        libc = f"{name} {version}".strip() or None
    distro = value.get("distro")
    if isinstance(distro, dict):
        distro = distro.get("pretty_name") or " ".join(str(distro[k]) for k in ("name", "version_id") if distro.get(k))
    return {"system": value.get("system") or _platform.system(), "machine": value.get("machine") or _platform.machine(),
            "libc": libc, "release": value.get("release") or _platform.release(), "distro": distro or None}


def needs_network(outcome: Outcome) -> bool:
    for conn in outcome.connects:
        if conn.get("family") in (2, 10):  # AF_INET, AF_INET6
            return True
    return False


def build_bundle(outcome: Outcome, *, argv: list[str], cwd: Path, environ: dict, python: str | None,
                 options: CaptureOptions, progress: Progress = _noop, extra_files: dict[str, bytes] | None = None,
                 entry: dict | None = None, script: Path | None = None) -> Bundle:
    """assemble() then seal(): for callers with nothing to change in between."""
    from reprex.draft import seal

    return seal(assemble(outcome, argv=argv, cwd=cwd, environ=environ, python=python, options=options,
                         progress=progress, extra_files=extra_files, entry=entry, script=script))


def _still_parses(original: bytes, redacted: bytes) -> bool:
    """False when redaction turned Python source that compiled into source that doesn't."""
    import ast

    try:
        ast.parse(original)
    except (SyntaxError, ValueError):
        return True  # it never parsed: nothing redaction could break
    try:
        ast.parse(redacted)
    except (SyntaxError, ValueError):
        return False
    return True


def assemble(outcome: Outcome, *, argv: list[str], cwd: Path, environ: dict, python: str | None,
             options: CaptureOptions, progress: Progress = _noop, extra_files: dict[str, bytes] | None = None,
             entry: dict | None = None, script: Path | None = None, redactor=None) -> Draft:
    """Everything of a bundle but its README, redactions list and id, each part scrubbed by
    `redactor` (default: one over `environ`); change the draft, then seal it (reprex.draft)."""
    from reprex.probes import ProbeContext, run_probes
    from reprex.redact import Redactor

    facts = outcome.facts or _fallback_facts(python, outcome.modules)
    progress("probing the environment")
    ctx = ProbeContext(python_executable=python or "python3", imported=frozenset(outcome.modules),
                       environ=environ, target_facts=facts, cwd=str(cwd))
    probes = run_probes(ctx, timeout=options.probe_timeout)

    progress("pinning what the run imported")
    preloaded = set(outcome.start.get("preloaded") or ())
    pin_facts = _with_child_dists(facts, outcome)
    roots = roots_for(pin_facts, {m: f for m, f in outcome.modules.items() if m not in preloaded})
    pins = closure(facts, roots)
    unpinned = _child_dists_not_installed(facts, outcome)
    if unpinned:
        progress("warning: a child process imported " + ", ".join(unpinned[:5])
                 + " from another environment than the recorded one's: not pinned")

    main_file = facts.get("main_file") or _script_from_argv(outcome.start.get("orig_argv") or [], cwd)
    if script is None and main_file and not str(main_file).startswith("<"):
        script = Path(main_file)
    inputs = collect_inputs(cwd, script=script, opened=outcome.opened,
                            app_modules=app_module_files(outcome.modules, cwd), include=options.include,
                            exclude=options.exclude, max_file=options.max_file_size, max_total=options.max_total,
                            editables=editable_trees(outcome.modules, editable_roots(facts)))
    if entry is None:
        entry = _entry(outcome, argv, cwd, inputs)
        pythonpath = _pythonpath_entries(environ, cwd)
        if pythonpath:
            entry["pythonpath"] = pythonpath
    if inputs.pythonpath:  # editable checkouts, bundled as files: importable from there
        known = list(entry.get("pythonpath") or [])
        entry = {**entry, "pythonpath": known + [p for p in inputs.pythonpath if p not in known]}
    name = _bundle_name(options, entry, argv)

    progress("redacting secrets")
    red = Redactor(environ) if redactor is None else redactor
    pickles_dropped = scrub_arguments(outcome.exception, red)
    signature = redacted_signature(outcome, red)
    files: dict[str, bytes] = {}
    for rel, src in sorted(inputs.files.items()):
        raw = src.read_bytes()
        files[rel] = red.bytes(raw, rel)
        if rel.endswith(".py") and files[rel] != raw and not _still_parses(raw, files[rel]):
            # A module the redactor broke would fail the replay as a SyntaxError (another
            # failure): leave it out, say why, and keep the secret out either way.
            del files[rel]
            inputs.files.pop(rel, None)
            inputs.skipped.append({"path": rel.removeprefix("files/"), "size": len(raw),
                                   "reason": "redaction would break its Python syntax: left out"})
    for rel, data in (extra_files or {}).items():
        files[rel] = red.bytes(data, rel)
    # Whole lists, so a flag and its value in separate elements (`--token VALUE`) are seen together.
    entry = {**entry, "argv": list(red.obj(list(entry["argv"]), "argv")), "cwd": red.text(entry["cwd"], "argv"),
             "python_args": list(red.obj(list(entry.get("python_args") or []), "argv"))}
    exception = red.obj(outcome.exception, "traceback") if outcome.exception else None
    run_record = {
        "outcome": red.obj(outcome.to_dict(), "locals"),
        "output_tail": scrub_tail(outcome.output_tail, red),
        "opened": [red.text(p, "opened") for p in outcome.opened],
        "connects": red.obj(outcome.connects, "network"),
        "modules": sorted(outcome.modules),
        # dotted names of the installed modules imported: what a docker replay's image byte-compiles
        "package_modules": red.obj(sorted(set(outcome.package_modules)), "modules"),
    }
    environment = red.obj({name_: probe for name_, probe in sorted(probes.items())}, "environment.json")
    environment["env"] = environment.get("env", {})
    if isinstance((probes.get("env") or {}).get("value"), dict):
        env_value = probes["env"]["value"]
        environment["env"] = {**probes["env"], "value": {
            "names": env_value.get("names", []),
            "values": red.env(env_value.get("values", {}), "environment.json")}}
    traceback_text = outcome_text(outcome, scrub=lambda t: red.text(t, "traceback"))
    reqs = red.text(requirements_txt(pins), "requirements.txt")
    python_facts = facts.get("python") or {}
    expect_exc = None
    if exception:
        from reprex.signature import innermost

        inner = innermost(exception) or exception
        expect_exc = {"type": exception.get("type"), "message": (exception.get("message") or "")[:2000],
                      "innermost_type": inner.get("type")}
    manifest = {
        "schema": 1,
        "id": "0" * 64,
        "name": name,
        "created": _created(),
        "tool": {"name": "reprex", "version": __version__},
        "entry": entry,
        "python": {"version": python_facts.get("version") or _platform.python_version(),
                   "implementation": python_facts.get("implementation") or _platform.python_implementation()},
        "platform": red.obj(_platform_summary(probes), "environment.json"),
        "gpu": red.obj(_gpu_summary(probes), "environment.json"),
        "expect": {"outcome": outcome.outcome, "exception": expect_exc, "exit_code": outcome.exit_code,
                   "signal": outcome.signal, "signature": signature.to_dict()},
        "network": needs_network(outcome) if options.network is None else bool(options.network),
        "pins": {"count": len(pins), "roots": sorted(roots & {canonical(p.name) for p in pins}), "flagged": red.obj([p.to_dict() for p in pins
                                                         if set(p.flags) - {"local-version"}], "requirements.txt")},
        "files": red.obj(inputs.manifest(), "files"),
        "pickles_dropped": red.obj(pickles_dropped, "locals"),
        "probes": {k: v.get("status") for k, v in sorted(probes.items())},
    }
    if outcome.children:  # the run's Python child processes were recorded too
        manifest["children"] = dict(outcome.children)
    from reprex.capture.sections import sections

    for key, value in sections(outcome, cwd=cwd, environ=environ).items():
        manifest.setdefault(key, red.obj(value, key))
    files.update({
        "requirements.txt": reqs.encode(),
        "environment.json": canonical_json(environment),
        "run.json": canonical_json(red.obj(run_record, "run.json")),
        "traceback.txt": traceback_text.encode(),
        "repro.py": red.text(render_template(
            "repro_launcher.py.tmpl", tool_version=__version__, summary=signature.short()[:200],
            bundle_name=f"{name}{SUFFIX}", python_args=repr(entry.get("python_args") or [])), "repro.py").encode(),
    })
    if exception:
        files["run.json"] = canonical_json({**json.loads(files["run.json"]), "exception": exception})
    return Draft(manifest=manifest, files=files, redactor=red)
