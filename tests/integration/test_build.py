"""Dockerfile builds on a real daemon, driven by the real docker CLI (classic builder).

What a build makes (the config, the files, the history), the build cache
(content, not mtimes; an unchanged rebuild makes nothing), the stages a
target needs and only those, and every bad input: a clear error naming
Dockerfile:LINE, and no tag.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.daemon_fixtures import SampanDaemon, busybox_daemon

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


daemon = busybox_daemon("build")


def build(
    daemon: SampanDaemon, ctx: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`DOCKER_BUILDKIT=0 docker build ARGS CTX` against the daemon."""
    env = {**daemon.env(), "DOCKER_BUILDKIT": "0"}
    done = subprocess.run(
        ["docker", "build", *args, str(ctx)],
        capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(
            f"docker build {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n"
            f"{done.stderr}\n--- daemon log ---\n{daemon.log()[-3000:]}"
        )
    return done


def context(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return ctx


def image_config(daemon: SampanDaemon, name: str) -> dict[str, object]:
    doc = json.loads(daemon.docker("image", "inspect", name).stdout)[0]
    return doc["Config"]  # type: ignore[no-any-return]


def run(daemon: SampanDaemon, *args: str) -> str:
    return daemon.docker("run", "--rm", *args).stdout


APP = """\
FROM busybox
LABEL org.example.team=core
ENV APP_HOME=/srv/app GREETING="hello there"
WORKDIR $APP_HOME
COPY main.sh lib/ ./
RUN chmod +x main.sh && echo built > built.txt
EXPOSE 8080/tcp 53/udp
VOLUME /data
USER 1000:1000
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD test -f /srv/app/built.txt
ENTRYPOINT ["/srv/app/main.sh"]
CMD ["world"]
"""


def test_a_build_makes_the_image_docker_would(daemon: SampanDaemon, tmp_path: Path) -> None:
    ctx = context(tmp_path, APP, {
        "main.sh": '#!/bin/sh\necho "$GREETING, $1 from $(pwd) as $(id -u)"\n',
        "lib/util.txt": "util\n",
    })  # fmt: skip
    done = build(daemon, ctx, "-t", "app:1", "-t", "app:latest")
    assert "Step 1/13 : FROM busybox" in done.stdout
    assert "Step 6/13 : RUN chmod +x main.sh && echo built > built.txt" in done.stdout
    assert "Successfully tagged app:1" in done.stdout
    assert "Successfully tagged app:latest" in done.stdout
    config = image_config(daemon, "app:1")
    assert config["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "APP_HOME=/srv/app", "GREETING=hello there",
    ] or "GREETING=hello there" in config["Env"]  # fmt: skip
    assert config["WorkingDir"] == "/srv/app"
    assert config["User"] == "1000:1000"
    assert config["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert config["Volumes"] == {"/data": {}}
    assert config["Labels"] == {"org.example.team": "core"}
    assert config["StopSignal"] == "SIGINT"
    assert config["Entrypoint"] == ["/srv/app/main.sh"]
    assert config["Cmd"] == ["world"]
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -f /srv/app/built.txt"], "Interval": 5_000_000_000,
        "Retries": 2,
    }  # fmt: skip
    assert run(daemon, "app:1") == "hello there, world from /srv/app as 1000\n"
    listing = run(daemon, "--entrypoint", "ls", "app:1", "-1", "/srv/app")
    assert listing.split() == ["built.txt", "main.sh", "util.txt"]  # lib/'s contents
    history = daemon.docker("history", "--no-trunc", "--format", "{{.ID}} {{.CreatedBy}}",
                            "app:1").stdout.splitlines()  # fmt: skip
    assert len(history) >= 13
    assert "<missing>" not in " ".join(line.split()[0] for line in history[:12])
    assert any("RUN" not in h and "chmod +x main.sh" in h for h in history)
    # The steps are intermediate images: hidden unless -a.
    plain = daemon.docker("images", "-q").stdout.split()
    every = daemon.docker("images", "-aq").stdout.split()
    assert len(every) >= len(plain) + 10


def test_an_unchanged_rebuild_makes_nothing_and_content_not_mtime_counts(
    daemon: SampanDaemon, tmp_path: Path
) -> None:
    dockerfile = (
        "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy.txt\n"
        "COPY b.txt /b.txt\nRUN cat /b.txt >> /copy.txt\nCMD cat /copy.txt\n"
    )
    ctx = context(tmp_path, dockerfile, {"a.txt": "A\n", "b.txt": "B\n"})
    first = build(daemon, ctx, "-q").stdout.strip()
    again = build(daemon, ctx)
    assert again.stdout.count("Using cache") == 5, again.stdout
    assert first.removeprefix("sha256:")[:12] in again.stdout
    os.utime(ctx / "a.txt", (1, 1))  # a new mtime, the same content
    assert build(daemon, ctx, "-q").stdout.strip() == first
    (ctx / "b.txt").write_text("B2\n")  # one changed source: the steps from its COPY rerun
    changed = build(daemon, ctx)
    assert changed.stdout.count("Using cache") == 2, changed.stdout
    image = changed.stdout.split("Successfully built ")[1].split()[0]
    assert run(daemon, image) == "A\nB2\n"
    nocache = build(daemon, ctx, "--no-cache")
    assert "Using cache" not in nocache.stdout


def test_only_the_stages_the_target_needs_are_built(daemon: SampanDaemon, tmp_path: Path) -> None:
    dockerfile = """\
ARG BASE=busybox
FROM $BASE AS one
RUN echo one > /one
FROM busybox AS broken
RUN echo never; exit 7
FROM busybox AS two
RUN echo two > /two
FROM $BASE
COPY --from=one /one /one
COPY --from=two /two /two
RUN cat /one /two > /both
CMD ["cat", "/both"]
"""
    ctx = context(tmp_path, dockerfile)
    done = build(daemon, ctx, "-t", "stages")
    assert "never" not in done.stdout  # the broken stage is not needed
    assert run(daemon, "stages") == "one\ntwo\n"
    target = build(daemon, ctx, "--target", "two", "-t", "stage-two")
    assert "echo one" not in target.stdout and "two > /two" in target.stdout
    assert run(daemon, "stage-two", "cat", "/two") == "two\n"
    failed = build(daemon, ctx, "--target", "broken", "-t", "stage-broken", check=False)
    assert failed.returncode == 7, failed.stderr
    assert "returned a non-zero code: 7" in failed.stderr
    missing = build(daemon, ctx, "--target", "nope", check=False)
    assert missing.returncode != 0 and "nope" in missing.stderr


def test_a_failing_run_shows_its_code_and_output_and_tags_nothing(
    daemon: SampanDaemon, tmp_path: Path
) -> None:
    dockerfile = "FROM busybox\nRUN echo fine\nRUN echo first; echo second >&2; exit 3\n"
    ctx = context(tmp_path, dockerfile)
    done = build(daemon, ctx, "-t", "broken:1", check=False)
    assert done.returncode == 3
    assert "Dockerfile:3" in done.stderr
    assert "returned a non-zero code: 3" in done.stderr
    assert "second" in done.stdout + done.stderr
    inspect = daemon.docker("image", "inspect", "broken:1", check=False)
    assert inspect.returncode != 0


@pytest.mark.parametrize(
    ("dockerfile", "files", "wanted"),
    [
        ("FROM busybox\nFORM busybox\n", {}, "Dockerfile:2"),
        ("RUN echo no from\n", {}, "Dockerfile:1"),
        ("FROM busybox\nRUN echo $VERSION\nARG VERSION=1\n", {}, "Dockerfile:2"),
        ("FROM busybox\nCOPY ../outside /x\n", {}, "outside the build context"),
        ("FROM busybox\nCOPY missing.txt /x\n", {}, "missing.txt"),
        ("FROM busybox\nCOPY link/passwd /x\n", {"@link": "/etc"}, "Dockerfile:2"),
        ("FROM busybox\nADD http://example.invalid/x /x\n", {}, "Dockerfile:2"),
        ("FROM busybox\nCOPY --from=nostage /x /x\n", {}, "Dockerfile:2"),
        ("FROM busybox\nEXPOSE 99999\n", {}, "Dockerfile:2"),
        ("FROM busybox\nRUN --mount=type=secret,id=x true\n", {}, "Dockerfile:2"),
    ],
    ids=[
        "unknown-instruction",
        "no-from",
        "arg-before-definition",
        "outside-context",
        "missing-source",
        "symlink-out",
        "remote-url",
        "missing-stage",
        "bad-port",
        "secret-mount",
    ],
)
def test_bad_input_is_a_clear_error_and_tags_nothing(
    daemon: SampanDaemon, tmp_path: Path, dockerfile: str, files: dict[str, str], wanted: str
) -> None:
    ctx = context(tmp_path, dockerfile)
    for name, target in files.items():
        if name.startswith("@"):
            (ctx / name[1:]).symlink_to(target)
    done = build(daemon, ctx, "-t", "bad:input", check=False)
    assert done.returncode != 0, done.stdout
    assert wanted in done.stderr, done.stderr
    assert daemon.docker("image", "inspect", "bad:input", check=False).returncode != 0


def test_dockerignore_may_exclude_the_dockerfile(daemon: SampanDaemon, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nCOPY . /ctx/\n", {
        "keep.txt": "k", "skip.log": "s", "sub/keep.txt": "k", "sub/skip.log": "s",
        ".dockerignore": "Dockerfile\n*.log\n**/*.log\n!sub/skip.log\n",
    })  # fmt: skip
    build(daemon, ctx, "-t", "ignored")
    found = run(daemon, "ignored", "find", "/ctx", "-type", "f").split()
    assert sorted(found) == ["/ctx/.dockerignore", "/ctx/keep.txt", "/ctx/sub/keep.txt",
                             "/ctx/sub/skip.log"]  # fmt: skip


def test_cache_mounts_persist_and_bind_mounts_see_the_context(
    daemon: SampanDaemon, tmp_path: Path
) -> None:
    dockerfile = """\
FROM busybox
ARG RUNID
RUN --mount=type=cache,target=/cache echo "$RUNID" >> /cache/runs && cat /cache/runs > /seen
RUN --mount=type=bind,target=/src cat /src/input.txt > /input
"""
    ctx = context(tmp_path, dockerfile, {"input.txt": "from the context\n"})
    build(daemon, ctx, "--build-arg", "RUNID=first", "-t", "mounts")
    build(daemon, ctx, "--build-arg", "RUNID=second", "-t", "mounts")
    assert run(daemon, "mounts", "cat", "/seen") == "first\nsecond\n"
    assert run(daemon, "mounts", "cat", "/input") == "from the context\n"
    # The mount points it made are not in the image (as BuildKit removes them).
    assert run(daemon, "mounts", "sh", "-c", "ls -d /src /cache || echo gone") == "gone\n"


def test_onbuild_triggers_run_in_the_child(daemon: SampanDaemon, tmp_path: Path) -> None:
    base = context(tmp_path / "base", "FROM busybox\nONBUILD COPY hello.txt /hello.txt\n")
    build(daemon, base, "-t", "onbuild-base")
    child = context(tmp_path / "child", "FROM onbuild-base\nCMD cat /hello.txt\n",
                    {"hello.txt": "triggered\n"})  # fmt: skip
    done = build(daemon, child, "-t", "onbuild-child")
    assert "Executing 1 build trigger" in done.stdout
    assert run(daemon, "onbuild-child") == "triggered\n"
    assert image_config(daemon, "onbuild-child").get("OnBuild") in (None, [])


def test_builder_prune_reclaims_the_cache(daemon: SampanDaemon, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN head -c 300000 /dev/urandom > /blob\nCMD ls\n")
    build(daemon, ctx, "-t", "prunable")
    before = len(daemon.docker("images", "-aq").stdout.split())
    done = daemon.docker("builder", "prune", "-f")
    assert "Total reclaimed space" in done.stdout
    assert len(daemon.docker("images", "-aq").stdout.split()) < before
    assert run(daemon, "prunable", "ls", "/blob") == "/blob\n"  # the tagged image stays
    again = build(daemon, ctx)
    assert "Using cache" not in again.stdout  # its keys are gone


def test_a_context_of_many_small_files_builds(daemon: SampanDaemon, tmp_path: Path) -> None:
    """50,000 files here (a million took 3 min 19 s through `sampan build`: README)."""
    ctx = context(tmp_path, "FROM busybox\nCOPY d007/f0042 /picked\nCOPY d049/ /last/\n")
    for d in range(50):
        sub = ctx / f"d{d:03}"
        sub.mkdir()
        for f in range(1000):
            (sub / f"f{f:04}").write_text(f"{d}/{f}")
    done = build(daemon, ctx, "-t", "many-files")
    assert "Sending build context to Docker daemon" in done.stdout
    assert run(daemon, "many-files", "cat", "/picked") == "7/42"
    assert run(daemon, "many-files", "sh", "-c", "ls /last | wc -l").strip() == "1000"


def test_heredocs_chmod_and_link(daemon: SampanDaemon, tmp_path: Path) -> None:
    dockerfile = (
        'FROM busybox\nARG WHO=heredoc\nRUN <<EOF\necho "made by $WHO" > /made\nEOF\n'
        "COPY --chmod=0750 --link <<-SCRIPT /usr/local/bin/hello\n\t#!/bin/sh\n"
        '\techo hello from ${WHO}\n\tSCRIPT\nCMD ["hello"]\n'
    )
    ctx = context(tmp_path, dockerfile)
    build(daemon, ctx, "-t", "heredocs")
    assert run(daemon, "heredocs", "cat", "/made") == "made by heredoc\n"
    assert run(daemon, "heredocs") == "hello from heredoc\n"
    mode = run(daemon, "heredocs", "stat", "-c", "%a", "/usr/local/bin/hello")
    assert mode.strip() == "750"


def test_cache_from_an_image_after_the_cache_is_gone(daemon: SampanDaemon, tmp_path: Path) -> None:
    dockerfile = "FROM busybox\nENV A=1\nRUN echo slow > /slow\nCOPY f.txt /f.txt\nCMD cat /f.txt\n"
    ctx = context(tmp_path, dockerfile, {"f.txt": "from cache\n"})
    build(daemon, ctx, "-t", "cache-source")
    daemon.docker("builder", "prune", "-f")
    plain = build(daemon, ctx)
    assert "Using cache" not in plain.stdout
    daemon.docker("builder", "prune", "-f")
    cached = build(daemon, ctx, "--cache-from", "cache-source", "-t", "cache-user")
    assert cached.stdout.count("Using cache") == 4, cached.stdout
    assert run(daemon, "cache-user") == "from cache\n"
    source = json.loads(daemon.docker("image", "inspect", "cache-source").stdout)[0]
    user = json.loads(daemon.docker("image", "inspect", "cache-user").stdout)[0]
    assert source["RootFS"]["Layers"] == user["RootFS"]["Layers"]
