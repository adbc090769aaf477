#!/usr/bin/env python3
"""A stand-in for GitHub's archive endpoint of ONE private repository, on loopback only.

    GET /<owner>/<repo>/archive/<sha>.zip

answers like github.com does for a private repository:

* 200 and a zip whose single top-level directory is `<repo>-<sha>/` (as GitHub makes them)
  when the request carries a token the repository accepts, as HTTP Basic credentials
  (`https://user:TOKEN@host/...`; requests turns URL credentials into Basic auth, the token
  as user or password) or as `Authorization: Bearer TOKEN` / `token TOKEN`;
* 404 (not 403) for everything else: no token, a token that can't see the repository (a
  fine-grained `github_pat_...` token without this repository selected), an unknown sha.

By default only classic `ghp_...` tokens are accepted (a classic token with the `repo` scope
sees every repository its user can); `--accept TOKEN` accepts exactly the tokens given instead.
It serves plain http on 127.0.0.1: the point is the status codes, and Ray's download code
path (smart_open over requests) is the same for http:// and https:// URLs.

    python fake_github.py --port 8765          # prints the archive URL, serves until Ctrl-C
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import re
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
OWNER, REPO, SHA = "acme", "topic-service", "3f2c9a1d5e7b8c0f4a6d2e1b9c8a7f6e5d4c3b2a"
_ARCHIVE = re.compile(r"^/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)/archive/(?P<sha>[0-9a-f]{7,40})\.zip$")


def archive_bytes(source: Path, top: str) -> bytes:
    """The directory as GitHub zips it: everything under one `<repo>-<sha>/` directory."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo(top + "/", date_time=(2026, 1, 1, 0, 0, 0)), b"")
        for path in sorted(source.rglob("*")):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            info = zipfile.ZipInfo(f"{top}/{path.relative_to(source).as_posix()}", date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def request_token(headers) -> tuple[str | None, str]:
    """(token, how it came) from the Authorization header."""
    value = headers.get("Authorization") or ""
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(rest.strip()).decode().partition(":")
        except Exception:
            return None, "basic (unreadable)"
        return (password or user or None), "basic"
    if scheme.lower() in ("bearer", "token"):
        return rest.strip() or None, scheme.lower()
    return None, "none"


def make_server(port: int = 0, accept: list[str] | None = None, source: Path = HERE / "private_repo",
                owner: str = OWNER, repo: str = REPO, sha: str = SHA, quiet: bool = True) -> ThreadingHTTPServer:
    accepted = set(accept or ())
    archive = archive_bytes(source, f"{repo}-{sha}")
    log: list[dict] = []

    def allowed(token: str | None) -> bool:
        if token is None:
            return False
        return token in accepted if accepted else token.startswith("ghp_")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            token, how = request_token(self.headers)
            m = _ARCHIVE.match(self.path.split("?", 1)[0])
            ok = bool(m and m["owner"] == owner and m["repo"] == repo and sha.startswith(m["sha"]) and allowed(token))
            # Never log a token: its kind and length only.
            kind = "none" if token is None else ("classic" if token.startswith("ghp_") else
                                                  "fine-grained" if token.startswith("github_pat_") else "other")
            log.append({"path": self.path, "auth": how, "token_kind": kind, "status": 200 if ok else 404,
                        "user_agent": self.headers.get("User-Agent")})
            if not ok:
                body = b'{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}'
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Disposition", f"attachment; filename={repo}-{sha}.zip")
            self.send_header("Content-Length", str(len(archive)))
            self.end_headers()
            self.wfile.write(archive)

        def log_message(self, fmt, *args):
            if not quiet:
                entry = log[-1] if log else {}
                print(f"fake_github: {entry.get('status')} {entry.get('path')} auth={entry.get('auth')} "
                      f"token={entry.get('token_kind')}", file=sys.stderr)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.requests = log  # type: ignore[attr-defined]
    server.archive_path = f"/{owner}/{repo}/archive/{sha}.zip"  # type: ignore[attr-defined]
    return server


def start(port: int = 0, **kwargs) -> tuple[ThreadingHTTPServer, str]:
    """Serve in a background thread; returns (server, archive URL). server.shutdown() stops it."""
    server = make_server(port, **kwargs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}{server.archive_path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("FAKE_GITHUB_PORT", "8765")))
    parser.add_argument("--accept", action="append", default=[], metavar="TOKEN",
                        help="accept exactly these tokens (default: any classic ghp_ token)")
    args = parser.parse_args(argv)
    server = make_server(args.port, accept=args.accept, quiet=False)
    print(f"serving http://127.0.0.1:{server.server_address[1]}{server.archive_path}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
