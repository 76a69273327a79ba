"""sampan.network.netlink and netns on the real kernel (root only).

Every link, address and route is made inside network namespaces these tests create under
their tmp dir -- never in the host's namespace.  A "host" namespace stands in for the
daemon's (it holds the bridge), a "container" namespace gets the veth peer, and traffic
goes only between the two.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sampan.errors import AlreadyExists, InvalidArgument
from sampan.linux import syscalls
from sampan.linux.errors import SyscallError
from sampan.network import netns
from sampan.network.netlink import Netlink, NetlinkError

IS_ROOT = os.geteuid() == 0
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not IS_ROOT, reason="needs root to make network namespaces"),
]
TAG = os.getpid() % 100000
BRIDGE = f"br{TAG}"
VETH = f"vs{TAG}a"


def thread_netns() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


@pytest.fixture
def make_ns(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """make_ns(name) -> the path of a new namespace under tmp; all removed at teardown."""
    made: list[str] = []

    def make(name: str) -> str:
        path = str(tmp_path / "netns" / name)
        netns.create(path)
        made.append(path)
        return path

    yield make
    for path in made:
        netns.remove(path)


@pytest.fixture
def pair(make_ns: Callable[[str], str]) -> Iterator[tuple[str, str, Netlink, Netlink]]:
    """(host ns, container ns, a Netlink in each)."""
    host, ctr = make_ns("host"), make_ns("ctr")
    with Netlink(netns=host) as hnl, Netlink(netns=ctr) as cnl:
        yield host, ctr, hnl, cnl


def wire(host: str, ctr: str, hnl: Netlink, cnl: Netlink) -> tuple[int, int, int]:
    """Bridge 10.77.0.1/24 in HOST, a veth into CTR (eth0, 10.77.0.2/24, default route via
    the bridge); returns (bridge, host end, eth0) indexes."""
    br = hnl.add_bridge(BRIDGE)
    hnl.add_address(br, "10.77.0.1", 24)
    hnl.set_up(br)
    fd = netns.open_fd(ctr)
    try:
        host_end = hnl.add_veth(VETH, "eth0", fd, master=br, peer_mac="02:42:0a:4d:00:02")
    finally:
        os.close(fd)
    hnl.set_up(host_end)
    eth0 = cnl.link_index("eth0")
    assert eth0 is not None
    cnl.add_address(eth0, "10.77.0.2", 24)
    cnl.set_up(eth0)
    cnl.add_route("10.77.0.1", eth0)
    return br, host_end, eth0


def talk(server_ns: str, server_ip: str, client_ns: str) -> bytes:
    """A TCP exchange: a server in SERVER_NS on SERVER_IP, a client made in CLIENT_NS."""
    server = netns.run_in(server_ns, lambda: socket.create_server((server_ip, 0)))
    with server:
        port = server.getsockname()[1]
        client = netns.run_in(client_ns, lambda: socket.create_connection((server_ip, port), 5))
        with client:
            conn, peer = server.accept()
            with conn:
                client.sendall(b"ping")
                assert conn.recv(4) == b"ping"
                conn.sendall(peer[0].encode())
                return client.recv(64)


# -- namespaces -------------------------------------------------------------------------


def test_create_mounts_a_new_namespace_with_lo_up(tmp_path: Path) -> None:
    path = str(tmp_path / "deep" / "dir" / "ns1")
    before = thread_netns()
    netns.create(path)
    try:
        assert thread_netns() == before
        assert netns.is_netns(path) and mounted(path)
        assert os.stat(path).st_ino != before  # a namespace of its own
        assert os.stat(tmp_path / "deep" / "dir").st_mode & 0o777 == 0o755
        with Netlink(netns=path) as nl:
            (lo,) = nl.links()
            assert (lo.index, lo.name, lo.up) == (1, "lo", True)
            assert nl.addresses() == [(1, "127.0.0.1", 8)]
        # lo works: a TCP exchange on 127.0.0.1 inside
        assert talk(path, "127.0.0.1", path) == b"127.0.0.1"
    finally:
        netns.remove(path)
    assert not os.path.exists(path)


def test_the_file_is_0644_whatever_the_umask(tmp_path: Path) -> None:
    path = str(tmp_path / "ns")
    old = os.umask(0o077)
    try:
        netns.create(path)
    finally:
        os.umask(old)
    syscalls.umount(path, 2)  # MNT_DETACH: look at the file the mount covered
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert netns.is_netns(path) is False
    assert netns.remove(path) is True


def test_remove_is_idempotent_and_takes_leftover_files(tmp_path: Path) -> None:
    path = str(tmp_path / "ns")
    netns.create(path)
    assert netns.remove(path) is True
    assert not os.path.exists(path) and not mounted(path)
    assert netns.remove(path) is False
    assert netns.is_netns(path) is False
    Path(path).touch()  # an unmounted leftover of a crash
    assert netns.is_netns(path) is False
    assert netns.remove(path) is True
    assert not os.path.exists(path)


def test_create_on_an_existing_path_is_refused_and_leaves_it(tmp_path: Path) -> None:
    path = tmp_path / "ns"
    path.write_text("mine")
    with pytest.raises(AlreadyExists, match=r"network namespace .*/ns: already exists"):
        netns.create(str(path))
    assert path.read_text() == "mine" and not mounted(str(path))
    netns.create(str(tmp_path / "ns2"))
    try:
        with pytest.raises(AlreadyExists):
            netns.create(str(tmp_path / "ns2"))
        assert netns.is_netns(str(tmp_path / "ns2"))  # the first one untouched
    finally:
        netns.remove(str(tmp_path / "ns2"))


def test_a_failed_create_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "ns")

    def boom() -> None:
        raise RuntimeError("configuration failed")

    with pytest.raises(RuntimeError, match="configuration failed"):
        netns.create_with(path, boom)  # fails after the mount
    assert not os.path.exists(path) and not mounted(path)

    class BrokenNetlink:
        def __init__(self) -> None:
            raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(netns, "Netlink", BrokenNetlink)  # bringing lo up fails
    with pytest.raises(OSError, match="Too many open files"):
        netns.create(path)
    assert not os.path.exists(path) and not mounted(path)

    monkeypatch.undo()
    Path(path).touch()
    with pytest.raises(OSError) as err:  # the parent is a file: nothing can be made
        netns.create(str(Path(path) / "x"))
    assert err.value.errno in (errno.ENOTDIR, errno.EEXIST)
    assert Path(path).read_bytes() == b""


def test_the_callers_namespace_never_changes(make_ns: Callable[[str], str]) -> None:
    before = thread_netns()
    path = make_ns("a")
    assert thread_netns() == before
    inside = netns.run_in(path, thread_netns)
    assert inside == os.stat(path).st_ino != before
    assert thread_netns() == before
    with Netlink(netns=path) as nl:
        assert [link.name for link in nl.links()] == ["lo"]
    netns.sysctl("net/ipv4/ip_forward", "1", netns=path)
    other = str(Path(path).parent / "b")
    try:
        with netns.create_with(other, Netlink) as nl:  # a Netlink bound inside the new one
            assert [link.name for link in nl.links()] == ["lo"]
            assert thread_netns() == before
            nl.add_bridge(BRIDGE)
        with Netlink(netns=other) as nl:
            assert nl.link_index(BRIDGE) == 2
        with Netlink(netns=path) as nl:
            assert nl.link_index(BRIDGE) is None
    finally:
        netns.remove(other)
    assert thread_netns() == before

    def fail() -> None:
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        netns.run_in(path, fail)
    assert thread_netns() == before


def test_run_in_refuses_what_is_not_a_namespace(tmp_path: Path) -> None:
    with pytest.raises(SyscallError, match=r"open network namespace .*missing: No such file"):
        netns.run_in(str(tmp_path / "missing"), lambda: None)
    plain = tmp_path / "plain"
    plain.touch()
    with pytest.raises(SyscallError, match=r"setns .*plain: Invalid argument"):
        netns.run_in(str(plain), lambda: None)


def test_sysctl_writes_in_the_namespace_only(make_ns: Callable[[str], str]) -> None:
    path = make_ns("s")
    key = "net/ipv4/conf/lo/route_localnet"
    read = f"/proc/sys/{key}"
    with open(read) as f:
        ours = f.read()
    netns.sysctl(key, "1", netns=path)
    assert netns.run_in(path, lambda: Path(read).read_text()) == "1\n"
    with open(read) as f:
        assert f.read() == ours
    with pytest.raises(InvalidArgument):
        netns.sysctl("../../etc/passwd", "x", netns=path)
    with pytest.raises(InvalidArgument):
        netns.sysctl("/net/ipv4/ip_forward", "1", netns=path)
    with pytest.raises(SyscallError, match="sysctl net/ipv4/nosuch: No such file"):
        netns.sysctl("net/ipv4/nosuch", "1", netns=path)
    with pytest.raises(SyscallError, match="sysctl net/ipv4/ip_forward = x: Invalid argument"):
        netns.sysctl("net/ipv4/ip_forward", "x", netns=path)


def test_namespaces_made_from_many_threads(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    paths = [str(tmp_path / f"t{i}") for i in range(12)]

    def work(mine: list[str]) -> None:
        try:
            for path in mine:
                netns.create(path)
                assert netns.run_in(path, thread_netns) == os.stat(path).st_ino
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(paths[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert len({os.stat(p).st_ino for p in paths}) == 12
    finally:
        for path in paths:
            netns.remove(path)


# -- links, addresses, routes, traffic --------------------------------------------------


def test_bridge_veth_and_traffic_between_namespaces(
    pair: tuple[str, str, Netlink, Netlink],
) -> None:
    host, ctr, hnl, cnl = pair
    br, host_end, eth0 = wire(host, ctr, hnl, cnl)

    links = {link.name: link for link in hnl.links()}
    assert links[BRIDGE].kind == "bridge" and links[BRIDGE].index == br and links[BRIDGE].up
    assert links[VETH].kind == "veth" and links[VETH].master == br and links[VETH].up
    assert hnl.link_index(VETH) == host_end
    assert "eth0" not in links  # the peer was made in the other namespace directly
    peer = {link.name: link for link in cnl.links()}["eth0"]
    assert (peer.index, peer.kind, peer.mac, peer.up, peer.mtu) == (
        eth0,
        "veth",
        "02:42:0a:4d:00:02",
        True,
        1500,
    )
    assert hnl.link_index("eth0") is None

    assert hnl.addresses(br) == [(br, "10.77.0.1", 24)]
    assert cnl.addresses(eth0) == [(eth0, "10.77.0.2", 24)]
    assert (1, "127.0.0.1", 8) in cnl.addresses()
    assert sorted(cnl.routes()) == [("0.0.0.0", 0, "10.77.0.1", eth0), ("10.77.0.0", 24, "", eth0)]
    assert hnl.routes() == [("10.77.0.0", 24, "", br)]

    # on the subnet, both ways
    assert talk(ctr, "10.77.0.2", host) == b"10.77.0.1"
    assert talk(host, "10.77.0.1", ctr) == b"10.77.0.2"
    # off the subnet: only the default route leads there
    hnl.add_address(1, "10.99.0.1", 32)
    assert talk(host, "10.99.0.1", ctr) == b"10.77.0.2"


def test_configure_batches_address_up_and_route(pair: tuple[str, str, Netlink, Netlink]) -> None:
    host, ctr, hnl, cnl = pair
    br = hnl.add_bridge(BRIDGE)
    hnl.add_address(br, "10.78.0.1", 16)
    hnl.set_up(br)
    fd = netns.open_fd(ctr)
    try:
        host_end = hnl.add_veth(VETH, "eth1", fd, master=br, mtu=1400, up=True)
    finally:
        os.close(fd)
    host_link = next(link for link in hnl.links() if link.index == host_end)
    assert host_link.up and host_link.mtu == 1400 and host_link.master == br
    eth1 = cnl.link_index("eth1")
    assert eth1 is not None
    cnl.configure(eth1, "10.78.3.4", 16, "10.78.0.1")
    assert cnl.addresses(eth1) == [(eth1, "10.78.3.4", 16)]
    assert ("0.0.0.0", 0, "10.78.0.1", eth1) in cnl.routes()
    link = {x.name: x for x in cnl.links()}["eth1"]
    assert link.up and link.mtu == 1400
    assert talk(host, "10.78.0.1", ctr) == b"10.78.3.4"
    with pytest.raises(NetlinkError, match=r"add address 10\.78\.3\.4/16 on eth1: File exists"):
        cnl.configure(eth1, "10.78.3.4", 16, "10.78.0.1")


def test_master_mtu_and_address_removal(pair: tuple[str, str, Netlink, Netlink]) -> None:
    _host, ctr, hnl, _cnl = pair
    br = hnl.add_bridge(BRIDGE, mtu=1450)
    assert {x.name: x for x in hnl.links()}[BRIDGE].mtu == 1450
    assert {x.name: x for x in hnl.links()}[BRIDGE].up is False  # created down
    fd = netns.open_fd(ctr)
    try:
        host_end = hnl.add_veth(VETH, "eth0", fd)
    finally:
        os.close(fd)
    assert {x.name: x for x in hnl.links()}[VETH].master == 0
    hnl.set_master(host_end, br)
    assert {x.name: x for x in hnl.links()}[VETH].master == br
    hnl.set_master(host_end, 0)
    assert {x.name: x for x in hnl.links()}[VETH].master == 0
    hnl.set_up(host_end)
    hnl.set_up(host_end, False)
    assert {x.name: x for x in hnl.links()}[VETH].up is False

    hnl.add_address(br, "10.79.0.1", 24)
    hnl.add_address(br, "10.79.1.1", 31)
    assert sorted(hnl.addresses(br)) == [(br, "10.79.0.1", 24), (br, "10.79.1.1", 31)]
    hnl.del_address(br, "10.79.0.1", 24)
    assert hnl.addresses(br) == [(br, "10.79.1.1", 31)]
    with pytest.raises(NetlinkError) as err:
        hnl.del_address(br, "10.79.0.1", 24)
    assert err.value.errno == errno.EADDRNOTAVAIL
    assert str(err.value).startswith(f"delete address 10.79.0.1/24 on {BRIDGE}: ")


def test_delete_link_takes_the_peer_along(pair: tuple[str, str, Netlink, Netlink]) -> None:
    host, ctr, hnl, cnl = pair
    wire(host, ctr, hnl, cnl)
    assert hnl.delete_link(VETH) is True
    assert hnl.link_index(VETH) is None
    assert cnl.link_index("eth0") is None
    assert hnl.delete_link(VETH) is False
    assert hnl.delete_link(BRIDGE) is True
    assert [x.name for x in hnl.links()] == ["lo"]


def test_removing_the_namespace_destroys_its_veth(
    pair: tuple[str, str, Netlink, Netlink],
) -> None:
    host, ctr, hnl, cnl = pair
    wire(host, ctr, hnl, cnl)
    cnl.close()  # the last reference to the namespace but the mount
    netns.remove(ctr)
    for _ in range(400):  # the kernel tears the namespace down in a worker
        if hnl.link_index(VETH) is None:
            break
        threading.Event().wait(0.005)
    assert hnl.link_index(VETH) is None


def test_errors_name_the_operation_and_the_link(pair: tuple[str, str, Netlink, Netlink]) -> None:
    host, ctr, hnl, cnl = pair
    br, host_end, eth0 = wire(host, ctr, hnl, cnl)

    with pytest.raises(NetlinkError) as err:
        hnl.add_bridge(BRIDGE)
    assert err.value.errno == errno.EEXIST
    assert str(err.value) == f"add bridge {BRIDGE}: File exists"

    fd = netns.open_fd(ctr)
    try:
        with pytest.raises(NetlinkError) as err:  # eth0 is taken in the container namespace
            hnl.add_veth(f"vs{TAG}b", "eth0", fd, master=br)
        assert err.value.errno == errno.EEXIST
        assert str(err.value).startswith(f"add veth vs{TAG}b peer eth0: File exists")
        with pytest.raises(NetlinkError, match=f"add veth {VETH} peer eth9: File exists"):
            hnl.add_veth(VETH, "eth9", fd)
    finally:
        os.close(fd)
    assert hnl.link_index(f"vs{TAG}b") is None  # nothing half-made
    assert cnl.link_index("eth9") is None

    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with pytest.raises(NetlinkError) as err:  # not a namespace
            hnl.add_veth(f"vs{TAG}c", "eth1", null)
    finally:
        os.close(null)
    assert err.value.errno in (errno.EINVAL, errno.EBADF)
    assert str(err.value).startswith(f"add veth vs{TAG}c peer eth1: ")

    with pytest.raises(NetlinkError, match=r"^set link up index 99999: No such device$"):
        hnl.set_up(99999)
    with pytest.raises(NetlinkError, match=rf"set master index 99999 of {VETH}: "):
        hnl.set_master(host_end, 99999)
    with pytest.raises(NetlinkError) as err:
        cnl.add_address(eth0, "10.77.0.2", 24)
    assert err.value.errno == errno.EEXIST
    assert str(err.value).startswith("add address 10.77.0.2/24 on eth0: File exists")
    assert err.value.detail  # the kernel's extended ack, e.g. "ipv4: Address already assigned"
    with pytest.raises(NetlinkError) as err:
        cnl.add_route("10.50.0.1", eth0, "10.60.0.0", 16)  # a gateway off every subnet
    assert err.value.errno == errno.ENETUNREACH
    assert str(err.value).startswith("add route 10.60.0.0/16 via 10.50.0.1 dev eth0: ")
    with pytest.raises(
        NetlinkError, match=r"add route 0\.0\.0\.0/0 via 10\.77\.0\.1 dev eth0: File"
    ):
        cnl.add_route("10.77.0.1", eth0)

    with pytest.raises(InvalidArgument, match=r"address '10\.77\.0\.300'"):
        cnl.add_address(eth0, "10.77.0.300", 24)
    with pytest.raises(InvalidArgument, match="prefix length 33"):
        cnl.add_address(eth0, "10.77.0.3", 33)
    with pytest.raises(InvalidArgument, match="interface name"):
        hnl.add_bridge("a-name-far-too-long")
    with pytest.raises(InvalidArgument, match="mac address"):
        hnl.add_veth(f"vs{TAG}d", "eth2", 0, peer_mac="nonsense")
    assert hnl.delete_link("nosuch0") is False
    assert hnl.link_index("nosuch0") is None
