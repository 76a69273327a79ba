"""`sampan build` and docker-py's images.build against a real daemon."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.integration.daemon_fixtures import REPO, SampanDaemon, busybox_daemon

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


daemon = busybox_daemon("build-cli")


def sampan(
    daemon: SampanDaemon, *args: str, stdin: bytes = b"", cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "sampan.cli", "-H", daemon.host, *args],
        input=stdin, capture_output=True, timeout=300, cwd=cwd or REPO,
    )  # fmt: skip


def ok(done: subprocess.CompletedProcess[bytes]) -> str:
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")
    return done.stdout.decode()


def test_build_a_directory_with_args_labels_and_iidfile(
    daemon: SampanDaemon, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        'FROM busybox\nARG WHO=nobody\nRUN echo "hello $WHO" > /greeting\nCMD cat /greeting\n'
    )
    iid = tmp_path / "iid"
    out = ok(sampan(daemon, "build", "-t", "cli:1", "--build-arg", "WHO=sampan",
                    "--label", "team=core", "--iidfile", str(iid), str(ctx)))  # fmt: skip
    assert (
        "Step 3/5 : RUN echo" in out
        and "Step 5/5 : LABEL team=core" in out
        and "Successfully tagged cli:1" in out
    )
    image = iid.read_text()
    assert image.startswith("sha256:")
    assert daemon.docker("run", "--rm", "cli:1").stdout == "hello sampan\n"
    config = json.loads(daemon.docker("image", "inspect", "cli:1").stdout)[0]["Config"]
    assert config["Labels"] == {"team": "core"}
    assert json.loads(daemon.docker("image", "inspect", "cli:1").stdout)[0]["Id"] == image
    quiet = ok(sampan(daemon, "build", "-q", str(ctx), "--build-arg", "WHO=sampan"))
    assert quiet.strip().startswith("sha256:") and len(quiet.strip().splitlines()) == 1


def test_dockerfile_from_stdin_and_a_tar_context_on_stdin(
    daemon: SampanDaemon, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "data.txt").write_text("data\n")
    dockerfile = b"FROM busybox\nCOPY data.txt /data.txt\nCMD cat /data.txt\n"
    ok(sampan(daemon, "build", "-f", "-", "-t", "stdin-df", str(ctx), stdin=dockerfile))
    assert daemon.docker("run", "--rm", "stdin-df").stdout == "data\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("Dockerfile", dockerfile), ("data.txt", b"from the tar\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ok(sampan(daemon, "build", "-t", "stdin-tar", "-", stdin=buf.getvalue()))
    assert daemon.docker("run", "--rm", "stdin-tar").stdout == "from the tar\n"
    ok(sampan(daemon, "build", "-t", "stdin-only", "-", stdin=b"FROM busybox\nCMD echo alone\n"))
    assert daemon.docker("run", "--rm", "stdin-only").stdout == "alone\n"


def test_progress_plain_output_and_failures(daemon: SampanDaemon, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo step-output\nRUN mkdir /made\n")
    out = ok(sampan(daemon, "build", "--progress=plain", str(ctx)))
    assert "#2 [2/3] RUN echo step-output" in out
    assert "step-output" in out and "#2 DONE" in out
    assert "#3 CACHED" not in out
    again = ok(sampan(daemon, "build", "--progress=plain", str(ctx)))
    assert "#2 CACHED" in again and "#3 CACHED" in again
    tar = tmp_path / "fs.tar"
    ok(sampan(daemon, "build", "--output", f"type=tar,dest={tar}", str(ctx)))
    with tarfile.open(tar) as t:
        assert "made" in {m.name.strip("./").rstrip("/") for m in t.getmembers()}
    local = tmp_path / "fs"
    ok(sampan(daemon, "build", "-o", str(local), str(ctx)))
    assert (local / "made").is_dir() and (local / "bin" / "busybox").exists()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo last words; exit 4\n")
    failed = sampan(daemon, "build", "-t", "failed:1", str(ctx))
    assert failed.returncode == 4
    assert b"returned a non-zero code: 4" in failed.stderr and b"last words" in failed.stderr
    bad = sampan(daemon, "build", "--secret", "id=x", str(ctx))
    assert bad.returncode != 0 and b"BuildKit" in bad.stderr
    assert sampan(daemon, "build", str(tmp_path / "nothing")).returncode != 0


def test_builder_prune(daemon: SampanDaemon, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo x > /x\nRUN echo y > /y\n")
    ok(sampan(daemon, "build", "-t", "prune-me", str(ctx)))
    out = ok(sampan(daemon, "builder", "prune", "-f"))
    assert "Deleted build cache objects:" in out and "Total reclaimed space:" in out


def test_docker_py_builds(daemon: SampanDaemon, tmp_path: Path) -> None:
    docker = pytest.importorskip("docker")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nENV FROM_PY=1\nRUN touch /py\n")
    api = docker.DockerClient(base_url=daemon.host, version="1.41")
    try:
        image, logs = api.images.build(path=str(ctx), tag="py:1", rm=True)
        assert "py:1" in image.tags
        assert any("Successfully built" in (entry.get("stream") or "") for entry in logs)
        assert "FROM_PY=1" in image.attrs["Config"]["Env"]
        fileobj = io.BytesIO(b"FROM busybox\nLABEL via=fileobj\n")
        image, _ = api.images.build(fileobj=fileobj, tag="py:2")
        assert image.labels == {"via": "fileobj"}
        with pytest.raises(docker.errors.BuildError, match="non-zero code: 5"):
            api.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 5\n"), tag="py:3")
    finally:
        api.close()
