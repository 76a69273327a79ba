"""What ``pull`` and ``push`` show while they work, in docker's words.

On a terminal every layer has a line that is redrawn in place (ANSI cursor
up / erase line / cursor down) with its status and, while bytes move, a
progress bar::

    9ad63333ebc9: Downloading [=================>          ]  1.049MB/2.988MB
    1b1d3d1a8f2c: Pull complete

When the output is not a terminal (a log, a pipe) only status changes are
printed, one line each ("9ad63333ebc9: Pull complete"), never byte counts --
docker's behaviour.  ``QuietProgress`` prints nothing.  Every method may be
called from the download threads: a lock orders the writes.

It lives outside image/registry/ so that the ``sampan`` CLI, which renders
the daemon's progress stream with it, does not import the registry client.
"""

from __future__ import annotations

import sys
import threading
import time

from sampan import units

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

__all__ = [
    "PlainProgress",
    "Progress",
    "QuietProgress",
    "TerminalProgress",
    "human_size",
    "make_progress",
    "progress_bar",
]

BAR_WIDTH = 50
REDRAW_INTERVAL = 0.1  # seconds between redraws of one layer's byte count


def human_size(size: float) -> str:
    """go-units' HumanSize (four significant digits, "1.049MB"), as docker's bar shows it."""
    return units.human_size(size, 4)


def progress_bar(current: int, total: int | None) -> str:
    """Docker's bar and counts: "[====>     ]  1.049MB/2.988MB" (or just the count)."""
    if not total or total <= 0:
        return human_size(current)
    current = min(current, total)
    filled = current * BAR_WIDTH // total
    if filled >= BAR_WIDTH:
        bar = "=" * BAR_WIDTH
    else:
        bar = "=" * filled + ">" + " " * (BAR_WIDTH - filled - 1)
    return f"[{bar}] {human_size(current):>8}/{human_size(total)}"


class Progress:
    """The interface, and the quiet implementation: nothing is shown."""

    def message(self, text: str) -> None:
        """A line of its own: "latest: Pulling from library/busybox"."""

    def layer(
        self, layer_id: str, status: str, current: int | None = None, total: int | None = None
    ) -> None:
        """LAYER_ID's status; with CURRENT (and TOTAL) bytes while data moves."""

    def close(self) -> None:
        """The end: flush what is pending."""


QuietProgress = Progress


class PlainProgress(Progress):
    """One line per status change; byte counts are not printed."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()
        self._last: dict[str, str] = {}

    def message(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def layer(
        self, layer_id: str, status: str, current: int | None = None, total: int | None = None
    ) -> None:
        if current is not None:
            return
        with self._lock:
            if self._last.get(layer_id) == status:
                return
            self._last[layer_id] = status
            self.stream.write(f"{layer_id}: {status}\n")
            self.stream.flush()


class TerminalProgress(Progress):
    """Docker's live display: a line per layer, redrawn in place."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._row: dict[str, int] = {}
        self._status: dict[str, str] = {}
        self._drawn: dict[str, float] = {}

    def message(self, text: str) -> None:
        with self._lock:
            self._lines.append(text)
            self.stream.write(text + "\n")
            self.stream.flush()

    def layer(
        self, layer_id: str, status: str, current: int | None = None, total: int | None = None
    ) -> None:
        text = f"{layer_id}: {status}"
        if current is not None:
            text += " " + progress_bar(current, total)
        with self._lock:
            now = time.monotonic()
            row = self._row.get(layer_id)
            if row is None:
                self._row[layer_id] = len(self._lines)
                self._lines.append(text)
                self.stream.write(text + "\n")
            else:
                same_status = self._status.get(layer_id) == status
                finished = current is not None and total is not None and current >= total
                recent = now - self._drawn.get(layer_id, 0.0) < REDRAW_INTERVAL
                if same_status and not finished and recent:
                    return
                up = len(self._lines) - row
                self._lines[row] = text
                # up to the layer's line, erase it, write, and back down to the bottom
                self.stream.write(f"\x1b[{up}A\r\x1b[2K{text}\x1b[{up}B\r")
            self._status[layer_id] = status
            self._drawn[layer_id] = now
            self.stream.flush()


def make_progress(
    stream: TextIO | None = None, *, quiet: bool = False, tty: bool | None = None
) -> Progress:
    """The display for STREAM (stdout by default): live on a terminal, plain otherwise."""
    if quiet:
        return QuietProgress()
    stream = stream if stream is not None else sys.stdout
    if tty is None:
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
    return TerminalProgress(stream) if tty else PlainProgress(stream)
