"""The image and system commands' output, shaped from the daemon's documents (no daemon)."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest

from sampan.cli import client as cli_client
from sampan.cli.image import history_rows, image_rows, split_name
from sampan.cli.system import bytes_size, df_rows, info_text, version_text
from sampan.errors import SampanError
from sampan.image.progress import make_progress

NOW = 1_700_000_000.0
ID = "sha256:" + "ab" * 32


def test_split_name_keeps_a_registry_port() -> None:
    assert split_name("busybox:latest") == ("busybox", "latest")
    assert split_name("localhost:5000/tools/bb:v1") == ("localhost:5000/tools/bb", "v1")
    assert split_name("localhost:5000/tools/bb") == ("localhost:5000/tools/bb", "")


def test_image_rows_one_per_name_digests_and_dangling() -> None:
    summaries = [
        {"Id": ID, "RepoTags": ["busybox:latest", "127.0.0.1:5000/bb:v1"],
         "RepoDigests": ["127.0.0.1:5000/bb@sha256:" + "cd" * 32], "Created": int(NOW - 7200),
         "Size": 1_982_000, "Containers": -1},
        {"Id": "sha256:" + "ef" * 32, "RepoTags": [], "RepoDigests": ["old@sha256:" + "01" * 32],
         "Created": 0, "Size": 10},
        {"Id": "sha256:" + "99" * 32, "RepoTags": None, "RepoDigests": None, "Created": 0,
         "Size": 0},
    ]  # fmt: skip
    rows = image_rows(summaries, no_trunc=False, now=NOW)
    assert [(r["Repository"], r["Tag"], r["ID"]) for r in rows] == [
        ("busybox", "latest", "abababababab"),
        ("127.0.0.1:5000/bb", "v1", "abababababab"),
        ("old", "<none>", "efefefefefef"),
        ("<none>", "<none>", "999999999999"),
    ]
    assert rows[0]["Digest"] == "<none>" and rows[1]["Digest"] == "sha256:" + "cd" * 32
    assert rows[0]["CreatedSince"] == "2 hours ago" and rows[0]["Size"] == "1.98MB"
    assert rows[0]["CreatedAt"] == "2023-11-14 20:13:20 +0000 UTC"
    assert rows[2]["CreatedSince"] == "N/A" and rows[0]["Containers"] == "N/A"
    assert image_rows(summaries[:1], no_trunc=True, now=NOW)[0]["ID"] == ID


def test_history_rows_truncate_like_docker() -> None:
    entries = [
        {"Id": ID, "Created": int(NOW - 60), "CreatedBy": "x" * 60, "Size": 2048, "Comment": "c"},
        {"Id": "<missing>", "Created": 0, "CreatedBy": "short", "Size": 0, "Comment": ""},
    ]
    opts: dict[str, Any] = {"no_trunc": False, "human": True}
    rows = history_rows(entries, opts, NOW)
    assert rows[0]["ID"] == "abababababab" and rows[1]["ID"] == "<missing>"
    assert rows[0]["CreatedBy"] == "x" * 44 + "…" and rows[0]["Size"] == "2.05kB"
    assert rows[0]["CreatedSince"] == "About a minute ago"
    raw = history_rows(entries, {"no_trunc": True, "human": False}, NOW)
    assert raw[0]["ID"] == ID and raw[0]["CreatedBy"] == "x" * 60 and raw[0]["Size"] == "2048"


def test_df_rows_reclaimable_as_docker_counts_it() -> None:
    doc = {
        "LayersSize": 10_000_000,
        "Images": [{"Id": "a", "Size": 6_000_000, "SharedSize": 1_000_000, "Containers": 2},
                   {"Id": "b", "Size": 4_000_000, "SharedSize": 1_000_000, "Containers": 0}],
        "Containers": [{"State": "running", "SizeRw": 1000}, {"State": "exited", "SizeRw": 500},
                       {"State": "created"}],
        "Volumes": [{"UsageData": {"Size": 4096, "RefCount": 1}},
                    {"UsageData": {"Size": 1024, "RefCount": 0}}],
        "BuildCache": [],
    }  # fmt: skip
    images, containers, volumes, cache = df_rows(doc)
    assert (images["TotalCount"], images["Active"], images["Size"]) == (2, 1, "10MB")
    assert images["Reclaimable"] == "5MB (50%)"  # all but the used image's unique bytes
    assert (containers["TotalCount"], containers["Active"], containers["Size"]) == (3, 1, "1.5kB")
    assert containers["Reclaimable"] == "500B (33%)"
    assert (volumes["TotalCount"], volumes["Active"], volumes["Reclaimable"]) == (
        2, 1, "1.024kB (20%)")  # fmt: skip
    assert cache == {"Type": "Build Cache", "TotalCount": 0, "Active": 0, "Size": "0B",
                     "Reclaimable": "0B"}  # fmt: skip
    empty = df_rows({})
    assert [r["Reclaimable"] for r in empty] == ["0B"] * 4


def test_bytes_size_is_go_units_binary() -> None:
    assert bytes_size(0) == "0B"
    assert bytes_size(1536) == "1.5KiB"
    assert bytes_size(25_275_953_152) == "23.54GiB"


def test_info_text_layout() -> None:
    doc = {
        "Containers": 3, "ContainersRunning": 1, "ContainersPaused": 0, "ContainersStopped": 2,
        "Images": 4, "ServerVersion": "0.1.0", "Driver": "overlay",
        "DriverStatus": [["Backing Filesystem", "ext4"]], "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs", "CgroupVersion": "2",
        "Plugins": {"Volume": ["local"], "Network": ["host", "null"], "Log": ["json-file"]},
        "Runtimes": {"sampan-runtime": {}}, "DefaultRuntime": "sampan-runtime",
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
        "KernelVersion": "6.1", "OperatingSystem": "Debian", "OSType": "linux",
        "Architecture": "x86_64", "NCPU": 2, "MemTotal": 2 << 30, "Name": "vm", "ID": "x",
        "DockerRootDir": "/var/lib/sampan", "Debug": False, "ExperimentalBuild": False,
        "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": ["https://m"],
                           "IndexConfigs": {"reg:5000": {"Secure": False}}},
        "LiveRestoreEnabled": False,
    }  # fmt: skip
    text = info_text(doc)
    assert text.startswith(
        "Server:\n Containers: 3\n  Running: 1\n  Paused: 0\n  Stopped: 2\n Images: 4\n"
        " Server Version: 0.1.0\n Storage Driver: overlay\n  Backing Filesystem: ext4\n"
        " Logging Driver: json-file\n Cgroup Driver: cgroupfs\n Cgroup Version: 2\n"
    )
    assert " Security Options:\n  seccomp\n   Profile: builtin\n  cgroupns\n" in text
    assert " Total Memory: 2GiB\n" in text and " Debug Mode: false\n" in text
    assert " Insecure Registries:\n  127.0.0.0/8\n  reg:5000\n" in text
    assert " Registry Mirrors:\n  https://m\n" in text
    assert text.endswith(" Live Restore Enabled: false\n")


def test_version_text_without_and_with_a_server() -> None:
    client = {"Version": "0.1.0", "ApiVersion": "1.41", "GoVersion": "python3.11.2",
              "Os": "linux", "Arch": "amd64", "Context": "default"}  # fmt: skip
    alone = version_text(client, None)
    assert alone.splitlines() == ["Client:", " Version:           0.1.0",
                                  " API version:       1.41", " Python version:    3.11.2",
                                  " OS/Arch:           linux/amd64",
                                  " Context:           default"]  # fmt: skip
    server = {"Platform": {"Name": "sampan 0.1.0"}, "Components": [{
        "Name": "Engine", "Version": "0.1.0", "Details": {
            "ApiVersion": "1.41", "MinAPIVersion": "1.24", "GoVersion": "python3.11.2",
            "Os": "linux", "Arch": "amd64", "Experimental": "false"}}]}  # fmt: skip
    both = version_text(client, server)
    assert both.startswith(alone + "\nServer: sampan 0.1.0\n Engine:\n  Version:          0.1.0\n")
    assert "  API version:      1.41 (minimum version 1.24)\n" in both
    assert "  Python version:   3.11.2\n" in both


class FakeResponse:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.data = b"".join(json.dumps(d).encode() + b"\r\n" for d in docs)
        self.closed = False

    def lines(self) -> Any:
        yield from (line for line in self.data.split(b"\r\n") if line)

    def close(self) -> None:
        self.closed = True


PULL = [
    {"status": "Pulling from library/busybox", "id": "latest"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "9ad63333ebc9"},
    {"status": "Downloading", "progressDetail": {"current": 1024, "total": 2048},
     "progress": "[==>   ]", "id": "9ad63333ebc9"},
    {"status": "Pull complete", "progressDetail": {}, "id": "9ad63333ebc9"},
    {"status": "Digest: sha256:" + "12" * 32},
    {"status": "Status: Downloaded newer image for busybox:latest"},
]  # fmt: skip


def test_the_progress_stream_off_a_terminal_is_plain_lines() -> None:
    out = io.StringIO()
    response = FakeResponse(PULL)
    cli_client.follow_progress(response, make_progress(out, tty=False))  # type: ignore[arg-type]
    assert out.getvalue().splitlines() == [
        "latest: Pulling from library/busybox",
        "9ad63333ebc9: Pulling fs layer",
        "9ad63333ebc9: Pull complete",
        "Digest: sha256:" + "12" * 32,
        "Status: Downloaded newer image for busybox:latest",
    ]
    assert response.closed


def test_the_progress_stream_on_a_terminal_redraws_bars() -> None:
    out = io.StringIO()
    cli_client.follow_progress(FakeResponse(PULL), make_progress(out, tty=True))  # type: ignore[arg-type]
    text = out.getvalue()
    assert "9ad63333ebc9: Downloading [" in text and "1.024kB/2.048kB" in text
    assert "\x1b[1A\r\x1b[2K9ad63333ebc9: Pull complete" in text  # the layer's line, in place


def test_the_progress_streams_error_and_aux() -> None:
    docs = [
        {"status": "The push refers to repository [r/x]"},
        {"progressDetail": {}, "aux": {"Tag": "v1", "Digest": "sha256:1", "Size": 5}},
    ]
    aux = cli_client.follow_progress(FakeResponse(docs), make_progress(io.StringIO(), tty=False))  # type: ignore[arg-type]
    assert aux == [{"Tag": "v1", "Digest": "sha256:1", "Size": 5}]
    failing = FakeResponse(
        [*PULL[:2], {"errorDetail": {"message": "disk full"}, "error": "disk full"}]
    )
    with pytest.raises(SampanError, match=r"^disk full$"):
        cli_client.follow_progress(failing, make_progress(io.StringIO(), tty=False))  # type: ignore[arg-type]
    assert failing.closed


def test_registry_auth_header_from_config_json(tmp_path: Any) -> None:
    from sampan.image.dockerconfig import store_credentials

    assert cli_client.registry_auth(str(tmp_path), "127.0.0.1:5000") == {}
    store_credentials("127.0.0.1:5000", "alice", "p?a>ss", str(tmp_path))
    header = cli_client.registry_auth(str(tmp_path), "127.0.0.1:5000")["X-Registry-Auth"]
    assert "+" not in header and "/" not in header  # base64url, as docker sends it
    padded = header.replace("-", "+").replace("_", "/")
    doc = json.loads(base64.b64decode(padded + "=" * (-len(padded) % 4)))
    assert doc == {"serveraddress": "127.0.0.1:5000", "username": "alice", "password": "p?a>ss"}
