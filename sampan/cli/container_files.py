"""The container file commands: cp, diff, commit, export, port.

``cp`` is docker's client-side half of a copy (the daemon only stats,
archives and extracts): it stats the destination in the container, decides
which directory the archive goes into and what its top entry is named
(docker's PrepareArchiveCopy: a file onto a file takes the destination's
name; a directory onto a missing path becomes that path; "dir/." copies
what the directory holds), and streams a tar made on the fly.  Out of a
container it reads the daemon's tar, renames its top entry the same way
and extracts it with the image layer's safe extractor (copy mode: nothing
written through a symlink or outside the destination, no device nodes, no
chown).  ``-`` reads a tar from stdin or writes the daemon's to stdout.
The "Successfully copied ..." line goes to stderr, only when stdout is a
terminal (docker's -q is implied otherwise).

``port`` reads inspect's NetworkSettings.Ports, as the docker CLI does.
"""

from __future__ import annotations

import os
import sys
import threading

from sampan import _json
from sampan.api.client import Client, quote
from sampan.cli.args import Flag, parse
from sampan.cli.client import client, daemon_errors, query_string
from sampan.cli.main import Context, Usage
from sampan.errors import InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from sampan.api.client import Response

__all__ = ["cmd_commit", "cmd_cp", "cmd_diff", "cmd_export", "cmd_port"]

_KINDS = {0: "C", 1: "A", 2: "D"}
_MODE_DIR = 1 << 31
_MODE_SYMLINK = 1 << 27


def _opts(
    argv: list[str], flags: list[Flag], command: str, usage: str, nargs: tuple[int, int]
) -> dict[str, Any]:
    opts, args = parse([*flags, Flag("--help,-h", "bool")], argv, stop_at_positional=False)
    if opts["help"]:
        print(f"Usage:  sampan {command} {usage}")
        raise SystemExit(0)
    low, high = nargs
    if not low <= len(args) <= high:
        if low == high:
            raise Usage(f'"sampan {command}" requires exactly {low} argument(s).')
        raise Usage(f'"sampan {command}" requires at least {low} and at most {high} arguments.')
    opts["args"] = args
    return opts  # type: ignore[no-any-return]


# -- diff, export, port -------------------------------------------------------------------


def cmd_diff(ctx: Context, argv: list[str]) -> int:
    opts = _opts(argv, [], "diff", "CONTAINER", (1, 1))

    def diff() -> int:
        found = client(ctx).json("GET", f"/containers/{quote(opts['args'][0])}/changes") or []
        sys.stdout.write("".join(f"{_KINDS.get(c['Kind'], '?')} {c['Path']}\n" for c in found))
        return 0

    return daemon_errors(diff)


def _copy_body(response: Response, out: BinaryIO) -> None:
    for chunk in response.chunks():
        out.write(chunk)


def cmd_export(ctx: Context, argv: list[str]) -> int:
    flags = [Flag("--output,-o", "str", "write to a file, instead of STDOUT")]
    opts = _opts(argv, flags, "export", "[OPTIONS] CONTAINER", (1, 1))
    output = opts["output"]
    if output is None and sys.stdout.isatty():
        raise InvalidArgument(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect"
        )

    def export() -> int:
        response = client(ctx).request("GET", f"/containers/{quote(opts['args'][0])}/export")
        if output is None:
            _copy_body(response, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return 0
        _save_as(response, output)
        return 0

    return daemon_errors(export)


def _save_as(response: Response, output: str) -> None:
    """The body into OUTPUT, through a temporary file renamed once complete."""
    directory = os.path.dirname(os.path.abspath(output))
    tmp = os.path.join(directory, f".{os.path.basename(output)}.sampan-{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            _copy_body(response, out)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _ports_of(doc: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    ports = (doc.get("NetworkSettings") or {}).get("Ports") or {}
    return {k: v for k, v in ports.items() if v}


def _binding(b: dict[str, str]) -> str:
    ip = b.get("HostIp") or "0.0.0.0"
    return f"[{ip}]:{b.get('HostPort', '')}" if ":" in ip else f"{ip}:{b.get('HostPort', '')}"


def _port_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    return (int(port) if port.isdigit() else 0, proto)


def cmd_port(ctx: Context, argv: list[str]) -> int:
    opts = _opts(argv, [], "port", "CONTAINER [PRIVATE_PORT[/PROTO]]", (1, 2))
    name = opts["args"][0]

    def port() -> int:
        doc = client(ctx).json("GET", f"/containers/{quote(name)}/json") or {}
        ports = _ports_of(doc)
        if len(opts["args"]) == 1:
            for key in sorted(ports, key=_port_key):
                for b in ports[key]:
                    print(f"{key} -> {_binding(b)}")
            return 0
        asked = opts["args"][1]
        number, _, proto = asked.partition("/")
        if not number.isdigit() or not 0 < int(number) < 65536:
            raise InvalidArgument(f"invalid port: {asked}")
        key = f"{int(number)}/{(proto or 'tcp').lower()}"
        if key not in ports:
            raise NotFound(f"No public port '{asked}' published for {name}")
        for b in ports[key]:
            print(_binding(b))
        return 0

    return daemon_errors(port)


# -- commit -------------------------------------------------------------------------------


def cmd_commit(ctx: Context, argv: list[str]) -> int:
    flags = [
        Flag("--author,-a", "str", 'author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
        Flag("--change,-c", "list", "apply Dockerfile instruction to the created image"),
        Flag("--message,-m", "str", "commit message"),
        Flag("--pause,-p", "bool", "pause container during commit (default true)", True),
    ]
    opts = _opts(argv, flags, "commit", "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", (1, 2))
    args = opts["args"]
    repo = tag = ""
    if len(args) == 2:
        repo, _, tag = args[1].rpartition(":") if ":" in args[1].rsplit("/", 1)[-1] else (
            args[1], "", "")  # fmt: skip
        if "@" in args[1]:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {args[1]}")
    pairs = [("container", args[0]), ("repo", repo), ("tag", tag),
             ("comment", opts["message"] or ""), ("author", opts["author"] or ""),
             ("pause", "1" if opts["pause"] else "0")]  # fmt: skip
    pairs += [("changes", change) for change in opts["change"]]

    def commit() -> int:
        doc = client(ctx).json("POST", "/commit" + query_string(pairs), body={}) or {}
        print(doc.get("Id", ""))
        return 0

    return daemon_errors(commit)


# -- cp -----------------------------------------------------------------------------------


def _split_arg(arg: str) -> tuple[str, str]:
    """docker's splitCpArg: ("container", "path") or ("", local path)."""
    if arg.startswith("/"):
        return "", arg
    head, colon, rest = arg.partition(":")
    if not colon or head.startswith("."):
        return "", arg
    return head, rest


def _clean(path: str) -> str:
    """Go's filepath.Clean."""
    import posixpath

    return posixpath.normpath(path) if path else "."


def _current_dir(path: str) -> bool:
    return path == "." or path.endswith("/.")


def _split_dir_entry(path: str) -> tuple[str, str]:
    """docker's SplitPathDirEntry: (dir, base) with "dir/." kept as base "."."""
    import posixpath

    cleaned = _clean(path)
    if _current_dir(path):
        cleaned = cleaned.rstrip("/") + "/." if cleaned != "/" else "/."
    base = posixpath.basename(cleaned.rstrip("/")) or "/"
    return posixpath.dirname(cleaned) or ".", base


def _preserve(cleaned: str, original: str) -> str:
    """docker's PreserveTrailingDotOrSeparator."""
    if _current_dir(original) and not _current_dir(cleaned):
        return cleaned.rstrip("/") + "/."
    if original.endswith("/") and not cleaned.endswith("/"):
        return cleaned + "/"
    return cleaned


def _rebase_name(path: str, resolved: str) -> tuple[str, str]:
    """docker's GetRebaseName: (resolved path with PATH's trailing "/" or "/.", rebase)."""
    import posixpath

    resolved = _preserve(resolved, path)
    if posixpath.basename(path.rstrip("/")) != posixpath.basename(resolved.rstrip("/")):
        return resolved, posixpath.basename(path.rstrip("/"))
    return resolved, ""


class _Info:
    """docker's archive.CopyInfo."""

    def __init__(
        self, path: str, exists: bool = False, is_dir: bool = False, rebase: str = ""
    ) -> None:
        self.path = path
        self.exists = exists
        self.is_dir = is_dir
        self.rebase = rebase


def _stat(c: Client, container: str, path: str) -> dict[str, Any] | None:
    """HEAD archive: the path stat, or None when the daemon says no."""
    import base64

    response = c.send("HEAD", f"/containers/{quote(container)}/archive", {"path": path})
    response.close()
    if response.status >= 400:
        return None
    header = response.headers.get("x-docker-container-path-stat", "")
    doc = _json.loads(base64.b64decode(header)) if header else None
    return doc if isinstance(doc, dict) else None


def _prepare(src: _Info, dst: _Info) -> tuple[str, str, str]:
    """docker's PrepareArchiveCopy: (the directory to extract into, the old top name,
    the new top name) -- the two names equal when nothing is renamed."""
    dst_dir, dst_base = _split_dir_entry(dst.path)
    _, src_base = _split_dir_entry(src.path)
    if dst.exists and dst.is_dir:
        return dst.path, src_base, src.rebase or src_base
    if dst.exists and src.is_dir:
        raise InvalidArgument("cannot copy directory")
    if not dst.exists and not src.is_dir and (dst.path.endswith("/") or _current_dir(dst.path)):
        raise InvalidArgument("no such directory")
    return dst_dir, src_base, dst_base


class _BodyReader:
    """A response body as a file (read(n))."""

    def __init__(self, response: Response) -> None:
        self._chunks = response.chunks()
        self._buf = b""
        self.total = 0

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buf += chunk
        out, self._buf = (self._buf, b"") if n < 0 else (self._buf[:n], self._buf[n:])
        self.total += len(out)
        return out


def _renamed(old: str, new: str, name: str) -> str:
    """docker's RebaseArchiveEntries on one name: OLD's first occurrence becomes NEW."""
    if old == "/":
        return new + name
    return name.replace(old, new, 1)


def _rebased(source: Any, old: str, new: str) -> BinaryIO:
    """A tar stream: SOURCE's tar with every name's OLD top replaced by NEW (a pipe fed
    by a thread; a failure there ends the stream early, which the reader reports)."""
    import tarfile

    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")

    def pump() -> None:
        try:
            with (
                os.fdopen(write_fd, "wb") as out,
                tarfile.open(fileobj=source, mode="r|*") as tin,
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tout,
            ):
                for member in tin:
                    member.name = _renamed(old, new, member.name)
                    if member.islnk():
                        member.linkname = _renamed(old, new, member.linkname)
                    data = tin.extractfile(member) if member.isreg() else None
                    tout.addfile(member, data)
        except Exception:
            pass

    threading.Thread(target=pump, daemon=True).start()
    return reader  # type: ignore[return-value]


def _destination(path: str) -> _Info:
    """docker's CopyInfoDestinationPath: the local destination, symlinks followed."""
    import posixpath
    import stat

    original = path
    for _ in range(11):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            parent, _ = _split_dir_entry(path)
            try:
                pst = os.stat(parent)
            except OSError as exc:
                raise InvalidArgument(f"stat {parent}: {(exc.strerror or '').lower()}") from None
            if not stat.S_ISDIR(pst.st_mode):
                raise InvalidArgument("not a directory")
            return _Info(path)
        if not stat.S_ISLNK(st.st_mode):
            return _Info(path, True, stat.S_ISDIR(st.st_mode))
        target = os.readlink(path)
        if not target.startswith("/"):
            target = posixpath.join(_split_dir_entry(path)[0], target)
        path = target
    raise InvalidArgument(f"too many symlinks in {original}")


def _human(size: int) -> str:
    from sampan.units import human_size

    return human_size(size, 3)


def _local_size(path: str) -> int:
    import stat

    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size if stat.S_ISREG(st.st_mode) else 0
    total = 0
    for top, _, files in os.walk(path):
        for name in files:
            try:
                fst = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if stat.S_ISREG(fst.st_mode):
                total += fst.st_size
    return total


def _absolute(path: str) -> str:
    return _preserve(os.path.abspath(path), path)


def _check_output(path: str) -> None:
    """docker's ValidateOutputPath."""
    import stat

    parent = os.path.dirname(_clean(path))
    if parent not in ("", ".") and not os.path.exists(parent):
        raise InvalidArgument(f'invalid output path: directory "{parent}" does not exist')
    try:
        st = os.stat(path)
    except OSError:
        return
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        kind = "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else (
            "an irregular file")  # fmt: skip
        raise InvalidArgument(
            f'invalid output path: "{path}" must be a directory or a regular file: got {kind}'
        )


def _from_container(c: Client, container: str, src: str, dst: str, opts: dict[str, Any]) -> int:
    import posixpath

    if dst != "-":
        dst = _absolute(dst)
        _check_output(dst)
    rebase = ""
    if opts["follow_link"]:
        st = _stat(c, container, src)
        if st is not None and st.get("mode", 0) & _MODE_SYMLINK:
            target = st.get("linkTarget", "")
            if not target.startswith("/"):
                target = posixpath.join(_split_dir_entry(src)[0], target)
            src, rebase = _rebase_name(src, target)
    response = c.request("GET", f"/containers/{quote(container)}/archive", {"path": src})
    if dst == "-":
        _copy_body(response, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    import base64

    header = response.headers.get("x-docker-container-path-stat", "")
    stat_doc = _json.loads(base64.b64decode(header)) if header else {}
    info = _Info(src, True, bool(stat_doc.get("mode", 0) & _MODE_DIR), rebase)
    body = _BodyReader(response)
    source: Any = body
    if rebase:
        source = _rebased(body, _split_dir_entry(info.path)[1], rebase)
    into, old, new = _prepare(info, _destination(dst))
    if old != new:
        source = _rebased(source, old, new)
    _extract_local(source, into)
    if not opts["quiet"]:
        size = body.total if info.is_dir else int(stat_doc.get("size", 0))
        _summary(size, body.total, dst)
    return 0


def _extract_local(source: Any, into: str) -> None:
    """The tar SOURCE extracted into the local directory INTO (no owners changed)."""
    from sampan.image.unpack import extract_archive

    fd = os.open(into, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        extract_archive(source, fd, label=f"extracting into {into}", owner=(-1, -1),
                        no_overwrite_dir_non_dir=True)  # fmt: skip
    finally:
        os.close(fd)


def _summary(content: int, transferred: int, dest: str) -> None:
    if content != transferred:
        line = (
            f"Successfully copied {_human(content)} (transferred {_human(transferred)}) to {dest}"
        )
    else:
        line = f"Successfully copied {_human(content)} to {dest}"
    sys.stderr.write(line + "\n")


def _source(path: str, follow: bool) -> _Info:
    """docker's CopyInfoSourcePath: the local source, its parents' symlinks evaluated."""
    import stat

    if follow:
        resolved, rebase = _rebase_name(path, os.path.realpath(path))
    else:
        head, base = path.rsplit("/", 1) if "/" in path else ("", path)
        resolved = os.path.realpath(head or "/" if path.startswith("/") else head or ".")
        resolved = resolved.rstrip("/") + "/" + base
        rebase = ""
        if path.endswith("/") and os.path.basename(path.rstrip("/")) != os.path.basename(
            resolved.rstrip("/")
        ):
            rebase = os.path.basename(path.rstrip("/"))
    try:
        st = os.lstat(resolved)
    except OSError as exc:
        raise InvalidArgument(f"lstat {resolved}: {(exc.strerror or '').lower()}") from None
    return _Info(resolved, True, stat.S_ISDIR(st.st_mode), rebase)


def _local_tar(src: _Info, top: str) -> tuple[BinaryIO, list[BaseException]]:
    """A tar of SRC's path with its top entry named TOP, made by a thread into a pipe."""
    import tarfile

    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []
    where = src.path.rstrip("/") if src.path not in ("/", "/.") else src.path
    if where.endswith("/."):
        where = where[:-2] or "/"

    def make() -> None:
        try:
            with (
                os.fdopen(write_fd, "wb") as out,
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                tar.add(where, arcname=top, recursive=True)
        except BaseException as exc:
            failure.append(exc)

    threading.Thread(target=make, daemon=True).start()
    return os.fdopen(read_fd, "rb"), failure


def _to_container(c: Client, container: str, src: str, dst: str, opts: dict[str, Any]) -> int:
    import posixpath

    if src != "-":
        src = _absolute(src)
    info = _Info(dst)
    st = _stat(c, container, dst)
    if st is not None and st.get("mode", 0) & _MODE_SYMLINK:
        target = st.get("linkTarget", "")
        if not target.startswith("/"):
            target = posixpath.join(_split_dir_entry(dst)[0], target)
        info.path = target
        st = _stat(c, container, target)
    if st is not None:
        mode = st.get("mode", 0)
        if mode & (1 << 26) or mode & ((1 << 25) | (1 << 24)):
            raise InvalidArgument(
                f'destination "{container}:{dst}" must be a directory or a regular file'
            )
        info.exists, info.is_dir = True, bool(mode & _MODE_DIR)
    query = {"path": info.path, "noOverwriteDirNonDir": True, "copyUIDGID": opts["archive"]}
    path = f"/containers/{quote(container)}/archive"
    if src == "-":
        if not info.is_dir:
            raise InvalidArgument(f'destination "{container}:{dst}" must be a directory')
        c.upload(path, query, sys.stdin.buffer, method="PUT").close()
        return 0
    source = _source(src, opts["follow_link"])
    into, _, new = _prepare(source, info)
    query["path"] = into
    content = _local_size(source.path)
    tar, failure = _local_tar(source, new)
    counted = _Counted(tar)
    try:
        c.upload(path, query, counted, method="PUT").close()
    finally:
        tar.close()
    if failure:
        raise InvalidArgument(str(failure[0]))
    if not opts["quiet"]:
        _summary(content, counted.total, f"{container}:{info.path}")
    return 0


class _Counted:
    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self.total = 0

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(n)
        self.total += len(data)
        return data


def cmd_cp(ctx: Context, argv: list[str]) -> int:
    flags = [
        Flag("--archive,-a", "bool", "archive mode (copy all uid/gid information)"),
        Flag("--follow-link,-L", "bool", "always follow symbol link in SRC_PATH"),
        Flag("--quiet,-q", "bool", "suppress progress output during copy"),
    ]
    usage = ("[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n"
             "\tsampan cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH")  # fmt: skip
    opts = _opts(argv, flags, "cp", usage, (2, 2))
    source, dest = opts["args"]
    if not source:
        raise Usage("source can not be empty")
    if not dest:
        raise Usage("destination can not be empty")
    if not opts["quiet"]:
        opts["quiet"] = not sys.stdout.isatty()
    src_container, src_path = _split_arg(source)
    dst_container, dst_path = _split_arg(dest)
    if src_container and dst_container:
        raise InvalidArgument("copying between containers is not supported")
    if not src_container and not dst_container:
        raise InvalidArgument("must specify at least one container source")
    c = client(ctx)

    def cp() -> int:
        if src_container:
            return _from_container(c, src_container, src_path, dst_path, opts)
        return _to_container(c, dst_container, src_path, dst_path, opts)

    return daemon_errors(cp)
