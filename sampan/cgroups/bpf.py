"""bpf(2) for cgroup v2 device filters: load, attach, query, detach (ctypes).

Imported only when a v2 cgroup gets device rules.  ``replace_device_filter``
loads the program, attaches it with BPF_F_ALLOW_MULTI and then detaches the
filters that were there before, so that an update never leaves the cgroup
unfiltered (runc does the same when BPF_F_REPLACE is not used).
"""

from __future__ import annotations

import ctypes
import os

from sampan.cgroups.base import CgroupError
from sampan.cgroups.devices import INSN_SIZE, LICENSE

_SYS_BPF = {
    "x86_64": 321,
    "aarch64": 280,
    "riscv64": 280,
    "ppc64le": 361,
    "ppc64": 361,
    "s390x": 351,
    "i686": 357,
    "armv7l": 386,
}
_PROG_LOAD, _PROG_ATTACH, _PROG_DETACH, _PROG_GET_FD_BY_ID, _PROG_QUERY = 5, 8, 9, 13, 16
_PROG_TYPE_CGROUP_DEVICE = 15
_CGROUP_DEVICE = 6  # enum bpf_attach_type
_F_ALLOW_MULTI = 2
_ATTR_SIZE = 128  # zero-filled; covers every field used here (and query's revision)
_EAGAIN, _ENOSPC, _EPERM, _EACCES = 11, 28, 1, 13

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def _bpf(cmd: int, attr: bytearray, what: str, path: str) -> int:
    nr = _SYS_BPF.get(os.uname().machine)
    if nr is None:
        raise CgroupError(38, what, path, f"no bpf(2) number known for {os.uname().machine}")
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)  # shared: the kernel may write back
    for _ in range(30):
        ret = _syscall(ctypes.c_long(nr), ctypes.c_long(cmd), buf, ctypes.c_long(len(attr)))
        if ret >= 0:
            return int(ret)
        errno = ctypes.get_errno()
        if errno != _EAGAIN or cmd != _PROG_LOAD:
            raise CgroupError(errno, what, path)
    raise CgroupError(_EAGAIN, what, path, "interrupted 30 times")


def _u32(attr: bytearray, offset: int, value: int) -> None:
    attr[offset : offset + 4] = value.to_bytes(4, "little")


def _u64(attr: bytearray, offset: int, value: int) -> None:
    attr[offset : offset + 8] = value.to_bytes(8, "little")


def load(program: bytes, path: str) -> int:
    """BPF_PROG_LOAD a device program; the verifier's log is in the error."""
    insns = ctypes.create_string_buffer(program, len(program))
    license = ctypes.create_string_buffer(LICENSE.encode())
    attr = bytearray(_ATTR_SIZE)
    _u32(attr, 0, _PROG_TYPE_CGROUP_DEVICE)
    _u32(attr, 4, len(program) // INSN_SIZE)
    _u64(attr, 8, ctypes.addressof(insns))
    _u64(attr, 16, ctypes.addressof(license))
    attr[48:58] = b"sampan_dev"  # prog_name, shown by bpftool
    try:
        return _bpf(_PROG_LOAD, attr, f"load device filter for {path}", path)
    except CgroupError as exc:
        if exc.errno in (_EPERM, _EACCES):
            raise
        log = ctypes.create_string_buffer(1 << 16)
        _u32(attr, 24, 1)  # log_level
        _u32(attr, 28, len(log))
        _u64(attr, 32, ctypes.addressof(log))
        try:
            return _bpf(_PROG_LOAD, attr, f"load device filter for {path}", path)
        except CgroupError:
            text = log.value.decode(errors="replace").strip().replace("\n", "; ")
            raise CgroupError(exc.errno or 0, exc.what, path, text[-400:]) from None


def attached(dir_fd: int, path: str) -> list[int]:
    """fds of the device programs attached to the cgroup now (caller closes them)."""
    ids = (ctypes.c_uint32 * 64)()
    attr = bytearray(_ATTR_SIZE)
    _u32(attr, 0, dir_fd)
    _u32(attr, 4, _CGROUP_DEVICE)
    _u64(attr, 16, ctypes.addressof(ids))
    _u32(attr, 24, len(ids))
    _bpf(_PROG_QUERY, attr, f"query device filters of {path}", path)
    count = int.from_bytes(attr[24:28], "little")
    fds = []
    for prog_id in list(ids)[:count]:
        get = bytearray(_ATTR_SIZE)
        _u32(get, 0, prog_id)
        try:
            fds.append(_bpf(_PROG_GET_FD_BY_ID, get, f"open device filter {prog_id}", path))
        except CgroupError as exc:
            if exc.errno not in (_EPERM, _EACCES):  # an LSM may hide others' filters
                for fd in fds:
                    os.close(fd)
                raise
    return fds


def _attach(cmd: int, dir_fd: int, prog_fd: int, flags: int, what: str, path: str) -> None:
    attr = bytearray(_ATTR_SIZE)
    _u32(attr, 0, dir_fd)
    _u32(attr, 4, prog_fd)
    _u32(attr, 8, _CGROUP_DEVICE)
    _u32(attr, 12, flags)
    _bpf(cmd, attr, what, path)


def replace_device_filter(path: str, program: bytes) -> None:
    """Make PROGRAM the only device filter of the cgroup directory PATH."""
    try:
        dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(exc.errno or 0, f"open {path}", path) from None
    old: list[int] = []
    prog_fd = -1
    try:
        old = attached(dir_fd, path)
        prog_fd = load(program, path)
        _attach(
            _PROG_ATTACH, dir_fd, prog_fd, _F_ALLOW_MULTI, f"attach device filter to {path}", path
        )
        for fd in old:
            _attach(_PROG_DETACH, dir_fd, fd, 0, f"detach old device filter from {path}", path)
    finally:
        for fd in [*old, prog_fd, dir_fd]:
            if fd >= 0:
                os.close(fd)
