"""`sampan daemon`'s bad input and faults: malformed requests, a second daemon, the socket."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.daemon_fixtures import REPO, SampanDaemon, daemon

pytestmark = pytest.mark.root
__all__ = ["daemon"]


def test_socket_is_0660_root_and_pid_file(daemon: SampanDaemon) -> None:
    st = os.stat(daemon.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert daemon.proc is not None
    pid = (daemon.exec_root / "sampan.pid").read_text().strip()
    assert pid == str(daemon.proc.pid)


def test_many_connections_at_once_are_all_accepted(daemon: SampanDaemon) -> None:
    """The docker CLI opens a connection per object (`rm -f` of many ids) all at once."""
    import socket

    socks = []
    try:
        for _ in range(100):  # connected before the server accepts any of them
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.connect(str(daemon.socket))
            socks.append(sock)
        for sock in socks:
            sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for sock in socks:
            assert sock.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        for sock in socks:
            sock.close()


def test_ping_headers_and_versioned_paths(daemon: SampanDaemon) -> None:
    status, headers, body = daemon.api("GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["Api-Version"] == "1.41" and headers["Ostype"] == "linux"
    assert headers["Docker-Experimental"] == "false"
    status, headers, body = daemon.api("HEAD", "/_ping")
    assert status == 200 and body == b""
    for path in ("/version", "/v1.41/version", "/v1.24/version"):
        status, _, _ = daemon.api("GET", path)
        assert status == 200, path
    status, doc = daemon.api_json("GET", "/v1.99/version")
    assert status == 400 and "too new" in doc["message"]
    status, doc = daemon.api_json("GET", "/v1.12/version")
    assert status == 400 and "too old" in doc["message"]


def test_unknown_endpoint_and_image(daemon: SampanDaemon) -> None:
    status, doc = daemon.api_json("GET", "/v1.41/nothing/here")
    assert (status, doc) == (404, {"message": "page not found"})
    status, doc = daemon.api_json("GET", "/v1.41/images/127.0.0.1:5000/a/b:1/json")
    assert status == 404 and doc == {"message": "No such image: 127.0.0.1:5000/a/b:1"}
    status, doc = daemon.api_json("DELETE", "/images/nothing")
    assert status == 404 and doc["message"] == "No such image: nothing:latest"


def test_malformed_input_is_400_naming_the_field(daemon: SampanDaemon) -> None:
    status, _, raw = daemon.api(
        "POST", "/v1.41/auth", b'{"username": ', {"Content-Type": "application/json"}
    )
    assert status == 400 and b"invalid JSON" in raw
    status, doc = daemon.api_json("POST", "/v1.41/auth", {"username": 5})
    assert status == 400 and doc["message"].startswith("username:")
    status, doc = daemon.api_json("GET", "/v1.41/images/json?filters=%7Bnope")
    assert status == 400 and doc["message"].startswith("filters:")
    status, doc = daemon.api_json("GET", '/v1.41/images/json?filters={"color":["red"]}')
    assert status == 400 and "invalid filter 'color'" in doc["message"]
    status, doc = daemon.api_json("POST", "/v1.41/images/create")
    assert status == 400 and "fromImage" in doc["message"]
    status, doc = daemon.api_json("POST", "/v1.41/images/busybox/tag")
    assert status == 400 and doc["message"].startswith("repo:")
    status, doc = daemon.api_json("POST", "/v1.41/images/create?fromSrc=http://x/y.tar")
    assert status == 501
    # the connection stays usable after an error (keep-alive)
    status, _, body = daemon.api("GET", "/_ping")
    assert (status, body) == (200, b"OK")


def test_a_second_daemon_on_the_same_root_is_refused(daemon: SampanDaemon, tmp_path: Path) -> None:
    argv = [
        sys.executable, "-m", "sampan.cli", "--root", str(daemon.root), "daemon",
        "--exec-root", str(tmp_path / "exec"), "-H", f"unix://{tmp_path / 'other.sock'}",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=30)
    assert done.returncode == 1
    assert daemon.proc is not None
    assert f"another sampan daemon (pid {daemon.proc.pid}) is running" in done.stderr
    assert not (tmp_path / "other.sock").exists()
    # the same socket, another root: refused, the running daemon's socket untouched
    argv[4] = str(tmp_path / "root")
    argv[-1] = daemon.host
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=30)
    assert done.returncode == 1 and "another daemon is listening" in done.stderr
    assert daemon.api("GET", "/_ping")[0] == 200


def test_bad_flags_and_config(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "sampan.cli", "--root", str(tmp_path / "root"), "daemon"]
    base += ["--exec-root", str(tmp_path / "exec")]
    done = subprocess.run([*base, "-H", "tcp://0.0.0.0:2375"], capture_output=True, text=True)
    assert done.returncode == 1 and "only unix sockets are served" in done.stderr
    config = tmp_path / "daemon.json"
    config.write_text('{"registry-mirrors": [], "storage-driver": "zfs"}')
    done = subprocess.run(
        [*base, "--config-file", str(config), "-H", f"unix://{tmp_path}/s.sock"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "unknown configuration key 'storage-driver'" in done.stderr


def test_stale_socket_removed_and_sigterm_cleans_up(tmp_path: Path) -> None:
    import socket

    first = SampanDaemon(tmp_path / "d")
    first.socket.parent.mkdir(parents=True, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(first.socket))  # bound, never listening: a dead daemon's leftover
    stale.close()
    first.start()
    assert first.api("GET", "/_ping")[0] == 200
    assert first.proc is not None
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(10) == 0
    assert not first.socket.exists()
    assert not (first.exec_root / "sampan.pid").exists()
    assert "shutting down" in first.log()
