"""`reprex check-serve CONFIG.yaml`: what Ray Serve would do with each application, without a cluster.

For every application of a Serve config:

1. materialize its runtime_env working_dir the way Ray does: a local directory as is; an
   http(s) zip fetched with smart_open and the headers Ray sends (User-Agent, Accept, and
   `Authorization: Bearer $RAY_RUNTIME_ENV_BEARER_TOKEN` when set), then unzipped with its
   single top-level directory removed (ray/_private/runtime_env/packaging.py);
2. resolve import_path with Ray's own import_attr semantics, in a fresh interpreter whose
   cwd is the working_dir and whose sys.path starts with it.

Whatever fails becomes a minimal-call bundle: the generated repro.py (a copy of Ray's step,
no Ray) is run under the recorder, so the bundle's expected signature is its own; its pins
are the closure of what that repro imported (nothing for the import; smart_open and requests
for the fetch), and it carries a plain-language hint. Tokens are never written: the repro
reads them from the environment, the redactor knows them, and the finished bundle is scanned
for them (in every encoding the redactor knows) before it is written.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import unquote, urlsplit

from reprex.errors import ReprexError
from reprex.ray import repro_templates
from reprex.ray.section import (BEARER_ENV, USER_AGENT_ENV, load_config, netrc_facts, runtime_env_summary,
                                serve_applications, serve_config_summary)
from reprex.ray.working_dir import copy_tree, fetch, module_candidates, split_credentials, unpack_like_ray

Progress = Callable[[str], None]
URL_CREDENTIALS_ENV = "REPREX_URL_CREDENTIALS"

NESTED_HINT = ("import paths are dotted from the working_dir root; move the config and entry script to the "
               "repository root or use a dotted path")
GITHUB_404_HINT = ("the server answered 404 for this token: GitHub answers 404, not 403, when a token can't see a "
                   "private repository; fine-grained tokens need the repository selected and Contents: read, "
                   "classic tokens need the repo scope")


class ServeCheckError(ReprexError):
    """The config can't be checked at all (unreadable, no applications); one line for the user."""


@dataclass
class AppCheck:
    name: str
    import_path: str | None
    working_dir: str | None  # as shown: credentials stripped
    status: str = "ok"  # ok | failed | skipped
    step: str | None = None  # working_dir | import_path
    error: dict | None = None  # {"type", "message"} (redacted)
    hint: str | None = None
    bundle: str | None = None
    signature: dict | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "import_path": self.import_path, "working_dir": self.working_dir,
                "status": self.status, "step": self.step, "error": self.error, "hint": self.hint,
                "bundle": self.bundle, "signature": self.signature, "notes": self.notes}


@dataclass
class ServeCheckReport:
    config: str
    apps: list[AppCheck]

    @property
    def ok(self) -> bool:
        return all(a.status != "failed" for a in self.apps)

    def to_dict(self) -> dict:
        return {"config": self.config, "ok": self.ok, "applications": [a.to_dict() for a in self.apps]}


def _noop(_: str) -> None:
    pass


# -- hints ---------------------------------------------------------------------------------

def _missing_module(message: str) -> str | None:
    m = re.search(r"No module named '([^']+)'", message or "")
    return m.group(1) if m else None


def import_hint(exc: dict, import_path: str, workdir: Path, wd_shown: str) -> str:
    etype = (exc.get("type") or "").rsplit(".", 1)[-1]
    message = exc.get("message") or ""
    module = import_path.split(":")[0] if ":" in import_path else import_path.rpartition(".")[0]
    attr = import_path.split(":")[-1] if ":" in import_path else import_path.rpartition(".")[2]
    if etype == "ModuleNotFoundError":
        missing = _missing_module(message)
        if missing and (module == missing or module.startswith(missing + ".")):
            candidates = module_candidates(workdir, module)
            if candidates:
                dotted, found = candidates[0]
                suggestion = dotted + (":" if ":" in import_path else ".") + attr
                return (f"{NESTED_HINT}. {module!r} is not importable from the working_dir root ({wd_shown}), "
                        f"but {found} is there: use import_path {suggestion!r}, or make the working_dir the "
                        f"directory that contains {module.split('.')[0]!r}.")
            return (f"{NESTED_HINT}. No module {module!r} under the working_dir ({wd_shown}): check the "
                    "working_dir (relative paths are taken from the directory you deploy from) and the import_path.")
        if missing:
            return (f"the application's code imports {missing!r}, which is not installed where it was imported: "
                    "add it to the runtime_env (pip/uv) or to the cluster's image.")
    if etype == "AttributeError":
        return f"module {module!r} imported, but it has no attribute {attr!r}: check the part after ':'."
    if etype == "ValueError" and "colon" in message:
        return "an import path has the form 'package.module:attribute' with at most one colon."
    return f"importing {import_path!r} raised {etype}: the application's module fails on import (see the traceback)."


def fetch_hint(exc: dict, *, sent: str) -> str:
    message = exc.get("message") or ""
    status = re.match(r"(\d{3}) ", message)
    code = int(status.group(1)) if status else None
    if code == 404:
        if sent == "none":
            return (GITHUB_404_HINT + ". No token was sent: set RAY_RUNTIME_ENV_BEARER_TOKEN (Ray sends it as a "
                    "Bearer header) or put user:token@ in the URL.")
        return GITHUB_404_HINT + f". Sent: {sent}."
    if code in (401, 403):
        return f"the server refused the credentials ({code}): the token is wrong, expired or lacks access."
    if "BadZipFile" in (exc.get("type") or ""):
        return "the URL answered, but not with a zip archive: working_dir URLs must point at a .zip of the code."
    return "Ray could not download the working_dir: the URL, the network or the credentials are wrong."


# -- running the repro -----------------------------------------------------------------------

def _run_env(environ: Mapping[str, str], extra: Mapping[str, str] | None = None) -> dict:
    env = {k: v for k, v in environ.items() if not k.startswith("REPREX_") and k != "PYTHONPATH"}
    env.update(extra or {})
    return env


def _run_repro(script: str, workdir: Path, python: str, env: dict, timeout: float):
    from reprex.recorded import run_recorded

    (workdir / "repro.py").write_text(script, "utf-8")
    return run_recorded([python, "repro.py"], cwd=workdir, env=env, timeout=timeout, tee=False).outcome


def _secret_forms(secrets: list[str]) -> list[bytes]:
    import base64
    from urllib.parse import quote

    forms: set[bytes] = set()
    for secret in secrets:
        if not secret or len(secret) < 6:
            continue
        for text in (secret, quote(secret, safe=""), json.dumps(secret)[1:-1]):
            forms.add(text.encode())
        forms.add(base64.b64encode(secret.encode()))
    return sorted(forms)


def leaked(zip_bytes: bytes, secrets: list[str]) -> list[str]:
    """Entries (or 'zip bytes') of a bundle zip in which a secret appears, decompressed or raw."""
    forms = _secret_forms(secrets)
    where = []
    if any(f in zip_bytes for f in forms):
        where.append("zip bytes")
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        for info in zf.infolist():
            data = zf.read(info)
            if any(f in data or f in info.filename.encode() for f in forms):
                where.append(info.filename)
    return where


def _ray_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return None


def _bundle(outcome, *, script: str, workdir: Path, environ: dict, python: str, name: str, network: bool,
            extra_manifest: dict, hint: str, out_dir: Path, secrets: list[str], progress: Progress) -> Path:
    from reprex.capture.pipeline import CaptureOptions, assemble, write_bundle
    from reprex.draft import seal
    from reprex.redact import Redactor

    options = CaptureOptions(output=out_dir, name=name, network=network, include=("**/*",))
    entry = {"argv": ["python", "repro.py"], "cwd": ".", "kind": "extracted", "python_args": []}
    red = Redactor(environ, extra_secrets=secrets)
    # Scrub before assembling: it normalizes the signature's message (digits -> <n>) before
    # redacting, which breaks a token's shape in a URL's user:token@ beyond recognition.
    outcome = dataclasses.replace(
        outcome, exception=red.obj(outcome.exception, "traceback") if outcome.exception else None,
        thread_exceptions=red.obj(outcome.thread_exceptions, "traceback"),
        output_tail=[[stream, red.text(text, stream)] for stream, text in outcome.output_tail])
    draft = assemble(outcome, argv=["python", "repro.py"], cwd=workdir, environ=environ, python=python,
                     options=options, entry=entry, script=workdir / "repro.py", progress=progress, redactor=red)
    draft.files.pop("files/repro.py", None)  # the repro is the bundle's root repro.py; files/ is the working dir
    draft.files["repro.py"] = red.text(script, "repro.py").encode()
    manifest = draft.manifest
    copied = [p for p in (manifest.get("files") or {}).get("copied") or [] if p != "files/repro.py"]
    manifest.setdefault("files", {})["copied"] = copied
    manifest.update(red.obj(extra_manifest, "reprex.json"))
    manifest["hint"] = red.text(hint, "reprex.json")
    draft.readme_notes.append(f"**Hint:** {manifest['hint']}")
    new = seal(draft)
    found = leaked(new.to_zip_bytes(), secrets)
    if found:  # the redactor should make this impossible; refuse rather than publish a token
        raise ServeCheckError(f"refusing to write {name}: a credential would be in {', '.join(found)}")
    return write_bundle(new, out_dir, workdir)


# -- the check -----------------------------------------------------------------------------

def check_serve(config_path: str | os.PathLike, *, cwd: str | os.PathLike | None = None,
                out_dir: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None,
                python: str | None = None, timeout: float = 120.0, apps: list[str] | None = None,
                working_dir: str | os.PathLike | None = None,
                max_file: int = 2 * 1024 * 1024, max_total: int = 5 * 1024 * 1024,
                progress: Progress = _noop) -> ServeCheckReport:
    """Check every application of a Serve config; write a bundle for each failure.

    working_dir: the job-level working_dir for applications whose runtime_env has none, as
    `serve run --working-dir DIR` uploads it (default: cwd, where `serve run` runs).
    """
    from reprex.redact import Redactor

    config_path = Path(config_path)
    cwd = Path(cwd or os.getcwd()).resolve()
    out_dir = Path(out_dir) if out_dir else cwd
    out_dir.mkdir(parents=True, exist_ok=True)
    environ = dict(os.environ if environ is None else environ)
    python = python or sys.executable
    try:
        config = load_config(config_path if config_path.is_absolute() else cwd / config_path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ServeCheckError(f"cannot read {config_path}: {exc}") from None
    except Exception as exc:  # a YAML syntax error
        raise ServeCheckError(f"cannot parse {config_path}: {type(exc).__name__}: {exc}") from None
    applications = serve_applications(config)
    if not applications:
        raise ServeCheckError(f"{config_path}: no applications (expected `applications: [{{name, import_path, "
                              "runtime_env}}]` or a top-level import_path)")
    shown_config = config_path.as_posix()
    ray_version = _ray_version()
    ray_info = {"version": ray_version, "serve_configs": [serve_config_summary(config_path, config, cwd)],
                "working_dir_auth": {"bearer_token_set": bool(environ.get(BEARER_ENV)),
                                     "user_agent_set": USER_AGENT_ENV in environ, **netrc_facts(environ)}}
    report = ServeCheckReport(config=shown_config, apps=[])
    downloads: dict[str, tuple[bytes | None, Exception | None]] = {}
    with tempfile.TemporaryDirectory(prefix="reprex-check-serve-") as tmp:
        for index, app in enumerate(applications):
            name = str(app.get("name") or f"app{index}")
            if apps and name not in apps:
                continue
            runtime_env = app.get("runtime_env") or {}
            wd = runtime_env.get("working_dir") if isinstance(runtime_env, dict) else None
            summary = runtime_env_summary(runtime_env) or {}
            check = AppCheck(name=name, import_path=app.get("import_path"), working_dir=summary.get("working_dir"))
            report.apps.append(check)
            if not isinstance(check.import_path, str) or not check.import_path:
                check.status, check.notes = "skipped", ["no import_path"]
                continue
            if isinstance(runtime_env, dict) and runtime_env.get("py_modules"):
                check.notes.append("py_modules are not materialized by check-serve; only the working_dir is")
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or f"app{index}"
            base = Path(tmp) / f"{index}-{safe}"
            source = base / "source"
            secrets = [v for v in (environ.get(BEARER_ENV),) if v]
            red = Redactor(environ, extra_secrets=secrets)
            wd_shown = check.working_dir or "."

            # 1. the working_dir
            if wd is None:
                source = Path(working_dir) if working_dir else cwd
                source = source if source.is_absolute() else cwd / source
                wd_shown = str(working_dir) if working_dir else "."
                if not source.is_dir():
                    _note_missing(check, red, f"the working_dir {wd_shown} is not a directory")
                    continue
            elif not isinstance(wd, str):
                check.status, check.notes = "skipped", check.notes + ["working_dir is not a string"]
                continue
            elif re.match(r"^https?://", wd):
                url, userinfo = split_credentials(wd)
                if userinfo:
                    secrets += [userinfo, userinfo.partition(":")[2]]
                    red = Redactor(environ, extra_secrets=secrets)
                if wd not in downloads:
                    progress(f"{name}: fetching the working_dir")
                    try:
                        downloads[wd] = (fetch(wd, environ), None)
                        zipfile.ZipFile(io.BytesIO(downloads[wd][0])).testzip()
                    except Exception as exc:  # HTTPError, connection errors, BadZipFile...
                        downloads[wd] = (None, exc)
                data, error = downloads[wd]
                if error is not None:
                    url_token = (userinfo or "").partition(":")[2] or (userinfo or "")
                    sent = " and ".join(part for part, present in (
                        (f"{_token_kind(url_token)} in the URL", bool(userinfo)),
                        (f"{_token_kind(environ.get(BEARER_ENV, ''))} as a Bearer header ({BEARER_ENV})",
                         bool(environ.get(BEARER_ENV)))) if present)
                    self_env = _run_env(environ, {URL_CREDENTIALS_ENV: userinfo} if userinfo else None)
                    _record_failure(check, step="working_dir", error=error, red=red, workdir=base / "fetch",
                                    make_script=lambda hint, u=url, c=bool(userinfo): repro_templates.fetch_repro(
                                        config=shown_config, app=name, url=u, had_credentials=c,
                                        ray_version=ray_version, hint=hint),
                                    hint_of=lambda exc_rec, s=sent or "none": fetch_hint(exc_rec, sent=s),
                                    env=self_env, python=python, timeout=timeout, out_dir=out_dir, network=True,
                                    bundle_name=f"{safe}-working-dir", secrets=secrets, progress=progress,
                                    extra={"extracted": {"function": "smart_open.open", "how": "check-serve"},
                                           "ray": ray_info})
                    continue
                unpack_like_ray(data, source, remove_top_level_directory=True)
            elif wd.startswith("file://") or ("://" not in wd and wd.endswith(".zip")):
                path = Path(unquote(urlsplit(wd).path)) if wd.startswith("file://") else Path(wd)
                path = path if path.is_absolute() else cwd / path
                if not path.is_file():
                    _note_missing(check, red, f"the working_dir zip {wd_shown} does not exist")
                    continue
                # Ray unzips uploaded local zips as they are, remote zips without their top-level directory.
                unpack_like_ray(path.read_bytes(), source, remove_top_level_directory=wd.startswith("file://"))
            elif "://" in wd:
                check.status = "skipped"
                check.notes.append(f"working_dir {wd_shown}: only local, file:// and http(s) working_dirs are checked")
                continue
            else:
                source = Path(wd) if os.path.isabs(wd) else cwd / wd
                if not source.is_dir():
                    _note_missing(check, red, f"the working_dir {wd_shown} is not a directory (relative paths are "
                                              f"taken from {cwd})")
                    continue

            # 2. the import path, in a copy of the working_dir
            progress(f"{name}: importing {check.import_path}")
            work = base / "import"
            work.mkdir(parents=True)
            subdir = "working_dir" if (source / "repro.py").exists() else "."
            _, skipped = copy_tree(source, work / subdir, max_file=max_file, max_total=max_total)
            if skipped:
                check.notes.append(f"{len(skipped)} working_dir file(s) not copied (secrets or over budget)")
            _record_failure(check, step="import_path", error=None, red=red, workdir=work,
                            make_script=lambda hint, ip=check.import_path, sd=subdir: repro_templates.import_repro(
                                config=shown_config, app=name, import_path=ip, subdir=sd, ray_version=ray_version,
                                hint=hint),
                            hint_of=lambda exc_rec, ip=check.import_path, w=work / subdir, s=wd_shown: import_hint(
                                exc_rec, ip, w, s),
                            env=_run_env(environ), python=python, timeout=timeout, out_dir=out_dir, network=False,
                            bundle_name=f"{safe}-import-path", secrets=secrets, progress=progress,
                            extra={"extracted": {"function": "import_attr", "how": "check-serve"}, "ray": ray_info})
    return report


def _token_kind(token: str) -> str:
    """What kind of GitHub token this looks like, never the token."""
    if token.startswith("github_pat_"):
        return "a fine-grained token (github_pat_...)"
    if token.startswith(("ghp_", "gho_", "ghu_", "ghs_")):
        return f"a classic token ({token[:4]}...)"
    return "a token"


def _note_missing(check: AppCheck, red, message: str) -> None:
    check.status, check.step = "failed", "working_dir"
    check.error = {"type": "FileNotFoundError", "message": red.text(message, "report")}
    check.hint = "Ray resolves a relative working_dir from the directory you deploy from; fix the path."


def _record_failure(check: AppCheck, *, step: str, error: Exception | None, red, workdir: Path, make_script,
                    hint_of, env: dict, python: str, timeout: float, out_dir: Path, network: bool,
                    bundle_name: str, secrets: list[str], progress: Progress, extra: dict) -> None:
    """Run the step's repro under the recorder; if it fails, bundle it with its hint."""
    from reprex.signature import compute

    workdir.mkdir(parents=True, exist_ok=True)
    outcome = _run_repro(make_script(None), workdir, python, env, timeout)
    if not outcome.failed:
        if error is not None:  # failed in-process, but not on its own: say so, bundle nothing
            check.status, check.step = "failed", step
            check.error = {"type": type(error).__name__, "message": red.text(str(error), "report")[:2000]}
            check.notes.append("the failure did not happen again in a fresh interpreter: no bundle written")
        return
    exc = outcome.exception or {"type": outcome.outcome, "message": ""}
    check.status, check.step = "failed", step
    check.error = {"type": exc.get("type"), "message": red.text(exc.get("message") or "", "report")[:2000]}
    check.hint = red.text(hint_of(exc), "report")
    # The bundled script carries the hint: run it as bundled, so its expected outcome is its own.
    script = make_script(check.hint)
    final = _run_repro(script, workdir, python, env, timeout)
    if final.failed and compute(final).matches(compute(outcome)):
        outcome = final
    else:
        script = make_script(None)
        (workdir / "repro.py").write_text(script, "utf-8")
    progress(f"{check.name}: writing the bundle")
    extra = {**extra, "serve_check": {"application": check.name, "step": step, "import_path": check.import_path,
                                      "working_dir": check.working_dir}}
    path = _bundle(outcome, script=script, workdir=workdir, environ=env, python=python, name=bundle_name,
                   network=network, extra_manifest=extra, hint=check.hint, out_dir=out_dir, secrets=secrets,
                   progress=progress)
    check.bundle = str(path)
    check.signature = compute(outcome).to_dict()
