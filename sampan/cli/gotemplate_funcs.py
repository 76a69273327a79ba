"""Go's values as text, and the functions a docker ``--format`` template can call.

A template's data is decoded JSON (or a row of a list command), so the Go
values it stands for are few: bool, int, float64, string, []interface{},
map[string]interface{} and nil.  This module prints them as Go's fmt
(``%v``, Sprintf's verbs, Sprint's spacing) and encoding/json do, and holds
the function table of text/template (and, or, not, len, index, slice,
print, printf, println, eq, ne, lt, le, gt, ge) with the functions docker
adds (json, split, join, title, lower, upper, pad, truncate) -- plus the
header variants docker runs over a table's column names.  Errors are
ExecError; gotemplate.py adds docker's "executing ... at <...>" prefix.

Nothing slow is imported: no ``re``, ``json`` or ``typing`` (the CLI's start
time is watched).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "ARITY",
    "FUNCS",
    "HEADER_FUNCS",
    "MANY",
    "MISSING",
    "ExecError",
    "go_float",
    "go_json",
    "go_quote",
    "go_string",
    "go_type",
    "sprintf",
    "truth",
]


class ExecError(Exception):
    """An execution error; the Template wraps it with docker's position prefix."""


class _Missing:
    """A missing map key (Go's invalid reflect.Value): prints as <no value>."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


# ---------------------------------------------------------------- Go values as text


def go_type(value: object) -> str:
    """The Go type a decoded JSON value has, as error messages name it (``float64``)."""
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


def go_float(f: float, low: int = -4, high: int = 6, json: bool = False) -> str:
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
    if value is MISSING:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
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


def go_json(value: object, html: bool, sort_keys: bool = False) -> str:
    """Go's encoding/json output (compact; UTF-8 kept; ``<>&`` escaped when ``html``)."""
    if isinstance(value, str):
        return _json_string(value, html)
    if value is None or value is MISSING:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ExecError(f"json: unsupported value: {go_float(value)}")
        return go_float(value, low=-7, high=21, json=True)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json(v, html) for v in value) + "]"
    if isinstance(value, dict):
        items = list(value.items())
        if sort_keys:
            items.sort(key=lambda kv: str(kv[0]))
        parts = []
        for k, v in items:
            if callable(v):
                v = v()
            parts.append(_json_string(str(k), html) + ":" + go_json(v, html))
        return "{" + ",".join(parts) + "}"
    return _json_string(str(value), html)


def truth(value: object) -> bool:
    """text/template's truth: false, 0, nil, missing and empty strings/lists/maps are false."""
    if value is MISSING or value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


# ---------------------------------------------------------------- printf


def go_quote(text: str) -> str:
    """Go's strconv.Quote (printf's %q)."""
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


def sprintf(fmt: str, args: list[Any]) -> str:
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
        extra = ", ".join(f"{go_type(a)}={go_string(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_verb(verb: str, flags: str, prec: int | None, arg: Any) -> str:
    if verb == "s" and isinstance(arg, (int, float)):
        return f"%!s({go_type(arg)}={go_string(arg)})"
    if verb in "vs":
        text = go_string(arg)
        return text[:prec] if prec is not None and isinstance(arg, str) else text
    if verb == "U" and isinstance(arg, int):
        return f"U+{arg:04X}"
    if verb == "q":
        return go_quote(arg if isinstance(arg, str) else go_string(arg))
    if verb == "t":
        return go_string(arg) if isinstance(arg, bool) else f"%!t({go_type(arg)}={arg})"
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
            text = go_float(float(arg))
            return text.upper() if verb == "G" else text
        sign = "+" if "+" in flags else (" " if " " in flags else "")
        return format(float(arg), f"{sign}.{6 if prec is None else prec}{verb}")
    return f"%!{verb}({go_type(arg)}={go_string(arg)})"


# ---------------------------------------------------------------- functions


def _need_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ExecError(f"error calling {name}: wrong type for value; expected string; "
                         f"got {go_type(value)}")  # fmt: skip
    return value


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if item is MISSING or item is None:
            raise ExecError("error calling index: index of untyped nil")
        if isinstance(item, dict):
            item = item.get(key, "")  # Go's index gives the zero value for a missing key
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(key, int) or isinstance(key, bool):
                raise ExecError(f"error calling index: cannot index slice/array with type "
                                 f"{go_type(key)}")  # fmt: skip
            if not 0 <= key < (len(item.encode()) if isinstance(item, str) else len(item)):
                raise ExecError(f"error calling index: index out of range: {key}")
            item = item.encode()[key] if isinstance(item, str) else item[key]
        else:
            raise ExecError(f"error calling index: can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *bounds: Any) -> Any:
    if not isinstance(item, (list, tuple, str)):
        raise ExecError(f"error calling slice: can't slice item of type {go_type(item)}")
    if len(bounds) > 2:
        raise ExecError("error calling slice: too many slice indexes")
    lo = _need_int("slice", bounds[0]) if bounds else 0
    hi = _need_int("slice", bounds[1]) if len(bounds) > 1 else len(item)
    if not 0 <= lo <= hi <= len(item):
        raise ExecError(f"error calling slice: index out of range: {lo}:{hi}")
    return item[lo:hi]


def _len(item: Any) -> int:
    if isinstance(item, (list, tuple, dict, str)):
        return len(item)
    raise ExecError(f"error calling len: len of type {go_type(item)}")


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
        raise ExecError("error calling eq: missing argument for comparison")
    return any(_same(first, other) for other in others)


def _same(a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return a is b
    ka, kb = _kind(a), _kind(b)
    if ka != kb and a is not None and b is not None:
        raise ExecError("error calling eq: incompatible types for comparison")
    return bool(a == b)


def _compare(name: str) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        kind = _kind(a)
        if kind != _kind(b) or kind in ("bool", "other"):
            raise ExecError(f"error calling {name}: incompatible types for comparison")
        try:
            if name == "lt":
                return bool(a < b)
            if name == "le":
                return bool(a <= b)
            if name == "gt":
                return bool(a > b)
            return bool(a >= b)
        except TypeError:
            raise ExecError(f"error calling {name}: incompatible types for comparison") from None

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
        raise ExecError(f"error calling join: wrong type for value; expected []string; "
                         f"got {go_type(items)}")  # fmt: skip
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
        raise ExecError(f"error calling {name}: wrong type for value; expected int; "
                         f"got {go_type(value)}")  # fmt: skip
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
        if not truth(arg):
            return arg
    return args[-1]


def _or(*args: Any) -> Any:
    for arg in args[:-1]:
        if truth(arg):
            return arg
    return args[-1]


FUNCS: dict[str, Callable[..., Any]] = {
    "and": _and,
    "or": _or,
    "not": lambda v: not truth(v),
    "len": lambda v: len(v.encode()) if isinstance(v, str) else _len(v),
    "index": _index,
    "slice": _slice,
    "print": _sprint,
    "printf": lambda f, *a: sprintf(_need_str("printf", f), list(a)),
    "println": lambda *a: " ".join(go_string(v) for v in a) + "\n",
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _compare("lt"),
    "le": _compare("le"),
    "gt": _compare("gt"),
    "ge": _compare("ge"),
    "json": lambda v: go_json(v, html=False),
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

MANY = 99
ARITY = {"and": (1, MANY), "or": (1, MANY), "not": (1, 1), "len": (1, 1), "index": (1, MANY),
          "slice": (1, 3), "print": (0, MANY), "printf": (1, MANY), "println": (0, MANY),
          "eq": (1, MANY), "ne": (2, 2), "lt": (2, 2), "le": (2, 2), "gt": (2, 2), "ge": (2, 2),
          "json": (1, 1), "split": (2, 2), "join": (2, 2), "title": (1, 1), "lower": (1, 1),
          "upper": (1, 1), "pad": (3, 3), "truncate": (2, 2)}  # fmt: skip

# A table's header row runs the same template over the column names: docker's
# HeaderFunctions leave a name as it is (pad still pads, to keep alignment).
HEADER_FUNCS = dict(FUNCS)
HEADER_FUNCS.update(
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
