"""``sampan pause``, ``unpause``, ``update`` and ``top``: clients of the daemon, docker's output.

sampan pause web db          # prints each name; a failure is reported, exit 1
sampan update -m 256m --memory-swap 512m web
sampan top web aux           # ps's columns for the container's processes
"""

from __future__ import annotations

import sys

from sampan.api.client import ApiError, Client, quote
from sampan.cli.args import Flag, parse
from sampan.cli.client import daemon_errors, err, on_each
from sampan.cli.main import Context, Usage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["cmd_pause", "cmd_top", "cmd_unpause", "cmd_update", "top_table"]

HELP = Flag("--help", "bool", "show help")


def _each(names: list[str], act: Callable[[str], None]) -> int:
    """ACT on each name, printing it; a refusal is reported and the exit code is 1."""
    failed = False
    for name in names:
        try:
            act(name)
        except ApiError as exc:
            err(f"Error response from daemon: {exc.message}")
            failed = True
            continue
        sys.stdout.write(name + "\n")
        sys.stdout.flush()
    return 1 if failed else 0


def _args(argv: list[str], flags: list[Flag], command: str, usage: str) -> tuple[Any, list[str]]:
    opts, args = parse([*flags, HELP], argv, stop_at_positional=command == "top")
    if opts["help"]:
        print(f"Usage:  sampan {command} {usage}")
        raise SystemExit(0)
    if not args:
        raise Usage(f'"sampan {command}" requires at least 1 argument')
    return opts, args


def cmd_pause(ctx: Context, argv: list[str]) -> int:
    _, names = _args(argv, [], "pause", "CONTAINER [CONTAINER...]")
    return on_each(ctx.host, names, "POST", "pause")


def cmd_unpause(ctx: Context, argv: list[str]) -> int:
    _, names = _args(argv, [], "unpause", "CONTAINER [CONTAINER...]")
    return on_each(ctx.host, names, "POST", "unpause")


def cmd_update(ctx: Context, argv: list[str]) -> int:
    from sampan.cli.limits import UPDATE_FLAGS, update_body

    opts, names = _args(argv, UPDATE_FLAGS, "update", "[OPTIONS] CONTAINER [CONTAINER...]")
    body = update_body(opts)
    if not body:
        raise Usage("you must provide one or more flags when using this command")
    client = Client(ctx.host)

    def update(name: str) -> None:
        doc = client.json("POST", f"/containers/{quote(name)}/update", body=body) or {}
        for warning in doc.get("Warnings") or []:
            err(f"WARNING: {warning}")

    return daemon_errors(lambda: _each(names, update))


def top_table(doc: dict[str, Any]) -> str:
    """docker top's table: Go's tabwriter with min width 20, padding 3."""
    from sampan.cli.format import align

    rows = [doc.get("Titles") or [], *(doc.get("Processes") or [])]
    return align("".join("\t".join(row) + "\n" for row in rows), minwidth=20, padding=3)


def cmd_top(ctx: Context, argv: list[str]) -> int:
    _, args = _args(argv, [], "top", "CONTAINER [ps OPTIONS]")
    name, ps_args = args[0], args[1:]
    client = Client(ctx.host)

    def top() -> int:
        query = {"ps_args": " ".join(ps_args) or None}
        doc = client.json("GET", f"/containers/{quote(name)}/top", query) or {}
        sys.stdout.write(top_table(doc))
        return 0

    return daemon_errors(top)
