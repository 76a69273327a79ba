"""A build's images in the store: parents, intermediate images, rmi/prune, the build cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan.engine.image_steps import child_image
from sampan.errors import Conflict
from sampan.image import bootstrap
from sampan.image.store import ImageRecord, ImageStore
from sampan.oci.reference import parse_reference

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(str(tmp_path / "image"), driver="overlay")
    yield s
    s.close()


def _chain(store: ImageStore, base: ImageRecord, n: int, tag: str = "") -> list[ImageRecord]:
    """N metadata steps over BASE, the last one tagged TAG."""
    out = []
    parent = base
    for i in range(n):
        config = dict(store.config_of(parent).raw["config"], Env=[f"STEP={i}"])
        names = [parse_reference(tag)] if tag and i == n - 1 else []
        parent = child_image(store, parent, config, {"created_by": f"step {i}"}, None, names=names)
        out.append(parent)
    return out


def test_steps_record_their_parents_and_history(store: ImageStore) -> None:
    base = bootstrap.busybox(store, ["busybox:latest"])
    steps = _chain(store, base, 3, "app:1")
    assert store.parent_of(steps[0].id) == base.id
    assert store.parent_of(steps[2].id) == steps[1].id
    assert store.children(steps[0].id) == [steps[1].id]
    history = store.config_of(steps[2]).history
    assert [h.get("created_by") for h in history[-3:]] == ["step 0", "step 1", "step 2"]
    assert all(h.get("empty_layer") for h in history[-3:])
    assert steps[2].chain == base.chain  # metadata steps share the base's layer
    # The untagged steps with a child are intermediate: hidden from `images`.
    assert store.intermediates() == {steps[0].id, steps[1].id}


def test_rmi_takes_untagged_parents_and_refuses_a_parent(store: ImageStore) -> None:
    base = bootstrap.busybox(store, ["busybox:latest"])
    steps = _chain(store, base, 3, "app:1")
    with pytest.raises(Conflict, match="dependent child images"):
        store.remove(steps[1].id)
    removal = store.remove("app:1")
    assert removal.deleted == [steps[2].id, steps[1].id, steps[0].id]
    assert [r.id for r in store.list()] == [base.id]  # the tagged base stays


def test_prune_keeps_intermediates_of_a_tagged_image(store: ImageStore) -> None:
    base = bootstrap.busybox(store, ["busybox:latest"])
    tagged = _chain(store, base, 2, "app:1")
    dangling = _chain(store, base, 2)  # a build without -t: its result and its step
    removal = store.prune()
    assert sorted(removal.deleted) == sorted(r.id for r in dangling)
    assert {r.id for r in store.list()} == {base.id, *(r.id for r in tagged)}


def test_build_cache_and_builder_prune(store: ImageStore) -> None:
    base = bootstrap.busybox(store, ["busybox:latest"])
    steps = _chain(store, base, 3, "app:1")
    for i, step in enumerate(steps):
        store.remember(f"key{i}", step.id)
    assert store.cached("key1") == steps[1].id
    assert store.cached("nothing") is None
    removal = store.prune_build_cache()
    assert sorted(removal.deleted) == sorted(r.id for r in steps[:2])
    assert store.cached("key2") is None  # every key forgotten
    assert store.parent_of(steps[2].id) is None  # its parent is gone
    assert {r.id for r in store.list()} == {base.id, steps[2].id}
    # A removed image's keys go with it.
    store.remember("again", steps[2].id)
    store.remove("app:1")
    assert store.cached("again") is None
