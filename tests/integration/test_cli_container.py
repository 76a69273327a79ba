"""The `sampan` container commands as clients of `sampan daemon` (-H a private socket).

A module-wide daemon runs on a private root where busybox was bootstrapped
before it started; every command is the real CLI in a subprocess, so exit
codes and the two output streams are what a user sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_fixtures import REPO, SampanDaemon, bootstrapped, wait_until


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampanDaemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    running = bootstrapped(tmp_path_factory.mktemp("cli-containers"))
    yield running
    left = sampan(running, "ps", "-aq", "--no-trunc").stdout.split()
    if left:
        sampan(running, "rm", "-f", *left)
    running.stop()


def sampan(
    daemon: SampanDaemon, *args: str, host: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`sampan --root ROOT -H HOST ARGS...` as a user runs it."""
    argv = [sys.executable, "-m", "sampan.cli", "--root", str(daemon.root)]
    argv += ["-H", host or daemon.host, *args]
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=REPO, timeout=120, env=env,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def ok(daemon: SampanDaemon, *args: str) -> str:
    done = sampan(daemon, *args)
    assert done.returncode == 0, f"sampan {' '.join(args)}: {done.returncode}\n{done.stderr}"
    return done.stdout


def test_run_rm_prints_and_leaves_nothing(daemon: SampanDaemon) -> None:
    done = sampan(daemon, "run", "--rm", "busybox", "echo", "hello from a sampan container")
    assert (done.returncode, done.stdout, done.stderr) == (0, "hello from a sampan container\n", "")
    assert ok(daemon, "ps", "-aq") == ""


def test_run_streams_and_exit_code(daemon: SampanDaemon) -> None:
    done = sampan(daemon, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_run_flags_reach_the_container(daemon: SampanDaemon, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nFROM_FILE=f\n\nFROM_HOST\n")
    env = dict(os.environ, FROM_HOST="h")
    script = 'echo "$A $FROM_FILE $FROM_HOST $(pwd) $(id -u) $(hostname)"; touch /x 2>&1 || :'
    done = sampan(
        daemon, "run", "--rm", "-e", "A=1", "--env-file", str(env_file), "-w", "/tmp",
        "-u", "1000", "--hostname", "box", "--read-only", "--network", "none",
        "--entrypoint", "sh", "busybox", "-c", script, env=env,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert lines[0] == "1 f h /tmp 1000 box"
    assert "Read-only file system" in lines[1]


def test_command_not_found_127_cannot_invoke_126(daemon: SampanDaemon) -> None:
    done = sampan(daemon, "run", "--rm", "busybox", "no-such-command")
    assert done.returncode == 127
    assert "executable file not found" in done.stderr
    done = sampan(daemon, "run", "--rm", "busybox", "/etc")
    assert done.returncode == 126
    assert ok(daemon, "ps", "-aq") == ""


def test_daemon_refusals_are_125(daemon: SampanDaemon) -> None:
    ok(daemon, "create", "--name", "taken", "busybox", "true")
    done = sampan(daemon, "run", "--name", "taken", "busybox", "true")
    assert done.returncode == 125
    assert 'The container name "/taken" is already in use' in done.stderr
    ok(daemon, "rm", "taken")
    done = sampan(daemon, "run", "--rm", "--no-such-flag", "busybox", "true")
    assert done.returncode == 125
    assert "flag provided but not defined: --no-such-flag" in done.stderr
    done = sampan(daemon, "run", "--rm", "-it", "busybox", "true")  # stdin is no terminal
    assert done.returncode == 1 and "the input device is not a TTY" in done.stderr
    # A daemon run with --bridge none: publishing needs a network, "bridge" is none
    done = sampan(daemon, "run", "--rm", "-p", "80", "busybox", "true")
    assert done.returncode == 125 and "--bridge none" in done.stderr
    done = sampan(daemon, "run", "--rm", "--network", "bridge", "busybox", "true")
    assert done.returncode == 125 and "network bridge not found" in done.stderr
    # A missing image: docker's line, then the pull (a registry nobody listens on) fails.
    done = sampan(daemon, "run", "--rm", "127.0.0.1:1/nosuch:1", "true")
    assert done.returncode == 125
    assert "Unable to find image '127.0.0.1:1/nosuch:1' locally" in done.stderr
    assert "127.0.0.1:1" in done.stderr.splitlines()[-1]
    assert ok(daemon, "ps", "-aq") == ""


def test_detached_ps_logs_stop_wait_rm(daemon: SampanDaemon) -> None:
    cid = ok(
        daemon, "run", "-d", "--name", "web", "-e", "GREETING=hi", "-l", "tier=web", "busybox",
        "sh", "-c", 'echo "$GREETING from $HOSTNAME"; echo to-stderr >&2; exec sleep 300',
    ).strip()  # fmt: skip
    assert len(cid) == 64 and all(c in "0123456789abcdef" for c in cid)
    table = ok(daemon, "ps").splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                "PORTS", "NAMES"]  # fmt: skip
    assert len(table) == 2 and table[1].startswith(cid[:12] + '   busybox   "sh -c echo')
    assert " Up " in table[1] and table[1].endswith("web")
    assert ok(daemon, "ps", "-q") == cid[:12] + "\n"
    assert ok(daemon, "ps", "-q", "--no-trunc") == cid + "\n"
    shown = ok(daemon, "ps", "--filter", "label=tier=web", "--format", "{{.Names}} {{.State}}")
    assert shown == "web running\n"
    assert ok(daemon, "ps", "--filter", "name=nomatch", "-q") == ""
    row = json.loads(ok(daemon, "ps", "--format", "json"))
    assert (row["ID"], row["Labels"], row["Image"]) == (cid[:12], "tier=web", "busybox")

    def logged() -> bool:
        done = sampan(daemon, "logs", "web")
        return (done.stdout, done.stderr) == (f"hi from {cid[:12]}\n", "to-stderr\n")

    wait_until("the log lines", logged)
    stamped = sampan(daemon, "logs", "-t", "--tail", "1", "web")
    assert stamped.stdout == "" and stamped.stderr.endswith("Z to-stderr\n")
    doc = json.loads(ok(daemon, "container", "inspect", "web"))[0]
    assert doc["Id"] == cid and doc["State"]["Running"] is True
    assert json.loads(ok(daemon, "inspect", "web"))[0]["Name"] == "/web"
    refused = sampan(daemon, "rm", "web")
    assert refused.returncode == 1 and "container is running" in refused.stderr
    started = time.monotonic()
    assert ok(daemon, "stop", "-t", "1", "web") == "web\n"
    assert time.monotonic() - started < 10
    assert ok(daemon, "ps", "-q") == ""
    assert "Exited (137)" in ok(daemon, "ps", "-a", "--filter", "name=web")
    assert ok(daemon, "wait", "web") == "137\n"
    assert ok(daemon, "inspect", "-f", "{{.State.ExitCode}}", "web") == "137\n"
    assert ok(daemon, "rm", "web") == "web\n"
    assert ok(daemon, "ps", "-aq") == ""
    assert not (daemon.root / "containers" / cid).exists()


def test_create_start_attach_kill(daemon: SampanDaemon) -> None:
    cid = ok(daemon, "create", "--name", "later", "busybox", "sh", "-c", "echo ran; exit 4")
    assert "Created" in ok(daemon, "ps", "-a", "--filter", "name=later")
    done = sampan(daemon, "start", "-a", "later")
    assert (done.returncode, done.stdout) == (4, "ran\n")
    assert ok(daemon, "rm", cid.strip()) == cid
    script = 'trap "exit 5" TERM; echo ready; while :; do sleep 0.1; done'
    ok(daemon, "run", "-d", "--name", "trapper", "busybox", "sh", "-c", script)
    wait_until("the trap", lambda: ok(daemon, "logs", "trapper") == "ready\n")
    assert ok(daemon, "kill", "-s", "TERM", "trapper") == "trapper\n"
    assert ok(daemon, "wait", "trapper") == "5\n"
    ok(daemon, "start", "trapper")
    assert ok(daemon, "kill", "trapper") == "trapper\n"  # SIGKILL
    assert ok(daemon, "wait", "trapper") == "137\n"
    assert ok(daemon, "container", "rm", "trapper") == "trapper\n"


def test_unknown_container(daemon: SampanDaemon) -> None:
    for args in (("logs", "nosuch"), ("stop", "nosuch"), ("rm", "nosuch"), ("wait", "nosuch"),
                 ("container", "inspect", "nosuch")):  # fmt: skip
        done = sampan(daemon, *args)
        assert done.returncode == 1
        assert "Error response from daemon: No such container: nosuch" in done.stderr
    done = sampan(daemon, "inspect", "nosuch")
    assert done.returncode == 1 and "Error: No such object: nosuch" in done.stderr


def test_inspect_falls_back_to_images(daemon: SampanDaemon, tmp_path: Path) -> None:
    doc = json.loads(ok(daemon, "inspect", "busybox"))[0]
    assert doc["Id"].startswith("sha256:") and "busybox:latest" in doc["RepoTags"]
    assert ok(daemon, "inspect", "--type", "image", "-f", "{{.Id}}", "busybox") == doc["Id"] + "\n"
    nobody = f"unix://{tmp_path}/nobody.sock"  # images too are the daemon's
    done = sampan(daemon, "inspect", "--format", "{{.Id}}", "busybox", host=nobody)
    assert done.returncode == 1 and "Is the sampan daemon running?" in done.stderr


def test_no_daemon_listening(daemon: SampanDaemon, tmp_path: Path) -> None:
    nobody = f"unix://{tmp_path}/nobody.sock"
    message = f"Cannot connect to the sampan daemon at {nobody}. Is the sampan daemon running?"
    done = sampan(daemon, "ps", host=nobody)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", message + "\n")
    done = sampan(daemon, "run", "--rm", "busybox", "true", host=nobody)
    assert done.returncode == 125 and message in done.stderr
    # $SAMPAN_HOST when there is no -H
    argv = [sys.executable, "-m", "sampan.cli", "ps"]
    env = dict(os.environ, SAMPAN_HOST=nobody)
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert (done.returncode, done.stderr) == (1, message + "\n")
