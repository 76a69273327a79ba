"""cgroup v1 backend on a fake hybrid host: exact files and contents for every field."""

from __future__ import annotations

import os

import pytest

from sampan.cgroups.base import CgroupError
from sampan.cgroups.testing import FakeKernel, v1_host
from sampan.cgroups.v1 import V1Cgroup
from sampan.errors import InvalidArgument, NotFound, Unsupported

ALL = ("cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb")
ALL += ("net_cls", "net_prio", "freezer", "rdma", "name=systemd")


@pytest.fixture
def host(tmp_path):
    kernel, mounts = v1_host(tmp_path, ALL)
    cg = V1Cgroup("/sampan/c1", mounts=mounts, system=kernel)
    cg.create()
    kernel.writes.clear()
    return kernel, cg, str(tmp_path)


def writes(kernel: FakeKernel, base: str) -> list[tuple[str, str]]:
    return kernel.written(base)


def test_paths_cover_every_hierarchy(tmp_path):
    kernel, mounts = v1_host(tmp_path)
    cg = V1Cgroup("/a/b", mounts=mounts, system=kernel)
    t = str(tmp_path)
    assert cg.paths == {
        "cpuset": f"{t}/cpuset/a/b",
        "devices": f"{t}/devices/a/b",
        "memory": f"{t}/memory/a/b",
        "cpu": f"{t}/cpu/a/b",
        "cpuacct": f"{t}/cpuacct/a/b",
        "pids": f"{t}/pids/a/b",
        "blkio": f"{t}/blkio/a/b",
        "freezer": f"{t}/freezer/a/b",
        "name=systemd": f"{t}/systemd/a/b",
        "": f"{t}/unified/a/b",
    }
    assert cg.version == 1


def test_relative_path_is_below_our_own_cgroup_per_controller(tmp_path):
    kernel, mounts = v1_host(tmp_path, ("memory", "cpu"))
    own = {"memory": "/process_api/x", "cpu": "/", "": "/"}
    cg = V1Cgroup("ctr", mounts=mounts, own=own, system=kernel)
    t = str(tmp_path)
    assert cg.paths["memory"] == f"{t}/memory/process_api/x/ctr"
    assert cg.paths["cpu"] == f"{t}/cpu/ctr"
    assert cg.paths[""] == f"{t}/unified/ctr"


def test_create_makes_every_dir_and_fills_cpuset_from_parent(tmp_path):
    kernel, mounts = v1_host(tmp_path)
    cg = V1Cgroup("/sampan/c1", mounts=mounts, system=kernel)
    assert not cg.exists()
    cg.create()
    assert cg.exists()
    for path in cg.paths.values():
        assert os.path.isdir(path)
    t = str(tmp_path)
    assert kernel.written(f"{t}/cpuset") == [
        ("sampan/cpuset.cpus", "0-1"),
        ("sampan/cpuset.mems", "0"),
        ("sampan/c1/cpuset.cpus", "0-1"),
        ("sampan/c1/cpuset.mems", "0"),
    ]
    kernel.writes.clear()
    cg.create()  # idempotent: nothing more to do
    assert kernel.writes == []


def test_apply_none_and_empty_write_nothing(host):
    kernel, cg, _ = host
    cg.apply(None)
    cg.apply({})
    assert kernel.writes == []


def test_memory(host):
    kernel, cg, t = host
    cg.apply(
        {
            "memory": {
                "limit": 104857600,
                "swap": 209715200,
                "reservation": 52428800,
                "swappiness": 10,
                "disableOOMKiller": True,
                "kernel": 1 << 20,
                "kernelTCP": 1 << 20,
                "useHierarchy": True,
            }
        }
    )
    assert writes(kernel, f"{t}/memory/sampan/c1") == [
        ("memory.limit_in_bytes", "104857600"),
        ("memory.memsw.limit_in_bytes", "209715200"),
        ("memory.soft_limit_in_bytes", "52428800"),
        ("memory.oom_control", "1"),
        ("memory.swappiness", "10"),
    ]


def test_memory_swap_goes_first_when_raising_above_the_current_limit(host):
    kernel, cg, t = host
    with open(f"{t}/memory/sampan/c1/memory.limit_in_bytes", "w") as f:
        f.write("1048576\n")
    cg.apply({"memory": {"limit": 4194304, "swap": 8388608}})
    assert writes(kernel, f"{t}/memory/sampan/c1") == [
        ("memory.memsw.limit_in_bytes", "8388608"),
        ("memory.limit_in_bytes", "4194304"),
    ]


def test_memory_unlimited_means_unlimited_swap_too(host):
    kernel, cg, t = host
    cg.apply({"memory": {"limit": -1}})
    assert writes(kernel, f"{t}/memory/sampan/c1") == [
        ("memory.memsw.limit_in_bytes", "-1"),
        ("memory.limit_in_bytes", "-1"),
    ]


def test_memory_zero_is_unset_and_oom_killer_false_is_written(host):
    kernel, cg, t = host
    cg.apply({"memory": {"limit": 0, "reservation": 0, "disableOOMKiller": False}})
    assert writes(kernel, f"{t}/memory/sampan/c1") == [("memory.oom_control", "0")]


def test_cpu_and_cpuset(host):
    kernel, cg, t = host
    cg.apply(
        {
            "cpu": {
                "shares": 512,
                "quota": 50000,
                "period": 100000,
                "burst": 1000,
                "realtimeRuntime": 950000,
                "realtimePeriod": 1000000,
                "idle": 1,
                "cpus": "0",
                "mems": "0",
            }
        }
    )
    assert writes(kernel, f"{t}/cpuset/sampan/c1") == [
        ("cpuset.cpus", "0"),
        ("cpuset.mems", "0"),
    ]
    assert writes(kernel, f"{t}/cpu/sampan/c1") == [
        ("cpu.shares", "512"),
        ("cpu.cfs_period_us", "100000"),
        ("cpu.cfs_burst_us", "1000"),
        ("cpu.cfs_quota_us", "50000"),
        ("cpu.idle", "1"),
        ("cpu.rt_period_us", "1000000"),
        ("cpu.rt_runtime_us", "950000"),
    ]


class RefusingKernel(FakeKernel):
    """Refuses a write to NAME once with ERRNO, as the kernel does for an out-of-order value."""

    def __init__(self, mounts, name, errno, times=1):
        super().__init__(mounts)
        self.refuse, self.errno, self.times = name, errno, times

    def write(self, path, data):
        if path.endswith("/" + self.refuse) and self.times:
            self.times -= 1
            self.writes.append((path, data))
            raise OSError(self.errno, os.strerror(self.errno), path)
        super().write(path, data)


def test_cpu_period_refused_before_quota_is_written_again_after_it(tmp_path):
    _, mounts = v1_host(tmp_path)
    kernel = RefusingKernel(mounts, "cpu.cfs_period_us", 22)
    cg = V1Cgroup("/c", mounts=mounts, system=kernel)
    cg.create()
    kernel.writes.clear()
    cg.apply({"cpu": {"quota": 2000, "period": 1000}})
    assert writes(kernel, f"{tmp_path}/cpu/c") == [
        ("cpu.cfs_period_us", "1000"),
        ("cpu.cfs_quota_us", "2000"),
        ("cpu.cfs_period_us", "1000"),
    ]


def test_pids(host):
    kernel, cg, t = host
    for limit, written in ((100, "100"), (0, "1"), (-1, "max")):
        kernel.writes.clear()
        cg.apply({"pids": {"limit": limit}})
        assert writes(kernel, f"{t}/pids/sampan/c1") == [("pids.max", written)]


def test_blkio_with_bfq(host):
    kernel, cg, t = host
    cg.apply(
        {
            "blockIO": {
                "weight": 300,
                "leafWeight": 200,
                "weightDevice": [
                    {"major": 8, "minor": 0, "weight": 500, "leafWeight": 300},
                    {"major": 8, "minor": 16, "weight": 600},
                ],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 700}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 80}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 90}],
            }
        }
    )
    assert writes(kernel, f"{t}/blkio/sampan/c1") == [
        ("blkio.bfq.weight", "300"),
        ("blkio.leaf_weight", "200"),
        ("blkio.bfq.weight_device", "8:0 500"),
        ("blkio.leaf_weight_device", "8:0 300"),
        ("blkio.bfq.weight_device", "8:16 600"),
        ("blkio.throttle.read_bps_device", "8:0 600"),
        ("blkio.throttle.write_bps_device", "8:0 700"),
        ("blkio.throttle.read_iops_device", "8:16 80"),
        ("blkio.throttle.write_iops_device", "8:16 90"),
    ]


def test_blkio_with_cfq_files(host):
    kernel, cg, t = host
    for name in ("blkio.weight", "blkio.weight_device"):
        with open(f"{t}/blkio/sampan/c1/{name}", "w") as f:
            f.write("")
    cg.apply(
        {"blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 500}]}}
    )
    assert writes(kernel, f"{t}/blkio/sampan/c1") == [
        ("blkio.weight", "300"),
        ("blkio.weight_device", "8:0 500"),
    ]


def test_hugetlb_network_rdma(host):
    kernel, cg, t = host
    cg.apply(
        {
            "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}],
            "network": {
                "classID": 1048577,
                "priorities": [{"name": "eth0", "priority": 500}, {"name": "lo", "priority": 1}],
            },
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "rxe3": {"hcaObjects": 7}},
        }
    )
    assert writes(kernel, f"{t}/hugetlb/sampan/c1") == [
        ("hugetlb.2MB.limit_in_bytes", "209715200"),
        ("hugetlb.2MB.rsvd.limit_in_bytes", "209715200"),
    ]
    assert writes(kernel, f"{t}/net_cls/sampan/c1") == [("net_cls.classid", "1048577")]
    assert writes(kernel, f"{t}/net_prio/sampan/c1") == [
        ("net_prio.ifpriomap", "eth0 500"),
        ("net_prio.ifpriomap", "lo 1"),
    ]
    assert writes(kernel, f"{t}/rdma/sampan/c1") == [
        ("rdma.max", "mlx5_1 hca_handle=3 hca_object=10000"),
        ("rdma.max", "rxe3 hca_object=7"),
    ]


def test_hugetlb_in_the_cgroup2_tree_of_a_hybrid_host(tmp_path):
    kernel, mounts = v1_host(tmp_path, ("memory", "freezer"), unified=("hugetlb",))
    cg = V1Cgroup("/sampan/c1", mounts=mounts, system=kernel)
    cg.create()
    kernel.writes.clear()
    cg.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 20971520}]})
    assert kernel.written(f"{tmp_path}/unified") == [
        ("cgroup.subtree_control", "+hugetlb"),
        ("sampan/cgroup.subtree_control", "+hugetlb"),
        ("sampan/c1/hugetlb.2MB.max", "20971520"),
        ("sampan/c1/hugetlb.2MB.rsvd.max", "20971520"),
    ]
    with open(f"{tmp_path}/unified/sampan/c1/hugetlb.2MB.current", "w") as f:
        f.write("4194304\n")
    assert cg.stats()["hugetlb"] == {"2MB": {"usage": 4194304, "max": 0, "failcnt": 0}}
    kernel.writes.clear()
    cg.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]})  # enabled already
    assert [p for p, _ in kernel.written(f"{tmp_path}/unified")] == [
        "sampan/c1/hugetlb.2MB.max",
        "sampan/c1/hugetlb.2MB.rsvd.max",
    ]


def test_devices_deny_all_then_allow_in_order(host):
    kernel, cg, t = host
    cg.apply(
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 136, "access": "rw"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"},
                {"allow": False, "type": "b", "major": 8, "minor": 0, "access": "r"},
            ]
        }
    )
    assert writes(kernel, f"{t}/devices/sampan/c1") == [
        ("devices.deny", "a *:* rwm"),
        ("devices.allow", "c 1:3 rwm"),
        ("devices.allow", "c 136:* rw"),
    ]


def test_devices_update_writes_only_the_difference(host):
    kernel, cg, t = host
    with open(f"{t}/devices/sampan/c1/devices.list", "w") as f:
        f.write("c 1:3 rwm\nc 1:5 rwm\n")
    cg.apply(
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "r"},
            ]
        }
    )
    assert writes(kernel, f"{t}/devices/sampan/c1") == [
        ("devices.deny", "c 1:5 rwm"),
        ("devices.allow", "c 1:9 r"),
    ]


def test_unified_is_refused_on_v1(host):
    kernel, cg, _ = host
    with pytest.raises(Unsupported, match=r"^linux\.resources\.unified: needs cgroup v2"):
        cg.apply({"unified": {"memory.high": "1"}})
    cg.apply({"unified": {}})
    assert kernel.writes == []


def test_missing_controller_is_named_before_anything_is_written(tmp_path):
    kernel, mounts = v1_host(tmp_path)  # no net_cls, hugetlb, rdma
    cg = V1Cgroup("/c", mounts=mounts, system=kernel)
    cg.create()
    kernel.writes.clear()
    cases = [
        ({"network": {"classID": 1}}, "linux.resources.network.classID: the net_cls"),
        (
            {"network": {"priorities": [{"name": "lo", "priority": 1}]}},
            "network.priorities: the net_prio",
        ),
        ({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}, "hugepageLimits: the hugetlb"),
        ({"rdma": {"x": {"hcaHandles": 1}}}, "linux.resources.rdma: the rdma"),
    ]
    for resources, message in cases:
        with pytest.raises(Unsupported, match=message):
            cg.apply({"memory": {"limit": 1 << 20}, **resources})
    assert kernel.writes == []
    cg.apply({"network": {}})  # nothing set: nothing needed


def test_missing_file_is_unsupported_naming_field_and_file(host):
    _kernel, cg, t = host
    os.unlink(f"{t}/cpu/sampan/c1/cpu.rt_runtime_us")
    with pytest.raises(Unsupported) as err:
        cg.apply({"cpu": {"realtimeRuntime": 1000}})
    assert str(err.value) == (
        f"linux.resources.cpu.realtimeRuntime: cpu.rt_runtime_us does not exist in"
        f" {t}/cpu/sampan/c1 (this kernel or controller does not support it)"
    )


def test_kernel_refusal_is_an_oserror_naming_field_and_path(tmp_path):
    _, mounts = v1_host(tmp_path)
    kernel = RefusingKernel(mounts, "pids.max", 22)
    cg = V1Cgroup("/c", mounts=mounts, system=kernel)
    cg.create()
    with pytest.raises(OSError) as err:
        cg.apply({"pids": {"limit": 5}})
    assert isinstance(err.value, CgroupError)
    assert err.value.errno == 22
    assert str(err.value) == (
        f"linux.resources.pids.limit: write '5' to {tmp_path}/pids/c/pids.max: invalid argument"
    )


def test_memory_limit_below_usage_says_so(tmp_path):
    _, mounts = v1_host(tmp_path)
    kernel = RefusingKernel(mounts, "memory.limit_in_bytes", 16)
    cg = V1Cgroup("/c", mounts=mounts, system=kernel)
    cg.create()
    with open(f"{tmp_path}/memory/c/memory.usage_in_bytes", "w") as f:
        f.write("5000000\n")
    with pytest.raises(CgroupError, match=r"below the current usage 5000000 \(peak 0\)"):
        cg.apply({"memory": {"limit": 1 << 20}})


def test_apply_validates_first(host):
    kernel, cg, _ = host
    with pytest.raises(
        InvalidArgument, match=r"^linux\.resources\.memory\.limit: must be an integer$"
    ):
        cg.apply({"pids": {"limit": 5}, "memory": {"limit": "1g"}})
    assert kernel.writes == []


def test_add_process_pids_freeze_kill(host):
    kernel, cg, t = host
    cg.add_process(4242)
    assert kernel.writes_to("cgroup.procs") == ["4242"] * len(set(cg.paths.values()))
    os.makedirs(f"{t}/freezer/sampan/c1/sub")
    with open(f"{t}/freezer/sampan/c1/sub/cgroup.procs", "w") as f:
        f.write("4243\n")
    assert cg.pids() == [4242, 4243]

    kernel.writes.clear()
    assert not cg.frozen()
    cg.freeze()
    assert cg.frozen()
    cg.thaw()
    assert not cg.frozen()
    assert kernel.writes_to("freezer.state") == ["FROZEN", "THAWED"]

    kernel.writes.clear()
    cg.kill_all(15)
    assert kernel.killed == [(4242, 15), (4243, 15)]
    assert kernel.writes_to("freezer.state") == ["FROZEN", "THAWED"]


def test_kill_all_keeps_a_paused_cgroup_paused(host):
    kernel, cg, _ = host
    cg.add_process(7)
    cg.freeze()
    kernel.writes.clear()
    cg.kill_all(15)
    assert kernel.killed == [(7, 15)]
    assert kernel.writes_to("freezer.state") == ["FROZEN"]
    assert cg.frozen()


def test_sigkill_uses_cgroup_kill_of_the_hybrid_tree_and_thaws(tmp_path):
    kernel, mounts = v1_host(tmp_path)
    cg = V1Cgroup("/c", mounts=mounts, system=kernel)
    cg.create()
    cg.add_process(99)
    kernel.writes.clear()
    cg.kill_all(9)
    assert kernel.written(str(tmp_path)) == [
        ("unified/c/cgroup.kill", "1"),
        ("freezer/c/freezer.state", "THAWED"),
    ]
    assert kernel.killed == [(99, 9)]


def test_destroy_removes_everything_and_is_idempotent(host):
    _kernel, cg, t = host
    os.makedirs(f"{t}/memory/sampan/c1/child")
    cg.destroy()
    assert not cg.exists()
    for path in cg.paths.values():
        assert not os.path.exists(path)
    assert os.path.isdir(f"{t}/memory/sampan")  # the parent stays
    cg.destroy()


def test_destroy_retries_ebusy_then_names_the_dir(host):
    kernel, cg, t = host
    cg.add_process(5)
    with pytest.raises(CgroupError) as err:
        cg.destroy()
    assert err.value.errno == 16
    assert f"rmdir {t}/cpuset/sampan/c1: device or resource busy" in str(err.value)
    assert 0.9 < kernel.slept <= 1.0  # one second shared by all hierarchies


def test_missing_cgroup_is_not_found(tmp_path):
    kernel, mounts = v1_host(tmp_path)
    cg = V1Cgroup("/nope", mounts=mounts, system=kernel)
    with pytest.raises(NotFound, match="does not exist"):
        cg.add_process(1)
    with pytest.raises(NotFound):
        cg.pids()
    with pytest.raises(NotFound):
        cg.freeze()
    with pytest.raises(NotFound):
        cg.stats()
    assert not cg.frozen()
    cg.kill_all(9)  # nothing to kill
    assert kernel.killed == []


def test_no_freezer_is_unsupported(tmp_path):
    kernel, mounts = v1_host(tmp_path, ("memory",))
    mounts.pop("")
    cg = V1Cgroup("/c", mounts=mounts, system=kernel)
    cg.create()
    with pytest.raises(
        Unsupported, match=r"^freezer: the freezer cgroup controller is not mounted$"
    ):
        cg.freeze()
    assert not cg.frozen()
    cg.add_process(3)
    cg.kill_all(9)  # still signals, one by one
    assert kernel.killed == [(3, 9)]
