"""Layer blobs unpacked into a directory: one streaming pass, nothing written outside it.

``unpack_layer`` reads the blob with ``layertar.LayerReader`` (decompression,
tar entries, the diff id) and writes every entry itself -- never
``tarfile.extractall``.

Two modes, one per snapshotter, and a third for ``docker cp``:

    overlay   DEST is empty and will hold this layer alone (an overlayfs
              lower dir): ``.wh.NAME`` becomes the whiteout char device 0/0
              NAME, ``.wh..wh..opq`` the xattr trusted.overlay.opaque=y on
              its directory.
    apply     DEST holds the parent's full tree (the vfs snapshotter):
              ``.wh.NAME`` removes NAME, ``.wh..wh..opq`` removes its
              directory's children that this layer did not write.  As in the
              OCI spec, a whiteout never hides what its own layer wrote.
    copy      ``extract_archive``: an archive into a directory of a container
              (``docker cp``, PUT /containers/{id}/archive): names are
              literal (``.wh.`` means nothing), an existing symlink or file
              on the way is an error (never replaced, never followed), owners
              are OWNER unless None (``cp -a``), the "./" entry leaves DEST
              as it is (docker's Unpack skips it), and with
              ``no_overwrite_dir_non_dir`` a directory never replaces a
              non-directory or the other way round.

Safety.  A name longer than 4095 bytes or deeper than 256 components is
refused: no real image comes near, and trees thousands deep break whatever
walks them by recursion.  Every name is resolved lexically (a leading ``./``
is fine, an absolute name or a ``..`` that climbs out of DEST is refused) and
created through a directory fd reached by ``openat(O_NOFOLLOW | O_DIRECTORY)``
from DEST one component at a time, so no write ever goes through a symlink.  A
parent that is a symlink or a file this layer wrote is refused (the "symlink,
then write through it" attack); in apply mode a non-directory a lower layer
left there is replaced by a directory, which is what the overlay view of the
same layers shows.  Hardlinks must name something already in DEST; device
nodes are refused unless ``allow_devices``; xattrs ``trusted.overlay.*``
from the tar are dropped (overlayfs's own metadata is ours to write).  On an
error DEST holds a partial layer: the caller discards it.

Metadata: numeric owners (lchown), then modes (setuid, setgid and sticky
survive because chmod comes after chown), xattrs from PAX ``SCHILY.xattr.*``
(those the filesystem refuses with ENOTSUP or EPERM are skipped), mtimes;
directories get their mode and mtime last, once nothing more is written in
them.  Not running as root, ownership the kernel refuses is left as it is.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import BinaryIO

from sampan.errors import InvalidArgument, Unsupported
from sampan.image.layertar import LayerReader, TarEntry
from sampan.image.treecopy import remove_tree

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SKIP_XATTR_ERRNOS = frozenset((errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES))
# Failures that come from the entry itself, not from the filesystem under DEST.
_BAD_INPUT_ERRNOS = frozenset((errno.ENAMETOOLONG, errno.EEXIST, errno.ENOTDIR, errno.EISDIR,
                               errno.ELOOP, errno.EINVAL, errno.EMLINK))  # fmt: skip
# The longest entry name (PATH_MAX less the nul) and the deepest: far past any real
# image, and a bound on the directory fds the unpacker holds (one a level).
NAME_MAX_BYTES = 4095
NAME_MAX_DEPTH = 256
_WH = ".wh."
_WH_META = ".wh..wh."
_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"


def unpack_layer(
    stream: BinaryIO,
    dest: str,
    *,
    mode: str,
    label: str,
    allow_devices: bool = False,
) -> tuple[str, int]:
    """Unpack the layer blob STREAM into the directory DEST.

    Returns ``(diff_id, size)``: the sha256 digest of the uncompressed tar
    stream and the bytes of regular-file content written.  Bad input raises
    InvalidArgument naming LABEL and the entry; a compression sampan cannot
    read raises Unsupported; filesystem failures (a full disk) raise OSError
    naming LABEL.  On any error the caller removes DEST.
    """
    if mode not in ("overlay", "apply"):
        raise InvalidArgument(f"unpack mode {mode!r}: expected 'overlay' or 'apply'")
    with LayerReader(stream, label) as layer:
        unpacker = _Unpacker(os.open(dest, _DIR_FLAGS), mode, label, allow_devices)
        try:
            for entry in layer.entries():
                unpacker.entry(entry, layer)
            unpacker.finish()
            diff_id = layer.finish()
        finally:
            unpacker.close()
    return diff_id, unpacker.size


def extract_archive(
    stream: BinaryIO,
    dest_fd: int,
    *,
    label: str,
    owner: tuple[int, int] | None = (0, 0),
    no_overwrite_dir_non_dir: bool = False,
    allow_devices: bool = False,
) -> int:
    """Extract the tar archive STREAM (plain or compressed) into the directory open at
    DEST_FD (not closed), in copy mode; returns the bytes of file content written.
    Errors as ``unpack_layer``'s; what was extracted before one stays."""
    with LayerReader(stream, label) as layer:
        unpacker = _Unpacker(os.dup(dest_fd), "copy", label, allow_devices)
        unpacker.owner = owner
        unpacker.no_overwrite = no_overwrite_dir_non_dir
        try:
            for entry in layer.entries():
                unpacker.entry(entry, layer)
            unpacker.finish()
            layer.finish()
        finally:
            unpacker.close()
    return unpacker.size


# -- writing entries -----------------------------------------------------------------


class _Unpacker:
    """Writes entries under one directory fd; keeps the open directories of the last
    path (tar streams are depth-first, so most entries reuse them)."""

    def __init__(self, dest_fd: int, mode: str, label: str, allow_devices: bool) -> None:
        self.root = dest_fd
        self.apply = mode == "apply"
        self.copy = mode == "copy"
        self.owner: tuple[int, int] | None = None  # copy mode: every entry's owner
        self.no_overwrite = False  # copy mode: no directory for a file or the reverse
        self.label = label
        self.allow_devices = allow_devices
        self.is_root = os.geteuid() == 0
        self.size = 0
        self.written: set[str] = set()
        self.whiteouts: set[str] = set()  # overlay mode: the 0/0 devices made here
        self.dirs: dict[str, tuple[int, int]] = {}  # path -> (mode, mtime), applied last
        self._stack: list[tuple[str, int]] = []

    # - errors -

    def _bad(self, name: str, why: str) -> InvalidArgument:
        if self.copy:
            return InvalidArgument(f"{self.label}: {name}: {why}")
        return InvalidArgument(f"layer {self.label}: {name}: {why}")

    def _split(self, name: str, entry: str | None = None) -> list[str]:
        """NAME's components, resolved lexically; ENTRY names a hardlink whose target it is."""
        where, what = (name, "entry name") if entry is None else (entry, f"hardlink target {name}")
        if "\0" in name:
            raise self._bad(where, f"{what} holds a nul byte")
        size = len(os.fsencode(name))
        if size > NAME_MAX_BYTES:
            raise self._bad(_short(where), f"path too long: {what} of {size} bytes, at most "
                            f"{NAME_MAX_BYTES}")  # fmt: skip
        if name.startswith("/"):
            raise self._bad(where, f"{what} is absolute")
        parts: list[str] = []
        for part in name.split("/"):
            if part == ".." and parts:
                parts.pop()
            elif part == "..":
                raise self._bad(where, f"{what} escapes the layer")
            elif part not in ("", "."):
                parts.append(part)
        if len(parts) > NAME_MAX_DEPTH:
            raise self._bad(_short(where), f"path too deep: {what} of {len(parts)} components, "
                            f"at most {NAME_MAX_DEPTH}")  # fmt: skip
        return parts

    # - directory fds -

    def _forget(self, parts: list[str]) -> None:
        """Close the cached fds of PARTS and below: that path is being removed."""
        n = len(parts)
        stack = self._stack
        if n and len(stack) >= n and all(stack[i][0] == parts[i] for i in range(n)):
            for _, fd in stack[n - 1 :]:
                os.close(fd)
            del stack[n - 1 :]

    def _dir(self, parts: list[str], create: bool, name: str) -> int | None:
        """An fd of DEST/PARTS, reached without following symlinks; missing
        directories made when CREATE, else None."""
        stack = self._stack
        i = 0
        n = min(len(stack), len(parts))
        while i < n and stack[i][0] == parts[i]:
            i += 1
        for _, fd in stack[i:]:
            os.close(fd)
        del stack[i:]
        fd = stack[-1][1] if stack else self.root
        for j in range(i, len(parts)):
            sub = self._open_dir(fd, parts, j, create, name)
            if sub is None:
                return None
            stack.append((parts[j], sub))
            fd = sub
        return fd

    def _open_dir(
        self, parent: int, parts: list[str], j: int, create: bool, name: str
    ) -> int | None:
        part = parts[j]
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            path = "/".join(parts[: j + 1])
            if path in self.written or self.copy:
                st = os.lstat(part, dir_fd=parent)
                kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
                raise self._bad(name, f"parent {path} is {kind}") from None
            if not create:
                return None
            # A whiteout made here, or (apply mode) a lower layer's non-directory:
            # replaced by a directory, as the overlay view of the layers shows it.
            os.unlink(part, dir_fd=parent)
        os.mkdir(part, 0o755, dir_fd=parent)
        fd = os.open(part, _DIR_FLAGS, dir_fd=parent)
        os.chmod(fd, 0o755)  # whatever the umask
        path = "/".join(parts[: j + 1])
        self.written.add(path)
        if path in self.whiteouts:
            self.whiteouts.discard(path)
            self._set_opaque(fd, name)
        return fd

    def _set_opaque(self, fd: int, name: str) -> None:
        try:
            os.setxattr(fd, OPAQUE_XATTR, b"y")
        except OSError as exc:
            raise OSError(
                exc.errno, f"layer {self.label}: {name}: set {OPAQUE_XATTR}: {exc.strerror}"
            ) from None

    def _remove(self, parent: int, part: str, parts: list[str]) -> None:
        """Remove DEST/PARTS (named PART in PARENT), a directory with all it holds."""
        self._forget(parts)
        if self.dirs:
            path = "/".join(parts)
            below = path + "/"
            for gone in [p for p in self.dirs if p == path or p.startswith(below)]:
                del self.dirs[gone]
        try:
            st = os.lstat(part, dir_fd=parent)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            remove_tree(part, dir_fd=parent)  # a lower layer of an older sampan: any depth
        else:
            os.unlink(part, dir_fd=parent)

    # - entries -

    def entry(self, e: TarEntry, layer: LayerReader) -> None:
        try:
            self._entry(e, layer)
        except (InvalidArgument, Unsupported):
            raise
        except (ValueError, OverflowError) as exc:  # a nul byte, an owner past 2**32
            raise self._bad(e.name, str(exc)) from None
        except OSError as exc:
            if exc.errno in _BAD_INPUT_ERRNOS:
                raise self._bad(e.name, exc.strerror or str(exc)) from None
            raise OSError(
                exc.errno, f"layer {self.label}: {e.name}: {exc.strerror or exc}"
            ) from None

    def _entry(self, e: TarEntry, layer: LayerReader) -> None:
        parts = self._split(e.name)
        kind = e.type
        if self.owner is not None:
            e.uid, e.gid = self.owner
        if self.copy:
            pass  # names are literal: no whiteouts, no aufs metadata
        elif _WH_META in e.name and (
            any(p.startswith(_WH_META) for p in parts[:-1])
            or (parts and parts[-1].startswith(_WH_META) and parts[-1] != _OPAQUE)
        ):
            return  # aufs metadata (.wh..wh.plnk, ...)
        if not parts:
            if kind != b"5":
                raise self._bad(e.name, "replaces the layer's root directory")
            if not self.copy:  # copy mode, as docker's Unpack: the destination stays as it is
                self._metadata_dir(self.root, e, "")
            return
        last = parts[-1]
        if last.startswith(_WH) and not self.copy:
            if last == _OPAQUE:
                self._opaque(parts[:-1], e)
            else:
                self._whiteout(parts, last[len(_WH) :], e)
            return
        parent = self._dir(parts[:-1], True, e.name)
        assert parent is not None
        path = "/".join(parts)
        if kind == b"0":
            self._file(parent, last, parts, e, layer)
        elif kind == b"5":
            self._mkdir(parent, last, parts, e)
        elif kind == b"2":
            self._make(parent, last, parts, lambda: os.symlink(e.linkname, last, dir_fd=parent))
            self._metadata_link(parent, last, e)
        elif kind == b"1":
            self._hardlink(parent, last, parts, e)
        elif kind == b"6":
            self._make(parent, last, parts, lambda: os.mkfifo(last, 0o600, dir_fd=parent))
            self._metadata_node(parent, last, e)
        elif kind in (b"3", b"4"):
            if not self.allow_devices:
                where = "here" if self.copy else "in layers"
                raise self._bad(e.name, f"device nodes are not allowed {where}")
            fmt = stat.S_IFCHR if kind == b"3" else stat.S_IFBLK
            dev = os.makedev(e.devmajor, e.devminor)
            self._make(parent, last, parts, lambda: os.mknod(last, fmt | 0o600, dev, dir_fd=parent))
            self._metadata_node(parent, last, e)
        elif kind == b"S":
            raise Unsupported(f"layer {self.label}: {e.name}: sparse files are not supported")
        else:
            raise self._bad(e.name, f"unsupported tar entry type {kind!r}")
        self.written.add(path)

    def _make(self, parent: int, last: str, parts: list[str], create: Callable[[], object]) -> None:
        """CREATE the name LAST; whatever was there (a directory too) is removed first."""
        try:
            create()
        except FileExistsError:
            self._replace(parent, last, parts)
            create()

    def _replace(self, parent: int, last: str, parts: list[str], is_dir: bool = False) -> None:
        path = "/".join(parts)
        if self.no_overwrite:
            there = stat.S_ISDIR(os.lstat(last, dir_fd=parent).st_mode)
            if there and not is_dir:
                raise self._bad(path, "cannot overwrite a directory with a non-directory")
            if is_dir and not there:
                raise self._bad(path, "cannot overwrite a non-directory with a directory")
        self._remove(parent, last, parts)
        self.whiteouts.discard(path)

    def _file(
        self, parent: int, last: str, parts: list[str], e: TarEntry, layer: LayerReader
    ) -> None:
        try:
            fd = os.open(last, _FILE_FLAGS, 0o600, dir_fd=parent)
        except FileExistsError:
            self._replace(parent, last, parts)
            fd = os.open(last, _FILE_FLAGS, 0o600, dir_fd=parent)
        try:
            layer.copy_to(fd)
            self._chown(fd, e)
            os.chmod(fd, e.mode)
            if e.xattrs:
                self._xattrs(fd, e)
            os.utime(fd, ns=(e.mtime, e.mtime))
        finally:
            os.close(fd)
        self.size += e.size

    def _mkdir(self, parent: int, last: str, parts: list[str], e: TarEntry) -> None:
        path = "/".join(parts)
        opaque = False
        try:
            os.mkdir(last, 0o700, dir_fd=parent)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(last, dir_fd=parent).st_mode):
                opaque = path in self.whiteouts
                self._replace(parent, last, parts, is_dir=True)
                os.mkdir(last, 0o700, dir_fd=parent)
        fd = os.open(last, _DIR_FLAGS, dir_fd=parent)
        self._stack.append((last, fd))  # the next entries are most likely inside it
        if opaque:
            self._set_opaque(fd, e.name)
        self._metadata_dir(fd, e, path)

    def _metadata_dir(self, fd: int, e: TarEntry, path: str) -> None:
        self._chown(fd, e)
        if e.xattrs:
            self._xattrs(fd, e)
        self.dirs[path] = (e.mode, e.mtime)

    def _metadata_link(self, parent: int, last: str, e: TarEntry) -> None:
        try:
            os.chown(last, e.uid, e.gid, dir_fd=parent, follow_symlinks=False)
        except PermissionError:
            if self.is_root:
                raise
        if e.xattrs:
            self._xattrs(f"/proc/self/fd/{parent}/{last}", e)
        os.utime(last, ns=(e.mtime, e.mtime), dir_fd=parent, follow_symlinks=False)

    def _metadata_node(self, parent: int, last: str, e: TarEntry) -> None:
        """A fifo or device made a moment ago in PARENT (never opened: it may block)."""
        self._metadata_link(parent, last, e)
        os.chmod(last, e.mode, dir_fd=parent)

    def _chown(self, fd: int, e: TarEntry) -> None:
        try:
            os.fchown(fd, e.uid, e.gid)
        except PermissionError:
            if self.is_root:
                raise

    def _xattrs(self, target: int | str, e: TarEntry) -> None:
        follow = not isinstance(target, str)
        for key, value in e.xattrs.items():
            if key.startswith("trusted.overlay."):
                continue
            try:
                os.setxattr(target, key, value, follow_symlinks=follow)
            except OSError as exc:
                if exc.errno not in _SKIP_XATTR_ERRNOS:
                    raise

    def _hardlink(self, parent: int, last: str, parts: list[str], e: TarEntry) -> None:
        target = self._split(e.linkname, e.name)
        if not target:
            raise self._bad(e.name, "hardlink to the layer's root directory")
        if target == parts:
            return
        tparent = self._walk(target[:-1], e.name)
        try:
            if tparent is None:
                raise self._bad(e.name, f"hardlink target {e.linkname} is not in the layer")
            try:
                st = os.lstat(target[-1], dir_fd=tparent)
            except FileNotFoundError:
                raise self._bad(
                    e.name, f"hardlink target {e.linkname} is not in the layer"
                ) from None
            if stat.S_ISDIR(st.st_mode):
                raise self._bad(e.name, f"hardlink target {e.linkname} is a directory")
            try:
                os.link(target[-1], last, src_dir_fd=tparent, dst_dir_fd=parent,
                        follow_symlinks=False)  # fmt: skip
            except FileExistsError:
                mine = os.lstat(last, dir_fd=parent)
                if (mine.st_dev, mine.st_ino) == (st.st_dev, st.st_ino):
                    return
                self._replace(parent, last, parts)
                os.link(target[-1], last, src_dir_fd=tparent, dst_dir_fd=parent,
                        follow_symlinks=False)  # fmt: skip
        finally:
            if tparent is not None and tparent != self.root:
                os.close(tparent)

    def _walk(self, parts: list[str], name: str) -> int | None:
        """A fresh fd of DEST/PARTS (the cached ones stay as they are), or None when
        a component is missing; a symlink on the way is refused."""
        fd = self.root
        for i, part in enumerate(parts):
            try:
                sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                sub = -1
                if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                    if fd != self.root:
                        os.close(fd)
                    raise self._bad(name, f"{'/'.join(parts[: i + 1])} is not a directory")
                if exc.errno != errno.ENOENT:
                    raise
            if fd != self.root:
                os.close(fd)
            if sub < 0:
                return None
            fd = sub
        return fd

    # - whiteouts -

    def _whiteout(self, parts: list[str], name: str, e: TarEntry) -> None:
        if not name or name in (".", ".."):
            raise self._bad(e.name, "whiteout without a name")
        parts = [*parts[:-1], name]
        path = "/".join(parts)
        if self.apply:
            parent = self._dir(parts[:-1], False, e.name)
            if parent is None:
                return
            if path in self.written:  # this layer's own: hide only what lower layers put in it
                if stat.S_ISDIR(os.lstat(name, dir_fd=parent).st_mode):
                    self._hide_lower_children(parts, e)
                return
            self._remove(parent, name, parts)
            return
        parent = self._dir(parts[:-1], True, e.name)
        assert parent is not None
        try:
            os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
        except FileExistsError:
            if stat.S_ISDIR(os.lstat(name, dir_fd=parent).st_mode):
                fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
                try:
                    self._set_opaque(fd, e.name)
                finally:
                    os.close(fd)
            return
        self.whiteouts.add(path)
        self._metadata_link(parent, name, e)

    def _opaque(self, parts: list[str], e: TarEntry) -> None:
        fd = self._dir(parts, True, e.name)
        assert fd is not None
        if self.apply:
            self._hide_lower_children(parts, e)
        else:
            self._set_opaque(fd, e.name)

    def _hide_lower_children(self, parts: list[str], e: TarEntry) -> None:
        """Apply mode: remove the children of DEST/PARTS this layer did not write."""
        fd = self._dir(parts, False, e.name)
        if fd is None:
            return
        prefix = "/".join(parts) + "/" if parts else ""
        for child in os.listdir(fd):
            if prefix + child not in self.written:
                self._remove(fd, child, [*parts, child])  # leaves FD (of PARTS) open

    # - the end -

    def finish(self) -> None:
        """Directories' modes and mtimes, deepest first, once nothing more is written."""
        for path in sorted(self.dirs, reverse=True):
            mode, mtime = self.dirs[path]
            fd = self._dir(path.split("/"), False, path) if path else self.root
            if fd is None:
                continue
            os.chmod(fd, mode)
            os.utime(fd, ns=(mtime, mtime))

    def close(self) -> None:
        for _, fd in self._stack:
            os.close(fd)
        self._stack.clear()
        os.close(self.root)


def _short(name: str) -> str:
    """NAME cut for an error message."""
    return name if len(name) <= 80 else name[:80] + "..."
