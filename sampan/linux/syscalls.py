"""Typed wrappers of the system calls Python's ``os`` module lacks.

Each raises ``SyscallError`` (an ``OSError``) naming the operation and path.
All go through one ``ctypes`` handle on libc; nothing here spawns a process.
"""

from __future__ import annotations

import ctypes
import os

from sampan.errors import Unsupported
from sampan.linux import constants as C
from sampan.linux._libc import libc
from sampan.linux.errors import SyscallError, check

# x86_64 and aarch64 numbers of the calls glibc 2.36 has no wrapper for.
_ARCH = os.uname().machine
_SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {"pivot_root": 155, "close_range": 436, "keyctl": 250, "pidfd_open": 434,
               "mount_setattr": 442, "rt_sigaction": 13, "move_mount": 429, "fsopen": 430,
               "fsconfig": 431, "fsmount": 432},
    "aarch64": {"pivot_root": 41, "close_range": 436, "keyctl": 219, "pidfd_open": 434,
                "mount_setattr": 442, "rt_sigaction": 134, "move_mount": 429, "fsopen": 430,
                "fsconfig": 431, "fsmount": 432},
}  # fmt: skip


def _nr(name: str) -> int:
    try:
        return _SYSCALLS[_ARCH][name]
    except KeyError:
        raise Unsupported(f"{name}: its system call number on {_ARCH} is not known") from None


libc.mount.argtypes = (
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
)
libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (CLONE_NEW* flags)."""
    check(libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0, path: str | None = None) -> None:
    """Join the namespace open at *fd*; *path* only names it in errors."""
    check(libc.setns(fd, nstype), "setns", path)


def mount(
    source: str | None,
    target: str,
    fstype: str | None = None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    if libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) == -1:
        raise SyscallError(ctypes.get_errno(), "mount", target)


def umount(target: str, flags: int = 0) -> None:
    check(libc.umount2(_b(target), flags), "umount", target)


def statfs_type(path: str) -> int:
    """statfs(2)'s f_type (the filesystem's magic number, e.g. NSFS_MAGIC) of PATH."""
    buf = ctypes.create_string_buffer(256)  # struct statfs starts with f_type, a long
    check(libc.statfs(_b(path), buf), "statfs", path)
    return ctypes.c_long.from_buffer(buf).value


AT_FDCWD = -100


def mount_setattr(path: str, attr_set: int, attr_clr: int, propagation: int = 0,
                  flags: int = C.AT_RECURSIVE, dirfd: int = AT_FDCWD) -> None:  # fmt: skip
    """mount_setattr(2): change the mount at PATH (and, with AT_RECURSIVE, every one below)."""
    attr = (ctypes.c_uint64 * 4)(attr_set, attr_clr, propagation, 0)  # struct mount_attr
    ret = libc.syscall(_nr("mount_setattr"), ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags),
                       attr, ctypes.c_size_t(ctypes.sizeof(attr)))  # fmt: skip
    if ret == -1:
        raise SyscallError(ctypes.get_errno(), "mount_setattr", path)


def pivot_root(new_root: str, put_old: str) -> None:
    ret = libc.syscall(_nr("pivot_root"), _b(new_root), _b(put_old))
    check(ret, "pivot_root", new_root)


def sethostname(name: str) -> None:
    raw = name.encode()
    check(libc.sethostname(raw, len(raw)), "sethostname", name)


def setdomainname(name: str) -> None:
    raw = name.encode()
    check(libc.setdomainname(raw, len(raw)), "setdomainname", name)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return check(libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


def set_no_new_privs() -> None:
    prctl(C.PR_SET_NO_NEW_PRIVS, 1)


def set_keepcaps(on: bool) -> None:
    prctl(C.PR_SET_KEEPCAPS, int(on))


def set_pdeathsig(sig: int) -> None:
    prctl(C.PR_SET_PDEATHSIG, sig)


def set_child_subreaper(on: bool = True) -> None:
    prctl(C.PR_SET_CHILD_SUBREAPER, int(on))


def set_dumpable(on: bool) -> None:
    prctl(C.PR_SET_DUMPABLE, int(on))


CLOSE_RANGE_CLOEXEC = 4


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    """Close (or with CLOSE_RANGE_CLOEXEC, mark close-on-exec) fds first..last."""
    ret = libc.syscall(_nr("close_range"), ctypes.c_uint(first), ctypes.c_uint(last), flags)
    if ret == -1:
        raise SyscallError(ctypes.get_errno(), "close_range")


def cloexec_from(first: int) -> None:
    """Mark every fd >= FIRST close-on-exec: close_range, or /proc/self/fd before 5.11."""
    try:
        close_range(first, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC)
        return
    except SyscallError as exc:
        if exc.errno not in (38, 22):  # ENOSYS, or EINVAL for an unknown flag
            raise
    import fcntl

    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first:
            try:
                flags = fcntl.fcntl(fd, fcntl.F_GETFD)
                fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
            except OSError:
                pass  # the listing's own fd, already closed


def join_session_keyring(name: str | None) -> None:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING): a fresh session keyring, as runc makes one."""
    ret = libc.syscall(_nr("keyctl"), 1, _b(name))
    if ret == -1:
        err = ctypes.get_errno()
        if err not in (38, 1, 13):  # no keyctl, or refused in a user namespace: skip
            raise SyscallError(err, "keyctl join_session_keyring", name)


def personality(persona: int) -> None:
    """Set the execution domain (PER_LINUX 0, PER_LINUX32 8) of this process and its exec."""
    check(libc.personality(ctypes.c_ulong(persona)), "personality")


def default_signal_dispositions() -> None:
    """Every signal back to SIG_DFL, with rt_sigaction(2) itself: glibc's wrapper refuses
    32 and 33, which a parent may have left ignored (and ignored survives execve)."""
    action = (ctypes.c_ulong * 4)()  # handler SIG_DFL, flags, restorer, mask: all zero
    nr = _nr("rt_sigaction")
    for signum in range(1, C.SIGRTMAX + 1):
        if signum in (9, 19):  # SIGKILL, SIGSTOP: fixed
            continue
        if libc.syscall(nr, signum, ctypes.byref(action), None, 8) == -1:
            raise SyscallError(ctypes.get_errno(), "rt_sigaction", str(signum))


def pidfd_open(pid: int) -> int:
    return check(libc.syscall(_nr("pidfd_open"), pid, 0), "pidfd_open", str(pid))


# The new mount API (5.2+): a filesystem context configured one option at a time,
# which lifts mount(2)'s one-page limit on the options (overlayfs "lowerdir+", 6.8+).
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOVE_MOUNT_F_EMPTY_PATH = 0x4


def fsopen(fstype: str) -> int:
    """A new filesystem context (close-on-exec fd) for FSTYPE."""
    ret = libc.syscall(_nr("fsopen"), _b(fstype), ctypes.c_uint(1))  # FSOPEN_CLOEXEC
    return check(ret, "fsopen", fstype)


def fsconfig(fd: int, cmd: int, key: str | None = None, value: str | None = None) -> None:
    """Set KEY (to VALUE) in the context at FD, or run CMD (FSCONFIG_CMD_CREATE).

    The kernel's own explanation of a failure (``e overlay: ...``), read from
    FD, is appended to the error's path.
    """
    ret = libc.syscall(_nr("fsconfig"), ctypes.c_int(fd), ctypes.c_uint(cmd), _b(key),
                       _b(value), ctypes.c_int(0))  # fmt: skip
    if ret == -1:
        err = ctypes.get_errno()
        raise SyscallError(err, "fsconfig", _fs_log(fd, key or str(cmd)))


def _fs_log(fd: int, what: str) -> str:
    messages = []
    while True:
        try:
            line = os.read(fd, 1024).decode(errors="replace").strip()
        except OSError:
            break
        if not line:
            break
        messages.append(line)
    return f"{what} ({'; '.join(messages)})" if messages else what


def fsmount(fd: int, attr_flags: int = 0) -> int:
    """A detached mount (close-on-exec fd) of the context at FD; MOUNT_ATTR_* flags."""
    ret = libc.syscall(
        _nr("fsmount"), ctypes.c_int(fd), ctypes.c_uint(1), ctypes.c_uint(attr_flags)
    )
    return check(ret, "fsmount")


def move_mount_fd(fd: int, target: str) -> None:
    """Attach the detached mount at FD onto TARGET."""
    ret = libc.syscall(_nr("move_mount"), ctypes.c_int(fd), b"", ctypes.c_int(AT_FDCWD),
                       _b(target), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH))  # fmt: skip
    check(ret, "move_mount", target)
