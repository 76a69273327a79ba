"""Content digests (``algorithm:hex``) as the OCI image spec defines them.

sha256 is what every registry and archive uses; sha512 is accepted when
parsing.  Chain ids name a stack of layers: the chain id of the first layer
is its diff id, and each next one is sha256 of ``"<parent chain id> <diff id>"``
-- so two images that share a base share the unpacked snapshots of it.
"""

from __future__ import annotations

from sampan.errors import InvalidArgument

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HEX = frozenset("0123456789abcdef")


def parse_digest(value: object, field: str = "digest") -> str:
    """``value`` checked as ``algorithm:hex``; returns it unchanged."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{field}: expected a digest string, got {type(value).__name__}")
    algorithm, sep, hexpart = value.partition(":")
    length = _HEX_LENGTH.get(algorithm)
    if not sep or length is None:
        raise InvalidArgument(f"{field}: {value!r} is not a sha256 or sha512 digest")
    if len(hexpart) != length or not _HEX.issuperset(hexpart):
        raise InvalidArgument(f"{field}: {value!r} has a malformed {algorithm} hex part")
    return value


def is_digest(value: str) -> bool:
    try:
        parse_digest(value)
    except InvalidArgument:
        return False
    return True


def sha256_of(data: bytes) -> str:
    import hashlib  # ~5-13 ms: only where something is hashed

    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_of(digest: str) -> str:
    """The hex part of a digest: the file name under blobs/<algorithm>/."""
    return digest.partition(":")[2]


def short_id(digest: str) -> str:
    """Docker's 12-character id."""
    return hex_of(digest)[:12]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain id of every prefix of ``diff_ids`` (bottom layer first)."""
    chain: list[str] = []
    for diff_id in diff_ids:
        chain.append(diff_id if not chain else sha256_of(f"{chain[-1]} {diff_id}".encode()))
    return chain
