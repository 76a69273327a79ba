"""sampan-runtime's verbs around a running container, on the real kernel (root only).

run -d, list, ps, pause/resume, update, events, --no-pivot and --preserve-fds.
Every container is deleted by the ``runtime`` fixture, even when a test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Runtime, cgroup_dir, proc_gone

pytestmark = pytest.mark.root
Bundle = Callable[..., Path]


def start_detached(runtime: Runtime, bundle: Bundle, cid: str, args: list[str] | None = None,
                   **kwargs: object) -> int:  # fmt: skip
    """``run -d`` a container; return its init's pid once it runs."""
    runtime.ok("run", "-d", "--bundle", str(bundle(args or ["sleep", "60"], **kwargs)), cid)
    return int(runtime.wait_status(cid, "running")["pid"])


def test_run_detached(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    b = bundle(["sleep", "60"])
    proc = runtime.ok("run", "-d", "--bundle", str(b), cid)
    assert proc.stdout == ""
    state = runtime.wait_status(cid, "running")
    assert Path(f"/proc/{state['pid']}/cmdline").read_bytes() == b"sleep\x0060\x00"
    assert state["bundle"] == str(b)
    runtime.ok("kill", cid, "KILL")
    runtime.wait_status(cid, "stopped")
    runtime.ok("delete", cid)
    assert runtime.ids() == set()


def test_list_table_and_json(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    assert runtime.ok("list", "--format", "json").stdout.strip() in ("[]", "null")
    pid = start_detached(runtime, bundle, cid)
    runtime.ok("create", "--bundle", str(bundle(["sleep", "60"])), cid + "c")
    header, *rows = runtime.ok("list").stdout.splitlines()
    assert header.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    table = {row.split()[0]: row.split() for row in rows}
    assert set(table) == {cid, cid + "c"}
    assert table[cid][1:3] == [str(pid), "running"]
    assert table[cid + "c"][2] == "created"
    listed = {c["id"]: c for c in json.loads(runtime.ok("list", "--format", "json").stdout)}
    assert set(listed) == {cid, cid + "c"}
    assert (listed[cid]["pid"], listed[cid]["status"]) == (pid, "running")
    assert listed[cid + "c"]["status"] == "created"
    assert runtime.ok("list", "-q").stdout.split() == sorted([cid, cid + "c"])


def test_ps_json_lists_init_and_exec(runtime: Runtime, bundle: Bundle, cid: str,
                                     tmp_path: Path) -> None:  # fmt: skip
    pid = start_detached(runtime, bundle, cid)
    pid_file = tmp_path / "exec.pid"
    runtime.ok("exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "61")
    exec_pid = int(pid_file.read_text())
    assert Path(f"/proc/{exec_pid}/cmdline").read_bytes() == b"sleep\x0061\x00"
    assert sorted(json.loads(runtime.ok("ps", "--format", "json", cid).stdout)) == sorted(
        [pid, exec_pid]
    )
    table = runtime.ok("ps", cid).stdout.splitlines()
    assert "PID" in table[0].split()
    assert {ln.split()[1] for ln in table[1:]} == {str(pid), str(exec_pid)}


def test_pause_and_resume(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    pid = start_detached(runtime, bundle, cid)
    freezer = cgroup_dir(pid, "freezer") / "freezer.state"
    runtime.ok("pause", cid)
    assert runtime.state(cid)["status"] == "paused"
    assert freezer.read_text().strip() == "FROZEN"
    assert runtime("pause", cid).returncode != 0  # not running
    runtime.ok("resume", cid)
    assert runtime.state(cid)["status"] == "running"
    assert freezer.read_text().strip() == "THAWED"
    assert runtime("resume", cid).returncode != 0  # not paused
    # A paused container can be deleted with --force (it is thawed, then killed).
    runtime.ok("pause", cid)
    runtime.ok("delete", "--force", cid)
    assert proc_gone(pid)
    assert not freezer.parent.exists()


def test_update_resources_file_and_flags(runtime: Runtime, bundle: Bundle, cid: str,
                                         tmp_path: Path) -> None:  # fmt: skip
    pid = start_detached(runtime, bundle, cid)
    memory = cgroup_dir(pid, "memory")
    pids = cgroup_dir(pid, "pids")
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps({"memory": {"limit": 100 << 20}, "pids": {"limit": 99}}))
    runtime.ok("update", "--resources", str(resources), cid)
    assert (memory / "memory.limit_in_bytes").read_text().strip() == str(100 << 20)
    assert (pids / "pids.max").read_text().strip() == "99"
    # What the container itself sees under /sys/fs/cgroup is the same cgroup.
    inside = runtime.ok("exec", cid, "cat", "/sys/fs/cgroup/pids/pids.max").stdout
    assert inside == "99\n"
    runtime.ok("update", "--memory", "32m", cid)
    assert (memory / "memory.limit_in_bytes").read_text().strip() == "33554432"
    runtime.ok("update", "--resources", "-", cid, stdin='{"cpu": {"shares": 300}}')
    assert (cgroup_dir(pid, "cpu") / "cpu.shares").read_text().strip() == "300"


def test_update_refuses_bad_input(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    pid = start_detached(runtime, bundle, cid)
    before = (cgroup_dir(pid, "memory") / "memory.limit_in_bytes").read_text()
    bad = runtime("update", "--memory", "lots", cid)
    assert bad.returncode != 0
    assert "--memory" in bad.stderr
    assert (cgroup_dir(pid, "memory") / "memory.limit_in_bytes").read_text() == before


def test_events_stats(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    start_detached(runtime, bundle, cid)
    lines = runtime.ok("events", "--stats", cid).stdout.splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert (event["type"], event["id"]) == ("stats", cid)
    data = event["data"]
    assert {"cpu", "memory", "pids"} <= set(data)
    assert data["pids"]["current"] == 1
    assert data["memory"]["usage"]["usage"] > 0
    assert data["cpu"]["usage"]["total"] > 0
    assert len(data["cpu"]["usage"]["percpu"]) == os.cpu_count()


def test_verbs_on_a_stopped_container(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    start_detached(runtime, bundle, cid)
    runtime.ok("kill", cid, "KILL")
    runtime.wait_status(cid, "stopped")
    for verb in (["exec", cid, "true"], ["pause", cid], ["kill", cid, "KILL"], ["ps", cid]):
        proc = runtime(*verb)
        assert proc.returncode != 0, verb
        assert "not running" in proc.stderr or "stopped" in proc.stderr, proc.stderr


def test_no_pivot(runtime: Runtime, bundle: Bundle, cid: str, busybox_rootfs: Path) -> None:
    script = "cat /etc/passwd; ls /; test -e /work && echo host-visible; echo done"
    proc = runtime("run", "--no-pivot", "--bundle", str(bundle(["sh", "-c", script])), cid)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    passwd = (busybox_rootfs / "etc" / "passwd").read_text().splitlines()
    assert out[: len(passwd)] == passwd
    assert sorted(out[len(passwd) : -1]) == sorted(p.name for p in busybox_rootfs.iterdir())
    assert out[-1] == "done"


def test_preserve_fds(runtime: Runtime, bundle: Bundle, cid: str, tmp_path: Path) -> None:
    secret = tmp_path / "preserved.txt"
    secret.write_text("handed over\n")
    b = bundle(["sh", "-c", "cat <&3; ls /proc/self/fd"])
    out = tmp_path / "run.out"
    # fd 3 of the runtime is the file; fd 4 is open too but not preserved.
    with open(out, "wb") as f:
        proc = subprocess.run(
            ["sh", "-c", 'exec "$@" 3<"$0" 4<"$0"', str(secret),
             *runtime.argv("run", "--preserve-fds", "1", "--bundle", str(b), cid)],
            stdout=f, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=30, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "handed over"
    # 0-2, the preserved 3, and the directory ls opened itself, which takes the lowest
    # free number: 4 (had our fd 4 leaked in, the list would run to 5).
    assert sorted(lines[1:], key=int) == ["0", "1", "2", "3", "4"]


def test_exec_cap_is_not_inheritable(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    """exec --cap adds to bounding/effective/permitted only (CVE-2022-29162)."""
    start_detached(runtime, bundle, cid)
    out = runtime.ok("exec", "--cap", "CAP_NET_ADMIN", cid, "grep", "^Cap", "/proc/self/status")
    caps = {ln.split(":")[0]: int(ln.split()[1], 16) for ln in out.stdout.splitlines()}
    net_admin = 1 << 12
    assert caps["CapEff"] & net_admin and caps["CapPrm"] & net_admin and caps["CapBnd"] & net_admin
    assert caps["CapInh"] == 0 and caps["CapAmb"] == 0
    # A non-root user does not get it through the ambient set either.
    out = runtime.ok("exec", "--cap", "CAP_NET_ADMIN", "--user", "1000:1000", cid,
                     "grep", "^CapEff", "/proc/self/status")  # fmt: skip
    assert int(out.stdout.split()[1], 16) == 0


def test_signals_are_not_left_ignored(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    """Python ignores SIGPIPE and SIGXFSZ; the container's process must not inherit that."""
    script = "grep -E '^Sig(Ign|Blk)' /proc/self/status; yes | head -c1 >/dev/null; echo rc=$?"
    proc = runtime.ok("run", "--bundle", str(bundle(["sh", "-c", script])), cid)
    assert "SigIgn:\t0000000000000000" in proc.stdout
    assert "SigBlk:\t0000000000000000" in proc.stdout
    assert proc.stdout.strip().endswith("rc=0")
    assert "Broken pipe" not in proc.stderr


def test_stdio_belongs_to_the_process_user(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    b = bundle(["sh", "-c", "echo through-dev-stdout > /dev/stdout"],
               {"process": {"user": {"uid": 1000, "gid": 1000}}})  # fmt: skip
    proc = runtime("run", "--bundle", str(b), cid)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "through-dev-stdout\n"


def test_exec_without_a_mount_namespace_sees_the_container_root(
    runtime: Runtime, bundle: Bundle, cid: str, rootfs_copy: Callable[..., Path]
) -> None:
    # Without a mount namespace (and no /dev mount) the device nodes are made in the
    # rootfs itself: a private copy, not the shared one.
    def edit(config: dict[str, object]) -> None:
        linux = config["linux"]
        assert isinstance(linux, dict)
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "mount"]
        linux.pop("maskedPaths")
        linux.pop("readonlyPaths")
        config["mounts"] = [{"destination": "/proc", "type": "proc", "source": "proc"}]

    start_detached(runtime, bundle, cid, edit=edit, rootfs=rootfs_copy())
    out = runtime.ok("exec", cid, "cat", "/etc/passwd")
    assert out.stdout.startswith("root:x:0:0:root:/root:/bin/sh\n")  # busybox's, not the host's
    assert "nobody:x:65534:65534:nobody:/home:/bin/false" in out.stdout


def test_personality_linux32(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    b = bundle(["uname", "-m"], {"linux": {"personality": {"domain": "LINUX32"}}})
    assert runtime.ok("run", "--bundle", str(b), cid).stdout.strip() in ("i686", "armv8l")


def test_personality_linux32_with_seccomp(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    """Under LINUX32 uname says i686: the seccomp filter must still load (x86_64's call)."""
    rule = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
    overrides = {"linux": {"personality": {"domain": "LINUX32"}, "seccomp": seccomp}}
    b = bundle(["sh", "-c", "uname -m; mkdir /tmp/x 2>/dev/null || echo refused"], overrides)
    out = runtime.ok("run", "--bundle", str(b), cid).stdout.split()
    assert out[0] in ("i686", "armv8l")
    assert out[1] == "refused"
