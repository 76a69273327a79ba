"""Snapshots: image layers unpacked once, keyed by chain id, and containers' writable layers.

Vocabulary (containerd's): a *layer* is a read-only snapshot named by the
chain id of the image layers up to it, so every image that shares a base
shares its unpacked layers; an *active* snapshot is a container's writable
layer over a parent layer, named by a key the caller chooses (a container
id).  Two drivers, one interface (``Snapshotter``), one chooser
(``open_snapshotter``):

    overlay   each layer directory holds that layer alone (whiteouts as
              overlayfs objects); a container is an overlayfs mount of its
              upper dir over the shared init layer and the chain.
    vfs       each layer directory is a full copy of the tree (the parent's
              copy with the layer applied); a container gets its own copy,
              bind-mounted.  Slow and large, but needs nothing of the kernel.

Layout under ROOT (like docker's overlay2)::

    driver                    "overlay" or "vfs", fixed at the first open
    lock                      flock'ed around every change of what is visible
    layers/<chain hex>/       diff/ (the tree), parent, size;
                              overlay: link (short id), lower (short ids, top first)
    l/<short id>              -> ../layers/<chain hex>/diff (overlay)
    init/                     overlay: the init layer, shared by every container
    active/<key>/             parent; overlay: upper/, work/; vfs: fs/
    .tmp-<kind>-<random>/     work in progress

The init layer (docker's "-init") sits between a container's upper dir and
its image: empty /etc/hosts, /etc/hostname and /etc/resolv.conf (the engine
bind-mounts its own over them) and the mount points /dev, /proc and /sys, so
those exist whatever the image holds.  It is read-only under overlayfs, so
one copy serves every container; vfs writes the same entries into each copy.

lowerdir paths are ``ROOT/l/<12 chars>`` (a dozen times shorter than
``ROOT/layers/<64 hex>/diff``), so mount(2), whose options must fit in one
page, takes about 4096 / (len(ROOT) + 16) layers; a longer chain is mounted
with the new mount API, one ``lowerdir+`` at a time (Linux 6.8+).  Nothing
here changes the process's working directory (the daemon has threads).

Crash safety (the process killed at any moment, not power loss: nothing is
fsync'ed): layers and active snapshots are built in a ``.tmp-`` directory
and renamed into place, so they are visible complete or not at all.  A
temporary directory is flock'ed by its maker; ``open_snapshotter`` removes
those whose maker is gone (with the ``l/`` link a half-made layer made).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import threading
from collections.abc import Callable, Iterator

from sampan.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, Unsupported
from sampan.image.treecopy import DIR_FLAGS, copy_tree, remove_tree
from sampan.linux import syscalls
from sampan.linux.constants import MS_BIND
from sampan.oci.digest import hex_of, parse_digest, sha256_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

# dataclasses, typing and the unpacker (hashlib, the tar code) are
# imported where they are used: `sampan images` opens the snapshotter too,
# and these cost it ~30 ms.


def _rmtree(path: str, ignore_errors: bool = False, dir_fd: int | None = None) -> None:
    """shutil.rmtree without its recursion (one level a frame: a tree 1000 deep broke it)."""
    remove_tree(path, dir_fd=dir_fd, ignore_errors=ignore_errors)


DRIVERS = ("overlay", "vfs")
INIT_DIRS = ("dev", "proc", "sys", "etc")
INIT_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")
_TMP = ".tmp-"
_SHORT_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_SHORT_LENGTH = 12
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_ROOT_FORBIDDEN = frozenset(":,\\\n\t ")  # would need escaping in overlay options
_MNT_DETACH = 2


class Mount:
    """How an active snapshot is mounted: ``mount -t TYPE -o OPTIONS SOURCE target``.

    An overlay mount of a long chain may hold more options than mount(2)
    takes; ``Snapshotter.mount`` knows how to mount it anyway.
    """

    __slots__ = ("options", "source", "type")

    def __init__(self, type: str, source: str, options: tuple[str, ...]) -> None:
        self.type = type  # "overlay" or "bind"
        self.source = source
        self.options = tuple(options)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mount) and (self.type, self.source, self.options) == (
            other.type,
            other.source,
            other.options,
        )

    def __hash__(self) -> int:
        return hash((self.type, self.source, self.options))

    def __repr__(self) -> str:
        return f"Mount(type={self.type!r}, source={self.source!r}, options={self.options!r})"


def open_snapshotter(
    root: str, driver: str | None = None, *, allow_devices: bool = False
) -> Snapshotter:
    """The snapshotter of ROOT (made if missing).

    DRIVER None keeps the driver ROOT was made with, or for a new ROOT picks
    "overlay" when the kernel mounts overlayfs with its upper dir on ROOT's
    filesystem, else "vfs".  Asking for another driver than ROOT's is a
    Conflict.  ALLOW_DEVICES lets layers hold device nodes.
    """
    root = os.path.abspath(root)
    if _ROOT_FORBIDDEN.intersection(root):
        raise InvalidArgument(f"snapshot root {root!r}: no ':', ',', '\\' or spaces allowed")
    if driver is not None and driver not in DRIVERS:
        raise InvalidArgument(f"snapshot driver {driver!r}: expected one of {', '.join(DRIVERS)}")
    os.makedirs(root, mode=0o700, exist_ok=True)
    marker = os.path.join(root, "driver")
    lock = os.open(os.path.join(root, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one chooser at a time; its probe is not recovered
        try:
            with open(marker) as f:
                recorded: str | None = f.read().strip()
        except FileNotFoundError:
            recorded = None
        if recorded is not None and recorded not in DRIVERS:
            raise InvalidArgument(f"{marker}: unknown snapshot driver {recorded!r}")
        if recorded is not None and driver is not None and driver != recorded:
            raise Conflict(f"snapshot root {root} holds {recorded} snapshots, not {driver}")
        chosen = driver or recorded
        if chosen is None or (recorded is None and chosen == "overlay"):
            works = overlay_supported(root)
            if chosen == "overlay" and not works:
                raise Unsupported(f"snapshot root {root}: overlayfs cannot use this filesystem")
            chosen = "overlay" if works else "vfs"
        if recorded is None:
            _write_file(marker + ".new", chosen)
            os.rename(marker + ".new", marker)
    finally:
        os.close(lock)
    cls: type[Snapshotter] = OverlaySnapshotter if chosen == "overlay" else VfsSnapshotter
    return cls(root, allow_devices=allow_devices)


def overlay_supported(root: str) -> bool:
    """Whether an overlayfs mount with its upper and work dirs under ROOT works
    (ROOT's lock held: the probe dir is a ``.tmp-`` one)."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    probe = os.path.join(root, f"{_TMP}probe-{_random_id()}")
    try:
        for sub in ("lower", "upper", "work", "merged"):
            os.makedirs(os.path.join(probe, sub))
        data = f"lowerdir={probe}/lower,upperdir={probe}/upper,workdir={probe}/work"
        try:
            syscalls.mount("overlay", f"{probe}/merged", "overlay", 0, data)
        except OSError:
            return False
        syscalls.umount(f"{probe}/merged", _MNT_DETACH)
        return True
    finally:
        _rmtree(probe, ignore_errors=True)


Deferred = list[Callable[[], None]]  # work a caller runs later (remove_active)


class Snapshotter:
    """Layers by chain id and active snapshots by key, under one root directory.

    Layers::

        s.add(chain_id, parent, blob, expected_diff_id=..., label=...) -> size
        s.has(chain_id), s.size(chain_id), s.parent(chain_id), s.list(), s.remove(chain_id)

    Active snapshots (a container's writable layer)::

        m = s.prepare("c1", chain_id)      # -> Mount
        s.mount("c1", "/run/c1/rootfs")
        ...
        s.unmount("/run/c1/rootfs")
        s.remove_active("c1")

    Thread-safe, and safe to share ROOT between processes (the daemon and a
    command working on the store directly).
    """

    driver = ""
    _unpack_mode = ""

    def __init__(self, root: str, *, allow_devices: bool = False) -> None:
        self.root = root
        self.allow_devices = allow_devices
        self._layers = os.path.join(root, "layers")
        self._active = os.path.join(root, "active")
        for path in (self._layers, self._active):
            os.makedirs(path, mode=0o700, exist_ok=True)
        self._parents: dict[str, str | None] = {}  # a chain id fixes its parent: never stale
        self._mutex = threading.Lock()
        self._lock_fd = os.open(os.path.join(root, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                                0o600)  # fmt: skip
        with self._locked():
            self._recover()
            self._setup()

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Snapshotter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- layers ------------------------------------------------------------------

    def has(self, chain_id: str) -> bool:
        return os.path.isdir(self._layer_dir(chain_id))

    def size(self, chain_id: str) -> int:
        """Bytes of file content the layer's blob unpacked to."""
        return int(self._read(os.path.join(self._layer_dir(chain_id), "size"), chain_id))

    def parent(self, chain_id: str) -> str | None:
        """The layer under CHAIN_ID (None for a bottom layer)."""
        if chain_id not in self._parents:
            path = os.path.join(self._layer_dir(chain_id), "parent")
            self._parents[chain_id] = self._read(path, chain_id) or None
        return self._parents[chain_id]

    def list(self) -> list[str]:
        """Every layer's chain id."""
        return sorted("sha256:" + n for n in os.listdir(self._layers) if len(n) == 64)

    def add(
        self,
        chain_id: str,
        parent: str | None,
        blob: BinaryIO,
        *,
        expected_diff_id: str,
        label: str,
    ) -> int:
        """Unpack BLOB as layer CHAIN_ID over PARENT; returns its unpacked size.

        The layer becomes visible only complete and only when the blob's diff id
        is EXPECTED_DIFF_ID (else InvalidArgument, and nothing is left).  A
        layer already there is kept (BLOB is not read).
        """
        hexid = self._hex(chain_id)
        parse_digest(expected_diff_id, "expected diff id")
        if parent is not None:
            self._hex(parent)
        follows = (
            expected_diff_id
            if parent is None
            else sha256_of(f"{parent} {expected_diff_id}".encode())
        )
        if follows != chain_id:
            raise InvalidArgument(
                f"layer {label}: chain id {chain_id} does not follow from parent "
                f"{parent} and diff id {expected_diff_id}"
            )
        if self.has(chain_id):
            return self.size(chain_id)
        if parent is not None and not self.has(parent):
            raise NotFound(f"layer {label}: parent layer {parent} is not unpacked")
        tmp, fd = self._tempdir("add")
        try:
            diff = os.path.join(tmp, "diff")
            self._new_layer_tree(diff, parent)
            from sampan.image.unpack import unpack_layer

            diff_id, size = unpack_layer(blob, diff, mode=self._unpack_mode, label=label,
                                         allow_devices=self.allow_devices)  # fmt: skip
            if diff_id != expected_diff_id:
                raise InvalidArgument(
                    f"layer {label}: diff id mismatch: expected {expected_diff_id}, got {diff_id}"
                )
            _write_file(os.path.join(tmp, "parent"), parent or "")
            _write_file(os.path.join(tmp, "size"), str(size))
            with self._locked():
                if self.has(chain_id):  # unpacked meanwhile by another thread or process
                    size = self.size(chain_id)
                else:
                    if parent is not None and not self.has(parent):
                        raise NotFound(f"layer {label}: parent layer {parent} was removed")
                    self._publish_layer(tmp, hexid, parent)
                    return size
        except BaseException:
            _rmtree(tmp, ignore_errors=True)
            raise
        finally:
            os.close(fd)
        _rmtree(tmp, ignore_errors=True)
        return size

    def remove(self, chain_id: str) -> None:
        """Remove a layer; Conflict while a layer or an active snapshot is over it."""
        path = self._layer_dir(chain_id)
        with self._locked():
            if not os.path.isdir(path):
                raise NotFound(f"layer {chain_id}: not unpacked")
            for child in self.list():
                with contextlib.suppress(NotFound):
                    if self.parent(child) == chain_id:
                        raise Conflict(f"layer {chain_id}: layer {child} is over it")
            for key, parent in self.active().items():
                if parent == chain_id:
                    raise Conflict(f"layer {chain_id}: snapshot {key} is over it")
            tmp, fd = self._retire(path, "rmlayer")
            self._unpublish_layer(tmp)
        try:
            _rmtree(tmp)
        finally:
            os.close(fd)

    # -- active snapshots ----------------------------------------------------------

    def prepare(self, key: str, parent: str | None) -> Mount:
        """A new writable snapshot KEY over layer PARENT (None: over nothing)."""
        self._check_key(key)
        if parent is not None:
            self._hex(parent)
            if not self.has(parent):
                raise NotFound(f"snapshot {key}: parent layer {parent} is not unpacked")
        if os.path.lexists(os.path.join(self._active, key)):
            raise AlreadyExists(f"snapshot {key} already exists")
        tmp, fd = self._tempdir("prepare")
        try:
            self._new_active_tree(tmp, parent)
            _write_file(os.path.join(tmp, "parent"), parent or "")
            with self._locked():
                if parent is not None and not self.has(parent):
                    raise NotFound(f"snapshot {key}: parent layer {parent} was removed")
                try:
                    os.rename(tmp, os.path.join(self._active, key))
                except OSError as exc:
                    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                        raise AlreadyExists(f"snapshot {key} already exists") from None
                    raise
        except BaseException:
            _rmtree(tmp, ignore_errors=True)
            raise
        finally:
            os.close(fd)
        return self._mount_of(key, parent)

    def mounts(self, key: str) -> Mount:
        """The Mount of active snapshot KEY (as ``prepare`` returned it)."""
        return self._mount_of(key, self._active_parent(key))

    def mount(self, key: str, target: str) -> None:
        """Mount active snapshot KEY on the directory TARGET."""
        raise NotImplementedError

    def unmount(self, target: str) -> None:
        """Detach the mount on TARGET; nothing mounted there is not an error."""
        try:
            syscalls.umount(target, _MNT_DETACH)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise

    def remove_active(self, key: str, later: Deferred | None = None) -> None:
        """Remove active snapshot KEY (its writes with it); Conflict while mounted here.

        With LATER, the snapshot is gone once this returns (renamed to a ``.tmp-`` dir
        recovery removes) and the deletion of its files is appended there to run after.
        """
        self._check_key(key)
        path = os.path.join(self._active, key)
        with self._locked():
            if not os.path.isdir(path):
                raise NotFound(f"snapshot {key}: no such snapshot")
            where = self._mounted_at(key)
            if where:
                raise Conflict(f"snapshot {key}: still mounted on {where}")
            tmp, fd = self._retire(path, "rmactive")

        def delete() -> None:
            try:
                _rmtree(tmp)
            finally:
                os.close(fd)

        if later is None:
            delete()
        else:
            later.append(delete)

    def active(self) -> dict[str, str | None]:
        """Every active snapshot's key and the layer it is over."""
        found: dict[str, str | None] = {}
        for key in os.listdir(self._active):
            try:
                found[key] = self._active_parent(key)
            except NotFound:
                pass  # removed meanwhile
        return found

    def upper_dir(self, key: str) -> str:
        """Where KEY's writes land: overlay's upper dir; vfs's whole copy (diff it
        against the parent layer's ``layer_dir``)."""
        raise NotImplementedError

    def layer_dir(self, chain_id: str) -> str:
        """The directory of layer CHAIN_ID: this layer's files (overlay), the whole tree (vfs)."""
        path = os.path.join(self._layer_dir(chain_id), "diff")
        if not os.path.isdir(path):
            raise NotFound(f"layer {chain_id}: not unpacked")
        return path

    # -- driver hooks ----------------------------------------------------------------

    def _setup(self) -> None:
        """Driver state made at open (under the lock)."""

    def _new_layer_tree(self, diff: str, parent: str | None) -> None:
        raise NotImplementedError

    def _publish_layer(self, tmp: str, hexid: str, parent: str | None) -> None:
        os.rename(tmp, os.path.join(self._layers, hexid))

    def _unpublish_layer(self, retired: str) -> None:
        """Undo what ``_publish_layer`` made besides the layer dir (now at RETIRED)."""

    def _new_active_tree(self, tmp: str, parent: str | None) -> None:
        raise NotImplementedError

    def _mount_of(self, key: str, parent: str | None) -> Mount:
        raise NotImplementedError

    def _mounted_at(self, key: str) -> str | None:
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------

    def _hex(self, chain_id: str) -> str:
        parse_digest(chain_id, "chain id")
        if not chain_id.startswith("sha256:"):
            raise Unsupported(f"chain id {chain_id}: only sha256 chain ids are supported")
        return hex_of(chain_id)

    def _layer_dir(self, chain_id: str) -> str:
        return os.path.join(self._layers, self._hex(chain_id))

    def _check_key(self, key: str) -> None:
        if not key or len(key) > 128 or key[0] == "." or not _KEY_CHARS.issuperset(key):
            raise InvalidArgument(f"snapshot key {key!r}: expected 1-128 of [A-Za-z0-9_.-]")

    def _active_parent(self, key: str) -> str | None:
        self._check_key(key)
        path = os.path.join(self._active, key, "parent")
        return self._read(path, f"snapshot {key}") or None

    @staticmethod
    def _read(path: str, what: str) -> str:
        try:
            with open(path) as f:
                return f.read().strip()
        except FileNotFoundError:
            raise NotFound(f"{what}: no such snapshot or layer") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _tempdir(self, kind: str) -> tuple[str, int]:
        """A new ``.tmp-KIND-...`` dir and an fd holding its flock (close it when done)."""
        with self._locked():  # recovery, which runs locked, never sees it unlocked
            path = os.path.join(self.root, f"{_TMP}{kind}-{_random_id()}")
            os.mkdir(path, 0o700)
            fd = os.open(path, DIR_FLAGS)
            fcntl.flock(fd, fcntl.LOCK_EX)
        return path, fd

    def _retire(self, path: str, kind: str) -> tuple[str, int]:
        """Rename PATH (under the lock) to a flock'ed ``.tmp-`` dir, to be removed."""
        fd = os.open(path, DIR_FLAGS)
        fcntl.flock(fd, fcntl.LOCK_EX)
        tmp = os.path.join(self.root, f"{_TMP}{kind}-{_random_id()}")
        try:
            os.rename(path, tmp)
        except BaseException:
            os.close(fd)
            raise
        return tmp, fd

    def _recover(self) -> None:
        """Remove the temporary dirs of makers that are gone (under the lock).

        Best effort: a dir that cannot go is left for the next open, which must
        never fail because of it (``sampan images`` opens the store too)."""
        for name in os.listdir(self.root):
            if not name.startswith(_TMP):
                continue
            path = os.path.join(self.root, name)
            try:
                fd = os.open(path, DIR_FLAGS)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._unpublish_layer(path)
                _rmtree(path, ignore_errors=True)
            except BlockingIOError:
                continue  # its maker is alive
            except Exception:  # anything else: left for the next open
                continue
            finally:
                os.close(fd)


class OverlaySnapshotter(Snapshotter):
    driver = "overlay"
    _unpack_mode = "overlay"

    def __init__(self, root: str, *, allow_devices: bool = False) -> None:
        self._links = os.path.join(root, "l")
        self._init = os.path.join(root, "init")
        self._page = os.sysconf("SC_PAGE_SIZE")
        super().__init__(root, allow_devices=allow_devices)

    def _setup(self) -> None:
        os.makedirs(self._links, mode=0o700, exist_ok=True)
        if not os.path.isdir(self._init):
            tmp = os.path.join(self.root, f"{_TMP}init-{_random_id()}")
            _mkdir(tmp, 0o755)
            _make_init(tmp)
            os.rename(tmp, self._init)

    def _new_layer_tree(self, diff: str, parent: str | None) -> None:
        _mkdir(diff, 0o755)

    def _publish_layer(self, tmp: str, hexid: str, parent: str | None) -> None:
        lower = self._read(os.path.join(self._layer_dir(parent), "lower"), parent) if parent else ""
        while True:
            short = _random_id()
            # The link file first: recovery finds the l/ link of a half-made layer by it.
            _write_file(os.path.join(tmp, "link"), short)
            try:
                os.symlink(f"../layers/{hexid}/diff", os.path.join(self._links, short))
                break
            except FileExistsError:
                continue
        _write_file(os.path.join(tmp, "lower"), f"{short}:{lower}" if lower else short)
        try:
            os.rename(tmp, os.path.join(self._layers, hexid))
        except BaseException:
            os.unlink(os.path.join(self._links, short))
            raise

    def _unpublish_layer(self, retired: str) -> None:
        try:
            with open(os.path.join(retired, "link")) as f:
                short = f.read().strip()
        except OSError:
            return
        link = os.path.join(self._links, short)
        try:
            target = os.readlink(link)
        except OSError:
            return
        # The link of the layer now at RETIRED, unless the layer came back under another link.
        layer = os.path.join(self._links, os.path.dirname(target))
        try:
            with open(os.path.join(layer, "link")) as f:
                if f.read().strip() == short:
                    return
        except OSError:
            pass
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)

    def _new_active_tree(self, tmp: str, parent: str | None) -> None:
        _mkdir(os.path.join(tmp, "upper"), 0o755)  # the container's "/": its mode shows
        os.mkdir(os.path.join(tmp, "work"), 0o700)

    def _lowers(self, parent: str | None) -> list[str]:
        if parent is None:
            return [self._init]
        chain = self._read(os.path.join(self._layer_dir(parent), "lower"), parent)
        return [self._init, *(f"{self._links}/{short}" for short in chain.split(":"))]

    def _mount_of(self, key: str, parent: str | None) -> Mount:
        base = os.path.join(self._active, key)
        options = (
            "lowerdir=" + ":".join(self._lowers(parent)),
            f"upperdir={base}/upper",
            f"workdir={base}/work",
        )
        return Mount("overlay", "overlay", options)

    def mount(self, key: str, target: str) -> None:
        parent = self._active_parent(key)
        lowers = self._lowers(parent)
        base = os.path.join(self._active, key)
        data = f"lowerdir={':'.join(lowers)},upperdir={base}/upper,workdir={base}/work"
        if len(data) < self._page:
            syscalls.mount("overlay", target, "overlay", 0, data)
            return
        fs = syscalls.fsopen("overlay")
        try:
            for lower in lowers:
                syscalls.fsconfig(fs, syscalls.FSCONFIG_SET_STRING, "lowerdir+", lower)
            syscalls.fsconfig(fs, syscalls.FSCONFIG_SET_STRING, "upperdir", f"{base}/upper")
            syscalls.fsconfig(fs, syscalls.FSCONFIG_SET_STRING, "workdir", f"{base}/work")
            syscalls.fsconfig(fs, syscalls.FSCONFIG_CMD_CREATE)
            mnt = syscalls.fsmount(fs)
            try:
                syscalls.move_mount_fd(mnt, target)
            finally:
                os.close(mnt)
        finally:
            os.close(fs)

    def upper_dir(self, key: str) -> str:
        self._active_parent(key)
        return os.path.join(self._active, key, "upper")

    def _mounted_at(self, key: str) -> str | None:
        needle = f"upperdir={self._active}/{key}/upper"
        for fields, fstype, options in _mountinfo():
            if fstype == "overlay" and needle in options.split(","):
                return fields[4]
        return None


class VfsSnapshotter(Snapshotter):
    driver = "vfs"
    _unpack_mode = "apply"

    def _new_layer_tree(self, diff: str, parent: str | None) -> None:
        if parent is None:
            _mkdir(diff, 0o755)
        else:
            copy_tree(self.layer_dir(parent), diff)

    def _new_active_tree(self, tmp: str, parent: str | None) -> None:
        fs = os.path.join(tmp, "fs")
        self._new_layer_tree(fs, parent)
        _make_init(fs)

    def _mount_of(self, key: str, parent: str | None) -> Mount:
        return Mount("bind", os.path.join(self._active, key, "fs"), ("bind", "rw"))

    def mount(self, key: str, target: str) -> None:
        self._active_parent(key)
        syscalls.mount(os.path.join(self._active, key, "fs"), target, None, MS_BIND)

    def upper_dir(self, key: str) -> str:
        self._active_parent(key)
        return os.path.join(self._active, key, "fs")

    def _mounted_at(self, key: str) -> str | None:
        st = os.stat(os.path.join(self._active, key, "fs"))
        device = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
        for fields, _, _ in _mountinfo():
            if fields[2] != device:
                continue
            with contextlib.suppress(OSError):
                there = os.stat(fields[4])
                if (there.st_dev, there.st_ino) == (st.st_dev, st.st_ino):
                    return fields[4]
        return None


# -- helpers ------------------------------------------------------------------------


def _random_id() -> str:
    raw = int.from_bytes(os.urandom(8), "big")
    return "".join(_SHORT_ALPHABET[(raw >> (5 * i)) & 31] for i in range(_SHORT_LENGTH))


def _mkdir(path: str, mode: int) -> None:
    """mkdir with exactly MODE, whatever the umask."""
    os.mkdir(path, mode)
    os.chmod(path, mode)


def _write_file(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _mountinfo() -> Iterator[tuple[list[str], str, str]]:
    """(the fields before " - ", fstype, super options) of each mount in this namespace."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            before, _, after = line.rstrip("\n").partition(" - ")
            rest = after.split(" ")
            fields = [_unescape(x) for x in before.split(" ")]
            yield fields, rest[0], _unescape(rest[2]) if len(rest) > 2 else ""


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _make_init(fs: str) -> None:
    """The init layer's entries in the tree FS: its dirs (replacing non-dirs) and
    empty files (replacing whatever was there)."""
    fd = os.open(fs, DIR_FLAGS)
    try:
        for name in INIT_DIRS:
            try:
                os.mkdir(name, 0o755, dir_fd=fd)
                os.chmod(name, 0o755, dir_fd=fd)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(name, dir_fd=fd).st_mode):
                    os.unlink(name, dir_fd=fd)
                    os.mkdir(name, 0o755, dir_fd=fd)
                    os.chmod(name, 0o755, dir_fd=fd)
        etc = os.open("etc", DIR_FLAGS, dir_fd=fd)
        try:
            for path in INIT_FILES:
                name = path.split("/", 1)[1]
                with contextlib.suppress(FileNotFoundError):
                    if stat.S_ISDIR(os.lstat(name, dir_fd=etc).st_mode):
                        _rmtree(name, dir_fd=etc)
                    else:
                        os.unlink(name, dir_fd=etc)
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                                 os.O_CLOEXEC, 0o644, dir_fd=etc))  # fmt: skip
                os.chmod(name, 0o644, dir_fd=etc)
        finally:
            os.close(etc)
    finally:
        os.close(fd)
