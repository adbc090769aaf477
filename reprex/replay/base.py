"""What every replay backend shares: options, problems, the run environment, the lock hash.

Backends know nothing of each other; they get a Bundle and ReplayOptions and hand
back Outcomes recorded by the same injected recorder as capture.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Protocol

from reprex.bundle import Bundle
from reprex.errors import ReprexError
from reprex.pins import parse_requirements
from reprex.record import Outcome

Progress = Callable[[str], None]


class ReplayProblem(ReprexError):
    """The replay could not give a run verdict; `verdict` says which kind of trouble."""

    verdict = "infra-error"
    exit_code = 3  # env-incompatible and infra-error alike

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InfraError(ReplayProblem):
    verdict = "infra-error"


class EnvIncompatible(ReplayProblem):
    verdict = "env-incompatible"


@dataclass
class ReplayOptions:
    backend: str = "auto"  # auto | local | docker
    image: str | None = None
    gpus: str | None = None  # None: from the bundle; "none" | "all" | "N"
    runs: int = 1
    timeout: float | None = None  # None: 300 s, or the captured hang time for a timeout bundle
    network: str | None = None  # None: from the bundle; "none" | "bridge"
    expect: str = "reproduced"
    with_specs: list[str] = field(default_factory=list)
    keep: bool = False
    strict: bool = False
    setup_timeout: float = 900.0
    # NAME -> value passed into the replay (`--env`): credentials a repro needs, never written
    # anywhere; the values are scrubbed from what the replay reports
    pass_env: dict[str, str] = field(default_factory=dict)
    # download the bundle's `name @ https://...` pins from the addresses they name (the host
    # opens those connections): the user's grant only (`--allow-urls`), never the bundle's
    allow_urls: bool = False


class Deadline:
    """The whole setup's time (downloads, builds, installs), shared by every step of it: a
    step gets what is left, and none starts once it is spent."""

    def __init__(self, seconds: float):
        import time

        self.seconds = float(seconds)
        self.at = time.monotonic() + self.seconds

    def expired(self) -> InfraError:
        return InfraError(f"setting up the replay took longer than its {self.seconds:.0f}s setup timeout")

    def left(self) -> float:
        import time

        left = self.at - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left


@dataclass
class RunOutput:
    outcome: Outcome
    logs: str = ""


class Backend(Protocol):
    name: str

    def prepare(self, bundle: Bundle, options: ReplayOptions, progress: Progress) -> object: ...

    def run(self, env: object, bundle: Bundle, options: ReplayOptions) -> RunOutput: ...

    def describe(self, env: object) -> dict: ...

    def close(self, env: object, options: ReplayOptions) -> None: ...


DEFAULT_TIMEOUT = 300.0
# What a bundle may make a replay do, at most: a bundle is a stranger's input, and these
# bound the work and disk it costs before anything is refused (both backends).
MAX_PINS = 500  # requirement lines
MAX_WORK_BYTES = 64 << 20  # files/ written out as the run's work dir (capture keeps 5 MB)
MAX_ARGS = 1000  # entry arguments
MAX_ARGS_BYTES = 128 << 10
MAX_ENV = 500  # recorded environment values handed to the run
MAX_ENV_BYTES = 256 << 10
# A full Python version as capture records it (platform.python_version()): 3.11.2, 3.13.0rc1, 3.12.0+
_PY_VERSION = re.compile(r"(\d{1,2})\.(\d{1,3})(?:\.\d{1,4})?(?:(?:a|b|rc)\d{1,3})?\+?")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def shown(value, limit: int = 80) -> str:
    """A bundle's value as it may appear in a one-line reason: repr (no control characters), capped."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def refused(what: str, value, why: str) -> InfraError:
    return InfraError(f"refusing the bundle: {what} {shown(value)} {why}")


def run_timeout(bundle: Bundle, options: "ReplayOptions") -> float:
    """A hang is reproduced by waiting as long as the capture did, up to 300 s (a bundle may
    ask for time; only --timeout grants more); anything else gets 300 s."""
    if options.timeout:
        return float(options.timeout)
    if (bundle.manifest.get("expect") or {}).get("outcome") == "timeout":
        run = bundle.json("run.json", {}) or {}
        captured = ((run.get("outcome") if isinstance(run, dict) else None) or {}).get("duration_s")
        if isinstance(captured, (int, float)) and not isinstance(captured, bool) and math.isfinite(captured) \
                and captured > 0:
            return min(DEFAULT_TIMEOUT, max(1.0, float(captured)))
    return DEFAULT_TIMEOUT


def python_xy(bundle: Bundle) -> str:
    """The bundle's Python as X.Y, checked: it names images, tags and build steps."""
    version = (bundle.manifest.get("python") or {}).get("version", "")
    if not isinstance(version, str) or not version:
        raise EnvIncompatible(f"the bundle does not say which Python it ran ({shown(version)})")
    m = _PY_VERSION.fullmatch(version)
    if not m:
        raise refused("python.version", version, "is not a Python version")
    return f"{int(m.group(1))}.{int(m.group(2))}"


def requirements(bundle: Bundle) -> list[str]:
    """The bundle's requirement lines, at most MAX_PINS of them (a longer list is refused
    before any download: each pin costs the host a download and the image a layer's share)."""
    lines = parse_requirements(bundle.text("requirements.txt"))
    if len(lines) > MAX_PINS:
        raise InfraError(f"refusing the bundle: its requirements.txt has {len(lines)} pins, over the "
                         f"{MAX_PINS} a replay installs")
    return lines


def lock_hash(bundle: Bundle, *parts: str) -> str:
    h = hashlib.sha256()
    h.update(python_xy(bundle).encode())
    for line in sorted(requirements(bundle)):
        h.update(b"\n" + line.encode())
    for part in parts:
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:16]


def entry_args(bundle: Bundle) -> list[str]:
    """Python arguments for the entry, run in a work dir laid out from files/. They are
    passed as an argv list (never through a shell), checked to be strings a process can get."""
    entry = bundle.manifest.get("entry") or {}
    args = entry.get("python_args") or []
    if not isinstance(args, list) or len(args) > MAX_ARGS:
        raise refused("entry.python_args", args if not isinstance(args, list) else f"[{len(args)} items]",
                      f"is not a list of at most {MAX_ARGS} arguments")
    for arg in args:
        if not isinstance(arg, str) or "\0" in arg:
            raise refused("entry argument", arg, "is not a string without NUL")
    if sum(len(a.encode("utf-8", "surrogatepass")) + 1 for a in args) > MAX_ARGS_BYTES:
        raise refused("entry.python_args", f"[{len(args)} items]", f"exceed {MAX_ARGS_BYTES} bytes")
    if not args:
        if "repro.py" in bundle.files:
            return ["repro.py"]
        raise InfraError("the bundle has no runnable entry (no python_args and no repro.py)")
    return list(args)


def work_files(bundle: Bundle) -> dict[str, bytes]:
    """The work dir's contents: files/, plus repro.py when the entry is the extracted call.
    Budgeted before anything is written: at most MAX_WORK_BYTES in all."""
    files = bundle.input_files()
    entry = bundle.manifest.get("entry") or {}
    if entry.get("kind") == "extracted" or not entry.get("python_args"):
        files.setdefault("repro.py", bundle.files.get("repro.py", b""))
    total = sum(len(data) for data in files.values())
    if total > MAX_WORK_BYTES:
        raise InfraError(f"refusing the bundle: its files/ hold {total} bytes, over the {MAX_WORK_BYTES} a replay "
                         "writes out")
    return files


_SKIP_ENV = re.compile(r"^(PATH|HOME|PWD|OLDPWD|SHLVL|LD_LIBRARY_PATH|LD_PRELOAD|PYTHONPATH|PYTHONHOME|"
                       r"PYTHONSTARTUP|PYTHONUSERBASE|VIRTUAL_ENV|CONDA_.*|PYENV_.*|UV_.*|PIP_.*|TMPDIR|"
                       r"CUDA_VISIBLE_DEVICES|NVIDIA_VISIBLE_DEVICES|REPREX_.*|DISPLAY|TERM|SSH_.*)$")


def replay_pythonpath(bundle: Bundle, workdir: str) -> list[str]:
    """The run's PYTHONPATH entries inside its working tree, under the replay's work dir."""
    out = []
    rels = (bundle.manifest.get("entry") or {}).get("pythonpath") or ()
    for rel in rels if isinstance(rels, list) else ():
        if not isinstance(rel, str) or rel.startswith("/") or ".." in rel.split("/") \
                or any(c in rel for c in ":\0\n\r") or len(rel) > 1024:
            continue  # only paths inside the work dir, one PYTHONPATH entry each
        out.append(workdir.rstrip("/") + "/" + rel if rel != "." else workdir)
    return out


def replay_environ(bundle: Bundle) -> dict[str, str]:
    """Non-secret environment values recorded at capture that the failure may depend on."""
    env = bundle.json("environment.json", {}) or {}
    try:
        values = ((env.get("env") or {}).get("value") or {}).get("values") or {}
    except AttributeError:  # a field of the wrong type: nothing to hand over
        return {}
    out: dict[str, str] = {}
    size = 0
    for name, value in (values.items() if isinstance(values, dict) else ()):
        # names are checked (an "A=B" name would set another variable), values are plain data
        if not isinstance(value, str) or not ENV_NAME.fullmatch(name) or _SKIP_ENV.match(name) \
                or RESERVED_ENV.match(name) or "\0" in value or "<redacted" in value or "<home>" in value \
                or "<user>" in value or "<hostname>" in value:
            continue
        size += len(name) + len(value.encode("utf-8", "surrogatepass")) + 2
        if len(out) >= MAX_ENV or size > MAX_ENV_BYTES:
            break
        out[name] = value
    return out


# What --env may not set: the variables the replay machinery itself depends on.
RESERVED_ENV = re.compile(r"^(PATH|HOME|TMPDIR|PYTHONPATH|PYTHONHOME|VIRTUAL_ENV|PYTHONDONTWRITEBYTECODE|"
                          r"PYTHONIOENCODING|PYTHONUNBUFFERED|PYTHONSTARTUP|PYTHONSAFEPATH|LD_PRELOAD|"
                          r"LD_LIBRARY_PATH|REPREX_\w*)$")


def parse_pass_env(specs: list[str], environ: dict[str, str] | None = None) -> dict[str, str]:
    """`--env NAME` (the value from this environment) or `--env NAME=VALUE` -> {NAME: value};
    ValueError with a one-line reason for an unset, malformed or reserved name."""
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for spec in specs:
        name, eq, value = spec.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"--env {spec.split('=')[0]!r}: not an environment variable name")
        if RESERVED_ENV.match(name):
            raise ValueError(f"--env {name}: reprex sets {name} itself for the replay")
        if not eq:
            if name not in environ:
                raise ValueError(f"--env {name}: not set in this environment (use --env {name}=VALUE)")
            value = environ[name]
        out[name] = value
    return out


MIN_SCRUB = 4  # shorter values would turn up everywhere; the CLI warns that they are not scrubbed


def scrub_passed(text: str, pass_env: dict[str, str], *, cut_start: bool = False, cut_end: bool = False) -> str:
    """Passed values out of what the replay reports: whole (longest first), and in the
    normalized form signature messages take (digits -> <n>, ...). For a text that was cut
    (cut_start: an output tail; cut_end: a capped reason), also the part of a value the cut
    left at that end."""
    from reprex.signature import normalize_message

    if not isinstance(text, str) or not text:
        return text
    for name, value in sorted(pass_env.items(), key=lambda kv: -len(kv[1])):
        if len(value) < MIN_SCRUB:
            continue
        mark = f"<--env {name}>"
        for form in (value, normalize_message(value)):
            if len(form) >= MIN_SCRUB:
                text = text.replace(form, mark)
        for k in range(len(value) - 1, MIN_SCRUB - 1, -1):
            if cut_start and text.startswith(value[-k:]):
                text = mark + text[k:]
                break
        for k in range(len(value) - 1, MIN_SCRUB - 1, -1):
            if cut_end and text.endswith(value[:k]):
                text = text[:-k] + mark
                break
    return text


def scrub_tree(value, pass_env: dict[str, str]):
    """scrub_passed over every string in nested dicts, lists, tuples and dataclasses (in place
    for dataclasses, a copy otherwise)."""
    import dataclasses

    if isinstance(value, str):
        return scrub_passed(value, pass_env)
    if isinstance(value, dict):
        return {scrub_tree(k, pass_env): scrub_tree(v, pass_env) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub_tree(v, pass_env) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            setattr(value, f.name, scrub_tree(getattr(value, f.name), pass_env))
    return value


def scrub_run(out: RunOutput, pass_env: dict[str, str]) -> RunOutput:
    """A run as it may be reported: every string scrubbed; the output tail's start and the
    logs' start were cut (the tail keeps the last 64 KiB), so a value's end there goes too."""
    out = scrub_tree(out, pass_env)
    if out.outcome.output_tail:
        first = out.outcome.output_tail[0]
        first[1] = scrub_passed(first[1], pass_env, cut_start=True)
    out.logs = scrub_passed(out.logs, pass_env, cut_start=True)
    return out


def base_environ(home: str, path: str, tmpdir: str | None = None) -> dict[str, str]:
    """`tmpdir`: where the run's temporary files go (default HOME/tmp). Messages that show a
    temporary path keep its length only where it is the usual /tmp: unittest shortens a long
    repr to `[N chars]`, which no normalizing undoes."""
    return {"PATH": path, "HOME": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONIOENCODING": "utf-8", "TMPDIR": tmpdir or os.path.join(home, "tmp")}


def needs_gpu(bundle: Bundle) -> bool:
    """A GPU matters when one was present and the run used a GPU framework."""
    if not bundle.manifest.get("gpu"):
        return False
    env = bundle.json("environment.json", {}) or {}
    return (env.get("cuda") or {}).get("status") == "ok"
