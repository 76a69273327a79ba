"""stats(): runc's ``events --stats`` shape, parsed from fixture files."""

from __future__ import annotations

import pytest

from sampan.cgroups.base import UNLIMITED
from sampan.cgroups.stats import blkio_entries, cpu_list
from sampan.cgroups.testing import v1_host, v2_host
from sampan.cgroups.v1 import V1Cgroup
from sampan.cgroups.v2 import V2Cgroup


def put(directory: str, files: dict[str, str]) -> None:
    for name, text in files.items():
        with open(f"{directory}/{name}", "w") as f:
            f.write(text)


def test_v1_stats(tmp_path):
    controllers = ("cpuset", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb", "freezer")
    kernel, mounts = v1_host(tmp_path, controllers)
    cg = V1Cgroup("/c", mounts=mounts, system=kernel)
    cg.create()
    t = str(tmp_path)
    put(f"{t}/cpuacct/c", {
        "cpuacct.usage": "3000000000\n",
        "cpuacct.usage_percpu": "1000000000 2000000000 \n",
        "cpuacct.stat": "user 150\nsystem 50\n",
        "cpuacct.usage_all": "cpu user system\n0 700 300\n1 1500 500\n",
    })  # fmt: skip
    put(f"{t}/cpu/c", {"cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n"})
    put(f"{t}/memory/c", {
        "memory.stat": "cache 4096\nrss 8192\ntotal_cache 4096\n",
        "memory.usage_in_bytes": "12288\n",
        "memory.limit_in_bytes": "1048576\n",
        "memory.max_usage_in_bytes": "20000\n",
        "memory.failcnt": "3\n",
        "memory.memsw.usage_in_bytes": "13000\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    })  # fmt: skip
    put(f"{t}/pids/c", {"pids.current": "4\n", "pids.max": "100\n"})
    put(f"{t}/blkio/c", {
        "blkio.throttle.io_service_bytes_recursive": "8:0 Read 1024\n8:0 Write 2048\nTotal 3072\n",
        "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
    })  # fmt: skip
    put(f"{t}/hugetlb/c", {"hugetlb.2MB.usage_in_bytes": "2097152\n", "hugetlb.2MB.failcnt": "1\n"})
    put(f"{t}/cpuset/c", {"cpuset.cpus": "0-1\n", "cpuset.mems": "0\n"})

    s = cg.stats()
    assert s["cpu"] == {
        "usage": {
            "total": 3000000000,
            "percpu": [1000000000, 2000000000],
            "percpu_kernel": [300, 500],
            "percpu_user": [700, 1500],
            "kernel": 500000000,
            "user": 1500000000,
        },
        "throttling": {"periods": 10, "throttledPeriods": 2, "throttledTime": 5000},
    }
    assert s["cpuset"] == {"cpus": [0, 1], "mems": [0]}
    mem = s["memory"]
    assert mem["cache"] == 4096
    assert mem["usage"] == {"limit": 1048576, "usage": 12288, "max": 20000, "failcnt": 3}
    assert mem["swap"]["usage"] == 13000
    assert mem["raw"] == {"cache": 4096, "rss": 8192, "total_cache": 4096}
    assert mem["events"] == {"oom_kill": 2, "under_oom": 0}
    assert s["pids"] == {"current": 4, "limit": 100}
    assert s["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 1024},
        {"major": 8, "minor": 0, "op": "Write", "value": 2048},
    ]
    assert [e["value"] for e in s["blkio"]["ioServicedRecursive"]] == [1, 2]
    assert s["hugetlb"] == {"2MB": {"usage": 2097152, "max": 0, "failcnt": 1}}


def test_v1_stats_without_files_are_zero(tmp_path):
    kernel, mounts = v1_host(tmp_path, ("pids",))
    cg = V1Cgroup("/c", mounts=mounts, system=kernel)
    cg.create()
    s = cg.stats()
    assert s["pids"] == {"current": 0, "limit": 0}  # "max" is reported as 0, as runc
    assert s["memory"]["usage"] == {"limit": 0, "usage": 0, "max": 0, "failcnt": 0}
    assert set(s) == {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb"}


def test_v2_stats(tmp_path):
    kernel, root = v2_host(tmp_path)
    cg = V2Cgroup("/c", root=root, system=kernel)
    cg.create()
    put(cg.dir, {
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
                    "nr_periods 7\nnr_throttled 1\nthrottled_usec 20\n",
        "memory.stat": "anon 8192\nfile 4096\n",
        "memory.current": "12288\n",
        "memory.max": "1048576\n",
        "memory.peak": "30000\n",
        "memory.swap.current": "100\n",
        "memory.swap.max": "1000\n",
        "memory.events": "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n",
        "pids.current": "3\n",
        "pids.max": "max\n",
        "io.stat": "8:0 rbytes=1024 wbytes=2048 rios=1 wios=2 dbytes=0 dios=0\n"
                   "253:1 rbytes=5 wbytes=0 rios=1 wios=0\n",
        "hugetlb.2MB.current": "2097152\n",
        "hugetlb.2MB.events": "max 4\n",
        "cpuset.cpus.effective": "0-1\n",
        "cpuset.mems.effective": "0\n",
    })  # fmt: skip
    s = cg.stats()
    assert s["cpu"]["usage"]["total"] == 1500000
    assert s["cpu"]["usage"]["user"] == 1000000
    assert s["cpu"]["usage"]["kernel"] == 500000
    assert s["cpu"]["throttling"] == {"periods": 7, "throttledPeriods": 1, "throttledTime": 20000}
    mem = s["memory"]
    assert mem["cache"] == 4096
    assert mem["usage"] == {"limit": 1048576, "usage": 12288, "max": 30000, "failcnt": 5}
    assert mem["swap"] == {"limit": 1049576, "usage": 12388, "max": 0, "failcnt": 0}
    assert mem["events"] == {
        "low": 0,
        "high": 0,
        "max": 5,
        "oom": 1,
        "oom_kill": 1,
        "oom_group_kill": 0,
    }
    assert s["pids"] == {"current": 3, "limit": 0}
    assert s["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 1024},
        {"major": 8, "minor": 0, "op": "Write", "value": 2048},
        {"major": 253, "minor": 1, "op": "Read", "value": 5},
        {"major": 253, "minor": 1, "op": "Write", "value": 0},
    ]
    assert s["hugetlb"] == {"2MB": {"usage": 2097152, "max": 0, "failcnt": 4}}
    assert s["cpuset"] == {"cpus": [0, 1], "mems": [0]}


def test_v2_stats_without_controllers(tmp_path):
    kernel, root = v2_host(tmp_path, ())
    cg = V2Cgroup("/c", root=root, system=kernel)
    cg.create()
    cg.add_process(5)
    s = cg.stats()
    assert s["pids"] == {"current": 1, "limit": 0}  # counted from cgroup.procs
    assert s["memory"]["usage"]["usage"] == 0
    assert s["memory"]["events"] == {}


def test_v2_unlimited_swap(tmp_path):
    kernel, root = v2_host(tmp_path)
    cg = V2Cgroup("/c", root=root, system=kernel)
    cg.create()
    assert cg.stats()["memory"]["swap"]["limit"] == UNLIMITED
    assert cg.stats()["memory"]["usage"]["limit"] == UNLIMITED


@pytest.mark.parametrize(
    ("text", "expected"), [("0-2,5\n", [0, 1, 2, 5]), ("", []), ("3", [3]), ("x", [])]
)
def test_cpu_list(text, expected):
    assert cpu_list(text) == expected


def test_blkio_entries_skip_totals_and_junk():
    assert blkio_entries("8:0 6792\nTotal 5\nnonsense\n") == [
        {"major": 8, "minor": 0, "op": "", "value": 6792}
    ]
