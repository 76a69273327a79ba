"""runtime.query: size and duration parsing, and ``list`` over a state root."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sampan.errors import InvalidArgument
from sampan.runtime import query
from sampan.runtime.query import _interval, list_containers, parse_bytes
from sampan.runtime.state import ContainerState, proc_start_time

# -- parse_bytes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("1024", 1024),
        ("-1", -1),
        (" -1 ", -1),
        ("10b", 10),
        ("1k", 1024),
        ("1K", 1024),
        ("1kb", 1024),
        ("1KB", 1024),
        ("64m", 64 << 20),
        ("64mb", 64 << 20),
        ("2g", 2 << 30),
        ("1t", 1 << 40),
        ("1.5k", 1536),
        ("0.5g", 512 << 20),
        (" 8m ", 8 << 20),
    ],
)
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes(text, "--memory") == value


@pytest.mark.parametrize("text", ["", "b", "m", "kb", "abc", "1x", "1mm", "m1", "1kbb"])
def test_parse_bytes_not_a_size(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_bytes(text, "--memory")
    assert str(info.value) == f"--memory {text!r}: not a size"


@pytest.mark.parametrize("text", ["-2", "-1k", "-0.5m"])
def test_parse_bytes_negative(text: str) -> None:
    with pytest.raises(InvalidArgument, match="must not be negative"):
        parse_bytes(text, "--memory-swap")


@pytest.mark.parametrize("text", ["nan", "inf", "infm"])
def test_parse_bytes_non_finite(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_bytes(text, "--memory")


# -- _interval ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("500ms", 0.5), ("1.5s", 1.5), ("2m", 120.0), ("1h", 3600.0)],
)
def test_interval(text: str, seconds: float) -> None:
    assert _interval(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "ms", "xs", "5d", "1m30s"])
def test_interval_refused(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        _interval(text)
    assert str(info.value) == f"--interval {text!r}: want a duration like 5s or 500ms"


@pytest.mark.parametrize("text", ["-1s", "0s", "0ms"])
def test_interval_must_be_positive(text: str) -> None:
    with pytest.raises(InvalidArgument):
        _interval(text)


# -- list_containers ------------------------------------------------------------------


def save(root: Path, cid: str, alive: bool, **record: object) -> None:
    ContainerState.reserve(str(root), cid)
    pid = os.getpid()
    start = proc_start_time(pid)
    assert start is not None
    record.setdefault("bundle", f"/bundles/{cid}")
    record.setdefault("created", "2024-01-01T00:00:00Z")
    ContainerState(
        str(root), cid, {"pid": pid, "start_time": start if alive else start + 1, **record}
    ).save()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    save(tmp_path, "web", alive=True, owner="alice")
    save(tmp_path, "db", alive=False)
    return tmp_path


def test_list_table(root: Path) -> None:
    out = list_containers(str(root), "table", False)
    lines = out.splitlines()
    assert out.endswith("\n")
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert lines[1].split() == ["db", "0", "stopped", "/bundles/db", "2024-01-01T00:00:00Z", "root"]
    assert lines[2].split() == [
        "web",
        str(os.getpid()),
        "created",
        "/bundles/web",
        "2024-01-01T00:00:00Z",
        "alice",
    ]


def test_list_table_columns_line_up(root: Path) -> None:
    lines = list_containers(str(root), "table", False).splitlines()
    for word in ("PID", "STATUS", "BUNDLE", "CREATED", "OWNER"):
        col = lines[0].index(word)
        for line in lines[1:]:
            assert line[col - 1] == " " and line[col] != " ", (word, line)


def test_list_table_widens_for_long_values(tmp_path: Path) -> None:
    long_bundle = "/" + "b" * 40
    save(tmp_path, "x", alive=False, bundle=long_bundle)
    lines = list_containers(str(tmp_path), "table", False).splitlines()
    assert lines[0].index("CREATED") > lines[1].index(long_bundle) + len(long_bundle)


def test_list_json(root: Path) -> None:
    rows = json.loads(list_containers(str(root), "json", False))
    assert [r["id"] for r in rows] == ["db", "web"]
    assert rows[0]["status"] == "stopped" and rows[0]["pid"] == 0
    assert rows[1]["status"] == "created" and rows[1]["pid"] == os.getpid()
    assert rows[1]["owner"] == "alice"
    assert rows[1]["bundle"] == "/bundles/web"


def test_list_quiet(root: Path) -> None:
    assert list_containers(str(root), "table", True) == "db\nweb\n"
    assert list_containers(str(root), "json", True) == "db\nweb\n"


def test_list_empty(tmp_path: Path) -> None:
    assert list_containers(str(tmp_path), "json", False) == "[]\n"
    assert list_containers(str(tmp_path), "table", True) == ""
    assert list_containers(str(tmp_path), "table", False).count("\n") == 1


def test_list_bad_format(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="--format 'yaml': want table or json"):
        list_containers(str(tmp_path), "yaml", False)


def test_list_skips_a_malformed_record(root: Path) -> None:
    ContainerState.reserve(str(root), "broken")
    (root / "broken" / "state.json").write_text("{truncated")
    assert list_containers(str(root), "table", True) == "db\nweb\n"


def test_list_skips_a_container_deleted_meanwhile(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query, "list_ids", lambda r: ["db", "gone", "web"])
    assert list_containers(str(root), "table", True) == "db\nweb\n"
