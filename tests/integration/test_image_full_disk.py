"""A full disk (issue 3, bad input): pull, load and bootstrap into a small tmpfs.

The store's root is a tmpfs of a few MB; each operation needs more.  Each
must fail with one OSError (ENOSPC) whose message names what it was
writing -- the blob digest, the layer, the archive member, the image -- and
leave the store as it was: no image recorded, no blob in the content store
that is not complete and verified, no half-made layer, and once ``collect``
has run (``sampan image prune``) the tmpfs holds what it held before.  The
store then still works: a small image pulled into the same tmpfs succeeds.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sampan.errors import describe
from sampan.image import archive, bootstrap
from sampan.image.registry.pull import pull
from sampan.image.store import ImageStore
from tests.integration import registry_fixtures as rf
from tests.integration.daemon_fixtures import SampanDaemon
from tests.integration.registry_fixtures import Seeded, needs_registry, skopeo_inspect

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts a tmpfs)")
registry = rf.registry
REPO = Path(__file__).resolve().parents[2]
NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"
SLACK = 128 << 10  # the SQLite WAL may keep a few pages more than before

Disk = Callable[[str], Path]


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    """``disk("4m")``: a new tmpfs of that size, unmounted at teardown."""
    mounted: list[Path] = []

    def make(size: str) -> Path:
        path = tmp_path / f"disk{len(mounted)}"
        path.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )
        mounted.append(path)
        return path

    yield make
    busy = []
    for path in reversed(mounted):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)  # never left behind
            busy.append(path)
    assert not busy, f"busy at unmount (a file left open?): {busy}"


def used(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def snapshot_of(store: ImageStore) -> dict[str, Any]:
    """What a failed operation must leave unchanged (layers: once collected)."""
    return {
        "images": sorted(r.id for r in store.list()),
        "tags": sorted(t for r in store.list() for t in r.tags),
        "layers": store.snapshots.list(),
    }


def assert_left_as_it_was(store: ImageStore, before: dict[str, Any], used_before: int,
                          mount: Path) -> None:  # fmt: skip
    now = snapshot_of(store)
    assert (now["images"], now["tags"]) == (before["images"], before["tags"])
    # Every visible blob is complete: its content hashes to its name.
    for digest, _size in store.content.list():
        algorithm, _, hexpart = digest.partition(":")
        assert hashlib.new(algorithm, store.content.read(digest)).hexdigest() == hexpart, digest
    # No half-made layer or scratch directory is left where a reader could see it.
    assert not [n for n in os.listdir(store.snapshots.root) if n.startswith(".tmp-")]
    scratch = os.path.join(store.root, "tmp")  # bootstrap's
    assert not os.path.isdir(scratch) or os.listdir(scratch) == []
    store.collect()  # layers and blobs unpacked for no image go, as after a crash
    assert snapshot_of(store) == before
    if not before["images"]:
        assert list(store.content.list()) == []
    assert os.listdir(os.path.join(store.content.root, "ingest")) == []
    assert used(mount) <= used_before + SLACK, (used(mount), used_before)


def big_layer(registry: Seeded) -> str:
    digest: str = skopeo_inspect(f"docker://{registry.host}/test/big:v1")["Layers"][0]
    return digest


def sampan_cli(root: Path, *args: str, host: str = "") -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "sampan.cli", "--root", str(root), *args]
    if host:
        argv[3:3] = ["-H", host]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=300)


# -- pull --------------------------------------------------------------------------------


@needs_registry
@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_pull_of_an_image_bigger_than_the_disk(registry: Seeded, disk: Disk, driver: str) -> None:
    mount = disk("4m")
    with ImageStore(str(mount / "image"), driver=driver) as store:
        before, used_before = snapshot_of(store), used(mount)
        layer = big_layer(registry)
        with pytest.raises(OSError) as info:
            pull(store, f"{registry.host}/test/big:v1")
        assert info.value.errno == errno.ENOSPC
        assert describe(info.value) == f"blob {layer}: {NO_SPACE}"
        assert not store.content.has(layer)
        assert_left_as_it_was(store, before, used_before, mount)
        # The disk was full, not the store broken: a small image fits and pulls.
        record = pull(store, f"{registry.host}/library/busybox:latest")
        assert record.id == registry.busybox_config
        assert [r.id for r in store.list()] == [registry.busybox_config]


@needs_registry
def test_pull_whose_blob_fits_but_whose_layer_does_not(registry: Seeded, disk: Disk) -> None:
    mount = disk("12m")  # the 8 MB blob fits; its 8 MB unpacked beside it does not
    with ImageStore(str(mount / "image")) as store:
        before, used_before = snapshot_of(store), used(mount)
        layer = big_layer(registry)
        with pytest.raises(OSError) as info:
            pull(store, f"{registry.host}/test/big:v1")
        message = describe(info.value)
        assert info.value.errno == errno.ENOSPC
        assert message.startswith(f"layer {registry.host}/test/big:v1 layer {layer[7:19]}: ")
        assert message.endswith(f": {NO_SPACE}")
        assert store.content.has(layer)  # complete and verified: the next pull reuses it
        assert_left_as_it_was(store, before, used_before, mount)


@needs_registry
def test_disk_full_when_the_image_is_recorded(
    registry: Seeded, disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything unpacked, then the disk fills just before the image's row is written:
    SQLite's "database or disk is full" comes out as ENOSPC naming the image."""
    mount = disk("8m")
    filler = mount / "filler"
    with ImageStore(str(mount / "image")) as store:
        before, used_before = snapshot_of(store), used(mount)
        commit = store.commit_image

        def fill_then_commit(*args: Any, **kwargs: Any) -> Any:
            with open(filler, "wb", buffering=0) as f, pytest.raises(OSError):
                while True:
                    f.write(b"\0" * (64 << 10))
            return commit(*args, **kwargs)

        monkeypatch.setattr(store, "commit_image", fill_then_commit)
        with pytest.raises(OSError) as info:
            pull(store, f"{registry.host}/library/busybox:latest")
        assert info.value.errno == errno.ENOSPC
        db = mount / "image" / "images.db"
        assert describe(info.value) == (f"image {registry.busybox_config[7:19]}: {db}: {NO_SPACE}")
        assert store.list() == []
        filler.unlink()
        monkeypatch.undo()
        assert_left_as_it_was(store, before, used_before, mount)
        # The failed COMMIT left no transaction open: the store records the next pull.
        assert pull(store, f"{registry.host}/library/busybox:latest").id == registry.busybox_config


# -- load --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A docker-archive of one 8 MB (incompressible) layer, on the real disk."""
    path = tmp_path_factory.mktemp("archive") / "big.tar"
    config = rf.docker_archive(path, [rf.random_layer(9, 8_000_000)], "big:v1")
    return path, config


@pytest.mark.parametrize(
    ("size", "names"),
    [
        ("4m", "archive member '{layer}/layer.tar': "),  # the layer's blob does not fit
        ("12m", "layer image {image} layer {layer12}: data/file9.bin: "),  # its unpacked copy
    ],
)
def test_load_of_an_archive_bigger_than_the_disk(
    big_archive: tuple[Path, str], disk: Disk, size: str, names: str
) -> None:
    path, config = big_archive
    mount = disk(size)
    with ImageStore(str(mount / "image")) as store:
        before, used_before = snapshot_of(store), used(mount)
        with pytest.raises(OSError) as info, open(path, "rb") as stream:
            archive.load(store, stream)
        layer = _archive_layer(path)
        assert info.value.errno == errno.ENOSPC
        expected = names.format(layer=layer, layer12=layer[:12], image=config[7:19]) + NO_SPACE
        assert describe(info.value) == expected
        assert_left_as_it_was(store, before, used_before, mount)


def _archive_layer(path: Path) -> str:
    """The hex digest of the archive's one layer.tar (its member directory's name)."""
    import tarfile

    with tarfile.open(path) as tar:
        (name,) = [n for n in tar.getnames() if n.endswith("/layer.tar")]
    member_dir = name.split("/")[0]
    with tarfile.open(path) as tar:
        f = tar.extractfile(name)
        assert f is not None
        digest = hashlib.sha256(f.read()).hexdigest()
    assert digest == member_dir  # docker_archive names the directory by the diff id
    return digest


# -- bootstrap ---------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists(bootstrap.BUSYBOX), reason="needs busybox-static")
@pytest.mark.parametrize("size", ["1m", "3m"])  # the rootfs copy / the layer tarball fails
def test_bootstrap_busybox_bigger_than_the_disk(disk: Disk, size: str) -> None:
    mount = disk(size)
    with ImageStore(str(mount / "image")) as store:
        before, used_before = snapshot_of(store), used(mount)
        with pytest.raises(OSError) as info:
            bootstrap.busybox(store, ["busybox:latest"])
        message = describe(info.value)
        assert info.value.errno == errno.ENOSPC
        scratch = f"{mount}/image/tmp/bootstrap-"
        assert message.startswith(f"bootstrap busybox:latest: {scratch}"), message
        assert message.endswith(f": {NO_SPACE}")
        assert_left_as_it_was(store, before, used_before, mount)


# -- the command line --------------------------------------------------------------------


@needs_registry
def test_cli_pull_load_and_bootstrap_on_a_full_disk(
    registry: Seeded, disk: Disk, big_archive: tuple[Path, str], tmp_path: Path
) -> None:
    """Exit 1 and one line on stderr naming the blob and ENOSPC: pull and load through a
    daemon whose root is the full disk, bootstrap on the store itself."""
    mount = disk("4m")
    daemon = SampanDaemon(tmp_path / "daemon")
    daemon.root = mount
    daemon.start()
    try:
        layer = big_layer(registry)
        host = daemon.host
        pulled = sampan_cli(mount, "pull", f"{registry.host}/test/big:v1", host=host)
        assert pulled.returncode == 1
        assert pulled.stderr == f"Error: blob {layer}: {NO_SPACE}\n"  # from the progress stream
        loaded = sampan_cli(mount, "load", "-i", str(big_archive[0]), host=host)
        assert loaded.returncode == 1
        assert loaded.stderr.startswith("Error response from daemon: archive member '")
        assert loaded.stderr.endswith(f"/layer.tar': {NO_SPACE}\n")
        assert len(loaded.stderr.splitlines()) == 1
        assert sampan_cli(mount, "image", "prune", "-f", host=host).returncode == 0
        listed = sampan_cli(mount, "images", "-q", host=host)
        assert listed.returncode == 0 and listed.stdout == ""
    finally:
        daemon.stop()
    small = disk("1m")
    made = sampan_cli(small, "image", "bootstrap", "busybox")
    assert made.returncode == 1
    assert made.stderr.startswith(f"Error: bootstrap busybox:latest: {small}/image/tmp/")
    assert made.stderr.endswith(f": {NO_SPACE}\n") and len(made.stderr.splitlines()) == 1
    with ImageStore(str(small / "image")) as store:
        assert store.list() == []
