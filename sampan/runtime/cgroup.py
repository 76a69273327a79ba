"""The container's cgroup: its path from config.json, and its device rules."""

from __future__ import annotations

from sampan.runtime.rootfs import DEFAULT_DEVICE_RULES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.cgroups import Cgroup
    from sampan.runtime.state import ContainerState


def open_for(config: dict[str, Any], cid: str) -> Cgroup:
    from sampan.cgroups import open_cgroup

    return open_cgroup(config.get("linux", {}).get("cgroupsPath") or None, cid)


def container_cgroup(state: ContainerState) -> Cgroup:
    return open_for(state.config, state.id)


def effective_resources(config: dict[str, Any]) -> dict[str, Any]:
    """linux.resources plus the device rules every container gets (as runc adds them).

    The device list is always the whole allow-list over "deny all" (see
    sampan.cgroups): the config's own rules come first, then the rules for
    the default nodes (/dev/null, ptys, ...) and for the config's
    linux.devices -- so a config without any rules still cannot open, say,
    the host's disks, and a "deny all" in it does not make /dev/null unusable.
    """
    linux = config.get("linux", {})
    resources = dict(linux.get("resources") or {})
    rules = list(resources.get("devices") or [])
    for kind, major, minor, access in DEFAULT_DEVICE_RULES:
        rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
        if major is not None:
            rule["major"] = major
        if minor is not None:
            rule["minor"] = minor
        rules.append(rule)
    for dev in linux.get("devices", []):
        if dev["type"] != "p":
            kind = "c" if dev["type"] == "u" else dev["type"]
            rule = {"allow": True, "type": kind, "access": "rwm"}
            rules.append({**rule, "major": dev["major"], "minor": dev["minor"]})
    resources["devices"] = rules
    return resources
