"""Networking faults found in review, each against a real daemon in a network namespace of
its own (its "host"): what a container must not reach, and the daemon's locks under load.

Traffic goes only between containers and the daemon's namespace (TestNetns); the host's
own namespace is never touched.  The daemon forwards unknown names to 127.0.0.77 in its
namespace, where nothing listens.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.integration.daemon_fixtures import (
    SampanDaemon,
    TestNetns,
    needs_docker_cli,
    network_daemon,
)

pytestmark = [pytest.mark.root, needs_docker_cli]

review_env = network_daemon("rev", extra=("--dns", "127.0.0.77"))


def _inspect(sd: SampanDaemon, ref: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(sd.docker("inspect", ref).stdout)[0]
    return doc


def test_a_container_cannot_reach_the_hosts_loopback_services(
    review_env: tuple[SampanDaemon, TestNetns],
) -> None:
    """route_localnet on the bridge (for -p from 127.0.0.1) must not let a container send
    to 127.0.0.0/8 through its gateway and reach what the host binds on loopback only
    (CVE-2020-8558's shape).  The container's side is played by the test, root in the
    container's namespace: a route to 127.0.0.2 via the gateway, as NET_RAW could forge."""
    sd, ns = review_env
    sd.docker("run", "-d", "--name", "lh", "busybox", "sleep", "300")
    try:
        settings = _inspect(sd, "lh")["NetworkSettings"]
        gateway, sandbox = settings["Gateway"], settings["SandboxKey"]
        listener = subprocess.Popen(
            ["nsenter", f"--net={ns.path}", sys.executable, "-c",
             "import socket\n"
             "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
             "s.bind(('127.0.0.2',5999)); s.settimeout(3)\n"
             "print('ready',flush=True)\n"
             "try:\n    print(s.recvfrom(100)[0].decode(),flush=True)\n"
             "except socket.timeout:\n    print('nothing',flush=True)\n"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"
        inside = ["nsenter", f"--net={sandbox}"]
        subprocess.run(
            [*inside, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet"],
            check=True,
        )
        subprocess.run(
            [*inside, "ip", "route", "add", "127.0.0.2/32", "via", gateway, "dev", "eth0",
             "table", "local"], check=True,
        )  # fmt: skip
        for _ in range(5):
            subprocess.run(
                [*inside, sys.executable, "-c",
                 "import socket\n"
                 "socket.socket(socket.AF_INET,socket.SOCK_DGRAM)"
                 ".sendto(b'leaked',('127.0.0.2',5999))\n"],
                check=True,
            )  # fmt: skip
            time.sleep(0.1)
        out, _ = listener.communicate(timeout=10)
        assert out.strip() == "nothing", "a container reached a service bound on 127.0.0.2"
    finally:
        sd.docker("rm", "-f", "lh", check=False)


def test_name_lookups_during_network_create_and_remove_do_not_deadlock(
    review_env: tuple[SampanDaemon, TestNetns],
) -> None:
    """The DNS thread's resolver takes the network service's lock to rebuild its index,
    while create/rm hold that lock and wait for the DNS thread to (un)register a
    listener: queries arriving meanwhile must not hang the daemon's networking."""
    sd, _ = review_env
    sd.docker("network", "create", "dl-base")
    loop = "while true; do nslookup nosuch $(awk '/^nameserver/{print $2; exit}' /etc/resolv.conf) >/dev/null 2>&1; done"  # noqa: E501
    try:
        for n in range(3):
            sd.docker("run", "-d", "--name", f"dl-q{n}", "--network", "dl-base", "busybox",
                      "sh", "-c", loop)  # fmt: skip
        time.sleep(0.5)
        for n in range(40):
            body = json.dumps({"Name": f"dl-{n}"}).encode()
            headers = {"Content-Type": "application/json"}
            status, _, _ = sd.api("POST", "/networks/create", body, headers, timeout=20)
            assert status == 201, f"create dl-{n}: {status}"
            status, _, _ = sd.api("DELETE", f"/networks/dl-{n}", timeout=20)
            assert status == 204, f"rm dl-{n}: {status}"
    finally:
        sd.docker("rm", "-f", "dl-q0", "dl-q1", "dl-q2", check=False, timeout=30)
        sd.docker("network", "rm", "dl-base", check=False, timeout=30)


def _addresses_in(netns: str) -> list[str]:
    out = subprocess.run(
        ["nsenter", f"--net={netns}", "ip", "-4", "-o", "addr", "show", "scope", "global"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line.split()[3].partition("/")[0] for line in out.splitlines()]


def test_a_joined_namespace_gives_up_the_address_its_owner_released(
    review_env: tuple[SampanDaemon, TestNetns],
) -> None:
    """X stops while Y (--network container:X) still runs in X's namespace: that namespace
    lives on, and with it X's veth -- X's address, released, must not stay on it, or the
    next container given that address shares it with Y (docker: Y keeps loopback only)."""
    sd, _ = review_env
    sd.docker("network", "create", "--subnet", "10.77.0.0/29", "join-net")
    try:
        sd.docker("run", "-d", "--name", "jx", "--network", "join-net", "busybox", "sleep", "300")
        old = _inspect(sd, "jx")["NetworkSettings"]["Networks"]["join-net"]["IPAddress"]
        sd.docker("run", "-d", "--name", "jy", "--network", "container:jx", "busybox",
                  "sleep", "300")  # fmt: skip
        y_ns = f"/proc/{_inspect(sd, 'jy')['State']['Pid']}/ns/net"
        assert old in _addresses_in(y_ns)
        sd.docker("stop", "-t", "0", "jx")
        deadline = time.monotonic() + 5
        while old in _addresses_in(y_ns) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert old not in _addresses_in(y_ns), f"{old} released but still on jy's eth0"
    finally:
        sd.docker("rm", "-f", "jx", "jy", check=False)
        sd.docker("network", "rm", "join-net", check=False)


def test_restarts_at_once_leave_one_veth_one_rule_one_address(
    review_env: tuple[SampanDaemon, TestNetns],
) -> None:
    """docker restart and a restart policy's restart, each while the previous namespace's
    veth may still be going away in the background: afterwards exactly one host veth, the
    port answers from 127.0.0.1, and no address is held twice."""
    sd, ns = review_env
    sd.docker("network", "create", "--subnet", "10.78.0.0/24", "rs-net")
    try:
        cid = sd.docker(
            "run", "-d", "--name", "rs", "--network", "rs-net", "--ip", "10.78.0.9",
            "-p", "127.0.0.1:5998:8080", "busybox", "sh", "-c",
            "echo hi > /tmp/i; httpd -f -p 8080 -h /tmp",
        ).stdout.strip()  # fmt: skip
        for _ in range(5):
            sd.docker("restart", "-t", "0", "rs")
        sd.docker("run", "-d", "--name", "rs2", "--network", "rs-net", "busybox", "sleep", "300")
        time.sleep(0.5)  # the old namespaces' veths gone in the background
        links = ns.run(["ip", "-o", "link", "show"]).stdout
        assert links.count(f"vs{cid[:12]}") == 1, links
        got = ns.run(["wget", "-qO-", "-T", "3", "http://127.0.0.1:5998/i"])
        assert got.stdout.strip() == "hi", got.stderr
        nets = json.loads(sd.docker("network", "inspect", "rs-net").stdout)[0]
        addrs = [c["IPv4Address"] for c in nets["Containers"].values()]
        assert len(addrs) == len(set(addrs)) == 2, addrs
    finally:
        sd.docker("rm", "-f", "rs", "rs2", check=False)
        sd.docker("network", "rm", "rs-net", check=False)
