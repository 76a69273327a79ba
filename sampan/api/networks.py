"""/networks/...: the network endpoints of the Engine API (moby's api/docs/v1.41.yaml).

    GET    /networks                 [network, ...]   filters: dangling, driver, id, label,
                                     name, scope, type
    GET    /networks/{id}            the network   verbose, scope (not local: 404)
    POST   /networks/create          201 {"Id", "Warning"}
    DELETE /networks/{id}            204
    POST   /networks/{id}/connect    200   {"Container", "EndpointConfig"}
    POST   /networks/{id}/disconnect 200   {"Container", "Force"}
    POST   /networks/prune           {"NetworksDeleted": [names]}   filters: until, label

HTTP only: the JSON bodies' shapes are checked here (a 400 naming the field),
what the values mean is the engine's (engine/networks.py).  A field this API
does not know is refused rather than ignored.  As dockerd, the list leaves
out each network's containers for API 1.28 and later (only inspect has them).
"""

from __future__ import annotations

from sampan.api.errors import BadRequest
from sampan.errors import NotFound, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.api.router import Router
    from sampan.api.server import Request

__all__ = ["add_routes", "check_create"]

# docker's CreateRequest (types/network), field -> the JSON type it must have; "?" allows
# null.  EnableIPv4 comes from clients of API 1.47 and later.
_CREATE: dict[str, str] = {
    "Name": "str", "CheckDuplicate": "bool?", "Driver": "str?", "Scope": "str?",
    "EnableIPv4": "bool?", "EnableIPv6": "bool?", "IPAM": "object?", "Internal": "bool?",
    "Attachable": "bool?", "Ingress": "bool?", "ConfigOnly": "bool?", "ConfigFrom": "object?",
    "Options": "strings?", "Labels": "strings?",
}  # fmt: skip
_IPAM = {"Driver": "str?", "Config": "list?", "Options": "strings?"}
_IPAM_CONFIG = {"Subnet": "str?", "IPRange": "str?", "Gateway": "str?",
                "AuxiliaryAddresses": "strings?"}  # fmt: skip
_CONFIG_FROM = {"Network": "str?"}
_KINDS: dict[str, tuple[tuple[type, ...], str]] = {
    "str": ((str,), "a string"), "bool": ((bool,), "a boolean"), "object": ((dict,), "an object"),
    "list": ((list,), "a list"), "strings": ((dict,), "an object of strings"),
}  # fmt: skip
_CONNECT = {"Container": "str", "EndpointConfig": "object?"}
_DISCONNECT = {"Container": "str", "Force": "bool?"}


def add_routes(router: Router) -> None:
    router.add("GET", "/networks", list_networks)
    router.add("POST", "/networks/create", create)
    router.add("POST", "/networks/prune", prune)
    router.add("GET", "/networks/{id}", inspect)
    router.add("DELETE", "/networks/{id}", remove)
    router.add("POST", "/networks/{id}/connect", connect)
    router.add("POST", "/networks/{id}/disconnect", disconnect)


def _check(doc: object, fields: dict[str, str], where: str) -> dict[str, Any]:
    """DOC as an object whose fields have the JSON types FIELDS gives; a required field
    (no "?") must be there and not null.  Errors name the field (WHERE.field)."""
    if not isinstance(doc, dict):
        raise BadRequest(f"{where or 'request body'}: expected a JSON object")
    prefix = f"{where}." if where else ""
    for key, value in doc.items():
        kind = fields.get(key)
        if kind is None:
            raise BadRequest(f"{prefix}{key}: unknown field")
        if value is None:
            if not kind.endswith("?"):
                raise BadRequest(f"{prefix}{key}: must not be null")
            continue
        types, what = _KINDS[kind.rstrip("?")]
        if not isinstance(value, types) or (
            isinstance(value, dict)
            and what.endswith("strings")
            and not all(isinstance(v, str) for v in value.values())
        ):
            raise BadRequest(f"{prefix}{key}: expected {what}")
    for key, kind in fields.items():
        if not kind.endswith("?") and doc.get(key) is None:
            raise BadRequest(f"{prefix}{key}: required")
    return doc


def check_create(doc: object) -> dict[str, Any]:
    """The shape of a POST /networks/create body (types only; the engine checks values)."""
    body = _check(doc, _CREATE, "")
    ipam = body.get("IPAM")
    if ipam is not None:
        _check(ipam, _IPAM, "IPAM")
        for i, config in enumerate(ipam.get("Config") or []):
            _check(config, _IPAM_CONFIG, f"IPAM.Config[{i}]")
    if body.get("ConfigFrom") is not None:
        _check(body["ConfigFrom"], _CONFIG_FROM, "ConfigFrom")
    if body.get("EnableIPv4") is False:
        raise Unsupported("EnableIPv4: networks without IPv4 are not supported by sampan")
    return body


def list_networks(request: Request) -> None:
    found = request.engine.networks.listing(request.filters())
    major, _, minor = request.version.partition(".")
    if (int(major), int(minor or 0)) >= (1, 28):
        found = [{**n, "Containers": {}} for n in found]
    request.send_json(200, found)


def create(request: Request) -> None:
    body = check_create(request.json_body())
    request.send_json(201, request.engine.networks.create(body))


def inspect(request: Request) -> None:
    name = request.vars["id"]
    if request.query("scope") not in ("", "local"):
        raise NotFound(f"network {name} not found")
    request.send_json(200, request.engine.networks.inspect(name, request.flag("verbose")))


def remove(request: Request) -> None:
    request.engine.networks.remove(request.vars["id"])
    request.send(204)


def connect(request: Request) -> None:
    body = _check(request.json_body(), _CONNECT, "")
    config = body.get("EndpointConfig")
    request.engine.networks.connect(request.vars["id"], body["Container"], config)
    request.send(200)


def disconnect(request: Request) -> None:
    body = _check(request.json_body(), _DISCONNECT, "")
    force = bool(body.get("Force"))
    request.engine.networks.disconnect(request.vars["id"], body["Container"], force)
    request.send(200)


def prune(request: Request) -> None:
    deleted = request.engine.networks.prune(request.filters())
    request.send_json(200, {"NetworksDeleted": deleted})
