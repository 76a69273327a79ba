"""``docker diff``: what a container changed in its image's filesystem.

Each change is docker's ``{"Path": "/etc/x", "Kind": K}`` with K 0 (modified),
1 (added) or 2 (deleted), read from the container's writable layer:

    overlay   the upper dir holds exactly what changed: a char device 0/0 is a
              deleted path; an opaque directory that a lower layer also has was
              deleted and made again (reported deleted, its content after it);
              anything else is added, or modified when a lower layer has it --
              except a directory whose size, mode and mtime equal the lower's
              (only there as the parent of a change)
    vfs       the container's copy compared with the image's tree: added and
              deleted names; modified when mode, owner, device, or (not for
              directories) size or mtime differ

As docker lists them, the directory holding an added or deleted path is
itself listed as modified (once, the root never), and the list is in path
order.  The init layer's entries (/etc/hosts, /etc/hostname,
/etc/resolv.conf, /dev, /proc, /sys -- the engine mounts its own over them)
count as the image's.  Nothing here follows a symlink: every tree is
walked by directory fds (the image's layers are untrusted input too).

    changes(service, "web")  # [{"Path": "/tmp", "Kind": 0}, {"Path": "/tmp/x", "Kind": 1}]
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from sampan.engine.containers import ContainerService

__all__ = ["ADDED", "DELETED", "MODIFIED", "changes", "overlay_changes", "tree_changes"]

MODIFIED, ADDED, DELETED = 0, 1, 2
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPAQUE = "trusted.overlay.opaque"
_INIT = frozenset(("/dev", "/proc", "/sys", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"))


def changes(service: ContainerService, ref: str) -> list[dict[str, object]]:
    """GET /containers/{id}/changes for container REF."""
    c = service.get(ref)
    store = service.engine.store()
    snaps = store.snapshots
    upper = snaps.upper_dir(c.id)
    chain = store.get(c.image).chain
    if snaps.driver == "overlay":
        lowers = [snaps.layer_dir(chain_id) for chain_id in reversed(chain)]
        lowers.append(os.path.join(snaps.root, "init"))
        found = overlay_changes(upper, lowers)
    else:
        base = snaps.layer_dir(chain[-1]) if chain else None
        found = tree_changes(base, upper, ignore=_INIT)
    return [{"Path": path, "Kind": kind} for path, kind in found]


# -- walking -----------------------------------------------------------------------------


def _walk(root: str) -> Iterator[tuple[str, os.stat_result, int]]:
    """(path, lstat, fd of its directory) of every entry under ROOT, depth first, names
    in byte order; the fd is valid until the next item."""
    top = os.open(root, _DIR_FLAGS)
    stack: list[tuple[int, str, list[str]]] = [(top, "", _names(top))]
    try:
        while stack:
            fd, prefix, names = stack[-1]
            if not names:
                stack.pop()
                os.close(fd)
                continue
            name = names.pop()
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            path = f"{prefix}/{name}"
            yield path, st, fd
            if stat.S_ISDIR(st.st_mode):
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                stack.append((sub, path, _names(sub)))
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def _names(fd: int) -> list[str]:
    return sorted(os.listdir(fd), key=os.fsencode, reverse=True)


def _lstat_in(root: str, path: str) -> os.stat_result | None:
    """PATH's lstat in the tree ROOT, reached without following symlinks; None if absent."""
    parts = path.strip("/").split("/")
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            try:
                sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                return None
            os.close(fd)
            fd = sub
        try:
            return os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except OSError:
            return None
    finally:
        os.close(fd)


def _with_parents(found: list[tuple[str, int]], recorded_dirs: set[str]) -> list[tuple[str, int]]:
    """FOUND with the parent of every added or deleted path listed as modified."""
    out = list(found)
    listed = set(recorded_dirs)
    for path, kind in found:
        if kind == MODIFIED:
            continue
        parent = path.rsplit("/", 1)[0] or "/"
        if parent != "/" and parent not in listed:
            out.append((parent, MODIFIED))
            listed.add(parent)
    return sorted(out, key=lambda item: item[0].encode())


# -- overlay -----------------------------------------------------------------------------


def _opaque(fd: int, name: str) -> bool:
    try:
        return os.getxattr(f"/proc/self/fd/{fd}/{name}", _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def overlay_changes(upper: str, lowers: list[str]) -> list[tuple[str, int]]:
    """The changes an overlayfs UPPER dir holds over LOWERS (top first)."""
    found: list[tuple[str, int]] = []
    dirs: set[str] = set()  # directories listed themselves
    for path, st, fd in _walk(upper):
        name = path.rsplit("/", 1)[1]
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:
            found.append((path, DELETED))
            continue
        is_dir = stat.S_ISDIR(mode)
        below = None
        for lower in lowers:
            below = _lstat_in(lower, path)
            if below is not None:
                break
        if below is None:
            kind = ADDED
        elif is_dir and _opaque(fd, name):
            kind = DELETED
        elif is_dir and stat.S_ISDIR(below.st_mode) and _same_dir(st, below):
            continue
        else:
            kind = MODIFIED
        if path in _INIT and kind != DELETED:
            continue
        if is_dir:
            dirs.add(path)
        found.append((path, kind))
    return _with_parents(found, dirs)


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mode, a.st_mtime_ns) == (b.st_size, b.st_mode, b.st_mtime_ns)


# -- two trees ---------------------------------------------------------------------------


def _differs(old: os.stat_result, new: os.stat_result) -> bool:
    if (old.st_mode, old.st_uid, old.st_gid, old.st_rdev) != (
        new.st_mode, new.st_uid, new.st_gid, new.st_rdev
    ):  # fmt: skip
        return True
    if stat.S_ISDIR(new.st_mode):
        return False
    return old.st_size != new.st_size or old.st_mtime_ns != new.st_mtime_ns


def tree_changes(
    base: str | None, tree: str, ignore: frozenset[str] = frozenset()
) -> list[tuple[str, int]]:
    """The changes that make the full tree BASE (None: an empty one) into TREE; paths
    in IGNORE are never listed as added or modified."""
    found: list[tuple[str, int]] = []
    dirs: set[str] = set()
    seen: set[str] = set()
    for path, st, _fd in _walk(tree):
        seen.add(path)
        old = _lstat_in(base, path) if base is not None else None
        if path in ignore:
            continue
        if old is None:
            kind = ADDED
        elif stat.S_IFMT(old.st_mode) != stat.S_IFMT(st.st_mode) or _differs(old, st):
            kind = MODIFIED
        else:
            continue
        if stat.S_ISDIR(st.st_mode):
            dirs.add(path)
        found.append((path, kind))
    if base is not None:
        gone: list[str] = []
        for path, _, _ in _walk(base):
            if path in seen:
                continue
            if any(path.startswith(g + "/") for g in gone[-1:]):
                continue  # under a deleted directory: only the directory is listed
            gone.append(path)
            found.append((path, DELETED))
    return _with_parents(found, dirs)
