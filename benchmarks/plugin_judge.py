"""How a failing test's bundle and replay compare with pytest's own junit record (issue 18).

Used by benchmarks/plugin_suites.py: pytest's junit xml parsed into (type, message) per failing
test and collector, and a judge that sorts each test into genuine / wrong failure / different /
fixed / other / no bundle. Messages are compared after reprex.signature.normalize_message, so
what counts as "the same message" is the project's own rule, plus the few junit and unittest
shapes noted where they are handled.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from reprex.signature import normalize_message


# -- pytest's own record ------------------------------------------------------------------------

def junit_key(nodeid: str) -> tuple[str, str]:
    """(classname, name) as pytest's junitxml writes a node id (mangle_test_address)."""
    names = nodeid.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    return ".".join(names[:-1]), names[-1]


_SETUP = re.compile(r'^failed on (setup|teardown) with "(.*)"$', re.S)


def split_exc(text: str) -> tuple[str, str]:
    """'pkg.Type: message' -> ('Type', 'message'); a rewritten assert has no type in front."""
    head, sep, rest = text.partition(": ")
    if sep and re.fullmatch(r"[A-Za-z_][\w.]*", head):
        return head.rsplit(".", 1)[-1], rest
    if text.startswith("assert "):
        return "AssertionError", text
    return "", text


def collect_error(longrepr: str) -> str:
    """The last `E   ` block of a collection error's report: the exception pytest shows."""
    blocks, current = [], []
    for line in longrepr.splitlines():
        if line.startswith("E   ") or line == "E":
            current.append(line[4:])
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return "\n".join(blocks[-1]).strip() if blocks else longrepr.strip().splitlines()[-1:][0] if longrepr.strip() else ""


def _nodeid(case) -> str:
    """The node id back from xunit1's file attribute (for tests without a bundle to name them)."""
    classname, name, file = case.get("classname") or "", case.get("name") or "", case.get("file")
    if not classname:  # a collector: pytest wrote its module path dotted, without .py
        return name.replace(".", "/") + ".py" if re.fullmatch(r"[\w.]+", name) else name
    if not file:
        return f"{classname}::{name}"
    module = re.sub(r"\.py$", "", file.replace("/", "."))
    classes = classname[len(module):].strip(".").split(".") if classname.startswith(module) else [classname]
    return "::".join([file, *[c for c in classes if c], name])


def junit_failures(path: Path) -> dict:
    """{(classname, name): {when, type, message}} for every failed or errored test (and collector)."""
    out = {}
    for case in ET.parse(path).iter("testcase"):
        for tag in ("failure", "error"):
            node = case.find(tag)
            if node is None:
                continue
            message = node.get("message") or ""
            when = "call" if tag == "failure" else "setup"
            if message == "collection failure":
                when, message = "collect", collect_error(node.text or "")
            elif (m := _SETUP.match(message)):
                when, message = m.group(1), m.group(2)
            typ, msg = split_exc(message)
            key = (case.get("classname") or "", case.get("name") or "")
            out.setdefault(key, {"when": when, "type": typ, "message": msg, "nodeid": _nodeid(case)})
    return out


_TRUNCATED = re.compile(r"\s*\[\+\d+ more lines?; full report in element text\]\s*$")


def _squash(text: str) -> str:
    """normalize_message, whitespace collapsed, and unittest's shortened reprs (`[15 chars]q5:1:8`)
    without the random tail a temporary file name leaves after the marker."""
    return " ".join(normalize_message(re.sub(r"\[(\d+|<n>) chars\](?:<n>|\w)*", r"[\1 chars]", text)).split())


def signature_types(signature: dict | None, nodeid: str) -> tuple[list[str], list[str]]:
    """(exception types, the tests named) of a signature: a standalone one lists the chain; a
    pytest-mode one lists `nodeid[ (when)]: A <- B` per failing test."""
    types, tests = [], []
    for entry in (signature or {}).get("types") or []:
        if entry.startswith("exit:") or re.match(r"\+\d+ more", entry):
            continue
        if ": " in entry and (".py" in entry.split(": ")[0] or "::" in entry):
            test, _, entry = entry.rpartition(": ")
            tests.append(re.sub(r" \((collect|setup|teardown|call)\)$", "", test))
        types += [re.sub(r"\[.*\]$", "", t).rsplit(".", 1)[-1] for t in entry.split(" <- ")]
    return types, tests


def same_failure(junit: dict, types: list[str], message: str) -> str:
    """'' when (types, message) is junit's failure, else why not."""
    if junit["type"] and junit["type"] not in types:
        return f"type differs: pytest {junit['type']}, bundle/replay {' <- '.join(types) or '-'}"
    want, got = _squash(_TRUNCATED.sub("", junit["message"])), _squash(message)
    # pytest 9's junit cuts a long message to its first lines and says so: compare that prefix.
    # A collection error's CollectError message is pytest's whole report, the `E` lines included.
    if want != got and not (_TRUNCATED.search(junit["message"]) and got.startswith(want)) \
            and not (junit["when"] == "collect" and want and want in got):
        return f"message differs: pytest {want[:160]!r} vs {got[:160]!r}"
    return ""


def judge(junit: dict, nodeid: str, manifest: dict | None, result: dict | None) -> tuple[str, str]:
    """(class, reason) of one failing test."""
    if manifest is None:
        return "no bundle", ""
    verdict = (result or {}).get("verdict", "no-json")
    if verdict != "reproduced":
        cls = verdict if verdict in ("different", "fixed") else "other"
        return cls, f"{verdict}: {str((result or {}).get('reason') or '')[:300]}"
    expect = manifest.get("expect") or {}
    exc = expect.get("exception") or {}
    sig = expect.get("signature") or {}
    sig_types, sig_tests = signature_types(sig, nodeid)
    bundle_types = [t.rsplit(".", 1)[-1] for t in (exc.get("type"), exc.get("innermost_type")) if t] + sig_types
    why = same_failure(junit, bundle_types, exc.get("message") or sig.get("message") or "")
    if why:
        return "wrong failure", "bundle expects another failure: " + why
    got = result.get("signature") or {}
    got_types, got_tests = signature_types(got, nodeid)
    if got_tests and nodeid not in got_tests:
        return "wrong failure", f"replay failed other tests: {got_tests[:3]}"
    why = same_failure(junit, got_types, got.get("message") or "")
    if why and _squash(got.get("message") or "") == _squash(sig.get("message") or ""):
        # A signature keeps the innermost exception's message (`'errstate'` of a KeyError behind
        # scipy's AttributeError); the bundle's expect.exception.message, checked above, is junit's.
        why = same_failure(junit, got_types, exc.get("message") or "")
    if why:
        return "wrong failure", "replay: " + why
    return "genuine", ""
