"""The cgroup backends on the real kernel (root only).

v1 runs on the host's v1 hierarchies; v2 runs on the host's cgroup2 mount
(on a hybrid host /sys/fs/cgroup/unified, whose controllers are bound to v1,
so only the core files exist there -- which also shows that a memory limit
fails loudly instead of silently).  Every test removes what it made, even on
failure; the unified root's cgroup.subtree_control is restored.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid

import pytest

from sampan.cgroups import cgroup_version, open_cgroup
from sampan.cgroups.paths import v1_mounts
from sampan.cgroups.v1 import V1Cgroup
from sampan.cgroups.v2 import V2Cgroup
from sampan.errors import Unsupported

MOUNTS = v1_mounts() if os.path.exists("/proc/self/mountinfo") else {}
IS_ROOT = os.geteuid() == 0
V1_HOST = IS_ROOT and cgroup_version() == 1 and "memory" in MOUNTS and "freezer" in MOUNTS
CGROUP2 = MOUNTS.get("", ("", "/"))[0]

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not IS_ROOT, reason="needs root and the real cgroup hierarchies"),
]
needs_v1 = pytest.mark.skipif(not V1_HOST, reason="needs a cgroup v1 (or hybrid) host")
needs_v2 = pytest.mark.skipif(not (IS_ROOT and CGROUP2), reason="needs a cgroup2 mount")

DENY_ALL_BUT_ZERO = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # /dev/zero
]


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _open_devices() -> bytes:
    out = []
    for dev in ("/dev/zero", "/dev/null"):
        try:
            os.close(os.open(dev, os.O_RDONLY))
            out.append(f"{dev}=ok")
        except OSError as exc:
            out.append(f"{dev}={exc.errno}")
    return " ".join(out).encode()


class Child:
    """A forked process that waits for go(), runs ACTION, reports, then sleeps."""

    def __init__(self, action=None) -> None:
        go_r, self._go_w = os.pipe()
        self._res_r, res_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child
            try:
                os.close(self._go_w)
                os.close(self._res_r)
                os.read(go_r, 1)
                os.write(res_w, action() if action else b"-")
                time.sleep(60)
            finally:
                os._exit(0)
        os.close(go_r)
        os.close(res_w)
        self.status: int | None = None

    def go(self) -> bytes:
        os.write(self._go_w, b"x")
        return os.read(self._res_r, 4096)

    def wait(self, timeout: float = 5.0) -> int:
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"child {self.pid} still alive")
            time.sleep(0.01)
        return self.status

    def close(self) -> None:
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, 9)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.status = -1
        for fd in (self._go_w, self._res_r):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def children():
    made: list[Child] = []

    def make(action=None) -> Child:
        child = Child(action)
        made.append(child)
        return child

    yield make
    for child in made:
        child.close()


def _cleanup(cg, parents: list[str]) -> None:
    with contextlib.suppress(Exception):
        cg.thaw()
    with contextlib.suppress(Exception):
        cg.kill_all(9)
    with contextlib.suppress(Exception):
        cg.destroy()
    for parent in parents:
        for _ in range(50):
            try:
                os.rmdir(parent)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)
    left = [p for p in [*cg.paths.values(), *parents] if os.path.exists(p)]
    assert not left, f"cgroups left behind: {left}"


@contextlib.contextmanager
def _subtree_control_restored():
    """Undo what a test enables in the cgroup2 root's subtree_control (best effort)."""
    path = f"{CGROUP2}/cgroup.subtree_control" if CGROUP2 else ""
    before = _read(path).split() if path else []
    try:
        yield
    finally:
        if path:
            for ctrl in [c for c in _read(path).split() if c not in before]:
                with contextlib.suppress(OSError), open(path, "w") as f:
                    f.write("-" + ctrl)


@pytest.fixture
def v1cg():
    name = f"sampan-it-{uuid.uuid4().hex[:10]}"
    cg = open_cgroup(f"/{name}/c1", "c1")
    assert isinstance(cg, V1Cgroup)
    parents = sorted({p.rsplit("/", 1)[0] for p in cg.paths.values()})
    with _subtree_control_restored():
        try:
            yield cg
        finally:
            _cleanup(cg, parents)


@pytest.fixture
def v2cg():
    name = f"sampan-it-{uuid.uuid4().hex[:10]}"
    cg = V2Cgroup(f"/{name}/c1", root=CGROUP2)
    with _subtree_control_restored():
        try:
            yield cg
        finally:
            _cleanup(cg, [f"{CGROUP2}/{name}"])


# -- cgroup v1 ----------------------------------------------------------------


@needs_v1
def test_v1_apply_processes_freeze_stats_kill_destroy(v1cg, children):
    cg = v1cg
    cg.create()
    cg.create()
    for path in cg.paths.values():
        assert os.path.isdir(path)
    resources = {
        "memory": {"limit": 64 << 20, "reservation": 32 << 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 32},
        "blockIO": {"weight": 300},
        "devices": [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": True, "type": "c", "major": 136, "access": "rw"},
        ],
    }
    if os.path.exists(cg.paths["memory"] + "/memory.memsw.limit_in_bytes"):
        resources["memory"]["swap"] = 128 << 20
    cg.apply(resources)
    p = cg.paths
    assert _read(p["memory"] + "/memory.limit_in_bytes") == str(64 << 20)
    assert _read(p["memory"] + "/memory.soft_limit_in_bytes") == str(32 << 20)
    if "swap" in resources["memory"]:
        assert _read(p["memory"] + "/memory.memsw.limit_in_bytes") == str(128 << 20)
    assert _read(p["cpu"] + "/cpu.shares") == "512"
    assert _read(p["cpu"] + "/cpu.cfs_quota_us") == "50000"
    assert _read(p["cpu"] + "/cpu.cfs_period_us") == "100000"
    assert _read(p["cpuset"] + "/cpuset.cpus") == "0"
    assert _read(p["cpuset"] + "/cpuset.mems") == "0"
    assert _read(p["pids"] + "/pids.max") == "32"
    weight = "blkio.weight" if os.path.exists(p["blkio"] + "/blkio.weight") else "blkio.bfq.weight"
    assert _read(f"{p['blkio']}/{weight}").split()[-1] == "300"
    assert _read(p["devices"] + "/devices.list").splitlines() == ["c 1:3 rwm", "c 136:* rw"]

    child = children()
    cg.add_process(child.pid)
    assert cg.pids() == [child.pid]
    with open(f"/proc/{child.pid}/cgroup") as f:
        assert f"memory:{cg.paths['memory'].split('/memory', 1)[1]}" in f.read()

    cg.freeze()
    assert cg.frozen()
    assert _read(p["freezer"] + "/freezer.state") == "FROZEN"
    cg.thaw()
    assert not cg.frozen()
    assert _read(p["freezer"] + "/freezer.state") == "THAWED"

    st = cg.stats()
    assert st["pids"] == {"current": 1, "limit": 32}
    assert st["memory"]["usage"]["limit"] == 64 << 20
    assert st["cpuset"]["cpus"] == [0]
    assert isinstance(st["cpu"]["usage"]["total"], int)

    cg.kill_all(9)
    status = child.wait()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9
    assert cg.pids() == []
    cg.destroy()
    assert not cg.exists()
    cg.destroy()  # idempotent


@needs_v1
def test_v1_device_rules_are_enforced(v1cg, children):
    cg = v1cg
    cg.create()
    cg.apply({"devices": DENY_ALL_BUT_ZERO})
    child = children(_open_devices)
    cg.add_process(child.pid)
    assert child.go() == b"/dev/zero=ok /dev/null=1"  # EPERM


@needs_v1
def test_v1_kill_all_with_sigterm_goes_through_the_freezer(v1cg, children):
    cg = v1cg
    cg.create()
    child = children()
    cg.add_process(child.pid)
    cg.kill_all(15)
    status = child.wait()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 15
    assert not cg.frozen()


@needs_v1
def test_v1_refuses_unified_and_bad_input_before_writing(v1cg):
    cg = v1cg
    cg.create()
    with pytest.raises(Unsupported, match="unified: needs cgroup v2"):
        cg.apply({"pids": {"limit": 7}, "unified": {"pids.max": "5"}})
    assert _read(cg.paths["pids"] + "/pids.max") == "max"


@needs_v1
def test_v1_hugetlb_limits(v1cg):
    cg = v1cg
    cg.create()
    if "hugetlb" in cg.paths:
        directory, name = cg.paths["hugetlb"], "hugetlb.2MB.limit_in_bytes"
    elif "" in cg.paths and "hugetlb" in _read(CGROUP2 + "/cgroup.controllers").split():
        directory, name = cg.paths[""], "hugetlb.2MB.max"  # hybrid: hugetlb lives in cgroup2
    else:
        pytest.skip("no hugetlb controller on this host")
    if not os.path.exists("/sys/kernel/mm/hugepages/hugepages-2048kB"):
        pytest.skip("no 2MB huge pages")
    cg.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 10 << 21}]})
    assert _read(f"{directory}/{name}") == str(10 << 21)
    assert cg.stats()["hugetlb"]["2MB"]["usage"] == 0


# -- cgroup v2 ----------------------------------------------------------------


@needs_v2
def test_v2_core_on_the_real_cgroup2_mount(v2cg, children):
    cg = v2cg
    cg.create()
    cg.create()
    assert os.path.isdir(cg.dir)
    child = children()
    cg.add_process(child.pid)
    assert cg.pids() == [child.pid]
    with open(f"/proc/{child.pid}/cgroup") as f:
        assert f"0::{cg.dir[len(CGROUP2) :]}\n" in f.read()

    cg.freeze()
    assert cg.frozen()
    assert "frozen 1" in _read(cg.dir + "/cgroup.events")
    cg.thaw()
    assert not cg.frozen()
    assert "frozen 0" in _read(cg.dir + "/cgroup.events")

    st = cg.stats()
    assert st["pids"]["current"] == 1
    assert st["cpu"]["usage"]["total"] >= 0

    cg.kill_all(9)
    status = child.wait()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9
    cg.destroy()
    assert not cg.exists()
    cg.destroy()


@needs_v2
def test_v2_memory_limit_fails_loudly_where_the_controller_is_missing(v2cg):
    cg = v2cg
    cg.create()
    if "memory" in cg.controllers():
        pytest.skip("this cgroup2 tree has the memory controller")
    with pytest.raises(Unsupported) as err:
        cg.apply({"memory": {"limit": 64 << 20}})
    message = str(err.value)
    assert message.startswith(
        "linux.resources.memory.limit: the memory controller is not available"
    )
    assert cg.dir in message
    assert not os.path.exists(cg.dir + "/memory.max")


@needs_v2
def test_v2_device_filter_is_enforced(v2cg, children):
    cg = v2cg
    cg.create()
    cg.apply({"devices": DENY_ALL_BUT_ZERO})
    child = children(_open_devices)
    cg.add_process(child.pid)
    assert child.go() == b"/dev/zero=ok /dev/null=1"
    # an update replaces the filter rather than stacking a second one
    cg.apply({"devices": [{"allow": True, "access": "rwm"}]})
    second = children(_open_devices)
    cg.add_process(second.pid)
    assert second.go() == b"/dev/zero=ok /dev/null=ok"
    # allow-all with one exception: the program checks the access bits too
    cg.apply(
        {
            "devices": [
                {"allow": True, "access": "rwm"},
                {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
            ]
        }
    )

    def read_then_write() -> bytes:
        out = []
        for flags in (os.O_RDONLY, os.O_WRONLY):
            try:
                os.close(os.open("/dev/null", flags))
                out.append("ok")
            except OSError as exc:
                out.append(str(exc.errno))
        return " ".join(out).encode()

    third = children(read_then_write)
    cg.add_process(third.pid)
    assert third.go() == b"ok 1"


@needs_v2
def test_v2_kill_all_with_sigterm_goes_through_the_freezer(v2cg, children):
    cg = v2cg
    cg.create()
    child = children()
    cg.add_process(child.pid)
    cg.kill_all(15)
    status = child.wait()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 15
    assert not cg.frozen()
