"""Real regressions for `reprex bisect`: each a failure people reported on a public issue
tracker, whose first bad release the package's changelog names, checked here by running the
program against every served release (`python tests/bisect_cases.py` prints that check).

A case serves every final release of its package in the range (PyPI's own files and facts,
through tests/bisect_index.py), the dependencies those releases need, and a small program
that fails under the bad pins. `capture_case()` makes the case's bundle the way a user does:
a venv of the bad pins from the loopback index, then a real `reprex capture` of the program.

Picked to stay small (pure-Python wheels of a few hundred KB at most) and to cover what a
bisection must get right: yanked releases (urllib3), a release whose dependencies differ
from the bad pins' (packaging 21 needs pyparsing, 22 does not), a range with releases that
have no cp311 wheel (coverage 6.3-6.4.3: skipped, never blamed) and a compiled dependency
(markupsafe under jinja2).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bisect_index import IndexServer

UV_ENV = "REPREX_UV"


@dataclass(frozen=True)
class Case:
    name: str
    package: str
    releases: tuple[str, ...]  # every final release served, ascending
    first_bad: str  # the changelog's release (yanked ones included)
    last_good: str
    bad_pins: dict[str, str]  # the captured environment (the closure the program imports)
    script: str  # exits 0 on a good release, fails on a bad one
    issue: str  # a public report of the failure
    changelog: str  # where the release notes say it
    deps: dict[str, tuple[str, ...]] = field(default_factory=dict)  # other projects served: name -> versions
    no_cp311: tuple[str, ...] = ()  # releases PyPI has no cp311 wheel for: only their cp310 wheel is served
    yanked: tuple[str, ...] = ()  # releases PyPI lists as yanked (served as PyPI has them)
    good: str | None = None  # the --good a user would give (None: reprex finds one by stepping back)

    @property
    def expected_first_bad(self) -> str:
        """What `reprex bisect` names without --yanked: yanked releases are left out, so the
        first bad is the first non-yanked release from the changelog's one on."""
        ordered = list(self.releases)
        for version in ordered[ordered.index(self.first_bad):]:
            if version not in self.yanked and version not in self.no_cp311:
                return version
        raise AssertionError(f"{self.name}: no installable bad release")

    @property
    def skipped(self) -> tuple[str, ...]:
        """Releases in the searched range a bisection must skip and report, never blame."""
        return tuple(v for v in self.releases if v in self.no_cp311 or v in self.yanked)


CASES: tuple[Case, ...] = (
    Case(
        name="urllib3-method-whitelist",
        package="urllib3",
        releases=("1.26.12", "1.26.13", "1.26.14", "1.26.15", "1.26.16", "1.26.17", "1.26.18",
                  "2.0.0", "2.0.1", "2.0.2", "2.0.3", "2.0.4", "2.0.5", "2.0.6", "2.0.7", "2.1.0", "2.2.0",
                  "2.2.1", "2.2.2", "2.2.3"),
        first_bad="2.0.0", last_good="1.26.18", yanked=("2.0.0", "2.0.1"),
        bad_pins={"urllib3": "2.2.3"},
        script=("from urllib3.util.retry import Retry\n"
                "retry = Retry(total=3, backoff_factor=0.5, method_whitelist=frozenset(['GET', 'POST']))\n"
                "print('retry policy:', retry)\n"),
        issue="https://github.com/georgestarcher/Splunk-Class-httpevent/issues/27",
        changelog="https://github.com/urllib3/urllib3/blob/main/CHANGES.rst#200-2023-04-26 "
                  "(Removed deprecated Retry options method_whitelist, DEFAULT_REDIRECT_HEADERS_BLACKLIST, #2086; "
                  "2.0.0 and 2.0.1 yanked on PyPI: urllib3/urllib3#3009)",
    ),
    Case(
        name="werkzeug-safe-str-cmp",
        package="werkzeug",
        releases=("2.0.0", "2.0.1", "2.0.2", "2.0.3", "2.1.0", "2.1.1", "2.1.2", "2.2.0", "2.2.1", "2.2.2",
                  "2.2.3", "2.3.0", "2.3.1", "2.3.2", "2.3.3", "2.3.4", "2.3.5", "2.3.6", "2.3.7", "2.3.8"),
        first_bad="2.1.0", last_good="2.0.3",
        bad_pins={"werkzeug": "2.3.8", "markupsafe": "2.1.3"},
        deps={"markupsafe": ("2.1.3",)},  # werkzeug 2.2 on requires it
        script=("from werkzeug.security import safe_str_cmp\n"
                "print('tokens match:', safe_str_cmp('a-token', 'a-token'))\n"),
        issue="https://github.com/maxcountryman/flask-seasurf/issues/109",
        changelog="https://werkzeug.palletsprojects.com/en/2.1.x/changes/#version-2-1-0 "
                  "(Remove previously deprecated code: safe_str_cmp, pallets/werkzeug#2359)",
    ),
    Case(
        name="itsdangerous-jws",
        package="itsdangerous",
        releases=("2.0.0", "2.0.1", "2.1.0", "2.1.1", "2.1.2", "2.2.0"),
        first_bad="2.1.0", last_good="2.0.1",
        bad_pins={"itsdangerous": "2.2.0"},
        script=("from itsdangerous import TimedJSONWebSignatureSerializer\n"
                "s = TimedJSONWebSignatureSerializer('secret-key', expires_in=600)\n"
                "print('token:', s.dumps({'user': 1}))\n"),
        issue="https://github.com/pallets/itsdangerous/issues/294",
        changelog="https://itsdangerous.palletsprojects.com/en/2.1.x/changes/#version-2-1-0 "
                  "(Remove previously deprecated code: JWS)",
    ),
    Case(
        name="click-get-terminal-size",
        package="click",
        releases=("8.0.0", "8.0.1", "8.0.2", "8.0.3", "8.0.4", "8.1.0", "8.1.1", "8.1.2", "8.1.3", "8.1.4",
                  "8.1.5", "8.1.6", "8.1.7", "8.1.8"),
        first_bad="8.1.0", last_good="8.0.4",
        bad_pins={"click": "8.1.8"},
        script=("import click\n"
                "width, height = click.get_terminal_size()\n"
                "print('terminal:', width, height)\n"),
        issue="https://github.com/pallets/click/issues/2229",
        changelog="https://click.palletsprojects.com/en/8.1.x/changes/#version-8-1-0 "
                  "(Remove previously deprecated code: get_terminal_size)",
    ),
    Case(
        name="packaging-legacy-version",
        package="packaging",
        releases=("20.5", "20.7", "20.8", "20.9", "21.0", "21.2", "21.3", "22.0", "23.0", "23.1"),
        first_bad="22.0", last_good="21.3",
        bad_pins={"packaging": "23.1"},
        deps={"pyparsing": ("2.4.7", "3.0.9")},  # packaging <= 21.3 requires it (21.2: <3), 22.0 on does not
        script=("from packaging.version import LegacyVersion, parse\n"
                "print('legacy:', isinstance(parse('2004d'), LegacyVersion))\n"),
        issue="https://github.com/pyupio/safety/issues/438",
        changelog="https://github.com/pypa/packaging/blob/main/CHANGELOG.rst#220---2022-12-07 "
                  "(Remove LegacySpecifier and LegacyVersion, pypa/packaging#407)",
    ),
    Case(
        name="importlib-metadata-entry-points-get",
        package="importlib-metadata",
        releases=("4.8.1", "4.8.2", "4.8.3", "4.9.0", "4.10.0", "4.10.1", "4.11.0", "4.11.1", "4.11.2",
                  "4.11.3", "4.11.4", "4.12.0", "4.13.0", "5.0.0", "5.1.0", "5.2.0", "6.0.0", "6.0.1", "6.1.0",
                  "6.2.0", "6.2.1", "6.3.0", "6.4.0", "6.4.1", "6.5.0", "6.5.1", "6.6.0", "6.7.0", "6.8.0", "6.9.0",
                  "6.10.0", "6.11.0"),
        first_bad="5.0.0", last_good="4.13.0",
        bad_pins={"importlib-metadata": "6.11.0", "zipp": "3.15.0"},
        deps={"zipp": ("3.15.0",)},
        script=("import importlib_metadata\n"
                "scripts = importlib_metadata.entry_points().get('console_scripts', [])\n"
                "print('console scripts:', len(scripts))\n"),
        issue="https://github.com/python/importlib_metadata/issues/406",
        changelog="https://importlib-metadata.readthedocs.io/en/latest/history.html#v5-0-0 "
                  "(#97, #284, #300: Removed compatibility shims for deprecated entry point interfaces)",
    ),
    Case(
        name="jinja2-markup",
        package="jinja2",
        releases=("3.0.0", "3.0.1", "3.0.2", "3.0.3", "3.1.0", "3.1.1", "3.1.2"),
        first_bad="3.1.0", last_good="3.0.3",
        bad_pins={"jinja2": "3.1.2", "markupsafe": "2.1.3"},
        deps={"markupsafe": ("2.1.3",)},
        script=("from jinja2 import Markup, escape\n"
                "print(Markup('<b>%s</b>') % escape('<script>'))\n"),
        issue="https://github.com/pallets/jinja/issues/1632",
        changelog="https://jinja.palletsprojects.com/en/3.1.x/changes/#version-3-1-0 "
                  "(Remove previously deprecated code: Markup and escape, use MarkupSafe instead)",
    ),
    Case(
        name="coverage-fnmatch-matcher",
        package="coverage",
        releases=("6.2", "6.3", "6.3.1", "6.3.2", "6.3.3", "6.4", "6.4.1", "6.4.2", "6.4.3", "6.4.4",
                  "6.5.0", "7.0.0", "7.0.1", "7.0.2", "7.0.3"),
        first_bad="7.0.0", last_good="6.5.0",
        no_cp311=("6.3", "6.3.1", "6.3.2", "6.3.3", "6.4", "6.4.1", "6.4.2", "6.4.3"),
        good="6.2",
        bad_pins={"coverage": "7.0.3"},
        script=("from coverage.files import FnmatchMatcher\n"
                "matcher = FnmatchMatcher(['src/*'], 'include')\n"
                "print('matches:', matcher.match('src/app.py'))\n"),
        issue="https://github.com/TheKevJames/coveralls-python/issues/377",
        changelog="https://coverage.readthedocs.io/en/7.0.0/changes.html#version-7-0-0 "
                  "(\"Changes to file pattern matching\": the fnmatch-based matcher was rewritten, and "
                  "coverage.files.FnmatchMatcher became GlobMatcher, as 6.5.0's and 7.0.0's wheels show; see "
                  "doc/migrations.rst 'Migrating 6.x.x - 7.x.x'; "
                  "PyPI has no cp311 wheel of 6.3-6.4.3: 6.2's were built against 3.11's alphas, 6.4.4 on the release)",
    ),
)

BY_NAME = {case.name: case for case in CASES}


# -- serving and capturing -------------------------------------------------------------------

def serve(index: IndexServer, case: Case) -> None:
    """Put the case's releases and dependencies on the index (each file fetched once)."""
    installable = [v for v in case.releases if v not in case.no_cp311]
    index.add(case.package, installable)
    if case.no_cp311:
        index.add(case.package, case.no_cp311, python="3.10")
    for name, versions in case.deps.items():
        index.add(name, versions)


def uv_binary() -> str:
    from reprex.installer import uv

    found = uv()
    if found is None:
        raise RuntimeError("the bisect cases build venvs with uv, and uv can't run here")
    return found


def make_venv(index: IndexServer, pins: dict[str, str], dest: Path) -> Path:
    """A venv of exactly `pins`, installed from the loopback index alone; its python."""
    env = index.environ()
    uv = uv_binary()
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(dest)], check=True, env=env,
                   capture_output=True, timeout=120)
    python = dest / "bin" / "python"
    proc = subprocess.run([uv, "pip", "install", "-q", "--python", str(python), "--no-deps",
                           *[f"{n}=={v}" for n, v in pins.items()]], env=env, capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"installing {pins} from {index.url}: {proc.stderr.strip()[-600:]}")
    return python


def capture_case(index: IndexServer, case: Case, work: Path) -> Path:
    """The case's bundle, made by a real `reprex capture` of its program under the bad pins."""
    serve(index, case)
    work.mkdir(parents=True, exist_ok=True)
    python = make_venv(index, case.bad_pins, work / "venv")
    app = work / "app"
    app.mkdir(exist_ok=True)
    (app / "repro_app.py").write_text(case.script)
    out = work / f"{case.name}.reprex.zip"
    proc = subprocess.run([sys.executable, "-m", "reprex", "capture", "-q", "--json", "-o", str(out), "--",
                           str(python), "repro_app.py"], cwd=app, env=index.environ(),
                          capture_output=True, text=True, timeout=300)
    if not out.exists():
        raise RuntimeError(f"{case.name}: capture wrote no bundle (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-800:]}")
    return out


def run_release(index: IndexServer, case: Case, version: str, work: Path) -> bool:
    """Does the program pass with `case.package==version` over the bad pins (plus deps)? The
    changelog check: a linear scan over every release, done by hand, not by reprex."""
    pins = {**{n: vs[-1] for n, vs in case.deps.items()}, **case.bad_pins, case.package: version}
    python = make_venv(index, pins, work / f"venv-{version}")
    proc = subprocess.run([str(python), "-c", case.script], capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ.get("PATH", ""), "HOME": str(work)})
    return proc.returncode == 0


def changelog_links(index: IndexServer, package: str, version: str) -> list[str]:
    """The Project-URLs in that release's own metadata whose label names release notes
    (Changelog, Changes, Release notes, History, News): what a bisect result should link to."""
    import re
    from email.parser import BytesHeaderParser

    from packaging.utils import canonicalize_name

    found = []
    for f in index.projects.get(canonicalize_name(package), {}).values():
        if f.version == version and f.metadata:
            for value in BytesHeaderParser().parsebytes(f.metadata).get_all("Project-URL") or []:
                label, _, url = value.partition(",")
                if re.search(r"change|release|history|news", label, re.I):
                    found.append(url.strip())
    return found


def bisect_argv(case: Case, bundle: Path, out: Path, *extra: str) -> list[str]:
    """`reprex bisect` for a case's bundle in mode 1 (with the case's --good when it has one)."""
    argv = [sys.executable, "-m", "reprex", "bisect", str(bundle), "--package", case.package, "--json",
            "-o", str(out), *extra]
    if case.good and "--good" not in extra:
        argv += ["--good", case.good]
    return argv


def release_steps(data: dict, case: Case) -> list[tuple[str, str]]:
    """(version, verdict) of every probe of a release of the case's package, in the order run."""
    prefix = f"{case.package} "
    return [(s["label"][len(prefix):], s["verdict"]) for s in data["steps"] if s["label"].startswith(prefix)]


def oldest_good(case: Case) -> str:
    """The --good a user who knows the range gives: the case's own, else its oldest installable release."""
    return case.good or next(v for v in case.releases if v not in case.skipped)


def releases_in_range(data: dict, case: Case, good: str | None) -> list[str]:
    """The installable releases the search had to cover: from `good` (the --good given), or
    without one from the oldest release it probed, up to the bad pin."""
    from packaging.version import Version

    probed = [Version(v) for v, _ in release_steps(data, case)]
    start = Version(good) if good else min(probed)
    bad = Version(case.bad_pins[case.package])
    return [v for v in case.releases if start <= Version(v) <= bad and v not in case.skipped]


def probe_budget(data: dict, case: Case, good: str | None) -> tuple[int, int, int]:
    """(replays used, the issue's bound: ceil(log2(releases in range)) + 2 + probes skipped, releases
    in range). The replay of the bundle's own pins counts: it is the bad baseline (and the
    flaky-rate estimate)."""
    import math

    skips = sum(1 for s in data["steps"] if s["verdict"] == "skip")
    n = len(releases_in_range(data, case, good))
    return data["replays"], math.ceil(math.log2(n)) + 2 + skips, n


def linear_scan(case: Case) -> int:
    """Replays a plain linear scan needs: the bundle's own, then one release at a time back from
    the bad pin until one passes (the releases that can't be installed here passed over)."""
    order = [v for v in case.releases if v not in case.skipped]
    bad = order.index(case.bad_pins[case.package])
    last_good = order.index(case.last_good)
    return 1 + (bad - last_good)


def check(names: list[str] | None = None) -> int:
    """Run every case's program against every installable release; print where it turns bad."""
    import tempfile

    from bisect_index import FileCache, cache_dir

    index = IndexServer(FileCache(cache_dir())).start()
    problems = 0
    try:
        for case in CASES:
            if names and case.name not in names:
                continue
            serve(index, case)
            with tempfile.TemporaryDirectory() as tmp:
                results = {v: run_release(index, case, v, Path(tmp))
                           for v in case.releases if v not in case.no_cp311}
            bad = [v for v, ok in results.items() if not ok]
            first = bad[0] if bad else None
            monotone = all(not ok for v, ok in results.items() if bad and case.releases.index(v) >=
                           case.releases.index(first))
            good_before = all(ok for v, ok in results.items() if first and case.releases.index(v) <
                              case.releases.index(first))
            right = first == case.first_bad or (first == case.expected_first_bad and case.first_bad in case.yanked)
            verdict = "ok" if right and monotone and good_before else "WRONG"
            problems += verdict != "ok"
            line = " ".join(f"{v}{'' if ok else '!'}" for v, ok in results.items())
            print(f"{verdict:5} {case.name}: first bad {first} (changelog {case.first_bad}); {line}")
    finally:
        index.stop()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(check(sys.argv[1:] or None))
