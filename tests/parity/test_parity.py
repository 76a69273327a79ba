"""One suite, two runtimes: runc is the reference, sampan-runtime must match it.

The runtime is $OCI_RUNTIME (sampan-runtime by default); ``make parity``
runs this file once with runc and once with sampan-runtime, so every
assertion here holds for both.  Where runc itself does something on this
machine that a test cannot assert, the test leaves it out and says why.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPAN_RUNTIME, Runtime, proc_gone

pytestmark = [pytest.mark.root, pytest.mark.parity]

OCI_RUNTIME = os.environ.get("OCI_RUNTIME", SAMPAN_RUNTIME)
Bundle = Callable[..., Path]

# Capability bit numbers (linux/capability.h) of the ones used below.
CAP = {"CAP_KILL": 5, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21,
       "CAP_SYS_PTRACE": 19, "CAP_AUDIT_WRITE": 29}  # fmt: skip
DEFAULT_CAPS = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")


@pytest.fixture
def runtime_binary() -> str:
    return OCI_RUNTIME


def run(rt: Runtime, bundle: Path, cid: str) -> subprocess.CompletedProcess[str]:
    return rt("run", "--bundle", str(bundle), cid)


def run_ok(rt: Runtime, bundle: Path, cid: str) -> str:
    proc = run(rt, bundle, cid)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def mask(*names: str) -> str:
    bits = 0
    for name in names:
        bits |= 1 << CAP[name]
    return f"{bits:016x}"


def status_fields(text: str, *keys: str) -> dict[str, str]:
    fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    return {k: fields[k].strip() for k in keys}


# -- process basics ------------------------------------------------------------------


def test_echo_stdout(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    proc = run(runtime, bundle(["echo", "hello", "parity"]), cid)
    assert (proc.returncode, proc.stdout) == (0, "hello parity\n")


def test_own_exit_code(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    assert run(runtime, bundle(["sh", "-c", "exit 3"]), cid).returncode == 3


def _without_pid_ns(config: dict[str, Any]) -> None:
    config["linux"]["namespaces"] = [
        ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"
    ]


# `kill -9 $$` in a container with its own pid namespace does nothing: the
# process is that namespace's init, which the kernel protects from signals
# sent from inside it that it has no handler for (runc's `run` exits 0 then).
# Without a pid namespace the shell really dies of the signal.
@pytest.mark.parametrize(("sig", "code"), [("-9", 137), ("-TERM", 143)])
def test_killed_by_own_signal(runtime: Runtime, bundle: Bundle, cid: str, sig: str,
                              code: int) -> None:  # fmt: skip
    b = bundle(["sh", "-c", f"kill {sig} $$; echo not killed"], edit=_without_pid_ns)
    proc = run(runtime, b, cid)
    assert (proc.returncode, proc.stdout) == (code, "")


def test_killed_from_outside(runtime: Runtime, bundle: Bundle, cid: str, tmp_path: Path) -> None:
    b = bundle(["sleep", "60"])
    with open(tmp_path / "run.out", "wb") as out:
        fg = subprocess.Popen(runtime.argv("run", "--bundle", str(b), cid), stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while runtime("state", cid).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        runtime.wait_status(cid, "running")
        runtime.ok("kill", cid, "KILL")
        assert fg.wait(timeout=10) == 128 + signal.SIGKILL
    finally:
        if fg.poll() is None:
            fg.kill()
            fg.wait()


def test_hostname(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    out = run_ok(runtime, bundle(["hostname"], {"hostname": "parity-host"}), cid)
    assert out == "parity-host\n"


def test_user_and_groups(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    user = {"uid": 1000, "gid": 1000, "additionalGids": [10, 2000]}
    out = run_ok(runtime, bundle(["id"], {"process": {"user": user}}), cid)
    assert out == "uid=1000 gid=1000 groups=10,2000\n"


def test_cwd_and_env(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    env = ["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY="]
    b = bundle(["env"], {"process": {"cwd": "/tmp", "env": env}})
    # HOME is not in process.env: both runtimes add it, from /etc/passwd (root's is /root).
    assert sorted(run_ok(runtime, b, cid).splitlines()) == sorted([*env, "HOME=/root"])
    pwd = run_ok(runtime, bundle(["pwd"], {"process": {"cwd": "/tmp"}}), cid + "b")
    assert pwd == "/tmp\n"


def test_missing_cwd_is_created(runtime: Runtime, bundle: Bundle, cid: str,
                                rootfs_copy: Callable[..., Path]) -> None:  # fmt: skip
    rootfs = rootfs_copy()
    b = bundle(["pwd"], {"process": {"cwd": "/made/by/runtime"}}, rootfs=rootfs)
    assert run_ok(runtime, b, cid) == "/made/by/runtime\n"
    assert (rootfs / "made" / "by" / "runtime").is_dir()


def test_cwd_that_is_a_file_fails_create(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    proc = runtime("create", "--bundle", str(bundle(["pwd"], {"process": {"cwd": "/bin/sh"}})), cid)
    assert proc.returncode != 0
    assert "/bin/sh" in proc.stderr
    assert runtime("state", cid).returncode != 0


# -- the filesystem ------------------------------------------------------------------


def _host_fstype(path: Path) -> str:
    out = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", str(path)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.strip()


def _host_v1_hierarchies() -> list[str]:
    """Mount point names of the host's cgroup v1 hierarchies under /sys/fs/cgroup."""
    names = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            point = pre.split()[4]
            if post.split()[0] == "cgroup" and point.startswith("/sys/fs/cgroup/"):
                names.append(point.rsplit("/", 1)[1])
    return names


def _mount_shape(mountinfo: str) -> list[str]:
    """'mountpoint fstype ro|rw' per line of a mountinfo, sorted."""
    shape = []
    for line in mountinfo.splitlines():
        pre, _, post = line.partition(" - ")
        fields = pre.split()
        shape.append(f"{fields[4]} {post.split()[0]} {fields[5].split(',')[0]}")
    return sorted(shape)


def expected_default_mounts(rootfs: Path) -> list[str]:
    """The mounts of the default spec, as runc 1.1.5 makes them on this host."""
    shape = [
        f"/ {_host_fstype(rootfs)} ro",  # root.readonly
        "/proc proc rw",
        "/dev tmpfs rw",
        "/dev/pts devpts rw",
        "/dev/shm tmpfs rw",
        "/dev/mqueue mqueue rw",
        "/sys sysfs ro",
    ]
    # The cgroup mount: a tmpfs with one read-only bind per v1 hierarchy (the
    # tmpfs's own ro flag is left out: runc 1.1.5 leaves that tmpfs writable).
    shape += [f"/sys/fs/cgroup/{name} cgroup ro" for name in _host_v1_hierarchies()]
    # maskedPaths: a directory gets an empty read-only tmpfs, a file /dev/null
    # (bound from the container's /dev, a tmpfs).  Paths the host lacks stay as
    # they are (this kernel has no /proc/kcore, /proc/sysrq-trigger, ...).
    from sampan.oci.runtime_config import default_spec

    linux = default_spec()["linux"]
    for path in linux["maskedPaths"]:
        if os.path.isdir(path):
            shape.append(f"{path} tmpfs ro")
        elif os.path.exists(path):
            shape.append(f"{path} tmpfs rw")
    shape += [f"{p} proc ro" for p in linux["readonlyPaths"] if os.path.exists(p)]
    return sorted(shape)


def test_mountinfo_shape(runtime: Runtime, bundle: Bundle, cid: str,
                         busybox_rootfs: Path) -> None:  # fmt: skip
    out = run_ok(runtime, bundle(["cat", "/proc/self/mountinfo"]), cid)
    shape = [m for m in _mount_shape(out) if not m.startswith("/sys/fs/cgroup ")]
    assert "/sys/fs/cgroup tmpfs" in {m.rsplit(" ", 1)[0] for m in _mount_shape(out)}
    assert shape == expected_default_mounts(busybox_rootfs)


def test_masked_paths(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    files = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.exists(p)]
    script = "".join(f'stat -c "%n %F %t,%T %s" {p}; wc -c < {p};' for p in files)
    script += "ls -A /sys/firmware /proc/acpi | wc -w"
    out = run_ok(runtime, bundle(["sh", "-c", script]), cid).split("\n")
    expected = []
    for p in files:  # /dev/null: character device 1,3, empty
        expected += [f"{p} character special file 1,3 0", "0"]
    assert out == [*expected, "2", ""]  # the two "dir:" headers, nothing else


def test_readonly_paths(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    b = bundle(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward; echo rc=$?"])
    proc = run(runtime, b, cid)
    assert proc.stdout == "rc=1\n"
    assert "Read-only file system" in proc.stderr


# -- capabilities, rlimits, no_new_privs -----------------------------------------------

CAP_KEYS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")


def test_default_capabilities(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    out = run_ok(runtime, bundle(["cat", "/proc/self/status"]), cid)
    default = mask(*DEFAULT_CAPS)
    assert status_fields(out, *CAP_KEYS) == {
        "CapInh": mask(), "CapPrm": default, "CapEff": default, "CapBnd": default,
        "CapAmb": mask(), "NoNewPrivs": "1",
    }  # fmt: skip


def test_extra_capabilities(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    extra = [*DEFAULT_CAPS, "CAP_SYS_ADMIN", "CAP_NET_RAW"]
    caps = {"bounding": extra, "effective": extra, "permitted": extra,
            "inheritable": ["CAP_NET_RAW"], "ambient": ["CAP_NET_RAW"]}  # fmt: skip
    b = bundle(["cat", "/proc/self/status"], {"process": {"capabilities": caps}})
    full = mask(*extra)
    assert status_fields(run_ok(runtime, b, cid), *CAP_KEYS) == {
        "CapInh": mask("CAP_NET_RAW"), "CapPrm": full, "CapEff": full, "CapBnd": full,
        "CapAmb": mask("CAP_NET_RAW"), "NoNewPrivs": "1",
    }  # fmt: skip


def test_capabilities_of_a_non_root_user(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    # Without ambient capabilities a non-root user loses them all at execve.
    b = bundle(["cat", "/proc/self/status"], {"process": {"user": {"uid": 1000, "gid": 1000}}})
    out = status_fields(run_ok(runtime, b, cid), *CAP_KEYS)
    assert out["CapPrm"] == out["CapEff"] == mask()
    assert out["CapBnd"] == mask(*DEFAULT_CAPS)


def test_rlimit_soft_below_hard(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    rl = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 4096},
          {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400}]  # fmt: skip
    b = bundle(["cat", "/proc/self/limits"], {"process": {"rlimits": rl}})
    rows = {ln[:26].strip(): ln[26:].split()[:2] for ln in run_ok(runtime, b, cid).splitlines()}
    assert rows["Max open files"] == ["512", "4096"]
    assert rows["Max processes"] == ["300", "400"]


def test_no_new_privs_off(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    b = bundle(["cat", "/proc/self/status"], {"process": {"noNewPrivileges": False}})
    assert status_fields(run_ok(runtime, b, cid), "NoNewPrivs") == {"NoNewPrivs": "0"}


# -- cgroups as seen inside -------------------------------------------------------------


def test_cgroup_limits_inside(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    resources = {"memory": {"limit": 64 << 20}, "pids": {"limit": 57}, "cpu": {"shares": 512}}
    files = ("memory/memory.limit_in_bytes", "pids/pids.max", "cpu/cpu.shares")
    b = bundle(["cat", *(f"/sys/fs/cgroup/{f}" for f in files)],
               {"linux": {"resources": resources}})  # fmt: skip
    assert run_ok(runtime, b, cid).split() == ["67108864", "57", "512"]


def test_cgroup_is_read_only_inside(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    b = bundle(["sh", "-c", "echo 1 > /sys/fs/cgroup/pids/pids.max; echo rc=$?"])
    proc = run(runtime, b, cid)
    assert proc.stdout == "rc=1\n"
    assert "Read-only file system" in proc.stderr


# -- the lifecycle -------------------------------------------------------------------------


def test_lifecycle(runtime: Runtime, bundle: Bundle, cid: str, tmp_path: Path) -> None:
    b = bundle(["sleep", "60"])
    pid_file = tmp_path / "init.pid"
    runtime.ok("create", "--bundle", str(b), "--pid-file", str(pid_file), cid)
    state = runtime.state(cid)
    pid = int(pid_file.read_text())
    assert (state["status"], state["pid"], state["id"]) == ("created", pid, cid)
    assert state["bundle"] == str(b)
    assert Path(f"/proc/{pid}").exists()
    runtime.ok("start", cid)
    state = runtime.wait_status(cid, "running")
    assert state["pid"] == pid
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x0060\x00"
    runtime.ok("kill", cid, "KILL")
    runtime.wait_status(cid, "stopped")
    runtime.ok("delete", cid)
    gone = runtime("state", cid)
    assert gone.returncode != 0
    assert "does not exist" in gone.stderr


def test_start_twice_fails(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    runtime.ok("create", "--bundle", str(bundle(["sleep", "60"])), cid)
    runtime.ok("start", cid)
    assert runtime("start", cid).returncode != 0
    assert runtime.state(cid)["status"] == "running"


def test_delete_running_needs_force(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    runtime.ok("run", "-d", "--bundle", str(bundle(["sleep", "60"])), cid)
    pid = runtime.wait_status(cid, "running")["pid"]
    assert runtime("delete", cid).returncode != 0
    assert runtime.state(cid)["status"] == "running"
    runtime.ok("delete", "--force", cid)
    assert runtime("state", cid).returncode != 0
    assert proc_gone(pid), f"init {pid} survived delete --force"


def test_exec(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    runtime.ok("run", "-d", "--bundle", str(bundle(["sleep", "60"], {"hostname": "xh"})), cid)
    runtime.wait_status(cid, "running")
    proc = runtime("exec", cid, "sh", "-c", "hostname; echo out; echo err >&2; exit 5")
    assert (proc.returncode, proc.stdout) == (5, "xh\nout\n")
    assert "err" in proc.stderr
    # The exec'd process shares init's pid namespace: init is pid 1 there.
    assert runtime("exec", cid, "cat", "/proc/1/cmdline").stdout == "sleep\x0060\x00"
