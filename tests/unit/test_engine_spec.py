"""sampan.engine.spec: docker's merge rules and the OCI spec a container gets."""

from __future__ import annotations

import pytest

from sampan.engine import spec
from sampan.errors import InvalidArgument, Unsupported

CID = "0123456789ab" + "c" * 52
IMAGE = {"Entrypoint": ["/entry"], "Cmd": ["serve"], "Env": ["PATH=/img", "A=1"],
         "WorkingDir": "/srv", "User": "daemon", "Labels": {"from": "image"}}  # fmt: skip


def test_request_cmd_keeps_image_entrypoint() -> None:
    config = spec.merge_config(IMAGE, {"Cmd": ["debug"]}, CID)
    assert (config["Entrypoint"], config["Cmd"]) == (["/entry"], ["debug"])


def test_no_cmd_takes_the_image_cmd() -> None:
    config = spec.merge_config(IMAGE, {"Cmd": None}, CID)
    assert (config["Entrypoint"], config["Cmd"]) == (["/entry"], ["serve"])


def test_request_entrypoint_drops_the_image_cmd() -> None:
    config = spec.merge_config(IMAGE, {"Entrypoint": ["/bin/sh"]}, CID)
    assert (config["Entrypoint"], config["Cmd"]) == (["/bin/sh"], [])
    config = spec.merge_config(IMAGE, {"Entrypoint": [""], "Cmd": ["ls"]}, CID)
    assert (config["Entrypoint"], config["Cmd"]) == (None, ["ls"])


def test_no_command_at_all() -> None:
    with pytest.raises(InvalidArgument, match="no command specified"):
        spec.merge_config({}, {}, CID)


def test_env_labels_workdir_user_hostname() -> None:
    config = spec.merge_config(IMAGE, {"Env": ["A=2", "B=3"], "Labels": {"x": "y"}}, CID)
    assert config["Env"] == ["PATH=/img", "A=2", "B=3"]
    assert config["Labels"] == {"from": "image", "x": "y"}
    assert (config["WorkingDir"], config["User"], config["Hostname"]) == (
        "/srv",
        "daemon",
        CID[:12],
    )
    config = spec.merge_config(IMAGE, {"WorkingDir": "/w", "User": "1:2", "Hostname": "h"}, CID)
    assert (config["WorkingDir"], config["User"], config["Hostname"]) == ("/w", "1:2", "h")
    with pytest.raises(InvalidArgument, match="absolute path"):
        spec.merge_config(IMAGE, {"WorkingDir": "rel"}, CID)


def test_names() -> None:
    assert spec.check_name("/web.1_a-b") == "web.1_a-b"
    for bad in ("a", "-ab", "a b", "ä1", "/"):
        with pytest.raises(InvalidArgument, match="Invalid container name"):
            spec.check_name(bad)


def test_host_config() -> None:
    host = spec.check_host_config({"NetworkMode": "default", "MemorySwappiness": -1, "Binds": None})
    assert host["NetworkMode"] == "default"
    assert spec.check_host_config({"NetworkMode": "bridge"})["NetworkMode"] == "bridge"
    with pytest.raises(InvalidArgument, match="container: needs a container"):
        spec.check_host_config({"NetworkMode": "container:"})
    bound = spec.check_host_config({"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}})
    assert bound["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    for bad in (
        {"PortBindings": {"80/icmp": []}},
        {"PortBindings": {"0/tcp": []}},
        {"PortBindings": {"80": [{"HostPort": "99999"}]}},
        {"Dns": ["not-an-ip"]},
        {"ExtraHosts": ["nocolon"]},
        {"PortBindings": {"80": [{"HostIp": "1.2.3"}]}},
    ):
        with pytest.raises(InvalidArgument):
            spec.check_host_config(bad)
    with pytest.raises(Unsupported, match="sctp"):
        spec.check_host_config({"PortBindings": {"80/sctp": []}})
    with pytest.raises(Unsupported, match=r"HostConfig\.BlkioWeight "):
        spec.check_host_config({"BlkioWeight": 500})


def _oci(config_extra: dict[str, object], mode: str = "default") -> dict:  # type: ignore[type-arg]
    config = spec.merge_config({"Cmd": ["sh"]}, config_extra, CID)
    host = spec.check_host_config({"NetworkMode": mode})
    passwd = "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/:/bin/sh\n"
    group = "root:x:0:\nwww:x:33:\nextra:x:50:www\n"
    files = {"/etc/hosts": "/b/hosts", "/etc/hostname": "/b/hostname"}
    return spec.oci_spec(CID, config, host, files=files, passwd=passwd, group=group)


def test_oci_defaults() -> None:
    doc = _oci({"Env": ["X=1"]})
    process = doc["process"]
    assert process["args"] == ["sh"] and process["cwd"] == "/"
    assert process["env"] == [f"PATH={spec.DEFAULT_PATH}", f"HOSTNAME={CID[:12]}", "X=1"]
    assert set(process["capabilities"]["bounding"]) == set(spec.DEFAULT_CAPABILITIES)
    assert "CAP_SYS_ADMIN" not in process["capabilities"]["effective"]
    assert doc["hostname"] == CID[:12]
    linux = doc["linux"]
    assert "/proc/kcore" in linux["maskedPaths"] and "/proc/sys" in linux["readonlyPaths"]
    assert {"type": "network"} in linux["namespaces"]
    mounts = {m["destination"]: m for m in doc["mounts"]}
    assert "size=67108864" in mounts["/dev/shm"]["options"]
    assert mounts["/etc/hosts"]["source"] == "/b/hosts" and "/etc/resolv.conf" not in mounts
    assert {"type": "network"} not in _oci({}, "host")["linux"]["namespaces"]


def test_oci_user() -> None:
    assert _oci({})["process"]["user"] == {"uid": 0, "gid": 0}
    assert _oci({"User": "www"})["process"]["user"] == {"uid": 33, "gid": 33,
                                                       "additionalGids": [50]}  # fmt: skip
    assert _oci({"User": "1000:50"})["process"]["user"] == {"uid": 1000, "gid": 50}
    with pytest.raises(InvalidArgument, match="unable to find user nobody"):
        _oci({"User": "nobody"})


def test_resolv_conf_drops_loopback_servers() -> None:
    text = "nameserver 127.0.0.53\nnameserver 10.0.0.1\nsearch lan\n"
    assert spec.resolv_conf(text) == "nameserver 10.0.0.1\nsearch lan\n"
    assert spec.resolv_conf(text, host_mode=True) == text


def test_exposed_ports_merge_image_and_request() -> None:
    config = spec.merge_config({"Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}}},
                               {"ExposedPorts": {"53/udp": {}, "8080": {}}}, CID)  # fmt: skip
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8080/tcp": {}}
    assert "ExposedPorts" not in spec.merge_config({"Cmd": ["sh"]}, {}, CID)
    with pytest.raises(InvalidArgument, match="ExposedPorts"):
        spec.merge_config({"Cmd": ["sh"]}, {"ExposedPorts": {"http": {}}}, CID)
