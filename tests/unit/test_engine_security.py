"""docker's security fields -> the OCI process and linux sections; sampan's default seccomp
profile (docker's effective policy), and that libseccomp compiles it."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest

from sampan.engine import security, spec
from sampan.engine.seccomp_profile import ALLOWED, BY_CAPABILITY, NAMESPACE_FLAGS, default_seccomp
from sampan.errors import InvalidArgument, Unsupported

HELD = [f"CAP_{n}" for n in ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID",
                             "KILL", "SETGID", "SETUID", "SETPCAP", "NET_BIND_SERVICE", "NET_RAW",
                             "SYS_CHROOT", "SYS_PTRACE", "SYS_ADMIN", "MKNOD", "AUDIT_WRITE",
                             "SETFCAP")]  # fmt: skip


@pytest.fixture(autouse=True)
def _daemon_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's bounding set, fixed: like these machines, no CAP_SYS_RESOURCE."""
    monkeypatch.setattr(security, "daemon_capabilities", lambda: list(HELD))


def _doc() -> dict[str, Any]:
    config = spec.merge_config({"Cmd": ["sh"]}, {}, "c" * 64)
    host = spec.check_host_config({})
    return spec.oci_spec("c" * 64, config, host, files={})


def _apply(**host: Any) -> dict[str, Any]:
    doc = _doc()
    security.apply_to_spec(doc, security.check(host), machine="x86_64")
    return doc


def _allowed(seccomp: dict[str, Any]) -> set[str]:
    return {n for r in seccomp["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and "args" not in r
            for n in r["names"]}  # fmt: skip


def test_capability_arithmetic() -> None:
    def caps(**fields: Any) -> list[str]:
        return security.capabilities(fields)

    assert caps() == list(spec.DEFAULT_CAPABILITIES)
    assert "CAP_SYS_ADMIN" in caps(CapAdd=["sys_admin"])
    assert "CAP_SYS_ADMIN" in caps(CapAdd=["CAP_SYS_ADMIN"])
    assert "CAP_CHOWN" not in caps(CapDrop=["chown"])
    assert caps(CapDrop=["ALL"], CapAdd=["NET_RAW"]) == ["CAP_NET_RAW"]
    assert caps(CapAdd=["chown"], CapDrop=["chown"]) == [*caps(CapDrop=["chown"]), "CAP_CHOWN"]
    assert caps(CapAdd=["ALL"]) == HELD
    assert caps(Privileged=True) == HELD  # the daemon's bounding set, not every known cap


def test_refused_capabilities() -> None:
    with pytest.raises(InvalidArgument, match='unknown capability: "CAP_BOGUS"'):
        security.check({"CapAdd": ["bogus"]})
    with pytest.raises(InvalidArgument, match="CAP_SYS_RESOURCE: not in the daemon's bounding"):
        security.check({"CapAdd": ["SYS_RESOURCE"]})
    security.check({"CapDrop": ["SYS_RESOURCE"]})  # dropping what cannot be held is fine


@pytest.mark.parametrize(
    ("opt", "error", "message"),
    [
        ("label=type:foo", Unsupported, "SELinux labels are not supported"),
        ("label:level:s0", Unsupported, "SELinux labels are not supported"),
        ("apparmor=docker-default", Unsupported, "AppArmor profiles are not supported"),
        ("bogus=1", InvalidArgument, "invalid --security-opt 1: 'bogus=1'"),
        ("no-new-privileges=maybe", InvalidArgument, "no-new-privileges takes true or false"),
        ("seccomp={bad", InvalidArgument, "the profile is not valid JSON"),
        ('seccomp={"defaultAction": "SCMP_ACT_NOPE"}', InvalidArgument, "unknown action"),
        ("seccomp=", InvalidArgument, "a profile or 'unconfined' is needed"),
        ("systempaths=yes", InvalidArgument, "want systempaths=unconfined"),
    ],
)
def test_refused_security_opts(opt: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        security.check({"SecurityOpt": [opt]})


def test_default_is_dockers_set_with_the_default_profile() -> None:
    doc = _apply()
    caps = doc["process"]["capabilities"]
    assert set(caps["bounding"]) == set(spec.DEFAULT_CAPABILITIES) == set(caps["effective"])
    assert doc["process"]["noNewPrivileges"] is False
    seccomp = doc["linux"]["seccomp"]
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO" and seccomp["defaultErrnoRet"] == 1
    assert seccomp["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _allowed(seccomp)
    assert {"read", "write", "execve", "clone3", "mount", "unshare", "setns"} - allowed == {
        "clone3", "mount", "unshare", "setns"}  # fmt: skip
    assert {"chroot", "arch_prctl", "ptrace"} <= allowed  # CAP_SYS_CHROOT is a default cap
    assert not {"kcmp", "reboot", "init_module", "open_by_handle_at", "bpf"} & allowed
    clone = [r for r in seccomp["syscalls"] if r["names"] == ["clone"]]
    assert clone == [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [
                {"index": 0, "value": NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
            ],
        }
    ]
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in seccomp["syscalls"]
    personas = {r["args"][0]["value"] for r in seccomp["syscalls"] if r["names"] == ["personality"]}
    assert personas == {0, 8, 0x20000, 0x20008, 0xFFFFFFFF}
    assert doc["linux"]["maskedPaths"] and doc["linux"]["readonlyPaths"]


def test_capabilities_unlock_their_syscalls() -> None:
    seccomp = _apply(CapAdd=["SYS_ADMIN", "SYS_PTRACE"])["linux"]["seccomp"]
    allowed = _allowed(seccomp)
    assert set(BY_CAPABILITY["CAP_SYS_ADMIN"]) <= allowed
    assert {"kcmp", "process_vm_readv", "pidfd_getfd"} <= allowed
    assert not [r for r in seccomp["syscalls"] if r["names"] in (["clone"], ["clone3"])]
    dropped = _allowed(_apply(CapDrop=["SYS_CHROOT"])["linux"]["seccomp"])
    assert "chroot" not in dropped


def test_unconfined_privileged_and_options() -> None:
    assert "seccomp" not in _apply(SecurityOpt=["seccomp=unconfined"])["linux"]
    assert _apply(SecurityOpt=["no-new-privileges"])["process"]["noNewPrivileges"] is True
    assert _apply(SecurityOpt=["no-new-privileges:true"])["process"]["noNewPrivileges"] is True
    assert _apply(SecurityOpt=["no-new-privileges=false"])["process"]["noNewPrivileges"] is False
    assert "seccomp" in _apply(SecurityOpt=["label=disable", "apparmor=unconfined"])["linux"]
    open_paths = _apply(SecurityOpt=["systempaths=unconfined"])["linux"]
    assert open_paths["maskedPaths"] == [] == open_paths["readonlyPaths"]

    doc = _apply(Privileged=True)
    linux = doc["linux"]
    assert "seccomp" not in linux
    assert doc["process"]["capabilities"]["bounding"] == HELD
    assert linux["maskedPaths"] == [] == linux["readonlyPaths"]
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    paths = {d["path"] for d in linux["devices"]}
    assert "/dev/null" in paths and not any(p.startswith("/dev/pts/") for p in paths)
    sys_mounts = [m for m in doc["mounts"] if m["destination"] in ("/sys", "/sys/fs/cgroup")]
    assert len(sys_mounts) == 2 and not any("ro" in m["options"] for m in sys_mounts)


def test_custom_profile_follows_the_capabilities() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {
                "names": ["chmod"],
                "action": "SCMP_ACT_ERRNO",
                "excludes": {"caps": ["CAP_SYS_ADMIN"]},
            },
        ],
    }
    import json

    opt = "seccomp=" + json.dumps(profile)
    rules = _apply(SecurityOpt=[opt])["linux"]["seccomp"]["syscalls"]
    assert [r["names"] for r in rules] == [["mkdir"], ["chmod"]]
    rules = _apply(SecurityOpt=[opt], CapAdd=["SYS_ADMIN"])["linux"]["seccomp"]["syscalls"]
    assert [r["names"] for r in rules] == [["mkdir"]]


def test_devices() -> None:
    devices = [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                "CgroupPermissions": "rw"}]  # fmt: skip
    doc = _apply(Devices=devices)
    assert doc["linux"]["devices"] == [
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666,
         "uid": 0, "gid": 0}]  # fmt: skip
    assert doc["linux"]["resources"]["devices"][-1] == {
        "allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}  # fmt: skip
    with pytest.raises(InvalidArgument, match='adding custom device "/dev/nope": no such file'):
        security.check({"Devices": [{"PathOnHost": "/dev/nope"}]})
    with pytest.raises(InvalidArgument, match="invalid device mode: rx"):
        security.check({"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rx"}]})
    with pytest.raises(InvalidArgument, match="not a device node"):
        security.check({"Devices": [{"PathOnHost": "/etc/hostname"}]})


@pytest.mark.skipif(security.init_binary() is None, reason="needs tini-static (docker-init)")
def test_init() -> None:
    doc = _apply(Init=True)
    assert doc["process"]["args"] == [security.INIT_PATH, "--", "sh"]
    mount = doc["mounts"][-1]
    assert mount["destination"] == security.INIT_PATH and "ro" in mount["options"]
    assert os.path.realpath(mount["source"]) == os.path.realpath(str(security.init_binary()))


def test_profile_memo_is_not_mutated_by_a_spec() -> None:
    first = copy.deepcopy(default_seccomp(spec.DEFAULT_CAPABILITIES, "x86_64"))
    _apply()
    assert default_seccomp(spec.DEFAULT_CAPABILITIES, "x86_64") == first
    assert default_seccomp(spec.DEFAULT_CAPABILITIES, "aarch64")["architectures"] == [
        "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]  # fmt: skip
    assert {"read", "openat", "socketpair", "getrandom", "io_uring_setup"} <= ALLOWED
    assert not {"mount", "ptrace", "reboot", "kexec_load", "socket"} & ALLOWED


def test_profile_compiles_with_libseccomp() -> None:
    seccomp_mod = pytest.importorskip("sampan.linux.seccomp")
    try:
        seccomp_mod._lib()
    except Unsupported:
        pytest.skip("no libseccomp.so.2")
    for caps in (spec.DEFAULT_CAPABILITIES, HELD):
        with seccomp_mod.compile_filter(default_seccomp(caps)) as filt:
            program = filt.export_bpf()
            assert program and len(program) % 8 == 0
            assert filt.skipped == []  # every name is one this libseccomp knows
