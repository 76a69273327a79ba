"""HTTP/1.1 over a unix socket, as much of it as the Engine API uses.

One thread per connection (socketserver's ThreadingUnixStreamServer);
http.server's request-line and header parser; everything after the headers
is ours, because the API needs what BaseHTTPRequestHandler does not give:

  - request bodies of unknown length (``Transfer-Encoding: chunked``: the
    docker CLI streams ``load`` and ``import`` tarballs that way), read
    lazily so a tarball never has to fit in memory;
  - streamed responses (chunked), flushed per write, for pull/push progress
    and ``save``;
  - keep-alive: a body the handler did not read is drained before the next
    request (or the connection closed when that would take long);
  - hijacking: ``Request.hijack()`` hands the raw socket to the handler
    (attach/exec answer ``101 UPGRADED`` and speak their own framing).

A handler is ``handler(request) -> None``; it answers with ``send``,
``send_json`` or ``stream``.  An exception before anything was sent becomes
docker's error response (errors.py); after, the connection is closed.
"""

from __future__ import annotations

import http.server
import os
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

from sampan import _json
from sampan.api.errors import BadRequest, error_body, status_of
from sampan.api.router import API_VERSION, MIN_API_VERSION, Router, split_version

TYPE_CHECKING = False
if TYPE_CHECKING:
    from io import BufferedIOBase
    from typing import Any, BinaryIO

    from sampan.engine.daemon import Engine

__all__ = ["ApiServer", "Request", "parse_json"]

SERVER_NAME = "sampan"
DRAIN_LIMIT = 1 << 20  # more unread body than this: close instead of draining
_FALSE = ("", "0", "no", "false", "none")


def parse_json(data: bytes | str, what: str) -> Any:
    """Client input as JSON, or BadRequest naming WHAT.

    The daemon parses untrusted input with the stdlib's json (its import
    cost does not matter in a long-running process; sampan._json's scanner
    is tuned for sampan's own files).
    """
    import json

    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"{what}: invalid JSON: {exc}") from None


# A create request is a few kB; this bounds what one request can make the daemon hold.
MAX_JSON_BODY = 16 << 20


class _ChunkedReader:
    """A chunked request body as a file: read(n) / read()."""

    def __init__(self, rfile: BufferedIOBase) -> None:
        self._rfile = rfile
        self._left = 0  # bytes left in the current chunk
        self.done = False

    def _next_chunk(self) -> None:
        line = self._rfile.readline(1 << 16)
        if not line:
            raise BadRequest("request body: connection closed inside a chunked body")
        size_text = line.split(b";", 1)[0].strip()
        try:
            self._left = int(size_text, 16)
        except ValueError:
            raise BadRequest(f"request body: bad chunk size {size_text[:20]!r}") from None
        if self._left == 0:
            while self._rfile.readline(1 << 16) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            self.done = True

    def read(self, n: int = -1) -> bytes:
        parts: list[bytes] = []
        want = n if n is not None and n >= 0 else -1
        while not self.done and want != 0:
            if self._left == 0:
                self._next_chunk()
                continue
            take = self._left if want < 0 else min(want, self._left)
            data = self._rfile.read(take)
            if not data:
                raise BadRequest("request body: connection closed inside a chunk")
            parts.append(data)
            self._left -= len(data)
            if want > 0:
                want -= len(data)
            if self._left == 0:
                self._rfile.readline(16)  # the CRLF after the chunk
            if want < 0:
                continue
        return b"".join(parts)

    def unread_is_small(self) -> bool:
        return self.done


class _LengthReader:
    """A body of Content-Length bytes."""

    def __init__(self, rfile: BufferedIOBase, length: int) -> None:
        self._rfile = rfile
        self.left = length

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        take = self.left if n is None or n < 0 else min(n, self.left)
        data = self._rfile.read(take)
        self.left -= len(data)
        if not data:
            self.left = 0
        return data

    @property
    def done(self) -> bool:
        return self.left <= 0


class _ChunkedWriter:
    """A streamed response body: every write is a chunk, flushed at once."""

    def __init__(self, wfile: BufferedIOBase) -> None:
        self._wfile = wfile
        self._lock = threading.Lock()
        self.closed = False

    def write(self, data: bytes) -> int:
        if not data:
            return 0
        with self._lock:
            if self.closed:
                raise BrokenPipeError("response already finished")
            self._wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
            self._wfile.flush()
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self._wfile.write(b"0\r\n\r\n")
                self._wfile.flush()


class Request:
    """One API call: what was asked, and the means to answer it."""

    def __init__(
        self,
        handler: _Handler,
        method: str,
        path: str,
        params: dict[str, list[str]],
        version: str,
    ) -> None:
        self._handler = handler
        self.method = method
        self.path = path  # without the /vX.Y prefix
        self.params = params
        self.version = version
        self.vars: dict[str, str] = {}
        self.headers = handler.headers
        self.engine: Engine = handler.server.engine  # type: ignore[attr-defined]
        self.status = 0  # what was sent (0: nothing yet)
        self.hijacked = False
        self._body: _ChunkedReader | _LengthReader | None = None

    # -- the request ------------------------------------------------------------------

    def query(self, name: str, default: str = "") -> str:
        values = self.params.get(name)
        return values[-1] if values else default

    def query_all(self, name: str) -> list[str]:
        return list(self.params.get(name, []))

    def flag(self, name: str) -> bool:
        """docker's boolean query values: absent, "", 0, no, false, none are false."""
        return self.query(name).strip().lower() not in _FALSE

    def query_int(self, name: str, default: int = 0) -> int:
        text = self.query(name)
        if not text:
            return default
        try:
            return int(text)
        except ValueError:
            raise BadRequest(f"{name}: invalid integer {text!r}") from None

    def filters(self, name: str = "filters") -> dict[str, list[str]]:
        """docker's filters parameter: {"key": ["v", ...]} or the older {"key": {"v": true}}."""
        text = self.query(name)
        if not text:
            return {}
        doc = parse_json(text, name)
        if not isinstance(doc, dict):
            raise BadRequest(f"{name}: expected a JSON object")
        out: dict[str, list[str]] = {}
        for key, value in doc.items():
            if isinstance(value, dict):
                out[key] = [str(k) for k, on in value.items() if on]
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                out[key] = list(value)
            else:
                raise BadRequest(f"{name}: {key}: expected a list of strings")
        return out

    @property
    def body(self) -> BinaryIO:
        """The request body as a file (empty when there is none)."""
        if self._body is None:
            self._body = self._handler.body_reader()
        return self._body  # type: ignore[return-value]

    def json_body(self, required: bool = True) -> Any:
        data = self.body.read(MAX_JSON_BODY + 1)
        if len(data) > MAX_JSON_BODY:
            raise BadRequest(f"request body: a JSON document over {MAX_JSON_BODY} bytes")
        if not data.strip():
            if required:
                raise BadRequest("request body: a JSON document is required")
            return None
        return parse_json(data, "request body")

    # -- the answer -------------------------------------------------------------------

    def _start(self, status: int, headers: dict[str, str]) -> None:
        if self.status:
            raise RuntimeError(f"{self.method} {self.path}: answered twice")
        self.status = status
        self._handler.write_head(status, headers)

    def send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        all_headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        all_headers.update(headers or {})
        self._start(status, all_headers)
        if body and self.method != "HEAD":
            self._handler.wfile.write(body)
        self._handler.wfile.flush()

    def send_json(self, status: int, doc: Any) -> None:
        self.send(status, (_json.dumps(doc) + "\n").encode(), "application/json")

    def stream(
        self,
        status: int = 200,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> _ChunkedWriter:
        """Start a chunked response (with HEADERS besides); write to it, then close it."""
        all_headers = {"Content-Type": content_type, "Transfer-Encoding": "chunked"}
        all_headers.update(headers or {})
        self._start(status, all_headers)
        return _ChunkedWriter(self._handler.wfile)

    def client_gone(self, half_close: bool = True) -> bool:
        """Whether the client closed its connection, for a handler that streams.

        With HALF_CLOSE, a client that only shut its sending side (an end of file
        waiting to be read) has gone too; without it, only a hang-up counts (``logs -f``
        clients half-close and keep reading).
        """
        import select

        sock = self._handler.connection
        poller = select.poll()
        mask = select.POLLHUP | select.POLLERR
        poller.register(sock, mask | (select.POLLIN if half_close else 0))
        for _, events in poller.poll(0):
            if events & mask:
                return True
            if events & select.POLLIN:
                try:
                    return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"")
                except BlockingIOError:
                    return False
                except OSError:
                    return True
        return False

    def hijack(self, status: int = 101, headers: dict[str, str] | None = None) -> socket.socket:
        """Take over the connection: the status line and headers are sent, then the socket
        is the caller's (docker's attach/exec: 101 with Upgrade: tcp, or 200)."""
        all_headers = {"Content-Type": "application/vnd.docker.raw-stream"}
        if status == 101:
            all_headers.update({"Connection": "Upgrade", "Upgrade": "tcp"})
        all_headers.update(headers or {})
        self._start(status, all_headers)
        self._handler.wfile.flush()
        self.hijacked = True
        self._handler.close_connection = True
        return self._handler.connection  # type: ignore[no-any-return]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = SERVER_NAME
    sys_version = ""

    def body_reader(self) -> _ChunkedReader | _LengthReader:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _ChunkedReader(self.rfile)
        length_text = self.headers.get("Content-Length", "0") or "0"
        try:
            length = int(length_text)
        except ValueError:
            raise BadRequest(f"Content-Length: invalid {length_text!r}") from None
        if length < 0:
            raise BadRequest(f"Content-Length: negative {length}")
        return _LengthReader(self.rfile, length)

    def write_head(self, status: int, headers: dict[str, str]) -> None:
        reason = self.responses.get(status, ("",))[0] if status != 101 else "UPGRADED"
        lines = [f"HTTP/1.1 {status} {reason}"]
        base = {
            "Api-Version": API_VERSION,
            "Docker-Experimental": "false",
            "Ostype": "linux",
            "Server": f"{SERVER_NAME}/{_version()} (linux)",
            "Date": self.date_time_string(),
        }
        base.update(headers)
        lines += [f"{k}: {v}" for k, v in base.items()]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        self._dispatch()

    def _dispatch(self) -> None:
        server: ApiServer = self.server  # type: ignore[assignment]
        started = time.monotonic()
        url = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        raw_path = urllib.parse.unquote(url.path)
        version, path = split_version(raw_path)
        request = Request(self, self.command, path, params, version or API_VERSION)
        try:
            if version is not None:
                _check_version(version)
            handler, request.vars = server.router.match(self.command, path)
            handler(request)
        except Exception as exc:
            self._failed(request, exc)
        if request.hijacked:
            server.log(f"{self.command} {self.path} {request.status} (hijacked)")
            return
        if not self.close_connection:
            self._drain(request)
        elapsed = (time.monotonic() - started) * 1000
        server.log(f"{self.command} {self.path} {request.status} {elapsed:.1f}ms")

    def _failed(self, request: Request, exc: Exception) -> None:
        server: ApiServer = self.server  # type: ignore[assignment]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            self.close_connection = True
            return
        status = status_of(exc)
        if status >= 500 and server.debug:
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        if request.status:  # too late for a status: end the connection
            server.log(f"{request.method} {request.path}: failed after the answer began: {exc}")
            self.close_connection = True
            return
        try:
            request.send_json(status, error_body(exc))
        except OSError:
            self.close_connection = True

    def _drain(self, request: Request) -> None:
        """Read what the handler left of the body, so the next request starts clean."""
        try:
            body = request.body
            left = DRAIN_LIMIT
            while left > 0:
                data = body.read(min(left, 65536))
                if not data:
                    return
                left -= len(data)
            self.close_connection = True
        except (OSError, BadRequest):
            self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.engine.release_thread()  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request comes from _dispatch


def _check_version(version: str) -> None:
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split("."))

    if key(version) > key(API_VERSION):
        raise BadRequest(
            f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )
    if key(version) < key(MIN_API_VERSION):
        raise BadRequest(
            f"client version {version} is too old. Minimum supported API version is "
            f"{MIN_API_VERSION}, please upgrade your client to a newer version"
        )


def _version() -> str:
    from sampan import __version__

    return __version__


class ApiServer(socketserver.ThreadingUnixStreamServer):
    """The API on a unix socket at PATH, answering from ENGINE's services."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = False
    # The docker CLI acts on many objects at once (`rm -f $(docker ps -aq)` opens one
    # connection per id): socketserver's backlog of 5 refused the rest on a unix socket.
    request_queue_size = 512

    def __init__(self, engine: Engine, path: str, router: Router, *, debug: bool = False) -> None:
        self.engine = engine
        self.router = router
        self.debug = debug
        self.socket_path = path
        super().__init__(path, _Handler, bind_and_activate=False)
        try:
            old = os.umask(0o117)  # the socket is 0660 from its first moment
            try:
                self.server_bind()
            finally:
                os.umask(old)
            os.chmod(path, 0o660)
            if os.geteuid() == 0:
                os.chown(path, 0, 0)
            self.server_activate()
        except BaseException:
            self.server_close()
            raise

    def log(self, line: str) -> None:
        if self.debug:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            sys.stderr.write(f"{stamp} debug: {line}\n")
            sys.stderr.flush()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)
