"""api/client.py without a daemon: docker's stream framing."""

from __future__ import annotations

import time

from sampan.api.client import demux


def _frames(count: int, payload: bytes, stream: int = 1) -> bytes:
    head = bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big")
    return (head + payload) * count


def _chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_demux_frames_across_chunks() -> None:
    data = _frames(3, b"out\n") + _frames(2, b"err\n", 2) + _frames(1, b"x" * 100_000)
    for size in (1, 7, 8, 9, 4096, len(data)):
        got = list(demux(_chunked(data, size)))
        assert got == [(1, b"out\n")] * 3 + [(2, b"err\n")] * 2 + [(1, b"x" * 100_000)]
    assert list(demux([_frames(1, b"abcdef")[:11]])) == [(1, b"abc")]  # cut off: as far as it came


def test_demux_is_linear_in_the_stream() -> None:
    """`sampan logs` of a big log: many small frames per 64 KiB read, and a frame bigger
    than many reads, each byte copied a bounded number of times (the rest of the buffer
    was copied for each frame: seconds a megabyte)."""
    small = _frames(400_000, b"line\n")  # 5.2 MB in 13-byte frames
    big = _frames(1, b"y" * (32 << 20))  # one 32 MiB frame
    start = time.monotonic()
    count = sum(1 for _ in demux(_chunked(small, 65536)))
    frames = list(demux(_chunked(big, 65536)))
    took = time.monotonic() - start
    assert count == 400_000 and len(frames) == 1 and len(frames[0][1]) == 32 << 20
    assert took < 10, f"demux took {took:.1f}s"
