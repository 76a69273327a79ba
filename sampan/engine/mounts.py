"""A create request's mounts -> the container's mount points -> OCI mounts in config.json.

The request says it four ways, read in docker's order (a later one taking a
destination from an earlier only where docker allows it):

    HostConfig.VolumesFrom  ["name[:ro|rw]"]        the other container's mount points
    HostConfig.Binds        ["src:/dst[:opts]"]     src absolute: a bind; else a volume name
    HostConfig.Mounts       [{Type, Source, Target, ReadOnly, BindOptions, VolumeOptions,
                              TmpfsOptions}]
    HostConfig.Tmpfs        {"/dst": "size=64m,mode=1777"}

and then every path of Config.Volumes (the image's and the request's) not
covered by one of them becomes an anonymous volume.  The result is the
container's mount points, kept in its record (``state["MountPoints"]``, one
row, one transaction with the container): who uses a volume is read from
there, never counted.

Rules (docker's, with two choices of sampan's own):
  - a destination is absolute, not "/", and given once (Binds, Mounts, Tmpfs);
  - a bind's source must exist -- for -v too, where docker would make an empty
    directory (the engine issue asks for an error); BindOptions.CreateMountpoint
    makes it;
  - a volume name that is not there is created (the local driver, or
    HostConfig.VolumeDriver / VolumeOptions.DriverConfig);
  - z and Z (SELinux relabelling) are accepted and do nothing on a host without
    SELinux, as docker does there; with SELinux enabled they are refused;
  - a volume that is empty when its first container starts gets the image's
    content at the mount point (owners and modes), unless nocopy -- once per
    mount point.

    mounts.plan(engine, c, request, image_config)  # validate; c's mount points
    mounts.create_volumes(engine, c)              # after the record is in
    mounts.setup(engine, c, rootfs)               # at start: devices mounted, copy-up
    mounts.apply(engine, c, doc)                  # config.json's mounts
    mounts.teardown(engine, c)                    # at exit
    mounts.release(engine, c, remove_anonymous)   # at rm (-v)
"""

from __future__ import annotations

import os

from sampan.errors import Conflict, InvalidArgument, NotFound, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.engine.containers import Container
    from sampan.engine.daemon import Engine

__all__ = [
    "FIELDS",
    "api_mounts",
    "apply",
    "check_host_fields",
    "create_volumes",
    "oci_mounts",
    "parse_bind",
    "plan",
    "release",
    "setup",
    "teardown",
    "tmpfs_options",
]

FIELDS = frozenset(("Binds", "Mounts", "Tmpfs", "VolumesFrom", "VolumeDriver"))
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
DEFAULT_PROPAGATION = "rprivate"
_RW = ("rw", "ro")
_LABELS = ("z", "Z")
_COPY = ("nocopy",)
_CONSISTENCY = ("consistent", "cached", "delegated", "default")
_TMPFS_DATA = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol", "huge",
               "inode32", "inode64", "noswap")  # fmt: skip
_MOUNT_KEYS = ("Type", "Source", "Target", "ReadOnly", "Consistency", "BindOptions",
               "VolumeOptions", "TmpfsOptions")  # fmt: skip
_BIND_KEYS = ("Propagation", "NonRecursive", "CreateMountpoint", "ReadOnlyNonRecursive",
              "ReadOnlyForceRecursive")  # fmt: skip
_VOLUME_KEYS = ("NoCopy", "Labels", "DriverConfig", "Subpath")
_TMPFS_KEYS = ("SizeBytes", "Mode", "Options")


# -- checking the request ---------------------------------------------------------------


def _clean(path: str) -> str:
    """Go's path.Clean for an absolute path."""
    out: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if out:
                out.pop()
        elif part and part != ".":
            out.append(part)
    return "/" + "/".join(out)


def _destination(path: object, what: str) -> str:
    if not isinstance(path, str) or not path:
        raise InvalidArgument(f"{what}: field Target must not be empty")
    if not path.startswith("/"):
        raise InvalidArgument(f"{what}: invalid mount path: '{path}' mount path must be absolute")
    clean = _clean(path)
    if clean == "/":
        raise InvalidArgument(f"{what}: invalid specification: destination can't be '/'")
    return clean


def _strs(value: object, field: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"HostConfig.{field}: expected a list of strings")
    return list(value)


def check_host_fields(host: object) -> dict[str, Any]:
    """HostConfig's mount fields, type-checked and kept as given (inspect shows them)."""
    if not isinstance(host, dict):
        host = {}
    out: dict[str, Any] = {
        "Binds": _strs(host.get("Binds"), "Binds"),
        "VolumeDriver": host.get("VolumeDriver") or "",
        "VolumesFrom": _strs(host.get("VolumesFrom"), "VolumesFrom"),
    }
    if not isinstance(out["VolumeDriver"], str):
        raise InvalidArgument("HostConfig.VolumeDriver: expected a string")
    mounts = host.get("Mounts")
    if mounts:
        if not isinstance(mounts, list) or not all(isinstance(m, dict) for m in mounts):
            raise InvalidArgument("HostConfig.Mounts: expected a list of objects")
        out["Mounts"] = mounts
    tmpfs = host.get("Tmpfs")
    if tmpfs:
        if not isinstance(tmpfs, dict) or not all(isinstance(v, str) for v in tmpfs.values()):
            raise InvalidArgument("HostConfig.Tmpfs: expected an object of strings")
        out["Tmpfs"] = tmpfs
    return out


def _valid_mode(mode: str) -> bool:
    """docker's mode rule: each of rw/ro, z/Z, propagation, nocopy, consistency at most once."""
    if not mode:
        return True
    counts = [0, 0, 0, 0, 0]
    for opt in mode.split(","):
        for i, group in enumerate((_RW, _LABELS, PROPAGATIONS, _COPY, _CONSISTENCY)):
            if opt in group:
                counts[i] += 1
                break
        else:
            return False
    return max(counts) <= 1


def _check_relabel(mode: str, what: str) -> None:
    if any(o in _LABELS for o in mode.split(",")) and os.path.exists("/sys/fs/selinux/enforce"):
        raise Unsupported(f"{what}: SELinux relabelling (z, Z) is not supported")


def parse_bind(raw: str, driver: str = "") -> tuple[dict[str, Any], str]:
    """One Binds entry -> (a Mounts-shaped dict, its mode string), as docker's parser."""
    parts = raw.split(":", 3)
    invalid = f"invalid volume specification: '{raw}'"
    if not parts[0]:
        raise InvalidArgument(invalid)
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if _valid_mode(parts[1]):
            raise InvalidArgument(invalid)
        source, target = parts
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise InvalidArgument(invalid)
    if not _valid_mode(mode):
        raise InvalidArgument(f"{invalid}: invalid mode: {mode}")
    opts = mode.split(",") if mode else []
    spec: dict[str, Any] = {
        "Type": "bind" if source.startswith("/") else "volume",
        "Source": source,
        "Target": target,
        "ReadOnly": "ro" in opts,
    }
    if driver and spec["Type"] == "volume":
        spec["VolumeOptions"] = {"DriverConfig": {"Name": driver}}
    if "nocopy" in opts:
        spec.setdefault("VolumeOptions", {})["NoCopy"] = True
    prop = [o for o in opts if o in PROPAGATIONS]
    if prop:
        spec["BindOptions"] = {"Propagation": prop[0]}
    _check_relabel(mode, invalid)
    return spec, mode


def _object(value: object, field: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field}: expected an object")
    for key in value:
        if key not in keys:
            raise InvalidArgument(f"{field}: unknown field {key!r}")
    return value


def _point(spec: dict[str, Any], what: str, mode: str = "") -> dict[str, Any]:
    """A Mounts entry, checked -> a mount point (Type, Name, Source, Destination, ...)."""
    _object(spec, what, _MOUNT_KEYS)
    kind = spec.get("Type")
    if kind not in ("bind", "volume", "tmpfs"):
        if kind in ("npipe", "cluster", "image"):
            raise Unsupported(f"{what}: mount type {kind!r} is not supported")
        raise InvalidArgument(f"{what}: mount type unknown: {kind!r}")
    fail = f'invalid mount config for type "{kind}"'
    for field, owner in (("BindOptions", "bind"), ("VolumeOptions", "volume"),
                         ("TmpfsOptions", "tmpfs")):  # fmt: skip
        if spec.get(field) is not None and kind != owner:
            raise InvalidArgument(f"{fail}: field {field} must not be specified")
    target = spec.get("Target")
    if not target:
        raise InvalidArgument(f"{fail}: field Target must not be empty")
    dest = _destination(target, fail)
    source = spec.get("Source") or ""
    if not isinstance(source, str):
        raise InvalidArgument(f"{fail}: field Source: expected a string")
    read_only = spec.get("ReadOnly") or False
    if not isinstance(read_only, bool):
        raise InvalidArgument(f"{fail}: field ReadOnly: expected a boolean")
    consistency = spec.get("Consistency") or ""
    if consistency not in ("", *_CONSISTENCY):
        raise InvalidArgument(f"{fail}: invalid consistency {consistency!r}")
    point: dict[str, Any] = {
        "Type": kind, "Name": "", "Source": "", "Destination": dest, "Driver": "",
        "Mode": mode, "RW": not read_only, "Propagation": "", "CopyData": False,
    }  # fmt: skip
    if kind == "bind":
        bind = _object(spec.get("BindOptions"), f"{fail}: BindOptions", _BIND_KEYS)
        if not source:
            raise InvalidArgument(f"{fail}: field Source must not be empty")
        if not source.startswith("/"):
            raise InvalidArgument(
                f"{fail}: invalid mount path: '{source}' mount path must be absolute"
            )
        prop = bind.get("Propagation") or ""
        if prop and prop not in PROPAGATIONS:
            raise InvalidArgument(f"{fail}: invalid propagation mode: {prop}")
        for flag in ("ReadOnlyNonRecursive", "ReadOnlyForceRecursive"):
            if bind.get(flag):
                raise Unsupported(f"{fail}: BindOptions.{flag} is not supported")
        point["Source"] = _clean(source)
        point["Propagation"] = prop or DEFAULT_PROPAGATION
        point["NonRecursive"] = bool(bind.get("NonRecursive"))
        if not os.path.exists(point["Source"]):
            if not bind.get("CreateMountpoint"):
                raise InvalidArgument(f"{fail}: bind source path does not exist: {source}")
            point["Create"] = True
    elif kind == "volume":
        vol = _object(spec.get("VolumeOptions"), f"{fail}: VolumeOptions", _VOLUME_KEYS)
        if vol.get("Subpath"):
            raise Unsupported(f"{fail}: VolumeOptions.Subpath is not supported")
        driver = _object(vol.get("DriverConfig"), f"{fail}: DriverConfig", ("Name", "Options"))
        from sampan.engine.volumes import check_name, check_options

        if source:
            check_name(source)
        if not isinstance(driver.get("Name") or "", str):
            raise InvalidArgument(f"{fail}: DriverConfig.Name: expected a string")
        point.update(Name=source, Driver=driver.get("Name") or "local",
                     CopyData=not vol.get("NoCopy"), Mode=mode or "z")  # fmt: skip
        labels, options = vol.get("Labels"), driver.get("Options")
        for value, field in ((labels, "VolumeOptions.Labels"), (options, "DriverConfig.Options")):
            if value is not None and (
                not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
            ):
                raise InvalidArgument(f"{fail}: {field}: expected an object of strings")
        if options:
            check_options(source or "(anonymous)", options)
        if labels:
            point["Labels"] = labels
        if options:
            point["Options"] = options
    else:
        tmpfs = _object(spec.get("TmpfsOptions"), f"{fail}: TmpfsOptions", _TMPFS_KEYS)
        if source:
            raise InvalidArgument(f"{fail}: field Source must not be specified")
        point["Data"] = ",".join(_tmpfs_data(tmpfs, read_only, fail))
    return point


def _tmpfs_data(opts: dict[str, Any], read_only: bool, fail: str) -> list[str]:
    """TmpfsOptions -> tmpfs options (docker: size with the largest whole k/m/g unit)."""
    out = ["ro"] if read_only else []
    mode = opts.get("Mode") or 0
    size = opts.get("SizeBytes") or 0
    if not isinstance(mode, int) or not isinstance(size, int) or mode < 0 or size < 0:
        raise InvalidArgument(f"{fail}: TmpfsOptions: SizeBytes and Mode are whole numbers")
    if mode:
        out.append(f"mode={mode:o}")
    if size:
        for suffix, unit in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % unit == 0:
                out.append(f"size={size // unit}{suffix}")
                break
        else:
            out.append(f"size={size}")
    for pair in opts.get("Options") or []:
        if (
            not isinstance(pair, list)
            or not 1 <= len(pair) <= 2
            or pair[0] not in ("exec", "noexec")
            or not all(isinstance(p, str) for p in pair)
        ):
            raise InvalidArgument(f"{fail}: TmpfsOptions.Options: invalid option {pair!r}")
        out.append("=".join(pair))
    return out


def tmpfs_options(data: str, what: str) -> list[str]:
    """A tmpfs's options after docker's defaults (noexec, nosuid, nodev, rprivate), the last
    of each kind winning (exec over noexec, size=2m over size=1m); unknown ones refused."""
    from sampan.linux import constants as C

    kinds: dict[str, str] = {}
    order: list[str] = []
    for opt in ["noexec", "nosuid", "nodev", DEFAULT_PROPAGATION, *data.split(",")]:
        if not opt:
            continue
        key, eq, value = opt.partition("=")
        if opt in C.MOUNT_OPTIONS:
            kind = f"flag{C.MOUNT_OPTIONS[opt][1]}"
        elif opt in C.PROPAGATION_OPTIONS:
            kind = "propagation"
        elif key in _TMPFS_DATA:
            if key in ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks") and not (
                eq and value and value.rstrip("kKmMgGtTpPeE%").isdigit()
            ):
                raise InvalidArgument(f"{what}: invalid tmpfs option {opt!r}")
            kind = key
        else:
            raise InvalidArgument(f"{what}: unknown tmpfs option {opt!r}")
        if kind in kinds:
            order.remove(kinds[kind])
        kinds[kind] = opt
        order.append(opt)
    return order


def _volumes_from(engine: Engine, text: str) -> list[dict[str, Any]]:
    ref, _, mode = text.partition(":")
    if not ref:
        raise InvalidArgument("volumes-from specification cannot be an empty string")
    if mode and (not _valid_mode(mode) or any(
        o in PROPAGATIONS or o in _COPY for o in mode.split(",")
    )):  # fmt: skip
        raise InvalidArgument(f"invalid mode: {mode}")
    try:
        other = engine.containers.get(ref)
    except NotFound as exc:
        raise InvalidArgument(str(exc)) from None
    read_only = "ro" in mode.split(",")
    out = []
    for point in other.state.get("MountPoints") or []:
        copy = dict(point, CopyData=False, RW=point["RW"] and not read_only)
        copy.pop("Create", None)
        out.append(copy)
    return out


def plan(
    engine: Engine, c: Container, request: dict[str, Any], image_config: dict[str, Any]
) -> None:
    """Check the request's mounts; C's host config keeps them as given, its Config.Volumes
    merges the image's and the request's, its record the mount points (nothing made yet)."""
    import secrets

    fields = c.host_config  # check_host_fields' output, through spec.check_host_config
    points: dict[str, dict[str, Any]] = {}
    for text in fields.get("VolumesFrom") or []:
        for point in _volumes_from(engine, text):
            points[point["Destination"]] = point
    taken: set[str] = set()
    tmpfs = {}
    for dest, data in (fields.get("Tmpfs") or {}).items():
        clean = _destination(dest, f"invalid tmpfs mount {dest!r}")
        tmpfs_options(data, f"tmpfs {dest}")
        tmpfs[clean] = data
    for text in fields.get("Binds") or []:
        spec, mode = parse_bind(text, fields.get("VolumeDriver") or "")
        try:
            point = _point(spec, f"invalid volume specification: '{text}'", mode)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid volume specification: '{text}': {exc}") from None
        if point["Destination"] in taken or point["Destination"] in tmpfs:
            raise InvalidArgument(f"Duplicate mount point: {point['Destination']}")
        taken.add(point["Destination"])
        points[point["Destination"]] = point
    for spec in fields.get("Mounts") or []:
        point = _point(spec, "invalid mount config")
        if point["Destination"] in taken or point["Destination"] in tmpfs:
            raise InvalidArgument(f"Duplicate mount point: {point['Destination']}")
        taken.add(point["Destination"])
        points[point["Destination"]] = point
    volumes: dict[str, Any] = {}
    for source, what in ((image_config.get("Volumes"), "image"), (request.get("Volumes"),
                                                                   "Volumes")):  # fmt: skip
        if source and not isinstance(source, dict):
            raise InvalidArgument(f"{what}: expected an object of paths")
        volumes.update(source or {})
    for path in volumes:
        dest = _destination(path, f"Volumes {path!r}")
        if dest in points or dest in tmpfs:
            continue
        points[dest] = {
            "Type": "volume", "Name": "", "Source": "", "Destination": dest, "Driver": "local",
            "Mode": "", "RW": True, "Propagation": "", "CopyData": True,
        }  # fmt: skip
    for point in points.values():
        if point["Type"] == "volume":
            if not point["Name"]:
                point["Name"] = secrets.token_hex(32)
                point["Anonymous"] = True
            point["Source"] = engine.volumes.path(point["Name"])
    c.config["Volumes"] = {p: {} for p in volumes} or None
    c.state["MountPoints"] = sorted(points.values(), key=lambda p: p["Destination"])


def create_volumes(engine: Engine, c: Container) -> None:
    """Make the volumes C's mount points name that are not there (its record is in, so a
    concurrent ``volume rm`` sees the user)."""
    for point in c.state.get("MountPoints") or []:
        if point["Type"] == "volume":
            engine.volumes.ensure(point["Name"], point.get("Driver", ""), point.get("Labels"),
                                  point.get("Options"), bool(point.get("Anonymous")))  # fmt: skip


# -- start and stop ------------------------------------------------------------------------


def setup(engine: Engine, c: Container, rootfs: str) -> None:
    """Before C starts: its volumes there and mounted, empty ones filled from the image."""
    for point in c.state.get("MountPoints") or []:
        if point["Type"] == "bind" and point.get("Create"):
            os.makedirs(point["Source"], mode=0o755, exist_ok=True)
        if point["Type"] != "volume":
            continue
        engine.volumes.ensure(point["Name"], point.get("Driver", ""), point.get("Labels"),
                              point.get("Options"), bool(point.get("Anonymous")))  # fmt: skip
        path = engine.volumes.activate(point["Name"])
        point["Source"] = path
        if point.get("CopyData"):
            copy_image_content(rootfs, point["Destination"], path)
            point["CopyData"] = False
        engine.events.emit("volume", "mount", point["Name"], {
            "container": c.id, "destination": point["Destination"],
            "driver": point.get("Driver") or "local", "propagation": point["Propagation"],
            "read/write": "true" if point["RW"] else "false",
        })  # fmt: skip


def copy_image_content(rootfs: str, dest: str, volume: str) -> bool:
    """Copy the image's directory at DEST into VOLUME if VOLUME is empty (its owner and
    mode too); whether it copied."""
    import stat

    from sampan.runtime.rootfs import copy_up, securejoin

    source = securejoin(rootfs, dest)
    try:
        st = os.lstat(source)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or os.listdir(volume):
        return False
    fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    copy_up(fd, volume)
    os.chown(volume, st.st_uid, st.st_gid)
    os.chmod(volume, stat.S_IMODE(st.st_mode))
    return True


def teardown(engine: Engine, c: Container, events: bool = True) -> None:
    """C stopped: unmount the devices of volumes no other running container uses."""
    for point in c.state.get("MountPoints") or []:
        if point["Type"] != "volume":
            continue
        try:
            engine.volumes.deactivate(point["Name"], c.id)
        except OSError as exc:
            import sys

            from sampan.errors import describe

            sys.stderr.write(f"volume {point['Name']}: unmounting: {describe(exc)}\n")
        if events:
            engine.events.emit(
                "volume",
                "unmount",
                point["Name"],
                {"container": c.id, "driver": point.get("Driver") or "local"},
            )


def release(engine: Engine, c: Container, remove_anonymous: bool) -> None:
    """C is removed: with REMOVE_ANONYMOUS (rm -v, --rm) its anonymous volumes go too,
    unless another container still uses them; named volumes stay."""
    if not remove_anonymous:
        return
    for point in c.state.get("MountPoints") or []:
        if point["Type"] != "volume":
            continue
        try:
            if engine.volumes.get(point["Name"]).anonymous:
                engine.volumes.remove(point["Name"])
        except (NotFound, Conflict):
            pass


# -- config.json and inspect ---------------------------------------------------------------


def _mount_of(path: str) -> tuple[str, str]:
    """(mount point, optional fields) of the mount PATH is on (the longest prefix)."""
    best, fields = "", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split(" ")
            point = parts[4].replace("\\040", " ")
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, fields = point, " ".join(parts[6 : parts.index("-")])
    return best, fields


def oci_mounts(engine: Engine, c: Container) -> tuple[list[dict[str, Any]], str]:
    """C's mounts for config.json (parents before children) and the root propagation they
    need ("" for the default): a shared bind needs a shared source and root, a slave one
    a shared or slave source (docker's rule)."""
    entries: list[tuple[str, dict[str, Any]]] = []
    root_prop = ""
    for point in c.state.get("MountPoints") or []:
        dest = point["Destination"]
        if point["Type"] == "tmpfs":
            options = tmpfs_options(point.get("Data", ""), f"tmpfs {dest}")
            entries.append((dest, {"destination": dest, "type": "tmpfs", "source": "tmpfs",
                                   "options": options}))  # fmt: skip
            continue
        source = point["Source"]
        options = ["bind" if point.get("NonRecursive") else "rbind"]
        if not point["RW"]:
            options.append("ro")
        prop = point.get("Propagation") or ""
        if prop:
            options.append(prop)
        if prop in ("shared", "rshared"):
            where, fields = _mount_of(source)
            if "shared:" not in fields:
                raise InvalidArgument(
                    f"bind-propagation={prop} needs a shared mount: {source} is on {where}, "
                    "which is not shared"
                )
            root_prop = "shared"
        elif prop in ("slave", "rslave"):
            where, fields = _mount_of(source)
            if "shared:" not in fields and "master:" not in fields:
                raise InvalidArgument(
                    f"bind-propagation={prop} needs a shared or slave mount: {source} is on "
                    f"{where}, which is neither"
                )
            root_prop = root_prop or "rslave"
        entries.append((dest, {"destination": dest, "type": "bind", "source": source,
                               "options": options}))  # fmt: skip
    for dest, data in (c.host_config.get("Tmpfs") or {}).items():
        clean = _clean(dest)
        entries.append((clean, {"destination": clean, "type": "tmpfs", "source": "tmpfs",
                                "options": tmpfs_options(data, f"tmpfs {dest}")}))  # fmt: skip
    entries.sort(key=lambda e: e[0].count("/"))
    return [m for _, m in entries], root_prop


def apply(engine: Engine, c: Container, doc: dict[str, Any]) -> None:
    """Add C's mounts to config.json DOC; a default mount at a destination the user mounts
    (/dev/shm, /etc/hosts, ...) gives way, as do /dev's children to a user's /dev."""
    mounts, root_prop = oci_mounts(engine, c)
    if not mounts:
        return
    user = {m["destination"] for m in mounts}
    kept = [
        m for m in doc["mounts"]
        if m["destination"] not in user
        and not (m["destination"].startswith("/dev/") and "/dev" in user)
    ]  # fmt: skip
    doc["mounts"] = kept + mounts
    if root_prop and doc["linux"].get("rootfsPropagation") not in ("shared", "rshared"):
        doc["linux"]["rootfsPropagation"] = root_prop


def api_mounts(c: Container) -> list[dict[str, Any]]:
    """docker's "Mounts" of inspect and ps: Type, Name, Source, Destination, Driver, Mode,
    RW, Propagation (Name and Driver only when set)."""
    out = []
    for point in c.state.get("MountPoints") or []:
        doc: dict[str, Any] = {"Type": point["Type"]}
        if point.get("Name"):
            doc["Name"] = point["Name"]
        doc["Source"] = point.get("Source", "")
        doc["Destination"] = point["Destination"]
        if point.get("Driver"):
            doc["Driver"] = point["Driver"]
        doc.update(Mode=point.get("Mode", ""), RW=point["RW"],
                   Propagation=point.get("Propagation", ""))  # fmt: skip
        out.append(doc)
    return out
