"""/containers/{id}/pause, unpause, update, stats, top (moby's api/docs/v1.41.yaml).

Handlers parse, call sampan.engine.operations, and encode.  ``stats`` with
``stream`` (the default) writes one JSON document a line, a second apart,
until the client leaves or the container is removed; ``stream=false``
answers one document whose precpu_stats is half a second older (so the CPU
% can be computed), and ``one-shot=true`` with it skips that wait.
"""

from __future__ import annotations

from sampan import _json
from sampan.api.errors import BadRequest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sampan.api.router import Router
    from sampan.api.server import Request

__all__ = ["add_routes"]


def add_routes(router: Router) -> None:
    router.add("POST", "/containers/{id}/pause", pause)
    router.add("POST", "/containers/{id}/unpause", unpause)
    router.add("POST", "/containers/{id}/update", update)
    router.add("GET", "/containers/{id}/stats", stats)
    router.add("GET", "/containers/{id}/top", top)


def pause(request: Request) -> None:
    from sampan.engine import operations

    operations.pause(request.engine.containers, request.vars["id"])
    request.send(204)


def unpause(request: Request) -> None:
    from sampan.engine import operations

    operations.unpause(request.engine.containers, request.vars["id"])
    request.send(204)


def update(request: Request) -> None:
    from sampan.engine import operations

    body = request.json_body()
    if not isinstance(body, dict):
        raise BadRequest("request body: expected a JSON object")
    warnings = operations.update(request.engine.containers, request.vars["id"], body)
    request.send_json(200, {"Warnings": warnings})


def stats(request: Request) -> None:
    from sampan.engine import operations

    stream = request.query("stream", "1").strip().lower() not in ("0", "false", "no", "none")
    one_shot = request.flag("one-shot")
    if one_shot and stream:
        raise BadRequest("cannot have stream=true and one-shot=true")
    service = request.engine.containers
    docs = operations.stats(service, request.vars["id"], stream=stream, one_shot=one_shot,
                            gone=request.client_gone)  # fmt: skip
    first = next(docs)  # a missing container is a 404 before any header is sent
    out = request.stream(200, "application/json")
    try:
        out.write((_json.dumps(first) + "\n").encode())
        out.flush()
        for doc in docs:
            out.write((_json.dumps(doc) + "\n").encode())
            out.flush()
        out.close()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        docs.close()


def top(request: Request) -> None:
    from sampan.engine import operations

    doc = operations.top(request.engine.containers, request.vars["id"], request.query("ps_args"))
    request.send_json(200, doc)
