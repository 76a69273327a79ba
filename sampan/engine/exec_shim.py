"""One exec's parent: runs a process in a running container and waits for it.

    python -I -S .../exec_shim.py RUNTIME_ROOT ID PROCESS_JSON PID_FILE STATUS_FD [--tty]

The daemon (sampan/engine/exec.py) spawns it with the exec's stdio on fds
0-2 (pipes, or /dev/null) and one end of a unix socket pair on STATUS_FD.
It becomes a child subreaper and has sampan.runtime's exec start the
process described by PROCESS_JSON (an OCI ``process``), detached from the
runtime's own waiting, so that it can report before it waits:

    ok PID\\n          the process runs (with --tty, the pty master rides along, SCM_RIGHTS)
    error MESSAGE\\n   it could not be started
    exit CODE\\n       (after ok) the process ended with CODE (128+N when signal N killed it)

Then it exits with that code too.  Not a fork of the daemon, which is
multi-threaded (a child forked from it could inherit a lock another thread
held): the daemon's fork server (zygote.py) forks it, with this module
preloaded; it is spawned as a script of its own only without one (~35 ms
more: an interpreter's start and imports).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # -I leaves the script's directory off sys.path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _console_listener(path: str) -> object:
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(1)
    return sock


def _receive_fd(listener: object) -> int:
    """The pty master the runtime sent to our console socket."""
    import _socket

    assert isinstance(listener, _socket.socket)
    fd, _ = listener._accept()  # type: ignore[attr-defined]
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
    try:
        _, ancillary, _, _ = conn.recvmsg(64, _socket.CMSG_SPACE(4))
    finally:
        conn.close()
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            return int.from_bytes(data[:4], sys.byteorder, signed=True)
    raise OSError("the runtime sent no pty master")


def main(argv: list[str]) -> int:
    import _socket

    root, cid, process_path, pid_file, status_text = argv[:5]
    tty = "--tty" in argv[5:]
    status = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, int(status_text))
    from sampan.errors import describe
    from sampan.linux.syscalls import set_child_subreaper

    listener = None
    dir_fd = os.open(os.path.dirname(pid_file), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    console = f"/proc/self/fd/{dir_fd}/{os.path.basename(pid_file)}.console"  # short
    try:
        set_child_subreaper(True)
        from sampan.runtime.exec import exec_process

        if tty:
            listener = _console_listener(console)
        opts = {"process": process_path, "tty": tty, "env": [], "cwd": "", "user": "",
                "additional_gids": [], "cap": [], "no_new_privs": False, "process_label": "",
                "apparmor": "", "detach": True, "console_socket": console if tty else None,
                "pid_file": pid_file, "preserve_fds": 0}  # fmt: skip
        exec_process(root, cid, [], opts)
        with open(pid_file) as f:
            pid = int(f.read().strip())
        master = _receive_fd(listener) if listener is not None else -1
    except BaseException as exc:
        message = " ".join(describe(exc).split())
        status.sendall(f"error {message}\n".encode())
        return 255
    finally:
        if listener is not None:
            listener.close()  # type: ignore[attr-defined]
            try:
                os.unlink(console)
            except OSError:
                pass
    line = f"ok {pid}\n".encode()
    if master >= 0:
        rights = master.to_bytes(4, sys.byteorder, signed=True)
        status.sendmsg([line], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        os.close(master)
    else:
        status.sendall(line)
    from sampan.runtime.run import _wait

    code = _wait(pid)
    try:
        status.sendall(f"exit {code}\n".encode())  # a forked shim is not the daemon's child
    except OSError:
        pass  # the daemon is gone; a restarted one does not know this exec
    status.close()
    return code


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)
