"""Terminals: hand a pty master to ``--console-socket``, or relay it for ``run``."""

from __future__ import annotations

import _socket
import os

from sampan.errors import InvalidArgument
from sampan.runtime.hooks import write_all


def send_console(socket_path: str, master_fd: int) -> None:
    """Send MASTER_FD over the unix socket at SOCKET_PATH (SCM_RIGHTS), as runc does."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        try:
            sock.connect(socket_path)
        except OSError as exc:
            raise InvalidArgument(f"--console-socket {socket_path}: {exc.strerror}") from None
        rights = master_fd.to_bytes(4, "little", signed=True)
        sock.sendmsg([b"/dev/ptmx"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    finally:
        sock.close()


def relay(master_fd: int) -> None:
    """Copy our stdin to the pty and the pty to our stdout until the pty closes.

    Our terminal (if stdin is one) is put in raw mode meanwhile and its size
    is copied to the pty.  Returns when the container's side has hung up.
    """
    import select
    import termios
    import tty

    stdin = 0
    saved = None
    if os.isatty(stdin):
        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)
        try:
            import fcntl

            size = fcntl.ioctl(stdin, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master_fd, termios.TIOCSWINSZ, size)
        except OSError:
            pass
    watched = [master_fd, stdin]
    try:
        while True:
            ready, _, _ = select.select(watched, [], [])
            if master_fd in ready:
                try:
                    data = os.read(master_fd, 65536)
                except OSError:  # EIO: the last slave fd closed
                    data = b""
                if not data:
                    return
                write_all(1, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if data:
                    write_all(master_fd, data)
                else:
                    watched.remove(stdin)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
