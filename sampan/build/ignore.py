"""``.dockerignore``: which paths of a build context are left out, with docker's rules.

One pattern a line; ``#`` starts a comment line; blank lines are skipped;
each pattern is cleaned as a path (``./a//b/`` is ``a/b``, a leading ``/``
dropped).  ``*`` matches any run of characters but ``/``, ``?`` one of them,
``[...]`` a class, ``**`` any number of directories (none included); a
pattern that matches a directory excludes everything under it; ``!pattern``
re-includes what it matches.  The last pattern that matches a path decides.

    m = Matcher(read_dockerignore(b"*.log\\n!keep.log\\n"))
    m.matches("a.log"), m.matches("keep.log")      # True, False
"""

from __future__ import annotations

import posixpath
import re

__all__ = ["Matcher", "read_dockerignore"]


def read_dockerignore(data: bytes | str) -> list[str]:
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclude = line.startswith("!")
        body = line[1:].strip() if exclude else line
        if not body:
            continue
        body = posixpath.normpath(body).lstrip("/") or "."
        out.append(("!" if exclude else "") + body)
    return out


def _regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):  # "**/": any directories, none included
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("^"):
                    body = "!" + body[1:]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("(?:/.*)?$")  # a directory's match covers what is under it
    return re.compile("".join(out), re.DOTALL)


class Matcher:
    """The patterns of a .dockerignore, compiled."""

    def __init__(self, patterns: list[str]) -> None:
        self.rules = [(p.startswith("!"), _regex(p.lstrip("!"))) for p in patterns]
        self.has_exceptions = any(neg for neg, _ in self.rules)

    def matches(self, rel: str) -> bool:
        """Whether the context path REL ("a/b.txt") is excluded."""
        excluded = False
        for negated, rx in self.rules:
            if rx.match(rel):
                excluded = not negated
        return excluded

    def skips_dir(self, rel: str) -> bool:
        """Whether the directory REL and everything under it can be skipped unread."""
        return self.matches(rel) and not self.has_exceptions
