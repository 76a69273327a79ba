"""``sampan COMMAND --help``: usage, description and the options the command parses."""

from __future__ import annotations

import pytest

from sampan.cli import args, help
from sampan.cli.main import main


def test_help_lists_the_options_each_command_parses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ps", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage:  sampan ps [OPTIONS]\n\nList containers\n\nOptions:\n")
    assert "--all, -a" in out and "--format value" in out and "--help" not in out
    assert main(["restart", "--help"]) == 0  # a handler that parses through another module
    out = capsys.readouterr().out
    assert "Restart one or more containers" in out and "--time, -t value" in out
    assert main(["volume", "create", "--help"]) == 0
    assert "--driver, -d value" in capsys.readouterr().out
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--memory, -m value" in out
    assert "--publish, -p value" in out
    assert "--pull" not in out  # refused by name, so not offered


def test_help_after_the_first_argument_belongs_to_the_command() -> None:
    assert help.wants_help(["-it", "--help"])
    assert not help.wants_help(["web", "ls", "--help"])
    assert not help.wants_help(["--", "--help"])


def test_recording_leaves_every_parser_as_it_was() -> None:
    import sys

    original = args.parse
    main(["rename", "--help"])
    assert all(
        getattr(m, "parse", original) is original
        for n, m in list(sys.modules.items())
        if n.startswith("sampan.cli.")
    )
