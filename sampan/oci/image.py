"""Records of the OCI image spec and Docker's manifest v2 schema 2.

Two families describe the same things: an *index* (OCI image index, Docker
manifest list) points at per-platform *manifests*; a manifest points at one
*config* (the image's settings and the diff ids of its layers) and the
*layer* blobs.  Both are parsed here into one set of records; the media
type is kept so that what was pulled can be pushed and saved byte for byte.

Everything is validated on the way in: a manifest that is not JSON, names a
media type sampan does not know, or has a malformed digest or size is an
``InvalidArgument`` naming the field.  No I/O.
"""

from __future__ import annotations

import os

from sampan import _json
from sampan.errors import InvalidArgument, NotFound, Unsupported
from sampan.oci.digest import parse_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYOUT_VERSION = "1.0.0"

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
LAYER_TYPES = (
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_FOREIGN_LAYER,
)
# What a registry client sends in Accept: every manifest form sampan reads.
ACCEPT_MANIFESTS = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

# Annotations the image layout uses to name what an index.json holds.
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


class _Record:
    """A small value class: equality over ``_fields`` (dataclasses cost ~25 ms to import)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"


class Platform(_Record):
    __slots__ = ("architecture", "os", "variant")
    _fields = ("os", "architecture", "variant")

    def __init__(self, os: str, architecture: str, variant: str = "") -> None:
        self.os = os
        self.architecture = architecture
        self.variant = variant

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def to_dict(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out


_MACHINE_ARCH = {
    "x86_64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i686": ("386", ""),
    "i386": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


def host_platform() -> Platform:
    machine = os.uname().machine
    arch, variant = _MACHINE_ARCH.get(machine, (machine, ""))
    return Platform("linux", arch, variant)


def parse_platform(text: str) -> Platform:
    """``os/arch[/variant]`` as given to ``--platform``."""
    parts = text.split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise InvalidArgument(f"platform: {text!r} is not os/arch[/variant]")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


class Descriptor(_Record):
    __slots__ = ("annotations", "digest", "media_type", "platform", "size", "urls")
    _fields = ("media_type", "digest", "size", "urls", "platform")

    def __init__(
        self,
        media_type: str,
        digest: str,
        size: int,
        urls: tuple[str, ...] = (),
        annotations: dict[str, str] | None = None,
        platform: Platform | None = None,
    ) -> None:
        self.media_type = media_type
        self.digest = digest
        self.size = size
        self.urls = tuple(urls)
        self.annotations = annotations if annotations is not None else {}
        self.platform = platform

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest}
        out["size"] = self.size
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        return out


class Manifest(_Record):
    __slots__ = ("annotations", "config", "layers", "media_type")
    _fields = ("media_type", "config", "layers")

    def __init__(
        self,
        media_type: str,
        config: Descriptor,
        layers: tuple[Descriptor, ...],
        annotations: dict[str, str] | None = None,
    ) -> None:
        self.media_type = media_type
        self.config = config
        self.layers = tuple(layers)
        self.annotations = annotations if annotations is not None else {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type}
        out["config"] = self.config.to_dict()
        out["layers"] = [layer.to_dict() for layer in self.layers]
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return _json.dumps(self.to_dict(), indent=3).encode()


class Index(_Record):
    __slots__ = ("annotations", "manifests", "media_type")
    _fields = ("media_type", "manifests")

    def __init__(
        self,
        media_type: str,
        manifests: tuple[Descriptor, ...],
        annotations: dict[str, str] | None = None,
    ) -> None:
        self.media_type = media_type
        self.manifests = tuple(manifests)
        self.annotations = annotations if annotations is not None else {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type}
        out["manifests"] = [m.to_dict() for m in self.manifests]
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return _json.dumps(self.to_dict(), indent=3).encode()


class ImageConfig:
    """An image config blob; ``raw`` is the parsed JSON, kept whole."""

    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @property
    def diff_ids(self) -> list[str]:
        return list(self.raw["rootfs"]["diff_ids"])

    @property
    def container_config(self) -> dict[str, Any]:
        config = self.raw.get("config")
        return config if isinstance(config, dict) else {}

    @property
    def history(self) -> list[dict[str, Any]]:
        history = self.raw.get("history")
        return history if isinstance(history, list) else []

    @property
    def created(self) -> str:
        created = self.raw.get("created")
        return created if isinstance(created, str) else ""

    @property
    def platform(self) -> Platform:
        raw = self.raw
        return Platform(raw.get("os", ""), raw.get("architecture", ""), raw.get("variant", ""))


def _fail(label: str, where: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"{label}: {where}: {why}")


def _loads(data: bytes, label: str) -> dict[str, Any]:
    try:
        doc = _json.loads(data)
    except _json.JSONError as exc:
        raise InvalidArgument(f"{label}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{label}: expected a JSON object")
    return doc


def _str_map(value: object, label: str, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _fail(label, where, "expected an object of strings")
    return dict(value)


def parse_descriptor(value: object, label: str, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _fail(label, where, "expected an object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise _fail(label, f"{where}.mediaType", "missing")
    digest = parse_digest(value.get("digest"), f"{label}: {where}.digest")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _fail(label, f"{where}.size", "expected a non-negative integer")
    urls = value.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise _fail(label, f"{where}.urls", "expected a list of strings")
    platform = None
    raw_platform = value.get("platform")
    if raw_platform is not None:
        if not isinstance(raw_platform, dict):
            raise _fail(label, f"{where}.platform", "expected an object")
        os_ = raw_platform.get("os")
        arch = raw_platform.get("architecture")
        variant = raw_platform.get("variant", "")
        if not all(isinstance(v, str) for v in (os_, arch, variant)):
            raise _fail(label, f"{where}.platform", "os, architecture and variant are strings")
        platform = Platform(str(os_), str(arch), str(variant))
    annotations = _str_map(value.get("annotations"), label, f"{where}.annotations")
    return Descriptor(media_type, digest, size, tuple(urls), annotations, platform)


def parse_manifest(data: bytes, label: str, media_type: str | None = None) -> Manifest | Index:
    """A manifest or an index; ``media_type`` is the transport's Content-Type, if any.

    The document's own ``mediaType`` wins over the hint; an OCI document may
    omit it, and then its shape (``manifests`` or ``layers``) decides.
    """
    doc = _loads(data, label)
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _fail(label, "mediaType", "expected a string")
    kind = declared or media_type or ""
    if kind in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED) or doc.get("schemaVersion") == 1:
        raise Unsupported(f"{label}: docker schema 1 manifests are not supported")
    if doc.get("schemaVersion") != 2:
        raise _fail(label, "schemaVersion", "expected 2")
    if kind not in INDEX_TYPES + MANIFEST_TYPES:
        if kind and kind != "application/json":
            raise InvalidArgument(f"{label}: unknown manifest media type {kind!r}")
        kind = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    annotations = _str_map(doc.get("annotations"), label, "annotations")
    if kind in INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise _fail(label, "manifests", "expected a list")
        manifests = tuple(
            parse_descriptor(m, label, f"manifests[{i}]") for i, m in enumerate(entries)
        )
        return Index(kind, manifests, annotations)
    config = parse_descriptor(doc.get("config"), label, "config")
    entries = doc.get("layers")
    if not isinstance(entries, list):
        raise _fail(label, "layers", "expected a list")
    layers = tuple(parse_descriptor(m, label, f"layers[{i}]") for i, m in enumerate(entries))
    for i, layer in enumerate(layers):
        if layer.media_type not in LAYER_TYPES:
            raise InvalidArgument(
                f"{label}: layers[{i}].mediaType: unknown layer media type {layer.media_type!r}"
            )
    return Manifest(kind, config, layers, annotations)


def parse_config(data: bytes, label: str) -> ImageConfig:
    doc = _loads(data, label)
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise _fail(label, "rootfs", 'expected {"type": "layers", "diff_ids": [...]}')
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list):
        raise _fail(label, "rootfs.diff_ids", "expected a list")
    for i, diff_id in enumerate(diff_ids):
        parse_digest(diff_id, f"{label}: rootfs.diff_ids[{i}]")
    for key in ("os", "architecture"):
        if not isinstance(doc.get(key, ""), str):
            raise _fail(label, key, "expected a string")
    config = doc.get("config")
    if config is not None and not isinstance(config, dict):
        raise _fail(label, "config", "expected an object")
    history = doc.get("history")
    if history is not None and not isinstance(history, list):
        raise _fail(label, "history", "expected a list")
    return ImageConfig(doc)


def select_manifest(index: Index, wanted: Platform, label: str) -> Descriptor:
    """The index entry for ``wanted``: an exact variant first, then any variant."""
    candidates = [
        m
        for m in index.manifests
        if m.platform is not None
        and m.platform.os == wanted.os
        and m.platform.architecture == wanted.architecture
        and m.media_type in MANIFEST_TYPES
    ]
    for m in candidates:
        assert m.platform is not None
        if not wanted.variant or m.platform.variant in ("", wanted.variant):
            return m
    if candidates and not wanted.variant:
        return candidates[0]
    if not any(m.platform is not None for m in index.manifests):
        # An index without platforms (a single-image layout): its one manifest.
        plain = [m for m in index.manifests if m.media_type in MANIFEST_TYPES]
        if len(plain) == 1:
            return plain[0]
    raise NotFound(f"{label}: no manifest for {wanted} in the image index")


def is_gzip_layer(media_type: str) -> bool:
    return media_type.endswith("gzip")


def layer_media_type(manifest_type: str, compressed: bool) -> str:
    """The layer media type that goes with a manifest of ``manifest_type``."""
    if manifest_type == DOCKER_MANIFEST:
        return DOCKER_LAYER_GZIP if compressed else DOCKER_LAYER
    return OCI_LAYER_GZIP if compressed else OCI_LAYER
