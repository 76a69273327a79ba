"""The OCI ``linux.seccomp`` object, compiled by libseccomp and loaded before exec.

The runtime validates and compiles in the parent, *before* forking, so that
mistakes are reported early and the child has only one system call to make::

    validate_seccomp(spec["linux"]["seccomp"])          # pure, no libseccomp
    with compile_filter(spec["linux"]["seccomp"]) as filt:
        filt.export_bpf()                                # parent: generate the program
        pid = os.fork()
        if pid == 0:
            ...                                          # namespaces, setuid, caps
            filt.load()                                  # child, just before execve
            os.execve(...)

or, with programs cached across containers (libseccomp needs ~20 ms for the
default profiles)::

    program, flags = compile_program(seccomp, cache_dir="/run/sampan/seccomp")
    ...                                                  # fork; in the child:
    load_bpf(program, flags)

Loading needs either ``no_new_privs`` (``prctl(PR_SET_NO_NEW_PRIVS, 1)``,
which the runtime sets when ``process.noNewPrivileges`` is true) or
``CAP_SYS_ADMIN`` in the effective set; otherwise the kernel refuses with
EACCES.  This module never sets no_new_privs itself.  Order, as runc: with
``noNewPrivileges``, load as late as possible (just before execve, after the
capabilities are set); without it, load before the capabilities are dropped.

What is ignored or adjusted, as runc does: syscall names this libseccomp does
not know (kept in ``SeccompFilter.skipped``), rules whose action equals the
default action, ``errnoRet`` on actions other than ERRNO and TRACE.  ERRNO
and TRACE without a return value mean EPERM.  Conditions on the same argument
twice become one rule per condition (an OR), as runc does; otherwise a rule's
conditions are ANDed.  Not done (yet): runc's ENOSYS stub for syscalls newer
than the profile; profiles with ``defaultErrnoRet`` 38 (podman's) do not need it.

Docker's and podman's *profile* form (``archMap``, per-rule ``includes`` and
``excludes`` on capabilities, architectures and kernel versions, ``name``,
``errno`` names) is accepted too: ``from_profile`` turns it into the OCI form
the way the engines do, and ``compile_filter`` does so by itself when given one.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from sampan.errors import Conflict, InvalidArgument, Unsupported
from sampan.linux.errors import SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds to import; annotations only
    from collections.abc import Iterable, Mapping
    from typing import Any

__all__ = [
    "ACTIONS",
    "ARCHITECTURES",
    "FLAGS",
    "OPERATORS",
    "SeccompFilter",
    "compile_filter",
    "compile_program",
    "from_profile",
    "load_bpf",
    "preload",
    "validate_seccomp",
]

# seccomp.h: SCMP_ACT_*; ERRNO and TRACE carry a 16-bit value in the low bits.
ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": 0x00000000,  # = KILL_THREAD
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
_WITH_VALUE = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

# enum scmp_compare
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# The OCI names; the token comes from seccomp_arch_resolve_name (the lower-case
# suffix), so a libseccomp too old for one is reported, not guessed.
ARCHITECTURES: frozenset[str] = frozenset(
    (
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_PARISC",
        "SCMP_ARCH_PARISC64",
        "SCMP_ARCH_RISCV64",
        "SCMP_ARCH_LOONGARCH64",
        "SCMP_ARCH_M68K",
        "SCMP_ARCH_SH",
        "SCMP_ARCH_SHEB",
    )
)

# OCI flag -> SECCOMP_FILTER_FLAG_* bit for seccomp(2).
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_NEW_LISTENER": 8,
    "SECCOMP_FILTER_FLAG_TSYNC_ESRCH": 16,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}
# Valid flags sampan does not support: they belong to seccomp listeners.
_UNSUPPORTED_FLAGS = frozenset(
    (
        "SECCOMP_FILTER_FLAG_NEW_LISTENER",
        "SECCOMP_FILTER_FLAG_TSYNC_ESRCH",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    )
)

_MAX_ARGS = 6
_NR_SCMP_ERROR = -1

# uname machine -> (Go's GOARCH, as profiles' "arches" spell it; native SCMP arch)
_MACHINES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "i386": ("386", "SCMP_ARCH_X86"),
    "i486": ("386", "SCMP_ARCH_X86"),
    "i586": ("386", "SCMP_ARCH_X86"),
    "i686": ("386", "SCMP_ARCH_X86"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv6l": ("arm", "SCMP_ARCH_ARM"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "ppc64": ("ppc64", "SCMP_ARCH_PPC64"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
    "loongarch64": ("loong64", "SCMP_ARCH_LOONGARCH64"),
}


# --- validation (pure) -------------------------------------------------------


def _obj(v: object, field: str) -> dict[str, object]:
    if not isinstance(v, dict):
        raise InvalidArgument(f"{field}: must be an object")
    return v


def _list(v: object, field: str) -> list[object]:
    """A JSON array; null (Go's nil slice) is the empty list."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise InvalidArgument(f"{field}: must be an array")
    return v


def _str(v: object, field: str) -> str:
    if not isinstance(v, str):
        raise InvalidArgument(f"{field}: must be a string")
    return v


def _uint(v: object, field: str, top: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top:
        raise InvalidArgument(f"{field}: must be an integer from 0 to {top}")
    return v


def _strs(v: object, field: str) -> list[str]:
    return [_str(x, f"{field}[{i}]") for i, x in enumerate(_list(v, field))]


def _action(v: object, field: str) -> str:
    name = _str(v, field)
    if name not in ACTIONS:
        raise InvalidArgument(f'{field}: unknown action "{name}"')
    if name == "SCMP_ACT_NOTIFY":
        raise Unsupported(f"{field}: SCMP_ACT_NOTIFY needs a seccomp listener (not supported)")
    return name


def _arch(v: object, field: str) -> str:
    name = _str(v, field)
    if name not in ARCHITECTURES:
        raise InvalidArgument(f'{field}: unknown architecture "{name}"')
    return name


def _errno_name(v: object, field: str) -> int:
    name = _str(v, field)
    n = getattr(_errno, name, None) if name.startswith("E") else None
    if not isinstance(n, int):
        raise InvalidArgument(f'{field}: unknown errno "{name}"')
    return n


def _version(v: object, field: str) -> tuple[int, ...]:
    text = _str(v, field)
    parts = text.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise InvalidArgument(f'{field}: "{text}" is not a kernel version like "4.8"')
    return _release(text)


def _release(text: str) -> tuple[int, ...]:
    """(6, 1, 0) from "6.1.0-18-amd64"."""
    out: list[int] = []
    for part in text.split(".")[:3]:
        digits = ""
        for c in part:
            if not c.isdigit():
                break
            digits += c
        if not digits:
            break
        out.append(int(digits))
        if len(digits) < len(part):
            break
    return tuple(out)


def _condition(v: object, field: str) -> None:
    o = _obj(v, field)
    _uint(o.get("index"), f"{field}.index", _MAX_ARGS - 1)
    _uint(o.get("value"), f"{field}.value", 2**64 - 1)
    if o.get("valueTwo") is not None:
        _uint(o["valueTwo"], f"{field}.valueTwo", 2**64 - 1)
    op = _str(o.get("op"), f"{field}.op")
    if op not in OPERATORS:
        raise InvalidArgument(f'{field}.op: unknown operator "{op}"')


def _filter(v: object, field: str) -> None:
    """A profile rule's ``includes`` / ``excludes``."""
    if v is None:
        return
    o = _obj(v, field)
    _strs(o.get("caps"), f"{field}.caps")
    _strs(o.get("arches"), f"{field}.arches")
    if o.get("minKernel") not in (None, ""):
        _version(o["minKernel"], f"{field}.minKernel")


def _rule(v: object, field: str) -> None:
    o = _obj(v, field)
    if o.get("name") not in (None, ""):
        _str(o["name"], f"{field}.name")
        if o.get("names"):
            raise InvalidArgument(f"{field}: both name and names are given")
    elif "names" not in o:
        raise InvalidArgument(f"{field}.names: required")
    for i, name in enumerate(_strs(o.get("names"), f"{field}.names")):
        if not name:
            raise InvalidArgument(f"{field}.names[{i}]: must not be empty")
    if "action" not in o:
        raise InvalidArgument(f"{field}.action: required")
    _action(o["action"], f"{field}.action")
    if o.get("errnoRet") is not None:
        _uint(o["errnoRet"], f"{field}.errnoRet", 0xFFFF)
    if o.get("errno") not in (None, ""):
        _errno_name(o["errno"], f"{field}.errno")
    for i, cond in enumerate(_list(o.get("args"), f"{field}.args")):
        _condition(cond, f"{field}.args[{i}]")
    _filter(o.get("includes"), f"{field}.includes")
    _filter(o.get("excludes"), f"{field}.excludes")


def validate_seccomp(obj: object, field: str = "linux.seccomp") -> None:
    """Check the OCI ``linux.seccomp`` object (or a docker/podman profile).

    Raises InvalidArgument naming the field (``linux.seccomp.syscalls[3].action:
    unknown action "SCMP_ACT_FOO"``), and Unsupported for valid things sampan
    cannot do (SCMP_ACT_NOTIFY and listeners, some flags).  Unknown keys are
    ignored, as the OCI spec asks.
    """
    o = _obj(obj, field)
    if "defaultAction" not in o:
        raise InvalidArgument(f"{field}.defaultAction: required")
    _action(o["defaultAction"], f"{field}.defaultAction")
    if o.get("defaultErrnoRet") is not None:
        _uint(o["defaultErrnoRet"], f"{field}.defaultErrnoRet", 0xFFFF)
    if o.get("defaultErrno") not in (None, ""):
        _errno_name(o["defaultErrno"], f"{field}.defaultErrno")
    arches = _list(o.get("architectures"), f"{field}.architectures")
    for i, a in enumerate(arches):
        _arch(a, f"{field}.architectures[{i}]")
    arch_map = _list(o.get("archMap"), f"{field}.archMap")
    for i, entry in enumerate(arch_map):
        f = f"{field}.archMap[{i}]"
        e = _obj(entry, f)
        _arch(e.get("architecture"), f"{f}.architecture")
        for j, sub in enumerate(_list(e.get("subArchitectures"), f"{f}.subArchitectures")):
            _arch(sub, f"{f}.subArchitectures[{j}]")
    if arches and arch_map:
        raise InvalidArgument(f"{field}: give either architectures or archMap, not both")
    for i, flag in enumerate(_strs(o.get("flags"), f"{field}.flags")):
        if flag not in FLAGS:
            raise InvalidArgument(f'{field}.flags[{i}]: unknown flag "{flag}"')
        if flag in _UNSUPPORTED_FLAGS:
            raise Unsupported(f'{field}.flags[{i}]: "{flag}" is not supported')
    if o.get("listenerMetadata") is not None:
        _str(o["listenerMetadata"], f"{field}.listenerMetadata")
    if o.get("listenerPath") not in (None, ""):
        _str(o["listenerPath"], f"{field}.listenerPath")
        raise Unsupported(f"{field}.listenerPath: seccomp listeners are not supported")
    for i, rule in enumerate(_list(o.get("syscalls"), f"{field}.syscalls")):
        _rule(rule, f"{field}.syscalls[{i}]")


# --- the docker/podman profile form ---------------------------------------------


def _is_profile(o: Mapping[str, Any]) -> bool:
    if o.get("archMap") or o.get("defaultErrno"):
        return True
    return any(
        isinstance(r, dict) and any(r.get(k) for k in ("includes", "excludes", "name", "errno"))
        for r in o.get("syscalls") or ()
    )


def from_profile(
    profile: Mapping[str, Any],
    *,
    bounding: Iterable[str] = (),
    machine: str | None = None,
    kernel: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` object of a docker/podman seccomp profile.

    What docker and podman do when they write config.json: ``archMap`` gives
    the native architecture and its sub-architectures; a rule is kept when
    every ``includes.caps`` is in *bounding* (the container's bounding set),
    ``includes.arches`` names this machine (Go's names: amd64, arm64...) and
    the kernel is at least ``includes.minKernel``; it is dropped when any
    ``excludes`` matches.  ``name`` becomes ``names``; ``errno`` names become
    numbers where no ``errnoRet`` is given.  *machine* (``uname -m``) and
    *kernel* (release numbers) default to this host's.
    """
    field = "seccomp profile"
    validate_seccomp(profile, field)
    uname = os.uname()
    goarch, native = _MACHINES.get(machine or uname.machine, (machine or uname.machine, ""))
    running = kernel if kernel is not None else _release(uname.release)
    caps = set(bounding)

    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    elif profile.get("defaultErrno"):
        out["defaultErrnoRet"] = _errno_name(profile["defaultErrno"], f"{field}.defaultErrno")
    arches = list(profile.get("architectures") or ())
    for entry in profile.get("archMap") or ():
        if entry["architecture"] == native:
            arches.append(native)
            arches.extend(entry.get("subArchitectures") or ())
    if arches:
        out["architectures"] = arches
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if profile.get(key):
            out[key] = profile[key]

    rules: list[dict[str, Any]] = []
    for rule in profile.get("syscalls") or ():
        inc = rule.get("includes") or {}
        exc = rule.get("excludes") or {}
        if goarch in (exc.get("arches") or ()):
            continue
        if caps.intersection(exc.get("caps") or ()):
            continue
        if exc.get("minKernel") and running >= _release(exc["minKernel"]):
            continue
        if inc.get("arches") and goarch not in inc["arches"]:
            continue
        if not caps.issuperset(inc.get("caps") or ()):
            continue
        if inc.get("minKernel") and running < _release(inc["minKernel"]):
            continue
        new: dict[str, Any] = {
            "names": [rule["name"]] if rule.get("name") else list(rule.get("names") or ()),
            "action": rule["action"],
        }
        if rule.get("errnoRet") is not None:
            new["errnoRet"] = rule["errnoRet"]
        elif rule.get("errno"):
            new["errnoRet"] = _errno_name(rule["errno"], f"{field}.errno")
        if rule.get("args"):
            new["args"] = rule["args"]
        rules.append(new)
    out["syscalls"] = rules
    return out


# --- libseccomp -------------------------------------------------------------------


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


_libseccomp: Any = None


def preload() -> None:
    """Load libseccomp now (a fork server does, so its children need not)."""
    _lib()


def _lib() -> Any:
    """libseccomp.so.2, loaded on first use."""
    global _libseccomp
    if _libseccomp is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as exc:
            raise Unsupported(f"seccomp needs libseccomp.so.2: {exc}") from exc
        ctx, u32, cint = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int
        for name, restype, argtypes in (
            ("seccomp_init", ctx, [u32]),
            ("seccomp_release", None, [ctx]),
            ("seccomp_arch_resolve_name", u32, [ctypes.c_char_p]),
            ("seccomp_arch_add", cint, [ctx, u32]),
            ("seccomp_version", ctypes.POINTER(ctypes.c_uint * 3), []),
            ("seccomp_syscall_resolve_name", cint, [ctypes.c_char_p]),
            ("seccomp_rule_add_array", cint, [ctx, u32, cint, ctypes.c_uint, ctypes.c_void_p]),
            ("seccomp_export_bpf", cint, [ctx, cint]),
        ):
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        _libseccomp = lib
    return _libseccomp


def _token(action: str, ret: int | None) -> int:
    if action in _WITH_VALUE:
        return ACTIONS[action] | ((_errno.EPERM if ret is None else ret) & 0xFFFF)
    return ACTIONS[action]


class SeccompFilter:
    """A compiled libseccomp filter, to be loaded in the child just before execve.

    Export the program in the parent (``export_bpf()``, memoized): ``load()``
    in the child is then one ``seccomp(2)`` call.  A context manager;
    ``close()`` releases the libseccomp context (``load()`` still works after
    it once the program was exported).  ``skipped`` lists the syscall names
    this libseccomp does not know; ``flags`` are the ``seccomp(2)`` flags.
    """

    def __init__(self, lib: Any, ctx: int, flags: int) -> None:
        self._lib = lib
        self._ctx: int | None = ctx
        self._program: bytes | None = None
        self.flags = flags
        self.skipped: list[str] = []

    def export_bpf(self) -> bytes:
        """The BPF program (an array of ``struct sock_filter``), generated once."""
        if self._program is None:
            if self._ctx is None:
                raise Conflict("seccomp filter is closed")
            fd = os.memfd_create("sampan-seccomp", os.MFD_CLOEXEC)
            try:
                rc = self._lib.seccomp_export_bpf(self._ctx, fd)
                if rc < 0:
                    raise SyscallError(-rc, "seccomp_export_bpf")
                self._program = os.pread(fd, os.fstat(fd).st_size, 0)
            finally:
                os.close(fd)
        return self._program

    def load(self) -> None:
        """Install the filter on the calling thread (on all its threads with TSYNC).

        Needs no_new_privs or CAP_SYS_ADMIN (else SyscallError EACCES).
        """
        load_bpf(self.export_bpf(), self.flags)

    def close(self) -> None:
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            self._lib.seccomp_release(ctx)

    def __enter__(self) -> SeccompFilter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def compile_filter(
    obj: Mapping[str, Any],
    *,
    bounding: Iterable[str] = (),
    field: str = "linux.seccomp",
) -> SeccompFilter:
    """Validate *obj* and build its libseccomp filter (not loaded yet).

    *obj* is the OCI ``linux.seccomp`` object, or a docker/podman profile
    (turned into one by ``from_profile`` with *bounding*, the container's
    bounding capability names).  Raises InvalidArgument/Unsupported for the
    input and SyscallError when libseccomp fails for another reason.
    """
    validate_seccomp(obj, field)
    if _is_profile(obj):
        obj = from_profile(obj, bounding=bounding)
    lib = _lib()
    default = _token(obj["defaultAction"], obj.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise Unsupported(f"{field}.defaultAction: libseccomp refused {obj['defaultAction']}")
    flags = 0
    for flag in obj.get("flags") or ():
        flags |= FLAGS[flag]
    filt = SeccompFilter(lib, ctx, flags)
    try:
        _build(lib, ctx, obj, default, field, filt.skipped)
    except BaseException:
        filt.close()
        raise
    return filt


def _build(
    lib: Any, ctx: int, obj: Mapping[str, Any], default: int, field: str, skipped: list[str]
) -> None:
    for i, name in enumerate(obj.get("architectures") or ()):
        token = lib.seccomp_arch_resolve_name(name[len("SCMP_ARCH_") :].lower().encode())
        if not token:
            raise Unsupported(f'{field}.architectures[{i}]: libseccomp does not know "{name}"')
        rc = lib.seccomp_arch_add(ctx, token)
        if rc < 0 and rc != -_errno.EEXIST:  # the native one is there already
            raise SyscallError(-rc, "seccomp_arch_add", name)

    for i, rule in enumerate(obj.get("syscalls") or ()):
        action = _token(rule["action"], rule.get("errnoRet"))
        if action == default:
            continue  # libseccomp refuses it; it changes nothing
        args = rule.get("args") or ()
        conds = [
            _ArgCmp(a["index"], OPERATORS[a["op"]], a["value"], a.get("valueTwo") or 0)
            for a in args
        ]
        indexes = [a["index"] for a in args]
        # The same argument twice: one rule per condition (an OR), as runc does.
        groups = [[c] for c in conds] if len(set(indexes)) < len(indexes) else [conds]
        for name in rule["names"]:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == _NR_SCMP_ERROR:
                if name not in skipped:
                    skipped.append(name)
                continue
            for group in groups:
                array = (_ArgCmp * len(group))(*group) if group else None
                rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), array)
                if rc == -_errno.ENOMEM:
                    raise SyscallError(-rc, "seccomp_rule_add", name)
                if rc < 0:
                    raise InvalidArgument(
                        f'{field}.syscalls[{i}]: libseccomp refused the rule for "{name}": '
                        f"{os.strerror(-rc)}"
                    )


# --- loading, and a cache of programs ---------------------------------------------


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_SECCOMP_SET_MODE_FILTER = 1
# __NR_seccomp by uname machine; others ask libseccomp.
_NR_SECCOMP: dict[str, int] = {
    "x86_64": 317,
    "aarch64": 277,
    "riscv64": 277,
    "loongarch64": 277,
    "i386": 354,
    "i686": 354,
    "armv7l": 383,
    "ppc64le": 358,
    "ppc64": 358,
    "s390x": 348,
}


# Read once, at import: under a PER_LINUX32 personality uname() says i686 on x86_64.
_MACHINE = os.uname().machine


def load_bpf(program: bytes, flags: int = 0) -> None:
    """Install a BPF *program* (as ``export_bpf`` gives) with ``seccomp(2)``.

    *flags* are ``SECCOMP_FILTER_FLAG_*`` bits (``SeccompFilter.flags``).
    Needs no_new_privs or CAP_SYS_ADMIN in the effective set.
    """
    if not program or len(program) % 8 or len(program) // 8 > 0xFFFF:
        raise InvalidArgument(f"seccomp program: {len(program)} bytes is not a BPF program")
    from sampan.linux._libc import libc

    nr = _NR_SECCOMP.get(_MACHINE)
    if nr is None:
        nr = int(_lib().seccomp_syscall_resolve_name(b"seccomp"))
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    ul = ctypes.c_ulong
    ret = libc.syscall(
        ctypes.c_long(nr), ul(_SECCOMP_SET_MODE_FILTER), ul(flags), ctypes.byref(prog)
    )
    if ret == -1:
        raise SyscallError(ctypes.get_errno(), "seccomp SECCOMP_SET_MODE_FILTER")
    if ret > 0:  # TSYNC: the id of a thread that could not be synchronized
        raise SyscallError(_errno.ESRCH, "seccomp SECCOMP_FILTER_FLAG_TSYNC", f"thread {ret}")


def compile_program(
    obj: Mapping[str, Any],
    *,
    bounding: Iterable[str] = (),
    cache_dir: str | None = None,
    field: str = "linux.seccomp",
) -> tuple[bytes, int]:
    """The BPF program and ``seccomp(2)`` flags of *obj*, for ``load_bpf``.

    libseccomp takes ~20 ms for docker's or podman's default profile on three
    architectures; with *cache_dir* (under ``--exec-root``, so a reboot clears
    it) each distinct object is compiled once and read back afterwards.  The
    key is a SHA-256 of the (converted) object, libseccomp's version and the
    machine.  *obj* is validated every time.
    """
    validate_seccomp(obj, field)
    if _is_profile(obj):
        obj = from_profile(obj, bounding=bounding)
    flags = 0
    for flag in obj.get("flags") or ():
        flags |= FLAGS[flag]
    path = None
    if cache_dir is not None:
        path = os.path.join(cache_dir, _cache_key(obj) + ".bpf")
        try:
            with open(path, "rb") as f:
                program = f.read()
            if program and not len(program) % 8:
                return program, flags
        except OSError:
            pass
    with compile_filter(obj, field=field) as filt:
        program = filt.export_bpf()
    if path is not None and cache_dir is not None:
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            os.makedirs(cache_dir, 0o700, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(program)
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written is only slower
    return program, flags


def _cache_key(obj: Mapping[str, Any]) -> str:
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # cheap; hashlib loads OpenSSL
    except ImportError:
        from hashlib import sha256
    version = tuple(_lib().seccomp_version().contents)
    text = repr(("sampan-seccomp/1", version, os.uname().machine, obj))
    return str(sha256(text.encode()).hexdigest())
