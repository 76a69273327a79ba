"""The container service: the verbs on containers, each a record changed under one lock.

    ROOT/containers/ID/            the bundle (container_start.py)
    EXEC_ROOT/containers/ID/       the monitor's: exit.json, monitor.log
    EXEC_ROOT/runtime/             sampan.runtime's state (the monitor creates and deletes it)

``ContainerService`` is the public face of the containers: create, start,
stop, kill, remove, wait, and the API's shapes.  Its parts live in modules
of their own, one concern each:

    container_records.py   the Container record, the SQLite table, names, signals
    container_start.py     the start path: bundle files, spec, the monitor launched
    container_exits.py     the monitors watched, exits recorded, the daemon's restore
    container_views.py     inspect, ps's entries and filters

One lock guards the in-memory records and the database; a condition on it
(``changed``) wakes ``wait``, ``logs -f`` and ``attach`` at each change.  Slow
work (the monitor's start, unmounting, removing files) runs outside the
lock, with the record marked (``starting``, ``removing``) so nothing else
acts on it.

    service = ContainerService(engine)
    cid = service.create({"Image": "busybox", "Cmd": ["true"]}, name="hi")
    service.start(cid); service.wait(service.get(cid), "not-running", 0)  # (0, "")
"""

from __future__ import annotations

import os
import sys
import threading
import time

from sampan.engine import container_exits, container_start, container_views, spec
from sampan.engine import lifecycle as _lifecycle
from sampan.engine.container_records import (
    FS_WAIT,
    Container,
    ContainerTable,
    NotModified,
    new_state,
    parse_signal,
    random_name,
)
from sampan.errors import Conflict, InvalidArgument, NotFound, SampanError, describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sampan.engine.daemon import Engine

__all__ = ["Container", "ContainerService", "NotModified", "parse_signal"]

_TRASH = ".trash-"  # a removed container's bundle, renamed away before it is deleted


class ContainerService:
    """Containers: create, start, stop, kill, remove, wait; records shaped for the API."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dir = os.path.join(engine.root, "containers")
        self.run_dir = os.path.join(engine.exec_root, "containers")
        self.runtime_root = os.path.join(engine.exec_root, "runtime")
        for path in (self.dir, self.run_dir, self.runtime_root):
            os.makedirs(path, mode=0o700, exist_ok=True)
        self._sweep_views()
        self.table = ContainerTable(engine.root)
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        self._containers = {c.id: c for c in self.table.load()}
        from sampan.engine.health import HealthMonitor
        from sampan.engine.restart import RestartManager

        self.restarts = RestartManager(self)  # restart policies (restart.py)
        self.health = HealthMonitor(self)  # health checks (health.py)

    def _sweep_views(self) -> None:
        """The empty directories a daemon killed during a cp or export of a stopped
        container left in run_dir (container_fs.private_root: their mounts lived in a
        namespace that ended with that daemon's fds); one not empty is left alone."""
        for entry in os.listdir(self.run_dir):
            if entry.startswith(".view-"):
                try:
                    os.rmdir(os.path.join(self.run_dir, entry))
                except OSError as exc:
                    sys.stderr.write(f"leftover {entry} in {self.run_dir}: {describe(exc)}\n")
        import shutil

        for entry in os.listdir(self.dir):  # bundles of removed containers (_remove_files)
            if entry.startswith(_TRASH):
                shutil.rmtree(os.path.join(self.dir, entry), ignore_errors=True)

    # -- paths ---------------------------------------------------------------------------

    def bundle(self, c: Container) -> str:
        return os.path.join(self.dir, c.id)

    def log_path(self, c: Container) -> str:
        return os.path.join(self.dir, c.id, f"{c.id}-json.log")

    def rootfs(self, c: Container) -> str:
        return os.path.join(self.dir, c.id, "rootfs")

    # -- lookup --------------------------------------------------------------------------

    def name_of(self, cid: str) -> str | None:
        """The name of container CID, without the lock (the DNS server's index reads it)."""
        c = self._containers.get(cid)
        return c.name if c is not None else None

    def get(self, ref: str) -> Container:
        """By full id, name (with or without '/') or unique id prefix; docker's 404."""
        with self._lock:
            c = self._containers.get(ref)
            if c is not None:
                return c
            name = ref.removeprefix("/")
            for c in self._containers.values():
                if c.name == name:
                    return c
            found = [c for c in self._containers.values() if ref and c.id.startswith(ref)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def all(self) -> list[Container]:
        with self._lock:
            return sorted(self._containers.values(), key=lambda c: c.created, reverse=True)

    def _save(self, c: Container) -> None:
        with self._lock:
            self.table.update(c)
            self.changed.notify_all()

    # -- create --------------------------------------------------------------------------

    def create(self, request: dict[str, Any], name: str = "") -> str:
        """A new container from REQUEST (docker's create body); its id."""
        import secrets

        from sampan.runtime import prewarm

        prewarm.start()  # a start usually follows within the grace period's window
        if not isinstance(request, dict):
            raise InvalidArgument("request body: expected a JSON object")
        image_name = request.get("Image")
        if not isinstance(image_name, str) or not image_name:
            raise InvalidArgument("Image: a container needs an image")
        host = spec.check_host_config(request.get("HostConfig"))
        name = spec.check_name(name) if name else ""
        from sampan.engine.images import resolve

        store = self.engine.store()
        record = resolve(store, image_name)
        image_config = store.config_of(record).container_config
        cid = secrets.token_hex(32)
        config = spec.merge_config(image_config, request, cid)
        if not name:
            with self._lock:
                name = random_name(c.name for c in self._containers.values())
        c = Container(cid, name, record.id, image_name, time.time(), config, host, new_state())
        from sampan.engine import mounts

        mounts.plan(self.engine, c, request, image_config)  # checked; nothing made yet
        from sampan.engine import network_attach

        endpoints = network_attach.plan(self.engine.networks, c, request)  # checked
        with self._lock:
            self.table.insert(c, self._containers.values())
            self._containers[c.id] = c
        _lifecycle.emit(self, c, "create")
        try:
            for ep in endpoints:  # after the record: a crash between, restore drops them
                self.engine.networks.save_endpoint(ep)
            mounts.create_volumes(self.engine, c)
            bundle = self.bundle(c)
            os.makedirs(os.path.join(bundle, "rootfs"), mode=0o700)
            container_start.write_bundle_files(self, c)
            store.prepare(cid, record.id)
        except BaseException:
            self._remove_files(c)
            raise
        return cid

    # -- start ---------------------------------------------------------------------------

    def start(self, ref: str, policy: object = None) -> None:
        """Start REF (POLICY: the token of a restart by its policy, restart.py)."""
        from sampan.runtime import prewarm

        prewarm.start()  # the cgroup-migration grace period runs while we mount and fork
        with self._lock:
            c = self.get(ref)
            if c.running or c.starting:
                raise NotModified(f"container {c.id} is already started")
            if c.removing:
                raise Conflict(f"container {c.id} is marked for removal and cannot be started")
            self.restarts.starting(c, policy)
            c.starting = True
            try:
                self._await_fs_idle(c, "start")  # a cp or export has its snapshot mounted
            except BaseException:
                c.starting = False
                self.changed.notify_all()
                raise
        try:
            container_start.launch(self, c)
        except BaseException as exc:
            message = describe(exc)
            code = 127 if "not found" in message else 126 if "permission denied" in message else 128
            with self._lock:
                c.state.update(Error=message, ExitCode=code)
                self.restarts.start_failed(c)
                self._save(c)
                c.starting = False
                auto = c.host_config.get("AutoRemove") and not c.removing and not c.removed
                if auto:
                    c.removing = True  # as dockerd: a --rm container that cannot start goes
            if auto:
                self._remove_files(c)
            raise
        else:
            self.health.started(c)
        finally:
            with self._lock:
                c.starting = False
                self.changed.notify_all()

    def restore(self) -> list[str]:
        """Adopt the monitors still running; record what ended while the daemon was down."""
        return container_exits.restore(self)

    # -- stop, kill, wait ----------------------------------------------------------------

    def kill(self, ref: str, signal: int = 9) -> None:
        c = self.get(ref)
        if self.restarts.killed(c, signal):
            return  # it was only waiting for a restart: now it is stopped
        if not c.running:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        self._signal(c, signal)

    def _signal(self, c: Container, signal: int) -> None:
        from sampan.runtime import lifecycle

        try:
            lifecycle.kill(self.runtime_root, c.id, signal)
            _lifecycle.emit(self, c, "kill", signal=str(signal))
        except (Conflict, NotFound):
            pass  # it exited meanwhile; its monitor reports it
        from sampan.engine.operations import after_signal

        after_signal(self, c)  # a paused container is thawed, so the signal lands

    def stop(self, ref: str, timeout: int | None = None, signal: str = "") -> None:
        c = self.get(ref)
        sig = parse_signal(signal or c.config.get("StopSignal") or "SIGTERM")
        with self._lock:
            waiting = self.restarts.stopped_by_user(c)  # no restart by its policy after this
        if not c.running and not waiting:
            raise NotModified(f"container {c.id} is already stopped")
        if timeout is None:
            timeout = int(c.config.get("StopTimeout") or 10)
        exits = c.exits
        if c.running:
            self._signal(c, sig)
        if c.running and not self._await_exit(c, exits, timeout if timeout >= 0 else 1e9):
            self._signal(c, 9)
            if not self._await_exit(c, exits, 30):
                raise SampanError(f"container {c.id}: did not stop after SIGKILL")
        _lifecycle.emit(self, c, "stop")

    def _await_exit(self, c: Container, exits: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while c.exits == exits and c.running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True

    def wait(self, c: Container, condition: str, exits: int) -> tuple[int, str]:
        """Block until CONDITION (not-running, next-exit, removed); (exit code, error)."""
        with self._lock:
            while True:
                if condition == "removed":
                    done = c.removed
                elif condition == "next-exit":
                    done = c.exits > exits or c.removed
                else:
                    done = not (c.running or c.starting or c.status == "restarting")
                if done:
                    return int(c.state.get("ExitCode", 0)), str(c.state.get("Error", ""))
                self.changed.wait()

    # -- remove --------------------------------------------------------------------------

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        with self._lock:
            c = self.get(ref)
            if c.removing:
                raise Conflict(f"removal of container {c.name} is already in progress")
            if (c.running or c.starting) and not force:
                raise Conflict(
                    f'cannot remove container "/{c.name}": container is running: stop the '
                    "container before removing or force remove"
                )
            self.restarts.removing(c, force)
            c.removing = True
            exits = c.exits
            try:
                self._await_fs_idle(c, "remove")  # a cp or export has its snapshot mounted
            except BaseException:
                c.removing = False
                self.changed.notify_all()
                raise
        try:
            if c.running:
                self._signal(c, 9)
                if not self._await_exit(c, exits, 30):
                    raise SampanError(f"container {c.id}: did not exit after SIGKILL")
        except BaseException:
            with self._lock:
                c.removing = False
            raise
        self._remove_files(c, volumes)

    def _await_fs_idle(self, c: Container, verb: str) -> None:
        """With the lock held: wait until no operation has C's stopped snapshot mounted
        (``fs_busy``, container_fs.private_root); C is already marked starting or removing,
        so no new one begins.  Conflict after FS_WAIT seconds."""
        deadline = time.monotonic() + FS_WAIT
        while c.fs_busy:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Conflict(
                    f"cannot {verb} container {c.id}: its filesystem is in use by a copy or "
                    "an export (try again when it is done)"
                )
            self.changed.wait(left)

    def _remove_files(self, c: Container, volumes: bool = True) -> None:
        """Everything of C: runtime state, rootfs mount, snapshot, directories, record;
        VOLUMES: its anonymous volumes too (rm -v, --rm, a failed create)."""
        import shutil

        from sampan.runtime import lifecycle

        try:
            lifecycle.delete(self.runtime_root, c.id, force=True)
        except (SampanError, OSError):
            pass
        store = self.engine.store()
        try:
            store.snapshots.unmount(self.rootfs(c))
        except OSError:
            pass
        # The files go once the removal is recorded and its waiters told (the snapshot
        # and the bundle are renamed away first: a daemon killed meanwhile leaves
        # ".tmp-" and ".trash-" directories that the next start removes).
        later: list[Callable[[], None]] = []
        try:
            store.release(c.id, later)
        except NotFound:
            pass
        trash = os.path.join(self.dir, f"{_TRASH}{c.id}")
        try:
            os.rename(self.bundle(c), trash)
        except FileNotFoundError:
            trash = ""
        shutil.rmtree(os.path.join(self.run_dir, c.id), ignore_errors=True)
        with self._lock:
            self.table.delete(c.id)
            self._containers.pop(c.id, None)
            c.removed = True
            c.removing = False
            self.changed.notify_all()
        self.engine.networks.forget(c.id)  # after the record: a crash between, restore drops them
        self.restarts.removed(c)
        _lifecycle.emit(self, c, "destroy")
        from sampan.engine import mounts

        mounts.release(self.engine, c, volumes)
        for delete in later:
            delete()
        if trash:
            shutil.rmtree(trash, ignore_errors=True)

    # -- API shapes (container_views.py) -------------------------------------------------

    def inspect(self, ref: str) -> dict[str, Any]:
        return container_views.inspect(self, ref)

    def summary(self, c: Container) -> dict[str, Any]:
        return container_views.summary(self, c)

    def list(
        self, show_all: bool = False, filters: dict[str, list[str]] | None = None
    ) -> list[Any]:
        return container_views.listing(self, show_all, filters)
