"""Manifests, indexes and configs: parsing, validation, platform choice."""

from __future__ import annotations

import pytest

from sampan import _json
from sampan.errors import InvalidArgument, NotFound, Unsupported
from sampan.oci import image as oi
from sampan.oci.digest import chain_ids, parse_digest, sha256_of

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64


def _manifest(**over: object) -> bytes:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": oi.DOCKER_MANIFEST,
        "config": {"mediaType": oi.DOCKER_CONFIG, "digest": D1, "size": 10},
        "layers": [{"mediaType": oi.DOCKER_LAYER_GZIP, "digest": D2, "size": 20}],
    }
    doc.update(over)
    return _json.dumps(doc).encode()


def test_docker_manifest_parses_and_round_trips() -> None:
    m = oi.parse_manifest(_manifest(), "busybox")
    assert isinstance(m, oi.Manifest)
    assert m.media_type == oi.DOCKER_MANIFEST
    assert m.config.digest == D1 and m.layers[0].size == 20
    again = oi.parse_manifest(m.to_bytes(), "again")
    assert again == m


def test_oci_manifest_without_media_type_is_told_by_its_shape() -> None:
    doc = _json.loads(_manifest())
    del doc["mediaType"]
    doc["layers"][0]["mediaType"] = oi.OCI_LAYER_GZIP
    assert isinstance(oi.parse_manifest(_json.dumps(doc).encode(), "x"), oi.Manifest)
    index = {"schemaVersion": 2, "manifests": []}
    assert isinstance(oi.parse_manifest(_json.dumps(index).encode(), "x"), oi.Index)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "x: not JSON"),
        (b"[]", "x: expected a JSON object"),
        (_manifest(mediaType="application/vnd.example+json"), "unknown manifest media type"),
        (_manifest(schemaVersion=3), "schemaVersion: expected 2"),
        (_manifest(config={"mediaType": "a", "digest": "sha256:12", "size": 1}), "config.digest"),
        (_manifest(config={"mediaType": "a", "digest": D1, "size": -1}), "config.size"),
        (_manifest(layers="no"), "layers: expected a list"),
        (
            _manifest(layers=[{"mediaType": "text/plain", "digest": D2, "size": 1}]),
            "layers[0].mediaType: unknown layer media type",
        ),
    ],
)
def test_bad_manifests_name_the_field(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        oi.parse_manifest(data, "x")


def test_schema1_is_unsupported_with_a_clear_message() -> None:
    with pytest.raises(Unsupported, match="schema 1"):
        oi.parse_manifest(b'{"schemaVersion": 1, "name": "x"}', "old")


def test_config_validation() -> None:
    good = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [D1]}}
    config = oi.parse_config(_json.dumps(good).encode(), "c")
    assert config.diff_ids == [D1] and config.platform == oi.Platform("linux", "amd64")
    bad = dict(good, rootfs={"type": "layers", "diff_ids": ["nope"]})
    with pytest.raises(InvalidArgument, match=r"rootfs.diff_ids\[0\]"):
        oi.parse_config(_json.dumps(bad).encode(), "c")
    with pytest.raises(InvalidArgument, match="rootfs"):
        oi.parse_config(b'{"os": "linux"}', "c")


def _index(*platforms: tuple[str, str, str]) -> oi.Index:
    return oi.Index(
        oi.OCI_INDEX,
        tuple(
            oi.Descriptor(oi.OCI_MANIFEST, sha256_of(f"{p}".encode()), 1, platform=oi.Platform(*p))
            for p in platforms
        ),
    )


def test_platform_selection() -> None:
    index = _index(("linux", "arm", "v6"), ("linux", "arm", "v7"), ("linux", "amd64", ""))
    assert oi.select_manifest(index, oi.Platform("linux", "amd64"), "x").platform == oi.Platform(
        "linux", "amd64"
    )
    chosen = oi.select_manifest(index, oi.Platform("linux", "arm", "v7"), "x")
    assert chosen.platform is not None and chosen.platform.variant == "v7"
    with pytest.raises(NotFound, match="no manifest for linux/s390x"):
        oi.select_manifest(index, oi.Platform("linux", "s390x"), "x")


def test_parse_platform() -> None:
    assert oi.parse_platform("linux/arm64/v8") == oi.Platform("linux", "arm64", "v8")
    with pytest.raises(InvalidArgument, match="platform"):
        oi.parse_platform("linux")


def test_digests_and_chain_ids() -> None:
    assert parse_digest(D1) == D1
    for bad in ("sha256:ABC", "md5:" + "a" * 32, "sha256:" + "a" * 63, 7):
        with pytest.raises(InvalidArgument):
            parse_digest(bad)
    chain = chain_ids([D1, D2])
    assert chain[0] == D1
    assert chain[1] == sha256_of(f"{D1} {D2}".encode())
