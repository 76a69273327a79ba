"""The container service: records in ROOT/engine.db, lifecycles through per-container monitors.

    ROOT/engine.db                 containers(id, name UNIQUE, image, image_name, created,
                                   config, host_config, state): JSON columns, one
                                   transaction per change (a crash never half-writes)
    ROOT/containers/ID/            the bundle: config.json, rootfs/ (the snapshot mounted
                                   at start), hostname, hosts, resolv.conf, ID-json.log
    EXEC_ROOT/containers/ID/       the monitor's: exit.json, monitor.log
    EXEC_ROOT/runtime/             sampan.runtime's state (the monitor creates and deletes it)

A container runs under a monitor (sampan/engine/monitor.py), a process in a
session of its own that is not tied to the daemon.  The daemon watches the
monitor's pidfd from a thread; when the monitor exits it reads exit.json,
unmounts the rootfs and records the exit.  On start the service re-reads
every record: a monitor still alive is adopted, one that ended while the
daemon was down has left its exit.json -- the real exit code.

One lock guards the in-memory records and the database; a condition on it
wakes ``wait``, ``logs -f`` and ``attach`` at each change.  Slow work (the
monitor's start, unmounting, removing files) runs outside the lock, with
the record marked (``starting``, ``removing``) so nothing else acts on it.

    service = ContainerService(engine)
    cid = service.create({"Image": "busybox", "Cmd": ["true"]}, name="hi")
    service.start(cid); service.wait(cid, "not-running")  # (0, "")
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time

from sampan import _json
from sampan.engine import lifecycle as _lifecycle
from sampan.engine import spec
from sampan.errors import Conflict, InvalidArgument, NotFound, SampanError, describe
from sampan.units import human_duration, parse_rfc3339, rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.engine.daemon import Engine

__all__ = ["Container", "ContainerService", "NotModified", "parse_signal"]

ZERO_TIME = "0001-01-01T00:00:00Z"
MONITOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "monitor.py")
START_TIMEOUT = 60.0
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, image TEXT NOT NULL,
    image_name TEXT NOT NULL, created REAL NOT NULL, config TEXT NOT NULL,
    host_config TEXT NOT NULL, state TEXT NOT NULL)
"""
_LEFT = ("admiring", "brave", "clever", "dreamy", "eager", "festive", "gallant", "jolly")
_RIGHT = ("babbage", "curie", "darwin", "euler", "fermi", "hopper", "kepler", "turing")
_SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
    "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
    "PWR": 30, "SYS": 31,
}  # fmt: skip


class NotModified(SampanError):
    """The container is already in the state asked for (HTTP 304)."""


def parse_signal(text: str) -> int:
    """docker's signal: "SIGKILL", "KILL", "kill" or "9"."""
    if text.isdigit() and 0 < int(text) < 65:
        return int(text)
    name = text.upper().removeprefix("SIG")
    if name in _SIGNALS:
        return _SIGNALS[name]
    raise InvalidArgument(f"invalid signal: {text}")


def _epoch(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time (0 for docker's zero time)."""
    if not stamp or stamp.startswith("0001-"):
        return 0.0
    return parse_rfc3339(stamp)


class Container:
    """One container's record (mutated only under the service's lock)."""

    def __init__(
        self,
        cid: str,
        name: str,
        image: str,
        image_name: str,
        created: float,
        config: dict[str, Any],
        host_config: dict[str, Any],
        state: dict[str, Any],
    ) -> None:
        self.id = cid
        self.name = name
        self.image = image
        self.image_name = image_name
        self.created = created
        self.config = config
        self.host_config = host_config
        self.state = state
        self.starting = False
        self.removing = False
        self.removed = False
        self.exits = 0  # exits seen since the daemon started (wait next-exit, attach)

    @property
    def status(self) -> str:
        status: str = self.state.get("Status", "created")
        return "removing" if self.removing else status

    @property
    def running(self) -> bool:
        return bool(self.state.get("Running"))

    def row(self) -> tuple[Any, ...]:
        return (self.id, self.name, self.image, self.image_name, self.created,
                _json.dumps(self.config), _json.dumps(self.host_config),
                _json.dumps(self.state))  # fmt: skip


def _new_state() -> dict[str, Any]:
    return {"Status": "created", "Running": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME, "MonitorPid": 0,
            "MonitorStart": 0}  # fmt: skip


class ContainerService:
    """Containers: create, start, stop, kill, remove, wait; records shaped for the API."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dir = os.path.join(engine.root, "containers")
        self.run_dir = os.path.join(engine.exec_root, "containers")
        self.runtime_root = os.path.join(engine.exec_root, "runtime")
        for path in (self.dir, self.run_dir, self.runtime_root):
            os.makedirs(path, mode=0o700, exist_ok=True)
        self._db = sqlite3.connect(
            os.path.join(engine.root, "engine.db"), check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        self._containers: dict[str, Container] = {}
        for row in self._db.execute("SELECT * FROM containers"):
            c = Container(row[0], row[1], row[2], row[3], row[4], _json.loads(row[5]),
                          _json.loads(row[6]), _json.loads(row[7]))  # fmt: skip
            self._containers[c.id] = c
        from sampan.engine.health import HealthMonitor
        from sampan.engine.restart import RestartManager

        self.restarts = RestartManager(self)  # restart policies (restart.py)
        self.health = HealthMonitor(self)  # health checks (health.py)

    # -- paths ---------------------------------------------------------------------------

    def bundle(self, c: Container) -> str:
        return os.path.join(self.dir, c.id)

    def log_path(self, c: Container) -> str:
        return os.path.join(self.dir, c.id, f"{c.id}-json.log")

    def _rootfs(self, c: Container) -> str:
        return os.path.join(self.dir, c.id, "rootfs")

    def _run_dir(self, c: Container) -> str:
        return os.path.join(self.run_dir, c.id)

    # -- lookup --------------------------------------------------------------------------

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
            self._db.execute(
                "UPDATE containers SET state=?, config=?, host_config=? WHERE id=?",
                (_json.dumps(c.state), _json.dumps(c.config), _json.dumps(c.host_config), c.id),
            )
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
        if request.get("NetworkingConfig") and request["NetworkingConfig"].get("EndpointsConfig"):
            for net in request["NetworkingConfig"]["EndpointsConfig"]:
                if net not in ("none", "host", "default", "bridge", host["NetworkMode"]):
                    raise InvalidArgument(f"network {net} is not supported yet")
        name = spec.check_name(name) if name else ""
        from sampan.engine.images import resolve

        store = self.engine.store()
        record = resolve(store, image_name)
        image_config = store.config_of(record).container_config
        cid = secrets.token_hex(32)
        config = spec.merge_config(image_config, request, cid)
        c = Container(cid, name or self._random_name(), record.id, image_name, time.time(),
                      config, host, _new_state())  # fmt: skip
        from sampan.engine import mounts

        mounts.plan(self.engine, c, request, image_config)  # checked; nothing made yet
        with self._lock:
            self._insert(c)
        _lifecycle.emit(self, c, "create")
        try:
            mounts.create_volumes(self.engine, c)
            bundle = self.bundle(c)
            os.makedirs(os.path.join(bundle, "rootfs"), mode=0o700)
            self._write_files(c)
            store.prepare(cid, record.id)
        except BaseException:
            self._remove_files(c)
            raise
        return cid

    def _insert(self, c: Container) -> None:
        for other in self._containers.values():
            if other.name == c.name:
                raise Conflict(
                    f'Conflict. The container name "/{c.name}" is already in use by container '
                    f'"{other.id}". You have to remove (or rename) that container to be able '
                    "to reuse that name."
                )
        self._db.execute("INSERT INTO containers VALUES (?,?,?,?,?,?,?,?)", c.row())
        self._containers[c.id] = c

    def _random_name(self) -> str:
        import secrets

        with self._lock:
            taken = {c.name for c in self._containers.values()}
        while True:
            name = f"{secrets.choice(_LEFT)}_{secrets.choice(_RIGHT)}"
            if name in taken:
                name += str(secrets.randbelow(10))
            if name not in taken:
                return name

    def _write_files(self, c: Container) -> None:
        host_mode = c.host_config["NetworkMode"] == "host"
        hostname = c.config["Hostname"]
        host_resolv = _read("/etc/resolv.conf")
        files = {
            "hostname": hostname + "\n",
            "hosts": spec.hosts_file(hostname, host_mode, _read("/etc/hosts")),
            "resolv.conf": spec.resolv_conf(host_resolv, host_mode),
            f"{c.id}-json.log": "",
        }
        for name, text in files.items():
            with open(os.path.join(self.bundle(c), name), "w") as f:
                f.write(text)

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
            self._start(c)
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
            _lifecycle.emit(self, c, "start")
            self.health.started(c)
        finally:
            with self._lock:
                c.starting = False
                self.changed.notify_all()

    def _start(self, c: Container) -> None:
        rootfs = self._rootfs(c)
        run_dir = self._run_dir(c)
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        try:
            os.unlink(os.path.join(run_dir, "exit.json"))
        except FileNotFoundError:
            pass
        store = self.engine.store()
        if not _mounted(rootfs):
            store.snapshots.mount(c.id, rootfs)
        from sampan.engine import mounts

        try:
            mounts.setup(self.engine, c, rootfs)  # volumes mounted, filled from the image
            self._write_spec(c)
            self._spawn(c, run_dir)
        except BaseException:
            mounts.teardown(self.engine, c, events=False)
            store.snapshots.unmount(rootfs)
            raise

    def _write_spec(self, c: Container) -> None:
        rootfs = self._rootfs(c)
        bundle = self.bundle(c)
        files = {f"/etc/{n}": os.path.join(bundle, n) for n in ("hostname", "hosts", "resolv.conf")}
        doc = spec.oci_spec(
            c.id, c.config, c.host_config, files=files,
            passwd=_read(os.path.join(rootfs, "etc/passwd")),
            group=_read(os.path.join(rootfs, "etc/group")),
            cgroup_v2=os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
        )  # fmt: skip
        from sampan.engine import resources, security

        resources.apply_to_spec(doc, c.host_config)
        from sampan.engine import mounts

        mounts.apply(self.engine, c, doc)  # -v, --mount, --tmpfs, --volumes-from
        security.apply_to_spec(doc, c.host_config)
        tmp = os.path.join(bundle, ".config.json.tmp")
        with open(tmp, "w") as f:
            f.write(_json.dumps(doc))
        os.replace(tmp, os.path.join(bundle, "config.json"))

    def _spawn(self, c: Container, run_dir: str) -> None:
        """Start the monitor and wait for its report; the container is running after."""
        import select

        from sampan.runtime.state import proc_start_time, rfc3339_now

        read_fd, write_fd = os.pipe()
        argv = [sys.executable, "-I", "-S", MONITOR, self.runtime_root, c.id, self.bundle(c),
                self.log_path(c), run_dir, str(write_fd)]  # fmt: skip
        if spec.network_namespace(c.host_config["NetworkMode"]):
            argv.append("--loopback")
        argv += self.engine.attach.monitor_flags(c)  # stdin, tty, log rotation, attachers
        pid = 0
        try:
            proc, pid = self._launch_monitor(argv, write_fd, os.path.join(run_dir, "monitor.log"))
        finally:
            os.close(write_fd)
            self.engine.attach.connect_claimed(c, pid)  # the clients that attached before start
        with self._lock:
            c.state.update(MonitorPid=pid, MonitorStart=proc_start_time(pid) or 0)
            self._save(c)
        try:
            line = b""
            deadline = time.monotonic() + START_TIMEOUT
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                    os.kill(pid, 9)
                    raise SampanError(f"container {c.id}: the monitor did not report in time")
                data = os.read(read_fd, 4096)
                if not data:
                    break
                line += data
        finally:
            os.close(read_fd)
        word, _, rest = line.decode(errors="replace").strip().partition(" ")
        if word != "ok":
            if proc is not None:
                proc.wait()
            else:
                _wait_pid(pid, c.state["MonitorStart"])
            with self._lock:
                c.state.update(MonitorPid=0, MonitorStart=0)
                self._save(c)
            if word == "error":
                raise _start_error(rest)
            tail = _read(os.path.join(run_dir, "monitor.log"))[-2000:]
            raise SampanError(f"container {c.id}: the monitor exited: {tail.strip()}")
        with self._lock:
            c.state.update(Status="running", Running=True, Pid=int(rest), ExitCode=0, Error="",
                           StartedAt=rfc3339_now(), FinishedAt=ZERO_TIME)  # fmt: skip
            self._save(c)
        self._watch(c, proc)

    def _launch_monitor(
        self, argv: list[str], status_fd: int, log_path: str
    ) -> tuple[subprocess.Popen[bytes] | None, int]:
        """Fork the monitor from the engine's zygote, or spawn it when there is none."""
        log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            zygote = self.engine.zygote()
            if zygote is not None:
                from sampan.engine.zygote import fd_arg

                args = argv[4:]  # the script's own argv; STATUS_FD is its sixth
                args[args.index(str(status_fd))] = fd_arg(0)
                null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    return None, zygote.spawn("monitor", args, (null, log, log), [status_fd])
                except OSError as exc:
                    sys.stderr.write(f"monitor fork server: {describe(exc)}; spawning instead\n")
                finally:
                    os.close(null)
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=(status_fd,), start_new_session=True, cwd="/",
            )  # fmt: skip
            return proc, proc.pid
        finally:
            os.close(log)

    # -- exits ---------------------------------------------------------------------------

    def _watch(self, c: Container, proc: subprocess.Popen[bytes] | None) -> None:
        thread = threading.Thread(
            target=self._watcher, args=(c, proc), name=f"watch-{c.id[:12]}", daemon=True
        )
        thread.start()

    def _watcher(self, c: Container, proc: subprocess.Popen[bytes] | None) -> None:
        try:
            if proc is not None:
                proc.wait()
            else:
                _wait_pid(c.state["MonitorPid"], c.state["MonitorStart"])
            self._exited(c)
        except Exception as exc:
            sys.stderr.write(f"container {c.id}: watching its monitor: {describe(exc)}\n")
        finally:
            self.engine.release_thread()

    def _exited(self, c: Container) -> None:
        """The monitor is gone: record the exit, unmount, and remove if --rm."""
        doc: dict[str, Any] = {}
        try:
            doc = _json.loads(_read(os.path.join(self._run_dir(c), "exit.json")) or "{}")
        except ValueError:
            pass
        error = ""
        if "ExitCode" not in doc:
            error = "the container's monitor exited without recording an exit status"
            from sampan.runtime import lifecycle

            try:
                lifecycle.delete(self.runtime_root, c.id, force=True)
            except (SampanError, OSError):
                pass
        try:
            self.engine.store().snapshots.unmount(self._rootfs(c))
        except OSError as exc:
            error = error or f"unmounting the rootfs: {describe(exc)}"
        from sampan.engine import mounts

        mounts.teardown(self.engine, c)  # volume devices no running container uses: unmounted
        from sampan.runtime.state import rfc3339_now

        with self._lock:
            c.state.update(Status="exited", Running=False, Pid=0, MonitorPid=0, MonitorStart=0,
                           ExitCode=int(doc.get("ExitCode", 255)), Error=error,
                           FinishedAt=doc.get("FinishedAt") or rfc3339_now())  # fmt: skip
            c.exits += 1
            again = _lifecycle.exited(self, c)  # health, die, the restart policy
            self._save(c)
            auto = c.host_config.get("AutoRemove") and not (c.removing or c.removed or again)
            if auto:
                c.removing = True
        if auto:
            self._remove_files(c)

    def restore(self) -> list[str]:
        """Adopt the monitors still running; record what ended while the daemon was down."""
        from sampan.runtime.state import proc_start_time

        adopted = []
        for c in self.all():
            pid, started = c.state.get("MonitorPid", 0), c.state.get("MonitorStart", 0)
            if not pid:
                if c.running:
                    self._exited(c)
                with self._lock:
                    self.restarts.restore(c)  # it exited while the daemon was down
                continue
            if proc_start_time(pid) == started:
                if not c.running:  # the daemon died between the monitor's start and its report
                    runtime = _read(os.path.join(self.runtime_root, c.id, "state.json"))
                    init = _json.loads(runtime).get("pid", 0) if runtime else 0
                    with self._lock:
                        c.state.update(Status="running", Running=True, Pid=init)
                        self._save(c)
                self._watch(c, None)
                self.health.started(c, adopted=True)
                adopted.append(c.id)
            else:
                self._exited(c)
        return adopted

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
            if c.running:
                self._signal(c, 9)
                if not self._await_exit(c, exits, 30):
                    raise SampanError(f"container {c.id}: did not exit after SIGKILL")
        except BaseException:
            with self._lock:
                c.removing = False
            raise
        self._remove_files(c, volumes)

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
            store.snapshots.unmount(self._rootfs(c))
        except OSError:
            pass
        try:
            store.release(c.id)
        except NotFound:
            pass
        shutil.rmtree(self.bundle(c), ignore_errors=True)
        shutil.rmtree(self._run_dir(c), ignore_errors=True)
        with self._lock:
            self._db.execute("DELETE FROM containers WHERE id=?", (c.id,))
            self._containers.pop(c.id, None)
            c.removed = True
            c.removing = False
            self.changed.notify_all()
        self.restarts.removed(c)
        _lifecycle.emit(self, c, "destroy")
        from sampan.engine import mounts

        mounts.release(self.engine, c, volumes)

    # -- API shapes ----------------------------------------------------------------------

    def inspect(self, ref: str) -> dict[str, Any]:
        c = self.get(ref)
        with self._lock:
            state = dict(c.state)
        args = list(c.config.get("Entrypoint") or []) + list(c.config.get("Cmd") or [])
        bundle = self.bundle(c)
        network = c.host_config["NetworkMode"]
        driver = _read(os.path.join(self.engine.image_root, "snapshots", "driver")).strip()
        return {
            "Id": c.id,
            "Created": rfc3339(int(c.created * 1e9), trim=False),
            "Path": args[0] if args else "",
            "Args": args[1:],
            "State": {
                "Status": c.status,
                "Running": c.running,
                "Paused": c.status == "paused",
                "Restarting": False,
                "OOMKilled": False,
                "Dead": False,
                "Pid": state.get("Pid", 0),
                "ExitCode": state.get("ExitCode", 0),
                "Error": state.get("Error", ""),
                "StartedAt": state.get("StartedAt", ZERO_TIME),
                "FinishedAt": state.get("FinishedAt", ZERO_TIME),
                **_lifecycle.state_fields(c, state),  # restarting, health
            },
            "Image": c.image,
            "ResolvConfPath": os.path.join(bundle, "resolv.conf"),
            "HostnamePath": os.path.join(bundle, "hostname"),
            "HostsPath": os.path.join(bundle, "hosts"),
            "LogPath": self.log_path(c),
            "Name": "/" + c.name,
            "RestartCount": state.get("RestartCount", 0),
            "Driver": driver,
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": self.engine.execs.ids_of(c) or None,
            "HostConfig": c.host_config,
            "GraphDriver": {"Name": driver, "Data": None},
            "Mounts": _api_mounts(c),
            "Config": c.config,
            "NetworkSettings": {
                "Bridge": "",
                "SandboxID": "",
                "SandboxKey": "",
                "Ports": {},
                "HairpinMode": False,
                "Networks": {network if network != "default" else "none": {}},
            },
        }

    def summary(self, c: Container) -> dict[str, Any]:
        """GET /containers/json's entry."""
        with self._lock:
            state = dict(c.state)
            status = c.status
        args = list(c.config.get("Entrypoint") or []) + list(c.config.get("Cmd") or [])
        now = time.time()
        if status in ("running", "paused"):
            text = "Up " + human_duration(now - _epoch(state["StartedAt"]))
            text += " (Paused)" if status == "paused" else ""
        elif status == "exited":
            ago = human_duration(now - _epoch(state["FinishedAt"]))
            text = f"Exited ({state.get('ExitCode', 0)}) {ago} ago"
        elif status == "removing":
            text = "Removal In Progress"
        else:
            text = "Created"
        text = _lifecycle.status_text(status, state, now) or text  # restarting, health
        return {
            "Id": c.id,
            "Names": ["/" + c.name],
            "Image": c.image_name,
            "ImageID": c.image,
            "Command": " ".join(args),
            "Created": int(c.created),
            "Ports": [],
            "Labels": c.config.get("Labels") or {},
            "State": status,
            "Status": text,
            "HostConfig": {"NetworkMode": c.host_config["NetworkMode"]},
            "NetworkSettings": {"Networks": {}},
            "Mounts": _api_mounts(c),
        }

    def list(
        self, show_all: bool = False, filters: dict[str, list[str]] | None = None
    ) -> list[Any]:
        """GET /containers/json: running ones (or ALL) that pass FILTERS."""
        filters = filters or {}
        for key in filters:
            if key not in ("status", "name", "id", "label", "health"):
                raise InvalidArgument(f"invalid filter '{key}'")
        for status in filters.get("status", []):
            if status not in STATUSES:
                raise InvalidArgument(f"invalid filter 'status={status}'")
        _lifecycle.health_matches(None, filters.get("health"))  # checks the values
        out = []
        for c in self.all():
            shown = c.running or c.status == "restarting"  # docker lists restarting ones
            if not (show_all or filters.get("status")) and not shown:
                continue
            if not _lifecycle.health_matches(c, filters.get("health")):
                continue
            if "status" in filters and c.status not in filters["status"]:
                continue
            if "id" in filters and not any(c.id.startswith(v) for v in filters["id"]):
                continue
            if "name" in filters and not any(_name_match(v, c.name) for v in filters["name"]):
                continue
            labels = c.config.get("Labels") or {}
            if "label" in filters and not all(_label_match(v, labels) for v in filters["label"]):
                continue
            out.append(self.summary(c))
        return out


def _api_mounts(c: Container) -> list[dict[str, Any]]:
    from sampan.engine.mounts import api_mounts

    return api_mounts(c)


def _name_match(pattern: str, name: str) -> bool:
    import re

    try:
        return re.search(pattern.removeprefix("/"), name) is not None
    except re.error:
        raise InvalidArgument(f"invalid filter 'name={pattern}'") from None


def _label_match(want: str, labels: dict[str, str]) -> bool:
    key, eq, value = want.partition("=")
    return key in labels and (not eq or labels[key] == value)


def _start_error(message: str) -> SampanError:
    """The monitor's report as docker words it (the CLI maps 'not found' to exit 127)."""
    text = f"failed to create task for container: OCI runtime create failed: {message}: unknown"
    if "not found" in message or "no such file" in message.lower():
        return InvalidArgument(text)
    if "permission denied" in message.lower():
        return InvalidArgument(text)
    return SampanError(text)


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return ""


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ", 5)[4] == path for line in f)


def _wait_pid(pid: int, start_time: int) -> None:
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
