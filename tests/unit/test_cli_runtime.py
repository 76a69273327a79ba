"""cli.runtime.main() in-process: exit codes, stdout and the one-line errors on stderr.

Errors are written with os.write(2, ...), so these tests capture at the fd
level (capfd), which also sees what sys.stdout gets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan import __version__
from sampan.cli.runtime import COMMANDS, main
from sampan.oci.runtime_config import OCI_VERSION, load_config
from sampan.runtime import log
from sampan.runtime.state import ContainerState, proc_start_time


@pytest.fixture(autouse=True)
def _reset_log() -> Iterator[None]:
    yield
    log.configure(None, "text")
    log._debug = False


def run(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def test_version(capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capfd, "--version")
    assert code == 0
    assert out == f"sampan-runtime version {__version__}\nspec: {OCI_VERSION}\n"
    assert err == ""
    assert run(capfd, "-v")[:2] == (0, out)


def test_help(capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capfd, "--help")
    assert code == 0
    assert out.startswith("usage: sampan-runtime ")
    for name in COMMANDS:
        assert f"   {name}" in out
    assert "--root" in out
    assert err == ""
    assert run(capfd, "-h")[0] == 0


def test_no_command_prints_help_and_fails(capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capfd)
    assert code == 1
    assert out.startswith("usage: sampan-runtime ")


def test_unknown_command(capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capfd, "frobnicate")
    assert code == 1
    assert out == ""
    assert err == "sampan-runtime: no such command: frobnicate\n"


def test_unknown_global_flag(capfd: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capfd, "--bogus", "list")
    assert code == 1
    assert err == "sampan-runtime: flag provided but not defined: --bogus\n"


def test_unknown_command_flag(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capfd, "--root", str(tmp_path), "state", "--bogus", "x")
    assert code == 1
    assert "flag provided but not defined: --bogus" in err


def test_systemd_cgroup_is_refused(capfd: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capfd, "--systemd-cgroup", "list")
    assert code == 1
    assert "--systemd-cgroup is not supported" in err


def test_command_help(capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capfd, "state", "--help")
    assert code == 0
    assert out == f"sampan-runtime state: {COMMANDS['state'][1]}\n"


@pytest.mark.parametrize("command", ["state", "start", "delete", "pause", "resume", "create"])
def test_command_without_id(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    code, out, err = run(capfd, "--root", str(tmp_path), command)
    assert code == 1
    assert out == ""
    assert err == f'sampan-runtime: "{command}" requires exactly 1 argument (the container id)\n'


def test_state_with_two_ids(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capfd, "--root", str(tmp_path), "state", "a", "b")
    assert code == 1
    assert "requires exactly 1 argument" in err


@pytest.mark.parametrize("command", ["ps", "exec"])
def test_commands_that_need_an_id(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    code, _, err = run(capfd, "--root", str(tmp_path), command)
    assert code == 1
    assert f'"{command}" requires the container id' in err


def test_kill_usage(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capfd, "--root", str(tmp_path), "kill")
    assert code == 1
    assert '"kill" requires the container id' in err


def test_kill_bad_signal(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capfd, "--root", str(tmp_path), "kill", "x", "SIGBOGUS")
    assert code == 1
    assert err == "sampan-runtime: unknown signal 'SIGBOGUS'\n"


def test_spec_writes_a_valid_config(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capfd, "spec", "--bundle", str(tmp_path))
    assert (code, out, err) == (0, "", "")
    text = (tmp_path / "config.json").read_text()
    assert text.endswith("}\n")
    config = load_config(str(tmp_path))
    assert config == json.loads(text)
    assert config["process"]["args"] == ["sh"]
    assert "user" not in [ns["type"] for ns in config["linux"]["namespaces"]]


def test_spec_rootless(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capfd, "spec", "--rootless", "-b", str(tmp_path))[0] == 0
    config = load_config(str(tmp_path))
    assert "user" in [ns["type"] for ns in config["linux"]["namespaces"]]


def test_spec_refuses_to_overwrite(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("mine")
    code, _, err = run(capfd, "spec", "--bundle", str(tmp_path))
    assert code == 1
    assert err == f"sampan-runtime: file {tmp_path}/config.json exists: remove it first\n"
    assert (tmp_path / "config.json").read_text() == "mine"


def test_spec_in_current_directory(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(capfd, "spec")[0] == 0
    load_config(str(tmp_path))


def test_spec_into_a_missing_directory(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capfd, "spec", "--bundle", str(tmp_path / "nope"))
    assert code == 1
    assert err.startswith("sampan-runtime: ")
    assert "No such file or directory" in err


def test_state_of_unknown_id(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capfd, "--root", str(tmp_path), "state", "ghost")
    assert code == 1
    assert out == ""
    assert err == "sampan-runtime: container 'ghost' does not exist\n"


def test_state_of_invalid_id(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capfd, "--root", str(tmp_path), "state", "../etc")
    assert code == 1
    assert "invalid container id '../etc'" in err


@pytest.mark.parametrize("command", ["start", "delete", "kill", "pause", "resume", "ps"])
def test_verbs_on_unknown_id(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    code, _, err = run(capfd, "--root", str(tmp_path), command, "ghost")
    assert code == 1
    assert err == "sampan-runtime: container 'ghost' does not exist\n"


def test_delete_force_of_unknown_id_succeeds(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(capfd, "--root", str(tmp_path), "delete", "-f", "ghost") == (0, "", "")


def _save_created(root: Path, cid: str) -> ContainerState:
    ContainerState.reserve(str(root), cid)
    pid = os.getpid()
    start_time = proc_start_time(pid)
    assert start_time is not None
    state = ContainerState(
        str(root),
        cid,
        {"pid": pid, "start_time": start_time, "bundle": "/b", "created": "2024-01-01T00:00:00Z"},
    )
    state.save()
    return state


def test_state_of_created_container(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _save_created(tmp_path, "box")
    code, out, err = run(capfd, "--root", str(tmp_path), "state", "box")
    assert (code, err) == (0, "")
    state = json.loads(out)
    assert state["id"] == "box"
    assert state["status"] == "created"
    assert state["pid"] == os.getpid()
    assert state["bundle"] == "/b"


def test_list_on_empty_root(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capfd, "--root", str(tmp_path), "list")
    assert (code, err) == (0, "")
    assert out.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert out.count("\n") == 1


def test_list_on_missing_root(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capfd, "--root", str(tmp_path / "none"), "list")
    assert code == 0
    assert out.count("\n") == 1


def test_list_quiet_and_json_on_empty_root(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(capfd, "--root", str(tmp_path), "list", "-q") == (0, "", "")
    assert run(capfd, "--root", str(tmp_path), "list", "--format", "json") == (0, "[]\n", "")


def test_list_bad_format(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capfd, "--root", str(tmp_path), "list", "-f", "yaml")
    assert code == 1
    assert "--format 'yaml': want table or json" in err


def test_list_with_a_container(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _save_created(tmp_path, "box")
    code, out, _ = run(capfd, "--root", str(tmp_path), "list")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[1].split() == [
        "box",
        str(os.getpid()),
        "created",
        "/b",
        "2024-01-01T00:00:00Z",
        "root",
    ]


def test_features(capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capfd, "features")
    assert code == 0
    features = json.loads(out)
    assert features["ociVersionMax"] == OCI_VERSION
    assert "prestart" in features["hooks"]


def test_errors_go_to_the_log_file(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    logfile = tmp_path / "log.json"
    code, _, err = run(capfd, "--log", str(logfile), "--log-format", "json", "frobnicate")
    assert code == 1
    assert err == "sampan-runtime: no such command: frobnicate\n"
    entry = json.loads(logfile.read_text())
    assert entry["level"] == "error"
    assert entry["msg"] == "no such command: frobnicate"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rootless", "true", "list"], "rootless mode is not supported yet"),
        (["--rootless", "maybe", "list"], "--rootless 'maybe': want true, false or auto"),
        (["--criu", "/usr/sbin/criu", "list"], "--criu: checkpoint and restore are not supported"),
        (["--systemd-cgroup", "list"], "--systemd-cgroup is not supported"),
    ],
)
def test_unsupported_global_flags_fail_loudly(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    code, out, err = run(capfd, "--root", str(tmp_path), *argv)
    assert code == 1
    assert out == ""
    assert message in err


def test_debug_logs_the_command(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _out, err = run(capfd, "--debug", "--root", str(tmp_path), "list")
    assert code == 0
    assert f"debug: list  (root {tmp_path})" in err
