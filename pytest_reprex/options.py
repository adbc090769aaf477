"""Replay options for one bundle, layered from the places a project can set them.

Precedence, highest first: keyword arguments of the ``reprex_replay`` fixture, the
command line (``--reprex-*``, only when given), the ``@pytest.mark.reprex(...)``
marker, the bundle's sidecar file (``NAME.reprex.toml`` / ``NAME.reprex.json``
next to it), the manifest's ``pytest`` field, the ini file (``reprex_*``), the
defaults. ``with`` specs are not overridden but added up, lowest layer first.

The manifest field travels inside the bundle, which may come from anyone (an issue
attachment), so it may only set what cannot weaken isolation or make the host
install or build something: ``expect``, ``runs``, ``timeout``, ``strict``, ``skip``
and ``marks`` (``MANIFEST_KEYS``); its ``timeout`` can only shorten what the user's
layers grant and its ``runs`` is capped (``bound_asks``). ``backend``, ``with``, ``network``, ``image``,
``gpus`` and ``keep`` there are ignored (with a warning); the sidecar file, the
marker, the ini file and the command line, which the repository's owner writes,
may set everything.

Standard library only (plus pytest's UsageError): the plugin imports this module
while pytest configures itself, in every session of every project.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from reprex.errors import ReprexError

BACKENDS = ("auto", "local", "docker")
EXPECTS = ("reproduced", "fixed")
NETWORKS = ("none", "bridge")
DEFAULTS: dict[str, Any] = {"backend": "auto", "image": None, "gpus": None, "runs": 1, "timeout": None,
                            "network": None, "expect": "reproduced", "strict": False, "keep": False}
# Keys a sidecar, the manifest field, the marker or the fixture may set.
OPTION_KEYS = frozenset(DEFAULTS) | {"with"}
ITEM_KEYS = OPTION_KEYS | {"skip", "marks"}
# What a bundle's own manifest field `pytest` may set: nothing that picks a less isolated
# backend (`backend`), opens the network (`network`), installs or builds on the host
# (`with`, `image`), hands over devices (`gpus`) or leaves files behind (`keep`).
MANIFEST_KEYS = frozenset({"expect", "runs", "timeout", "strict", "skip", "marks"})
# Grants only the user's command line and ini file give: not a sidecar (it may arrive with a
# stranger's bundle), not the marker or the fixture, never the bundle's manifest field.
USER_ONLY = {"allow_urls": ("--reprex-allow-urls", "reprex_allow_urls")}
# Where each option lives on the command line and in the ini file.
CLI_DEST = {"backend": "reprex_backend", "image": "reprex_image", "gpus": "reprex_gpus", "runs": "reprex_runs",
            "timeout": "reprex_timeout", "network": "reprex_network", "expect": "reprex_expect",
            "strict": "reprex_strict", "with": "reprex_with"}
INI_NAMES = dict(CLI_DEST)


class OptionError(ReprexError, ValueError):
    """A bad option value; the message names where it came from."""


_RAY_ADDRESS = re.compile(r"(auto|local|(ray://)?[A-Za-z0-9_.\-]+:[0-9]{1,5})")


def ray_address(value: str, label: str) -> str:
    """`--reprex-ray` takes an optional address: `auto` (the cluster `ray start` made here),
    `local` (a new one-machine cluster), `HOST:PORT` or `ray://HOST:PORT`. Anything else is
    an error rather than a guess: `--reprex-ray tests/` would otherwise eat the path."""
    text = str(value).strip()
    if not _RAY_ADDRESS.fullmatch(text):
        hint = (" (it looks like a path: write --reprex-ray=auto, or put the option after the paths)"
                if label.startswith("--") and ("/" in text or os.path.exists(text)) else "")
        raise OptionError(f"{label} {text!r}: use auto, local, HOST:PORT or ray://HOST:PORT{hint}")
    return text


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _looks_like_path(spec: str) -> bool:
    return (spec.startswith((".", "/", "~")) or "/" in spec.split("@")[0].split("==")[0]
            or spec.endswith((".whl", ".tar.gz", ".zip", ".tgz")))


def resolve_with(specs: Iterable[str], base: Path) -> list[str]:
    """`--with` specs, with local paths made absolute (`.` is the project under test)."""
    out = []
    for spec in specs:
        spec = str(spec).strip()
        if not spec:
            continue
        if _looks_like_path(spec) and "://" not in spec:
            path = Path(os.path.expanduser(spec))
            out.append(str(path if path.is_absolute() else (base / path).resolve()))
        else:
            out.append(spec)
    return out


def check_value(key: str, value: Any, where: str, label: str | None = None) -> Any:
    """The value converted to its type, or OptionError naming `where` (or `label`, the
    option's own spelling, e.g. `--reprex-runs` or `ini reprex_runs =`)."""
    def bad(why: str) -> OptionError:
        return OptionError(f"{label} {value!r}: {why}" if label else f"{where}: {key} = {value!r}: {why}")

    if value is None:
        return None
    if key == "backend":
        if value not in BACKENDS:
            raise bad(f"choose one of {', '.join(BACKENDS)}")
        return value
    if key == "expect":
        if value not in EXPECTS:
            raise bad(f"choose one of {', '.join(EXPECTS)}")
        return value
    if key == "network":
        if value not in NETWORKS:
            raise bad(f"choose one of {', '.join(NETWORKS)}")
        return value
    if key == "gpus":
        text = str(value).strip()
        if text in ("none", "all") or (text.isdigit() and int(text) > 0):
            return text
        raise bad("use none, all or a count")
    if key == "runs":
        try:
            runs = int(value)
        except (TypeError, ValueError):
            raise bad("not a whole number") from None
        if runs < 1:
            raise bad("must be at least 1")
        return runs
    if key == "timeout":
        try:
            timeout = float(value)
        except (TypeError, ValueError):
            raise bad("not a number of seconds") from None
        if timeout <= 0:
            raise bad("must be positive")
        return timeout
    if key in ("strict", "keep"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise bad("not a boolean")
    if key == "image":
        return str(value)
    if key == "with":
        if isinstance(value, str):
            return [value]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        raise bad("a spec or a list of specs")
    if key == "skip":
        return str(value) if value else None
    if key == "marks":
        if isinstance(value, str):
            value = [value]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v.isidentifier() for v in value):
            return list(value)
        raise bad("a list of marker names")
    raise OptionError(f"{where}: unknown option {key!r} (known: {', '.join(sorted(ITEM_KEYS))})")


def layer(mapping: Mapping[str, Any] | None, where: str, base: Path, keys=ITEM_KEYS) -> dict:
    """A validated layer from a plain mapping (sidecar, manifest field, marker, kwargs)."""
    out: dict[str, Any] = {}
    for key, value in (mapping or {}).items():
        key = "with" if key in ("with_", "with_specs") else key
        if key in USER_ONLY:
            flag, ini = USER_ONLY[key]
            raise OptionError(f"{where}: {key} is granted only by {flag} or ini {ini}")
        if key not in keys:
            raise OptionError(f"{where}: unknown option {key!r} (known: {', '.join(sorted(keys))})")
        value = check_value(key, value, where)
        if value is None:
            continue
        out[key] = resolve_with(value, base) if key == "with" else value
    return out


def cli_layer(config) -> dict:
    out: dict[str, Any] = {}
    base = Path(config.invocation_params.dir)
    for key, dest in CLI_DEST.items():
        value = config.getoption(dest, None)
        if value is None or (key == "with" and not value) or (key == "strict" and not value):
            continue
        value = check_value(key, value, "command line", label=f"--{dest.replace('_', '-')}")
        out[key] = resolve_with(value, base) if key == "with" else value
    if config.getoption("reprex_allow_urls", None):
        out["allow_urls"] = True
    return out


def ini_layer(config) -> dict:
    out: dict[str, Any] = {}
    base = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
    for key, name in INI_NAMES.items():
        value = config.getini(name)
        if value in (None, "", []) or (key == "strict" and value is False):
            continue
        value = check_value(key, value, "ini", label=f"ini {name} =")
        out[key] = resolve_with(value, base) if key == "with" else value
    try:
        if config.getini("reprex_allow_urls"):
            out["allow_urls"] = True
    except ValueError:  # not registered (the plugin's options were not added)
        pass
    return out


def merge(*layers: Mapping[str, Any]) -> dict:
    """Layers lowest first; scalars: the highest wins; `with`: concatenated."""
    merged: dict[str, Any] = dict(DEFAULTS)
    specs: list[str] = []
    for lay in layers:
        for key, value in lay.items():
            if key == "with":
                specs.extend(s for s in value if s not in specs)
            else:
                merged[key] = value
    merged["with"] = specs
    return merged


def replay_options(merged: Mapping[str, Any], pass_env: Mapping[str, str] | None = None):
    from reprex.replay import ReplayOptions

    return ReplayOptions(backend=merged["backend"], image=merged["image"], gpus=merged["gpus"], runs=merged["runs"],
                         timeout=merged["timeout"], network=merged["network"], expect=merged["expect"],
                         with_specs=list(merged["with"]), keep=merged["keep"], strict=merged["strict"],
                         pass_env=dict(pass_env or {}), allow_urls=bool(merged.get("allow_urls")))


# -- per-bundle files ------------------------------------------------------------------

def bundle_stem(path: Path) -> str:
    name = path.name
    for suffix in (".reprex.zip", ".zip", ".reprex"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def sidecar_path(path: Path) -> Path | None:
    stem = bundle_stem(path)
    for ext in (".reprex.toml", ".reprex.json"):
        candidate = path.parent / f"{stem}{ext}"
        if candidate.is_file() and candidate != path:
            return candidate
    return None


def read_sidecar(path: Path) -> dict:
    text = path.read_text("utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OptionError(f"{path}: not valid JSON ({exc})") from None
    else:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ImportError:
                raise OptionError(f"{path}: reading TOML needs Python 3.11+ or `tomli`; "
                                  "use a .reprex.json sidecar instead") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise OptionError(f"{path}: not valid TOML ({exc})") from None
    if not isinstance(data, dict):
        raise OptionError(f"{path}: expected a table of options")
    # Allow the options at the top or under a [reprex] / [pytest] table.
    for table in ("reprex", "pytest"):
        if isinstance(data.get(table), dict) and len(data) == 1:
            data = data[table]
    return data


def manifest_layer(field: Mapping[str, Any] | None, where: str, base: Path) -> tuple[dict, list[str]]:
    """A validated layer from a bundle's manifest field `pytest`, and the keys it ignored:
    only `MANIFEST_KEYS` count; an option the bundle may not choose for itself (`backend`,
    `with`, `network`, `image`, `gpus`, `keep`) is dropped; an unknown key is an error."""
    kept: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in (field or {}).items():
        name = "with" if key in ("with_", "with_specs") else key
        if name in MANIFEST_KEYS:
            kept[key] = value
        elif name in ITEM_KEYS or name in USER_ONLY:
            ignored.append(key)
        else:
            raise OptionError(f"{where}: unknown option {key!r} (known: {', '.join(sorted(ITEM_KEYS))})")
    return layer(kept, where, base, keys=MANIFEST_KEYS), sorted(ignored)


MANIFEST_MAX_RUNS = 5
DEFAULT_TIMEOUT = 300.0  # the replay's own default when nobody sets one


def bound_asks(asked: Mapping[str, Any], granted: Mapping[str, Any]) -> dict:
    """A bundle may ask for less time than the user grants, never more, and for a few runs:
    a downloaded bundle must not turn one test into hours of replays."""
    out: dict[str, Any] = {}
    if asked.get("timeout") is not None:
        out["timeout"] = min(float(asked["timeout"]), float(granted.get("timeout") or DEFAULT_TIMEOUT))
    if asked.get("runs") is not None:
        out["runs"] = min(int(asked["runs"]), max(int(granted.get("runs") or 1), MANIFEST_MAX_RUNS))
    return out


def read_manifest_field(path: Path) -> dict | None:
    """The manifest's `pytest` field, read without validating the bundle (collection must stay
    cheap), but parsed as every bundle JSON is (reprex.bundle.load_json: bounded in size and
    nesting). Pass it through `manifest_layer`, never `layer`: a bundle may not choose its own
    isolation."""
    from reprex.bundle import MAX_MANIFEST_BYTES, load_json

    try:
        if path.is_dir():
            file = path / "reprex.json"
            if file.stat().st_size > MAX_MANIFEST_BYTES:
                return None
            data = file.read_bytes()
        else:
            import zipfile

            with zipfile.ZipFile(path) as zf:
                info = zf.getinfo("reprex.json")
                if info.file_size > MAX_MANIFEST_BYTES:
                    return None
                with zf.open(info) as fh:  # the header's size may lie: read one byte past the bound
                    data = fh.read(MAX_MANIFEST_BYTES + 1)
        manifest = load_json(data, f"{path.name}: reprex.json", max_bytes=MAX_MANIFEST_BYTES)
    except Exception:  # a broken bundle is reported when its item runs
        return None
    field = manifest.get("pytest") if isinstance(manifest, dict) else None
    return field if isinstance(field, dict) else None
