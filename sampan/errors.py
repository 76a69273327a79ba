"""The small error taxonomy every layer raises.

    SampanError                 base; ``str(err)`` is one lower-case line
     +-- NotFound               a container, cgroup, file or name that is not there
     +-- AlreadyExists          an id or name that is taken
     +-- Conflict               an operation the object's current state forbids
     +-- InvalidArgument        bad input: a flag, a config field, a value
     +-- Unsupported            valid input that sampan does not implement (yet)

Kernel failures are ``sampan.linux.SyscallError`` (an ``OSError`` carrying the
errno, the operation and the path).  Each transport translates both to its
own terms (an exit code, an HTTP status) in exactly one place.
"""

from __future__ import annotations


class SampanError(Exception):
    """Base of sampan's own errors."""


class NotFound(SampanError):
    """The object named does not exist."""


class AlreadyExists(SampanError):
    """The id or name is already taken."""


class Conflict(SampanError):
    """The object's current state does not allow the operation."""


class InvalidArgument(SampanError):
    """Input is malformed; the message names the field or path."""


class Unsupported(SampanError):
    """The input is valid but sampan does not implement it."""


def describe(exc: BaseException) -> str:
    """One line for any exception: OSErrors as ``PATH: reason`` without ``[Errno N]``."""
    if isinstance(exc, OSError) and exc.strerror and str(exc).startswith("[Errno"):
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__
