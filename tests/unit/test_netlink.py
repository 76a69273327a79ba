"""rtnetlink message encoding and decoding, and the request/ack exchange, without root.

The byte layouts are the kernel ABI (linux/netlink.h, rtnetlink.h, if_link.h, veth.h):
attributes padded to 4 bytes, lengths that exclude the padding, nested attributes flagged
NLA_F_NESTED.  The exchange runs against a fake socket that answers like the kernel does.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from sampan.errors import InvalidArgument
from sampan.linux.errors import SyscallError
from sampan.network import netlink as nl
from sampan.network.netlink import Link, Netlink, NetlinkError

HDR = struct.Struct("=IHHII")


def walk(data: bytes, offset: int = 0) -> list[tuple[int, int, bytes]]:
    """(offset, raw type, payload) of each attribute, asserting the 4-byte alignment."""
    out = []
    while offset < len(data):
        assert offset % 4 == 0, f"attribute at {offset} is not aligned"
        size, kind = struct.unpack_from("=HH", data, offset)
        assert size >= 4 and offset + size <= len(data)
        out.append((offset, kind, data[offset + 4 : offset + size]))
        offset += (size + 3) & ~3
    assert offset == len(data), "padding past the last attribute"
    return out


def by_type(data: bytes, offset: int = 0) -> dict[int, bytes]:
    return {kind: payload for _off, kind, payload in walk(data, offset)}


# -- encoding ---------------------------------------------------------------------------


def test_attribute_is_padded_and_its_length_excludes_the_padding() -> None:
    assert nl.attr(3, b"abc") == b"\x07\x00\x03\x00abc\x00"
    assert nl.attr(3, b"abcd") == b"\x08\x00\x03\x00abcd"
    assert nl.attr(7, b"") == b"\x04\x00\x07\x00"
    assert nl.attr(1, b"abcde") == b"\x09\x00\x01\x00abcde\x00\x00\x00"
    assert nl.attr_u32(4, 1500) == b"\x08\x00\x04\x00" + struct.pack("=I", 1500)
    assert nl.attr_str(3, "br0") == b"\x08\x00\x03\x00br0\x00"


def test_nested_attribute_flags_nesting_and_counts_its_padded_children() -> None:
    inner = nl.attr_str(1, "bridge")  # 4 + 7 = 11 bytes, padded to 12
    assert len(inner) == 12
    outer = nl.nested(18, inner)
    size, kind = struct.unpack_from("=HH", outer)
    assert kind == 18 | nl.NLA_F_NESTED
    assert size == 16 == len(outer)
    assert outer[4:] == inner


def test_message_header() -> None:
    data = nl.message(nl.RTM_NEWLINK, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 42, b"x" * 16)
    assert HDR.unpack_from(data) == (32, 16, 5, 42, 0)
    assert data[16:] == b"x" * 16


def test_bridge_request_bytes() -> None:
    expected = (
        bytes(16)  # ifinfomsg: AF_UNSPEC, index 0, no flags
        + b"\x08\x00\x03\x00br0\x00"  # IFLA_IFNAME
        + b"\x08\x00\x04\x00"
        + struct.pack("=I", 9000)  # IFLA_MTU
        + struct.pack("=HH", 16, 18 | 0x8000)  # IFLA_LINKINFO, nested
        + b"\x0b\x00\x01\x00bridge\x00\x00"  # IFLA_INFO_KIND "bridge\0" + 1 pad byte
    )
    assert nl.bridge_request("br0", 9000) == expected
    assert nl.bridge_request("br0") == expected[:24] + expected[32:]


def test_veth_request_nests_the_peer_inside_linkinfo() -> None:
    data = nl.veth_request(
        "vsabcdef0123450", "eth0", 7, master=3, mtu=1400, peer_mac="02:42:AC:1f:00:02"
    )
    family, index, flags, change = struct.unpack_from("=BxxxiII", data)
    assert (family, index, flags, change) == (0, 0, 0, 0)
    top = by_type(data, 16)
    assert set(top) == {
        nl.IFLA_IFNAME,
        nl.IFLA_MTU,
        nl.IFLA_MASTER,
        nl.IFLA_LINKINFO | nl.NLA_F_NESTED,
    }
    assert top[nl.IFLA_IFNAME] == b"vsabcdef0123450\0"
    assert struct.unpack("=I", top[nl.IFLA_MASTER]) == (3,)
    assert struct.unpack("=I", top[nl.IFLA_MTU]) == (1400,)
    info = by_type(top[nl.IFLA_LINKINFO | nl.NLA_F_NESTED])
    assert info[nl.IFLA_INFO_KIND] == b"veth\0"
    data_attrs = walk(info[nl.IFLA_INFO_DATA | nl.NLA_F_NESTED])
    assert len(data_attrs) == 1
    _off, kind, peer = data_attrs[0]
    assert kind == nl.VETH_INFO_PEER  # an ifinfomsg first: not flagged nested
    assert peer[:16] == bytes(16)
    peer_attrs = by_type(peer, 16)
    assert peer_attrs == {
        nl.IFLA_IFNAME: b"eth0\0",
        nl.IFLA_NET_NS_FD: struct.pack("=I", 7),
        nl.IFLA_MTU: struct.pack("=I", 1400),
        nl.IFLA_ADDRESS: bytes.fromhex("0242ac1f0002"),
    }


def test_veth_request_minimal_and_up() -> None:
    data = nl.veth_request("h0", "p0", 9)
    top = by_type(data, 16)
    assert set(top) == {nl.IFLA_IFNAME, nl.IFLA_LINKINFO | nl.NLA_F_NESTED}
    up = nl.veth_request("h0", "p0", 9, up=True)
    assert struct.unpack_from("=II", up, 8) == (nl.IFF_UP, nl.IFF_UP)
    peer = walk(
        by_type(by_type(up, 16)[nl.IFLA_LINKINFO | nl.NLA_F_NESTED])[
            nl.IFLA_INFO_DATA | nl.NLA_F_NESTED
        ]
    )[0][2]
    assert peer[:16] == bytes(16)  # the peer is created down (the kernel refuses it up)


def test_address_request_with_broadcast() -> None:
    data = nl.address_request(5, "172.31.0.2", 16)
    assert struct.unpack_from("=BBBBI", data) == (nl.AF_INET, 16, 0, 0, 5)
    attrs = by_type(data, 8)
    assert attrs[nl.IFA_LOCAL] == attrs[nl.IFA_ADDRESS] == bytes([172, 31, 0, 2])
    assert attrs[nl.IFA_BROADCAST] == bytes([172, 31, 255, 255])
    assert by_type(nl.address_request(5, "10.1.2.3", 24), 8)[nl.IFA_BROADCAST] == bytes(
        [10, 1, 2, 255]
    )
    for prefix in (31, 32):
        assert nl.IFA_BROADCAST not in by_type(nl.address_request(5, "10.1.2.3", prefix), 8)


def test_route_request() -> None:
    default = nl.route_request("172.31.0.1", 4)
    assert struct.unpack_from("=BBBBBBBBI", default) == (
        nl.AF_INET,
        0,
        0,
        0,
        nl.RT_TABLE_MAIN,
        nl.RTPROT_BOOT,
        nl.RT_SCOPE_UNIVERSE,
        nl.RTN_UNICAST,
        0,
    )
    assert by_type(default, 12) == {
        nl.RTA_GATEWAY: bytes([172, 31, 0, 1]),
        nl.RTA_OIF: struct.pack("=I", 4),
    }
    net = nl.route_request("10.0.0.1", 4, "192.168.8.0", 22)
    assert net[1] == 22
    assert by_type(net, 12)[nl.RTA_DST] == bytes([192, 168, 8, 0])


@pytest.mark.parametrize(
    "call",
    [
        lambda: nl.address_request(1, "10.0.0", 24),
        lambda: nl.address_request(1, "256.0.0.1", 24),
        lambda: nl.address_request(1, "::1", 24),
        lambda: nl.address_request(1, "10.0.0.1 ", 24),
        lambda: nl.address_request(1, "10.0.0.1", 33),
        lambda: nl.address_request(1, "10.0.0.1", -1),
        lambda: nl.address_request(1, "10.0.0.1", True),
        lambda: nl.route_request("10.0.0.x", 1),
        lambda: nl.route_request("10.0.0.1", 1, "10.1.0.0", 8),  # host bits past /8
        lambda: nl.route_request("10.0.0.1", 1, "10.0.0.0", 40),
        lambda: nl.veth_request("h0", "p0", 3, peer_mac="02:42:ac:11:00"),
        lambda: nl.veth_request("h0", "p0", 3, peer_mac="02:42:ac:11:00:zz"),
        lambda: nl.veth_request("h0", "p0", 3, peer_mac="0242ac110002"),
        lambda: nl.bridge_request(""),
        lambda: nl.bridge_request("x" * 16),
        lambda: nl.bridge_request("a/b"),
        lambda: nl.bridge_request("a b"),
        lambda: nl.bridge_request("a:b"),
        lambda: nl.bridge_request(".."),
        lambda: nl.veth_request("ok0", "bad/peer", 3),
    ],
)
def test_bad_input_is_refused_before_the_kernel(call: Callable[[], object]) -> None:
    with pytest.raises(InvalidArgument):
        call()


def test_bad_input_messages_name_the_value() -> None:
    with pytest.raises(InvalidArgument, match=r"address '10\.0\.0': not an IPv4 address"):
        nl.address_request(1, "10.0.0", 24)
    with pytest.raises(InvalidArgument, match=r"gateway '1\.2\.3\.x'"):
        nl.route_request("1.2.3.x", 1)
    with pytest.raises(InvalidArgument, match=r"interface name 'x{16}'"):
        nl.bridge_request("x" * 16)
    assert nl.check_name("x" * 15) == b"x" * 15


# -- decoding ---------------------------------------------------------------------------


def test_messages_split_a_datagram_and_reject_bad_lengths() -> None:
    one = nl.message(nl.RTM_NEWLINK, 2, 7, b"abcd")
    two = nl.message(nl.NLMSG_DONE, 2, 7, struct.pack("=i", 0))
    assert list(nl.messages(one + two)) == [
        (nl.RTM_NEWLINK, 2, 7, b"abcd"),
        (nl.NLMSG_DONE, 2, 7, bytes(4)),
    ]
    assert list(nl.messages(memoryview(one))) == [(nl.RTM_NEWLINK, 2, 7, b"abcd")]
    bad = HDR.pack(64, nl.RTM_NEWLINK, 0, 1, 0) + bytes(8)  # claims more than there is
    with pytest.raises(NetlinkError) as err:
        list(nl.messages(bad))
    assert err.value.errno == nl.EBADMSG
    with pytest.raises(NetlinkError):
        list(nl.messages(HDR.pack(8, 1, 0, 1, 0) + bytes(8)))  # shorter than its header


def test_attrs_mask_flags_and_keep_a_truncated_tail_out() -> None:
    data = nl.attr_str(3, "eth0") + nl.nested(18, nl.attr_str(1, "veth")) + b"\x20\x00\x04"
    found = nl.attrs(data)
    assert found[3] == b"eth0\0"
    assert nl.attrs(found[18]) == {1: b"veth\0"}
    assert set(found) == {3, 18}


def ack_payload(code: int, request: bytes, text: str | None = None) -> bytes:
    body = struct.pack("=i", code) + request
    if text is not None:
        body += nl.attr_str(nl.NLMSGERR_ATTR_MSG, text)
    return body


def test_error_decoding() -> None:
    request = nl.message(nl.RTM_NEWLINK, 5, 9, nl.ifinfo())
    assert nl.error_of(ack_payload(0, request[:16]), nl.NLM_F_CAPPED) == (0, "")
    assert nl.error_of(ack_payload(-17, request[:16]), nl.NLM_F_CAPPED) == (17, "")
    capped = ack_payload(-22, request[:16], "Invalid prefix for given prefix length")
    flags = nl.NLM_F_CAPPED | nl.NLM_F_ACK_TLVS
    assert nl.error_of(capped, flags) == (22, "Invalid prefix for given prefix length")
    whole = ack_payload(-95, request, "Unknown device type")  # the request echoed in full
    assert nl.error_of(whole, nl.NLM_F_ACK_TLVS) == (95, "Unknown device type")
    with pytest.raises(NetlinkError):
        nl.error_of(b"\x00\x00", 0)


def link_message(
    index: int,
    name: str,
    kind: str = "",
    master: int = 0,
    up: bool = False,
    mac: bytes = b"",
    mtu: int = 1500,
) -> bytes:
    attrs = nl.attr_str(nl.IFLA_IFNAME, name) + nl.attr_u32(nl.IFLA_MTU, mtu)
    if master:
        attrs += nl.attr_u32(nl.IFLA_MASTER, master)
    if mac:
        attrs += nl.attr(nl.IFLA_ADDRESS, mac)
    if kind:
        attrs += nl.nested(nl.IFLA_LINKINFO, nl.attr_str(nl.IFLA_INFO_KIND, kind))
    flags = nl.IFF_UP | 0x1000 if up else 0x1000
    return nl.ifinfo(index, flags, 0) + attrs


def test_link_address_and_route_decoding() -> None:
    link = nl.link_of(link_message(7, "vs0", "veth", 3, True, bytes.fromhex("0242ac1f0002")))
    assert link == Link(
        index=7, name="vs0", kind="veth", master=3, mac="02:42:ac:1f:00:02", up=True, mtu=1500
    )
    assert "name='vs0'" in repr(link)
    assert nl.link_of(link_message(1, "lo")) == Link(1, "lo", mtu=1500)
    addr = nl.address_request(4, "10.9.0.5", 24)
    assert nl.address_of(addr) == (4, "10.9.0.5", 24)
    route = nl.route_request("10.9.0.1", 4, "192.168.0.0", 16)
    assert nl.route_of(route) == (
        nl.RT_TABLE_MAIN,
        nl.RTN_UNICAST,
        "192.168.0.0",
        16,
        "10.9.0.1",
        4,
    )
    table_attr = route[:12] + nl.attr_u32(nl.RTA_TABLE, 1000) + route[12:]
    assert nl.route_of(table_attr)[0] == 1000


def test_netlink_error_reads_as_one_line() -> None:
    err = NetlinkError(17, "add veth", "vsabc0 peer eth0")
    assert str(err) == "add veth vsabc0 peer eth0: File exists"
    assert isinstance(err, OSError) and isinstance(err, SyscallError)
    assert err.errno == 17 and err.op == "add veth"
    op = "add route 0.0.0.0/0 via 10.0.0.1 dev"
    detailed = NetlinkError(101, op, "eth0", "Nexthop has invalid gateway")
    assert str(detailed) == (
        "add route 0.0.0.0/0 via 10.0.0.1 dev eth0: Network is unreachable "
        "(Nexthop has invalid gateway)"
    )


# -- the exchange, against a fake kernel -------------------------------------------------

Reply = Callable[[int, int, int, bytes], list[bytes]]  # (type, flags, seq, payload) -> datagrams


class FakeSocket:
    """Answers each sent datagram with REPLY's datagrams, as (data, port) pairs."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.sent: list[tuple[int, int, int, bytes]] = []
        self.queue: list[tuple[bytes, int]] = []
        self.closed = False

    def send(self, data: bytes) -> int:
        for kind, flags, seq, payload in nl.messages(data):
            self.sent.append((kind, flags, seq, payload))
            self.queue += [(d, 0) for d in self.reply(kind, flags, seq, payload)]
        return len(data)

    def recvfrom_into(self, buf: bytearray) -> tuple[int, tuple[int, int]]:
        data, port = self.queue.pop(0)
        buf[: len(data)] = data
        return len(data), (port, 0)

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        self.closed = True


def ack(seq: int, code: int = 0, text: str | None = None) -> bytes:
    flags = nl.NLM_F_CAPPED | (nl.NLM_F_ACK_TLVS if text else 0)
    request = HDR.pack(16, 0, 0, seq, 0)
    return nl.message(nl.NLMSG_ERROR, flags, seq, ack_payload(code, request, text))


def done(seq: int, code: int = 0) -> bytes:
    return nl.message(nl.NLMSG_DONE, nl.NLM_F_MULTI, seq, struct.pack("=i", code))


def fake(reply: Reply) -> tuple[Netlink, FakeSocket]:
    sock = FakeSocket(reply)
    return Netlink.from_socket(sock), sock  # type: ignore[arg-type]


def test_every_request_asks_for_an_ack_and_gets_it() -> None:
    link, sock = fake(lambda kind, flags, seq, payload: [ack(seq)])
    link.set_up(3)
    link.set_master(3, 2)
    link.add_address(3, "10.0.0.2", 24)
    link.add_route("10.0.0.1", 3)
    assert all(flags & (nl.NLM_F_REQUEST | nl.NLM_F_ACK) == 5 for _k, flags, _s, _p in sock.sent)
    kinds = [kind for kind, *_ in sock.sent]
    assert kinds == [nl.RTM_SETLINK, nl.RTM_SETLINK, nl.RTM_NEWADDR, nl.RTM_NEWROUTE]
    seqs = [seq for _k, _f, seq, _p in sock.sent]
    assert seqs == list(range(seqs[0], seqs[0] + 4))
    assert sock.sent[0][3] == nl.ifinfo(3, nl.IFF_UP, nl.IFF_UP)
    with link:
        pass
    assert sock.closed


def test_multipart_dump_across_datagrams() -> None:
    def reply(kind: int, flags: int, seq: int, payload: bytes) -> list[bytes]:
        assert flags & nl.NLM_F_DUMP == nl.NLM_F_DUMP
        first = nl.message(nl.RTM_NEWLINK, nl.NLM_F_MULTI, seq, link_message(1, "lo", up=True))
        second = nl.message(nl.RTM_NEWLINK, nl.NLM_F_MULTI, seq, link_message(2, "br0", "bridge"))
        third = nl.message(nl.RTM_NEWLINK, nl.NLM_F_MULTI, seq, link_message(3, "vs0", "veth", 2))
        return [first + second, third, done(seq)]

    link, _sock = fake(reply)
    assert [(x.index, x.name, x.kind, x.master) for x in link.links()] == [
        (1, "lo", "", 0),
        (2, "br0", "bridge", 0),
        (3, "vs0", "veth", 2),
    ]


def test_stale_replies_and_foreign_senders_are_skipped() -> None:
    def reply(kind: int, flags: int, seq: int, payload: bytes) -> list[bytes]:
        return [ack(seq - 1, -17), ack(seq + 5), ack(seq)]

    link, sock = fake(reply)
    link.set_up(1)  # the stale EEXIST (seq - 1) is not ours
    sock.reply = lambda kind, flags, seq, payload: [ack(seq)]
    sock.queue.append((ack(0, -1), 4242))  # a datagram from a user-space port
    sock.queue.append((ack(link._seq + 1, -1), 4242))
    link.set_up(1)  # neither from the kernel: ignored


def test_a_refusal_raises_with_the_operation_the_name_and_the_kernel_text() -> None:
    def reply(kind: int, flags: int, seq: int, payload: bytes) -> list[bytes]:
        if kind == nl.RTM_GETLINK:  # the lookup that names the link in the error
            index = struct.unpack_from("=i", payload, 4)[0]
            return [nl.message(nl.RTM_NEWLINK, 0, seq, link_message(index, "eth0")), ack(seq)]
        return [ack(seq, -101, "Nexthop has invalid gateway")]

    link, _sock = fake(reply)
    with pytest.raises(NetlinkError) as err:
        link.add_route("10.0.0.1", 2)
    assert err.value.errno == 101
    assert str(err.value) == (
        "add route 0.0.0.0/0 via 10.0.0.1 dev eth0: Network is "
        "unreachable (Nexthop has invalid gateway)"
    )


def test_missing_links_read_as_none_and_false() -> None:
    link, _sock = fake(lambda kind, flags, seq, payload: [ack(seq, -nl.ENODEV)])
    assert link.link_index("nosuch0") is None
    assert link.delete_link("nosuch0") is False
    with pytest.raises(NetlinkError, match=r"set link up index 9: No such device"):
        link.set_up(9)


def test_other_errors_of_lookups_are_raised() -> None:
    link, _sock = fake(lambda kind, flags, seq, payload: [ack(seq, -1)])
    with pytest.raises(NetlinkError, match="delete link sampan0: Operation not permitted"):
        link.delete_link("sampan0")
    with pytest.raises(NetlinkError, match="look up link eth0: Operation not permitted"):
        link.link_index("eth0")


def test_an_interrupted_dump_is_redone() -> None:
    calls = []

    def reply(kind: int, flags: int, seq: int, payload: bytes) -> list[bytes]:
        calls.append(seq)
        record = nl.address_request(2, "10.0.0.2", 24)
        intr = nl.NLM_F_MULTI | (nl.NLM_F_DUMP_INTR if len(calls) == 1 else 0)
        return [nl.message(nl.RTM_NEWADDR, intr, seq, record), done(seq)]

    link, _sock = fake(reply)
    assert link.addresses(2) == [(2, "10.0.0.2", 24)]
    assert link.addresses(3) == []
    assert len(calls) == 3


def test_dump_error_in_done() -> None:
    link, _sock = fake(lambda kind, flags, seq, payload: [done(seq, -16)])
    with pytest.raises(NetlinkError, match="list routes: Device or resource busy"):
        link.routes()


def test_routes_keep_the_main_table_unicast_only() -> None:
    def reply(kind: int, flags: int, seq: int, payload: bytes) -> list[bytes]:
        main = nl.route_request("10.0.0.1", 2)
        local = bytearray(nl.route_request("10.0.0.1", 2, "10.0.0.0", 24))
        local[4], local[7] = 255, 2  # table local, RTN_LOCAL
        other = bytearray(nl.route_request("10.0.0.1", 2, "10.5.0.0", 16))
        other[4] = 100
        return [
            b"".join(
                nl.message(nl.RTM_NEWROUTE, nl.NLM_F_MULTI, seq, bytes(r))
                for r in (main, local, other)
            )
            + done(seq)
        ]

    link, _sock = fake(reply)
    assert link.routes() == [("0.0.0.0", 0, "10.0.0.1", 2)]


def test_batch_sends_one_datagram_and_raises_the_first_refusal_after_all_acks() -> None:
    datagrams = []

    def reply(kind: int, flags: int, seq: int, payload: bytes) -> list[bytes]:
        if kind == nl.RTM_GETLINK:
            return [nl.message(nl.RTM_NEWLINK, 0, seq, link_message(4, "eth0")), ack(seq)]
        return [ack(seq, -17 if kind == nl.RTM_NEWADDR else -101)]

    link, sock = fake(reply)
    original_send = sock.send

    def send(data: bytes) -> int:
        datagrams.append(data)
        return original_send(data)

    sock.send = send  # type: ignore[method-assign]
    with pytest.raises(NetlinkError) as err:
        link.configure(4, "10.0.0.2", 24, "10.0.0.1")
    assert len(datagrams[0]) > 3 * 16 and len(list(nl.messages(datagrams[0]))) == 3
    assert err.value.errno == 17  # the address's EEXIST, not the route's later error
    assert str(err.value) == "add address 10.0.0.2/24 on eth0: File exists"
    # every ack was read: the next exchange starts clean
    sock.reply = lambda kind, flags, seq, payload: [ack(seq)]
    link.set_up(4)
    assert sock.queue == []


def test_create_returns_the_index_looked_up_in_the_same_datagram() -> None:
    def reply(kind: int, flags: int, seq: int, payload: bytes) -> list[bytes]:
        if kind == nl.RTM_NEWLINK:
            assert flags & (nl.NLM_F_CREATE | nl.NLM_F_EXCL) == nl.NLM_F_CREATE | nl.NLM_F_EXCL
            return [ack(seq)]
        assert kind == nl.RTM_GETLINK and nl.attrs(payload, 16)[nl.IFLA_IFNAME] == b"vs1\0"
        return [nl.message(nl.RTM_NEWLINK, 0, seq, link_message(12, "vs1", "veth")), ack(seq)]

    link, sock = fake(reply)
    assert link.add_veth("vs1", "eth0", 5, master=2) == 12
    assert len(sock.sent) == 2

    link, _sock = fake(lambda kind, flags, seq, payload: [ack(seq, -17 if kind == 16 else 0)])
    with pytest.raises(NetlinkError, match=r"^add veth vs1 peer eth0: File exists$"):
        link.add_veth("vs1", "eth0", 5)
    link, _sock = fake(lambda kind, flags, seq, payload: [ack(seq, -17 if kind == 16 else -19)])
    with pytest.raises(NetlinkError, match=r"^add bridge br0: File exists$"):
        link.add_bridge("br0")
