"""A real registry for tests: Debian's docker-registry (distribution 2.8) on loopback.

Import the fixtures you use into a test module (pytest finds fixtures by name
in the module's namespace):

    from tests.integration.registry_fixtures import registry  # noqa: F401

    registry          session-wide plain-HTTP registry, seeded by skopeo with
                      library/busybox:latest (the busybox rootfs, one layer),
                      test/multi:v1 (three layers of random data; test/multi-oci:v1
                      the same as an OCI image) and test/big:v1 (one 8 MB layer)
    auth_registry     a registry behind htpasswd (Basic) auth: USER / PASSWORD
    token_registry    a registry behind bearer-token auth, with an in-test token
                      server (RS256 JWTs signed by openssl, a self-signed x5c)
    fault_proxy       a FaultProxy in front of ``registry``: per-path 500s, drops
                      mid-body after N bytes, throttling -- what a flaky network does

Helpers: ``docker_archive`` builds a docker-archive tarball, ``skopeo_copy``
pushes it, ``free_port`` picks a port.  Every process started here is
stopped by its own pid at teardown.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import http.server
import io
import json
import random
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "alice", "s3cret-pw"
HAVE_REGISTRY = shutil.which("docker-registry") is not None
HAVE_SKOPEO = shutil.which("skopeo") is not None

needs_registry = pytest.mark.skipif(
    not (HAVE_REGISTRY and HAVE_SKOPEO),
    reason="needs docker-registry and skopeo (apt-get install docker-registry skopeo)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# -- the registry ----------------------------------------------------------------------


class RegistryServer:
    """``docker-registry serve`` on 127.0.0.1:PORT with storage under DIRECTORY."""

    def __init__(self, directory: Path, auth: str = "") -> None:
        self.directory = directory
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").mkdir(exist_ok=True)
        config = (
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {directory / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n"
            f"{auth}"
        )
        (directory / "config.yml").write_text(config)
        log = open(directory / "registry.log", "wb")  # noqa: SIM115 -- the process owns it
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(directory / "config.yml")],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        try:
            _wait_port(self.port)
        except RuntimeError:
            self.stop()
            raise RuntimeError((directory / "registry.log").read_text()) from None

    def log(self) -> str:
        return (self.directory / "registry.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bcrypt_htpasswd(path: Path, user: str, password: str) -> None:
    """An htpasswd file with a bcrypt hash (distribution accepts no other)."""
    if shutil.which("htpasswd"):
        out = subprocess.run(
            ["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=True
        ).stdout
        path.write_text(out.strip() + "\n")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # glibc's libxcrypt does bcrypt ($2b$)

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    path.write_text(f"{user}:{hashed}\n")


# -- images to seed ----------------------------------------------------------------------


def tar_of(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tarball with FILES (path -> content), mode 0644, root-owned."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return out.getvalue()


def docker_archive(path: Path, layers: list[bytes], tag: str, cmd: list[str] | None = None) -> str:
    """A docker-archive (``docker save`` format) of LAYERS (uncompressed tars); returns
    the config digest."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": cmd or ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
    }
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [
        {
            "Config": config_name,
            "RepoTags": [tag],
            "Layers": [f"{d[7:]}/layer.tar" for d in diff_ids],
        }
    ]
    with tarfile.open(path, "w") as tar:
        entries = [(config_name, config_bytes), ("manifest.json", json.dumps(manifest).encode())]
        for d, layer in zip(diff_ids, layers, strict=True):
            entries.append((f"{d[7:]}/layer.tar", layer))
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return "sha256:" + hashlib.sha256(config_bytes).hexdigest()


def skopeo_copy(source: str, dest: str, *, creds: str = "", fmt: str = "") -> None:
    argv = ["skopeo", "copy", "-q", "--dest-tls-verify=false", "--src-tls-verify=false"]
    if creds:
        argv += ["--dest-creds", creds]
    if fmt:
        argv += ["--format", fmt]
    subprocess.run([*argv, source, dest], check=True, capture_output=True, timeout=300)


def skopeo_inspect(ref: str, *, raw: bool = False, creds: str = "") -> Any:
    argv = ["skopeo", "inspect", "--tls-verify=false"]
    if raw:
        argv.append("--raw")
    if creds:
        argv += ["--creds", creds]
    out = subprocess.run([*argv, ref], check=True, capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout)


def random_layer(seed: int, size: int) -> bytes:
    """A layer with one file of SIZE pseudo-random (incompressible) bytes."""
    data = random.Random(seed).randbytes(size)
    return tar_of({f"data/file{seed}.bin": data, f"etc/layer{seed}": b"%d\n" % seed})


# -- the token server ----------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A bearer-token realm like Docker Hub's auth server, for one registry service.

    Grants what is asked to USER:PASSWORD; anonymous requests get pull on
    repositories under "public/" only; a wrong password is a 401.
    ``requests`` records (account, scopes) of every token request.
    """

    service = "sampan-test-registry"
    issuer = "sampan-test-issuer"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = directory / "token.key"
        self.cert = directory / "token.crt"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                str(self.key),
                "-out",
                str(self.cert),
                "-days",
                "2",
                "-subj",
                "/CN=sampan-token",
            ],
            check=True,
            capture_output=True,
        )
        pem = self.cert.read_text()
        body = pem.split("-----BEGIN CERTIFICATE-----")[1].split("-----END CERTIFICATE-----")[0]
        self.x5c = "".join(body.split())
        self.requests: list[tuple[str, list[str]]] = []
        self.port = free_port()
        self.realm = f"http://127.0.0.1:{self.port}/token"
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server._answer(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def registry_auth(self) -> str:
        return (
            "auth:\n  token:\n"
            f"    realm: {self.realm}\n    service: {self.service}\n"
            f"    issuer: {self.issuer}\n    rootcertbundle: {self.cert}\n"
        )

    def _answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
        scopes = query.get("scope", [])
        account = ""
        header = handler.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (user, password) != (USER, PASSWORD):
                self._send(
                    handler,
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                )
                return
            account = user
        self.requests.append((account, scopes))
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            allowed = (
                actions.split(",")
                if account
                else (
                    ["pull"] if name.startswith("public/") and "pull" in actions.split(",") else []
                )
            )
            access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": account,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": f"{now}-{len(self.requests)}",
            "access": access,
        }
        head = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = ".".join(_b64url(json.dumps(part).encode()) for part in (head, claims))
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            capture_output=True,
            check=True,
        ).stdout
        token = f"{signing_input}.{_b64url(signature)}"
        self._send(handler, 200, {"token": token, "expires_in": 300})

    @staticmethod
    def _send(handler: http.server.BaseHTTPRequestHandler, status: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- a proxy that misbehaves on request ----------------------------------------------------


class FaultProxy:
    """HTTP proxy to UPSTREAM ("127.0.0.1:port") that can fail requests on purpose.

    ``fail(substring, status, method=None, times=None)``   answer STATUS
    ``drop(substring, after, method=None, times=None)``    send AFTER body bytes, then cut
    ``corrupt(substring, method=None, times=None)``        flip a byte of the body
    ``throttle(bytes_per_second)``                         slow every body down
    ``hits``: (method, path, Range header) of each request seen; ``max_in_flight``:
    the most requests served at once.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.rules: list[dict[str, Any]] = []
        self.rate = 0.0
        self.hits: list[tuple[str, str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def handle_one(self) -> None:
                proxy._forward(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that went away mid-body (a cancelled download): expected

        self.httpd = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def fail(
        self, substring: str, status: int, method: str | None = None, times: int | None = None
    ) -> None:
        self.rules.append({"sub": substring, "status": status, "method": method, "times": times})

    def drop(
        self, substring: str, after: int, method: str | None = None, times: int | None = None
    ) -> None:
        self.rules.append({"sub": substring, "drop": after, "method": method, "times": times})

    def corrupt(self, substring: str, method: str | None = None, times: int | None = None) -> None:
        self.rules.append({"sub": substring, "corrupt": True, "method": method, "times": times})

    def throttle(self, bytes_per_second: float) -> None:
        self.rate = bytes_per_second

    def reset(self) -> None:
        self.rules.clear()
        self.rate = 0.0
        self.hits.clear()
        self.max_in_flight = 0

    def _rule(self, method: str, path: str) -> dict[str, Any] | None:
        with self._lock:
            for rule in self.rules:
                if rule["sub"] in path and rule["method"] in (None, method):
                    if rule["times"] is not None:
                        if rule["times"] <= 0:
                            continue
                        rule["times"] -= 1
                    return rule
        return None

    def _forward(self, h: http.server.BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._forward_one(h)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _forward_one(self, h: http.server.BaseHTTPRequestHandler) -> None:
        method, path = h.command, h.path
        self.hits.append((method, path, h.headers.get("Range", "")))
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        rule = self._rule(method, path)
        if rule is not None and "status" in rule:
            doc = {"errors": [{"code": "UNKNOWN", "message": f"injected {rule['status']}"}]}
            data = json.dumps(doc).encode()
            h.send_response(rule["status"])
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        conn = http.client.HTTPConnection(self.upstream, timeout=60)
        headers = {k: v for k, v in h.headers.items() if k.lower() != "connection"}
        conn.request(method, path, body=body if body or length else None, headers=headers)
        resp = conn.getresponse()
        h.send_response(resp.status, resp.reason)
        for key, value in resp.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                h.send_header(key, value)
        payload = resp.read() if method != "HEAD" else b""
        conn.close()
        if rule is not None and rule.get("corrupt") and payload:
            payload = bytes([payload[0] ^ 0xFF]) + payload[1:]
        if method != "HEAD" and resp.getheader("Content-Length") is None:
            h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        if method == "HEAD":
            return
        limit = rule["drop"] if rule is not None and "drop" in rule else None
        sent = 0
        step = 64 << 10
        while sent < len(payload):
            n = min(step, len(payload) - sent)
            if limit is not None:
                n = min(n, limit - sent)
                if n <= 0:
                    h.wfile.flush()
                    h.connection.shutdown(socket.SHUT_RDWR)
                    h.close_connection = True
                    return
            h.wfile.write(payload[sent : sent + n])
            sent += n
            if self.rate:
                time.sleep(n / self.rate)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- fixtures ----------------------------------------------------------------------------


class Seeded:
    """What the session registry holds."""

    def __init__(self, server: RegistryServer) -> None:
        self.server = server
        self.host = server.host
        self.busybox_config = ""
        self.multi_config = ""
        self.multi_layers: list[bytes] = []
        self.big_config = ""


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    if not (HAVE_REGISTRY and HAVE_SKOPEO):
        pytest.skip("needs docker-registry and skopeo")
    base = tmp_path_factory.mktemp("registry")
    server = RegistryServer(base / "srv")
    seeded = Seeded(server)
    try:
        rootfs = base / "busybox"
        subprocess.run(
            [str(REPO / "scripts" / "busybox-rootfs.sh"), str(rootfs)],
            check=True,
            capture_output=True,
        )
        layer = subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", "-", "."],
            check=True,
            capture_output=True,
        ).stdout
        archive = base / "busybox.tar"
        seeded.busybox_config = docker_archive(archive, [layer], "busybox:latest")
        skopeo_copy(f"docker-archive:{archive}", f"docker://{server.host}/library/busybox:latest")
        seeded.multi_layers = [random_layer(i, (i + 1) * 700_000) for i in range(3)]
        archive = base / "multi.tar"
        seeded.multi_config = docker_archive(archive, seeded.multi_layers, "multi:v1")
        skopeo_copy(f"docker-archive:{archive}", f"docker://{server.host}/test/multi:v1")
        skopeo_copy(
            f"docker-archive:{archive}", f"docker://{server.host}/test/multi-oci:v1", fmt="oci"
        )
        big = [random_layer(9, 8_000_000)]
        archive = base / "big.tar"
        seeded.big_config = docker_archive(archive, big, "big:v1")
        skopeo_copy(f"docker-archive:{archive}", f"docker://{server.host}/test/big:v1")
        yield seeded
    finally:
        server.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    if not HAVE_REGISTRY:
        pytest.skip("needs docker-registry")
    base = tmp_path_factory.mktemp("auth-registry")
    bcrypt_htpasswd(base / "htpasswd", USER, PASSWORD)
    auth = f"auth:\n  htpasswd:\n    realm: sampan-test\n    path: {base / 'htpasswd'}\n"
    server = RegistryServer(base / "srv", auth=auth)
    yield server
    server.stop()


class TokenRegistry:
    def __init__(self, server: RegistryServer, tokens: TokenServer) -> None:
        self.server = server
        self.tokens = tokens
        self.host = server.host


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    if not HAVE_REGISTRY or shutil.which("openssl") is None:
        pytest.skip("needs docker-registry and openssl")
    base = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(base)
    server = RegistryServer(base / "srv", auth=tokens.registry_auth())
    yield TokenRegistry(server, tokens)
    server.stop()
    tokens.stop()


@pytest.fixture
def fault_proxy(registry: Seeded) -> Iterator[FaultProxy]:
    proxy = FaultProxy(registry.host)
    yield proxy
    proxy.stop()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty, private $DOCKER_CONFIG for the test."""
    path = tmp_path / "docker-config"
    path.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(path))
    return path


def gzip_of(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


__all__ = [
    "PASSWORD",
    "USER",
    "FaultProxy",
    "RegistryServer",
    "Seeded",
    "TokenRegistry",
    "TokenServer",
    "auth_registry",
    "bcrypt_htpasswd",
    "docker_archive",
    "docker_config",
    "fault_proxy",
    "free_port",
    "gzip_of",
    "needs_registry",
    "random_layer",
    "registry",
    "skopeo_copy",
    "skopeo_inspect",
    "tar_of",
    "token_registry",
]
