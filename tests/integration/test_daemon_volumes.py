"""Volumes and mounts through `sampan daemon`: the real docker CLI, docker-py, raw API calls.

A module-wide daemon runs on a private root where busybox was bootstrapped
before it started; the restart test has a daemon of its own that it kills
with SIGKILL.  Everything is checked by this module's own names and paths
(other suites run daemons and containers at the same time).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_fixtures import (
    REPO,
    SampanDaemon,
    bootstrapped,
    busybox_daemon,
    needs_docker_cli,
    wait_until,
)

pytestmark = needs_docker_cli


def _volume_image_tar() -> io.BytesIO:
    """A rootfs with busybox and /vol/hello (uid 1000, dir mode 0750), for VOLUME /vol."""
    from sampan.image import bootstrap

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name in ("bin", "vol"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o750 if name == "vol" else 0o755
            info.uid = info.gid = 1000 if name == "vol" else 0
            tar.addfile(info)
        tar.add(bootstrap.BUSYBOX, "bin/busybox")
        for applet in ("sh", "cat", "stat", "ls", "true"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        data = b"hello from the image\n"
        info = tarfile.TarInfo("vol/hello")
        info.size, info.uid, info.gid = len(data), 1000, 1000
        tar.addfile(info, io.BytesIO(data))
    out.seek(0)
    return out


def _volume_image(store: Any) -> None:
    """with-volume:1, an image with VOLUME /vol."""
    from sampan.image.archive_import import import_rootfs

    changes = ["VOLUME /vol", "ENV PATH=/bin", 'CMD ["sh"]']
    import_rootfs(store, _volume_image_tar(), changes=changes, ref="with-volume:1")


daemon = busybox_daemon("volumes", _volume_image)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" ")[4]
        if point == prefix or point.startswith(prefix + "/"):
            out.append(point)
    return out


def _volume(daemon: SampanDaemon, name: str) -> dict[str, Any]:
    doc = json.loads(daemon.docker("volume", "inspect", name).stdout)
    assert len(doc) == 1
    return doc[0]  # type: ignore[no-any-return]


def _volume_names(daemon: SampanDaemon) -> set[str]:
    return set(daemon.docker("volume", "ls", "-q").stdout.split())


def _sampan(daemon: SampanDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sampan.cli", "-H", daemon.host, *args],
        capture_output=True, text=True, cwd=REPO, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


# -- volume create/ls/inspect/rm/prune ----------------------------------------------------


def test_volume_create_ls_inspect_rm(daemon: SampanDaemon) -> None:
    assert daemon.docker("volume", "create", "--label", "team=a", "vol-a").stdout == "vol-a\n"
    doc = _volume(daemon, "vol-a")
    assert doc["Name"] == "vol-a" and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert doc["Labels"] == {"team": "a"}
    assert doc["Mountpoint"] == str(daemon.root / "volumes" / "vol-a" / "_data")
    assert Path(doc["Mountpoint"]).is_dir()
    assert doc["CreatedAt"].endswith("Z")
    # create of an existing name returns it
    assert daemon.docker("volume", "create", "vol-a").stdout == "vol-a\n"
    assert _volume(daemon, "vol-a")["Labels"] == {"team": "a"}
    listed = daemon.docker("volume", "ls", "--filter", "label=team=a").stdout.splitlines()
    assert listed[0].split() == ["DRIVER", "VOLUME", "NAME"] and listed[1].split() == [
        "local", "vol-a",
    ]  # fmt: skip
    assert "vol-a" in daemon.docker("volume", "ls", "--filter", "name=ol-", "-q").stdout
    assert daemon.docker("volume", "ls", "-q", "--filter", "driver=nope").stdout == ""
    form = daemon.docker("volume", "ls", "--filter", "label=team", "--format",
                         "{{.Name}}:{{.Driver}}:{{.Label \"team\"}}").stdout  # fmt: skip
    assert form == "vol-a:local:a\n"
    assert daemon.docker("volume", "rm", "vol-a").stdout == "vol-a\n"
    assert not (daemon.root / "volumes" / "vol-a").exists()
    missing = daemon.docker("volume", "inspect", "vol-a", check=False)
    assert missing.returncode == 1 and "no such volume" in missing.stderr
    gone = daemon.docker("volume", "rm", "vol-a", check=False)
    assert gone.returncode == 1 and "no such volume" in gone.stderr
    assert daemon.docker("volume", "rm", "-f", "vol-a").returncode == 0


def test_volume_create_bad_input(daemon: SampanDaemon) -> None:
    bad = daemon.docker("volume", "create", "bad/name", check=False)
    assert bad.returncode == 1 and "invalid characters for a local volume name" in bad.stderr
    opt = daemon.docker("volume", "create", "-o", "colour=red", "vol-bad", check=False)
    assert opt.returncode == 1 and 'invalid option: "colour"' in opt.stderr
    need = daemon.docker("volume", "create", "-o", "type=tmpfs", "vol-bad", check=False)
    assert need.returncode == 1 and 'missing required option: "device"' in need.stderr
    driver = daemon.docker("volume", "create", "-d", "nfs-plugin", "vol-bad", check=False)
    assert driver.returncode == 1 and "nfs-plugin" in driver.stderr
    assert "vol-bad" not in _volume_names(daemon)
    assert not (daemon.root / "volumes" / "vol-bad").exists()
    status, body = daemon.api_json("POST", "/volumes/create", {"Name": "x1", "Colour": "red"})
    assert status == 400 and "Colour" in body["message"]


def test_prune(daemon: SampanDaemon) -> None:
    daemon.docker("volume", "create", "--label", "prune-me=1", "prune-named")
    anon = daemon.docker("volume", "create", "--label", "prune-me=1").stdout.strip()
    daemon.api_json("POST", "/volumes/create", {"Labels": {"prune-me": "1", "other": "x"}})
    # sampan's CLI (docker 23+): anonymous ones only unless -a
    done = _sampan(daemon, "volume", "prune", "-f", "--filter", "label=prune-me=1",
                   "--filter", "label!=other")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Deleted Volumes:\n" + anon + "\n")
    assert "Total reclaimed space:" in done.stdout
    names = _volume_names(daemon)
    assert anon not in names and "prune-named" in names
    # the API at 1.42 semantics (filter all) and the docker CLI at 1.41 (every unused one)
    status, body = daemon.api_json("POST", "/v1.41/volumes/prune?filters="
                                   '{"label":["prune-me=1"],"all":["false"]}')  # fmt: skip
    assert status == 200 and len(body["VolumesDeleted"]) == 1  # the one labelled other=x
    out = daemon.docker("volume", "prune", "-f", "--filter", "label=prune-me=1").stdout
    assert "prune-named" in out
    assert "prune-named" not in _volume_names(daemon)


# -- containers with volumes ----------------------------------------------------------------


def test_named_volume_shared_by_containers(daemon: SampanDaemon) -> None:
    daemon.docker("run", "--rm", "-v", "shared-data:/data", "busybox", "sh", "-c",
                  "echo x > /data/f")  # fmt: skip
    assert daemon.docker("run", "--rm", "-v", "shared-data:/data", "busybox",
                         "cat", "/data/f").stdout == "x\n"  # fmt: skip
    assert "shared-data" in _volume_names(daemon)  # named: kept after --rm
    daemon.docker("volume", "rm", "shared-data")


def test_volume_initialised_from_image(daemon: SampanDaemon) -> None:
    out = daemon.docker("run", "--rm", "-v", "etc-copy:/etc", "busybox", "sh", "-c",
                        "grep ^root: /etc/passwd; stat -c '%u %a' /etc").stdout  # fmt: skip
    assert out.startswith("root:x:0:0:") and out.splitlines()[1] == "0 755"
    data = Path(_volume(daemon, "etc-copy")["Mountpoint"])
    assert (data / "passwd").is_file() and (data / "group").is_file()
    # once filled, a volume is never filled again: a file removed stays removed
    daemon.docker("run", "--rm", "-v", "etc-copy:/etc", "busybox", "rm", "/etc/group")
    assert not (data / "group").exists()
    daemon.docker("run", "--rm", "-v", "etc-copy:/etc", "busybox", "true")
    assert not (data / "group").exists()
    # nocopy: left empty
    daemon.docker("run", "--rm", "-v", "etc-empty:/etc:nocopy", "busybox", "true")
    assert not (Path(_volume(daemon, "etc-empty")["Mountpoint"]) / "passwd").exists()
    daemon.docker("volume", "rm", "etc-copy", "etc-empty")


def test_image_volume_becomes_an_anonymous_volume(daemon: SampanDaemon) -> None:
    cid = daemon.docker("create", "with-volume:1", "sh", "-c",
                        "cat /vol/hello; stat -c '%u %a' /vol").stdout.strip()  # fmt: skip
    doc = json.loads(daemon.docker("inspect", cid).stdout)[0]
    assert doc["Config"]["Volumes"] == {"/vol": {}}
    (mount,) = doc["Mounts"]
    assert mount["Type"] == "volume" and mount["Destination"] == "/vol" and len(mount["Name"]) == 64
    daemon.docker("start", cid)
    assert daemon.docker("wait", cid).stdout == "0\n"
    assert daemon.docker("logs", cid).stdout == "hello from the image\n1000 750\n"
    data = Path(mount["Source"])
    assert (data / "hello").stat().st_uid == 1000
    daemon.docker("rm", "-v", cid)
    assert not data.exists()
    # a mount over the image's volume takes its place: no anonymous volume
    before = _volume_names(daemon)
    out = daemon.docker("run", "--rm", "-v", "img-named:/vol", "with-volume:1", "cat",
                        "/vol/hello").stdout  # fmt: skip
    assert out == "hello from the image\n"
    out = daemon.docker("run", "--rm", "--tmpfs", "/vol", "with-volume:1", "ls", "/vol").stdout
    assert out == ""
    assert _volume_names(daemon) - before == {"img-named"}
    daemon.docker("volume", "rm", "img-named")


def test_bind_mounts_ro_and_rw(daemon: SampanDaemon, tmp_path: Path) -> None:
    host = tmp_path / "rw"
    host.mkdir()
    (host / "in").write_text("from host\n")
    out = daemon.docker("run", "--rm", "-v", f"{host}:/h", "busybox", "sh", "-c",
                        "cat /h/in; echo from container > /h/out").stdout  # fmt: skip
    assert out == "from host\n" and (host / "out").read_text() == "from container\n"
    ro = daemon.docker("run", "--rm", "-v", f"{host}:/h:ro", "busybox", "sh", "-c",
                       "touch /h/x", check=False)  # fmt: skip
    assert ro.returncode == 1 and "Read-only file system" in ro.stderr
    ro2 = daemon.docker("run", "--rm", "--mount", f"type=bind,src={host},dst=/h,readonly",
                        "busybox", "touch", "/h/x", check=False)  # fmt: skip
    assert ro2.returncode == 1 and "Read-only file system" in ro2.stderr
    assert not (host / "x").exists()
    one = host / "file"
    one.write_text("a file\n")
    assert daemon.docker("run", "--rm", "-v", f"{one}:/etc/a-file:ro", "busybox", "cat",
                         "/etc/a-file").stdout == "a file\n"  # fmt: skip


@pytest.mark.parametrize("how", ["-v", "--mount"])
def test_bind_of_missing_path_fails_and_leaves_nothing(daemon: SampanDaemon, how: str) -> None:
    missing = "/nonexistent/sampan-vol-test"
    spec = f"{missing}:/x" if how == "-v" else f"type=bind,src={missing},dst=/x"
    name = "missing-bind" + how.replace("-", "")
    done = daemon.docker("run", "--name", name, how, spec, "busybox", "true", check=False)
    assert done.returncode == 125 and missing in done.stderr
    assert daemon.docker("ps", "-aq", "--filter", f"name={name}").stdout == ""
    assert not os.path.exists(missing)


def _mount(source: str, target: str, kind: str | None = None, flags: int = 0) -> None:
    from sampan.linux.syscalls import mount

    mount(source, target, kind, flags)


def test_bind_propagation(daemon: SampanDaemon, tmp_path: Path) -> None:
    from sampan.linux.syscalls import umount

    shared = tmp_path / "shared"
    shared.mkdir()
    _mount("tmpfs", str(shared), "tmpfs")
    try:
        _mount("", str(shared), None, 0x100000)  # MS_SHARED
        (shared / "sub").mkdir()
        names = {"rslave": "prop-slave", "rprivate": "prop-private"}
        for mode, name in names.items():
            daemon.docker("run", "-d", "--name", name, "-v", f"{shared}:/s:{mode}", "busybox",
                          "sh", "-c", "sleep 1.5; grep -c ' /s/sub ' /proc/mounts")  # fmt: skip
        _mount("tmpfs", str(shared / "sub"), "tmpfs")
        for name in names.values():
            daemon.docker("wait", name)
        assert daemon.docker("logs", "prop-slave").stdout == "1\n"
        assert daemon.docker("logs", "prop-private").stdout == "0\n"
        doc = json.loads(daemon.docker("inspect", "prop-slave").stdout)[0]
        mounts = {m["Destination"]: m for m in doc["Mounts"]}
        assert mounts["/s"]["Propagation"] == "rslave" and mounts["/s"]["Type"] == "bind"
        daemon.docker("rm", *names.values())
        umount(str(shared / "sub"))
        # rshared: a mount made in the container shows on the host
        (shared / "back").mkdir()
        daemon.docker("run", "--rm", "--privileged", "-v", f"{shared}:/s:rshared",
                      "busybox", "mount", "-t", "tmpfs", "tmpfs", "/s/back")  # fmt: skip
        assert str(shared / "back") in _mounts_under(shared)
        umount(str(shared / "back"))
    finally:
        umount(str(shared), 2)
    # a shared propagation needs a shared source: a private one is refused at start
    private = tmp_path / "private"
    private.mkdir()
    done = daemon.docker("run", "--rm", "-v", f"{private}:/p:rshared", "busybox", "true",
                         check=False)  # fmt: skip
    if "shared:" not in _mount_fields(str(private)):
        assert done.returncode == 125 and "needs a shared mount" in done.stderr


def _mount_fields(path: str) -> str:
    from sampan.engine.mounts import _mount_of

    return _mount_of(path)[1]


def test_tmpfs_mounts(daemon: SampanDaemon) -> None:
    out = daemon.docker(
        "run", "--rm", "--tmpfs", "/t1:size=2m,mode=1777", "--mount",
        "type=tmpfs,dst=/t2,tmpfs-size=3m,tmpfs-mode=700", "busybox", "sh", "-c",
        "grep -E ' /t[12] ' /proc/mounts; stat -c '%n %a' /t1 /t2; df -k /t2 | tail -1",
    ).stdout.splitlines()  # fmt: skip
    t1 = next(line for line in out if " /t1 " in line)
    t2 = next(line for line in out if " /t2 " in line)
    assert t1.startswith("tmpfs /t1 tmpfs") and "size=2048k" in t1 and "noexec" in t1
    assert "size=3072k" in t2
    assert "/t1 1777" in out and "/t2 700" in out
    assert out[-1].split()[1] == "3072"
    bad = daemon.docker("run", "--rm", "--tmpfs", "/t:bogus=1", "busybox", "true", check=False)
    assert bad.returncode == 125 and "bogus" in bad.stderr


def test_volumes_from(daemon: SampanDaemon) -> None:
    daemon.docker("create", "--name", "vf-source", "-v", "vf-data:/shared", "-v", "/vf-anon",
                  "busybox", "true")  # fmt: skip
    daemon.docker("run", "--rm", "-v", "vf-data:/shared", "busybox", "sh", "-c",
                  "echo hello > /shared/f")  # fmt: skip
    out = daemon.docker("run", "--rm", "--volumes-from", "vf-source", "busybox", "sh", "-c",
                        "cat /shared/f; touch /vf-anon/ok && echo rw").stdout  # fmt: skip
    assert out == "hello\nrw\n"
    ro = daemon.docker("run", "--rm", "--volumes-from", "vf-source:ro", "busybox", "touch",
                       "/shared/g", check=False)  # fmt: skip
    assert ro.returncode == 1 and "Read-only file system" in ro.stderr
    nope = daemon.docker("run", "--rm", "--volumes-from", "no-such-container", "busybox", "true",
                         check=False)  # fmt: skip
    assert nope.returncode == 125 and "no-such-container" in nope.stderr
    anon = next(m["Name"] for m in json.loads(daemon.docker("inspect", "vf-source").stdout)[0][
        "Mounts"] if m["Destination"] == "/vf-anon")  # fmt: skip
    daemon.docker("rm", "-v", "vf-source")
    names = _volume_names(daemon)
    assert anon not in names and "vf-data" in names
    daemon.docker("volume", "rm", "vf-data")


def test_local_driver_tmpfs_device(daemon: SampanDaemon) -> None:
    daemon.docker("volume", "create", "-d", "local", "-o", "type=tmpfs", "-o", "device=tmpfs",
                  "-o", "o=size=5m", "tmpfs-vol")  # fmt: skip
    data = daemon.root / "volumes" / "tmpfs-vol" / "_data"
    assert not _mounts_under(data)
    script = "df -k /data | tail -1; echo kept > /data/f; sleep 3"
    cid = daemon.docker("run", "-d", "-v", "tmpfs-vol:/data", "busybox", "sh", "-c",
                        script).stdout.strip()  # fmt: skip
    second = daemon.docker("run", "-d", "-v", "tmpfs-vol:/data", "busybox", "sleep",
                           "1").stdout.strip()  # fmt: skip
    assert _mounts_under(data) == [str(data)]
    daemon.docker("wait", second)
    assert _mounts_under(data) == [str(data)]  # the first still uses it
    assert (data / "f").read_text() == "kept\n"
    daemon.docker("wait", cid)
    wait_until("the volume's tmpfs unmounted", lambda: not _mounts_under(data))
    assert daemon.docker("logs", cid).stdout.split()[1] == "5120"
    mounts = json.loads(daemon.docker("inspect", cid).stdout)[0]["Mounts"]
    assert mounts == [{"Type": "volume", "Name": "tmpfs-vol", "Source": str(data),
                       "Destination": "/data", "Driver": "local", "Mode": "z", "RW": True,
                       "Propagation": ""}]  # fmt: skip
    daemon.docker("rm", cid, second)
    daemon.docker("volume", "rm", "tmpfs-vol")


def test_local_driver_bind_device(daemon: SampanDaemon, tmp_path: Path) -> None:
    device = tmp_path / "device"
    device.mkdir()
    daemon.docker("volume", "create", "-o", "type=none", "-o", "o=bind", "-o",
                  f"device={device}", "bind-vol")  # fmt: skip
    daemon.docker("run", "--rm", "-v", "bind-vol:/data", "busybox", "sh", "-c",
                  "echo via-volume > /data/f")  # fmt: skip
    assert (device / "f").read_text() == "via-volume\n"
    daemon.docker("volume", "rm", "bind-vol")
    assert (device / "f").exists()  # removing the volume never empties the device
    missing = daemon.docker("volume", "create", "-o", "type=none", "-o", "o=bind", "-o",
                            "device=/nonexistent/dev-dir", "bind-vol2").returncode  # fmt: skip
    assert missing == 0  # checked when mounted, as docker
    done = daemon.docker("run", "--rm", "-v", "bind-vol2:/d", "busybox", "true", check=False)
    assert done.returncode == 125 and "/nonexistent/dev-dir" in done.stderr
    daemon.docker("volume", "rm", "bind-vol2")


def test_rm_of_volume_in_use_is_409(daemon: SampanDaemon) -> None:
    cid = daemon.docker("create", "-v", "busy-vol:/x", "busybox", "true").stdout.strip()
    done = daemon.docker("volume", "rm", "busy-vol", check=False)
    assert done.returncode == 1 and "volume is in use" in done.stderr and cid in done.stderr
    status, body = daemon.api_json("DELETE", "/volumes/busy-vol?force=1")
    assert status == 409 and cid in body["message"]
    daemon.docker("rm", cid)
    daemon.docker("volume", "rm", "busy-vol")


def test_rm_v_and_auto_remove_drop_anonymous_volumes(daemon: SampanDaemon) -> None:
    cid = daemon.docker("create", "-v", "/anon", "-v", "kept-vol:/kept", "busybox",
                        "true").stdout.strip()  # fmt: skip
    mounts = {m["Destination"]: m for m in json.loads(daemon.docker("inspect", cid).stdout)[0][
        "Mounts"]}  # fmt: skip
    anon = mounts["/anon"]["Name"]
    assert len(anon) == 64 and _volume(daemon, anon)["Labels"] == {
        "com.docker.volume.anonymous": ""
    }  # fmt: skip
    daemon.docker("rm", "-v", cid)
    names = _volume_names(daemon)
    assert anon not in names and "kept-vol" in names
    before = _volume_names(daemon)
    daemon.docker("run", "--rm", "-v", "/anon2", "busybox", "true")
    assert _volume_names(daemon) == before
    cid = daemon.docker("create", "-v", "/anon3", "busybox", "true").stdout.strip()
    daemon.docker("rm", cid)  # without -v the anonymous volume stays (dangling)
    dangling = set(daemon.docker("volume", "ls", "-q", "--filter", "dangling=true").stdout.split())
    assert (_volume_names(daemon) - before) <= dangling and len(_volume_names(daemon) - before) == 1
    daemon.docker("volume", "rm", "kept-vol", *(_volume_names(daemon) - before))


def test_system_df_lists_volumes(daemon: SampanDaemon) -> None:
    daemon.docker("run", "--rm", "-v", "df-vol:/d", "busybox", "sh", "-c",
                  "head -c 10000 /dev/zero > /d/f")  # fmt: skip
    status, doc = daemon.api_json("GET", "/system/df")
    assert status == 200
    found = [v for v in doc["Volumes"] if v["Name"] == "df-vol"]
    assert found and found[0]["UsageData"] == {"Size": 10000, "RefCount": 0}
    assert "df-vol" in daemon.docker("system", "df", "-v").stdout
    daemon.docker("volume", "rm", "df-vol")


def test_volume_events(daemon: SampanDaemon) -> None:
    since = time.time() - 1
    daemon.docker("volume", "create", "ev-vol")
    daemon.docker("run", "--rm", "-v", "ev-vol:/e", "busybox", "true")
    daemon.docker("volume", "rm", "ev-vol")
    until = time.time() + 1
    done = daemon.docker("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                         "--filter", "volume=ev-vol", "--format", "{{.Action}}",
                         check=False)  # fmt: skip
    if done.returncode != 0 and "page not found" in done.stderr:
        pytest.skip("no /events in this daemon yet")
    assert done.stdout.split() == ["create", "mount", "unmount", "destroy"], done.stderr


def test_sampan_cli_volumes_and_mounts(daemon: SampanDaemon, tmp_path: Path) -> None:
    done = _sampan(daemon, "volume", "create", "--label", "by=sampan", "-o", "type=tmpfs",
                   "-o", "device=tmpfs", "-o", "o=size=2m", "cli-vol")  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "cli-vol\n"), done.stderr
    assert "cli-vol" in _sampan(daemon, "volume", "ls", "-q", "--filter", "label=by").stdout
    listed = _sampan(daemon, "volume", "ls", "--filter", "name=cli-vol").stdout.splitlines()
    assert listed[0].split() == ["DRIVER", "VOLUME", "NAME"] and listed[1].split() == [
        "local", "cli-vol",
    ]  # fmt: skip
    got = _sampan(daemon, "volume", "inspect", "-f", "{{.Options.type}} {{.Labels.by}}", "cli-vol")
    assert got.stdout == "tmpfs sampan\n"
    (tmp_path / "in").write_text("bound\n")
    run = _sampan(daemon, "run", "--rm", "-v", "cli-vol:/v", "-v", f"{tmp_path}:/b:ro",
                  "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m", "--tmpfs", "/u:size=1m",
                  "busybox", "sh", "-c", "cat /b/in; df -k /v /t /u | tail -3")  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "bound" and [line.split()[1] for line in lines[1:]] == [
        "2048", "1024", "1024",
    ]  # fmt: skip
    missing = _sampan(daemon, "run", "--rm", "-v", "/no/such/dir:/x", "busybox", "true")
    assert missing.returncode == 125 and "/no/such/dir" in missing.stderr
    bad = _sampan(daemon, "run", "--rm", "--mount", "type=bind,dst=/x,bogus", "busybox", "true")
    assert bad.returncode == 125 and 'for "--mount" flag' in bad.stderr
    removed = _sampan(daemon, "volume", "rm", "cli-vol", "no-such-vol")
    assert removed.returncode == 1 and removed.stdout == "cli-vol\n"
    assert "no such volume" in removed.stderr


# -- docker-py ------------------------------------------------------------------------------


def test_docker_py_volumes(daemon: SampanDaemon) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.host, version="auto")
    try:
        vol = client.volumes.create("dpy-vol", labels={"via": "docker-py"})
        assert vol.name == "dpy-vol" and vol.attrs["Labels"] == {"via": "docker-py"}
        assert "dpy-vol" in [v.name for v in client.volumes.list()]
        assert client.volumes.get("dpy-vol").attrs["Driver"] == "local"
        client.containers.run("busybox", ["sh", "-c", "echo py > /v/f"], remove=True,
                              volumes={"dpy-vol": {"bind": "/v", "mode": "rw"}})  # fmt: skip
        out = client.containers.run("busybox", ["cat", "/v/f"], remove=True,
                                    volumes=["dpy-vol:/v:ro"])  # fmt: skip
        assert out == b"py\n"
        client.volumes.get("dpy-vol").remove()
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get("dpy-vol")
    finally:
        client.close()


# -- leaks and restarts -----------------------------------------------------------------------


def test_zz_no_mounts_left(daemon: SampanDaemon) -> None:
    running = daemon.docker("ps", "-q").stdout.split()
    assert not running
    assert _mounts_under(daemon.root) == []


def test_kill_9_restart_keeps_users_and_cleans_up(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    d = bootstrapped(tmp_path / "restart")
    try:
        d.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o",
                 "o=size=1m", "rs-tmpfs")  # fmt: skip
        used = d.docker("create", "-v", "rs-used:/x", "busybox", "true").stdout.strip()
        short = d.docker("run", "-d", "-v", "rs-tmpfs:/t", "busybox", "sleep", "1").stdout.strip()
        data = d.root / "volumes" / "rs-tmpfs" / "_data"
        assert _mounts_under(data) == [str(data)]
        assert d.proc is not None
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait()
        (d.root / "volumes" / "half-made" / "_data").mkdir(parents=True)  # a cut-short create
        time.sleep(1.5)  # the container exits while the daemon is down
        d.start()
        assert not (d.root / "volumes" / "half-made").exists()
        wait_until("the volume's tmpfs unmounted", lambda: not _mounts_under(data))
        assert "rs-tmpfs" in d.docker("volume", "ls", "-q").stdout
        busy = d.docker("volume", "rm", "rs-used", check=False)
        assert busy.returncode == 1 and used in busy.stderr
        d.docker("rm", used, short)
        d.docker("volume", "rm", "rs-used", "rs-tmpfs")
        assert _mounts_under(d.root) == []
    finally:
        d.docker("rm", "-f", *d.docker("ps", "-aq").stdout.split(), check=False)
        d.stop()


def test_kill_9_during_creates_leaves_no_half_volume(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    d = SampanDaemon(tmp_path / "crash").start()
    try:
        for round_ in range(3):
            stop = threading.Event()

            def hammer(prefix: str, stop: threading.Event) -> None:
                i = 0
                while not stop.is_set():
                    try:
                        d.api_json("POST", "/volumes/create", {"Name": f"{prefix}-{i}"})
                        d.api("DELETE", f"/volumes/{prefix}-{i - 1}")
                    except (OSError, http.client.HTTPException, ValueError):
                        return  # the daemon was killed under the request
                    i += 1

            threads = [threading.Thread(target=hammer, args=(f"c{round_}-{w}", stop))
                       for w in range(4)]  # fmt: skip
            for t in threads:
                t.start()
            time.sleep(0.3 + 0.2 * round_)
            assert d.proc is not None
            os.kill(d.proc.pid, signal.SIGKILL)
            d.proc.wait()
            stop.set()
            for t in threads:
                t.join()
            d.start()
            status, doc = d.api_json("GET", "/volumes")
            assert status == 200
            listed = {v["Name"] for v in doc["Volumes"]}
            on_disk = set(os.listdir(d.root / "volumes"))
            assert listed == on_disk and listed
            assert all((d.root / "volumes" / n / "_data").is_dir() for n in listed)
    finally:
        d.stop()
