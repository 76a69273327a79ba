"""The start path of a container: its bundle's files, its snapshot mounted, the OCI spec
written, its monitor launched through the fork server, and the monitor's report read.

    ROOT/containers/ID/        the bundle: config.json, rootfs/ (the snapshot mounted
                               at start), hostname, hosts, resolv.conf, ID-json.log
    EXEC_ROOT/containers/ID/   the monitor's: exit.json, monitor.log

Separate from the service (containers.py) because this is the slow work a
start does outside the service's lock (the record marked ``starting``), and
the only place that makes processes: the monitor (sampan/engine/monitor.py)
is forked by the engine's zygote (zygote.py), or spawned when there is none,
in a session of its own, and reports "ok PID" or "error MESSAGE" on a pipe.
Once it reports, its exit is watched by container_exits.py.

    write_bundle_files(service, c)     # at create
    launch(service, c)                 # at start: running when it returns
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from sampan import _json
from sampan.engine import spec
from sampan.engine.container_records import ZERO_TIME, read_text
from sampan.errors import InvalidArgument, SampanError, describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sampan.engine.container_records import Container
    from sampan.engine.containers import ContainerService

__all__ = ["MONITOR", "START_TIMEOUT", "is_mounted", "launch", "write_bundle_files"]

MONITOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "monitor.py")
START_TIMEOUT = 60.0


def write_bundle_files(service: ContainerService, c: Container) -> None:
    """The bundle's hostname, hosts, resolv.conf and an empty log (at create)."""
    host_mode = c.host_config["NetworkMode"] == "host"
    hostname = c.config["Hostname"]
    host_resolv = read_text("/etc/resolv.conf")
    files = {
        "hostname": hostname + "\n",
        "hosts": spec.hosts_file(hostname, host_mode, read_text("/etc/hosts")),
        "resolv.conf": spec.resolv_conf(host_resolv, host_mode),
        f"{c.id}-json.log": "",
    }
    for name, text in files.items():
        with open(os.path.join(service.bundle(c), name), "w") as f:
            f.write(text)


def launch(service: ContainerService, c: Container) -> None:
    """Mount C's snapshot and volumes, write its spec and start its monitor; on failure
    everything mounted here is unmounted again."""
    from sampan.engine import mounts, network_attach

    rootfs = service.rootfs(c)
    run_dir = os.path.join(service.run_dir, c.id)
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    try:
        os.unlink(os.path.join(run_dir, "exit.json"))
    except FileNotFoundError:
        pass
    store = service.engine.store()
    if not is_mounted(rootfs):
        store.snapshots.mount(c.id, rootfs)
    networks = service.engine.networks
    try:
        mounts.setup(service.engine, c, rootfs)  # volumes mounted, filled from the image
        net = network_attach.attach(networks, c)  # its namespace wired, ports published
        with service.changed:
            c.state.update(SandboxKey=net.get("SandboxKey", ""), Ports=net.get("Ports") or {})
        _write_network_files(service, c)
        _write_spec(service, c, net.get("SandboxKey", ""))
        _spawn(service, c, run_dir, bool(net))
    except BaseException:
        network_attach.detach(networks, c)
        mounts.teardown(service.engine, c, events=False)
        store.snapshots.unmount(rootfs)
        raise


def _write_network_files(service: ContainerService, c: Container) -> None:
    """hosts and resolv.conf for the networks C has now (its addresses, links, DNS)."""
    from sampan.engine import network_attach

    mode = c.host_config["NetworkMode"]
    bundle = service.bundle(c)
    if mode.startswith("container:"):
        other = service.bundle(service.get(mode.partition(":")[2]))
        texts = {n: read_text(os.path.join(other, n)) for n in ("hosts", "resolv.conf")}
    else:
        texts = network_attach.files(service.engine.networks, c, read_text("/etc/hosts"),
                                     read_text("/etc/resolv.conf"))  # fmt: skip
    for name, text in texts.items():
        tmp = os.path.join(bundle, f".{name}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(bundle, name))


def _write_spec(service: ContainerService, c: Container, netns: str = "") -> None:
    from sampan.engine import mounts, resources, security

    rootfs = service.rootfs(c)
    bundle = service.bundle(c)
    files = {f"/etc/{n}": os.path.join(bundle, n) for n in ("hostname", "hosts", "resolv.conf")}
    doc = spec.oci_spec(
        c.id, c.config, c.host_config, files=files,
        passwd=read_text(os.path.join(rootfs, "etc/passwd")),
        group=read_text(os.path.join(rootfs, "etc/group")),
        cgroup_v2=os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
    )  # fmt: skip
    if netns:  # made by the engine (network_attach), or another container's
        for ns in doc["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = netns
    resources.apply_to_spec(doc, c.host_config)
    mounts.apply(service.engine, c, doc)  # -v, --mount, --tmpfs, --volumes-from
    security.apply_to_spec(doc, c.host_config)
    tmp = os.path.join(bundle, ".config.json.tmp")
    with open(tmp, "w") as f:
        f.write(_json.dumps(doc))
    os.replace(tmp, os.path.join(bundle, "config.json"))


def _spawn(service: ContainerService, c: Container, run_dir: str, netns_made: bool) -> None:
    """Start the monitor and wait for its report; the container is running after."""
    import select

    from sampan.engine.container_exits import wait_pid, watch
    from sampan.runtime.state import proc_start_time, rfc3339_now

    engine = service.engine
    read_fd, write_fd = os.pipe()
    argv = [sys.executable, "-I", "-S", MONITOR, service.runtime_root, c.id, service.bundle(c),
            service.log_path(c), run_dir, str(write_fd)]  # fmt: skip
    if spec.network_namespace(c.host_config["NetworkMode"]) and not netns_made:
        argv.append("--loopback")  # the runtime's new namespace: lo comes up in it
    argv += engine.attach.monitor_flags(c)  # stdin, tty, log rotation, attachers
    pid = 0
    try:
        proc, pid = _launch_monitor(service, argv, write_fd, os.path.join(run_dir, "monitor.log"))
    finally:
        os.close(write_fd)
        engine.attach.connect_claimed(c, pid)  # the clients that attached before start
    with service.changed:
        c.state.update(MonitorPid=pid, MonitorStart=proc_start_time(pid) or 0)
        service._save(c)
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
            wait_pid(pid, c.state["MonitorStart"])
        with service.changed:
            c.state.update(MonitorPid=0, MonitorStart=0)
            service._save(c)
        if word == "error":
            raise _start_error(rest)
        tail = read_text(os.path.join(run_dir, "monitor.log"))[-2000:]
        raise SampanError(f"container {c.id}: the monitor exited: {tail.strip()}")
    with service.changed:
        c.state.update(Status="running", Running=True, Pid=int(rest), ExitCode=0, Error="",
                       StartedAt=rfc3339_now(), FinishedAt=ZERO_TIME)  # fmt: skip
        service._save(c)
    from sampan.engine import lifecycle

    lifecycle.emit(service, c, "start")  # before the watcher can see it die: start, then die
    watch(service, c, proc)


def _launch_monitor(
    service: ContainerService, argv: list[str], status_fd: int, log_path: str
) -> tuple[subprocess.Popen[bytes] | None, int]:
    """Fork the monitor from the engine's zygote, or spawn it when there is none."""
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        zygote = service.engine.zygote()
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


def _start_error(message: str) -> SampanError:
    """The monitor's report as docker words it (the CLI maps 'not found' to exit 127)."""
    text = f"failed to create task for container: OCI runtime create failed: {message}: unknown"
    if "not found" in message or "no such file" in message.lower():
        return InvalidArgument(text)
    if "permission denied" in message.lower():
        return InvalidArgument(text)
    return SampanError(text)


def is_mounted(path: str) -> bool:
    """Whether something is mounted on PATH in the daemon's mount namespace."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ", 5)[4] == path for line in f)
