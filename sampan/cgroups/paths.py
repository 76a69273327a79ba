"""Where a container's cgroup lives: cgroupsPath rules, mounts, our own cgroup.

``resolve_cgroups_path`` turns OCI ``linux.cgroupsPath`` into a path inside
each hierarchy, as runc's cgroupfs driver does:

* ``"/a/b"``      absolute: ``/a/b`` below each hierarchy's root.
* ``"a/b"``       relative: below the runtime's own cgroup (per controller in
                  v1, from /proc/self/cgroup).
* ``"system.slice:docker:abc"``  the systemd form, mapped to cgroupfs without
                  D-Bus: ``/system.slice/docker-abc.scope`` (an empty slice is
                  ``system.slice``; ``a-b.slice`` nests as
                  ``/a.slice/a-b.slice``; a name ending in ``.slice`` is used
                  as is; an empty prefix gives ``name.scope``).
* None or ``""``  ``/sampan/<container-id>``.  runc puts such a container
                  below its own cgroup; a fixed absolute place is easier to
                  find and, on cgroup v2, keeps the container out of a cgroup
                  that has processes of its own (where controllers cannot be
                  enabled).

``..`` cannot climb above the root (``/../x`` is ``/x``), and a path that
comes out as the root itself is refused.
"""

from __future__ import annotations

import posixpath

from sampan.errors import InvalidArgument

DEFAULT_PARENT = "/sampan"

# cgroup v1 controllers sampan joins, in the order runc joins them.
V1_CONTROLLERS = (
    "cpuset",
    "devices",
    "memory",
    "cpu",
    "cpuacct",
    "pids",
    "blkio",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "freezer",
    "rdma",
    "misc",
    "name=systemd",
    "",  # the cgroup2 tree of a hybrid host
)


def resolve_cgroups_path(cgroups_path: str | None, container_id: str) -> str:
    """The cleaned path: ``/x/y`` (absolute) or ``x/y`` (relative to our own cgroup)."""
    if not cgroups_path:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise InvalidArgument(f"container id {container_id!r}: not usable as a cgroup name")
        return f"{DEFAULT_PARENT}/{container_id}"
    if "\0" in cgroups_path or "\n" in cgroups_path:
        raise InvalidArgument("linux.cgroupsPath: must not contain NUL or newline")
    if not cgroups_path.startswith("/") and cgroups_path.count(":") == 2:
        cleaned = systemd_path(cgroups_path)
    else:
        cleaned = clean_path(cgroups_path)
    if cleaned in ("/", ""):
        raise InvalidArgument(f"linux.cgroupsPath: {cgroups_path!r} names the root cgroup")
    return cleaned


def clean_path(path: str) -> str:
    """Lexically clean PATH; a relative one stays relative but cannot climb out."""
    absolute = path.startswith("/")
    cleaned = posixpath.normpath("/" + path.lstrip("/"))
    return cleaned if absolute else cleaned.lstrip("/")


def systemd_path(value: str) -> str:
    """``slice:prefix:name`` -> the cgroupfs path systemd would give the unit."""
    slice_name, prefix, name = value.split(":")
    if not name or "/" in name or "/" in prefix:
        raise InvalidArgument(
            f"linux.cgroupsPath: {value!r}: expected slice:prefix:name with a non-empty name"
        )
    parent = expand_slice(slice_name or "system.slice")
    if name.endswith(".slice"):
        unit = name
    else:
        unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    return f"{parent.rstrip('/')}/{unit}"


def expand_slice(slice_name: str) -> str:
    """``a-b.slice`` -> ``/a.slice/a-b.slice``; ``-.slice`` -> ``/``."""
    suffix = ".slice"
    bad = InvalidArgument(f"linux.cgroupsPath: invalid slice name {slice_name!r}")
    if not slice_name.endswith(suffix) or len(slice_name) == len(suffix) or "/" in slice_name:
        raise bad
    stem = slice_name[: -len(suffix)]
    if stem == "-":
        return "/"
    path, prefix = "", ""
    for part in stem.split("-"):
        if not part:
            raise bad
        path += f"/{prefix}{part}{suffix}"
        prefix += part + "-"
    return path


def parse_mountinfo(text: str) -> dict[str, tuple[str, str]]:
    """cgroup mounts from /proc/self/mountinfo: controller -> (mount point, root).

    v1 controllers are keyed by name (co-mounted ones share a mount point),
    a named hierarchy as ``name=systemd``, the cgroup2 mount as ``""``.
    The first mount of a hierarchy wins.
    """
    known = set(V1_CONTROLLERS)
    mounts: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        if not sep:
            continue
        fields = head.split(" ")
        rest = tail.split(" ")
        if len(fields) < 5 or len(rest) < 3:
            continue
        fstype, options = rest[0], rest[2]
        point = _unescape(fields[4])
        root = _unescape(fields[3])
        if fstype == "cgroup2":
            mounts.setdefault("", (point, root))
        elif fstype == "cgroup":
            for opt in options.split(","):
                if opt in known and opt:
                    mounts.setdefault(opt, (point, root))
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup: controller -> path (``""`` for cgroup2's ``0::``)."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            own[""] = path
            continue
        for ctrl in controllers.split(","):
            own[ctrl] = path
    return own


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def v1_mounts(mountinfo: str = "/proc/self/mountinfo") -> dict[str, tuple[str, str]]:
    return parse_mountinfo(read_text(mountinfo))


def own_cgroups(proc_cgroup: str = "/proc/self/cgroup") -> dict[str, str]:
    return parse_proc_cgroup(read_text(proc_cgroup))


def join(mount: str, *parts: str) -> str:
    """MOUNT + parts, each part absolute or relative, without a doubled slash."""
    path = mount.rstrip("/")
    for part in parts:
        part = part.strip("/")
        if part:
            path += "/" + part
    return path or "/"
