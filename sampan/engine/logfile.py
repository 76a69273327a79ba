"""docker's json-file log with rotation: the monitor writes it, ``logs`` and ``attach`` read it.

    ID-json.log      the current file, one JSON object a line:
                     {"log": "hello\\n", "stream": "stdout", "time": "2024-...Z"}
    ID-json.log.1    the previous one (rotated), ... up to ID-json.log.(max-file - 1)

HostConfig.LogConfig.Config takes docker's json-file options ``max-size``
(go-units' RAMInBytes: "10k", "1m", "2g": binary multiples; at least one
line per file) and ``max-file`` (how many files in all, default 1; more
than one needs max-size).  When the next line would take the current file
past max-size, the writer renames .N-1 to .N ... the current file to .1 and
starts a new one; with max-file 1 it truncates, as docker does.  Nothing is
compressed (``compress=true`` is refused).

A reader (``LogReader``) reads the rotated files oldest first, then the
current one, and -- following -- notices a rotation by the current path
naming another inode: it finishes the file it has open (now .1) and goes on
with the new one.  A line torn by a crash is skipped, as docker's reader does.

This module is imported by the monitor: it imports nothing heavy.
"""

from __future__ import annotations

import os

from sampan.errors import InvalidArgument, Unsupported
from sampan.units import ram_in_bytes

__all__ = ["LogReader", "LogWriter", "check_log_config", "log_files", "parse_ram_size"]

SPLIT_AT = 16384  # docker splits a long line at 16 KiB
_UNSUPPORTED = ("labels", "labels-regex", "env", "env-regex", "tag")


def parse_ram_size(text: str) -> int:
    """go-units' RAMInBytes: "1k" -> 1024, "2MiB" and "2mb" -> 2097152, "512" -> 512."""
    try:
        return ram_in_bytes(text.strip())
    except ValueError:
        raise InvalidArgument(f"invalid size: '{text}'") from None


def check_log_config(config: object) -> dict[str, str]:
    """LogConfig.Config for json-file, checked (docker's messages); the options kept."""
    if config is None:
        return {}
    if not isinstance(config, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in config.items()
    ):
        raise InvalidArgument("HostConfig.LogConfig.Config: expected an object of strings")
    out: dict[str, str] = {}
    for key, value in config.items():
        if key == "max-size":
            if value != "-1" and parse_ram_size(value) <= 0:
                raise InvalidArgument(f"invalid max-size for log driver json-file: {value!r}")
        elif key == "max-file":
            if not value.lstrip("-").isdigit():
                raise InvalidArgument(f"invalid max-file for log driver json-file: {value!r}")
            if int(value) < 1:
                raise InvalidArgument("max-file cannot be less than 1")
        elif key == "compress":
            if value.lower() not in ("false", "0", ""):
                raise Unsupported("log opt compress=true is not supported (json-file)")
            continue
        elif key in _UNSUPPORTED:
            raise Unsupported(f"log opt '{key}' is not supported yet (json-file)")
        else:
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
        out[key] = value
    if int(out.get("max-file", "1")) > 1 and out.get("max-size", "-1") == "-1":
        raise InvalidArgument("max-file can only be used together with max-size (json-file)")
    return out


def limits(config: dict[str, str]) -> tuple[int, int]:
    """(max size in bytes or 0 for none, max files) of a checked LogConfig.Config."""
    size = config.get("max-size", "-1")
    return (0 if size == "-1" else parse_ram_size(size)), int(config.get("max-file", "1"))


def log_files(path: str) -> list[str]:
    """The log's files that exist, oldest first (.N ... .1, then PATH)."""
    rotated = []
    n = 1
    while os.path.exists(f"{path}.{n}"):
        rotated.append(f"{path}.{n}")
        n += 1
    return [*reversed(rotated), path]


class LogWriter:
    """docker's json-file lines, appended to PATH with one write(2) each, rotated by size."""

    def __init__(self, path: str, max_size: int = 0, max_files: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.fd = self._open()
        self.size = os.fstat(self.fd).st_size
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def _rotate(self) -> None:
        if self.max_files < 2:
            os.ftruncate(self.fd, 0)
            self.size = 0
            return
        for n in range(self.max_files - 1, 1, -1):
            try:
                os.rename(f"{self.path}.{n - 1}", f"{self.path}.{n}")
            except FileNotFoundError:
                pass
        os.rename(self.path, f"{self.path}.1")
        os.close(self.fd)
        self.fd = self._open()
        self.size = 0

    def _line(self, stream: str, data: bytes, now: str) -> None:
        from sampan import _json

        doc = {"log": data.decode("utf-8", "replace"), "stream": stream, "time": now}
        line = (_json.dumps(doc) + "\n").encode()
        if self.max_size and self.size and self.size + len(line) > self.max_size:
            self._rotate()
        os.write(self.fd, line)
        self.size += len(line)

    def feed(self, stream: str, data: bytes, now: str) -> None:
        data = self.partial[stream] + data
        *lines, rest = data.split(b"\n")
        for line in lines:
            self._line(stream, line + b"\n", now)
        while len(rest) >= SPLIT_AT:
            self._line(stream, rest[:SPLIT_AT], now)
            rest = rest[SPLIT_AT:]
        self.partial[stream] = rest

    def close(self, now: str) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self._line(stream, rest, now)
        os.close(self.fd)


class LogReader:
    """Complete entries (stream, time, bytes) of a json-file log and its rotated files.

    ``entries()`` returns what is there now and can be called again while
    following: it picks up new lines and crosses rotations.
    """

    def __init__(self, path: str, from_end: bool = False) -> None:
        self.path = path
        self._queue = [] if from_end else log_files(path)[:-1]
        self._fd = -1
        self._ino = 0
        self._rest = b""
        self._open_current(from_end)

    def _open_current(self, from_end: bool = False) -> None:
        path = self._queue.pop(0) if self._queue else self.path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        self._ino = os.fstat(self._fd).st_ino
        if from_end:
            os.lseek(self._fd, 0, os.SEEK_END)

    def _drain(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            data = os.read(self._fd, 1 << 16)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def _truncated(self) -> bool:
        """Whether the file was truncated in place (max-file 1); read it again from the top."""
        if os.lseek(self._fd, 0, os.SEEK_CUR) <= os.fstat(self._fd).st_size:
            return False
        os.lseek(self._fd, 0, os.SEEK_SET)
        return True

    def _rotated(self) -> bool:
        """Whether the open file is finished: a rotated one queued, or PATH is a new file."""
        if self._queue:
            return True
        try:
            return os.stat(self.path).st_ino != self._ino
        except FileNotFoundError:
            return False

    def entries(self) -> list[tuple[str, str, bytes]]:
        from sampan import _json

        out: list[tuple[str, str, bytes]] = []
        while True:
            data = self._rest + self._drain()
            truncated = self._truncated()
            rotated = not truncated and self._rotated()
            if rotated:
                data += self._drain()  # what was written before the rename
            *lines, self._rest = data.split(b"\n")
            for line in lines:
                try:
                    doc = _json.loads(line)
                    out.append((doc["stream"], doc["time"], doc["log"].encode()))
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
            if truncated:
                self._rest = b""
                continue
            if not rotated:
                return out
            os.close(self._fd)
            self._rest = b""
            self._open_current()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
