"""Container state under ``--root``: one directory per container.

    ROOT/ID/state.json   the record below, replaced atomically (write + rename)
    ROOT/ID/exec.fifo    the container init blocks reading it until ``start``
    ROOT/ID/cgroup       the config's cgroupsPath, written first: a delete after
                         a create killed before state.json finds the cgroup

A record outlives the runtime process that wrote it.  The *status* is not
stored: it is derived from the record and the kernel each time, so a
container whose process died while no runtime was looking reads ``stopped``:

    created   init is alive and waiting for ``start``
    running   init is alive and has been started
    paused    running, and its cgroup is frozen
    stopped   init is gone (or its pid now belongs to another process)
"""

from __future__ import annotations

import os
import time

from sampan import _json
from sampan.errors import AlreadyExists, InvalidArgument, NotFound
from sampan.units import rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.0.2"
STATUSES = ("creating", "created", "running", "paused", "stopped")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(cid: str) -> str:
    """Container ids are what runc accepts: [\\w+-.]+, not '.' or '..'."""
    if not cid or cid in (".", "..") or not set(cid) <= _ID_CHARS or len(cid) > 1024:
        raise InvalidArgument(f"invalid container id {cid!r}: use letters, digits and _+-.")
    return cid


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def rfc3339_now() -> str:
    return rfc3339(time.time_ns(), trim=False)


class ContainerState:
    """The persistent record of one container (see the module docstring)."""

    __slots__ = (
        "bundle",
        "config",
        "created",
        "dir",
        "id",
        "mount_below",
        "owner",
        "pid",
        "rootfs",
        "start_time",
        "started",
    )  # fmt: skip

    def __init__(self, root: str, cid: str, record: dict[str, Any]) -> None:
        self.id = cid
        self.dir = f"{root}/{cid}"
        self.pid: int = record.get("pid", 0)
        self.bundle: str = record["bundle"]
        self.rootfs: str = record.get("rootfs", "")
        self.created: str = record.get("created", "")
        self.start_time: int = record.get("start_time", 0)
        self.started: bool = record.get("started", False)
        self.owner: str = record.get("owner", "")
        self.config: dict[str, Any] = record.get("config", {})
        # Without a mount namespace: the id of the mount on top at the rootfs before
        # create (see rootfs.detach_ours); 0 otherwise.
        self.mount_below: int = record.get("mount_below", 0)

    # -- persistence -------------------------------------------------------------

    @classmethod
    def load(cls, root: str, cid: str) -> ContainerState:
        check_id(cid)
        try:
            with open(f"{root}/{cid}/state.json", "rb") as f:
                record = _json.loads(f.read())
        except FileNotFoundError:
            raise NotFound(f"container {cid!r} does not exist") from None
        except ValueError as exc:
            raise InvalidArgument(f"{root}/{cid}/state.json: {exc}") from None
        if not isinstance(record, dict) or not isinstance(record.get("bundle"), str):
            raise InvalidArgument(f"{root}/{cid}/state.json: not a container state record")
        return cls(root, cid, record)

    @staticmethod
    def reserve(root: str, cid: str) -> str:
        """Make ROOT/ID (0700) and its exec.fifo; AlreadyExists if the id is taken.

        The fifo comes at once: a delete takes a directory without state.json and
        without a reader on the fifo for the remains of a killed create.
        """
        check_id(cid)
        os.makedirs(root, mode=0o700, exist_ok=True)
        path = f"{root}/{cid}"
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            raise AlreadyExists(f"container id {cid!r} is already in use") from None
        os.mkfifo(f"{path}/exec.fifo", 0o600)
        return path

    def save(self) -> None:
        record = {
            "id": self.id,
            "pid": self.pid,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "start_time": self.start_time,
            "started": self.started,
            "owner": self.owner,
            "config": self.config,
            "mount_below": self.mount_below,
        }
        tmp = f"{self.dir}/.state.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, _json.dumps(record).encode())
        finally:
            os.close(fd)
        os.rename(tmp, f"{self.dir}/state.json")

    def remove(self) -> None:
        for name in ("state.json", ".state.json.tmp", "exec.fifo", "cgroup"):
            try:
                os.unlink(f"{self.dir}/{name}")
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.dir)
        except FileNotFoundError:
            pass

    # -- status -------------------------------------------------------------------

    def alive(self) -> bool:
        return self.pid > 0 and proc_start_time(self.pid) == self.start_time

    def status(self, frozen: bool | None = None) -> str:
        """Derive the status; *frozen* (the cgroup's freezer state) is read lazily."""
        if not self.alive():
            return "stopped"
        if not self.started:
            return "created"
        if frozen is None:
            frozen = self._frozen()
        return "paused" if frozen else "running"

    def _frozen(self) -> bool:
        from sampan.runtime.cgroup import container_cgroup

        try:
            return container_cgroup(self).frozen()
        except OSError:
            return False

    def oci_state(self, status: str | None = None) -> dict[str, Any]:
        """The state object of the OCI runtime spec (what ``state`` prints and hooks read)."""
        status = status or self.status()
        out: dict[str, Any] = {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.pid if status != "stopped" else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        }
        annotations = self.config.get("annotations")
        if annotations:
            out["annotations"] = annotations
        return out


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.exists(f"{root}/{n}/state.json"))
