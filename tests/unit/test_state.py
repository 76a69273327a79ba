"""runtime.state: ids, the record on disk, and the status derived from the kernel."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from sampan.errors import AlreadyExists, InvalidArgument, NotFound
from sampan.runtime.state import (
    OCI_VERSION,
    ContainerState,
    check_id,
    list_ids,
    proc_start_time,
    rfc3339_now,
)


@pytest.mark.parametrize(
    "cid", ["a", "abc", "A-b_c.d+e", "0", "x" * 1024, "..a", "a..", "...", "-leading-dash"]
)
def test_check_id_accepts(cid: str) -> None:
    assert check_id(cid) == cid


@pytest.mark.parametrize(
    "cid", ["", ".", "..", "a/b", "/abs", "a b", "tab\t", "new\nline", "é", "x" * 1025, "a:b", "*"]
)
def test_check_id_refuses(cid: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid container id"):
        check_id(cid)


def my_start_time() -> int:
    start = proc_start_time(os.getpid())
    assert start is not None
    return start


def make_state(root: Path, cid: str = "box", **record: Any) -> ContainerState:
    ContainerState.reserve(str(root), cid)
    record.setdefault("bundle", "/bundle")
    return ContainerState(str(root), cid, record)


def test_proc_start_time_of_self_is_stable() -> None:
    assert my_start_time() == my_start_time() > 0


def test_proc_start_time_of_missing_pid() -> None:
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    assert proc_start_time(pid_max + 1) is None


def test_rfc3339_now_shape() -> None:
    stamp = rfc3339_now()
    assert len(stamp) == len("2024-01-01T00:00:00.000000000Z")
    assert stamp[4] == "-" and stamp[10] == "T" and stamp[19] == "." and stamp.endswith("Z")


def test_reserve_makes_a_private_dir(tmp_path: Path) -> None:
    root = tmp_path / "root"
    path = ContainerState.reserve(str(root), "box")
    assert path == f"{root}/box"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert os.listdir(path) == ["exec.fifo"]


def test_reserve_twice_is_already_exists(tmp_path: Path) -> None:
    ContainerState.reserve(str(tmp_path), "box")
    with pytest.raises(AlreadyExists, match="container id 'box' is already in use"):
        ContainerState.reserve(str(tmp_path), "box")


def test_reserve_checks_the_id(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        ContainerState.reserve(str(tmp_path), "../escape")
    assert not (tmp_path.parent / "escape").exists()


def test_save_load_round_trip(tmp_path: Path) -> None:
    config = {"ociVersion": "1.0.2", "annotations": {"k": "v"}, "process": {"args": ["sh"]}}
    state = make_state(
        tmp_path,
        pid=1234,
        bundle="/b",
        rootfs="/b/rootfs",
        created="2024-01-01T00:00:00.000000000Z",
        start_time=99,
        started=True,
        owner="alice",
        config=config,
    )
    state.save()
    loaded = ContainerState.load(str(tmp_path), "box")
    for attr in ContainerState.__slots__:
        assert getattr(loaded, attr) == getattr(state, attr), attr
    assert loaded.dir == f"{tmp_path}/box"
    assert not (tmp_path / "box" / ".state.json.tmp").exists()
    mode = stat.S_IMODE(os.stat(tmp_path / "box" / "state.json").st_mode)
    assert mode == 0o600


def test_save_replaces_the_record(tmp_path: Path) -> None:
    state = make_state(tmp_path, pid=1)
    state.save()
    state.pid = 2
    state.started = True
    state.save()
    loaded = ContainerState.load(str(tmp_path), "box")
    assert (loaded.pid, loaded.started) == (2, True)


def test_record_is_json(tmp_path: Path) -> None:
    make_state(tmp_path, pid=7).save()
    record = json.loads((tmp_path / "box" / "state.json").read_text())
    assert record["id"] == "box"
    assert record["pid"] == 7


def test_defaults_of_a_sparse_record(tmp_path: Path) -> None:
    state = ContainerState(str(tmp_path), "box", {"bundle": "/b"})
    assert (state.pid, state.start_time, state.started) == (0, 0, False)
    assert (state.rootfs, state.created, state.owner, state.config) == ("", "", "", {})


def test_load_missing(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"^container 'ghost' does not exist$"):
        ContainerState.load(str(tmp_path), "ghost")


def test_load_reserved_but_unsaved(tmp_path: Path) -> None:
    ContainerState.reserve(str(tmp_path), "box")
    with pytest.raises(NotFound):
        ContainerState.load(str(tmp_path), "box")


def test_load_bad_id(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        ContainerState.load(str(tmp_path), "a/b")


def test_load_malformed(tmp_path: Path) -> None:
    ContainerState.reserve(str(tmp_path), "box")
    (tmp_path / "box" / "state.json").write_text("{not json")
    with pytest.raises(InvalidArgument, match=f"^{tmp_path}/box/state.json: "):
        ContainerState.load(str(tmp_path), "box")


@pytest.mark.parametrize("text", ["{}", "[]", "null"])
def test_load_json_that_is_not_a_record(tmp_path: Path, text: str) -> None:
    ContainerState.reserve(str(tmp_path), "box")
    (tmp_path / "box" / "state.json").write_text(text)
    with pytest.raises(InvalidArgument):
        ContainerState.load(str(tmp_path), "box")


def test_remove(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    state.save()
    assert stat.S_ISFIFO(os.stat(f"{state.dir}/exec.fifo").st_mode)  # made by reserve
    with open(f"{state.dir}/cgroup", "w") as f:
        f.write("/x")
    state.remove()
    assert not os.path.exists(state.dir)
    state.remove()  # idempotent


# -- status ---------------------------------------------------------------------------


def test_stopped_when_pid_is_zero(tmp_path: Path) -> None:
    state = make_state(tmp_path, pid=0, start_time=my_start_time(), started=True)
    assert not state.alive()
    assert state.status(frozen=False) == "stopped"
    assert state.status() == "stopped"  # no cgroup is looked at


def test_stopped_when_start_time_differs(tmp_path: Path) -> None:
    state = make_state(tmp_path, pid=os.getpid(), start_time=my_start_time() + 1, started=True)
    assert not state.alive()
    assert state.status(frozen=True) == "stopped"


def test_stopped_when_pid_is_gone(tmp_path: Path) -> None:
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) + 1
    state = make_state(tmp_path, pid=pid, start_time=0)
    assert state.status(frozen=False) == "stopped"


def test_created_when_alive_and_not_started(tmp_path: Path) -> None:
    state = make_state(tmp_path, pid=os.getpid(), start_time=my_start_time(), started=False)
    assert state.alive()
    assert state.status(frozen=False) == "created"
    assert state.status() == "created"  # no cgroup is looked at


def test_running_when_started_and_not_frozen(tmp_path: Path) -> None:
    state = make_state(tmp_path, pid=os.getpid(), start_time=my_start_time(), started=True)
    assert state.status(frozen=False) == "running"


def test_paused_when_started_and_frozen(tmp_path: Path) -> None:
    state = make_state(tmp_path, pid=os.getpid(), start_time=my_start_time(), started=True)
    assert state.status(frozen=True) == "paused"


def test_status_reads_the_freezer_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = make_state(tmp_path, pid=os.getpid(), start_time=my_start_time(), started=True)
    calls: list[ContainerState] = []

    def frozen(self: ContainerState) -> bool:
        calls.append(self)
        return True

    monkeypatch.setattr(ContainerState, "_frozen", frozen)
    assert state.status() == "paused"
    assert calls == [state]


# -- oci_state ------------------------------------------------------------------------


def test_oci_state_fields(tmp_path: Path) -> None:
    state = make_state(
        tmp_path,
        pid=os.getpid(),
        start_time=my_start_time(),
        bundle="/b",
        rootfs="/b/rootfs",
        created="2024-01-01T00:00:00Z",
        owner="",
        config={"annotations": {"org.example": "yes"}},
    )
    assert state.oci_state() == {
        "ociVersion": OCI_VERSION,
        "id": "box",
        "pid": os.getpid(),
        "status": "created",
        "bundle": "/b",
        "rootfs": "/b/rootfs",
        "created": "2024-01-01T00:00:00Z",
        "owner": "",
        "annotations": {"org.example": "yes"},
    }


def test_oci_state_stopped_has_pid_zero_and_no_empty_annotations(tmp_path: Path) -> None:
    state = make_state(tmp_path, pid=os.getpid(), start_time=my_start_time() + 1, config={})
    out = state.oci_state()
    assert out["status"] == "stopped"
    assert out["pid"] == 0
    assert "annotations" not in out


def test_oci_state_with_given_status(tmp_path: Path) -> None:
    state = make_state(tmp_path, pid=42, start_time=0)
    assert state.oci_state("running")["status"] == "running"
    assert state.oci_state("running")["pid"] == 42
    assert state.oci_state("stopped")["pid"] == 0


# -- list_ids -------------------------------------------------------------------------


def test_list_ids(tmp_path: Path) -> None:
    for cid in ("zeta", "alpha", "mid"):
        make_state(tmp_path, cid).save()
    ContainerState.reserve(str(tmp_path), "reserved-only")
    (tmp_path / "stray-file").write_text("")
    assert list_ids(str(tmp_path)) == ["alpha", "mid", "zeta"]


def test_list_ids_of_missing_root(tmp_path: Path) -> None:
    assert list_ids(str(tmp_path / "none")) == []
