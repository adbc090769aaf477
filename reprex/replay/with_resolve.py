"""`--with` a release: the bundle's pins re-resolved around it, so the replay's environment works.

`--with` installs each spec with --no-deps over the bundle's pins (an overlay), which is right
for a local checkout of a fix but not for a release whose own requirements differ from the
pins: `--with pydantic==2.5.3` over pydantic-core 2.0.2 fails to import, and that failure is
not a verdict about the bug. So a spec that names a release (`name==V`, or a range such as
`name>=2`, which becomes the one release the resolver picks) is resolved first, as `reprex
bisect` resolves its probes (reprex.bisect.probe): `uv pip compile` of the bundle's roots and
the specs, with the bundle's pins as the existing output file (uv keeps those versions wherever
the specs allow), so only what the release's metadata requires moves.

- Nothing else moves: the replay is what it was (the bundle's own environment and its cache
  key, the specs in the overlay), a range spec pinned to the release resolved; a requirement
  the bundle has no pin for at all joins the overlay (and is said: `added name V`).
- Other pins move: the replay's pins are the re-resolved ones (an environment of their own),
  and what moved is said (progress, the result's reason and `with_moved`).
- The resolver finds no solution: an infra-error with its one-line reason, never a run.

Path and URL specs (a local checkout, a wheel file) stay in the overlay as they were. Without
uv (pip fallback) nothing is resolved: the specs go over the pins as before. For the docker
backend nothing but the specs' own releases is built on the host to resolve (wheels only).
An exact release's answer is kept under the cache's resolved/ (released metadata doesn't
change), so a warm `--with NAME==V` replay costs no resolution; a range is resolved each time.
uv runs from installer.UV_CWD (/): a uv.toml or pyproject.toml where the user stands is not read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from reprex import installer
from reprex.bundle import Bundle
from reprex.pins import canonical, parse_requirements
from reprex.replay.base import InfraError, ReplayOptions

RESOLVE_TIMEOUT = 300.0
_EXACT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#,]+)\s*$")
# this process's answers (the pytest plugin, `replay --ray` runners: one resolution per pin set and
# specs); exact releases' also on disk, under the cache's resolved/
_MEMO: dict[str, dict] = {}
_MEMO_LOCK = threading.Lock()


@dataclass
class WithPlan:
    """What the backend gets: the bundle (the original, or one with re-resolved pins) and the
    specs left for the overlay; `moved`: {name: (old, new)} of the pins other than the specs'
    own that moved (old None: added); `chosen`: {spec: the version it resolved to}."""

    bundle: Bundle
    specs: list[str]
    moved: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    chosen: dict[str, str] = field(default_factory=dict)
    resolve_s: float = 0.0

    def note(self) -> str:
        """One line for the reason: which pins the --with releases moved, and which they added."""
        return f"--with {', '.join(self.chosen)} {_describe(self.moved)}" if self.moved else ""


def _describe(moved: dict) -> str:
    moves = [f"{n} {old} -> {new}" for n, (old, new) in sorted(moved.items()) if old is not None]
    adds = [f"{n} {new}" for n, (old, new) in sorted(moved.items()) if old is None]
    return "; ".join(([f"moved other pins: {', '.join(moves)}"] if moves else [])
                     + ([f"added {', '.join(adds)}"] if adds else []))


def release_spec(spec: str):
    """The spec as a packaging Requirement when it names releases of a package from an index
    (`name==V`, `name>=2`, `name[extra]~=1.2`, `name`); None for a path, a URL or a file."""
    from packaging.requirements import InvalidRequirement, Requirement

    text = spec.strip()
    if not text or os.path.exists(spec) or text.startswith((".", "/", "~")) or "://" in text \
            or text.endswith((".whl", ".zip", ".tar.gz", ".tgz")):
        return None
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return None
    return None if req.url else req


def plan(bundle: Bundle, options: ReplayOptions, *, wheels_only: bool,
         progress: Callable[[str], None] = lambda _: None) -> WithPlan:
    """The replay's bundle and overlay specs for `options.with_specs` (see the module's doc).
    `wheels_only`: the bundle's pins may only be resolved from wheels (the docker backend: no
    sdist of a stranger's pin is built on the host, and the image installs wheels only)."""
    from reprex.bisect.probe import changed, exact_pins, lines_of, roots, target_of

    specs = list(options.with_specs)
    releases = {spec: req for spec in specs if (req := release_spec(spec)) is not None}
    if not releases or installer.uv() is None:
        return WithPlan(bundle, specs)
    lines = lines_of(bundle)
    target = target_of(bundle)
    label = ", ".join(releases)
    key = _key(lines, specs, wheels_only, target, roots(bundle))
    # exact releases only are kept between runs: their metadata (and the pins') never changes,
    # so neither does the answer; what a range means changes with every release
    persist = all(_exact(req) for req in releases.values())
    entry = _lookup(key, persist)
    started = time.monotonic()
    if entry is None:
        names = {canonical(req.name) for req in releases.values()}
        progress(f"resolving --with {label} with the bundle's pins")
        resolved = _resolve(bundle, lines, list(releases), names, target, wheels_only,
                            timeout=min(RESOLVE_TIMEOUT, options.setup_timeout))
        pins = exact_pins(resolved)
        chosen = {spec: pins[canonical(req.name)] for spec, req in releases.items() if canonical(req.name) in pins}
        # a pin the resolution no longer needs stays (nothing has to move it); URL lines as they were
        kept = [l for l in lines if canonical(_name(l)) not in pins]
        new_lines = sorted(resolved + kept)
        moved = {n: [old, new] for n, (old, new) in changed(lines, new_lines).items() if n not in names}
        if all(old is None for old, _ in moved.values()):
            # no pin moves: the overlay as before, over the bundle's own environment (a range as the
            # release resolved), with what the releases need that the bundle lacks
            added = [f"{n}=={new}" for n, (_, new) in sorted(moved.items())]
            entry = {"lines": None, "chosen": chosen, "moved": moved,
                     "overlay": [_pinned(s, releases[s], chosen[s]) if s in chosen else s for s in specs] + added}
        else:  # the releases are pins now; paths and URLs stay in the overlay
            entry = {"lines": new_lines, "chosen": chosen, "moved": moved,
                     "overlay": [s for s in specs if s not in chosen]}
        _store(key, entry, persist)
    else:
        progress(f"--with {label}: resolved with these pins before")
    moved = {n: (old, new) for n, (old, new) in entry["moved"].items()}
    how = "the pins re-resolved around it" if entry["lines"] is not None else "over the bundle's own environment"
    progress(f"--with {label}: {_chosen(entry['chosen'])}; {_describe(moved) or 'no other pin moves'} ({how})")
    return WithPlan(bundle if entry["lines"] is None else _with_lines(bundle, entry["lines"]), list(entry["overlay"]),
                    moved, dict(entry["chosen"]), time.monotonic() - started)


def _key(lines: list[str], specs: list[str], wheels_only: bool, target, roots: list[str]) -> str:
    """What the answer depends on: the pins, the specs, the target, the roots, where uv looks."""
    doc = {"v": 1, "lines": sorted(lines), "specs": specs, "wheels_only": wheels_only, "python": target.python,
           "machine": target.machine, "roots": sorted(roots), "pip": installer.pip_settings(),
           "uv": {k: v for k, v in os.environ.items() if k.startswith("UV_") and k != "UV_CACHE_DIR"}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def _lookup(key: str, persist: bool) -> dict | None:
    with _MEMO_LOCK:
        entry = _MEMO.get(key)
    if entry is not None or not persist:
        return entry
    try:
        entry = json.loads(_path(key).read_text())
    except (OSError, ValueError):
        return None
    if not _valid(entry):
        return None
    with _MEMO_LOCK:
        _MEMO[key] = entry
    return entry


def _store(key: str, entry: dict, persist: bool) -> None:
    with _MEMO_LOCK:
        _MEMO[key] = entry
    if not persist:
        return
    path = _path(key)
    try:  # a cache: trouble writing it costs the next replay a resolution, nothing more
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
        tmp.write_text(json.dumps(entry, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass


def _path(key: str) -> Path:
    from reprex.fsutil import cache_root

    return cache_root() / "resolved" / key[:2] / f"{key}.json"


def _valid(entry) -> bool:
    """A cached entry as _store wrote it (the cache is ours, but a file can be cut short or edited)."""
    if not isinstance(entry, dict):
        return False
    lines, overlay, moved, chosen = entry.get("lines"), entry.get("overlay"), entry.get("moved"), entry.get("chosen")
    return (lines is None or (isinstance(lines, list) and all(isinstance(l, str) for l in lines))) \
        and isinstance(overlay, list) and all(isinstance(s, str) for s in overlay) \
        and isinstance(chosen, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in chosen.items()) \
        and isinstance(moved, dict) and all(isinstance(k, str) and isinstance(v, list) and len(v) == 2
                                             and all(x is None or isinstance(x, str) for x in v)
                                             for k, v in moved.items()) \
        and (lines is None) == all(v[0] is None for v in moved.values())


def _exact(req) -> bool:
    specs = list(req.specifier)
    return len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version


def _resolve(bundle: Bundle, lines: list[str], specs: list[str], names: set[str], target, wheels_only: bool, *,
             timeout: float) -> list[str]:
    """`uv pip compile` of the bundle's roots and the specs, the pins as preferences: the exact
    `name==version` lines it gives; InfraError with the resolver's reason when there is none.

    wheels_only (docker): nothing is built on the host but the user's own specs: the first try
    takes wheels only; a spec's release that has none (uv's hint names it) is let build, as
    `--with` builds it for the image anyway. A dependency that has no wheel is not built (a
    stranger's pins could name one whose sdist runs code on this machine)."""
    from reprex.bisect.probe import exact_pins, roots

    pinned = exact_pins(lines)  # URL lines are neither preferences nor roots: never fetched from here
    wanted = [r for r in roots(bundle) if r not in names and r in pinned] + specs
    args = ["-", "--quiet", "--no-header", "--no-annotate", "--python-version", target.python,
            "--python-platform", target.uv_platform]
    if wheels_only:
        args += ["--only-binary", ":all:"]
    label = ", ".join(specs)
    built: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="reprex-with-resolve-") as tmp:
        prefs = Path(tmp) / "requirements.txt"
        while True:
            # the existing output file: uv keeps these versions wherever the specs allow
            prefs.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pinned.items()) if n not in names))
            more = [a for n in sorted(built) for a in ("--no-binary", n)]
            try:
                proc = _compile([*args, *more, "-o", str(prefs)], timeout, "\n".join(wanted) + "\n",
                                installer.UV_CWD)
            except subprocess.TimeoutExpired:
                raise InfraError(f"--with {label}: resolving it with the bundle's pins took longer than "
                                 f"{timeout:.0f}s") from None
            except OSError as exc:
                raise InfraError(f"--with {label}: cannot run uv: {exc.strerror or exc}") from None
            if proc.returncode == 0:
                break
            sdist_only = {canonical(n) for n in _NO_WHEELS.findall(proc.stderr or "")} & (names - built)
            if not wheels_only or not sdist_only:
                raise InfraError(f"--with {label} can't go with the bundle's pins: {installer.last_error(proc)}")
            built |= sdist_only
        text = prefs.read_text()
    out = []
    for line in parse_requirements(text):
        m = _EXACT.match(line.strip())
        if m:  # extras are the specs' own (their requirements are in the output too)
            out.append(f"{canonical(m.group(1))}=={m.group(3)}")
    if not out:
        raise InfraError(f"--with {label}: the resolver gave no pins")
    return out


_NO_WHEELS = re.compile(r"Wheels are required for `([^`]+)`")


def _compile(args: list[str], timeout: float, stdin: str, cwd: str) -> subprocess.CompletedProcess:
    """`uv pip compile ARGS` with the host pip's indexes (reprex.installer's translation), run in
    `cwd` (installer.UV_CWD): a uv.toml or pyproject.toml where the user stands (a directory bundle
    unpacked there) is not read; the user's own uv.toml (UV_CONFIG_FILE, ~/.config/uv) is."""
    argv = [installer.uv(), "pip", "compile", *installer.uv_config_args(), *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                          env=installer.uv_environ(), cwd=cwd)


def _with_lines(bundle: Bundle, lines: list[str]) -> Bundle:
    from reprex.bisect.probe import with_lines

    return with_lines(bundle, lines)


def _pinned(spec: str, req, version: str) -> str:
    """An exact spec as the user wrote it; a range as the release it resolved to."""
    if _exact(req):
        return spec
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    marker = f"; {req.marker}" if req.marker else ""
    return f"{req.name}{extras}=={version}{marker}"


def _chosen(chosen: dict[str, str]) -> str:
    return ", ".join(f"{spec} -> {version}" for spec, version in chosen.items()) or "no release applies here"


def _name(line: str) -> str:
    return re.split(r"[=<>!~ @\[;]", line.strip(), 1)[0]


