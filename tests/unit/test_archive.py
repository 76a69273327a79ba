"""Image archives: load what docker, podman and skopeo write; save what they all load.

The archives here are built in the layouts the real tools write (see the
docstring of sampan.image.archive; tests/integration/test_archive_peers.py
runs the tools themselves).  The store is a real one with the vfs
snapshotter, which needs no root.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan.errors import InvalidArgument, NotFound, Unsupported
from sampan.image import archive
from sampan.image.store import ImageStore
from sampan.oci import image as oi
from sampan.oci.digest import chain_ids

# ---------------------------------------------------------------- building archives


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_bytes(members: list[tuple[str, bytes | str | None]]) -> bytes:
    """A tar of (name, data): bytes is a file, "->target" a symlink, None a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif isinstance(data, str):
                info.type = tarfile.SYMTYPE if data.startswith("->") else tarfile.LNKTYPE
                info.linkname = data.removeprefix("->").removeprefix("=>")
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


class Image:
    """An image's blobs: layers (plain tars), their gzip forms, the config."""

    def __init__(self, layer_files: list[dict[str, bytes]], cmd: str = "sh") -> None:
        self.layers = [tar_bytes(sorted(files.items())) for files in layer_files]
        self.gz_layers = [gz(layer) for layer in self.layers]
        self.diff_ids = [sha(layer) for layer in self.layers]
        config = {
            "architecture": oi.host_platform().architecture,
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": {"Cmd": [cmd]},
            "rootfs": {"type": "layers", "diff_ids": self.diff_ids},
            "history": [{"created_by": f"layer {i}"} for i, _ in enumerate(layer_files)],
        }
        self.config = json.dumps(config).encode()
        self.id = sha(self.config)

    def oci_manifest(self, gzip_layers: bool = True) -> bytes:
        layers = self.gz_layers if gzip_layers else self.layers
        media = oi.OCI_LAYER_GZIP if gzip_layers else oi.OCI_LAYER
        return json.dumps({
            "schemaVersion": 2, "mediaType": oi.OCI_MANIFEST,
            "config": {"mediaType": oi.OCI_CONFIG, "digest": self.id, "size": len(self.config)},
            "layers": [{"mediaType": media, "digest": sha(b), "size": len(b)} for b in layers],
        }).encode()  # fmt: skip


BASE = {"bin/sh": b"#!fake shell\n", "etc/passwd": b"root:x:0:0::/root:/bin/sh\n"}
BUSYBOX = Image([BASE])
TWO = Image([BASE, {"hello": b"hello\n"}], cmd="cat")


def docker_legacy(images: list[tuple[Image, list[str] | None]]) -> bytes:
    """docker <= 24: <v1>/layer.tar (a shared layer is a symlink), config json, manifest last."""
    members: list[tuple[str, bytes | str | None]] = []
    manifest = []
    seen: dict[str, str] = {}
    for image, tags in images:
        members.append((image.id[7:] + ".json", image.config))
        paths = []
        for layer in image.layers:
            v1 = hashlib.sha256(image.id.encode() + layer).hexdigest()
            members += [(v1, None), (f"{v1}/VERSION", b"1.0"), (f"{v1}/json", b"{}")]
            if sha(layer) in seen:
                members.append((f"{v1}/layer.tar", f"->../{seen[sha(layer)]}/layer.tar"))
            else:
                members.append((f"{v1}/layer.tar", layer))
                seen[sha(layer)] = v1
            paths.append(f"{v1}/layer.tar")
        manifest.append({"Config": image.id[7:] + ".json", "RepoTags": tags, "Layers": paths})
    members.append(("manifest.json", json.dumps(manifest).encode()))
    return tar_bytes(members)


def podman_archive(image: Image, tags: list[str]) -> bytes:
    """podman save: <diff id hex>.tar layers, <v1>/layer.tar symlinks to them."""
    members: list[tuple[str, bytes | str | None]] = []
    for layer in image.layers:
        members.append((sha(layer)[7:] + ".tar", layer))
    members.append((image.id[7:] + ".json", image.config))
    for layer in image.layers:
        v1 = hashlib.sha256(layer).hexdigest()
        members.append((f"{v1}/layer.tar", f"->../{sha(layer)[7:]}.tar"))
    manifest = [{"Config": image.id[7:] + ".json", "RepoTags": tags,
                 "Layers": [sha(layer)[7:] + ".tar" for layer in image.layers]}]  # fmt: skip
    members.append(("manifest.json", json.dumps(manifest).encode()))
    return tar_bytes(members)


def oci_layout(
    entries: list[tuple[bytes, dict[str, str]]],
    blobs: list[bytes],
    media_type: str = oi.OCI_MANIFEST,
) -> bytes:
    """An OCI layout: index.json naming manifests (by annotations), blobs/sha256/."""
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": media_type, "digest": sha(m), "size": len(m), "annotations": a}
        for m, a in entries]}  # fmt: skip
    members: list[tuple[str, bytes | str | None]] = [("blobs", None), ("blobs/sha256", None)]
    for blob in {sha(b): b for b in blobs}.values():
        members.append((f"blobs/sha256/{sha(blob)[7:]}", blob))
    members += [("index.json", json.dumps(index).encode()),
                ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')]  # fmt: skip
    return tar_bytes(members)


def oci_of(image: Image, annotations: dict[str, str]) -> bytes:
    manifest = image.oci_manifest()
    return oci_layout([(manifest, annotations)], [manifest, image.config, *image.gz_layers])


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(str(tmp_path / "image"), driver="vfs")
    yield s
    s.close()


def load(store: ImageStore, data: bytes) -> list[str]:
    return archive.load(store, io.BytesIO(data))


def layer_file(store: ImageStore, image: Image, path: str) -> bytes:
    top = chain_ids(image.diff_ids)[-1]
    return Path(store.snapshots.layer_dir(top), path).read_bytes()


def visible_blobs(store: ImageStore) -> set[str]:
    return {digest for digest, _ in store.content.list()}


def assert_nothing_registered(store: ImageStore) -> None:
    """No image; every blob left is one a collection removes; no spool left behind."""
    assert store.list() == []
    store.collect()
    assert visible_blobs(store) == set()
    assert store.snapshots.list() == []
    assert os.listdir(os.path.join(store.content.root, "ingest")) == []


# ---------------------------------------------------------------- load


def test_docker_legacy_archive_with_a_shared_layer_symlink(store: ImageStore) -> None:
    data = docker_legacy([(BUSYBOX, ["busybox:latest"]), (TWO, ["two:1", "example.com/x/two:2"])])
    assert load(store, data) == ["busybox:latest", "two:1", "example.com/x/two:2"]
    two = store.resolve("two:1")
    assert two.id == TWO.id
    assert two.tags == ["docker.io/library/two:1", "example.com/x/two:2"]
    assert two.diff_ids == TWO.diff_ids
    assert layer_file(store, TWO, "hello") == b"hello\n"
    assert layer_file(store, TWO, "bin/sh") == b"#!fake shell\n"  # vfs: the whole tree
    manifest = store.manifest(two)
    assert manifest.media_type == oi.OCI_MANIFEST
    assert [d.media_type for d in manifest.layers] == [oi.OCI_LAYER, oi.OCI_LAYER]
    assert [d.digest for d in manifest.layers] == TWO.diff_ids  # uncompressed: blob = diff id


def test_untagged_image_is_reported_by_id(store: ImageStore) -> None:
    assert load(store, docker_legacy([(TWO, None)])) == [TWO.id]
    assert store.get(TWO.id).tags == []


def test_podman_archive(store: ImageStore) -> None:
    assert load(store, podman_archive(TWO, ["localhost/two:1"])) == ["localhost/two:1"]
    assert store.resolve("localhost/two:1").id == TWO.id


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_compressed_archives(store: ImageStore, compress: object) -> None:
    data = compress(docker_legacy([(BUSYBOX, ["busybox:1"])]))  # type: ignore[operator]
    assert load(store, data) == ["busybox:1"]


def test_gzip_layers_in_a_docker_archive(store: ImageStore) -> None:
    members: list[tuple[str, bytes | str | None]] = [
        ("layer.tar.gz", TWO.gz_layers[0]),
        ("second.tar.gz", TWO.gz_layers[1]),
        ("config.json", TWO.config),
        ("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": ["gz:1"],
                                        "Layers": ["layer.tar.gz", "./second.tar.gz"]}]).encode()),
    ]  # fmt: skip
    assert load(store, tar_bytes(members)) == ["gz:1"]
    manifest = store.manifest(store.resolve("gz:1"))
    assert [d.media_type for d in manifest.layers] == [oi.OCI_LAYER_GZIP] * 2
    assert layer_file(store, TWO, "hello") == b"hello\n"


@pytest.mark.parametrize(
    ("annotations", "names"),
    [
        ({oi.REF_NAME: "localhost/two:1"}, ["localhost/two:1"]),  # podman
        ({oi.REF_NAME: "two:latest"}, ["two:latest"]),  # skopeo oci-archive:f:two:latest
        ({oi.REF_NAME: "v1"}, ["v1:latest"]),  # skopeo with a bare word (podman reads it alike)
        ({oi.REF_NAME: "1", oi.CONTAINERD_NAME: "docker.io/library/two:1"}, ["two:1"]),
        ({}, [TWO.id]),
        ({oi.REF_NAME: "Not A Name!"}, [TWO.id]),
    ],
)
def test_oci_layout_names(store: ImageStore, annotations: dict[str, str], names: list[str]) -> None:
    assert load(store, oci_of(TWO, annotations)) == names
    record = store.get(TWO.id)
    assert store.content.read(record.manifest) == TWO.oci_manifest()  # digest kept
    assert layer_file(store, TWO, "hello") == b"hello\n"


def test_oci_layout_one_manifest_under_two_names(store: ImageStore) -> None:
    manifest = TWO.oci_manifest()
    data = oci_layout(
        [(manifest, {oi.REF_NAME: "a:1"}), (manifest, {oi.REF_NAME: "b:2"})],
        [manifest, TWO.config, *TWO.gz_layers],
    )
    assert load(store, data) == ["a:1", "b:2"]
    assert len(store.list()) == 1


def _multi_platform() -> tuple[bytes, list[bytes]]:
    host = oi.host_platform()
    other = Image([{"other": b"arch\n"}], cmd="other")
    entries = []
    for image, platform in ((other, {"architecture": "s390x", "os": "linux"}),
                            (TWO, host.to_dict())):  # fmt: skip
        m = image.oci_manifest()
        entries.append({"mediaType": oi.OCI_MANIFEST, "digest": sha(m), "size": len(m),
                        "platform": platform})  # fmt: skip
    index = json.dumps({"schemaVersion": 2, "mediaType": oi.OCI_INDEX,
                        "manifests": entries}).encode()  # fmt: skip
    blobs = [index, TWO.oci_manifest(), TWO.config, *TWO.gz_layers,
             other.oci_manifest(), other.config, *other.gz_layers]  # fmt: skip
    return index, blobs


def test_oci_layout_with_a_multi_platform_index(store: ImageStore) -> None:
    index, blobs = _multi_platform()
    data = oci_layout([(index, {oi.REF_NAME: "multi:1"})], blobs, media_type=oi.OCI_INDEX)
    assert load(store, data) == ["multi:1"]
    record = store.resolve("multi:1")
    assert record.id == TWO.id
    assert record.index_digest == sha(index)


def test_oci_layout_without_the_wanted_platform(store: ImageStore) -> None:
    index, blobs = _multi_platform()
    data = oci_layout([(index, {oi.REF_NAME: "multi:1"})], blobs, media_type=oi.OCI_INDEX)
    with pytest.raises(NotFound, match="no manifest for linux/mips64le"):
        archive.load(store, io.BytesIO(data), platform=oi.Platform("linux", "mips64le"))
    assert_nothing_registered(store)


def test_docker25_archive_keeps_the_layout_manifest(store: ImageStore) -> None:
    """docker >= 25: manifest.json pointing into blobs/; index.json's manifest is reused."""
    manifest = TWO.oci_manifest()
    index = {
        "schemaVersion": 2,
        "mediaType": oi.OCI_INDEX,
        "manifests": [
            {
                "mediaType": oi.OCI_MANIFEST,
                "digest": sha(manifest),
                "size": len(manifest),
                "annotations": {oi.CONTAINERD_NAME: "docker.io/library/two:1", oi.REF_NAME: "1"},
            }
        ],
    }
    entry = {"Config": f"blobs/sha256/{TWO.id[7:]}", "RepoTags": ["two:1"],
             "Layers": [f"blobs/sha256/{sha(b)[7:]}" for b in TWO.gz_layers]}  # fmt: skip
    members: list[tuple[str, bytes | str | None]] = [
        (f"blobs/sha256/{sha(b)[7:]}", b) for b in (manifest, TWO.config, *TWO.gz_layers)
    ]
    members += [("index.json", json.dumps(index).encode()), ("oci-layout", archive.OCI_LAYOUT),
                ("manifest.json", json.dumps([entry]).encode()),
                ("repositories", b'{"two":{"1":"x"}}')]  # fmt: skip
    assert load(store, tar_bytes(members)) == ["two:1"]
    assert store.resolve("two:1").manifest == sha(manifest)


def test_large_members_stream_into_the_content_store(
    store: ImageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "SMALL_MEMBER", 16)  # every layer takes the streaming path
    assert load(store, docker_legacy([(TWO, ["two:1"])])) == ["two:1"]
    assert load(store, oci_of(BUSYBOX, {oi.REF_NAME: "bb:1"})) == ["bb:1"]
    assert layer_file(store, TWO, "hello") == b"hello\n"


def test_memory_budget_spills_small_members(
    store: ImageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "MEMORY_BUDGET", 100)
    found = archive.read_archive(io.BytesIO(docker_legacy([(TWO, ["two:1"])])), store.content)
    layers = [m for name, m in found.files.items() if name.endswith("layer.tar")]
    assert layers and all(m.data is None for m in layers)
    assert all(store.content.has(m.digest) for m in layers)


# ---------------------------------------------------------------- bad archives


def _docker_members() -> list[tuple[str, bytes | str | None]]:
    entry = {"Config": "config.json", "RepoTags": ["two:1"], "Layers": ["layer.tar", "top.tar"]}
    return [("layer.tar", TWO.layers[0]), ("top.tar", TWO.layers[1]), ("config.json", TWO.config),
            ("manifest.json", json.dumps([entry]).encode())]  # fmt: skip


def _with(name: str, data: bytes | str | None) -> bytes:
    members = [(n, d) for n, d in _docker_members() if n != name]
    if data is not None:
        members.append((name, data))
    return tar_bytes(members)


def _manifest(**entry: object) -> bytes:
    base: dict[str, object] = {"Config": "config.json", "RepoTags": ["two:1"],
                               "Layers": ["layer.tar", "top.tar"]}  # fmt: skip
    base.update(entry)
    return _with("manifest.json", json.dumps([base]).encode())


def _evil_layer() -> bytes:
    evil = tar_bytes([("../escape", b"boom")])
    config = json.loads(TWO.config)
    config["rootfs"]["diff_ids"] = [sha(evil)]
    cfg = json.dumps(config).encode()
    manifest = json.dumps([{"Config": "c.json", "RepoTags": ["evil:1"], "Layers": ["l.tar"]}])
    return tar_bytes([("l.tar", evil), ("c.json", cfg), ("manifest.json", manifest.encode())])


BAD = {
    "not a tar": (b"hello, this is not a tar archive\n" * 40, InvalidArgument, "not a tar"),
    "empty": (b"", InvalidArgument, "empty input"),
    "truncated": (docker_legacy([(TWO, ["two:1"])])[:3000], InvalidArgument, "truncated"),
    "zstd": (b"\x28\xb5\x2f\xfd" + bytes(100), Unsupported, "zstd"),
    "no manifest": (tar_bytes([("x", b"y")]), InvalidArgument, "neither manifest.json"),
    "manifest not JSON": (_with("manifest.json", b"{not json"), InvalidArgument,
                          "archive member manifest.json: not JSON"),
    "manifest not a list": (_with("manifest.json", b"{}"), InvalidArgument, "expected a list"),
    "missing layer": (_with("top.tar", None), InvalidArgument,
                      r"\[0\].Layers\[1\]: 'top.tar' is not in the archive"),
    "layer path ../": (_manifest(Layers=["layer.tar", "../../etc/passwd"]), InvalidArgument,
                       r"Layers\[1\]: '../../etc/passwd' is outside the archive"),
    "absolute layer path": (_manifest(Layers=["/etc/passwd", "top.tar"]), InvalidArgument,
                            "outside the archive"),
    "member named ../": (tar_bytes([("../x", b"y")]), InvalidArgument,
                         "'../x' is outside the archive"),
    "symlink out": (_with("top.tar", "->../../../etc/passwd"), InvalidArgument,
                    "link target: .* is outside the archive"),
    "absolute symlink": (_with("top.tar", "->/etc/passwd"), InvalidArgument, "is absolute"),
    "symlink loop": (_with("top.tar", "->top.tar"), InvalidArgument, "too many levels"),
    "layer digest": (_with("top.tar", TWO.layers[1][:-1] + b"\x01"), InvalidArgument,
                     "content has digest .*, the config's diff id is"),
    "layer count": (_manifest(Layers=["layer.tar"]), InvalidArgument,
                    "1 layers, but config config.json lists 2 diff ids"),
    "config not JSON": (_with("config.json", b"nope"), InvalidArgument,
                        "archive member config.json: not JSON"),
    "bad RepoTags": (_manifest(RepoTags=["no spaces:1"]), InvalidArgument, "RepoTags"),
    "bad layer tar": (_evil_layer(), InvalidArgument, "escape"),
    "index without layout": (tar_bytes([("index.json", b"{}")]), InvalidArgument, "oci-layout"),
    "only repositories": (tar_bytes([("repositories", b"{}")]), Unsupported, "pre-1.10"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_archives_register_nothing(store: ImageStore, case: str) -> None:
    data, error, message = BAD[case]
    with pytest.raises(error, match=message):
        load(store, data)
    assert_nothing_registered(store)


def test_oci_blob_with_the_wrong_content(store: ImageStore) -> None:
    manifest = TWO.oci_manifest()
    bad = oci_layout([(manifest, {oi.REF_NAME: "two:1"})],
                     [manifest, TWO.config, TWO.gz_layers[0]])  # fmt: skip
    name = f"blobs/sha256/{sha(TWO.gz_layers[1])[7:]}"
    tampered = tar_bytes([*_members(bad), (name, TWO.gz_layers[0])])
    with pytest.raises(InvalidArgument, match=f"archive member {name}: content has digest"):
        load(store, tampered)
    assert_nothing_registered(store)


def test_oci_blob_missing_or_of_the_wrong_size(store: ImageStore) -> None:
    manifest = TWO.oci_manifest()
    missing = oci_layout([(manifest, {})], [manifest, TWO.config, TWO.gz_layers[0]])
    with pytest.raises(InvalidArgument, match=r"layers\[1\]: blob sha256:.* is not in the archive"):
        load(store, missing)
    doc = json.loads(manifest)
    doc["layers"][0]["size"] += 1
    wrong = json.dumps(doc).encode()
    sized = oi_layout_of(wrong)
    with pytest.raises(InvalidArgument, match="bytes, the descriptor says"):
        load(store, sized)
    assert_nothing_registered(store)


def test_a_large_blob_with_the_wrong_content_is_not_kept(
    store: ImageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "SMALL_MEMBER", 16)
    name = f"blobs/sha256/{sha(b'other')[7:]}"
    data = tar_bytes([(name, TWO.layers[0]), ("oci-layout", archive.OCI_LAYOUT)])
    with pytest.raises(InvalidArgument, match=f"archive member {name}: blob .* content has digest"):
        load(store, data)
    assert_nothing_registered(store)


def oi_layout_of(manifest: bytes) -> bytes:
    return oci_layout([(manifest, {})], [manifest, TWO.config, *TWO.gz_layers])


def _members(data: bytes) -> list[tuple[str, bytes | None]]:
    """(name, bytes) of each regular file, (name, None) of anything else."""
    out: list[tuple[str, bytes | None]] = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for info in tar:
            f = tar.extractfile(info) if info.isfile() else None
            out.append((info.name, f.read() if f else None))
    return out


def test_one_bad_image_registers_none_of_the_archive(store: ImageStore) -> None:
    good = [
        {"Config": f"{BUSYBOX.id[7:]}.json", "RepoTags": ["good:1"], "Layers": ["good.tar"]},
        {"Config": "config.json", "RepoTags": ["bad:1"], "Layers": ["layer.tar", "gone"]},
    ]
    members = [("good.tar", BUSYBOX.layers[0]), (f"{BUSYBOX.id[7:]}.json", BUSYBOX.config),
               *_docker_members()[:3], ("manifest.json", json.dumps(good).encode())]  # fmt: skip
    with pytest.raises(InvalidArgument, match="'gone' is not in the archive"):
        load(store, tar_bytes(members))
    assert_nothing_registered(store)


# ---------------------------------------------------------------- save


def saved(store: ImageStore, names: list[str]) -> bytes:
    out = io.BytesIO()
    archive.save(store, names, out)
    return out.getvalue()


def read_tar(data: bytes) -> dict[str, bytes]:
    return {name: body for name, body in _members(data) if body is not None}


def test_save_writes_a_docker_archive_that_is_an_oci_layout(store: ImageStore) -> None:
    load(store, oci_of(TWO, {oi.REF_NAME: "two:1"}))
    load(store, docker_legacy([(BUSYBOX, ["busybox:latest"])]))
    files = read_tar(saved(store, ["two:1", "busybox"]))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in files.items():  # every blob is named by its digest
        if name.startswith("blobs/"):
            assert name == "blobs/" + sha(data).replace(":", "/")
    entries = json.loads(files["manifest.json"])
    assert [e["RepoTags"] for e in entries] == [["two:1"], ["busybox:latest"]]
    for entry in entries:
        config = json.loads(files[entry["Config"]])
        assert len(entry["Layers"]) == len(config["rootfs"]["diff_ids"])
        assert all(path in files for path in entry["Layers"])
    assert files[entries[0]["Layers"][0]] == TWO.gz_layers[0]  # the store's blobs, as they are
    index = json.loads(files["index.json"])
    two = index["manifests"][0]
    assert files["blobs/" + two["digest"].replace(":", "/")] == TWO.oci_manifest()
    assert two["annotations"] == {oi.CONTAINERD_NAME: "docker.io/library/two:1",
                                  oi.REF_NAME: "1"}  # fmt: skip
    assert two["platform"]["os"] == "linux"
    assert json.loads(files["repositories"]) == {
        "two": {"1": TWO.diff_ids[-1][7:]},
        "busybox": {"latest": BUSYBOX.diff_ids[-1][7:]},
    }


def test_save_is_reproducible_and_loads_back_identically(store: ImageStore, tmp_path: Path) -> None:
    load(store, docker_legacy([(BUSYBOX, ["busybox:latest"]), (TWO, ["two:1", "two:2"])]))
    first = saved(store, ["busybox:latest", "two"])
    assert saved(store, ["busybox:latest", "two"]) == first
    with ImageStore(str(tmp_path / "other"), driver="vfs") as other:
        assert sorted(archive.load(other, io.BytesIO(first))) == [
            "busybox:latest", "two:1", "two:2"]  # fmt: skip
        for record in store.list():
            again = other.get(record.id)
            assert again.manifest == record.manifest
            assert sorted(again.tags) == sorted(record.tags)
        assert saved(other, ["busybox:latest", "two"]) == first


def test_save_selects_images_as_docker_does(store: ImageStore) -> None:
    load(store, docker_legacy([(TWO, ["two:1", "two:2", "other:x"])]))
    record = store.get(TWO.id)

    def tags(names: list[str]) -> list[object]:
        return [e["RepoTags"] for e in json.loads(read_tar(saved(store, names))["manifest.json"])]

    assert tags(["two"]) == [["two:1", "two:2"]]  # a repository: all its tags
    assert tags(["two:2"]) == [["two:2"]]
    assert tags([record.short_id]) == [None]  # by id: no name
    assert tags([TWO.id]) == [None]
    assert tags([f"two@{record.manifest}"]) == [None]  # docker drops a digest reference
    assert tags(["two:2", "other:x", TWO.id]) == [["two:2", "other:x"]]
    index = json.loads(read_tar(saved(store, [TWO.id]))["index.json"])
    assert [m.get("annotations") for m in index["manifests"]] == [None]
    with pytest.raises(NotFound):
        saved(store, ["missing:1"])
    with pytest.raises(InvalidArgument):
        saved(store, [])


def test_a_docker_manifest_is_saved_as_its_oci_equivalent(
    store: ImageStore, tmp_path: Path
) -> None:
    layers = [{"mediaType": oi.DOCKER_LAYER_GZIP, "digest": sha(b), "size": len(b)}
              for b in TWO.gz_layers]  # fmt: skip
    docker_manifest = json.dumps({
        "schemaVersion": 2, "mediaType": oi.DOCKER_MANIFEST, "layers": layers,
        "config": {"mediaType": oi.DOCKER_CONFIG, "digest": TWO.id, "size": len(TWO.config)},
    }).encode()  # fmt: skip
    blobs = [docker_manifest, TWO.config, *TWO.gz_layers]
    data = oci_layout([(docker_manifest, {oi.REF_NAME: "two:1"})], blobs, oi.DOCKER_MANIFEST)
    load(store, data)
    assert store.resolve("two:1").manifest == sha(docker_manifest)
    files = read_tar(saved(store, ["two:1"]))
    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["mediaType"] == oi.OCI_MANIFEST
    oci = json.loads(files["blobs/" + entry["digest"].replace(":", "/")])
    assert oci["mediaType"] == oi.OCI_MANIFEST
    assert oci["config"] == {"mediaType": oi.OCI_CONFIG, "digest": TWO.id, "size": len(TWO.config)}
    assert [(d["mediaType"], d["digest"]) for d in oci["layers"]] == [
        (oi.OCI_LAYER_GZIP, sha(b)) for b in TWO.gz_layers
    ]
    assert "blobs/" + sha(docker_manifest).replace(":", "/") not in files
    with ImageStore(str(tmp_path / "other"), driver="vfs") as other:
        load(other, saved(store, ["two:1"]))
        again = other.resolve("two:1")
        assert again.id == TWO.id and again.manifest == entry["digest"]


def test_a_compressed_layer_is_checked_even_when_its_chain_is_unpacked(store: ImageStore) -> None:
    load(store, oci_of(TWO, {oi.REF_NAME: "two:1"}))
    impostor = gz(tar_bytes([("hello", b"not the layer\n")]))
    doc = json.loads(TWO.oci_manifest())
    doc["layers"][1].update(digest=sha(impostor), size=len(impostor))
    manifest = json.dumps(doc).encode()
    data = oci_layout([(manifest, {oi.REF_NAME: "two:evil"})],
                      [manifest, TWO.config, TWO.gz_layers[0], impostor])  # fmt: skip
    with pytest.raises(InvalidArgument, match="its content has diff id"):
        load(store, data)
    assert [r.tags for r in store.list()] == [["docker.io/library/two:1"]]
