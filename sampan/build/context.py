"""The build context: sent by the CLI as a tar, extracted by the daemon, read by COPY.

Client side (``write_context_tar``): the directory as an uncompressed tar
streamed out, as docker's CLI sends it -- .dockerignore applied, the
Dockerfile and .dockerignore always sent, owners 0:0, symlinks as symlinks,
EXTRA files (a Dockerfile from stdin) added under their names.

Daemon side: ``extract_context`` unpacks the (possibly compressed) tar into
an empty directory with the image unpacker's copy mode (names checked,
nothing written outside it or through a symlink, no device nodes);
``read_dockerfile`` reads the Dockerfile; ``apply_dockerignore`` then
deletes what .dockerignore excludes, the Dockerfile included, so COPY never
sees it.

COPY's sources (``select``): paths or globs relative to the context's root
(a leading "/" is that root; "../x" is refused), each resolved without
leaving the context: a symlink on the way that leads out of it is an
error.  ``content_key`` is the sources' identity for the build cache: names,
modes, owners, symlink targets and contents -- never mtimes.
"""

from __future__ import annotations

import hashlib
import os
import stat

from sampan.errors import InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = [
    "Source",
    "apply_dockerignore",
    "content_key",
    "extract_context",
    "read_dockerfile",
    "select",
    "write_context_tar",
]

_GLOB = frozenset("*?[")


# -- the client's tar ---------------------------------------------------------------


def _matcher(root: str) -> object:
    from sampan.build.ignore import Matcher, read_dockerignore

    try:
        with open(os.path.join(root, ".dockerignore"), "rb") as f:
            return Matcher(read_dockerignore(f.read()))
    except FileNotFoundError:
        return Matcher([])


def write_context_tar(
    root: str,
    out: BinaryIO,
    *,
    dockerfile: str = "Dockerfile",
    extra: dict[str, bytes] | None = None,
) -> int:
    """The context directory ROOT as a tar to OUT (see the module doc); the entries written."""
    import tarfile

    from sampan.build.ignore import Matcher

    matcher = _matcher(root)
    assert isinstance(matcher, Matcher)
    always = {os.path.normpath(dockerfile), ".dockerignore"}
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:

        def add(path: str, rel: str) -> None:
            nonlocal count
            info = tar.gettarinfo(path, arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            elif info.isdir() or info.issym() or info.islnk():
                tar.addfile(info)
            else:
                return  # sockets, fifos and devices are not part of a context
            count += 1

        def walk(path: str, rel: str) -> None:
            try:
                entries = sorted(os.scandir(path), key=lambda e: e.name)
            except PermissionError as exc:
                raise InvalidArgument(f"build context: {exc.filename}: permission denied") from None
            for entry in entries:
                sub = f"{rel}/{entry.name}" if rel else entry.name
                excluded = matcher.matches(sub) and sub not in always
                if entry.is_dir(follow_symlinks=False):
                    if excluded and matcher.skips_dir(sub):
                        continue
                    if not excluded:
                        add(entry.path, sub)
                    walk(entry.path, sub)
                elif not excluded:
                    add(entry.path, sub)

        walk(root, "")
        for name, data in (extra or {}).items():
            import io

            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
            count += 1
    return count


# -- the daemon's side ----------------------------------------------------------------


def extract_context(stream: BinaryIO, dest: str) -> None:
    """The context tar STREAM (plain, gzip, bzip2 or xz) into the empty directory DEST."""
    from sampan.image.unpack import extract_archive

    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        extract_archive(stream, fd, label="build context", owner=None)
    finally:
        os.close(fd)


def _inside(ctx: str, rel: str, what: str) -> str:
    """The host path of REL in the context CTX, every symlink on the way inside it."""
    real_ctx = os.path.realpath(ctx)
    path = os.path.join(real_ctx, rel)
    real = os.path.realpath(path)
    if real != real_ctx and not real.startswith(real_ctx + "/"):
        raise InvalidArgument(f"{what}: leads outside the build context (through a symlink)")
    return real


def read_dockerfile(ctx: str, name: str) -> tuple[str, bytes]:
    """(the name messages use, the content) of the Dockerfile NAME in CTX."""
    clean = os.path.normpath(name.lstrip("/"))
    if clean == ".." or clean.startswith("../"):
        raise InvalidArgument(f"dockerfile {name}: outside the build context")
    path = _inside(ctx, clean, f"dockerfile {name}")
    try:
        with open(path, "rb") as f:
            data = f.read(16 << 20)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(
            f"Cannot locate specified Dockerfile: {name} (not in the build context)"
        ) from None
    except IsADirectoryError:
        raise InvalidArgument(f"dockerfile {name}: is a directory") from None
    shown = "Dockerfile" if clean.startswith(".dockerfile.") else clean
    return shown, data


def apply_dockerignore(ctx: str) -> None:
    """Delete what CTX's .dockerignore excludes (COPY must not see it)."""
    import shutil

    from sampan.build.ignore import Matcher

    matcher = _matcher(ctx)
    assert isinstance(matcher, Matcher)
    if not matcher.rules:
        return

    def walk(path: str, rel: str) -> None:
        for entry in list(os.scandir(path)):
            sub = f"{rel}/{entry.name}" if rel else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if matcher.matches(sub):
                if is_dir and matcher.skips_dir(sub):
                    shutil.rmtree(entry.path)
                    continue
                if not is_dir:
                    os.unlink(entry.path)
                    continue
            if is_dir:
                walk(entry.path, sub)

    walk(ctx, "")


# -- COPY's sources -------------------------------------------------------------------


class Source:
    """One source of a COPY: its path relative to the context ("" = the context itself),
    its host path and its kind ("file", "dir", "symlink")."""

    __slots__ = ("kind", "path", "rel")

    def __init__(self, rel: str, path: str, kind: str) -> None:
        self.rel = rel
        self.path = path
        self.kind = kind

    def __repr__(self) -> str:
        return f"Source({self.rel!r}, {self.kind})"


def _kind(path: str) -> str:
    mode = os.lstat(path).st_mode
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "file"


def select(
    ctx: str, patterns: list[str], *, file: str, line: int, root_fd: int = -1
) -> list[Source]:
    """COPY's SOURCES patterns in the context CTX (see the module doc).  ROOT_FD: CTX is
    ``/proc/self/fd/ROOT_FD``, an image's filesystem (COPY --from), whose paths are
    resolved in its own scope (engine/inroot.py) instead."""
    import glob

    where = f"{file}:{line}"
    if root_fd >= 0:
        return _select_in_root(root_fd, patterns, where)
    out: list[Source] = []
    for pattern in patterns:
        clean = os.path.normpath(pattern.lstrip("/")) if pattern.strip("/") else "."
        if clean == ".." or clean.startswith("../"):
            raise InvalidArgument(
                f"{where}: COPY failed: forbidden path outside the build context: {pattern}"
            )
        if _GLOB & set(clean):
            found = sorted(glob.glob(clean, root_dir=ctx, include_hidden=True))
            if not found:
                raise InvalidArgument(
                    f"{where}: COPY failed: no source files were specified by {pattern!r} "
                    "(nothing in the build context matches it)"
                )
        else:
            found = [clean]
        for rel in found:
            rel = "" if rel == "." else rel
            head = os.path.dirname(rel)
            base = _inside(ctx, head, f"{where}: COPY {pattern}") if head else os.path.realpath(ctx)
            path = os.path.join(base, os.path.basename(rel)) if rel else base
            if not os.path.lexists(path):
                raise InvalidArgument(
                    f"{where}: COPY failed: file not found in build context or excluded by "
                    f".dockerignore: stat {rel}: file does not exist"
                )
            if os.path.islink(path):  # a source that is a symlink is followed, in the context
                path = _inside(ctx, rel, f"{where}: COPY {pattern}")
                if not os.path.exists(path):
                    raise InvalidArgument(f"{where}: COPY failed: {rel}: a dangling symlink")
            out.append(Source(rel, path, _kind(path)))
    return out


def _select_in_root(root: int, patterns: list[str], where: str) -> list[Source]:
    import glob

    from sampan.engine import inroot

    base = f"/proc/self/fd/{root}"
    out: list[Source] = []
    for pattern in patterns:
        clean = inroot.clean(pattern)
        found = [clean]
        if _GLOB & set(clean):
            found = ["/" + p for p in sorted(glob.glob(clean.lstrip("/"), root_dir=base,
                                                       include_hidden=True))]  # fmt: skip
            if not found:
                raise InvalidArgument(f"{where}: COPY failed: no source files were specified "
                                      f"by {pattern!r}")  # fmt: skip
        for rel in found:
            try:
                scoped = inroot.scoped_path(root, rel)
            except OSError as exc:
                raise InvalidArgument(f"{where}: COPY failed: {rel}: {exc.strerror}") from None
            path = base + (scoped if scoped != "/" else "")
            if not os.path.lexists(path):
                raise InvalidArgument(
                    f"{where}: COPY failed: stat {rel}: file does not exist in the source image"
                )
            out.append(Source(rel.lstrip("/"), path, _kind(path)))
    return out


def _file_hash(path: str) -> bytes:
    """The sha256 of a file's content.  Never cached by inode: each build extracts its
    context afresh, and a new file may get a deleted one's inode, size and mtime."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest()


def content_key(ctx: str, sources: list[Source]) -> str:
    """sha256 of the SOURCES' names, modes, owners, symlink targets and contents."""
    h = hashlib.sha256()

    def entry(path: str, name: str) -> None:
        st = os.lstat(path)
        h.update(f"{name}\0{st.st_mode:o}\0{st.st_uid}:{st.st_gid}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(path).encode() + b"\0")
        elif stat.S_ISREG(st.st_mode):
            h.update(_file_hash(path))
        elif stat.S_ISDIR(st.st_mode):
            for sub in sorted(os.listdir(path)):
                entry(os.path.join(path, sub), f"{name}/{sub}")

    for source in sources:
        h.update(b"\1")
        entry(source.path, source.rel or ".")
    return "sha256:" + h.hexdigest()
