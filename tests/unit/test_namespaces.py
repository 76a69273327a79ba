"""runtime.namespaces.NamespacePlan: new vs joined, the join order, and path checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sampan.errors import InvalidArgument, NotFound
from sampan.linux.constants import CLONE_NEWCGROUP, CLONE_NEWNS, CLONE_NEWUSER, NAMESPACES
from sampan.runtime.namespaces import JOIN_ORDER, NamespacePlan, of_process


def flag(kind: str) -> int:
    return NAMESPACES[kind][0]


def test_empty() -> None:
    plan = NamespacePlan([])
    assert plan.new_flags == 0
    assert plan.join == []
    assert not (plan.new_user or plan.new_cgroup or plan.new_mount or plan.in_userns)


def test_new_namespaces_are_flags() -> None:
    plan = NamespacePlan([{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")])
    expected = flag("pid") | flag("network") | flag("ipc") | flag("uts") | CLONE_NEWNS
    assert plan.new_flags == expected
    assert plan.join == []
    assert plan.new_mount
    assert not plan.new_user and not plan.new_cgroup and not plan.in_userns


def test_joined_namespaces_are_paths() -> None:
    plan = NamespacePlan(
        [{"type": "pid"}, {"type": "network", "path": "/run/netns/x"}, {"type": "mount"}]
    )
    assert plan.new_flags == flag("pid") | CLONE_NEWNS
    assert plan.join == [("network", "/run/netns/x")]


def test_empty_path_means_new() -> None:
    plan = NamespacePlan([{"type": "ipc", "path": ""}])
    assert plan.new_flags == flag("ipc")
    assert plan.join == []


def test_join_order_user_first_mount_last() -> None:
    kinds = ["mount", "cgroup", "pid", "network", "uts", "ipc", "user", "time"]
    plan = NamespacePlan([{"type": k, "path": f"/ns/{k}"} for k in kinds])
    assert [kind for kind, _ in plan.join] == list(JOIN_ORDER)
    assert plan.join[0] == ("user", "/ns/user")
    assert plan.join[-1] == ("mount", "/ns/mount")
    assert plan.new_flags == 0
    assert plan.in_userns
    assert not plan.new_user


def test_join_order_covers_every_type() -> None:
    assert sorted(JOIN_ORDER) == sorted(NAMESPACES)


def test_new_user() -> None:
    plan = NamespacePlan([{"type": "user"}, {"type": "mount"}])
    assert plan.new_user and plan.in_userns
    assert plan.new_flags & CLONE_NEWUSER


def test_joined_user_is_in_userns_but_not_new() -> None:
    plan = NamespacePlan([{"type": "user", "path": "/proc/1/ns/user"}])
    assert plan.in_userns and not plan.new_user


def test_new_cgroup() -> None:
    plan = NamespacePlan([{"type": "cgroup"}])
    assert plan.new_cgroup and plan.new_flags == CLONE_NEWCGROUP
    assert not NamespacePlan([{"type": "cgroup", "path": "/x"}]).new_cgroup


def test_kinds() -> None:
    plan = NamespacePlan([{"type": "pid"}, {"type": "uts", "path": "/x"}])
    assert plan.kinds == {"pid", "uts"}


# -- check_paths ----------------------------------------------------------------------


def test_check_paths_accepts_our_own_namespaces() -> None:
    NamespacePlan(
        [
            {"type": "uts", "path": "/proc/self/ns/uts"},
            {"type": "network", "path": "/proc/self/ns/net"},
            {"type": "mount", "path": "/proc/self/ns/mnt"},
        ]
    ).check_paths()


def test_check_paths_missing(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    plan = NamespacePlan([{"type": "network", "path": missing}])
    with pytest.raises(NotFound) as info:
        plan.check_paths()
    assert str(info.value) == (
        f"config.json: linux.namespaces: network path {missing} does not exist"
    )


def test_check_paths_wrong_type() -> None:
    plan = NamespacePlan([{"type": "network", "path": "/proc/self/ns/uts"}])
    with pytest.raises(InvalidArgument) as info:
        plan.check_paths()
    assert str(info.value) == (
        "config.json: linux.namespaces: network path /proc/self/ns/uts:"
        " is a uts namespace, not network"
    )


def test_check_paths_uses_the_proc_name_of_mount() -> None:
    with pytest.raises(InvalidArgument, match="is a mount namespace, not pid"):
        NamespacePlan([{"type": "pid", "path": "/proc/self/ns/mnt"}]).check_paths()


def test_check_paths_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "link"
    os.symlink(tmp_path / "gone", link)
    with pytest.raises(NotFound):
        NamespacePlan([{"type": "ipc", "path": str(link)}]).check_paths()


def test_check_paths_with_nothing_to_join() -> None:
    NamespacePlan([{"type": "pid"}, {"type": "mount"}]).check_paths()


def test_of_process_self_is_empty() -> None:
    assert of_process(os.getpid(), set(NAMESPACES)) == []
