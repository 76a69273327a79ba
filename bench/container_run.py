#!/usr/bin/env python3
"""Containers through a daemon: `sampan run` and `exec` vs docker and podman, speed and memory.

    .venv/bin/python bench/container_run.py [--runs 10] [--churn-runs 3] [--quick]

Starts a `sampan daemon` on a private root (busybox bootstrapped into it),
the private dockerd of ../shared/peers/dockerd.sh and podman with the
private storage of ../shared/peers/podman.sh (both have busybox), then:

1. `run --rm busybox true`, timed end to end from the client's fork to its
   exit: the sampan CLI, the docker CLI against the peer dockerd
   (`--network none`), podman (`--network none`, the podman command line of
   podman.sh without its bash wrapper and image check), and the docker CLI
   against sampan's daemon.  Rounds alternate the order; medians and ratios.
   Then `exec C true` into a running busybox, the same way.
2. Churn: 100 (20 with --quick) `run -d busybox sleep 300`, one after the
   other, then `rm -f` of each: containers per second, sampan vs docker.
3. Memory, from /proc/PID/smaps_rollup: the idle daemons (sampan's vs
   dockerd + its containerd), and per running container the process that
   stays beside it -- sampan's monitor, docker's containerd-shim-runc-v2,
   podman's conmon -- as USS (Private_Clean + Private_Dirty) and PSS.

Everything it started is removed at the end; the peer dockerd is stopped
only if this script started it.  Needs root.
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
from collections.abc import Callable, Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.environ.get("SAMPAN_PEERS", os.path.join(os.path.dirname(ROOT), "shared", "peers"))
SAMPAN = os.path.join(ROOT, ".venv", "bin", "sampan")
PODMAN_DIR = os.environ.get("PEER_DIR_PODMAN", "/tmp/peer-podman")
DOCKER_DIR = "/tmp/peer-docker"


def sh(argv: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, check=True, capture_output=True, text=True, env=env)
    return done.stdout.strip()


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def wait_for(path: str, deadline: float) -> None:
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear")
        time.sleep(0.05)


def smaps(pid: int) -> dict[str, int]:
    """The kB fields of /proc/PID/smaps_rollup, plus Uss."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    fields["Uss"] = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return fields


def processes() -> Iterator[tuple[int, int, str, str]]:
    """(pid, ppid, comm, cmdline) of every process still there."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{name}/cmdline", "rb") as fb:
                cmdline = fb.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        yield int(name), ppid, comm, cmdline


def find_process(match: Callable[[int, str, str], bool]) -> int:
    for _ in range(50):
        for pid, ppid, comm, cmdline in processes():
            if match(ppid, comm, cmdline):
                return pid
        time.sleep(0.1)
    raise SystemExit("process not found")


def find_monitor(cid: str) -> int:
    """sampan's monitor of CID: forked by the daemon's fork server (named sampan-monitor,
    holding the container's log open) or spawned (monitor.py CID on its command line)."""
    for _ in range(50):
        for pid, _ppid, comm, cmdline in processes():
            if "monitor.py" in cmdline and cid in cmdline:
                return pid
            if comm == "sampan-monitor":
                try:
                    fds = os.listdir(f"/proc/{pid}/fd")
                    if any(cid in os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds):
                        return pid
                except OSError:
                    continue
        time.sleep(0.1)
    raise SystemExit("monitor not found")


def mib(kb: int) -> str:
    return f"{kb / 1024:.1f} MiB"


def fmt(times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return f"{statistics.median(ms):.1f} ms ({min(ms):.1f} .. {max(ms):.1f})"


class Tools:
    """The command lines of each tool, and what it takes to clean up after them."""

    def __init__(self, tmp: str, docker_host: str, podman_ok: bool) -> None:
        self.sampan_host = f"unix://{tmp}/s.sock"
        self.docker_host = docker_host
        self.podman_ok = podman_ok
        self.podman_env = dict(os.environ, CONTAINERS_CONF=f"{PODMAN_DIR}/containers.conf")

    def sampan(self, *args: str) -> list[str]:
        return [SAMPAN, "-H", self.sampan_host, *args]

    def docker(self, *args: str) -> list[str]:
        return ["docker", "-H", self.docker_host, *args]

    def docker_sampan(self, *args: str) -> list[str]:
        return ["docker", "-H", self.sampan_host, *args]

    def podman(self, *args: str) -> list[str]:
        return [
            "podman", "--root", f"{PODMAN_DIR}/root", "--runroot", f"{PODMAN_DIR}/run",
            "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc",
            *args,
        ]  # fmt: skip


def bench_run(tools: Tools, runs: int) -> dict[str, list[float]]:
    cases: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "sampan": (tools.sampan("run", "--rm", "busybox", "true"), None),
        "docker": (tools.docker("run", "--rm", "--network", "none", "busybox", "true"), None),
        "docker CLI -> sampan daemon": (
            tools.docker_sampan("run", "--rm", "busybox", "true"),
            None,
        ),
    }
    if tools.podman_ok:
        cases["podman"] = (
            tools.podman("run", "--rm", "--network", "none", "busybox", "true"),
            tools.podman_env,
        )
    for argv, env in cases.values():
        timed(argv, env)  # warm caches once
    times: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    for i in range(runs):
        rotated = order[i % len(order) :] + order[: i % len(order)]
        for name in rotated:
            argv, env = cases[name]
            times[name].append(timed(argv, env))
    return times


def bench_exec(tools: Tools, runs: int) -> dict[str, list[float]]:
    """`exec C true` into a running busybox: sampan vs docker (and the docker CLI on sampan)."""
    sid = sh(tools.sampan("run", "-d", "busybox", "sleep", "300"))
    did = sh(tools.docker("run", "-d", "--network", "none", "busybox", "sleep", "300"))
    try:
        cases = {
            "sampan": tools.sampan("exec", sid, "true"),
            "docker": tools.docker("exec", did, "true"),
            "docker CLI -> sampan daemon": tools.docker_sampan("exec", sid, "true"),
        }
        for argv in cases.values():
            timed(argv)
        times: dict[str, list[float]] = {name: [] for name in cases}
        order = list(cases)
        for i in range(runs):
            for name in order[i % len(order) :] + order[: i % len(order)]:
                times[name].append(timed(cases[name]))
        return times
    finally:
        subprocess.run(tools.sampan("rm", "-f", sid), capture_output=True)
        subprocess.run(tools.docker("rm", "-f", did), capture_output=True)


def churn(run: Callable[..., list[str]], count: int) -> tuple[float, float]:
    """Seconds for `count` sequential `run -d` and for the `rm -f` of each."""
    ids: list[str] = []
    start = time.perf_counter()
    try:
        for _ in range(count):
            ids.append(sh(run("run", "-d", "busybox", "sleep", "300")))
        started = time.perf_counter()
        while ids:
            subprocess.run(run("rm", "-f", ids[-1]), check=True, stdout=subprocess.DEVNULL)
            ids.pop()
        return started - start, time.perf_counter() - started
    finally:
        for cid in ids:
            subprocess.run(run("rm", "-f", cid), capture_output=True)


def bench_churn(tools: Tools, runs: int, count: int) -> dict[str, list[tuple[float, float]]]:
    cases: dict[str, Callable[..., list[str]]] = {"sampan": tools.sampan, "docker": tools.docker}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    order = list(cases)
    for i in range(runs):
        for name in order if i % 2 == 0 else reversed(order):
            results[name].append(churn(cases[name], count))
    return results


def bench_memory(tools: Tools, daemon_pid: int) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    # The daemon's monitor fork server (sampan/engine/zygote.py) is part of its idle cost.
    zygote = find_process(lambda ppid, _, cmd: ppid == daemon_pid and "zygote.py" in cmd)
    s, z = smaps(daemon_pid), smaps(zygote)
    out["sampan daemon"] = {k: s.get(k, 0) + z.get(k, 0) for k in s}
    with open(f"{DOCKER_DIR}/dockerd.pid") as f:
        dockerd = int(f.read())
    containerd = find_process(lambda ppid, comm, _: ppid == dockerd and comm == "containerd")
    d, c = smaps(dockerd), smaps(containerd)
    out["dockerd"] = d
    out["containerd"] = c
    out["dockerd + containerd"] = {k: d.get(k, 0) + c.get(k, 0) for k in d}
    sid = sh(tools.sampan("run", "-d", "busybox", "sleep", "300"))
    did = sh(tools.docker("run", "-d", "--network", "none", "busybox", "sleep", "300"))
    pid_ = ""
    try:
        monitor = find_monitor(sid)
        shim = find_process(lambda _, comm, cmd: comm.startswith("containerd-shim") and did in cmd)
        time.sleep(1)  # let them settle
        out["sampan monitor"] = smaps(monitor)
        out["containerd-shim"] = smaps(shim)
        if tools.podman_ok:
            pid_ = sh(
                tools.podman("run", "-d", "--network", "none", "busybox", "sleep", "300"),
                tools.podman_env,
            )
            conmon = find_process(lambda _, comm, cmd: comm == "conmon" and pid_ in cmd)
            time.sleep(1)
            out["conmon"] = smaps(conmon)
    finally:
        subprocess.run(tools.sampan("rm", "-f", sid), capture_output=True)
        subprocess.run(tools.docker("rm", "-f", did), capture_output=True)
        if pid_:
            rm = tools.podman("rm", "-f", pid_)
            subprocess.run(rm, capture_output=True, env=tools.podman_env)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10, help="rounds of run --rm")
    parser.add_argument("--churn-runs", type=int, default=3, help="rounds of the churn")
    parser.add_argument("--quick", action="store_true", help="20 containers per churn, not 100")
    opts = parser.parse_args()
    count = 20 if opts.quick else 100

    pidfile = f"{DOCKER_DIR}/dockerd.pid"
    docker_was_up = False
    if os.path.exists(pidfile):
        try:
            with open(pidfile) as f:
                os.kill(int(f.read()), 0)
            docker_was_up = True
        except (OSError, ValueError):
            pass
    docker_env = sh([os.path.join(PEERS, "dockerd.sh"), "start"])
    docker_host = docker_env.split("DOCKER_HOST=", 1)[1].strip()
    podman_ok = True
    try:
        sh([os.path.join(PEERS, "podman.sh"), "version"])
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"podman setup failed, skipped: {e}", file=sys.stderr)
        podman_ok = False

    tmp = tempfile.mkdtemp(prefix="sampan-bench-run-")
    tools = Tools(tmp, docker_host, podman_ok)
    sh([SAMPAN, "--root", f"{tmp}/root", "image", "bootstrap", "-q", "busybox"])
    daemon = subprocess.Popen(
        [SAMPAN, "--root", f"{tmp}/root", "daemon", "--exec-root", f"{tmp}/exec",
         "-H", tools.sampan_host, "--bridge", "none"],  # as the docker peer: networking's
        # own cost is bench/network.py's
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(f"{tmp}/s.sock", time.monotonic() + 20)
        sh(tools.sampan("ps", "-a"))
        fresh = smaps(daemon.pid)

        times = bench_run(tools, opts.runs)
        med = {name: statistics.median(t) for name, t in times.items()}
        print(f"\nrun --rm busybox true, {opts.runs} rounds, median (min .. max):\n")
        print("| client -> engine | time | ratio sampan/this |")
        print("|---|---|---|")
        for name, t in times.items():
            print(f"| {name} | {fmt(t)} | {med['sampan'] / med[name]:.2f} |")

        times = bench_exec(tools, opts.runs)
        med = {name: statistics.median(t) for name, t in times.items()}
        print(f"\nexec CONTAINER true, {opts.runs} rounds, median (min .. max):\n")
        print("| client -> engine | time | ratio sampan/this |")
        print("|---|---|---|")
        for name, t in times.items():
            print(f"| {name} | {fmt(t)} | {med['sampan'] / med[name]:.2f} |")

        results = bench_churn(tools, opts.churn_runs, count)
        print(f"\n{count} x run -d busybox sleep 300, then rm -f each; {opts.churn_runs} rounds:\n")
        print("| engine | run -d (median s) | rm -f (median s) | containers/s (median) |")
        print("|---|---|---|---|")
        rate: dict[str, float] = {}
        for name, rs in results.items():
            rate[name] = statistics.median(count / (a + b) for a, b in rs)
            up = statistics.median(a for a, _ in rs)
            down = statistics.median(b for _, b in rs)
            print(f"| {name} | {up:.2f} | {down:.2f} | {rate[name]:.2f} |")
        print(f"\ncontainers/s sampan/docker: {rate['sampan'] / rate['docker']:.2f}")

        mem = bench_memory(tools, daemon.pid)
        mem["sampan daemon (fresh)"] = fresh
        print("\nmemory (smaps_rollup):\n")
        print("| process | RSS | PSS | USS |")
        print("|---|---|---|---|")
        rows = ("sampan daemon (fresh)", "sampan daemon", "dockerd", "containerd",
                "dockerd + containerd", "sampan monitor", "containerd-shim", "conmon")  # fmt: skip
        for name in rows:
            if name in mem:
                m = mem[name]
                print(f"| {name} | {mib(m['Rss'])} | {mib(m['Pss'])} | {mib(m['Uss'])} |")
        dc = mem["dockerd + containerd"]
        sd, mon = mem["sampan daemon"], mem["sampan monitor"]
        print(f"\ndaemon RSS sampan/(dockerd+containerd): {sd['Rss'] / dc['Rss']:.2f}")
        print(f"daemon PSS sampan/(dockerd+containerd): {sd['Pss'] / dc['Pss']:.2f}")
        for peer in ("containerd-shim", "conmon"):
            if peer in mem:
                p = mem[peer]
                print(
                    f"monitor/{peer}: USS {mon['Uss'] / p['Uss']:.2f}, "
                    f"PSS {mon['Pss'] / p['Pss']:.2f}"
                )
    finally:
        left = subprocess.run(tools.sampan("ps", "-aq"), capture_output=True, text=True).stdout
        for cid in left.split():
            subprocess.run(tools.sampan("rm", "-f", cid), capture_output=True)
        daemon.terminate()
        try:
            daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        if not docker_was_up:
            subprocess.run([os.path.join(PEERS, "dockerd.sh"), "stop"], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
