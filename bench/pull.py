#!/usr/bin/env python3
"""Pull benchmark: one image from one loopback registry, sampan vs docker vs skopeo.

    .venv/bin/python bench/pull.py [--runs N] [--image debian|synthetic|REF]
                                   [--debian-root DIR] [--fs ext4|tmpfs|here]
                                   [--no-docker] [--json FILE]

A private registry (Debian's docker-registry) is started on a free port and
given the image to pull:

    debian     (the default) the debian:bookworm image of the sampan store
               under --debian-root (a ``sampan --root``; default /tmp/deb-try),
               pushed blob for blob; if that store has none, one is bootstrapped
               (``sampan image bootstrap debian``, ~2 min) into a cache under
               /var/tmp and reused by later runs.  One gzip layer, ~49 MB
               (~117 MB unpacked): a real distribution's root filesystem.
    synthetic  --layers layers, ~--size MB in all, seeded by skopeo (thousands
               of small files, half compressible text and half random)
    REF        an image already in a registry (no private registry started)

Then, alternating which tool goes first each round:

    cold   sampan: `sampan pull -q` (the installed launcher, a client of a
                   `sampan daemon` on the stores' filesystem) after `sampan
                   rmi -f` + `image prune -a -f`; without the launcher, pull()
                   in a script into a fresh store
           docker: `docker pull -q` after `docker rmi` + `image prune`
           skopeo: `skopeo copy` to a fresh OCI layout (download only, no unpack)
    warm   the same again with everything present (the manifest is checked,
           nothing is downloaded or unpacked)

The stores (sampan's, docker's data-root, skopeo's layout) live on one
filesystem made for the run, --fs:

    ext4   (the default) a fresh journaled ext4 on a loop device, as on any
           real host.  Not the work directory's own filesystem: this VM's /
           is ext4 *without* a journal, where ext4 skips inodes freed in the
           last minute when it allocates one (``recently_deleted``), so each
           cold round, which deletes the last round's ~6,000 files, makes the
           next one's file creation slower -- sampan's cold pull went from 1.4
           to 9.0 s and docker's from 6.0 to 10.8 s within five rounds.
    tmpfs  memory only: what the tools cost in CPU, without a disk
    here   the work directory under /var/tmp, whatever it is

Between runs everything is synced (untimed), so no run pays for the
write-back of the previous one.  Docker is the private engine of
../shared/peers/dockerd.sh (a loopback registry is insecure to it by
default).  Reports medians (and the range) and the ratios sampan/docker and
sampan/skopeo (goal: sampan <= docker).  Needs root.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(os.path.dirname(ROOT), "shared", "peers")
DEBIAN_ROOT = "/tmp/deb-try"
DEBIAN_CACHE = "/var/tmp/sampan-bench-debian"  # a bootstrapped image kept between runs
DEBIAN_TAG = "debian:bookworm"
SAMPAN_PULL = (
    "import sys; sys.path.insert(0, sys.argv[1])\n"
    "from sampan.image.store import ImageStore\n"
    "from sampan.image.registry.pull import pull\n"
    "from sampan.image.registry.progress import Progress\n"
    "store = ImageStore(sys.argv[2])\n"
    "pull(store, sys.argv[3], progress=Progress())\n"
    "store.close()\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(work: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    host = f"127.0.0.1:{port}"
    os.makedirs(f"{work}/registry/data")
    with open(f"{work}/registry/config.yml", "w") as f:
        f.write(
            "version: 0.1\nlog:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {work}/registry/data\n"
            f"http:\n  addr: {host}\n"
        )
    log = open(f"{work}/registry/log", "wb")  # noqa: SIM115 -- the process owns it
    proc = subprocess.Popen(
        ["docker-registry", "serve", f"{work}/registry/config.yml"], stdout=log, stderr=log
    )
    for _ in range(150):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, host
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"docker-registry did not start: see {work}/registry/log")


def synthetic_layer(seed: int, size: int) -> bytes:
    """A layer tar of small files (4-32 kB), half text-like, half random bytes."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 9)).hex() for _ in range(2000)]
    out = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        n = 0
        while total < size:
            k = rng.randint(4096, 32768)
            if n % 2:
                data = rng.randbytes(k)
            else:
                data = " ".join(rng.choice(words) for _ in range(k // 8)).encode()[:k]
            info = tarfile.TarInfo(f"usr/lib/layer{seed}/d{n // 100}/f{n}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
            total += len(data)
            n += 1
    return out.getvalue()


def seed_image(work: str, host: str, layers: int, size_mb: int) -> str:
    blobs = [synthetic_layer(i, size_mb * 1_000_000 // layers) for i in range(layers)]
    diff_ids = ["sha256:" + hashlib.sha256(b).hexdigest() for b in blobs]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = [
        {
            "Config": config_name,
            "RepoTags": ["bench:v1"],
            "Layers": [f"{d[7:]}/layer.tar" for d in diff_ids],
        }
    ]
    archive = f"{work}/bench.tar"
    with tarfile.open(archive, "w") as tar:
        entries = [(config_name, config), ("manifest.json", json.dumps(manifest).encode())]
        entries += [(f"{d[7:]}/layer.tar", b) for d, b in zip(diff_ids, blobs, strict=True)]
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ref = f"{host}/bench/image:v1"
    subprocess.run(
        [
            "skopeo",
            "copy",
            "-q",
            "--dest-tls-verify=false",
            f"docker-archive:{archive}",
            f"docker://{ref}",
        ],
        check=True,
    )
    os.unlink(archive)
    return ref


def _has_debian(root: str) -> bool:
    """Whether the sampan store under ROOT (a --root) holds debian:bookworm."""
    if not os.path.exists(os.path.join(root, "image", "images.db")):
        return False
    from sampan.errors import SampanError
    from sampan.image.store import ImageStore

    with ImageStore(os.path.join(root, "image")) as store:
        try:
            store.resolve(DEBIAN_TAG)
        except SampanError:
            return False
    return True


def debian_root(root: str) -> str:
    """A sampan --root holding debian:bookworm: ROOT, or the cache (bootstrapped if need be)."""
    if _has_debian(root):
        return root
    if not _has_debian(DEBIAN_CACHE):
        print(f"{root} has no {DEBIAN_TAG}: bootstrapping one into {DEBIAN_CACHE} (~2 min)")
        sampan = os.path.join(ROOT, ".venv", "bin", "sampan")
        if not os.path.exists(sampan):
            sampan = shutil.which("sampan") or "sampan"
        subprocess.run(
            [sampan, "--root", DEBIAN_CACHE, "image", "bootstrap", "debian"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return DEBIAN_CACHE


def push_debian(root: str, host: str) -> tuple[str, int, int]:
    """Upload ROOT's debian:bookworm to HOST as bench/debian:bookworm, blob for blob (the
    store is only read); returns the reference, the bytes of its layers and their count."""
    from sampan.image.registry.client import RegistryClient
    from sampan.image.store import ImageStore
    from sampan.oci.image import Manifest, parse_manifest

    repo = "bench/debian"
    with ImageStore(os.path.join(root, "image")) as store:
        record = store.resolve(DEBIAN_TAG)
        data = store.content.read(record.manifest)
        manifest = parse_manifest(data, DEBIAN_TAG, record.manifest_type)
        assert isinstance(manifest, Manifest)
        client = RegistryClient(host)
        try:
            for desc in (*manifest.layers, manifest.config):
                with store.content.open(desc.digest) as f:
                    client.upload_blob(repo, desc.digest, f, desc.size)
            client.put_manifest(repo, "bookworm", data, manifest.media_type)
        finally:
            client.close()
    size = sum(layer.size for layer in manifest.layers)
    return f"{host}/{repo}:bookworm", size, len(manifest.layers)


def make_fs(work: str, kind: str) -> str:
    """The directory the tools' stores go in: a new filesystem of KIND mounted under WORK."""
    target = f"{work}/fs"
    os.makedirs(target)
    if kind == "tmpfs":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g", "tmpfs", target], check=True)
    elif kind == "ext4":
        image = f"{work}/fs.img"
        with open(image, "wb") as f:
            f.truncate(8 << 30)  # sparse: takes what the stores hold
        subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
        subprocess.run(["mount", "-o", "loop", image, target], check=True)
    return target


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    os.sync()  # the last run's write-back is not this run's cost
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode().strip()}")
    return elapsed


class Tools:
    def __init__(self, work: str, ref: str, docker_env: dict[str, str] | None) -> None:
        self.work = work
        self.ref = ref
        self.docker_env = docker_env
        self.daemon: subprocess.Popen[bytes] | None = None
        self.python = os.path.join(ROOT, ".venv", "bin", "python")
        if not os.path.exists(self.python):
            self.python = sys.executable

    def sampan(self, cold: bool) -> float:
        root = f"{self.work}/sampan-root"
        launcher = os.path.join(ROOT, ".venv", "bin", "sampan")
        if os.path.exists(launcher):  # what a user runs, as `docker pull -q`: a daemon's client
            client = [launcher, "-H", self._sampan_daemon(launcher, root)]
            if cold:
                for cmd in (["rmi", "-f", self.ref], ["image", "prune", "-a", "-f"]):
                    subprocess.run([*client, *cmd], capture_output=True)
            return timed([*client, "pull", "-q", self.ref])
        if cold:
            _remove_store(root)
        return timed([self.python, "-IS", "-c", SAMPAN_PULL, ROOT, f"{root}/image", self.ref])

    def _sampan_daemon(self, launcher: str, root: str) -> str:
        """The host of a `sampan daemon` on ROOT (started on first use)."""
        sock = f"{self.work}/sampan.sock"
        if self.daemon is None:
            argv = [launcher, "--root", root, "daemon", "--exec-root", f"{self.work}/sampan-exec",
                    "-H", f"unix://{sock}", "--bridge", "none"]  # fmt: skip
            quiet = subprocess.DEVNULL
            self.daemon = subprocess.Popen(argv, stdout=quiet, stderr=quiet)
            deadline = time.monotonic() + 20
            while subprocess.run([launcher, "-H", f"unix://{sock}", "version"],
                                 capture_output=True).returncode != 0:  # fmt: skip
                if time.monotonic() > deadline:
                    raise SystemExit("sampan daemon did not answer")
                time.sleep(0.05)
        return f"unix://{sock}"

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.terminate()
            self.daemon.wait(30)
            self.daemon = None

    def docker(self, cold: bool) -> float:
        assert self.docker_env is not None
        if cold:
            for cmd in (["rmi", "-f", self.ref], ["image", "prune", "-f"]):
                subprocess.run(["docker", *cmd], env=self.docker_env, capture_output=True)
        return timed(["docker", "pull", "-q", self.ref], env=self.docker_env)

    def skopeo(self, cold: bool) -> float:
        dest = f"{self.work}/skopeo-layout"
        if cold:
            shutil.rmtree(dest, ignore_errors=True)
        return timed(
            [
                "skopeo",
                "copy",
                "-q",
                "--src-tls-verify=false",
                f"docker://{self.ref}",
                f"oci:{dest}:v1",
            ]
        )


def _unmount_under(path: str) -> None:
    """Detach every mount at or below PATH, deepest first (never rm -rf through a mount)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted(
        (p for p in points if p == path or p.startswith(path + "/")), key=len, reverse=True
    ):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _remove_store(root: str) -> None:
    if os.path.exists(root):
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


def _stop_dockerd(docker_dir: str) -> None:
    try:
        with open(f"{docker_dir}/dockerd.pid") as f:
            pid = int(f.read())
    except (OSError, ValueError):
        return
    subprocess.run([f"{PEERS}/dockerd.sh", "stop"], env=dict(os.environ, PEER_DIR=docker_dir))
    for _ in range(300):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--size", type=int, default=60, help="MB of layer content in all")
    parser.add_argument(
        "--image",
        default="debian",
        help="debian (default), synthetic, or an image already in a registry",
    )
    parser.add_argument(
        "--debian-root",
        default=DEBIAN_ROOT,
        help=f"sampan --root holding {DEBIAN_TAG} (default {DEBIAN_ROOT})",
    )
    parser.add_argument(
        "--fs",
        choices=("ext4", "tmpfs", "here"),
        default="ext4",
        help="where the stores live: a fresh journaled ext4 on a loop device (default), "
        "a tmpfs, or the work directory's own filesystem",
    )
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/pull.py needs root (unpacking layers, dockerd)")
    sys.path.insert(0, ROOT)  # the debian image is read and pushed with sampan's own code

    work = tempfile.mkdtemp(prefix="sampan-bench-pull-", dir="/var/tmp")
    registry = None
    docker_dir = ""
    docker_env = None
    tools = None
    try:
        stores = make_fs(work, opts.fs)
        docker_dir = f"{stores}/docker"
        about = ""
        if opts.image not in ("debian", "synthetic"):
            ref = opts.image
        else:
            registry, host = start_registry(work)
            if opts.image == "debian":
                ref, size, layers = push_debian(debian_root(opts.debian_root), host)
                about = f" ({layers} layer{'s' * (layers != 1)}, {size / 1e6:.1f} MB compressed)"
            else:
                ref = seed_image(work, host, opts.layers, opts.size)
        if not opts.no_docker:
            env = dict(os.environ, PEER_DIR=docker_dir)
            out = subprocess.run(
                [f"{PEERS}/dockerd.sh", "start"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            sock = out.strip().split("DOCKER_HOST=", 1)[1]
            docker_env = dict(os.environ, DOCKER_HOST=sock)
        tools = Tools(stores, ref, docker_env)
        names = ["sampan", "skopeo"] + ([] if opts.no_docker else ["docker"])
        times: dict[str, list[float]] = {f"{n} {k}": [] for n in names for k in ("cold", "warm")}
        for name in names:  # warm-up: caches, .pyc files, the registry's own caches
            getattr(tools, name)(True)
        for i in range(opts.runs):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                times[f"{name} cold"].append(getattr(tools, name)(True))
                times[f"{name} warm"].append(getattr(tools, name)(False))
        medians = {k: statistics.median(v) for k, v in times.items()}
        print(f"image {ref}{about}, {opts.runs} rounds, alternating, stores on {opts.fs}")
        for key, value in medians.items():
            low, high = min(times[key]) * 1000, max(times[key]) * 1000
            print(f"  {key:<12} median {value * 1000:8.1f} ms   ({low:.1f} .. {high:.1f})")
        ratios = {}
        for peer in ("docker", "skopeo"):
            for kind in ("cold", "warm"):
                if f"{peer} {kind}" in medians:
                    ratio = medians[f"sampan {kind}"] / medians[f"{peer} {kind}"]
                    ratios[f"sampan/{peer} {kind}"] = ratio
                    print(f"  sampan/{peer} {kind}: {ratio:.2f}")
        if opts.json:
            with open(opts.json, "w") as f:
                json.dump(
                    {
                        "image": ref,
                        "fs": opts.fs,
                        "runs": opts.runs,
                        "medians_s": medians,
                        "ratios": ratios,
                        "samples_s": times,
                    },
                    f,
                    indent=2,
                )
        return 0
    finally:
        if tools is not None:
            tools.stop()
        if docker_env is not None:
            subprocess.run(["docker", "rmi", "-f", ref], env=docker_env, capture_output=True)
            _stop_dockerd(docker_dir)
        if registry is not None:
            registry.terminate()
            registry.wait()
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
