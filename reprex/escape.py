"""Bundle text on its way out, escaped for where it lands.

A bundle comes from a stranger, so every string in it is data. On a terminal, control
characters (ESC/CSI/OSC sequences, BEL, C1 controls, carriage returns, bidi overrides)
would drive the terminal; they are shown as visible escapes instead. In GitHub markdown,
text outside code blocks is HTML-escaped, markdown punctuation is backslash-escaped, and
@mentions / #refs are broken with a zero-width space so they notify and link no one.
Code blocks get a fence longer than any backtick run in their content.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1, the invisible bidi/direction marks, and lone
# surrogates (JSON can spell them; printing one is a UnicodeEncodeError).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                      "\ud800-\udfff]")
_CONTROL_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_MD_PUNCT = re.compile(r"([\\`*_\[\]|~])")
_MD_REF = re.compile(r"([@#])(?=\w)")
_ZWSP = "\u200b"


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text, multiline: bool = True) -> str:
    """Text safe to print: every control character but newline and tab shown as `\\xNN`
    (with multiline=False, newline and tab too)."""
    text = str(text).replace("\r\n", "\n")
    return (_CONTROL if multiline else _CONTROL_LINE).sub(_visible, text)


def md_inline(text, limit: int | None = None) -> str:
    """Text for one line of GitHub markdown (a table cell, a list item, a heading): no raw
    HTML, no markdown syntax, no mentions or issue references, no line breaks."""
    text = terminal(text, multiline=False)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_PUNCT.sub(r"\\\1", text)
    return _MD_REF.sub(r"\1" + _ZWSP, text)


def md_fence(text: str, lang: str = "") -> str:
    """A fenced code block that its content can't close: nothing inside is markdown or HTML."""
    text = terminal(text)
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"
