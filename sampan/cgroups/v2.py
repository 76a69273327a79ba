"""cgroup v2: one directory in the unified tree.

``create`` makes the directory and, at each level above it (from the mount
root, or from our own cgroup for a relative path), enables in
``cgroup.subtree_control`` every controller that ``cgroup.controllers``
offers, as runc does; a controller the kernel refuses there is skipped, and
``apply`` later names it if a field needs it.

Field by field, as runc converts the cgroup v1 shaped OCI fields:

=====================================  =========================================
memory.limit / reservation             memory.max, memory.low (-1: max)
memory.swap (memory+swap)              memory.swap.max = swap - limit
memory.checkBeforeUpdate               refuses a limit at or below memory.current
memory.swappiness, disableOOMKiller    Unsupported (no v2 equivalent)
cpu.shares                             cpu.weight = 1 + (shares-2)*9999/262142
cpu.quota / period / burst / idle      cpu.max "quota period", cpu.max.burst, cpu.idle
cpu.realtime*                          Unsupported (no v2 equivalent)
cpu.cpus / mems                        cpuset.cpus, cpuset.mems
pids.limit                             pids.max
blockIO.weight, weightDevice           io.bfq.weight (as is) or io.weight
                                       (1 + (w-10)*9999/990)
blockIO.throttle*Device                io.max "maj:min rbps=|wbps=|riops=|wiops=N"
blockIO.leafWeight                     Unsupported (no v2 equivalent)
hugepageLimits                         hugetlb.<size>.max (+ .rsvd.max if present)
rdma                                   rdma.max
network                                Unsupported (net_cls/net_prio are v1 only)
devices                                a BPF_PROG_TYPE_CGROUP_DEVICE program (devices.py)
unified                                each key's file, line by line
=====================================  =========================================
"""

from __future__ import annotations

from sampan.cgroups.base import (
    SIGKILL,
    Cgroup,
    CgroupError,
    System,
    parse_kv,
    parse_uint,
    read_file,
    read_optional,
    write_field,
)
from sampan.cgroups.paths import join, own_cgroups
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
from sampan.errors import Conflict, NotFound, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

_EBUSY = 16
_EINVAL = 22
_R = "linux.resources"


def cpu_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000] (runc's formula)."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def io_weight(weight: int) -> int:
    """blkio weight [10, 1000] -> io.weight [1, 10000] (runc's formula)."""
    weight = min(max(weight, 10), 1000)
    return 1 + (weight - 10) * 9999 // 990


def swap_max(swap: int | None, limit: int | None) -> str | None:
    """OCI memory+swap -> memory.swap.max (None: leave it alone), as runc converts."""
    if limit == -1 and swap is None:
        return "max"  # unlimited memory means unlimited swap too
    if swap is None:
        return None
    if swap == -1 or limit == -1:
        return "max" if swap == -1 else str(swap)
    if limit is None:  # validate_resources refuses this already
        raise Conflict(f"{_R}.memory.swap: cannot set swap without memory.limit")
    return str(swap - limit)


class V2Cgroup(Cgroup):
    """A container's cgroup on the unified hierarchy mounted at ROOT.

    PATH is resolved (``paths.resolve_cgroups_path``); a relative one is
    below OWN (default: the ``0::`` line of /proc/self/cgroup).
    """

    version = 2

    def __init__(
        self,
        path: str,
        *,
        root: str = "/sys/fs/cgroup",
        own: str | None = None,
        system: System | None = None,
    ) -> None:
        super().__init__(system)
        base = "/"
        if not path.startswith("/"):
            base = own if own is not None else own_cgroups().get("", "/")
        self.path = path
        self.root = root.rstrip("/") or "/"
        self.base = join(self.root, base)
        self.dir = join(self.base, path)
        self.paths = {"": self.dir}

    # -- lifecycle -------------------------------------------------------
    def create(self) -> None:
        current = self.base
        for part in self.dir[len(current) :].strip("/").split("/"):
            self._enable_controllers(current)
            current = f"{current}/{part}"
            try:
                self.sys.mkdir(current)
            except OSError as exc:
                raise CgroupError(exc.errno or 0, f"mkdir {current}", current) from None

    def _enable_controllers(self, path: str) -> None:
        offered = read_optional(self.sys, f"{path}/cgroup.controllers")
        if offered is None:
            return
        enabled = (read_optional(self.sys, f"{path}/cgroup.subtree_control") or "").split()
        missing = [c for c in offered.split() if c not in enabled]
        if not missing:
            return
        target = f"{path}/cgroup.subtree_control"
        try:
            self.sys.write(target, " ".join("+" + c for c in missing))
        except OSError:
            for ctrl in missing:  # enable what can be; apply() names what is missing
                try:
                    self.sys.write(target, "+" + ctrl)
                except OSError:
                    pass

    def controllers(self) -> list[str]:
        """The controllers this cgroup can use (its cgroup.controllers)."""
        text = read_optional(self.sys, f"{self.dir}/cgroup.controllers")
        if text is None:
            raise NotFound(f"cgroup {self.dir} does not exist")
        return text.split()

    def apply(self, resources: Mapping[str, Any] | None) -> None:
        validate_resources(resources)
        if not resources:
            return
        needed = self._needs(resources)
        if needed:
            available = set(self.controllers())
            for ctrl, field in needed:
                if ctrl not in available:
                    offered = " ".join(sorted(available)) or "none"
                    raise Unsupported(
                        f"{field}: the {ctrl} controller is not available in {self.dir}"
                        f" (cgroup.controllers: {offered})"
                    )
        limit = section(resources, "pids").get("limit")
        if limit is not None:
            value = str(limit) if limit > 0 else "1" if limit == 0 else "max"
            self._set(f"{_R}.pids.limit", "pids.max", value)
        if needs_memory(section(resources, "memory")):
            self._memory(section(resources, "memory"))
        if needs_blkio(section(resources, "blockIO")):
            self._io(section(resources, "blockIO"))
        cpu = section(resources, "cpu")
        if needs_cpu(cpu):
            self._cpu(cpu)
        if resources.get("devices"):
            from sampan.cgroups.devices import Emulator, program, rules_from_oci

            code = program(Emulator.from_rules(rules_from_oci(resources["devices"])))
            self.sys.attach_device_filter(self.dir, code)
        for key in ("cpus", "mems"):
            if cpu.get(key):
                self._set(f"{_R}.cpu.{key}", f"cpuset.{key}", cpu[key])
        for i, page in enumerate(resources.get("hugepageLimits") or ()):
            field, size = f"{_R}.hugepageLimits[{i}]", page["pageSize"]
            self._set(field, f"hugetlb.{size}.max", str(page["limit"]))
            if self.sys.exists(f"{self.dir}/hugetlb.{size}.rsvd.max"):
                self._set(field, f"hugetlb.{size}.rsvd.max", str(page["limit"]))
        for device, limits in (resources.get("rdma") or {}).items():
            self._set(f"{_R}.rdma.{device}", "rdma.max", rdma_line(device, limits))
        for key, value in (resources.get("unified") or {}).items():
            for line in value.split("\n") if "\n" in value else [value]:
                self._set(f"{_R}.unified.{key}", key, line)

    def _needs(self, resources: Mapping[str, Any]) -> list[tuple[str, str]]:
        mem, cpu = section(resources, "memory"), section(resources, "cpu")
        blkio, net = section(resources, "blockIO"), section(resources, "network")
        for field, set_, why in (
            ("memory.swappiness", mem.get("swappiness") is not None, "has no cgroup v2 equivalent"),
            (
                "memory.disableOOMKiller",
                mem.get("disableOOMKiller") is True,
                "has no cgroup v2 equivalent",
            ),
            ("cpu.realtimeRuntime", nonzero(cpu, "realtimeRuntime") is not None, "needs cgroup v1"),
            ("cpu.realtimePeriod", nonzero(cpu, "realtimePeriod") is not None, "needs cgroup v1"),
            (
                "blockIO.leafWeight",
                nonzero(blkio, "leafWeight") is not None,
                "has no cgroup v2 equivalent",
            ),
            (
                "blockIO.weightDevice[].leafWeight",
                any(d.get("leafWeight") for d in blkio.get("weightDevice") or ()),
                "has no cgroup v2 equivalent",
            ),
            ("network.classID", net.get("classID") is not None, "needs net_cls (cgroup v1 only)"),
            ("network.priorities", bool(net.get("priorities")), "needs net_prio (cgroup v1 only)"),
        ):
            if set_:
                raise Unsupported(f"{_R}.{field}: {why}")
        pids = "limit" if section(resources, "pids").get("limit") is not None else None
        wanted = [
            ("memory", "memory", needs_memory(mem)),
            ("cpu", "cpu", needs_cpu(cpu)),
            ("cpuset", "cpu", needs_cpuset(cpu)),
            ("pids", "pids", pids),
            ("io", "blockIO", needs_blkio(blkio)),
            ("hugetlb", "hugepageLimits", "" if resources.get("hugepageLimits") else None),
            ("rdma", "rdma", "" if resources.get("rdma") else None),
        ]
        out = [
            (ctrl, f"{_R}.{part}.{key}" if key else f"{_R}.{part}")
            for ctrl, part, key in wanted
            if key is not None
        ]
        for key in resources.get("unified") or {}:
            ctrl = key.partition(".")[0]
            if ctrl != "cgroup":
                out.append((ctrl, f"{_R}.unified.{key}"))
        return out

    def _set(self, field: str, name: str, value: str) -> None:
        write_field(self.sys, field, f"{self.dir}/{name}", value)

    def _memory(self, mem: Mapping[str, Any]) -> None:
        f = f"{_R}.memory"
        limit, swap, low = nonzero(mem, "limit"), nonzero(mem, "swap"), nonzero(mem, "reservation")
        if mem.get("checkBeforeUpdate"):
            usage = read_optional(self.sys, f"{self.dir}/memory.current")
            current = parse_uint(usage) if usage is not None else 0
            for key, value in (("swap", swap), ("limit", limit)):
                if value is not None and 0 < value <= current:
                    raise Conflict(f"{f}.{key}: {value} is not above the current usage {current}")
        swap_value = swap_max(swap, limit)
        if swap_value is not None:
            self._set(f"{f}.swap", "memory.swap.max", swap_value)
        if limit is not None:
            self._set(f"{f}.limit", "memory.max", "max" if limit == -1 else str(limit))
        if low is not None:
            self._set(f"{f}.reservation", "memory.low", "max" if low == -1 else str(low))

    def _cpu(self, cpu: Mapping[str, Any]) -> None:
        f = f"{_R}.cpu"
        if cpu.get("idle") is not None:
            self._set(f"{f}.idle", "cpu.idle", str(cpu["idle"]))
        shares = nonzero(cpu, "shares")
        if shares is not None:
            self._set(f"{f}.shares", "cpu.weight", str(cpu_weight(shares)))
        quota, period, burst = nonzero(cpu, "quota"), nonzero(cpu, "period"), cpu.get("burst")
        burst_later = False
        if burst is not None:
            try:
                self._set(f"{f}.burst", "cpu.max.burst", str(burst))
            except CgroupError as exc:
                if exc.errno != _EINVAL or quota is None:
                    raise
                burst_later = True
        if quota is not None or period is not None:
            limit = str(quota) if quota is not None and quota > 0 else "max"
            self._set(f"{f}.quota", "cpu.max", f"{limit} {period or 100000}")
            if burst_later:
                self._set(f"{f}.burst", "cpu.max.burst", str(burst))

    def _io(self, blkio: Mapping[str, Any]) -> None:
        f = f"{_R}.blockIO"
        bfq = self.sys.exists(f"{self.dir}/io.bfq.weight")
        weight = nonzero(blkio, "weight")
        if weight is not None:
            if bfq:
                self._set(f"{f}.weight", "io.bfq.weight", str(weight))
            else:
                self._set(f"{f}.weight", "io.weight", str(io_weight(weight)))
        for i, dev in enumerate(blkio.get("weightDevice") or ()):
            if dev.get("weight"):
                w = dev["weight"]
                name, value = ("io.bfq.weight", w) if bfq else ("io.weight", io_weight(w))
                self._set(f"{f}.weightDevice[{i}]", name, f"{device_pair(dev)} {value}")
        for key, op in (
            ("throttleReadBpsDevice", "rbps"),
            ("throttleWriteBpsDevice", "wbps"),
            ("throttleReadIOPSDevice", "riops"),
            ("throttleWriteIOPSDevice", "wiops"),
        ):
            for i, dev in enumerate(blkio.get(key) or ()):
                self._set(f"{f}.{key}[{i}]", "io.max", f"{device_pair(dev)} {op}={dev['rate']}")

    # -- freezer ---------------------------------------------------------
    def freeze(self) -> None:
        self._set("freezer", "cgroup.freeze", "1")
        delay = 0.0005
        for _ in range(1000):  # about 10 s
            if self._events().get("frozen") == 1:
                return
            self.sys.sleep(delay)
            delay = min(delay * 2, 0.01)
        raise CgroupError(_EBUSY, f"freeze {self.dir}", self.dir, "not frozen after 10 s")

    def thaw(self) -> None:
        self._set("freezer", "cgroup.freeze", "0")

    def frozen(self) -> bool:
        wanted = read_optional(self.sys, f"{self.dir}/cgroup.freeze")
        if wanted is None or wanted.strip() != "1":  # no cgroup (or no freezer): not frozen
            return False
        delay = 0.0005
        for _ in range(1000):
            if self._events().get("frozen") == 1:
                return True
            self.sys.sleep(delay)
            delay = min(delay * 2, 0.01)
        return False

    def _events(self) -> dict[str, int]:
        return parse_kv(read_file(self.sys, f"{self.dir}/cgroup.events"))

    # -- processes -------------------------------------------------------
    def _pids_dir(self) -> str:
        return self.dir

    def kill_all(self, sig: int) -> None:
        if not self.sys.exists(self.dir):
            return  # no cgroup, no processes
        if sig == SIGKILL and self.sys.exists(f"{self.dir}/cgroup.kill"):
            self._set("kill", "cgroup.kill", "1")
            return
        if not self.sys.exists(f"{self.dir}/cgroup.freeze"):
            self._signal(self.pids(), sig)
            return
        was_frozen = self.frozen()
        self.freeze()
        try:
            self._signal(self.pids(), sig)
        finally:
            if not was_frozen:
                self.thaw()

    def stats(self) -> dict[str, Any]:
        if not self.sys.exists(self.dir):
            raise NotFound(f"cgroup {self.dir} does not exist")
        from sampan.cgroups import stats

        return stats.v2(self.sys, self.dir)
