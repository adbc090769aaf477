"""The Docker Engine API over the daemon's socket, with the standard library only.

Why not the docker SDK on this path: importing it (requests, urllib3, charset_normalizer)
costs ~80 ms, a third of a bare `docker run`, and every request pays requests' overhead on
top. A replay is a handful of calls (ping, two image inspects, create, attach, start,
wait, remove; a build when the image is missing), so they go straight to the socket here.
The SDK is still used where it earns its import: pulls, for registry credentials and their
helpers; see daemon.sdk_client.

Supports what the docker CLI supports locally: unix sockets and tcp (plain or TLS from
DOCKER_TLS_VERIFY / DOCKER_CERT_PATH or a context's tls dir). ssh:// and npipe:// hosts
are refused with a clear reason.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

# The API version spoken: the daemon's, capped here so a newer daemon keeps the semantics
# this module was written against (DeviceRequests need 1.40; 1.41 is Docker 20.10).
MAX_API = (1, 41)
MIN_API = (1, 40)


class EngineError(Exception):
    """A request the daemon answered with an error status (or could not be made)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status

    @property
    def not_found(self) -> bool:
        return self.status == 404


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _api_tuple(text: str) -> tuple[int, int] | None:
    try:
        major, minor = (int(p) for p in str(text).split(".")[:2])
        return major, minor
    except ValueError:
        return None


class Engine:
    """One daemon. A fresh connection per request: over a unix socket that costs tens of
    microseconds and never meets a connection the daemon already closed."""

    def __init__(self, host: str, *, tls_dir: Path | None = None, tls_verify: bool = False,
                 timeout: float = 120.0):
        self.host = host
        self.tls_dir, self.tls_verify = tls_dir, tls_verify  # for a watchdog that speaks to the same daemon
        self.endpoint = None  # where connect() found it (daemon.Endpoint), for the SDK's pulls
        self.timeout = timeout
        self.api = "1.41"
        parts = urlsplit(host)
        self._scheme = parts.scheme
        if parts.scheme == "unix":
            self._unix_path = parts.path or "/var/run/docker.sock"
        elif parts.scheme in ("tcp", "http", "https"):
            self._addr = (parts.hostname or "localhost", parts.port or (2376 if tls_dir or tls_verify else 2375))
        else:
            raise EngineError(f"{parts.scheme or host}:// Docker hosts are not supported by the docker backend "
                              "(unix sockets and tcp only)")
        self._ssl = None
        if parts.scheme == "https" or tls_dir is not None or tls_verify:
            import ssl

            ca = tls_dir / "ca.pem" if tls_dir else None
            ctx = ssl.create_default_context(cafile=str(ca) if ca and ca.exists() else None)
            if not tls_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if tls_dir and (tls_dir / "cert.pem").exists() and (tls_dir / "key.pem").exists():
                ctx.load_cert_chain(str(tls_dir / "cert.pem"), str(tls_dir / "key.pem"))
            self._ssl = ctx

    # -- plumbing -----------------------------------------------------------------------
    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        t = self.timeout if timeout is None else timeout
        if self._scheme == "unix":
            return _UnixConnection(self._unix_path, t)
        if self._ssl is not None:
            return http.client.HTTPSConnection(*self._addr, timeout=t, context=self._ssl)
        return http.client.HTTPConnection(*self._addr, timeout=t)

    def _url(self, path: str, params: dict | None) -> str:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        for key, value in query.items():
            if isinstance(value, bool):
                query[key] = "1" if value else "0"
            elif isinstance(value, dict):
                query[key] = json.dumps(value)
        return f"/v{self.api}{path}" + (f"?{urlencode(query)}" if query else "")

    def open(self, method: str, path: str, *, params: dict | None = None, body=None,
             headers: dict | None = None, timeout: float | None = None):
        """Send a request; returns (connection, response) with the body unread (streams)."""
        conn = self._connection(timeout)
        hdrs = {"Host": "docker", **(headers or {})}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, self._url(path, params), body=body, headers=hdrs)
            return conn, conn.getresponse()
        except BaseException:
            conn.close()
            raise

    def call(self, method: str, path: str, *, params: dict | None = None, body=None, headers: dict | None = None,
             timeout: float | None = None, ok=(200, 201, 204, 304)) -> bytes:
        """A request whose whole answer is read; EngineError for an error status."""
        conn, res = self.open(method, path, params=params, body=body, headers=headers, timeout=timeout)
        try:
            data = res.read()
        finally:
            conn.close()
        if res.status not in ok:
            raise EngineError(_error_message(data, res.status), res.status)
        return data

    def json(self, method: str, path: str, **kwargs):
        data = self.call(method, path, **kwargs)
        return json.loads(data) if data.strip() else None

    # -- the calls a replay makes ---------------------------------------------------------
    def ping(self, timeout: float) -> str:
        """Check the daemon answers and settle the API version; returns the daemon's."""
        conn = self._connection(timeout)
        try:
            conn.request("GET", "/_ping", headers={"Host": "docker"})
            res = conn.getresponse()
            body = res.read()
        finally:
            conn.close()
        if res.status != 200:
            raise EngineError(_error_message(body, res.status), res.status)
        theirs = _api_tuple(res.getheader("Api-Version") or "")
        if theirs is None:
            theirs = _api_tuple((self.json("GET", "/version", timeout=timeout) or {}).get("ApiVersion", ""))
        if theirs is None or theirs < MIN_API:
            raise EngineError(f"the Docker daemon speaks API {theirs and '.'.join(map(str, theirs))}, "
                              f"reprex needs {'.'.join(map(str, MIN_API))} (Docker 19.03) or newer")
        self.api = "%d.%d" % min(theirs, MAX_API)
        return "%d.%d" % theirs

    def info(self) -> dict:
        return self.json("GET", "/info") or {}

    def image(self, ref: str) -> dict | None:
        """`docker image inspect REF`, or None when there is no such image."""
        try:
            return self.json("GET", f"/images/{quote(ref, safe='/:@')}/json")
        except EngineError as exc:
            if exc.not_found:
                return None
            raise

    def create(self, config: dict, name: str | None = None) -> str:
        return self.json("POST", "/containers/create", params={"name": name}, body=config)["Id"]

    def start(self, cid: str) -> None:
        self.call("POST", f"/containers/{cid}/start")

    def wait(self, cid: str, timeout: float) -> int:
        """The exit status; socket.timeout when it runs past `timeout`."""
        result = self.json("POST", f"/containers/{cid}/wait", timeout=timeout) or {}
        error = (result.get("Error") or {}).get("Message")
        if error:
            raise EngineError(f"docker wait: {error}")
        return int(result.get("StatusCode", -1))

    def inspect(self, cid: str) -> dict:
        return self.json("GET", f"/containers/{cid}/json") or {}

    def build(self, context, size: int, params: dict, timeout: float):
        """`docker build` of a tar context (a file object of `size` bytes) with the classic
        builder: yields the daemon's progress messages ({"stream": ...}, {"error": ...}, ...)
        as they come. Socket reads time out after `timeout`."""
        conn = self._connection(timeout)
        try:
            conn.putrequest("POST", self._url("/build", params), skip_host=True)
            conn.putheader("Host", "docker")
            conn.putheader("Content-Type", "application/x-tar")
            conn.putheader("Content-Length", str(size))
            conn.endheaders()
            while True:
                block = context.read(1 << 16)
                if not block:
                    break
                conn.send(block)
            res = conn.getresponse()
            if res.status != 200:
                raise EngineError(_error_message(res.read(1 << 20), res.status), res.status)
            decoder = json.JSONDecoder()
            pending = ""
            while True:
                line = res.readline(1 << 20)
                if not line:
                    break
                pending += line.decode("utf-8", "replace")
                pending = pending.lstrip()
                while pending:
                    try:
                        message, end = decoder.raw_decode(pending)
                    except ValueError:
                        break  # the rest of this message is on a later line
                    pending = pending[end:].lstrip()
                    if isinstance(message, dict):
                        yield message
        finally:
            conn.close()

    def put_archive(self, cid: str, path: str, tar: bytes) -> None:
        """Unpack `tar` at `path` in a (created) container: `docker cp` without a host path."""
        self.call("PUT", f"/containers/{cid}/archive", params={"path": path}, body=tar,
                  headers={"Content-Type": "application/x-tar"})

    def kill(self, cid: str, signal: str = "SIGKILL") -> None:
        self.call("POST", f"/containers/{cid}/kill", params={"signal": signal})

    def remove(self, cid: str, *, force: bool = True, volumes: bool = True) -> None:
        self.call("DELETE", f"/containers/{cid}", params={"force": force, "v": volumes})

    def remove_soon(self, cid: str) -> None:
        """`remove` without waiting for it: the request is sent here and its answer read (and
        dropped) on a daemon thread. For a container nothing waits on whose files take seconds
        to delete (a build step's); the daemon finishes the removal even if we exit first."""
        import threading

        conn = self._connection(None)
        try:
            conn.request("DELETE", self._url(f"/containers/{cid}", {"force": True, "v": True}), headers={"Host": "docker"})
        except BaseException:
            conn.close()
            raise

        def answer() -> None:
            try:
                conn.getresponse().read()
            except Exception:  # noqa: S110  (nobody waits on it; a leftover is swept as a stopped container)
                pass
            finally:
                conn.close()

        threading.Thread(target=answer, name="reprex-remove", daemon=True).start()

    def containers(self, *, all: bool = True, labels: list[str] | None = None) -> list[dict]:
        filters = {"label": labels} if labels else None
        return self.json("GET", "/containers/json", params={"all": all, "filters": filters}) or []

    def hijack(self, method: str, path: str, *, params: dict | None = None, body: dict | None = None,
               timeout: float = 30.0) -> "Stream":
        """A request whose answer is a raw stream (attach, exec start): the response head is
        parsed here and the socket handed to a Stream, which reads it directly, so a read
        timeout can be survived (http.client's socket file refuses every read after one)."""
        conn = self._connection(timeout)
        try:
            conn.connect()
            sock = conn.sock
            payload = json.dumps(body).encode() if body is not None else b""
            head = (f"{method} {self._url(path, params)} HTTP/1.1\r\nHost: docker\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
            sock.sendall(head.encode() + payload)
            buf = bytearray()
            while b"\r\n\r\n" not in buf:
                data = sock.recv(1 << 16)
                if not data or len(buf) > 1 << 16:
                    raise EngineError(f"the daemon closed the stream of {path} before answering")
                buf += data
            end = buf.index(b"\r\n\r\n")
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            rest = bytes(buf[end + 4:])
            try:
                status = int(lines[0].split(" ", 2)[1])
            except (IndexError, ValueError):
                raise EngineError(f"odd answer to {path}: {lines[0][:80]!r}") from None
            if status not in (101, 200):
                headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
                length = headers.get("content-length") or "0"
                size = min(int(length), 1 << 20) if length.isdigit() else 0
                while len(rest) < size:
                    data = sock.recv(1 << 16)
                    if not data:
                        break
                    rest += data
                raise EngineError(_error_message(rest[:size] if size else rest, status), status)
        except BaseException:
            conn.close()
            raise
        return Stream(conn, rest)

    def attach(self, cid: str, timeout: float) -> "Stream":
        """stdout and stderr of a created container, from before it starts (nothing is missed),
        as the daemon's multiplexed stream."""
        return self.hijack("POST", f"/containers/{cid}/attach", params={"stream": True, "stdout": True, "stderr": True},
                           timeout=timeout)

    def exec_run(self, cid: str, cmd: list[str], *, user: str | None = None, timeout: float = 30.0,
                 limit: int = 1 << 16) -> tuple[int, bytes]:
        """Run `cmd` in a running container; (exit code, at most `limit` bytes of its output).
        TimeoutError after `timeout` seconds in all, however the output trickles in (a
        process in the container may hold the exec's stream open and feed it)."""
        import time

        deadline = time.monotonic() + timeout
        eid = self.json("POST", f"/containers/{cid}/exec", timeout=timeout,
                        body={"Cmd": cmd, "User": user or "", "AttachStdout": True, "AttachStderr": True})["Id"]
        stream = self.hijack("POST", f"/exec/{eid}/start", body={"Detach": False, "Tty": False},
                             timeout=max(0.1, deadline - time.monotonic()))
        out = bytearray()
        try:
            for _, data in stream.frames():
                if len(out) < limit:
                    out += data[:limit - len(out)]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{cmd[0]} in the container ran past {timeout:.0f}s")
                stream.settimeout(left)
        finally:
            stream.close()
        code = (self.json("GET", f"/exec/{eid}/json") or {}).get("ExitCode")
        return (int(code) if code is not None else -1), bytes(out)


class Stream:
    """The daemon's multiplexed stdout/stderr stream: 8-byte headers (stream, 0, 0, 0, size).

    Read from the socket into a buffer of our own, so a socket timeout between reads loses
    nothing and frames() can be called again to go on; frames are handed out in pieces of at
    most 64 KiB, whatever size a header claims."""

    STREAMS = {1: "stdout", 2: "stderr"}

    def __init__(self, conn: http.client.HTTPConnection, initial: bytes = b""):
        self.conn = conn
        self.buf = bytearray(initial)
        self.kind, self.left = "stdout", 0

    def settimeout(self, seconds: float | None) -> None:
        if self.conn.sock is not None:
            self.conn.sock.settimeout(seconds)

    def _fill(self) -> bool:
        data = self.conn.sock.recv(1 << 16) if self.conn.sock is not None else b""
        self.buf += data
        return bool(data)

    def frames(self):
        """(stream name, bytes) until the stream ends; socket.timeout propagates (call again
        to resume)."""
        while True:
            if self.left == 0:
                while len(self.buf) < 8:
                    if not self._fill():
                        return
                self.kind = self.STREAMS.get(self.buf[0], "stdout")
                self.left = struct.unpack(">I", bytes(self.buf[4:8]))[0]
                del self.buf[:8]
                continue
            if not self.buf and not self._fill():
                return
            take = min(self.left, len(self.buf), 1 << 16)
            data = bytes(self.buf[:take])
            del self.buf[:take]
            self.left -= take
            yield self.kind, data

    def close(self) -> None:
        self.conn.close()


def _error_message(data: bytes, status: int) -> str:
    try:
        message = json.loads(data).get("message")
    except (ValueError, AttributeError):
        message = None
    text = message or data.decode("utf-8", "replace").strip() or http.client.responses.get(status, "error")
    return f"{status}: {' '.join(str(text).split())}"


def tls_from_env() -> tuple[Path | None, bool]:
    """The docker CLI's DOCKER_TLS_VERIFY / DOCKER_CERT_PATH for a DOCKER_HOST endpoint."""
    verify = bool(os.environ.get("DOCKER_TLS_VERIFY"))
    cert_path = os.environ.get("DOCKER_CERT_PATH")
    if not verify and not cert_path:
        return None, False
    root = Path(cert_path) if cert_path else Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    return root, verify
