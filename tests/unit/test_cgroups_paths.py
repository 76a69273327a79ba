"""cgroupsPath rules, mount discovery, the chooser, and the import-time budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import sampan.cgroups as cgroups
from sampan.cgroups import cgroup_version, open_cgroup, resolve_cgroups_path
from sampan.cgroups.paths import expand_slice, join, parse_mountinfo, parse_proc_cgroup
from sampan.cgroups.testing import v2_host
from sampan.errors import InvalidArgument

ROOT = str(Path(cgroups.__file__).resolve().parents[2])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "/sampan/c1"),
        ("", "/sampan/c1"),
        ("/a/b", "/a/b"),
        ("/a/../b/", "/b"),
        ("//a//b", "/a/b"),
        ("/../../x", "/x"),
        ("a/b", "a/b"),
        ("../../a", "a"),
        ("./a/./b", "a/b"),
        ("system.slice:docker:abc", "/system.slice/docker-abc.scope"),
        (":runc:abc", "/system.slice/runc-abc.scope"),
        ("user-1000.slice:podman:x", "/user.slice/user-1000.slice/podman-x.scope"),
        ("-.slice:p:x", "/p-x.scope"),
        ("machine.slice::x", "/machine.slice/x.scope"),
        ("system.slice:p:my.slice", "/system.slice/my.slice"),
    ],
)
def test_resolve(value, expected):
    assert resolve_cgroups_path(value, "c1") == expected


@pytest.mark.parametrize(
    ("value", "cid", "message"),
    [
        ("/", "c", "names the root cgroup"),
        ("/..", "c", "names the root cgroup"),
        (".", "c", "names the root cgroup"),
        (None, "a/b", "container id 'a/b'"),
        (None, "..", "container id '..'"),
        ("bad:p:x", "c", "invalid slice name 'bad'"),
        ("a--b.slice:p:x", "c", "invalid slice name"),
        ("system.slice:p:", "c", "expected slice:prefix:name"),
        ("/a\nb", "c", "must not contain NUL or newline"),
    ],
)
def test_resolve_refuses(value, cid, message):
    with pytest.raises(InvalidArgument, match=message):
        resolve_cgroups_path(value, cid)


def test_expand_slice():
    assert expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    with pytest.raises(InvalidArgument):
        expand_slice(".slice")


MOUNTINFO = """\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
35 33 0:30 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
36 33 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct
37 33 0:32 /docker/abc /sys/fs/cgroup/memory rw,nosuid shared:13 - cgroup cgroup rw,memory
38 33 0:33 / /sys/fs/cgroup/my\\040dir rw - cgroup cgroup rw,pids
39 33 0:34 / /mnt/again rw - cgroup cgroup rw,pids
"""


def test_parse_mountinfo():
    assert parse_mountinfo(MOUNTINFO) == {
        "": ("/sys/fs/cgroup/unified", "/"),
        "name=systemd": ("/sys/fs/cgroup/systemd", "/"),
        "cpu": ("/sys/fs/cgroup/cpu,cpuacct", "/"),
        "cpuacct": ("/sys/fs/cgroup/cpu,cpuacct", "/"),
        "memory": ("/sys/fs/cgroup/memory", "/docker/abc"),
        "pids": ("/sys/fs/cgroup/my dir", "/"),
    }


def test_parse_proc_cgroup():
    text = "9:name=systemd:/\n4:memory:/process_api/x\n2:cpu,cpuacct:/a\n0::/user.slice\n"
    assert parse_proc_cgroup(text) == {
        "name=systemd": "/",
        "memory": "/process_api/x",
        "cpu": "/a",
        "cpuacct": "/a",
        "": "/user.slice",
    }


def test_join():
    assert join("/sys/fs/cgroup/", "/", "/a/b") == "/sys/fs/cgroup/a/b"
    assert join("/m", "/own/x/", "c") == "/m/own/x/c"


def test_chooser_picks_v2_by_one_file(tmp_path):
    kernel, root = v2_host(tmp_path)
    assert cgroup_version(root) == 2
    cg = open_cgroup(None, "web", root=root, system=kernel)
    assert type(cg).__name__ == "V2Cgroup"
    assert cg.paths == {"": f"{root}/sampan/web"}
    assert cgroup_version(str(tmp_path / "nothing")) == 1


def test_chooser_picks_v1_otherwise(tmp_path):
    cg = open_cgroup("/x/y", "c", root=str(tmp_path))  # reads /proc/self/mountinfo only
    assert cg.version == 1
    assert all(p.endswith("/x/y") for p in cg.paths.values())


def _python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {ROOT!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_import_pulls_in_nothing_slow():
    banned = "re enum typing json dataclasses subprocess signal socket pathlib logging ctypes"
    code = (
        "import sampan.cgroups; "
        f"print(sorted(m for m in {banned.split()!r} if m in sys.modules)); "
        "print(sorted(m for m in sys.modules if m.startswith('sampan.cgroups.')))"
    )
    banned_loaded, ours = _python(code).splitlines()
    assert banned_loaded == "[]"
    # the backends, stats, devices and bpf are loaded only when used
    assert ours == "['sampan.cgroups.base', 'sampan.cgroups.paths', 'sampan.cgroups.resources']"


def test_only_the_chosen_backend_is_imported(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("")
    code = (
        "from sampan.cgroups import open_cgroup; "
        f"open_cgroup('/a', 'c', root={str(tmp_path)!r}); "
        "print('sampan.cgroups.v1' in sys.modules, 'sampan.cgroups.v2' in sys.modules)"
    )
    assert _python(code) == "False True"
