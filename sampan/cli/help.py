"""``sampan COMMAND --help``: the command's usage line, what it does, and its options.

Each handler prints its own usage line for ``--help``.  The options listed
under it are the flags the handler really parses, recorded the way shell
completion records them (``completion.flags_of``), so the list cannot drift
from the parser.  ``--help`` counts only before the first positional
argument: ``sampan exec web ls --help`` runs ``ls --help``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from sampan.cli.main import Context

__all__ = ["show", "wants_help"]


def wants_help(argv: list[str]) -> bool:
    for arg in argv:
        if arg == "--help":
            return True
        if arg == "--" or not arg.startswith("-"):
            return False
    return False


def show(
    ctx: Context, spec: tuple[str, str, str], handler: Callable[[Context, list[str]], int]
) -> int:
    from sampan.cli.args import usage
    from sampan.cli.completion import flags_of

    # Flags without a description are docker's, refused by name (never ignored): not listed.
    flags = [f for f in flags_of(spec) if "--help" not in f.names and f.help]
    try:
        code = int(handler(ctx, ["--help"]))
    except SystemExit as done:  # some handlers end their usage line so
        code = int(done.code or 0)
    if code != 0:
        return code
    print(f"\n{spec[2]}")
    if flags:
        print("\nOptions:")
        print(usage(flags))
    return 0
