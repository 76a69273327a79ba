"""The API's HTTP layer in-process: chunked bodies, streams, keep-alive, hijacking,
and `sampan daemon`'s start-up time (spawn to /_ping answering)."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan.api.router import Router
from sampan.api.server import ApiServer, Request
from sampan.engine.config import DaemonConfig
from sampan.engine.daemon import Engine

REPO = Path(__file__).resolve().parents[2]


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def _count(request: Request) -> None:
    total = 0
    while True:
        data = request.body.read(7)
        if not data:
            break
        total += len(data)
    request.send_json(200, {"bytes": total, "vars": request.vars, "n": request.query_int("n")})


def _stream(request: Request) -> None:
    out = request.stream(200, "application/json")
    for i in range(3):
        out.write(b'{"i": %d}\r\n' % i)
    out.close()


def _hijack(request: Request) -> None:
    sock = request.hijack()
    data = sock.recv(100)
    sock.sendall(b"echo:" + data)


def _json(request: Request) -> None:
    request.send_json(200, {"keys": sorted(request.json_body())})


def _boom(request: Request) -> None:
    raise RuntimeError("handler bug")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    router = Router()
    router.add("POST", "/count/{name*}", _count)
    router.add("GET", "/stream", _stream)
    router.add("POST", "/hijack", _hijack)
    router.add("GET", "/boom", _boom)
    router.add("POST", "/json", _json)
    # No default bridge: a unit test makes nothing in the host's network namespace.
    engine = Engine(str(tmp_path / "root"), str(tmp_path / "exec"), DaemonConfig(bridge="none"))
    path = str(tmp_path / "api.sock")
    srv = ApiServer(engine, path, router)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield path
    srv.shutdown()
    srv.server_close()
    thread.join()
    engine.close()


def test_chunked_body_keep_alive_and_errors(server: str) -> None:
    conn = UnixConnection(server)
    chunks = iter([b"a" * 10, b"b" * 100_000, b"c"])
    conn.request("POST", "/v1.41/count/reg:5000/x/y?n=3", body=chunks, encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 200
    assert response.read() == b'{"bytes":100011,"vars":{"name":"reg:5000/x/y"},"n":3}\n'
    assert response.getheader("Api-Version") == "1.41"
    # the same connection: an unread body is drained, an error is JSON, a bad int names it
    conn.request("POST", "/count/x?n=many", body=b"x" * 1000)
    response = conn.getresponse()
    assert (response.status, response.read()) == (
        400,
        b'{"message":"n: invalid integer \'many\'"}\n',
    )
    conn.request("GET", "/boom")
    response = conn.getresponse()
    assert (response.status, response.read()) == (500, b'{"message":"handler bug"}\n')
    conn.request("GET", "/nowhere")
    response = conn.getresponse()
    assert (response.status, response.read()) == (404, b'{"message":"page not found"}\n')
    conn.close()


def test_json_bodies_are_bounded(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import sampan.api.server as api_server

    monkeypatch.setattr(api_server, "MAX_JSON_BODY", 64)
    conn = UnixConnection(server)
    conn.request("POST", "/json", body=b'{"a": 1, "b": 2}')
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b'{"keys":["a","b"]}\n')
    conn.request("POST", "/json", body=b'{"a": "' + b"x" * 100 + b'"}')
    response = conn.getresponse()
    assert response.status == 400
    assert b"a JSON document over 64 bytes" in response.read()
    conn.close()


def test_streamed_response(server: str) -> None:
    conn = UnixConnection(server)
    conn.request("GET", "/stream")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.read() == b'{"i": 0}\r\n{"i": 1}\r\n{"i": 2}\r\n'
    conn.close()


def test_hijack_upgrades_to_a_raw_stream(server: str) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(server)
    sock.sendall(
        b"POST /v1.41/hijack HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
    assert b"Upgrade: tcp\r\n" in head
    sock.sendall(b"hello")
    assert sock.recv(100) == b"echo:hello"
    sock.close()


def test_daemon_starts_well_under_a_second(tmp_path: Path) -> None:
    sock = tmp_path / "d.sock"
    # --bridge none: a unit test makes nothing in the host's network namespace
    argv = [
        sys.executable, "-m", "sampan.cli", "--root", str(tmp_path / "root"), "daemon",
        "--exec-root", str(tmp_path / "exec"), "-H", f"unix://{sock}", "--bridge", "none",
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        answered = None
        while time.monotonic() - started < 10 and proc.poll() is None:
            try:
                conn = UnixConnection(str(sock))
                conn.request("GET", "/_ping")
                if conn.getresponse().read() == b"OK":
                    answered = time.monotonic() - started
                    break
            except OSError:
                time.sleep(0.005)
        assert answered is not None, proc.stderr.read() if proc.stderr else ""
        print(f"sampan daemon: spawn to /_ping answered in {answered * 1000:.0f} ms")
        assert answered < 2.0  # a sanity bound; the speed goal belongs to the benchmarks
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    assert not sock.exists()
