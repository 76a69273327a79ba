"""Dockerfile builds, sampan vs docker's classic builder, side by side.

One context: a 10-step Dockerfile on busybox with a 20 MB COPY, RUN steps
that read and write real files, a few small sources.  Three measures, each
the whole `docker build` command (the same docker CLI, DOCKER_BUILDKIT=0,
against each engine; `sampan build` against sampan as a third column):

    cold        --no-cache, the previous result removed
    no change   the same context again (every step from the cache)
    one change  one small source file edited (its COPY and the steps after rerun)

The engines alternate run by run; medians and the ratio sampan/docker are
printed as a markdown table.  Both daemons have private state (sampan with
--bridge none, docker's peer with no bridge); builds run with --network none.
The base image is the peer's busybox, saved and loaded into sampan, so both
start from the same bytes.  Needs root.

    .venv/bin/python bench/build.py --runs 5
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
SAMPAN = os.path.join(ROOT, ".venv", "bin", "sampan")

DOCKERFILE = """\
FROM busybox
ENV APP=/app MODE=bench
WORKDIR /app
COPY big.bin /data/big.bin
RUN sha256sum /data/big.bin > /data/big.sum && wc -c /data/big.bin > /data/big.size
COPY deps.txt ./
RUN for i in $(seq 1 2000); do echo "line $i"; done > numbers.txt && sort -r numbers.txt > r.txt
COPY src/ ./src/
RUN cat src/*.sh > all.sh && chmod +x all.sh && ./all.sh > out.txt
CMD ["./all.sh"]
"""


def make_context(path: str) -> None:
    os.makedirs(os.path.join(path, "src"))
    with open(os.path.join(path, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    with open(os.path.join(path, "big.bin"), "wb") as f:
        f.write(os.urandom(20 << 20))
    with open(os.path.join(path, "deps.txt"), "w") as f:
        f.write("\n".join(f"dep-{i}==1.{i}" for i in range(50)) + "\n")
    for i in range(5):
        with open(os.path.join(path, "src", f"part{i}.sh"), "w") as f:
            f.write(f"echo part {i}\n")


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout.decode()}{done.stderr.decode()}")
    return took * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    started = subprocess.run([os.path.join(PEERS, "dockerd.sh"), "start"], capture_output=True,
                             text=True, check=True)  # fmt: skip
    docker_host = started.stdout.strip().rpartition("DOCKER_HOST=")[2]
    tmp = tempfile.mkdtemp(prefix="sampan-bench-build-")
    sock = f"unix://{tmp}/s.sock"
    daemon = subprocess.Popen(
        [SAMPAN, "--root", f"{tmp}/root", "daemon", "--exec-root", f"{tmp}/exec", "-H", sock,
         "--bridge", "none"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    engines = {
        "docker": (["docker", "-H", docker_host], env),
        "sampan": (["docker", "-H", sock], env),
    }
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(f"{tmp}/s.sock"):
            if time.monotonic() > deadline:
                raise SystemExit("sampan daemon did not start")
            time.sleep(0.05)
        time.sleep(0.2)
        saved = subprocess.run(["docker", "-H", docker_host, "save", "busybox:latest"],
                               capture_output=True, check=True).stdout  # fmt: skip
        subprocess.run(["docker", "-H", sock, "load"], input=saved, capture_output=True,
                       check=True)  # fmt: skip
        ctx = os.path.join(tmp, "ctx")
        make_context(ctx)
        results: dict[str, dict[str, list[float]]] = {
            m: {"docker": [], "sampan": [], "sampan CLI": []}
            for m in ("cold", "no change", "one change")
        }  # fmt: skip
        sampan_cli = [SAMPAN, "-H", sock]
        for run in range(opts.runs):
            order = ["docker", "sampan", "sampan CLI"]
            if run % 2:
                order.reverse()
            for name in order:
                cli, e = engines["sampan" if name == "sampan CLI" else name]
                argv = [*(sampan_cli if name == "sampan CLI" else cli), "build", "-q",
                        "--network", "none", "-t", "bench-build"]  # fmt: skip
                subprocess.run([*cli, "rmi", "-f", "bench-build"], env=e, capture_output=True)
                results["cold"][name].append(timed([*argv, "--no-cache", ctx], e))
                results["no change"][name].append(timed([*argv, ctx], e))
                with open(os.path.join(ctx, "src", "part4.sh"), "a") as f:
                    f.write(f"echo changed {run} {name}\n")
                results["one change"][name].append(timed([*argv, ctx], e))
        print(f"\nbuild of a 10-step Dockerfile with a 20 MB COPY, {opts.runs} runs, medians:\n")
        print("| build | sampan (docker CLI) | sampan CLI | docker | sampan/docker |")
        print("|---|---:|---:|---:|---:|")
        for measure, by in results.items():
            med = {k: statistics.median(v) for k, v in by.items()}
            ratio = med["sampan"] / med["docker"]
            print(f"| {measure} | {med['sampan']:.0f} ms | {med['sampan CLI']:.0f} ms | "
                  f"{med['docker']:.0f} ms | **{ratio:.2f}** |")  # fmt: skip
    finally:
        daemon.terminate()
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
        subprocess.run(["docker", "-H", docker_host, "rmi", "-f", "bench-build"],
                       capture_output=True)  # fmt: skip
        subprocess.run(["docker", "-H", docker_host, "builder", "prune", "-f"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
