"""Container networking end to end, with the real docker CLI against a daemon that runs in
a network namespace of its own (its "host"): the default bridge, user networks and their
DNS, published ports from 127.0.0.1 and the gateway, isolation, container: mode, links,
live connect/disconnect, bad input, and a kill -9 of the daemon.

Traffic goes only between containers and the daemon's namespace (TestNetns): nothing
leaves the machine, and the host's own namespace is never touched.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.daemon_fixtures import (
    SampanDaemon,
    TestNetns,
    needs_docker_cli,
    network_daemon,
    wait_until,
)

pytestmark = [pytest.mark.root, needs_docker_cli]

# The daemon forwards names it does not know to this resolver, which the test runs in the
# daemon's namespace: no query ever reaches the machine's real resolver.
UPSTREAM = "127.0.0.77"
net_env = network_daemon("net", extra=("--dns", UPSTREAM))


@pytest.fixture(scope="module")
def upstream(net_env: tuple[SampanDaemon, TestNetns]) -> Iterator[list[bytes]]:
    """A fake upstream DNS server on UPSTREAM:53 inside the daemon's namespace: it answers
    every A query with 192.0.2.123 and records the names asked."""
    _, ns = net_env
    asked: list[bytes] = []
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        f"s.bind(('{UPSTREAM}',53))\n"
        "print('ready',flush=True)\n"
        "while True:\n"
        "    q,a=s.recvfrom(512)\n"
        "    i=12\n"
        "    while q[i]: i+=q[i]+1\n"
        "    end=i+5\n"
        "    sys.stdout.write(q[12:i].hex()+'\\n'); sys.stdout.flush()\n"
        "    r=q[:2]+b'\\x81\\x80'+q[4:6]+b'\\x00\\x01\\x00\\x00\\x00\\x00'+q[12:end]\n"
        "    r+=bytes([0xC0,12,0,1,0,1,0,0,0,60,0,4,192,0,2,123])\n"
        "    s.sendto(r,a)\n"
    )
    import subprocess

    proc = subprocess.Popen(
        ["nsenter", f"--net={ns.path}", sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            asked.append(bytes.fromhex(line.strip()))

    threading.Thread(target=pump, daemon=True).start()
    yield asked
    proc.kill()
    proc.wait()


def _inspect(daemon: SampanDaemon, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(daemon.docker("inspect", name).stdout)[0]
    return doc


def _sh(daemon: SampanDaemon, name: str, script: str, check: bool = True) -> str:
    return daemon.docker("exec", name, "sh", "-c", script, check=check).stdout


def _links(ns: TestNetns) -> list[str]:
    out = ns.run(["ip", "-o", "link", "show"]).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def test_default_bridge_gives_eth0_an_address_and_a_route(
    net_env: tuple[SampanDaemon, TestNetns],
) -> None:
    daemon, ns = net_env
    daemon.docker("run", "-d", "--name", "b1", "busybox", "sleep", "300")
    doc = _inspect(daemon, "b1")
    settings = doc["NetworkSettings"]
    bridge = settings["Networks"]["bridge"]
    assert bridge["IPAddress"] and bridge["IPAddress"] == settings["IPAddress"]
    assert bridge["Gateway"] == settings["Gateway"]
    assert bridge["MacAddress"].startswith("02:42:")
    assert settings["SandboxKey"].endswith(doc["Id"])
    addr = _sh(daemon, "b1", "ip -o -4 addr show eth0")
    assert f"{bridge['IPAddress']}/{bridge['IPPrefixLen']}" in addr
    assert f"default via {bridge['Gateway']}" in _sh(daemon, "b1", "ip route")
    # the gateway (the daemon's namespace, playing the host) answers
    assert "1 packets received" in _sh(daemon, "b1", f"ping -c1 -W2 {bridge['Gateway']}")
    hosts = _sh(daemon, "b1", "cat /etc/hosts")
    assert f"{bridge['IPAddress']}\t{doc['Config']['Hostname']}" in hosts
    # the host end is on sampan0, named after the container
    veth = f"vs{doc['Id'][:12]}0"
    assert veth in _links(ns)
    daemon.docker("rm", "-f", "b1")
    wait_until("the veth's removal", lambda: veth not in _links(ns))
    assert not os.path.exists(settings["SandboxKey"])


def test_user_network_names_and_isolation(
    net_env: tuple[SampanDaemon, TestNetns], upstream: list[bytes]
) -> None:
    daemon, _ = net_env
    daemon.docker("network", "create", "--subnet", "10.231.0.0/24", "front")
    daemon.docker("network", "create", "back")
    daemon.docker(
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "front",
        "--network-alias",
        "www",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    )
    daemon.docker("run", "-d", "--name", "client", "--network", "front", "busybox", "sleep", "300")
    daemon.docker("run", "-d", "--name", "other", "--network", "back", "busybox", "sleep", "300")
    web = _inspect(daemon, "web")["NetworkSettings"]["Networks"]["front"]
    assert web["IPAddress"].startswith("10.231.0.")
    # by name, by alias, by short id; httpd serves /etc/hostname
    for name in ("web", "www", _inspect(daemon, "web")["Id"][:12]):
        out = _sh(daemon, "client", f"nslookup {name}")
        assert web["IPAddress"] in out, out
        got = _sh(daemon, "client", f"timeout 5 wget -q -O - http://{name}/hostname")
        assert got.strip() == _inspect(daemon, "web")["Config"]["Hostname"]
    # an unknown single-label name: NXDOMAIN from the embedded server, never forwarded
    asked_before = len(upstream)
    started = time.monotonic()
    miss = daemon.docker("exec", "client", "nslookup", "nosuchcontainer", check=False)
    assert miss.returncode != 0
    assert time.monotonic() - started < 5
    # a dotted name is forwarded to the daemon's --dns (the test's fake upstream)
    out = _sh(daemon, "client", "nslookup example.test")
    assert "192.0.2.123" in out, out
    assert len(upstream) > asked_before
    assert all(b"nosuchcontainer" not in q for q in upstream)
    # another network: no name, no route to it -- and front's DNS server, reached through
    # its gateway as a host address, answers nobody from back
    assert daemon.docker("exec", "other", "nslookup", "web", check=False).returncode != 0
    front_dns = web["Gateway"]
    asked = daemon.docker("exec", "other", "timeout", "5", "nslookup", "web", front_dns,
                          check=False)  # fmt: skip
    assert web["IPAddress"] not in asked.stdout
    # (Debian's static busybox wget crashes with -T: timeout(1) bounds it instead)
    blocked = daemon.docker(
        "exec", "other", "timeout", "3", "wget", "-q", "-O", "-",
        f"http://{web['IPAddress']}/hostname", check=False,
    )  # fmt: skip
    assert blocked.returncode != 0
    # a renamed container answers to its new name at once (the DNS index is rebuilt)
    daemon.docker("rename", "web", "web2")
    assert web["IPAddress"] in _sh(daemon, "client", "nslookup web2")
    assert daemon.docker("exec", "client", "nslookup", "web", check=False).returncode != 0
    daemon.docker("rename", "web2", "web")
    # network rm of a network in use is refused, with the container named
    refused = daemon.docker("network", "rm", "front", check=False)
    assert refused.returncode != 0 and "active endpoints" in refused.stderr
    daemon.docker("rm", "-f", "web", "client", "other")
    daemon.docker("network", "rm", "front", "back")


def test_published_ports_from_loopback_gateway_and_hairpin(
    net_env: tuple[SampanDaemon, TestNetns],
) -> None:
    daemon, ns = net_env
    daemon.docker(
        "run",
        "-d",
        "--name",
        "pub",
        "-p",
        "18080:80",
        "-p",
        "127.0.0.1::80",
        "-p",
        "18081:81/udp",
        "busybox",
        "sh",
        "-c",
        "httpd -f -p 80 -h /etc",
    )
    doc = _inspect(daemon, "pub")
    ports = doc["NetworkSettings"]["Ports"]
    assert {"HostIp": "0.0.0.0", "HostPort": "18080"} in ports["80/tcp"]
    random_port = next(p["HostPort"] for p in ports["80/tcp"] if p["HostIp"] == "127.0.0.1")
    gateway = doc["NetworkSettings"]["Gateway"]
    hostname = doc["Config"]["Hostname"]

    def fetch(url: str) -> str:
        code = f"import urllib.request as u;print(u.urlopen('{url}',timeout=5).read().decode())"
        return ns.run([sys.executable, "-c", code]).stdout.strip()

    wait_until("httpd", lambda: fetch("http://127.0.0.1:18080/hostname") == hostname)
    assert fetch(f"http://{gateway}:18080/hostname") == hostname
    assert fetch(f"http://127.0.0.1:{random_port}/hostname") == hostname
    # 127.0.0.1-only binding: not on the gateway address
    assert fetch(f"http://{gateway}:{random_port}/hostname") == ""
    # udp: busybox's nc has no -u here, so a UDP echo server runs in the container's
    # network namespace (its SandboxKey) from the host
    import subprocess

    echo = subprocess.Popen(
        ["nsenter", f"--net={doc['NetworkSettings']['SandboxKey']}", sys.executable, "-c",
         "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('',81))\n"
         "while True:\n d,a=s.recvfrom(100);s.sendto(b'pong '+d,a)"],
    )  # fmt: skip
    try:
        code = (
            "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2);"
            "s.sendto(b'ping',('127.0.0.1',18081));print(s.recv(100).decode())"
        )
        wait_until("udp echo", lambda: "pong ping" in ns.run([sys.executable, "-c", code]).stdout)
    finally:
        echo.kill()
        echo.wait()
    # hairpin: a container reaches the published port through the gateway address
    daemon.docker("run", "-d", "--name", "peer", "busybox", "sleep", "300")
    out = _sh(daemon, "peer", f"timeout 5 wget -q -O - http://{gateway}:18080/hostname")
    assert out.strip() == hostname
    # the docker CLI's port command
    assert "0.0.0.0:18080" in daemon.docker("port", "pub", "80").stdout
    # a second container cannot take the same host port
    taken = daemon.docker(
        "run", "-d", "--name", "clash", "-p", "18080:80", "busybox", "sleep", "300", check=False
    )
    assert taken.returncode != 0 and "port is already allocated" in taken.stderr
    daemon.docker("rm", "-f", "pub", "peer", "clash")
    assert fetch("http://127.0.0.1:18080/hostname") == ""


def test_container_mode_shares_the_namespace(net_env: tuple[SampanDaemon, TestNetns]) -> None:
    daemon, _ = net_env
    daemon.docker(
        "run", "-d", "--name", "pod", "busybox", "httpd", "-f", "-p", "8000", "-h", "/etc"
    )
    daemon.docker(
        "run", "-d", "--name", "side", "--network", "container:pod", "busybox", "sleep", "300"
    )
    pod_ip = _inspect(daemon, "pod")["NetworkSettings"]["IPAddress"]
    assert pod_ip in _sh(daemon, "side", "ip -o -4 addr show eth0")
    wait_until(
        "httpd",
        lambda: (
            "localhost"
            in _sh(daemon, "side", "timeout 3 wget -qO- http://127.0.0.1:8000/hosts", check=False)
        ),
    )
    daemon.docker("rm", "-f", "side", "pod")


def test_links_on_the_default_bridge(net_env: tuple[SampanDaemon, TestNetns]) -> None:
    daemon, _ = net_env
    daemon.docker("run", "-d", "--name", "db", "busybox", "sleep", "300")
    daemon.docker(
        "run",
        "-d",
        "--name",
        "app",
        "--link",
        "db:database",
        "--add-host",
        "extra.example:192.0.2.9",
        "--dns-search",
        "corp.test",
        "busybox",
        "sleep",
        "300",
    )
    db_ip = _inspect(daemon, "db")["NetworkSettings"]["IPAddress"]
    hosts = _sh(daemon, "app", "cat /etc/hosts")
    assert any(
        line.startswith(db_ip) and "database" in line.split() for line in hosts.splitlines()
    ), hosts
    assert "192.0.2.9\textra.example" in hosts
    assert "search corp.test" in _sh(daemon, "app", "cat /etc/resolv.conf")
    assert "1 packets received" in _sh(daemon, "app", "ping -c1 -W2 database")
    daemon.docker("rm", "-f", "app", "db")


def test_connect_and_disconnect_a_running_container(
    net_env: tuple[SampanDaemon, TestNetns],
) -> None:
    daemon, _ = net_env
    daemon.docker("network", "create", "--subnet", "10.232.0.0/24", "extra")
    daemon.docker("run", "-d", "--name", "hop", "busybox", "sleep", "300")
    daemon.docker("network", "connect", "--ip", "10.232.0.50", "--alias", "hopper", "extra", "hop")
    assert "10.232.0.50/24" in _sh(daemon, "hop", "ip -o -4 addr show eth1")
    nets = _inspect(daemon, "hop")["NetworkSettings"]["Networks"]
    assert set(nets) == {"bridge", "extra"} and nets["extra"]["IPAddress"] == "10.232.0.50"
    daemon.docker("run", "-d", "--name", "asker", "--network", "extra", "busybox", "sleep", "300")
    assert "10.232.0.50" in _sh(daemon, "asker", "nslookup hopper")
    again = daemon.docker("network", "connect", "extra", "hop", check=False)
    assert again.returncode != 0
    daemon.docker("network", "disconnect", "extra", "hop")
    assert "eth1" not in _sh(daemon, "hop", "ip -o link")
    assert set(_inspect(daemon, "hop")["NetworkSettings"]["Networks"]) == {"bridge"}
    daemon.docker("rm", "-f", "hop", "asker")
    daemon.docker("network", "rm", "extra")


def test_bad_input_is_refused_and_leaves_nothing(net_env: tuple[SampanDaemon, TestNetns]) -> None:
    daemon, ns = net_env
    daemon.docker("network", "create", "--subnet", "10.233.0.0/29", "tiny")
    overlap = daemon.docker("network", "create", "--subnet", "10.233.0.0/24", "over", check=False)
    assert overlap.returncode != 0 and "overlaps" in overlap.stderr
    bad = daemon.docker("network", "create", "--subnet", "10.300.0.0/24", "bad", check=False)
    assert bad.returncode != 0
    gw = daemon.docker(
        "network",
        "create",
        "--subnet",
        "10.234.0.0/24",
        "--gateway",
        "10.235.0.1",
        "gw",
        check=False,
    )
    assert gw.returncode != 0 and "gateway" in gw.stderr.lower()
    names = daemon.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert "over" not in names and "bad" not in names and "gw" not in names
    # a /29 holds five containers; the sixth start is a clear error, and leaves nothing
    for i in range(5):
        daemon.docker(
            "run", "-d", "--name", f"t{i}", "--network", "tiny", "busybox", "sleep", "300"
        )
    full = daemon.docker(
        "run", "-d", "--name", "t5", "--network", "tiny", "busybox", "sleep", "300", check=False
    )
    assert full.returncode != 0 and "no available IPv4 addresses" in full.stderr
    t5 = _inspect(daemon, "t5")
    assert not os.path.exists(os.path.join(str(daemon.exec_root), "netns", t5["Id"]))
    assert f"vs{t5['Id'][:12]}0" not in _links(ns)
    unknown = daemon.docker("run", "--rm", "--network", "nosuchnet", "busybox", "true", check=False)
    assert unknown.returncode != 0 and "not found" in unknown.stderr
    # a create refused for its network leaves no record behind (and no destroy event)
    refused = daemon.docker("create", "--name", "badnet", "--network", "nosuchnet", "busybox",
                            check=False)  # fmt: skip
    assert refused.returncode != 0
    assert daemon.docker("inspect", "badnet", check=False).returncode != 0
    static = daemon.docker("run", "--rm", "--ip", "10.9.9.9", "busybox", "true", check=False)
    assert static.returncode != 0
    daemon.docker("rm", "-f", *[f"t{i}" for i in range(6)])
    daemon.docker("network", "rm", "tiny")


def test_kill_9_and_restart_keeps_networking_consistent(
    net_env: tuple[SampanDaemon, TestNetns],
) -> None:
    daemon, ns = net_env
    daemon.docker("network", "create", "--subnet", "10.236.0.0/24", "keep")
    daemon.docker(
        "run",
        "-d",
        "--name",
        "k1",
        "--network",
        "keep",
        "-p",
        "18090:80",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    )
    daemon.docker("run", "-d", "--name", "k2", "--network", "keep", "busybox", "sleep", "300")
    daemon.docker("run", "-d", "--name", "gone", "--network", "keep", "busybox", "sleep", "300")
    k1 = _inspect(daemon, "k1")["NetworkSettings"]["Networks"]["keep"]["IPAddress"]
    gone = _inspect(daemon, "gone")
    rules_before = ns.run(["nft", "list", "ruleset"]).stdout
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait()
    # the container "gone" dies while the daemon is down: its monitor reports its exit
    os.kill(gone["State"]["Pid"], signal.SIGKILL)
    daemon.start()
    wait_until("gone's exit", lambda: _inspect(daemon, "gone")["State"]["Status"] == "exited")
    assert f"vs{gone['Id'][:12]}0" not in _links(ns)
    assert _inspect(daemon, "k1")["NetworkSettings"]["Networks"]["keep"]["IPAddress"] == k1
    assert k1 in _sh(daemon, "k2", "nslookup k1")
    assert _sh(daemon, "k2", "timeout 5 wget -q -O - http://k1/hostname").strip()
    code = "import urllib.request as u;print(u.urlopen('http://127.0.0.1:18090/hostname').read())"
    assert ns.run([sys.executable, "-c", code]).returncode == 0
    rules_after = ns.run(["nft", "list", "ruleset"]).stdout
    assert rules_after.count("18090") == rules_before.count("18090")  # not doubled
    # a new container never gets an address someone holds
    daemon.docker("run", "-d", "--name", "k3", "--network", "keep", "busybox", "sleep", "300")
    k3 = _inspect(daemon, "k3")["NetworkSettings"]["Networks"]["keep"]["IPAddress"]
    assert k3 not in (
        k1,
        _inspect(daemon, "k2")["NetworkSettings"]["Networks"]["keep"]["IPAddress"],
    )
    daemon.docker("rm", "-f", "k1", "k2", "k3", "gone")
    assert "18090" not in ns.run(["nft", "list", "ruleset"]).stdout
    daemon.docker("network", "rm", "keep")


def test_none_and_host_modes_are_unchanged(net_env: tuple[SampanDaemon, TestNetns]) -> None:
    daemon, _ = net_env
    out = daemon.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    assert "lo" in out and "eth0" not in out
    out = daemon.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout
    assert "sampan0" in out  # the daemon's namespace, with its bridge
    conflict = daemon.docker(
        "run", "--rm", "--network", "none", "-p", "80", "busybox", "true", check=False
    )
    assert conflict.returncode != 0 and "conflicting options" in conflict.stderr


def test_internal_network_has_no_way_out(net_env: tuple[SampanDaemon, TestNetns]) -> None:
    daemon, _ = net_env
    daemon.docker("network", "create", "--internal", "--subnet", "10.237.0.0/24", "sealed")
    daemon.docker("run", "-d", "--name", "in1", "--network", "sealed", "busybox", "httpd", "-f",
                  "-p", "80", "-h", "/etc")  # fmt: skip
    daemon.docker("run", "-d", "--name", "in2", "--network", "sealed", "busybox", "sleep", "300")
    daemon.docker("run", "-d", "--name", "out1", "busybox", "httpd", "-f", "-p", "80", "-h",
                  "/etc")  # fmt: skip
    assert "default" not in _sh(daemon, "in2", "ip route")
    # its own members reach each other (by name: the DNS server still serves it) ...
    assert _sh(daemon, "in2", "timeout 5 wget -qO- http://in1/hostname").strip()
    # ... but nothing outside the bridge: not another network's container
    out_ip = _inspect(daemon, "out1")["NetworkSettings"]["IPAddress"]
    blocked = daemon.docker("exec", "in2", "timeout", "3", "wget", "-qO-",
                            f"http://{out_ip}/hostname", check=False)  # fmt: skip
    assert blocked.returncode != 0
    daemon.docker("rm", "-f", "in1", "in2", "out1")
    daemon.docker("network", "rm", "sealed")


def test_daemon_bip_and_fixed_cidr(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.integration.daemon_fixtures import bootstrapped

    ns = TestNetns("bip")
    try:
        daemon = bootstrapped(tmp_path_factory.mktemp("bip"), netns=ns.path,
                              extra=("--bip", "10.238.0.1/24", "--fixed-cidr",
                                     "10.238.0.128/25"))  # fmt: skip
        try:
            daemon.docker("run", "-d", "--name", "f1", "busybox", "sleep", "300")
            settings = _inspect(daemon, "f1")["NetworkSettings"]
            assert settings["Gateway"] == "10.238.0.1"
            assert settings["IPAddress"] == "10.238.0.128"
            assert settings["IPPrefixLen"] == 24
            bridge = json.loads(daemon.docker("network", "inspect", "bridge").stdout)[0]
            assert bridge["IPAM"]["Config"][0]["Subnet"] == "10.238.0.0/24"
            assert "10.238.0.1/24" in ns.run(["ip", "-o", "-4", "addr", "show", "sampan0"]).stdout
            daemon.docker("rm", "-f", "f1")
        finally:
            daemon.stop()
        bad = SampanDaemon(tmp_path_factory.mktemp("badbip"), netns=ns.path,
                           extra=("--bip", "10.238.0.0/33"))  # fmt: skip
        with pytest.raises(RuntimeError, match="--bip"):
            bad.start()
    finally:
        ns.close()


def test_an_existing_bridge_address_is_adopted(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A daemon with a new database and a sampan0 already there (a previous root, a
    reboot-surviving config) takes its subnet instead of adding a second one to it."""
    from tests.integration.daemon_fixtures import bootstrapped

    ns = TestNetns("adopt")
    try:
        ns.run(["ip", "link", "add", "sampan0", "type", "bridge"], check=True)
        ns.run(["ip", "addr", "add", "10.239.0.1/24", "dev", "sampan0"], check=True)
        daemon = bootstrapped(tmp_path_factory.mktemp("adopt"), netns=ns.path)
        try:
            bridge = json.loads(daemon.docker("network", "inspect", "bridge").stdout)[0]
            assert bridge["IPAM"]["Config"][0] == {
                "Subnet": "10.239.0.0/24",
                "Gateway": "10.239.0.1",
            }
            addrs = ns.run(["ip", "-o", "-4", "addr", "show", "sampan0"]).stdout
            assert addrs.count("inet ") == 1, addrs
        finally:
            daemon.stop()
    finally:
        ns.close()
