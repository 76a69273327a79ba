"""Image references as docker writes and normalises them.

    reference   := name [":" tag] ["@" digest]
    name        := [domain "/"] path
    domain      := host [":" port]        host: dns-like labels, or [ipv6]
    path        := component ("/" component)*
    component   := [a-z0-9]+ (separator [a-z0-9]+)*   separator: "." "_" "__" "-"+
    tag         := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}

Normalisation follows docker's: a first component is a registry domain only
if it contains "." or ":", is "localhost", or has an upper-case letter
(repository paths are lower-case, so it cannot be one); otherwise the name is
on Docker Hub ("docker.io"), where a one-component path lives under
"library/".  "index.docker.io" is Docker Hub's old name.  A bare 64-hex
string is refused: it is an image id, not a repository.

The parser is hand-written rather than a regular expression: the CLI imports
this module on every image command, and ``re`` (with ``enum``) costs ~10 ms;
for the same reason ``Reference`` is a small frozen class, not a dataclass.
"""

from __future__ import annotations

from sampan.errors import InvalidArgument
from sampan.oci.digest import parse_digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
MAX_PATH = 255
MAX_TAG = 128

_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WORD = _ALNUM | {"_"}
_TAG_CHARS = _WORD | {".", "-"}
_HEX = frozenset("0123456789abcdef")
_IPV6 = frozenset("0123456789abcdefABCDEF:")
_DIGITS = frozenset("0123456789")


class Reference:
    """A parsed, normalised image reference (immutable, hashable).

    ``domain`` is the registry ("docker.io", "127.0.0.1:5000"), ``path`` the
    repository inside it ("library/busybox"); ``tag`` and ``digest`` may each
    be None, or both set ("name:tag@digest": the digest is what is fetched).

    >>> ref = parse_reference("busybox")
    >>> str(ref), ref.name, ref.familiar()
    ('docker.io/library/busybox:latest', 'docker.io/library/busybox', 'busybox')
    """

    __slots__ = ("digest", "domain", "path", "tag")

    domain: str
    path: str
    tag: str | None
    digest: str | None

    def __init__(
        self, domain: str, path: str, tag: str | None = None, digest: str | None = None
    ) -> None:
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "digest", digest)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Reference is immutable: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Reference is immutable: cannot delete {name}")

    def _key(self) -> tuple[str, str, str | None, str | None]:
        return (self.domain, self.path, self.tag, self.digest)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Reference):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Reference(domain={self.domain!r}, path={self.path!r}, "
            f"tag={self.tag!r}, digest={self.digest!r})"
        )

    @property
    def name(self) -> str:
        """The full repository name: "docker.io/library/busybox"."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        return self.name + self._suffix()

    def _suffix(self) -> str:
        out = f":{self.tag}" if self.tag is not None else ""
        return out + (f"@{self.digest}" if self.digest is not None else "")

    def familiar(self) -> str:
        """Docker's short repository name (``docker images``): "busybox", "user/app"."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        rest = self.path.removeprefix(OFFICIAL_PREFIX)
        if rest != self.path and "/" not in rest:
            return rest
        return self.path

    def familiar_string(self) -> str:
        """The short form with tag and digest: "busybox:latest", "x/y@sha256:..."."""
        return self.familiar() + self._suffix()

    @property
    def reference(self) -> str:
        """What the registry API takes after /manifests/: the digest if any, else the tag."""
        if self.digest is not None:
            return self.digest
        return self.tag if self.tag is not None else DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        """The same repository with TAG (and no digest)."""
        _check_tag(tag, tag)
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> Reference:
        """The same repository pinned to DIGEST (and no tag)."""
        return Reference(self.domain, self.path, None, parse_digest(digest, "reference digest"))

    def repository(self) -> Reference:
        """The name alone, without tag or digest."""
        return Reference(self.domain, self.path, None, None)


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """TEXT parsed and normalised; a reference without tag or digest gets ":latest".

    Raises InvalidArgument naming TEXT when it does not follow the grammar.
    """
    if not isinstance(text, str) or not text:
        raise InvalidArgument("invalid reference format: the reference is empty")
    if len(text) == 64 and _HEX.issuperset(text):
        raise InvalidArgument(
            f"invalid repository name ({text}): cannot specify 64-byte hexadecimal strings"
        )
    rest, at, digest = text.partition("@")
    if at:
        digest = parse_digest(digest, f"invalid reference format {text!r}: digest")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag: str | None = None
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        _check_tag(tag, text)
    domain, path = _split_domain(rest)
    _check_domain(domain, text)
    _check_path(path, text)
    if tag is None and not at and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest if at else None)


def parse_repository(text: str) -> Reference:
    """A name without tag or digest ("busybox" -> docker.io/library/busybox)."""
    ref = parse_reference(text, default_tag=False)
    if ref.tag is not None or ref.digest is not None:
        raise InvalidArgument(f"invalid repository name {text!r}: a tag or digest is not allowed")
    return ref


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_PREFIX + name
    if first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def _check_tag(tag: str, text: str) -> None:
    if not tag or len(tag) > MAX_TAG or tag[0] not in _WORD or not _TAG_CHARS.issuperset(tag):
        raise InvalidArgument(
            f"invalid reference format {text!r}: tag {tag!r} must match "
            f"[A-Za-z0-9_][A-Za-z0-9_.-]* and be at most {MAX_TAG} characters"
        )


def _check_domain(domain: str, text: str) -> None:
    bad = InvalidArgument(f"invalid reference format {text!r}: bad registry domain {domain!r}")
    host, port = domain, ""
    if domain.startswith("["):
        end = domain.find("]")
        if end < 2 or not _IPV6.issuperset(domain[1:end]):
            raise bad
        after = domain[end + 1 :]
        if after and not after.startswith(":"):
            raise bad
        host, port = "", after[1:] if after else ""
        if after and not port:
            raise bad
    elif ":" in domain:
        host, _, port = domain.partition(":")
        if not port:
            raise bad
    if port and not _DIGITS.issuperset(port):
        raise bad
    if host:
        for label in host.split("."):
            if not label or not _ALNUM.issuperset(label.replace("-", "")):
                raise bad
            if label[0] == "-" or label[-1] == "-":
                raise bad
    elif not domain.startswith("["):
        raise bad


def _check_path(path: str, text: str) -> None:
    if len(path) > MAX_PATH:
        raise InvalidArgument(
            f"invalid reference format {text!r}: repository name longer than {MAX_PATH} characters"
        )
    for component in path.split("/"):
        if _component_ok(component):
            continue
        if _component_ok(component.lower()):
            raise InvalidArgument(
                f"invalid reference format {text!r}: repository name ({path}) must be lowercase"
            )
        raise InvalidArgument(
            f"invalid reference format {text!r}: repository component {component!r} must be "
            "lower-case letters and digits, separated by '.', '_', '__' or dashes"
        )


def _component_ok(component: str) -> bool:
    """[a-z0-9]+ ((. | _ | __ | -+) [a-z0-9]+)*"""
    if not component or component[0] not in _LOWER_ALNUM or component[-1] not in _LOWER_ALNUM:
        return False
    separator = ""
    for char in component:
        if char in _LOWER_ALNUM:
            if separator and separator not in (".", "_", "__") and set(separator) != {"-"}:
                return False
            separator = ""
        elif char in "._-":
            separator += char
        else:
            return False
    return True
