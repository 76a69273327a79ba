"""cli/mount_opts.py: run/create's -v, --mount, --tmpfs, --volumes-from into a create body."""

from __future__ import annotations

import os
from typing import Any

import pytest

from sampan.cli import mount_opts
from sampan.cli.args import parse
from sampan.cli.container import _LATER, RUN_FLAGS, create_body
from sampan.errors import InvalidArgument


def _body(*argv: str) -> dict[str, Any]:
    opts, args = parse(RUN_FLAGS + _LATER, [*argv, "busybox", "true"])
    return create_body(opts, args[0], args[1:])


def test_volume_flags_become_binds_and_volumes() -> None:
    body = _body("-v", "data:/data", "-v", "/anon", "-v", "/etc:/host-etc:ro", "-v", "./x:/x")
    assert body["HostConfig"]["Binds"] == [
        "data:/data", "/etc:/host-etc:ro", f"{os.getcwd()}/x:/x"
    ]  # fmt: skip
    assert body["Volumes"] == {"/anon": {}}


def test_tmpfs_and_volumes_from() -> None:
    body = _body("--tmpfs", "/run:size=64m,mode=1777", "--tmpfs", "/t", "--volumes-from", "db:ro")
    assert body["HostConfig"]["Tmpfs"] == {"/run": "size=64m,mode=1777", "/t": ""}
    assert body["HostConfig"]["VolumesFrom"] == ["db:ro"]


def test_no_mount_flags_no_fields() -> None:
    body = _body()
    assert "Binds" not in body["HostConfig"] and "Volumes" not in body


@pytest.mark.parametrize(
    ("text", "mount"),
    [
        ("type=bind,source=/srv,target=/srv,readonly",
         {"Type": "bind", "Source": "/srv", "Target": "/srv", "ReadOnly": True}),
        ("src=data,dst=/data", {"Type": "volume", "Source": "data", "Target": "/data"}),
        ("type=bind,src=/a,destination=/b,ro=false,bind-propagation=RSHARED",
         {"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": False,
          "BindOptions": {"Propagation": "rshared"}}),
        ("type=volume,dst=/v,volume-nocopy,volume-label=a=b,volume-driver=local,"
         "volume-opt=type=tmpfs,volume-opt=device=tmpfs",
         {"Type": "volume", "Target": "/v", "VolumeOptions": {
             "NoCopy": True, "Labels": {"a": "b"},
             "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs", "device": "tmpfs"}}}}),
        ("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770",
         {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 64 << 20,
                                                             "Mode": 0o1770}}),
        ('type=bind,"src=/a,b",dst=/c', {"Type": "bind", "Source": "/a,b", "Target": "/c"}),
        ("type=bind,src=/a,dst=/b,bind-nonrecursive",
         {"Type": "bind", "Source": "/a", "Target": "/b", "BindOptions": {"NonRecursive": True}}),
    ],
)  # fmt: skip
def test_mount_csv(text: str, mount: dict[str, Any]) -> None:
    assert mount_opts.parse_mount(text) == mount


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type=bind,src=/a", "target is required"),
        ("type=,dst=/a", "type is required"),
        ("dst=/a,bogus", "invalid field 'bogus' must be a key=value pair"),
        ("dst=/a,colour=red", "unexpected key 'colour' in 'colour=red'"),
        ("dst=/a,ro=maybe", "invalid value for ro: maybe"),
        ("type=tmpfs,dst=/a,tmpfs-size=lots", "invalid value for tmpfs-size: lots"),
        ("type=tmpfs,dst=/a,tmpfs-mode=9", "invalid value for tmpfs-mode: 9"),
        ("type=bind,src=/a,dst=/b,volume-nocopy", "cannot mix 'volume-\\*' options with mount "
         "type 'bind'"),
        ("type=volume,dst=/b,bind-propagation=shared", "cannot mix 'bind-\\*' options"),
        ("dst=/b,tmpfs-size=1m", "cannot mix 'tmpfs-\\*' options"),
        ('dst="/b', 'bare " in non-quoted-field'),
        ('"dst=/b', 'extraneous or missing " in quoted-field'),
    ],
)  # fmt: skip
def test_bad_mount_csv(text: str, message: str) -> None:
    with pytest.raises(
        InvalidArgument, match=f'invalid argument ".*" for "--mount" flag: {message}'
    ):
        mount_opts.parse_mount(text)


def test_relative_mount_source_becomes_absolute() -> None:
    assert mount_opts.parse_mount("type=bind,src=./d,dst=/d")["Source"] == f"{os.getcwd()}/d"


@pytest.mark.parametrize(
    ("text", "size"),
    [("1024", 1024), ("64m", 64 << 20), ("1.5g", 3 << 29), ("512MiB", 512 << 20), ("2k", 2048)],
)
def test_tmpfs_size_as_ram_in_bytes(text: str, size: int) -> None:
    mount = mount_opts.parse_mount(f"type=tmpfs,dst=/t,tmpfs-size={text}")
    assert mount["TmpfsOptions"]["SizeBytes"] == size


def test_csv_fields() -> None:
    assert mount_opts.csv_fields('a,"b,c",""""') == ["a", "b,c", '"']
    assert mount_opts.csv_fields("") == [""]


def test_ps_mounts_column() -> None:
    c = {"Mounts": [{"Name": "a" * 64, "Source": "/x", "Driver": "local"},
                    {"Source": "/srv/data", "Driver": ""}]}  # fmt: skip
    assert mount_opts.ps_mounts(c, trunc=True) == "a" * 14 + "…,/srv/data"
    assert mount_opts.ps_mounts(c, trunc=False) == "a" * 64 + ",/srv/data"
    assert mount_opts.ps_mounts({}, trunc=True) == ""


def test_every_dot_source_of_v_becomes_absolute() -> None:
    """The docker CLI makes any -v source starting with "." absolute (../data, .cache),
    not only ./ and . -- else the daemon takes "../data" for a volume name and refuses it."""
    body = _body("-v", "../data:/d", "-v", ".cache:/c:ro", "-v", "..:/up")
    parent = os.path.dirname(os.getcwd())
    assert body["HostConfig"]["Binds"] == [
        f"{parent}/data:/d", f"{os.getcwd()}/.cache:/c:ro", f"{parent}:/up"
    ]  # fmt: skip
