"""What text redaction alone can't judge in a recorded run: arguments whose name says
secret, argument pickles (kept only when nothing in them could be a secret), and the
output tail, scrubbed whole before it is cut so a secret straddling the cut still goes.
"""

from __future__ import annotations

from reprex.tail import CUT_MARK, TAIL_BYTES


def scrub_arguments(exc: dict | None, red, dropped: list | None = None, depth: int = 0) -> list[dict]:
    """Values text redaction can't judge: a local or argument whose NAME says secret
    (`password='...'`) loses its value; argument pickles are judged by what they hold
    (reprex.capture.pickles) and left out when in doubt; each left out is listed."""
    dropped = [] if dropped is None else dropped
    if not exc or depth > 20:
        return dropped
    from reprex.redact import looks_secret_name

    for frame in exc.get("frames") or ():
        local_values = frame.get("locals") or {}
        for name in list(local_values):
            if looks_secret_name(name):
                local_values[name] = "<redacted:config-secret>"
        for name, item in (frame.get("arg_values") or {}).items():
            if looks_secret_name(name):
                if item.pop("pickle", None) is not None:
                    item["pickle_dropped"] = "its name looks secret"
                    dropped.append({"function": str(frame.get("qualname") or frame.get("function")),
                                    "argument": name, "reason": item["pickle_dropped"]})
                item["repr"] = "<redacted:config-secret>"
                continue
            why = scrub_pickle(item, red)
            if why:
                dropped.append({"function": str(frame.get("qualname") or frame.get("function")),
                                "argument": name, "reason": why})
    for key in ("cause", "context"):
        scrub_arguments(exc.get(key), red, dropped, depth + 1)
    for child in exc.get("children") or ():
        scrub_arguments(child, red, dropped, depth + 1)
    return dropped


# Exact builtin scalar types (the recorder's `type`): their pickle holds their repr's
# content and nothing else, so the scrubbed repr vouches for it (no pickletools import).
_SCALARS = frozenset({"builtins.str", "builtins.bytes", "builtins.int", "builtins.float", "builtins.bool",
                      "builtins.complex", "builtins.NoneType"})


def scrub_pickle(item: dict, red) -> str | None:
    """Scrub one argument's repr and keep its pickle only if nothing in it could be a
    secret; returns why the pickle was left out (None if kept or absent)."""
    import base64
    import binascii

    from reprex.capture.pickles import verdict

    text = item.get("repr")
    clean_repr = True
    if text is not None:
        item["repr"] = red.text(text, "locals")
        clean_repr = item["repr"] == text
    blob = item.get("pickle")
    if not blob:
        return None
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        raw = None
    if raw is not None and clean_repr and item.get("type") in _SCALARS:
        return None  # a plain str/bytes/number pickles to exactly what its repr shows
    why = ("not valid base64" if raw is None else
           "its repr held a secret" if not clean_repr else verdict(raw, text, red))
    if why:
        item.pop("pickle")
        item["pickle_dropped"] = why
    return why


def scrub_tail(tail: list, red) -> list[list[str]]:
    """The output tail, scrubbed; a chunk the tail cut into is scrubbed as cut text (what
    is left of a key whose BEGIN line was cut off goes too)."""
    out = []
    for i, (stream, text) in enumerate(tail):
        cut = i == 0 and text.startswith(CUT_MARK)
        out.append([stream, red.text_after_cut(text, stream) if cut else red.text(text, stream)])
    return cut_tail(out, TAIL_BYTES)


def cut_tail(tail: list[list[str]], limit: int) -> list[list[str]]:
    """The last `limit` characters of scrubbed output (the recorder kept a margin more, so
    the scrub saw whole what this cut may split); a partial first line is dropped."""
    size = sum(len(text) for _, text in tail)
    if size <= limit:
        return tail
    out, excess = [], size - limit
    for stream, text in tail:
        if excess >= len(text):
            excess -= len(text)
            continue
        out.append([stream, text[excess:]])
        excess = 0
    if out:
        rest = out[0][1].split("\n", 1)
        out[0][1] = CUT_MARK + "\n" + (rest[1] if len(rest) > 1 else "")
    return out
