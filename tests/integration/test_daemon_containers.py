"""Containers through `sampan daemon`: the real docker CLI, raw API calls, live restore.

A module-wide daemon runs on a private root where busybox was bootstrapped
before it started.  The live-restore test has a daemon of its own that it
kills with SIGKILL and starts again on the same root.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.integration.daemon_fixtures import (
    SampanDaemon,
    bootstrapped,
    busybox_daemon,
    inspect_container,
    needs_docker_cli,
    wait_until,
)

pytestmark = needs_docker_cli
daemon = busybox_daemon("containers")


def _monitors(cid: str) -> list[int]:
    """Monitors of CID: spawned ones by their command line, ones forked by the daemon's
    fork server by their name and the container's log file they hold open."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if any(a.endswith(b"monitor.py") for a in cmdline) and cid.encode() in cmdline:
                pids.append(int(entry))
            elif Path(f"/proc/{entry}/comm").read_text().strip() == "sampan-monitor":
                fds = Path(f"/proc/{entry}/fd")
                if any(cid in os.readlink(fd) for fd in fds.iterdir()):
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def _cgroup_dirs(cid: str) -> list[Path]:
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        candidates = [base / "sampan" / cid]
    else:
        candidates = [d / "sampan" / cid for d in base.iterdir() if d.is_dir()]
    return [p for p in candidates if p.exists()]


def _mounted(path: str) -> bool:
    return path in Path("/proc/self/mountinfo").read_text()


def _assert_no_leaks(daemon: SampanDaemon, cid: str, init_pid: int = 0) -> None:
    wait_until("the monitor to exit", lambda: not _monitors(cid))
    assert not _cgroup_dirs(cid)
    assert not _mounted(str(daemon.root / "containers" / cid))
    assert not (daemon.exec_root / "runtime" / cid).exists()
    assert not (daemon.exec_root / "containers" / cid).exists()
    assert not (daemon.root / "containers" / cid).exists()
    if init_pid:
        assert not Path(f"/proc/{init_pid}").exists() or (
            Path(f"/proc/{init_pid}/stat").read_text().split()[2] in "ZX"
        )


def test_run_rm_echo_hello(daemon: SampanDaemon) -> None:
    done = daemon.docker("run", "--rm", "busybox", "echo", "hello")
    assert done.stdout == "hello\n"
    assert daemon.docker("ps", "-aq").stdout == ""


def test_run_exit_code_and_streams(daemon: SampanDaemon) -> None:
    done = daemon.docker(
        "run", "--name", "exit3", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3",
        check=False,
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stdout == "out\n"
    assert "err\n" in done.stderr
    state = inspect_container(daemon, "exit3")["State"]
    assert (state["Status"], state["Running"], state["ExitCode"]) == ("exited", False, 3)
    assert "Exited (3)" in daemon.docker("ps", "-a", "--filter", "name=exit3").stdout
    logs = daemon.docker("logs", "exit3")
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")
    daemon.docker("rm", "exit3")


def test_detached_ps_logs_stop_wait_rm(daemon: SampanDaemon) -> None:
    cid = daemon.docker(
        "run", "-d", "--name", "web", "-e", "GREETING=hi", "busybox",
        "sh", "-c", 'echo "$GREETING from $HOSTNAME"; exec sleep 300',
    ).stdout.strip()  # fmt: skip
    assert len(cid) == 64 and all(c in "0123456789abcdef" for c in cid)
    assert "web" in daemon.docker("ps").stdout
    expected = f"hi from {cid[:12]}\n"
    wait_until("the log line", lambda: daemon.docker("logs", "web").stdout == expected)
    doc = inspect_container(daemon, "web")
    assert doc["Id"] == cid and doc["Name"] == "/web"
    assert doc["State"]["Running"] is True and doc["State"]["Pid"] > 0
    assert doc["Config"]["Cmd"][0] == "sh" and "GREETING=hi" in doc["Config"]["Env"]
    assert doc["HostConfig"]["NetworkMode"] == "default"
    init = doc["State"]["Pid"]
    assert _monitors(cid) and _mounted(str(daemon.root / "containers" / cid / "rootfs"))
    started = time.monotonic()
    daemon.docker("stop", "-t", "1", "web")
    assert time.monotonic() - started < 10
    assert "Exited (137)" in daemon.docker("ps", "-a", "--filter", "name=web").stdout
    assert "web" not in daemon.docker("ps").stdout
    assert daemon.docker("wait", "web").stdout.strip() == "137"
    daemon.docker("rm", "web")
    _assert_no_leaks(daemon, cid, init)


def test_rm_force_running_leaves_nothing(daemon: SampanDaemon) -> None:
    cid = daemon.docker("run", "-d", "busybox", "sleep", "300").stdout.strip()
    init = inspect_container(daemon, cid)["State"]["Pid"]
    refused = daemon.docker("rm", cid, check=False)
    assert refused.returncode == 1 and "container is running" in refused.stderr
    daemon.docker("rm", "-f", cid)
    _assert_no_leaks(daemon, cid, init)


def test_unknown_container(daemon: SampanDaemon) -> None:
    for args in (
        ("container", "inspect", "nosuch"),
        ("logs", "nosuch"),
        ("stop", "nosuch"),
        ("rm", "nosuch"),
    ):
        done = daemon.docker(*args, check=False)
        assert done.returncode == 1
        assert "Error response from daemon: No such container: nosuch" in done.stderr


def test_duplicate_name_conflict(daemon: SampanDaemon) -> None:
    daemon.docker("create", "--name", "twice", "busybox", "true")
    done = daemon.docker("run", "--name", "twice", "busybox", "true", check=False)
    assert done.returncode == 125
    assert 'The container name "/twice" is already in use' in done.stderr
    daemon.docker("rm", "twice")


def test_concurrent_creates_one_name(daemon: SampanDaemon) -> None:
    results: list[int] = []

    def create() -> None:
        status, _ = daemon.api_json(
            "POST", "/v1.41/containers/create?name=race", {"Image": "busybox", "Cmd": ["true"]}
        )
        results.append(status)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] + [409] * 7
    daemon.docker("rm", "race")


def test_wait_and_multiplexed_logs_api(daemon: SampanDaemon) -> None:
    status, doc = daemon.api_json(
        "POST",
        "/containers/create",
        {"Image": "busybox", "Cmd": ["sh", "-c", "echo a; echo b >&2"]},
    )
    assert status == 201
    cid = doc["Id"]
    assert daemon.api("POST", f"/containers/{cid}/start")[0] == 204
    status, waited = daemon.api_json("POST", f"/containers/{cid}/wait")
    assert (status, waited["StatusCode"]) == (200, 0)
    status, _, body = daemon.api("GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
    frames = []
    while body:
        kind, size = body[0], int.from_bytes(body[4:8], "big")
        frames.append((kind, body[8 : 8 + size]))
        body = body[8 + size :]
    assert sorted(frames) == [(1, b"a\n"), (2, b"b\n")]
    assert daemon.api("POST", f"/containers/{cid}/start")[0] == 204  # an exited one starts again
    assert daemon.api_json("POST", f"/containers/{cid}/wait?condition=bogus")[0] == 400
    assert daemon.api("DELETE", f"/containers/{cid}?force=1")[0] == 204
    assert daemon.api_json("GET", f"/containers/{cid}/json")[0] == 404


def test_filters(daemon: SampanDaemon) -> None:
    daemon.docker("create", "--name", "flt-one", "-l", "tier=web", "busybox", "true")
    daemon.docker("create", "--name", "flt-two", "busybox", "true")
    names = daemon.docker("ps", "-a", "--filter", "label=tier=web", "--format", "{{.Names}}")
    assert names.stdout.split() == ["flt-one"]
    names = daemon.docker("ps", "-a", "--filter", "status=created", "--format", "{{.Names}}")
    assert {"flt-one", "flt-two"} <= set(names.stdout.split())
    assert daemon.docker("ps", "--filter", "name=flt", "-q").stdout == ""
    daemon.docker("rm", "flt-one", "flt-two")


def test_sizes(daemon: SampanDaemon) -> None:
    """ps -s and inspect -s: the writable layer's bytes, and with the image's (virtual)."""
    script = "head -c 100000 /dev/zero > /big; exec sleep 300"
    cid = daemon.docker("run", "-d", "--name", "sized", "busybox", "sh", "-c", script).stdout
    cid = cid.strip()
    try:
        wait_until("the write", lambda: json.loads(
            daemon.docker("inspect", "-s", "sized").stdout)[0]["SizeRw"] >= 100000)  # fmt: skip
        doc = json.loads(daemon.docker("inspect", "-s", "sized").stdout)[0]
        image = json.loads(daemon.docker("image", "inspect", "busybox").stdout)[0]["Size"]
        assert doc["SizeRootFs"] == doc["SizeRw"] + image
        assert "SizeRw" not in inspect_container(daemon, "sized")  # only when asked
        out = daemon.docker("ps", "-s", "--filter", f"id={cid}", "--format", "{{.Size}}").stdout
        assert out.startswith("10") and "kB (virtual " in out
        table = daemon.docker("ps", "-s", "--filter", f"id={cid}").stdout.splitlines()
        assert table[0].split()[-1] == "SIZE"
    finally:
        daemon.docker("rm", "-f", cid)


def test_network_modes(daemon: SampanDaemon) -> None:
    links = daemon.docker("run", "--rm", "busybox", "ip", "-o", "link").stdout.splitlines()
    assert len(links) == 1 and "lo:" in links[0] and "UP" in links[0]
    none = daemon.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert len(none.stdout.splitlines()) == 1
    host = daemon.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    assert len(host.stdout.splitlines()) == len(os.listdir("/sys/class/net"))
    bridge = daemon.docker("run", "--rm", "--network", "bridge", "busybox", "true", check=False)
    assert bridge.returncode == 125
    assert "network bridge not found" in bridge.stderr  # the daemon runs with --bridge none


def test_command_not_found_is_127(daemon: SampanDaemon) -> None:
    done = daemon.docker("run", "--rm", "busybox", "no-such-command", check=False)
    assert done.returncode == 127
    assert "executable file not found" in done.stderr


def test_live_restore(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    sd = bootstrapped(tmp_path)
    try:
        long_id = sd.docker("run", "-d", "--name", "long", "busybox", "sleep", "300").stdout.strip()
        short_id = sd.docker(
            "run", "-d", "--name", "short", "busybox", "sh", "-c", "read x < /dev/null; "
            "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 7",
        ).stdout.strip()  # fmt: skip
        init = inspect_container(sd, "short")["State"]["Pid"]
        assert sd.proc is not None
        os.kill(sd.proc.pid, signal.SIGKILL)
        sd.proc.wait()
        # While the daemon is down: the short one finishes, with code 7.
        Path(f"/proc/{init}/root/tmp/go").touch()
        wait_until("the short container to exit", lambda: not _monitors(short_id))
        assert _monitors(long_id)
        sd.start()
        ps = sd.docker("ps", "--format", "{{.Names}} {{.Status}}").stdout
        assert ps.startswith("long Up")
        assert "Exited (7)" in sd.docker("ps", "-a", "--filter", "name=short").stdout
        assert sd.docker("wait", "short").stdout.strip() == "7"
        sd.docker("stop", "-t", "1", "long")
        assert inspect_container(sd, "long")["State"]["ExitCode"] == 137
        sd.docker("rm", "long", "short")
        _assert_no_leaks(sd, long_id)
        _assert_no_leaks(sd, short_id)
    finally:
        sd.docker("rm", "-f", *sd.docker("ps", "-aq", check=False).stdout.split(), check=False)
        sd.stop()
