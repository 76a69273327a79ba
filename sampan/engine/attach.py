"""Attaching to a container: the daemon's side of the monitor's attach socket.

A running container's stdio is held by its monitor (sampan/engine/monitor.py,
whose docstring defines the protocol); the daemon -- this one or one started
after it -- connects to EXEC_ROOT/containers/ID/attach.sock for each API
attach and for each resize.  ``Stream`` is what the API's stream pump
(sampan/api/attach.py) drives: output in, stdin out, the end.  An exec's
pipes or pty (sampan/engine/exec.py) are the other kind of Stream.

Clients that attach before ``start`` (``docker run`` attaches, then
starts) must not miss the first output: they wait here as *pending*; the
start claims them (``monitor_flags`` passes ``--attach-first=N``), connects
each to the monitor's socket right after launching it (``connect_claimed``),
and the monitor starts the container only once those N connections are in.

    hub = AttachHub(engine)
    stream = hub.open(c, exits, gone=lambda: False)   # None: the container is done
    kind, data = stream.read(client_fd)               # (1, b"hi\n")
"""

from __future__ import annotations

import os
import threading

from sampan.engine.lifecycle import attributes
from sampan.errors import Conflict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from sampan.engine.containers import Container
    from sampan.engine.daemon import Engine

__all__ = ["GONE", "AttachHub", "MonitorStream", "Stream", "connect_unix"]

GONE = (0, b"")  # Stream.read: the client's socket hung up
_CHUNK = 32768
_CONNECT_TIMEOUT = 10.0
_UNCLAIMED = object()


def connect_unix(path: str, kind: int) -> object:
    """A connected unix socket of KIND to PATH, however long PATH is (through its dir fd)."""
    import socket

    dir_fd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{dir_fd}/{os.path.basename(path)}")
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(dir_fd)
    return sock


class Stream:
    """A process's stdio as the API pumps it.  ``read`` blocks; the others may be called
    from another thread (the one reading the client's stdin)."""

    tty = False

    def read(self, watch_fd: int) -> tuple[int, bytes] | None:
        """The next output: (1 or 2, data); None at the end (or after ``interrupt``);
        GONE when WATCH_FD (the client's socket) hangs up."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        """Write DATA to the process's stdin (dropped once it is closed)."""
        raise NotImplementedError

    def end_of_input(self) -> None:
        """The client's stdin ended."""

    def interrupt(self) -> None:
        """Make ``read`` return None soon (detach)."""
        raise NotImplementedError

    def client_gone(self) -> None:
        """The client left mid-stream."""

    def finish(self) -> None:
        """The output has ended: wait for what the client will ask next (an exit code)."""

    def close(self) -> None:
        raise NotImplementedError


def _poll_read(fds: list[int], watch_fd: int) -> list[tuple[int, int]]:
    import select

    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    if watch_fd >= 0:
        poller.register(watch_fd, 0)  # POLLHUP/POLLERR only: a half-close is not leaving
    while True:
        try:
            return poller.poll()
        except InterruptedError:
            continue


class MonitorStream(Stream):
    """One connection to a container's monitor."""

    def __init__(self, sock: object, tty: bool, close_on_eof: bool) -> None:
        import socket

        assert isinstance(sock, socket.socket)
        self.sock = sock
        self.tty = tty
        self._close_on_eof = close_on_eof  # StdinOnce without a TTY
        self._lock = threading.Lock()
        self._ended = False

    def read(self, watch_fd: int) -> tuple[int, bytes] | None:
        if self._ended:
            return None
        fd = self.sock.fileno()
        for got, _ in _poll_read([fd], watch_fd):
            if got == watch_fd and got != fd:
                return GONE
        try:
            data = self.sock.recv(_CHUNK + 64)
        except OSError:
            data = b""
        if not data or self._ended:
            return None
        return (2 if data[:1] == b"2" else 1), data[1:]

    def _send(self, message: bytes) -> None:
        with self._lock:
            if self._ended:
                return
            try:
                self.sock.send(message)
            except OSError:
                pass  # the monitor is gone: the container has exited

    def write(self, data: bytes) -> None:
        for i in range(0, len(data), _CHUNK):
            self._send(b"i" + data[i : i + _CHUNK])

    def stdin_once(self) -> None:
        self._send(b"o")

    def end_of_input(self) -> None:
        if self._close_on_eof:
            self._send(b"c")

    def resize(self, height: int, width: int) -> None:
        self._send(b"r" + height.to_bytes(2, "big") + width.to_bytes(2, "big"))

    def interrupt(self) -> None:
        with self._lock:
            self._ended = True
            try:
                self.sock.shutdown(2)  # SHUT_RDWR: read() wakes up
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            self._ended = True
            self.sock.close()


class _Pending:
    __slots__ = ("ready", "stream")

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.stream: MonitorStream | None = None


class AttachHub:
    """Connections to monitors, and the clients waiting for a container to start."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._pending: dict[str, list[_Pending]] = {}
        self._claimed: dict[str, list[_Pending]] = {}

    def socket_path(self, c: Container) -> str:
        return os.path.join(self.engine.containers.run_dir, c.id, "attach.sock")

    def connect(self, c: Container) -> MonitorStream:
        """A connection to C's monitor (OSError when there is none: C is not running)."""
        import socket

        sock = connect_unix(self.socket_path(c), socket.SOCK_SEQPACKET)
        tty = bool(c.config.get("Tty"))
        return MonitorStream(sock, tty, bool(c.config.get("StdinOnce")) and not tty)

    # -- the start's side ------------------------------------------------------------------

    def monitor_flags(self, c: Container) -> list[str]:
        """The monitor's flags for C: stdin, TTY, log rotation, the clients waiting."""
        from sampan.engine.logfile import limits

        flags = []
        if c.config.get("OpenStdin"):
            flags.append("--stdin")
        if c.config.get("Tty"):
            flags.append("--tty")
        size, files = limits((c.host_config.get("LogConfig") or {}).get("Config") or {})
        if size:
            flags += [f"--max-size={size}", f"--max-file={files}"]
        with self._lock:
            claimed = self._pending.pop(c.id, [])
            if claimed:
                self._claimed[c.id] = claimed
        if claimed:
            flags.append(f"--attach-first={len(claimed)}")
        return flags

    def connect_claimed(self, c: Container, monitor_pid: int) -> None:
        """Connect the clients claimed by ``monitor_flags`` to the monitor just launched."""
        import time

        with self._lock:
            claimed = self._claimed.pop(c.id, [])
        deadline = time.monotonic() + _CONNECT_TIMEOUT
        for entry in claimed:
            while True:
                try:
                    entry.stream = self.connect(c)
                    break
                except OSError:
                    alive = os.path.exists(f"/proc/{monitor_pid}")
                    if not alive or time.monotonic() > deadline:
                        break
                    time.sleep(0.001)
            entry.ready.set()

    # -- the API's side --------------------------------------------------------------------

    def reserve(self, c: Container, exits: int) -> _Pending | None:
        """Before answering a client that attaches to C not yet running: its place among the
        clients the next start connects (None when C runs, exited past EXITS, or is gone).
        Hand it to ``open``, or to ``release`` if the client never gets there."""
        with self.engine.containers.changed:
            if c.removed or c.exits > exits or (c.running and not c.starting):
                return None
            entry = _Pending()
            with self._lock:
                self._pending.setdefault(c.id, []).append(entry)
            return entry

    def release(self, c: Container, entry: _Pending | None) -> None:
        """Give up ENTRY: off the waiting list, its connection (if made) closed."""
        if entry is None:
            return
        with self._lock:
            waiting = self._pending.get(c.id, [])
            if entry in waiting:
                waiting.remove(entry)
        if entry.ready.is_set() and entry.stream is not None:
            entry.stream.close()

    def open(
        self, c: Container, exits: int, gone: Callable[[], bool], entry: _Pending | None = None
    ) -> MonitorStream | None:
        """A stream of C's stdio: now if it runs, else once it starts; None if C exits (past
        EXITS), is removed, or the client is GONE first.  ENTRY: from ``reserve``."""
        service = self.engine.containers
        while True:
            if entry is not None:
                outcome = self._await(c, exits, entry, gone)
                if outcome is not _UNCLAIMED:
                    return outcome  # type: ignore[return-value]
                entry = None
            with service.changed:
                if c.removed or c.exits > exits:
                    return None
                running = c.running and not c.starting
            if not running:
                entry = self.reserve(c, exits)
                continue
            try:
                return self.connect(c)
            except OSError:
                with service.changed:  # exiting: its monitor has closed the socket
                    if c.running and c.exits == exits:
                        service.changed.wait(0.05)

    def _await(
        self, c: Container, exits: int, entry: _Pending, gone: Callable[[], bool]
    ) -> MonitorStream | object | None:
        """ENTRY's connection once a start made it; _UNCLAIMED when C started without it
        (the start was under way when the client came): connect as to a running one."""
        while not entry.ready.wait(0.05):
            left = gone() or c.removed or c.exits > exits
            started = c.running and not c.starting
            if left or started:
                with self._lock:
                    waiting = self._pending.get(c.id, [])
                    if entry in waiting:  # not claimed
                        waiting.remove(entry)
                        return None if left else _UNCLAIMED
        if entry.stream is not None and gone():
            entry.stream.close()
            return None
        return entry.stream

    def resize(self, c: Container, height: int, width: int) -> None:
        """Resize C's TTY (nothing to do without one)."""
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")
        if not c.config.get("Tty"):
            return
        try:
            stream = self.connect(c)
        except OSError:
            raise Conflict(f"Container {c.id} is not running") from None
        try:
            stream.resize(height, width)
        finally:
            stream.close()
        self.engine.events.emit(
            "container", "resize", c.id, {**attributes(c), "height": str(height),
                                           "width": str(width)}
        )  # fmt: skip
