"""Deep trees on the real kernel (root), overlay and vfs: an image whose layer is 255
directories deep loads, runs through a mounted snapshot and goes; a store holding a
3000-level leftover from an older version opens, and ``sampan images`` works.

(tests/unit/test_image_limits.py has the limits themselves and the vfs cases that
need no root.)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan.image.layertar import LayerReader, write_layer
from sampan.image.snapshot import Snapshotter, open_snapshotter
from sampan.image.store import ImageStore
from sampan.image.treecopy import remove_tree
from sampan.oci import image as oi
from sampan.oci.digest import chain_ids
from tests.integration.daemon_fixtures import SampanDaemon

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]
DEPTH = 255  # directories above the file: 256 components, the unpacker's limit


@pytest.fixture(params=["overlay", "vfs"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _cleanup(tmp_path: Path) -> Iterator[None]:
    """Unmount what a test left, and remove deep trees (pytest's shutil.rmtree cannot)."""
    yield
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        point = line.split(" ")[4]
        if point.startswith(f"{tmp_path}/"):
            subprocess.run(["umount", "-l", point], check=False)
    for name in os.listdir(tmp_path):
        remove_tree(str(tmp_path / name), ignore_errors=True)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def deep_layer(levels: int, data: bytes) -> bytes:
    """A layer tar: d/, d/d/, ... LEVELS directories, then the file f at the bottom."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for i in range(1, levels + 1):
            info = tarfile.TarInfo("/".join(["d"] * i))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)
        info = tarfile.TarInfo("d/" * levels + "f")
        info.size, info.mode = len(data), 0o644
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def walk_down(root: Path, levels: int) -> int:
    """An fd of ROOT/d/.../d (LEVELS deep), reached through fds (the path is too long)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(levels):
        sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        os.close(fd)
        fd = sub
    return fd


def read_bottom(root: Path, levels: int) -> bytes:
    fd = walk_down(root, levels)
    try:
        f = os.open("f", os.O_RDONLY, dir_fd=fd)
        try:
            return os.read(f, 1 << 16)
        finally:
            os.close(f)
    finally:
        os.close(fd)


def make_deep(root: Path, levels: int) -> None:
    root.mkdir(parents=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(levels):
        os.mkdir("d", dir_fd=fd)
        sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = sub
    os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    os.close(fd)


def test_deep_layer_through_a_mounted_snapshot(driver: str, tmp_path: Path) -> None:
    s: Snapshotter = open_snapshotter(str(tmp_path / "s"), driver)
    layer = deep_layer(DEPTH, b"deep\n")
    diff_id = sha(layer)
    s.add(diff_id, None, io.BytesIO(layer), expected_diff_id=diff_id, label="deep")
    s.prepare("c1", diff_id)
    target = tmp_path / "rootfs"
    target.mkdir()
    s.mount("c1", str(target))
    assert read_bottom(target, DEPTH) == b"deep\n"
    # The container writes at the bottom and goes 300 levels deeper still.
    fd = walk_down(target, DEPTH)
    try:
        f = os.open("new", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(f, b"mine\n")
        os.close(f)
    finally:
        os.close(fd)
    make_deep(target / "deeper", 300)
    s.unmount(str(target))
    # Its writes become a layer (overlay: the upper dir alone) with every entry.
    out = io.BytesIO()
    write_layer(s.upper_dir("c1"), out, overlay_whiteouts=driver == "overlay")
    with LayerReader(io.BytesIO(out.getvalue()), "c1") as reader:
        names = [e.name for e in reader.entries()]
    assert "d/" * DEPTH + "new" in names
    assert "deeper/" + "d/" * 300 + "f" in names
    s.remove_active("c1")
    s.remove(diff_id)
    assert s.list() == [] and s.active() == {}
    assert [n for n in os.listdir(s.root) if n.startswith(".tmp-")] == []


def docker_archive(layer: bytes) -> bytes:
    config = json.dumps({
        "architecture": oi.host_platform().architecture, "os": "linux",
        "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": [sha(layer)]},
    }).encode()  # fmt: skip
    manifest = json.dumps([{"Config": "config.json", "RepoTags": ["deep:1"],
                            "Layers": ["layer.tar"]}]).encode()  # fmt: skip
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("config.json", config), ("layer.tar", layer),
                           ("manifest.json", manifest)):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sampan(daemon: SampanDaemon, *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "sampan.cli", "-H", daemon.host, *args],
                          capture_output=True, input=stdin, cwd=REPO, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def test_deep_image_load_images_rmi(driver: str, tmp_path: Path) -> None:
    daemon = SampanDaemon(tmp_path)
    root = daemon.root
    ImageStore(str(root / "image"), driver=driver).close()
    daemon.start()
    try:
        layer = deep_layer(DEPTH, b"deep\n")
        assert "deep:1" in sampan(daemon, "load", stdin=docker_archive(layer))
        assert "deep" in sampan(daemon, "images")
        with ImageStore(str(root / "image")) as store:
            (chain,) = chain_ids([sha(layer)])
            assert read_bottom(Path(store.snapshots.layer_dir(chain)), DEPTH) == b"deep\n"
        sampan(daemon, "rmi", "deep:1")
    finally:
        daemon.stop()
    with ImageStore(str(root / "image")) as store:
        store.collect()
        assert store.snapshots.list() == []


def test_a_store_with_a_3000_level_leftover_opens(driver: str, tmp_path: Path) -> None:
    """What a crash of an older version (shutil.rmtree's RecursionError) left behind."""
    daemon = SampanDaemon(tmp_path)
    root = daemon.root
    ImageStore(str(root / "image"), driver=driver).close()
    leftover = root / "image" / "snapshots" / ".tmp-rmlayer-leftover"
    make_deep(leftover / "diff", 3000)
    daemon.start()
    try:
        out = sampan(daemon, "images")
    finally:
        daemon.stop()
    assert out.split()[:2] == ["REPOSITORY", "TAG"]
    assert not leftover.exists()


def test_a_deep_layer_an_older_version_unpacked_is_used_and_removed(
    driver: str, tmp_path: Path
) -> None:
    s = open_snapshotter(str(tmp_path / "s"), driver)
    layer = deep_layer(1, b"top\n")
    diff_id = sha(layer)
    s.add(diff_id, None, io.BytesIO(layer), expected_diff_id=diff_id, label="old")
    make_deep(Path(s.layer_dir(diff_id)) / "old", 1500)  # as sampan unpacked before the limit
    s.prepare("c1", diff_id)
    target = tmp_path / "rootfs"
    target.mkdir()
    s.mount("c1", str(target))
    assert read_bottom(target / "old", 1500) == b""
    s.unmount(str(target))
    s.remove_active("c1")
    s.remove(diff_id)
    assert s.list() == [] and [n for n in os.listdir(s.root) if n.startswith(".tmp-")] == []
