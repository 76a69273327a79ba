"""Routes: an HTTP method and a path pattern to a handler.

Patterns are slash-separated; ``{name}`` matches one segment and ``{name*}``
one or more (image names hold slashes and colons:
``/images/127.0.0.1:5000/team/app:1/json``).  At most one ``*`` variable per
pattern; the segments after it are matched from the end.  Routes are tried
in the order added, so fixed paths (``/images/json``) go before patterns
that would also match them.

Paths may carry docker's version prefix ``/vX.Y``; ``split_version`` strips it.
"""

from __future__ import annotations

from sampan.errors import NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from sampan.api.server import Request

    Handler = Callable[[Request], None]

__all__ = ["API_VERSION", "MIN_API_VERSION", "Router", "make_router", "split_version"]

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"


def split_version(path: str) -> tuple[str | None, str]:
    """("1.41", "/images/json") for "/v1.41/images/json"; (None, path) without a prefix."""
    if path.startswith("/v"):
        head, slash, rest = path[2:].partition("/")
        major, dot, minor = head.partition(".")
        if dot and major.isdigit() and minor.isdigit():
            return head, "/" + rest if slash else "/"
    return None, path


class _Route:
    __slots__ = ("handler", "head", "method", "star", "tail")

    def __init__(self, method: str, pattern: str, handler: Handler) -> None:
        parts = pattern.strip("/").split("/")
        stars = [i for i, p in enumerate(parts) if p.endswith("*}")]
        if len(stars) > 1:
            raise ValueError(f"route {pattern}: more than one {{name*}}")
        self.method = method
        self.handler = handler
        self.star: str | None
        if stars:
            i = stars[0]
            self.head, self.star, self.tail = parts[:i], parts[i][1:-2], parts[i + 1 :]
        else:
            self.head, self.star, self.tail = parts, None, []

    def match(self, segments: list[str]) -> dict[str, str] | None:
        head, tail = self.head, self.tail
        if self.star is None:
            if len(segments) != len(head):
                return None
        elif len(segments) < len(head) + len(tail) + 1:
            return None
        found: dict[str, str] = {}
        pairs = list(zip(head, segments, strict=False))
        if tail:
            pairs += list(zip(tail, segments[len(segments) - len(tail) :], strict=True))
        for pattern, segment in pairs:
            if pattern.startswith("{") and pattern.endswith("}"):
                if not segment:
                    return None
                found[pattern[1:-1]] = segment
            elif pattern != segment:
                return None
        if self.star is not None:
            middle = segments[len(head) : len(segments) - len(tail)]
            if not all(middle):
                return None
            found[self.star] = "/".join(middle)
        return found


class Router:
    """Handlers by method and path; ``match`` or NotFound("page not found")."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        for m in method.split(","):
            self._routes.append(_Route(m.strip().upper(), pattern, handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        segments = path.strip("/").split("/")
        for route in self._routes:
            if route.method != method:
                continue
            found = route.match(segments)
            if found is not None:
                return route.handler, found
        raise NotFound("page not found")


def make_router() -> Router:
    """Every endpoint the daemon serves."""
    from sampan.api import containers, images, system

    router = Router()
    system.add_routes(router)
    images.add_routes(router)
    containers.add_routes(router)
    from sampan.api import attach, exec

    attach.add_routes(router)
    exec.add_routes(router)
    from sampan.api import networks, volumes

    volumes.add_routes(router)
    networks.add_routes(router)
    from sampan.api import container_ops

    container_ops.add_routes(router)
    from sampan.api import container_files

    container_files.add_routes(router)
    from sampan.api import container_lifecycle, events

    container_lifecycle.add_routes(router)
    events.add_routes(router)
    from sampan.api import build

    build.add_routes(router)
    return router
