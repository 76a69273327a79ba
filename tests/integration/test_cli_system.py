"""`sampan info`, `version`, `system df` and bash completion against a real daemon.

The daemon has busybox bootstrapped and this module's own containers; the
counts asserted are of those containers (the daemon is private to the module).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_fixtures import SampanDaemon, bootstrapped

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
REPO = Path(__file__).resolve().parents[2]


def sampan(
    daemon: SampanDaemon, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "sampan.cli", "-H", daemon.host, *args]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"{args}: exit {done.returncode}\n{done.stderr}")
    return done


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampanDaemon]:
    running = bootstrapped(tmp_path_factory.mktemp("system"))
    yield running
    ids = sampan(running, "ps", "-aq", check=False).stdout.split()
    if ids:
        sampan(running, "rm", "-f", *ids, check=False)
    running.stop()


def test_info_counts_containers_and_prints_docker_layout(daemon: SampanDaemon) -> None:
    sampan(daemon, "run", "-d", "--name", "sys-up", "busybox", "sleep", "60")
    sampan(daemon, "run", "--name", "sys-done", "busybox", "true")
    sampan(daemon, "create", "--name", "sys-new", "busybox", "true")
    out = sampan(daemon, "info").stdout
    client, server = out.split("\nServer:\n")
    assert client.startswith("Client:\n Version:    0.1.0\n Context:    default\n")
    lines = server.splitlines()
    assert lines[:5] == [" Containers: 3", "  Running: 1", "  Paused: 0", "  Stopped: 2",
                         " Images: 1"]  # fmt: skip
    for head in ("Server Version: 0.1.0", "Storage Driver: ", "Logging Driver: json-file",
                 "Cgroup Driver: cgroupfs", "Cgroup Version: ", "Kernel Version: ",
                 "Operating System: ", f"CPUs: {os.cpu_count()}", "Total Memory: ",
                 f"Docker Root Dir: {daemon.root}", "Debug Mode: true",
                 "Insecure Registries:"):  # fmt: skip
        assert any(line.startswith(" " + head) for line in lines), head
    assert f" Kernel Version: {os.uname().release}" in lines
    assert " Total Memory: " in server and "GiB" in server
    # docker's own client reads the same numbers from the same daemon
    theirs = daemon.docker("info", "--format", "{{.ContainersRunning}} {{.ContainersStopped}}")
    assert theirs.stdout.split() == ["1", "2"]
    fmt = "{{.Containers}} {{.NCPU}} {{json .DockerRootDir}}"
    assert sampan(daemon, "info", "-f", fmt).stdout == f'3 {os.cpu_count()} "{daemon.root}"\n'
    assert sampan(daemon, "system", "info", "--format", "{{.Images}}").stdout == "1\n"
    df = sampan(daemon, "system", "df").stdout.splitlines()
    assert df[1].split()[:3] == ["Images", "1", "1"]  # three containers use it
    assert df[2].split()[:3] == ["Containers", "3", "1"]
    sampan(daemon, "rm", "-f", "sys-up", "sys-done", "sys-new")


def test_version_client_and_server(daemon: SampanDaemon, tmp_path: Path) -> None:
    out = sampan(daemon, "version").stdout
    client, server = out.split("\n\n")
    assert client.splitlines()[:3] == ["Client:", " Version:           0.1.0",
                                       " API version:       1.41"]  # fmt: skip
    api = "  API version:      1.41 (minimum version 1.24)"
    assert server.splitlines()[:4] == ["Server: sampan 0.1.0", " Engine:",
                                       "  Version:          0.1.0", api]  # fmt: skip
    fmt = "{{.Client.Version}} {{.Server.ApiVersion}} {{json .Server.Os}}"
    assert sampan(daemon, "version", "-f", fmt).stdout == '0.1.0 1.41 "linux"\n'
    doc = json.loads(sampan(daemon, "version", "--format", "{{json .}}").stdout)
    assert doc["Client"]["ApiVersion"] == "1.41" and doc["Server"]["Version"] == "0.1.0"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_and_the_daemons_container_names(
    daemon: SampanDaemon, tmp_path: Path
) -> None:
    sampan(daemon, "run", "-d", "--name", "comp-web", "busybox", "sleep", "60")
    sampan(daemon, "create", "--name", "comp-worker", "busybox", "true")
    script = tmp_path / "sampan.bash"
    script.write_text(sampan(daemon, "completion", "bash").stdout)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    launcher = bindir / "sampan"  # `sampan` on PATH, as installed
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} -m sampan.cli "$@"\n')
    launcher.chmod(0o755)

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        program = (f"source {script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\n"
                   f"COMP_CWORD={len(words) - 1}\n_sampan\n"
                   'printf "%s\\n" "${COMPREPLY[@]}"\n')  # fmt: skip
        env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", PYTHONPATH=str(REPO))
        done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program],
                              capture_output=True, text=True, env=env, check=True)  # fmt: skip
        return sorted(w for w in done.stdout.splitlines() if w)

    host = daemon.host
    assert complete(f"sampan -H {host} ru") == ["run"]
    assert complete(f"sampan -H {host} stop comp-") == ["comp-web", "comp-worker"]
    assert complete(f"sampan -H {host} container rm comp-w") == ["comp-web", "comp-worker"]
    assert complete(f"sampan -H {host} run busy") == ["busybox:latest"]
    sampan(daemon, "rm", "-f", "comp-web", "comp-worker")
