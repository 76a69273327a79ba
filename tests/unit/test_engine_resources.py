"""docker's resource fields -> OCI resources: dockerd's rules and messages, the CLI's parsing,
the update merge, and how the stats documents become docker's table row."""

from __future__ import annotations

import resource
from typing import Any

import pytest

from sampan.cli import limits
from sampan.engine import resources
from sampan.errors import Conflict, InvalidArgument, Unsupported

MB = 1 << 20


@pytest.fixture(autouse=True)
def _swap_accounting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "swap_accounting", lambda root="": True)


def test_without_swap_accounting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "swap_accounting", lambda root="": False)
    warnings: list[str] = []
    fields = resources.check({"Memory": 100 * MB}, warnings)
    assert fields["MemorySwap"] == -1 and "Memory limited without swap" in warnings[0]
    assert resources.oci_resources(fields)["memory"] == {"limit": 100 * MB}


def _check(**host: Any) -> dict[str, Any]:
    return resources.check(host)


def test_defaults_are_dockers_inspect_values() -> None:
    fields = _check(MemorySwappiness=-1)
    assert fields == {**resources.FIELDS, "ShmSize": 64 * MB}
    assert resources.oci_resources(fields) == {}


def test_memory_swap_defaults_to_twice_the_memory() -> None:
    fields = _check(Memory=100 * MB)
    assert fields["MemorySwap"] == 200 * MB
    assert resources.oci_resources(fields)["memory"] == {"limit": 100 * MB, "swap": 200 * MB}
    assert _check(Memory=100 * MB, MemorySwap=-1)["MemorySwap"] == -1


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ({"Memory": 4 * MB}, "Minimum memory limit allowed is 6MB"),
        ({"Memory": -5}, "Minimum memory limit allowed is 6MB"),
        ({"Memory": 100 * MB, "MemorySwap": 50 * MB}, "memoryswap limit should be larger"),
        ({"MemorySwap": 100 * MB}, "always set the Memory limit when using Memoryswap"),
        ({"MemoryReservation": MB}, "Minimum memory reservation allowed is 6MB"),
        ({"Memory": 10 * MB, "MemoryReservation": 20 * MB}, "can not be less than memory reserv"),
        ({"MemorySwappiness": 101}, "valid memory swappiness range is 0-100"),
        ({"NanoCpus": 10**9, "CpuQuota": 50000}, "Nano CPUs and CPU Quota cannot both be set"),
        ({"NanoCpus": 10**9, "CpuPeriod": 50000}, "Nano CPUs and CPU Period cannot both be set"),
        ({"CpuPeriod": 10}, r"CPU cfs period can not be less than 1ms \(i.e. 1000\)"),
        ({"CpuPeriod": 2_000_000}, "or larger than 1s"),
        ({"CpuQuota": 500}, "CPU cfs quota can not be less than 1ms"),
        ({"CpusetCpus": "0-"}, "Invalid value 0- for cpuset cpus"),
        ({"CpusetCpus": "4096"}, "Requested CPUs are not available - requested 4096, avail"),
        ({"CpusetMems": "a"}, "Invalid value a for cpuset mems"),
        ({"CpusetMems": "1000"}, "Requested memory nodes are not available"),
        ({"ShmSize": -1}, "SHM size can not be less than 0"),
        ({"OomScoreAdj": 1001}, r"range for oom score adj is \[-1000, 1000\]"),
        ({"Memory": "1g"}, r"HostConfig\.Memory: expected an integer"),
        ({"OomKillDisable": "yes"}, r"HostConfig\.OomKillDisable: expected a boolean"),
    ],
)
def test_dockerd_refusals(host: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        resources.check(host)


def test_cpus_above_the_machine() -> None:
    n = resources.online_cpus()
    with pytest.raises(InvalidArgument) as err:
        _check(NanoCpus=(n + 1) * 10**9)
    assert str(err.value) == (
        f"Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available"
    )
    with pytest.raises(InvalidArgument, match=r"Range of CPUs is from 0\.01"):
        _check(NanoCpus=10**6)
    fields = _check(NanoCpus=n * 10**9 // 2)
    assert resources.oci_resources(fields)["cpu"] == {"period": 100000, "quota": n * 50000}


def test_cpu_shares_clamped_with_a_warning() -> None:
    warnings: list[str] = []
    assert resources.check({"CpuShares": 1}, warnings)["CpuShares"] == 2
    assert warnings == ["Changing requested CPUShares of 1 to 2"]


def test_oci_mapping() -> None:
    fields = _check(Memory=64 * MB, MemorySwap=128 * MB, MemoryReservation=32 * MB,
                    MemorySwappiness=10, OomKillDisable=True, CpuShares=512, CpuQuota=50000,
                    CpuPeriod=100000, CpusetCpus="0", CpusetMems="0", PidsLimit=50)  # fmt: skip
    assert resources.oci_resources(fields) == {
        "memory": {"limit": 64 * MB, "swap": 128 * MB, "reservation": 32 * MB,
                   "swappiness": 10, "disableOOMKiller": True},
        "cpu": {"shares": 512, "period": 100000, "quota": 50000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 50},
    }  # fmt: skip
    # pids 0 and -1 mean unlimited; live (update) spells every "no limit" out
    assert _check(PidsLimit=-1)["PidsLimit"] is None
    live = resources.oci_resources(_check(), live=True)
    assert live == {"memory": {"limit": -1, "swap": -1}, "cpu": {"quota": -1},
                    "pids": {"limit": -1}}  # fmt: skip


def test_spec_gets_rlimits_and_shm_size() -> None:
    fields = _check(ShmSize=32 * MB, Ulimits=[{"Name": "nofile", "Soft": 100, "Hard": 200}],
                    OomScoreAdj=500)  # fmt: skip
    doc: dict[str, Any] = {
        "process": {"args": ["sh"]},
        "mounts": [{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                    "options": ["nosuid", "size=67108864"]}],
        "linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}]}},
    }  # fmt: skip
    resources.apply_to_spec(doc, fields)
    assert doc["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]
    assert doc["process"]["oomScoreAdj"] == 500
    assert doc["mounts"][0]["options"] == ["nosuid", f"size={32 * MB}"]
    assert doc["linux"]["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}


def test_ulimits() -> None:
    with pytest.raises(InvalidArgument, match="invalid ulimit type: bogus"):
        _check(Ulimits=[{"Name": "bogus", "Soft": 1, "Hard": 1}])
    with pytest.raises(InvalidArgument, match="ulimit nofile: soft limit must be less than"):
        _check(Ulimits=[{"Name": "nofile", "Soft": 10, "Hard": 5}])
    with pytest.raises(InvalidArgument, match="ulimit core: given twice"):
        _check(Ulimits=[{"Name": "core", "Soft": 0, "Hard": 0}] * 2)
    with pytest.raises(InvalidArgument, match="-1 \\(unlimited\\) or positive"):
        _check(Ulimits=[{"Name": "core", "Soft": -2, "Hard": -1}])
    with pytest.raises(InvalidArgument, match="soft limit must be less than"):
        _check(Ulimits=[{"Name": "core", "Soft": -1, "Hard": 5}])  # -1 is unlimited
    _, core_hard = resource.getrlimit(resource.RLIMIT_CORE)
    if core_hard == resource.RLIM_INFINITY:  # docker's -1: unlimited, RLIM_INFINITY in OCI
        fields = _check(Ulimits=[{"Name": "core", "Soft": -1, "Hard": -1}])
        doc: dict[str, Any] = {"process": {"args": ["sh"]}, "mounts": []}
        resources.apply_to_spec(doc, fields)
        assert doc["process"]["rlimits"] == [
            {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1}
        ]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and not resources._has_cap(24):
        with pytest.raises(InvalidArgument, match=r"ulimit nofile: hard limit \d+ is above the "
                           r"daemon's own hard limit"):  # fmt: skip
            _check(Ulimits=[{"Name": "nofile", "Soft": 1, "Hard": hard + 1}])
    ok = _check(Ulimits=[{"Name": "nofile", "Soft": 1, "Hard": 2}])
    assert ok["Ulimits"] == [{"Name": "nofile", "Soft": 1, "Hard": 2}]


# -- update ---------------------------------------------------------------------------


def test_update_keeps_what_is_zero() -> None:
    current = _check(Memory=100 * MB, CpuShares=512)
    body = {"Memory": 0, "CpuShares": 0, "MemorySwappiness": -1, "CpusetCpus": "",
            "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}}  # fmt: skip
    assert resources.merge_update(current, body) == current


def test_update_memory_needs_the_swap_as_dockerd() -> None:
    with pytest.raises(Conflict, match="Memory limit should be smaller than already set "
                       "memoryswap limit, update the memoryswap at the same time"):  # fmt: skip
        resources.merge_update(_check(), {"Memory": 200 * MB})
    new = resources.merge_update(_check(), {"Memory": 200 * MB, "MemorySwap": 400 * MB})
    assert (new["Memory"], new["MemorySwap"]) == (200 * MB, 400 * MB)
    # below the swap set at create (twice the memory): no swap needed
    new = resources.merge_update(_check(Memory=100 * MB), {"Memory": 150 * MB})
    assert (new["Memory"], new["MemorySwap"]) == (150 * MB, 200 * MB)
    with pytest.raises(InvalidArgument, match="Minimum memory limit allowed is 6MB"):
        resources.merge_update(_check(), {"Memory": MB, "MemorySwap": -1})


def test_update_cpus_and_pids() -> None:
    new = resources.merge_update(_check(), {"NanoCpus": 5 * 10**8, "PidsLimit": 10})
    assert resources.oci_resources(new, live=True)["cpu"] == {"period": 100000, "quota": 50000}
    assert new["PidsLimit"] == 10
    assert resources.merge_update(new, {"PidsLimit": -1})["PidsLimit"] is None
    with pytest.raises(Conflict, match="CPU Quota cannot be updated as NanoCPUs"):
        resources.merge_update(new, {"CpuQuota": 20000})
    with pytest.raises(Unsupported, match="BlkioWeight cannot be updated"):
        resources.merge_update(new, {"BlkioWeight": 300})


# -- the CLI's parsing --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("64m", 64 * MB), ("1.5g", 3 << 29), ("512MiB", 512 * MB), ("1024", 1024),
     ("64 m", 64 * MB), ("6MB", 6 * MB), ("1kb", 1024), ("2T", 2 << 40)],
)  # fmt: skip
def test_sizes_as_go_units(text: str, size: int) -> None:
    assert limits.parse_size(text, "--memory") == size


@pytest.mark.parametrize("text", ["", "x", "1.2.3", "-1", "10q", "m"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(InvalidArgument, match=f'invalid argument "{text}" for "--memory" flag'):
        limits.parse_size(text, "--memory")


def test_cli_flags_to_host_config(tmp_path: Any) -> None:
    profile = tmp_path / "p.json"
    profile.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW"\n}\n')
    opts = {
        "memory": "1g",
        "memory_swap": "-1",
        "cpus": "1.5",
        "cpu_shares": 512,
        "pids_limit": -1,
        "ulimit": ["nofile=10:20", "core=0"],
        "shm_size": "1m",
        "cap_add": ["SYS_ADMIN"],
        "privileged": True,
        "init": True,
        "security_opt": [f"seccomp={profile}", "no-new-privileges"],
        "device": ["/dev/null", "/dev/null:/dev/n2", "/dev/null:r", "/dev/null:/dev/n:rw"],
    }
    host = limits.host_config(opts)  # fmt: skip
    assert host["Memory"] == 1 << 30 and host["MemorySwap"] == -1
    assert host["NanoCpus"] == 1_500_000_000 and host["PidsLimit"] == -1
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 10, "Hard": 20},
                               {"Name": "core", "Soft": 0, "Hard": 0}]  # fmt: skip
    assert host["SecurityOpt"] == ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}',
                                   "no-new-privileges"]  # fmt: skip
    assert [d["PathInContainer"] + ":" + d["CgroupPermissions"] for d in host["Devices"]] == [
        "/dev/null:rwm", "/dev/n2:rwm", "/dev/null:r", "/dev/n:rw"]  # fmt: skip
    assert host["ShmSize"] == MB and host["Privileged"] and host["Init"]
    for bad, message in (({"cpus": "x"}, "failed to parse x as a rational number"),
                         ({"ulimit": ["nofile"]}, "invalid ulimit argument"),
                         ({"ulimit": ["foo=1"]}, "invalid ulimit type: foo"),
                         ({"device": ["/dev/null:/x:rwz"]}, "invalid device mode: rwz"),
                         ({"security_opt": ["seccomp=/nonexistent"]},
                          r"opening seccomp profile \(/nonexistent\) failed")):  # fmt: skip
        with pytest.raises(InvalidArgument, match=message):
            limits.host_config(bad)


def test_update_body_and_restart() -> None:
    body = limits.update_body({"memory": "256m", "restart": "on-failure:3"})
    assert body == {"Memory": 256 * MB,
                    "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}  # fmt: skip
    with pytest.raises(InvalidArgument, match="invalid restart policy format: always:2"):
        limits.update_body({"restart": "always:2"})


# -- stats as docker's CLI shows them ------------------------------------------------------


def test_stats_row() -> None:
    from sampan.cli.stats import bytes_size, row_of

    doc = {
        "id": "ab" * 32, "name": "/web",
        "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000}, "system_cpu_usage": 20 * 10**9,
                      "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000},
                         "system_cpu_usage": 10 * 10**9},
        "memory_stats": {"usage": 30 * MB, "limit": 100 * MB,
                         "stats": {"total_inactive_file": 10 * MB}},
        "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 500},
                     "eth1": {"rx_bytes": 500, "tx_bytes": 0}},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 8, "minor": 0, "op": "Read", "value": 4096},
            {"major": 8, "minor": 0, "op": "Write", "value": 2_000_000},
            {"major": 8, "minor": 0, "op": "Total", "value": 2_004_096}]},
        "pids_stats": {"current": 3},
    }  # fmt: skip
    row = row_of(doc, trunc=True)
    assert row == {"ID": "abababababab", "Container": "web", "Name": "web", "CPUPerc": "20.00%",
                   "MemUsage": "20MiB / 100MiB", "MemPerc": "20.00%", "NetIO": "2kB / 500B",
                   "BlockIO": "4.1kB / 2MB", "PIDs": "3"}  # fmt: skip
    assert bytes_size(1536) == "1.5KiB" and bytes_size(0) == "0B"
    empty = row_of({"id": "x", "name": "/y"}, trunc=False)
    assert (empty["CPUPerc"], empty["MemUsage"], empty["PIDs"]) == ("0.00%", "0B / 0B", "0")


def test_top_table() -> None:
    from sampan.cli.container_ops import top_table

    doc = {"Titles": ["PID", "CMD"], "Processes": [["1", "sleep 100"], ["22", "sh"]]}
    assert top_table(doc) == (
        "PID                 CMD\n1                   sleep 100\n22                  sh\n"
    )


def test_top_without_ps_reads_proc() -> None:
    import os

    from sampan.engine.operations import _top_from_proc

    doc = _top_from_proc([os.getpid(), 1 << 30])  # the second one does not exist
    assert doc["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert len(doc["Processes"]) == 1
    row = doc["Processes"][0]
    assert row[1] == str(os.getpid()) and row[2] == str(os.getppid()) and "python" in row[-1]
