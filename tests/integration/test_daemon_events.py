"""`docker events` against `sampan daemon`: history with --since/--until, live streams with
filters, docker's line and JSON formats, sampan's own CLI; and the filter rules themselves."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from typing import Any

import pytest

from sampan.api.errors import BadRequest
from sampan.api.events import matches, parse_filters
from tests.integration.daemon_fixtures import REPO, SampanDaemon, busybox_daemon, needs_docker_cli

daemon = busybox_daemon("events")


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@needs_docker_cli
def test_since_until_shows_the_lifecycle_in_order(daemon: SampanDaemon) -> None:
    since = f"{time.time() - 1:.3f}"
    cid = daemon.docker("run", "--name", "ev1", "--label", "team=a", "busybox",
                        "sh", "-c", "exit 4", check=False).stdout.strip()  # fmt: skip
    cid = json.loads(daemon.docker("inspect", "ev1").stdout)[0]["Id"]
    daemon.docker("rm", "ev1")
    until = f"{time.time() + 0.2:.3f}"
    time.sleep(0.3)
    done = daemon.docker("events", "--since", since, "--until", until, "--filter",
                         f"container={cid}", "--format", "{{json .}}", timeout=20)  # fmt: skip
    events = _json_lines(done.stdout)
    actions = [e["Action"] for e in events if e["Action"] != "attach"]
    assert actions == ["create", "start", "die", "destroy"], actions
    for e in events:
        assert e["Type"] == "container" and e["Actor"]["ID"] == cid and e["id"] == cid
        attrs = e["Actor"]["Attributes"]
        assert attrs["name"] == "ev1" and attrs["image"] == "busybox" and attrs["team"] == "a"
        assert e["status"] == e["Action"] and e["from"] == "busybox" and e["scope"] == "local"
        assert e["time"] == e["timeNano"] // 10**9
    die = next(e for e in events if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "4"
    stamps = [e["timeNano"] for e in events]
    assert stamps == sorted(stamps)
    # docker's default line: time, type, action, id, sorted attributes
    plain = daemon.docker("events", "--since", since, "--until", until, "--filter",
                          f"container={cid}", "--filter", "event=die").stdout  # fmt: skip
    assert plain.count("\n") == 1
    stamp, rest = plain.split(" ", 1)
    assert len(stamp) >= 30 and stamp[10] == "T" and stamp[19] == "." and stamp[29] in "Z+-"
    ran = die["Actor"]["Attributes"]["execDuration"]
    assert rest == (f"container die {cid} (execDuration={ran}, exitCode=4, image=busybox, "
                    "name=ev1, team=a)\n")  # fmt: skip
    # relative times, a template, and a label filter
    templ = daemon.docker("events", "--since", "1m", "--until", until, "--filter", "label=team=a",
                          "--filter", "event=destroy", "--format", "{{.Status}} {{.ID}} "
                          "{{.Actor.Attributes.name}}").stdout  # fmt: skip
    assert f"destroy {cid} ev1" in templ.splitlines()


@needs_docker_cli
def test_streaming_with_an_event_filter(daemon: SampanDaemon) -> None:
    proc = subprocess.Popen(
        ["docker", "events", "--filter", "event=start", "--format", "{{json .}}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=daemon.env(),
    )  # fmt: skip
    try:
        time.sleep(0.5)  # the stream is open before the container starts
        cid = daemon.docker("run", "-d", "--name", "ev2", "busybox", "sleep", "60").stdout.strip()
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready, "no event within 10 s"
        event = json.loads(proc.stdout.readline())
        assert (event["Action"], event["Actor"]["ID"]) == ("start", cid)
        daemon.docker("rm", "-f", "ev2")
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        assert not ready  # kill, die, destroy are filtered out
    finally:
        proc.terminate()
        proc.wait(10)


@needs_docker_cli
def test_until_in_the_future_ends_the_stream(daemon: SampanDaemon) -> None:
    started = time.monotonic()
    until = f"{time.time() + 1.5:.3f}"
    done = daemon.docker("events", "--until", until, "--filter", "type=volume", timeout=20)
    took = time.monotonic() - started
    assert done.returncode == 0 and 1.0 <= took < 10, took


def test_sampan_events_cli(daemon: SampanDaemon) -> None:
    since = f"{time.time() - 1:.3f}"
    cid = daemon.docker("create", "--name", "ev3", "busybox", "true").stdout.strip()
    daemon.docker("rename", "ev3", "ev4")
    daemon.docker("rm", "ev4")
    cli = [sys.executable, "-m", "sampan.cli", "-H", daemon.host, "events", "--since", since,
           "--until", "0s", "--filter", f"container={cid}"]  # fmt: skip
    lines = subprocess.run(cli, capture_output=True, text=True, cwd=REPO, timeout=20,
                           check=True).stdout.splitlines()  # fmt: skip
    assert [line.split(" ")[2] for line in lines] == ["create", "rename", "destroy"]
    assert lines[1].endswith(f"{cid} (image=busybox, name=ev4, oldName=/ev3)")
    raw = subprocess.run([*cli, "--format", "{{json .}}"], capture_output=True, text=True,
                         cwd=REPO, timeout=20, check=True).stdout  # fmt: skip
    assert [e["Action"] for e in _json_lines(raw)] == ["create", "rename", "destroy"]


def test_bad_filters_and_times_are_400(daemon: SampanDaemon) -> None:
    for query in ('filters={"bogus":["x"]}', 'filters={"type":["boat"]}', "since=yesterday"):
        status, _, body = daemon.api("GET", f"/events?{query}&until=1")
        assert status == 400, (query, body)
        assert json.loads(body)["message"]
    status, _, body = daemon.api("GET", "/events?since=0&until=1")
    assert status == 200 and body == b""


def test_client_gone_ends_the_stream(daemon: SampanDaemon) -> None:
    import socket

    def threads() -> int:
        return len(os.listdir(f"/proc/{daemon.proc.pid}/task"))  # type: ignore[union-attr]

    socks = []
    for _ in range(5):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(str(daemon.socket))
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")  # each stream is being served
        socks.append(sock)
    during = threads()
    for sock in socks:
        sock.close()
    deadline = time.monotonic() + 10
    while threads() > during - 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert threads() <= during - 5  # the five streams' threads ended


# -- the filter rules (no daemon) -----------------------------------------------------------


def _event(kind: str, action: str, actor: str, **attrs: str) -> dict[str, Any]:
    return {"Type": kind, "Action": action, "Actor": {"ID": actor, "Attributes": attrs},
            "scope": "local", "time": 1, "timeNano": 10**9}  # fmt: skip


def test_filter_rules() -> None:
    start = _event("container", "start", "abc123", name="web", image="busybox:latest", tier="f")
    health = _event("container", "health_status: healthy", "abc123", name="web", image="b")
    volume = _event("volume", "create", "data", driver="local")
    image = _event("image", "tag", "sha256:99", name="busybox:1")
    assert matches(start, {})
    assert matches(start, {"event": ["start", "die"]}) and not matches(start, {"event": ["die"]})
    assert matches(health, {"event": ["health_status"]})  # a prefix, as docker's
    assert not matches(health, {"event": ["health"]})
    assert matches(start, {"container": ["web"]}) and matches(start, {"container": ["abc"]})
    assert not matches(start, {"container": ["db"]}) and not matches(volume, {"container": ["w"]})
    assert matches(start, {"image": ["busybox"]}) and matches(start, {"image": ["busybox:latest"]})
    assert matches(image, {"image": ["busybox"]}) and not matches(image, {"image": ["alpine"]})
    assert matches(start, {"label": ["tier"]}) and matches(start, {"label": ["tier=f"]})
    assert not matches(start, {"label": ["tier=b"]})
    assert not matches(start, {"label": ["tier", "zone"]})  # every label must match
    assert matches(volume, {"type": ["volume"], "volume": ["data"]})
    assert not matches(volume, {"type": ["container"]})
    assert matches(start, {"type": ["container", "image"], "event": ["start"]})
    for bad in ({"bogus": ["x"]}, {"type": ["boat"]}, {"scope": ["galaxy"]}):
        with pytest.raises(BadRequest):
            parse_filters(bad)
