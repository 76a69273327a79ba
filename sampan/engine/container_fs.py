"""A container's files from the daemon: ``docker cp`` (stat, archive, extract) and export.

Where the files are read and written:

    running    through ``/proc/PID/root`` of the container's init: its own mount
               namespace, so volumes, binds and tmpfs mounted in it are part of
               the view, as the container sees them
    otherwise  the container's snapshot, mounted on its bundle's rootfs/ for the
               operation and unmounted after (unless the container started
               meanwhile: its start then uses that mount, and unmounts it at exit)

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

``export`` is the container's root filesystem without what is mounted in
it (volumes, binds), as docker exports it: the snapshot's merged tree on the
bundle's rootfs/ (the daemon's namespace sees no mount of the container's).

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
    "mounted_rootfs",
    "open_archive",
    "path_stat",
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


@contextlib.contextmanager
def mounted_rootfs(service: ContainerService, c: Container) -> Iterator[str]:
    """The container's merged root filesystem (no volumes) on its bundle's rootfs/:
    mounted for the duration unless it already is (a running container's)."""
    path = _rootfs(service, c)
    mounted_here = False
    with service.changed:  # start decides under this lock whether to mount it
        if c.removing or c.removed:
            raise Conflict(f"container {c.id} is marked for removal")
        if not _is_mounted(path):
            service.engine.store().snapshots.mount(c.id, path)
            mounted_here = True
    try:
        yield path
    finally:
        if mounted_here:
            with service.changed:
                if not (c.running or c.starting):
                    service.engine.store().snapshots.unmount(path)


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


@contextlib.contextmanager
def container_view(service: ContainerService, c: Container) -> Iterator[View]:
    """The container's root as the container sees it (see the module doc)."""
    with service.changed:
        pid = int(c.state.get("Pid") or 0) if c.running else 0
    if pid:
        try:
            fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        with service.changed:
            same = c.running and int(c.state.get("Pid") or 0) == pid
        if fd >= 0 and same:
            try:
                yield View(fd, pseudo_devices(pid))
            finally:
                os.close(fd)
            return
        if fd >= 0:
            os.close(fd)
    with mounted_rootfs(service, c) as path:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            yield View(fd)
        finally:
            os.close(fd)


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
    from sampan.image.layertar import write_layer

    c = service.get(ref)
    with mounted_rootfs(service, c) as path:
        write_layer(path, out, overlay_whiteouts=False)
    _emit(service, c, "export")
