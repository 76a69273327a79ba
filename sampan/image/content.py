"""The content store: blobs addressed by their digest.

Layout under ``root``::

    blobs/sha256/<hex>          complete, verified blobs (read-only files)
    ingest/<hex>/data           a blob being written; kept for resume
    ingest/<hex>/lock           flock'd by the one writer of that blob

A blob becomes visible only by ``rename`` of a file whose size and digest
were checked, so a reader never sees a partial blob, and a writer killed
with -9 leaves at most ``ingest/<hex>/data`` -- which the next ingest of the
same digest resumes from (a registry's Range request) or restarts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from sampan.errors import InvalidArgument, NotFound
from sampan.oci.digest import hex_of, parse_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

# hashlib (~13 ms) and shutil (~7 ms) are imported where blobs are written:
# listing images reads the store and never needs them.

_CHUNK = 1 << 20


def _new_hash(digest: str) -> Any:
    import hashlib

    return hashlib.new(digest.partition(":")[0])


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Ingest:
    """A resumable writer of one blob; use as a context manager.

    ``offset`` is how much is already on disk (ask the registry for the rest
    with a Range header, or call ``reset`` to start over).  ``commit``
    checks size and digest and publishes the blob; a mismatch discards the
    partial data and raises.  Leaving the ``with`` block without ``commit``
    keeps the partial data for the next attempt.
    """

    def __init__(self, store: ContentStore, digest: str, size: int | None) -> None:
        self.store = store
        self.digest = digest
        self.size = size
        self.dir = os.path.join(store.root, "ingest", hex_of(digest))
        self.done = False
        self.offset = 0
        self._lock_fd = -1
        self._file: BinaryIO | None = None
        self._hash = _new_hash(digest)

    def __enter__(self) -> Ingest:
        os.makedirs(self.dir, exist_ok=True)
        self._lock_fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # a second writer of the same blob waits
        if self.store.has(self.digest):
            self.done = True
            return self
        data = os.path.join(self.dir, "data")
        self._file = open(data, "ab+")
        self._file.seek(0)
        while chunk := self._file.read(_CHUNK):
            self._hash.update(chunk)
        self.offset = self._file.tell()
        if self.size is not None and self.offset > self.size:
            self.reset()
        return self

    def reset(self) -> None:
        """Drop what is on disk and start from byte 0."""
        assert self._file is not None
        self._file.seek(0)
        self._file.truncate()
        self._hash = _new_hash(self.digest)
        self.offset = 0

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "write after the blob was found complete"
        try:
            self._file.write(chunk)
        except OSError as exc:  # a full disk: say which blob (the partial data stays for resume)
            raise OSError(exc.errno, f"blob {self.digest}: {exc.strerror or exc}") from None
        self._hash.update(chunk)
        self.offset += len(chunk)
        if self.size is not None and self.offset > self.size:
            self._discard()
            raise InvalidArgument(f"blob {self.digest}: more than the expected {self.size} bytes")

    def commit(self) -> str:
        if self.done:
            return self.digest
        assert self._file is not None
        if self.size is not None and self.offset != self.size:
            raise InvalidArgument(
                f"blob {self.digest}: size {self.offset} does not match the expected {self.size}"
            )
        actual = f"{self._hash.name}:{self._hash.hexdigest()}"
        if actual != self.digest:
            self._discard()
            raise InvalidArgument(f"blob {self.digest}: content has digest {actual}")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        target = self.store._blob_path(self.digest)
        os.chmod(os.path.join(self.dir, "data"), 0o444)
        os.rename(os.path.join(self.dir, "data"), target)
        _fsync_dir(os.path.dirname(target))
        self.done = True
        return self.digest

    def _discard(self) -> None:
        assert self._file is not None
        self._file.seek(0)
        self._file.truncate()
        self.offset = 0
        self._hash = _new_hash(self.digest)

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.done:
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


class ContentStore:
    def __init__(self, root: str) -> None:
        self.root = root
        for algorithm in ("sha256", "sha512"):
            os.makedirs(os.path.join(root, "blobs", algorithm), exist_ok=True)
        os.makedirs(os.path.join(root, "ingest"), exist_ok=True)

    def _blob_path(self, digest: str) -> str:
        algorithm, _, hexpart = parse_digest(digest).partition(":")
        return os.path.join(self.root, "blobs", algorithm, hexpart)

    def has(self, digest: str) -> bool:
        return os.path.exists(self._blob_path(digest))

    def path(self, digest: str) -> str:
        path = self._blob_path(digest)
        if not os.path.exists(path):
            raise NotFound(f"blob {digest} is not in the content store")
        return path

    def size(self, digest: str) -> int:
        return os.stat(self.path(digest)).st_size

    def read(self, digest: str) -> bytes:
        with open(self.path(digest), "rb") as f:
            return f.read()

    def open(self, digest: str) -> BinaryIO:
        return open(self.path(digest), "rb")

    def ingest(self, digest: str, size: int | None = None) -> Ingest:
        parse_digest(digest)
        return Ingest(self, digest, size)

    def put(self, data: bytes, expected: str | None = None) -> str:
        """Store ``data``; with ``expected``, refuse it unless it has that digest."""
        import hashlib

        digest = expected or "sha256:" + hashlib.sha256(data).hexdigest()
        if self.has(digest):
            if expected is not None and self.digest_of_bytes(data, digest) != digest:
                raise InvalidArgument(f"blob {expected}: content does not match the digest")
            return digest
        with self.ingest(digest, len(data)) as ingest:
            if not ingest.done:
                ingest.reset()
                ingest.write(data)
                ingest.commit()
        return digest

    def put_stream(self, stream: BinaryIO, expected: str | None = None) -> tuple[str, int]:
        """Store a stream of unknown digest (``expected`` checks it); returns (digest, size).

        Unknown content is spooled into ingest/ under a temporary name and
        renamed once its digest is known.
        """
        import hashlib

        spool_dir = os.path.join(self.root, "ingest")
        fd, spool = _mkstemp(spool_dir)
        h = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = "sha256:" + h.hexdigest()
            if expected is not None and expected != digest:
                raise InvalidArgument(f"blob {expected}: content has digest {digest}")
            if not self.has(digest):
                os.chmod(spool, 0o444)
                os.rename(spool, self._blob_path(digest))
                _fsync_dir(os.path.dirname(self._blob_path(digest)))
            return digest, size
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spool)

    @staticmethod
    def digest_of_bytes(data: bytes, like: str) -> str:
        h = _new_hash(like)
        h.update(data)
        return f"{h.name}:{h.hexdigest()}"

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._blob_path(digest))

    def list(self) -> Iterator[tuple[str, int]]:
        """Every complete blob with its size."""
        for algorithm in ("sha256", "sha512"):
            base = os.path.join(self.root, "blobs", algorithm)
            with os.scandir(base) as entries:
                for entry in entries:
                    yield f"{algorithm}:{entry.name}", entry.stat().st_size

    def clean_ingests(self) -> int:
        """Remove unlocked partial ingests; returns the bytes freed (for prune)."""
        freed = 0
        base = os.path.join(self.root, "ingest")
        for name in os.listdir(base):
            path = os.path.join(base, name)
            if not os.path.isdir(path):
                # A spool is only ever written by a live put_stream: leave recent ones.
                if name.startswith(".spool-") and _age(path) > _STALE_SPOOL:
                    freed += _unlink_size(path)
                continue
            try:
                fd = os.open(os.path.join(path, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # a live pull owns it
            try:
                import shutil

                freed += _unlink_size(os.path.join(path, "data"))
                shutil.rmtree(path, ignore_errors=True)
            finally:
                os.close(fd)
        return freed


_STALE_SPOOL = 3600.0


def _age(path: str) -> float:
    import time

    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return 0.0


def _unlink_size(path: str) -> int:
    try:
        size = os.stat(path).st_size
        os.unlink(path)
    except FileNotFoundError:
        return 0
    return size


def _mkstemp(directory: str) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix=".spool-", dir=directory)
