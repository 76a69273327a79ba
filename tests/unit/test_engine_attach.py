"""Units of interactive containers: detach keys, the json-file log with rotation, and the
monitor's attach protocol over a real unix socket (no root, no container: a child process
stands in for the container's init)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from sampan.api.detachkeys import DEFAULT, Scanner, parse
from sampan.engine import logfile
from sampan.errors import InvalidArgument, Unsupported

# -- detach keys -------------------------------------------------------------------------


def test_detach_keys_parse() -> None:
    assert parse("") == DEFAULT == b"\x10\x11"
    assert parse("ctrl-p,ctrl-q") == b"\x10\x11"
    assert (
        parse("ctrl-a,x,ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_")
        == b"\x01x\x00\x1b\x1c\x1d\x1e\x1f"
    )
    assert parse("CTRL-Z") == b"\x1a"
    for bad in ("ctrl-", "ctrl-1", "ab", "ctrl-p,", ",", "ctrl-pp", "é"):
        with pytest.raises(InvalidArgument, match="Invalid detach keys"):
            parse(bad)


def test_scanner_finds_the_sequence_across_reads() -> None:
    s = Scanner(b"\x10\x11")
    assert s.feed(b"ab\x10") == (b"ab", False)
    assert s.feed(b"\x11rest") == (b"", True)
    s = Scanner(b"\x10\x11")
    assert s.feed(b"\x10x") == (b"\x10x", False)  # broken: what was held goes on
    assert s.feed(b"\x10\x10\x11") == (b"\x10", True)
    s = Scanner(b"\x10\x11")
    assert s.feed(b"\x10") == (b"", False)
    assert s.flush() == b"\x10"
    assert Scanner(b"").feed(b"\x10\x11") == (b"\x10\x11", False)  # none: everything passes
    assert Scanner(b"q").feed(b"aqb") == (b"a", True)


# -- the json-file log -------------------------------------------------------------------


def test_ram_sizes_as_go_units() -> None:
    assert logfile.parse_ram_size("1k") == 1024
    assert logfile.parse_ram_size("2MiB") == logfile.parse_ram_size("2mb") == 2 << 20
    assert logfile.parse_ram_size("512") == 512
    assert logfile.parse_ram_size("1.5g") == 3 << 29
    for bad in ("", "abc", "1x", "1..2k", "k"):
        with pytest.raises(InvalidArgument, match="invalid size"):
            logfile.parse_ram_size(bad)


def test_log_config_checks() -> None:
    assert logfile.check_log_config(None) == {}
    ok = {"max-size": "10k", "max-file": "3", "compress": "false"}
    assert logfile.check_log_config(ok) == {"max-size": "10k", "max-file": "3"}
    assert logfile.limits({"max-size": "10k", "max-file": "3"}) == (10240, 3)
    assert logfile.limits({}) == (0, 1)
    with pytest.raises(InvalidArgument, match="less than 1"):
        logfile.check_log_config({"max-size": "1k", "max-file": "0"})
    with pytest.raises(InvalidArgument, match="max-file"):
        logfile.check_log_config({"max-file": "x"})
    with pytest.raises(InvalidArgument, match="together with max-size"):
        logfile.check_log_config({"max-file": "2"})
    with pytest.raises(InvalidArgument, match="unknown log opt 'foo'"):
        logfile.check_log_config({"foo": "1"})
    with pytest.raises(Unsupported, match="compress"):
        logfile.check_log_config({"compress": "true"})
    with pytest.raises(Unsupported, match="labels"):
        logfile.check_log_config({"labels": "a"})
    with pytest.raises(InvalidArgument, match="object of strings"):
        logfile.check_log_config({"max-size": 1})


def _lines(reader: logfile.LogReader) -> list[str]:
    return [data.decode().strip() for _, _, data in reader.entries()]


def test_writer_rotates_and_reader_reads_across(tmp_path: Path) -> None:
    path = str(tmp_path / "c-json.log")
    w = logfile.LogWriter(path, max_size=300, max_files=3)
    for i in range(40):
        w.feed("stdout", f"line-{i}\n".encode(), "2024-01-01T00:00:00Z")
    w.close("2024-01-01T00:00:00Z")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    assert all((tmp_path / n).stat().st_size <= 300 for n in names)
    lines = _lines(logfile.LogReader(path))
    assert lines[-1] == "line-39"
    assert lines == [f"line-{i}" for i in range(40 - len(lines), 40)]


def test_reader_follows_through_rotations(tmp_path: Path) -> None:
    path = str(tmp_path / "c-json.log")
    w = logfile.LogWriter(path, max_size=200, max_files=10)
    reader = logfile.LogReader(path)
    seen: list[str] = []
    for i in range(30):
        w.feed("stderr", f"n{i}\n".encode(), "t")
        if i % 4 == 0:
            seen += _lines(reader)
    seen += _lines(reader)
    assert seen == [f"n{i}" for i in range(30)]


def test_max_file_one_truncates_and_reader_starts_over(tmp_path: Path) -> None:
    path = str(tmp_path / "c-json.log")
    w = logfile.LogWriter(path, max_size=200, max_files=1)
    reader = logfile.LogReader(path)
    for i in range(3):
        w.feed("stdout", f"a{i}\n".encode(), "t")
    assert _lines(reader) == ["a0", "a1", "a2"]
    for i in range(3, 6):
        w.feed("stdout", f"a{i}\n".encode(), "t")
    assert os.listdir(tmp_path) == ["c-json.log"]
    assert _lines(reader)[-1] == "a5"


def test_writer_splits_long_lines_and_keeps_partial_ones(tmp_path: Path) -> None:
    path = str(tmp_path / "c-json.log")
    w = logfile.LogWriter(path)
    w.feed("stdout", b"x" * (logfile.SPLIT_AT + 5), "t")
    w.feed("stdout", b"tail", "t")
    w.close("t")
    docs = [json.loads(line) for line in Path(path).read_text().splitlines()]
    assert [len(d["log"]) for d in docs] == [logfile.SPLIT_AT, 9]
    assert docs[1]["log"].endswith("xxxxxtail")


# -- the monitor's attach protocol ---------------------------------------------------------


def test_monitor_pump_serves_clients(tmp_path: Path) -> None:
    from sampan.engine import monitor

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()
    child = subprocess.Popen(
        ["sh", "-c", "read x; echo got:$x; echo oops >&2; read y; exit 4"],
        stdin=in_r, stdout=out_w, stderr=err_w,
    )  # fmt: skip
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    log = logfile.LogWriter(str(tmp_path / "c-json.log"))
    pump = monitor._Pump(monitor._listen(str(tmp_path)), log, -1, in_w)
    pump.outputs[out_r] = "stdout"
    pump.outputs[err_r] = "stderr"
    assert oct(os.stat(tmp_path / "attach.sock").st_mode & 0o777) == "0o600"
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client.connect(str(tmp_path / "attach.sock"))
    client.settimeout(10)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(pump.run(child.pid)))
    thread.start()
    client.send(b"r\x00\x10\x00\x20")  # a resize without a TTY: ignored
    client.send(b"ihello\n")
    got = {client.recv(100), client.recv(100)}
    assert got == {b"1got:hello\n", b"2oops\n"}
    client.send(b"o")  # StdinOnce: closing this connection closes stdin: `read y` ends
    client.close()
    thread.join(10)
    assert result == [4]
    pump.finish()
    log.close("t")
    lines = [json.loads(s) for s in (tmp_path / "c-json.log").read_text().splitlines()]
    assert {(d["stream"], d["log"]) for d in lines} == {("stdout", "got:hello\n"),
                                                        ("stderr", "oops\n")}  # fmt: skip


def test_exec_start_failure_codes_as_dockerd() -> None:
    from sampan.engine.exec import _start_failure_code

    assert _start_failure_code('exec: "x": executable file not found in $PATH') == 127
    assert _start_failure_code('exec: "/a/b": no such file or directory') == 127
    assert _start_failure_code("mount: not a directory") == 127
    assert _start_failure_code('exec: "/etc/passwd": permission denied') == 126
    assert _start_failure_code('exec: "/tmp": is a directory') == 126
    assert _start_failure_code("something else broke") == 128
