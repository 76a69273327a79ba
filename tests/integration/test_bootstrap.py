"""Base images made offline: busybox from busybox-static, debian by debootstrap."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan.errors import InvalidArgument
from sampan.image import bootstrap
from sampan.image.store import ImageStore

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(str(tmp_path / "image"))
    yield s
    s.close()


def _run_in(store: ImageStore, image: str, tmp_path: Path, *argv: str) -> str:
    """Run ARGV chrooted into a container snapshot of IMAGE (no runtime: image alone)."""
    target = tmp_path / "mnt"
    target.mkdir(exist_ok=True)
    store.prepare("probe", image)
    store.snapshots.mount("probe", str(target))
    try:
        done = subprocess.run(
            ["chroot", str(target), *argv], capture_output=True, text=True, timeout=60
        )
    finally:
        store.snapshots.unmount(str(target))
        store.release("probe")
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_busybox_image_has_every_applet(store: ImageStore, tmp_path: Path) -> None:
    record = bootstrap.busybox(store, ["busybox:latest", "busybox:stable"])
    assert sorted(record.tags) == [
        "docker.io/library/busybox:latest",
        "docker.io/library/busybox:stable",
    ]
    script = "which sh ls wget nc ping nslookup vi tar; id -un; ls -d /tmp"
    out = _run_in(store, "busybox", tmp_path, "/bin/sh", "-c", script).split()
    found = out[:-2]
    assert [os.path.basename(p) for p in found] == [
        "sh",
        "ls",
        "wget",
        "nc",
        "ping",
        "nslookup",
        "vi",
        "tar",
    ]
    assert found[0] == "/bin/sh" and all(p.startswith("/") for p in found)
    assert out[-2:] == ["root", "/tmp"]
    assert store.resolve("busybox:stable").id == record.id


def test_bad_names_leave_nothing(store: ImageStore) -> None:
    with pytest.raises(InvalidArgument):
        bootstrap.busybox(store, ["Not A Name"])
    with pytest.raises(InvalidArgument, match="suite"):
        bootstrap.debian(store, ["debian:x"], suite="../etc")
    assert store.list() == []
    store.collect()
    assert list(store.content.list()) == [] and store.snapshots.list() == []


@pytest.mark.skipif(shutil.which("debootstrap") is None, reason="needs debootstrap")
def test_debian_image_from_debootstrap(store: ImageStore, tmp_path: Path) -> None:
    record = bootstrap.debian(store, ["debian:bookworm"])
    assert record.tags == ["docker.io/library/debian:bookworm"]
    assert record.size > 50_000_000
    assert store.config_of(record).container_config["Cmd"] == ["bash"]
    out = _run_in(
        store, "debian:bookworm", tmp_path, "/bin/bash", "-c",
        ". /etc/os-release; echo $VERSION_CODENAME; ls /dev | wc -l; dpkg -s apt | head -2",
    )  # fmt: skip
    lines = out.splitlines()
    assert lines[0] == "bookworm"
    assert lines[1] == "0"  # device nodes are the runtime's to make, not the image's
    assert "Package: apt" in lines[2]
