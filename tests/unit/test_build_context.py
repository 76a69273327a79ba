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
    extract_context,
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


def _tar(entries: list[tarfile.TarInfo | tuple[str, bytes]], compress: str = "") -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for item in entries:
            if isinstance(item, tarfile.TarInfo):
                tar.addfile(item)
            else:
                info = tarfile.TarInfo(item[0])
                info.size = len(item[1])
                tar.addfile(info, io.BytesIO(item[1]))
    raw = buf.getvalue()
    if compress:
        import bz2
        import gzip
        import lzma

        raw = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[compress](raw)
    return io.BytesIO(raw)


def _info(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize("compress", ["", "gz", "bz2", "xz"])
def test_extract_context_reads_plain_and_compressed_tars(tmp_path: Path, compress: str) -> None:
    extract_context(_tar([("Dockerfile", b"FROM x\n"), ("sub/a", b"a")], compress), str(tmp_path))
    assert (tmp_path / "Dockerfile").read_bytes() == b"FROM x\n"
    assert (tmp_path / "sub" / "a").read_bytes() == b"a"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("../escape", b"x")], "escapes"),
        ([("/abs", b"x")], "absolute"),
        ([_info("link", tarfile.SYMTYPE, "/"), ("link/etc/pwned", b"x")], "symlink"),
        ([_info("hard", tarfile.LNKTYPE, "../../etc/passwd")], "escapes"),
        ([_info("hard", tarfile.LNKTYPE, "missing")], "not in the layer"),
        ([_info("dev", tarfile.CHRTYPE)], "device nodes are not allowed"),
    ],
    ids=["dotdot", "absolute", "through-symlink", "hardlink-out", "hardlink-missing", "device"],
)
def test_extract_context_refuses_hostile_tars(
    tmp_path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]], message: str
) -> None:
    dest = tmp_path / "ctx"
    dest.mkdir()
    with pytest.raises(InvalidArgument, match=message):
        extract_context(_tar(entries), str(dest))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx"]


def test_write_then_extract_round_trip_with_links_and_long_names(tmp_path: Path) -> None:
    src = tmp_path / "src"
    long = "d" * 120 + "/" + "é" * 60
    _tree(src, {"Dockerfile": "FROM x\n", "a": "a", long: "long"})
    os.link(src / "a", src / "hard")
    (src / "sym").symlink_to("a")
    os.mkfifo(src / "fifo")
    out = io.BytesIO()
    write_context_tar(str(src), out)
    out.seek(0)
    dest = tmp_path / "dest"
    dest.mkdir()
    extract_context(out, str(dest))
    assert (dest / long).read_text() == "long"
    assert os.readlink(dest / "sym") == "a"
    assert os.stat(dest / "hard").st_ino == os.stat(dest / "a").st_ino
    assert os.path.exists(dest / "fifo")


def test_a_dockerfile_from_stdin_is_listed_in_dockerignore(tmp_path: Path) -> None:
    _tree(tmp_path / "ctx", {"a": "a"})
    out = io.BytesIO()
    write_context_tar(str(tmp_path / "ctx"), out, dockerfile=".dockerfile.abc",
                      extra={".dockerfile.abc": b"FROM x\n"})  # fmt: skip
    out.seek(0)
    dest = tmp_path / "dest"
    dest.mkdir()
    extract_context(out, str(dest))
    assert (dest / ".dockerignore").read_text() == ".dockerignore\n.dockerfile.abc\n"
    assert read_dockerfile(str(dest), ".dockerfile.abc") == ("Dockerfile", b"FROM x\n")
    apply_dockerignore(str(dest))
    assert sorted(os.listdir(dest)) == ["a"]


def test_the_tar_skips_excluded_directories_unless_an_exception_starts_inside(
    tmp_path: Path,
) -> None:
    _tree(tmp_path, {"Dockerfile": "x", ".dockerignore": "build\n!build/keep\nnode\n",
                     "build/keep": "k", "build/drop": "d", "node/x": "x"})  # fmt: skip
    out = io.BytesIO()
    write_context_tar(str(tmp_path), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = sorted(m.name for m in tar.getmembers())
    assert names == [".dockerignore", "Dockerfile", "build/keep"]


def test_read_dockerfile_rules(tmp_path: Path) -> None:
    _tree(tmp_path, {"dockerfile": "FROM lower\n", "empty": "", "sub/Dockerfile": "FROM s\n"})
    (tmp_path / "in").symlink_to("sub/Dockerfile")
    (tmp_path / "out").symlink_to("../../etc/passwd")
    assert read_dockerfile(str(tmp_path), "Dockerfile") == ("Dockerfile", b"FROM lower\n")
    assert read_dockerfile(str(tmp_path), "in") == ("in", b"FROM s\n")
    assert read_dockerfile(str(tmp_path), "/sub/Dockerfile")[1] == b"FROM s\n"
    with pytest.raises(InvalidArgument, match=r"the Dockerfile \(empty\) cannot be empty"):
        read_dockerfile(str(tmp_path), "empty")
    with pytest.raises(InvalidArgument, match=r"the symlink out points to \.\./\.\./etc/passwd"):
        read_dockerfile(str(tmp_path), "out")
    with pytest.raises(InvalidArgument, match="not a regular file"):
        read_dockerfile(str(tmp_path), "sub")
    with pytest.raises(NotFound, match="Cannot locate specified Dockerfile: other"):
        read_dockerfile(str(tmp_path), "other")


def test_select_through_relative_symlinks_that_stay_or_leave(tmp_path: Path) -> None:
    _tree(tmp_path, {"dir/c": "c", "dir/sub/d": "d"})
    (tmp_path / "dir" / "sub" / "up").symlink_to("../c")  # stays inside
    (tmp_path / "dir" / "sub" / "far").symlink_to("../../..")  # climbs out
    found = select(str(tmp_path), ["dir/sub/up", "*/sub/d"], file="Dockerfile", line=4)
    assert [(s.rel, s.kind, s.path) for s in found] == [
        ("dir/sub/up", "file", str(tmp_path / "dir" / "c")),
        ("dir/sub/d", "file", str(tmp_path / "dir" / "sub" / "d")),
    ]
    with pytest.raises(InvalidArgument, match=r"Dockerfile:4: .*the symlink dir/sub/far"):
        select(str(tmp_path), ["dir/sub/far/x"], file="Dockerfile", line=4)
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        select(str(tmp_path), ["dir/["], file="Dockerfile", line=4)


def test_content_key_covers_names_owners_and_links_not_mtimes(tmp_path: Path) -> None:
    _tree(tmp_path, {"d/a": "a"})
    (tmp_path / "d" / "l").symlink_to("a")

    def key(*names: str) -> str:
        return content_key(str(tmp_path), select(str(tmp_path), list(names), file="D", line=1))

    first = key("d")
    os.utime(tmp_path / "d", (5, 5))
    os.utime(tmp_path / "d" / "l", (5, 5), follow_symlinks=False)
    assert key("d") == first
    (tmp_path / "d" / "l").unlink()
    (tmp_path / "d" / "l").symlink_to("b")
    assert key("d") != first
    (tmp_path / "d" / "l").unlink()
    (tmp_path / "d" / "l").symlink_to("a")
    assert key("d") == first
    os.rename(tmp_path / "d" / "a", tmp_path / "d" / "A")
    assert key("d") != first
    os.rename(tmp_path / "d" / "A", tmp_path / "d" / "a")
    if os.geteuid() == 0:
        os.chown(tmp_path / "d" / "a", 1, 1)
        assert key("d") != first
