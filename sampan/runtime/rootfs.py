"""The container's filesystem: mounts, devices, pivot_root, masked paths.

Runs inside the container's new mount namespace, in the init process,
before the user's program.  Two halves: ``prepare`` (before pivot_root,
host paths still visible) and ``finish`` (after it, inside the new root).
"""

from __future__ import annotations

import os
import stat

from sampan.errors import InvalidArgument
from sampan.linux import constants as C
from sampan.linux.errors import SyscallError
from sampan.linux.syscalls import mount, mount_setattr, pivot_root, umount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# (path, major, minor): the nodes every container gets, mode 0666, as runc makes them.
DEFAULT_DEVICES = (
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)
DEFAULT_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)
# The cgroup rules that make DEFAULT_DEVICES (and ptys, tun) usable: (type, major, minor, access).
DEFAULT_DEVICE_RULES = (
    ("c", None, None, "m"),
    ("b", None, None, "m"),
    ("c", 1, 3, "rwm"),
    ("c", 1, 5, "rwm"),
    ("c", 1, 7, "rwm"),
    ("c", 1, 8, "rwm"),
    ("c", 1, 9, "rwm"),
    ("c", 5, 0, "rwm"),
    ("c", 5, 1, "rwm"),
    ("c", 5, 2, "rwm"),
    ("c", 136, None, "rwm"),
    ("c", 10, 200, "rwm"),
)
# Flags a bind remount must keep (the kernel refuses to clear locked ones in a user ns).
_ST_KEEP = {2: C.MS_NOSUID, 4: C.MS_NODEV, 8: C.MS_NOEXEC, 1024: C.MS_NOATIME,
            2048: C.MS_NODIRATIME, 4096: C.MS_RELATIME}  # fmt: skip
_ST_RDONLY = 1
# The flags a parent user namespace can lock on a mount (runc's mntLockFlags).
_LOCKABLE = (C.MS_RDONLY | C.MS_NOSUID | C.MS_NODEV | C.MS_NOEXEC | C.MS_NOATIME | C.MS_RELATIME
             | C.MS_NODIRATIME)  # fmt: skip
_ATIME = C.MS_NOATIME | C.MS_RELATIME | C.MS_STRICTATIME
_MAX_SYMLINKS = 255


def securejoin(root: str, unsafe: str) -> str:
    """ROOT + UNSAFE with every symlink resolved as if ROOT were '/': never outside ROOT."""
    pending = [p for p in unsafe.split("/") if p not in ("", ".")]
    pending.reverse()
    done: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = root + "/" + "/".join([*done, part])
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            done.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            done.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise SyscallError(40, "resolve", unsafe)  # ELOOP
        target = os.readlink(candidate)
        if target.startswith("/"):
            done = []
        pending.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
    return root + ("/" + "/".join(done) if done else "")


def clean_path(path: str) -> str:
    """PATH made absolute and lexically clean ('..' stops at '/'), as Go's filepath.Clean('/'+p)."""
    out: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if out:
                out.pop()
        elif part and part != ".":
            out.append(part)
    return "/" + "/".join(out)


def check_mounts(config: dict[str, Any]) -> list[str]:
    """Before anything is made: refuse mount options sampan cannot honour (InvalidArgument);
    return warnings for what the kernel will ignore -- filesystem options on a bind mount,
    which runc passes on (and the kernel drops) without a word."""
    warnings = []
    for i, m in enumerate(config.get("mounts", [])):
        try:
            opts = MountOptions(m.get("options", []))
        except ValueError as exc:
            raise InvalidArgument(f"config.json: mounts[{i}].options: {exc}") from None
        if opts.data and (m.get("type") == "bind" or opts.flags & C.MS_BIND):
            ignored = ",".join(opts.data)
            warnings.append(f"mounts[{i}].options: {ignored}: ignored on a bind mount")
    return warnings


class MountOptions:
    """A mount's ``options``, sorted out.

    flags      mount(2) flags to set          cleared  flags an option asked to clear
    prop       propagation (MS_SHARED...)     data     the rest: the filesystem's own options
    rec_set    mount_setattr(2) attributes to set (and rec_clr: to clear) on the whole
               tree, from the OCI spec's recursive options (rro, rnosuid, ...)

    ``idmap``/``ridmap`` raise ValueError: id-mapped mounts are not supported.
    """

    __slots__ = ("cleared", "data", "flags", "prop", "rec_clr", "rec_set")

    def __init__(self, options: list[str]) -> None:
        flags = cleared = prop = rec_set = rec_clr = 0
        data: list[str] = []
        for opt in options:
            known = C.MOUNT_OPTIONS.get(opt)
            if known is not None:
                clear, flag = known
                if clear:
                    flags &= ~flag
                    cleared |= flag
                else:
                    flags |= flag
                    cleared &= ~flag
            elif opt in C.PROPAGATION_OPTIONS:
                prop |= C.PROPAGATION_OPTIONS[opt]
            elif opt in C.RECURSIVE_MOUNT_OPTIONS:
                clear, attr = C.RECURSIVE_MOUNT_OPTIONS[opt]
                if attr & ~C.MOUNT_ATTR__ATIME:  # a flag of its own
                    if clear:
                        rec_clr |= attr
                        rec_set &= ~attr
                    else:
                        rec_set |= attr
                        rec_clr &= ~attr
                elif not clear:
                    # The atime setting is one value: mount_setattr(2) wants all of
                    # MOUNT_ATTR__ATIME in attr_clr along with the new one in attr_set.
                    rec_clr |= C.MOUNT_ATTR__ATIME
                    rec_set = rec_set & ~C.MOUNT_ATTR__ATIME | attr
                elif attr and (
                    not rec_clr & C.MOUNT_ATTR__ATIME or rec_set & C.MOUNT_ATTR__ATIME == attr
                ):
                    # ratime, rnostrictatime: back to the default, relatime (rnorelatime
                    # has nothing to go back to).
                    rec_clr |= C.MOUNT_ATTR__ATIME
                    rec_set &= ~C.MOUNT_ATTR__ATIME
            elif opt in ("idmap", "ridmap"):
                raise ValueError(f"{opt}: id-mapped mounts are not supported yet")
            elif opt not in C.IGNORED_MOUNT_OPTIONS:
                data.append(opt)
        self.flags = flags
        self.cleared = cleared
        self.prop = prop
        self.rec_set = rec_set
        self.rec_clr = rec_clr
        self.data = data


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """Mount options -> (flags, propagation flags, data string for the filesystem)."""
    o = MountOptions(options)
    return o.flags, o.prop, ",".join(o.data)


def _mount_flags(path: str) -> int:
    """The MS_* flags of the mount at PATH that statvfs shows (MS_RDONLY included)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    flags = sum(flag for bit, flag in _ST_KEEP.items() if st.f_flag & bit)
    return flags | C.MS_RDONLY if st.f_flag & _ST_RDONLY else flags


def _locked_flags(path: str) -> int:
    return _mount_flags(path) & ~C.MS_RDONLY


def _mkdirs(path: str) -> None:
    try:
        os.makedirs(path, 0o755, exist_ok=True)
    except FileExistsError:
        pass


def _make_target(path: str, as_dir: bool) -> None:
    if as_dir:
        _mkdirs(path)
        return
    _mkdirs(os.path.dirname(path))
    try:
        # Exclusive: never through a symlink that appeared at PATH since it was resolved.
        flags = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY | os.O_CLOEXEC
        os.close(os.open(path, flags, 0o644))
    except FileExistsError:
        pass


def _remount_bind(dest: str, flags: int, cleared: int) -> None:
    """Remount the bind mount DEST with FLAGS, as runc does.

    First with just the flags asked for.  A mount from a more privileged user
    namespace has locked flags that only its owner may clear (EPERM): then again
    with them kept -- unless the config asked to clear one, or wants another
    atime mode than the locked one, which cannot be honoured.
    """
    try:
        mount(None, dest, None, flags)
        return
    except SyscallError as exc:
        if exc.errno != 1:  # EPERM
            raise
        first = exc
    locked = _mount_flags(dest) & _LOCKABLE
    refused = [name for name, (clear, flag) in C.MOUNT_OPTIONS.items()
               if clear and flag & cleared & locked]  # fmt: skip
    want_atime = flags & (C.MS_NOATIME | C.MS_RELATIME)
    if not refused and flags & _ATIME and want_atime != locked & (C.MS_NOATIME | C.MS_RELATIME):
        refused = [name for name in ("noatime", "relatime", "strictatime")
                   if flags & C.MOUNT_OPTIONS[name][1]]  # fmt: skip
    if refused:
        raise OSError(
            first.errno,
            f"{', '.join(refused)}: the mount's flags are locked (by the owner of"
            " a parent user namespace) and cannot be changed",
        )
    mount(None, dest, None, flags | locked)


def _split(path: str) -> tuple[str, str]:
    """'/dev/net/tun' -> ('/dev/net', 'tun'): a path's directory and its last name."""
    parent, _, name = clean_path(path).rpartition("/")
    if not name:
        raise InvalidArgument(f"{path!r}: not a path to a file")
    return parent or "/", name


def _symlink(target: str, name: str, dirfd: int, replace: bool = False) -> None:
    """NAME -> TARGET in the directory DIRFD; an existing NAME is kept unless REPLACE.

    NAME itself is never followed: an image's symlink there is replaced or kept,
    never written through.
    """
    try:
        os.symlink(target, name, dir_fd=dirfd)
        return
    except FileExistsError:
        if not replace:
            return
    try:
        if os.readlink(name, dir_fd=dirfd) == target:
            return
    except OSError:
        pass  # not a symlink
    os.unlink(name, dir_fd=dirfd)
    os.symlink(target, name, dir_fd=dirfd)


class RootfsBuilder:
    """Build the container's root under ROOTFS from the validated config."""

    def __init__(
        self,
        config: dict[str, Any],
        bundle: str,
        rootfs: str,
        in_userns: bool,
        own_mount_ns: bool = True,
    ) -> None:
        self.own_mount_ns = own_mount_ns
        self.config = config
        self.linux: dict[str, Any] = config.get("linux", {})
        self.bundle = bundle
        self.rootfs = rootfs
        self.in_userns = in_userns
        self.readonly_later: list[tuple[str, int]] = []
        self.cgroup_ns = any(ns["type"] == "cgroup" for ns in self.linux.get("namespaces", []))
        # Called once before a cgroup mount reads /proc/self/cgroup: the runtime may
        # still be moving this process into the container's cgroup (init.py).
        self.before_cgroup_mount: Callable[[], None] | None = None

    # -- before pivot_root ----------------------------------------------------------

    def prepare(self) -> None:
        if self.own_mount_ns:
            prop = self._root_propagation()
            mount(None, "/", None, prop)
            # After a recursive slave or private no mount here is shared, the rootfs's
            # own included.  Otherwise make the mount the rootfs is on slave or private
            # (runc's rootfsParentMountPropagation): shared, it would hand the mounts
            # below to the host, and pivot_root refuses a new root on a shared mount.
            if not (prop & C.MS_REC and prop & (C.MS_SLAVE | C.MS_PRIVATE)):
                self._parent_propagation(C.MS_SLAVE if prop & C.MS_SLAVE else C.MS_PRIVATE)
        # Also without a mount namespace: a read-only root then remounts this
        # bind mount, never the host filesystem below it.
        mount(self.rootfs, self.rootfs, None, C.MS_BIND | C.MS_REC)
        dev_bound = False
        for i, m in enumerate(self.config.get("mounts", [])):
            try:
                opts = MountOptions(m.get("options", []))
            except ValueError as exc:
                raise InvalidArgument(f"mounts[{i}].options: {exc}") from None
            bind = m.get("type") == "bind" or bool(opts.flags & C.MS_BIND)
            try:
                self._mount(m, opts, bind)
            except OSError as exc:
                raise InvalidArgument(
                    f"mounts[{i}]: cannot mount {m.get('type', 'bind')} {m.get('source', '')!r}"
                    f" on {m['destination']}: {exc.strerror}"
                ) from None
            if bind and not dev_bound:
                dev_bound = clean_path(m["destination"]) == "/dev"
        # A /dev bound from elsewhere is taken as it is (runc's needsSetupDev): its
        # nodes and links would be made in a directory of the host.
        if not dev_bound:
            self._devices()

    def _root_propagation(self) -> int:
        name = self.linux.get("rootfsPropagation")
        return C.PROPAGATION_OPTIONS[name] if name else C.MS_SLAVE | C.MS_REC

    def _parent_propagation(self, flag: int) -> None:
        """Set FLAG on the mount the rootfs is on: the nearest mount point at or above it."""
        path = self.rootfs
        while True:
            try:
                mount(None, path, None, flag)
                return
            except SyscallError as exc:
                if exc.errno != 22 or path == "/":  # EINVAL: not a mount point
                    raise
            path = os.path.dirname(path)

    def _mount(self, m: dict[str, Any], opts: MountOptions, bind: bool) -> None:
        dest = securejoin(self.rootfs, m["destination"])
        options = m.get("options", [])
        flags, prop, data = opts.flags, opts.prop, ",".join(opts.data)
        kind = m.get("type", "")
        source = m.get("source", "")
        if bind:
            self._bind(source, dest, flags, prop, opts.cleared)
        elif kind == "cgroup":
            self._cgroup(dest, flags)
        else:
            if kind == "tmpfs" and os.path.isdir(dest):
                # A tmpfs over a directory keeps its mode unless mode= says otherwise (runc).
                mode = f"mode={stat.S_IMODE(os.stat(dest).st_mode):04o}"
                data = f"{mode},{data}" if data else mode
            _make_target(dest, True)
            ro_later = kind == "tmpfs" and flags & C.MS_RDONLY
            # tmpcopyup (podman's tmpfs mounts): the tmpfs starts with what it hides.
            hidden = -1
            if kind == "tmpfs" and "tmpcopyup" in options:
                hidden = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                mount(source, dest, kind, flags & ~C.MS_RDONLY if ro_later else flags, data or None)
                if hidden >= 0:
                    copy_up(hidden, dest)
            except SyscallError as exc:
                if kind not in ("sysfs", "mqueue") or exc.errno != 1:
                    raise
                # Without its own network (or ipc) namespace the kernel refuses a new
                # sysfs (mqueue); bind the host's, as runc does.
                host = "/sys" if kind == "sysfs" else "/dev/mqueue"
                self._bind(host, dest, flags | C.MS_BIND | C.MS_REC, 0)
            if ro_later:
                self.readonly_later.append((dest, flags))
        if prop and not bind:
            mount(None, dest, None, prop)
        if opts.rec_set or opts.rec_clr:
            mount_setattr(dest, opts.rec_set, opts.rec_clr)

    def _bind(self, source: str, dest: str, flags: int, prop: int, cleared: int = 0) -> None:
        if not source.startswith("/"):
            source = f"{self.bundle}/{source}"
        st = os.stat(source)
        _make_target(dest, stat.S_ISDIR(st.st_mode))
        mount(source, dest, None, C.MS_BIND | (flags & C.MS_REC))
        # The bind keeps the source's flags; a remount sets the ones asked for, when
        # any flag was asked for or asked to be cleared -- and keeps the source's
        # nosuid/nodev/noexec unless the config clears them by name (suid, dev,
        # exec): `-v /host:/x:rw` must not make a nosuid host filesystem suid.
        if flags & ~(C.MS_BIND | C.MS_REC | C.MS_REMOUNT) or cleared:
            kept = _mount_flags(dest) & (C.MS_NOSUID | C.MS_NODEV | C.MS_NOEXEC) & ~cleared
            _remount_bind(dest, C.MS_BIND | C.MS_REMOUNT | (flags & ~C.MS_REC) | kept, cleared)
        if prop:
            mount(None, dest, None, prop)

    def _cgroup(self, dest: str, flags: int) -> None:
        """The container's cgroups at DEST, as runc shows them: its own cgroup is the root."""
        _make_target(dest, True)
        v1: list[tuple[str, str, str]] = []  # (mount point, root within hierarchy, options)
        v2: str | None = None
        with open("/proc/self/mountinfo") as f:
            for line in f:
                pre, _, post = line.partition(" - ")
                fields = pre.split(" ")
                fstype, _src, superopts = post.split(" ", 2)
                if fstype == "cgroup2" and fields[4] == "/sys/fs/cgroup":
                    v2 = fields[4]
                elif fstype == "cgroup":
                    kept = [
                        o
                        for o in superopts.strip().split(",")
                        if o not in ("rw", "ro") and not o.startswith("release_agent")
                    ]
                    v1.append((fields[4], fields[3], ",".join(kept)))
        if self.before_cgroup_mount is not None:
            self.before_cgroup_mount()
            self.before_cgroup_mount = None
        own = _own_cgroups()
        bind_flags = flags & (C.MS_NOSUID | C.MS_NODEV | C.MS_NOEXEC | C.MS_RELATIME)
        if v2 and not v1:
            if self.cgroup_ns:
                mount("cgroup2", dest, "cgroup2", flags)
            else:
                mount(v2 + own.get("", "/"), dest, None, C.MS_BIND | C.MS_REC)
                mount(None, dest, None, C.MS_BIND | C.MS_REMOUNT | flags | _locked_flags(dest))
            return
        mount("tmpfs", dest, "tmpfs", bind_flags, "mode=755")
        for point, _root, opts in v1:
            name = os.path.basename(point)
            sub = f"{dest}/{name}"
            _make_target(sub, True)
            ctrl = next((o for o in opts.split(",") if o in own), None)
            if ctrl is None and "name=systemd" in opts:
                ctrl = "name=systemd"
            if self.cgroup_ns:
                mount("cgroup", sub, "cgroup", flags, opts)
            else:
                path = own.get(ctrl or "", "/")
                mount(point + path, sub, None, C.MS_BIND | C.MS_REC)
                mount(None, sub, None, C.MS_BIND | C.MS_REMOUNT | flags | _locked_flags(sub))
        # The cgroup2 tree of a hybrid host (/sys/fs/cgroup/unified, no controllers)
        # is not shown, as runc does not show it.
        if flags & C.MS_RDONLY:
            self.readonly_later.append((dest, bind_flags | C.MS_RDONLY))

    def _devices(self) -> None:
        """The nodes and links of /dev.

        Only each path's directory is resolved (inside the rootfs); its last
        name is acted on through that directory's fd and never followed, so a
        symlink in the image cannot point the work at a file elsewhere.
        """
        dirs: dict[str, int] = {}
        umask = os.umask(0)  # nodes get exactly their fileMode (runc's createDevices)
        try:
            for path, major, minor in DEFAULT_DEVICES:
                self._node(dirs, path, "c", major, minor, 0o666, 0, 0)
            for d in self.linux.get("devices", []):
                mode = d.get("fileMode", 0o666)
                self._node(dirs, d["path"], d["type"], d.get("major", 0), d.get("minor", 0),
                           mode, d.get("uid", 0), d.get("gid", 0))  # fmt: skip
            links = [(target, link, False) for target, link in DEFAULT_SYMLINKS]
            if os.path.exists("/proc/kcore"):
                links.append(("/proc/kcore", "/dev/core", False))
            if os.path.exists(securejoin(self.rootfs, "/dev/pts/ptmx")):
                links.append(("pts/ptmx", "/dev/ptmx", True))
            dev = self._dir(dirs, "/dev")
            for target, link, replace in links:
                try:
                    _symlink(target, link[5:], dev, replace)
                except OSError as exc:
                    raise SyscallError(exc.errno or 0, "symlink", link) from None
        finally:
            os.umask(umask)
            for fd in dirs.values():
                os.close(fd)

    def _dir(self, dirs: dict[str, int], path: str) -> int:
        """An O_PATH fd of directory PATH of the container (made if missing), kept in DIRS."""
        fd = dirs.get(path)
        if fd is None:
            full = securejoin(self.rootfs, path)
            _mkdirs(full)
            fd = os.open(full, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            dirs[path] = fd
        return fd

    def _node(self, dirs: dict[str, int], path: str, kind: str, major: int, minor: int,
              mode: int, uid: int, gid: int) -> None:  # fmt: skip
        parent, name = _split(path)
        try:
            dirfd = self._dir(dirs, parent)
            if self.in_userns:
                # mknod is refused in a user namespace: bind the host's node instead.
                _bind_node(path, name, dirfd)
                return
            fmt = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK,
                   "p": stat.S_IFIFO}[kind]  # fmt: skip
            rdev = os.makedev(major, minor) if kind != "p" else 0
            try:
                os.mknod(name, fmt | (mode & 0o7777), rdev, dir_fd=dirfd)
            except FileExistsError:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                if stat.S_IFMT(st.st_mode) == fmt and st.st_rdev == rdev:
                    return  # the image has it already
                os.unlink(name, dir_fd=dirfd)  # a symlink is removed, not followed
                os.mknod(name, fmt | (mode & 0o7777), rdev, dir_fd=dirfd)
            os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
        except OSError as exc:
            raise SyscallError(exc.errno or 0, "device", path) from None

    # -- the switch ------------------------------------------------------------------

    def pivot(self, no_pivot: bool) -> None:
        if not self.own_mount_ns:
            # The host's mount namespace: chroot, as runc does; delete unmounts
            # what was mounted under the rootfs.
            os.chroot(self.rootfs)
            os.chdir("/")
            return
        if no_pivot:
            os.chdir(self.rootfs)
            # A shared "/" would carry the move to the host's "/" (runc's msMoveRoot has
            # that flaw); rootfsPropagation is applied to the new root afterwards.
            mount(None, "/", None, C.MS_PRIVATE)
            mount(self.rootfs, "/", None, C.MS_MOVE)
            os.chroot(".")
            os.chdir("/")
        else:
            old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
            new = os.open(self.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fchdir(new)
                pivot_root(".", ".")
                # The old root is now stacked on top of the new one: detach it.
                os.fchdir(old)
                mount(None, ".", None, C.MS_SLAVE | C.MS_REC)
                umount(".", C.MNT_DETACH)
                os.chdir("/")
            finally:
                os.close(old)
                os.close(new)
        # rootfsPropagation is the new root's own (runc): set now, on the new root, so
        # that "shared" makes no peer of a host mount.  (Slave or private it is already.)
        if self.linux.get("rootfsPropagation"):
            prop = self._root_propagation()
            if not prop & (C.MS_PRIVATE | C.MS_SLAVE):
                mount(None, "/", None, prop)

    # -- after pivot_root ------------------------------------------------------------

    def finish(self) -> None:
        for dest, flags in self.readonly_later:
            inside = dest[len(self.rootfs) :] or "/"
            mount(None, inside, None, C.MS_REMOUNT | flags | C.MS_RDONLY)
        for path in self.linux.get("maskedPaths", []):
            mask_path(path)
        for path in self.linux.get("readonlyPaths", []):
            readonly_path(path)
        if self.config["root"].get("readonly"):
            mount(None, "/", None, C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY | _locked_flags("/"))


def _bind_node(host: str, name: str, dirfd: int) -> None:
    """Bind the host's node HOST over NAME in DIRFD (an empty file, made if missing)."""
    create = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_RDONLY | os.O_CLOEXEC
    try:
        fd = os.open(name, create, 0o644, dir_fd=dirfd)
    except FileExistsError:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
        if stat.S_ISLNK(os.fstat(fd).st_mode):  # the image's symlink: replaced, not followed
            os.close(fd)
            os.unlink(name, dir_fd=dirfd)
            fd = os.open(name, create, 0o644, dir_fd=dirfd)
    try:
        # Through the fd: the mount lands on exactly the file opened.
        mount(host, f"/proc/self/fd/{fd}", None, C.MS_BIND)
    except SyscallError as exc:
        raise SyscallError(exc.errno or 0, "bind", host) from None
    finally:
        os.close(fd)


def _own_cgroups() -> dict[str, str]:
    """controller -> this process's cgroup path ('' for the v2 tree), from /proc/self/cgroup."""
    out: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for ctrl in ctrls.split(",") if ctrls else [""]:
                out[ctrl] = path
    return out


def mask_path(path: str) -> None:
    """Hide PATH: /dev/null over a file, an empty read-only tmpfs over a directory."""
    try:
        mount("/dev/null", path, None, C.MS_BIND)
    except SyscallError as exc:
        if exc.errno == 2:  # ENOENT: nothing to hide
            return
        if exc.errno != 20:  # ENOTDIR: PATH is a directory
            raise
        mount("tmpfs", path, "tmpfs", C.MS_RDONLY)


def copy_up(src_fd: int, dest: str) -> None:
    """Copy the tree of directory SRC_FD into DEST (an empty tmpfs), then close SRC_FD.

    As runc's tmpcopyup: directories, regular files, symlinks, fifos and device
    nodes, with their owner and mode; sockets are skipped.  Every step goes
    through directory fds, so no path is resolved twice.
    """
    dest_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _copy_dir(src_fd, dest_fd)
    except OSError as exc:
        raise InvalidArgument(f"tmpcopyup: cannot copy up {dest}: {exc}") from None
    finally:
        os.close(dest_fd)
        os.close(src_fd)


def _copy_dir(src: int, dst: int) -> None:
    nofollow = os.O_NOFOLLOW | os.O_CLOEXEC
    for entry in os.scandir(src):
        name = entry.name
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        kind = stat.S_IFMT(st.st_mode)
        perm = stat.S_IMODE(st.st_mode)
        if kind == stat.S_IFLNK:
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
            continue
        if kind == stat.S_IFDIR:
            os.mkdir(name, 0o700, dir_fd=dst)
            sub_src = os.open(name, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=src)
            sub_dst = os.open(name, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=dst)
            try:
                _copy_dir(sub_src, sub_dst)
                os.fchown(sub_dst, st.st_uid, st.st_gid)
                os.fchmod(sub_dst, perm)
            finally:
                os.close(sub_src)
                os.close(sub_dst)
            continue
        if kind == stat.S_IFREG:
            fin = os.open(name, os.O_RDONLY | nofollow, dir_fd=src)
            try:
                fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | nofollow, 0o600,
                               dir_fd=dst)  # fmt: skip
                try:
                    while os.sendfile(fout, fin, None, 1 << 20):
                        pass
                    os.fchown(fout, st.st_uid, st.st_gid)
                    os.fchmod(fout, perm)
                finally:
                    os.close(fout)
            finally:
                os.close(fin)
            continue
        if kind in (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK):
            os.mknod(name, kind | 0o600, st.st_rdev, dir_fd=dst)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
            os.chmod(name, perm, dir_fd=dst)


def readonly_path(path: str) -> None:
    try:
        mount(path, path, None, C.MS_BIND | C.MS_REC)
    except SyscallError as exc:
        if exc.errno == 2:
            return
        raise
    flags = C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY | C.MS_REC | _locked_flags(path)
    mount(None, path, None, flags)


def top_mount_id(path: str) -> int:
    """The id of the mount on top at PATH (0 if none): mountinfo lists later mounts later."""
    top = 0
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" ", 5)
            if fields[4].replace("\\040", " ") == path:
                top = int(fields[0])
    return top


def detach_ours(rootfs: str, below: int) -> None:
    """Detach what a container without a mount namespace stacked at ROOTFS -- the
    runtime's bind of the rootfs onto itself, and with it every mount made under it --
    down to BELOW, the mount that was on top before (the caller's, which stays)."""
    for _ in range(64):
        top = top_mount_id(rootfs)
        if top in (0, below):
            return
        umount(rootfs, C.MNT_DETACH)
