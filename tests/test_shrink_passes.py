"""The reducer half of `reprex shrink`: the core, the script passes and the input passes.

Oracles here are hand-written (the replay-backed one is tests/test_shrink_e2e.py's), and
the ones standing for "the run still fails the same way" really run the candidate in a
subprocess: the reducer must cope with a real program's behaviour, not a set test.
"""

from __future__ import annotations

import ast
import collections
import csv
import importlib.util
import io
import json
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reprex.shrink.inputs import drop_unread, kind_of, shrink_input
from reprex.shrink.reduce import Judge, reduce_chunks
from reprex.shrink.script import pins_of, shrink_script
from reprex.signature import normalize_message

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _benchmark():
    """benchmarks/shrink.py, whose synthetic cases these tests share."""
    spec = importlib.util.spec_from_file_location("shrink_benchmark", ROOT / "benchmarks" / "shrink.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


synthetic = _benchmark().synthetic_script


def outcome(source: str) -> tuple[str, str] | None:
    """Exception type and message of running source in a fresh namespace (test scripts only)."""
    try:
        exec(compile(source, "repro.py", "exec"), {"__name__": "__main__"})
    except Exception as exc:  # noqa: BLE001 - the outcome is what we compare
        return type(exc).__name__, str(exc)
    return None


class Recording:
    """An oracle that remembers every candidate it was asked about."""

    def __init__(self, judge):
        self.judge = judge
        self.asked: list = []
        self.lock = threading.Lock()

    def __call__(self, candidate):
        with self.lock:
            self.asked.append(candidate)
        return self.judge(candidate)


# the core -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_core_finds_scattered_needs_in_fewer_calls_than_halving(seed):
    rng = random.Random(seed)
    needed = set(rng.sample(range(100), 10))
    oracle = Recording(lambda c: needed <= set(map(int, c.split())))
    judge = Judge(oracle)
    kept = reduce_chunks(list(range(100)), lambda k: " ".join(map(str, k)), judge)
    assert set(kept) == needed
    assert judge.stats.calls == len(oracle.asked) <= 62  # Lithium's halving: ~74 on average here
    assert len(set(oracle.asked)) == len(oracle.asked)  # the memo: nothing asked twice


def test_core_keeps_order_and_treats_invalid_candidates_as_uninteresting_without_a_call():
    oracle = Recording(lambda c: "b" in c and "d" in c)
    judge = Judge(oracle)
    # "c" can't go without "a" (say, a use of a name without its definition): never asked
    kept = reduce_chunks(list("abcde"), lambda k: None if "c" in k and "a" not in k else "".join(k), judge)
    assert kept == ["b", "d"]
    assert oracle.asked and not [c for c in oracle.asked if "c" in c and "a" not in c]


def test_core_budget_stops_with_a_valid_result():
    needed = {3, 10}
    oracle = Recording(lambda c: needed <= set(map(int, c.split())))
    judge = Judge(oracle, budget=5)
    kept = reduce_chunks(list(range(100)), lambda k: " ".join(map(str, k)), judge)
    assert judge.stats.calls == 5
    assert needed <= set(kept) and len(kept) < 100


def test_core_runs_candidates_in_parallel_with_the_same_result():
    needed = set(random.Random(5).sample(range(64), 6))
    running, peak, lock = [0], [0], threading.Lock()

    def slow(candidate):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return needed <= set(map(int, candidate.split()))

    judge = Judge(slow, jobs=4)
    started = time.monotonic()
    kept = reduce_chunks(list(range(64)), lambda k: " ".join(map(str, k)), judge)
    judge.close()
    assert set(kept) == needed
    assert peak[0] > 1  # really concurrent
    sequential = Judge(lambda c: needed <= set(map(int, c.split())))
    reduce_chunks(list(range(64)), lambda k: " ".join(map(str, k)), sequential)
    assert time.monotonic() - started < sequential.stats.calls * 0.01  # fewer rounds than sequential calls


def test_core_oracle_that_raises_counts_as_uninteresting():
    def broken(candidate):
        if len(candidate) < 3:
            raise RuntimeError("oracle broke")
        return "x" in candidate

    kept = reduce_chunks(list("abcxef"), lambda k: "".join(k), Judge(broken))
    assert "x" in kept and len(kept) >= 3


# scripts --------------------------------------------------------------------------------


def test_script_synthetic_100_statements_to_the_10_needed():
    source = synthetic()
    want = outcome(source)
    oracle = Recording(lambda c: outcome(c) == want)
    out, stats = shrink_script(source, oracle)
    assert outcome(out) == want
    assert stats.statements_before == 100 and stats.statements_after == 10
    assert stats.calls == len(oracle.asked) and stats.before == len(source) and stats.after == len(out)
    assert stats.passes["statements"] <= 48  # galloping from the back: the assert is found in one call
    assert stats.calls <= 66  # was 74: no round trip for a trailing newline, kept statements not re-asked
    # `reg = []` is still read by the appends: once kept, never asked about again
    assert sum(not c.startswith("reg = ") for c in oracle.asked) <= 2  # everything, then 0..6
    for candidate in oracle.asked:
        compile(candidate, "candidate", "exec")  # every candidate compiles


def test_script_literals_the_message_shows_are_not_asked_about():
    """The oracle compares the message, which lists every appended number: trying one as 0 or
    dropping it is answered no, so with the message's pins those questions aren't asked; the
    result is the same and what isn't in the message (`len(reg) < 8`, `[]`) is still tried."""
    source = synthetic()
    want = outcome(source)
    plain = Recording(lambda c: outcome(c) == want)
    out_plain, stats_plain = shrink_script(source, plain)
    pinned = Recording(lambda c: outcome(c) == want)
    out, stats = shrink_script(source, pinned, pinned=pins_of(want[1]))
    assert out == out_plain and outcome(out) == want
    assert stats.calls <= stats_plain.calls - 10 and stats.calls <= 52  # halving's ~62 for n=100, m=10
    assert not any("reg.append()" in c or "reg.append(0)" in c for c in pinned.asked)
    assert any("assert 0" in c for c in pinned.asked)  # `len(reg) < 8`: 8 isn't in the message


def test_script_pins_spare_only_what_the_message_shows():
    # 41 is in the message, 7 and 'spam' are not: those still shrink
    source = "n = 7\nlabel = 'spam'\nraise ValueError(41, n * 0)\n"
    want = outcome(source)
    out, _ = shrink_script(source, lambda c: outcome(c) == want, pinned=pins_of(want[1]))
    assert out == "raise ValueError(41, 0)"
    # a pinned literal the message doesn't need after all is kept, never a wrong result
    source = "raise KeyError('k', 'extra')\n"
    out, _ = shrink_script(source, lambda c: (outcome(c) or ("",))[0] == "KeyError", pinned=pins_of("('k', 'extra')"))
    assert outcome(out)[0] == "KeyError" and "'extra'" in out


def test_script_imports_from_the_shortest_module_that_still_has_the_name():
    # json re-exports JSONDecodeError; collections stopped re-exporting the ABCs in 3.10
    source = ("from json.decoder import JSONDecodeError\nfrom collections.abc import Mapping\n"
              "raise JSONDecodeError(Mapping.__name__, 'doc', 0)\n")
    want = outcome(source)
    oracle = Recording(lambda c: outcome(c) == want)
    out, stats = shrink_script(source, oracle, differential=True)
    assert "from json import JSONDecodeError" in out and outcome(out) == want
    assert "from collections.abc import Mapping" in out  # `from collections` fails: kept
    assert "from collections import Mapping\n" in "\n".join(oracle.asked) + "\n"  # ...after asking
    assert stats.passes.get("imports", 0) >= 2
    # without a control the pass isn't asked: a name imported from where it never was raises the
    # same ImportError on every version, another bug a signature-only oracle would take
    plain = Recording(lambda c: outcome(c) == want)
    out, stats = shrink_script(source, plain)
    assert "from json.decoder import JSONDecodeError" in out and "imports" not in stats.passes


def test_pins_are_whole_tokens_and_follow_the_oracles_normalisation():
    pinned = pins_of("records [3, 17] at 1.5: 'user_x' missing; -4 left")
    assert pinned(17) and pinned(3) and pinned(1.5) and pinned("user_x") and pinned(-4)
    assert not pinned(1) and not pinned(7) and not pinned(5) and not pinned("user") and not pinned("a")
    assert not pinned(True) and not pinned(None) and not pinned("") and not pinned(" ")
    assert not pins_of(None)(17) and not pins_of("")("x")
    assert pins_of("unknown key: ']'")("]")  # punctuation: a plain substring
    # replay --strict compares normalized messages: numbers and paths are placeholders there,
    # so they can change freely and are never pinned; words that survive normalisation are
    strict = pins_of(normalize_message("no column 'user_id' in /home/me/data/table_17.csv (17 rows)"),
                     normalize_message)
    assert strict("user_id") and not strict(17) and not strict("/home/me/data/table_17.csv")


def test_core_gallop_finds_a_needed_last_chunk_in_one_call_after_the_probe():
    needed = {5, 40, 99}
    oracle = Recording(lambda c: needed <= set(map(int, c.split())))
    kept = reduce_chunks(list(range(100)), lambda k: " ".join(map(str, k)), Judge(oracle), gallop=True)
    assert set(kept) == needed
    assert oracle.asked[0] == "" and oracle.asked[1] == " ".join(map(str, range(99)))  # all, then the last
    bisecting = Recording(lambda c: needed <= set(map(int, c.split())))
    reduce_chunks(list(range(100)), lambda k: " ".join(map(str, k)), Judge(bisecting))
    assert bisecting.asked[1] == " ".join(map(str, range(50)))  # without gallop: halves, as before
    assert len(oracle.asked) < len(bisecting.asked)


def test_script_short_string_tried_as_each_character():
    # fails on its second character only: '' and the first character ('1') pass
    source = "def check(tag):\n    return tag.encode('ascii')\n\ncheck('1\u00e9')\n"
    out, _ = shrink_script(source, lambda c: (outcome(c) or ("",))[0] == "UnicodeEncodeError")
    assert "check('\u00e9')" in out


def test_script_trailing_newline_alone_is_not_asked_about():
    source = "x = 1\nraise ValueError(x)\n\n"
    oracle = Recording(lambda c: outcome(c) == ("ValueError", "1"))
    out, stats = shrink_script(source, oracle)
    assert source.rstrip() not in oracle.asked  # the normal form, never asked on its own
    assert oracle.asked and outcome(out) == ("ValueError", "1") and stats.calls == len(oracle.asked)


def test_script_lifts_bodies_and_drops_unused_names():
    source = '''
import os, json, math
from collections import OrderedDict

def unused(x):
    return x * 2

class Config:
    pass

def main(items):
    with open(os.devnull) as fh:
        if items:
            for item in items:
                try:
                    value = math.sqrt(item)
                finally:
                    print("done")
    return value

main([4, -1, 9])
'''
    want = outcome(source)
    assert want[0] == "ValueError"
    out, stats = shrink_script(source, lambda c: outcome(c) == want)
    assert outcome(out) == want
    tree = ast.parse(out)
    kinds = {type(n).__name__ for n in ast.walk(tree)}
    assert not kinds & {"With", "If", "Try", "ClassDef"}  # the for loop binds `item`: it stays
    assert "unused" not in out and "json" not in out and "OrderedDict" not in out
    assert "math.sqrt" in out
    assert stats.after < stats.before / 3


def test_script_assignment_nobody_reads_becomes_its_call_and_annotations_go():
    source = ("def boom(x: int, scale: float = 2.0) -> float:\n    return x / 0\n\n"
              "unused_total: float = boom(3, scale=4.0)\n")
    want = outcome(source)
    out, stats = shrink_script(source, lambda c: outcome(c) == want)
    assert outcome(out) == want
    assert "unused_total" not in out and ":" not in out.split("\n")[0].split(")")[0]
    assert "->" not in out and stats.passes.get("annotations") == 1


def test_script_roundtrip_refused_returns_the_source_unchanged():
    source = "x = [1,2,3]   # spacing matters to this oracle\nraise ValueError(x)\n"
    oracle = Recording(lambda c: c == source)
    out, stats = shrink_script(source, oracle)
    assert out == source
    assert stats.calls == 1 and stats.after == stats.before


def test_script_that_does_not_parse_is_returned_without_calls():
    oracle = Recording(lambda c: True)
    out, stats = shrink_script("def broken(:\n", oracle)
    assert out == "def broken(:\n" and stats.calls == 0 and oracle.asked == []


def test_script_budget_and_deadline_are_respected():
    source = synthetic()
    want = outcome(source)
    out, stats = shrink_script(source, lambda c: outcome(c) == want, budget=12)
    assert stats.calls == 12 and outcome(out) == want and len(out) < len(source)
    out, stats = shrink_script(source, lambda c: outcome(c) == want, deadline=time.monotonic() - 1)
    assert out == source and stats.calls == 0


def test_script_progress_reports_calls_and_size():
    source = synthetic(30, 4)
    want = outcome(source)
    seen = []
    shrink_script(source, lambda c: outcome(c) == want, on_progress=seen.append)
    assert seen and seen[-1]["calls"] >= 1
    sizes = [s["size"] for s in seen if s.get("improved")]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < len(source)


def test_script_real_example_judged_by_running_it(tmp_path):
    """examples/quickstart's KeyError, judged as reprex does: type plus the in-app frames."""
    for name in ("train.py", "config.json", "data.csv"):
        shutil.copy(EXAMPLES / "quickstart" / name, tmp_path / name)

    def signature(source: str):
        script = tmp_path / f"candidate-{threading.get_ident()}.py"  # jobs=2: one file per thread
        script.write_text(source)
        code = ("import runpy, sys, traceback\n"
                f"try:\n    runpy.run_path({script.name!r}, run_name='__main__')\n"
                "except Exception as e:\n"
                "    frames = [f.name for f in traceback.extract_tb(e.__traceback__) if f.filename.endswith('.py')]\n"
                "    print(type(e).__name__, frames[-3:])\n")
        run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        return run.stdout.strip()

    source = (tmp_path / "train.py").read_text()
    want = signature(source)
    assert want.startswith("KeyError")
    out, stats = shrink_script(source, lambda c: signature(c) == want, jobs=2)
    assert signature(out) == want
    assert stats.statements_after < stats.statements_before and stats.after < stats.before / 2
    assert "def batches" in out and '"""' not in out


# inputs ---------------------------------------------------------------------------------


def records(n: int = 1000) -> list[dict]:
    rng = random.Random(3)
    return [{"id": i, "name": f"user{i}", "score": round(rng.random() * 100, 2), "active": i % 2 == 0}
            for i in range(n)]


def test_json_1000_records_to_the_3_that_matter():
    data = json.dumps(records(), indent=2).encode()
    bad = {17, 402, 933}

    def fails(blob: bytes) -> bool:
        try:
            ids = {r["id"] for r in json.loads(blob)}
        except Exception:  # noqa: BLE001 - a broken candidate isn't the failure
            return False
        return bad <= ids

    oracle = Recording(fails)
    out, stats = shrink_input("records.json", data, oracle)
    assert json.loads(out) == [{"id": 17}, {"id": 402}, {"id": 933}]
    assert stats.calls == len(oracle.asked) <= 70
    assert stats.before == len(data) and stats.after == len(out)


def test_json_whose_roundtrip_is_refused_is_shrunk_as_text():
    data = b'{\n  "keep": 1,\n  "drop": 2\n}\n'
    out, stats = shrink_input("c.json", data, lambda b: b.startswith(b"{\n") and b'"keep"' in b)
    assert out.startswith(b"{\n") and b'"keep"' in out and b"drop" not in out


def test_csv_rows_then_columns_keeping_the_header():
    rows = [["id", "feature", "label", "note"]] + [[str(i), str(i / 10), str(i % 2), "x" * 5] for i in range(50)]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)

    def fails(blob: bytes) -> bool:
        table = list(csv.DictReader(io.StringIO(blob.decode())))
        return any(r.get("label") == "1" and r.get("id") == "7" for r in table)

    out, stats = shrink_input("data.csv", buf.getvalue().encode(), fails)
    assert out == b"id,label\n7,1\n"


def test_tsv_uses_tabs():
    data = b"a\tb\tc\n1\t2\t3\n4\t5\t6\n"
    out, _ = shrink_input("t.tsv", data, lambda b: b"\t5" in b or b"5\t" in b or b"\n5" in b)
    assert out.startswith(b"b\n") or b"\t" in out
    assert b"5" in out and len(out) < len(data)


def test_yaml_reduced_as_a_tree():
    pytest.importorskip("yaml")
    data = b"model:\n  name: bert\n  layers: 12\ntrain:\n  lr: 0.001\n  epochs: [1, 2, 3]\n"
    import yaml

    def fails(blob: bytes) -> bool:
        try:
            doc = yaml.safe_load(blob)
            return doc["train"]["lr"] < 0.01
        except Exception:  # noqa: BLE001
            return False

    out, _ = shrink_input("cfg.yaml", data, fails)
    assert yaml.safe_load(out) == {"train": {"lr": 0}}


def test_text_lines_then_characters():
    data = "".join(f"line {i}: ok\n" for i in range(40)).replace("line 23: ok", "line 23: BOOM").encode()
    out, stats = shrink_input("log.txt", data, lambda b: b"BOOM" in b)
    assert out == b"BOOM"


def test_bytes_pass():
    data = bytes(range(256)) * 8 + b"\xff\xfeMAGIC" + bytes(100)
    out, stats = shrink_input("blob.bin", data, lambda b: b"MAGIC" in b)
    assert out == b"MAGIC" and kind_of("blob.bin", data) == "bytes"


def test_kinds():
    assert kind_of("a.json", b"[1]") == "json"
    assert kind_of("a.json", b"{broken") == "text"
    assert kind_of("noext", b'{"a": 1}') == "json"
    assert kind_of("a.csv", b"a,b\n") == "csv"
    assert kind_of("a.tsv", b"a\tb\n") == "tsv"
    assert kind_of("a.txt", b"hello") == "text"


def test_drop_unread():
    files = {"data.csv": b"1", "conf/model.json": b"{}", "unused.txt": b"x"}
    read = ["/tmp/run-xyz/data.csv", "conf/model.json", "/elsewhere/model.json"]
    assert drop_unread(files, read) == {"data.csv": b"1", "conf/model.json": b"{}"}
    assert drop_unread(list(files), ["./unused.txt"]) == ["unused.txt"]
    assert drop_unread(files, []) == {}


def test_input_budget():
    data = "\n".join(str(i) for i in range(500)).encode()
    counts = collections.Counter()

    def fails(blob):
        counts["calls"] += 1
        return b"250" in blob

    out, stats = shrink_input("n.txt", data, fails, budget=8)
    assert stats.calls == counts["calls"] == 8 and b"250" in out and len(out) < len(data)


def test_inputs_in_parallel_match_sequential_and_report_progress():
    data = json.dumps({"rows": list(range(200)), "meta": {"owner": "team-a", "debug": True}}).encode()

    def fails(blob: bytes) -> bool:
        try:
            doc = json.loads(blob)
        except ValueError:
            return False
        return isinstance(doc, dict) and 137 in doc.get("rows", [])

    seen = []
    one, _ = shrink_input("doc.json", data, fails)
    many, stats = shrink_input("doc.json", data, fails, jobs=3, on_progress=seen.append)
    assert one == many == b'{"rows":[137]}'
    assert seen and {s["phase"] for s in seen} >= {"keys", "items"}
    assert stats.after == len(many) < stats.before


def test_core_keep_is_never_asked_about():
    oracle = Recording(lambda c: "a" in c)
    kept = reduce_chunks(list("abc"), lambda k: "".join(k), Judge(oracle), keep=[2])
    assert kept == ["a", "c"]
    assert all("c" in cand for cand in oracle.asked)


def test_script_drops_a_parameter_nothing_reads_with_its_argument_at_every_call():
    source = ("def quoted(path, extra=1):\n    import no_such_module_here\n\n"
              "class Box:\n    def put(self, item):\n        quoted(item, extra=2)\n\n"
              "Box().put('x')\nquoted('/reports/2023 q4.csv', 3)\n")
    want = outcome(source)
    oracle = Recording(lambda c: outcome(c) == want)
    out, stats = shrink_script(source, oracle)
    assert outcome(out) == want and "def quoted():" in out and "quoted()" in out, out
    assert stats.passes.get("params", 0) >= 1
    # only plain functions: a method is called through its object, a decorated one by its wrapper,
    # a function passed around by whoever holds it
    from reprex.shrink.ast_edits import plain_functions

    tree = ast.parse(source + "import functools\n@functools.cache\ndef g(y):\n    pass\n"
                              "def h(z):\n    pass\nmap(h, [1])\n")
    assert plain_functions(tree) == ["quoted"]
