"""nftables through libnftables (``libnftables.so.1``), in process, by ctypes.

The firewall changes rules on every container start and stop; spawning
``nft`` would cost a process (milliseconds) each time, in-process it is
~0.3 ms.  libnftables is the same code ``nft`` runs: one call takes a script
in nft syntax, sends it to the kernel as ONE netlink batch (all or nothing)
and leaves what it printed in two buffers -- output (listings, JSON with
``json=True``) and errors -- which ``Nft.run`` reads after every call.  The
script is handed over as a memfd rather than a buffer only so that errors
name the right line (libnftables 1.0.6 quotes a buffer's first line).

    nft = Nft()
    nft.run("add table ip sampan")
    text = nft.run("list table ip sampan", json=True)     # '{"nftables": [...]}'

Neither ctypes nor the library is loaded before the first ``run``.  The
context (and its netlink socket) is made then and kept: it belongs to the
network namespace of the thread that made it, so an ``Nft`` made in one
namespace keeps acting on that namespace.  A context is not thread-safe;
``run`` holds a lock.
"""

from __future__ import annotations

import _thread
import os

from sampan.errors import SampanError

__all__ = ["Nft", "NftError"]

LIBRARY = "libnftables.so.1"
OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON
_MAX_MESSAGE = 400


class NftError(SampanError):
    """A script libnftables refused: the message names the failing command and why.

    ``detail`` keeps libnftables' full error text (with its caret markers).
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def error_message(text: str, script: str = "") -> str:
    """libnftables' error buffer as one line: each error with the command it is about.

    An error located in the script reads ``FILE:LINE:COLUMNS: Error: WHAT``
    followed by the line and carets; the command is taken from SCRIPT's LINE.

    >>> error_message("/proc/self/fd/5:2:9-12: Error: No such file\\n...", "a\\nlist x")
    'No such file (in: list x)'
    """
    commands = script.splitlines()
    found = []
    for line in text.splitlines():
        at = line.find("Error: ")
        if at < 0:
            continue
        what = line[at + len("Error: ") :].strip()
        where = line[:at].rstrip(": ").split(":")
        if len(where) >= 3 and where[-2].isdigit() and 0 < int(where[-2]) <= len(commands):
            what = f"{what} (in: {commands[int(where[-2]) - 1].strip()})"
        found.append(what)
    message = "; ".join(found) or " ".join(s.strip() for s in text.splitlines() if s.strip())
    message = message or "failed"
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return message


class _Lib:
    """The library's functions with their C signatures (loaded once per process)."""

    def __init__(self) -> None:
        import ctypes

        try:
            lib = ctypes.CDLL(LIBRARY, use_errno=True)
        except OSError as exc:
            raise NftError(f"nftables: cannot load {LIBRARY}: {exc}") from None
        ptr, cint, uint, cstr = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_char_p
        signatures: dict[str, tuple[object, list[object]]] = {
            "nft_ctx_new": (ptr, [uint]),
            "nft_ctx_free": (None, [ptr]),
            "nft_ctx_buffer_output": (cint, [ptr]),
            "nft_ctx_buffer_error": (cint, [ptr]),
            "nft_ctx_get_output_buffer": (cstr, [ptr]),
            "nft_ctx_get_error_buffer": (cstr, [ptr]),
            "nft_ctx_output_get_flags": (uint, [ptr]),
            "nft_ctx_output_set_flags": (None, [ptr, uint]),
            "nft_run_cmd_from_filename": (cint, [ptr, cstr]),
        }
        for name, (restype, argtypes) in signatures.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        self.lib = lib


_LIB: _Lib | None = None


def _library() -> _Lib:
    global _LIB
    if _LIB is None:
        _LIB = _Lib()
    return _LIB


class Nft:
    """One cached libnftables context; ``run`` applies a script atomically."""

    def __init__(self) -> None:
        self._ctx: int | None = None
        self._flags = 0
        self._lock = _thread.allocate_lock()

    def _context(self, lib: _Lib) -> int:
        if self._ctx is None:
            ctx = lib.lib.nft_ctx_new(0)  # NFT_CTX_DEFAULT
            if not ctx:
                raise NftError("nftables: nft_ctx_new failed")
            if lib.lib.nft_ctx_buffer_output(ctx) or lib.lib.nft_ctx_buffer_error(ctx):
                lib.lib.nft_ctx_free(ctx)
                raise NftError("nftables: cannot buffer the context's output")
            self._flags = lib.lib.nft_ctx_output_get_flags(ctx)
            self._ctx = ctx
        return self._ctx

    def run(self, script: str, *, json: bool = False) -> str:
        """Run SCRIPT (nft syntax, commands separated by newlines) as one transaction.

        Returns what it printed (a listing; JSON text with JSON=True).  Raises
        NftError naming the failing command; then nothing of SCRIPT was applied.
        """
        data = script.encode()
        if b"\0" in data:
            raise NftError("nftables: script contains a NUL byte")
        lib = _library()
        # From a memfd, not nft_run_cmd_from_buffer: libnftables 1.0.6 quotes the
        # buffer's FIRST line in every error; from a file it names the right line.
        fd = os.memfd_create("sampan-nft", os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            with self._lock:
                ctx = self._context(lib)
                flags = self._flags | OUTPUT_JSON if json else self._flags & ~OUTPUT_JSON
                if flags != self._flags:
                    lib.lib.nft_ctx_output_set_flags(ctx, flags)
                    self._flags = flags
                rc = lib.lib.nft_run_cmd_from_filename(ctx, f"/proc/self/fd/{fd}".encode())
                # Reading a buffer rewinds it: read both after every call.
                out = lib.lib.nft_ctx_get_output_buffer(ctx) or b""
                err = lib.lib.nft_ctx_get_error_buffer(ctx) or b""
        finally:
            os.close(fd)
        if rc != 0:
            message = error_message(err.decode(errors="replace"), script)
            raise NftError(f"nftables: {message}", err.decode(errors="replace"))
        return bytes(out).decode(errors="replace")

    def close(self) -> None:
        """Free the context (a later ``run`` makes a new one, in the caller's namespace)."""
        with self._lock:
            if self._ctx is not None and _LIB is not None:
                _LIB.lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def __enter__(self) -> Nft:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
