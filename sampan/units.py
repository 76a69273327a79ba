"""How docker prints and reads sizes, durations and times.

go-units' human-readable sizes and durations (and its size parsers), and
Go's RFC 3339 times.  Below every layer that prints or reads them: the
CLI's tables and flags (``-m 64m``, ``tmpfs-size``), the engine's
container Status ("Up 5 minutes"), timestamps and log ``max-size``, the
runtime's state and ``update --memory``, a pull's progress bar.
"""

from __future__ import annotations

import time

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


_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


def ram_in_bytes(text: str) -> int:
    """go-units' RAMInBytes: ``64m``, ``1.5g``, ``512MiB``, ``2 kb``, ``1024`` -> bytes.

    A number (digits, at most one ``.``), one optional space, then nothing,
    ``b``, or k/m/g/t/p (binary multiples) with an optional ``b`` or ``ib``,
    in any case.  ValueError ``invalid size: '...'`` otherwise (callers word
    it as their flag or field must).
    """
    return _parse_size(text, _BINARY)


def from_human_size(text: str) -> int:
    """go-units' FromHumanSize: as :func:`ram_in_bytes`, with decimal multiples (1k = 1000)."""
    return _parse_size(text, _DECIMAL)


def _parse_size(text: str, multiples: dict[str, int]) -> int:
    i = 0
    while i < len(text) and text[i] in "0123456789.":
        i += 1
    number, suffix = text[:i], text[i:].removeprefix(" ").lower()
    if number.count(".") > 1 or not number.strip("."):
        raise ValueError(f"invalid size: '{text}'")
    unit, tail = suffix[:1], suffix[1:]
    if unit in ("", "b") and not tail:
        return int(float(number))
    if unit not in multiples or tail not in ("", "b", "ib"):
        raise ValueError(f"invalid size: '{text}'")
    return int(float(number) * multiples[unit])


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


def rfc3339(ns: int, *, trim: bool = True) -> str:
    """A UTC time in nanoseconds as Go's RFC3339Nano (``2024-05-01T10:00:00.1234Z``).

    ``trim=False`` keeps all nine fraction digits (the runtime's state and
    the daemon's clock have always been written that way).
    """
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{frac:09d}".rstrip("0") if trim else f"{frac:09d}"
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


def parse_rfc3339(text: str) -> float:
    """RFC 3339 (with nanoseconds, as Go writes it) to seconds; 0 when absent or malformed."""
    if not text:
        return 0.0
    import datetime  # only where a time is read back

    text = text.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python parses at most microseconds
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0


_DURATION_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 1_000_000,
                   "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}  # fmt: skip


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration (``1m30s``, ``500ms``, ``1.5h``, ``0``) in nanoseconds;
    ValueError with Go's message (``time: invalid duration "x"``)."""
    s = text
    sign = -1 if s.startswith("-") else 1
    s = s[1:] if s[:1] in ("-", "+") else s
    if s == "0":
        return 0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0.0
    i = 0
    while i < len(s):
        start = i
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        number = s[start:i]
        if not number or number == "." or number.count(".") > 1:
            raise ValueError(f'time: invalid duration "{text}"')
        start = i
        while i < len(s) and not (s[i].isdigit() or s[i] == "."):
            i += 1
        unit = s[start:i]
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        total += float(number) * _DURATION_UNITS[unit]
    return sign * round(total)


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): ``1m30s``, ``500ms``, ``1h0m0s``, ``0s``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1000), ("ns", 1)):
            if ns >= size:
                return sign + _frac(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _frac(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def _frac(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    width = len(str(unit)) - 1
    return f"{whole}.{frac:0{width}d}".rstrip("0")
