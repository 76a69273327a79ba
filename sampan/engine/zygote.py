"""A fork server: a warm, single-threaded process the daemon asks to fork monitors and exec shims.

Starting a monitor as a new interpreter costs ~15 ms of Python start-up and
~10 ms of imports (the runtime, cgroups, seccomp) before it can even begin to
create the container; an exec's shim as much.  The daemon cannot fork them
itself: it is multi-threaded, and a child forked from it may inherit a lock
another thread held.  So the daemon starts this process once, at its own
start:

    python -I -S .../zygote.py SOCKET PARENT_FD

It imports everything its children need, then serves SOCKET (a
SOCK_SEQPACKET unix socket, 0600).  Each request is one message -- JSON
``{"entry": "monitor"|"exec"|"runtime", "argv": [...]}`` -- carrying descriptors
(SCM_RIGHTS): the child's stdin, stdout and stderr, then any others, whose
numbers replace ``{fd0}``, ``{fd1}``... in argv.  The server forks; the
child starts a session of its own, puts the three on 0-2, restores the
signal dispositions a fresh interpreter has, names itself (/proc/PID/comm:
``sampan-monitor``, ``sampan-exec`` or ``sampan-probe``; its cmdline stays
the server's) and runs the entry's ``main(argv)`` (sampan/engine/monitor.py,
exec_shim.py, or the runtime's CLI for health probes, which then writes
``exit CODE`` on its first extra descriptor).
The answer is the child's pid.

Children are not waited for here (SIGCHLD is ignored, so the kernel reaps
them): the daemon watches a monitor through its pidfd, as it watches the
monitors it adopts after a restart, and an exec shim reports its exit code
on its status socket.  PARENT_FD is the read end of a pipe whose write end
only the daemon holds: when it reads end-of-file (the daemon exited, even by
SIGKILL) the server removes SOCKET and exits; the children, in sessions of
their own, go on.

Forked children share the server's pages until they write to them, so each
costs less private memory than an interpreter of its own.

    zygote = Zygote.start(run_dir)                                  # in the daemon
    pid = zygote.spawn("monitor", [..., fd_arg(0), ...], (null, log, log), [status_fd])
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # -I leaves the script's directory off sys.path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess

__all__ = ["ENTRIES", "MONITOR_COMM", "Zygote", "fd_arg"]

MONITOR_COMM = "sampan-monitor"
# entry -> (the module whose main(argv) the child runs, its /proc/PID/comm)
ENTRIES = {
    "monitor": ("sampan.engine.monitor", MONITOR_COMM),
    "exec": ("sampan.engine.exec_shim", "sampan-exec"),
    # the runtime's CLI (health probes run `exec`); it reports ``exit CODE`` on its fd0
    "runtime": ("sampan.cli.runtime", "sampan-probe"),
}
_REPORTS = {"runtime"}
_SCRIPT = os.path.abspath(__file__)
_MAX_REQUEST = 65536
_MAX_FDS = 8
_PRELOAD = (
    "sampan.engine.monitor", "sampan.engine.exec_shim", "sampan.runtime.exec",
    "sampan.cli.runtime",
    "sampan.runtime.lifecycle", "sampan.runtime.init",
    "sampan.runtime.process", "sampan.runtime.namespaces", "sampan.runtime.rootfs",
    "sampan.runtime.cgroup", "sampan.runtime.console", "sampan.cgroups", "sampan.cgroups.v1",
    "sampan.cgroups.v2", "sampan.linux.seccomp", "sampan.linux.syscalls", "sampan._json",
    "select", "fcntl", "termios", "resource",
)  # fmt: skip


def fd_arg(i: int) -> str:
    """The placeholder in argv for the I-th descriptor after stdio."""
    return "{fd" + str(i) + "}"


# -- the daemon's side ---------------------------------------------------------------------


class Zygote:
    """The daemon's handle on its fork server."""

    def __init__(self, path: str, proc: subprocess.Popen[bytes], parent_w: int) -> None:
        self.path = path
        self.proc = proc
        self._parent_w = parent_w

    @classmethod
    def start(cls, run_dir: str) -> Zygote:
        """Start the server with its socket in RUN_DIR (``spawn`` waits for it to answer)."""
        import subprocess

        path = os.path.join(run_dir, "zygote.sock")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        parent_r, parent_w = os.pipe()
        os.set_inheritable(parent_r, True)
        argv = [sys.executable, "-I", "-S", _SCRIPT, path, str(parent_r)]
        try:
            with open(os.path.join(run_dir, "zygote.log"), "ab") as log:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    pass_fds=(parent_r,), start_new_session=True, cwd="/",
                )  # fmt: skip
        except BaseException:
            os.close(parent_w)
            raise
        finally:
            os.close(parent_r)
        os.set_inheritable(parent_w, False)
        return cls(path, proc, parent_w)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _ready(self, timeout: float = 10.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while not os.path.exists(self.path):
            if not self.alive or time.monotonic() > deadline:
                raise OSError("the monitor fork server did not start (see zygote.log)")
            time.sleep(0.002)

    def spawn(
        self, entry: str, argv: list[str], stdio: tuple[int, int, int], fds: list[int]
    ) -> int:
        """Fork a child running ENTRY's ``main(ARGV)`` with STDIO on 0-2; its pid.

        ARGV holds ``fd_arg(i)`` where the number of FDS[i] (as the child has it) goes.
        """
        from sampan import _json

        self._ready()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.settimeout(10.0)
            sock.connect(self.path)
            sent = (*stdio, *fds)
            rights = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in sent)
            request = _json.dumps({"entry": entry, "argv": argv}).encode()
            sock.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
            answer = sock.recv(64)
        finally:
            sock.close()
        word, _, rest = answer.decode(errors="replace").partition(" ")
        if word != "ok" or not rest.strip().isdigit():
            raise OSError(f"the fork server failed: {answer.decode(errors='replace')}")
        return int(rest)

    def close(self) -> None:
        """Stop the server (monitors it forked go on)."""
        os.close(self._parent_w)
        try:
            self.proc.wait(5)
        except Exception:
            self.proc.kill()
            self.proc.wait()


# -- the server ----------------------------------------------------------------------------


def _child(entry: str, argv: list[str], fds: list[int], closing: list[int]) -> None:
    """In the forked child: become ENTRY with FDS[0:3] as stdio (never returns)."""
    import signal

    code = 1
    try:
        for fd in closing:
            os.close(fd)
        os.setsid()
        module, comm = ENTRIES[entry]
        with open("/proc/self/comm", "w") as f:
            f.write(comm)  # ps and tests tell the children from the server by it
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as Python starts: EPIPE, not death
        extra = fds[3:]
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)  # dup2 clears close-on-exec, as a spawned process has them
        for fd in set(fds[:3]):
            if fd > 2 and fd not in extra:
                os.close(fd)
        import gc

        gc.enable()
        import importlib

        main = importlib.import_module(module).main
        names = {fd_arg(i): str(fd) for i, fd in enumerate(extra)}
        code = main([names.get(a, a) for a in argv])
        if entry in _REPORTS and extra:
            os.write(extra[0], f"exit {code}\n".encode())  # not the daemon's child
    except BaseException as exc:
        try:
            os.write(2, f"{entry}: {exc!r}\n".encode())
        except OSError:
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _serve_one(conn: socket.socket, closing: list[int]) -> None:
    from sampan import _json

    fds: list[int] = []
    try:
        data, ancillary, _, _ = conn.recvmsg(_MAX_REQUEST, socket.CMSG_SPACE(4 * _MAX_FDS))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += [int.from_bytes(payload[i : i + 4], sys.byteorder, signed=True)
                        for i in range(0, len(payload) - len(payload) % 4, 4)]  # fmt: skip
        request = _json.loads(data)
        entry = request.get("entry") if isinstance(request, dict) else None
        argv = request.get("argv") if isinstance(request, dict) else None
        if (
            entry not in ENTRIES
            or len(fds) < 3
            or not isinstance(argv, list)
            or not all(isinstance(a, str) for a in argv)
        ):
            conn.send(b"error bad request")
            return
        pid = os.fork()
        if pid == 0:
            _child(entry, argv, fds, [*closing, conn.fileno()])
        conn.send(f"ok {pid}".encode())
    except (OSError, ValueError) as exc:
        try:
            conn.send(f"error {exc}".encode())
        except OSError:
            pass
    finally:
        for fd in fds:
            os.close(fd)


def serve(path: str, parent_fd: int) -> None:
    import gc
    import select
    import signal

    for name in _PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass  # optional (libseccomp); the monitor imports what it needs
    try:
        from sampan.linux import seccomp

        seccomp.preload()  # every container has a seccomp profile: load it once, here
    except (ImportError, OSError, AttributeError):
        pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the monitors
    gc.collect()
    gc.freeze()  # keep the shared pages shared after fork
    gc.disable()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old = os.umask(0o177)
    try:
        listener.bind(path + ".tmp")
    finally:
        os.umask(old)
    listener.listen(64)
    os.rename(path + ".tmp", path)  # appears only once it accepts
    poller = select.poll()
    poller.register(listener.fileno(), select.POLLIN)
    poller.register(parent_fd, select.POLLIN)
    try:
        while True:
            for fd, _ in poller.poll():
                if fd == parent_fd:
                    return
                conn, _ = listener.accept()
                try:
                    _serve_one(conn, [listener.fileno(), parent_fd])
                finally:
                    conn.close()
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
    os._exit(0)
