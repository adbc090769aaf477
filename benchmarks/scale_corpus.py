"""A corpus of small, distinct, really captured bundles for benchmarks/scale.py and the plugin's
Ray tests: N failing programs (each its own exception type, function names and message, so
each bundle has its own signature and id) spread over L pin sets (L environments, i.e. lock
hashes, as a team's corpus shares a few environments between many bug reports).

Each program is captured with `capture_command`, exactly as `reprex capture -- python app.py`
would; a pin set is added to the bundle's requirements.txt and the bundle sealed again (the
pins are small pure-Python wheels, so an environment build installs something real).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Small pure-Python wheels: each set is one environment (one lock hash); "" is stdlib only. The
# versions after the first are a little old on purpose: few other bundles on this machine pin them,
# so a benchmark that removes their environment images to start cold touches no one else's.
PIN_SETS = ("", "six==1.15.0", "idna==3.6", "packaging==23.1", "iniconfig==1.1.1", "pyparsing==3.1.1",
            "toml==0.10.1", "tomli==2.0.0", "attrs==22.2.0")

# (exception name, the failing step's body): one signature per bundle (names carry the index).
_KINDS = (("valueerror", "return int(row['count'])"), ("keyerror", "return row['missing']"),
          ("zerodivision", "return 1 / (len(row) - len(row))"), ("typeerror", "return row['count'] + 1"),
          ("indexerror", "return list(row)[99]"), ("attributeerror", "return row.count_items()"),
          ("runtimeerror", "raise RuntimeError('bundle {i}: depth')"),
          ("assertion", "assert row['count'] == 'never', 'bundle {i}'"))

PROGRAM = '''\
import json


def {step}(row):
    {body}


def run_{i}():
    rows = json.loads('[{{"count": "c{i}"}}]')
    return [{step}(r) for r in rows]


run_{i}()
'''


def program(i: int) -> str:
    kind, body = _KINDS[i % len(_KINDS)]
    return PROGRAM.format(step=f"step_{kind}_{i}", body=body.format(i=i), i=i)


def build_corpus(dest: Path, n: int = 32, locks: int = 4, python: str = sys.executable, first: int = 0) -> list[Path]:
    """`n` bundles in `dest` (NAME.reprex.zip), bundle i on pin set `first + i % locks`; their paths."""
    from reprex.bundle import Bundle
    from reprex.capture.pipeline import CaptureOptions, capture_command

    if not 1 <= locks <= len(PIN_SETS) - first:
        raise ValueError(f"locks must be 1..{len(PIN_SETS) - first}")
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        work = dest / f"src-{i:03d}"
        work.mkdir(exist_ok=True)
        (work / f"app_{i:03d}.py").write_text(program(i))
        captured = capture_command([python, f"app_{i:03d}.py"], CaptureOptions(tee=False, timeout=60),
                                   cwd=str(work))
        if captured.bundle is None or captured.path is None:
            raise RuntimeError(f"capturing bundle {i} wrote no bundle: {captured.message}")
        pins = PIN_SETS[first + i % locks]
        bundle = Bundle.read(captured.path)
        if pins:
            bundle.files["requirements.txt"] = (bundle.text("requirements.txt") + pins + "\n").encode()
        path = bundle.finalize().write(dest / f"b{i:03d}.reprex.zip")
        captured.path.unlink()
        paths.append(path)
    return paths


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="write a corpus of captured bundles")
    ap.add_argument("dest", type=Path)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--locks", type=int, default=4)
    ap.add_argument("--first", type=int, default=0, help="the first pin set (0: stdlib only)")
    args = ap.parse_args()
    for p in build_corpus(args.dest, args.n, args.locks, first=args.first):
        print(p)
