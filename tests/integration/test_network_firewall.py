"""The firewall on the real kernel, entirely inside network namespaces this module makes.

    outside (O)  eth0 10.250.0.2/24 ----- ext0 10.250.0.1/24   host (H)
                                          sampan0 172.31.0.1/16  (route_localnet=1)
                                            +-- vc1 ---- eth0 172.31.0.2  container c1
                                            +-- vc3 ---- eth0 172.31.0.3  container c3
                                          br-5a3f00000001 172.30.0.1/16
                                            +-- vc2 ---- eth0 172.30.0.2  container c2

c1, c2 and O run a TCP+UDP echo server on port 80 that answers "<name> <peer address>",
so each test sees which address a connection arrived from (masquerade, hairpin).  The
Firewall runs in H through ``ip netns exec`` (libnftables acts on the namespace of the
process that opens it); the host's own namespace and rules are never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan.network.firewall import NetRule, PortRule

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python")
if not Path(PYTHON).exists():
    PYTHON = sys.executable

BR1, BR2 = "sampan0", "br-5a3f00000001"
NET1 = NetRule(BR1, "172.31.0.0/16")
NET2 = NetRule(BR2, "172.30.0.0/16")
C1, C3, C2, OUT = "172.31.0.2", "172.31.0.3", "172.30.0.2", "10.250.0.2"
GW1, GW2, EXT = "172.31.0.1", "172.30.0.1", "10.250.0.1"
OWNER1 = "c1" + "0" * 62
OWNER2 = "c3" + "0" * 62

SERVER = r"""
import socket, sys, threading
name = sys.argv[1]
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", 80)); tcp.listen(64)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", 80))
def serve_udp():
    while True:
        _, peer = udp.recvfrom(100)
        udp.sendto(f"{name} {peer[0]}".encode(), peer)
threading.Thread(target=serve_udp, daemon=True).start()
print("ready", flush=True)
while True:
    conn, peer = tcp.accept()
    conn.sendall(f"{name} {peer[0]}".encode()); conn.close()
"""

CLIENT = r"""
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind); s.settimeout(1.0)
try:
    s.connect((host, port))
    if proto == "udp":
        s.send(b"hi")
    print(s.recv(100).decode())
except ConnectionRefusedError:
    print("refused")
except (TimeoutError, socket.timeout):
    print("timeout")
"""


def run(*args: str, check: bool = True) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


class Topology:
    def __init__(self, tmp: Path) -> None:
        pid = os.getpid()
        self.ns = {k: f"sfw{pid}{k}" for k in ("h", "c1", "c2", "c3", "o")}
        self.tmp = tmp
        (tmp / "server.py").write_text(SERVER)
        (tmp / "client.py").write_text(CLIENT)
        self.servers: list[subprocess.Popen[str]] = []

    def ip(self, ns: str, *args: str) -> None:
        run("ip", "-n", self.ns[ns], *args)

    def sysctl(self, ns: str, key: str, value: str) -> None:
        path = "/proc/sys/" + key.replace(".", "/")
        run("ip", "netns", "exec", self.ns[ns], "sh", "-c", f"echo {value} > {path}")

    def build(self) -> None:
        for name in self.ns.values():
            run("ip", "netns", "add", name)
            run("ip", "-n", name, "link", "set", "lo", "up")
        self.sysctl("h", "net.ipv4.ip_forward", "1")
        for br, gw in ((BR1, GW1), (BR2, GW2)):
            self.ip("h", "link", "add", br, "type", "bridge")
            self.ip("h", "addr", "add", f"{gw}/16", "dev", br)
            self.ip("h", "link", "set", br, "up")
        # What the engine does for the default bridge: DNAT of 127.0.0.1 needs it.
        self.sysctl("h", f"net.ipv4.conf.{BR1}.route_localnet", "1")
        for ns, veth, br, addr, gw in (
            ("c1", "vc1", BR1, C1, GW1),
            ("c3", "vc3", BR1, C3, GW1),
            ("c2", "vc2", BR2, C2, GW2),
        ):
            self.ip("h", "link", "add", veth, "type", "veth", "peer", "eth0", "netns", self.ns[ns])
            self.ip("h", "link", "set", veth, "master", br, "up")
            # What the engine does for every port: with br_netfilter loaded, a packet
            # DNAT'd back to the container it came from leaves by its ingress port.
            self.ip("h", "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
            self.ip(ns, "addr", "add", f"{addr}/16", "dev", "eth0")
            self.ip(ns, "link", "set", "eth0", "up")
            self.ip(ns, "route", "add", "default", "via", gw)
        self.ip("h", "link", "add", "ext0", "type", "veth", "peer", "eth0", "netns", self.ns["o"])
        self.ip("h", "addr", "add", f"{EXT}/24", "dev", "ext0")
        self.ip("h", "link", "set", "ext0", "up")
        self.ip("o", "addr", "add", f"{OUT}/24", "dev", "eth0")
        self.ip("o", "link", "set", "eth0", "up")
        for ns, name in (("c1", "c1"), ("c2", "c2"), ("o", "out")):
            self.server(ns, name)

    def server(self, ns: str, name: str) -> None:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[ns], PYTHON, str(self.tmp / "server.py"), name],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.servers.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def close(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        for name in self.ns.values():
            run("ip", "netns", "del", name, check=False)

    def fw(self, code: str) -> str:
        """CODE run in the host namespace with ``fw``, a Firewall, and the model in scope."""
        prelude = "from sampan.network.firewall import *\nfw = Firewall()\n"
        return run(
            "ip", "netns", "exec", self.ns["h"], PYTHON, "-c", prelude + code,
        )  # fmt: skip

    def nft(self, *args: str) -> str:
        return run("ip", "netns", "exec", self.ns["h"], "nft", *args)

    def connect(self, ns: str, host: str, port: int, proto: str = "tcp") -> str:
        script = str(self.tmp / "client.py")
        out = run("ip", "netns", "exec", self.ns[ns], PYTHON, script, proto, host, str(port))
        return out.strip()


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    t = Topology(tmp_path_factory.mktemp("firewall"))
    try:
        t.build()
        yield t
    finally:
        t.close()


@pytest.fixture
def net(topo: Topology) -> Topology:
    """The topology with our table removed (each test starts from nothing)."""
    topo.fw("fw.remove_all()")
    topo.ip("o", "route", "flush", "172.31.0.0/16")
    return topo


def rules_py(*rules: PortRule) -> str:
    return "[" + ", ".join(repr(r) for r in rules) + "]"


def port(owner: str, host_port: int, proto: str = "tcp", host_ip: str = "") -> PortRule:
    return PortRule(owner, proto, host_ip, host_port, C1, 80, BR1)


def test_published_port_answers_on_every_local_address(net: Topology) -> None:
    assert net.connect("h", "127.0.0.1", 8080) == "refused"  # nothing before publishing
    net.fw(f"fw.set_network({NET1!r})\nfw.publish({rules_py(port(OWNER1, 8080))})")
    net.fw(f"fw.publish({rules_py(port(OWNER1, 8080), port(OWNER1, 8080, 'udp'))})")
    # localhost: masqueraded out of the bridge, so c1 sees the gateway's address
    assert net.connect("h", "127.0.0.1", 8080) == f"c1 {GW1}"
    assert net.connect("h", "127.0.0.1", 8080, "udp") == f"c1 {GW1}"
    assert net.connect("h", GW1, 8080) == f"c1 {GW1}"
    assert net.connect("h", EXT, 8080) == f"c1 {EXT}"
    assert net.connect("h", EXT, 8080, "udp") == f"c1 {EXT}"
    # another host: DNAT in prerouting, its address kept
    assert net.connect("o", EXT, 8080) == f"c1 {OUT}"
    assert net.connect("o", EXT, 8080, "udp") == f"c1 {OUT}"


def test_hairpin_from_the_container_itself_and_its_neighbour(net: Topology) -> None:
    net.fw(f"fw.set_network({NET1!r})\nfw.publish({rules_py(port(OWNER1, 8080))})")
    assert net.connect("c1", GW1, 8080) == f"c1 {GW1}"
    assert net.connect("c1", EXT, 8080) == f"c1 {GW1}"
    assert net.connect("c3", GW1, 8080) == f"c1 {GW1}"
    assert net.connect("c3", EXT, 8080, "udp") == "refused"  # only tcp was published


def test_host_ip_restricts_the_destination(net: Topology) -> None:
    net.fw(f"fw.set_network({NET1!r})\nfw.publish({rules_py(port(OWNER1, 8081, host_ip=EXT))})")
    assert net.connect("h", EXT, 8081) == f"c1 {EXT}"
    assert net.connect("o", EXT, 8081) == f"c1 {OUT}"
    assert net.connect("h", "127.0.0.1", 8081) == "refused"
    assert net.connect("h", GW1, 8081) == "refused"
    assert net.fw("print(fw.published())").strip() == repr([port(OWNER1, 8081, host_ip=EXT)])


def test_unpublish_removes_exactly_one_owner(net: Topology) -> None:
    mine = [port(OWNER1, 8080), port(OWNER1, 8080, "udp")]
    theirs = [PortRule(OWNER2, "tcp", "", 8082, C1, 80, BR1)]
    net.fw(f"fw.set_network({NET1!r})\nfw.publish({rules_py(*mine)})")
    net.fw(f"fw.publish({rules_py(*theirs)})")
    assert net.connect("o", EXT, 8080) == f"c1 {OUT}"
    net.fw(f"fw.unpublish({OWNER1!r})\nfw.unpublish({OWNER1!r})")  # idempotent
    assert net.connect("h", "127.0.0.1", 8080) == "refused"
    assert net.connect("o", EXT, 8080) == "refused"
    assert net.connect("h", "127.0.0.1", 8080, "udp") in ("refused", "timeout")
    assert net.connect("h", "127.0.0.1", 8082) == f"c1 {GW1}"
    assert net.fw("print(fw.published())").strip() == repr(theirs)
    net.fw(f"fw.unpublish({'never-published'!r})")


def test_masquerade_of_traffic_leaving_the_network(net: Topology) -> None:
    # The outside world can route back to the subnet: without masquerade it sees c1 itself.
    net.ip("o", "route", "add", "172.31.0.0/16", "via", EXT)
    net.fw(f"fw.set_network({NetRule(BR1, NET1.subnet, masquerade=False)!r})")
    assert net.connect("c1", OUT, 80) == f"out {C1}"
    net.fw(f"fw.set_network({NET1!r})")  # replaced
    assert net.connect("c1", OUT, 80) == f"out {EXT}"
    assert net.connect("c1", OUT, 80, "udp") == f"out {EXT}"
    assert net.fw("print(fw.networks())").strip() == repr([NET1])


def test_bridges_are_isolated_from_each_other(net: Topology) -> None:
    assert net.connect("c1", C2, 80) == f"c2 {C1}"  # plain routing, before our rules
    net.fw(f"fw.set_network({NET1!r})\nfw.set_network({NET2!r})")
    assert net.connect("c1", C2, 80) == "timeout"
    assert net.connect("c2", C1, 80) == "timeout"
    assert net.connect("c1", OUT, 80) == f"out {EXT}"
    assert net.connect("c2", OUT, 80) == f"out {EXT}"
    # A published port is published to other networks too (as to other hosts).
    net.fw(f"fw.publish({rules_py(port(OWNER1, 8080))})")
    assert net.connect("c2", GW2, 8080) == f"c1 {GW1}"
    net.fw(f"fw.remove_network({BR2!r})\nfw.remove_network({BR2!r})")
    assert net.connect("c1", C2, 80) == f"c2 {GW2}"  # no longer dropped; masqueraded


def test_internal_network_forwards_nothing_in_or_out(net: Topology) -> None:
    internal = NetRule(BR2, NET2.subnet, internal=True)
    net.fw(f"fw.set_network({NET1!r})\nfw.set_network({internal!r})")
    assert net.connect("c2", OUT, 80) == "timeout"
    assert net.connect("c2", C1, 80) == "timeout"
    assert net.connect("c1", C2, 80) == "timeout"
    assert net.connect("h", C2, 80) == f"c2 {GW2}"  # the host itself is not forwarded
    net.fw(f"fw.set_network({NET2!r})")
    assert net.connect("c2", OUT, 80) == f"out {EXT}"


def test_icc_false_drops_traffic_within_the_bridge(net: Topology) -> None:
    calls = net.fw("print(open('/proc/sys/net/bridge/bridge-nf-call-iptables').read())")
    if calls.strip() != "1":
        pytest.skip("bridged traffic reaches the forward hook only with br_netfilter")
    assert net.connect("c1", C3, 80) == "refused"  # c3 answers (no server: a reset)
    net.fw(f"fw.set_network({NetRule(BR1, NET1.subnet, icc=False)!r})")
    assert net.connect("c1", C3, 80) == "timeout"
    net.fw(f"fw.publish({rules_py(port(OWNER1, 8080))})")
    assert net.connect("c3", GW1, 8080) == f"c1 {GW1}"  # published ports stay reachable
    net.fw(f"fw.set_network({NET1!r})")
    assert net.connect("c1", C3, 80) == "refused"


def test_reconcile_leaves_exactly_the_wanted_rules(net: Topology) -> None:
    # Someone else's table (netavark's, say) in the same namespace.
    net.nft("add table ip nat")
    net.nft("add chain ip nat POSTROUTING { type nat hook postrouting priority srcnat; }")
    net.nft("add rule ip nat POSTROUTING ip saddr 10.88.0.0/16 masquerade")
    foreign = net.nft("list table ip nat")
    ghost = PortRule("ghost", "tcp", "", 9090, C1, 80, BR1)
    net.fw(
        f"fw.set_network({NET1!r})\nfw.set_network({NET2!r})\n"
        f"fw.publish({rules_py(port(OWNER1, 8080), ghost)})"
    )
    assert net.connect("h", "127.0.0.1", 9090) == f"c1 {GW1}"
    wanted = [port(OWNER1, 8080), port(OWNER1, 8080, "udp")]
    for _ in range(2):
        net.fw(f"fw.reconcile([{NET1!r}], {rules_py(*wanted, wanted[0])})")
    assert net.fw("print(fw.published())").strip() == repr(wanted)
    assert net.fw("print(fw.networks())").strip() == repr([NET1])
    listing = net.nft("list", "table", "ip", "sampan")
    chains = [line.split()[1] for line in listing.splitlines() if line.strip().startswith("chain")]
    assert sorted(chains) == sorted(
        ["published", "prerouting", "output", f"n-{BR1}", f"f-{BR1}", f"i-{BR1}"]
    )
    assert listing.count(f'comment "{OWNER1} {BR1}"') == 2, listing  # no duplicate
    assert "ghost" not in listing and BR2 not in listing
    assert listing.count("jump published") == 2 and listing.count("dnat ip to") == 2
    assert net.connect("h", "127.0.0.1", 9090) == "refused"
    assert net.connect("h", "127.0.0.1", 8080) == f"c1 {GW1}"
    assert net.connect("c1", C2, 80) == f"c2 {GW2}"  # BR2 no longer isolated
    before = net.nft("list", "table", "ip", "sampan")
    net.fw("fw.ensure()")
    assert net.nft("list", "table", "ip", "sampan") == before  # ensure changes nothing
    net.fw("fw.remove_all()\nfw.remove_all()")
    assert net.fw("print(fw.published(), fw.networks())").strip() == "[] []"
    assert net.nft("list", "table", "ip", "nat") == foreign
    net.nft("delete table ip nat")


def test_publish_is_all_or_nothing(net: Topology) -> None:
    net.fw(f"fw.set_network({NET1!r})")
    out = net.fw(
        "from sampan.network.nftables import NftError\n"
        "from sampan.errors import Conflict\n"
        "def attempt(call):\n"
        "    try:\n"
        "        call()\n"
        "    except (NftError, Conflict) as exc:\n"
        "        print(type(exc).__name__, exc)\n"
        "    print(fw.published())\n"
        f"script = render_publish({{{OWNER1!r}: {rules_py(port(OWNER1, 8080))}}})\n"
        "attempt(lambda: fw.nft.run(script + 'add rule ip sampan no-such-chain drop\\n'))\n"
        f"clash = {rules_py(port(OWNER1, 8083), port(OWNER2, 8083, host_ip=EXT))}\n"
        "attempt(lambda: fw.publish(clash))\n"
        f"fw.publish({rules_py(port(OWNER1, 8084))})\n"
        f"attempt(lambda: fw.publish({rules_py(port(OWNER2, 8084, host_ip=EXT))}))\n"
        "# the kernel itself refuses a key published twice\n"
        f"again = {{{OWNER2!r}: {rules_py(PortRule(OWNER2, 'tcp', '', 8084, C3, 80, BR1))}}}\n"
        "attempt(lambda: fw.nft.run(render_publish(again, skeleton=False)))\n"
    )
    lines = out.splitlines()
    assert lines[0].startswith("NftError") and "(in: add rule ip sampan no-such-chain" in lines[0]
    assert lines[1] == "[]"
    assert lines[2].startswith("Conflict host_port: tcp 10.250.0.1:8083 is published twice")
    assert lines[3] == "[]"
    assert lines[4] == f"Conflict host_port: tcp {EXT}:8084 is already published by {OWNER1}"
    assert lines[5] == repr([port(OWNER1, 8084)])
    assert lines[6].startswith("NftError") and "File exists" in lines[6]
    assert lines[7] == repr([port(OWNER1, 8084)])
    assert net.connect("h", "127.0.0.1", 8080) == "refused"
    assert net.connect("h", "127.0.0.1", 8084) == f"c1 {GW1}"


def test_a_second_table_and_a_stale_firewall(net: Topology) -> None:
    """Two daemons' tables side by side; a Firewall whose table was deleted under it
    recovers on its next call."""
    out = net.fw(
        "other = Firewall(table='sampan_test')\n"
        f"other.set_network({NET1!r})\n"
        f"other.publish({rules_py(port(OWNER2, 8090))})\n"
        f"fw.set_network({NET1!r})\n"
        f"fw.publish({rules_py(port(OWNER1, 8080))})\n"
        "Firewall().remove_all()  # another instance deletes our table\n"
        f"fw.unpublish({OWNER1!r})  # stale index: retried after reading the kernel\n"
        f"fw.publish({rules_py(port(OWNER1, 8081))})  # the retry rebuilds the skeleton\n"
        "print(fw.published(), other.published())\n"
    )
    assert out.strip() == f"{[port(OWNER1, 8081)]!r} {[port(OWNER2, 8090)]!r}"
    assert net.connect("h", EXT, 8081) == f"c1 {EXT}"
    assert net.connect("h", EXT, 8090) == f"c1 {EXT}"
    net.fw("Firewall(table='sampan_test').remove_all()")
    assert net.connect("h", EXT, 8090) == "refused"


def test_timings(net: Topology) -> None:
    """Not asserted (benchmarks are not timed tests): printed for the report (-s)."""
    out = net.fw(
        "import time\n"
        "t = time.perf_counter(); fw.ensure(); cold = time.perf_counter() - t\n"
        "t = time.perf_counter(); fw.ensure(); warm = time.perf_counter() - t\n"
        f"fw.set_network({NET1!r})\n"
        "def pub(owner, p):\n"
        f"    return [PortRule(owner, 'tcp', '', p, {C1!r}, 80, {BR1!r})]\n"
        "fw.publish([r for i in range(100) for r in pub(f'filler{i}', 20000 + i)])\n"
        "p, u = [], []\n"
        "for i in range(50):\n"
        "    t = time.perf_counter(); fw.publish(pub('timed', 8080))\n"
        "    p.append(time.perf_counter() - t)\n"
        "    t = time.perf_counter(); fw.unpublish('timed')\n"
        "    u.append(time.perf_counter() - t)\n"
        "p.sort(); u.sort()\n"
        "print(f'ensure: first {cold*1e3:.2f} ms (loads libnftables), then {warm*1e3:.2f} ms; '\n"
        "      f'with 100 containers published: publish 1 port {p[25]*1e3:.2f} ms, '\n"
        "      f'unpublish {u[25]*1e3:.2f} ms (medians)')\n"
    )
    print(out)
    assert "publish 1 port" in out
