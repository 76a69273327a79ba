"""Registry authentication against real registries: htpasswd (Basic) and bearer tokens.

Credentials come from a docker-compatible config.json ($DOCKER_CONFIG), the
way ``docker login`` leaves them, and skopeo reads what the client pushed
with the same credentials.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from sampan.image.registry import (
    Credentials,
    RegistryClient,
    Unauthorized,
    load_credentials,
    login,
    store_credentials,
)
from sampan.oci import image as oi
from tests.integration import registry_fixtures as rf
from tests.integration.registry_fixtures import (
    PASSWORD,
    USER,
    RegistryServer,
    TokenRegistry,
    needs_registry,
    skopeo_inspect,
)

pytestmark = needs_registry
# fixtures, found by name
auth_registry, token_registry, docker_config = rf.auth_registry, rf.token_registry, rf.docker_config


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_small_image(client: RegistryClient, repo: str, tag: str = "v1") -> str:
    layer = b"a layer of " + repo.encode() * 1000
    rootfs = {"type": "layers", "diff_ids": [sha256(layer)]}
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": rootfs}).encode()
    for blob in (config, layer):
        if client.head_blob(repo, sha256(blob)) is None:
            client.upload_blob(repo, sha256(blob), blob, len(blob))
    manifest = oi.Manifest(
        oi.OCI_MANIFEST,
        oi.Descriptor(oi.OCI_CONFIG, sha256(config), len(config)),
        (oi.Descriptor(oi.OCI_LAYER, sha256(layer), len(layer)),),
    )
    return client.put_manifest(repo, tag, manifest.to_bytes(), oi.OCI_MANIFEST)


def test_basic_auth_needs_credentials(auth_registry: RegistryServer, docker_config: Path) -> None:
    host = auth_registry.host
    with RegistryClient(host) as client, pytest.raises(Unauthorized) as err:
        client.get_manifest("private/app", "v1")
    expected = f"unauthorized: authentication required for {host}/private/app"
    assert str(err.value).startswith(expected)
    assert err.value.status == 401


def test_basic_auth_with_config_json(auth_registry: RegistryServer, docker_config: Path) -> None:
    host = auth_registry.host
    path = store_credentials(host, USER, PASSWORD)
    assert path == str(docker_config / "config.json")
    doc = json.loads(Path(path).read_text())
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert doc == {"auths": {host: {"auth": encoded}}}
    assert os.stat(path).st_mode & 0o777 == 0o600
    with RegistryClient(host) as client:
        client.check_login()
        digest = push_small_image(client, "private/app")
        assert client.get_manifest("private/app", "v1").digest == digest
    inspected = skopeo_inspect(f"docker://{host}/private/app:v1", creds=f"{USER}:{PASSWORD}")
    assert inspected["Digest"] == digest


def test_basic_auth_wrong_password(auth_registry: RegistryServer, docker_config: Path) -> None:
    host = auth_registry.host
    store_credentials(host, USER, "wrong")
    with RegistryClient(host) as client:
        with pytest.raises(Unauthorized, match=f"authentication required for {host}/private/app"):
            client.get_manifest("private/app", "v1")
        with pytest.raises(Unauthorized):
            client.check_login()


def test_token_auth_anonymous_is_refused(token_registry: TokenRegistry) -> None:
    host = token_registry.host
    with RegistryClient(host, credentials={}) as client, pytest.raises(Unauthorized) as err:
        client.get_manifest("private/app", "v1")
    assert f"authentication required for {host}/private/app" in str(err.value)


def test_token_auth_push_pull_mount(token_registry: TokenRegistry, docker_config: Path) -> None:
    host, tokens = token_registry.host, token_registry.tokens
    store_credentials(host, USER, PASSWORD)
    creds = load_credentials(host)
    assert creds is not None and (creds.username, creds.password) == (USER, PASSWORD)
    tokens.requests.clear()
    with RegistryClient(host) as client:
        digest = push_small_image(client, "team/app")
        # one token for the push scope, fetched once and then reused
        assert tokens.requests == [(USER, ["repository:team/app:pull,push"])]
        assert client.get_manifest("team/app", "v1").digest == digest
        assert (USER, ["repository:team/app:pull"]) in tokens.requests
        # a cross-repository mount asks for pull on the source as well
        config_digest = json.loads(client.get_manifest("team/app", "v1").data)["config"]["digest"]
        assert client.mount_blob("team/copy", config_digest, "team/app") is True
        both = ["repository:team/app:pull", "repository:team/copy:pull,push"]
        assert (USER, both) in tokens.requests
        client.check_login()
    inspected = skopeo_inspect(f"docker://{host}/team/app:v1", creds=f"{USER}:{PASSWORD}")
    assert inspected["Digest"] == digest


def test_token_auth_public_pull_is_anonymous(token_registry: TokenRegistry) -> None:
    host = token_registry.host
    with RegistryClient(host, credentials={host: Credentials(USER, PASSWORD)}) as client:
        digest = push_small_image(client, "public/tool")
    with RegistryClient(host, credentials={}) as anonymous:
        assert anonymous.get_manifest("public/tool", "v1").digest == digest
        with pytest.raises(Unauthorized):
            push_small_image(anonymous, "public/tool", "v2")


def test_token_auth_wrong_password(token_registry: TokenRegistry) -> None:
    host = token_registry.host
    client = RegistryClient(host, credentials={host: Credentials(USER, "nope")})
    with client, pytest.raises(Unauthorized, match=f"incorrect username or password for {host}"):
        client.get_manifest("team/app", "v1")


def test_login_checks_then_saves(auth_registry: RegistryServer, docker_config: Path) -> None:
    host = auth_registry.host
    with pytest.raises(Unauthorized, match=f"incorrect username or password for {host}"):
        login(host, USER, "wrong")
    assert not (docker_config / "config.json").exists()  # nothing saved on failure
    assert login(host, USER, PASSWORD) == str(docker_config / "config.json")
    creds = load_credentials(host)
    assert creds is not None and creds.password == PASSWORD


def test_login_with_tokens(token_registry: TokenRegistry, docker_config: Path) -> None:
    host = token_registry.host
    with pytest.raises(Unauthorized, match=f"incorrect username or password for {host}"):
        login(host, USER, "wrong")
    login(host, USER, PASSWORD)
    with RegistryClient(host) as client:
        push_small_image(client, "after/login")
