"""Registry authentication: Basic and the bearer-token flow (credentials from
docker's config.json: sampan/image/dockerconfig.py, whose names are kept here).

The flow: a request answered 401 carries ``WWW-Authenticate``.  ``Basic``
means send the credentials with every request.  ``Bearer realm=...,
service=...,scope=...`` means ask the realm for a token for the scopes
("repository:library/busybox:pull"), with Basic credentials if there are
any, and send ``Authorization: Bearer TOKEN``.  Tokens are cached per
(host, scopes) until they expire; once a host's challenge is known, a new
scope fetches its token before the request instead of after a 401.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Iterable

from sampan import _json
from sampan.image.dockerconfig import (
    DOCKER_HUB_KEY,
    Credentials,
    auth_key,
    config_path,
    erase_credentials,
    load_credentials,
    store_credentials,
)
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

_TOKEN_SLACK = 10.0  # refresh a token this many seconds before it expires


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
            None if credentials is None else {auth_key(k): v for k, v in credentials.items()}
        )
        self._lock = threading.Lock()
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, tuple[str, ...]], tuple[str, float]] = {}
        self._creds: dict[str, Credentials | None] = {}

    def credentials(self, host: str) -> Credentials | None:
        key = auth_key(host)
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
