#!/usr/bin/env python3
"""``sampan images`` with 200 images: how long a listing takes.

    .venv/bin/python bench/images_list.py [--images 200] [--runs 20]

Makes a private store with busybox bootstrapped and N-1 more images on its
layer (each with its own config, so N distinct image ids and tags), starts
``sampan daemon`` on it (a private socket), then times ``sampan images``
(the installed fast launcher, a client of the daemon) and ``sampan images
-q``.  Reports medians.  Needs root (the daemon).  Alongside, when ../shared/peers/dockerd.sh has a
docker running, ``docker images`` over its own store is timed too for scale.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def populate(root: str, count: int) -> None:
    from sampan import _json
    from sampan.image import bootstrap
    from sampan.image.store import ImageStore
    from sampan.oci import image as oi
    from sampan.oci.reference import parse_reference

    with ImageStore(os.path.join(root, "image")) as store:
        base = bootstrap.busybox(store, ["busybox:latest"])
        manifest = store.manifest(base)
        raw = store.config_of(base).raw
        for i in range(count - 1):
            config = dict(raw, config=dict(raw["config"], Cmd=["echo", str(i)]))
            data = _json.dumps(config).encode()
            derived = oi.Manifest(
                manifest.media_type,
                oi.Descriptor(manifest.config.media_type, store.content.put(data), len(data)),
                manifest.layers,
            )
            digest = store.content.put(derived.to_bytes())
            store.commit_image(digest, names=[parse_reference(f"bench/app{i}:v{i}")])


def start_daemon(sampan: str, root: str) -> subprocess.Popen[bytes]:
    """``sampan daemon`` on ROOT, answering on ROOT/sampan.sock."""
    sock = f"{root}/sampan.sock"
    argv = [sampan, "--root", root, "daemon", "--exec-root", f"{root}/exec", "-H", f"unix://{sock}"]
    argv += ["--bridge", "none"]  # no bridge, no nftables table left in the host namespace
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ping = subprocess.run([sampan, "-H", f"unix://{sock}", "version"], capture_output=True)
        if ping.returncode == 0:
            return proc
        time.sleep(0.05)
    proc.terminate()
    raise SystemExit("sampan daemon did not answer")


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--runs", type=int, default=20)
    opts = parser.parse_args()
    sampan = os.path.join(ROOT, ".venv", "bin", "sampan")
    tmp = tempfile.mkdtemp(prefix="sampan-bench-images-")
    daemon: subprocess.Popen[bytes] | None = None
    try:
        populate(tmp, opts.images)
        daemon = start_daemon(sampan, tmp)
        host = f"unix://{tmp}/sampan.sock"
        cases = {"images": [sampan, "-H", host, "images"]}
        cases["images -q"] = [sampan, "-H", host, "images", "-q"]
        lines = subprocess.run(cases["images"], capture_output=True, text=True, check=True)
        assert len(lines.stdout.splitlines()) == opts.images + 1, lines.stdout[:500]
        results: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(opts.runs):
            for name, argv in cases.items():
                results[name].append(timed(argv))
        for name, times in results.items():
            median = statistics.median(times) * 1000
            print(f"sampan {name} with {opts.images} images: median {median:.1f} ms")
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
