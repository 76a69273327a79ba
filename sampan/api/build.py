"""POST /build and POST /build/prune: docker's classic builder over the API.

The body is the context as a tar (plain or compressed); it is extracted
into a fresh directory under ROOT/tmp, removed after the build whatever
happens (a client that hangs up included).  The query's parameters are
checked here, each bad one a 400 naming it; what this builder cannot do
(a remote context, BuildKit's version 2, squash, outputs, resource limits
for the build's containers) is refused the same way, never ignored.  The
answer is docker's JSON stream of the build's messages, ending with an
``error``/``errorDetail`` object on failure (``code``: a failed RUN's exit
status, which the docker CLI exits with).
"""

from __future__ import annotations

import os
import shutil
import tempfile

from sampan import _json
from sampan.api.errors import BadRequest
from sampan.api.progress import json_line
from sampan.errors import SampanError, describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.api.router import Router
    from sampan.api.server import Request
    from sampan.build.builder import BuildOptions

__all__ = ["add_routes", "options_of"]

_UNSUPPORTED_INTS = ("memory", "memswap", "cpushares", "cpuperiod", "cpuquota", "shmsize")
_NETWORKS = ("", "default", "bridge", "none", "host")


def add_routes(router: Router) -> None:
    router.add("POST", "/build", build)
    router.add("POST", "/build/prune", prune)


def _json_param(request: Request, name: str, kind: type) -> Any:
    text = request.query(name)
    if not text:
        return kind()
    try:
        value = _json.loads(text)
    except ValueError:
        raise BadRequest(f"{name}: invalid JSON") from None
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise BadRequest(f"{name}: expected a JSON {'object' if kind is dict else 'array'}")
    return value


def options_of(request: Request) -> BuildOptions:
    """The build's options from the query (see the module doc)."""
    from sampan.build.builder import BuildOptions
    from sampan.oci.reference import parse_reference

    if request.query("remote"):
        raise BadRequest("remote: remote build contexts are not supported; send the context")
    if request.query("version") == "2":
        raise BadRequest("version: BuildKit is not supported by this daemon; set DOCKER_BUILDKIT=0")
    if request.flag("squash"):
        raise BadRequest("squash: squashing a build's layers is not supported")
    if request.query("outputs"):
        raise BadRequest("outputs: BuildKit's outputs are not supported (sampan build --output)")
    for name in _UNSUPPORTED_INTS:
        if request.query_int(name):
            raise BadRequest(f"{name}: resource limits for a build's containers are not supported")
    if request.query("cpusetcpus") or request.query("cpusetmems"):
        raise BadRequest("cpusetcpus: resource limits for a build's containers are not supported")
    if _json_param(request, "ulimits", list):
        raise BadRequest("ulimits: not supported for builds")
    if request.query("extrahosts"):
        raise BadRequest("extrahosts: not supported for builds")
    tags = []
    for tag in request.query_all("t"):
        try:
            ref = parse_reference(tag)
        except SampanError as exc:
            raise BadRequest(f"t: invalid tag {tag!r}: {exc}") from None
        if ref.digest is not None:
            raise BadRequest(f"t: refusing to create a tag with a digest reference: {tag}")
        tags.append(tag)
    build_args = _json_param(request, "buildargs", dict)
    for key, value in build_args.items():
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"buildargs: {key}: expected a string or null")
    labels = _json_param(request, "labels", dict)
    if not all(isinstance(v, str) for v in labels.values()):
        raise BadRequest("labels: expected an object of strings")
    cache_from = _json_param(request, "cachefrom", list)
    if not all(isinstance(v, str) for v in cache_from):
        raise BadRequest("cachefrom: expected an array of strings")
    network = request.query("networkmode")
    if network not in _NETWORKS:
        raise BadRequest(f"networkmode: {network!r}: a build runs on default, none or host")
    return BuildOptions(
        dockerfile=request.query("dockerfile") or "Dockerfile",
        tags=tags,
        build_args=build_args,
        labels=labels,
        target=request.query("target"),
        no_cache=request.flag("nocache"),
        pull=request.flag("pull"),
        cache_from=cache_from,
        network=network or "default",
        quiet=request.flag("q"),
        platform=request.query("platform"),
        rm=request.flag("rm") if request.query("rm") else True,
        force_rm=request.flag("forcerm"),
    )


def build(request: Request) -> None:
    from sampan.build import builder
    from sampan.build.context import extract_context

    options = options_of(request)
    engine = request.engine
    tmp = os.path.join(engine.root, "tmp")
    os.makedirs(tmp, mode=0o700, exist_ok=True)
    ctx = tempfile.mkdtemp(prefix="build-", dir=tmp)
    try:
        try:
            extract_context(request.body, ctx)
        except SampanError as exc:
            raise BadRequest(f"build context: {describe(exc)}") from None
        stream = request.stream(200, "application/json")
        quiet = options.quiet

        def emit(doc: dict[str, Any]) -> None:
            if quiet and "stream" in doc:
                return
            stream.write(json_line(doc))

        try:
            image_id = builder.build(engine, ctx, options, emit)
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception as exc:  # the stream has started: the error goes down it
            message = describe(exc)
            detail: dict[str, Any] = {"message": message}
            code = getattr(exc, "code", None)
            if isinstance(code, int):
                detail["code"] = code
            stream.write(json_line({"errorDetail": detail, "error": message}))
        else:
            if quiet:
                stream.write(json_line({"stream": image_id + "\n"}))
        stream.close()
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def prune(request: Request) -> None:
    from sampan.build import builder

    filters = request.filters()
    result = builder.prune(request.engine, all=request.flag("all"), filters=filters)
    request.send_json(200, result)
