"""The cgroup interface both backends implement, and the seam they share.

``Cgroup`` is the contract (see the package docstring for a worked example).
``System`` is the one object through which every kernel call of this package
goes -- file reads and writes, mkdir/rmdir, kill, sleep, the device filter --
so that tests can swap it for a recording double and run without root.
"""

from __future__ import annotations

import abc
import os
import time

from sampan.errors import NotFound, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

SIGKILL = 9  # Linux's number on every architecture sampan runs on; no `import signal`.
_EINTR, _ENOENT, _ESRCH, _EBUSY, _ENODEV = 4, 2, 3, 16, 19
UNLIMITED = 2**64 - 1  # what stats() reports for "max", as runc does


class CgroupError(OSError):
    """A failed kernel call on a cgroup file: ``errno``, what was done, and the path.

    ``str(err)`` is one lower-case line:
    ``"write 100 to /sys/fs/cgroup/memory/x/memory.limit_in_bytes: device or resource busy"``.
    """

    def __init__(self, errno: int, what: str, path: str, detail: str = "") -> None:
        super().__init__(errno, os.strerror(errno))
        self.filename = path
        self.what = what
        self.detail = detail

    def __str__(self) -> str:
        reason = self.strerror or ""
        reason = reason[:1].lower() + reason[1:]
        line = f"{self.what}: {reason}"
        return f"{line} ({self.detail})" if self.detail else line


class System:
    """Every kernel call this package makes; tests substitute a subclass.

    Paths are absolute.  Reads and writes raise ``OSError`` as the kernel gave
    it; callers translate them (``CgroupError``, ``NotFound``, ``Unsupported``).
    """

    def read(self, path: str) -> str:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks).decode()

    def write(self, path: str, data: str) -> None:
        # O_TRUNC is a no-op on cgroupfs and keeps fixture files honest.
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def mkdir(self, path: str) -> bool:
        """Make one directory; False when it was already there."""
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            return False
        return True

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def subdirs(self, path: str) -> list[str]:
        with os.scandir(path) as it:
            return [e.name for e in it if e.is_dir(follow_symlinks=False)]

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def kill(self, pid: int, sig: int) -> None:
        os.kill(pid, sig)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def attach_device_filter(self, path: str, program: bytes) -> None:
        """Load PROGRAM (BPF_PROG_TYPE_CGROUP_DEVICE) and make it the cgroup's only filter."""
        from sampan.cgroups import bpf

        bpf.replace_device_filter(path, program)


SYSTEM = System()


class Cgroup(abc.ABC):
    """One container's cgroup, in every hierarchy it lives in.

    Construction does no I/O beyond finding the mounts; every method names
    its files in its errors.  ``paths`` maps controller -> absolute directory
    (v1: ``{"memory": ..., "cpu": ..., "name=systemd": ..., "": unified}``;
    v2: ``{"": dir}``).
    """

    paths: dict[str, str]
    version: int

    def __init__(self, system: System | None) -> None:
        self.sys = system or SYSTEM

    # -- lifecycle -------------------------------------------------------
    @abc.abstractmethod
    def create(self) -> None:
        """Make the directories (and parents); idempotent."""

    @abc.abstractmethod
    def apply(self, resources: Mapping[str, Any] | None) -> None:
        """Write the OCI ``linux.resources`` object; None or {} writes nothing.

        Validates first (``validate_resources``), then checks that every
        controller the object needs is there (``Unsupported`` naming the field
        if not) before the first write.  A ``devices`` list is the whole
        allow-list, applied as runc does: it starts from "deny all"; an absent
        or empty list leaves device access alone.
        """

    def add_process(self, pid: int) -> None:
        """Move PID into the cgroup in every hierarchy."""
        for path in self._unique_dirs():
            self._write_procs(path, pid)

    @abc.abstractmethod
    def freeze(self) -> None:
        """Freeze every process; returns once the kernel says FROZEN."""

    @abc.abstractmethod
    def thaw(self) -> None:
        """Undo freeze()."""

    @abc.abstractmethod
    def frozen(self) -> bool:
        """True when the cgroup is frozen (waits out a freeze in progress).

        A missing cgroup, or a host without a freezer, is not frozen.
        """

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]:
        """Usage in the shape of runc's ``events --stats`` data (see stats.py)."""

    @abc.abstractmethod
    def kill_all(self, sig: int) -> None:
        """Send SIG to every process in the cgroup and its children.

        SIGKILL uses cgroup.kill where the kernel has it; other signals are
        sent with the cgroup frozen, so no process escapes by forking (a
        paused cgroup stays paused).  A missing cgroup has no processes.
        """

    def destroy(self) -> None:
        """Remove the directories (children first); a missing one is fine.

        rmdir is retried on EBUSY (dying processes) for about a second in all.
        """
        errors: list[CgroupError] = []
        budget = [1.0]
        for path in self._unique_dirs():
            try:
                remove_tree(self.sys, path, budget)
            except CgroupError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def exists(self) -> bool:
        """True while any of the directories exists."""
        return any(self.sys.exists(p) for p in self._unique_dirs())

    # -- shared helpers ------------------------------------------------
    def pids(self) -> list[int]:
        """Every process in the cgroup, children cgroups included, sorted."""
        return sorted(collect_pids(self.sys, self._pids_dir()))

    @abc.abstractmethod
    def _pids_dir(self) -> str: ...

    def _unique_dirs(self) -> list[str]:
        seen: list[str] = []
        for p in self.paths.values():
            if p not in seen:
                seen.append(p)
        return seen

    def _write_procs(self, path: str, pid: int) -> None:
        target = path + "/cgroup.procs"
        try:
            self.sys.write(target, str(pid))
        except OSError as exc:
            if exc.errno == _ESRCH:
                raise NotFound(f"process {pid}: no such process") from None
            if exc.errno == _ENOENT and not self.sys.exists(path):
                raise NotFound(f"cgroup {path} does not exist (create it first)") from None
            raise CgroupError(exc.errno or 0, f"write {pid} to {target}", target) from None

    def _signal(self, pids: Iterable[int], sig: int) -> None:
        for pid in pids:
            try:
                self.sys.kill(pid, sig)
            except ProcessLookupError:
                pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._pids_dir()}>"


# -- file helpers shared by the backends ------------------------------------


def read_file(system: System, path: str) -> str:
    """The file's content; NotFound if it (or its cgroup) is missing."""
    try:
        return system.read(path)
    except OSError as exc:
        if exc.errno in (_ENOENT, _ENODEV):
            raise NotFound(f"{path} does not exist") from None
        raise CgroupError(exc.errno or 0, f"read {path}", path) from None


def read_optional(system: System, path: str) -> str | None:
    """The file's content, or None when it does not exist."""
    try:
        return system.read(path)
    except OSError as exc:
        if exc.errno in (_ENOENT, _ENODEV):
            return None
        raise CgroupError(exc.errno or 0, f"read {path}", path) from None


def write_field(system: System, field: str, path: str, value: str) -> None:
    """Write VALUE for the OCI FIELD; a missing file is Unsupported, naming both."""
    try:
        system.write(path, value)
    except OSError as exc:
        if exc.errno == _ENOENT:
            directory, _, name = path.rpartition("/")
            if not system.exists(directory):
                raise NotFound(f"{field}: cgroup {directory} does not exist") from None
            raise Unsupported(
                f"{field}: {name} does not exist in {directory}"
                " (this kernel or controller does not support it)"
            ) from None
        raise CgroupError(exc.errno or 0, f"{field}: write {value!r} to {path}", path) from None


def collect_pids(system: System, path: str) -> list[int]:
    """PIDs in cgroup.procs of PATH and of every cgroup below it."""
    pids: list[int] = []
    stack = [path]
    while stack:
        current = stack.pop()
        text = read_optional(system, current + "/cgroup.procs")
        if text is None:
            if current == path and not system.exists(path):
                raise NotFound(f"cgroup {path} does not exist")
            continue
        pids.extend(int(line) for line in text.split())
        try:
            stack.extend(current + "/" + name for name in system.subdirs(current))
        except FileNotFoundError:
            continue
    return pids


def remove_tree(system: System, path: str, budget: list[float] | None = None) -> None:
    """rmdir PATH after its sub-cgroups; a missing PATH is fine.

    EBUSY is retried with growing sleeps while BUDGET (seconds, shared by the
    caller's calls) lasts.
    """
    if budget is None:
        budget = [1.0]
    try:
        names = system.subdirs(path)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        names = []
    except OSError as exc:
        raise CgroupError(exc.errno or 0, f"list {path}", path) from None
    for name in names:
        remove_tree(system, path + "/" + name, budget)
    delay = 0.001
    while True:
        try:
            system.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno == _EINTR:
                continue
            if exc.errno != _EBUSY:
                raise CgroupError(exc.errno or 0, f"rmdir {path}", path) from None
        if budget[0] <= 0:
            raise CgroupError(_EBUSY, f"rmdir {path}", path, "processes are still in it")
        delay = min(delay, budget[0])
        system.sleep(delay)
        budget[0] -= delay
        delay *= 2


def parse_kv(text: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat, memory.events) as a dict."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value:
            out[key] = parse_uint(value)
    return out


def parse_uint(text: str) -> int:
    """An unsigned cgroup value; ``max`` is UNLIMITED."""
    text = text.strip()
    if text == "max":
        return UNLIMITED
    try:
        return int(text)
    except ValueError:
        return 0
