"""docker-py (PyPI ``docker``) against `sampan daemon`: system, images and containers.

One daemon for the module, busybox bootstrapped into its root before it
starts; a loopback registry for pull/push.  Containers are made by these
tests only and found by their own ids and labels (other suites run daemons
of their own at the same time).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import registry_fixtures as rf
from tests.integration.daemon_fixtures import SampanDaemon, busybox_daemon

docker = pytest.importorskip("docker")
registry = rf.registry
pytestmark = [pytest.mark.root, rf.needs_registry]
__all__ = ["registry"]
LABEL = {"sampan.test": "docker-py"}
daemon = busybox_daemon("docker-py", remove_containers=False)


@pytest.fixture(scope="module")
def client(daemon: SampanDaemon) -> Iterator[Any]:
    c = docker.DockerClient(base_url=daemon.host, version="auto", timeout=60)
    yield c
    for container in c.containers.list(all=True, filters={"label": "sampan.test"}):
        container.remove(force=True)
    c.close()


# -- system ----------------------------------------------------------------------------


def test_ping_version_info_and_df(client: Any, daemon: SampanDaemon) -> None:
    assert client.ping() is True
    version = client.version()
    assert version["ApiVersion"] == "1.41"
    assert version["Components"][0]["Name"] == "Engine"
    assert client.api.api_version == "1.41"
    info = client.info()
    assert info["OSType"] == "linux" and info["DockerRootDir"] == str(daemon.root)
    assert info["Images"] >= 1 and info["NCPU"] >= 1
    keep = client.containers.run("busybox", ["sleep", "30"], detach=True, labels=LABEL)
    try:
        info = client.info()
        assert info["ContainersRunning"] >= 1
        assert info["Containers"] == (
            info["ContainersRunning"] + info["ContainersPaused"] + info["ContainersStopped"]
        )
        df = client.df()
        assert keep.id in {c["Id"] for c in df["Containers"]}
        busybox = client.images.get("busybox")
        [row] = [i for i in df["Images"] if i["Id"] == busybox.id]
        assert row["Containers"] >= 1 and df["LayersSize"] > 0
    finally:
        keep.remove(force=True)


# -- containers --------------------------------------------------------------------------


def test_run_attached_with_env_workdir_user(client: Any, registry: rf.Seeded) -> None:
    out = client.containers.run(
        "busybox",
        ["sh", "-c", 'echo "$GREETING"; pwd; id -u; echo to-stderr >&2'],
        environment={"GREETING": "hello from docker-py"},
        working_dir="/tmp",
        user="1000",
        labels=LABEL,
        remove=True,
    )
    assert out == b"hello from docker-py\n/tmp\n1000\n"
    with pytest.raises(docker.errors.ContainerError) as info:
        client.containers.run("busybox", ["sh", "-c", "echo oops >&2; exit 3"], labels=LABEL,
                              remove=True)  # fmt: skip
    assert info.value.exit_status == 3 and b"oops" in info.value.stderr
    with pytest.raises(docker.errors.NotFound):  # not here, so pulled: not there either
        client.containers.run(f"{registry.host}/library/nothing-here:never", ["true"])


def test_run_with_auto_remove(client: Any) -> None:
    container = client.containers.run("busybox", ["sh", "-c", "echo bye"], detach=True,
                                      auto_remove=True, labels=LABEL)  # fmt: skip
    assert container.wait(timeout=30)["StatusCode"] == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client.containers.get(container.id)
        except docker.errors.NotFound:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("an auto_remove container was not removed after its exit")


def test_detach_list_get_labels_and_filters(client: Any) -> None:
    labels = {**LABEL, "role": "lister"}
    running = client.containers.run("busybox", ["sleep", "60"], detach=True, labels=labels,
                                    name="dpy-running")  # fmt: skip
    done = client.containers.run("busybox", ["true"], detach=True, labels=labels,
                                 name="dpy-done")  # fmt: skip
    try:
        assert done.wait(timeout=30)["StatusCode"] == 0
        got = client.containers.get("dpy-running")
        assert got.id == running.id and got.name == "dpy-running"
        assert got.status == "running" and got.labels == labels
        assert got.attrs["Config"]["Labels"]["role"] == "lister"
        mine = {"label": "role=lister"}
        assert {c.id for c in client.containers.list(filters=mine)} == {running.id}
        listed = client.containers.list(all=True, filters=mine)
        assert {c.id for c in listed} == {running.id, done.id}
        exited = client.containers.list(all=True, filters={**mine, "status": "exited"})
        assert [c.id for c in exited] == [done.id]
        by_name = client.containers.list(all=True, filters={"name": "dpy-done"})
        assert [c.id for c in by_name] == [done.id]
        with pytest.raises(docker.errors.NotFound):
            client.containers.get("dpy-nothing-here")
    finally:
        running.remove(force=True)
        done.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(running.id)


def test_logs_follow_timestamps_and_tail(client: Any) -> None:
    script = "for i in 1 2 3 4 5; do echo line$i; sleep 0.1; done"
    container = client.containers.run("busybox", ["sh", "-c", script], detach=True, labels=LABEL)
    try:
        streamed = b"".join(container.logs(stream=True, follow=True))  # until the exit
        assert streamed == b"".join(b"line%d\n" % i for i in range(1, 6))
        assert container.wait(timeout=30)["StatusCode"] == 0
        assert container.logs(tail=2) == b"line4\nline5\n"
        stamped = container.logs(timestamps=True).decode().splitlines()
        assert len(stamped) == 5
        stamp, text = stamped[0].split(" ", 1)
        assert text == "line1" and stamp[:2] == "20" and stamp.endswith("Z")
    finally:
        container.remove(force=True)


def test_wait_stop_kill_remove(client: Any) -> None:
    container = client.containers.run("busybox", ["sleep", "60"], detach=True, labels=LABEL)
    container.stop(timeout=1)
    assert container.wait(timeout=30)["StatusCode"] == 137  # sleep ignores TERM as pid 1
    container.reload()
    assert container.status == "exited"
    container.start()
    container.kill(signal="SIGKILL")
    assert container.wait(timeout=30)["StatusCode"] == 137
    trapper = client.containers.run(
        "busybox", ["sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done"],
        detach=True, labels=LABEL,
    )  # fmt: skip
    try:
        time.sleep(0.3)  # the trap is set
        trapper.kill(signal="SIGTERM")
        assert trapper.wait(timeout=30)["StatusCode"] == 7
    finally:
        trapper.remove(force=True)
    with pytest.raises(docker.errors.APIError):
        running = client.containers.run("busybox", ["sleep", "60"], detach=True, labels=LABEL)
        try:
            running.remove()  # running: refused without force
        finally:
            running.remove(force=True)
    container.remove()
    with pytest.raises(docker.errors.NotFound):
        container.reload()


# -- images --------------------------------------------------------------------------------


def test_pull_list_get_push_remove(client: Any, registry: rf.Seeded) -> None:
    repo = f"{registry.host}/test/multi"
    image = client.images.pull(repo, tag="v1")
    assert image.id == registry.multi_config
    assert f"{repo}:v1" in image.tags
    listed = {i.id for i in client.images.list()}
    assert registry.multi_config in listed
    assert [i.id for i in client.images.list(name=repo)] == [image.id]
    got = client.images.get(f"{repo}:v1")
    assert got.id == image.id and len(got.attrs["RootFS"]["Layers"]) == 3
    assert got.history()[0]["Id"] == image.id

    target = f"{registry.host}/sampan/docker-py"
    assert image.tag(target, "v2") is True
    lines = list(client.images.push(target, tag="v2", stream=True, decode=True))
    assert not [line for line in lines if "error" in line], lines
    assert any("digest: sha256:" in line.get("status", "") for line in lines)
    client.images.remove(f"{target}:v2")
    assert f"{target}:v2" not in client.images.get(image.id).tags
    pulled = client.images.pull(target, tag="v2")
    assert pulled.id == image.id


def test_save_and_load(client: Any, registry: rf.Seeded) -> None:
    repo = f"{registry.host}/test/multi:v1"
    image = client.images.get(repo)
    data = b"".join(image.save(named=True))
    assert len(data) > 2_000_000  # three layers of random data
    client.images.remove(image.id, force=True)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(repo)
    [loaded] = client.images.load(data)
    assert loaded.id == registry.multi_config


def test_image_in_use_and_errors(client: Any, tmp_path: Path) -> None:
    container = client.containers.create("busybox", ["true"], labels=LABEL)
    try:
        busybox = client.images.get("busybox:latest")
        busybox.tag("dpy-alias", "1")
        with pytest.raises(docker.errors.APIError) as info:
            client.images.remove(busybox.id)  # two names and a container: refused
        assert info.value.status_code == 409
        client.images.remove("dpy-alias:1")
        assert client.images.get("busybox:latest").tags == ["busybox:latest"]
    finally:
        container.remove()
    with pytest.raises(docker.errors.ImageNotFound, match="No such image"):
        client.images.get("nothing-here:nope")
    with pytest.raises(docker.errors.NotFound):
        client.images.remove("nothing-here")
