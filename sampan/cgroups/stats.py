"""Usage statistics in the shape of runc's ``events --stats`` data.

Every backend returns the same keys, zero where the host has no such file::

    {"cpu": {"usage": {"total", "percpu", "percpu_kernel", "percpu_user",
                       "kernel", "user"},                      # nanoseconds
             "throttling": {"periods", "throttledPeriods", "throttledTime"}},
     "cpuset": {"cpus": [...], "mems": [...]},
     "memory": {"cache", "usage": {"limit", "usage", "max", "failcnt"},
                "swap": {...}, "kernel": {...}, "kernelTCP": {...},
                "raw": {memory.stat as a dict},
                "events": {"oom": n, "oom_kill": n, ...}},
     "pids": {"current", "limit"},                              # limit 0: none
     "blkio": {"ioServiceBytesRecursive": [{"major", "minor", "op", "value"}],
               "ioServicedRecursive": [...], ...},
     "hugetlb": {"2MB": {"usage", "max", "failcnt"}}}

``raw`` is what runc calls that map (the brief's ``stats``).  Like runc,
cgroup v2 reports swap as memory+swap, and an unlimited limit as 2**64-1.
``memory.events`` is v2's file (oom, oom_kill, max, ...); on v1 it holds
``oom_kill`` and ``under_oom`` from memory.oom_control.
"""

from __future__ import annotations

from sampan.cgroups.base import UNLIMITED, parse_kv, parse_uint, read_optional

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.cgroups.base import System

_NS_PER_TICK = 10_000_000  # cpuacct.stat counts USER_HZ (100) ticks


def empty() -> dict[str, Any]:
    return {
        "cpu": {
            "usage": {
                "total": 0,
                "percpu": [],
                "percpu_kernel": [],
                "percpu_user": [],
                "kernel": 0,
                "user": 0,
            },
            "throttling": {"periods": 0, "throttledPeriods": 0, "throttledTime": 0},
        },
        "cpuset": {"cpus": [], "mems": []},
        "memory": {
            "cache": 0,
            "usage": _mem_entry(),
            "swap": _mem_entry(),
            "kernel": _mem_entry(),
            "kernelTCP": _mem_entry(),
            "raw": {},
            "events": {},
        },
        "pids": {"current": 0, "limit": 0},
        "blkio": {
            "ioServiceBytesRecursive": [],
            "ioServicedRecursive": [],
            "ioQueueRecursive": [],
            "ioServiceTimeRecursive": [],
            "ioWaitTimeRecursive": [],
            "ioMergedRecursive": [],
            "ioTimeRecursive": [],
            "sectorsRecursive": [],
        },
        "hugetlb": {},
    }


def _mem_entry() -> dict[str, int]:
    return {"limit": 0, "usage": 0, "max": 0, "failcnt": 0}


class _Reader:
    __slots__ = ("dir", "sys")

    def __init__(self, system: System, directory: str) -> None:
        self.sys = system
        self.dir = directory

    def text(self, name: str) -> str | None:
        return read_optional(self.sys, f"{self.dir}/{name}")

    def uint(self, name: str) -> int:
        text = self.text(name)
        return 0 if text is None else parse_uint(text)

    def kv(self, name: str) -> dict[str, int]:
        text = self.text(name)
        return {} if text is None else parse_kv(text)

    def names(self) -> list[str]:
        try:
            return sorted(self.sys.listdir(self.dir))
        except OSError:
            return []


def cpu_list(text: str | None) -> list[int]:
    """``0-2,5`` -> [0, 1, 2, 5]."""
    out: list[int] = []
    for part in (text or "").strip().split(","):
        lo, dash, hi = part.partition("-")
        if lo.isdigit() and (not dash or hi.isdigit()):
            out.extend(range(int(lo), int(hi if dash else lo) + 1))
    return out


def _ints(text: str | None) -> list[int]:
    return [int(x) for x in (text or "").split() if x.isdigit()]


# -- cgroup v1 ----------------------------------------------------------------


def v1_cpu(system: System, cpu: str | None, cpuacct: str | None, out: dict[str, Any]) -> None:
    usage, throttling = out["cpu"]["usage"], out["cpu"]["throttling"]
    if cpuacct:
        r = _Reader(system, cpuacct)
        usage["total"] = r.uint("cpuacct.usage")
        usage["percpu"] = _ints(r.text("cpuacct.usage_percpu"))
        ticks = r.kv("cpuacct.stat")
        usage["user"] = ticks.get("user", 0) * _NS_PER_TICK
        usage["kernel"] = ticks.get("system", 0) * _NS_PER_TICK
        kernel, user = [], []
        for line in (r.text("cpuacct.usage_all") or "").splitlines()[1:]:
            fields = line.split()
            if len(fields) == 3:
                user.append(int(fields[1]))
                kernel.append(int(fields[2]))
        usage["percpu_kernel"], usage["percpu_user"] = kernel, user
    if cpu:
        stat = _Reader(system, cpu).kv("cpu.stat")
        throttling["periods"] = stat.get("nr_periods", 0)
        throttling["throttledPeriods"] = stat.get("nr_throttled", 0)
        throttling["throttledTime"] = stat.get("throttled_time", 0)


def v1_cpuset(system: System, path: str | None, out: dict[str, Any]) -> None:
    if path:
        r = _Reader(system, path)
        out["cpuset"] = {
            "cpus": cpu_list(r.text("cpuset.cpus")),
            "mems": cpu_list(r.text("cpuset.mems")),
        }


def v1_memory(system: System, path: str | None, out: dict[str, Any]) -> None:
    if not path:
        return
    r = _Reader(system, path)
    mem = out["memory"]
    mem["raw"] = r.kv("memory.stat")
    mem["cache"] = mem["raw"].get("cache", 0)
    for key, prefix in (
        ("usage", "memory."),
        ("swap", "memory.memsw."),
        ("kernel", "memory.kmem."),
        ("kernelTCP", "memory.kmem.tcp."),
    ):
        mem[key] = {
            "limit": r.uint(prefix + "limit_in_bytes"),
            "usage": r.uint(prefix + "usage_in_bytes"),
            "max": r.uint(prefix + "max_usage_in_bytes"),
            "failcnt": r.uint(prefix + "failcnt"),
        }
    oom = r.kv("memory.oom_control")
    mem["events"] = {k: oom[k] for k in ("oom_kill", "under_oom") if k in oom}


def v1_pids(system: System, path: str | None, out: dict[str, Any]) -> None:
    if path:
        r = _Reader(system, path)
        limit = r.uint("pids.max")
        out["pids"] = {
            "current": r.uint("pids.current"),
            "limit": 0 if limit == UNLIMITED else limit,
        }


def blkio_entries(text: str | None) -> list[dict[str, Any]]:
    """``8:0 Read 1024`` / ``8:0 1024`` lines; the ``Total`` line is skipped."""
    entries = []
    for line in (text or "").splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) not in (3, 4) or not fields[0].isdigit():
            continue
        op = fields[2] if len(fields) == 4 else ""
        entries.append(
            {"major": int(fields[0]), "minor": int(fields[1]), "op": op, "value": int(fields[-1])}
        )
    return entries


def v1_blkio(system: System, path: str | None, out: dict[str, Any]) -> None:
    if not path:
        return
    r = _Reader(system, path)
    blkio = out["blkio"]
    # The first family whose files exist wins, as in runc: bfq, cfq, throttle.
    for prefix in ("blkio.bfq.", "blkio.", "blkio.throttle."):
        for suffix in ("_recursive", ""):
            served = r.text(f"{prefix}io_service_bytes{suffix}")
            if served is None:
                continue
            blkio["ioServiceBytesRecursive"] = blkio_entries(served)
            blkio["ioServicedRecursive"] = blkio_entries(r.text(f"{prefix}io_serviced{suffix}"))
            if prefix == "blkio.":
                for key, name in (
                    ("ioQueueRecursive", "io_queued"),
                    ("ioServiceTimeRecursive", "io_service_time"),
                    ("ioWaitTimeRecursive", "io_wait_time"),
                    ("ioMergedRecursive", "io_merged"),
                    ("ioTimeRecursive", "time"),
                    ("sectorsRecursive", "sectors"),
                ):
                    blkio[key] = blkio_entries(r.text(f"blkio.{name}{suffix}"))
            return


def v1_hugetlb(system: System, path: str | None, out: dict[str, Any]) -> None:
    if not path:
        return
    r = _Reader(system, path)
    for name in r.names():
        if (
            name.startswith("hugetlb.")
            and name.endswith(".usage_in_bytes")
            and ".rsvd." not in name
        ):
            size = name[len("hugetlb.") : -len(".usage_in_bytes")]
            out["hugetlb"][size] = {
                "usage": r.uint(name),
                "max": r.uint(f"hugetlb.{size}.max_usage_in_bytes"),
                "failcnt": r.uint(f"hugetlb.{size}.failcnt"),
            }


# -- cgroup v2 ----------------------------------------------------------------


def v2(system: System, path: str) -> dict[str, Any]:
    out = empty()
    r = _Reader(system, path)
    stat = r.kv("cpu.stat")
    usage, throttling = out["cpu"]["usage"], out["cpu"]["throttling"]
    usage["total"] = stat.get("usage_usec", 0) * 1000
    usage["user"] = stat.get("user_usec", 0) * 1000
    usage["kernel"] = stat.get("system_usec", 0) * 1000
    throttling["periods"] = stat.get("nr_periods", 0)
    throttling["throttledPeriods"] = stat.get("nr_throttled", 0)
    throttling["throttledTime"] = stat.get("throttled_usec", 0) * 1000

    cpus = r.text("cpuset.cpus.effective")
    if cpus is not None:
        out["cpuset"] = {"cpus": cpu_list(cpus), "mems": cpu_list(r.text("cpuset.mems.effective"))}

    mem = out["memory"]
    mem["raw"] = r.kv("memory.stat")
    mem["cache"] = mem["raw"].get("file", 0)
    mem["events"] = r.kv("memory.events")
    if r.text("memory.current") is not None:
        mem["usage"] = {
            "limit": r.uint("memory.max"),
            "usage": r.uint("memory.current"),
            "max": r.uint("memory.peak"),
            "failcnt": mem["events"].get("max", 0),
        }
        swap_usage = r.uint("memory.swap.current")
        swap_limit = r.uint("memory.swap.max") if r.text("memory.swap.max") is not None else 0
        if swap_limit != UNLIMITED and mem["usage"]["limit"] != UNLIMITED:
            swap_limit += mem["usage"]["limit"]
        else:
            swap_limit = UNLIMITED
        mem["swap"] = {
            "limit": swap_limit,
            "usage": swap_usage + mem["usage"]["usage"],
            "max": 0,
            "failcnt": r.kv("memory.swap.events").get("max", 0),
        }

    if r.text("pids.current") is not None:
        limit = r.uint("pids.max")
        out["pids"] = {
            "current": r.uint("pids.current"),
            "limit": 0 if limit == UNLIMITED else limit,
        }
    else:
        procs = r.text("cgroup.procs") or ""
        out["pids"] = {"current": len(procs.split()), "limit": 0}

    served: list[dict[str, Any]] = []
    ios: list[dict[str, Any]] = []
    for line in (r.text("io.stat") or "").splitlines():
        dev, *pairs = line.split()
        major, _, minor = dev.partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        for pair in pairs:
            key, _, value = pair.partition("=")
            table, op = {
                "rbytes": (served, "Read"),
                "wbytes": (served, "Write"),
                "rios": (ios, "Read"),
                "wios": (ios, "Write"),
            }.get(key, (None, ""))
            if table is not None and value.isdigit():
                table.append(
                    {"major": int(major), "minor": int(minor), "op": op, "value": int(value)}
                )
    out["blkio"]["ioServiceBytesRecursive"] = served
    out["blkio"]["ioServicedRecursive"] = ios

    v2_hugetlb(system, path, out)
    return out


def v2_hugetlb(system: System, path: str, out: dict[str, Any]) -> None:
    r = _Reader(system, path)
    for name in r.names():
        if name.startswith("hugetlb.") and name.endswith(".current") and ".rsvd." not in name:
            size = name[len("hugetlb.") : -len(".current")]
            out["hugetlb"][size] = {
                "usage": r.uint(name),
                "max": 0,
                "failcnt": r.kv(f"hugetlb.{size}.events").get("max", 0),
            }
