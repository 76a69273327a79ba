"""The pull/push display, kept in sampan/image/progress.py (light to import); named here too."""

from __future__ import annotations

from sampan.image.progress import (
    PlainProgress,
    Progress,
    QuietProgress,
    TerminalProgress,
    human_size,
    make_progress,
    progress_bar,
)

__all__ = [
    "PlainProgress",
    "Progress",
    "QuietProgress",
    "TerminalProgress",
    "human_size",
    "make_progress",
    "progress_bar",
]
