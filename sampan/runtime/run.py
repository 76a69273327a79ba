"""``run``: create, start, wait in the foreground, delete -- one process, as runc does.

The runtime becomes a child subreaper before it forks, so the container's
init (a grandchild) is re-parented to it and can be waited for.  Signals
the runtime receives are forwarded to init; the exit status is init's own,
or 128+N when a signal N killed it.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal without its enum (~8 ms)
import os

from sampan.linux.syscalls import set_child_subreaper
from sampan.runtime import lifecycle

FORWARDED = (1, 2, 3, 10, 12, 15, 28)  # HUP INT QUIT USR1 USR2 TERM WINCH


def run(
    root: str,
    cid: str,
    bundle: str,
    opts: lifecycle.CreateOptions,
    detach: bool = False,
    keep: bool = False,
) -> int:
    if detach:
        lifecycle.start_state(lifecycle.create(root, cid, bundle, opts).state)
        return 0
    set_child_subreaper(True)
    created = lifecycle.create(root, cid, bundle, opts, keep_console=not opts.console_socket)
    pid = created.state.pid
    forward_to(pid, FORWARDED)
    try:
        lifecycle.start_state(created.state)
        if created.console_fd is not None:
            from sampan.runtime.console import relay

            relay(created.console_fd)
            os.close(created.console_fd)
        status = _wait(pid)
    finally:
        if not keep:
            lifecycle.delete_state(created.state, force=True)
    return status


def forward_to(pid: int, signals: tuple[int, ...]) -> None:
    """Relay each of SIGNALS that this process receives to PID."""

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in signals:
        _signal.signal(signum, forward)


def _wait(pid: int) -> int:
    """Reap children until PID exits; its exit code, or 128+signal."""
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if done == pid:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code
