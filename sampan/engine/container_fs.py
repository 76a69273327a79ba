"""A container's files from the daemon: ``docker cp`` (stat, archive, extract) and export.

Where the files are read and written:

    running    through ``/proc/PID/root`` of the container's init: its own mount
               namespace, so volumes, binds and tmpfs mounted in it are part of
               the view, as the container sees them
    otherwise  the container's snapshot and its binds and volumes, mounted for the
               operation in a mount namespace of their own: a forked child
               unshares one, mounts them there, hands the daemon an fd of the
               root and one of the namespace, and exits; closing the two fds
               ends the namespace and its mounts -- nothing is ever mounted in
               the daemon's namespace, so nothing can be left there

Every path is resolved inside that root by ``inroot.resolve`` (symlinks
evaluated in the container's scope, never followed out of it); files are
then opened relative to directory fds, never by a host path.  Archives are
written with the image layer's tar writer (``layertar.write_entry``) and
extracted with its unpacker in copy mode (``unpack.extract_archive``):
names checked lexically, nothing written through a symlink, no device nodes.

The archive of a path is docker's: a directory as its base name and
everything under it, a file alone, a symlink as a link; a path ending in
"/." names a directory's contents ("./..."), "/" the whole tree ("/...").
The stat is docker's X-Docker-Container-Path-Stat (name, size, Go FileMode
bits, mtime, linkTarget -- the symlink evaluated in the container).

A stopped container's snapshot mounted for an operation is claimed on its
record (``Container.fs_busy``, under the service's lock, in the same hold
that saw it stopped): ``start`` waits for the claims to be released before
it mounts the snapshot itself (two overlays on one upper dir are undefined),
``rm`` before it removes it; a claim is refused while the container is
being removed, and waits while it is being started.

``export`` is the container's root filesystem without what is mounted in
it (volumes, binds), as docker exports it: the snapshot's merged tree, on
the bundle's rootfs/ of a running container (the daemon's namespace sees
none of the container's mounts), else in a namespace of its own as above.

    stat = archive_stat(service, "web", "/etc/passwd")
    with open_archive(service, "web", "/etc") as found:   # found.stat
        found.write(out)                                   # streamed, never all in memory
    extract(service, "web", "/tmp", stream, no_overwrite_dir_non_dir=True)
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time

from sampan.engine import inroot
from sampan.errors import Conflict, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO

    from sampan.engine.containers import Container, ContainerService

__all__ = [
    "PSEUDO_FILESYSTEMS",
    "Archive",
    "View",
    "archive_stat",
    "container_view",
    "export",
    "extract",
    "go_file_mode",
    "open_archive",
    "path_stat",
    "private_root",
    "pseudo_devices",
]

# Go's os.FileMode type bits (io/fs), as docker's path stat carries them.
MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_NAMED_PIPE = 1 << 25
MODE_SOCKET = 1 << 24
MODE_SETUID = 1 << 23
MODE_SETGID = 1 << 22
MODE_CHAR_DEVICE = 1 << 21
MODE_STICKY = 1 << 20


def go_file_mode(mode: int) -> int:
    """ST_MODE as Go's os.FileMode."""
    out = mode & 0o777
    kind = stat.S_IFMT(mode)
    out |= {
        stat.S_IFDIR: MODE_DIR,
        stat.S_IFLNK: MODE_SYMLINK,
        stat.S_IFIFO: MODE_NAMED_PIPE,
        stat.S_IFSOCK: MODE_SOCKET,
        stat.S_IFCHR: MODE_DEVICE | MODE_CHAR_DEVICE,
        stat.S_IFBLK: MODE_DEVICE,
    }.get(kind, 0)
    if mode & stat.S_ISUID:
        out |= MODE_SETUID
    if mode & stat.S_ISGID:
        out |= MODE_SETGID
    if mode & stat.S_ISVTX:
        out |= MODE_STICKY
    return out


def _emit(service: ContainerService, c: Container, action: str) -> None:
    attrs = {"name": c.name, "image": c.image_name}
    attrs.update(c.config.get("Labels") or {})
    service.engine.events.emit("container", action, c.id, attrs)


def _rootfs(service: ContainerService, c: Container) -> str:
    return os.path.join(service.bundle(c), "rootfs")


def _is_mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ", 5)[4] == path for line in f)


# Kernel filesystems a running container has mounted: archived as empty directories
# (their files change size under the reader, and docker's view never holds them).
PSEUDO_FILESYSTEMS = frozenset((
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "securityfs", "debugfs",
    "tracefs", "bpf", "configfs", "fusectl", "pstore", "binfmt_misc", "efivarfs",
))  # fmt: skip


def pseudo_devices(pid: int) -> frozenset[int]:
    """The devices (st_dev) of the kernel filesystems mounted in PID's mount namespace."""
    found = set()
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            for line in f:
                before, _, after = line.partition(" - ")
                if after.split(" ", 1)[0] in PSEUDO_FILESYSTEMS:
                    major, _, minor = before.split(" ")[2].partition(":")
                    found.add(os.makedev(int(major), int(minor)))
    except (OSError, ValueError):
        pass
    return frozenset(found)


class View:
    """An fd of a container's root and the devices whose directories are archived empty."""

    __slots__ = ("fd", "pseudo")

    def __init__(self, fd: int, pseudo: frozenset[int] = frozenset()) -> None:
        self.fd = fd
        self.pseudo = pseudo


def _mount_sources(service: ContainerService, c: Container) -> list[tuple[str, str, bool]]:
    """(destination, host source, read-write) of C's binds and of its volumes whose data
    is at hand (a volume whose device is not mounted is left out); tmpfs has no content
    while the container is not running."""
    found = []
    for point in c.state.get("MountPoints") or []:
        if not isinstance(point, dict) or point.get("Type") not in ("bind", "volume"):
            continue
        source = str(point.get("Source") or "")
        if point.get("Type") == "volume" and point.get("Name"):
            volumes = getattr(service.engine, "volumes", None)
            if volumes is not None:
                with contextlib.suppress(Exception):
                    source = volumes.path(point["Name"])
        if source and os.path.isdir(source):
            found.append((str(point["Destination"]), source, bool(point.get("RW", True))))
    return sorted(found, key=lambda p: p[0].count("/"))


def _private_root(service: ContainerService, c: Container, binds: bool) -> tuple[int, int, str]:
    """C's snapshot (and with BINDS its binds and volumes) mounted in a new mount namespace:
    (an fd of the root, an fd of the namespace, the empty directory it is mounted on)."""
    import socket
    import tempfile

    from sampan.errors import SampanError, describe
    from sampan.linux import syscalls
    from sampan.linux.constants import (
        CLONE_NEWNS,
        MS_BIND,
        MS_PRIVATE,
        MS_RDONLY,
        MS_REC,
        MS_REMOUNT,
    )

    snapshots = service.engine.store().snapshots
    sources = _mount_sources(service, c) if binds else []
    where = tempfile.mkdtemp(prefix=f".view-{c.id[:12]}-", dir=service.run_dir)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:  # the child: nothing but system calls, then _exit
        code = 1
        try:
            ours.close()
            syscalls.unshare(CLONE_NEWNS)
            syscalls.mount(None, "/", None, MS_REC | MS_PRIVATE)
            snapshots.mount(c.id, where)
            root = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            for dest, source, rw in sources:
                try:
                    with inroot.resolve(root, dest, follow=True) as found:
                        target = found.open_dir()
                except OSError:
                    continue  # no mount point in the image: the runtime makes it at start
                src = os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                syscalls.mount(f"/proc/self/fd/{src}", f"/proc/self/fd/{target}", None,
                               MS_BIND | MS_REC)  # fmt: skip
                os.close(target)
                os.close(src)
                if not rw:
                    with inroot.resolve(root, dest, follow=True) as found:
                        top = found.open_dir()
                    syscalls.mount(None, f"/proc/self/fd/{top}", None,
                                   MS_REMOUNT | MS_BIND | MS_RDONLY)  # fmt: skip
                    os.close(top)
            namespace = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            socket.send_fds(theirs, [b"ok"], [root, namespace])
            code = 0
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                theirs.send(b"error: " + describe(exc).encode()[:4000])
        finally:
            os._exit(code)
    theirs.close()
    try:
        message, fds, _, _ = socket.recv_fds(ours, 4096, 2)
    finally:
        ours.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    if message != b"ok" or len(fds) != 2:
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.rmdir(where)
        text = message.decode(errors="replace").removeprefix("error: ")
        raise SampanError(f"container {c.id}: mounting its filesystem: {text or 'failed'}")
    return fds[0], fds[1], where


def _claim(service: ContainerService, c: Container) -> int:
    """The pid of C's init when C runs; 0 when it does not, and then C's filesystem is
    claimed (``fs_busy``: start and rm wait until it is released) -- in one hold of the
    service's lock, so no start comes between the look and the claim.  A start under
    way is waited for; a container being removed is refused."""
    from sampan.engine.container_records import FS_WAIT

    deadline = time.monotonic() + FS_WAIT
    with service.changed:
        while c.starting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Conflict(f"container {c.id} is starting: its filesystem is in use")
            service.changed.wait(left)
        if c.removing or c.removed:
            raise Conflict(f"container {c.id} is marked for removal")
        if c.running:
            pid = int(c.state.get("Pid") or 0)
            if not pid:
                raise Conflict(f"container {c.id}: the pid of its init is not known")
            return pid
        c.fs_busy += 1
        return 0


@contextlib.contextmanager
def _claimed_root(service: ContainerService, c: Container, binds: bool) -> Iterator[int]:
    """An fd of C's filesystem, claimed by ``_claim``, mounted in a namespace of its own;
    unmounted (the namespace's fds closed) and the claim released after."""
    try:
        root, namespace, where = _private_root(service, c, binds)
        try:
            yield root
        finally:
            os.close(root)
            os.close(namespace)
            with contextlib.suppress(OSError):
                os.rmdir(where)
    finally:
        with service.changed:
            c.fs_busy -= 1
            service.changed.notify_all()


@contextlib.contextmanager
def private_root(service: ContainerService, c: Container, *, binds: bool) -> Iterator[int]:
    """An fd of the stopped container C's filesystem (with BINDS: its binds and volumes
    too) mounted in a namespace of its own for the duration (see the module doc); a
    start or rm of C waits until it is done.  Conflict when C runs."""
    if _claim(service, c):
        raise Conflict(f"container {c.id} is running")
    with _claimed_root(service, c, binds) as root:
        yield root


def _is_root_of(service: ContainerService, c: Container, fd: int) -> bool:
    """Whether FD (a /proc/PID/root) is C's root filesystem: the snapshot mounted on its
    bundle's rootfs/ in the daemon's namespace, pivoted into by the runtime."""
    try:
        mine = os.stat(_rootfs(service, c))
    except OSError:
        return False
    there = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino)


@contextlib.contextmanager
def container_view(service: ContainerService, c: Container) -> Iterator[View]:
    """The container's root as the container sees it (see the module doc)."""
    for _ in range(3):  # a container that exits while we look is looked at again
        pid = _claim(service, c)
        if not pid:
            with _claimed_root(service, c, binds=True) as fd:
                yield View(fd)
            return
        try:
            fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        with service.changed:
            same = c.running and int(c.state.get("Pid") or 0) == pid
        if same and not _is_root_of(service, c, fd):
            # The init died and its pid names another process (whose root may be the
            # host's) before the daemon heard of the exit, or the init left its root.
            os.close(fd)
            raise Conflict(f"container {c.id}: its init's root is not its root filesystem")
        if not same:
            os.close(fd)
            continue
        try:
            yield View(fd, pseudo_devices(pid))
        finally:
            os.close(fd)
        return
    raise Conflict(f"container {c.id}: it started and stopped while its files were looked at")


def _abs_path(path: str) -> str:
    """docker's absPath: "/" joined with PATH, cleaned, a trailing "/" or "/." kept."""
    cleaned = inroot.clean(path)
    if path.endswith("/.") or path == ".":
        return cleaned.rstrip("/") + "/."
    if path.endswith("/") and cleaned != "/":
        return cleaned + "/"
    return cleaned


def _base(abs_path: str) -> str:
    """Go's filepath.Base: the last element ("/" for the root, "." for "dir/.")."""
    stripped = abs_path.rstrip("/")
    if not stripped:
        return "/"
    return stripped.rsplit("/", 1)[-1]


def _missing(c: Container, path: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {c.name}")


def _resolve(root: int, c: Container, path: str, *, follow: bool) -> inroot.Resolved:
    try:
        return inroot.resolve(root, path, follow=follow)
    except FileNotFoundError:
        raise _missing(c, path) from None
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG):
            raise InvalidArgument(f"{path}: {os.strerror(exc.errno)}") from None
        raise


def path_stat(root: int, found: inroot.Resolved, abs_path: str) -> dict[str, Any]:
    """docker's container path stat of what FOUND names (ABS_PATH as asked)."""
    from sampan.units import rfc3339

    st = found.lstat()
    link = ""
    if stat.S_ISLNK(st.st_mode):
        link = inroot.scoped_path(root, found.path)
    return {
        "name": _base(abs_path),
        "size": st.st_size,
        "mode": go_file_mode(st.st_mode),
        "mtime": rfc3339(st.st_mtime_ns),
        "linkTarget": link,
    }


def archive_stat(service: ContainerService, ref: str, path: str) -> dict[str, Any]:
    """HEAD /containers/{id}/archive: the stat of PATH (its last symlink not followed)."""
    c = service.get(ref)
    abs_path = _abs_path(path)
    with container_view(service, c) as view, _resolve(view.fd, c, abs_path, follow=False) as found:
        return path_stat(view.fd, found, abs_path)


class Archive:
    """PATH of a container, open for GET /containers/{id}/archive: ``stat`` is known
    before ``write`` streams the tar (the API sends the stat as a header first)."""

    def __init__(self, view: View, found: inroot.Resolved, abs_path: str) -> None:
        self._found = found
        self._pseudo = view.pseudo
        self.abs_path = abs_path
        self.stat = path_stat(view.fd, found, abs_path)

    def write(self, out: BinaryIO) -> int:
        """The tar to OUT; the bytes of file content in it."""
        from sampan.image.layertar import end_archive, write_entry

        arcname = os.fsencode(_base(self.abs_path))
        content = write_entry(
            self._found.dir_fd, self._found.name, arcname, out, where=self.abs_path,
            opaque_devices=self._pseudo,
        )  # fmt: skip
        end_archive(out)
        return content


@contextlib.contextmanager
def open_archive(service: ContainerService, ref: str, path: str) -> Iterator[Archive]:
    """PATH of container REF, ready to be archived; docker's "archive-path" event after."""
    c = service.get(ref)
    abs_path = _abs_path(path)
    with container_view(service, c) as view, _resolve(view.fd, c, abs_path, follow=False) as found:
        yield Archive(view, found, abs_path)
    _emit(service, c, "archive-path")


def _mount_destinations(c: Container) -> list[str]:
    """Where the container has something mounted (volumes, binds, tmpfs)."""
    points = c.state.get("MountPoints") or {}
    found = (
        list(points)
        if isinstance(points, dict)
        else [str(p.get("Destination", "")) for p in points if isinstance(p, dict)]
    )
    for bind in c.host_config.get("Binds") or []:
        parts = str(bind).split(":")
        if len(parts) > 1:
            found.append(parts[1])
    found += [str(m.get("Target", "")) for m in c.host_config.get("Mounts") or []]
    found += list(c.host_config.get("Tmpfs") or {})
    return [inroot.clean(p) for p in found if p]


def _in_mount(c: Container, path: str) -> bool:
    return any(path == d or path.startswith(d + "/") for d in _mount_destinations(c))


def extract(
    service: ContainerService,
    ref: str,
    path: str,
    stream: BinaryIO,
    *,
    no_overwrite_dir_non_dir: bool = False,
    copy_uid_gid: bool = False,
) -> None:
    """PUT /containers/{id}/archive: the tar STREAM extracted into the directory PATH
    (its last symlink followed, in the container's scope); docker's "extract-to-dir"."""
    from sampan.image.unpack import extract_archive

    c = service.get(ref)
    abs_path = _abs_path(path)
    with container_view(service, c) as view, _resolve(view.fd, c, abs_path, follow=True) as found:
        if not stat.S_ISDIR(found.lstat().st_mode):
            raise InvalidArgument("extraction point is not a directory")
        if c.host_config.get("ReadonlyRootfs") and not _in_mount(c, found.path):
            raise InvalidArgument("container rootfs is marked read-only")
        fd = found.open_dir()
        try:
            extract_archive(
                stream, fd, label=f"extracting into {path}",
                owner=None if copy_uid_gid else (0, 0),
                no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
            )  # fmt: skip
        except OSError as exc:
            if exc.errno == errno.EROFS:
                raise InvalidArgument(f"{path}: read-only file system") from None
            raise
        finally:
            os.close(fd)
    _emit(service, c, "extract-to-dir")


def export(service: ContainerService, ref: str, out: BinaryIO) -> None:
    """GET /containers/{id}/export: the container's root filesystem as a tar to OUT."""
    from sampan.image.layertar import write_tree

    c = service.get(ref)
    path = _rootfs(service, c)
    if _claim(service, c):  # its rootfs/ in the daemon's namespace: the snapshot alone
        if not _is_mounted(path):
            raise Conflict(f"container {c.id} is running but its rootfs is not mounted")
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            write_tree(fd, out, where=path)
        finally:
            os.close(fd)
    else:
        with _claimed_root(service, c, binds=False) as fd:
            write_tree(fd, out, where=f"container {c.id}")
    _emit(service, c, "export")
