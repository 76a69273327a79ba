"""`sampan pull/push/login` as a user types them: clients of a private daemon, against a
real registry on loopback."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration import registry_fixtures as rf
from tests.integration.daemon_fixtures import SampanDaemon, daemon
from tests.integration.registry_fixtures import Seeded, needs_registry, skopeo_inspect

pytestmark = [needs_registry, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]
registry, auth_registry = rf.registry, rf.auth_registry
__all__ = ["auth_registry", "daemon", "registry"]
REPO = Path(__file__).resolve().parents[2]


def sampan(
    daemon: SampanDaemon, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "sampan.cli", "-H", daemon.host, *args]
    return subprocess.run(argv, capture_output=True, text=True, input=stdin, cwd=REPO, timeout=300)


def test_pull_then_push_under_a_new_name(daemon: SampanDaemon, registry: Seeded) -> None:
    done = sampan(daemon, "pull", f"{registry.host}/library/busybox")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Using default tag: latest"
    assert lines[1] == "latest: Pulling from library/busybox"
    assert any(line.endswith(": Pull complete") for line in lines)
    assert not any("[=" in line for line in lines)  # no bars off a terminal
    assert f"Status: Downloaded newer image for {registry.host}/library/busybox:latest" in lines
    assert lines[-1] == f"{registry.host}/library/busybox:latest"
    again = sampan(daemon, "pull", "-q", f"{registry.host}/library/busybox:latest")
    assert again.stdout == f"{registry.host}/library/busybox:latest\n"
    target = f"{registry.host}/cli/pushed:v1"
    assert sampan(daemon, "tag", f"{registry.host}/library/busybox", target).returncode == 0
    pushed = sampan(daemon, "push", target)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.startswith(f"The push refers to repository [{registry.host}/cli/pushed]")
    digest = pushed.stdout.strip().splitlines()[-1].split()[2]
    assert skopeo_inspect(f"docker://{target}")["Digest"] == digest
    shown = sampan(daemon, "images", "--digests", "--format", "{{.Repository}} {{.Digest}}")
    assert f"{registry.host}/cli/pushed {digest}" in shown.stdout.splitlines()
    by_digest = sampan(daemon, "pull", f"{registry.host}/cli/pushed@{digest}")
    assert by_digest.returncode == 0, by_digest.stderr
    assert by_digest.stdout.splitlines()[-1] == f"{registry.host}/cli/pushed@{digest}"


def test_pull_errors_are_one_clear_line(daemon: SampanDaemon, registry: Seeded) -> None:
    done = sampan(daemon, "pull", f"{registry.host}/library/nothing-here:1")
    assert done.returncode == 1
    assert done.stderr.startswith("Error response from daemon: ") and "not found" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert sampan(daemon, "images", "-q", f"{registry.host}/library/nothing-here").stdout == ""
    done = sampan(daemon, "pull", "Bad Name")
    assert done.returncode == 1 and "invalid reference format" in done.stderr
    done = sampan(daemon, "push", f"{registry.host}/never/tagged:v1")
    assert done.returncode == 1
    assert "An image does not exist locally with the tag" in done.stderr


def test_login_push_and_logout(
    daemon: SampanDaemon, auth_registry: rf.RegistryServer, registry: Seeded, tmp_path: Path
) -> None:
    config = tmp_path / "docker"
    host = auth_registry.host
    base = ("--config", str(config))
    wrong = sampan(daemon, *base, "login", "-u", "alice", "--password-stdin", host, stdin="nope\n")
    assert wrong.returncode == 1 and not (config / "config.json").exists()
    assert wrong.stderr.startswith("Error response from daemon: ")
    user, password = rf.USER, rf.PASSWORD
    good = sampan(daemon, *base, "login", "-u", user, "--password-stdin", host, stdin=password)
    assert good.returncode == 0 and good.stdout.strip().endswith("Login Succeeded")
    auths = json.loads((config / "config.json").read_text())["auths"]
    assert base64.b64decode(auths[host]["auth"]).decode() == f"{user}:{password}"
    # push and pull send the stored credentials (X-Registry-Auth); without them, refused
    source = f"{registry.host}/library/busybox:latest"
    assert sampan(daemon, "pull", "-q", source).returncode == 0
    target = f"{host}/cli/private:v1"
    assert sampan(daemon, "tag", source, target).returncode == 0
    anonymous = sampan(daemon, "--config", str(tmp_path / "empty"), "push", target)
    assert anonymous.returncode == 1, anonymous.stdout
    pushed = sampan(daemon, *base, "push", "-q", target)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout == f"{target}\n"
    assert sampan(daemon, "rmi", target).returncode == 0
    pulled = sampan(daemon, *base, "pull", "-q", target)
    assert pulled.returncode == 0, pulled.stderr
    out = sampan(daemon, *base, "logout", host)
    assert out.stdout == f"Removing login credentials for {host}\n"
    assert host not in json.loads((config / "config.json").read_text()).get("auths", {})
    refused = sampan(daemon, *base, "pull", "-q", target)
    assert refused.returncode == 1 and "Error response from daemon" in refused.stderr


def test_pull_on_a_terminal_draws_live_bars(daemon: SampanDaemon, registry: Seeded) -> None:
    import pty

    master, slave = pty.openpty()
    argv = [sys.executable, "-m", "sampan.cli", "-H", daemon.host, "pull",
            f"{registry.host}/test/big:v1"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, cwd=REPO)
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not data:
            break
        out += data
    os.close(master)
    assert proc.wait(60) == 0, out
    text = out.decode()
    assert "v1: Pulling from test/big" in text
    assert ": Downloading [" in text and "MB/" in text  # the bar, with byte counts
    assert "\x1b[2K" in text  # lines redrawn in place
    assert f"Status: Downloaded newer image for {registry.host}/test/big:v1" in text
