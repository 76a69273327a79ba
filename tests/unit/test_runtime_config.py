"""oci.runtime_config: every refusal names its field; the default spec is valid."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sampan.errors import InvalidArgument, NotFound
from sampan.oci.runtime_config import (
    NAMESPACE_TYPES,
    default_spec,
    load_config,
    validate,
    validate_hook,
    validate_process,
)

Edit = Callable[[dict[str, Any]], None]


def minimal() -> dict[str, Any]:
    return {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/"},
        "linux": {"namespaces": [{"type": "mount"}]},
    }


def edited(edit: Edit) -> dict[str, Any]:
    cfg = minimal()
    edit(cfg)
    return cfg


def refused(cfg: object, field: str) -> str:
    with pytest.raises(InvalidArgument) as info:
        validate(cfg)
    msg = str(info.value)
    assert msg.startswith(f"config.json: {field}: "), msg
    return msg


def test_minimal_config_is_valid() -> None:
    validate(minimal())


def test_default_spec_validates() -> None:
    validate(default_spec())


def test_default_spec_survives_a_json_round_trip() -> None:
    validate(json.loads(json.dumps(default_spec())))


def test_default_spec_has_no_user_namespace() -> None:
    kinds = [ns["type"] for ns in default_spec()["linux"]["namespaces"]]
    assert "user" not in kinds
    assert {"pid", "network", "ipc", "uts", "mount"} <= set(kinds)


def test_default_spec_rootless_has_a_user_namespace_and_maps() -> None:
    spec = default_spec(rootless=True)
    validate(spec)
    linux = spec["linux"]
    assert "user" in [ns["type"] for ns in linux["namespaces"]]
    assert linux["uidMappings"] and linux["gidMappings"]
    assert "resources" not in linux


def test_default_spec_returns_a_fresh_object() -> None:
    a = default_spec()
    a["process"]["args"].append("x")
    a["linux"]["namespaces"].clear()
    assert default_spec()["process"]["args"] == ["sh"]
    assert default_spec()["linux"]["namespaces"]


def test_validate_does_not_modify_the_config() -> None:
    spec = default_spec(rootless=True)
    before = copy.deepcopy(spec)
    validate(spec)
    assert spec == before


# (field named in the message, edit that breaks it)
REFUSALS: list[tuple[str, Edit]] = [
    ("ociVersion", lambda c: c.pop("ociVersion")),
    ("ociVersion", lambda c: c.update(ociVersion=1)),
    ("root", lambda c: c.pop("root")),
    ("root.path", lambda c: c["root"].pop("path")),
    ("root.path", lambda c: c["root"].update(path="")),
    ("root.readonly", lambda c: c["root"].update(readonly="yes")),
    ("process", lambda c: c.update(process=[])),
    ("process.args", lambda c: c["process"].pop("args")),
    ("process.args", lambda c: c["process"].update(args=[])),
    ("process.args", lambda c: c["process"].update(args="sh")),
    ("process.args[1]", lambda c: c["process"].update(args=["sh", 1])),
    ("process.cwd", lambda c: c["process"].update(cwd="relative")),
    ("process.cwd", lambda c: c["process"].update(cwd=None)),
    ("process.env", lambda c: c["process"].update(env="A=1")),
    ("process.env[1]", lambda c: c["process"].update(env=["A=1", "NOEQUALS"])),
    ("process.terminal", lambda c: c["process"].update(terminal=1)),
    ("process.consoleSize", lambda c: c["process"].update(consoleSize=[24, 80])),
    ("process.consoleSize.height", lambda c: c["process"].update(consoleSize={"width": 80})),
    (
        "process.consoleSize.width",
        lambda c: c["process"].update(consoleSize={"height": 24, "width": -1}),
    ),
    ("process.user", lambda c: c["process"].update(user="root")),
    ("process.user.uid", lambda c: c["process"].update(user={"uid": -1})),
    ("process.user.gid", lambda c: c["process"].update(user={"gid": 0xFFFFFFFF})),
    ("process.user.uid", lambda c: c["process"].update(user={"uid": True})),
    ("process.user.umask", lambda c: c["process"].update(user={"umask": 0o1000})),
    (
        "process.user.additionalGids[1]",
        lambda c: c["process"].update(user={"additionalGids": [1, "2"]}),
    ),
    ("process.capabilities", lambda c: c["process"].update(capabilities=[])),
    (
        "process.capabilities.bogus",
        lambda c: c["process"].update(capabilities={"bogus": []}),
    ),
    (
        "process.capabilities.bounding[0]",
        lambda c: c["process"].update(capabilities={"bounding": [7]}),
    ),
    ("process.rlimits", lambda c: c["process"].update(rlimits={})),
    ("process.rlimits[0]", lambda c: c["process"].update(rlimits=["RLIMIT_NOFILE"])),
    (
        "process.rlimits[0].type",
        lambda c: c["process"].update(rlimits=[{"type": "NOFILE", "soft": 1, "hard": 1}]),
    ),
    (
        "process.rlimits[1].type",
        lambda c: c["process"].update(
            rlimits=[
                {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2},
            ]
        ),
    ),
    (
        "process.rlimits[0].soft",
        lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_CORE", "hard": 1}]),
    ),
    (
        "process.rlimits[0].hard",
        lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_CORE", "soft": 0, "hard": -1}]),
    ),
    ("process.noNewPrivileges", lambda c: c["process"].update(noNewPrivileges="true")),
    ("process.oomScoreAdj", lambda c: c["process"].update(oomScoreAdj=1001)),
    ("process.apparmorProfile", lambda c: c["process"].update(apparmorProfile=1)),
    ("process.selinuxLabel", lambda c: c["process"].update(selinuxLabel=[])),
    ("hostname", lambda c: c.update(hostname=5)),
    ("domainname", lambda c: c.update(domainname=None)),
    ("mounts", lambda c: c.update(mounts={})),
    ("mounts[0]", lambda c: c.update(mounts=["/proc"])),
    ("mounts[0].destination", lambda c: c.update(mounts=[{"type": "proc"}])),
    (
        "mounts[1].destination",
        lambda c: c.update(mounts=[{"destination": "/proc"}, {"destination": "sys"}]),
    ),
    ("mounts[0].type", lambda c: c.update(mounts=[{"destination": "/a", "type": 1}])),
    ("mounts[0].source", lambda c: c.update(mounts=[{"destination": "/a", "source": None}])),
    ("mounts[0].options", lambda c: c.update(mounts=[{"destination": "/a", "options": "ro"}])),
    (
        "mounts[0].options[1]",
        lambda c: c.update(mounts=[{"destination": "/a", "options": ["ro", 1]}]),
    ),
    (
        "mounts[0].uidMappings",
        lambda c: c.update(
            mounts=[{"destination": "/a", "uidMappings": [{"containerID": 0, "hostID": 0}]}]
        ),
    ),
    ("hooks", lambda c: c.update(hooks=[])),
    ("hooks.preStart", lambda c: c.update(hooks={"preStart": []})),
    ("hooks.prestart", lambda c: c.update(hooks={"prestart": {}})),
    ("hooks.prestart[0]", lambda c: c.update(hooks={"prestart": ["/bin/true"]})),
    ("hooks.poststop[0].path", lambda c: c.update(hooks={"poststop": [{"path": "true"}]})),
    ("hooks.poststop[0].path", lambda c: c.update(hooks={"poststop": [{"args": []}]})),
    (
        "hooks.createRuntime[0].args[0]",
        lambda c: c.update(hooks={"createRuntime": [{"path": "/bin/x", "args": [0]}]}),
    ),
    (
        "hooks.startContainer[0].env",
        lambda c: c.update(hooks={"startContainer": [{"path": "/bin/x", "env": "A=1"}]}),
    ),
    (
        "hooks.poststart[0].timeout",
        lambda c: c.update(hooks={"poststart": [{"path": "/bin/x", "timeout": 0}]}),
    ),
    ("annotations", lambda c: c.update(annotations=["a"])),
    ("annotations.k", lambda c: c.update(annotations={"k": 1})),
    ("linux", lambda c: c.update(linux=[])),
    ("linux.namespaces", lambda c: c["linux"].update(namespaces={})),
    ("linux.namespaces[0]", lambda c: c["linux"].update(namespaces=["pid"])),
    ("linux.namespaces[0].type", lambda c: c["linux"].update(namespaces=[{"type": "bogus"}])),
    ("linux.namespaces[0].type", lambda c: c["linux"].update(namespaces=[{}])),
    (
        "linux.namespaces[1].type",
        lambda c: c["linux"].update(namespaces=[{"type": "pid"}, {"type": "pid"}]),
    ),
    (
        "linux.namespaces[0].path",
        lambda c: c["linux"].update(namespaces=[{"type": "network", "path": "proc/1/ns/net"}]),
    ),
    (
        "linux.uidMappings",
        lambda c: c["linux"].update(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}]),
    ),
    (
        "linux.uidMappings",
        lambda c: c["linux"].update(gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}]),
    ),
    (
        "linux.uidMappings[0].size",
        lambda c: c["linux"].update(
            namespaces=[{"type": "user"}], uidMappings=[{"containerID": 0, "hostID": 0}]
        ),
    ),
    (
        "linux.gidMappings[0].hostID",
        lambda c: c["linux"].update(
            namespaces=[{"type": "user"}],
            gidMappings=[{"containerID": 0, "hostID": -1, "size": 1}],
        ),
    ),
    ("linux.gidMappings[0]", lambda c: c["linux"].update(gidMappings=[[0, 0, 1]])),
    ("hostname", lambda c: c.update(hostname="box")),
    ("domainname", lambda c: c.update(domainname="example.org")),
    ("linux.devices", lambda c: c["linux"].update(devices={})),
    ("linux.devices[0]", lambda c: c["linux"].update(devices=["/dev/fuse"])),
    (
        "linux.devices[0].path",
        lambda c: c["linux"].update(devices=[{"path": "dev/fuse", "type": "c"}]),
    ),
    (
        "linux.devices[0].type",
        lambda c: c["linux"].update(devices=[{"path": "/dev/x", "type": "x", "major": 1}]),
    ),
    (
        "linux.devices[0].major",
        lambda c: c["linux"].update(devices=[{"path": "/dev/x", "type": "c", "minor": 1}]),
    ),
    (
        "linux.devices[0].minor",
        lambda c: c["linux"].update(devices=[{"path": "/dev/x", "type": "b", "major": 8}]),
    ),
    (
        "linux.devices[0].fileMode",
        lambda c: c["linux"].update(
            devices=[{"path": "/dev/x", "type": "c", "major": 1, "minor": 1, "fileMode": "0666"}]
        ),
    ),
    ("linux.cgroupsPath", lambda c: c["linux"].update(cgroupsPath=1)),
    ("linux.resources", lambda c: c["linux"].update(resources=[])),
    ("linux.sysctl", lambda c: c["linux"].update(sysctl=[])),
    (
        "linux.sysctl.net.ipv4.ip_forward",
        lambda c: c["linux"].update(sysctl={"net.ipv4.ip_forward": 1}),
    ),
    ("linux.seccomp", lambda c: c["linux"].update(seccomp="default")),
    ("linux.maskedPaths[1]", lambda c: c["linux"].update(maskedPaths=["/proc/kcore", "proc"])),
    ("linux.readonlyPaths[0]", lambda c: c["linux"].update(readonlyPaths=[None])),
    ("linux.rootfsPropagation", lambda c: c["linux"].update(rootfsPropagation="recursive")),
    ("linux.mountLabel", lambda c: c["linux"].update(mountLabel=0)),
    ("linux.intelRdt", lambda c: c["linux"].update(intelRdt={"closID": "x"})),
    ("linux.personality", lambda c: c["linux"].update(personality="LINUX")),
    ("linux.personality.domain", lambda c: c["linux"].update(personality={"domain": "BSD"})),
]


@pytest.mark.parametrize(
    ("field", "edit"), REFUSALS, ids=[f"{i}-{field}" for i, (field, _) in enumerate(REFUSALS)]
)
def test_refusal_names_the_field(field: str, edit: Edit) -> None:
    refused(edited(edit), field)


def test_top_level_must_be_an_object() -> None:
    refused([], "(top level)")


def test_args_message() -> None:
    msg = refused(edited(lambda c: c["process"].update(args=[])), "process.args")
    assert msg.endswith("must be a non-empty list of strings")


def test_unknown_namespace_type_message() -> None:
    msg = refused(
        edited(lambda c: c["linux"].update(namespaces=[{"type": "net"}])),
        "linux.namespaces[0].type",
    )
    assert "unknown namespace type 'net'" in msg


def test_mount_destination_must_be_absolute_message() -> None:
    msg = refused(
        edited(lambda c: c.update(mounts=[{"destination": "/proc"}, {"destination": "sys"}])),
        "mounts[1].destination",
    )
    assert "must be an absolute path, not 'sys'" in msg


def test_rlimit_soft_above_hard() -> None:
    msg = refused(
        edited(
            lambda c: c["process"].update(
                rlimits=[{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]
            )
        ),
        "process.rlimits[0]",
    )
    assert "RLIMIT_NOFILE soft limit 2048 is above its hard limit 1024" in msg


def test_rlimit_soft_equal_hard_is_fine() -> None:
    validate(
        edited(
            lambda c: c["process"].update(
                rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}]
            )
        )
    )


def test_hostname_needs_a_uts_namespace() -> None:
    msg = refused(edited(lambda c: c.update(hostname="box")), "hostname")
    assert "uts namespace" in msg

    def with_uts(c: dict[str, Any]) -> None:
        c["hostname"] = "box"
        c["linux"]["namespaces"].append({"type": "uts"})

    validate(edited(with_uts))


def test_empty_hostname_needs_no_uts_namespace() -> None:
    validate(edited(lambda c: c.update(hostname="")))


def test_uid_mappings_need_a_user_namespace() -> None:
    def add_maps(c: dict[str, Any]) -> None:
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]

    msg = refused(edited(add_maps), "linux.uidMappings")
    assert "user namespace" in msg

    def with_userns(c: dict[str, Any]) -> None:
        add_maps(c)
        c["linux"]["namespaces"].append({"type": "user"})

    validate(edited(with_userns))


def test_bad_hook_path() -> None:
    msg = refused(
        edited(lambda c: c.update(hooks={"prestart": [{"path": "/ok"}, {"path": "rel/hook"}]})),
        "hooks.prestart[1].path",
    )
    assert "must be an absolute path, not 'rel/hook'" in msg


def test_every_namespace_type_is_accepted() -> None:
    def all_kinds(c: dict[str, Any]) -> None:
        c["linux"]["namespaces"] = [{"type": t} for t in NAMESPACE_TYPES]

    validate(edited(all_kinds))


def test_pipe_devices_need_no_numbers() -> None:
    validate(edited(lambda c: c["linux"].update(devices=[{"path": "/dev/p", "type": "p"}])))


def test_null_resources_and_seccomp_are_accepted() -> None:
    validate(edited(lambda c: c["linux"].update(resources=None, seccomp=None)))


def test_validate_process_uses_its_field_name() -> None:
    with pytest.raises(InvalidArgument, match=r"^config\.json: exec\.args: "):
        validate_process({"args": []}, "exec")
    validate_process({"args": ["true"]}, "exec")


def test_validate_hook_directly() -> None:
    validate_hook({"path": "/bin/true", "args": ["true"], "env": ["A=1"], "timeout": 5}, "h")
    with pytest.raises(InvalidArgument, match=r"^config\.json: h\.timeout: "):
        validate_hook({"path": "/bin/true", "timeout": True}, "h")


# -- load_config --------------------------------------------------------------------


def test_load_config_reads_and_validates(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(default_spec()))
    assert load_config(str(tmp_path)) == default_spec()
    assert load_config(str(tmp_path) + "/") == default_spec()


def test_load_config_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        load_config(str(tmp_path))
    assert f"{tmp_path}/config.json" in str(info.value)


def test_load_config_malformed_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"ociVersion": ')
    with pytest.raises(InvalidArgument) as info:
        load_config(str(tmp_path))
    assert str(info.value).startswith(f"{tmp_path}/config.json: malformed JSON: ")


def test_load_config_refuses_nan(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"ociVersion": NaN}')
    with pytest.raises(InvalidArgument, match="malformed JSON"):
        load_config(str(tmp_path))


def test_load_config_invalid_shape(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"ociVersion": "1.0.2"}')
    with pytest.raises(InvalidArgument, match=r"^config\.json: root: "):
        load_config(str(tmp_path))


def test_load_config_unreadable_is_invalid_argument(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    with pytest.raises(InvalidArgument, match=r"config\.json"):
        load_config(str(tmp_path))
