"""``sampan save``, ``load`` and ``import``: images to and from tarballs (image/archive*.py)."""

from __future__ import annotations

import contextlib
import os
import sys

from sampan.cli.args import Flag, parse
from sampan.cli.main import Context, Usage
from sampan.errors import InvalidArgument, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    from sampan.oci.image import Platform


def _platform(text: str | None) -> Platform | None:
    if not text:
        return None
    from sampan.oci.image import parse_platform

    return parse_platform(text)


def _open_input(source: str) -> contextlib.AbstractContextManager[BinaryIO]:
    """The file named, or stdin for ``-``."""
    if source == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    return open(source, "rb")


def cmd_save(ctx: Context, argv: list[str]) -> int:
    flags = [
        Flag("--output,-o", "str", "write to a file, instead of STDOUT"),
        Flag("--platform", "str", "save only the given platform (not supported)"),
        Flag("--help,-h", "bool"),
    ]
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan save [OPTIONS] IMAGE [IMAGE...]")
        return 0
    if not args:
        raise Usage('"save" requires at least 1 argument')
    if opts["platform"]:
        raise Unsupported("save --platform: images are stored for one platform already")
    from sampan.image import archive

    store = ctx.store
    for name in args:
        store.resolve(name)  # a missing image fails before anything is written
    output = opts["output"]
    if output is None:
        if sys.stdout.isatty():
            raise InvalidArgument(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect"
            )
        archive.save(store, args, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    # Written beside the target and renamed: a failed save leaves no partial file.
    directory = os.path.dirname(os.path.abspath(output))
    tmp = os.path.join(directory, f".{os.path.basename(output)}.sampan-save-{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            archive.save(store, args, out)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return 0


def cmd_load(ctx: Context, argv: list[str]) -> int:
    flags = [
        Flag("--input,-i", "str", "read from tar archive file, instead of STDIN"),
        Flag("--quiet,-q", "bool", "suppress the load output"),
        Flag("--platform", "str", "load only the given platform"),
        Flag("--help,-h", "bool"),
    ]
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan load [OPTIONS]")
        return 0
    if args:
        raise Usage('"load" accepts no arguments')
    from sampan.image import archive

    platform = _platform(opts["platform"])
    if opts["input"]:
        with open(opts["input"], "rb") as stream:
            names = archive.load(ctx.store, stream, platform=platform)
    else:
        if sys.stdin.isatty():
            raise InvalidArgument(
                "requested load from stdin, but stdin is empty: use -i or redirect"
            )
        names = archive.load(ctx.store, sys.stdin.buffer, platform=platform)
    if not opts["quiet"]:
        lines = [
            f"Loaded image ID: {n}\n" if n.startswith("sha256:") else f"Loaded image: {n}\n"
            for n in names
        ]
        sys.stdout.write("".join(lines))
    return 0


def cmd_import(ctx: Context, argv: list[str]) -> int:
    flags = [
        Flag("--change,-c", "list", "apply Dockerfile instruction to the created image"),
        Flag("--message,-m", "str", "set commit message for imported image", ""),
        Flag("--platform", "str", "set platform if server is multi-platform capable"),
        Flag("--help,-h", "bool"),
    ]
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]")
        return 0
    if not 1 <= len(args) <= 2:
        raise Usage('"import" requires at least 1 and at most 2 arguments')
    source, ref = args[0], (args[1] if len(args) == 2 else None)
    if "://" in source:
        raise Unsupported(f"import from a URL ({source}): download it, then import the file")
    from sampan.image import archive

    with _open_input(source) as tarball:
        image_id = archive.import_rootfs(
            ctx.store,
            tarball,
            changes=opts["change"],
            ref=ref,
            message=opts["message"],
            platform=_platform(opts["platform"]),
        )
    print(image_id)
    return 0
