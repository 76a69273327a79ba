"""Kernel failures: an OSError that names the operation and the path."""

from __future__ import annotations

import ctypes
import os


class SyscallError(OSError):
    """A failed system call: ``errno``, the operation and (if any) the path.

    ``str(err)`` reads ``"mount /proc: Operation not permitted"``.
    """

    def __init__(self, errno: int, op: str, path: str | None = None) -> None:
        super().__init__(errno, os.strerror(errno))
        self.op = op
        self.path = path

    def __str__(self) -> str:
        where = f"{self.op} {self.path}" if self.path else self.op
        return f"{where}: {self.strerror}"


def check(ret: int, op: str, path: str | None = None) -> int:
    """Return *ret*, or raise SyscallError from errno when it is -1."""
    if ret == -1:
        raise SyscallError(ctypes.get_errno(), op, path)
    return ret
