"""Restart policies, health checks, rename, restart, prune, stop signal/timeout -- through the
real docker CLI against `sampan daemon`; the live-restore cases have daemons of their own
that are killed with SIGKILL and started again on the same root."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_fixtures import (
    SampanDaemon,
    bootstrapped,
    busybox_daemon,
    inspect_container,
    needs_docker_cli,
    wait_until,
)
from tests.integration.test_daemon_containers import _monitors

pytestmark = needs_docker_cli
daemon = busybox_daemon("lifecycle")


def _state(d: SampanDaemon, name: str) -> dict[str, Any]:
    return inspect_container(d, name)["State"]  # type: ignore[no-any-return]


def _events(d: SampanDaemon, since: float, cid: str, *extra: str) -> list[dict[str, Any]]:
    window = ("--since", f"{since:.3f}", "--until", f"{time.time():.3f}")
    out = d.docker("events", *window, "--filter", f"container={cid}", "--format", "{{json .}}",
                   *extra).stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# -- restart policies ---------------------------------------------------------------------


def test_on_failure_two_retries(daemon: SampanDaemon) -> None:
    since = time.time() - 1
    cid = daemon.docker("run", "-d", "--name", "fail3", "--restart", "on-failure:2",
                        "busybox", "sh", "-c", "exit 3").stdout.strip()  # fmt: skip
    wait_until("the retries to end", lambda: _state(daemon, "fail3")["Status"] == "exited")
    doc = inspect_container(daemon, "fail3")
    assert doc["RestartCount"] == 2
    assert doc["State"]["ExitCode"] == 3 and doc["State"]["Restarting"] is False
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    time.sleep(0.5)
    assert inspect_container(daemon, "fail3")["RestartCount"] == 2  # nothing after the last
    actions = [e["Action"] for e in _events(daemon, since, cid)]
    assert actions == ["create", "start", "die", "start", "die", "start", "die"]
    daemon.docker("rm", "fail3")


def test_on_failure_does_not_restart_a_success(daemon: SampanDaemon) -> None:
    daemon.docker("run", "-d", "--name", "ok0", "--restart", "on-failure", "busybox", "true")
    wait_until("the exit", lambda: _state(daemon, "ok0")["Status"] == "exited")
    time.sleep(0.4)
    assert inspect_container(daemon, "ok0")["RestartCount"] == 0
    daemon.docker("rm", "ok0")


def test_always_backs_off_and_stop_ends_it(daemon: SampanDaemon) -> None:
    since = time.time() - 1
    cid = daemon.docker("run", "-d", "--name", "loop", "--restart", "always",
                        "busybox", "true").stdout.strip()  # fmt: skip
    wait_until("four restarts", lambda: inspect_container(daemon, "loop")["RestartCount"] >= 4, 20)
    events = _events(daemon, since, cid)
    dies = [e["timeNano"] / 1e9 for e in events if e["Action"] == "die"]
    starts = [e["timeNano"] / 1e9 for e in events if e["Action"] == "start"]
    gaps = [start - die for die, start in zip(dies, starts[1:], strict=False)]
    assert len(gaps) >= 3, events
    for gap, backoff in zip(gaps, (0.1, 0.2, 0.4), strict=False):
        assert gap >= backoff * 0.9, gaps  # 100 ms, doubled each time
    assert gaps[2] > gaps[0] * 2, gaps
    ps = daemon.docker("ps", "--filter", "name=loop", "--format", "{{.Status}}").stdout
    assert ps.startswith(("Restarting (0)", "Up ")), ps
    started = time.monotonic()
    daemon.docker("stop", "loop")
    assert time.monotonic() - started < 5
    count = inspect_container(daemon, "loop")["RestartCount"]
    time.sleep(2.0)
    doc = inspect_container(daemon, "loop")
    assert doc["State"]["Status"] == "exited" and doc["RestartCount"] == count
    assert doc["State"]["Restarting"] is False and doc["State"]["Running"] is False
    daemon.docker("start", "loop")  # a start by the user: the count starts again
    wait_until("a restart", lambda: inspect_container(daemon, "loop")["RestartCount"] >= 1)
    assert inspect_container(daemon, "loop")["RestartCount"] < count
    daemon.docker("kill", "loop", check=False)  # kill ends restarting too
    wait_until("the end", lambda: _state(daemon, "loop")["Status"] == "exited")
    daemon.docker("rm", "loop")


def test_rm_of_a_restarting_container(daemon: SampanDaemon) -> None:
    daemon.docker("run", "-d", "--name", "rr", "--restart", "always", "busybox", "true")
    wait_until("a slow backoff", lambda: inspect_container(daemon, "rr")["RestartCount"] >= 6, 30)
    wait_until("restarting", lambda: _state(daemon, "rr")["Status"] == "restarting", 10)
    done = daemon.docker("rm", "rr", check=False)
    if done.returncode:  # docker's refusal while it waits for its restart
        assert "You cannot remove a restarting container" in done.stderr
    daemon.docker("rm", "-f", "rr")
    assert daemon.docker("ps", "-aq", "--filter", "name=rr").stdout == ""


def test_policy_refusals(daemon: SampanDaemon) -> None:
    bad = daemon.docker("run", "--restart", "always:3", "busybox", "true", check=False)
    assert bad.returncode == 125
    assert "maximum retry count can only be used with 'on-failure'" in bad.stderr
    bad = daemon.docker("run", "--restart", "sometimes", "busybox", "true", check=False)
    assert "invalid restart policy: unknown policy 'sometimes'" in bad.stderr
    before = daemon.docker("ps", "-aq").stdout
    body = {"Image": "busybox", "Cmd": ["true"],
            "HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}}  # fmt: skip
    status, doc = daemon.api_json("POST", "/containers/create", body)
    assert status == 400 and "AutoRemove" in doc["message"]
    assert daemon.docker("ps", "-aq").stdout == before  # nothing half-made


# -- daemon restarts ----------------------------------------------------------------------


def test_policies_across_a_killed_daemon(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    sd = bootstrapped(tmp_path)
    try:
        # always, exits while the daemon is down -> started again
        gone = sd.docker("run", "-d", "--name", "gone", "--restart", "always", "busybox",
                         "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; rm /tmp/go",
                         ).stdout.strip()  # fmt: skip
        # unless-stopped, running -> adopted, still running, one monitor
        keep = sd.docker("run", "-d", "--name", "keep", "--restart", "unless-stopped",
                         "busybox", "sleep", "300").stdout.strip()  # fmt: skip
        # unless-stopped, stopped by the user -> stays stopped
        sd.docker("run", "-d", "--name", "held", "--restart", "unless-stopped", "busybox",
                  "sleep", "300")  # fmt: skip
        sd.docker("stop", "-t", "0", "held")
        # always, stopped by the user -> docker starts it at daemon start
        sd.docker("run", "-d", "--name", "back", "--restart", "always", "busybox",
                  "sleep", "300")  # fmt: skip
        sd.docker("stop", "-t", "0", "back")
        # always, in its backoff when the daemon dies -> started again
        sd.docker("run", "-d", "--name", "flap", "--restart", "always", "busybox", "true")
        wait_until("flap's backoff", lambda: inspect_container(sd, "flap")["RestartCount"] >= 5)
        keep_pid = _state(sd, "keep")["Pid"]
        init = _state(sd, "gone")["Pid"]
        assert sd.proc is not None
        os.kill(sd.proc.pid, signal.SIGKILL)
        sd.proc.wait()
        Path(f"/proc/{init}/root/tmp/go").touch()
        wait_until("gone to exit", lambda: not _monitors(gone))
        sd.start()
        wait_until("gone to run again", lambda: _state(sd, "gone")["Status"] == "running")
        wait_until("back to run again", lambda: _state(sd, "back")["Status"] == "running")
        keep_state = _state(sd, "keep")
        assert keep_state["Status"] == "running" and keep_state["Pid"] == keep_pid
        assert len(_monitors(keep)) == 1 and len(_monitors(gone)) == 1
        assert _state(sd, "held")["Status"] == "exited"
        wait_until("flap to restart", lambda: inspect_container(sd, "flap")["RestartCount"] >= 6)
        sd.docker("stop", "flap")
        # stop ends it after a daemon restart too
        sd.docker("stop", "-t", "0", "gone")
        time.sleep(0.5)
        assert _state(sd, "gone")["Status"] == "exited"
        # the manual stop survives a second kill -9 of the daemon
        os.kill(sd.proc.pid, signal.SIGKILL)
        sd.proc.wait()
        sd.start()
        time.sleep(0.5)
        assert _state(sd, "held")["Status"] == "exited"
        assert _state(sd, "keep")["Status"] == "running"
    finally:
        sd.docker("rm", "-f", *sd.docker("ps", "-aq", check=False).stdout.split(), check=False)
        sd.stop()


# -- health checks ------------------------------------------------------------------------


def test_health_turns_healthy(daemon: SampanDaemon) -> None:
    since = time.time() - 1
    cid = daemon.docker("run", "-d", "--name", "fine", "--health-cmd", "echo ok; test -e /bin/sh",
                        "--health-interval", "300ms", "busybox", "sleep", "300",
                        ).stdout.strip()  # fmt: skip
    assert _state(daemon, "fine")["Health"]["Status"] == "starting"
    wait_until("healthy", lambda: _state(daemon, "fine")["Health"]["Status"] == "healthy")
    health = _state(daemon, "fine")["Health"]
    assert health["FailingStreak"] == 0
    last = health["Log"][-1]
    assert last["ExitCode"] == 0 and last["Output"] == "ok\n" and last["Start"] <= last["End"]
    ps = daemon.docker("ps", "--filter", "health=healthy", "--format", "{{.Names}} {{.Status}}")
    assert ps.stdout.startswith("fine Up ") and ps.stdout.strip().endswith("(healthy)")
    actions = [e["Action"] for e in _events(daemon, since, cid)]
    assert "health_status: healthy" in actions
    filtered = _events(daemon, since, cid, "--filter", "event=health_status")
    assert filtered and all(e["Action"].startswith("health_status") for e in filtered)
    daemon.docker("stop", "-t", "0", "fine")
    assert _state(daemon, "fine")["Health"]["Status"] == "unhealthy"  # docker's rule
    daemon.docker("rm", "fine")


def test_health_turns_unhealthy_after_retries(daemon: SampanDaemon) -> None:
    since = time.time() - 1
    cid = daemon.docker("run", "-d", "--name", "sick", "--health-cmd", "echo no; exit 1",
                        "--health-interval", "200ms", "--health-retries", "3",
                        "busybox", "sleep", "300").stdout.strip()  # fmt: skip
    wait_until("unhealthy", lambda: _state(daemon, "sick")["Health"]["Status"] == "unhealthy")
    events = _events(daemon, since, cid, "--filter", "event=health_status")
    assert [e["Action"] for e in events] == ["health_status: unhealthy"]
    health = _state(daemon, "sick")["Health"]
    assert health["FailingStreak"] >= 3 and len(health["Log"]) <= 5
    assert all(r["ExitCode"] == 1 and r["Output"] == "no\n" for r in health["Log"])
    ps = daemon.docker("ps", "--filter", "name=sick", "--format", "{{.Status}}").stdout
    assert ps.strip().endswith("(unhealthy)")
    daemon.docker("rm", "-f", "sick")


def test_health_timeout_and_start_period(daemon: SampanDaemon) -> None:
    daemon.docker("run", "-d", "--name", "slow", "--health-cmd", "sleep 5",
                  "--health-interval", "200ms", "--health-timeout", "300ms",
                  "--health-retries", "1", "--health-start-period", "1s",
                  "busybox", "sleep", "300")  # fmt: skip
    time.sleep(0.9)  # within the start period the failures do not count
    assert _state(daemon, "slow")["Health"]["Status"] == "starting"
    wait_until("unhealthy", lambda: _state(daemon, "slow")["Health"]["Status"] == "unhealthy")
    log = _state(daemon, "slow")["Health"]["Log"]
    assert log[-1]["ExitCode"] == -1
    assert log[-1]["Output"] == "Health check exceeded timeout (300ms)"
    top = daemon.docker("top", "slow", check=False).stdout
    assert top.count("sleep 5") <= 1  # timed-out probes are killed, not piling up
    daemon.docker("rm", "-f", "slow")


def test_no_healthcheck_and_refusals(daemon: SampanDaemon) -> None:
    daemon.docker("run", "-d", "--name", "plain", "--no-healthcheck", "busybox", "sleep", "300")
    doc = inspect_container(daemon, "plain")
    assert doc["Config"]["Healthcheck"] == {"Test": ["NONE"]} and "Health" not in doc["State"]
    assert "plain" in daemon.docker("ps", "--filter", "health=none").stdout
    daemon.docker("rm", "-f", "plain")
    bad = daemon.docker("run", "--health-cmd", "true", "--health-interval", "500us",
                        "busybox", "true", check=False)  # fmt: skip
    assert bad.returncode == 125
    assert "Interval in Healthcheck cannot be less than 1ms" in bad.stderr
    bad = daemon.docker("ps", "--filter", "health=great", check=False)
    assert "Unrecognised filter value for health: great" in bad.stderr


def test_health_prober_survives_a_daemon_restart(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    sd = bootstrapped(tmp_path)
    try:
        sd.docker("run", "-d", "--name", "hc", "--health-cmd", "test ! -e /tmp/bad",
                  "--health-interval", "200ms", "--health-retries", "1",
                  "busybox", "sleep", "300")  # fmt: skip
        wait_until("healthy", lambda: _state(sd, "hc")["Health"]["Status"] == "healthy")
        assert sd.proc is not None
        os.kill(sd.proc.pid, signal.SIGKILL)
        sd.proc.wait()
        sd.start()
        assert _state(sd, "hc")["Health"]["Status"] == "healthy"
        sd.docker("exec", "hc", "touch", "/tmp/bad", check=False)
        pid = _state(sd, "hc")["Pid"]
        Path(f"/proc/{pid}/root/tmp/bad").touch()
        wait_until("unhealthy", lambda: _state(sd, "hc")["Health"]["Status"] == "unhealthy")
    finally:
        sd.docker("rm", "-f", *sd.docker("ps", "-aq", check=False).stdout.split(), check=False)
        sd.stop()


# -- rename, restart, prune ---------------------------------------------------------------


def test_rename(daemon: SampanDaemon) -> None:
    since = time.time() - 1
    cid = daemon.docker("create", "--name", "old", "busybox", "true").stdout.strip()
    daemon.docker("create", "--name", "taken", "busybox", "true")
    daemon.docker("rename", "old", "new")
    assert inspect_container(daemon, cid)["Name"] == "/new"
    assert daemon.docker("inspect", "old", check=False).returncode != 0
    clash = daemon.docker("rename", "new", "taken", check=False)
    assert clash.returncode == 1
    assert 'The container name "/taken" is already in use' in clash.stderr
    bad = daemon.docker("rename", "new", "b@d", check=False)
    assert "Invalid container name (b@d)" in bad.stderr
    status, _, _ = daemon.api("POST", f"/containers/{cid}/rename?name=taken")
    assert status == 409
    status, _, _ = daemon.api("POST", "/containers/nosuch/rename?name=x1")
    assert status == 404
    rename = [e for e in _events(daemon, since, cid) if e["Action"] == "rename"]
    assert rename[0]["Actor"]["Attributes"]["oldName"] == "/old"
    assert rename[0]["Actor"]["Attributes"]["name"] == "new"
    daemon.docker("rm", "new", "taken")


def test_restart(daemon: SampanDaemon) -> None:
    cid = daemon.docker("run", "-d", "--name", "rs", "busybox", "sleep", "300").stdout.strip()
    first = _state(daemon, "rs")
    since = time.time() - 0.5
    started = time.monotonic()
    assert daemon.docker("restart", "-t", "1", "rs").stdout == "rs\n"
    assert time.monotonic() - started < 8
    again = _state(daemon, "rs")
    assert again["Running"] and again["Pid"] != first["Pid"]
    assert again["StartedAt"] > first["StartedAt"]
    actions = [e["Action"] for e in _events(daemon, since, cid)]  # the CLI sends whole seconds
    actions = actions[actions.index("kill") :]
    assert actions == ["kill", "kill", "die", "stop", "start", "restart"], actions
    daemon.docker("stop", "-t", "0", "rs")
    daemon.docker("restart", "rs")  # an exited container is started
    assert _state(daemon, "rs")["Running"]
    daemon.docker("rm", "-f", "rs")
    # --rm survives a restart, as docker's
    daemon.docker("run", "-d", "--rm", "--name", "rmr", "busybox", "sleep", "300")
    daemon.docker("restart", "-t", "0", "rmr")
    assert _state(daemon, "rmr")["Running"]
    daemon.docker("rm", "-f", "rmr")


def test_container_prune(daemon: SampanDaemon) -> None:
    a = daemon.docker("create", "--label", "prune=yes", "busybox", "true").stdout.strip()
    b = daemon.docker("run", "--label", "prune=yes", "busybox", "true").stdout.strip() or None
    keep = daemon.docker("create", "--label", "prune=no", "busybox", "true").stdout.strip()
    live = daemon.docker("run", "-d", "--label", "prune=yes", "busybox",
                         "sleep", "300").stdout.strip()  # fmt: skip
    out = daemon.docker("container", "prune", "-f", "--filter", "label=prune=yes").stdout
    assert out.startswith("Deleted Containers:\n") and a in out
    assert out.rstrip().splitlines()[-1].startswith("Total reclaimed space: ")
    ids = daemon.docker("ps", "-aq", "--no-trunc").stdout.split()
    assert a not in ids and keep in ids and live in ids
    assert b is None or b not in ids
    out = daemon.docker("container", "prune", "-f", "--filter", "until=1h").stdout
    assert out == "Total reclaimed space: 0B\n"  # everything is younger than an hour
    status, doc = daemon.api_json("POST", '/containers/prune?filters={"bogus":["x"]}')
    assert status == 400 and doc["message"] == "invalid filter 'bogus'"
    daemon.docker("rm", "-f", keep, live)


# -- stop signal and timeout --------------------------------------------------------------


def test_stop_signal_trap(daemon: SampanDaemon) -> None:
    daemon.docker("run", "-d", "--name", "trap", "--stop-signal", "SIGUSR1", "busybox", "sh",
                  "-c", 'trap "echo got usr1; exit 7" USR1; echo ready; '
                  "while true; do sleep 0.1; done")  # fmt: skip
    assert inspect_container(daemon, "trap")["Config"]["StopSignal"] == "SIGUSR1"
    wait_until("ready", lambda: "ready" in daemon.docker("logs", "trap").stdout)
    started = time.monotonic()
    daemon.docker("stop", "trap")
    assert time.monotonic() - started < 5
    assert _state(daemon, "trap")["ExitCode"] == 7
    assert "got usr1" in daemon.docker("logs", "trap").stdout
    daemon.docker("rm", "trap")


def test_stop_timeout(daemon: SampanDaemon) -> None:
    # sh as pid 1 without a trap ignores SIGTERM: only the SIGKILL after the timeout ends it
    daemon.docker("run", "-d", "--name", "stubborn", "--stop-timeout", "1", "busybox",
                  "sh", "-c", "while true; do sleep 0.1; done")  # fmt: skip
    assert inspect_container(daemon, "stubborn")["Config"]["StopTimeout"] == 1
    started = time.monotonic()
    daemon.docker("stop", "stubborn")
    took = time.monotonic() - started
    assert 0.9 <= took < 5, took
    assert _state(daemon, "stubborn")["ExitCode"] == 137
    daemon.docker("rm", "stubborn")
    bad = daemon.docker("run", "--stop-signal", "SIGNOPE", "busybox", "true", check=False)
    assert bad.returncode == 125 and "Invalid signal: SIGNOPE" in bad.stderr
