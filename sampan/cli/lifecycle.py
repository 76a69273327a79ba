"""The lifecycle commands -- restart, rename, container prune, events -- and run/create's
restart, stop and health flags, as docker's CLI has them.

    sampan run -d --restart on-failure:3 --stop-signal SIGINT --stop-timeout 5 \\
        --health-cmd 'wget -q -O- localhost' --health-interval 10s busybox httpd -f
    sampan restart -t 2 web;  sampan rename web api;  sampan container prune -f
    sampan events --since 10m --filter event=start --format '{{json .}}'

Durations are Go's (``1m30s``, ``500ms``), sent as nanoseconds; the flag
errors are docker's words.  ``events`` prints docker's line
(``2024-05-01T10:00:00.000000000Z container start ID (image=busybox, name=web)``,
the time in the local zone) or the ``--format`` template over each event;
``--since``/``--until`` take unix times, RFC 3339 times or durations before
now, the latter turned into unix times here, as the docker CLI does.
"""

from __future__ import annotations

import sys
import time

from sampan.cli.args import Flag
from sampan.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.cli.main import Context

__all__ = ["CREATE_FLAGS", "cmd_container_prune", "cmd_events", "cmd_rename", "cmd_restart",
           "config_fields", "host_config", "parse_restart"]  # fmt: skip

_HEALTH = ("interval", "timeout", "start_period", "start_interval")
CREATE_FLAGS = [
    Flag("--restart", "str", 'restart policy to apply when a container exits (default "no")'),
    Flag("--stop-signal", "str", "signal to stop the container"),
    Flag("--stop-timeout", "int", "timeout (in seconds) to stop a container"),
    Flag("--health-cmd", "str", "command to run to check health"),
    Flag("--health-interval", "str", "time between running the check (ms|s|m|h) (default 0s)"),
    Flag("--health-timeout", "str", "maximum time to allow one check to run (ms|s|m|h)"),
    Flag("--health-retries", "int", "consecutive failures needed to report unhealthy"),
    Flag("--health-start-period", "str", "start period for the container to initialize"),
    Flag(
        "--health-start-interval",
        "str",
        "time between running the check during the start period (ms|s|m|h)",
    ),
    Flag("--no-healthcheck", "bool", "disable any container-specified HEALTHCHECK"),
]


def parse_restart(text: str | None) -> dict[str, Any] | None:
    """docker's --restart: no | always | unless-stopped | on-failure[:N] (the daemon checks
    the name); None when not given."""
    if not text:
        return None
    name, colon, count = text.partition(":")
    if colon and not name:
        raise InvalidArgument("invalid restart policy format: no policy provided before colon")
    policy: dict[str, Any] = {"Name": name, "MaximumRetryCount": 0}
    if count:
        try:
            policy["MaximumRetryCount"] = int(count)
        except ValueError:
            raise InvalidArgument(
                "invalid restart policy format: maximum retry count must be an integer"
            ) from None
    return policy


def _duration(opts: dict[str, Any], key: str) -> int:
    from sampan.units import parse_duration

    text = opts[f"health_{key}"]
    if text is None:
        return 0
    flag = "--health-" + key.replace("_", "-")
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: {exc}') from None
    if value < 0:
        raise InvalidArgument(f"{flag} cannot be negative")
    return value


def config_fields(opts: dict[str, Any]) -> dict[str, Any]:
    """The create body's StopSignal, StopTimeout and Healthcheck for run/create's flags."""
    out: dict[str, Any] = {}
    if opts["stop_signal"]:
        out["StopSignal"] = opts["stop_signal"]
    if opts["stop_timeout"] is not None:
        out["StopTimeout"] = opts["stop_timeout"]
    health_set = (
        opts["health_cmd"] is not None
        or opts["health_retries"] is not None
        or any(opts[f"health_{k}"] is not None for k in _HEALTH)
    )
    if opts["no_healthcheck"]:
        if health_set:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        out["Healthcheck"] = {"Test": ["NONE"]}
    elif health_set:
        retries = opts["health_retries"] or 0
        if retries < 0:
            raise InvalidArgument("--health-retries cannot be negative")
        check: dict[str, Any] = {
            "Test": ["CMD-SHELL", opts["health_cmd"]] if opts["health_cmd"] else None,
            "Interval": _duration(opts, "interval"),
            "Timeout": _duration(opts, "timeout"),
            "StartPeriod": _duration(opts, "start_period"),
            "Retries": retries,
        }
        if opts["health_start_interval"] is not None:
            check["StartInterval"] = _duration(opts, "start_interval")
        out["Healthcheck"] = check
    return out


def host_config(opts: dict[str, Any]) -> dict[str, Any]:
    """HostConfig's RestartPolicy for --restart (docker's CLI refuses it with --rm)."""
    policy = parse_restart(opts["restart"])
    if policy is None:
        return {}
    if opts.get("rm") and policy["Name"] != "no":
        raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")
    return {"RestartPolicy": policy}


# -- restart, rename, container prune -------------------------------------------------


def cmd_restart(ctx: Context, argv: list[str]) -> int:
    from sampan.cli.client import on_each
    from sampan.cli.container import _simple

    flags = [Flag("--time,-t", "int", "seconds to wait before killing the container"),
             Flag("--signal,-s", "str", "signal to send to the container")]  # fmt: skip
    opts = _simple(argv, flags, "restart", "[OPTIONS] CONTAINER [CONTAINER...]")
    query = {"t": opts["time"], "signal": opts["signal"]}
    return on_each(ctx.host, opts["args"], "POST", "restart", query)


def cmd_rename(ctx: Context, argv: list[str]) -> int:
    from sampan.api.client import ApiError, Client, quote
    from sampan.cli.client import daemon_errors, err
    from sampan.cli.container import _simple
    from sampan.cli.main import Usage

    opts = _simple(argv, [], "rename", "CONTAINER NEW_NAME")
    if len(opts["args"]) != 2:
        raise Usage('"sampan rename" requires exactly 2 arguments')
    old, new = (a.strip() for a in opts["args"])
    if not old or not new:
        raise InvalidArgument("Neither old nor new names may be empty")
    client = Client(ctx.host)

    def rename() -> int:
        try:
            client.request("POST", f"/containers/{quote(old)}/rename", {"name": new}).read()
        except ApiError as exc:
            err(f"Error response from daemon: {exc.message}")
            err(f"Error: failed to rename container named {old}")
            return 1
        return 0

    return daemon_errors(rename)


def cmd_container_prune(ctx: Context, argv: list[str]) -> int:
    from sampan.api.client import Client
    from sampan.cli.args import parse
    from sampan.cli.client import daemon_errors, filters_json
    from sampan.cli.container import HELP
    from sampan.units import human_size

    flags = [Flag("--force,-f", "bool", "do not prompt for confirmation"),
             Flag("--filter", "list", "provide filter values (e.g. \"until=<timestamp>\")"),
             HELP]  # fmt: skip
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan container prune [OPTIONS]")
        return 0
    if args:
        from sampan.cli.main import Usage

        raise Usage('"sampan container prune" accepts no arguments')
    if not opts["force"]:
        sys.stdout.write("WARNING! This will remove all stopped containers.\n"
                         "Are you sure you want to continue? [y/N] ")  # fmt: skip
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    query = {"filters": filters_json(opts["filter"])}
    client = Client(ctx.host)

    def prune() -> int:
        doc = client.json("POST", "/containers/prune", query) or {}
        deleted = doc.get("ContainersDeleted") or []
        reclaimed = int(doc.get("SpaceReclaimed") or 0) if deleted else 0
        if deleted:
            sys.stdout.write("Deleted Containers:\n" + "".join(f"{i}\n" for i in deleted) + "\n")
        sys.stdout.write(f"Total reclaimed space: {human_size(reclaimed, 4)}\n")
        return 0

    return daemon_errors(prune)


# -- events ---------------------------------------------------------------------------


def timestamp(text: str | None, now: float) -> str | None:
    """docker's GetTimestamp: a duration before NOW becomes unix seconds; unix seconds and
    RFC 3339 times go to the daemon as they are."""
    if not text:
        return None
    from sampan.units import parse_duration

    try:
        float(text)
        return text
    except ValueError:
        pass
    try:
        ns = parse_duration(text)
    except ValueError:
        return text  # a date or RFC 3339 time: the daemon parses it
    return f"{now - ns / 1e9:.9f}"


def _local_time(ns: int) -> str:
    """Go's RFC3339NanoFixed in the local zone (``Z`` for UTC)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    local = time.localtime(seconds)
    offset = local.tm_gmtoff or 0
    zone = "Z"
    if offset:
        sign = "+" if offset > 0 else "-"
        zone = f"{sign}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{frac:09d}{zone}"


def pretty(event: dict[str, Any]) -> str:
    """docker's default line for one event."""
    ns = int(event.get("timeNano") or 0) or int(event.get("time") or 0) * 1_000_000_000
    actor = event.get("Actor") or {}
    line = f"{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return (_local_time(ns) + " " if ns else "") + line + "\n"


def _template_row(event: dict[str, Any]) -> dict[str, Any]:
    """An event with the Go struct's field names (``.Status``, ``.ID``, ``.Time``...)."""
    return {"Type": event.get("Type", ""), "Action": event.get("Action", ""),
            "Actor": event.get("Actor") or {"ID": "", "Attributes": {}},
            "Scope": event.get("scope", ""), "Time": event.get("time", 0),
            "TimeNano": event.get("timeNano", 0), "Status": event.get("status", ""),
            "ID": event.get("id", ""), "From": event.get("from", "")}  # fmt: skip


def cmd_events(ctx: Context, argv: list[str]) -> int:
    from sampan import _json
    from sampan.api.client import Client
    from sampan.cli.args import parse
    from sampan.cli.client import daemon_errors, filters_json
    from sampan.cli.container import HELP
    from sampan.cli.main import Usage

    flags = [Flag("--filter,-f", "list", "filter output based on conditions provided"),
             Flag("--format", "str", "format output using a custom template"),
             Flag("--since", "str", "show all events created since timestamp"),
             Flag("--until", "str", "stream events until this timestamp"), HELP]  # fmt: skip
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan events [OPTIONS]")
        return 0
    if args:
        raise Usage('"sampan events" accepts no arguments')
    now = time.time()
    query = {"since": timestamp(opts["since"], now), "until": timestamp(opts["until"], now),
             "filters": filters_json(opts["filter"])}  # fmt: skip
    spec = opts["format"] or ""
    raw = spec.strip() in ("json", "{{json .}}")
    template = None
    if spec and not raw:
        from sampan.cli.format import Template

        template = Template(spec.replace("\\t", "\t").replace("\\n", "\n"))
    client = Client(ctx.host)

    def events() -> int:
        response = client.request("GET", "/events", query)
        try:
            for line in response.lines():
                if not line.strip():
                    continue
                event = _json.loads(line)
                if raw:
                    text = _json.dumps(event) + "\n"
                elif template is not None:
                    text = template.render(_template_row(event)) + "\n"
                else:
                    text = pretty(event)
                sys.stdout.write(text)
                sys.stdout.flush()
        finally:
            response.close()
        return 0

    try:
        return daemon_errors(events)
    except KeyboardInterrupt:
        return 0
