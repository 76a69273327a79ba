"""``sampan network create|ls|inspect|rm|prune|connect|disconnect``: clients of /networks.

Output and exit codes as docker's: ``create`` prints the id; ``ls`` a NETWORK ID /
NAME / DRIVER / SCOPE table in docker's natural name order (``-q`` ids, ``--no-trunc``,
``--filter``, ``--format`` with ID, Name, Driver, Scope, IPv4, IPv6, Internal, Labels,
``Label "key"``, CreatedAt); ``inspect`` the JSON documents; ``rm`` each name removed
(``-f``: a missing one is no error); ``prune`` docker's prompt and "Deleted Networks:";
``connect`` (--ip, --alias, --link) and ``disconnect`` (-f) print nothing.  The
daemon's refusals print "Error response from daemon: ..." and exit 1.

``create`` sends docker's request (CLI 28 talking API 1.41, CheckDuplicate set) with
--subnet/--gateway/--ip-range/--aux-address grouped per subnet as docker groups them;
what sampan cannot do is refused here by name: drivers other than bridge, --ipv6,
--ipam-driver other than default, scopes other than local, swarm's flags.
"""

from __future__ import annotations

import sys

from sampan.api.client import ApiError, Client, quote
from sampan.cli.args import Flag, parse
from sampan.cli.client import daemon_errors, each, err, filters_json
from sampan.cli.main import Context, Usage
from sampan.errors import InvalidArgument, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "cmd_network_connect",
    "cmd_network_create",
    "cmd_network_disconnect",
    "cmd_network_inspect",
    "cmd_network_ls",
    "cmd_network_prune",
    "cmd_network_rm",
    "ipam_config",
    "natural_key",
    "network_row",
]

HELP = Flag("--help", "bool", "show help")
LS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORK_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv4": "IPV4",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}


def _args(argv: list[str], flags: list[Flag], usage: str) -> tuple[dict[str, Any], list[str]]:
    opts, args = parse([*flags, HELP], argv, stop_at_positional=False)
    if opts["help"]:
        print(f"Usage:  sampan network {usage}")
        raise SystemExit(0)
    return opts, args


def _pairs(items: list[str]) -> dict[str, str]:
    """docker's map options (--label, --opt, --aux-address): KEY=VALUE, a bare KEY is ""."""
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


# -- create ------------------------------------------------------------------------------


def _subnet_has(subnet: str, data: str) -> bool:
    """docker's subnetMatches: DATA (an address or a CIDR's address) inside SUBNET."""
    import ipaddress

    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet: invalid CIDR address: {subnet}") from None
    address = data.partition("/")[0]
    try:
        if "/" in data:
            ipaddress.ip_network(data, strict=False)
        ip = ipaddress.ip_address(address)
    except ValueError:
        if "/" in data:
            raise InvalidArgument(f"invalid CIDR address: {data}") from None
        return False
    return ip.version == net.version and ip in net


def ipam_config(
    subnets: list[str], ranges: list[str], gateways: list[str], aux: dict[str, str]
) -> list[dict[str, Any]]:
    """docker's createIPAMConfig: IPAM.Config, each range, gateway and auxiliary address
    under the subnet that holds it (docker's checks and words)."""
    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
    configs: dict[str, dict[str, Any]] = {}
    for s in subnets:
        for other in configs:
            if _subnet_has(s, other) or _subnet_has(other, s):
                raise InvalidArgument("multiple overlapping subnet configuration is not supported")
        configs[s] = {"Subnet": s}
    for key, what, values in (("IPRange", "range", ranges), ("Gateway", "gateway", gateways)):
        for value in values:
            matched = False
            for s in subnets:
                if not _subnet_has(s, value):
                    continue
                if key in configs[s]:
                    plural = "ranges" if key == "IPRange" else "gateways"
                    where = "on" if key == "IPRange" else "for"
                    given = configs[s][key]
                    raise InvalidArgument(f"cannot configure multiple {plural} ({value}, "
                                          f"{given}) {where} the same subnet ({s})")  # fmt: skip
                configs[s][key] = value
                matched = True
            if not matched:
                raise InvalidArgument(f"no matching subnet for {what} {value}")
    for name, address in aux.items():
        holders = [s for s in subnets if _subnet_has(s, address)]
        if not holders:
            raise InvalidArgument(f"no matching subnet for aux-address {address}")
        for s in holders:
            configs[s].setdefault("AuxiliaryAddresses", {})[name] = address
    return list(configs.values())


# docker's create flags sampan refuses by name (no description: not listed in --help).
_CREATE_REFUSED = [Flag("--ingress", "bool"), Flag("--config-only", "bool"),
                   Flag("--config-from", "str"), Flag("--ipam-opt", "list")]  # fmt: skip


def create_request(opts: dict[str, Any], name: str) -> dict[str, Any]:
    """The POST /networks/create body of ``network create``'s flags (docker CLI 28's)."""
    for flag in _CREATE_REFUSED:
        if opts[flag.dest]:
            raise Unsupported(f"{flag.names[0]} is not supported by sampan")
    driver = opts["driver"] or "bridge"
    if driver != "bridge":
        raise Unsupported(f'network driver "{driver}" is not supported: sampan has bridge only')
    if opts["ipv6"]:
        raise Unsupported("--ipv6: IPv6 networks are not supported by sampan")
    if opts["ipv4"] is False:
        raise Unsupported("--ipv4=false: networks without IPv4 are not supported by sampan")
    ipam_driver = opts["ipam_driver"] or "default"
    if ipam_driver != "default":
        raise Unsupported(f'IPAM driver "{ipam_driver}" is not supported: sampan has default only')
    scope = opts["scope"] or ""
    if scope not in ("", "local"):
        raise Unsupported(f'scope "{scope}" is not supported: sampan networks are local')
    config = ipam_config(opts["subnet"], opts["ip_range"], opts["gateway"],
                         _pairs(opts["aux_address"]))  # fmt: skip
    return {
        "Driver": driver,
        "Scope": scope,
        "IPAM": {"Driver": ipam_driver, "Options": {}, "Config": config},
        "Internal": bool(opts["internal"]),
        "Attachable": bool(opts["attachable"]),
        "Ingress": False,
        "ConfigOnly": False,
        "ConfigFrom": None,
        "Options": _pairs(opts["opt"]),
        "Labels": _pairs(opts["label"]),
        "Name": name,
        "CheckDuplicate": True,
    }


def cmd_network_create(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--driver,-d", "str", "driver to manage the network (bridge only)"),
             Flag("--subnet", "list", "subnet in CIDR format that represents a network segment"),
             Flag("--gateway", "list", "IPv4 gateway for the master subnet"),
             Flag("--ip-range", "list", "allocate container IPs from a sub-range"),
             Flag("--aux-address", "list", "auxiliary IPv4 addresses used by the driver"),
             Flag("--internal", "bool", "restrict external access to the network"),
             Flag("--attachable", "bool", "enable manual container attachment"),
             Flag("--label", "list", "set metadata on a network"),
             Flag("--opt,-o", "list", "set driver specific options"),
             Flag("--ipam-driver", "str", "IP address management driver (default only)"),
             Flag("--ipv4", "bool", "enable IPv4 networking", True),
             Flag("--ipv6", "bool", "enable IPv6 networking (not supported)"),
             Flag("--scope", "str", "control the network's scope (local only)"),
             *_CREATE_REFUSED]  # fmt: skip
    opts, args = _args(argv, flags, "create [OPTIONS] NETWORK")
    if len(args) != 1:
        raise Usage('"sampan network create" requires exactly 1 argument')
    body = create_request(opts, args[0])
    client = Client(ctx.host)

    def create() -> int:
        doc = client.json("POST", "/networks/create", None, body) or {}
        if doc.get("Warning"):
            err(f"WARNING: {doc['Warning']}")
        print(doc["Id"])
        return 0

    return daemon_errors(create)


# -- ls ----------------------------------------------------------------------------------


def natural_key(name: str) -> list[tuple[int, ...] | tuple[int, int, str, int]]:
    """A sort key in docker's natural order (sortorder.NaturalLess): runs of digits by
    value (before any other character), other characters byte by byte."""
    data = name.encode()
    key: list[Any] = []
    i = 0
    while i < len(data):
        if 48 <= data[i] <= 57:
            j = i
            while j < len(data) and 48 <= data[j] <= 57:
                j += 1
            digits = data[i:j].decode()
            value = digits.lstrip("0")
            key.append((0, len(value), value, len(digits) - len(value)))
            i = j
        else:
            key.append((1, data[i]))
            i += 1
    return key


def _go_time(text: str) -> str:
    """An RFC 3339 time as Go's time.Time.String prints it ("2006-01-02 15:04:05.5 +0000
    UTC"), which docker's CreatedAt column shows."""
    date, _, clock = text.partition("T")
    if not clock:
        return text
    zone = "Z" if clock.endswith("Z") else clock[-6:]
    clock = clock[:-1] if zone == "Z" else clock[:-6]
    whole, _, fraction = clock.partition(".")
    fraction = fraction.rstrip("0")
    stamp = f"{date} {whole}" + (f".{fraction}" if fraction else "")
    if zone == "Z":
        return f"{stamp} +0000 UTC"
    offset = zone.replace(":", "")
    return f"{stamp} {offset} {offset}"


def network_row(n: dict[str, Any], trunc: bool) -> dict[str, Any]:
    """One network as docker's network formatter shows it."""
    labels = n.get("Labels") or {}
    nid = str(n.get("Id", ""))
    return {
        "ID": nid[:12] if trunc else nid,
        "Name": n.get("Name", ""),
        "Driver": n.get("Driver", ""),
        "Scope": n.get("Scope", ""),
        "IPv4": "true" if n.get("EnableIPv4") else "false",  # absent under API 1.41: false
        "IPv6": "true" if n.get("EnableIPv6") else "false",
        "Internal": "true" if n.get("Internal") else "false",
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Label": lambda key: labels.get(key, ""),
        "CreatedAt": _go_time(str(n.get("Created", ""))),
    }


def cmd_network_ls(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--quiet,-q", "bool", "only display network IDs"),
             Flag("--no-trunc", "bool", "do not truncate the output"),
             Flag("--filter,-f", "list", "provide filter values (e.g. driver=bridge)"),
             Flag("--format", "str", "format output using a custom template")]  # fmt: skip
    opts, args = _args(argv, flags, "ls [OPTIONS]")
    if args:
        raise Usage('"sampan network ls" accepts no arguments')
    query = {"filters": filters_json(opts["filter"])}
    client = Client(ctx.host)

    def ls() -> int:
        found = client.json("GET", "/networks", query) or []
        found.sort(key=lambda n: natural_key(str(n.get("Name", ""))))
        trunc = not opts["no_trunc"]
        if opts["quiet"] and not opts["format"]:
            ids = (n["Id"][:12] if trunc else n["Id"] for n in found)
            sys.stdout.write("".join(f"{i}\n" for i in ids))
            return 0
        from sampan.cli.format import render_listing

        rows = [network_row(n, trunc) for n in found]
        sys.stdout.write(render_listing(opts["format"], rows, NETWORK_HEADERS, LS_TABLE))
        return 0

    return daemon_errors(ls)


# -- inspect, rm, prune ------------------------------------------------------------------


def cmd_network_inspect(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--format,-f", "str", "format output using a custom template"),
             Flag("--verbose,-v", "bool", "verbose output for diagnostics")]  # fmt: skip
    opts, args = _args(argv, flags, "inspect [OPTIONS] NETWORK [NETWORK...]")
    if not args:
        raise Usage('"sampan network inspect" requires at least 1 argument')
    client = Client(ctx.host)
    query = {"verbose": "true"} if opts["verbose"] else None
    docs: list[Any] = []

    def inspect(name: str) -> None:
        docs.append(client.json("GET", f"/networks/{quote(name)}", query))

    code = daemon_errors(lambda: each(args, inspect))
    from sampan.cli.format import inspect_output

    sys.stdout.write(inspect_output(docs, opts["format"]))
    return code


def cmd_network_rm(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--force,-f", "bool", "do not error if the network does not exist")]
    opts, args = _args(argv, flags, "rm NETWORK [NETWORK...]")
    if not args:
        raise Usage('"sampan network rm" requires at least 1 argument')
    client = Client(ctx.host)

    def rm(name: str) -> str | None:
        try:
            client.request("DELETE", f"/networks/{quote(name)}").read()
        except ApiError as exc:
            if opts["force"] and exc.status == 404:
                return None
            raise
        return name

    return daemon_errors(lambda: each(args, rm))


def cmd_network_prune(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--filter", "list", "provide filter values (e.g. until=<timestamp>)"),
             Flag("--force,-f", "bool", "do not prompt for confirmation")]  # fmt: skip
    opts, args = _args(argv, flags, "prune [OPTIONS]")
    if args:
        raise Usage('"sampan network prune" accepts no arguments')
    query = {"filters": filters_json(opts["filter"])}
    if not opts["force"]:
        sys.stdout.write("WARNING! This will remove all custom networks not used by at least "
                         "one container.\nAre you sure you want to continue? [y/N] ")  # fmt: skip
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    client = Client(ctx.host)

    def prune() -> int:
        doc = client.json("POST", "/networks/prune", query) or {}
        deleted = doc.get("NetworksDeleted") or []
        if deleted:
            sys.stdout.write("Deleted Networks:\n" + "".join(f"{n}\n" for n in deleted) + "\n")
        return 0

    return daemon_errors(prune)


# -- connect, disconnect -----------------------------------------------------------------


def connect_request(opts: dict[str, Any], container: str) -> dict[str, Any]:
    """The POST /networks/{id}/connect body of ``network connect``'s flags (docker's)."""
    from sampan.cli.net_opts import parse_link

    if opts["gw_priority"] is not None:
        raise Unsupported("--gw-priority is not supported by sampan")
    for link in opts["link"]:
        try:
            parse_link(link)
        except InvalidArgument as exc:
            raise InvalidArgument(f'invalid argument "{link}" for "--link" flag: {exc}') from None
    driver_opts: dict[str, str] = {}
    for opt in opts["driver_opt"]:
        key, eq, value = opt.partition("=")
        if not eq or not key.strip():
            raise InvalidArgument("invalid key/value pair format in driver options")
        driver_opts[key.strip()] = value.strip()
    ipam = {"IPv4Address": opts["ip"] or "", "IPv6Address": opts["ip6"] or "",
            "LinkLocalIPs": opts["link_local_ip"]}  # fmt: skip
    return {
        "Container": container,
        "EndpointConfig": {
            "IPAMConfig": {k: v for k, v in ipam.items() if v},
            "Links": list(opts["link"]) or None,
            "Aliases": list(opts["alias"]),
            "MacAddress": "",
            "DriverOpts": driver_opts,
        },
    }


def cmd_network_connect(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--ip", "str", "IPv4 address (e.g., 172.30.100.104)"),
             Flag("--ip6", "str", "IPv6 address (not supported)"),
             Flag("--alias", "list", "add network-scoped alias for the container"),
             Flag("--link", "list", "add link to another container"),
             Flag("--link-local-ip", "list", "add a link-local address (not supported)"),
             Flag("--driver-opt", "list", "driver options for the network (not supported)"),
             Flag("--gw-priority", "int")]  # fmt: skip
    opts, args = _args(argv, flags, "connect [OPTIONS] NETWORK CONTAINER")
    if len(args) != 2:
        raise Usage('"sampan network connect" requires exactly 2 arguments')
    body = connect_request(opts, args[1])
    client = Client(ctx.host)

    def connect() -> int:
        client.request("POST", f"/networks/{quote(args[0])}/connect", None, body).read()
        return 0

    return daemon_errors(connect)


def cmd_network_disconnect(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--force,-f", "bool", "force the container to disconnect from a network")]
    opts, args = _args(argv, flags, "disconnect [OPTIONS] NETWORK CONTAINER")
    if len(args) != 2:
        raise Usage('"sampan network disconnect" requires exactly 2 arguments')
    body = {"Container": args[1], "Force": bool(opts["force"])}
    client = Client(ctx.host)

    def disconnect() -> int:
        client.request("POST", f"/networks/{quote(args[0])}/disconnect", None, body).read()
        return 0

    return daemon_errors(disconnect)
