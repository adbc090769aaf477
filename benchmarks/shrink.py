"""reprex's reducer against pysource-minimize and Shrink Ray on the same inputs (issue 15).

Every tool gets the same hand-written oracle, a real run: `shrink_oracle.py` copies the
case's files into a fresh directory with the candidate in place of the target file, runs
the case's program in a subprocess and compares the failure with the original's
(exception type, the innermost 3 frames as file:function, and the message for the
synthetic cases). Each oracle run appends a line to a counter file, so "oracle calls" is
counted the same way for all three. Wall time is the whole tool process (its start too).
Sizes are given in bytes, raw and normalised (a Python result as `ast.unparse` writes it, a
JSON one as `json.dumps(..., separators=(",", ":"))`), and in tokens (Python's tokenizer,
layout and comments left out), the size measure of the reduction literature (C-Reduce,
Perses): it counts neither formatting (Shrink Ray deletes spaces and newlines that reprex
keeps readable) nor the length of names (Shrink Ray renames `reg` to `a`; reprex keeps the
reporter's names). The size target is read on tokens. The fidelity cases' oracle is differential: a candidate
must also not fail that way under the pins that fix the bug (else it shows another bug, one
that fails everywhere: `from . import a` for the removed name's ImportError, `0()` for a
call's TypeError, both of which a types-and-frames oracle alone accepts).
All tools run sequentially (parallelism 1), so calls and time compare like for like.

Cases: a synthetic script (100 top-level statements, 10 scattered ones needed), a JSON
input (1,000 records, 3 matter), and real failures from examples/ and the fidelity corpus
(tests/fixtures/fidelity: four cases, each under the pins that break it in a scratch venv).

    .venv/bin/python benchmarks/shrink.py [--case NAME ...] [--tool T ...] [--json out.json] [--peers DIR]
                                          [--cache DIR]

--cache keeps each peer's row per case and input (the peers take minutes a case; Shrink Ray
runs to the time limit): a later run reuses it, so a change to reprex is measured in seconds
against the same peer results. reprex's own rows are never cached.

The peers are installed into scratch venvs the benchmark makes with uv, never into the
project's venv: Shrink Ray into a Python 3.12 one (it needs 3.12), pinned to 26.4.14.0, the
newest release that doesn't build llama-cpp-python from source; pysource-minimize into one of
the running Python's version. Needs the package index.
"""

from __future__ import annotations

import os
import sys

# a script here named like a standard module (there was a benchmarks/bisect.py) would shadow
# it (random imports bisect), so this folder comes off the import path before anything else
_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if not p or os.path.realpath(p) != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
ORACLE = HERE / "shrink_oracle.py"
PEERS = ("pysource-minimize==0.11.0", "shrinkray==26.4.14.0")
PEER_PYTHON = "3.12"
TOOLS = ("reprex", "pysource-minimize", "shrinkray")


def synthetic_script(n: int = 100, m: int = 10, seed: int = 7) -> str:
    """`reg = []`, m-2 scattered appends and the failing assert (whose message lists reg) are needed."""
    rng = random.Random(seed)
    needed = set(rng.sample(range(1, n - 1), m - 2))
    noise = ["sum([{i}, 3])", "max({i}, 2)", "str({i}).upper()", "len('item{i}')", "abs(-{i})"]
    lines = []
    for i in range(n):
        if i == 0:
            lines.append("reg = []")
        elif i == n - 1:
            lines.append(f"assert len(reg) < {m - 2}, reg")
        elif i in needed:
            lines.append(f"reg.append({i})")
        else:
            lines.append(rng.choice(noise).format(i=i))
    return "\n".join(lines) + "\n"


SYNTHETIC_JSON_PROGRAM = '''import json

def check(records):
    ids = {r["id"] for r in records}
    if {17, 402, 933} <= ids:
        raise ValueError("records 17, 402 and 933 together break the join")

with open("records.json") as fh:
    check(json.load(fh))
'''


def synthetic_records(n: int = 1000) -> str:
    rng = random.Random(3)
    recs = [{"id": i, "name": f"user{i}", "score": round(rng.random() * 100, 2), "active": i % 2 == 0,
             "tags": ["a", "b", "c"][: rng.randint(0, 3)]} for i in range(n)]
    return json.dumps(recs, indent=2) + "\n"


def make_cases(work: Path, python: str) -> list[dict]:
    """Each case: a directory, the file to shrink, the entry argv and the oracle's options."""
    cases = []

    def case(name: str, target: str, argv: list[str], files: dict[str, str | Path], *, kind: str,
             message: bool = False, interpreter: str = python, control: str | None = None) -> None:
        d = work / name
        d.mkdir(parents=True)
        for rel, content in files.items():
            dest = d / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copy(content, dest)
            else:
                dest.write_text(content)
        # a case on the host's interpreter needs only the standard library: no site, like a bare run
        flags = ["-I", "-S"] if interpreter == python else ["-E", "-s", "-P"]  # -P: see the note above
        spec = {"target": target, "argv": argv, "python": interpreter, "flags": flags, "message": message,
                **({"control": control} if control else {})}
        (d / ".case.json").write_text(json.dumps(spec))
        subprocess.run(oracle_command(d) + [str(d / target)], capture_output=True)  # records .expected.json
        expected = json.loads((d / ".expected.json").read_text())
        if expected is None:
            print(f"  {name}: the original doesn't fail here; left out", file=sys.stderr)
            return
        cases.append({"name": name, "dir": d, "target": target, "kind": kind})

    case("synthetic script (100 stmts, 10 needed)", "repro.py", ["repro.py"], {"repro.py": synthetic_script()},
         kind="script", message=True)
    case("synthetic JSON (1,000 records, 3 matter)", "records.json", ["check.py"],
         {"check.py": SYNTHETIC_JSON_PROGRAM, "records.json": synthetic_records()}, kind="input", message=True)
    quick = ROOT / "examples" / "quickstart"
    case("examples/quickstart train.py (KeyError)", "train.py", ["train.py"],
         {n: quick / n for n in ("train.py", "config.json", "data.csv")}, kind="script")
    emb = ROOT / "examples" / "embedding_dim_mismatch"
    emb_files = {n: emb / n for n in ("search.py", "embed.py", "config.json", "index.json")}
    case("examples/embedding_dim_mismatch search.py", "search.py", ["search.py", "reset my account password"],
         dict(emb_files), kind="script")
    case("examples/embedding_dim_mismatch index.json", "index.json", ["search.py", "reset my account password"],
         dict(emb_files), kind="input")
    # real failures from public issue trackers (tests/fixtures/fidelity/cases.py cites each), each
    # under the pins that break it, in a scratch venv
    # under the pins that fix it (the control: the oracle refuses a candidate that fails there too)
    venvs: dict[tuple[str, ...], str | None] = {}

    def venv(pins: tuple[str, ...]) -> str | None:
        if pins not in venvs:
            venvs[pins] = _case_venv(work / f".venv-{len(venvs)}", list(pins))
        return venvs[pins]

    for name, pins, fixed in FIDELITY_CASES:
        if venv(pins) and venv(fixed):
            fid = ROOT / "tests" / "fixtures" / "fidelity" / name / "app.py"
            label = ", ".join(p.replace("==", " ") for p in pins)
            case(f"fidelity {name} ({label})", "app.py", ["app.py"], {"app.py": fid}, kind="script",
                 interpreter=venv(pins), control=venv(fixed))
    return cases


# (case, the pins it fails under, the pins that fix it), as tests/fixtures/fidelity/cases.py has them
FIDELITY_CASES = [
    ("invalid_version", ("packaging==22.0",), ("packaging==21.3",)),  # github.com/pypa/packaging/issues/530
    ("legacy_version", ("packaging==22.0",), ("packaging==21.3",)),  # github.com/SciQLop/speasy/issues/78
    ("retry_whitelist", ("urllib3==2.0.7",), ("urllib3==1.26.18",)),
    # ^ github.com/georgestarcher/Splunk-Class-httpevent/issues/27
    ("url_quote", ("werkzeug==3.0.1", "markupsafe==2.1.5"), ("werkzeug==2.2.3", "markupsafe==2.1.5")),
    # ^ github.com/Neurotech-HQ/heyoo/issues/106
]


def _uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    return found


def _case_venv(path: Path, pins: list[str], python: str | None = None) -> str | None:
    try:
        subprocess.run([_uv(), "venv", "-q", "-p", python or sys.executable, str(path)], check=True,
                       capture_output=True, timeout=300)
        subprocess.run([_uv(), "pip", "install", "-q", "-p", str(path / "bin" / "python"), *pins], check=True,
                       capture_output=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"  (venv with {' '.join(pins)} failed: {exc})", file=sys.stderr)
        return None
    return str(path / "bin" / "python")


def peers_venvs(base: Path, peer_python: str = PEER_PYTHON) -> dict[str, str]:
    """tool -> interpreter: Shrink Ray in a Python 3.12 venv (it needs 3.12), pysource-minimize
    in one of this interpreter's version (it unparses with the running Python, and the cases
    run on this one: a 3.12 unparse may write syntax 3.11 can't read)."""
    wanted = {"shrinkray": (PEERS[1], peer_python, "shrinkray"),
              "pysource-minimize": (PEERS[0], sys.executable, "pysource_minimize")}
    found = {}
    for tool, (pin, python, module) in wanted.items():
        path = base / tool
        interpreter = path / "bin" / "python"
        if interpreter.exists() and subprocess.run([str(interpreter), "-c", f"import {module}"],
                                                   capture_output=True).returncode == 0:
            found[tool] = str(interpreter)
            continue
        shutil.rmtree(path, ignore_errors=True)
        made = _case_venv(path, [pin], python=python)
        if made:
            found[tool] = made
    return found


# running the tools -------------------------------------------------------------------------


def oracle_command(case_dir: Path) -> list[str]:
    """The oracle under the case's own interpreter (the venv's for a pinned case)."""
    spec = json.loads((case_dir / ".case.json").read_text())
    return [spec["python"], *spec["flags"], str(ORACLE), str(case_dir)]


def _calls(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def run_tool(tool: str, case: dict, peers: dict[str, str], scratch: Path, timeout: float) -> dict:
    d: Path = case["dir"]
    target = d / case["target"]
    counter = scratch / f"{tool}.calls"
    counter.unlink(missing_ok=True)
    out_file = scratch / f"{tool}.out"
    env = dict(os.environ, SHRINK_ORACLE_COUNTER=str(counter))
    if tool == "reprex":
        cmd = [sys.executable, "-P", str(Path(__file__)), "--run-reprex", str(d), str(out_file)]
    elif tool == "pysource-minimize":
        if case["kind"] != "script":
            return {"note": "Python source only"}
        cmd = [peers[tool], "-P", str(Path(__file__)), "--run-pysource", str(d), str(out_file)]
    else:
        work = scratch / "shrinkray"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        copy = work / case["target"]
        shutil.copy(target, copy)
        test = work / "test.sh"
        test.write_text("#!/bin/sh\nexec " + " ".join(_quote(a) for a in oracle_command(d)) + ' "$1"\n')
        test.chmod(0o755)
        cmd = [str(Path(peers[tool]).parent / "shrinkray"), "--ui", "basic", "--parallelism", "1",
               "--formatter", "none", "--no-history", "--input-type", "arg", "--timeout", "60",
               "--volume", "quiet", str(test), str(copy)]
        out_file = copy
    started = time.monotonic()
    timed_out = False
    try:
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        failed = run.returncode != 0
        tail = (run.stderr or run.stdout)[-300:]
    except subprocess.TimeoutExpired:
        failed, timed_out, tail = False, True, ""
    seconds = time.monotonic() - started
    row = {"calls": _calls(counter), "seconds": round(seconds, 2)}
    if timed_out:
        # Shrink Ray rewrites its file as it goes: what is there is its best so far
        row["note"] = f"stopped at the {timeout:.0f} s limit"
        if tool != "shrinkray":
            return row
    if failed or not out_file.exists():
        row["note"] = "failed: " + tail.strip().replace("\n", " ")[-200:]
        return row
    final = out_file.read_bytes()
    row["size"] = len(final)
    row["final"] = final[:4000].decode("utf-8", "replace")  # for --json: what each tool ended with
    row["normalized"] = normalized_size(case["target"], final)
    row["tokens"] = token_count(final)
    row["still_fails"] = _still_fails(d, final)
    return row


def normalized_size(target: str, content: bytes) -> int | None:
    """Bytes of the result with formatting taken out (Python: ast.unparse; JSON: compact dumps)."""
    import ast
    try:
        if target.endswith(".py"):
            return len(ast.unparse(ast.parse(content)).encode())
        if target.endswith(".json"):
            return len(json.dumps(json.loads(content), separators=(",", ":"), ensure_ascii=False).encode())
    except (SyntaxError, ValueError, RecursionError):
        return None
    return None


def token_count(content: bytes) -> int | None:
    """Tokens of a result, layout and comments left out (JSON tokenizes as Python does)."""
    sys.path.insert(0, str(ROOT))
    from reprex.shrink.script import count_tokens

    return count_tokens(content)


def verdicts(results: list[dict]) -> list[str]:
    """The issue's targets, case by case: calls (on the synthetic script), tokens and wall time
    against the best peer's."""
    out = []
    for res in results:
        mine = res["tools"].get("reprex") or {}
        peers = [r for t, r in res["tools"].items() if t != "reprex" and r.get("still_fails")]
        if not mine.get("still_fails") or not peers:
            continue
        best_tokens = min((r["tokens"] for r in peers if r.get("tokens") is not None), default=None)
        best_time = min(r["seconds"] for r in peers)
        checks = []
        if best_tokens is not None and mine.get("tokens") is not None:
            checks.append(f"tokens {mine['tokens']} vs {best_tokens} "
                          f"{'PASS' if mine['tokens'] <= best_tokens else 'FAIL'}")
        checks.append(f"time {mine['seconds']} s vs {best_time} s ({best_time / max(mine['seconds'], 1e-9):.1f}x) "
                      f"{'PASS' if mine['seconds'] <= best_time else 'FAIL'}")
        if res["case"].startswith("synthetic script"):
            checks.append(f"calls {mine['calls']} vs halving's ~62 {'PASS' if mine['calls'] <= 62 else 'FAIL'}")
        out.append(f"{res['case']}: " + "; ".join(checks))
    return out


def cached_run(cache: Path | None, tool: str, case: dict, limit: float, run) -> dict:
    """A peer's row from the cache when this tool, case, input and time limit ran before; else
    run and keep it (the interpreters' paths are left out of the key: a scratch venv's changes)."""
    if cache is None or tool == "reprex":
        return run()
    import hashlib
    spec = json.loads((case["dir"] / ".case.json").read_text())
    spec.pop("python")
    if "control" in spec:
        spec["control"] = True
    data = (case["dir"] / case["target"]).read_bytes()
    key = hashlib.sha256(json.dumps([tool, PEERS, case["name"], spec, limit]).encode() + data).hexdigest()[:20]
    path = cache / f"{key}.json"
    if path.exists():
        row = json.loads(path.read_text())
        row["cached"] = True
        return row
    row = run()
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row))
    return row


def _quote(arg: str) -> str:
    import shlex
    return shlex.quote(arg)


def _still_fails(case_dir: Path, content: bytes) -> bool:
    with tempfile.NamedTemporaryFile(suffix=".candidate", delete=False) as fh:
        fh.write(content)
    try:
        env = dict(os.environ)
        env.pop("SHRINK_ORACLE_COUNTER", None)
        return subprocess.run(oracle_command(case_dir) + [fh.name], env=env, capture_output=True).returncode == 0
    finally:
        os.unlink(fh.name)


def _oracle_callable(case_dir: Path):
    """The shared oracle as a Python callable (for reprex and pysource-minimize)."""
    import threading

    def interesting(candidate) -> bool:
        data = candidate.encode() if isinstance(candidate, str) else candidate
        path = Path(tempfile.gettempdir()) / f"shrink-cand-{os.getpid()}-{threading.get_ident()}"
        path.write_bytes(data)
        try:
            return subprocess.run(oracle_command(case_dir) + [str(path)], capture_output=True).returncode == 0
        finally:
            path.unlink(missing_ok=True)
    return interesting


def _run_reprex(case_dir: Path, out_file: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from reprex.shrink.inputs import shrink_input
    from reprex.shrink.script import pins_of, shrink_script

    spec = json.loads((case_dir / ".case.json").read_text())
    data = (case_dir / spec["target"]).read_bytes()
    oracle = _oracle_callable(case_dir)
    # reprex reads the failure it must keep from the bundle; here, from what the oracle recorded
    expected = json.loads((case_dir / ".expected.json").read_text())
    pinned = pins_of(expected["message"]) if spec["message"] else None
    if spec["target"].endswith(".py"):
        out, _ = shrink_script(data.decode(), oracle, pinned=pinned, differential=bool(spec.get("control")))
        out_file.write_text(out)
    else:
        out_b, _ = shrink_input(spec["target"], data, oracle)
        out_file.write_bytes(out_b)


def _run_pysource(case_dir: Path, out_file: Path) -> None:
    from pysource_minimize import minimize

    spec = json.loads((case_dir / ".case.json").read_text())
    source = (case_dir / spec["target"]).read_text()
    out_file.write_text(minimize(source, _oracle_callable(case_dir)))


# the table ---------------------------------------------------------------------------------


def table(results: list[dict]) -> str:
    lines = ["| case | original bytes | tool | oracle calls | wall s | final bytes | normalised bytes | tokens "
             "| still fails |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for res in results:
        for tool, row in res["tools"].items():
            if "size" not in row:
                lines.append(f"| {res['case']} | {res['before']} | {tool} | {row.get('calls', '')} | "
                             f"{row.get('seconds', '')} | — | — | — | {row.get('note', '')} |")
                continue
            fails = "yes" if row["still_fails"] else "NO"
            lines.append(f"| {res['case']} | {res['before']} | {tool} | {row['calls']} | {row['seconds']} | "
                         f"{row['size']} | {row.get('normalized') or '—'} | {row.get('tokens') or '—'} | "
                         f"{fails} {row.get('note', '')}"
                         f"{' (cached)' if row.get('cached') else ''} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", help="run only cases whose name contains this")
    parser.add_argument("--tool", action="append", choices=TOOLS, help="run only these tools")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--peers", type=Path, default=Path(tempfile.gettempdir()) / "reprex-shrink-peers",
                        help="folder of the peers' scratch venvs (made if missing)")
    parser.add_argument("--timeout", type=float, default=240, help="seconds per tool and case")
    parser.add_argument("--peer-python", default=PEER_PYTHON,
                        help="interpreter (or version) for Shrink Ray's venv; it needs 3.12")
    parser.add_argument("--cache", type=Path, help="reuse (and keep) the peers' rows per case and input here")
    parser.add_argument("--run-reprex", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run-pysource", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_reprex:
        _run_reprex(*args.run_reprex)
        return 0
    if args.run_pysource:
        _run_pysource(*args.run_pysource)
        return 0
    tools = args.tool or list(TOOLS)
    peers: dict[str, str] = {}
    if set(tools) - {"reprex"}:
        print(f"peers venvs under {args.peers}", file=sys.stderr)
        peers = peers_venvs(args.peers, args.peer_python)
        missing = [t for t in tools if t != "reprex" and t not in peers]
        if missing:
            print(f"could not install {', '.join(missing)}; running without", file=sys.stderr)
            tools = [t for t in tools if t not in missing]
    results = []
    with tempfile.TemporaryDirectory(prefix="reprex-shrink-bench-") as tmp:
        work = Path(tmp)
        for case in make_cases(work / "cases", sys.executable):
            if args.case and not any(c in case["name"] for c in args.case):
                continue
            before = (case["dir"] / case["target"]).stat().st_size
            res = {"case": case["name"], "before": before, "tools": {}}
            for tool in tools:
                scratch = work / "scratch"
                scratch.mkdir(exist_ok=True)
                print(f"{case['name']}: {tool} ...", file=sys.stderr, flush=True)
                res["tools"][tool] = cached_run(args.cache, tool, case, args.timeout,
                                                lambda: run_tool(tool, case, peers, scratch, args.timeout))
                row = res["tools"][tool]
                if "final" in row and "tokens" not in row:  # a row cached before tokens were counted
                    row["tokens"] = token_count(row["final"].encode())
                print(f"  {row}", file=sys.stderr, flush=True)
            results.append(res)
    print(table(results))
    print()
    print("\n".join(f"- {line}" for line in verdicts(results)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
