"""Capabilities, seccomp, no-new-privileges, --privileged, devices and --init through
`sampan daemon`, with the real docker CLI, checked from inside the container.

The default profile must stop what docker's stops (unshare, mount: EPERM)
and let ordinary programs run; --privileged must work on this machine
(whose bounding set lacks CAP_SYS_RESOURCE, where docker's fails).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.daemon_fixtures import SampanDaemon, busybox_daemon, needs_docker_cli

pytestmark = needs_docker_cli
DEFAULT_CAPS = 0xA80425FB  # docker's default set
daemon = busybox_daemon("security")


def _run(daemon: SampanDaemon, *args: str) -> tuple[int, str]:
    """A container run to its end: (exit code, its output)."""
    cid = daemon.docker("run", "-d", *args).stdout.strip()
    code = int(daemon.docker("wait", cid).stdout.strip())
    out = daemon.docker("logs", cid)
    daemon.docker("rm", cid)
    return code, out.stdout + out.stderr


def _status(daemon: SampanDaemon, *args: str) -> dict[str, str]:
    code, out = _run(daemon, *args, "busybox", "cat", "/proc/1/status")
    assert code == 0, out
    return {k: v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines())}


def _own_bounding() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    raise AssertionError("no CapBnd")


def test_defaults(daemon: SampanDaemon) -> None:
    status = _status(daemon)
    assert int(status["CapEff"], 16) == DEFAULT_CAPS == int(status["CapBnd"], 16)
    assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "0"


def test_default_profile_denies_namespaces_and_mounts(daemon: SampanDaemon) -> None:
    code, out = _run(daemon, "busybox", "unshare", "-n", "true")
    assert code == 1 and "Operation not permitted" in out
    code, out = _run(daemon, "busybox", "mount", "-t", "tmpfs", "x", "/tmp")
    assert code != 0 and "permission denied" in out.lower()
    # even with CAP_SYS_ADMIN, clone with namespace flags needs the profile's SYS_ADMIN group,
    # which it has: the profile follows the capabilities
    code, out = _run(daemon, "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c",
                     "unshare -n true && mount -t tmpfs x /tmp && echo both")  # fmt: skip
    assert (code, out.strip()) == (0, "both")


def test_ordinary_programs_run_under_the_default_profile(daemon: SampanDaemon) -> None:
    # (this busybox's wget segfaults on the host too, seccomp or not: nc makes the connection)
    script = ("ls / >/dev/null && date >/dev/null && ps >/dev/null && id -u && "
              "(nc 127.0.0.1 1 </dev/null 2>&1 || true) && "
              "sh -c 'echo child' && sleep 0.1 && echo done")  # fmt: skip
    code, out = _run(daemon, "busybox", "sh", "-c", script)
    assert code == 0, out
    assert "Connection refused" in out and "child" in out and out.strip().endswith("done")
    assert "not permitted" not in out


def test_unconfined_with_sys_admin(daemon: SampanDaemon) -> None:
    code, out = _run(daemon, "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
                     "busybox", "sh", "-c",
                     "grep Seccomp: /proc/1/status; unshare -n true && "
                     "mount -t tmpfs x /tmp && echo ok")  # fmt: skip
    assert code == 0 and "Seccomp:\t0" in out and out.strip().endswith("ok"), out


def test_privileged_works_on_this_machine(daemon: SampanDaemon) -> None:
    code, out = _run(daemon, "--privileged", "busybox", "sh", "-c",
                     "grep -E '^(CapEff|Seccomp):' /proc/1/status; unshare -n true && "
                     "mount -t tmpfs x /tmp && echo mounted; grep ' /sys ' /proc/mounts; "
                     "ls /dev | wc -l; cat /proc/sys/kernel/hostname >/dev/null && "
                     "echo 1 > /proc/sys/kernel/hostname 2>/dev/null; echo end")  # fmt: skip
    assert code == 0, out
    lines = dict(ln.split(":\t") for ln in out.splitlines() if ":\t" in ln)
    assert int(lines["CapEff"], 16) == _own_bounding()  # the daemon's set: no CAP_SYS_RESOURCE
    assert lines["Seccomp"] == "0"
    assert "mounted" in out
    assert "sysfs /sys sysfs rw," in out
    host_nodes = len(os.listdir("/dev"))
    count = int(next(ln for ln in out.splitlines() if ln.strip().isdigit()))
    assert count > 20 and count >= host_nodes // 2  # the host's devices


def test_no_new_privileges_and_cap_drop(daemon: SampanDaemon) -> None:
    assert _status(daemon, "--security-opt", "no-new-privileges")["NoNewPrivs"] == "1"
    assert _status(daemon, "--security-opt", "no-new-privileges=false")["NoNewPrivs"] == "0"
    status = _status(daemon, "--cap-drop", "ALL", "--cap-add", "chown")
    assert int(status["CapEff"], 16) == 1
    status = _status(daemon, "--cap-drop", "NET_RAW", "--cap-add", "CAP_SYS_PTRACE")
    assert int(status["CapEff"], 16) == (DEFAULT_CAPS & ~(1 << 13)) | (1 << 19)
    code, out = _run(daemon, "--cap-drop", "CHOWN", "busybox", "chown", "1", "/tmp")
    assert code == 1 and "Operation not permitted" in out


def test_seccomp_profile_file(daemon: SampanDaemon, tmp_path: Path) -> None:
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }))  # fmt: skip
    code, out = _run(daemon, "--security-opt", f"seccomp={profile}", "busybox", "sh", "-c",
                     "touch /tmp/f && echo touched; mkdir /tmp/d")  # fmt: skip
    assert code == 1 and "touched" in out and "Operation not permitted" in out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"defaultAction": "SCMP_ACT_SOMETIMES"}))
    done = daemon.docker("run", "-d", "--security-opt", f"seccomp={bad}", "busybox", "true",
                         check=False)  # fmt: skip
    assert done.returncode == 125 and "unknown action" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--security-opt", "label=type:svirt_t"], "SELinux labels are not supported"),
        (["--security-opt", "apparmor=docker-default"], "AppArmor profiles are not supported"),
        (["--security-opt", "bogus=1"], "invalid --security-opt"),
        (["--cap-add", "NOT_A_CAP"], 'unknown capability: "CAP_NOT_A_CAP"'),
        (["--cap-add", "SYS_RESOURCE"], "not in the daemon's bounding set"),
        (["--device", "/dev/does-not-exist"], 'custom device "/dev/does-not-exist"'),
    ],
)
def test_refused_options_leave_nothing(daemon: SampanDaemon, args: list[str], message: str) -> None:
    before = daemon.docker("ps", "-aq").stdout.split()
    done = daemon.docker("run", "-d", *args, "busybox", "true", check=False)
    assert done.returncode in (125, 127), done.stderr
    assert message in done.stderr
    assert daemon.docker("ps", "-aq").stdout.split() == before


def test_device(daemon: SampanDaemon) -> None:
    code, out = _run(daemon, "--device", "/dev/null:/dev/mynull", "busybox", "sh", "-c",
                     "ls -l /dev/mynull && echo hi > /dev/mynull && echo wrote")  # fmt: skip
    assert code == 0 and "1,   3" in out.replace("1,  3", "1,   3") and "wrote" in out, out


def test_init(daemon: SampanDaemon) -> None:
    from sampan.engine.security import init_binary

    if init_binary() is None:
        pytest.skip("no tini-static (docker-init) on this host")
    code, out = _run(daemon, "--init", "busybox", "sh", "-c",
                     "tr '\\0' ' ' < /proc/1/cmdline; echo; ps -o pid,comm")  # fmt: skip
    assert code == 0, out
    assert out.splitlines()[0].strip() == "/sbin/docker-init -- sh -c " + (
        "tr '\\0' ' ' < /proc/1/cmdline; echo; ps -o pid,comm"
    )
    assert any(ln.split() == ["1", "docker-init"] for ln in out.splitlines())
    code, out = _run(daemon, "--init", "busybox", "sh", "-c", "exit 3")
    assert code == 3  # tini passes the exit code on
