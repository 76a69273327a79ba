"""Exec: POST /containers/{id}/exec, POST /exec/{id}/start, GET /exec/{id}/json,
POST /exec/{id}/resize (moby's api/docs/v1.41.yaml).

``start`` takes over the connection like attach (sampan/api/attach.py) and
pumps the exec's stdio; ``Detach`` answers 200 at once and the process runs
on.  A process that cannot be started (a command not found) is reported on
the stream, as dockerd does -- "OCI runtime exec failed: ..." on stdout --
and its exec's ExitCode is 126 or 127, which the docker CLI then reads.
"""

from __future__ import annotations

from sampan.api.attach import hijack, pump, size_params
from sampan.api.containers import frame
from sampan.api.detachkeys import parse
from sampan.api.errors import BadRequest
from sampan.errors import SampanError, describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sampan.api.router import Router
    from sampan.api.server import Request

__all__ = ["add_routes"]


def add_routes(router: Router) -> None:
    router.add("POST", "/containers/{id}/exec", create)
    router.add("POST", "/exec/{id}/start", start)
    router.add("GET", "/exec/{id}/json", inspect)
    router.add("POST", "/exec/{id}/resize", resize)


def create(request: Request) -> None:
    body = request.json_body()
    if isinstance(body, dict) and isinstance(body.get("DetachKeys"), str):
        parse(body["DetachKeys"])  # an invalid sequence is refused now, not at start
    eid = request.engine.execs.create(request.vars["id"], body)
    request.send_json(201, {"Id": eid})


def inspect(request: Request) -> None:
    request.send_json(200, request.engine.execs.inspect(request.vars["id"]))


def resize(request: Request) -> None:
    height, width = size_params(request)
    request.engine.execs.resize(request.vars["id"], height, width)
    request.send(200)


def start(request: Request) -> None:
    body = request.json_body(required=False) or {}
    if not isinstance(body, dict):
        raise BadRequest("request body: expected a JSON object")
    execs = request.engine.execs
    e = execs.get(request.vars["id"])
    if body.get("ConsoleSize") is not None:
        size = body["ConsoleSize"]
        if not isinstance(size, list) or len(size) != 2:
            raise BadRequest("ConsoleSize: expected [height, width]")
        e.config["ConsoleSize"] = size
    if body.get("Detach"):
        execs.start(e.id, detach=True)
        request.send(200)
        return
    keys = parse(e.config["DetachKeys"])
    sock = hijack(request)
    try:
        try:
            stream = execs.start(e.id)
        except SampanError as exc:
            message = (describe(exc) + "\r\n").encode()
            sock.sendall(message if e.tty else frame("stdout", message))
            sock.shutdown(1)
            return
        assert stream is not None
        want = {n for n, key in ((1, "AttachStdout"), (2, "AttachStderr")) if e.config[key]}
        pump(request, sock, stream, stdin=e.config["AttachStdin"], want=want, keys=keys)
    except OSError:
        pass  # the client went away
