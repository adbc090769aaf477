"""Crafted bundles against what `reprex shrink` (and what it shares with bisect and the Ray path)
reads from a bundle: scripts and modules, input files, the `bisect` section `--fixed-with auto`
takes its fix from.

A bundle is a stranger's: its entries are parsed on the host while candidates are proposed, so a
script, module or input nested past the parser's or the walk's stack, or a YAML alias bomb, must
give a bounded, traceback-free shrink; `--time` must bound a walk the memo alone answers; and a
release the bundle names as its own fix is installed as the bundle's pins are (wheels only),
never built from an sdist on the host.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from reprex.bundle import Bundle
from reprex.capture.pipeline import CaptureOptions, capture_command

PY = sys.executable


def cli(*args, cwd=None, env=None, timeout=600):
    return subprocess.run([PY, "-m", "reprex", *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env or os.environ.copy())


def captured(root: Path, files: dict[str, str | bytes], out: Path) -> Path:
    """A real capture of `python app.py` in a project made of `files`."""
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    result = capture_command([PY, "app.py"], CaptureOptions(tee=False), cwd=str(root))
    assert result.bundle is not None and result.bundle.manifest["expect"]["signature"]
    return result.bundle.write(out)


def crafted(path: Path, out: Path, files: dict[str, bytes]) -> Path:
    """The bundle at `path` with entries added or replaced, its id made to match (a stranger can)."""
    bundle = Bundle.read(path)
    entries = dict(bundle.files)
    entries.update(files)
    return Bundle(manifest=json.loads(json.dumps(bundle.manifest)), files=entries).finalize().write(out)


def one_line_or_report(proc) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


# -- scripts and modules parsed on the host ------------------------------------------------------


def test_a_long_elif_chain_shrinks_instead_of_overflowing_the_walk(tmp_path, cache):
    """300 `elif` branches nest 300 If nodes: the tree's deep copy and walk ran past the stack
    (a RecursionError traceback). Real dispatch code looks like this, and so can a stranger's."""
    branches = "".join(f"elif mode == {i}:\n    pass\n" for i in range(1, 300))
    app = f"mode = -1\nif mode == 0:\n    pass\n{branches}raise ValueError('bad mode')\n"
    bundle = captured(tmp_path / "proj", {"app.py": app}, tmp_path / "elif.reprex.zip")
    out = tmp_path / "elif.shrunk.reprex.zip"
    proc = cli("shrink", bundle, "--backend", "local", "--keep-pins", "--budget", "40", "-o", out, "--json")
    one_line_or_report(proc)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["after"]["statements"] < 10 < report["before"]["statements"], report
    assert "raise ValueError" in Bundle.read(out).text("files/app.py")


def test_a_module_nested_past_the_parser_is_kept_as_it_is(tmp_path, cache):
    """`x = ------...1` (20,000 signs) makes ast.parse raise MemoryError, which neither the
    statement count nor the reducer caught: a traceback from a bundled module never imported."""
    base = captured(tmp_path / "proj", {"app.py": "import json\njson.loads('{')\n"}, tmp_path / "base.reprex.zip")
    deep = b"x = " + b"-" * 20000 + b"1\n"
    bundle = crafted(base, tmp_path / "deep-module.reprex.zip", {"files/helper.py": deep})
    out = tmp_path / "deep-module.shrunk.reprex.zip"
    proc = cli("shrink", bundle, "--backend", "local", "--keep-pins", "--budget", "30", "-o", out, "--json")
    one_line_or_report(proc)
    assert proc.returncode == 0, proc.stderr[-2000:]
    small = Bundle.read(out)
    # never half-parsed: kept as it is, or (a module the run never imported) dropped whole, kept under original/
    assert small.files.get("files/helper.py", deep) == deep
    assert small.files["original/files/helper.py"] == deep


def test_a_json_input_nested_past_the_decoder_is_shrunk_as_text(tmp_path, cache):
    """The program fails parsing 5,000 nested arrays (RecursionError in json); the host's own
    json.loads of that input, deciding its format, raised the same RecursionError: a traceback."""
    app = "import json\nwith open('deep.json') as fh:\n    json.loads(fh.read())\n"
    bundle = captured(tmp_path / "proj", {"app.py": app, "deep.json": "[" * 5000 + "]" * 5000},
                      tmp_path / "deep-json.reprex.zip")
    assert Bundle.read(bundle).manifest["expect"]["signature"]["types"] == ["RecursionError"]
    out = tmp_path / "deep-json.shrunk.reprex.zip"
    proc = cli("shrink", bundle, "--backend", "local", "--keep-pins", "--budget", "40", "-o", out, "--json")
    one_line_or_report(proc)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    phases = report["phases"]["files/deep.json"]["passes"]
    assert "items" not in phases and set(phases) <= {"lines", "chars"}, phases  # as text, never as a tree
    assert report["after"]["inputs"]["deep.json"] < 10000
    assert report["verify"]["reproduced"] == report["verify"]["runs"]


# -- YAML and JSON trees: bounded walks -----------------------------------------------------------


def _normal_yaml(text: str) -> bytes:
    """The YAML as the shrinker's round trip writes it (so no round-trip question stands in the way)."""
    yaml = pytest.importorskip("yaml")
    return yaml.safe_dump(yaml.safe_load(text), sort_keys=False, allow_unicode=True,
                          default_flow_style=None).encode()


LAUGHS = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


@pytest.mark.parametrize("name, text", [
    ("laughs", LAUGHS),  # 759 bytes that load as 9**9 leaves through shared lists
    ("self", "a: &a [*a, 1]\n"),  # a list that holds itself: a walk without end
])
def test_a_yaml_alias_bomb_is_shrunk_as_text_in_bounded_calls(name, text):
    """The program fails only on the exact file (what a hostile one can do), so every candidate is
    refused and the walk goes everywhere: through the aliases that was 9**9 nodes (or endless,
    ending in a RecursionError); as text it is a few hundred calls."""
    from reprex.shrink.inputs import shrink_input

    data = _normal_yaml(text)
    asked = []
    try:
        out, stats = shrink_input("config.yaml", data, lambda b: asked.append(b) or b == data, budget=5000)
    except RecursionError:
        pytest.fail("the alias's self-reference was walked until the stack ran out")
    assert out == data
    assert stats.calls < 5000 and "items" not in stats.passes, stats.passes  # never walked as a tree
    assert all(len(b) <= len(data) for b in asked)  # no candidate is the expansion


def test_a_tree_deeper_than_the_walk_is_shrunk_as_text():
    """900 nested arrays parse (json's limit is the stack's), and the walk, two frames a level,
    ran out of stack when its candidates rebuilt the path to the leaf."""
    from reprex.shrink.inputs import shrink_input

    data = ("[" * 900 + "1" + "]" * 900).encode()
    out, stats = shrink_input("deep.json", data, lambda b: b.count(b"[") >= 900 and b"1" in b, budget=2000)
    assert "items" not in stats.passes, stats.passes
    assert out.count(b"[") >= 900 and b"1" in out


def test_the_deadline_stops_a_walk_the_memo_alone_answers(monkeypatch):
    """An input of one repeated byte: every candidate that drops k pieces is the same bytes, so the
    memo answers thousands of questions in a row and no call is asked; only calls ran into `--time`,
    so the walk went on (an O(n) build per question: 8 MB took 110 s past a 5 s --time). The clock
    here is the test's: a call costs a second, a memo look-up a millisecond; the deadline falls a
    thousand look-ups into such a run, and after it the walk may look up only a few more."""
    import reprex.shrink.reduce as reduce_mod
    from reprex.shrink.inputs import shrink_input

    clock = [1000.0]
    deadline = clock[0] + 15  # 14 calls (the first long run of memo answers follows the 14th), then 1 s
    monkeypatch.setattr(reduce_mod, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    late = [0]
    real_digest = reduce_mod.digest

    def digest(candidate):
        clock[0] += 0.001
        late[0] += clock[0] > deadline
        return real_digest(candidate)

    monkeypatch.setattr(reduce_mod, "digest", digest)
    data = b"a" * 50_000

    def interesting(candidate: bytes) -> bool:  # fails only as it is: every removal refused
        clock[0] += 1.0
        return len(candidate) == len(data)

    out, stats = shrink_input("blob.txt", data, interesting, deadline=deadline)
    assert out == data and stats.calls >= 14
    assert late[0] < 20, f"{late[0]} memo look-ups after the deadline"


def test_a_module_too_big_to_parse_here_is_kept_without_parsing_it(monkeypatch):
    """A bundle's module may be 64 MiB; ast.parse holds ~250 bytes per byte of source (10 MB of
    `v1=1` lines took 2.5 GB and 90 s here), and shrink parsed every bundled .py several times.
    Over the bound the source is neither parsed nor asked about, and is kept as it is."""
    import ast

    import reprex.shrink.script as script
    from reprex.shrink.script import MAX_SOURCE_BYTES, count_statements, shrink_script

    source = "".join(f"v{i} = {i}\n" for i in range(MAX_SOURCE_BYTES // 8)) + "raise ValueError('bad')\n"
    assert len(source) > MAX_SOURCE_BYTES
    parsed = []
    monkeypatch.setattr(script.ast, "parse", lambda *a, **k: parsed.append(1) or ast.parse(*a, **k))
    asked = []
    out, stats = shrink_script(source, lambda s: asked.append(len(s)) or True, budget=3)
    kept = out == source  # (compared apart: a failed assert would print 2 MB)
    assert kept and asked == [] and parsed == [], (asked, len(parsed))
    assert count_statements(source) == 0 and parsed == []


def test_a_big_input_is_neither_parsed_as_a_tree_nor_split_past_a_rounds_bound(monkeypatch):
    """A 5 MB JSON array was parsed and walked as a tree (gigabytes of objects at 64 MiB, and in
    PyYAML minutes), and the text pass split its last rounds into single bytes: 5 million pieces
    in a list, each candidate built in O(pieces). Now: pieces, at most MAX_ROUND_PIECES a round."""
    import reprex.shrink.inputs as inputs

    rounds = []
    real = inputs.reduce_chunks

    def counted(chunks, *a, **k):
        rounds.append(len(chunks))
        return real(chunks, *a, **k)

    monkeypatch.setattr(inputs, "reduce_chunks", counted)
    data = json.dumps([{"id": i, "name": f"item-{i}"} for i in range(150_000)]).encode()
    assert len(data) > inputs.MAX_PARSED_BYTES
    out, stats = inputs.shrink_input("records.json", data, lambda b: b == data, budget=20)
    kept = out == data
    assert kept and "items" not in stats.passes and "keys" not in stats.passes, stats.passes
    assert rounds and max(rounds) <= inputs.MAX_ROUND_PIECES, rounds


def test_yaml_tags_in_an_input_are_never_constructed_on_the_host(tmp_path, cache):
    """The defence that holds: an input's `!!python/object/apply:os.system` is parsed with the safe
    loader only, refused there, and the file shrunk as text (the host never runs the tag)."""
    pytest.importorskip("yaml")
    marker = tmp_path / "pwned-yaml-tag"
    config = (f"name: job\nrun: !!python/object/apply:os.system ['touch {marker}']\n"
              f"also: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\nretries: 3\n")
    app = "with open('config.yaml') as fh:\n    raise ValueError(fh.read())\n"  # --strict: the input must stay
    bundle = captured(tmp_path / "proj", {"app.py": app, "config.yaml": config}, tmp_path / "tags.reprex.zip")
    out = tmp_path / "tags.shrunk.reprex.zip"
    proc = cli("shrink", bundle, "--backend", "local", "--strict", "--keep-pins", "--budget", "30", "-o", out,
               "--json")
    one_line_or_report(proc)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not marker.exists()
    phases = json.loads(proc.stdout)["phases"]["files/config.yaml"]["passes"]
    assert phases and set(phases) <= {"roundtrip", "lines", "chars"}, phases  # as text: the tags were refused
    assert b"retries" in Bundle.read(out).files["files/config.yaml"]


# -- `--fixed-with auto`: the release a bundle names is installed as its pins are ---------------------


FIX = "reprex-redteam-fix"


def _wheel(directory: Path, version: str) -> Path:
    """A pure wheel of the fix: `import reprex_redteam_fix` works with it."""
    dist = f"reprex_redteam_fix-{version}.dist-info"
    files = {
        "reprex_redteam_fix/__init__.py": "FIXED = True\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {FIX}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: reprex-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{n},,\n" for n in files) + f"{dist}/RECORD,,\n"
    path = directory / f"reprex_redteam_fix-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


def _sdist(directory: Path, version: str, marker: Path) -> Path:
    """An sdist whose in-tree build backend (no build requirements to fetch) leaves `marker` when
    anything builds it or asks it for metadata: code from the index running on this machine."""
    top = f"reprex_redteam_fix-{version}"
    files = {
        f"{top}/PKG-INFO": f"Metadata-Version: 2.1\nName: {FIX}\nVersion: {version}\n",
        f"{top}/pyproject.toml": textwrap.dedent("""\
            [build-system]
            requires = []
            build-backend = "backend"
            backend-path = ["."]
            """),
        f"{top}/backend.py": f"open({str(marker)!r}, 'w').write('built on the host')\n"
                             "def build_wheel(*a, **k):\n    raise SystemExit(1)\n"
                             "def build_sdist(*a, **k):\n    raise SystemExit(1)\n",
    }
    path = directory / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tf.addfile(info, io.BytesIO(data))
    return path


def _bisected(path: Path, out: Path, last_good: str) -> Path:
    """The bundle with the `bisect` section a stranger writes: the fix is their package's release."""
    from reprex.draft import Draft, seal
    from reprex.redact import Redactor

    draft = Draft.of(Bundle.read(path), Redactor())
    draft.add("bisect", {"mode": "package", "findings": [{"package": FIX, "first_bad": "9.0",
                                                          "last_good": last_good}]})
    return seal(draft).write(out)


@pytest.fixture(scope="module")
def fix_index(tmp_path_factory, cache):
    """Find-links with the fix as a wheel (1.0) and as an sdist only (1.1), and no index: pip on
    this machine sees these files and nothing else."""
    root = tmp_path_factory.mktemp("fix-index")
    links = root / "links"
    links.mkdir()
    marker = root / "pwned-sdist-built"
    _wheel(links, "1.0")
    _sdist(links, "1.1", marker)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(links), "UV_NO_INDEX": "1",
           "UV_FIND_LINKS": str(links)}
    return env, marker


@pytest.fixture(scope="module")
def import_bundle(tmp_path_factory, cache):
    root = tmp_path_factory.mktemp("fix-app")
    return captured(root / "proj", {"app.py": "import reprex_redteam_fix\n"}, root / "app.reprex.zip")


def test_fixed_with_auto_never_builds_the_bundles_release_from_an_sdist(import_bundle, fix_index, tmp_path,
                                                                        base_image):
    """The section names an sdist-only release as the fix. As a `--with` spec it was downloaded
    and built on the host (pip runs the sdist's build backend for its metadata): the bundle's
    author ran code on the maintainer's machine through a docker shrink. As a pin of the bundle
    it is wheels only: no wheel, so the control can't run, said in one line."""
    env, marker = fix_index
    bundle = _bisected(import_bundle, tmp_path / "sdist-fix.reprex.zip", "1.1")
    out = tmp_path / "x.shrunk.reprex.zip"
    proc = cli("shrink", bundle, "--backend", "docker", "--image", base_image, "--fixed-with", "auto",
               "--keep-pins", "--keep-inputs", "--budget", "3", "-o", out, env=env)
    assert not marker.exists(), "the bundle's sdist was built on the host"
    one_line_or_report(proc)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert f"the fix, from the bundle's bisect result: {FIX}==1.1" in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("reprex: error: the original could not be run with --fixed-with") and "1.1" in last
    assert not out.exists()


def test_fixed_with_auto_runs_a_wheel_release_as_a_pin_in_docker(import_bundle, fix_index, tmp_path, base_image):
    """The same path with a release that has a wheel: the control runs (installed as the bundle's
    pin, in the image) and fixes the failure, so the shrink goes on and records it."""
    env, _ = fix_index
    bundle = _bisected(import_bundle, tmp_path / "wheel-fix.reprex.zip", "1.0")
    out = tmp_path / "y.shrunk.reprex.zip"
    proc = cli("shrink", bundle, "--backend", "docker", "--image", base_image, "--fixed-with", "auto",
               "--keep-pins", "--keep-inputs", "--budget", "3", "--verify-runs", "1", "-o", out, "--json", env=env)
    one_line_or_report(proc)
    assert proc.returncode == 0, proc.stderr[-2000:]
    control = json.loads(proc.stdout)["control"]
    assert control["with"] == [f"{FIX}==1.0"] and control["verdict"] == "fixed", control
    shrunk = Bundle.read(out)
    assert FIX not in shrunk.text("requirements.txt")  # the fix judged candidates; it is not the bundle's pin


# -- bisect: what its resolver reads besides the bundle --------------------------------------------------


def test_bisects_resolver_ignores_a_directory_bundles_uv_config(tmp_path, cache, listener, monkeypatch):
    import datetime as dt

    from reprex.bisect.dates import resolve_as_of
    from reprex.bisect.search import BisectError

    base = captured(tmp_path / "proj", {"app.py": "import json\njson.loads('{')\n"}, tmp_path / "base.reprex.zip")
    index = f"http://127.0.0.1:{listener.port}/simple"
    folder = tmp_path / "stranger"
    Bundle.read(crafted(base, tmp_path / "uv.reprex.zip", {
        "uv.toml": f'[[index]]\nurl = "{index}"\n'.encode(),
        "pyproject.toml": f'[project]\nname = "x"\nversion = "0"\n[[tool.uv.index]]\nurl = "{index}"\n'.encode(),
    })).write(folder)
    monkeypatch.chdir(folder)  # `reprex bisect . --date` from inside the unzipped bundle
    with contextlib.suppress(BisectError):  # unresolvable is fine; asking the bundle's index is not
        resolve_as_of(["six"], dt.datetime.now(dt.timezone.utc), python="3.11", timeout=120)
    assert listener.hits == [], listener.hits[:1]


def test_an_install_run_inside_a_directory_bundle_ignores_its_uv_config(tmp_path, cache, listener, monkeypatch):
    # replay's installs (a local replay's venv, `--with`) go through installer.run too
    from reprex import installer

    if installer.uv() is None:
        pytest.skip("uv can't run here: pip reads no project config from its working directory")
    index = f"http://127.0.0.1:{listener.port}/simple"
    folder = tmp_path / "stranger"
    folder.mkdir()
    (folder / "uv.toml").write_text(f'[[index]]\nurl = "{index}"\n')  # an extra index: asked first
    venv = tmp_path / "venv"
    assert installer.run(installer.venv_argv(sys.executable, venv), 120).returncode == 0
    monkeypatch.chdir(folder)
    # the host's own index: a closed loopback port; a name no find-links dir or cache has
    for name in ("UV_INDEX_URL", "PIP_INDEX_URL"):
        monkeypatch.setenv(name, "http://127.0.0.1:1/simple")
    proc = installer.install(venv / "bin" / "python", "--no-deps", "reprex-no-such-dist-x9", timeout=120)
    assert proc.returncode != 0
    assert listener.hits == [], listener.hits[:1]


# -- replay --with a release: what its resolution takes from the bundle ------------------------------


def test_with_resolution_takes_no_option_or_url_line_from_a_bundle(tmp_path, cache, listener):
    # replay.with_resolve feeds the bundle's pins to uv as preferences and roots: a crafted
    # requirements.txt with index options and a URL pin must reach neither uv nor the listener
    base = captured(tmp_path / "proj", {"app.py": "import six\nraise ValueError(six.__name__)\n"},
                    tmp_path / "base.reprex.zip")
    index = f"http://127.0.0.1:{listener.port}/simple"
    bundle = crafted(base, tmp_path / "opts.reprex.zip", {"requirements.txt": (
        f"--extra-index-url {index}\n-i {index}\nsix==1.16.0\n"
        f"evil @ http://127.0.0.1:{listener.port}/evil-1.0-py3-none-any.whl\n").encode()})
    proc = subprocess.run([PY, "-m", "reprex", "replay", str(bundle), "--backend", "local", "--with", "six==1.17.0",
                           "--json"], capture_output=True, text=True, timeout=300)
    one_line_or_report(proc)
    assert listener.hits == [], listener.hits[:1]
    assert proc.returncode == 3 and json.loads(proc.stdout)["verdict"] in ("infra-error", "env-incompatible")
