"""The parent <-> child handshake of ``create`` and ``exec``.

One SOCK_SEQPACKET socketpair carries a closed set of messages, one JSON
object per packet, with file descriptors alongside when a message has them:

    child -> parent                         parent -> child
    {"t": "pid", "pid": N}                  {"t": "ack", "state": {...}}
    {"t": "idmap"}       (writes maps)      {"t": "go"}   (create may finish)
    {"t": "hooks"}       (createRuntime)
    {"t": "cgroup"}      (acked once the child is in the container's cgroup)
    {"t": "console"} + [pty master fd]
    {"t": "ready"}
    {"t": "error", "msg": "..."}

Both ends are close-on-exec, so when the child execs the user's program
the parent reads end-of-file: that is how ``exec -d`` knows it worked.
A child reports its own failure as an ``error`` message, so the parent can
print the real cause (youki's and crun's sync sockets do the same).
"""

from __future__ import annotations

import _socket
import os

from sampan import _json
from sampan.errors import SampanError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MESSAGES = frozenset({"pid", "idmap", "hooks", "cgroup", "console", "ready", "error", "ack", "go"})
_MAX = 1 << 20


class ChildFailed(SampanError):
    """The child reported an error, or died before finishing the handshake."""


class Channel:
    """One end of the handshake socketpair."""

    __slots__ = ("sock",)

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC, 0)
        return cls(_socket.socket(fileno=a.detach())), cls(_socket.socket(fileno=b.detach()))

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, kind: str, fds: list[int] | None = None, **fields: Any) -> None:
        assert kind in MESSAGES, kind
        fields["t"] = kind
        data = _json.dumps(fields).encode()
        if fds:
            rights = b"".join(fd.to_bytes(4, "little", signed=True) for fd in fds)
            self.sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        else:
            self.sock.send(data)

    def recv(self) -> tuple[dict[str, Any] | None, list[int]]:
        """The next message and any fds it carried; (None, []) at end of file."""
        data, ancdata, _flags, _addr = self.sock.recvmsg(
            _MAX, _socket.CMSG_SPACE(16 * 4), _socket.MSG_CMSG_CLOEXEC
        )
        fds: list[int] = []
        for level, kind, payload in ancdata:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(
                    int.from_bytes(payload[i : i + 4], "little", signed=True)
                    for i in range(0, usable, 4)
                )
        if not data:
            return None, fds
        try:
            msg = _json.loads(data)
        except ValueError:
            raise ChildFailed(f"protocol error: unexpected message {data[:80]!r}") from None
        if not isinstance(msg, dict) or msg.get("t") not in MESSAGES:
            raise ChildFailed(f"protocol error: unexpected message {data[:80]!r}")
        return msg, fds

    def peek_kind(self) -> str | None:
        """The kind of the message waiting to be received, without waiting or receiving it
        (None when there is none yet, or at end of file)."""
        try:
            data = self.sock.recv(_MAX, _socket.MSG_PEEK | _socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        try:
            msg = _json.loads(data) if data else None
        except ValueError:
            return None
        kind = msg.get("t") if isinstance(msg, dict) else None
        return kind if isinstance(kind, str) else None

    def expect(self, kind: str) -> dict[str, Any]:
        """Receive one message that must be *kind* (an ``error`` raises ChildFailed)."""
        msg, fds = self.recv()
        for fd in fds:
            os.close(fd)
        if msg is None:
            raise ChildFailed(f"the other side exited while we waited for {kind!r}")
        if msg["t"] == "error":
            raise ChildFailed(msg.get("msg", "unknown error"))
        if msg["t"] != kind:
            raise ChildFailed(f"protocol error: expected {kind!r}, got {msg['t']!r}")
        return msg

    def close(self) -> None:
        self.sock.close()
