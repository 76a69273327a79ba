"""The firewall's model, rendered nft scripts and read-back, with a fake Nft (no root).

The rules' effect on real traffic is tests/integration/test_network_firewall.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sampan.errors import Conflict, InvalidArgument, Unsupported
from sampan.network.firewall import (
    Firewall,
    NetRule,
    PortRule,
    group,
    parse_networks,
    parse_published,
    render_ensure,
    render_network,
    render_publish,
    render_reconcile,
    render_remove_all,
    render_remove_network,
    render_unpublish,
)
from sampan.network.nftables import NftError, error_message

ROOT = Path(__file__).resolve().parents[2]
CID = "a" * 64


def rule(**kw: object) -> PortRule:
    fields: dict[str, object] = {
        "owner": CID,
        "proto": "tcp",
        "host_ip": "",
        "host_port": 8080,
        "container_ip": "172.31.0.2",
        "container_port": 80,
        "bridge": "sampan0",
    }
    fields.update(kw)
    return PortRule(**fields)  # type: ignore[arg-type]


# -- the model --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("host_port", 0),
        ("host_port", 70000),
        ("host_port", -1),
        ("host_port", True),
        ("host_port", "80"),
        ("container_port", 0),
        ("container_port", 65536),
        ("proto", "icmp"),
        ("proto", "TCP"),
        ("proto", ""),
        ("host_ip", "1.2.3"),
        ("host_ip", "256.1.1.1"),
        ("host_ip", "a.b.c.d"),
        ("host_ip", "1.2.3.4 "),
        ("host_ip", "localhost"),
        ("container_ip", ""),
        ("container_ip", "0.0.0.0"),
        ("container_ip", "10.0.0.1/8"),
        ("owner", ""),
        ("owner", "a b"),
        ("owner", 'x"; flush ruleset'),
        ("owner", "x" * 101),
        ("bridge", ""),
        ("bridge", "a" * 16),
        ("bridge", 'br"0'),
        ("bridge", "br/0"),
    ],
)
def test_bad_port_rule_names_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidArgument, match=rf"^{field}: "):
        rule(**{field: value})


def test_unsupported_port_rules() -> None:
    with pytest.raises(Unsupported, match=r"^proto: sctp"):
        rule(proto="sctp")
    with pytest.raises(Unsupported, match=r"^host_ip: IPv6"):
        rule(host_ip="::1")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subnet", "172.31.0.0"),
        ("subnet", "172.31.0.0/33"),
        ("subnet", "172.31.0.0/0"),
        ("subnet", "172.31.0/16"),
        ("subnet", "172.31.0.0/x"),
        ("bridge", "bridge-name-too-long"),
        ("masquerade", 1),
        ("internal", "no"),
        ("icc", None),
    ],
)
def test_bad_net_rule_names_the_field(field: str, value: object) -> None:
    fields: dict[str, object] = {"bridge": "sampan0", "subnet": "172.31.0.0/16"}
    fields[field] = value
    with pytest.raises(InvalidArgument, match=rf"^{field}: "):
        NetRule(**fields)  # type: ignore[arg-type]


def test_values_are_frozen_normalised_and_comparable() -> None:
    net = NetRule("sampan0", "172.31.5.7/16")
    assert net.subnet == "172.31.0.0/16"
    assert net == NetRule("sampan0", "172.31.0.0/16", masquerade=True)
    assert rule(host_ip="0.0.0.0") == rule(host_ip="")
    assert len({rule(), rule(), rule(host_port=1)}) == 2
    assert eval(repr(rule(host_ip="10.0.0.1"))) == rule(host_ip="10.0.0.1")
    assert eval(repr(net)) == net
    with pytest.raises(AttributeError):
        net.subnet = "10.0.0.0/8"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        rule().host_port = 1  # type: ignore[misc]
    assert rule() != net


def test_group_drops_duplicates_and_refuses_clashes() -> None:
    a, b = rule(), rule(owner="b" * 64, host_port=8081)
    assert group([a, b, a]) == {CID: [a], "b" * 64: [b]}
    # different protocols or different addresses do not clash
    group([rule(), rule(proto="udp"), rule(host_ip="10.0.0.1", host_port=1), rule(host_port=1,
          host_ip="10.0.0.2")])  # fmt: skip
    with pytest.raises(Conflict, match=r"tcp 0.0.0.0:8080 is published twice"):
        group([rule(), rule(owner="b", container_ip="172.31.0.3")])
    with pytest.raises(Conflict, match=r"tcp 10.0.0.1:8080 is published twice"):
        group([rule(), rule(owner="b", host_ip="10.0.0.1")])
    with pytest.raises(Conflict, match=r"published twice"):
        group([rule(host_ip="10.0.0.1"), rule(container_port=81, host_ip="10.0.0.1")])
    with pytest.raises(InvalidArgument, match=r"expected a PortRule"):
        group(["tcp 8080"])  # type: ignore[list-item]


# -- rendering --------------------------------------------------------------------------


def lines(script: str) -> list[str]:
    return script.splitlines()


def test_ensure_only_adds_and_refills_its_own_fixed_chains() -> None:
    script = lines(render_ensure())
    assert script[0].startswith("add table ip sampan ")
    assert "add set ip sampan bridges { type ifname; }" in script
    assert any(s.startswith("add map ip sampan ports_any ") for s in script)
    assert any(s.startswith("add map ip sampan ports_ip ") for s in script)
    assert not any(s.startswith(("delete", "flush ruleset", "flush table")) for s in script)
    # each fixed chain is flushed before its rules, in the same transaction: idempotent
    for chain in ("published", "prerouting", "output"):
        flush = script.index(f"flush chain ip sampan {chain}")
        rules = [i for i, s in enumerate(script) if s.startswith(f"add rule ip sampan {chain} ")]
        assert rules and min(rules) > flush
    assert (
        "add chain ip sampan prerouting "
        "{ type nat hook prerouting priority dstnat; policy accept; }" in script
    )
    assert "add rule ip sampan output fib daddr type local jump published" in script
    assert "ip sampan" not in render_ensure("sampan_1a2b").replace("ip sampan_1a2b", "")
    with pytest.raises(InvalidArgument, match=r"^table: "):
        render_ensure("1abc")
    with pytest.raises(InvalidArgument, match=r"^table: "):
        render_ensure("x y")


def test_network_rules() -> None:
    script = render_network(NetRule("sampan0", "172.31.0.0/16"))
    body = lines(script)
    hook = "type nat hook postrouting priority srcnat; policy accept;"
    spec = f"add chain ip sampan n-sampan0 {{ {hook} }}"
    i = body.index(spec)
    assert body[i + 1 : i + 3] == ["delete chain ip sampan n-sampan0", spec]  # replaced
    assert 'add element ip sampan bridges { "sampan0" }' in body
    assert (
        'add rule ip sampan n-sampan0 oifname != "sampan0" ip saddr 172.31.0.0/16 masquerade '
        'comment "outbound"' in body
    )
    assert 'oifname "sampan0" ip saddr 127.0.0.0/8 masquerade' in script
    assert 'oifname "sampan0" ip saddr 172.31.0.0/16 ct status dnat masquerade' in script
    assert (
        'add rule ip sampan f-sampan0 iifname "sampan0" oifname != "sampan0" oifname @bridges '
        'ct status & dnat == 0 drop comment "isolation"' in body
    )
    assert "!= dnat" not in script  # compares the whole status word, not the bit
    assert "icc off" not in script and "internal:" not in script
    assert "policy drop" not in script


def test_network_options() -> None:
    quiet = render_network(NetRule("br-0123456789ab", "10.9.0.0/24", masquerade=False))
    assert "outbound" not in quiet and "hairpin" in quiet
    internal = render_network(NetRule("br-0123456789ab", "10.9.0.0/24", internal=True))
    assert "outbound" not in internal and 'comment "isolation"' not in internal
    assert 'iifname "br-0123456789ab" oifname != "br-0123456789ab" drop' in internal
    assert 'oifname "br-0123456789ab" iifname != "br-0123456789ab" drop' in internal
    no_icc = render_network(NetRule("sampan0", "172.31.0.0/16", icc=False))
    assert 'iifname "sampan0" oifname "sampan0" ct status & dnat == 0 drop' in no_icc


def test_remove_network_is_idempotent_by_construction() -> None:
    body = lines(render_remove_network("sampan0"))
    element = 'ip sampan bridges { "sampan0" }'
    assert body.index(f"add element {element}") + 1 == body.index(f"delete element {element}")
    for chain in ("n-sampan0", "f-sampan0"):
        adds = [i for i, s in enumerate(body) if s.startswith(f"add chain ip sampan {chain} ")]
        assert len(adds) == 1 and body[adds[0] + 1] == f"delete chain ip sampan {chain}"
    with pytest.raises(InvalidArgument, match=r"^bridge: "):
        render_remove_network('x" }; flush ruleset')


def test_publish_creates_elements_and_replaces_an_owners_old_ones() -> None:
    a = rule()
    b = rule(proto="udp", host_ip="127.0.0.1", host_port=53, container_port=5353)
    script = render_publish({CID: [a, b]}, skeleton=False)
    assert lines(script) == [
        f'create element ip sampan ports_any {{ tcp . 8080 comment "{CID} sampan0" : '
        "172.31.0.2 . 80 }",
        f'create element ip sampan ports_ip {{ udp . 127.0.0.1 . 53 comment "{CID} sampan0" : '
        "172.31.0.2 . 5353 }",
    ]
    replaced = lines(render_publish({CID: [a]}, {CID: [a, b]}, skeleton=False))
    assert replaced == [
        "delete element ip sampan ports_any { tcp . 8080 }",
        "delete element ip sampan ports_ip { udp . 127.0.0.1 . 53 }",
        f'create element ip sampan ports_any {{ tcp . 8080 comment "{CID} sampan0" : '
        "172.31.0.2 . 80 }",
    ]
    full = render_publish({CID: [a]})
    assert full.startswith(render_ensure()) and full.endswith(script.splitlines()[0] + "\n")


def test_unpublish_deletes_exactly_the_keys() -> None:
    two = [rule(), rule(proto="udp")]
    deleted = "delete element ip sampan ports_any { tcp . 8080, udp . 8080 }\n"
    assert render_unpublish(two) == deleted
    assert render_unpublish([]) == ""


def test_reconcile_rebuilds_the_table_in_one_script() -> None:
    nets = [NetRule("sampan0", "172.31.0.0/16"), NetRule("br-1", "10.1.0.0/16", internal=True)]
    ports = [rule(), rule(), rule(owner="b", host_port=9090)]
    body = lines(render_reconcile(nets, ports))
    assert body[:2] == ["add table ip sampan", "delete table ip sampan"]
    assert not any(s.startswith("delete chain") for s in body)  # a fresh table
    created = [s for s in body if s.startswith("create element")]
    assert len(created) == 1 and created[0].count(" comment ") == 2  # the duplicate dropped
    assert sum(s.startswith("add chain ip sampan n-") for s in body) == 2
    with pytest.raises(InvalidArgument, match=r"^bridge: sampan0 is given twice"):
        render_reconcile([nets[0], nets[0]], [])
    with pytest.raises(Conflict):
        render_reconcile(nets, [rule(), rule(owner="b", host_ip="10.0.0.1")])
    assert render_remove_all() == "add table ip sampan\ndelete table ip sampan\n"


# -- reading back -----------------------------------------------------------------------


def listing(*objects: dict[str, object], table: str = "sampan") -> str:
    meta = {"metainfo": {"version": "1.0.6", "json_schema_version": 1}}
    items: list[dict[str, object]] = [meta, {"table": {"family": "ip", "name": table}}]
    return json.dumps({"nftables": items + list(objects)})


def port_map(name: str, *elems: object, table: str = "sampan") -> dict[str, object]:
    return {"map": {"family": "ip", "name": name, "table": table, "elem": list(elems)}}


def elem(key: list[object], comment: str, addr: str, port: int) -> list[object]:
    return [{"elem": {"val": {"concat": key}, "comment": comment}}, {"concat": [addr, port]}]


def test_parse_published() -> None:
    text = listing(
        port_map("ports_any", elem(["tcp", 8080], f"{CID} sampan0", "172.31.0.2", 80)),
        port_map("ports_ip", elem([17, "10.0.0.1", 53], "b br-1", "10.1.0.2", 5353)),
        port_map("ports_any", elem(["tcp", 1], "c sampan0", "1.1.1.1", 1), table="other"),
        {"map": {"family": "ip", "name": "ports_any", "table": "sampan"}},  # no elements
    )
    assert parse_published(text) == [
        rule(),
        PortRule("b", "udp", "10.0.0.1", 53, "10.1.0.2", 5353, "br-1"),
    ]
    assert parse_published("") == []
    for bad in (
        elem(["tcp", 8080], "no-bridge", "172.31.0.2", 80),
        elem(["tcp", 0], f"{CID} sampan0", "172.31.0.2", 80),
        [{"elem": {"val": 8080}}, {"concat": ["1.1.1.1", 1]}],
        "junk",
    ):
        with pytest.raises(InvalidArgument):
            parse_published(listing(port_map("ports_any", bad)))


def test_parse_networks() -> None:
    def hairpin(chain: str, comment: str) -> dict[str, object]:
        return {"rule": {"table": "sampan", "chain": chain, "comment": comment, "expr": []}}

    text = listing(
        hairpin("n-sampan0", "localhost"),
        hairpin("n-sampan0", "hairpin subnet=172.31.0.0/16 masquerade=1 internal=0 icc=1"),
        hairpin("n-br-1", "hairpin subnet=10.1.0.0/16 masquerade=1 internal=1 icc=0"),
        hairpin("f-br-1", "hairpin subnet=10.1.0.0/16 masquerade=1 internal=1 icc=0"),
    )
    assert parse_networks(text) == [
        NetRule("sampan0", "172.31.0.0/16"),
        NetRule("br-1", "10.1.0.0/16", internal=True, icc=False),
    ]
    with pytest.raises(InvalidArgument):
        parse_networks(listing(hairpin("n-x", "hairpin subnet=10.0.0.0/8")))


# -- the Firewall over a fake Nft ----------------------------------------------------------


class FakeNft:
    """Records scripts; answers listings from KERNEL (a list of port rules); fails on demand."""

    def __init__(self, kernel: list[PortRule] | None = None) -> None:
        self.kernel = list(kernel or [])
        self.scripts: list[str] = []
        self.fail = 0  # how many of the next changes fail, with...
        self.error = "No such file or directory"

    def run(self, script: str, *, json: bool = False) -> str:
        self.scripts.append(script)
        if self.fail and not script.startswith("list"):
            self.fail -= 1
            raise NftError(f"nftables: Could not process rule: {self.error}")
        if script.startswith("list table"):
            elems: dict[str, list[object]] = {"ports_any": [], "ports_ip": []}
            for r in self.kernel:
                key: list[object] = [r.proto, r.host_ip, r.host_port] if r.host_ip else [
                    r.proto, r.host_port]  # fmt: skip
                name = "ports_ip" if r.host_ip else "ports_any"
                elems[name].append(
                    elem(key, f"{r.owner} {r.bridge}", r.container_ip, r.container_port)
                )
            return listing(*(port_map(n, *e) for n, e in elems.items()))
        return ""


def test_publish_and_unpublish_are_one_call_each() -> None:
    nft = FakeNft()
    fw = Firewall(nft)  # type: ignore[arg-type]
    fw.reconcile([NetRule("sampan0", "172.31.0.0/16")], [])
    nft.scripts.clear()
    fw.publish([rule(), rule(proto="udp")])
    fw.unpublish(CID)
    assert len(nft.scripts) == 2
    assert nft.scripts[0].startswith("create element")  # no skeleton on the fast path
    assert nft.scripts[1] == render_unpublish([rule(), rule(proto="udp")])
    fw.unpublish(CID)
    fw.unpublish("never-published")
    fw.publish([])
    assert len(nft.scripts) == 2  # nothing to do: no call
    with pytest.raises(InvalidArgument, match=r"^owner: "):
        fw.unpublish("bad id")


def test_the_index_is_read_from_the_kernel_once() -> None:
    nft = FakeNft([rule()])
    fw = Firewall(nft)  # type: ignore[arg-type]
    fw.unpublish(CID)
    assert [s.split()[0] for s in nft.scripts] == ["list", "delete"]
    with pytest.raises(Conflict, match=r"already published by " + CID):
        fw2 = Firewall(FakeNft([rule()]))  # type: ignore[arg-type]
        fw2.publish([rule(owner="b", host_ip="10.0.0.1")])


def test_a_stale_index_is_read_again_and_the_call_retried() -> None:
    nft = FakeNft()
    fw = Firewall(nft)  # type: ignore[arg-type]
    fw.reconcile([], [rule()])  # the index says CID publishes 8080...
    nft.kernel = []  # ...but someone removed it
    nft.scripts.clear()
    nft.fail = 1
    fw.unpublish(CID)
    assert [s.split()[0] for s in nft.scripts] == ["delete", "list"]
    nft.scripts.clear()
    nft.fail = 1  # the table was deleted: the retry brings the skeleton
    fw.publish([rule(host_port=1)])
    assert [s.split()[0] for s in nft.scripts] == ["create", "list", "add"]
    assert nft.scripts[-1].startswith(render_ensure())
    nft.fail = 2
    with pytest.raises(NftError, match=r"No such file"):
        fw.publish([rule(host_port=2)])
    nft.fail, nft.error = 2, "File exists"
    with pytest.raises(Conflict, match=r"^host_port: already published"):
        fw.publish([rule(host_port=2)])


def test_publish_replaces_an_owners_rules() -> None:
    nft = FakeNft()
    fw = Firewall(nft)  # type: ignore[arg-type]
    fw.reconcile([], [rule()])
    nft.scripts.clear()
    fw.publish([rule(host_port=9000)])
    assert nft.scripts == [render_publish({CID: [rule(host_port=9000)]}, {CID: [rule()]},
                                          skeleton=False)]  # fmt: skip
    fw.unpublish(CID)
    assert nft.scripts[-1] == render_unpublish([rule(host_port=9000)])


# -- nftables.py ------------------------------------------------------------------------


def test_error_message_names_the_failing_command() -> None:
    text = (
        "/proc/self/fd/3:2:24-27: Error: Could not process rule: No such file or directory\n"
        "delete chain ip sampan nope\n"
        "                       ^^^^\n"
    )
    script = "add table ip sampan\ndelete chain ip sampan nope\n"
    assert error_message(text, script) == (
        "Could not process rule: No such file or directory (in: delete chain ip sampan nope)"
    )
    assert error_message("Error: out of memory\n") == "out of memory"
    assert error_message("") == "failed"
    assert len(error_message("Error: " + "x" * 1000)) == 400


def test_nothing_is_loaded_at_import() -> None:
    slow = ("ctypes", "dataclasses", "re", "json", "typing", "ipaddress")
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "import sampan.network.firewall, sampan.network.nftables\n"
        f"print(sorted(m for m in {slow!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_a_network_dns_server_answers_its_own_bridge_only() -> None:
    from sampan.network.firewall import NetRule, parse_networks, render_network

    net = NetRule("br-x", "10.9.0.0/24", dns="10.9.0.1")
    script = render_network(net)
    assert (
        "add rule ip sampan i-br-x ip daddr 10.9.0.1 meta l4proto { tcp, udp } th dport 53 "
        'iifname != "br-x" drop' in script
    )
    assert "dport 53" not in render_network(NetRule("sampan0", "172.31.0.0/16"))
    with pytest.raises(InvalidArgument, match="dns"):
        NetRule("br-x", "10.9.0.0/24", dns="10.9.0")
    listing = (
        '{"nftables": [{"rule": {"family": "ip", "table": "sampan", "chain": "n-br-x", '
        '"comment": "hairpin subnet=10.9.0.0/24 masquerade=1 internal=0 icc=1 dns=10.9.0.1"}}]}'
    )
    assert parse_networks(listing) == [net]


def test_loopback_destinations_from_a_bridge_are_dropped_unless_dnatted() -> None:
    """route_localnet (for -p from 127.0.0.1) would let a container route to the host's
    127.0.0.0/8 through its gateway; only replies of DNAT'd connections may come in."""
    from sampan.network.firewall import NetRule, render_network, render_reconcile

    rule = (
        'add rule ip sampan i-sampan0 iifname "sampan0" ip daddr 127.0.0.0/8 '
        'ct status & dnat == 0 drop comment "localnet"'
    )
    net = NetRule("sampan0", "172.31.0.0/16")
    assert rule in render_network(net).splitlines()
    assert rule in render_reconcile([net], []).splitlines()
