"""Restart policies: HostConfig.RestartPolicy checked, and containers restarted after they exit.

Policies are docker's: ``no``; ``on-failure[:N]`` (a non-zero exit, at most N
restarts when N > 0); ``always``; ``unless-stopped``.  After an exit that
the policy restarts, the container is ``restarting`` (docker shows it as
running and restarting) for a backoff -- 100 ms, doubled at each restart,
at most one minute, back to 100 ms once a run lasted 10 s -- and then
started again with ``RestartCount`` one higher.  A ``stop`` or ``kill`` by
the user marks the container *manually stopped* (persisted in its state, so
a restarted daemon knows it): no more restarts until it is started again.
``start`` by the user clears the mark, the count and the backoff.

When the daemon starts, containers that are not running and that the
policy restarts (``always``, ``unless-stopped`` unless manually stopped,
``on-failure`` after a failure within the count) are started again: the
daemon was down when they exited, or the machine rebooted.  A container
still ``restarting`` in its record (the daemon died during a backoff) is
started too.

One pending restart per container, one start at a time: a restart goes
through ``ContainerService.start``, which refuses a container that is
running or starting, so a pending restart and a user's start (or the
restore pass) never make two monitors for one container.  Every pending
restart carries a token; cancelling (stop, kill, rm, start) drops it and
the timer, when it fires, finds its token gone and does nothing.

    manager = RestartManager(service)
    manager.exited(c, ran_for=0.2)     # under the service's lock: restart pending?
    manager.cancel(c)                  # the user stopped it
"""

from __future__ import annotations

import sys
import threading

from sampan.errors import Conflict, InvalidArgument, NotFound, describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.engine.containers import Container, ContainerService

__all__ = ["INITIAL_DELAY", "MAX_DELAY", "RESET_AFTER", "RestartManager", "check_policy",
           "next_delay", "should_restart"]  # fmt: skip

POLICIES = ("no", "always", "on-failure", "unless-stopped")
INITIAL_DELAY = 0.1  # seconds before the first restart
MAX_DELAY = 60.0
RESET_AFTER = 10.0  # a run at least this long resets the backoff


def check_policy(policy: object) -> dict[str, Any]:
    """HostConfig.RestartPolicy checked with docker's messages; {"Name", "MaximumRetryCount"}."""
    if policy is None:
        policy = {}
    if not isinstance(policy, dict):
        raise InvalidArgument("HostConfig.RestartPolicy: expected an object")
    for key in policy:
        if key not in ("Name", "MaximumRetryCount"):
            raise InvalidArgument(f"HostConfig.RestartPolicy: unknown field {key!r}")
    name = policy.get("Name") or ""
    count = policy.get("MaximumRetryCount") or 0
    if not isinstance(name, str):
        raise InvalidArgument("HostConfig.RestartPolicy.Name: expected a string")
    if isinstance(count, bool) or not isinstance(count, int):
        raise InvalidArgument("HostConfig.RestartPolicy.MaximumRetryCount: expected an integer")
    if name in ("", "no", "always", "unless-stopped"):
        if count != 0:
            message = "maximum retry count can only be used with 'on-failure'"
            tail = " and cannot be negative" if count < 0 else ""
            raise InvalidArgument(f"invalid restart policy: {message}{tail}")
        return {"Name": name or "no", "MaximumRetryCount": 0}
    if name == "on-failure":
        if count < 0:
            raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
        return {"Name": name, "MaximumRetryCount": count}
    raise InvalidArgument(
        f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
        "'on-failure', or 'unless-stopped'"
    )


def check_auto_remove(host: dict[str, Any]) -> None:
    """--rm and a restart policy together are refused, as dockerd refuses them."""
    if host.get("AutoRemove") and (host.get("RestartPolicy") or {}).get("Name", "no") != "no":
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")


def should_restart(
    policy: dict[str, Any], exit_code: int, restart_count: int, manually_stopped: bool
) -> bool:
    """Whether POLICY restarts a container that exited with EXIT_CODE."""
    name = policy.get("Name", "no")
    if manually_stopped:
        return False
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        limit = int(policy.get("MaximumRetryCount") or 0)
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


def next_delay(previous: float, ran_for: float) -> float:
    """The backoff before the next restart, after one of PREVIOUS (0: none yet) and a run
    of RAN_FOR seconds: 100 ms, doubled each time, at most a minute, reset by a 10 s run."""
    if ran_for >= RESET_AFTER or previous <= 0:
        return INITIAL_DELAY
    return min(previous * 2, MAX_DELAY)


class _Pending:
    __slots__ = ("timer",)

    def __init__(self) -> None:
        self.timer: threading.Timer | None = None


class RestartManager:
    """The restarts of one ContainerService's containers (state under the service's lock)."""

    def __init__(self, service: ContainerService) -> None:
        self.service = service
        self._delay: dict[str, float] = {}  # the last backoff of each container
        self._pending: dict[str, _Pending] = {}

    # -- hooks of ContainerService (each called with the service's lock held) -------------

    def exited(self, c: Container, ran_for: float) -> bool:
        """C's exit was just recorded: schedule a restart if its policy says so (Status
        ``restarting``).  True when the exit is not final (auto-removal waits)."""
        if c.state.pop("ManualRestart", False):
            return True  # ``restart`` is stopping it: the restart starts it again
        state = c.state
        if c.removing or c.removed or not should_restart(
            c.host_config.get("RestartPolicy") or {}, int(state.get("ExitCode", 0)),
            int(state.get("RestartCount", 0)), bool(state.get("ManuallyStopped")),
        ):  # fmt: skip
            return False
        delay = next_delay(self._delay.get(c.id, 0.0), ran_for)
        self._delay[c.id] = delay
        state["RestartCount"] = int(state.get("RestartCount", 0)) + 1
        self._schedule(c, delay)
        return True

    def starting(self, c: Container, policy: object = None) -> None:
        """C is about to be started: by the user (POLICY None), which resets the policy's
        bookkeeping, or by the restart whose token POLICY is -- refused with Conflict when
        that restart was cancelled meanwhile (the user stopped the container)."""
        if policy is not None and self._pending.get(c.id) is not policy:
            raise Conflict(f"container {c.id}: its restart was cancelled")
        self._drop(c)
        c.state.pop("ManualRestart", None)
        if policy is None:
            c.state["ManuallyStopped"] = False
            c.state["RestartCount"] = 0
            self._delay.pop(c.id, None)

    def start_failed(self, c: Container) -> None:
        """A start failed: a container waiting for its restart is stopped for good."""
        if c.state.get("Status") == "restarting":
            c.state["Status"] = "exited"

    def stopped_by_user(self, c: Container) -> bool:
        """``stop``/``kill``/``rm -f``: no more restarts.  True when C was only waiting for a
        restart (nothing left to signal: it is now exited)."""
        c.state["ManuallyStopped"] = True
        if not self._cancel(c):
            self.service._save(c)  # a daemon killed before the exit still knows
            return False
        return True

    def killed(self, c: Container, signal: int) -> bool:
        """``kill``: SIGKILL, the container's stop signal, or any signal when it has none, ends
        its restarts (docker's rule).  True when C was only waiting for a restart."""
        from sampan.engine.containers import parse_signal

        with self.service.changed:
            stop_signal = c.config.get("StopSignal") or ""
            if not stop_signal or signal == 9 or parse_signal(stop_signal) == signal:
                return self.stopped_by_user(c)
            return False

    def removing(self, c: Container, force: bool) -> None:
        """``rm``: a container waiting for a restart goes only with force."""
        if c.state.get("Status") != "restarting":
            return
        if not force:
            raise Conflict(
                f"You cannot remove a restarting container {c.id}. Stop the container before "
                "attempting removal or force remove"
            )
        self._drop(c)

    def restarting_by_user(self, c: Container) -> None:
        """``restart`` stops C: its exit is not the policy's to act on."""
        c.state["ManualRestart"] = True
        self._cancel(c)

    def removed(self, c: Container) -> None:
        self._drop(c)
        self._delay.pop(c.id, None)

    def restore(self, c: Container) -> None:
        """At daemon start, C is not running and has no monitor: start it again if it was
        waiting for a restart or its policy restarts it (it exited while the daemon was down)."""
        state = c.state
        if state.get("Status") == "restarting":
            self._schedule(c, 0.0)
            return
        if state.get("Status") != "exited" or state.get("StartedAt", "").startswith("0001-"):
            return  # never started: a restart policy applies to containers that ran
        policy = c.host_config.get("RestartPolicy") or {}
        manually = bool(state.get("ManuallyStopped")) and policy.get("Name") != "always"
        if should_restart(policy, int(state.get("ExitCode", 0)),
                          int(state.get("RestartCount", 0)), manually):  # fmt: skip
            self._schedule(c, 0.0)

    # -- the timer ------------------------------------------------------------------------

    def _schedule(self, c: Container, delay: float) -> None:
        self._drop(c)
        c.state["Status"] = "restarting"
        pending = _Pending()
        timer = threading.Timer(delay, self._fire, args=(c, pending))
        timer.name = f"restart-{c.id[:12]}"
        timer.daemon = True
        pending.timer = timer
        self._pending[c.id] = pending
        self.service._save(c)
        timer.start()

    def _cancel(self, c: Container) -> bool:
        was = self._drop(c)
        if was or c.state.get("Status") == "restarting":
            c.state["Status"] = "exited"
            self.service._save(c)
            return True
        return False

    def _drop(self, c: Container) -> bool:
        pending = self._pending.pop(c.id, None)
        if pending is None:
            return False
        if pending.timer is not None:
            pending.timer.cancel()
        return True

    def _fire(self, c: Container, pending: _Pending) -> None:
        service = self.service
        with service.changed:
            if self._pending.get(c.id) is not pending or c.removing or c.removed:
                return
        from sampan.engine.containers import NotModified

        try:
            service.start(c.id, policy=pending)
        except (NotModified, Conflict, NotFound):
            pass  # started by someone else meanwhile, or the restart was cancelled
        except Exception as exc:  # a thread of its own: never die silently
            sys.stderr.write(f"container {c.id}: restarting it: {describe(exc)}\n")
        finally:
            service.engine.release_thread()
