"""The verbs that look at or adjust a container: list, ps, pause, resume, update, events."""

from __future__ import annotations

import os
import sys
import time

from sampan import _json
from sampan.errors import Conflict, InvalidArgument, SampanError
from sampan.runtime import cgroup as cgroup_glue
from sampan.runtime.state import ContainerState, list_ids
from sampan.units import ram_in_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def list_containers(root: str, fmt: str, quiet: bool) -> str:
    if fmt not in ("table", "json"):
        raise InvalidArgument(f"--format {fmt!r}: want table or json")
    states = []
    for cid in list_ids(root):
        try:
            states.append(ContainerState.load(root, cid))
        except SampanError:
            continue  # deleted meanwhile, or a damaged record: list the others
    if quiet:
        return "".join(f"{s.id}\n" for s in states)
    rows = [s.oci_state() for s in states]
    if fmt == "json":
        return _json.dumps(rows) + "\n"
    table = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    table += [(r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"] or "root")
              for r in rows]  # fmt: skip
    widths = [max(12, *(len(row[i]) for row in table)) + 3 for i in range(5)]
    return "".join(
        "".join(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)) + row[5] + "\n"
        for row in table
    )


def _running(root: str, cid: str) -> tuple[ContainerState, Any]:
    state = ContainerState.load(root, cid)
    if state.status(frozen=False) == "stopped":
        raise Conflict(f"container {cid!r} is not running")
    return state, cgroup_glue.container_cgroup(state)


def ps(root: str, cid: str, fmt: str, ps_args: list[str]) -> str:
    _, cg = _running(root, cid)
    pids = sorted(cg.pids())
    if fmt == "json":
        return _json.dumps(pids) + "\n"
    if fmt != "table":
        raise InvalidArgument(f"--format {fmt!r}: want table or json")
    import subprocess

    out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise InvalidArgument(f"ps {' '.join(ps_args)}: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    header = lines[0]
    try:
        col = header.split().index("PID")
    except ValueError:
        raise InvalidArgument("ps output has no PID column") from None
    wanted = {str(p) for p in pids}
    kept = [ln for ln in lines[1:] if len(ln.split()) > col and ln.split()[col] in wanted]
    return "\n".join([header, *kept]) + "\n"


def pause(root: str, cid: str) -> None:
    state, cg = _running(root, cid)
    if state.status() != "running":
        raise Conflict(f"container {cid!r} is not running")
    cg.freeze()


def resume(root: str, cid: str) -> None:
    state, cg = _running(root, cid)
    if state.status() != "paused":
        raise Conflict(f"container {cid!r} is not paused")
    cg.thaw()


def parse_bytes(text: str, flag: str) -> int:
    """``64m`` -> 67108864 (binary units, as docker's RAMInBytes); ``-1`` stays -1."""
    value = text.strip()
    if value == "-1":
        return -1
    if value.startswith("-") and value[1:2] in tuple("0123456789."):
        raise InvalidArgument(f"{flag} {text!r}: must not be negative")
    try:
        return ram_in_bytes(value)
    except ValueError:
        raise InvalidArgument(f"{flag} {text!r}: not a size") from None


def update(root: str, cid: str, opts: dict[str, Any]) -> None:
    state, cg = _running(root, cid)
    resources: dict[str, Any] = {}
    if opts["resources"]:
        if opts["resources"] == "-":
            raw = sys.stdin.buffer.read()
        else:
            try:
                with open(opts["resources"], "rb") as f:
                    raw = f.read()
            except OSError as exc:
                raise InvalidArgument(f"--resources {opts['resources']}: {exc.strerror}") from None
        try:
            resources = _json.loads(raw)
        except ValueError as exc:
            raise InvalidArgument(f"--resources: malformed JSON: {exc}") from None
        if not isinstance(resources, dict):
            raise InvalidArgument("--resources: must be a JSON object (OCI linux.resources)")
    memory = resources.setdefault("memory", {})
    for flag, key in (("memory", "limit"), ("memory_reservation", "reservation"),
                      ("memory_swap", "swap")):  # fmt: skip
        if opts[flag] is not None:
            memory[key] = parse_bytes(opts[flag], "--" + flag.replace("_", "-"))
    cpu = resources.setdefault("cpu", {})
    for flag, key in (("cpu_shares", "shares"), ("cpu_quota", "quota"), ("cpu_period", "period"),
                      ("cpuset_cpus", "cpus"), ("cpuset_mems", "mems")):  # fmt: skip
        if opts[flag] is not None:
            cpu[key] = opts[flag]
    if opts["pids_limit"] is not None:
        resources["pids"] = {"limit": opts["pids_limit"]}
    if opts["blkio_weight"] is not None:
        resources.setdefault("blockIO", {})["weight"] = opts["blkio_weight"]
    resources = {k: v for k, v in resources.items() if v not in ({}, None)}
    _apply(state, cg, resources)


def update_resources(root: str, cid: str, resources: dict[str, Any]) -> None:
    """Apply RESOURCES (OCI linux.resources, only what changes) to a running container."""
    state, cg = _running(root, cid)
    _apply(state, cg, resources)


def _apply(state: ContainerState, cg: Any, resources: dict[str, Any]) -> None:
    from sampan.cgroups import validate_resources

    validate_resources(resources)
    cg.apply(resources)
    # Remember the new limits, so that the state shows what is in force.
    merged = dict(state.config.get("linux", {}).get("resources") or {})
    for key, value in resources.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    state.config.setdefault("linux", {})["resources"] = merged
    state.save()


def _interval(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            try:
                seconds = float(text[: -len(suffix)]) * units[suffix]
            except ValueError:
                break
            if 0 < seconds < float("inf"):
                return seconds
            break
    raise InvalidArgument(f"--interval {text!r}: want a duration like 5s or 500ms")


def events(root: str, cid: str, stats_once: bool, interval: str) -> int:
    """Print stats events as JSON lines; with --stats, one and done."""
    period = _interval(interval)
    state, cg = _running(root, cid)
    while True:
        event = {"type": "stats", "id": cid, "data": cg.stats()}
        sys.stdout.write(_json.dumps(event) + "\n")
        sys.stdout.flush()
        if stats_once:
            return 0
        time.sleep(period)
        if not state.alive():
            return 0


def features() -> dict[str, Any]:
    """What this runtime supports, in the shape of runc's ``features`` command."""
    from sampan.linux.caps import CAPABILITIES
    from sampan.linux.constants import (
        MOUNT_OPTIONS,
        PROPAGATION_OPTIONS,
        RECURSIVE_MOUNT_OPTIONS,
    )
    from sampan.oci.runtime_config import HOOK_KINDS, NAMESPACE_TYPES, OCI_VERSION

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted([*MOUNT_OPTIONS, *PROPAGATION_OPTIONS, *RECURSIVE_MOUNT_OPTIONS]),
        "linux": {
            "namespaces": [
                n
                for n in NAMESPACE_TYPES
                if os.path.exists(f"/proc/self/ns/{n}") or n in ("network", "mount")
            ],
            "capabilities": sorted(CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False},
            "seccomp": {"enabled": True},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
    }
