"""OCI hooks and --console-socket on the real kernel (root only)."""

from __future__ import annotations

import errno
import json
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.root
Bundle = Callable[..., Path]

HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop")  # fmt: skip


def recording_hook(kind: str, out_dir: str) -> dict[str, Any]:
    """A hook that saves its stdin (the state) to OUT_DIR/KIND.json and logs its name."""
    script = f"cat > {out_dir}/{kind}.json; echo {kind} >> {out_dir}/order.log"
    return {"path": "/bin/sh", "args": ["sh", "-c", script], "timeout": 10}


def test_hooks_get_the_state(runtime: Runtime, bundle: Bundle, cid: str, tmp_path: Path) -> None:
    out = tmp_path / "hooks"
    out.mkdir()
    # startContainer runs after pivot_root, inside the container: it writes to
    # /tmp there, which is OUT bound in.  The others see the host's paths.
    hooks = {k: [recording_hook(k, "/tmp" if k == "startContainer" else str(out))]
             for k in HOOKS}  # fmt: skip
    mount = {"destination": "/tmp", "type": "bind", "source": str(out), "options": ["rbind"]}
    b = bundle(["sleep", "60"], {"hooks": hooks}, edit=lambda c: c["mounts"].append(mount))
    runtime.ok("create", "--bundle", str(b), cid)
    pid = runtime.state(cid)["pid"]
    order = (out / "order.log").read_text().split()
    assert order == ["prestart", "createRuntime", "createContainer"]
    runtime.ok("start", cid)
    runtime.wait_status(cid, "running")
    deadline = time.monotonic() + 5
    while len((out / "order.log").read_text().split()) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    runtime.ok("kill", cid, "KILL")
    runtime.wait_status(cid, "stopped")
    runtime.ok("delete", cid)
    order = (out / "order.log").read_text().split()
    assert order[:3] == ["prestart", "createRuntime", "createContainer"]
    # poststart runs after start has let the program go: it may finish before or
    # after startContainer (which runs in the container, just before its exec).
    assert sorted(order[3:5]) == ["poststart", "startContainer"]
    assert order[5:] == ["poststop"]

    states = {k: json.loads((out / f"{k}.json").read_text()) for k in HOOKS}
    for kind, state in states.items():
        assert (state["id"], state["bundle"], state["ociVersion"]) == (cid, str(b), "1.0.2"), kind
    # runc says "creating" to the hooks run before the container is created;
    # runtime-tools' hooks_stdin test wants "created" for prestart: either will do.
    for kind in ("prestart", "createRuntime", "createContainer"):
        assert states[kind]["status"] in ("creating", "created"), kind
    assert states["startContainer"]["status"] == "created"
    assert states["poststart"]["status"] == "running"
    assert states["poststop"]["status"] == "stopped"
    # The pid is as seen where the hook runs: the host's for the runtime's hooks,
    # the container's (init is 1 in its pid namespace) for the container's hooks.
    for kind in ("prestart", "createRuntime", "poststart"):
        assert states[kind]["pid"] == pid, kind
    assert states["createContainer"]["pid"] == states["startContainer"]["pid"] == 1


def test_poststop_runs_after_run(runtime: Runtime, bundle: Bundle, cid: str,
                                 tmp_path: Path) -> None:  # fmt: skip
    hooks = {"poststop": [recording_hook("poststop", str(tmp_path))]}
    proc = runtime("run", "--bundle", str(bundle(["true"], {"hooks": hooks})), cid)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "poststop.json").read_text())["status"] == "stopped"
    assert runtime.ids() == set()


def test_failing_poststart_is_a_warning(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    hook = {"path": "/bin/sh", "args": ["sh", "-c", "exit 7"]}
    b = bundle(["sleep", "60"], {"hooks": {"poststart": [hook]}})
    runtime.ok("create", "--bundle", str(b), cid)
    start = runtime("start", cid)
    assert "poststart" in start.stderr and "7" in start.stderr
    assert runtime.state(cid)["status"] == "running"


def test_hook_timeout(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    hook = {"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}
    b = bundle(["true"], {"hooks": {"createRuntime": [hook]}})
    began = time.monotonic()
    proc = runtime("create", "--bundle", str(b), cid)
    assert proc.returncode != 0
    assert "timed out" in proc.stderr
    assert time.monotonic() - began < 10
    assert runtime.ids() == set()


# -- the console socket ----------------------------------------------------------------------


class ConsoleServer:
    """A unix socket that receives one pty master (SCM_RIGHTS), as an engine's shim does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.master: int | None = None
        self.name = b""
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
            with conn:
                self.name, fds, _flags, _addr = socket.recv_fds(conn, 1024, 1)
                self.master = fds[0]
        except BaseException as exc:
            self.error = exc

    def wait_master(self) -> int:
        self.thread.join(20)
        assert self.error is None, self.error
        assert self.master is not None, "no pty master received"
        return self.master

    def close(self) -> None:
        self.sock.close()
        if self.master is not None:
            os.close(self.master)


def read_until_hangup(fd: int, timeout: float = 10.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError as exc:  # EIO: every slave fd is closed
            assert exc.errno == errno.EIO
            break
        if not chunk:
            break
        data += chunk
    return data


def test_console_socket(runtime: Runtime, bundle: Bundle, cid: str, tmp_path: Path) -> None:
    server = ConsoleServer(tmp_path / "console.sock")
    try:
        process = {"terminal": True, "consoleSize": {"height": 33, "width": 101}}
        b = bundle(["sh", "-c", "tty; stty size; echo hello-console"], {"process": process})
        runtime.ok("create", "--console-socket", str(server.path), "--bundle", str(b), cid)
        master = server.wait_master()
        assert os.isatty(master)
        runtime.ok("start", cid)
        out = read_until_hangup(master).decode().replace("\r\n", "\n")
        assert out == "/dev/pts/0\n33 101\nhello-console\n"
    finally:
        server.close()


def test_console_needs_terminal(runtime: Runtime, bundle: Bundle, cid: str,
                                tmp_path: Path) -> None:  # fmt: skip
    sock = str(tmp_path / "console.sock")
    proc = runtime("create", "--console-socket", sock, "--bundle", str(bundle(["true"])), cid)
    assert proc.returncode != 0
    assert "terminal" in proc.stderr
    b = bundle(["true"], {"process": {"terminal": True}})
    proc = runtime("create", "--bundle", str(b), cid)
    assert proc.returncode != 0
    assert "--console-socket" in proc.stderr
    assert runtime.ids() == set()


def test_every_poststop_hook_runs_though_one_fails(runtime: Runtime, bundle: Bundle, cid: str,
                                                  tmp_path: Path) -> None:  # fmt: skip
    failing = {"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}
    hooks = {"poststop": [failing, recording_hook("poststop", str(tmp_path))]}
    proc = runtime("run", "--bundle", str(bundle(["true"], {"hooks": hooks})), cid)
    assert proc.returncode == 0, proc.stderr
    assert "poststop[0]" in proc.stderr and "exit status 3" in proc.stderr
    assert (tmp_path / "poststop.json").exists()  # the second hook still ran


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer", "startContainer"])
def test_hooks_get_stdio_only(runtime: Runtime, bundle: Bundle, cid: str, tmp_path: Path,
                              kind: str) -> None:  # fmt: skip
    """No runtime fd (exec.fifo, the handshake socket) nor the caller's reaches a hook."""
    out = tmp_path / "fds"
    # On the host (createRuntime, createContainer), or in the container's root after
    # pivot_root (startContainer), where tmp_path is bound at /out.
    listing = f"ls /proc/self/fd > {out} 2>/dev/null || ls /proc/self/fd > /out/fds"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", listing]}

    def edit(config: dict[str, Any]) -> None:
        config["hooks"] = {kind: [hook]}
        config["mounts"].append({"destination": "/out", "type": "bind", "source": str(tmp_path),
                                 "options": ["rbind"]})  # fmt: skip

    b = bundle(["true"], edit=edit)
    extra = os.open("/dev/null", os.O_RDONLY)  # inheritable, as a caller's stray fd
    os.set_inheritable(extra, True)
    try:
        proc = subprocess.run(runtime.argv("run", "--bundle", str(b), cid), capture_output=True,
                              text=True, pass_fds=(extra,), check=False)  # fmt: skip
    finally:
        os.close(extra)
    assert proc.returncode == 0, proc.stderr
    fds = sorted(int(x) for x in out.read_text().split())
    assert fds[:3] == [0, 1, 2] and len(fds) <= 4, fds  # stdio, and the fd of ls's own listing
