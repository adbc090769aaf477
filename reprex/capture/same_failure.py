"""Does a re-run of a test fail the way the test did? The whole failure, not its types alone.

A harness that sets the test up wrongly often raises the same exception type as the real
failure ('TestX' object has no attribute 'ureg' vs module 'numpy' has no attribute 'float':
both AttributeError), so a bundle built on a type match would "reproduce" the harness's own
error. Here two recorder exception records are the same failure when they agree on the
exception chain's types, the in-app frames from the innermost one up to the test function
(keyed as reprex.signature keys frames, no line numbers), and the normalized message.
The stored signature contract (reprex.signature) is untouched: this only decides which
run a bundle may take its expected signature from.
"""

from __future__ import annotations

from reprex.signature import frame_key, innermost, normalize_message, type_list, unwrap_remote

# The standalone script's own machinery (pytest_reprex.script.HELPER): never part of the span.
MACHINERY = ("_reprex_pytest_entry.py",)
_SHOWN = 160
_SHOWN_MESSAGES = 600


def _base(frame: dict) -> str:
    return str(frame.get("loc") or frame.get("file") or "").replace("\\", "/").rsplit("/", 1)[-1]


def frame_span(exc: dict | None, function: str | None = None, machinery: tuple[str, ...] = MACHINERY) -> list[str]:
    """Frame keys of the innermost exception, innermost first, up to and including the test
    function (`function`: its qualname; the outermost frame of that name): what lies beyond
    (the runner, the script that called it) differs by nature. Without that frame (a fixture
    or an import failed), every in-app frame but the machinery's."""
    frames = (innermost(unwrap_remote(exc)) or {}).get("frames") or []
    keyed = [(f, frame_key(f)) for f in reversed(frames)]
    keyed = [(f, k) for f, k in keyed if k is not None and _base(f) not in machinery]
    if function:
        ends = [i for i, (f, _) in enumerate(keyed) if (f.get("qualname") or f.get("function")) == function]
        if ends:
            keyed = keyed[:ends[-1] + 1]
    return [k for _, k in keyed]


def failure_message(exc: dict | None) -> str:
    """The innermost exception's message, normalized (what a signature keeps)."""
    exc = unwrap_remote(exc)
    return normalize_message((innermost(exc) or exc or {}).get("message"))


def difference(expected: dict | None, observed: dict | None, *, function: str | None = None,
               machinery: tuple[str, ...] = MACHINERY) -> str | None:
    """None when `observed` is the failure `expected` is; else what differs, in one line."""
    if not expected:
        return "no failure to compare with"
    if not observed:
        return "it raised nothing"
    want, got = type_list(unwrap_remote(expected)), type_list(unwrap_remote(observed))
    if want != got:
        return f"types {_show(' <- '.join(got))} instead of {_show(' <- '.join(want))}"
    want_frames = frame_span(expected, function, machinery)
    got_frames = frame_span(observed, function, machinery)
    if want_frames != got_frames:
        return f"frames {_show(' < '.join(got_frames) or '-')} instead of {_show(' < '.join(want_frames) or '-')}"
    if failure_message(expected) != failure_message(observed):
        # Shown raw, whole or not at all: a normalized or cut message can hide a secret's shape
        # from the bundle's redactor (see reprex.signature.redacted_signature).
        want, got = _raw(expected), _raw(observed)
        if len(want) + len(got) > _SHOWN_MESSAGES:
            return f"message differs ({len(got)} characters instead of {len(want)})"
        return f"message {got!r} instead of {want!r}"
    return None


def _raw(exc: dict) -> str:
    exc = unwrap_remote(exc)
    return str((innermost(exc) or exc or {}).get("message") or "")


def _show(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."
