"""The client side of networking, no daemon: run/create's network flags (cli/net_opts.py)
into bodies equal to what the docker CLI 28.2 sends (captured from `docker -H unix://...`
against a socket that records the request), and `sampan network ...` (cli/network.py)
against the real API server in front of a fake NetworkService."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sampan.cli.args import parse
from sampan.cli.container import _LATER, RUN_FLAGS, create_body
from sampan.cli.main import main
from sampan.cli.network import _go_time, ipam_config, natural_key
from sampan.errors import InvalidArgument
from tests.unit.test_api_networks import DOCKER_CONNECT, DOCKER_CREATE, NET_ID, Served
from tests.unit.test_import_cost import FORBIDDEN, imported_modules

NOWHERE = "unix:///nonexistent/sampan.sock"
EMPTY_EP = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
            "DriverOpts": None}  # fmt: skip


def _body(*argv: str) -> dict[str, Any]:
    opts, args = parse(RUN_FLAGS + _LATER, [*argv, "busybox"])
    return create_body(opts, args[0], args[1:])


def _net(*argv: str) -> dict[str, Any]:
    """The network part of the create body: HostConfig's fields, ExposedPorts, endpoints."""
    body = _body(*argv)
    host = body["HostConfig"]
    keys = ("NetworkMode", "PortBindings", "PublishAllPorts", "Dns", "DnsSearch", "DnsOptions",
            "ExtraHosts", "Links")  # fmt: skip
    return {
        **{k: host[k] for k in keys},
        "ExposedPorts": body.get("ExposedPorts"),
        "EndpointsConfig": body["NetworkingConfig"]["EndpointsConfig"],
    }


# -- run/create: bodies as docker sends them ---------------------------------------------


def test_no_flags_is_dockers_default_endpoint() -> None:
    assert _net() == {
        "NetworkMode": "default", "PortBindings": {}, "PublishAllPorts": False, "Dns": [],
        "DnsSearch": [], "DnsOptions": [], "ExtraHosts": None, "Links": None,
        "ExposedPorts": None, "EndpointsConfig": {"default": EMPTY_EP},
    }  # fmt: skip


def test_publish_and_expose() -> None:
    net = _net("-p", "8080:80", "-p", "127.0.0.1:9000-9001:90-91/udp", "-p", "53",
               "-p", "1.2.3.4::22", "-p", "[::1]:80:80", "-P", "--expose", "7000-7001",
               "--expose", "99/udp")  # fmt: skip
    assert net["ExposedPorts"] == {
        "22/tcp": {}, "53/tcp": {}, "7000/tcp": {}, "7001/tcp": {}, "80/tcp": {}, "90/udp": {},
        "91/udp": {}, "99/udp": {},
    }  # fmt: skip
    assert net["PortBindings"] == {
        "22/tcp": [{"HostIp": "1.2.3.4", "HostPort": ""}],
        "53/tcp": [{"HostIp": "", "HostPort": ""}],
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "::1", "HostPort": "80"}],
        "90/udp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}],
        "91/udp": [{"HostIp": "127.0.0.1", "HostPort": "9001"}],
    }
    assert net["PublishAllPorts"] is True


@pytest.mark.parametrize(
    ("spec", "bindings"),
    [
        ("80-81:90", {"90/tcp": [{"HostIp": "", "HostPort": "80-81"}]}),
        ("90-92", {f"{p}/tcp": [{"HostIp": "", "HostPort": ""}] for p in (90, 91, 92)}),
        ("80/sctp", {"80/sctp": [{"HostIp": "", "HostPort": ""}]}),
        ("::80", {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
        (":80", {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
        ("08080:080", {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}),
        ("0.0.0.0:80:80/TCP", {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "80"}]}),
        ("80/", {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
        ("0", {"0/tcp": [{"HostIp": "", "HostPort": ""}]}),
        ("target=80,published=8080", {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}),
        ("target=53,protocol=udp", {"53/udp": [{"HostIp": "", "HostPort": ""}]}),
    ],
)
def test_publish_forms(spec: str, bindings: dict[str, Any]) -> None:
    net = _net("-p", spec)
    assert net["PortBindings"] == bindings
    assert net["ExposedPorts"] == {key: {} for key in bindings}


def test_same_port_published_twice_and_protocols() -> None:
    net = _net("-p", "80:80", "-p", "80:81", "-p", "8080:80/udp")
    assert net["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "80"}],
        "81/tcp": [{"HostIp": "", "HostPort": "80"}],
        "80/udp": [{"HostIp": "", "HostPort": "8080"}],
    }


def test_user_network_takes_ip_aliases_mac_links_and_dns() -> None:
    net = _net("--network", "n1", "--ip", "10.0.0.5", "--network-alias", "a",
               "--network-alias", "b", "--mac-address", "02:42:ac:11:00:02",
               "--dns", "8.8.8.8", "--dns-search", "ex.com", "--dns-option", "ndots:2",
               "--add-host", "h:1.2.3.4", "--add-host", "g:host-gateway",
               "--link", "c2:db", "--link", "c3")  # fmt: skip
    assert net == {
        "NetworkMode": "n1", "PortBindings": {}, "PublishAllPorts": False, "Dns": ["8.8.8.8"],
        "DnsSearch": ["ex.com"], "DnsOptions": ["ndots:2"],
        "ExtraHosts": ["h:1.2.3.4", "g:host-gateway"], "Links": ["c2:db", "c3"],
        "ExposedPorts": None,
        "EndpointsConfig": {"n1": {
            "IPAMConfig": {"IPv4Address": "10.0.0.5"}, "Links": ["c2:db", "c3"],
            "Aliases": ["a", "b"], "MacAddress": "02:42:ac:11:00:02", "DriverOpts": None}},
    }  # fmt: skip


@pytest.mark.parametrize("mode", ["host", "none", "container:abc", "n1", "bridge"])
def test_a_single_network_with_nothing_to_say_sends_no_endpoint(mode: str) -> None:
    net = _net("--net", mode)
    assert net["NetworkMode"] == mode and net["EndpointsConfig"] == {}


def test_legacy_links_on_the_default_bridge_and_mac_there() -> None:
    net = _net("--link", ":b", "--link", "db", "--mac-address", "02:42:ac:11:00:02")
    assert net["Links"] == [":b", "db"]  # as given; on the default bridge not an endpoint's
    assert net["EndpointsConfig"] == {"default": {**EMPTY_EP, "MacAddress": "02:42:ac:11:00:02"}}


def test_several_networks_and_dockers_csv_form() -> None:
    net = _net("--network", "n1", "--network-alias", "q", "--network", "name=n2,alias=y")
    assert net["NetworkMode"] == "n1"
    assert net["EndpointsConfig"] == {"n1": {**EMPTY_EP, "Aliases": ["q"]},
                                      "n2": {**EMPTY_EP, "Aliases": ["y"]}}  # fmt: skip
    # docker lower-cases the CSV form, keys and values alike
    net = _net("--network", "name=MyNet,alias=Foo,ip=10.1.1.1")
    assert net["NetworkMode"] == "mynet"
    assert net["EndpointsConfig"] == {"mynet": {
        **EMPTY_EP, "IPAMConfig": {"IPv4Address": "10.1.1.1"}, "Aliases": ["foo"]}}  # fmt: skip
    net = _net("--network", "name=n1,driver-opt=a=b")
    assert net["EndpointsConfig"] == {"n1": {**EMPTY_EP, "DriverOpts": {"a": "b"}}}
    net = _net("--network", "a", "--network", "b")
    assert net["EndpointsConfig"] == {"a": EMPTY_EP, "b": EMPTY_EP}


def test_dns_search_and_hosts_as_docker_normalises_them() -> None:
    net = _net("--dns", "0:0::1", "--dns", "::ffff:1.2.3.4", "--dns", " 8.8.8.8",
               "--dns-search", "Example.COM.", "--dns-search", "a.b ", "--dns-search", ".",
               "--add-host", "h:[::1]", "--add-host", "x= 1.2.3.4",
               "--add-host", "foo=1.2.3.4")  # fmt: skip
    assert net["Dns"] == ["::1", "1.2.3.4", "8.8.8.8"]
    assert net["DnsSearch"] == ["Example.COM", "a.b", "."]
    assert net["ExtraHosts"] == ["h:::1", "x: 1.2.3.4", "foo:1.2.3.4"]


# docker CLI 28.2's words for each (its exit code 125).
BAD_FLAGS = [
    (["--network-alias", "x"], "network-scoped aliases are only supported for user-defined "
     "networks"),
    (["--network", "bridge", "--network-alias", "x"], "network-scoped aliases are only"),
    (["--ip", "10.0.0.1"], "user specified IP address is supported on user defined networks "
     "only"),
    (["--network", "host", "--ip", "10.0.0.1"], "user specified IP address is supported"),
    (["-p", "abc"], "invalid containerPort: abc"),
    (["-p", "80:abc"], "invalid containerPort: abc"),
    (["-p", "99999"], "invalid containerPort: 99999"),
    (["-p", "80-"], "invalid containerPort: 80-"),
    (["-p", "-80"], "invalid containerPort: -80"),
    (["-p", "80/foo"], "invalid proto: foo"),
    (["-p", "1.2.3:80:80"], "invalid IP address: 1.2.3"),
    (["-p", "80-81:90-92"], "invalid ranges specified for container and host Ports: 90-92 "
     "and 80-81"),
    (["-p", "127.0.0.1:80"], "invalid hostPort: 127.0.0.1"),
    (["-p", "65536:80"], "invalid hostPort: 65536"),
    (["-p", ""], "no port specified: <empty>"),
    (["-p", "/tcp"], "no port specified: /tcp<empty>"),
    (["-p", "target=80,bad"], "invalid publish opts format (should be name=value but got "
     "'bad')"),
    (["--expose", "abc"], 'invalid range format for --expose: abc, error: strconv.ParseUint: '
     'parsing "abc": invalid syntax'),
    (["--expose", "80-70"], "invalid range format for --expose: 80-70, error: invalid range "
     "specified for port: 80-70"),
    (["--expose", "80:90"], "invalid port format for --expose: 80:90"),
    (["--dns", "abc"], 'invalid argument "abc" for "--dns" flag: IP address is not correctly '
     'formatted: abc'),
    (["--dns-search", "a..b"], 'invalid argument "a..b" for "--dns-search" flag: a..b is not '
     'a valid domain'),
    (["--dns-search", "123"], "123 is not a valid domain"),
    (["--add-host", "foo"], 'invalid argument "foo" for "--add-host" flag: bad format for '
     'add-host: "foo"'),
    (["--add-host", "foo:abc"], 'invalid IP address in add-host: "abc"'),
    (["--add-host", ":1.2.3.4"], 'bad format for add-host: ":1.2.3.4"'),
    (["--link", "a:b:c"], 'invalid argument "a:b:c" for "--link" flag: bad format for links: '
     'a:b:c'),
    (["--mac-address", "zz"], "zz is not a valid mac address"),
    (["--network", ""], "no name set for network"),
    (["--network", "host", "--network", "n1"], "conflicting options: cannot attach both "
     "user-defined and non-user-defined network-modes"),
    (["--network", "n1", "--network", "n1"], 'network "n1" is specified multiple times'),
    (["--network", "name=n1,foo=x"], 'invalid argument "name=n1,foo=x" for "--network" flag: '
     'invalid field key foo'),
    (["--network", "alias=x"], "network name/id is not specified"),
    (["--network", "name=n1,ip=10.0.0.2", "--ip", "10.0.0.3"], "conflicting options: cannot "
     "specify both --ip and per-network IPv4 address"),
    (["--network", "name=n1,alias=a", "--network-alias", "b"], "cannot specify both "
     "--network-alias and per-network alias"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), BAD_FLAGS)
def test_bad_values_are_refused_with_dockers_words(argv: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        _body(*argv)
    assert message in str(caught.value)


@pytest.mark.parametrize("command", ["run", "create"])
def test_bad_values_exit_125_before_any_request(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-H", NOWHERE, command, "-p", "80/foo", "busybox"]) == 125
    assert (
        capsys.readouterr().err == f"sampan: invalid proto: foo\nSee 'sampan {command} --help'.\n"
    )
    assert main(["-H", NOWHERE, command, "--ip6", "::1", "busybox"]) == 125
    assert "--ip6 is not supported by sampan yet" in capsys.readouterr().err


# -- sampan network ... ------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(str(tmp_path / "api.sock"))
    yield s
    s.close()


def _run(served: Served, *argv: str) -> int:
    return main(["-H", served.host, "network", *argv])


def test_create_sends_dockers_request_and_prints_the_id(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(served, "create", "--subnet", "10.5.0.0/24", "--gateway", "10.5.0.1",
                "--ip-range", "10.5.0.128/25", "--aux-address", "a=10.5.0.5", "--internal",
                "--attachable", "--label", "x=y", "-o", "com.docker.network.bridge.name=foo",
                "--ipam-driver", "default", "n2") == 0  # fmt: skip
    assert capsys.readouterr().out == NET_ID + "\n"
    assert served.calls == [("create", DOCKER_CREATE)]
    assert _run(served, "create", "-d", "bridge", "--scope", "local", "n1") == 0
    assert served.calls[-1][1] == {
        "Driver": "bridge", "Scope": "local",
        "IPAM": {"Driver": "default", "Options": {}, "Config": []}, "Internal": False,
        "Attachable": False, "Ingress": False, "ConfigOnly": False, "ConfigFrom": None,
        "Options": {}, "Labels": {}, "Name": "n1", "CheckDuplicate": True,
    }  # fmt: skip
    assert _run(served, "create", "web9") == 1
    assert capsys.readouterr().err == ("Error response from daemon: network with name web9 "
                                       "already exists\n")  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-d", "macvlan", "n"], 'network driver "macvlan" is not supported'),
        (["--ipv6", "n"], "--ipv6: IPv6 networks are not supported by sampan"),
        (["--ipv4=false", "n"], "networks without IPv4 are not supported"),
        (["--ipam-driver", "dhcp", "n"], 'IPAM driver "dhcp" is not supported'),
        (["--scope", "swarm", "n"], 'scope "swarm" is not supported'),
        (["--ingress", "n"], "--ingress is not supported by sampan"),
        (["--config-from", "x", "n"], "--config-from is not supported by sampan"),
        (["--gateway", "10.0.0.1", "n"], "every ip-range or gateway must have a corresponding "
         "subnet"),
        (["--subnet", "10.0.0.0/8", "--subnet", "10.1.0.0/16", "n"],
         "multiple overlapping subnet configuration is not supported"),
        (["--subnet", "10.0.0.0/24", "--gateway", "10.1.0.1", "n"],
         "no matching subnet for gateway 10.1.0.1"),
        (["--subnet", "10.0.0.0/24", "--ip-range", "10.1.0.0/25", "n"],
         "no matching subnet for range 10.1.0.0/25"),
        (["--subnet", "10.0.0.0/24", "--subnet", "abc", "n"],
         "invalid subnet: invalid CIDR address: abc"),  # one alone goes to the daemon
        (["--subnet", "10.0.0.0/24", "--gateway", "abc", "n"],
         "no matching subnet for gateway abc"),
        (["--subnet", "10.0.0.0/24", "--aux-address", "r=10.9.0.1", "n"],
         "no matching subnet for aux-address 10.9.0.1"),
        ([], '"sampan network create" requires exactly 1 argument'),
        (["a", "b"], '"sampan network create" requires exactly 1 argument'),
    ],
)  # fmt: skip
def test_create_refusals(
    served: Served, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert _run(served, "create", *argv) == 1
    assert message in capsys.readouterr().err
    assert served.calls == []


def test_ipam_config_groups_per_subnet() -> None:
    assert ipam_config(["10.0.0.0/24", "10.1.0.0/24"], ["10.1.0.128/25"],
                       ["10.0.0.254", "10.1.0.1"], {"r": "10.0.0.9"}) == [
        {"Subnet": "10.0.0.0/24", "Gateway": "10.0.0.254", "AuxiliaryAddresses": {"r": "10.0.0.9"}},
        {"Subnet": "10.1.0.0/24", "IPRange": "10.1.0.128/25", "Gateway": "10.1.0.1"},
    ]  # fmt: skip
    with pytest.raises(InvalidArgument, match=r"cannot configure multiple gateways \(10.0.0.2, "
                       r"10.0.0.1\) for the same subnet \(10.0.0.0/24\)"):  # fmt: skip
        ipam_config(["10.0.0.0/24", "10.1.0.0/24"], [], ["10.0.0.1", "10.0.0.2"], {})


def test_ls_table_in_natural_order(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(served, "ls") == 0
    assert capsys.readouterr().out == (
        "NETWORK ID     NAME      DRIVER    SCOPE\n"
        "bbbbbbbbbbbb   bridge    bridge    local\n"
        "999999999999   web9      bridge    local\n"
        "111111111111   web10     bridge    local\n"
    )
    assert _run(served, "ls", "extra") == 1  # an argument: usage error
    capsys.readouterr()
    assert _run(served, "list", "-q", "--no-trunc", "--filter", "name=web") == 0
    assert capsys.readouterr().out == "9" * 64 + "\n" + "1" * 64 + "\n"
    assert served.calls[-1] == ("list", {"name": ["web"]})
    assert _run(served, "ls", "-q", "--format", "{{.Name}}") == 0  # a format wins over -q
    assert capsys.readouterr().out == "bridge\nweb9\nweb10\n"


def test_ls_formats(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    fmt = '{{.Name}} {{.Label "env"}} {{.Labels}} {{.Internal}} {{.IPv6}} {{.CreatedAt}}'
    assert _run(served, "ls", "--format", fmt) == 0
    when = "2024-05-01 10:00:00.123456789 +0000 UTC"
    assert capsys.readouterr().out.splitlines() == [
        f"bridge   false false {when}",
        f"web9   true false {when}",
        f"web10 prod env=prod,team=a false false {when}",
    ]
    assert _run(served, "ls", "--format", "table {{.Name}}\t{{.IPv4}}") == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["NAME      IPV4", "bridge    false"]
    assert _run(served, "ls", "--format", "json") == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["Name"] == "bridge" and first["ID"] == "b" * 12 and "Label" not in first
    assert _run(served, "ls", "--filter", "name") == 1
    assert "bad format of filter" in capsys.readouterr().err


def test_natural_key_and_go_time() -> None:
    names = ["web10", "a-1", "web9", "a01", "a1", "B", "a", "web09"]
    assert sorted(names, key=natural_key) == ["B", "a", "a1", "a01", "a-1", "web9", "web09",
                                              "web10"]  # fmt: skip
    assert _go_time("2024-05-01T10:00:00Z") == "2024-05-01 10:00:00 +0000 UTC"
    assert _go_time("2024-05-01T10:00:00.500+02:00") == "2024-05-01 10:00:00.5 +0200 +0200"


def test_inspect_documents_templates_and_missing(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(served, "inspect", "web9", "bridge") == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["Name"] for d in docs] == ["web9", "bridge"]
    assert docs[0]["Containers"]["c" * 64]["IPv4Address"] == "10.9.0.2/24"
    assert _run(served, "inspect", "-f", "{{.Name}} {{.Internal}}", "-v", "web9") == 0
    assert capsys.readouterr().out == "web9 true\n"
    assert served.calls[-1] == ("inspect", "web9", True)
    assert _run(served, "inspect", "nope", "web9") == 1
    out = capsys.readouterr()
    assert [d["Name"] for d in json.loads(out.out)] == ["web9"]
    assert out.err == "Error response from daemon: network nope not found\n"
    assert _run(served, "inspect", "nope") == 1
    assert capsys.readouterr().out == "[]\n"


def test_rm_prints_each_name_and_fails_on_any(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(served, "rm", "web9", "nope", "bridge", "web10") == 1
    out = capsys.readouterr()
    assert out.out == "web9\nweb10\n"
    assert out.err == ("Error response from daemon: network nope not found\n"
                       "Error response from daemon: bridge is a pre-defined network and cannot "
                       "be removed\n")  # fmt: skip
    assert _run(served, "remove", "-f", "nope") == 0  # -f: a missing network is no error
    assert capsys.readouterr() == ("", "")
    assert _run(served, "rm") == 1


def test_prune_prompts_and_lists(
    served: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert _run(served, "prune") == 0
    assert capsys.readouterr().out == (
        "WARNING! This will remove all custom networks not used by at least one container.\n"
        "Are you sure you want to continue? [y/N] "
    )
    assert served.calls == []  # declined: nothing asked of the daemon
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert _run(served, "prune", "--filter", "until=24h", "--filter", "label=a") == 0
    assert capsys.readouterr().out.endswith("[y/N] Deleted Networks:\nweb10\nweb9\n\n")
    assert served.calls == [("prune", {"until": ["24h"], "label": ["a"]})]
    assert _run(served, "prune", "-f") == 0
    assert capsys.readouterr().out == ""  # nothing left to delete: nothing printed


def test_connect_and_disconnect_send_dockers_bodies(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(served, "connect", "--ip", "10.0.0.2", "--alias", "a1", "--alias", "a2",
                "--link", "c2:db", "web9", "c1") == 0  # fmt: skip
    docker = DOCKER_CONNECT["EndpointConfig"]
    sent = served.calls[-1]
    assert sent[:3] == ("connect", "web9", "c1")
    assert sent[3] == {k: docker[k] for k in sent[3]}  # docker's, less its read-only fields
    assert sent[3].keys() == {"IPAMConfig", "Links", "Aliases", "MacAddress", "DriverOpts"}
    assert _run(served, "connect", "web9", "c3") == 0
    assert served.calls[-1][3] == {"IPAMConfig": {}, "Links": None, "Aliases": [],
                                   "MacAddress": "", "DriverOpts": {}}  # fmt: skip
    assert _run(served, "connect", "web9", "ghost") == 1
    assert capsys.readouterr() == ("", "Error response from daemon: No such container: ghost\n")
    assert _run(served, "connect", "--link", "a:b:c", "web9", "c1") == 1
    assert "bad format for links: a:b:c" in capsys.readouterr().err
    assert _run(served, "connect", "web9") == 1
    assert "requires exactly 2 arguments" in capsys.readouterr().err
    assert _run(served, "disconnect", "-f", "web9", "c1") == 0
    assert _run(served, "disconnect", "web9", "c1") == 0
    assert served.calls[-2:] == [("disconnect", "web9", "c1", True),
                                 ("disconnect", "web9", "c1", False)]  # fmt: skip
    assert capsys.readouterr() == ("", "")


def test_no_daemon(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-H", NOWHERE, "network", "ls"]) == 1
    assert capsys.readouterr().err.startswith("Cannot connect to the sampan daemon at ")


# -- import cost -------------------------------------------------------------------------


def test_net_opts_is_loaded_only_to_make_a_body() -> None:
    """``ps`` loads cli/container.py: it must not pay for the network flags' parser."""
    names = imported_modules("sampan.cli.main", "sampan.cli.container")
    assert "sampan.cli.container" in names and "sampan.cli.net_opts" not in names
    names = imported_modules("sampan.cli.net_opts")
    slow = sorted((FORBIDDEN | {"ipaddress", "http.client"}).intersection(names))
    assert slow == [], f"cli/net_opts.py imports {slow}"


def test_network_commands_import_no_slow_modules() -> None:
    names = imported_modules("sampan.cli.main", "sampan.cli.network")
    never = FORBIDDEN | {"http.client", "sqlite3", "ipaddress", "sampan.engine", "sampan.network"}
    slow = sorted(never.intersection(names))
    assert slow == [], f"sampan network imports {slow}"


def test_the_group_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["network"])  # the group alone prints its commands
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "  disconnect Disconnect a container from a network" in out
    assert main(["--help"]) == 0
    assert "  network   Manage networks" in capsys.readouterr().out


def test_ps_ports_column_as_docker_prints_it() -> None:
    from sampan.cli.container import ports_text

    ports = [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 81, "PublicPort": 8081, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 32768, "Type": "tcp"},
        {"PrivatePort": 9000, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
    ]
    assert ports_text(ports) == (
        "0.0.0.0:5353->53/udp, 0.0.0.0:8080-8081->80-81/tcp, 127.0.0.1:32768->80/tcp, 9000/tcp"
    )
    assert ports_text([]) == ""
