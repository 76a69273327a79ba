"""A container's end: its monitor watched, its exit recorded, and the daemon's restore.

A monitor is a process in a session of its own, not tied to the daemon.
The daemon watches its pidfd from a thread; when the monitor exits, the
thread reads exit.json (EXEC_ROOT/containers/ID/), unmounts the rootfs,
tears down the volumes and records the exit (health, ``die``, the restart
policy, --rm).  When the daemon starts it re-reads every record: a monitor
still alive is adopted (watched again), one that ended while the daemon
was down has left its exit.json -- the real exit code.

Separate from the service (containers.py) and the start path
(container_start.py) because this is the other half of a monitor's life,
run from watcher threads and from the daemon's start, never from a verb.

    watch(service, c, proc)      # after a start: a thread waits for the monitor
    restore(service)             # the daemon's start: the ids adopted
"""

from __future__ import annotations

import os
import sys
import threading

from sampan import _json
from sampan.engine import lifecycle as _lifecycle
from sampan.engine.container_records import read_text
from sampan.errors import SampanError, describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import Any

    from sampan.engine.container_records import Container
    from sampan.engine.containers import ContainerService

__all__ = ["exited", "restore", "wait_pid", "watch"]


def watch(service: ContainerService, c: Container, proc: subprocess.Popen[bytes] | None) -> None:
    """A thread that records C's exit when its monitor (PROC, or the recorded pid) ends."""
    thread = threading.Thread(
        target=_watcher, args=(service, c, proc), name=f"watch-{c.id[:12]}", daemon=True
    )
    thread.start()


def _watcher(service: ContainerService, c: Container, proc: subprocess.Popen[bytes] | None) -> None:
    try:
        if proc is not None:
            proc.wait()
        else:
            wait_pid(c.state["MonitorPid"], c.state["MonitorStart"])
        exited(service, c)
    except Exception as exc:
        sys.stderr.write(f"container {c.id}: watching its monitor: {describe(exc)}\n")
    finally:
        service.engine.release_thread()


def exited(service: ContainerService, c: Container) -> None:
    """The monitor is gone: record the exit, unmount, and remove if --rm."""
    from sampan.engine import mounts
    from sampan.runtime.state import rfc3339_now

    doc: dict[str, Any] = {}
    try:
        doc = _json.loads(read_text(os.path.join(service.run_dir, c.id, "exit.json")) or "{}")
    except ValueError:
        pass
    error = ""
    if "ExitCode" not in doc:
        error = "the container's monitor exited without recording an exit status"
        from sampan.runtime import lifecycle

        try:
            lifecycle.delete(service.runtime_root, c.id, force=True)
        except (SampanError, OSError):
            pass
    try:
        service.engine.store().snapshots.unmount(service.rootfs(c))
    except OSError as exc:
        error = error or f"unmounting the rootfs: {describe(exc)}"
    mounts.teardown(service.engine, c)  # volume devices no running container uses: unmounted
    try:
        from sampan.engine import network_attach

        network_attach.detach(service.engine.networks, c)  # veths, namespace, ports, addresses
    except (OSError, SampanError) as exc:
        error = error or f"releasing its network: {describe(exc)}"
    with service.changed:
        c.state.update(Status="exited", Running=False, Pid=0, MonitorPid=0, MonitorStart=0,
                       ExitCode=int(doc.get("ExitCode", 255)), Error=error,
                       FinishedAt=doc.get("FinishedAt") or rfc3339_now())  # fmt: skip
        c.exits += 1
        again = _lifecycle.exited(service, c)  # health, die, the restart policy
        service._save(c)
        auto = c.host_config.get("AutoRemove") and not (c.removing or c.removed or again)
        if auto:
            c.removing = True
    if auto:
        service._remove_files(c)


def restore(service: ContainerService) -> list[str]:
    """Adopt the monitors still running; record what ended while the daemon was down."""
    from sampan.runtime.state import proc_start_time

    adopted = []
    for c in service.all():
        pid, started = c.state.get("MonitorPid", 0), c.state.get("MonitorStart", 0)
        if not pid:
            if c.running:
                exited(service, c)
            else:
                _leftovers(service, c)  # a daemon killed during its start
            with service.changed:
                service.restarts.restore(c)  # it exited while the daemon was down
            continue
        if proc_start_time(pid) == started:
            if not c.running:  # the daemon died between the monitor's start and its report
                runtime = read_text(os.path.join(service.runtime_root, c.id, "state.json"))
                init = _json.loads(runtime).get("pid", 0) if runtime else 0
                with service.changed:
                    c.state.update(Status="running", Running=True, Pid=init)
                    service._save(c)
            watch(service, c, None)
            service.health.started(c, adopted=True)
            adopted.append(c.id)
        else:
            exited(service, c)
    return adopted


def _leftovers(service: ContainerService, c: Container) -> None:
    """What a start cut short by the daemon's death left of a container that does not run:
    its rootfs mount and the runtime's state (a monitor that could not report has gone)."""
    if os.path.exists(os.path.join(service.runtime_root, c.id)):
        from sampan.runtime import lifecycle

        try:
            lifecycle.delete(service.runtime_root, c.id, force=True)
        except (SampanError, OSError) as exc:
            sys.stderr.write(f"container {c.id}: runtime state left by a start: {describe(exc)}\n")
    try:
        service.engine.store().snapshots.unmount(service.rootfs(c))
    except OSError as exc:
        sys.stderr.write(f"container {c.id}: unmounting its rootfs: {describe(exc)}\n")


def wait_pid(pid: int, start_time: int) -> None:
    """Block until process PID (started at START_TIME, not necessarily our child) is gone."""
    import select

    from sampan.linux.syscalls import pidfd_open
    from sampan.runtime.state import proc_start_time

    try:
        fd = pidfd_open(pid)
    except OSError:
        return
    try:
        if proc_start_time(pid) != start_time:
            return  # the pid now names another process
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll()
    finally:
        os.close(fd)
