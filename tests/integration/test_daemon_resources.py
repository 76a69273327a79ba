"""Resource limits and the resource verbs through `sampan daemon`, with the real docker CLI.

Limits are checked where the kernel keeps them: the container's own v1 (or
v2) cgroup files, found by its id, and /proc/PID/limits.  stats, top,
pause/unpause and update go through the docker CLI.  Bad limits exit 125,
name what is wrong, and leave no container.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest

from tests.integration.daemon_fixtures import (
    SampanDaemon,
    busybox_daemon,
    inspect_container,
    needs_docker_cli,
)

pytestmark = needs_docker_cli
MB = 1 << 20
V2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
daemon = busybox_daemon("resources")


def _cgroup(cid: str, controller: str) -> Path:
    base = Path("/sys/fs/cgroup")
    return base / "sampan" / cid if V2 else base / controller / "sampan" / cid


def _read(cid: str, controller: str, name: str) -> str:
    return (_cgroup(cid, controller) / name).read_text().strip()


def _start(daemon: SampanDaemon, *args: str) -> str:
    """docker run -d ARGS; the full id."""
    return daemon.docker("run", "-d", *args).stdout.strip()


def _run(daemon: SampanDaemon, *args: str) -> tuple[int, str]:
    """A container run to its end: (exit code, its output)."""
    cid = _start(daemon, *args)
    code = int(daemon.docker("wait", cid).stdout.strip())
    out = daemon.docker("logs", cid)
    daemon.docker("rm", cid)
    return code, out.stdout + out.stderr


@pytest.mark.skipif(V2, reason="checks the v1 files of this machine's hybrid layout")
def test_limits_reach_the_cgroup_and_rlimits(daemon: SampanDaemon) -> None:
    cid = _start(daemon, "-m", "100m", "--memory-reservation", "50m", "--cpus", "0.5",
                 "--cpu-shares", "512", "--cpuset-cpus", "0", "--pids-limit", "50",
                 "--oom-kill-disable", "--ulimit", "nofile=1000:2000", "--ulimit", "core=0",
                 "busybox", "sleep", "300")  # fmt: skip
    try:
        assert _read(cid, "memory", "memory.limit_in_bytes") == str(100 * MB)
        assert _read(cid, "memory", "memory.memsw.limit_in_bytes") == str(200 * MB)
        assert _read(cid, "memory", "memory.soft_limit_in_bytes") == str(50 * MB)
        assert "oom_kill_disable 1" in _read(cid, "memory", "memory.oom_control")
        assert _read(cid, "cpu", "cpu.cfs_quota_us") == "50000"
        assert _read(cid, "cpu", "cpu.cfs_period_us") == "100000"
        assert _read(cid, "cpu", "cpu.shares") == "512"
        assert _read(cid, "cpuset", "cpuset.cpus") == "0"
        assert _read(cid, "pids", "pids.max") == "50"
        doc = inspect_container(daemon, cid)
        limits = Path(f"/proc/{doc['State']['Pid']}/limits").read_text()
        assert [ln.split()[3:5] for ln in limits.splitlines() if ln.startswith("Max open files")
                ] == [["1000", "2000"]]  # fmt: skip
        host = doc["HostConfig"]
        assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (
            100 * MB, 200 * MB, 500_000_000)  # fmt: skip
        assert {"Name": "nofile", "Soft": 1000, "Hard": 2000} in host["Ulimits"]
    finally:
        daemon.docker("rm", "-f", cid)


def test_unlimited_ulimit(daemon: SampanDaemon) -> None:
    """docker's -1: unlimited where the daemon's own hard limit is; refused where raising
    the hard limit would need CAP_SYS_RESOURCE."""
    import resource

    if resource.getrlimit(resource.RLIMIT_CORE)[1] == resource.RLIM_INFINITY:
        code, out = _run(daemon, "--ulimit", "core=-1", "busybox", "sh", "-c", "ulimit -c")
        assert (code, out.strip()) == (0, "unlimited")
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] != resource.RLIM_INFINITY:
        done = daemon.docker("run", "--rm", "--ulimit", "nofile=-1", "busybox", "true",
                             check=False)  # fmt: skip
        assert done.returncode == 125 and "CAP_SYS_RESOURCE" in done.stderr


def test_oom_score_adj(daemon: SampanDaemon) -> None:
    code, out = _run(daemon, "--oom-score-adj", "300", "busybox", "cat", "/proc/1/oom_score_adj")
    assert (code, out.strip()) == (0, "300")


def test_shm_size(daemon: SampanDaemon) -> None:
    code, out = _run(daemon, "--shm-size", "32m", "busybox", "df", "-k", "/dev/shm")
    assert code == 0 and out.splitlines()[1].split()[1] == str(32 * 1024), out
    code, out = _run(daemon, "busybox", "df", "-k", "/dev/shm")
    assert code == 0 and out.splitlines()[1].split()[1] == str(64 * 1024), out


def test_memory_limit_is_enforced(daemon: SampanDaemon) -> None:
    # 20 MB of data in a tmpfs-free way: a shell variable grown past a 10 MB limit
    code, _ = _run(daemon, "-m", "10m", "--memory-swap", "10m", "busybox", "sh", "-c",
                   "x=$(head -c 30000000 /dev/zero | tr '\\0' a); echo ${#x}")  # fmt: skip
    assert code == 137  # killed by the OOM killer


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "4m"], "Minimum memory limit allowed is 6MB"),
        (["--cpus", "4096"], "Range of CPUs is from 0.01 to"),
        (["--cpuset-cpus", "4000"], "Requested CPUs are not available - requested 4000"),
        (["-m", "100m", "--memory-swap", "50m"], "memoryswap limit should be larger"),
        (["--cpu-period", "10"], "CPU cfs period can not be less than 1ms"),
        (["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
        (["-m", "lots"], "invalid size: 'lots'"),
    ],
)
def test_bad_limits_exit_125_and_leave_nothing(
    daemon: SampanDaemon, args: list[str], message: str
) -> None:
    before = daemon.docker("ps", "-aq").stdout.split()
    done = daemon.docker("run", "-d", *args, "busybox", "true", check=False)
    assert done.returncode == 125, done.stderr
    assert message in done.stderr
    assert daemon.docker("ps", "-aq").stdout.split() == before


def test_ulimit_above_the_daemons_hard_limit(daemon: SampanDaemon) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("the daemon's hard limit is unlimited")
    from sampan.engine.resources import _has_cap

    if _has_cap(24):
        pytest.skip("this host gives CAP_SYS_RESOURCE: hard limits can be raised")
    done = daemon.docker("run", "-d", "--ulimit", f"nofile=1024:{hard + 1}", "busybox", "true",
                         check=False)  # fmt: skip
    assert done.returncode == 125
    assert f"ulimit nofile: hard limit {hard + 1} is above the daemon's own hard limit" in (
        done.stderr
    )


def test_stats_no_stream_and_the_api(daemon: SampanDaemon) -> None:
    busy = _start(daemon, "--name", "busy", "--cpus", "0.5", "-m", "64m", "busybox", "sh", "-c",
                  "while :; do :; done")  # fmt: skip
    idle = _start(daemon, "--name", "idle", "busybox", "sleep", "300")
    try:
        time.sleep(1.0)
        out = daemon.docker("stats", "--no-stream").stdout.splitlines()
        assert out[0].split() == [
            "CONTAINER",
            "ID",
            "NAME",
            "CPU",
            "%",
            "MEM",
            "USAGE",
            "/",
            "LIMIT",
            "MEM",
            "%",
            "NET",
            "I/O",
            "BLOCK",
            "I/O",
            "PIDS",
        ]
        rows = {line.split()[1]: line for line in out[1:]}  # fmt: skip
        assert set(rows) >= {"busy", "idle"} and rows["busy"].startswith(busy[:12])
        assert "/ 64MiB" in rows["busy"]
        fmt = "{{.Name}} {{.CPUPerc}} {{.PIDs}}"
        cpu = {line.split()[0]: line.split()[1:] for line in
               daemon.docker("stats", "--no-stream", "--format", fmt, "busy", "idle")
               .stdout.splitlines()}  # fmt: skip
        busy_cpu = float(cpu["busy"][0].rstrip("%"))
        assert 25.0 < busy_cpu < 75.0, cpu  # a busy loop held to half a CPU
        assert float(cpu["idle"][0].rstrip("%")) < 5.0 and cpu["idle"][1] == "1"

        status, _, raw = daemon.api("GET", f"/containers/{idle}/stats?stream=false")
        doc = json.loads(raw)
        assert status == 200 and doc["id"] == idle and doc["name"] == "/idle"
        assert doc["precpu_stats"]["system_cpu_usage"] > 0
        assert doc["cpu_stats"]["online_cpus"] >= 1
        assert set(doc["cpu_stats"]["cpu_usage"]) >= {"total_usage", "usage_in_kernelmode",
                                                      "usage_in_usermode"}  # fmt: skip
        assert set(doc["cpu_stats"]["throttling_data"]) == {"periods", "throttled_periods",
                                                            "throttled_time"}  # fmt: skip
        assert doc["memory_stats"]["usage"] > 0 and doc["memory_stats"]["stats"]
        assert doc["pids_stats"]["current"] == 1
        assert "io_service_bytes_recursive" in doc["blkio_stats"]
        status, _, raw = daemon.api("GET", f"/containers/{idle}/stats?stream=0&one-shot=1")
        assert json.loads(raw)["preread"] == "0001-01-01T00:00:00Z"
        status, _, _ = daemon.api("GET", "/containers/nope/stats?stream=0")
        assert status == 404
    finally:
        daemon.docker("rm", "-f", busy, idle)


def test_stats_stream_sends_a_document_a_second(daemon: SampanDaemon) -> None:
    import http.client
    import socket

    cid = _start(daemon, "busybox", "sleep", "300")
    try:
        conn = http.client.HTTPConnection("localhost", timeout=10)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(daemon.socket))
        conn.sock = sock
        conn.request("GET", f"/containers/{cid}/stats")
        response = conn.getresponse()
        first = json.loads(response.readline())
        second = json.loads(response.readline())
        assert second["preread"] == first["read"]
        assert second["precpu_stats"] == first["cpu_stats"]
        conn.close()
    finally:
        daemon.docker("rm", "-f", cid)


def test_top(daemon: SampanDaemon) -> None:
    cid = _start(daemon, "busybox", "sleep", "300")
    try:
        pid = str(inspect_container(daemon, cid)["State"]["Pid"])
        out = daemon.docker("top", cid).stdout.splitlines()
        assert out[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        assert len(out) == 2 and out[1].split()[1] == pid and out[1].endswith("sleep 300")
        out = daemon.docker("top", cid, "-o", "pid,comm").stdout.splitlines()
        assert out[0].split() == ["PID", "COMMAND"] and out[1].split() == [pid, "sleep"]
        status, _, raw = daemon.api("GET", f"/containers/{cid}/top?ps_args=aux")
        doc = json.loads(raw)
        assert status == 200 and "%CPU" in doc["Titles"]
        assert [p[doc["Titles"].index("PID")] for p in doc["Processes"]] == [pid]
        done = daemon.docker("top", cid, "-o", "comm", check=False)
        assert done.returncode != 0 and "Couldn't find PID field in ps output" in done.stderr
    finally:
        daemon.docker("rm", "-f", cid)
    done = daemon.docker("top", "nope", check=False)
    assert done.returncode != 0 and "No such container: nope" in done.stderr


def _freezer(cid: str) -> str:
    return _read(cid, "freezer", "cgroup.freeze" if V2 else "freezer.state")


def test_pause_unpause_and_stopping_a_paused_container(daemon: SampanDaemon) -> None:
    cid = _start(daemon, "--name", "napper", "busybox", "sleep", "300")
    try:
        assert daemon.docker("pause", "napper").stdout.strip() == "napper"
        assert _freezer(cid) in ("FROZEN", "1")
        state = inspect_container(daemon, cid)["State"]
        assert (state["Status"], state["Paused"], state["Running"]) == ("paused", True, True)
        assert "(Paused)" in daemon.docker("ps", "--filter", "name=napper").stdout
        assert daemon.docker("ps", "-q", "--filter", "status=paused").stdout.split() == [cid[:12]]
        done = daemon.docker("pause", "napper", check=False)
        assert done.returncode == 1 and "is already paused" in done.stderr
        info = json.loads(daemon.docker("info", "--format", "{{json .}}").stdout)
        assert info["ContainersPaused"] >= 1 and info["MemoryLimit"] and info["PidsLimit"]
        daemon.docker("unpause", "napper")
        assert _freezer(cid) in ("THAWED", "0")
        assert inspect_container(daemon, cid)["State"]["Status"] == "running"
        done = daemon.docker("unpause", "napper", check=False)
        assert done.returncode == 1 and "is not paused" in done.stderr
        for verb in (("stop", "-t", "1"), ("kill",)):
            daemon.docker("pause", "napper")
            daemon.docker(*verb, "napper")
            state = inspect_container(daemon, cid)["State"]
            assert state["Status"] == "exited" and not state["Paused"], (verb, state)
            daemon.docker("start", "napper")
        daemon.docker("pause", "napper")
    finally:
        daemon.docker("rm", "-f", cid)
    assert not _cgroup(cid, "freezer").exists()
    done = daemon.docker("pause", cid, check=False)
    assert done.returncode == 1 and "No such container" in done.stderr


def test_update_applies_live_and_persists(daemon: SampanDaemon) -> None:
    cid = _start(daemon, "--name", "grower", "busybox", "sleep", "300")
    try:
        done = daemon.docker("update", "-m", "300m", "grower", check=False)
        assert done.returncode == 1
        assert "Memory limit should be smaller than already set memoryswap limit" in done.stderr
        assert daemon.docker("update", "-m", "200m", "--memory-swap", "400m", "--cpus", "0.5",
                             "--pids-limit", "20", "grower").stdout.strip() == "grower"  # fmt: skip
        if not V2:
            assert _read(cid, "memory", "memory.limit_in_bytes") == str(200 * MB)
            assert _read(cid, "memory", "memory.memsw.limit_in_bytes") == str(400 * MB)
            assert _read(cid, "cpu", "cpu.cfs_quota_us") == "50000"
            assert _read(cid, "pids", "pids.max") == "20"
        host = inspect_container(daemon, cid)["HostConfig"]
        assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == (
            200 * MB, 400 * MB, 500_000_000, 20)  # fmt: skip
        daemon.docker("update", "--pids-limit", "-1", "grower")
        if not V2:
            assert _read(cid, "pids", "pids.max") == "max"
        done = daemon.docker("update", "-m", "4m", "--memory-swap", "-1", "grower", check=False)
        assert done.returncode == 1 and "Minimum memory limit allowed is 6MB" in done.stderr
        # stopped: the new limits are kept and applied at the next start
        daemon.docker("stop", "-t", "0", "grower")
        daemon.docker("update", "--cpus", "0.25", "grower")
        daemon.docker("start", "grower")
        if not V2:
            assert _read(cid, "cpu", "cpu.cfs_quota_us") == "25000"
            assert _read(cid, "memory", "memory.limit_in_bytes") == str(200 * MB)
    finally:
        daemon.docker("rm", "-f", cid)


def test_update_restart_policy(daemon: SampanDaemon) -> None:
    cid = _start(daemon, "busybox", "sleep", "300")
    try:
        daemon.docker("update", "--restart", "on-failure:3", cid)
        policy = inspect_container(daemon, cid)["HostConfig"]["RestartPolicy"]
        assert policy == {"Name": "on-failure", "MaximumRetryCount": 3}
    finally:
        daemon.docker("rm", "-f", cid)
    cid = _start(daemon, "--rm", "busybox", "sleep", "300")
    try:
        done = daemon.docker("update", "--restart", "always", cid, check=False)
        assert done.returncode == 1 and "AutoRemove is enabled" in done.stderr
    finally:
        daemon.docker("rm", "-f", cid)


def test_docker_py(daemon: SampanDaemon) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.host)
    box = client.containers.run(
        "busybox",
        "sleep 300",
        detach=True,
        mem_limit="64m",
        pids_limit=30,
        cap_add=["SYS_PTRACE"],
        ulimits=[docker.types.Ulimit(name="nofile", soft=100, hard=200)],
    )
    try:
        top = box.top()
        assert top["Titles"][1] == "PID" and top["Processes"][0][-1] == "sleep 300"
        stats = box.stats(stream=False)
        assert stats["memory_stats"]["limit"] == 64 * MB and stats["pids_stats"]["current"] == 1
        box.pause()
        box.reload()
        assert box.status == "paused"
        box.unpause()
        box.reload()
        assert box.status == "running"
        assert box.update(mem_limit="128m", memswap_limit="256m") == {"Warnings": []}
        box.reload()
        assert box.attrs["HostConfig"]["Memory"] == 128 * MB
        if not V2:
            assert _read(box.id, "memory", "memory.limit_in_bytes") == str(128 * MB)
        stream = box.stats(decode=True)
        first, second = next(stream), next(stream)
        assert second["preread"] == first["read"]
        stream.close()
    finally:
        box.remove(force=True)
        client.close()


def test_events(daemon: SampanDaemon) -> None:
    since = str(int(time.time()) - 1)
    cid = _start(daemon, "busybox", "sleep", "300")
    try:
        daemon.docker("pause", cid)
        daemon.docker("unpause", cid)
        daemon.docker("update", "--cpus", "1", cid)
    finally:
        daemon.docker("rm", "-f", cid)
    until = str(int(time.time()) + 1)
    out = daemon.docker("events", "--since", since, "--until", until, "--filter",
                        f"container={cid}", "--format", "{{.Action}}").stdout.split()  # fmt: skip
    assert [a for a in out if a in ("pause", "unpause", "update")] == ["pause", "unpause", "update"]


def test_create_warnings(daemon: SampanDaemon) -> None:
    done = daemon.docker("run", "-d", "--oom-kill-disable", "--cpu-shares", "1", "busybox", "true")
    cid = done.stdout.strip()
    try:
        assert "WARNING: OOM killer is disabled for the container, but no memory limit" in (
            done.stderr
        )
        assert "WARNING: Changing requested CPUShares of 1 to 2" in done.stderr
        assert inspect_container(daemon, cid)["HostConfig"]["CpuShares"] == 2
    finally:
        daemon.docker("rm", "-f", cid)
