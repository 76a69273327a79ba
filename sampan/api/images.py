"""/images/...: the image endpoints of the Engine API (moby's api/docs/v1.41.yaml).

Each handler parses the query and body, calls the engine's ImageService,
and encodes the answer; nothing else.  Pull, push and import answer with
docker's JSON progress stream; save answers with the tarball, streamed.
"""

from __future__ import annotations

from sampan.api.errors import BadRequest
from sampan.api.progress import JSONProgress, json_line
from sampan.errors import Unsupported, describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from sampan.api.router import Router
    from sampan.api.server import Request
    from sampan.image.registry.auth import Credentials

__all__ = ["add_routes", "registry_auth"]

SAVE_BUFFER = 256 << 10


def add_routes(router: Router) -> None:
    router.add("GET", "/images/json", list_images)
    router.add("POST", "/images/create", create)
    router.add("POST", "/images/load", load)
    router.add("POST", "/images/prune", prune)
    router.add("GET", "/images/get", save_many)
    router.add("GET", "/images/search", search)
    router.add("GET", "/images/{name*}/json", inspect)
    router.add("GET", "/images/{name*}/history", history)
    router.add("GET", "/images/{name*}/get", save_one)
    router.add("POST", "/images/{name*}/tag", tag)
    router.add("POST", "/images/{name*}/push", push)
    router.add("DELETE", "/images/{name*}", remove)


# -- helpers -------------------------------------------------------------------------


def registry_auth(request: Request) -> Credentials | None:
    """X-Registry-Auth: base64url of {"username", "password", "identitytoken", ...}."""
    header = request.headers.get("X-Registry-Auth", "").strip()
    if not header:
        return None
    import binascii

    from sampan.api.server import parse_json
    from sampan.image.registry.auth import Credentials

    text = header.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        raw = binascii.a2b_base64(text)
    except (ValueError, binascii.Error):
        raise BadRequest("X-Registry-Auth: not base64url-encoded") from None
    doc = parse_json(raw, "X-Registry-Auth")
    if not isinstance(doc, dict):
        raise BadRequest("X-Registry-Auth: expected a JSON object")
    username = str(doc.get("username") or "")
    password = str(doc.get("password") or "")
    token = str(doc.get("identitytoken") or "")
    if not (username or token):
        return None
    return Credentials(username, password, token)


def _progress(request: Request) -> tuple[JSONProgress, list[Any]]:
    """A JSONProgress whose stream starts on first output (the stream kept in HOLDER)."""
    holder: list[Any] = []

    def start() -> Any:
        holder.append(request.stream(200, "application/json"))
        return holder[0].write

    return JSONProgress(start), holder


def _run_streamed(request: Request, work: Any) -> None:
    """WORK(progress): HTTP errors until the stream starts, an error line after."""
    progress, holder = _progress(request)
    try:
        work(progress)
    except (BrokenPipeError, ConnectionResetError):
        raise
    except Exception as exc:
        if not progress.started:
            raise
        progress.error(describe(exc))
    else:
        progress.finish()
    if holder:
        holder[0].close()


class _Buffered:
    """Writes gathered into chunks of SAVE_BUFFER bytes (tarfile writes 10 KiB records)."""

    def __init__(self, out: Any) -> None:
        self._out = out
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._size += len(data)
        if self._size >= SAVE_BUFFER:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._parts:
            self._out.write(b"".join(self._parts))
            self._parts, self._size = [], 0


# -- reading -------------------------------------------------------------------------


def list_images(request: Request) -> None:
    filters = request.filters()
    legacy = request.query("filter")  # API < 1.41's reference filter
    if legacy:
        filters.setdefault("reference", []).append(legacy)
    # digests=1 changes nothing: RepoDigests are always filled in.
    all_ = request.flag("all")
    request.send_json(200, request.engine.images.list_images(filters=filters, all_=all_))


def inspect(request: Request) -> None:
    request.send_json(200, request.engine.images.inspect(request.vars["name"]))


def history(request: Request) -> None:
    request.send_json(200, request.engine.images.history(request.vars["name"]))


def search(request: Request) -> None:
    raise Unsupported(
        "image search is not supported: sampan reaches only the registries it pulls from"
    )


# -- names ---------------------------------------------------------------------------


def tag(request: Request) -> None:
    repo = request.query("repo")
    if not repo:
        raise BadRequest("repo: a repository name is required")
    request.engine.images.tag(request.vars["name"], repo, request.query("tag"))
    request.send(201)


def remove(request: Request) -> None:
    items = request.engine.images.remove(request.vars["name"], force=request.flag("force"))
    request.send_json(200, items)


def prune(request: Request) -> None:
    request.send_json(200, request.engine.images.prune(request.filters()))


# -- registries ----------------------------------------------------------------------


def create(request: Request) -> None:
    """POST /images/create: pull (fromImage) or import (fromSrc)."""
    source = request.query("fromSrc")
    if source:
        _import(request, source)
        return
    image = request.query("fromImage")
    if not image:
        raise BadRequest("fromImage: required (or fromSrc to import)")
    auth = registry_auth(request)
    service = request.engine.images

    def work(progress: JSONProgress) -> None:
        service.pull(
            image,
            request.query("tag"),
            platform=request.query("platform"),
            auth=auth,
            progress=progress,
        )

    _run_streamed(request, work)


def _import(request: Request, source: str) -> None:
    if source != "-":
        raise Unsupported(f"fromSrc={source}: only '-' (the request body) is supported")
    service = request.engine.images
    image_id = service.import_(
        request.body,
        repo=request.query("repo"),
        tag=request.query("tag"),
        changes=request.query_all("changes"),
        message=request.query("message"),
        platform=request.query("platform"),
    )
    stream = request.stream(200, "application/json")
    stream.write(json_line({"status": image_id}))
    stream.close()


def push(request: Request) -> None:
    name = request.vars["name"]
    auth = registry_auth(request)
    service = request.engine.images

    def work(progress: JSONProgress) -> None:
        service.push(name, request.query("tag"), auth=auth, progress=progress)

    _run_streamed(request, work)


# -- archives ------------------------------------------------------------------------


def _save(request: Request, names: list[str]) -> None:
    service = request.engine.images
    service.check_save(names)
    stream = request.stream(200, "application/x-tar")
    out = _Buffered(stream)
    service.save(names, out)  # type: ignore[arg-type]  # a writable file is all tarfile needs
    out.flush()
    stream.close()


def save_many(request: Request) -> None:
    _save(request, request.query_all("names"))


def save_one(request: Request) -> None:
    _save(request, [request.vars["name"]])


def load(request: Request) -> None:
    body: BinaryIO = request.body
    lines = request.engine.images.load(body, platform=request.query("platform"))
    stream = request.stream(200, "application/json")
    stream.write(b"".join(json_line({"stream": line + "\n"}) for line in lines))
    stream.close()
