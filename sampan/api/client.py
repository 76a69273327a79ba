"""A client of the daemon's Engine API: HTTP/1.1 over its unix socket.

The ``sampan`` CLI is a client of the daemon, and it must start fast: so
this speaks HTTP itself over ``_socket`` instead of importing
``http.client`` (email.parser, ...), ``socket`` (enum) or ``urllib.parse``
(re) -- the Engine API needs little of HTTP:

  - one connection per request (``Connection: close``), bodies by
    Content-Length, chunked, or up to the end of the connection;
  - streamed responses (``Response.chunks``: pull progress, ``logs -f``);
  - hijacked connections (``Client.hijack``: attach answers ``101 UPGRADED``
    and the socket then carries docker's multiplexed stream);
  - docker's stream framing without a TTY: 8 bytes (1 stdout, 2 stderr;
    three zeros; a big-endian length), then the bytes (``demux``).

Errors: a socket nobody answers on is ``DaemonUnreachable`` (docker's
"Cannot connect ..." line); a status >= 400 is ``ApiError`` with the
daemon's ``{"message": ...}``, shown as docker shows it.

    client = Client("unix:///run/sampan/sampan.sock")
    client.json("GET", "/containers/json", {"all": "1"})  # [{...}, ...]
"""

from __future__ import annotations

import _socket

from sampan import _json
from sampan.errors import InvalidArgument, SampanError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from typing import Any

__all__ = [
    "API_PREFIX",
    "DEFAULT_HOST",
    "ApiError",
    "Client",
    "DaemonUnreachable",
    "Response",
    "demux",
    "quote",
    "socket_path",
]

DEFAULT_HOST = "unix:///run/sampan/sampan.sock"
API_PREFIX = "/v1.41"
UPLOAD_CHUNK = 256 << 10
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


class DaemonUnreachable(SampanError):
    """Nothing answers on the daemon's socket."""

    def __init__(self, host: str, reason: str = "") -> None:
        if reason == "permission denied":
            text = f"permission denied while trying to connect to the sampan daemon at {host}"
        else:
            text = f"Cannot connect to the sampan daemon at {host}. Is the sampan daemon running?"
        super().__init__(text)
        self.host = host


class ApiError(SampanError):
    """The daemon answered STATUS with docker's error document; str() is its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def socket_path(host: str) -> str:
    """The path of a ``unix:///PATH`` host (the only kind the daemon serves)."""
    scheme, sep, rest = host.partition("://")
    if not sep or scheme != "unix" or not rest.startswith("/"):
        raise InvalidArgument(f"-H {host}: expected unix:///path/to/socket")
    return rest


def quote(text: str) -> str:
    """Percent-encoding of a query value or path segment (urllib.parse.quote with safe='')."""
    data = text.encode()
    if all(b in _SAFE for b in data):
        return text
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in data)


def _query(params: Mapping[str, Any] | None) -> str:
    if not params:
        return ""
    parts = []
    for key, value in params.items():
        if value is None or value is False:
            continue
        if isinstance(value, list):  # a repeated parameter (build's t)
            parts += [f"{quote(key)}={quote(str(v))}" for v in value]
            continue
        text = "1" if value is True else value if isinstance(value, str) else str(value)
        parts.append(f"{quote(key)}={quote(text)}")
    return "?" + "&".join(parts) if parts else ""


class _Conn:
    """A connected socket with a read buffer: lines, exact reads, reads up to the end."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self._buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self._buf += data
        return True

    def readline(self, limit: int = 65536) -> bytes:
        while b"\n" not in self._buf:
            if len(self._buf) > limit or not self._fill():
                break
        line, sep, rest = self._buf.partition(b"\n")
        self._buf = rest
        return line + sep

    def read_exact(self, n: int) -> bytes:
        """N bytes, or fewer only at the end of the connection."""
        while len(self._buf) < n and self._fill():
            pass
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def read_some(self) -> bytes:
        """What is buffered, else one recv (b"" at the end)."""
        if not self._buf:
            self._fill()
        data, self._buf = self._buf, b""
        return data

    def close(self) -> None:
        self.sock.close()


class Response:
    """A response's status and headers (names lower-cased); the body read on demand."""

    def __init__(self, conn: _Conn, status: int, headers: dict[str, str]) -> None:
        self.conn = conn
        self.status = status
        self.headers = headers

    def chunks(self) -> Iterator[bytes]:
        """The body, piece by piece as it arrives; the connection is closed at its end."""
        conn = self.conn
        try:
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                while True:
                    size_line = conn.readline()
                    if not size_line:
                        return
                    size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        return
                    data = conn.read_exact(size)
                    conn.read_exact(2)
                    if data:
                        yield data
                    if len(data) < size:
                        return
            elif "content-length" in self.headers:
                left = int(self.headers["content-length"])
                while left > 0:
                    data = conn.read_some()
                    if not data:
                        return
                    data = data[:left]
                    left -= len(data)
                    yield data
            else:
                while data := conn.read_some():
                    yield data
        finally:
            conn.close()

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def json(self) -> Any:
        data = self.read()
        return _json.loads(data) if data.strip() else None

    def lines(self) -> Iterator[bytes]:
        """The body split into lines (JSON progress streams)."""
        rest = b""
        for data in self.chunks():
            *lines, rest = (rest + data).split(b"\n")
            yield from (line for line in lines if line.strip())
        if rest.strip():
            yield rest

    def close(self) -> None:
        self.conn.close()


class Client:
    """Requests to the daemon at HOST (``unix:///PATH``), under API version 1.41."""

    def __init__(self, host: str = DEFAULT_HOST) -> None:
        self.host = host
        self.path = socket_path(host)

    def _connect(self) -> _Conn:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            reason = "permission denied" if exc.errno == 13 else ""
            raise DaemonUnreachable(self.host, reason) from None
        return _Conn(sock)

    def send(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """One request; its response with the status and headers read, any status."""
        conn = self._connect()
        try:
            lines = [f"{method} {API_PREFIX}{path}{_query(query)} HTTP/1.1", "Host: api"]
            data = b""
            if body is not None:
                data = _json.dumps(body).encode()
                lines.append("Content-Type: application/json")
            lines.append(f"Content-Length: {len(data)}")
            extra = dict(headers or {})
            extra.setdefault("Connection", "close")
            lines += [f"{k}: {v}" for k, v in extra.items()]
            conn.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
            return _read_head(conn, self.host)
        except BaseException:
            conn.close()
            raise

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """One request; ApiError for a status of 400 or more."""
        response = self.send(method, path, query, body, headers)
        if response.status >= 400:
            raise _api_error(response)
        return response

    def json(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """The decoded JSON body of a successful request (None when empty)."""
        return self.request(method, path, query, body).json()

    def upload(
        self,
        path: str,
        query: Mapping[str, Any] | None,
        source: Any,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
    ) -> Response:
        """POST PATH with the bytes of SOURCE (a binary file, read to its end) as the
        body, chunked (load, import: stdin has no length); ApiError for a status >= 400.
        A daemon that answers before reading it all (a refusal) is heard, not a broken pipe."""
        conn = self._connect()
        try:
            lines = [f"{method} {API_PREFIX}{path}{_query(query)} HTTP/1.1", "Host: api",
                     "Content-Type: application/x-tar", "Transfer-Encoding: chunked"]  # fmt: skip
            extra = dict(headers or {})
            extra.setdefault("Connection", "close")
            lines += [f"{k}: {v}" for k, v in extra.items()]
            sock = conn.sock
            try:
                sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
                while data := source.read(UPLOAD_CHUNK):
                    sock.sendall(b"%x\r\n%b\r\n" % (len(data), data))
                sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the daemon stopped reading: its answer says why
            response = _read_head(conn, self.host)
        except BaseException:
            conn.close()
            raise
        if response.status >= 400:
            raise _api_error(response)
        return response

    def hijack(self, path: str, query: Mapping[str, Any] | None = None) -> Response:
        """POST PATH asking for an upgraded connection (attach): the stream is then
        ``demux(response.chunks())``, up to the end of the connection."""
        headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
        return self.request("POST", path, query, headers=headers)


def _read_head(conn: _Conn, host: str) -> Response:
    try:
        status_line = conn.readline()
    except ConnectionResetError:
        raise DaemonUnreachable(host) from None
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise SampanError(f"daemon at {host}: malformed response {status_line[:80]!r}")
    headers: dict[str, str] = {}
    while True:
        line = conn.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(conn, int(parts[1]), headers)


def _api_error(response: Response) -> ApiError:
    data = response.read()
    message = ""
    try:
        doc = _json.loads(data)
        if isinstance(doc, dict):
            message = str(doc.get("message", ""))
    except ValueError:
        message = data.decode(errors="replace").strip()
    return ApiError(response.status, message or f"status {response.status}")


def demux(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """docker's multiplexed stream in CHUNKS (a body, as it arrives) as (stream, bytes)
    frames; a frame cut off by the end of the stream is yielded as far as it came."""
    buf = bytearray()
    for data in chunks:
        buf += data  # amortised: each byte is copied a bounded number of times
        at = 0
        while len(buf) - at >= 8:
            size = int.from_bytes(buf[at + 4 : at + 8], "big")
            if len(buf) - at < 8 + size:
                break
            yield buf[at], bytes(buf[at + 8 : at + 8 + size])
            at += 8 + size
        del buf[:at]
    if len(buf) > 8:
        yield buf[0], bytes(buf[8:])
