"""Namespaces on the real kernel (root only): a user namespace with id mappings,
joining existing namespaces by path, and sysctls in the container's own netns."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.root
Bundle = Callable[..., Path]

HOST_ID = 100000
MAPPING = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]


def status_ids(pid: int, key: str) -> list[str]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split()[1:]
    raise LookupError(key)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may traverse (pytest's tmp dirs are 0700: root's only).

    Inside a user namespace, root is host uid 100000, with no rights over the
    host's root-owned 0700 directories on the way to the bundle.
    """
    path = Path(tempfile.mkdtemp(prefix="sampan-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def chown_tree(root: Path, uid: int, gid: int) -> None:
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def test_user_namespace(runtime: Runtime, bundle: Bundle, cid: str, open_dir: Path,
                        rootfs_copy: Callable[..., Path]) -> None:  # fmt: skip
    rootfs = rootfs_copy(open_dir / "rootfs")
    chown_tree(rootfs, HOST_ID, HOST_ID)

    def userns(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = MAPPING
        config["linux"]["gidMappings"] = MAPPING
        config["root"]["readonly"] = False

    b = bundle(["sleep", "60"], edit=userns, rootfs=rootfs, base=open_dir)
    runtime.ok("run", "-d", "--bundle", str(b), cid)
    pid = runtime.wait_status(cid, "running")["pid"]
    assert status_ids(pid, "Uid") == [str(HOST_ID)] * 4
    assert status_ids(pid, "Gid") == [str(HOST_ID)] * 4
    out = runtime.ok("exec", cid, "sh", "-c", "id; cat /proc/self/uid_map; touch /tmp/made")
    lines = out.stdout.splitlines()
    assert lines[0] == "uid=0(root) gid=0(root)"
    assert lines[1].split() == ["0", str(HOST_ID), "65536"]
    made = (rootfs / "tmp" / "made").stat()
    assert (made.st_uid, made.st_gid) == (HOST_ID, HOST_ID)
    assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")


def test_user_namespace_unmapped_rootfs(runtime: Runtime, bundle: Bundle, cid: str,
                                        open_dir: Path,
                                        rootfs_copy: Callable[..., Path]) -> None:  # fmt: skip
    # A root-owned rootfs (not chowned) is still readable; writing to it is refused.
    rootfs = rootfs_copy(open_dir / "rootfs")

    def userns(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = MAPPING
        config["linux"]["gidMappings"] = MAPPING
        config["root"]["readonly"] = False

    b = bundle(["sh", "-c", "cat /etc/group; touch /etc/x || echo refused"], edit=userns,
               rootfs=rootfs, base=open_dir)  # fmt: skip
    proc = runtime("run", "--bundle", str(b), cid)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "refused"
    assert not (rootfs / "etc" / "x").exists()


@pytest.fixture
def holder() -> Iterator[Callable[..., int]]:
    """spawn(unshare_flags, setup) -> the pid of a process holding new namespaces."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(flags: list[str], setup: str) -> int:
        script = f"{setup} && echo ready && exec sleep 120"
        proc = subprocess.Popen(["unshare", *flags, "sh", "-c", script], stdout=subprocess.PIPE)
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        return proc.pid

    yield spawn
    for proc in procs:
        proc.kill()
        proc.wait()


def join(kind: str, path: str) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"] = [
            {"type": kind, "path": path} if ns["type"] == kind else ns
            for ns in config["linux"]["namespaces"]
        ]
        if kind == "uts":
            config.pop("hostname", None)

    return edit


def test_join_uts_namespace(runtime: Runtime, bundle: Bundle, cid: str,
                            holder: Callable[..., int]) -> None:  # fmt: skip
    pid = holder(["--uts"], "hostname joined-host")
    b = bundle(["hostname"], edit=join("uts", f"/proc/{pid}/ns/uts"))
    proc = runtime("run", "--bundle", str(b), cid)
    assert (proc.returncode, proc.stdout) == (0, "joined-host\n"), proc.stderr
    assert os.uname().nodename != "joined-host"


def test_join_network_namespace(runtime: Runtime, bundle: Bundle, cid: str,
                                holder: Callable[..., int]) -> None:  # fmt: skip
    pid = holder(["--net"], "ip link add sampan-v0 type veth peer name sampan-v1")
    b = bundle(["cat", "/proc/net/dev"], edit=join("network", f"/proc/{pid}/ns/net"))
    proc = runtime("run", "--bundle", str(b), cid)
    assert proc.returncode == 0, proc.stderr
    names = {ln.split(":")[0].strip() for ln in proc.stdout.splitlines()[2:]}
    assert names == {"lo", "sampan-v0", "sampan-v1"}


def test_join_namespace_of_the_wrong_type(runtime: Runtime, bundle: Bundle, cid: str,
                                          holder: Callable[..., int]) -> None:  # fmt: skip
    pid = holder(["--uts"], "true")
    b = bundle(["true"], edit=join("network", f"/proc/{pid}/ns/uts"))
    proc = runtime("run", "--bundle", str(b), cid)
    assert proc.returncode != 0
    assert "uts namespace, not network" in proc.stderr
    assert runtime.ids() == set()


def test_sysctl_in_own_netns(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    host = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    sysctl = {"net.ipv4.ip_forward": "1", "net.ipv4.ip_default_ttl": "42"}
    b = bundle(["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_default_ttl"],
               {"linux": {"sysctl": sysctl}})  # fmt: skip
    proc = runtime("run", "--bundle", str(b), cid)
    assert (proc.returncode, proc.stdout.split()) == (0, ["1", "42"]), proc.stderr
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host


def test_sysctl_unknown_key_fails(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    b = bundle(["true"], {"linux": {"sysctl": {"net.ipv4.no_such_knob": "1"}}})
    proc = runtime("run", "--bundle", str(b), cid)
    assert proc.returncode != 0
    assert "net.ipv4.no_such_knob" in proc.stderr
    assert runtime.ids() == set()
