"""Archives round-tripped with the real tools: docker, podman and skopeo, both ways.

docker is a private dockerd (../shared/peers/dockerd.sh with its own
PEER_DIR: unix socket only, no iptables, no bridge), podman runs with
private storage (../shared/peers/podman.sh), skopeo reads and writes files.
Each test checks that the image arrives unchanged: the same image id
(config digest), the same layers (diff ids), the same manifest digest where
the format keeps one, and a container that runs from it.  The bad archives
are real docker archives, damaged.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sampan.errors import InvalidArgument, Unsupported
from sampan.image import archive
from sampan.image.archive_import import import_rootfs
from sampan.image.store import ImageStore

REPO = Path(__file__).resolve().parents[2]
# The peers' scripts sit beside the checkout (../shared/peers); a clone made
# elsewhere (CI's clean clone) finds them through $SAMPAN_PEERS or the
# machine's one copy under /work/shared.
PEERS = next(
    (
        p
        for p in (
            Path(os.environ.get("SAMPAN_PEERS", REPO.parent / "shared" / "peers")),
            REPO.parent / "shared" / "peers",
            Path("/work/shared/peers"),
        )
        if p.is_dir()
    ),
    REPO.parent / "shared" / "peers",
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not PEERS.is_dir(), reason=f"{PEERS} is missing"),
]


SAMPLE_DOCKERFILE = """FROM busybox:latest
RUN echo hello > /hello && mkdir -p /data && echo x > /data/x
RUN rm /data/x && ln -s /hello /link
ENV GREETING=hi
CMD ["cat", "/hello"]
"""


class Run:
    """A peer's command line: ``run("save", "-o", path)`` returns its stdout (fails loudly)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.env = env

    def __call__(self, *args: str) -> str:
        proc = subprocess.run([*self.argv, *args], capture_output=True, env=self.env,
                              timeout=300, check=False)  # fmt: skip
        if proc.returncode != 0:
            raise AssertionError(f"{self.argv[0]} {' '.join(args)}: {proc.stderr.decode()}")
        return proc.stdout.decode()

    def raw(self, *args: str) -> bytes:
        return subprocess.run([*self.argv, *args], capture_output=True, env=self.env,
                              timeout=300, check=True).stdout  # fmt: skip


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd is not installed")
    peer = tmp_path_factory.mktemp("dockerd")
    env = {**os.environ, "PEER_DIR": str(peer)}
    started = subprocess.run([str(PEERS / "dockerd.sh"), "start"], env=env, capture_output=True,
                             text=True, timeout=300, check=True)  # fmt: skip
    host = started.stdout.strip().rpartition("DOCKER_HOST=")[2]
    run = Run(["docker", "-H", host])
    build = peer / "build"
    build.mkdir()
    (build / "Dockerfile").write_text(SAMPLE_DOCKERFILE)
    subprocess.run(["docker", "-H", host, "build", "-q", "--network", "none", "-t", "sample:1",
                    str(build)], env={**os.environ, "DOCKER_BUILDKIT": "0"}, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    yield run
    subprocess.run([str(PEERS / "dockerd.sh"), "stop"], env=env, timeout=60, check=False)
    pid_file = peer / "dockerd.pid"
    for _ in range(200):
        try:
            os.kill(int(pid_file.read_text()), 0)
        except (OSError, ValueError):
            break
        time.sleep(0.1)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Run:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    env = {**os.environ, "PEER_DIR": str(tmp_path_factory.mktemp("podman"))}
    return Run([str(PEERS / "podman.sh")], env)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(str(tmp_path / "image"))
    yield s
    s.close()


def load_file(store: ImageStore, path: Path) -> list[str]:
    with open(path, "rb") as f:
        return archive.load(store, f)


def save_file(store: ImageStore, names: list[str], path: Path) -> Path:
    with open(path, "wb") as out:
        archive.save(store, names, out)
    return path


def docker_image(docker: Run, name: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(docker("image", "inspect", name))[0]
    return doc


def skopeo(*args: str) -> str:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    return Run(["skopeo"])(*args)


# ---------------------------------------------------------------- docker


def test_docker_save_sampan_load_save_docker_load(
    docker: Run, store: ImageStore, tmp_path: Path
) -> None:
    before = {name: docker_image(docker, name) for name in ("busybox:latest", "sample:1")}
    docker("save", "-o", str(tmp_path / "docker.tar"), "busybox:latest", "sample:1")
    assert sorted(load_file(store, tmp_path / "docker.tar")) == ["busybox:latest", "sample:1"]
    sample = store.resolve("sample:1")
    assert sample.id == before["sample:1"]["Id"]
    assert sample.diff_ids == before["sample:1"]["RootFS"]["Layers"]  # type: ignore[index]
    assert len(sample.chain) == 3

    save_file(store, ["busybox:latest", "sample:1"], tmp_path / "sampan.tar")
    docker("rmi", "sample:1", "busybox:latest")
    out = docker("load", "-i", str(tmp_path / "sampan.tar"))
    assert out.splitlines() == ["Loaded image: busybox:latest", "Loaded image: sample:1"]
    for name, doc in before.items():
        again = docker_image(docker, name)
        assert again["Id"] == doc["Id"]
        assert again["RootFS"] == doc["RootFS"]
        assert again["Config"] == doc["Config"]
    assert docker("run", "--rm", "--network", "none", "sample:1") == "hello\n"
    listing = docker("run", "--rm", "--network", "none", "sample:1", "ls", "-A", "/data")
    assert listing == ""  # the third layer's whiteout of /data/x survived


def test_a_gzip_compressed_docker_save(docker: Run, store: ImageStore, tmp_path: Path) -> None:
    data = docker.raw("save", "sample:1")
    (tmp_path / "sample.tar.gz").write_bytes(gzip.compress(data))
    assert load_file(store, tmp_path / "sample.tar.gz") == ["sample:1"]


def test_docker_import_and_sampan_import_agree(
    docker: Run, store: ImageStore, tmp_path: Path
) -> None:
    rootfs = tmp_path / "rootfs.tar"
    subprocess.run([str(PEERS / "busybox-image.sh"), str(rootfs)], check=True, timeout=120)
    changes = ['CMD ["sh", "-c", "echo $GREETING"]', 'ENV GREETING="hello there" B=$GREETING',
               "EXPOSE 80 53/udp", "LABEL a=b", "WORKDIR /srv", "USER nobody",
               "VOLUME /data"]  # fmt: skip
    args = [arg for change in changes for arg in ("-c", change)]
    docker_id = docker("import", *args, str(rootfs), "imported:docker").strip()
    theirs = docker_image(docker, docker_id)
    with open(rootfs, "rb") as f:
        ours = store.get(import_rootfs(store, f, changes=changes, ref="imported:sampan"))
    config = store.config_of(ours).raw
    for key, value in config["config"].items():
        assert theirs["Config"][key] == value, key  # type: ignore[index]
    assert ours.diff_ids == theirs["RootFS"]["Layers"]  # type: ignore[index]
    assert config["comment"] == theirs["Comment"] == "Imported from -"

    save_file(store, ["imported:sampan"], tmp_path / "imported.tar")
    docker("load", "-i", str(tmp_path / "imported.tar"))
    out = docker("run", "--rm", "--network", "none", "imported:sampan")
    assert out == "hello there\n"


# ---------------------------------------------------------------- podman


def test_podman_docker_archive_round_trip(podman: Run, store: ImageStore, tmp_path: Path) -> None:
    name = "localhost/busybox:latest"
    before = json.loads(podman("image", "inspect", name))[0]
    podman("save", "-q", "-o", str(tmp_path / "podman.tar"), name)
    assert load_file(store, tmp_path / "podman.tar") == [name]
    assert store.resolve(name).id == "sha256:" + before["Id"]

    podman("tag", name, "localhost/second:2")
    podman("save", "-q", "-m", "-o", str(tmp_path / "multi.tar"), name, "localhost/second:2")
    assert load_file(store, tmp_path / "multi.tar") == [name, "localhost/second:2"]

    save_file(store, [name, "localhost/second:2"], tmp_path / "sampan.tar")
    podman("rmi", "-f", name, "localhost/second:2")
    out = podman("load", "-q", "-i", str(tmp_path / "sampan.tar"))
    assert "localhost/second:2" in out
    after = json.loads(podman("image", "inspect", name))[0]
    assert after["Id"] == before["Id"]
    assert after["RootFS"] == before["RootFS"]
    assert podman("run", "--rm", "--network", "none", name, "echo", "ok") == "ok\n"


def test_podman_oci_archive_round_trip(podman: Run, store: ImageStore, tmp_path: Path) -> None:
    name = "localhost/busybox:latest"
    path = tmp_path / "podman-oci.tar"
    podman("save", "-q", "--format", "oci-archive", "-o", str(path), name)
    with tarfile.open(path) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    manifest_digest = index["manifests"][0]["digest"]
    assert load_file(store, path) == [name]
    record = store.resolve(name)
    assert record.manifest == manifest_digest  # OCI manifests are kept byte for byte

    save_file(store, [name], tmp_path / "sampan.tar")
    podman("rmi", "-f", name)
    podman("load", "-q", "-i", str(tmp_path / "sampan.tar"))
    after = json.loads(podman("image", "inspect", name))[0]
    assert "sha256:" + after["Id"] == record.id  # (podman reads manifest.json: its own digest)
    assert podman("run", "--rm", "--network", "none", name, "echo", "ok") == "ok\n"
    podman("rmi", "-f", name)
    podman("load", "-q", "-i", str(path))  # leave podman's busybox as it was


# ---------------------------------------------------------------- skopeo


def test_skopeo_reads_and_writes_what_sampan_does(store: ImageStore, tmp_path: Path) -> None:
    from sampan.image import bootstrap

    record = bootstrap.busybox(store, ["busybox:boot"])  # a Docker schema 2 image
    saved = save_file(store, ["busybox:boot"], tmp_path / "sampan.tar")

    # sampan's archive as an OCI layout (found by its tag) and as a docker-archive
    skopeo("copy", "-q", f"oci-archive:{saved}:boot", f"dir:{tmp_path / 'dir'}")
    manifest = json.loads((tmp_path / "dir" / "manifest.json").read_bytes())
    assert manifest["config"]["digest"] == record.id
    assert [layer["digest"] for layer in manifest["layers"]] == record.blobs
    inspected = json.loads(skopeo("inspect", f"docker-archive:{saved}"))
    assert inspected["Layers"] == record.diff_ids

    # what skopeo writes, sampan loads: the same image
    skopeo("copy", "-q", f"docker-archive:{saved}", f"oci-archive:{tmp_path / 'oci.tar'}:x/y:1")
    skopeo("copy", "-q", f"docker-archive:{saved}",
           f"docker-archive:{tmp_path / 'docker.tar'}:x/z:2")  # fmt: skip
    with ImageStore(str(tmp_path / "other")) as other:
        assert load_file(other, tmp_path / "oci.tar") == ["x/y:1"]
        assert load_file(other, tmp_path / "docker.tar") == ["x/z:2"]
        assert other.resolve("x/y:1").diff_ids == record.diff_ids
        assert other.resolve("x/z:2").id == record.id
        # an OCI manifest goes out byte for byte: skopeo sees the digest sampan holds
        oci = other.resolve("x/y:1")
        again = save_file(other, ["x/y:1"], tmp_path / "again.tar")
        skopeo("copy", "-q", f"oci-archive:{again}:1", f"dir:{tmp_path / 'dir2'}")
        data = (tmp_path / "dir2" / "manifest.json").read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == oci.manifest


# ---------------------------------------------------------------- damaged docker archives


def _rewrite(src: Path, dst: Path, edit: Callable[[str, bytes | None], bytes | str | None]) -> Path:
    """A copy of tarball SRC with each member's data passed through EDIT (None drops it)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for info in tin:
            data = tin.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
            new = edit(info.name, data)
            if new == "drop":
                continue
            if isinstance(new, bytes):
                info.size = len(new)
                tout.addfile(info, io.BytesIO(new))
            else:
                tout.addfile(info)
    return dst


def _flip_layer(name: str, data: bytes | None) -> bytes | str | None:
    if name.endswith("layer.tar") and data:
        return data[:-1] + bytes([data[-1] ^ 1])
    return data


def _manifest_edit(change: Callable[[list[dict[str, object]]], None]) -> Callable[..., object]:
    def edit(name: str, data: bytes | None) -> bytes | str | None:
        if name != "manifest.json" or data is None:
            return data
        doc = json.loads(data)
        change(doc)
        return json.dumps(doc).encode()

    return edit


DAMAGE = {
    "layer bit flipped": (_flip_layer, "content has digest"),
    "manifest.json missing": (lambda n, d: "drop" if n == "manifest.json" else d,
                              "only a 'repositories' file"),
    "manifest.json garbage": (lambda n, d: b"\x00garbage" if n == "manifest.json" else d,
                              "manifest.json: not JSON"),
    "layer member missing": (lambda n, d: "drop" if n.endswith("layer.tar") else d,
                             "is not in the archive"),
    "layer path ../": (_manifest_edit(lambda m: m[0]["Layers"].__setitem__(0, "../../x.tar")),
                       "is outside the archive"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_docker_archives(docker: Run, store: ImageStore, tmp_path: Path, case: str) -> None:
    docker("save", "-o", str(tmp_path / "good.tar"), "sample:1")
    edit, message = DAMAGE[case]
    bad = _rewrite(tmp_path / "good.tar", tmp_path / "bad.tar", edit)  # type: ignore[arg-type]
    with pytest.raises((InvalidArgument, Unsupported), match=message):
        load_file(store, bad)
    assert store.list() == []
    store.collect()
    assert list(store.content.list()) == []


def test_truncated_and_not_a_tar(docker: Run, store: ImageStore, tmp_path: Path) -> None:
    docker("save", "-o", str(tmp_path / "good.tar"), "sample:1")
    data = (tmp_path / "good.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidArgument, match="truncated"):
        load_file(store, tmp_path / "cut.tar")
    (tmp_path / "text").write_bytes(b"just text\n" * 100)
    with pytest.raises(InvalidArgument, match="not a tar"):
        load_file(store, tmp_path / "text")
    assert store.list() == []
