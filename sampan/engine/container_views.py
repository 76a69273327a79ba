"""The API's shapes of containers: inspect, the list entry (ps), and the list's filters.

Separate from the service (containers.py) because it only reads: a
record and its state, copied under the service's lock, become docker's
JSON (GET /containers/{id}/json, GET /containers/json) -- status words
("Up 3 minutes", "Exited (0) 2 seconds ago"), the filters status, name,
id, label and health -- with nothing here that changes a container.

    container_views.inspect(service, "web")             # {"Id", "State", "Config", ...}
    container_views.listing(service, True, {"status": ["exited"]})
"""

from __future__ import annotations

import os
import time

from sampan.engine import lifecycle as _lifecycle
from sampan.engine.container_records import STATUSES, ZERO_TIME, read_text
from sampan.errors import InvalidArgument
from sampan.units import human_duration, parse_rfc3339, rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.engine.container_records import Container
    from sampan.engine.containers import ContainerService

__all__ = ["epoch", "inspect", "label_match", "listing", "summary"]


def epoch(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time (0 for docker's zero time)."""
    if not stamp or stamp.startswith("0001-"):
        return 0.0
    return parse_rfc3339(stamp)


def inspect(service: ContainerService, ref: str) -> dict[str, Any]:
    """GET /containers/{id}/json."""
    from sampan.engine import network_attach

    c = service.get(ref)
    with service.changed:  # one consistent look: an exit changes the state in steps
        state = dict(c.state)
        status = c.status
    args = list(c.config.get("Entrypoint") or []) + list(c.config.get("Cmd") or [])
    bundle = service.bundle(c)
    driver = read_text(os.path.join(service.engine.image_root, "snapshots", "driver")).strip()
    return {
        "Id": c.id,
        "Created": rfc3339(int(c.created * 1e9), trim=False),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": status,
            "Running": bool(state.get("Running")),
            "Paused": status == "paused",
            "Restarting": False,
            "OOMKilled": False,
            "Dead": False,
            "Pid": state.get("Pid", 0),
            "ExitCode": state.get("ExitCode", 0),
            "Error": state.get("Error", ""),
            "StartedAt": state.get("StartedAt", ZERO_TIME),
            "FinishedAt": state.get("FinishedAt", ZERO_TIME),
            **_lifecycle.state_fields(c, state),  # restarting, health
        },
        "Image": c.image,
        "ResolvConfPath": os.path.join(bundle, "resolv.conf"),
        "HostnamePath": os.path.join(bundle, "hostname"),
        "HostsPath": os.path.join(bundle, "hosts"),
        "LogPath": service.log_path(c),
        "Name": "/" + c.name,
        "RestartCount": state.get("RestartCount", 0),
        "Driver": driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": service.engine.execs.ids_of(c) or None,
        "HostConfig": c.host_config,
        "GraphDriver": {"Name": driver, "Data": None},
        "Mounts": _api_mounts(c),
        "Config": c.config,
        "NetworkSettings": network_attach.settings(service.engine.networks, c, state),
    }


def summary(service: ContainerService, c: Container) -> dict[str, Any]:
    """GET /containers/json's entry."""
    with service.changed:
        state = dict(c.state)
        status = c.status
    args = list(c.config.get("Entrypoint") or []) + list(c.config.get("Cmd") or [])
    now = time.time()
    if status in ("running", "paused"):
        text = "Up " + human_duration(now - epoch(state["StartedAt"]))
        text += " (Paused)" if status == "paused" else ""
    elif status == "exited":
        ago = human_duration(now - epoch(state["FinishedAt"]))
        text = f"Exited ({state.get('ExitCode', 0)}) {ago} ago"
    elif status == "removing":
        text = "Removal In Progress"
    else:
        text = "Created"
    text = _lifecycle.status_text(status, state, now) or text  # restarting, health
    return {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": c.image_name,
        "ImageID": c.image,
        "Command": " ".join(args),
        "Created": int(c.created),
        "Ports": _ports(state) if status in ("running", "paused") else [],
        "Labels": c.config.get("Labels") or {},
        "State": status,
        "Status": text,
        "HostConfig": {"NetworkMode": c.host_config["NetworkMode"]},
        "NetworkSettings": {"Networks": _networks(service, c, state)},
        "Mounts": _api_mounts(c),
    }


def _ports(state: dict[str, Any]) -> list[dict[str, Any]]:
    """ps's Ports: each published (or only exposed) port of a running container."""
    out: list[dict[str, Any]] = []
    for key, bindings in (state.get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        if not bindings:
            out.append({"PrivatePort": int(port), "Type": proto})
        for b in bindings or []:
            out.append({"IP": b["HostIp"], "PrivatePort": int(port),
                         "PublicPort": int(b["HostPort"]), "Type": proto})  # fmt: skip
    return out


def _networks(service: ContainerService, c: Container, state: dict[str, Any]) -> dict[str, Any]:
    from sampan.engine import network_attach

    doc: dict[str, Any] = network_attach.settings(service.engine.networks, c, state)["Networks"]
    return doc


def listing(
    service: ContainerService, show_all: bool = False, filters: dict[str, list[str]] | None = None
) -> list[Any]:
    """GET /containers/json: running ones (or ALL) that pass FILTERS."""
    filters = filters or {}
    for key in filters:
        if key not in ("status", "name", "id", "label", "health"):
            raise InvalidArgument(f"invalid filter '{key}'")
    for status in filters.get("status", []):
        if status not in STATUSES:
            raise InvalidArgument(f"invalid filter 'status={status}'")
    _lifecycle.health_matches(None, filters.get("health"))  # checks the values
    out = []
    for c in service.all():
        shown = c.running or c.status == "restarting"  # docker lists restarting ones
        if not (show_all or filters.get("status")) and not shown:
            continue
        if not _lifecycle.health_matches(c, filters.get("health")):
            continue
        if "status" in filters and c.status not in filters["status"]:
            continue
        if "id" in filters and not any(c.id.startswith(v) for v in filters["id"]):
            continue
        if "name" in filters and not any(_name_match(v, c.name) for v in filters["name"]):
            continue
        labels = c.config.get("Labels") or {}
        if "label" in filters and not all(label_match(v, labels) for v in filters["label"]):
            continue
        out.append(summary(service, c))
    return out


def _api_mounts(c: Container) -> list[dict[str, Any]]:
    from sampan.engine.mounts import api_mounts

    return api_mounts(c)


def _name_match(pattern: str, name: str) -> bool:
    import re

    try:
        return re.search(pattern.removeprefix("/"), name) is not None
    except re.error:
        raise InvalidArgument(f"invalid filter 'name={pattern}'") from None


def label_match(want: str, labels: dict[str, str]) -> bool:
    """A label filter ("key" or "key=value") against LABELS."""
    key, eq, value = want.partition("=")
    return key in labels and (not eq or labels[key] == value)
