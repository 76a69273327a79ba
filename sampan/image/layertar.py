"""The layer tar format: a directory written as a layer, and a layer blob read as entries.

Writing.
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

Reading (``LayerReader``, for ``unpack_layer``).  A blob is a tar stream,
gzip-compressed (or plain, bzip2 or xz; zstd is refused: the standard
library cannot read it), read once: decompressed, hashed (the diff id
covers the whole uncompressed stream, padding after the archive included)
and parsed.  The tar parser is ours (ustar, PAX, GNU long names -- what Go's
archive/tar writes for docker): ``tarfile``'s stream mode takes a corrupt
or truncated header after the first member for the end of the archive, and
its header parsing was 40% of the unpack time of a large layer.  The end of
the archive (a zero block) must be there: a stream cut at a header boundary
is truncated, not complete.  Memory is bounded whatever the blob
declares: a PAX header or GNU long name holds at most 1 MiB, the PAX
headers before one entry 1 MiB together, an entry at most 128 xattrs.
"""

from __future__ import annotations

import hashlib
import os
import queue
import stat
import struct
import threading
import zlib
from collections.abc import Callable, Generator, Iterator
from typing import BinaryIO, Protocol

from sampan.errors import InvalidArgument, Unsupported
from sampan.image.treecopy import ident, parent_dir

_BLOCK = 512
_ZERO = bytes(_BLOCK)
_READ = 1 << 20  # compressed bytes read at a time
_OUT = 4 << 20  # decompressed bytes produced at a time (bounds memory on a gzip bomb)
_META_MAX = 1 << 20  # largest PAX header or GNU long name, and PAX headers of one entry
XATTRS_MAX = 128  # xattrs of one entry (a file has a handful; ext4 holds a block of them)
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
        writer.directory(root, src_dir)
    finally:
        os.close(root)
    writer.finish()
    return "sha256:" + writer.digest.hexdigest()


def write_entry(
    dir_fd: int,
    name: str,
    arcname: bytes,
    out: BinaryIO,
    *,
    where: str = "",
    opaque_devices: frozenset[int] = frozenset(),
) -> int:
    """Write NAME of the directory open at DIR_FD as tar entries named ARCNAME (a
    directory: ARCNAME/ then everything under it as ARCNAME/...; NAME "" is DIR_FD
    itself), in layer order, no whiteouts converted, no end-of-archive blocks (``finish``
    them with ``end_archive``).  Symlinks are entries, never followed.  Returns the
    bytes of file content written.  A directory on a device in OPAQUE_DEVICES (procfs,
    sysfs... of a running container) is written without what it holds.  ``docker cp``
    uses it."""
    writer = _Writer(out, False)
    writer.opaque_devices = opaque_devices
    st = os.fstat(dir_fd) if not name else os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        writer._entry(dir_fd, name, arcname, st, where)
    else:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd) if name else os.dup(dir_fd)
        try:
            top = arcname.rstrip(b"/") + b"/"
            writer.header(top, b"5", st, xattrs=writer._xattrs(fd, arcname))
            if st.st_dev not in opaque_devices:
                writer.directory(fd, where, prefix=top)
        finally:
            os.close(fd)
    writer._flush()
    return writer.content


def write_tree(root_fd: int, out: BinaryIO, *, where: str = "") -> None:
    """The tree under the directory open at ROOT_FD as a whole tar archive (its root not
    an entry, no whiteouts converted): ``docker export``."""
    writer = _Writer(out, False)
    writer.directory(root_fd, where)
    writer.finish()


def end_archive(out: BinaryIO) -> None:
    """The two zero blocks that end a tar archive."""
    out.write(bytes(2 * _BLOCK))


class _Writer:
    def __init__(self, out: BinaryIO, overlay_whiteouts: bool) -> None:
        self.out = out
        self.overlay = overlay_whiteouts
        self.digest = hashlib.sha256()
        self.buf = bytearray()
        self.links: dict[tuple[int, int], bytes] = {}
        self.content = 0  # bytes of file content written
        self.opaque_devices: frozenset[int] = frozenset()  # directories written empty

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

    def directory(self, root: int, where: str, prefix: bytes = b"") -> None:
        """Every entry under the directory open at ROOT (the tree WHERE), depth first:
        a loop, not recursion, holding one directory fd besides ROOT (treecopy.py);
        names start with PREFIX."""
        # (the names left, the tar path prefix, the ident) of each directory down to FD's
        levels = [(_sorted_names(root), prefix, ident(os.fstat(root)))]
        fd = root
        try:
            while levels:
                names, prefix, _ = levels[-1]
                while names:
                    name = names.pop()
                    path = prefix + os.fsencode(name)
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if not stat.S_ISDIR(st.st_mode):
                        self._entry(fd, name, path, st, where)
                        continue
                    sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    try:
                        xattrs = self._xattrs(sub, path)
                        self.header(path + b"/", b"5", st, xattrs=xattrs)
                        if st.st_dev in self.opaque_devices:
                            os.close(sub)
                            continue
                        if self.overlay and self._opaque(sub):
                            self.header(path + b"/.wh..wh..opq", b"0", st, mode=st.st_mode & 0o777)
                        levels.append((_sorted_names(sub), path + b"/", ident(os.fstat(sub))))
                    except BaseException:
                        os.close(sub)
                        raise
                    if fd != root:
                        os.close(fd)
                    fd = sub
                    break
                else:
                    levels.pop()
                    up = -1
                    if len(levels) > 1:
                        up = parent_dir(fd, levels[-1][2])
                    if fd != root:
                        os.close(fd)
                    fd = up if up >= 0 else root
        finally:
            if fd != root:
                os.close(fd)

    def _entry(self, fd: int, name: str, path: bytes, st: os.stat_result, where: str) -> None:
        """One entry that is not a directory (NAME in FD, PATH in the tar)."""
        mode = st.st_mode
        proc = f"/proc/self/fd/{fd}/{name}"
        if self.overlay and stat.S_ISCHR(mode) and st.st_rdev == 0:
            head, _, base = path.rpartition(b"/")
            whiteout = (head + b"/" if head else b"") + b".wh." + base
            self.header(whiteout, b"0", st, mode=0o600)
            return
        if stat.S_ISSOCK(mode):
            return
        if st.st_nlink > 1:
            first = self.links.setdefault((st.st_dev, st.st_ino), path)
            if first != path:
                self.header(path, b"1", st, linkname=first, xattrs=self._xattrs(proc, path))
                return
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
            raise InvalidArgument(
                f"{where}/{os.fsdecode(path)}: file type {mode:o} cannot go into a layer"
            )

    def _opaque(self, fd: int) -> bool:
        try:
            return os.getxattr(fd, _OPAQUE) == b"y"
        except OSError:
            return False

    def _file(self, dir_fd: int, name: str, path: bytes, st: os.stat_result) -> None:
        # Opened for reading only once an O_PATH fd shows the regular file that was stat'ed:
        # a running container can swap it for a fifo (the open would block) or a device.
        where = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            now = os.fstat(where)
            if not stat.S_ISREG(now.st_mode) or ident(now) != ident(st):
                raise InvalidArgument(f"{os.fsdecode(path)}: file replaced while written")
            fd = os.open(f"/proc/self/fd/{where}", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(where)
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
            self.content += size
            if left or os.read(fd, 1):
                raise InvalidArgument(f"{os.fsdecode(path)}: file changed size while written")
            self._emit(bytes(-size % _BLOCK))
        finally:
            os.close(fd)


def _sorted_names(fd: int) -> list[str]:
    """FD's names, the first to write last (they are popped): as bytes, in order."""
    return sorted(os.listdir(fd), key=os.fsencode, reverse=True)


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


# -- reading: decompression ----------------------------------------------------


def _decompressed(raw: BinaryIO, label: str) -> Iterator[bytes]:
    """The tar bytes of RAW, whichever compression its magic number names."""
    head = raw.read(_READ)
    while 0 < len(head) < 6:
        more = raw.read(_READ)
        if not more:
            break
        head += more
    if head[:2] == b"\x1f\x8b":
        return _gunzip(raw, head, label)
    if head[:4] == b"\x28\xb5\x2f\xfd":
        raise Unsupported(f"layer {label}: zstd-compressed layers are not supported")
    if head[:3] == b"BZh":
        import bz2

        return _decompress(raw, head, bz2.BZ2Decompressor, label, "bzip2")
    if head[:6] == b"\xfd7zXZ\x00":
        import lzma

        return _decompress(raw, head, lzma.LZMADecompressor, label, "xz")
    return _plain(raw, head)


def _plain(raw: BinaryIO, head: bytes) -> Iterator[bytes]:
    if head:
        yield head
    while chunk := raw.read(_READ):
        yield chunk


def _gunzip(raw: BinaryIO, data: bytes, label: str) -> Iterator[bytes]:
    """gzip members one after the other (pigz and others write several)."""
    d = zlib.decompressobj(31)
    while True:
        try:
            out = d.decompress(data, _OUT)
        except zlib.error as exc:
            raise InvalidArgument(f"layer {label}: corrupt gzip stream: {exc}") from None
        if out:
            yield out
        data = d.unconsumed_tail
        if d.eof:
            data = d.unused_data or raw.read(_READ)
            if not data:
                return
            if data[:2] != b"\x1f\x8b" and len(data) >= 2:
                raise InvalidArgument(f"layer {label}: trailing data after the gzip stream")
            d = zlib.decompressobj(31)
        elif not data:
            data = raw.read(_READ)
            if not data:
                try:
                    rest = d.flush()
                except zlib.error as exc:
                    raise InvalidArgument(f"layer {label}: corrupt gzip stream: {exc}") from None
                if rest:
                    yield rest
                if not d.eof:
                    raise InvalidArgument(f"layer {label}: truncated gzip stream")
                return


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = -1, /) -> bytes: ...


def _decompress(
    raw: BinaryIO, data: bytes, make: Callable[[], _Decompressor], label: str, kind: str
) -> Iterator[bytes]:
    """bzip2 or xz, streams one after the other."""
    d = make()
    while True:
        try:
            out = d.decompress(data, _OUT)
        except Exception as exc:  # OSError (bz2), LZMAError, EOFError
            raise InvalidArgument(f"layer {label}: corrupt {kind} stream: {exc}") from None
        if out:
            yield out
        data = b""
        if d.eof:
            data = d.unused_data or raw.read(_READ)
            if not data:
                return
            d = make()
        elif d.needs_input:
            data = raw.read(_READ)
            if not data:
                raise InvalidArgument(f"layer {label}: truncated {kind} stream")


_END = object()


def _prefetched(chunks: Iterator[bytes], digest: hashlib._Hash) -> Generator[bytes, None, None]:
    """CHUNKS produced and hashed by a second thread, a few chunks ahead.

    zlib and hashlib release the GIL, so decompression and hashing overlap the
    writing (a third faster on a large layer).  Closing the generator stops
    the thread (after the read it may be blocked in).
    """
    ahead: queue.Queue[object] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                digest.update(chunk)
                if not put(chunk):
                    return
            put(_END)
        except BaseException as exc:
            put(exc)

    worker = threading.Thread(target=produce, name="unpack-read", daemon=True)
    worker.start()
    try:
        while True:
            item = ahead.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        stop.set()
        worker.join()


class _Reader:
    """Exact reads over the decompressed chunks."""

    __slots__ = ("_buf", "_chunks", "_label", "_pos", "total")

    def __init__(self, chunks: Iterator[bytes], label: str) -> None:
        self._chunks = chunks
        self._label = label
        self._buf = b""
        self._pos = 0
        self.total = 0

    @property
    def offset(self) -> int:
        return self.total - (len(self._buf) - self._pos)

    def _more(self) -> None:
        for chunk in self._chunks:
            if chunk:
                self.total += len(chunk)
                self._buf = chunk
                self._pos = 0
                return
        raise InvalidArgument(f"layer {self._label}: truncated tar stream")

    def read(self, n: int) -> bytes:
        end = self._pos + n
        if end <= len(self._buf):
            data = self._buf[self._pos : end]
            self._pos = end
            return data
        parts = [self._buf[self._pos :]]
        need = n - len(parts[0])
        while need:
            self._more()
            part = self._buf[:need]
            parts.append(part)
            need -= len(part)
            self._pos = len(part)
        return b"".join(parts)

    def write_to(self, fd: int, n: int) -> None:
        """Copy the next N bytes to FD."""
        while n:
            if self._pos == len(self._buf):
                self._more()
            k = min(n, len(self._buf) - self._pos)
            view = memoryview(self._buf)[self._pos : self._pos + k]
            while view:
                view = view[os.write(fd, view) :]
            self._pos += k
            n -= k

    def skip(self, n: int) -> None:
        while n:
            if self._pos == len(self._buf):
                self._more()
            k = min(n, len(self._buf) - self._pos)
            self._pos += k
            n -= k

    def drain(self) -> None:
        """Read what follows the end of the archive (the diff id covers it)."""
        for _ in self._chunks:
            pass
        self._buf = b""
        self._pos = 0


# -- reading: the tar framing -----------------------------------------------------


# name mode uid gid size mtime chksum type linkname magic+version uname gname major minor prefix
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")


class _BadHeader(Exception):
    pass


def _number(field: bytes) -> int:
    """An octal field, or GNU base-256 (first byte 0x80, or 0xff for a negative value)."""
    if field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 8)) if field[0] == 0xFF else value
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise _BadHeader(f"bad number {field!r}") from None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


class TarEntry:
    """One member of a layer tar, its PAX and GNU long-name headers applied.

    ``type`` is the tar typeflag, regular files always b"0"; directories' names
    lose their trailing slash; ``size`` is the data that follows (0 for all
    but regular files); ``mtime`` is in nanoseconds; ``xattrs`` come from PAX
    ``SCHILY.xattr.*`` records.
    """

    __slots__ = ("devmajor", "devminor", "gid", "linkname", "mode", "mtime", "name", "size",
                 "type", "uid", "xattrs")  # fmt: skip

    def __init__(self, block: bytes) -> None:
        (name, mode, uid, gid, size, mtime, chksum, kind, linkname, magic, _uname, _gname,
         major, minor, prefix) = _HEADER.unpack(block)  # fmt: skip
        expected = _number(chksum)
        unsigned = sum(block) - sum(chksum) + 256  # the checksum field counts as spaces
        if expected != unsigned and expected != unsigned - 256 * sum(b > 127 for b in block):
            raise _BadHeader("bad checksum")
        self.name = _text(name)
        if magic == b"ustar\x0000" and prefix[0]:
            self.name = _text(prefix) + "/" + self.name
        self.type: bytes = kind
        if kind == b"\0" and self.name.endswith("/"):
            self.type = b"5"  # old tars: a directory is a regular file named "dir/"
        elif kind in (b"\0", b"7"):  # old regular files; contiguous files
            self.type = b"0"
        self.linkname = _text(linkname)
        self.mode = _number(mode) & 0o7777
        self.uid = _number(uid)
        self.gid = _number(gid)
        self.size = _number(size)
        self.mtime = _number(mtime) * 1_000_000_000  # ns
        self.devmajor = _number(major) if major[0] else 0
        self.devminor = _number(minor) if minor[0] else 0
        self.xattrs: dict[str, bytes] = {}


class LayerReader:
    """A layer blob read once, as tar entries, hashed on the way (the diff id).

        with LayerReader(blob, "busybox layer 3a7f") as layer:
            for entry in layer.entries():
                if entry.type == b"0":
                    layer.copy_to(fd)   # else its data is skipped
            diff_id = layer.finish()

    Bad input raises InvalidArgument naming LABEL (corrupt or truncated
    compression or tar, a corrupt header); zstd raises Unsupported.  A
    second thread decompresses and hashes a few chunks ahead: zlib and hashlib
    release the GIL, so that overlaps the caller's writing.
    """

    def __init__(self, stream: BinaryIO, label: str) -> None:
        self.label = label
        self._digest = hashlib.sha256()
        self._chunks = _prefetched(_decompressed(stream, label), self._digest)
        self._reader = _Reader(self._chunks, label)
        self._left = 0  # data (and padding) of the current entry not read yet
        self._data = 0  # data of the current entry not read yet

    def __enter__(self) -> LayerReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the read-ahead thread (after the read it may be blocked in)."""
        self._chunks.close()

    def copy_to(self, fd: int) -> None:
        """Write the current entry's data to FD."""
        self._reader.write_to(fd, self._data)
        self._left -= self._data
        self._data = 0

    def finish(self) -> str:
        """Read to the end of the stream; the diff id (``sha256:...`` of the tar)."""
        self._reader.drain()
        return "sha256:" + self._digest.hexdigest()

    def entries(self) -> Iterator[TarEntry]:
        reader, label = self._reader, self.label
        pax: dict[str, bytes] = {}
        pax_bytes = 0  # of the PAX headers before the next entry, together
        long_name: str | None = None
        long_link: str | None = None
        while True:
            reader.skip(self._left)
            self._left = self._data = 0
            offset = reader.offset
            block = reader.read(_BLOCK)
            if block == _ZERO:
                return
            try:
                entry = TarEntry(block)
            except _BadHeader as exc:
                raise InvalidArgument(
                    f"layer {label}: corrupt tar header at offset {offset}: {exc}"
                ) from None
            except UnicodeError as exc:
                raise InvalidArgument(f"layer {label}: undecodable tar header: {exc}") from None
            kind = entry.type
            if kind in (b"x", b"g", b"L", b"K"):
                if not 0 <= entry.size <= _META_MAX:
                    raise InvalidArgument(
                        f"layer {label}: tar header at offset {offset} is {entry.size} bytes long"
                    )
                data = reader.read(entry.size)
                reader.skip(-entry.size % _BLOCK)
                if kind == b"x":
                    pax_bytes += entry.size
                    if pax_bytes > _META_MAX:
                        raise InvalidArgument(
                            f"layer {label}: pax headers up to offset {offset} add up to "
                            f"{pax_bytes} bytes for one entry, more than {_META_MAX}"
                        )
                    pax.update(_pax_records(data, label, offset))
                elif kind == b"L":
                    long_name = os.fsdecode(data.split(b"\0", 1)[0])
                elif kind == b"K":
                    long_link = os.fsdecode(data.split(b"\0", 1)[0])
                continue  # a global header ("g") changes nothing sampan keeps
            if long_name is not None:
                entry.name = long_name
            if long_link is not None:
                entry.linkname = long_link
            if pax:
                _apply_pax(entry, pax, label)
            elif entry.size < 0:
                raise InvalidArgument(f"layer {label}: {entry.name}: negative size")
            pax = {}
            pax_bytes = 0
            long_name = long_link = None
            if kind != b"0":
                entry.size = 0  # only regular files have data (as GNU tar and Go read it)
            if kind == b"5":
                entry.name = entry.name.rstrip("/") or entry.name
            self._data = entry.size
            self._left = entry.size + (-entry.size % _BLOCK)
            yield entry


def _pax_records(data: bytes, label: str, offset: int) -> Iterator[tuple[str, bytes]]:
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            length = 0
        end = pos + length
        if space < 0 or length <= 0 or end > len(data) or data[end - 1 : end] != b"\n":
            raise InvalidArgument(f"layer {label}: corrupt pax header at offset {offset}")
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq:
            raise InvalidArgument(f"layer {label}: corrupt pax header at offset {offset}")
        yield key.decode("utf-8", "surrogateescape"), value
        pos = end


def _ns(value: bytes) -> int:
    """A PAX time ("1700000000.5", "-1.25") in nanoseconds, exactly."""
    text = value.decode("ascii")
    negative = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(text)
    ns = int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])
    return -ns if negative else ns


def _apply_pax(entry: TarEntry, pax: dict[str, bytes], label: str) -> None:
    for key, value in pax.items():
        try:
            if key == "path":
                entry.name = os.fsdecode(value)
            elif key == "linkpath":
                entry.linkname = os.fsdecode(value)
            elif key == "size":
                entry.size = int(value)
            elif key == "uid":
                entry.uid = int(value)
            elif key == "gid":
                entry.gid = int(value)
            elif key == "mtime":
                entry.mtime = _ns(value)
            elif key == "SCHILY.devmajor":
                entry.devmajor = int(value)
            elif key == "SCHILY.devminor":
                entry.devminor = int(value)
            elif key.startswith("SCHILY.xattr."):
                entry.xattrs[key[13:]] = value
            elif key.startswith("GNU.sparse."):
                raise Unsupported(f"layer {label}: {entry.name}: sparse files are not supported")
        except ValueError:
            raise InvalidArgument(
                f"layer {label}: {entry.name}: bad pax value for {key!r}: {value[:40]!r}"
            ) from None
    if entry.size < 0 or entry.uid < 0 or entry.gid < 0:
        raise InvalidArgument(f"layer {label}: {entry.name}: negative size or owner")
    if len(entry.xattrs) > XATTRS_MAX:
        raise InvalidArgument(
            f"layer {label}: {entry.name[:80]}: {len(entry.xattrs)} xattrs, more than {XATTRS_MAX}"
        )
