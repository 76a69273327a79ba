"""Health checks: Config.Healthcheck checked and merged, and a prober per running container.

    Config.Healthcheck = {"Test": ["CMD-SHELL", "wget -q -O- localhost"],
                          "Interval": 30e9, "Timeout": 30e9, "StartPeriod": 0,
                          "StartInterval": 5e9, "Retries": 3}      (durations in ns)

``Test`` is ``["NONE"]`` (no checks, even if the image has some), ``["CMD",
arg...]``, ``["CMD-SHELL", "command"]`` (run by /bin/sh -c), or empty (the
image's).  The request's fields override the image's one by one; a zero
field takes docker's default (30 s, 30 s, 0, 5 s, 3).

A prober thread per running container with a check runs the probe inside
the container through sampan.runtime's ``exec`` (the runtime's CLI, forked
by the daemon's fork server -- spawned as a process of its own without one
--: the probe runs with the container's user, environment and
working directory, in its cgroup and namespaces), captures the first 4 KiB
of its output, and kills it at the timeout.  The state machine is
dockerd's: ``starting`` until the first success (``healthy``); each failure
adds one to FailingStreak -- except while still ``starting`` within the
start period -- and ``Retries`` failures in a row make it ``unhealthy``;
one success makes it healthy again.  Every change of status is an event
``health_status: STATUS``.  State.Health keeps the last five results; a
container that stops is ``unhealthy`` (docker's compatibility rule).

The first probe runs one interval after the start (``StartInterval`` while
starting within the start period), the next one interval after the end of
the previous.  A prober belongs to one run of its container: a new start
replaces it, the exit stops it, and a daemon that re-adopts a running
container starts one again without resetting the status.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from sampan.errors import InvalidArgument, describe
from sampan.units import go_duration, parse_rfc3339, rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.engine.containers import Container, ContainerService
    from sampan.engine.zygote import Zygote

__all__ = ["HealthMonitor", "check_healthcheck", "config_fields", "probe_command",
           "record_result", "status_suffix"]  # fmt: skip

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MINIMUM = 1_000_000  # 1 ms: docker's minimum for a non-zero duration
MAX_OUTPUT = 4096
KEEP = 5
STATUSES = ("starting", "healthy", "unhealthy", "none")
_DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_RUNTIME = "import sys; sys.path.insert(0, sys.argv.pop(1)); from sampan.cli.runtime import main; sys.exit(main())"  # noqa: E501


def check_healthcheck(value: object, field: str = "Healthcheck") -> dict[str, Any] | None:
    """A Config.Healthcheck checked with docker's messages (None when absent)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field}: expected an object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "Test":
            if item is None:
                continue
            if not isinstance(item, list) or not all(isinstance(t, str) for t in item):
                raise InvalidArgument(f"{field}.Test: expected a list of strings")
            if item and item[0] not in ("NONE", "CMD", "CMD-SHELL"):
                raise InvalidArgument(
                    f"{field}.Test: unknown type {item[0]!r} (NONE, CMD or CMD-SHELL)"
                )
            if item and item[0] != "NONE" and len(item) < 2:
                raise InvalidArgument(f"{field}.Test: {item[0]} needs a command")
            out["Test"] = list(item)
        elif key in _DURATIONS or key == "Retries":
            if item is None:
                continue
            if isinstance(item, bool) or not isinstance(item, int):
                raise InvalidArgument(f"{field}.{key}: expected an integer")
            if key == "Retries":
                if item < 0:
                    raise InvalidArgument("Retries in Healthcheck cannot be negative")
            elif item != 0 and item < MINIMUM:
                raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
            out[key] = item
        else:
            raise InvalidArgument(f"{field}: unknown field {key!r}")
    return out


def config_fields(image: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """{"Healthcheck": ...} for the container's Config (docker's merge), or {} without one."""
    user = check_healthcheck(request.get("Healthcheck"))
    base = check_healthcheck(image.get("Healthcheck"), "image Healthcheck")
    if user is None:
        return {"Healthcheck": base} if base else {}
    if base:
        for key in ("Test", *_DURATIONS, "Retries"):
            if not user.get(key) and base.get(key):
                user[key] = base[key]
    return {"Healthcheck": user}


def probe_command(config: dict[str, Any]) -> list[str] | None:
    """The probe's argv for a container's Config, or None when it has no checks."""
    test = (config.get("Healthcheck") or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", *test[1:]]
    return list(test[1:])


def _setting(config: dict[str, Any], key: str, default: int) -> int:
    value = (config.get("Healthcheck") or {}).get(key) or 0
    return int(value) if value > 0 else default


def status_suffix(state: dict[str, Any]) -> str:
    """What ``ps`` adds to "Up 3 seconds": " (healthy)", " (health: starting)", or ""."""
    health = state.get("Health")
    if not health:
        return ""
    status = health.get("Status", "")
    return " (health: starting)" if status == "starting" else f" ({status})"


def record_result(
    health: dict[str, Any], config: dict[str, Any], started_at: float, result: dict[str, Any],
    probe_start: float,
) -> str | None:  # fmt: skip
    """Apply one probe RESULT to HEALTH (State.Health, mutated); the new status if it changed."""
    before = health.get("Status")
    log = health.setdefault("Log", [])
    log.append(result)
    del log[:-KEEP]
    if result["ExitCode"] == 0:
        health["FailingStreak"] = 0
        health["Status"] = "healthy"
    else:
        counts = True
        if before == "starting":
            period = _setting(config, "StartPeriod", DEFAULT_START_PERIOD) / SECOND
            counts = probe_start - started_at >= period
        if counts:
            health["FailingStreak"] = int(health.get("FailingStreak", 0)) + 1
            if health["FailingStreak"] >= _setting(config, "Retries", DEFAULT_RETRIES):
                health["Status"] = "unhealthy"
    after = health["Status"]
    return after if after != before else None


class _Prober:
    __slots__ = ("stop", "thread")

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None


class HealthMonitor:
    """The probers of one ContainerService's running containers."""

    def __init__(self, service: ContainerService) -> None:
        self.service = service
        self._probers: dict[str, _Prober] = {}
        self._lock = threading.Lock()

    # -- hooks of ContainerService ---------------------------------------------------------

    def started(self, c: Container, adopted: bool = False) -> None:
        """C runs (a start, or a daemon that adopted it): its prober, if it has a check."""
        self.stopped(c, final=False)
        if probe_command(c.config) is None:
            return
        service = self.service
        with service.changed:
            health = c.state.get("Health")
            if not adopted or not health:
                log = (health or {}).get("Log") or []
                c.state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": log}
                service._save(c)
        prober = _Prober()
        thread = threading.Thread(target=self._run, args=(c, prober), daemon=True,
                                  name=f"health-{c.id[:12]}")  # fmt: skip
        prober.thread = thread
        with self._lock:
            self._probers[c.id] = prober
        thread.start()

    def stopped(self, c: Container, final: bool = True) -> None:
        """C's run ended: its prober stops; a container that stopped is unhealthy."""
        with self._lock:
            prober = self._probers.pop(c.id, None)
        if prober is not None:
            prober.stop.set()
        if final and c.state.get("Health"):
            c.state["Health"]["Status"] = "unhealthy"

    def close(self) -> None:
        with self._lock:
            probers, self._probers = list(self._probers.values()), {}
        for prober in probers:
            prober.stop.set()

    # -- the prober thread -----------------------------------------------------------------

    def _interval(self, c: Container, started_at: float) -> float:
        config = c.config
        interval = _setting(config, "Interval", DEFAULT_INTERVAL)
        period = _setting(config, "StartPeriod", DEFAULT_START_PERIOD)
        starting = (c.state.get("Health") or {}).get("Status") == "starting"
        if starting and time.time() - started_at < period / SECOND:
            interval = _setting(config, "StartInterval", DEFAULT_START_INTERVAL)
        return interval / SECOND

    def _run(self, c: Container, prober: _Prober) -> None:
        argv = probe_command(c.config) or []
        started_at = parse_rfc3339(c.state.get("StartedAt", "")) or time.time()
        timeout = _setting(c.config, "Timeout", DEFAULT_TIMEOUT)
        try:
            while not prober.stop.wait(self._interval(c, started_at)):
                if c.status == "paused":
                    continue  # a probe would hang in the frozen cgroup until its timeout
                begin = time.time_ns()
                code, output = self._probe(c, argv, timeout, prober)
                end = time.time_ns()
                if prober.stop.is_set():
                    return
                result = {"Start": rfc3339(begin, trim=False), "End": rfc3339(end, trim=False),
                          "ExitCode": code, "Output": output}  # fmt: skip
                self._record(c, prober, result, started_at, begin / SECOND)
        except Exception as exc:  # a thread of its own: say why it ended
            sys.stderr.write(f"container {c.id}: health check: {describe(exc)}\n")

    def _record(
        self, c: Container, prober: _Prober, result: dict[str, Any], started_at: float,
        begin: float,
    ) -> None:  # fmt: skip
        service = self.service
        with service.changed:
            if prober.stop.is_set() or not c.running or c.removed:
                return
            health = c.state.setdefault("Health", {"Status": "starting", "FailingStreak": 0})
            changed = record_result(health, c.config, started_at, result, begin)
            service._save(c)
        if changed:
            from sampan.engine.lifecycle import emit

            emit(service, c, f"health_status: {changed}")

    def _probe(
        self, c: Container, argv: list[str], timeout_ns: int, prober: _Prober
    ) -> tuple[int, str]:
        """Run ARGV in C through the runtime's exec; (exit code, first 4 KiB of output)."""
        import tempfile

        runtime_root = self.service.runtime_root
        with tempfile.TemporaryDirectory(prefix="health-", dir=self.service.run_dir) as tmp:
            pid_file = os.path.join(tmp, "pid")
            args = ["--root", runtime_root, "exec", "--pid-file", pid_file, c.id, *argv]
            zygote = self.service.engine.zygote()
            if zygote is not None:
                try:
                    return _forked_probe(zygote, args, pid_file, timeout_ns)
                except OSError as exc:
                    sys.stderr.write(f"health probe fork server: {describe(exc)}; spawning\n")
            cmd = [sys.executable, "-I", "-S", "-c", _RUNTIME, _REPO, *args]
            try:
                proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, cwd="/", start_new_session=True,
                )  # fmt: skip
            except OSError as exc:
                return -1, describe(exc)
            assert proc.stdout is not None
            reader = _Reader(proc.stdout)
            reader.start()
            try:
                code = proc.wait(timeout_ns / SECOND)
            except subprocess.TimeoutExpired:
                _kill_probe(pid_file, proc)
                reader.join(5)
                return -1, f"Health check exceeded timeout ({go_duration(timeout_ns)})"
            reader.join(5)
            return code, reader.output()


def _forked_probe(
    zygote: Zygote, args: list[str], pid_file: str, timeout_ns: int
) -> tuple[int, str]:
    """The probe as a child of the daemon's fork server (no interpreter to start): it
    writes ``exit CODE`` on a pipe when the runtime's exec returns."""
    import select
    import time

    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    rep_r, rep_w = os.pipe2(os.O_CLOEXEC)
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid = zygote.spawn("runtime", args, (null, out_w, out_w), [rep_w])
    except BaseException:
        for fd in (out_r, rep_r):
            os.close(fd)
        raise
    finally:
        for fd in (out_w, rep_w, null):
            os.close(fd)
    reader = _Reader(os.fdopen(out_r, "rb"))
    reader.start()
    report = b""
    deadline = time.monotonic() + timeout_ns / SECOND
    try:
        while not report.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([rep_r], [], [], left)[0]:
                _kill_forked_probe(pid_file, pid)
                reader.join(5)
                return -1, f"Health check exceeded timeout ({go_duration(timeout_ns)})"
            chunk = os.read(rep_r, 64)
            if not chunk:
                break  # the probe died without a word
            report += chunk
    finally:
        os.close(rep_r)
    reader.join(5)
    word, _, rest = report.decode(errors="replace").strip().partition(" ")
    code = int(rest) if word == "exit" and rest.lstrip("-").isdigit() else -1
    return code, reader.output()


def _kill_forked_probe(pid_file: str, shim: int) -> None:
    """Past its timeout: the process in the container, then its parent (not our child)."""
    for target in (_pid_in(pid_file), shim):
        if target > 0:
            try:
                os.kill(target, 9)
            except ProcessLookupError:
                pass


def _pid_in(pid_file: str) -> int:
    try:
        with open(pid_file) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


class _Reader(threading.Thread):
    """Drains a probe's output, keeping the first MAX_OUTPUT bytes."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True, name="health-output")
        self.stream = stream
        self.data = b""

    def run(self) -> None:
        try:
            while chunk := self.stream.read1(65536):
                if len(self.data) < MAX_OUTPUT:
                    self.data += chunk[: MAX_OUTPUT - len(self.data)]
        except (OSError, ValueError):
            pass
        finally:
            self.stream.close()

    def output(self) -> str:
        return self.data.decode(errors="replace")


def _kill_probe(pid_file: str, proc: subprocess.Popen[bytes]) -> None:
    """The probe ran past its timeout: kill the process in the container, then the runtime."""
    pid = _pid_in(pid_file)
    if pid > 0:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    try:
        proc.wait(2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
