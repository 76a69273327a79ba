"""GET /events: docker's event stream over the engine's bus (sampan/engine/events.py).

    GET /events?since=1700000000.5&until=...&filters={"type":["container"],"event":["start"]}

``since`` and ``until`` are unix seconds with an optional fraction (what
the docker CLI sends after converting its flags), RFC 3339 times, or
durations before now (``10m``).  The answer is a chunked stream of JSON
lines: the kept history from ``since`` on (all of it with only ``until``),
then each new event as it is emitted, until ``until`` passes (at once when
it is in the past) or the client goes away.  Without either, only new
events are sent.

Filters are docker's: ``type``, ``event`` (``health_status`` matches every
``health_status: ...``; exec_create and exec_start likewise),
``container``, ``image``, ``volume``, ``network``, ``daemon`` (an id or a
name, prefixes allowed for containers), ``label`` (``key`` or
``key=value``, all must match) and ``scope``; values of one key are
alternatives, keys all apply.
"""

from __future__ import annotations

import time

from sampan import _json
from sampan.api.errors import BadRequest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.api.router import Router
    from sampan.api.server import Request

__all__ = ["add_routes", "matches", "parse_filters"]

FILTER_KEYS = frozenset(("type", "event", "container", "image", "label", "volume", "network",
                         "daemon", "scope", "plugin", "node", "service", "secret",
                         "config"))  # fmt: skip
TYPES = ("container", "image", "volume", "network", "daemon", "plugin", "node", "service",
         "secret", "config", "builder")  # fmt: skip
_FUZZY_EVENTS = ("health_status", "exec_create", "exec_start")
POLL = 0.5  # seconds between looks at a silent stream (client gone? until passed?)


def add_routes(router: Router) -> None:
    router.add("GET", "/events", events)


def parse_filters(filters: dict[str, list[str]]) -> dict[str, list[str]]:
    """Check docker's event filters (unknown keys, types and scopes are 400)."""
    for key, values in filters.items():
        if key not in FILTER_KEYS:
            raise BadRequest(f"invalid filter '{key}'")
        if key == "type":
            for value in values:
                if value not in TYPES:
                    raise BadRequest(f"invalid filter 'type={value}'")
        if key == "scope":
            for value in values:
                if value not in ("local", "swarm"):
                    raise BadRequest(f"invalid filter 'scope={value}'")
    return filters


def _exact(filters: dict[str, list[str]], key: str, *values: str) -> bool:
    wanted = filters.get(key)
    return not wanted or any(v in wanted for v in values if v)


def _fuzzy(filters: dict[str, list[str]], key: str, *values: str) -> bool:
    wanted = filters.get(key)
    return not wanted or any(v and v.startswith(w) for w in wanted for v in values)


def _strip_tag(name: str) -> str:
    slash = name.rfind("/")
    colon = name.rfind(":")
    if "@" in name:
        return name.split("@", 1)[0]
    return name[:colon] if colon > slash else name


def matches(event: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Whether EVENT passes docker's FILTERS."""
    kind = event.get("Type", "")
    action = event.get("Action", "")
    actor = event.get("Actor") or {}
    actor_id = actor.get("ID", "")
    attrs = actor.get("Attributes") or {}
    wanted = filters.get("event")
    if wanted:
        if any(w in _FUZZY_EVENTS for w in wanted):
            if not any(action.startswith(w) for w in wanted):
                return False
        elif action not in wanted:
            return False
    if not _exact(filters, "type", kind) or not _exact(filters, "scope", event.get("scope", "")):
        return False
    for key in ("container", "daemon", "plugin", "volume", "network", "node", "service",
                "secret", "config"):  # fmt: skip
        if key in filters:
            if kind != key:
                return False
            if not _name_match(filters[key], key, actor_id, attrs.get("name", "")):
                return False
    if "image" in filters:
        name = attrs.get("name" if kind == "image" else "image", "")
        if not _exact(filters, "image", actor_id, name, _strip_tag(actor_id), _strip_tag(name)):
            return False
    for label in filters.get("label", []):
        key, eq, value = label.partition("=")
        if key not in attrs or (eq and attrs[key] != value):
            return False
    return True


def _name_match(wanted: list[str], key: str, actor_id: str, name: str) -> bool:
    if key == "container":
        return _fuzzy({key: wanted}, key, actor_id, name)
    return _exact({key: wanted}, key, actor_id, name)


def _stamp(text: str, now: float, name: str) -> float:
    from sampan.engine.lifecycle import parse_time
    from sampan.errors import InvalidArgument

    try:
        return parse_time(text, now)
    except InvalidArgument as exc:
        raise BadRequest(f"{name}: {exc}") from None


def _ns(event: dict[str, Any]) -> int:
    return int(event.get("timeNano") or int(event.get("time", 0)) * 1_000_000_000)


def events(request: Request) -> None:
    now = time.time()
    since_text, until_text = request.query("since"), request.query("until")
    since = _stamp(since_text, now, "since") if since_text else None
    until = _stamp(until_text, now, "until") if until_text else None
    filters = parse_filters(request.filters())
    bus = request.engine.events
    kept, position = bus.history()
    out = request.stream(200, "application/json")

    def send(batch: list[dict[str, Any]]) -> bool:
        """Write the events of BATCH that pass; False once past ``until``."""
        lines: list[bytes] = []
        for event in batch:
            at = _ns(event) / 1e9
            if until is not None and at > until:
                if lines:
                    out.write(b"".join(lines))
                return False
            if since is not None and at < since:
                continue
            if matches(event, filters):
                lines.append((_json.dumps(event) + "\n").encode())
        if lines:
            out.write(b"".join(lines))
        return True

    try:
        if (since is not None or until is not None) and not send(kept):  # docker's replay
            out.close()
            return
        while until is None or time.time() <= until:
            wait = POLL if until is None else max(0.0, min(POLL, until - time.time()))
            batch, position = bus.read(position, wait)
            if not send(batch):
                break
            if not batch and request.client_gone():
                return
        out.close()
    except (BrokenPipeError, ConnectionResetError):
        return
