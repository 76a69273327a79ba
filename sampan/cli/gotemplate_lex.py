"""The lexer of docker's ``--format`` templates: Go text/template's tokens.

Text between actions is one token; an action (``{{ ... }}``) is split into
the tokens the parser in gotemplate.py reads: fields (``.Repository``),
variables, constants (strings with Go's escapes, raw strings, runes,
numbers in Go's syntax, true/false), nil, identifiers, ``| ( ) := = ,`` and
the spaces between them (text/template's grammar needs them).  Comments
vanish and trim markers (``{{- ``, `` -}}``) eat the spaces of the text next
to them here.  Errors are ParseError with the offset, for the line number
docker prints.

Nothing slow is imported: no ``re`` or ``typing`` (the CLI's start time is
watched).
"""

from __future__ import annotations

from sampan.cli.gotemplate_funcs import go_quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["KEYWORDS", "ParseError", "Tok", "lex"]

KEYWORDS = frozenset({"if", "else", "end", "range", "with", "break", "continue",
                       "define", "template", "block"})  # fmt: skip
_SPACE = " \t\r\n"
_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v"}  # fmt: skip


class ParseError(Exception):
    """A template that does not parse; ``pos`` is the offset in the source, if known."""

    def __init__(self, message: str, pos: int | None = None) -> None:
        super().__init__(message)
        self.pos = pos


class Tok:
    """One token: its kind, its source text, its offset, and its value (a constant's, a name)."""

    __slots__ = ("kind", "pos", "text", "value")

    def __init__(self, kind: str, text: str, pos: int, value: Any = None) -> None:
        # kinds: text {{ }} space ident field dot var const nil | ( ) := = , eof
        self.kind = kind
        self.text = text
        self.pos = pos
        self.value = value


def _unquote(body: str, pos: int) -> str:
    """A Go double-quoted string's body, escapes decoded."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1 : i + 2]
        if esc and esc in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2 : i + 2 + size]
            if len(digits) != size or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ParseError(f"invalid syntax: {body!r}", pos)
            out.append(chr(int(digits, 16)))
            i += 2 + size
        elif esc and esc in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits):
                raise ParseError(f"invalid syntax: {body!r}", pos)
            out.append(chr(int(digits, 8)))
            i += 4
        elif esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        else:
            raise ParseError(f"invalid syntax: {body!r}", pos)
    return "".join(out)


def _number(text: str, pos: int) -> int | float:
    clean = text.replace("_", "")
    body = clean.lstrip("+-")
    try:
        if body[:2].lower() in ("0x", "0o", "0b"):
            return int(clean, 0)
        if body.isdigit():
            return int(clean, 8) if len(body) > 1 and body[0] == "0" else int(clean)
        return float(clean)
    except ValueError:
        raise ParseError(f"bad number syntax: {text!r}", pos) from None


def _unicode(ch: str) -> str:
    """Go's %#U: ``U+007D '}'``."""
    return f"U+{ord(ch):04X} '{ch}'" if ch.isprintable() else f"U+{ord(ch):04X}"


def _at_terminator(src: str, i: int) -> bool:
    return i >= len(src) or src[i] in " \t\r\n.,|:()" or src.startswith("}}", i)


def _is_space(src: str, i: int) -> bool:
    return i < len(src) and src[i] in _SPACE


def lex(src: str) -> list[Tok]:
    """The tokens of a template, ending with an ``eof`` token."""
    toks: list[Tok] = []
    i, n = 0, len(src)
    trim_next = False
    while i < n:
        start = src.find("{{", i)
        text = src[i:] if start < 0 else src[i:start]
        if (
            start >= 0
            and src[start + 2 : start + 3] == "-"
            and src[start + 3 : start + 4] in _SPACE
        ):
            text = text.rstrip(_SPACE)
        if trim_next:
            text = text.lstrip(_SPACE)
        if text:
            toks.append(Tok("text", text, i))
        if start < 0:
            break
        i, trim_next = _lex_action(src, start, toks)
    toks.append(Tok("eof", "", n))
    return toks


def _lex_action(src: str, start: int, toks: list[Tok]) -> tuple[int, bool]:
    """Lex one ``{{ ... }}``; returns the position after it and whether it trims what follows."""
    n = len(src)
    i = start + 2
    if src[i : i + 1] == "-" and _is_space(src, i + 1):
        i += 1
    j = i
    while j < n and src[j] in _SPACE:
        j += 1
    if src.startswith("/*", j):  # a comment: produces nothing
        end = src.find("*/", j + 2)
        if end < 0:
            raise ParseError("unclosed comment", start)
        k = end + 2
        while k < n and src[k] in _SPACE:
            k += 1
        trim = src.startswith("-}}", k) and k > end + 2
        if trim:
            k += 1
        if not src.startswith("}}", k):
            raise ParseError("comment ends before closing delimiter", start)
        return k + 2, trim
    toks.append(Tok("{{", "{{", start))
    while True:
        if i >= n:
            raise ParseError("unclosed action", start)
        ch = src[i]
        if ch in _SPACE:
            j = i
            while j < n and src[j] in _SPACE:
                j += 1
            if src.startswith("-}}", j):
                toks.append(Tok("}}", "}}", j))
                return j + 3, True
            toks.append(Tok("space", src[i:j], i))
            i = j
        elif src.startswith("}}", i):
            toks.append(Tok("}}", "}}", i))
            return i + 2, False
        elif ch == "." and not src[i + 1 : i + 2].isdigit():
            j = i + 1
            while j < n and src[j] in _IDENT_CHARS:
                j += 1
            if j == i + 1:
                toks.append(Tok("dot", ".", i))
            else:
                toks.append(Tok("field", src[i:j], i, src[i + 1 : j]))
            i = j
        elif ch == "$":
            j = i + 1
            while j < n and src[j] in _IDENT_CHARS:
                j += 1
            toks.append(Tok("var", src[i:j], i, src[i:j]))
            i = j
        elif ch == '"':
            j = i + 1
            while j < n and src[j] != '"':
                if src[j] == "\n":
                    break
                j += 2 if src[j] == "\\" else 1
            if j >= n or src[j] != '"':
                raise ParseError("unterminated quoted string", i)
            toks.append(Tok("const", src[i : j + 1], i, _unquote(src[i + 1 : j], i)))
            i = j + 1
        elif ch == "`":
            j = src.find("`", i + 1)
            if j < 0:
                raise ParseError("unterminated raw quoted string", i)
            toks.append(Tok("const", src[i : j + 1], i, src[i + 1 : j]))
            i = j + 1
        elif ch == "'":
            j = i + 1
            while j < n and src[j] != "'":
                if src[j] == "\n":
                    raise ParseError("unterminated character constant", i)
                j += 2 if src[j] == "\\" else 1
            body = _unquote(src[i + 1 : j], i) if j < n else ""
            if len(body) != 1:
                raise ParseError(f"malformed character constant: {src[i : j + 1]}", i)
            toks.append(Tok("const", src[i : j + 1], i, ord(body)))
            i = j + 1
        elif ch.isdigit() or (ch in "+-." and src[i + 1 : i + 2].isdigit()):
            j = i + 1
            while j < n and (
                src[j] in _IDENT_CHARS or src[j] == "." or (src[j] in "+-" and src[j - 1] in "eEpP")
            ):
                j += 1
            toks.append(Tok("const", src[i:j], i, _number(src[i:j], i)))
            i = j
        elif ch in _IDENT_CHARS:
            j = i
            while j < n and src[j] in _IDENT_CHARS:
                j += 1
            word = src[i:j]
            if word in ("true", "false"):
                toks.append(Tok("const", word, i, word == "true"))
            elif word == "nil":
                toks.append(Tok("nil", word, i))
            else:
                toks.append(Tok("ident", word, i, word))
            i = j
        elif src.startswith(":=", i):
            toks.append(Tok(":=", ":=", i))
            i += 2
        elif ch in "|()=,":
            toks.append(Tok(ch, ch, i))
            i += 1
        elif ch.isprintable() and ord(ch) < 128:
            raise ParseError(f"unexpected {go_quote(ch)} in command", i)
        else:
            raise ParseError(f"unrecognized character in action: {_unicode(ch)}", i)
        if toks[-1].kind in ("field", "var", "ident") and not _at_terminator(src, i):
            raise ParseError(f"bad character {_unicode(src[i])}", i)
