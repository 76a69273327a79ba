"""JSON without ``import json``.

``json`` pulls in ``re`` (and with it ``enum``), which costs ~10 ms on these
machines -- a quarter of a container start.  The C accelerator ``_json`` has
everything needed; this module wraps it with the same semantics as
``json.loads`` / ``json.dumps`` for the subset sampan uses.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~5 ms to import; annotations only
    from typing import Any

__all__ = ["JSONError", "dumps", "loads"]


class JSONError(ValueError):
    """Malformed JSON; the message gives the character offset."""


class _Context:
    # The attributes _json.make_scanner reads from a json.JSONDecoder.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None

    def __init__(self) -> None:
        self.memo: dict[str, str] = {}


_WS = " \t\n\r"


def _bad_constant(name: str) -> Any:
    raise JSONError(f"invalid constant {name}")


def loads(text: str | bytes) -> Any:
    """Parse one JSON document; raise JSONError on anything else."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError(f"not UTF-8: {exc}") from None
    ctx = _Context()
    ctx.parse_constant = _bad_constant  # type: ignore[assignment]
    scan = _json.make_scanner(ctx)  # type: ignore[arg-type]  # duck-typed JSONDecoder
    start = len(text) - len(text.lstrip(_WS))
    try:
        try:
            value, end = scan(text, start)
        except SystemError:
            # Some errors the scanner reports through json.decoder.JSONDecodeError,
            # which it finds only among imported modules: import it (on this error
            # path only) and scan again for the message.
            import json.decoder  # noqa: F401

            value, end = scan(text, start)
    except StopIteration as exc:
        raise JSONError(f"expecting a value at char {exc.value}") from None
    except ValueError as exc:
        raise JSONError(str(exc)) from None
    if text[end:].strip(_WS):
        raise JSONError(f"extra data at char {end}")
    return value


def _unserialisable(obj: Any) -> Any:
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def _encoder(key_separator: str, item_separator: str) -> Any:
    # (markers, default, encoder, indent, separators, sort_keys, skipkeys, allow_nan)
    make = _json.make_encoder
    return make(None, _unserialisable, _json.encode_basestring_ascii, None,
                key_separator, item_separator, False, False, False)  # fmt: skip


_compact = _encoder(":", ",")
_spaced = _encoder(": ", ", ")


def dumps(obj: Any, indent: int | None = None, compact: bool = True) -> str:
    """Serialise *obj*; with *indent*, pretty-print as ``json.dumps(indent=...)``."""
    if indent is None:
        return "".join((_compact if compact else _spaced)(obj, 0))
    return _pretty(obj, " " * indent, "")


def _key(key: Any) -> str:
    """A dict key as json.dumps writes it: strings as they are, True as "true", 1 as "1"."""
    if isinstance(key, str):
        return str(_json.encode_basestring_ascii(key))
    if isinstance(key, (bool, int, float)) or key is None:
        return str(_json.encode_basestring_ascii("".join(_compact(key, 0))))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _pretty(obj: Any, step: str, pad: str) -> str:
    inner = pad + step
    if isinstance(obj, dict) and obj:
        items = (f"{inner}{_key(k)}: {_pretty(v, step, inner)}" for k, v in obj.items())
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)) and obj:
        return "[\n" + ",\n".join(inner + _pretty(v, step, inner) for v in obj) + "\n" + pad + "]"
    return "".join(_compact(obj, 0))
