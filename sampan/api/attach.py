"""Attach and resize (/containers/{id}/attach, /containers/{id}/resize), and the stream pump
that attach and exec share.

An attach takes over its connection (``101 UPGRADED`` with ``Upgrade: tcp``
asked, else a raw ``200``) and then speaks docker's stream: without a TTY
each chunk of output is framed (8 bytes: stream 1 or 2, three zeros, a
big-endian length; then the bytes), with one the bytes are raw.  What the
client writes is the process's stdin.  The output comes live from the
container's monitor (sampan.engine.attach); ``logs=1`` first replays the
json-file log.  A client that attaches before ``start`` (``docker run``)
waits, connected, for the start, and misses nothing.

``pump`` moves the bytes: a thread reads the client (stdin) and, with a
TTY, watches it for the detach keys (sampan.api.detachkeys; without a TTY
dockerd passes them on as data, and so does sampan); the request's thread copies
the output.  The stream ends when the process's output does (an exec: once
its exit code is recorded, since the client inspects it next), on a
detach, or when the client hangs up -- then ``Stream.client_gone`` (an exec
is killed).
"""

from __future__ import annotations

import threading

from sampan.api.containers import frame
from sampan.api.detachkeys import Scanner, parse
from sampan.api.errors import BadRequest
from sampan.engine.attach import GONE
from sampan.engine.lifecycle import attributes

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

    from sampan.api.router import Router
    from sampan.api.server import Request
    from sampan.engine.attach import Stream

__all__ = ["add_routes", "hijack", "pump"]

_CHUNK = 32768
_NAMES = {1: "stdout", 2: "stderr"}


def add_routes(router: Router) -> None:
    router.add("POST", "/containers/{id}/attach", attach)
    router.add("POST", "/containers/{id}/resize", resize)


def hijack(request: Request) -> socket.socket:
    """Take the connection: 101 when the client asked to upgrade, else 200."""
    upgrade = "upgrade" in request.headers.get("Connection", "").lower()
    return request.hijack(101 if upgrade else 200)


def size_params(request: Request) -> tuple[int, int]:
    """The h and w query parameters of a resize."""
    height, width = request.query_int("h"), request.query_int("w")
    if not 0 <= height < 65536 or not 0 <= width < 65536:
        raise BadRequest(f"resize: invalid size {height}x{width}")
    return height, width


def pump(
    request: Request,
    sock: socket.socket,
    stream: Stream,
    *,
    stdin: bool,
    want: set[int],
    keys: bytes,
) -> str:
    """Copy STREAM's output (the streams in WANT) to the client and, with STDIN, the client's
    bytes to it; "end", "detach" or "gone"."""
    rfile = request._handler.rfile
    scanner = Scanner(keys if stream.tty else b"")  # dockerd looks for them with a TTY only
    outcome = ["end"]
    finished = threading.Event()

    def read_stdin() -> None:
        try:
            while not finished.is_set():
                data = rfile.read1(_CHUNK)
                if finished.is_set():
                    return
                if not data:
                    stream.write(scanner.flush())
                    stream.end_of_input()
                    return
                data, detached = scanner.feed(data)
                if data:
                    stream.write(data)
                if detached:
                    outcome[0] = "detach"
                    stream.interrupt()
                    return
        except (OSError, ValueError):
            return  # the connection is gone: the output side notices

    reader = None
    if stdin:
        reader = threading.Thread(target=read_stdin, name="attach-stdin", daemon=True)
        reader.start()
    try:
        while True:
            item = stream.read(sock.fileno())
            if item is None:
                break
            if item == GONE:
                outcome[0] = "gone"
                break
            kind, data = item
            if kind not in want or not data:
                continue
            try:
                sock.sendall(data if stream.tty else frame(_NAMES[kind], data))
            except OSError:
                outcome[0] = "gone"
                break
        if outcome[0] == "gone":
            stream.client_gone()
        elif outcome[0] == "end":
            stream.finish()
        finished.set()
        for how in (1, 0):  # SHUT_WR: the client sees the end; SHUT_RD wakes the reader
            try:
                sock.shutdown(how)
            except OSError:
                pass
        if reader is not None:
            reader.join(5.0)
    finally:
        finished.set()
        stream.close()
    return outcome[0]


def attach(request: Request) -> None:
    engine = request.engine
    c = engine.containers.get(request.vars["id"])
    keys = parse(request.query("detachKeys"))
    if not request.flag("stream") and not request.flag("logs"):
        raise BadRequest("attach: one of stream or logs is required")
    tty = bool(c.config.get("Tty"))
    use_stdin = request.flag("stdin") and bool(c.config.get("OpenStdin"))
    want = {n for n, name in _NAMES.items() if request.flag(name)}
    exits = c.exits
    # A place among the clients the next start connects, taken before the answer: the
    # docker CLI starts the container as soon as it has read it.
    entry = engine.attach.reserve(c, exits) if request.flag("stream") else None

    def gone() -> bool:
        return request.client_gone(half_close=False)

    try:
        sock = hijack(request)
        stream = None
        if request.flag("stream"):
            stream = engine.attach.open(c, exits, gone, entry)
            entry = None
        if request.flag("logs"):
            _replay(engine.containers.log_path(c), sock, want, tty)
        if stream is None:
            sock.shutdown(1)
            return
        if use_stdin and c.config.get("StdinOnce") and not tty:
            stream.stdin_once()
        engine.events.emit("container", "attach", c.id, attributes(c))
        outcome = pump(request, sock, stream, stdin=use_stdin, want=want, keys=keys)
        if outcome == "detach":
            engine.events.emit("container", "detach", c.id, attributes(c))
    except OSError:
        pass  # the client went away
    finally:
        engine.attach.release(c, entry)


def _replay(path: str, sock: socket.socket, want: set[int], tty: bool) -> None:
    from sampan.engine.logfile import LogReader

    reader = LogReader(path)
    try:
        for name, _, data in reader.entries():
            kind = 2 if name == "stderr" else 1
            if kind in want:
                sock.sendall(data if tty else frame(name, data))
    finally:
        reader.close()


def resize(request: Request) -> None:
    engine = request.engine
    c = engine.containers.get(request.vars["id"])
    height, width = size_params(request)
    engine.attach.resize(c, height, width)
    request.send(200)
