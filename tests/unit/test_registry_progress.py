"""Pull/push progress: live lines on a terminal (checked through a tiny VT emulator), plain
status lines otherwise, nothing when quiet."""

from __future__ import annotations

import io
import threading

from sampan.image.registry import progress as p


def render(output: str) -> list[str]:
    """The screen after OUTPUT: handles \\n, \\r, ESC[nA, ESC[nB and ESC[2K."""
    screen: list[str] = [""]
    row = col = 0
    i = 0
    while i < len(output):
        ch = output[i]
        if ch == "\x1b":
            j = i + 2
            while not output[j].isalpha():
                j += 1
            arg, op = output[i + 2 : j], output[j]
            n = int(arg) if arg else 1
            if op == "A":
                row -= n
            elif op == "B":
                row += n
            elif op == "K":
                screen[row] = ""
            i = j + 1
            while len(screen) <= row:
                screen.append("")
            continue
        if ch == "\n":
            row += 1
            col = 0
            while len(screen) <= row:
                screen.append("")
        elif ch == "\r":
            col = 0
        else:
            line = screen[row].ljust(col)
            screen[row] = line[:col] + ch + line[col + 1 :]
            col += 1
        i += 1
    assert row == len(screen) - 1, "the cursor ends below the last line"
    return screen[:-1]


def test_human_size_and_bar() -> None:
    assert p.human_size(0) == "0B"
    assert p.human_size(999) == "999B"
    assert p.human_size(1_049_000) == "1.049MB"
    assert p.human_size(2_500_000_000) == "2.5GB"
    bar = p.progress_bar(1_000_000, 4_000_000)
    assert bar.startswith("[" + "=" * 12 + ">" + " " * 37 + "]")
    assert bar.endswith("    1MB/4MB")
    assert p.progress_bar(5, 5).startswith("[" + "=" * 50 + "]")
    assert p.progress_bar(7, None) == "7B"


def test_terminal_redraws_lines_in_place() -> None:
    out = io.StringIO()
    t = p.TerminalProgress(out)
    p.REDRAW_INTERVAL = 0.0
    try:
        t.message("latest: Pulling from library/busybox")
        t.layer("aaaaaaaaaaaa", "Pulling fs layer")
        t.layer("bbbbbbbbbbbb", "Pulling fs layer")
        t.layer("aaaaaaaaaaaa", "Downloading", 500_000, 1_000_000)
        t.layer("bbbbbbbbbbbb", "Downloading", 10, 20)
        t.layer("aaaaaaaaaaaa", "Pull complete")
        t.message("Digest: sha256:abc")
        t.layer("bbbbbbbbbbbb", "Pull complete")
    finally:
        p.REDRAW_INTERVAL = 0.1
    assert render(out.getvalue()) == [
        "latest: Pulling from library/busybox",
        "aaaaaaaaaaaa: Pull complete",
        "bbbbbbbbbbbb: Pull complete",
        "Digest: sha256:abc",
    ]


def test_terminal_rate_limits_byte_updates() -> None:
    out = io.StringIO()
    t = p.TerminalProgress(out)
    t.layer("aaaaaaaaaaaa", "Downloading", 0, 1000)
    for n in range(1, 1000):
        t.layer("aaaaaaaaaaaa", "Downloading", n, 1000)
    assert out.getvalue().count("\x1b[2K") < 5  # not a redraw per chunk
    t.layer("aaaaaaaaaaaa", "Downloading", 1000, 1000)  # the last one always shows
    assert render(out.getvalue())[0].endswith("1kB/1kB")


def test_plain_prints_status_changes_only() -> None:
    out = io.StringIO()
    plain = p.make_progress(out)  # a StringIO is not a terminal
    assert isinstance(plain, p.PlainProgress)
    plain.message("latest: Pulling from library/busybox")
    plain.layer("aaaaaaaaaaaa", "Pulling fs layer")
    plain.layer("aaaaaaaaaaaa", "Downloading", 1, 10)
    plain.layer("aaaaaaaaaaaa", "Downloading", 5, 10)
    plain.layer("aaaaaaaaaaaa", "Download complete")
    plain.layer("aaaaaaaaaaaa", "Download complete")
    plain.layer("aaaaaaaaaaaa", "Pull complete")
    assert out.getvalue() == (
        "latest: Pulling from library/busybox\n"
        "aaaaaaaaaaaa: Pulling fs layer\n"
        "aaaaaaaaaaaa: Download complete\n"
        "aaaaaaaaaaaa: Pull complete\n"
    )
    assert "\x1b" not in out.getvalue()


def test_quiet_and_tty_choice() -> None:
    out = io.StringIO()
    quiet = p.make_progress(out, quiet=True)
    quiet.message("x")
    quiet.layer("a", "b", 1, 2)
    quiet.close()
    assert out.getvalue() == ""
    assert isinstance(p.make_progress(out, tty=True), p.TerminalProgress)


def test_threads_do_not_interleave_lines() -> None:
    out = io.StringIO()
    t = p.TerminalProgress(out)

    def worker(k: int) -> None:
        for n in range(200):
            t.layer(f"layer{k:07d}", "Downloading", n, 200)
        t.layer(f"layer{k:07d}", "Download complete")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(render(out.getvalue())) == [f"layer{k:07d}: Download complete" for k in range(4)]
