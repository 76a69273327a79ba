"""``sampan-runtime``: an OCI runtime with runc's command line.

    sampan-runtime [global flags] COMMAND [flags] ID [args]

Each command imports only what it needs: ``state`` does not load the
mount code, ``create`` does not load ``ps``.  Errors print one line to
stderr (and to ``--log``) and exit 1.
"""

from __future__ import annotations

import os
import sys

from sampan.cli.args import Flag, parse, usage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

DEFAULT_ROOT = "/run/sampan-runtime"

GLOBAL_FLAGS = [
    Flag("--root", "str", "root directory for container state", DEFAULT_ROOT),
    Flag("--log", "str", "log file (default: stderr only)"),
    Flag("--log-format", "str", "log format: text or json", "text"),
    Flag("--debug", "bool", "log debug output"),
    Flag("--systemd-cgroup", "bool", "use systemd cgroups (not supported)"),
    Flag("--rootless", "str", "rootless mode: true, false or auto", "auto"),
    Flag("--criu", "str", "path to criu (checkpointing is not supported)"),
    Flag("--version,-v", "bool", "print the version"),
    Flag("--help,-h", "bool", "show help"),
]

CREATE_FLAGS = [
    Flag("--bundle,-b", "str", "path to the bundle (default: current directory)"),
    Flag("--console-socket", "str", "unix socket to send the pty master to"),
    Flag("--pid-file", "str", "file to write the container's pid to"),
    Flag("--no-pivot", "bool", "use MS_MOVE + chroot instead of pivot_root"),
    Flag("--no-new-keyring", "bool", "keep the caller's session keyring"),
    Flag("--preserve-fds", "int", "pass N extra fds (3..3+N-1) to the container", 0),
]


class Usage(Exception):
    """Wrong command-line usage: exit 1 with the message (runc's convention)."""


def _one_id(args: list[str], command: str) -> str:
    if len(args) != 1:
        raise Usage(f'"{command}" requires exactly 1 argument (the container id)')
    return args[0]


def cmd_spec(root: str, argv: list[str]) -> int:
    opts, _args = parse([Flag("--bundle,-b", "str"), Flag("--rootless", "bool")], argv)
    from sampan import _json
    from sampan.oci.runtime_config import default_spec

    path = os.path.join(opts["bundle"] or ".", "config.json")
    if os.path.exists(path):
        raise Usage(f"file {path} exists: remove it first")
    with open(path, "w") as f:
        f.write(_json.dumps(default_spec(bool(opts["rootless"])), indent=2) + "\n")
    return 0


def _preserve_fds(opts: dict[str, Any]) -> int:
    if opts["preserve_fds"] < 0:
        raise Usage(f"--preserve-fds {opts['preserve_fds']}: must not be negative")
    return int(opts["preserve_fds"])


def _create_options(opts: dict[str, Any]) -> Any:
    from sampan.runtime.lifecycle import CreateOptions

    return CreateOptions(
        pid_file=opts["pid_file"],
        console_socket=opts["console_socket"],
        no_pivot=bool(opts["no_pivot"]),
        no_new_keyring=bool(opts["no_new_keyring"]),
        preserve_fds=_preserve_fds(opts),
    )


def cmd_create(root: str, argv: list[str]) -> int:
    opts, args = parse(CREATE_FLAGS, argv)
    cid = _one_id(args, "create")
    from sampan.runtime import prewarm

    prewarm.start()
    from sampan.runtime.lifecycle import create

    create(root, cid, opts["bundle"] or os.getcwd(), _create_options(opts))
    return 0


def cmd_run(root: str, argv: list[str]) -> int:
    flags = [*CREATE_FLAGS, Flag("--detach,-d", "bool", "detach from the container"),
             Flag("--keep", "bool", "do not delete the container after it exits")]  # fmt: skip
    opts, args = parse(flags, argv)
    cid = _one_id(args, "run")
    from sampan.runtime import prewarm

    prewarm.start()
    from sampan.runtime.run import run

    bundle = opts["bundle"] or os.getcwd()
    return run(root, cid, bundle, _create_options(opts), bool(opts["detach"]), bool(opts["keep"]))


def cmd_start(root: str, argv: list[str]) -> int:
    _, args = parse([], argv)
    from sampan.runtime.lifecycle import start

    start(root, _one_id(args, "start"))
    return 0


def cmd_state(root: str, argv: list[str]) -> int:
    _, args = parse([], argv)
    from sampan import _json
    from sampan.runtime.state import ContainerState

    state = ContainerState.load(root, _one_id(args, "state"))
    sys.stdout.write(_json.dumps(state.oci_state(), indent=2) + "\n")
    return 0


def cmd_kill(root: str, argv: list[str]) -> int:
    opts, args = parse([Flag("--all,-a", "bool", "signal every process of the container")], argv)
    if len(args) not in (1, 2):
        raise Usage('"kill" requires the container id and an optional signal')
    from sampan.linux.constants import parse_signal
    from sampan.runtime.lifecycle import kill

    try:
        sig = parse_signal(args[1]) if len(args) == 2 else 15
    except ValueError as exc:
        raise Usage(str(exc)) from None
    kill(root, args[0], sig, bool(opts["all"]))
    return 0


def cmd_delete(root: str, argv: list[str]) -> int:
    opts, args = parse([Flag("--force,-f", "bool", "kill the container first if it runs")], argv)
    from sampan.runtime.lifecycle import delete

    delete(root, _one_id(args, "delete"), bool(opts["force"]))
    return 0


def cmd_list(root: str, argv: list[str]) -> int:
    opts, _args = parse([Flag("--format,-f", "str", "table or json", "table"),
                        Flag("--quiet,-q", "bool", "print ids only")], argv)  # fmt: skip
    from sampan.runtime.query import list_containers

    sys.stdout.write(list_containers(root, opts["format"], bool(opts["quiet"])))
    return 0


def cmd_ps(root: str, argv: list[str]) -> int:
    opts, args = parse([Flag("--format,-f", "str", "table or json", "table")], argv)
    if not args:
        raise Usage('"ps" requires the container id')
    from sampan.runtime.query import ps

    sys.stdout.write(ps(root, args[0], opts["format"], args[1:]))
    return 0


def cmd_pause(root: str, argv: list[str]) -> int:
    _, args = parse([], argv)
    from sampan.runtime.query import pause

    pause(root, _one_id(args, "pause"))
    return 0


def cmd_resume(root: str, argv: list[str]) -> int:
    _, args = parse([], argv)
    from sampan.runtime.query import resume

    resume(root, _one_id(args, "resume"))
    return 0


UPDATE_FLAGS = [
    Flag("--resources,-r", "str", "OCI linux.resources JSON file, or - for stdin"),
    Flag("--memory", "str", "memory limit (bytes, or with k/m/g)"),
    Flag("--memory-reservation", "str", "memory soft limit"),
    Flag("--memory-swap", "str", "memory plus swap limit (-1: unlimited)"),
    Flag("--cpu-shares", "int", "relative cpu weight"),
    Flag("--cpu-quota", "int", "cpu CFS quota (microseconds per period)"),
    Flag("--cpu-period", "int", "cpu CFS period (microseconds)"),
    Flag("--cpuset-cpus", "str", "cpus to run on (e.g. 0-1)"),
    Flag("--cpuset-mems", "str", "memory nodes to use"),
    Flag("--pids-limit", "int", "maximum number of processes"),
    Flag("--blkio-weight", "int", "block io weight (10-1000)"),
]


def cmd_update(root: str, argv: list[str]) -> int:
    opts, args = parse(UPDATE_FLAGS, argv)
    from sampan.runtime.query import update

    update(root, _one_id(args, "update"), opts)
    return 0


def cmd_events(root: str, argv: list[str]) -> int:
    opts, args = parse([Flag("--stats", "bool", "print one stats event and exit"),
                        Flag("--interval", "str", "stats interval", "5s")], argv)  # fmt: skip
    from sampan.runtime.query import events

    return events(root, _one_id(args, "events"), bool(opts["stats"]), opts["interval"])


EXEC_FLAGS = [
    Flag("--process,-p", "str", "JSON file with the OCI process to run"),
    Flag("--detach,-d", "bool", "detach from the process"),
    Flag("--tty,-t", "bool", "allocate a pseudo-terminal"),
    Flag("--console-socket", "str", "unix socket to send the pty master to"),
    Flag("--pid-file", "str", "file to write the process's pid to"),
    Flag("--cwd", "str", "working directory in the container"),
    Flag("--env,-e", "list", "set an environment variable (NAME=VALUE)"),
    Flag("--user,-u", "str", "UID[:GID] to run as"),
    Flag("--additional-gids,-g", "list", "additional group ids"),
    Flag("--cap,-c", "list", "add a capability"),
    Flag("--no-new-privs", "bool", "set no_new_privs"),
    Flag("--preserve-fds", "int", "pass N extra fds", 0),
    Flag("--process-label", "str", "SELinux label (not supported)"),
    Flag("--apparmor", "str", "AppArmor profile (not supported)"),
]


def cmd_exec(root: str, argv: list[str]) -> int:
    opts, args = parse(EXEC_FLAGS, argv)
    if not args:
        raise Usage('"exec" requires the container id')
    _preserve_fds(opts)
    from sampan.runtime import prewarm

    prewarm.start()
    from sampan.runtime.exec import exec_process

    return exec_process(root, args[0], args[1:], opts)


def cmd_features(root: str, argv: list[str]) -> int:
    from sampan import _json
    from sampan.runtime.query import features

    sys.stdout.write(_json.dumps(features(), indent=2) + "\n")
    return 0


COMMANDS: dict[str, tuple[Callable[[str, list[str]], int], str]] = {
    "spec": (cmd_spec, "write a default config.json"),
    "create": (cmd_create, "create a container"),
    "start": (cmd_start, "run the created container's process"),
    "run": (cmd_run, "create and start a container, wait for it, delete it"),
    "state": (cmd_state, "print a container's state as JSON"),
    "kill": (cmd_kill, "send a signal to the container's init"),
    "delete": (cmd_delete, "delete a container"),
    "list": (cmd_list, "list containers"),
    "ps": (cmd_ps, "list the processes of a container"),
    "exec": (cmd_exec, "run a new process in a container"),
    "pause": (cmd_pause, "freeze every process of a container"),
    "resume": (cmd_resume, "thaw a paused container"),
    "update": (cmd_update, "change a container's resource limits"),
    "events": (cmd_events, "print a container's stats and events"),
    "features": (cmd_features, "print what this runtime supports"),
}


def _help() -> str:
    cmds = "\n".join(f"   {name:<10}{text}" for name, (_, text) in COMMANDS.items())
    return (
        "usage: sampan-runtime [global options] command [command options] [arguments...]\n\n"
        f"commands:\n{cmds}\n\nglobal options:\n{usage(GLOBAL_FLAGS)}\n"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from sampan.errors import SampanError, describe
    from sampan.runtime import log

    try:
        opts, rest = parse(GLOBAL_FLAGS, argv)
        log.configure(opts["log"], opts["log_format"])
        if opts["version"]:
            from sampan import __version__
            from sampan.oci.runtime_config import OCI_VERSION

            sys.stdout.write(f"sampan-runtime version {__version__}\nspec: {OCI_VERSION}\n")
            return 0
        if opts["help"] or not rest:
            sys.stdout.write(_help())
            return 0 if opts["help"] else 1
        if opts["systemd_cgroup"]:
            raise Usage("--systemd-cgroup is not supported: use cgroupfs paths")
        if opts["rootless"] not in ("auto", "true", "false"):
            raise Usage(f"--rootless {opts['rootless']!r}: want true, false or auto")
        if opts["rootless"] == "true" or (opts["rootless"] == "auto" and os.geteuid() != 0):
            raise Usage("rootless mode is not supported yet: run sampan-runtime as root")
        if opts["criu"]:
            raise Usage("--criu: checkpoint and restore are not supported")
        if opts["debug"]:
            log.enable_debug()
        command, *args = rest
        entry = COMMANDS.get(command)
        if entry is None:
            raise Usage(f"no such command: {command}")
        log.debug(f"{command} {' '.join(args)} (root {opts['root']})")
        if "-h" in args[:1] or "--help" in args[:1]:
            sys.stdout.write(f"sampan-runtime {command}: {entry[1]}\n")
            return 0
        return entry[0](opts["root"], args)
    except (SampanError, Usage, OSError) as exc:
        log.error(describe(exc))
        return 1
    except KeyboardInterrupt:
        return 130
