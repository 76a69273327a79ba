"""docker's JSON progress stream: the Progress interface of pull/push, as API output.

Each event is one JSON object per line, which the docker CLI renders like
``docker pull`` on a terminal (and docker-py hands to its caller)::

    {"status":"Pulling from library/busybox","id":"latest"}
    {"status":"Downloading","progressDetail":{"current":1024,"total":2048},
     "progress":"[=====>    ] 1.024kB/2.048kB","id":"9ad63333ebc9"}
    {"errorDetail":{"message":"..."},"error":"..."}

Nothing is sent until the first layer event: a pull that fails resolving
its manifest (a missing tag, refused credentials) answers with a plain
HTTP error -- 404, 401 -- as dockerd does, not a 200 stream carrying one.
Download threads report concurrently; a lock orders the lines, and byte
counts of a layer are sent at most every REDRAW_INTERVAL seconds.
"""

from __future__ import annotations

import threading
import time

from sampan import _json
from sampan.image.registry.progress import Progress, progress_bar

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["JSONProgress", "error_line", "json_line"]

REDRAW_INTERVAL = 0.1


def json_line(doc: dict[str, Any]) -> bytes:
    return (_json.dumps(doc) + "\r\n").encode()


def error_line(message: str) -> bytes:
    return json_line({"errorDetail": {"message": message}, "error": message})


class JSONProgress(Progress):
    """Progress events as docker's JSON lines, written through WRITE.

    START is called once, just before the first line is written (the HTTP
    handler starts its streamed response there); until then events wait.
    """

    def __init__(self, start: Callable[[], Callable[[bytes], object]]) -> None:
        self._start = start
        self._write: Callable[[bytes], object] | None = None
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        self._sent: dict[str, float] = {}

    @property
    def started(self) -> bool:
        return self._write is not None

    def _emit(self, line: bytes, *, flush: bool) -> None:
        with self._lock:
            self._pending.append(line)
            if not flush and self._write is None:
                return
            if self._write is None:
                self._write = self._start()
            data, self._pending = b"".join(self._pending), []
            self._write(data)

    def message(self, text: str) -> None:
        # "latest: Pulling from library/busybox" is docker's {"id": "latest", ...}
        head, sep, rest = text.partition(": ")
        if sep and rest.startswith("Pulling from "):
            doc: dict[str, Any] = {"status": rest, "id": head}
        else:
            doc = {"status": text}
        self._emit(json_line(doc), flush=self.started)

    def layer(
        self, layer_id: str, status: str, current: int | None = None, total: int | None = None
    ) -> None:
        doc: dict[str, Any] = {"status": status, "progressDetail": {}, "id": layer_id}
        if current is not None:
            now = time.monotonic()
            done = total is not None and current >= total
            if not done and now - self._sent.get(layer_id, 0.0) < REDRAW_INTERVAL:
                return
            self._sent[layer_id] = now
            detail: dict[str, int] = {"current": current}
            if total:
                detail["total"] = total
            doc["progressDetail"] = detail
            doc["progress"] = progress_bar(current, total)
        self._emit(json_line(doc), flush=True)

    def aux(self, doc: dict[str, Any]) -> None:
        """docker's {"aux": ...} record (push's tag, digest and size)."""
        self._emit(json_line({"progressDetail": {}, "aux": doc}), flush=True)

    def finish(self) -> None:
        """Send what waits (a pull with nothing to download has only messages)."""
        with self._lock:
            if not self._pending:
                return
        self._emit(b"", flush=True)

    def error(self, message: str) -> None:
        """The failure as the stream's last line (only once the stream has started)."""
        self._emit(error_line(message), flush=True)
