"""The trust boundary, tried the way a stranger would: every hostile variant of a real bundle
(tests/hostile.py) through show, render --venue gh, render --venue text, extract, replay
--backend docker, lock and pytest collection, each the real CLI in a subprocess with a timeout.

For every cell: no code of the bundle ran on the host (its marker file is absent), nothing
reached the listeners this test runs on the Docker bridge gateway and loopback without a
grant, no Python traceback (a one-line error instead), no hang, no reprex container or temp
dir left behind; and the variant's own expected outcome (refused at read, or contained).
Two controls show the detectors work: the local backend (which runs a bundle on the host by
design) leaves the marker, and a granted `--network bridge` reaches the gateway listener.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hostile import CONTAINED, EITHER, REFUSED, Kit, derive, evil_project, host_source, variants
from reprex.bundle import Bundle

PY = sys.executable
COMMANDS = ("show", "render-gh", "render-text", "diff-gh", "share", "bisect", "extract", "replay-docker", "lock",
            "pytest")
TIMEOUTS = {"show": 60, "render-gh": 60, "render-text": 60, "diff-gh": 60, "share": 60, "bisect": 120, "extract": 180,
            "replay-docker": 240, "lock": 120}
REPLAY_TIMEOUT = "20"  # the user's grant of time; the bundle may ask for more and not get it
VARIANTS = variants()
TRACEBACK = "Traceback (most recent call last)"
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

pytestmark = pytest.mark.docker


# -- the test's own listeners: the only addresses any payload is given ---------------------

class Listener:
    """TCP listeners on the bridge gateway and loopback that remember who said what."""

    def __init__(self, hosts: list[str]):
        self.hits: list[tuple[str, str]] = []  # (host listened on, first line received)
        self.targets: list[tuple[str, int]] = []
        self._socks = []
        self._stop = False
        for host in hosts:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, 0))
            s.listen(64)
            s.settimeout(0.2)
            self._socks.append(s)
            self.targets.append((host, s.getsockname()[1]))
            threading.Thread(target=self._serve, args=(s, host), daemon=True).start()

    def _serve(self, s, host):
        while True:
            try:
                conn, _ = s.accept()
            except socket.timeout:
                if self._stop:
                    return
                continue
            except OSError:
                return
            conn.settimeout(2)
            try:
                data = conn.recv(200)
            except OSError:
                data = b""
            finally:
                conn.close()
            text = data.decode("ascii", "replace").strip()
            if not text.isprintable():
                text = f"<{len(data)} bytes: {data[:3].hex()}...>"  # a TLS hello, say
            self.hits.append((host, text or "<connected>"))

    def close(self):
        self._stop = True
        for s in self._socks:
            s.close()


def bridge_gateway(client) -> str:
    net = client.networks.get("bridge")
    for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
        if cfg.get("Gateway"):
            return cfg["Gateway"]
        if cfg.get("Subnet"):
            return str(next(ipaddress.ip_network(cfg["Subnet"]).hosts()))
    raise RuntimeError("the bridge network has no IPv4 subnet")


# -- outputs judged ------------------------------------------------------------------------------

def active_markdown(md: str) -> str:
    """What GitHub interprets: the text outside fenced code blocks and inline code spans
    (a fence closes only at a run of the same character at least as long). A fence still
    open at the end shows as a line `<unclosed fence>`: the renderer's fences were shifted."""
    out, fence = [], None
    for line in md.splitlines():
        m = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
        if fence is None:
            if m:
                fence = m.group(1)
                continue
            out.append(re.sub(r"(`+)(?!`).+?(?<!`)\1(?!`)", "", line))
        elif m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):].strip():
            fence = None
    if fence is not None:
        out.append("<unclosed fence>")
    return "\n".join(out)


def gh_problems(md: str) -> list[str]:
    """The issue body's live HTML is only the renderer's own sections, balanced; nothing of the
    bundle's becomes an image, a script, a comment or a mention."""
    problems = []
    active = active_markdown(md)
    if len(md) >= 65536:
        problems.append(f"issue body of {len(md)} chars (GitHub's limit is 65,536)")
    opens = closes = 0
    for line in active.splitlines():
        text = line.strip()
        if re.fullmatch(r"<details><summary>[^<>]*</summary>", text):
            opens += 1
        elif text == "</details>":
            closes += 1
        elif re.search(r"</?(details|summary)\b", text, re.I):
            problems.append(f"a <details>/<summary> tag from the bundle is live: {text[:120]!r}")
    if "<unclosed fence>" in active.splitlines():
        problems.append("a code fence is left open: the bundle's text shifted the renderer's fences")
    if opens != closes:
        problems.append(f"{opens} <details> sections but {closes} closed")
    lowered = active.lower()
    for needle in ("<img", "<script", "<a ", "<iframe", "<svg", "![", "<!--"):  # escaped `&lt;img` is inert text
        if needle in lowered:
            problems.append(f"{needle!r} is live in the issue body")
    if re.search(r"(?<![\w`/])@octocat", active) or re.search(r"(?<![\w`/])@org/team", active):
        problems.append("an @mention is live in the issue body")
    if "\x1b" in md:
        problems.append("an escape character in the issue body")
    return problems


def term_problems(text: str) -> list[str]:
    bad = sorted({repr(c) for c in CONTROL_CHARS.findall(text)})
    return [f"control characters reach the terminal: {', '.join(bad)}"] if bad else []


# -- running one cell -----------------------------------------------------------------------

@dataclass
class Cell:
    outcome: str = "?"
    problems: list[str] = field(default_factory=list)


@dataclass
class Sweep:
    kit: Kit
    listener: Listener
    gateway: str
    env: dict
    tmp: Path
    outdir: Path
    base_image: str
    client: object
    bundle_ids: set
    secret: str
    cells: dict = field(default_factory=dict)  # (variant, command) -> Cell
    paths: dict = field(default_factory=dict)

    def leftovers(self) -> list[str]:
        found = []
        markers = sorted(p.name for p in self.kit.marker_dir.glob("pwned-*"))
        if markers:
            found.append(f"host code ran: {', '.join(markers)}")
        for p in markers:
            (self.kit.marker_dir / p).unlink()
        if self.listener.hits:
            found.append(f"reached the test's listeners: {self.listener.hits}")
            self.listener.hits.clear()
        tmp = sorted(p.name for p in self.tmp.iterdir() if not p.name.startswith("pytest-of-"))
        if tmp:
            found.append(f"temp files left: {tmp[:5]}")
            for name in tmp:
                p = self.tmp / name
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
        # summaries only (one API call): other tests' containers come and go meanwhile
        left = [c["Id"] for c in self.client.api.containers(all=True, filters={"label": "org.reprex=1"})
                if (c.get("Labels") or {}).get("org.reprex.bundle") in self.bundle_ids]
        if left:
            found.append(f"containers left: {[cid[:12] for cid in left]}")
            for cid in left:
                self.client.api.remove_container(cid, force=True)
        return found

    def run(self, args: list[str], timeout: float) -> tuple[int | None, str, str]:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
                                cwd=self.outdir, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            return None, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def cli_args(command: str, path: Path, out: Path) -> list[str]:
    base = [PY, "-m", "reprex"]
    if command == "show":
        return base + ["show", str(path)]
    if command.startswith("render"):
        return base + ["render", str(path), "--venue", command.split("-")[1]]
    if command == "extract":
        return base + ["extract", str(path), "-o", str(out), "--json", "--timeout", REPLAY_TIMEOUT]
    if command == "lock":
        return base + ["lock", str(path), "--python", "3.11", "--platform", "manylinux2014_x86_64", "--json"]
    if command == "diff-gh":  # the bundle against itself: every section read, escaped for GitHub
        return base + ["diff", str(path), str(path), "--venue", "gh", "--strict"]
    if command == "bisect":  # the bundle read, its pins checked and the release range planned (an empty index)
        return base + ["bisect", str(path), "--package", "six", "--bad", "99.0", "--backend", "docker", "--no-write",
                       "--json", "--timeout", REPLAY_TIMEOUT]
    if command == "share":  # --force: the upload path runs on whatever the bundle holds
        return base + ["share", str(path), out.parent.joinpath("shared").as_uri(), "--force", "--json"]
    return base + ["replay", str(path), "--backend", "docker", "--timeout", REPLAY_TIMEOUT, "--json"]


def refusal(rc, out: str, err: str) -> bool:
    """Exit 2 with one line on stderr, `reprex: error: ...` (and under --json one object on stdout)."""
    lines = [line for line in err.splitlines() if line.strip()]
    return rc == 2 and len(lines) == 1 and lines[0].startswith("reprex: error:")


def judge_cli(sweep: Sweep, variant, command: str, rc, out: str, err: str, out_path: Path) -> Cell:
    cell = Cell()
    text = out + err
    if rc is None:
        cell.outcome = "HANG"
        cell.problems.append(f"no answer within {TIMEOUTS[command]} s")
        return cell
    if TRACEBACK in err or "RecursionError" in err:  # stdout may quote the bundle's own traceback
        cell.outcome = "TRACEBACK"
        cell.problems.append(f"a traceback (exit {rc}): {err.strip().splitlines()[-1][:300]}")
        return cell
    refused = refusal(rc, out, err)
    verdict = None
    if command in ("replay-docker", "extract", "lock") and not refused:
        try:
            verdict = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
        except json.JSONDecodeError:
            verdict = None
    if refused:
        cell.outcome = "refused"
    elif command == "replay-docker" and verdict is not None and verdict.get("verdict"):
        cell.outcome = str(verdict["verdict"])
    elif command == "extract" and verdict is not None and verdict.get("kept"):
        cell.outcome = f"kept {verdict['kept']}"
    elif command == "lock" and verdict is not None:
        cell.outcome = "resolved" if rc == 0 else "unresolved"
    elif rc == 0:
        cell.outcome = "ok"
    else:
        cell.outcome = f"exit {rc}"
    if variant.expect == REFUSED and not refused:
        cell.problems.append(f"expected a one-line refusal, got {cell.outcome}: {(err or out).strip()[:300]}")
    if variant.expect in (CONTAINED, EITHER) and not refused:
        if command == "replay-docker":
            if verdict is None or rc not in (0, 1, 3):
                cell.problems.append(f"expected a verdict, got exit {rc}: {(err or out).strip()[:300]}")
        elif command == "extract":  # 0: a call was kept, 1: the full script stays, 3: nothing to judge in
            if verdict is None and rc != 3 or rc not in (0, 1, 3):
                cell.problems.append(f"expected an extraction report, got exit {rc}: {(err or out).strip()[:300]}")
        elif command == "lock":  # 0: resolved, 3: no build for the target, or trouble resolving
            if verdict is None or rc not in (0, 3):
                cell.problems.append(f"expected a lock result, got exit {rc}: {(err or out).strip()[:300]}")
        elif command == "bisect":  # 1: no first bad; 3: its pins refused like replay's (one line, no replay)
            lines = [line for line in err.splitlines() if line.strip()]
            one_line = len(lines) == 1 and lines[0].startswith("reprex: error:")
            if rc not in (0, 1, 3) or rc == 3 and not one_line:
                cell.problems.append(f"expected a bisect answer or one line, got exit {rc}: {(err or out).strip()[:300]}")
        elif rc != 0:
            cell.problems.append(f"expected success or a one-line refusal, got exit {rc}: {(err or out).strip()[:300]}")
    if variant.expect == CONTAINED and refused and command in ("show", "render-gh", "render-text"):
        cell.problems.append(f"a readable bundle was refused: {err.strip()}")
    # what each variant must show beyond that
    if command == "replay-docker" and verdict is not None:
        if variant.kind == "requirements" and verdict.get("verdict") in ("reproduced", "different", "fixed", "flaky"):
            cell.problems.append(f"requirement lines {variant.name!r} were installed and run ({verdict['verdict']})")
        if "network" in variant.tags and "network" not in (verdict.get("reason") or "").lower():
            cell.problems.append(f"the verdict does not say the repro asked for a network: {verdict.get('reason')!r}")
    if rc == 0 and "gh" in variant.tags and command == "render-gh":
        cell.problems += gh_problems(out)
    if rc == 0 and "term" in variant.tags and command in ("show", "render-text"):
        cell.problems += term_problems(out + err)
    if rc == 0 and variant.name == "out-message" and command == "show":
        flat = re.sub(r"[\s│┃|]", "", out)
        if "[/INST]" not in flat or "[boldred]markup[/boldred]" not in flat:
            cell.problems.append("rich markup in the message was interpreted instead of shown")
    if "host-source" in variant.tags:
        blob = out_path.read_bytes() if out_path.exists() else b""
        if sweep.secret in text or sweep.secret.encode() in blob:
            cell.problems.append("a host file named by the bundle was read into the output")
    return cell


# -- the sweep ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sweep(docker_client, base_image, cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    marker_dir = root / "markers"
    marker_dir.mkdir()
    gateway = bridge_gateway(docker_client)
    listener = Listener([gateway, "127.0.0.1"])
    work = root / "capture"
    work.mkdir()
    (work / "app.py").write_text(__import__("hostile").BASE_SCRIPT)
    from reprex.capture.pipeline import CaptureOptions, capture_command

    result = capture_command([PY, "app.py"], CaptureOptions(tee=False, timeout=120), cwd=str(work), write=False)
    assert result.bundle is not None, result.message
    kit = Kit(base=result.bundle, marker_dir=marker_dir, targets=listener.targets)
    evil_project(kit)
    _, secret = host_source(kit)
    bundles = root / "bundles"
    bundles.mkdir()
    tmp = root / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPREX_", "PYTEST_"))}
    index = root / "empty-index"  # pip and uv resolve offline: no package index but this machine's files
    index.mkdir()
    env.update(TMPDIR=str(tmp), REPREX_CACHE_DIR=str(cache), COLUMNS="100", PIP_INDEX_URL=index.as_uri(),
               UV_INDEX_URL=index.as_uri(), UV_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    s = Sweep(kit, listener, gateway, env, tmp, root / "out", base_image, docker_client, set(), secret)
    s.outdir.mkdir()
    for v in VARIANTS:
        s.paths[v.name] = v.build(kit, bundles)
        try:
            s.bundle_ids.add(Bundle.read(s.paths[v.name]).id)
        except Exception:
            pass
    base_path = kit.base.write(root / "base" / "base.reprex.zip")
    rc, out, err = s.run([PY, "-m", "reprex", "render", str(base_path), "--venue", "gh"], 60)
    assert rc == 0, err
    assert gh_problems(out) == []  # the checker passes the renderer's own structure
    assert s.leftovers() == []  # nothing of the set-up counts against a variant
    for v in VARIANTS:
        for command in COMMANDS[:-1]:
            out_path = s.outdir / f"{v.name}.extracted.reprex.zip"
            args = cli_args(command, s.paths[v.name], out_path)
            if command in ("replay-docker", "extract"):
                args += ["--image", base_image]
            rc, out, err = s.run(args, TIMEOUTS[command])
            cell = judge_cli(s, v, command, rc, out, err, out_path)
            cell.problems += s.leftovers()
            s.cells[(v.name, command)] = cell
    run_pytest_collection(s, bundles, root)
    yield s
    listener.close()


def run_pytest_collection(s: Sweep, bundles: Path, root: Path) -> None:
    """One pytest session over a directory holding every variant, with the maintainer's ini."""
    suite = root / "suite"
    shutil.copytree(bundles, suite, symlinks=True)
    (suite / "pytest.ini").write_text(f"[pytest]\nreprex_timeout = {REPLAY_TIMEOUT}\nreprex_image = {s.base_image}\n")
    junit = root / "junit.xml"
    rc, out, err = s.run([PY, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "-q", "-rA",
                          f"--junitxml={junit}"], 900)
    session = Cell(outcome=f"exit {rc}")
    if rc is None:
        session.problems.append("the pytest session hung")
    elif rc not in (0, 1):
        session.problems.append(f"the pytest session ended with exit {rc} (not a test outcome): {(out + err)[-1500:]}")
    cases = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            cases.setdefault(case.get("name"), []).append(case)
    session.problems += s.leftovers()
    s.cells[("(session)", "pytest")] = session
    for v in VARIANTS:
        cell = Cell()
        found = cases.get(v.name, [])
        if len(found) != 1:
            cell.outcome = "missing"
            cell.problems.append(f"{len(found)} test items for this bundle (expected 1); collection errors: "
                                 f"{[c.get('name') for c in cases.get('', [])]}")
            s.cells[(v.name, "pytest")] = cell
            continue
        case = found[0]
        kids = {child.tag: child for child in case}
        kind = next((k for k in ("error", "failure", "skipped") if k in kids), "passed")
        cell.outcome = kind
        detail = (kids[kind].get("message") or "") + "\n" + (kids[kind].text or "") if kind in kids else ""
        if TRACEBACK in detail or re.search(r"^E\s{3}", detail, re.M) or re.search(r"^>\s{3}", detail, re.M):
            cell.outcome = "TRACEBACK"
            cell.problems.append(f"a Python traceback in the report: {detail[:400]}")
        elif v.expect == REFUSED and kind not in ("error", "failure"):
            cell.problems.append(f"expected an error for this bundle, got {kind}")
        elif v.expect == REFUSED and "reprex" not in detail:
            cell.problems.append(f"the error does not say what reprex refused: {detail[:300]}")
        s.cells[(v.name, "pytest")] = cell
    if "reprex pytest-field-isolation: ignored backend, gpus, image, keep, network, with" not in out + err:
        s.cells[("pytest-field-isolation", "pytest")].problems.append(
            "no warning that the manifest field's isolation options were ignored")


def tally(s: Sweep) -> str:
    width = max(len(v.name) for v in VARIANTS)
    lines = [f"{'variant':<{width}}  {'expect':<9} " + " ".join(f"{c:<14}" for c in COMMANDS)]
    for v in VARIANTS:
        row = []
        for c in COMMANDS:
            cell = s.cells.get((v.name, c))
            mark = "" if cell is None or not cell.problems else "!"
            row.append(f"{str(cell.outcome if cell else '-') + mark:<14}")
        lines.append(f"{v.name:<{width}}  {v.expect:<9} " + " ".join(row))
    counts = {"host code executions": 0, "network escapes": 0, "tracebacks": 0, "hangs": 0, "leftovers": 0,
              "other problems": 0}
    for cell in s.cells.values():
        for p in cell.problems:
            if p.startswith("host code ran"):
                counts["host code executions"] += 1
            elif p.startswith("reached the test's listeners"):
                counts["network escapes"] += 1
            elif "traceback" in p:
                counts["tracebacks"] += 1
            elif "within" in p or "hung" in p:
                counts["hangs"] += 1
            elif p.startswith(("temp files left", "containers left")):
                counts["leftovers"] += 1
            else:
                counts["other problems"] += 1
    lines.append(f"{len(VARIANTS)} variants x {len(COMMANDS)} commands: "
                 + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return "\n".join(lines)


# -- the tests ---------------------------------------------------------------------------------

def test_there_are_at_least_60_variants_with_distinct_names():
    names = [v.name for v in VARIANTS]
    assert len(names) >= 60 and len(set(names)) == len(names)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_variant(sweep, variant):
    problems = [f"{command}: {p}" for command in COMMANDS
                for p in (sweep.cells.get((variant.name, command)) or Cell("-")).problems]
    assert not problems, f"{variant.name} ({variant.why}):\n" + "\n".join(problems)


def test_pytest_session_survives_every_variant(sweep):
    cell = sweep.cells[("(session)", "pytest")]
    assert not cell.problems, cell.problems


def test_tally(sweep, capsys):
    table = tally(sweep)
    with capsys.disabled():
        print("\n" + table)
    last = table.splitlines()[-1]
    assert "0 host code executions, 0 network escapes, 0 tracebacks, 0 hangs, 0 leftovers, 0 other problems" in last, last


# -- controls: the detectors above do see what they look for --------------------------------------

def test_the_checkers_see_live_html_mentions_and_escapes():
    body = "<details><summary>Traceback</summary>\n\n```\nx\n```\n\n</details>\n"
    assert gh_problems(body) == []
    assert gh_problems(body + "```\n</details>\n```\n") == []  # inside a fence: inert
    broken = body.replace("```\nx\n```", "```\nx\n```\n</details><img src=http://172.17.0.1:1/p.png> @octocat")
    found = " | ".join(gh_problems(broken))
    assert "tag from the bundle is live" in found and "'<img' is live" in found and "@mention" in found
    fence_break = body.replace("x\n```", "x\n```\n</details>\n```")  # the bundle closed the fence
    assert gh_problems(fence_break)
    assert term_problems("ok\n\tfine") == [] and term_problems("\x1b]0;t\x07") and term_problems("\x9b2J")


def test_control_local_backend_runs_the_bundle_on_the_host_and_the_marker_shows_it(sweep):
    """The local backend is for the user's own bundles: it runs them on the host. If the marker
    did not appear here, the sweep's `no marker` result would prove nothing."""
    bundle = derive(sweep.kit, "control-local")
    path = bundle.write(sweep.outdir / "control-local.reprex.zip")
    rc, out, err = sweep.run([PY, "-m", "reprex", "replay", str(path), "--backend", "local", "--json"], 300)
    assert rc == 0, (out, err)
    assert sweep.kit.marker("control-local").read_text() == "control-local"
    assert ("127.0.0.1", "control-local") in sweep.listener.hits
    sweep.kit.marker("control-local").unlink()
    sweep.listener.hits.clear()


def test_control_a_granted_network_reaches_the_gateway_listener(sweep):
    """`--network bridge` is the user's grant: then (and only then) the payload gets through."""
    bundle = derive(sweep.kit, "control-grant", manifest=lambda m: m.update(network=True))
    sweep.bundle_ids.add(bundle.id)
    path = bundle.write(sweep.outdir / "control-grant.reprex.zip")
    rc, out, err = sweep.run([PY, "-m", "reprex", "replay", str(path), "--backend", "docker", "--image",
                              sweep.base_image, "--network", "bridge", "--timeout", REPLAY_TIMEOUT, "--json"], 240)
    assert rc == 0, (out, err)
    assert (sweep.gateway, "control-grant") in sweep.listener.hits, sweep.listener.hits
    assert not sweep.kit.marker("control-grant").exists()  # the network, not the host's files
    sweep.listener.hits.clear()
    assert sweep.leftovers() == []
