"""Wheels for a replay image, resolved and downloaded on the HOST.

The host's own pip configuration (indexes, find-links, certificates) is used as is:
we call `sys.executable -m pip` and override nothing (pip, not uv: these are wheel files
to put in a build context, and uv has no `pip download`). The image then installs the
files with `--offline --no-index` (uv, copied in from the host, else pip), so the
container never needs a network.

The bundle's pins are untrusted input, and nothing of theirs may run on the host:

* every line is checked first and a URL pin needs the user's grant (reprex.replay.pin_rules);
  accepted lines go to pip as arguments, never through a requirements file (no option
  parsing, no `${VAR}` expansion);
* they are downloaded `--only-binary=:all:`, for the target's tags (the image's Python X.Y
  and the daemon's arch) when those differ from the host's. An sdist is never built on
  the host (building runs its setup.py / build backend as the host user): a pin with no
  wheel for the target, a direct reference to an sdist or a git repository included, is
  env-incompatible, listing the packages.

`--with` specs come from the user's command line, so they may still be built on the host
(a local checkout is the point): plain `pip download --no-deps`, `pip wheel` for sdists,
and in cross mode a pure-Python (`none-any`) wheel built on the host.

A requirement that exists nowhere on the configured indexes is an infra-error (the
install failed), not env-incompatible.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reprex import installer
from reprex.installer import last_error
from reprex.pins import canonical
from reprex.replay.base import Deadline, EnvIncompatible, InfraError, Progress
from reprex.replay.pin_rules import (check_bundle_requirement, check_bundle_requirements, check_url_grant,
                                     source_reference)
from reprex.replay.target import Target

_NO_MATCH = re.compile(r"No matching distribution found for (\S+)")
_NO_VERSION = re.compile(r"Could not find a version that satisfies the requirement (\S+)")
_SDIST = (".tar.gz", ".zip", ".tar.bz2", ".tgz")
_UNSUPPORTED_WHEEL = re.compile(r"is not a supported wheel on this platform")
_AVAILABLE = re.compile(r"^Available versions:\s*(.*)$", re.MULTILINE)
NO_HOST_BUILDS = ("sdists from a bundle are never built on the host, so that none of its code runs there; "
                  "`--backend local` runs on the host by design")


@dataclass
class WheelSet:
    directory: Path
    wheels: list[Path] = field(default_factory=list)
    temporary: bool = False  # remove after the build (local --with paths)
    # a local --with path -> the files its wheel installs (reprex.replay.shadow: they replace the bundle's copies)
    provided: dict[str, list[str]] = field(default_factory=dict)

    def digest(self) -> str:
        """Of the wheels' contents, not their zip bytes: a wheel rebuilt from an unchanged
        checkout (new timestamps in the zip) keeps its digest, so its image is reused."""
        h = hashlib.sha256()
        for path in sorted(self.wheels, key=lambda p: p.name):
            h.update(path.name.encode() + b"\0" + _wheel_content_sha256(path).encode() + b"\n")
        return h.hexdigest()

    def cleanup(self) -> None:
        if self.temporary:
            shutil.rmtree(self.directory, ignore_errors=True)


def _wheel_content_sha256(path: Path) -> str:
    import zipfile

    h = hashlib.sha256()
    try:
        with zipfile.ZipFile(path) as zf:
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                h.update(info.filename.encode() + b"\0" + hashlib.sha256(zf.read(info)).digest())
    except zipfile.BadZipFile:
        return _file_sha256(path)
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pip(*args: str, timeout: "float | Deadline", cwd: str | None = None) -> subprocess.CompletedProcess:
    """pip on the host; `timeout` is seconds for this call, or the setup's Deadline (this call
    gets what is left of it)."""
    seconds = timeout.left() if isinstance(timeout, Deadline) else timeout
    try:
        return installer.run(installer.pip_argv(*args), seconds, cwd=cwd)
    except FileNotFoundError:
        raise InfraError(f"cannot run pip on the host ({sys.executable} -m pip)") from None
    except subprocess.TimeoutExpired:
        if isinstance(timeout, Deadline):
            raise timeout.expired() from None
        raise InfraError(f"downloading wheels on the host took longer than {timeout:.0f}s") from None


def _missing(proc: subprocess.CompletedProcess) -> list[str]:
    text = (proc.stderr or "") + (proc.stdout or "")
    found = _NO_MATCH.findall(text) or _NO_VERSION.findall(text)
    return list(dict.fromkeys(found))


def _no_pip_module(proc: subprocess.CompletedProcess) -> bool:
    return "No module named pip" in (proc.stderr or "")


def _download(lines: list[str], dest: Path, target: Target, timeout: float, cross: bool) -> subprocess.CompletedProcess:
    dest.mkdir(parents=True, exist_ok=True)
    req = dest / ".reprex-requirements.txt"
    req.write_text("\n".join(lines) + "\n")
    extra = target.pip_target_args() if cross else []
    proc = _pip("download", "--no-deps", *extra, "-d", str(dest), "-r", str(req), timeout=timeout)
    req.unlink()
    if _no_pip_module(proc):
        raise InfraError(f"pip is not installed for {sys.executable}, and Python's own pip wheel (ensurepip) is "
                         "missing too: it is needed to download wheels on the host (python -m ensurepip, or "
                         "uv venv --seed)")
    return proc


def _download_pins(lines: list[str], dest: Path, target: Target, timeout: float,
                   cross: bool) -> subprocess.CompletedProcess:
    """Bundle pins: binary-only, the (checked) lines as arguments after `--`."""
    dest.mkdir(parents=True, exist_ok=True)
    extra = target.pip_target_args() if cross else ["--only-binary=:all:"]
    proc = _pip("download", "--no-deps", *extra, "-d", str(dest), "--", *lines, timeout=timeout)
    if _no_pip_module(proc):
        raise InfraError(f"pip is not installed for {sys.executable}, and Python's own pip wheel (ensurepip) is "
                         "missing too: it is needed to download wheels on the host (python -m ensurepip, or "
                         "uv venv --seed)")
    return proc


def _unsupported_wheel(proc: subprocess.CompletedProcess) -> bool:
    return bool(_UNSUPPORTED_WHEEL.search((proc.stderr or "") + (proc.stdout or "")))


def _released(line: str, timeout: float) -> bool:
    """Does the configured index have this `name==version` in any form (an sdist too)?
    `pip index versions` only reads the index pages: nothing is downloaded or built."""
    from packaging.version import InvalidVersion, Version

    req = check_bundle_requirement(line)
    if req.url is not None:
        return False
    proc = _pip("index", "versions", "--pre", req.name, timeout=timeout)
    m = _AVAILABLE.search(proc.stdout or "")
    if proc.returncode != 0 or not m:
        return False
    for text in m.group(1).split(","):
        try:
            if req.specifier.contains(Version(text.strip()), prereleases=True):
                return True
        except InvalidVersion:
            continue
    return False


def _build_sdists(dest: Path, timeout: float) -> None:
    """`pip wheel --no-deps` every sdist pip download left in dest (host == target only)."""
    for path in sorted(dest.iterdir()):
        if path.name.endswith(_SDIST):
            proc = _pip("wheel", "--no-deps", "-w", str(dest), str(path), timeout=timeout)
            if proc.returncode != 0:
                raise InfraError(f"building a wheel of {path.name} on the host failed: {last_error(proc)}")
            path.unlink()


def _classify(lines: list[str], target: Target, timeout: float, dest: Path) -> tuple[list[str], list[str]]:
    """`--with` lines that failed as a batch, one by one: (missing everywhere, no build for the
    target). Pure-Python sdists are built on the host into dest as a side effect."""

    def one(line: str) -> tuple[str, str | None]:
        with tempfile.TemporaryDirectory(prefix="reprex-wheel-") as tmp:
            tmp_path = Path(tmp)
            if target.same_as_host:
                proc = _download([line], tmp_path, target, timeout, cross=False)
                if proc.returncode != 0:
                    return line, "missing" if _missing(proc) else "error:" + last_error(proc)
                _build_sdists(tmp_path, timeout)
                for whl in tmp_path.glob("*.whl"):
                    shutil.move(str(whl), dest / whl.name)
                return line, None
            proc = _download([line], tmp_path, target, timeout, cross=True)
            if proc.returncode == 0:
                for whl in tmp_path.glob("*.whl"):
                    shutil.move(str(whl), dest / whl.name)
                return line, None
            # Is there anything at all? (host tags, sdists allowed)
            host = _pip("download", "--no-deps", "-d", str(tmp_path), line, timeout=timeout)
            if host.returncode != 0:
                return line, "missing" if _missing(host) else "error:" + last_error(host)
            for path in list(tmp_path.iterdir()):
                if path.name.endswith(_SDIST):
                    built = _pip("wheel", "--no-deps", "-w", str(tmp_path), str(path), timeout=timeout)
                    if built.returncode != 0:
                        return line, "no-build"
            pure = [w for w in tmp_path.glob("*.whl") if w.name.endswith("-none-any.whl")]
            if not pure:
                return line, "no-build"
            for whl in pure:
                shutil.move(str(whl), dest / whl.name)
            return line, None

    return _sort_results(_map(one, lines))


def _classify_pins(lines: list[str], target: Target, timeout: float, dest: Path,
                   cross: bool) -> tuple[list[str], list[str]]:
    """Bundle pins that failed as a batch, one by one, binary-only: (missing everywhere, no
    wheel for the target). Nothing is built."""

    def one(line: str) -> tuple[str, str | None]:
        with tempfile.TemporaryDirectory(prefix="reprex-wheel-") as tmp:
            tmp_path = Path(tmp)
            proc = _download_pins([line], tmp_path, target, timeout, cross)
            if proc.returncode == 0:
                for whl in tmp_path.glob("*.whl"):
                    shutil.move(str(whl), dest / whl.name)
                return line, None
            if _unsupported_wheel(proc):
                return line, "no-build"
            if _missing(proc):
                return line, "no-build" if _released(line, timeout) else "missing"
            return line, "error:" + last_error(proc)

    return _sort_results(_map(one, lines))


def _map(fn, lines: list[str]) -> list:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(4, max(1, len(lines)))) as pool:
        return list(pool.map(fn, lines))


def _sort_results(results: list) -> tuple[list[str], list[str]]:
    missing: list[str] = []
    no_build: list[str] = []
    errors = []
    for line, status in results:
        if status == "missing":
            missing.append(line)
        elif status == "no-build":
            no_build.append(line)
        elif status and status.startswith("error:"):
            errors.append(f"{line}: {status[6:]}")
    if errors:
        raise InfraError("downloading wheels on the host failed: " + "; ".join(errors)[:600])
    return missing, no_build


def fetch_pins(lines: list[str], dest: Path, target: Target, timeout: float, *,
               allow_urls: bool = False) -> list[Path]:
    """One wheel per bundle pin into dest, binary-only (nothing of the bundle's is built or
    run on the host), URL pins only when the user allowed them; raise on trouble."""
    check_bundle_requirements(lines)
    check_url_grant(lines, allow_urls)
    dest.mkdir(parents=True, exist_ok=True)
    if not lines:
        return []
    if not isinstance(timeout, Deadline):  # one budget for the batch and every retry after it
        timeout = Deadline(timeout)
    cross = not target.same_as_host
    no_build = [l for l in lines if source_reference(l)]
    rest = [l for l in lines if l not in no_build]
    if rest:
        proc = _download_pins(rest, dest, target, timeout, cross)
        if proc.returncode != 0:
            if not (_missing(proc) or _unsupported_wheel(proc)):
                raise InfraError(f"downloading the pins on the host failed: {last_error(proc)}")
            done = {_wheel_project(p.name) for p in dest.glob("*.whl")}
            todo = [l for l in rest if _line_project(l) not in done]
            missing, more = _classify_pins(todo, target, timeout, dest, cross)
            if missing:
                raise InfraError(f"installing the pins failed: no distribution on the configured indexes for "
                                 f"{', '.join(missing)}")
            no_build += more
    if no_build:
        no_build = [l for l in lines if l in no_build]  # the bundle's order
        raise EnvIncompatible(f"no wheel for Python {target.python_xy} on {target.machine} of: "
                              f"{', '.join(no_build)} ({NO_HOST_BUILDS})")
    return sorted(dest.glob("*.whl"))


def fetch(lines: list[str], dest: Path, target: Target, timeout: float, what: str = "the pins") -> list[Path]:
    """Download (or build) one wheel per requirement line into dest; raise on trouble.

    For `--with` specs (the user's own): sdists are built on the host. Bundle pins go
    through fetch_pins."""
    dest.mkdir(parents=True, exist_ok=True)
    if not lines:
        return []
    cross = not target.same_as_host
    proc = _download(lines, dest, target, timeout, cross=cross)
    if proc.returncode == 0:
        if not cross:
            _build_sdists(dest, timeout)
        return sorted(dest.glob("*.whl"))
    if not _missing(proc):
        raise InfraError(f"downloading {what} on the host failed: {last_error(proc)}")
    # Which ones, all of them (a batch stops at the first).
    done = {_wheel_project(p.name) for p in dest.glob("*.whl")}
    todo = [l for l in lines if _line_project(l) not in done]
    missing, no_build = _classify(todo, target, timeout, dest)
    if missing:
        raise InfraError(f"installing {what} failed: no distribution on the configured indexes for "
                         f"{', '.join(missing)}")
    if no_build:
        raise EnvIncompatible(f"no build for Python {target.python_xy} on {target.machine} of: {', '.join(no_build)}")
    if not cross:
        _build_sdists(dest, timeout)
    return sorted(dest.glob("*.whl"))


_PROJECT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _line_project(line: str) -> str:
    m = _PROJECT.match(line)
    return canonical(m.group(1)) if m else line


def _wheel_project(filename: str) -> str:
    return canonical(filename.split("-", 1)[0])


def pins_wheels(lines: list[str], lock: str, target: Target, cache: Path, timeout: float,
                progress: Progress, *, allow_urls: bool = False) -> WheelSet:
    """The pins' wheels, cached per (lock hash, target) under cache/wheels/."""
    from reprex.fsutil import lock_for, locked

    check_bundle_requirements(lines)  # before the cache: nothing of a refused bundle is used
    check_url_grant(lines, allow_urls)
    directory = cache / "wheels" / f"{lock}-{target.key}-binary"  # binary-only (older caches may hold builds)
    with locked(lock_for(directory)):
        ready = directory / ".reprex-ready"
        if ready.exists():
            return WheelSet(directory, sorted(directory.glob("*.whl")))
        if not lines:
            directory.mkdir(parents=True, exist_ok=True)
            ready.write_text("0\n")
            return WheelSet(directory, [])
        progress(f"downloading {len(lines)} pinned wheels on the host"
                 + ("" if target.same_as_host else f" for Python {target.python_xy} on {target.machine}"))
        partial = Path(tempfile.mkdtemp(prefix=directory.name + ".", dir=directory.parent))
        try:
            wheels = fetch_pins(lines, partial, target, timeout, allow_urls=allow_urls)
            if directory.exists():
                shutil.rmtree(directory)
            partial.rename(directory)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        (directory / ".reprex-ready").write_text(f"{len(wheels)}\n")
        return WheelSet(directory, sorted(directory.glob("*.whl")))


def with_wheels(specs: list[str], target: Target, cache: Path, timeout: "float | Deadline",
                progress: Progress) -> WheelSet:
    """Wheels for `--with` specs: `pkg==X` / URLs downloaded (cached per spec and target), local
    paths built fresh with `pip wheel --no-deps PATH` (their content may change between runs).
    The temp dir goes on every way out, a signal's (reprex.interrupt) included."""
    out = WheelSet(Path(tempfile.mkdtemp(prefix="reprex-with-")), temporary=True)
    try:
        for spec in specs:
            _with_wheel(spec, out, target, cache, timeout, progress)
    except BaseException:
        out.cleanup()
        raise
    out.wheels = sorted(out.directory.glob("*.whl"))
    return out


def _with_wheel(spec: str, out: WheelSet, target: Target, cache: Path, timeout: "float | Deadline",
                progress: Progress) -> None:
    progress(f"getting --with {spec} on the host")
    if os.path.exists(spec):
        from reprex.replay.shadow import wheel_paths

        before = {p.name: p.stat().st_mtime_ns for p in out.directory.glob("*.whl")}
        proc = _pip("wheel", "--no-deps", "-w", str(out.directory), str(Path(spec).resolve()), timeout=timeout)
        if proc.returncode != 0:
            raise InfraError(f"--with {spec}: building a wheel on the host failed: {last_error(proc)}")
        built = [p for p in sorted(out.directory.glob("*.whl")) if before.get(p.name) != p.stat().st_mtime_ns]
        out.provided[spec] = [m for whl in built for m in wheel_paths(whl)]
        return
    key = hashlib.sha256(f"{spec}\0{target.key}".encode()).hexdigest()[:16]
    cached = cache / "wheels" / f"with-{key}"
    from reprex.fsutil import lock_for, locked

    with locked(lock_for(cached)):
        if not (cached / ".reprex-ready").exists():
            shutil.rmtree(cached, ignore_errors=True)
            try:
                fetch([spec], cached, target, timeout, what=f"--with {spec}")
            except BaseException:
                shutil.rmtree(cached, ignore_errors=True)
                raise
            (cached / ".reprex-ready").write_text("ok\n")
    for whl in cached.glob("*.whl"):
        shutil.copy2(whl, out.directory / whl.name)
