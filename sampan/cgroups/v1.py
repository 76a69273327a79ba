"""cgroup v1: one directory per mounted hierarchy (and the cgroup2 tree of a hybrid host).

Field by field (files are in the controller's directory):

=====================================  =========================================
memory.limit / swap / reservation      memory.limit_in_bytes, memory.memsw.limit_in_bytes
                                       (ordered so the kernel accepts both, as runc),
                                       memory.soft_limit_in_bytes
memory.swappiness / disableOOMKiller   memory.swappiness, memory.oom_control
cpu.shares / quota / period / burst    cpu.shares, cpu.cfs_quota_us, cpu.cfs_period_us,
                                       cpu.cfs_burst_us
cpu.realtimeRuntime / realtimePeriod   cpu.rt_runtime_us, cpu.rt_period_us
cpu.idle                               cpu.idle
cpu.cpus / mems                        cpuset.cpus, cpuset.mems
pids.limit                             pids.max (<0: max; 0: 1, as runc)
blockIO.weight / leafWeight            blkio.weight (or blkio.bfq.weight), blkio.leaf_weight
blockIO.weightDevice                   blkio[.bfq].weight_device, blkio.leaf_weight_device
blockIO.throttle*Device                blkio.throttle.{read,write}_{bps,iops}_device
hugepageLimits                         hugetlb.<size>.limit_in_bytes (+ .rsvd. if present);
                                       on a hybrid host without a v1 hugetlb hierarchy,
                                       hugetlb.<size>.max in the cgroup2 tree when it
                                       offers hugetlb (enabled along the path)
network.classID / priorities           net_cls.classid, net_prio.ifpriomap
rdma                                   rdma.max
devices                                devices.deny / devices.allow (runc's transition)
unified                                Unsupported (needs cgroup v2)
=====================================  =========================================
"""

from __future__ import annotations

from sampan.cgroups.base import (
    SIGKILL,
    Cgroup,
    CgroupError,
    System,
    parse_uint,
    read_file,
    read_optional,
    write_field,
)
from sampan.cgroups.devices import Emulator, rules_from_oci
from sampan.cgroups.paths import V1_CONTROLLERS, join, own_cgroups, v1_mounts
from sampan.cgroups.resources import (
    device_pair,
    needs_blkio,
    needs_cpu,
    needs_cpuset,
    needs_memory,
    nonzero,
    rdma_line,
    section,
    validate_resources,
)
from sampan.errors import NotFound, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

_EINVAL, _EBUSY = 22, 16
_R = "linux.resources"


class V1Cgroup(Cgroup):
    """A container's cgroup on a cgroup v1 (or hybrid) host.

    PATH is resolved (``paths.resolve_cgroups_path``).  MOUNTS maps
    controller -> hierarchy mount point (``"name=systemd"``, ``""`` for the
    hybrid cgroup2 tree); by default it is read from /proc/self/mountinfo.
    OWN maps controller -> the runtime's own cgroup, used when PATH is
    relative; by default it is read from /proc/self/cgroup.
    """

    version = 1

    def __init__(
        self,
        path: str,
        *,
        mounts: Mapping[str, str] | None = None,
        own: Mapping[str, str] | None = None,
        system: System | None = None,
    ) -> None:
        super().__init__(system)
        roots: dict[str, str] = {}
        if mounts is None:
            found = v1_mounts()
            mounts = {ctrl: point for ctrl, (point, _) in found.items()}
            roots = {ctrl: root for ctrl, (_, root) in found.items()}
        relative = not path.startswith("/")
        if relative and own is None:
            own = own_cgroups()
        self.path = path
        self.mounts: dict[str, str] = {}
        self.paths = {}
        for ctrl in V1_CONTROLLERS:
            mount = mounts.get(ctrl)
            if mount is None:
                continue
            base = "/"
            if relative and own is not None:
                base = own.get(ctrl, "/")
                root = roots.get(ctrl, "/")
                if root != "/" and (base == root or base.startswith(root + "/")):
                    base = base[len(root) :] or "/"
            self.mounts[ctrl] = mount
            self.paths[ctrl] = join(mount, base, path)

    # -- lifecycle -------------------------------------------------------
    def create(self) -> None:
        done: set[str] = set()
        for ctrl, path in self.paths.items():
            if path in done:
                continue
            done.add(path)
            cpuset = any(c == "cpuset" and p == path for c, p in self.paths.items())
            self._makedirs(self.mounts[ctrl], path, cpuset)

    def _makedirs(self, mount: str, path: str, cpuset: bool) -> None:
        current = mount.rstrip("/")
        for part in path[len(current) :].strip("/").split("/"):
            parent, current = current, f"{current}/{part}"
            try:
                self.sys.mkdir(current)
            except OSError as exc:
                raise CgroupError(exc.errno or 0, f"mkdir {current}", current) from None
            if cpuset:
                # A new cpuset is empty, and no process may join an empty one.
                for name in ("cpuset.cpus", "cpuset.mems"):
                    mine = read_optional(self.sys, f"{current}/{name}")
                    if mine is not None and not mine.strip():
                        value = read_file(self.sys, f"{parent}/{name}").strip()
                        write_field(self.sys, "cgroup " + name, f"{current}/{name}", value)

    def apply(self, resources: Mapping[str, Any] | None) -> None:
        validate_resources(resources)
        if not resources:
            return
        for ctrl, field in self._needs(resources):
            if ctrl not in self.paths:
                raise Unsupported(f"{field}: the {ctrl} cgroup controller is not mounted")
        if resources.get("devices"):
            self._devices(resources["devices"])
        cpu = section(resources, "cpu")
        if needs_cpuset(cpu):
            for key in ("cpus", "mems"):
                if cpu.get(key):
                    self._set(f"{_R}.cpu.{key}", "cpuset", f"cpuset.{key}", cpu[key])
        if needs_memory(section(resources, "memory")):
            self._memory(section(resources, "memory"))
        if needs_cpu(cpu):
            self._cpu(cpu)
        limit = section(resources, "pids").get("limit")
        if limit is not None:
            value = str(limit) if limit > 0 else "1" if limit == 0 else "max"
            self._set(f"{_R}.pids.limit", "pids", "pids.max", value)
        if needs_blkio(section(resources, "blockIO")):
            self._blkio(section(resources, "blockIO"))
        if resources.get("hugepageLimits"):
            self._hugetlb(resources["hugepageLimits"])
        net = section(resources, "network")
        if net.get("classID") is not None:
            self._set(f"{_R}.network.classID", "net_cls", "net_cls.classid", str(net["classID"]))
        for i, prio in enumerate(net.get("priorities") or ()):
            line = f"{prio['name']} {prio['priority']}"
            self._set(f"{_R}.network.priorities[{i}]", "net_prio", "net_prio.ifpriomap", line)
        for device, limits in (resources.get("rdma") or {}).items():
            self._set(f"{_R}.rdma.{device}", "rdma", "rdma.max", rdma_line(device, limits))

    def _needs(self, resources: Mapping[str, Any]) -> list[tuple[str, str]]:
        if resources.get("unified"):
            raise Unsupported(f"{_R}.unified: needs cgroup v2 (this host uses cgroup v1)")
        cpu, net = section(resources, "cpu"), section(resources, "network")
        wanted = [
            ("devices", "devices", "" if resources.get("devices") else None),
            ("memory", "memory", needs_memory(section(resources, "memory"))),
            ("cpu", "cpu", needs_cpu(cpu)),
            ("cpuset", "cpu", needs_cpuset(cpu)),
            (
                "pids",
                "pids",
                "limit" if section(resources, "pids").get("limit") is not None else None,
            ),
            ("blkio", "blockIO", needs_blkio(section(resources, "blockIO"))),
            ("hugetlb", "hugepageLimits", "" if resources.get("hugepageLimits") else None),
            ("net_cls", "network", "classID" if net.get("classID") is not None else None),
            ("net_prio", "network", "priorities" if net.get("priorities") else None),
            ("rdma", "rdma", "" if resources.get("rdma") else None),
        ]
        needed = [(ctrl, _field(part, key)) for ctrl, part, key in wanted if key is not None]
        wants_hugetlb = any(ctrl == "hugetlb" for ctrl, _ in needed)
        if wants_hugetlb and "hugetlb" not in self.paths and self._unified_hugetlb():
            needed = [(ctrl, field) for ctrl, field in needed if ctrl != "hugetlb"]
        return needed

    def _unified_hugetlb(self) -> bool:
        """Whether the hybrid cgroup2 tree offers hugetlb (it is not a v1 hierarchy here)."""
        mount = self.mounts.get("")
        if mount is None:
            return False
        offered = read_optional(self.sys, f"{mount}/cgroup.controllers") or ""
        return "hugetlb" in offered.split()

    def _hugetlb(self, limits: list[Any]) -> None:
        if "hugetlb" in self.paths:
            directory, suffix = self.paths["hugetlb"], "limit_in_bytes"
        else:
            directory, suffix = self.paths[""], "max"
            current = self.mounts[""].rstrip("/")
            for part in directory[len(current) :].strip("/").split("/"):
                enabled = read_optional(self.sys, f"{current}/cgroup.subtree_control") or ""
                if "hugetlb" not in enabled.split():
                    field = f"{_R}.hugepageLimits"
                    write_field(self.sys, field, f"{current}/cgroup.subtree_control", "+hugetlb")
                current = f"{current}/{part}"
        for i, page in enumerate(limits):
            field, size, value = f"{_R}.hugepageLimits[{i}]", page["pageSize"], str(page["limit"])
            write_field(self.sys, field, f"{directory}/hugetlb.{size}.{suffix}", value)
            rsvd = f"{directory}/hugetlb.{size}.rsvd.{suffix}"
            if self.sys.exists(rsvd):
                write_field(self.sys, field, rsvd, value)

    def _set(self, field: str, ctrl: str, name: str, value: str) -> None:
        write_field(self.sys, field, f"{self.paths[ctrl]}/{name}", value)

    def _devices(self, devices: list[Any]) -> None:
        path = self.paths["devices"]
        target = Emulator.from_rules(rules_from_oci(devices))
        current = Emulator.from_list(read_file(self.sys, f"{path}/devices.list"))
        for rule in current.transition(target):
            name = "devices.allow" if rule.allow else "devices.deny"
            self._set(f"{_R}.devices", "devices", name, rule.cgroup_string())

    def _memory(self, mem: Mapping[str, Any]) -> None:
        f = f"{_R}.memory"
        path = self.paths["memory"]
        limit, swap = nonzero(mem, "limit"), nonzero(mem, "swap")
        if limit == -1 and swap is None and self.sys.exists(f"{path}/memory.memsw.limit_in_bytes"):
            swap = -1  # "unlimited memory" means unlimited memory+swap too
        swap_first = False
        if limit is not None and swap is not None:
            current = parse_uint(read_file(self.sys, f"{path}/memory.limit_in_bytes"))
            swap_first = swap == -1 or current < swap
        if swap is not None and swap_first:
            self._set(f"{f}.swap", "memory", "memory.memsw.limit_in_bytes", str(swap))
        if limit is not None:
            self._memory_limit(f"{f}.limit", path, limit)
        if swap is not None and not swap_first:
            self._set(f"{f}.swap", "memory", "memory.memsw.limit_in_bytes", str(swap))
        reservation = nonzero(mem, "reservation")
        if reservation is not None:
            self._set(f"{f}.reservation", "memory", "memory.soft_limit_in_bytes", str(reservation))
        if mem.get("disableOOMKiller") is not None:
            value = "1" if mem["disableOOMKiller"] else "0"
            self._set(f"{f}.disableOOMKiller", "memory", "memory.oom_control", value)
        if mem.get("swappiness") is not None:
            self._set(f"{f}.swappiness", "memory", "memory.swappiness", str(mem["swappiness"]))

    def _memory_limit(self, field: str, path: str, limit: int) -> None:
        try:
            self._set(field, "memory", "memory.limit_in_bytes", str(limit))
        except CgroupError as exc:
            if exc.errno != _EBUSY:
                raise
            usage = parse_uint(read_optional(self.sys, f"{path}/memory.usage_in_bytes") or "0")
            peak = parse_uint(read_optional(self.sys, f"{path}/memory.max_usage_in_bytes") or "0")
            raise CgroupError(
                _EBUSY,
                f"{field}: write {limit} to {path}/memory.limit_in_bytes",
                exc.filename,
                f"below the current usage {usage} (peak {peak})",
            ) from None

    def _cpu(self, cpu: Mapping[str, Any]) -> None:
        f = f"{_R}.cpu"
        if nonzero(cpu, "shares") is not None:
            self._set(f"{f}.shares", "cpu", "cpu.shares", str(cpu["shares"]))
        # The kernel checks quota against period and burst against quota at each
        # write; when one is refused, write it again after the quota (runc's order).
        quota, period, burst = nonzero(cpu, "quota"), nonzero(cpu, "period"), cpu.get("burst")
        later: list[tuple[str, str, str]] = []
        for key, name, value in (
            ("period", "cpu.cfs_period_us", period),
            ("burst", "cpu.cfs_burst_us", burst),
        ):
            if value is None:
                continue
            try:
                self._set(f"{f}.{key}", "cpu", name, str(value))
            except CgroupError as exc:
                if exc.errno != _EINVAL or quota is None:
                    raise
                later.append((f"{f}.{key}", name, str(value)))
        if quota is not None:
            self._set(f"{f}.quota", "cpu", "cpu.cfs_quota_us", str(quota))
            for field, name, value in later:
                self._set(field, "cpu", name, value)
        if cpu.get("idle") is not None:
            self._set(f"{f}.idle", "cpu", "cpu.idle", str(cpu["idle"]))
        rt_period, rt_runtime = nonzero(cpu, "realtimePeriod"), nonzero(cpu, "realtimeRuntime")
        period_later = False
        if rt_period is not None:
            try:
                self._set(f"{f}.realtimePeriod", "cpu", "cpu.rt_period_us", str(rt_period))
            except CgroupError as exc:
                if exc.errno != _EINVAL or rt_runtime is None:
                    raise
                period_later = True
        if rt_runtime is not None:
            self._set(f"{f}.realtimeRuntime", "cpu", "cpu.rt_runtime_us", str(rt_runtime))
            if period_later:
                self._set(f"{f}.realtimePeriod", "cpu", "cpu.rt_period_us", str(rt_period))

    def _blkio(self, blkio: Mapping[str, Any]) -> None:
        f = f"{_R}.blockIO"
        bfq = not self.sys.exists(f"{self.paths['blkio']}/blkio.weight")
        weight_file = "blkio.bfq.weight" if bfq else "blkio.weight"
        device_file = "blkio.bfq.weight_device" if bfq else "blkio.weight_device"
        if nonzero(blkio, "weight") is not None:
            self._set(f"{f}.weight", "blkio", weight_file, str(blkio["weight"]))
        if nonzero(blkio, "leafWeight") is not None:
            self._set(f"{f}.leafWeight", "blkio", "blkio.leaf_weight", str(blkio["leafWeight"]))
        for i, dev in enumerate(blkio.get("weightDevice") or ()):
            if dev.get("weight"):
                line = f"{device_pair(dev)} {dev['weight']}"
                self._set(f"{f}.weightDevice[{i}].weight", "blkio", device_file, line)
            if dev.get("leafWeight"):
                line = f"{device_pair(dev)} {dev['leafWeight']}"
                self._set(
                    f"{f}.weightDevice[{i}].leafWeight", "blkio", "blkio.leaf_weight_device", line
                )
        for key, name in (
            ("throttleReadBpsDevice", "read_bps_device"),
            ("throttleWriteBpsDevice", "write_bps_device"),
            ("throttleReadIOPSDevice", "read_iops_device"),
            ("throttleWriteIOPSDevice", "write_iops_device"),
        ):
            for i, dev in enumerate(blkio.get(key) or ()):
                line = f"{device_pair(dev)} {dev['rate']}"
                self._set(f"{f}.{key}[{i}]", "blkio", f"blkio.throttle.{name}", line)

    # -- freezer ---------------------------------------------------------
    def _freezer(self) -> str:
        path = self.paths.get("freezer")
        if path is None:
            raise Unsupported("freezer: the freezer cgroup controller is not mounted")
        return path + "/freezer.state"

    def _state(self, path: str) -> str:
        return read_file(self.sys, path).strip()

    def freeze(self) -> None:
        state = self._freezer()
        try:
            # FREEZING can stall while a task is in an uninterruptible sleep;
            # rewriting FROZEN (and now and then thawing) gets it going (runc).
            for i in range(1000):
                if i % 50 == 49:
                    write_field(self.sys, "freezer", state, "THAWED")
                    self.sys.sleep(0.01)
                write_field(self.sys, "freezer", state, "FROZEN")
                if i % 25 == 24:
                    self.sys.sleep(0.00001)
                now = self._state(state)
                if now == "FROZEN":
                    return
                if now != "FREEZING":
                    raise CgroupError(_EINVAL, f"freeze {state}", state, f"unexpected state {now}")
        except BaseException:
            try:
                write_field(self.sys, "freezer", state, "THAWED")
            except Exception:
                pass
            raise
        write_field(self.sys, "freezer", state, "THAWED")
        raise CgroupError(_EBUSY, f"freeze {state}", state, "still FREEZING after 1000 tries")

    def thaw(self) -> None:
        write_field(self.sys, "freezer", self._freezer(), "THAWED")

    def frozen(self) -> bool:
        if "freezer" not in self.paths:
            return False  # without a freezer nothing is ever frozen
        state = self._freezer()
        for _ in range(10000):
            text = read_optional(self.sys, state)
            if text is None:
                return False  # no cgroup, nothing frozen
            now = text.strip()
            if now == "FREEZING":
                self.sys.sleep(0.001)
                continue
            if now != "FROZEN":
                return False
            own = read_optional(self.sys, state.replace("freezer.state", "freezer.self_freezing"))
            return own is None or own.strip() == "1"
        return False

    # -- processes -------------------------------------------------------
    def _pids_dir(self) -> str:
        for ctrl in ("freezer", "pids", "devices", "memory", "cpu", ""):
            if ctrl in self.paths:
                return self.paths[ctrl]
        if not self.paths:
            raise NotFound("no cgroup hierarchy is mounted")
        return next(iter(self.paths.values()))

    def kill_all(self, sig: int) -> None:
        if not self.exists():
            return  # no cgroup, no processes
        unified = self.paths.get("")
        if sig == SIGKILL and unified and self.sys.exists(f"{unified}/cgroup.kill"):
            write_field(self.sys, "kill", f"{unified}/cgroup.kill", "1")
            if "freezer" in self.paths:
                self.thaw()  # frozen v1 tasks die only once thawed
            return
        if "freezer" not in self.paths:
            self._signal(self.pids(), sig)
            return
        was_frozen = self.frozen()
        self.freeze()
        try:
            self._signal(self.pids(), sig)
        finally:
            if not was_frozen or sig == SIGKILL:
                self.thaw()

    def stats(self) -> dict[str, Any]:
        from sampan.cgroups import stats as _stats

        if not self.exists():
            raise NotFound(f"cgroup {self._pids_dir()} does not exist")
        out = _stats.empty()
        get = self.paths.get
        _stats.v1_cpu(self.sys, get("cpu"), get("cpuacct"), out)
        _stats.v1_cpuset(self.sys, get("cpuset"), out)
        _stats.v1_memory(self.sys, get("memory"), out)
        _stats.v1_pids(self.sys, get("pids"), out)
        _stats.v1_blkio(self.sys, get("blkio"), out)
        if "hugetlb" in self.paths:
            _stats.v1_hugetlb(self.sys, get("hugetlb"), out)
        elif "" in self.paths:
            _stats.v2_hugetlb(self.sys, self.paths[""], out)
        return out


def _field(part: str, key: str) -> str:
    return f"{_R}.{part}.{key}" if key else f"{_R}.{part}"
