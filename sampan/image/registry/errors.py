"""Errors of talking to a registry, on top of sampan.errors' taxonomy.

    SampanError
     +-- NotFound                a repository, tag, manifest or blob the registry lacks
     +-- RegistryError           the registry failed: unreachable, 5xx, a dropped
          |                      connection, an answer that breaks the protocol
          +-- Unauthorized       401 / 403: credentials missing, wrong, or not enough

A registry's JSON error body ({"errors": [{"code", "message", "detail"}]}) is
parsed into ``codes`` and its first message, so a caller can tell
MANIFEST_UNKNOWN from NAME_UNKNOWN without reading prose.
"""

from __future__ import annotations

from sampan import _json
from sampan.errors import NotFound, SampanError

__all__ = ["NotFound", "RegistryError", "Unauthorized", "parse_error_body"]


class RegistryError(SampanError):
    """The registry could not be reached or answered with an error."""

    def __init__(self, message: str, *, status: int | None = None, codes: tuple[str, ...] = ()):
        super().__init__(message)
        self.status = status
        self.codes = codes


class Unauthorized(RegistryError):
    """Authentication is required, failed, or the account may not do this."""


def parse_error_body(body: bytes) -> tuple[tuple[str, ...], str]:
    """(codes, first message) of a distribution-spec error body; ((), "") if it is not one."""
    try:
        doc = _json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return (), ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return (), ""
    codes: list[str] = []
    message = ""
    for item in errors:
        if not isinstance(item, dict):
            continue
        code = item.get("code")
        if isinstance(code, str):
            codes.append(code)
        text = item.get("message")
        if not message and isinstance(text, str):
            message = text.strip().splitlines()[0] if text.strip() else ""
    return tuple(codes), message
