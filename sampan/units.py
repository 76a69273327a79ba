"""go-units' human-readable sizes and durations, as docker prints them.

Below every layer that prints them: the CLI's tables, the engine's
container Status ("Up 5 minutes"), a pull's progress bar.
"""

from __future__ import annotations

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float, precision: int = 3) -> str:
    """go-units' HumanSizeWithPrecision: decimal units, ``precision`` significant digits.

    docker images/ps print sizes with precision 3 (``1.24MB``, ``4.26kB``,
    ``0B``); go-units' plain HumanSize (``system df``) is precision 4.
    """
    value = float(size)
    i = 0
    while value >= 1000.0 and i < len(_DECIMAL_UNITS) - 1:
        value /= 1000.0
        i += 1
    return format(value, f".{precision}g") + _DECIMAL_UNITS[i]  # Go's %.*g is C's


def human_duration(seconds: float) -> str:
    """go-units' HumanDuration: ``Less than a second``, ``About a minute``, ``3 weeks``..."""
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = _round_half_away(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def _round_half_away(x: float) -> int:
    """Go's math.Round (halves away from zero; Python's round() goes to even)."""
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)
