"""docker's JSON progress stream: lazy start, line shapes, errors."""

from __future__ import annotations

import json

from sampan.api.progress import JSONProgress, error_line


class Sink:
    def __init__(self) -> None:
        self.data = b""
        self.starts = 0

    def start(self):  # type: ignore[no-untyped-def]
        self.starts += 1
        return self.write

    def write(self, data: bytes) -> None:
        self.data += data

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.data.split(b"\r\n") if line]


def test_messages_wait_for_the_first_layer() -> None:
    sink = Sink()
    progress = JSONProgress(sink.start)
    progress.message("latest: Pulling from library/busybox")
    assert sink.starts == 0 and not progress.started  # a failure now is an HTTP error
    progress.layer("9ad63333ebc9", "Pulling fs layer")
    progress.layer("9ad63333ebc9", "Downloading", 1000, 2000)
    progress.layer("9ad63333ebc9", "Downloading", 1500, 2000)  # within the interval: dropped
    progress.layer("9ad63333ebc9", "Downloading", 2000, 2000)  # done: always sent
    progress.message("Digest: sha256:00")
    progress.finish()
    assert sink.starts == 1
    lines = sink.lines()
    assert lines[0] == {"status": "Pulling from library/busybox", "id": "latest"}
    assert lines[1] == {"status": "Pulling fs layer", "progressDetail": {}, "id": "9ad63333ebc9"}
    assert lines[2]["progressDetail"] == {"current": 1000, "total": 2000}
    assert str(lines[2]["progress"]).startswith("[=========================>")
    assert lines[3]["progressDetail"] == {"current": 2000, "total": 2000}
    assert lines[4] == {"status": "Digest: sha256:00"}
    assert len(lines) == 5


def test_finish_sends_pending_messages() -> None:
    sink = Sink()
    progress = JSONProgress(sink.start)
    progress.message("Status: Image is up to date for busybox:latest")
    progress.finish()
    assert sink.lines() == [{"status": "Status: Image is up to date for busybox:latest"}]


def test_errors() -> None:
    sink = Sink()
    progress = JSONProgress(sink.start)
    progress.layer("abc", "Pushing", 1, 10)
    progress.error("blob upload unknown")
    assert sink.lines()[-1] == {
        "errorDetail": {"message": "blob upload unknown"},
        "error": "blob upload unknown",
    }
    assert json.loads(error_line("x")) == {"errorDetail": {"message": "x"}, "error": "x"}
