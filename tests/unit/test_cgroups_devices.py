"""Device rules: the v1 emulator, its transitions, and the v2 eBPF program it compiles to."""

from __future__ import annotations

import itertools

import pytest

from sampan.cgroups.devices import WILDCARD, Emulator, Rule, insn, program, rules_from_oci
from sampan.errors import InvalidArgument

A = WILDCARD


def deny_all() -> Rule:
    return Rule("a", A, A, "rwm", False)


def test_rules_from_oci_fill_in_wildcards_and_order_access():
    rules = rules_from_oci(
        [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "access": "wr"},
        ]
    )
    assert [r.cgroup_string() for r in rules] == ["a *:* rwm", "c 1:* rw"]
    assert [r.allow for r in rules] == [False, True]


def test_emulator_merges_and_removes_exceptions():
    emu = Emulator.from_rules(
        [
            deny_all(),
            Rule("c", 1, 3, "r", True),
            Rule("c", 1, 3, "w", True),
            Rule("c", 1, 5, "rwm", True),
            Rule("c", 1, 5, "m", False),
        ]
    )
    assert not emu.default_allow
    assert emu.exceptions == {("c", 1, 3): "rw", ("c", 1, 5): "rw"}


def test_allow_all_resets():
    emu = Emulator.from_rules([Rule("c", 1, 3, "r", True), Rule("a", A, A, "rwm", True)])
    assert emu.default_allow and emu.exceptions == {}


def test_punching_a_hole_in_a_wildcard_is_refused():
    with pytest.raises(InvalidArgument, match=r"^linux\.resources\.devices: rule 'c 1:3 r'"):
        Emulator.from_rules([deny_all(), Rule("c", A, A, "r", True), Rule("c", 1, 3, "r", False)])


def test_from_list():
    assert Emulator.from_list("a *:* rwm\n").default_allow
    emu = Emulator.from_list("c 1:3 rwm\nb 8:* r\n")
    assert not emu.default_allow
    assert emu.exceptions == {("c", 1, 3): "rwm", ("b", 8, A): "r"}
    assert not Emulator.from_list("").default_allow


def test_transition_from_allow_all():
    target = Emulator.from_rules([deny_all(), Rule("c", 1, 3, "rwm", True)])
    rules = Emulator.from_list("a *:* rwm\n").transition(target)
    assert [(r.allow, r.cgroup_string()) for r in rules] == [
        (False, "a *:* rwm"),
        (True, "c 1:3 rwm"),
    ]


def test_transition_to_allow_all():
    target = Emulator.from_rules([Rule("a", A, A, "rwm", True), Rule("c", 1, 3, "w", False)])
    rules = Emulator.from_list("c 1:3 rwm\n").transition(target)
    assert [(r.allow, r.cgroup_string()) for r in rules] == [
        (True, "a *:* rwm"),
        (False, "c 1:3 w"),
    ]


# -- the eBPF program, run by a tiny interpreter of the opcodes it uses ---------

MASK = (1 << 64) - 1


def run(code: bytes, dev_type: int, access: int, major: int, minor: int) -> int:
    ctx = [dev_type | access << 16, major, minor]
    regs = [0] * 11
    pc = 0
    while True:
        op, regs_byte = code[pc * 8], code[pc * 8 + 1]
        off = int.from_bytes(code[pc * 8 + 2 : pc * 8 + 4], "little", signed=True)
        imm = int.from_bytes(code[pc * 8 + 4 : pc * 8 + 8], "little", signed=True)
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if op == 0x61:  # ldx w
            assert src == 1 and off in (0, 4, 8)
            regs[dst] = ctx[off // 4]
        elif op == 0x54:
            regs[dst] = (regs[dst] & imm) & 0xFFFFFFFF
        elif op == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif op == 0xB4:
            regs[dst] = imm & 0xFFFFFFFF
        elif op == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif op == 0x55:
            if regs[dst] != imm & MASK:
                pc += off
        elif op == 0x5D:
            if regs[dst] != regs[src]:
                pc += off
        elif op == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


def expected(emu: Emulator, kind: str, major: int, minor: int, access: str) -> bool:
    for (t, ma, mi), perms in emu.exceptions.items():
        if t == kind and ma in (A, major) and mi in (A, minor) and set(access) <= set(perms):
            return not emu.default_allow
    return emu.default_allow


RULESETS = [
    [deny_all()],
    [Rule("a", A, A, "rwm", True)],
    [
        deny_all(),
        Rule("c", 1, 3, "rwm", True),
        Rule("c", 136, A, "rw", True),
        Rule("b", A, A, "m", True),
    ],
    [Rule("a", A, A, "rwm", True), Rule("c", 1, 5, "w", False), Rule("b", 8, A, "rwm", False)],
    [deny_all(), Rule("c", A, 7, "r", True), Rule("b", 8, 0, "r", True)],
]


@pytest.mark.parametrize("rules", RULESETS)
def test_program_matches_the_emulator(rules):
    emu = Emulator.from_rules(rules)
    code = program(emu)
    assert len(code) % 8 == 0
    types = {"c": 2, "b": 1}
    bits = {"m": 1, "r": 2, "w": 4}
    accesses = ["r", "w", "m", "rw", "rwm", "wm"]
    for kind, major, minor, access in itertools.product(
        "cb", (1, 5, 8, 136), (0, 3, 5, 7), accesses
    ):
        got = run(code, types[kind], sum(bits[c] for c in access), major, minor)
        assert got == int(expected(emu, kind, major, minor, access)), (kind, major, minor, access)


def test_program_layout_for_one_rule():
    code = program(Emulator.from_rules([deny_all(), Rule("c", 1, 3, "rwm", True)]))
    prologue = 6
    block = [
        insn(0x55, 2, 0, 4, 2),  # type != char -> next block (4 ahead)
        insn(0x55, 4, 0, 3, 1),  # major != 1
        insn(0x55, 5, 0, 2, 3),  # minor != 3
        insn(0xB4, 0, 0, 0, 1),  # allow
        insn(0x95),
    ]
    tail = [insn(0xB4, 0, 0, 0, 0), insn(0x95)]  # default: deny
    assert code[prologue * 8 :] == b"".join(block + tail)


def test_huge_numbers_are_refused():
    emu = Emulator.from_rules([deny_all(), Rule("c", 2**31, 0, "r", True)])
    with pytest.raises(InvalidArgument, match="too large"):
        program(emu)
