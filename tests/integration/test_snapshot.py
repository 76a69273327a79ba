"""The snapshotters on the real kernel (root): one suite, run against overlay and vfs.

a 3-layer chain      whiteouts and opaque dirs applied in the mounted view
writes               land in the container's upper dir, never in a layer
the init layer       empty /etc/hosts & co, /dev /proc /sys, whatever the image holds
long chains          40 layers (mount(2)) and 130 (past one page: the new mount API)
refusals             diff id mismatch, chain id, missing parent, busy layers, mounted
                     snapshots, a second driver, device nodes
crashes              a kill -9 inside add or prepare leaves nothing visible; the next
                     open cleans up; a live maker's work is left alone
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import signal
import stat
import subprocess
import sys
import tarfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from sampan.image.layertar import write_layer
from sampan.image.snapshot import Snapshotter, open_snapshotter
from sampan.oci.digest import chain_ids, sha256_of

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]


def tar(*entries: tuple[str, bytes | None] | tuple[str, str, str]) -> bytes:
    """("name", data) files, ("name/", None) dirs, ("name", "->", target) symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for entry in entries:
            info = tarfile.TarInfo(entry[0])
            if len(entry) == 3:
                info.type, info.linkname = tarfile.SYMTYPE, entry[2]
                tf.addfile(info)
            elif entry[1] is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            else:
                assert isinstance(entry[1], bytes)
                info.size, info.mode = len(entry[1]), 0o644
                tf.addfile(info, io.BytesIO(entry[1]))
    return buf.getvalue()


def add_chain(s: Snapshotter, blobs: list[bytes], label: str = "img") -> list[str]:
    diff_ids = [sha256_of(b) for b in blobs]
    chain = chain_ids(diff_ids)
    for i, blob in enumerate(blobs):
        parent = chain[i - 1] if i else None
        s.add(chain[i], parent, io.BytesIO(blob), expected_diff_id=diff_ids[i], label=f"{label}{i}")
    return chain


def mounts_under(path: Path) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" ")[4]
        if point == str(path) or point.startswith(f"{path}/"):
            out.append(point)
    return out


def state(root: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            out[str(p.relative_to(root))] = (
                st.st_mode,
                p.read_bytes() if stat.S_ISREG(st.st_mode) else b"",
            )
    return out


@pytest.fixture(params=["overlay", "vfs"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def snap(driver: str, tmp_path: Path) -> Iterator[Snapshotter]:
    s = open_snapshotter(str(tmp_path / "snapshots"), driver)
    assert s.driver == driver
    yield s
    for point in reversed(mounts_under(tmp_path)):
        subprocess.run(["umount", "-l", point], check=False)
    s.close()


@pytest.fixture
def target(tmp_path: Path) -> Path:
    t = tmp_path / "rootfs"
    t.mkdir()
    return t


CHAIN3 = [
    tar(("etc/", None), ("etc/motd", b"hello"), ("etc/keep", b"keep"), ("var/cache/old1", b"1"),
        ("var/cache/old2/x", b"x"), ("opt/tool/bin/x", b"x"), ("etc/hosts", b"127.0.0.1 img")),
    tar(("etc/.wh.motd", b""), (".wh.opt", b""), ("new", b"new"), ("lib", "->", "usr/lib")),
    tar(("var/cache/.wh..wh..opq", b""), ("var/cache/fresh", b"f"), ("etc/keep", b"keep2")),
]  # fmt: skip


def test_chain_view_whiteouts_and_opaque_dirs(snap: Snapshotter, target: Path) -> None:
    chain = add_chain(snap, CHAIN3)
    assert snap.list() == sorted(chain)
    assert [snap.parent(c) for c in chain] == [None, chain[0], chain[1]]
    snap.prepare("c1", chain[-1])
    snap.mount("c1", str(target))
    assert sorted(os.listdir(target)) == ["dev", "etc", "lib", "new", "proc", "sys", "var"]
    assert not (target / "etc/motd").exists()
    assert (target / "etc/keep").read_bytes() == b"keep2"
    assert os.listdir(target / "var/cache") == ["fresh"]
    assert os.readlink(target / "lib") == "usr/lib"
    # The view at the middle layer: before the opaque dir.
    snap.prepare("c2", chain[1])
    mid = target.parent / "mid"
    mid.mkdir()
    snap.mount("c2", str(mid))
    assert sorted(os.listdir(mid / "var/cache")) == ["old1", "old2"]
    assert (mid / "etc/keep").read_bytes() == b"keep"
    snap.unmount(str(mid))


def test_writes_land_in_the_upper_dir_only(snap: Snapshotter, target: Path) -> None:
    chain = add_chain(snap, CHAIN3)
    layers = {c: state(Path(snap.layer_dir(c))) for c in chain}
    snap.prepare("c1", chain[-1])
    snap.mount("c1", str(target))
    (target / "written").write_text("w")
    (target / "etc/keep").write_text("changed")
    os.unlink(target / "new")
    snap.unmount(str(target))
    assert {c: state(Path(snap.layer_dir(c))) for c in chain} == layers
    upper = Path(snap.upper_dir("c1"))
    assert (upper / "written").read_text() == "w"
    assert (upper / "etc/keep").read_text() == "changed"
    if snap.driver == "overlay":
        st = os.lstat(upper / "new")
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # a whiteout
    else:
        assert not (upper / "new").exists()
    # Mounted again, the writes are still there; another container does not see them.
    snap.mount("c1", str(target))
    assert (target / "written").read_text() == "w"
    snap.prepare("c2", chain[-1])
    other = target.parent / "other"
    other.mkdir()
    snap.mount("c2", str(other))
    assert not (other / "written").exists() and (other / "new").exists()


def test_init_layer(snap: Snapshotter, target: Path) -> None:
    chain = add_chain(snap, [tar(("etc/hosts", b"from the image"), ("etc/hostname", b"img"),
                                 ("dev", "->", "nowhere"), ("bin/sh", b"sh"))])  # fmt: skip
    snap.prepare("c1", chain[0])
    snap.mount("c1", str(target))
    for name in ("etc/hosts", "etc/hostname", "etc/resolv.conf"):
        assert (target / name).read_bytes() == b""
    for name in ("dev", "proc", "sys"):
        assert (target / name).is_dir() and not (target / name).is_symlink()
    assert (target / "bin/sh").read_bytes() == b"sh"
    assert not (target / ".dockerenv").exists()


def test_prepare_over_nothing(snap: Snapshotter, target: Path) -> None:
    snap.prepare("scratch", None)
    snap.mount("scratch", str(target))
    assert sorted(os.listdir(target)) == ["dev", "etc", "proc", "sys"]
    assert snap.active() == {"scratch": None}


@pytest.mark.parametrize("count", [40, 130])
def test_long_chains_mount(snap: Snapshotter, target: Path, count: int) -> None:
    blobs = [tar((f"f{i}", str(i).encode()), ("top", f"layer {i}".encode())) for i in range(count)]
    blobs[0] = tar(("f0", b"0"), ("top", b"layer 0"), ("bottom-only", b"deep"))
    chain = add_chain(snap, blobs)
    mount = snap.prepare("long", chain[-1])
    if snap.driver == "overlay":
        data = ",".join(mount.options)
        assert (len(data) >= os.sysconf("SC_PAGE_SIZE")) == (count == 130), len(data)
        assert mount.options[0].count(":") == count  # init + every layer
    snap.mount("long", str(target))
    assert (target / "top").read_text() == f"layer {count - 1}"
    assert (target / "bottom-only").read_text() == "deep"
    assert (target / "f0").read_text() == "0"
    assert (target / f"f{count - 1}").read_text() == str(count - 1)
    assert len([n for n in os.listdir(target) if n.startswith("f")]) == count
    with pytest.raises(Conflict, match="still mounted"):
        snap.remove_active("long")
    snap.unmount(str(target))
    assert mounts_under(target) == []
    snap.remove_active("long")


def test_modes_do_not_follow_the_umask(driver: str, tmp_path: Path, target: Path) -> None:
    old = os.umask(0o077)
    try:
        snap = open_snapshotter(str(tmp_path / "s"), driver)
        (chain,) = add_chain(snap, [tar(("bin/sh", b"sh"))])
        snap.prepare("c1", chain)
    finally:
        os.umask(old)
    snap.mount("c1", str(target))
    try:
        for path in (target, target / "bin", target / "etc", target / "dev"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o755, path
        assert stat.S_IMODE((target / "etc/hosts").stat().st_mode) == 0o644
    finally:
        snap.unmount(str(target))


# -- refusals -------------------------------------------------------------------------


def leftovers(s: Snapshotter) -> list[str]:
    root = Path(s.root)
    found = [n for n in os.listdir(root) if n.startswith(".tmp-")]
    if (root / "l").is_dir():
        found += [f"l/{n}" for n in os.listdir(root / "l") if not (root / "l" / n).exists()]
    return found


def test_diff_id_mismatch_leaves_nothing(snap: Snapshotter) -> None:
    blob = tar(("f", b"x"))
    wrong = sha256_of(b"something else")
    with pytest.raises(InvalidArgument, match="layer img0: diff id mismatch: expected " + wrong):
        snap.add(wrong, None, io.BytesIO(blob), expected_diff_id=wrong, label="img0")
    assert snap.list() == [] and leftovers(snap) == []
    assert not snap.has(wrong)


def test_chain_id_must_follow_from_parent_and_diff_id(snap: Snapshotter) -> None:
    (base,) = add_chain(snap, [tar(("f", b"x"))])
    blob = tar(("g", b"y"))
    diff_id = sha256_of(blob)
    with pytest.raises(InvalidArgument, match="does not follow"):
        snap.add(diff_id, base, io.BytesIO(blob), expected_diff_id=diff_id, label="x")
    missing = sha256_of(b"missing")
    child = sha256_of(f"{missing} {diff_id}".encode())
    with pytest.raises(NotFound, match=f"parent layer {missing} is not unpacked"):
        snap.add(child, missing, io.BytesIO(blob), expected_diff_id=diff_id, label="x")


def test_bad_layer_content_leaves_nothing(snap: Snapshotter, tmp_path: Path) -> None:
    blob = tar(("evil", "->", str(tmp_path)), ("evil/owned", b"x"))
    diff_id = sha256_of(blob)
    with pytest.raises(InvalidArgument, match="layer bad0: evil/owned: parent evil is a symlink"):
        snap.add(diff_id, None, io.BytesIO(blob), expected_diff_id=diff_id, label="bad0")
    assert not (tmp_path / "owned").exists()
    assert snap.list() == [] and leftovers(snap) == []


def test_device_nodes_only_when_allowed(driver: str, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("dev/null")
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        tf.addfile(info)
    blob = buf.getvalue()
    diff_id = sha256_of(blob)
    s = open_snapshotter(str(tmp_path / "s"), driver)
    with pytest.raises(InvalidArgument, match="dev/null: device nodes"):
        s.add(diff_id, None, io.BytesIO(blob), expected_diff_id=diff_id, label="d")
    s.close()
    s = open_snapshotter(str(tmp_path / "s"), driver, allow_devices=True)
    s.add(diff_id, None, io.BytesIO(blob), expected_diff_id=diff_id, label="d")
    assert os.lstat(Path(s.layer_dir(diff_id)) / "dev/null").st_rdev == os.makedev(1, 3)


def test_views_are_exact_copies(driver: str, tmp_path: Path, target: Path) -> None:
    """Owners, setuid, xattrs, hardlinks, fifos, symlinks and device nodes, through the
    layer and the container's view (vfs: copied, never opened)."""
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin/busybox").write_bytes(b"ELF" * 1000)
    os.chmod(src / "bin/busybox", 0o4755)
    os.link(src / "bin/busybox", src / "bin/sh")
    os.chown(src / "bin", 12, 34)
    os.setxattr(src / "bin/busybox", "user.x", b"1")
    os.symlink("busybox", src / "bin/ls")
    os.mkfifo(src / "fifo")
    (src / "dev").mkdir()
    os.mknod(src / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    buf = io.BytesIO()
    write_layer(str(src), buf, overlay_whiteouts=False)
    s = open_snapshotter(str(tmp_path / "s"), driver, allow_devices=True)
    (chain,) = add_chain(s, [buf.getvalue()])
    s.prepare("c1", chain)
    s.mount("c1", str(target))
    try:
        for rel in ("bin", "bin/busybox", "bin/sh", "bin/ls", "fifo", "dev/null"):
            a, b = os.lstat(src / rel), os.lstat(target / rel)
            assert (
                a.st_mode,
                a.st_uid,
                a.st_gid,
                a.st_rdev,
                a.st_size,
                a.st_mtime_ns // 10**9,
            ) == (b.st_mode, b.st_uid, b.st_gid, b.st_rdev, b.st_size, b.st_mtime_ns // 10**9), rel
        assert os.stat(target / "bin/sh").st_ino == os.stat(target / "bin/busybox").st_ino
        assert os.getxattr(target / "bin/busybox", "user.x") == b"1"
        assert (target / "bin/sh").read_bytes() == b"ELF" * 1000
    finally:
        s.unmount(str(target))


def test_adding_a_present_layer_reads_nothing(snap: Snapshotter) -> None:
    blob = tar(("f", b"12345"))
    (chain,) = add_chain(snap, [blob])
    assert snap.size(chain) == 5
    stream = io.BytesIO(b"not even a tar")
    assert snap.add(chain, None, stream, expected_diff_id=chain, label="again") == 5
    assert stream.tell() == 0


def test_remove_refusals(snap: Snapshotter, target: Path) -> None:
    chain = add_chain(snap, CHAIN3[:2])
    with pytest.raises(Conflict, match=f"layer {chain[0]}: layer {chain[1]} is over it"):
        snap.remove(chain[0])
    snap.prepare("c1", chain[1])
    with pytest.raises(Conflict, match=f"layer {chain[1]}: snapshot c1 is over it"):
        snap.remove(chain[1])
    assert snap.active() == {"c1": chain[1]}
    snap.mount("c1", str(target))
    with pytest.raises(Conflict, match=f"snapshot c1: still mounted on {target}"):
        snap.remove_active("c1")
    snap.unmount(str(target))
    snap.unmount(str(target))  # not mounted: no error
    snap.remove_active("c1")
    with pytest.raises(NotFound):
        snap.remove_active("c1")
    snap.remove(chain[1])
    snap.remove(chain[0])
    with pytest.raises(NotFound):
        snap.remove(chain[0])
    assert snap.list() == [] and snap.active() == {} and leftovers(snap) == []
    if snap.driver == "overlay":
        assert os.listdir(Path(snap.root) / "l") == []


def test_keys(snap: Snapshotter) -> None:
    snap.prepare("c1", None)
    with pytest.raises(AlreadyExists, match="snapshot c1 already exists"):
        snap.prepare("c1", None)
    for bad in ("", ".hidden", "a/b", "../x", "x" * 129, "sp ace"):
        with pytest.raises(InvalidArgument, match="snapshot key"):
            snap.prepare(bad, None)
    with pytest.raises(NotFound, match="parent layer"):
        snap.prepare("c2", sha256_of(b"nope"))
    assert list(snap.active()) == ["c1"]


def test_the_driver_is_fixed_at_creation(snap: Snapshotter) -> None:
    other = "vfs" if snap.driver == "overlay" else "overlay"
    with pytest.raises(Conflict, match=f"holds {snap.driver} snapshots, not {other}"):
        open_snapshotter(snap.root, other)
    assert open_snapshotter(snap.root).driver == snap.driver


def test_default_driver_is_overlay_here(tmp_path: Path) -> None:
    assert open_snapshotter(str(tmp_path / "s")).driver == "overlay"


# -- crashes ------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import io, os, signal, sys
    sys.path.insert(0, {repo!r})
    from sampan.image.snapshot import open_snapshotter
    s = open_snapshotter({root!r}, {driver!r})
    real_rename = os.rename
    def rename(src, dst, **kw):
        if {die_at!r} in str(dst):
            os.kill(os.getpid(), signal.SIGKILL)
        return real_rename(src, dst, **kw)
    os.rename = rename
    {action}
    """
)


def run_child(driver: str, root: str, die_at: str, action: str) -> subprocess.Popen[bytes]:
    code = CHILD.format(repo=str(REPO), root=root, driver=driver, die_at=die_at, action=action)
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)


def test_killed_at_the_publishing_rename(driver: str, tmp_path: Path) -> None:
    """Killed after everything but the rename (overlay: its l/ link made)."""
    root = str(tmp_path / "s")
    blob = tar(("f", b"x" * 10_000))
    diff_id = sha256_of(blob)
    action = (f"s.add({diff_id!r}, None, io.BytesIO({blob!r}), expected_diff_id={diff_id!r}, "
              "label='k')\ns.prepare('c1', None)")  # fmt: skip
    child = run_child(driver, root, "/layers/", action)
    assert child.wait(30) == -signal.SIGKILL
    assert [n for n in os.listdir(root) if n.startswith(".tmp-add-")]  # the crash's remains
    s = open_snapshotter(root)
    assert leftovers(s) == [] and not s.has(diff_id) and s.list() == []
    if driver == "overlay":
        assert os.listdir(Path(root) / "l") == []
    s.add(diff_id, None, io.BytesIO(blob), expected_diff_id=diff_id, label="k")
    assert (Path(s.layer_dir(diff_id)) / "f").read_bytes() == b"x" * 10_000


def test_killed_while_preparing(driver: str, tmp_path: Path) -> None:
    root = str(tmp_path / "s")
    child = run_child(driver, root, "/active/", "s.prepare('c1', None)")
    assert child.wait(30) == -signal.SIGKILL
    s = open_snapshotter(root)
    assert s.active() == {} and leftovers(s) == []
    s.prepare("c1", None)
    assert s.active() == {"c1": None}


def test_killed_mid_unpack(driver: str, tmp_path: Path) -> None:
    root = str(tmp_path / "s")
    blob = tar(*[(f"f{i}", os.urandom(50_000)) for i in range(40)])
    diff_id = sha256_of(blob)
    action = (f"s.add({diff_id!r}, None, sys.stdin.buffer, expected_diff_id={diff_id!r}, "
              "label='k')")  # fmt: skip
    child = run_child(driver, root, "never", action)
    assert child.stdin is not None
    child.stdin.write(blob[: len(blob) // 2])
    child.stdin.flush()
    deadline = time.monotonic() + 20
    while not any(n.startswith(".tmp-add-") for n in os.listdir(root)):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)
    child.kill()
    child.wait(30)
    s = open_snapshotter(root)
    assert leftovers(s) == [] and s.list() == []


def test_killed_while_removing(driver: str, tmp_path: Path) -> None:
    root = str(tmp_path / "s")
    s = open_snapshotter(root, driver)
    (chain,) = add_chain(s, [tar(("f", b"x"))])
    s.prepare("c1", None)
    s.close()
    action = (
        "import sampan.image.snapshot as m\n"
        "m._rmtree = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "s.remove_active('c1') if sys.argv[1:] == ['active'] else s.remove(sys.argv[1])"
    )
    for arg in ("active", chain):
        code = CHILD.format(repo=str(REPO), root=root, driver=driver, die_at="never", action=action)
        assert subprocess.run([sys.executable, "-c", code, arg]).returncode == -signal.SIGKILL
        # What it was removing is out of sight; the next open removes the rest.
        assert len([n for n in os.listdir(root) if n.startswith(".tmp-rm")]) == 1
    s = open_snapshotter(root)
    assert s.list() == [] and s.active() == {} and leftovers(s) == []
    if driver == "overlay":
        assert os.listdir(Path(root) / "l") == []


def test_a_live_makers_work_is_left_alone(snap: Snapshotter) -> None:
    work = Path(snap.root) / ".tmp-add-alive"
    work.mkdir()
    (work / "diff").mkdir()
    fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        open_snapshotter(snap.root).close()
        assert work.is_dir()
    finally:
        os.close(fd)
    open_snapshotter(snap.root).close()
    assert not work.exists()


def test_two_images_share_their_base(snap: Snapshotter) -> None:
    base = tar(("base", b"b"))
    a = add_chain(snap, [base, tar(("a", b"a"))])
    b = add_chain(snap, [base, tar(("b", b"b"))])
    assert a[0] == b[0] and len(snap.list()) == 3
    digest = hashlib.sha256(base).hexdigest()
    assert a[0] == f"sha256:{digest}"
