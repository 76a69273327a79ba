"""``sampan daemon``: the engine, serving the Docker Engine API on a unix socket.

    sampan [--root DIR] daemon [--exec-root DIR] [-H unix://PATH] [--config-file FILE] [-D]

One daemon per root: ROOT/daemon.lock is held (flock) for the daemon's
life and names its pid, so a second daemon on the same root is refused
with that pid; EXEC_ROOT/sampan.pid is docker's pid file.  A socket left by
a daemon that died is removed; one that still answers is refused.  The
socket is 0660, owned by root.  SIGTERM and SIGINT stop serving, remove the
socket and the pid file, and exit 0.

Imports are lazy: the server and the engine load once the flags are parsed.
"""

from __future__ import annotations

import os
import sys

from sampan.cli.args import Flag, parse
from sampan.cli.main import Context, Usage
from sampan.errors import Conflict, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sampan.api.server import ApiServer
    from sampan.engine.config import DaemonConfig

DEFAULT_EXEC_ROOT = "/run/sampan"
DEFAULT_HOST = "unix:///run/sampan/sampan.sock"

FLAGS = [
    Flag("--exec-root", "str", f"root of the daemon's runtime state (default {DEFAULT_EXEC_ROOT})"),
    Flag("--host,-H", "list", f"socket to listen on (default {DEFAULT_HOST})"),
    Flag("--config-file", "str", "daemon configuration file (default /etc/sampan/daemon.json)"),
    Flag("--debug,-D", "bool", "log every request"),
    Flag("--bridge,-b", "str", "the default bridge's interface (default sampan0), or none"),
    Flag("--bip", "str", "the default bridge's address and prefix (A.B.C.D/N)"),
    Flag("--fixed-cidr", "str", "the range of the default bridge containers get addresses from"),
    Flag("--dns", "list", "DNS servers for containers and the embedded DNS server"),
    Flag("--help,-h", "bool", "show help"),
]


def socket_path(host: str) -> str:
    """The path of a ``unix://PATH`` host; anything else is refused."""
    scheme, sep, rest = host.partition("://")
    if not sep:
        raise InvalidArgument(f"-H {host}: expected unix:///path/to/socket")
    if scheme != "unix":
        raise InvalidArgument(
            f"-H {host}: only unix sockets are served (a {scheme} listener would expose "
            "root-equivalent access without TLS); use unix:///path"
        )
    if not rest.startswith("/"):
        raise InvalidArgument(f"-H {host}: the socket path must be absolute")
    return rest


def _config(path: str | None) -> DaemonConfig:
    from sampan.engine.config import load_config

    if path is not None and not os.path.exists(path):
        raise InvalidArgument(f"--config-file {path}: no such file")
    return load_config(path)


def _lock_root(root: str) -> int:
    """Hold ROOT/daemon.lock (with our pid in it) or raise Conflict naming the holder."""
    import fcntl

    os.makedirs(root, mode=0o711, exist_ok=True)
    path = os.path.join(root, "daemon.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise Conflict(f"another sampan daemon (pid {holder}) is running on root {root}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _clear_stale_socket(path: str) -> None:
    """Remove a socket nobody answers on; refuse one that answers."""
    import socket
    import stat

    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise InvalidArgument(f"{path}: exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # stale: its daemon is gone
        return
    finally:
        probe.close()
    raise Conflict(f"{path}: another daemon is listening on this socket")


def _write_pid_file(exec_root: str) -> str:
    os.makedirs(exec_root, mode=0o711, exist_ok=True)
    path = os.path.join(exec_root, "sampan.pid")
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)
    return path


def _log(line: str) -> None:
    import time

    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} info: {line}\n")
    sys.stderr.flush()


def cmd_daemon(ctx: Context, argv: list[str]) -> int:
    opts, args = parse(FLAGS, argv, stop_at_positional=False)
    if opts["help"]:
        from sampan.cli.args import usage

        print("Usage:  sampan daemon [OPTIONS]\n\nOptions:\n" + usage(FLAGS))
        return 0
    if args:
        raise Usage('"daemon" accepts no arguments')
    config = _config(opts["config_file"])
    hosts = list(opts["host"]) or list(config.hosts) or [DEFAULT_HOST]
    if len(hosts) > 1:
        raise InvalidArgument(f"-H: one socket is served, {len(hosts)} were given")
    path = socket_path(hosts[0])
    debug = bool(opts["debug"] or ctx.debug or config.debug)
    flags = {"debug": debug, "bridge": opts["bridge"], "bip": opts["bip"],
             "fixed_cidr": opts["fixed_cidr"], "dns": tuple(opts["dns"]) or None}  # fmt: skip
    changes = {k: v for k, v in flags.items() if v is not None and v != getattr(config, k)}
    if changes:
        config = config.replace(**changes)
    exec_root = os.path.abspath(opts["exec_root"] or DEFAULT_EXEC_ROOT)
    root = os.path.abspath(ctx.root)

    lock_fd = _lock_root(root)
    pid_file = ""
    server = None
    engine = None
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        _clear_stale_socket(path)
        pid_file = _write_pid_file(exec_root)
        from sampan.api.router import make_router
        from sampan.api.server import ApiServer
        from sampan.engine.daemon import Engine

        engine = Engine(root, exec_root, config)
        server = ApiServer(engine, path, make_router(), debug=debug)
        _serve(server, path, root)
    finally:
        if server is not None:
            server.server_close()
            _unlink(path)
        if engine is not None:
            engine.close()
        if pid_file:
            _unlink(pid_file)
        os.close(lock_fd)
    _log("daemon stopped")
    return 0


def _serve(server: ApiServer, path: str, root: str) -> None:
    import signal
    import threading

    def stop(signum: int, frame: object) -> None:
        _log(f"received {signal.Signals(signum).name}: shutting down")
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _log(f"API listening on unix://{path} (root {root}, pid {os.getpid()})")
    server.serve_forever(poll_interval=0.5)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
