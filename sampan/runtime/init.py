"""The child side of ``create``: from a fork of the runtime to the user's program.

    runtime (parent)            stage 1 (fork)                 init (fork of stage 1)
    ----------------            --------------                 ----------------------
    fifo made; fork        ->   dumpable=0, setns (paths),
    cgroup made, stage 1        unshare (new namespaces)
    moved into it
    write uid/gid maps     <->  "idmap" (new user ns only)
                                fork -------------------------> (pid 1 of a new pid ns)
    learns init's pid      <-   "pid"; exit                    rootfs: mounts, devices
    prestart/createRuntime <->                                 "hooks"; createContainer hooks
                                                               pivot_root, sysctl, console,
                                                               masked/readonly paths
    forward pty master     <-                                  "console" + fd
    state.json, pid file   <-                                  "ready"
    create exits           ->                                  "go"; block on exec.fifo
    (start writes the state into exec.fifo)                    startContainer hooks; execve

The parent makes the cgroup and moves stage 1 into it while stage 1 and
init work on namespaces and mounts: on cgroup v1 the first write to
cgroup.procs waits for an RCU grace period (~10 ms here), and the two run
in parallel.  Should stage 1 fork init before it was moved, the parent
moves init too when it learns its pid.  Init cannot exec before the parent
says "go", which comes after both.  Only with a new cgroup namespace are
the cgroup made first and joined by stage 1 itself (the namespace is rooted
at the cgroup its creator is in).

Every failure in a child is sent to the parent as an ``error`` message
(the parent then removes what it made) and the child exits.
"""

from __future__ import annotations

import os

from sampan.errors import describe
from sampan.linux.constants import MS_BIND
from sampan.linux.syscalls import (
    join_session_keyring,
    mount,
    personality,
    set_dumpable,
    setdomainname,
    sethostname,
    unshare,
)
from sampan.runtime import namespaces
from sampan.runtime.process import (
    apply_oom_score_adj,
    apply_rlimits,
    enter_cwd,
    environment,
    finalize_and_exec,
    lookup_executable,
)
from sampan.runtime.rootfs import RootfsBuilder

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from sampan.cgroups import Cgroup
    from sampan.runtime.sync import Channel


class InitContext:
    """Everything the children of ``create`` need, decided by the parent."""

    __slots__ = (
        "bundle",
        "cgroup",
        "chan",
        "config",
        "fifo_fd",
        "keyring",
        "no_pivot",
        "plan",
        "preserve_fds",
        "rootfs",
        "seccomp",
    )  # fmt: skip

    def __init__(
        self,
        config: dict[str, Any],
        bundle: str,
        rootfs: str,
        plan: namespaces.NamespacePlan,
        cgroup: Cgroup | None,
        chan: Channel,
        fifo_fd: int,
        seccomp: tuple[bytes, int] | None,
        no_pivot: bool,
        preserve_fds: int,
        keyring: str | None,
    ) -> None:
        self.config = config
        self.bundle = bundle
        self.rootfs = rootfs
        self.plan = plan
        self.cgroup = cgroup
        self.chan = chan
        self.fifo_fd = fifo_fd
        self.seccomp = seccomp
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        self.keyring = keyring


PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}  # PER_LINUX, PER_LINUX32


def preload(config: dict[str, Any], process: dict[str, Any]) -> None:
    """Import, before forking, the optional modules the children will need.

    Once a child has pivoted into the container's root (or setns'd into its
    mount namespace) Python cannot find module files any more; a module
    already in sys.modules still imports.  Only what this container uses is
    loaded, to keep the common start fast.
    """
    wanted = []
    if process.get("terminal"):
        wanted += ["fcntl", "termios"]
    if any(config.get("hooks", {}).values()):
        wanted.append("sampan.runtime.hooks")
    if process.get("rlimits"):
        wanted.append("resource")
    if config.get("linux", {}).get("seccomp"):
        wanted.append("sampan.linux.seccomp")
    for name in wanted:
        __import__(name)


def stage1(ctx: InitContext) -> NoReturn:
    """Enter the namespaces, then fork the container's init (or become it)."""
    try:
        plan = ctx.plan
        if ctx.cgroup is not None:
            # Only with a new cgroup namespace (rooted where we stand when it is
            # made) does stage 1 join its cgroup itself.
            ctx.cgroup.add_process(os.getpid())
        set_dumpable(False)
        namespaces.enter(plan.join)
        if plan.new_flags:
            unshare(plan.new_flags)
        if ctx.keyring:
            join_session_keyring(ctx.keyring)
        if plan.new_user:
            ctx.chan.send("idmap")
            ctx.chan.expect("ack")
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        if "pid" not in plan.kinds:
            ctx.chan.send("pid", pid=os.getpid())
            container_init(ctx)
        gate_r, gate_w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(gate_w)
            if os.read(gate_r, 1) != b"1":  # wait until the parent knows our pid
                os._exit(1)  # stage 1 died first
            os.close(gate_r)
            container_init(ctx)
        ctx.chan.send("pid", pid=child)
        os.write(gate_w, b"1")
    except BaseException as exc:
        _report(ctx, exc)
        os._exit(1)
    os._exit(0)


def reexec_sealed(ctx: InitContext, cid: str) -> NoReturn:
    """Stage 1 from a sealed copy of the interpreter (see sampan.runtime.sealed)."""
    from sampan.runtime import sealed

    args = {
        "cid": cid,
        "config": ctx.config,
        "bundle": ctx.bundle,
        "rootfs": ctx.rootfs,
        "joined_cgroup": ctx.cgroup is not None,
        "chan": ctx.chan.fileno(),
        "fifo": ctx.fifo_fd,
        "seccomp": sealed.pack_seccomp(ctx.seccomp),
        "no_pivot": ctx.no_pivot,
        "preserve_fds": ctx.preserve_fds,
        "keyring": ctx.keyring,
    }
    keep = [ctx.chan.fileno(), ctx.fifo_fd, *range(3, 3 + ctx.preserve_fds)]
    try:
        sealed.reexec(__name__, "sealed_stage1", args, keep)
    except BaseException as exc:
        _report(ctx, exc)
        os._exit(1)


def sealed_stage1(args: dict[str, Any]) -> NoReturn:
    """The re-exec'd stage 1: rebuild the context ``create`` made, then run ``stage1``."""
    import _socket

    from sampan.runtime.sealed import unpack_seccomp
    from sampan.runtime.sync import Channel

    chan = Channel(_socket.socket(fileno=args["chan"]))
    try:
        # Inheritable only to cross the re-exec: hooks and the program must not get them.
        os.set_inheritable(args["chan"], False)
        os.set_inheritable(args["fifo"], False)
        config = args["config"]
        seccomp = unpack_seccomp(args["seccomp"])
        cgroup = None
        if args["joined_cgroup"]:
            from sampan.runtime.cgroup import open_for

            cgroup = open_for(config, args["cid"])
        preload(config, config["process"])
        plan = namespaces.NamespacePlan(config.get("linux", {}).get("namespaces", []))
        ctx = InitContext(config, args["bundle"], args["rootfs"], plan, cgroup, chan,
                          args["fifo"], seccomp, args["no_pivot"], args["preserve_fds"],
                          args["keyring"])  # fmt: skip
    except BaseException as exc:
        chan.send("error", msg=describe(exc))
        os._exit(1)
    stage1(ctx)


def container_init(ctx: InitContext) -> NoReturn:
    """Build the container around this process, wait for ``start``, exec."""
    chan = ctx.chan
    config = ctx.config
    process: dict[str, Any] = config["process"]
    try:
        own_mount_ns = "mount" in ctx.plan.kinds
        builder = RootfsBuilder(config, ctx.bundle, ctx.rootfs, ctx.plan.in_userns, own_mount_ns)
        if not ctx.plan.new_cgroup:
            builder.before_cgroup_mount = lambda: _in_cgroup(chan)
        builder.prepare()
        if config.get("hostname") is not None and "uts" in ctx.plan.kinds:
            sethostname(config["hostname"])
        if config.get("domainname") is not None and "uts" in ctx.plan.kinds:
            setdomainname(config["domainname"])
        all_hooks = config.get("hooks", {})
        state: dict[str, Any] = {}
        if all_hooks.get("prestart") or all_hooks.get("createRuntime"):
            chan.send("hooks")
            state = chan.expect("ack")["state"]
        if all_hooks.get("createContainer"):
            if not state:
                chan.send("hooks")
                state = chan.expect("ack")["state"]
            # Hooks run in the container's namespaces see the pid as seen there (runc too).
            inside = {**state, "pid": os.getpid()}
            from sampan.runtime.hooks import run_hooks

            run_hooks("createContainer", all_hooks["createContainer"], inside)
        builder.pivot(ctx.no_pivot)
        _sysctl(config.get("linux", {}).get("sysctl", {}))
        _make_cwd(process.get("cwd", "/"))
        if process.get("terminal"):
            setup_console(chan, process, own_mount_ns)
        builder.finish()
        apply_rlimits(process)
        apply_oom_score_adj(process)
        persona = config.get("linux", {}).get("personality")
        if persona:
            personality(PERSONALITIES[persona["domain"]])
        env = environment(process)
        enter_cwd(process.get("cwd", "/"))  # checked now, so create fails; again after setuid
        path = lookup_executable(process["args"][0], env, process.get("cwd", "/"))
        chan.send("ready")
        chan.expect("go")
        chan.close()
    except BaseException as exc:
        _report(ctx, exc)
        os._exit(1)
    try:
        state = _wait_for_start(ctx.fifo_fd)
        if all_hooks.get("startContainer"):  # before the program runs: still "created"
            inside = {**state, "status": "created", "pid": os.getpid()}
            from sampan.runtime.hooks import run_hooks

            run_hooks("startContainer", all_hooks["startContainer"], inside)
        finalize_and_exec(process, path, env, ctx.seccomp, ctx.preserve_fds, ctx.plan.in_userns)
    except BaseException as exc:
        os.write(2, f"sampan-runtime init: {exc}\n".encode(errors="replace"))
        os._exit(127)


def _make_cwd(cwd: str) -> None:
    """Create a missing process.cwd, as runc does (before the root is made read-only)."""
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, f"process.cwd {cwd}: {exc.strerror}") from None


def _in_cgroup(chan: Channel) -> None:
    """Return once the parent has moved us into the container's cgroup."""
    chan.send("cgroup")
    chan.expect("ack")


def _wait_for_start(fifo_fd: int) -> dict[str, Any]:
    """Block until ``start`` writes [4-byte length][state JSON] into exec.fifo."""
    from sampan import _json

    head = _read_exact(fifo_fd, 4)
    body = _read_exact(fifo_fd, int.from_bytes(head, "little"))
    os.close(fifo_fd)
    return _json.loads(body)  # type: ignore[no-any-return]


def _read_exact(fd: int, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError("exec.fifo closed before start")
        buf += chunk
    return buf


def _sysctl(sysctl: dict[str, str]) -> None:
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as exc:
            raise OSError(exc.errno, f"linux.sysctl.{key}: {exc.strerror}") from None


def setup_console(chan: Channel, process: dict[str, Any], own_dev: bool) -> None:
    """Make a pty in the container's devpts; hand the master to the parent; become its slave."""
    import fcntl  # preloaded (see preload)
    import termios

    master, slave = os.openpty()
    size = process.get("consoleSize")
    if size:
        winsize = size["height"].to_bytes(2, "little") + size["width"].to_bytes(2, "little")
        fcntl.ioctl(slave, termios.TIOCSWINSZ, winsize + bytes(4))
    if own_dev:
        console = "/dev/console"
        if not os.path.lexists(console):
            os.close(os.open(console, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        mount(os.ttyname(slave), console, None, MS_BIND)
    chan.send("console", fds=[master])
    chan.expect("ack")
    os.close(master)
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def _report(ctx: InitContext, exc: BaseException) -> None:
    """Tell the parent why we fail; if it is gone, it failed first and reports its own error."""
    try:
        ctx.chan.send("error", msg=describe(exc))
    except OSError:
        pass
