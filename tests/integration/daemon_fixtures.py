"""A `sampan daemon` for tests: a subprocess on a private --root, --exec-root and socket.

    from tests.integration.daemon_fixtures import daemon  # noqa: F401

    daemon        module-wide SampanDaemon; ``daemon.docker(*args)`` runs the real docker
                  CLI against it (DOCKER_HOST, a private DOCKER_CONFIG), ``daemon.api(...)``
                  makes a raw HTTP request on the socket

    daemon = busybox_daemon("events")   # the same with busybox:latest in its image store,
                                        # its containers removed at teardown
    sd = bootstrapped(tmp_path)         # such a daemon of a test's own (sd.stop() at its end)
    wait_until("the exit", lambda: inspect_container(sd, "c")["State"]["Status"] == "exited")

The daemon is stopped with SIGTERM by its own pid at teardown; its log is
printed when a test fails to start it.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
HAVE_DOCKER_CLI = shutil.which("docker") is not None

needs_docker_cli = pytest.mark.skipif(not HAVE_DOCKER_CLI, reason="needs the docker CLI")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class SampanDaemon:
    """`sampan --root ROOT daemon --exec-root EXEC -H unix://SOCK -D` as a subprocess."""

    def __init__(self, base: Path, *, extra: tuple[str, ...] = (), netns: str = "") -> None:
        self.base = base
        self.netns = netns  # a network namespace's path: the daemon's "host" (network tests)
        self.root = base / "root"
        self.exec_root = base / "exec"
        self.socket = base / "sampan.sock"
        self.host = f"unix://{self.socket}"
        self.config_dir = base / "docker-config"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = base / "daemon.log"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_in = 0.0

    def argv(self) -> list[str]:
        """The daemon's command line.  Outside a namespace of its own a test daemon has no
        default bridge (--bridge none): bridges, veths and nftables rules of tests never
        land in the host's namespace, where the machine's own daemon keeps its."""
        enter = ["nsenter", f"--net={self.netns}"] if self.netns else []
        bridge = [] if self.netns or "--bridge" in self.extra else ["--bridge", "none"]
        return [
            *enter, sys.executable, "-m", "sampan.cli", "--root", str(self.root), "daemon",
            "--exec-root", str(self.exec_root), "-H", self.host, "-D", *bridge, *self.extra,
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> SampanDaemon:
        log = open(self.log_path, "ab")  # noqa: SIM115 -- the process owns it
        started = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv(), stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO
        )
        log.close()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sampan daemon exited {self.proc.returncode}:\n{self.log()}")
            try:
                status, _, _ = self.api("GET", "/_ping", timeout=1.0)
                if status == 200:
                    self.started_in = time.monotonic() - started
                    return self
            except OSError:
                time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"sampan daemon did not answer /_ping in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def api(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """One raw request: (status, headers, body)."""
        conn = _UnixConnection(str(self.socket), timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def api_json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        status, _, raw = self.api(method, path, data, headers)
        return status, json.loads(raw) if raw.strip() else None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env["DOCKER_CONFIG"] = str(self.config_dir)
        env.pop("DOCKER_CONTEXT", None)
        return env

    def docker(
        self, *args: str, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """The real docker CLI against this daemon."""
        done = subprocess.run(
            ["docker", *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            stdin=subprocess.DEVNULL,  # a 401 makes the CLI prompt for a login: no terminal
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)}: exit {done.returncode}\n{done.stderr}\n"
                f"--- daemon log ---\n{self.log()[-4000:]}"
            )
        return done


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampanDaemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    running = SampanDaemon(tmp_path_factory.mktemp("daemon")).start()
    print(f"sampan daemon answered /_ping {running.started_in * 1000:.0f} ms after spawn")
    yield running
    running.stop()


def bootstrapped(
    base: Path,
    images: Callable[[Any], object] | None = None,
    *,
    netns: str = "",
    extra: tuple[str, ...] = (),
) -> SampanDaemon:
    """A daemon on BASE, started, with busybox:latest (and what IMAGES(store) adds) in its
    image store -- no registry needed; NETNS: run in that network namespace."""
    from sampan.image import bootstrap
    from sampan.image.store import ImageStore

    running = SampanDaemon(base, netns=netns, extra=extra)
    with ImageStore(str(running.root / "image")) as store:
        bootstrap.busybox(store, ["busybox:latest"])
        if images is not None:
            images(store)
    return running.start()


def busybox_daemon(
    name: str,
    images: Callable[[Any], object] | None = None,
    *,
    remove_containers: bool = True,
) -> Any:
    """A module-scoped fixture of a ``bootstrapped`` daemon (``daemon = busybox_daemon(NAME)``);
    root only.  At teardown its containers are removed with the docker CLI (unless
    REMOVE_CONTAINERS is false) and it stops."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampanDaemon]:
        if os.geteuid() != 0:
            pytest.skip("needs root")
        running = bootstrapped(tmp_path_factory.mktemp(name), images)
        yield running
        if remove_containers:
            running.docker("rm", "-f", *running.docker("ps", "-aq").stdout.split(), check=False)
        running.stop()

    return fixture


def wait_until(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll CHECK until it is true; AssertionError naming WHAT after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def inspect_container(daemon: SampanDaemon, ref: str) -> dict[str, Any]:
    """``docker inspect REF``'s one object."""
    doc = json.loads(daemon.docker("inspect", ref).stdout)
    assert len(doc) == 1
    return doc[0]  # type: ignore[no-any-return]


class TestNetns:
    """A network namespace for a test's daemon, playing the host: ``ip netns add`` (tests
    only; the engine never spawns ip), lo up.  ``run(argv)`` runs a command inside it (a
    client on "the host's" 127.0.0.1); ``close()`` deletes it with every bridge, veth and
    nftables rule the daemon made there."""

    __test__ = False

    def __init__(self, tag: str) -> None:
        self.name = f"sp-{tag}-{os.getpid()}"
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        self.path = f"/run/netns/{self.name}"

    def run(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        return subprocess.run(["nsenter", f"--net={self.path}", *argv], **kw)

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def network_daemon(name: str, *, extra: tuple[str, ...] = ()) -> Any:
    """A module-scoped fixture: a ``bootstrapped`` daemon in a network namespace of its own
    (with its default bridge), yielding (daemon, netns); its containers removed at teardown."""

    @pytest.fixture(scope="module")
    def fixture(
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Iterator[tuple[SampanDaemon, TestNetns]]:
        if os.geteuid() != 0:
            pytest.skip("needs root")
        ns = TestNetns(name)
        try:
            running = bootstrapped(tmp_path_factory.mktemp(name), netns=ns.path, extra=extra)
            try:
                yield running, ns
                ids = running.docker("ps", "-aq").stdout.split()
                running.docker("rm", "-f", *ids, check=False)
            finally:
                running.stop()
        finally:
            ns.close()

    return fixture
