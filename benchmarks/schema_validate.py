"""Manifest validation: jsonschema (what reprex used) vs the shipped generated validator.

Each rep is a fresh interpreter that imports the validator and checks one real manifest (what
one `reprex show`/`replay` pays), bytecode cached as an installed wheel's would be; then the
per-call cost of validating, in one process. Prints medians and the ratio (jsonschema / shipped).
jsonschema must be importable here (the `ray` extra brings it into .venv).

    .venv/bin/python benchmarks/schema_validate.py [--reps 21]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from timing import clean_env  # noqa: E402

MANIFEST = {
    "schema": 1, "id": "0" * 64, "name": "demo", "created": "2026-01-01T00:00:00Z",
    "tool": {"name": "reprex", "version": "0.1.0"}, "entry": {"argv": ["app.py"], "cwd": ".", "kind": "script"},
    "python": {"version": "3.11.2", "implementation": "CPython"},
    "platform": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.36", "distro": "debian", "release": "12"},
    "gpu": None, "network": False, "redactions": [{"kind": "aws", "where": "traceback.txt", "count": 1}],
    "expect": {"outcome": "exception", "exception": {"type": "ValueError", "message": "boom"}, "exit_code": 1,
               "signature": {"id": "ab" * 32, "kind": "exception", "types": ["ValueError"],
                             "frames": ["main@app.py", "f@app.py"]}},
    "files": {"copied": ["data.csv"], "skipped": [], "total_bytes": 10},
    "pins": {"count": 3, "roots": ["numpy"], "flagged": [], "dropped_editable": []},
}

SETUP = {
    "jsonschema": ("import json, jsonschema\n"
                   "v = jsonschema.Draft202012Validator(json.load(open({schema!r})))\n"
                   "check = lambda m: list(v.iter_errors(m))"),
    "shipped": "from reprex.schema.bundle_v1 import validate as check",
}


def cold(which: str, manifest: Path, env: dict) -> float:
    code = ("import json, time\nm = json.load(open({m!r}))\nt = time.perf_counter()\n" + SETUP[which] +
            "\ncheck(m)\nprint(time.perf_counter() - t)")
    code = code.format(m=str(manifest), schema=str(ROOT / "reprex" / "schema" / "bundle-v1.schema.json"))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout)


def warm(which: str, n: int = 2000) -> float:
    scope: dict = {}
    exec(SETUP[which].format(schema=str(ROOT / "reprex" / "schema" / "bundle-v1.schema.json")), scope)
    check = scope["check"]
    start = time.perf_counter()
    for _ in range(n):
        check(MANIFEST)
    return (time.perf_counter() - start) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=21)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="reprex-bench-schema-") as tmp:
        manifest = Path(tmp) / "reprex.json"
        manifest.write_text(json.dumps(MANIFEST))
        env = clean_env(Path(tmp) / "pycache")
        for which in SETUP:  # fill the bytecode cache
            cold(which, manifest, env)
        times: dict[str, list[float]] = {w: [] for w in SETUP}
        for _ in range(args.reps):
            for which in SETUP:
                times[which].append(cold(which, manifest, env))
    rows = {w: (statistics.median(t), warm(w)) for w, t in times.items()}
    print(f"{'validator':<12} {'import+validate (ms)':>22} {'validate only (us)':>20}")
    for which, (c, w) in rows.items():
        print(f"{which:<12} {c * 1e3:>22.2f} {w * 1e6:>20.1f}")
    (cj, wj), (cs, ws) = rows["jsonschema"], rows["shipped"]
    print(f"ratio jsonschema/shipped: import+validate {cj / cs:.1f}x, validate only {wj / ws:.1f}x "
          f"(median of {args.reps} fresh interpreters)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
