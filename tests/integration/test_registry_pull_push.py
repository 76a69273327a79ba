"""pull and push against a real registry, with skopeo as the independent client.

What sampan pulls has the digests skopeo reports; what it pushes, skopeo
inspects with the same manifest digest.  A 401, 404, 500, a connection cut
mid-blob or a corrupted blob each give one clear error and leave no image
behind; an interrupted pull (even ``kill -9``) resumes from where it stopped.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan.errors import InvalidArgument, NotFound
from sampan.image.registry import RegistryClient, RegistryError, Unauthorized
from sampan.image.registry.progress import PlainProgress
from sampan.image.registry.pull import pull
from sampan.image.registry.push import push
from sampan.image.store import ImageStore
from sampan.oci import image as oi
from tests.integration import registry_fixtures as rf
from tests.integration.registry_fixtures import (
    FaultProxy,
    RegistryServer,
    Seeded,
    needs_registry,
    skopeo_inspect,
)

pytestmark = [
    needs_registry,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (unpacking layers)"),
]
registry, fault_proxy, auth_registry = rf.registry, rf.fault_proxy, rf.auth_registry
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(str(tmp_path / "image"))
    yield s
    s.close()


def pulled(store: ImageStore, ref: str, **kwargs: object) -> tuple[object, str]:
    out = io.StringIO()
    record = pull(store, ref, progress=PlainProgress(out), **kwargs)  # type: ignore[arg-type]
    return record, out.getvalue()


def ingest_files(store: ImageStore) -> list[Path]:
    return sorted(Path(store.content.root, "ingest").glob("*/data"))


def test_pull_busybox(registry: Seeded, store: ImageStore) -> None:
    name = f"{registry.host}/library/busybox"
    record, out = pulled(store, name)
    digest = skopeo_inspect(f"docker://{name}:latest")["Digest"]
    assert record.id == registry.busybox_config  # type: ignore[attr-defined]
    assert record.tags == [f"{name}:latest"]  # type: ignore[attr-defined]
    assert record.repo_digests == [f"{name}@{digest}"]  # type: ignore[attr-defined]
    assert record.manifest == digest  # type: ignore[attr-defined]
    assert store.snapshots.has(record.chain[-1])  # type: ignore[attr-defined]
    lines = out.splitlines()
    assert lines[0] == "latest: Pulling from library/busybox"
    assert any(line.endswith(": Pull complete") for line in lines)
    assert lines[-2:] == [f"Digest: {digest}", f"Status: Downloaded newer image for {name}:latest"]
    # again: nothing moves
    again, out = pulled(store, name)
    assert again.id == record.id  # type: ignore[attr-defined]
    assert ": Already exists" in out and f"Status: Image is up to date for {name}:latest" in out
    # by digest: no tag, a RepoDigest
    by_digest, _ = pulled(store, f"{name}@{digest}")
    assert by_digest.id == record.id  # type: ignore[attr-defined]
    assert store.resolve(f"{name}@{digest}").id == record.id  # type: ignore[attr-defined]


def test_pull_downloads_concurrently_and_unpacks_in_order(
    registry: Seeded, fault_proxy: FaultProxy, store: ImageStore
) -> None:
    fault_proxy.throttle(4_000_000)  # slow enough for the downloads to overlap
    record, out = pulled(store, f"{fault_proxy.host}/test/multi:v1")
    assert fault_proxy.max_in_flight >= 2
    chain = record.chain  # type: ignore[attr-defined]
    assert len(chain) == 3 and all(store.snapshots.has(c) for c in chain)
    with RegistryClient(registry.host) as client:
        layers = json.loads(client.get_manifest("test/multi", "v1").data)["layers"]
    ids = [layer["digest"][7:19] for layer in layers]
    completes = [line.split(":")[0] for line in out.splitlines() if "Pull complete" in line]
    assert completes == ids  # unpacked bottom first


def copy_image(client: RegistryClient, source: str, digest: str, target: str) -> None:
    """SOURCE@DIGEST into TARGET by cross-repository mounts and a manifest put."""
    got = client.get_manifest(source, digest)
    doc = json.loads(got.data)
    for blob in [doc["config"]["digest"], *(x["digest"] for x in doc["layers"])]:
        assert client.mount_blob(target, blob, source) is True
    client.put_manifest(target, digest, got.data, got.media_type)


def test_pull_index_picks_platform(registry: Seeded, store: ImageStore) -> None:
    arm64, amd64 = oi.Platform("linux", "arm64", "v8"), oi.Platform("linux", "amd64")
    with RegistryClient(registry.host) as client:
        amd = client.get_manifest("test/multi-oci", "v1")
        arm = client.get_manifest("library/busybox", "latest")
        copy_image(client, "test/multi-oci", amd.digest, "test/index")
        copy_image(client, "library/busybox", arm.digest, "test/index")
        entries = (
            oi.Descriptor(arm.media_type, arm.digest, len(arm.data), platform=arm64),
            oi.Descriptor(amd.media_type, amd.digest, len(amd.data), platform=amd64),
        )
        index = oi.Index(oi.OCI_INDEX, entries)
        index_digest = client.put_manifest("test/index", "v1", index.to_bytes(), oi.OCI_INDEX)
    name = f"{registry.host}/test/index:v1"
    record, out = pulled(store, name, platform=amd64)
    assert record.manifest == amd.digest  # type: ignore[attr-defined]
    assert record.index_digest == index_digest  # type: ignore[attr-defined]
    expected = [f"{registry.host}/test/index@{index_digest}"]
    assert record.repo_digests == expected  # type: ignore[attr-defined]
    assert f"Digest: {index_digest}" in out
    arm_record, _ = pulled(store, name, platform=oi.Platform("linux", "arm64"))
    assert arm_record.manifest == arm.digest  # type: ignore[attr-defined]
    with pytest.raises(NotFound, match="no manifest for linux/s390x"):
        pulled(store, name, platform=oi.Platform("linux", "s390x"))


def test_push_agrees_with_skopeo(registry: Seeded, store: ImageStore, tmp_path: Path) -> None:
    source = f"{registry.host}/library/busybox:latest"
    record, _ = pulled(store, source)
    target = f"{registry.host}/pushed/busybox:v1"
    store.tag(source, target)
    out = io.StringIO()
    digest = push(store, target, progress=PlainProgress(out))
    assert digest == record.manifest  # type: ignore[attr-defined]  # byte for byte
    assert skopeo_inspect(f"docker://{target}")["Digest"] == digest
    lines = out.getvalue().splitlines()
    assert lines[0] == f"The push refers to repository [{registry.host}/pushed/busybox]"
    assert any(line.endswith("Mounted from library/busybox") for line in lines)
    assert lines[-1] == f"v1: digest: {digest} size: {len(store.content.read(digest))}"
    assert f"{registry.host}/pushed/busybox@{digest}" in store.resolve(target).repo_digests
    # pushing again: everything is there already
    out = io.StringIO()
    assert push(store, target, progress=PlainProgress(out)) == digest
    assert "Layer already exists" in out.getvalue()
    copy = ["skopeo", "copy", "-q", "--src-tls-verify=false"]
    subprocess.run([*copy, f"docker://{target}", f"dir:{tmp_path / 'copy'}"], check=True)


def test_push_uploads_to_another_registry(
    registry: Seeded, store: ImageStore, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = RegistryServer(tmp_path_factory.mktemp("other-registry"))
    try:
        source = f"{registry.host}/test/multi:v1"
        record, _ = pulled(store, source)
        target = f"{other.host}/copied/multi:v2"
        store.tag(source, target)
        out = io.StringIO()
        digest = push(store, target, progress=PlainProgress(out), chunk_size=300_000)
        assert digest == record.manifest  # type: ignore[attr-defined]
        assert out.getvalue().count(": Pushed") == 3
        assert skopeo_inspect(f"docker://{target}")["Digest"] == digest
        # and back: a fresh store pulls what was pushed
        fresh = ImageStore(str(tmp_path_factory.mktemp("fresh") / "image"))
        try:
            again, _ = pulled(fresh, target)
            assert again.id == record.id  # type: ignore[attr-defined]
        finally:
            fresh.close()
    finally:
        other.stop()


def test_not_found_leaves_store_unchanged(registry: Seeded, store: ImageStore) -> None:
    name = f"{registry.host}/library/busybox:nope"
    with pytest.raises(NotFound, match=f"manifest for {name} not found"):
        pulled(store, name)
    assert store.list() == []


def test_unauthorized_leaves_store_unchanged(
    auth_registry: RegistryServer, store: ImageStore, tmp_path: Path
) -> None:
    name = f"{auth_registry.host}/private/app"
    with pytest.raises(Unauthorized, match=f"^unauthorized: authentication required for {name}"):
        pulled(store, name, config_dir=str(tmp_path / "no-creds"))
    assert store.list() == []


def test_server_error_leaves_store_unchanged(
    registry: Seeded, fault_proxy: FaultProxy, store: ImageStore
) -> None:
    fault_proxy.fail("/blobs/", 500, method="GET")
    with pytest.raises(
        RegistryError, match=r"answered 500 .* for GET /v2/test/multi/blobs/sha256:"
    ):
        pulled(store, f"{fault_proxy.host}/test/multi:v1")
    assert store.list() == []


def test_corrupt_blob_is_refused(
    registry: Seeded, fault_proxy: FaultProxy, store: ImageStore
) -> None:
    with RegistryClient(registry.host) as client:
        layer = json.loads(client.get_manifest("test/multi", "v1").data)["layers"][0]["digest"]
    fault_proxy.corrupt(layer, method="GET")
    with pytest.raises(InvalidArgument, match=f"blob {layer}: content has digest"):
        pulled(store, f"{fault_proxy.host}/test/multi:v1")
    assert store.list() == [] and not store.content.has(layer)


def test_dropped_connection_then_resume(
    registry: Seeded, fault_proxy: FaultProxy, store: ImageStore
) -> None:
    with RegistryClient(registry.host) as client:
        layer = json.loads(client.get_manifest("test/big", "v1").data)["layers"][0]
    fault_proxy.drop(layer["digest"], after=3_000_000, times=1)
    name = f"{fault_proxy.host}/test/big:v1"
    with pytest.raises(RegistryError) as err:
        pulled(store, name)
    assert layer["digest"] in str(err.value) and "broke off after 3000000" in str(err.value)
    assert store.list() == [] and not store.content.has(layer["digest"])
    [partial] = ingest_files(store)
    assert partial.stat().st_size == 3_000_000  # kept for the resume
    fault_proxy.hits.clear()
    record, _ = pulled(store, name)
    assert record.tags == [f"{name}"]  # type: ignore[attr-defined]
    ranges = [r for m, p, r in fault_proxy.hits if layer["digest"] in p and m == "GET"]
    assert ranges == ["bytes=3000000-"]
    assert ingest_files(store) == []


def test_kill_9_mid_pull_resumes(
    registry: Seeded, fault_proxy: FaultProxy, store: ImageStore, tmp_path: Path
) -> None:
    fault_proxy.throttle(1_000_000)  # 8 MB: about eight seconds
    name = f"{fault_proxy.host}/test/big:v1"
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from sampan.image.store import ImageStore\n"
        "from sampan.image.registry.pull import pull\n"
        f"pull(ImageStore({store.root!r}), {name!r})\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            files = ingest_files(store)
            if files and files[0].stat().st_size > 1_500_000:
                break
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            time.sleep(0.05)
        else:
            pytest.fail("the pull made no progress")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    [partial] = ingest_files(store)
    got = partial.stat().st_size
    assert store.list() == []
    fault_proxy.reset()
    record, _ = pulled(store, name)
    assert record.tags == [name]  # type: ignore[attr-defined]
    ranges = [r for m, p, r in fault_proxy.hits if "/blobs/" in p and m == "GET" and r]
    assert ranges == [f"bytes={got}-"]
