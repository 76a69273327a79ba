"""Capabilities and seccomp on the real kernel, each in a forked child.

The child reports through a pipe and always leaves with ``os._exit``.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sampan.linux import caps, seccomp
from sampan.linux._libc import libc
from sampan.linux.caps import CAPABILITIES
from sampan.linux.errors import SyscallError

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

PR_SET_KEEPCAPS = 8
PR_SET_NO_NEW_PRIVS = 38
NOBODY = 65534
PODMAN = Path("/usr/share/containers/seccomp.json")


def bit(*names: str) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITIES[name]
    return mask


def prctl(option: int, arg: int) -> None:
    ul = ctypes.c_ulong
    if libc.prctl(ctypes.c_int(option), ul(arg), ul(0), ul(0), ul(0)) != 0:
        raise OSError(ctypes.get_errno(), "prctl")


def status(text: str | None = None) -> dict[str, str]:
    if text is None:
        with open("/proc/self/status") as f:
            text = f.read()
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def cap_status(text: str | None = None) -> dict[str, int]:
    s = status(text)
    return {k: int(s[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def in_child(fn: Callable[[], Any]) -> tuple[int, Any]:
    """Run *fn* in a forked child; (wait status, its result or {"error": ...})."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            try:
                out: Any = {"result": fn()}
            except BaseException as exc:
                out = {"error": f"{type(exc).__name__}: {exc}", "errno": getattr(exc, "errno", 0)}
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = read_all(r)
    _, wstatus = os.waitpid(pid, 0)
    return wstatus, json.loads(data) if data else None


def exec_in_child(prepare: Callable[[], Any], argv: list[str]) -> tuple[int, Any, str]:
    """Run *prepare* in a child, which then execs *argv* with stdout on a pipe.

    Returns (wait status, what prepare returned, the program's output).
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            try:
                os.write(w, json.dumps({"result": prepare()}).encode() + b"\n")
                os.dup2(w, 1)
                os.execv(argv[0], argv)
            except BaseException as exc:
                os.write(w, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode() + b"\n")
        finally:
            os._exit(127)
    os.close(w)
    first, _, rest = read_all(r).partition(b"\n")
    _, wstatus = os.waitpid(pid, 0)
    return wstatus, json.loads(first), rest.decode()


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def ok(result: tuple[int, Any]) -> Any:
    wstatus, out = result
    assert os.waitstatus_to_exitcode(wstatus) == 0, out
    assert out is not None and "error" not in out, out
    return out["result"]


# --- capabilities ------------------------------------------------------------------


def test_drop_bounding_and_capset() -> None:
    keep = bit("CAP_CHOWN", "CAP_KILL", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE")

    def child() -> Any:
        caps.drop_bounding(keep)
        caps.capset(bit("CAP_CHOWN", "CAP_KILL"), keep, bit("CAP_CHOWN"))
        return {"status": cap_status(), "bounding": caps.bounding_set(), "get": caps.capget()}

    got = ok(in_child(child))
    assert got["status"] == {
        "CapBnd": keep,
        "CapEff": bit("CAP_CHOWN", "CAP_KILL"),
        "CapPrm": keep,
        "CapInh": bit("CAP_CHOWN"),
        "CapAmb": 0,
    }
    assert got["bounding"] == keep
    assert got["get"] == [bit("CAP_CHOWN", "CAP_KILL"), keep, bit("CAP_CHOWN")]


def test_capset_beyond_permitted_is_a_syscall_error() -> None:
    def child() -> Any:
        caps.capset(0, bit("CAP_CHOWN"), 0)
        caps.capset(0, bit("CAP_CHOWN", "CAP_KILL"), 0)

    _, out = in_child(child)
    assert out["errno"] == 1 and out["error"] == "SyscallError: capset: Operation not permitted"


def test_apply_as_root_ignores_what_the_host_lacks() -> None:
    host = caps.bounding_set()
    lacking = [n for n in CAPABILITIES if not host >> CAPABILITIES[n] & 1]
    names = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_RESOURCE", "CAP_NOT_A_CAP"]

    def child() -> Any:
        ignored = caps.apply_process_caps(
            {s: names for s in ("bounding", "effective", "permitted", "inheritable", "ambient")}
        )
        return {"ignored": ignored, "status": cap_status()}

    got = ok(in_child(child))
    want = bit(*(n for n in names[:3] if n not in lacking))
    assert got["status"] == {
        "CapBnd": want,
        "CapEff": want,
        "CapPrm": want,
        "CapInh": want,
        "CapAmb": want,
    }
    expected = ["CAP_NOT_A_CAP"] + [n for n in names[:3] if n in lacking]
    assert got["ignored"] == expected


def test_ambient_caps_survive_setresuid_and_exec() -> None:
    spec = {
        "bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "effective": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"],  # KILL: not permitted
    }

    def prepare() -> Any:
        prctl(PR_SET_KEEPCAPS, 1)
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
        prctl(PR_SET_KEEPCAPS, 0)
        return caps.apply_process_caps(spec)

    wstatus, out, text = exec_in_child(prepare, ["/bin/cat", "/proc/self/status"])
    assert out == {"result": ["CAP_KILL"]}
    assert os.waitstatus_to_exitcode(wstatus) == 0
    two = bit("CAP_CHOWN", "CAP_NET_BIND_SERVICE")
    assert cap_status(text) == {
        "CapBnd": two | bit("CAP_KILL"),
        "CapEff": two,  # a non-root program holds its ambient caps after exec
        "CapPrm": two,
        "CapInh": two,
        "CapAmb": two,
    }
    assert status(text)["Uid"].split() == [str(NOBODY)] * 4


def test_without_keepcaps_the_bounding_set_cannot_be_dropped() -> None:
    def child() -> Any:
        os.setresuid(NOBODY, NOBODY, NOBODY)  # permitted set gone
        try:
            caps.apply_process_caps({"bounding": ["CAP_CHOWN"]})
        except SyscallError as exc:
            return [exc.errno, exc.op, exc.path]
        return None

    # the first capability to drop (CAP_CHOWN is kept)
    assert ok(in_child(child)) == [1, "prctl PR_CAPBSET_DROP", "CAP_DAC_OVERRIDE"]


# --- seccomp ---------------------------------------------------------------------------

BLOCK_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 13,
            "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}],
        },
    ],
}


def _probe(tmp: Path) -> dict[str, Any]:
    """What the filter lets through: errno of each call, 0 for success."""
    out: dict[str, Any] = {}
    try:
        os.mkdir(tmp / "d")
        out["mkdir"] = 0
    except OSError as exc:
        out["mkdir"] = exc.errno
    ctypes.set_errno(0)
    persona = libc.personality(ctypes.c_ulong(0xFFFFFFFF))
    out["personality_query"] = ctypes.get_errno() if persona == -1 else 0
    out["personality_set"] = 0 if libc.personality(ctypes.c_ulong(0)) != -1 else ctypes.get_errno()
    (tmp / "f").write_text("still works")
    out["file"] = (tmp / "f").read_text()
    out["pid"] = os.getpid() > 0
    s = status()
    out["seccomp"] = s["Seccomp"], s.get("Seccomp_filters")
    return out


def test_seccomp_errno_rules_and_arg_conditions(tmp_path: Path) -> None:
    with seccomp.compile_filter(BLOCK_MKDIR) as filt:
        filt.export_bpf()  # in the parent, before forking

        def child() -> Any:
            filt.load()
            return _probe(tmp_path)

        got = ok(in_child(child))
    assert got["mkdir"] == 1  # EPERM
    assert got["personality_query"] == 13  # EACCES: the argument matched
    assert got["personality_set"] == 0  # another argument: allowed
    assert got["file"] == "still works" and got["pid"]
    assert got["seccomp"] == ["2", "1"]
    assert not (tmp_path / "d").exists()


def test_the_same_filter_unloaded_allows_everything(tmp_path: Path) -> None:
    got = ok(in_child(lambda: _probe(tmp_path)))
    assert got["mkdir"] == 0 and got["personality_query"] == 0
    assert got["seccomp"][0] == "0"


def test_seccomp_kill_process_kills_with_sigsys() -> None:
    obj = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}],
    }
    with seccomp.compile_filter(obj) as filt:

        def child() -> Any:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
            filt.load()
            return os.getppid()

        wstatus, out = in_child(child)
    assert out is None
    assert os.WIFSIGNALED(wstatus) and os.WTERMSIG(wstatus) == signal.SIGSYS


def test_loading_needs_no_new_privs_or_cap_sys_admin(tmp_path: Path) -> None:
    with seccomp.compile_filter(BLOCK_MKDIR) as filt:

        def child() -> Any:
            eff, prm, inh = caps.capget()
            caps.capset(eff & ~bit("CAP_SYS_ADMIN"), prm, inh)
            try:
                filt.load()
            except SyscallError as exc:
                refused = [exc.errno, str(exc)]
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            filt.load()
            return [refused, _probe(tmp_path)["mkdir"]]

        refused, mkdir = ok(in_child(child))
    assert refused == [13, "seccomp SECCOMP_SET_MODE_FILTER: Permission denied"]
    assert mkdir == 1


def test_cached_program_with_flags(tmp_path: Path) -> None:
    obj = {**BLOCK_MKDIR, "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"]}
    cache = str(tmp_path / "cache")
    seccomp.compile_program(obj, cache_dir=cache)
    program, flags = seccomp.compile_program(obj, cache_dir=cache)  # read back
    assert flags == 3
    work = tmp_path / "work"
    work.mkdir()

    def child() -> Any:
        seccomp.load_bpf(program, flags)
        return _probe(work)

    got = ok(in_child(child))
    assert got["mkdir"] == 1 and got["personality_query"] == 13


@pytest.mark.skipif(not PODMAN.exists(), reason="containers-common's seccomp.json is not installed")
def test_podman_default_profile_runs_a_program() -> None:
    profile = json.loads(PODMAN.read_text())
    bounding = ["CAP_CHOWN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    with seccomp.compile_filter(profile, bounding=bounding) as filt:
        filt.export_bpf()

        def prepare() -> Any:
            filt.load()
            ctypes.set_errno(0)
            acct = libc.acct(None)  # root may; the profile says EPERM without CAP_SYS_PACCT
            return [acct, ctypes.get_errno()]

        wstatus, out, text = exec_in_child(prepare, ["/bin/sh", "-c", "echo hello from sh"])
    assert out == {"result": [-1, 1]}
    assert os.waitstatus_to_exitcode(wstatus) == 0
    assert text == "hello from sh\n"
