"""docker's output conventions: ``--format`` templates, aligned tables, sizes and ages.

Scripts written against ``docker images --format ...`` must work unchanged,
so this follows docker/cli's formatter: the format string gets ``\\t`` and
``\\n`` escapes replaced and surrounding spaces trimmed; ``table`` in front
means "print a header row (the template run over the column names) and
align every tab-separated cell" with Go's tabwriter settings (min width 10,
padding 3, spaces); ``json`` alone means ``{{json .}}``.

The templates themselves are Go's text/template: gotemplate.py (with
gotemplate_lex.py and gotemplate_funcs.py) knows nothing of tables or
docker's column names.  Template and go_string are re-exported here, as
the commands import them from this module.

Nothing slow is imported: no ``re``, ``json`` or ``typing`` (the CLI's start
time is watched).
"""

from __future__ import annotations

from sampan.cli.gotemplate import Template, go_string
from sampan.units import human_duration, human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

__all__ = [
    "CONTAINER_HEADERS",
    "DEFAULT_HEADERS",
    "HISTORY_HEADERS",
    "IMAGE_HEADERS",
    "Formatter",
    "Template",
    "align",
    "column_name",
    "go_string",
    "human_duration",
    "human_duration_ago",
    "human_size",
    "inspect_output",
    "render",
    "table",
]

# ---------------------------------------------------------------- units (go-units)


def human_duration_ago(seconds: float) -> str:
    """docker's CREATED column: ``human_duration(seconds) + " ago"``."""
    return human_duration(seconds) + " ago"


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


# ---------------------------------------------------------------- docker's formatter


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
        header = self.template.render_header(self.headers, column_name)
        return align(header + "\n" + "".join(lines))


def render_listing(
    spec: str, rows: list[dict[str, Any]], headers: Mapping[str, str], default_table: str
) -> str:
    """An ``ls`` command's rows (volume ls, network ls): SPEC (--format) or DEFAULT_TABLE;
    for ``json`` their Label entry (a method for templates, not data) is left out."""
    spec = spec or default_table
    if spec == "json" or "json ." in spec:
        for row in rows:
            row.pop("Label", None)
    return render(spec, rows, headers, default_table=default_table)


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


def column_name(field: str) -> str:
    """A column name for a field without one: docker's style, "CreatedBy" -> "CREATED BY"."""
    if field in DEFAULT_HEADERS:
        return DEFAULT_HEADERS[field]
    words: list[str] = []
    for i, ch in enumerate(field):
        if i and ch.isupper() and (field[i - 1].islower() or field[i + 1 : i + 2].islower()):
            words.append(" ")
        words.append(ch.upper())
    return "".join(words)


def inspect_output(docs: list[Any], template: str | None) -> str:
    """What ``inspect`` prints: the documents as indented JSON, or the template over each."""
    if template:
        return render(template, docs, mode="inspect")
    from sampan import _json

    return _json.dumps(docs, indent=4) + "\n"
