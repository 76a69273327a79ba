"""`sampan` image commands end to end, as a user types them: clients of a private daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_fixtures import SampanDaemon

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

REPO = Path(__file__).resolve().parents[2]


class Sampan:
    def __init__(self, daemon: SampanDaemon) -> None:
        self.daemon = daemon
        self.root = daemon.root

    def __call__(
        self, *args: str, check: bool = True, stdin: str | None = None, host: str = ""
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "sampan.cli", "--root", str(self.root),
                "-H", host or self.daemon.host, *args]  # fmt: skip
        done = subprocess.run(
            argv, capture_output=True, text=True, input=stdin, cwd=REPO, timeout=600
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{args}: exit {done.returncode}\n{done.stderr}")
        return done


@pytest.fixture(scope="module")
def sampan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sampan]:
    daemon = SampanDaemon(tmp_path_factory.mktemp("cli")).start()
    try:
        cli = Sampan(daemon)
        # bootstrap works on the store itself, with the daemon running on it
        image_id = cli("image", "bootstrap", "-q", "busybox").stdout.strip()
        assert image_id.startswith("sha256:")
        yield cli
    finally:
        daemon.stop()


def test_images_lists_like_docker(sampan: Sampan) -> None:
    out = sampan("images").stdout.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert out[1].split()[:2] == ["busybox", "latest"]
    image_id = sampan("images", "-q").stdout.strip()
    assert len(image_id) == 12
    fmt = sampan("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    assert fmt == f"busybox:latest {image_id}\n"
    assert sampan("image", "ls", "--filter", "reference=nothing*", "-q").stdout == ""
    assert sampan("images", "busybox", "-q").stdout.strip() == image_id


def test_inspect_history_and_tags(sampan: Sampan) -> None:
    import json

    [doc] = json.loads(sampan("image", "inspect", "busybox").stdout)
    assert doc["RepoTags"] == ["busybox:latest"]
    assert doc["Config"]["Cmd"] == ["sh"] and doc["Os"] == "linux"
    assert len(doc["RootFS"]["Layers"]) == 1
    assert sampan("inspect", "--format", "{{.Id}}", "busybox").stdout.strip() == doc["Id"]
    history = sampan("history", "busybox").stdout.splitlines()
    assert history[0].split()[:2] == ["IMAGE", "CREATED"]
    assert "sampan image bootstrap busybox" in history[1]
    sampan("tag", "busybox", "localhost:5000/tools/bb:v1")
    names = sampan("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(names) == ["busybox:latest", "localhost:5000/tools/bb:v1"]
    out = sampan("rmi", "localhost:5000/tools/bb:v1").stdout
    assert out == "Untagged: localhost:5000/tools/bb:v1\n"


def test_errors_are_one_line_and_exit_1(sampan: Sampan) -> None:
    done = sampan("rmi", "nothing-here", check=False)
    assert done.returncode == 1
    assert done.stderr == "Error response from daemon: No such image: nothing-here:latest\n"
    done = sampan("tag", "busybox", "Bad/Name", check=False)
    assert done.returncode == 1 and done.stderr.startswith("Error: ")
    done = sampan("images", "--filter", "color=red", check=False)
    assert done.returncode == 1 and "invalid filter 'color'" in done.stderr
    done = sampan("inspect", "busybox", "nothing-here", check=False)
    assert done.returncode == 1 and "No such object: nothing-here" in done.stderr
    done = sampan("frobnicate", check=False)
    assert done.returncode == 1 and 'unknown command "frobnicate"' in done.stderr


def test_without_a_daemon_every_command_says_so(sampan: Sampan, tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/nobody.sock"
    expected = f"Cannot connect to the sampan daemon at {host}. Is the sampan daemon running?\n"
    for args in (("images",), ("image", "inspect", "busybox"), ("history", "busybox"),
                 ("tag", "busybox", "x:1"), ("rmi", "busybox"), ("pull", "busybox"),
                 ("image", "prune", "-f"), ("system", "df"), ("save", "-o", "/dev/null", "x"),
                 ("info", "-f", "{{.NCPU}}")):  # fmt: skip
        done = sampan(*args, check=False, host=host)
        assert (done.returncode, done.stderr) == (1, expected), args
    done = sampan("version", check=False, host=host)
    assert done.returncode == 1 and done.stdout.startswith("Client:\n Version:")
    assert "Server:" not in done.stdout and done.stderr == expected


def test_system_df_and_prune(sampan: Sampan) -> None:
    df = sampan("system", "df").stdout.splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert df[1].split()[:3] == ["Images", "1", "0"]
    done = sampan("image", "prune", stdin="n\n")
    assert "Are you sure you want to continue?" in done.stdout
    assert "Total reclaimed space" not in done.stdout
    out = sampan("image", "prune", "-f").stdout
    assert out == "Total reclaimed space: 0B\n"


def test_save_load_and_import_through_the_cli(sampan: Sampan, tmp_path: Path) -> None:
    archive = tmp_path / "bb.tar"
    sampan("save", "-o", str(archive), "busybox")
    assert archive.stat().st_size > 500_000
    image_id = sampan("images", "-q", "busybox").stdout.strip()
    sampan("tag", "busybox", "keep:1")  # the layers stay; the load must still verify them
    sampan("rmi", "busybox")
    assert sampan("load", "-i", str(archive)).stdout == "Loaded image: busybox:latest\n"
    assert sampan("images", "-q", "busybox").stdout.strip() == image_id
    sampan("rmi", "keep:1")
    imported = sampan(
        "import", "-c", 'CMD ["echo", "hi"]', "-c", "ENV A=1", str(archive), "scratchy:1"
    ).stdout.strip()
    assert imported.startswith("sha256:")
    fmt = "{{json .Config.Cmd}} {{json .Config.Env}}"
    assert sampan("inspect", "-f", fmt, "scratchy:1").stdout == '["echo","hi"] ["A=1"]\n'
    sampan("rmi", "scratchy:1")
    done = sampan("save", "-o", str(tmp_path / "none.tar"), "nothing-here", check=False)
    assert done.returncode == 1 and not (tmp_path / "none.tar").exists()
    done = sampan("load", "-i", str(tmp_path / "missing.tar"), check=False)
    assert done.returncode == 1 and "missing.tar" in done.stderr
    done = sampan("import", "-c", "RUN true", str(archive), check=False)
    assert done.returncode == 1 and "not a valid change command" in done.stderr


def test_import_from_stdin_load_quiet_and_prune_all(sampan: Sampan, tmp_path: Path) -> None:
    import io
    import tarfile

    rootfs = io.BytesIO()
    with tarfile.open(fileobj=rootfs, mode="w") as tar:
        data = b"hello from stdin\n"
        info = tarfile.TarInfo("etc/motd")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    argv = [sys.executable, "-m", "sampan.cli", "-H", sampan.daemon.host,
            "import", "-m", "from a pipe", "-", "piped:1"]  # fmt: skip
    done = subprocess.run(argv, input=rootfs.getvalue(), capture_output=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    image_id = done.stdout.decode().strip()
    assert image_id.startswith("sha256:")
    fmt = "{{.Comment}} {{len .RootFS.Layers}}"
    assert sampan("image", "inspect", "-f", fmt, "piped:1").stdout == "from a pipe 1\n"
    archive = tmp_path / "piped.tar"
    sampan("save", "-o", str(archive), "piped:1")
    sampan("rmi", "piped:1")
    assert sampan("load", "-q", "-i", str(archive)).stdout == ""
    assert sampan("images", "-q", "--no-trunc", "piped").stdout == image_id + "\n"
    # prune -a: every image no container uses (busybox too: no container here)
    sampan("tag", "piped:1", "piped:2")
    out = sampan("image", "prune", "-a", "-f").stdout.splitlines()
    assert out[0] == "Deleted Images:"
    assert {"untagged: piped:1", "untagged: piped:2", f"deleted: {image_id}"} <= set(out)
    assert out[-2] == "" and out[-1].startswith("Total reclaimed space: ")
    assert sampan("images", "-q", "piped").stdout == ""
    sampan("image", "bootstrap", "-q", "busybox")  # prune -a took it too: back for later tests
