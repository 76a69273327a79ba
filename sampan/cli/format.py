"""docker's output conventions: ``--format`` templates, aligned tables, sizes and ages.

Scripts written against ``docker images --format ...`` must work unchanged,
so this follows docker/cli's formatter: the format string gets ``\\t`` and
``\\n`` escapes replaced and surrounding spaces trimmed; ``table`` in front
means "print a header row (the template run over the column names) and
align every tab-separated cell" with Go's tabwriter settings (min width 10,
padding 3, spaces); ``json`` alone means ``{{json .}}``.

Templates are the part of Go's text/template that people type: fields and
chains (``{{.Repository}}``, ``{{.Config.Env}}``, ``$var.Field``),
pipelines (``{{.ID | printf "%.5s"}}``), ``if``/``else if``/``with``/
``range`` (with ``$k, $v :=``, ``break``, ``continue``), variables,
comments, trim markers, and the functions docker adds (json, split, join,
title, lower, upper, pad, truncate) on top of Go's (and, or, not, len,
index, slice, print, printf, println, eq, ne, lt, le, gt, ge).  A template
is compiled once into closures; rendering 200 rows costs well under a
millisecond per column.

Data is a mapping.  The row itself is a *struct*: naming a field it lacks is
docker's "can't evaluate field X in type T" error; nested mappings are Go
maps: a missing key prints ``<no value>``.  A callable value is a method:
called (with the arguments given, ``{{.Label "k"}}``) when the field is
evaluated, so costly columns cost nothing unless used.

Nothing slow is imported: no ``re``, ``json`` or ``typing`` (the CLI's start
time is watched).
"""

from __future__ import annotations

import _json

from sampan.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    Eval = Callable[[Any, "_State"], Any]
    Emit = Callable[[Any, "_State"], None]
    Stage = Callable[[Any, "_State", Any], Any]  # (dot, state, piped value or _PIPED)

__all__ = [
    "CONTAINER_HEADERS",
    "DEFAULT_HEADERS",
    "HISTORY_HEADERS",
    "IMAGE_HEADERS",
    "Formatter",
    "Template",
    "align",
    "go_string",
    "human_duration",
    "human_duration_ago",
    "human_size",
    "render",
    "table",
]

# ---------------------------------------------------------------- units (go-units)

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


def human_duration_ago(seconds: float) -> str:
    """docker's CREATED column: ``human_duration(seconds) + " ago"``."""
    return human_duration(seconds) + " ago"


def _round_half_away(x: float) -> int:
    """Go's math.Round (halves away from zero; Python's round() goes to even)."""
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


# ---------------------------------------------------------------- tabwriter


def align(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter with docker's settings (``NewWriter(w, 10, 1, 3, ' ', 0)``).

    Cells are tab-terminated: the text after a line's last tab is not
    aligned and gets no padding.  A column is padded to its longest cell
    plus ``padding`` (at least ``minwidth``) over each run of consecutive
    lines that have that column -- exactly as the Go writer does.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            n = len(widths)
            if n == 0 or len(cells) == 1:
                out.append("".join(cells))
                continue
            parts = []
            for j, cell in enumerate(cells):
                parts.append(cell.ljust(widths[j]) if j < n else cell)
            out.append("".join(parts))

    def block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                w = len(lines[this][column]) + padding
                if w > width:
                    width = w
                this += 1
            widths.append(width)
            block(line0, this)
            widths.pop()
            line0 = this
        write(line0, line1)

    block(0, len(lines))
    return "\n".join(out)


def table(headers: list[str], rows: Iterable[list[str]]) -> str:
    """Rows (and a header row, if any) aligned as docker's tables; ends with a newline."""
    text = "".join("\t".join(row) + "\n" for row in ([headers] if headers else []) + list(rows))
    return align(text)


# ---------------------------------------------------------------- Go values as text


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if value is None:
        return "<nil>"
    return type(value).__name__


def _float_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip digits of abs(f) and the decimal point position (0.DIGITS x 10^dp)."""
    text = repr(abs(f))
    mantissa, _, exp = text.partition("e")
    shift = int(exp) if exp else 0
    whole, _, frac = mantissa.partition(".")
    if whole.strip("0") == "":
        digits = frac.lstrip("0")
        dp = shift - (len(frac) - len(digits))
    else:
        digits = whole.lstrip("0") + frac
        dp = shift + len(whole.lstrip("0"))
    digits = digits.rstrip("0")
    return digits or "0", dp if digits else 1


def _go_float(f: float, low: int = -4, high: int = 6, json: bool = False) -> str:
    """A float64 as Go's %v (``strconv 'g', -1``) or, with json=True, encoding/json writes it."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if f < 0 or (f == 0 and str(f).startswith("-")) else ""
    if f == 0:
        return sign + "0"
    digits, dp = _float_digits(f)
    exp = dp - 1
    if exp < low or exp >= high:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        esign = "-" if exp < 0 else "+"
        width = 1 if json else 2
        return f"{sign}{mant}e{esign}{abs(exp):0{width}d}"
    if dp <= 0:
        return sign + "0." + "0" * -dp + digits
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return sign + digits[:dp] + "." + digits[dp:]


def go_string(value: object) -> str:
    """``value`` printed as Go's fmt %v prints the decoded JSON value it stands for."""
    if isinstance(value, str):
        return value
    if value is _MISSING:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if value is None:
        return "<nil>"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_string(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "map[" + " ".join(f"{go_string(k)}:{go_string(v)}" for k, v in items) + "]"
    return str(value)


_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def _json_string(text: str, html: bool) -> str:
    s: str = _json.encode_basestring(text)  # type: ignore[attr-defined]  # C helper; keeps UTF-8
    if "\u2028" in s or "\u2029" in s:
        s = s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if html and ("<" in s or ">" in s or "&" in s):
        s = "".join(_HTML_ESCAPES.get(c, c) for c in s)
    return s


def _go_json(value: object, html: bool, sort_keys: bool = False) -> str:
    """Go's encoding/json output (compact; UTF-8 kept; ``<>&`` escaped when ``html``)."""
    if isinstance(value, str):
        return _json_string(value, html)
    if value is None or value is _MISSING:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _ExecError(f"json: unsupported value: {_go_float(value)}")
        return _go_float(value, low=-7, high=21, json=True)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_go_json(v, html) for v in value) + "]"
    if isinstance(value, dict):
        items = list(value.items())
        if sort_keys:
            items.sort(key=lambda kv: str(kv[0]))
        parts = []
        for k, v in items:
            if callable(v):
                v = v()
            parts.append(_json_string(str(k), html) + ":" + _go_json(v, html))
        return "{" + ",".join(parts) + "}"
    return _json_string(str(value), html)


def _truth(value: object) -> bool:
    if value is _MISSING or value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


# ---------------------------------------------------------------- printf


def _quote(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _sprintf(fmt: str, args: list[Any]) -> str:
    """Go's fmt.Sprintf for the verbs templates use: v s q d x X o b f F e E g G t c %."""
    out: list[str] = []
    i, n, argi = 0, len(fmt), 0
    while i < n:
        pct = fmt.find("%", i)
        if pct < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:pct])
        i = pct + 1
        flags = ""
        while i < n and fmt[i] in "+-# 0":
            flags += fmt[i]
            i += 1
        width = prec = None
        start = i
        while i < n and fmt[i].isdigit():
            i += 1
        if i > start:
            width = int(fmt[start:i])
        if i < n and fmt[i] == ".":
            i += 1
            start = i
            while i < n and fmt[i].isdigit():
                i += 1
            prec = int(fmt[start:i] or "0")
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        text = _format_verb(verb, flags, prec, arg)
        if width is not None and len(text) < width:
            if "-" in flags:
                text = text.ljust(width)
            elif "0" in flags and verb in "dxXobfFeEgG" and not isinstance(arg, str):
                sign = text[0] if text[:1] in ("-", "+", " ") else ""
                text = sign + text[len(sign) :].rjust(width - len(sign), "0")
            else:
                text = text.rjust(width)
        out.append(text)
    if argi < len(args):
        extra = ", ".join(f"{_type_name(a)}={go_string(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_verb(verb: str, flags: str, prec: int | None, arg: Any) -> str:
    if verb == "s" and isinstance(arg, (int, float)):
        return f"%!s({_type_name(arg)}={go_string(arg)})"
    if verb in "vs":
        text = go_string(arg)
        return text[:prec] if prec is not None and isinstance(arg, str) else text
    if verb == "U" and isinstance(arg, int):
        return f"U+{arg:04X}"
    if verb == "q":
        return _quote(arg if isinstance(arg, str) else go_string(arg))
    if verb == "t":
        return go_string(arg) if isinstance(arg, bool) else f"%!t({_type_name(arg)}={arg})"
    if verb == "c" and isinstance(arg, int):
        return chr(arg)
    if verb in "xX" and isinstance(arg, str):
        text = arg.encode().hex()
        return text.upper() if verb == "X" else text
    if verb in "dxXob" and isinstance(arg, int) and not isinstance(arg, bool):
        spec = {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}[verb]
        sign = "+" if "+" in flags else (" " if " " in flags else "")
        prefix = "#" if "#" in flags and verb != "d" else ""
        return format(arg, f"{sign}{prefix}{spec}")
    if verb in "fFeEgG" and isinstance(arg, (int, float)) and not isinstance(arg, bool):
        if verb in "gG" and prec is None:
            text = _go_float(float(arg))
            return text.upper() if verb == "G" else text
        sign = "+" if "+" in flags else (" " if " " in flags else "")
        return format(float(arg), f"{sign}.{6 if prec is None else prec}{verb}")
    return f"%!{verb}({_type_name(arg)}={go_string(arg)})"


# ---------------------------------------------------------------- functions


class _ExecError(Exception):
    """An execution error; the Template wraps it with docker's position prefix."""


def _need_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise _ExecError(f"error calling {name}: wrong type for value; expected string; "
                         f"got {_type_name(value)}")  # fmt: skip
    return value


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if item is _MISSING or item is None:
            raise _ExecError("error calling index: index of untyped nil")
        if isinstance(item, dict):
            item = item.get(key, "")  # Go's index gives the zero value for a missing key
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(key, int) or isinstance(key, bool):
                raise _ExecError(f"error calling index: cannot index slice/array with type "
                                 f"{_type_name(key)}")  # fmt: skip
            if not 0 <= key < (len(item.encode()) if isinstance(item, str) else len(item)):
                raise _ExecError(f"error calling index: index out of range: {key}")
            item = item.encode()[key] if isinstance(item, str) else item[key]
        else:
            raise _ExecError(f"error calling index: can't index item of type {_type_name(item)}")
    return item


def _slice(item: Any, *bounds: Any) -> Any:
    if not isinstance(item, (list, tuple, str)):
        raise _ExecError(f"error calling slice: can't slice item of type {_type_name(item)}")
    if len(bounds) > 2:
        raise _ExecError("error calling slice: too many slice indexes")
    lo = _need_int("slice", bounds[0]) if bounds else 0
    hi = _need_int("slice", bounds[1]) if len(bounds) > 1 else len(item)
    if not 0 <= lo <= hi <= len(item):
        raise _ExecError(f"error calling slice: index out of range: {lo}:{hi}")
    return item[lo:hi]


def _len(item: Any) -> int:
    if isinstance(item, (list, tuple, dict, str)):
        return len(item)
    raise _ExecError(f"error calling len: len of type {_type_name(item)}")


def _kind(value: Any) -> str:
    """Go's basic kind of a value, for comparisons (int and float64 do not compare)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise _ExecError("error calling eq: missing argument for comparison")
    return any(_same(first, other) for other in others)


def _same(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    ka, kb = _kind(a), _kind(b)
    if ka != kb and a is not None and b is not None:
        raise _ExecError("error calling eq: incompatible types for comparison")
    return bool(a == b)


def _compare(name: str) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        kind = _kind(a)
        if kind != _kind(b) or kind in ("bool", "other"):
            raise _ExecError(f"error calling {name}: incompatible types for comparison")
        try:
            if name == "lt":
                return bool(a < b)
            if name == "le":
                return bool(a <= b)
            if name == "gt":
                return bool(a > b)
            return bool(a >= b)
        except TypeError:
            raise _ExecError(f"error calling {name}: incompatible types for comparison") from None

    return compare


def _sprint(*args: Any) -> str:
    """Go's fmt.Sprint: a space between operands when neither is a string."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_string(arg))
    return "".join(out)


def _join(items: Any, sep: Any) -> str:
    if not isinstance(items, (list, tuple)):
        raise _ExecError(f"error calling join: wrong type for value; expected []string; "
                         f"got {_type_name(items)}")  # fmt: skip
    return _need_str("join", sep).join(go_string(i) for i in items)


def _title(text: Any) -> str:
    out = []
    prev = " "
    for ch in _need_str("title", text):
        out.append(ch.upper() if not (prev.isalnum() or prev == "_") else ch)
        prev = ch
    return "".join(out)


def _need_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _ExecError(f"error calling {name}: wrong type for value; expected int; "
                         f"got {_type_name(value)}")  # fmt: skip
    return value


def _pad(text: Any, prefix: Any, suffix: Any) -> str:
    s = _need_str("pad", text)
    prefix, suffix = _need_int("pad", prefix), _need_int("pad", suffix)
    return " " * prefix + s + " " * suffix if s else s


def _truncate(text: Any, length: Any) -> str:
    s = _need_str("truncate", text)
    length = _need_int("truncate", length)
    return s if len(s) < length else s[:length]


def _and(*args: Any) -> Any:
    for arg in args[:-1]:
        if not _truth(arg):
            return arg
    return args[-1]


def _or(*args: Any) -> Any:
    for arg in args[:-1]:
        if _truth(arg):
            return arg
    return args[-1]


_FUNCS: dict[str, Callable[..., Any]] = {
    "and": _and,
    "or": _or,
    "not": lambda v: not _truth(v),
    "len": lambda v: len(v.encode()) if isinstance(v, str) else _len(v),
    "index": _index,
    "slice": _slice,
    "print": _sprint,
    "printf": lambda f, *a: _sprintf(_need_str("printf", f), list(a)),
    "println": lambda *a: " ".join(go_string(v) for v in a) + "\n",
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _compare("lt"),
    "le": _compare("le"),
    "gt": _compare("gt"),
    "ge": _compare("ge"),
    "json": lambda v: _go_json(v, html=False),
    "split": lambda s, sep: (
        _need_str("split", s).split(_need_str("split", sep)) if sep else list(s)
    ),
    "join": _join,
    "title": _title,
    "lower": lambda s: _need_str("lower", s).lower(),
    "upper": lambda s: _need_str("upper", s).upper(),
    "pad": _pad,
    "truncate": _truncate,
}

_MANY = 99
_ARITY = {"and": (1, _MANY), "or": (1, _MANY), "not": (1, 1), "len": (1, 1), "index": (1, _MANY),
          "slice": (1, 3), "print": (0, _MANY), "printf": (1, _MANY), "println": (0, _MANY),
          "eq": (1, _MANY), "ne": (2, 2), "lt": (2, 2), "le": (2, 2), "gt": (2, 2), "ge": (2, 2),
          "json": (1, 1), "split": (2, 2), "join": (2, 2), "title": (1, 1), "lower": (1, 1),
          "upper": (1, 1), "pad": (3, 3), "truncate": (2, 2)}  # fmt: skip

# A table's header row runs the same template over the column names: docker's
# HeaderFunctions leave a name as it is (pad still pads, to keep alignment).
_HEADER_FUNCS = dict(_FUNCS)
_HEADER_FUNCS.update(
    {
        "json": lambda v: v,
        "split": lambda v, _sep: v,
        "join": lambda v, _sep: v,
        "title": lambda v: v,
        "lower": lambda v: v,
        "upper": lambda v: v,
        "truncate": lambda v, _n: v,
        "index": lambda v, *_k: v,
    }
)

# ---------------------------------------------------------------- lexer


class _Missing:
    """A missing map key (Go's invalid reflect.Value): prints as <no value>."""

    def __repr__(self) -> str:
        return "<no value>"


_MISSING: Any = _Missing()
_PIPED: Any = object()  # "nothing piped into this stage"

_KEYWORDS = frozenset({"if", "else", "end", "range", "with", "break", "continue",
                       "define", "template", "block"})  # fmt: skip
_SPACE = " \t\r\n"
_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v"}  # fmt: skip


class _ParseError(Exception):
    def __init__(self, message: str, pos: int | None = None) -> None:
        super().__init__(message)
        self.pos = pos


class _Tok:
    __slots__ = ("kind", "pos", "text", "value")

    def __init__(self, kind: str, text: str, pos: int, value: Any = None) -> None:
        # kinds: text {{ }} space ident field dot var const nil | ( ) := = , eof
        self.kind = kind
        self.text = text
        self.pos = pos
        self.value = value


def _unquote(body: str, pos: int) -> str:
    """A Go double-quoted string's body, escapes decoded."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1 : i + 2]
        if esc and esc in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2 : i + 2 + size]
            if len(digits) != size or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise _ParseError(f"invalid syntax: {body!r}", pos)
            out.append(chr(int(digits, 16)))
            i += 2 + size
        elif esc and esc in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits):
                raise _ParseError(f"invalid syntax: {body!r}", pos)
            out.append(chr(int(digits, 8)))
            i += 4
        elif esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        else:
            raise _ParseError(f"invalid syntax: {body!r}", pos)
    return "".join(out)


def _number(text: str, pos: int) -> int | float:
    clean = text.replace("_", "")
    body = clean.lstrip("+-")
    try:
        if body[:2].lower() in ("0x", "0o", "0b"):
            return int(clean, 0)
        if body.isdigit():
            return int(clean, 8) if len(body) > 1 and body[0] == "0" else int(clean)
        return float(clean)
    except ValueError:
        raise _ParseError(f"bad number syntax: {text!r}", pos) from None


def _unicode(ch: str) -> str:
    """Go's %#U: ``U+007D '}'``."""
    return f"U+{ord(ch):04X} '{ch}'" if ch.isprintable() else f"U+{ord(ch):04X}"


def _at_terminator(src: str, i: int) -> bool:
    return i >= len(src) or src[i] in " \t\r\n.,|:()" or src.startswith("}}", i)


def _is_space(src: str, i: int) -> bool:
    return i < len(src) and src[i] in _SPACE


def _lex(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(src)
    trim_next = False
    while i < n:
        start = src.find("{{", i)
        text = src[i:] if start < 0 else src[i:start]
        if (
            start >= 0
            and src[start + 2 : start + 3] == "-"
            and src[start + 3 : start + 4] in _SPACE
        ):
            text = text.rstrip(_SPACE)
        if trim_next:
            text = text.lstrip(_SPACE)
        if text:
            toks.append(_Tok("text", text, i))
        if start < 0:
            break
        i, trim_next = _lex_action(src, start, toks)
    toks.append(_Tok("eof", "", n))
    return toks


def _lex_action(src: str, start: int, toks: list[_Tok]) -> tuple[int, bool]:
    """Lex one ``{{ ... }}``; returns the position after it and whether it trims what follows."""
    n = len(src)
    i = start + 2
    if src[i : i + 1] == "-" and _is_space(src, i + 1):
        i += 1
    j = i
    while j < n and src[j] in _SPACE:
        j += 1
    if src.startswith("/*", j):  # a comment: produces nothing
        end = src.find("*/", j + 2)
        if end < 0:
            raise _ParseError("unclosed comment", start)
        k = end + 2
        while k < n and src[k] in _SPACE:
            k += 1
        trim = src.startswith("-}}", k) and k > end + 2
        if trim:
            k += 1
        if not src.startswith("}}", k):
            raise _ParseError("comment ends before closing delimiter", start)
        return k + 2, trim
    toks.append(_Tok("{{", "{{", start))
    while True:
        if i >= n:
            raise _ParseError("unclosed action", start)
        ch = src[i]
        if ch in _SPACE:
            j = i
            while j < n and src[j] in _SPACE:
                j += 1
            if src.startswith("-}}", j):
                toks.append(_Tok("}}", "}}", j))
                return j + 3, True
            toks.append(_Tok("space", src[i:j], i))
            i = j
        elif src.startswith("}}", i):
            toks.append(_Tok("}}", "}}", i))
            return i + 2, False
        elif ch == "." and not src[i + 1 : i + 2].isdigit():
            j = i + 1
            while j < n and src[j] in _IDENT_CHARS:
                j += 1
            if j == i + 1:
                toks.append(_Tok("dot", ".", i))
            else:
                toks.append(_Tok("field", src[i:j], i, src[i + 1 : j]))
            i = j
        elif ch == "$":
            j = i + 1
            while j < n and src[j] in _IDENT_CHARS:
                j += 1
            toks.append(_Tok("var", src[i:j], i, src[i:j]))
            i = j
        elif ch == '"':
            j = i + 1
            while j < n and src[j] != '"':
                if src[j] == "\n":
                    break
                j += 2 if src[j] == "\\" else 1
            if j >= n or src[j] != '"':
                raise _ParseError("unterminated quoted string", i)
            toks.append(_Tok("const", src[i : j + 1], i, _unquote(src[i + 1 : j], i)))
            i = j + 1
        elif ch == "`":
            j = src.find("`", i + 1)
            if j < 0:
                raise _ParseError("unterminated raw quoted string", i)
            toks.append(_Tok("const", src[i : j + 1], i, src[i + 1 : j]))
            i = j + 1
        elif ch == "'":
            j = i + 1
            while j < n and src[j] != "'":
                if src[j] == "\n":
                    raise _ParseError("unterminated character constant", i)
                j += 2 if src[j] == "\\" else 1
            body = _unquote(src[i + 1 : j], i) if j < n else ""
            if len(body) != 1:
                raise _ParseError(f"malformed character constant: {src[i : j + 1]}", i)
            toks.append(_Tok("const", src[i : j + 1], i, ord(body)))
            i = j + 1
        elif ch.isdigit() or (ch in "+-." and src[i + 1 : i + 2].isdigit()):
            j = i + 1
            while j < n and (
                src[j] in _IDENT_CHARS or src[j] == "." or (src[j] in "+-" and src[j - 1] in "eEpP")
            ):
                j += 1
            toks.append(_Tok("const", src[i:j], i, _number(src[i:j], i)))
            i = j
        elif ch in _IDENT_CHARS:
            j = i
            while j < n and src[j] in _IDENT_CHARS:
                j += 1
            word = src[i:j]
            if word in ("true", "false"):
                toks.append(_Tok("const", word, i, word == "true"))
            elif word == "nil":
                toks.append(_Tok("nil", word, i))
            else:
                toks.append(_Tok("ident", word, i, word))
            i = j
        elif src.startswith(":=", i):
            toks.append(_Tok(":=", ":=", i))
            i += 2
        elif ch in "|()=,":
            toks.append(_Tok(ch, ch, i))
            i += 1
        elif ch.isprintable() and ord(ch) < 128:
            raise _ParseError(f"unexpected {_quote(ch)} in command", i)
        else:
            raise _ParseError(f"unrecognized character in action: {_unicode(ch)}", i)
        if toks[-1].kind in ("field", "var", "ident") and not _at_terminator(src, i):
            raise _ParseError(f"bad character {_unicode(src[i])}", i)


# ---------------------------------------------------------------- execution


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _State:
    """One execution: the root (``$``), header mode, the output and the variable stack."""

    __slots__ = ("funcs", "header", "mode", "out", "root", "struct", "type_name", "vars")

    def __init__(self, root: Any, header: bool, mode: str, type_name: str) -> None:
        self.root = root
        self.header = header
        self.mode = mode
        self.struct = mode == "list" and not header
        self.type_name = type_name
        self.funcs = _HEADER_FUNCS if header else _FUNCS
        self.out: list[str] = []
        self.vars: list[tuple[str, Any]] = [("$", root)]


class _Located(Exception):
    """An _ExecError with the action it happened in (docker's "executing ... at <...>")."""

    def __init__(self, pos: int, node: str, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.node = node


def _field(value: Any, name: str, st: _State, args: list[Any] | None = None) -> Any:
    """``value.name`` as text/template evaluates it (a callable value is a method)."""
    if isinstance(value, dict):
        got = value.get(name, _MISSING)
        if got is _MISSING:
            if st.header and value is st.root:
                return _header_of(name)
            if value is st.root and not st.header:
                if st.struct:
                    raise _ExecError(f"can't evaluate field {name} in type {st.type_name}")
                if st.mode == "inspect":
                    raise _ExecError(f'map has no entry for key "{name}"')
            if args:
                raise _ExecError(f"{name} is not a method but has arguments")
            return _MISSING
        if callable(got) and not st.header:
            try:
                return got(*args) if args else got()
            except TypeError:
                raise _ExecError(
                    f"wrong number of args for {name}: got {len(args or ())}"
                ) from None
        if args:
            if st.struct and value is st.root:  # docker's fields are methods
                raise _ExecError(f"wrong number of args for {name}: want 0 got {len(args)}")
            raise _ExecError(f"{name} is not a method but has arguments")
        return got
    if value is _MISSING:
        return _MISSING
    if st.header and isinstance(value, str):
        return value  # in a header, ".A.B" stays the column name of A
    if value is None:
        raise _ExecError(f"nil pointer evaluating interface {{}}.{name}")
    raise _ExecError(f"can't evaluate field {name} in type {_type_name(value)}")


def _header_of(field: str) -> str:
    """A column name for a field without one: docker's style, "CreatedBy" -> "CREATED BY"."""
    if field in DEFAULT_HEADERS:
        return DEFAULT_HEADERS[field]
    words: list[str] = []
    for i, ch in enumerate(field):
        if i and ch.isupper() and (field[i - 1].islower() or field[i + 1 : i + 2].islower()):
            words.append(" ")
        words.append(ch.upper())
    return "".join(words)


def _call_json(st: _State, value: Any) -> str:
    if value is st.root and st.struct:  # docker's MarshalJSON of a list row
        return _go_json(value, html=True, sort_keys=True)
    if st.header:
        return go_string(value)
    return _go_json(value, html=False)


class _Operand:
    """A parsed operand: a function name, or a base evaluator with a field chain."""

    __slots__ = ("base", "chain", "func", "positions", "text", "tok")

    def __init__(self, tok: _Tok, base: Eval | None, chain: list[str], func: str = "") -> None:
        self.tok = tok
        self.base = base
        self.chain = chain
        self.func = func
        self.positions: list[int] = []  # of each chain element
        self.text = tok.text

    def evaluator(self) -> Eval:
        if self.func:
            stage = _call(self.func, [], self.tok.pos)
            return lambda dot, st: stage(dot, st, _PIPED)
        assert self.base is not None
        base, chain = self.base, self.chain
        if not chain:
            return base
        text, positions = self.text, self.positions
        if base is _dot and len(chain) == 1:
            name, pos = chain[0], positions[0]

            def one(dot: Any, st: _State) -> Any:
                if type(dot) is dict:  # the common case, inlined
                    got = dot.get(name, _MISSING)
                    if got is not _MISSING and not callable(got):
                        return got
                try:
                    return _field(dot, name, st)
                except _ExecError as exc:
                    raise _Located(pos, text, str(exc)) from None

            return one

        def many(dot: Any, st: _State) -> Any:
            value = base(dot, st)
            for k, name in enumerate(chain):
                try:
                    value = _field(value, name, st)
                except _ExecError as exc:
                    raise _Located(positions[k], text, str(exc)) from None
            return value

        return many


def _dot(dot: Any, st: _State) -> Any:
    return dot


def _nil(dot: Any, st: _State) -> Any:
    return None


def _variable(name: str) -> Eval:
    def get(dot: Any, st: _State) -> Any:
        for k in range(len(st.vars) - 1, -1, -1):
            if st.vars[k][0] == name:
                return st.vars[k][1]
        return _MISSING

    return get


def _call(name: str, args: list[Eval], pos: int = 0) -> Stage:
    def call(dot: Any, st: _State, piped: Any = _PIPED) -> Any:
        values = [a(dot, st) for a in args]
        if piped is not _PIPED:
            values.append(piped)
        if name == "json" and len(values) == 1:
            return _call_json(st, values[0])
        low, high = _ARITY[name]
        if not low <= len(values) <= high:
            want = f"at least {low}" if high == _MANY else str(low)
            message = f"wrong number of args for {name}: want {want} got {len(values)}"
            raise _Located(pos, name, message)
        return st.funcs[name](*values)

    return call


def _method(op: _Operand, args: list[Eval]) -> Stage:
    """``.A.Method arg...`` (and a value piped into a field chain)."""
    assert op.base is not None
    base, chain = op.base, op.chain
    plain = op.evaluator()

    def call(dot: Any, st: _State, piped: Any = _PIPED) -> Any:
        if not args and piped is _PIPED:
            return plain(dot, st)
        values = [a(dot, st) for a in args]
        if piped is not _PIPED:
            values.append(piped)
        value = base(dot, st)
        for name in chain[:-1]:
            value = _field(value, name, st)
        return _field(value, chain[-1], st, values)

    return call


def _value_stage(ev: Eval, text: str) -> Stage:
    def stage(dot: Any, st: _State, piped: Any = _PIPED) -> Any:
        if piped is not _PIPED:
            raise _ExecError(f"can't give argument to non-function {text}")
        return ev(dot, st)

    return stage


def _fail_stage(message: str) -> Stage:
    def fail(dot: Any, st: _State, piped: Any = _PIPED) -> Any:
        raise _ExecError(message)

    return fail


def _located(pos: int, node: str, stage: Stage) -> Stage:
    def run(dot: Any, st: _State, piped: Any = _PIPED) -> Any:
        try:
            return stage(dot, st, piped)
        except _ExecError as exc:
            raise _Located(pos, node, str(exc)) from None

    return run


def _pipeline(stages: list[Stage]) -> Eval:
    first = stages[0]
    if len(stages) == 1:
        return lambda dot, st: first(dot, st, _PIPED)
    rest = stages[1:]

    def run(dot: Any, st: _State) -> Any:
        value = first(dot, st, _PIPED)
        for stage in rest:
            value = stage(dot, st, value)
        return value

    return run


def _text_emitter(text: str) -> Emit:
    def emit(dot: Any, st: _State) -> None:
        st.out.append(text)

    return emit


def _print_emitter(fn: Eval) -> Emit:
    def emit(dot: Any, st: _State) -> None:
        value = fn(dot, st)
        st.out.append(value if type(value) is str else go_string(value))

    return emit


def _silent_emitter(fn: Eval) -> Emit:
    def run(dot: Any, st: _State) -> None:
        fn(dot, st)

    return run


def _if_emitter(cond: Eval, body: list[Emit], else_body: list[Emit]) -> Emit:
    def do_if(dot: Any, st: _State) -> None:
        mark = len(st.vars)
        for item in body if _truth(cond(dot, st)) else else_body:
            item(dot, st)
        del st.vars[mark:]

    return do_if


def _with_emitter(cond: Eval, body: list[Emit], else_body: list[Emit]) -> Emit:
    def do_with(dot: Any, st: _State) -> None:
        mark = len(st.vars)
        value = cond(dot, st)
        if _truth(value):
            for item in body:
                item(value, st)
        else:
            for item in else_body:
                item(dot, st)
        del st.vars[mark:]

    return do_with


def _range_emitter(
    names: list[str], cond: Eval, body: list[Emit], else_body: list[Emit], where: tuple[int, str]
) -> Emit:
    def do_range(dot: Any, st: _State) -> None:
        mark = len(st.vars)
        value = cond(dot, st)
        pairs: Iterable[tuple[Any, Any]]
        if isinstance(value, dict):
            pairs = [(k, value[k]) for k in sorted(value, key=str)]
        elif isinstance(value, (list, tuple)):
            pairs = enumerate(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = ((i, i) for i in range(value))
        elif value is None or value is _MISSING:
            pairs = ()
        else:
            raise _Located(*where, f"range can't iterate over {go_string(value)}")
        ran = False
        for key, elem in pairs:
            ran = True
            if len(names) == 2:
                st.vars.append((names[0], key))
                st.vars.append((names[1], elem))
            elif names:
                st.vars.append((names[0], elem))
            try:
                for item in body:
                    item(elem, st)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del st.vars[mark:]
        if not ran:
            for item in else_body:
                item(dot, st)

    return do_range


def _raise_emitter(exc: type[Exception]) -> Emit:
    def run(dot: Any, st: _State) -> None:
        raise exc

    return run


# ---------------------------------------------------------------- parser


class _Parser:
    """Recursive descent over the tokens, building closures as it goes."""

    def __init__(self, src: str, toks: list[_Tok]) -> None:
        self.src = src
        self.toks = toks
        self.i = 0
        self.vars: list[str] = ["$"]  # declared variables in scope
        self.loops = 0
        self.last = (0, "")  # where the last command parsed is: (pos, text)

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def skip_space(self) -> _Tok:
        while self.toks[self.i].kind == "space":
            self.i += 1
        return self.toks[self.i]

    def fail(self, message: str) -> _ParseError:
        return _ParseError(message, self.toks[self.i].pos)

    def expect_close(self, context: str) -> None:
        tok = self.skip_space()
        if tok.kind == ")":
            raise self.fail("unexpected right paren")
        if tok.kind != "}}":
            raise self.fail(f"unexpected {tok.text!r} in {context}")
        self.i += 1

    def parse(self) -> list[Emit]:
        body, _stop = self.items(())
        return body

    def items(self, stops: tuple[str, ...]) -> tuple[list[Emit], str]:
        """Parse until a keyword in ``stops`` (end/else); returns the body and that keyword."""
        body: list[Emit] = []
        while True:
            tok = self.toks[self.i]
            self.i += 1
            if tok.kind == "eof":
                if stops:
                    self.i -= 1
                    raise self.fail("unexpected EOF")
                return body, ""
            if tok.kind == "text":
                body.append(_text_emitter(tok.text))
                continue
            first = self.skip_space()  # after "{{"
            if first.kind == "}}":
                raise self.fail("missing value for command")
            if first.kind == "ident" and first.value in _KEYWORDS:
                word = first.value
                self.i += 1
                if word in stops:
                    return body, word
                if word in ("end", "else"):
                    raise _ParseError(f"unexpected {{{{{word}}}}}", first.pos)
                body.append(self.control(word))
                continue
            fn, declares = self.pipeline("command", decl_ok=True)
            self.expect_close("command")
            body.append(_silent_emitter(fn) if declares else _print_emitter(fn))

    def control(self, word: str) -> Emit:
        if word in ("break", "continue"):
            if not self.loops:
                raise self.fail(f"{{{{{word}}}}} outside {{{{range}}}}")
            self.expect_close(word)
            return _raise_emitter(_Break if word == "break" else _Continue)
        if word in ("define", "template", "block"):
            raise self.fail(f"{{{{{word}}}}} is not supported")
        mark = len(self.vars)
        names = self.range_vars() if word == "range" else []
        cond, _ = self.pipeline(word, decl_ok=word != "range")
        where = self.last
        self.expect_close(word)
        self.loops += word == "range"
        body, stop = self.items(("end", "else"))
        self.loops -= word == "range"
        else_body: list[Emit] = []
        if stop == "else":
            nxt = self.skip_space()
            if nxt.kind == "ident" and nxt.value in ("if", "with") and word != "range":
                # "{{else if ...}}" is "{{else}}{{if ...}}...{{end}}" sharing this end
                self.i += 1
                del self.vars[mark:]
                else_body = [self.control(nxt.value)]
                return (
                    _if_emitter(cond, body, else_body)
                    if word == "if"
                    else _with_emitter(cond, body, else_body)
                )
            self.expect_close("else")
            else_body, _ = self.items(("end", "else"))
            if _ == "else":
                raise self.fail("expected end; found {{else}}")
        self.expect_close("end")
        del self.vars[mark:]
        if word == "if":
            return _if_emitter(cond, body, else_body)
        if word == "with":
            return _with_emitter(cond, body, else_body)
        return _range_emitter(names, cond, body, else_body, where)

    def range_vars(self) -> list[str]:
        """``$k, $v :=`` or ``$v :=`` after range, declared for the body."""
        save = self.i
        names: list[str] = []
        tok = self.skip_space()
        while tok.kind == "var":
            if len(names) == 2:
                raise self.fail("too many declarations in range")
            names.append(tok.value)
            self.i += 1
            tok = self.skip_space()
            if tok.kind != ",":
                break
            self.i += 1
            tok = self.skip_space()
        if names and tok.kind in (":=", "="):
            self.i += 1
            self.vars.extend(names)
            return names
        self.i = save
        return []

    def pipeline(self, context: str, decl_ok: bool) -> tuple[Eval, bool]:
        """``[$x :=|=] stage | stage ...``; returns (evaluator, declares-a-variable)."""
        decl = ""
        assign = False
        tok = self.skip_space()
        if tok.kind == "var" and decl_ok:
            save = self.i
            self.i += 1
            op = self.skip_space()
            if op.kind in (":=", "="):
                self.i += 1
                decl, assign = tok.value, op.kind == "="
                if assign and decl not in self.vars:
                    raise _ParseError(f'undefined variable "{decl}"', tok.pos)
            else:
                self.i = save
        stages: list[Stage] = []
        while True:
            stages.append(self.command(context))
            if self.skip_space().kind != "|":
                break
            self.i += 1
            if self.skip_space().kind == "}}":
                break  # text/template accepts a trailing "|"
        pipe = _pipeline(stages)
        if not decl:
            return pipe, False
        if not assign:
            self.vars.append(decl)
        name = decl

        def declare(dot: Any, st: _State) -> Any:
            value = pipe(dot, st)
            if assign:
                for k in range(len(st.vars) - 1, -1, -1):
                    if st.vars[k][0] == name:
                        st.vars[k] = (name, value)
                        break
            else:
                st.vars.append((name, value))
            return value

        return declare, True

    def command(self, context: str) -> Stage:
        """One stage: a function call, a method call, or a single operand."""
        operands: list[_Operand] = []
        while True:
            tok = self.skip_space()
            if tok.kind in ("}}", "|", ")", "eof"):
                break
            operands.append(self.operand(context))
        if not operands:
            if tok.kind == "|":
                raise self.fail(f'unexpected "|" in {context}')
            raise self.fail(f"missing value for {context}")
        head = operands[0]
        args = [op.evaluator() for op in operands[1:]]
        if head.func:
            node = self.src[head.tok.pos : self.toks[self.i].pos].strip()
            self.last = (head.tok.pos, node)
            return _located(head.tok.pos, node, _call(head.func, args, head.tok.pos))
        self.last = (head.tok.pos, head.text)
        if head.chain:
            return _located(head.positions[-1], head.text, _method(head, args))
        if head.base is _nil:
            return _located(head.tok.pos, "nil", _fail_stage("nil is not a command"))
        if args:
            stage = _fail_stage(f"can't give argument to non-function {head.text}")
        else:
            stage = _value_stage(head.evaluator(), head.text)
        return _located(head.tok.pos, head.text, stage)

    def operand(self, context: str) -> _Operand:
        """A term and any ``.Field`` chain after it."""
        tok = self.toks[self.i]
        self.i += 1
        chain: list[str] = []
        base: Eval
        if tok.kind == "field":
            chain.append(tok.value)
            base = _dot
        elif tok.kind == "dot":
            if self.peek().kind in ("field", "dot"):
                raise self.fail('unexpected . after term "."')
            base = _dot
        elif tok.kind == "var":
            if tok.value not in self.vars:
                raise _ParseError(f'undefined variable "{tok.value}"', tok.pos)
            base = _variable(tok.value)
        elif tok.kind == "const":
            value = tok.value
            base = lambda dot, st: value  # noqa: E731
        elif tok.kind == "(":
            base, _ = self.pipeline(context, decl_ok=True)
            if self.skip_space().kind != ")":
                raise self.fail("unclosed left paren")
            self.i += 1
        elif tok.kind == "ident" and tok.value not in _KEYWORDS:
            if tok.value not in _FUNCS:
                raise _ParseError(f'function "{tok.value}" not defined', tok.pos)
            return _Operand(tok, None, [], func=tok.value)
        elif tok.kind == "nil":
            base = _nil
        else:
            raise _ParseError(f"unexpected {tok.text!r} in {context}", tok.pos)
        positions = [tok.pos] if chain else []
        while self.peek().kind == "field":
            chain.append(self.peek().value)
            positions.append(self.peek().pos)
            self.i += 1
        if self.peek().kind == "dot":
            raise self.fail("unexpected <.> in operand")
        op = _Operand(tok, base, chain)
        op.positions = positions
        op.text = self.src[tok.pos : self.peek().pos]
        return op


# ---------------------------------------------------------------- public


def _position(src: str, pos: int) -> str:
    line = src.count("\n", 0, pos) + 1
    col = pos - (src.rfind("\n", 0, pos) + 1)
    return f"{line}:{col}"


class Template:
    """One compiled Go template.

    >>> Template("{{.Repository}}:{{.Tag}}").render({"Repository": "busybox", "Tag": "1"})
    'busybox:1'

    ``mode`` says what the data is, as docker sees it:

    ``"list"``     a row of a list command (images, ps, history): a field the
                   row lacks is "can't evaluate field X in type TYPE_NAME";
                   ``{{json .}}`` prints the row with sorted keys and ``<>&``
                   escaped, as docker's MarshalJSON of its contexts does.
    ``"inspect"``  an inspect document: a key the document lacks is "map has
                   no entry for key"; nested objects are maps (``<no value>``).
    ``"map"``      plain data: anything missing prints ``<no value>``.
    """

    __slots__ = ("_body", "mode", "source", "type_name")

    def __init__(self, source: str, *, mode: str = "list", type_name: str = "row") -> None:
        if mode not in ("list", "inspect", "map"):
            raise ValueError(f"template mode {mode!r}")
        self.source = source
        self.mode = mode
        self.type_name = type_name
        try:
            self._body = _Parser(source, _lex(source)).parse()
        except _ParseError as exc:
            line = source.count("\n", 0, exc.pos or 0) + 1
            raise InvalidArgument(f"template parsing error: template: :{line}: {exc}") from None

    def render(self, data: Any) -> str:
        """The template executed with ``data`` as dot."""
        return self._execute(data, header=False)

    def render_header(self, headers: Mapping[str, str]) -> str:
        """The header row: fields name their column (``headers``, else the field upper-cased)."""
        return self._execute(dict(headers), header=True)

    def _run(self, data: Any, header: bool) -> str:
        st = _State(data, header, self.mode, self.type_name)
        try:
            for item in self._body:
                item(data, st)
        except (_Located, _ExecError, _Break, _Continue):
            if header:  # docker prints what the header wrote before failing
                return "".join(st.out)
            raise
        return "".join(st.out)

    def _execute(self, data: Any, header: bool) -> str:
        try:
            return self._run(data, header)
        except _Located as exc:
            raise InvalidArgument(
                f"template parsing error: template: :{_position(self.source, exc.pos)}: "
                f'executing "" at <{exc.node}>: {exc}'
            ) from None
        except _ExecError as exc:
            raise InvalidArgument(f'template parsing error: template: : executing "": {exc}')
        except (_Break, _Continue):
            raise InvalidArgument("template parsing error: break or continue outside range")


class Formatter:
    """docker's formatter Context: ``table ...``, ``json``, or a raw template, over rows.

    ``headers`` name the columns of a table (``IMAGE_HEADERS`` and the others
    below; a field without one gets ``DEFAULT_HEADERS``' name or its own,
    upper-cased word by word); ``default_table`` is what the bare word
    ``table`` means for this command.  In ``inspect`` mode the spec is a
    template as it is (docker's inspect has no tables, no escapes).
    """

    def __init__(
        self,
        spec: str,
        headers: Mapping[str, str] | None = None,
        *,
        default_table: str = "",
        mode: str = "list",
        type_name: str = "row",
    ) -> None:
        if mode == "inspect":
            self.is_table = False
            self.headers: dict[str, str] = {}
            self.template = Template(spec, mode=mode, type_name=type_name)
            return
        if spec == "table" and default_table:
            spec = default_table
        self.is_table = spec.startswith("table")
        if self.is_table:
            body = spec[len("table") :]
        elif spec == "json":
            body = "{{json .}}"
        else:
            body = spec
        body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
        self.headers = dict(headers or {})
        self.template = Template(body, mode=mode, type_name=type_name)

    def render(self, rows: Iterable[Any]) -> str:
        """Every row rendered and ended with a newline; a table gets its header and alignment."""
        render = self.template.render
        lines = [render(row) + "\n" for row in rows]
        if not self.is_table:
            return "".join(lines)
        header = self.template.render_header(self.headers)
        return align(header + "\n" + "".join(lines))


def render(
    spec: str,
    rows: Iterable[Any],
    headers: Mapping[str, str] | None = None,
    *,
    default_table: str = "",
    mode: str = "list",
    type_name: str = "row",
) -> str:
    """``Formatter(spec, ...).render(rows)`` in one call."""
    formatter = Formatter(spec, headers, default_table=default_table, mode=mode,
                          type_name=type_name)  # fmt: skip
    return formatter.render(rows)


# docker's column names (docker/cli's formatter); ``headers`` for Formatter.
DEFAULT_HEADERS = {
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Size": "SIZE",
    "VirtualSize": "SIZE",
    "Labels": "LABELS",
    "Names": "NAMES",
    "Name": "NAME",
    "Driver": "DRIVER",
}
IMAGE_HEADERS = {
    **DEFAULT_HEADERS,
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "Containers": "CONTAINERS",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
}
HISTORY_HEADERS = {
    **DEFAULT_HEADERS,
    "ID": "IMAGE",
    "CreatedBy": "CREATED BY",
    "Comment": "COMMENT",
}
CONTAINER_HEADERS = {
    **DEFAULT_HEADERS,
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "Status": "STATUS",
    "State": "STATE",
    "Ports": "PORTS",
    "Mounts": "MOUNTS",
    "LocalVolumes": "LOCAL VOLUMES",
    "Networks": "NETWORKS",
    "Platform": "PLATFORM",
}
