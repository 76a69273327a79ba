"""rtnetlink (NETLINK_ROUTE) over a raw AF_NETLINK socket: links, IPv4 addresses, routes.

Why our own: the container start path must not spawn ``ip`` (a process each, ~2 ms), and
pyroute2 costs far more to import than this whole module.  The engine needs a handful of
requests -- create a bridge or a veth pair, bring a link up, enslave it, add an address and a
route, delete a link, and dumps to reconcile -- each a few struct-packed attributes.

Every request carries NLM_F_ACK and waits for its acknowledgement, so a failure surfaces
where it happened, as a ``NetlinkError`` naming the operation and the link (``add veth
vsabc0 peer eth0: File exists``), with the kernel's extended-ack text when it gives one.
Replies are matched by sequence number and must come from the kernel (port 0); a dump is read
to NLMSG_DONE across as many datagrams as the kernel sends, and restarted when the kernel
flags it interrupted by a concurrent change (NLM_F_DUMP_INTR).

Namespaces: a netlink socket acts on the network namespace it was created in, for its whole
life, whatever thread uses it later.  ``Netlink(netns=PATH)`` creates its socket in a
short-lived thread joined to that namespace (``netns.run_in``); the caller's thread never
changes namespace.

Thread-safety: one ``Netlink`` is used by one thread at a time -- requests and replies share
one socket and one sequence counter, so two threads interleaving requests would read each
other's replies.  The engine holds a lock around its long-lived host ``Netlink``.

Layout notes (linux/netlink.h, linux/rtnetlink.h): nlmsghdr is 16 bytes, ifinfomsg 16,
ifaddrmsg 8, rtmsg 12; every attribute (nlattr) is a 4-byte header and a payload padded to
4 bytes; a nested attribute's payload is a list of attributes (VETH_INFO_PEER's payload is
an ifinfomsg followed by attributes).  Host byte order throughout, except IPv4 addresses.
"""

from __future__ import annotations

import _socket
import os
import struct

from sampan.errors import InvalidArgument
from sampan.linux.errors import SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

# Message types and flags (linux/netlink.h, linux/rtnetlink.h).
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # in an NLMSG_ERROR's own flags
NLMSGERR_ATTR_MSG = 1
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11

# Link attributes (linux/if_link.h, linux/veth.h).
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_NET_NS_FD = 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFF_UP = 0x1
# Address and route attributes (linux/if_addr.h, linux/rtnetlink.h).
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
AF_UNSPEC, AF_INET, AF_BRIDGE = 0, 2, 7
IFLA_PROTINFO, IFLA_BRPORT_MODE = 12, 4  # a bridge port's settings; its hairpin mode

ENODEV, EBADMSG = 19, 74
IFNAMSIZ = 16

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table,
#                                       protocol, scope, type, flags
_NLA = struct.Struct("=HH")  # nlattr: len, type
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
_RECV_SIZE = 65536  # a dump datagram is at most ~32 KiB (the kernel's cap)


class NetlinkError(SyscallError):
    """A request the kernel refused: ``errno``, ``op`` (what and on which link) and
    ``detail`` (the kernel's extended-ack message, or "").

    ``str(err)`` reads ``"add veth vsabc0 peer eth0: File exists"``.
    """

    def __init__(self, errno: int, op: str, path: str | None = None, detail: str = "") -> None:
        super().__init__(errno, op, path)
        self.detail = detail

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} ({self.detail})" if self.detail else text


class Link:
    """One network interface as a link dump reports it.

    ``kind`` is the IFLA_INFO_KIND ("bridge", "veth", "" for a physical or loopback device),
    ``master`` the index of the bridge it is enslaved to (0: none), ``mac`` lower-case
    colon-separated ("" when the link has none).
    """

    __slots__ = ("index", "kind", "mac", "master", "mtu", "name", "up")

    def __init__(self, index: int, name: str, kind: str = "", master: int = 0, mac: str = "",
                 up: bool = False, mtu: int = 0) -> None:  # fmt: skip
        self.index = index
        self.name = name
        self.kind = kind
        self.master = master
        self.mac = mac
        self.up = up
        self.mtu = mtu

    def _key(self) -> tuple[int, str, str, int, str, bool, int]:
        return (self.index, self.name, self.kind, self.master, self.mac, self.up, self.mtu)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Link) and self._key() == other._key()

    def __repr__(self) -> str:
        return (
            f"Link(index={self.index}, name={self.name!r}, kind={self.kind!r}, "
            f"master={self.master}, mac={self.mac!r}, up={self.up}, mtu={self.mtu})"
        )


# -- encoding ---------------------------------------------------------------------------


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute: header, payload, zero padding to 4 bytes (the length excludes it)."""
    size = 4 + len(payload)
    return _NLA.pack(size, kind) + payload + b"\0" * (-size & 3)


def nested(kind: int, *attrs: bytes) -> bytes:
    """A nested attribute (NLA_F_NESTED set) holding ATTRS, each already padded."""
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, _U32.pack(value))


def attr_str(kind: int, value: str) -> bytes:
    """A NUL-terminated string attribute."""
    return attr(kind, value.encode() + b"\0")


def message(kind: int, flags: int, seq: int, payload: bytes) -> bytes:
    """A whole netlink message: nlmsghdr (port 0: the kernel fills ours in) and PAYLOAD."""
    return _HDR.pack(16 + len(payload), kind, flags, seq, 0) + payload


def ifinfo(index: int = 0, flags: int = 0, change: int = 0, family: int = AF_UNSPEC) -> bytes:
    return _IFINFO.pack(family, 0, index, flags, change)


def check_name(name: str) -> bytes:
    """NAME as the kernel takes an interface name, or InvalidArgument."""
    raw = name.encode()
    if (
        not raw
        or len(raw) >= IFNAMSIZ
        or raw in (b".", b"..")
        or any(c in raw for c in b"/: \t\n\0")
    ):
        raise InvalidArgument(
            f"interface name {name!r}: 1 to {IFNAMSIZ - 1} bytes without '/', ':' or spaces"
        )
    return raw


def ipv4(address: str, what: str = "address") -> bytes:
    """The 4 bytes of a dotted-quad ADDRESS, or InvalidArgument naming WHAT."""
    try:
        return _socket.inet_pton(AF_INET, address)
    except (OSError, TypeError):
        raise InvalidArgument(f"{what} {address!r}: not an IPv4 address") from None


def check_prefix(prefix: int, what: str) -> int:
    if type(prefix) is not int or not 0 <= prefix <= 32:
        raise InvalidArgument(f"{what}: prefix length {prefix!r} is not 0 to 32")
    return prefix


def mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6 or any(len(p) != 2 for p in parts):
        raise InvalidArgument(f"mac address {mac!r}: not six colon-separated hex bytes")
    try:
        return bytes.fromhex("".join(parts))
    except ValueError:
        raise InvalidArgument(f"mac address {mac!r}: not six colon-separated hex bytes") from None


def broadcast(address: bytes, prefix: int) -> bytes | None:
    """The subnet's broadcast address; None for /31 and /32 (RFC 3021: no broadcast)."""
    if prefix >= 31:
        return None
    host_bits = (1 << (32 - prefix)) - 1
    return (int.from_bytes(address, "big") | host_bits).to_bytes(4, "big")


def bridge_request(name: str, mtu: int | None = None) -> bytes:
    """RTM_NEWLINK's payload for a new bridge NAME (created down)."""
    attrs = [attr(IFLA_IFNAME, check_name(name) + b"\0")]
    if mtu is not None:
        attrs.append(attr_u32(IFLA_MTU, mtu))
    attrs.append(nested(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "bridge")))
    return ifinfo() + b"".join(attrs)


def veth_request(name: str, peer: str, peer_netns_fd: int, master: int | None = None,
                 mtu: int | None = None, peer_mac: str | None = None,
                 up: bool = False) -> bytes:  # fmt: skip
    """RTM_NEWLINK's payload for a veth pair: NAME here (enslaved to MASTER), PEER made
    directly in the namespace open at PEER_NETNS_FD; with UP, NAME is created up.

    The peer is always created down: the kernel configures it before the pair is joined and
    refuses (ENOTCONN) to open it then.
    """
    peer_attrs = [attr(IFLA_IFNAME, check_name(peer) + b"\0"),
                  attr_u32(IFLA_NET_NS_FD, peer_netns_fd)]  # fmt: skip
    if mtu is not None:
        peer_attrs.append(attr_u32(IFLA_MTU, mtu))
    if peer_mac is not None:
        peer_attrs.append(attr(IFLA_ADDRESS, mac_bytes(peer_mac)))
    # VETH_INFO_PEER is no attribute list but an ifinfomsg and attributes: no NLA_F_NESTED.
    peer_info = attr(VETH_INFO_PEER, ifinfo() + b"".join(peer_attrs))
    attrs = [attr(IFLA_IFNAME, check_name(name) + b"\0")]
    if mtu is not None:
        attrs.append(attr_u32(IFLA_MTU, mtu))
    if master is not None:
        attrs.append(attr_u32(IFLA_MASTER, master))
    attrs.append(nested(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "veth"),
                        nested(IFLA_INFO_DATA, peer_info)))  # fmt: skip
    flags = IFF_UP if up else 0
    return ifinfo(0, flags, IFF_UP if up else 0) + b"".join(attrs)


def address_request(index: int, address: str, prefix: int) -> bytes:
    """RTM_NEWADDR/RTM_DELADDR's payload: ADDRESS/PREFIX on link INDEX, with broadcast."""
    raw = ipv4(address)
    check_prefix(prefix, f"address {address}")
    attrs = attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
    brd = broadcast(raw, prefix)
    if brd is not None:
        attrs += attr(IFA_BROADCAST, brd)
    return _IFADDR.pack(AF_INET, prefix, 0, RT_SCOPE_UNIVERSE, index) + attrs


def route_request(gateway: str, index: int, dst: str = "0.0.0.0", prefix: int = 0) -> bytes:
    """RTM_NEWROUTE's payload: DST/PREFIX via GATEWAY out of link INDEX, main table."""
    gw = ipv4(gateway, "gateway")
    net = ipv4(dst, "route destination")
    check_prefix(prefix, f"route {dst}")
    if int.from_bytes(net, "big") & ((1 << (32 - prefix)) - 1):
        raise InvalidArgument(f"route {dst}/{prefix}: host bits set past the prefix")
    attrs = attr(RTA_GATEWAY, gw) + attr_u32(RTA_OIF, index)
    if prefix:
        attrs += attr(RTA_DST, net)
    head = _RTMSG.pack(AF_INET, prefix, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
                       RTN_UNICAST, 0)  # fmt: skip
    return head + attrs


# -- decoding ---------------------------------------------------------------------------


def messages(data: bytes | memoryview) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, seq, payload) of each message in one datagram; EBADMSG when malformed."""
    offset, end = 0, len(data)
    while offset + 16 <= end:
        size, kind, flags, seq, _pid = _HDR.unpack_from(data, offset)
        if size < 16 or offset + size > end:
            raise NetlinkError(EBADMSG, "read netlink reply", detail=f"message length {size}")
        yield kind, flags, seq, bytes(data[offset + 16 : offset + size])
        offset += (size + 3) & ~3


def attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """The attributes from OFFSET on, by type (NLA_F_* bits masked off; the last one wins)."""
    found: dict[int, bytes] = {}
    end = len(data)
    while offset + 4 <= end:
        size, kind = _NLA.unpack_from(data, offset)
        if size < 4 or offset + size > end:
            break  # a truncated tail: keep what was whole
        found[kind & NLA_TYPE_MASK] = data[offset + 4 : offset + size]
        offset += (size + 3) & ~3
    return found


def error_of(payload: bytes, flags: int) -> tuple[int, str]:
    """An NLMSG_ERROR's (errno, extended-ack message); errno 0 is an acknowledgement."""
    if len(payload) < 4:
        raise NetlinkError(EBADMSG, "read netlink reply", detail="short error message")
    (code,) = _I32.unpack_from(payload)
    detail = ""
    if flags & NLM_F_ACK_TLVS and len(payload) >= 20:
        # nlmsgerr: the error, then the request's header (and its payload unless capped).
        request_len = 16 if flags & NLM_F_CAPPED else _U32.unpack_from(payload, 4)[0]
        text = attrs(payload, 4 + ((request_len + 3) & ~3)).get(NLMSGERR_ATTR_MSG, b"")
        detail = text.rstrip(b"\0").decode(errors="replace")
    return -code, detail


def _cstr(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode(errors="replace")


def _u32(value: bytes | None) -> int:
    return _U32.unpack_from(value)[0] if value and len(value) >= 4 else 0


def link_of(payload: bytes) -> Link:
    """A Link from an RTM_NEWLINK message's payload."""
    _family, _type, index, flags, _change = _IFINFO.unpack_from(payload)
    found = attrs(payload, 16)
    kind = ""
    info = found.get(IFLA_LINKINFO)
    if info:
        kind = _cstr(attrs(info).get(IFLA_INFO_KIND, b""))
    mac = found.get(IFLA_ADDRESS, b"")
    return Link(index=index, name=_cstr(found.get(IFLA_IFNAME, b"")), kind=kind,
                master=_u32(found.get(IFLA_MASTER)), mac=":".join(f"{b:02x}" for b in mac),
                up=bool(flags & IFF_UP), mtu=_u32(found.get(IFLA_MTU)))  # fmt: skip


def address_of(payload: bytes) -> tuple[int, str, int]:
    """(index, address, prefix) from an RTM_NEWADDR message's payload."""
    _family, prefix, _flags, _scope, index = _IFADDR.unpack_from(payload)
    found = attrs(payload, 8)
    raw = found.get(IFA_LOCAL) or found.get(IFA_ADDRESS) or b"\0\0\0\0"
    return index, _socket.inet_ntoa(raw), prefix


def route_of(payload: bytes) -> tuple[int, int, str, int, str, int]:
    """(table, type, dst, prefix, gateway or "", oif) from an RTM_NEWROUTE message's payload."""
    _fam, dst_len, _src, _tos, table, _proto, _scope, rtype, _flags = _RTMSG.unpack_from(payload)
    found = attrs(payload, 12)
    if RTA_TABLE in found:
        table = _u32(found[RTA_TABLE])
    dst = _socket.inet_ntoa(found[RTA_DST]) if RTA_DST in found else "0.0.0.0"
    gateway = _socket.inet_ntoa(found[RTA_GATEWAY]) if RTA_GATEWAY in found else ""
    return table, rtype, dst, dst_len, gateway, _u32(found.get(RTA_OIF))


# -- the socket -------------------------------------------------------------------------


# (message type, payload, flags, operation, name): one request of Netlink.batch.
Request = tuple[int, bytes, int, str, "str | None"]


def open_socket() -> _socket.socket:
    """A NETLINK_ROUTE socket in the calling thread's network namespace, extended acks on."""
    sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC,
                          _socket.NETLINK_ROUTE)  # fmt: skip
    try:
        for option in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):  # the kernel's text; no echo
            try:
                sock.setsockopt(SOL_NETLINK, option, 1)
            except OSError:
                pass  # a kernel before 4.12: plain errnos
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock


class Netlink:
    """An rtnetlink connection to one network namespace; a context manager.

    Used by one thread at a time (see the module docstring).  Worked example, a container's
    namespace wired to bridge index BR through HOST (a Netlink of the daemon's namespace)::

        with netns.create_with(path, Netlink) as inner:  # new namespace, lo up, socket inside
            fd = netns.open_fd(path)
            try:
                host.add_veth("vs0123456789ab0", "eth0", fd, master=BR, up=True)
            finally:
                os.close(fd)
            eth0 = inner.link_index("eth0")
            inner.configure(eth0, "172.31.0.2", 16, gateway="172.31.0.1")  # one round trip
    """

    __slots__ = ("_buf", "_seq", "_sock", "netns")

    def __init__(self, netns: str | None = None) -> None:
        if netns is None:
            sock = open_socket()
        else:
            from sampan.network import netns as _netns

            sock = _netns.run_in(netns, open_socket)
        self._setup(sock, netns)

    @classmethod
    def from_socket(cls, sock: _socket.socket, netns: str | None = None) -> Netlink:
        """Wrap an open NETLINK_ROUTE socket (one made inside another namespace, or a fake)."""
        self = cls.__new__(cls)
        self._setup(sock, netns)
        return self

    def _setup(self, sock: _socket.socket, netns: str | None) -> None:
        self._sock = sock
        self.netns = netns
        self._buf = bytearray(_RECV_SIZE)
        # A random start: a stray reply to someone else's request can not pass for ours.
        self._seq = int.from_bytes(os.urandom(3), "little") + 1

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    # -- the exchange -----------------------------------------------------------------------

    def request(self, kind: int, payload: bytes, flags: int, op: str,
                name: str | None = None) -> list[bytes]:  # fmt: skip
        """Send one request (NLM_F_REQUEST | NLM_F_ACK | FLAGS) and return the payloads of
        its replies: a dump's records up to NLMSG_DONE, else whatever precedes the ack.

        A refusal raises NetlinkError(errno, OP, NAME); an interrupted dump is redone.
        """
        for _attempt in range(5):
            replies, interrupted = self._exchange([(kind, payload, flags, op, name)])
            if not interrupted:
                return replies[0]
        raise NetlinkError(4, op, name, "dump interrupted by changes 5 times")  # EINTR

    def batch(self, requests: list[Request]) -> list[list[bytes]]:
        """Send REQUESTS (no dumps) in one datagram; the kernel runs them in order and acks
        each.  Returns each one's replies; raises the first refusal, after reading every ack
        (the kernel goes on with the later requests after a refusal).
        """
        return self._exchange(requests)[0]

    def _exchange(self, requests: list[Request]) -> tuple[list[list[bytes]], bool]:
        count = len(requests)
        first = self._seq + 1 if self._seq + count < 0x7FFFFFFF else 1
        self._seq = first + count - 1
        self._sock.send(b"".join(
            message(kind, flags | NLM_F_REQUEST | NLM_F_ACK, first + i, payload)
            for i, (kind, payload, flags, _op, _name) in enumerate(requests)
        ))  # fmt: skip
        replies: list[list[bytes]] = [[] for _ in requests]
        errors: list[NetlinkError | None] = [None] * count
        done = [False] * count
        remaining = count
        interrupted = False
        view = memoryview(self._buf)
        while remaining:
            size, (port, _groups) = self._sock.recvfrom_into(self._buf)
            if port != 0:
                continue  # not from the kernel
            for mkind, mflags, mseq, body in messages(view[:size]):
                i = mseq - first
                if not 0 <= i < count or done[i]:
                    continue  # the tail of an earlier, abandoned exchange
                if mflags & NLM_F_DUMP_INTR:
                    interrupted = True
                code = 0
                if mkind == NLMSG_ERROR:
                    code, detail = error_of(body, mflags)
                    if not code and requests[i][2] & NLM_F_DUMP == NLM_F_DUMP:
                        continue  # a dump ends at NLMSG_DONE
                elif mkind == NLMSG_DONE:
                    code, detail = (-_I32.unpack_from(body)[0] if len(body) >= 4 else 0), ""
                else:
                    if mkind != NLMSG_NOOP:
                        replies[i].append(body)
                    continue
                if code:
                    errors[i] = NetlinkError(code, requests[i][3], requests[i][4], detail)
                done[i] = True
                remaining -= 1
        for error in errors:
            if error is not None:
                raise error
        return replies, interrupted

    def _label(self, index: int) -> str:
        """The link's name for an error message, else ``index N``."""
        try:
            for body in self.request(RTM_GETLINK, ifinfo(index), 0, "look up link"):
                return link_of(body).name
        except (OSError, InvalidArgument):
            pass
        return f"index {index}"

    def _on_link(self, index: int, requests: list[Request]) -> list[list[bytes]]:
        """batch(REQUESTS) about link INDEX: a refusal names the link, not its index."""
        try:
            return self.batch(requests)
        except NetlinkError as exc:
            exc.path = self._label(index)
            raise

    # -- links ------------------------------------------------------------------------------

    def link(self, name: str) -> Link | None:
        """The link NAME, or None when there is none."""
        try:
            replies = self.request(RTM_GETLINK, _by_name(name), 0, "look up link", name)
        except NetlinkError as exc:
            if exc.errno == ENODEV:
                return None
            raise
        return link_of(replies[0]) if replies else None

    def link_index(self, name: str) -> int | None:
        link = self.link(name)
        return None if link is None else link.index

    def links(self) -> list[Link]:
        return [link_of(body) for body in self.request(RTM_GETLINK, ifinfo(), NLM_F_DUMP,
                                                       "list links")]  # fmt: skip

    def add_bridge(self, name: str, mtu: int | None = None) -> int:
        """Create the bridge NAME (down); its index."""
        return self._create(bridge_request(name, mtu), "add bridge", name, name)

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, master: int | None = None,
                 mtu: int | None = None, peer_mac: str | None = None,
                 up: bool = False) -> int:  # fmt: skip
        """Create a veth pair in one request: NAME here (on bridge MASTER), PEER directly in
        the namespace open at PEER_NETNS_FD (with PEER_MAC); with UP, NAME comes up as it is
        made (the peer stays down: bring it up from its namespace).  Returns NAME's index.
        An existing NAME or PEER is EEXIST."""
        payload = veth_request(name, peer, peer_netns_fd, master, mtu, peer_mac, up)
        return self._create(payload, "add veth", f"{name} peer {peer}", name)

    def _create(self, payload: bytes, op: str, label: str, name: str) -> int:
        """RTM_NEWLINK, and in the same datagram the new link's index by NAME."""
        create = (RTM_NEWLINK, payload, NLM_F_CREATE | NLM_F_EXCL, op, label)
        lookup = (RTM_GETLINK, _by_name(name), 0, op, label)
        replies = self.batch([create, lookup])[1]
        if not replies:
            raise NetlinkError(ENODEV, op, label, "no link after its creation")
        return link_of(replies[0]).index

    def set_up(self, index: int, up: bool = True) -> None:
        op = "set link up" if up else "set link down"
        self._on_link(index, [(RTM_SETLINK, _up(index, up), 0, op, str(index))])

    def set_hairpin(self, index: int, on: bool = True) -> None:
        """Hairpin mode of bridge port INDEX: frames may leave by the port they came in on
        -- a container reaching its own published port through a host address (with
        br_netfilter loaded, the DNAT'd packet goes back out of the same port)."""
        payload = ifinfo(index, family=AF_BRIDGE) + nested(
            IFLA_PROTINFO, attr(IFLA_BRPORT_MODE, bytes([1 if on else 0]))
        )
        self.request(RTM_SETLINK, payload, 0, "set hairpin of", self._label(index))

    def set_master(self, index: int, master: int) -> None:
        """Enslave link INDEX to bridge MASTER (0: release it from its bridge)."""
        payload = ifinfo(index) + attr_u32(IFLA_MASTER, master)
        try:
            self.request(RTM_SETLINK, payload, 0, f"set master {master} of", str(index))
        except NetlinkError as exc:
            exc.op = f"set master {self._label(master)} of"
            exc.path = self._label(index)
            raise

    def delete_link(self, name: str) -> bool:
        """Delete the link NAME (a veth takes its peer along); False when there was none.

        Slow (~20 ms: the kernel waits for RCU grace periods); removing a namespace instead
        destroys its links in the background.
        """
        try:
            self.request(RTM_DELLINK, _by_name(name), 0, "delete link", name)
        except NetlinkError as exc:
            if exc.errno == ENODEV:
                return False
            raise
        return True

    # -- addresses and routes ---------------------------------------------------------------

    def add_address(self, index: int, address: str, prefix: int) -> None:
        """Add the IPv4 ADDRESS/PREFIX (and its broadcast) to link INDEX; EEXIST if there."""
        self._on_link(index, [_add_address(index, address, prefix)])

    def del_address(self, index: int, address: str, prefix: int) -> None:
        payload = address_request(index, address, prefix)
        op = f"delete address {address}/{prefix} on"
        self._on_link(index, [(RTM_DELADDR, payload, 0, op, str(index))])

    def addresses(self, index: int | None = None) -> list[tuple[int, str, int]]:
        """IPv4 addresses as (link index, address, prefix), of link INDEX or of all."""
        payload = _IFADDR.pack(AF_INET, 0, 0, 0, 0)
        found = [address_of(body) for body in self.request(RTM_GETADDR, payload, NLM_F_DUMP,
                                                           "list addresses")]  # fmt: skip
        return found if index is None else [a for a in found if a[0] == index]

    def add_route(self, gateway: str, index: int, dst: str = "0.0.0.0", prefix: int = 0) -> None:
        """Route DST/PREFIX (default: the default route) via GATEWAY out of link INDEX."""
        self._on_link(index, [_add_route(gateway, index, dst, prefix)])

    def configure(self, index: int, address: str, prefix: int,
                  gateway: str | None = None) -> None:  # fmt: skip
        """ADDRESS/PREFIX on link INDEX, the link up, and a default route via GATEWAY (if
        any): add_address + set_up + add_route in one datagram, one round trip."""
        requests = [_add_address(index, address, prefix),
                    (RTM_SETLINK, _up(index, True), 0, "set link up", str(index))]  # fmt: skip
        if gateway is not None:
            requests.append(_add_route(gateway, index))
        self._on_link(index, requests)

    def routes(self) -> list[tuple[str, int, str, int]]:
        """The main table's IPv4 unicast routes: (dst, prefix, gateway or "", out link)."""
        payload = _RTMSG.pack(AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
        out = []
        for body in self.request(RTM_GETROUTE, payload, NLM_F_DUMP, "list routes"):
            table, rtype, dst, prefix, gateway, oif = route_of(body)
            if table == RT_TABLE_MAIN and rtype == RTN_UNICAST:
                out.append((dst, prefix, gateway, oif))
        return out


def _by_name(name: str) -> bytes:
    return ifinfo() + attr(IFLA_IFNAME, check_name(name) + b"\0")


def _up(index: int, up: bool) -> bytes:
    return ifinfo(index, IFF_UP if up else 0, IFF_UP)


def _add_address(index: int, address: str, prefix: int) -> Request:
    payload = address_request(index, address, prefix)
    return (RTM_NEWADDR, payload, NLM_F_CREATE | NLM_F_EXCL,
            f"add address {address}/{prefix} on", str(index))  # fmt: skip


def _add_route(gateway: str, index: int, dst: str = "0.0.0.0", prefix: int = 0) -> Request:
    payload = route_request(gateway, index, dst, prefix)
    return (RTM_NEWROUTE, payload, NLM_F_CREATE | NLM_F_EXCL,
            f"add route {dst}/{prefix} via {gateway} dev", str(index))  # fmt: skip
