"""Directory trees walked through fds: an exact copy (the vfs snapshotter's layers and
containers) and a removal.

Owners, modes (setuid included), times, xattrs, hardlinks within the tree,
symlinks, fifos, sockets and device nodes -- made with mknod, never opened,
so copying a rootfs with /dev entries never reads a device.  Every name is
reached through directory fds, never by following a symlink.

Depth.  A tree may be deeper than Python's recursion limit (a container can
make one; sampan before 0.x unpacked layers of any depth), and a path to its
bottom longer than PATH_MAX.  So the walks here are loops with a stack of
names, not recursion, and hold one directory fd per tree at a time: going
down opens the child, going up opens ``..`` and checks it is the directory
the walk came from (st_dev, st_ino), so a directory moved meanwhile stops the
walk instead of sending it somewhere else.
"""

from __future__ import annotations

import errno
import os
import stat

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def ident(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def parent_dir(fd: int, expected: tuple[int, int]) -> int:
    """A new fd of the directory above FD, which must be EXPECTED (``ident`` of it)."""
    up = os.open("..", DIR_FLAGS, dir_fd=fd)
    if ident(os.fstat(up)) != expected:
        os.close(up)
        raise OSError(errno.ESTALE, "a directory moved while its tree was walked")
    return up


# -- removal ------------------------------------------------------------------------


def remove_tree(path: str, *, dir_fd: int | None = None, ignore_errors: bool = False) -> None:
    """Remove PATH (relative to DIR_FD when given) and everything under it, at any depth,
    never following a symlink.  IGNORE_ERRORS: remove what can be and raise nothing."""
    head, name = os.path.split(os.path.normpath(path))
    if name in ("", ".", ".."):
        raise ValueError(f"remove_tree: {path!r} names no directory entry")
    try:
        parent = os.open(head, DIR_FLAGS & ~os.O_NOFOLLOW, dir_fd=dir_fd) if head else -1
    except OSError:
        if ignore_errors:
            return
        raise
    try:
        _remove(parent if head else dir_fd, name, ignore_errors)
    except OSError:
        if not ignore_errors:
            raise
    finally:
        if head:
            os.close(parent)


def _remove(parent: int | None, name: str, ignore: bool) -> None:
    st = os.lstat(name, dir_fd=parent)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent)
        return
    fd = os.open(name, DIR_FLAGS, dir_fd=parent)
    # (name, ident, the subdirectories left) of each directory from NAME down to FD's
    frames: list[tuple[str, tuple[int, int], list[str]]] = []
    try:
        frames.append((name, ident(os.fstat(fd)), _clear(fd, ignore)))
        while frames:
            _, _, subdirs = frames[-1]
            while subdirs:
                sub = subdirs.pop()
                try:
                    child = os.open(sub, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    continue
                except OSError:
                    if ignore:
                        continue
                    raise
                try:
                    frames.append((sub, ident(os.fstat(child)), _clear(child, ignore)))
                except BaseException:
                    os.close(child)
                    raise
                os.close(fd)
                fd = child
                break
            else:
                done, _, _ = frames.pop()
                up = parent_dir(fd, frames[-1][1]) if frames else -1
                os.close(fd)
                fd = up
                try:
                    os.rmdir(done, dir_fd=up if frames else parent)
                except FileNotFoundError:
                    pass
                except OSError:
                    if not ignore:
                        raise
    finally:
        if fd >= 0:
            os.close(fd)


def _clear(fd: int, ignore: bool) -> list[str]:
    """Unlink every non-directory in FD; its subdirectories' names."""
    subdirs: list[str] = []
    try:
        with os.scandir(fd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    except OSError:
        if ignore:
            return subdirs  # left as it is (its rmdir fails too)
        raise
    for name, is_dir in entries:
        if is_dir:
            subdirs.append(name)
            continue
        try:
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            pass
        except OSError:
            if not ignore:
                raise
    return subdirs


# -- copy ---------------------------------------------------------------------------


def copy_tree(src: str, dst: str) -> None:
    """Copy the tree SRC to DST (which must not exist) exactly: owners, modes,
    times, xattrs, hardlinks within it, symlinks, fifos, sockets and device
    nodes (made with mknod, never opened)."""
    os.mkdir(dst, 0o700)
    sfd = os.open(src, DIR_FLAGS)
    try:
        dfd = os.open(dst, DIR_FLAGS)
        try:
            _copy_dirs(sfd, dfd)
            _copy_meta(sfd, dfd, os.fstat(sfd))
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


class _Level:
    """One directory of the copy: what is left of its source listing, its path
    in the tree, its source's stat and both sides' idents."""

    __slots__ = ("dst", "names", "prefix", "src", "st")

    def __init__(self, names: list[str], prefix: str, st: os.stat_result, s: int, d: int) -> None:
        self.names = names
        self.prefix = prefix
        self.st = st
        self.src = ident(os.fstat(s))
        self.dst = ident(os.fstat(d))


def _copy_dirs(sroot: int, droot: int) -> None:
    """Copy what the directory SROOT holds into DROOT (depth first, no recursion)."""
    links: dict[tuple[int, int], str] = {}
    s, d = sroot, droot
    levels = [_Level(os.listdir(s)[::-1], "", os.fstat(s), s, d)]
    try:
        while levels:
            level = levels[-1]
            while level.names:
                name = level.names.pop()
                st = os.stat(name, dir_fd=s, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    _copy_entry(s, d, name, st, level.prefix, droot, links)
                    continue
                os.mkdir(name, 0o700, dir_fd=d)
                s2 = os.open(name, DIR_FLAGS, dir_fd=s)
                try:
                    d2 = os.open(name, DIR_FLAGS, dir_fd=d)
                except BaseException:
                    os.close(s2)
                    raise
                try:
                    levels.append(_Level(os.listdir(s2)[::-1], f"{level.prefix}{name}/", st,
                                         s2, d2))  # fmt: skip
                except BaseException:
                    os.close(s2)
                    os.close(d2)
                    raise
                _close(s, sroot, d, droot)
                s, d = s2, d2
                break
            else:
                levels.pop()
                if not levels:
                    return
                up = levels[-1]
                s2 = sroot if len(levels) == 1 else parent_dir(s, up.src)
                try:
                    d2 = droot if len(levels) == 1 else parent_dir(d, up.dst)
                except BaseException:
                    _close(s2, sroot, -1, droot)
                    raise
                try:
                    _copy_meta(s, d, level.st)  # after ".." was opened: this may drop x
                finally:
                    _close(s, sroot, d, droot)
                    s, d = s2, d2
    finally:
        _close(s, sroot, d, droot)


def _close(s: int, sroot: int, d: int, droot: int) -> None:
    if s not in (sroot, -1):
        os.close(s)
    if d not in (droot, -1):
        os.close(d)


def _copy_entry(
    sfd: int,
    dfd: int,
    name: str,
    st: os.stat_result,
    prefix: str,
    droot: int,
    links: dict[tuple[int, int], str],
) -> None:
    mode = st.st_mode
    if st.st_nlink > 1:
        first = links.setdefault((st.st_dev, st.st_ino), prefix + name)
        if first != prefix + name:
            os.link(first, name, src_dir_fd=droot, dst_dir_fd=dfd, follow_symlinks=False)
            return
    if stat.S_ISREG(mode):
        s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
        try:
            d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                        os.O_CLOEXEC, 0o600, dir_fd=dfd)  # fmt: skip
            try:
                left = st.st_size
                while left > 0:
                    n = os.copy_file_range(s, d, left)
                    if n == 0:
                        break
                    left -= n
                _copy_meta(s, d, st)
            finally:
                os.close(d)
        finally:
            os.close(s)
        return
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(name, dir_fd=sfd), name, dir_fd=dfd)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(name, 0o600, dir_fd=dfd)
    else:  # char and block devices, sockets
        os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dfd)
    _copy_meta(f"/proc/self/fd/{sfd}/{name}", f"/proc/self/fd/{dfd}/{name}", st)


def _copy_meta(src: int | str, dst: int | str, st: os.stat_result) -> None:
    """Owner, xattrs, mode (after the owner: setuid survives), times: fds, or
    /proc/self/fd paths whose last name is not followed."""
    follow = not isinstance(src, str)
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=follow)
    for key in os.listxattr(src, follow_symlinks=follow):
        try:
            os.setxattr(dst, key, os.getxattr(src, key, follow_symlinks=follow),
                        follow_symlinks=follow)  # fmt: skip
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM, errno.ENODATA):
                raise
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))  # a fifo or device path: chmod does not open it
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=follow)
