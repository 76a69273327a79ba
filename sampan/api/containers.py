"""/containers/...: the container endpoints of the Engine API (moby's api/docs/v1.41.yaml).

Handlers parse, call the engine's ContainerService, and encode.  ``logs``
reads the container's json-file log and its rotated files
(sampan.engine.logfile); ``-f`` follows it until the container exits.
Every chunk is framed as docker does: 8 bytes (stream 1 or 2, three zeros,
a big-endian length), then the bytes.  ``wait`` sends its headers at once
(the docker CLI waits for them before it starts the container) and the
body when the condition is met.  Attach and resize are in attach.py.
"""

from __future__ import annotations

from sampan import _json
from sampan.api.errors import BadRequest
from sampan.errors import Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from sampan.api.router import Router
    from sampan.api.server import Request
    from sampan.engine.containers import Container, ContainerService
    from sampan.engine.logfile import LogReader

__all__ = ["add_routes", "frame"]

_STREAMS = {"stdout": 1, "stderr": 2}
_IDLE = 0.1  # seconds between looks at a log being followed (woken early by any change)


def add_routes(router: Router) -> None:
    router.add("GET", "/containers/json", list_containers)
    router.add("POST", "/containers/create", create)
    router.add("GET", "/containers/{id}/json", inspect)
    router.add("GET", "/containers/{id}/logs", logs)
    router.add("POST", "/containers/{id}/start", start)
    router.add("POST", "/containers/{id}/stop", stop)
    router.add("POST", "/containers/{id}/kill", kill)
    router.add("POST", "/containers/{id}/wait", wait)
    router.add("DELETE", "/containers/{id}", remove)


def _service(request: Request) -> ContainerService:
    return request.engine.containers


def frame(stream: str, data: bytes) -> bytes:
    """docker's multiplexed-stream frame for DATA on STREAM ("stdout" or "stderr")."""
    return bytes((_STREAMS[stream], 0, 0, 0)) + len(data).to_bytes(4, "big") + data


# -- simple verbs ------------------------------------------------------------------------


def create(request: Request) -> None:
    body = request.json_body()
    if not isinstance(body, dict):
        raise BadRequest("request body: expected a JSON object")
    cid = _service(request).create(body, request.query("name"))
    from sampan.engine.resources import create_warnings

    request.send_json(201, {"Id": cid, "Warnings": create_warnings(body.get("HostConfig"))})


def start(request: Request) -> None:
    from sampan.engine.containers import NotModified

    try:
        _service(request).start(request.vars["id"])
    except NotModified:
        request.send(304)
        return
    request.send(204)


def stop(request: Request) -> None:
    from sampan.engine.containers import NotModified

    text = request.query("t")
    timeout = request.query_int("t") if text else None
    try:
        _service(request).stop(request.vars["id"], timeout, request.query("signal"))
    except NotModified:
        request.send(304)
        return
    request.send(204)


def kill(request: Request) -> None:
    from sampan.engine.containers import parse_signal

    signal = parse_signal(request.query("signal") or "SIGKILL")
    _service(request).kill(request.vars["id"], signal)
    request.send(204)


def remove(request: Request) -> None:
    if request.flag("link"):
        raise Unsupported("removing links is not supported")
    _service(request).remove(
        request.vars["id"], force=request.flag("force"), volumes=request.flag("v")
    )
    request.send(204)


def inspect(request: Request) -> None:
    service = _service(request)
    doc = service.inspect(request.vars["id"])
    if request.flag("size"):
        from sampan.engine.lifecycle import sizes

        doc.update(sizes(service, service.get(doc["Id"])))
    request.send_json(200, doc)


def list_containers(request: Request) -> None:
    service = _service(request)
    found = service.list(show_all=request.flag("all"), filters=request.filters())
    limit = request.query_int("limit", -1)
    if limit > 0:
        found = found[:limit]
    if request.flag("size"):
        from sampan.engine.lifecycle import sizes

        for entry in found:
            entry.update(sizes(service, service.get(entry["Id"])))
    request.send_json(200, found)


def wait(request: Request) -> None:
    condition = request.query("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise BadRequest(f"condition: invalid value {condition!r}")
    service = _service(request)
    c = service.get(request.vars["id"])
    exits = c.exits
    out = request.stream(200, "application/json")
    code, error = service.wait(c, condition, exits)
    doc = {"StatusCode": code, "Error": {"Message": error} if error else None}
    out.write((_json.dumps(doc) + "\n").encode())
    out.close()


# -- output streams ----------------------------------------------------------------------


def _follow(
    request: Request,
    c: Container,
    reader: LogReader,
    emit: Callable[[list[tuple[str, str, bytes]]], None],
    finished: Callable[[], bool],
) -> None:
    """Emit the log's new entries until FINISHED() (checked before each read) or the client
    leaves; the monitor writes the whole log before the exit is recorded, so the read
    after FINISHED() turns true is the last one needed."""
    service = _service(request)
    while True:
        with service.changed:
            done = finished()
        emit(reader.entries())
        if done or request.client_gone(half_close=False):
            return
        with service.changed:
            if not finished():
                service.changed.wait(_IDLE)


def logs(request: Request) -> None:
    service = _service(request)
    c = service.get(request.vars["id"])
    want = {s for s in ("stdout", "stderr") if request.flag(s)}
    if not want:
        raise BadRequest("Bad parameters: you must choose at least one stream")
    tail_text = request.query("tail", "all")
    tail = -1
    if tail_text not in ("", "all"):
        try:
            tail = int(tail_text)
        except ValueError:
            raise BadRequest(f"tail: invalid value {tail_text!r}") from None
    stamps = request.flag("timestamps")
    since = float(request.query("since") or 0)
    until = float(request.query("until") or 0)
    from sampan.engine.container_views import epoch

    def keep(entry: tuple[str, str, bytes]) -> bool:
        if entry[0] not in want:
            return False
        if since or until:
            at = epoch(entry[1])
            return at >= since and (not until or at <= until)
        return True

    from sampan.engine.logfile import LogReader

    reader = LogReader(service.log_path(c))
    try:
        out = request.stream(200, "application/vnd.docker.raw-stream")

        def emit(entries: list[tuple[str, str, bytes]]) -> None:
            for stream, at, data in entries:
                if keep((stream, at, data)):
                    out.write(frame(stream, (f"{at} ".encode() if stamps else b"") + data))

        first = [e for e in reader.entries() if keep(e)]
        emit(first[-tail:] if tail > 0 else [] if tail == 0 else first)
        if request.flag("follow"):
            _follow(request, c, reader, emit, lambda: c.removed or not (c.running or c.starting))
        out.close()
    finally:
        reader.close()
