"""Do reprex's verdicts tell the truth on real-world failures? (issue 11)

Captures every case of the corpus in tests/fixtures/fidelity (failures from public issue
trackers, each pinned so that it depends on the versions; the issue URL is in the case),
replays each on the chosen backends four ways, and prints case x check -> expected / got,
with the totals: false `fixed` (a replay that says the bug is gone when it isn't) and false
`different` (one that says it's another bug) must both be 0.

    .venv/bin/python benchmarks/fidelity.py [--backend local] [--backend docker]
                                            [--image python:3.11-slim] [--case NAME ...] [--json out.json]

Needs network access to the package index (the case envs and --with pins are real pip
installs) and, for docker, an engine and the base image. A private REPREX_CACHE_DIR in a temp
dir keeps the user's cache out of it. tests/test_fidelity.py asserts the same checks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from corpus import CASES, CHECKS, capture, run_checks  # puts the checkout and the corpus on sys.path first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=["local", "docker"],
                        help="backends to replay on (default: both)")
    parser.add_argument("--image", default=os.environ.get("REPREX_TEST_IMAGE", "python:3.11-slim"))
    parser.add_argument("--case", action="append", help="only these cases (by name)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    backends = args.backend or ["local", "docker"]
    cases = [c for c in CASES if not args.case or c.name in args.case]
    if not cases:
        parser.error(f"no such case; choose from {', '.join(c.name for c in CASES)}")

    rows = []
    with tempfile.TemporaryDirectory(prefix="reprex-fidelity-") as tmp:
        os.environ["REPREX_CACHE_DIR"] = str(Path(tmp) / "cache")
        for case in cases:
            started = time.monotonic()
            try:
                bundle = capture(case, Path(tmp))
            except Exception as exc:  # a case that can't be set up is reported, not hidden
                rows += [{"case": case.name, "backend": b, "check": "capture", "expected": "bundle",
                          "got": f"error: {exc}"[:200], "issue": case.issue} for b in backends]
                continue
            for backend in backends:
                for check, expected, got, detail in run_checks(case, bundle, backend,
                                                               args.image if backend == "docker" else None):
                    rows.append({"case": case.name, "backend": backend, "check": check, "expected": expected,
                                 "got": got, "detail": detail[:300], "issue": case.issue})
            print(f"# {case.name}: {time.monotonic() - started:.0f} s", file=sys.stderr)

    print_table(rows, backends)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    bad = [r for r in rows if r["got"] != r["expected"]]
    return 1 if bad else 0


def print_table(rows: list[dict], backends: list[str]) -> None:
    cols = [(b, c) for b in backends for c in CHECKS]
    header = ["case", "kind"] + [f"{b}: {c}" for b, c in cols]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    kinds = {c.name: c.kind for c in CASES}
    for name in dict.fromkeys(r["case"] for r in rows):
        cells = []
        for backend, check in cols:
            row = next((r for r in rows if r["case"] == name and r["backend"] == backend
                        and r["check"] in (check, "capture")), None)
            if row is None:
                cells.append("-")
            else:
                mark = "ok" if row["got"] == row["expected"] else "**WRONG**"
                cells.append(f"{row['expected']} / {row['got']} {mark}")
        print(f"| [{name}]({next(r['issue'] for r in rows if r['case'] == name)}) | {kinds[name]} | "
              + " | ".join(cells) + " |")
    total = len(rows)
    right = sum(r["got"] == r["expected"] for r in rows)
    false_fixed = sum(r["got"] == "fixed" and r["expected"] != "fixed" for r in rows)
    false_different = sum(r["got"] == "different" and r["expected"] != "different" for r in rows)
    print()
    print(f"checks: {total}, as expected: {right}, false fixed: {false_fixed}, "
          f"false different: {false_different}, other misses: {total - right - false_fixed - false_different}")


if __name__ == "__main__":
    sys.exit(main())
