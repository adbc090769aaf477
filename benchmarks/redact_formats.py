"""Should reprex's redactor adopt detect-secrets? Both run on the same corpora:

  * coverage: the planted secrets of tests/test_redact.py, tests/test_redact_leaks.py
    (vendor formats, issue 10's carriers) and tests/test_redaction_corpus.py's token
    formats, each in the line that carries it; a secret counts as caught when the tool
    removes it (reprex) or reports a value covering it (detect-secrets, default plugins);
  * false positives: tests/test_redact_false_positives.py's ordinary values, one per line;
  * time per MB: a 2 MB log of tracebacks, configs and ML output (tests/test_redact.py).

detect-secrets isn't a dependency; install it anywhere and point at its site-packages:

    python3 -m venv /tmp/dsvenv && /tmp/dsvenv/bin/pip install detect-secrets
    .venv/bin/python benchmarks/redact_formats.py --detect-secrets /tmp/dsvenv/lib/python3.11/site-packages
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


def corpus() -> list[tuple[str, str, str]]:
    """(family, secret, line) triples."""
    import test_redact as tr
    import test_redact_leaks as tl
    import test_redaction_corpus as tc

    out = [("test_redact:" + name, secret, carrier) for name, secret, carrier, _ in tr.CORPUS]
    out += [("vendor:" + kind, tok, f"client = connect({tok!r})") for kind, tok in tl.FORMATS.items()]
    out += [("token:" + name, tok, f"print('using', {tok!r})") for name, tok in tc.TOKENS.items()]
    rnd = tc.RT
    out += [
        ("issue10:basic", rnd[0], "hdr = 'Basic " + base64.b64encode(("admin:" + rnd[0]).encode()).decode() + "'"),
        ("issue10:b64-token", tc.RUNTIME["base64-bytes#0"],
         "blob = " + repr(base64.b64encode(tc.RUNTIME["base64-bytes#0"].encode()))),
        ("issue10:utf16", tc.RUNTIME["utf16-bytes#0"], "raw = " + repr(tc.RUNTIME["utf16-bytes#0"].encode("utf-16-le"))),
        ("issue10:header-tuple", rnd[1], f"headers = [(b'x-api-key', b'{rnd[1]}')]"),
        ("issue10:auth-tuple", "Hunter2-" + rnd[2][:10], f"requests.get(url, auth=('admin', 'Hunter2-{rnd[2][:10]}'))"),
        ("issue10:yaml-next-line", rnd[3], f"password:\n    {rnd[3]}\n"),
        ("issue10:yaml-block", rnd[4], f"token: >-\n    {rnd[4]}\n"),
        ("issue10:url-slash-plus", tc.RUNTIME["url-slash-plus#0"],
         f"postgresql://app:{tc.RUNTIME['url-slash-plus#0']}@db/prod"),
    ]
    return out


def reprex_caught(red, secret: str, line: str) -> bool:
    return secret not in red.text(line, "bench")


def ds_caught(scan_line, secret: str, line: str) -> bool:
    for lineno, text in enumerate(line.splitlines() or [line]):
        for found in scan_line(text):
            value = found.secret_value or ""
            if secret in value or (len(value) >= 0.8 * len(secret) and value in secret):
                return True
    return False


def ds_flags(scan_line, line: str) -> bool:
    return any(True for _ in scan_line(line))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detect-secrets", metavar="SITE_PACKAGES", help="where detect-secrets is installed")
    ap.add_argument("--mb", type=float, default=2.0, help="size of the timing log")
    args = ap.parse_args()
    if args.detect_secrets:
        sys.path.append(args.detect_secrets)
    from reprex.redact import Redactor
    import test_redact as tr
    import test_redact_false_positives as tfp

    red = Redactor(tr.ENV, hostname=tr.HOST, username=tr.USER, home=tr.HOME, extra_secrets=[tr.S["extra"]])
    cases = corpus()
    ordinary = [v for items in tfp.ordinary_values().values() for v in items]
    chunk = "\n".join([tr.TRACEBACK, tr.YAML, tr.INI, tr.DOTENV] + tr.NON_SECRETS)
    log = chunk * int(args.mb * 1e6 // len(chunk) + 1)

    rows = []
    missed = [f for f, s, line in cases if not reprex_caught(red, s, line)]
    fp = sum(1 for v in ordinary if Redactor({}, hostname="h0st", username="u0", home="/nonexistent").text(v, "x") != v)
    t0 = time.perf_counter()
    red.text(log, "bench")
    dt = time.perf_counter() - t0
    rows.append(("reprex Redactor", len(cases) - len(missed), fp, dt / (len(log) / 1e6), missed))

    try:
        from detect_secrets.core.scan import scan_line
        from detect_secrets.settings import default_settings
    except ImportError:
        print("detect-secrets: not importable (see --detect-secrets); reprex row only")
    else:
        with default_settings():
            ds_missed = [f for f, s, line in cases if not ds_caught(scan_line, s, line)]
            ds_fp = sum(1 for v in ordinary if ds_flags(scan_line, v))
            lines = log.splitlines()
            t0 = time.perf_counter()
            for line in lines:
                for _ in scan_line(line):
                    pass
            ds_dt = time.perf_counter() - t0
            rows.append(("detect-secrets 1.x (default plugins)", len(cases) - len(ds_missed), ds_fp,
                         ds_dt / (len(log) / 1e6), ds_missed))
            both = [f for f in ds_missed if f not in missed]
            print(f"caught by reprex, missed by detect-secrets ({len(both)}): {', '.join(both)}")
            only_ds = [f for f in missed if f not in ds_missed]
            print(f"caught by detect-secrets, missed by reprex ({len(only_ds)}): {', '.join(only_ds) or '-'}")

    print(f"\n{'tool':40} {'caught':>12} {'false pos.':>12} {'s per MB':>10}")
    for name, caught, fps, per_mb, _ in rows:
        print(f"{name:40} {caught:>5}/{len(cases):<6} {fps:>5}/{len(ordinary):<6} {per_mb:>10.3f}")


if __name__ == "__main__":
    main()
