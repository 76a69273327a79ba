"""sampan.linux.caps without privileges: the table, parsing, reading, and the apply order."""

from __future__ import annotations

import os
import re

import pytest

from sampan.errors import InvalidArgument
from sampan.linux import caps
from sampan.linux.caps import CAPABILITIES, ProcessCaps


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.startswith("Cap"):
                out[key] = int(value, 16)
    return out


def test_table_is_complete_and_contiguous() -> None:
    assert CAPABILITIES["CAP_CHOWN"] == 0
    assert CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert sorted(CAPABILITIES.values()) == list(range(41))
    assert all(name.startswith("CAP_") and name.isupper() for name in CAPABILITIES)


@pytest.mark.skipif(
    not os.path.exists("/usr/include/linux/capability.h"), reason="no kernel headers"
)
def test_table_matches_kernel_headers() -> None:
    with open("/usr/include/linux/capability.h") as f:
        text = f.read()
    defined = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"#define (CAP_\w+)\s+(\d+)\s*$", text, re.M)
    }
    defined.pop("CAP_LAST_CAP", None)
    for name, number in defined.items():
        assert CAPABILITIES[name] == number


def test_last_cap_reads_proc_and_is_cached() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        expected = int(f.read())
    assert caps.last_cap() == expected
    assert caps._last_cap == expected


def test_parse_caps_mask_and_ignored() -> None:
    mask, ignored = caps.parse_caps(
        ["CAP_CHOWN", "CAP_KILL", "CAP_NOT_A_CAP", "CAP_CHOWN", "CAP_NOT_A_CAP"], "f"
    )
    assert mask == 1 << 0 | 1 << 5
    assert ignored == ["CAP_NOT_A_CAP"]
    assert caps.parse_caps([], "f") == (0, [])


def test_parse_caps_ignores_caps_above_last_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(caps, "_last_cap", 37)  # a 5.4 kernel: no PERFMON, BPF, ...
    mask, ignored = caps.parse_caps(["CAP_AUDIT_READ", "CAP_BPF", "CAP_PERFMON"], "f")
    assert mask == 1 << 37
    assert ignored == ["CAP_BPF", "CAP_PERFMON"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("CAP_CHOWN", "process.capabilities.bounding: must be a list"),
        (None, "process.capabilities.bounding: must be a list"),
        ({"CAP_CHOWN": True}, "process.capabilities.bounding: must be a list"),
        (["CAP_CHOWN", 3], r"process.capabilities.bounding\[1\]: must be a string"),
    ],
)
def test_parse_caps_errors_name_the_field(names: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        caps.parse_caps(names, "process.capabilities.bounding")


def test_parse_process_caps() -> None:
    got, ignored = caps.parse_process_caps(
        {
            "bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_CHOWN"],
            "permitted": ["CAP_CHOWN", "CAP_FOO"],
            "ambient": ["CAP_FOO", "CAP_BAR"],
        }
    )
    assert got == ProcessCaps(bounding=1 | 1 << 10, effective=1, permitted=1)
    assert got.inheritable == 0
    assert ignored == ["CAP_FOO", "CAP_BAR"]
    assert caps.parse_process_caps(None) == (ProcessCaps(), [])


def test_parse_process_caps_errors_name_the_field() -> None:
    with pytest.raises(InvalidArgument, match=r"process.capabilities: must be an object"):
        caps.parse_process_caps(["CAP_CHOWN"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"process.capabilities.effective\[0\]"):
        caps.parse_process_caps({"effective": [None]})


def test_process_caps_value() -> None:
    a = ProcessCaps(bounding=0b111, effective=0b1, ambient=0b100)
    assert a.union() == 0b111
    assert a.masked(0b011) == ProcessCaps(bounding=0b011, effective=0b1)
    assert a != ProcessCaps()
    assert "bounding=0x7" in repr(a)


def test_cap_names() -> None:
    assert caps.cap_names(0) == []
    assert caps.cap_names(1 | 1 << 21 | 1 << 40) == [
        "CAP_CHOWN",
        "CAP_SYS_ADMIN",
        "CAP_CHECKPOINT_RESTORE",
    ]
    assert caps.cap_names(1 << 50) == ["CAP_50"]


def test_reading_matches_proc_status() -> None:
    status = _status()
    assert caps.bounding_set() == status["CapBnd"]
    assert caps.capget() == (status["CapEff"], status["CapPrm"], status["CapInh"])
    assert caps.ambient() == status["CapAmb"]


class _FakeKernel:
    """Records the calls apply_process_caps makes, with a host lacking SYS_RESOURCE."""

    HOST = ((1 << 41) - 1) & ~(1 << CAPABILITIES["CAP_SYS_RESOURCE"])

    def __init__(self, monkeypatch: pytest.MonkeyPatch, effective: int) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.sets = (effective, self.HOST, 0)
        monkeypatch.setattr(caps, "bounding_set", lambda: self.HOST)
        monkeypatch.setattr(caps, "capget", lambda: self.sets)
        monkeypatch.setattr(caps, "capset", self.capset)
        monkeypatch.setattr(caps, "drop_bounding", self.drop_bounding)
        monkeypatch.setattr(caps, "set_ambient", self.set_ambient)

    def drop_bounding(self, keep: int, *, current: int | None = None) -> None:
        assert current == self.HOST  # not read twice
        self.calls.append(("drop", keep))

    def capset(self, e: int, p: int, i: int) -> None:
        self.calls.append(("capset", e, p, i))
        self.sets = (e, p, i)

    def set_ambient(self, mask: int) -> int:
        self.calls.append(("ambient", mask))
        return mask & 1 << CAPABILITIES["CAP_KILL"]  # pretend KILL could not be raised


def test_apply_order_and_what_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # After setresuid the effective set is empty: it is raised first, so that
    # dropping the bounding set (CAP_SETPCAP) works.
    fake = _FakeKernel(monkeypatch, effective=0)
    chown, kill, res = (1 << CAPABILITIES[n] for n in ("CAP_CHOWN", "CAP_KILL", "CAP_SYS_RESOURCE"))
    ignored = caps.apply_process_caps(
        {
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_RESOURCE"],
            "effective": ["CAP_CHOWN", "CAP_SYS_RESOURCE"],
            "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_RESOURCE"],
            "inheritable": ["CAP_CHOWN", "CAP_KILL"],
            "ambient": ["CAP_KILL", "CAP_NOPE"],
        }
    )
    assert fake.calls == [
        ("capset", fake.HOST, fake.HOST, 0),
        ("drop", chown | kill),
        ("capset", chown, chown | kill, chown | kill),
        ("ambient", kill),
    ]
    assert res not in (c[1] for c in fake.calls)
    assert ignored == ["CAP_NOPE", "CAP_SYS_RESOURCE", "CAP_KILL"]


def test_apply_none_drops_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeKernel(monkeypatch, effective=_FakeKernel.HOST)
    assert caps.apply_process_caps(None) == []
    # effective == permitted already: no raising capset first
    assert fake.calls == [("drop", 0), ("capset", 0, 0, 0), ("ambient", 0)]


def test_apply_accepts_parsed_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeKernel(monkeypatch, effective=_FakeKernel.HOST)
    caps.apply_process_caps(ProcessCaps(bounding=3, effective=1, permitted=1))
    assert fake.calls == [("drop", 3), ("capset", 1, 1, 0), ("ambient", 0)]
