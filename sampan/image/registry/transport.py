"""HTTP for the registry client: http.client with a keep-alive pool per host.

Why not urllib: a pull makes dozens of requests to one host, several at
once; urllib opens a connection per request and cannot stream a Range
resume cleanly.  Here each (scheme, host) keeps a small pool of idle
connections, a thread takes one per request and gives it back once the
response has been read to the end (a response closed early closes its
connection).  A request on a reused connection that finds it closed by the
server is retried once on a fresh one.

Schemes follow docker's rules: a registry is reached over verified HTTPS,
unless it is *insecure* -- a loopback host (127.0.0.0/8, localhost, ::1) or
one the user listed (host[:port] or a CIDR) -- in which case HTTPS without
verification is tried first and plain HTTP when the server does not speak
TLS; the answer is remembered for the transport's life.  Redirects are
followed only where the caller asks (blob downloads go to storage
backends); the Authorization header is dropped when the host changes.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Protocol

from sampan.image.registry.errors import RegistryError

__all__ = [
    "Response",
    "Transport",
    "is_insecure",
    "is_loopback",
    "join_url",
]

USER_AGENT = "sampan/0.1"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
POOL_SIZE = 8
CONNECT_TIMEOUT = 15.0
CHUNK = 256 * 1024


class Readable(Protocol):
    """A request body read in blocks; seekable so that a request can be re-sent."""

    def read(self, n: int = -1, /) -> bytes: ...
    def tell(self) -> int: ...
    def seek(self, pos: int, whence: int = 0, /) -> int: ...


Body = bytes | Readable | None
_DROPPED = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class _Connection(Protocol):
    sock: socket.socket | None
    timeout: float | None

    def connect(self) -> None: ...
    def request(
        self, method: str, url: str, body: Body = ..., headers: dict[str, str] = ...
    ) -> None: ...
    def getresponse(self) -> http.client.HTTPResponse: ...
    def close(self) -> None: ...


def is_loopback(host: str) -> bool:
    """HOST (with or without a port) names this machine's loopback."""
    name = _hostname(host)
    if name == "localhost" or name.endswith(".localhost") or name == "::1":
        return True
    parts = name.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() for p in parts)


def is_insecure(host: str, insecure_registries: Iterable[str] = ()) -> bool:
    """Docker's rule: loopback, or listed as host[:port], host, or a CIDR holding its address."""
    if is_loopback(host):
        return True
    name = _hostname(host)
    for entry in insecure_registries:
        entry = entry.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
        if entry in (host, name):
            return True
        if "/" in entry and _in_cidr(name, entry):
            return True
    return False


def _in_cidr(name: str, cidr: str) -> bool:
    import ipaddress

    try:
        network = ipaddress.ip_network(cidr, strict=False)
        return ipaddress.ip_address(name) in network
    except ValueError:
        return False


def _hostname(host: str) -> str:
    """HOST without its port: "[::1]:5000" -> "::1", "h:5000" -> "h"."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") > 1:  # a bare IPv6 address
        return host
    return host.partition(":")[0].lower()


def join_url(base: str, location: str) -> str:
    """LOCATION (absolute, or relative as registries send it) resolved against BASE."""
    return urllib.parse.urljoin(base, location)


def add_query(url: str, **params: str) -> str:
    """URL with PARAMS appended to its query (upload locations often carry one already)."""
    query = urllib.parse.urlencode(params)
    return f"{url}{'&' if '?' in url else '?'}{query}"


class Response:
    """A response being read; close() (or reading to the end) releases the connection.

    Use as a context manager.  ``read()`` reads the rest; ``iter_chunks()``
    streams it.  ``url`` is where the answer came from (after redirects).
    """

    def __init__(
        self,
        transport: Transport,
        key: tuple[str, str],
        conn: _Connection,
        raw: http.client.HTTPResponse,
        url: str,
        method: str,
    ) -> None:
        self._transport = transport
        self._key = key
        self._conn: _Connection | None = conn
        self._raw = raw
        self.url = url
        self.method = method
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers

    def header(self, name: str, default: str = "") -> str:
        value = self.headers.get(name)
        return value if value is not None else default

    @property
    def path(self) -> str:
        """The request's path and query, for messages."""
        parts = urllib.parse.urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def read(self, limit: int | None = None) -> bytes:
        """The rest of the body (at most LIMIT bytes; then the connection is dropped)."""
        if self._conn is None:
            return b""
        try:
            if limit is None:
                data = self._raw.read()
            else:
                data = self._raw.read(limit + 1)
                if len(data) > limit:
                    self.close()
                    return data[:limit]
                if self._raw.length:
                    raise http.client.IncompleteRead(data, self._raw.length)
        except BaseException:
            self.close()
            raise
        self._finish()
        return data

    def read_chunk(self, size: int = CHUNK) -> bytes:
        """Up to SIZE bytes; b"" at the end. Errors are the socket's/http.client's."""
        if self._conn is None:
            return b""
        try:
            data = self._raw.read(size)
            if not data and self._raw.length:  # EOF before Content-Length: a drop
                raise http.client.IncompleteRead(b"", self._raw.length)
        except BaseException:
            self.close()
            raise
        if not data:
            self._finish()
        return data

    def iter_chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        while True:
            data = self.read_chunk(size)
            if not data:
                return
            yield data

    def _finish(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._raw.will_close or not self._raw.isclosed():
            # will_close: the server ends the connection; not closed: unread body.
            self._raw.close()
            conn.close()
        else:
            self._transport._release(self._key, conn)

    def close(self) -> None:
        """Release the connection: back to the pool if the body was read, else closed."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._raw.isclosed() and not self._raw.will_close:
            self._transport._release(self._key, conn)
        else:
            self._raw.close()
            conn.close()

    def drain(self, limit: int = 1 << 16) -> None:
        """Read a small body to the end so the connection can be reused."""
        if self._conn is not None:
            self.read(limit)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Transport:
    """Connections to registries, shared by every thread of one pull or push.

    ``request(method, url, headers=..., body=...)`` returns a Response; a
    network failure is a RegistryError naming the host and what failed.
    """

    def __init__(
        self,
        *,
        insecure_registries: Iterable[str] = (),
        timeout: float = 60.0,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.insecure_registries = tuple(insecure_registries)
        self.timeout = timeout
        self.user_agent = user_agent
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str], list[_Connection]] = {}
        self._plain: set[str] = set()  # insecure hosts found to speak plain HTTP
        self._contexts: dict[bool, ssl.SSLContext] = {}

    def base_url(self, host: str) -> str:
        """The scheme and host a registry HOST is reached at (before any TLS fallback)."""
        if host in self._plain:
            return f"http://{host}"
        return f"https://{host}"

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: Body = None,
        follow_redirects: bool = False,
    ) -> Response:
        """Send one request (following redirects if asked); the caller closes the Response."""
        headers = dict(headers or {})
        headers.setdefault("User-Agent", self.user_agent)
        start = body.tell() if body is not None and not isinstance(body, bytes) else 0
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(method, url, headers, body, start)
            if not follow_redirects or response.status not in REDIRECTS:
                return response
            location = response.header("Location")
            response.drain()
            response.close()
            if not location:
                raise RegistryError(
                    f"registry redirect without a location for {method} {response.path}",
                    status=response.status,
                )
            new_url = join_url(url, location)
            if urllib.parse.urlsplit(new_url).netloc != urllib.parse.urlsplit(url).netloc:
                headers.pop("Authorization", None)
            if response.status == 303:
                method, body = "GET", None
            url = new_url
        raise RegistryError(f"too many redirects for {method} {urllib.parse.urlsplit(url).path}")

    def _send(
        self, method: str, url: str, headers: dict[str, str], body: Body, start: int
    ) -> Response:
        parts = urllib.parse.urlsplit(url)
        scheme, host = parts.scheme, parts.netloc
        if scheme == "https" and host in self._plain:
            scheme = "http"
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        if isinstance(body, bytes):
            headers.setdefault("Content-Length", str(len(body)))
        elif body is None and method in ("POST", "PUT", "PATCH"):
            headers.setdefault("Content-Length", "0")
        for attempt in range(3):
            key = (scheme, host)
            conn, reused = self._acquire(key)
            try:
                if conn.sock is None:
                    self._connect(conn)
                if body is not None and not isinstance(body, bytes):
                    body.seek(start)
                conn.request(method, target, body=body, headers=headers)
                raw = conn.getresponse()
            except ssl.SSLError as exc:
                conn.close()
                if scheme == "https" and self._insecure(host) and attempt == 0:
                    # An insecure registry that does not speak TLS: plain HTTP, as docker.
                    with self._lock:
                        self._plain.add(host)
                    scheme = "http"
                    continue
                raise RegistryError(f"cannot reach registry {host}: TLS failed: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if reused and attempt < 2 and not isinstance(exc, TimeoutError):
                    # The server closed an idle keep-alive connection; the others of the
                    # pool are likely stale too: start afresh.
                    self._drop_idle(key)
                    continue
                if not isinstance(exc, _DROPPED):
                    raise RegistryError(
                        f"cannot reach registry {host} ({scheme}://{host}{parts.path}): "
                        f"{_describe(exc)}"
                    ) from exc
                raise RegistryError(
                    f"registry {host} closed the connection during {method} {parts.path}: "
                    f"{_describe(exc)}"
                ) from exc
            real_url = f"{scheme}://{host}{target}"
            return Response(self, key, conn, raw, real_url, method)
        raise AssertionError("unreachable")

    def _connect(self, conn: _Connection) -> None:
        """Connect (and handshake) within CONNECT_TIMEOUT; then reads get the full timeout.

        An address that drops packets (no route out of this machine) fails in
        seconds, not after the minute a slow blob is allowed between reads.
        """
        conn.timeout = min(self.timeout, CONNECT_TIMEOUT)
        try:
            conn.connect()
        finally:
            conn.timeout = self.timeout
        if conn.sock is not None:
            conn.sock.settimeout(self.timeout)

    def _insecure(self, host: str) -> bool:
        return is_insecure(host, self.insecure_registries)

    def _acquire(self, key: tuple[str, str]) -> tuple[_Connection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        scheme, host = key
        conn: _Connection
        if scheme == "https":
            context = self._context(verify=not self._insecure(host))
            conn = http.client.HTTPSConnection(
                host, timeout=self.timeout, context=context, blocksize=CHUNK
            )
        elif scheme == "http":
            conn = http.client.HTTPConnection(host, timeout=self.timeout, blocksize=CHUNK)
        else:
            raise RegistryError(f"unsupported URL scheme {scheme!r} for registry {host}")
        return conn, False

    def _context(self, *, verify: bool) -> ssl.SSLContext:
        with self._lock:
            context = self._contexts.get(verify)
            if context is None:
                if verify:
                    context = ssl.create_default_context()
                else:
                    # No CA bundle to load (~0.2 s): nothing is verified anyway.
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                self._contexts[verify] = context
            return context

    def _release(self, key: tuple[str, str], conn: _Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < POOL_SIZE:
                idle.append(conn)
                return
        conn.close()

    def _drop_idle(self, key: tuple[str, str]) -> None:
        with self._lock:
            idle = self._idle.pop(key, [])
        for conn in idle:
            conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            pools, self._idle = self._idle, {}
        for idle in pools.values():
            for conn in idle:
                conn.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"name resolution failed ({exc.strerror or exc})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
