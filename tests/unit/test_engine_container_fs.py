"""A container's files without a daemon: in-root path resolution, docker's path stat
bits, changes between trees, the commit config merge, the copy-mode extractor, the
tar writer's names for docker cp, and the CLI's copy decisions."""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from sampan.cli import container_files as cli
from sampan.engine import container_fs, inroot
from sampan.engine.container_changes import ADDED, DELETED, MODIFIED, overlay_changes, tree_changes
from sampan.engine.container_commit import apply_changes, merge_config
from sampan.errors import InvalidArgument
from sampan.image.layertar import end_archive, write_entry
from sampan.image.unpack import extract_archive

# -- inroot ------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A container-like tree whose symlinks point at the host if followed naively."""
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "shadow").write_text("container\n")
    (r / "data" / "deep").mkdir(parents=True)
    os.symlink("/", r / "hostroot")
    os.symlink("../../..", r / "data" / "deep" / "up")
    os.symlink("/etc", r / "etclink")
    os.symlink("/nowhere/file", r / "dangling")
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    return r


def _resolve(root: Path, path: str, follow: bool = False) -> tuple[str, str]:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with inroot.resolve(fd, path, follow=follow) as found:
            return found.path, found.name
    finally:
        os.close(fd)


def test_symlinks_resolve_inside_the_root(root: Path) -> None:
    assert _resolve(root, "/hostroot/etc/shadow") == ("/etc/shadow", "shadow")
    assert _resolve(root, "/data/deep/up/etc/shadow") == ("/etc/shadow", "shadow")
    assert _resolve(root, "/../../../etc/shadow") == ("/etc/shadow", "shadow")
    assert _resolve(root, "etclink/shadow") == ("/etc/shadow", "shadow")
    assert _resolve(root, "/etclink") == ("/etclink", "etclink")  # the link itself
    assert _resolve(root, "/etclink", follow=True) == ("/etc", "etc")
    assert _resolve(root, "/etclink/") == ("/etc", "")
    assert _resolve(root, "/etc/.") == ("/etc", "")
    assert _resolve(root, "/") == ("/", "")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with inroot.resolve(fd, "/hostroot/etc/shadow", follow=True) as found:
            data = os.read(os.open(found.name, os.O_RDONLY, dir_fd=found.dir_fd), 100)
        assert data == b"container\n"
        assert inroot.scoped_path(fd, "/dangling") == "/nowhere/file"
        assert inroot.scoped_path(fd, "/hostroot/etc/../missing/x") == "/missing/x"
    finally:
        os.close(fd)


def test_resolution_errors(root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _resolve(root, "/missing/x")
    with pytest.raises(FileNotFoundError):
        _resolve(root, "/dangling", follow=True)
    with pytest.raises(NotADirectoryError):
        _resolve(root, "/etc/shadow/x")
    with pytest.raises(OSError) as info:
        _resolve(root, "/loop1", follow=True)
    assert info.value.errno == errno.ELOOP
    with pytest.raises(OSError):
        _resolve(root, "/a" * (inroot.MAX_COMPONENTS + 1))


def test_clean_and_docker_names() -> None:
    assert inroot.clean("../a/./b/../c/") == "/a/c"
    assert container_fs._abs_path("etc/") == "/etc/"
    assert container_fs._abs_path("/etc/.") == "/etc/."
    assert container_fs._abs_path("/.") == "/."
    assert container_fs._abs_path("") == "/"
    assert [container_fs._base(p) for p in ("/", "/etc/", "/etc/.", "/a/b")] == [
        "/", "etc", ".", "b",
    ]  # fmt: skip


def test_go_file_mode() -> None:
    assert container_fs.go_file_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert container_fs.go_file_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert container_fs.go_file_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == (1 << 23) | 0o755
    assert container_fs.go_file_mode(stat.S_IFCHR | 0o666) == (1 << 26) | (1 << 21) | 0o666
    assert container_fs.go_file_mode(stat.S_IFDIR | stat.S_ISVTX | 0o777) == (
        (1 << 31) | (1 << 20) | 0o777
    )


# -- changes -----------------------------------------------------------------------------


def test_tree_changes(tmp_path: Path) -> None:
    base, tree = tmp_path / "base", tmp_path / "tree"
    for d in (base, tree):
        (d / "bin").mkdir(parents=True)
        (d / "bin" / "sh").write_text("sh")
        (d / "etc").mkdir()
        (d / "etc" / "hosts").write_text("")
        os.utime(d / "bin" / "sh", (1000, 1000))
    (base / "bin" / "true").write_text("true")
    (base / "gone" / "sub").mkdir(parents=True)
    (base / "gone" / "sub" / "f").write_text("f")
    (tree / "new" / "x").mkdir(parents=True)
    (tree / "bin" / "sh").write_text("changed!")
    (tree / "etc" / "hosts").write_text("ignored")
    found = tree_changes(str(base), str(tree), ignore=frozenset({"/etc/hosts"}))
    assert found == [
        ("/bin", MODIFIED), ("/bin/sh", MODIFIED), ("/bin/true", DELETED),
        ("/gone", DELETED), ("/new", ADDED), ("/new/x", ADDED),
    ]  # fmt: skip
    assert tree_changes(str(base), str(base)) == []


def test_overlay_changes_added_and_modified(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "group").write_text("g")
    os.symlink("/", lower / "hostlink")  # never followed
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "group").write_text("g2")
    (upper / "etc" / "new").write_text("n")
    (upper / "hostlink").mkdir()
    (upper / "hostlink" / "etc").mkdir()
    found = overlay_changes(str(upper), [str(lower)])
    assert ("/etc/group", MODIFIED) in found and ("/etc/new", ADDED) in found
    assert ("/etc", MODIFIED) in found
    assert ("/hostlink/etc", ADDED) in found  # /etc of the host was never looked at
    if os.geteuid() == 0:
        os.mknod(upper / "etc" / "gone", stat.S_IFCHR, os.makedev(0, 0))
        assert ("/etc/gone", DELETED) in overlay_changes(str(upper), [str(lower)])


# -- commit config -----------------------------------------------------------------------


def test_apply_changes_and_merge() -> None:
    container = {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"], "Labels": {"l": "1"},
                 "WorkingDir": "/w", "Hostname": "abc"}  # fmt: skip
    changed = apply_changes(container, ['ENTRYPOINT ["/bin/app"]', "ENV A=2 B=3", "LABEL x=y"])
    assert changed["Entrypoint"] == ["/bin/app"] and changed["Cmd"] is None
    assert changed["Env"] == ["PATH=/bin", "A=2", "B=3"]
    assert changed["Labels"] == {"l": "1", "x": "y"}
    merged = merge_config(changed, container)
    assert merged["Cmd"] is None and merged["WorkingDir"] == "/w"
    user = merge_config({"Env": ["A=9"]}, container)
    assert user["Env"] == ["A=9", "PATH=/bin"] and user["Cmd"] == ["sh"]
    assert user["Labels"] == {"l": "1"}
    with pytest.raises(InvalidArgument):
        apply_changes(container, ["RUN rm -rf /"])


# -- the copy-mode extractor -------------------------------------------------------------


def _tar(*members: tuple[str, bytes, str]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = data
                tar.addfile(info)
            elif kind == tarfile.DIRTYPE:
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data.encode()))
    buf.seek(0)
    return buf


def _extract(dest: Path, stream: io.BytesIO, **kwargs: object) -> None:
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        extract_archive(stream, fd, label="test", **kwargs)  # type: ignore[arg-type]
    finally:
        os.close(fd)


def test_copy_mode_keeps_names_literal_and_refuses_escapes(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("keep")
    _extract(dest, _tar((".wh.keep", tarfile.REGTYPE, "literal"), ("d", tarfile.DIRTYPE, ""),
                        ("d/f", tarfile.REGTYPE, "f")))  # fmt: skip
    assert (dest / "keep").read_text() == "keep"
    assert (dest / ".wh.keep").read_text() == "literal"
    os.symlink(str(tmp_path), dest / "out")
    for bad in (("../x", tarfile.REGTYPE, "x"), ("/x", tarfile.REGTYPE, "x"),
                ("out/x", tarfile.REGTYPE, "x")):  # fmt: skip
        with pytest.raises(InvalidArgument):
            _extract(dest, _tar(bad))
    assert not (tmp_path / "x").exists()
    with pytest.raises(InvalidArgument, match="cannot overwrite"):
        _extract(dest, _tar(("d", tarfile.REGTYPE, "file over dir")), no_overwrite_dir_non_dir=True)
    with pytest.raises(InvalidArgument, match="cannot overwrite"):
        _extract(dest, _tar(("keep", tarfile.DIRTYPE, "")), no_overwrite_dir_non_dir=True)
    _extract(dest, _tar(("keep", tarfile.REGTYPE, "replaced")), no_overwrite_dir_non_dir=True)
    assert (dest / "keep").read_text() == "replaced"


# -- docker cp's tar names ---------------------------------------------------------------


def _names(dir_fd: int, name: str, arcname: bytes, **kw: object) -> list[str]:
    buf = io.BytesIO()
    write_entry(dir_fd, name, arcname, buf, **kw)  # type: ignore[arg-type]
    end_archive(buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        return tar.getnames()


def test_write_entry_names(root: Path) -> None:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert _names(fd, "etc", b"etc") == ["etc", "etc/shadow"]
        assert _names(fd, "etc", b".") == [".", "./shadow"]
        assert _names(fd, "hostroot", b"hostroot") == ["hostroot"]  # a link, not followed
        top = _names(fd, "", b"/")
        assert "/etc/shadow" in top or "etc/shadow" in top
        data = root / "data"
        opaque = frozenset({os.stat(data).st_dev})
        assert _names(fd, "data", b"data", opaque_devices=opaque) == ["data"]
    finally:
        os.close(fd)


# -- the CLI's copy decisions ------------------------------------------------------------


def test_cli_copy_rules(tmp_path: Path) -> None:
    assert cli._split_arg("web:/etc") == ("web", "/etc")
    assert cli._split_arg("/abs:x") == ("", "/abs:x")
    assert cli._split_arg("./file:x") == ("", "./file:x")
    assert cli._split_dir_entry("/a/b/.") == ("/a/b", ".")
    assert cli._split_dir_entry("/a/b/") == ("/a", "b")
    assert cli._renamed("b", "new", "b/c/b") == "new/c/b"
    assert cli._renamed("/", "out", "/bin") == "out/bin"
    assert cli._rebase_name("/x/link/", "/x/target") == ("/x/target/", "link")
    src = cli._Info("/c/dir", True, True)
    assert cli._prepare(src, cli._Info("/h/existing", True, True)) == ("/h/existing", "dir", "dir")
    assert cli._prepare(src, cli._Info("/h/new")) == ("/h", "dir", "new")
    with pytest.raises(InvalidArgument, match="cannot copy directory"):
        cli._prepare(src, cli._Info("/h/file", True, False))
    with pytest.raises(InvalidArgument, match="no such directory"):
        cli._prepare(cli._Info("/c/f", True), cli._Info("/h/newdir/"))
    (tmp_path / "f").write_text("x")
    os.symlink("f", tmp_path / "l")
    info = cli._destination(str(tmp_path / "l"))
    assert (info.path, info.exists, info.is_dir) == (str(tmp_path / "f"), True, False)
    with pytest.raises(InvalidArgument):
        cli._destination(str(tmp_path / "nope" / "x"))


def test_write_entry_never_opens_what_replaced_a_stat_file(tmp_path: Path) -> None:
    """A running container swaps a file the writer has stat'ed for a fifo (whose open
    would block the daemon's thread forever) or a device node: refused, never opened."""
    import signal

    from sampan.image import layertar

    (tmp_path / "f").write_bytes(b"x" * 10)
    before = os.stat(tmp_path / "f")
    os.unlink(tmp_path / "f")
    os.mkfifo(tmp_path / "f")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)

    def _hung(*_: object) -> None:
        raise TimeoutError("the writer blocked opening a fifo")

    old = signal.signal(signal.SIGALRM, _hung)
    signal.alarm(5)
    try:
        with pytest.raises(InvalidArgument, match="replaced"):
            layertar._Writer(io.BytesIO(), False)._file(fd, "f", b"f", before)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        os.close(fd)


def test_vfs_commit_never_reads_through_a_symlink_swapped_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """commit --pause=false of a running container on vfs: between the diff and the read
    the container makes a directory a symlink to the host's; the host's file never goes
    into the layer."""
    from sampan.engine import container_changes, container_commit

    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host secret\n")
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "secret").write_text("mine\n")
    found = container_changes.tree_changes(None, str(tree))
    assert ("/a/secret", ADDED) in found
    (tree / "a" / "secret").unlink()
    (tree / "a").rmdir()
    os.symlink(host, tree / "a")  # the swap, after the walk
    monkeypatch.setattr(container_changes, "tree_changes", lambda *a, **k: found)
    out = io.BytesIO()
    try:
        container_commit.write_tree_diff(None, str(tree), out)
    except InvalidArgument as exc:
        assert "a/secret" in str(exc)
    assert b"host secret" not in out.getvalue()


def test_vfs_commit_layer(tmp_path: Path) -> None:
    from sampan.engine import container_commit

    base = tmp_path / "base"
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "gone").write_text("x")
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "new").write_text("new\n")
    os.symlink("/etc/new", tree / "link")
    os.link(tree / "etc" / "new", tree / "hard")
    out = io.BytesIO()
    container_commit.write_tree_diff(str(base), str(tree), out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["link"].issym() and members["link"].linkname == "/etc/new"
        assert "etc/.wh.gone" in members
        new = tar.extractfile("etc/new")
        assert new is not None and new.read() == b"new\n"
        assert members["hard"].islnk() or members["etc/new"].islnk()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"Env": 5}, "Env"),
        ({"Env": ["A=1", 2]}, "Env"),
        ({"Cmd": {"a": 1}}, "Cmd"),
        ({"ExposedPorts": ["80/tcp"]}, "ExposedPorts"),
        ({"Labels": {"a": 1}}, "Labels"),
        ({"Volumes": "/data"}, "Volumes"),
        ({"User": 0}, "User"),
        ({"OnBuild": "RUN x"}, "OnBuild"),
        ({"Healthcheck": []}, "Healthcheck"),
    ],
)
def test_commit_config_of_the_wrong_type_is_refused_naming_the_field(
    config: dict[str, object], field: str
) -> None:
    from sampan.engine import container_commit

    with pytest.raises(InvalidArgument, match=field):
        container_commit.check_config(config)


def test_commit_config_of_the_right_types_passes() -> None:
    from sampan.engine import container_commit

    ok = {"Env": ["A=1"], "Cmd": "echo hi", "Labels": {"a": "b"}, "ExposedPorts": {"80/tcp": {}},
          "Volumes": None, "User": "1000", "Entrypoint": None}  # fmt: skip
    checked = container_commit.check_config(ok)
    assert checked["Cmd"] == ["echo hi"]  # docker's StrSlice: a string is one argument
    merged = merge_config(checked, {"Env": ["B=2"], "Cmd": ["sh"]})
    assert merged["Env"] == ["A=1", "B=2"] and merged["Cmd"] == ["echo hi"]


def test_a_running_containers_view_is_its_own_root(tmp_path: Path) -> None:
    """The container's init died and its pid now names another process (here: this one,
    whose root is the host's) before the daemon heard of the exit: its /proc/PID/root is
    not the container's root filesystem, and cp must never work there."""
    import threading

    from sampan.engine.containers import Container
    from sampan.errors import Conflict

    class _Service:
        changed = threading.Condition()

        def bundle(self, c: Container) -> str:
            return str(tmp_path / c.id)

    (tmp_path / ("c" * 64) / "rootfs").mkdir(parents=True)
    c = Container("c" * 64, "web", "sha256:x", "busybox", 0.0, {}, {},
                  {"Running": True, "Pid": os.getpid()})  # fmt: skip
    with pytest.raises(Conflict, match="root"), container_fs.container_view(_Service(), c):  # type: ignore[arg-type]
        pytest.fail("the view of another process's root was given")


def test_copy_mode_leaves_the_destination_directory_as_it_is(tmp_path: Path) -> None:
    """`cp SRC/. DEST`'s tar starts with "./" (SRC's own mode, owner, mtime): as docker's
    Unpack, that entry is skipped -- a world-writable /tmp/. copied out must not make
    the user's directory 1777, nor a 0755 directory copied in take /tmp's sticky bit."""
    dest = tmp_path / "dest"
    dest.mkdir()
    os.chmod(dest, 0o750)
    before = os.stat(dest)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        top = tarfile.TarInfo("./")
        top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o1777, 1000
        tar.addfile(top)
        inner = tarfile.TarInfo("./f")
        inner.size = 1
        tar.addfile(inner, io.BytesIO(b"x"))
    buf.seek(0)
    _extract(dest, buf, owner=None)
    after = os.stat(dest)
    assert stat.S_IMODE(after.st_mode) == 0o750
    assert after.st_mtime_ns != 1000 * 10**9 and (after.st_uid, after.st_gid) == (
        before.st_uid, before.st_gid
    )  # fmt: skip
    assert (dest / "f").read_bytes() == b"x"
