"""docker's resource fields of a HostConfig -> OCI ``linux.resources`` and ``process.rlimits``.

    fields = check(host_config)           # create: validated, docker's defaults filled in
    apply_to_spec(doc, fields)            # config.json: resources, rlimits, /dev/shm size
    fields, live = merge_update(fields, body)   # POST /containers/{id}/update

The rules and messages are dockerd's, so a docker user sees what they know:
memory below 6 MB, a swap limit below the memory limit, more CPUs than the
machine has, CPUs or memory nodes it does not have, a CFS period outside
1 ms..1 s -- each a 400 with docker's sentence.  MemorySwap 0 with a memory
limit means twice the memory, as dockerd sets it.  Ulimits are checked
against the daemon's own hard limits: raising a hard limit needs
CAP_SYS_RESOURCE, which these machines do not give even to root, so a
ulimit above it is refused at create (naming it), not at start.
"""

from __future__ import annotations

import os

from sampan.errors import Conflict, InvalidArgument, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DEFAULT_SHM_SIZE",
    "FIELDS",
    "MIN_MEMORY",
    "apply_to_spec",
    "check",
    "create_warnings",
    "host_support",
    "merge_update",
    "oci_resources",
    "online_cpus",
    "swap_accounting",
]

MIN_MEMORY = 6 * 1024 * 1024
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
_MIN_SHARES, _MAX_SHARES = 2, 262144
_CPU_PERIOD = 100_000  # the CFS period --cpus uses, in microseconds
_RLIMIT_NAMES = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                 "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")  # fmt: skip
_CAP_SYS_RESOURCE = 24

# The HostConfig fields this module owns, with the value an unset field has in
# docker's inspect output.
FIELDS: dict[str, Any] = {
    "Memory": 0,
    "MemorySwap": 0,
    "MemoryReservation": 0,
    "MemorySwappiness": None,
    "NanoCpus": 0,
    "CpuShares": 0,
    "CpuQuota": 0,
    "CpuPeriod": 0,
    "CpusetCpus": "",
    "CpusetMems": "",
    "PidsLimit": None,
    "Ulimits": None,
    "OomKillDisable": False,
    "ShmSize": DEFAULT_SHM_SIZE,
    "OomScoreAdj": 0,
}


def _int(host: dict[str, Any], key: str) -> int:
    value = host.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"HostConfig.{key}: expected an integer")
    return value


def _text(host: dict[str, Any], key: str) -> str:
    value = host.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"HostConfig.{key}: expected a string")
    return value


def online_cpus() -> int:
    """The CPUs this daemon may run on (Go's runtime.NumCPU, which dockerd compares with)."""
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _available(kind: str) -> str:
    """The host's CPUs ("cpus") or memory nodes ("mems") as a list like 0-3."""
    for path in (f"/sys/fs/cgroup/cpuset/cpuset.{kind}", f"/sys/fs/cgroup/cpuset.{kind}.effective"):
        text = _read(path)
        if text:
            return text
    fallback = (
        "/sys/devices/system/cpu/online" if kind == "cpus" else "/sys/devices/system/node/online"
    )
    return _read(fallback) or "0"


def swap_accounting(root: str = "/sys/fs/cgroup") -> bool:
    """Whether memory+swap can be limited here (v1 needs memory.memsw.*; v2 always can)."""
    if os.path.exists(f"{root}/cgroup.controllers"):
        return True
    return os.path.exists(f"{root}/memory/memory.memsw.limit_in_bytes")


def _parse_list(text: str) -> set[int] | None:
    """``0-2,5`` -> {0, 1, 2, 5}; None when malformed (docker's parsers.ParseUintList)."""
    out: set[int] = set()
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            return None
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            return None
        out.update(range(first, last + 1))
    return out


def _check_cpuset(text: str, kind: str) -> None:
    noun = "cpus" if kind == "cpus" else "mems"
    wanted = _parse_list(text)
    if wanted is None:
        raise InvalidArgument(f"Invalid value {text} for cpuset {noun}")
    available = _available(kind)
    have = _parse_list(available) or set()
    if not wanted <= have:
        what = "CPUs" if kind == "cpus" else "memory nodes"
        raise InvalidArgument(
            f"Requested {what} are not available - requested {text}, available: {available}"
        )


def _ulimits(value: object) -> list[dict[str, Any]] | None:
    """docker's Ulimits [{"Name": "nofile", "Soft": 1024, "Hard": 2048}], checked."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidArgument("HostConfig.Ulimits: expected a list")
    import resource

    own_caps = None
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in value:
        if not isinstance(entry, dict):
            raise InvalidArgument("HostConfig.Ulimits: expected objects {Name, Soft, Hard}")
        name = entry.get("Name")
        soft, hard = entry.get("Soft"), entry.get("Hard")
        if not isinstance(name, str) or name not in _RLIMIT_NAMES:
            raise InvalidArgument(f"invalid ulimit type: {name}")
        for limit in (soft, hard):
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise InvalidArgument(f"ulimit {name}: Soft and Hard must be integers")
        assert isinstance(soft, int) and isinstance(hard, int)
        if soft < -1 or hard < -1:
            raise InvalidArgument(f"ulimit {name}: a limit is -1 (unlimited) or positive")
        if _unlimited(soft) > _unlimited(hard):
            raise InvalidArgument(
                f"ulimit {name}: soft limit must be less than or equal to hard limit: "
                f"{soft} > {hard}"
            )
        if name in seen:
            raise InvalidArgument(f"ulimit {name}: given twice")
        seen.add(name)
        _, own_hard = resource.getrlimit(getattr(resource, f"RLIMIT_{name.upper()}"))
        if own_hard != resource.RLIM_INFINITY and _unlimited(hard) > own_hard:
            if own_caps is None:
                own_caps = _has_cap(_CAP_SYS_RESOURCE)
            if not own_caps:
                raise InvalidArgument(
                    f"ulimit {name}: hard limit {hard} is above the daemon's own hard limit "
                    f"{own_hard}; raising it needs CAP_SYS_RESOURCE, which this host does not give"
                )
        out.append({"Name": name, "Soft": soft, "Hard": hard})
    return out


def _unlimited(limit: int) -> int:
    """docker's -1 (unlimited) as config.json has it: RLIM_INFINITY, 2**64-1."""
    return (1 << 64) - 1 if limit == -1 else limit


def _has_cap(bit: int) -> bool:
    text = _read("/proc/self/status") or ""
    for line in text.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


def _validate(fields: dict[str, Any], update: bool = False) -> list[str]:
    """dockerd's checks of the resource fields (verifyPlatformContainerResources); warnings."""
    warnings: list[str] = []
    memory, swap = fields["Memory"], fields["MemorySwap"]
    if memory < 0 or 0 < memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    if not update and memory == 0 and swap > 0:
        raise InvalidArgument(
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        )
    if swap < -1:
        raise InvalidArgument(f"Invalid value: {swap}, MemorySwap must be -1 or positive")
    swappiness = fields["MemorySwappiness"]
    if swappiness is not None and not 0 <= swappiness <= 100:
        raise InvalidArgument(
            f"Invalid value: {swappiness}, valid memory swappiness range is 0-100"
        )
    reservation = fields["MemoryReservation"]
    if reservation < 0 or 0 < reservation < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidArgument(
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        )
    if fields["OomKillDisable"] and memory == 0:
        warnings.append(
            "OOM killer is disabled for the container, but no memory limit is set, this can "
            "result in the system running out of resources."
        )
    nano, quota, period = fields["NanoCpus"], fields["CpuQuota"], fields["CpuPeriod"]
    if nano > 0 and period > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    cpus = online_cpus()
    if nano < 0 or 0 < nano < 10**7 or nano > cpus * 10**9:  # below 0.01 CPU: a 1 ms quota
        raise InvalidArgument(
            f"Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        )
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidArgument(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    if quota > 0 and quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    shares = fields["CpuShares"]
    if shares < 0:
        raise InvalidArgument(f"Invalid value: {shares}, CpuShares must not be negative")
    if 0 < shares < _MIN_SHARES or shares > _MAX_SHARES:
        clamped = min(max(shares, _MIN_SHARES), _MAX_SHARES)
        warnings.append(f"Changing requested CPUShares of {shares} to {clamped}")
        fields["CpuShares"] = clamped
    if fields["CpusetCpus"]:
        _check_cpuset(fields["CpusetCpus"], "cpus")
    if fields["CpusetMems"]:
        _check_cpuset(fields["CpusetMems"], "mems")
    if fields["ShmSize"] < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    if not -1000 <= fields["OomScoreAdj"] <= 1000:
        raise InvalidArgument(
            f"Invalid value {fields['OomScoreAdj']}, range for oom score adj is [-1000, 1000]"
        )
    return warnings


def _read_fields(host: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuQuota",
                "CpuPeriod", "ShmSize", "OomScoreAdj"):  # fmt: skip
        fields[key] = _int(host, key)
    for key in ("CpusetCpus", "CpusetMems"):
        fields[key] = _text(host, key)
    for key in ("MemorySwappiness", "PidsLimit"):
        value = host.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidArgument(f"HostConfig.{key}: expected an integer")
        fields[key] = value
    if fields["MemorySwappiness"] == -1:
        fields["MemorySwappiness"] = None  # the CLI's "unset"
    oom = host.get("OomKillDisable")
    if oom is not None and not isinstance(oom, bool):
        raise InvalidArgument("HostConfig.OomKillDisable: expected a boolean")
    fields["OomKillDisable"] = bool(oom)
    fields["Ulimits"] = _ulimits(host.get("Ulimits"))
    return fields


def check(host: dict[str, Any], warnings: list[str] | None = None) -> dict[str, Any]:
    """The resource fields of a create's HostConfig, validated, as inspect shows them."""
    fields = _read_fields(host)
    found = _validate(fields)
    if warnings is not None:
        warnings.extend(found)
    if fields["Memory"] > 0 and fields["MemorySwap"] == 0:
        fields["MemorySwap"] = 2 * fields["Memory"]  # dockerd's default: as much swap as memory
    if fields["MemorySwap"] > 0 and not swap_accounting():
        fields["MemorySwap"] = -1
        if warnings is not None:
            warnings.append(
                "Your kernel does not support swap limit capabilities or the cgroup is not "
                "mounted. Memory limited without swap."
            )
    if fields["PidsLimit"] is not None and fields["PidsLimit"] <= 0:
        fields["PidsLimit"] = None  # 0 and -1: unlimited
    if not fields["ShmSize"]:
        fields["ShmSize"] = DEFAULT_SHM_SIZE
    return fields


def oci_resources(fields: dict[str, Any], live: bool = False) -> dict[str, Any]:
    """linux.resources (memory, cpu, pids) for FIELDS; LIVE spells "no limit" explicitly."""
    memory: dict[str, Any] = {}
    if fields["Memory"] > 0:
        memory["limit"] = fields["Memory"]
    elif live:
        memory["limit"] = -1
    if not swap_accounting():
        pass  # no memory+swap file to write (a warning at create)
    elif fields["MemorySwap"]:
        memory["swap"] = fields["MemorySwap"]
    elif live and fields["Memory"] <= 0:
        memory["swap"] = -1
    if fields["MemoryReservation"] > 0:
        memory["reservation"] = fields["MemoryReservation"]
    if fields["MemorySwappiness"] is not None and fields["MemorySwappiness"] >= 0:
        memory["swappiness"] = fields["MemorySwappiness"]
    if fields["OomKillDisable"]:
        memory["disableOOMKiller"] = True
    cpu: dict[str, Any] = {}
    if fields["CpuShares"]:
        cpu["shares"] = fields["CpuShares"]
    if fields["NanoCpus"]:
        cpu["period"] = _CPU_PERIOD
        cpu["quota"] = fields["NanoCpus"] * _CPU_PERIOD // 10**9
    else:
        if fields["CpuPeriod"]:
            cpu["period"] = fields["CpuPeriod"]
        if fields["CpuQuota"]:
            cpu["quota"] = fields["CpuQuota"]
        elif live:
            cpu["quota"] = -1
    if fields["CpusetCpus"]:
        cpu["cpus"] = fields["CpusetCpus"]
    if fields["CpusetMems"]:
        cpu["mems"] = fields["CpusetMems"]
    out: dict[str, Any] = {}
    if memory:
        out["memory"] = memory
    if cpu:
        out["cpu"] = cpu
    pids = fields["PidsLimit"]
    if pids is not None and pids > 0:
        out["pids"] = {"limit": pids}
    elif live:
        out["pids"] = {"limit": -1}
    return out


def apply_to_spec(doc: dict[str, Any], host: dict[str, Any]) -> None:
    """Put HOST's resource fields (as ``check`` made them) into config.json DOC."""
    fields = {key: host.get(key, default) for key, default in FIELDS.items()}
    linux = doc.setdefault("linux", {})
    resources = linux.setdefault("resources", {})
    resources.update(oci_resources(fields))
    if fields["Ulimits"]:
        doc["process"]["rlimits"] = [
            {
                "type": f"RLIMIT_{u['Name'].upper()}",
                "soft": _unlimited(u["Soft"]),
                "hard": _unlimited(u["Hard"]),
            }
            for u in fields["Ulimits"]
        ]
    if fields["OomScoreAdj"]:
        doc["process"]["oomScoreAdj"] = fields["OomScoreAdj"]
    size = fields["ShmSize"] or DEFAULT_SHM_SIZE
    for mount in doc.get("mounts", []):
        if mount.get("destination") == "/dev/shm" and mount.get("type") == "tmpfs":
            options = [o for o in mount.get("options", []) if not o.startswith("size=")]
            mount["options"] = [*options, f"size={size}"]


# -- update ----------------------------------------------------------------------------

_UPDATE_KEYS = frozenset(
    ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuQuota",
     "CpuPeriod", "CpusetCpus", "CpusetMems", "PidsLimit", "RestartPolicy")
)  # fmt: skip


def merge_update(
    current: dict[str, Any], body: dict[str, Any], warnings: list[str] | None = None
) -> dict[str, Any]:
    """The resource fields after docker's update BODY: a zero or empty field keeps the old
    value (dockerd's rule); refused as dockerd refuses.  RestartPolicy is the caller's."""
    if not isinstance(body, dict):
        raise InvalidArgument("request body: expected a JSON object")
    for key, value in body.items():
        if key not in _UPDATE_KEYS and value not in (None, 0, "", [], {}, False):
            if key == "MemorySwappiness" and value == -1:
                continue
            raise Unsupported(f"{key} cannot be updated by sampan yet")
    new = _read_fields({k: v for k, v in body.items() if k in _UPDATE_KEYS})
    fields = {key: current.get(key, default) for key, default in FIELDS.items()}
    if new["Memory"]:
        if new["Memory"] > fields["MemorySwap"] and not new["MemorySwap"]:
            raise Conflict(
                "Memory limit should be smaller than already set memoryswap limit, update the "
                "memoryswap at the same time"
            )
        fields["Memory"] = new["Memory"]
    if new["MemorySwap"]:
        fields["MemorySwap"] = new["MemorySwap"]
    if new["MemoryReservation"]:
        fields["MemoryReservation"] = new["MemoryReservation"]
    if new["NanoCpus"]:
        if fields["CpuQuota"] > 0 or fields["CpuPeriod"] > 0:
            raise Conflict(
                "Conflicting options: Nano CPUs cannot be updated as CPU Period/Quota has "
                "already been set"
            )
        fields["NanoCpus"] = new["NanoCpus"]
    for key in ("CpuQuota", "CpuPeriod"):
        if new[key]:
            if fields["NanoCpus"] > 0:
                raise Conflict(
                    f"Conflicting options: CPU {key[3:]} cannot be updated as NanoCPUs has "
                    "already been set"
                )
            fields[key] = new[key]
    for key in ("CpuShares", "CpusetCpus", "CpusetMems"):
        if new[key]:
            fields[key] = new[key]
    if body.get("PidsLimit") is not None:
        fields["PidsLimit"] = new["PidsLimit"] if new["PidsLimit"] > 0 else None
    found = _validate(fields, update=True)
    if warnings is not None:
        warnings.extend(found)
    return fields


def host_support(root: str = "/sys/fs/cgroup") -> dict[str, bool]:
    """Which limits this host's cgroups can apply (``docker info``'s booleans)."""
    if os.path.exists(f"{root}/cgroup.controllers"):
        controllers = (_read(f"{root}/cgroup.controllers") or "").split()
        memory, cpu = "memory" in controllers, "cpu" in controllers
        return {"MemoryLimit": memory, "SwapLimit": memory, "KernelMemory": False,
                "KernelMemoryTCP": False, "CpuCfsPeriod": cpu, "CpuCfsQuota": cpu,
                "CPUShares": cpu, "CPUSet": "cpuset" in controllers,
                "PidsLimit": "pids" in controllers, "OomKillDisable": False}  # fmt: skip

    def has(path: str) -> bool:
        return os.path.exists(f"{root}/{path}")

    return {
        "MemoryLimit": has("memory/memory.limit_in_bytes"),
        "SwapLimit": swap_accounting(root),
        "KernelMemory": has("memory/memory.kmem.limit_in_bytes"),
        "KernelMemoryTCP": has("memory/memory.kmem.tcp.limit_in_bytes"),
        "CpuCfsPeriod": has("cpu/cpu.cfs_period_us"),
        "CpuCfsQuota": has("cpu/cpu.cfs_quota_us"),
        "CPUShares": has("cpu/cpu.shares"),
        "CPUSet": has("cpuset/cpuset.cpus"),
        "PidsLimit": has("pids"),
        "OomKillDisable": has("memory/memory.oom_control"),
    }


def create_warnings(host: object) -> list[str]:
    """dockerd's warnings about a create's HostConfig (already accepted by ``check``)."""
    warnings: list[str] = []
    if isinstance(host, dict):
        try:
            check(host, warnings)
        except (InvalidArgument, Unsupported):
            return []
    return warnings
