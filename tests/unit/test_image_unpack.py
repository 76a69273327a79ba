"""unpack_layer: what a layer tar becomes on disk, and the bad input it refuses.

entries          files, dirs, symlinks, hardlinks, fifos; modes, owners, mtimes, xattrs
compression      gzip (several members), bzip2, xz, plain; zstd refused; the diff id
                 covers the whole uncompressed stream
whiteouts        overlay mode (0/0 devices, opaque xattr), apply mode (removals)
bad input        each case: InvalidArgument naming the layer and the entry, and a
                 sentinel directory next to DEST left exactly as it was
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sampan.errors import InvalidArgument, Unsupported
from sampan.image.unpack import unpack_layer

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (owners, trusted xattrs, mknod)")

# -- building tars ---------------------------------------------------------------------

Entry = tuple[tarfile.TarInfo, bytes | None]


def reg(name: str, data: bytes = b"", mode: int = 0o644, **kw: object) -> Entry:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    for key, value in kw.items():
        setattr(info, key, value)
    return info, data


def dir_(name: str, mode: int = 0o755, **kw: object) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    for key, value in kw.items():
        setattr(info, key, value)
    return info, None


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE, **kw: object) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    for key, value in kw.items():
        setattr(info, key, value)
    return info, None


def node(name: str, kind: bytes, major: int = 0, minor: int = 0) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor, info.mode = kind, major, minor, 0o600
    return info, None


def make_tar(*entries: Entry, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def unpack(
    blob: bytes, dest: Path, mode: str = "overlay", label: str = "L1", **kw: bool
) -> tuple[str, int]:
    dest.mkdir(exist_ok=True)
    return unpack_layer(io.BytesIO(blob), str(dest), mode=mode, label=label, **kw)


def xattr(path: Path, key: str) -> bytes | None:
    try:
        return os.getxattr(path, key, follow_symlinks=False)
    except OSError:
        return None


# -- entries -----------------------------------------------------------------------------


def test_files_dirs_links_modes_and_times(tmp_path: Path) -> None:
    blob = make_tar(
        dir_("./etc/", mtime=1000),
        reg("./etc/passwd", b"root:x:0:0\n", mtime=2000),
        reg("bin/su", b"ELF", mode=0o4755, mtime=3000),  # no "bin/" entry: made 0755
        dir_("tmp", mode=0o1777),
        link("etc/localtime", "/usr/share/zoneinfo/UTC", mtime=4000),
        link("bin/su2", "bin/su", kind=tarfile.LNKTYPE),
        node("run/fifo", tarfile.FIFOTYPE),
    )
    diff_id, size = unpack(blob, tmp_path / "d")
    d = tmp_path / "d"
    assert diff_id == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert size == len(b"root:x:0:0\n") + 3
    assert (d / "etc/passwd").read_bytes() == b"root:x:0:0\n"
    assert (d / "etc/passwd").stat().st_mtime == 2000
    assert (d / "etc").stat().st_mtime == 1000  # set after its children were written
    assert stat.S_IMODE((d / "bin/su").stat().st_mode) == 0o4755
    assert stat.S_IMODE((d / "bin").stat().st_mode) == 0o755
    assert stat.S_IMODE((d / "tmp").stat().st_mode) == 0o1777
    assert os.readlink(d / "etc/localtime") == "/usr/share/zoneinfo/UTC"
    assert os.lstat(d / "etc/localtime").st_mtime == 4000
    assert (d / "bin/su2").stat().st_ino == (d / "bin/su").stat().st_ino
    assert stat.S_ISFIFO(os.lstat(d / "run/fifo").st_mode)


@needs_root
def test_numeric_owners_and_setgid_after_chown(tmp_path: Path) -> None:
    blob = make_tar(
        reg("f", b"x", mode=0o2755, uid=1234, gid=5678, uname="nobody", gname="nogroup"),
        dir_("d", uid=42, gid=43),
        link("l", "f", uid=7, gid=8),
    )
    unpack(blob, tmp_path / "d")
    st = os.stat(tmp_path / "d/f")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o2755)
    st = os.stat(tmp_path / "d/d")
    assert (st.st_uid, st.st_gid) == (42, 43)
    st = os.lstat(tmp_path / "d/l")
    assert (st.st_uid, st.st_gid) == (7, 8)


def test_xattrs_from_pax(tmp_path: Path) -> None:
    info, data = reg("f", b"x")
    info.pax_headers = {"SCHILY.xattr.user.note": "hello"}
    dinfo, _ = dir_("d")
    dinfo.pax_headers = {"SCHILY.xattr.user.dir": "yes", "SCHILY.xattr.trusted.overlay.opaque": "y"}
    unpack(make_tar((info, data), (dinfo, None)), tmp_path / "d")
    assert xattr(tmp_path / "d/f", "user.note") == b"hello"
    assert xattr(tmp_path / "d/d", "user.dir") == b"yes"
    assert xattr(tmp_path / "d/d", "trusted.overlay.opaque") is None  # never from a layer


@needs_root
def test_security_capability_kept(tmp_path: Path) -> None:
    cap = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_raw
    info, data = reg("ping", b"ELF", mode=0o755)
    info.pax_headers = {"SCHILY.xattr.security.capability": cap.decode("latin-1")}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="latin-1") as tf:
        tf.addfile(info, io.BytesIO(data))
    unpack(buf.getvalue(), tmp_path / "d")
    assert xattr(tmp_path / "d/ping", "security.capability") == cap


def test_long_names_gnu_and_pax(tmp_path: Path) -> None:
    deep = "/".join(["directory-with-a-long-name"] * 8) + "/file"
    target = "t" * 150
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT):
        entries = [reg(deep, b"deep"), link("s", target)]
        if fmt == tarfile.USTAR_FORMAT:  # ustar: prefix + name only, 100-byte links
            entries = [reg("p" * 120 + "/" + "n" * 90, b"deep")]
        dest = tmp_path / f"d{fmt}"
        unpack(make_tar(*entries, fmt=fmt), dest)
        if fmt == tarfile.USTAR_FORMAT:
            assert (dest / ("p" * 120) / ("n" * 90)).read_bytes() == b"deep"
        else:
            assert (dest / deep).read_bytes() == b"deep"
            assert os.readlink(dest / "s") == target


def test_non_utf8_names(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as tf:  # fmt: skip
        info = tarfile.TarInfo(name)
        tf.addfile(info, io.BytesIO(b""))
    unpack(buf.getvalue(), tmp_path / "d")
    assert os.listdir(os.fsencode(tmp_path / "d")) == [b"caf\xe9"]


def test_later_entries_replace_earlier_ones(tmp_path: Path) -> None:
    blob = make_tar(
        dir_("a"), reg("a/inner", b"1"),
        reg("a", b"now a file"),       # a directory replaced by a file, as tar does
        reg("b", b"file"), dir_("b"),  # and the other way round
        link("c", "/etc/passwd"), reg("c", b"plain"),  # the symlink replaced, not followed
        reg("e", b"first"), reg("e", b"second"),
    )  # fmt: skip
    d = tmp_path / "d"
    unpack(blob, d)
    assert (d / "a").read_bytes() == b"now a file"
    assert (d / "b").is_dir()
    assert not (d / "c").is_symlink() and (d / "c").read_bytes() == b"plain"
    assert (d / "e").read_bytes() == b"second"


def test_root_entry_sets_the_root_directory(tmp_path: Path) -> None:
    d = tmp_path / "d"
    unpack(make_tar(dir_("./", mode=0o700, mtime=5), reg("./f", b"x")), d)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700 and d.stat().st_mtime == 5


# -- compression and the diff id -----------------------------------------------------------


def test_every_compression_gives_the_same_diff_id(tmp_path: Path) -> None:
    blob = make_tar(reg("f", os.urandom(300_000)), reg("g", b"x" * 5_000_000))
    want = "sha256:" + hashlib.sha256(blob).hexdigest()
    half = len(blob) // 2
    forms = {
        "plain": blob,
        "gzip": gzip.compress(blob),
        "gzip-members": gzip.compress(blob[:half]) + gzip.compress(blob[half:]),
        "bzip2": bz2.compress(blob),
        "xz": lzma.compress(blob),
    }
    for name, data in forms.items():
        diff_id, size = unpack(data, tmp_path / name)
        assert diff_id == want, name
        assert size == 5_300_000
        assert (tmp_path / name / "g").stat().st_size == 5_000_000


def test_diff_id_covers_padding_after_the_archive(tmp_path: Path) -> None:
    blob = make_tar(reg("f", b"x")) + bytes(512 * 30)
    diff_id, _ = unpack(gzip.compress(blob), tmp_path / "d")
    assert diff_id == "sha256:" + hashlib.sha256(blob).hexdigest()


def test_zstd_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(Unsupported, match="layer L1: zstd"):
        unpack(b"\x28\xb5\x2f\xfd" + bytes(100), tmp_path / "d")


def test_empty_stream_is_truncated(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="layer L1: truncated"):
        unpack(b"", tmp_path / "d")


# -- whiteouts ----------------------------------------------------------------------------


def is_whiteout(path: Path) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_overlay_mode_whiteouts_become_char_devices(tmp_path: Path) -> None:
    d = tmp_path / "d"
    unpack(make_tar(reg("etc/.wh.motd"), reg(".wh.opt"), reg("a/b/.wh.c")), d)
    assert is_whiteout(d / "etc/motd") and is_whiteout(d / "opt") and is_whiteout(d / "a/b/c")
    assert not (d / "etc/.wh.motd").exists()


def test_aufs_metadata_entries_are_skipped(tmp_path: Path) -> None:
    d = tmp_path / "d"
    unpack(make_tar(dir_(".wh..wh.plnk"), reg(".wh..wh.plnk/1.2", b"x"), reg(".wh..wh.aufs"),
                    reg("kept")), d)  # fmt: skip
    assert sorted(os.listdir(d)) == ["kept"]


@needs_root
def test_overlay_mode_opaque_dir(tmp_path: Path) -> None:
    d = tmp_path / "d"
    unpack(make_tar(dir_("var/cache"), reg("var/cache/.wh..wh..opq"), reg("var/cache/new")), d)
    assert xattr(d / "var/cache", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(d / "var/cache")) == ["new"]


@needs_root
def test_overlay_mode_dir_over_own_whiteout_is_opaque(tmp_path: Path) -> None:
    d = tmp_path / "d"
    unpack(make_tar(reg(".wh.data"), dir_("data"), reg(".wh.x"), reg("x/y")), d)
    assert (d / "data").is_dir() and xattr(d / "data", "trusted.overlay.opaque") == b"y"
    assert (d / "x").is_dir() and xattr(d / "x", "trusted.overlay.opaque") == b"y"


@pytest.fixture
def lower(tmp_path: Path) -> Path:
    """A parent tree, as the vfs snapshotter's copy of it."""
    d = tmp_path / "lower"
    (d / "etc").mkdir(parents=True)
    (d / "etc/motd").write_text("hi")
    (d / "etc/keep").write_text("k")
    (d / "opt/tool/bin").mkdir(parents=True)
    (d / "opt/tool/bin/x").write_text("x")
    (d / "var/cache").mkdir(parents=True)
    (d / "var/cache/old1").write_text("1")
    (d / "var/cache/old2").mkdir()
    return d


def test_apply_mode_whiteouts_remove(lower: Path) -> None:
    unpack(make_tar(reg("etc/.wh.motd"), reg(".wh.opt"), reg("nothere/.wh.x"), reg(".wh.nope")),
           lower, mode="apply")  # fmt: skip
    assert not (lower / "etc/motd").exists() and (lower / "etc/keep").exists()
    assert not (lower / "opt").exists()  # a directory, recursively
    assert not (lower / "nothere").exists()  # nothing made for a whiteout


def test_apply_mode_opaque_keeps_this_layers_children(lower: Path) -> None:
    blob = make_tar(
        reg("var/cache/before", b"b"),
        reg("var/cache/.wh..wh..opq"),
        reg("var/cache/after", b"a"),
    )
    unpack(blob, lower, mode="apply")
    assert sorted(os.listdir(lower / "var/cache")) == ["after", "before"]


def test_apply_mode_whiteout_never_hides_its_own_layer(lower: Path) -> None:
    unpack(make_tar(reg("etc/motd", b"new"), reg("etc/.wh.motd")), lower, mode="apply")
    assert (lower / "etc/motd").read_text() == "new"


def test_apply_mode_lower_symlink_parent_becomes_a_directory(lower: Path, tmp_path: Path) -> None:
    """usrmerge: the parent's lib -> usr/lib, and a layer writing lib/x: overlayfs would
    show a directory lib holding x alone, so apply does the same (and writes nothing
    through the link)."""
    (lower / "usr/lib").mkdir(parents=True)
    os.symlink("usr/lib", lower / "lib")
    unpack(make_tar(reg("lib/x", b"x")), lower, mode="apply")
    assert (lower / "lib").is_dir() and not (lower / "lib").is_symlink()
    assert os.listdir(lower / "usr/lib") == []


# -- bad input ------------------------------------------------------------------------------


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[Path]:
    """A directory beside DEST that no layer may touch; checked unchanged at the end."""
    s = tmp_path / "sentinel"
    s.mkdir()
    (s / "secret").write_text("secret")
    (s / "sub").mkdir()
    (s / "sub/file").write_text("file")
    before = tree_state(s)
    yield s
    assert tree_state(s) == before
    assert sorted(os.listdir(tmp_path)) in (["d", "sentinel"], ["lower", "sentinel"])


def tree_state(root: Path) -> list[tuple[str, int, int, bytes]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = os.lstat(p)
            data = p.read_bytes() if stat.S_ISREG(st.st_mode) else b""
            out.append((str(p.relative_to(root)), st.st_mode, st.st_nlink, data))
    return sorted(out)


BAD: dict[str, tuple[Callable[[str], list[Entry]], str]] = {
    "absolute": (lambda s: [reg("/etc/x", b"x")], "/etc/x: entry name is absolute"),
    "dotdot": (lambda s: [reg("../x", b"x")], "../x: entry name escapes the layer"),
    "dotdot-inside": (lambda s: [reg("a/../../x", b"x")], "a/../../x: entry name escapes"),
    "dotdot-to-sentinel": (lambda s: [reg("../sentinel/secret", b"pwned")], "escapes the layer"),
    "symlink-then-write": (
        lambda s: [link("evil", s), reg("evil/secret", b"pwned")],
        "evil/secret: parent evil is a symlink",
    ),
    "relative-symlink-then-write": (
        lambda s: [link("evil", "../sentinel"), reg("evil/secret", b"pwned")],
        "evil/secret: parent evil is a symlink",
    ),
    "nested-symlink-then-dir": (
        lambda s: [dir_("a"), link("a/b", s), dir_("a/b/sub/new")],
        "a/b/sub/new: parent a/b is a symlink",
    ),
    "symlink-then-whiteout": (
        lambda s: [link("evil", s), reg("evil/.wh.secret")],
        "evil/.wh.secret: parent evil is a symlink",
    ),
    "symlink-then-opaque": (
        lambda s: [link("evil", s), reg("evil/.wh..wh..opq")],
        "parent evil is a symlink",
    ),
    "file-as-parent": (lambda s: [reg("f", b"x"), reg("f/g", b"y")], "parent f is not a dir"),
    "hardlink-outside": (
        lambda s: [link("h", "../sentinel/secret", kind=tarfile.LNKTYPE)],
        "h: hardlink target ../sentinel/secret escapes the layer",
    ),
    "hardlink-absolute": (
        lambda s: [link("h", s + "/secret", kind=tarfile.LNKTYPE)],
        "/secret is absolute",
    ),
    "hardlink-missing": (
        lambda s: [link("h", "nothere", kind=tarfile.LNKTYPE)],
        "h: hardlink target nothere is not in the layer",
    ),
    "hardlink-through-symlink": (
        lambda s: [link("evil", s), link("h", "evil/secret", kind=tarfile.LNKTYPE)],
        "h: evil is not a directory",
    ),
    "hardlink-to-dir": (
        lambda s: [dir_("d"), link("h", "d", kind=tarfile.LNKTYPE)],
        "h: hardlink target d is a directory",
    ),
    "char-device": (lambda s: [node("dev/mem", tarfile.CHRTYPE, 1, 1)], "dev/mem: device nodes"),
    "block-device": (lambda s: [node("dev/sda", tarfile.BLKTYPE, 8, 0)], "dev/sda: device nodes"),
    "whiteout-device-in-tar": (lambda s: [node("x", tarfile.CHRTYPE)], "x: device nodes"),
    "replace-root": (lambda s: [reg("./", b"")], "./: replaces the layer's root"),
}


@pytest.mark.parametrize("mode", ["overlay", "apply"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_entries(case: str, mode: str, tmp_path: Path, sentinel: Path) -> None:
    make, message = BAD[case]
    blob = make_tar(*make(str(sentinel)), reg("after", b"never written"))
    with pytest.raises(InvalidArgument) as err:
        unpack(blob, tmp_path / "d", mode=mode, label="busybox layer 3a7f")
    assert str(err.value).startswith("layer busybox layer 3a7f: ")
    assert message in str(err.value)
    assert not (tmp_path / "d/after").exists()


@needs_root
def test_devices_allowed_when_asked(tmp_path: Path) -> None:
    d = tmp_path / "d"
    unpack(make_tar(node("dev/null", tarfile.CHRTYPE, 1, 3), node("dev/loop9", tarfile.BLKTYPE,
                    7, 9)), d, allow_devices=True)  # fmt: skip
    assert os.lstat(d / "dev/null").st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(os.lstat(d / "dev/loop9").st_mode)


def test_hardlink_to_a_symlink_links_the_symlink(tmp_path: Path, sentinel: Path) -> None:
    d = tmp_path / "d"
    unpack(make_tar(link("s", str(sentinel / "secret")), link("h", "s", kind=tarfile.LNKTYPE)), d)
    assert os.readlink(d / "h") == str(sentinel / "secret")
    assert os.lstat(d / "h").st_ino == os.lstat(d / "s").st_ino


def test_apply_mode_lower_symlink_is_never_followed(lower: Path, sentinel: Path) -> None:
    """The parent tree holds a symlink out of DEST; whiteouts and opaque markers
    under it touch nothing outside."""
    os.symlink(str(sentinel), lower / "evil")
    os.symlink(str(sentinel), lower / "evil2")
    blob = make_tar(reg("evil/.wh.secret"), reg("evil2/.wh..wh..opq"), reg("evil2/new", b"n"))
    unpack(blob, lower, mode="apply")
    assert (lower / "evil").is_symlink()  # untouched: a whiteout makes nothing
    assert (lower / "evil2").is_dir() and os.listdir(lower / "evil2") == ["new"]


def corrupt_cases() -> dict[str, tuple[bytes, str]]:
    blob = make_tar(reg("a", b"A" * 4000), reg("b", b"B" * 4000), reg("c", b"C" * 100))
    gz = gzip.compress(blob)
    bad_checksum = bytearray(blob)
    second = 512 + 4096  # header of "b"
    bad_checksum[second + 10] ^= 0x55
    end = 3 * 512 + 4096 + 4096 + 512  # the end of "c"'s data
    return {
        "corrupt gzip": (gz[:40] + bytes(x ^ 0xFF for x in gz[40:80]) + gz[80:], "corrupt gzip"),
        "truncated gzip": (gz[: len(gz) // 2], "truncated"),
        "gzip then garbage": (gz + b"garbage!", "trailing data after the gzip stream"),
        "tar cut in data": (blob[:1500], "truncated tar stream"),
        "tar cut in header": (blob[: 512 + 4096 + 200], "truncated tar stream"),
        "tar without end": (blob[:end], "truncated tar stream"),
        "bad header checksum": (bytes(bad_checksum), "corrupt tar header at offset 4608"),
        "not a tar": (b"hello world" * 100, "corrupt tar header at offset 0"),
    }


@pytest.mark.parametrize("case", sorted(corrupt_cases()))
def test_corrupt_streams(case: str, tmp_path: Path) -> None:
    data, message = corrupt_cases()[case]
    with pytest.raises(InvalidArgument, match=r"^layer L9: ") as err:
        unpack(data, tmp_path / "d", label="L9")
    assert message in str(err.value)


def test_huge_pax_header_refused(tmp_path: Path) -> None:
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, 1 << 30
    with pytest.raises(InvalidArgument, match="1073741824 bytes long"):
        unpack(header.tobuf(tarfile.USTAR_FORMAT), tmp_path / "d")
