"""docker's client config.json: the credentials ``login`` stores and pull/push send.

Credentials live where docker keeps them, so ``docker login`` and ``sampan
login`` share them: ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``,

    {"auths": {"127.0.0.1:5000": {"auth": base64("user:password")}}}

Docker Hub's key is "https://index.docker.io/v1/"; other keys may carry a
scheme or a path, which are ignored when matching.  Credential helpers
(``credsStore``) are not run: such entries are simply not found.

Apart from the registry client (registry/auth.py) so that the ``sampan`` CLI,
a client of the daemon, reads and writes it without importing HTTP or TLS.
"""

from __future__ import annotations

import binascii
import os

from sampan import _json
from sampan.errors import InvalidArgument

__all__ = [
    "DOCKER_HUB_KEY",
    "Credentials",
    "auth_key",
    "config_path",
    "erase_credentials",
    "load_credentials",
    "store_credentials",
]

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_HOSTS = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)


class Credentials:
    """A username and password (or an identity token, docker's OAuth refresh token)."""

    __slots__ = ("identity_token", "password", "username")

    def __init__(self, username: str, password: str, identity_token: str = "") -> None:
        self.username = username
        self.password = password
        self.identity_token = identity_token

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + binascii.b2a_base64(raw, newline=False).decode()

    def __repr__(self) -> str:  # never print a password
        return f"Credentials(username={self.username!r})"


def config_path(config_dir: str | None = None) -> str:
    """config.json under CONFIG_DIR, $DOCKER_CONFIG, or ~/.docker."""
    base = config_dir or os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    return os.path.join(base, "config.json")


def auth_key(registry: str) -> str:
    """The key config.json uses for REGISTRY (a host[:port], URL, or "docker.io")."""
    host = _normalise_key(registry)
    return DOCKER_HUB_KEY if host in _HUB_HOSTS else host


def _normalise_key(key: str) -> str:
    key = key.strip()
    if "://" in key:
        key = key.split("://", 1)[1]
    return key.split("/", 1)[0].lower()


def _read_config(path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read credentials: {exc.strerror}") from exc
    if not data.strip():
        return {}
    try:
        doc = _json.loads(data)
    except ValueError as exc:
        raise InvalidArgument(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{path}: expected a JSON object")
    return doc


def load_credentials(registry: str, config_dir: str | None = None) -> Credentials | None:
    """The credentials config.json holds for REGISTRY, or None."""
    path = config_path(config_dir)
    auths = _read_config(path).get("auths")
    if not isinstance(auths, dict):
        return None
    want = auth_key(registry)
    for key, entry in auths.items():
        if not isinstance(key, str) or not isinstance(entry, dict) or auth_key(key) != want:
            continue
        identity = entry.get("identitytoken") or ""
        username, password = entry.get("username"), entry.get("password")
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                decoded = binascii.a2b_base64(encoded).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise InvalidArgument(f"{path}: auths.{key}.auth is not base64") from exc
            username, sep, password = decoded.partition(":")
            if not sep:
                raise InvalidArgument(f"{path}: auths.{key}.auth is not base64(user:password)")
        if isinstance(username, str) and isinstance(password, str) and (username or identity):
            return Credentials(username, password, identity if isinstance(identity, str) else "")
        if isinstance(identity, str) and identity:
            return Credentials("<token>", "", identity)
    return None


def store_credentials(
    registry: str, username: str, password: str, config_dir: str | None = None
) -> str:
    """Write REGISTRY's credentials into config.json (other keys kept); returns its path."""
    if not username or ":" in username:
        raise InvalidArgument(f"username {username!r}: must be non-empty and without ':'")
    path = config_path(config_dir)
    doc = _read_config(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    want = auth_key(registry)
    for key in [k for k in auths if isinstance(k, str) and auth_key(k) == want]:
        del auths[key]
    raw = f"{username}:{password}".encode()
    auths[want] = {"auth": binascii.b2a_base64(raw, newline=False).decode()}
    doc["auths"] = auths
    _write_config(path, doc)
    return path


def erase_credentials(registry: str, config_dir: str | None = None) -> bool:
    """Remove REGISTRY's credentials (``logout``); False if there were none."""
    path = config_path(config_dir)
    doc = _read_config(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return False
    want = auth_key(registry)
    keys = [k for k in auths if isinstance(k, str) and auth_key(k) == want]
    for key in keys:
        del auths[key]
    if keys:
        _write_config(path, doc)
    return bool(keys)


def _write_config(path: str, doc: dict[str, object]) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
