"""What a hostile layer or archive can make sampan do: bounded, never a crash.

deep trees       a layer name deeper than 256 components or longer than 4095 bytes
                 is refused; trees deeper than the recursion limit (left by older
                 versions, or made by a container) are copied, written as a layer
                 and removed; a leftover temporary dir that cannot go never stops
                 the store from opening
layer headers    the PAX headers of one entry are 1 MiB together, 128 xattrs at most
archive headers  PAX and GNU long-name headers of `load` are bounded (a 1 GiB one is
                 refused before it is read: measured in a child process), a chain of
                 1500 is an error, not a RecursionError; JSON members past 16 MiB are
                 refused before they are read

The crafted tars are written block by block, the large ones through gzip to a
file, so the test itself stays small in memory.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path

import pytest

from sampan.errors import InvalidArgument
from sampan.image import archive, snapshot
from sampan.image.layertar import LayerReader, write_layer
from sampan.image.snapshot import open_snapshotter
from sampan.image.store import ImageStore
from sampan.image.treecopy import copy_tree, remove_tree
from sampan.image.unpack import unpack_layer
from sampan.oci.digest import sha256_of

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20
MAXRSS_LIMIT_KB = 200 * 1024


@pytest.fixture(autouse=True)
def _no_deep_leftovers(tmp_path: Path) -> Iterator[None]:
    """pytest removes old tmp dirs with shutil.rmtree, which a deep tree breaks."""
    yield
    for name in os.listdir(tmp_path):
        remove_tree(str(tmp_path / name), ignore_errors=True)


# -- building tars, block by block ------------------------------------------------------


def header(name: str, kind: bytes, size: int = 0, linkname: str = "") -> bytes:
    """A ustar header; a name or link over 100 bytes goes into a PAX header before it."""
    records = b""
    if len(name) > 100:
        records += pax_record("path", name.encode())
    if len(linkname) > 100:
        records += pax_record("linkpath", linkname.encode())
    info = tarfile.TarInfo(name[:100])
    info.type, info.size, info.mode, info.linkname = kind, size, 0o644, linkname[:100]
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    block = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    return (pax(records) if records else b"") + block


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def pax(records: bytes, kind: bytes = tarfile.XHDTYPE) -> bytes:
    return header("././@PaxHeader", kind, len(records)) + pad(records)


def member(name: str, data: bytes) -> bytes:
    return header(name, tarfile.REGTYPE, len(data)) + pad(data)


END = bytes(1024)


def gz_file(path: Path, blocks: Iterable[bytes]) -> Path:
    with gzip.GzipFile(path, "wb", compresslevel=1, mtime=0) as f:
        for block in blocks:
            f.write(block)
    return path


def zeros(n: int) -> Iterator[bytes]:
    chunk = bytes(MiB)
    while n > 0:
        yield chunk[: min(n, MiB)]
        n -= MiB


def deep_name(levels: int, leaf: str = "f") -> str:
    return "d/" * levels + leaf


def make_deep(root: Path, levels: int, data: bytes = b"bottom\n") -> None:
    """ROOT/d/d/.../d/f, LEVELS directories deep (far past PATH_MAX: made through fds)."""
    root.mkdir(exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir("d", 0o755, dir_fd=fd)
            sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
        f = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(f, data)
        os.close(f)
    finally:
        os.close(fd)


def deep_bottom(root: Path, levels: int) -> bytes:
    """The file at the bottom of a make_deep tree (read through fds)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = sub
        assert sorted(os.listdir(fd)) == ["f"]
        f = os.open("f", os.O_RDONLY, dir_fd=fd)
        try:
            return os.read(f, 1 << 16)
        finally:
            os.close(f)
    finally:
        os.close(fd)


def run_child(code: str) -> dict[str, object]:
    """CODE in a fresh interpreter, which fills the dict RESULT; with its peak RSS (KiB)."""
    prelude = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        sys.setrecursionlimit(1000)
    """)
    # VmHWM, not ru_maxrss: exec keeps the parent's peak in ru_maxrss, not in VmHWM.
    epilogue = textwrap.dedent("""
        with open("/proc/self/status") as status:
            hwm = [line for line in status if line.startswith("VmHWM:")][0]
        result["maxrss"] = int(hwm.split()[1])
    """)
    script = prelude + textwrap.dedent(code) + epilogue + "print(json.dumps(result))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


# -- unpack: names too deep or too long -------------------------------------------------


def unpack(data: bytes, dest: Path, mode: str = "apply") -> tuple[str, int]:
    dest.mkdir(exist_ok=True)
    return unpack_layer(io.BytesIO(data), str(dest), mode=mode, label="L")


def test_a_3000_level_name_is_refused(tmp_path: Path) -> None:
    blob = gzip.compress(member(deep_name(3000), b"x") + END)
    assert len(blob) < 10_000
    with pytest.raises(InvalidArgument, match=r"^layer L: d/d/.*\.\.\.: path too long") as exc:
        unpack(blob, tmp_path / "dest")
    assert "6001 bytes" in str(exc.value) and len(str(exc.value)) < 300
    blob = gzip.compress(member(deep_name(2000), b"x") + END)  # 4001 bytes
    with pytest.raises(InvalidArgument, match=r"^layer L: d/d/.*\.\.\.: path too deep") as exc:
        unpack(blob, tmp_path / "dest")
    assert "2001 components" in str(exc.value) and len(str(exc.value)) < 300


@pytest.mark.parametrize("mode", ["apply", "overlay"])
def test_256_components_unpack_257_do_not(tmp_path: Path, mode: str) -> None:
    unpack(member(deep_name(255), b"ok\n") + END, tmp_path / "ok", mode)
    assert deep_bottom(tmp_path / "ok", 255) == b"ok\n"
    with pytest.raises(InvalidArgument, match="path too deep: entry name of 257 components"):
        unpack(member(deep_name(256), b"no\n") + END, tmp_path / "no", mode)


def test_a_name_over_4095_bytes_is_refused(tmp_path: Path) -> None:
    name = "a" * 200 + "/" + "b" * 200 + "/" + "c" * 4000  # 3 components, 4402 bytes
    data = pax(pax_record("path", name.encode())) + member("x", b"") + END
    with pytest.raises(InvalidArgument, match=r"path too long: entry name of 4402 bytes") as exc:
        unpack(data, tmp_path / "dest")
    assert len(str(exc.value)) < 300


def test_a_hardlink_target_too_deep_is_refused(tmp_path: Path) -> None:
    data = member("f", b"x") + header("h", tarfile.LNKTYPE, linkname=deep_name(300)) + END
    with pytest.raises(InvalidArgument, match=r"layer L: h: path too deep: hardlink target"):
        unpack(data, tmp_path / "dest")


# -- trees deeper than the recursion limit ------------------------------------------------


def test_remove_tree_of_3000_levels(tmp_path: Path) -> None:
    make_deep(tmp_path / "t", 3000)
    (tmp_path / "t" / "side").symlink_to("/")  # never followed
    remove_tree(str(tmp_path / "t"))
    assert os.listdir(tmp_path) == []
    assert os.path.isdir("/usr")


def test_copy_tree_of_1500_levels(tmp_path: Path) -> None:
    make_deep(tmp_path / "src", 1500, b"deep\n")
    (tmp_path / "src" / "a").write_bytes(b"a\n")
    os.link(tmp_path / "src" / "a", tmp_path / "src" / "z")
    os.chmod(tmp_path / "src" / "d", 0o751)
    copy_tree(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert deep_bottom(tmp_path / "dst", 1500) == b"deep\n"
    assert os.stat(tmp_path / "dst" / "d").st_mode & 0o7777 == 0o751
    assert os.stat(tmp_path / "dst" / "a").st_ino == os.stat(tmp_path / "dst" / "z").st_ino


def test_write_layer_of_1500_levels(tmp_path: Path) -> None:
    make_deep(tmp_path / "src", 1500, b"deep\n")
    (tmp_path / "src" / "z").write_bytes(b"last\n")
    out = io.BytesIO()
    diff_id = write_layer(str(tmp_path / "src"), out, overlay_whiteouts=False)
    assert diff_id == sha256_of(out.getvalue())
    with LayerReader(io.BytesIO(out.getvalue()), "L") as layer:
        names = [e.name for e in layer.entries()]
        layer.finish()
    dirs = ["d" + "/d" * i for i in range(1500)]
    assert names == [*dirs, dirs[-1] + "/f", "z"]  # sorted, depth first


def test_deep_tree_through_vfs_add_and_prepare(tmp_path: Path) -> None:
    """300 levels (the unpacker's limit does not apply to a tree on disk): the layer is
    unpacked, copied into a container, written back as a layer, removed."""
    s = open_snapshotter(str(tmp_path / "s"), "vfs")
    blob = b"".join(header("d/" * i + "d", tarfile.DIRTYPE) for i in range(255))
    blob += member(deep_name(255), b"deep\n") + END
    diff_id = sha256_of(blob)
    s.add(diff_id, None, io.BytesIO(blob), expected_diff_id=diff_id, label="deep")
    s.prepare("c1", diff_id)
    fs = Path(s.upper_dir("c1"))
    assert deep_bottom(fs, 255) == b"deep\n"
    # The container makes it deeper; its tree is written as a layer and removed.
    bottom = fs
    for _ in range(10):
        bottom = bottom / "d"
    make_deep(bottom / "mine", 300, b"mine\n")  # 10 + 1 + 300 levels
    out = io.BytesIO()
    write_layer(str(fs), out, overlay_whiteouts=False)
    assert b"mine\n" in out.getvalue()
    s.remove_active("c1")
    s.remove(diff_id)
    assert s.active() == {} and s.list() == []
    assert [n for n in os.listdir(s.root) if n.startswith(".tmp-")] == []


def test_a_whiteout_removes_a_deep_tree_an_older_version_unpacked(tmp_path: Path) -> None:
    s = open_snapshotter(str(tmp_path / "s"), "vfs")
    base = header("d", tarfile.DIRTYPE) + END
    base_id = sha256_of(base)
    s.add(base_id, None, io.BytesIO(base), expected_diff_id=base_id, label="base")
    make_deep(Path(s.layer_dir(base_id)) / "d", 1500)  # what an older sampan unpacked
    top = member(".wh.d", b"") + member("kept", b"k") + END
    top_diff = sha256_of(top)
    chain = sha256_of(f"{base_id} {top_diff}".encode())
    s.add(chain, base_id, io.BytesIO(top), expected_diff_id=top_diff, label="top")
    assert sorted(os.listdir(s.layer_dir(chain))) == ["kept"]


def leftover(root: Path, levels: int) -> Path:
    tmp = root / ".tmp-add-leftover"
    tmp.mkdir(parents=True)
    make_deep(tmp / "diff", levels)
    return tmp


def test_a_store_with_a_3000_level_leftover_opens(tmp_path: Path) -> None:
    ImageStore(str(tmp_path / "image"), driver="vfs").close()
    tmp = leftover(tmp_path / "image" / "snapshots", 3000)
    with ImageStore(str(tmp_path / "image"), driver="vfs") as store:
        assert store.list() == []
    assert not tmp.exists()


def test_recovery_skips_a_dir_it_cannot_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "s"
    open_snapshotter(str(root), "vfs").close()
    (root / ".tmp-add-bad").mkdir()
    (root / ".tmp-add-good").mkdir()
    real = snapshot._rmtree

    def rmtree(path: str, ignore_errors: bool = False, dir_fd: int | None = None) -> None:
        if path.endswith("bad"):
            raise RecursionError("maximum recursion depth exceeded")
        real(path, ignore_errors, dir_fd)

    monkeypatch.setattr(snapshot, "_rmtree", rmtree)
    s = open_snapshotter(str(root), "vfs")
    assert s.list() == []
    assert sorted(n for n in os.listdir(root) if n.startswith(".tmp-")) == [".tmp-add-bad"]


# -- layer PAX headers --------------------------------------------------------------------


def entries(data: bytes) -> list[str]:
    with LayerReader(io.BytesIO(data), "L") as layer:
        return [e.name for e in layer.entries()]


def xattr_headers(count: int, size: int, first: int = 0) -> Iterator[bytes]:
    """COUNT PAX headers of about SIZE bytes, each setting its own xattr."""
    for i in range(first, first + count):
        yield pax(pax_record(f"SCHILY.xattr.user.k{i}", bytes(size - 40)))


def test_pax_headers_of_one_entry_are_1_mib_together(tmp_path: Path) -> None:
    ok = b"".join(xattr_headers(2, 400_000)) + member("f", b"") + member("g", b"") + END
    assert entries(ok) == ["f", "g"]
    bad = b"".join(xattr_headers(3, 400_000)) + member("f", b"") + END
    with pytest.raises(InvalidArgument, match=r"^layer L: pax headers up to offset \d+ add up"):
        entries(bad)
    # Each entry has its own budget.
    per_entry = b"".join(b"".join(xattr_headers(2, 400_000, 2 * i)) + member(f"f{i}", b"")
                         for i in range(4)) + END  # fmt: skip
    assert entries(per_entry) == ["f0", "f1", "f2", "f3"]


def test_an_entry_has_at_most_128_xattrs() -> None:
    records = b"".join(pax_record(f"SCHILY.xattr.user.k{i}", b"v") for i in range(128))
    assert entries(pax(records) + member("f", b"") + END) == ["f"]
    records += pax_record("SCHILY.xattr.user.one-more", b"v")
    with pytest.raises(InvalidArgument, match=r"^layer L: f: 129 xattrs, more than 128"):
        entries(pax(records) + member("f", b"") + END)


def test_many_large_pax_headers_stay_out_of_memory(tmp_path: Path) -> None:
    """300 headers of 1 MiB, each its own xattr: once held them all (300 MB)."""
    blob = gz_file(tmp_path / "layer.gz", chain(xattr_headers(300, MiB - 512),
                                                [member("f", b""), END]))  # fmt: skip
    result = run_child(f"""
        from sampan.errors import InvalidArgument
        from sampan.image.layertar import LayerReader
        result = {{}}
        try:
            with open({str(blob)!r}, "rb") as f, LayerReader(f, "L") as layer:
                result["names"] = [e.name for e in layer.entries()]
        except InvalidArgument as exc:
            result["error"] = str(exc)
    """)
    assert "add up to" in str(result.get("error")), result
    assert isinstance(result["maxrss"], int) and result["maxrss"] < MAXRSS_LIMIT_KB


# -- archive headers and members ---------------------------------------------------------


def load(tmp_path: Path, data: bytes) -> list[str]:
    with ImageStore(str(tmp_path / "image"), driver="vfs") as store:
        return archive.load(store, io.BytesIO(data))


def load_file(tmp_path: Path, path: Path) -> list[str]:
    with ImageStore(str(tmp_path / "image"), driver="vfs") as store, path.open("rb") as f:
        return archive.load(store, f)


def load_in_child(tmp_path: Path, path: Path) -> dict[str, object]:
    return run_child(f"""
        from sampan.errors import InvalidArgument
        from sampan.image import archive
        from sampan.image.store import ImageStore
        result = {{}}
        with ImageStore({str(tmp_path / "image")!r}, driver="vfs") as store:
            try:
                with open({str(path)!r}, "rb") as f:
                    result["loaded"] = archive.load(store, f)
            except InvalidArgument as exc:
                result["error"] = str(exc)
            result["images"] = len(store.list())
    """)


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME,
                                  tarfile.GNUTYPE_LONGLINK])  # fmt: skip
def test_a_1_gib_extended_header_is_refused_unread(tmp_path: Path, kind: bytes) -> None:
    if kind != tarfile.XHDTYPE:  # the costly one once; the others need not be that large
        with pytest.raises(InvalidArgument, match=r"extended tar header at offset 1024: "
                           r"2097152 bytes, more than 1048576"):  # fmt: skip
            load(tmp_path, member("a", b"a") + header("h", kind, 2 * MiB) + bytes(2 * MiB) + END)
        return
    size = 1 << 30
    path = gz_file(tmp_path / "bomb.tar.gz",
                   chain([member("a", b"a"), header("././@PaxHeader", kind, size)], zeros(size),
                         [member("manifest.json", b"[]"), END]))  # fmt: skip
    assert path.stat().st_size < 10 * MiB
    result = load_in_child(tmp_path, path)
    assert result["error"] == (
        "archive: extended tar header at offset 1024: 1073741824 bytes, more than 1048576"
    )
    assert result["images"] == 0
    assert isinstance(result["maxrss"], int) and result["maxrss"] < MAXRSS_LIMIT_KB


@pytest.mark.parametrize("count", [17, 1500])
def test_chained_pax_headers_are_an_error(tmp_path: Path, count: int) -> None:
    data = member("a", b"a") + pax(pax_record("comment", b"x")) * count + member("b", b"b") + END
    with pytest.raises(InvalidArgument, match=r"more than 16 in a row"):
        load(tmp_path, data)
    # 16 are fine (the archive then fails for what it is: no manifest).
    data = member("a", b"a") + pax(pax_record("comment", b"x")) * 16 + member("b", b"b") + END
    with pytest.raises(InvalidArgument, match=r"neither manifest.json nor index.json"):
        load(tmp_path, data)


def test_pax_headers_of_one_member_are_1_mib_together(tmp_path: Path) -> None:
    big = pax(pax_record("comment", bytes(600_000)))
    with pytest.raises(InvalidArgument, match=r"extended headers add up to more than 1048576"):
        load(tmp_path, big + big + member("b", b"b") + END)
    glob = pax(pax_record("comment", bytes(600_000)), tarfile.XGLTYPE)
    with pytest.raises(InvalidArgument, match=r"extended headers add up to more than 1048576"):
        load(tmp_path, glob + member("a", b"a") + glob + member("b", b"b") + END)


def test_a_config_member_past_16_mib_is_refused_unread(tmp_path: Path) -> None:
    manifest = json.dumps([{"Config": "big.json", "RepoTags": ["x:1"], "Layers": []}]).encode()
    big = chain([header("big.json", tarfile.REGTYPE, 17 * MiB)], zeros(17 * MiB))
    path = gz_file(tmp_path / "a.tar.gz", chain(big, [member("manifest.json", manifest), END]))
    with pytest.raises(InvalidArgument, match=r"^archive member big.json: 17825792 bytes, more "
                       r"than the 16 MiB a manifest, index or config may hold$"):  # fmt: skip
        load_file(tmp_path, path)


def test_an_index_json_past_16_mib_is_refused(tmp_path: Path) -> None:
    big = chain([header("index.json", tarfile.REGTYPE, 17 * MiB)], zeros(17 * MiB))
    path = gz_file(tmp_path / "a.tar.gz", chain([member("oci-layout", archive.OCI_LAYOUT)], big,
                                                [END]))  # fmt: skip
    with pytest.raises(InvalidArgument, match=r"^archive member index.json: 17825792 bytes"):
        load_file(tmp_path, path)
