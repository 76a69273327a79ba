"""The build context: sent by the CLI as a tar, extracted by the daemon, read by COPY.

Client side (``write_context_tar``), as docker's CLI sends a directory: an
uncompressed tar streamed out while the directory is walked (names sorted
as bytes, depth first), .dockerignore applied (ignore.py) with the
Dockerfile and .dockerignore always sent, owners 0:0 and no user names,
whole-second mtimes, directories as "name/", hard links as links to the
first name seen, symlinks as symlinks, fifos kept, sockets and device nodes
left out (the daemon refuses devices).  EXTRA files (a Dockerfile from
stdin or from outside the directory) are added under their names; one
named ``.dockerfile.*`` (docker's generated name) is also listed in the
.dockerignore sent, so the daemon keeps it from COPY.  A file that cannot be
read is docker's error ("error checking context: no permission to read
from '...'"), raised while the stream is written.

Daemon side: ``extract_context`` unpacks the tar (plain, gzip, bzip2 or xz,
told by its first bytes) into an empty directory through the image
unpacker's copy mode (image/unpack.py): no name leaves the directory, no
write goes through a symlink, hard links stay inside, device nodes are
refused.  ``read_dockerfile`` reads the Dockerfile (resolved in the context;
"Dockerfile" falls back to "dockerfile" as docker does); the builder then
calls ``apply_dockerignore``, which deletes what .dockerignore excludes --
the Dockerfile and .dockerignore too when it names them -- so COPY never
sees it.  (Docker's daemon only drops those two, trusting the client to
have applied the rest; for a context sent by docker's CLI the result is the
same.)

COPY's sources (``select``), as docker's classic builder: each is a path or
a ``filepath.Match`` glob relative to the context root (a leading "/" or
"./" is that root); a glob is matched against every path of its depth,
symlinked directories not entered.  A path that cleans to outside the
context ("../x") is refused, and so is a symlink, named or met on the way,
whose target leads out (an absolute target, or ".." above the root):
docker would quietly re-root it, here it is an error naming the symlink.  A
source that is itself a symlink is followed (its target is copied under the
symlink's name).  ``content_key`` is the sources' identity for the build
cache: names, modes, owners, symlink targets and file contents -- never
mtimes; a file's digest is never cached by inode (a fresh context's file
may get a deleted one's inode, size and mtime).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Generator

from sampan.errors import InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    from sampan.build.ignore import Matcher

__all__ = [
    "Source",
    "apply_dockerignore",
    "content_key",
    "extract_context",
    "read_dockerfile",
    "select",
    "write_context_tar",
]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_BLOCK = 512
_FLUSH = 1 << 20
_OCTAL_MAX = 0o77777777777  # 11 octal digits: ustar's size and mtime fields
_MAX_LINKS = 40
_DOCKERFILE_MAX = 16 << 20
_GLOB = frozenset("*?[")


def _names(fd: int) -> list[str]:
    """FD's names, the first to visit last (they are popped): sorted as bytes."""
    return sorted(os.listdir(fd), key=os.fsencode, reverse=True)


def _walk(
    root: int, where: str
) -> Generator[tuple[int, str, str, os.stat_result], bool | None, None]:
    """Every entry under the directory open at ROOT, depth first in byte order: (the fd
    of its directory, its name, its context path, its lstat).  A directory is yielded
    before what it holds; the caller's ``send`` of False skips what it holds.  A loop
    holding one fd a level, never recursion."""
    levels: list[tuple[int, list[str], str]] = [(root, _unreadable(root, where, ""), "")]
    try:
        while levels:
            fd, names, prefix = levels[-1]
            if not names:
                levels.pop()
                if fd != root:
                    os.close(fd)
                continue
            name = names.pop()
            rel = prefix + name
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            enter = yield fd, name, rel, st
            if enter and stat.S_ISDIR(st.st_mode):
                try:
                    sub = os.open(name, _DIR, dir_fd=fd)
                except PermissionError:
                    raise InvalidArgument(f"error checking context: can't stat '{where}/{rel}'")
                try:
                    levels.append((sub, _unreadable(sub, where, rel), rel + "/"))
                except BaseException:
                    os.close(sub)
                    raise
    finally:
        for fd, _, _ in levels:
            if fd != root:
                os.close(fd)


def _unreadable(fd: int, where: str, rel: str) -> list[str]:
    try:
        return _names(fd)
    except PermissionError:
        raise InvalidArgument(f"error checking context: can't stat '{where}/{rel}'") from None


# -- the client's tar ---------------------------------------------------------------


def _record(key: str, value: bytes) -> bytes:
    """One PAX record, "LENGTH KEY=VALUE\\n", LENGTH counting its own digits."""
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def _header(name: bytes, kind: bytes, mode: int, size: int, mtime: int, link: bytes) -> bytes:
    """The tar header blocks of one entry (owner 0:0, no user names); a PAX header first
    when a name is longer than 100 bytes or not ASCII, or a number does not fit."""
    pax = b""
    if len(name) > 100 or not name.isascii():
        pax += _record("path", name)
        name = name[:100]
    if len(link) > 100 or not link.isascii():
        pax += _record("linkpath", link)
        link = link[:100]
    if not 0 <= size <= _OCTAL_MAX:
        pax += _record("size", str(size).encode())
        size = 0
    if not 0 <= mtime <= _OCTAL_MAX:
        pax += _record("mtime", str(mtime).encode())
        mtime = 0
    out = b""
    if pax:
        out = _ustar(b"././@PaxHeader", 0o644, len(pax), 0, b"x", b"")
        out += pax + bytes(-len(pax) % _BLOCK)
    return out + _ustar(name, mode, size, mtime, kind, link)


def _ustar(name: bytes, mode: int, size: int, mtime: int, kind: bytes, link: bytes) -> bytes:
    block = b"%s%07o\0%07o\0%07o\0%011o\0%011o\0        %s%s%s%s" % (
        name.ljust(100, b"\0"), mode, 0, 0, size, mtime, kind, link.ljust(100, b"\0"),
        b"ustar\x0000", bytes(64),
    )  # fmt: skip
    block += b"0000000\0" * 2 + bytes(167)
    return block[:148] + b"%06o\0 " % sum(block) + block[156:]


class _TarOut:
    """Tar entries to OUT through a 1 MiB buffer."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.buf = bytearray()
        self.count = 0

    def add(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= _FLUSH:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.out.write(self.buf)
            self.buf = bytearray()

    def data(self, name: str, data: bytes, mode: int, mtime: int) -> None:
        self.add(_header(os.fsencode(name), b"0", mode, len(data), mtime, b""))
        self.add(data + bytes(-len(data) % _BLOCK))
        self.count += 1

    def file(self, fd: int, name: str, rel: bytes, st: os.stat_result, shown: str) -> None:
        try:
            src = os.open(name, _READ, dir_fd=fd)
        except PermissionError:
            raise InvalidArgument(
                f"error checking context: no permission to read from '{shown}'"
            ) from None
        try:
            size = st.st_size
            self.add(_header(rel, b"0", stat.S_IMODE(st.st_mode), size, int(st.st_mtime), b""))
            left = size
            while left:
                chunk = os.read(src, min(left, _FLUSH))
                if not chunk:
                    break
                self.add(chunk)
                left -= len(chunk)
            if left:
                raise InvalidArgument(f"build context: {shown}: the file shrank while sent")
            self.add(bytes(-size % _BLOCK))
        finally:
            os.close(src)
        self.count += 1


def _read_ignore_file(fd: int, where: str) -> bytes | None:
    try:
        src = os.open(".dockerignore", _READ, dir_fd=fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidArgument(f"error reading .dockerignore: {where}/.dockerignore: "
                              f"{exc.strerror}") from None  # fmt: skip
    if not stat.S_ISREG(os.fstat(src).st_mode):
        os.close(src)
        raise InvalidArgument(f"error reading .dockerignore: {where}/.dockerignore: "
                              "not a regular file")  # fmt: skip
    with os.fdopen(src, "rb") as f:
        return f.read()


def write_context_tar(
    root: str,
    out: BinaryIO,
    *,
    dockerfile: str = "Dockerfile",
    extra: dict[str, bytes] | None = None,
) -> int:
    """The context directory ROOT as a tar to OUT (see the module doc); the entries written."""
    from sampan.build.ignore import Matcher, clean, keep_build_files, read_dockerignore

    extra = dict(extra or {})
    root_fd = os.open(root, _DIR)
    try:
        ignore_data = _read_ignore_file(root_fd, root)
        patterns = read_dockerignore(ignore_data) if ignore_data is not None else []
        dockerfile = clean(dockerfile.lstrip("/"))
        patterns = keep_build_files(patterns, dockerfile, from_stdin=dockerfile in extra)
        matcher = Matcher(patterns)
        hidden = sorted(name for name in extra if name.startswith(".dockerfile."))
        if hidden:  # docker's CLI lists a generated Dockerfile name in .dockerignore
            base = ignore_data if ignore_data is not None else b".dockerignore"
            extra[".dockerignore"] = base + b"".join(b"\n" + n.encode() + b"\n" for n in hidden)
        now = int(time.time())
        tar = _TarOut(out)
        links: dict[tuple[int, int], bytes] = {}
        walk = _walk(root_fd, root)
        enter = None
        while True:
            try:
                fd, name, rel, st = walk.send(enter)
            except StopIteration:
                break
            enter = False
            mode = st.st_mode
            is_dir = stat.S_ISDIR(mode)
            if matcher.matches(rel):
                enter = is_dir and not matcher.excludes_dir_entirely(rel)
                continue
            enter = is_dir
            if rel in extra:
                if not is_dir:  # replaced in place, as docker's CLI does
                    tar.data(rel, extra.pop(rel), stat.S_IMODE(mode), int(st.st_mtime))
                continue
            path = os.fsencode(rel)
            mtime = int(st.st_mtime)
            if is_dir:
                tar.add(_header(path + b"/", b"5", stat.S_IMODE(mode), 0, mtime, b""))
                tar.count += 1
                continue
            if st.st_nlink > 1 and not is_dir:
                first = links.setdefault((st.st_dev, st.st_ino), path)
                if first != path:
                    tar.add(_header(path, b"1", stat.S_IMODE(mode), 0, mtime, first))
                    tar.count += 1
                    continue
            if stat.S_ISREG(mode):
                tar.file(fd, name, path, st, f"{root}/{rel}")
            elif stat.S_ISLNK(mode):
                target = os.fsencode(os.readlink(name, dir_fd=fd))
                tar.add(_header(path, b"2", stat.S_IMODE(mode), 0, mtime, target))
                tar.count += 1
            elif stat.S_ISFIFO(mode):
                tar.add(_header(path, b"6", stat.S_IMODE(mode), 0, mtime, b""))
                tar.count += 1
            # sockets and device nodes are not part of a context
        for name in sorted(extra):
            tar.data(name, extra[name], 0o600, now)
        tar.add(bytes(2 * _BLOCK))
        tar.flush()
        out.flush()
        return tar.count
    finally:
        os.close(root_fd)


# -- the daemon's side ----------------------------------------------------------------


def extract_context(stream: BinaryIO, dest: str) -> None:
    """The context tar STREAM (plain, gzip, bzip2 or xz) into the empty directory DEST.
    Bad input raises InvalidArgument naming the entry; nothing is written outside DEST."""
    from sampan.image.unpack import extract_archive

    fd = os.open(dest, _DIR)
    try:
        extract_archive(stream, fd, label="build context", owner=None)
    finally:
        os.close(fd)


def _outside(where: str, shown: str, link: str, target: str) -> InvalidArgument:
    return InvalidArgument(
        f"{where}forbidden path outside the build context: {shown} (the symlink {link} "
        f"points to {target}, outside the context)"
    )


def _resolve(ctx_fd: int, rel: str, *, follow: bool, where: str, shown: str) -> str:
    """The clean context path REL with its symlinks evaluated inside the context (the last
    one too when FOLLOW): a context path without symlinks on the way.  A missing part
    ends the walk (the rest is appended as written: the caller's stat fails).  A symlink
    whose target leads out of the context raises InvalidArgument naming it."""
    todo = [p for p in reversed(rel.split("/")) if p not in ("", ".")]
    done: list[str] = []
    links = 0
    link = ""
    while todo:
        part = todo.pop()
        if part == "..":
            if not done:  # REL itself is clean: only a symlink's target climbs
                raise _outside(where, shown, link, os.readlink(link, dir_fd=ctx_fd))
            done.pop()
            continue
        path = "/".join([*done, part])
        try:
            st = os.stat(path, dir_fd=ctx_fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return "/".join([*done, part, *reversed(todo)])
        if stat.S_ISLNK(st.st_mode) and (todo or follow):
            links += 1
            if links > _MAX_LINKS:
                raise InvalidArgument(f"{where}{shown}: too many levels of symbolic links")
            target = os.readlink(path, dir_fd=ctx_fd)
            if target.startswith("/"):
                raise _outside(where, shown, path, target)
            link = path
            todo.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
            continue
        done.append(part)
        if todo and not stat.S_ISDIR(st.st_mode):
            return "/".join([*done, *reversed(todo)])
    return "/".join(done)


def read_dockerfile(ctx: str, name: str) -> tuple[str, bytes]:
    """(the name messages use, the content) of the Dockerfile NAME in CTX (a path in the
    context; "Dockerfile" falls back to "dockerfile", as docker's)."""
    from sampan.build.ignore import clean

    rel = clean(name.lstrip("/"))
    if rel == ".." or rel.startswith("../"):
        raise InvalidArgument(f"forbidden path outside the build context: {name}")
    fd = os.open(ctx, _DIR)
    try:
        data = None
        for candidate in (rel, "dockerfile") if rel == "Dockerfile" else (rel,):
            found = _resolve(fd, candidate, follow=True, where="", shown=name)
            try:
                src = os.open(found or ".", _READ, dir_fd=fd)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if not stat.S_ISREG(os.fstat(src).st_mode):
                os.close(src)
                raise InvalidArgument(f"the Dockerfile ({name}) is not a regular file")
            with os.fdopen(src, "rb") as f:
                data = f.read(_DOCKERFILE_MAX + 1)
            break
    finally:
        os.close(fd)
    if data is None:
        raise NotFound(f"Cannot locate specified Dockerfile: {name}")
    if len(data) > _DOCKERFILE_MAX:
        raise InvalidArgument(f"the Dockerfile ({name}) is larger than 16 MiB")
    if not data:
        raise InvalidArgument(f"the Dockerfile ({name}) cannot be empty")
    shown = "Dockerfile" if rel.startswith(".dockerfile.") else rel
    return shown, data


def apply_dockerignore(ctx: str) -> None:
    """Delete what CTX's .dockerignore excludes (COPY must not see it): files one by one,
    a directory whole when no exception can reach inside it."""
    from sampan.build.ignore import Matcher, read_dockerignore
    from sampan.image.treecopy import remove_tree

    root = os.open(ctx, _DIR)
    try:
        data = _read_ignore_file(root, ctx)
        matcher: Matcher = Matcher(read_dockerignore(data) if data is not None else [])
        if not matcher:
            return
        walk = _walk(root, ctx)
        enter = None
        while True:
            try:
                fd, name, rel, st = walk.send(enter)
            except StopIteration:
                break
            is_dir = stat.S_ISDIR(st.st_mode)
            enter = is_dir
            if not matcher.matches(rel):
                continue
            if not is_dir:
                os.unlink(name, dir_fd=fd)
            elif matcher.excludes_dir_entirely(rel):
                enter = False
                remove_tree(name, dir_fd=fd)
    finally:
        os.close(root)


# -- COPY's sources -------------------------------------------------------------------


class Source:
    """One source of a COPY: its context path as named ("" = the context itself; the
    base name names it in the destination), its host path (symlinks evaluated) and
    its kind ("file", "dir", or "symlink" for an image's dangling one)."""

    __slots__ = ("kind", "path", "rel")

    def __init__(self, rel: str, path: str, kind: str) -> None:
        self.rel = rel
        self.path = path
        self.kind = kind

    def __repr__(self) -> str:
        return f"Source({self.rel!r}, {self.kind})"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "file"


def _glob(root: int, pattern: str, where: str) -> list[str]:
    """The paths under the directory open at ROOT that PATTERN (``filepath.Match``
    syntax) matches, in the order docker's walk finds them; symlinks never entered."""
    from sampan.build.ignore import glob_regex

    parts = pattern.split("/")
    regexes = [glob_regex(part) for part in parts]
    if any(rx is None for rx in regexes):
        raise InvalidArgument(f"{where}syntax error in pattern: {pattern}")
    found: list[str] = []

    def walk(fd: int, prefix: str, depth: int) -> None:
        rx = regexes[depth]
        assert rx is not None
        last = depth == len(parts) - 1
        for name in sorted(os.listdir(fd), key=os.fsencode):
            if not rx.fullmatch(name):
                continue
            if last:
                found.append(prefix + name)
                continue
            try:
                sub = os.open(name, _DIR, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.ENOENT):
                    continue
                raise
            try:
                walk(sub, prefix + name + "/", depth + 1)
            finally:
                os.close(sub)

    walk(root, "", 0)
    return found


def select(
    ctx: str, patterns: list[str], *, file: str, line: int, root_fd: int = -1
) -> list[Source]:
    """COPY's source PATTERNS in the context CTX (see the module doc).  ROOT_FD: CTX is
    ``/proc/self/fd/ROOT_FD``, an image's filesystem (COPY --from), whose paths are
    resolved in its own scope (engine/inroot.py: symlinks re-rooted, as docker does)."""
    from sampan.build.ignore import clean

    where = f"{file}:{line}: COPY failed: "
    fd = os.open(ctx, _DIR) if root_fd < 0 else os.dup(root_fd)
    out: list[Source] = []
    try:
        for pattern in patterns:
            rel = clean(pattern.lstrip("/"))  # relative: "/x" is the context's x
            if rel == ".." or rel.startswith("../"):
                raise InvalidArgument(f"{where}forbidden path outside the build context: {pattern}")
            rel = "" if rel == "." else rel
            if _wildcards(rel):
                found = _glob(fd, rel, where)
                if not found:
                    raise InvalidArgument(f"{where}no source files were specified (nothing "
                                          f"matches {pattern})")  # fmt: skip
            else:
                found = [rel]
            for name in found:
                out.append(_source(ctx, fd, name, root_fd >= 0, where, pattern))
    finally:
        os.close(fd)
    return out


def _wildcards(path: str) -> bool:
    i = 0
    while i < len(path):
        if path[i] == "\\":
            i += 2
            continue
        if path[i] in _GLOB:
            return True
        i += 1
    return False


def _source(ctx: str, fd: int, rel: str, image: bool, where: str, pattern: str) -> Source:
    if image:
        from sampan.engine import inroot

        try:
            real = inroot.scoped_path(fd, "/" + rel).lstrip("/")
        except OSError as exc:
            raise InvalidArgument(f"{where}{rel}: {exc.strerror}") from None
    else:
        real = _resolve(fd, rel, follow=True, where=where, shown=pattern)
    try:
        st = os.stat(real or ".", dir_fd=fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        if image:
            raise InvalidArgument(f"{where}stat {rel}: file does not exist") from None
        raise InvalidArgument(
            f"{where}file not found in build context or excluded by .dockerignore: "
            f"stat {rel or '.'}: file does not exist"
        ) from None
    return Source(rel, os.path.join(ctx, real) if real else ctx, _kind(st.st_mode))


# -- the cache key ----------------------------------------------------------------------


def _file_hash(path: str) -> bytes:
    """The sha256 of a file's content.  Never cached by inode: each build extracts its
    context afresh, and a new file may get a deleted one's inode, size and mtime."""
    h = hashlib.sha256()
    fd = os.open(path, _READ)
    try:
        while chunk := os.read(fd, _FLUSH):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.digest()


def content_key(ctx: str, sources: list[Source]) -> str:
    """sha256 of the SOURCES' names (relative to each source), modes, owners, symlink
    targets and file contents -- never mtimes."""
    h = hashlib.sha256()

    def entry(path: str, name: str, st: os.stat_result) -> None:
        h.update(b"%s\0%o\0%d:%d\0" % (os.fsencode(name), st.st_mode, st.st_uid, st.st_gid))
        if stat.S_ISLNK(st.st_mode):
            h.update(os.fsencode(os.readlink(path)) + b"\0")
        elif stat.S_ISREG(st.st_mode):
            h.update(_file_hash(path))

    for source in sources:
        h.update(b"\1" + os.fsencode(source.rel) + b"\0")
        st = os.lstat(source.path)
        entry(source.path, ".", st)
        if not stat.S_ISDIR(st.st_mode):
            continue
        stack = [(source.path, "")]
        while stack:
            path, prefix = stack.pop()
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: os.fsencode(e.name))
            for e in entries:
                sub = e.stat(follow_symlinks=False)
                entry(e.path, prefix + e.name, sub)
                if stat.S_ISDIR(sub.st_mode):
                    stack.append((e.path, prefix + e.name + "/"))
    return "sha256:" + h.hexdigest()
