"""An exact copy of a directory tree: the vfs snapshotter's layers and containers.

Owners, modes (setuid included), times, xattrs, hardlinks within the tree,
symlinks, fifos, sockets and device nodes -- made with mknod, never opened,
so copying a rootfs with /dev entries never reads a device.  Every name is
reached through directory fds, never by following a symlink.
"""

from __future__ import annotations

import errno
import os
import stat

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_tree(src: str, dst: str) -> None:
    """Copy the tree SRC to DST (which must not exist) exactly: owners, modes,
    times, xattrs, hardlinks within it, symlinks, fifos, sockets and device
    nodes (made with mknod, never opened)."""
    os.mkdir(dst, 0o700)
    sfd = os.open(src, DIR_FLAGS)
    try:
        dfd = os.open(dst, DIR_FLAGS)
        try:
            _copy_dir(sfd, dfd, "", dfd, {})
            _copy_meta(sfd, dfd, os.fstat(sfd))
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def _copy_dir(
    sfd: int, dfd: int, prefix: str, droot: int, links: dict[tuple[int, int], str]
) -> None:
    for name in os.listdir(sfd):
        st = os.stat(name, dir_fd=sfd, follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dfd)
            s = os.open(name, DIR_FLAGS, dir_fd=sfd)
            try:
                d = os.open(name, DIR_FLAGS, dir_fd=dfd)
                try:
                    _copy_dir(s, d, f"{prefix}{name}/", droot, links)
                    _copy_meta(s, d, st)
                finally:
                    os.close(d)
            finally:
                os.close(s)
            continue
        if st.st_nlink > 1:
            first = links.setdefault((st.st_dev, st.st_ino), prefix + name)
            if first != prefix + name:
                os.link(first, name, src_dir_fd=droot, dst_dir_fd=dfd, follow_symlinks=False)
                continue
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
            continue
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
