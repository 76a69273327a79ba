"""``sampan save``, ``load`` and ``import``: images to and from tarballs, through the daemon.

save streams GET /images/get into a file (written beside it and renamed:
a failed save leaves no partial file) or into stdout; load and import send
the tarball (a file, or stdin for ``-``) as the chunked body of POST
/images/load and POST /images/create?fromSrc=-.
"""

from __future__ import annotations

import contextlib
import os
import sys

from sampan.cli.args import Flag, parse
from sampan.cli.client import client, daemon_errors, query_string
from sampan.cli.main import Context, Usage
from sampan.errors import InvalidArgument, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    from sampan.api.client import Response

__all__ = ["cmd_import", "cmd_load", "cmd_save"]


def _open_input(source: str) -> contextlib.AbstractContextManager[BinaryIO]:
    """The file named, or stdin for ``-``."""
    if source == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    return open(source, "rb")


def _copy(response: Response, out: BinaryIO) -> None:
    for chunk in response.chunks():
        out.write(chunk)


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
    output = opts["output"]
    if output is None and sys.stdout.isatty():
        raise InvalidArgument(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect"
        )
    path = "/images/get" + query_string([("names", name) for name in args])

    def save() -> int:
        # A missing image is the daemon's 404, before a byte is written.
        response = client(ctx).request("GET", path)
        if output is None:
            _copy(response, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return 0
        directory = os.path.dirname(os.path.abspath(output))
        tmp = os.path.join(directory, f".{os.path.basename(output)}.sampan-save-{os.getpid()}")
        try:
            with open(tmp, "wb") as out:
                _copy(response, out)
            os.replace(tmp, output)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return 0

    return daemon_errors(save)


def _stream_lines(response: Response) -> list[str]:
    """The "stream" and "status" texts of a JSON message stream; its error raised."""
    from sampan.cli.client import messages

    texts: list[str] = []
    for doc in messages(response):
        text = doc.get("stream") or doc.get("status")
        if isinstance(text, str):
            texts.append(text)
    return texts


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
    if not opts["input"] and sys.stdin.isatty():
        raise InvalidArgument("requested load from stdin, but stdin is empty: use -i or redirect")
    query = {"quiet": "1", "platform": opts["platform"]}

    def load() -> int:
        with _open_input(opts["input"] or "-") as stream:
            response = client(ctx).upload("/images/load", query, stream)
        texts = _stream_lines(response)
        if not opts["quiet"]:
            sys.stdout.write("".join(t if t.endswith("\n") else t + "\n" for t in texts))
        return 0

    return daemon_errors(load)


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
    pairs = [("fromSrc", "-")]
    if ref:
        from sampan.oci.reference import parse_reference

        parsed = parse_reference(ref, default_tag=False)  # a bad name fails before the upload
        pairs += [("repo", str(parsed.repository())), ("tag", parsed.tag or "latest")]
    pairs += [("changes", change) for change in opts["change"]]
    if opts["message"]:
        pairs.append(("message", opts["message"]))
    if opts["platform"]:
        pairs.append(("platform", opts["platform"]))
    path = "/images/create" + query_string(pairs)

    def import_() -> int:
        with _open_input(source) as tarball:
            response = client(ctx).upload(path, None, tarball)
        texts = _stream_lines(response)
        print(texts[-1].strip() if texts else "")
        return 0

    return daemon_errors(import_)
