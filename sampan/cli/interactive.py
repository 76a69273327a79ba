"""The terminal side of attach and exec: stdin to the daemon, the stream back, as docker's CLI.

``pump`` copies this process's stdin to a hijacked connection and the
connection's stream to stdout/stderr in one poll loop (no threads): raw
bytes with a TTY, docker's multiplexed frames without.  With a TTY and a
terminal on stdin the terminal is in raw mode meanwhile -- restored on every
way out, SIGTERM and SIGHUP included -- its size is sent at the start and on
each SIGWINCH, and the detach keys typed end the stream (the daemon watches
for them too; seen here first, the CLI knows it detached).  At the end of
stdin the connection is half-closed, so the process sees its stdin end.

``SignalProxy`` is docker's --sig-proxy: without a TTY the signals this
process receives (INT, TERM, HUP, QUIT, USR1, USR2, ...) go to the container
through the kill API.  Only ``_signal``, ``select``, ``termios`` and ``tty``
are imported; ``sampan run`` without -i/-t imports none of them but
``_signal``.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal without its enum
import os

from sampan.api.client import ApiError, Client, DaemonUnreachable, Response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["SignalProxy", "Terminal", "pump", "terminal_size"]

PROXIED = (1, 2, 3, 10, 12, 14, 15)  # HUP INT QUIT USR1 USR2 ALRM TERM
_SIGWINCH = 28
_CHUNK = 32768
_DETACH_WAIT = 2000  # ms for the daemon to end the stream after the detach keys


def terminal_size() -> tuple[int, int] | None:
    """(rows, cols) of the terminal on stdout (or stdin), None without one."""
    import fcntl
    import termios

    for fd in (1, 0):
        if os.isatty(fd):
            try:
                data = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
            except OSError:
                continue
            rows, cols = int.from_bytes(data[0:2], "little"), int.from_bytes(data[2:4], "little")
            return rows, cols
    return None


class Terminal:
    """Raw mode on stdin's terminal while in use (when ON and stdin is a terminal)."""

    def __init__(self, on: bool) -> None:
        self.on = on and os.isatty(0)
        self._saved: list[Any] | None = None
        self._handlers: dict[int, object] = {}

    def __enter__(self) -> Terminal:
        if not self.on:
            return self
        import termios
        import tty

        self._saved = termios.tcgetattr(0)

        def leave(signum: int, _frame: object) -> None:
            raise SystemExit(128 + signum)

        for sig in (1, 15):  # HUP, TERM: leave through __exit__, which restores the terminal
            self._handlers[sig] = _signal.signal(sig, leave)
        tty.setraw(0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self._saved)
            self._saved = None
        for sig, handler in self._handlers.items():
            _signal.signal(sig, handler)
        self._handlers.clear()


class SignalProxy:
    """Forward the signals in PROXIED to container CID through the kill API (--sig-proxy)."""

    def __init__(self, client: Client, cid: str) -> None:
        self.client = client
        self.cid = cid
        self._old: dict[int, object] = {}

    def __enter__(self) -> SignalProxy:
        for sig in PROXIED:
            self._old[sig] = _signal.signal(sig, self._forward)
        return self

    def _forward(self, signum: int, _frame: object) -> None:
        try:
            self.client.request("POST", f"/containers/{self.cid}/kill", {"signal": str(signum)})
        except (ApiError, DaemonUnreachable):
            pass  # not running any more: its exit ends the stream

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            _signal.signal(sig, handler)
        self._old.clear()


class _Frames:
    """docker's multiplexed stream, fed as it arrives, written to stdout (1) and stderr (2)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> None:
        buf = self._buf + data
        while len(buf) >= 8:
            size = int.from_bytes(buf[4:8], "big")
            if len(buf) < 8 + size:
                break
            _write_all(2 if buf[0] == 2 else 1, buf[8 : 8 + size])
            buf = buf[8 + size :]
        self._buf = buf


def pump(
    response: Response,
    *,
    tty: bool,
    stdin: bool,
    keys: bytes,
    resize: Callable[[int, int], None] | None = None,
) -> bool:
    """Copy stdin to RESPONSE's connection and its stream out until it ends; True when
    the detach keys ended it.  RESIZE(rows, cols) is called now and on SIGWINCH (TTY)."""
    import select

    from sampan.api.detachkeys import Scanner

    conn = response.conn
    sock = conn.sock
    frames = None if tty else _Frames()
    scanner = Scanner(keys if tty else b"")
    old_winch = None
    if tty and resize is not None:

        def winch(_signum: int, _frame: object) -> None:
            size = terminal_size()
            if size:
                try:
                    resize(*size)
                except (ApiError, DaemonUnreachable):
                    pass

        old_winch = _signal.signal(_SIGWINCH, winch)
        winch(_SIGWINCH, None)
    detached = False
    reading = stdin
    try:
        pending = conn._buf  # what came with the response's head
        conn._buf = b""
        if pending:
            _output(pending, frames)
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        if reading:
            poller.register(0, select.POLLIN)
        while True:
            events = poller.poll(_DETACH_WAIT if detached else -1)
            if not events:
                return True  # detached; the daemon did not end the stream: leave anyway
            for fd, _ in events:
                if fd == 0:
                    data = os.read(0, _CHUNK)
                    if not data:
                        reading = False
                        poller.unregister(0)
                        rest = scanner.flush()
                        if rest:
                            sock.sendall(rest)
                        sock.shutdown(1)  # SHUT_WR: the end of the process's stdin
                        continue
                    data, detached = scanner.feed(data)
                    if detached:  # the daemon ends the stream on them: the process goes on
                        data += keys
                        reading = False
                        poller.unregister(0)
                    if data:
                        sock.sendall(data)
                else:
                    data = sock.recv(_CHUNK)
                    if not data:
                        return detached
                    _output(data, frames)
    except (BrokenPipeError, ConnectionResetError):
        return detached
    finally:
        if old_winch is not None:
            _signal.signal(_SIGWINCH, old_winch)
        conn.close()


def _output(data: bytes, frames: _Frames | None) -> None:
    if frames is None:
        _write_all(1, data)
    else:
        frames.feed(data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
