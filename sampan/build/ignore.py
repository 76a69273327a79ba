""".dockerignore: which paths of a build context are left out, by docker's rules.

Reading the file (``read_dockerignore``, as docker's ignorefile reader): a
UTF-8 BOM is dropped; a line whose first character is ``#`` is a comment
(before any trimming: " # x" is a pattern); each other line is trimmed,
blank ones skipped; ``!`` marks an exception, the pattern after it trimmed
too; the pattern is cleaned as Go's ``filepath.Clean`` does (``./a//b/`` is
``a/b``) and a leading ``/`` dropped (``/build`` is ``build``).

Matching (``Matcher``, as docker's patternmatcher): a pattern is matched
against a context path ("a/b.txt", cleaned, no leading "/"): ``*`` is any run
of characters but ``/``, ``?`` one of them, ``[...]`` a class (``[^...]``
negated; a class may match "/"), ``\\x`` the character x, ``**`` any number
of directories (none included: ``**/x`` matches ``x``); ``**`` at the end
matches anything after its prefix (``foo**`` matches ``foobar``), and a
pattern that *starts* with ``**`` and holds no other wildcard is matched as a
plain suffix (docker's shortcut: ``**.log`` matches ``a.log``).  A pattern
that matches a directory matches everything under it.  The last pattern that
matches a path decides: excluded, unless it is an exception.

Pruning (``excludes_dir_entirely``): the CLI's walk skips an excluded
directory unread unless an exception pattern *literally* starts with that
directory's path -- ``!build/keep`` keeps ``build`` walked, ``!**/keep`` does
not (docker's rule, so what the tar holds is what docker sends).

    m = Matcher(read_dockerignore(b"*.log\\n!keep.log\\n"))
    m.matches("a.log"), m.matches("keep.log")      # True, False

A malformed pattern (an unclosed ``[``, a trailing ``\\``, a bare ``!``) is
InvalidArgument when the Matcher is made, as docker refuses the context.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sampan.errors import InvalidArgument

__all__ = ["Matcher", "clean", "glob_regex", "keep_build_files", "read_dockerignore"]

_BOM = "\ufeff"


def clean(path: str) -> str:
    """PATH cleaned as Go's ``filepath.Clean``: "" is ".", "a/./b/../c/" is "a/c", a
    rooted ".." stays at the root, a relative one is kept ("../x")."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append(part)
            continue
        parts.append(part)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."


def read_dockerignore(data: bytes | str) -> list[str]:
    """The patterns of a .dockerignore file's DATA (see the module doc), in order."""
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    text = text.removeprefix(_BOM)
    out = []
    for line in text.split("\n"):
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        exception = line.startswith("!")
        if exception:
            line = line[1:].strip()
        if line:
            line = clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        out.append("!" + line if exception else line)
    return out


# -- one pattern -----------------------------------------------------------------------


def _syntax_ok(pattern: str) -> bool:
    """Whether PATTERN is well formed for Go's ``filepath.Match`` (docker checks that)."""
    n = len(pattern)

    def char(i: int) -> int:  # one class character at I; the index after it, -1 if bad
        if i >= n or pattern[i] in "-]":
            return -1
        if pattern[i] == "\\":
            return -1 if i + 1 >= n else i + 2
        return i + 1

    i = 0
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                return False
            i += 2
        elif c == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < n and pattern[i] == "]" and ranges:
                    i += 1
                    break
                i = char(i)
                if i < 0:
                    return False
                if i < n and pattern[i] == "-":
                    i = char(i + 1)
                    if i < 0:
                        return False
                ranges += 1
        else:
            i += 1
    return True


def _class(pattern: str, i: int) -> tuple[str, int]:
    """The regex of the class starting at PATTERN[I] ("["), and the index after it."""
    i += 1
    out = ["["]
    if pattern[i] == "^":
        out.append("^")
        i += 1
    while pattern[i] != "]":  # never first: a well-formed class is not empty
        for bound in ("lo", "hi"):
            if pattern[i] == "\\":
                i += 1
            out.append(re.escape(pattern[i]))
            i += 1
            if bound == "hi" or pattern[i] != "-":
                break
            out.append("-")
            i += 1
    out.append("]")
    return "".join(out), i + 1


def _compile(pattern: str) -> Callable[[str], bool]:
    """A test of whether a path, or one of its parent directories, matches PATTERN
    (well formed, cleaned, without its "!"), classified as docker does (exact, prefix,
    suffix, regexp)."""
    kind = "exact"
    regex: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*" and pattern.startswith("**", i):
            start = i
            i += 2
            if i < n and pattern[i] == "/":
                i += 1
            if i >= n:  # "**" at the end: anything after the prefix
                if kind == "exact":
                    kind = "prefix"
                else:
                    regex.append(".*")
                    kind = "regexp"
            else:
                regex.append("(?:.*/)?")
                kind = "regexp"
            if start == 0:
                kind = "suffix"
            continue
        if c == "*":
            regex.append("[^/]*")
            kind = "regexp"
        elif c == "?":
            regex.append("[^/]")
            kind = "regexp"
        elif c == "\\":
            i += 1
            regex.append(re.escape(pattern[i]))
            kind = "regexp"
        elif c == "[":
            body, i = _class(pattern, i)
            regex.append(body)
            kind = "regexp"
            continue
        else:
            regex.append(re.escape(c))
        i += 1
    under = "(?:/(?s:.*))?"  # the path itself, or anything under it
    if kind == "exact":
        below = pattern + "/"
        return lambda path: path == pattern or path.startswith(below)
    if kind == "prefix":
        head = pattern[:-2]
        return lambda path: path.startswith(head)
    if kind == "suffix":
        tail = pattern[2:]
        if not tail:
            return lambda path: True
        if tail.startswith("/"):  # "**/x": x at any depth, or at the top
            rx = re.compile("(?:.*/)?" + re.escape(tail[1:]) + under)
        else:
            rx = re.compile(".*" + re.escape(tail) + under)
        return lambda path: rx.fullmatch(path) is not None
    compiled = re.compile("".join(regex) + under)
    return lambda path: compiled.fullmatch(path) is not None


def glob_regex(pattern: str) -> re.Pattern[str] | None:
    """PATTERN in Go's ``filepath.Match`` syntax (COPY's sources: ``*``, ``?``, ``[...]``,
    ``\\x``; no ``**``) as a regex to ``fullmatch``; None when it is malformed."""
    if not _syntax_ok(pattern):
        return None
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            body, i = _class(pattern, i)
            out.append(body)
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        else:
            if c == "\\":
                i += 1
            out.append(re.escape(pattern[i]))
        i += 1
    try:
        return re.compile("".join(out))
    except re.error:
        return None


class _Pattern:
    __slots__ = ("exception", "test", "text")

    def __init__(self, text: str, exception: bool) -> None:
        self.text = text
        self.exception = exception
        self.test = _compile(text)


class Matcher:
    """The patterns of a .dockerignore, compiled (see the module doc)."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in patterns:
            text = raw.strip()
            if not text:
                continue
            text = clean(text)
            exception = text.startswith("!")
            if exception:
                if len(text) == 1:
                    raise InvalidArgument('.dockerignore: illegal exclusion pattern: "!"')
                text = text[1:]
            if not _syntax_ok(text):
                raise InvalidArgument(f".dockerignore: {raw.strip()}: syntax error in pattern")
            try:
                self.patterns.append(_Pattern(text, exception))
            except re.error as exc:  # a class range out of order ("[z-a]")
                raise InvalidArgument(f".dockerignore: {raw.strip()}: {exc}") from None
        self._last_first = self.patterns[::-1]
        self.has_exceptions = any(p.exception for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, rel: str) -> bool:
        """Whether the context path REL ("a/b.txt": clean, relative) is excluded; the
        context itself ("" or ".") never is."""
        if rel in ("", "."):
            return False
        for pattern in self._last_first:
            if pattern.test(rel):
                return not pattern.exception
        return False

    def excludes_dir_entirely(self, rel: str) -> bool:
        """Whether the directory REL is excluded and its walk may stop there: no exception
        pattern starts with its path (docker's pruning rule, see the module doc)."""
        if not self.matches(rel):
            return False
        below = rel + "/"
        return not any(p.exception and (p.text + "/").startswith(below) for p in self.patterns)


def keep_build_files(
    patterns: list[str], dockerfile: str, *, from_stdin: bool = False
) -> list[str]:
    """PATTERNS with exceptions added for .dockerignore and the Dockerfile DOCKERFILE
    (a context path) when they would be excluded: the CLI always sends them (the daemon
    drops them from COPY's view afterwards).  A Dockerfile FROM_STDIN is added apart."""
    out = list(patterns)
    matcher = Matcher(patterns)
    if matcher.matches(".dockerignore"):
        out.append("!.dockerignore")
    name = clean(dockerfile)
    if not from_stdin and matcher.matches(name):
        out.append("!" + name)
    return out
