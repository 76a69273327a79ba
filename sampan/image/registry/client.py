"""The OCI distribution API for one registry: manifests, blobs, uploads.

    GET/HEAD  /v2/<repo>/manifests/<tag|digest>      Accept: every manifest type sampan reads
    PUT       /v2/<repo>/manifests/<tag|digest>
    GET/HEAD  /v2/<repo>/blobs/<digest>              Range: bytes=N- to resume
    POST      /v2/<repo>/blobs/uploads/              -> 202 Location (an upload session)
    POST      /v2/<repo>/blobs/uploads/?mount=D&from=R   -> 201 mounted, or 202 a session
    PATCH     <location>  Content-Range: a-b          a chunk;  PUT <location>?digest=D ends it

A client is made for a reference's *domain*; Docker Hub ("docker.io") is
reached at registry-1.docker.io, and for it the given mirrors are tried
first when reading.  A mirror that lacks the name, or is down, passes to
the next endpoint; when all fail, a name some endpoint said it lacks is a
NotFound (naming the image), not the network error of the last one.  The
endpoint that served a repository's manifest serves its blobs.

Every answer is checked: a manifest fetched by digest must hash to it, a
blob stream that ends early is an error naming the digest (the bytes
already received stay with the caller, for a Range resume).
"""

from __future__ import annotations

import hashlib
import http.client
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from sampan.errors import InvalidArgument, NotFound
from sampan.image.registry.auth import Authenticator, Credentials, store_credentials
from sampan.image.registry.errors import RegistryError, Unauthorized, parse_error_body
from sampan.image.registry.transport import (
    Body,
    Readable,
    Response,
    Transport,
    add_query,
    join_url,
)
from sampan.oci.digest import parse_digest
from sampan.oci.image import ACCEPT_MANIFESTS

__all__ = [
    "DOCKER_HUB_HOST",
    "BlobReader",
    "Endpoint",
    "ManifestResult",
    "RegistryClient",
    "login",
    "registry_host",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_HOST = "registry-1.docker.io"
MAX_MANIFEST = 4 << 20  # containerd's limit too
MAX_ERROR_BODY = 64 << 10
CHUNK = 1 << 20
NOT_FOUND_CODES = frozenset({"NAME_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "NOT_FOUND"})

_T = TypeVar("_T")


def registry_host(domain: str) -> str:
    """Where a reference's domain is served: docker.io -> registry-1.docker.io."""
    return DOCKER_HUB_HOST if domain in (DOCKER_HUB, "index.docker.io") else domain


class Endpoint:
    """One place a registry is reached: ``base`` is "https://host" or "http://host"."""

    __slots__ = ("base", "host", "mirror")

    def __init__(self, host: str, base: str, mirror: bool = False) -> None:
        self.host = host
        self.base = base
        self.mirror = mirror

    @classmethod
    def parse_mirror(cls, text: str, transport: Transport) -> Endpoint:
        """A mirror as configured: "http://127.0.0.1:5000", "https://m.example" or "host:port"."""
        text = text.strip().rstrip("/")
        if "://" in text:
            parts = urllib.parse.urlsplit(text)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidArgument(f"registry mirror {text!r}: expected http(s)://host[:port]")
            if parts.path not in ("", "/"):
                raise InvalidArgument(f"registry mirror {text!r}: a path is not supported")
            return cls(parts.netloc, f"{parts.scheme}://{parts.netloc}", mirror=True)
        if not text or "/" in text:
            raise InvalidArgument(f"registry mirror {text!r}: expected http(s)://host[:port]")
        return cls(text, transport.base_url(text), mirror=True)

    def __repr__(self) -> str:
        return f"Endpoint({self.base!r}{', mirror' if self.mirror else ''})"


class ManifestResult:
    """A manifest as the registry sent it: the bytes, their media type and digest."""

    __slots__ = ("data", "digest", "endpoint", "media_type")

    def __init__(self, data: bytes, media_type: str, digest: str, endpoint: Endpoint) -> None:
        self.data = data
        self.media_type = media_type
        self.digest = digest
        self.endpoint = endpoint


class ManifestInfo:
    """What HEAD on a manifest tells: media type, digest and size."""

    __slots__ = ("digest", "media_type", "size")

    def __init__(self, media_type: str, digest: str, size: int) -> None:
        self.media_type = media_type
        self.digest = digest
        self.size = size


class BlobReader:
    """A blob download in progress; iterate for chunks, use as a context manager.

    ``offset`` is where the body starts: the offset asked for when the
    registry honoured the Range request, 0 when it sent the whole blob (the
    caller then starts over).  ``size`` is the blob's total size when known.
    A connection dropped mid-stream raises RegistryError naming the digest.
    """

    def __init__(
        self, response: Response, digest: str, offset: int, size: int | None, name: str
    ) -> None:
        self.response = response
        self.digest = digest
        self.offset = offset
        self.size = size
        self.received = 0
        self._name = name

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks()

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        while True:
            try:
                data = self.response.read_chunk(size)
            except (OSError, http.client.HTTPException) as exc:
                got = self.offset + self.received
                total = f" of {self.size}" if self.size is not None else ""
                raise RegistryError(
                    f"download of blob {self.digest} from {self._name} broke off after "
                    f"{got}{total} bytes: {_describe(exc)}"
                ) from exc
            if not data:
                return
            self.received += len(data)
            yield data

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RegistryClient:
    """The distribution API of one registry domain (plus Docker Hub's mirrors).

    ``repo`` arguments are repository paths ("library/busybox"); a
    reference's ``path``.  Thread-safe: a pull's download threads share one
    client (and its connection pool and tokens).
    """

    def __init__(
        self,
        domain: str,
        *,
        mirrors: Iterable[str] = (),
        insecure_registries: Iterable[str] = (),
        config_dir: str | None = None,
        credentials: dict[str, Credentials] | None = None,
        transport: Transport | None = None,
        timeout: float = 60.0,
        origin: str | None = None,
    ) -> None:
        """ORIGIN overrides where DOMAIN is served (tests point docker.io at loopback)."""
        self.domain = domain
        self.transport = transport or Transport(
            insecure_registries=insecure_registries, timeout=timeout
        )
        self.auth = Authenticator(self.transport, config_dir=config_dir, credentials=credentials)
        host = origin or registry_host(domain)
        self.origin = Endpoint(host, self.transport.base_url(host))
        self.mirrors = (
            [Endpoint.parse_mirror(m, self.transport) for m in mirrors]
            if domain == DOCKER_HUB
            else []
        )
        self._pinned: dict[str, Endpoint] = {}
        self._lock = threading.Lock()

    # -- the plumbing -------------------------------------------------------------

    def name(self, repo: str) -> str:
        """How messages name REPO: "127.0.0.1:5000/team/app"."""
        return f"{self.domain}/{repo}"

    def _read_endpoints(self, repo: str) -> list[Endpoint]:
        everything = [*self.mirrors, self.origin]
        with self._lock:
            pinned = self._pinned.get(repo)
        if pinned is None:
            return everything
        return [pinned, *(e for e in everything if e is not pinned)]

    def _call(
        self,
        endpoint: Endpoint,
        method: str,
        url: str,
        scopes: tuple[str, ...],
        name: str,
        *,
        headers: dict[str, str] | None = None,
        body: Body = None,
        follow_redirects: bool = False,
    ) -> Response:
        """One authorised request; a 401 is answered once, then is Unauthorized."""
        if not url.startswith(("http://", "https://")):
            url = endpoint.base + url
        headers = dict(headers or {})
        auth = self.auth.header(endpoint.host, scopes, name)
        start = body.tell() if body is not None and not isinstance(body, bytes) else 0
        for attempt in range(2):
            if auth is not None:
                headers["Authorization"] = auth
            if body is not None and not isinstance(body, bytes):
                body.seek(start)
            response = self.transport.request(
                method, url, headers=headers, body=body, follow_redirects=follow_redirects
            )
            if response.status != 401:
                return response
            challenge = response.header("WWW-Authenticate")
            _codes, message = parse_error_body(response.read(MAX_ERROR_BODY))
            response.close()
            if attempt == 1 or not challenge:
                detail = f" ({message})" if message and auth is not None else ""
                raise Unauthorized(
                    f"unauthorized: authentication required for {name}{detail}", status=401
                )
            auth = self.auth.challenge(endpoint.host, challenge, scopes, name)
        raise AssertionError("unreachable")

    def _failure(self, response: Response, what: str, name: str) -> Exception:
        """The error for an unexpected answer; WHAT names the object ("manifest for x:y")."""
        status = response.status
        codes, message = parse_error_body(response.read(MAX_ERROR_BODY))
        response.close()
        detail = f": {message.lower()}" if message else ""
        if status == 404 or NOT_FOUND_CODES.intersection(codes):
            return NotFound(f"{what} not found{detail or ': not found'}")
        if status == 403 or "DENIED" in codes:
            return Unauthorized(
                f"denied: {message or 'requested access to the resource is denied'} ({name})",
                status=status,
                codes=codes,
            )
        host = urllib.parse.urlsplit(response.url).netloc
        reason = response.reason or ""
        return RegistryError(
            f"registry {host} answered {status} {reason} for {response.method} "
            f"{response.path}{detail}".replace("  ", " "),
            status=status,
            codes=codes,
        )

    def _read(self, repo: str, attempt: Callable[[Endpoint], _T], what: str) -> _T:
        """ATTEMPT on each read endpoint in turn; the first answer wins and pins it."""
        endpoints = self._read_endpoints(repo)
        missing: list[str] = []
        failures: list[str] = []
        last: Exception | None = None
        for endpoint in endpoints:
            try:
                result = attempt(endpoint)
            except NotFound as exc:
                missing.append(endpoint.base)
                last = exc
                continue
            except RegistryError as exc:
                if len(endpoints) == 1:
                    raise
                failures.append(f"{endpoint.base}: {exc}")
                last = exc
                continue
            with self._lock:
                self._pinned[repo] = endpoint
            return result
        assert last is not None
        if isinstance(last, NotFound) and not failures:
            raise last
        if missing:
            where = ", ".join(missing)
            also = f"; {'; '.join(failures)}" if failures else ""
            raise NotFound(f"{what} not found (on {where}{also})") from last
        raise RegistryError("; ".join(failures)) from last

    # -- manifests ----------------------------------------------------------------

    def get_manifest(self, repo: str, reference: str) -> ManifestResult:
        """The manifest or index REFERENCE (a tag or digest) names, verified by digest."""
        name = self.name(repo)
        what = f"manifest for {name}{_ref_suffix(reference)}"
        scopes = (f"repository:{repo}:pull",)

        def attempt(endpoint: Endpoint) -> ManifestResult:
            url = f"/v2/{repo}/manifests/{reference}"
            headers = {"Accept": ACCEPT_MANIFESTS}
            with self._call(endpoint, "GET", url, scopes, name, headers=headers) as response:
                if response.status != 200:
                    raise self._failure(response, what, name)
                try:
                    data = response.read(MAX_MANIFEST)
                except (OSError, http.client.HTTPException) as exc:
                    raise RegistryError(
                        f"download of {what} from {endpoint.host} broke off: {_describe(exc)}"
                    ) from exc
                if len(data) >= MAX_MANIFEST:
                    raise InvalidArgument(f"{what}: larger than {MAX_MANIFEST} bytes")
                media_type = response.header("Content-Type").partition(";")[0].strip()
                sent = response.header("Docker-Content-Digest")
            algorithm = reference.partition(":")[0] if ":" in reference else "sha256"
            digest = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
            if ":" in reference and digest != reference:
                raise InvalidArgument(f"{what}: content has digest {digest}")
            if sent and sent.startswith(f"{algorithm}:") and sent != digest:
                raise InvalidArgument(
                    f"{what}: content has digest {digest}, the registry said {sent}"
                )
            return ManifestResult(data, media_type, digest, endpoint)

        return self._read(repo, attempt, what)

    def head_manifest(self, repo: str, reference: str) -> ManifestInfo | None:
        """Media type, digest and size of REFERENCE's manifest, or None if there is none."""
        name = self.name(repo)
        what = f"manifest for {name}{_ref_suffix(reference)}"
        scopes = (f"repository:{repo}:pull",)

        def attempt(endpoint: Endpoint) -> ManifestInfo:
            url = f"/v2/{repo}/manifests/{reference}"
            headers = {"Accept": ACCEPT_MANIFESTS}
            with self._call(endpoint, "HEAD", url, scopes, name, headers=headers) as response:
                if response.status != 200:
                    raise self._failure(response, what, name)
                response.read()
                return ManifestInfo(
                    response.header("Content-Type").partition(";")[0].strip(),
                    response.header("Docker-Content-Digest"),
                    _int(response.header("Content-Length"), -1),
                )

        try:
            return self._read(repo, attempt, what)
        except NotFound:
            return None

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        """Upload a manifest under REFERENCE (a tag, or its own digest); returns its digest."""
        name = self.name(repo)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if ":" in reference and reference != digest:
            raise InvalidArgument(
                f"manifest for {name}: content has digest {digest}, not {reference}"
            )
        url = f"/v2/{repo}/manifests/{reference}"
        headers = {"Content-Type": media_type}
        scopes = (f"repository:{repo}:pull,push",)
        with self._call(self.origin, "PUT", url, scopes, name, headers=headers, body=data) as r:
            if r.status not in (200, 201, 202):
                raise self._failure(r, f"manifest for {name}{_ref_suffix(reference)}", name)
            sent = r.header("Docker-Content-Digest")
            r.drain()
        if sent and sent != digest:
            raise RegistryError(f"registry stored manifest for {name} as {sent}, expected {digest}")
        return digest

    # -- blobs --------------------------------------------------------------------

    def get_blob(
        self, repo: str, digest: str, *, offset: int = 0, size: int | None = None
    ) -> BlobReader:
        """A stream of blob DIGEST from byte OFFSET (see BlobReader.offset)."""
        parse_digest(digest, "blob digest")
        name = self.name(repo)
        what = f"blob {digest} of {name}"
        scopes = (f"repository:{repo}:pull",)

        def attempt(endpoint: Endpoint) -> BlobReader:
            url = f"/v2/{repo}/blobs/{digest}"
            start = offset if size is None or offset < size else 0
            for _ in range(2):
                headers = {"Range": f"bytes={start}-"} if start else {}
                response = self._call(
                    endpoint, "GET", url, scopes, name, headers=headers, follow_redirects=True
                )
                if response.status == 416 and start:
                    response.drain()
                    response.close()
                    start = 0  # the registry cannot resume there: start over
                    continue
                if response.status == 206 and start:
                    first, total = _content_range(response.header("Content-Range"))
                    if first != start:
                        response.close()
                        raise RegistryError(
                            f"registry {endpoint.host} resumed blob {digest} at {first}, "
                            f"not at {start}"
                        )
                    return BlobReader(response, digest, start, total or size, name)
                if response.status == 200:
                    length = _int(response.header("Content-Length"), -1)
                    total = length if length >= 0 else size
                    if size is not None and total is not None and total != size:
                        response.close()
                        raise InvalidArgument(
                            f"{what}: the registry sends {total} bytes, the manifest says {size}"
                        )
                    return BlobReader(response, digest, 0, total, name)
                raise self._failure(response, what, name)
            raise RegistryError(f"registry {endpoint.host} cannot send blob {digest}")

        return self._read(repo, attempt, what)

    def fetch_blob(self, repo: str, digest: str, *, limit: int = 64 << 20) -> bytes:
        """A small blob (a config) whole, verified against DIGEST."""
        with self.get_blob(repo, digest) as blob:
            data = bytearray()
            for chunk in blob:
                data += chunk
                if len(data) > limit:
                    raise InvalidArgument(f"blob {digest}: larger than {limit} bytes")
        algorithm = digest.partition(":")[0]
        actual = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
        if actual != digest:
            raise InvalidArgument(
                f"blob {digest} of {self.name(repo)}: content has digest {actual}"
            )
        return bytes(data)

    def head_blob(self, repo: str, digest: str, *, push: bool = True) -> int | None:
        """The size of blob DIGEST in REPO on the registry itself, or None if absent."""
        name = self.name(repo)
        scopes = (f"repository:{repo}:pull,push" if push else f"repository:{repo}:pull",)
        url = f"/v2/{repo}/blobs/{digest}"
        with self._call(self.origin, "HEAD", url, scopes, name, follow_redirects=True) as r:
            if r.status == 404:
                r.read()
                return None
            if r.status != 200:
                raise self._failure(r, f"blob {digest} of {name}", name)
            r.read()
            return _int(r.header("Content-Length"), 0)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool | str:
        """Cross-repository mount; True if mounted, else the upload session it opened."""
        name = self.name(repo)
        scopes = (f"repository:{repo}:pull,push", f"repository:{from_repo}:pull")
        url = add_query(f"/v2/{repo}/blobs/uploads/", mount=digest, **{"from": from_repo})
        with self._call(self.origin, "POST", url, scopes, name) as r:
            if r.status == 201:
                r.drain()
                return True
            if r.status == 202:
                r.drain()
                return self._location(r)
            raise self._failure(r, f"upload of blob {digest} to {name}", name)

    def start_upload(self, repo: str) -> str:
        """Open an upload session; returns its absolute location."""
        name = self.name(repo)
        scopes = (f"repository:{repo}:pull,push",)
        with self._call(self.origin, "POST", f"/v2/{repo}/blobs/uploads/", scopes, name) as r:
            if r.status != 202:
                raise self._failure(r, f"upload to {name}", name)
            r.drain()
            return self._location(r)

    def upload_blob(
        self,
        repo: str,
        digest: str,
        source: bytes | Readable,
        size: int,
        *,
        chunk_size: int | None = None,
        location: str | None = None,
    ) -> None:
        """Upload SIZE bytes of SOURCE as blob DIGEST: one PUT, or PATCHes of CHUNK_SIZE.

        A file SOURCE is read from its current position.  LOCATION is an
        upload session already open (a mount that fell back to uploading).
        """
        name = self.name(repo)
        scopes = (f"repository:{repo}:pull,push",)
        location = location or self.start_upload(repo)
        what = f"upload of blob {digest} to {name}"
        base = source.tell() if not isinstance(source, bytes) else 0
        sent = 0
        if chunk_size is not None and 0 < chunk_size < size:
            while sent < size:
                n = min(chunk_size, size - sent)
                body = _Slice(source, base + sent, n)
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{sent}-{sent + n - 1}",
                    "Content-Length": str(n),
                }
                with self._call(
                    self.origin, "PATCH", location, scopes, name, headers=headers, body=body
                ) as r:
                    if r.status != 202:
                        raise self._failure(r, what, name)
                    r.drain()
                    location = self._location(r)
                sent += n
            final: Body = None
            length = 0
        else:
            final = _Slice(source, base, size)
            length = size
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
        url = add_query(location, digest=digest)
        with self._call(self.origin, "PUT", url, scopes, name, headers=headers, body=final) as r:
            if r.status not in (201, 204):
                raise self._failure(r, what, name)
            r.drain()

    def _location(self, response: Response) -> str:
        location = response.header("Location")
        if not location:
            raise RegistryError(
                f"registry answered {response.method} {response.path} without a Location"
            )
        return join_url(response.url, location)

    # -- login --------------------------------------------------------------------

    def check_login(self) -> None:
        """GET /v2/ with the client's credentials; Unauthorized if the registry refuses them."""
        name = self.origin.host
        try:
            with self._call(self.origin, "GET", "/v2/", (), name) as r:
                if r.status != 200:
                    raise self._failure(r, f"registry {name}", name)
                r.drain()
        except Unauthorized as exc:
            if self.auth.credentials(name) is None or "incorrect" in str(exc):
                raise
            raise Unauthorized(
                f"unauthorized: incorrect username or password for {name}", status=exc.status
            ) from exc

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def login(
    domain: str,
    username: str,
    password: str,
    *,
    insecure_registries: Iterable[str] = (),
    config_dir: str | None = None,
    origin: str | None = None,
) -> str:
    """``docker login``: check the credentials against DOMAIN's registry, then save them.

    Returns the config.json written; Unauthorized (nothing written) if refused.
    """
    host = origin or registry_host(domain)
    creds = {host: Credentials(username, password)}
    with RegistryClient(
        domain,
        insecure_registries=insecure_registries,
        credentials=creds,
        origin=origin,
    ) as client:
        client.check_login()
    return store_credentials(domain, username, password, config_dir)


class _Slice:
    """SIZE bytes of SOURCE from START, as a file http.client can send (and re-send)."""

    def __init__(self, source: bytes | Readable, start: int, size: int) -> None:
        self._source = source
        self._start = start
        self._size = size
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        left = self._size - self._pos
        if n < 0 or n > left:
            n = left
        if n <= 0:
            return b""
        if isinstance(self._source, bytes):
            data = self._source[self._start + self._pos : self._start + self._pos + n]
        else:
            self._source.seek(self._start + self._pos)
            data = self._source.read(n)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = pos
        return pos


def _ref_suffix(reference: str) -> str:
    return f"@{reference}" if ":" in reference else f":{reference}"


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _content_range(value: str) -> tuple[int, int | None]:
    """(first byte, total size or None) of "bytes a-b/total"."""
    spec = value.strip().removeprefix("bytes").strip()
    span, _, total = spec.partition("/")
    first = _int(span.partition("-")[0], -1)
    size = _int(total, -1) if total and total != "*" else -1
    return first, (size if size >= 0 else None)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed early"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
