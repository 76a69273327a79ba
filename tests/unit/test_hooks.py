"""runtime.hooks.run_hooks with tiny real scripts: stdin, args, env, failures, timeouts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from sampan.runtime.hooks import HookFailed, run_hooks

STATE = {"ociVersion": "1.0.2", "id": "box", "pid": 42, "status": "created", "bundle": "/b"}
PATH = "PATH=/usr/local/bin:/usr/bin:/bin"


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_no_hooks_is_a_no_op() -> None:
    run_hooks("prestart", [], STATE)


def test_state_arrives_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "stdin"
    hook = script(tmp_path, "hook", f'cat > "{out}"')
    run_hooks("createRuntime", [{"path": hook, "env": [PATH]}], STATE)
    assert json.loads(out.read_text()) == STATE


def test_large_state_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "stdin"
    hook = script(tmp_path, "hook", f'cat > "{out}"')
    state = {**STATE, "annotations": {f"k{i}": "v" * 100 for i in range(2000)}}
    run_hooks("poststart", [{"path": hook, "env": [PATH]}], state)
    assert json.loads(out.read_text()) == state


def test_hook_need_not_read_stdin(tmp_path: Path) -> None:
    hook = script(tmp_path, "hook", "exit 0")
    state = {**STATE, "annotations": {f"k{i}": "v" * 100 for i in range(2000)}}
    run_hooks("prestart", [{"path": hook}], state)


def test_args_are_passed(tmp_path: Path) -> None:
    out = tmp_path / "args"
    hook = script(tmp_path, "hook", f'for a in "$@"; do echo "$a"; done > "{out}"')
    run_hooks("prestart", [{"path": hook, "args": ["hook-name", "one", "two words"]}], STATE)
    assert out.read_text().splitlines() == ["one", "two words"]


def test_args_default_to_the_path(tmp_path: Path) -> None:
    out = tmp_path / "args"
    hook = script(tmp_path, "hook", f'echo "$#" > "{out}"')
    run_hooks("prestart", [{"path": hook}], STATE)
    assert out.read_text() == "0\n"


def test_env_is_exactly_what_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPAN_LEAK", "leaked")
    out = tmp_path / "env"
    hook = script(tmp_path, "hook", f'echo "$GREETING|$EQ|${{SAMPAN_LEAK-unset}}" > "{out}"')
    run_hooks("prestart", [{"path": hook, "env": ["GREETING=hello", "EQ=a=b"]}], STATE)
    assert out.read_text() == "hello|a=b|unset\n"


def test_hooks_run_in_order(tmp_path: Path) -> None:
    log = tmp_path / "log"
    hooks: list[dict[str, Any]] = [
        {"path": script(tmp_path, f"h{i}", f'echo {i} >> "{log}"')} for i in range(3)
    ]
    run_hooks("poststop", hooks, STATE)
    assert log.read_text() == "0\n1\n2\n"


def test_non_zero_exit(tmp_path: Path) -> None:
    hook = script(tmp_path, "hook", "exit 3")
    with pytest.raises(HookFailed) as info:
        run_hooks("prestart", [{"path": hook}], STATE)
    assert str(info.value) == f"hook prestart[0] {hook} failed with exit status 3"


def test_failure_stops_the_rest(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    ok = script(tmp_path, "ok", "exit 0")
    bad = script(tmp_path, "bad", "exit 1")
    never = script(tmp_path, "never", f'touch "{marker}"')
    with pytest.raises(HookFailed, match=r"hook createContainer\[1\] .* exit status 1"):
        run_hooks("createContainer", [{"path": ok}, {"path": bad}, {"path": never}], STATE)
    assert not marker.exists()


def test_killed_by_a_signal(tmp_path: Path) -> None:
    hook = script(tmp_path, "hook", "kill -9 $$")
    with pytest.raises(HookFailed, match=r"failed with signal 9$"):
        run_hooks("prestart", [{"path": hook}], STATE)


def test_missing_executable(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(HookFailed, match=r"failed with exit status 127$"):
        run_hooks("prestart", [{"path": str(tmp_path / "nope")}], STATE)
    assert "No such file or directory" in capfd.readouterr().err


def test_timeout(tmp_path: Path) -> None:
    hook = script(tmp_path, "hook", "exec sleep 30")
    began = time.monotonic()
    with pytest.raises(HookFailed) as info:
        run_hooks("prestart", [{"path": hook, "env": [PATH], "timeout": 0.2}], STATE)
    assert time.monotonic() - began < 5
    assert str(info.value) == f"hook prestart[0] {hook} timed out after 0.2s"


def test_finishing_within_the_timeout(tmp_path: Path) -> None:
    hook = script(tmp_path, "hook", "exit 0")
    run_hooks("prestart", [{"path": hook, "timeout": 5}], STATE)


def test_failure_within_the_timeout(tmp_path: Path) -> None:
    hook = script(tmp_path, "hook", "exit 2")
    with pytest.raises(HookFailed, match=r"exit status 2$"):
        run_hooks("prestart", [{"path": hook, "timeout": 5}], STATE)
