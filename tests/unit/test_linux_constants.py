"""linux.constants: the signal parser and the sanity of the flag tables."""

from __future__ import annotations

import resource
import signal

import pytest

from sampan.linux import constants as C
from sampan.oci.runtime_config import NAMESPACE_TYPES, PROPAGATIONS


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("TERM", 15),
        ("SIGTERM", 15),
        ("term", 15),
        ("sigkill", 9),
        ("  HUP ", 1),
        ("SIGCHLD", 17),
        ("IOT", 6),
        ("POLL", 29),
        ("15", 15),
        ("1", 1),
        ("64", 64),
        ("RTMIN", 34),
        ("SIGRTMIN", 34),
        ("RTMIN+3", 37),
        ("sigrtmin+3", 37),
        ("RTMIN+30", 64),
        ("RTMAX", 64),
        ("RTMAX-1", 63),
        ("SIGRTMAX-30", 34),
    ],
)
def test_parse_signal(text: str, number: int) -> None:
    assert C.parse_signal(text) == number


@pytest.mark.parametrize(
    "text",
    ["", "SIG", "BOGUS", "SIGBOGUS", "RTMIN+31", "RTMIN-1", "RTMAX+1", "RTMAX-31", "RTMIN+",
     "RTMIN+x", "RTMINX", "+15", "-9", "1.5"],
)  # fmt: skip
def test_parse_signal_unknown(text: str) -> None:
    with pytest.raises(ValueError, match=r"^unknown signal "):
        C.parse_signal(text)


@pytest.mark.parametrize("text", ["0", "65", "999"])
def test_parse_signal_number_out_of_range(text: str) -> None:
    with pytest.raises(ValueError, match=f"^invalid signal number '{text}'$"):
        C.parse_signal(text)


def test_signals_agree_with_the_host() -> None:
    for name, number in C.SIGNALS.items():
        host = getattr(signal, f"SIG{name}", None)
        if host is not None:
            assert int(host) == number, name
    assert int(signal.SIGRTMIN) == C.SIGRTMIN
    assert int(signal.SIGRTMAX) == C.SIGRTMAX


def test_every_host_signal_has_a_name() -> None:
    ours = set(C.SIGNALS.values())
    for sig in signal.Signals:
        if sig.name.startswith("SIGRT"):
            continue
        assert int(sig) in ours, sig.name


def test_rlimits_agree_with_the_host() -> None:
    for name, number in C.RLIMITS.items():
        host = getattr(resource, name, None)
        if host is not None:
            assert host == number, name


def test_namespaces_cover_the_oci_types() -> None:
    assert set(C.NAMESPACES) == set(NAMESPACE_TYPES)
    flags = [flag for flag, _ in C.NAMESPACES.values()]
    assert len(set(flags)) == len(flags)
    assert C.NAMESPACES["user"][0] == C.CLONE_NEWUSER
    assert C.NAMESPACES["mount"] == (C.CLONE_NEWNS, "mnt")
    assert C.NAMESPACES["pid"][0] == C.CLONE_NEWPID
    assert C.NAMESPACES["cgroup"][0] == C.CLONE_NEWCGROUP
    assert C.NAMESPACES["network"][1] == "net"


def _single_bit(flag: int) -> bool:
    return flag > 0 and flag & (flag - 1) == 0


def test_mount_options_sanity() -> None:
    for name, (clear, flag) in C.MOUNT_OPTIONS.items():
        assert isinstance(clear, bool), name
        if name == "rbind":
            assert flag == C.MS_BIND | C.MS_REC
        else:
            assert _single_bit(flag), name
        assert not flag & C.PROPAGATION, name


def test_every_clearing_option_has_a_setting_twin() -> None:
    setting = {flag for clear, flag in C.MOUNT_OPTIONS.values() if not clear}
    for name, (clear, flag) in C.MOUNT_OPTIONS.items():
        if clear:
            assert flag in setting, name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ro", (False, C.MS_RDONLY)),
        ("rw", (True, C.MS_RDONLY)),
        ("nosuid", (False, C.MS_NOSUID)),
        ("suid", (True, C.MS_NOSUID)),
        ("noatime", (False, C.MS_NOATIME)),
        ("atime", (True, C.MS_NOATIME)),
        ("bind", (False, C.MS_BIND)),
    ],
)
def test_mount_option_entries(name: str, expected: tuple[bool, int]) -> None:
    assert C.MOUNT_OPTIONS[name] == expected


def test_mount_flag_values() -> None:
    # linux/mount.h
    assert (C.MS_RDONLY, C.MS_NOSUID, C.MS_NODEV, C.MS_NOEXEC) == (1, 2, 4, 8)
    assert (C.MS_REMOUNT, C.MS_BIND, C.MS_MOVE, C.MS_REC) == (32, 4096, 8192, 16384)
    assert (C.MS_UNBINDABLE, C.MS_PRIVATE, C.MS_SLAVE, C.MS_SHARED) == (
        1 << 17,
        1 << 18,
        1 << 19,
        1 << 20,
    )
    assert (C.MS_RELATIME, C.MS_STRICTATIME, C.MS_LAZYTIME) == (1 << 21, 1 << 24, 1 << 25)


def test_propagation_options_sanity() -> None:
    assert set(C.PROPAGATION_OPTIONS) == set(PROPAGATIONS)
    for name, flag in C.PROPAGATION_OPTIONS.items():
        base = flag & ~C.MS_REC
        assert _single_bit(base) and base & C.PROPAGATION, name
        assert bool(flag & C.MS_REC) == name.startswith("r"), name


def test_option_tables_do_not_overlap() -> None:
    mount = set(C.MOUNT_OPTIONS)
    prop = set(C.PROPAGATION_OPTIONS)
    ignored = set(C.IGNORED_MOUNT_OPTIONS)
    assert not mount & prop
    assert not mount & ignored
    assert not prop & ignored
