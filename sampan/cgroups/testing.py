"""A fake cgroup kernel over a directory tree, for tests without root.

``v1_host(tmp)`` and ``v2_host(tmp)`` lay out a hybrid v1 host and a pure v2
host under TMP; the returned ``FakeKernel`` is a ``System`` that acts like
cgroupfs on it: ``mkdir`` fills the new cgroup with its controllers' files
(v2: those enabled in the parent's ``cgroup.subtree_control``), writes to
``cgroup.procs``, ``cgroup.freeze``, ``cgroup.subtree_control`` and
``freezer.state`` have their effects, and every write is recorded in order::

    kernel, mounts = v1_host(tmp_path)
    cg = V1Cgroup("/sampan/c1", mounts=mounts, system=kernel)
    cg.create(); cg.apply({"pids": {"limit": 5}})
    assert kernel.writes_to("pids.max") == ["5"]
"""

from __future__ import annotations

import os

from sampan.cgroups.base import System

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

_MAX = "9223372036854771712"

V1_COMMON = {
    "cgroup.procs": "",
    "tasks": "",
    "notify_on_release": "0\n",
    "cgroup.clone_children": "0\n",
}
V1_FILES: dict[str, dict[str, str]] = {
    "cpuset": {"cpuset.cpus": "\n", "cpuset.mems": "\n", "cpuset.cpu_exclusive": "0\n"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "memory": {
        "memory.limit_in_bytes": _MAX,
        "memory.memsw.limit_in_bytes": _MAX,
        "memory.soft_limit_in_bytes": _MAX,
        "memory.usage_in_bytes": "0\n",
        "memory.max_usage_in_bytes": "0\n",
        "memory.failcnt": "0\n",
        "memory.memsw.usage_in_bytes": "0\n",
        "memory.memsw.max_usage_in_bytes": "0\n",
        "memory.memsw.failcnt": "0\n",
        "memory.kmem.limit_in_bytes": _MAX,
        "memory.kmem.usage_in_bytes": "0\n",
        "memory.swappiness": "60\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        "memory.stat": "cache 0\nrss 0\n",
        "memory.use_hierarchy": "1\n",
    },
    "cpu": {
        "cpu.shares": "1024\n",
        "cpu.cfs_quota_us": "-1\n",
        "cpu.cfs_period_us": "100000\n",
        "cpu.cfs_burst_us": "0\n",
        "cpu.idle": "0\n",
        "cpu.rt_runtime_us": "0\n",
        "cpu.rt_period_us": "1000000\n",
        "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
    },
    "cpuacct": {
        "cpuacct.usage": "0\n",
        "cpuacct.usage_percpu": "0 0 \n",
        "cpuacct.stat": "user 0\nsystem 0\n",
        "cpuacct.usage_all": "cpu user system\n0 0 0\n1 0 0\n",
    },
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
    "blkio": {
        "blkio.bfq.weight": "100\n",
        "blkio.bfq.weight_device": "",
        "blkio.leaf_weight": "100\n",
        "blkio.leaf_weight_device": "",
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.write_bps_device": "",
        "blkio.throttle.read_iops_device": "",
        "blkio.throttle.write_iops_device": "",
        "blkio.throttle.io_service_bytes_recursive": "Total 0\n",
        "blkio.throttle.io_serviced_recursive": "Total 0\n",
    },
    "hugetlb": {
        "hugetlb.2MB.limit_in_bytes": _MAX,
        "hugetlb.2MB.rsvd.limit_in_bytes": _MAX,
        "hugetlb.2MB.usage_in_bytes": "0\n",
        "hugetlb.2MB.max_usage_in_bytes": "0\n",
        "hugetlb.2MB.failcnt": "0\n",
    },
    "net_cls": {"net_cls.classid": "0\n"},
    "net_prio": {"net_prio.ifpriomap": "lo 0\n"},
    "freezer": {
        "freezer.state": "THAWED\n",
        "freezer.self_freezing": "0\n",
        "freezer.parent_freezing": "0\n",
    },
    "rdma": {"rdma.max": ""},
    "name=systemd": {},
}

V2_CORE = {
    "cgroup.procs": "",
    "cgroup.subtree_control": "\n",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0\n",
    "cgroup.kill": "",
    "cgroup.type": "domain\n",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
}
V2_FILES: dict[str, dict[str, str]] = {
    "cpuset": {"cpuset.cpus": "\n", "cpuset.mems": "\n", "cpuset.cpus.effective": "0-1\n"},
    "cpu": {
        "cpu.weight": "100\n",
        "cpu.max": "max 100000\n",
        "cpu.max.burst": "0\n",
        "cpu.idle": "0\n",
    },
    "io": {"io.weight": "default 100\n", "io.max": "", "io.stat": ""},
    "memory": {
        "memory.max": "max\n",
        "memory.low": "0\n",
        "memory.high": "max\n",
        "memory.swap.max": "max\n",
        "memory.current": "0\n",
        "memory.peak": "0\n",
        "memory.swap.current": "0\n",
        "memory.stat": "anon 0\nfile 0\n",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    },
    "hugetlb": {
        "hugetlb.2MB.max": "max\n",
        "hugetlb.2MB.rsvd.max": "max\n",
        "hugetlb.2MB.current": "0\n",
        "hugetlb.2MB.events": "max 0\n",
    },
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
    "rdma": {"rdma.max": ""},
    "misc": {},
}
V2_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")


class FakeKernel(System):
    """cgroupfs semantics, enough for the backends, over plain files."""

    def __init__(self, mounts: dict[str, str]) -> None:
        self.mounts = {ctrl: path.rstrip("/") for ctrl, path in mounts.items()}
        self.writes: list[tuple[str, str]] = []  # (path, data) in order
        self.killed: list[tuple[int, int]] = []
        self.filters: dict[str, bytes] = {}
        self.slept = 0.0

    # -- what the tests look at ------------------------------------------
    def writes_to(self, name: str) -> list[str]:
        """Data written to files named NAME (a base name), in order."""
        return [data for path, data in self.writes if path.rsplit("/", 1)[-1] == name]

    def written(self, prefix: str = "") -> list[tuple[str, str]]:
        """(path relative to PREFIX, data) of every write under PREFIX."""
        return [(p[len(prefix) :].lstrip("/"), d) for p, d in self.writes if p.startswith(prefix)]

    # -- System ----------------------------------------------------------
    def mkdir(self, path: str) -> bool:
        created = super().mkdir(path)
        if created:
            for name, data in self._files_for(path).items():
                with open(f"{path}/{name}", "w") as f:
                    f.write(data)
        return created

    def rmdir(self, path: str) -> None:
        if os.path.exists(f"{path}/cgroup.procs") and self.read(f"{path}/cgroup.procs").split():
            raise OSError(16, os.strerror(16), path)
        for name in os.listdir(path):
            if os.path.isfile(f"{path}/{name}"):
                os.unlink(f"{path}/{name}")
        super().rmdir(path)

    def write(self, path: str, data: str) -> None:
        self.writes.append((path, data))
        directory, _, name = path.rpartition("/")
        if not os.path.exists(path):
            raise FileNotFoundError(2, os.strerror(2), path)
        if name == "cgroup.procs":
            data = self.read(path) + data + "\n"
        elif name == "cgroup.subtree_control":
            data = self._subtree(directory, data)
        elif name == "cgroup.freeze":
            frozen = data.strip()
            self._set(f"{directory}/cgroup.events", f"populated 0\nfrozen {frozen}\n")
        elif name == "freezer.state":
            self._set(f"{directory}/freezer.self_freezing", "1\n" if "FROZEN" in data else "0\n")
        elif name == "cgroup.kill":
            for pid in self.read(f"{directory}/cgroup.procs").split():
                self.killed.append((int(pid), 9))
            return
        super().write(path, data)

    def kill(self, pid: int, sig: int) -> None:
        self.killed.append((pid, sig))

    def sleep(self, seconds: float) -> None:
        self.slept += seconds

    def attach_device_filter(self, path: str, program: bytes) -> None:
        self.filters[path] = program

    # -- internals -------------------------------------------------------
    def _set(self, path: str, data: str) -> None:
        with open(path, "w") as f:
            f.write(data)

    def _controllers_at(self, path: str) -> list[str]:
        best = max((m for m in self.mounts.values() if path.startswith(m)), key=len, default="")
        return [ctrl for ctrl, m in self.mounts.items() if m == best]

    def _files_for(self, path: str) -> dict[str, str]:
        controllers = self._controllers_at(path)
        if "" in controllers:  # cgroup2
            parent = path.rsplit("/", 1)[0]
            enabled = self.read(f"{parent}/cgroup.subtree_control").split()
            files = dict(V2_CORE, **{"cgroup.controllers": " ".join(enabled) + "\n"})
            for ctrl in enabled:
                files.update(V2_FILES.get(ctrl, {}))
            return files
        files = dict(V1_COMMON)
        for ctrl in controllers:
            files.update(V1_FILES.get(ctrl, {}))
        return files

    def _subtree(self, directory: str, data: str) -> str:
        offered = self.read(f"{directory}/cgroup.controllers").split()
        enabled = self.read(f"{directory}/cgroup.subtree_control").split()
        for word in data.split():
            ctrl = word[1:]
            if ctrl not in offered:
                raise OSError(2, os.strerror(2), f"{directory}/cgroup.subtree_control")
            if word[0] == "+" and ctrl not in enabled:
                enabled.append(ctrl)
            elif word[0] == "-" and ctrl in enabled:
                enabled.remove(ctrl)
        for child in self.subdirs(directory):  # the children see the change at once
            self._set(f"{directory}/{child}/cgroup.controllers", " ".join(enabled) + "\n")
            for ctrl in enabled:
                for name, text in V2_FILES.get(ctrl, {}).items():
                    if not os.path.exists(f"{directory}/{child}/{name}"):
                        self._set(f"{directory}/{child}/{name}", text)
        return " ".join(enabled) + "\n"


def _write_files(directory: str, files: dict[str, str]) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, data in files.items():
        with open(f"{directory}/{name}", "w") as f:
            f.write(data)


def v1_host(
    tmp: object, controllers: Iterable[str] | None = None, unified: Iterable[str] = ()
) -> tuple[FakeKernel, dict[str, str]]:
    """A hybrid host under TMP: v1 hierarchies (default: this machine's) and cgroup2 at unified.

    UNIFIED lists the controllers the cgroup2 tree offers (this machine's: hugetlb).
    """
    base = str(tmp)
    if controllers is None:
        controllers = (
            "cpuset",
            "devices",
            "memory",
            "cpu",
            "cpuacct",
            "pids",
            "blkio",
            "freezer",
            "name=systemd",
        )
    mounts: dict[str, str] = {}
    for ctrl in controllers:
        mount = f"{base}/{ctrl.removeprefix('name=')}"
        root_files = dict(V1_COMMON, **V1_FILES.get(ctrl, {}))
        if ctrl == "cpuset":
            root_files.update({"cpuset.cpus": "0-1\n", "cpuset.mems": "0\n"})
        _write_files(mount, root_files)
        mounts[ctrl] = mount
    tree = f"{base}/unified"
    _write_files(tree, dict(V2_CORE, **{"cgroup.controllers": " ".join(unified) + "\n"}))
    mounts[""] = tree
    return FakeKernel(mounts), mounts


def v2_host(tmp: object, controllers: Iterable[str] = V2_CONTROLLERS) -> tuple[FakeKernel, str]:
    """A pure cgroup v2 host under TMP offering CONTROLLERS at its root."""
    root = str(tmp)
    files = dict(V2_CORE, **{"cgroup.controllers": " ".join(controllers) + "\n"})
    files["cpuset.cpus.effective"] = "0-1\n"
    _write_files(root, files)
    return FakeKernel({"": root}), root
