"""write_layer: deterministic layer tars, and round trips through unpack_layer;
LayerReader: entries, data copied or skipped, the diff id.

a tree -> tar -> unpack -> the same tree (types, modes, owners, mtimes, xattrs,
hardlinks, long names), and the same tar again, byte for byte
overlay upper dirs: whiteout devices and opaque dirs become .wh. entries and back
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from sampan.errors import Unsupported
from sampan.image.layertar import LayerReader, write_layer
from sampan.image.unpack import unpack_layer

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (owners, trusted xattrs, mknod)")


def layer_of(path: Path, overlay_whiteouts: bool = False) -> tuple[bytes, str]:
    buf = io.BytesIO()
    diff_id = write_layer(str(path), buf, overlay_whiteouts=overlay_whiteouts)
    return buf.getvalue(), diff_id


def describe(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything a layer carries, per relative path (hardlinks as their group's first path)."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            group = inodes.setdefault(st.st_ino, rel) if not stat.S_ISDIR(st.st_mode) else rel
            data: object = None
            if stat.S_ISREG(st.st_mode):
                data = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                data = os.readlink(p)
            xattrs = {} if stat.S_ISLNK(st.st_mode) else {
                k: os.getxattr(p, k) for k in os.listxattr(p) if k.startswith("user.")
            }  # fmt: skip
            mtime = st.st_mtime_ns // 1_000_000_000
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, mtime, st.st_rdev, data, group,
                        sorted(xattrs.items()))  # fmt: skip
    return out


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    t = tmp_path / "tree"
    (t / "bin").mkdir(parents=True)
    (t / "bin/busybox").write_bytes(b"\x7fELF" + os.urandom(70_000))
    os.chmod(t / "bin/busybox", 0o4755)
    for applet in ("sh", "ls", "cat"):
        os.link(t / "bin/busybox", t / "bin" / applet)
    (t / "etc").mkdir()
    (t / "etc/hosts").write_text("127.0.0.1 localhost\n")
    os.setxattr(t / "etc/hosts", "user.note", b"\x00binary\xff")
    os.symlink("/proc/self/mounts", t / "etc/mtab")
    (t / "tmp").mkdir(mode=0o1777)
    os.chmod(t / "tmp", 0o1777)
    deep = t / "usr" / ("x" * 60) / ("y" * 60)
    deep.mkdir(parents=True)
    (deep / ("z" * 90)).write_text("deep")
    os.symlink("t" * 200, t / "usr/long-link")
    os.mkfifo(t / "fifo")
    (t / "empty").write_bytes(b"")
    (t / "a.b").write_text("sorted after a/")
    (t / "a").mkdir()
    (t / "a/inner").write_text("i")
    for p in [t / "etc/hosts", t / "bin/busybox", t / "a", t / "etc"]:
        os.utime(p, (1_600_000_000, 1_600_000_000), follow_symlinks=False)
    if IS_ROOT:
        os.chown(t / "etc/hosts", 1000, 2000)
        os.lchown(t / "etc/mtab", 3, 4)
        os.chown(t / "usr", 0o7777777 + 5, 77)  # too big for ustar's octal: PAX
        os.mknod(t / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return t


def test_round_trip_and_determinism(tree: Path, tmp_path: Path) -> None:
    data, diff_id = layer_of(tree)
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert layer_of(tree) == (data, diff_id)  # byte for byte
    out = tmp_path / "out"
    out.mkdir()
    got, _ = unpack_layer(io.BytesIO(data), str(out), mode="apply", label="rt", allow_devices=True)
    assert got == diff_id
    assert describe(out) == describe(tree)
    assert layer_of(out) == (data, diff_id)


def test_tar_shape(tree: Path) -> None:
    data, _ = layer_of(tree)
    assert len(data) % 512 == 0 and data[-1024:] == bytes(1024)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names.index("a") < names.index("a/inner") < names.index("a.b")  # walk order
    assert "." not in names and "" not in names  # no root entry
    by_name = {m.name: m for m in members}
    assert all(m.uname == "" and m.gname == "" for m in members)
    assert {by_name[f"bin/{a}"].type for a in ("cat", "ls", "sh")} == {tarfile.LNKTYPE}
    assert by_name["bin/cat"].linkname == "bin/busybox"  # the first in sorted order
    assert by_name["bin/busybox"].isreg() and by_name["bin/busybox"].mode == 0o4755
    assert by_name["etc/hosts"].pax_headers["SCHILY.xattr.user.note"]
    assert by_name["fifo"].isfifo()
    assert by_name["usr/long-link"].linkname == "t" * 200
    if IS_ROOT:
        assert by_name["usr"].uid == 0o7777777 + 5
        null = by_name["null"]
        assert null.ischr() and (null.devmajor, null.devminor) == (1, 3)


def test_sockets_are_skipped(tmp_path: Path) -> None:
    import socket

    t = tmp_path / "t"
    t.mkdir()
    (t / "f").write_text("f")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(t / "sock"))
        data, _ = layer_of(t)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.getnames() == ["f"]


def test_whiteout_device_kept_without_overlay_whiteouts(tmp_path: Path) -> None:
    t = tmp_path / "t"
    t.mkdir()
    os.mknod(t / "gone", stat.S_IFCHR, 0)  # 0/0: allowed without CAP_MKNOD (Linux 5.8+)
    data, _ = layer_of(t)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        (member,) = tf.getmembers()
    assert member.name == "gone" and member.ischr()


@needs_root
def test_overlay_upper_dir_round_trip(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc/motd", stat.S_IFCHR, 0)
    os.link(upper / "etc/motd", upper / "gone")  # overlayfs shares one whiteout inode
    (upper / "var/cache").mkdir(parents=True)
    os.setxattr(upper / "var/cache", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "var/cache", "trusted.overlay.impure", b"y")
    (upper / "var/cache/new").write_text("n")
    data, diff_id = layer_of(upper, overlay_whiteouts=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert sorted(members) == [".wh.gone", "etc", "etc/.wh.motd", "var", "var/cache",
                               "var/cache/.wh..wh..opq", "var/cache/new"]  # fmt: skip
    names = list(members)
    assert names.index("var/cache/.wh..wh..opq") == names.index("var/cache") + 1
    assert members["etc/.wh.motd"].isreg() and members["etc/.wh.motd"].size == 0
    assert not any("trusted.overlay" in k for m in members.values() for k in m.pax_headers)
    back = tmp_path / "back"
    back.mkdir()
    got, _ = unpack_layer(io.BytesIO(data), str(back), mode="overlay", label="rt")
    assert got == diff_id
    for name in ("etc/motd", "gone"):
        st = os.lstat(back / name)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(back / "var/cache", "trusted.overlay.opaque") == b"y"
    assert (back / "var/cache/new").read_text() == "n"


@needs_root
def test_overlay_redirects_are_unsupported(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "moved").mkdir(parents=True)
    os.setxattr(upper / "moved", "trusted.overlay.redirect", b"/orig")
    with pytest.raises(Unsupported, match=r"moved: overlayfs trusted\.overlay\.redirect"):
        layer_of(upper, overlay_whiteouts=True)


def test_layer_reader_entries(tree: Path, tmp_path: Path) -> None:
    import gzip

    data, diff_id = layer_of(tree)
    seen = {}
    with LayerReader(io.BytesIO(gzip.compress(data)), "r") as layer:
        for entry in layer.entries():
            seen[entry.name] = entry
            if entry.name == "etc/hosts":  # data copied for this one, skipped for the rest
                fd = os.open(tmp_path / "hosts", os.O_WRONLY | os.O_CREAT, 0o600)
                layer.copy_to(fd)
                os.close(fd)
        assert layer.finish() == diff_id
    assert (tmp_path / "hosts").read_text() == "127.0.0.1 localhost\n"
    hosts, link = seen["etc/hosts"], seen["bin/sh"]
    assert hosts.type == b"0" and hosts.size == 20 and hosts.mtime == 1_600_000_000 * 10**9
    assert hosts.xattrs == {"user.note": b"\x00binary\xff"}
    assert link.type == b"1" and link.linkname == "bin/busybox" and link.size == 0
    assert seen["a"].type == b"5" and seen["a"].name == "a"
