"""Paths resolved inside a container's root, from a directory fd, never leaving it.

``docker cp`` names paths as the container sees them, and the container
controls every symlink on the way: ``ln -s / /hostroot`` inside must make
``/hostroot/etc/shadow`` the container's shadow file, never the host's.  So
a path is walked one component at a time from an fd of the container's
root (``/proc/PID/root`` of a running container, the mounted snapshot of a
stopped one): each directory is opened with ``O_NOFOLLOW | O_DIRECTORY``
relative to the one before, a symlink is read with ``readlinkat`` and its
target walked again *from that root* (an absolute target restarts at the
root, ``..`` at the root stays there), as openat2's ``RESOLVE_IN_ROOT``
does.  ``..`` goes back to the directory the walk came from, not through
the filesystem's ``..``.  A component swapped for a symlink between the
look and the open makes the open fail (ELOOP/ENOTDIR): never followed.

Mount points on the way are crossed (a volume mounted in the container is
part of its view), which is why the walk works on the container's own
mount namespace through ``/proc/PID/root``.

    with resolve(root_fd, "/etc/passwd", follow=False) as found:
        os.stat(found.name, dir_fd=found.dir_fd, follow_symlinks=False)
        found.path      # "/etc/passwd", with every symlink before it evaluated
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["MAX_COMPONENTS", "MAX_LINKS", "Resolved", "clean", "resolve", "scoped_path"]

MAX_LINKS = 40  # the kernel's own limit on symlinks in one lookup
MAX_COMPONENTS = 256  # as image layers' entry names (sampan/image/unpack.py)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def clean(path: str) -> str:
    """PATH as an absolute, lexically clean path ("/", "/a/b"); ".." at the top stays there."""
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


class Resolved:
    """Where a path led: the directory holding it (an open fd, closed with this object)
    and its last component (``""`` when the path is that directory itself, the root or
    a path ending in "/" or "/.").  ``path`` is the absolute in-container path of what
    was found, every symlink evaluated."""

    __slots__ = ("dir_fd", "name", "path")

    def __init__(self, dir_fd: int, name: str, path: str) -> None:
        self.dir_fd = dir_fd
        self.name = name
        self.path = path

    def lstat(self) -> os.stat_result:
        if not self.name:
            return os.fstat(self.dir_fd)
        return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)

    def open_dir(self) -> int:
        """A new fd of what was found, which must be a directory (never a symlink)."""
        if not self.name:
            return os.dup(self.dir_fd)
        return os.open(self.name, DIR_FLAGS, dir_fd=self.dir_fd)

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def __enter__(self) -> Resolved:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _not_found(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)


def scoped_path(root_fd: int, path: str) -> str:
    """Where PATH leads inside the tree at ROOT_FD, every symlink evaluated in scope; a
    missing part is taken as it is written (a dangling symlink's target: docker's
    linkTarget)."""
    with resolve(root_fd, path, follow=True, lenient=True) as found:
        return found.path


def resolve(root_fd: int, path: str, *, follow: bool, lenient: bool = False) -> Resolved:
    """PATH (as the container names it) inside the tree open at ROOT_FD.

    FOLLOW: a symlink in the last component is evaluated too (it is always,
    when PATH ends in "/" or "/.").  A missing component raises
    FileNotFoundError, a non-directory on the way NotADirectoryError, more
    than MAX_LINKS symlinks OSError(ELOOP).  LENIENT: a missing component or a
    non-directory on the way ends the walk, the rest of the path appended as written;
    the result then holds no fd (``dir_fd`` -1).
    """
    if path.endswith("/") or path.endswith("/.") or path in ("", "."):
        follow = True
        want_dir = True
    else:
        want_dir = False
    todo = [p for p in reversed(path.split("/")) if p not in ("", ".")]
    if len(todo) > MAX_COMPONENTS:
        raise OSError(errno.ENAMETOOLONG, f"more than {MAX_COMPONENTS} components", path)
    # The directories walked so far: (name, fd); the root's fd is ROOT_FD itself.
    stack: list[tuple[str, int]] = [("", root_fd)]
    links = 0
    found = ""
    try:
        while todo:
            part = todo.pop()
            top = stack[-1][1]
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop()[1])
                continue
            if part == ".":
                continue
            last = not todo
            try:
                st = os.stat(part, dir_fd=top, follow_symlinks=False)
            except FileNotFoundError:
                if lenient:
                    return _rest(stack, [part, *reversed(todo)])
                raise _not_found(path) from None
            if stat.S_ISLNK(st.st_mode) and (follow or not last):
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(part, dir_fd=top)
                more = [p for p in reversed(target.split("/")) if p not in ("", ".")]
                if len(todo) + len(more) > MAX_COMPONENTS:
                    raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), path)
                todo.extend(more)
                if target.startswith("/"):
                    for _, fd in stack[1:]:
                        os.close(fd)
                    del stack[1:]
                continue
            if last and not (want_dir and stat.S_ISDIR(st.st_mode)):
                if want_dir:
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
                found = part
                break
            if not stat.S_ISDIR(st.st_mode):
                if lenient:
                    return _rest(stack, [part, *reversed(todo)])
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append((part, os.open(part, DIR_FLAGS, dir_fd=top)))
        names = [name for name, _ in stack[1:]]
        where = "/" + "/".join([*names, found] if found else names)
        fd = os.dup(root_fd) if len(stack) == 1 else stack.pop()[1]
        return Resolved(fd, found, where)
    finally:
        for _, fd in stack[1:]:
            os.close(fd)


def _rest(stack: list[tuple[str, int]], parts: list[str]) -> Resolved:
    names = [name for name, _ in stack[1:]]
    return Resolved(-1, "", clean("/".join(["", *names, *parts])))
