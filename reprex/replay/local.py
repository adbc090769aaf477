"""The local backend: a virtualenv per lock hash in the cache, reused while the lock matches.

Made and filled by uv (reprex.installer; pip where uv can't run). Exact pins are installed
with --no-deps (the lock already is a solution), from uv's cache when it has them; `--with`
specs go into a per-replay overlay directory on PYTHONPATH so the cached env stays warm.
Each run gets a fresh work dir laid out from files/. What a warm run need not redo it
doesn't: the env's first run writes its bytecode, and its facts are read once, beside that run.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reprex import installer
from reprex.bundle import Bundle
from reprex.fsutil import cache_root, hold_in_use, lock_for, locked
from reprex.installer import last_error
from reprex.recorded import run_recorded
from reprex.replay import shadow
from reprex.replay.base import (EnvIncompatible, InfraError, Progress, ReplayOptions, RunOutput, base_environ,
                                entry_args, lock_hash, needs_gpu, python_xy, replay_environ, replay_pythonpath,
                                requirements,
                                work_files)


FACTS = ".reprex-facts.json"


@dataclass
class LocalEnv:
    venv: Path
    python: Path
    overlay: Path | None = None
    reused: bool = False
    scratch: list[Path] = field(default_factory=list)
    hold: object = None  # the shared in-use lock on the venv (fsutil.hold_in_use), closed by close()
    facts: subprocess.Popen | None = None  # the env's facts being read beside its first run
    provided: dict[str, list[str]] = field(default_factory=dict)  # local --with path -> the files it installed
    replaced: shadow.Replaced | None = None  # the bundle's copies of those left out of the work dir


def find_python(xy: str) -> str | None:
    if f"{sys.version_info.major}.{sys.version_info.minor}" == xy:
        return sys.executable
    found = shutil.which(f"python{xy}")
    if found:
        return found
    uv = installer.uv()
    if uv:
        try:
            proc = subprocess.run([uv, "python", "find", xy], capture_output=True, text=True, timeout=30)
            if proc.returncode == 0 and proc.stdout.strip():
                return proc.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return None


class LocalBackend:
    name = "local"
    # run_recorded or one with its signature: `reprex shrink` forks its candidate runs from warm servers
    runner = None

    def prepare(self, bundle: Bundle, options: ReplayOptions, progress: Progress) -> LocalEnv:
        if options.gpus not in (None, "none") or needs_gpu(bundle):
            if not shutil.which("nvidia-smi"):
                raise EnvIncompatible("the bundle needs a GPU (captured on "
                                      f"{', '.join((bundle.manifest.get('gpu') or {}).get('models') or ['a GPU'])}) "
                                      "and this machine has none")
        xy = python_xy(bundle)
        python = find_python(xy)
        if python is None:
            raise EnvIncompatible(f"no Python {xy} on this machine (the bundle ran "
                                  f"{bundle.manifest['python']['version']}); install it or use --backend docker")
        key = lock_hash(bundle, python)
        venv = cache_root() / "envs" / f"py{xy}-{key}"
        env_python = venv / "bin" / "python"
        with locked(lock_for(venv)):
            reused = (venv / ".reprex-ready").exists()
            if not reused:
                self._build(bundle, python, venv, options, progress)
            hold = hold_in_use(lock_for(venv))  # until close(): a prune leaves the venv alone
        env = LocalEnv(venv=venv, python=env_python, reused=reused, hold=hold)
        try:
            if not (venv / FACTS).exists():
                env.facts = self._read_facts(env)
            self._overlay(env, options, progress)
            if env.provided:
                env.replaced = self._replaced(env, bundle, progress)
        except BaseException:
            self.close(env, options)
            raise
        return env

    @staticmethod
    def _overlay(env: LocalEnv, options: ReplayOptions, progress: Progress) -> None:
        env_python = env.python
        if options.with_specs:
            env.overlay = Path(tempfile.mkdtemp(prefix="reprex-with-"))
            env.scratch.append(env.overlay)
            for spec in options.with_specs:
                progress(f"installing --with {spec}")
                target = str(Path(spec).resolve()) if os.path.exists(spec) else spec
                before = shadow.dist_infos(env.overlay)
                proc = installer.install(env_python, "--no-deps", "--target", str(env.overlay), target,
                                         timeout=options.setup_timeout)
                if proc.returncode != 0:
                    raise InfraError(f"--with {spec}: install failed: {last_error(proc)}")
                if shadow.is_local(spec):  # a checkout: its packages replace the bundle's copies of them
                    env.provided[spec] = [p for d in sorted(shadow.dist_infos(env.overlay) - before)
                                          for p in shadow.record_paths(env.overlay / d)]

    @staticmethod
    def _replaced(env: LocalEnv, bundle: Bundle, progress: Progress) -> shadow.Replaced:
        files = work_files(bundle)
        replaced = shadow.plan(files, env.provided, shadow.entry_files(entry_args(bundle), files))
        for note in replaced.notes:
            progress(note)
        return replaced

    def _build(self, bundle: Bundle, python: str, venv: Path, options: ReplayOptions, progress: Progress) -> None:
        if venv.exists():
            shutil.rmtree(venv)  # a half-built env from an interrupted replay
        progress(f"creating a virtualenv for Python {python_xy(bundle)}")
        try:
            proc = installer.run(installer.venv_argv(python, venv), options.setup_timeout)
        except subprocess.TimeoutExpired:
            raise InfraError("creating the virtualenv timed out") from None
        if proc.returncode != 0:
            raise InfraError(f"creating the virtualenv failed: {last_error(proc)}")
        reqs = requirements(bundle)
        if reqs:
            progress(f"installing {len(reqs)} pinned packages (--no-deps)")
            req_file = venv / "reprex-requirements.txt"
            req_file.write_text("\n".join(reqs) + "\n")
            try:
                proc = installer.install(venv / "bin" / "python", "--no-deps", "-r", str(req_file),
                                         timeout=options.setup_timeout)
            except subprocess.TimeoutExpired:
                shutil.rmtree(venv, ignore_errors=True)
                raise InfraError(f"installing the pins took longer than {options.setup_timeout:.0f}s") from None
            if proc.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                reason = last_error(proc)
                machine = (bundle.manifest.get("platform") or {}).get("machine")
                if machine and machine != platform.machine():
                    raise EnvIncompatible(f"the bundle ran on {machine}, this is {platform.machine()}, and a pin "
                                          f"has no build here: {reason}")
                raise InfraError(f"installing the pins failed: {reason}")
        (venv / ".reprex-ready").write_text(lock_hash(bundle, python) + "\n")

    def run(self, env: LocalEnv, bundle: Bundle, options: ReplayOptions) -> RunOutput:
        home = Path(tempfile.mkdtemp(prefix="reprex-replay-"))
        env.scratch.append(home)
        workdir = home / "work"
        workdir.mkdir()
        (home / "tmp").mkdir()
        files = work_files(bundle)
        if env.replaced is not None:  # the scratch copy only: the bundle keeps its files
            files = env.replaced.keep(files)
        for rel, data in files.items():
            target = workdir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        # TMPDIR: this machine's own (as when you run the program yourself), not one under the
        # replay's home: a temp path's length shows in messages (unittest's diff carets, its
        # `[N chars]` shortening), and a longer one made a pytest failure read as another.
        environ = {**replay_environ(bundle), **options.pass_env,
                   **base_environ(str(home), f"{env.venv / 'bin'}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
                                  tmpdir=tempfile.gettempdir())}
        environ["VIRTUAL_ENV"] = str(env.venv)
        if "PYTHONDONTWRITEBYTECODE" not in options.pass_env:
            # the venv is ours and reused: its first run writes the bytecode (uv installs none), so
            # later runs don't compile every imported module again (sklearn: 4.8 s -> 1.7 s warm)
            environ.pop("PYTHONDONTWRITEBYTECODE", None)
        pythonpath = ([str(env.overlay)] if env.overlay is not None else []) + \
            replay_pythonpath(bundle, str(workdir))
        if pythonpath:
            environ["PYTHONPATH"] = os.pathsep.join(pythonpath)
        if options.gpus == "none":
            environ["CUDA_VISIBLE_DEVICES"] = ""
        elif options.gpus not in (None, "all"):
            environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(int(options.gpus)))
        known = env.overlay is None and (env.facts is not None or (env.venv / FACTS).exists())
        if known:
            environ["REPREX_RECORD_FACTS"] = "0"  # the env's are known: reading them is most of the exit cost
        result = (self.runner or run_recorded)([str(env.python), *entry_args(bundle)], cwd=workdir, env=environ,
                                               timeout=options.timeout, tee=False)
        outcome = result.outcome
        self._finish_facts(env)
        saved = self._saved_facts(env) if known else {}
        if saved:
            outcome.facts = {**saved, **(outcome.facts or {})}
        logs = "".join(text for _, text in outcome.output_tail)
        return RunOutput(outcome, logs)

    @staticmethod
    def _read_facts(env: LocalEnv) -> subprocess.Popen | None:
        """The env's Python and distributions, read once per env by the recorder's --facts beside
        the first run (not after it, as the recorder would on exit), for every run after."""
        from reprex.record import RECORDER_FILE

        try:
            with open(env.venv / f"{FACTS}.{os.getpid()}", "wb") as out:
                return subprocess.Popen([str(env.python), "-I", str(RECORDER_FILE), "--facts"], stdout=out,
                                        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=env.venv,
                                        env={"PATH": f"{env.venv / 'bin'}{os.pathsep}/usr/bin:/bin",
                                             "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})  # no more than a run gets
        except OSError:
            return None

    @staticmethod
    def _finish_facts(env: LocalEnv) -> None:
        if env.facts is None:
            return
        proc, env.facts = env.facts, None
        tmp = env.venv / f"{FACTS}.{os.getpid()}"
        try:
            ok = proc.wait(timeout=120) == 0 and isinstance(json.loads(tmp.read_text()), dict)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            proc.kill()
            proc.wait()
            ok = False
        if ok:
            os.replace(tmp, env.venv / FACTS)
        else:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _saved_facts(env: LocalEnv) -> dict:
        """The cached env's facts (an overlay of --with packages changes them: read afresh then)."""
        if env.overlay is not None:
            return {}
        try:
            data = json.loads((env.venv / FACTS).read_text())
        except (OSError, ValueError):
            return {}
        return {k: data[k] for k in ("python", "distributions") if k in data} if isinstance(data, dict) else {}

    def describe(self, env: LocalEnv) -> dict:
        return {"backend": "local", "image": None, "venv": str(env.venv), "reused": env.reused,
                "platform": {"system": platform.system(), "machine": platform.machine()},
                "notes": list(env.replaced.notes) if env.replaced is not None else []}

    def close(self, env: LocalEnv, options: ReplayOptions) -> None:
        if env.facts is not None:  # never waited for: no run
            env.facts.kill()
            env.facts.wait()
            (env.venv / f"{FACTS}.{os.getpid()}").unlink(missing_ok=True)
            env.facts = None
        if env.hold is not None:
            env.hold.close()
            env.hold = None
        if options.keep:
            return
        for path in env.scratch:
            shutil.rmtree(path, ignore_errors=True)
