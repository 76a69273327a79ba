"""run/create's network flags into the create body, as the docker CLI (28) sends them.

    -p [IP:][HOSTPORT[-END]:]PORT[-END][/PROTO]   HostConfig.PortBindings {"80/tcp":
                     [{"HostIp": "", "HostPort": "8080"}]} and Config.ExposedPorts; also
                     docker's long form target=80,published=8080,protocol=udp
    -P               HostConfig.PublishAllPorts
    --expose PORT[-END][/PROTO]                   Config.ExposedPorts
    --network NAME|none|host|container:X (or name=N,alias=A,ip=I,...; repeatable)
                     HostConfig.NetworkMode (the first) and NetworkingConfig.EndpointsConfig
                     {NAME: {IPAMConfig: {IPv4Address}, Aliases, Links, MacAddress, ...}};
                     --ip, --network-alias, --mac-address and (on a user network) --link
                     go to the first network's endpoint
    --dns, --dns-search, --dns-option             HostConfig.Dns, DnsSearch, DnsOptions
    --add-host HOST:IP (or HOST=IP, IP may be host-gateway)   HostConfig.ExtraHosts
    --link NAME[:ALIAS]                           HostConfig.Links, as given

Values are checked as the docker CLI checks them and refused with its words
(the daemon checks what they mean: that a network exists, an address is in
its subnet).  One check more than docker's CLI, in the daemon's words: --ip
needs a user-defined network (docker's daemon answers the same).

Imported only by run and create (``ps`` never pays for it); no ``re`` or
``ipaddress``: addresses are checked with inet_pton.
"""

from __future__ import annotations

import _socket

from sampan.errors import InvalidArgument, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

__all__ = ["apply", "check_ip", "is_user_defined", "parse_link", "parse_port_spec"]

_PROTOS = ("tcp", "udp", "sctp")
# run/create's flags that docker's --network CSV can also give per network: (flag, the
# key in opts and in an attachment, what docker calls the per-network value).
_PER_NETWORK = (
    ("--network-alias", "network_alias", "alias"),
    ("--link", "link", "links"),
    ("--ip", "ip", "IPv4 address"),
    ("--mac-address", "mac_address", "MAC address"),
)
_EMPTY_ENDPOINT: dict[str, Any] = {
    "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "DriverOpts": None,
}  # fmt: skip


def apply(opts: dict[str, Any], body: dict[str, Any]) -> None:
    """Fill BODY (a /containers/create request) from run/create's network flags."""
    host = body.setdefault("HostConfig", {})
    exposed, bindings = _ports(opts["publish"], opts["expose"])
    if exposed:
        body["ExposedPorts"] = exposed
    mode, endpoints = _networks(opts)
    host.update({
        "NetworkMode": mode,
        "PortBindings": bindings,
        "PublishAllPorts": bool(opts["publish_all"]),
        "Dns": [_flag_value("--dns", v, _dns) for v in opts["dns"]],
        "DnsOptions": list(opts["dns_option"]),
        "DnsSearch": [_flag_value("--dns-search", v, _dns_search) for v in opts["dns_search"]],
        "ExtraHosts": [_flag_value("--add-host", v, _extra_host) for v in opts["add_host"]]
        or None,
        "Links": [_flag_value("--link", v, _link) for v in opts["link"]] or None,
    })  # fmt: skip
    body["NetworkingConfig"] = {"EndpointsConfig": endpoints}


def _flag_value(flag: str, value: str, check: Callable[[str], T]) -> T:
    """CHECK(VALUE), its error worded as docker's flag parser words it."""
    try:
        return check(value)
    except InvalidArgument as exc:
        raise InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: {exc}') from None


# -- addresses ---------------------------------------------------------------------------


def check_ip(text: str) -> str:
    """TEXT as Go's net.ParseIP + String print it (IPv6 compressed, v4-mapped as IPv4);
    InvalidArgument when it is no address."""
    try:
        return _socket.inet_ntop(_socket.AF_INET, _socket.inet_pton(_socket.AF_INET, text))
    except OSError:
        pass
    try:
        packed = _socket.inet_pton(_socket.AF_INET6, text)
    except OSError:
        raise InvalidArgument(f"invalid IP address: {text}") from None
    if packed[:12] == b"\0" * 10 + b"\xff\xff":
        return _socket.inet_ntop(_socket.AF_INET, packed[12:])
    return _socket.inet_ntop(_socket.AF_INET6, packed)


def _dns(value: str) -> str:
    try:
        return check_ip(value.strip())
    except InvalidArgument:
        raise InvalidArgument(f"IP address is not correctly formatted: {value}") from None


def _label_ok(label: str) -> bool:
    ok = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
    return bool(label) and label[0] != "-" and label[-1] != "-" and all(c in ok for c in label)


def _dns_search(value: str) -> str:
    """docker's ValidateDNSSearch: "." or a domain (some letter; labels of letters, digits,
    inner hyphens; one trailing dot dropped)."""
    value = value.strip(" ")
    if value == ".":
        return value
    domain = value.rstrip(" \t\n\r\f\v")
    domain = domain[:-1] if domain.endswith(".") else domain
    if not (
        any(c.isascii() and c.isalpha() for c in value)
        and all(_label_ok(label) for label in domain.split("."))
        and len(domain) < 255
    ):
        raise InvalidArgument(f"{value} is not a valid domain")
    return domain


def _extra_host(value: str) -> str:
    """docker's ValidateExtraHost: HOST:IP or HOST=IP (IP may be [bracketed] or
    host-gateway) -> "HOST:IP"."""
    name, sep, addr = value.partition("=")
    if not sep:
        name, sep, addr = value.partition(":")
    if not sep or not name or ":" in name:
        raise InvalidArgument(f'bad format for add-host: "{value}"')
    if addr != "host-gateway":
        if len(addr) > 2 and addr[0] == "[" and addr[-1] == "]":
            addr = addr[1:-1]
        try:
            check_ip(addr.strip())
        except InvalidArgument:
            raise InvalidArgument(f'invalid IP address in add-host: "{addr}"') from None
    return f"{name}:{addr}"


def parse_link(value: str) -> tuple[str, str]:
    """docker's --link NAME[:ALIAS] -> (name, alias)."""
    if not value:
        raise InvalidArgument("empty string specified for links")
    parts = value.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"bad format for links: {value}")
    return parts[0], parts[-1]


def _link(value: str) -> str:
    parse_link(value)
    return value  # sent as given, as docker does


def _check_mac(value: str) -> None:
    """Go's net.ParseMAC: 6, 8 or 20 octets as aa:bb:.., aa-bb-.. or aabb.ccdd.eeff."""
    hexdigits = "0123456789abcdefABCDEF"
    text = value.strip()
    if "." in text:
        groups = text.split(".")
        ok = all(len(g) == 4 and all(c in hexdigits for c in g) for g in groups)
        count = len(groups) * 2
    else:
        sep = ":" if ":" in text else "-"
        groups = text.split(sep)
        ok = all(len(g) == 2 and all(c in hexdigits for c in g) for g in groups)
        count = len(groups)
    if not ok or count not in (6, 8, 20):
        raise InvalidArgument(f"{value} is not a valid mac address")


# -- ports -------------------------------------------------------------------------------


def _port(text: str) -> int:
    """Go's strconv.ParseUint(TEXT, 10, 16), its error worded as Go's."""
    if not (text.isascii() and text.isdigit()):
        raise InvalidArgument(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value > 65535:
        raise InvalidArgument(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def _port_range(text: str) -> tuple[int, int]:
    """docker's ParsePortRange: "80" or "8000-8010"."""
    if not text:
        raise InvalidArgument("empty string specified for ports")
    first, dash, last = text.partition("-")
    start = _port(first)
    if not dash:
        return start, start
    end = _port(last)
    if end < start:
        raise InvalidArgument(f"invalid range specified for port: {text}")
    return start, end


def _split_proto(text: str) -> tuple[str, str]:
    """docker's SplitProtoPort: "80/udp" -> ("udp", "80"); no protocol is tcp."""
    port, slash, proto = text.partition("/")
    if not port:
        return "", ""
    proto = proto.split("/")[0]
    return (proto or "tcp") if slash else "tcp", port


def parse_port_spec(raw: str) -> list[tuple[str, dict[str, str]]]:
    """One -p value as docker's ParsePortSpec: [("80/tcp", {"HostIp", "HostPort"}), ...]."""
    parts = raw.split(":")
    container = parts[-1]
    ip, host_port = "", ""
    if len(parts) == 2:
        host_port = parts[0]
    elif len(parts) >= 3:
        ip, host_port = ":".join(parts[:-2]), parts[-2]
    proto, container = _split_proto(container)
    if ip.startswith("["):
        if not ip.endswith("]"):
            raise InvalidArgument(f"invalid IP address {ip}: missing ']' in address")
        ip = ip[1:-1]
    if ip:
        try:
            check_ip(ip)
        except InvalidArgument:
            raise InvalidArgument(f"invalid IP address: {ip}") from None
    if not container:
        raise InvalidArgument(f"no port specified: {raw}<empty>")
    try:
        start, end = _port_range(container)
    except InvalidArgument:
        raise InvalidArgument(f"invalid containerPort: {container}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = _port_range(host_port)
        except InvalidArgument:
            raise InvalidArgument(f"invalid hostPort: {host_port}") from None
        if end - start != host_end - host_start and end != start:
            raise InvalidArgument(f"invalid ranges specified for container and host Ports: "
                                  f"{container} and {host_port}")  # fmt: skip
    proto = proto.lower()
    if proto not in _PROTOS:
        raise InvalidArgument(f"invalid proto: {proto}")
    out = []
    for i in range(end - start + 1):
        hp = str(host_start + i) if host_port else ""
        if start == end and host_start != host_end:
            hp = f"{hp}-{host_end}"  # one container port, a host range to pick from
        out.append((f"{start + i}/{proto}", {"HostIp": ip, "HostPort": hp}))
    return out


def _standard_publish(value: str) -> str:
    """docker's long -p form (target=80,published=8080,protocol=udp) as PUBLISHED:TARGET/P."""
    if "=" not in value:
        return value
    params = {"protocol": "tcp"}
    for param in value.split(","):
        key, eq, val = param.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"invalid publish opts format (should be name=value but "
                                  f"got '{param}')")  # fmt: skip
        params[key] = val
    return f"{params.get('published', '')}:{params.get('target', '')}/{params['protocol']}"


def _ports(
    publish: list[str], expose: list[str]
) -> tuple[dict[str, dict[str, str]], dict[str, list[dict[str, str]]]]:
    """(Config.ExposedPorts, HostConfig.PortBindings) of the -p and --expose values."""
    exposed: dict[str, dict[str, str]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for value in publish:
        for key, binding in parse_port_spec(_standard_publish(value)):
            exposed.setdefault(key, {})
            bindings.setdefault(key, []).append(binding)
    for value in expose:
        if ":" in value:
            raise InvalidArgument(f"invalid port format for --expose: {value}")
        proto, port = _split_proto(value)
        try:
            start, end = _port_range(port)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid range format for --expose: {value}, "
                                  f"error: {exc}") from None  # fmt: skip
        for p in range(start, end + 1):
            exposed.setdefault(f"{p}/{proto}", {})
    return exposed, bindings


# -- networks and their endpoints --------------------------------------------------------


def is_user_defined(mode: str) -> bool:
    """docker's NetworkMode.IsUserDefined: not default, bridge, host, none, container:X."""
    return mode not in ("default", "bridge", "host", "none") and not mode.startswith("container:")


def _long_syntax(value: str) -> bool:
    """docker's test for --network's CSV form: a word, "=", a word, somewhere."""
    word = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
    return any(
        value[i] == "=" and value[i - 1] in word and value[i + 1] in word
        for i in range(1, len(value) - 1)
    )


def _attachment(value: str) -> dict[str, Any]:
    """One --network value: a name, or docker's name=N,alias=A,ip=I,... (which docker
    lower-cases, keys and values alike)."""
    att: dict[str, Any] = {"target": value, "network_alias": [], "link": [], "ip": "",
                           "ip6": "", "mac_address": "", "link_local": [],
                           "driver_opts": {}}  # fmt: skip
    if not _long_syntax(value):
        return att
    from sampan.cli.mount_opts import csv_fields

    att["target"] = ""
    for field in csv_fields(value):
        key, eq, val = field.lower().partition("=")
        key, val = key.strip(), val.strip()
        if not eq or not key:
            raise InvalidArgument(f"invalid field {field}")
        if key == "name":
            att["target"] = val
        elif key == "alias":
            att["network_alias"].append(val)
        elif key in ("ip", "ip6"):
            att[key] = val
        elif key == "mac-address":
            att["mac_address"] = val
        elif key == "link-local-ip":
            att["link_local"].append(val)
        elif key == "driver-opt":
            opt, eq, opt_value = val.partition("=")
            if not eq:
                raise InvalidArgument("invalid key value mapping format in driverOpts")
            att["driver_opts"][opt.strip()] = opt_value.strip()
        elif key == "gw-priority":
            raise Unsupported("--network gw-priority is not supported by sampan")
        else:
            raise InvalidArgument(f"invalid field key {key}")
    if not att["target"]:
        raise InvalidArgument("network name/id is not specified")
    return att


def _with_flags(att: dict[str, Any], opts: dict[str, Any]) -> None:
    """docker's applyContainerOptions: --network-alias, --link, --ip, --mac-address join
    the first network's attachment (refused next to the same thing given per network)."""
    for flag, key, what in _PER_NETWORK:
        if opts[key] and att[key]:
            raise InvalidArgument(f"conflicting options: cannot specify both {flag} and "
                                  f"per-network {what}")  # fmt: skip
    if opts["network_alias"]:
        att["network_alias"] = list(opts["network_alias"])
    if opts["link"] and is_user_defined(att["target"]):
        att["link"] = list(opts["link"])  # on a user network a link is an alias
    if opts["ip"]:
        att["ip"] = opts["ip"]
    if opts["mac_address"]:
        att["mac_address"] = opts["mac_address"]


def _endpoint(att: dict[str, Any]) -> dict[str, Any]:
    """docker's parseNetworkAttachmentOpt: the EndpointSettings of one attachment."""
    target = att["target"]
    if not target.strip():
        raise InvalidArgument("no name set for network")
    if not is_user_defined(target):
        if att["network_alias"]:
            raise InvalidArgument("network-scoped aliases are only supported for "
                                  "user-defined networks")  # fmt: skip
        if att["link"]:
            raise InvalidArgument("links are only supported for user-defined networks")
        if att["ip"] or att["ip6"]:
            raise InvalidArgument("user specified IP address is supported on user defined "
                                  "networks only")  # fmt: skip
    ep = dict(_EMPTY_ENDPOINT)
    if att["network_alias"]:
        ep["Aliases"] = list(att["network_alias"])
    if att["driver_opts"]:
        ep["DriverOpts"] = dict(att["driver_opts"])
    if att["link"]:
        ep["Links"] = list(att["link"])
    if att["ip"] or att["ip6"] or att["link_local"]:
        ipam = {"IPv4Address": att["ip"], "IPv6Address": att["ip6"],
                "LinkLocalIPs": att["link_local"]}  # fmt: skip
        ep["IPAMConfig"] = {k: v for k, v in ipam.items() if v}
    if att["mac_address"]:
        _check_mac(att["mac_address"])
        ep["MacAddress"] = att["mac_address"]
    return ep


def _networks(opts: dict[str, Any]) -> tuple[str, dict[str, dict[str, Any]]]:
    """docker's parseNetworkOpts: (HostConfig.NetworkMode, NetworkingConfig.EndpointsConfig)
    of the --network values (the first names the mode)."""
    if opts["mac_address"]:
        _check_mac(opts["mac_address"])
    values = opts["network"]
    if not values:
        att = _attachment("default")
        _with_flags(att, opts)
        return "default", {"default": _endpoint(att)}
    endpoints: dict[str, dict[str, Any]] = {}
    atts = [_flag_value("--network", value, _attachment) for value in values]
    for i, att in enumerate(atts):
        if i == 0:
            _with_flags(att, opts)
        ep = _endpoint(att)
        if att["target"] in endpoints:
            raise InvalidArgument(f'network "{att["target"]}" is specified multiple times')
        if i == 0 and len(atts) == 1 and ep == _EMPTY_ENDPOINT:
            continue  # a single network with nothing to say: no endpoint sent (docker)
        endpoints[att["target"]] = ep
    kinds = {is_user_defined(att["target"]) for att in atts}
    if len(kinds) > 1:
        raise InvalidArgument("conflicting options: cannot attach both user-defined and "
                              "non-user-defined network-modes")  # fmt: skip
    return atts[0]["target"], endpoints
