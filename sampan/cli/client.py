"""What the CLI's commands share as clients of the daemon.

``daemon_errors`` prints the daemon's refusals as docker's CLI does
("Error response from daemon: ...") and its absence as one line; the
progress stream of pull/push (docker's JSON lines) is drawn with the same
display the store's own pull uses (sampan/image/progress.py): live bars on
a terminal, one line per status change otherwise.  ``registry_auth`` is
docker's X-Registry-Auth header, from the client's config.json -- the
daemon never reads a user's credentials.
"""

from __future__ import annotations

import sys

from sampan import _json
from sampan.api.client import ApiError, Client, DaemonUnreachable
from sampan.errors import InvalidArgument, SampanError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any

    from sampan.api.client import Response
    from sampan.cli.main import Context
    from sampan.image.progress import Progress

__all__ = [
    "client",
    "daemon_errors",
    "each",
    "err",
    "follow_progress",
    "query_string",
    "registry_auth",
]


def client(ctx: Context) -> Client:
    return Client(ctx.host)


def err(line: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def daemon_errors(run: Callable[[], int], failure: int = 1, prefix: str = "") -> int:
    """RUN(); the daemon's refusal or its absence printed as docker prints them (after
    PREFIX: run's "sampan: "), FAILURE returned."""
    try:
        return run()
    except DaemonUnreachable as exc:
        err(f"{prefix}{exc}")
    except ApiError as exc:
        err(f"{prefix}Error response from daemon: {exc.message}")
    return failure


def each(args: list[str], act: Callable[[str], str | None]) -> int:
    """ACT on every argument (docker's stop/kill/rm/wait): print what it returns, report
    each failure, exit 1 if any failed.  An absent daemon ends it at once."""
    failed = False
    for name in args:
        try:
            out = act(name)
        except ApiError as exc:
            err(f"Error response from daemon: {exc.message}")
            failed = True
            continue
        if out is not None:
            sys.stdout.write(out + "\n")
            sys.stdout.flush()
    return 1 if failed else 0


def query_string(pairs: list[tuple[str, str]]) -> str:
    """``?k=v&k=v2``: for the queries with a repeated key (save's names, import's changes)."""
    from sampan.api.client import quote

    return "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs) if pairs else ""


def messages(
    response: Response, error: Callable[[str], Exception] = SampanError
) -> Iterator[dict[str, Any]]:
    """The records of a JSON message stream (pull, push, load, import); its ``error``
    record raised as ERROR(text).  Lines that are not JSON objects are skipped."""
    for line in response.lines():
        try:
            doc = _json.loads(line)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        if doc.get("error"):
            raise error(str(doc["error"]))
        yield doc


def follow_progress(response: Response, progress: Progress) -> list[dict[str, Any]]:
    """Draw docker's JSON progress stream of RESPONSE on PROGRESS; return its aux records.

    An ``error`` line (a pull that failed once its stream started) is raised as a
    SampanError: docker's CLI prints it as it is, not as the daemon's refusal.
    """
    aux: list[dict[str, Any]] = []
    try:
        for doc in messages(response):
            if isinstance(doc.get("aux"), dict):
                aux.append(doc["aux"])
                continue
            status = doc.get("status")
            if not isinstance(status, str):
                if isinstance(doc.get("stream"), str):
                    progress.message(doc["stream"].rstrip("\n"))
                continue
            layer_id = doc.get("id")
            if not layer_id:
                progress.message(status)
                continue
            detail = doc.get("progressDetail") or {}
            current = detail.get("current") if isinstance(detail, dict) else None
            total = detail.get("total") if isinstance(detail, dict) else None
            if isinstance(current, int):
                progress.layer(str(layer_id), status, current, total if total else None)
            else:
                progress.layer(str(layer_id), status)
    finally:
        response.close()
        progress.close()
    return aux


def registry_auth(config_dir: str | None, domain: str) -> dict[str, str]:
    """docker's X-Registry-Auth for DOMAIN from config.json ({} without credentials):
    base64url of {"username", "password", "serveraddress"} (or an identity token)."""
    from sampan.image.dockerconfig import load_credentials

    creds = load_credentials(domain, config_dir)
    if creds is None:
        return {}
    doc: dict[str, str] = {"serveraddress": domain}
    if creds.identity_token:
        doc["identitytoken"] = creds.identity_token
    else:
        doc["username"], doc["password"] = creds.username, creds.password
    return {"X-Registry-Auth": encode_auth(doc)}


def encode_auth(doc: dict[str, str]) -> str:
    import binascii

    raw = binascii.b2a_base64(_json.dumps(doc).encode(), newline=False).decode()
    return raw.replace("+", "-").replace("/", "_")


def on_each(
    host: str, names: list[str], method: str, action: str, query: dict[str, Any] | None = None
) -> int:
    """docker's verb on several containers (start, stop, kill, rm, restart, pause, ...):
    METHOD /containers/NAME/ACTION for each NAME, the name printed once it is done."""
    from sampan.api.client import Client, quote

    client = Client(host)

    def act(name: str) -> str:
        path = f"/containers/{quote(name)}" + (f"/{action}" if action else "")
        client.request(method, path, query).read()
        return name

    return daemon_errors(lambda: each(names, act))


def filters_json(specs: Iterable[str], extra: dict[str, list[str]] | None = None) -> str | None:
    """docker's ``--filter key=value`` flags (after EXTRA) as the API's filters
    ({"key": [values]}, JSON), or None when there are none."""
    wanted: dict[str, list[str]] = {k: list(v) for k, v in (extra or {}).items()}
    for spec in specs:
        key, eq, value = spec.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {spec}")
        wanted.setdefault(key, []).append(value)
    if not wanted:
        return None
    return _json.dumps(wanted)
