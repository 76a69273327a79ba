"""sampan.linux.seccomp without loading anything: validation, profiles, compiling."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from sampan.errors import Conflict, InvalidArgument, Unsupported
from sampan.linux import seccomp
from sampan.linux.seccomp import ACTIONS, ARCHITECTURES, FLAGS, OPERATORS

FIXTURE = Path(__file__).parent.parent / "fixtures" / "seccomp-profile.json"
PODMAN = Path("/usr/share/containers/seccomp.json")
# docker's default bounding set
DEFAULT_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

SMALL: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "flags": ["SECCOMP_FILTER_FLAG_LOG"],
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 13,
            "args": [{"index": 0, "value": 0xFFFFFFFF, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
        },
        {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["no_such_syscall"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},  # = default: skipped
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ERRNO",
            "args": [  # the same argument twice: one rule each (OR), as runc does
                {"index": 0, "value": 10, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
            ],
        },
        {
            "names": ["clone"],
            "action": "SCMP_ACT_TRAP",
            "args": [
                {
                    "index": 0,
                    "value": 0x7E020000,
                    "valueTwo": 0x10000000,
                    "op": "SCMP_CMP_MASKED_EQ",
                }
            ],
        },
    ],
}


def _instructions(program: bytes) -> int:
    assert program and len(program) % 8 == 0
    return len(program) // 8


def test_tables() -> None:
    assert set(ACTIONS) == {
        f"SCMP_ACT_{a}"
        for a in [
            "KILL",
            "KILL_PROCESS",
            "KILL_THREAD",
            "TRAP",
            "ERRNO",
            "TRACE",
            "ALLOW",
            "LOG",
            "NOTIFY",
        ]
    }
    assert ACTIONS["SCMP_ACT_ALLOW"] == 0x7FFF0000
    assert ACTIONS["SCMP_ACT_KILL"] == ACTIONS["SCMP_ACT_KILL_THREAD"] == 0
    assert sorted(OPERATORS.values()) == list(range(1, 8))
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64", "SCMP_ARCH_RISCV64"} <= ARCHITECTURES
    assert FLAGS["SECCOMP_FILTER_FLAG_TSYNC"] == 1


def test_architecture_tokens_come_from_libseccomp() -> None:
    lib = seccomp._lib()
    resolve = lib.seccomp_arch_resolve_name
    assert resolve(b"x86_64") == 0xC000003E
    assert resolve(b"x86") == 0x40000003
    assert resolve(b"x32") == 0x4000003E
    for name in ARCHITECTURES - {
        "SCMP_ARCH_LOONGARCH64",
        "SCMP_ARCH_M68K",
        "SCMP_ARCH_SH",
        "SCMP_ARCH_SHEB",
    }:  # libseccomp 2.5 knows all of the others
        assert resolve(name[len("SCMP_ARCH_") :].lower().encode()), name


def test_validate_accepts_the_small_profile() -> None:
    seccomp.validate_seccomp(SMALL)


def _set(path: str, value: object) -> dict[str, Any]:
    obj = copy.deepcopy(SMALL)
    *parents, last = path.split(".")
    node: Any = obj
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is _DELETE:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return obj


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("defaultAction", _DELETE, "linux.seccomp.defaultAction: required"),
        ("defaultAction", "ALLOW", 'linux.seccomp.defaultAction: unknown action "ALLOW"'),
        ("defaultAction", 3, "linux.seccomp.defaultAction: must be a string"),
        ("defaultErrnoRet", -1, "linux.seccomp.defaultErrnoRet: must be an integer"),
        ("defaultErrnoRet", True, "linux.seccomp.defaultErrnoRet: must be an integer"),
        ("architectures", "SCMP_ARCH_X86_64", "linux.seccomp.architectures: must be an array"),
        ("architectures.1", "x86", r'architectures\[1\]: unknown architecture "x86"'),
        (
            "flags.0",
            "SECCOMP_FILTER_FLAG_FOO",
            r'flags\[0\]: unknown flag "SECCOMP_FILTER_FLAG_FOO"',
        ),
        ("syscalls", {}, "linux.seccomp.syscalls: must be an array"),
        ("syscalls.3", "mkdir", r"linux.seccomp.syscalls\[3\]: must be an object"),
        (
            "syscalls.3.action",
            "SCMP_ACT_FOO",
            r'syscalls\[3\].action: unknown action "SCMP_ACT_FOO"',
        ),
        ("syscalls.3.action", _DELETE, r"syscalls\[3\].action: required"),
        ("syscalls.3.names", _DELETE, r"syscalls\[3\].names: required"),
        ("syscalls.3.names", "mkdir", r"syscalls\[3\].names: must be an array"),
        ("syscalls.3.names", ["mkdir", 1], r"syscalls\[3\].names\[1\]: must be a string"),
        ("syscalls.3.names", [""], r"syscalls\[3\].names\[0\]: must not be empty"),
        ("syscalls.0.errnoRet", "EPERM", r"syscalls\[0\].errnoRet: must be an integer"),
        ("syscalls.1.args", {}, r"syscalls\[1\].args: must be an array"),
        (
            "syscalls.1.args.0.index",
            6,
            r"syscalls\[1\].args\[0\].index: must be an integer from 0 to 5",
        ),
        ("syscalls.1.args.0.index", _DELETE, r"syscalls\[1\].args\[0\].index: must be an integer"),
        ("syscalls.1.args.0.value", 2**64, r"syscalls\[1\].args\[0\].value: must be an integer"),
        ("syscalls.1.args.0.valueTwo", -1, r"syscalls\[1\].args\[0\].valueTwo: must be an integer"),
        ("syscalls.1.args.0.op", "SCMP_CMP_FOO", r'args\[0\].op: unknown operator "SCMP_CMP_FOO"'),
        ("syscalls.1.args.0.op", _DELETE, r"args\[0\].op: must be a string"),
        ("syscalls.1.errno", "EWHAT", r'syscalls\[1\].errno: unknown errno "EWHAT"'),
        ("syscalls.1.includes", {"caps": "CAP_SYS_ADMIN"}, r"includes.caps: must be an array"),
        ("syscalls.1.excludes", {"minKernel": "four"}, r"excludes.minKernel: \"four\" is not"),
        ("syscalls.1.name", "personality", r"syscalls\[1\]: both name and names"),
        ("archMap", [{"architecture": "SCMP_ARCH_X86_64"}], "either architectures or archMap"),
        (
            "archMap",
            [{"architecture": "X"}],
            r'archMap\[0\].architecture: unknown architecture "X"',
        ),
    ],
)
def test_validation_errors_name_the_field(path: str, value: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        seccomp.validate_seccomp(_set(path, value))


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "defaultAction",
            "SCMP_ACT_NOTIFY",
            "defaultAction: SCMP_ACT_NOTIFY needs a seccomp listener",
        ),
        ("syscalls.2.action", "SCMP_ACT_NOTIFY", r"syscalls\[2\].action: SCMP_ACT_NOTIFY"),
        ("listenerPath", "/run/agent.sock", "listenerPath: seccomp listeners are not supported"),
        ("flags.0", "SECCOMP_FILTER_FLAG_NEW_LISTENER", r"flags\[0\]: .* is not supported"),
        ("flags.0", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", r"flags\[0\]: .* is not supported"),
    ],
)
def test_valid_but_unsupported(path: str, value: object, message: str) -> None:
    with pytest.raises(Unsupported, match=message):
        seccomp.validate_seccomp(_set(path, value))


def test_validation_top_level_and_field_prefix() -> None:
    with pytest.raises(InvalidArgument, match=r"linux.seccomp: must be an object"):
        seccomp.validate_seccomp([])
    with pytest.raises(InvalidArgument, match=r"^x.seccomp.syscalls\[0\].action"):
        seccomp.validate_seccomp(_set("syscalls.0.action", 1), "x.seccomp")


def test_null_arrays_are_empty() -> None:
    seccomp.validate_seccomp(
        {"defaultAction": "SCMP_ACT_ALLOW", "architectures": None, "flags": None, "syscalls": None}
    )
    seccomp.validate_seccomp(_set("syscalls.0.args", None))


def test_compile_small_profile() -> None:
    with seccomp.compile_filter(SMALL) as filt:
        assert filt.skipped == ["no_such_syscall"]
        assert filt.flags == FLAGS["SECCOMP_FILTER_FLAG_LOG"]
        program = filt.export_bpf()
        assert filt.export_bpf() is program  # generated once
    assert _instructions(program) > 20
    filt.close()  # twice is fine


def test_export_after_close_is_a_conflict() -> None:
    filt = seccomp.compile_filter(SMALL)
    filt.close()
    with pytest.raises(Conflict):
        filt.export_bpf()


def test_more_architectures_make_a_longer_program() -> None:
    native = {**SMALL, "architectures": ["SCMP_ARCH_X86_64"]}
    with seccomp.compile_filter(native) as one, seccomp.compile_filter(SMALL) as three:
        assert _instructions(three.export_bpf()) > _instructions(one.export_bpf())


def test_compile_without_architectures_and_with_default_errno() -> None:
    obj = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}],
    }
    with seccomp.compile_filter(obj) as filt:
        assert _instructions(filt.export_bpf()) > 3


def test_a_rule_libseccomp_refuses_names_the_rule() -> None:
    # An unconditional rule and then a conflicting one for the same syscall
    obj = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["read"],
                "action": "SCMP_ACT_ERRNO",
                "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": 2, "op": "SCMP_CMP_LT"},
                ],
            },
            {
                "names": ["read"],
                "action": "SCMP_ACT_KILL",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}],
            },
        ],
    }
    with pytest.raises(
        InvalidArgument, match=r'linux.seccomp.syscalls\[1\]: libseccomp refused .*"read"'
    ):
        seccomp.compile_filter(obj)


def test_from_profile_follows_the_engines() -> None:
    profile = json.loads(FIXTURE.read_text())
    oci = seccomp.from_profile(profile, bounding=DEFAULT_CAPS, machine="x86_64", kernel=(6, 1))
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert oci["defaultErrnoRet"] == 1
    names = [n for r in oci["syscalls"] for n in r["names"]]
    assert "modify_ldt" in names and "s390_runtime_instr" not in names  # includes.arches
    assert "mount" not in names and "chroot" in names  # includes.caps
    assert "ptrace" in names  # minKernel 4.8 <= 6.1
    assert names.count("clone") == 1 and "clone3" in names  # excludes.caps
    assert names.count("socket") == 1  # CAP_AUDIT_WRITE is in the bounding set: unconditional
    syslog = next(r for r in oci["syscalls"] if r["names"] == ["syslog"])
    assert syslog == {"names": ["syslog"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    assert "archMap" not in oci and all("includes" not in r for r in oci["syscalls"])

    old = seccomp.from_profile(
        profile, bounding=["CAP_SYS_ADMIN"], machine="aarch64", kernel=(4, 4)
    )
    names = [n for r in old["syscalls"] for n in r["names"]]
    assert old["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "ptrace" not in names and "modify_ldt" not in names and "mount" in names
    assert names.count("clone") == 1 and "clone3" not in names
    assert names.count("socket") == 3

    unknown = seccomp.from_profile(profile, machine="sparc64")
    assert "architectures" not in unknown  # libseccomp's native arch only


def test_compile_fixture_profile() -> None:
    profile = json.loads(FIXTURE.read_text())
    with seccomp.compile_filter(profile, bounding=DEFAULT_CAPS) as filt:
        assert filt.skipped == ["not_a_syscall_sampan_test"]
        assert _instructions(filt.export_bpf()) > 200


@pytest.mark.skipif(not PODMAN.exists(), reason="containers-common's seccomp.json is not installed")
def test_compile_podman_default_profile() -> None:
    profile = json.loads(PODMAN.read_text())
    assert "archMap" in profile and len(profile["syscalls"]) > 20
    oci = seccomp.from_profile(profile, bounding=DEFAULT_CAPS)
    assert sum(len(r["names"]) for r in oci["syscalls"]) > 300
    assert oci["defaultErrnoRet"] == 38
    for obj in (profile, oci):
        with seccomp.compile_filter(obj, bounding=DEFAULT_CAPS) as filt:
            assert _instructions(filt.export_bpf()) > 500
    # as config.json carries it: architectures, no includes/excludes
    seccomp.validate_seccomp(json.loads(json.dumps(oci)))


def test_compile_program_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "seccomp"
    program, flags = seccomp.compile_program(SMALL, cache_dir=str(cache))
    assert flags == FLAGS["SECCOMP_FILTER_FLAG_LOG"]
    (entry,) = os.listdir(cache)
    assert entry.endswith(".bpf") and (cache / entry).read_bytes() == program

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(seccomp, "compile_filter", no_compiling)
    assert seccomp.compile_program(copy.deepcopy(SMALL), cache_dir=str(cache)) == (program, flags)
    with pytest.raises(AssertionError):  # another object: another key
        seccomp.compile_program(_set("syscalls.0.errnoRet", 2), cache_dir=str(cache))
    with pytest.raises(InvalidArgument):  # validated even on a hit
        seccomp.compile_program(_set("defaultAction", "X"), cache_dir=str(cache))


def test_compile_program_without_cache_and_unwritable_cache(tmp_path: Path) -> None:
    program, _ = seccomp.compile_program(SMALL)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert seccomp.compile_program(SMALL, cache_dir=str(blocker / "sub"))[0] == program


@pytest.mark.parametrize("program", [b"", b"1234567", b"\0" * 8 * 0x10000])
def test_load_bpf_refuses_what_is_not_a_program(program: bytes) -> None:
    with pytest.raises(InvalidArgument, match="is not a BPF program"):
        seccomp.load_bpf(program)


def test_duplicate_rules_compile_as_in_dockers_profile() -> None:
    profile = json.loads(FIXTURE.read_text())
    every = [*DEFAULT_CAPS, "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]
    oci = seccomp.from_profile(profile, bounding=every, machine="riscv64", kernel=(6, 1))
    assert oci["architectures"] == ["SCMP_ARCH_RISCV64"]  # subArchitectures: null
    names = [n for r in oci["syscalls"] for n in r["names"]]
    assert names.count("ptrace") == 2
    oci["architectures"] = ["SCMP_ARCH_X86_64"]
    with seccomp.compile_filter(oci) as filt:
        assert _instructions(filt.export_bpf()) > 100
