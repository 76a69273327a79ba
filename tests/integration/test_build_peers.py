"""The example Dockerfiles (examples/build) built by docker and by sampan: the same images.

docker is a private dockerd (../shared/peers/dockerd.sh) building with its classic
builder; sampan's daemon builds the same contexts, driven by the same docker CLI.
Both start from the same base images (docker's busybox saved and loaded into
sampan; a debian rootfs with gcc made by debootstrap, imported by docker, saved
and loaded into sampan).  Then each image's config (Env, Cmd, Entrypoint,
WorkingDir, User, ExposedPorts, Volumes, Labels, Healthcheck, StopSignal,
Shell, OnBuild) and filesystem (every path's type, mode, owner, size, link
target and content; mtimes aside) must agree, each difference named.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_fixtures import SampanDaemon
from tests.integration.test_archive_peers import PEERS

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "build"
CONFIG_FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
                 "Labels", "Healthcheck", "StopSignal", "Shell", "OnBuild")  # fmt: skip
# What an engine puts in a container's root for its own use, never part of an image (docker's
# init layer adds /etc/mtab -> /proc/mounts to every container it exports).
IGNORED = {".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab", "dev",
           "proc", "sys"}  # fmt: skip

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not PEERS.is_dir(), reason=f"{PEERS} is missing"),
    pytest.mark.skipif(shutil.which("dockerd") is None, reason="dockerd is not installed"),
]


class Engine:
    """The docker CLI against one engine."""

    def __init__(self, name: str, host: str) -> None:
        self.name = name
        self.env = {**os.environ, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "0"}

    def __call__(self, *args: str, input: bytes | None = None) -> bytes:
        done = subprocess.run(["docker", *args], capture_output=True, env=self.env,
                              input=input, timeout=600)  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"{self.name}: docker {' '.join(args)}: exit {done.returncode}"
                                 f"\n{done.stdout.decode()}\n{done.stderr.decode()}")  # fmt: skip
        return done.stdout

    def build(self, example: str, tag: str, *args: str) -> None:
        self("build", "--network", "none", "-t", tag, *args, str(EXAMPLES / example))

    def config(self, tag: str) -> dict[str, Any]:
        import json

        return json.loads(self("image", "inspect", tag))[0]["Config"]  # type: ignore[no-any-return]

    def files(self, tag: str, tmp: Path) -> dict[str, tuple[object, ...]]:
        cid = self("create", tag, "/").decode().strip()
        out = tmp / f"{self.name}-{tag.replace(':', '-').replace('/', '-')}.tar"
        try:
            self("export", "-o", str(out), cid)
        finally:
            self("rm", "-f", cid)
        return tree_of(out)


def tree_of(path: Path) -> dict[str, tuple[object, ...]]:
    """path -> (type, mode, uid, gid, size, link target, sha256) of an exported rootfs."""
    found: dict[str, tuple[object, ...]] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            name = member.name.removeprefix("./").rstrip("/")
            top = name.split("/", 1)[0]
            if not name or name in IGNORED or top in ("dev", "proc", "sys"):
                continue
            digest = ""
            if member.isfile():
                f = tar.extractfile(member)
                assert f is not None
                digest = hashlib.sha256(f.read()).hexdigest()
            size = member.size if member.isfile() else 0
            found[name] = (member.type, member.mode & 0o7777, member.uid, member.gid, size,
                           member.linkname, digest)  # fmt: skip
    return found


def differences(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(ours) | set(theirs)):
        if key not in ours:
            out.append(f"{key}: only docker's ({theirs[key]})")
        elif key not in theirs:
            out.append(f"{key}: only sampan's ({ours[key]})")
        elif ours[key] != theirs[key]:
            out.append(f"{key}: sampan {ours[key]} != docker {theirs[key]}")
    return out


def test_differences_names_each_field() -> None:
    found = differences({"a": 1, "b": 2}, {"b": 3, "c": 4})
    assert found == ["a: only sampan's (1)", "b: sampan 2 != docker 3", "c: only docker's (4)"]


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Engine, Path]]:
    base = tmp_path_factory.mktemp("build-peers")
    env = {**os.environ, "PEER_DIR": str(base / "dockerd")}
    started = subprocess.run([str(PEERS / "dockerd.sh"), "start"], env=env, capture_output=True,
                             text=True, timeout=300, check=True)  # fmt: skip
    docker = Engine("docker", started.stdout.strip().rpartition("DOCKER_HOST=")[2])
    daemon = SampanDaemon(base / "sampan").start()
    sampan = Engine("sampan", daemon.host)
    try:
        # The same bases on both: docker's busybox, and debian with gcc (debootstrap).
        sampan("load", input=docker("save", "busybox:latest"))
        rootfs = base / "debian"
        mirror = subprocess.run(
            [str(REPO / ".venv" / "bin" / "python"), "-c",
             "from sampan.image.bootstrap import host_mirror; print(host_mirror())"],
            capture_output=True, text=True, check=True, cwd=REPO,
        ).stdout.strip()  # fmt: skip
        subprocess.run(["debootstrap", "--variant=minbase", "--include=gcc,libc6-dev",
                        "bookworm", str(rootfs), mirror], capture_output=True, check=True,
                       timeout=900)  # fmt: skip
        for sub in ("dev", "proc", "sys", "var/cache/apt/archives", "var/lib/apt/lists",
                    "var/log"):  # fmt: skip
            shutil.rmtree(rootfs / sub, ignore_errors=True)
            (rootfs / sub).mkdir(mode=0o755)
        tar = base / "debian.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tar), "."],
                       check=True)  # fmt: skip
        shutil.rmtree(rootfs)
        docker("import", "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
               "/usr/bin:/sbin:/bin", str(tar), "debian-gcc:bookworm")  # fmt: skip
        tar.unlink()
        sampan("load", input=docker("save", "debian-gcc:bookworm"))
        yield sampan, docker, base
    finally:
        daemon.stop()
        subprocess.run([str(PEERS / "dockerd.sh"), "stop"], env=env, timeout=60, check=False)
        for _ in range(100):
            if not (base / "dockerd" / "dockerd.pid").exists():
                break
            time.sleep(0.1)


@pytest.mark.parametrize(
    ("example", "tag", "args"),
    [
        ("app", "example-app", ()),
        ("args-and-shell", "example-args", ("--build-arg", "FLAVOUR=spicy")),
        ("onbuild-base", "example-onbuild-base", ()),
        ("onbuild-child", "example-onbuild-child", ()),
        ("multistage-c", "example-wc", ()),
    ],
)
def test_examples_build_the_same_image(
    engines: tuple[Engine, Engine, Path], example: str, tag: str, args: tuple[str, ...]
) -> None:
    sampan, docker, tmp = engines
    for engine in (docker, sampan):
        engine.build(example, tag, *args)
    ours, theirs = sampan.config(tag), docker.config(tag)
    config_diff = differences({k: ours.get(k) or None for k in CONFIG_FIELDS},
                              {k: theirs.get(k) or None for k in CONFIG_FIELDS})  # fmt: skip
    assert config_diff == [], "config differs:\n" + "\n".join(config_diff)
    files_diff = differences(sampan.files(tag, tmp), docker.files(tag, tmp))
    assert files_diff == [], "files differ:\n" + "\n".join(files_diff[:40])


def test_the_c_program_runs_from_the_slim_stage(engines: tuple[Engine, Engine, Path]) -> None:
    sampan, docker, _ = engines
    for engine in (docker, sampan):
        engine.build("multistage-c", "example-wc")
        out = engine("run", "--rm", "-i", "--network", "none", "example-wc",
                     input=b"a b c\nd e\n")  # fmt: skip
        assert out == b"5 words, 2 lines\n", engine.name
