"""The venues' escaping rules, one at a time (tests/test_trust_read.py has the end-to-end runs)."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from reprex.bundle import Bundle
from reprex.escape import md_fence, md_inline, terminal
from reprex.render import GH_LIMIT, render, summary_facts


def html(markdown: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


@pytest.mark.parametrize("text", [
    "\x1b]0;title\x07", "\x1b[2J", "\x9b1m", "a\rb", "\x1b]8;;http://127.0.0.1:9/\x1b\\x", "\x00\x08\x7f",
    "right-to-left \u202e override", "isolate \u2066x\u2069",
])
def test_terminal_shows_every_control_character(text):
    out = terminal(text)
    assert all(ch == "\n" or ch == "\t" or (ord(ch) >= 0x20 and not 0x7f <= ord(ch) <= 0x9f
                                            and ch not in "\u202e\u2066\u2069") for ch in out), repr(out)
    assert "\\x" in out or "\\u" in out


def test_terminal_keeps_lines_and_tabs_unless_asked_for_one_line():
    assert terminal("a\n\tb\r\n") == "a\n\tb\n"
    assert terminal("a\n\tb", multiline=False) == "a\\x0a\\x09b"


@pytest.mark.parametrize("text, rendered", [
    ("</details><img src=x>", "&lt;/details&gt;&lt;img src=x&gt;"),
    ("**bold** _em_ `code`", "**bold** _em_ `code`"),
    ("![i](http://127.0.0.1:9/p.png) [l](x)", "![i](http://127.0.0.1:9/p.png) [l](x)"),
    ("a | b", "a | b"),
    ("&amp; &#64;", "&amp;amp; &amp;#64;"),
])
def test_md_inline_renders_as_the_literal_text(text, rendered):
    cell = html(f"| k | v |\n|---|---|\n| x | {md_inline(text)} |")
    assert f"<td>{rendered}</td>" in cell.replace("\u200b", ""), cell


def test_md_inline_breaks_mentions_and_refs_and_lines():
    out = md_inline("ping @someone about #12 and org/repo#3\nnext line")
    assert "@someone" not in out and "#12" not in out and "#3" not in out and "\n" not in out
    assert out.replace("\u200b", "") == "ping @someone about #12 and org/repo#3\\\\x0anext line"
    assert "@" in md_inline("a@ b") and "\u200b" not in md_inline("a@ b")


def test_md_inline_cuts_before_escaping():
    out = md_inline("<" * 50, limit=10)
    assert out == "&lt;" * 10 + "..."


@pytest.mark.parametrize("content", ["```\n</details>", "````` x ``", "`", "~~~\n<img src=x>"])
def test_md_fence_cannot_be_closed_by_its_content(content):
    block = md_fence(content + "\n@someone")
    out = html("<details><summary>s</summary>\n\n" + block + "\n\n</details>\n\nafter")
    assert out.count("<pre>") == 1 and "<img" not in out and out.count("</details>") == 1
    assert out.rstrip().endswith("<p>after</p>")


def _bundle(**manifest) -> Bundle:
    m = {"schema": 1, "id": "0" * 64, "name": "demo", "created": "2026-01-01T00:00:00Z",
         "tool": {"name": "reprex", "version": "0"}, "entry": {"argv": ["python", "a.py"], "cwd": "."},
         "python": {"version": "3.11.7", "implementation": "CPython"},
         "platform": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.36"}, "gpu": None,
         "expect": {"outcome": "exception", "exception": {"type": "ValueError", "message": "bad"},
                    "signature": {"id": "abc", "kind": "exception", "types": ["ValueError"], "frames": []}},
         "network": False, "redactions": []}
    m.update(manifest)
    return Bundle(m, {"traceback.txt": b"Traceback\nValueError: bad\n", "repro.py": b"raise ValueError('bad')\n",
                      "requirements.txt": b"six==1.16.0\n"}).finalize()


def test_a_cell_with_pipes_and_newlines_stays_one_row():
    b = _bundle(entry={"argv": ["python", "a|b", "c\n| injected | row |"], "cwd": "."})
    out = html(render(b, "gh"))
    assert out.count("<tr>") == 1 + len(summary_facts(b))  # header row + one per fact
    assert "injected" in out and "<td>injected</td>" not in out


def test_unknown_venue_is_about_the_venue_and_renderer_errors_are_not():
    with pytest.raises(ValueError, match="unknown venue 'html'"):
        render(_bundle(), "html")
    broken = _bundle()
    broken.manifest["redactions"] = [{"kind": "k", "where": "w"}]  # in memory only: no count
    assert "unknown venue" not in render(broken, "gh")


def test_long_values_are_cut_and_the_body_stays_under_the_limit():
    b = _bundle(entry={"argv": ["python", "x" * 100000], "cwd": "."},
                files={"copied": [], "skipped": [{"path": "p" * 5000, "size": 1, "reason": "r"}] * 200})
    body = render(b, "gh")
    assert len(body) <= GH_LIMIT
    assert "and 150 more" in body
    assert html(body).count("</details>") == 6
