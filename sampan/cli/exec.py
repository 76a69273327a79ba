"""``sampan exec``: run a command in a running container, as docker's CLI does.

Create the exec, start it on a hijacked connection, copy the streams
(sampan.cli.interactive), then read the exec's exit code -- the command's,
or 126/127 when it could not be invoked or was not found (the daemon
printed why on the stream).  ``-d`` starts it and returns at once.  A
detach (TTY) prints "read escape sequence" and exits 1, as docker.
Errors from the daemon exit 1 ("No such container", "is not running").
"""

from __future__ import annotations

import os
import time

from sampan.api.client import ApiError, Client, quote
from sampan.cli.args import Flag, parse
from sampan.cli.client import err
from sampan.cli.main import Context

__all__ = ["cmd_exec"]

FLAGS = [
    Flag("--interactive,-i", "bool", "keep STDIN open even if not attached"),
    Flag("--tty,-t", "bool", "allocate a pseudo-TTY"),
    Flag("--detach,-d", "bool", "detached mode: run command in the background"),
    Flag("--env,-e", "list", "set environment variables"),
    Flag("--env-file", "list", "read in a file of environment variables"),
    Flag("--user,-u", "str", "username or UID (format: <name|uid>[:<group|gid>])"),
    Flag("--workdir,-w", "str", "working directory inside the container"),
    Flag("--privileged", "bool", "give extended privileges to the command"),
    Flag("--detach-keys", "str", "override the key sequence for detaching a container"),
    Flag("--help", "bool", "show help"),
]


def _usage(message: str) -> int:
    err(f"sampan: {message}\nSee 'sampan exec --help'.")
    return 1


def cmd_exec(ctx: Context, argv: list[str]) -> int:
    from sampan.errors import SampanError, describe

    try:
        opts, args = parse(FLAGS, argv)
    except SampanError as exc:
        return _usage(describe(exc))
    if opts["help"]:
        print("Usage:  sampan exec [OPTIONS] CONTAINER COMMAND [ARG...]")
        return 0
    if len(args) < 2:
        return _usage('"sampan exec" requires at least 2 arguments')
    client = Client(ctx.host)
    try:
        from sampan.cli.container import _env

        body = {
            "User": opts["user"] or "",
            "Privileged": bool(opts["privileged"]),
            "Tty": bool(opts["tty"]),
            "AttachStdin": bool(opts["interactive"]) and not opts["detach"],
            "AttachStdout": not opts["detach"],
            "AttachStderr": not opts["detach"],
            "DetachKeys": opts["detach_keys"] or "",
            "Env": _env(opts),
            "WorkingDir": opts["workdir"] or "",
            "Cmd": args[1:],
        }
        if body["Tty"] and body["AttachStdin"] and not os.isatty(0):
            err("the input device is not a TTY")
            return 1
        created = client.json("POST", f"/containers/{quote(args[0])}/exec", None, body)
        eid = str(created["Id"])
        if opts["detach"]:
            client.request("POST", f"/exec/{eid}/start", None, {"Detach": True}).read()
            return 0
        return _attached(client, eid, body)
    except ApiError as exc:
        err(f"Error response from daemon: {exc.message}")
    except SampanError as exc:
        err(f"sampan: {describe(exc)}")
    return 1


def _attached(client: Client, eid: str, body: dict[str, object]) -> int:
    from sampan.api.detachkeys import parse as parse_keys
    from sampan.cli.interactive import Terminal, pump

    tty, stdin = bool(body["Tty"]), bool(body["AttachStdin"])
    headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
    start = {"Detach": False, "Tty": tty}
    response = client.request("POST", f"/exec/{eid}/start", None, start, headers=headers)

    def resize(rows: int, cols: int) -> None:
        client.request("POST", f"/exec/{eid}/resize", {"h": rows, "w": cols}).read()

    keys = parse_keys(str(body["DetachKeys"]))
    with Terminal(tty and stdin):
        detached = pump(response, tty=tty, stdin=stdin, keys=keys, resize=resize if tty else None)
    if detached:
        err("read escape sequence")
        return 1
    deadline = time.monotonic() + 10
    while True:
        doc = client.json("GET", f"/exec/{eid}/json") or {}
        if not doc.get("Running") or time.monotonic() > deadline:
            code = doc.get("ExitCode")
            return int(code) if code is not None else 0
        time.sleep(0.02)
