"""cli.args: runc's flag conventions without argparse."""

from __future__ import annotations

import pytest

from sampan.cli.args import Flag, parse, usage
from sampan.errors import InvalidArgument


def flags() -> list[Flag]:
    return [
        Flag("--detach,-d", "bool", "detach"),
        Flag("--bundle,-b", "str", "bundle path"),
        Flag("--preserve-fds", "int", "extra fds", 0),
        Flag("--env,-e", "list", "environment"),
        Flag("--format,-f", "str", "format", "table"),
    ]


def test_defaults() -> None:
    values, rest = parse(flags(), [])
    assert values == {
        "detach": False,
        "bundle": None,
        "preserve_fds": 0,
        "env": [],
        "format": "table",
    }
    assert rest == []


def test_dest_drops_dashes() -> None:
    flag = Flag("--no-new-keyring")
    assert flag.dest == "no_new_keyring"
    assert flag.names == ["--no-new-keyring"]
    assert flag.default is False


def test_bool_flag() -> None:
    assert parse(flags(), ["--detach"])[0]["detach"] is True
    assert parse(flags(), ["-d"])[0]["detach"] is True


def test_bool_flag_with_explicit_value() -> None:
    assert parse(flags(), ["--detach=true"])[0]["detach"] is True
    assert parse(flags(), ["--detach=false"])[0]["detach"] is False


def test_bool_flag_with_bad_value() -> None:
    with pytest.raises(InvalidArgument, match="invalid boolean value 'yes' for --detach"):
        parse(flags(), ["--detach=yes"])


def test_bool_flag_does_not_take_the_next_argument() -> None:
    values, rest = parse(flags(), ["-d", "true"])
    assert values["detach"] is True
    assert rest == ["true"]


def test_str_flag_forms() -> None:
    assert parse(flags(), ["--bundle", "/b"])[0]["bundle"] == "/b"
    assert parse(flags(), ["--bundle=/b"])[0]["bundle"] == "/b"
    assert parse(flags(), ["-b", "/b"])[0]["bundle"] == "/b"
    assert parse(flags(), ["-b=/b"])[0]["bundle"] == "/b"


def test_value_may_contain_equals_and_start_with_a_dash() -> None:
    assert parse(flags(), ["--bundle=a=b"])[0]["bundle"] == "a=b"
    assert parse(flags(), ["--bundle", "-x"])[0]["bundle"] == "-x"
    assert parse(flags(), ["--bundle="])[0]["bundle"] == ""


def test_last_value_wins() -> None:
    assert parse(flags(), ["-b", "one", "--bundle", "two"])[0]["bundle"] == "two"


def test_int_flag() -> None:
    assert parse(flags(), ["--preserve-fds", "3"])[0]["preserve_fds"] == 3
    assert parse(flags(), ["--preserve-fds=-1"])[0]["preserve_fds"] == -1


def test_bad_int() -> None:
    with pytest.raises(
        InvalidArgument, match="invalid value 'three' for --preserve-fds: not an integer"
    ):
        parse(flags(), ["--preserve-fds", "three"])


def test_list_flag_accumulates() -> None:
    values, _ = parse(flags(), ["-e", "A=1", "--env", "B=2", "--env=C=3"])
    assert values["env"] == ["A=1", "B=2", "C=3"]


def test_list_default_is_not_shared() -> None:
    fl = flags()
    first, _ = parse(fl, ["-e", "A=1"])
    second, _ = parse(fl, [])
    assert first["env"] == ["A=1"]
    assert second["env"] == []
    assert fl[3].default == []


def test_stops_at_first_positional() -> None:
    values, rest = parse(flags(), ["-d", "ID", "sh", "-c", "--bundle", "x"])
    assert values["detach"] is True
    assert values["bundle"] is None
    assert rest == ["ID", "sh", "-c", "--bundle", "x"]


def test_without_stopping_flags_may_follow_positionals() -> None:
    values, rest = parse(flags(), ["ID", "-d", "more"], stop_at_positional=False)
    assert values["detach"] is True
    assert rest == ["ID", "more"]


def test_double_dash_ends_flags() -> None:
    values, rest = parse(flags(), ["-d", "--", "-b", "x"])
    assert values["detach"] is True
    assert values["bundle"] is None
    assert rest == ["-b", "x"]


def test_double_dash_not_kept_and_later_double_dash_is() -> None:
    _, rest = parse(flags(), ["--", "--", "a"])
    assert rest == ["--", "a"]


def test_single_dash_is_positional() -> None:
    _, rest = parse(flags(), ["-", "-d"])
    assert rest == ["-", "-d"]


def test_unknown_flag() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse(flags(), ["--x"])
    assert str(info.value) == "flag provided but not defined: --x"


def test_unknown_flag_with_value_names_only_the_flag() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse(flags(), ["--x=1"])
    assert str(info.value) == "flag provided but not defined: --x"


def test_unknown_short_flag() -> None:
    with pytest.raises(InvalidArgument, match=r"^flag provided but not defined: -z$"):
        parse(flags(), ["-z"])


@pytest.mark.parametrize("argv", [["--bundle"], ["-b"], ["--preserve-fds"], ["-d", "--env"]])
def test_missing_argument(argv: list[str]) -> None:
    with pytest.raises(InvalidArgument, match=f"^flag needs an argument: {argv[-1]}$"):
        parse(flags(), argv)


def test_usage_lists_every_flag() -> None:
    text = usage(flags())
    lines = text.splitlines()
    assert len(lines) == 5
    assert lines[0].split() == ["--detach,", "-d", "detach"]
    assert lines[1].split() == ["--bundle,", "-b", "value", "bundle", "path"]


def test_groups_of_short_boolean_flags() -> None:
    flags = [Flag("--all,-a", "bool"), Flag("--quiet,-q", "bool"), Flag("--filter,-f", "list")]
    opts, args = parse(flags, ["-aq", "x"], stop_at_positional=False)
    assert opts["all"] and opts["quiet"] and args == ["x"]
    with pytest.raises(InvalidArgument, match="-af"):
        parse(flags, ["-af"])  # -f takes a value: not a group of booleans
