"""New images one step from another: what ``commit`` and a Dockerfile build make.

A step is a parent image (or none: ``FROM scratch``), the new image's
``config`` section, one history entry, and at most one new layer -- a
container's writable layer (``container_layer``) or nothing (a metadata step
such as ENV, recorded with ``empty_layer: true`` as docker does).  The
manifest is of the parent's kind (docker schema 2 or OCI; schema 2 for
scratch) and lists the parent's layer blobs plus the new one.

Layers written for a build are stored uncompressed (docker's classic builder
never compresses either: a layer is gzipped when it is pushed, not when it
is made), so the blob is the tar itself and its digest its diff id;
``commit`` keeps gzip, as before.

``child_image`` records the image with its parent (``ImageStore.parents``:
docker's "Parent", which hides a build's intermediate images from
``images``) in one transaction with its layers, so a crash leaves no
half-made image.

    layer = container_layer(service, c, store, compress=False)
    record = child_image(store, parent, config, {"created_by": "/bin/sh -c make"}, layer)
"""

from __future__ import annotations

import time

from sampan import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, BinaryIO

    from sampan.engine.containers import Container, ContainerService
    from sampan.image.store import ImageRecord, ImageStore
    from sampan.oci.reference import Reference

__all__ = ["Layer", "child_image", "container_layer", "scratch_config"]


class Layer:
    """A layer blob in the content store: its diff id, digest, size and compression."""

    __slots__ = ("blob", "diff_id", "gzip", "size")

    def __init__(self, diff_id: str, blob: str, size: int, gzip: bool) -> None:
        self.diff_id = diff_id
        self.blob = blob
        self.size = size
        self.gzip = gzip


class _Gzip:
    """A binary writer that gzips into FILE (mtime 0: the same layer, the same blob)."""

    def __init__(self, file: BinaryIO) -> None:
        import zlib

        self._file = file
        self._z = zlib.compressobj(6, zlib.DEFLATED, 31)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._file.write(self._z.compress(data))
        return len(data)

    def close(self) -> None:
        self._file.write(self._z.flush())


def container_layer(
    service: ContainerService, c: Container, store: ImageStore, *, compress: bool = True
) -> Layer:
    """C's writable layer in the content store (gzip-compressed when COMPRESS)."""
    import tempfile

    from sampan.image.layertar import write_layer

    snaps = store.snapshots
    upper = snaps.upper_dir(c.id)
    with tempfile.TemporaryFile(dir=store.root, prefix=".commit-") as spool:
        out: Any = _Gzip(spool) if compress else spool
        if snaps.driver == "overlay":
            diff_id = write_layer(upper, out, overlay_whiteouts=True)
        else:
            from sampan.engine.container_commit import write_tree_diff

            chain = store.get(c.image).chain
            base = snaps.layer_dir(chain[-1]) if chain else None
            diff_id = write_tree_diff(base, upper, out)
        if compress:
            out.close()
        spool.flush()
        spool.seek(0)
        digest, size = store.content.put_stream(spool)
    return Layer(diff_id, digest, size, compress)


def scratch_config() -> dict[str, Any]:
    """The image config a build starts from with ``FROM scratch``."""
    from sampan.oci import image as oi

    return {
        **oi.host_platform().to_dict(),
        "config": {"Env": None, "Cmd": None},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }


def child_image(
    store: ImageStore,
    parent: ImageRecord | None,
    config: dict[str, Any],
    entry: dict[str, Any] | None,
    layer: Layer | None,
    *,
    names: Sequence[Reference] = (),
    base: dict[str, Any] | None = None,
    record_parent: bool = True,
) -> ImageRecord:
    """A new image over PARENT (None: scratch) with CONFIG, the history ENTRY (its
    ``created`` filled in; ``empty_layer`` when LAYER is None) and LAYER.  BASE: the
    image config document to start from instead of the parent's (its other fields); ENTRY
    None adds no history entry."""
    from sampan.oci import image as oi
    from sampan.units import rfc3339

    if base is None:
        base = store.config_of(parent).raw if parent is not None else scratch_config()
    parent_layers: tuple[oi.Descriptor, ...] = ()
    docker = True
    if parent is not None:
        manifest = store.manifest(parent)
        parent_layers = tuple(manifest.layers)
        docker = manifest.media_type == oi.DOCKER_MANIFEST
    now = rfc3339(time.time_ns())
    raw = {k: v for k, v in base.items()
           if k not in ("container", "container_config", "docker_version")}  # fmt: skip
    history = list(base.get("history") or [])
    diff_ids = list((base.get("rootfs") or {}).get("diff_ids") or [])
    layers = parent_layers
    if entry is not None:  # None: no history entry (the empty image a scratch stage starts on)
        entry = {"created": now, **entry}
        history.append(entry)
        if layer is None:
            entry["empty_layer"] = True
    if layer is not None:
        diff_ids.append(layer.diff_id)
        if layer.gzip:
            kind = oi.DOCKER_LAYER_GZIP if docker else oi.OCI_LAYER_GZIP
        else:
            kind = oi.DOCKER_LAYER if docker else oi.OCI_LAYER
        layers = (*parent_layers, oi.Descriptor(kind, layer.blob, layer.size))
    raw.update(
        config=config,
        created=now,
        history=history,
        rootfs={"type": "layers", "diff_ids": diff_ids},
    )
    config_bytes = _json.dumps(raw).encode()
    with store.writing():
        config_digest = store.content.put(config_bytes)
        manifest = oi.Manifest(
            oi.DOCKER_MANIFEST if docker else oi.OCI_MANIFEST,
            oi.Descriptor(oi.DOCKER_CONFIG if docker else oi.OCI_CONFIG, config_digest,
                          len(config_bytes)),
            layers,
        )  # fmt: skip
        manifest_digest = store.content.put(manifest.to_bytes())
        return store.commit_image(
            manifest_digest,
            names=names,
            parent=parent.id if parent is not None and record_parent else None,
        )
