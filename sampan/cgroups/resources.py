"""Validation of OCI ``linux.resources``, and what each field needs.

``validate_resources`` is pure: it reads the dict and raises
``InvalidArgument`` (bad type or value) or ``Unsupported`` (a valid value no
kernel sampan supports can honour) naming the field, e.g.
``"linux.resources.memory.limit: must be an integer"``.  It is run before
anything is created, and again by ``Cgroup.apply``.

Unset values follow runc: a missing key, ``null``, and -- for the memory
limits, cpu shares/quota/period/realtime and blkio weights -- ``0`` write
nothing.  ``memory.kernel`` and ``memory.kernelTCP`` are accepted and ignored
(kernel memory limits are deprecated; runc >= 1.1 ignores them too).
``memory.useHierarchy: true`` is what every current kernel does and is
accepted; ``false`` cannot be honoured any more and is Unsupported.
"""

from __future__ import annotations

from sampan.errors import InvalidArgument, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

INT64 = (-(2**63), 2**63 - 1)
UINT64 = (0, 2**64 - 1)
UINT32 = (0, 2**32 - 1)
UINT16 = (0, 2**16 - 1)
_PAGE_UNITS = "KMG"


def validate_resources(resources: object) -> None:
    """Raise InvalidArgument/Unsupported naming the first bad field of RESOURCES."""
    if resources is None:
        return
    base = "linux.resources"
    obj = _object(resources, base)
    for key, value in obj.items():
        check = _CHECKS.get(key)
        if check is None:
            raise InvalidArgument(f"{base}.{key}: unknown field")
        if value is not None:
            check(value, f"{base}.{key}")


# -- what a resources dict asks for (shared by both backends) --------------


def section(resources: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = resources.get(key)
    return value if isinstance(value, dict) else {}


def nonzero(obj: Mapping[str, Any], key: str) -> int | None:
    """An integer field where 0 means unset (runc's convention)."""
    value = obj.get(key)
    return value if isinstance(value, int) and value != 0 else None


def _first(
    obj: Mapping[str, Any], zero_unset: tuple[str, ...], others: tuple[str, ...]
) -> str | None:
    for key in zero_unset:
        if nonzero(obj, key) is not None:
            return key
    for key in others:
        value = obj.get(key)
        if value is not None and value != "" and value != []:
            return key
    return None


# Each needs_* returns the first field of the section that is set (None: nothing).


def needs_memory(mem: Mapping[str, Any]) -> str | None:
    return _first(mem, ("limit", "reservation", "swap"), ("swappiness", "disableOOMKiller"))


def needs_cpu(cpu: Mapping[str, Any]) -> str | None:
    zero_unset = ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod")
    return _first(cpu, zero_unset, ("idle", "burst"))


def needs_cpuset(cpu: Mapping[str, Any]) -> str | None:
    return _first(cpu, (), ("cpus", "mems"))


_BLKIO_LISTS = (
    "weightDevice",
    "throttleReadBpsDevice",
    "throttleWriteBpsDevice",
    "throttleReadIOPSDevice",
    "throttleWriteIOPSDevice",
)


def needs_blkio(blkio: Mapping[str, Any]) -> str | None:
    return _first(blkio, ("weight", "leafWeight"), _BLKIO_LISTS)


def device_pair(entry: Mapping[str, Any]) -> str:
    return f"{entry['major']}:{entry['minor']}"


def rdma_line(device: str, limits: Mapping[str, Any]) -> str:
    line = device
    if limits.get("hcaHandles") is not None:
        line += f" hca_handle={limits['hcaHandles']}"
    if limits.get("hcaObjects") is not None:
        line += f" hca_object={limits['hcaObjects']}"
    return line


# -- checks -------------------------------------------------------------------


def _object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field}: must be an object")
    return value


def _list(value: object, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidArgument(f"{field}: must be an array")
    return value


def _int(value: object, field: str, bounds: tuple[int, int] = INT64) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{field}: must be an integer")
    lo, hi = bounds
    if not lo <= value <= hi:
        raise InvalidArgument(f"{field}: must be between {lo} and {hi}, not {value}")
    return value


def _bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{field}: must be true or false")
    return value


def _str(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{field}: must be a string")
    if "\0" in value:
        raise InvalidArgument(f"{field}: must not contain NUL")
    return value


def _keys(obj: Mapping[str, Any], field: str, allowed: tuple[str, ...]) -> None:
    for key in obj:
        if key not in allowed:
            raise InvalidArgument(f"{field}.{key}: unknown field")


def _fields(
    obj: Mapping[str, Any], field: str, spec: Mapping[str, Callable[[object, str], object]]
) -> None:
    _keys(obj, field, tuple(spec))
    for key, value in obj.items():
        if value is not None:
            spec[key](value, f"{field}.{key}")


def _limit(value: object, field: str) -> int:
    n = _int(value, field)
    if n < -1:
        raise InvalidArgument(f"{field}: must be -1 (unlimited) or a number of bytes, not {n}")
    return n


def _u64(value: object, field: str) -> int:
    return _int(value, field, UINT64)


def _u32(value: object, field: str) -> int:
    return _int(value, field, UINT32)


def _check_memory(value: object, field: str) -> None:
    mem = _object(value, field)
    _fields(
        mem,
        field,
        {
            "limit": _limit,
            "reservation": _limit,
            "swap": _limit,
            "kernel": _int,
            "kernelTCP": _int,
            "swappiness": lambda v, f: _int(v, f, (0, 100)),
            "disableOOMKiller": _bool,
            "useHierarchy": _bool,
            "checkBeforeUpdate": _bool,
        },
    )
    if mem.get("useHierarchy") is False:
        raise Unsupported(
            f"{field}.useHierarchy: false is not supported (cgroups are hierarchical)"
        )
    swap, limit = mem.get("swap") or 0, mem.get("limit") or 0
    if swap > 0 and limit == 0:
        raise InvalidArgument(f"{field}.swap: needs memory.limit (swap limits memory+swap)")
    if swap > 0 and limit > 0 and swap < limit:
        raise InvalidArgument(
            f"{field}.swap: must be >= memory.limit ({swap} < {limit}; it limits memory+swap)"
        )


def _check_cpu(value: object, field: str) -> None:
    cpu = _object(value, field)
    _fields(
        cpu,
        field,
        {
            "shares": _u64,
            "quota": _int,
            "burst": _u64,
            "period": _u64,
            "realtimeRuntime": _int,
            "realtimePeriod": _u64,
            "cpus": _cpu_list,
            "mems": _cpu_list,
            "idle": lambda v, f: _int(v, f, (0, 1)),
        },
    )
    shares = cpu.get("shares") or 0
    if shares and not 2 <= shares <= 262144:
        raise InvalidArgument(f"{field}.shares: must be between 2 and 262144, not {shares}")
    quota, burst = cpu.get("quota") or 0, cpu.get("burst")
    if burst is not None and quota > 0 and burst > quota:
        raise InvalidArgument(f"{field}.burst: must not exceed quota ({burst} > {quota})")


def _cpu_list(value: object, field: str) -> str:
    """``0-3,5``: CPU or memory-node numbers and ranges."""
    text = _str(value, field)
    if not text:
        return text
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()) or (dash and int(hi) < int(lo)):
            raise InvalidArgument(f"{field}: {text!r} is not a list like '0-3,5'")
    return text


def _check_pids(value: object, field: str) -> None:
    _fields(_object(value, field), field, {"limit": _int})


def _weight(value: object, field: str) -> int:
    n = _int(value, field, UINT16)
    if n and not 10 <= n <= 1000:
        raise InvalidArgument(f"{field}: must be between 10 and 1000, not {n}")
    return n


def _device_number(value: object, field: str) -> int:
    return _int(value, field, (0, 2**32 - 1))


def _check_block_io(value: object, field: str) -> None:
    blkio = _object(value, field)
    spec: dict[str, Callable[[object, str], object]] = {
        "weight": _weight,
        "leafWeight": _weight,
        "weightDevice": _check_weight_devices,
    }
    for key in _BLKIO_LISTS[1:]:
        spec[key] = _check_throttles
    _fields(blkio, field, spec)


def _check_weight_devices(value: object, field: str) -> None:
    for i, entry in enumerate(_list(value, field)):
        f = f"{field}[{i}]"
        dev = _object(entry, f)
        _fields(
            dev,
            f,
            {
                "major": _device_number,
                "minor": _device_number,
                "weight": _weight,
                "leafWeight": _weight,
            },
        )
        _require(dev, f, ("major", "minor"))
        if dev.get("weight") is None and dev.get("leafWeight") is None:
            raise InvalidArgument(f"{f}: needs weight or leafWeight")


def _check_throttles(value: object, field: str) -> None:
    for i, entry in enumerate(_list(value, field)):
        f = f"{field}[{i}]"
        dev = _object(entry, f)
        _fields(dev, f, {"major": _device_number, "minor": _device_number, "rate": _u64})
        _require(dev, f, ("major", "minor", "rate"))


def _require(obj: Mapping[str, Any], field: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if obj.get(key) is None:
            raise InvalidArgument(f"{field}.{key}: is required")


def _check_hugepages(value: object, field: str) -> None:
    for i, entry in enumerate(_list(value, field)):
        f = f"{field}[{i}]"
        limit = _object(entry, f)
        _fields(limit, f, {"pageSize": _page_size, "limit": _u64})
        _require(limit, f, ("pageSize", "limit"))


def _page_size(value: object, field: str) -> str:
    text = _str(value, field)
    digits, unit = text[:-2], text[-2:-1]
    if (
        not text.endswith("B")
        or unit not in _PAGE_UNITS
        or not unit
        or not digits.isdigit()
        or digits.startswith("0")
    ):
        raise InvalidArgument(f"{field}: {text!r} is not a size like 2MB, 64KB or 1GB")
    return text


def _check_network(value: object, field: str) -> None:
    net = _object(value, field)
    _fields(net, field, {"classID": _u32, "priorities": _check_priorities})


def _check_priorities(value: object, field: str) -> None:
    for i, entry in enumerate(_list(value, field)):
        f = f"{field}[{i}]"
        prio = _object(entry, f)
        _fields(prio, f, {"name": _str, "priority": _u32})
        _require(prio, f, ("name", "priority"))
        name = prio["name"]
        if not name or any(c in name for c in " \t\n/"):
            raise InvalidArgument(f"{f}.name: {name!r} is not an interface name")


def _check_rdma(value: object, field: str) -> None:
    for device, entry in _object(value, field).items():
        f = f"{field}.{device}"
        if not device or any(c in device for c in " \t\n="):
            raise InvalidArgument(f"{f}: {device!r} is not a device name")
        limits = _object(entry, f)
        _fields(limits, f, {"hcaHandles": _u32, "hcaObjects": _u32})
        if limits.get("hcaHandles") is None and limits.get("hcaObjects") is None:
            raise InvalidArgument(f"{f}: needs hcaHandles or hcaObjects")


def _check_unified(value: object, field: str) -> None:
    for key, entry in _object(value, field).items():
        f = f"{field}.{key}"
        if not key or "/" in key or key.startswith(".") or "\0" in key:
            raise InvalidArgument(f"{f}: must be a cgroup file name")
        if "." not in key:
            raise InvalidArgument(f"{f}: must look like controller.parameter")
        _str(entry, f)


def _check_devices(value: object, field: str) -> None:
    for i, entry in enumerate(_list(value, field)):
        f = f"{field}[{i}]"
        rule = _object(entry, f)
        _fields(
            rule,
            f,
            {
                "allow": _bool,
                "type": _str,
                "major": _device_rule_number,
                "minor": _device_rule_number,
                "access": _str,
            },
        )
        _require(rule, f, ("allow",))
        kind = rule.get("type") or "a"
        if kind not in ("a", "b", "c"):
            raise InvalidArgument(f"{f}.type: must be 'a', 'b' or 'c', not {kind!r}")
        access = rule.get("access")
        if not access or any(c not in "rwm" for c in access):
            raise InvalidArgument(f"{f}.access: must be letters of 'rwm', not {access!r}")


def _device_rule_number(value: object, field: str) -> int:
    # -1 is what runc stores for "any"; keep accepting it.
    return _int(value, field, (-1, 2**31 - 1))


_CHECKS: dict[str, Callable[[object, str], None]] = {
    "devices": _check_devices,
    "memory": _check_memory,
    "cpu": _check_cpu,
    "pids": _check_pids,
    "blockIO": _check_block_io,
    "hugepageLimits": _check_hugepages,
    "network": _check_network,
    "rdma": _check_rdma,
    "unified": _check_unified,
}
