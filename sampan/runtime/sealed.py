"""Re-exec the runtime from a sealed, in-memory copy of its interpreter.

A process that enters a container's pid namespace is visible to the
container's processes.  Its /proc/PID/exe is this runtime's interpreter --
the host's Python.  Being non-dumpable keeps ordinary containers from
opening it; a container holding CAP_SYS_PTRACE is not stopped by that, and
could keep the file open and later write to it (the CVE-2019-5736 class).
So, where such a container is about, the helper that enters it first
re-execs itself from a memfd copy of the interpreter, sealed against
writes: what /proc/PID/exe then reaches is that copy, which nothing can
modify.  It costs a copy of the interpreter and a second start (~30 ms),
so the runtime does it only when needed (see ``needed``).

    child of the runtime:  reexec(module, function, args, keep_fds)
        -> execve(/proc/self/fd/<sealed memfd>, python -I -S -c "...main()")
    the new interpreter:   main() reads args from an inherited memfd and calls
                           module.function(args)
"""

from __future__ import annotations

import os

from sampan import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

CAP_SYS_PTRACE = "CAP_SYS_PTRACE"
_SEALS = ("F_SEAL_SEAL", "F_SEAL_SHRINK", "F_SEAL_GROW", "F_SEAL_WRITE")


def needed(*processes: dict[str, Any] | None) -> bool:
    """True when any of these processes may hold CAP_SYS_PTRACE (its bounding set allows it)."""
    for process in processes:
        caps = (process or {}).get("capabilities") or {}
        if CAP_SYS_PTRACE in caps.get("bounding", []):
            return True
    return False


def pack_seccomp(seccomp: tuple[bytes, int] | None) -> list[Any] | None:
    """A compiled seccomp program (BPF, flags) as JSON for ``reexec``'s args."""
    if seccomp is None:
        return None
    import binascii

    return [binascii.b2a_base64(seccomp[0]).decode(), seccomp[1]]


def unpack_seccomp(packed: list[Any] | None) -> tuple[bytes, int] | None:
    if packed is None:
        return None
    import binascii

    return binascii.a2b_base64(packed[0]), int(packed[1])


def _sealed_copy_of_interpreter() -> int:
    import fcntl

    src = os.open("/proc/self/exe", os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = os.memfd_create("sampan-runtime", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        size = os.fstat(src).st_size
        done = 0
        while done < size:
            sent = os.sendfile(fd, src, done, size - done)
            if sent == 0:
                raise OSError(5, "short copy of the interpreter")
            done += sent
    finally:
        os.close(src)
    seals = 0
    for name in _SEALS:
        seals |= getattr(fcntl, name)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


def reexec(module: str, function: str, args: dict[str, Any], keep_fds: list[int]) -> NoReturn:
    """Become a sealed copy of this interpreter running ``module.function(args)``.

    ``args`` must be JSON; the fds in ``keep_fds`` stay open across the exec
    (their numbers can go in ``args``).  Raises if the exec cannot be made.
    """
    exe = _sealed_copy_of_interpreter()
    payload = os.memfd_create("sampan-args", 0)
    os.write(payload, _json.dumps({"module": module, "function": function, "args": args}).encode())
    os.lseek(payload, 0, os.SEEK_SET)
    for fd in keep_fds:
        os.set_inheritable(fd, True)
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        f"import sys; sys.path.insert(0, {src!r}); from sampan.runtime.sealed import main; main()"
    )
    os.execve(f"/proc/self/fd/{exe}", ["sampan-runtime", "-I", "-S", "-c", code, str(payload)], {})


def main() -> NoReturn:
    """Entry point in the re-exec'd interpreter (see ``reexec``)."""
    import sys

    fd = int(sys.argv[1])
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    call = _json.loads(b"".join(chunks))
    target = __import__(call["module"], fromlist=[call["function"]])
    getattr(target, call["function"])(call["args"])
    os._exit(0)  # the function never returns; be sure nothing else runs here
