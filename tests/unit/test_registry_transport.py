"""The registry transport and client helpers without a real registry.

Host rules (which registries are plain HTTP), error bodies, Content-Range,
mirrors, and a small loopback server for redirects, keep-alive and
truncated bodies.
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from sampan.errors import InvalidArgument
from sampan.image.registry import client as client_mod
from sampan.image.registry.client import Endpoint, RegistryClient, registry_host
from sampan.image.registry.errors import RegistryError, parse_error_body
from sampan.image.registry.transport import (
    Transport,
    add_query,
    is_insecure,
    is_loopback,
    join_url,
)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1", True),
        ("127.3.2.1:80", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("registry.localhost", True),
        ("128.0.0.1", False),
        ("127.example.com", False),
        ("docker.io", False),
        ("10.0.0.1:5000", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_insecure_registries() -> None:
    assert is_insecure("127.0.0.1:5000")
    assert not is_insecure("reg.example:5000")
    assert is_insecure("reg.example:5000", ["reg.example:5000"])
    assert is_insecure("reg.example:5000", ["reg.example"])
    assert is_insecure("reg.example", ["http://reg.example/"])
    assert not is_insecure("reg.example:5000", ["reg.example:6000"])
    assert is_insecure("10.1.2.3:5000", ["10.0.0.0/8"])
    assert not is_insecure("11.1.2.3:5000", ["10.0.0.0/8"])
    assert not is_insecure("reg.example", ["10.0.0.0/8"])


def test_registry_host_and_mirrors() -> None:
    assert registry_host("docker.io") == "registry-1.docker.io"
    assert registry_host("index.docker.io") == "registry-1.docker.io"
    assert registry_host("quay.io") == "quay.io"
    with Transport() as t:
        m = Endpoint.parse_mirror("http://127.0.0.1:5000/", t)
        assert (m.host, m.base, m.mirror) == ("127.0.0.1:5000", "http://127.0.0.1:5000", True)
        assert Endpoint.parse_mirror("mirror.example", t).base == "https://mirror.example"
        for bad in ("ftp://x", "http://x/path", "a/b", ""):
            with pytest.raises(InvalidArgument, match="registry mirror"):
                Endpoint.parse_mirror(bad, t)
    c = RegistryClient("docker.io", mirrors=["http://127.0.0.1:5000"])
    assert [e.base for e in c.mirrors] == ["http://127.0.0.1:5000"]
    assert c.origin.host == "registry-1.docker.io" and c.origin.base.startswith("https://")
    assert RegistryClient("quay.io", mirrors=["http://127.0.0.1:5000"]).mirrors == []


def test_error_body() -> None:
    errors = [
        {"code": "MANIFEST_UNKNOWN", "message": "manifest unknown", "detail": {}},
        {"code": "NAME_UNKNOWN", "message": "second"},
    ]
    body = json.dumps({"errors": errors}).encode()
    assert parse_error_body(body) == (("MANIFEST_UNKNOWN", "NAME_UNKNOWN"), "manifest unknown")
    assert parse_error_body(b"<html>502</html>") == ((), "")
    assert parse_error_body(b'{"errors": "x"}') == ((), "")
    assert parse_error_body(b'{"errors": [{"message": "a\\nb"}]}') == ((), "a")


def test_url_helpers() -> None:
    base = "http://127.0.0.1:5000/v2/a/blobs/uploads/"
    assert join_url(base, "/v2/a/blobs/uploads/u1?_state=x") == (
        "http://127.0.0.1:5000/v2/a/blobs/uploads/u1?_state=x"
    )
    assert join_url(base, "https://s3.example/b") == "https://s3.example/b"
    assert add_query("/u?_state=x", digest="sha256:ab") == "/u?_state=x&digest=sha256%3Aab"
    assert add_query("/u", mount="d", **{"from": "x/y"}) == "/u?mount=d&from=x%2Fy"
    assert client_mod._content_range("bytes 10-99/100") == (10, 100)
    assert client_mod._content_range("bytes 10-99/*") == (10, None)


class _Server:
    """A loopback HTTP/1.1 server with canned answers per path."""

    def __init__(self) -> None:
        self.connections = 0
        self.routes: dict[str, tuple[int, dict[str, str], bytes, int | None]] = {}
        self.seen_auth: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                server.connections += 1
                super().setup()

            def do_GET(self) -> None:
                server.seen_auth.append(self.headers.get("Authorization"))
                missing = b'{"errors":[{"code":"NOT_FOUND","message":"nope"}]}'
                status, headers, body, cut = server.routes.get(self.path, (404, {}, missing, None))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v.replace("PORT", str(server.port)))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if cut is None:
                    self.wfile.write(body)
                else:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def test_keep_alive_and_redirects(server: _Server) -> None:
    server.routes["/a"] = (200, {}, b"hello", None)
    server.routes["/r"] = (307, {"Location": "http://localhost:PORT/a"}, b"", None)
    with Transport() as t:
        for _ in range(3):
            with t.request("GET", f"{server.url}/a") as r:
                assert (r.status, r.read()) == (200, b"hello")
        assert server.connections == 1
        with t.request("GET", f"{server.url}/r") as r:
            assert r.status == 307  # not followed unless asked
            r.read()
        token = {"Authorization": "Bearer secret"}
        r = t.request("GET", f"{server.url}/r", follow_redirects=True, headers=token)
        with r:
            assert (r.status, r.read()) == (200, b"hello")
            assert r.url == f"http://localhost:{server.port}/a"
        # the token went to the registry, not to the redirect's other host
        assert server.seen_auth[-2:] == ["Bearer secret", None]


def test_truncated_body_is_an_error(server: _Server) -> None:
    server.routes["/cut"] = (200, {}, b"x" * 10_000, 4_000)
    with Transport() as t:
        r = t.request("GET", f"{server.url}/cut")
        got = b""
        with pytest.raises(http.client.IncompleteRead):
            while chunk := r.read_chunk(1000):
                got += chunk
        assert len(got) == 4_000
        r2 = t.request("GET", f"{server.url}/cut")
        with pytest.raises(http.client.IncompleteRead):
            r2.read()


def test_plain_http_fallback_for_loopback(server: _Server) -> None:
    server.routes["/v2/"] = (200, {}, b"{}", None)
    host = f"127.0.0.1:{server.port}"
    with Transport() as t:
        assert t.base_url(host) == f"https://{host}"
        with t.request("GET", f"{t.base_url(host)}/v2/") as r:
            assert r.status == 200 and r.url.startswith("http://")
        assert t.base_url(host) == f"http://{host}"


def test_secure_host_never_falls_back(server: _Server) -> None:
    # "localtest" is not loopback by name: only verified HTTPS is tried
    with Transport() as t:
        t._insecure = lambda host: False  # type: ignore[method-assign]
        with pytest.raises(RegistryError, match="TLS"):
            t.request("GET", f"https://127.0.0.1:{server.port}/v2/")


def test_connect_timeout_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that drops the SYN fails after CONNECT_TIMEOUT, not the read timeout."""
    import socket
    import time

    from sampan.image.registry import transport as transport_mod

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # never accepted: once the backlog is full, SYNs are dropped
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        time.sleep(0.1)
        monkeypatch.setattr(transport_mod, "CONNECT_TIMEOUT", 0.5)
        with Transport(timeout=60) as t:
            start = time.monotonic()
            with pytest.raises(RegistryError, match=f"cannot reach registry 127.0.0.1:{port}"):
                t.request("GET", f"http://127.0.0.1:{port}/v2/")
            assert time.monotonic() - start < 5
    finally:
        for s in fillers:
            s.close()
        listener.close()
