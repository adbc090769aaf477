"""`reprex shrink` end to end on captured real-world bundles, replay as the oracle (issue 15).

benchmarks/shrink.py compares the reducer with its peers under one hand-written oracle; this
one runs the whole tool the way a user does: each case of the fidelity corpus
(tests/fixtures/fidelity, failures from public issue trackers, pinned so they depend on the
versions) is captured in its pinned env, shrunk with the library API `reprex shrink` uses
(calibration, every candidate a real replay on the backend, pins dropped, final verification),
and the shrunk bundle is then replayed on every backend asked for. Per case and shrink backend
it prints the oracle calls (judged candidates), replays run, wall time, the script's statements
and tokens before and after, the pins before and after, the verification rate, and the
verdict of the shrunk bundle on each replay backend (it must be `reproduced` everywhere).

    .venv/bin/python benchmarks/shrink_bundles.py [--backend local] [--backend docker]
                                                  [--case NAME ...] [--strict|--loose] [--fixed-with] [--json out.json]

Needs the package index (the case envs are real installs) and, for docker, an engine and
the base image (REPREX_TEST_IMAGE, default python:3.11-slim).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from corpus import CASES, capture  # puts the checkout and the corpus on sys.path first

from reprex.shrink.script import count_tokens as tokens  # noqa: E402

DEFAULT_CASES = ("invalid_version", "legacy_version", "retry_whitelist", "url_quote", "itsdangerous_json",
                 "pytest_retry")


def shrink_case(name: str, bundle, backend: str, image: str | None, strict: bool | None, replay_on: list[str],
                out_dir: Path, control: list[str]) -> dict:
    from reprex.bundle import Bundle
    from reprex.replay import ReplayOptions, replay
    from reprex.shrink.step import ShrinkOptions, script_targets, shrink

    scripts = script_targets(bundle)
    started = time.monotonic()
    report = shrink(bundle, ShrinkOptions(backend=backend, image=image, strict=strict, control=control))
    seconds = time.monotonic() - started
    summary = report.summary
    row = {"calls": summary["calls"], "runs": summary["runs"], "seconds": round(seconds, 1),
           "statements": [summary["before"]["statements"], summary["after"]["statements"]],
           "script_bytes": [summary["before"]["script_bytes"], summary["after"]["script_bytes"]],
           "tokens": [sum(tokens(bundle.files[n]) or 0 for n in scripts),
                      sum(tokens(report.bundle.files[n]) or 0 for n in scripts if n in report.bundle.files)],
           "pins": [summary["before"]["pins"], summary["after"]["pins"]],
           "verify": summary["verify"]["rate"], "kept": summary["kept"],
           "with_the_fix": (summary.get("control") or {}).get("verdict"), "strict": summary["strict"]}
    shrunk = report.bundle.write(out_dir / f"{name}.{backend}.shrunk.reprex.zip")
    row["replays"] = {}
    for target in replay_on:
        options = {"backend": target, "timeout": 240, "setup_timeout": 900, "strict": summary["strict"]}
        if target == "docker" and image:
            options["image"] = image
        row["replays"][target] = replay(Bundle.read(shrunk), ReplayOptions(**options)).verdict
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=["local", "docker"],
                        help="shrink on these backends (default: both); each result is replayed on all of them")
    parser.add_argument("--image", default=os.environ.get("REPREX_TEST_IMAGE", "python:3.11-slim"))
    parser.add_argument("--case", action="append", help=f"only these cases (default: {', '.join(DEFAULT_CASES)})")
    parser.add_argument("--strict", action="store_true", default=None,
                        help="shrink and replay with --strict (default: as `reprex shrink`: the message too when it "
                             "holds steady, and the replays judge as the shrinking did)")
    parser.add_argument("--loose", dest="strict", action="store_false", help="the signature alone")
    parser.add_argument("--fixed-with", action="store_true",
                        help="shrink with each case's fixing pin as --fixed-with (a differential judge)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    backends = args.backend or ["local", "docker"]
    names = args.case or list(DEFAULT_CASES)
    cases = [c for c in CASES if c.name in names]
    if len(cases) != len(set(names)):
        parser.error(f"no such case; choose from {', '.join(c.name for c in CASES)}")

    rows = []
    with tempfile.TemporaryDirectory(prefix="reprex-shrink-bundles-") as tmp:
        os.environ["REPREX_CACHE_DIR"] = str(Path(tmp) / "cache")
        for case in cases:
            print(f"{case.name}: capturing", file=sys.stderr, flush=True)
            try:
                bundle = capture(case, Path(tmp))
            except Exception as exc:  # a case that can't be set up is reported, not hidden
                rows.append({"case": case.name, "issue": case.issue, "error": f"capture: {exc}"[:300]})
                continue
            for backend in backends:
                print(f"{case.name}: shrinking on {backend}", file=sys.stderr, flush=True)
                try:
                    row = shrink_case(case.name, bundle, backend, args.image, args.strict, backends, Path(tmp),
                                      [case.fix] if args.fixed_with else [])
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    row = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                rows.append({"case": case.name, "issue": case.issue, "backend": backend, **row})
                print(f"  {rows[-1]}", file=sys.stderr, flush=True)

    print("| case | shrunk on | oracle calls | runs | wall s | statements | tokens | script bytes | pins "
          "| judged by | verified | with the fix | shrunk bundle replays |")
    print("|---|---|---:|---:|---:|---|---|---|---|---|---:|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['case']} | {r.get('backend', '')} | | | | | | | | | | | {r['error']} |")
            continue
        arrow = lambda pair: f"{pair[0]} → {pair[1]}"  # noqa: E731
        replays = ", ".join(f"{b}: {v}" for b, v in r["replays"].items())
        print(f"| {r['case']} | {r['backend']} | {r['calls']} | {r['runs']} | {r['seconds']} | "
              f"{arrow(r['statements'])} | {arrow(r['tokens'])} | {arrow(r['script_bytes'])} | {arrow(r['pins'])} | "
              f"{'signature + message' if r['strict'] else 'signature'} | {r['verify']:.0%} | {r['with_the_fix'] or '—'} | {replays} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    bad = [r for r in rows if "error" in r or any(v != "reproduced" for v in r["replays"].values())]
    print(f"\n{len(rows) - len(bad)} of {len(rows)} shrunk bundles replay `reproduced` on every backend")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
