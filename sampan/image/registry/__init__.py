"""The registry client: the OCI distribution API over HTTP, with docker's auth and hosts.

    transport.py  http.client with keep-alive pools; TLS, or plain HTTP for insecure hosts
    auth.py       docker's config.json credentials; Basic and bearer-token challenges
    client.py     manifests, blobs, uploads and mounts for one registry (and Hub mirrors)
    errors.py     RegistryError, Unauthorized (NotFound is sampan.errors')

Nothing here knows the content store; pull.py and push.py compose the two.
"""

from __future__ import annotations

from sampan.image.registry.auth import (
    Credentials,
    config_path,
    erase_credentials,
    load_credentials,
    store_credentials,
)
from sampan.image.registry.client import (
    BlobReader,
    Endpoint,
    ManifestInfo,
    ManifestResult,
    RegistryClient,
    login,
    registry_host,
)
from sampan.image.registry.errors import RegistryError, Unauthorized
from sampan.image.registry.transport import Transport, is_insecure, is_loopback

__all__ = [
    "BlobReader",
    "Credentials",
    "Endpoint",
    "ManifestInfo",
    "ManifestResult",
    "RegistryClient",
    "RegistryError",
    "Transport",
    "Unauthorized",
    "config_path",
    "erase_credentials",
    "is_insecure",
    "is_loopback",
    "load_credentials",
    "login",
    "registry_host",
    "store_credentials",
]
