"""Variable expansion in Dockerfile instructions, with docker's rules.

A word is read as a shell would, without running anything: single quotes
keep everything literal, double quotes keep spaces but expand variables,
the escape character (``\\`` or the ``# escape=`` directive's) takes the next
character literally.  ``$NAME`` and ``${NAME}`` expand to the variable's
value or nothing; the modifiers are ``${NAME:-word}`` / ``${NAME-word}``
(a default), ``${NAME:+word}`` / ``${NAME+word}`` (an alternative),
``${NAME:?message}`` / ``${NAME?message}`` (an error), ``${NAME#pattern}``,
``${NAME##pattern}``, ``${NAME%pattern}``, ``${NAME%%pattern}`` (glob
patterns removed from either end).  ``expand_words`` also splits the result
into words on unquoted whitespace (ENV and LABEL keep their own splitting).

    expand("${NAME:-x}/bin", {"NAME": "usr"})       # "usr/bin"
    expand_words('a "b c" $X', {"X": "d e"})         # ["a", "b c", "d", "e"]
"""

from __future__ import annotations

from sampan.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["expand", "expand_words", "references"]

_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_NAME = _NAME_START + "0123456789"


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.env = env
        self.escape = escape
        self.pos = 0
        self.used: set[str] = set()

    def error(self, message: str) -> InvalidArgument:
        return InvalidArgument(f"column {self.pos + 1}: {message}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def words(self, split: bool) -> list[str]:
        """The words of the text (one word when not SPLIT); quotes removed."""
        words: list[str] = []
        word: list[str] = []
        started = False
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if split and ch in " \t\n":
                if started:
                    words.append("".join(word))
                    word, started = [], False
                self.pos += 1
                continue
            started = True
            if ch == "'":
                self.pos += 1
                end = self.text.find("'", self.pos)
                if end < 0:
                    raise self.error("unexpected end of text: a single quote is not closed")
                word.append(self.text[self.pos : end])
                self.pos = end + 1
            elif ch == '"':
                self.pos += 1
                word.append(self.double_quoted())
            elif ch == self.escape:
                self.pos += 1
                if self.pos < len(self.text):
                    word.append(self.text[self.pos])
                    self.pos += 1
            elif ch == "$":
                value = self.variable()
                if split and value:
                    parts = value.split()
                    if value[0] in " \t\n" and started and len(word):
                        words.append("".join(word))
                        word = []
                    for part in parts[:-1]:
                        word.append(part)
                        words.append("".join(word))
                        word = []
                    if parts:
                        word.append(parts[-1])
                    if value[-1] in " \t\n":
                        words.append("".join(word))
                        word, started = [], False
                else:
                    word.append(value)
            else:
                word.append(ch)
                self.pos += 1
        if started:
            words.append("".join(word))
        return words

    def double_quoted(self) -> str:
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise self.error("unexpected end of text: a double quote is not closed")
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == self.escape:
                nxt = self.text[self.pos + 1 : self.pos + 2]
                if nxt in ('"', "$", self.escape):
                    out.append(nxt)
                    self.pos += 2
                    continue
                out.append(ch)
                self.pos += 1
            elif ch == "$":
                out.append(self.variable())
            else:
                out.append(ch)
                self.pos += 1

    def variable(self) -> str:
        self.pos += 1  # the $
        ch = self.peek()
        if ch == "{":
            self.pos += 1
            return self.braced()
        if ch and ch in _NAME_START:
            start = self.pos
            while self.peek() and self.peek() in _NAME:
                self.pos += 1
            name = self.text[start : self.pos]
            self.used.add(name)
            return self.env.get(name, "")
        return "$"  # a lone $ stays

    def braced(self) -> str:
        start = self.pos
        while self.peek() and self.peek() in _NAME:
            self.pos += 1
        name = self.text[start : self.pos]
        if not name:
            raise self.error("bad substitution: a variable name is expected after ${")
        self.used.add(name)
        value = self.env.get(name)
        ch = self.peek()
        if not ch:
            raise self.error("bad substitution: a ${ is not closed")
        if ch == "}":
            self.pos += 1
            return value or ""
        colon = ch == ":"
        if colon:
            self.pos += 1
            ch = self.peek()
        if ch not in ("-", "+", "?", "#", "%") or (colon and ch in "#%"):
            raise self.error(f"bad substitution: unsupported modifier {ch!r} in ${{{name}...}}")
        self.pos += 1
        longest = False
        if ch in "#%" and self.peek() == ch:
            longest = True
            self.pos += 1
        word = self.until_brace()
        unset = value is None or (colon and value == "")
        if ch == "-":
            return word if unset else value or ""
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if unset:
                raise self.error(f"{name}: {word or 'is not allowed to be unset'}")
            return value or ""
        return _trim(value or "", word, prefix=ch == "#", longest=longest)

    def until_brace(self) -> str:
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise self.error("bad substitution: a ${ is not closed")
            if ch == "}":
                self.pos += 1
                return "".join(out)
            if ch == self.escape:
                out.append(self.text[self.pos + 1 : self.pos + 2])
                self.pos += 2
            elif ch == "$":
                out.append(self.variable())
            elif ch in "'\"":
                self.pos += 1
                out.append(self.double_quoted() if ch == '"' else self._single())
            else:
                out.append(ch)
                self.pos += 1

    def _single(self) -> str:
        end = self.text.find("'", self.pos)
        if end < 0:
            raise self.error("unexpected end of text: a single quote is not closed")
        out = self.text[self.pos : end]
        self.pos = end + 1
        return out


def _trim(value: str, pattern: str, *, prefix: bool, longest: bool) -> str:
    from fnmatch import fnmatchcase

    cuts = range(len(value) + 1)
    order = reversed(cuts) if longest else cuts  # i: the length of what is removed
    for i in order:
        if prefix and fnmatchcase(value[:i], pattern):
            return value[i:]
        if not prefix and fnmatchcase(value[len(value) - i :], pattern):
            return value[: len(value) - i]
    return value


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """WORD with its variables expanded and its quotes removed (one word)."""
    words = _Lexer(word, env, escape).words(split=False)
    return words[0] if words else ""


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """TEXT expanded and split into words on unquoted whitespace."""
    return _Lexer(text, env, escape).words(split=True)


def references(text: str, escape: str = "\\") -> set[str]:
    """The variable names TEXT refers to (outside single quotes)."""
    lexer = _Lexer(text, {}, escape)
    try:
        lexer.words(split=True)
    except InvalidArgument:
        pass
    return lexer.used
