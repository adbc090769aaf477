"""The output tail: lines stay whole when two pipes interleave, each stream keeps its order."""

import sys

from reprex.tail import Tail


def joined(tail, stream=None):
    return "".join(t for s, t in tail.text() if stream in (None, s))


def test_a_line_split_by_the_other_pipe_is_kept_whole():
    # An unbuffered print("MARKER", x) is three writes; the daemon may pass the traceback
    # from stderr between them (CI saw "MARKER" + traceback + " False").
    tail = Tail()
    for stream, data in [("stdout", b"ARGV []\n"), ("stdout", b"MARKER"), ("stderr", b"Traceback\nboom\n"),
                         ("stdout", b" "), ("stdout", b"False\nnext"), ("stderr", b"more\n")]:
        tail.add(stream, data)
    assert joined(tail) == "ARGV []\nMARKER False\nTraceback\nboom\nnextmore\n"
    assert joined(tail, "stdout") == "ARGV []\nMARKER False\nnext"
    assert joined(tail, "stderr") == "Traceback\nboom\nmore\n"
    assert tail.size == sum(len(t.encode()) for _, t in tail.text())


def test_only_the_rest_of_the_open_line_moves():
    tail = Tail()
    tail.add("stderr", b"50%\r")  # a progress bar's line ends at its carriage return
    tail.add("stdout", b"a")
    tail.add("stderr", b"100%\r")
    tail.add("stdout", b"b\nc\n")
    assert tail.text() == [["stderr", "50%\r"], ["stdout", "ab\n"], ["stderr", "100%\r"], ["stdout", "c\n"]]


def test_taking_back_stdout_after_a_join_takes_the_last_bytes():
    tail = Tail()
    tail.add("stdout", b"out")
    tail.add("stderr", b"err\n")
    tail.add("stdout", b"put\n\x1e[rep")
    tail.drop_stdout_end(5)
    assert joined(tail, "stdout") == "output\n"
    assert tail.size == len(b"output\nerr\n")


def test_the_limit_holds_with_joins():
    tail = Tail(limit=32)
    for i in range(50):
        tail.add("stdout", b"x%d" % i)
        tail.add("stderr", b"e%d\n" % i)
    assert tail.size <= 32 and tail.truncated
    assert sum(len(b) for _, b in tail.chunks) == tail.size


def test_a_real_unbuffered_program_reads_whole_lines(tmp_path):
    # The capture path's real pipes: partial stdout writes with stderr lines between them.
    from reprex.recorded import run_recorded
    script = tmp_path / "p.py"
    script.write_text("import sys\nfor i in range(300):\n    print('line', i, 'end', flush=True)\n"
                      "    print('err', i, file=sys.stderr, flush=True)\n")
    result = run_recorded([sys.executable, "-u", str(script)], cwd=tmp_path, tee=False)
    text = "".join(t for _, t in result.outcome.output_tail)
    lines = text.splitlines()
    assert [l for l in lines if l.startswith("line")] == [f"line {i} end" for i in range(300)]
    assert [l for l in lines if l.startswith("err")] == [f"err {i}" for i in range(300)]
