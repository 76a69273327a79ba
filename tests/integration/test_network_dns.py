"""The embedded DNS server on real sockets: local names, forwarding, TCP, timeouts, concurrency.

Everything stays on loopback: the server listens on 127.53.P.N addresses of
this process (P from its pid, so parallel runs do not meet) and forwards to
a fake upstream resolver this file starts on another loopback address --
never to the host's resolver.  Ports are free ones (the same for UDP and
TCP), except in the root-only test of port 53 itself.
"""

from __future__ import annotations

import os
import queue
import selectors
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from sampan.errors import Conflict, InvalidArgument
from sampan.network import dns_wire as wire
from sampan.network.dns import DnsServer

NET = f"127.53.{os.getpid() % 250}"
NAMES = {"web": ["172.20.0.2"], "db.mynet": ["172.20.0.4"],
         "many": [f"10.9.{i // 256}.{i % 256}" for i in range(100)]}  # fmt: skip
UPSTREAM_NAMES = {"example.test": ["198.51.100.7"], "big.example.test": ["198.51.100.8"] * 60}


# -- a client ----------------------------------------------------------------------------------


def packet(name: str, qtype: int = wire.TYPE_A, ident: int = 0x4242) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return (
        struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\x00"
        + (struct.pack("!HH", qtype, wire.CLASS_IN))
    )


class Reply:
    def __init__(self, data: bytes) -> None:
        self.ident, self.flags, qdcount, ancount = struct.unpack_from("!HHHH", data)
        self.rcode = self.flags & 0xF
        self.truncated = bool(self.flags & wire.TC)
        self.addresses: list[str] = []
        pos = 12
        if qdcount:
            _, pos = wire.read_name(data, pos)
            pos += 4
        for _ in range(ancount):
            _, pos = wire.read_name(data, pos)
            rtype, _, _, rdlen = struct.unpack_from("!HHIH", data, pos)
            if rtype == wire.TYPE_A:
                self.addresses.append(socket.inet_ntoa(data[pos + 10 : pos + 10 + rdlen]))
            pos += 10 + rdlen


def ask_udp(where: tuple[str, int], data: bytes, timeout: float = 5.0) -> Reply:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect(where)
        sock.send(data)
        return Reply(sock.recv(65535))


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def ask_tcp(sock: socket.socket, data: bytes) -> Reply:
    sock.sendall(struct.pack("!H", len(data)) + data)
    (size,) = struct.unpack("!H", recv_exact(sock, 2))
    return Reply(recv_exact(sock, size))


def tcp_client(where: tuple[str, int]) -> socket.socket:
    return socket.create_connection(where, timeout=5)


# -- a fake upstream resolver ------------------------------------------------------------------


class FakeUpstream:
    """A resolver on ADDRESS (UDP and TCP, a free port) answering UPSTREAM_NAMES.

    ``delay`` holds each answer back, ``drop`` never answers, ``rcode`` answers
    every query with that code; ``seen`` lists (protocol, id, name) received.
    """

    def __init__(self, address: str) -> None:
        self.delay = 0.0
        self.drop = False
        self.rcode: int | None = None
        self.seen: list[tuple[str, int, str]] = []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.udp.bind((address, 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((address, self.port))
        self.tcp.listen(16)
        self.address = f"{address}:{self.port}"
        self._stop = False
        self._delayed: queue.Queue[tuple[float, bytes, tuple[str, int]]] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._sender = threading.Thread(target=self._send_delayed, daemon=True)
        self._sender.start()

    def _answer(self, data: bytes, proto: str) -> bytes | None:
        query = wire.parse_query(data)
        self.seen.append((proto, query.ident, query.name))
        if self.drop:
            return None
        if self.rcode is not None:
            return wire.build_reply(query, self.rcode, authoritative=False)
        addresses = UPSTREAM_NAMES.get(query.name)
        if addresses is None:
            return wire.build_reply(query, wire.NXDOMAIN, authoritative=False)
        records = [(wire.TYPE_A, socket.inet_aton(a)) for a in addresses]
        limit = 0xFFFF if proto == "tcp" else 512
        return wire.build_reply(query, 0, records, ttl=60, authoritative=False, limit=limit)

    def _later(self, reply: bytes, client: tuple[str, int]) -> None:
        if self.delay:
            self._delayed.put((time.monotonic() + self.delay, reply, client))
        else:
            self._sendto(reply, client)

    def _send_delayed(self) -> None:
        while True:
            due, reply, client = self._delayed.get()
            if not reply:
                return
            time.sleep(max(0.0, due - time.monotonic()))
            self._sendto(reply, client)

    def _serve(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.udp, selectors.EVENT_READ)
            sel.register(self.tcp, selectors.EVENT_READ)
            while not self._stop:
                for key, _ in sel.select(0.1):
                    if key.fileobj is self.udp:
                        data, client = self.udp.recvfrom(65535)
                        reply = self._answer(data, "udp")
                        if reply is not None:
                            self._later(reply, client)
                    else:
                        conn, _ = self.tcp.accept()
                        threading.Thread(target=self._serve_tcp, args=(conn,), daemon=True).start()

    def _sendto(self, reply: bytes, client: tuple[str, int]) -> None:
        try:
            self.udp.sendto(reply, client)
        except OSError:
            pass

    def _serve_tcp(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                (size,) = struct.unpack("!H", recv_exact(conn, 2))
                reply = self._answer(recv_exact(conn, size), "tcp")
                if reply is not None:
                    time.sleep(self.delay)
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
                else:
                    time.sleep(10)
            except (OSError, AssertionError):
                pass

    def close(self) -> None:
        self._stop = True
        self._delayed.put((0.0, b"", ("", 0)))
        self._thread.join(5)
        self._sender.join(5)
        self.udp.close()
        self.tcp.close()


# -- fixtures ----------------------------------------------------------------------------------


class Net:
    """This test's loopback addresses, servers and upstreams (closed at teardown)."""

    def __init__(self) -> None:
        self.next = 1
        self.servers: list[DnsServer] = []
        self.upstreams: list[FakeUpstream] = []
        self.resolved: list[tuple[str, str]] = []

    def address(self) -> str:
        self.next += 1
        return f"{NET}.{self.next}"

    def upstream(self) -> FakeUpstream:
        up = FakeUpstream(self.address())
        self.upstreams.append(up)
        return up

    def resolve(self, address: str, name: str) -> list[str] | None:
        self.resolved.append((address, name))
        return NAMES.get(name)

    def server(
        self, upstreams: list[str] | None = None, timeout: float = 2.0, port: int = 0
    ) -> tuple[DnsServer, tuple[str, int]]:
        server = DnsServer(self.resolve, upstreams or [], timeout=timeout)
        self.servers.append(server)
        address = self.address()
        server.listen(address, port)
        return server, (address, server.listening()[address])

    def close(self) -> None:
        for server in self.servers:
            server.close()
        for up in self.upstreams:
            up.close()


@pytest.fixture
def net() -> Iterator[Net]:
    n = Net()
    yield n
    n.close()


# -- local names -------------------------------------------------------------------------------


def test_resolves_names_of_the_network(net: Net) -> None:
    up = net.upstream()
    _, where = net.server([up.address])
    r = ask_udp(where, packet("web", ident=7))
    assert (r.ident, r.rcode, r.addresses) == (7, wire.NOERROR, ["172.20.0.2"])
    assert ask_udp(where, packet("DB.mynet")).addresses == ["172.20.0.4"]
    r = ask_udp(where, packet("web", wire.TYPE_AAAA))
    assert (r.rcode, r.addresses) == (wire.NOERROR, [])
    assert (where[0], "web") in net.resolved and (where[0], "db.mynet") in net.resolved
    assert up.seen == []


def test_unknown_single_label_is_nxdomain_without_asking_upstream(net: Net) -> None:
    up = net.upstream()
    _, where = net.server([up.address])
    r = ask_udp(where, packet("nosuch", ident=11))
    assert (r.ident, r.rcode) == (11, wire.NXDOMAIN)
    assert up.seen == []


def test_one_server_several_networks(net: Net) -> None:
    server, first = net.server()
    second = net.address()
    server.listen(second, 0)
    server.listen(second, 0)  # idempotent
    port = server.listening()[second]
    assert ask_udp((second, port), packet("web")).addresses == ["172.20.0.2"]
    assert ask_udp(first, packet("web")).addresses == ["172.20.0.2"]
    assert {a for a, _ in net.resolved} == {first[0], second}


# -- forwarding --------------------------------------------------------------------------------


def test_forwards_with_a_fresh_id_and_restores_the_clients(net: Net) -> None:
    up = net.upstream()
    _, where = net.server([up.address])
    for ident in (0x4242, 0x0001, 0xFFFF):
        r = ask_udp(where, packet("Example.TEST", ident=ident))
        assert (r.ident, r.rcode, r.addresses) == (ident, wire.NOERROR, ["198.51.100.7"])
    assert [(p, name) for p, _, name in up.seen] == [("udp", "example.test")] * 3
    assert [i for _, i, _ in up.seen] != [0x4242, 0x0001, 0xFFFF]
    r = ask_udp(where, packet("nosuch.example.test", ident=5))
    assert (r.ident, r.rcode) == (5, wire.NXDOMAIN)  # the upstream's answer, relayed


def test_upstream_timeout_is_servfail(net: Net) -> None:
    up = net.upstream()
    up.drop = True
    _, where = net.server([up.address], timeout=0.3)
    start = time.monotonic()
    r = ask_udp(where, packet("example.test", ident=77))
    assert (r.ident, r.rcode) == (77, wire.SERVFAIL)
    assert 0.25 < time.monotonic() - start < 2.0
    assert len(up.seen) == 1


def test_next_upstream_after_a_timeout_or_a_refusal(net: Net) -> None:
    silent, refusing, good = net.upstream(), net.upstream(), net.upstream()
    silent.drop = True
    refusing.rcode = wire.REFUSED
    _, where = net.server([silent.address, refusing.address, good.address], timeout=0.3)
    start = time.monotonic()
    assert ask_udp(where, packet("example.test")).addresses == ["198.51.100.7"]
    assert 0.25 < time.monotonic() - start < 2.0
    assert len(silent.seen) == len(refusing.seen) == len(good.seen) == 1


def test_no_server_at_an_upstream_moves_on_at_once(net: Net) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        closed = net.address()
        probe.bind((closed, 0))
        port = probe.getsockname()[1]
    up = net.upstream()
    _, where = net.server([f"{closed}:{port}", up.address], timeout=3.0)
    start = time.monotonic()
    assert ask_udp(where, packet("example.test")).addresses == ["198.51.100.7"]
    assert time.monotonic() - start < 1.0  # the ICMP refusal, not the 3 s timeout


def test_every_upstream_failing_is_servfail(net: Net) -> None:
    up = net.upstream()
    up.rcode = wire.SERVFAIL
    _, where = net.server([up.address])
    assert ask_udp(where, packet("example.test")).rcode == wire.SERVFAIL


def test_no_upstream_is_servfail(net: Net) -> None:
    server, where = net.server([])
    assert ask_udp(where, packet("example.test")).rcode == wire.SERVFAIL
    up = net.upstream()
    server.set_upstreams([up.address])
    assert ask_udp(where, packet("example.test")).addresses == ["198.51.100.7"]


def test_never_forwards_to_itself(net: Net) -> None:
    server, where = net.server([])
    server.set_upstreams([f"{where[0]}:{where[1]}"])
    assert ask_udp(where, packet("example.test")).rcode == wire.SERVFAIL


def test_a_slow_upstream_does_not_delay_local_answers(net: Net) -> None:
    up = net.upstream()
    up.delay = 2.0
    _, where = net.server([up.address], timeout=5.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as slow:
        slow.settimeout(5)
        slow.connect(where)
        start = time.monotonic()
        slow.send(packet("example.test", ident=1))
        for i in range(20):
            r = ask_udp(where, packet("web", ident=100 + i))
            assert r.addresses == ["172.20.0.2"]
            r = ask_udp(where, packet("nosuch", ident=200 + i))
            assert r.rcode == wire.NXDOMAIN
        local = time.monotonic() - start
        forwarded = Reply(slow.recv(65535))
        total = time.monotonic() - start
    # a loop that waited on the upstream would have made every local answer wait 2 s
    assert local < 1.5, f"40 local answers took {local:.3f} s behind a slow upstream"
    assert (forwarded.ident, forwarded.addresses) == (1, ["198.51.100.7"])
    assert total >= 1.9


def test_many_queries_in_flight(net: Net) -> None:
    up = net.upstream()
    up.delay = 0.2
    _, where = net.server([up.address])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.settimeout(5)
        sock.connect(where)
        for ident in range(300):
            sock.send(packet("example.test", ident=ident))
        replies = [Reply(sock.recv(65535)) for _ in range(300)]
    assert sorted(r.ident for r in replies) == list(range(300))
    assert {tuple(r.addresses) for r in replies} == {("198.51.100.7",)}


# -- TCP ---------------------------------------------------------------------------------------


def test_tcp_local_and_forwarded_on_one_connection(net: Net) -> None:
    up = net.upstream()
    _, where = net.server([up.address])
    with tcp_client(where) as sock:
        r = ask_tcp(sock, packet("web", ident=21))
        assert (r.ident, r.addresses) == (21, ["172.20.0.2"])
        r = ask_tcp(sock, packet("nosuch", ident=22))
        assert (r.ident, r.rcode) == (22, wire.NXDOMAIN)
        r = ask_tcp(sock, packet("example.test", ident=23))
        assert (r.ident, r.addresses) == (23, ["198.51.100.7"])
    assert [(p, name) for p, _, name in up.seen] == [("tcp", "example.test")]


def test_truncated_over_udp_whole_over_tcp(net: Net) -> None:
    up = net.upstream()
    _, where = net.server([up.address])
    r = ask_udp(where, packet("many"))
    assert r.truncated and 0 < len(r.addresses) < 100
    with tcp_client(where) as sock:
        r = ask_tcp(sock, packet("many"))
        assert not r.truncated and r.addresses == NAMES["many"]
        r = ask_tcp(sock, packet("big.example.test"))  # forwarded over TCP too
        assert not r.truncated and len(r.addresses) == 60
    assert ask_udp(where, packet("big.example.test")).truncated


def test_tcp_upstream_timeout_is_servfail(net: Net) -> None:
    up = net.upstream()
    up.drop = True
    _, where = net.server([up.address], timeout=0.3)
    with tcp_client(where) as sock:
        assert ask_tcp(sock, packet("example.test", ident=9)).rcode == wire.SERVFAIL


def test_a_silent_tcp_client_does_not_block_udp(net: Net) -> None:
    _, where = net.server()
    with tcp_client(where) as idle:
        idle.sendall(b"\x00")  # half a length, then nothing
        assert ask_udp(where, packet("web"), timeout=1).addresses == ["172.20.0.2"]


# -- bad packets -------------------------------------------------------------------------------


def test_bad_packets_never_stop_the_server(net: Net) -> None:
    _, where = net.server()
    loop = packet("web")[:12] + b"\xc0\x0c\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        sock.connect(where)
        for data in (b"", b"\x01", b"\x00" * 11, packet("web")[:-4] + b"\x80", os.urandom(300)):
            sock.send(data)
        for data, rcode in ((loop, wire.FORMERR), (b"\x12\x34\x78\x00" + b"\x00" * 8, 4)):
            sock.send(data)
            while True:  # skip the replies to the random ones
                r = Reply(sock.recv(65535))
                if r.ident == struct.unpack("!H", data[:2])[0]:
                    break
            assert r.rcode == rcode
    with tcp_client(where) as conn:
        conn.sendall(struct.pack("!H", len(loop)) + loop)
        (size,) = struct.unpack("!H", recv_exact(conn, 2))
        assert Reply(recv_exact(conn, size)).rcode == wire.FORMERR
    assert ask_udp(where, packet("web")).addresses == ["172.20.0.2"]


# -- listening ---------------------------------------------------------------------------------


def test_unlisten_closes_the_ports(net: Net) -> None:
    server, where = net.server()
    with tcp_client(where) as conn:
        assert ask_tcp(conn, packet("web")).addresses == ["172.20.0.2"]
        server.unlisten(where[0])
        conn.settimeout(2)
        assert conn.recv(10) == b""  # the open connection is hung up too
    assert server.listening() == {}
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            # SO_REUSEADDR passes the hung-up connection's TIME_WAIT, never a listener
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(where)  # free again
            if kind == socket.SOCK_STREAM:
                probe.listen(1)
    with pytest.raises(OSError):
        ask_udp(where, packet("web"), timeout=0.5)
    server.unlisten(where[0])  # again: nothing to do
    server.listen(*where)
    assert ask_udp(where, packet("web")).addresses == ["172.20.0.2"]


def test_listen_errors(net: Net) -> None:
    server, where = net.server()
    server.listen(*where)  # idempotent
    other = DnsServer(net.resolve, [])
    net.servers.append(other)
    with pytest.raises(Conflict, match="in use"):
        other.listen(*where)
    with pytest.raises(Conflict, match="already listening"):
        server.listen(where[0], where[1] + 1 if where[1] < 65535 else 1024)
    with pytest.raises(InvalidArgument, match="not an address of this host"):
        other.listen("192.0.2.1", 0)  # TEST-NET-1: bind only, nothing is sent
    assert other.listening() == {}


def test_close_stops_everything(net: Net) -> None:
    server, where = net.server()
    with tcp_client(where) as conn:
        server.close()
        conn.settimeout(2)
        assert conn.recv(10) == b""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(where)


# -- real clients ------------------------------------------------------------------------------

BUSYBOX = shutil.which("busybox")


def nslookup(*args: str) -> str:
    assert BUSYBOX
    proc = subprocess.run(
        [BUSYBOX, "nslookup", *args], capture_output=True, text=True, timeout=30, check=False
    )
    return proc.stdout + proc.stderr


@pytest.mark.skipif(BUSYBOX is None, reason="needs busybox")
def test_busybox_nslookup(net: Net) -> None:
    up = net.upstream()
    _, (address, port) = net.server([up.address])
    out = nslookup(f"-port={port}", "web", address)
    assert "Address: 172.20.0.2" in out, out
    out = nslookup(f"-port={port}", "example.test", address)
    assert "Address: 198.51.100.7" in out, out
    out = nslookup(f"-port={port}", "nosuch", address)
    assert "NXDOMAIN" in out, out


@pytest.mark.root
@pytest.mark.skipif(BUSYBOX is None, reason="needs busybox")
def test_port_53_with_busybox_nslookup(net: Net) -> None:
    _, (address, port) = net.server(port=53)
    assert port == 53
    out = nslookup("db.mynet", address)
    assert "Address: 172.20.0.4" in out, out
