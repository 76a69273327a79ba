"""Network namespaces kept alive by a bind mount on a file, as ``ip netns add`` keeps them.

The engine makes a container's network namespace before the runtime runs, configures it,
and hands the runtime its path.  Namespace membership is per thread: ``unshare`` and
``setns`` here always run in a short-lived thread made for the purpose (``_thread``, not
``threading``, which costs ~7 ms to import), so the calling thread -- and every other thread
of the daemon -- stays in the namespace it was in.  A socket keeps the namespace it was made
in, so a thread can make one inside and hand it back (``run_in(path, open_socket)``).

The bind mount lives in the daemon's mount namespace; ``remove`` detaches it (MNT_DETACH:
a process still inside keeps the namespace, which the kernel frees after the last user).
"""

from __future__ import annotations

import _thread
import os

from sampan.errors import AlreadyExists, InvalidArgument
from sampan.linux import syscalls
from sampan.linux.errors import SyscallError
from sampan.network.netlink import Netlink

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MNT_DETACH = 2
NSFS_MAGIC = 0x6E736673
LOOPBACK_INDEX = 1  # lo is always link 1 of a new namespace
EINVAL, ENOENT = 22, 2


def in_thread(fn: Callable[[], T]) -> T:
    """FN's result, computed in a new thread that ends with it; its exception re-raised here.

    Whatever FN does to its thread's namespaces dies with the thread.
    """
    done = _thread.allocate_lock()
    done.acquire()
    box: list[tuple[bool, object]] = []

    def body() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:
            box.append((False, exc))
        finally:
            done.release()

    _thread.start_new_thread(body, ())
    done.acquire()
    ok, value = box[0]
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    return value  # type: ignore[return-value]


def create(path: str) -> None:
    """A new network namespace bind-mounted on PATH (a 0644 file, parent made), lo up inside.

    PATH must not exist (AlreadyExists).  On any failure nothing is left behind.
    """
    create_with(path, _nothing)


def _nothing() -> None:
    return None


def create_with(path: str, fn: Callable[[], T]) -> T:
    """``create(PATH)``, then FN run inside the new namespace in the same thread; FN's result.

    Saves a thread: ``create_with(path, Netlink)`` returns a Netlink bound to the new
    namespace.  When FN fails the namespace is removed too.
    """
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, 0o755, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise AlreadyExists(f"network namespace {path}: already exists") from None
    except OSError as exc:
        raise SyscallError(exc.errno or EINVAL, "create network namespace", path) from None
    try:
        os.fchmod(fd, 0o644)  # whatever the umask
    finally:
        os.close(fd)
    mounted = False

    def inside() -> T:
        nonlocal mounted
        syscalls.unshare(CLONE_NEWNET)
        syscalls.mount("/proc/thread-self/ns/net", path, None, MS_BIND)
        mounted = True
        with Netlink() as nl:
            nl.set_up(LOOPBACK_INDEX)
        return fn()

    try:
        return in_thread(inside)
    except BaseException:
        if mounted:
            try:
                syscalls.umount(path, MNT_DETACH)
            except OSError:
                pass
        try:
            os.unlink(path)
        except OSError:
            pass
        raise


def remove(path: str) -> bool:
    """Unmount (detach) and delete the namespace file PATH; False when it was not there.

    Idempotent, and also removes a file left unmounted by an interrupted create.
    """
    for _ in range(8):  # a path mounted over several times needs one detach each
        try:
            syscalls.umount(path, MNT_DETACH)
        except SyscallError as exc:
            if exc.errno == ENOENT:
                return False
            if exc.errno != EINVAL:  # EINVAL: no longer a mount point
                raise
            break
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise SyscallError(exc.errno or EINVAL, "remove network namespace", path) from None
    return True


def is_netns(path: str) -> bool:
    """PATH is a namespace file bind-mounted in place (nsfs); False when absent."""
    try:
        return syscalls.statfs_type(path) == NSFS_MAGIC
    except SyscallError as exc:
        if exc.errno == ENOENT:
            return False
        raise


def open_fd(path: str) -> int:
    """An O_RDONLY|O_CLOEXEC descriptor of the namespace at PATH (for setns, IFLA_NET_NS_FD)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SyscallError(exc.errno or EINVAL, "open network namespace", path) from None


def run_in(path: str, fn: Callable[[], T]) -> T:
    """FN's result, run in a thread joined to the network namespace at PATH.

    Sockets FN makes belong to that namespace for good, so FN may return them.
    """
    fd = open_fd(path)
    try:

        def inside() -> T:
            syscalls.setns(fd, CLONE_NEWNET, path)
            return fn()

        return in_thread(inside)
    finally:
        os.close(fd)


def sysctl(key: str, value: str, netns: str | None = None) -> None:
    """Write VALUE to /proc/sys/KEY (slash form: ``net/ipv4/conf/sampan0/route_localnet``),
    in the network namespace at NETNS (None: the caller's).

    /proc/sys/net shows the namespace of the thread that opens it, so the write runs in
    ``run_in`` for another namespace.
    """
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidArgument(f"sysctl {key!r}: not a relative /proc/sys path like net/ipv4/...")
    full = "/proc/sys/" + key
    data = value.encode()

    def write() -> None:
        try:
            fd = os.open(full, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise SyscallError(exc.errno or EINVAL, "sysctl", key) from None
        try:
            os.write(fd, data)
        except OSError as exc:
            raise SyscallError(exc.errno or EINVAL, f"sysctl {key} =", value) from None
        finally:
            os.close(fd)

    if netns is None:
        write()
    else:
        run_in(netns, write)
