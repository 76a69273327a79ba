"""run/create/update flags for limits and security -> docker's HostConfig fields.

The parsing is the docker CLI's, so the same command lines work:

  - sizes (``--memory 64m``, ``--shm-size 1g``, ``-m 1.5GiB``): go-units'
    RAMInBytes -- a number, an optional space, k/m/g/t/p with optional
    ``i`` and ``b``, binary multiples; ``--memory-swap -1`` is "unlimited";
  - ``--cpus 1.5`` -> NanoCpus 1500000000;
  - ``--ulimit nofile=1024:2048`` (or ``=1024`` for both);
  - ``--device /dev/x[:/dev/y][:rwm]``;
  - ``--security-opt seccomp=FILE``: the file is read here and its JSON
    sent compacted, as the docker CLI does (the daemon never reads a
    client's files).

The daemon checks the values (ranges, the machine's CPUs, its rlimits).
"""

from __future__ import annotations

from sampan.cli.args import Flag
from sampan.errors import InvalidArgument
from sampan.units import ram_in_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "CREATE_FLAGS",
    "UPDATE_FLAGS",
    "host_config",
    "nano_cpus",
    "parse_device",
    "parse_size",
    "parse_ulimit",
    "update_body",
]

CREATE_FLAGS = [
    Flag("--memory,-m", "str", "memory limit"),
    Flag("--memory-swap", "str", "swap limit equal to memory plus swap: '-1' for unlimited"),
    Flag("--memory-reservation", "str", "memory soft limit"),
    Flag("--memory-swappiness", "int", "tune container memory swappiness (0 to 100)"),
    Flag("--cpus", "str", "number of CPUs"),
    Flag("--cpu-shares,-c", "int", "CPU shares (relative weight)"),
    Flag("--cpu-period", "int", "limit CPU CFS (Completely Fair Scheduler) period"),
    Flag("--cpu-quota", "int", "limit CPU CFS (Completely Fair Scheduler) quota"),
    Flag("--cpuset-cpus", "str", "CPUs in which to allow execution (0-3, 0,1)"),
    Flag("--cpuset-mems", "str", "MEMs in which to allow execution (0-3, 0,1)"),
    Flag("--pids-limit", "int", "tune container pids limit (-1 for unlimited)"),
    Flag("--ulimit", "list", "ulimit options"),
    Flag("--oom-kill-disable", "bool", "disable OOM Killer"),
    Flag("--oom-score-adj", "int", "tune host's OOM preferences (-1000 to 1000)"),
    Flag("--shm-size", "str", "size of /dev/shm"),
    Flag("--cap-add", "list", "add Linux capabilities"),
    Flag("--cap-drop", "list", "drop Linux capabilities"),
    Flag("--privileged", "bool", "give extended privileges to this container"),
    Flag("--security-opt", "list", "security options"),
    Flag("--device", "list", "add a host device to the container"),
    Flag("--init", "bool", "run an init inside the container that forwards signals and reaps"),
]
UPDATE_FLAGS = [f for f in CREATE_FLAGS if f.dest in (
    "memory", "memory_swap", "memory_reservation", "cpus", "cpu_shares", "cpu_period",
    "cpu_quota", "cpuset_cpus", "cpuset_mems", "pids_limit")]  # fmt: skip
UPDATE_FLAGS += [Flag("--restart", "str", "restart policy to apply when a container exits")]

_RLIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
            "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")  # fmt: skip


def parse_size(text: str, flag: str) -> int:
    """go-units' RAMInBytes: ``64m``, ``1.5g``, ``512MiB``, ``1024`` -> bytes."""
    try:
        return ram_in_bytes(text)
    except ValueError as exc:
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: {exc}') from None


def nano_cpus(text: str) -> int:
    """``--cpus 1.5`` -> 1500000000 (docker's NanoCPUs: at most nine decimals)."""
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text.strip()) * 1_000_000_000
    except InvalidOperation:
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: failed to parse '
                              f"{text} as a rational number") from None  # fmt: skip
    if not value.is_finite() or value != value.to_integral_value():
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: value is too '
                              "precise")  # fmt: skip
    return int(value)


def parse_ulimit(text: str) -> dict[str, Any]:
    """``nofile=1024:2048`` -> {"Name": "nofile", "Soft": 1024, "Hard": 2048}."""
    name, eq, limits = text.partition("=")
    bad = f'invalid argument "{text}" for "--ulimit" flag: '
    if not eq:
        raise InvalidArgument(bad + f"invalid ulimit argument: {text}")
    if name not in _RLIMITS:
        raise InvalidArgument(bad + f"invalid ulimit type: {name}")
    soft_text, colon, hard_text = limits.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if colon else soft
    except ValueError:
        raise InvalidArgument(bad + f"invalid ulimit argument: {text}") from None
    if soft > hard:
        raise InvalidArgument(bad + f"ulimit soft limit must be less than or equal to hard "
                              f"limit: {soft} > {hard}")  # fmt: skip
    return {"Name": name, "Soft": soft, "Hard": hard}


def _mode(text: str) -> bool:
    return bool(text) and set(text) <= set("rwm") and len(text) <= 3


def parse_device(text: str) -> dict[str, str]:
    """``/dev/x[:/dev/y][:rwm]`` -> docker's DeviceMapping."""
    parts = text.split(":")
    src, dest, mode = parts[0], parts[0], "rwm"
    if len(parts) == 2:
        if _mode(parts[1]):
            mode = parts[1]
        else:
            dest = parts[1]
    elif len(parts) == 3:
        dest, mode = parts[1], parts[2]
        if not _mode(mode):
            raise InvalidArgument(f'invalid argument "{text}" for "--device" flag: invalid '
                                  f"device mode: {mode}")  # fmt: skip
    elif len(parts) > 3:
        raise InvalidArgument(f'invalid argument "{text}" for "--device" flag: too many colons')
    if not src:
        raise InvalidArgument(f'invalid argument "{text}" for "--device" flag: no path')
    return {"PathOnHost": src, "PathInContainer": dest or src, "CgroupPermissions": mode}


def _security_opt(text: str) -> str:
    key, eq, value = text.partition("=")
    if not eq and ":" in text:
        key, _, value = text.partition(":")
    if key != "seccomp" or value in ("unconfined", "builtin", ""):
        return text
    try:
        with open(value, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise InvalidArgument(f"opening seccomp profile ({value}) failed: {exc.strerror}") from None
    from sampan import _json

    try:
        doc = _json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(
            f"compacting json for seccomp profile ({value}) failed: {exc}"
        ) from None
    return "seccomp=" + _json.dumps(doc)


def _resources(opts: dict[str, Any], out: dict[str, Any]) -> None:
    for flag, key in (("memory", "Memory"), ("memory_reservation", "MemoryReservation")):
        if opts.get(flag):
            out[key] = parse_size(opts[flag], "--" + flag.replace("_", "-"))
    if opts.get("memory_swap"):
        text = opts["memory_swap"].strip()
        out["MemorySwap"] = -1 if text == "-1" else parse_size(text, "--memory-swap")
    if opts.get("cpus"):
        out["NanoCpus"] = nano_cpus(opts["cpus"])
    for flag, key in (("cpu_shares", "CpuShares"), ("cpu_period", "CpuPeriod"),
                      ("cpu_quota", "CpuQuota"), ("pids_limit", "PidsLimit")):  # fmt: skip
        if opts.get(flag) is not None:
            out[key] = opts[flag]
    for flag, key in (("cpuset_cpus", "CpusetCpus"), ("cpuset_mems", "CpusetMems")):
        if opts.get(flag):
            out[key] = opts[flag]


def host_config(opts: dict[str, Any]) -> dict[str, Any]:
    """The HostConfig fields of run/create's limit and security flags (only those given)."""
    out: dict[str, Any] = {}
    _resources(opts, out)
    if opts.get("memory_swappiness") is not None:
        out["MemorySwappiness"] = opts["memory_swappiness"]
    if opts.get("shm_size"):
        out["ShmSize"] = parse_size(opts["shm_size"], "--shm-size")
    if opts.get("ulimit"):
        out["Ulimits"] = [parse_ulimit(u) for u in opts["ulimit"]]
    if opts.get("oom_kill_disable"):
        out["OomKillDisable"] = True
    if opts.get("oom_score_adj") is not None:
        out["OomScoreAdj"] = opts["oom_score_adj"]
    if opts.get("cap_add"):
        out["CapAdd"] = list(opts["cap_add"])
    if opts.get("cap_drop"):
        out["CapDrop"] = list(opts["cap_drop"])
    if opts.get("privileged"):
        out["Privileged"] = True
    if opts.get("security_opt"):
        out["SecurityOpt"] = [_security_opt(s) for s in opts["security_opt"]]
    if opts.get("device"):
        out["Devices"] = [parse_device(d) for d in opts["device"]]
    if opts.get("init"):
        out["Init"] = True
    return out


def restart_policy(text: str) -> dict[str, Any]:
    """``no``, ``always``, ``unless-stopped``, ``on-failure[:N]`` -> docker's RestartPolicy."""
    name, colon, count = text.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure") or (
        colon and (name != "on-failure" or not count.isdigit())
    ):
        raise InvalidArgument(f"invalid restart policy format: {text}")
    return {"Name": name, "MaximumRetryCount": int(count) if colon else 0}


def update_body(opts: dict[str, Any]) -> dict[str, Any]:
    """POST /containers/{id}/update's body for ``update``'s flags (only those given)."""
    out: dict[str, Any] = {}
    _resources(opts, out)
    if opts.get("restart"):
        out["RestartPolicy"] = restart_policy(opts["restart"])
    return out
