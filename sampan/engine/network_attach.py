"""A container on its networks: endpoints planned at create, its network namespace made
and wired at start, torn down at exit, and the daemon's reconciliation after a crash.

The engine makes the namespace, not the runtime: ``netns.create`` binds a new one on
EXEC_ROOT/netns/ID, a veth pair per network is made in one netlink request each (the
host end ``vs<12 hex of the id><slot>`` on the network's bridge, the other end created
directly inside the namespace as eth<slot>, MAC 02:42 + the address as docker derives
it), the addresses and the default route are set through a netlink socket opened inside
it, and the OCI spec names the file ({"type": "network", "path": ...}).  So the
container's first instruction already has its network, ``container:ID`` joins the same
file, and the daemon can wire and unwire a running container (connect/disconnect)
without entering it.  Nothing is spawned: no ``ip``, no ``nft`` binary.

Published ports are DNAT rules in sampan's nftables table (network/firewall.py) plus a
socket the daemon binds (and never listens on) for each host port: it reserves the
port, so another process or container cannot take it, and a port in use is refused at
start as dockerd refuses it.

Crash safety: the order is record, then make; unmake, then record.  An address is
written into the endpoint's row before any link exists, and released only once the
links are gone; ``reconcile`` at the daemon's start releases what no running container
holds, deletes veths on our bridges and namespaces of no running container, and
rebuilds the nftables table from what runs.

    eps = plan(service, c, request)   # at create: endpoints checked, saved with the record
    settings = attach(service, c)  # at start: {"SandboxKey", "Ports"}; detach(service, c)
"""

from __future__ import annotations

import os

from sampan.engine.networks import PREDEFINED, Endpoint, check_endpoint_config
from sampan.errors import Conflict, InvalidArgument, NotFound, SampanError, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.engine.container_records import Container
    from sampan.engine.networks import Network, NetworkService
    from sampan.network.firewall import PortRule
    from sampan.network.netlink import Netlink

__all__ = [
    "HOST_FIELDS",
    "attach",
    "check_host_fields",
    "connect",
    "detach",
    "disconnect",
    "files",
    "netns_path",
    "plan",
    "reconcile",
    "settings",
]

HOST_FIELDS = (
    "PortBindings",
    "PublishAllPorts",
    "Dns",
    "DnsSearch",
    "DnsOptions",
    "ExtraHosts",
    "Links",
)


# -- create: what the request asks, checked ---------------------------------------------


def check_host_fields(host: dict[str, Any]) -> dict[str, Any]:
    """The HostConfig fields of networking, checked and normalised."""
    out: dict[str, Any] = {}
    ports = host.get("PortBindings") or {}
    if not isinstance(ports, dict):
        raise InvalidArgument("HostConfig.PortBindings: expected an object")
    bindings: dict[str, list[dict[str, str]]] = {}
    for key, entries in ports.items():
        _port_key(key, "HostConfig.PortBindings")
        if entries is None:
            entries = [{}]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise InvalidArgument(f"HostConfig.PortBindings[{key}]: expected a list of objects")
        bindings[key] = []
        for entry in entries:
            host_ip = entry.get("HostIp") or ""
            host_port = entry.get("HostPort") or ""
            if not isinstance(host_ip, str) or not isinstance(host_port, str):
                raise InvalidArgument(
                    f"HostConfig.PortBindings[{key}]: HostIp and HostPort are strings"
                )
            if host_ip and ":" in host_ip:
                raise Unsupported(
                    f"HostConfig.PortBindings[{key}]: IPv6 host address "
                    f"{host_ip} is not supported by sampan"
                )
            if host_ip:
                from sampan.network.ipam import parse_ip

                parse_ip(host_ip, f"HostConfig.PortBindings[{key}].HostIp")
            _port_range(host_port, f"HostConfig.PortBindings[{key}].HostPort")
            bindings[key].append({"HostIp": host_ip, "HostPort": host_port})
    out["PortBindings"] = bindings
    out["PublishAllPorts"] = bool(host.get("PublishAllPorts"))
    for field in ("Dns", "DnsSearch", "DnsOptions", "ExtraHosts", "Links"):
        value = host.get(field) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"HostConfig.{field}: expected a list of strings")
        out[field] = list(value)
    from sampan.network.ipam import parse_ip

    for server in out["Dns"]:
        parse_ip(server, "HostConfig.Dns")
    for entry in out["ExtraHosts"]:
        name, sep, addr = entry.partition(":")
        if not sep or not name or not addr:
            raise InvalidArgument(f"HostConfig.ExtraHosts: invalid entry {entry!r} (host:ip)")
        if addr != "host-gateway":
            if ":" in addr:
                raise Unsupported(f"HostConfig.ExtraHosts: IPv6 address in {entry!r}")
            parse_ip(addr, "HostConfig.ExtraHosts")
    for link in out["Links"]:
        name, _, alias = link.partition(":")
        if not name.strip("/") or (":" in alias):
            raise InvalidArgument(f"HostConfig.Links: invalid link {link!r} (name:alias)")
    return out


def _port_key(key: str, field: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        if proto == "sctp":
            raise Unsupported(f"{field}: sctp ports are not supported by sampan ({key})")
        raise InvalidArgument(f"{field}: invalid protocol in {key!r} (tcp or udp)")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"{field}: invalid port {key!r}")
    return int(port), proto


def _port_range(text: str, field: str) -> tuple[int, int]:
    """HostPort: "" (any), "8080" or "8000-8010"."""
    if not text:
        return 0, 0
    low, dash, high = text.partition("-")
    if not low.isdigit() or (dash and not high.isdigit()):
        raise InvalidArgument(f"{field}: invalid port {text!r}")
    lo, hi = int(low), int(high) if dash else int(low)
    if not (0 < lo <= hi < 65536):
        raise InvalidArgument(f"{field}: invalid port {text!r} (1-65535)")
    return lo, hi


def plan(service: NetworkService, c: Container, request: dict[str, Any]) -> list[Endpoint]:
    """C's endpoints from its NetworkMode and NetworkingConfig, checked (no address yet);
    nothing recorded: the caller saves them once C's record is in.

    A network or container named here that does not exist is a 400, not a 404: the docker
    CLI takes a 404 from create for a missing image and goes off to pull it."""
    try:
        return _plan(service, c, request)
    except NotFound as exc:
        raise InvalidArgument(str(exc)) from None


def _plan(service: NetworkService, c: Container, request: dict[str, Any]) -> list[Endpoint]:
    host = c.host_config
    mode = host["NetworkMode"]
    endpoints = (request.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if not isinstance(endpoints, dict):
        raise InvalidArgument("NetworkingConfig.EndpointsConfig: expected an object")
    special = mode in ("none", "host") or mode.startswith("container:")
    if special:
        if host["PortBindings"] or host["PublishAllPorts"]:
            raise InvalidArgument(
                "conflicting options: port publishing and the container type network mode"
            )
        if mode.startswith("container:"):
            other = service.engine.containers.get(mode.partition(":")[2])
            host["NetworkMode"] = f"container:{other.id}"
            if request.get("Hostname"):
                raise InvalidArgument("conflicting options: hostname and the network mode")
            if host["Dns"] or host["DnsSearch"] or host["DnsOptions"] or host["ExtraHosts"]:
                raise InvalidArgument("conflicting options: dns and the network mode")
        if host["Links"]:
            raise InvalidArgument("conflicting options: --link and the network mode")
        asked = [v for n, v in endpoints.items() if n == mode and _meaningful(v)]
        if asked:
            raise InvalidArgument(f"network mode {mode}: an address, alias, link or MAC "
                                  "address needs a bridge network")  # fmt: skip
        extra = [n for n in endpoints if n != mode]
        if extra:
            raise InvalidArgument(
                f"container cannot be connected to network {extra[0]!r} and to network mode {mode}"
            )
        return []
    first = "bridge" if mode in ("default", "bridge") else mode
    names = [first] + [
        n for n in endpoints if n != first and not (first == "bridge" and n == "default")
    ]
    if mode == "default":
        try:
            service.get("bridge")
        except NotFound:  # a daemon with --bridge none: loopback only, as before
            if len(names) > 1 or any(_meaningful(v) for v in endpoints.values()):
                raise InvalidArgument("the default bridge network is disabled (--bridge none)")
            if host["PortBindings"] or host["PublishAllPorts"] or host["Links"]:
                raise InvalidArgument(
                    "port publishing and links need a network; the daemon runs with --bridge none"
                )
            return []
    eps = []
    for slot, name in enumerate(names):
        net = service.get(name)
        if net.name in ("host", "none"):
            raise InvalidArgument(
                f"container cannot be disconnected from host network or "
                f"connected to {net.name} network"
            )
        config = endpoints.get(name) or (endpoints.get("default") if name == "bridge" else None)
        config = check_endpoint_config(config, net)
        if net.name == "bridge" and host["Links"]:
            config.setdefault("Links", list(host["Links"]))
        eps.append(Endpoint(c.id, net.id, config, slot))
    if host["Links"]:
        for link in host["Links"]:
            service.engine.containers.get(link.partition(":")[0].strip("/"))
    return eps


def _meaningful(config: object) -> bool:
    """Whether an EndpointSettings asks for something (the docker CLI sends empty ones)."""
    if not isinstance(config, dict):
        return config is not None
    ipam = config.get("IPAMConfig") or {}
    return bool(
        (isinstance(ipam, dict) and (ipam.get("IPv4Address") or ipam.get("IPv6Address")))
        or config.get("Aliases")
        or config.get("Links")
        or config.get("MacAddress")
        or config.get("DriverOpts")
    )


# -- start and exit ---------------------------------------------------------------------


def netns_path(service: NetworkService, c: Container) -> str:
    return os.path.join(service.netns_dir, c.id)


def _veth(c: Container, slot: int) -> str:
    return f"vs{c.id[:12]}{slot}"


def _mac(address: str) -> str:
    import socket

    return "02:42:" + ":".join(f"{b:02x}" for b in socket.inet_aton(address))


def attach(service: NetworkService, c: Container) -> dict[str, Any]:
    """C's network namespace made and wired, its ports published; what inspect shows of it
    ({"SandboxKey", "Ports"}; {} when the runtime makes the namespace or there is none).
    On failure nothing is left."""
    mode = c.host_config["NetworkMode"]
    if mode.startswith("container:"):
        other = service.engine.containers.get(mode.partition(":")[2])
        if not other.running:
            raise Conflict(f"cannot join network of a non running container: {other.id}")
        path = netns_path(service, other)
        if not os.path.exists(path):
            path = f"/proc/{other.state['Pid']}/ns/net"
        return {"SandboxKey": path, "Ports": {}}
    eps = service.endpoints(container=c.id)
    if not eps:
        return {}
    from sampan.network import netns
    from sampan.network.netlink import Netlink

    nets = _allocate(service, c, eps)
    path = netns_path(service, c)
    try:
        inner = netns.create_with(path, Netlink)  # made, and a netlink socket inside it
        try:
            _wire(service, c, eps, nets, path, inner)
        finally:
            inner.close()
        ports = _publish(service, c, eps[0], nets[0])
    except BaseException:
        detach(service, c)
        raise
    return {"SandboxKey": path, "Ports": ports}


def _allocate(service: NetworkService, c: Container, eps: list[Endpoint]) -> list[Network]:
    """An address for each endpoint, written into its row (released by detach on failure)."""
    from sampan.network.ipam import parse_ip, to_ip

    nets = []
    with service.lock:
        try:
            for ep in eps:
                try:
                    net = service.get(ep.network)
                except NotFound:
                    raise NotFound(
                        f"network {ep.network[:12]} not found (removed while the "
                        f"container was stopped)"
                    ) from None
                pool = net.pool()
                taken = {
                    parse_ip(e.address)
                    for e in service.endpoints(network=net.id)
                    if e.address and e.container != c.id
                }
                static = (ep.config.get("IPAMConfig") or {}).get("IPv4Address")
                if static:
                    addr = pool.check_static(static, taken)
                else:
                    addr = pool.allocate(taken, net.last)
                ep.address = to_ip(addr)
                ep.mac = ep.config.get("MacAddress") or _mac(ep.address)
                ep.endpoint = _endpoint_id()
                service.save_endpoint(ep, (net, addr) if not static else None)
                nets.append(net)
        except BaseException:
            _release(service, c)
            raise
    return nets


def _endpoint_id() -> str:
    import secrets

    return secrets.token_hex(32)


def _wire(
    service: NetworkService,
    c: Container,
    eps: list[Endpoint],
    nets: list[Network],
    path: str,
    inner: Netlink | None = None,
    route: bool = True,
) -> None:
    """The veth pairs (host ends on the bridges, up), then inside (INNER: a netlink socket
    of the namespace at PATH, or one opened here) each end's address, up, and the default
    route via the first network that is not internal (unless not ROUTE: a connect to a
    container that has its route) -- one round trip per network."""
    from sampan.network import netns
    from sampan.network.netlink import Netlink

    fd = netns.open_fd(path)
    try:
        with service.lock:
            nl = service.netlink()
            for ep, net in zip(eps, nets, strict=True):
                master = nl.link_index(net.bridge)
                if master is None:
                    raise SampanError(f"network {net.name}: its bridge {net.bridge} is missing")
                _add_veth(nl, _veth(c, ep.slot), f"eth{ep.slot}", fd, master, net.mtu, ep.mac)
    finally:
        os.close(fd)
    own = inner is None
    inner = inner if inner is not None else Netlink(netns=path)
    try:
        routed = not route
        for ep, net in zip(eps, nets, strict=True):
            found = inner.link_index(f"eth{ep.slot}")
            if found is None:
                raise SampanError(f"eth{ep.slot} did not appear in the container's namespace")
            gateway = None if routed or net.internal else str(net.doc["Gateway"])
            inner.configure(found, ep.address, net.pool().subnet[1], gateway)
            routed = routed or gateway is not None
    finally:
        if own:
            inner.close()


def _add_veth(
    nl: Netlink, name: str, peer: str, fd: int, master: int, mtu: int | None, mac: str
) -> None:
    """The pair, host end up on MASTER.  A host end of the same name may still be there: a
    removed namespace takes its veths along in the background (detach does not wait ~20 ms
    for it), so a container restarted at once can meet its old one -- deleted, then again."""
    from sampan.network.netlink import NetlinkError

    try:
        index = nl.add_veth(name, peer, fd, master=master, mtu=mtu, peer_mac=mac, up=True)
    except NetlinkError as exc:
        if exc.errno != 17:  # EEXIST
            raise
        nl.delete_link(name)
        index = nl.add_veth(name, peer, fd, master=master, mtu=mtu, peer_mac=mac, up=True)
    nl.set_hairpin(index)  # its own published ports through a host address


def _publish(
    service: NetworkService, c: Container, ep: Endpoint, net: Network
) -> dict[str, list[dict[str, str]]]:
    """Host ports reserved and DNAT'd to EP's address; docker's NetworkSettings.Ports."""
    from sampan.network.firewall import PortRule

    host = c.host_config
    wanted: dict[str, list[dict[str, str]]] = {k: list(v) for k, v in host["PortBindings"].items()}
    if host["PublishAllPorts"]:
        for key in c.config.get("ExposedPorts") or {}:
            wanted.setdefault(key, [{"HostIp": "", "HostPort": ""}])
    shown: dict[str, list[dict[str, str]]] = {}
    for key in c.config.get("ExposedPorts") or {}:
        shown[key if "/" in key else f"{key}/tcp"] = []
    if not wanted:
        return {k: v for k, v in shown.items()} if shown else {}
    rules: list[PortRule] = []
    held = service.held.setdefault(c.id, [])
    for key, entries in wanted.items():
        cport, proto = _port_key(key, "PortBindings")
        key = f"{cport}/{proto}"
        shown[key] = []
        for entry in entries:
            host_ip = entry["HostIp"]
            port, sock = _reserve(proto, host_ip, entry["HostPort"])
            held.append(sock)
            rules.append(PortRule(c.id, proto, host_ip, port, ep.address, cport, net.bridge))
            shown[key].append({"HostIp": host_ip or "0.0.0.0", "HostPort": str(port)})
    service.firewall().publish(rules)
    return shown


def _reserve(proto: str, host_ip: str, ports: str) -> tuple[int, Any]:
    """A socket bound to a port of PORTS ("" any, "N", "N-M") on HOST_IP: the port held."""
    import socket

    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    low, high = _port_range(ports, "HostPort")
    candidates = range(low, high + 1) if low else [0]
    last: OSError | None = None
    for port in candidates:
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.bind((host_ip or "0.0.0.0", port))
            sock.set_inheritable(False)
            return sock.getsockname()[1], sock
        except OSError as exc:
            sock.close()
            last = exc
    shown = f"{host_ip or '0.0.0.0'}:{ports or 0}"
    if last is not None and last.errno == 99:  # EADDRNOTAVAIL
        raise InvalidArgument(f"Bind for {shown} failed: {host_ip} is not an address of this host")
    raise Conflict(f"Bind for {shown} failed: port is already allocated")


def detach(service: NetworkService, c: Container) -> None:
    """Everything attach made for C undone: rules, held ports, veths, namespace, addresses
    -- idempotent (an exit, a failed start, a daemon's reconciliation)."""
    from sampan.network import netns

    held = service.held.pop(c.id, [])
    if held or c.state.get("Ports"):
        service.firewall().unpublish(c.id)
    for sock in held:
        sock.close()
    # The veths go with the namespace, in the background: deleting them here would cost
    # ~20 ms of kernel time each (RCU grace periods) under the service's lock.  Unless a
    # container joined it (container:ID) and keeps it alive: then they go now, or the
    # addresses released below would stay on them.
    if _joined(service, c):
        with service.lock:
            for ep in service.endpoints(container=c.id):
                if ep.address:
                    service.netlink().delete_link(_veth(c, ep.slot))
    netns.remove(netns_path(service, c))
    _release(service, c)


def _joined(service: NetworkService, c: Container) -> bool:
    """Whether another container runs (or starts) in C's network namespace."""
    mode = f"container:{c.id}"
    return any(
        o.host_config.get("NetworkMode") == mode and (o.running or o.starting)
        for o in service.engine.containers.all()
        if o is not c
    )


def _release(service: NetworkService, c: Container) -> None:
    for ep in service.endpoints(container=c.id):
        if ep.address:
            ep.address = ""
            ep.endpoint = ""
            service.save_endpoint(ep)


# -- live connect and disconnect ---------------------------------------------------------


def connect(service: NetworkService, net: Network, c: Container, config: dict[str, Any]) -> None:
    """C joins NET: recorded, and wired now if it runs."""
    mode = c.host_config["NetworkMode"]
    if mode in ("host", "none") or mode.startswith("container:"):
        raise InvalidArgument(
            f"container sharing network namespace with another container or "
            f"host cannot be connected to any other network ({mode})"
        )
    if net.name in PREDEFINED and net.name != "bridge":
        raise InvalidArgument(
            f"container cannot be disconnected from host network or connected to {net.name} network"
        )
    with service.lock:
        eps = service.endpoints(container=c.id)
        if any(ep.network == net.id for ep in eps):
            raise Conflict(f"endpoint with name {c.name} already exists in network {net.name}")
        slot = max((ep.slot for ep in eps), default=-1) + 1
        ep = Endpoint(c.id, net.id, config, slot)
        service.save_endpoint(ep)
        if not c.running:
            return
        path = netns_path(service, c)
        if not os.path.exists(path):
            service.drop_endpoint(ep)
            raise InvalidArgument(
                f"container {c.name} has no network namespace of sampan's "
                "to connect (started with --bridge none?)"
            )
        try:
            nets = _allocate_one(service, c, ep)
            _wire(service, c, [ep], nets, path, route=False)
        except BaseException:
            with service.lock:
                service.netlink().delete_link(_veth(c, ep.slot))
            service.drop_endpoint(ep)
            raise


def _allocate_one(service: NetworkService, c: Container, ep: Endpoint) -> list[Network]:
    from sampan.network.ipam import parse_ip, to_ip

    net = service.get(ep.network)
    pool = net.pool()
    taken = {parse_ip(e.address) for e in service.endpoints(network=net.id) if e.address}
    static = (ep.config.get("IPAMConfig") or {}).get("IPv4Address")
    addr = pool.check_static(static, taken) if static else pool.allocate(taken, net.last)
    ep.address = to_ip(addr)
    ep.mac = ep.config.get("MacAddress") or _mac(ep.address)
    ep.endpoint = _endpoint_id()
    service.save_endpoint(ep, None if static else (net, addr))
    return [net]


def disconnect(service: NetworkService, net: Network, c: Container) -> None:
    """C leaves NET: its veth deleted (the peer goes with it), its address released."""
    with service.lock:
        ep = next((e for e in service.endpoints(container=c.id) if e.network == net.id), None)
        if ep is None:
            raise InvalidArgument(f"container {c.id} is not connected to network {net.name}")
        if ep.address:
            service.netlink().delete_link(_veth(c, ep.slot))
        if ep.slot == 0 and service.held.get(c.id):
            service.firewall().unpublish(c.id)
            for sock in service.held.pop(c.id, []):
                sock.close()
        service.drop_endpoint(ep)


# -- the daemon's start -----------------------------------------------------------------


def reconcile(service: NetworkService, running: dict[str, Container], known: set[str]) -> None:
    """After a restart (kill -9 included): what no running container holds is released
    (addresses, veths on our bridges, namespaces), endpoints of containers no longer KNOWN
    dropped; held ports re-bound; our nftables table rebuilt to exactly the networks and
    the running containers' ports."""
    from sampan.network import netns
    from sampan.network.firewall import NetRule, PortRule

    for ep in service.endpoints():
        if ep.container not in known:
            service.drop_endpoint(ep)  # its container's removal was cut short
        elif ep.address and ep.container not in running:
            ep.address = ""
            ep.endpoint = ""
            service.save_endpoint(ep)
    if os.path.isdir(service.netns_dir):
        for entry in os.listdir(service.netns_dir):
            if entry not in running:
                netns.remove(os.path.join(service.netns_dir, entry))
    if not any(n.driver == "bridge" for n in service.all()):
        return  # --bridge none and no network of ours: no link, no rule to look at
    nl = service.netlink()
    bridges = {nl.link_index(n.bridge) for n in service.all() if n.driver == "bridge"}
    bridges.discard(None)
    prefixes = {cid[:12] for cid in running}
    for link in nl.links():
        if (
            link.name.startswith("vs")
            and link.master in bridges
            and link.name[2:14] not in prefixes
        ):
            nl.delete_link(link.name)
    nets = [
        NetRule(
            n.bridge,
            n.pool().cidr,
            n.masquerade,
            n.internal,
            n.icc,
            n.doc["Gateway"] if n.user_defined else "",
        )
        for n in service.all()
        if n.driver == "bridge"
    ]
    ports: list[PortRule] = []
    for c in running.values():
        eps = [e for e in service.endpoints(container=c.id) if e.address]
        if not eps or not c.state.get("Ports"):
            continue
        net = service.get(eps[0].network)
        held = service.held.setdefault(c.id, [])
        for key, entries in c.state["Ports"].items():
            cport, proto = _port_key(key, "Ports")
            for entry in entries or []:
                host_ip = "" if entry["HostIp"] == "0.0.0.0" else entry["HostIp"]
                try:
                    held.append(_reserve(proto, host_ip, entry["HostPort"])[1])
                except SampanError:
                    pass  # taken meanwhile by someone else: the rule still routes it
                ports.append(
                    PortRule(
                        c.id,
                        proto,
                        host_ip,
                        int(entry["HostPort"]),
                        eps[0].address,
                        cport,
                        net.bridge,
                    )
                )
    service.firewall().reconcile(nets, ports)


# -- what the container sees: /etc/hosts, /etc/resolv.conf; inspect ----------------------


def files(
    service: NetworkService, c: Container, host_hosts: str, host_resolv: str
) -> dict[str, str]:
    """The texts of C's hosts and resolv.conf, for its networks as they are now."""
    from sampan.engine import spec

    host = c.host_config
    mode = host["NetworkMode"]
    hostname = c.config["Hostname"]
    eps = [e for e in service.endpoints(container=c.id) if e.address]
    if mode == "host":
        hosts = spec.hosts_file(hostname, True, host_hosts)
    elif eps:
        hosts = spec.hosts_file(hostname).replace(f"127.0.0.1\t{hostname}\n", "")
        hosts += "".join(f"{ep.address}\t{hostname}\n" for ep in eps[:1])
    else:
        hosts = spec.hosts_file(hostname)
    for link in host.get("Links") or []:
        name, _, alias = link.partition(":")
        name = name.strip("/")
        try:
            other = service.engine.containers.get(name)
        except NotFound:
            continue
        address = _address_of(service, other, eps)
        if address:
            words = [alias.rsplit("/", 1)[-1]] if alias else []
            words += [other.name, other.config["Hostname"]]
            hosts += f"{address}\t{' '.join(dict.fromkeys(words))}\n"
    for entry in host.get("ExtraHosts") or []:
        name, _, addr = entry.partition(":")
        if addr == "host-gateway":
            addr = _host_gateway(service)
        hosts += f"{addr}\t{name}\n"
    return {"hosts": hosts, "resolv.conf": _resolv(service, c, eps, host_resolv)}


def _address_of(service: NetworkService, other: Container, mine: list[Endpoint]) -> str:
    """OTHER's address on a network C is on (the link's target), else ""."""
    nets = {e.network for e in mine}
    for ep in service.endpoints(container=other.id):
        if ep.address and ep.network in nets:
            return ep.address
    return ""


def _host_gateway(service: NetworkService) -> str:
    try:
        return str(service.get("bridge").doc["Gateway"])
    except NotFound:
        raise InvalidArgument("host-gateway needs the default bridge (--bridge none)") from None


def _resolv(service: NetworkService, c: Container, eps: list[Endpoint], host_text: str) -> str:
    """resolv.conf: the embedded DNS (the gateway) on a user network; --dns, the daemon's
    --dns or the host's (without loopback resolvers) otherwise; --dns-search/-option."""
    from sampan.engine import spec

    host = c.host_config
    if host["NetworkMode"] == "host":
        return host_text
    base = spec.resolv_conf(host_text)
    servers = list(host.get("Dns") or [])
    user = [service.get(e.network) for e in eps]
    user = [n for n in user if n.user_defined]
    if user:
        servers = [user[0].doc["Gateway"], *servers]
    elif not servers:
        servers = [s for s in service.engine.config.dns if not s.startswith("127.")]
    lines = [
        line
        for line in base.splitlines()
        if not (
            (servers and line.startswith("nameserver"))
            or (host.get("DnsSearch") and line.startswith("search"))
            or (host.get("DnsOptions") and line.startswith("options"))
        )
    ]
    lines += [f"nameserver {s}" for s in servers]
    if host.get("DnsSearch"):
        lines.append("search " + " ".join(host["DnsSearch"]))
    if host.get("DnsOptions"):
        lines.append("options " + " ".join(host["DnsOptions"]))
    return "\n".join(lines) + "\n"


def settings(service: NetworkService, c: Container, state: dict[str, Any]) -> dict[str, Any]:
    """inspect's NetworkSettings."""
    mode = c.host_config["NetworkMode"]
    running = bool(state.get("Running"))
    doc: dict[str, Any] = {
        "Bridge": "",
        "SandboxID": c.id if running and state.get("SandboxKey") else "",
        "SandboxKey": state.get("SandboxKey", "") if running else "",
        "Ports": state.get("Ports") or {} if running else {},
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": "",
        "Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": {},
    }
    eps = service.endpoints(container=c.id)
    if not eps:
        name = mode if mode in ("host", "none") else None
        if mode in ("default", "bridge"):
            name = "none"  # --bridge none
        if name:
            net = service.get(name)
            doc["Networks"][name] = _endpoint_doc(net.id, None, None)
        return doc
    for ep in eps:
        try:
            net = service.get(ep.network)
        except NotFound:
            continue
        entry = _endpoint_doc(net.id, ep, net)
        doc["Networks"][net.name] = entry
        if net.name == "bridge":
            for key in ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "MacAddress"):
                doc[key] = entry[key]
    return doc


def _endpoint_doc(nid: str, ep: Endpoint | None, net: Network | None) -> dict[str, Any]:
    config = ep.config if ep else {}
    live = bool(ep and ep.address)
    return {
        "IPAMConfig": config.get("IPAMConfig"),
        "Links": config.get("Links"),
        "Aliases": config.get("Aliases"),
        "MacAddress": ep.mac if ep and live else "",
        "DriverOpts": None,
        "NetworkID": nid,
        "EndpointID": ep.endpoint if ep else "",
        "Gateway": net.doc["Gateway"] if net and live else "",
        "IPAddress": ep.address if ep else "",
        "IPPrefixLen": net.pool().subnet[1] if net and live else 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }
