"""The image store: names and images over the content store and the snapshots.

Layout under ``root`` (``/var/lib/sampan/image`` by default)::

    content/        blobs by digest (content.py)
    snapshots/      unpacked layers by chain id, containers' rw layers (snapshot.py)
    images.db       SQLite: images, tags, repo digests, layer chains, users
    gc.lock         shared by writers, exclusive for garbage collection

An image is identified by its config digest (docker's image id).  The
manifest, config and layer blobs stay in the content store, so what was
pulled is pushed and saved byte for byte.  ``commit_image`` records an
image in one transaction after its layers are unpacked: a crash before it
leaves unreferenced blobs and layers, which the next collection removes,
never a half-visible image.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence

from sampan.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from sampan.image.content import ContentStore
from sampan.image.snapshot import open_snapshotter
from sampan.oci.digest import chain_ids, is_digest, short_id
from sampan.oci.image import (
    ImageConfig,
    Index,
    Manifest,
    parse_config,
    parse_manifest,
)
from sampan.oci.reference import Reference, parse_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from sampan.image.snapshot import Snapshotter

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,            -- config digest: docker's image id
    manifest TEXT NOT NULL,         -- manifest digest
    manifest_type TEXT NOT NULL,
    index_digest TEXT,              -- the index the manifest was chosen from, if any
    size INTEGER NOT NULL,          -- unpacked bytes of all layers
    created TEXT NOT NULL,          -- the config's "created"
    added REAL NOT NULL             -- when this store got it
);
CREATE TABLE IF NOT EXISTS layers (
    image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    chain_id TEXT NOT NULL,
    diff_id TEXT NOT NULL,
    blob TEXT NOT NULL,             -- the layer blob's digest in the content store
    PRIMARY KEY (image, position)
);
CREATE INDEX IF NOT EXISTS layers_chain ON layers(chain_id);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,          -- "docker.io/library/busybox:latest"
    image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS repo_digests (
    name TEXT NOT NULL,             -- "docker.io/library/busybox"
    digest TEXT NOT NULL,           -- the manifest (or index) digest pulled by
    image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    PRIMARY KEY (name, digest)
);
CREATE TABLE IF NOT EXISTS users (
    key TEXT PRIMARY KEY,           -- a container's snapshot key
    image TEXT NOT NULL REFERENCES images(id)
);
CREATE TABLE IF NOT EXISTS parents (   -- a built image's parent (docker's "Parent")
    image TEXT PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    parent TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS parents_parent ON parents(parent);
CREATE TABLE IF NOT EXISTS build_cache (  -- a build step's cache key -> the image it made
    key TEXT PRIMARY KEY,
    image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    used REAL NOT NULL
);
"""


def layer_chain(manifest: Manifest, config: ImageConfig, label: str) -> list[str]:
    """The chain ids of an image's layers, once its manifest and config agree on them."""
    diff_ids = config.diff_ids
    if len(diff_ids) != len(manifest.layers):
        raise InvalidArgument(
            f"{label}: the manifest has {len(manifest.layers)} layers "
            f"but the config lists {len(diff_ids)} diff ids"
        )
    return chain_ids(diff_ids)


class ImageRecord:
    """One image as the store knows it (a row of ``images`` with its names and layers)."""

    __slots__ = (
        "added", "blobs", "chain", "created", "diff_ids", "id", "index_digest", "manifest",
        "manifest_type", "repo_digests", "size", "tags",
    )  # fmt: skip

    def __init__(
        self,
        id: str,
        manifest: str,
        manifest_type: str,
        index_digest: str | None,
        size: int,
        created: str,
        added: float,
    ) -> None:
        self.id = id
        self.manifest = manifest
        self.manifest_type = manifest_type
        self.index_digest = index_digest
        self.size = size
        self.created = created
        self.added = added
        self.tags: list[str] = []
        self.repo_digests: list[str] = []
        self.chain: list[str] = []
        self.diff_ids: list[str] = []
        self.blobs: list[str] = []

    def __repr__(self) -> str:
        return f"ImageRecord({self.id!r}, tags={self.tags!r})"

    @property
    def short_id(self) -> str:
        return short_id(self.id)

    @property
    def top_layer(self) -> str | None:
        return self.chain[-1] if self.chain else None


class Removal:
    """What ``remove``/``prune`` did, in docker's words."""

    def __init__(self) -> None:
        self.untagged: list[str] = []
        self.deleted: list[str] = []
        self.reclaimed = 0


class ImageStore:
    def __init__(self, root: str, driver: str | None = None) -> None:
        self.root = root
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.content = ContentStore(os.path.join(root, "content"))
        self.snapshots: Snapshotter = open_snapshotter(os.path.join(root, "snapshots"), driver)
        self._db_path = os.path.join(root, "images.db")
        self._lock_path = os.path.join(root, "gc.lock")
        # A daemon shares one store between threads: each thread gets its own
        # connection (a transaction belongs to one) and its own gc.lock open
        # file (flock is per open file: two threads must not share one).
        self._local = threading.local()
        self._opened: list[sqlite3.Connection | int] = []
        self._opened_lock = threading.Lock()
        self._db.executescript(_SCHEMA)

    @property
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self._db_path, timeout=30, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
            with self._opened_lock:
                self._opened.append(db)
        return db

    @property
    def _gc_fd(self) -> int:
        fd: int | None = getattr(self._local, "gc_fd", None)
        if fd is None:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._local.gc_fd = fd
            self._local.depth = 0
            with self._opened_lock:
                self._opened.append(fd)
        return fd

    def release_thread(self) -> None:
        """Close the calling thread's connection and lock file (its work here is done)."""
        local = self._local
        if getattr(local, "depth", 0):
            raise RuntimeError("image store: releasing a thread inside a write")
        items: list[sqlite3.Connection | int] = []
        for name in ("db", "gc_fd"):
            item = getattr(local, name, None)
            if item is not None:
                items.append(item)
                setattr(local, name, None)
        with self._opened_lock:
            for item in items:
                self._opened.remove(item)
        for item in items:
            if isinstance(item, int):
                os.close(item)
            else:
                item.close()

    def close(self) -> None:
        with self._opened_lock:
            for item in self._opened:
                if isinstance(item, int):
                    os.close(item)
                else:
                    item.close()
            self._opened.clear()
        self._local = threading.local()
        self.snapshots.close()

    def __enter__(self) -> ImageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- locking ---------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Held (shared) while blobs and layers are added that no image names yet.

        Re-entrant within a thread (a pull holds it and commit_image takes it
        again): only the outermost level locks and unlocks.
        """
        fd = self._gc_fd
        local = self._local
        if local.depth == 0:
            fcntl.flock(fd, fcntl.LOCK_SH)
        local.depth += 1
        try:
            yield
        finally:
            local.depth -= 1
            if local.depth == 0:
                fcntl.flock(fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _collecting(self) -> Iterator[None]:
        """Exclusive: no writer adds anything while collection decides what is unused."""
        fd = self._gc_fd
        local = self._local
        if local.depth:
            raise RuntimeError("image store: collecting inside a write")
        fcntl.flock(fd, fcntl.LOCK_EX)
        local.depth = 1  # a writing() inside (commit_image) must not downgrade the lock
        try:
            yield
        finally:
            local.depth = 0
            fcntl.flock(fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _transaction(self, what: str = "") -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:  # a failed COMMIT (a full disk) leaves it open
                db.execute("ROLLBACK")
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                where = f"{what}: " if what else ""
                path = self._db_path
                raise OSError(errno.ENOSPC, f"{where}{path}: {os.strerror(errno.ENOSPC)}") from None
            if isinstance(exc, sqlite3.IntegrityError):
                # Another process changed what this one decided on (a race with rmi/prune).
                raise Conflict(f"{what or 'image store'}: {exc}; try again") from None
            raise

    # -- blobs as records ------------------------------------------------------

    def manifest_of(self, digest: str, label: str) -> Manifest | Index:
        return parse_manifest(self.content.read(digest), label)

    def config_of(self, record: ImageRecord) -> ImageConfig:
        return parse_config(self.content.read(record.id), f"image {record.short_id}")

    def manifest(self, record: ImageRecord) -> Manifest:
        manifest = parse_manifest(self.content.read(record.manifest), record.short_id)
        assert isinstance(manifest, Manifest)
        return manifest

    # -- adding images ---------------------------------------------------------

    def unpack(
        self,
        manifest: Manifest,
        config: ImageConfig,
        label: str,
        on_layer: Callable[[int, str], None] | None = None,
    ) -> list[str]:
        """Unpack every layer not yet unpacked, bottom first; returns the chain ids."""
        chain = layer_chain(manifest, config, label)
        diff_ids = config.diff_ids
        for i, layer in enumerate(manifest.layers):
            self.unpack_layer(i, layer.digest, chain, diff_ids, label)
            if on_layer is not None:
                on_layer(i, layer.digest)
        return chain

    def unpack_layer(
        self, i: int, blob: str, chain: list[str], diff_ids: list[str], label: str
    ) -> None:
        """Unpack layer ``i`` of a chain (its parent must be unpacked already)."""
        if self.snapshots.has(chain[i]):
            return
        parent = chain[i - 1] if i else None
        with self.content.open(blob) as stream:
            self.snapshots.add(
                chain[i],
                parent,
                stream,
                expected_diff_id=diff_ids[i],
                label=f"{label} layer {short_id(blob)}",
            )

    def commit_image(
        self,
        manifest_digest: str,
        *,
        names: Sequence[Reference] = (),
        repo_digest: Reference | None = None,
        index_digest: str | None = None,
        parent: str | None = None,
    ) -> ImageRecord:
        """Record the image whose manifest is ``manifest_digest`` under ``names``
        (PARENT: the image a build step made it from).

        Every blob must be in the content store; layers are unpacked here if
        they are not yet.  Tags move from whatever image held them (which then
        may be left dangling, as docker does).
        """
        with self.writing():
            image_id = self._commit(manifest_digest, names, repo_digest, index_digest, parent)
        return self.get(image_id)

    def _commit(
        self,
        manifest_digest: str,
        names: Sequence[Reference],
        repo_digest: Reference | None,
        index_digest: str | None,
        parent: str | None = None,
    ) -> str:
        label = f"manifest {short_id(manifest_digest)}"
        manifest = self.manifest_of(manifest_digest, label)
        if not isinstance(manifest, Manifest):
            raise InvalidArgument(f"{label}: is an index, not an image manifest")
        config = parse_config(self.content.read(manifest.config.digest), label)
        for layer in manifest.layers:
            if not self.content.has(layer.digest):
                raise NotFound(f"{label}: layer blob {layer.digest} is missing")
        chain = self.unpack(manifest, config, label)
        size = sum(self.snapshots.size(c) for c in chain)
        image_id = manifest.config.digest
        now = time.time()
        with self._transaction(f"image {short_id(image_id)}") as db:
            row = db.execute("SELECT manifest FROM images WHERE id=?", (image_id,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO images VALUES (?,?,?,?,?,?,?)",
                    (
                        image_id,
                        manifest_digest,
                        manifest.media_type,
                        index_digest,
                        size,
                        config.created,
                        now,
                    ),
                )
                db.executemany(
                    "INSERT INTO layers VALUES (?,?,?,?,?)",
                    [
                        (image_id, i, chain[i], config.diff_ids[i], layer.digest)
                        for i, layer in enumerate(manifest.layers)
                    ],
                )
                if parent is not None and parent != image_id:
                    db.execute("INSERT INTO parents VALUES (?,?)", (image_id, parent))
            elif index_digest is not None:
                db.execute("UPDATE images SET index_digest=? WHERE id=?", (index_digest, image_id))
            for name in names:
                db.execute("INSERT OR REPLACE INTO tags VALUES (?,?,?)", (str(name), image_id, now))
            if repo_digest is not None and repo_digest.digest is not None:
                db.execute(
                    "INSERT OR REPLACE INTO repo_digests VALUES (?,?,?)",
                    (repo_digest.name, repo_digest.digest, image_id),
                )
        return image_id

    # -- lookups ---------------------------------------------------------------

    def _records(self, where: str = "", args: tuple[object, ...] = ()) -> list[ImageRecord]:
        db = self._db
        rows = db.execute(f"SELECT * FROM images {where}", args).fetchall()
        if not rows:
            return []
        records = {row[0]: ImageRecord(*row) for row in rows}
        marks = ",".join("?" * len(records))
        only = f" WHERE image IN ({marks})" if where else ""
        keys = tuple(records) if where else ()
        for image, name in db.execute(f"SELECT image, name FROM tags{only} ORDER BY added", keys):
            records[image].tags.append(name)
        for image, name, digest in db.execute(
            f"SELECT image, name, digest FROM repo_digests{only}", keys
        ):
            records[image].repo_digests.append(f"{name}@{digest}")
        for image, chain_id, diff_id, blob in db.execute(
            f"SELECT image, chain_id, diff_id, blob FROM layers{only} ORDER BY image, position",
            keys,
        ):
            record = records[image]
            record.chain.append(chain_id)
            record.diff_ids.append(diff_id)
            record.blobs.append(blob)
        return list(records.values())

    def get(self, image_id: str) -> ImageRecord:
        found = self._records("WHERE id=?", (image_id,))
        if not found:
            raise NotFound(f"no such image: {image_id}")
        return found[0]

    def resolve(self, name: str) -> ImageRecord:
        """An image by reference (``busybox``, ``repo@sha256:...``), id or id prefix.

        As docker: a full id is an id; otherwise the name is looked up as a
        reference first, and only then as an id prefix (a tag may look hex).
        """
        if not name:
            raise InvalidArgument("image name: empty")
        hexpart = name.removeprefix("sha256:")
        is_hex = all(c in "0123456789abcdef" for c in hexpart)
        if is_digest(name) or (len(hexpart) == 64 and is_hex):
            return self.get(f"sha256:{hexpart}")
        image = None
        with contextlib.suppress(InvalidArgument):
            image = self._by_reference(parse_reference(name))
        if image is None and is_hex and len(hexpart) >= 4 and hexpart == name:
            rows = self._db.execute(
                "SELECT id FROM images WHERE id LIKE ?", (f"sha256:{hexpart}%",)
            ).fetchall()
            if len(rows) > 1:
                raise Conflict(f"image id prefix {name!r} is ambiguous")
            image = rows[0][0] if rows else None
        if image is None:
            raise NotFound(f"no such image: {name}")
        return self.get(image)

    def _by_reference(self, ref: Reference) -> str | None:
        db = self._db
        if ref.digest is None:
            row = db.execute("SELECT image FROM tags WHERE name=?", (str(ref),)).fetchone()
        else:
            row = db.execute(
                "SELECT image FROM repo_digests WHERE name=? AND digest=?", (ref.name, ref.digest)
            ).fetchone()
            if row is None:
                row = db.execute(
                    "SELECT id FROM images WHERE manifest=? AND id IN "
                    "(SELECT image FROM tags WHERE name LIKE ?)",
                    (ref.digest, ref.name + ":%"),
                ).fetchone()
        return None if row is None else str(row[0])

    # -- names -----------------------------------------------------------------

    def tag(self, source: str, target: str) -> Reference:
        record = self.resolve(source)
        ref = parse_reference(target)
        if ref.digest is not None:
            raise InvalidArgument(f"tag {target!r}: refusing to create a tag with a digest")
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO tags VALUES (?,?,?)", (str(ref), record.id, time.time())
            )
        return ref

    # -- containers' use of images ---------------------------------------------

    def prepare(self, key: str, image: str) -> object:
        """A writable snapshot for a container over ``image``; recorded as a user."""
        with self.writing():  # no collection between the lookup and the record
            record = self.resolve(image)
            with self._transaction(f"snapshot {key}") as db:
                if db.execute("SELECT 1 FROM users WHERE key=?", (key,)).fetchone():
                    raise AlreadyExists(f"snapshot {key} already exists")
                db.execute("INSERT INTO users VALUES (?,?)", (key, record.id))
            try:
                return self.snapshots.prepare(key, record.top_layer)
            except BaseException:
                self._db.execute("DELETE FROM users WHERE key=?", (key,))
                raise

    def release(self, key: str, later: list[Callable[[], None]] | None = None) -> None:
        """Remove a container's snapshot and its use of the image (with LATER: the
        deletion of its files is appended there, see Snapshotter.remove_active)."""
        self.snapshots.remove_active(key, later)
        self._db.execute("DELETE FROM users WHERE key=?", (key,))

    def users(self, image_id: str) -> list[str]:
        rows = self._db.execute("SELECT key FROM users WHERE image=?", (image_id,))
        return [row[0] for row in rows]

    # -- removal ---------------------------------------------------------------

    def remove(self, name: str, *, force: bool = False) -> Removal:
        """``docker rmi NAME``: untag, and delete the image once nothing names it.

        Decided and done under the collection lock in one transaction, so a
        tag or a container added meanwhile by another process is seen.
        """
        result = Removal()
        with self._collecting():
            with self._transaction(f"rmi {name}") as db:
                record = self.resolve(name)
                self._remove(db, name, record, force, result)
            if result.deleted:
                result.reclaimed = self._collect()
        return result

    def _remove(
        self, db: sqlite3.Connection, name: str, record: ImageRecord, force: bool, result: Removal
    ) -> None:
        by_ref = ""
        with contextlib.suppress(InvalidArgument):
            ref = parse_reference(name)
            if ref.digest is None and str(ref) in record.tags:
                by_ref = str(ref)
            elif ref.digest is not None and f"{ref.name}@{ref.digest}" in record.repo_digests:
                by_ref = f"{ref.name}@{ref.digest}"
        if by_ref in record.tags and len(record.tags) > 1:
            db.execute("DELETE FROM tags WHERE name=?", (by_ref,))
            result.untagged.append(by_ref)
            return
        if by_ref in record.repo_digests and len(record.tags) + len(record.repo_digests) > 1:
            repo, _, digest = by_ref.partition("@")
            db.execute("DELETE FROM repo_digests WHERE name=? AND digest=?", (repo, digest))
            result.untagged.append(by_ref)
            return
        if not by_ref and len(record.tags) > 1 and not force:
            raise Conflict(
                f"unable to delete {record.short_id} (must be forced) - image is referenced "
                "in multiple repositories"
            )
        users = self.users(record.id)
        if users:
            if not force:
                raise Conflict(
                    f"unable to remove image {name} (must force) - image is being used by "
                    f"container {users[0][:12]}"
                )
            # Forced: the names go, the image stays (dangling) for its containers.
            db.execute("DELETE FROM tags WHERE image=?", (record.id,))
            db.execute("DELETE FROM repo_digests WHERE image=?", (record.id,))
            result.untagged += record.tags + record.repo_digests
            return
        if self.children(record.id):
            raise Conflict(
                f"conflict: unable to delete {record.short_id} (cannot be forced) - image has "
                "dependent child images"
            )
        parent = self.parent_of(record.id)
        db.execute("DELETE FROM images WHERE id=?", (record.id,))
        result.untagged += record.tags + record.repo_digests
        result.deleted.append(record.id)
        self._remove_parents(db, parent, result)

    def _remove_parents(self, db: sqlite3.Connection, parent: str | None, result: Removal) -> None:
        """docker's rmi of a built image: its untagged parents go too, up the chain, while
        nothing else names or uses them."""
        while parent is not None:
            named = db.execute(
                "SELECT 1 FROM tags WHERE image=? UNION ALL SELECT 1 FROM repo_digests WHERE "
                "image=? UNION ALL SELECT 1 FROM users WHERE image=? UNION ALL SELECT 1 FROM "
                "parents WHERE parent=? UNION ALL SELECT 1 WHERE NOT EXISTS "
                "(SELECT 1 FROM images WHERE id=?)",
                (parent, parent, parent, parent, parent),
            ).fetchone()
            if named is not None:
                return
            up = self.parent_of(parent)
            db.execute("DELETE FROM images WHERE id=?", (parent,))
            result.deleted.append(parent)
            parent = up

    def prune(self, *, all_unused: bool = False) -> Removal:
        """Remove dangling images (``-a``: every image no container uses)."""
        result = Removal()
        with self._collecting():
            with self._transaction("image prune") as db:
                for record in self.list():
                    if self.users(record.id) or (record.tags and not all_unused):
                        continue
                    if self.children(record.id):
                        continue  # an intermediate image of a build: its child keeps it
                    parent = self.parent_of(record.id)
                    db.execute("DELETE FROM images WHERE id=?", (record.id,))
                    result.untagged += record.tags + record.repo_digests
                    result.deleted.append(record.id)
                    self._remove_parents(db, parent, result)
            result.reclaimed = self._collect()
        return result

    def collect(self) -> int:
        with self._collecting():
            return self._collect()

    def _collect(self) -> int:
        """Delete layers and blobs no image or container refers to; returns bytes freed."""
        wanted_chain: set[str] = set()
        wanted_blobs: set[str] = set()
        db = self._db
        for image, manifest, index in db.execute("SELECT id, manifest, index_digest FROM images"):
            wanted_blobs.update((image, manifest))
            if index:
                wanted_blobs.add(index)
        for chain_id, blob in db.execute("SELECT chain_id, blob FROM layers"):
            wanted_chain.add(chain_id)
            wanted_blobs.add(blob)
        snapshots = self.snapshots
        parents: dict[str, str | None] = {c: snapshots.parent(c) for c in snapshots.list()}
        for parent in snapshots.active().values():
            while parent and parent not in wanted_chain:  # a container's layers, and theirs
                wanted_chain.add(parent)
                parent = parents.get(parent)

        def depth(chain_id: str) -> int:
            n, parent = 0, parents.get(chain_id)
            while parent:
                n, parent = n + 1, parents.get(parent)
            return n

        freed = 0
        for chain_id in sorted(parents, key=depth, reverse=True):  # a layer before its parent
            if chain_id in wanted_chain:
                continue
            size = snapshots.size(chain_id)
            try:
                snapshots.remove(chain_id)
            except Conflict:
                continue  # something still stands on it: the next collection tries again
            freed += size
        for digest, size in list(self.content.list()):
            if digest not in wanted_blobs:
                self.content.delete(digest)
                freed += size
        freed += self.content.clean_ingests()
        return freed

    # -- parents and the build cache ----------------------------------------------

    def parent_of(self, image_id: str) -> str | None:
        row = self._db.execute("SELECT parent FROM parents WHERE image=?", (image_id,)).fetchone()
        return None if row is None else str(row[0])

    def children(self, image_id: str) -> list[str]:
        rows = self._db.execute("SELECT image FROM parents WHERE parent=?", (image_id,))
        return [row[0] for row in rows]

    def intermediates(self) -> set[str]:
        """Untagged images with a child: a build's steps, hidden from ``images`` (not -a)."""
        rows = self._db.execute(
            "SELECT DISTINCT parent FROM parents WHERE parent NOT IN (SELECT image FROM tags) "
            "AND parent NOT IN (SELECT image FROM repo_digests)"
        )
        return {row[0] for row in rows}

    def cached(self, key: str) -> str | None:
        """The image a build step with cache key KEY made, if it is still here."""
        db = self._db
        row = db.execute("SELECT image FROM build_cache WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        db.execute("UPDATE build_cache SET used=? WHERE key=?", (time.time(), key))
        return str(row[0])

    def remember(self, key: str, image_id: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO build_cache VALUES (?,?,?)", (key, image_id, time.time())
        )

    def prune_build_cache(self, *, all_unused: bool = False) -> Removal:
        """``builder prune``: forget every cache key, and remove the images builds made that
        nothing names or uses (with ALL_UNUSED, also the ones a build left dangling)."""
        result = Removal()
        with self._collecting():
            with self._transaction("builder prune") as db:
                db.execute("DELETE FROM build_cache")
                built = {row[0] for row in db.execute("SELECT image FROM parents")}
                built |= {row[0] for row in db.execute("SELECT parent FROM parents")}
                named = {row[0] for row in db.execute("SELECT image FROM tags")}
                named |= {row[0] for row in db.execute("SELECT image FROM repo_digests")}
                named |= {row[0] for row in db.execute("SELECT image FROM users")}
                doomed = [i for i in sorted(built - named) if all_unused or self.children(i)]
                for image_id in doomed:  # (without ALL_UNUSED a dangling result stays)
                    db.execute("DELETE FROM images WHERE id=?", (image_id,))
                    db.execute("DELETE FROM parents WHERE parent=?", (image_id,))
                    result.deleted.append(image_id)
            result.reclaimed = self._collect()
        return result

    # -- usage -----------------------------------------------------------------

    def disk_usage(self) -> dict[str, int]:
        """Counts and bytes for ``system df``."""
        records = self.list()
        used = {row[0] for row in self._db.execute("SELECT DISTINCT image FROM users")}
        layer_sizes = {c: self.snapshots.size(c) for c in self.snapshots.list()}
        in_use_layers: set[str] = set()
        for record in records:
            if record.id in used:
                in_use_layers.update(record.chain)
        total = sum(layer_sizes.values())
        return {
            "images": len(records),
            "active": len(used),
            "size": total,
            "reclaimable": total - sum(layer_sizes.get(c, 0) for c in in_use_layers),
        }

    # Last in the class: above it, ``list`` in an annotation is still the builtin.
    def list(self) -> list[ImageRecord]:
        return self._records()
