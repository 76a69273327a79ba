"""The default seccomp policy of a container, as an OCI ``linux.seccomp`` object.

Docker applies one default profile unless told ``seccomp=unconfined`` or
given another; sampan's gives the same effective policy, built here from
tables rather than shipped as a JSON file:

  - anything not listed fails with EPERM (``SCMP_ACT_ERRNO``, errno 1);
  - ``ALLOWED``: the system calls every container may make;
  - ``BY_CAPABILITY``: calls unlocked only when the container's bounding set
    holds a capability -- CAP_SYS_ADMIN gives mount, unshare, setns, bpf,
    clone with namespace flags..., CAP_SYS_PTRACE gives ptrace, kcmp,
    process_vm_*...;
  - without CAP_SYS_ADMIN, ``clone`` is allowed only when its flags carry
    none of the CLONE_NEW* bits, and ``clone3`` (whose flags live in a
    struct seccomp cannot read) fails with ENOSYS so libcs fall back to clone;
  - ``personality`` only with the harmless personas (PER_LINUX, UNAME26,
    ADDR_NO_RANDOMIZE, both, and the 0xffffffff query);
  - ``socket`` for every family but AF_VSOCK;
  - a few calls per architecture (arch_prctl on x86-64, set_tls on arm...).

The object depends only on the capability set and the machine, so the
runtime's compiled-program cache (keyed by the object) compiles each
distinct one once; ``default_seccomp`` memoizes the object itself.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

__all__ = ["ALLOWED", "BY_CAPABILITY", "NAMESPACE_FLAGS", "default_seccomp"]

# Calls every container may make, grouped by what they are for.
_GROUPS = {
    "files": """
        access faccessat faccessat2 chdir fchdir chmod fchmod fchmodat chown chown32 fchown
        fchown32 fchownat lchown lchown32 close close_range creat dup dup2 dup3 open openat
        openat2 read readv pread64 preadv preadv2 write writev pwrite64 pwritev pwritev2 lseek
        _llseek stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs
        statfs64 fstatfs fstatfs64 getdents getdents64 getcwd link linkat symlink symlinkat
        unlink unlinkat rename renameat renameat2 mkdir mkdirat rmdir mknod mknodat readlink
        readlinkat truncate truncate64 ftruncate ftruncate64 fallocate fadvise64 fadvise64_64
        readahead fsync fdatasync sync syncfs sync_file_range flock fcntl fcntl64 umask utime
        utimes utimensat utimensat_time64 futimesat copy_file_range sendfile sendfile64 splice
        tee vmsplice name_to_handle_at
    """,
    "xattrs": """
        getxattr lgetxattr fgetxattr setxattr lsetxattr fsetxattr listxattr llistxattr
        flistxattr removexattr lremovexattr fremovexattr
    """,
    "events": """
        epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait
        epoll_pwait2 eventfd eventfd2 inotify_init inotify_init1 inotify_add_watch
        inotify_rm_watch fanotify_mark poll ppoll ppoll_time64 select _newselect pselect6
        pselect6_time64 signalfd signalfd4 timerfd_create timerfd_settime timerfd_settime64
        timerfd_gettime timerfd_gettime64 io_setup io_destroy io_submit io_cancel io_getevents
        io_pgetevents io_pgetevents_time64 io_uring_setup io_uring_enter io_uring_register
    """,
    "memory": """
        brk mmap mmap2 munmap mremap mprotect madvise mincore msync mlock mlock2 mlockall
        munlock munlockall remap_file_pages membarrier memfd_create memfd_secret pkey_alloc
        pkey_free pkey_mprotect
    """,
    "processes": """
        execve execveat exit exit_group fork vfork wait4 waitid waitpid getpid getppid gettid
        getpgid setpgid getpgrp getsid setsid getpriority setpriority getrlimit setrlimit
        ugetrlimit prlimit64 getrusage prctl capget capset sched_yield sched_getaffinity
        sched_setaffinity sched_getattr sched_setattr sched_getparam sched_setparam
        sched_getscheduler sched_setscheduler sched_get_priority_max sched_get_priority_min
        sched_rr_get_interval sched_rr_get_interval_time64 set_tid_address set_robust_list
        get_robust_list set_thread_area get_thread_area rseq restart_syscall seccomp getcpu
        ioprio_get ioprio_set pidfd_open pidfd_send_signal process_mrelease landlock_add_rule
        landlock_create_ruleset landlock_restrict_self futex futex_time64 futex_waitv ioctl
    """,
    "identity": """
        getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getgroups
        getgroups32 getresuid getresuid32 getresgid getresgid32 setuid setuid32 setgid setgid32
        setreuid setreuid32 setregid setregid32 setresuid setresuid32 setresgid setresgid32
        setfsuid setfsuid32 setfsgid setfsgid32 setgroups setgroups32
    """,
    "signals": """
        kill tkill tgkill pause alarm rt_sigaction rt_sigprocmask rt_sigpending rt_sigqueueinfo
        rt_tgsigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
        sigaltstack sigprocmask sigreturn
    """,
    "time": """
        time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64
        clock_nanosleep clock_nanosleep_time64 nanosleep adjtimex clock_adjtime clock_adjtime64
        getitimer setitimer timer_create timer_delete timer_getoverrun timer_gettime
        timer_gettime64 timer_settime timer_settime64 times
    """,
    "sockets": """
        accept accept4 bind connect listen getsockname getpeername getsockopt setsockopt
        socketpair socketcall send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg
        recvmmsg_time64 shutdown
    """,
    "ipc": """
        pipe pipe2 ipc msgget msgsnd msgrcv msgctl semget semop semtimedop semtimedop_time64
        semctl shmget shmat shmdt shmctl mq_open mq_unlink mq_timedsend mq_timedsend_time64
        mq_timedreceive mq_timedreceive_time64 mq_notify mq_getsetattr
    """,
    "system": "uname sysinfo getrandom",
}
ALLOWED: frozenset[str] = frozenset(name for text in _GROUPS.values() for name in text.split())

# Calls a capability in the container's bounding set unlocks.
BY_CAPABILITY: dict[str, tuple[str, ...]] = {
    "CAP_SYS_ADMIN": (
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
        "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
        "umount2", "unshare",
    ),
    "CAP_SYS_PTRACE": (
        "ptrace", "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
        "process_vm_writev",
    ),
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
}  # fmt: skip

# Since kernel 4.8 a seccomp filter cannot be bypassed through ptrace, so these are
# safe for every container (the profile's own minimum kernel for them is 4.8).
_PTRACE_SAFE = ("ptrace", "process_vm_readv", "process_vm_writev")

# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
NAMESPACE_FLAGS = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000
                   | 0x40000000)  # fmt: skip
_PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)  # PER_LINUX, UNAME26, ADDR_NO_RANDOMIZE
_AF_VSOCK = 40
_ENOSYS = 38

# uname -m -> (seccomp architectures, extra calls of that architecture)
_MACHINES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "x86_64": (("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
               ("arch_prctl", "modify_ldt")),
    "aarch64": (("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
                ("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
                 "cacheflush", "set_tls")),
    "s390x": (("SCMP_ARCH_S390X", "SCMP_ARCH_S390"),
              ("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr")),
    "ppc64le": (("SCMP_ARCH_PPC64LE",), ("sync_file_range2", "swapcontext")),
    "riscv64": (("SCMP_ARCH_RISCV64",), ("riscv_flush_icache",)),
}  # fmt: skip

_memo: dict[tuple[frozenset[str], str], dict[str, Any]] = {}


def default_seccomp(capabilities: Iterable[str], machine: str | None = None) -> dict[str, Any]:
    """The default policy for a container whose bounding set is CAPABILITIES.

    MACHINE is ``uname -m`` (this host's by default).  The result is shared
    between callers: do not mutate it.
    """
    caps = frozenset(capabilities)
    machine = machine or os.uname().machine
    key = (caps, machine)
    found = _memo.get(key)
    if found is None:
        found = _memo[key] = _build(caps, machine)
    return found


def _build(caps: frozenset[str], machine: str) -> dict[str, Any]:
    arches, arch_calls = _MACHINES.get(machine, ((), ()))
    allowed = set(ALLOWED) | set(_PTRACE_SAFE) | set(arch_calls)
    for cap, names in BY_CAPABILITY.items():
        if cap in caps:
            allowed.update(names)
    rules: list[dict[str, Any]] = [{"names": sorted(allowed), "action": "SCMP_ACT_ALLOW"}]
    rules.append({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 0, "value": _AF_VSOCK, "op": "SCMP_CMP_NE"}]})  # fmt: skip
    for persona in _PERSONAS:
        rules.append({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}]})  # fmt: skip
    if "CAP_SYS_ADMIN" not in caps:
        # The flags are clone's first argument, but its second on s390.
        index = 1 if machine == "s390x" else 0
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": index, "value": NAMESPACE_FLAGS, "valueTwo": 0,
                                "op": "SCMP_CMP_MASKED_EQ"}]})  # fmt: skip
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": _ENOSYS})
    out: dict[str, Any] = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1}
    if arches:
        out["architectures"] = list(arches)
    out["syscalls"] = rules
    return out
