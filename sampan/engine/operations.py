"""The resource verbs on a container: pause, unpause, update, stats, top.

    ops.pause(service, "web"); ops.unpause(service, "web")
    ops.update(service, "web", {"Memory": 268435456, "MemorySwap": -1})  # warnings
    for doc in ops.stats(service, "web", stream=False): ...      # docker's stats JSON
    ops.top(service, "web", "aux")                               # {"Titles", "Processes"}

A paused container keeps ``Running`` and has Status "paused" (the freezer
cgroup is FROZEN).  A signal to a frozen task waits until it is thawed, so
``after_signal`` thaws a paused container right after stop, kill or rm -f
signals it, as dockerd does: the signal lands and the container goes on
(or dies).

Stats come from the container's cgroup (sampan.cgroups.stats), shaped as
dockerd's /containers/{id}/stats: cpu_stats and precpu_stats (the sample
before, for the CPU %), memory_stats with memory.stat's map, blkio_stats,
pids_stats and networks (from the container's /proc/PID/net/dev, loopback
left out as docker does).  A non-streaming request samples twice, half a
second apart, so its CPU % means something; a stream sends one sample a
second.
"""

from __future__ import annotations

import os
import time

from sampan.engine import lifecycle
from sampan.errors import Conflict, InvalidArgument, NotFound, SampanError, Unsupported, describe
from sampan.units import rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from typing import Any

    from sampan.engine.containers import Container, ContainerService

__all__ = ["after_signal", "pause", "stats", "top", "unpause", "update"]

ZERO_TIME = "0001-01-01T00:00:00Z"
STREAM_INTERVAL = 1.0
PRIME_INTERVAL = 0.5
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cgroup(service: ContainerService, c: Container) -> Any:
    from sampan.runtime.cgroup import container_cgroup
    from sampan.runtime.state import ContainerState

    return container_cgroup(ContainerState.load(service.runtime_root, c.id))


# -- pause -------------------------------------------------------------------------------


def pause(service: ContainerService, ref: str) -> None:
    from sampan.runtime import query

    c = service.get(ref)
    with service.changed:
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")
        if c.status == "paused":
            raise Conflict(f"Container {c.id} is already paused")
        query.pause(service.runtime_root, c.id)
        c.state.update(Status="paused", Paused=True)
        service._save(c)
    lifecycle.emit(service, c, "pause")


def unpause(service: ContainerService, ref: str) -> None:
    from sampan.runtime import query

    c = service.get(ref)
    with service.changed:
        if not c.running or c.status != "paused":
            raise Conflict(f"Container {c.id} is not paused")
        query.resume(service.runtime_root, c.id)
        c.state.update(Status="running", Paused=False)
        service._save(c)
    lifecycle.emit(service, c, "unpause")


def after_signal(service: ContainerService, c: Container) -> None:
    """Thaw C if it is paused, so a signal just sent is delivered (stop, kill, rm -f)."""
    if c.state.get("Status") != "paused":  # (c.status says "removing" during rm -f)
        return
    try:
        _cgroup(service, c).thaw()
    except (SampanError, OSError):
        return  # gone meanwhile: its monitor reports the exit
    with service.changed:
        if c.state.get("Status") == "paused":
            c.state.update(Status="running", Paused=False)
            service._save(c)
    lifecycle.emit(service, c, "unpause")


# -- update ------------------------------------------------------------------------------


def update(service: ContainerService, ref: str, body: Any) -> list[str]:
    """docker's POST /containers/{id}/update: new limits, live when running; warnings."""
    from sampan.engine import resources

    c = service.get(ref)
    warnings: list[str] = []
    try:
        if not isinstance(body, dict):
            raise InvalidArgument("request body: expected a JSON object")
        with service.changed:
            fields = resources.merge_update(c.host_config, body, warnings)
            policy = _restart_policy(c, body.get("RestartPolicy"))
            if c.running:
                from sampan.runtime import query

                query.update_resources(
                    service.runtime_root, c.id, resources.oci_resources(fields, live=True)
                )
            c.host_config.update(fields)
            if policy is not None:
                c.host_config["RestartPolicy"] = policy
            service._save(c)
    except (SampanError, OSError) as exc:
        raise _same_kind(exc, f"Cannot update container {c.id}: {describe(exc)}") from None
    lifecycle.emit(service, c, "update")
    return warnings


def _restart_policy(c: Container, policy: object) -> dict[str, Any] | None:
    if policy is None or (isinstance(policy, dict) and not policy.get("Name")):
        return None
    if not isinstance(policy, dict):
        raise InvalidArgument("RestartPolicy: expected an object")
    if c.host_config.get("AutoRemove") and policy.get("Name") != "no":
        raise InvalidArgument(
            "Restart policy cannot be updated because AutoRemove is enabled for the container"
        )
    from sampan.engine.restart import check_policy

    return check_policy(policy)


def _same_kind(exc: BaseException, message: str) -> SampanError:
    for cls in (NotFound, Conflict, InvalidArgument, Unsupported):
        if isinstance(exc, cls):
            return cls(message)
    return SampanError(message)


# -- stats -------------------------------------------------------------------------------


def _system_cpu() -> int:
    """Host CPU time in nanoseconds (the first 7 fields of /proc/stat's cpu line)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                ticks = sum(int(x) for x in line.split()[1:8])
                return ticks * 1_000_000_000 // _CLK_TCK
    return 0


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _networks(pid: int) -> dict[str, Any] | None:
    """Interface counters from the container's /proc/PID/net/dev (loopback left out)."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return None
    out: dict[str, Any] = {}
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        values = [int(v) for v in rest.split()]
        if name == "lo" or len(values) < 12:
            continue
        out[name] = {"rx_bytes": values[0], "rx_packets": values[1], "rx_errors": values[2],
                     "rx_dropped": values[3], "tx_bytes": values[8], "tx_packets": values[9],
                     "tx_errors": values[10], "tx_dropped": values[11]}  # fmt: skip
    return out or None


def _blkio(entries: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not entries:
        return None
    return [{"major": e["major"], "minor": e["minor"], "op": e["op"], "value": e["value"]}
            for e in entries]  # fmt: skip


def _empty_cpu() -> dict[str, Any]:
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def _empty_stats(c: Container) -> dict[str, Any]:
    """What dockerd answers for a container that is not running."""
    return {
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": {k: None for k in _BLKIO_KEYS.values()},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _empty_cpu(),
        "precpu_stats": _empty_cpu(),
        "memory_stats": {},
        "name": "/" + c.name,
        "id": c.id,
    }


_BLKIO_KEYS = {
    "ioServiceBytesRecursive": "io_service_bytes_recursive",
    "ioServicedRecursive": "io_serviced_recursive",
    "ioQueueRecursive": "io_queue_recursive",
    "ioServiceTimeRecursive": "io_service_time_recursive",
    "ioWaitTimeRecursive": "io_wait_time_recursive",
    "ioMergedRecursive": "io_merged_recursive",
    "ioTimeRecursive": "io_time_recursive",
    "sectorsRecursive": "sectors_recursive",
}


def _sample(service: ContainerService, c: Container, cg: Any) -> dict[str, Any]:
    """One stats document (precpu_stats and preread left empty)."""
    raw = cg.stats()
    read = rfc3339(time.time_ns(), trim=False)
    usage = raw["cpu"]["usage"]
    throttling = raw["cpu"]["throttling"]
    cpu: dict[str, Any] = {
        "cpu_usage": {
            "total_usage": usage["total"],
            "usage_in_kernelmode": usage["kernel"],
            "usage_in_usermode": usage["user"],
        },
        "system_cpu_usage": _system_cpu(),
        "online_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
        "throttling_data": {
            "periods": throttling["periods"],
            "throttled_periods": throttling["throttledPeriods"],
            "throttled_time": throttling["throttledTime"],
        },
    }
    if usage["percpu"]:
        cpu["cpu_usage"]["percpu_usage"] = usage["percpu"]
    mem = raw["memory"]
    limit = mem["usage"]["limit"]
    total = _mem_total()
    if not limit or (total and limit > total):
        limit = total  # no limit: the machine's memory, as dockerd reports it
    memory = {
        "usage": mem["usage"]["usage"],
        "max_usage": mem["usage"]["max"],
        "stats": mem["raw"],
        "failcnt": mem["usage"]["failcnt"],
        "limit": limit,
    }
    pids: dict[str, Any] = {"current": raw["pids"]["current"]}
    if raw["pids"]["limit"]:
        pids["limit"] = raw["pids"]["limit"]
    doc: dict[str, Any] = {
        "read": read,
        "preread": ZERO_TIME,
        "pids_stats": pids,
        "blkio_stats": {new: _blkio(raw["blkio"].get(old)) for old, new in _BLKIO_KEYS.items()},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu,
        "precpu_stats": _empty_cpu(),
        "memory_stats": memory,
        "name": "/" + c.name,
        "id": c.id,
    }
    pid = int(c.state.get("Pid") or 0)
    if pid and c.host_config.get("NetworkMode") != "host":
        networks = _networks(pid)
        if networks:
            doc["networks"] = networks
    return doc


def _after(previous: dict[str, Any] | None, doc: dict[str, Any]) -> dict[str, Any]:
    if previous is not None:
        doc["precpu_stats"] = previous["cpu_stats"]
        doc["preread"] = previous["read"]
    return doc


def stats(
    service: ContainerService,
    ref: str,
    stream: bool = True,
    one_shot: bool = False,
    gone: Callable[[], bool] | None = None,
) -> Generator[dict[str, Any], None, None]:
    """docker's stats documents for REF: one (STREAM false) or one a second until the
    container is removed or GONE() (the client left) says so."""
    c = service.get(ref)
    previous: dict[str, Any] | None = None
    cg = None
    while True:
        if not c.running or c.removed:
            cg = previous = None
            doc = _empty_stats(c)
        else:
            try:
                if cg is None:
                    cg = _cgroup(service, c)
                doc = _after(previous, _sample(service, c, cg))
            except (SampanError, OSError):
                cg = previous = None  # it stopped between the look and the read
                doc = _empty_stats(c)
            if not stream and not one_shot and previous is None and cg is not None:
                previous = doc
                time.sleep(PRIME_INTERVAL)
                continue
        previous = doc if doc["read"] != ZERO_TIME else None
        yield doc
        if not stream or c.removed:
            return
        deadline = time.monotonic() + STREAM_INTERVAL
        while time.monotonic() < deadline:
            if gone is not None and gone():
                return
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


# -- top ---------------------------------------------------------------------------------


def top(service: ContainerService, ref: str, ps_args: str = "") -> dict[str, Any]:
    """docker's GET /containers/{id}/top: the host's ps over the container's processes."""
    import shutil

    c = service.get(ref)
    if not c.running:
        raise Conflict(f"Container {c.id} is not running")
    try:
        pids = sorted(_cgroup(service, c).pids())
    except (SampanError, OSError) as exc:
        raise Conflict(f"Container {c.id} is not running: {describe(exc)}") from None
    args = ps_args.split() or ["-ef"]
    if shutil.which("ps") is None:
        if args != ["-ef"]:
            raise Unsupported("ps is not installed on this host: only the default -ef is shown")
        return _top_from_proc(pids)
    return _top_from_ps(args, pids)


def _top_from_ps(args: list[str], pids: list[int]) -> dict[str, Any]:
    import subprocess

    pid_list = ",".join(str(p) for p in pids) or "0"
    done = subprocess.run(["ps", *args, "-q", pid_list], capture_output=True, text=True,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        # some ps options (the forest view among them) refuse -q: filter afterwards
        done = subprocess.run(["ps", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()
        raise InvalidArgument(
            f"Error running ps: exit status {done.returncode}: {detail[0] if detail else ''}"
        )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if not lines:
        raise InvalidArgument("ps printed nothing")
    titles = lines[0].split()
    try:
        col = titles.index("PID")
    except ValueError:
        raise InvalidArgument("Couldn't find PID field in ps output") from None
    wanted = set(pids)
    processes = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) <= col or not fields[col].isdigit() or int(fields[col]) not in wanted:
            continue
        head = fields[: len(titles) - 1]
        processes.append([*head, " ".join(fields[len(titles) - 1 :])])
    return {"Titles": titles, "Processes": processes}


def _top_from_proc(pids: list[int]) -> dict[str, Any]:
    """ps -ef's columns read from /proc, for hosts without procps."""
    import pwd

    boot = 0.0
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                boot = float(line.split()[1])
    titles = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    processes = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as fb:
                cmdline = fb.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue  # exited meanwhile
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2 :].split()
        ppid, utime, stime, start = int(rest[1]), int(rest[11]), int(rest[12]), int(rest[19])
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        seconds = (utime + stime) // _CLK_TCK
        started = time.strftime("%H:%M", time.localtime(boot + start / _CLK_TCK))
        cpu_time = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        processes.append([user, str(pid), str(ppid), "0", started, "?", cpu_time,
                          cmdline or f"[{comm}]"])  # fmt: skip
    return {"Titles": titles, "Processes": processes}
