"""sampan.cli.format (and the templates of sampan.cli.gotemplate) against what docker prints.

The expected strings were taken from the docker CLI (28.2) running the same
formats over `docker images` rows (docker/go-units' own examples for the
units); each test names the docker behaviour it pins.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sampan.cli.format import (
    HISTORY_HEADERS,
    IMAGE_HEADERS,
    Formatter,
    Template,
    align,
    go_string,
    human_duration,
    human_duration_ago,
    human_size,
    render,
    table,
)
from sampan.errors import InvalidArgument

ROOT = Path(__file__).resolve().parents[2]

HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
           "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
           "Containers": "CONTAINERS", "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE",
           "UniqueSize": "UNIQUE SIZE"}  # fmt: skip
DEFAULT_TABLE = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t"
                 "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}")  # fmt: skip


def image_row(repository: str, tag: str) -> dict[str, object]:
    return {"Containers": "N/A", "CreatedAt": "2026-11-22 03:21:48 +0000 UTC",
            "CreatedSince": "9 minutes ago", "Digest": "<none>", "ID": "4c11173610f8",
            "Repository": repository, "SharedSize": "N/A", "Size": "1.98MB", "Tag": tag,
            "UniqueSize": "N/A", "VirtualSize": "1.984MB"}  # fmt: skip


ROWS = [image_row("busybox", "latest"),
        image_row("example.com/some/longer-repository-name", "v1.2.3")]  # fmt: skip


def images(spec: str, rows: list[dict[str, object]] = ROWS) -> str:
    return Formatter(spec, HEADERS, default_table=DEFAULT_TABLE).render(rows)


# ---------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (4260, "4.26kB"),
        (1984234, "1.98MB"),
        (1_240_000, "1.24MB"),
        (999_500, "1e+03kB"),
        (77_800_000_000, "77.8GB"),
        (10**30, "1e+06YB"),
    ],
)
def test_human_size_is_go_units_with_precision_3(size: int, text: str) -> None:
    assert human_size(size) == text


def test_human_size_precision_4_is_plain_human_size() -> None:
    assert human_size(1984234, 4) == "1.984MB"  # docker's VirtualSize column


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.45, "Less than a second"),
        (-5, "Less than a second"),
        (1, "1 second"),
        (47, "47 seconds"),
        (60, "About a minute"),
        (3 * 60, "3 minutes"),
        (35 * 60 + 40, "35 minutes"),
        (3600, "About an hour"),
        (3600 + 29 * 60, "About an hour"),
        (3600 + 31 * 60, "2 hours"),
        (3 * 3600 + 59 * 60, "4 hours"),
        (24 * 3600, "24 hours"),
        (36 * 3600, "36 hours"),
        (2 * 86400, "2 days"),
        (13 * 86400 + 5 * 3600, "13 days"),
        (14 * 86400, "2 weeks"),
        (30 * 86400, "4 weeks"),
        (44 * 86400, "6 weeks"),
        (60 * 86400, "2 months"),
        (13 * 30 * 86400, "13 months"),
        (24 * 30 * 86400, "24 months"),
        (24 * 30 * 86400 + 14 * 86400, "2 years"),
        (3 * 365 * 86400 + 60 * 86400, "3 years"),
    ],
)
def test_human_duration_matches_go_units(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_human_duration_ago() -> None:
    assert human_duration_ago(9 * 60) == "9 minutes ago"


# ---------------------------------------------------------------- tables


def test_default_images_table_is_aligned_like_docker() -> None:
    pad = " " * 32
    assert images("table").splitlines() == [
        f"REPOSITORY{pad}TAG       IMAGE ID       CREATED         SIZE",
        f"busybox   {pad}latest    4c11173610f8   9 minutes ago   1.98MB",
        "example.com/some/longer-repository-name   v1.2.3    4c11173610f8   9 minutes ago   1.98MB",
    ]


def test_table_columns_have_min_width_10_and_padding_3() -> None:
    assert images("table {{.Tag}}\\t{{.ID}}") == (
        "TAG       IMAGE ID\nlatest    4c11173610f8\nv1.2.3    4c11173610f8\n"
    )


def test_table_header_runs_functions_as_docker_header_functions() -> None:
    # upper/lower/json leave the column name alone; printf still pads it
    out = images('table {{.ID}}\\t{{.Size | printf "%10s"}}|{{lower .Repository}}')
    assert out.splitlines()[0] == "IMAGE ID             SIZE|REPOSITORY"
    assert out.splitlines()[1] == "4c11173610f8       1.98MB|busybox"
    assert images("table {{json .Repository}}\\t{{.Size}}").splitlines()[1] == (
        '"busybox"                                   1.98MB'
    )


def test_table_without_tabs_is_not_aligned() -> None:
    assert images("table {{.Repository}} {{.Tag}}") == (
        "REPOSITORY TAG\nbusybox latest\nexample.com/some/longer-repository-name v1.2.3\n"
    )


def test_table_prefix_and_spaces_are_trimmed() -> None:
    assert images("table    {{.Tag}}   ") == "TAG\nlatest\nv1.2.3\n"


def test_table_header_that_fails_keeps_what_it_wrote() -> None:
    out = images('table {{range split .Repository "/"}}{{.}}\\t{{end}}')
    assert out == "\nbusybox       \nexample.com   some      longer-repository-name   \n"


def test_align_blocks_follow_go_tabwriter() -> None:
    # a column is aligned only over consecutive lines that have it
    text = "a\tb\tc\nlonger-cell\tx\n\nz\tshort\n"
    assert align(text) == ("a             b         c\nlonger-cell   x\n\nz         short\n")


def test_table_helper() -> None:
    assert table(["NAME", "SIZE"], [["busybox", "1.98MB"]]) == (
        "NAME      SIZE\nbusybox   1.98MB\n"
    )


# ---------------------------------------------------------------- templates


@pytest.mark.parametrize(
    ("spec", "first_row"),
    [
        ("{{.Repository}}:{{.Tag}}", "busybox:latest"),
        ("{{.ID}}\\t{{.Size}}", "4c11173610f8\t1.98MB"),
        ('{{.Repository | printf "%q"}}', '"busybox"'),
        ('{{if eq .Tag "latest"}}L{{else if eq .Tag "v1.2.3"}}V{{else}}?{{end}}', "L"),
        ("{{with .Repository}}[{{.}}]{{end}}", "[busybox]"),
        ('{{join (split .Repository "/") "|"}}', "busybox"),
        ("{{len .Repository}} {{slice .Repository 1 3}} {{index .Repository 0}}", "7 us 98"),
        ('{{printf "%-10s|%5s|" .Repository .Tag}}', "busybox   |latest|"),
        (
            '{{printf "%q %v %d %x %X %o %b %e %g %t" .Tag 1.5 -12 255 255 8 5 1234.5678 '
            "0.000012345 true}}",
            '"latest" 1.5 -12 ff FF 10 101 1.234568e+03 1.2345e-05 true',
        ),
        ('{{printf "%s"}}', "%!s(MISSING)"),
        ('{{printf "%s" .Tag .ID}}', "latest%!(EXTRA string=4c11173610f8)"),
        ('{{printf "%05d|%+d|% d|%-5d|" 42 42 42 42}}', "00042|+42| 42|42   |"),
        ('{{printf "%.2s|%8.3f|%-8.2f|" .Repository 3.14159 2.5}}', "bu|   3.142|2.50    |"),
        ('{{printf "%d %s" "x" 5}}', "%!d(string=x) %!s(int=5)"),
        (
            '{{printf "%v %v %v %v" 1e6 123456.0 1234567.0 0.00001}}',
            "1e+06 123456 1.234567e+06 1e-05",
        ),
        ('{{.Repository | upper | printf "%s!"}}', "BUSYBOX!"),
        (
            "{{title .Repository}} {{truncate .Repository 4}} {{pad .Tag 2 1}}|",
            "Busybox busy   latest |",
        ),
        (
            "{{\"quoted\\ttab\" }} {{`raw`}} {{'a'}} {{0x1F}} {{1_000}} {{1e3}} {{0.5}} {{true}}",
            "quoted\ttab raw 97 31 1000 1000 0.5 true",
        ),
        ('{{$x := .Tag}}{{$x = "re"}}{{$x}}', "re"),
        (
            '{{range $v := split .Repository "/"}}'
            '{{if eq $v "b"}}{{continue}}{{end}}{{$v}};{{end}}',
            "busybox;",
        ),
        (
            '{{range $i, $c := split "a,b,c" ","}}'
            "{{if eq $i 2}}{{break}}{{end}}{{$i}}{{$c}}{{end}}",
            "0a1b",
        ),
        ('{{range split "" ","}}[{{.}}]{{else}}empty{{end}}', "[]"),
        ("{{range 3}}{{.}}{{end}}", "012"),
        ('{{and .Tag "" "x"}}|{{or "" .Tag}}|{{not .Tag}}', "|latest|false"),
        ('{{lt 1 2}} {{le 2 2}} {{gt "a" "b"}}', "true true false"),
        ('{{json .Tag}} {{json 1.5}} {{json 1e21}} {{json "<&>"}}', '"latest" 1.5 1e+21 "<&>"'),
        ("{{/* a comment */}}{{.Tag}}", "latest"),
        ("{{- /* trimmed */ -}}   {{.Tag}}", "latest"),
        ("{{- .Repository -}}  {{ .Tag }}", "busyboxlatest"),
        ("{{.Tag|}}", "latest"),
        ("{{$.Tag}} {{$.Repository}}", "latest busybox"),
        ('{{print nil}} {{print "a" "b"}} {{print 1 2 "a" 3}}', "<nil> ab 1 2a3"),
        ('{{"\\u00e9\\x41\\101"}}', "éAA"),
    ],
)
def test_templates_print_what_docker_prints(spec: str, first_row: str) -> None:
    assert images(spec).split("\n")[0] == first_row


def test_json_of_a_row_is_docker_marshal_json() -> None:
    assert images("{{json .}}").splitlines()[0] == (
        '{"Containers":"N/A","CreatedAt":"2026-11-22 03:21:48 +0000 UTC",'
        '"CreatedSince":"9 minutes ago","Digest":"\\u003cnone\\u003e","ID":"4c11173610f8",'
        '"Repository":"busybox","SharedSize":"N/A","Size":"1.98MB","Tag":"latest",'
        '"UniqueSize":"N/A","VirtualSize":"1.984MB"}'
    )
    assert images("json") == images("{{json .}}")


def test_maps_lists_and_methods() -> None:
    row = {"Labels": {"b": "2", "a": "<1>"}, "RepoTags": ["busybox:latest", "bb:1"],
           "Label": lambda key: {"a": "one"}.get(key, ""), "Nil": None}  # fmt: skip
    render = Template
    assert render("{{.Labels}}").render(row) == "map[a:<1> b:2]"
    assert render("{{.RepoTags}}").render(row) == "[busybox:latest bb:1]"
    assert render("{{range .RepoTags}}{{.}} {{end}}").render(row) == "busybox:latest bb:1 "
    assert render('{{index .Labels "a"}}|{{index .Labels "zz"}}|').render(row) == "<1>||"
    assert render("{{.Labels.zz}}").render(row) == "<no value>"
    assert render("{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}").render(row) == "a=<1>;b=2;"
    assert render("{{json .Labels}}").render(row) == '{"b":"2","a":"<1>"}'
    assert render('{{.Label "a"}}').render(row) == "one"
    assert render('{{join .RepoTags ","}}').render(row) == "busybox:latest,bb:1"
    assert render("{{if .Nil}}x{{else}}nil{{end}} {{.Nil}}").render(row) == "nil <nil>"


def test_lazy_fields_are_only_computed_when_used() -> None:
    calls: list[str] = []
    row = {"ID": "x", "Size": lambda: calls.append("size") or "1B"}
    assert Template("{{.ID}}").render(row) == "x"
    assert calls == []
    assert Template("{{.Size}}").render(row) == "1B"
    assert calls == ["size"]


def test_map_mode_treats_the_row_as_a_map() -> None:
    assert Template("{{.Missing}}", mode="map").render({}) == "<no value>"
    data = {"Config": {"Env": ["A=1"], "Cmd": None}, "Size": 1e6}
    assert Template("{{.Config.Env}} {{.Size}}", mode="map").render(data) == "[A=1] 1e+06"
    assert Template("{{json .}}", mode="map").render({"b": "<", "a": 1}) == '{"b":"<","a":1}'


def test_inspect_mode_is_docker_inspect() -> None:
    doc = {"Id": "sha256:4c11", "Config": {"Labels": {"k": "v"}}, "RootFS": {"Type": "layers"}}
    assert render("{{json .RootFS}}", [doc], mode="inspect") == '{"Type":"layers"}\n'
    assert render("table {{.Id}}", [doc], mode="inspect") == "table sha256:4c11\n"
    assert render('{{.Config.Labels.x}}|{{index .Config.Labels "k"}}', [doc], mode="inspect") == (
        "<no value>|v\n"
    )
    with pytest.raises(InvalidArgument) as err:
        render("{{.Foo}}", [doc], mode="inspect")
    assert str(err.value) == (
        'template parsing error: template: :1:2: executing "" at <.Foo>: '
        'map has no entry for key "Foo"'
    )


def test_headers_for_fields_without_one() -> None:
    rows = [{"CreatedBy": "sh", "RepoTags": "x", "ID": "1", "CreatedSince": "now"}]
    assert render("table {{.CreatedBy}}\t{{.RepoTags}}\t{{.ID}}\t{{.CreatedSince}}", rows) == (
        "CREATED BY   REPO TAGS   ID        CREATED\nsh           x           1         now\n"
    )
    assert render("table {{.ID}}", rows, HISTORY_HEADERS) == "IMAGE\n1\n"
    assert render("table {{.ID}}", rows, IMAGE_HEADERS) == "IMAGE ID\n1\n"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "{{.Foo}}",
            'template: :1:2: executing "" at <.Foo>: can\'t evaluate field Foo in type image',
        ),
        (
            "{{.Tag.X}}",
            'template: :1:6: executing "" at <.Tag.X>: can\'t evaluate field X in type string',
        ),
        ("{{foo}}", 'template: :1: function "foo" not defined'),
        ("{{.Tag", "template: :1: unclosed action"),
        ("{{.Tag}", "template: :1: bad character U+007D '}'"),
        ("{{ .Tag }}{{{.Tag}}", 'template: :1: unexpected "{" in command'),
        ("{{if .Tag}}", "template: :1: unexpected EOF"),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{$x}}", 'template: :1: undefined variable "$x"'),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
        (
            "{{range .Tag}}x{{end}}",
            'template: :1:8: executing "" at <.Tag>: range can\'t iterate over latest',
        ),
        ("{{nil}}", 'template: :1:2: executing "" at <nil>: nil is not a command'),
        (
            '{{"x" 1}}',
            'template: :1:2: executing "" at <"x">: can\'t give argument to non-function "x"',
        ),
        (
            '{{.Tag "x"}}',
            'template: :1:2: executing "" at <.Tag>: wrong number of args for Tag: want 0 got 1',
        ),
        (
            "{{.Tag | .Repository}}",
            'template: :1:9: executing "" at <.Repository>: wrong number '
            "of args for Repository: want 0 got 1",
        ),
        (
            "{{json .Tag .Tag}}",
            'template: :1:2: executing "" at <json>: wrong number of args for json: want 1 got 2',
        ),
        (
            "{{eq .Tag}}",
            'template: :1:2: executing "" at <eq .Tag>: error calling eq: missing '
            "argument for comparison",
        ),
        (
            '{{index .Tag "x"}}',
            'template: :1:2: executing "" at <index .Tag "x">: error calling '
            "index: cannot index slice/array with type string",
        ),
        (
            "{{ge 3 1.5}}",
            'template: :1:2: executing "" at <ge 3 1.5>: error calling ge: '
            "incompatible types for comparison",
        ),
        ("{{..Tag}}", 'template: :1: unexpected . after term "."'),
        ("{{.Tag.}}", "template: :1: unexpected <.> in operand"),
        ("{{|.Tag}}", 'template: :1: unexpected "|" in command'),
        ("{{.Tag)}}", "template: :1: unexpected right paren"),
        ("{{range $a, $b, $c := .Tag}}{{end}}", "template: :1: too many declarations in range"),
        ("{{if .Tag}}x{{else}}y{{else}}z{{end}}", "template: :1: expected end; found {{else}}"),
        (
            "a\\n\\n{{.Nope}}",
            'template: :3:2: executing "" at <.Nope>: can\'t evaluate field Nope in type image',
        ),
    ],
)
def test_errors_are_dockers(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        Formatter(spec, HEADERS, type_name="image").render(ROWS)
    assert str(err.value) == "template parsing error: " + message


def test_go_string_of_json_values() -> None:
    assert go_string([1, "a", True, None, 2.5, {"k": [1]}]) == "[1 a true <nil> 2.5 map[k:[1]]]"
    assert go_string(100000.0) == "100000"
    assert go_string(-0.0001) == "-0.0001"
    assert go_string(float("inf")) == "+Inf"


def test_many_rows_render_in_one_compiled_pass() -> None:
    rows = [image_row(f"repo{i}", str(i)) for i in range(200)]
    out = images("table", rows)
    lines = out.splitlines()
    assert len(lines) == 201
    assert lines[200].startswith("repo199      199       4c11173610f8   9 minutes ago   1.98MB")


def imported_by(module: str) -> set[str]:
    """The modules a fresh interpreter imports for ``import module`` (-X importtime)."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import {module}"
    proc = subprocess.run([sys.executable, "-IS", "-X", "importtime", "-c", code],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if "|" in line}


def test_module_imports_nothing_slow() -> None:
    names = imported_by("sampan.cli.format")
    assert {"sampan.cli.format", "sampan.cli.gotemplate", "sampan.cli.gotemplate_funcs",
            "sampan.cli.gotemplate_lex"} <= names  # fmt: skip
    assert not names & {"re", "json", "typing", "enum"}


def test_gotemplate_stands_alone() -> None:
    # the template engine knows nothing of docker's tables; format.py builds on it
    names = imported_by("sampan.cli.gotemplate")
    assert "sampan.cli.format" not in names
    assert not names & {"re", "json", "typing", "enum"}


def test_template_header_names_fields_without_a_header() -> None:
    template = Template('{{.ID}}|{{.CreatedBy}}|{{upper .Tag}}|{{printf "%5s" .ID}}')
    assert template.render_header({"ID": "IMAGE"}) == "IMAGE|CREATEDBY|TAG|IMAGE"
    assert template.render_header({}, lambda field: f"<{field}>") == "<ID>|<CreatedBy>|<Tag>| <ID>"
