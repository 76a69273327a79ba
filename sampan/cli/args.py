"""A small command-line parser with runc's conventions (``argparse`` costs ~10 ms).

Flags come before positional arguments; the first positional argument ends
flag parsing (so ``exec ID sh -c ...`` passes ``-c`` to the command).  Long
flags take ``--flag value`` or ``--flag=value``; short ones ``-f value``.
"""

from __future__ import annotations

from sampan.errors import InvalidArgument


class Flag:
    """One flag: its names, where it is stored, and its kind (bool, str, int, list)."""

    __slots__ = ("default", "dest", "help", "kind", "names")

    def __init__(self, names: str, kind: str = "bool", help: str = "", default: object = None):
        self.names = names.split(",")
        self.dest = self.names[0].lstrip("-").replace("-", "_")
        self.kind = kind
        self.help = help
        self.default = default if default is not None else ([] if kind == "list" else None)
        if kind == "bool" and default is None:
            self.default = False


def parse(flags: list[Flag], argv: list[str], stop_at_positional: bool = True):  # type: ignore[no-untyped-def]
    """Return (values by dest, positional arguments)."""
    by_name = {name: flag for flag in flags for name in flag.names}
    values: dict[str, object] = {
        f.dest: (list(f.default) if isinstance(f.default, list) else f.default) for f in flags
    }
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positional.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            if stop_at_positional:
                positional.extend(argv[i:])
                break
            continue
        name, eq, inline = arg.partition("=")
        flag = by_name.get(name)
        if flag is None and _is_short_group(arg, by_name):
            for letter in arg[1:]:  # docker's -aq: a group of boolean short flags
                values[by_name["-" + letter].dest] = True
            continue
        if flag is None:
            raise InvalidArgument(f"flag provided but not defined: {name}")
        if flag.kind == "bool":
            if eq:
                if inline not in ("true", "false"):
                    raise InvalidArgument(f"invalid boolean value {inline!r} for {name}")
                values[flag.dest] = inline == "true"
            else:
                values[flag.dest] = True
            continue
        if eq:
            value = inline
        elif i < len(argv):
            value = argv[i]
            i += 1
        else:
            raise InvalidArgument(f"flag needs an argument: {name}")
        if flag.kind == "int":
            try:
                values[flag.dest] = int(value)
            except ValueError:
                raise InvalidArgument(f"invalid value {value!r} for {name}: not an integer")
        elif flag.kind == "list":
            values[flag.dest].append(value)  # type: ignore[attr-defined]
        else:
            values[flag.dest] = value
    return values, positional


def _is_short_group(arg: str, by_name: dict[str, Flag]) -> bool:
    if arg.startswith("--") or len(arg) < 3 or "=" in arg:
        return False
    flags = [by_name.get("-" + letter) for letter in arg[1:]]
    return all(f is not None and f.kind == "bool" for f in flags)


def usage(flags: list[Flag]) -> str:
    lines = []
    for f in flags:
        arg = "" if f.kind == "bool" else " value"
        lines.append(f"   {', '.join(f.names)}{arg}".ljust(34) + f.help)
    return "\n".join(lines)
