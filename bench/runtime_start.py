#!/usr/bin/env python3
"""Runtime start benchmark: the same bundle ``run`` to completion, sampan-runtime vs runc.

    .venv/bin/python bench/runtime_start.py [--runs N] [--peer runc] [--args true]

Each round runs the peer and sampan-runtime once each, alternating which
goes first, so both see the same machine noise.  Reports the median wall
time of each, the ratio sampan/peer (goal: <= 1.0), and the peak resident
memory of the runtime's process tree (ru_maxrss from wait4).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def make_bundle(path: str, args: list[str]) -> None:
    subprocess.run([f"{ROOT}/scripts/busybox-rootfs.sh", f"{path}/rootfs"], check=True)
    sys.path.insert(0, ROOT)
    from sampan.oci.runtime_config import default_spec

    config = default_spec()
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config["process"].pop("rlimits", None)  # the host's hard limits are below runc's default
    with open(f"{path}/config.json", "w") as f:
        json.dump(config, f, indent=2)


def one_run(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one ``run``; raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()}")
    return elapsed, usage.ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--peer", default="runc")
    parser.add_argument("--sampan", default=f"{ROOT}/.venv/bin/sampan-runtime")
    parser.add_argument("--args", nargs="*", default=["true"])
    parser.add_argument("--json", help="also write the figures to this file")
    opts = parser.parse_args()

    work = tempfile.mkdtemp(prefix="sampan-bench-")
    try:
        bundle = f"{work}/bundle"
        make_bundle(bundle, opts.args)
        runtimes = {"peer": opts.peer, "sampan": opts.sampan}
        times: dict[str, list[float]] = {"peer": [], "sampan": []}
        rss: dict[str, list[int]] = {"peer": [], "sampan": []}
        # One warm-up each: page cache, .pyc files.
        for name, exe in runtimes.items():
            one_run([exe, "--root", f"{work}/{name}-state", "run", "--bundle", bundle, "warm"])
        for i in range(opts.runs):
            order = ["peer", "sampan"] if i % 2 == 0 else ["sampan", "peer"]
            for name in order:
                exe = runtimes[name]
                cmd = [exe, "--root", f"{work}/{name}-state", "run", "--bundle", bundle, f"b{i}"]
                secs, kib = one_run(cmd)
                times[name].append(secs)
                rss[name].append(kib)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    ratio = med["sampan"] / med["peer"]
    result = {
        "runs": opts.runs,
        "peer": opts.peer,
        "median_ms": {k: round(v, 1) for k, v in med.items()},
        "ratio": round(ratio, 2),
        "peak_rss_kib": {k: max(v) for k, v in rss.items()},
    }
    print(f"runtime start: `run` of a busybox bundle ({' '.join(opts.args)}), {opts.runs} rounds")
    print(f"{'runtime':<16}{'median ms':>10}{'min ms':>9}{'max ms':>9}{'peak RSS MiB':>14}")
    for name, label in (("peer", opts.peer), ("sampan", "sampan-runtime")):
        t = [x * 1000 for x in times[name]]
        mib = max(rss[name]) / 1024
        print(f"{label:<16}{med[name]:>10.1f}{min(t):>9.1f}{max(t):>9.1f}{mib:>14.1f}")
    print(f"ratio sampan/{opts.peer}: {ratio:.2f} (goal <= 1.00)")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
