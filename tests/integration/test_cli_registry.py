"""`sampan pull/push/login` as a user types them, against a real registry on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration import registry_fixtures as rf
from tests.integration.registry_fixtures import Seeded, needs_registry, skopeo_inspect

pytestmark = [needs_registry, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]
registry, auth_registry = rf.registry, rf.auth_registry
REPO = Path(__file__).resolve().parents[2]


def sampan(root: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "sampan.cli", "--root", str(root), *args]
    return subprocess.run(argv, capture_output=True, text=True, input=stdin, cwd=REPO, timeout=300)


def test_pull_then_push_under_a_new_name(registry: Seeded, tmp_path: Path) -> None:
    root = tmp_path / "root"
    done = sampan(root, "pull", f"{registry.host}/library/busybox")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Using default tag: latest"
    assert f"Status: Downloaded newer image for {registry.host}/library/busybox:latest" in lines
    again = sampan(root, "pull", "-q", f"{registry.host}/library/busybox:latest")
    assert again.stdout == f"{registry.host}/library/busybox:latest\n"
    target = f"{registry.host}/cli/pushed:v1"
    assert sampan(root, "tag", f"{registry.host}/library/busybox", target).returncode == 0
    pushed = sampan(root, "push", target)
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.strip().splitlines()[-1].split()[2]
    assert skopeo_inspect(f"docker://{target}")["Digest"] == digest
    shown = sampan(root, "images", "--digests", "--format", "{{.Repository}} {{.Digest}}")
    assert f"{registry.host}/cli/pushed {digest}" in shown.stdout.splitlines()


def test_pull_errors_are_one_clear_line(registry: Seeded, tmp_path: Path) -> None:
    root = tmp_path / "root"
    done = sampan(root, "pull", f"{registry.host}/library/nothing-here:1")
    assert done.returncode == 1
    assert done.stderr.startswith("Error: ") and "not found" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert sampan(root, "images", "-q").stdout == ""
    done = sampan(root, "pull", "Bad Name")
    assert done.returncode == 1 and "invalid reference format" in done.stderr


def test_login_and_logout(auth_registry: rf.RegistryServer, tmp_path: Path) -> None:
    root, config = tmp_path / "root", tmp_path / "docker"
    host = auth_registry.host
    base = ("--config", str(config))
    wrong = sampan(root, *base, "login", "-u", "alice", "--password-stdin", host, stdin="nope\n")
    assert wrong.returncode == 1 and not (config / "config.json").exists()
    user, password = rf.USER, rf.PASSWORD
    good = sampan(root, *base, "login", "-u", user, "--password-stdin", host, stdin=password)
    assert good.returncode == 0 and good.stdout.strip().endswith("Login Succeeded")
    assert host in (config / "config.json").read_text()
    out = sampan(root, *base, "logout", host)
    assert out.stdout == f"Removing login credentials for {host}\n"
