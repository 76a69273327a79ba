"""The container commands: run, create, start, ps, logs, stop, kill, rm, wait, inspect.

Each is a client of ``sampan daemon`` (sampan/api/client.py, at ``-H`` or
$SAMPAN_HOST) and prints what docker prints: the same columns, messages
and exit codes.  ``run`` is docker's sequence: create (a missing image is
pulled through the daemon), attach (before start, so no output is lost),
wait (registered before start, so the exit is never missed), start, copy
the multiplexed stream to stdout/stderr, exit with the container's code.

Exit codes of run/create, as docker's CLI: 125 when the daemon refuses
(a bad flag or value, a name in use, a missing image), 126 when the
command cannot be invoked, 127 when it is not found -- read from the
daemon's start error as the docker CLI reads it -- else the container's.

Flags sampan does not implement yet are refused by name, never ignored.
Nothing slow is imported on the way to ``ps`` (no http.client, no image store).
"""

from __future__ import annotations

import os
import sys
import time

from sampan.api.client import ApiError, Client, demux, quote
from sampan.cli import lifecycle, limits, mount_opts
from sampan.cli.args import Flag, parse
from sampan.cli.client import daemon_errors, each, err, filters_json, messages, on_each
from sampan.cli.main import Context, Usage
from sampan.errors import InvalidArgument, SampanError, Unsupported, describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "cmd_container_inspect",
    "cmd_create",
    "cmd_inspect",
    "cmd_kill",
    "cmd_logs",
    "cmd_ps",
    "cmd_rm",
    "cmd_run",
    "cmd_start",
    "cmd_stop",
    "cmd_wait",
    "exit_code_of_start_error",
]

HELP = Flag("--help", "bool", "show help")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- run and create ----------------------------------------------------------------------

CREATE_FLAGS = [
    Flag("--rm", "bool", "automatically remove the container when it exits"),
    Flag("--name", "str", "assign a name to the container"),
    Flag("--env,-e", "list", "set environment variables"),
    Flag("--env-file", "list", "read in a file of environment variables"),
    Flag("--workdir,-w", "str", "working directory inside the container"),
    Flag("--user,-u", "str", "username or UID (format: <name|uid>[:<group|gid>])"),
    Flag("--entrypoint", "str", "overwrite the default ENTRYPOINT of the image"),
    Flag("--hostname,-h", "str", "container host name"),
    Flag("--label,-l", "list", "set meta data on a container"),
    Flag("--read-only", "bool", "mount the container's root filesystem as read only"),
    Flag("--interactive,-i", "bool", "keep STDIN open even if not attached"),
    Flag("--tty,-t", "bool", "allocate a pseudo-TTY"),
    Flag("--attach,-a", "list", "attach to STDIN, STDOUT or STDERR"),
    Flag("--detach-keys", "str", "override the key sequence for detaching a container"),
    Flag("--log-driver", "str", "logging driver for the container (json-file)"),
    Flag("--log-opt", "list", "log driver options (max-size, max-file)"),
    HELP,
]
CREATE_FLAGS += limits.CREATE_FLAGS  # memory, CPUs, ulimits, capabilities, devices, init...
CREATE_FLAGS += mount_opts.CREATE_FLAGS  # -v, --mount, --tmpfs, --volumes-from
CREATE_FLAGS += lifecycle.CREATE_FLAGS  # --restart, --stop-signal/-timeout, --health-*
# Parsed by net_opts.py (imported only when a body is made, so `ps` never loads it).
CREATE_FLAGS += [
    Flag("--network,--net", "list", "connect a container to a network (NAME, none, host, "
         "container:NAME, or name=NAME,alias=A,ip=IP)"),
    Flag("--network-alias", "list", "add network-scoped alias for the container"),
    Flag("--ip", "str", "IPv4 address on the (first) user-defined network"),
    Flag("--mac-address", "str", "container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    Flag("--publish,-p", "list", "publish a container's port(s) to the host "
         "([IP:][HOSTPORT:]PORT[/PROTO])"),
    Flag("--publish-all,-P", "bool", "publish all exposed ports to random ports"),
    Flag("--expose", "list", "expose a port or a range of ports"),
    Flag("--dns", "list", "set custom DNS servers"),
    Flag("--dns-search", "list", "set custom DNS search domains"),
    Flag("--dns-option", "list", "set DNS options"),
    Flag("--add-host", "list", "add a custom host-to-IP mapping (host:ip)"),
    Flag("--link", "list", "add link to another container (NAME[:ALIAS])"),
]  # fmt: skip
RUN_FLAGS = [
    Flag("--detach,-d", "bool", "run container in background and print its ID"),
    Flag("--sig-proxy", "bool", "proxy received signals to the process", True),
]
RUN_FLAGS += CREATE_FLAGS

# docker's other run/create flags: known, refused by name until the engine has them.
_LATER_VALUE = ("--pull", "--platform", "--label-file", "--ip6", "--link-local-ip",
                "--cidfile", "--ipc", "--pid", "--userns", "--uts",
                "--sysctl", "--group-add", "--gpus", "--runtime", "--cgroupns", "--cgroup-parent",
                "--isolation", "--storage-opt")  # fmt: skip
_LATER_BOOL = ("--quiet,-q",
               "--disable-content-trust")  # fmt: skip
_LATER = [Flag(n, "list") for n in _LATER_VALUE] + [Flag(n, "bool") for n in _LATER_BOOL]


def _refuse_later(opts: dict[str, Any]) -> None:
    for flag in _LATER:
        if opts[flag.dest]:
            raise Unsupported(f"{flag.names[0]} is not supported by sampan yet")


def _env_entry(text: str) -> str | None:
    """docker's -e: NAME=VALUE as is; a bare NAME takes the caller's value, or is dropped."""
    if "=" in text:
        if text.startswith("="):
            raise InvalidArgument(f"invalid environment variable: {text}")
        return text
    if not text.strip():
        raise InvalidArgument("invalid environment variable: (empty)")
    value = os.environ.get(text)
    return None if value is None else f"{text}={value}"


def _env(opts: dict[str, Any]) -> list[str]:
    entries: list[str] = []
    for path in opts["env_file"]:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise InvalidArgument(f"--env-file {path}: {describe(exc)}") from None
        for line in lines:
            line = line.lstrip()
            if line and not line.startswith("#"):
                entries.append(line)
    entries += opts["env"]
    return [e for e in (_env_entry(t) for t in entries) if e is not None]


def create_body(opts: dict[str, Any], image: str, command: list[str]) -> dict[str, Any]:
    """The /containers/create request for run/create's flags (docker's CLI's shape)."""
    labels: dict[str, str] = {}
    for label in opts["label"]:
        key, _, value = label.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label: {label!r}")
        labels[key] = value
    attach = not opts.get("detach")
    body: dict[str, Any] = {
        "Image": image,
        "Cmd": command or None,
        "Env": _env(opts),
        "Labels": labels,
        "WorkingDir": opts["workdir"] or "",
        "User": opts["user"] or "",
        "Hostname": opts["hostname"] or "",
        **_stdio_fields(opts, attach),
        "HostConfig": {
            "AutoRemove": bool(opts["rm"]),
            "ReadonlyRootfs": bool(opts["read_only"]),
            **limits.host_config(opts),
            "LogConfig": _log_config(opts),
            **lifecycle.host_config(opts),
        },
        **lifecycle.config_fields(opts),
    }
    mount_opts.apply(opts, body)  # Binds, Mounts, Tmpfs, VolumesFrom, Volumes
    from sampan.cli import net_opts

    net_opts.apply(opts, body)  # NetworkMode, ports, DNS, hosts, links, NetworkingConfig
    if opts["entrypoint"] is not None:
        body["Entrypoint"] = [opts["entrypoint"]]  # [""]: the image's is reset, as docker
    return body


def _stdio_fields(opts: dict[str, Any], attached: bool) -> dict[str, Any]:
    """Attach*, Tty, OpenStdin, StdinOnce of run/create's -a, -i, -t (docker's rules)."""
    streams = {s.lower() for s in opts.get("attach") or []}
    if streams - {"stdin", "stdout", "stderr"}:
        raise InvalidArgument(f"invalid argument {opts['attach']!r} for -a: valid streams are "
                              "STDIN, STDOUT and STDERR")  # fmt: skip
    if streams and opts.get("detach"):
        raise InvalidArgument("Conflicting options: -a and -d")
    if not streams and attached:
        streams = {"stdout", "stderr"} | ({"stdin"} if opts["interactive"] else set())
    stdin = "stdin" in streams
    return {"AttachStdin": stdin, "AttachStdout": "stdout" in streams,
            "AttachStderr": "stderr" in streams, "Tty": bool(opts["tty"]),
            "OpenStdin": bool(opts["interactive"]),
            "StdinOnce": stdin and bool(opts["interactive"])}  # fmt: skip


def _log_config(opts: dict[str, Any]) -> dict[str, Any]:
    config = {}
    for opt in opts.get("log_opt") or []:
        key, eq, value = opt.partition("=")
        if not eq:
            raise InvalidArgument(f"invalid key value pair format in log opts: {opt!r}")
        config[key] = value
    return {"Type": opts.get("log_driver") or "", "Config": config}


def _pull(client: Client, image: str) -> None:
    """Pull IMAGE through the daemon, its progress on stderr (docker's short form)."""
    name, tag = image, ""
    if "@" not in image:
        slash = image.rfind("/")
        colon = image.rfind(":")
        if colon > slash:
            name, tag = image[:colon], image[colon + 1 :]
    response = client.request("POST", "/images/create", {"fromImage": name, "tag": tag or None})
    for doc in messages(response, lambda text: ApiError(500, text)):  # run's exit 125
        status = doc.get("status")
        if status and not doc.get("progressDetail"):
            err(f"{doc['id']}: {status}" if doc.get("id") else str(status))


def _create(client: Client, opts: dict[str, Any], args: list[str]) -> str:
    image, command = args[0], args[1:]
    body = create_body(opts, image, command)
    query = {"name": opts["name"]} if opts["name"] else None
    try:
        doc = client.json("POST", "/containers/create", query, body)
    except ApiError as exc:
        if exc.status != 404 or not exc.message.startswith("No such image: "):
            raise
        err(f"Unable to find image '{exc.message.removeprefix('No such image: ')}' locally")
        _pull(client, image)
        doc = client.json("POST", "/containers/create", query, body)
    for warning in doc.get("Warnings") or []:
        err(f"WARNING: {warning}")
    return str(doc["Id"])


def exit_code_of_start_error(message: str) -> int:
    """docker's CLI's reading of a failed start: 127 not found, 126 cannot invoke, else 125."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def _start_attached(
    client: Client, cid: str, condition: str, stdin: bool = False, keys: str = ""
) -> int:
    """Attach, register the wait, start; copy the streams; the container's exit code."""
    from sampan.cli.attach import start_existing

    return start_existing(client, cid, condition, lambda: _start(client, cid), stdin, keys)


def _parse_create(
    flags: list[Flag], argv: list[str], command: str
) -> tuple[dict[str, Any], list[str]]:
    opts, args = parse(flags + _LATER, argv)
    if opts["help"]:
        return opts, args
    if not args:
        raise Usage(f'"sampan {command}" requires at least 1 argument')
    _refuse_later(opts)
    return opts, args


def _usage_error(command: str, exc: BaseException) -> int:
    err(f"sampan: {describe(exc)}\nSee 'sampan {command} --help'.")
    return 125


def cmd_run(ctx: Context, argv: list[str]) -> int:
    try:
        opts, args = _parse_create(RUN_FLAGS, argv, "run")
    except (SampanError, Usage) as exc:
        return _usage_error("run", exc)
    if opts["help"]:
        print("Usage:  sampan run [OPTIONS] IMAGE [COMMAND] [ARG...]")
        return 0
    client = Client(ctx.host)

    def run() -> int:
        try:
            stdio = _stdio_fields(opts, not opts["detach"])
            if stdio["Tty"] and stdio["AttachStdin"] and not os.isatty(0):
                err("the input device is not a TTY")
                return 1
            cid = _create(client, opts, args)
        except (InvalidArgument, Unsupported) as exc:
            return _usage_error("run", exc)
        try:
            if not opts["detach"]:
                from sampan.cli.attach import start_attached

                streams = tuple(s for s in ("stdout", "stderr") if stdio[f"Attach{s.title()}"])
                return start_attached(
                    client, cid, "removed" if opts["rm"] else "next-exit",
                    lambda: _start(client, cid), stdin=stdio["AttachStdin"], tty=stdio["Tty"],
                    streams=streams, keys=opts["detach_keys"] or "", sig_proxy=opts["sig_proxy"],
                )  # fmt: skip
            _start(client, cid)
        except _StartFailed as exc:
            err(f"sampan: Error response from daemon: {exc.message}")
            return exit_code_of_start_error(exc.message)
        print(cid)
        return 0

    return daemon_errors(run, prefix="sampan: ", failure=125)


class _StartFailed(ApiError):
    """The daemon refused to start the container (exit 125/126/127 by the message)."""


def _start(client: Client, cid: str) -> None:
    try:
        client.request("POST", f"/containers/{cid}/start")
    except ApiError as exc:
        raise _StartFailed(exc.status, exc.message) from None


def cmd_create(ctx: Context, argv: list[str]) -> int:
    try:
        opts, args = _parse_create(CREATE_FLAGS, argv, "create")
    except (SampanError, Usage) as exc:
        return _usage_error("create", exc)
    if opts["help"]:
        print("Usage:  sampan create [OPTIONS] IMAGE [COMMAND] [ARG...]")
        return 0
    client = Client(ctx.host)

    def create() -> int:
        try:
            print(_create(client, opts, args))
        except (InvalidArgument, Unsupported) as exc:
            return _usage_error("create", exc)  # a bad flag value: docker's 125
        return 0

    return daemon_errors(create)


# -- start, stop, kill, rm, wait -----------------------------------------------------------


def _simple(argv: list[str], flags: list[Flag], command: str, usage: str) -> dict[str, Any]:
    opts, args = parse([*flags, HELP], argv, stop_at_positional=False)
    if opts["help"]:
        print(f"Usage:  sampan {command} {usage}")
        raise SystemExit(0)
    if not args:
        raise Usage(f'"sampan {command}" requires at least 1 argument')
    opts["args"] = args
    return opts  # type: ignore[no-any-return]


def cmd_start(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--attach,-a", "bool", "attach STDOUT/STDERR and forward signals"),
             Flag("--interactive,-i", "bool", "attach the container's STDIN"),
             Flag("--detach-keys", "str", "override the key sequence for detaching")]  # fmt: skip
    opts = _simple(argv, flags, "start", "[OPTIONS] CONTAINER [CONTAINER...]")
    client = Client(ctx.host)
    names: list[str] = opts["args"]
    if opts["attach"] or opts["interactive"]:
        if len(names) != 1:
            raise Usage("you cannot start and attach multiple containers at once")

        def attached() -> int:
            try:
                return _start_attached(client, quote(names[0]), "next-exit",
                                       opts["interactive"], opts["detach_keys"] or "")  # fmt: skip
            except _StartFailed as exc:
                err(f"Error response from daemon: {exc.message}")
                return exit_code_of_start_error(exc.message)

        return daemon_errors(attached)

    def start(name: str) -> str:
        client.request("POST", f"/containers/{quote(name)}/start")
        return name

    return daemon_errors(lambda: each(names, start))


def cmd_stop(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--time,-t", "int", "seconds to wait before killing the container"),
             Flag("--signal,-s", "str", "signal to send to the container")]  # fmt: skip
    opts = _simple(argv, flags, "stop", "[OPTIONS] CONTAINER [CONTAINER...]")
    query = {"t": opts["time"], "signal": opts["signal"]}
    return on_each(ctx.host, opts["args"], "POST", "stop", query)


def cmd_kill(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--signal,-s", "str", "signal to send to the container (default KILL)")]
    opts = _simple(argv, flags, "kill", "[OPTIONS] CONTAINER [CONTAINER...]")
    return on_each(ctx.host, opts["args"], "POST", "kill", {"signal": opts["signal"]})


def cmd_rm(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--force,-f", "bool", "force the removal of a running container"),
             Flag("--volumes,-v", "bool", "remove anonymous volumes of the container")]  # fmt: skip
    opts = _simple(argv, flags, "rm", "[OPTIONS] CONTAINER [CONTAINER...]")
    query = {"force": opts["force"], "v": opts["volumes"]}
    return on_each(ctx.host, opts["args"], "DELETE", "", query)


def cmd_wait(ctx: Context, argv: list[str]) -> int:
    opts = _simple(argv, [], "wait", "CONTAINER [CONTAINER...]")
    client = Client(ctx.host)

    def wait(name: str) -> str:
        doc = client.json("POST", f"/containers/{quote(name)}/wait") or {}
        return str(doc.get("StatusCode", ""))

    return daemon_errors(lambda: each(opts["args"], wait))


# -- logs ------------------------------------------------------------------------------


def _since(text: str | None, now: float) -> str | None:
    """docker's --since/--until: a unix time, or a duration before now (10m, 1h30m, 45s)."""
    if not text:
        return None
    try:
        return str(float(text))
    except ValueError:
        pass
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    total, number, i = 0.0, "", 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if unit not in units or not number:
            raise InvalidArgument(f"invalid value for time: {text!r} (a unix time or 10m, 1h)")
        total += float(number) * units[unit]
        number, i = "", i + len(unit)
    if number:
        raise InvalidArgument(f"invalid value for time: {text!r}: missing unit in duration")
    return str(now - total)


def cmd_logs(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--follow,-f", "bool", "follow log output"),
             Flag("--tail,-n", "str", "number of lines to show from the end (default all)"),
             Flag("--timestamps,-t", "bool", "show timestamps"),
             Flag("--since", "str", "show logs since a unix time or a relative duration (10m)"),
             Flag("--until", "str", "show logs before a unix time or a duration ago")]  # fmt: skip
    opts = _simple(argv, flags, "logs", "[OPTIONS] CONTAINER")
    if len(opts["args"]) != 1:
        raise Usage('"sampan logs" requires exactly 1 argument')
    now = time.time()
    query = {"stdout": True, "stderr": True, "follow": opts["follow"], "tail": opts["tail"],
             "timestamps": opts["timestamps"], "since": _since(opts["since"], now),
             "until": _since(opts["until"], now)}  # fmt: skip
    client = Client(ctx.host)

    def logs() -> int:
        response = client.request("GET", f"/containers/{quote(opts['args'][0])}/logs", query)
        try:
            for stream, data in demux(response.chunks()):
                _write_all(2 if stream == 2 else 1, data)
        finally:
            response.close()
        return 0

    return daemon_errors(logs)


# -- ps --------------------------------------------------------------------------------

PS_FLAGS = [
    Flag("--all,-a", "bool", "show all containers (default shows just running)"),
    Flag("--quiet,-q", "bool", "only display container IDs"),
    Flag("--size,-s", "bool", "display total file sizes"),
    Flag("--no-trunc", "bool", "don't truncate output"),
    Flag("--filter,-f", "list", "filter output based on conditions provided"),
    Flag("--format", "str", "format output using a custom template"),
    Flag("--last,-n", "int", "show n last created containers (includes all states)"),
    Flag("--latest,-l", "bool", "show the latest created container (includes all states)"),
    HELP,
]
PS_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
            "{{.Ports}}\t{{.Names}}")  # fmt: skip
PS_SIZE_TABLE = PS_TABLE + "\t{{.Size}}"


def _go_quote(text: str) -> str:
    """Go's strconv.Quote for the printable text of a command line."""
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{out}"'


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def ports_text(ports: list[dict[str, Any]]) -> str:
    """docker's PORTS column: "0.0.0.0:8080->80/tcp, 9000/tcp", consecutive ports of one
    address and protocol folded into ranges ("0.0.0.0:8080-8081->80-81/tcp")."""
    published: dict[tuple[str, str, int], list[int]] = {}
    exposed: dict[str, list[int]] = {}
    for p in ports:
        if p.get("PublicPort"):
            offset = int(p["PublicPort"]) - int(p["PrivatePort"])
            key = (str(p.get("IP", "")), str(p.get("Type", "tcp")), offset)
            published.setdefault(key, []).append(int(p["PrivatePort"]))
        else:
            exposed.setdefault(str(p.get("Type", "tcp")), []).append(int(p["PrivatePort"]))
    items: list[tuple[int, str]] = []
    for (ip, proto, offset), privates in published.items():
        for lo, hi in _runs(privates):
            public = f"{lo + offset}" if lo == hi else f"{lo + offset}-{hi + offset}"
            private = f"{lo}" if lo == hi else f"{lo}-{hi}"
            items.append((lo, f"{ip}:{public}->{private}/{proto}"))
    for proto, privates in exposed.items():
        for lo, hi in _runs(privates):
            items.append((lo, f"{lo}/{proto}" if lo == hi else f"{lo}-{hi}/{proto}"))
    return ", ".join(text for _, text in sorted(items))


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Sorted NUMBERS as runs of consecutive values: [(first, last), ...]."""
    runs: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def ps_row(c: dict[str, Any], now: float, trunc: bool) -> dict[str, Any]:
    """One /containers/json entry as docker's ps formatter shows it."""
    from sampan.cli.format import human_duration_ago

    created = float(c.get("Created") or 0)
    names = [n.removeprefix("/") for n in c.get("Names") or []]
    if trunc:
        names = [n for n in names if "/" not in n]
    command = str(c.get("Command", ""))
    labels = c.get("Labels") or {}
    networks = (c.get("NetworkSettings") or {}).get("Networks") or {}
    return {
        "ID": c["Id"][:12] if trunc else c["Id"],
        "Image": c.get("Image", ""),
        "Command": _go_quote(_ellipsis(command, 20) if trunc else command),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(created)),
        "RunningFor": human_duration_ago(now - created),
        "Status": c.get("Status", ""),
        "State": c.get("State", ""),
        "Ports": ports_text(c.get("Ports") or []),
        "Names": ",".join(names),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Size": _size(c),
        "Mounts": mount_opts.ps_mounts(c, trunc),
        "Networks": ",".join(sorted(networks))
        or (c.get("HostConfig") or {}).get("NetworkMode", ""),
        "LocalVolumes": str(sum(m.get("Driver") == "local" for m in c.get("Mounts") or [])),
    }


def _size(c: dict[str, Any]) -> str:
    """docker's SIZE: the writable layer's, and with the image's "(virtual ...)"."""
    from sampan.units import human_size

    text = human_size(c.get("SizeRw") or 0)
    if c.get("SizeRootFs"):
        text += f" (virtual {human_size(c['SizeRootFs'])})"
    return text


def cmd_ps(ctx: Context, argv: list[str]) -> int:
    opts, args = parse(PS_FLAGS, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan ps [OPTIONS]")
        return 0
    if args:
        raise Usage('"sampan ps" accepts no arguments')
    last = 1 if opts["latest"] else opts["last"] if opts["last"] is not None else -1
    # docker asks for sizes (a walk of every writable layer) only when they are shown
    sized = opts["size"] or ".Size" in (opts["format"] or "")
    query = {"all": opts["all"] or last > 0, "limit": last if last > 0 else None,
             "filters": filters_json(opts["filter"]), "size": sized or None}  # fmt: skip
    client = Client(ctx.host)

    def ps() -> int:
        found = client.json("GET", "/containers/json", query) or []
        now = time.time()
        trunc = not opts["no_trunc"]
        if opts["quiet"] and not opts["format"]:
            ids = (c["Id"][:12] if trunc else c["Id"] for c in found)
            sys.stdout.write("".join(f"{cid}\n" for cid in ids))
            return 0
        from sampan.cli.format import CONTAINER_HEADERS, render

        rows = [ps_row(c, now, trunc) for c in found]
        table = PS_SIZE_TABLE if opts["size"] else PS_TABLE
        spec = opts["format"] or table
        sys.stdout.write(render(spec, rows, CONTAINER_HEADERS, default_table=table))
        return 0

    return daemon_errors(ps)


# -- inspect ---------------------------------------------------------------------------

INSPECT_FLAGS = [
    Flag("--format,-f", "str", "format output using a custom template"),
    Flag("--type", "str", "only inspect objects of the given type (container, image)"),
    Flag("--size,-s", "bool", "display total file sizes if the type is container"),
    HELP,
]


def _print_docs(docs: list[Any], template: str | None) -> None:
    from sampan.cli.format import inspect_output

    sys.stdout.write(inspect_output(docs, template))
    sys.stdout.flush()


def cmd_container_inspect(ctx: Context, argv: list[str]) -> int:
    flags = [f for f in INSPECT_FLAGS if f.dest != "type"]
    opts = _simple(argv, flags, "container inspect", "[OPTIONS] CONTAINER...")
    client = Client(ctx.host)
    docs: list[Any] = []

    query = {"size": "1"} if opts["size"] else None

    def inspect(name: str) -> None:
        docs.append(client.json("GET", f"/containers/{quote(name)}/json", query))

    code = daemon_errors(lambda: each(opts["args"], inspect))
    _print_docs(docs, opts["format"])
    return code


def cmd_inspect(ctx: Context, argv: list[str]) -> int:
    """``sampan inspect NAME...``: a container, or else an image (both through the daemon)."""
    opts, args = parse(INSPECT_FLAGS, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan inspect [OPTIONS] NAME|ID [NAME|ID...]")
        return 0
    if not args:
        raise Usage('"inspect" requires at least 1 argument')
    kind = opts["type"]
    if kind not in (None, "container", "image"):
        raise InvalidArgument(f'"{kind}" is not a valid value for --type')
    client = Client(ctx.host)
    docs: list[Any] = []
    missing: list[str] = []
    kinds = (("container", "/containers"), ("image", "/images"))
    paths = [path for k, path in kinds if kind in (None, k)]

    def inspect() -> int:
        for name in args:
            for path in paths:
                sized = opts["size"] and path == "/containers"
                try:
                    docs.append(client.json("GET", f"{path}/{quote(name)}/json",
                                            {"size": "1"} if sized else None))  # fmt: skip
                    break
                except ApiError as exc:
                    if exc.status != 404:
                        raise
            else:
                missing.append(name)
        return 0

    if daemon_errors(inspect):
        return 1
    _print_docs(docs, opts["format"])
    for name in missing:
        err(f"Error: No such {kind or 'object'}: {name}")
    return 1 if missing else 0
