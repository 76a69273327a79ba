"""The container's filesystem on the real kernel (root only): where its mounts and
device nodes land, and what they may touch on the host.

    rootfs on a shared mount    the container's mounts never reach the host
    /dev bound from the host    left as it is: no nodes or links made there
    symlinks in the image       the last name of a node or link is never followed
    mount options               recursive ones (rro...) applied, idmap and stray data refused
    bind remounts               flags asked to be cleared are cleared; locked ones kept
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.root
Bundle = Callable[..., Path]
CopyRootfs = Callable[..., Path]


def host_mounts() -> list[tuple[str, str, str]]:
    """(mount point, per-mount options, optional fields) of this (the host's) namespace."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre = line.split(" - ", 1)[0].split(" ")
        out.append((pre[4].replace("\\040", " "), pre[5], " ".join(pre[6:])))
    return out


def mounts_under(path: Path) -> list[str]:
    top = str(path)
    return [p for p, _, _ in host_mounts() if p == top or p.startswith(top + "/")]


def mount_line(mountinfo: str, point: str) -> tuple[set[str], str]:
    """(per-mount options, optional fields) of the last mount at POINT in a mountinfo text."""
    found = None
    for line in mountinfo.splitlines():
        pre = line.split(" - ", 1)[0].split(" ")
        if pre[4] == point:
            found = (set(pre[5].split(",")), " ".join(pre[6:]))
    assert found is not None, f"no mount at {point}:\n{mountinfo}"
    return found


def sh(*args: str) -> None:
    subprocess.run(args, check=True)


@pytest.fixture
def tmpfs_dir(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """make(name, *options, shared=False) -> a fresh tmpfs on tmp_path/NAME; all unmounted after.

    Request it before ``runtime`` so that the containers are deleted first.
    """
    made: list[Path] = []

    def make(name: str, *options: str, shared: bool = False) -> Path:
        path = tmp_path / name
        path.mkdir(exist_ok=True)
        sh("mount", "-t", "tmpfs", "-o", ",".join(["size=64m", *options]), "tmpfs", str(path))
        made.append(path)
        if shared:
            sh("mount", "--make-shared", str(path))
        return path

    yield make
    for path in reversed(made):
        subprocess.run(["umount", "-R", "-l", str(path)], check=False)


# -- 1. a rootfs on a shared mount -------------------------------------------------


@pytest.mark.parametrize(
    "propagation", ["slave", "private", "shared", "unbindable", "rslave", "rprivate", "rshared"]
)
def test_rootfs_on_a_shared_mount_leaks_nothing(tmpfs_dir: Callable[..., Path], runtime: Runtime,
                                                bundle: Bundle, cid: str, rootfs_copy: CopyRootfs,
                                                propagation: str) -> None:  # fmt: skip
    rootfs = rootfs_copy(tmpfs_dir("shared", shared=True) / "rootfs")
    b = bundle(["sleep", "60"], {"linux": {"rootfsPropagation": propagation}}, rootfs=rootfs)
    runtime.ok("run", "-d", "--bundle", str(b), cid)
    pid = runtime.wait_status(cid, "running")["pid"]
    assert mounts_under(rootfs) == []
    # The container has them all, and its root is the bind of the rootfs.
    inside = Path(f"/proc/{pid}/mountinfo").read_text()
    for point in ("/", "/proc", "/dev", "/dev/pts", "/sys"):
        mount_line(inside, point)
    runtime.ok("delete", "--force", cid)
    assert mounts_under(rootfs) == []


def test_shared_root_propagation_is_the_containers_own(
    tmpfs_dir: Callable[..., Path], runtime: Runtime, bundle: Bundle, cid: str,
    rootfs_copy: CopyRootfs,
) -> None:  # fmt: skip
    # runc: rootfsPropagation is applied to the new root after the pivot, so "shared"
    # gives a shared root -- a peer group of the container's, not of the host's.
    rootfs = rootfs_copy(tmpfs_dir("shared", shared=True) / "rootfs")
    b = bundle(["cat", "/proc/self/mountinfo"], {"linux": {"rootfsPropagation": "shared"}},
               rootfs=rootfs)  # fmt: skip
    out = runtime.ok("run", "--bundle", str(b), cid).stdout
    _, optional = mount_line(out, "/")
    assert optional.startswith("shared:"), optional
    host_groups = {f for _, _, opt in host_mounts() for f in opt.split() if f.startswith("shared:")}
    assert optional.split()[0] not in host_groups
    assert mounts_under(rootfs) == []


# -- 2. a /dev bound from the host ---------------------------------------------------------


def _dev_bound_from(source: Path) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        mounts = [m for m in config["mounts"] if m["destination"] != "/dev"]
        mounts.insert(1, {"destination": "/dev/", "type": "bind", "source": str(source),
                          "options": ["rbind", "nosuid"]})  # fmt: skip
        config["mounts"] = mounts

    return edit


def test_dev_bound_from_the_host_is_left_alone(runtime: Runtime, bundle: Bundle, cid: str,
                                               tmp_path: Path) -> None:  # fmt: skip
    hostdev = tmp_path / "hostdev"
    hostdev.mkdir()
    (hostdev / "ptmx").write_text("the host's own\n")
    (hostdev / "marker").write_text("")
    b = bundle(["ls", "/dev"], edit=_dev_bound_from(hostdev))
    out = runtime.ok("run", "--bundle", str(b), cid).stdout.split()
    assert "marker" in out
    # Only the mount points of the config's mounts under /dev were made (as runc does).
    made = {p.name for p in hostdev.iterdir()}
    assert made <= {"ptmx", "marker", "pts", "shm", "mqueue"}, made
    assert (hostdev / "ptmx").read_text() == "the host's own\n"
    for name in ("null", "zero", "full", "random", "urandom", "tty", "fd", "stdin", "core"):
        assert not os.path.lexists(hostdev / name), name


# -- 3. symlinks in the image ----------------------------------------------------------------


def _on_disk_dev(config: dict[str, Any]) -> None:
    """No tmpfs at /dev: the nodes are made in the image's own /dev."""
    config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/dev")]


def test_device_node_does_not_follow_an_image_symlink(runtime: Runtime, bundle: Bundle, cid: str,
                                                      rootfs_copy: CopyRootfs,
                                                      tmp_path: Path) -> None:  # fmt: skip
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "victim").write_text("precious\n")
    (vol / "other").write_text("also precious\n")
    rootfs = rootfs_copy()
    dev = rootfs / "dev"
    for name in os.listdir(dev):
        os.unlink(dev / name)
    (dev / "null").symlink_to("/vol/victim")  # the wrong thing: replaced by the node
    (dev / "stdin").symlink_to("/vol/other")  # an image's own link: kept as it is

    def edit(config: dict[str, Any]) -> None:
        _on_disk_dev(config)
        config["mounts"].append({"destination": "/vol", "type": "bind", "source": str(vol),
                                 "options": ["rbind"]})  # fmt: skip

    b = bundle(["sh", "-c", "ls -l /dev/null; echo x > /dev/null; cat /vol/victim"], edit=edit,
               rootfs=rootfs)  # fmt: skip
    out = runtime.ok("run", "--bundle", str(b), cid).stdout.splitlines()
    assert out[0].startswith("crw-rw-rw-"), out
    assert out[1] == "precious"
    assert (vol / "victim").read_text() == "precious\n"
    assert sorted(os.listdir(vol)) == ["other", "victim"]
    st = os.lstat(dev / "null")
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert os.readlink(dev / "stdin") == "/vol/other"


def test_on_disk_dev_serves_a_second_container(runtime: Runtime, bundle: Bundle, cid: str,
                                               rootfs_copy: CopyRootfs) -> None:  # fmt: skip
    # The first run leaves nodes and links (stdout -> /proc/self/fd/1) in the image's
    # /dev; the second must take them as they are, not follow them.
    rootfs = rootfs_copy()
    b = bundle(["sh", "-c", "echo via-dev-stdout > /dev/stdout"], edit=_on_disk_dev,
               rootfs=rootfs)  # fmt: skip
    for n in range(2):
        proc = runtime("run", "--bundle", str(b), f"{cid}-{n}")
        assert (proc.returncode, proc.stdout) == (0, "via-dev-stdout\n"), proc.stderr
    assert os.readlink(rootfs / "dev" / "stdout") == "/proc/self/fd/1"


def test_config_device_does_not_follow_an_image_symlink(runtime: Runtime, bundle: Bundle,
                                                        cid: str, rootfs_copy: CopyRootfs,
                                                        tmp_path: Path) -> None:  # fmt: skip
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "victim").write_text("precious\n")
    rootfs = rootfs_copy()
    (rootfs / "opt").mkdir(exist_ok=True)
    (rootfs / "opt" / "fuse").symlink_to("/vol/victim")

    def edit(config: dict[str, Any]) -> None:
        config["mounts"].append({"destination": "/vol", "type": "bind", "source": str(vol),
                                 "options": ["rbind"]})  # fmt: skip
        config["linux"]["devices"] = [{"path": "/opt/fuse", "type": "c", "major": 10,
                                       "minor": 229, "fileMode": 0o600}]  # fmt: skip

    b = bundle(["ls", "-l", "/opt/fuse"], edit=edit, rootfs=rootfs)
    out = runtime.ok("run", "--bundle", str(b), cid).stdout
    assert out.startswith("crw-------"), out
    assert (vol / "victim").read_text() == "precious\n"
    assert os.listdir(vol) == ["victim"]


# -- 4. mount options --------------------------------------------------------------------------


def test_rro_makes_the_whole_tree_read_only(tmpfs_dir: Callable[..., Path], runtime: Runtime,
                                            bundle: Bundle, cid: str) -> None:  # fmt: skip
    src = tmpfs_dir("src")
    tmpfs_dir("src/sub")
    script = ("touch /data/a 2>/dev/null && echo top-writable;"
              " touch /data/sub/b 2>/dev/null && echo sub-writable;"
              " cat /proc/self/mountinfo")  # fmt: skip
    b = bundle(["sh", "-c", script], edit=lambda c: c["mounts"].append(
        {"destination": "/data", "type": "bind", "source": str(src),
         "options": ["rbind", "rro", "rnosuid", "rnoexec"]}))  # fmt: skip
    out = runtime.ok("run", "--bundle", str(b), cid).stdout
    assert "writable" not in out
    for point in ("/data", "/data/sub"):
        opts, _ = mount_line(out, point)
        assert {"ro", "nosuid", "noexec"} <= opts, (point, opts)
    # The host's stay writable.
    (src / "sub" / "c").write_text("")


def test_recursive_option_on_a_tmpfs(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    script = "touch /scratch/x 2>/dev/null && echo writable; cat /proc/self/mountinfo"
    b = bundle(["sh", "-c", script], edit=lambda c: c["mounts"].append(
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
         "options": ["size=1m", "rro"]}))  # fmt: skip
    out = runtime.ok("run", "--bundle", str(b), cid).stdout
    assert "writable" not in out
    assert "ro" in mount_line(out, "/scratch")[0]


@pytest.mark.parametrize("option", ["idmap", "ridmap"])
def test_idmap_is_refused(runtime: Runtime, bundle: Bundle, cid: str, tmp_path: Path,
                          option: str) -> None:  # fmt: skip
    b = bundle(["true"], edit=lambda c: c["mounts"].append(
        {"destination": "/data", "type": "bind", "source": str(tmp_path),
         "options": ["rbind", option]}))  # fmt: skip
    proc = runtime("run", "--bundle", str(b), cid)
    assert proc.returncode != 0
    expected = f"mounts[7].options: {option}: id-mapped mounts are not supported yet"
    assert expected in proc.stderr, proc.stderr


def test_bind_mount_filesystem_data_is_a_warning(runtime: Runtime, bundle: Bundle, cid: str,
                                                 tmp_path: Path) -> None:  # fmt: skip
    """As with runc (and the OCI validation suite relies on it), filesystem options on a
    bind mount do not fail the container -- but sampan says that they are ignored."""
    b = bundle(["sh", "-c", "touch /data/x 2>/dev/null || echo read-only"],
               edit=lambda c: c["mounts"].append(
        {"destination": "/data", "type": "none", "source": str(tmp_path),
         "options": ["bind", "ro", "size=1m"]}))  # fmt: skip
    proc = runtime("run", "--bundle", str(b), cid)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "read-only\n"  # the flags it understands still apply
    assert "warning: mounts[7].options: size=1m: ignored on a bind mount" in proc.stderr


# -- 5. bind remounts ----------------------------------------------------------------------------


def test_bind_can_clear_a_flag_of_its_source(tmpfs_dir: Callable[..., Path], runtime: Runtime,
                                             bundle: Bundle, cid: str) -> None:  # fmt: skip
    src = tmpfs_dir("src", "noexec", "nodev", "nosuid")
    b = bundle(["cat", "/proc/self/mountinfo"], edit=lambda c: c["mounts"].extend([
        {"destination": "/exec", "type": "bind", "source": str(src), "options": ["rbind", "exec"]},
        {"destination": "/ro", "type": "bind", "source": str(src), "options": ["rbind", "ro"]},
        {"destination": "/rw", "type": "bind", "source": str(src), "options": ["rbind", "rw"]},
    ]))  # fmt: skip
    out = runtime.ok("run", "--bundle", str(b), cid).stdout
    # Cleared by name: exec clears noexec -- and only that.
    assert not {"noexec", "ro"} & mount_line(out, "/exec")[0]
    assert {"nodev", "nosuid"} <= mount_line(out, "/exec")[0]
    # A remount for other flags keeps the source's nosuid/nodev/noexec (runc 1.1 drops
    # them; sampan does not: `-v /host:/x:rw` must not make a nosuid filesystem suid).
    assert {"ro", "noexec", "nodev", "nosuid"} <= mount_line(out, "/ro")[0]
    assert {"noexec", "nodev", "nosuid"} <= mount_line(out, "/rw")[0]
    assert "ro" not in mount_line(out, "/rw")[0]


HOST_ID = 100000
MAPPING = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may traverse (root in a user namespace is host uid 100000)."""
    path = Path(tempfile.mkdtemp(prefix="sampan-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-R", "-l", str(path / "src")], check=False,
                       stderr=subprocess.DEVNULL)  # fmt: skip
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def _userns_bundle(bundle: Bundle, open_dir: Path, rootfs_copy: CopyRootfs, args: list[str],
                   options: list[str]) -> Path:  # fmt: skip
    rootfs = rootfs_copy(open_dir / "rootfs")
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), HOST_ID, HOST_ID)
    os.lchown(rootfs, HOST_ID, HOST_ID)
    src = open_dir / "src"
    src.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=1m,nosuid,nodev,mode=755", "tmpfs", str(src))

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = MAPPING
        config["linux"]["gidMappings"] = MAPPING
        config["mounts"].append({"destination": "/data", "type": "bind", "source": str(src),
                                 "options": options})  # fmt: skip

    return bundle(args, edit=edit, rootfs=rootfs, base=open_dir)


def test_bind_keeps_locked_flags_in_a_user_namespace(open_dir: Path, runtime: Runtime,
                                                     bundle: Bundle, cid: str,
                                                     rootfs_copy: CopyRootfs) -> None:  # fmt: skip
    b = _userns_bundle(bundle, open_dir, rootfs_copy, ["cat", "/proc/self/mountinfo"],
                       ["rbind", "ro"])  # fmt: skip
    out = runtime.ok("run", "--bundle", str(b), cid).stdout
    assert {"ro", "nosuid", "nodev"} <= mount_line(out, "/data")[0]


def test_bind_cannot_clear_a_locked_flag(open_dir: Path, runtime: Runtime, bundle: Bundle,
                                         cid: str, rootfs_copy: CopyRootfs) -> None:  # fmt: skip
    b = _userns_bundle(bundle, open_dir, rootfs_copy, ["true"], ["rbind", "ro", "suid"])
    proc = runtime("run", "--bundle", str(b), cid)
    assert proc.returncode != 0
    assert "mounts[7]" in proc.stderr and "suid: the mount's flags are locked" in proc.stderr, (
        proc.stderr
    )
