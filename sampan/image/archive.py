"""Image archives: ``save`` and ``load`` in the formats docker, podman and skopeo write.

What the tools write (read from their archives; samples in the tests):

    docker <= 24   docker-archive: manifest.json ``[{Config, RepoTags, Layers}]``,
                   repositories, ``<config hex>.json``, ``<v1 id>/{layer.tar,json,
                   VERSION}``; a layer shared with an earlier image is a
                   symlink ``<v1 id>/layer.tar -> ../<other v1 id>/layer.tar``;
                   members in any order (manifest.json comes last).
    docker >= 25   the same manifest.json, with Config and Layers pointing
                   into an OCI image layout in the same tarball (oci-layout,
                   index.json naming each image by ``io.containerd.image.name``
                   and ``org.opencontainers.image.ref.name`` = the tag,
                   blobs/sha256/<hex>).
    podman save    docker-archive: layers as ``<diff id hex>.tar``, links from
                   ``<v1 id>/layer.tar``; RepoTags as podman names them
                   (``localhost/x:1``).  ``--format oci-archive``: an OCI
                   layout, gzip layers, ref.name = the full name.
    skopeo copy    either, as given (``oci-archive:f.tar:NAME``: ref.name =
                   NAME, a tag or a full name, or none).

``save`` (archive_save.py) writes what docker 25 writes -- one tarball that
is both a docker-archive and an OCI layout -- from the store's own blobs;
``import_rootfs`` (archive_import.py) is ``docker import``.

``load`` reads the tarball once, as a stream (compressed with gzip, bzip2
or xz or not): small members are kept in memory until it is known what they
are, anything large goes straight into the content store's ingest, so an
archive of gigabytes costs no memory.  Every blob is checked against the
digest it is named by (blobs/sha256/<hex>, a layer against its diff id);
then every image is planned and its layers unpacked before the first one is
recorded, so a bad archive registers nothing.  Blobs already verified stay
in the content store for the next garbage collection.
"""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
from dataclasses import dataclass, field

from sampan import _json
from sampan.errors import InvalidArgument, Unsupported
from sampan.oci import image as oi
from sampan.oci.digest import chain_ids, is_digest
from sampan.oci.reference import Reference, parse_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

    from sampan.image.content import ContentStore
    from sampan.image.store import ImageStore

__all__ = ["import_rootfs", "load", "save"]

SMALL_MEMBER = 1 << 20  # members up to this size are held in memory while reading
MEMORY_BUDGET = 64 << 20  # ... as long as all of them together stay under this
JSON_MAX = 16 << 20  # largest manifest.json, index.json, config or manifest read
HEADER_MAX = 1 << 20  # largest PAX header or GNU long name, and such headers of one member
HEADER_CHAIN_MAX = 16  # PAX and GNU long-name headers before one member
MEMBERS_MAX = 100_000  # an image archive holds a few members a layer
OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'

_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"


# ---------------------------------------------------------------- reading the tarball


@dataclass
class Member:
    """A regular file of the archive: its digest, and its bytes unless they went to the store."""

    name: str
    digest: str
    size: int
    data: bytes | None = None


@dataclass
class Archive:
    """Everything a single pass over the tarball found."""

    files: dict[str, Member] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # member -> member it stands for

    def member(self, path: object, where: str) -> Member:
        """The file ``path`` names (a path inside the archive; links followed)."""
        name = _inside(path, where)
        for _ in range(16):
            if name in self.files:
                return self.files[name]
            if name not in self.links:
                raise InvalidArgument(f"{where}: {path!r} is not in the archive")
            name = self.links[name]
        raise InvalidArgument(f"{where}: {path!r}: too many levels of links")

    def read(self, member: Member, content: ContentStore) -> bytes:
        """The bytes of a JSON document (refused past JSON_MAX, before reading them)."""
        if member.size > JSON_MAX:
            raise InvalidArgument(
                f"archive member {member.name}: {member.size} bytes, more than the "
                f"{JSON_MAX >> 20} MiB a manifest, index or config may hold"
            )
        return member.data if member.data is not None else content.read(member.digest)

    def head(self, member: Member, content: ContentStore) -> bytes:
        if member.data is not None:
            return member.data[:8]
        with content.open(member.digest) as f:
            return f.read(8)

    def blob(self, desc: oi.Descriptor, where: str) -> Member:
        """The blob a descriptor names, in the layout's blobs/ (its digest checked on reading)."""
        algorithm, _, hexpart = desc.digest.partition(":")
        path = f"blobs/{algorithm}/{hexpart}"
        if path not in self.files:
            raise InvalidArgument(f"{where}: blob {desc.digest} is not in the archive")
        member = self.files[path]
        if member.size != desc.size:
            raise InvalidArgument(
                f"{where}: blob {desc.digest} has {member.size} bytes, the descriptor says "
                f"{desc.size}"
            )
        return member


def _inside(path: object, where: str) -> str:
    """``path`` normalised as a member name; absolute or climbing paths are refused."""
    if not isinstance(path, str) or not path:
        raise InvalidArgument(f"{where}: expected a path in the archive")
    name = posixpath.normpath(path)
    if path.startswith("/") or name == ".." or name.startswith("../"):
        raise InvalidArgument(f"{where}: {path!r} is outside the archive")
    return name


class Replay:
    """A stream with its first bytes (already read to sniff them) put back."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0 or size >= len(self._head):
                head, self._head = self._head, b""
                more = self._rest.read(size - len(head) if size >= 0 else -1)
                return head + more
            head, self._head = self._head[:size], self._head[size:]
            return head
        return self._rest.read(size)


def read_archive(stream: BinaryIO, content: ContentStore) -> Archive:
    """One pass over the (maybe compressed) tarball; large members go to ``content``."""
    head = stream.read(8)
    if head.startswith(_ZSTD):
        raise Unsupported("archive: zstd-compressed archives are not supported")
    if not head:
        raise InvalidArgument("archive: empty input (expected a tar archive)")
    archive = Archive()
    in_memory = 0
    current = ""
    with _open_tar(Replay(head, stream)) as tar:
        try:
            for count, info in enumerate(tar, 1):
                del tar.members[:]  # type: ignore[attr-defined]  # tarfile keeps them all
                if count > MEMBERS_MAX:
                    raise InvalidArgument(f"archive: more than {MEMBERS_MAX} members")
                current = info.name
                name = _inside(info.name, f"archive member {info.name!r}")
                if info.issym() or info.islnk():
                    archive.links[name] = _link_target(name, info)
                    archive.files.pop(name, None)
                    continue
                if not info.isfile():
                    continue  # directories; nothing else belongs in an image archive
                archive.links.pop(name, None)
                archive.files[name] = _read_member(tar, info, name, content, in_memory)
                in_memory += len(archive.files[name].data or b"")
        except tarfile.TarError as exc:
            where = f" at member {current!r}" if current else ""
            raise InvalidArgument(f"archive: truncated or corrupt{where}: {exc}") from None
        except RecursionError:  # tarfile reads each extended header by recursion
            raise InvalidArgument(
                f"archive: too many extended tar headers after member {current!r}"
            ) from None
        except (OSError, EOFError) as exc:  # a corrupt compressed stream
            if isinstance(exc, OSError) and exc.errno is not None:  # the store's disk (ENOSPC)
                raise OSError(exc.errno, f"archive member {current!r}: {exc.strerror}") from None
            where = f" at member {current!r}" if current else ""
            raise InvalidArgument(f"archive: cannot read{where}: {exc}") from None
        end = getattr(tar, "sampan_end", "")
        if end:
            raise InvalidArgument(f"archive: truncated or corrupt after member {current!r}: {end}")
    return archive


_META_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
               tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)  # fmt: skip


class _TarInfo(tarfile.TarInfo):
    """Notes how the archive ended: tarfile's stream mode takes a cut or garbled header
    after the first member for the end of the archive (go's archive/tar, like docker,
    only accepts the end-of-archive block or the input ending between members).

    And bounds the extended headers (PAX ``x`` and ``g``, GNU long names ``L`` and
    ``K``), which tarfile reads whole into memory, one recursion each: at most
    HEADER_MAX bytes each and together before one member, HEADER_CHAIN_MAX of them
    in a row, HEADER_MAX of global headers in all."""

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> _TarInfo:
        state: _HeaderState | None = getattr(tar, "sampan_headers", None)
        if state is None:
            state = _HeaderState()
            tar.sampan_headers = state  # type: ignore[attr-defined]
        if state.depth == 0:
            state.chain = state.chain_bytes = 0
        state.depth += 1
        try:
            return super().fromtarfile(tar)
        except tarfile.HeaderError as exc:
            if type(exc).__name__ in ("TruncatedHeaderError", "InvalidHeaderError"):
                tar.sampan_end = str(exc) or type(exc).__name__  # type: ignore[attr-defined]
            raise
        finally:
            state.depth -= 1

    def _proc_member(self, tar: tarfile.TarFile) -> _TarInfo:
        """Called by ``fromtarfile`` with the header parsed, before anything more is read."""
        if self.type in _META_TYPES:
            state: _HeaderState = tar.sampan_headers  # type: ignore[attr-defined]
            state.chain += 1
            state.chain_bytes += self.size
            if self.type == tarfile.XGLTYPE:
                state.global_bytes += self.size
            where = f"archive: extended tar header at offset {self.offset}"
            if not 0 <= self.size <= HEADER_MAX:
                raise InvalidArgument(f"{where}: {self.size} bytes, more than {HEADER_MAX}")
            if state.chain_bytes > HEADER_MAX or state.global_bytes > HEADER_MAX:
                raise InvalidArgument(f"{where}: extended headers add up to more than "
                                      f"{HEADER_MAX} bytes")  # fmt: skip
            if state.chain > HEADER_CHAIN_MAX:
                raise InvalidArgument(f"{where}: more than {HEADER_CHAIN_MAX} in a row")
        proc: Callable[[tarfile.TarInfo, tarfile.TarFile], _TarInfo]
        proc = tarfile.TarInfo._proc_member  # type: ignore[attr-defined]
        return proc(self, tar)


class _HeaderState:
    """The extended headers read so far: in the current chain (DEPTH: its recursion)
    and global ones in all."""

    __slots__ = ("chain", "chain_bytes", "depth", "global_bytes")

    def __init__(self) -> None:
        self.depth = self.chain = self.chain_bytes = self.global_bytes = 0


def _open_tar(stream: Replay) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=stream, mode="r|*", tarinfo=_TarInfo)  # type: ignore[call-overload,no-any-return]
    except tarfile.TarError as exc:
        raise InvalidArgument(f"archive: not a tar archive ({exc})") from None
    except RecursionError:  # the first member, read by open
        raise InvalidArgument("archive: too many extended tar headers at the start") from None


def _link_target(name: str, info: tarfile.TarInfo) -> str:
    """The member a symlink (relative to its directory) or hardlink (to the root) names."""
    where = f"archive member {name}"
    if info.issym():
        if info.linkname.startswith("/"):
            raise InvalidArgument(f"{where}: link target {info.linkname!r} is absolute")
        target = posixpath.join(posixpath.dirname(name), info.linkname)
    else:
        target = info.linkname
    return _inside(target, f"{where}: link target")


def _read_member(
    tar: tarfile.TarFile, info: tarfile.TarInfo, name: str, content: ContentStore, used: int
) -> Member:
    where = f"archive member {name}"
    expected = _named_digest(name)
    f = tar.extractfile(info)
    assert f is not None
    if info.size <= SMALL_MEMBER and used + info.size <= MEMORY_BUDGET:
        data = f.read()
        if len(data) != info.size:
            raise InvalidArgument(f"{where}: truncated ({len(data)} of {info.size} bytes)")
        algorithm = expected.partition(":")[0] if expected else "sha256"
        digest = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
        if expected is not None and digest != expected:
            raise InvalidArgument(f"{where}: content has digest {digest}")
        return Member(name, digest, len(data), data)
    if expected is not None and not expected.startswith("sha256:"):
        raise Unsupported(f"{where}: large {expected.partition(':')[0]} blobs are not supported")
    try:
        digest, size = content.put_stream(f, expected)  # type: ignore[arg-type]
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}") from None
    if size != info.size:
        raise InvalidArgument(f"{where}: truncated ({size} of {info.size} bytes)")
    return Member(name, digest, size)


def _named_digest(name: str) -> str | None:
    """``blobs/<algorithm>/<hex>`` names its own digest; anything else does not."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        digest = f"{parts[1]}:{parts[2]}"
        if is_digest(digest):
            return digest
    return None


# ---------------------------------------------------------------- planning images


@dataclass
class Planned:
    """One image of the archive, checked and ready to record."""

    manifest_digest: str
    manifest_bytes: bytes
    manifest: oi.Manifest
    config_bytes: bytes
    config: oi.ImageConfig
    layers: list[Member]
    names: list[Reference] = field(default_factory=list)
    index_digest: str | None = None
    index_bytes: bytes | None = None

    @property
    def image_id(self) -> str:
        return self.manifest.config.digest


def plan(archive: Archive, content: ContentStore, platform: oi.Platform) -> list[Planned]:
    """The images of a docker-archive (manifest.json) or else of an OCI layout (index.json)."""
    if "manifest.json" in archive.files:
        return _plan_docker(archive, content)
    if "index.json" in archive.files:
        return _plan_oci(archive, content, platform)
    if "repositories" in archive.files:
        raise Unsupported("archive: only a 'repositories' file: docker's pre-1.10 format")
    raise InvalidArgument(
        "archive: neither manifest.json nor index.json: not a docker-archive or an OCI layout"
    )


def _json_member(archive: Archive, content: ContentStore, name: str) -> Any:
    try:
        return _json.loads(archive.read(archive.files[name], content))
    except _json.JSONError as exc:
        raise InvalidArgument(f"archive member {name}: not JSON: {exc}") from None


def _plan_docker(archive: Archive, content: ContentStore) -> list[Planned]:
    doc = _json_member(archive, content, "manifest.json")
    if not isinstance(doc, list):
        raise InvalidArgument("archive member manifest.json: expected a list of images")
    known = _oci_manifests(archive, content)
    plans = []
    for i, entry in enumerate(doc):
        where = f"archive member manifest.json: [{i}]"
        if not isinstance(entry, dict):
            raise InvalidArgument(f"{where}: expected an object")
        config_member = archive.member(entry.get("Config"), f"{where}.Config")
        config_bytes = archive.read(config_member, content)
        config = oi.parse_config(config_bytes, f"archive member {config_member.name}")
        paths = entry.get("Layers")
        if not isinstance(paths, list):
            raise InvalidArgument(f"{where}.Layers: expected a list of paths")
        layers = [archive.member(p, f"{where}.Layers[{j}]") for j, p in enumerate(paths)]
        diff_ids = config.diff_ids
        if len(layers) != len(diff_ids):
            raise InvalidArgument(
                f"{where}: {len(layers)} layers, but config {config_member.name} lists "
                f"{len(diff_ids)} diff ids"
            )
        descriptors = []
        for j, layer in enumerate(layers):
            head = archive.head(layer, content)
            media_type = oi.OCI_LAYER_GZIP if head.startswith(_GZIP) else oi.OCI_LAYER
            if head.startswith(_ZSTD):
                media_type = oi.OCI_LAYER_ZSTD
            if media_type == oi.OCI_LAYER and _is_plain_tar(head) and layer.digest != diff_ids[j]:
                raise InvalidArgument(
                    f"{where}.Layers[{j}] ({layer.name}): content has digest {layer.digest}, "
                    f"the config's diff id is {diff_ids[j]}"
                )
            descriptors.append(oi.Descriptor(media_type, layer.digest, layer.size))
        config_digest = config_member.digest
        if not config_digest.startswith("sha256:"):
            config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        found = known.get((config_digest, tuple(layer.digest for layer in layers)))
        if found is not None:
            manifest_digest, manifest_bytes, manifest = found
        else:
            manifest = oi.Manifest(
                oi.OCI_MANIFEST,
                oi.Descriptor(oi.OCI_CONFIG, config_digest, len(config_bytes)),
                tuple(descriptors),
            )
            manifest_bytes = _json.dumps(manifest.to_dict()).encode()
            manifest_digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
        names = []
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list):
            raise InvalidArgument(f"{where}.RepoTags: expected a list of names")
        for tag in tags:
            try:
                names.append(parse_reference(tag))
            except InvalidArgument as exc:
                raise InvalidArgument(f"{where}.RepoTags: {exc}") from None
        plans.append(Planned(manifest_digest, manifest_bytes, manifest, config_bytes, config,
                             layers, names))  # fmt: skip
    return plans


def _is_plain_tar(head: bytes) -> bool:
    """Not gzip, zstd, bzip2 or xz: what a docker-archive's layer.tar is."""
    return not head.startswith((_GZIP, _ZSTD, b"BZh", b"\xfd7zXZ\x00"))


def _oci_manifests(
    archive: Archive, content: ContentStore
) -> dict[tuple[str, tuple[str, ...]], tuple[str, bytes, oi.Manifest]]:
    """docker 25's index.json manifests by (config, layers): reused to keep their digests."""
    found: dict[tuple[str, tuple[str, ...]], tuple[str, bytes, oi.Manifest]] = {}
    if "index.json" not in archive.files:
        return found
    try:
        index = oi.parse_manifest(archive.read(archive.files["index.json"], content), "index.json")
    except InvalidArgument:
        return found  # manifest.json is what docker reads; a broken index.json is ignored
    if not isinstance(index, oi.Index):
        return found
    for desc in index.manifests:
        path = f"blobs/{desc.digest.replace(':', '/', 1)}"
        member = archive.files.get(path)
        if member is None or desc.media_type not in oi.MANIFEST_TYPES or member.size != desc.size:
            continue
        data = archive.read(member, content)
        try:
            manifest = oi.parse_manifest(data, path)
        except InvalidArgument:
            continue
        if isinstance(manifest, oi.Manifest):
            key = (manifest.config.digest, tuple(layer.digest for layer in manifest.layers))
            found[key] = (desc.digest, data, manifest)
    return found


def _plan_oci(archive: Archive, content: ContentStore, platform: oi.Platform) -> list[Planned]:
    if "oci-layout" not in archive.files:
        raise InvalidArgument("archive: index.json without oci-layout: not an OCI image layout")
    layout = _json_member(archive, content, "oci-layout")
    if not isinstance(layout, dict) or not isinstance(layout.get("imageLayoutVersion"), str):
        raise InvalidArgument('archive member oci-layout: expected {"imageLayoutVersion": ...}')
    index = oi.parse_manifest(
        archive.read(archive.files["index.json"], content), "archive member index.json"
    )
    if not isinstance(index, oi.Index):
        raise InvalidArgument("archive member index.json: expected an image index")
    by_digest: dict[str, Planned] = {}
    for i, desc in enumerate(index.manifests):
        where = f"archive member index.json: manifests[{i}]"
        image = _plan_oci_manifest(archive, content, desc, where, platform, None, None)
        image = by_digest.setdefault(image.manifest_digest, image)
        name = _layout_name(desc.annotations)
        if name is not None and name not in image.names:
            image.names.append(name)
    return list(by_digest.values())


def _plan_oci_manifest(
    archive: Archive,
    content: ContentStore,
    desc: oi.Descriptor,
    where: str,
    platform: oi.Platform,
    index_digest: str | None,
    index_bytes: bytes | None,
) -> Planned:
    member = archive.blob(desc, where)
    data = archive.read(member, content)
    label = f"archive member {member.name}"
    parsed = oi.parse_manifest(data, label, desc.media_type)
    if isinstance(parsed, oi.Index):
        if index_digest is not None:
            raise Unsupported(f"{label}: an index inside an index inside index.json")
        chosen = oi.select_manifest(parsed, platform, label)
        return _plan_oci_manifest(archive, content, chosen, label, platform, desc.digest, data)
    config_member = archive.blob(parsed.config, f"{label}: config")
    config_bytes = archive.read(config_member, content)
    config = oi.parse_config(config_bytes, f"archive member {config_member.name}")
    layers = [archive.blob(layer, f"{label}: layers[{j}]") for j, layer in enumerate(parsed.layers)]
    if len(layers) != len(config.diff_ids):
        raise InvalidArgument(
            f"{label}: {len(layers)} layers, but its config lists {len(config.diff_ids)} diff ids"
        )
    for j, (layer, diff_id) in enumerate(zip(parsed.layers, config.diff_ids, strict=True)):
        if layer.media_type in (oi.OCI_LAYER, oi.DOCKER_LAYER) and layer.digest != diff_id:
            raise InvalidArgument(
                f"{label}: layers[{j}]: uncompressed layer {layer.digest} is not the config's "
                f"diff id {diff_id}"
            )
    return Planned(desc.digest, data, parsed, config_bytes, config, layers,
                   index_digest=index_digest, index_bytes=index_bytes)  # fmt: skip


def _layout_name(annotations: dict[str, str]) -> Reference | None:
    """The image name an index.json entry gives: containerd's full name, else ref.name.

    docker 25 puts the tag alone in ref.name and the full name in
    io.containerd.image.name; podman and skopeo put a full name (or what
    the user typed) in ref.name, which is read as docker reads a name.
    """
    for key in (oi.CONTAINERD_NAME, oi.REF_NAME):
        text = annotations.get(key)
        if text:
            try:
                ref = parse_reference(text)
            except InvalidArgument:
                continue
            if ref.digest is None:
                return ref
    return None


# ---------------------------------------------------------------- load


def load(store: ImageStore, stream: BinaryIO, *, platform: oi.Platform | None = None) -> list[str]:
    """``docker load``: every image of the archive recorded under its names.

    Returns what docker prints after "Loaded image: " (the familiar name, one
    per name) or "Loaded image ID: " (the image id of an image without one).
    """
    wanted = platform or oi.host_platform()
    content = store.content
    with store.writing():
        archive = read_archive(stream, content)
        images = plan(archive, content, wanted)
        if not images:
            raise InvalidArgument("archive: it holds no images")
        for image in images:
            _store_blobs(content, image)
        for image in images:
            _check_unpacked_layers(store, image)
            store.unpack(image.manifest, image.config, f"image {image.image_id[7:19]}")
        loaded: list[str] = []
        for image in images:
            store.commit_image(
                image.manifest_digest, names=image.names, index_digest=image.index_digest
            )
            loaded += [ref.familiar_string() for ref in image.names] or [image.image_id]
    return loaded


def _check_unpacked_layers(store: ImageStore, image: Planned) -> None:
    """A compressed layer whose chain is unpacked already is not unpacked again, so its
    diff id is checked here: the archive must not slip in a blob that is not that layer."""
    diff_ids = image.config.diff_ids
    for i, (desc, chain_id) in enumerate(zip(image.manifest.layers, chain_ids(diff_ids),
                                             strict=True)):  # fmt: skip
        if desc.digest == diff_ids[i] or not store.snapshots.has(chain_id):
            continue  # a plain tar was compared with its diff id; unpack checks the others
        with store.content.open(desc.digest) as raw:
            actual = _diff_id_of(raw, f"layer {desc.digest}")
        if actual != diff_ids[i]:
            raise InvalidArgument(
                f"layer {desc.digest}: its content has diff id {actual}, "
                f"the config of image {image.image_id} says {diff_ids[i]}"
            )


def _diff_id_of(raw: BinaryIO, label: str) -> str:
    """sha256 of a layer blob's decompressed bytes (gzip, bzip2 or xz)."""
    import bz2
    import gzip
    import lzma
    import zlib

    head = raw.read(6)
    stream: Any = Replay(head, raw)
    if head.startswith(_GZIP):
        stream = gzip.GzipFile(fileobj=stream, mode="rb")
    elif head.startswith(b"BZh"):
        stream = bz2.BZ2File(stream)
    elif head.startswith(b"\xfd7zXZ\x00"):
        stream = lzma.LZMAFile(stream)  # noqa: SIM115  # reads RAW, which its caller closes
    elif head.startswith(_ZSTD):
        raise Unsupported(f"{label}: zstd-compressed layers are not supported")
    h = hashlib.sha256()
    try:
        while chunk := stream.read(1 << 20):
            h.update(chunk)
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise InvalidArgument(f"{label}: corrupt compressed stream: {exc}") from None
    return "sha256:" + h.hexdigest()


def _store_blobs(content: ContentStore, image: Planned) -> None:
    """The image's blobs into the content store (each checked against its digest again)."""
    for member in image.layers:
        if member.data is not None:
            content.put(member.data, member.digest)
    content.put(image.config_bytes, image.manifest.config.digest)
    content.put(image.manifest_bytes, image.manifest_digest)
    if image.index_digest is not None and image.index_bytes is not None:
        content.put(image.index_bytes, image.index_digest)


# ---------------------------------------------------------------- save and import


def save(store: ImageStore, names: list[str], out: BinaryIO) -> None:
    """``docker save``: the images as one tarball, both a docker-archive and an OCI layout.

    (archive_save.py; see there.)
    """
    from sampan.image.archive_save import save_images

    save_images(store, names, out)


def import_rootfs(
    store: ImageStore,
    stream: BinaryIO,
    *,
    changes: list[str] | tuple[str, ...] = (),
    ref: str | None = None,
    message: str = "",
    platform: oi.Platform | None = None,
) -> str:
    """``docker import``: a rootfs tarball as a one-layer image; returns its id.

    (archive_import.py; see there.)
    """
    from sampan.image.archive_import import import_rootfs as import_

    return import_(store, stream, changes=changes, ref=ref, message=message, platform=platform)
