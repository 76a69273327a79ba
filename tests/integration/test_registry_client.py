"""The registry client against a real registry (Debian's docker-registry) on loopback.

What skopeo pushed, the client reads byte for byte (digests agree); what the
client pushes, skopeo reads with the same digest.  Failures -- a missing tag
or repository, a 500, a connection cut mid-blob, a registry that is down --
are one clear error each.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from sampan.errors import InvalidArgument, NotFound
from sampan.image.registry import RegistryClient, RegistryError
from sampan.image.registry import transport as transport_mod
from sampan.oci import image as oi
from tests.integration import registry_fixtures as rf
from tests.integration.registry_fixtures import (
    FaultProxy,
    Seeded,
    free_port,
    needs_registry,
    skopeo_copy,
    skopeo_inspect,
)

pytestmark = needs_registry
registry, fault_proxy = rf.registry, rf.fault_proxy  # fixtures, found by name


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_doc(client: RegistryClient, repo: str, ref: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(client.get_manifest(repo, ref).data)
    return doc


def test_pull_side_agrees_with_skopeo(registry: Seeded) -> None:
    with RegistryClient(registry.host) as client:
        result = client.get_manifest("library/busybox", "latest")
        assert result.media_type == oi.DOCKER_MANIFEST
        assert (
            result.digest == skopeo_inspect(f"docker://{registry.host}/library/busybox")["Digest"]
        )
        assert result.digest == sha256(result.data)
        manifest = oi.parse_manifest(result.data, "busybox", result.media_type)
        assert isinstance(manifest, oi.Manifest)
        assert manifest.config.digest == registry.busybox_config
        config = client.fetch_blob("library/busybox", manifest.config.digest)
        assert sha256(config) == registry.busybox_config
        for layer in manifest.layers:
            with client.get_blob("library/busybox", layer.digest, size=layer.size) as blob:
                assert (blob.offset, blob.size) == (0, layer.size)
                assert sha256(b"".join(blob)) == layer.digest
        # by digest, too; HEAD tells the same digest
        again = client.get_manifest("library/busybox", result.digest)
        assert again.data == result.data
        info = client.head_manifest("library/busybox", "latest")
        assert info is not None
        assert (info.digest, info.size, info.media_type) == (
            result.digest,
            len(result.data),
            oi.DOCKER_MANIFEST,
        )


def test_oci_manifest(registry: Seeded) -> None:
    with RegistryClient(registry.host) as client:
        result = client.get_manifest("test/multi-oci", "v1")
        assert result.media_type == oi.OCI_MANIFEST
        manifest = oi.parse_manifest(result.data, "multi", result.media_type)
        assert isinstance(manifest, oi.Manifest) and len(manifest.layers) == 3


def test_range_resume(registry: Seeded) -> None:
    with RegistryClient(registry.host) as client:
        layer = manifest_doc(client, "test/multi", "v1")["layers"][2]
        digest, size = layer["digest"], layer["size"]
        with client.get_blob("test/multi", digest) as blob:
            whole = b"".join(blob)
        for offset in (1, 12345, size - 1):
            with client.get_blob("test/multi", digest, offset=offset, size=size) as blob:
                assert blob.offset == offset and blob.size == size
                rest = b"".join(blob)
            assert whole[:offset] + rest == whole
        # an offset at (or past) the end cannot be resumed: the whole blob comes back
        with client.get_blob("test/multi", digest, offset=size, size=size) as blob:
            assert blob.offset == 0 and sha256(b"".join(blob)) == digest


def test_keep_alive(registry: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    class Counting(http.client.HTTPConnection):
        def connect(self) -> None:
            opened.append(self.host)
            super().connect()

    monkeypatch.setattr(transport_mod.http.client, "HTTPConnection", Counting)
    with RegistryClient(registry.host) as client:
        client.transport._plain.add(registry.host)  # skip the TLS probe for the count
        for _ in range(5):
            client.get_manifest("test/multi", "v1")
            assert client.head_manifest("test/multi", "v1") is not None
            assert client.head_blob("test/multi", registry.multi_config, push=False)
        config = client.fetch_blob("test/multi", registry.multi_config)
    assert sha256(config) == registry.multi_config
    assert len(opened) == 1


def test_missing_things_are_not_found(registry: Seeded) -> None:
    name = f"{registry.host}/library/busybox"
    with RegistryClient(registry.host) as client:
        with pytest.raises(
            NotFound, match=f"^manifest for {name}:nope not found: manifest unknown"
        ):
            client.get_manifest("library/busybox", "nope")
        with pytest.raises(NotFound, match=f"{registry.host}/no/such:latest not found"):
            client.get_manifest("no/such", "latest")
        missing = "sha256:" + "0" * 64
        with pytest.raises(NotFound, match=f"manifest for {name}@{missing} not found"):
            client.get_manifest("library/busybox", missing)
        with pytest.raises(NotFound, match=f"blob {missing} of {name} not found"):
            client.get_blob("library/busybox", missing)
        assert client.head_manifest("library/busybox", "nope") is None
        assert client.head_blob("library/busybox", missing) is None


def test_push_agrees_with_skopeo(registry: Seeded, tmp_path: Path) -> None:
    layers = [b"layer one\n" * 5000, bytes(range(256)) * 4000]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(x) for x in layers]},
        }
    ).encode()
    repo = "pushed/by-client"
    with RegistryClient(registry.host) as client:
        assert client.head_blob(repo, sha256(config)) is None
        client.upload_blob(repo, sha256(config), config, len(config))
        # one layer in one PUT from a file, the other in PATCH chunks of 100 kB
        f = io.BytesIO(b"junk" + layers[0])
        f.seek(4)
        client.upload_blob(repo, sha256(layers[0]), f, len(layers[0]))
        client.upload_blob(repo, sha256(layers[1]), layers[1], len(layers[1]), chunk_size=100_000)
        for blob in (config, *layers):
            assert client.head_blob(repo, sha256(blob)) == len(blob)
        manifest = oi.Manifest(
            oi.OCI_MANIFEST,
            oi.Descriptor(oi.OCI_CONFIG, sha256(config), len(config)),
            tuple(oi.Descriptor(oi.OCI_LAYER, sha256(x), len(x)) for x in layers),
        )
        data = manifest.to_bytes()
        digest = client.put_manifest(repo, "v1", data, oi.OCI_MANIFEST)
        assert digest == sha256(data)
        # a cross-repository mount, then the same manifest under a second name
        for blob in (config, *layers):
            assert client.mount_blob("pushed/mounted", sha256(blob), repo) is True
        assert client.put_manifest("pushed/mounted", "v1", data, oi.OCI_MANIFEST) == digest
        # a blob the source lacks is not mounted: an upload session is open instead
        session = client.mount_blob("pushed/mounted", "sha256:" + "1" * 64, repo)
        assert isinstance(session, str) and "/v2/pushed/mounted/blobs/uploads/" in session
        # an index over it, pushed by digest
        amd64 = oi.Platform("linux", "amd64")
        index = oi.Index(
            oi.OCI_INDEX,
            (oi.Descriptor(oi.OCI_MANIFEST, digest, len(data), platform=amd64),),
        )
        index_data = index.to_bytes()
        index_digest = client.put_manifest(repo, sha256(index_data), index_data, oi.OCI_INDEX)
        client.put_manifest(repo, "multi", index_data, oi.OCI_INDEX)
        got = client.get_manifest(repo, "multi")
        assert (got.media_type, got.digest) == (oi.OCI_INDEX, index_digest)
    for name in (repo, "pushed/mounted"):
        inspected = skopeo_inspect(f"docker://{registry.host}/{name}:v1")
        assert inspected["Digest"] == digest
        assert inspected["Layers"] == [sha256(x) for x in layers]
    raw = skopeo_inspect(f"docker://{registry.host}/{repo}:multi", raw=True)
    assert raw["manifests"][0]["digest"] == digest
    skopeo_copy(f"docker://{registry.host}/{repo}:v1", f"dir:{tmp_path / 'copy'}")
    assert (tmp_path / "copy" / sha256(layers[1])[7:]).read_bytes() == layers[1]


def test_put_manifest_checks_digest(registry: Seeded) -> None:
    client = RegistryClient(registry.host)
    with client, pytest.raises(InvalidArgument, match="content has digest"):
        client.put_manifest("x/y", "sha256:" + "2" * 64, b"{}", oi.OCI_MANIFEST)


def test_server_error_names_status_and_path(registry: Seeded, fault_proxy: FaultProxy) -> None:
    fault_proxy.fail("/manifests/", 500)
    with RegistryClient(fault_proxy.host) as client, pytest.raises(RegistryError) as err:
        client.get_manifest("library/busybox", "latest")
    message = str(err.value)
    assert "500" in message and "/v2/library/busybox/manifests/latest" in message
    assert "injected 500" in message and "\n" not in message
    assert err.value.status == 500


def test_dropped_blob_names_digest(registry: Seeded, fault_proxy: FaultProxy) -> None:
    with RegistryClient(registry.host) as client:
        layer = manifest_doc(client, "test/multi", "v1")["layers"][1]
    fault_proxy.drop(layer["digest"], after=100_000, times=1)
    received = bytearray()
    with RegistryClient(fault_proxy.host) as client:
        blob = client.get_blob("test/multi", layer["digest"], size=layer["size"])
        with pytest.raises(RegistryError) as err, blob:
            for chunk in blob:
                received += chunk
        assert layer["digest"] in str(err.value)
        assert f"after 100000 of {layer['size']} bytes" in str(err.value)
        assert len(received) == 100_000
        # and the rest resumes from where it broke off, on the same client
        with client.get_blob(
            "test/multi", layer["digest"], offset=len(received), size=layer["size"]
        ) as blob:
            assert blob.offset == 100_000
            received += b"".join(blob)
    assert sha256(bytes(received)) == layer["digest"]


def test_stale_keepalive_connection_is_retried(registry: Seeded) -> None:
    with RegistryClient(registry.host) as client:
        client.get_manifest("test/multi", "v1")
        for conns in client.transport._idle.values():
            for conn in conns:
                assert conn.sock is not None
                conn.sock.shutdown(socket.SHUT_RDWR)  # as if the server had closed it
        assert client.get_manifest("test/multi", "v1").data


def test_unreachable_registry(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    client = RegistryClient(f"127.0.0.1:{port}")
    with (
        client,
        pytest.raises(RegistryError, match=f"cannot reach registry 127.0.0.1:{port}.*refused"),
    ):
        client.get_manifest("library/busybox", "latest")


def test_docker_hub_mirror(registry: Seeded) -> None:
    hub = f"127.0.0.1:{free_port()}"  # stands for registry-1.docker.io, unreachable here
    mirror = f"http://{registry.host}"
    with RegistryClient("docker.io", mirrors=[mirror], origin=hub) as client:
        result = client.get_manifest("library/busybox", "latest")
        assert result.endpoint.mirror and result.endpoint.base == mirror
        layer = json.loads(result.data)["layers"][0]
        with client.get_blob("library/busybox", layer["digest"]) as blob:
            assert sha256(b"".join(blob)) == layer["digest"]
        # a name the mirror lacks: NotFound naming the image, and why docker.io did not answer
        with pytest.raises(NotFound) as err:
            client.get_manifest("library/nosuchimage", "latest")
        message = str(err.value)
        assert message.startswith("manifest for docker.io/library/nosuchimage:latest not found")
        assert mirror in message and "cannot reach registry" in message
    # mirrors only serve Docker Hub names
    with RegistryClient(registry.host, mirrors=["http://127.0.0.1:1"]) as client:
        assert client.mirrors == []
        assert client.get_manifest("library/busybox", "latest").endpoint.mirror is False


def test_hub_unreachable_without_mirror() -> None:
    hub = f"127.0.0.1:{free_port()}"
    client = RegistryClient("docker.io", origin=hub)
    with client, pytest.raises(RegistryError, match=f"cannot reach registry {hub}"):
        client.get_manifest("library/busybox", "latest")


def test_mirror_down_falls_back(registry: Seeded) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with RegistryClient("docker.io", mirrors=[down], origin=registry.host) as client:
        result = client.get_manifest("library/busybox", "latest")
        assert not result.endpoint.mirror
