"""Registry authentication: docker's config.json, Basic, and the bearer-token flow.

Credentials live where docker keeps them, so ``docker login`` and ``sampan
login`` share them: ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``,

    {"auths": {"127.0.0.1:5000": {"auth": base64("user:password")}}}

Docker Hub's key is "https://index.docker.io/v1/"; other keys may carry a
scheme or a path, which are ignored when matching.  Credential helpers
(``credsStore``) are not run: such entries are simply not found.

The flow: a request answered 401 carries ``WWW-Authenticate``.  ``Basic``
means send the credentials with every request.  ``Bearer realm=...,
service=...,scope=...`` means ask the realm for a token for the scopes
("repository:library/busybox:pull"), with Basic credentials if there are
any, and send ``Authorization: Bearer TOKEN``.  Tokens are cached per
(host, scopes) until they expire; once a host's challenge is known, a new
scope fetches its token before the request instead of after a 401.
"""

from __future__ import annotations

import binascii
import os
import threading
import time
import urllib.parse
from collections.abc import Iterable

from sampan import _json
from sampan.errors import InvalidArgument
from sampan.image.registry.errors import RegistryError, Unauthorized, parse_error_body
from sampan.image.registry.transport import Transport

__all__ = [
    "DOCKER_HUB_KEY",
    "Authenticator",
    "Challenge",
    "Credentials",
    "config_path",
    "erase_credentials",
    "load_credentials",
    "parse_challenges",
    "store_credentials",
]

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_HOSTS = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
_TOKEN_SLACK = 10.0  # refresh a token this many seconds before it expires


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


class Challenge:
    """One ``WWW-Authenticate`` challenge: a scheme ("bearer", "basic") and its parameters."""

    __slots__ = ("params", "scheme")

    def __init__(self, scheme: str, params: dict[str, str]) -> None:
        self.scheme = scheme.lower()
        self.params = params

    def __repr__(self) -> str:
        return f"Challenge({self.scheme!r}, {self.params!r})"


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a WWW-Authenticate value: ``Bearer realm="x",scope="y"``."""
    challenges: list[Challenge] = []
    i, n = 0, len(header)
    current: Challenge | None = None
    while i < n:
        while i < n and header[i] in " \t,":
            i += 1
        start = i
        while i < n and header[i] not in " \t,=":
            i += 1
        token = header[start:i]
        if not token:
            break
        j = i
        while j < n and header[j] in " \t":
            j += 1
        if j < n and header[j] == "=" and current is not None:
            i = j + 1
            while i < n and header[i] in " \t":
                i += 1
            value, i = _param_value(header, i)
            current.params[token.lower()] = value
        else:
            current = Challenge(token, {})
            challenges.append(current)
    return challenges


def _param_value(header: str, i: int) -> tuple[str, int]:
    if i < len(header) and header[i] == '"':
        out: list[str] = []
        i += 1
        while i < len(header) and header[i] != '"':
            if header[i] == "\\" and i + 1 < len(header):
                i += 1
            out.append(header[i])
            i += 1
        return "".join(out), i + 1
    start = i
    while i < len(header) and header[i] not in ",":
        i += 1
    return header[start:i].strip(), i


# -- docker's config.json -------------------------------------------------------------


def config_path(config_dir: str | None = None) -> str:
    """config.json under CONFIG_DIR, $DOCKER_CONFIG, or ~/.docker."""
    base = config_dir or os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    return os.path.join(base, "config.json")


def _auth_key(registry: str) -> str:
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
    want = _auth_key(registry)
    for key, entry in auths.items():
        if not isinstance(key, str) or not isinstance(entry, dict) or _auth_key(key) != want:
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
    want = _auth_key(registry)
    for key in [k for k in auths if isinstance(k, str) and _auth_key(k) == want]:
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
    want = _auth_key(registry)
    keys = [k for k in auths if isinstance(k, str) and _auth_key(k) == want]
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


# -- the flow ---------------------------------------------------------------------------


class Authenticator:
    """Authorization headers for requests to registries, shared by a pull's threads.

    ``header(host, scopes)`` is what to send now (None: nothing known yet);
    ``challenge(host, www_authenticate, scopes)`` answers a 401 and returns
    the header to retry with, or raises Unauthorized.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        config_dir: str | None = None,
        credentials: dict[str, Credentials] | None = None,
    ) -> None:
        self.transport = transport
        self.config_dir = config_dir
        # Credentials given by the caller replace config.json entirely ({}: anonymous).
        self._given = (
            None if credentials is None else {_auth_key(k): v for k, v in credentials.items()}
        )
        self._lock = threading.Lock()
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, tuple[str, ...]], tuple[str, float]] = {}
        self._creds: dict[str, Credentials | None] = {}

    def credentials(self, host: str) -> Credentials | None:
        key = _auth_key(host)
        with self._lock:
            if self._given is not None:
                return self._given.get(key)
            if key not in self._creds:
                self._creds[key] = load_credentials(host, self.config_dir)
            return self._creds[key]

    def header(self, host: str, scopes: Iterable[str], name: str = "") -> str | None:
        """The Authorization value for HOST and SCOPES, or None before any challenge."""
        scopes = tuple(sorted(set(scopes)))
        with self._lock:
            cached = self._tokens.get((host, scopes))
            challenge = self._challenges.get(host)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        if challenge is None:
            return None
        return self._authorize(host, challenge, scopes, name or host)

    def challenge(
        self, host: str, www_authenticate: str, scopes: Iterable[str], name: str = ""
    ) -> str:
        """Answer a 401's WWW-Authenticate; NAME ("host/repo") is what errors name."""
        name = name or host
        scopes = tuple(sorted(set(scopes)))
        known = [c for c in parse_challenges(www_authenticate) if c.scheme in ("bearer", "basic")]
        if not known:
            raise Unauthorized(
                f"unauthorized: registry {name} asks for an authentication scheme sampan does "
                f"not support ({www_authenticate or 'no WWW-Authenticate header'})",
                status=401,
            )
        challenge = next((c for c in known if c.scheme == "bearer"), known[0])
        with self._lock:
            self._challenges[host] = challenge
            self._tokens.pop((host, scopes), None)
        return self._authorize(host, challenge, scopes, name)

    def _authorize(
        self, host: str, challenge: Challenge, scopes: tuple[str, ...], name: str
    ) -> str:
        creds = self.credentials(host)
        if challenge.scheme == "basic":
            if creds is None:
                raise Unauthorized(
                    f"unauthorized: authentication required for {name} "
                    f"(no credentials: sampan login {host})",
                    status=401,
                )
            value, lifetime = creds.basic(), 1e9
        else:
            value, lifetime = self._fetch_token(host, challenge, scopes, creds, name)
        with self._lock:
            self._tokens[(host, scopes)] = (value, time.monotonic() + lifetime)
        return value

    def _fetch_token(
        self,
        host: str,
        challenge: Challenge,
        scopes: tuple[str, ...],
        creds: Credentials | None,
        name: str,
    ) -> tuple[str, float]:
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise Unauthorized(
                f"unauthorized: registry {host} sent a bearer challenge without a realm"
            )
        params: list[tuple[str, str]] = []
        if "service" in challenge.params:
            params.append(("service", challenge.params["service"]))
        params += [("scope", s) for s in scopes]
        headers: dict[str, str] = {"Accept": "application/json"}
        if creds is not None and creds.identity_token:
            body = urllib.parse.urlencode(
                [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", creds.identity_token),
                    ("client_id", "sampan"),
                    *params,
                ]
            ).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            method, url, data = "POST", realm, body
        else:
            if creds is not None:
                headers["Authorization"] = creds.basic()
                params.append(("account", creds.username))
            query = urllib.parse.urlencode(params)
            method, url, data = "GET", f"{realm}{'&' if '?' in realm else '?'}{query}", None
        with self.transport.request(method, url, headers=headers, body=data) as response:
            payload = response.read(1 << 20)
            status = response.status
        if status in (401, 403):
            _codes, message = parse_error_body(payload)
            what = (
                f"incorrect username or password for {host}"
                if creds is not None
                else f"authentication required for {name}"
            )
            detail = f" ({message})" if message else ""
            raise Unauthorized(f"unauthorized: {what}{detail}", status=status)
        if status != 200:
            raise RegistryError(
                f"token server for {host} answered {status} {_reason(status)} for "
                f"{urllib.parse.urlsplit(realm).path or '/'}",
                status=status,
            )
        try:
            doc = _json.loads(payload)
        except ValueError as exc:
            raise RegistryError(f"token server for {host} sent invalid JSON: {exc}") from exc
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token server for {host} sent no token")
        expires = doc.get("expires_in", 60)
        lifetime = float(expires) if isinstance(expires, int | float) and expires > 0 else 60.0
        return f"Bearer {token}", max(lifetime - _TOKEN_SLACK, 1.0)


def _reason(status: int) -> str:
    import http

    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""
