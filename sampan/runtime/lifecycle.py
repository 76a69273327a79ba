"""The lifecycle verbs: create, start, run, kill, delete (the OCI runtime spec's operations).

Each verb loads the state, checks that the transition is allowed, acts and
persists.  A failed ``create`` removes everything it made (cgroup, state
directory, processes) before it reports the error.
"""

from __future__ import annotations

import os

from sampan.errors import Conflict, InvalidArgument, NotFound
from sampan.oci.runtime_config import load_config
from sampan.runtime import cgroup as cgroup_glue
from sampan.runtime.namespaces import NamespacePlan
from sampan.runtime.state import ContainerState, proc_start_time, rfc3339_now
from sampan.runtime.sync import Channel, ChildFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sampan.cgroups import Cgroup


class CreateOptions:
    """What ``create``/``run`` were asked for besides the id and the bundle."""

    __slots__ = ("console_socket", "no_new_keyring", "no_pivot", "pid_file", "preserve_fds")

    def __init__(
        self,
        pid_file: str | None = None,
        console_socket: str | None = None,
        no_pivot: bool = False,
        no_new_keyring: bool = False,
        preserve_fds: int = 0,
    ) -> None:
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds


class Created:
    """The outcome of create: the state, and the pty master if ``run`` keeps it."""

    __slots__ = ("console_fd", "state")

    def __init__(self, state: ContainerState, console_fd: int | None) -> None:
        self.state = state
        self.console_fd = console_fd


def create(
    root: str, cid: str, bundle: str, opts: CreateOptions, keep_console: bool = False
) -> Created:
    """Create container CID from BUNDLE: its init waits for ``start``."""
    bundle = os.path.abspath(bundle)
    config = load_config(bundle)
    process = config.get("process")
    if not process:
        raise InvalidArgument("config.json: process: required to create a container")
    rootfs = config["root"]["path"]
    if not rootfs.startswith("/"):
        rootfs = f"{bundle}/{rootfs}"
    rootfs = os.path.realpath(rootfs)
    if not os.path.isdir(rootfs):
        raise NotFound(f"config.json: root.path: rootfs {rootfs} does not exist")
    linux = config.get("linux", {})
    plan = NamespacePlan(linux.get("namespaces", []))
    plan.check_paths()
    if config.get("mounts"):
        from sampan.runtime.rootfs import check_mounts

        for warning in check_mounts(config):
            from sampan.runtime.log import warn

            warn(warning)
    if linux.get("sysctl"):
        from sampan.runtime.namespaces import check_sysctl

        check_sysctl(linux["sysctl"], plan)
    terminal = bool(process.get("terminal"))
    if terminal and not opts.console_socket and not keep_console:
        raise InvalidArgument("cannot allocate a tty without --console-socket when detached")
    if opts.console_socket and not terminal:
        raise InvalidArgument("--console-socket given, but process.terminal is false")
    from sampan.runtime.process import check_rlimits, check_security_labels

    check_rlimits(process)
    check_security_labels(process, linux)
    if linux.get("resources"):
        from sampan.cgroups import validate_resources

        validate_resources(linux["resources"])
    cg = cgroup_glue.open_for(config, cid)  # imports the backend; makes nothing yet
    seccomp = None
    if linux.get("seccomp"):
        from sampan.linux.seccomp import compile_program

        seccomp = compile_program(linux["seccomp"], cache_dir=f"{root}/.seccomp-cache")
    state = ContainerState(root, cid, {"bundle": bundle, "rootfs": rootfs, "config": config})
    state.created = rfc3339_now()
    if "mount" not in plan.kinds:
        # Mounts will be made in the host's namespace, stacked on the rootfs: remember
        # what was on top before, so that cleanup detaches only what the container made.
        from sampan.runtime.rootfs import top_mount_id

        state.mount_below = top_mount_id(rootfs)
    statedir = ContainerState.reserve(root, cid)
    made_cgroup = False
    kids = _Children()
    fifo_fd = -1
    chan = child_end = None
    try:
        fifo_fd = os.open(f"{statedir}/exec.fifo", os.O_RDWR | os.O_CLOEXEC)
        if plan.new_cgroup:  # stage 1 joins the cgroup itself, before unshare
            _make_cgroup(cg, config, statedir)
            made_cgroup = True
        chan, child_end = Channel.pair()
        from sampan.runtime.init import InitContext, preload, stage1

        preload(config, process)

        keyring = None if opts.no_new_keyring else f"_ses.{cid}"
        ctx = InitContext(config, bundle, rootfs, plan, cg if made_cgroup else None, child_end,
                          fifo_fd, seccomp, opts.no_pivot, opts.preserve_fds, keyring)  # fmt: skip
        kids.stage = os.fork()
        if kids.stage == 0:
            chan.close()
            if any(kind == "pid" for kind, _ in plan.join):
                # Other containers' processes share that pid namespace and will see
                # init: it runs from a sealed copy (sampan.runtime.sealed).
                from sampan.runtime.init import reexec_sealed

                reexec_sealed(ctx, cid)
            stage1(ctx)
        child_end.close()
        os.close(fifo_fd)
        fifo_fd = -1
        if not made_cgroup:
            # Making the cgroup and the first move (~10 ms on v1) overlap with
            # the child's namespace and mount work; see sampan.runtime.init.
            # Should it fail, the child is killed: it made nothing outside
            # itself.  Everything this needs was imported before the fork --
            # after it, every page Python touches costs a copy-on-write fault.
            _make_cgroup(cg, config, statedir)
            made_cgroup = True
            if chan.peek_kind() != "pid":
                cg.add_process(kids.stage)
            # else stage 1 has forked init already and only exits now: the handshake
            # moves init alone (a move is ~0.25 ms a hierarchy on v1, ten of them here)
        console_fd = _handshake(chan, kids, state, config, plan, cg, opts, keep_console)
        state.pid = kids.init
        state.start_time = proc_start_time(kids.init) or 0
        state.save()
        if opts.pid_file:
            _write_pid_file(opts.pid_file, kids.init)
        chan.send("go")
        chan.close()
        return Created(state, console_fd)
    except BaseException:
        # Undo all of it, each step on its own: the first error is what is reported.
        if chan is not None:
            chan.close()
        if fifo_fd >= 0:
            os.close(fifo_fd)
        kids.kill()
        if made_cgroup:
            _quietly(_destroy_cgroup, cg)
        if "mount" not in plan.kinds:
            from sampan.runtime.rootfs import detach_ours

            _quietly(detach_ours, rootfs, state.mount_below)
        _quietly(state.remove)
        raise


class _Children:
    """What a create has forked: stage 1 (0 once reaped) and init (0 until known)."""

    __slots__ = ("init", "stage")

    def __init__(self) -> None:
        self.stage = 0
        self.init = 0

    def reap_stage(self) -> None:
        if self.stage and self.stage != self.init:
            os.waitpid(self.stage, 0)
            self.stage = 0

    def kill(self) -> None:
        for pid in {self.init, self.stage} - {0}:
            _quietly(_kill_and_reap, pid)
        self.stage = self.init = 0


def _quietly(step: Callable[..., object], *args: Any) -> None:
    """A cleanup step whose failure must not hide the error being cleaned up after."""
    try:
        step(*args)
    except Exception as exc:
        from sampan.errors import describe
        from sampan.runtime.log import warn

        warn(f"cleanup: {describe(exc)}")


def _make_cgroup(cg: Cgroup, config: dict[str, Any], statedir: str) -> None:
    """Make the cgroup and apply linux.resources (nothing left on error).

    A cgroup that already holds processes is refused, as runc does: the
    container would share its limits, and a failed create or a delete would
    kill those processes.
    """
    for path in set(cg.paths.values()):
        try:
            with open(f"{path}/cgroup.procs", "rb") as f:
                busy = bool(f.read(1))
        except FileNotFoundError:
            continue
        if busy:
            raise Conflict(f"cgroup {path} is not empty: it has processes of its own")
    # Until state.json exists, this is how a delete after a killed create finds the
    # cgroup to remove (see _remove_aborted): written once it is known to be ours.
    with open(f"{statedir}/cgroup", "w") as f:
        f.write(config.get("linux", {}).get("cgroupsPath") or "")
    cg.create()
    try:
        cg.apply(cgroup_glue.effective_resources(config))
    except BaseException:
        cg.destroy()
        raise


def _handshake(
    chan: Channel,
    kids: _Children,
    state: ContainerState,
    config: dict[str, Any],
    plan: NamespacePlan,
    cg: Cgroup,
    opts: CreateOptions,
    keep_console: bool,
) -> int | None:
    """Serve the children's requests until init says ready; return the console fd (or None).

    KIDS learns init's pid as it comes, and forgets stage 1 once reaped, so
    that a failure is cleaned up by the caller without signalling a pid twice.
    """
    console_fd: int | None = None
    try:
        while True:
            msg, fds = chan.recv()
            if msg is None:
                raise ChildFailed("container init exited during create")
            kind = msg["t"]
            if kind == "error":
                raise ChildFailed(msg.get("msg", "unknown error"))
            if kind == "idmap":
                _write_id_maps(kids.stage, config.get("linux", {}))
                chan.send("ack")
            elif kind == "pid":
                kids.init = state.pid = msg["pid"]
                if not plan.new_cgroup and kids.init != kids.stage:
                    cg.add_process(kids.init)  # in case stage 1 forked it before it moved
                kids.reap_stage()
            elif kind == "hooks":
                hook_state = state.oci_state("creating")
                all_hooks = config.get("hooks", {})
                from sampan.runtime.hooks import run_hooks

                for which in ("prestart", "createRuntime"):
                    run_hooks(which, all_hooks.get(which, []), hook_state)
                chan.send("ack", state=hook_state)
            elif kind == "cgroup":
                # Stage 1 was moved before this loop began, and init (if forked
                # before that) when its "pid" came: init is in its cgroup now.
                chan.send("ack")
            elif kind == "console":
                console_fd = fds[0]
                if not keep_console:
                    assert opts.console_socket is not None
                    from sampan.runtime.console import send_console

                    try:
                        send_console(opts.console_socket, console_fd)
                    finally:
                        os.close(console_fd)
                        console_fd = None
                chan.send("ack")
            elif kind == "ready":
                return console_fd
    except BaseException:
        if console_fd is not None:
            os.close(console_fd)
        raise


def _write_id_maps(pid: int, linux: dict[str, Any]) -> None:
    for key, name in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        lines = "".join(
            f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux.get(key, [])
        )
        if not lines:
            continue
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(lines)
        except OSError as exc:
            raise InvalidArgument(f"config.json: linux.{key}: {exc.strerror}") from None


def _write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        wait_gone(pid)


def _destroy_cgroup(cg: Cgroup) -> None:
    try:
        cg.kill_all(9)
    except OSError:
        pass
    cg.destroy()


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Wait until PID is gone or a zombie (it need not be our child)."""
    import select

    from sampan.linux.syscalls import pidfd_open

    try:
        fd = pidfd_open(pid)
    except OSError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(int(timeout * 1000)))
    finally:
        os.close(fd)


# -- start ------------------------------------------------------------------------------


def start(root: str, cid: str) -> ContainerState:
    """Let the created container's init exec the user's program."""
    return start_state(ContainerState.load(root, cid))


def start_state(state: ContainerState) -> ContainerState:
    """``start`` for a state already in hand (``run`` has it from ``create``)."""
    cid = state.id
    status = state.status(frozen=False)
    if status != "created":
        raise Conflict(f"cannot start container {cid!r}: it is {status}, not created")
    from sampan import _json

    payload = _json.dumps(state.oci_state("running")).encode()
    try:
        fd = os.open(f"{state.dir}/exec.fifo", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise Conflict(f"cannot start container {cid!r}: its init is gone ({exc.strerror})")
    try:
        os.set_blocking(fd, True)
        os.write(fd, len(payload).to_bytes(4, "little") + payload)
    finally:
        os.close(fd)
    state.started = True
    state.save()
    try:
        os.unlink(f"{state.dir}/exec.fifo")
    except FileNotFoundError:
        pass
    _run_hooks_warning("poststart", state, "running")
    return state


def _run_hooks_warning(kind: str, state: ContainerState, status: str) -> None:
    """poststart and poststop hooks: each failure is a warning, and the rest still run (spec)."""
    hooks = state.config.get("hooks", {}).get(kind, [])
    if not hooks:
        return
    from sampan.runtime.hooks import run_all_hooks
    from sampan.runtime.log import warn

    for failure in run_all_hooks(kind, hooks, state.oci_state(status)):
        warn(failure)


# -- kill and delete ----------------------------------------------------------------------


def kill(root: str, cid: str, sig: int, all_processes: bool = False) -> None:
    state = ContainerState.load(root, cid)
    if state.status(frozen=False) == "stopped":
        raise Conflict(f"container {cid!r} is not running")
    if all_processes:
        cgroup_glue.container_cgroup(state).kill_all(sig)
        return
    try:
        os.kill(state.pid, sig)
    except ProcessLookupError:
        raise Conflict(f"container {cid!r} is not running") from None


def delete(root: str, cid: str, force: bool = False) -> None:
    """Remove a stopped container (or, with FORCE, kill it first); run poststop hooks."""
    try:
        state = ContainerState.load(root, cid)
    except NotFound:
        _remove_aborted(root, cid)
        if force:
            return
        raise
    delete_state(state, force)


def _remove_aborted(root: str, cid: str) -> None:
    """Remove ROOT/ID of a create killed before it wrote state.json (as runc's delete does).

    Otherwise the id stays taken: podman re-creates a container under the same
    id on ``start``.  A create still at work holds exec.fifo open for reading,
    so opening it for writing succeeds then, and the directory is left alone.
    """
    path = f"{root}/{cid}"
    if not os.path.isdir(path):
        return
    try:
        os.close(os.open(f"{path}/exec.fifo", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        return
    except OSError as exc:
        if exc.errno not in (2, 6):  # ENOENT, ENXIO (no reader): nobody is creating it
            return
    try:
        with open(f"{path}/cgroup") as f:
            cgroups_path = f.read()
    except FileNotFoundError:
        cgroups_path = None
    if cgroups_path is not None:
        config = {"linux": {"cgroupsPath": cgroups_path}} if cgroups_path else {}
        _destroy_cgroup(cgroup_glue.open_for(config, cid))
    try:
        ContainerState(root, cid, {"bundle": ""}).remove()
    except OSError:
        pass


def delete_state(state: ContainerState, force: bool = False) -> None:
    """``delete`` for a state already in hand."""
    cid = state.id
    status = state.status()
    cg = cgroup_glue.container_cgroup(state)
    if status in ("running", "paused"):
        if not force:
            raise Conflict(f"cannot delete container {cid!r} that is not stopped: {status}")
        if status == "paused":
            cg.thaw()
    if status != "stopped":
        try:
            cg.kill_all(9)
        except OSError:
            pass
        try:
            os.kill(state.pid, 9)
        except ProcessLookupError:
            pass
        wait_gone(state.pid)
    elif not _namespace_owned(state):
        # Without a pid namespace, descendants outlive init: stop them too.
        try:
            cg.kill_all(9)
        except OSError:
            pass
    cg.destroy()
    if not any(ns["type"] == "mount" for ns in state.config.get("linux", {}).get("namespaces", [])):
        from sampan.runtime.rootfs import detach_ours

        detach_ours(state.rootfs, state.mount_below)
    state.remove()
    _run_hooks_warning("poststop", state, "stopped")


def _namespace_owned(state: ContainerState) -> bool:
    namespaces = state.config.get("linux", {}).get("namespaces", [])
    return any(ns["type"] == "pid" and not ns.get("path") for ns in namespaces)
