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
}


class DaemonConfig:
    """The settings of one daemon; frozen once made."""

    __slots__ = ("debug", "hosts", "insecure_registries", "registry_mirrors", "source")
    registry_mirrors: tuple[str, ...]
    insecure_registries: tuple[str, ...]
    debug: bool
    hosts: tuple[str, ...]
    source: str

    def __init__(
        self,
        *,
        registry_mirrors: tuple[str, ...] = (),
        insecure_registries: tuple[str, ...] = (),
        debug: bool = False,
        hosts: tuple[str, ...] = (),
        source: str = "",
    ) -> None:
        object.__setattr__(self, "registry_mirrors", tuple(registry_mirrors))
        object.__setattr__(self, "insecure_registries", tuple(insecure_registries))
        object.__setattr__(self, "debug", bool(debug))
        object.__setattr__(self, "hosts", tuple(hosts))
        object.__setattr__(self, "source", source)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"DaemonConfig is frozen: {name}")

    def __repr__(self) -> str:
        return (
            f"DaemonConfig(registry_mirrors={self.registry_mirrors!r}, "
            f"insecure_registries={self.insecure_registries!r}, debug={self.debug!r}, "
            f"hosts={self.hosts!r})"
        )


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
