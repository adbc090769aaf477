"""The local backend: a virtualenv per lock hash in the cache, reused while the lock matches.

Exact pins are installed with --no-deps (the lock already is a solution); `--with`
specs go into a per-replay overlay directory on PYTHONPATH so the cached env stays
warm. Each run gets a fresh work dir laid out from files/.
"""

from __future__ import annotations

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
from reprex.replay.base import (EnvIncompatible, InfraError, Progress, ReplayOptions, RunOutput, base_environ,
                                entry_args, lock_hash, needs_gpu, python_xy, replay_environ, replay_pythonpath,
                                requirements,
                                work_files)


@dataclass
class LocalEnv:
    venv: Path
    python: Path
    overlay: Path | None = None
    reused: bool = False
    scratch: list[Path] = field(default_factory=list)
    hold: object = None  # the shared in-use lock on the venv (fsutil.hold_in_use), closed by close()


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
            self._overlay(env, options, progress)
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
                proc = installer.run(installer.install_argv(env_python, "--no-deps", "--target", str(env.overlay),
                                                            target), options.setup_timeout)
                if proc.returncode != 0:
                    raise InfraError(f"--with {spec}: install failed: {last_error(proc)}")

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
                proc = installer.run(installer.install_argv(venv / "bin" / "python", "--no-deps", "-r", str(req_file)),
                                     options.setup_timeout)
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
        for rel, data in work_files(bundle).items():
            target = workdir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        environ = {**replay_environ(bundle), **options.pass_env,
                   **base_environ(str(home), f"{env.venv / 'bin'}{os.pathsep}/usr/local/bin:/usr/bin:/bin")}
        environ["VIRTUAL_ENV"] = str(env.venv)
        pythonpath = ([str(env.overlay)] if env.overlay is not None else []) + \
            replay_pythonpath(bundle, str(workdir))
        if pythonpath:
            environ["PYTHONPATH"] = os.pathsep.join(pythonpath)
        if options.gpus == "none":
            environ["CUDA_VISIBLE_DEVICES"] = ""
        elif options.gpus not in (None, "all"):
            environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(int(options.gpus)))
        result = run_recorded([str(env.python), *entry_args(bundle)], cwd=workdir, env=environ,
                              timeout=options.timeout, tee=False)
        logs = "".join(text for _, text in result.outcome.output_tail)
        return RunOutput(result.outcome, logs)

    def describe(self, env: LocalEnv) -> dict:
        return {"backend": "local", "image": None, "venv": str(env.venv), "reused": env.reused,
                "platform": {"system": platform.system(), "machine": platform.machine()}}

    def close(self, env: LocalEnv, options: ReplayOptions) -> None:
        if env.hold is not None:
            env.hold.close()
            env.hold = None
        if options.keep:
            return
        for path in env.scratch:
            shutil.rmtree(path, ignore_errors=True)
