"""The per-container monitor (the containerd-shim / conmon role), a process of its own.

    python -I -S .../monitor.py RUNTIME_ROOT ID BUNDLE LOG STATE_DIR STATUS_FD [flags]

    --loopback          bring up lo in the container's new network namespace
    --stdin             the container's stdin is a pipe the monitor holds (Config.OpenStdin)
    --tty               the container has a terminal; the monitor keeps its pty master
    --attach-first=N    start the container only once N attach connections are in
                        (the daemon's clients that attached before ``start``)
    --max-size=BYTES --max-file=N   rotate LOG (sampan.engine.logfile)

The daemon starts it in a session of its own with a pipe on STATUS_FD.  The
monitor becomes a child subreaper, binds its attach socket, creates and
starts the container through sampan.runtime (so the container's init is its
child) with stdin on /dev/null or a pipe and stdout/stderr on two pipes it
holds -- or, with a TTY, the pty master the runtime hands back -- brings up
loopback (``--loopback``), and reports on STATUS_FD:

    ok PID\\n            the container runs as PID
    error MESSAGE\\n     it could not be created or started

Then it writes every line of the output to LOG in docker's json-file format
(a TTY's output as stdout), copies it live to the attached clients, reaps
init, deletes the runtime's state (cgroup and all), and writes
STATE_DIR/exit.json (``{"ExitCode", "FinishedAt", "Pid"}``) by rename, so a
daemon that was down meanwhile reads the real exit code when it comes back.
Nothing ties it to the daemon: the daemon can be killed and restarted while
it runs, and a new daemon attaches again.  Its own stderr is STATE_DIR/monitor.log.

The attach socket, STATE_DIR/attach.sock (SOCK_SEQPACKET, 0600): every
message is one type byte and its payload.

    client -> monitor   i DATA     write DATA to the container's stdin
                        c          close the container's stdin (ignored with a TTY, as docker)
                        o          close it when this connection ends (StdinOnce)
                        r RC       resize the TTY: rows, cols as two big-endian uint16
    monitor -> client   1 DATA     output on stdout (a TTY's output is stdout)
                        2 DATA     output on stderr

Every client gets all the output from the moment it connects; the monitor
closes the connections once the container has exited and the log is
written.  A client that does not read holds back the container's output
once 1 MiB is queued for it (docker's attach blocks a container the same
way); stdin written faster than the container reads is queued likewise.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # -I leaves the script's directory off sys.path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# At the top: the fork server (zygote.py) preloads this module, so what it imports is
# shared with every monitor forked from it rather than private to each.
from sampan.engine.logfile import LogWriter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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


_CHUNK = 32768  # bytes read from the container at a time (one attach message)
_HOLD = 1 << 20  # queued for one client (or for stdin) before the monitor holds back


class _Client:
    """One attach connection: its queue of messages not sent yet."""

    __slots__ = ("queue", "queued", "sock", "stdin_once")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.queue: list[bytes] = []
        self.queued = 0
        self.stdin_once = False


class _Pump:
    """The monitor's loop: output to the log and the clients, clients' input to stdin."""

    def __init__(self, listener: Any, log: LogWriter, tty: int, stdin: int) -> None:
        self.listener = listener
        self.log = log
        self.tty = tty  # the pty master, or -1
        self.stdin = tty if tty >= 0 else stdin  # where input goes, or -1
        self.stdin_queue = b""
        self.stdin_closing = False
        self.outputs: dict[int, str] = {}
        self.clients: dict[int, _Client] = {}

    def accept(self) -> None:
        try:
            sock, _ = self.listener._accept()
        except BlockingIOError:
            return
        import _socket

        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, sock)
        conn.setblocking(False)
        self.clients[conn.fileno()] = _Client(conn)

    def broadcast(self, kind: bytes, data: bytes) -> None:
        message = kind + data
        for client in list(self.clients.values()):
            if not client.queue:
                try:
                    client.sock.send(message)
                    continue
                except BlockingIOError:
                    pass
                except OSError:
                    self.drop(client)
                    continue
            client.queue.append(message)
            client.queued += len(message)

    def flush(self, client: _Client) -> None:
        while client.queue:
            try:
                client.sock.send(client.queue[0])
            except BlockingIOError:
                return
            except OSError:
                self.drop(client)
                return
            client.queued -= len(client.queue.pop(0))

    def drop(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if fd in self.clients:
            del self.clients[fd]
            client.sock.close()
            if client.stdin_once:
                self.close_stdin()

    def close_stdin(self) -> None:
        if self.tty < 0 and self.stdin >= 0:
            self.stdin_closing = True
            self.write_stdin()

    def write_stdin(self) -> None:
        while self.stdin_queue and self.stdin >= 0:
            try:
                done = os.write(self.stdin, self.stdin_queue)
            except BlockingIOError:
                return
            except OSError:  # EPIPE: nothing reads the container's stdin any more
                self.stdin_queue = b""
                break
            self.stdin_queue = self.stdin_queue[done:]
        if self.stdin_closing and self.stdin >= 0 and self.stdin != self.tty:
            os.close(self.stdin)
            self.stdin = -1

    def message(self, client: _Client) -> None:
        try:
            data = client.sock.recv(_CHUNK + 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(client)
            return
        kind, body = data[:1], data[1:]
        if kind == b"i":
            if self.stdin >= 0 and not self.stdin_closing:
                self.stdin_queue += body
                self.write_stdin()
        elif kind == b"c":
            self.close_stdin()
        elif kind == b"o":
            client.stdin_once = True
        elif kind == b"r" and len(body) == 4 and self.tty >= 0:
            import fcntl
            import termios

            try:
                rows, cols = int.from_bytes(body[:2], "big"), int.from_bytes(body[2:], "big")
                size = rows.to_bytes(2, sys.byteorder) + cols.to_bytes(2, sys.byteorder)
                fcntl.ioctl(self.tty, termios.TIOCSWINSZ, size + b"\0\0\0\0")
            except OSError:
                pass

    def output(self, fd: int) -> bool:
        """Read from output FD; False once it is finished."""
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return True
        except OSError:  # EIO: a pty whose last slave closed
            data = b""
        if not data:
            return False
        stream = self.outputs[fd]
        self.log.feed(stream, data, _now())
        self.broadcast(b"1" if stream == "stdout" else b"2", data)
        return True

    def run(self, pid: int) -> int:
        """Until init exits and the outputs close; init's exit code (128+N if signalled)."""
        import select
        import time

        from sampan.linux.syscalls import pidfd_open

        pidfd = pidfd_open(pid)
        code: int | None = None
        deadline = 0.0
        while self.outputs or code is None:
            masks: dict[int, int] = {}
            if not any(c.queued > _HOLD for c in self.clients.values()):
                masks.update((fd, select.POLLIN) for fd in self.outputs)
            if pidfd >= 0:
                masks[pidfd] = select.POLLIN
            masks[self.listener.fileno()] = select.POLLIN
            full = len(self.stdin_queue) > _HOLD
            for fd, client in self.clients.items():
                masks[fd] = (0 if full else select.POLLIN) | (select.POLLOUT if client.queue else 0)
            if self.stdin_queue and self.stdin >= 0:
                masks[self.stdin] = masks.get(self.stdin, 0) | select.POLLOUT
            poller = select.poll()
            for fd, mask in masks.items():
                poller.register(fd, mask)
            timeout = -1 if code is None else max(0, int((deadline - time.monotonic()) * 1000))
            events = poller.poll(timeout)
            if not events and code is not None:
                break  # something outside the pid namespace still holds the output
            for fd, ev in events:
                if fd == pidfd:
                    os.close(pidfd)
                    pidfd = -1
                    _, status = os.waitpid(pid, 0)
                    code = os.waitstatus_to_exitcode(status)
                    code = code if code >= 0 else 128 - code
                    deadline = time.monotonic() + _DRAIN_AFTER_EXIT
                elif fd == self.listener.fileno():
                    self.accept()
                elif fd in self.outputs or fd == self.stdin:
                    if ev & select.POLLOUT:
                        self.write_stdin()
                    if fd in self.outputs and ev & ~select.POLLOUT and not self.output(fd):
                        del self.outputs[fd]
                        if fd != self.tty:
                            os.close(fd)
                elif fd in self.clients:
                    client = self.clients[fd]
                    if ev & select.POLLOUT:
                        self.flush(client)
                    if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        self.message(client)
        _reap_others()
        return code

    def finish(self) -> None:
        """Send what is queued (bounded), then end every connection and the socket."""
        import select

        for client in list(self.clients.values()):
            if client.queue:
                poller = select.poll()
                poller.register(client.sock.fileno(), select.POLLOUT)
                while client.queue and poller.poll(1000):
                    self.flush(client)
            client.sock.close()
        self.clients.clear()
        self.listener.close()
        for fd in (self.tty, self.stdin):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.tty = self.stdin = -1


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
        # No fsync: the rename keeps a killed monitor from leaving half a file; a
        # journal commit per exit (1-2 ms on ext4) would buy only power-loss safety.
        os.write(fd, _json.dumps(doc).encode())
    finally:
        os.close(fd)
    os.rename(tmp, f"{state_dir}/{EXIT_FILE}")


class _Options:
    """The monitor's flags (after the six positional arguments)."""

    def __init__(self, flags: list[str]) -> None:
        values = dict(f.partition("=")[::2] for f in flags)
        self.loopback = "--loopback" in values
        self.stdin = "--stdin" in values
        self.tty = "--tty" in values
        self.attach_first = int(values.get("--attach-first") or 0)
        self.max_size = int(values.get("--max-size") or 0)
        self.max_file = int(values.get("--max-file") or 1)


def _listen(state_dir: str) -> Any:
    """The attach socket: STATE_DIR/attach.sock, 0600, non-blocking."""
    import _socket

    dir_fd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    path = f"/proc/self/fd/{dir_fd}/attach.sock"  # short, whatever STATE_DIR's length
    try:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        sock.listen(64)
        sock.setblocking(False)
    finally:
        os.close(dir_fd)
    return sock


def _await_clients(pump: _Pump, count: int, timeout: float = 10.0) -> None:
    """Accept the COUNT connections of clients that attached before start (or give up)."""
    import select
    import time

    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(pump.listener.fileno(), select.POLLIN)
    while len(pump.clients) < count:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(int(left * 1000)):
            sys.stderr.write(f"monitor: {len(pump.clients)} of {count} clients attached\n")
            return
        pump.accept()


def _start(runtime_root: str, cid: str, bundle: str, opts: _Options, pump: _Pump) -> Created:
    """Create and start the container with its stdio on pipes or a pty, held by PUMP."""
    import fcntl

    from sampan.runtime import lifecycle

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if opts.stdin and not opts.tty else (-1, -1)
    saved = [os.dup(0), os.dup(1), os.dup(2)]
    null = os.open("/dev/null", os.O_RDWR)
    for fd, target in ((in_r if in_r >= 0 else null, 0), (out_w, 1), (err_w, 2)):
        os.dup2(fd, target)
    try:
        created = lifecycle.create(
            runtime_root, cid, bundle, lifecycle.CreateOptions(), keep_console=opts.tty
        )
        try:
            if created.console_fd is not None:
                pump.tty = pump.stdin = created.console_fd
                pump.outputs[created.console_fd] = "stdout"
            if opts.loopback:
                loopback_up(created.state.pid)
            if opts.attach_first:
                _await_clients(pump, opts.attach_first)
            lifecycle.start_state(created.state)
        except BaseException:
            lifecycle.delete_state(created.state, force=True)
            raise
    except BaseException:
        for fd in (out_r, err_r, in_w):
            if fd >= 0:
                os.close(fd)
        raise
    finally:
        for target, fd in enumerate(saved):
            os.dup2(fd, target)
            os.close(fd)
        for fd in (null, out_w, err_w, in_r):
            if fd >= 0:
                os.close(fd)
    pump.outputs[out_r] = "stdout"
    pump.outputs[err_r] = "stderr"
    if in_w >= 0:
        pump.stdin = in_w
    for fd in (in_w, pump.tty):
        if fd >= 0:
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    return created


def main(argv: list[str]) -> int:
    runtime_root, cid, bundle, log_path, state_dir, status_fd = argv[:6]
    opts = _Options(argv[6:])
    status = int(status_fd)
    import gc

    gc.disable()  # no cycles here; and collections dirty pages for nothing
    from sampan.errors import describe
    from sampan.linux.syscalls import set_child_subreaper

    set_child_subreaper(True)
    pump: _Pump | None = None
    try:
        log = LogWriter(log_path, opts.max_size, opts.max_file)
        pump = _Pump(_listen(state_dir), log, -1, -1)
        created = _start(runtime_root, cid, bundle, opts, pump)
    except BaseException as exc:
        message = " ".join(describe(exc).split())
        os.write(status, f"error {message}\n".encode())
        if pump is not None:
            pump.finish()
            _unlink(f"{state_dir}/attach.sock")
        return 1
    pid = created.state.pid
    try:
        os.write(status, f"ok {pid}\n".encode())
    except OSError:  # the daemon died during the start: the start did not happen
        from sampan.runtime import lifecycle

        lifecycle.delete(runtime_root, cid, force=True)  # kills it
        pump.finish()
        _unlink(f"{state_dir}/attach.sock")
        return 1
    os.close(status)
    del created
    code = pump.run(pid)
    log.close(_now())
    pump.finish()
    _unlink(f"{state_dir}/attach.sock")
    try:
        from sampan.runtime import lifecycle

        lifecycle.delete(runtime_root, cid, force=True)
    except Exception as exc:
        sys.stderr.write(f"monitor {cid}: delete: {describe(exc)}\n")
    _write_exit(state_dir, {"ExitCode": code, "FinishedAt": _now(), "Pid": pid})
    return 0


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)
