"""Restart policies: docker's validation messages, the decision, the backoff, and the
manager's bookkeeping (pending restarts, manual stops, user starts) over a fake service."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from sampan.engine import restart
from sampan.engine.containers import Container, NotModified
from sampan.errors import Conflict, InvalidArgument
from sampan.units import go_duration, parse_duration

# -- check_policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "want"),
    [
        (None, {"Name": "no", "MaximumRetryCount": 0}),
        ({}, {"Name": "no", "MaximumRetryCount": 0}),
        ({"Name": ""}, {"Name": "no", "MaximumRetryCount": 0}),
        ({"Name": "no"}, {"Name": "no", "MaximumRetryCount": 0}),
        ({"Name": "always"}, {"Name": "always", "MaximumRetryCount": 0}),
        ({"Name": "unless-stopped"}, {"Name": "unless-stopped", "MaximumRetryCount": 0}),
        ({"Name": "on-failure"}, {"Name": "on-failure", "MaximumRetryCount": 0}),
        ({"Name": "on-failure", "MaximumRetryCount": 3}, {"Name": "on-failure",
                                                          "MaximumRetryCount": 3}),
    ],
)  # fmt: skip
def test_check_policy_accepts_docker_policies(policy: object, want: dict[str, Any]) -> None:
    assert restart.check_policy(policy) == want


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"Name": "always", "MaximumRetryCount": 2},
         "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
        ({"Name": "no", "MaximumRetryCount": -1},
         "invalid restart policy: maximum retry count can only be used with 'on-failure' "
         "and cannot be negative"),
        ({"Name": "on-failure", "MaximumRetryCount": -1},
         "invalid restart policy: maximum retry count cannot be negative"),
        ({"Name": "sometimes"},
         "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', "
         "'on-failure', or 'unless-stopped'"),
        ({"Name": "always", "Bogus": 1}, "HostConfig.RestartPolicy: unknown field 'Bogus'"),
        ({"Name": 3}, "HostConfig.RestartPolicy.Name: expected a string"),
        ({"Name": "on-failure", "MaximumRetryCount": "2"},
         "HostConfig.RestartPolicy.MaximumRetryCount: expected an integer"),
        ("always", "HostConfig.RestartPolicy: expected an object"),
    ],
)  # fmt: skip
def test_check_policy_refuses_with_dockers_message(policy: object, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        restart.check_policy(policy)
    assert str(err.value) == message


def test_auto_remove_with_a_policy_is_refused() -> None:
    restart.check_auto_remove({"AutoRemove": True, "RestartPolicy": {"Name": "no"}})
    restart.check_auto_remove({"AutoRemove": False, "RestartPolicy": {"Name": "always"}})
    with pytest.raises(InvalidArgument, match="can't create 'AutoRemove' container with restart"):
        restart.check_auto_remove({"AutoRemove": True, "RestartPolicy": {"Name": "always"}})


def test_host_config_goes_through_check_policy() -> None:
    from sampan.engine import spec

    host = spec.check_host_config({"RestartPolicy": {"Name": "on-failure",
                                                     "MaximumRetryCount": 2}})  # fmt: skip
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    with pytest.raises(InvalidArgument, match="unknown policy 'x'"):
        spec.check_host_config({"RestartPolicy": {"Name": "x"}})
    with pytest.raises(InvalidArgument, match="AutoRemove"):
        spec.check_host_config({"AutoRemove": True, "RestartPolicy": {"Name": "always"}})


# -- the decision and the backoff ---------------------------------------------------------


def test_should_restart_per_policy() -> None:
    on_failure_2 = {"Name": "on-failure", "MaximumRetryCount": 2}
    assert not restart.should_restart({"Name": "no"}, 1, 0, False)
    assert restart.should_restart({"Name": "always"}, 0, 50, False)
    assert not restart.should_restart({"Name": "always"}, 0, 0, True)
    assert restart.should_restart({"Name": "unless-stopped"}, 0, 0, False)
    assert not restart.should_restart({"Name": "unless-stopped"}, 0, 0, True)
    assert not restart.should_restart(on_failure_2, 0, 0, False)  # success: no restart
    assert restart.should_restart(on_failure_2, 3, 0, False)
    assert restart.should_restart(on_failure_2, 3, 1, False)
    assert not restart.should_restart(on_failure_2, 3, 2, False)  # the count is spent
    assert restart.should_restart({"Name": "on-failure"}, 1, 1000, False)  # 0: no limit


def test_backoff_doubles_to_a_minute_and_resets_after_ten_seconds() -> None:
    delays = []
    delay = 0.0
    for _ in range(12):
        delay = restart.next_delay(delay, 0.1)
        delays.append(delay)
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 60.0 and max(delays) == 60.0
    assert restart.next_delay(60.0, 9.9) == 60.0
    assert restart.next_delay(60.0, 10.0) == 0.1


def test_go_durations() -> None:
    assert parse_duration("1m30s") == 90 * 10**9
    assert parse_duration("500ms") == 5 * 10**8
    assert parse_duration("1.5h") == 5400 * 10**9
    assert parse_duration("0") == 0
    for bad, message in (("5", 'time: missing unit in duration "5"'),
                         ("x", 'time: invalid duration "x"'),
                         ("3d", 'time: unknown unit "d" in duration "3d"')):  # fmt: skip
        with pytest.raises(ValueError) as err:
            parse_duration(bad)
        assert str(err.value) == message
    assert [go_duration(n) for n in (0, 5 * 10**8, 90 * 10**9, 3600 * 10**9, 1500)] == [
        "0s", "500ms", "1m30s", "1h0m0s", "1.5µs"]  # fmt: skip


# -- the manager over a fake service -------------------------------------------------------


class _Engine:
    def release_thread(self) -> None:
        pass


class FakeService:
    """What RestartManager uses of ContainerService: its lock, _save and start."""

    def __init__(self) -> None:
        self.changed = threading.Condition(threading.RLock())
        self.engine = _Engine()
        self.saved = 0
        self.starts: list[tuple[str, object]] = []
        self.manager = restart.RestartManager(self)  # type: ignore[arg-type]
        self.containers: dict[str, Container] = {}

    def _save(self, c: Container) -> None:
        self.saved += 1

    def start(self, ref: str, policy: object = None) -> None:
        with self.changed:
            c = self.containers[ref]
            if c.running:
                raise NotModified("running")
            self.manager.starting(c, policy)
            c.state.update(Status="running", Running=True)
            self.starts.append((ref, policy))
            self.changed.notify_all()


def _container(service: FakeService, policy: str, count: int = 0) -> Container:
    state = {"Status": "exited", "Running": False, "ExitCode": 1, "RestartCount": 0,
             "StartedAt": "2024-01-01T00:00:00Z"}  # fmt: skip
    host = {"RestartPolicy": {"Name": policy, "MaximumRetryCount": count}}
    cid = f"c{len(service.containers)}" + "0" * 60
    c = Container(cid, "n", "img", "busybox", 0.0, {"Labels": {}}, host, state)
    service.containers[c.id] = c
    return c


def _wait_for(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_exit_schedules_a_restart_and_counts_it() -> None:
    service = FakeService()
    c = _container(service, "on-failure", 1)
    with service.changed:
        assert service.manager.exited(c, 0.01) is True
        assert c.state["Status"] == "restarting" and c.state["RestartCount"] == 1
    _wait_for(lambda: service.starts)
    assert c.state["Status"] == "running"
    c.state.update(Status="exited", Running=False)
    with service.changed:
        assert service.manager.exited(c, 0.01) is False  # on-failure:1 is spent
    assert c.state["Status"] == "exited" and c.state["RestartCount"] == 1


def test_user_stop_cancels_a_pending_restart() -> None:
    service = FakeService()
    c = _container(service, "always")
    with service.changed:
        service.manager._delay[c.id] = 30.0  # the next backoff is a minute: it stays pending
        assert service.manager.exited(c, 0.01)
        assert c.state["Status"] == "restarting"
        assert service.manager.stopped_by_user(c) is True
    assert c.state["Status"] == "exited" and c.state["ManuallyStopped"] is True
    time.sleep(0.05)
    assert service.starts == []
    with service.changed:
        assert service.manager.exited(c, 0.01) is False  # manually stopped: no restart


def test_a_cancelled_restart_token_is_refused_at_start() -> None:
    service = FakeService()
    c = _container(service, "always")
    token = object()
    with pytest.raises(Conflict):
        service.manager.starting(c, token)


def test_user_start_resets_count_and_manual_stop() -> None:
    service = FakeService()
    c = _container(service, "unless-stopped")
    c.state.update(RestartCount=7, ManuallyStopped=True)
    service.start(c.id)
    assert c.state["RestartCount"] == 0 and c.state["ManuallyStopped"] is False


def test_restore_restarts_per_docker_rules() -> None:
    service = FakeService()
    always = _container(service, "always")
    always.state["ManuallyStopped"] = True  # always: restarted by a daemon start anyway
    unless = _container(service, "unless-stopped")
    unless.state["ManuallyStopped"] = True  # not this one
    never_ran = _container(service, "always")
    never_ran.state.update(StartedAt="0001-01-01T00:00:00Z", Status="created")
    pending = _container(service, "no")
    pending.state["Status"] = "restarting"  # the daemon died during a backoff
    with service.changed:
        for c in (always, unless, never_ran, pending):
            service.manager.restore(c)
    _wait_for(lambda: len(service.starts) == 2)
    time.sleep(0.05)
    assert sorted(ref for ref, _ in service.starts) == sorted([always.id, pending.id])


def test_remove_of_a_restarting_container_needs_force() -> None:
    service = FakeService()
    c = _container(service, "always")
    with service.changed:
        service.manager._delay[c.id] = 30.0
        service.manager.exited(c, 0.0)
        with pytest.raises(Conflict, match="You cannot remove a restarting container"):
            service.manager.removing(c, force=False)
        service.manager.removing(c, force=True)
    time.sleep(0.05)
    assert service.starts == []
