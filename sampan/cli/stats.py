"""``sampan stats``: docker's live table of containers' resource use.

    sampan stats [--all] [--no-stream] [--no-trunc] [--format F] [CONTAINER...]

Each container's numbers come from the daemon's /containers/{id}/stats,
one streaming request per container in a thread; the table is redrawn
every second -- in place on a terminal (cursor home, each line cleared to
its end, the rest of the screen cleared), one table after another
otherwise.  Without names it follows the running containers (all with
``--all``), picking up new ones each second.  ``--no-stream`` prints one
table of one-shot samples.

The columns are docker's, computed as its CLI computes them: CPU % is the
container's CPU time over the host's in the interval, times the online
CPUs; memory is the usage less the inactive page cache; NET I/O and BLOCK
I/O are decimal sizes, memory binary ones.
"""

from __future__ import annotations

import sys
import threading
import time

from sampan.api.client import ApiError, Client, DaemonUnreachable, quote
from sampan.cli.args import Flag, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.cli.main import Context

__all__ = ["STATS_HEADERS", "STATS_TABLE", "cmd_stats", "row_of"]

STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
               "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")  # fmt: skip
STATS_HEADERS = {
    "ID": "CONTAINER ID",
    "Container": "CONTAINER",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}
FLAGS = [
    Flag("--all,-a", "bool", "show all containers (default shows just running)"),
    Flag("--format", "str", "format output using a custom template"),
    Flag("--no-stream", "bool", "disable streaming stats and only pull the first result"),
    Flag("--no-trunc", "bool", "do not truncate output"),
    Flag("--help", "bool", "show help"),
]
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def bytes_size(size: float) -> str:
    """go-units' BytesSize: binary units, four significant digits ("1.5MiB", "7.63GiB")."""
    i = 0
    while size >= 1024.0 and i < len(_BINARY) - 1:
        size /= 1024.0
        i += 1
    return format(size, ".4g") + _BINARY[i]


def _cpu_percent(doc: dict[str, Any]) -> float:
    cpu, pre = doc.get("cpu_stats") or {}, doc.get("precpu_stats") or {}
    delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get(
        "total_usage", 0
    )
    system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    if system > 0 and delta > 0:
        return float(delta / system * online * 100.0)
    return 0.0


def _memory(doc: dict[str, Any]) -> tuple[float, float]:
    mem = doc.get("memory_stats") or {}
    usage, stats = mem.get("usage", 0), mem.get("stats") or {}
    inactive = stats.get("total_inactive_file", stats.get("inactive_file"))
    if inactive is not None and inactive < usage:
        usage -= inactive
    return float(usage), float(mem.get("limit", 0))


def row_of(doc: dict[str, Any], trunc: bool) -> dict[str, str]:
    """One stats document as docker's stats formatter shows it."""
    from sampan.units import human_size

    cid = str(doc.get("id", ""))
    usage, limit = _memory(doc)
    rx = tx = 0
    for net in (doc.get("networks") or {}).values():
        rx += net.get("rx_bytes", 0)
        tx += net.get("tx_bytes", 0)
    read = write = 0
    for entry in (doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += entry.get("value", 0)
        elif op == "write":
            write += entry.get("value", 0)
    name = str(doc.get("name", "")).removeprefix("/")
    return {
        "ID": cid[:12] if trunc else cid,
        "Container": doc.get("_ref", name),
        "Name": name,
        "CPUPerc": f"{_cpu_percent(doc):.2f}%",
        "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}",
        "MemPerc": f"{usage / limit * 100.0 if limit else 0.0:.2f}%",
        "NetIO": f"{human_size(rx)} / {human_size(tx)}",
        "BlockIO": f"{human_size(read)} / {human_size(write)}",
        "PIDs": str((doc.get("pids_stats") or {}).get("current", 0)),
    }


class _Watch:
    """One streaming stats request in a thread; ``latest`` is its newest document."""

    def __init__(self, client: Client, ref: str) -> None:
        self.ref = ref
        self.latest: dict[str, Any] | None = None
        self.error = ""
        self.done = False
        self._client = client
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()

    def _run(self) -> None:
        from sampan import _json

        try:
            response = self._client.request("GET", f"/containers/{quote(self.ref)}/stats",
                                            {"stream": "1"})  # fmt: skip
            for line in response.lines():
                doc = _json.loads(line)
                doc["_ref"] = self.ref
                self.latest = doc
        except (ApiError, DaemonUnreachable, OSError, ValueError) as exc:
            self.error = getattr(exc, "message", "") or str(exc)
        finally:
            self.done = True


def _names(client: Client, show_all: bool) -> list[str]:
    found = client.json("GET", "/containers/json", {"all": show_all}) or []
    return [c["Id"] for c in found]


def _render(spec: str, rows: list[dict[str, str]]) -> str:
    from sampan.cli.format import render

    return render(spec, rows, STATS_HEADERS, default_table=STATS_TABLE)


def _once(client: Client, refs: list[str], trunc: bool, spec: str) -> int:
    from sampan import _json

    docs: dict[str, dict[str, Any]] = {}
    errors: list[str] = []

    def fetch(ref: str) -> None:
        try:
            doc = _json.loads(client.request("GET", f"/containers/{quote(ref)}/stats",
                                             {"stream": "0"}).read())  # fmt: skip
            doc["_ref"] = ref
            docs[ref] = doc
        except ApiError as exc:
            errors.append(exc.message)

    threads = [threading.Thread(target=fetch, args=(ref,), daemon=True) for ref in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for message in errors:
            sys.stderr.write(f"Error response from daemon: {message}\n")
        return 1
    sys.stdout.write(_render(spec, [row_of(docs[r], trunc) for r in refs if r in docs]))
    return 0


def _stream(client: Client, given: list[str], show_all: bool, trunc: bool, spec: str) -> int:
    tty = sys.stdout.isatty()
    watches: dict[str, _Watch] = {}
    for ref in given:
        watches[ref] = _Watch(client, ref)
    while True:
        if not given:
            current = _names(client, show_all)
            for ref in current:
                if ref not in watches or watches[ref].done:
                    watches[ref] = _Watch(client, ref)
            for ref in list(watches):
                if ref not in current:
                    del watches[ref]
        time.sleep(1.0 if watches else 0.5)
        failed = [w for w in watches.values() if w.done and w.error]
        if given and failed and len(failed) == len(watches):
            for w in failed:
                sys.stderr.write(f"Error response from daemon: {w.error}\n")
            return 1
        rows = [row_of(w.latest, trunc) for w in watches.values() if w.latest is not None]
        text = _render(spec, rows)
        if tty:
            lines = text.rstrip("\n").split("\n")
            text = "\033[H" + "".join(line + "\033[K\n" for line in lines) + "\033[J"
        sys.stdout.write(text)
        sys.stdout.flush()


def cmd_stats(ctx: Context, argv: list[str]) -> int:
    opts, refs = parse(FLAGS, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan stats [OPTIONS] [CONTAINER...]")
        return 0
    spec = opts["format"] or STATS_TABLE
    trunc = not opts["no_trunc"]
    client = Client(ctx.host)
    try:
        if opts["no_stream"]:
            return _once(client, refs or _names(client, opts["all"]), trunc, spec)
        if sys.stdout.isatty():
            sys.stdout.write("\033[2J\033[H")
        return _stream(client, refs, opts["all"], trunc, spec)
    except DaemonUnreachable as exc:
        sys.stderr.write(f"{exc}\n")
    except ApiError as exc:
        sys.stderr.write(f"Error response from daemon: {exc.message}\n")
    except KeyboardInterrupt:
        return 0
    return 1
