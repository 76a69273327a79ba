"""A container's files through `sampan daemon`: cp, diff, commit, export, port.

The real docker CLI, docker-py and the `sampan` CLI, against one daemon on a
private root where busybox was bootstrapped before it started.  Bad input:
archives that try to climb out of the destination or write through a
symlink, symlinks inside a container that point at the host's files, paths
that do not exist -- and after an operation on a stopped container nothing
stays mounted.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_fixtures import REPO, SampanDaemon, busybox_daemon, needs_docker_cli

pytestmark = needs_docker_cli
daemon = busybox_daemon("container-files")


def _run(daemon: SampanDaemon, name: str, script: str = "") -> str:
    """A running busybox NAME that first runs SCRIPT; its id."""
    cmd = f"{script}; touch /ready; exec sleep 600" if script else "touch /ready; exec sleep 600"
    cid = daemon.docker("run", "-d", "--name", name, "busybox", "sh", "-c", cmd).stdout.strip()
    deadline = time.monotonic() + 20
    while daemon.docker("exec", name, "test", "-e", "/ready", check=False).returncode != 0:
        assert time.monotonic() < deadline, f"{name} did not get ready"
        time.sleep(0.05)
    return cid


def _rootfs_mounted(daemon: SampanDaemon, cid: str) -> bool:
    return (
        str(daemon.root / "containers" / cid / "rootfs") in Path("/proc/self/mountinfo").read_text()
    )


def _sampan(
    daemon: SampanDaemon, *args: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "sampan.cli", "-H", daemon.host, *args],
        input=stdin, capture_output=True, cwd=REPO, timeout=120,
    )  # fmt: skip


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


def _put(daemon: SampanDaemon, name: str, path: str, data: bytes) -> tuple[int, Any]:
    query = urllib.parse.urlencode({"path": path, "noOverwriteDirNonDir": "true"})
    status, _, body = daemon.api(
        "PUT", f"/containers/{name}/archive?{query}", data, {"Content-Type": "application/x-tar"}
    )
    return status, json.loads(body) if body.strip() else None


def _get(daemon: SampanDaemon, name: str, path: str) -> tuple[int, dict[str, str], bytes]:
    query = urllib.parse.urlencode({"path": path})
    return daemon.api("GET", f"/containers/{name}/archive?{query}")


# -- docker cp ---------------------------------------------------------------------------


def test_cp_both_ways_with_the_docker_cli(daemon: SampanDaemon, tmp_path: Path) -> None:
    _run(daemon, "cp-run", "mkdir -p /data/sub; echo inside > /data/sub/f; echo pw > /etc/pw")
    out = tmp_path / "pw"
    daemon.docker("cp", "cp-run:/etc/pw", str(out))
    assert out.read_text() == "pw\n"
    daemon.docker("cp", "cp-run:/data", str(tmp_path / "data"))
    assert (tmp_path / "data" / "sub" / "f").read_text() == "inside\n"
    (tmp_path / "into").mkdir()
    daemon.docker("cp", "cp-run:/data/.", str(tmp_path / "into"))
    assert (tmp_path / "into" / "sub" / "f").read_text() == "inside\n"
    # into the running container: a file into a directory, a file to a new name, a tree
    local = tmp_path / "local.txt"
    local.write_text("from the host\n")
    daemon.docker("cp", str(local), "cp-run:/tmp/")
    daemon.docker("cp", str(local), "cp-run:/tmp/renamed")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "c").write_text("deep\n")
    os.symlink("a/b/c", tree / "link")
    daemon.docker("cp", str(tree), "cp-run:/tmp/tree")
    shown = daemon.docker(
        "exec", "cp-run", "sh", "-c",
        "cat /tmp/local.txt /tmp/renamed /tmp/tree/a/b/c; readlink /tmp/tree/link;"
        " stat -c '%u:%g' /tmp/renamed",
    ).stdout  # fmt: skip
    assert shown == "from the host\nfrom the host\ndeep\na/b/c\n0:0\n"
    # docker's own messages for a missing source and a missing destination directory
    gone = daemon.docker("cp", "cp-run:/nonexistent", str(tmp_path / "x"), check=False)
    assert gone.returncode == 1
    assert "Could not find the file /nonexistent in container cp-run" in gone.stderr
    bad = daemon.docker("cp", str(local), "cp-run:/nonexistent/dir/", check=False)
    assert bad.returncode == 1 and "no such directory" in bad.stderr


def test_cp_tar_streams_and_stopped_containers(daemon: SampanDaemon, tmp_path: Path) -> None:
    cid = _run(daemon, "cp-stream", "mkdir /srv; echo one > /srv/one")
    done = subprocess.run(
        ["docker", "cp", "cp-stream:/srv", "-"], env=daemon.env(), capture_output=True, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        names = tar.getnames()
        assert names == ["srv", "srv/one"]
        member = tar.extractfile("srv/one")
        assert member is not None and member.read() == b"one\n"
    upload = _tar([(_entry("up"), b"uploaded\n"), (_entry("dir", tarfile.DIRTYPE), None)])
    subprocess.run(
        ["docker", "cp", "-", "cp-stream:/srv"], env=daemon.env(), input=upload, check=True
    )
    daemon.docker("stop", "-t", "1", "cp-stream")
    assert not _rootfs_mounted(daemon, cid)
    # out of and into the stopped container: its snapshot is mounted for the copy only
    daemon.docker("cp", "cp-stream:/srv/up", str(tmp_path / "up"))
    assert (tmp_path / "up").read_text() == "uploaded\n"
    (tmp_path / "later").write_text("later\n")
    daemon.docker("cp", str(tmp_path / "later"), "cp-stream:/srv/dir/")
    assert not _rootfs_mounted(daemon, cid)
    daemon.docker("start", "cp-stream")
    shown = daemon.docker("exec", "cp-stream", "cat", "/srv/up", "/srv/dir/later").stdout
    assert shown == "uploaded\nlater\n"


BIG = 48 << 20  # a file big enough that its archive fills the socket's buffers many times


class _SlowCopy:
    """GET /containers/NAME/archive?path=/big, its first MiB read: the daemon is blocked
    writing the rest to us, the stopped container's snapshot mounted for the copy."""

    def __init__(self, daemon: SampanDaemon, name: str) -> None:
        from tests.integration.daemon_fixtures import _UnixConnection

        self.conn = _UnixConnection(str(daemon.socket), timeout=120)
        self.conn.request("GET", f"/containers/{name}/archive?path=/big")
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        self.data = bytearray(self.response.read(1 << 20))

    def slowly(self, seconds: float) -> None:
        """A 64 KiB read every 50 ms for SECONDS: still copying."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.data += self.response.read(64 << 10)
            time.sleep(0.05)

    def finish(self) -> int:
        """The rest read; the size of /big in the archive."""
        while chunk := self.response.read(1 << 20):
            self.data += chunk
        self.conn.close()
        with tarfile.open(fileobj=io.BytesIO(bytes(self.data))) as tar:
            return tar.getmember("big").size


def _stopped_with_big_file(daemon: SampanDaemon, name: str) -> str:
    cid = _run(daemon, name, f"test -e /big || head -c {BIG} /dev/zero > /big")
    daemon.docker("stop", "-t", "1", name)
    assert not _rootfs_mounted(daemon, cid)
    return cid


def _views(daemon: SampanDaemon, cid: str) -> list[Path]:
    return list((daemon.exec_root / "containers").glob(f".view-{cid[:12]}-*"))


def test_start_waits_for_a_copy_out_of_the_stopped_container(daemon: SampanDaemon) -> None:
    """A start would mount a second overlay on the upper dir the copy has mounted in its
    own namespace: it waits until the copy is done, then starts."""
    cid = _stopped_with_big_file(daemon, "cp-slow-start")
    copy = _SlowCopy(daemon, "cp-slow-start")
    assert _views(daemon, cid), "the copy should have the snapshot mounted"
    start = subprocess.Popen(
        ["docker", "start", "cp-slow-start"], env=daemon.env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        copy.slowly(2.0)
        assert start.poll() is None, "start did not wait for the copy"
        state = daemon.api_json("GET", "/containers/cp-slow-start/json")[1]["State"]
        assert not state["Running"] and not _rootfs_mounted(daemon, cid)
        assert copy.finish() == BIG
        _, err = start.communicate(timeout=60)
        assert start.returncode == 0, err
    finally:
        if start.poll() is None:
            start.kill()
    assert not _views(daemon, cid)
    assert _rootfs_mounted(daemon, cid)
    size = daemon.docker("exec", "cp-slow-start", "wc", "-c", "/big").stdout.split()[0]
    assert int(size) == BIG
    daemon.docker("rm", "-f", "cp-slow-start")


def test_rm_waits_for_a_copy_out_of_the_stopped_container(daemon: SampanDaemon) -> None:
    """rm would remove the snapshot under the copy's private mount, which it cannot see:
    it waits until the copy is done; nothing of the container is left."""
    cid = _stopped_with_big_file(daemon, "cp-slow-rm")
    copy = _SlowCopy(daemon, "cp-slow-rm")
    rm = subprocess.Popen(
        ["docker", "rm", "cp-slow-rm"], env=daemon.env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        copy.slowly(2.0)
        assert rm.poll() is None, "rm did not wait for the copy"
        status, doc = daemon.api_json("GET", "/containers/cp-slow-rm/json")
        assert status == 200 and doc["State"]["Status"] == "removing"
        # a second copy is refused while the container is being removed
        status, _, body = _get(daemon, "cp-slow-rm", "/big")
        assert status == 409 and b"marked for removal" in body
        assert copy.finish() == BIG
        _, err = rm.communicate(timeout=60)
        assert rm.returncode == 0, err
    finally:
        if rm.poll() is None:
            rm.kill()
    assert daemon.api("GET", "/containers/cp-slow-rm/json")[0] == 404
    assert not _views(daemon, cid)
    assert not _rootfs_mounted(daemon, cid)
    assert not (daemon.root / "containers" / cid).exists()


def test_the_views_a_killed_daemon_left_are_swept(tmp_path: Path) -> None:
    """A daemon killed during a copy out of a stopped container leaves the empty directory
    the snapshot was mounted on (the mount died with the daemon's namespace fds): the next
    daemon removes it."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    first = SampanDaemon(tmp_path).start()
    first.stop()
    left = first.exec_root / "containers" / ".view-0123456789ab-x1y2z3"
    left.mkdir()
    second = SampanDaemon(tmp_path).start()
    try:
        assert not left.exists()
    finally:
        second.stop()


def test_cp_into_volumes_running_or_stopped(daemon: SampanDaemon, tmp_path: Path) -> None:
    cid = daemon.docker(
        "run", "-d", "--name", "cp-volume", "-v", "cpvol:/vol", "busybox", "sleep", "600"
    ).stdout.strip()
    (tmp_path / "one").write_text("one\n")
    daemon.docker("cp", str(tmp_path / "one"), "cp-volume:/vol/")
    daemon.docker("stop", "-t", "1", "cp-volume")
    (tmp_path / "two").write_text("two\n")
    daemon.docker("cp", str(tmp_path / "two"), "cp-volume:/vol/")
    daemon.docker("cp", "cp-volume:/vol/one", str(tmp_path / "back"))
    assert (tmp_path / "back").read_text() == "one\n"
    assert not _rootfs_mounted(daemon, cid)
    # both landed in the volume, not in the container's layer under it
    shown = daemon.docker("run", "--rm", "-v", "cpvol:/x", "busybox", "cat", "/x/one", "/x/two")
    assert shown.stdout == "one\ntwo\n"
    assert "/vol/two" not in daemon.docker("diff", "cp-volume").stdout
    exported = subprocess.run(
        ["docker", "export", "cp-volume"], env=daemon.env(), capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        names = tar.getnames()
    assert "vol" in names and not any(n.startswith("vol/") for n in names)
    daemon.docker("rm", "cp-volume")


def test_archive_stat_header(daemon: SampanDaemon) -> None:
    _run(daemon, "cp-stat", "ln -s /etc/passwd /pwlink; ln -s /nowhere/x /dangling")
    query = urllib.parse.urlencode({"path": "/pwlink"})
    status, headers, _ = daemon.api("HEAD", f"/containers/cp-stat/archive?{query}")
    assert status == 200
    doc = json.loads(base64.b64decode(headers["X-Docker-Container-Path-Stat"]))
    assert doc["name"] == "pwlink" and doc["linkTarget"] == "/etc/passwd"
    assert doc["mode"] & (1 << 27) and doc["mode"] & 0o777 == 0o777
    query = urllib.parse.urlencode({"path": "/dangling"})
    _, headers, _ = daemon.api("HEAD", f"/containers/cp-stat/archive?{query}")
    assert json.loads(base64.b64decode(headers["X-Docker-Container-Path-Stat"]))["linkTarget"] == (
        "/nowhere/x"
    )
    status, headers, _ = daemon.api("HEAD", "/containers/cp-stat/archive?path=%2Fetc")
    doc = json.loads(base64.b64decode(headers["X-Docker-Container-Path-Stat"]))
    assert status == 200 and doc["mode"] & (1 << 31) and doc["name"] == "etc"
    status, _, _ = daemon.api("HEAD", "/containers/cp-stat/archive?path=%2Fmissing")
    assert status == 404
    status, _, body = daemon.api("GET", "/containers/cp-stat/archive?path=")
    assert status == 400 and b"path" in body
    status, _, body = daemon.api("GET", "/containers/no-such-one/archive?path=%2F")
    assert status == 404 and b"No such container" in body


# -- bad input ---------------------------------------------------------------------------


def test_a_symlink_to_the_host_root_stays_in_the_container(
    daemon: SampanDaemon, tmp_path: Path
) -> None:
    _run(daemon, "cp-escape", "ln -s / /hostroot; echo container-secret > /etc/shadow;"
         " ln -s /etc /etclink")  # fmt: skip
    daemon.docker("cp", "cp-escape:/hostroot/etc/shadow", str(tmp_path / "shadow"))
    assert (tmp_path / "shadow").read_text() == "container-secret\n"
    status, _, body = _get(daemon, "cp-escape", "/hostroot/../../../etc/shadow")
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("shadow")
        assert status == 200 and member is not None and member.read() == b"container-secret\n"
    # writing through the container's symlinks lands in the container
    marker = f"sampan-cp-escape-{os.getpid()}"
    status, _ = _put(daemon, "cp-escape", "/etclink", _tar([(_entry(marker), b"x")]))
    assert status == 200
    assert not Path("/etc", marker).exists()
    assert daemon.docker("exec", "cp-escape", "cat", f"/etc/{marker}").stdout == "x"
    status, _ = _put(daemon, "cp-escape", "/hostroot/tmp", _tar([(_entry(marker), b"y")]))
    assert status == 200 and not Path("/tmp", marker).exists()


def test_hostile_archives_are_refused(daemon: SampanDaemon) -> None:
    _run(daemon, "cp-hostile", "mkdir /target; ln -s / /target/up")
    marker = f"sampan-hostile-{os.getpid()}"
    cases = [
        [(_entry(f"../../../../tmp/{marker}"), b"escape")],
        [(_entry(f"/tmp/{marker}"), b"absolute")],
        [(_entry("evil", tarfile.SYMTYPE, "/"), None), (_entry(f"evil/tmp/{marker}"), b"via")],
        [(_entry(f"up/tmp/{marker}"), b"through the container's own symlink")],
        [(_entry("hard", tarfile.LNKTYPE, "../../../etc/passwd"), None)],
    ]
    for members in cases:
        status, doc = _put(daemon, "cp-hostile", "/target", _tar(members))
        assert status == 400, (members, doc)
        assert doc and doc["message"]
        assert not Path("/tmp", marker).exists()
    dev = _entry("null", tarfile.CHRTYPE)
    dev.devmajor, dev.devminor = 1, 3
    status, doc = _put(daemon, "cp-hostile", "/target", _tar([(dev, None)]))
    assert status == 400 and "device" in doc["message"]
    listing = daemon.docker("exec", "cp-hostile", "ls", "-A", "/target").stdout.split()
    assert "null" not in listing and "hard" not in listing
    # an absolute symlink in the archive is only a symlink in the container
    link = _entry("abs", tarfile.SYMTYPE, "/etc/shadow")
    status, _ = _put(daemon, "cp-hostile", "/target", _tar([(link, None)]))
    assert status == 200
    assert daemon.docker("exec", "cp-hostile", "readlink", "/target/abs").stdout == "/etc/shadow\n"
    # missing destinations and a file as the extraction point
    status, doc = _put(daemon, "cp-hostile", "/missing", _tar([(_entry("x"), b"x")]))
    assert status == 404
    assert doc["message"] == "Could not find the file /missing in container cp-hostile"
    status, doc = _put(daemon, "cp-hostile", "/etc/passwd", _tar([(_entry("x"), b"x")]))
    assert status == 400 and "not a directory" in doc["message"]
    status, doc = _put(daemon, "cp-hostile", "/target", b"this is not a tar archive" * 40)
    assert status == 400


def test_no_overwrite_dir_non_dir(daemon: SampanDaemon) -> None:
    _run(daemon, "cp-overwrite", "mkdir -p /t/adir; echo f > /t/afile")
    status, doc = _put(daemon, "cp-overwrite", "/t", _tar([(_entry("adir"), b"x")]))
    assert status == 400 and "cannot overwrite" in doc["message"]
    status, doc = _put(daemon, "cp-overwrite", "/t", _tar([(_entry("afile", tarfile.DIRTYPE),
                                                             None)]))  # fmt: skip
    assert status == 400 and "cannot overwrite" in doc["message"]
    assert daemon.docker("exec", "cp-overwrite", "cat", "/t/afile").stdout == "f\n"


# -- diff, commit, export, port ----------------------------------------------------------


def test_diff(daemon: SampanDaemon) -> None:
    _run(daemon, "diff-run", "mkdir /made; touch /made/file; rm /bin/true; echo x >> /etc/group")
    lines = daemon.docker("diff", "diff-run").stdout.splitlines()
    for line in ("C /bin", "D /bin/true", "A /made", "A /made/file", "C /etc", "C /etc/group"):
        assert line in lines, lines
    assert lines == sorted(lines, key=lambda line: line[2:])
    daemon.docker("stop", "-t", "1", "diff-run")
    assert daemon.docker("diff", "diff-run").stdout.splitlines() == lines
    daemon.docker("create", "--name", "diff-none", "busybox", "true")
    assert daemon.docker("diff", "diff-none").stdout == ""
    status, _, body = daemon.api("GET", "/containers/diff-none/changes")
    assert (status, body.strip()) == (200, b"null")


def test_commit_run_and_history(daemon: SampanDaemon) -> None:
    _run(daemon, "commit-src", "echo committed > /greeting; rm /bin/true")
    out = daemon.docker(
        "commit", "-m", "a message", "-a", "someone <s@example.com>",
        "-c", 'CMD ["cat", "/greeting"]', "-c", "ENV COMMITTED=yes", "-c", "LABEL stage=two",
        "commit-src", "committed:v1",
    ).stdout.strip()  # fmt: skip
    assert out.startswith("sha256:") and len(out) == 71
    assert daemon.docker("run", "--rm", "committed:v1").stdout == "committed\n"
    gone = daemon.docker("run", "--rm", "committed:v1", "ls", "/bin/true", check=False)
    assert gone.returncode != 0
    doc = json.loads(daemon.docker("image", "inspect", "committed:v1").stdout)[0]
    assert doc["Id"] == out
    assert doc["Comment"] == "a message" and doc["Author"] == "someone <s@example.com>"
    assert doc["Config"]["Cmd"] == ["cat", "/greeting"]
    assert "COMMITTED=yes" in doc["Config"]["Env"]
    assert doc["Config"]["Labels"]["stage"] == "two"
    history = daemon.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}",
                            "committed:v1").stdout.splitlines()  # fmt: skip
    assert history[0].startswith("sh -c echo committed > /greeting") and history[0].endswith(
        "|a message"
    )
    assert len(history) == 2
    # the container kept running through the commit (paused and thawed)
    inspect = json.loads(daemon.docker("inspect", "commit-src").stdout)[0]
    assert inspect["State"]["Running"] is True and inspect["State"]["Status"] == "running"
    # nothing changed still makes an image, with a layer of its own
    daemon.docker("create", "--name", "commit-empty", "busybox", "true")
    empty = daemon.docker("commit", "commit-empty").stdout.strip()
    layers = json.loads(daemon.docker("image", "inspect", empty).stdout)[0]["RootFS"]["Layers"]
    assert len(layers) == 2
    bad = daemon.docker("commit", "-c", "FROM busybox", "commit-empty", check=False)
    assert bad.returncode == 1 and "not a valid change command" in bad.stderr


def test_export(daemon: SampanDaemon, tmp_path: Path) -> None:
    cid = _run(daemon, "export-run", "echo exported > /exported")
    done = subprocess.run(
        ["docker", "export", "export-run"], env=daemon.env(), capture_output=True, check=True
    )
    listed = subprocess.run(["tar", "-t"], input=done.stdout, capture_output=True, check=True)
    names = listed.stdout.decode().split()
    assert "exported" in names and "bin/busybox" in names and "etc/passwd" in names
    assert not any(n.startswith("proc/") and n != "proc/" for n in names)
    daemon.docker("stop", "-t", "1", "export-run")
    daemon.docker("export", "-o", str(tmp_path / "out.tar"), "export-run")
    with tarfile.open(tmp_path / "out.tar") as tar:
        member = tar.extractfile("exported")
        assert member is not None and member.read() == b"exported\n"
    assert not _rootfs_mounted(daemon, cid)
    gone = daemon.docker("export", "no-such-container", check=False)
    assert gone.returncode == 1 and "No such container" in gone.stderr


def test_port_without_published_ports(daemon: SampanDaemon) -> None:
    _run(daemon, "port-run")
    doc = json.loads(daemon.docker("inspect", "port-run").stdout)[0]
    assert doc["NetworkSettings"]["Ports"] == {}
    assert daemon.docker("port", "port-run").stdout == ""
    for asked in ("80", "80/tcp"):
        done = daemon.docker("port", "port-run", asked, check=False)
        assert done.returncode == 1
        assert f"No public port '{asked}' published for port-run" in done.stderr
    done = _sampan(daemon, "port", "port-run", "80/tcp")
    assert done.returncode == 1
    assert done.stderr.decode() == "Error: No public port '80/tcp' published for port-run\n"
    assert _sampan(daemon, "port", "port-run").stdout == b""


def test_events(daemon: SampanDaemon, tmp_path: Path) -> None:
    since = str(int(time.time()) - 1)
    _run(daemon, "events-run")
    daemon.docker("cp", "events-run:/etc/hostname", str(tmp_path / "h"))
    daemon.docker("cp", str(tmp_path / "h"), "events-run:/tmp/")
    daemon.docker("commit", "events-run")
    subprocess.run(["docker", "export", "events-run"], env=daemon.env(), capture_output=True,
                   check=True)  # fmt: skip
    until = str(int(time.time()) + 1)
    out = daemon.docker(
        "events", "--since", since, "--until", until, "--filter", "container=events-run",
        "--format", "{{.Action}}",
    ).stdout.split()  # fmt: skip
    for action in ("archive-path", "extract-to-dir", "commit", "export"):
        assert action in out, out


# -- the sampan CLI ----------------------------------------------------------------------


def test_sampan_cli(daemon: SampanDaemon, tmp_path: Path) -> None:
    _run(daemon, "sampan-files", "mkdir /box; echo in-box > /box/f; rm /bin/true")
    done = _sampan(daemon, "cp", "sampan-files:/box", str(tmp_path / "box"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "box" / "f").read_text() == "in-box\n"
    (tmp_path / "up").write_text("up\n")
    assert _sampan(daemon, "cp", str(tmp_path / "up"), "sampan-files:/box/").returncode == 0
    upload = _tar([(_entry("streamed"), b"streamed\n")])
    assert _sampan(daemon, "cp", "-", "sampan-files:/box", stdin=upload).returncode == 0
    out = _sampan(daemon, "cp", "sampan-files:/box", "-").stdout
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        assert sorted(tar.getnames()) == ["box", "box/f", "box/streamed", "box/up"]
    missing = _sampan(daemon, "cp", "sampan-files:/nope", str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert missing.stderr.decode() == (
        "Error response from daemon: Could not find the file /nope in container sampan-files\n"
    )
    diff = _sampan(daemon, "diff", "sampan-files").stdout.decode().splitlines()
    assert "D /bin/true" in diff and "A /box/up" in diff and "C /bin" in diff
    image = _sampan(daemon, "commit", "-c", "CMD cat /box/up", "sampan-files", "sampan-made:1")
    assert image.returncode == 0 and image.stdout.startswith(b"sha256:")
    assert daemon.docker("run", "--rm", "sampan-made:1").stdout == "up\n"
    exported = _sampan(daemon, "export", "sampan-files").stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        assert "box/up" in tar.getnames()
    _sampan(daemon, "export", "-o", str(tmp_path / "e.tar"), "sampan-files")
    assert (tmp_path / "e.tar").stat().st_size > 100_000


# -- docker-py ---------------------------------------------------------------------------


def test_docker_py(daemon: SampanDaemon) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.host, version="auto", timeout=60)
    try:
        container = client.containers.run(
            "busybox", ["sh", "-c", "echo py > /py; exec sleep 600"], detach=True, name="py-files"
        )
        deadline = time.monotonic() + 20
        while container.exec_run(["test", "-e", "/py"]).exit_code != 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stream, stat = container.get_archive("/py")
        assert stat["name"] == "py" and stat["size"] == 3
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("py")
            assert member is not None and member.read() == b"py\n"
        assert container.put_archive("/tmp", _tar([(_entry("put"), b"put\n")])) is True
        assert container.exec_run(["cat", "/tmp/put"]).output == b"put\n"
        changes = {(c["Path"], c["Kind"]) for c in container.diff()}
        assert ("/py", 1) in changes and ("/tmp/put", 1) in changes and ("/tmp", 0) in changes
        image = container.commit(repository="pymade", tag="1", message="from docker-py")
        assert image.attrs["Comment"] == "from docker-py" and "pymade:1" in image.tags
        out = client.containers.run("pymade:1", ["cat", "/py", "/tmp/put"], remove=True)
        assert out == b"py\nput\n"
        exported = b"".join(container.export())
        with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
            assert "py" in tar.getnames() and "tmp/put" in tar.getnames()
        with pytest.raises(docker.errors.NotFound):
            container.get_archive("/nope")
    finally:
        for c in client.containers.list(all=True, filters={"name": "py-files"}):
            c.remove(force=True)
        client.close()


# -- the vfs snapshot driver -------------------------------------------------------------


@pytest.fixture(scope="module")
def vfs_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampanDaemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from sampan.image import bootstrap
    from sampan.image.store import ImageStore

    running = SampanDaemon(tmp_path_factory.mktemp("container-files-vfs"))
    with ImageStore(str(running.root / "image"), driver="vfs") as store:
        bootstrap.busybox(store, ["busybox:latest"])
    running.start()
    yield running
    running.docker("rm", "-f", *running.docker("ps", "-aq").stdout.split(), check=False)
    running.stop()


def test_vfs_diff_commit_and_cp(vfs_daemon: SampanDaemon, tmp_path: Path) -> None:
    daemon = vfs_daemon
    assert json.loads(daemon.docker("info", "--format", "{{json .Driver}}").stdout) == "vfs"
    cid = _run(daemon, "vfs-run", "mkdir /made; echo vfs > /made/f; rm /bin/true")
    lines = daemon.docker("diff", "vfs-run").stdout.splitlines()
    for line in ("C /bin", "D /bin/true", "A /made", "A /made/f"):
        assert line in lines, lines
    assert not any(p.endswith(("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")) for p in lines)
    image = daemon.docker("commit", "vfs-run", "vfs-made").stdout.strip()
    assert image.startswith("sha256:")
    assert daemon.docker("run", "--rm", "vfs-made", "cat", "/made/f").stdout == "vfs\n"
    gone = daemon.docker("run", "--rm", "vfs-made", "ls", "/bin/true", check=False)
    assert gone.returncode != 0
    daemon.docker("stop", "-t", "1", "vfs-run")
    (tmp_path / "in").write_text("in\n")
    daemon.docker("cp", str(tmp_path / "in"), "vfs-run:/made/")
    daemon.docker("cp", "vfs-run:/made", str(tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f", "in"]
    assert not _rootfs_mounted(daemon, cid)
