"""The last steps before the user's program runs, shared by init and exec.

Order matters, and is runc's:

    rlimits, oom_score_adj            (while still privileged)
    every fd above the preserved ones close-on-exec
    seccomp, when noNewPrivileges is off (loading it then needs CAP_SYS_ADMIN)
    keepcaps; setgroups/setresgid/setresuid; clear keepcaps
    bounding set, capset, ambient     (sampan.linux.caps.apply_process_caps)
    signals as they were before Python, umask, chdir(cwd)
    no_new_privs; seccomp when noNewPrivileges is on (nothing runs after it)
    execve
"""

from __future__ import annotations

import os

from sampan.errors import InvalidArgument, NotFound, Unsupported
from sampan.linux import caps
from sampan.linux.constants import RLIMITS
from sampan.linux.syscalls import (
    cloexec_from,
    default_signal_dispositions,
    set_keepcaps,
    set_no_new_privs,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CAP_SYS_RESOURCE = 24


def has_cap(bit: int) -> bool:
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    return False


RLIM_INFINITY = (1 << 64) - 1  # "unlimited" in config.json


def check_rlimits(process: dict[str, Any], field: str = "process") -> None:
    """Refuse, before anything is made, an rlimit this runtime cannot set.

    Raising a hard limit above the current one needs CAP_SYS_RESOURCE, which
    some hosts (these machines among them) do not give even to root.
    """
    privileged: bool | None = None
    if not process.get("rlimits"):
        return
    import resource

    for i, rl in enumerate(process["rlimits"]):
        if rl["type"] not in RLIMITS:
            raise InvalidArgument(f"config.json: {field}.rlimits[{i}].type: unknown rlimit"
                                  f" {rl['type']!r}")  # fmt: skip
        _soft_now, hard_now = resource.getrlimit(RLIMITS[rl["type"]])
        if hard_now == resource.RLIM_INFINITY or rl["hard"] <= hard_now:  # (2**64-1: above)
            continue
        if privileged is None:
            privileged = has_cap(CAP_SYS_RESOURCE)
        if not privileged:
            raise InvalidArgument(
                f"config.json: {field}.rlimits[{i}]: {rl['type']} hard limit {rl['hard']} is"
                f" above this host's {hard_now}, and raising it needs CAP_SYS_RESOURCE"
            )


def check_security_labels(process: dict[str, Any], linux: dict[str, Any] | None = None) -> None:
    """AppArmor profiles and SELinux labels: refused loudly on hosts without the LSM.

    sampan does not apply them yet; on a host where the LSM is off, a label
    could only be ignored, and ignoring a security setting is not an option.
    """
    if process.get("apparmorProfile"):
        raise Unsupported(
            "config.json: process.apparmorProfile: AppArmor profiles are not supported"
            " (and AppArmor is not enabled on this host)"
            if not _lsm_enabled("apparmor")
            else "config.json: process.apparmorProfile: AppArmor profiles are not supported yet"
        )
    for field, value in (
        ("process.selinuxLabel", process.get("selinuxLabel")),
        ("linux.mountLabel", (linux or {}).get("mountLabel")),
    ):
        if value:
            raise Unsupported(f"config.json: {field}: SELinux labels are not supported yet")


def _lsm_enabled(name: str) -> bool:
    try:
        with open("/sys/kernel/security/lsm") as f:
            return name in f.read().split(",")
    except OSError:
        return False


def apply_rlimits(process: dict[str, Any]) -> None:
    if not process.get("rlimits"):
        return
    import resource  # preloaded by sampan.runtime.init.preload

    for rl in process["rlimits"]:
        resource.setrlimit(RLIMITS[rl["type"]], (_rlim(rl["soft"]), _rlim(rl["hard"])))


def _rlim(value: int) -> int:
    """An OCI limit (RLIM_INFINITY is 2**64-1 there) as Python's resource module takes it."""
    import resource

    return resource.RLIM_INFINITY if value >= RLIM_INFINITY else value


def apply_oom_score_adj(process: dict[str, Any]) -> None:
    if "oomScoreAdj" in process:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(process["oomScoreAdj"]))


def environment(process: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in process.get("env", []):
        key, _, value = item.partition("=")
        env[key] = value
    if "HOME" not in env:
        env["HOME"] = _home_of(process.get("user", {}).get("uid", 0))
    return env


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd", "rb") as f:
            for line in f:
                parts = line.decode(errors="replace").rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def lookup_executable(arg0: str, env: dict[str, str], cwd: str) -> str:
    """Resolve ARG0 as execvp would, in the current root; NotFound if it is not there."""
    if "/" in arg0:
        path = arg0 if arg0.startswith("/") else os.path.join(cwd, arg0)
        if not os.path.exists(path):
            raise NotFound(f'exec: "{arg0}": no such file or directory')
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise InvalidArgument(f'exec: "{arg0}": permission denied')
        return path
    for d in env.get("PATH", DEFAULT_PATH).split(":"):
        path = os.path.join(d or ".", arg0)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise NotFound(f'exec: "{arg0}": executable file not found in $PATH')


def _hand_over_stdio(uid: int) -> None:
    """Give the process's user its stdio (pipes and ptys the runtime's caller made), as runc
    does; /dev/null and what cannot be changed are left alone."""
    null = os.stat("/dev/null").st_rdev if os.path.exists("/dev/null") else None
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if st.st_uid == uid or (null is not None and st.st_rdev == null and st.st_rdev):
            continue
        try:
            os.fchown(fd, uid, -1)
        except OSError as exc:
            if exc.errno not in (1, 22, 30):  # EPERM, EINVAL, EROFS
                raise


def enter_cwd(cwd: str) -> None:
    """chdir to CWD and check it is inside the container's root (CVE-2024-21626): a path
    through an fd the caller leaked, like /proc/self/fd/N, could lead outside it."""
    os.chdir(cwd)
    try:
        here = os.getcwd()
    except OSError:
        here = ""
    if not here.startswith("/"):
        raise InvalidArgument(f"process.cwd {cwd}: outside the container's root")


def switch_user(process: dict[str, Any], in_userns: bool) -> None:
    user = process.get("user", {})
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    _hand_over_stdio(uid)
    groups = user.get("additionalGids", [])
    try:
        os.setgroups(groups)
    except PermissionError:
        # A user namespace whose setgroups is "deny" refuses even the empty list.
        if groups or not in_userns:
            raise
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def restore_signals() -> None:
    """Signals as a new process expects them, before exec: every disposition the default
    (Python ignores SIGPIPE and SIGXFSZ, a caller may ignore others, and an ignored signal
    stays ignored across execve), and none blocked."""
    import _signal  # type: ignore[import-not-found]  # built in: importable after pivot_root

    default_signal_dispositions()
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def _load_seccomp(seccomp: tuple[bytes, int]) -> None:
    from sampan.linux.seccomp import load_bpf  # preloaded by sampan.runtime.init.preload

    load_bpf(*seccomp)


def finalize_and_exec(
    process: dict[str, Any],
    path: str,
    env: dict[str, str],
    seccomp: tuple[bytes, int] | None,
    preserve_fds: int = 0,
    in_userns: bool = False,
) -> NoReturn:
    """Become the user's process: never returns (raises if a step fails)."""
    nnp = bool(process.get("noNewPrivileges"))
    # Every fd but stdio and the preserved ones is closed by execve; ours (the
    # handshake socket) stay usable until then, to report a failure.
    cloexec_from(3 + preserve_fds)
    if seccomp is not None and not nnp:
        _load_seccomp(seccomp)
    set_keepcaps(True)
    switch_user(process, in_userns)
    set_keepcaps(False)
    ignored = caps.apply_process_caps(process.get("capabilities"))
    del ignored  # unknown or unavailable on this host: skipped, as runc does
    restore_signals()
    os.umask(process.get("user", {}).get("umask", 0o022))
    enter_cwd(process.get("cwd", "/"))
    if nnp:
        set_no_new_privs()
    if seccomp is not None and nnp:
        _load_seccomp(seccomp)
    os.execve(path, process["args"], env)
