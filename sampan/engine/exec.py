"""Exec: processes run in a running container (docker's /containers/{id}/exec, /exec/{id}/...).

    execs = engine.execs
    eid = execs.create("web", {"Cmd": ["ls", "/"], "AttachStdout": True})
    stream = execs.start(eid)          # a Stream (sampan/engine/attach.py), or None detached
    ...; execs.inspect(eid)["ExitCode"]

Each started exec has a parent of its own, sampan/engine/exec_shim.py,
forked by the daemon's fork server (zygote.py) with the exec's stdio on
pipes the daemon holds (a pty master with a TTY, passed back by the shim);
a thread reads the shim's report and records the exit code it sends.  The
daemon never forks itself (it is multi-threaded) and never waits in a
request thread for anything but that request's own stream.

A client that leaves mid-stream (its socket hangs up, or a write to it
fails) does not leak the exec: its stdin is closed and, still running, it
is killed (SIGKILL through its pidfd, so a recycled pid is never hit) --
dockerd does the same when an exec's request context is cancelled.  A
detach (detach keys) leaves it running, stdin closed unless it has a TTY.

Records are dropped five minutes after their process ended, and with
their container.  The container's own end kills every exec in it (its pid
namespace goes away with init).
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time

from sampan.engine.attach import GONE, Stream
from sampan.engine.lifecycle import attributes
from sampan.errors import Conflict, InvalidArgument, NotFound, SampanError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import Any

    from sampan.engine.containers import Container
    from sampan.engine.daemon import Engine

__all__ = ["Exec", "ExecService", "ExecStream"]

SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exec_shim.py")
KEEP_ENDED = 300.0  # seconds an ended exec's record stays (docker inspects it after the stream)
START_TIMEOUT = 30.0
_DRAIN_AFTER_EXIT = 1.0
_CHUNK = 32768


class Exec:
    """One exec's record (changed under the service's lock)."""

    def __init__(self, eid: str, c: Container, config: dict[str, Any]) -> None:
        self.id = eid
        self.container = c
        self.config = config
        self.started = False
        self.running = False
        self.exit_code: int | None = None
        self.pid = 0
        self.ended = 0.0  # time.monotonic() at the end
        self.pidfd = -1
        self.master = -1  # the pty master while a stream holds it
        self.done_r = -1  # readable once the exec has ended
        self.streamed = False  # an ExecStream polls done_r: it closes it (else _wait does)
        self.done_w = -1

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))


def _check_config(request: object) -> dict[str, Any]:
    """POST /containers/{id}/exec's body, checked; the fields kept."""
    if not isinstance(request, dict):
        raise InvalidArgument("request body: expected a JSON object")
    cmd = request.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd:
        raise InvalidArgument("No exec command specified")
    if not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
        raise InvalidArgument("Cmd: expected a list of strings")
    env = request.get("Env") or []
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise InvalidArgument("Env: expected a list of strings")
    for entry in env:
        if not entry.partition("=")[0]:
            raise InvalidArgument(f"Env: invalid environment variable {entry!r}")
    config: dict[str, Any] = {"Cmd": cmd, "Env": env}
    for key in ("User", "WorkingDir", "DetachKeys"):
        value = request.get(key) or ""
        if not isinstance(value, str):
            raise InvalidArgument(f"{key}: expected a string")
        config[key] = value
    if config["WorkingDir"] and not config["WorkingDir"].startswith("/"):
        raise InvalidArgument(
            f"the working directory '{config['WorkingDir']}' is invalid, it needs to be an "
            "absolute path"
        )
    for key in ("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "Privileged"):
        config[key] = bool(request.get(key))
    size = request.get("ConsoleSize")
    if size is not None and not (
        isinstance(size, list) and len(size) == 2 and all(isinstance(n, int) for n in size)
    ):
        raise InvalidArgument("ConsoleSize: expected [height, width]")
    config["ConsoleSize"] = size
    return config


class ExecService:
    """The execs of the engine's running containers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self._execs: dict[str, Exec] = {}

    def _collect(self) -> None:
        now = time.monotonic()
        with self._lock:
            for eid, e in list(self._execs.items()):
                if e.container.removed or (e.ended and now - e.ended > KEEP_ENDED):
                    del self._execs[eid]

    def get(self, eid: str) -> Exec:
        self._collect()
        with self._lock:
            e = self._execs.get(eid)
        if e is None:
            raise NotFound(f"No such exec instance: {eid}")
        return e

    def ids_of(self, c: Container) -> list[str]:
        """The ids of C's running execs (inspect's ExecIDs)."""
        with self._lock:
            return [e.id for e in self._execs.values() if e.container is c and e.running]

    def _check_running(self, c: Container) -> None:
        if c.status == "paused" or c.state.get("Paused"):
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")

    def create(self, ref: str, request: object) -> str:
        c = self.engine.containers.get(ref)
        config = _check_config(request)
        self._check_running(c)
        self._collect()
        e = Exec(secrets.token_hex(32), c, config)
        with self._lock:
            self._execs[e.id] = e
        action = "exec_create: " + " ".join(config["Cmd"])
        self.engine.events.emit("container", action, c.id, {**attributes(c), "execID": e.id})
        return e.id

    def inspect(self, eid: str) -> dict[str, Any]:
        e = self.get(eid)
        cmd = e.config["Cmd"]
        return {
            "CanRemove": False,
            "ContainerID": e.container.id,
            "DetachKeys": e.config["DetachKeys"],
            "ExitCode": e.exit_code,
            "ID": e.id,
            "OpenStderr": e.config["AttachStderr"],
            "OpenStdin": e.config["AttachStdin"],
            "OpenStdout": e.config["AttachStdout"],
            "ProcessConfig": {
                "arguments": cmd[1:],
                "entrypoint": cmd[0],
                "privileged": e.config["Privileged"],
                "tty": e.tty,
                "user": e.config["User"],
            },
            "Running": e.running,
            "Pid": e.pid,
        }

    # -- start ---------------------------------------------------------------------------

    def _process(self, e: Exec) -> dict[str, Any]:
        """The OCI process to run: the container's, with the exec's settings."""
        from sampan import _json
        from sampan.engine import spec

        c = e.container
        services = self.engine.containers
        with open(os.path.join(services.bundle(c), "config.json"), "rb") as f:
            base = _json.loads(f.read()).get("process") or {}
        process = {k: v for k, v in base.items() if k not in ("terminal", "consoleSize")}
        process["args"] = list(e.config["Cmd"])
        process["terminal"] = e.tty
        env = spec.merge_env(list(base.get("env") or []), e.config["Env"])
        if e.tty and not any(v.startswith("TERM=") for v in env):
            env.append("TERM=xterm")
        process["env"] = env
        if e.config["WorkingDir"]:
            process["cwd"] = e.config["WorkingDir"]
        if e.config["User"]:
            rootfs = os.path.join(services.bundle(c), "rootfs")
            process["user"] = spec._user(
                e.config["User"], _read(f"{rootfs}/etc/passwd"), _read(f"{rootfs}/etc/group")
            )
        if e.config["Privileged"]:
            from sampan.linux.caps import bounding_set, cap_names

            caps = cap_names(bounding_set())
            process["capabilities"] = {k: list(caps) for k in ("bounding", "effective",
                                                              "permitted")}  # fmt: skip
        return process

    def start(self, eid: str, detach: bool = False) -> ExecStream | None:
        """Start exec EID: its stream (None when DETACH).  A start failure is recorded
        (exit code 126, 127 or 128, as dockerd) and raised."""
        e = self.get(eid)
        c = e.container
        with self._lock:
            if e.started:
                if e.running:
                    raise Conflict(f"Error: Exec command {e.id} is already running")
                raise Conflict(f"Error: Exec command {e.id} has already run")
            self._check_running(c)
            e.started = True
        try:
            return self._start(e, detach)
        except BaseException as exc:
            from sampan.errors import describe

            message = describe(exc)
            runtime = isinstance(exc, _RuntimeFailed)
            with self._lock:
                e.exit_code = _start_failure_code(message) if runtime else 126
                e.ended = time.monotonic()
                self.changed.notify_all()
            if runtime:
                raise SampanError(
                    "OCI runtime exec failed: exec failed: unable to start container process: "
                    f"{message}: unknown"
                ) from None
            raise

    def _start(self, e: Exec, detach: bool) -> ExecStream | None:
        import socket

        from sampan import _json

        c = e.container
        run_dir = os.path.join(self.engine.containers.run_dir, c.id)
        process_path = os.path.join(run_dir, f"exec-{e.id[:16]}.json")
        pid_file = os.path.join(run_dir, f"exec-{e.id[:16]}.pid")
        with open(process_path, "w") as f:
            f.write(_json.dumps(self._process(e)))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pipes: dict[str, tuple[int, int]] = {}
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        stdio = [null, null, null]
        if not detach and not e.tty:
            for i, key in enumerate(("AttachStdin", "AttachStdout", "AttachStderr")):
                if e.config[key]:
                    r, w = os.pipe()
                    pipes[key] = (r, w)
                    stdio[i] = r if i == 0 else w
        args = [self.engine.containers.runtime_root, c.id, process_path, pid_file]
        if e.tty:
            args.append("--tty")
        try:
            shim = self._launch(ours, args, (stdio[0], stdio[1], stdio[2]), theirs.fileno())
        except BaseException:
            for r, w in pipes.values():
                os.close(r)
                os.close(w)
            raise
        finally:
            theirs.close()
            os.close(null)
            for key, (r, w) in pipes.items():
                os.close(r if key == "AttachStdin" else w)  # the shim's ends
        mine = {k: (w if k == "AttachStdin" else r) for k, (r, w) in pipes.items()}
        try:
            pid, master = _status(shim)
        except BaseException:
            for fd in mine.values():
                os.close(fd)
            shim.wait()
            raise
        finally:
            for path in (process_path, pid_file):
                try:
                    os.unlink(path)
                except OSError:
                    pass
        done_r, done_w = os.pipe2(os.O_CLOEXEC)
        with self._lock:
            e.pid = pid
            e.running = True
            e.master = master
            size = e.config.get("ConsoleSize")
            if master >= 0 and size:
                _set_size(master, size[0], size[1])
            e.done_r, e.done_w = done_r, done_w
            e.streamed = not detach
            try:
                e.pidfd = os.pidfd_open(pid)
            except OSError:
                e.pidfd = -1
            self.changed.notify_all()
        cmd = " ".join(e.config["Cmd"])
        self.engine.events.emit(
            "container", f"exec_start: {cmd}", c.id, {**attributes(c), "execID": e.id}
        )
        threading.Thread(target=self._wait, args=(e, shim), name=f"exec-{e.id[:12]}",
                         daemon=True).start()  # fmt: skip
        if detach:
            if master >= 0:  # nobody reads this TTY: drain it, so the process never blocks
                threading.Thread(target=_drain_tty, args=(self, e), daemon=True).start()
            return None
        return ExecStream(
            self,
            e,
            stdin=mine.get("AttachStdin", master if e.config["AttachStdin"] else -1),
            outputs={fd: n for n, fd in ((1, mine.get("AttachStdout", master)),
                                         (2, mine.get("AttachStderr", -1))) if fd >= 0},
        )  # fmt: skip

    def _launch(
        self, sock: Any, args: list[str], stdio: tuple[int, int, int], theirs: int
    ) -> _Shim:
        """The exec's shim, forked by the engine's fork server, or spawned without one."""
        import subprocess

        zygote = self.engine.zygote()
        if zygote is not None:
            from sampan.engine.zygote import fd_arg

            try:
                return _Shim(sock, None, zygote.spawn("exec", [*args[:4], fd_arg(0), *args[4:]],
                                                      stdio, [theirs]))  # fmt: skip
            except OSError as exc:
                sys.stderr.write(f"exec fork server: {exc}; spawning instead\n")
        argv = [_python(), "-I", "-S", SHIM, *args[:4], str(theirs), *args[4:]]
        proc = subprocess.Popen(
            argv, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2],
            pass_fds=(theirs,), start_new_session=True, cwd="/",
        )  # fmt: skip
        return _Shim(sock, proc, proc.pid)

    def _wait(self, e: Exec, shim: _Shim) -> None:
        code = shim.wait()
        with self._lock:
            e.exit_code = code
            e.running = False
            e.ended = time.monotonic()
            if e.pidfd >= 0:
                os.close(e.pidfd)
                e.pidfd = -1
            os.close(e.done_w)
            e.done_w = -1
            if not e.streamed and e.done_r >= 0:
                os.close(e.done_r)
                e.done_r = -1
            self.changed.notify_all()
        c = e.container
        self.engine.events.emit(
            "container", "exec_die", c.id,
            {**attributes(c), "execID": e.id, "exitCode": str(code)},
        )  # fmt: skip

    def kill(self, e: Exec, signal: int = 9) -> None:
        """Signal E's process if it still runs (through its pidfd: never a recycled pid)."""
        import signal as _signal

        with self._lock:
            if e.running and e.pidfd >= 0:
                try:
                    _signal.pidfd_send_signal(e.pidfd, signal)
                except ProcessLookupError:
                    pass

    def resize(self, eid: str, height: int, width: int) -> None:
        """Resize E's TTY; before its start (clients race the two) the size is kept for it."""
        e = self.get(eid)
        with self._lock:
            if e.ended:
                raise Conflict(f"Exec {e.id} is not running")
            master = e.master
            if master < 0:
                e.config["ConsoleSize"] = [height, width]
                return
            _set_size(master, height, width)

    def wait_ended(self, e: Exec, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while e.running or (e.started and e.exit_code is None):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True


class ExecStream(Stream):
    """A started exec's stdio: pipes, or its pty master (both ways)."""

    def __init__(self, service: ExecService, e: Exec, stdin: int, outputs: dict[int, int]) -> None:
        self.service = service
        self.exec = e
        self.tty = e.tty
        self.stdin = stdin
        self.outputs = outputs  # fd -> 1 (stdout) or 2 (stderr)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._lock = threading.Lock()
        self._ended = False
        self._drain_until = 0.0

    def read(self, watch_fd: int) -> tuple[int, bytes] | None:
        import select

        e = self.exec
        while True:
            if self._ended:
                return None
            done = e.done_r
            ended = self._drain_until > 0
            if not self.outputs and ended:
                return None
            fds = list(self.outputs) + [self._wake_r] + ([] if ended else [done])
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            if watch_fd >= 0:
                poller.register(watch_fd, 0)
            timeout = -1
            if ended:
                timeout = max(0, int((self._drain_until - time.monotonic()) * 1000))
            events = poller.poll(timeout)
            if not events and ended:
                return None
            for fd, _ in events:
                if fd == watch_fd:
                    return GONE
                if fd == self._wake_r:
                    return None
            for fd, _ in events:
                if fd == done:
                    self._drain_until = time.monotonic() + _DRAIN_AFTER_EXIT
                elif fd in self.outputs:
                    try:
                        data = os.read(fd, _CHUNK)
                    except OSError:  # EIO: the pty's last slave closed
                        data = b""
                    if data:
                        return self.outputs[fd], data
                    del self.outputs[fd]
                    if fd != e.master:
                        os.close(fd)  # its end of file: close() will not see it

    def write(self, data: bytes) -> None:
        fd = self.stdin
        if fd < 0:
            return
        try:
            while data:
                data = data[os.write(fd, data) :]
        except OSError:
            pass  # the process is gone or closed its stdin

    def _close_stdin(self) -> None:
        with self._lock:
            fd, self.stdin = self.stdin, -1
        if fd >= 0 and fd != self.exec.master:
            os.close(fd)

    def end_of_input(self) -> None:
        if not self.tty:
            self._close_stdin()

    def interrupt(self) -> None:
        self.end_of_input()
        os.write(self._wake_w, b"x")

    def client_gone(self) -> None:
        self._close_stdin()
        self.service.kill(self.exec, 9)

    def finish(self) -> None:
        """Wait (bounded) for the exit code to be recorded: the client inspects it next."""
        self.service.wait_ended(self.exec, 10.0)

    def close(self) -> None:
        self._close_stdin()
        for fd in list(self.outputs):
            if fd != self.exec.master:
                os.close(fd)
        self.outputs.clear()
        e = self.exec
        with self.service._lock:
            master, e.master = e.master, -1
            e.streamed = False
            if not e.running and e.done_r >= 0:  # else _wait closes it at the exit
                os.close(e.done_r)
                e.done_r = -1
        if master >= 0:
            os.close(master)
        os.close(self._wake_r)
        os.close(self._wake_w)


class _RuntimeFailed(SampanError):
    """The runtime could not start the exec's process (the shim's report)."""


def _start_failure_code(message: str) -> int:
    """dockerd's exit code for a process the runtime could not start: 126 when it cannot
    be invoked, 127 when it is not found (or a path is not a directory), else 128."""
    low = message.lower()
    if "permission denied" in low or "is a directory" in low:
        return 126
    if "not a directory" in low or "executable file not found" in low or "no such file" in low:
        return 127
    return 128


def _drain_tty(service: ExecService, e: Exec) -> None:
    """Read a detached exec's TTY to its end (docker discards it too), then close it."""
    while True:
        try:
            if not os.read(e.master, _CHUNK):
                break
        except OSError:  # EIO: the last slave closed
            break
    with service._lock:
        master, e.master = e.master, -1
    os.close(master)


class _Shim:
    """An exec's shim: spawned (a Popen) or forked by the fork server (a pid, not our child).
    Either way it reports on its status socket: ``ok PID`` once the process runs, then
    ``exit CODE`` when it has ended."""

    def __init__(self, sock: Any, proc: subprocess.Popen[bytes] | None, pid: int) -> None:
        self.sock = sock
        self.proc = proc
        self.pid = pid
        self.buffer = b""

    def line(self, deadline: float | None = None) -> tuple[bytes, int]:
        """The next line of the report (b"" at its end) and a descriptor that came with it."""
        import select
        import socket

        master = -1
        while b"\n" not in self.buffer:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and (left <= 0 or not select.select([self.sock], [], [], left)[0]):
                raise TimeoutError
            try:
                chunk, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(4))
            except OSError:
                chunk, ancillary = b"", []
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    master = int.from_bytes(payload[:4], sys.byteorder, signed=True)
            if not chunk:
                line, self.buffer = self.buffer, b""
                return line, master
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line, master

    def kill(self) -> None:
        import signal

        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        """The exec's exit code (128+N when killed by signal N), once the shim is done."""
        code = -1
        while True:
            line, master = self.line()
            if master >= 0:
                os.close(master)
            word, _, rest = line.decode(errors="replace").partition(" ")
            if word == "exit" and rest.lstrip("-").isdigit():
                code = int(rest)
            if not line:
                break
        self.sock.close()
        if self.proc is not None:
            status = self.proc.wait()
            if code < 0:
                code = status if status >= 0 else 128 - status
        return code if code >= 0 else 255


def _status(shim: _Shim) -> tuple[int, int]:
    """The shim's report: (pid, pty master or -1); SampanError with its message."""
    try:
        data, master = shim.line(time.monotonic() + START_TIMEOUT)
    except TimeoutError:
        shim.kill()
        raise SampanError("exec: the runtime did not report in time") from None
    word, _, rest = data.decode(errors="replace").strip().partition(" ")
    if word == "ok" and rest.isdigit():
        return int(rest), master
    if master >= 0:
        os.close(master)
    if word == "error":
        raise _RuntimeFailed(rest)
    raise _RuntimeFailed("exec: the runtime exited without a report")


def _set_size(master: int, height: int, width: int) -> None:
    import fcntl
    import termios

    try:
        size = height.to_bytes(2, sys.byteorder) + width.to_bytes(2, sys.byteorder)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size + b"\0\0\0\0")
    except OSError:
        pass


def _python() -> str:
    return sys.executable


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return ""
