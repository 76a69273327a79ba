"""The embedded DNS server without sockets: the wire format, each answer's rcode, bad packets.

Packets are written out by hand here (struct), so the parser is checked
against the RFC's layout rather than against the builder it ships with.
``DnsServer.respond`` is the whole decision of the server; the sockets are
tests/integration/test_network_dns.py's.
"""

from __future__ import annotations

import random
import socket
import struct

import pytest

from sampan.errors import Conflict, InvalidArgument
from sampan.network import dns_wire as wire
from sampan.network.dns import TTL, DnsServer, parse_upstream

GATEWAY = "172.20.0.1"
NAMES = {"web": ["172.20.0.2", "172.20.0.3"], "db.mynet": ["172.20.0.4"], "empty": []}


def qname(name: str) -> bytes:
    out = b""
    for label in name.split(".") if name else []:
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def packet(
    name: str = "web",
    qtype: int = wire.TYPE_A,
    ident: int = 0x1234,
    flags: int = 0x0100,
    qdcount: int = 1,
    qclass: int = wire.CLASS_IN,
    additional: bytes = b"",
    arcount: int = 0,
) -> bytes:
    header = struct.pack("!HHHHHH", ident, flags, qdcount, 0, 0, arcount)
    return header + qname(name) + struct.pack("!HH", qtype, qclass) + additional


def opt(size: int = 4096, version: int = 0, owner: bytes = b"\x00") -> bytes:
    return owner + struct.pack("!HHIH", wire.TYPE_OPT, size, version << 16, 0)


class Reply:
    """A reply read by hand: header, the echoed question, the answers (type, ttl, rdata)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        (self.ident, self.flags, self.qdcount, self.ancount, self.nscount, self.arcount) = (
            struct.unpack_from("!HHHHHH", data)
        )
        self.rcode = self.flags & 0xF
        self.answers: list[tuple[int, int, bytes]] = []
        self.owner_offsets: list[int] = []
        pos = 12
        if self.qdcount:
            self.question_labels, pos = wire.read_name(data, pos)
            self.qtype, self.qclass = struct.unpack_from("!HH", data, pos)
            pos += 4
        for _ in range(self.ancount):
            self.owner_offsets.append(pos)
            _, pos = wire.read_name(data, pos)
            rtype, _cls, ttl, rdlen = struct.unpack_from("!HHIH", data, pos)
            pos += 10
            self.answers.append((rtype, ttl, data[pos : pos + rdlen]))
            pos += rdlen
        self.additional = data[pos:]

    @property
    def addresses(self) -> list[str]:
        return [socket.inet_ntoa(rd) for t, _, rd in self.answers if t == wire.TYPE_A]

    def flag(self, bit: int) -> bool:
        return bool(self.flags & bit)


class Calls:
    def __init__(self) -> None:
        self.resolve: list[tuple[str, str]] = []
        self.reverse: list[tuple[str, str]] = []


def make_server(upstreams: list[str] | None = None) -> tuple[DnsServer, Calls]:
    calls = Calls()

    def resolve(address: str, name: str) -> list[str] | None:
        calls.resolve.append((address, name))
        return NAMES.get(name)

    def reverse(address: str, ip: str) -> str | None:
        calls.reverse.append((address, ip))
        return "web.mynet" if ip == "172.20.0.2" else None

    up = ["127.0.0.77"] if upstreams is None else upstreams
    return DnsServer(resolve, up, reverse=reverse), calls


def respond(server: DnsServer, data: bytes, tcp: bool = False) -> Reply:
    result = server.respond(data, GATEWAY, tcp=tcp)
    assert isinstance(result, bytes), result
    return Reply(result)


# -- names on the wire -------------------------------------------------------------------------


def test_read_name_plain_and_compressed() -> None:
    data = b"\x00" * 12 + qname("a.example.com") + b"\x03www\xc0\x0e"
    labels, end = wire.read_name(data, 12)
    assert labels == (b"a", b"example", b"com") and end == 12 + 15
    labels, end = wire.read_name(data, 27)
    assert labels == (b"www", b"example", b"com")
    assert end == len(data)  # the name ends where its pointer was written


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"\x00" * 12 + b"\xc0\x0c", 12),  # a pointer to itself
        (b"\x00" * 12 + b"\x01a\xc0\x0c", 12),  # a pointer back into its own labels
        (b"\x00" * 12 + b"\x01a\xc0\x10\x01b\xc0\x0c", 16),  # a cycle of two pointers
        (b"\x00" * 12 + b"\xc0\x20" + b"\x00" * 30, 12),  # a pointer forwards
        (b"\x00" * 12 + b"\x05ab", 12),  # a label past the end
        (b"\x00" * 12 + b"\x03abc", 12),  # no root label
        (b"\x00" * 12 + b"\xc0", 12),  # half a pointer
        (b"\x00" * 12 + b"\x41abc\x00", 12),  # reserved label type 0x40
        (b"\x00" * 12 + b"\x81abc\x00", 12),  # reserved label type 0x80
        (b"\x00" * 12 + (b"\x3f" + b"a" * 63) * 4 + b"\x00", 12),  # 257 bytes
    ],
)
def test_read_name_refuses_bad_names(data: bytes, offset: int) -> None:
    with pytest.raises(wire.QueryError) as info:
        wire.read_name(data, offset)
    assert info.value.rcode == wire.FORMERR


def test_read_name_takes_the_longest_name() -> None:
    name = (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"a" * 61 + b"\x00"  # 255 bytes
    labels, end = wire.read_name(b"\x00" * 12 + name, 12)
    assert len(labels) == 4 and end == 12 + 255


def test_encode_name() -> None:
    assert wire.encode_name([b"web", b"mynet"]) == b"\x03web\x05mynet\x00"
    assert wire.encode_name([]) == b"\x00"


# -- queries -----------------------------------------------------------------------------------


def test_parse_query() -> None:
    q = wire.parse_query(packet("Web.MyNet", wire.TYPE_AAAA, ident=7))
    assert (q.ident, q.qtype, q.qclass) == (7, wire.TYPE_AAAA, wire.CLASS_IN)
    assert q.labels == (b"Web", b"MyNet") and q.name == "web.mynet"
    assert q.edns is None and q.max_udp == 512


def test_parse_query_lowers_ascii_only() -> None:
    q = wire.parse_query(packet("x")[:12] + b"\x02\xc3\x80\x00\x00\x01\x00\x01")
    assert q.name == "\xc3\x80"  # bytes above 127 are not letters to fold


def test_parse_query_reads_edns() -> None:
    q = wire.parse_query(packet(additional=opt(4096), arcount=1))
    assert q.edns == 4096 and q.edns_version == 0 and q.max_udp == wire.EDNS_UDP
    q = wire.parse_query(packet(additional=opt(100), arcount=1))
    assert q.max_udp == 512  # never below the classic limit
    q = wire.parse_query(packet(additional=opt(version=1), arcount=1))
    assert q.edns_version == 1


@pytest.mark.parametrize(
    ("data", "rcode"),
    [
        (b"", None),
        (b"\x12\x34\x01\x00\x00\x01", None),  # shorter than a header
        (packet(flags=0x8180), None),  # a response: answering it could loop
        (packet(flags=0x1100), wire.NOTIMP),  # opcode 2, STATUS
        (packet(flags=0x2900), wire.NOTIMP),  # opcode 5, UPDATE
        (packet(qdcount=0)[:12], wire.FORMERR),
        (packet(qdcount=2), wire.FORMERR),
        (packet()[:-2], wire.FORMERR),  # no class
        (packet()[:14], wire.FORMERR),  # a label cut short
        (packet(additional=opt(owner=b"\x01a\x00"), arcount=1), wire.FORMERR),
        (packet(additional=opt() + opt(), arcount=2), wire.FORMERR),
        (packet(additional=opt()[:-3], arcount=1), wire.FORMERR),
        (packet(additional=b"", arcount=1), wire.FORMERR),
    ],
)
def test_parse_query_refuses_bad_queries(data: bytes, rcode: int | None) -> None:
    with pytest.raises(wire.QueryError) as info:
        wire.parse_query(data)
    assert info.value.rcode == rcode


# -- replies -----------------------------------------------------------------------------------


def test_build_reply_points_answers_at_the_question() -> None:
    q = wire.parse_query(packet("WEB", ident=0xBEEF))
    data = wire.build_reply(q, wire.NOERROR, [(wire.TYPE_A, b"\x0a\x00\x00\x01")], ttl=600)
    r = Reply(data)
    assert (r.ident, r.rcode, r.qdcount, r.ancount, r.arcount) == (0xBEEF, 0, 1, 1, 0)
    assert r.flag(wire.QR) and r.flag(wire.AA) and r.flag(wire.RD) and r.flag(wire.RA)
    assert r.question_labels == (b"WEB",)  # the client's spelling
    assert data[r.owner_offsets[0] : r.owner_offsets[0] + 2] == b"\xc0\x0c"
    assert r.answers == [(wire.TYPE_A, 600, b"\x0a\x00\x00\x01")]


def test_build_reply_truncates_to_the_limit() -> None:
    q = wire.parse_query(packet("web"))
    records = [(wire.TYPE_A, bytes([10, 0, i // 256, i % 256])) for i in range(100)]
    r = Reply(wire.build_reply(q, wire.NOERROR, records, limit=512))
    assert r.flag(wire.TC) and len(r.data) <= 512
    assert r.ancount == (512 - 12 - 9) // 16
    r = Reply(wire.build_reply(q, wire.NOERROR, records))
    assert not r.flag(wire.TC) and r.ancount == 100


def test_build_reply_answers_edns_with_edns() -> None:
    q = wire.parse_query(packet(additional=opt(4096), arcount=1))
    r = Reply(wire.build_reply(q, wire.NXDOMAIN))
    assert r.arcount == 1 and r.rcode == wire.NXDOMAIN
    assert r.additional == b"\x00" + struct.pack("!HHIH", wire.TYPE_OPT, wire.EDNS_UDP, 0, 0)
    r = Reply(wire.build_reply(q, wire.BADVERS))
    assert r.rcode == 0 and struct.unpack_from("!I", r.additional, 5)[0] >> 24 == 1


def test_error_reply() -> None:
    r = Reply(wire.error_reply(packet(ident=99, flags=0x1100), wire.NOTIMP))
    assert (r.ident, r.rcode, r.qdcount, r.ancount) == (99, wire.NOTIMP, 0, 0)
    assert r.flag(wire.QR) and r.flag(wire.RD) and (r.flags & wire.OPCODE_MASK) == 0x1000


def test_reply_matches() -> None:
    q = wire.parse_query(packet("Example.COM"))
    good = wire.build_reply(wire.parse_query(packet("example.com", ident=5)), wire.NOERROR)
    assert wire.reply_matches(good, q, 5)
    assert not wire.reply_matches(good, q, 6)
    other = wire.build_reply(wire.parse_query(packet("example.org", ident=5)), wire.NOERROR)
    assert not wire.reply_matches(other, q, 5)
    aaaa = wire.build_reply(wire.parse_query(packet("example.com", 28, ident=5)), 0)
    assert not wire.reply_matches(aaaa, q, 5)
    assert not wire.reply_matches(packet("example.com", ident=5), q, 5)  # not a response
    assert wire.reply_matches(wire.error_reply(packet(ident=5), wire.FORMERR), q, 5)
    assert not wire.reply_matches(b"\x00\x05\x80", q, 5)
    assert not wire.reply_matches(good[:20], q, 5)


@pytest.mark.parametrize(
    ("name", "ip"),
    [
        ("2.0.20.172.in-addr.arpa", "172.20.0.2"),
        ("0.0.0.0.in-addr.arpa", "0.0.0.0"),
        ("20.172.in-addr.arpa", None),
        ("256.0.20.172.in-addr.arpa", None),
        ("02.0.20.172.in-addr.arpa", None),
        ("x.0.20.172.in-addr.arpa", None),
        ("1.2.0.20.172.in-addr.arpa", None),
        ("2.0.20.172.ip6.arpa", None),
        ("web", None),
    ],
)
def test_ptr_address(name: str, ip: str | None) -> None:
    assert wire.ptr_address(name) == ip


# -- the server's answers ----------------------------------------------------------------------


def test_a_record_of_a_known_name() -> None:
    server, calls = make_server()
    r = respond(server, packet("web", ident=42))
    assert (r.ident, r.rcode) == (42, wire.NOERROR) and r.flag(wire.AA)
    assert r.addresses == ["172.20.0.2", "172.20.0.3"]
    assert {ttl for _, ttl, _ in r.answers} == {TTL} == {600}
    assert calls.resolve == [(GATEWAY, "web")]


def test_names_are_matched_lower_cased_and_echoed_as_sent() -> None:
    server, calls = make_server()
    r = respond(server, packet("DB.MyNet"))
    assert r.addresses == ["172.20.0.4"] and r.question_labels == (b"DB", b"MyNet")
    assert calls.resolve == [(GATEWAY, "db.mynet")]


def test_any_gives_the_a_records() -> None:
    server, _ = make_server()
    assert respond(server, packet("web", wire.TYPE_ANY)).addresses == ["172.20.0.2", "172.20.0.3"]


@pytest.mark.parametrize("qtype", [wire.TYPE_AAAA, 15, 16, 33])  # AAAA, MX, TXT, SRV
def test_other_types_of_a_known_name_are_empty_but_exist(qtype: int) -> None:
    server, _ = make_server()
    r = respond(server, packet("web", qtype))
    assert (r.rcode, r.ancount) == (wire.NOERROR, 0)


def test_a_known_name_without_addresses_exists() -> None:
    server, _ = make_server()
    r = respond(server, packet("empty"))
    assert (r.rcode, r.ancount) == (wire.NOERROR, 0)


def test_unknown_single_label_is_nxdomain_and_never_forwarded() -> None:
    server, calls = make_server()
    r = respond(server, packet("nosuch", ident=3))
    assert (r.ident, r.rcode, r.ancount) == (3, wire.NXDOMAIN, 0)
    assert calls.resolve == [(GATEWAY, "nosuch")]


def test_unknown_dotted_name_is_forwarded() -> None:
    server, _ = make_server()
    result = server.respond(packet("example.com", ident=9), GATEWAY)
    assert isinstance(result, wire.Query) and result.ident == 9 and result.name == "example.com"


def test_the_root_name_is_forwarded() -> None:
    server, calls = make_server()
    assert isinstance(server.respond(packet("", 2), GATEWAY), wire.Query)  # ". NS"
    assert calls.resolve == []


def test_no_upstream_is_servfail() -> None:
    server, _ = make_server(upstreams=[])
    r = respond(server, packet("example.com"))
    assert r.rcode == wire.SERVFAIL and not r.flag(wire.AA)
    server.set_upstreams(["127.0.0.77:5353"])
    assert isinstance(server.respond(packet("example.com"), GATEWAY), wire.Query)


def test_ptr_of_a_known_address() -> None:
    server, calls = make_server()
    r = respond(server, packet("2.0.20.172.in-addr.arpa", wire.TYPE_PTR))
    assert r.rcode == wire.NOERROR and r.ancount == 1
    rtype, ttl, rdata = r.answers[0]
    assert (rtype, ttl, rdata) == (wire.TYPE_PTR, TTL, b"\x03web\x05mynet\x00")
    assert calls.reverse == [(GATEWAY, "172.20.0.2")]


def test_ptr_to_a_name_dns_cannot_carry_is_not_answered() -> None:
    for bad in ("a" * 64, "web..mynet", "x." * 128):
        server = DnsServer(lambda a, n: None, ["127.0.0.77"], reverse=lambda a, ip, b=bad: b)
        query = packet("2.0.20.172.in-addr.arpa", wire.TYPE_PTR)
        assert isinstance(server.respond(query, GATEWAY), wire.Query)


def test_ptr_to_the_longest_name() -> None:
    server = DnsServer(lambda a, n: None, [], reverse=lambda a, ip: "x." * 127)
    r = respond(server, packet("2.0.20.172.in-addr.arpa", wire.TYPE_PTR))
    assert r.rcode == wire.NOERROR and len(r.answers[0][2]) == 255


def test_ptr_of_an_unknown_address_is_forwarded() -> None:
    server, _ = make_server()
    query = packet("9.0.20.172.in-addr.arpa", wire.TYPE_PTR)
    assert isinstance(server.respond(query, GATEWAY), wire.Query)


def test_other_classes_are_not_local() -> None:
    server, calls = make_server()
    assert respond(server, packet("web", qclass=3)).rcode == wire.NXDOMAIN  # CHAOS
    assert isinstance(server.respond(packet("version.bind", 16, qclass=3), GATEWAY), wire.Query)
    assert calls.resolve == []


def test_a_failing_resolver_is_servfail() -> None:
    def resolve(address: str, name: str) -> list[str] | None:
        raise RuntimeError("database gone")

    r = respond(DnsServer(resolve, []), packet("web"))
    assert r.rcode == wire.SERVFAIL


def test_addresses_that_are_not_ipv4_are_left_out() -> None:
    server = DnsServer(lambda a, n: ["10.0.0.1", "fd00::1", "bogus", "10.0.0.2"], [])
    assert respond(server, packet("web")).addresses == ["10.0.0.1", "10.0.0.2"]


def test_many_addresses_are_truncated_over_udp_only() -> None:
    many = [f"10.0.{i // 256}.{i % 256}" for i in range(200)]
    server = DnsServer(lambda a, n: many, [])
    r = respond(server, packet("web"))
    assert r.flag(wire.TC) and len(r.data) <= 512
    r = respond(server, packet("web", additional=opt(4096), arcount=1))
    assert r.flag(wire.TC) and 512 < len(r.data) <= wire.EDNS_UDP
    r = respond(server, packet("web"), tcp=True)
    assert not r.flag(wire.TC) and len(r.addresses) == 200


def test_edns_queries_get_edns_replies() -> None:
    server, _ = make_server()
    r = respond(server, packet("web", additional=opt(), arcount=1))
    assert r.arcount == 1 and r.addresses == ["172.20.0.2", "172.20.0.3"]
    r = respond(server, packet("web", additional=opt(version=1), arcount=1))
    assert r.rcode == 0 and r.ancount == 0 and r.additional[5] == 1  # BADVERS = 16


@pytest.mark.parametrize(
    ("data", "rcode"),
    [
        (packet(flags=0x1100), wire.NOTIMP),
        (packet(qdcount=2), wire.FORMERR),
        (packet(qdcount=0)[:12], wire.FORMERR),
        (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01", wire.FORMERR),
        (packet()[:15], wire.FORMERR),
    ],
)
def test_bad_queries_get_an_error_with_their_id(data: bytes, rcode: int) -> None:
    server, calls = make_server()
    r = respond(server, data)
    assert (r.ident, r.rcode, r.qdcount) == (0x1234, rcode, 0)
    assert calls.resolve == []


def test_runts_and_responses_get_nothing() -> None:
    server, _ = make_server()
    assert server.respond(b"\x01\x02\x03", GATEWAY) is None
    assert server.respond(packet(flags=0x8180), GATEWAY) is None


def test_random_and_damaged_packets_never_raise() -> None:
    server, _ = make_server()
    rng = random.Random(5)
    seeds = [packet("web"), packet("a.b.c.example.com", 28), packet(additional=opt(), arcount=1)]
    for i in range(4000):
        if i % 4 == 0:
            data = rng.randbytes(rng.randrange(0, 80))
        else:
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data[: rng.randrange(len(data) + 1)])
        result = server.respond(data, GATEWAY)
        assert result is None or isinstance(result, (bytes, wire.Query))


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("10.0.0.2", (socket.AF_INET, ("10.0.0.2", 53))),
        ("10.0.0.2:5353", (socket.AF_INET, ("10.0.0.2", 5353))),
        ("fd00::1", (socket.AF_INET6, ("fd00::1", 53))),
        ("[fd00::1]:5353", (socket.AF_INET6, ("fd00::1", 5353))),
        ("[FD00:0::1]", (socket.AF_INET6, ("fd00::1", 53))),
    ],
)
def test_parse_upstream(text: str, parsed: tuple[int, tuple[str, int]]) -> None:
    assert parse_upstream(text) == parsed


@pytest.mark.parametrize(
    "text", ["", "dns.example", "10.0.0.256", "10.0.0.2:", "10.0.0.2:0", "10.0.0.2:65536",
             "10.0.0.2:x", "[fd00::1", "[fd00::1]x", "fe80::1%eth0", "1.2.3"],
)  # fmt: skip
def test_parse_upstream_refuses(text: str) -> None:
    with pytest.raises(InvalidArgument, match="dns upstream"):
        parse_upstream(text)


def test_constructor_and_setters_validate() -> None:
    with pytest.raises(InvalidArgument, match="dns upstream"):
        DnsServer(lambda a, n: None, ["nameserver"])
    with pytest.raises(InvalidArgument, match="timeout"):
        DnsServer(lambda a, n: None, [], timeout=0)
    server, _ = make_server()
    with pytest.raises(InvalidArgument, match="dns upstream"):
        server.set_upstreams(["10.0.0.1", "bad"])
    with pytest.raises(InvalidArgument, match="dns listen"):
        server.listen("gateway")
    server.unlisten("127.0.0.1")  # not served: nothing to do
    server.close()
    server.close()
    with pytest.raises(Conflict, match="closed"):
        server.listen("127.0.0.1", 0)
