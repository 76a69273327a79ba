"""/containers/{id}/rename, /containers/{id}/restart, /containers/prune (Engine API 1.41).

Handlers parse the query, call sampan.engine.lifecycle, and encode:
rename and restart answer 204, prune docker's report
``{"ContainersDeleted": [...], "SpaceReclaimed": N}``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sampan.api.router import Router
    from sampan.api.server import Request

__all__ = ["add_routes"]


def add_routes(router: Router) -> None:
    router.add("POST", "/containers/prune", prune)
    router.add("POST", "/containers/{id}/rename", rename)
    router.add("POST", "/containers/{id}/restart", restart)


def rename(request: Request) -> None:
    from sampan.engine import lifecycle

    lifecycle.rename(request.engine.containers, request.vars["id"], request.query("name"))
    request.send(204)


def restart(request: Request) -> None:
    from sampan.engine import lifecycle

    timeout = request.query_int("t") if request.query("t") else None
    lifecycle.restart(request.engine.containers, request.vars["id"], timeout,
                      request.query("signal"))  # fmt: skip
    request.send(204)


def prune(request: Request) -> None:
    from sampan.engine import lifecycle

    request.send_json(200, lifecycle.prune(request.engine.containers, request.filters()))
