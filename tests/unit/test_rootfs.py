"""runtime.rootfs, the parts above the syscalls: securejoin, paths and mount option parsing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sampan.linux import constants as C
from sampan.linux.errors import SyscallError
from sampan.runtime.rootfs import (
    MountOptions,
    _make_target,
    _symlink,
    clean_path,
    parse_options,
    securejoin,
)

# -- securejoin ---------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> str:
    r = tmp_path / "root"
    (r / "usr" / "lib").mkdir(parents=True)
    (r / "etc").mkdir()
    (r / "etc" / "hosts").write_text("")
    return str(r)


def test_plain_path(root: str) -> None:
    assert securejoin(root, "/usr/lib") == f"{root}/usr/lib"
    assert securejoin(root, "usr/lib") == f"{root}/usr/lib"


def test_empty_and_slash_are_the_root(root: str) -> None:
    assert securejoin(root, "") == root
    assert securejoin(root, "/") == root
    assert securejoin(root, "/././/") == root


def test_redundant_separators_and_dots(root: str) -> None:
    assert securejoin(root, "//usr/./lib//") == f"{root}/usr/lib"


def test_dotdot_is_clamped_at_the_root(root: str) -> None:
    assert securejoin(root, "/../../etc") == f"{root}/etc"
    assert securejoin(root, "/usr/../../../../etc/hosts") == f"{root}/etc/hosts"
    assert securejoin(root, "..") == root


def test_dotdot_inside(root: str) -> None:
    assert securejoin(root, "/usr/lib/../../etc") == f"{root}/etc"


def test_absolute_symlink_resolves_inside_root(root: str) -> None:
    os.symlink("/etc", f"{root}/usr/lib/etc-link")
    assert securejoin(root, "/usr/lib/etc-link/hosts") == f"{root}/etc/hosts"


def test_absolute_symlink_to_host_path_stays_inside(root: str) -> None:
    os.symlink("/proc/self", f"{root}/escape")
    assert securejoin(root, "/escape/status") == f"{root}/proc/self/status"


def test_relative_symlink_resolves_from_its_directory(root: str) -> None:
    os.symlink("../../etc", f"{root}/usr/lib/rel")
    assert securejoin(root, "/usr/lib/rel/hosts") == f"{root}/etc/hosts"


def test_relative_symlink_cannot_climb_out(root: str) -> None:
    os.symlink("../../../../../../../../tmp", f"{root}/usr/up")
    assert securejoin(root, "/usr/up/x") == f"{root}/tmp/x"


def test_chain_of_symlinks(root: str) -> None:
    os.symlink("b", f"{root}/a")
    os.symlink("/c", f"{root}/b")
    os.symlink("usr/lib", f"{root}/c")
    assert securejoin(root, "/a") == f"{root}/usr/lib"


def test_last_component_symlink_is_followed(root: str) -> None:
    os.symlink("/etc/hosts", f"{root}/hosts")
    assert securejoin(root, "/hosts") == f"{root}/etc/hosts"


def test_dangling_symlink_resolves_to_its_target(root: str) -> None:
    os.symlink("/does/not/exist", f"{root}/dangling")
    assert securejoin(root, "/dangling/more") == f"{root}/does/not/exist/more"


def test_symlink_then_dotdot(root: str) -> None:
    os.symlink("/usr/lib", f"{root}/ul")
    # ".." applies to the resolved path (/usr/lib/..), not to the link's directory
    assert securejoin(root, "/ul/..") == f"{root}/usr"


def test_symlink_to_dot(root: str) -> None:
    os.symlink(".", f"{root}/usr/self")
    assert securejoin(root, "/usr/self/self/lib") == f"{root}/usr/lib"


def test_symlink_loop_raises_eloop(root: str) -> None:
    os.symlink("b", f"{root}/a")
    os.symlink("a", f"{root}/b")
    with pytest.raises(SyscallError) as info:
        securejoin(root, "/a/x")
    assert info.value.errno == 40


def test_self_loop(root: str) -> None:
    os.symlink("/loop", f"{root}/loop")
    with pytest.raises(OSError):
        securejoin(root, "/loop")


def test_nonexistent_tail_components(root: str) -> None:
    assert securejoin(root, "/usr/lib/new/dir/file") == f"{root}/usr/lib/new/dir/file"
    assert securejoin(root, "/nope/../etc") == f"{root}/etc"


def test_component_under_a_regular_file(root: str) -> None:
    assert securejoin(root, "/etc/hosts/x") == f"{root}/etc/hosts/x"


def test_result_never_leaves_root(root: str) -> None:
    os.symlink("/", f"{root}/slash")
    os.symlink("..", f"{root}/up")
    os.symlink("../../..", f"{root}/usr/lib/ups")
    for unsafe in ["/slash/..", "/up/up/up", "/usr/lib/ups/../..", "../slash/up/etc"]:
        out = securejoin(root, unsafe)
        assert out == root or out.startswith(root + "/"), (unsafe, out)
        assert ".." not in out[len(root) :].split("/")


# -- parse_options ------------------------------------------------------------------


def test_no_options() -> None:
    assert parse_options([]) == (0, 0, "")


def test_flags_accumulate() -> None:
    flags, prop, data = parse_options(["nosuid", "nodev", "noexec", "ro"])
    assert flags == C.MS_NOSUID | C.MS_NODEV | C.MS_NOEXEC | C.MS_RDONLY
    assert (prop, data) == (0, "")


def test_clear_flags() -> None:
    assert parse_options(["ro", "rw"])[0] == 0
    assert parse_options(["nosuid", "suid", "nodev"])[0] == C.MS_NODEV
    assert parse_options(["noexec", "exec"])[0] == 0
    assert parse_options(["noatime", "atime", "relatime"])[0] == C.MS_RELATIME


def test_last_option_wins() -> None:
    assert parse_options(["rw", "ro"])[0] == C.MS_RDONLY


def test_clearing_an_unset_flag_is_harmless() -> None:
    assert parse_options(["rw", "suid", "dev"])[0] == 0


def test_bind_and_rbind() -> None:
    assert parse_options(["bind"])[0] == C.MS_BIND
    assert parse_options(["rbind", "ro"])[0] == C.MS_BIND | C.MS_REC | C.MS_RDONLY


def test_propagation() -> None:
    flags, prop, data = parse_options(["rprivate", "bind"])
    assert flags == C.MS_BIND
    assert prop == C.MS_PRIVATE | C.MS_REC
    assert data == ""
    assert parse_options(["shared"])[1] == C.MS_SHARED
    assert parse_options(["rslave"])[1] == C.MS_SLAVE | C.MS_REC
    assert parse_options(["unbindable"])[1] == C.MS_UNBINDABLE


def test_data_options_joined_in_order() -> None:
    flags, prop, data = parse_options(
        ["nosuid", "strictatime", "mode=755", "size=65536k", "newinstance", "gid=5"]
    )
    assert flags == C.MS_NOSUID | C.MS_STRICTATIME
    assert prop == 0
    assert data == "mode=755,size=65536k,newinstance,gid=5"


@pytest.mark.parametrize("option", sorted(C.IGNORED_MOUNT_OPTIONS))
def test_ignored_options(option: str) -> None:
    assert parse_options([option, "mode=1777"]) == (0, 0, "mode=1777")


def test_default_spec_dev_mount() -> None:
    flags, prop, data = parse_options(["nosuid", "strictatime", "mode=755", "size=65536k"])
    assert (flags, prop, data) == (C.MS_NOSUID | C.MS_STRICTATIME, 0, "mode=755,size=65536k")


def test_idmap_is_refused() -> None:
    for option in ("idmap", "ridmap"):
        with pytest.raises(ValueError, match=f"^{option}: id-mapped mounts are not supported yet"):
            MountOptions(["rbind", option])


# -- recursive options (mount_setattr) ----------------------------------------------------


def test_recursive_options_are_attributes_not_data() -> None:
    o = MountOptions(["rbind", "rro", "rnosuid", "rnodev", "rnoexec", "rnosymfollow"])
    assert o.flags == C.MS_BIND | C.MS_REC
    assert o.data == []
    assert o.rec_set == (C.MOUNT_ATTR_RDONLY | C.MOUNT_ATTR_NOSUID | C.MOUNT_ATTR_NODEV
                         | C.MOUNT_ATTR_NOEXEC | C.MOUNT_ATTR_NOSYMFOLLOW)  # fmt: skip
    assert o.rec_clr == 0


def test_recursive_clear_forms() -> None:
    o = MountOptions(["rrw", "rsuid", "rdev", "rexec", "rsymfollow", "rdiratime"])
    assert o.rec_set == 0
    assert o.rec_clr == (C.MOUNT_ATTR_RDONLY | C.MOUNT_ATTR_NOSUID | C.MOUNT_ATTR_NODEV
                         | C.MOUNT_ATTR_NOEXEC | C.MOUNT_ATTR_NOSYMFOLLOW
                         | C.MOUNT_ATTR_NODIRATIME)  # fmt: skip


def test_recursive_last_option_wins() -> None:
    o = MountOptions(["rro", "rrw"])
    assert (o.rec_set, o.rec_clr) == (0, C.MOUNT_ATTR_RDONLY)
    o = MountOptions(["rrw", "rro"])
    assert (o.rec_set, o.rec_clr) == (C.MOUNT_ATTR_RDONLY, 0)


@pytest.mark.parametrize(
    ("options", "mode"),
    [
        (["rnoatime"], C.MOUNT_ATTR_NOATIME),
        (["rstrictatime"], C.MOUNT_ATTR_STRICTATIME),
        (["rrelatime"], C.MOUNT_ATTR_RELATIME),
        (["rnoatime", "rstrictatime"], C.MOUNT_ATTR_STRICTATIME),
        (["rnoatime", "ratime"], C.MOUNT_ATTR_RELATIME),
        (["ratime"], C.MOUNT_ATTR_RELATIME),
        (["rstrictatime", "rnostrictatime"], C.MOUNT_ATTR_RELATIME),
        (["rnoatime", "rnostrictatime"], C.MOUNT_ATTR_NOATIME),  # not the mode in use
        (["rnoatime", "rnodiratime"], C.MOUNT_ATTR_NOATIME),
    ],
)
def test_recursive_atime_is_one_value(options: list[str], mode: int) -> None:
    # mount_setattr(2): an atime mode in attr_set needs all of MOUNT_ATTR__ATIME in
    # attr_clr (a part of it there is EINVAL).
    o = MountOptions(options)
    assert o.rec_clr & C.MOUNT_ATTR__ATIME == C.MOUNT_ATTR__ATIME
    assert o.rec_set & C.MOUNT_ATTR__ATIME == mode


def test_rnorelatime_alone_changes_nothing() -> None:
    o = MountOptions(["rnorelatime"])
    assert (o.rec_set, o.rec_clr) == (0, 0)


def test_cleared_flags_are_recorded() -> None:
    o = MountOptions(["rbind", "exec", "suid", "nodev"])
    assert o.flags == C.MS_BIND | C.MS_REC | C.MS_NODEV
    assert o.cleared == C.MS_NOEXEC | C.MS_NOSUID
    o = MountOptions(["rw", "ro"])
    assert (o.flags, o.cleared) == (C.MS_RDONLY, 0)


def test_unknown_options_are_data() -> None:
    o = MountOptions(["rbind", "foo=bar", "rro"])
    assert o.data == ["foo=bar"]


# -- clean_path --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "clean"),
    [
        ("/dev", "/dev"),
        ("/dev/", "/dev"),
        ("//dev", "/dev"),
        ("/./dev/.", "/dev"),
        ("dev", "/dev"),
        ("/usr/../dev", "/dev"),
        ("/../../dev", "/dev"),
        ("/dev/pts", "/dev/pts"),
        ("/", "/"),
        ("", "/"),
    ],
)
def test_clean_path(path: str, clean: str) -> None:
    assert clean_path(path) == clean


# -- creating without following ----------------------------------------------------------


def test_make_target_does_not_follow_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (tmp_path / "root").mkdir()
    link = tmp_path / "root" / "target"
    link.symlink_to(outside)
    _make_target(str(link), False)
    assert link.is_symlink()
    assert not outside.exists()


def test_make_target_creates_a_file(tmp_path: Path) -> None:
    _make_target(str(tmp_path / "a" / "b" / "file"), False)
    assert (tmp_path / "a" / "b" / "file").is_file()
    _make_target(str(tmp_path / "a" / "b" / "file"), False)  # already there: fine


def test_symlink_keeps_or_replaces_without_following(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    d = tmp_path / "dev"
    d.mkdir()
    (d / "stdout").symlink_to(victim)
    (d / "ptmx").symlink_to(victim)
    fd = os.open(d, os.O_PATH | os.O_DIRECTORY)
    try:
        _symlink("/proc/self/fd/1", "stdout", fd)  # an image's own: kept
        _symlink("pts/ptmx", "ptmx", fd, replace=True)
        _symlink("pts/ptmx", "ptmx", fd, replace=True)  # already right
        _symlink("/proc/self/fd", "fd", fd)
    finally:
        os.close(fd)
    assert os.readlink(d / "stdout") == str(victim)
    assert os.readlink(d / "ptmx") == "pts/ptmx"
    assert os.readlink(d / "fd") == "/proc/self/fd"
    assert victim.read_text() == "precious"
