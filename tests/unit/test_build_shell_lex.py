"""Variable expansion in Dockerfile instructions, as docker's shell lexer does it."""

from __future__ import annotations

import pytest

from sampan.build.shell_lex import expand, expand_words, references
from sampan.errors import InvalidArgument

ENV = {"NAME": "usr", "SPACED": "x y", "EMPTY": "", "FILE": "a.tar.gz"}


@pytest.mark.parametrize(
    ("word", "wanted"),
    [
        ("$NAME/bin", "usr/bin"),
        ("${NAME}bin", "usrbin"),
        ("${MISSING:-def}", "def"),
        ("${EMPTY:-def}", "def"),
        ("${EMPTY-def}", ""),
        ("${NAME:+alt}", "alt"),
        ("${MISSING:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${FILE%.*}", "a.tar"),
        ("${FILE%%.*}", "a"),
        ("${FILE#*.}", "tar.gz"),
        ("${FILE##*.}", "gz"),
        ("'$NAME'", "$NAME"),
        ('"$SPACED"', "x y"),
        ("\\$NAME", "$NAME"),
        ('"a\\"b"', 'a"b'),
        ("${MISSING:-${NAME}}", "usr"),
        ("cost: $", "cost: $"),
    ],
)
def test_expand(word: str, wanted: str) -> None:
    assert expand(word, ENV) == wanted


def test_words_split_after_expansion_but_not_in_quotes() -> None:
    assert expand_words('a "b c" $SPACED z$SPACED', ENV) == ["a", "b c", "x", "y", "zx", "y"]
    assert expand_words("  one   two  ", ENV) == ["one", "two"]


def test_the_escape_directive_changes_the_escape() -> None:
    assert expand("`$NAME", ENV, "`") == "$NAME"
    assert expand("C:\\dir", ENV, "`") == "C:\\dir"


def test_errors() -> None:
    with pytest.raises(InvalidArgument, match="MISSING: must be set"):
        expand("${MISSING:?must be set}", ENV)
    with pytest.raises(InvalidArgument, match="bad substitution"):
        expand("${NAME/x/y}", ENV)
    with pytest.raises(InvalidArgument, match="not closed"):
        expand("${NAME", ENV)
    with pytest.raises(InvalidArgument, match="single quote"):
        expand("'open", ENV)


def test_references() -> None:
    assert references("echo $A ${B:-$C} '$D' \"$E\"") == {"A", "B", "C", "E"}
