#!/usr/bin/env python3
"""Warm pull through a daemon: the docker CLI against `sampan daemon` vs dockerd, and
`sampan pull` (the sampan CLI, the daemon's client) against `sampan daemon`.

    .venv/bin/python bench/daemon_pull.py [--runs 15]

Starts ../shared/peers/registry.sh (busybox on 127.0.0.1:5099), the private
dockerd of ../shared/peers/dockerd.sh, and a `sampan daemon` on a private
root and socket; pulls the image into both once, then times `docker -H ...
pull -q` of it against each, alternating which goes first, and prints the
medians and the ratio sampan/docker.  What it measures is the daemon's
work behind the same client: a manifest check against the registry and the
local lookup.  Needs root.
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
PEERS = os.environ.get("SAMPAN_PEERS", os.path.join(os.path.dirname(ROOT), "shared", "peers"))


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def wait_for(path: str, deadline: float) -> None:
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    opts = parser.parse_args()
    registry = sh(os.path.join(PEERS, "registry.sh"), "start").splitlines()[-1]
    docker_env = sh(os.path.join(PEERS, "dockerd.sh"), "start")
    docker_host = docker_env.split("DOCKER_HOST=", 1)[1].strip()
    image = f"{registry}/library/busybox:latest"
    tmp = tempfile.mkdtemp(prefix="sampan-bench-daemon-")
    sock = os.path.join(tmp, "sampan.sock")
    daemon = subprocess.Popen(
        [os.path.join(ROOT, ".venv", "bin", "sampan"), "--root", os.path.join(tmp, "root"),
         "daemon", "--exec-root", os.path.join(tmp, "exec"), "-H", f"unix://{sock}",
         "--bridge", "none"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(sock, time.monotonic() + 10)
        cases = {
            "sampan": ["docker", "-H", f"unix://{sock}", "pull", "-q", image],
            "docker": ["docker", "-H", docker_host, "pull", "-q", image],
            "sampan CLI": [os.path.join(ROOT, ".venv", "bin", "sampan"), "-H", f"unix://{sock}",
                           "pull", "-q", image],
        }  # fmt: skip
        for argv in cases.values():
            timed(argv)  # the image is present from here on: warm pulls
        times: dict[str, list[float]] = {name: [] for name in cases}
        order = list(cases)
        for i in range(opts.runs):
            for name in order[i % 3 :] + order[: i % 3]:
                times[name].append(timed(cases[name]))
        medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
        for name, median in medians.items():
            what = "sampan pull via sampan" if name == "sampan CLI" else f"docker pull via {name}"
            print(f"warm {what}: median {median:.1f} ms over {opts.runs} runs")
        print(f"ratio sampan/docker: {medians['sampan'] / medians['docker']:.2f}")
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
