"""Which namespaces a container makes, which it joins, and how to enter them."""

from __future__ import annotations

import os

from sampan.errors import InvalidArgument, NotFound
from sampan.linux.constants import CLONE_NEWCGROUP, CLONE_NEWNS, CLONE_NEWUSER, NAMESPACES
from sampan.linux.syscalls import setns

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# setns order: the user namespace first (it grants the rights to join the
# others), the mount namespace last (it changes which paths the rest resolve).
NS_GET_NSTYPE = 0xB703  # ioctl on a namespace fd: its CLONE_NEW* type (linux/nsfs.h)

JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


class NamespacePlan:
    """The namespaces section of config.json, sorted into new and joined."""

    __slots__ = ("join", "kinds", "new_flags")

    def __init__(self, namespaces: list[dict[str, Any]]) -> None:
        self.new_flags = 0
        self.join: list[tuple[str, str]] = []
        self.kinds = {ns["type"] for ns in namespaces}
        for ns in namespaces:
            if ns.get("path"):
                self.join.append((ns["type"], ns["path"]))
            else:
                self.new_flags |= NAMESPACES[ns["type"]][0]
        self.join.sort(key=lambda item: JOIN_ORDER.index(item[0]))

    @property
    def new_user(self) -> bool:
        return bool(self.new_flags & CLONE_NEWUSER)

    @property
    def new_cgroup(self) -> bool:
        return bool(self.new_flags & CLONE_NEWCGROUP)

    @property
    def new_mount(self) -> bool:
        return bool(self.new_flags & CLONE_NEWNS)

    @property
    def in_userns(self) -> bool:
        return "user" in self.kinds

    def check_paths(self) -> None:
        """Before anything is made: every namespace to join must exist and be of its type."""
        import fcntl

        for kind, path in self.join:
            where = f"config.json: linux.namespaces: {kind} path {path}"
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise NotFound(f"{where} does not exist") from None
            except OSError as exc:
                raise InvalidArgument(f"{where}: {exc.strerror}") from None
            try:
                actual = fcntl.ioctl(fd, NS_GET_NSTYPE)
            except OSError:
                raise InvalidArgument(f"{where}: not a namespace file") from None
            finally:
                os.close(fd)
            if actual != NAMESPACES[kind][0]:
                other = next((k for k, (flag, _) in NAMESPACES.items() if flag == actual), "?")
                raise InvalidArgument(f"{where}: is a {other} namespace, not {kind}")


# sysctls that belong to the ipc namespace, as the kernel (and runc) list them.
IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                         "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                         "kernel.shm_rmid_forced"})  # fmt: skip


def check_sysctl(sysctl: dict[str, str], plan: NamespacePlan) -> None:
    """Refuse a sysctl that would change the host: each must live in a namespace the
    container has of its own (ipc, network, uts), as runc's validator has it."""
    for key in sysctl:
        where = f"config.json: linux.sysctl.{key}"
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if "ipc" not in plan.kinds:
                raise InvalidArgument(f"{where}: needs a private ipc namespace")
        elif key.startswith("net."):
            if "network" not in plan.kinds:
                raise InvalidArgument(f"{where}: needs a private network namespace")
            path = next((p for kind, p in plan.join if kind == "network"), None)
            if path and os.stat(path).st_ino == os.stat("/proc/self/ns/net").st_ino:
                raise InvalidArgument(f"{where}: the network namespace joined is the host's")
        elif key == "kernel.domainname":
            if "uts" not in plan.kinds:
                raise InvalidArgument(f"{where}: needs a private uts namespace")
        elif key == "kernel.hostname":
            raise InvalidArgument(f"{where}: set the config's hostname instead")
        else:
            raise InvalidArgument(f"{where}: not in a namespace of the container's own")


def enter(join: list[tuple[str, str]]) -> None:
    """setns into each (type, path), in JOIN_ORDER; all paths are opened first."""
    fds = []
    try:
        for kind, path in join:
            fds.append((kind, path, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        for kind, path, fd in fds:
            setns(fd, NAMESPACES[kind][0], path)
    finally:
        for _, _, fd in fds:
            os.close(fd)


def of_process(pid: int, kinds: set[str]) -> list[tuple[str, str]]:
    """The namespaces of process PID (of the given types) that differ from ours, to join."""
    out = []
    for kind in JOIN_ORDER:
        if kind not in kinds:
            continue
        name = NAMESPACES[kind][1]
        theirs = f"/proc/{pid}/ns/{name}"
        try:
            if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
        except FileNotFoundError:
            continue
        out.append((kind, theirs))
    return out
