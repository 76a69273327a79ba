"""run/create's -v, --mount, --tmpfs and --volumes-from as the docker CLI sends them.

    -v SRC:/DST[:OPTS]   HostConfig.Binds (a source starting with "." becomes absolute)
    -v /DST              Config.Volumes {"/DST": {}} (an anonymous volume)
    --mount CSV          HostConfig.Mounts: type=bind|volume|tmpfs (default volume),
                         source|src, target|destination|dst, readonly|ro[=BOOL],
                         consistency, bind-propagation, bind-nonrecursive[=BOOL],
                         volume-nocopy[=BOOL], volume-label=K=V, volume-driver,
                         volume-opt=K=V, tmpfs-size (64m), tmpfs-mode (octal)
    --tmpfs /DST[:OPTS]  HostConfig.Tmpfs {"/DST": "OPTS"}
    --volumes-from C[:ro|rw]  HostConfig.VolumesFrom

The daemon checks what the values mean (paths, modes, names); this only
parses.  A malformed --mount is refused here, worded as the docker CLI words
it (``invalid argument "..." for "--mount" flag: ...``).
"""

from __future__ import annotations

import os

from sampan.cli.args import Flag
from sampan.errors import InvalidArgument
from sampan.units import ram_in_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["CREATE_FLAGS", "apply", "csv_fields", "parse_mount", "ps_mounts"]

CREATE_FLAGS = [
    Flag("--volume,-v", "list", "bind mount a volume (SRC:/DST[:OPTS], or /DST)"),
    Flag("--mount", "list", "attach a filesystem mount to the container (type=,src=,dst=...)"),
    Flag("--tmpfs", "list", "mount a tmpfs directory (/DST[:OPTS])"),
    Flag("--volumes-from", "list", "mount volumes from the specified container(s)"),
]

_BOOLS = dict.fromkeys(("1", "t", "T", "true", "TRUE", "True"), True)  # Go's ParseBool
_BOOLS.update(dict.fromkeys(("0", "f", "F", "false", "FALSE", "False"), False))


def csv_fields(text: str) -> list[str]:
    """One CSV record (Go's encoding/csv): commas separate, double quotes quote ("" is ")."""
    fields: list[str] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == '"':
            out: list[str] = []
            i += 1
            while True:
                j = text.find('"', i)
                if j < 0:
                    raise InvalidArgument(f'extraneous or missing " in quoted-field: {text}')
                out.append(text[i:j])
                if text[j + 1 : j + 2] == '"':
                    out.append('"')
                    i = j + 2
                    continue
                i = j + 1
                break
            if i < n and text[i] != ",":
                raise InvalidArgument(f'extraneous or missing " in quoted-field: {text}')
            fields.append("".join(out))
        else:
            j = text.find(",", i)
            j = n if j < 0 else j
            field = text[i:j]
            if '"' in field:
                raise InvalidArgument(f'bare " in non-quoted-field: {text}')
            fields.append(field)
            i = j
        if i >= n:
            return fields
        i += 1  # the comma


def _bool(key: str, value: str) -> bool:
    if value not in _BOOLS:
        raise ValueError(f"invalid value for {key}: {value}")
    return _BOOLS[value]


def _parse(text: str) -> dict[str, Any]:
    mount: dict[str, Any] = {"Type": "volume"}

    def section(name: str) -> dict[str, Any]:
        return mount.setdefault(name, {})  # type: ignore[no-any-return]

    def driver() -> dict[str, Any]:
        return section("VolumeOptions").setdefault("DriverConfig", {})  # type: ignore[no-any-return]

    for field in csv_fields(text):
        key, eq, value = field.partition("=")
        if not eq:
            if key in ("readonly", "ro"):
                mount["ReadOnly"] = True
            elif key == "volume-nocopy":
                section("VolumeOptions")["NoCopy"] = True
            elif key == "bind-nonrecursive":
                section("BindOptions")["NonRecursive"] = True
            else:
                raise ValueError(f"invalid field '{field}' must be a key=value pair")
            continue
        if key == "type":
            mount["Type"] = value.lower()
        elif key in ("source", "src"):
            mount["Source"] = os.path.abspath(value) if value.startswith("./") or value == "." \
                else value  # fmt: skip
        elif key in ("target", "dst", "destination"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _bool(key, value)
        elif key == "consistency":
            mount["Consistency"] = value.lower()
        elif key == "bind-propagation":
            section("BindOptions")["Propagation"] = value.lower()
        elif key == "bind-nonrecursive":
            section("BindOptions")["NonRecursive"] = _bool(key, value)
        elif key == "volume-nocopy":
            section("VolumeOptions")["NoCopy"] = _bool(key, value)
        elif key == "volume-label":
            k, _, v = value.partition("=")
            if k:
                section("VolumeOptions").setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            driver()["Name"] = value
        elif key == "volume-opt":
            k, _, v = value.partition("=")
            if k:
                driver().setdefault("Options", {})[k] = v
        elif key == "tmpfs-size":
            try:
                section("TmpfsOptions")["SizeBytes"] = ram_in_bytes(value.strip())
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        elif key == "tmpfs-mode":
            try:
                section("TmpfsOptions")["Mode"] = int(value, 8)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    if not mount["Type"]:
        raise ValueError("type is required")
    if not mount.get("Target"):
        raise ValueError("target is required")
    for prefix, name in (("volume", "VolumeOptions"), ("bind", "BindOptions"),
                         ("tmpfs", "TmpfsOptions")):  # fmt: skip
        if name in mount and mount["Type"] != prefix:
            raise ValueError(f"cannot mix '{prefix}-*' options with mount type '{mount['Type']}'")
    return mount


def parse_mount(text: str) -> dict[str, Any]:
    """One --mount value -> a HostConfig.Mounts entry."""
    try:
        return _parse(text)
    except (ValueError, InvalidArgument) as exc:
        raise InvalidArgument(f'invalid argument "{text}" for "--mount" flag: {exc}') from None


def _bind(text: str) -> str | None:
    """-v TEXT as a Binds entry (None: a bare destination, an anonymous volume)."""
    source, colon, rest = text.partition(":")
    if not colon or not source:
        return None
    if source.startswith("."):  # as the docker CLI: ../data, .cache, . -- all paths
        source = os.path.abspath(source)
    return f"{source}:{rest}"


def apply(opts: dict[str, Any], body: dict[str, Any]) -> None:
    """Put the mount flags of OPTS (volume, mount, tmpfs, volumes_from) into BODY."""
    host = body.setdefault("HostConfig", {})
    binds: list[str] = []
    volumes: dict[str, Any] = {}
    for text in opts.get("volume") or []:
        bind = _bind(text)
        if bind is None:
            volumes[text] = {}
        else:
            binds.append(bind)
    if binds:
        host["Binds"] = binds
    if volumes:
        body["Volumes"] = volumes
    if opts.get("mount"):
        host["Mounts"] = [parse_mount(text) for text in opts["mount"]]
    tmpfs: dict[str, str] = {}
    for text in opts.get("tmpfs") or []:
        dest, _, options = text.partition(":")
        tmpfs[dest] = options
    if tmpfs:
        host["Tmpfs"] = tmpfs
    if opts.get("volumes_from"):
        host["VolumesFrom"] = list(opts["volumes_from"])


def ps_mounts(container: dict[str, Any], trunc: bool) -> str:
    """ps's MOUNTS column: each mount's volume name, else its source (15 characters when
    truncated), comma-separated."""
    names = []
    for m in container.get("Mounts") or []:
        name = str(m.get("Name") or m.get("Source") or "")
        names.append(name[:14] + "…" if trunc and len(name) > 15 else name)
    return ",".join(names)
