"""The build context: .dockerignore, the CLI's tar, COPY's sources and their content key."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from sampan.build.context import (
    apply_dockerignore,
    content_key,
    read_dockerfile,
    select,
    write_context_tar,
)
from sampan.build.ignore import Matcher, read_dockerignore
from sampan.errors import InvalidArgument, NotFound


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("Dockerfile", True), ("keep.txt", False), ("a.log", True), ("sub/a.log", True),
        ("sub/keep.log", False), ("build", True), ("build/x/y", True), ("builder", False),
        ("docs/a.md", True), ("docs/sub/b.md", False), ("x/node_modules/y", True),
    ],
)  # fmt: skip
def test_dockerignore_patterns(path: str, excluded: bool) -> None:
    patterns = read_dockerignore(
        "# comment\nDockerfile\n*.log\n**/*.log\n!sub/keep.log\n/build/\n\ndocs/*.md\n"
        "**/node_modules\n"
    )
    assert Matcher(patterns).matches(path) is excluded


def test_read_dockerignore_cleans_patterns() -> None:
    assert read_dockerignore("./a//b/\n/c\n! d\n#x\n") == ["a/b", "c", "!d"]


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_clis_tar_applies_dockerignore_but_always_sends_the_dockerfile(
    tmp_path: Path,
) -> None:
    _tree(tmp_path, {"Dockerfile": "FROM x\n", ".dockerignore": "Dockerfile\n*.log\nskip/\n",
                     "a.txt": "a", "b.log": "b", "skip/c": "c", "sub/d": "d"})  # fmt: skip
    out = io.BytesIO()
    write_context_tar(str(tmp_path), out, extra={".dockerfile.x": b"FROM y\n"})
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = sorted(m.name for m in tar.getmembers())
        assert all(m.uid == 0 and m.gid == 0 for m in tar.getmembers())
    assert names == [".dockerfile.x", ".dockerignore", "Dockerfile", "a.txt", "sub", "sub/d"]


def test_the_daemon_drops_what_dockerignore_excludes_after_reading_the_dockerfile(
    tmp_path: Path,
) -> None:
    _tree(tmp_path, {"Dockerfile": "FROM x\n", ".dockerignore": "Dockerfile\n*.log\n",
                     "a.txt": "a", "b.log": "b"})  # fmt: skip
    assert read_dockerfile(str(tmp_path), "Dockerfile") == ("Dockerfile", b"FROM x\n")
    apply_dockerignore(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [".dockerignore", "a.txt"]
    with pytest.raises(NotFound, match="Cannot locate specified Dockerfile"):
        read_dockerfile(str(tmp_path), "Dockerfile")
    with pytest.raises(InvalidArgument, match="outside the build context"):
        read_dockerfile(str(tmp_path), "../Dockerfile")


def test_select_sources_and_its_errors(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    _tree(ctx, {"a.txt": "a", "b.txt": "b", "dir/c": "c", ".hidden": "h"})
    (ctx / "out").symlink_to("/etc")
    (ctx / "in").symlink_to("dir")
    kw = {"file": "Dockerfile", "line": 3}
    found = select(str(ctx), ["*.txt", "/dir", "in/c", "."], **kw)  # type: ignore[arg-type]
    assert [(s.rel, s.kind) for s in found] == [
        ("a.txt", "file"), ("b.txt", "file"), ("dir", "dir"), ("in/c", "file"), ("", "dir"),
    ]  # fmt: skip
    assert [s.rel for s in select(str(ctx), [".*"], **kw)] == [".hidden"]  # type: ignore[arg-type]
    for pattern, message in [
        ("../x", "Dockerfile:3: COPY failed: forbidden path outside the build context: ../x"),
        ("missing", "file not found in build context"),
        ("out/passwd", "outside the build context: out/passwd \\(the symlink out points to /etc"),
        ("out", "the symlink out points to /etc"),
        ("*.none", "no source files were specified"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            select(str(ctx), [pattern], **kw)  # type: ignore[arg-type]


def test_content_key_follows_content_not_mtime(tmp_path: Path) -> None:
    _tree(tmp_path, {"dir/a": "a", "dir/b": "b"})

    def key() -> str:
        return content_key(str(tmp_path), select(str(tmp_path), ["dir"], file="D", line=1))

    first = key()
    os.utime(tmp_path / "dir" / "a", (1, 1))
    assert key() == first
    (tmp_path / "dir" / "a").write_text("A")
    assert key() != first
    (tmp_path / "dir" / "a").write_text("a")
    assert key() == first
    os.chmod(tmp_path / "dir" / "b", 0o600)
    assert key() != first
