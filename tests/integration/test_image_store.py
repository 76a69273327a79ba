"""The image store on the real kernel: bootstrap, names, sharing, removal, collection."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan.errors import Conflict, InvalidArgument, NotFound
from sampan.image import bootstrap
from sampan.image.store import ImageStore
from sampan.oci import image as oi

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture(params=["overlay", "vfs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(str(tmp_path / "image"), driver=request.param)
    yield s
    for key in list(s.snapshots.active()):
        s.release(key)
    s.close()


def _derived(store: ImageStore, base: str, cmd: list[str], name: str) -> str:
    """A second image on the same layer: only its config differs."""
    record = store.resolve(base)
    config = store.config_of(record).raw
    config["config"] = dict(config["config"], Cmd=cmd)
    from sampan import _json

    data = _json.dumps(config).encode()
    manifest = store.manifest(record)
    derived = oi.Manifest(
        manifest.media_type,
        oi.Descriptor(manifest.config.media_type, store.content.put(data), len(data)),
        manifest.layers,
    )
    from sampan.oci.reference import parse_reference

    digest = store.content.put(derived.to_bytes())
    return store.commit_image(digest, names=[parse_reference(name)]).id


def test_bootstrap_busybox_is_a_real_reproducible_image(store: ImageStore) -> None:
    record = bootstrap.busybox(store, ["busybox:latest"])
    assert record.tags == ["docker.io/library/busybox:latest"]
    assert record.size > 500_000 and len(record.chain) == 1
    config = store.config_of(record)
    assert config.container_config["Cmd"] == ["sh"]
    assert store.manifest(record).media_type == oi.DOCKER_MANIFEST
    again = bootstrap.busybox(store, ["busybox:latest"])
    assert again.id == record.id
    assert len(store.list()) == 1


def test_lookups_by_name_id_and_prefix(store: ImageStore) -> None:
    record = bootstrap.busybox(store, ["busybox:latest"])
    assert store.resolve("busybox").id == record.id
    assert store.resolve("docker.io/library/busybox:latest").id == record.id
    assert store.resolve(record.id).id == record.id
    assert store.resolve(record.short_id).id == record.id
    assert store.resolve(record.id.removeprefix("sha256:")[:6]).id == record.id
    for missing in ("busybox:nope", "alpine", "0000000000"):
        with pytest.raises(NotFound, match="no such image"):
            store.resolve(missing)


def test_images_that_share_a_layer_share_its_snapshot(store: ImageStore) -> None:
    bootstrap.busybox(store, ["busybox:latest"])
    other = _derived(store, "busybox", ["echo", "hi"], "echo:1")
    assert other != store.resolve("busybox").id
    assert len(store.snapshots.list()) == 1
    assert len(store.list()) == 2


def test_rmi_untags_then_deletes_and_collects(store: ImageStore) -> None:
    record = bootstrap.busybox(store, ["busybox:latest"])
    store.tag("busybox", "localhost:5000/mine:v1")
    removal = store.remove("busybox")
    assert removal.untagged == ["docker.io/library/busybox:latest"] and not removal.deleted
    store.tag("localhost:5000/mine:v1", "third:x")
    with pytest.raises(Conflict, match="referenced in multiple repositories"):
        store.remove(record.id)
    removal = store.remove(record.id, force=True)
    assert removal.deleted == [record.id] and removal.reclaimed > 0
    assert store.list() == []
    assert store.snapshots.list() == []
    assert list(store.content.list()) == []


def test_an_image_in_use_is_not_removed(store: ImageStore) -> None:
    record = bootstrap.busybox(store, ["busybox:latest"])
    store.prepare("container-1", "busybox")
    with pytest.raises(Conflict, match="being used by container container-1"):
        store.remove("busybox")
    removal = store.remove("busybox", force=True)
    assert removal.untagged and not removal.deleted
    assert store.prune(all_unused=True).deleted == []  # still used: kept, dangling
    store.release("container-1")
    assert store.prune().deleted == [record.id]
    assert store.snapshots.list() == []


def test_prune_removes_only_dangling_images(store: ImageStore) -> None:
    bootstrap.busybox(store, ["busybox:latest"])
    dangling = _derived(store, "busybox", ["true"], "tmp:1")
    store.remove("tmp:1")  # its last name: deleted outright
    _derived(store, "busybox", ["true"], "tmp:1")
    store.tag("busybox", "tmp:1")  # the tag moves away: the derived image dangles
    assert store.prune().deleted == [dangling]
    assert [r.tags for r in store.list()] == [
        ["docker.io/library/busybox:latest", "docker.io/library/tmp:1"]
    ]


def test_unreferenced_blobs_and_layers_are_collected(store: ImageStore) -> None:
    record = bootstrap.busybox(store, ["busybox:latest"])
    orphan = store.content.put(b"left by a pull killed before it recorded the image")
    assert store.collect() > 0
    assert not store.content.has(orphan)
    assert store.resolve("busybox").id == record.id
    assert len(store.snapshots.list()) == 1


def test_bad_names(store: ImageStore) -> None:
    bootstrap.busybox(store, ["busybox:latest"])
    with pytest.raises(InvalidArgument):
        store.tag("busybox", "library/UPPER")
    with pytest.raises(InvalidArgument, match="digest"):
        store.tag("busybox", "busybox@sha256:" + "a" * 64)
    with pytest.raises(InvalidArgument):
        store.resolve("")


def _layered(store: ImageStore, name: str, count: int) -> str:
    """An image of COUNT small uncompressed layers, put together by hand."""
    import io
    import tarfile

    from sampan import _json
    from sampan.oci.digest import sha256_of
    from sampan.oci.reference import parse_reference

    layers, diff_ids = [], []
    for i in range(count):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            data = f"{name} layer {i}\n".encode()
            info = tarfile.TarInfo(f"layer{i}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        blob = buf.getvalue()
        layers.append(oi.Descriptor(oi.DOCKER_LAYER, store.content.put(blob), len(blob)))
        diff_ids.append(sha256_of(blob))
    config = {"os": "linux", "architecture": "amd64", "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}  # fmt: skip
    data = _json.dumps(config).encode()
    manifest = oi.Manifest(
        oi.DOCKER_MANIFEST,
        oi.Descriptor(oi.DOCKER_CONFIG, store.content.put(data), len(data)),
        tuple(layers),
    )
    digest = store.content.put(manifest.to_bytes())
    return store.commit_image(digest, names=[parse_reference(name)]).id


def test_many_layer_images_are_removed_whatever_their_chain_ids(store: ImageStore) -> None:
    # Layers must go top first: removal used to try them in chain-id order.
    for n in range(3):
        _layered(store, f"stack{n}:1", 4)
    assert len(store.snapshots.list()) == 12
    for n in range(3):
        assert store.remove(f"stack{n}:1").deleted
    assert store.snapshots.list() == []
    assert list(store.content.list()) == []


def test_a_tag_that_looks_like_an_id_prefix_names_its_own_image(store: ImageStore) -> None:
    first = _layered(store, "one:1", 1)
    second = _layered(store, "two:1", 1)
    prefix = first.removeprefix("sha256:")[:6]
    assert store.resolve(prefix).id == first  # an id prefix, while no tag has that name
    store.tag("two:1", prefix)
    assert store.resolve(prefix).id == second  # the reference wins, as in docker
    removal = store.remove(prefix)
    assert removal.untagged == [f"docker.io/library/{prefix}:latest"] and not removal.deleted
    assert store.resolve("one:1").id == first


def test_a_snapshot_key_is_used_once(store: ImageStore) -> None:
    from sampan.errors import AlreadyExists

    _layered(store, "one:1", 2)
    store.prepare("c1", "one:1")
    with pytest.raises(AlreadyExists, match="snapshot c1 already exists"):
        store.prepare("c1", "one:1")
    assert store.users(store.resolve("one:1").id) == ["c1"]


def test_threads_share_a_store_and_release_their_connections(store: ImageStore) -> None:
    """The daemon's threads share one store; each releases its connection when done, so
    a long-running daemon does not gather one per thread.  (SQLite keeps a closed
    connection's descriptor while another connection in the process holds a lock on
    the file, and hands it to the next open: the count is bounded, not zero.)"""
    import threading

    bootstrap.busybox(store, ["busybox:latest"])
    seen: list[str] = []

    def worker() -> None:
        with store.writing():
            seen.append(store.resolve("busybox").id)
        store.release_thread()

    counts = []
    for _ in range(6):
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        counts.append(len(os.listdir("/proc/self/fd")))
    assert len(seen) == 48 and len(set(seen)) == 1
    assert max(counts) <= counts[0] + 8  # 48 threads: at most one round's worth deferred
    assert store.resolve("busybox").id == seen[0]
