"""A container's files over the Engine API: archive (cp), changes (diff), commit, export.

    HEAD /containers/{id}/archive?path=P    X-Docker-Container-Path-Stat: base64(JSON)
    GET  /containers/{id}/archive?path=P    the same header, a tar of P (application/x-tar)
    PUT  /containers/{id}/archive?path=D&noOverwriteDirNonDir=&copyUIDGID=   body: a tar
    GET  /containers/{id}/changes           [{"Path", "Kind"}] (null when none, as docker)
    POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=   body: a config
    GET  /containers/{id}/export            a tar of the root filesystem

The engine side is sampan/engine/container_fs.py, container_changes.py and
container_commit.py; this module parses and encodes.  Archives are
streamed: the tar is written to the response as it is made.
"""

from __future__ import annotations

import base64

from sampan import _json
from sampan.api.errors import BadRequest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sampan.api.router import Router
    from sampan.api.server import Request

__all__ = ["STAT_HEADER", "add_routes"]

STAT_HEADER = "X-Docker-Container-Path-Stat"


def add_routes(router: Router) -> None:
    router.add("HEAD", "/containers/{id}/archive", archive_head)
    router.add("GET", "/containers/{id}/archive", archive_get)
    router.add("PUT", "/containers/{id}/archive", archive_put)
    router.add("GET", "/containers/{id}/changes", changes)
    router.add("GET", "/containers/{id}/export", export)
    router.add("POST", "/commit", commit)


def _path(request: Request) -> str:
    path = request.query("path")
    if not path:
        raise BadRequest("bad parameter: 'path' cannot be empty")
    return path


def _stat_header(doc: dict[str, object]) -> dict[str, str]:
    return {STAT_HEADER: base64.b64encode(_json.dumps(doc).encode()).decode()}


def archive_head(request: Request) -> None:
    from sampan.engine.container_fs import archive_stat

    doc = archive_stat(request.engine.containers, request.vars["id"], _path(request))
    request.send(200, b"", headers=_stat_header(doc))


def archive_get(request: Request) -> None:
    from sampan.engine.container_fs import open_archive

    with open_archive(request.engine.containers, request.vars["id"], _path(request)) as found:
        out = request.stream(200, "application/x-tar", _stat_header(found.stat))
        found.write(out)  # type: ignore[arg-type]
        out.close()


def archive_put(request: Request) -> None:
    from sampan.engine.container_fs import extract

    extract(
        request.engine.containers, request.vars["id"], _path(request), request.body,
        no_overwrite_dir_non_dir=request.flag("noOverwriteDirNonDir"),
        copy_uid_gid=request.flag("copyUIDGID"),
    )  # fmt: skip
    request.send(200)


def changes(request: Request) -> None:
    from sampan.engine.container_changes import changes as container_changes

    found = container_changes(request.engine.containers, request.vars["id"])
    request.send_json(200, found or None)


def export(request: Request) -> None:
    from sampan.engine.container_fs import export as export_container

    service = request.engine.containers
    service.get(request.vars["id"])  # a 404 before the stream starts
    out = request.stream(200, "application/x-tar")
    export_container(service, request.vars["id"], out)  # type: ignore[arg-type]
    out.close()


def commit(request: Request) -> None:
    from sampan.engine.container_commit import commit as commit_container

    ref = request.query("container")
    if not ref:
        raise BadRequest("bad parameter: 'container' cannot be empty")
    body = request.json_body(required=False)
    if body is not None and not isinstance(body, dict):
        raise BadRequest("request body: expected a JSON object")
    pause = request.query("pause")
    image_id = commit_container(
        request.engine.containers, ref,
        repo=request.query("repo"), tag=request.query("tag"),
        comment=request.query("comment"), author=request.query("author"),
        pause=request.flag("pause") if pause else True,
        changes=request.query_all("changes"), config=body,
    )  # fmt: skip
    request.send_json(201, {"Id": image_id})
