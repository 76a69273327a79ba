"""The engine's event bus: what ``docker events`` streams.

Every service records what it did with one call::

    engine.events.emit("container", "start", cid, {"name": "web", "image": "busybox"})

An event is docker's message shape (``Type``, ``Action``, ``Actor``,
``scope``, ``time``, ``timeNano``, and for containers and images the legacy
``status``/``id``/``from``).  The bus keeps the last ``KEEP`` events in
memory, so ``--since`` can replay recent history, and wakes subscribers
through one condition; a subscriber reads by sequence number, so a slow
reader never blocks an emitter and never sees an event twice.  Events are
not persisted: a restarted daemon starts an empty history, as dockerd does.
"""

from __future__ import annotations

import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["KEEP", "EventBus"]

KEEP = 1024


class EventBus:
    """Recent events and a condition that wakes the readers of new ones."""

    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._events: list[dict[str, Any]] = []
        self._next = 0  # sequence number of the next event
        self._cond = threading.Condition()

    def emit(
        self, kind: str, action: str, actor_id: str, attributes: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Record one event (KIND: container, image, volume, network, daemon); the message."""
        now = time.time_ns()
        event: dict[str, Any] = {
            "Type": kind,
            "Action": action,
            "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
            "scope": "local",
            "time": now // 1_000_000_000,
            "timeNano": now,
        }
        if kind in ("container", "image"):
            event["status"] = action
            event["id"] = actor_id
            if kind == "container" and attributes and "image" in attributes:
                event["from"] = attributes["image"]
        with self._cond:
            self._events.append(event)
            self._next += 1
            if len(self._events) > self._keep:
                del self._events[: len(self._events) - self._keep]
            self._cond.notify_all()
        return event

    @property
    def position(self) -> int:
        """The sequence number the next event will have (where a live reader starts)."""
        with self._cond:
            return self._next

    def history(self) -> tuple[list[dict[str, Any]], int]:
        """The events kept, oldest first, and the position after them."""
        with self._cond:
            return list(self._events), self._next

    def read(self, position: int, timeout: float | None) -> tuple[list[dict[str, Any]], int]:
        """Events from POSITION on, waiting up to TIMEOUT for one; (events, next position).

        A reader that fell more than KEEP events behind gets what is still kept.
        """
        with self._cond:
            if self._next <= position:
                self._cond.wait_for(lambda: self._next > position, timeout)
            first = self._next - len(self._events)
            start = max(position, first) - first
            return self._events[start:], self._next
