"""The real docker CLI against `sampan daemon`: version, info, and the image commands.

One daemon for the module (private root and socket), a loopback registry
seeded with busybox; the tests run in order, each leaving the store as the
next expects (busybox pulled, then tagged, pushed, saved, removed, loaded).
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.integration import registry_fixtures as rf
from tests.integration.daemon_fixtures import SampanDaemon, daemon, needs_docker_cli

registry = rf.registry
auth_registry = rf.auth_registry
pytestmark = [pytest.mark.root, needs_docker_cli, rf.needs_registry]
__all__ = ["auth_registry", "daemon", "registry"]


def test_version_negotiates_1_41(daemon: SampanDaemon) -> None:
    out = daemon.docker("version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}}")
    server_api, client_api = out.stdout.split()
    assert server_api == "1.41" and client_api == "1.41"
    out = daemon.docker("version", "--format", "{{json .Server}}").stdout
    server = json.loads(out)
    assert server["MinAPIVersion"] == "1.24" and server["Os"] == "linux"


def test_info_reports_real_numbers(daemon: SampanDaemon) -> None:
    import os

    fmt = "{{.NCPU}} {{.Images}} {{.Driver}} {{.DockerRootDir}} {{.OSType}} {{.MemTotal}}"
    ncpu, images, driver, root, ostype, mem = daemon.docker("info", "--format", fmt).stdout.split()
    assert int(ncpu) == os.cpu_count()
    assert images == "0" and driver in ("overlay", "vfs")
    assert root == str(daemon.root) and ostype == "linux" and int(mem) > 0
    text = daemon.docker("info").stdout
    assert "Server Version: 0.1.0" in text and f"Docker Root Dir: {daemon.root}" in text


def test_pull_images_inspect_history(daemon: SampanDaemon, registry: rf.Seeded) -> None:
    ref = f"{registry.host}/library/busybox:latest"
    done = daemon.docker("pull", ref)
    lines = done.stdout.splitlines()
    assert lines[0] == "latest: Pulling from library/busybox"
    assert any(line.endswith(": Pull complete") for line in lines)
    assert lines[-2] == f"Status: Downloaded newer image for {ref}"
    assert lines[-1] == ref
    again = daemon.docker("pull", ref).stdout
    assert f"Status: Image is up to date for {ref}" in again

    rows = daemon.docker("images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}").stdout.split()
    assert rows[:2] == [f"{registry.host}/library/busybox", "latest"]
    assert registry.busybox_config.removeprefix("sha256:").startswith(rows[2])

    [doc] = json.loads(daemon.docker("image", "inspect", ref).stdout)
    assert doc["Id"] == registry.busybox_config
    assert doc["RepoTags"] == [ref]
    assert doc["RepoDigests"][0].startswith(f"{registry.host}/library/busybox@sha256:")
    assert doc["Os"] == "linux" and len(doc["RootFS"]["Layers"]) == 1
    image_id = daemon.docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
    assert image_id == registry.busybox_config

    history = daemon.docker("history", ref).stdout.splitlines()
    assert history[0].split()[:3] == ["IMAGE", "CREATED", "CREATED"]
    assert history[1].startswith(image_id.removeprefix("sha256:")[:12])
    assert "layer 0" in history[1]


def test_tag_push_and_pull_back(daemon: SampanDaemon, registry: rf.Seeded) -> None:
    source = f"{registry.host}/library/busybox:latest"
    target = f"{registry.host}/sampan/daemon-cli:v1"
    daemon.docker("tag", source, target)
    names = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert target in names
    done = daemon.docker("push", target)
    assert f"The push refers to repository [{registry.host}/sampan/daemon-cli]" in done.stdout
    assert "v1: digest: sha256:" in done.stdout
    # the registry has it, byte for byte: skopeo sees the digest docker printed
    digest = done.stdout.split("v1: digest: ")[1].split()[0]
    inspected = rf.skopeo_inspect(f"docker://{target}")
    assert inspected["Digest"] == digest
    out = daemon.docker("rmi", target).stdout
    assert out.splitlines()[0] == f"Untagged: {target}"
    daemon.docker("pull", target)
    digests = daemon.docker("images", "--digests", "--format", "{{.Digest}}", target).stdout
    assert digests.strip() == digest


def test_save_rmi_load(daemon: SampanDaemon, registry: rf.Seeded, tmp_path: Path) -> None:
    ref = f"{registry.host}/library/busybox:latest"
    archive = tmp_path / "busybox.tar"
    daemon.docker("save", "-o", str(archive), ref)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "manifest.json" in names and "index.json" in names
    daemon.docker("rmi", "-f", registry.busybox_config)
    assert daemon.docker("images", "-q").stdout == ""
    done = daemon.docker("load", "-i", str(archive))
    assert done.stdout.strip() == f"Loaded image: {ref}"
    assert daemon.docker("images", "-q", ref).stdout.strip() == registry.busybox_config[7:19]


def test_prune_and_system_df(daemon: SampanDaemon, registry: rf.Seeded, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        data = b"hello from an import\n"
        info.size = len(data)
        import io

        tar.addfile(info, io.BytesIO(data))
    imported = daemon.docker("import", str(rootfs)).stdout.strip()
    assert imported.startswith("sha256:")
    dangling = daemon.docker("images", "-q", "--filter", "dangling=true").stdout.split()
    assert dangling == [imported[7:19]]
    df = daemon.docker("system", "df").stdout.splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert df[1].split()[:3] == ["Images", "2", "0"]
    out = daemon.docker("image", "prune", "-f").stdout
    assert f"deleted: {imported}" in out and "Total reclaimed space:" in out
    assert daemon.docker("images", "-q", "--filter", "dangling=true").stdout == ""
    df = daemon.docker("system", "df").stdout.splitlines()
    assert df[1].split()[:3] == ["Images", "1", "0"]


def test_unknown_image_is_docker_404(daemon: SampanDaemon) -> None:
    for args in (("rmi", "nothing-here"), ("history", "nothing-here")):
        done = daemon.docker(*args, check=False)
        assert done.returncode == 1
        expected = "Error response from daemon: No such image: nothing-here:latest"
        assert done.stderr.strip() == expected
    done = daemon.docker("image", "inspect", "nothing-here", check=False)
    assert done.returncode == 1 and "No such image: nothing-here" in done.stderr
    done = daemon.docker("tag", "nothing-here", "x:y", check=False)
    assert done.returncode == 1 and "No such image: nothing-here:latest" in done.stderr


def test_pull_of_a_missing_tag_fails_with_the_registry_s_words(
    daemon: SampanDaemon, registry: rf.Seeded
) -> None:
    done = daemon.docker("pull", f"{registry.host}/library/busybox:nope", check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("Error response from daemon: ")
    assert "not found" in done.stderr


def test_login_and_credentials_travel_with_push_and_pull(
    daemon: SampanDaemon, registry: rf.Seeded, auth_registry: rf.RegistryServer
) -> None:
    host = auth_registry.host
    done = subprocess.run(
        ["docker", "login", host, "-u", rf.USER, "--password-stdin"],
        input="wrong-password\n", capture_output=True, text=True, env=daemon.env(),
    )  # fmt: skip
    assert done.returncode == 1 and "Error response from daemon" in done.stderr
    assert "unauthorized" in done.stderr.lower()
    done = subprocess.run(
        ["docker", "login", host, "-u", rf.USER, "--password-stdin"],
        input=rf.PASSWORD + "\n", capture_output=True, text=True, env=daemon.env(),
    )  # fmt: skip
    assert done.returncode == 0 and "Login Succeeded" in done.stdout, done.stderr
    daemon.docker("pull", f"{registry.host}/library/busybox:latest")
    target = f"{host}/private/busybox:1"
    daemon.docker("tag", f"{registry.host}/library/busybox:latest", target)
    daemon.docker("push", target)  # X-Registry-Auth from the CLI's stored login
    daemon.docker("rmi", target)
    daemon.docker("pull", target)
    daemon.docker("logout", host)
    daemon.docker("rmi", target)
    done = daemon.docker("pull", target, check=False, timeout=30)
    assert done.returncode == 1
    assert "Error response from daemon: pull access denied for " in done.stderr
