"""``push``: an image of the store to a registry, byte for byte.

The manifest, config and layer blobs pushed are the ones in the content
store, unchanged, so the digest the registry reports (and ``skopeo
inspect`` shows) is the image's manifest digest here.  For each blob:

    HEAD   already in the target repository?          "Layer already exists"
    mount  in another repository of the same registry  "Mounted from library/busybox"
           this image came from (its RepoDigests)?
    upload one PUT (or PATCH chunks)                   "Pushed"

Layers go a few at a time; the manifest is put last, once every blob it
names is there.  Afterwards the image carries the pushed name as a
RepoDigest, as docker records it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import IO

from sampan.errors import InvalidArgument
from sampan.image.registry.client import RegistryClient
from sampan.image.registry.progress import Progress
from sampan.oci.digest import short_id
from sampan.oci.image import Descriptor, Manifest, parse_manifest
from sampan.oci.reference import Reference, parse_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sampan.image.store import ImageStore

__all__ = ["DEFAULT_CONCURRENCY", "push"]

DEFAULT_CONCURRENCY = 3  # docker's max-concurrent-uploads is 5; 3 is kinder to small registries


def push(
    store: ImageStore,
    ref: Reference | str,
    *,
    progress: Progress | None = None,
    insecure: Iterable[str] = (),
    config_dir: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    chunk_size: int | None = None,
    client: RegistryClient | None = None,
) -> str:
    """Push the image REF names (a local tag) to REF's registry; returns the manifest digest."""
    ref = parse_reference(ref) if isinstance(ref, str) else ref
    if ref.digest is not None:
        raise InvalidArgument(f"push {ref}: push a tag, not a digest")
    progress = progress or Progress()
    own_client = client is None
    if client is None:
        client = RegistryClient(ref.domain, insecure_registries=insecure, config_dir=config_dir)
    try:
        with store.writing():  # no collection removes the blobs while they are sent
            return _push(store, client, ref, progress, max(1, concurrency), chunk_size)
    finally:
        if own_client:
            client.close()
        progress.close()


def _push(
    store: ImageStore,
    client: RegistryClient,
    ref: Reference,
    progress: Progress,
    concurrency: int,
    chunk_size: int | None,
) -> str:
    record = store.resolve(str(ref))
    data = store.content.read(record.manifest)
    manifest = parse_manifest(data, ref.familiar_string(), record.manifest_type)
    if not isinstance(manifest, Manifest):
        raise InvalidArgument(f"{ref.familiar_string()}: the image's manifest is an index")
    progress.message(f"The push refers to repository [{ref.name}]")
    sources = _mount_sources(record.repo_digests, ref)
    layers = list(reversed(manifest.layers))  # docker lists the top layer first
    for layer in layers:
        progress.layer(short_id(layer.digest), "Preparing")
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="push") as executor:
        futures = [
            executor.submit(_push_blob, store, client, ref, layer, sources, progress, chunk_size)
            for layer in layers
        ]
        for future in futures:
            future.result()
    _push_blob(store, client, ref, manifest.config, sources, None, chunk_size)
    digest = client.put_manifest(ref.path, ref.tag or "latest", data, manifest.media_type)
    progress.message(f"{ref.tag}: digest: {digest} size: {len(data)}")
    store.commit_image(record.manifest, repo_digest=ref.repository().with_digest(digest))
    return digest


def _mount_sources(repo_digests: list[str], ref: Reference) -> list[str]:
    """Repositories of REF's registry the image came from: blobs can be mounted from them."""
    out: list[str] = []
    for entry in repo_digests:
        try:
            source = parse_reference(entry)
        except InvalidArgument:
            continue
        if source.domain == ref.domain and source.path != ref.path and source.path not in out:
            out.append(source.path)
    return out


def _push_blob(
    store: ImageStore,
    client: RegistryClient,
    ref: Reference,
    blob: Descriptor,
    sources: list[str],
    progress: Progress | None,
    chunk_size: int | None,
) -> None:
    layer_id = short_id(blob.digest)
    show = progress.layer if progress is not None else _silent
    if client.head_blob(ref.path, blob.digest) is not None:
        show(layer_id, "Layer already exists")
        return
    location: str | None = None
    if sources:
        mounted = client.mount_blob(ref.path, blob.digest, sources[0])
        if mounted is True:
            show(layer_id, f"Mounted from {sources[0]}")
            return
        location = mounted if isinstance(mounted, str) else None
    size = store.content.size(blob.digest)
    with store.content.open(blob.digest) as f:
        reader = _Reporting(f, lambda done: show(layer_id, "Pushing", done, size))
        client.upload_blob(
            ref.path, blob.digest, reader, size, chunk_size=chunk_size, location=location
        )
    show(layer_id, "Pushed")


def _silent(
    layer_id: str, status: str, current: int | None = None, total: int | None = None
) -> None:
    pass


class _Reporting:
    """A blob file that reports how far it has been read (the upload's progress)."""

    def __init__(self, f: IO[bytes], report: Callable[[int], None]) -> None:
        self._f = f
        self._report = report

    def read(self, n: int = -1, /) -> bytes:
        data = self._f.read(n)
        self._report(self._f.tell())
        return data

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, pos: int, whence: int = 0, /) -> int:
        return self._f.seek(pos, whence)
