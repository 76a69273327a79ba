"""A directory written as a layer tar: the same bytes every time for the same tree.

``write_layer`` serves ``sampan image bootstrap`` (a root filesystem becomes a
one-layer image) and, later, ``commit`` and ``build`` (an overlay upper dir
becomes a layer).  The diff id (sha256 of the tar) is part of the image
config, so the output is deterministic: entries in sorted order (each
directory's names compared as bytes, depth first, as docker's writer walks),
numeric owners only (no user or group names), whole-second mtimes, no access
or change times, and the archive ends with two zero blocks (as Go's
archive/tar, no padding to a 10 KiB record).  Names over 100 bytes, owners,
sizes and times that do not fit ustar's octal fields, and xattrs go into a
PAX header before the entry.  Hardlinks stay hardlinks (the first path seen
is the target), device nodes and fifos are kept, sockets skipped.  The tree
root itself is not an entry (docker's layers have none).

Xattrs: all of them except ``security.selinux`` (the host's labels are not the
image's) and ``trusted.overlay.*`` (overlayfs's own bookkeeping).  With
``overlay_whiteouts`` the tree is an overlayfs upper dir: a char device 0/0
becomes the whiteout file ``.wh.NAME`` and a directory marked
``trusted.overlay.opaque=y`` gets a ``.wh..wh..opq`` entry right after its
own -- what ``unpack_layer`` turns back into the same overlay objects.  An
upper dir that holds overlayfs redirects or metacopy files (its data lives in
a lower layer) cannot be written from the upper dir alone: Unsupported.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import BinaryIO

from sampan.errors import InvalidArgument, Unsupported

_BLOCK = 512
_FLUSH = 1 << 20
_OCTAL_MAX = {8: 0o7777777, 12: 0o77777777777}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SKIPPED_XATTRS = ("security.selinux",)
_OVERLAY_XATTR = "trusted.overlay."
_OPAQUE = "trusted.overlay.opaque"
_UNSUPPORTED_OVERLAY = ("trusted.overlay.redirect", "trusted.overlay.metacopy")


def write_layer(src_dir: str, out: BinaryIO, *, overlay_whiteouts: bool) -> str:
    """Write the tree under SRC_DIR to OUT as an uncompressed tar; return its diff id
    (``sha256:...`` of exactly the bytes written)."""
    writer = _Writer(out, overlay_whiteouts)
    root = os.open(src_dir, _DIR_FLAGS)
    try:
        writer.directory(root, b"", src_dir)
    finally:
        os.close(root)
    writer.finish()
    return "sha256:" + writer.digest.hexdigest()


class _Writer:
    def __init__(self, out: BinaryIO, overlay_whiteouts: bool) -> None:
        self.out = out
        self.overlay = overlay_whiteouts
        self.digest = hashlib.sha256()
        self.buf = bytearray()
        self.links: dict[tuple[int, int], bytes] = {}

    # - output -

    def _emit(self, data: bytes | memoryview) -> None:
        self.buf += data
        if len(self.buf) >= _FLUSH:
            self._flush()

    def _flush(self) -> None:
        if self.buf:
            self.digest.update(self.buf)
            self.out.write(self.buf)
            self.buf = bytearray()

    def finish(self) -> None:
        self._emit(bytes(2 * _BLOCK))
        self._flush()

    def header(
        self,
        name: bytes,
        kind: bytes,
        st: os.stat_result,
        *,
        size: int = 0,
        mode: int | None = None,
        linkname: bytes = b"",
        xattrs: dict[str, bytes] | None = None,
    ) -> None:
        pax: dict[str, bytes] = {}
        mtime = st.st_mtime_ns // 1_000_000_000
        fields = {"uid": st.st_uid, "gid": st.st_gid, "size": size, "mtime": mtime}
        for key, value in fields.items():
            if not 0 <= value <= _OCTAL_MAX[12 if key in ("size", "mtime") else 8]:
                pax[key] = str(value).encode()
        if len(name) > 100:
            pax["path"] = name
        if len(linkname) > 100:
            pax["linkpath"] = linkname
        for key in sorted(xattrs or ()):
            pax["SCHILY.xattr." + key] = (xattrs or {})[key]
        if pax:
            records = b"".join(_record(k.encode(), v) for k, v in pax.items())
            self._emit(_ustar(b"././@PaxHeader", 0o644, 0, 0, len(records), 0, b"x", b"", 0, 0))
            self._emit(records + bytes(-len(records) % _BLOCK))
        self._emit(
            _ustar(
                name[:100],
                stat.S_IMODE(st.st_mode) if mode is None else mode,
                st.st_uid if "uid" not in pax else 0,
                st.st_gid if "gid" not in pax else 0,
                size if "size" not in pax else 0,
                mtime if "mtime" not in pax else 0,
                kind,
                linkname[:100],
                os.major(st.st_rdev) if kind in (b"3", b"4") else 0,
                os.minor(st.st_rdev) if kind in (b"3", b"4") else 0,
            )
        )

    # - the tree -

    def _xattrs(self, target: int | str, name: bytes) -> dict[str, bytes]:
        follow = not isinstance(target, str)
        try:
            keys = os.listxattr(target, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno in (95, 1):  # EOPNOTSUPP, EPERM: none to keep
                return {}
            raise
        found: dict[str, bytes] = {}
        for key in keys:
            if key.startswith(_OVERLAY_XATTR):
                if self.overlay and key.startswith(_UNSUPPORTED_OVERLAY):
                    raise Unsupported(
                        f"{os.fsdecode(name)}: overlayfs {key} in the upper dir is not supported"
                    )
                continue
            if key in _SKIPPED_XATTRS:
                continue
            try:
                found[key] = os.getxattr(target, key, follow_symlinks=follow)
            except OSError as exc:
                if exc.errno != 61:  # ENODATA: removed meanwhile
                    raise
        return found

    def directory(self, fd: int, prefix: bytes, where: str) -> None:
        """Every entry under the directory open at FD, whose tar path is PREFIX."""
        for name in sorted(os.listdir(fd), key=os.fsencode):
            path = prefix + os.fsencode(name)
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                try:
                    xattrs = self._xattrs(sub, path)
                    self.header(path + b"/", b"5", st, xattrs=xattrs)
                    if self.overlay and self._opaque(sub):
                        self.header(path + b"/.wh..wh..opq", b"0", st, mode=st.st_mode & 0o777)
                    self.directory(sub, path + b"/", where)
                finally:
                    os.close(sub)
                continue
            proc = f"/proc/self/fd/{fd}/{name}"
            if self.overlay and stat.S_ISCHR(mode) and st.st_rdev == 0:
                head, _, base = path.rpartition(b"/")
                whiteout = (head + b"/" if head else b"") + b".wh." + base
                self.header(whiteout, b"0", st, mode=0o600)
                continue
            if stat.S_ISSOCK(mode):
                continue
            if st.st_nlink > 1:
                first = self.links.setdefault((st.st_dev, st.st_ino), path)
                if first != path:
                    self.header(path, b"1", st, linkname=first, xattrs=self._xattrs(proc, path))
                    continue
            if stat.S_ISREG(mode):
                self._file(fd, name, path, st)
            elif stat.S_ISLNK(mode):
                target = os.fsencode(os.readlink(name, dir_fd=fd))
                self.header(path, b"2", st, linkname=target, xattrs=self._xattrs(proc, path))
            elif stat.S_ISFIFO(mode):
                self.header(path, b"6", st, xattrs=self._xattrs(proc, path))
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                kind = b"3" if stat.S_ISCHR(mode) else b"4"
                self.header(path, kind, st, xattrs=self._xattrs(proc, path))
            else:
                raise InvalidArgument(f"{where}/{name}: file type {mode:o} cannot go into a layer")

    def _opaque(self, fd: int) -> bool:
        try:
            return os.getxattr(fd, _OPAQUE) == b"y"
        except OSError:
            return False

    def _file(self, dir_fd: int, name: str, path: bytes, st: os.stat_result) -> None:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            size = st.st_size
            self.header(path, b"0", st, size=size, xattrs=self._xattrs(fd, path))
            left = size
            while left:
                chunk = os.read(fd, min(left, _FLUSH))
                if not chunk:
                    break
                self._emit(chunk)
                left -= len(chunk)
            if left or os.read(fd, 1):
                raise InvalidArgument(f"{os.fsdecode(path)}: file changed size while written")
            self._emit(bytes(-size % _BLOCK))
        finally:
            os.close(fd)


def _record(key: bytes, value: bytes) -> bytes:
    """One PAX record, "LENGTH KEY=VALUE\\n", LENGTH counting its own digits."""
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _ustar(
    name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
    kind: bytes, linkname: bytes, major: int, minor: int,
) -> bytes:  # fmt: skip
    header = b"".join((
        name.ljust(100, b"\0"), _octal(mode, 8), _octal(uid, 8), _octal(gid, 8),
        _octal(size, 12), _octal(mtime, 12), b" " * 8, kind, linkname.ljust(100, b"\0"),
        b"ustar\x0000", bytes(64), _octal(major, 8), _octal(minor, 8), bytes(167),
    ))  # fmt: skip
    checksum = b"%06o\0 " % sum(header)
    return header[:148] + checksum + header[156:]
