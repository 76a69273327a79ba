"""``sampan``: the docker-like command line.

    sampan [global flags] COMMAND [flags] [args]
    sampan image COMMAND ...      (``image ls`` = ``images``, ``image rm`` = ``rmi``, ...)

Commands are looked up in a table of module names and imported only when
run, so ``sampan images`` never loads the registry client or the tar code.
The commands are clients of ``sampan daemon`` at ``-H`` (``$SAMPAN_HOST``,
default unix:///run/sampan/sampan.sock); only ``image bootstrap`` works
directly on the store under ``--root`` (``$SAMPAN_ROOT``, default /var/lib/sampan).
Errors print ``Error: ...`` on one line to stderr and exit 1, as docker does.
"""

from __future__ import annotations

import os
import sys

from sampan.cli.args import Flag, parse, usage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sampan.image.store import ImageStore

DEFAULT_ROOT = "/var/lib/sampan"
DEFAULT_HOST = "unix:///run/sampan/sampan.sock"

GLOBAL_FLAGS = [
    Flag("--root", "str", "sampan's data directory ($SAMPAN_ROOT)"),
    Flag("--host,-H", "str", f"daemon socket to connect to ($SAMPAN_HOST, {DEFAULT_HOST})"),
    Flag("--config", "str", "location of client config files (default ~/.docker)"),
    Flag("--debug,-D", "bool", "enable debug output"),
    Flag("--version,-v", "bool", "print version information and quit"),
    Flag("--help,-h", "bool", "show help"),
]

# command -> (module, function, one-line help); "image X" maps to these too.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "images": ("sampan.cli.image", "cmd_images", "List images"),
    "inspect": ("sampan.cli.container", "cmd_inspect", "Return low-level information on objects"),
    "history": ("sampan.cli.image", "cmd_history", "Show the history of an image"),
    "build": ("sampan.cli.build", "cmd_build", "Build an image from a Dockerfile"),
    "tag": ("sampan.cli.image", "cmd_tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "rmi": ("sampan.cli.image", "cmd_rmi", "Remove one or more images"),
    "pull": ("sampan.cli.registry", "cmd_pull", "Download an image from a registry"),
    "push": ("sampan.cli.registry", "cmd_push", "Upload an image to a registry"),
    "login": ("sampan.cli.registry", "cmd_login", "Log in to a registry"),
    "logout": ("sampan.cli.registry", "cmd_logout", "Log out from a registry"),
    "save": ("sampan.cli.archive", "cmd_save", "Save one or more images to a tar archive"),
    "load": ("sampan.cli.archive", "cmd_load", "Load an image from a tar archive or STDIN"),
    "import": ("sampan.cli.archive", "cmd_import", "Import a rootfs tarball to create an image"),
    "run": ("sampan.cli.container", "cmd_run", "Create and run a new container from an image"),
    "create": ("sampan.cli.container", "cmd_create", "Create a new container"),
    "start": ("sampan.cli.container", "cmd_start", "Start one or more stopped containers"),
    "ps": ("sampan.cli.container", "cmd_ps", "List containers"),
    "logs": ("sampan.cli.container", "cmd_logs", "Fetch the logs of a container"),
    "stop": ("sampan.cli.container", "cmd_stop", "Stop one or more running containers"),
    "kill": ("sampan.cli.container", "cmd_kill", "Kill one or more running containers"),
    "rm": ("sampan.cli.container", "cmd_rm", "Remove one or more containers"),
    "wait": ("sampan.cli.container", "cmd_wait", "Block until containers stop, print exit codes"),
    "attach": ("sampan.cli.attach", "cmd_attach", "Attach to a running container's streams"),
    "exec": ("sampan.cli.exec", "cmd_exec", "Execute a command in a running container"),
    "restart": ("sampan.cli.lifecycle", "cmd_restart", "Restart one or more containers"),
    "rename": ("sampan.cli.lifecycle", "cmd_rename", "Rename a container"),
    "events": ("sampan.cli.lifecycle", "cmd_events", "Get real time events from the server"),
    "stats": ("sampan.cli.stats", "cmd_stats", "Display a live stream of resource usage"),
    "top": ("sampan.cli.container_ops", "cmd_top", "Display the running processes of a container"),
    "pause": ("sampan.cli.container_ops", "cmd_pause", "Pause all processes in containers"),
    "unpause": ("sampan.cli.container_ops", "cmd_unpause", "Unpause paused containers"),
    "update": ("sampan.cli.container_ops", "cmd_update", "Update configuration of containers"),
    "version": ("sampan.cli.system", "cmd_version", "Show the sampan version information"),
    "info": ("sampan.cli.system", "cmd_info", "Display system-wide information"),
    "completion": ("sampan.cli.completion", "cmd_completion", "Generate a shell completion script"),
    "daemon": ("sampan.cli.daemon", "cmd_daemon", "Run the sampan engine daemon"),
    "cp": ("sampan.cli.container_files", "cmd_cp", "Copy files between a container and here"),
    "diff": ("sampan.cli.container_files", "cmd_diff", "Inspect changes to a container's files"),
    "commit": ("sampan.cli.container_files", "cmd_commit", "Create an image from a container"),
    "export": ("sampan.cli.container_files", "cmd_export", "Export a container's filesystem"),
    "port": ("sampan.cli.container_files", "cmd_port", "List a container's port mappings"),
}

IMAGE_COMMANDS: dict[str, tuple[str, str, str]] = {
    "ls": COMMANDS["images"],
    "list": COMMANDS["images"],
    "inspect": ("sampan.cli.image", "cmd_inspect", "Display detailed information on images"),
    "history": COMMANDS["history"],
    "build": COMMANDS["build"],
    "tag": COMMANDS["tag"],
    "rm": COMMANDS["rmi"],
    "remove": COMMANDS["rmi"],
    "pull": COMMANDS["pull"],
    "push": COMMANDS["push"],
    "save": COMMANDS["save"],
    "load": COMMANDS["load"],
    "import": COMMANDS["import"],
    "prune": ("sampan.cli.image", "cmd_image_prune", "Remove unused images"),
    "bootstrap": ("sampan.cli.image", "cmd_bootstrap", "Build a base image offline"),
}

SYSTEM_COMMANDS: dict[str, tuple[str, str, str]] = {
    "df": ("sampan.cli.system", "cmd_system_df", "Show sampan disk usage"),
    "info": COMMANDS["info"],
    "events": COMMANDS["events"],
}

CONTAINER_COMMANDS: dict[str, tuple[str, str, str]] = {
    "ls": COMMANDS["ps"],
    "list": COMMANDS["ps"],
    "ps": COMMANDS["ps"],
    "run": COMMANDS["run"],
    "create": COMMANDS["create"],
    "start": COMMANDS["start"],
    "logs": COMMANDS["logs"],
    "stop": COMMANDS["stop"],
    "kill": COMMANDS["kill"],
    "rm": COMMANDS["rm"],
    "remove": COMMANDS["rm"],
    "wait": COMMANDS["wait"],
    "attach": COMMANDS["attach"],
    "exec": COMMANDS["exec"],
    "restart": COMMANDS["restart"],
    "rename": COMMANDS["rename"],
    "prune": ("sampan.cli.lifecycle", "cmd_container_prune", "Remove all stopped containers"),
    "stats": COMMANDS["stats"],
    "top": COMMANDS["top"],
    "pause": COMMANDS["pause"],
    "unpause": COMMANDS["unpause"],
    "update": COMMANDS["update"],
    "inspect": ("sampan.cli.container", "cmd_container_inspect", "Inspect containers"),
    "cp": COMMANDS["cp"],
    "diff": COMMANDS["diff"],
    "commit": COMMANDS["commit"],
    "export": COMMANDS["export"],
    "port": COMMANDS["port"],
}

VOLUME_COMMANDS: dict[str, tuple[str, str, str]] = {
    "create": ("sampan.cli.volume", "cmd_volume_create", "Create a volume"),
    "ls": ("sampan.cli.volume", "cmd_volume_ls", "List volumes"),
    "list": ("sampan.cli.volume", "cmd_volume_ls", "List volumes"),
    "inspect": ("sampan.cli.volume", "cmd_volume_inspect", "Display detailed volume information"),
    "rm": ("sampan.cli.volume", "cmd_volume_rm", "Remove one or more volumes"),
    "remove": ("sampan.cli.volume", "cmd_volume_rm", "Remove one or more volumes"),
    "prune": ("sampan.cli.volume", "cmd_volume_prune", "Remove unused local volumes"),
}

_NET = "sampan.cli.network"
NETWORK_COMMANDS: dict[str, tuple[str, str, str]] = {
    "create": (_NET, "cmd_network_create", "Create a network"),
    "ls": (_NET, "cmd_network_ls", "List networks"),
    "list": (_NET, "cmd_network_ls", "List networks"),
    "inspect": (_NET, "cmd_network_inspect", "Display detailed information on networks"),
    "rm": (_NET, "cmd_network_rm", "Remove one or more networks"),
    "remove": (_NET, "cmd_network_rm", "Remove one or more networks"),
    "prune": (_NET, "cmd_network_prune", "Remove all unused networks"),
    "connect": (_NET, "cmd_network_connect", "Connect a container to a network"),
    "disconnect": (_NET, "cmd_network_disconnect", "Disconnect a container from a network"),
}

BUILDER_COMMANDS: dict[str, tuple[str, str, str]] = {
    "prune": ("sampan.cli.build", "cmd_builder_prune", "Remove build cache"),
}

GROUPS = {"image": IMAGE_COMMANDS, "container": CONTAINER_COMMANDS, "system": SYSTEM_COMMANDS,
          "volume": VOLUME_COMMANDS, "network": NETWORK_COMMANDS,
          "builder": BUILDER_COMMANDS}  # fmt: skip


class Usage(Exception):
    """Wrong usage: ``Error: ...`` and a pointer to --help, exit 1."""


class Context:
    """What every command gets: the global options and a lazily opened store."""

    def __init__(
        self, root: str, config_dir: str | None, debug: bool, host: str = DEFAULT_HOST
    ) -> None:
        self.root = root
        self.host = host
        self.config_dir = config_dir
        self.debug = debug
        self._store: ImageStore | None = None

    @property
    def store(self) -> ImageStore:
        if self._store is None:
            from sampan.image.store import ImageStore

            self._store = ImageStore(os.path.join(self.root, "image"))
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def cmd_version(ctx: Context, argv: list[str]) -> int:
    from sampan import __version__

    print(f"sampan version {__version__}")
    return 0


def _help() -> str:
    lines = ["Usage:  sampan [OPTIONS] COMMAND", "", "Commands:"]
    lines += [f"  {name:<10}{spec[2]}" for name, spec in COMMANDS.items()]
    lines += ["", "Management Commands:"]
    lines += ["  builder   Manage builds", "  container Manage containers",
              "  image     Manage images", "  network   Manage networks"]  # fmt: skip
    lines += ["  system    Manage sampan", "  volume    Manage volumes", "", "Global Options:"]
    lines.append(usage(GLOBAL_FLAGS))
    return "\n".join(lines)


def _group_help(group: str, table: dict[str, tuple[str, str, str]]) -> str:
    lines = [f"Usage:  sampan {group} COMMAND", "", "Commands:"]
    width = max(10, max(len(name) for name in table) + 1)  # "disconnect" needs a space
    lines += [f"  {name:<{width}}{spec[2]}" for name, spec in table.items()]
    return "\n".join(lines)


def _lookup(args: list[str]) -> tuple[tuple[str, str, str], str, list[str]]:
    name, rest = args[0], args[1:]
    table = GROUPS.get(name)
    if table is not None:
        if not rest or rest[0] in ("--help", "-h"):
            print(_group_help(name, table))
            raise SystemExit(0)
        sub = rest[0]
        if sub not in table:
            raise Usage(f'unknown command "{sub}" for "sampan {name}"')
        return table[sub], f"{name} {sub}", rest[1:]
    if name not in COMMANDS:
        raise Usage(f'unknown command "{name}" for "sampan"')
    return COMMANDS[name], name, rest


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from sampan.errors import SampanError, describe

    try:
        opts, args = parse(GLOBAL_FLAGS, argv)
        if opts["version"]:
            return cmd_version(Context("", None, False), [])
        if opts["help"] or not args:
            print(_help())
            return 0
        (module_name, function, description), command, rest = _lookup(args)
    except (SampanError, Usage) as exc:
        print(f"Error: {describe(exc)}\nSee 'sampan --help'.", file=sys.stderr)
        return 1
    root = opts["root"] or os.environ.get("SAMPAN_ROOT") or DEFAULT_ROOT
    host = opts["host"] or os.environ.get("SAMPAN_HOST") or DEFAULT_HOST
    ctx = Context(root, opts["config"], bool(opts["debug"]), host)
    import importlib

    handler = getattr(importlib.import_module(module_name), function)
    try:
        if "--help" in rest:
            from sampan.cli import help

            if help.wants_help(rest):
                return help.show(ctx, (module_name, function, description), handler)
        return int(handler(ctx, rest))
    except Usage as exc:
        print(f"Error: {exc}\nSee 'sampan {command} --help'.", file=sys.stderr)
        return 1
    except (SampanError, OSError) as exc:
        if ctx.debug:
            import traceback

            traceback.print_exc()
        print(f"Error: {describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        ctx.close()
