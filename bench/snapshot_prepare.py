#!/usr/bin/env python3
"""Snapshot preparation benchmark: a new container's rootfs over a 10-layer image.

    .venv/bin/python bench/snapshot_prepare.py [--runs N] [--layers N] [--dir DIR]
    .venv/bin/python bench/snapshot_prepare.py --unpack LAYER.tar.gz

Times ``prepare`` (the writable layer) + ``mount`` (overlayfs over the init
layer and the chain, or vfs's copy and bind mount) for a new key each run,
and prints one line: the median and 90th percentile of each driver (goal for
overlay: under 10 ms).  Unmounting and removal are not timed.  With
``--unpack`` it times ``unpack_layer`` of a layer blob instead (goal: a
50 MB debian layer well under 2 s).  Needs root.  On ext4, run it away
from large removals: ext4 skips recently freed inodes, which makes file
creation several times slower for a few minutes after one.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sampan.image.snapshot import open_snapshotter  # noqa: E402
from sampan.image.unpack import unpack_layer  # noqa: E402
from sampan.oci.digest import chain_ids, sha256_of  # noqa: E402


def layer(i: int, files: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for j in range(files):
            info = tarfile.TarInfo(f"usr/layer{i}/file{j}")
            data = os.urandom(4096)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def bench_driver(driver: str, work: str, blobs: list[bytes], runs: int) -> list[float]:
    s = open_snapshotter(os.path.join(work, driver), driver)
    diff_ids = [sha256_of(b) for b in blobs]
    chain = chain_ids(diff_ids)
    for i, blob in enumerate(blobs):
        s.add(chain[i], chain[i - 1] if i else None, io.BytesIO(blob),
              expected_diff_id=diff_ids[i], label=f"bench{i}")  # fmt: skip
    times = []
    for n in range(runs + 3):
        key, target = f"c{n}", os.path.join(work, f"{driver}-rootfs{n}")
        os.mkdir(target)
        start = time.perf_counter()
        s.prepare(key, chain[-1])
        s.mount(key, target)
        elapsed = time.perf_counter() - start
        s.unmount(target)
        s.remove_active(key)
        os.rmdir(target)
        if n >= 3:  # warm-up runs
            times.append(elapsed)
    s.close()
    return times


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"median {statistics.median(times) * 1e3:.2f} ms (p90 {p90 * 1e3:.2f})"


def bench_unpack(path: str, work: str) -> None:
    times = []
    for n in range(3):
        dest = os.path.join(work, f"unpack{n}")
        os.mkdir(dest)
        with open(path, "rb") as f:
            start = time.perf_counter()
            _, size = unpack_layer(f, dest, mode="overlay", label="bench")
            times.append(time.perf_counter() - start)
    # Removed only at the end (by main): on ext4, files created in the minutes after
    # a mass removal are slow to allocate (its recently_deleted inode scan).
    blob = os.path.getsize(path)
    print(f"unpack_layer {os.path.basename(path)} ({blob / 1e6:.0f} MB blob, {size / 1e6:.0f} MB "
          f"unpacked): median {statistics.median(times):.2f} s of 3")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--files", type=int, default=40, help="4 KiB files per layer")
    parser.add_argument("--dir", default="/var/tmp", help="where the snapshot roots go")
    parser.add_argument("--unpack", metavar="BLOB", help="time unpack_layer of BLOB instead")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="sampan-bench-snap-", dir=args.dir)
    try:
        if args.unpack:
            bench_unpack(args.unpack, work)
            return
        blobs = [layer(i, args.files) for i in range(args.layers)]
        overlay = bench_driver("overlay", work, blobs, args.runs)
        vfs = bench_driver("vfs", work, blobs, max(5, args.runs // 5))
        print(f"snapshot prepare+mount, {args.layers}-layer image: overlay {summary(overlay)}, "
              f"vfs {summary(vfs)} [{len(overlay)}/{len(vfs)} runs]")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
