"""docker-py (PyPI ``docker``) against `sampan daemon`: ping, version, and images."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration import registry_fixtures as rf
from tests.integration.daemon_fixtures import SampanDaemon, daemon

docker = pytest.importorskip("docker")
registry = rf.registry
pytestmark = [pytest.mark.root, rf.needs_registry]
__all__ = ["daemon", "registry"]


@pytest.fixture(scope="module")
def client(daemon: SampanDaemon) -> Iterator[Any]:
    c = docker.DockerClient(base_url=daemon.host, version="auto")
    yield c
    c.close()


def test_ping_and_version(client: Any) -> None:
    assert client.ping() is True
    version = client.version()
    assert version["ApiVersion"] == "1.41"
    assert version["Components"][0]["Name"] == "Engine"
    assert client.api.api_version == "1.41"
    assert client.info()["OSType"] == "linux"


def test_pull_list_get_push_remove(client: Any, registry: rf.Seeded) -> None:
    repo = f"{registry.host}/test/multi"
    image = client.images.pull(repo, tag="v1")
    assert image.id == registry.multi_config
    assert f"{repo}:v1" in image.tags
    listed = {i.id for i in client.images.list()}
    assert registry.multi_config in listed
    got = client.images.get(f"{repo}:v1")
    assert got.id == image.id and len(got.attrs["RootFS"]["Layers"]) == 3
    assert got.history()[0]["Id"] == image.id

    target = f"{registry.host}/sampan/docker-py"
    assert image.tag(target, "v2") is True
    lines = list(client.images.push(target, tag="v2", stream=True, decode=True))
    assert not [line for line in lines if "error" in line], lines
    assert any("digest: sha256:" in line.get("status", "") for line in lines)
    client.images.remove(f"{target}:v2")
    assert f"{target}:v2" not in client.images.get(image.id).tags
    pulled = client.images.pull(target, tag="v2")
    assert pulled.id == image.id


def test_save_and_load(client: Any, registry: rf.Seeded) -> None:
    repo = f"{registry.host}/test/multi:v1"
    image = client.images.get(repo)
    data = b"".join(image.save(named=True))
    assert len(data) > 2_000_000  # three layers of random data
    client.images.remove(image.id, force=True)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(repo)
    [loaded] = client.images.load(data)
    assert loaded.id == registry.multi_config


def test_errors(client: Any) -> None:
    with pytest.raises(docker.errors.ImageNotFound, match="No such image"):
        client.images.get("nothing-here:nope")
    with pytest.raises(docker.errors.NotFound):
        client.images.remove("nothing-here")
