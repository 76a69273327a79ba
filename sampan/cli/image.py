"""The local image commands: images, inspect, history, tag, rmi, prune, system df.

Each prints what docker prints for the same flags: the same columns, the
same ``--format`` fields, the same messages.  The records come from the
store; this module only shapes them.
"""

from __future__ import annotations

import sys
import time

from sampan.cli.args import Flag, parse
from sampan.cli.main import Context, Usage
from sampan.engine.images import (  # the records in docker's shapes, shared with the API
    NONE,
    created_at,
    familiar,
    image_filter,
    image_inspect,
)
from sampan.errors import InvalidArgument, NotFound
from sampan.units import parse_rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.image.store import ImageStore

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


def _image_filters(store: ImageStore, specs: list[str]) -> Any:
    """One predicate for docker's ``--filter key=value`` (same keys ANDed, values ORed)."""
    wanted: dict[str, list[str]] = {}
    for spec in specs:
        key, eq, value = spec.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {spec}")
        wanted.setdefault(key, []).append(value)
    return image_filter(store, wanted)


def _image_rows(ctx: Context, opts: dict[str, Any]) -> list[dict[str, Any]]:
    from sampan.cli.format import human_duration_ago, human_size

    store = ctx.store
    keep = _image_filters(store, opts["filter"])
    now = time.time()
    rows: list[dict[str, Any]] = []
    records = sorted(store.list(), key=lambda r: (parse_rfc3339(r.created), r.added), reverse=True)
    for record in records:
        names = [familiar(t) for t in record.tags]
        digests: dict[str, str] = {}
        for repo_digest in record.repo_digests:
            name, _, digest = repo_digest.partition("@")
            digests.setdefault(familiar(name)[0], digest)
        if not names:
            names = [(repo, NONE) for repo in digests] or [(NONE, NONE)]
        created = parse_rfc3339(record.created)
        for repo, tag in names:
            if not keep(record, repo, tag):
                continue
            image_id = record.id if opts["no_trunc"] else record.short_id
            rows.append(
                {
                    "ID": image_id,
                    "Repository": repo,
                    "Tag": tag,
                    "Digest": digests.get(repo, NONE),
                    "CreatedSince": human_duration_ago(now - created) if created else "N/A",
                    "CreatedAt": created_at(created) if created else "",
                    "Size": human_size(record.size),
                    "VirtualSize": human_size(record.size),
                    "SharedSize": "N/A",
                    "UniqueSize": "N/A",
                    "Containers": "N/A",
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
    rows = _image_rows(ctx, opts)
    from sampan.cli.format import IMAGE_HEADERS, render

    if opts["quiet"]:
        sys.stdout.write("".join(f"{row['ID']}\n" for row in rows))
        return 0
    columns = "{{.Repository}}\t{{.Tag}}\t"
    if opts["digests"]:
        columns += "{{.Digest}}\t"
    table = f"table {columns}{{{{.ID}}}}\t{{{{.CreatedSince}}}}\t{{{{.Size}}}}"
    spec = opts["format"] or table
    sys.stdout.write(render(spec, rows, IMAGE_HEADERS, default_table=table))
    return 0


# -- inspect and history --------------------------------------------------------


INSPECT_FLAGS = [
    Flag("--format,-f", "str", "format output using a custom template"),
    Flag("--type", "str", "return JSON for the specified type (image)"),
    Flag("--size,-s", "bool", "display total file sizes"),
    Flag("--help,-h", "bool", "show help"),
]


def cmd_inspect(ctx: Context, argv: list[str]) -> int:
    opts, args = parse(INSPECT_FLAGS, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan inspect [OPTIONS] NAME|ID [NAME|ID...]")
        return 0
    if not args:
        raise Usage('"inspect" requires at least 1 argument')
    if opts["type"] not in (None, "image"):
        raise InvalidArgument(f"--type {opts['type']}: only images exist until the engine does")
    from sampan.cli.format import inspect_output

    docs = []
    missing = []
    for name in args:
        try:
            docs.append(image_inspect(ctx.store, ctx.store.resolve(name)))
        except NotFound:
            missing.append(name)
    sys.stdout.write(inspect_output(docs, opts["format"]))
    for name in missing:
        print(f"Error: No such object: {name}", file=sys.stderr)
    return 1 if missing else 0


HISTORY_FLAGS = [
    Flag("--human,-H", "bool", "print sizes and dates in human readable format", True),
    Flag("--no-trunc", "bool", "don't truncate output"),
    Flag("--quiet,-q", "bool", "only show image IDs"),
    Flag("--format", "str", "format output using a custom template"),
    Flag("--help,-h", "bool", "show help"),
]


def cmd_history(ctx: Context, argv: list[str]) -> int:
    opts, args = parse(HISTORY_FLAGS, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan history [OPTIONS] IMAGE")
        return 0
    if len(args) != 1:
        raise Usage('"history" requires exactly 1 argument')
    from sampan.cli.format import HISTORY_HEADERS, human_duration_ago, human_size, render

    store = ctx.store
    record = store.resolve(args[0])
    history = store.config_of(record).history
    sizes = [store.snapshots.size(c) for c in record.chain]
    rows: list[dict[str, Any]] = []
    layer = 0
    now = time.time()
    for entry in history:
        size = 0
        if not entry.get("empty_layer"):
            size = sizes[layer] if layer < len(sizes) else 0
            layer += 1
        created = parse_rfc3339(str(entry.get("created", "")))
        created_by = str(entry.get("created_by", ""))
        if not opts["no_trunc"] and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        human = opts["human"]
        rows.append(
            {
                "ID": "<missing>",
                "CreatedSince": human_duration_ago(now - created) if created else "N/A",
                "CreatedAt": created_at(created) if created else "",
                "CreatedBy": created_by,
                "Size": human_size(size) if human else str(size),
                "Comment": str(entry.get("comment", "")),
            }
        )
    rows.reverse()
    if rows:
        rows[0]["ID"] = record.id if opts["no_trunc"] else record.short_id
    if opts["quiet"]:
        sys.stdout.write("".join(f"{row['ID']}\n" for row in rows))
        return 0
    table = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    sys.stdout.write(render(opts["format"] or table, rows, HISTORY_HEADERS, default_table=table))
    return 0


# -- tag, rmi, prune -------------------------------------------------------------


def cmd_tag(ctx: Context, argv: list[str]) -> int:
    opts, args = parse([Flag("--help,-h", "bool")], argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]")
        return 0
    if len(args) != 2:
        raise Usage('"tag" requires exactly 2 arguments')
    ctx.store.tag(args[0], args[1])
    return 0


def _print_removal(untagged: list[str], deleted: list[str], lower: bool = False) -> None:
    out = []
    for name in untagged:
        if "@" in name:
            repo, _, digest = name.partition("@")
            shown = f"{familiar(repo)[0]}@{digest}"
        else:
            repo, tag = familiar(name)
            shown = f"{repo}:{tag}"
        out.append(f"{'untagged' if lower else 'Untagged'}: {shown}\n")
    out += [f"{'deleted' if lower else 'Deleted'}: {image_id}\n" for image_id in deleted]
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
    from sampan.errors import SampanError, describe

    failed = 0
    for name in args:
        try:
            removal = ctx.store.remove(name, force=bool(opts["force"]))
        except SampanError as exc:
            print(f"Error response from daemon: {describe(exc)}", file=sys.stderr)
            failed += 1
            continue
        _print_removal(removal.untagged, removal.deleted)
    return 1 if failed else 0


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
    from sampan.cli.format import human_size

    removal = ctx.store.prune(all_unused=bool(opts["all"]))
    if removal.untagged or removal.deleted:
        print("Deleted Images:")
        _print_removal(removal.untagged, removal.deleted, lower=True)
        print()
    print(f"Total reclaimed space: {human_size(removal.reclaimed)}")
    return 0


def cmd_system_df(ctx: Context, argv: list[str]) -> int:
    flags = [
        Flag("--verbose,-v", "bool", "show detailed information on space usage"),
        Flag("--format", "str", "format output using a custom template"),
        Flag("--help,-h", "bool"),
    ]
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan system df [OPTIONS]")
        return 0
    if args:
        raise Usage('"system df" accepts no arguments')
    if opts["verbose"]:
        from sampan.errors import Unsupported

        raise Unsupported("system df -v is not supported yet")
    from sampan.cli.format import human_size, render

    usage = ctx.store.disk_usage()
    size, reclaimable = usage["size"], usage["reclaimable"]
    percent = f" ({100 * reclaimable // size}%)" if size else ""
    rows: list[dict[str, object]] = [
        {
            "Type": "Images",
            "TotalCount": usage["images"],
            "Active": usage["active"],
            "Size": human_size(size),
            "Reclaimable": human_size(reclaimable) + percent,
        },
    ]
    for kind in ("Containers", "Local Volumes", "Build Cache"):
        row: dict[str, object] = {"Type": kind, "TotalCount": 0, "Active": 0, "Size": "0B"}
        row["Reclaimable"] = "0B"
        rows.append(row)
    table = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
    headers = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE"}
    headers["Reclaimable"] = "RECLAIMABLE"
    sys.stdout.write(render(opts["format"] or table, rows, headers, default_table=table))
    return 0


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
        print("Usage:  sampan image bootstrap [OPTIONS] busybox|debian")
        return 0 if opts["help"] else 1
    from sampan.image import bootstrap

    log = None if opts["quiet"] else (lambda line: print(line, file=sys.stderr))
    if args[0] == "busybox":
        record = bootstrap.busybox(ctx.store, opts["tag"] or ["busybox:latest"], log=log)
    else:
        record = bootstrap.debian(
            ctx.store,
            opts["tag"] or [f"debian:{opts['suite']}"],
            suite=opts["suite"],
            mirror=opts["mirror"],
            log=log,
        )
    print(record.id)
    return 0
