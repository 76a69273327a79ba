"""The network commands against a real daemon: the docker CLI, sampan's own CLI (whose
output must be docker's, byte for byte, on the same daemon) and docker-py -- create, ls,
inspect, rm, prune, connect, disconnect, run's network flags, and bad input.

The daemon runs in a network namespace of its own (TestNetns), so its bridges and rules
never touch the host's; the containers only sleep (no traffic is sent).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.integration.daemon_fixtures import (
    REPO,
    SampanDaemon,
    TestNetns,
    needs_docker_cli,
    network_daemon,
)

pytestmark = [pytest.mark.root, needs_docker_cli]

net_env = network_daemon("netcli")


def _sampan(daemon: SampanDaemon, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sampan.cli", "-H", daemon.host, *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=REPO,
        timeout=60,
    )


def _network(daemon: SampanDaemon, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(daemon.docker("network", "inspect", name).stdout)[0]
    return doc


def _names(daemon: SampanDaemon) -> list[str]:
    return daemon.docker("network", "ls", "--format", "{{.Name}}").stdout.split()


def test_create_ls_inspect_rm_with_the_docker_cli(
    net_env: tuple[SampanDaemon, TestNetns],
) -> None:
    daemon, _ = net_env
    made = daemon.docker("network", "create", "--subnet", "10.120.0.0/24", "--gateway",
                         "10.120.0.254", "--ip-range", "10.120.0.128/25", "--internal",
                         "--attachable", "--label", "team=blue", "-o",
                         "com.docker.network.driver.mtu=1400", "cli-a")  # fmt: skip
    created = made.stdout.strip()
    assert len(created) == 64 and all(c in "0123456789abcdef" for c in created)
    doc = _network(daemon, "cli-a")
    assert (doc["Name"], doc["Id"], doc["Driver"], doc["Scope"]) == (
        "cli-a", created, "bridge", "local")  # fmt: skip
    assert doc["IPAM"]["Config"] == [
        {"Subnet": "10.120.0.0/24", "Gateway": "10.120.0.254", "IPRange": "10.120.0.128/25"}
    ]
    assert doc["Internal"] is True and doc["Attachable"] is True
    assert doc["Labels"] == {"team": "blue"}
    assert doc["Options"] == {"com.docker.network.driver.mtu": "1400"}
    assert _network(daemon, created[:12])["Name"] == "cli-a"  # by a short id too
    assert {"bridge", "host", "none", "cli-a"} <= set(_names(daemon))
    table = daemon.docker("network", "ls", "--filter", "label=team=blue").stdout.splitlines()
    assert table[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert table[1].split() == [created[:12], "cli-a", "bridge", "local"] and len(table) == 2
    quiet = daemon.docker("network", "ls", "-q", "--no-trunc", "--filter", "name=cli-a").stdout
    assert quiet.split() == [created]
    fmt = daemon.docker("network", "ls", "--filter", "driver=bridge", "--filter", "type=custom",
                        "--format", "{{.Name}} {{.Internal}} {{.Labels}}").stdout  # fmt: skip
    assert "cli-a true team=blue" in fmt.splitlines()
    assert "bridge" not in fmt.split()  # builtin
    again = daemon.docker("network", "create", "cli-a", check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    removed = daemon.docker("network", "rm", "cli-a", "nosuch-net", check=False)
    assert removed.returncode == 1 and removed.stdout == "cli-a\n"
    assert "nosuch-net" in removed.stderr and "not found" in removed.stderr
    assert "cli-a" not in _names(daemon)
    missing = daemon.docker("network", "inspect", "cli-a", check=False)
    assert missing.returncode == 1 and missing.stdout.strip() == "[]"
    builtin = daemon.docker("network", "rm", "bridge", check=False)
    assert builtin.returncode == 1 and "pre-defined" in builtin.stderr


def test_sampan_cli_prints_what_docker_prints(net_env: tuple[SampanDaemon, TestNetns]) -> None:
    daemon, _ = net_env
    made = _sampan(daemon, "network", "create", "--subnet", "10.121.0.0/24", "--label", "k=v",
                   "same-out")  # fmt: skip
    assert made.returncode == 0, made.stderr
    nid = made.stdout.strip()
    assert _network(daemon, "same-out")["Id"] == nid
    for args in (["ls"], ["ls", "--no-trunc"], ["ls", "-q"], ["ls", "--filter", "label=k=v"],
                 ["ls", "--format", "{{.ID}} {{.Name}} {{.IPv6}} {{.Internal}} {{.Labels}}"],
                 ["ls", "--format", "json"], ["inspect", "same-out", "bridge"],
                 ["inspect", "-f", "{{.Name}} {{range .IPAM.Config}}{{.Subnet}}{{end}}",
                  "same-out"]):  # fmt: skip
        ours = _sampan(daemon, "network", *args)
        theirs = daemon.docker("network", *args)
        assert (ours.returncode, ours.stdout) == (0, theirs.stdout), args
    ours = _sampan(daemon, "network", "inspect", "same-out", "nosuch-net")
    theirs = daemon.docker("network", "inspect", "same-out", "nosuch-net", check=False)
    assert theirs.returncode == 1
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)
    assert ours.stderr.strip() == theirs.stderr.strip()
    ours = _sampan(daemon, "network", "rm", "same-out", "nosuch-net")
    assert (ours.returncode, ours.stdout) == (1, "same-out\n")
    assert "Error response from daemon: network nosuch-net not found" in ours.stderr
    assert _sampan(daemon, "network", "rm", "-f", "nosuch-net").returncode == 0


def test_connect_disconnect_and_prune(net_env: tuple[SampanDaemon, TestNetns]) -> None:
    daemon, _ = net_env
    daemon.docker("network", "create", "--subnet", "10.122.0.0/24", "used-net")
    daemon.docker("network", "create", "--label", "drop=yes", "idle-a")
    daemon.docker("network", "create", "idle-b")
    daemon.docker("run", "-d", "--name", "pc1", "busybox", "sleep", "300")
    out = _sampan(daemon, "network", "connect", "--ip", "10.122.0.9", "--alias", "web",
                  "used-net", "pc1")  # fmt: skip
    assert (out.returncode, out.stdout, out.stderr) == (0, "", ""), daemon.log()[-3000:]
    inspected = json.loads(daemon.docker("inspect", "pc1").stdout)[0]
    endpoint = inspected["NetworkSettings"]["Networks"]["used-net"]
    assert endpoint["IPAddress"] == "10.122.0.9" and "web" in endpoint["Aliases"]
    members = _network(daemon, "used-net")["Containers"]
    assert [m["IPv4Address"] for m in members.values()] == ["10.122.0.9/24"]
    twice = _sampan(daemon, "network", "connect", "used-net", "pc1")
    assert twice.returncode == 1 and twice.stderr.startswith("Error response from daemon: ")
    ghost = _sampan(daemon, "network", "connect", "used-net", "no-such-container")
    assert ghost.returncode == 1 and "no-such-container" in ghost.stderr
    # prune: the label filter first, then everything no container uses
    pruned = _sampan(daemon, "network", "prune", "-f", "--filter", "label=drop=yes")
    assert pruned.stdout == "Deleted Networks:\nidle-a\n\n"
    declined = _sampan(daemon, "network", "prune", stdin="n\n")
    assert declined.returncode == 0 and "idle-b" in _names(daemon)
    pruned = daemon.docker("network", "prune", "-f")
    assert pruned.stdout == "Deleted Networks:\nidle-b\n\n"
    assert "used-net" in _names(daemon)  # pc1 is on it
    busy = daemon.docker("network", "rm", "used-net", check=False)
    assert busy.returncode == 1 and "active endpoints" in busy.stderr
    out = _sampan(daemon, "network", "disconnect", "used-net", "pc1")
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    networks = json.loads(daemon.docker("inspect", "pc1").stdout)[0]["NetworkSettings"]
    assert set(networks["Networks"]) == {"bridge"}
    daemon.docker("rm", "-f", "pc1")
    assert daemon.docker("network", "prune", "-f").stdout == "Deleted Networks:\nused-net\n\n"


def test_sampan_run_flags_reach_the_container(net_env: tuple[SampanDaemon, TestNetns]) -> None:
    daemon, _ = net_env
    daemon.docker("network", "create", "--subnet", "10.123.0.0/24", "flags-net")
    out = _sampan(daemon, "run", "-d", "--name", "flagged", "--network", "flags-net",
                  "--ip", "10.123.0.77", "--network-alias", "svc", "--dns-search", "example.test",
                  "--dns-option", "ndots:2", "--add-host", "db.local:10.123.0.200",
                  "-p", "127.0.0.1:18080:80", "busybox",
                  "sleep", "300")  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(daemon.docker("inspect", "flagged").stdout)[0]
    host = doc["HostConfig"]
    assert host["NetworkMode"] == "flags-net"
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}]}
    assert host["ExtraHosts"] == ["db.local:10.123.0.200"]
    endpoint = doc["NetworkSettings"]["Networks"]["flags-net"]
    assert endpoint["IPAddress"] == "10.123.0.77" and "svc" in endpoint["Aliases"]
    ports = doc["NetworkSettings"]["Ports"]
    assert ports["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "18080"}]
    files = daemon.docker("exec", "flagged", "cat", "/etc/hosts", "/etc/resolv.conf").stdout
    assert "10.123.0.200\tdb.local" in files
    assert "search example.test" in files and "options ndots:2" in files
    assert "10.123.0.77" in daemon.docker("exec", "flagged", "ip", "-o", "-4", "addr").stdout
    daemon.docker("rm", "-f", "flagged")
    daemon.docker("network", "rm", "flags-net")


def test_expose_and_publish_all(net_env: tuple[SampanDaemon, TestNetns]) -> None:
    daemon, _ = net_env
    out = _sampan(daemon, "run", "-d", "--name", "exposed", "-P", "--expose", "9000",
                  "-p", "127.0.0.1::80", "busybox", "sleep", "300")  # fmt: skip
    assert out.returncode == 0, out.stderr
    try:
        doc = json.loads(daemon.docker("inspect", "exposed").stdout)[0]
        assert set(doc["Config"]["ExposedPorts"]) == {"80/tcp", "9000/tcp"}
        ports = doc["NetworkSettings"]["Ports"]
        assert ports["9000/tcp"] and ports["9000/tcp"][0]["HostPort"].isdigit()
        assert ports["80/tcp"][0]["HostIp"] == "127.0.0.1"
    finally:
        daemon.docker("rm", "-f", "exposed")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--ip", "10.0.0.9", "busybox", "true"],
         "user specified IP address is supported on user defined networks only"),
        (["run", "--network-alias", "x", "busybox", "true"],
         "network-scoped aliases are only supported for user-defined networks"),
        (["create", "-p", "80/foo", "busybox"], "invalid proto: foo"),
        (["run", "--dns", "nope", "busybox", "true"], "IP address is not correctly formatted"),
        (["run", "--network", "no-such-net", "busybox", "true"], "not found"),
    ],
)  # fmt: skip
def test_sampan_run_refuses_bad_network_flags(
    net_env: tuple[SampanDaemon, TestNetns], args: list[str], message: str
) -> None:
    daemon, _ = net_env
    before = daemon.docker("ps", "-aq").stdout.split()
    out = _sampan(daemon, *args)
    assert out.returncode == 125 and message in out.stderr, out.stderr
    if "no-such-net" not in args:
        assert daemon.docker("ps", "-aq").stdout.split() == before  # nothing was asked


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "macvlan", "x"], "macvlan"),
        (["--ipv6", "x"], "IPv6"),
        (["--subnet", "10.300.0.0/24", "x"], "10.300.0.0"),
        (["a b"], "invalid network name"),
        (["-o", "com.example.nope=1", "x"], "com.example.nope"),
    ],
)
def test_bad_creates_are_refused_by_both_clients(
    net_env: tuple[SampanDaemon, TestNetns], args: list[str], message: str
) -> None:
    daemon, _ = net_env
    theirs = daemon.docker("network", "create", *args, check=False)
    assert theirs.returncode == 1 and message in theirs.stderr, theirs.stderr
    ours = _sampan(daemon, "network", "create", *args)
    assert ours.returncode == 1 and message in ours.stderr, ours.stderr
    assert "x" not in _names(daemon) and "a b" not in _names(daemon)


def test_docker_py_network_calls(net_env: tuple[SampanDaemon, TestNetns]) -> None:
    docker = pytest.importorskip("docker")
    daemon, _ = net_env
    client = docker.DockerClient(base_url=daemon.host, version="1.41")
    try:
        ipam = docker.types.IPAMConfig(pool_configs=[
            docker.types.IPAMPool(subnet="10.124.0.0/24", gateway="10.124.0.1")])  # fmt: skip
        net = client.networks.create("py-net", driver="bridge", ipam=ipam, labels={"by": "py"})
        assert net.name == "py-net" and net.attrs["IPAM"]["Config"][0]["Gateway"] == "10.124.0.1"
        assert [n.name for n in client.networks.list(names=["py-net"])] == ["py-net"]
        assert client.networks.list(filters={"label": "by=py"})[0].id == net.id
        container = client.containers.run("busybox", ["sleep", "300"], detach=True,
                                          name="py-c")  # fmt: skip
        net.connect(container, aliases=["pyweb"], ipv4_address="10.124.0.33")
        net.reload()
        assert [c.name for c in net.containers] == ["py-c"]
        container.reload()
        endpoint = container.attrs["NetworkSettings"]["Networks"]["py-net"]
        assert endpoint["IPAddress"] == "10.124.0.33" and "pyweb" in endpoint["Aliases"]
        with pytest.raises(docker.errors.APIError):
            net.remove()  # in use
        net.disconnect(container, force=True)
        container.remove(force=True)
        with pytest.raises(docker.errors.APIError) as bad:
            client.api.create_network("py-bad", driver="bridge",
                                      options={"com.docker.network.driver.mtu": 1400})  # fmt: skip
        assert bad.value.status_code == 400 and "Options" in str(bad.value)
        with pytest.raises(docker.errors.NotFound):
            client.networks.get("py-missing")
        assert client.networks.prune() == {"NetworksDeleted": ["py-net"]}
    finally:
        client.close()
