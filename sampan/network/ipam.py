"""IPv4 address management: subnets checked, addresses handed out, overlaps refused.

Pure arithmetic on integers (no ``ipaddress``: it costs milliseconds to import
on a path every container start takes).  Which addresses are taken is the
caller's: the engine keeps them in its database, one row per endpoint with a
UNIQUE (network, address) index, so a daemon killed at any moment never hands
one out twice and a restart finds them all.

    pool = Pool.parse("172.31.0.0/16", gateway="", ip_range="172.31.5.0/24")
    addr = pool.allocate(taken={...}, after=last)   # round robin, as docker: a
                                                    # released address is reused last
"""

from __future__ import annotations

import socket

from sampan.errors import InvalidArgument, SampanError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

__all__ = [
    "Exhausted",
    "Pool",
    "contains",
    "first_free",
    "overlaps",
    "parse_cidr",
    "parse_ip",
    "to_ip",
]


class Exhausted(SampanError):
    """No address left in the pool (docker: "no available IPv4 addresses on this network")."""


def parse_ip(text: str, field: str = "address") -> int:
    """Dotted-quad TEXT as an integer; InvalidArgument naming FIELD otherwise."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 and int(p) < 256 for p in parts):
        raise InvalidArgument(f"{field}: invalid IPv4 address {text!r}")
    return int.from_bytes(socket.inet_aton(text), "big")


def to_ip(value: int) -> str:
    return socket.inet_ntoa(value.to_bytes(4, "big"))


def parse_cidr(text: str, field: str = "subnet") -> tuple[int, int]:
    """ "A.B.C.D/N" as (network, prefix), the address masked to its network."""
    addr, slash, prefix = text.partition("/")
    if not slash or not prefix.isdigit() or not 0 <= int(prefix) <= 32:
        raise InvalidArgument(f"{field}: invalid CIDR {text!r} (expected A.B.C.D/N)")
    bits = int(prefix)
    return parse_ip(addr, field) & _mask(bits), bits


def _mask(prefix: int) -> int:
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


def contains(net: tuple[int, int], addr: int) -> bool:
    return addr & _mask(net[1]) == net[0]


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two networks share an address (one contains the other)."""
    prefix = min(a[1], b[1])
    return a[0] & _mask(prefix) == b[0] & _mask(prefix)


class Pool:
    """One network's addresses: SUBNET, its GATEWAY, and the RANGE containers get."""

    __slots__ = ("gateway", "range", "subnet")

    def __init__(self, subnet: tuple[int, int], gateway: int, range_: tuple[int, int]) -> None:
        self.subnet = subnet
        self.gateway = gateway
        self.range = range_

    @classmethod
    def parse(cls, subnet: str, gateway: str = "", ip_range: str = "") -> Pool:
        """A pool from docker's IPAM config; each field checked and named in errors."""
        net = parse_cidr(subnet, "Subnet")
        if net[1] > 30:
            raise InvalidArgument(f"Subnet: {subnet} is too small (at most /30)")
        if ip_range:
            rng = parse_cidr(ip_range, "IPRange")
            if not (rng[1] >= net[1] and contains(net, rng[0])):
                raise InvalidArgument(f"IPRange: {ip_range} is not inside subnet {subnet}")
        else:
            rng = net
        if gateway:
            gw = parse_ip(gateway, "Gateway")
            if not contains(net, gw) or gw in (net[0], net[0] | ~_mask(net[1]) & 0xFFFFFFFF):
                raise InvalidArgument(f"Gateway: {gateway} is not a host address of {subnet}")
        else:
            gw = net[0] + 1
        return cls(net, gw, rng)

    @property
    def cidr(self) -> str:
        return f"{to_ip(self.subnet[0])}/{self.subnet[1]}"

    @property
    def broadcast(self) -> int:
        return self.subnet[0] | (~_mask(self.subnet[1]) & 0xFFFFFFFF)

    def usable(self, addr: int) -> bool:
        """ADDR is in the subnet and is not its network, broadcast or gateway address."""
        return contains(self.subnet, addr) and addr not in (
            self.subnet[0],
            self.broadcast,
            self.gateway,
        )

    def check_static(self, text: str, taken: Collection[int], field: str = "IPv4Address") -> int:
        """A requested address: in the subnet, not reserved, not in use."""
        addr = parse_ip(text, field)
        if not self.usable(addr):
            raise InvalidArgument(f"{field}: {text} is not a usable address of {self.cidr}")
        if addr in taken:
            from sampan.errors import Conflict

            raise Conflict(f"{field}: address {text} is already in use")
        return addr

    def allocate(self, taken: Collection[int], after: int = 0) -> int:
        """The first free address of the range after AFTER, wrapping around (docker's
        round robin: a released address is handed out again only once the rest are used)."""
        first, prefix = self.range
        size = 1 << (32 - prefix)
        start = (after - first + 1) % size if contains(self.range, after) else 0
        for i in range(size):
            addr = first + (start + i) % size
            if self.usable(addr) and addr not in taken:
                return addr
        raise Exhausted(f"no available IPv4 addresses on network {self.cidr}")


def first_free(candidates: Iterable[str], used: Iterable[tuple[int, int]]) -> str:
    """The first of CANDIDATES (CIDRs) overlapping none of USED -- the default bridge's
    subnet, chosen to miss the host's routes as dockerd does."""
    used = list(used)
    for cidr in candidates:
        net = parse_cidr(cidr)
        if not any(overlaps(net, u) for u in used):
            return cidr
    raise Exhausted("no free private subnet for the network (give one with --subnet/--bip)")
