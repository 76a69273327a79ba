"""daemon.json: the daemon's configuration file, in docker's key names.

Only the keys sampan acts on are accepted; any other key is an error naming
it, because a setting silently ignored (a mirror, an insecure registry) is
worse than a daemon that refuses to start.  A missing file is an empty
configuration; flags given on the command line win over the file.
"""

from __future__ import annotations

import os

from sampan.errors import InvalidArgument

__all__ = ["DEFAULT_CONFIG_FILE", "KNOWN_KEYS", "DaemonConfig", "load_config"]

DEFAULT_CONFIG_FILE = "/etc/sampan/daemon.json"

# key -> the type its value must have
KNOWN_KEYS: dict[str, type] = {
    "registry-mirrors": list,
    "insecure-registries": list,
    "debug": bool,
    "hosts": list,
    "bridge": str,
    "bip": str,
    "fixed-cidr": str,
    "dns": list,
}


class DaemonConfig:
    """The settings of one daemon; frozen once made (``replace`` gives a changed copy).

    bridge      the default bridge's Linux name ("" = sampan0), or "none": no default
                bridge network (containers on the default network get loopback only)
    bip         the default bridge's gateway address and prefix (A.B.C.D/N)
    fixed_cidr  the part of the default bridge's subnet containers get addresses from
    dns         the resolvers of the embedded DNS server and of containers on the default
                bridge (default: the host's)
    """

    __slots__ = ("bip", "bridge", "debug", "dns", "fixed_cidr", "hosts", "insecure_registries",
                 "registry_mirrors", "source")  # fmt: skip
    registry_mirrors: tuple[str, ...]
    insecure_registries: tuple[str, ...]
    debug: bool
    hosts: tuple[str, ...]
    bridge: str
    bip: str
    fixed_cidr: str
    dns: tuple[str, ...]
    source: str

    def __init__(
        self,
        *,
        registry_mirrors: tuple[str, ...] = (),
        insecure_registries: tuple[str, ...] = (),
        debug: bool = False,
        hosts: tuple[str, ...] = (),
        bridge: str = "",
        bip: str = "",
        fixed_cidr: str = "",
        dns: tuple[str, ...] = (),
        source: str = "",
    ) -> None:
        _check_network(bridge, bip, fixed_cidr, dns)
        for name, value in (("registry_mirrors", tuple(registry_mirrors)),
                            ("insecure_registries", tuple(insecure_registries)),
                            ("debug", bool(debug)), ("hosts", tuple(hosts)), ("bridge", bridge),
                            ("bip", bip), ("fixed_cidr", fixed_cidr), ("dns", tuple(dns)),
                            ("source", source)):  # fmt: skip
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"DaemonConfig is frozen: {name}")

    def replace(self, **changes: object) -> DaemonConfig:
        """A copy with CHANGES (the command line's flags over the file's values)."""
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return DaemonConfig(**values)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__ if n != "source")
        return f"DaemonConfig({fields})"


def _check_network(bridge: str, bip: str, fixed_cidr: str, dns: tuple[str, ...]) -> None:
    """The network settings, each checked and named (--bridge, --bip, --fixed-cidr, --dns)."""
    if bridge and (len(bridge) > 15 or "/" in bridge or bridge.strip() != bridge):
        raise InvalidArgument(f"--bridge: invalid interface name {bridge!r}")
    if bridge == "none" and (bip or fixed_cidr):
        raise InvalidArgument("--bip and --fixed-cidr need a bridge (not --bridge none)")
    if bip or fixed_cidr or dns:
        from sampan.network.ipam import Pool, contains, parse_cidr, parse_ip

        if bip:
            addr, slash, _ = bip.partition("/")
            if not slash:
                raise InvalidArgument(f"--bip: {bip!r} needs a prefix length (A.B.C.D/N)")
            parse_cidr(bip, "--bip")
            try:
                Pool.parse(bip, addr)  # the gateway a host address of its subnet
            except InvalidArgument as exc:
                raise InvalidArgument(f"--bip {bip}: {exc}") from None
        if fixed_cidr:
            rng = parse_cidr(fixed_cidr, "--fixed-cidr")
            if bip and not (rng[1] >= parse_cidr(bip)[1] and contains(parse_cidr(bip), rng[0])):
                raise InvalidArgument(f"--fixed-cidr: {fixed_cidr} is not inside --bip {bip}")
        for server in dns:
            parse_ip(server, "--dns")


def parse_config(data: bytes, path: str) -> DaemonConfig:
    """DaemonConfig from the bytes of daemon.json at PATH (PATH only names it in errors)."""
    import json  # the daemon's start, not a container's: the stdlib parser is fine

    if not data.strip():
        return DaemonConfig(source=path)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{path}: expected a JSON object")
    unknown = sorted(set(doc) - set(KNOWN_KEYS))
    if unknown:
        known = ", ".join(sorted(KNOWN_KEYS))
        raise InvalidArgument(
            f"{path}: unknown configuration key {unknown[0]!r} (sampan knows {known})"
        )
    for key, kind in KNOWN_KEYS.items():
        if key not in doc:
            continue
        value = doc[key]
        if not isinstance(value, kind):
            raise InvalidArgument(f"{path}: {key}: expected a {kind.__name__}")
        if isinstance(value, list) and not all(isinstance(v, str) and v for v in value):
            raise InvalidArgument(f"{path}: {key}: expected a list of non-empty strings")
    return DaemonConfig(
        registry_mirrors=tuple(doc.get("registry-mirrors", ())),
        insecure_registries=tuple(doc.get("insecure-registries", ())),
        debug=bool(doc.get("debug", False)),
        hosts=tuple(doc.get("hosts", ())),
        bridge=doc.get("bridge", ""),
        bip=doc.get("bip", ""),
        fixed_cidr=doc.get("fixed-cidr", ""),
        dns=tuple(doc.get("dns", ())),
        source=path,
    )


def load_config(path: str | None = None) -> DaemonConfig:
    """The configuration in PATH (DEFAULT_CONFIG_FILE by default); missing is empty."""
    path = path or DEFAULT_CONFIG_FILE
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return DaemonConfig()
    except IsADirectoryError:
        raise InvalidArgument(f"{path}: is a directory, expected daemon.json") from None
    if not os.path.isfile(path):
        raise InvalidArgument(f"{path}: not a regular file")
    return parse_config(data, path)
