"""Health checks: Config.Healthcheck validation and merge (docker's rules and messages), the
probe's command, the state machine (start period, retries, recovery), ps's suffix, and the
CLI's health flags."""

from __future__ import annotations

from typing import Any

import pytest

from sampan.cli.args import parse  # bound now: completion's tests swap the module's
from sampan.engine import health, lifecycle
from sampan.errors import InvalidArgument

S = 1_000_000_000


def test_check_healthcheck_accepts_docker_shapes() -> None:
    assert health.check_healthcheck(None) is None
    doc = {"Test": ["CMD-SHELL", "true"], "Interval": 2 * S, "Timeout": 0, "Retries": 3,
           "StartPeriod": S, "StartInterval": S}  # fmt: skip
    assert health.check_healthcheck(doc) == doc
    assert health.check_healthcheck({"Test": ["NONE"]}) == {"Test": ["NONE"]}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"Interval": 500}, "Interval in Healthcheck cannot be less than 1ms"),
        ({"Timeout": 10}, "Timeout in Healthcheck cannot be less than 1ms"),
        ({"StartPeriod": 1}, "StartPeriod in Healthcheck cannot be less than 1ms"),
        ({"StartInterval": 1}, "StartInterval in Healthcheck cannot be less than 1ms"),
        ({"Retries": -1}, "Retries in Healthcheck cannot be negative"),
        ({"Test": ["SHELL", "x"]},
         "Healthcheck.Test: unknown type 'SHELL' (NONE, CMD or CMD-SHELL)"),
        ({"Test": ["CMD"]}, "Healthcheck.Test: CMD needs a command"),
        ({"Test": "true"}, "Healthcheck.Test: expected a list of strings"),
        ({"Interval": "1s"}, "Healthcheck.Interval: expected an integer"),
        ({"Bogus": 1}, "Healthcheck: unknown field 'Bogus'"),
    ],
)  # fmt: skip
def test_check_healthcheck_refuses(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        health.check_healthcheck(doc)
    assert str(err.value) == message


def test_merge_request_fields_over_image_fields() -> None:
    image = {"Healthcheck": {"Test": ["CMD", "/check"], "Interval": 5 * S, "Retries": 2}}
    assert health.config_fields(image, {}) == {"Healthcheck": image["Healthcheck"]}
    merged = health.config_fields(image, {"Healthcheck": {"Interval": 0, "Timeout": 3 * S}})
    assert merged == {"Healthcheck": {"Test": ["CMD", "/check"], "Interval": 5 * S,
                                      "Timeout": 3 * S, "Retries": 2}}  # fmt: skip
    none = health.config_fields(image, {"Healthcheck": {"Test": ["NONE"]}})
    assert health.probe_command(none) is None
    assert health.config_fields({}, {}) == {}


def test_probe_command() -> None:
    shell = {"Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost || exit 1"]}}
    assert health.probe_command(shell) == ["/bin/sh", "-c", "curl -f localhost || exit 1"]
    assert health.probe_command({"Healthcheck": {"Test": ["CMD", "/bin/true", "x"]}}) == [
        "/bin/true", "x"]  # fmt: skip
    assert health.probe_command({}) is None
    assert health.probe_command({"Healthcheck": {"Test": []}}) is None


def _result(code: int) -> dict[str, Any]:
    return {"Start": "s", "End": "e", "ExitCode": code, "Output": f"code {code}\n"}


def test_state_machine_retries_and_recovery() -> None:
    config = {"Healthcheck": {"Test": ["CMD", "x"], "Retries": 2}}
    h: dict[str, Any] = {"Status": "starting", "FailingStreak": 0}
    assert health.record_result(h, config, 0.0, _result(1), 100.0) is None
    assert h["FailingStreak"] == 1 and h["Status"] == "starting"
    assert health.record_result(h, config, 0.0, _result(1), 101.0) == "unhealthy"
    assert health.record_result(h, config, 0.0, _result(1), 102.0) is None
    assert h["FailingStreak"] == 3
    assert health.record_result(h, config, 0.0, _result(0), 103.0) == "healthy"
    assert h["FailingStreak"] == 0
    for i in range(7):
        health.record_result(h, config, 0.0, _result(0), 104.0 + i)
    assert len(h["Log"]) == 5  # the last five only
    assert health.record_result(h, config, 0.0, _result(2), 120.0) is None  # 1 < 2 retries
    assert health.record_result(h, config, 0.0, _result(-1), 121.0) == "unhealthy"


def test_start_period_failures_do_not_count() -> None:
    config = {"Healthcheck": {"Test": ["CMD", "x"], "Retries": 1, "StartPeriod": 10 * S}}
    h: dict[str, Any] = {"Status": "starting", "FailingStreak": 0}
    assert health.record_result(h, config, 1000.0, _result(1), 1005.0) is None
    assert h["FailingStreak"] == 0 and h["Status"] == "starting"
    assert health.record_result(h, config, 1000.0, _result(1), 1011.0) == "unhealthy"
    # once healthy, the start period no longer shields failures
    h = {"Status": "healthy", "FailingStreak": 0}
    assert health.record_result(h, config, 1000.0, _result(1), 1001.0) == "unhealthy"


def test_default_retries_is_three() -> None:
    config = {"Healthcheck": {"Test": ["CMD", "x"]}}
    h: dict[str, Any] = {"Status": "healthy", "FailingStreak": 0}
    assert [health.record_result(h, config, 0.0, _result(1), 1.0) for _ in range(3)] == [
        None, None, "unhealthy"]  # fmt: skip


def test_ps_status_and_filter() -> None:
    assert health.status_suffix({}) == ""
    assert health.status_suffix({"Health": {"Status": "starting"}}) == " (health: starting)"
    assert health.status_suffix({"Health": {"Status": "healthy"}}) == " (healthy)"
    state = {"Status": "running", "StartedAt": "2024-01-01T00:00:00Z",
             "Health": {"Status": "unhealthy"}}  # fmt: skip
    from sampan.units import parse_rfc3339

    now = parse_rfc3339("2024-01-01T00:00:03Z")
    assert lifecycle.status_text("running", state, now) == "Up 3 seconds (unhealthy)"
    state = {"Status": "restarting", "ExitCode": 3, "FinishedAt": "2024-01-01T00:00:01Z"}
    assert lifecycle.status_text("restarting", state, now) == "Restarting (3) 2 seconds ago"
    assert lifecycle.status_text("running", {"StartedAt": "2024-01-01T00:00:00Z"}, now) is None


def test_inspect_state_fields() -> None:
    from sampan.engine.containers import Container

    c = Container("x" * 64, "n", "i", "busybox", 0.0, {}, {}, {})
    fields = lifecycle.state_fields(c, {"Status": "restarting", "Running": False})
    assert fields == {"Running": True, "Restarting": True}
    fields = lifecycle.state_fields(c, {"Status": "running", "Running": True,
                                        "Health": {"Status": "healthy"}})  # fmt: skip
    assert fields["Health"] == {"Status": "healthy", "FailingStreak": 0, "Log": []}


def _cli_opts(**over: Any) -> dict[str, Any]:
    from sampan.cli.lifecycle import CREATE_FLAGS

    opts, _ = parse(CREATE_FLAGS, [])
    opts.update(over)
    return opts  # type: ignore[no-any-return]


def test_cli_health_flags() -> None:
    from sampan.cli.lifecycle import config_fields, host_config

    opts = _cli_opts(
        health_cmd="true",
        health_interval="1m30s",
        health_retries=2,
        stop_timeout=5,
        stop_signal="SIGINT",
    )
    out = config_fields(opts)
    assert out == {"StopSignal": "SIGINT", "StopTimeout": 5,
                   "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 90 * S,
                                   "Timeout": 0, "StartPeriod": 0, "Retries": 2}}  # fmt: skip
    assert config_fields(_cli_opts(no_healthcheck=True)) == {"Healthcheck": {"Test": ["NONE"]}}
    with pytest.raises(InvalidArgument, match="--no-healthcheck conflicts with --health-"):
        config_fields(_cli_opts(no_healthcheck=True, health_cmd="true"))
    with pytest.raises(InvalidArgument, match="--health-interval cannot be negative"):
        config_fields(_cli_opts(health_interval="-1s"))
    with pytest.raises(InvalidArgument, match='invalid argument "5" for "--health-timeout"'):
        config_fields(_cli_opts(health_timeout="5"))
    assert host_config(_cli_opts(restart="on-failure:3")) == {
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}  # fmt: skip
    with pytest.raises(InvalidArgument, match="maximum retry count must be an integer"):
        host_config(_cli_opts(restart="on-failure:x"))
    with pytest.raises(InvalidArgument, match="cannot specify both --restart and --rm"):
        host_config(_cli_opts(restart="always", rm=True))
