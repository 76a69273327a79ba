"""sampan's firewall: NAT, published ports and network isolation in its own nftables table.

Everything lives in one table, ``ip sampan`` (a second daemon passes a name of its
own); no other table is read, flushed or reordered -- this host's ``ip nat`` and
``ip filter`` belong to podman's netavark.  The table:

    set bridges     every sampan bridge (the isolation rules look it up)
    map ports_any   (proto . port)        -> container address . port   host_ip ""
    map ports_ip    (proto . addr . port) -> container address . port   host_ip given
    chain published      dnat to the lookup of each map (a miss falls through)
    chain prerouting     nat prerouting dstnat: ``fib daddr type local jump published``
    chain output         nat output -100: the same, for the host's own processes
    chain n-<bridge>     nat postrouting srcnat: masquerade (outbound, hairpin, localhost)
    chain f-<bridge>     filter forward: isolation, policy accept
    chain i-<bridge>     filter input: no 127.0.0.0/8 from the bridge; its DNS server

Published ports are map ELEMENTS, not rules: a connection's first packet costs
one hash lookup however many containers publish ports, publishing is one
``create element`` (the kernel refuses a (proto, port) published twice: a
Conflict, atomically), and unpublishing is one ``delete element`` of exactly
that container's keys.  Each element's comment names its owner and bridge;
``published()`` reads the kernel back from them.  The Firewall keeps an index
owner -> rules (loaded from the kernel on first use, replaced by ``reconcile``)
so ``unpublish(owner)`` needs no read first: one libnftables call.  If the
index was stale (someone else changed our table), the call fails, the index
is read again and the call retried once.  Why not a chain per container,
removed by name: libnftables reads every chain of the namespace before any
``delete``, so that costs grow with the number of containers (4 ms at 500).

Networks are rare operations and keep a base chain per bridge, replaced or
removed by name in one transaction (``add chain X; delete chain X`` removes X
whether or not it exists; ``delete chain`` takes its rules with it).

Published ports are kernel DNAT, without docker's userland proxy: a proxy
copies every byte through a process (throughput, a process per port, the
client's address lost), while DNAT leaves the data path in the kernel.  What
the proxy gave for free is rebuilt with rules and two settings of the engine:

* ``fib daddr type local``: the port answers on every local address (or on
  ``host_ip`` only), in prerouting (other hosts, containers) and output (the
  host's processes).
* localhost: DNAT of 127.0.0.1 to a container is routed out of the bridge only
  with ``net.ipv4.conf.<bridge>.route_localnet=1`` (the engine sets it);
  ``n-<bridge>`` masquerades loopback sources leaving by the bridge, so the
  container answers the bridge's address rather than its own 127.0.0.1.
* hairpin: a container reaching a published port on its own bridge through a
  host address is DNAT'd back out of that bridge and masqueraded (source in
  the subnet, out by the bridge, ``ct status dnat``) so the reply returns
  through the host to be un-NAT'd.  With br_netfilter loaded (it is on this
  host) the packet leaves by the bridge PORT it came in by, which the bridge
  allows only with hairpin mode on that port: the engine must set it on every
  container's veth (IFLA_BRPORT_MODE), as docker does without its proxy.

Isolation is ``f-<bridge>``, policy accept, dropping only what isolation
demands: from this bridge to another sampan bridge; for an internal network
everything in or out except between its members; with ``icc=False``, bridge to
same bridge (seen only when br_netfilter is loaded).  Connections DNAT'd to a
published port are exempt (``ct status & dnat``): a port published to other
hosts is published to other networks too.  Another table's forward chain
with policy drop still drops (each base chain decides); our accept cannot
override it.
"""

from __future__ import annotations

import _thread

from sampan.errors import Conflict, InvalidArgument, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from sampan.network.nftables import Nft

__all__ = [
    "PROTOCOLS",
    "Firewall",
    "NetRule",
    "PortRule",
    "parse_networks",
    "parse_published",
    "render_ensure",
    "render_network",
    "render_publish",
    "render_reconcile",
    "render_remove_all",
    "render_remove_network",
    "render_unpublish",
]

DEFAULT_TABLE = "sampan"
PROTOCOLS = ("tcp", "udp")
_PROTO_NUMBERS = {6: "tcp", 17: "udp"}
_TABLE_COMMENT = "sampan's NAT, published ports and isolation; managed by sampan"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_OWNER_MAX = 100  # the element comment "<owner> <bridge>" stays within nft's 128

# chain name prefix -> (type, hook, priority)
_NET_NAT = ("n-", "nat", "postrouting", "srcnat")
_NET_FILTER = ("f-", "filter", "forward", "filter")
_NET_INPUT = ("i-", "filter", "input", "filter")  # the network's DNS server: its own only


# -- validation -------------------------------------------------------------------------


def _ipv4(text: object, field: str) -> int:
    """Dotted-quad TEXT as an integer; InvalidArgument naming FIELD otherwise."""
    if not isinstance(text, str):
        raise InvalidArgument(f"{field}: expected an IPv4 address, got {text!r}")
    if ":" in text:
        raise Unsupported(f"{field}: IPv6 address {text!r} (the firewall is IPv4 only)")
    parts = text.split(".")
    if len(parts) != 4 or not all(
        p.isascii() and p.isdigit() and len(p) <= 3 and int(p) < 256 for p in parts
    ):
        raise InvalidArgument(f"{field}: invalid IPv4 address {text!r}")
    value = 0
    for p in parts:
        value = value << 8 | int(p)
    return value


def _dotted(value: int) -> str:
    return ".".join(str(value >> s & 0xFF) for s in (24, 16, 8, 0))


def _cidr(text: object, field: str) -> str:
    """ "A.B.C.D/N" with its host bits cleared (the form the kernel lists)."""
    if not isinstance(text, str):
        raise InvalidArgument(f"{field}: expected a CIDR, got {text!r}")
    addr, slash, bits = text.partition("/")
    if not slash or not (bits.isascii() and bits.isdigit()) or not 1 <= int(bits) <= 32:
        raise InvalidArgument(f"{field}: invalid IPv4 CIDR {text!r} (expected A.B.C.D/N, N 1-32)")
    mask = (0xFFFFFFFF << (32 - int(bits))) & 0xFFFFFFFF
    return f"{_dotted(_ipv4(addr, field) & mask)}/{int(bits)}"


def _name(value: object, field: str, longest: int, what: str) -> str:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= longest
        or not _NAME_CHARS.issuperset(value)
        or value in (".", "..")
    ):
        raise InvalidArgument(f"{field}: invalid {what} {value!r} (1-{longest} of [A-Za-z0-9_.-])")
    return value


def _ifname(value: object, field: str = "bridge") -> str:
    return _name(value, field, 15, "interface name")


def _owner(value: object) -> str:
    return _name(value, "owner", _OWNER_MAX, "container id")


def _table(value: object) -> str:
    name = _name(value, "table", 64, "table name")
    if not name[0].isalpha():
        raise InvalidArgument(f"table: {name!r} must start with a letter")
    return name


def _port(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidArgument(f"{field}: {value!r} is not a port (1-65535)")
    return value


def _flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{field}: expected true or false, got {value!r}")
    return value


# -- the model: frozen values, checked where they are made --------------------------------


class _Value:
    """A frozen value class: equality, hash and repr over ``_fields`` (dataclasses
    would cost the daemon ~25 ms of imports)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Value) or type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({fields})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")


class NetRule(_Value):
    """One bridge network's NAT and isolation.  SUBNET is kept masked (10.0.0.0/8).

    masquerade  SNAT traffic from the subnet leaving by another interface
    internal    nothing forwarded in or out of the bridge except between its members
    icc         the bridge's containers may talk to each other
    dns         the address of the network's DNS server (its gateway), "" for none: port
                53 there answers only what comes in by the bridge (another network's
                containers reach the gateway as a host address, and would learn this
                network's names)
    """

    __slots__ = ("bridge", "dns", "icc", "internal", "masquerade", "subnet")
    _fields = ("bridge", "subnet", "masquerade", "internal", "icc", "dns")
    bridge: str
    subnet: str
    masquerade: bool
    internal: bool
    icc: bool
    dns: str

    def __init__(
        self,
        bridge: str,
        subnet: str,
        masquerade: bool = True,
        internal: bool = False,
        icc: bool = True,
        dns: str = "",
    ) -> None:
        put = object.__setattr__
        put(self, "bridge", _ifname(bridge))
        put(self, "subnet", _cidr(subnet, "subnet"))
        put(self, "masquerade", _flag(masquerade, "masquerade"))
        put(self, "internal", _flag(internal, "internal"))
        put(self, "icc", _flag(icc, "icc"))
        put(self, "dns", _dotted(_ipv4(dns, "dns")) if dns else "")


class PortRule(_Value):
    """One published port: HOST_IP:HOST_PORT/PROTO -> CONTAINER_IP:CONTAINER_PORT.

    HOST_IP "" is every local address (127.0.0.1 included); "0.0.0.0" is kept as "".
    """

    __slots__ = (
        "bridge", "container_ip", "container_port", "host_ip", "host_port", "owner", "proto",
    )  # fmt: skip
    _fields = (
        "owner", "proto", "host_ip", "host_port", "container_ip", "container_port", "bridge",
    )  # fmt: skip
    owner: str
    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int
    bridge: str

    def __init__(
        self,
        owner: str,
        proto: str,
        host_ip: str,
        host_port: int,
        container_ip: str,
        container_port: int,
        bridge: str,
    ) -> None:
        put = object.__setattr__
        put(self, "owner", _owner(owner))
        if proto not in PROTOCOLS:
            if proto == "sctp":
                raise Unsupported("proto: sctp port publishing")
            raise InvalidArgument(f"proto: {proto!r} is not tcp or udp")
        put(self, "proto", proto)
        if host_ip != "" and _ipv4(host_ip, "host_ip") == 0:
            host_ip = ""
        put(self, "host_ip", host_ip)
        put(self, "host_port", _port(host_port, "host_port"))
        if _ipv4(container_ip, "container_ip") == 0:
            raise InvalidArgument("container_ip: 0.0.0.0 is not a container address")
        put(self, "container_ip", container_ip)
        put(self, "container_port", _port(container_port, "container_port"))
        put(self, "bridge", _ifname(bridge))

    def overlaps(self, other: PortRule) -> bool:
        """Both claim one host address and port (every address claims them all)."""
        return (
            self.proto == other.proto
            and self.host_port == other.host_port
            and (not self.host_ip or not other.host_ip or self.host_ip == other.host_ip)
        )

    def _map(self) -> str:
        return "ports_ip" if self.host_ip else "ports_any"

    def _element_key(self) -> str:
        if self.host_ip:
            return f"{self.proto} . {self.host_ip} . {self.host_port}"
        return f"{self.proto} . {self.host_port}"

    def _element(self) -> str:
        return (
            f'{self._element_key()} comment "{self.owner} {self.bridge}" : '
            f"{self.container_ip} . {self.container_port}"
        )


# -- rendering (pure) -------------------------------------------------------------------


def _base(table: str, name: str, type_: str, hook: str, prio: str) -> str:
    return (
        f"add chain ip {table} {name} "
        f"{{ type {type_} hook {hook} priority {prio}; policy accept; }}"
    )


def _skeleton(table: str) -> list[str]:
    """The table, its set and maps, and its fixed chains with their rules.

    Each fixed chain is flushed and refilled in the same transaction, so this is
    idempotent: an existing table ends exactly as it was (the maps keep their
    elements, the per-network chains are not touched).
    """
    t = f"ip {table}"
    return [
        f'add table {t} {{ comment "{_TABLE_COMMENT}"; }}',
        f"add set {t} bridges {{ type ifname; }}",
        f"add map {t} ports_any {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}",
        f"add map {t} ports_ip "
        f"{{ type inet_proto . ipv4_addr . inet_service : ipv4_addr . inet_service; }}",
        f"add chain {t} published",
        f"flush chain {t} published",
        f"add rule {t} published dnat ip to meta l4proto . ip daddr . th dport map @ports_ip",
        f"add rule {t} published dnat ip to meta l4proto . th dport map @ports_any",
        _base(table, "prerouting", "nat", "prerouting", "dstnat"),
        f"flush chain {t} prerouting",
        f"add rule {t} prerouting fib daddr type local jump published",
        _base(table, "output", "nat", "output", "-100"),
        f"flush chain {t} output",
        f"add rule {t} output fib daddr type local jump published",
    ]


def _chain(table: str, kind: tuple[str, str, str, str], bridge: str, replace: bool) -> list[str]:
    """Create chain KIND+BRIDGE; with REPLACE, an existing one (and its rules) goes first."""
    prefix, type_, hook, prio = kind
    spec = _base(table, prefix + bridge, type_, hook, prio)
    if replace:
        return [spec, f"delete chain ip {table} {prefix}{bridge}", spec]
    return [spec]


def _network_lines(table: str, net: NetRule, replace: bool) -> list[str]:
    br, subnet = net.bridge, net.subnet
    nat, filt = f"ip {table} n-{br}", f"ip {table} f-{br}"
    described = (
        f"hairpin subnet={subnet} masquerade={int(net.masquerade)} "
        f"internal={int(net.internal)} icc={int(net.icc)}" + (f" dns={net.dns}" if net.dns else "")
    )
    lines = [f'add element ip {table} bridges {{ "{br}" }}']
    lines += _chain(table, _NET_NAT, br, replace)
    lines += [
        f'add rule {nat} oifname "{br}" ip saddr 127.0.0.0/8 masquerade comment "localhost"',
        f'add rule {nat} oifname "{br}" ip saddr {subnet} ct status dnat masquerade '
        f'comment "{described}"',
    ]
    if net.masquerade and not net.internal:
        lines.append(
            f'add rule {nat} oifname != "{br}" ip saddr {subnet} masquerade comment "outbound"'
        )
    lines += _chain(table, _NET_FILTER, br, replace)
    if net.internal:
        lines += [
            f'add rule {filt} iifname "{br}" oifname != "{br}" drop comment "internal: out"',
            f'add rule {filt} oifname "{br}" iifname != "{br}" drop comment "internal: in"',
        ]
    else:
        # `ct status & dnat == 0`: "ct status != dnat" would compare the whole bitmask.
        lines.append(
            f'add rule {filt} iifname "{br}" oifname != "{br}" oifname @bridges '
            f'ct status & dnat == 0 drop comment "isolation"'
        )
    if not net.icc:
        lines.append(
            f'add rule {filt} iifname "{br}" oifname "{br}" ct status & dnat == 0 drop '
            f'comment "icc off"'
        )
    lines += _chain(table, _NET_INPUT, br, replace)
    # route_localnet (set for 127.0.0.1 -> -p) would also deliver a container's own packets
    # to 127.0.0.0/8 via its gateway to the host's loopback-only services: only replies of
    # connections DNAT'd into the bridge may come in with such a destination.
    lines.append(
        f'add rule ip {table} i-{br} iifname "{br}" ip daddr 127.0.0.0/8 '
        f'ct status & dnat == 0 drop comment "localnet"'
    )
    if net.dns:
        lines.append(
            f"add rule ip {table} i-{br} ip daddr {net.dns} meta l4proto {{ tcp, udp }} "
            f'th dport 53 iifname != "{br}" drop comment "dns={net.dns}"'
        )
    return lines


def _elements(verb: str, table: str, rules: Iterable[PortRule], keys_only: bool) -> list[str]:
    """One VERB element command per map for RULES (none for a map without any)."""
    lines = []
    for name in ("ports_any", "ports_ip"):
        mine = [r for r in rules if r._map() == name]
        if mine:
            items = ", ".join(r._element_key() if keys_only else r._element() for r in mine)
            lines.append(f"{verb} element ip {table} {name} {{ {items} }}")
    return lines


def group(rules: Iterable[PortRule]) -> dict[str, list[PortRule]]:
    """RULES by owner, duplicates dropped; two rules claiming one address and port is a
    Conflict naming it."""
    owners: dict[str, list[PortRule]] = {}
    seen: dict[tuple[str, int], list[PortRule]] = {}
    for r in rules:
        if not isinstance(r, PortRule):
            raise InvalidArgument(f"ports: expected a PortRule, got {type(r).__name__}")
        same_port = seen.setdefault((r.proto, r.host_port), [])
        if r in same_port:
            continue
        for other in same_port:
            if r.overlaps(other):
                raise Conflict(
                    f"host_port: {r.proto} {r.host_ip or '0.0.0.0'}:{r.host_port} is "
                    f"published twice (by {other.owner} and {r.owner})"
                )
        same_port.append(r)
        owners.setdefault(r.owner, []).append(r)
    return owners


def render_ensure(table: str = DEFAULT_TABLE) -> str:
    """The table's skeleton; on an existing table it changes nothing."""
    return "\n".join(_skeleton(_table(table))) + "\n"


def render_network(net: NetRule, table: str = DEFAULT_TABLE) -> str:
    """NET's chains added, or replaced in the same transaction if the bridge has them."""
    table = _table(table)
    return "\n".join(_skeleton(table) + _network_lines(table, net, replace=True)) + "\n"


def render_remove_network(bridge: str, table: str = DEFAULT_TABLE) -> str:
    """BRIDGE's chains and set element removed, whether there or not."""
    table, br = _table(table), _ifname(bridge)
    element = f'ip {table} bridges {{ "{br}" }}'
    lines = [*_skeleton(table), f"add element {element}", f"delete element {element}"]
    for kind in (_NET_NAT, _NET_FILTER, _NET_INPUT):
        lines += _chain(table, kind, br, replace=True)[:2]
    return "\n".join(lines) + "\n"


def render_publish(
    new: Mapping[str, list[PortRule]],
    old: Mapping[str, list[PortRule]] | None = None,
    table: str = DEFAULT_TABLE,
    skeleton: bool = True,
) -> str:
    """NEW's rules created (the kernel refuses a key already there); OLD's deleted first
    in the same transaction (an owner's previous rules, replaced).  SKELETON=False
    leaves out the table's skeleton (when it is known to be there: faster)."""
    table = _table(table)
    lines = _skeleton(table) if skeleton else []
    lines += _elements("delete", table, [r for rs in (old or {}).values() for r in rs], True)
    lines += _elements("create", table, [r for rs in new.values() for r in rs], False)
    return "\n".join(lines) + "\n"


def render_unpublish(rules: Iterable[PortRule], table: str = DEFAULT_TABLE) -> str:
    """RULES' elements deleted ("" for no rules)."""
    lines = _elements("delete", _table(table), list(rules), True)
    return "\n".join(lines) + "\n" if lines else ""


def render_reconcile(
    nets: Iterable[NetRule], ports: Iterable[PortRule], table: str = DEFAULT_TABLE
) -> str:
    """The whole table rebuilt: deleted and made again in one transaction."""
    table = _table(table)
    lines = [f"add table ip {table}", f"delete table ip {table}", *_skeleton(table)]
    seen: set[str] = set()
    for net in nets:
        if not isinstance(net, NetRule):
            raise InvalidArgument(f"nets: expected a NetRule, got {type(net).__name__}")
        if net.bridge in seen:
            raise InvalidArgument(f"bridge: {net.bridge} is given twice")
        seen.add(net.bridge)
        lines += _network_lines(table, net, replace=False)
    lines += _elements("create", table, [r for rs in group(ports).values() for r in rs], False)
    return "\n".join(lines) + "\n"


def render_remove_all(table: str = DEFAULT_TABLE) -> str:
    table = _table(table)
    return f"add table ip {table}\ndelete table ip {table}\n"


# -- reading back (pure) ----------------------------------------------------------------


def _objects(listing: str, kind: str, table: str) -> list[dict[str, object]]:
    """The KIND objects ("rule", "map"...) of TABLE in a JSON listing."""
    from sampan._json import loads

    doc = loads(listing) if listing.strip() else {}
    items = doc.get("nftables", []) if isinstance(doc, dict) else []
    found = []
    for item in items:
        obj = item.get(kind) if isinstance(item, dict) else None
        if isinstance(obj, dict) and obj.get("table") == table:
            found.append(obj)
    return found


def _bad(what: object) -> InvalidArgument:
    return InvalidArgument(f"unexpected element in our table: {what!r}"[:200])


def _port_rule(map_name: str, item: Any) -> PortRule:
    """A map element of the JSON listing -> the PortRule that made it."""
    try:
        key, data = item
        elem = key["elem"]
        values = elem["val"]["concat"]
        owner, bridge = elem["comment"].split()
        container_ip, container_port = data["concat"]
        if map_name == "ports_ip":
            proto, host_ip, host_port = values
        else:
            (proto, host_port), host_ip = values, ""
    except (TypeError, ValueError, KeyError, AttributeError):
        raise _bad(item) from None
    proto = _PROTO_NUMBERS.get(proto, proto)
    return PortRule(owner, proto, host_ip, host_port, container_ip, container_port, bridge)


def parse_published(listing: str, table: str = DEFAULT_TABLE) -> list[PortRule]:
    """The published ports in a JSON listing of TABLE (``list table ip T`` with json)."""
    found = []
    for obj in _objects(listing, "map", table):
        name = obj.get("name")
        elems = obj.get("elem", [])
        if name in ("ports_any", "ports_ip") and isinstance(elems, list):
            found += [_port_rule(str(name), item) for item in elems]
    return found


def parse_networks(listing: str, table: str = DEFAULT_TABLE) -> list[NetRule]:
    """The networks in a JSON listing of TABLE (from each hairpin rule's comment)."""
    found = []
    for rule in _objects(listing, "rule", table):
        chain, comment = rule.get("chain"), rule.get("comment")
        if not (isinstance(chain, str) and chain.startswith("n-") and isinstance(comment, str)):
            continue
        words = comment.split()
        if not words or words[0] != "hairpin":
            continue
        fields = dict(w.partition("=")[::2] for w in words[1:])
        try:
            net = NetRule(
                chain[2:],
                fields["subnet"],
                masquerade=fields["masquerade"] == "1",
                internal=fields["internal"] == "1",
                icc=fields["icc"] == "1",
                dns=fields.get("dns", ""),
            )
        except KeyError:
            raise _bad(comment) from None
        found.append(net)
    return found


# -- the kernel -------------------------------------------------------------------------


class Firewall:
    """sampan's rules in the kernel, one libnftables transaction per call.

        fw = Firewall()
        fw.ensure()
        fw.set_network(NetRule("sampan0", "172.31.0.0/16"))
        fw.publish([PortRule(cid, "tcp", "", 8080, "172.31.0.2", 80, "sampan0")])
        fw.unpublish(cid)

    The Nft context is made on first use, in the caller's network namespace, and
    kept.  One Firewall per table and namespace: its index of published ports
    assumes nobody else writes the table (and recovers, one retry, if someone did).
    Thread-safe.
    """

    def __init__(self, nft: Nft | None = None, *, table: str = DEFAULT_TABLE) -> None:
        self.table = _table(table)
        self._nft = nft
        self._owners: dict[str, list[PortRule]] | None = None
        self._lock = _thread.allocate_lock()

    @property
    def nft(self) -> Nft:
        if self._nft is None:
            from sampan.network.nftables import Nft

            self._nft = Nft()
        return self._nft

    def ensure(self) -> None:
        """Table, set, maps and fixed chains exist; an existing table is left as it is."""
        self.nft.run(render_ensure(self.table))

    def set_network(self, net: NetRule) -> None:
        """Add NET's rules, or replace that bridge's, atomically."""
        if not isinstance(net, NetRule):
            raise InvalidArgument(f"net: expected a NetRule, got {type(net).__name__}")
        self.nft.run(render_network(net, self.table))

    def remove_network(self, bridge: str) -> None:
        """Remove BRIDGE's rules (none is fine)."""
        self.nft.run(render_remove_network(bridge, self.table))

    def publish(self, rules: list[PortRule]) -> None:
        """Publish RULES in one transaction, all or nothing.  Each owner named in RULES
        ends with exactly its rules given here (its earlier ones replaced).  A port
        another owner publishes (or RULES twice) is a Conflict.  If the kernel refuses
        (our index stale, the table deleted), the kernel is read again and the call
        retried once, skeleton included."""
        from sampan.network.nftables import NftError

        new = group(rules)
        if not new:
            return
        with self._lock:
            for retry in (False, True):
                owners = self._index()
                _check_free(new, owners)
                old = {o: owners[o] for o in new if o in owners}
                # The skeleton (~0.3 ms) only when retrying: the table may have gone.
                try:
                    self.nft.run(render_publish(new, old, self.table, skeleton=retry))
                except NftError as exc:
                    self._owners = None  # maybe stale: read the kernel and try once more
                    if not retry:
                        continue
                    if "File exists" in str(exc):
                        raise Conflict(f"host_port: already published ({exc})") from None
                    raise
                owners.update(new)
                return

    def unpublish(self, owner: str) -> None:
        """Remove every published port of OWNER (none is fine)."""
        from sampan.network.nftables import NftError

        _owner(owner)
        with self._lock:
            for retry in (False, True):
                rules = self._index().get(owner)
                if not rules:
                    return
                try:
                    self.nft.run(render_unpublish(rules, self.table))
                except NftError:
                    self._owners = None  # maybe stale: read the kernel and try once more
                    if retry:
                        raise
                    continue
                self._index().pop(owner, None)
                return

    def reconcile(self, nets: list[NetRule], ports: list[PortRule]) -> None:
        """Make our table exactly NETS and PORTS, atomically (after a daemon restart)."""
        owners = group(ports)
        with self._lock:
            self._owners = None
            self.nft.run(render_reconcile(nets, ports, self.table))
            self._owners = owners

    def remove_all(self) -> None:
        """Delete our table (none is fine)."""
        with self._lock:
            self._owners = None
            self.nft.run(render_remove_all(self.table))
            self._owners = {}

    def published(self) -> list[PortRule]:
        """The published ports in the kernel now."""
        with self._lock:
            found = parse_published(self._listing(), self.table)
            self._owners = group(found)
            return found

    def networks(self) -> list[NetRule]:
        """The networks in the kernel now."""
        return parse_networks(self._listing(), self.table)

    def _listing(self) -> str:
        from sampan.network.nftables import NftError

        try:
            return self.nft.run(f"list table ip {self.table}", json=True)
        except NftError as exc:
            if "No such file or directory" in str(exc):
                return ""
            raise

    def _index(self) -> dict[str, list[PortRule]]:
        """Owner -> published rules; read from the kernel when not known."""
        if self._owners is None:
            self._owners = group(parse_published(self._listing(), self.table))
        return self._owners


def _check_free(new: Mapping[str, list[PortRule]], owners: Mapping[str, list[PortRule]]) -> None:
    """Conflict if a rule of NEW claims a port another owner publishes."""
    taken: dict[tuple[str, int], list[PortRule]] = {}
    for owner, rules in owners.items():
        if owner not in new:
            for r in rules:
                taken.setdefault((r.proto, r.host_port), []).append(r)
    for rules in new.values():
        for r in rules:
            for other in taken.get((r.proto, r.host_port), ()):
                if r.overlaps(other):
                    raise Conflict(
                        f"host_port: {r.proto} {r.host_ip or '0.0.0.0'}:{r.host_port} "
                        f"is already published by {other.owner}"
                    )
