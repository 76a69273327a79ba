""".dockerignore's reading and matching (sampan/build/ignore.py), against docker's
patternmatcher rules, pattern by pattern."""

from __future__ import annotations

import pytest

from sampan.build.ignore import Matcher, clean, glob_regex, keep_build_files, read_dockerignore
from sampan.errors import InvalidArgument


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("", "."), (".", "."), ("a//b/", "a/b"), ("./a/./b", "a/b"), ("a/../b", "b"),
        ("../x", "../x"), ("a/../../x", "../x"), ("/../x", "/x"), ("//a", "/a"), ("/", "/"),
    ],
)  # fmt: skip
def test_clean_is_gos_filepath_clean(path: str, cleaned: str) -> None:
    assert clean(path) == cleaned


def test_reading_the_file() -> None:
    text = "\ufeff# a comment\n  # not a comment\n\n  a//b/  \n! ./c\n/d\n/\n!\n\r\ne\r\n"
    assert read_dockerignore(text) == ["# not a comment", "a/b", "!c", "d", "/", "!", "e"]
    assert read_dockerignore(b"x\n#y\n") == ["x"]


# (pattern, path, excluded): one pattern alone
CASES = [
    ("foo", "foo", True), ("foo", "foo/bar/baz", True), ("foo", "foobar", False),
    ("foo", "x/foo", False), ("*.log", "a.log", True), ("*.log", "sub/a.log", False),
    ("*.log", "a.log/inside", True), ("*/*.md", "docs/a.md", True),
    ("*/*.md", "docs/sub/b.md", False), ("a?c", "abc", True), ("a?c", "a/c", False),
    ("[ab]x", "bx", True), ("[^ab]x", "cx", True), ("[^ab]x", "ax", False),
    ("[a-c]x", "cx", True), ("[!a]x", "!x", True), ("[!a]x", "bx", False),
    (r"a\*b", "a*b", True), (r"a\*b", "axb", False),
    ("**/foo", "foo", True), ("**/foo", "a/b/foo", True), ("**/foo", "a/b/foo/c", True),
    ("**/foo", "xfoo", False), ("**foo", "xfoo", True),  # docker's suffix shortcut
    ("**", "anything/at/all", True), ("**/*.go", "a/b.go", True), ("**/*.go", "b.go", True),
    ("foo/**", "foo/x/y", True), ("foo/**", "foo", False), ("foo**", "foobar", True),
    ("a/**/b", "a/b", True), ("a/**/b", "a/x/y/b", True), ("a/**/b", "a/xb", False),
    ("a**b", "a/x/b", True), ("a**b", "axb", False), ("a.b", "axb", False),
    ("(x)+", "(x)+", True), ("a$", "a$", True), ("a^b", "a^b", True),
    ("*", ".hidden", True), ("*", "dir/file", True),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "path", "excluded"), CASES)
def test_one_pattern(pattern: str, path: str, excluded: bool) -> None:
    assert Matcher([pattern]).matches(path) is excluded


def test_a_newline_in_a_name_is_still_under_its_directory() -> None:
    assert Matcher(["dir"]).matches("dir/a\nb")
    assert Matcher(["d*"]).matches("dir/a\nb")
    assert not Matcher(["a*b"]).matches("a\n/b")


def test_the_last_matching_pattern_decides() -> None:
    m = Matcher(read_dockerignore("*.md\n!README*.md\nREADME-secret.md\n"))
    assert m.matches("notes.md")
    assert not m.matches("README.md")
    assert m.matches("README-secret.md")
    assert not m.matches("src/x.md")
    assert not m.matches(".") and not m.matches("")  # the context itself never


def test_exceptions_and_the_walks_pruning() -> None:
    m = Matcher(["build", "!build/keep"])
    assert m.matches("build/x") and not m.matches("build/keep")
    assert not m.excludes_dir_entirely("build")  # an exception starts with its path
    docker_prunes = Matcher(["build", "!**/keep"])  # docker's literal prefix rule
    assert docker_prunes.excludes_dir_entirely("build")
    assert not docker_prunes.matches("build/keep")  # matched, yet never walked into
    assert Matcher(["build"]).excludes_dir_entirely("build")
    assert not Matcher(["build"]).excludes_dir_entirely("src")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("[", "syntax error in pattern"), ("a\\", "syntax error in pattern"),
        ("[]", "syntax error in pattern"), ("[a-]", "syntax error in pattern"),
        ("[-a]", "syntax error in pattern"), ("[z-a]", "bad character range"),
        ("!", "illegal exclusion pattern"),
    ],
)  # fmt: skip
def test_malformed_patterns_are_refused(pattern: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Matcher([pattern])


def test_the_dockerfile_and_dockerignore_are_always_sent() -> None:
    patterns = ["*", "!src"]
    kept = keep_build_files(patterns, "./docker/Dockerfile")
    assert kept == ["*", "!src", "!.dockerignore", "!docker/Dockerfile"]
    m = Matcher(kept)
    assert not m.matches("docker/Dockerfile") and not m.matches(".dockerignore")
    assert m.matches("docker/other")
    assert keep_build_files(["x"], "Dockerfile") == ["x"]
    assert keep_build_files(["*"], "Dockerfile", from_stdin=True) == ["*", "!.dockerignore"]


@pytest.mark.parametrize(
    ("pattern", "name", "matched"),
    [
        ("*.txt", "a.txt", True), ("*.txt", ".txt", True), ("*", ".hidden", True),
        ("?", "ab", False), ("[a-c]*", "beta", True), (r"\*", "*", True), (r"\*", "x", False),
        ("**", "x", True), ("a*", "a/b", False),
    ],
)  # fmt: skip
def test_copys_glob_is_filepath_match(pattern: str, name: str, matched: bool) -> None:
    rx = glob_regex(pattern)
    assert rx is not None
    assert (rx.fullmatch(name) is not None) is matched


def test_copys_malformed_glob_is_none() -> None:
    assert glob_regex("[") is None
    assert glob_regex("x\\") is None
