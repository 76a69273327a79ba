"""/volumes/...: the volume endpoints of the Engine API (moby's api/docs/v1.41.yaml).

    GET    /volumes             {"Volumes": [...], "Warnings": []}   filters: dangling,
                                name, label, driver
    POST   /volumes/create      201, the volume (an existing name: returned as it is)
    GET    /volumes/{name}      the volume
    DELETE /volumes/{name}      204; 409 while a container uses it; force: a missing
                                volume is no error
    POST   /volumes/prune       {"VolumesDeleted": [...], "SpaceReclaimed": N}

Prune follows docker 23+: unused anonymous volumes, every unused one with the
filter all=true -- except that a request that does not say ``all`` under API
1.41 or older prunes every unused volume, as dockerd does for those clients
(the docker CLI warns so when it talks 1.41, which is this daemon's version).
"""

from __future__ import annotations

from sampan.api.errors import BadRequest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sampan.api.router import Router
    from sampan.api.server import Request

__all__ = ["add_routes"]

_CREATE_KEYS = ("Name", "Driver", "DriverOpts", "Labels", "ClusterVolumeSpec")


def add_routes(router: Router) -> None:
    router.add("GET", "/volumes", list_volumes)
    router.add("POST", "/volumes/create", create)
    router.add("POST", "/volumes/prune", prune)
    router.add("GET", "/volumes/{name}", inspect)
    router.add("DELETE", "/volumes/{name}", remove)


def list_volumes(request: Request) -> None:
    found = request.engine.volumes.select(request.filters())
    request.send_json(200, {"Volumes": found, "Warnings": []})


def _strings(doc: dict[str, object], key: str) -> dict[str, str] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadRequest(f"{key}: expected an object of strings")
    return value


def create(request: Request) -> None:
    doc = request.json_body(required=False) or {}
    if not isinstance(doc, dict):
        raise BadRequest("request body: expected a JSON object")
    for key in doc:
        if key not in _CREATE_KEYS:
            raise BadRequest(f"request body: unknown field {key!r}")
    if doc.get("ClusterVolumeSpec"):
        from sampan.errors import Unsupported

        raise Unsupported("cluster volumes are not supported")
    name, driver = doc.get("Name") or "", doc.get("Driver") or ""
    if not isinstance(name, str) or not isinstance(driver, str):
        raise BadRequest("Name and Driver: expected strings")
    volume = request.engine.volumes.create(
        name, driver, _strings(doc, "Labels"), _strings(doc, "DriverOpts")
    )
    request.send_json(201, volume)


def inspect(request: Request) -> None:
    request.send_json(200, request.engine.volumes.inspect(request.vars["name"]))


def remove(request: Request) -> None:
    request.engine.volumes.remove(request.vars["name"], force=request.flag("force"))
    request.send(204)


def prune(request: Request) -> None:
    major, _, minor = request.version.partition(".")
    old_api = (int(major), int(minor or 0)) < (1, 42)
    result = request.engine.volumes.prune(request.filters(), all_default=old_api)
    request.send_json(200, result)
