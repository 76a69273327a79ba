"""cgroup v2 backend on a fake pure-v2 host: files, contents and runc's conversions."""

from __future__ import annotations

import os

import pytest

from sampan.cgroups import devices
from sampan.cgroups.base import CgroupError
from sampan.cgroups.testing import v2_host
from sampan.cgroups.v2 import V2Cgroup, cpu_weight, io_weight, swap_max
from sampan.errors import Conflict, NotFound, Unsupported

ALL = "cpuset cpu io memory hugetlb pids rdma misc"


@pytest.fixture
def host(tmp_path):
    kernel, root = v2_host(tmp_path)
    cg = V2Cgroup("/sampan/c1", root=root, system=kernel)
    cg.create()
    kernel.writes.clear()
    return kernel, cg, cg.dir


def test_create_enables_controllers_at_each_level_above(tmp_path):
    kernel, root = v2_host(tmp_path)
    cg = V2Cgroup("/sampan/c1", root=root, system=kernel)
    assert cg.paths == {"": f"{root}/sampan/c1"}
    assert cg.version == 2
    cg.create()
    plus = "+" + " +".join(ALL.split())
    assert kernel.written(root) == [
        ("cgroup.subtree_control", plus),
        ("sampan/cgroup.subtree_control", plus),
    ]
    with open(f"{root}/sampan/c1/cgroup.controllers") as f:
        assert f.read().split() == ALL.split()
    assert cg.controllers() == ALL.split()
    kernel.writes.clear()
    cg.create()  # idempotent
    assert kernel.writes == []


def test_create_enables_what_it_can_one_by_one(tmp_path):
    kernel, root = v2_host(tmp_path, ("memory", "pids"))

    real_write = kernel.write

    def write(path: str, data: str) -> None:
        if path.endswith("subtree_control") and "memory" in data:
            kernel.writes.append((path, data))
            raise OSError(16, "Device or resource busy", path)
        real_write(path, data)

    kernel.write = write  # type: ignore[method-assign]
    cg = V2Cgroup("/c", root=root, system=kernel)
    cg.create()
    assert kernel.writes_to("cgroup.subtree_control") == ["+memory +pids", "+memory", "+pids"]
    assert cg.controllers() == ["pids"]
    with pytest.raises(Unsupported) as err:
        cg.apply({"pids": {"limit": 3}, "memory": {"limit": 1 << 20}})
    assert str(err.value) == (
        f"linux.resources.memory.limit: the memory controller is not available in {cg.dir}"
        " (cgroup.controllers: pids)"
    )
    assert kernel.writes_to("pids.max") == []  # nothing written before the check


def test_relative_path_starts_below_our_own_cgroup(tmp_path):
    kernel, root = v2_host(tmp_path)
    kernel.write(f"{root}/cgroup.subtree_control", "+memory +pids")
    kernel.mkdir(f"{root}/user.slice")
    cg = V2Cgroup("ctr", root=root, own="/user.slice", system=kernel)
    assert cg.dir == f"{root}/user.slice/ctr"
    kernel.writes.clear()
    cg.create()
    assert kernel.written(root) == [("user.slice/cgroup.subtree_control", "+memory +pids")]
    assert os.path.isdir(cg.dir)


def test_memory_conversions(host):
    kernel, cg, d = host
    cg.apply({"memory": {"limit": 104857600, "swap": 314572800, "reservation": 52428800}})
    assert kernel.written(d) == [
        ("memory.swap.max", "209715200"),
        ("memory.max", "104857600"),
        ("memory.low", "52428800"),
    ]


@pytest.mark.parametrize(
    ("memory", "expected"),
    [
        ({"limit": -1}, [("memory.swap.max", "max"), ("memory.max", "max")]),
        ({"limit": 1000, "swap": 1000}, [("memory.swap.max", "0"), ("memory.max", "1000")]),
        ({"limit": 1000, "swap": -1}, [("memory.swap.max", "max"), ("memory.max", "1000")]),
        ({"limit": -1, "swap": 5000}, [("memory.swap.max", "5000"), ("memory.max", "max")]),
        ({"limit": 1000}, [("memory.max", "1000")]),
        ({"reservation": -1, "kernel": 5, "kernelTCP": 5}, [("memory.low", "max")]),
    ],
)
def test_memory_swap_cases(host, memory, expected):
    kernel, cg, d = host
    cg.apply({"memory": memory})
    assert kernel.written(d) == expected


def test_swap_max_function():
    assert swap_max(None, None) is None
    assert swap_max(None, -1) == "max"
    assert swap_max(300, 100) == "200"


def test_check_before_update(host):
    kernel, cg, d = host
    with open(f"{d}/memory.current", "w") as f:
        f.write("2000000\n")
    with pytest.raises(Conflict, match=r"^linux\.resources\.memory\.limit: 1000000 is not above"):
        cg.apply({"memory": {"limit": 1000000, "checkBeforeUpdate": True}})
    cg.apply({"memory": {"limit": 3000000, "checkBeforeUpdate": True}})
    assert kernel.written(d) == [("memory.max", "3000000")]


def test_cpu_weight_formula():
    assert cpu_weight(2) == 1
    assert cpu_weight(1024) == 39
    assert cpu_weight(512) == 20
    assert cpu_weight(262144) == 10000
    assert cpu_weight(1) == 1  # clamped, never the unsigned wrap-around


def test_cpu(host):
    kernel, cg, d = host
    cg.apply(
        {
            "cpu": {
                "shares": 1024,
                "quota": 50000,
                "period": 200000,
                "burst": 1000,
                "idle": 0,
                "cpus": "0-1",
                "mems": "0",
            }
        }
    )
    assert kernel.written(d) == [
        ("cpu.idle", "0"),
        ("cpu.weight", "39"),
        ("cpu.max.burst", "1000"),
        ("cpu.max", "50000 200000"),
        ("cpuset.cpus", "0-1"),
        ("cpuset.mems", "0"),
    ]


@pytest.mark.parametrize(
    ("cpu", "cpu_max"),
    [({"quota": 50000}, "50000 100000"), ({"quota": -1, "period": 250000}, "max 250000")],
)
def test_cpu_max_defaults(host, cpu, cpu_max):
    kernel, cg, d = host
    cg.apply({"cpu": cpu})
    assert kernel.written(d) == [("cpu.max", cpu_max)]


def test_pids(host):
    kernel, cg, d = host
    for limit, written in ((64, "64"), (0, "1"), (-1, "max")):
        kernel.writes.clear()
        cg.apply({"pids": {"limit": limit}})
        assert kernel.written(d) == [("pids.max", written)]


def test_io_weight_formula():
    assert io_weight(10) == 1
    assert io_weight(500) == 4950
    assert io_weight(1000) == 10000


def test_io_without_bfq(host):
    kernel, cg, d = host
    cg.apply(
        {
            "blockIO": {
                "weight": 500,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleReadIOPSDevice": [{"major": 253, "minor": 0, "rate": 120}],
                "throttleWriteIOPSDevice": [{"major": 253, "minor": 0, "rate": 60}],
            }
        }
    )
    assert kernel.written(d) == [
        ("io.weight", "4950"),
        ("io.weight", "8:0 10000"),
        ("io.max", "8:0 rbps=2097152"),
        ("io.max", "8:0 wbps=1048576"),
        ("io.max", "253:0 riops=120"),
        ("io.max", "253:0 wiops=60"),
    ]


def test_io_with_bfq_keeps_the_v1_scale(host):
    kernel, cg, d = host
    with open(f"{d}/io.bfq.weight", "w") as f:
        f.write("default 100\n")
    cg.apply(
        {"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 700}]}}
    )
    assert kernel.written(d) == [("io.bfq.weight", "500"), ("io.bfq.weight", "8:0 700")]


def test_hugetlb_rdma_unified(host):
    kernel, cg, d = host
    cg.apply(
        {
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "rdma": {"mlx4_0": {"hcaObjects": 1000}},
            "unified": {"memory.high": "50000000", "io.max": "8:0 rbps=1\n8:16 wiops=2"},
        }
    )
    assert kernel.written(d) == [
        ("hugetlb.2MB.max", "4194304"),
        ("hugetlb.2MB.rsvd.max", "4194304"),
        ("rdma.max", "mlx4_0 hca_object=1000"),
        ("memory.high", "50000000"),
        ("io.max", "8:0 rbps=1"),
        ("io.max", "8:16 wiops=2"),
    ]


def test_unified_with_a_missing_controller(tmp_path):
    kernel, root = v2_host(tmp_path, ("memory",))
    cg = V2Cgroup("/c", root=root, system=kernel)
    cg.create()
    with pytest.raises(
        Unsupported, match=r"^linux\.resources\.unified\.pids\.max: the pids controller"
    ):
        cg.apply({"unified": {"pids.max": "5"}})
    with pytest.raises(
        Unsupported, match=r"^linux\.resources\.unified\.memory\.nope: memory\.nope does not exist"
    ):
        cg.apply({"unified": {"memory.nope": "5"}})
    with open(f"{cg.dir}/cgroup.max.depth", "w") as f:
        f.write("max\n")
    cg.apply({"unified": {"cgroup.max.depth": "3"}})  # cgroup.* needs no controller
    assert kernel.writes_to("cgroup.max.depth") == ["3"]


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"memory": {"swappiness": 0}}, "memory.swappiness: has no cgroup v2 equivalent"),
        ({"memory": {"disableOOMKiller": True}}, "memory.disableOOMKiller: has no cgroup v2"),
        ({"cpu": {"realtimeRuntime": 5}}, "cpu.realtimeRuntime: needs cgroup v1"),
        ({"cpu": {"realtimePeriod": 5}}, "cpu.realtimePeriod: needs cgroup v1"),
        ({"blockIO": {"leafWeight": 50}}, "blockIO.leafWeight: has no cgroup v2"),
        (
            {"blockIO": {"weightDevice": [{"major": 1, "minor": 2, "leafWeight": 50}]}},
            r"blockIO.weightDevice\[\].leafWeight",
        ),
        ({"network": {"classID": 5}}, "network.classID: needs net_cls"),
        ({"network": {"priorities": [{"name": "lo", "priority": 1}]}}, "network.priorities"),
    ],
)
def test_v1_only_fields_are_unsupported(host, resources, message):
    kernel, cg, _ = host
    with pytest.raises(Unsupported, match=r"^linux\.resources\." + message):
        cg.apply({"pids": {"limit": 2}, **resources})
    assert kernel.writes == []


def test_defaults_that_mean_nothing_are_fine(host):
    kernel, cg, _ = host
    cg.apply({"memory": {"disableOOMKiller": False}, "network": {}, "cpu": {"realtimeRuntime": 0}})
    assert kernel.writes == []


def test_devices_attach_a_bpf_program(host):
    kernel, cg, d = host
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    ]
    cg.apply({"devices": rules})
    expected = devices.program(devices.Emulator.from_rules(devices.rules_from_oci(rules)))
    assert kernel.filters == {d: expected}
    kernel.filters.clear()
    cg.apply({"devices": []})  # empty: device access is left alone
    assert kernel.filters == {}


def test_processes_freeze_and_kill(host):
    kernel, cg, d = host
    cg.add_process(11)
    cg.add_process(12)
    assert cg.pids() == [11, 12]
    assert not cg.frozen()
    cg.freeze()
    assert cg.frozen()
    cg.thaw()
    assert not cg.frozen()
    kernel.writes.clear()
    cg.kill_all(15)
    assert kernel.killed == [(11, 15), (12, 15)]
    assert kernel.written(d) == [("cgroup.freeze", "1"), ("cgroup.freeze", "0")]
    kernel.killed.clear()
    kernel.writes.clear()
    cg.kill_all(9)
    assert kernel.written(d) == [("cgroup.kill", "1")]
    assert kernel.killed == [(11, 9), (12, 9)]


def test_freeze_times_out_loudly(host):
    kernel, cg, _d = host
    real_write = kernel.write

    def write(path: str, data: str) -> None:  # the kernel never reports frozen
        if path.endswith("cgroup.freeze"):
            kernel.writes.append((path, data))
            return
        real_write(path, data)

    kernel.write = write  # type: ignore[method-assign]
    with pytest.raises(CgroupError, match="not frozen after 10 s"):
        cg.freeze()


def test_destroy_and_missing(host):
    kernel, cg, d = host
    kernel.mkdir(f"{d}/sub")
    cg.destroy()
    assert not cg.exists()
    cg.destroy()
    with pytest.raises(NotFound):
        cg.stats()
    assert not cg.frozen()
    cg.kill_all(9)  # nothing to kill
    with pytest.raises(NotFound):
        cg.add_process(1)
    with pytest.raises(NotFound):
        cg.apply({"pids": {"limit": 1}})
