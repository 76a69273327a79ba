"""The image commands as clients of the daemon: images, inspect, history, tag, rmi, prune.

Each asks ``sampan daemon`` (GET /images/json, ...) and prints what docker
prints for the same flags: the same columns, the same ``--format`` fields,
the same messages.  ``image bootstrap`` alone works on the store under
``--root`` directly: it makes a base image offline, before any daemon runs
(the store is safe to share with a running daemon).
"""

from __future__ import annotations

import sys
import time

from sampan.api.client import ApiError, quote
from sampan.cli.args import Flag, parse
from sampan.cli.client import client, daemon_errors, err, filters_json
from sampan.cli.main import Context, Usage
from sampan.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "cmd_bootstrap",
    "cmd_history",
    "cmd_image_prune",
    "cmd_images",
    "cmd_inspect",
    "cmd_rmi",
    "cmd_tag",
    "image_rows",
    "split_name",
]

NONE = "<none>"

# -- images --------------------------------------------------------------------

IMAGES_FLAGS = [
    Flag("--all,-a", "bool", "show all images"),
    Flag("--quiet,-q", "bool", "only show image IDs"),
    Flag("--digests", "bool", "show digests"),
    Flag("--no-trunc", "bool", "don't truncate output"),
    Flag("--filter,-f", "list", "filter output based on conditions provided"),
    Flag("--format", "str", "format output using a custom template"),
    Flag("--help,-h", "bool", "show help"),
]


def split_name(name: str) -> tuple[str, str]:
    """("busybox", "latest") for "busybox:latest"; a port's colon is not a tag's."""
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        return name[:colon], name[colon + 1 :]
    return name, ""


def created_at(epoch: float) -> str:
    """docker's CreatedAt: ``2024-05-01 10:00:00 +0000 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(epoch))


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def image_rows(summaries: list[dict[str, Any]], no_trunc: bool, now: float) -> list[dict[str, Any]]:
    """docker's rows of ``images`` for the API's ImageSummary list: one per name."""
    from sampan.cli.format import human_duration_ago, human_size

    rows: list[dict[str, Any]] = []
    for image in summaries:
        names = [split_name(t) for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
        digests: dict[str, str] = {}
        for repo_digest in image.get("RepoDigests") or []:
            repo, _, digest = repo_digest.partition("@")
            digests.setdefault(repo, digest)
        if not names:
            names = [(repo, NONE) for repo in digests] or [(NONE, NONE)]
        created = int(image.get("Created") or 0)
        size = human_size(int(image.get("Size") or 0))
        image_id = image["Id"] if no_trunc else _short(image["Id"])
        containers = image.get("Containers", -1)
        for repo, tag in names:
            rows.append(
                {
                    "ID": image_id,
                    "Repository": repo,
                    "Tag": tag or NONE,
                    "Digest": digests.get(repo, NONE),
                    "CreatedSince": human_duration_ago(now - created) if created else "N/A",
                    "CreatedAt": created_at(created) if created else "",
                    "Size": size,
                    "VirtualSize": size,
                    "SharedSize": "N/A",
                    "UniqueSize": "N/A",
                    "Containers": "N/A" if containers < 0 else str(containers),
                }
            )
    return rows


def cmd_images(ctx: Context, argv: list[str]) -> int:
    opts, args = parse(IMAGES_FLAGS, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan images [OPTIONS] [REPOSITORY[:TAG]]")
        return 0
    if len(args) > 1:
        raise Usage('"images" requires at most 1 argument')
    if args:
        opts["filter"].append(f"reference={args[0]}")
    filters = filters_json(opts["filter"])
    query = {"all": opts["all"], "digests": opts["digests"], "filters": filters}

    def images() -> int:
        summaries = client(ctx).json("GET", "/images/json", query) or []
        rows = image_rows(summaries, bool(opts["no_trunc"]), time.time())
        if opts["quiet"] and not opts["format"]:
            sys.stdout.write("".join(f"{row['ID']}\n" for row in rows))
            return 0
        from sampan.cli.format import IMAGE_HEADERS, render

        columns = "{{.Repository}}\t{{.Tag}}\t"
        if opts["digests"]:
            columns += "{{.Digest}}\t"
        table = f"table {columns}{{{{.ID}}}}\t{{{{.CreatedSince}}}}\t{{{{.Size}}}}"
        sys.stdout.write(render(opts["format"] or table, rows, IMAGE_HEADERS, default_table=table))
        return 0

    return daemon_errors(images)


# -- inspect and history --------------------------------------------------------


INSPECT_FLAGS = [
    Flag("--format,-f", "str", "format output using a custom template"),
    Flag("--help,-h", "bool", "show help"),
]


def cmd_inspect(ctx: Context, argv: list[str]) -> int:
    opts, args = parse(INSPECT_FLAGS, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan image inspect [OPTIONS] IMAGE [IMAGE...]")
        return 0
    if not args:
        raise Usage('"image inspect" requires at least 1 argument')
    docs: list[Any] = []
    missing: list[str] = []

    def inspect() -> int:
        api = client(ctx)
        for name in args:
            try:
                docs.append(api.json("GET", f"/images/{quote(name)}/json"))
            except ApiError as exc:
                if exc.status != 404:
                    raise
                missing.append(name)
        return 0

    code = daemon_errors(inspect)
    from sampan.cli.format import inspect_output

    if code == 0 or docs:
        sys.stdout.write(inspect_output(docs, opts["format"]))
    for name in missing:
        err(f"Error: No such image: {name}")
    return 1 if missing or code else 0


HISTORY_FLAGS = [
    Flag("--human,-H", "bool", "print sizes and dates in human readable format", True),
    Flag("--no-trunc", "bool", "don't truncate output"),
    Flag("--quiet,-q", "bool", "only show image IDs"),
    Flag("--format", "str", "format output using a custom template"),
    Flag("--help,-h", "bool", "show help"),
]


def history_rows(entries: list[dict[str, Any]], opts: dict[str, Any], now: float) -> list[Any]:
    """docker's rows of ``history`` for GET /images/{name}/history (newest first)."""
    from sampan.cli.format import human_duration_ago, human_size

    rows: list[dict[str, Any]] = []
    for entry in entries:
        image_id = str(entry.get("Id") or "<missing>")
        if image_id != "<missing>" and not opts["no_trunc"]:
            image_id = _short(image_id)
        created = int(entry.get("Created") or 0)
        created_by = str(entry.get("CreatedBy") or "")
        if not opts["no_trunc"] and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        size = int(entry.get("Size") or 0)
        rows.append(
            {
                "ID": image_id,
                "CreatedSince": human_duration_ago(now - created) if created else "N/A",
                "CreatedAt": created_at(created) if created else "",
                "CreatedBy": created_by,
                "Size": human_size(size) if opts["human"] else str(size),
                "Comment": str(entry.get("Comment") or ""),
            }
        )
    return rows


def cmd_history(ctx: Context, argv: list[str]) -> int:
    opts, args = parse(HISTORY_FLAGS, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan history [OPTIONS] IMAGE")
        return 0
    if len(args) != 1:
        raise Usage('"history" requires exactly 1 argument')

    def history() -> int:
        entries = client(ctx).json("GET", f"/images/{quote(args[0])}/history") or []
        rows = history_rows(entries, opts, time.time())
        if opts["quiet"]:
            sys.stdout.write("".join(f"{row['ID']}\n" for row in rows))
            return 0
        from sampan.cli.format import HISTORY_HEADERS, render

        table = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
        spec = opts["format"] or table
        sys.stdout.write(render(spec, rows, HISTORY_HEADERS, default_table=table))
        return 0

    return daemon_errors(history)


# -- tag, rmi, prune -------------------------------------------------------------


def cmd_tag(ctx: Context, argv: list[str]) -> int:
    opts, args = parse([Flag("--help,-h", "bool")], argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]")
        return 0
    if len(args) != 2:
        raise Usage('"tag" requires exactly 2 arguments')
    from sampan.oci.reference import parse_reference

    target = parse_reference(args[1], default_tag=False)  # a bad name fails here, as docker's
    if target.digest is not None:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {args[1]}")
    query = {"repo": str(target.repository()), "tag": target.tag or "latest"}

    def tag() -> int:
        client(ctx).request("POST", f"/images/{quote(args[0])}/tag", query).close()
        return 0

    return daemon_errors(tag)


def print_removal(items: list[dict[str, str]], lower: bool = False) -> None:
    """DELETE /images/{name}'s items as docker prints them ("Untagged: ...", "Deleted: ...")."""
    out = []
    for item in items:
        for key in ("Untagged", "Deleted"):
            if key in item:
                out.append(f"{key.lower() if lower else key}: {item[key]}\n")
    sys.stdout.write("".join(out))


def cmd_rmi(ctx: Context, argv: list[str]) -> int:
    flags = [
        Flag("--force,-f", "bool", "force removal of the image"),
        Flag("--no-prune", "bool", "do not delete untagged parents"),
        Flag("--help,-h", "bool"),
    ]
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan rmi [OPTIONS] IMAGE [IMAGE...]")
        return 0
    if not args:
        raise Usage('"rmi" requires at least 1 argument')
    query = {"force": opts["force"], "noprune": opts["no_prune"]}
    failed = 0

    def rmi() -> int:
        nonlocal failed
        api = client(ctx)
        for name in args:
            try:
                items = api.json("DELETE", f"/images/{quote(name)}", query) or []
            except ApiError as exc:
                err(f"Error response from daemon: {exc.message}")
                failed += 1
                continue
            print_removal(items)
        return 1 if failed else 0

    return daemon_errors(rmi)


def _confirm(question: str) -> bool:
    sys.stdout.write(f"{question} [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def cmd_image_prune(ctx: Context, argv: list[str]) -> int:
    flags = [
        Flag("--all,-a", "bool", "remove all unused images, not just dangling ones"),
        Flag("--force,-f", "bool", "do not prompt for confirmation"),
        Flag("--filter", "list", "provide filter values (not supported yet)"),
        Flag("--help,-h", "bool"),
    ]
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan image prune [OPTIONS]")
        return 0
    if args:
        raise Usage('"image prune" accepts no arguments')
    if opts["filter"]:
        from sampan.errors import Unsupported

        raise Unsupported("image prune --filter is not supported yet")
    if not opts["force"]:
        what = (
            "all images without at least one container associated to them"
            if opts["all"]
            else "all dangling images"
        )
        if not _confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?"):
            return 0
    query = {"filters": '{"dangling":["false"]}' if opts["all"] else None}

    def prune() -> int:
        from sampan.cli.format import human_size

        doc = client(ctx).json("POST", "/images/prune", query) or {}
        items = doc.get("ImagesDeleted") or []
        if items:
            print("Deleted Images:")
            print_removal(items, lower=True)
            print()
        print(f"Total reclaimed space: {human_size(int(doc.get('SpaceReclaimed') or 0))}")
        return 0

    return daemon_errors(prune)


def cmd_bootstrap(ctx: Context, argv: list[str]) -> int:
    flags = [
        Flag("--tag,-t", "list", "name the image (default busybox:latest / debian:bookworm)"),
        Flag("--mirror", "str", "Debian mirror for debootstrap (default: the host's apt source)"),
        Flag("--suite", "str", "Debian suite", "bookworm"),
        Flag("--quiet,-q", "bool", "print only the image id"),
        Flag("--help,-h", "bool"),
    ]
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"] or len(args) != 1 or args[0] not in ("busybox", "debian"):
        print("Usage:  sampan image bootstrap [OPTIONS] busybox|debian\n")
        print("Build a base image offline into the store under --root ($SAMPAN_ROOT):")
        print("it works on the store directly, with or without a running daemon (the")
        print("daemon on that root sees the image at once).")
        return 0 if opts["help"] else 1
    from sampan.image import bootstrap
    from sampan.image.store import ImageStore

    log = None if opts["quiet"] else (lambda line: print(line, file=sys.stderr))
    import os

    with ImageStore(os.path.join(ctx.root, "image")) as store:
        if args[0] == "busybox":
            record = bootstrap.busybox(store, opts["tag"] or ["busybox:latest"], log=log)
        else:
            record = bootstrap.debian(
                store,
                opts["tag"] or [f"debian:{opts['suite']}"],
                suite=opts["suite"],
                mirror=opts["mirror"],
                log=log,
            )
    print(record.id)
    return 0
