"""OCI hooks: run each with the container state on its stdin.

A hook is ``{"path", "args", "env", "timeout"}``.  It runs with fork and
execve (no ``subprocess``: it also runs inside the container's namespaces,
after pivot_root, where importing a module is no longer possible).
"""

from __future__ import annotations

import os
import time

from sampan import _json
from sampan.errors import SampanError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class HookFailed(SampanError):
    """A hook exited non-zero, was killed, or overran its timeout."""


def run_hooks(kind: str, hooks: list[dict[str, Any]], state: dict[str, Any]) -> None:
    """Run HOOKS in order; raise HookFailed at the first that fails."""
    if not hooks:
        return
    payload = _json.dumps(state).encode()
    for i, hook in enumerate(hooks):
        _run_one(f"{kind}[{i}] {hook['path']}", hook, payload)


def run_all_hooks(kind: str, hooks: list[dict[str, Any]], state: dict[str, Any]) -> list[str]:
    """Run every hook, whatever the others do; return the failures (poststart, poststop)."""
    payload = _json.dumps(state).encode()
    failures = []
    for i, hook in enumerate(hooks):
        try:
            _run_one(f"{kind}[{i}] {hook['path']}", hook, payload)
        except HookFailed as exc:
            failures.append(str(exc))
    return failures


def _run_one(name: str, hook: dict[str, Any], payload: bytes) -> None:
    args = hook.get("args") or [hook["path"]]
    env = dict(item.partition("=")[::2] for item in hook.get("env", []))
    r_in, w_in = os.pipe()
    pid = os.fork()
    if pid == 0:  # the hook; its stdout and stderr are ours
        try:
            from sampan.linux.syscalls import cloexec_from
            from sampan.runtime.process import restore_signals

            restore_signals()
            os.dup2(r_in, 0)
            cloexec_from(3)  # a hook gets stdio only, as with runc
            os.close(r_in)
            os.close(w_in)
            os.execve(hook["path"], args, env)
        except BaseException as exc:
            os.write(2, f"{exc}\n".encode())
        os._exit(127)
    os.close(r_in)
    try:
        write_all(w_in, payload)
    except BrokenPipeError:
        pass  # a hook need not read its stdin
    finally:
        os.close(w_in)
    deadline = time.monotonic() + hook["timeout"] if "timeout" in hook else None
    status = _wait(pid, deadline)
    if status is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise HookFailed(f"hook {name} timed out after {hook['timeout']}s")
    if status != 0:
        code = os.waitstatus_to_exitcode(status)
        why = f"exit status {code}" if code >= 0 else f"signal {-code}"
        raise HookFailed(f"hook {name} failed with {why}")


def _wait(pid: int, deadline: float | None) -> int | None:
    if deadline is None:
        return os.waitpid(pid, 0)[1]
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def write_all(fd: int, data: bytes) -> None:
    """os.write until all of DATA is written (pipes and ptys take it in pieces)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
