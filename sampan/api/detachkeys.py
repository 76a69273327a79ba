"""docker's detach keys: ``--detach-keys`` / ``detachKeys`` / DetachKeys.

A comma-separated sequence of keys, each one character ("a") or ``ctrl-X``
with X a letter or one of ``@ [ \\ ] ^ _``; the default is ``ctrl-p,ctrl-q``.
The daemon watches the stdin of an attach or exec stream for it
(``Scanner``): bytes that start the sequence are held back until it either
completes (the stream ends, the container goes on) or breaks (they are
passed on).

    keys = parse("ctrl-p,ctrl-q")        # b"\\x10\\x11"
    scanner = Scanner(keys)
    scanner.feed(b"ab\\x10")             # (b"ab", False)
    scanner.feed(b"\\x11")               # (b"", True): detach
"""

from __future__ import annotations

from sampan.errors import InvalidArgument

__all__ = ["DEFAULT", "Scanner", "parse"]

DEFAULT = b"\x10\x11"  # ctrl-p, ctrl-q
_CTRL_PUNCT = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse(text: str) -> bytes:
    """The byte sequence of detach keys TEXT ("" means the default)."""
    if not text:
        return DEFAULT
    out = bytearray()
    for key in text.split(","):
        low = key.lower()
        if len(key) == 1 and key.isascii() and key.isprintable():
            out.append(ord(key))
        elif low.startswith("ctrl-") and len(key) == 6:
            c = low[5]
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
            elif c in _CTRL_PUNCT:
                out.append(_CTRL_PUNCT[c])
            else:
                raise InvalidArgument(f"Invalid detach keys ({text}) provided")
        else:
            raise InvalidArgument(f"Invalid detach keys ({text}) provided")
    return bytes(out)


class Scanner:
    """Finds the detach sequence in a stream of input, across reads."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = b""  # a prefix of KEYS seen at the end of the last read

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(the bytes to pass on, whether the sequence completed)."""
        if not self.keys:
            return data, False
        out = bytearray()
        held = self._held
        for byte in data:
            b = bytes((byte,))
            if self.keys.startswith(held + b):
                held += b
                if held == self.keys:
                    self._held = b""
                    return bytes(out), True
                continue
            out += held  # the sequence broke: what was held goes on
            held = b""
            if self.keys.startswith(b):
                held = b
                if held == self.keys:
                    self._held = b""
                    return bytes(out), True
            else:
                out += b
        self._held = held
        return bytes(out), False

    def flush(self) -> bytes:
        """What is held back at the end of input."""
        held, self._held = self._held, b""
        return held
