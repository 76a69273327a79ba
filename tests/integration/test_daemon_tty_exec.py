"""Interactive containers through `sampan daemon`: stdin, TTYs, attach, exec, detach keys,
log rotation -- with the real docker CLI (under pseudo-terminals made here), docker-py,
raw API calls and the sampan CLI.

A module-wide daemon runs on a private root with busybox bootstrapped; the live-restore
test has a daemon of its own that it kills with SIGKILL and starts again.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_fixtures import (
    SampanDaemon,
    bootstrapped,
    busybox_daemon,
    inspect_container,
    needs_docker_cli,
    wait_until,
)

pytestmark = needs_docker_cli

SAMPAN = [sys.executable, "-m", "sampan.cli"]
REPO = Path(__file__).resolve().parents[2]
daemon = busybox_daemon("tty")


@pytest.fixture()
def sleeper(daemon: SampanDaemon) -> Iterator[str]:
    """A running container to exec in."""
    cid = daemon.docker("run", "-d", "busybox", "sleep", "600").stdout.strip()
    yield cid
    daemon.docker("rm", "-f", cid, check=False)


class Pty:
    """A command on a pseudo-terminal of its own (rows x cols), driven like a user."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 30, cols: int = 100):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover -- the child
            os.chdir(REPO)
            os.execvpe(argv[0], argv, env)
        self.resize(rows, cols, signal_child=False)
        self.out = b""

    def resize(self, rows: int, cols: int, signal_child: bool = True) -> None:
        import fcntl
        import termios

        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        if signal_child:
            os.kill(self.pid, signal.SIGWINCH)

    def wait_raw(self, timeout: float = 15.0) -> None:
        """Until the command has put the terminal in raw mode (it is attached), and a bit."""
        import termios

        wait_until("raw mode", lambda: not termios.tcgetattr(self.fd)[3] & termios.ECHO, timeout)
        time.sleep(0.3)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def expect(self, pattern: bytes, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while pattern not in self.out:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise AssertionError(f"{pattern!r} not seen in {self.out!r}")
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                data = b""
            if not data:
                raise AssertionError(f"{pattern!r} not seen before the end: {self.out!r}")
            self.out += data

    def ask_until(
        self,
        command: bytes,
        pattern: bytes,
        timeout: float = 15.0,
        again: Callable[[], None] | None = None,
    ) -> None:
        """Send COMMAND until its output shows PATTERN (a resize lands asynchronously),
        calling AGAIN before each retry."""
        deadline = time.monotonic() + timeout
        first = True
        while True:
            if again is not None and not first:
                again()
            first = False
            self.send(command)
            try:
                self.expect(pattern, timeout=1.0)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def wait(self, timeout: float = 15.0) -> int:
        """Read to the end; the exit code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    data = b""
                self.out += data
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"still running after {timeout}s: {self.out!r}")


def _docker_pty(daemon: SampanDaemon, *args: str) -> Pty:
    return Pty(["docker", *args], daemon.env())


def _sampan_env(daemon: SampanDaemon) -> dict[str, str]:
    env = dict(os.environ)
    env["SAMPAN_HOST"] = daemon.host
    env["PYTHONPATH"] = str(REPO)
    return env


def _sampan_pty(daemon: SampanDaemon, *args: str) -> Pty:
    return Pty([*SAMPAN, *args], _sampan_env(daemon))


def _sampan(
    daemon: SampanDaemon, *args: str, input: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*SAMPAN, *args], input=input, capture_output=True, timeout=60,
                          env=_sampan_env(daemon), cwd=REPO)  # fmt: skip


def _docker_input(
    daemon: SampanDaemon, data: bytes, *args: str
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], input=data, capture_output=True, timeout=60,
                          env=daemon.env())  # fmt: skip


def _procs_with(needle: str, cid: str) -> list[int]:
    """Pids in container CID's cgroup whose command line is exactly NEEDLE's words."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            cgroup = Path(f"/proc/{entry}/cgroup").read_text()
        except OSError:
            continue
        if cmdline.split(b"\0")[:-1] == needle.encode().split() and cid in cgroup:
            found.append(int(entry))
    return found


# -- stdin without a TTY -----------------------------------------------------------------


def test_run_i_with_stdin_piped(daemon: SampanDaemon) -> None:
    done = _docker_input(daemon, b"hi\nthere\n", "run", "-i", "--rm", "busybox", "cat")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hi\nthere\n"
    big = os.urandom(300_000).hex().encode()  # more than any pipe holds at once
    done = _docker_input(daemon, big, "run", "-i", "--rm", "busybox", "wc", "-c")
    assert done.stdout.strip() == str(len(big)).encode()


def test_run_i_exit_code_and_stderr(daemon: SampanDaemon) -> None:
    script = "read x; echo out:$x; echo err:$x >&2; exit 6"
    done = _docker_input(daemon, b"v\n", "run", "-i", "--rm", "busybox", "sh", "-c", script)
    assert (done.returncode, done.stdout, done.stderr) == (6, b"out:v\n", b"err:v\n")


def test_run_without_i_has_no_stdin(daemon: SampanDaemon) -> None:
    done = _docker_input(daemon, b"ignored\n", "run", "--rm", "busybox", "cat")
    assert (done.returncode, done.stdout) == (0, b"")


# -- TTYs --------------------------------------------------------------------------------


def test_run_it_under_a_terminal(daemon: SampanDaemon) -> None:
    term = _docker_pty(daemon, "run", "-it", "--rm", "busybox", "sh")
    term.expect(b"# ")
    term.send(b"tty; stty size; echo $TERM\r")
    term.expect(b"/dev/pts/0\r\n30 100\r\nxterm\r\n")
    term.resize(40, 120)
    # The docker CLI listens for SIGWINCH only once it has started the container, which
    # under load can be after its first output: a user would resize again, so do we.
    term.ask_until(b"stty size\r", b"40 120\r\n", again=lambda: term.resize(40, 120))
    term.send(b"exit 5\r")
    assert term.wait() == 5


def test_detach_keys_then_attach(daemon: SampanDaemon) -> None:
    term = _docker_pty(daemon, "run", "-it", "--name", "detachable", "busybox", "sh")
    term.expect(b"# ")
    term.send(b"echo one\r")
    term.expect(b"one\r\n")
    term.send(b"\x10\x11")  # ctrl-p ctrl-q
    assert term.wait() == 0
    assert inspect_container(daemon, "detachable")["State"]["Running"]
    again = _docker_pty(daemon, "attach", "detachable")
    again.wait_raw()
    again.send(b"echo two\r")
    again.expect(b"two\r\n")
    again.send(b"\x10\x11")
    assert again.wait() == 1  # docker attach: "read escape sequence", exit 1
    assert b"read escape sequence" in again.out
    third = _docker_pty(daemon, "attach", "detachable")
    third.wait_raw()
    third.send(b"exit 4\r")
    assert third.wait() == 4
    assert inspect_container(daemon, "detachable")["State"]["ExitCode"] == 4
    daemon.docker("rm", "detachable")


def test_custom_detach_keys_and_bad_ones(daemon: SampanDaemon) -> None:
    term = _docker_pty(daemon, "run", "-it", "--rm", "--detach-keys", "ctrl-x,y", "busybox", "sh")
    term.expect(b"# ")
    term.send(b"\x10\x11echo still\r")  # the default keys are plain input now
    term.expect(b"still\r\n")
    term.send(b"exit 2\r")
    assert term.wait() == 2
    status, _, body = daemon.api("POST", "/containers/nope/attach?stream=1&detachKeys=ctrl-", None)
    assert status == 404
    cid = daemon.docker("run", "-d", "-it", "busybox", "sh").stdout.strip()
    status, _, body = daemon.api("POST", f"/containers/{cid}/attach?stream=1&detachKeys=ctrl-1")
    assert status == 400 and b"Invalid detach keys" in body
    daemon.docker("rm", "-f", cid)


def test_resize_bad_input(daemon: SampanDaemon, sleeper: str) -> None:
    assert daemon.api("POST", f"/containers/{sleeper}/resize?h=abc&w=10")[0] == 400
    assert daemon.api("POST", f"/containers/{sleeper}/resize?h=-1&w=10")[0] == 400
    assert daemon.api("POST", "/containers/nope/resize?h=1&w=10")[0] == 404
    stopped = daemon.docker("create", "-t", "busybox").stdout.strip()
    assert daemon.api("POST", f"/containers/{stopped}/resize?h=1&w=10")[0] == 409
    daemon.docker("rm", stopped)


# -- exec --------------------------------------------------------------------------------


def test_exec_exit_codes_env_user_workdir(daemon: SampanDaemon, sleeper: str) -> None:
    assert daemon.docker("exec", sleeper, "echo", "hello").stdout == "hello\n"
    assert daemon.docker("exec", sleeper, "sh", "-c", "exit 3", check=False).returncode == 3
    missing = daemon.docker("exec", sleeper, "nonexistent", check=False)
    assert missing.returncode == 127
    assert "executable file not found" in missing.stdout + missing.stderr
    assert daemon.docker("exec", sleeper, "/etc/passwd", check=False).returncode == 126
    done = daemon.docker("exec", "-e", "A=b", "-w", "/tmp", "-u", "nobody", sleeper,
                         "sh", "-c", "echo $A; pwd; id -u")  # fmt: skip
    assert done.stdout == "b\n/tmp\n65534\n"
    done = daemon.docker("exec", sleeper, "sh", "-c", "echo out; echo err >&2")
    assert (done.stdout, done.stderr) == ("out\n", "err\n")
    bad_user = daemon.docker("exec", "-u", "nosuchuser", sleeper, "true", check=False)
    assert bad_user.returncode != 0 and "nosuchuser" in bad_user.stderr + bad_user.stdout


def test_exec_stdin_piped_and_detached(daemon: SampanDaemon, sleeper: str) -> None:
    done = _docker_input(daemon, b"piped\n", "exec", "-i", sleeper, "cat")
    assert (done.returncode, done.stdout) == (0, b"piped\n")
    daemon.docker("exec", "-d", sleeper, "sh", "-c", "sleep 0.3; echo x > /tmp/done")
    wait_until("the detached exec", lambda: daemon.docker("exec", sleeper, "cat", "/tmp/done",
                                                       check=False).stdout == "x\n")  # fmt: skip


def test_exec_it_under_a_terminal(daemon: SampanDaemon, sleeper: str) -> None:
    term = _docker_pty(daemon, "exec", "-it", sleeper, "sh")
    term.expect(b"# ")
    term.send(b"tty; echo $TERM; stty size\r")
    term.expect(b"/dev/pts/0\r\nxterm\r\n30 100\r\n")
    term.send(b"exit 9\r")
    assert term.wait() == 9


def test_exec_api_shapes_and_bad_input(daemon: SampanDaemon, sleeper: str) -> None:
    request = {"Cmd": ["sh", "-c", "exit 7"], "AttachStdout": True}
    status, doc = daemon.api_json("POST", f"/containers/{sleeper}/exec", request)
    assert status == 201
    eid = doc["Id"]
    status, info = daemon.api_json("GET", f"/exec/{eid}/json")
    assert status == 200 and info["Running"] is False and info["ContainerID"] == sleeper
    assert info["ProcessConfig"] == {"arguments": ["-c", "exit 7"], "entrypoint": "sh",
                                     "privileged": False, "tty": False, "user": ""}  # fmt: skip
    status, _ = daemon.api_json("POST", f"/exec/{eid}/start", {"Detach": True})
    assert status == 200
    wait_until(
        "the exit code", lambda: daemon.api_json("GET", f"/exec/{eid}/json")[1]["ExitCode"] == 7
    )
    assert daemon.api_json("POST", f"/exec/{eid}/start", {"Detach": True})[0] == 409
    assert daemon.api_json("GET", "/exec/nope/json")[0] == 404
    assert daemon.api_json("POST", f"/containers/{sleeper}/exec", {"Cmd": []})[0] == 400
    assert (
        daemon.api_json("POST", f"/containers/{sleeper}/exec", {"Cmd": "x", "Env": [1]})[0] == 400
    )
    bad_keys = {"Cmd": ["true"], "DetachKeys": "ctrl-"}
    assert daemon.api_json("POST", f"/containers/{sleeper}/exec", bad_keys)[0] == 400
    rel = {"Cmd": ["true"], "WorkingDir": "tmp"}
    assert daemon.api_json("POST", f"/containers/{sleeper}/exec", rel)[0] == 400
    assert daemon.api_json("POST", "/containers/nope/exec", {"Cmd": ["true"]})[0] == 404
    stopped = daemon.docker("create", "busybox").stdout.strip()
    status, doc = daemon.api_json("POST", f"/containers/{stopped}/exec", {"Cmd": ["true"]})
    assert status == 409 and "is not running" in doc["message"]
    daemon.docker("rm", stopped)
    daemon.docker("rm", "-f", sleeper)
    assert daemon.api_json("GET", f"/exec/{eid}/json")[0] == 404  # dropped with the container


def _hijacked_exec_start(
    daemon: SampanDaemon, cid: str, cmd: list[str], tty: bool
) -> socket.socket:
    request = {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True, "AttachStdin": True,
               "Tty": tty}  # fmt: skip
    status, doc = daemon.api_json("POST", f"/containers/{cid}/exec", request)
    assert status == 201
    body = json.dumps({"Detach": False, "Tty": tty}).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(daemon.socket))
    sock.sendall(f"POST /v1.41/exec/{doc['Id']}/start HTTP/1.1\r\nHost: x\r\n"
                 "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


@pytest.mark.parametrize("tty", [False, True])
def test_exec_client_leaving_mid_stream_leaks_nothing(
    daemon: SampanDaemon, sleeper: str, tty: bool
) -> None:
    needle = f"sleep {731 + tty}"
    sock = _hijacked_exec_start(daemon, sleeper, needle.split(), tty)
    wait_until("the exec to run", lambda: len(_procs_with(needle, sleeper)) == 1)
    sock.close()  # mid-stream
    wait_until("the exec to be killed", lambda: not _procs_with(needle, sleeper))
    # and through the docker CLI, killed with SIGKILL
    needle = f"sleep {741 + tty}"
    cli = subprocess.Popen(["docker", "exec", *(["-t"] if tty else []), sleeper, *needle.split()],
                           env=daemon.env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_until("the exec to run", lambda: len(_procs_with(needle, sleeper)) == 1)
    cli.kill()
    cli.wait()
    wait_until("the exec to be killed", lambda: not _procs_with(needle, sleeper))


def test_sampan_cli_exec(daemon: SampanDaemon, sleeper: str) -> None:
    done = _sampan(daemon, "exec", sleeper, "sh", "-c", "echo o; echo e >&2; exit 4")
    assert (done.returncode, done.stdout, done.stderr) == (4, b"o\n", b"e\n")
    assert _sampan(daemon, "exec", sleeper, "nonexistent").returncode == 127
    done = _sampan(daemon, "exec", "-i", "-e", "X=1", "-w", "/tmp", "-u", "nobody", sleeper,
                   "sh", "-c", "cat; echo $X; pwd; id -u", input=b"in\n")  # fmt: skip
    assert done.stdout == b"in\n1\n/tmp\n65534\n"
    done = _sampan(daemon, "exec", "nosuch", "true")
    assert done.returncode == 1 and b"No such container: nosuch" in done.stderr
    done = _sampan(daemon, "exec", "-it", sleeper, "sh", input=b"")
    assert done.returncode == 1 and b"the input device is not a TTY" in done.stderr
    assert _sampan(daemon, "exec", "-d", sleeper, "touch", "/tmp/d").returncode == 0
    wait_until("the detached exec", lambda: _sampan(daemon, "exec", sleeper, "ls", "/tmp/d")
           .returncode == 0)  # fmt: skip


def test_sampan_cli_under_a_terminal(daemon: SampanDaemon, sleeper: str) -> None:
    term = _sampan_pty(daemon, "run", "-it", "--name", "sampan-it", "busybox", "sh")
    term.expect(b"# ")
    term.send(b"tty; stty size\r")
    term.expect(b"/dev/pts/0\r\n30 100\r\n")
    term.resize(33, 90)
    term.ask_until(b"stty size\r", b"33 90\r\n", again=lambda: term.resize(33, 90))
    term.send(b"\x10\x11")
    assert term.wait() == 0
    attach = _sampan_pty(daemon, "attach", "sampan-it")
    attach.wait_raw()
    attach.send(b"\x10\x11")
    assert attach.wait() == 1 and b"read escape sequence" in attach.out
    attach = _sampan_pty(daemon, "attach", "sampan-it")
    attach.wait_raw()
    attach.send(b"exit 3\r")
    assert attach.wait() == 3
    term = _sampan_pty(daemon, "exec", "-it", sleeper, "sh")
    term.expect(b"# ")
    term.send(b"stty size\r")
    term.expect(b"30 100\r\n")
    term.send(b"exit 8\r")
    assert term.wait() == 8
    daemon.docker("rm", "sampan-it")


def test_sampan_run_i_and_sig_proxy(daemon: SampanDaemon) -> None:
    done = _sampan(daemon, "run", "-i", "--rm", "busybox", "cat", input=b"through\n")
    assert (done.returncode, done.stdout) == (0, b"through\n")
    script = 'trap "echo got TERM; exit 3" TERM; sleep 100 & wait'
    proc = subprocess.Popen([*SAMPAN, "run", "--rm", "busybox", "sh", "-c", script],
                            env=_sampan_env(daemon), cwd=REPO, stdout=subprocess.PIPE)  # fmt: skip
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert (proc.returncode, out) == (3, b"got TERM\n")


# -- log rotation ------------------------------------------------------------------------


def test_log_rotation_bounds_files_and_logs_read_across(daemon: SampanDaemon) -> None:
    script = "for i in $(seq 1 300); do echo line-$i; done"
    daemon.docker("run", "--name", "rotating", "--log-opt", "max-size=1k", "--log-opt",
                  "max-file=3", "busybox", "sh", "-c", script)  # fmt: skip
    cid = inspect_container(daemon, "rotating")["Id"]
    files = sorted(p.name for p in (daemon.root / "containers" / cid).glob("*-json.log*"))
    assert files == [f"{cid}-json.log", f"{cid}-json.log.1", f"{cid}-json.log.2"]
    for name in files:
        assert (daemon.root / "containers" / cid / name).stat().st_size <= 1024
    lines = daemon.docker("logs", "rotating").stdout.splitlines()
    assert lines[-1] == "line-300"
    assert lines == [f"line-{i}" for i in range(301 - len(lines), 301)]  # in order, no gaps
    assert daemon.docker("logs", "--tail", "2", "rotating").stdout == "line-299\nline-300\n"
    host = inspect_container(daemon, "rotating")["HostConfig"]["LogConfig"]
    assert host == {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "3"}}
    daemon.docker("rm", "rotating")


def test_log_rotation_while_following(daemon: SampanDaemon) -> None:
    script = "for i in $(seq 1 200); do echo line-$i; sleep 0.01; done"
    cid = daemon.docker("run", "-d", "--log-opt", "max-size=2k", "--log-opt", "max-file=5",
                        "busybox", "sh", "-c", script).stdout.strip()  # fmt: skip
    lines = daemon.docker("logs", "-f", cid).stdout.splitlines()
    assert lines[-1] == "line-200"
    assert lines == [f"line-{i}" for i in range(201 - len(lines), 201)]
    daemon.docker("rm", cid)


@pytest.mark.parametrize(
    ("opt", "message"),
    [("max-size=abc", "invalid size"), ("max-file=0", "max-file cannot be less than 1"),
     ("foo=1", "unknown log opt 'foo'"), ("compress=true", "compress")],
)  # fmt: skip
def test_bad_log_options(daemon: SampanDaemon, opt: str, message: str) -> None:
    before = daemon.docker("ps", "-aq").stdout
    done = daemon.docker("run", "--rm", "--log-opt", "max-size=1k", "--log-opt", opt,
                         "busybox", "true", check=False)  # fmt: skip
    assert done.returncode == 125 and message in done.stderr
    assert daemon.docker("ps", "-aq").stdout == before  # nothing half-made


# -- live restore with an open stdin ---------------------------------------------------------


def _attach_and_echo(sd: SampanDaemon, name: str, line: bytes) -> bytes:
    proc = subprocess.Popen(["docker", "attach", name], env=sd.env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdin is not None and proc.stdout is not None
        time.sleep(1.0)
        proc.stdin.write(line)
        proc.stdin.flush()
        ready = select.select([proc.stdout], [], [], 15)[0]
        return os.read(proc.stdout.fileno(), 4096) if ready else b""
    finally:
        proc.kill()
        proc.wait()


def test_kill_daemon_with_open_stdin_then_attach(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    sd = bootstrapped(tmp_path)
    try:
        sd.docker("run", "-d", "-i", "--name", "reader", "busybox", "sh", "-c",
                  "while read l; do echo got:$l; done")  # fmt: skip
        assert _attach_and_echo(sd, "reader", b"before\n") == b"got:before\n"
        assert sd.proc is not None
        os.kill(sd.proc.pid, signal.SIGKILL)
        sd.proc.wait()
        sd.start()
        assert _attach_and_echo(sd, "reader", b"after\n") == b"got:after\n"
        assert sd.docker("logs", "reader").stdout == "got:before\ngot:after\n"
        sd.docker("rm", "-f", "reader")
    finally:
        sd.docker("rm", "-f", *sd.docker("ps", "-aq", check=False).stdout.split(), check=False)
        sd.stop()


# -- docker-py ---------------------------------------------------------------------------


def test_docker_py_exec_and_attach(daemon: SampanDaemon, sleeper: str) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.host)
    try:
        c = client.containers.get(sleeper)
        result = c.exec_run("sh -c 'echo out; echo err >&2; exit 3'")
        assert (result.exit_code, result.output) == (3, b"out\nerr\n")
        result = c.exec_run(["cat", "/etc/hostname"], demux=True)
        assert result.exit_code == 0 and result.output[0] == sleeper[:12].encode() + b"\n"
        streamed = c.exec_run("sh -c 'for i in 1 2 3; do echo $i; sleep 0.1; done'", stream=True)
        assert b"".join(streamed.output) == b"1\n2\n3\n"
        assert c.exec_run("tty", tty=True).output == b"/dev/pts/0\r\n"
        reader = client.containers.run("busybox", "cat", stdin_open=True, detach=True)
        try:
            sock = reader.attach_socket(params={"stdin": 1, "stream": 1, "stdout": 1})
            sock._sock.sendall(b"ping\n")
            data = b""
            deadline = time.monotonic() + 10
            while len(data) < 13 and time.monotonic() < deadline:
                data += sock._sock.recv(100)
            assert data == b"\x01\x00\x00\x00\x00\x00\x00\x05ping\n"
            sock.close()
        finally:
            reader.remove(force=True)
    finally:
        client.close()


def test_events_and_exec_ids(daemon: SampanDaemon) -> None:
    since = str(int(time.time()) - 1)
    cid = daemon.docker("run", "-d", "-it", "busybox", "sh").stdout.strip()
    term = _docker_pty(daemon, "exec", "-it", cid, "sh", "-c", "sleep 1; exit 3")
    wait_until("the exec's id in inspect", lambda: bool(inspect_container(daemon, cid)["ExecIDs"]))
    assert term.wait() == 3
    assert inspect_container(daemon, cid)["ExecIDs"] is None
    assert daemon.api("POST", f"/containers/{cid}/resize?h=20&w=70")[0] == 200
    daemon.docker("rm", "-f", cid)
    until = str(int(time.time()) + 1)
    done = daemon.docker("events", "--since", since, "--until", until, "--filter",
                         f"container={cid}", "--format", "{{.Action}}")  # fmt: skip
    actions = done.stdout.splitlines()
    for want in ("exec_create: sh -c sleep 1; exit 3", "exec_start: sh -c sleep 1; exit 3",
                 "exec_die", "resize"):  # fmt: skip
        assert want in actions, actions
    assert actions.index("exec_create: sh -c sleep 1; exit 3") < actions.index("exec_die")


def test_start_ai_and_run_a(daemon: SampanDaemon) -> None:
    cid = daemon.docker("create", "-it", "busybox", "sh").stdout.strip()
    term = _docker_pty(daemon, "start", "-ai", cid)
    term.expect(b"# ")
    term.send(b"echo started\r")
    term.expect(b"started\r\n")
    term.send(b"exit 7\r")
    assert term.wait() == 7
    daemon.docker("rm", cid)
    done = daemon.docker("run", "--rm", "-a", "stderr", "busybox", "sh", "-c",
                         "echo out; echo err >&2")  # fmt: skip
    assert (done.stdout, done.stderr) == ("", "err\n")
    done = _docker_input(daemon, b"in\n", "run", "--rm", "-a", "stdin", "-a", "stdout", "-i",
                         "busybox", "cat")  # fmt: skip
    assert done.stdout == b"in\n"
