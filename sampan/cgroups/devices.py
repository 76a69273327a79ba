"""Device allow-lists: OCI rules -> cgroup v1 writes, or a cgroup v2 eBPF program.

Both backends go through the same emulator of the v1 devices controller
(after runc's ``devices/devices_emulator.go``), so a rule list means the
same on both: the list starts from "deny all", each rule is applied in
order, and the result is a default (allow or deny) plus exceptions.

* v1 writes the *transition* from what ``devices.list`` says now to that
  result (``a *:* rwm`` to devices.deny first when the default changes,
  then one line per exception), as runc does.
* v2 has no devices files: ``program()`` compiles the result to a
  BPF_PROG_TYPE_CGROUP_DEVICE program (after runc's ``devicefilter.go``,
  itself from crun's ``ebpf.c``), which ``bpf.py`` loads and attaches.
"""

from __future__ import annotations

from sampan.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

WILDCARD = -1
_ORDER = "rwm"


class Rule:
    """One device rule: type ``a``/``b``/``c``, major/minor (-1 = any), access, allow."""

    __slots__ = ("access", "allow", "major", "minor", "type")

    def __init__(self, type: str, major: int, minor: int, access: str, allow: bool) -> None:
        self.type = type
        self.major = major
        self.minor = minor
        self.access = "".join(c for c in _ORDER if c in access)
        self.allow = allow

    def cgroup_string(self) -> str:
        """The line devices.allow/devices.deny take: ``c 1:3 rwm``, ``a *:* rwm``."""
        major = "*" if self.major == WILDCARD else str(self.major)
        minor = "*" if self.minor == WILDCARD else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[str, int, int, str, bool]:
        return (self.type, self.major, self.minor, self.access, self.allow)

    def __repr__(self) -> str:
        return f"Rule({'allow' if self.allow else 'deny'} {self.cgroup_string()})"


def rules_from_oci(devices: Sequence[Mapping[str, Any]]) -> list[Rule]:
    """OCI ``linux.resources.devices`` (already validated) -> rules."""
    out = []
    for d in devices:
        major = d.get("major")
        minor = d.get("minor")
        out.append(
            Rule(
                d.get("type") or "a",
                WILDCARD if major is None else major,
                WILDCARD if minor is None else minor,
                d.get("access") or "rwm",
                bool(d["allow"]),
            )
        )
    return out


_Meta = tuple[str, int, int]  # type, major, minor


class Emulator:
    """The state of a v1 devices cgroup: a default and per-device exceptions."""

    __slots__ = ("default_allow", "exceptions")

    def __init__(self, default_allow: bool = False) -> None:
        self.default_allow = default_allow
        self.exceptions: dict[_Meta, str] = {}

    @classmethod
    def from_rules(cls, rules: Iterable[Rule]) -> Emulator:
        """The state after applying RULES in order to a "deny all" cgroup."""
        emu = cls(default_allow=False)
        for rule in rules:
            emu.apply(rule)
        return emu

    @classmethod
    def from_list(cls, text: str) -> Emulator:
        """The state devices.list shows (``a *:* rwm`` alone means allow all)."""
        emu = cls(default_allow=False)
        for line in text.splitlines():
            fields = line.replace(":", " ").split()
            if len(fields) != 4:
                continue
            kind, major, minor, access = fields
            emu.apply(
                Rule(
                    kind,
                    WILDCARD if major == "*" else int(major),
                    WILDCARD if minor == "*" else int(minor),
                    access,
                    True,
                )
            )
        return emu

    def apply(self, rule: Rule) -> None:
        if rule.type == "a":
            self.default_allow = rule.allow
            self.exceptions = {}
            return
        if rule.allow == self.default_allow:
            self._remove(rule)
        else:
            meta = (rule.type, rule.major, rule.minor)
            self.exceptions[meta] = _union(self.exceptions.get(meta, ""), rule.access)

    def _remove(self, rule: Rule) -> None:
        meta = (rule.type, rule.major, rule.minor)
        for partial in (
            (rule.type, WILDCARD, rule.minor),
            (rule.type, rule.major, WILDCARD),
            (rule.type, WILDCARD, WILDCARD),
        ):
            if partial == meta:
                continue
            held = self.exceptions.get(partial, "")
            if any(c in held for c in rule.access):
                wild = Rule(partial[0], partial[1], partial[2], held, not rule.allow)
                raise InvalidArgument(
                    f"linux.resources.devices: rule {rule.cgroup_string()!r} cannot punch a hole"
                    f" in the earlier wildcard rule {wild.cgroup_string()!r}"
                    " (cgroup device rules do not work that way)"
                )
        left = "".join(c for c in self.exceptions.get(meta, "") if c not in rule.access)
        if left:
            self.exceptions[meta] = left
        else:
            self.exceptions.pop(meta, None)

    def sorted_exceptions(self) -> list[tuple[_Meta, str]]:
        return sorted(self.exceptions.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0]))

    def transition(self, target: Emulator) -> list[Rule]:
        """The v1 writes that turn this state into TARGET (runc's Transition)."""
        rules: list[Rule] = []
        old = self.exceptions
        if self.default_allow or self.default_allow != target.default_allow:
            rules.append(Rule("a", WILDCARD, WILDCARD, "rwm", target.default_allow))
            old = {}
        for meta, perms in sorted(old.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
            dropped = "".join(c for c in perms if c not in target.exceptions.get(meta, ""))
            if dropped:
                rules.append(Rule(*meta, dropped, target.default_allow))
        for meta, perms in target.sorted_exceptions():
            gained = "".join(c for c in perms if c not in old.get(meta, ""))
            if gained:
                rules.append(Rule(*meta, gained, not target.default_allow))
        return rules


def _union(a: str, b: str) -> str:
    return "".join(c for c in _ORDER if c in a or c in b)


# -- the cgroup v2 program ----------------------------------------------------

# struct bpf_cgroup_dev_ctx { u32 access_type (type | access << 16); u32 major; u32 minor; }
_DEV_BLOCK, _DEV_CHAR = 1, 2
_ACC = {"m": 1, "r": 2, "w": 4}
# Opcodes (class | op | source) and registers.
_LDX_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_AND32_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
_RSH32_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K
_MOV32_K = 0xB4  # BPF_ALU | BPF_MOV | BPF_K
_MOV32_X = 0xBC  # BPF_ALU | BPF_MOV | BPF_X
_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K
_JNE_X = 0x5D  # BPF_JMP | BPF_JNE | BPF_X
_EXIT = 0x95  # BPF_JMP | BPF_EXIT
LICENSE = "Apache"
INSN_SIZE = 8


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One eBPF instruction, little-endian (x86-64, arm64, riscv64, ppc64le)."""
    return (
        code.to_bytes(1, "little")
        + ((src << 4) | dst).to_bytes(1, "little")
        + off.to_bytes(2, "little", signed=True)
        + imm.to_bytes(4, "little", signed=True)
    )


def program(emu: Emulator) -> bytes:
    """The device filter for EMU: its exceptions in order, then its default."""
    out = [
        insn(_LDX_W, 2, 1, 0),  # r2 = ctx->access_type
        insn(_AND32_K, 2, imm=0xFFFF),  # r2 &= 0xffff        (type)
        insn(_LDX_W, 3, 1, 0),  # r3 = ctx->access_type
        insn(_RSH32_K, 3, imm=16),  # r3 >>= 16           (access)
        insn(_LDX_W, 4, 1, 4),  # r4 = ctx->major
        insn(_LDX_W, 5, 1, 8),  # r5 = ctx->minor
    ]
    for (kind, major, minor), access in emu.sorted_exceptions():
        for n, what in ((major, "major"), (minor, "minor")):
            if n > 0x7FFFFFFF:
                raise InvalidArgument(f"linux.resources.devices: {what} {n} is too large")
        acc = sum(_ACC[c] for c in access)
        checks: list[tuple[int, int, int, int]] = []  # code, dst, src, imm
        if acc != 7:
            checks += [(_MOV32_X, 1, 3, 0), (_AND32_K, 1, 0, acc), (_JNE_X, 1, 3, 0)]
        if major != WILDCARD:
            checks.append((_JNE_K, 4, 0, major))
        if minor != WILDCARD:
            checks.append((_JNE_K, 5, 0, minor))
        block = [(_JNE_K, 2, 0, _DEV_CHAR if kind == "c" else _DEV_BLOCK), *checks]
        length = len(block) + 2  # + mov r0, exit
        for i, (code, dst, src, imm) in enumerate(block):
            jump = code in (_JNE_K, _JNE_X)
            out.append(insn(code, dst, src, length - i - 1 if jump else 0, imm))
        out.append(insn(_MOV32_K, 0, imm=0 if emu.default_allow else 1))
        out.append(insn(_EXIT))
    out.append(insn(_MOV32_K, 0, imm=1 if emu.default_allow else 0))
    out.append(insn(_EXIT))
    return b"".join(out)
