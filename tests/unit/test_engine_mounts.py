"""engine/mounts.py and the pure parts of engine/volumes.py: docker's mount rules, no root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sampan.engine import mounts, spec, volumes
from sampan.engine.containers import Container
from sampan.errors import InvalidArgument, NotFound, Unsupported


class _Volumes:
    def path(self, name: str) -> str:
        return f"/root/volumes/{name}/_data"


class _Containers:
    def __init__(self, found: dict[str, Container]) -> None:
        self.found = found

    def get(self, ref: str) -> Container:
        if ref not in self.found:
            raise NotFound(f"No such container: {ref}")
        return self.found[ref]


class _Engine:
    def __init__(self, containers: dict[str, Container] | None = None) -> None:
        self.volumes = _Volumes()
        self.containers = _Containers(containers or {})


def _container(host: dict[str, Any]) -> Container:
    checked = spec.check_host_config(host)
    return Container("c" * 64, "web", "sha256:x", "busybox", 0.0, {"Volumes": None}, checked, {})


def _plan(
    host: dict[str, Any],
    image: dict[str, Any] | None = None,
    request: dict[str, Any] | None = None,
    engine: _Engine | None = None,
) -> Container:
    c = _container(host)
    mounts.plan(engine or _Engine(), c, {"HostConfig": host, **(request or {})}, image or {})  # type: ignore[arg-type]
    return c


def _points(c: Container) -> dict[str, dict[str, Any]]:
    return {p["Destination"]: p for p in c.state["MountPoints"]}


# -- Binds ------------------------------------------------------------------------------


def test_binds_volume_bind_and_anonymous(tmp_path: Path) -> None:
    c = _plan({"Binds": ["data:/data", f"{tmp_path}:/host:ro,rslave", "/anon"]})
    points = _points(c)
    data = points["/data"]
    assert data["Type"] == "volume" and data["Name"] == "data" and data["Mode"] == "z"
    assert data["Source"] == "/root/volumes/data/_data" and data["CopyData"] and data["RW"]
    host = points["/host"]
    assert host["Type"] == "bind" and host["Source"] == str(tmp_path)
    assert host["RW"] is False and host["Propagation"] == "rslave" and host["Mode"] == "ro,rslave"
    anon = points["/anon"]
    assert anon["Type"] == "volume" and anon["Anonymous"] and len(anon["Name"]) == 64
    # HostConfig keeps what was given
    assert c.host_config["Binds"] == ["data:/data", f"{tmp_path}:/host:ro,rslave", "/anon"]


def test_bind_default_propagation_and_clean_paths(tmp_path: Path) -> None:
    points = _points(_plan({"Binds": [f"{tmp_path}/./:/x/../y/"]}))
    assert points["/y"]["Propagation"] == "rprivate" and points["/y"]["Source"] == str(tmp_path)


def test_bind_of_missing_path_names_it() -> None:
    with pytest.raises(InvalidArgument, match="bind source path does not exist: /no/such/dir"):
        _plan({"Binds": ["/no/such/dir:/x"]})
    with pytest.raises(InvalidArgument, match="bind source path does not exist: /no/such/dir"):
        _plan({"Mounts": [{"Type": "bind", "Source": "/no/such/dir", "Target": "/x"}]})


def test_create_mountpoint_allows_a_missing_source() -> None:
    c = _plan({"Mounts": [{"Type": "bind", "Source": "/no/such/dir", "Target": "/x",
                           "BindOptions": {"CreateMountpoint": True}}]})  # fmt: skip
    assert _points(c)["/x"]["Create"] is True


@pytest.mark.parametrize(
    ("bind", "message"),
    [
        ("", "invalid volume specification: ''"),
        ("data:relative", "mount path must be absolute"),
        ("data:/", "destination can't be '/'"),
        ("/foo:rw", "invalid volume specification: '/foo:rw'"),
        ("data:/x:bogus", "invalid mode: bogus"),
        ("data:/x:ro,rw", "invalid mode: ro,rw"),
        ("data:/x:rshared", "field BindOptions must not be specified"),
        ("/tmp:/x:nocopy", "field VolumeOptions must not be specified"),
        ("a/b:/x", "includes invalid characters for a local volume name"),
        ("a:b:c:d", "invalid volume specification"),
    ],
)
def test_bad_binds(bind: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
        _plan({"Binds": [bind]})


def test_z_is_accepted_without_selinux() -> None:
    if Path("/sys/fs/selinux/enforce").exists():
        pytest.skip("SELinux enabled here: z/Z are refused")
    assert _points(_plan({"Binds": ["/tmp:/x:z"]}))["/x"]["Mode"] == "z"


def test_nocopy_and_volume_driver() -> None:
    points = _points(_plan({"Binds": ["v1:/x:nocopy"], "VolumeDriver": "local"}))
    assert points["/x"]["CopyData"] is False and points["/x"]["Driver"] == "local"


def test_duplicates_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /x"):
        _plan({"Binds": ["a1:/x", f"{tmp_path}:/x/"]})
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /x"):
        _plan({"Binds": ["a1:/x"], "Mounts": [{"Type": "volume", "Target": "/x"}]})
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /x"):
        _plan({"Binds": ["a1:/x"], "Tmpfs": {"/x": ""}})


# -- Mounts -----------------------------------------------------------------------------


def test_mounts_volume_with_options() -> None:
    m = {
        "Type": "volume",
        "Source": "named",
        "Target": "/v",
        "ReadOnly": True,
        "VolumeOptions": {
            "NoCopy": True,
            "Labels": {"a": "b"},
            "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs", "device": "tmpfs"}},
        },
    }
    point = _points(_plan({"Mounts": [m]}))["/v"]
    assert point["Name"] == "named" and point["RW"] is False and point["CopyData"] is False
    assert point["Labels"] == {"a": "b"}
    assert point["Options"] == {"type": "tmpfs", "device": "tmpfs"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"Labels": "a=b"}, "Labels"),
        ({"Labels": {"a": 1}}, "Labels"),
        ({"DriverConfig": {"Options": "type=tmpfs"}}, "Options"),
        ({"DriverConfig": {"Options": {"type": 1, "device": "tmpfs"}}}, "type"),
        ({"DriverConfig": {"Options": {"type": "tmpfs"}}}, "device"),
        ({"DriverConfig": {"Options": {"bogus": "x"}}}, "bogus"),
        ({"DriverConfig": {"Name": 5}}, "Name"),
    ],
)  # fmt: skip
def test_volume_options_checked_before_anything_is_made(
    options: dict[str, Any], message: str
) -> None:
    """Checked by plan (a 400 naming the field), not by the volume's create after the
    container's record is in (a TypeError there was a 500)."""
    m = {"Type": "volume", "Source": "named", "Target": "/v", "VolumeOptions": options}
    with pytest.raises(InvalidArgument, match=message):
        _plan({"Mounts": [m]})


def test_tmpfs_option_pairs_of_the_wrong_type() -> None:
    m = {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"Options": [["exec", 1]]}}
    with pytest.raises(InvalidArgument, match=r"TmpfsOptions\.Options"):
        _plan({"Mounts": [m]})


def test_mounts_tmpfs_options() -> None:
    m = {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1770}}
    point = _points(_plan({"Mounts": [m]}))["/t"]
    assert point["Data"] == "mode=1770,size=64m"
    odd = {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1000}}
    assert _points(_plan({"Mounts": [odd]}))["/t"]["Data"] == "size=1000"


@pytest.mark.parametrize(
    ("mount", "error", "message"),
    [
        ({"Type": "bind", "Target": "/x"}, InvalidArgument, "field Source must not be empty"),
        ({"Type": "volume"}, InvalidArgument, "field Target must not be empty"),
        ({"Type": "tmpfs", "Source": "x", "Target": "/t"}, InvalidArgument,
         "field Source must not be specified"),
        ({"Type": "volume", "Target": "/x", "BindOptions": {}}, InvalidArgument,
         "field BindOptions must not be specified"),
        ({"Type": "bind", "Source": "/tmp", "Target": "/x",
          "BindOptions": {"Propagation": "sideways"}}, InvalidArgument,
         "invalid propagation mode: sideways"),
        ({"Type": "weird", "Target": "/x"}, InvalidArgument, "mount type unknown"),
        ({"Type": "npipe", "Target": "/x"}, Unsupported, "not supported"),
        ({"Type": "volume", "Target": "/x", "Bogus": 1}, InvalidArgument, "unknown field"),
        ({"Type": "volume", "Target": "/x", "VolumeOptions": {"Subpath": "a"}}, Unsupported,
         "Subpath"),
    ],
)  # fmt: skip
def test_bad_mounts(mount: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        _plan({"Mounts": [mount]})


# -- Tmpfs, VolumesFrom, image volumes ---------------------------------------------------


def test_tmpfs_options_merge_and_refuse() -> None:
    assert mounts.tmpfs_options("", "t") == ["noexec", "nosuid", "nodev", "rprivate"]
    merged = mounts.tmpfs_options("exec,size=1m,size=2m,mode=1777", "t")
    assert merged == ["nosuid", "nodev", "rprivate", "exec", "size=2m", "mode=1777"]
    with pytest.raises(InvalidArgument, match="unknown tmpfs option 'bogus'"):
        mounts.tmpfs_options("bogus", "t")
    with pytest.raises(InvalidArgument, match="invalid tmpfs option 'size=lots'"):
        mounts.tmpfs_options("size=lots", "t")
    with pytest.raises(InvalidArgument, match="must be absolute"):
        _plan({"Tmpfs": {"rel": ""}})


def test_volumes_from_copies_mount_points() -> None:
    source = _plan({"Binds": ["shared:/s", "/tmp:/b"]})
    engine = _Engine({"src": source})
    c = _plan({"VolumesFrom": ["src:ro"]}, engine=engine)
    points = _points(c)
    assert points["/s"]["Name"] == "shared" and points["/s"]["RW"] is False
    assert points["/s"]["CopyData"] is False and points["/b"]["Type"] == "bind"
    over = _points(_plan({"VolumesFrom": ["src"], "Binds": ["other:/s"]}, engine=engine))
    assert over["/s"]["Name"] == "other"  # a bind takes the destination from volumes-from
    with pytest.raises(InvalidArgument, match="No such container: nope"):
        _plan({"VolumesFrom": ["nope"]}, engine=engine)
    with pytest.raises(InvalidArgument, match="invalid mode: rshared"):
        _plan({"VolumesFrom": ["src:rshared"]}, engine=engine)


def test_image_volumes_become_anonymous_unless_covered() -> None:
    image = {"Volumes": {"/var/lib/db": {}, "/cache": {}, "/run/x": {}}}
    c = _plan({"Binds": ["named:/cache"], "Tmpfs": {"/run/x": ""}}, image, {"Volumes": {"/v": {}}})
    points = _points(c)
    assert points["/var/lib/db"]["Anonymous"] and points["/var/lib/db"]["CopyData"]
    assert points["/cache"]["Name"] == "named" and "/run/x" not in points
    assert points["/v"]["Anonymous"]
    assert c.config["Volumes"] == {"/var/lib/db": {}, "/cache": {}, "/run/x": {}, "/v": {}}


# -- config.json and inspect ------------------------------------------------------------


def test_oci_mounts_order_options_and_defaults_giving_way(tmp_path: Path) -> None:
    c = _plan({"Binds": ["deep:/a/b/c", f"{tmp_path}:/a:ro", "/dev/shm:/dev/shm"],
               "Tmpfs": {"/a/b": "size=1m"},
               "Mounts": [{"Type": "bind", "Source": str(tmp_path), "Target": "/n",
                           "BindOptions": {"NonRecursive": True}}]})  # fmt: skip
    found, root = mounts.oci_mounts(_Engine(), c)  # type: ignore[arg-type]
    assert root == ""
    dests = [m["destination"] for m in found]
    assert dests.index("/a") < dests.index("/a/b") < dests.index("/a/b/c")
    by = {m["destination"]: m for m in found}
    assert by["/a"]["options"] == ["rbind", "ro", "rprivate"]
    assert by["/n"]["options"] == ["bind", "rprivate"]
    assert by["/a/b/c"] == {"destination": "/a/b/c", "type": "bind",
                            "source": "/root/volumes/deep/_data", "options": ["rbind"]}  # fmt: skip
    assert by["/a/b"]["type"] == "tmpfs" and "size=1m" in by["/a/b"]["options"]
    doc = spec.oci_spec("c" * 64, {"Hostname": "h", "Env": [], "Cmd": ["true"]}, c.host_config,
                        files={})  # fmt: skip
    mounts.apply(_Engine(), c, doc)  # type: ignore[arg-type]
    shm = [m for m in doc["mounts"] if m["destination"] == "/dev/shm"]
    assert len(shm) == 1 and shm[0]["type"] == "bind"  # the default /dev/shm gave way


def test_shared_propagation_needs_a_shared_source(tmp_path: Path) -> None:
    c = _plan({"Binds": [f"{tmp_path}:/x:rshared"]})
    if "shared:" in mounts._mount_of(str(tmp_path))[1]:
        pytest.skip("the temporary directory is on a shared mount here")
    with pytest.raises(InvalidArgument, match="needs a shared mount"):
        mounts.oci_mounts(_Engine(), c)  # type: ignore[arg-type]


def test_api_mounts_shape(tmp_path: Path) -> None:
    c = _plan({"Binds": ["data:/data", f"{tmp_path}:/b:ro"],
               "Mounts": [{"Type": "tmpfs", "Target": "/t"}]})  # fmt: skip
    docs = {d["Destination"]: d for d in mounts.api_mounts(c)}
    assert docs["/data"] == {
        "Type": "volume",
        "Name": "data",
        "Source": "/root/volumes/data/_data",
        "Destination": "/data",
        "Driver": "local",
        "Mode": "z",
        "RW": True,
        "Propagation": "",
    }
    assert docs["/b"] == {
        "Type": "bind",
        "Source": str(tmp_path),
        "Destination": "/b",
        "Mode": "ro",
        "RW": False,
        "Propagation": "rprivate",
    }
    assert docs["/t"] == {
        "Type": "tmpfs",
        "Source": "",
        "Destination": "/t",
        "Mode": "",
        "RW": True,
        "Propagation": "",
    }


def test_host_config_keeps_fields_as_given() -> None:
    host = spec.check_host_config({"Binds": ["a1:/a"], "Tmpfs": {"/t": "size=1m"},
                                   "VolumesFrom": ["x"], "Mounts": [{"Type": "tmpfs",
                                                                     "Target": "/m"}]})  # fmt: skip
    assert host["Binds"] == ["a1:/a"] and host["Tmpfs"] == {"/t": "size=1m"}
    assert host["VolumesFrom"] == ["x"] and host["Mounts"][0]["Target"] == "/m"
    with pytest.raises(InvalidArgument, match=r"HostConfig\.Binds"):
        spec.check_host_config({"Binds": "a:/b"})


# -- volumes.py's pure parts ------------------------------------------------------------


@pytest.mark.parametrize("name", ["ab", "a.b", "A_b-9", "0data"])
def test_volume_names_ok(name: str) -> None:
    assert volumes.check_name(name) == name


@pytest.mark.parametrize("name", ["a", "", "-ab", ".ab", "a/b", "a b", "é1"])
def test_volume_names_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid characters for a local volume name"):
        volumes.check_name(name)


def test_local_driver_options() -> None:
    volumes.check_options("v", {"type": "tmpfs", "device": "tmpfs", "o": "size=100m"})
    volumes.check_options("v", {"type": "none", "device": "/srv", "o": "bind"})
    with pytest.raises(InvalidArgument, match='invalid option: "colour"'):
        volumes.check_options("v", {"colour": "red"})
    with pytest.raises(InvalidArgument, match='missing required option: "device"'):
        volumes.check_options("v", {"type": "tmpfs"})
    with pytest.raises(InvalidArgument, match='missing required option: "type"'):
        volumes.check_options("v", {"device": "tmpfs", "o": "size=1m"})
    with pytest.raises(InvalidArgument, match='option "size"'):
        volumes.check_options("v", {"size": "10g"})
    with pytest.raises(InvalidArgument, match='option "device"'):
        volumes.check_options("v", {"type": "none", "device": "rel", "o": "bind"})
    assert volumes.mount_data("size=1m,ro,mode=700") == (1, "size=1m,mode=700")
