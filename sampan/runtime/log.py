"""The runtime's log: ``--log FILE`` (text or ``--log-format json``) and stderr.

Engines that drive a runtime (conmon, containerd) read errors from the log
file, so every error goes there as well as to stderr.
"""

from __future__ import annotations

import os
import time

_target: str | None = None
_json_format = False
_debug = False


def configure(path: str | None, fmt: str) -> None:
    global _target, _json_format
    _target = path
    _json_format = fmt == "json"


def _write(level: str, msg: str) -> None:
    if _target is None:
        return
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if _json_format:
        from sampan import _json

        line = _json.dumps({"level": level, "msg": msg, "time": stamp})
    else:
        line = f'time="{stamp}" level={level} msg="{msg}"'
    try:
        fd = os.open(_target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        os.write(fd, (line + "\n").encode(errors="replace"))
    finally:
        os.close(fd)


def enable_debug() -> None:
    """``--debug``: debug lines go to the log (and to stderr when there is no log file)."""
    global _debug
    _debug = True


def debug(msg: str) -> None:
    if not _debug:
        return
    if _target is None:
        os.write(2, f"sampan-runtime: debug: {msg}\n".encode(errors="replace"))
    else:
        _write("debug", msg)


def warn(msg: str) -> None:
    _write("warning", msg)
    os.write(2, f"sampan-runtime: warning: {msg}\n".encode(errors="replace"))


def error(msg: str) -> None:
    _write("error", msg)
    os.write(2, f"sampan-runtime: {msg}\n".encode(errors="replace"))
