"""``exec``: run a new process inside a running container.

The runtime forks a child that joins the container's cgroup and
namespaces (those of its init, from /proc/PID/ns); that child forks the
process itself (a pid namespace applies to children only) and exits.  The
process then takes the same last steps as init (sampan.runtime.process)
and execs.  Its handshake with the runtime is init's, shortened:
``pid``, ``console``, ``ready``, then end-of-file when execve succeeds.
"""

from __future__ import annotations

import os

from sampan.errors import Conflict, InvalidArgument, describe
from sampan.linux.syscalls import set_child_subreaper, set_dumpable
from sampan.runtime import cgroup as cgroup_glue
from sampan.runtime import namespaces, sealed
from sampan.runtime.init import preload, setup_console
from sampan.runtime.process import (
    apply_oom_score_adj,
    apply_rlimits,
    enter_cwd,
    environment,
    finalize_and_exec,
    lookup_executable,
)
from sampan.runtime.state import ContainerState
from sampan.runtime.sync import Channel, ChildFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from sampan.cgroups import Cgroup


def build_process(state: ContainerState, args: list[str], opts: dict[str, Any]) -> dict[str, Any]:
    """The process to run: ``--process FILE``, or the container's own with the flags applied."""
    from sampan.oci.runtime_config import validate_process

    if opts["process"]:
        from sampan import _json

        try:
            with open(opts["process"], "rb") as f:
                process = _json.loads(f.read())
        except OSError as exc:
            raise InvalidArgument(f"--process {opts['process']}: {exc.strerror}") from None
        except ValueError as exc:
            raise InvalidArgument(f"--process {opts['process']}: malformed JSON: {exc}") from None
        validate_process(process, "process")
        return process  # type: ignore[no-any-return]
    if not args:
        raise InvalidArgument("exec needs a command, or --process FILE")
    base = state.config.get("process") or {}
    process = {k: v for k, v in base.items() if k not in ("args", "terminal", "consoleSize")}
    process["args"] = args
    process["terminal"] = bool(opts["tty"])
    process["env"] = [*base.get("env", []), *opts["env"]]
    if opts["cwd"]:
        process["cwd"] = opts["cwd"]
    user = dict(base.get("user", {}))
    if opts["user"]:
        uid, _, gid = opts["user"].partition(":")
        try:
            user = {"uid": int(uid), "gid": int(gid) if gid else 0}
        except ValueError:
            raise InvalidArgument(f"--user {opts['user']!r}: want UID[:GID] as numbers") from None
    if opts["additional_gids"]:
        try:
            user["additionalGids"] = [int(g) for g in opts["additional_gids"]]
        except ValueError:
            raise InvalidArgument("--additional-gids: want numbers") from None
    process["user"] = user
    if opts["cap"]:
        caps = {k: list(v) for k, v in (base.get("capabilities") or {}).items()}
        # Never inheritable (CVE-2022-29162); ambient only where the container's
        # process already has an inheritable set to raise it from, as runc does.
        kinds = ["bounding", "effective", "permitted"]
        if caps.get("inheritable"):
            kinds.append("ambient")
        for kind in kinds:
            have = caps.setdefault(kind, [])
            have.extend(c for c in opts["cap"] if c not in have)
        process["capabilities"] = caps
    if opts["no_new_privs"]:
        process["noNewPrivileges"] = True
    validate_process(process, "process")
    return process


def exec_process(root: str, cid: str, args: list[str], opts: dict[str, Any]) -> int:
    for flag in ("process_label", "apparmor"):
        if opts[flag]:
            raise InvalidArgument(f"--{flag.replace('_', '-')}: not supported on this host")
    state = ContainerState.load(root, cid)
    status = state.status()
    if status not in ("created", "running"):
        raise Conflict(f"cannot exec in a {status} container")
    process = build_process(state, args, opts)
    terminal = bool(process.get("terminal"))
    detach = bool(opts["detach"])
    if terminal and detach and not opts["console_socket"]:
        raise InvalidArgument("cannot allocate a tty without --console-socket when detached")
    from sampan.runtime.process import check_rlimits, check_security_labels

    check_rlimits(process)
    check_security_labels(process)
    linux = state.config.get("linux", {})
    seccomp = None
    if linux.get("seccomp"):
        from sampan.linux.seccomp import compile_program

        seccomp = compile_program(linux["seccomp"], cache_dir=f"{root}/.seccomp-cache")
    namespace_list = linux.get("namespaces", [])
    kinds = {ns["type"] for ns in namespace_list}
    join = namespaces.of_process(state.pid, kinds)
    cg = cgroup_glue.container_cgroup(state)
    if not detach:
        set_child_subreaper(True)
    preload(state.config, process)
    chan, child_end = Channel.pair()
    stage_pid = os.fork()
    if stage_pid == 0:
        chan.close()
        shared_pid_ns = any(ns["type"] == "pid" and ns.get("path") for ns in namespace_list)
        if shared_pid_ns or sealed.needed(state.config.get("process"), process):
            # Another container in a shared pid namespace may hold CAP_SYS_PTRACE too.
            _reexec_sealed(child_end, root, cid, process, join, seccomp, opts["preserve_fds"])
        root_of = 0 if "mount" in kinds else state.pid
        _stage1(child_end, cg, join, process, seccomp, opts["preserve_fds"], "user" in kinds,
                root_of)  # fmt: skip
    child_end.close()
    return _parent(chan, stage_pid, process, opts, detach)


def _parent(chan: Channel, stage_pid: int, process: dict[str, Any], opts: dict[str, Any],
            detach: bool) -> int:  # fmt: skip
    pid = 0
    console_fd: int | None = None
    try:
        while True:
            msg, fds = chan.recv()
            if msg is None:
                if pid == 0:
                    raise ChildFailed("exec: the process exited before it started")
                break  # end of file: execve succeeded
            if msg["t"] == "error":
                raise ChildFailed(msg.get("msg", "unknown error"))
            if msg["t"] == "pid":
                pid = msg["pid"]
                os.waitpid(stage_pid, 0)
                if opts["pid_file"]:
                    from sampan.runtime.lifecycle import _write_pid_file

                    _write_pid_file(opts["pid_file"], pid)
            elif msg["t"] == "console":
                if opts["console_socket"]:
                    from sampan.runtime.console import send_console

                    try:
                        send_console(opts["console_socket"], fds[0])
                    finally:
                        os.close(fds[0])
                else:
                    console_fd = fds[0]
                chan.send("ack")
    except BaseException:
        if pid:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        raise
    finally:
        chan.close()
    if detach:
        return 0
    from sampan.runtime.run import FORWARDED, _wait, forward_to

    forward_to(pid, FORWARDED)
    if console_fd is not None:
        from sampan.runtime.console import relay

        relay(console_fd)
        os.close(console_fd)
    del process
    return _wait(pid)


def _reexec_sealed(
    chan: Channel,
    root: str,
    cid: str,
    process: dict[str, Any],
    join: list[tuple[str, str]],
    seccomp: tuple[bytes, int] | None,
    preserve_fds: int,
) -> NoReturn:
    """Stage 1 from a sealed copy of the interpreter (see sampan.runtime.sealed)."""
    args = {
        "chan": chan.fileno(),
        "root": root,
        "id": cid,
        "process": process,
        "join": join,
        "seccomp": sealed.pack_seccomp(seccomp),
        "preserve_fds": preserve_fds,
    }
    try:
        sealed.reexec(__name__, "sealed_stage1", args, [chan.fileno(), *range(3, 3 + preserve_fds)])
    except BaseException as exc:
        chan.send("error", msg=describe(exc))
        os._exit(1)


def sealed_stage1(args: dict[str, Any]) -> NoReturn:
    """The re-exec'd stage 1: rebuild what ``exec_process`` had, then go on as ``_stage1``."""
    import _socket

    chan = Channel(_socket.socket(fileno=args["chan"]))
    try:
        os.set_inheritable(args["chan"], False)  # it was only to cross the re-exec
        state = ContainerState.load(args["root"], args["id"])
        process = args["process"]
        seccomp = sealed.unpack_seccomp(args["seccomp"])
        preload(state.config, process)
        cg = cgroup_glue.container_cgroup(state)
        kinds = {ns["type"] for ns in state.config.get("linux", {}).get("namespaces", [])}
        join = [(kind, path) for kind, path in args["join"]]
    except BaseException as exc:
        chan.send("error", msg=describe(exc))
        os._exit(1)
    root_of = 0 if "mount" in kinds else state.pid
    _stage1(chan, cg, join, process, seccomp, args["preserve_fds"], "user" in kinds, root_of)


def _stage1(
    chan: Channel,
    cg: Cgroup,
    join: list[tuple[str, str]],
    process: dict[str, Any],
    seccomp: tuple[bytes, int] | None,
    preserve_fds: int,
    in_userns: bool,
    root_of: int = 0,
) -> NoReturn:
    """Join the cgroup and namespaces; with ROOT_OF (init's pid, for a container without a
    mount namespace of its own), also init's root; fork the process to run."""
    try:
        cg.add_process(os.getpid())
        set_dumpable(False)
        root_fd = os.open(f"/proc/{root_of}/root", os.O_PATH | os.O_DIRECTORY) if root_of else -1
        namespaces.enter(join)
        if root_fd >= 0:
            os.fchdir(root_fd)
            os.chroot(".")
            os.close(root_fd)
        child = os.fork()
        if child == 0:
            _exec_child(chan, process, seccomp, preserve_fds, in_userns)
        chan.send("pid", pid=child)
    except BaseException as exc:
        chan.send("error", msg=describe(exc))
        os._exit(1)
    os._exit(0)


def _exec_child(
    chan: Channel,
    process: dict[str, Any],
    seccomp: tuple[bytes, int] | None,
    preserve_fds: int,
    in_userns: bool,
) -> NoReturn:
    try:
        if process.get("terminal"):
            setup_console(chan, process, own_dev=False)
        apply_rlimits(process)
        apply_oom_score_adj(process)
        env = environment(process)
        enter_cwd(process.get("cwd", "/"))
        path = lookup_executable(process["args"][0], env, process.get("cwd", "/"))
        finalize_and_exec(process, path, env, seccomp, preserve_fds, in_userns)
    except BaseException as exc:
        try:
            chan.send("error", msg=describe(exc))
        except OSError:
            pass
        os._exit(127)
