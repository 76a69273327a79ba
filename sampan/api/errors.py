"""sampan's errors as HTTP: one table, one function, used for every response.

Docker's body is ``{"message": "..."}``; its clients show the message after
"Error response from daemon: ".  Registry failures carry the registry's own
status when it means something to the client (401 for bad credentials, 404
for a missing repository); anything else the daemon did not expect is 500.
"""

from __future__ import annotations

from sampan.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    SampanError,
    Unsupported,
    describe,
)

__all__ = ["BadRequest", "error_body", "status_of"]


class BadRequest(InvalidArgument):
    """The request itself is malformed (a query parameter, a JSON body)."""


# The first class in the MRO that is listed decides.
_STATUS: dict[type[BaseException], int] = {
    NotFound: 404,
    AlreadyExists: 409,
    Conflict: 409,
    InvalidArgument: 400,
    Unsupported: 501,
}


def status_of(exc: BaseException) -> int:
    """The HTTP status for EXC."""
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    if isinstance(exc, SampanError):
        from sampan.image.registry.errors import RegistryError, Unauthorized

        if isinstance(exc, Unauthorized):
            return 401
        if isinstance(exc, RegistryError):
            return 500
    return 500


def error_body(exc: BaseException) -> dict[str, str]:
    """docker's error document for EXC."""
    return {"message": describe(exc)}
