"""The API router: versions in paths, image names with slashes and colons, 404s."""

from __future__ import annotations

import pytest

from sampan.api.router import Router, make_router, split_version
from sampan.errors import NotFound


def test_split_version() -> None:
    assert split_version("/v1.41/images/json") == ("1.41", "/images/json")
    assert split_version("/v1.24/_ping") == ("1.24", "/_ping")
    assert split_version("/images/json") == (None, "/images/json")
    assert split_version("/version") == (None, "/version")  # "/v" then no digits
    assert split_version("/v1.41") == ("1.41", "/")


def _handler(name: str):  # type: ignore[no-untyped-def]
    def handle(request: object) -> None:
        raise AssertionError(name)

    handle.__name__ = name
    return handle


def test_names_with_slashes_and_colons() -> None:
    router = make_router()
    for path, name in [
        ("/images/busybox/json", "busybox"),
        ("/images/127.0.0.1:5000/a/b:1/json", "127.0.0.1:5000/a/b:1"),
        ("/images/sha256:abcdef/json", "sha256:abcdef"),
        ("/images/x/y@sha256:00/json", "x/y@sha256:00"),
    ]:
        handler, found = router.match("GET", path)
        assert handler.__name__ == "inspect" and found == {"name": name}
    handler, found = router.match("GET", "/images/json")
    assert handler.__name__ == "list_images" and found == {}
    handler, found = router.match("DELETE", "/images/127.0.0.1:5000/a/b:1")
    assert handler.__name__ == "remove" and found == {"name": "127.0.0.1:5000/a/b:1"}
    handler, found = router.match("POST", "/images/reg:5000/team/app/push")
    assert handler.__name__ == "push" and found == {"name": "reg:5000/team/app"}
    handler, found = router.match("GET", "/images/a/b/get")
    assert handler.__name__ == "save_one"
    assert router.match("HEAD", "/_ping")[0].__name__ == "ping"


def test_unknown_paths_and_methods_are_page_not_found() -> None:
    router = make_router()
    for method, path in [
        ("GET", "/nothing"),
        ("PUT", "/images/json"),
        ("GET", "/images//json"),
        ("GET", "/images/json/extra/x"),
    ]:
        with pytest.raises(NotFound, match="page not found"):
            router.match(method, path)


def test_patterns() -> None:
    router = Router()
    router.add("GET", "/a/{id}/b", _handler("one"))
    router.add("GET,POST", "/c/{name*}", _handler("many"))
    assert router.match("GET", "/a/x/b") == (router.match("GET", "/a/x/b")[0], {"id": "x"})
    with pytest.raises(NotFound):
        router.match("GET", "/a/x/y/b")
    assert router.match("POST", "/c/x/y/z")[1] == {"name": "x/y/z"}
    with pytest.raises(ValueError):
        router.add("GET", "/{a*}/{b*}", _handler("bad"))
