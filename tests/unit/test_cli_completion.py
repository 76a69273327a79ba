"""`sampan completion`: the scripts, and bash completing lines through the real function.

Bash sources the generated script and calls ``_sampan`` with COMP_WORDS and
COMP_CWORD set, as readline does on TAB.  The names a line completes come
from ``sampan ps``/``sampan images`` at that moment: here a stand-in
``sampan`` on PATH that answers them and records its arguments.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sampan.cli import completion

REPO = Path(__file__).resolve().parents[2]
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _script(shell: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "sampan.cli", "completion", shell],
        capture_output=True, text=True, cwd=REPO, check=True,
    )  # fmt: skip
    return done.stdout


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "sampan.bash"
    path.write_text(_script("bash"))
    return path


def complete(script: Path, line: str, tmp_path: Path) -> list[str]:
    """What bash offers for LINE (the cursor at its end) with the stand-in sampan."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "sampan"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path}/calls\n'
        'for a in "$@"; do\n'
        '  case "$a" in\n'
        "    ps) printf 'web\\nworker-1\\ndb\\n'; exit 0 ;;\n"
        "    images) printf 'busybox:latest\\nrunner:v2\\n<none>:<none>\\n'; exit 0 ;;\n"
        "  esac\n"
        "done\n"
    )
    fake.chmod(0o755)
    words = line.split(" ")
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_sampan\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True, text=True, env={"PATH": f"{bindir}:/usr/bin:/bin"},
        cwd=tmp_path, check=True,
    )  # fmt: skip
    return [w for w in done.stdout.splitlines() if w]


@needs_bash
def test_commands_and_container_names(bash_script: Path, tmp_path: Path) -> None:
    assert complete(bash_script, "sampan ru", tmp_path) == ["run"]
    assert sorted(complete(bash_script, "sampan ima", tmp_path)) == ["image", "images"]
    assert sorted(complete(bash_script, "sampan stop ", tmp_path)) == ["db", "web", "worker-1"]
    assert complete(bash_script, "sampan rm -f w", tmp_path) == ["web", "worker-1"]
    assert complete(bash_script, "sampan container logs wo", tmp_path) == ["worker-1"]


@needs_bash
def test_images_flags_and_groups(bash_script: Path, tmp_path: Path) -> None:
    assert complete(bash_script, "sampan run ", tmp_path) == ["busybox:latest", "runner:v2"]
    assert complete(bash_script, "sampan run -d --name x bu", tmp_path) == ["busybox:latest"]
    assert complete(bash_script, "sampan run busybox ", tmp_path) == []  # the command: not ours
    assert complete(bash_script, "sampan rmi --no", tmp_path) == ["--no-prune"]
    assert "--digests" in complete(bash_script, "sampan images --", tmp_path)
    assert complete(bash_script, "sampan image pr", tmp_path) == ["prune"]
    assert complete(bash_script, "sampan image rm r", tmp_path) == ["runner:v2"]
    assert {"df", "info"} <= set(complete(bash_script, "sampan system ", tmp_path))
    assert "--host" in complete(bash_script, "sampan --h", tmp_path)


@needs_bash
def test_names_come_from_the_lines_daemon(bash_script: Path, tmp_path: Path) -> None:
    line = "sampan -H unix:///tmp/other.sock --root /tmp/r kill "
    assert sorted(complete(bash_script, line, tmp_path)) == ["db", "web", "worker-1"]
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == ["-H unix:///tmp/other.sock --root /tmp/r ps -a --format {{.Names}}"]


def test_every_command_has_its_flags_from_its_parser() -> None:
    infos = {info.name: info for info in completion.commands()}
    names = lambda c: {n for f in infos[c].flags for n in f.names}  # noqa: E731
    assert {"--force", "-f", "--no-prune"} <= names("rmi")
    assert {"--all", "-a", "--quiet", "-q", "--digests", "--format"} <= names("images")
    assert names("image rm") == names("rmi")
    assert {"--detach", "--name", "--env"} <= names("run")
    assert infos["stop"].args == "c" and infos["rmi"].args == "i"
    assert infos["inspect"].args == "ci" and infos["load"].args == ""
    missing = [name for name, info in infos.items() if not info.flags]  # --help at least
    assert missing == [], f"no flags recorded for {missing}"


def test_zsh_and_fish_scripts() -> None:
    zsh = _script("zsh")
    assert zsh.startswith("#compdef sampan") and "bashcompinit" in zsh
    assert "complete -F _sampan sampan" in zsh
    fish = _script("fish")
    assert "complete -c sampan -n 'not __fish_seen_subcommand_from" in fish
    assert "-a run -d 'Create and run a new container from an image'" in fish
    assert (
        "complete -c sampan -n '__fish_seen_subcommand_from rmi' -l force -s f "
        "-d 'force removal of the image'"
    ) in fish
    assert "__fish_seen_subcommand_from stop' -a '(sampan ps -a --format" in fish
    done = subprocess.run(
        [sys.executable, "-m", "sampan.cli", "completion", "tcsh"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 1 and "bash, zsh or fish" in done.stderr


def test_recording_flags_leaves_every_parser_as_it_was() -> None:
    """Recording swaps ``parse`` in every loaded CLI module, sampan.cli.args included."""
    import importlib

    from sampan.cli import args

    original = args.parse
    assert completion.commands()
    modules = [m for n, m in sys.modules.items() if n.startswith("sampan.cli.")]
    assert args.parse is original
    assert all(getattr(m, "parse", original) is original for m in modules)
    opts, rest = importlib.import_module("sampan.cli.args").parse(
        [args.Flag("--all,-a", "bool")], ["-a", "x"]
    )
    assert opts["all"] is True and rest == ["x"]
