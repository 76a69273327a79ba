"""``docker import``: a root filesystem tarball becomes a one-layer image.

The tarball may be compressed (gzip, bzip2, xz); its decompressed bytes are
stored as the layer blob, so the layer's digest is its diff id.  The image
config is docker's for an import: the host's platform, ``created`` now, the
comment (``-m``, else "Imported from -") in the config and its one history
entry, and a container config built from ``--change`` instructions.

``--change`` takes Dockerfile instructions, as docker does (all of them
joined into one Dockerfile: ``\\`` continues a line, ``#`` starts a
comment): CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER,
VOLUME, WORKDIR.  CMD, ENTRYPOINT and VOLUME take the JSON form or the
shell form; ENV, LABEL, EXPOSE, USER, VOLUME, WORKDIR and STOPSIGNAL expand
``$VAR``/``${VAR:-default}`` from the ENV set so far (an ENV instruction's
own words see the environment from before it, as in a Dockerfile).  The
results were checked against docker's own import of the same changes.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import posixpath
import tarfile
import time
import zlib

from sampan import _json
from sampan.errors import InvalidArgument, Unsupported
from sampan.oci import image as oi
from sampan.oci.reference import parse_reference
from sampan.units import rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from sampan.image.store import ImageStore

__all__ = ["import_rootfs", "parse_changes"]

CHANGE_COMMANDS = ("cmd", "entrypoint", "env", "expose", "label", "onbuild", "stopsignal",
                   "user", "volume", "workdir")  # fmt: skip


# ---------------------------------------------------------------- --change


def parse_changes(changes: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The container config (docker's ``Config`` keys) that ``--change`` instructions make."""
    config: dict[str, Any] = {}
    cmd_set = False
    for line in _logical_lines("\n".join(changes)):
        word, _, rest = line.partition(" ")
        if "\t" in word:
            word, _, more = word.partition("\t")
            rest = more + " " + rest
        instruction = word.lower()
        rest = rest.strip()
        where = f"--change {line!r}"
        if instruction not in CHANGE_COMMANDS:
            raise InvalidArgument(f"{instruction} is not a valid change command")
        env = _env_map(config)
        if instruction == "cmd":
            config["Cmd"] = _command(rest)
            cmd_set = True
        elif instruction == "entrypoint":
            config["Entrypoint"] = _command(rest)
            if not cmd_set:
                config.pop("Cmd", None)
        elif instruction == "env":
            for key, value in _name_values("ENV", rest, env, where):
                _set_env(config, key, value)
        elif instruction == "label":
            labels = config.setdefault("Labels", {})
            for key, value in _name_values("LABEL", rest, env, where):
                labels[key] = value
        elif instruction == "expose":
            ports = config.setdefault("ExposedPorts", {})
            for spec in _split_words(rest):
                for port in _ports(_expand(spec, env, where), where):
                    ports[port] = {}
        elif instruction == "volume":
            volumes = config.setdefault("Volumes", {})
            for path in _json_list(rest) or [_expand(w, env, where) for w in _split_words(rest)]:
                if not path:
                    raise InvalidArgument(f"{where}: VOLUME specified can not be an empty string")
                volumes[path] = {}
        elif instruction == "workdir":
            path = _one_word("WORKDIR", rest, env, where)
            config["WorkingDir"] = posixpath.normpath(
                posixpath.join(config.get("WorkingDir") or "/", path)
            )
        elif instruction == "user":
            config["User"] = _one_word("USER", rest, env, where)
        elif instruction == "stopsignal":
            config["StopSignal"] = _signal(_one_word("STOPSIGNAL", rest, env, where), where)
        elif instruction == "onbuild":
            trigger = rest.split(None, 1)[0].upper() if rest else ""
            if not trigger:
                raise InvalidArgument(f"{where}: ONBUILD requires at least one argument")
            if trigger == "ONBUILD":
                raise InvalidArgument(
                    f"{where}: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
                )
            if trigger in ("FROM", "MAINTAINER"):
                raise InvalidArgument(f"{where}: {trigger} isn't allowed as an ONBUILD trigger")
            config.setdefault("OnBuild", []).append(rest)
    return config


def _logical_lines(text: str) -> list[str]:
    """A Dockerfile's instructions: continuation lines joined, comments and blanks dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.split("\n"):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1]
            continue
        pending += raw
        if pending.strip():
            lines.append(pending.strip())
        pending = ""
    if pending.strip():
        lines.append(pending.strip())
    if not lines and text.strip():
        raise InvalidArgument("--change: no instruction")
    return lines


def _command(rest: str) -> list[str]:
    """CMD/ENTRYPOINT: the JSON form as it is, else ``/bin/sh -c REST``."""
    form = _json_list(rest)
    if form is not None:
        return form
    return ["/bin/sh", "-c", rest] if rest else ["/bin/sh", "-c"]


def _json_list(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = _json.loads(rest)
    except _json.JSONError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _env_map(config: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _set_env(config: dict[str, Any], key: str, value: str) -> None:
    env = config.setdefault("Env", [])
    for i, item in enumerate(env):
        if item.partition("=")[0] == key:
            env[i] = f"{key}={value}"
            return
    env.append(f"{key}={value}")


def _split_words(text: str) -> list[str]:
    """Words separated by blanks; quotes and backslashes kept for _expand (docker's parseWords)."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    escaped = False
    for ch in text:
        if escaped:
            word.append(ch)
            escaped = False
        elif ch == "\\":
            word.append(ch)
            escaped = True
        elif quote:
            word.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            word.append(ch)
            quote = ch
        elif ch in " \t":
            if word:
                words.append("".join(word))
                word = []
        else:
            word.append(ch)
    if word:
        words.append("".join(word))
    return words


def _name_values(
    instruction: str, rest: str, env: dict[str, str], where: str
) -> list[tuple[str, str]]:
    words = _split_words(rest)
    if not words:
        raise InvalidArgument(f"{where}: {instruction} requires at least one argument")
    if "=" not in words[0]:  # the legacy form: NAME VALUE...
        if len(words) < 2:
            raise InvalidArgument(f"{where}: {instruction} must have two arguments")
        value = rest.strip()[len(words[0]) :].strip()
        return [(_expand(words[0], env, where), _expand(value, env, where))]
    pairs = []
    for word in words:
        if "=" not in word:
            raise InvalidArgument(f"{where}: {instruction} names can not be blank ({word!r})"
                                  if word.startswith("=") else
                                  f"{where}: syntax error - can't find = in {word!r}. "
                                  "Must be of the form: name=value")  # fmt: skip
        key, _, value = word.partition("=")
        key = _expand(key, env, where)
        if not key:
            raise InvalidArgument(f"{where}: {instruction} names can not be blank")
        pairs.append((key, _expand(value, env, where)))
    return pairs


def _one_word(instruction: str, rest: str, env: dict[str, str], where: str) -> str:
    words = _split_words(rest)
    if len(words) != 1:
        raise InvalidArgument(f"{where}: {instruction} requires exactly one argument")
    return _expand(words[0], env, where)


def _expand(word: str, env: dict[str, str], where: str) -> str:
    """Quotes removed, escapes applied, ``$VAR`` and ``${VAR...}`` replaced (moby's shell lexer)."""
    out: list[str] = []
    i, n = 0, len(word)
    while i < n:
        ch = word[i]
        if ch == "\\" and i + 1 < n:
            out.append(word[i + 1])
            i += 2
        elif ch == "'":
            end = word.find("'", i + 1)
            if end < 0:
                raise InvalidArgument(f"{where}: unexpected end of statement while looking for '")
            out.append(word[i + 1 : end])
            i = end + 1
        elif ch == '"':
            i += 1
            while i < n and word[i] != '"':
                if word[i] == "\\" and i + 1 < n and word[i + 1] in '"\\$':
                    out.append(word[i + 1])
                    i += 2
                elif word[i] == "$":
                    text, i = _variable(word, i, env, where)
                    out.append(text)
                else:
                    out.append(word[i])
                    i += 1
            if i >= n:
                raise InvalidArgument(f'{where}: unexpected end of statement while looking for "')
            i += 1
        elif ch == "$":
            text, i = _variable(word, i, env, where)
            out.append(text)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _variable(word: str, i: int, env: dict[str, str], where: str) -> tuple[str, int]:
    """The value of the ``$`` reference at ``word[i]`` and the index after it."""
    n = len(word)
    if i + 1 < n and word[i + 1] == "{":
        end = word.find("}", i + 2)
        if end < 0:
            raise InvalidArgument(f"{where}: missing '}}' in {word!r}")
        body = word[i + 2 : end]
        name = body
        for op in (":-", ":+", ":?", "-", "+", "?"):
            head, sep, arg = body.partition(op)
            if sep and head and all(c.isalnum() or c == "_" for c in head):
                name = head
                value = env.get(name)
                empty = value is None or (op.startswith(":") and value == "")
                if op.endswith("-"):
                    return (arg if empty else str(value)), end + 1
                if op.endswith("+"):
                    return ("" if empty else arg), end + 1
                if empty:
                    raise InvalidArgument(f"{where}: {name}: {arg or 'is not allowed to be unset'}")
                return str(value), end + 1
        return env.get(name, ""), end + 1
    j = i + 1
    while j < n and (word[j].isalnum() or word[j] == "_"):
        j += 1
    if j == i + 1:
        return "$", j
    return env.get(word[i + 1 : j], ""), j


def _ports(spec: str, where: str) -> list[str]:
    """``80``, ``80/udp``, ``8000-8002`` -> docker's ``PORT/PROTO`` keys."""
    ports, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"{where}: invalid proto: {proto}")
    low, dash, high = ports.partition("-")
    if not low.isdigit() or (dash and not high.isdigit()):
        raise InvalidArgument(f"{where}: invalid containerPort: {ports}")
    start, end = int(low), int(high) if dash else int(low)
    if end < start or end > 65535:
        raise InvalidArgument(f"{where}: invalid range specified for containerPort: {ports}")
    return [f"{port}/{proto}" for port in range(start, end + 1)]


def _signal(text: str, where: str) -> str:
    """A signal docker accepts for STOPSIGNAL: ``SIGTERM``, ``TERM``, ``15``, ``SIGRTMIN+3``."""
    import signal

    if text.isdigit():
        if 0 < int(text) <= signal.SIGRTMAX:
            return text
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name in signal.Signals.__members__:
            return text
        for base in ("SIGRTMIN+", "SIGRTMAX-"):
            rest = name.removeprefix(base)
            if rest != name and rest.isdigit() and int(rest) <= 30:
                return text
    raise InvalidArgument(f"{where}: invalid signal: {text}")


# ---------------------------------------------------------------- import


_READERS: tuple[tuple[bytes, Any], ...] = (
    (b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")),
    (b"BZh", bz2.BZ2File),
    (b"\xfd7zXZ\x00", lzma.LZMAFile),
)


# What a damaged gzip, bzip2 or xz stream raises from read().
_CORRUPT = (OSError, EOFError, lzma.LZMAError, zlib.error)


def _decompressed(stream: BinaryIO) -> tuple[bytes, BinaryIO]:
    """The tar bytes of ``stream`` (gzip, bzip2 or xz undone): its first block, and the rest."""
    magic = stream.read(6)
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        raise Unsupported("import: zstd-compressed archives are not supported")
    from sampan.image.archive import Replay

    raw: Any = Replay(magic, stream)
    for prefix, reader in _READERS:
        if magic.startswith(prefix):
            raw = reader(raw)  # reads RAW; closing it is not needed (RAW is not its own)
    try:
        first = raw.read(512)
    except _CORRUPT as exc:
        raise InvalidArgument(f"import: corrupt compressed stream: {exc}") from None
    if not first:
        raise InvalidArgument("import: empty input (expected a tar archive)")
    if first != bytes(len(first)):
        try:
            tarfile.TarInfo.frombuf(first, "utf-8", "surrogateescape")
        except tarfile.TarError:
            raise InvalidArgument("import: not a tar archive") from None
    return first, raw


class _Checked:
    """Reads the rest of the tar, turning decompression errors into InvalidArgument."""

    def __init__(self, first: bytes, rest: BinaryIO) -> None:
        from sampan.image.archive import Replay

        self._stream = Replay(first, rest)

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except _CORRUPT as exc:
            raise InvalidArgument(f"import: corrupt compressed stream: {exc}") from None


def import_rootfs(
    store: ImageStore,
    stream: BinaryIO,
    *,
    changes: list[str] | tuple[str, ...] = (),
    ref: str | None = None,
    message: str = "",
    platform: oi.Platform | None = None,
) -> str:
    """``docker import [-c CHANGE]... [-m MESSAGE] FILE|- [REF]``; returns the image id."""
    names = []
    if ref:
        name = parse_reference(ref)
        if name.digest is not None:
            raise InvalidArgument(
                f"import: {ref}: refusing to create a tag with a digest reference"
            )
        names.append(name)
    container_config = parse_changes(changes)
    target = platform or oi.host_platform()
    comment = message or "Imported from -"
    with store.writing():
        first, rest = _decompressed(stream)
        layer_digest, layer_size = store.content.put_stream(_Checked(first, rest))  # type: ignore[arg-type]
        created = rfc3339(time.time_ns())
        raw: dict[str, Any] = {"architecture": target.architecture, "os": target.os}
        if target.variant:
            raw["variant"] = target.variant
        raw.update(
            {
                "comment": comment,
                "config": container_config,
                "created": created,
                "history": [{"created": created, "comment": comment}],
                "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            }
        )
        config_bytes = _json.dumps(raw).encode()
        config_digest = store.content.put(config_bytes)
        manifest = oi.Manifest(
            oi.OCI_MANIFEST,
            oi.Descriptor(oi.OCI_CONFIG, config_digest, len(config_bytes)),
            (oi.Descriptor(oi.OCI_LAYER, layer_digest, layer_size),),
        )
        manifest_bytes = _json.dumps(manifest.to_dict()).encode()
        manifest_digest = store.content.put(manifest_bytes)
        assert manifest_digest == "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
        config = oi.parse_config(config_bytes, "import")
        store.unpack(manifest, config, "import")
        record = store.commit_image(manifest_digest, names=names)
    return record.id
