"""``sampan build`` and ``sampan builder prune``: docker's classic builder's CLI.

The context -- a directory, or ``-``: a tar on stdin, or a Dockerfile on
stdin with an empty context -- is sent to POST /build as docker's CLI sends
it (sampan/build/context.py writes the tar in a thread, streamed, never
whole in memory); ``-f -`` and a Dockerfile outside the context go inside
it under a generated name.  The daemon's stream is shown as docker's CLI
shows it (``Step 1/3 : ...``), or with ``--progress=plain`` as BuildKit's
plain log with each step's time measured here; ``-q`` prints the id only.
``--output`` exports the built image's files (a container of it, created
and never started, exported and removed): ``type=tar,dest=FILE|-`` or
``type=local,dest=DIR`` (``-o DIR``).  A failed RUN's exit status is the
command's.
"""

from __future__ import annotations

import os
import sys
import time

from sampan.cli.args import Flag, parse
from sampan.cli.client import client, daemon_errors, err
from sampan.cli.main import Context, Usage
from sampan.errors import InvalidArgument, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

__all__ = ["cmd_build", "cmd_builder_prune"]

_BUILDKIT_ONLY = ("secret", "ssh", "cache-to", "push", "load", "builder", "allow", "attest",
                  "sbom", "provenance", "call", "check", "annotation", "build-context",
                  "metadata-file", "no-cache-filter")  # fmt: skip
_FLAGS = [
    Flag("--tag,-t", "list", "name and optionally a tag in the 'name:tag' format"),
    Flag("--file,-f", "str", "name of the Dockerfile (default: 'PATH/Dockerfile')"),
    Flag("--build-arg", "list", "set build-time variables"),
    Flag("--label", "list", "set metadata for an image"),
    Flag("--quiet,-q", "bool", "suppress the build output and print image ID on success"),
    Flag("--iidfile", "str", "write the image ID to the file"),
    Flag("--no-cache", "bool", "do not use cache when building the image"),
    Flag("--pull", "bool", "always attempt to pull a newer version of the image"),
    Flag("--cache-from", "list", "images to consider as cache sources"),
    Flag("--target", "str", "set the target build stage to build"),
    Flag("--network", "str", "set the networking mode for the RUN instructions during build"),
    Flag("--platform", "str", "set platform if server is multi-platform capable"),
    Flag("--rm", "str", "remove intermediate containers after a successful build", "true"),
    Flag("--force-rm", "bool", "always remove intermediate containers"),
    Flag("--progress", "str", "type of progress output (auto, plain, tty, quiet)", "auto"),
    Flag("--output,-o", "list", "output destination (format: type=local,dest=path)"),
    Flag("--add-host", "list", "add a custom host-to-IP mapping (not supported)"),
    Flag("--shm-size", "str", "size of /dev/shm (not supported)"),
    Flag("--memory,-m", "str", "memory limit (not supported)"),
    Flag("--help,-h", "bool"),
]
_TAR_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def _check_unsupported(argv: list[str]) -> None:
    for arg in argv:
        if arg == "--":
            return
        name = arg[2:].partition("=")[0] if arg.startswith("--") else ""
        if name in _BUILDKIT_ONLY:
            raise Unsupported(f"build --{name} is BuildKit's and is not supported")


def _build_args(items: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"--build-arg {item!r}: a name is required")
        out[key] = value if eq else os.environ.get(key)
    return out


def _labels(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"--label {item!r}: a name is required")
        out[key] = value
    return out


def _outputs(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if "=" not in item:
            out.append(("local", item))
            continue
        fields = dict(part.partition("=")[::2] for part in item.split(","))
        kind = fields.pop("type", "local")
        dest = fields.pop("dest", "")
        if kind not in ("local", "tar") or fields:
            raise Unsupported(f"--output {item}: only type=local and type=tar with dest= are "
                              "supported")  # fmt: skip
        if not dest:
            raise InvalidArgument(f"--output {item}: dest= is required")
        out.append((kind, dest))
    return out


class _Context:
    """The body to send: a reader of the context tar, written by a thread when needed."""

    def __init__(self, path: str, dockerfile: str | None) -> None:
        self.reader: Any = None
        self.dockerfile = "Dockerfile"
        self.thread: Any = None
        self.error: BaseException | None = None
        extra: dict[str, bytes] = {}
        if path == "-":
            head = sys.stdin.buffer.peek(512)[:512] if hasattr(sys.stdin.buffer, "peek") else b""
            if head.startswith(_TAR_MAGIC) or head[257:262] == b"ustar":
                if dockerfile == "-":
                    raise InvalidArgument("a tar context on stdin and -f - cannot be combined")
                self.reader = sys.stdin.buffer
                self.dockerfile = dockerfile or "Dockerfile"
                return
            extra["Dockerfile"] = sys.stdin.buffer.read()
            root = None
        else:
            if not os.path.isdir(path):
                raise InvalidArgument(f'unable to prepare context: path "{path}" not found')
            root = path
            if dockerfile == "-":
                self.dockerfile = f".dockerfile.{os.urandom(10).hex()}"
                extra[self.dockerfile] = sys.stdin.buffer.read()
            elif dockerfile:
                full = os.path.abspath(dockerfile)
                rel = os.path.relpath(full, os.path.abspath(path))
                if rel.startswith("../"):
                    self.dockerfile = f".dockerfile.{os.urandom(10).hex()}"
                    with open(full, "rb") as f:
                        extra[self.dockerfile] = f.read()
                else:
                    self.dockerfile = rel
                if not os.path.exists(full):
                    raise InvalidArgument(f"unable to prepare context: {dockerfile}: no such file")
        self._start(root, extra)

    def _start(self, root: str | None, extra: dict[str, bytes]) -> None:
        import threading

        from sampan.build.context import write_context_tar

        rfd, wfd = os.pipe()
        self.reader = os.fdopen(rfd, "rb")
        writer = os.fdopen(wfd, "wb")

        def write() -> None:
            try:
                if root is None:
                    import tempfile

                    with tempfile.TemporaryDirectory() as empty:
                        write_context_tar(empty, writer, dockerfile=self.dockerfile, extra=extra)
                else:
                    write_context_tar(root, writer, dockerfile=self.dockerfile, extra=extra)
            except BaseException as exc:  # reported after the upload
                self.error = exc
            finally:
                try:
                    writer.close()
                except OSError:
                    pass

        self.thread = threading.Thread(target=write, daemon=True)
        self.thread.start()

    def finish(self) -> None:
        if self.thread is not None:
            self.thread.join()
        if self.error is not None and not isinstance(self.error, BrokenPipeError):
            raise self.error


class _Plain:
    """BuildKit's plain progress from the classic stream: #N lines, each step timed."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.n = 0
        self.started = 0.0
        self.cached = False
        self.t0 = time.monotonic()

    def _close(self) -> None:
        if self.n:
            if self.cached:
                self.out.write(f"#{self.n} CACHED\n\n")
            else:
                self.out.write(f"#{self.n} DONE {time.monotonic() - self.started:.1f}s\n\n")

    def feed(self, text: str) -> None:
        for line in text.splitlines():
            if line.startswith("Step ") and " : " in line:
                self._close()
                self.n += 1
                self.cached = False
                self.started = time.monotonic()
                numbers, _, inst = line[5:].partition(" : ")
                self.out.write(f"#{self.n} [{numbers}] {inst}\n")
            elif line.startswith(" ---> "):
                if line == " ---> Using cache":
                    self.cached = True
            elif line.startswith("Successfully "):
                self._close()
                self.n = 0
                self.out.write(f"#{line}\n")
            elif self.n:
                self.out.write(f"#{self.n} {time.monotonic() - self.started:.3f} {line}\n")
            else:
                self.out.write(line + "\n")
        self.out.flush()

    def end(self) -> None:
        self._close()
        self.out.write(f"# total {time.monotonic() - self.t0:.1f}s\n")
        self.out.flush()


def cmd_build(ctx: Context, argv: list[str]) -> int:
    _check_unsupported(argv)
    opts, args = parse(_FLAGS, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan build [OPTIONS] PATH | -")
        return 0
    if len(args) != 1:
        raise Usage('"build" requires exactly 1 argument')
    for name in ("add_host", "shm_size", "memory"):
        if opts[name]:
            raise Unsupported(f"build --{name.replace('_', '-')} is not supported")
    progress = opts["progress"]
    if progress not in ("auto", "plain", "tty", "quiet"):
        raise InvalidArgument(f"--progress {progress}: expected auto, plain, tty or quiet")
    quiet = opts["quiet"] or progress == "quiet"
    outputs = _outputs(opts["output"])
    from sampan.oci.reference import parse_reference

    for tag in opts["tag"]:
        parse_reference(tag)  # a bad tag fails before the context is sent
    context = _Context(args[0], opts["file"])
    query: dict[str, Any] = {
        "dockerfile": context.dockerfile,
        "t": list(opts["tag"]),
        "q": quiet,
        "nocache": opts["no_cache"],
        "pull": opts["pull"],
        "rm": "0" if opts["rm"] in ("false", "0") else "1",
        "forcerm": opts["force_rm"],
        "target": opts["target"] or None,
        "networkmode": opts["network"] or None,
        "platform": opts["platform"] or None,
    }
    from sampan import _json

    if opts["build_arg"]:
        query["buildargs"] = _json.dumps(_build_args(opts["build_arg"]))
    if opts["label"]:
        query["labels"] = _json.dumps(_labels(opts["label"]))
    if opts["cache_from"]:
        query["cachefrom"] = _json.dumps(list(opts["cache_from"]))
    status = [1]

    def run() -> int:
        api = client(ctx)
        response = api.upload("/build", query, context.reader)
        image = _follow(response, quiet, progress, status)
        context.finish()
        if image is None:
            return status[0]
        if quiet:
            print(image)
        if opts["iidfile"]:
            with open(opts["iidfile"], "w") as f:
                f.write(image)
        for kind, dest in outputs:
            _export(api, image, kind, dest)
        return 0

    return daemon_errors(run)


def _follow(response: Any, quiet: bool, progress: str, status: list[int]) -> str | None:
    """Show the build stream; the image id, or None after printing the error."""
    from sampan import _json

    plain = _Plain(sys.stdout) if progress in ("plain", "tty") and not quiet else None
    image = None
    for line in response.lines():
        try:
            doc = _json.loads(line)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        if doc.get("error"):
            detail = doc.get("errorDetail") or {}
            code = detail.get("code") if isinstance(detail, dict) else None
            if plain is not None:
                plain.end()
            err(str(doc["error"]))
            status[0] = code if isinstance(code, int) and code > 0 else 1
            return None
        aux = doc.get("aux")
        if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
            image = aux["ID"]
        text = doc.get("stream")
        if isinstance(text, str) and not quiet:
            if plain is not None:
                plain.feed(text)
            else:
                sys.stdout.write(text)
                sys.stdout.flush()
        elif isinstance(text, str) and quiet and text.startswith("sha256:"):
            image = text.strip()
    if plain is not None:
        plain.end()
    if image is None:
        err("the build ended without an image")
    return image


def _export(api: Any, image: str, kind: str, dest: str) -> None:
    """--output: the image's files as a tar (DEST "-": stdout) or into the directory DEST."""
    from sampan.api.client import quote

    created = api.json("POST", "/containers/create", None,
                       {"Image": image, "Cmd": ["/"], "Entrypoint": [""]})  # fmt: skip
    cid = created["Id"]
    try:
        response = api.request("GET", f"/containers/{quote(cid)}/export")
        if kind == "tar":
            if dest == "-":
                _copy(response, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                with open(dest, "wb") as f:
                    _copy(response, f)
            return
        from sampan.image.unpack import extract_archive

        os.makedirs(dest, exist_ok=True)
        fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            owner = None if os.geteuid() == 0 else (os.getuid(), os.getgid())
            body: Any = _Body(response)
            extract_archive(body, fd, label=f"--output {dest}", owner=owner)
        finally:
            os.close(fd)
    finally:
        api.send("DELETE", f"/containers/{quote(cid)}", {"force": "1"}).close()


class _Body:
    def __init__(self, response: Any) -> None:
        self._chunks = response.chunks()
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._chunks)
            except StopIteration:
                break
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


def _copy(response: Any, out: BinaryIO) -> None:
    for chunk in response.chunks():
        out.write(chunk)


def cmd_builder_prune(ctx: Context, argv: list[str]) -> int:
    """``builder prune [-a] [-f]``."""
    flags = [
        Flag("--all,-a", "bool", "remove all unused build cache, not just dangling ones"),
        Flag("--force,-f", "bool", "do not prompt for confirmation"),
        Flag("--filter", "list", "provide filter values (not supported)"),
        Flag("--keep-storage", "str", "amount of disk space to keep for cache (not supported)"),
        Flag("--help,-h", "bool"),
    ]
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan builder prune [OPTIONS]")
        return 0
    if args:
        raise Usage('"builder prune" accepts no arguments')
    if opts["filter"] or opts["keep_storage"]:
        raise Unsupported("builder prune --filter and --keep-storage are not supported")
    if not opts["force"]:
        from sampan.cli.image import _confirm

        if not _confirm("WARNING! This will remove all dangling build cache.\n"
                        "Are you sure you want to continue?"):  # fmt: skip
            return 0

    def prune() -> int:
        from sampan.cli.format import human_size

        doc = client(ctx).json("POST", "/build/prune", {"all": opts["all"]}) or {}
        deleted = doc.get("CachesDeleted") or []
        if deleted:
            print("Deleted build cache objects:")
            for item in deleted:
                print(str(item).removeprefix("sha256:"))
            print()
        print(f"Total reclaimed space: {human_size(int(doc.get('SpaceReclaimed') or 0))}")
        return 0

    return daemon_errors(prune)
