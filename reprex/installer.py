"""pip and uv command lines, run one way: the host's wheels, the local envs and lock all install alike.

uv (a dependency: the `uv` wheel's binary, else one on PATH, else `REPREX_UV`) makes and fills
virtualenvs and resolves for a foreign target several times faster than pip; pip (this
interpreter's, `sys.executable -m pip`) is the fallback when uv can't run, said once on stderr,
and still downloads wheel files (uv has no `pip download`).

The user configures pip, not uv: uv reads neither pip.conf nor PIP_* variables, so the host's
pip settings (index-url, extra-index-url, find-links, no-index, trusted-host, constraint, cert)
are read here, the way pip reads them, and handed to uv as environment (uv_environ: index URLs
may hold credentials) and flags (uv_config_args). A uv configuration of the user's own (UV_* index variables, a
uv.toml) wins over the translation.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Mapping, Sequence

_probed: dict[str, str | None] = {}
_UV_LOCK = threading.Lock()  # candidate path -> the path if it runs, else None
_warned = False
_OFF = ("", "0", "no", "off", "none", "false", "pip")


def _candidate() -> str | None:
    """Where uv should be: REPREX_UV if set, the uv wheel's binary, else PATH."""
    override = os.environ.get("REPREX_UV")
    if override is not None:
        return None if override.strip().lower() in _OFF else override
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, OSError):  # FileNotFoundError: the package without its binary
        return shutil.which("uv")


def uv() -> str | None:
    """The uv binary when it runs here (probed once per path), else None: pip does the work.

    One caller at a time: bisect's parallel probes call it from threads, and the uv wheel's
    find_uv_bin() reads sysconfig, whose first read is not thread-safe (a racing thread got
    None for EXE and a TypeError)."""
    with _UV_LOCK:
        return _uv()


def _uv() -> str | None:
    found = _candidate()
    if found is None:
        return None
    if found not in _probed:
        try:
            proc = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30,
                                  stdin=subprocess.DEVNULL)
            why = "" if proc.returncode == 0 else last_error(proc)
        except (OSError, subprocess.SubprocessError) as exc:
            why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        _probed[found] = None if why else found
        if why:
            _warn(f"uv ({found}) can't run here ({why[:200]}); using pip, which is slower")
    return _probed[found]


def _warn(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        print(f"reprex: {message}", file=sys.stderr)


# -- the user's pip configuration, for uv --------------------------------------------------

_PIP_KEYS = ("index-url", "extra-index-url", "find-links", "no-index", "trusted-host", "constraint", "cert",
             "client-cert", "timeout")
_UV_OWN = ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_NO_INDEX",
           "UV_CONFIG_FILE")


def _pip_config_files(environ: Mapping[str, str]) -> list[str]:
    """pip's files, lowest precedence first (pip's configuration.py: global, user, site, then
    PIP_CONFIG_FILE); PIP_CONFIG_FILE=/dev/null means none at all."""
    env_file = environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    xdg_dirs = (environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep)
    files = [os.path.join(d, "pip", "pip.conf") for d in xdg_dirs if d] + ["/etc/pip.conf"]
    if not (env_file and os.path.exists(env_file)) and not environ.get("PIP_ISOLATED"):
        home = os.path.expanduser("~")
        files += [os.path.join(home, ".pip", "pip.conf"),
                  os.path.join(environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "pip", "pip.conf")]
    files.append(os.path.join(sys.prefix, "pip.conf"))
    if env_file:
        files.append(env_file)
    return files


def pip_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The host pip's settings that matter to uv, as pip resolves them: files in precedence order,
    [global] then [install] within a file, then PIP_* variables."""
    environ = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for path in _pip_config_files(environ):
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue  # pip would fail on it too; uv then runs with its defaults
        for section in ("global", "install"):
            if parser.has_section(section):
                for key, value in parser.items(section):
                    key = key.replace("_", "-")
                    if key in _PIP_KEYS:
                        found[key] = value
    for key in _PIP_KEYS:
        value = environ.get("PIP_" + key.upper().replace("-", "_"))
        if value is not None:
            found[key] = value
    return found


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _has_uv_config(environ: Mapping[str, str]) -> bool:
    """Does uv have settings of its own here (then pip's are not passed to it)? A uv.toml counts
    unless UV_NO_CONFIG tells uv not to read one."""
    if any(environ.get(name) for name in _UV_OWN):
        return True
    if _truthy(environ.get("UV_NO_CONFIG")):
        return False
    home = os.path.expanduser("~")
    user = os.path.join(environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "uv", "uv.toml")
    return os.path.exists(user) or os.path.exists("/etc/uv/uv.toml")


def uv_config_args(environ: Mapping[str, str] | None = None) -> list[str]:
    """uv flags (for `uv pip install` and `uv pip compile`) saying what the host's pip is told; the
    index locations go by environment (uv_environ): a URL may hold a credential, and argv is
    world-readable (`ps`) where a process's environment is not."""
    environ = os.environ if environ is None else environ
    pip = pip_settings(environ)
    args: list[str] = []
    if not _has_uv_config(environ):
        if _truthy(pip.get("no-index")):
            args.append("--no-index")
        if (pip.get("extra-index-url") or "").split():
            # pip takes the best match over all its indexes; uv's default stops at the first
            args += ["--index-strategy", "unsafe-best-match"]
    for host in (pip.get("trusted-host") or "").split():
        args += ["--allow-insecure-host", host]
    for path in (pip.get("constraint") or "").split():
        args += ["-c", path]  # -c: uv 0.5 spells it --constraint, later ones --constraints
    return args


def uv_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment uv runs with: pip's indexes and find-links (unless the user configured uv's),
    and pip's certificate and timeout where the user set none for uv."""
    environ = dict(os.environ if environ is None else environ)
    pip = pip_settings(environ)
    if not _has_uv_config(environ):
        if pip.get("index-url") and not _truthy(pip.get("no-index")):
            environ["UV_INDEX_URL"] = pip["index-url"].split()[0]
        if (pip.get("extra-index-url") or "").split():
            environ["UV_EXTRA_INDEX_URL"] = " ".join(pip["extra-index-url"].split())
        if (pip.get("find-links") or "").split():
            environ["UV_FIND_LINKS"] = ",".join(pip["find-links"].split())  # uv's list is comma-separated
    if pip.get("cert") and not environ.get("SSL_CERT_FILE"):
        environ["SSL_CERT_FILE"] = pip["cert"]
    if pip.get("client-cert") and not environ.get("SSL_CLIENT_CERT"):
        environ["SSL_CLIENT_CERT"] = pip["client-cert"]
    if pip.get("timeout") and not environ.get("UV_HTTP_TIMEOUT"):
        environ["UV_HTTP_TIMEOUT"] = pip["timeout"].split(".")[0] or "30"
    environ.setdefault("UV_NO_PROGRESS", "1")
    return environ


# -- command lines ---------------------------------------------------------------------------

_PIP: list[str] = []


def _pip_command() -> list[str]:
    """How this interpreter runs pip: its own, or, in a venv made without pip (`uv venv`), the pip
    wheel Python ships for ensurepip (Debian: /usr/share/python-wheels), run from the wheel
    as pip's own docs bootstrap it. Either reads the user's pip configuration."""
    if not _PIP:
        import importlib.util

        command = [sys.executable, "-m", "pip"]
        if importlib.util.find_spec("pip") is None:
            for wheel in _bundled_pip_wheels():
                command = [sys.executable, str(wheel / "pip")]
                break
        _PIP[:] = command
    return list(_PIP)


def _bundled_pip_wheels() -> list[Path]:
    import sysconfig

    dirs = [Path(sysconfig.get_paths()["stdlib"]) / "ensurepip" / "_bundled", Path("/usr/share/python-wheels")]
    found = [w for d in dirs if d.is_dir() for w in d.glob("pip-*-py3-none-any.whl")]
    return sorted(found, key=lambda w: _version_key(w.name.split("-")[1]), reverse=True)


def _version_key(text: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in text.split("."))


def pip_argv(*args: str, python: str | Path | None = None) -> list[str]:
    """`python -m pip ARGS` of this interpreter (see `_pip_command`); with `python`, acting on that
    interpreter's environment."""
    target = ["--python", str(python)] if python is not None else []
    progress = ["--progress-bar", "off"] if args and args[0] in ("download", "wheel") else []
    return [*_pip_command(), *target, "--disable-pip-version-check", *args[:1], *progress, *args[1:]]


def install_argv(python: str | Path, *args: str, offline: bool = False) -> list[str]:
    """`pip install ARGS` into `python`'s environment: uv's when it runs, else the host's pip.
    `offline`: uv from its cache only (no index request), for a first, fast try."""
    found = uv()
    if found:
        return [found, "pip", "install", "--python", str(python), *(["--offline"] if offline else []),
                *uv_config_args(), *args]
    return pip_argv("install", *args, python=python)


def compile_argv(*args: str) -> list[str] | None:
    """`uv pip compile ARGS` with the host pip's indexes, or None without uv."""
    found = uv()
    return [found, "pip", "compile", *uv_config_args(), *args] if found else None


def venv_argv(python: str, venv: Path) -> list[str]:
    """A bare virtualenv for `python` at `venv` (uv's, else the stdlib's, without pip)."""
    found = uv()
    return [found, "venv", "--quiet", "--no-config", "--python", python, str(venv)] if found else \
        [python, "-m", "venv", "--without-pip", str(venv)]


def is_uv(argv: Sequence[str]) -> bool:
    return bool(argv) and argv[0] in {p for p in _probed.values() if p}


# uv reads a uv.toml or pyproject.toml [tool.uv] in its working directory and the ones above it:
# a directory bundle may carry both (an index of its choosing). uv runs from the root instead,
# where no one but root writes; the user's own uv.toml (UV_CONFIG_FILE, ~/.config/uv, /etc/uv)
# is read from anywhere.
UV_CWD = "/"


def run(argv: Sequence[str], timeout: float | None, *, cwd: str | None = None,
        input: str | None = None) -> subprocess.CompletedProcess:
    """Run to completion, output captured as text, stdin closed unless `input` is given (uv with
    pip's certificate and timeout); a timeout raises subprocess.TimeoutExpired and a missing
    program OSError, for the caller to word."""
    stdin = None if input is not None else subprocess.DEVNULL
    env = uv_environ() if is_uv(argv) else None
    if cwd is None and is_uv(argv):
        cwd = UV_CWD
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd, input=input,
                          stdin=stdin, env=env)


def install(python: str | Path, *args: str, timeout: float | None) -> subprocess.CompletedProcess:
    """`install ARGS` into `python`'s environment; with uv, from its cache first (no index request
    when every wheel is there: a warm cache installs offline), then with the indexes."""
    if uv():
        proc = run(install_argv(python, *args, offline=True), timeout)
        if proc.returncode == 0:
            return proc
    return run(install_argv(python, *args), timeout)


def last_error(proc: subprocess.CompletedProcess) -> str:
    """The line that says why pip or uv failed: its last `error...` line, else its last line."""
    lines = [l.strip() for l in (proc.stderr or proc.stdout or "").splitlines() if l.strip()]
    errors = [i for i, l in enumerate(lines) if l.lower().startswith("error")]
    if not errors:
        return (lines[-1] if lines else f"exit status {proc.returncode}")[:400]
    line = lines[errors[-1]]
    # uv says the why on the lines after: "  cause: Because there is no version of x==9 ..."
    causes = [l.split(":", 1)[1].strip() if l.startswith("cause:") else l.lstrip("╰─▶ ")
              for l in lines[errors[-1] + 1:] if l.startswith(("cause:", "╰─▶"))]
    return (line.rstrip(":") + ": " + " ".join(causes) if causes else line)[:400]
