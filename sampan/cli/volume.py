"""``sampan volume create|ls|inspect|rm|prune``: clients of the daemon's /volumes API.

Output as docker's: ``create`` prints the name, ``ls`` a DRIVER / VOLUME NAME
table sorted by name (``-q`` names only, ``--format`` templates with Name,
Driver, Scope, Mountpoint, Labels, ``Label "key"``, Links, Size), ``inspect``
the JSON documents, ``rm`` each name removed, ``prune`` the names and the
space reclaimed.  ``prune`` is docker 23's: anonymous volumes only unless
``-a`` (sent as the filter all=true/false, so the daemon's API-1.41 default
never decides for this CLI).  Errors print "Error response from daemon: ..."
and exit 1.
"""

from __future__ import annotations

import sys

from sampan.api.client import ApiError, Client, DaemonUnreachable, quote
from sampan.cli.args import Flag, parse
from sampan.cli.client import daemon_errors, err, filters_json
from sampan.cli.main import Context, Usage
from sampan.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "cmd_volume_create",
    "cmd_volume_inspect",
    "cmd_volume_ls",
    "cmd_volume_prune",
    "cmd_volume_rm",
]

HELP = Flag("--help", "bool", "show help")
LS_TABLE = "table {{.Driver}}\t{{.Name}}"
VOLUME_HEADERS = {
    "Name": "VOLUME NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Links": "LINKS",
    "Size": "SIZE",
}


def _args(argv: list[str], flags: list[Flag], usage: str) -> tuple[dict[str, Any], list[str]]:
    opts, args = parse([*flags, HELP], argv, stop_at_positional=False)
    if opts["help"]:
        print(f"Usage:  sampan volume {usage}")
        raise SystemExit(0)
    return opts, args


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {what}: {item!r} (expected key=value)")
        out[key] = value
    return out


def cmd_volume_create(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--driver,-d", "str", "specify volume driver name (default local)"),
             Flag("--opt,-o", "list", "set driver specific options (type=, device=, o=)"),
             Flag("--label", "list", "set metadata for a volume"),
             Flag("--name", "str", "specify volume name")]  # fmt: skip
    opts, args = _args(argv, flags, "create [OPTIONS] [VOLUME]")
    if len(args) > 1:
        raise Usage('"sampan volume create" requires at most 1 argument')
    if args and opts["name"] and args[0] != opts["name"]:
        raise Usage("conflicting options: either specify --name or provide positional arg, "
                    "not both")  # fmt: skip
    body = {
        "Name": args[0] if args else opts["name"] or "",
        "Driver": opts["driver"] or "local",
        "DriverOpts": _pairs(opts["opt"], "option"),
        "Labels": _pairs(opts["label"], "label"),
    }
    client = Client(ctx.host)

    def create() -> int:
        doc = client.json("POST", "/volumes/create", None, body)
        print(doc["Name"])
        return 0

    return daemon_errors(create)


def volume_row(v: dict[str, Any]) -> dict[str, Any]:
    """One volume as docker's volume formatter shows it."""
    labels = v.get("Labels") or {}
    return {
        "Name": v.get("Name", ""),
        "Driver": v.get("Driver", ""),
        "Scope": v.get("Scope", ""),
        "Mountpoint": v.get("Mountpoint", ""),
        "Labels": ",".join(f"{k}={val}" for k, val in sorted(labels.items())),
        "Label": lambda key: labels.get(key, ""),
        "Links": "N/A",
        "Size": "N/A",
        "Availability": "N/A",
        "Group": "N/A",
        "Status": "N/A",
    }


def cmd_volume_ls(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--quiet,-q", "bool", "only display volume names"),
             Flag("--filter,-f", "list", "provide filter values (e.g. dangling=true)"),
             Flag("--format", "str", "format output using a custom template")]  # fmt: skip
    opts, args = _args(argv, flags, "ls [OPTIONS]")
    if args:
        raise Usage('"sampan volume ls" accepts no arguments')
    query = {"filters": filters_json(opts["filter"])}
    client = Client(ctx.host)

    def ls() -> int:
        doc = client.json("GET", "/volumes", query) or {}
        found = sorted(doc.get("Volumes") or [], key=lambda v: v.get("Name", ""))
        for warning in doc.get("Warnings") or []:
            err(warning)
        if opts["quiet"] and not opts["format"]:
            sys.stdout.write("".join(f"{v['Name']}\n" for v in found))
            return 0
        from sampan.cli.format import render_listing

        rows = [volume_row(v) for v in found]
        sys.stdout.write(render_listing(opts["format"], rows, VOLUME_HEADERS, LS_TABLE))
        return 0

    return daemon_errors(ls)


def cmd_volume_inspect(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--format,-f", "str", "format output using a custom template")]
    opts, args = _args(argv, flags, "inspect [OPTIONS] VOLUME [VOLUME...]")
    if not args:
        raise Usage('"sampan volume inspect" requires at least 1 argument')
    client = Client(ctx.host)
    docs: list[Any] = []
    failed = False
    try:
        for name in args:
            try:
                docs.append(client.json("GET", f"/volumes/{quote(name)}"))
            except ApiError as exc:
                err(f"Error response from daemon: {exc.message}")
                failed = True
    except DaemonUnreachable as exc:
        err(str(exc))
        return 1
    from sampan.cli.format import inspect_output

    sys.stdout.write(inspect_output(docs, opts["format"]))
    return 1 if failed else 0


def cmd_volume_rm(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--force,-f", "bool", "force the removal of one or more volumes")]
    opts, args = _args(argv, flags, "rm [OPTIONS] VOLUME [VOLUME...]")
    if not args:
        raise Usage('"sampan volume rm" requires at least 1 argument')
    client = Client(ctx.host)

    def rm() -> int:
        failed = False
        for name in args:
            try:
                client.request("DELETE", f"/volumes/{quote(name)}", {"force": opts["force"]})
            except ApiError as exc:
                err(f"Error response from daemon: {exc.message}")
                failed = True
                continue
            print(name)
        return 1 if failed else 0

    return daemon_errors(rm)


def cmd_volume_prune(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--all,-a", "bool", "remove all unused volumes, not just anonymous ones"),
             Flag("--filter", "list", "provide filter values (e.g. label=<label>)"),
             Flag("--force,-f", "bool", "do not prompt for confirmation")]  # fmt: skip
    opts, args = _args(argv, flags, "prune [OPTIONS]")
    if args:
        raise Usage('"sampan volume prune" accepts no arguments')
    if opts["all"] and any(f.startswith("all=") for f in opts["filter"]):
        raise InvalidArgument("conflicting options: cannot specify both --all and --filter all=1")
    given = any(f.startswith("all=") for f in opts["filter"])
    extra = {} if given else {"all": ["true" if opts["all"] else "false"]}
    query = {"filters": filters_json(opts["filter"], extra)}
    if not opts["force"]:
        which = "all" if opts["all"] else "anonymous"
        sys.stdout.write(f"WARNING! This will remove {which} local volumes not used by at least "
                         "one container.\nAre you sure you want to continue? [y/N] ")  # fmt: skip
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    client = Client(ctx.host)

    def prune() -> int:
        from sampan.units import human_size

        doc = client.json("POST", "/volumes/prune", query) or {}
        deleted = doc.get("VolumesDeleted") or []
        if deleted:
            sys.stdout.write("Deleted Volumes:\n" + "".join(f"{n}\n" for n in deleted) + "\n")
        print(f"Total reclaimed space: {human_size(doc.get('SpaceReclaimed') or 0)}")
        return 0

    return daemon_errors(prune)
