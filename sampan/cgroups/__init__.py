"""cgroup v1 and v2 managers behind one interface.

``open_cgroup`` picks the backend for this host (one stat: a
``cgroup.controllers`` file at the mount root means pure cgroup v2; anything
else is v1, including the hybrid layout with a cgroup2 tree beside the v1
hierarchies) and imports only that backend::

    from sampan.cgroups import open_cgroup, validate_resources

    validate_resources(config["linux"].get("resources"))   # before making anything
    cg = open_cgroup(config["linux"].get("cgroupsPath"), "web1")
    cg.create()                          # mkdir everywhere; idempotent
    cg.apply(config["linux"].get("resources"))
    cg.add_process(pid)
    cg.freeze(); cg.frozen(); cg.thaw()
    cg.stats()["memory"]["usage"]["usage"]
    cg.kill_all(9); cg.destroy()         # destroy is idempotent

Where a cgroup goes is ``paths.resolve_cgroups_path`` (runc's cgroupfs
rules; no cgroupsPath means ``/sampan/<id>``).  What each OCI field becomes
on each version is tabled in ``v1.py`` and ``v2.py``; the stats shape is in
``stats.py``.  Errors: ``sampan.errors`` (InvalidArgument and Unsupported
naming the field, NotFound for a missing cgroup or process) and
``CgroupError`` (an OSError naming the file) for what the kernel refuses.
"""

from __future__ import annotations

import os

from sampan.cgroups.base import Cgroup, CgroupError, System
from sampan.cgroups.paths import resolve_cgroups_path
from sampan.cgroups.resources import validate_resources

__all__ = [
    "Cgroup",
    "CgroupError",
    "System",
    "cgroup_version",
    "open_cgroup",
    "resolve_cgroups_path",
    "validate_resources",
]

ROOT = "/sys/fs/cgroup"


def cgroup_version(root: str = ROOT) -> int:
    """2 when ROOT is a cgroup2 mount (pure v2), else 1 (v1 or hybrid)."""
    return 2 if os.path.exists(root + "/cgroup.controllers") else 1


def open_cgroup(
    cgroups_path: str | None,
    container_id: str,
    *,
    root: str = ROOT,
    system: System | None = None,
) -> Cgroup:
    """The container's cgroup on this host; does not create anything.

    CGROUPS_PATH is OCI ``linux.cgroupsPath`` (absolute, relative, the
    systemd ``slice:prefix:name`` form, or None for ``/sampan/<id>``).
    """
    path = resolve_cgroups_path(cgroups_path, container_id)
    if cgroup_version(root) == 2:
        from sampan.cgroups.v2 import V2Cgroup

        return V2Cgroup(path, root=root, system=system)
    from sampan.cgroups.v1 import V1Cgroup

    return V1Cgroup(path, system=system)
