"""COPY and ADD: sources written into a container's root filesystem, never outside it.

The destination is docker's: relative to the WORKDIR; a directory when it
ends in "/", when there are several sources or when the source is a
directory (whose *contents* are copied); otherwise the file's new name.
Missing directories on the way are made 0755, owned by --chown's user (else
root); an existing one keeps its owner and mode.  Every path in the root is
resolved by engine/inroot.py (symlinks evaluated in the root's scope) and
written through directory fds opened with O_NOFOLLOW, so a symlink in the
image can never send a write to the host.  Files keep their mode (or
--chmod) and mtime and get --chown's owner or root's; symlinks are copied
as symlinks.  ADD extracts a local tar (plain, gzip, bzip2, xz: detected by
content) into the destination instead of copying it.

    copy_into(root_fd, ctx, select(ctx, ["src/"], ...), "/app/", chown=(1000, 1000))
"""

from __future__ import annotations

import os
import stat

from sampan.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sampan.build.context import Source

__all__ = ["copy_into", "lookup_user"]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TAR_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def _open_dirs(
    root: int, path: str, owner: tuple[int, int] | None, last: tuple[int, int] | None = None
) -> int:
    """An fd of the directory PATH inside ROOT, made (0755, OWNER) where missing; with
    LAST, the directory PATH itself is made LAST's and the ones above it OWNER's."""
    from sampan.engine import inroot

    target = inroot.scoped_path(root, path)
    fd = os.dup(root)
    parts = [p for p in target.split("/") if p]
    try:
        for i, part in enumerate(parts):
            if last is not None:
                owner = last if i == len(parts) - 1 else None
            try:
                sub = os.open(part, _DIR, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                os.chmod(part, 0o755, dir_fd=fd, follow_symlinks=False)
                uid, gid = owner or (0, 0)
                os.chown(part, uid, gid, dir_fd=fd, follow_symlinks=False)
                sub = os.open(part, _DIR, dir_fd=fd)
            except (NotADirectoryError, OSError) as exc:
                raise InvalidArgument(f"{target}: {part} is not a directory ({exc.strerror})")
            os.close(fd)
            fd = sub
        return fd
    except BaseException:
        os.close(fd)
        raise


def _is_tar(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(512)
    return head.startswith(_TAR_MAGIC) or head[257:262] == b"ustar"


class _Writer:
    def __init__(self, owner: tuple[int, int] | None, chmod: int | None) -> None:
        self.owner = owner or (0, 0)
        self.chmod = chmod

    def _clear(self, dir_fd: int, name: str, for_dir: bool) -> None:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if not for_dir:
                raise InvalidArgument(f"cannot copy a file over the directory {name}")
            return
        os.unlink(name, dir_fd=dir_fd)

    def file(self, src: str, dir_fd: int, name: str, st: os.stat_result) -> None:
        self._clear(dir_fd, name, False)
        mode = self.chmod if self.chmod is not None else stat.S_IMODE(st.st_mode)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(name, flags, 0o600, dir_fd=dir_fd)
        try:
            with open(src, "rb") as f:
                infd = f.fileno()
                size = st.st_size
                offset = 0
                while size > 0:  # sendfile: in the kernel, across filesystems
                    sent = os.sendfile(out, infd, offset, min(size, 1 << 30))
                    if sent == 0:
                        break
                    offset += sent
                    size -= sent
            os.fchown(out, *self.owner)
            os.fchmod(out, mode)
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(out)

    def data(self, data: bytes, dir_fd: int, name: str) -> None:
        self._clear(dir_fd, name, False)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(name, flags, 0o600, dir_fd=dir_fd)
        try:
            os.write(out, data)
            os.fchown(out, *self.owner)
            os.fchmod(out, self.chmod if self.chmod is not None else 0o644)
        finally:
            os.close(out)

    def symlink(self, src: str, dir_fd: int, name: str, st: os.stat_result) -> None:
        self._clear(dir_fd, name, False)
        os.symlink(os.readlink(src), name, dir_fd=dir_fd)
        os.chown(name, *self.owner, dir_fd=dir_fd, follow_symlinks=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)

    def tree(self, src: str, dir_fd: int) -> None:
        """The contents of the directory SRC into the directory open at DIR_FD."""
        for entry in sorted(os.scandir(src), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                self._clear(dir_fd, entry.name, True)
                try:
                    os.mkdir(entry.name, 0o700, dir_fd=dir_fd)
                except FileExistsError:
                    pass
                sub = os.open(entry.name, _DIR, dir_fd=dir_fd)
                try:
                    self.tree(entry.path, sub)
                    os.fchown(sub, *self.owner)
                    mode = self.chmod if self.chmod is not None else stat.S_IMODE(st.st_mode)
                    os.fchmod(sub, mode)
                    os.utime(sub, ns=(st.st_atime_ns, st.st_mtime_ns))
                finally:
                    os.close(sub)
            elif stat.S_ISLNK(st.st_mode):
                self.symlink(entry.path, dir_fd, entry.name, st)
            elif stat.S_ISREG(st.st_mode):
                self.file(entry.path, dir_fd, entry.name, st)


def copy_into(
    root_fd: int,
    ctx: str,
    sources: list[Source],
    dest: str,
    *,
    workdir: str = "/",
    chown: tuple[int, int] | None = None,
    chmod: int | None = None,
    extract_tars: bool = False,
    extra: dict[str, bytes] | None = None,
    label: str = "COPY",
) -> None:
    """SOURCES (and EXTRA files: name -> content) to DEST in the root at ROOT_FD."""
    import posixpath

    extra = extra or {}
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    count = len(sources) + len(extra)
    into_dir = dest.endswith("/") or dest.endswith("/.") or count > 1
    if count > 1 and not (dest.endswith("/") or dest.endswith("/.")):
        raise InvalidArgument(f"{label}: when using COPY with more than one source file, the "
                              "destination must be a directory and end with a /")  # fmt: skip
    writer = _Writer(chown, chmod)
    dest = posixpath.normpath(dest)
    for source in sources:
        st = os.stat(source.path)
        if source.kind == "dir":  # docker: the parents above it stay root's
            fd = _open_dirs(root_fd, dest, None, last=chown or (0, 0))
            try:
                writer.tree(source.path, fd)
            finally:
                os.close(fd)
            continue
        if extract_tars and stat.S_ISREG(st.st_mode) and _is_tar(source.path):
            from sampan.image.unpack import extract_archive

            fd = _open_dirs(root_fd, dest, None)  # docker: an archive's destination is root's
            try:
                with open(source.path, "rb") as f:
                    extract_archive(f, fd, label=f"{label}: {source.rel}", owner=None)
            finally:
                os.close(fd)
            continue
        directory, name = (dest, os.path.basename(source.rel)) if into_dir else (
            posixpath.dirname(dest), posixpath.basename(dest))  # fmt: skip
        fd = _open_dirs(root_fd, directory, chown)
        try:
            if not into_dir:  # an existing directory of that name takes the file inside
                try:
                    sub = os.open(name, _DIR, dir_fd=fd)
                except OSError:
                    sub = -1
                if sub >= 0:
                    os.close(fd)
                    fd, name = sub, os.path.basename(source.rel)
            writer.file(source.path, fd, name, st)
        finally:
            os.close(fd)
    for name, data in sorted(extra.items()):
        directory, base = (dest, name) if into_dir else (
            posixpath.dirname(dest), posixpath.basename(dest))  # fmt: skip
        fd = _open_dirs(root_fd, directory, chown)
        try:
            writer.data(data, fd, base)
        finally:
            os.close(fd)


def _ids(root: int, path: str) -> list[list[str]]:
    from sampan.engine import inroot

    try:
        with inroot.resolve(root, path, follow=True) as found:
            fd = os.open(found.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=found.dir_fd)  # fmt: skip
    except (FileNotFoundError, NotADirectoryError, OSError):
        return []
    with os.fdopen(fd, "rb") as f:
        text = f.read(4 << 20).decode(errors="replace")
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def lookup_user(root: int, user: str, group: str = "") -> tuple[int, int]:
    """--chown's USER[:GROUP] as numbers, names looked up in the root's /etc files."""
    uid: int | None = int(user) if user.isdigit() else None
    gid: int | None = int(group) if group.isdigit() else None
    primary: int | None = None
    if uid is None:
        for fields in _ids(root, "/etc/passwd"):
            if len(fields) > 3 and fields[0] == user and fields[2].isdigit():
                uid = int(fields[2])
                primary = int(fields[3]) if fields[3].isdigit() else None
                break
        else:
            raise InvalidArgument(f"--chown={user}: unable to find user {user}: no matching "
                                  "entries in passwd file")  # fmt: skip
    if group and gid is None:
        for fields in _ids(root, "/etc/group"):
            if len(fields) > 2 and fields[0] == group and fields[2].isdigit():
                gid = int(fields[2])
                break
        else:
            raise InvalidArgument(f"--chown: unable to find group {group}: no matching entries "
                                  "in group file")  # fmt: skip
    if gid is None:
        gid = primary if primary is not None else uid
    return uid, gid
