"""The lifecycle verbs and hooks around ContainerService: events, rename, restart, prune.

ContainerService (containers.py) keeps the records and the monitors; this
module holds what docker layers on top of them, each called from a line
there or from the API:

  - ``emit``: a container event with docker's attributes (name, image, the
    labels, and the action's own: exitCode, signal, oldName...);
  - ``exited``: what an exit means beyond the record -- the health prober
    stops, the restart policy may start it again (restart.py), ``die``;
  - ``rename``, ``restart``, ``prune``: the verbs;
  - ``config_fields``: Config.StopTimeout, StopSignal and Healthcheck
    checked and merged at create;
  - the API shapes of restarting and health: ``state_fields`` (inspect),
    ``status_text`` (ps's Status), ``health_matches`` (ps's health filter).

    lifecycle.rename(service, "web", "api")
    lifecycle.restart(service, "api", timeout=5)
    lifecycle.prune(service, {"until": ["1h"]})   # {"ContainersDeleted", "SpaceReclaimed"}
"""

from __future__ import annotations

import os
import time

from sampan.errors import Conflict, InvalidArgument, NotFound
from sampan.units import human_duration, parse_rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.engine.containers import Container, ContainerService

__all__ = ["attributes", "config_fields", "emit", "exited", "health_matches", "parse_time",
           "prune", "rename", "restart", "state_fields", "status_text"]  # fmt: skip

_PRUNE_FILTERS = ("until", "label", "label!")


def attributes(c: Container) -> dict[str, str]:
    """docker's attributes of a container event: its labels, name and image."""
    attrs = dict(c.config.get("Labels") or {})
    attrs["name"] = c.name
    attrs["image"] = c.image_name
    return attrs


def emit(service: ContainerService, c: Container, action: str, **extra: str) -> None:
    """Record the container event ACTION for C (with EXTRA attributes)."""
    service.engine.events.emit("container", action, c.id, {**attributes(c), **extra})


# -- create ------------------------------------------------------------------------------


def config_fields(image: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Config's StopTimeout (only when given, as docker) and Healthcheck, checked; the
    StopSignal merged by spec.merge_config is checked here too."""
    from sampan.engine import health

    out: dict[str, Any] = {}
    timeout = request.get("StopTimeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int):
            raise InvalidArgument("StopTimeout: expected an integer (seconds)")
        out["StopTimeout"] = timeout
    signal = request.get("StopSignal") or image.get("StopSignal")
    if signal:
        from sampan.engine.containers import parse_signal

        if not isinstance(signal, str):
            raise InvalidArgument("StopSignal: expected a string")
        try:
            parse_signal(signal)
        except InvalidArgument:
            raise InvalidArgument(f"Invalid signal: {signal}") from None
    out.update(health.config_fields(image, request))
    return out


# -- exits -------------------------------------------------------------------------------


def exited(service: ContainerService, c: Container) -> bool:
    """C's exit was just recorded (the service's lock held): its prober stops, ``die`` is
    emitted, its restart policy acts.  True when C will start again (no auto-removal)."""
    service.health.stopped(c)
    state = c.state
    started, finished = parse_rfc3339(state.get("StartedAt", "")), time.time()
    ran_for = max(0.0, finished - started) if started else 0.0
    emit(service, c, "die", exitCode=str(state.get("ExitCode", 0)),
         execDuration=str(int(ran_for)))  # fmt: skip
    return service.restarts.exited(c, ran_for)


# -- rename ------------------------------------------------------------------------------


def rename(service: ContainerService, ref: str, new_name: str) -> None:
    """docker rename: a new name, unique; the event carries the old one."""
    from sampan.engine import spec
    from sampan.engine.container_records import name_conflict

    if not new_name or not ref:
        raise InvalidArgument("Neither old nor new names may be empty")
    name = spec.check_name(new_name)
    with service.changed:
        c = service.get(ref)
        old = c.name
        if name == old:
            raise InvalidArgument("Renaming a container with the same name as its current name")
        for other in service.all():
            if other.name == name and other is not c:
                raise name_conflict(name, other.id)
        service.table.rename(c.id, name)
        c.name = name
        service.changed.notify_all()
    service.engine.networks.names_changed()  # the embedded DNS answers the new name
    emit(service, c, "rename", oldName="/" + old)


# -- restart -----------------------------------------------------------------------------


def restart(
    service: ContainerService, ref: str, timeout: int | None = None, signal: str = ""
) -> None:
    """docker restart: stop it if it runs (the policy does not restart it meanwhile, --rm
    does not remove it), start it, ``restart``."""
    from sampan.engine.containers import NotModified

    c = service.get(ref)
    with service.changed:
        live = c.running or c.starting
        if live:
            service.restarts.restarting_by_user(c)
    if live:
        try:
            service.stop(c.id, timeout, signal)
        except NotModified:
            pass
        finally:
            with service.changed:
                c.state.pop("ManualRestart", None)
    try:
        service.start(c.id)
    except NotModified:
        pass
    emit(service, c, "restart")


# -- prune -------------------------------------------------------------------------------


def parse_time(text: str, now: float) -> float:
    """docker's time filter value: unix seconds (with a fraction), RFC 3339, or a Go
    duration before NOW (``10m``, ``1h30m``)."""
    from sampan.units import parse_duration

    try:
        return float(text)
    except ValueError:
        pass
    if "T" in text or text.count("-") >= 2:
        at = parse_rfc3339(text if text[-1:] == "Z" or "+" in text[10:] else text + "Z")
        if at:
            return at
    try:
        return now - parse_duration(text) / 1e9
    except ValueError:
        raise InvalidArgument(f"invalid time value {text!r}: want unix seconds, "
                              "an RFC 3339 time or a duration (10m)") from None  # fmt: skip


def prune(service: ContainerService, filters: dict[str, list[str]]) -> dict[str, Any]:
    """Remove every stopped container that FILTERS (until, label, label!) select."""
    from sampan.engine.container_views import label_match

    for key in filters:
        if key not in _PRUNE_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
    now = time.time()
    until = [parse_time(v, now) for v in filters.get("until", [])]
    deleted: list[str] = []
    reclaimed = 0
    for c in service.all():
        with service.changed:
            busy = c.running or c.starting or c.removing or c.status in ("restarting", "paused")
        if busy:
            continue
        if until and not any(c.created < t for t in until):
            continue
        labels = c.config.get("Labels") or {}
        if not all(label_match(v, labels) for v in filters.get("label", [])):
            continue
        if any(label_match(v, labels) for v in filters.get("label!", [])):
            continue
        size = rw_size(service, c)
        try:
            service.remove(c.id)
        except (Conflict, NotFound):
            continue  # started or removed meanwhile
        deleted.append(c.id)
        reclaimed += size
    service.engine.events.emit("container", "prune", "", {"reclaimed": str(reclaimed)})
    return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}


def rw_size(service: ContainerService, c: Container) -> int:
    """Bytes in C's writable layer (what removing it frees)."""
    try:
        top = service.engine.store().snapshots.upper_dir(c.id)
    except (NotFound, OSError, ValueError):
        return 0
    total = 0
    for base, dirs, files in os.walk(top):
        for name in files + dirs:
            try:
                st = os.lstat(os.path.join(base, name))
            except OSError:
                continue
            if st.st_mode & 0o170000 != 0o040000:  # not a directory
                total += st.st_size
    return total


def sizes(service: ContainerService, c: Container) -> dict[str, int]:
    """docker's SizeRw (the writable layer) and SizeRootFs (that and the image's layers),
    for ``ps -s`` and ``inspect -s``: a walk of the writable layer, so only when asked."""
    rw = rw_size(service, c)
    try:
        image = service.engine.store().resolve(c.image).size
    except (NotFound, ValueError):
        image = 0
    return {"SizeRw": rw, "SizeRootFs": rw + image}


# -- API shapes --------------------------------------------------------------------------


def state_fields(c: Container, state: dict[str, Any]) -> dict[str, Any]:
    """inspect's State fields for restarting and health (docker shows a container waiting
    for its restart as running and restarting)."""
    restarting = state.get("Status") == "restarting"
    out: dict[str, Any] = {"Running": bool(state.get("Running")) or restarting,
                           "Restarting": restarting}  # fmt: skip
    if state.get("Health"):
        health = state["Health"]
        out["Health"] = {"Status": health.get("Status", "starting"),
                         "FailingStreak": int(health.get("FailingStreak", 0)),
                         "Log": list(health.get("Log") or [])}  # fmt: skip
    return out


def status_text(status: str, state: dict[str, Any], now: float) -> str | None:
    """ps's Status for what this module adds: "Restarting (1) 2 seconds ago", the health
    after "Up ..." (None: the caller's own text)."""
    from sampan.engine.health import status_suffix

    if status == "restarting":
        ago = human_duration(now - (parse_rfc3339(state.get("FinishedAt", "")) or now))
        return f"Restarting ({state.get('ExitCode', 0)}) {ago} ago"
    if status == "running" and state.get("Health"):
        up = human_duration(now - (parse_rfc3339(state.get("StartedAt", "")) or now))
        return f"Up {up}{status_suffix(state)}"
    return None


def health_matches(c: Container | None, values: list[str] | None) -> bool:
    """ps's ``health`` filter (starting, healthy, unhealthy or none; VALUES None: no filter);
    C None only checks the values."""
    from sampan.engine.health import STATUSES

    if not values:
        return True
    for value in values:
        if value not in STATUSES:
            raise InvalidArgument(f"Unrecognised filter value for health: {value}")
    if c is None:
        return True
    health = c.state.get("Health")
    return (health.get("Status", "starting") if health else "none") in values
