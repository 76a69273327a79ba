"""Networks: docker's bridge networks, their records and verbs (create, ls, inspect, rm,
prune, connect, disconnect), and the host side of each -- its Linux bridge, its gateway
address, its firewall rules, its DNS listener.

    ROOT/engine.db  networks   id, name UNIQUE, created, doc (JSON: driver, subnet,
                               gateway, range, bridge, options, labels), last (IPAM's
                               round-robin position)
                    endpoints  (container, network) -> config (JSON: Aliases, IPAMConfig,
                               Links, MacAddress), slot (ethN), address (while running;
                               '' when not), mac; UNIQUE (network, address) for addresses

The predefined networks are docker's three: ``bridge`` (the default: Linux bridge
``sampan0`` or the daemon's --bridge, subnet --bip or the first of a few private /16s
that misses the host's routes), ``host`` and ``none``; they cannot be removed.  A
daemon started with ``--bridge none`` has no ``bridge`` network, and containers on the
default network get a namespace with loopback only (what every sampan had before).

IPAM is the endpoints table: an address is taken by writing it into the endpoint's row
(one transaction with the network's round-robin position), the UNIQUE index makes a
double hand-out impossible even across a crash, and the addresses of containers that
are not running are released by restore() -- so after a kill -9 the table says exactly
what runs.  What a running container has on the host (its namespace, its veths, its
published ports) is network_attach.py's; this module owns the records, the bridges and
the rules of whole networks.

    service = NetworkService(engine)
    service.create({"Name": "web", "IPAM": {"Config": [{"Subnet": "10.9.0.0/24"}]}})
    service.inspect("web")          # docker's shape
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time

from sampan import _json
from sampan.errors import Conflict, InvalidArgument, NotFound, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sampan.engine.container_records import Container
    from sampan.engine.daemon import Engine
    from sampan.network.dns import DnsServer
    from sampan.network.firewall import Firewall
    from sampan.network.ipam import Pool
    from sampan.network.netlink import Netlink

__all__ = ["PREDEFINED", "Endpoint", "Network", "NetworkService"]

PREDEFINED = ("bridge", "host", "none")
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS networks (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL,
        doc TEXT NOT NULL, last INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS endpoints (
        container TEXT NOT NULL, network TEXT NOT NULL, config TEXT NOT NULL,
        slot INTEGER NOT NULL, address TEXT NOT NULL DEFAULT '', mac TEXT NOT NULL DEFAULT '',
        endpoint TEXT NOT NULL DEFAULT '', PRIMARY KEY (container, network))""",
    """CREATE UNIQUE INDEX IF NOT EXISTS endpoint_address ON endpoints (network, address)
        WHERE address != ''""",
)
# Private /16s tried in order for the default bridge; the first that overlaps no route
# of the host is taken (docker picks from its pools the same way).
_DEFAULT_SUBNETS = (
    *(f"172.{n}.0.0/16" for n in range(31, 15, -1)),
    "10.200.0.0/16",
    "10.201.0.0/16",
    "192.168.200.0/24",
)
_USER_SUBNETS = tuple(f"10.{n}.0.0/16" for n in range(210, 250))
_BRIDGE_OPTIONS = {
    "com.docker.network.bridge.name": "bridge name",
    "com.docker.network.bridge.enable_icc": "bool",
    "com.docker.network.bridge.enable_ip_masquerade": "bool",
    "com.docker.network.driver.mtu": "int",
    "com.docker.network.bridge.host_binding_ipv4": "address",
    "com.docker.network.bridge.default_bridge": "bool",
}
_FILTERS = ("name", "id", "driver", "label", "type", "scope", "dangling")


class Network:
    """One network's record."""

    __slots__ = ("created", "doc", "id", "last", "name")

    def __init__(self, nid: str, name: str, created: float, doc: dict[str, Any], last: int):
        self.id = nid
        self.name = name
        self.created = created
        self.doc = doc  # Driver, Subnet, Gateway, IPRange, Bridge, Internal, Options, Labels...
        self.last = last

    @property
    def driver(self) -> str:
        return str(self.doc["Driver"])

    @property
    def bridge(self) -> str:
        return str(self.doc.get("Bridge", ""))

    @property
    def internal(self) -> bool:
        return bool(self.doc.get("Internal"))

    @property
    def user_defined(self) -> bool:
        return self.name not in PREDEFINED

    def option(self, key: str, default: str = "") -> str:
        return str((self.doc.get("Options") or {}).get(key, default))

    @property
    def icc(self) -> bool:
        return self.option("com.docker.network.bridge.enable_icc", "true") == "true"

    @property
    def masquerade(self) -> bool:
        value = self.option("com.docker.network.bridge.enable_ip_masquerade", "true")
        return value == "true" and not self.internal

    @property
    def mtu(self) -> int | None:
        value = self.option("com.docker.network.driver.mtu")
        return int(value) if value else None

    def pool(self) -> Pool:
        from sampan.network.ipam import Pool

        return Pool.parse(self.doc["Subnet"], self.doc["Gateway"], self.doc.get("IPRange", ""))


class Endpoint:
    """A container's membership of a network (address '' while it is not running)."""

    __slots__ = ("address", "config", "container", "endpoint", "mac", "network", "slot")

    def __init__(
        self,
        container: str,
        network: str,
        config: dict[str, Any],
        slot: int,
        address: str = "",
        mac: str = "",
        endpoint: str = "",
    ) -> None:
        self.container = container
        self.network = network
        self.config = config
        self.slot = slot
        self.address = address
        self.mac = mac
        self.endpoint = endpoint

    @property
    def aliases(self) -> list[str]:
        return list(self.config.get("Aliases") or [])


class NetworkService:
    """The networks of one daemon and the host side of each."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.RLock()
        from sampan.engine.db import connect

        self._db = connect(engine.root, _SCHEMA)
        self._networks: dict[str, Network] = {}
        for nid, name, created, doc, last in self._db.execute("SELECT * FROM networks"):
            self._networks[nid] = Network(nid, name, created, _json.loads(doc), last)
        self._endpoints: dict[tuple[str, str], Endpoint] = {}
        for cid, net, config, slot, address, mac, endpoint in self._db.execute(
            "SELECT * FROM endpoints"
        ):
            self._endpoints[cid, net] = Endpoint(
                cid, net, _json.loads(config), slot, address, mac, endpoint
            )
        self._nl: Netlink | None = None
        self._firewall: Firewall | None = None
        self._dns: DnsServer | None = None
        self.held: dict[str, list[Any]] = {}  # container id -> sockets holding its host ports
        # The DNS index: gateway -> (name -> addresses, address -> name), see _names_at
        self._index: dict[str, tuple[dict[str, list[str]], dict[str, str]]] = {}
        # The index's own lock, never held while waiting for anything: the DNS thread must
        # not take self.lock, which create/rm hold while they wait for the DNS thread.
        self._index_lock = threading.Lock()
        self._generation = 0
        self.netns_dir = os.path.join(engine.exec_root, "netns")
        self._predefined()

    # -- the host's side -------------------------------------------------------------------

    def netlink(self) -> Netlink:
        """The host netns's rtnetlink socket (callers hold self.lock)."""
        if self._nl is None:
            from sampan.network.netlink import Netlink

            self._nl = Netlink()
        return self._nl

    def firewall(self) -> Firewall:
        if self._firewall is None:
            from sampan.network.firewall import Firewall

            self._firewall = Firewall(table=_table_name(self.engine.exec_root))
            self._firewall.ensure()
        return self._firewall

    def dns(self) -> DnsServer:
        if self._dns is None:
            from sampan.network.dns import DnsServer

            self._dns = DnsServer(self._resolve, self.upstreams(), reverse=self._reverse)
        return self._dns

    def upstreams(self) -> list[str]:
        """Where the embedded DNS forwards: the daemon's --dns, else the host's resolvers."""
        if self.engine.config.dns:
            return list(self.engine.config.dns)
        from sampan.engine.container_records import read_text

        found = []
        for line in read_text("/etc/resolv.conf").splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver" and "." in words[1]:
                found.append(words[1])
        return found

    def _bridge_up(self, net: Network) -> None:
        """NET's Linux bridge with its gateway address, up, its rules and DNS in place."""
        from sampan.network import netns
        from sampan.network.firewall import NetRule

        nl = self.netlink()
        pool = net.pool()
        index = nl.link_index(net.bridge)
        if index is None:
            index = nl.add_bridge(net.bridge, mtu=net.mtu)
        gateway = net.doc["Gateway"]
        prefix = pool.subnet[1]
        if (index, gateway, prefix) not in nl.addresses(index):
            nl.add_address(index, gateway, prefix)
        nl.set_up(index)
        netns.sysctl(f"net/ipv4/conf/{net.bridge}/route_localnet", "1")  # 127.0.0.1 -> -p
        if not net.internal:
            _forwarding_on()  # masquerade out, and DNAT of published ports in
        dns = gateway if net.user_defined else ""
        self.firewall().set_network(
            NetRule(net.bridge, pool.cidr, net.masquerade, net.internal, net.icc, dns)
        )
        if net.user_defined:
            self.dns().listen(gateway)

    def _bridge_down(self, net: Network) -> None:
        if net.user_defined and self._dns is not None:
            self._dns.unlisten(net.doc["Gateway"])
        self.firewall().remove_network(net.bridge)
        self.netlink().delete_link(net.bridge)

    def _predefined(self) -> None:
        """docker's three networks, made on first start; the default bridge per the flags."""
        have = {n.name: n for n in self._networks.values()}
        for name, driver in (("host", "host"), ("none", "null")):
            if name not in have:
                self._insert(Network(_new_id(), name, time.time(), {"Driver": driver}, 0))
        config = self.engine.config
        old = have.get("bridge")
        if config.bridge == "none":
            if old is not None and not any(e.network == old.id for e in self._endpoints.values()):
                self._delete(old)
            return
        bridge = config.bridge or "sampan0"
        if (
            old is not None
            and old.bridge == bridge
            and (not config.bip or old.doc["BIP"] == config.bip)
        ):
            return
        if old is not None:  # the flags changed: the old default bridge goes
            if any(e.address for e in self._endpoints.values() if e.network == old.id):
                raise Conflict(
                    "the default bridge network has running containers: cannot "
                    "change --bridge/--bip"
                )
            self._delete(old)
            nid = old.id
        else:
            nid = _new_id()
        self._insert(Network(nid, "bridge", time.time(), self._default_doc(bridge), 0))

    def _default_doc(self, bridge: str) -> dict[str, Any]:
        from sampan.network.ipam import first_free, parse_cidr, to_ip

        config = self.engine.config
        bip = config.bip or self._existing_address(bridge)
        if bip:
            addr = bip.partition("/")[0]
            net = parse_cidr(bip, "--bip")
            subnet, gateway = f"{to_ip(net[0])}/{net[1]}", addr
        else:
            subnet = first_free(_DEFAULT_SUBNETS, self._host_routes())
            gateway = ""
        doc = _network_doc("bridge", subnet, gateway, config.fixed_cidr, bridge)
        doc["BIP"] = config.bip
        doc["Options"] = {
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.name": bridge,
            "com.docker.network.bridge.enable_icc": "true",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
            "com.docker.network.driver.mtu": "1500",
        }
        return doc

    def _existing_address(self, bridge: str) -> str:
        """The address a bridge of that name already has ("A.B.C.D/N"), or "": a daemon
        whose database is new adopts it (as dockerd adopts docker0's) rather than adding
        a second subnet to the same bridge."""
        with self.lock:
            nl = self.netlink()
            index = nl.link_index(bridge)
            if index is None:
                return ""
            found = nl.addresses(index)
        return f"{found[0][1]}/{found[0][2]}" if found else ""

    def _host_routes(self) -> list[tuple[int, int]]:
        """The host's IPv4 routes and the subnets of our networks: what a new subnet misses."""
        from sampan.network.ipam import parse_ip

        with self.lock:
            used = [
                (parse_ip(dst), prefix)
                for dst, prefix, _, _ in self.netlink().routes()
                if prefix > 0
            ]
        return used + [n.pool().subnet for n in self._networks.values() if "Subnet" in n.doc]

    def restore(self, running: dict[str, Container], known: set[str]) -> None:
        """At the daemon's start (RUNNING: the containers that run, by id): bridges, rules and DNS
        back; the addresses, veths, namespaces and published ports of containers that no
        longer run released -- the kill -9 path."""
        from sampan.engine import network_attach

        with self.lock:
            for net in self._networks.values():
                if net.driver == "bridge":
                    self._bridge_up(net)
            network_attach.reconcile(self, running, known)

    # -- records ---------------------------------------------------------------------------

    def _insert(self, net: Network) -> None:
        with self.lock:
            for other in self._networks.values():
                if other.name == net.name:
                    raise Conflict(f"network with name {net.name} already exists")
            self._db.execute(
                "INSERT INTO networks VALUES (?,?,?,?,?)",
                (net.id, net.name, net.created, _json.dumps(net.doc), net.last),
            )
            self._networks[net.id] = net
            self.names_changed()

    def _delete(self, net: Network) -> None:
        with self.lock:
            self._db.execute("DELETE FROM networks WHERE id=?", (net.id,))
            self._networks.pop(net.id, None)
            self.names_changed()

    def get(self, ref: str) -> Network:
        """By full id, name, or unique id prefix (docker's order)."""
        with self.lock:
            net = self._networks.get(ref)
            if net is not None:
                return net
            for net in self._networks.values():
                if net.name == ref:
                    return net
            found = [n for n in self._networks.values() if ref and n.id.startswith(ref)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InvalidArgument(f"network {ref} is ambiguous ({len(found)} matches found)")
        raise NotFound(f"network {ref} not found")

    def all(self) -> list[Network]:
        with self.lock:
            return sorted(self._networks.values(), key=lambda n: n.created)

    def endpoints(self, container: str | None = None, network: str | None = None) -> list[Endpoint]:
        with self.lock:
            return sorted(
                (
                    e
                    for e in self._endpoints.values()
                    if container in (None, e.container) and network in (None, e.network)
                ),
                key=lambda e: e.slot,
            )

    def save_endpoint(self, ep: Endpoint, last: tuple[Network, int] | None = None) -> None:
        """EP's row (and NET's round-robin position) in one transaction; an address another
        endpoint holds is a Conflict."""
        with self.lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT OR REPLACE INTO endpoints VALUES (?,?,?,?,?,?,?)",
                    (
                        ep.container,
                        ep.network,
                        _json.dumps(ep.config),
                        ep.slot,
                        ep.address,
                        ep.mac,
                        ep.endpoint,
                    ),
                )
                if last is not None:
                    self._db.execute("UPDATE networks SET last=? WHERE id=?", (last[1], last[0].id))
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                raise Conflict(f"address {ep.address} is already in use") from None
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._endpoints[ep.container, ep.network] = ep
            self.names_changed()
            if last is not None:
                last[0].last = last[1]

    def drop_endpoint(self, ep: Endpoint) -> None:
        with self.lock:
            self._db.execute(
                "DELETE FROM endpoints WHERE container=? AND network=?", (ep.container, ep.network)
            )
            self._endpoints.pop((ep.container, ep.network), None)
            self.names_changed()

    def forget(self, container: str) -> None:
        """A removed container's endpoints (their addresses were released at its exit)."""
        with self.lock:
            self._db.execute("DELETE FROM endpoints WHERE container=?", (container,))
            for key in [k for k in self._endpoints if k[0] == container]:
                del self._endpoints[key]
            self.names_changed()

    # -- the API's verbs -------------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /networks/create: a bridge network; {"Id", "Warning"}."""
        if not isinstance(body, dict):
            raise InvalidArgument("request body: expected a JSON object")
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise InvalidArgument("Name: a network needs a name")
        _check_name(name)
        if name in PREDEFINED:
            raise Conflict(f"{name} is a pre-defined network and cannot be created")
        for key in ("ConfigOnly", "Ingress", "EnableIPv6"):
            if body.get(key):
                raise Unsupported(f"{key}: not supported by sampan")
        if (body.get("ConfigFrom") or {}).get("Network"):
            raise Unsupported("ConfigFrom: not supported by sampan")
        driver = body.get("Driver") or "bridge"
        if driver != "bridge":
            raise Unsupported(f"Driver: only the bridge driver is supported, not {driver!r}")
        if body.get("Scope") not in (None, "", "local"):
            raise Unsupported(f"Scope: only local networks are supported, not {body['Scope']!r}")
        labels = _str_map(body.get("Labels"), "Labels")
        options = _str_map(body.get("Options"), "Options")
        for key, value in options.items():
            _check_option(key, value)
        subnet, gateway, ip_range = self._ipam_config(body.get("IPAM"))
        nid = _new_id()
        bridge = options.get("com.docker.network.bridge.name") or f"br-{nid[:12]}"
        if len(bridge) > 15:
            raise InvalidArgument(f"com.docker.network.bridge.name: {bridge!r} is longer than 15")
        doc = _network_doc("bridge", subnet, gateway, ip_range, bridge)
        doc.update(
            Internal=bool(body.get("Internal")),
            Attachable=bool(body.get("Attachable")),
            Labels=labels,
            Options=options,
        )
        net = Network(nid, name, time.time(), doc, 0)
        with self.lock:
            for other in self._networks.values():
                if other.bridge and other.bridge == bridge:
                    raise Conflict(f"bridge {bridge} is already used by network {other.name}")
            self._check_overlap(net)
            self._insert(net)
            try:
                self._bridge_up(net)
            except BaseException:
                try:
                    self._bridge_down(net)
                finally:
                    self._delete(net)
                raise
        self.engine.events.emit("network", "create", net.id, {"name": name, "type": "bridge"})
        return {"Id": nid, "Warning": ""}

    def _ipam_config(self, ipam: object) -> tuple[str, str, str]:
        """(subnet, gateway, ip range) of docker's IPAM object; a free /16 when none given."""
        if ipam is None:
            ipam = {}
        if not isinstance(ipam, dict):
            raise InvalidArgument("IPAM: expected an object")
        if ipam.get("Driver") not in (None, "", "default"):
            raise Unsupported(f"IPAM.Driver: only the default driver, not {ipam['Driver']!r}")
        if ipam.get("Options"):
            raise Unsupported("IPAM.Options: not supported by sampan")
        configs = ipam.get("Config") or []
        if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
            raise InvalidArgument("IPAM.Config: expected a list of objects")
        if len(configs) > 1:
            raise Unsupported("IPAM.Config: one IPv4 subnet per network is supported")
        if not configs:
            from sampan.network.ipam import first_free

            return first_free(_USER_SUBNETS, self._host_routes()), "", ""
        config = configs[0]
        for key in config:
            if key not in ("Subnet", "Gateway", "IPRange", "AuxiliaryAddresses"):
                raise InvalidArgument(f"IPAM.Config: unknown field {key!r}")
        if config.get("AuxiliaryAddresses"):
            raise Unsupported("IPAM.Config.AuxiliaryAddresses: not supported by sampan")
        subnet = config.get("Subnet") or ""
        if not isinstance(subnet, str) or not subnet:
            if config.get("Gateway") or config.get("IPRange"):
                raise InvalidArgument("IPAM.Config: a gateway or range needs a subnet")
            from sampan.network.ipam import first_free

            return first_free(_USER_SUBNETS, self._host_routes()), "", ""
        if ":" in subnet:
            raise Unsupported(f"Subnet: IPv6 ({subnet}) is not supported by sampan")
        gateway, ip_range = config.get("Gateway") or "", config.get("IPRange") or ""
        if not isinstance(gateway, str) or not isinstance(ip_range, str):
            raise InvalidArgument("IPAM.Config: Gateway and IPRange are strings")
        from sampan.network.ipam import Pool

        pool = Pool.parse(subnet, gateway, ip_range)  # checked: errors name the field
        return pool.cidr, gateway, ip_range

    def _check_overlap(self, net: Network) -> None:
        from sampan.network.ipam import overlaps, parse_ip

        mine = net.pool().subnet
        for other in self._networks.values():
            if "Subnet" in other.doc and overlaps(mine, other.pool().subnet):
                raise Conflict(
                    f"Pool overlaps with other one on this address space: "
                    f"{net.doc['Subnet']} overlaps network {other.name} "
                    f"({other.doc['Subnet']})"
                )
        for dst, prefix, _, _ in self.netlink().routes():
            if prefix and overlaps(mine, (parse_ip(dst), prefix)):
                raise Conflict(
                    f"Pool overlaps with other one on this address space: "
                    f"{net.doc['Subnet']} overlaps the host's route {dst}/{prefix}"
                )

    def inspect(self, ref: str, verbose: bool = False) -> dict[str, Any]:
        return self._doc(self.get(ref))

    def _doc(self, net: Network) -> dict[str, Any]:
        """docker's inspect shape of NET."""
        from sampan.units import rfc3339

        containers = {}
        services = self.engine.containers
        for ep in self.endpoints(network=net.id):
            if not ep.address:
                continue
            try:
                c = services.get(ep.container)
            except NotFound:
                continue
            prefix = net.pool().subnet[1]
            containers[ep.container] = {
                "Name": c.name,
                "EndpointID": ep.endpoint,
                "MacAddress": ep.mac,
                "IPv4Address": f"{ep.address}/{prefix}",
                "IPv6Address": "",
            }
        config: list[dict[str, str]] = []
        if "Subnet" in net.doc:
            entry = {"Subnet": net.doc["Subnet"], "Gateway": net.doc["Gateway"]}
            if net.doc.get("IPRange"):
                entry["IPRange"] = net.doc["IPRange"]
            config.append(entry)
        return {
            "Name": net.name,
            "Id": net.id,
            "Created": rfc3339(int(net.created * 1e9), trim=False),
            "Scope": "local",
            "Driver": net.driver,
            "EnableIPv6": False,
            "IPAM": {
                "Driver": "default",
                "Options": None if net.user_defined else {},
                "Config": config,
            },
            "Internal": net.internal,
            "Attachable": bool(net.doc.get("Attachable")),
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers,
            "Options": dict(net.doc.get("Options") or {}),
            "Labels": dict(net.doc.get("Labels") or {}),
        }

    def listing(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """GET /networks: docker's inspect shape of each network passing FILTERS."""
        filters = filters or {}
        for key in filters:
            if key not in _FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'")
        return [self._doc(n) for n in self.all() if self._match(n, filters)]

    def _match(self, net: Network, filters: dict[str, list[str]]) -> bool:
        from sampan.engine.container_views import label_match

        checks: dict[str, Callable[[str], bool]] = {
            "name": lambda v: v in net.name,
            "id": lambda v: net.id.startswith(v),
            "driver": lambda v: v == net.driver,
            "scope": lambda v: v == "local",
            "type": lambda v: v == ("custom" if net.user_defined else "builtin"),
            "dangling": lambda v: _bool_filter(v) == (net.user_defined and not self._used(net)),
        }
        for key, values in filters.items():
            if key == "label":
                if not all(label_match(v, net.doc.get("Labels") or {}) for v in values):
                    return False
            elif key == "type" and any(v not in ("custom", "builtin") for v in values):
                raise InvalidArgument(f"invalid filter: 'type'='{values[0]}'")
            elif values and not any(checks[key](v) for v in values):
                return False
        return True

    def _used(self, net: Network) -> bool:
        return any(e.network == net.id for e in self.endpoints())

    def remove(self, ref: str) -> None:
        """DELETE /networks/{id}: refused while a running container is on it."""
        net = self.get(ref)
        if not net.user_defined:
            raise Conflict(f"{net.name} is a pre-defined network and cannot be removed")
        with self.lock:
            active = [e for e in self.endpoints(network=net.id) if e.address]
            if active:
                names = ", ".join(self._container_name(e.container) for e in active)
                raise Conflict(
                    f"error while removing network: network {net.name} id {net.id} "
                    f"has active endpoints ({names})"
                )
            for ep in self.endpoints(network=net.id):
                self.drop_endpoint(ep)  # stopped containers: docker forgets them too
            self._delete(net)
            self._bridge_down(net)
        self.engine.events.emit("network", "destroy", net.id, {"name": net.name, "type": "bridge"})

    def _container_name(self, cid: str) -> str:
        return self.engine.containers.name_of(cid) or cid[:12]  # lock-free: no lock order

    def prune(self, filters: dict[str, list[str]] | None = None) -> list[str]:
        """POST /networks/prune: user networks no container uses; their names."""
        filters = dict(filters or {})
        until = filters.pop("until", [])
        for key in filters:
            if key != "label" and key != "label!":
                raise InvalidArgument(f"invalid filter '{key}'")
        from sampan.engine.container_views import label_match
        from sampan.units import parse_duration, parse_rfc3339

        removed = []
        for net in self.all():
            labels = net.doc.get("Labels") or {}
            if not net.user_defined or self._used(net):
                continue
            if not all(label_match(v, labels) for v in filters.get("label", [])):
                continue
            if any(label_match(v, labels) for v in filters.get("label!", [])):
                continue
            if until:
                text = until[0]
                limit = (
                    time.time() - parse_duration(text)
                    if not text[:4].isdigit()
                    else parse_rfc3339(text)
                )
                if net.created >= limit:
                    continue
            try:
                self.remove(net.id)
            except (Conflict, NotFound):
                continue
            removed.append(net.name)
        return removed

    def connect(self, ref: str, container: str, config: dict[str, Any] | None) -> None:
        """POST /networks/{id}/connect: CONTAINER joins; live if it runs."""
        from sampan.engine import network_attach

        net = self.get(ref)
        c = self.engine.containers.get(container)
        network_attach.connect(self, net, c, check_endpoint_config(config, net))
        self.engine.events.emit(
            "network", "connect", net.id, {"name": net.name, "type": net.driver, "container": c.id}
        )

    def disconnect(self, ref: str, container: str, force: bool = False) -> None:
        from sampan.engine import network_attach

        net = self.get(ref)
        try:
            c = self.engine.containers.get(container)
        except NotFound:
            if not force:
                raise
            for ep in self.endpoints(network=net.id):
                if ep.container.startswith(container):
                    self.drop_endpoint(ep)
            return
        network_attach.disconnect(self, net, c)
        self.engine.events.emit(
            "network",
            "disconnect",
            net.id,
            {"name": net.name, "type": net.driver, "container": c.id},
        )

    # -- names (the embedded DNS server's resolver) ----------------------------------------

    def _network_at(self, gateway: str) -> Network | None:
        for net in list(self._networks.values()):  # a copy: no lock on the DNS thread
            if net.doc.get("Gateway") == gateway and net.user_defined:
                return net
        return None

    def names_changed(self) -> None:
        """Endpoints, networks or container names changed: the DNS index is rebuilt."""
        with self._index_lock:  # an index being built meanwhile is not kept (generation)
            self._index.clear()
            self._generation += 1

    def _names_at(self, listen: str) -> tuple[dict[str, list[str]], dict[str, str]]:
        """The DNS index of the user network whose gateway is LISTEN: name -> addresses
        (container names, short ids, aliases) and address -> PTR name; built once per
        change by the DNS server's thread, from copies, without self.lock (create and rm
        hold it while they wait for that thread to add or drop a listener)."""
        entry = self._index.get(listen)
        if entry is not None:
            return entry
        with self._index_lock:
            generation = self._generation
        names: dict[str, list[str]] = {}
        reverse: dict[str, str] = {}
        net = self._network_at(listen)
        if net is not None:
            eps = [e for e in list(self._endpoints.values()) if e.network == net.id]
            for ep in sorted(eps, key=lambda e: e.slot):
                address = ep.address
                if not address:
                    continue
                cname = self.engine.containers.name_of(ep.container) or ep.container[:12]
                reverse[address] = f"{cname}.{net.name}"
                keys = {ep.container[:12], cname.lower(), *(a.lower() for a in ep.aliases)}
                for key in keys:
                    names.setdefault(key, []).append(address)
        entry = (names, reverse)
        with self._index_lock:
            if self._generation == generation:
                self._index[listen] = entry
        return entry

    def _resolve(self, listen: str, name: str) -> list[str] | None:
        """The addresses NAME has on the network whose gateway is LISTEN: a container's name,
        its short id, its aliases on that network."""
        return self._names_at(listen)[0].get(name)

    def _reverse(self, listen: str, address: str) -> str | None:
        return self._names_at(listen)[1].get(address)

    def close(self) -> None:
        if self._dns is not None:
            self._dns.close()
        if self._nl is not None:
            self._nl.close()


def check_endpoint_config(config: object, net: Network) -> dict[str, Any]:
    """docker's EndpointSettings of a create or connect, checked for NET."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidArgument("EndpointConfig: expected an object")
    out: dict[str, Any] = {}
    ipam = config.get("IPAMConfig") or {}
    if not isinstance(ipam, dict):
        raise InvalidArgument("EndpointConfig.IPAMConfig: expected an object")
    if ipam.get("IPv6Address"):
        raise Unsupported("IPAMConfig.IPv6Address: IPv6 is not supported by sampan")
    if ipam.get("LinkLocalIPs"):
        raise Unsupported("IPAMConfig.LinkLocalIPs: not supported by sampan")
    address = ipam.get("IPv4Address") or ""
    if address:
        if not net.user_defined:
            raise InvalidArgument(
                "user specified IP address is supported on user defined networks only"
            )
        net.pool().check_static(address, (), "IPv4Address")
        out["IPAMConfig"] = {"IPv4Address": address}
    aliases = config.get("Aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise InvalidArgument("EndpointConfig.Aliases: expected a list of names")
    if aliases:
        if not net.user_defined:
            raise InvalidArgument(
                "network-scoped alias is supported only for containers in user defined networks"
            )
        out["Aliases"] = aliases
    links = config.get("Links") or []
    if not isinstance(links, list) or not all(isinstance(a, str) for a in links):
        raise InvalidArgument("EndpointConfig.Links: expected a list of name:alias")
    if links:
        out["Links"] = links
    mac = config.get("MacAddress") or ""
    if mac:
        _check_mac(mac)
        out["MacAddress"] = mac.lower()
    for key in ("DriverOpts",):
        if config.get(key):
            raise Unsupported(f"EndpointConfig.{key}: not supported by sampan")
    return out


def _check_mac(mac: str) -> None:
    parts = mac.split(":")
    if len(parts) != 6 or not all(
        len(p) == 2 and all(ch in "0123456789abcdefABCDEF" for ch in p) for p in parts
    ):
        raise InvalidArgument(f"MacAddress: invalid MAC address {mac!r}")


def _network_doc(
    driver: str, subnet: str, gateway: str, ip_range: str, bridge: str
) -> dict[str, Any]:
    from sampan.network.ipam import Pool, to_ip

    pool = Pool.parse(subnet, gateway, ip_range)
    return {
        "Driver": driver,
        "Subnet": pool.cidr,
        "Gateway": to_ip(pool.gateway),
        "IPRange": ip_range,
        "Bridge": bridge,
        "Internal": False,
        "Options": {},
        "Labels": {},
    }


def _check_name(name: str) -> None:
    ok = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
    if not (name[0].isalnum() and all(ch in ok for ch in name)):
        raise InvalidArgument(f"Name: invalid network name {name!r} ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")


def _check_option(key: str, value: str) -> None:
    kind = _BRIDGE_OPTIONS.get(key)
    if kind is None:
        raise Unsupported(
            f"Options: {key} is not supported by sampan "
            f"(known: {', '.join(sorted(_BRIDGE_OPTIONS))})"
        )
    if kind == "bool" and value not in ("true", "false"):
        raise InvalidArgument(f"Options: {key} must be true or false, not {value!r}")
    if kind == "int" and not (value.isdigit() and 68 <= int(value) <= 65535):
        raise InvalidArgument(f"Options: {key} must be an MTU (68-65535), not {value!r}")
    if kind == "address":
        from sampan.network.ipam import parse_ip

        parse_ip(value, key)
        raise Unsupported(f"Options: {key} is not supported by sampan yet")


def _str_map(value: object, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidArgument(f"{field}: expected an object of strings")
    return dict(value)


def _bool_filter(value: str) -> bool:
    if value.lower() in ("1", "true"):
        return True
    if value.lower() in ("0", "false"):
        return False
    raise InvalidArgument(f"invalid filter 'dangling={value}'")


def _table_name(exec_root: str) -> str:
    """The nftables table of the daemon at EXEC_ROOT: ``sampan`` for the default one, a name
    of its own for any other (a second daemon never rewrites the first one's rules)."""
    from sampan.engine.daemon import DEFAULT_EXEC_ROOT

    if exec_root == DEFAULT_EXEC_ROOT:
        return "sampan"
    import hashlib

    return "sampan_" + hashlib.sha256(exec_root.encode()).hexdigest()[:8]


def _new_id() -> str:
    import secrets

    return secrets.token_hex(32)


def _forwarding_on() -> None:
    """IPv4 forwarding, which NAT to other networks needs (dockerd turns it on the same way)."""
    path = "/proc/sys/net/ipv4/ip_forward"
    with open(path) as f:
        if f.read().strip() == "1":
            return
    with open(path, "w") as f:
        f.write("1")
