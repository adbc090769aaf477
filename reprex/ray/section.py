"""The bundle's `ray` section: what Ray was asked to do, told without secrets.

Built host-side from what the recorder saw in the driver (`facts["ray_runtime_envs"]`:
every runtime_env passed to `ray.init`, `.options()` or `@ray.remote`, already stripped of
URI credentials and env var values), the Serve configs the run read, the remote cause of
a task or actor failure, and whether a netrc or a bearer token would be sent with
working_dir downloads (existence only, never contents).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from reprex.record import Outcome, recorder as _recorder

BEARER_ENV = "RAY_RUNTIME_ENV_BEARER_TOKEN"
USER_AGENT_ENV = "RAY_RUNTIME_ENV_HTTP_USER_AGENT"
_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
_MAX_CONFIG_BYTES = 1024 * 1024


def runtime_env_summary(env: Any) -> dict | None:
    """A runtime_env without secrets: URIs without user:token@ or query values, env var names only."""
    return _recorder().ray_runtime_env_summary(env)


def netrc_facts(environ: Mapping[str, str]) -> dict:
    """Whether requests would find a netrc (NETRC, else ~/.netrc): existence only."""
    path = environ.get("NETRC")
    home = environ.get("HOME") or os.path.expanduser("~")
    return {"netrc_env_set": path is not None,
            "netrc_exists": bool(path and os.path.isfile(path)) or os.path.isfile(os.path.join(home, ".netrc"))}


def remote_causes(exc: dict | None) -> list[dict]:
    """The `remote` parts of an exception chain (outermost first), traceback text left out."""
    out: list[dict] = []
    seen = 0
    while exc and seen < 20:
        remote = exc.get("remote")
        if remote:
            out.append({k: v for k, v in remote.items() if k != "traceback"})
        exc = exc.get("cause") or (None if exc.get("suppress_context") else exc.get("context"))
        seen += 1
    return out


def load_config(path: Path) -> Any:
    """A YAML (or JSON) file; YAML needs PyYAML, which Ray itself depends on."""
    text = Path(path).read_text("utf-8")
    if path.suffix == ".json":
        import json

        return json.loads(text)
    try:
        import yaml
    except ImportError:  # pragma: no cover - the ray extra brings PyYAML
        raise RuntimeError("reading Serve configs needs PyYAML: pip install 'reprex[ray]'") from None
    return yaml.safe_load(text)


def serve_applications(config: Any) -> list[dict]:
    """The applications of a Serve config: multi-app (`applications:`) or the older single-app form."""
    if not isinstance(config, dict):
        return []
    if isinstance(config.get("applications"), list):
        return [a for a in config["applications"] if isinstance(a, dict)]
    if isinstance(config.get("import_path"), str):
        return [config]
    return []


def serve_config_summary(path: Path, config: Any, cwd: Path | None = None) -> dict | None:
    apps = serve_applications(config)
    if not apps:
        return None
    shown = str(path)
    if cwd is not None:
        try:
            shown = Path(path).resolve().relative_to(Path(cwd).resolve()).as_posix()
        except ValueError:
            pass
    return {"path": shown, "applications": [
        {"name": app.get("name"), "import_path": app.get("import_path"), "route_prefix": app.get("route_prefix"),
         "runtime_env": runtime_env_summary(app.get("runtime_env"))} for app in apps]}


def serve_configs(opened: Iterable[str], cwd: Path | None = None) -> list[dict]:
    """Serve configs among the files the run read."""
    out = []
    for name in opened:
        path = Path(name)
        if path.suffix not in _CONFIG_SUFFIXES:
            continue
        try:
            if not path.is_file() or path.stat().st_size > _MAX_CONFIG_BYTES:
                continue
            summary = serve_config_summary(path, load_config(path), cwd)
        except Exception:  # not a config, not parsable, PyYAML missing: not ours to report
            continue
        if summary:
            out.append(summary)
    return out


def ray_section(outcome: Outcome, *, cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> dict | None:
    """The manifest's `ray` key, or None when the run had nothing to do with Ray."""
    facts = outcome.facts or {}
    envs = list(facts.get("ray_runtime_envs") or [])
    remotes = remote_causes(outcome.exception)
    if not (envs or remotes or "ray" in (outcome.modules or {})):
        return None  # before reading any config file: most runs have nothing to do with Ray
    configs = serve_configs(outcome.opened, cwd)
    environ = os.environ if environ is None else environ
    version = next((d.get("version") for d in facts.get("distributions") or ()
                    if str(d.get("name", "")).lower() == "ray"), None)
    section: dict = {"version": version, "runtime_envs": envs, "serve_configs": configs,
                     "remote_cause": remotes[0] if remotes else None,
                     "working_dir_auth": {"bearer_token_set": bool(environ.get(BEARER_ENV)),
                                          "user_agent_set": USER_AGENT_ENV in environ, **netrc_facts(environ)}}
    return section
