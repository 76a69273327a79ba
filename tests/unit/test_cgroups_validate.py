"""validate_resources: pure, and every error names its field."""

from __future__ import annotations

import pytest

from sampan.cgroups import validate_resources
from sampan.errors import InvalidArgument, Unsupported

FULL = {
    "devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
        {"allow": True, "type": "b", "major": 8, "minor": -1, "access": "r"},
    ],
    "memory": {
        "limit": 536870912,
        "reservation": 536870912,
        "swap": 536870912,
        "kernel": -1,
        "kernelTCP": -1,
        "swappiness": 0,
        "disableOOMKiller": False,
        "useHierarchy": True,
        "checkBeforeUpdate": True,
    },
    "cpu": {
        "shares": 1024,
        "quota": 1000000,
        "burst": 1000000,
        "period": 500000,
        "realtimeRuntime": 950000,
        "realtimePeriod": 1000000,
        "cpus": "2-3",
        "mems": "0-7",
        "idle": 0,
    },
    "pids": {"limit": 32771},
    "blockIO": {
        "weight": 10,
        "leafWeight": 10,
        "weightDevice": [
            {"major": 8, "minor": 0, "weight": 500, "leafWeight": 300},
            {"major": 8, "minor": 16, "weight": 500},
        ],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}],
    },
    "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}, {"pageSize": "64KB", "limit": 1}],
    "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
    "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "rxe3": {"hcaObjects": 10000}},
    "unified": {"io.max": "259:0 rbps=2097152 wiops=120", "hugetlb.1GB.max": "1073741824"},
}


def test_the_spec_examples_are_valid():
    validate_resources(FULL)
    validate_resources(None)
    validate_resources({})
    validate_resources({"memory": None, "pids": {}, "cpu": {"cpus": ""}})


BAD = [
    ([], "linux.resources: must be an object"),
    ({"memroy": {}}, "linux.resources.memroy: unknown field"),
    ({"memory": []}, "linux.resources.memory: must be an object"),
    ({"memory": {"limit": "1g"}}, "linux.resources.memory.limit: must be an integer"),
    ({"memory": {"limit": 1.5}}, "linux.resources.memory.limit: must be an integer"),
    ({"memory": {"limit": True}}, "linux.resources.memory.limit: must be an integer"),
    ({"memory": {"limit": -2}}, "linux.resources.memory.limit: must be -1 (unlimited)"),
    (
        {"memory": {"swappiness": 101}},
        "linux.resources.memory.swappiness: must be between 0 and 100",
    ),
    (
        {"memory": {"disableOOMKiller": 1}},
        "linux.resources.memory.disableOOMKiller: must be true or false",
    ),
    ({"memory": {"swap": 10}}, "linux.resources.memory.swap: needs memory.limit"),
    ({"memory": {"limit": 20, "swap": 10}}, "linux.resources.memory.swap: must be >= memory.limit"),
    ({"memory": {"limt": 1}}, "linux.resources.memory.limt: unknown field"),
    ({"cpu": {"shares": 1}}, "linux.resources.cpu.shares: must be between 2 and 262144"),
    ({"cpu": {"shares": -5}}, "linux.resources.cpu.shares: must be between 0 and"),
    ({"cpu": {"period": -1}}, "linux.resources.cpu.period: must be between 0 and"),
    ({"cpu": {"quota": 1000, "burst": 2000}}, "linux.resources.cpu.burst: must not exceed quota"),
    ({"cpu": {"cpus": "0-"}}, "linux.resources.cpu.cpus: '0-' is not a list"),
    ({"cpu": {"mems": "3-1"}}, "linux.resources.cpu.mems: '3-1' is not a list"),
    ({"cpu": {"cpus": 3}}, "linux.resources.cpu.cpus: must be a string"),
    ({"cpu": {"idle": 2}}, "linux.resources.cpu.idle: must be between 0 and 1"),
    ({"pids": {"limit": "max"}}, "linux.resources.pids.limit: must be an integer"),
    ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight: must be between 10 and 1000"),
    (
        {"blockIO": {"weightDevice": [{"major": 8, "minor": 0}]}},
        r"blockIO.weightDevice[0]: needs weight",
    ),
    (
        {"blockIO": {"weightDevice": [{"minor": 0, "weight": 10}]}},
        "weightDevice[0].major: is required",
    ),
    (
        {"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}},
        "linux.resources.blockIO.throttleReadBpsDevice[0].rate: is required",
    ),
    (
        {"blockIO": {"throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": -1}]}},
        "linux.resources.blockIO.throttleWriteBpsDevice[0].rate: must be between 0",
    ),
    ({"blockIO": {"throttleReadIOPSDevice": {}}}, "throttleReadIOPSDevice: must be an array"),
    (
        {"hugepageLimits": [{"pageSize": "2M", "limit": 1}]},
        "hugepageLimits[0].pageSize: '2M' is not",
    ),
    ({"hugepageLimits": [{"pageSize": "02MB", "limit": 1}]}, "hugepageLimits[0].pageSize"),
    (
        {"hugepageLimits": [{"pageSize": "2MB"}]},
        "linux.resources.hugepageLimits[0].limit: is required",
    ),
    (
        {"network": {"classID": -1}},
        "linux.resources.network.classID: must be between 0 and 4294967295",
    ),
    (
        {"network": {"priorities": [{"name": "a b", "priority": 1}]}},
        "priorities[0].name: 'a b' is not",
    ),
    ({"rdma": {"mlx": {}}}, "linux.resources.rdma.mlx: needs hcaHandles or hcaObjects"),
    ({"rdma": {"mlx": {"hcaHandles": -1}}}, "linux.resources.rdma.mlx.hcaHandles: must be between"),
    ({"unified": {"memory.max": 5}}, "linux.resources.unified.memory.max: must be a string"),
    (
        {"unified": {"../etc/x": "1"}},
        "linux.resources.unified.../etc/x: must be a cgroup file name",
    ),
    ({"unified": {"memorymax": "1"}}, "linux.resources.unified.memorymax: must look like"),
    ({"devices": {}}, "linux.resources.devices: must be an array"),
    ({"devices": [{"access": "rwm"}]}, "linux.resources.devices[0].allow: is required"),
    ({"devices": [{"allow": True, "access": "rwx"}]}, "linux.resources.devices[0].access: must be"),
    ({"devices": [{"allow": True}]}, "linux.resources.devices[0].access: must be letters"),
    ({"devices": [{"allow": True, "type": "p", "access": "r"}]}, "linux.resources.devices[0].type"),
    (
        {"devices": [{"allow": True, "major": "8", "access": "r"}]},
        "devices[0].major: must be an integer",
    ),
]


@pytest.mark.parametrize(("resources", "message"), BAD)
def test_errors_name_the_field(resources, message):
    with pytest.raises(InvalidArgument) as err:
        validate_resources(resources)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_use_hierarchy_false_is_unsupported():
    with pytest.raises(Unsupported, match=r"^linux\.resources\.memory\.useHierarchy: false"):
        validate_resources({"memory": {"useHierarchy": False}})


def test_validation_does_not_touch_its_input():
    resources = {"memory": {"limit": 5, "swap": 10}}
    validate_resources(resources)
    assert resources == {"memory": {"limit": 5, "swap": 10}}
