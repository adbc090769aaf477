"""The oracle of `reprex extract`: runs a candidate call through a replay backend.

A candidate script is bundle code (its arguments may be pickles, its import may be a
module the bundle ships), so it never runs in this process or with the user's
environment. By default it runs in the docker backend's sandbox (no network, no
capabilities, the same environment image a replay of the bundle builds, so judging
costs one container per candidate). The local backend runs it on this machine and is
only for bundles the user vouches for (`--backend local`, `reprex capture --extract`).
Everything the run reports came from bundle code: the caller treats it as untrusted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from reprex.bundle import Bundle, BundleError, canonical_json
from reprex.errors import ReprexError

BACKENDS = ("docker", "local")
DEFAULT_TIMEOUT = 60.0


class JudgeUnavailable(ReprexError):
    """No backend can judge the candidates; `verdict` says which kind of trouble (replay's words)."""

    exit_code = 3

    def __init__(self, reason: str, verdict: str = "infra-error"):
        super().__init__(reason)
        self.reason = reason
        self.verdict = verdict


@dataclass
class JudgeOptions:
    backend: str = "docker"  # docker (sandboxed) | local (runs the bundle's code on this machine)
    image: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    network: str = "none"  # granted by the user only; the bundle's own `network` is never consulted
    gpus: str = "none"
    allow_urls: bool = False  # the user's grant to fetch the bundle's `name @ https://...` pins


def extracted_entry(manifest: dict) -> dict:
    """The entry of a bundle whose repro.py is the extracted call (the candidate's and the result's)."""
    entry = manifest.get("entry") if isinstance(manifest.get("entry"), dict) else {}
    cwd = entry.get("cwd") if isinstance(entry.get("cwd"), str) else "."
    return {"argv": ["python", "repro.py"], "cwd": cwd, "kind": "extracted", "python_args": []}


def candidate_bundle(bundle: Bundle, script: str) -> Bundle:
    """The bundle as a backend runs it with `script` as its entry: same pins, files and Python."""
    manifest = json.loads(canonical_json(bundle.manifest))
    manifest["entry"] = extracted_entry(bundle.manifest)
    files = dict(bundle.files)
    files["repro.py"] = script.encode("utf-8")
    return Bundle(manifest=manifest, files=files).finalize()


class Oracle:
    """One prepared environment for the bundle's lock, reused for every candidate."""

    def __init__(self, bundle: Bundle, options: JudgeOptions, progress=lambda msg: None):
        if options.backend not in BACKENDS:
            raise ValueError(f"unknown judge backend {options.backend!r}; choose docker or local")
        self.bundle = bundle
        self.judge = options
        self.progress = progress
        self.backend = None
        self.env = None
        from reprex.replay.base import ReplayOptions

        self.options = ReplayOptions(backend=options.backend, image=options.image, timeout=options.timeout,
                                     network=options.network, gpus=options.gpus, allow_urls=options.allow_urls)

    def __enter__(self) -> "Oracle":
        from reprex.replay import ReplayProblem, pick_backend

        if self.judge.backend == "docker":
            from reprex.replay import docker_available

            ok, why = docker_available()
            if not ok:
                raise JudgeUnavailable(f"no Docker daemon to judge the candidates in ({why}); `reprex extract` "
                                       "runs a bundle's code only in a container, or with --backend local on this "
                                       "machine for a bundle you trust (your own)")
        self.backend = pick_backend(self.judge.backend)
        try:
            self.env = self.backend.prepare(self.bundle, self.options, self.progress)
        except ReplayProblem as exc:
            raise JudgeUnavailable(f"could not prepare the {self.judge.backend} environment: {exc.reason}",
                                   exc.verdict) from None
        except Exception as exc:  # the machinery broke: one line, never a traceback
            detail = str(exc).splitlines()[0] if str(exc) else ""
            raise JudgeUnavailable(f"could not prepare the {self.judge.backend} environment: "
                                   f"{type(exc).__name__}: {detail}"[:400]) from None
        return self

    def run(self, script: str):
        """The candidate's recorded Outcome; ReplayProblem when the backend could not run it."""
        from reprex.replay import InfraError

        try:
            candidate = candidate_bundle(self.bundle, script)
        except BundleError as exc:
            raise InfraError(f"the candidate is not a valid bundle: {exc}") from None
        return self.backend.run(self.env, candidate, self.options).outcome

    def __exit__(self, *exc_info) -> None:
        if self.backend is not None and self.env is not None:
            try:
                self.backend.close(self.env, self.options)
            except Exception:  # cleanup trouble must not hide the result
                pass
            self.env = None
