"""The embedded DNS server of user networks: container names answered, other names forwarded.

The daemon listens on UDP and TCP port 53 of each user network's gateway
(containers get ``nameserver <gateway>``), in its own network namespace: one
socket pair per network serves all its containers, and nothing is set up per
container on the start path.  The engine answers names through two callbacks,
called with the gateway address the query came to, so each network sees only
its own names:

    server = DnsServer(resolve, ["10.0.0.2", "10.0.0.3:5353"], reverse=reverse)
    server.listen("172.20.0.1")         # idempotent; Conflict if the port is taken
    ...
    server.unlisten("172.20.0.1")
    server.close()

Both callbacks run on the server's threads (the loop and the TCP threads), so
they must be thread-safe and fast: an in-memory lookup, never I/O.

How queries are answered (``DnsServer.respond`` is the decision, without I/O):

- A name the resolver knows: its A records with TTL 600 (docker's) for A and
  ANY; NOERROR with no records for AAAA and other types (the name exists, it
  has no such record; NXDOMAIN would tell the client the name does not exist
  at all).  A PTR query for an address ``reverse`` knows: that name.
- An unknown name of one label: NXDOMAIN at once, never forwarded.  On a user
  network a single label is a container name, an alias, or nothing: the
  world's DNS has no such names (only TLDs, which have no addresses), so
  forwarding would only add the upstream's round trip to every miss -- and
  misses are frequent, as clients try short names before and after their
  search domains.  It also keeps container names from leaking upstream.
- Any other name: forwarded, as the client sent it but under a fresh random
  id and from a fresh random port (as a resolver must, against spoofing), to
  the upstreams in order, each given ``timeout`` seconds; the answer is
  relayed with the client's id restored.  An upstream that does not answer,
  refuses or fails (SERVFAIL, REFUSED, NOTIMP) passes the query to the next.
- No upstream configured, or none able to answer: SERVFAIL, as docker does.
  SERVFAIL is the "temporary failure" both C libraries understand: glibc
  reports EAI_AGAIN after trying its other nameservers and goes on with its
  search list, and musl retries the server at once.  REFUSED is worse for
  both: glibc turns it into a non-recoverable EAI_FAIL that stops the search
  list, and musl ignores a refusal entirely, waiting out its whole timeout.

Forwarding never blocks the loop: each forwarded query has its own connected
UDP socket in the same selector and a deadline in a heap.  TCP clients (who
retry there after a truncated answer) get a small thread per connection,
which forwards over TCP too -- an answer too large for UDP needs it.  Bad
packets get FORMERR or NOTIMP (see dns_wire), responses sent to us get
nothing; nothing is logged per query.
"""

from __future__ import annotations

import errno
import heapq
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from functools import partial

from sampan.errors import Conflict, InvalidArgument
from sampan.network import dns_wire as wire

__all__ = ["TTL", "DnsServer", "Resolver", "ReverseResolver", "parse_upstream"]

Resolver = Callable[[str, str], "list[str] | None"]
"""resolve(listen_address, name) -> IPv4 addresses of NAME on the network served at
LISTEN_ADDRESS (NAME lower-cased, without the trailing dot); None: not a name of it."""

ReverseResolver = Callable[[str, str], "str | None"]
"""reverse(listen_address, ip) -> the name of IP on that network, None if unknown."""

TTL = 600  # seconds, docker's TTL for container names
TCP_IDLE = 10.0  # seconds a TCP client may stay silent before we hang up
MAX_PENDING = 1024  # forwarded UDP queries in flight; SERVFAIL beyond (one fd each)
MAX_TCP = 64  # TCP connections served at once; more are closed at once
UDP_BUFFER = 1 << 20  # bytes queued on a listening socket: a burst of queries, not drops
RECV_BURST = 64  # datagrams read per readiness event, so no socket starves the others
ACCEPT_PAUSE = 0.5  # seconds the TCP listener rests after running out of descriptors
_FAILED = (wire.SERVFAIL, wire.REFUSED, wire.NOTIMP)  # upstream answers that try the next
_ID = struct.Struct("!H")

Sockaddr = tuple[str, int]


def parse_upstream(text: str) -> tuple[int, Sockaddr]:
    """ "IP", "IP:PORT", "[IPv6]:PORT" or a bare IPv6 address -> (family, sockaddr); port 53."""
    host, port = text, "53"
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidArgument(f"dns upstream: invalid address {text!r}")
        port = rest[1:] or port
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not (port.isdigit() and port.isascii() and 0 < int(port) < 65536):
        raise InvalidArgument(f"dns upstream: invalid port in {text!r}")
    family, host = _normalise(host, f"dns upstream: invalid address {text!r}")
    return family, (host, int(port))


def _normalise(address: str, message: str) -> tuple[int, str]:
    """(family, canonical text) of an IP address; InvalidArgument(MESSAGE) otherwise."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        return family, socket.inet_ntop(family, socket.inet_pton(family, address))
    except (OSError, ValueError):
        raise InvalidArgument(message) from None


def _new_id() -> int:
    return int.from_bytes(os.urandom(2), "big")


class _Listener:
    """The UDP and TCP sockets on one address, and the TCP connections accepted there."""

    __slots__ = ("address", "closed", "conns", "port", "tcp", "udp")

    def __init__(self, address: str, port: int, udp: socket.socket, tcp: socket.socket) -> None:
        self.address = address
        self.port = port
        self.udp = udp
        self.tcp = tcp
        self.conns: set[socket.socket] = set()
        self.closed = False


class _Forward:
    """A UDP query on its way through the upstreams."""

    __slots__ = ("attempt", "client", "data", "done", "ident", "index", "listener", "query",
                 "sock", "upstreams")  # fmt: skip

    def __init__(
        self,
        query: wire.Query,
        data: bytes,
        client: Sockaddr,
        listener: _Listener,
        upstreams: tuple[tuple[int, Sockaddr], ...],
    ) -> None:
        self.query = query
        self.data = data
        self.client = client
        self.listener = listener
        self.upstreams = upstreams
        self.index = 0  # the next upstream to try
        self.attempt = 0  # bumped per upstream; a timer of an older attempt is stale
        self.ident = 0
        self.sock: socket.socket | None = None
        self.done = False


_Timer = tuple[float, int, Callable[[], None]]


class DnsServer:
    """The daemon's DNS server: one loop thread for every address it listens on."""

    def __init__(
        self,
        resolve: Resolver,
        upstreams: list[str],
        timeout: float = 2.0,
        reverse: ReverseResolver | None = None,
    ) -> None:
        if not timeout > 0:
            raise InvalidArgument(f"dns timeout: must be positive, not {timeout!r}")
        self._resolve = resolve
        self._reverse = reverse
        self._timeout = timeout
        self._upstreams = tuple(parse_upstream(u) for u in upstreams)
        self._lock = threading.Lock()
        self._listeners: dict[str, _Listener] = {}
        self._own: set[Sockaddr] = set()  # where we listen: never forward there
        self._commands: list[tuple[Callable[[], None], threading.Event]] = []
        self._selector: selectors.BaseSelector | None = None
        self._wake_r = self._wake_w = -1
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        # The loop thread's own state.
        self._pending: set[_Forward] = set()
        self._timers: list[_Timer] = []
        self._seq = 0
        self._tcp_count = 0

    # -- the interface -----------------------------------------------------------------------

    def listen(self, address: str, port: int = 53) -> None:
        """Serve UDP and TCP on ADDRESS:PORT (PORT 0: a free port, see ``listening``).

        Idempotent for the same address and port.  Conflict if the address is
        served on another port or the port is taken; InvalidArgument if
        ADDRESS is not an IP address of this host.
        """
        family, address = _normalise(address, f"dns listen: invalid address {address!r}")
        if not 0 <= port < 65536:
            raise InvalidArgument(f"dns listen: invalid port {port}")
        with self._lock:
            if self._closed:
                raise Conflict("dns server: closed")
            current = self._listeners.get(address)
            if current is not None:
                if port in (0, current.port):
                    return
                raise Conflict(f"dns: already listening on {address}:{current.port}")
            udp, tcp = _bind_pair(family, address, port)
            listener = _Listener(address, udp.getsockname()[1], udp, tcp)
            self._listeners[address] = listener
            self._own.add((address, listener.port))
            self._start()
        self._call(lambda: self._register(listener))

    def unlisten(self, address: str) -> None:
        """Stop serving ADDRESS: its ports are closed when this returns.  No-op if not served."""
        try:
            address = _normalise(address, "")[1]
        except InvalidArgument:
            return
        with self._lock:
            listener = self._listeners.pop(address, None)
            if listener is None:
                return
            self._own.discard((address, listener.port))
            conns = list(listener.conns)
        self._call(lambda: self._drop(listener))
        for conn in conns:
            _shutdown(conn)

    def set_upstreams(self, upstreams: list[str]) -> None:
        """Forward to UPSTREAMS from now on (queries already in flight keep the old ones)."""
        self._upstreams = tuple(parse_upstream(u) for u in upstreams)

    def listening(self) -> dict[str, int]:
        """The addresses served and their ports."""
        with self._lock:
            return {a: lst.port for a, lst in self._listeners.items()}

    def close(self) -> None:
        """Stop the loop and close every socket.  Idempotent; the server cannot listen again."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            listeners = list(self._listeners.values())
            conns = [conn for listener in listeners for conn in listener.conns]
            self._listeners.clear()
            self._own.clear()
            thread = self._thread
        if thread is not None:
            self._stopping = True
            self._wake()
            thread.join(timeout=10)
        for listener in listeners:
            listener.closed = True
            listener.udp.close()
            listener.tcp.close()
        for conn in conns:
            _shutdown(conn)
        for forward in list(self._pending):
            self._release(forward)
        if self._selector is not None:
            self._selector.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def __enter__(self) -> DnsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the decision --------------------------------------------------------------------------

    def respond(self, data: bytes, address: str, tcp: bool = False) -> bytes | wire.Query | None:
        """What to do with query DATA received at ADDRESS: a reply to send, the parsed
        Query when it must be forwarded, or None to send nothing.  No I/O."""
        try:
            query = wire.parse_query(data)
        except wire.QueryError as exc:
            return None if exc.rcode is None else wire.error_reply(data, exc.rcode)
        limit = 0xFFFF if tcp else query.max_udp
        if query.edns_version:
            return wire.build_reply(query, wire.BADVERS, limit=limit)
        try:
            return self._answer(query, address, limit)
        except Exception:  # a failing callback must not take the server down
            return wire.build_reply(query, wire.SERVFAIL, authoritative=False, limit=limit)

    def _answer(self, query: wire.Query, address: str, limit: int) -> bytes | wire.Query:
        name = query.name
        local = query.qclass in (wire.CLASS_IN, wire.CLASS_ANY) and bool(name)
        if local and query.qtype == wire.TYPE_PTR and self._reverse is not None:
            ip = wire.ptr_address(name)
            target = self._reverse(address, ip) if ip is not None else None
            rdata = _encode_target(target) if target else None
            if rdata is not None:
                record = (wire.TYPE_PTR, rdata)
                return wire.build_reply(query, wire.NOERROR, [record], ttl=TTL, limit=limit)
        addresses = self._resolve(address, name) if local else None
        if addresses is not None:
            records: list[tuple[int, bytes]] = []
            if query.qtype in (wire.TYPE_A, wire.TYPE_ANY):
                records = [(wire.TYPE_A, packed) for packed in map(_pack_ipv4, addresses) if packed]
            return wire.build_reply(query, wire.NOERROR, records, ttl=TTL, limit=limit)
        if len(query.labels) == 1:
            return wire.build_reply(query, wire.NXDOMAIN, limit=limit)
        if not self._upstreams:
            return wire.build_reply(query, wire.SERVFAIL, authoritative=False, limit=limit)
        return query

    # -- the loop ------------------------------------------------------------------------------

    def _start(self) -> None:
        """Start the loop thread (under the lock, on the first listen)."""
        if self._thread is not None:
            return
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, (self._on_wake, None))
        self._thread = threading.Thread(target=self._run, name="sampan-dns", daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # a full pipe wakes the loop just as well

    def _call(self, fn: Callable[[], None]) -> None:
        """Run FN on the loop thread (which owns the selector) and wait for it."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            fn()
            return
        done = threading.Event()
        with self._lock:
            self._commands.append((fn, done))
        self._wake()
        while not done.wait(1.0):
            if not thread.is_alive():
                fn()
                return

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None
        while not self._stopping:
            try:
                timeout = None
                if self._timers:
                    timeout = max(0.0, self._timers[0][0] - time.monotonic())
                for key, _ in selector.select(timeout):
                    handler, arg = key.data
                    try:
                        handler(arg)
                    except Exception:
                        pass  # one bad event never stops the others
                self._expire()
            except Exception:
                time.sleep(0.01)  # never die, never spin
        self._on_wake(None)  # release anyone waiting on a command

    def _on_wake(self, _: object) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except (BlockingIOError, OSError):
            pass
        with self._lock:
            commands, self._commands = self._commands, []
        for fn, done in commands:
            try:
                fn()
            except Exception:
                pass  # the caller sees the effect (or its absence), and must not wait forever
            finally:
                done.set()

    def _add_timer(self, delay: float, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (time.monotonic() + delay, self._seq, fn))

    def _expire(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            fn = heapq.heappop(self._timers)[2]
            try:
                fn()
            except Exception:
                pass

    def _register(self, listener: _Listener) -> None:
        assert self._selector is not None
        self._selector.register(listener.udp, selectors.EVENT_READ, (self._on_udp, listener))
        self._selector.register(listener.tcp, selectors.EVENT_READ, (self._on_accept, listener))

    def _drop(self, listener: _Listener) -> None:
        listener.closed = True
        for sock in (listener.udp, listener.tcp):
            self._unregister(sock)
            sock.close()

    def _unregister(self, sock: socket.socket) -> None:
        assert self._selector is not None
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    # -- UDP -----------------------------------------------------------------------------------

    def _on_udp(self, listener: _Listener) -> None:
        sock = listener.udp
        for _ in range(RECV_BURST):
            try:
                data, client = sock.recvfrom(4096)
            except OSError:
                return  # drained (EAGAIN), or an ICMP error of an earlier reply
            result = self.respond(data, listener.address)
            if isinstance(result, bytes):
                _send(sock, result, client)
            elif result is not None:
                self._forward(result, data, client, listener)

    def _forward(
        self, query: wire.Query, data: bytes, client: Sockaddr, listener: _Listener
    ) -> None:
        if len(self._pending) >= MAX_PENDING:
            reply = wire.build_reply(query, wire.SERVFAIL, authoritative=False)
            _send(listener.udp, reply, client)
            return
        forward = _Forward(query, data, client, listener, self._upstreams)
        self._pending.add(forward)
        self._next_upstream(forward)

    def _next_upstream(self, forward: _Forward) -> None:
        """Send FORWARD to its next upstream, or answer SERVFAIL when none is left."""
        assert self._selector is not None
        self._close_socket(forward)
        while forward.index < len(forward.upstreams):
            family, upstream = forward.upstreams[forward.index]
            forward.index += 1
            if upstream in self._own:
                continue  # that would be a loop through ourselves
            ident = _new_id()
            try:
                sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            except OSError:
                break  # out of descriptors: fail now rather than later
            try:
                sock.setblocking(False)
                sock.connect(upstream)  # replies from anywhere else are dropped by the kernel
                sock.send(_ID.pack(ident) + forward.data[2:])
            except OSError:
                sock.close()
                continue
            forward.sock = sock
            forward.ident = ident
            forward.attempt += 1
            self._selector.register(sock, selectors.EVENT_READ, (self._on_upstream, forward))
            self._add_timer(self._timeout, partial(self._on_timeout, forward, forward.attempt))
            return
        reply = wire.build_reply(forward.query, wire.SERVFAIL, authoritative=False)
        self._finish(forward, reply)

    def _on_upstream(self, forward: _Forward) -> None:
        sock = forward.sock
        if sock is None or forward.done:
            return
        for _ in range(8):
            try:
                reply = sock.recv(0xFFFF)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP port unreachable and the like: no server there
                self._next_upstream(forward)
                return
            if not wire.reply_matches(reply, forward.query, forward.ident):
                continue
            if reply[3] & 0xF in _FAILED:
                self._next_upstream(forward)
            else:
                self._finish(forward, _ID.pack(forward.query.ident) + reply[2:])
            return

    def _on_timeout(self, forward: _Forward, attempt: int) -> None:
        if not forward.done and forward.attempt == attempt:
            self._next_upstream(forward)

    def _finish(self, forward: _Forward, reply: bytes) -> None:
        self._release(forward)
        if not forward.listener.closed:
            _send(forward.listener.udp, reply, forward.client)

    def _release(self, forward: _Forward) -> None:
        forward.done = True
        self._close_socket(forward)
        self._pending.discard(forward)

    def _close_socket(self, forward: _Forward) -> None:
        if forward.sock is not None:
            if self._selector is not None:
                self._unregister(forward.sock)
            forward.sock.close()
            forward.sock = None

    # -- TCP -----------------------------------------------------------------------------------

    def _on_accept(self, listener: _Listener) -> None:
        for _ in range(16):
            try:
                conn, _ = listener.tcp.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause_accept(listener)  # else the listener stays ready: a busy loop
                return
            with self._lock:
                if self._tcp_count >= MAX_TCP or listener.closed:
                    conn.close()
                    continue
                self._tcp_count += 1
                listener.conns.add(conn)
            try:
                threading.Thread(
                    target=self._serve_tcp, args=(conn, listener), name="sampan-dns-tcp",
                    daemon=True,
                ).start()  # fmt: skip
            except RuntimeError:  # no thread to be had
                self._tcp_done(conn, listener)

    def _pause_accept(self, listener: _Listener) -> None:
        self._unregister(listener.tcp)

        def resume() -> None:
            if not listener.closed:
                assert self._selector is not None
                self._selector.register(
                    listener.tcp, selectors.EVENT_READ, (self._on_accept, listener)
                )

        self._add_timer(ACCEPT_PAUSE, resume)

    def _tcp_done(self, conn: socket.socket, listener: _Listener) -> None:
        with self._lock:
            self._tcp_count -= 1
            listener.conns.discard(conn)
        conn.close()

    def _serve_tcp(self, conn: socket.socket, listener: _Listener) -> None:
        """Answer the length-prefixed queries of one TCP client, in order, until it is done."""
        try:
            conn.settimeout(TCP_IDLE)
            while not self._stopping and not listener.closed:
                head = _recv_exact(conn, 2, None)
                if head is None:
                    return
                data = _recv_exact(conn, _ID.unpack(head)[0], None)
                if data is None:
                    return
                result = self.respond(data, listener.address, tcp=True)
                if result is None:
                    continue
                if not isinstance(result, bytes):
                    result = self._forward_tcp(result, data)
                conn.sendall(_ID.pack(len(result)) + result)
        except OSError:
            pass
        finally:
            self._tcp_done(conn, listener)

    def _forward_tcp(self, query: wire.Query, data: bytes) -> bytes:
        """The upstreams' answer to DATA over TCP (blocking: this is a TCP thread)."""
        for family, upstream in self._upstreams:
            if upstream in self._own:
                continue
            ident = _new_id()
            message = _ID.pack(ident) + data[2:]
            deadline = time.monotonic() + self._timeout
            try:
                with socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
                    sock.settimeout(self._timeout)
                    sock.connect(upstream)
                    sock.sendall(_ID.pack(len(message)) + message)
                    head = _recv_exact(sock, 2, deadline)
                    reply = _recv_exact(sock, _ID.unpack(head)[0], deadline) if head else None
            except OSError:
                continue
            if reply is None or not wire.reply_matches(reply, query, ident):
                continue
            if reply[3] & 0xF in _FAILED:
                continue
            return _ID.pack(query.ident) + reply[2:]
        return wire.build_reply(query, wire.SERVFAIL, authoritative=False)


def _bind_pair(family: int, address: str, port: int) -> tuple[socket.socket, socket.socket]:
    """Non-blocking UDP and TCP sockets bound to ADDRESS:PORT (the same free port for 0)."""
    for _ in range(20 if port == 0 else 1):
        udp = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        tcp = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER)
            udp.bind((address, port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((address, udp.getsockname()[1]))
            tcp.listen(128)
        except OSError as exc:
            udp.close()
            tcp.close()
            if port == 0 and exc.errno == errno.EADDRINUSE:
                continue  # the UDP port's TCP twin is taken: another pair
            raise _bind_error(address, port, exc) from exc
        udp.setblocking(False)
        tcp.setblocking(False)
        return udp, tcp
    raise Conflict(f"dns: no free port pair on {address}")


def _bind_error(address: str, port: int, exc: OSError) -> Exception:
    where = f"dns: cannot listen on {address}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return Conflict(f"{where}: address already in use")
    if exc.errno == errno.EADDRNOTAVAIL:
        return InvalidArgument(f"{where}: not an address of this host")
    return OSError(exc.errno, f"{where}: {exc.strerror}")


def _encode_target(name: str) -> bytes | None:
    """NAME as a PTR record's data; None if DNS cannot carry it (empty or long labels)."""
    labels = [label.encode() for label in name.rstrip(".").split(".")]
    if not all(0 < len(label) < 64 for label in labels):
        return None
    data = wire.encode_name(labels)
    return data if len(data) <= wire.MAX_NAME else None


def _pack_ipv4(text: str) -> bytes | None:
    try:
        return socket.inet_pton(socket.AF_INET, text)
    except (OSError, TypeError):
        return None


def _send(sock: socket.socket, data: bytes, client: Sockaddr) -> None:
    try:
        sock.sendto(data, client)
    except OSError:
        pass  # UDP: a reply lost is a reply the client asks again


def _shutdown(conn: socket.socket) -> None:
    """Wake the thread blocked reading CONN (it closes it; closing here could reuse the fd)."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _recv_exact(sock: socket.socket, size: int, deadline: float | None) -> bytes | None:
    """SIZE bytes from SOCK, None at end of file; socket.timeout past DEADLINE."""
    data = bytearray()
    while len(data) < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("dns: upstream too slow")
            sock.settimeout(left)
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)
