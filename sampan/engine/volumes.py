"""Volumes: named directories the engine keeps apart from any container (docker's local driver).

    ROOT/volumes/NAME/_data        the volume's content (what containers bind-mount)
    ROOT/engine.db  volumes        name PRIMARY KEY, driver, created, labels, options (JSON)

Crash safety comes from the order of the steps: a create makes the
directories first and records the row last (one transaction), a remove
deletes the row first and the directories after.  A daemon killed between
the two leaves a directory without a row -- never a row without its
directory -- and the next start removes such strays.  So a volume is either
whole or absent.

Who uses a volume is never counted: it is read from the container records
(each keeps its mount points, see mounts.py), so it stays right across
crashes and restarts.  A volume of the local driver with a ``device``
(``-o type=tmpfs -o device=tmpfs -o o=size=100m``, ``-o type=none -o o=bind
-o device=/path``) is mounted on its _data with mount(2) when the first
container using it starts and unmounted when the last one stops; a daemon
that comes back unmounts those no running container uses.

    service = VolumeService(engine)
    service.create("data", labels={"a": "b"})    # docker's inspect shape
    service.remove("data")                       # Conflict while a container uses it
"""

from __future__ import annotations

import os
import threading
import time

from sampan import _json
from sampan.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.engine.daemon import Engine

__all__ = ["ANONYMOUS_LABEL", "Volume", "VolumeService", "check_name", "mount_points"]

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY, driver TEXT NOT NULL, created REAL NOT NULL,
    labels TEXT NOT NULL, options TEXT)
"""
_OPTION_KEYS = ("type", "device", "o", "size")
_REQUIRES = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
_MNT_DETACH = 2


def check_name(name: str) -> str:
    """docker's local volume name rule, [a-zA-Z0-9][a-zA-Z0-9_.-]+."""
    if (
        len(name) < 2
        or not name[0].isascii()
        or not name[0].isalnum()
        or not set(name) <= NAME_CHARS
    ):
        raise InvalidArgument(
            f'create {name}: "{name}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path"
        )
    return name


def check_options(name: str, options: dict[str, str]) -> None:
    """The local driver's options: type, device, o (each needing the others as docker's)."""
    for key, value in options.items():
        if key not in _OPTION_KEYS:
            raise InvalidArgument(f'create {name}: invalid option: "{key}" (type, device, o)')
        if not isinstance(value, str):
            raise InvalidArgument(f'create {name}: option "{key}": expected a string')
    if "size" in options:
        raise InvalidArgument(
            f'create {name}: option "size": quota size requested but no quota support'
        )
    for key, needed in _REQUIRES.items():
        if key in options:
            for other in needed:
                if other not in options:
                    raise InvalidArgument(f'create {name}: missing required option: "{other}"')
    if options:
        flags, _ = mount_data(options.get("o", ""))
        device = options["device"]
        if flags & 0x1000 and not device.startswith("/"):  # MS_BIND
            raise InvalidArgument(
                f'create {name}: option "device": a bind needs an absolute path, not {device!r}'
            )


def mount_data(text: str) -> tuple[int, str]:
    """The ``o`` option: (mount(2) flags, the filesystem's own options)."""
    from sampan.linux import constants as C

    flags = 0
    data = []
    for opt in (o for o in text.split(",") if o):
        known = C.MOUNT_OPTIONS.get(opt)
        if known is not None:
            clear, flag = known
            flags = flags & ~flag if clear else flags | flag
        elif opt in C.PROPAGATION_OPTIONS:
            raise InvalidArgument(f'option "o": {opt}: propagation is not a volume option')
        else:
            data.append(opt)
    return flags, ",".join(data)


def mount_points() -> set[str]:
    """Every mount point of this mount namespace (mountinfo's escapes undone)."""
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split(" ", 5)[4]
            if "\\" in point:
                point = (
                    point.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
                    .replace("\\134", "\\")
                )  # fmt: skip
            out.add(point)
    return out


def _rfc3339(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def tree_size(path: str) -> int:
    """Bytes in the files under PATH (hardlinks once), not crossing into other mounts."""
    total = 0
    seen: set[tuple[int, int]] = set()
    try:
        dev = os.lstat(path).st_dev
    except OSError:
        return 0
    stack = [path]
    while stack:
        top = stack.pop()
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.is_dir(follow_symlinks=False):
                if st.st_dev == dev:
                    stack.append(entry.path)
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


class Volume:
    """One volume's record."""

    __slots__ = ("created", "driver", "labels", "name", "options")

    def __init__(
        self,
        name: str,
        driver: str,
        created: float,
        labels: dict[str, str],
        options: dict[str, str] | None,
    ) -> None:
        self.name = name
        self.driver = driver
        self.created = created
        self.labels = labels
        self.options = options

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    @property
    def needs_mount(self) -> bool:
        """A local volume with a device: mounted on its _data while containers use it."""
        return bool(self.options and (self.options.get("device") or self.options.get("type")))


class VolumeService:
    """The volumes of one daemon: create, list, inspect, remove, prune; mount for containers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dir = os.path.join(engine.root, "volumes")
        os.makedirs(self.dir, mode=0o701, exist_ok=True)
        from sampan.engine.db import connect

        self._db = connect(engine.root, (_SCHEMA,))
        self.lock = threading.RLock()
        self._volumes: dict[str, Volume] = {}
        for name, driver, created, labels, options in self._db.execute("SELECT * FROM volumes"):
            self._volumes[name] = Volume(name, driver, created, _json.loads(labels),
                                         _json.loads(options) if options else None)  # fmt: skip
        self._clean_strays()

    # -- paths and records -----------------------------------------------------------

    def path(self, name: str) -> str:
        """The volume's mount point on the host: ROOT/volumes/NAME/_data."""
        return os.path.join(self.dir, name, "_data")

    def get(self, name: str) -> Volume:
        with self.lock:
            volume = self._volumes.get(name)
        if volume is None:
            raise NotFound(f"get {name}: no such volume")
        return volume

    def names(self) -> list[str]:
        with self.lock:
            return sorted(self._volumes)

    def _clean_strays(self) -> None:
        """Directories without a row (a create or remove cut short) go; rows get their dirs."""
        for entry in os.listdir(self.dir):
            if entry not in self._volumes:
                try:
                    self._destroy_dir(entry)
                except OSError as exc:  # never a reason not to start; tried again next time
                    import sys

                    sys.stderr.write(f"volumes/{entry}: removing a stray: {describe(exc)}\n")
        for name in self._volumes:
            os.makedirs(self.path(name), mode=0o755, exist_ok=True)

    def _destroy_dir(self, name: str) -> None:
        """Remove ROOT/volumes/NAME -- after detaching anything mounted under it, so a
        bind-mounted host directory is never emptied."""
        from sampan.image.treecopy import remove_tree
        from sampan.linux.syscalls import umount

        top = os.path.join(self.dir, name)
        for point in sorted(mount_points(), key=len, reverse=True):
            if point == top or point.startswith(top + "/"):
                umount(point, _MNT_DETACH)
        if os.path.isdir(top) and not os.path.islink(top):
            remove_tree(top)
        elif os.path.lexists(top):
            os.unlink(top)

    # -- users (from the container records) ------------------------------------------

    def users(self, running_only: bool = False) -> dict[str, list[str]]:
        """Volume name -> ids of the containers whose mount points use it."""
        out: dict[str, list[str]] = {}
        for c in self.engine.containers.all():
            if running_only and not (c.running or c.starting):
                continue
            for point in c.state.get("MountPoints") or []:
                if point.get("Type") == "volume" and point.get("Name"):
                    ids = out.setdefault(point["Name"], [])
                    if c.id not in ids:
                        ids.append(c.id)
        return out

    # -- create ----------------------------------------------------------------------

    def create(
        self,
        name: str = "",
        driver: str = "",
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST /volumes/create: a new volume (an existing NAME is returned as it is)."""
        return self.inspect_volume(self.ensure(name, driver, labels, options)[0])

    def ensure(
        self,
        name: str = "",
        driver: str = "",
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
        anonymous: bool = False,
    ) -> tuple[Volume, bool]:
        """The volume NAME, made if missing (no NAME: an anonymous one, as is one made with
        ANONYMOUS: labelled com.docker.volume.anonymous); (volume, made)."""
        import secrets

        driver = driver or "local"
        anonymous = anonymous or not name
        name = name or secrets.token_hex(32)
        check_name(name)
        if driver != "local":
            raise NotFound(
                f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not '
                'found (sampan has the "local" driver only)'
            )
        labels = dict(labels or {})
        if anonymous:
            labels.setdefault(ANONYMOUS_LABEL, "")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise InvalidArgument(f"create {name}: Labels: expected an object of strings")
        if options is not None:
            check_options(name, options)
        with self.lock:
            found = self._volumes.get(name)
            if found is not None:
                if found.driver != driver:
                    raise AlreadyExists(
                        f"create {name}: volume name is taken by the {found.driver} driver"
                    )
                return found, False
            volume = Volume(name, driver, time.time(), labels, dict(options) if options else None)
            if os.path.lexists(os.path.join(self.dir, name)):
                self._destroy_dir(name)
            os.mkdir(os.path.join(self.dir, name), 0o701)
            os.mkdir(self.path(name), 0o755)
            try:
                self._db.execute(
                    "INSERT INTO volumes VALUES (?,?,?,?,?)",
                    (name, driver, volume.created, _json.dumps(labels),
                     _json.dumps(volume.options) if volume.options is not None else None),
                )  # fmt: skip
            except BaseException:
                self._destroy_dir(name)
                raise
            self._volumes[name] = volume
        self.engine.events.emit("volume", "create", name, {"driver": driver})
        return volume, True

    # -- API shapes ------------------------------------------------------------------

    def inspect_volume(self, volume: Volume, usage: dict[str, int] | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "CreatedAt": _rfc3339(volume.created),
            "Driver": volume.driver,
            "Labels": dict(volume.labels),
            "Mountpoint": self.path(volume.name),
            "Name": volume.name,
            "Options": dict(volume.options) if volume.options is not None else None,
            "Scope": "local",
        }
        if usage is not None:
            doc["UsageData"] = usage
        return doc

    def inspect(self, name: str) -> dict[str, Any]:
        """GET /volumes/{name}."""
        return self.inspect_volume(self.get(name))

    def select(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """GET /volumes's Volumes: those passing FILTERS (dangling, name, label, driver)."""
        filters = filters or {}
        for key in filters:
            if key not in ("dangling", "name", "label", "driver"):
                raise InvalidArgument(f"invalid filter '{key}'")
        dangling: bool | None = None
        for value in filters.get("dangling", []):
            if value.lower() not in ("true", "1", "false", "0"):
                raise InvalidArgument(f"invalid filter 'dangling={value}'")
            dangling = value.lower() in ("true", "1")
        users = self.users() if dangling is not None else {}
        out = []
        with self.lock:
            volumes = sorted(self._volumes.values(), key=lambda v: v.name)
        for v in volumes:
            if dangling is not None and (v.name not in users) != dangling:
                continue
            if "name" in filters and not any(n in v.name for n in filters["name"]):
                continue
            if "driver" in filters and v.driver not in filters["driver"]:
                continue
            if not all(_label_match(want, v.labels) for want in filters.get("label", [])):
                continue
            out.append(self.inspect_volume(v))
        return out

    def usage(self) -> list[dict[str, Any]]:
        """GET /system/df's Volumes: each with UsageData (Size in bytes, RefCount)."""
        users = self.users()
        with self.lock:
            volumes = sorted(self._volumes.values(), key=lambda v: v.name)
        return [
            self.inspect_volume(
                v, {"Size": tree_size(self.path(v.name)), "RefCount": len(users.get(v.name, []))}
            )
            for v in volumes
        ]

    # -- remove and prune ------------------------------------------------------------

    def remove(self, name: str, force: bool = False) -> None:
        """DELETE /volumes/{name}: refused (409) while a container uses it, force or not
        (docker's force only forgives a volume that is not there)."""
        with self.lock:
            if name not in self._volumes:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self.users().get(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{' '.join(users)}]")
            self._destroy(name)

    def _destroy(self, name: str) -> None:
        """Unmount, forget (one transaction), remove the directory; under the lock."""
        volume = self._volumes[name]
        self._unmount(volume)
        self._db.execute("DELETE FROM volumes WHERE name=?", (name,))
        del self._volumes[name]
        try:
            self._destroy_dir(name)
        except OSError as exc:  # the row is gone: the next start removes what is left
            import sys

            sys.stderr.write(f"volume {name}: removing its directory: {describe(exc)}\n")
        self.engine.events.emit("volume", "destroy", name, {"driver": volume.driver})

    def prune(self, filters: dict[str, list[str]] | None = None, all_default: bool = False
              ) -> dict[str, Any]:  # fmt: skip
        """POST /volumes/prune: unused anonymous volumes (every unused one with all=true;
        ALL_DEFAULT when the filter does not say: API < 1.42 pruned every unused volume)."""
        filters = filters or {}
        for key in filters:
            if key not in ("label", "label!", "all"):
                raise InvalidArgument(f"invalid filter '{key}'")
        every = all_default
        for value in filters.get("all", []):
            if value.lower() not in ("true", "1", "false", "0"):
                raise InvalidArgument(f"invalid filter 'all={value}'")
            every = value.lower() in ("true", "1")
        deleted: list[str] = []
        reclaimed = 0
        with self.lock:
            users = self.users()
            for name in sorted(self._volumes):
                v = self._volumes[name]
                if name in users or not (every or v.anonymous):
                    continue
                if not all(_label_match(w, v.labels) for w in filters.get("label", [])):
                    continue
                if any(_label_match(w, v.labels) for w in filters.get("label!", [])):
                    continue
                size = 0 if v.needs_mount else tree_size(self.path(name))
                self._destroy(name)
                deleted.append(name)
                reclaimed += size
        return {"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}

    # -- mounting for containers -------------------------------------------------------

    def activate(self, name: str) -> str:
        """Make volume NAME ready for a starting container (its device mounted); its path."""
        with self.lock:
            volume = self.get(name)
            path = self.path(name)
            os.makedirs(path, mode=0o755, exist_ok=True)
            if volume.needs_mount and path not in mount_points():
                self._mount(volume, path)
        return path

    def deactivate(self, name: str, leaving: str) -> None:
        """Container LEAVING stopped using NAME: unmount its device if no other running
        container uses it."""
        with self.lock:
            volume = self._volumes.get(name)
            if volume is None or not volume.needs_mount:
                return
            others = [c for c in self.users(running_only=True).get(name, []) if c != leaving]
            if not others:
                self._unmount(volume)

    def reconcile(self) -> None:
        """After a restart: unmount the devices of volumes no running container uses."""
        running = self.users(running_only=True)
        with self.lock:
            for name, volume in self._volumes.items():
                if volume.needs_mount and name not in running:
                    try:
                        self._unmount(volume)
                    except OSError as exc:
                        import sys

                        sys.stderr.write(f"volume {name}: unmounting: {describe(exc)}\n")

    def _mount(self, volume: Volume, path: str) -> None:
        from sampan.linux.syscalls import mount

        options = volume.options or {}
        flags, data = mount_data(options.get("o", ""))
        device, kind = options.get("device", ""), options.get("type", "")
        if flags & 0x1000 and not os.path.exists(device):  # MS_BIND
            raise InvalidArgument(f'volume {volume.name}: option "device": {device} does not exist')
        try:
            mount(device, path, None if kind == "none" else kind, flags, data or None)
        except OSError as exc:
            raise InvalidArgument(
                f"volume {volume.name}: failed to mount local volume: mount {device}:{path} "
                f"(type={kind}, o={options.get('o', '')}): {exc.strerror}"
            ) from None

    def _unmount(self, volume: Volume) -> None:
        from sampan.linux.syscalls import umount

        path = self.path(volume.name)
        if volume.needs_mount and path in mount_points():
            umount(path, _MNT_DETACH)

    def close(self) -> None:
        self._db.close()


def _label_match(want: str, labels: dict[str, str]) -> bool:
    key, eq, value = want.partition("=")
    return key in labels and (not eq or labels[key] == value)
