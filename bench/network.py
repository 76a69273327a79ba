#!/usr/bin/env python3
"""Networking: what a bridge adds to `run`, iperf3 throughput and embedded DNS, sampan vs docker.

    .venv/bin/python bench/network.py [--runs 15] [--iperf-runs 3] [--iperf-time 5]
                                      [--containers 50] [--dns-clients 5] [--dns-rounds 4]

Both engines run in a network namespace of their own that this script creates
(`ip netns add`) and deletes at the end: their bridges, veths and firewall
rules never land in the host's namespace, and with no uplink in either
namespace nothing can leave the machine.  A `sampan daemon` (busybox
bootstrapped into a private root, default bridge sampan0 on 172.31.0.0/16,
kernel DNAT for published ports) and a dockerd of its own (Debian's 20.10,
started as ../shared/peers/dockerd.sh starts its peer but WITH its default
bridge docker0 on --bip 172.29.0.1/16, iptables and its default userland
proxy; busybox imported as that script does).

1. `run --rm busybox true` end to end (client fork to exit), on the default
   bridge and with `--network none`, for both: what networking adds to a run,
   and sampan vs docker.  Each round in a new (seeded) random order, a 0.3 s
   pause before each run so that one run's leftovers (docker's shim exiting,
   the kernel freeing a namespace) land in no other; medians, (min .. max).
2. iperf3 throughput (the host's /usr/bin/iperf3 run in the containers'
   network namespaces with nsenter: the containers are busybox, the kernel
   path is the same -- veth, bridge, DNAT): container -> container on the
   default bridge, and from the engine's namespace (the "host") to a
   published port at 127.0.0.1 and at the bridge's gateway address.  For
   127.0.0.1 docker's path is its userland proxy (docker-proxy copies every
   byte), sampan's is kernel DNAT; to the gateway both are kernel DNAT.
   Runs alternate the engines; Gbit/s received, medians.
3. DNS: N containers (50) on one user network; from a few of them, one A
   query at a time for each of the N-1 other names, to the network's DNS
   server -- sampan's embedded server on the gateway's port 53, docker's
   127.0.0.11 inside the container -- by a small Python UDP client run in the
   container's namespace.  One warm-up query per client is not counted.
   Latency p50/p99 per engine, and failures (timeouts, errors, no answer).

Everything it started is removed at the end, on failure too.  Needs root.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.environ.get("SAMPAN_PEERS", os.path.join(os.path.dirname(ROOT), "shared", "peers"))
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
SAMPAN = os.path.join(ROOT, ".venv", "bin", "sampan")
IPERF3 = "/usr/bin/iperf3"
DOCKER_BIP = "172.29.0.1/16"
DNS_SUBNET = "172.28.0.0/24"  # the user network of the DNS test, in each engine's namespace
IPERF_PORT = 5201  # inside the server container
PUBLISHED = 15201  # on the engine's namespace ("the host")
SETTLE = 0.3  # seconds of pause before each timed run

# One A query at a time to argv[1]:53 for each name of argv[3:], argv[2] rounds.
# Prints {"lat": [seconds...], "bad": [names...]}.
DNS_CLIENT = r"""
import json, random, socket, struct, sys, time
server, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2.0)
s.connect((server, 53))

def query(name):
    qid = random.getrandbits(16)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    start = time.perf_counter()
    s.send(q)
    while True:
        data = s.recv(4096)
        if data[:2] == q[:2]:
            break
    took = time.perf_counter() - start
    ok = data[3] & 15 == 0 and struct.unpack(">H", data[6:8])[0] > 0
    return took, ok

lat, bad = [], []
try:
    query(names[0])  # warm-up: ARP, the server's first packet; not counted
except OSError:
    pass
for _ in range(rounds):
    for name in names:
        try:
            took, ok = query(name)
        except OSError:
            bad.append(name)
            continue
        lat.append(took)
        if not ok:
            bad.append(name)
print(json.dumps({"lat": lat, "bad": bad}))
"""


def sh(argv: list[str], timeout: float = 120) -> str:
    done = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout)
    return done.stdout.strip()


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def fmt_ms(times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return f"{statistics.median(ms):.1f} ms ({min(ms):.1f} .. {max(ms):.1f})"


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Netns:
    """A network namespace of the benchmark's (`ip netns add`), lo up; close() deletes it."""

    def __init__(self, tag: str) -> None:
        self.name = f"spbench-{tag}-{os.getpid()}"
        self.path = f"/run/netns/{self.name}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class Engine:
    """One engine in its namespace: its CLI, its daemon process, where its bridge is."""

    name = ""

    def __init__(self, base: str, ns: Netns) -> None:
        self.base = base
        self.ns = ns
        self.sock = f"{base}/engine.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.gateway = ""

    def cli(self, *args: str) -> list[str]:
        raise NotImplementedError

    def wait_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while subprocess.run(self.cli("version"), capture_output=True).returncode != 0:
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemExit(f"{self.name} daemon exited; see {self.base}/daemon.log")
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name} daemon did not answer; see {self.base}/daemon.log")
            time.sleep(0.1)
        bridge = json.loads(sh(self.cli("network", "inspect", "bridge")))[0]
        self.gateway = bridge["IPAM"]["Config"][0]["Gateway"]

    def run_d(self, *args: str) -> str:
        return sh(self.cli("run", "-d", *args))

    def inspect(self, cid: str) -> dict[str, Any]:
        return json.loads(sh(self.cli("inspect", cid)))[0]  # type: ignore[no-any-return]

    def netns_of(self, cid: str) -> str:
        return f"/proc/{self.inspect(cid)['State']['Pid']}/ns/net"

    def clean(self) -> None:
        """Remove every container and user network (the engine's own, in its namespace)."""
        left = subprocess.run(self.cli("ps", "-aq"), capture_output=True, text=True).stdout
        if left.split():
            subprocess.run(self.cli("rm", "-f", *left.split()), capture_output=True)
        nets = subprocess.run(self.cli("network", "ls", "-q"), capture_output=True, text=True)
        for net in nets.stdout.split():
            subprocess.run(self.cli("network", "rm", net), capture_output=True)


class Sampan(Engine):
    name = "sampan"

    def start(self) -> None:
        root = f"{self.base}/root"
        sh([SAMPAN, "--root", root, "image", "bootstrap", "-q", "busybox"])
        with open(f"{self.base}/daemon.log", "wb") as log:
            self.proc = subprocess.Popen(
                ["nsenter", f"--net={self.ns.path}", PYTHON, "-m", "sampan.cli", "--root", root,
                 "daemon", "--exec-root", f"{self.base}/exec", "-H", f"unix://{self.sock}"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT,
                start_new_session=True,
            )  # fmt: skip
        self.wait_up(30)

    def cli(self, *args: str) -> list[str]:
        return [SAMPAN, "-H", f"unix://{self.sock}", *args]

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, 20)


class Docker(Engine):
    name = "docker"

    def start(self) -> None:
        with open(f"{self.base}/daemon.log", "wb") as log:
            self.proc = subprocess.Popen(
                ["nsenter", f"--net={self.ns.path}", "dockerd",
                 "--data-root", f"{self.base}/root", "--exec-root", f"{self.base}/exec",
                 "-H", f"unix://{self.sock}", "--pidfile", f"{self.base}/dockerd.pid",
                 "--bip", DOCKER_BIP],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.wait_up(60)
        tar = f"{self.base}/busybox.tar"
        sh([os.path.join(PEERS, "busybox-image.sh"), tar])
        sh(self.cli("import", tar, "busybox:latest"))
        os.unlink(tar)

    def cli(self, *args: str) -> list[str]:
        return ["docker", "-H", f"unix://{self.sock}", *args]

    def stop(self) -> None:
        if self.proc is None:
            return
        stop(self.proc, 30)
        # dockerd stops the containerd it started; if it was killed, stop that one here.
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if cmdline.startswith(b"containerd\0") and self.base.encode() in cmdline:
                os.kill(int(name), signal.SIGTERM)


# 1. run --rm


def bench_run(sampan: Sampan, docker: Docker, runs: int) -> None:
    cases = {
        "sampan, default bridge": sampan.cli("run", "--rm", "busybox", "true"),
        "sampan, --network none": sampan.cli("run", "--rm", "--network", "none", "busybox", "true"),
        "docker, default bridge": docker.cli("run", "--rm", "busybox", "true"),
        "docker, --network none": docker.cli("run", "--rm", "--network", "none", "busybox", "true"),
    }
    for argv in cases.values():
        timed(argv)  # warm caches once
    times: dict[str, list[float]] = {name: [] for name in cases}
    # A rotation would always put the same case after docker's runs (whose containerd-shim
    # and cleanup go on after the client exits): a new order each round, and a pause first.
    shuffler = random.Random(5)
    order = list(cases)
    for _ in range(runs):
        shuffler.shuffle(order)
        for name in order:
            time.sleep(SETTLE)
            times[name].append(timed(cases[name]))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"\n`run --rm busybox true`, {runs} rounds, median (min .. max):\n")
    print("| engine, network | time | docker bridge / this |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {fmt_ms(t)} | {med['docker, default bridge'] / med[name]:.2f} |")
    s_cost = (med["sampan, default bridge"] - med["sampan, --network none"]) * 1000
    d_cost = (med["docker, default bridge"] - med["docker, --network none"]) * 1000
    speedup = med["docker, default bridge"] / med["sampan, default bridge"]
    print(f"\nnetworking adds (median bridge - median none): sampan {s_cost:.1f} ms, "
          f"docker {d_cost:.1f} ms")  # fmt: skip
    print(f"sampan vs docker on the default bridge: {speedup:.2f}x faster")


# 2. iperf3


def listening(pid: int, port: int) -> bool:
    want = f":{port:04X} "
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        if any(want in line and line.split()[3] == "0A" for line in lines):
            return True
    return False


class IperfSetup:
    """A server container (IPERF_PORT published on PUBLISHED) with iperf3 -s in its namespace,
    and a client container, on the engine's default bridge."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.server_id = engine.run_d("-p", f"{PUBLISHED}:{IPERF_PORT}", "busybox", "sleep", "3600")
        self.client_id = engine.run_d("busybox", "sleep", "3600")
        doc = engine.inspect(self.server_id)
        self.server_ip = doc["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        self.server_ns = f"/proc/{doc['State']['Pid']}/ns/net"
        self.client_ns = engine.netns_of(self.client_id)
        self.iperf = subprocess.Popen(
            ["nsenter", f"--net={self.server_ns}", IPERF3, "-s", "-p", str(IPERF_PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not listening(self.iperf.pid, IPERF_PORT):
            if self.iperf.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"iperf3 -s did not start in {engine.name}'s container")
            time.sleep(0.05)

    def paths(self) -> dict[str, tuple[str, str, int]]:
        """path name -> (namespace of the client, address, port)."""
        host = self.engine.ns.path
        return {
            "container -> container": (self.client_ns, self.server_ip, IPERF_PORT),
            "host -> 127.0.0.1:published": (host, "127.0.0.1", PUBLISHED),
            "host -> gateway:published": (host, self.engine.gateway, PUBLISHED),
        }

    def close(self) -> None:
        stop(self.iperf, 5)


def docker_proxy(port: int) -> bool:
    """Whether a docker-proxy forwards PORT (dockerd's userland proxy for 127.0.0.1)."""
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"docker-proxy") and str(port).encode() in argv:
            return True
    return False


def iperf(netns: str, address: str, port: int, seconds: int) -> float:
    """Gbit/s received by the server."""
    out = sh(["nsenter", f"--net={netns}", IPERF3, "-c", address, "-p", str(port),
              "-t", str(seconds), "-J"], timeout=seconds + 30)  # fmt: skip
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9


def bench_iperf(sampan: Sampan, docker: Docker, runs: int, seconds: int) -> None:
    setups: dict[str, IperfSetup] = {}
    try:
        for engine in (sampan, docker):
            setups[engine.name] = IperfSetup(engine)
        proxied = docker_proxy(PUBLISHED)
        paths = list(setups["sampan"].paths())
        gbits: dict[tuple[str, str], list[float]] = {}
        order = ["sampan", "docker"]
        for i in range(runs):
            for path in paths:
                for name in order if i % 2 == 0 else order[::-1]:
                    ns, address, port = setups[name].paths()[path]
                    gbits.setdefault((path, name), []).append(iperf(ns, address, port, seconds))
    finally:
        for setup in setups.values():
            setup.close()
    print(f"\niperf3 TCP, one stream, {runs} x {seconds} s alternating, Gbit/s received, "
          "median (min .. max):\n")  # fmt: skip
    print("| path | sampan | docker | sampan/docker |")
    print("|---|---|---|---|")
    for path in paths:
        s, d = gbits[(path, "sampan")], gbits[(path, "docker")]
        cells = [f"{statistics.median(v):.2f} ({min(v):.2f} .. {max(v):.2f})" for v in (s, d)]
        ratio = statistics.median(s) / statistics.median(d)
        print(f"| {path} | {cells[0]} | {cells[1]} | {ratio:.2f} |")
    proxy = "running" if proxied else "NOT running"
    print(
        f"\n127.0.0.1: docker's userland proxy (docker-proxy for port {PUBLISHED}: {proxy}), "
        "sampan's kernel DNAT; gateway: kernel DNAT for both; container -> container: "
        "the bridge."
    )


# 3. DNS


def bench_dns(sampan: Sampan, docker: Docker, count: int, clients: int, rounds: int) -> None:
    names = [f"dnsb-{i:02d}" for i in range(count)]
    picked = sorted({round(k * (count - 1) / max(1, clients - 1)) for k in range(clients)})
    engines: dict[str, Engine] = {"sampan": sampan, "docker": docker}
    starting: dict[str, float] = {}
    ids: dict[str, list[str]] = {}
    for name, engine in engines.items():
        sh(engine.cli("network", "create", "--subnet", DNS_SUBNET, "dnsbench"))
        start = time.perf_counter()
        ids[name] = [
            engine.run_d("--name", n, "--network", "dnsbench", "busybox", "sleep", "3600")
            for n in names
        ]
        starting[name] = time.perf_counter() - start
    net = json.loads(sh(sampan.cli("network", "inspect", "dnsbench")))[0]
    sampan_gateway = net["IPAM"]["Config"][0]["Gateway"]
    # sampan's server listens on the user network's gateway; docker's on 127.0.0.11 in the
    # container's namespace (its rules there send it on to dockerd's socket)
    servers = {"sampan": sampan_gateway, "docker": "127.0.0.11"}
    lat: dict[str, list[float]] = {"sampan": [], "docker": []}
    bad: dict[str, list[str]] = {"sampan": [], "docker": []}
    order = ["sampan", "docker"]
    for j, k in enumerate(picked):
        others = [n for n in names if n != names[k]]
        for name in order if j % 2 == 0 else order[::-1]:
            cid = ids[name][k]
            out = sh(["nsenter", f"--net={engines[name].netns_of(cid)}", PYTHON, "-c",
                      DNS_CLIENT, servers[name], str(rounds), *others], timeout=600)  # fmt: skip
            result = json.loads(out)
            lat[name] += result["lat"]
            bad[name] += result["bad"]
    print(f"\nDNS: {count} containers on one user network; from {len(picked)} of them, "
          f"{rounds} x the {count - 1} other names, one A query at a time:\n")  # fmt: skip
    print("| engine (server) | queries | p50 | p99 | max | failed |")
    print("|---|---|---|---|---|---|")
    where = {"sampan": f"sampan ({sampan_gateway}:53)", "docker": "docker (127.0.0.11:53)"}
    for name in order:
        v = lat[name]
        print(f"| {where[name]} | {len(v)} | {percentile(v, 50) * 1000:.2f} ms | "
              f"{percentile(v, 99) * 1000:.2f} ms | {max(v) * 1000:.2f} ms | "
              f"{len(bad[name])} |")  # fmt: skip
    p50 = percentile(lat["sampan"], 50) / percentile(lat["docker"], 50)
    p99 = percentile(lat["sampan"], 99) / percentile(lat["docker"], 99)
    print(f"\nsampan/docker: p50 {p50:.2f}, p99 {p99:.2f}")
    print(f"({count} x run -d on the network: sampan {starting['sampan']:.1f} s, "
          f"docker {starting['docker']:.1f} s)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15, help="rounds of run --rm")
    parser.add_argument("--iperf-runs", type=int, default=3, help="iperf3 runs per path/engine")
    parser.add_argument("--iperf-time", type=int, default=5, help="seconds per iperf3 run")
    parser.add_argument("--containers", type=int, default=50, help="containers on the network")
    parser.add_argument("--dns-clients", type=int, default=5, help="containers that query")
    parser.add_argument("--dns-rounds", type=int, default=4, help="rounds of the N-1 names")
    parser.add_argument("--skip", action="append", default=[], choices=["run", "iperf", "dns"])
    opts = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")

    def terminated(signum: int, _frame: object) -> None:
        raise SystemExit(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminated)
    tmp = tempfile.mkdtemp(prefix="sampan-bench-net-")
    namespaces: list[Netns] = []
    engines: list[Sampan | Docker] = []
    try:
        for tag, cls in (("s", Sampan), ("d", Docker)):
            ns = Netns(tag)
            namespaces.append(ns)
            os.mkdir(f"{tmp}/{cls.name}")
            engine = cls(f"{tmp}/{cls.name}", ns)
            engines.append(engine)
            engine.start()
        sampan, docker = engines
        assert isinstance(sampan, Sampan) and isinstance(docker, Docker)
        print(f"sampan in netns {sampan.ns.name} (bridge gateway {sampan.gateway}), "
              f"docker in {docker.ns.name} (gateway {docker.gateway})")  # fmt: skip
        if "run" not in opts.skip:
            bench_run(sampan, docker, opts.runs)
        if "iperf" not in opts.skip:
            bench_iperf(sampan, docker, opts.iperf_runs, opts.iperf_time)
            for engine in engines:
                engine.clean()
        if "dns" not in opts.skip:
            bench_dns(sampan, docker, opts.containers, opts.dns_clients, opts.dns_rounds)
    finally:
        for engine in engines:
            try:
                engine.clean()
            finally:
                engine.stop()
        for ns in namespaces:
            ns.close()
        time.sleep(0.5)
        with open("/proc/self/mounts") as f:
            mounted = [line.split()[1] for line in f if line.split()[1].startswith(tmp)]
        for path in sorted(mounted, reverse=True):
            subprocess.run(["umount", "-l", path], capture_output=True)
        if mounted:
            print(f"unmounted {len(mounted)} leftover mounts under {tmp}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
