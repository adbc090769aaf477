"""Reading a stranger's bundle: show, render, replay and extract refuse a malformed one with
one line, and print what a well-formed hostile one holds without letting it drive the
terminal or the issue page.

Every variant is derived from a real captured bundle (the seed) by editing it the way an
attacker would: zip structure, sizes, JSON depth, field types, tampering, and text made to
escape its venue.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from reprex.bundle import MAX_JSON_DEPTH, Bundle, BundleError, canonical_json
from reprex.capture.pipeline import CaptureOptions, capture_command
from reprex.cli import main

PY = sys.executable
MARKER = "</details><img src=http://127.0.0.1:9/pixel.png> @someone #1 ![x](http://127.0.0.1:9/p.png) **b**"
TERMINAL = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b0m\x1b]8;;http://127.0.0.1:9/\x1b\\link\x1b]8;;\x1b\\\r[/INST] [bold]x"
TERMINAL_BYTES = ("\x1b", "\x07", "\x9b", "\r")


@pytest.fixture(scope="module")
def seed(tmp_path_factory, cache) -> Bundle:
    """A real bundle: a script whose failure reads an input file."""
    work = tmp_path_factory.mktemp("seed")
    (work / "data.csv").write_text("a,b\n1,2\n")
    (work / "app.py").write_text("import csv\n\ndef load(path):\n    rows = list(csv.DictReader(open(path)))\n"
                                 "    return rows[0]['c']\n\nload('data.csv')\n")
    result = capture_command([PY, "app.py"], CaptureOptions(tee=False), cwd=str(work), write=False)
    assert result.bundle is not None and result.bundle.manifest["expect"]["outcome"] == "exception"
    return result.bundle


def derive(seed: Bundle, edit_manifest=None, **files: bytes | None) -> Bundle:
    """A finalized (self-consistent) variant: what a careful attacker would send."""
    manifest = copy.deepcopy(seed.manifest)
    if edit_manifest is not None:
        edit_manifest(manifest)
    entries = dict(seed.files)
    for name, data in files.items():
        name = name.replace("__", "/").replace("_json", ".json").replace("_txt", ".txt").replace("_py", ".py")
        if data is None:
            entries.pop(name, None)
        else:
            entries[name] = data
    return Bundle(manifest, entries).finalize()


def raw_zip(path: Path, entries: dict[str, bytes]) -> Path:
    """A zip written by hand, for what Bundle would never write."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def cli(*args: str, cwd: Path | None = None):
    """The real `reprex` process: a refusal is one line on stderr, never a traceback."""
    return subprocess.run([PY, "-m", "reprex", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={**os.environ, "COLUMNS": "200"})


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args), env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"reprex {' '.join(args)} raised {result.exception!r}") from result.exception
    return result


def assert_refused(result, pattern: str) -> None:
    err = result.stderr.strip()
    assert result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert "Traceback" not in result.stdout + result.stderr
    assert len(err.splitlines()) == 1, err
    assert err.startswith("reprex: error: ") and re.search(pattern, err), err


def mutate(key_path: str, value):
    def edit(m):
        *parents, last = key_path.split(".")
        target = m
        for p in parents:
            target = target[p]
        target[last] = value
    return edit


# -- refusals: each variant, each command ------------------------------------------------

def _deep_manifest(seed: Bundle) -> bytes:
    text = canonical_json(seed.manifest).decode()
    return (text.rstrip().rstrip("}") + ', "deep": ' + "[" * 50000 + "]" * 50000 + "}").encode()


def _noise(n: int) -> bytes:
    """Text that doesn't compress, so only the size limit can stop it."""
    import base64
    import random

    return base64.b64encode(random.Random(9).randbytes(n * 3 // 4))


def _bomb_entries(seed: Bundle) -> dict[str, bytes]:
    entries = {"reprex.json": canonical_json(seed.manifest)}
    entries.update({f"files/pad{i:03}.bin": b"\0" * (1024 * 1024) for i in range(250)})
    return entries


REFUSED = {
    # finding 7: one loader, bounded depth and size, typed fields
    "deep reprex.json": (lambda s, p: raw_zip(p, {"reprex.json": _deep_manifest(s)}), r"nests deeper than 100"),
    "reprex.json not an object": (lambda s, p: raw_zip(p, {"reprex.json": b"[1, 2]"}), r"not a JSON object"),
    "reprex.json not UTF-8": (lambda s, p: raw_zip(p, {"reprex.json": b"\xff\xfe{}"}), r"not UTF-8"),
    "run.json invalid": (lambda s, p: derive(s, run_json=b"{not json").write(p), r"run\.json is not valid JSON"),
    "environment.json invalid": (lambda s, p: derive(s, environment_json=b"[1,").write(p),
                                 r"environment\.json is not valid JSON"),
    "environment.json deep": (lambda s, p: derive(s, environment_json=b"[" * 5000 + b"]" * 5000).write(p),
                              r"environment\.json nests deeper"),
    "run.json output_tail a string": (lambda s, p: derive(s, run_json=b'{"output_tail": "x"}').write(p),
                                      r"run\.json\.output_tail is string, expected array"),
    "run.json frame a number": (lambda s, p: derive(s, run_json=b'{"exception": {"frames": [5]}}').write(p),
                                r"run\.json\.exception\.frames\[0\] is integer, expected object"),
    "environment probe a number": (lambda s, p: derive(s, environment_json=b'{"env": 5}').write(p),
                                   r"environment\.json\.env is integer, expected object"),
    "env names a string": (lambda s, p: derive(s, environment_json=b'{"env": {"value": {"names": "x"}}}').write(p),
                           r"environment\.json\.env\.value\.names is string"),
    "exception a string": (lambda s, p: derive(s, mutate("expect.exception", "boom")).write(p),
                           r"invalid reprex\.json at expect/exception"),
    "argv a string": (lambda s, p: derive(s, mutate("entry.argv", "python app.py")).write(p),
                      r"invalid reprex\.json at entry/argv"),
    "libc a number": (lambda s, p: derive(s, mutate("platform.libc", 5)).write(p),
                      r"invalid reprex\.json at platform/libc"),
    "skipped path a number": (lambda s, p: derive(s, mutate("files.skipped", [{"path": 1, "size": 1, "reason": "x"}]))
                              .write(p), r"invalid reprex\.json at files/skipped/0/path"),
    "redaction count a string": (lambda s, p: derive(s, mutate("redactions", [{"kind": "k", "where": "w",
                                                                               "count": "9"}])).write(p),
                                 r"invalid reprex\.json at redactions/0/count"),
    "gpu count a string": (lambda s, p: derive(s, mutate("gpu", {"count": "2", "models": [], "driver": None,
                                                                 "compute_capabilities": [], "cuda": None})).write(p),
                           r"invalid reprex\.json at gpu"),
    "python version with a newline": (lambda s, p: derive(s, mutate("python.version", "3.11\nRUN touch /x")).write(p),
                                      r"invalid reprex\.json at python/version"),
    "tool.version with a RUN line": (lambda s, p: derive(s, mutate("tool.version", "0.1\nRUN id")).write(p),
                                     r"invalid reprex\.json at tool/version"),
    "gpu.cuda picking another image": (lambda s, p: derive(s, mutate("gpu", {
        "count": 1, "models": ["A10G"], "driver": "535.1", "compute_capabilities": ["8.6"],
        "cuda": "12.2-devel-ubuntu22.04@sha256:0"})).write(p), r"invalid reprex\.json at gpu"),
    "name with a slash": (lambda s, p: derive(s, mutate("name", "../../etc/x")).write(p),
                          r"invalid reprex\.json at name"),
    "huge manifest": (lambda s, p: raw_zip(p, {"reprex.json": b'{"pad": "' + _noise(5 * 1024 * 1024) + b'"}'}),
                      r"reprex\.json is \d+ bytes, over the"),
    "lone surrogate in reprex.json": (lambda s, p: raw_zip(p, {"reprex.json": json.dumps(
        {**s.manifest, "name": "x", "created": "\ud800"}).encode(), **s.files}), r"not valid Unicode"),
    # finding 9: the content must hash to the id
    "tampered file": (lambda s, p: Bundle(s.manifest, {**s.files, "files/app.py": b"import os\n"}).write(p),
                      r"does not match its id"),
    "tampered manifest": (lambda s, p: Bundle({**s.manifest, "network": True}, s.files).write(p),
                          r"does not match its id"),
    "id of another bundle": (lambda s, p: Bundle({**s.manifest, "id": "a" * 64}, s.files).write(p),
                             r"does not match its id"),
    # finding 5: the whole archive's expansion is budgeted
    "250 x 1 MiB entries": (lambda s, p: raw_zip(p, _bomb_entries(s)), r"looks like a zip bomb"),
}

COMMANDS = {
    "show": ["show"],
    "show --json": ["show", "--json"],
    "render gh": ["render", "--venue", "gh"],
    "render text": ["render", "--venue", "text"],
    "replay": ["replay", "--backend", "local"],
    "extract": ["extract"],
}


@pytest.fixture(scope="module")
def refused_bundles(seed, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("refused")
    return {name: make(seed, out / f"{i:02}.reprex.zip") for i, (name, (make, _)) in enumerate(REFUSED.items())}


def test_every_malformed_variant_is_refused_by_every_command_with_one_line(refused_bundles, tmp_path, monkeypatch):
    """The sweep: len(REFUSED) variants x len(COMMANDS) commands, in process (a traceback
    would surface as the runner's exception). Nothing may be left in the temp dir."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    tally = {"refused": 0}
    for name, path in refused_bundles.items():
        pattern = REFUSED[name][1]
        for command, args in COMMANDS.items():
            result = invoke(*args[:1], str(path), *args[1:])
            assert result.exit_code == 2, (name, command, result.output)
            try:
                assert_refused(result, pattern)
            except AssertionError as exc:
                raise AssertionError(f"{name} / {command}: {exc}") from None
            tally["refused"] += 1
    assert list(tmp.iterdir()) == []
    print(f"\nread-side sweep: {len(REFUSED)} variants x {len(COMMANDS)} commands: {tally['refused']} refused, "
          "0 tracebacks, 0 temp files left")
    assert tally["refused"] == len(REFUSED) * len(COMMANDS)


@pytest.mark.parametrize("name", ["deep reprex.json", "run.json invalid", "tampered file", "250 x 1 MiB entries"])
def test_refusals_from_the_real_process(refused_bundles, name):
    """The same, from `python -m reprex`: exit 2, one line, no traceback (RecursionError included)."""
    for args in (["show"], ["render", "--venue", "gh"]):
        proc = cli(args[0], str(refused_bundles[name]), *args[1:])
        assert proc.returncode == 2, proc.stderr
        assert_refused(proc, REFUSED[name][1])
        assert proc.stdout == ""


def test_loader_errors_are_bundle_errors_not_parser_tracebacks(seed):
    bundle = derive(seed, run_json=b"{oops")
    with pytest.raises(BundleError, match="run.json is not valid JSON"):
        bundle.json("run.json")
    deep = derive(seed, run_json=b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    with pytest.raises(BundleError, match="nests deeper"):
        deep.json("run.json")
    # brackets inside strings are data, not depth
    fine = derive(seed, run_json=json.dumps({"output_tail": [["stdout", "[" * 5000]]}).encode())
    assert fine.json("run.json")["output_tail"][0][1] == "[" * 5000


def test_a_real_bundle_with_megabytes_of_inputs_still_reads(seed, tmp_path):
    """The whole-archive ratio refuses bombs, not real inputs: 6 MB of log lines compress ~20x."""
    log = "".join(f"2026-01-01T00:00:{i % 60:02}Z worker-{i % 7} step {i} loss={1 / (i + 1):.6f}\n"
                  for i in range(120000)).encode()
    assert len(log) > 6_000_000
    path = derive(seed, files__train_log=log).write(tmp_path / "big.reprex.zip")
    assert len(log) / path.stat().st_size < 200
    assert Bundle.read(path).files["files/train_log"] == log


def test_a_finalized_bundle_round_trips_and_an_edited_directory_says_so(seed, tmp_path):
    target = tmp_path / "dir-bundle"
    seed.write(target)
    assert Bundle.read(target).id == seed.id
    (target / "files" / "app.py").write_text("print('changed')\n")
    with pytest.raises(BundleError, match="does not match its id"):
        Bundle.read(target)


# -- well-formed but hostile text: printed, never obeyed -----------------------------------

def _hostile(seed: Bundle) -> Bundle:
    def edit(m):
        m["expect"]["exception"]["message"] = MARKER + " " + TERMINAL
        m["expect"]["exception"]["type"] = "<script>alert(1)</script>"
        m["expect"]["signature"]["frames"] = [MARKER, TERMINAL]
        m["expect"]["signature"]["types"] = ["[/INST]", "@someone"]
        m["entry"]["argv"] = ["python", MARKER, "|", TERMINAL, "`a``b`"]
        m["platform"]["libc"] = MARKER
        m["platform"]["distro"] = TERMINAL
        m["platform"]["system"] = "<img src=x>"
        m["files"]["skipped"] = [{"path": MARKER, "size": 3, "reason": TERMINAL},
                                 {"path": "x\n\n</details>\n\n<img src=y>", "size": 1, "reason": "@someone"}]
        m["redactions"] = [{"kind": MARKER, "where": "w", "count": 1}]
    fence_breaker = "```\n</details>\n<img src=http://127.0.0.1:9/a.png>\n@someone\n````\n" + TERMINAL
    run = json.loads(seed.files["run.json"])
    run["output_tail"] = [["stdout", fence_breaker], ["stderr", MARKER]]
    env = json.loads(seed.files["environment.json"])
    env["python"]["error"] = MARKER
    return derive(seed, edit, run_json=canonical_json(run), environment_json=canonical_json(env),
                  traceback_txt=fence_breaker.encode(), repro_py=fence_breaker.encode(),
                  requirements_txt=(fence_breaker + "\nsix==1.16.0\n").encode())


def _html(markdown: str) -> str:
    """The body as a GitHub-like renderer sees it: CommonMark + tables, raw HTML passed through."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


def test_gh_body_keeps_hostile_text_inert(seed, tmp_path):
    path = _hostile(seed).write(tmp_path / "hostile.reprex.zip")
    proc = cli("render", str(path), "--venue", "gh")
    assert proc.returncode == 0, proc.stderr
    body = proc.stdout
    html = _html(body)
    # our six <details> sections, opened and closed by us only
    assert html.count("<details>") == 6 and html.count("</details>") == 6
    assert "<img" not in html and "<script" not in html and "<strong>" not in html
    assert not any(b in body for b in TERMINAL_BYTES)  # the README is read in terminals too
    prose = re.sub(r"<pre><code.*?</code></pre>", "", html, flags=re.S)
    assert "@someone" not in prose and "#1" not in prose
    assert "@\u200bsomeone" in prose and "#\u200b1" in prose  # still readable, just not a mention
    # the fence-breaker stayed inside each of its five blocks (plus our replay command's)
    blocks = re.findall(r"<pre><code[^>]*>(.*?)</code></pre>", html, flags=re.S)
    assert len(blocks) == 6
    assert sum("&lt;/details&gt;\n&lt;img src=http://127.0.0.1:9/a.png&gt;\n@someone" in b for b in blocks) == 4
    assert "reprex replay app.reprex.zip" in blocks[0]


def test_gh_body_table_keeps_its_rows(seed):
    from reprex.render import render

    html = _html(render(_hostile(seed), "gh"))
    rows = re.findall(r"<tr>\s*<td>(.*?)</td>", html, flags=re.S)
    assert [r.strip() for r in rows] == ["failure", "signature", "frames", "command", "python", "platform", "gpu",
                                         "pins", "files", "network", "redactions"]


def test_bundle_readme_is_rendered_the_same_safe_way(seed, tmp_path):
    """capture writes README.md with the same renderer, so a run whose own text is hostile
    (a crafted exception message and output) still gives an inert README."""
    from reprex.render import render

    assert seed.text("README.md") == render(seed, "gh")
    (tmp_path / "app.py").write_text(f"print({MARKER!r})\nraise ValueError({MARKER!r})\n")
    result = capture_command([PY, "app.py"], CaptureOptions(tee=False), cwd=str(tmp_path), write=False)
    html = _html(result.bundle.text("README.md"))
    assert "<img" not in html and html.count("</details>") == 5
    assert "@someone" not in re.sub(r"<pre><code.*?</code></pre>", "", html, flags=re.S)


@pytest.mark.parametrize("args", [["show"], ["render", "--venue", "text"]])
def test_terminal_output_has_no_control_sequences_and_no_markup(seed, tmp_path, args):
    path = _hostile(seed).write(tmp_path / "hostile.reprex.zip")
    proc = cli(args[0], str(path), *args[1:])
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    assert not any(b in out for b in TERMINAL_BYTES), repr(out[:500])
    assert "\\x1b]0;pwned\\x07" in out  # shown, visibly
    assert "[/INST]" in out and "[bold]x" in out  # data, not rich markup


def test_show_prints_a_message_that_looks_like_markup(seed, tmp_path):
    """A real model error message: `[/INST]` made rich raise MarkupError."""
    bundle = derive(seed, mutate("expect.exception.message", "prompt ended with [/INST] and [/] tags"))
    proc = cli("show", str(bundle.write(tmp_path / "inst.reprex.zip")))
    assert proc.returncode == 0, proc.stderr
    assert "[/INST] and [/] tags" in proc.stdout


def test_skipped_files_are_listed_as_data_by_show(seed, tmp_path):
    bundle = _hostile(seed)
    proc = cli("show", str(bundle.write(tmp_path / "h.reprex.zip")))
    assert proc.returncode == 0, proc.stderr
    assert "not included" in proc.stdout and "@someone" in proc.stdout
    assert "\x1b" not in proc.stdout


def test_lone_surrogates_in_run_text_are_shown_not_crashing_the_output(seed, tmp_path):
    """JSON can spell a lone surrogate; printing one raises UnicodeEncodeError."""
    run = json.loads(seed.files["run.json"])
    run["output_tail"] = [["stdout", "half a pair: \ud800 here"]]
    path = derive(seed, run_json=json.dumps(run).encode()).write(tmp_path / "s.reprex.zip")
    for args in (["show"], ["render", "--venue", "gh"], ["render", "--venue", "text"], ["show", "--json"]):
        proc = cli(args[0], str(path), *args[1:])
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert "half a pair: \\ud800 here" in cli("render", str(path), "--venue", "gh").stdout
