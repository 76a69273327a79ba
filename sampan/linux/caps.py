"""Linux capabilities: the name table, the five sets, and the pre-exec sequence.

A capability set is an ``int`` bitmask (bit *n* is capability *n*).  The
kernel calls used are ``prctl(PR_CAPBSET_READ/DROP)``, ``capget``/``capset``
(version 3: two 32-bit words per set) and ``prctl(PR_CAP_AMBIENT)``.

What a runtime does just before ``execve`` (runc's ``finalizeNamespace``)::

    prctl(PR_SET_KEEPCAPS, 1)      # the caller: keep *permitted* across setuid
    setgroups / setresgid / setresuid(uid, uid, uid)
    apply_process_caps(config["process"].get("capabilities"))
    execve(...)                    # KEEPCAPS is reset by execve itself

``apply_process_caps`` must come *after* ``setresuid``: a change of uid from 0
to non-zero clears the ambient set (and the effective set), so ambient
capabilities raised before it would be lost.  It first makes the permitted set
effective again, so that dropping the bounding set (which needs
``CAP_SETPCAP`` in the effective set) works after ``setresuid`` too, provided
the caller kept the permitted set with ``PR_SET_KEEPCAPS`` (or stays uid 0).

Like runc, names that are unknown or above ``/proc/sys/kernel/cap_last_cap``
are ignored (returned for the caller to log), and so are capabilities the
host's bounding set lacks (``CAP_SYS_RESOURCE`` on some machines): the process
could never hold them, and asking ``capset`` for them would fail.
"""

from __future__ import annotations

import ctypes

from sampan.errors import InvalidArgument
from sampan.linux._libc import libc
from sampan.linux.errors import check

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds to import; annotations only
    from collections.abc import Mapping

__all__ = [
    "CAPABILITIES",
    "ProcessCaps",
    "ambient",
    "apply_process_caps",
    "bounding_set",
    "cap_names",
    "capget",
    "capset",
    "drop_bounding",
    "last_cap",
    "parse_caps",
    "parse_process_caps",
    "set_ambient",
]

# include/uapi/linux/capability.h
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

# include/uapi/linux/prctl.h
_PR_CAPBSET_READ = 23
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_IS_SET = 1
_PR_CAP_AMBIENT_RAISE = 2
_PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    # prctl is variadic: pass every argument as an unsigned long explicitly
    # (and leave the shared handle's argtypes alone).
    ul = ctypes.c_ulong
    return int(libc.prctl(ctypes.c_int(option), ul(arg2), ul(arg3), ul(0), ul(0)))


_last_cap: int | None = None


def last_cap() -> int:
    """The highest capability number this kernel knows (cached)."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
                _last_cap = int(f.read())
        except OSError:
            # No /proc yet: probe, PR_CAPBSET_READ fails with EINVAL past the end.
            n = 0
            while _prctl(_PR_CAPBSET_READ, n + 1) >= 0:
                n += 1
            _last_cap = n
    return _last_cap


def _all_mask() -> int:
    return (1 << (last_cap() + 1)) - 1


def cap_names(mask: int) -> list[str]:
    """The names of the capabilities in *mask*, in number order."""
    by_number = {v: k for k, v in CAPABILITIES.items()}
    out: list[str] = []
    n = 0
    while mask >> n:
        if mask >> n & 1:
            out.append(by_number.get(n, f"CAP_{n}"))
        n += 1
    return out


def parse_caps(names: object, field: str) -> tuple[int, list[str]]:
    """The bitmask of *names*, and the names ignored.

    Ignored (as runc does, with a warning the caller logs): names that are not
    capabilities, and capabilities above this kernel's ``cap_last_cap``.
    Raises InvalidArgument naming *field* when *names* is not a list of strings.
    """
    if not isinstance(names, list):
        raise InvalidArgument(f"{field}: must be a list of capability names")
    top = last_cap()
    mask = 0
    ignored: list[str] = []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise InvalidArgument(f"{field}[{i}]: must be a string")
        n = CAPABILITIES.get(name)
        if n is None or n > top:
            if name not in ignored:
                ignored.append(name)
        else:
            mask |= 1 << n
    return mask, ignored


class ProcessCaps:
    """The five capability sets of a process, as bitmasks."""

    __slots__ = _SETS

    def __init__(
        self,
        *,
        bounding: int = 0,
        effective: int = 0,
        permitted: int = 0,
        inheritable: int = 0,
        ambient: int = 0,
    ) -> None:
        self.bounding = bounding
        self.effective = effective
        self.permitted = permitted
        self.inheritable = inheritable
        self.ambient = ambient

    def union(self) -> int:
        """Every capability named in any set."""
        return self.bounding | self.effective | self.permitted | self.inheritable | self.ambient

    def masked(self, mask: int) -> ProcessCaps:
        """These sets with everything outside *mask* removed."""
        return ProcessCaps(
            bounding=self.bounding & mask,
            effective=self.effective & mask,
            permitted=self.permitted & mask,
            inheritable=self.inheritable & mask,
            ambient=self.ambient & mask,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProcessCaps):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in _SETS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        sets = ", ".join(f"{s}={getattr(self, s):#x}" for s in _SETS)
        return f"ProcessCaps({sets})"


def parse_process_caps(
    obj: Mapping[str, object] | None, field: str = "process.capabilities"
) -> tuple[ProcessCaps, list[str]]:
    """Parse the OCI ``process.capabilities`` object; returns the sets and the ignored names.

    A missing object or a missing set means the empty set (runc: no
    capabilities at all).  Call it in the parent to report errors early.
    """
    if obj is None:
        return ProcessCaps(), []
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{field}: must be an object")
    masks: dict[str, int] = {}
    ignored: list[str] = []
    for s in _SETS:
        names = obj.get(s)
        if names is None:
            masks[s] = 0
            continue
        masks[s], bad = parse_caps(names, f"{field}.{s}")
        ignored.extend(n for n in bad if n not in ignored)
    return ProcessCaps(**masks), ignored


def bounding_set() -> int:
    """The calling thread's capability bounding set."""
    mask = 0
    for n in range(last_cap() + 1):
        if check(_prctl(_PR_CAPBSET_READ, n), "prctl PR_CAPBSET_READ"):
            mask |= 1 << n
    return mask


def drop_bounding(keep: int, *, current: int | None = None) -> None:
    """Drop every capability not in *keep* from the bounding set.

    Needs ``CAP_SETPCAP`` in the effective set when anything is to be dropped.
    *current* is the bounding set if the caller has just read it.
    """
    if current is None:
        current = bounding_set()
    for n in range(last_cap() + 1):
        bit = 1 << n
        if current & bit and not keep & bit:
            check(_prctl(_PR_CAPBSET_DROP, n), "prctl PR_CAPBSET_DROP", cap_names(bit)[0])


def capget() -> tuple[int, int, int]:
    """The calling thread's (effective, permitted, inheritable) sets."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    check(libc.capget(ctypes.byref(hdr), data), "capget")
    return (
        data[0].effective | data[1].effective << 32,
        data[0].permitted | data[1].permitted << 32,
        data[0].inheritable | data[1].inheritable << 32,
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's effective, permitted and inheritable sets."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = effective >> shift & 0xFFFFFFFF
        data[i].permitted = permitted >> shift & 0xFFFFFFFF
        data[i].inheritable = inheritable >> shift & 0xFFFFFFFF
    check(libc.capset(ctypes.byref(hdr), data), "capset")


def ambient() -> int:
    """The calling thread's ambient set."""
    mask = 0
    for n in range(last_cap() + 1):
        if check(_prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_IS_SET, n), "prctl PR_CAP_AMBIENT"):
            mask |= 1 << n
    return mask


def set_ambient(mask: int) -> int:
    """Make the ambient set *mask*; returns the capabilities skipped.

    Clears the ambient set, then raises each capability of *mask*.  As runc
    does, a capability that cannot be raised is skipped rather than an error:
    one not in both the permitted and the inheritable set, or one the kernel
    refuses (``SECBIT_NO_CAP_AMBIENT_RAISE``).  The caller logs the skipped.
    """
    check(_prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL), "prctl PR_CAP_AMBIENT_CLEAR_ALL")
    mask &= _all_mask()
    if not mask:
        return 0
    _, permitted, inheritable = capget()
    skipped = mask & ~(permitted & inheritable)
    for n in range(last_cap() + 1):
        bit = 1 << n
        raise_it = mask & bit and not skipped & bit
        if raise_it and _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, n) == -1:
            skipped |= bit
    return skipped


def apply_process_caps(caps: Mapping[str, object] | ProcessCaps | None) -> list[str]:
    """Give the calling thread the OCI ``process.capabilities``; returns the names ignored.

    Call it after ``PR_SET_KEEPCAPS`` + ``setresuid`` and just before
    ``execve`` (see the module docstring).  Parsing in the parent
    (``parse_process_caps``) and passing the ``ProcessCaps`` saves the child
    work and reports bad input before the fork.  The sequence:

    1. read the host bounding set; capabilities outside it are ignored;
    2. make the permitted set effective (``capset``), so that ``CAP_SETPCAP``
       is usable even though ``setresuid`` cleared the effective set;
    3. drop the bounding set to ``bounding``;
    4. ``capset(effective, permitted, inheritable)``;
    5. the ambient set: cleared, then each of ``ambient`` raised (skipped when
       it is not permitted and inheritable, as runc does).

    The names returned (for the caller to log, as runc warns) are unknown ones,
    ones above ``cap_last_cap``, ones the host's bounding set lacks, and
    ambient ones that could not be raised.  ``None`` means no capabilities.
    Kernel refusals raise SyscallError.
    """
    ignored: list[str]
    if isinstance(caps, ProcessCaps):
        want, ignored = caps, []
    else:
        want, ignored = parse_process_caps(caps)
    host = bounding_set()
    ignored.extend(n for n in cap_names(want.union() & ~host) if n not in ignored)
    want = want.masked(host)

    effective, permitted, inheritable = capget()
    if effective != permitted:
        capset(permitted, permitted, inheritable)
    drop_bounding(want.bounding, current=host)
    capset(want.effective, want.permitted, want.inheritable)
    skipped = set_ambient(want.ambient)
    ignored.extend(n for n in cap_names(skipped) if n not in ignored)
    return ignored
