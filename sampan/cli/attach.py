"""``sampan attach``, and the attached part of ``run`` and ``start -a``: docker's sequence.

run/start: attach (before start, so no output is lost), register the wait
(before start, so the exit is never missed), start, then copy the streams
(sampan.cli.interactive) and exit with the container's code -- or 0 when
the detach keys left it running.  ``attach``: a running container only
("You cannot attach to a stopped container, start it first"), its exit
code at the end, and after a detach docker's "read escape sequence" with
exit 1.  Without a TTY, --sig-proxy (the default) forwards this process's
signals to the container.
"""

from __future__ import annotations

import os

from sampan.api.client import ApiError, Client, Response, quote
from sampan.cli.args import Flag, parse
from sampan.cli.client import err
from sampan.cli.interactive import SignalProxy, Terminal, pump
from sampan.cli.main import Context, Usage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["attach_query", "cmd_attach", "start_attached"]

ESCAPED = "read escape sequence"


def attach_query(stdin: bool, streams: set[str], keys: str) -> dict[str, str]:
    query = {"stream": "1"}
    if stdin:
        query["stdin"] = "1"
    for name in ("stdout", "stderr"):
        if name in streams:
            query[name] = "1"
    if keys:
        query["detachKeys"] = keys
    return query


def _keys(text: str) -> bytes:
    from sampan.api.detachkeys import parse as parse_keys

    return parse_keys(text)


def _session(
    client: Client, cid: str, attach: Response, *, tty: bool, stdin: bool, keys: str,
    sig_proxy: bool,
) -> bool:  # fmt: skip
    """Pump ATTACH's stream; True when detached."""

    def resize(rows: int, cols: int) -> None:
        client.request("POST", f"/containers/{cid}/resize", {"h": rows, "w": cols}).read()

    if not tty and sig_proxy:
        with SignalProxy(client, cid):
            return pump(attach, tty=False, stdin=stdin, keys=b"")
    return pump(attach, tty=tty, stdin=stdin, keys=_keys(keys), resize=resize if tty else None)


def start_attached(
    client: Client,
    cid: str,
    condition: str,
    start: Callable[[], None],
    *,
    stdin: bool = False,
    tty: bool = False,
    streams: tuple[str, ...] = ("stdout", "stderr"),
    keys: str = "",
    sig_proxy: bool = True,
) -> int:
    """Attach, register the wait, START(); the container's exit code (0 once detached)."""
    attach = client.hijack(f"/containers/{cid}/attach", attach_query(stdin, set(streams), keys))
    try:
        waiter = client.request("POST", f"/containers/{cid}/wait", {"condition": condition})
        try:
            with Terminal(tty and stdin):
                start()
                detached = _session(client, cid, attach, tty=tty, stdin=stdin, keys=keys,
                                    sig_proxy=sig_proxy)  # fmt: skip
            if detached:
                return 0
            doc = waiter.json() or {}
        finally:
            waiter.close()
    finally:
        attach.close()
    error = (doc.get("Error") or {}).get("Message")
    if error:
        err(f"sampan: {error}")
    return int(doc.get("StatusCode", 255))


def cmd_attach(ctx: Context, argv: list[str]) -> int:
    flags = [
        Flag("--no-stdin", "bool", "do not attach STDIN"),
        Flag("--sig-proxy", "bool", "proxy all received signals to the process", True),
        Flag("--detach-keys", "str", "override the key sequence for detaching a container"),
        Flag("--help", "bool", "show help"),
    ]
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan attach [OPTIONS] CONTAINER")
        return 0
    if len(args) != 1:
        raise Usage('"sampan attach" requires exactly 1 argument')
    client = Client(ctx.host)
    keys = opts["detach_keys"] or ""
    try:
        _keys(keys)
        doc = client.json("GET", f"/containers/{quote(args[0])}/json")
        cid = str(doc["Id"])
        state = doc.get("State") or {}
        if state.get("Paused"):
            err("You cannot attach to a paused container, unpause it first")
            return 1
        if not state.get("Running"):
            err("You cannot attach to a stopped container, start it first")
            return 1
        config = doc.get("Config") or {}
        tty = bool(config.get("Tty"))
        stdin = bool(config.get("OpenStdin")) and not opts["no_stdin"]
        if tty and stdin and not os.isatty(0):
            err("the input device is not a TTY")
            return 1
        query = attach_query(stdin, {"stdout", "stderr"}, keys)
        attach = client.hijack(f"/containers/{cid}/attach", query)
        with Terminal(tty and stdin):
            detached = _session(client, cid, attach, tty=tty, stdin=stdin, keys=keys,
                                sig_proxy=opts["sig_proxy"])  # fmt: skip
        if detached:
            err(ESCAPED)
            return 1
        done = client.json("POST", f"/containers/{cid}/wait", {"condition": "not-running"})
        return int((done or {}).get("StatusCode", 0))
    except ApiError as exc:
        err(f"Error response from daemon: {exc.message}")
    except Exception as exc:  # the daemon's absence, a bad flag value
        from sampan.errors import describe

        err(f"sampan: {describe(exc)}")
    return 1


def start_existing(
    client: Client, ref: str, condition: str, start: Callable[[], None], stdin: bool, keys: str
) -> int:
    """``start -a [-i]``: the container's own TTY setting decides raw or framed."""
    doc = client.json("GET", f"/containers/{ref}/json") or {}
    config = doc.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = stdin and bool(config.get("OpenStdin"))
    if tty and stdin and not os.isatty(0):
        err("the input device is not a TTY")
        return 1
    return start_attached(client, str(doc.get("Id") or ref), condition, start, stdin=stdin,
                          tty=tty, keys=keys)  # fmt: skip
