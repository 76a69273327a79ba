"""The per-container monitor (the containerd-shim / conmon role), a process of its own.

    python -I -S .../monitor.py RUNTIME_ROOT ID BUNDLE LOG STATE_DIR STATUS_FD [--loopback]

The daemon starts it in a session of its own with a pipe on STATUS_FD.  The
monitor becomes a child subreaper, creates and starts the container through
sampan.runtime (so the container's init is its child) with stdin on
/dev/null and stdout/stderr on two pipes it holds, brings up loopback in the
container's new network namespace (``--loopback``), and reports on STATUS_FD:

    ok PID\\n            the container runs as PID
    error MESSAGE\\n     it could not be created or started

Then it writes every line of the pipes to LOG in docker's json-file format
(``{"log": "hello\\n", "stream": "stdout", "time": "...Z"}``, one object a
line), reaps init, deletes the runtime's state (cgroup and all), and writes
STATE_DIR/exit.json (``{"ExitCode", "FinishedAt", "Pid"}``) by rename, so a
daemon that was down meanwhile reads the real exit code when it comes back.
Nothing ties it to the daemon: the daemon can be killed and restarted while
it runs.  Its own stderr is STATE_DIR/monitor.log.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # -I leaves the script's directory off sys.path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sampan.runtime.lifecycle import Created

EXIT_FILE = "exit.json"
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_DRAIN_AFTER_EXIT = 2.0  # seconds to wait for the pipes' EOF once init is gone


def loopback_up(pid: int) -> None:
    """Set lo up in PID's network namespace (a forked child joins it; we never do)."""
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        code = 1
        try:
            import _socket  # type: ignore[import-not-found]
            import fcntl

            from sampan.linux.syscalls import setns

            setns(fd, _CLONE_NEWNET)
            sock = _socket.socket(2, 2)  # AF_INET, SOCK_DGRAM
            req = bytearray(b"lo".ljust(40, b"\0"))
            fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, req)
            flags = int.from_bytes(req[16:18], "little") | 1  # IFF_UP
            req[16:18] = flags.to_bytes(2, "little")
            fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, req)
            code = 0
        finally:
            os._exit(code)
    os.close(fd)
    _, status = os.waitpid(child, 0)
    if status != 0:
        raise OSError(f"could not bring up loopback in the network namespace of {pid}")


def _now() -> str:
    from sampan.runtime.state import rfc3339_now

    return rfc3339_now()


class _LogWriter:
    """docker's json-file lines, appended to LOG with one write(2) each."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def _line(self, stream: str, data: bytes) -> None:
        from sampan import _json

        doc = {"log": data.decode("utf-8", "replace"), "stream": stream, "time": _now()}
        os.write(self.fd, (_json.dumps(doc) + "\n").encode())

    def feed(self, stream: str, data: bytes) -> None:
        data = self.partial[stream] + data
        *lines, rest = data.split(b"\n")
        for line in lines:
            self._line(stream, line + b"\n")
        while len(rest) >= 16384:  # docker splits long lines at 16 KiB
            self._line(stream, rest[:16384])
            rest = rest[16384:]
        self.partial[stream] = rest

    def close(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self._line(stream, rest)
        os.close(self.fd)


def _pump(out_r: int, err_r: int, pid: int, log: _LogWriter) -> int:
    """Log the pipes until init exits and the pipes close; init's exit code (128+N if signalled)."""
    import select
    import time

    from sampan.linux.syscalls import pidfd_open

    pidfd = pidfd_open(pid)
    poller = select.poll()
    streams = {out_r: "stdout", err_r: "stderr"}
    for fd in streams:
        poller.register(fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    code: int | None = None
    deadline = 0.0
    while streams or code is None:
        timeout = -1 if code is None else max(0, int((deadline - time.monotonic()) * 1000))
        events = poller.poll(timeout)
        if not events and code is not None:
            break  # something outside the pid namespace still holds a pipe
        for fd, _ in events:
            if fd == pidfd:
                poller.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                code = code if code >= 0 else 128 - code
                deadline = time.monotonic() + _DRAIN_AFTER_EXIT
                continue
            data = os.read(fd, 65536)
            if data:
                log.feed(streams[fd], data)
            else:
                poller.unregister(fd)
                os.close(fd)
                del streams[fd]
    _reap_others()
    return code


def _reap_others() -> None:
    while True:
        try:
            done, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if done == 0:
            return


def _write_exit(state_dir: str, doc: dict[str, object]) -> None:
    from sampan import _json

    tmp = f"{state_dir}/.{EXIT_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, _json.dumps(doc).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, f"{state_dir}/{EXIT_FILE}")


def _start(runtime_root: str, cid: str, bundle: str, loopback: bool) -> tuple[Created, int, int]:
    """Create and start the container with its stdout/stderr on pipes; (created, out, err)."""
    from sampan.runtime import lifecycle

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    saved = [os.dup(0), os.dup(1), os.dup(2)]
    null = os.open("/dev/null", os.O_RDWR)
    for fd, target in ((null, 0), (out_w, 1), (err_w, 2)):
        os.dup2(fd, target)
    try:
        created = lifecycle.create(runtime_root, cid, bundle, lifecycle.CreateOptions())
        try:
            if loopback:
                loopback_up(created.state.pid)
            lifecycle.start_state(created.state)
        except BaseException:
            lifecycle.delete_state(created.state, force=True)
            raise
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        for target, fd in enumerate(saved):
            os.dup2(fd, target)
            os.close(fd)
        for fd in (null, out_w, err_w):
            os.close(fd)
    return created, out_r, err_r


def main(argv: list[str]) -> int:
    runtime_root, cid, bundle, log_path, state_dir, status_fd = argv[:6]
    loopback = "--loopback" in argv[6:]
    status = int(status_fd)
    import gc

    gc.disable()  # no cycles here; and collections dirty pages for nothing
    from sampan.errors import describe
    from sampan.linux.syscalls import set_child_subreaper

    set_child_subreaper(True)
    try:
        log = _LogWriter(log_path)
        created, out_r, err_r = _start(runtime_root, cid, bundle, loopback)
    except BaseException as exc:
        message = " ".join(describe(exc).split())
        os.write(status, f"error {message}\n".encode())
        return 1
    pid = created.state.pid
    os.write(status, f"ok {pid}\n".encode())
    os.close(status)
    del created
    code = _pump(out_r, err_r, pid, log)
    log.close()
    try:
        from sampan.runtime import lifecycle

        lifecycle.delete(runtime_root, cid, force=True)
    except Exception as exc:
        sys.stderr.write(f"monitor {cid}: delete: {describe(exc)}\n")
    _write_exit(state_dir, {"ExitCode": code, "FinishedAt": _now(), "Pid": pid})
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)
