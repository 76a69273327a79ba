"""The content store: verified, atomic, resumable blobs."""

from __future__ import annotations

import io
import os

import pytest

from sampan.errors import InvalidArgument, NotFound
from sampan.image.content import ContentStore
from sampan.oci.digest import sha256_of


def test_put_and_read(tmp_path: os.PathLike[str]) -> None:
    store = ContentStore(str(tmp_path))
    digest = store.put(b"hello")
    assert digest == sha256_of(b"hello")
    assert store.has(digest) and store.read(digest) == b"hello" and store.size(digest) == 5
    assert list(store.list()) == [(digest, 5)]


def test_put_with_a_wrong_digest_stores_nothing(tmp_path: os.PathLike[str]) -> None:
    store = ContentStore(str(tmp_path))
    with pytest.raises(InvalidArgument, match="content has digest"):
        store.put(b"hello", expected=sha256_of(b"other"))
    assert list(store.list()) == []
    with pytest.raises(NotFound):
        store.path(sha256_of(b"other"))


def test_ingest_resumes_partial_data(tmp_path: os.PathLike[str]) -> None:
    store = ContentStore(str(tmp_path))
    data = os.urandom(3 << 20)
    digest = sha256_of(data)
    with store.ingest(digest, len(data)) as ingest:
        ingest.write(data[:1000])  # then the connection "drops": no commit
    assert not store.has(digest)
    with store.ingest(digest, len(data)) as ingest:
        assert ingest.offset == 1000
        ingest.write(data[ingest.offset :])
        ingest.commit()
    assert store.read(digest) == data
    assert os.listdir(os.path.join(str(tmp_path), "ingest")) == []


def test_ingest_rejects_size_and_digest_mismatches(tmp_path: os.PathLike[str]) -> None:
    store = ContentStore(str(tmp_path))
    digest = sha256_of(b"right")
    with store.ingest(digest, 5) as ingest:
        ingest.write(b"wrong")
        with pytest.raises(InvalidArgument, match="content has digest"):
            ingest.commit()
    with store.ingest(digest, 5) as ingest:
        assert ingest.offset == 0  # the bad data was discarded, not kept for resume
        with pytest.raises(InvalidArgument, match="more than the expected 5 bytes"):
            ingest.write(b"toolong")
    with store.ingest(digest, 5) as ingest:
        ingest.write(b"rig")
        with pytest.raises(InvalidArgument, match="size 3 does not match"):
            ingest.commit()
    assert not store.has(digest)


def test_ingest_of_a_present_blob_is_done(tmp_path: os.PathLike[str]) -> None:
    store = ContentStore(str(tmp_path))
    digest = store.put(b"x")
    with store.ingest(digest, 1) as ingest:
        assert ingest.done
        assert ingest.commit() == digest


def test_put_stream_and_clean_ingests(tmp_path: os.PathLike[str]) -> None:
    store = ContentStore(str(tmp_path))
    digest, size = store.put_stream(io.BytesIO(b"abc" * 1000))
    assert size == 3000 and store.read(digest) == b"abc" * 1000
    with pytest.raises(InvalidArgument):
        store.put_stream(io.BytesIO(b"abc"), expected=sha256_of(b"x"))
    partial = sha256_of(b"partial")
    with store.ingest(partial, 7) as ingest:
        ingest.write(b"par")
    assert store.clean_ingests() == 3
    assert os.listdir(os.path.join(str(tmp_path), "ingest")) == []
    store.delete(digest)
    assert not store.has(digest)
