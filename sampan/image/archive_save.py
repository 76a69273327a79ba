"""``docker save``: images as one tarball that is a docker-archive and an OCI layout.

What docker 25 writes, in an order that lets a reader stream it: oci-layout,
index.json (one entry per name, with ``io.containerd.image.name`` = the
full name and ``org.opencontainers.image.ref.name`` = the tag, and the
image's platform; an image saved by id has an entry without names),
manifest.json (``Config`` and ``Layers`` are ``blobs/sha256/<hex>`` paths;
``RepoTags`` the familiar names, null for an image saved by id),
repositories, then blobs/sha256/: manifests, configs, layers -- each once.
Every header has mtime 0 and owner 0/0, so the same images always make the
same bytes.

The blobs are the store's own: a pulled image keeps its compressed layers
(docker load, podman load and skopeo all read compressed layer files through
manifest.json) and an OCI manifest its digest; a Docker schema 2 manifest
is written as the equivalent OCI manifest, as containers/image (skopeo,
podman) finds only OCI manifests in index.json by name.
"""

from __future__ import annotations

import hashlib
import io
import tarfile

from sampan import _json
from sampan.errors import InvalidArgument, NotFound
from sampan.image.archive import OCI_LAYOUT
from sampan.oci import image as oi
from sampan.oci.digest import hex_of, is_digest
from sampan.oci.reference import Reference, parse_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from sampan.image.content import ContentStore
    from sampan.image.store import ImageRecord, ImageStore

__all__ = ["as_oci_manifest", "save_images", "select_images"]


def select_images(store: ImageStore, names: list[str]) -> list[tuple[ImageRecord, list[Reference]]]:
    """docker save's reading of its arguments: each image once, with the names to write.

    ``repo`` alone means every tag of repo; ``repo:tag`` that tag; an id, an
    id prefix or ``repo@digest`` the image without a name.
    """
    chosen: dict[str, tuple[ImageRecord, list[Reference]]] = {}

    def add(record: ImageRecord, ref: Reference | None) -> None:
        entry = chosen.setdefault(record.id, (record, []))
        if ref is not None and ref not in entry[1]:
            entry[1].append(ref)

    for name in names:
        if is_digest(name) or (len(name) == 64 and all(c in "0123456789abcdef" for c in name)):
            add(store.resolve(name), None)  # an image id, as docker's ParseAnyReference reads it
            continue
        ref: Reference | None = None
        try:
            ref = parse_reference(name, default_tag=False)
        except InvalidArgument:
            ref = None
        if ref is not None and ref.tag is None and ref.digest is None:
            found = False
            for record in store.list():
                for tag in record.tags:
                    tagged = parse_reference(tag)
                    if tagged.name == ref.name:
                        add(record, tagged)
                        found = True
            if not found:
                add(store.resolve(name), None)
            continue
        record = store.resolve(name)
        add(record, ref if ref is not None and ref.digest is None else None)
    return list(chosen.values())


def save_images(store: ImageStore, names: list[str], out: BinaryIO) -> None:
    """``docker save``: the images as one tarball, both a docker-archive and an OCI layout."""
    if not names:
        raise InvalidArgument("save: no images given")
    with store.writing():
        selected = select_images(store, names)
        entries: list[dict[str, Any]] = []
        index: list[oi.Descriptor] = []
        repositories: dict[str, dict[str, str]] = {}
        blobs: list[str] = []
        made: dict[str, bytes] = {}  # blobs written that the store does not hold
        for record, refs in selected:
            manifest = store.manifest(record)
            config = store.config_of(record)
            manifest_digest = record.manifest
            manifest_size = store.content.size(record.manifest)
            if manifest.media_type != oi.OCI_MANIFEST:
                data = _json.dumps(as_oci_manifest(manifest).to_dict()).encode()
                manifest_digest = "sha256:" + hashlib.sha256(data).hexdigest()
                manifest_size = len(data)
                made[manifest_digest] = data
            platform = config.platform
            named: list[Reference | None] = list(refs) or [None]
            for ref in named:
                annotations = {}
                if ref is not None:
                    annotations = {oi.CONTAINERD_NAME: str(ref), oi.REF_NAME: ref.tag or "latest"}
                index.append(oi.Descriptor(oi.OCI_MANIFEST, manifest_digest, manifest_size,
                                           annotations=annotations,
                                           platform=platform if platform.os else None))  # fmt: skip
            for ref in refs:
                top = hex_of(config.diff_ids[-1]) if config.diff_ids else ""
                repositories.setdefault(ref.familiar(), {})[ref.tag or "latest"] = top
            entries.append(
                {
                    "Config": _blob_path(record.id),
                    "RepoTags": [ref.familiar_string() for ref in refs] or None,
                    "Layers": [_blob_path(layer.digest) for layer in manifest.layers],
                }
            )
            for digest in (manifest_digest, record.id, *(d.digest for d in manifest.layers)):
                if digest not in blobs:
                    blobs.append(digest)
        index_doc = oi.Index(oi.OCI_INDEX, tuple(index)).to_dict()
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            _add_bytes(tar, "oci-layout", OCI_LAYOUT)
            _add_bytes(tar, "index.json", _json.dumps(index_doc).encode())
            _add_bytes(tar, "manifest.json", _json.dumps(entries).encode() + b"\n")
            if repositories:
                _add_bytes(tar, "repositories", _json.dumps(repositories).encode() + b"\n")
            _add_dir(tar, "blobs")
            for algorithm in sorted({digest.partition(":")[0] for digest in blobs}):
                _add_dir(tar, f"blobs/{algorithm}")
            for digest in blobs:
                if digest in made:
                    _add_bytes(tar, _blob_path(digest), made[digest])
                else:
                    _add_blob(tar, store.content, digest)


_OCI_LAYER_TYPES = {
    oi.DOCKER_LAYER: oi.OCI_LAYER,
    oi.DOCKER_LAYER_GZIP: oi.OCI_LAYER_GZIP,
    oi.DOCKER_FOREIGN_LAYER: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}


def as_oci_manifest(manifest: oi.Manifest) -> oi.Manifest:
    """A Docker schema 2 manifest as the OCI manifest of the same config and layer blobs.

    An OCI layout's index.json names OCI manifests (containers/image, in
    skopeo and podman, finds nothing else by name), so a docker manifest is
    written converted -- as docker 25 does; the image id and the layers stay.
    """
    config = oi.Descriptor(oi.OCI_CONFIG, manifest.config.digest, manifest.config.size)
    layers = tuple(
        oi.Descriptor(_OCI_LAYER_TYPES.get(d.media_type, d.media_type), d.digest, d.size, d.urls)
        for d in manifest.layers
    )
    return oi.Manifest(oi.OCI_MANIFEST, config, layers, manifest.annotations)


def _blob_path(digest: str) -> str:
    return "blobs/" + digest.replace(":", "/", 1)


def _info(name: str, size: int, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = 0  # the same images always make the same archive
    info.uname = info.gname = ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = _info(name, 0, 0o755)
    info.type = tarfile.DIRTYPE
    tar.addfile(info)


def _add_blob(tar: tarfile.TarFile, content: ContentStore, digest: str) -> None:
    try:
        size = content.size(digest)
    except NotFound:
        raise NotFound(f"save: blob {digest} is missing from the content store") from None
    with content.open(digest) as f:
        tar.addfile(_info(_blob_path(digest), size), f)
