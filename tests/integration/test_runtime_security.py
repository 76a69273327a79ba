"""What a container can reach of the host, tried from inside it (root only).

(a) no fd of the runtime's caller survives into the container (but stdio and
    --preserve-fds), for init and for exec; (b) the cwd is inside the new
    root; (c) /proc/self/exe cannot be written, and the runtime's own binary
    (the host's Python) cannot be opened through the helper that ``exec``
    puts in the container's pid namespace; (d) the host's cgroups are not
    writable, and /proc/1/fd holds nothing of the host's.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.root
Bundle = Callable[..., Path]
CGROUP_PARENT = "sampan-test-sec"


@pytest.fixture(scope="module", autouse=True)
def _remove_cgroup_parent() -> Iterator[None]:
    yield
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        try:
            (hierarchy / CGROUP_PARENT).rmdir()
        except OSError:
            pass


@pytest.fixture
def leaky_fds(tmp_path: Path) -> Iterator[tuple[int, ...]]:
    """Inheritable fds of the test process: a host file, the host's root dir, a pipe."""
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    r, w = os.pipe()
    fds = (os.open(secret, os.O_RDONLY), os.open("/", os.O_RDONLY | os.O_DIRECTORY), r, w)
    for fd in fds:
        os.set_inheritable(fd, True)
    try:
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


def fd_list(output: str) -> list[int]:
    return sorted(int(x) for x in output.split())


def test_init_gets_only_stdio(runtime: Runtime, bundle: Bundle, cid: str,
                              leaky_fds: tuple[int, ...]) -> None:  # fmt: skip
    b = bundle(["ls", "/proc/self/fd"])
    proc = runtime("run", "--bundle", str(b), cid, pass_fds=leaky_fds)
    assert proc.returncode == 0, proc.stderr
    # 0, 1, 2, and the directory ls opened itself (the lowest free number).
    assert fd_list(proc.stdout) == [0, 1, 2, 3]


def test_preserved_fds_only(runtime: Runtime, bundle: Bundle, cid: str, tmp_path: Path,
                            leaky_fds: tuple[int, ...]) -> None:  # fmt: skip
    given = tmp_path / "given"
    given.write_text("given\n")
    b = bundle(["sh", "-c", "cat <&3 <&4; ls /proc/self/fd"])
    argv = runtime.argv("run", "--preserve-fds", "2", "--bundle", str(b), cid)
    out = tmp_path / "out"
    # fds 3 and 4 of the runtime are GIVEN; the leaky ones (above, or replaced) are not kept.
    with open(out, "wb") as f:
        proc = subprocess.run(["sh", "-c", 'exec "$@" 3<"$0" 4<"$0"', str(given), *argv],
                              stdout=f, stderr=subprocess.PIPE, pass_fds=leaky_fds,
                              timeout=30, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    first, *fds = out.read_text().splitlines()
    assert first == "given"
    assert fd_list(" ".join(fds)) == [0, 1, 2, 3, 4, 5]  # 5: the directory ls opened


def test_exec_gets_only_stdio(runtime: Runtime, bundle: Bundle, cid: str,
                              leaky_fds: tuple[int, ...]) -> None:  # fmt: skip
    runtime.ok("run", "-d", "--bundle", str(bundle(["sleep", "60"])), cid, pass_fds=leaky_fds)
    runtime.wait_status(cid, "running")
    proc = runtime("exec", cid, "ls", "/proc/self/fd", pass_fds=leaky_fds)
    assert proc.returncode == 0, proc.stderr
    assert fd_list(proc.stdout) == [0, 1, 2, 3]
    # init, started by a runtime that had the same fds open, holds only stdio.
    init_fds = runtime.ok("exec", cid, "ls", "/proc/1/fd").stdout
    assert fd_list(init_fds) == [0, 1, 2]


def test_exec_detached_gets_only_stdio(
    runtime: Runtime, bundle: Bundle, cid: str, leaky_fds: tuple[int, ...], tmp_path: Path
) -> None:
    runtime.ok("run", "-d", "--bundle", str(bundle(["sleep", "60"])), cid)
    runtime.wait_status(cid, "running")
    pid_file = tmp_path / "exec.pid"
    runtime.ok("exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "30", pass_fds=leaky_fds)
    pid = int(pid_file.read_text())
    assert fd_list(" ".join(os.listdir(f"/proc/{pid}/fd"))) == [0, 1, 2]


def test_host_fds_via_proc_1(runtime: Runtime, bundle: Bundle, cid: str,
                             leaky_fds: tuple[int, ...]) -> None:  # fmt: skip
    runtime.ok("run", "-d", "--bundle", str(bundle(["sleep", "60"])), cid, pass_fds=leaky_fds)
    pid = runtime.wait_status(cid, "running")["pid"]
    assert sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2]
    # Through those fds nothing of the host is reachable but what we gave as stdio.
    script = "for f in /proc/1/fd/*; do cat $f/etc/hostname 2>/dev/null; done; echo end"
    assert runtime.ok("exec", cid, "sh", "-c", script).stdout == "end\n"


# -- (b) the cwd ---------------------------------------------------------------------------


def test_cwd_inside_new_root(runtime: Runtime, bundle: Bundle, cid: str,
                             busybox_rootfs: Path) -> None:  # fmt: skip
    b = bundle(["sleep", "60"], {"process": {"cwd": "/tmp"}})
    runtime.ok("run", "-d", "--bundle", str(b), cid)
    runtime.wait_status(cid, "running")
    assert runtime.ok("exec", cid, "readlink", "/proc/1/cwd").stdout == "/tmp\n"
    assert runtime.ok("exec", cid, "readlink", "/proc/self/cwd").stdout == "/tmp\n"
    assert runtime.ok("exec", "--cwd", "/etc", cid, "pwd").stdout == "/etc\n"
    # /proc/1/cwd/.. (and /.. from there) is the container's root, not the host's.
    up = runtime.ok("exec", cid, "ls", "-a", "/proc/1/cwd/..", "/proc/1/cwd/../..").stdout
    want = sorted(p.name for p in busybox_rootfs.iterdir())
    listings = [part.split("\n", 1)[1].split() for part in up.strip().split("\n\n")]
    assert [sorted(set(names) - {".", ".."}) for names in listings] == [want, want]
    assert "work" not in up.split()


# -- (c) the executable --------------------------------------------------------------------


def test_proc_self_exe_not_writable(runtime: Runtime, bundle: Bundle, cid: str,
                                    rootfs_copy: Callable[..., Path]) -> None:  # fmt: skip
    rootfs = rootfs_copy()
    busybox = rootfs / "bin" / "busybox"
    before = hashlib.sha256(busybox.read_bytes()).hexdigest()
    # A writable root, so that only the running binary's protection stands in the way.
    b = bundle(["sh", "-c", "echo x >> /proc/self/exe; echo rc=$?"],
               {"root": {"readonly": False}}, rootfs=rootfs)  # fmt: skip
    proc = runtime("run", "--bundle", str(b), cid)
    assert proc.stdout == "rc=1\n"
    assert "Text file busy" in proc.stderr
    assert hashlib.sha256(busybox.read_bytes()).hexdigest() == before


# Until SIGUSR1, the container opens /proc/PID/exe of every other process it sees,
# and names what it got (through the opened fd: the name is of what was opened).
# What is not its own busybox it keeps open until that process is gone (a running
# binary refuses writers), then tries to append to it: CVE-2019-5736's write.
EXE_PROBE = r"""
opened=0; denied=0; leaks=0
trap 'echo "opened=$opened denied=$denied leaks=$leaks"; exit 0' USR1
while :; do
  for d in /proc/[0-9]*; do
    [ "${d#/proc/}" = "$$" ] && continue
    if out=$( { readlink /proc/self/fd/3; } 2>&1 3<"$d/exe" ); then
      opened=$((opened+1))
      [ "$out" = /bin/busybox ] && continue
      echo "LEAK ${d#/proc/} $out"; leaks=$((leaks+1))
      command exec 4<"$d/exe" 2>/dev/null || continue  # (plain exec: a failure ends sh)
      while [ -d "$d" ]; do :; done
      if { printf x >>/proc/self/fd/4; } 2>/dev/null; then echo "WRITTEN ${d#/proc/} $out"; fi
      exec 4<&-
    else
      case "$out" in *denied*) denied=$((denied+1));; esac
    fi
  done
done
"""


def probe_during_execs(runtime: Runtime, bundle: Bundle, cid: str, tmp_path: Path,
                       caps: list[str] | None = None, execs: int = 15) -> str:  # fmt: skip
    sets = ("bounding", "effective", "permitted")
    overrides = {"process": {"capabilities": {k: caps for k in sets}}} if caps else None
    b = bundle(["sh", "-c", EXE_PROBE], overrides)
    out = tmp_path / "probe.out"
    runtime.ok("run", "-d", "--bundle", str(b), cid, stdout=out)
    runtime.wait_status(cid, "running")
    for _ in range(execs):
        runtime.ok("exec", cid, "true")
    runtime.ok("kill", cid, "USR1")
    runtime.wait_status(cid, "stopped", timeout=15)
    return out.read_text()


def test_runtime_binary_unreachable_during_exec(runtime: Runtime, bundle: Bundle, cid: str,
                                                tmp_path: Path) -> None:  # fmt: skip
    result = probe_during_execs(runtime, bundle, cid, tmp_path)
    lines = result.splitlines()
    assert [ln for ln in lines if ln.startswith("LEAK")] == []
    counts = dict(item.split("=") for item in lines[-1].split())
    assert counts["leaks"] == "0"
    # It did see the exec helpers (non-dumpable, so refused), not just an empty pid ns.
    assert int(counts["denied"]) > 0, result


def test_runtime_binary_sealed_with_cap_sys_ptrace(
    runtime: Runtime, bundle: Bundle, cid: str, tmp_path: Path
) -> None:
    """CAP_SYS_PTRACE passes the non-dumpable check: what it reaches must be a sealed copy."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_PTRACE"]
    # The helper is in the container's pid namespace only briefly: give the probe many.
    result = probe_during_execs(runtime, bundle, cid, tmp_path, caps, execs=40)
    lines = result.splitlines()
    reached = {ln.split(" ", 2)[2] for ln in lines if ln.startswith("LEAK")}
    # The probe did reach the exec helpers (else this test would prove nothing) ...
    assert reached, result
    # ... and found only the runtime's sealed in-memory interpreter, never a host file,
    assert reached == {"/memfd:sampan-runtime (deleted)"}, result
    # which no write reached.
    assert [ln for ln in lines if ln.startswith("WRITTEN")] == [], result


def test_init_joining_a_shared_pid_namespace_runs_sealed(
    runtime: Runtime, bundle: Bundle, cid: str
) -> None:
    """Init in another container's pid namespace is visible there: it runs from a sealed copy."""
    first = bundle(["sleep", "100"])
    runtime.ok("run", "-d", "--bundle", str(first), f"{cid}-a")
    pid_a = runtime.state(f"{cid}-a")["pid"]
    namespaces = [{"type": t} for t in ("network", "ipc", "uts", "mount")]
    namespaces.append({"type": "pid", "path": f"/proc/{pid_a}/ns/pid"})
    second = bundle(["true"], {"linux": {"namespaces": namespaces}})
    runtime.ok("create", "--bundle", str(second), f"{cid}-b")
    pid_b = runtime.state(f"{cid}-b")["pid"]
    assert os.readlink(f"/proc/{pid_b}/exe") == "/memfd:sampan-runtime (deleted)"
    fd = os.open(f"/proc/{pid_b}/exe", os.O_RDONLY)
    try:
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_WRITE
    finally:
        os.close(fd)


# -- (d) cgroups ---------------------------------------------------------------------------


def test_host_cgroups_not_writable(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    script = (
        "for c in /sys/fs/cgroup/*; do mkdir $c/escape 2>/dev/null && echo made $c;"
        " echo 1 > $c/cgroup.procs 2>/dev/null && echo moved $c; done;"
        " touch /sys/fs/cgroup/x 2>/dev/null && echo tmpfs-writable;"
        " find /sys/fs/cgroup -mindepth 2 -type d | wc -l; echo end"
    )
    b = bundle(["sh", "-c", script], {"linux": {"cgroupsPath": f"/{CGROUP_PARENT}/{cid}"}})
    proc = runtime("run", "--bundle", str(b), cid)
    assert proc.returncode == 0, proc.stderr
    # Nothing made or joined, and below each hierarchy only the container's own
    # (childless) cgroup is visible: no host cgroup directories at all.
    assert proc.stdout.split() == ["0", "end"]
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        assert not (hierarchy / CGROUP_PARENT / cid / "escape").exists()


def test_cgroup_mounts_show_own_cgroup(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    path = f"/{CGROUP_PARENT}/{cid}"
    b = bundle(["cat", "/proc/self/mountinfo"], {"linux": {"cgroupsPath": path}})
    for attempt in range(5):  # the cgroup move raced with these mounts once: try a few
        proc = runtime("run", "--bundle", str(b), f"{cid}-{attempt}")
        assert proc.returncode == 0, proc.stderr
        roots = {ln.split()[4]: ln.split()[3] for ln in proc.stdout.splitlines()
                 if ln.split()[4].startswith("/sys/fs/cgroup/")}  # fmt: skip
        assert roots, proc.stdout
        assert set(roots.values()) == {path}, roots


def test_no_device_rules_still_means_only_the_default_devices(
    runtime: Runtime, bundle: Bundle, cid: str
) -> None:
    """A config without linux.resources gets the default allow-list, not every device."""
    caps = ["CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    script = (
        "mknod /dev/disk0 b 7 0 && head -c1 /dev/disk0 >/dev/null 2>&1 && echo opened-disk;"
        " echo x > /dev/null && echo null-ok"
    )

    def edit(config: dict[str, object]) -> None:
        linux = config["linux"]
        assert isinstance(linux, dict)
        linux.pop("resources", None)
        config["process"]["capabilities"] = {
            k: caps for k in ("bounding", "effective", "permitted")
        }  # type: ignore[index]

    proc = runtime("run", "--bundle", str(bundle(["sh", "-c", script], edit=edit)), cid)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "null-ok\n"  # /dev/null works; the loop device (7:0) does not open
