"""Debian's podman (with conmon) running containers on sampan-runtime (root only).

podman is driven the way users run it with another OCI runtime:
``--runtime /path/to/sampan-runtime``, cgroupfs, and everything private to
this module -- ``--root``, ``--runroot``, ``--tmpdir`` (conmon's exit files,
events), ``--network-config-dir`` and a containers.conf of its own (no
default ulimits: this machine's hard limits are below podman's defaults).
The image is a busybox root filesystem from scripts/busybox-rootfs.sh,
imported as localhost/busybox:latest.

conmon runs ``sampan-runtime create --bundle B --pid-file F [--console-socket S]
[--preserve-fds N] ID``, then ``start``, ``exec --pid-file F --process P
--detach [--tty --console-socket S] ID``, ``kill ID SIG`` and ``delete --force
ID``; with the runtime listed in ``runtime_supports_json`` (as runc and crun
are) every create and exec also gets ``--log-format=json --log FILE``, from
which podman reads the runtime's errors.  Both ways are covered.

The scenarios: a one-shot container (no network and podman's default
network), a detached container with exec and a graceful stop, interactive
terminals through a real pty, a memory limit visible inside the container,
and exit codes.  Teardown removes every container, the storage, and any
mount left under the private directories.
"""

from __future__ import annotations

import fcntl
import glob
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / ".venv" / "bin" / "sampan-runtime"
IMAGE = "localhost/busybox:latest"
IS_ROOT = os.geteuid() == 0
RUNTIME_ROOT = "/run/sampan-runtime"  # podman passes no --root: the runtime's default
V2_HOST = os.path.exists("/sys/fs/cgroup/cgroup.controllers")

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not IS_ROOT, reason="needs root (podman runs rootful here)"),
    pytest.mark.skipif(
        not (shutil.which("podman") and shutil.which("conmon")),
        reason="podman and conmon are not installed (`make deps` installs them)",
    ),
    pytest.mark.skipif(not RUNTIME.exists(), reason=f"{RUNTIME} is missing: run `make install`"),
]


class Podman:
    """podman with private state under BASE and sampan-runtime as its OCI runtime."""

    def __init__(self, base: Path) -> None:
        self.base = base
        for sub in ("root", "run", "tmp", "net"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        conf = "[containers]\ndefault_ulimits = []\n"
        (base / "containers.conf").write_text(conf)
        # Listed as json-capable, sampan-runtime gets --log-format=json --log FILE.
        json_conf = '[engine]\nruntime_supports_json = ["crun", "runc", "sampan-runtime"]\n'
        (base / "containers-json.conf").write_text(conf + json_conf)

    def argv(self, *args: str) -> list[str]:
        b = self.base
        return [
            "podman", "--root", f"{b}/root", "--runroot", f"{b}/run", "--tmpdir", f"{b}/tmp",
            "--network-config-dir", f"{b}/net", "--cgroup-manager", "cgroupfs",
            "--events-backend", "file", "--runtime", str(RUNTIME), *args,
        ]  # fmt: skip

    def env(self, json_log: bool = False) -> dict[str, str]:
        name = "containers-json.conf" if json_log else "containers.conf"
        return {**os.environ, "CONTAINERS_CONF": str(self.base / name)}

    def __call__(
        self,
        *args: str,
        check: bool = True,
        json_log: bool = False,
        timeout: float = 60,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.argv(*args),
            env=self.env(json_log),
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} -> {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def in_pty(
        self, *args: str, send: bytes = b"", after: bytes = b"", timeout: float = 30
    ) -> tuple[str, int]:
        """Run podman ARGS on a new 33x111 pty; type SEND once AFTER shows up.

        Returns the output and podman's exit code.
        """
        argv = self.argv(*args)
        env = self.env()
        pid, fd = pty.fork()
        if pid == 0:  # the child: podman on the pty's slave, as from a terminal
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        out = bytearray()
        pending = send
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.kill(pid, signal.SIGKILL)
                    raise AssertionError(f"podman {' '.join(args)} timed out; output: {out!r}")
                ready, _, _ = select.select([fd], [], [], min(left, 0.5))
                if ready:
                    try:
                        chunk = os.read(fd, 4096)
                    except OSError:  # EIO: every slave fd is closed
                        break
                    if not chunk:
                        break
                    out += chunk
                if pending and after in out:
                    os.write(fd, pending)
                    pending = b""
        finally:
            os.close(fd)
            _, status = os.waitpid(pid, 0)
        return out.decode(errors="replace"), os.waitstatus_to_exitcode(status)


def _cgroup_dirs(cid: str) -> list[str]:
    """The container's cgroup directories (podman's cgroupfs path /libpod_parent/libpod-ID)."""
    name = f"libpod_parent/libpod-{cid}"
    if V2_HOST:
        return glob.glob(f"/sys/fs/cgroup/{name}")
    return glob.glob(f"/sys/fs/cgroup/*/{name}")


def _unmount_under(path: Path) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split(" ")[4] for line in f]
    for point in sorted(points, key=len, reverse=True):
        if point == str(path) or point.startswith(f"{path}/"):
            subprocess.run(["umount", "-l", point], capture_output=True)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    if subprocess.run(["dpkg", "-s", "busybox-static"], capture_output=True).returncode != 0:
        pytest.skip("busybox-static is not installed (`make deps` installs it)")
    base = tmp_path_factory.mktemp("podman")
    if not os.path.exists("/etc/containers/policy.json"):
        os.makedirs("/etc/containers", exist_ok=True)
        with open("/etc/containers/policy.json", "w") as f:
            f.write('{"default":[{"type":"insecureAcceptAnything"}]}\n')
    p = Podman(base / "state")
    try:
        rootfs = base / "rootfs"
        subprocess.run([str(REPO / "scripts" / "busybox-rootfs.sh"), str(rootfs)], check=True)
        tarball = base / "busybox.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."],
                       check=True)  # fmt: skip
        p("import", "-q", str(tarball), IMAGE)
        yield p
    finally:
        p("rm", "-a", "-f", "-t", "0", check=False)
        p("system", "reset", "-f", check=False)
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


def test_podman_uses_sampan_runtime(podman: Podman) -> None:
    fmt = "{{.Host.OCIRuntime.Path}}|{{.Host.OCIRuntime.Version}}"
    path, version = podman("info", "--format", fmt).stdout.strip().split("|", 1)
    assert path == str(RUNTIME)
    assert version.startswith("sampan-runtime version "), version


# -- 1. a one-shot container --------------------------------------------------------------


def test_run_echo_without_network(podman: Podman) -> None:
    proc = podman("run", "--rm", "--network", "none", IMAGE, "echo", "hi")
    assert proc.stdout == "hi\n"


def test_run_echo_on_the_default_network(podman: Podman) -> None:
    proc = podman("run", "--rm", IMAGE, "sh", "-c", "echo hi; ip -o -4 addr show eth0")
    lines = proc.stdout.splitlines()
    assert lines[0] == "hi"
    assert " eth0 " in lines[1] and " inet " in lines[1], proc.stdout


def test_run_reads_stdin(podman: Podman) -> None:
    proc = podman("run", "--rm", "-i", "--network", "none", IMAGE, "cat", stdin="piped\n")
    assert proc.stdout == "piped\n"


# -- 2. detached, exec, stop, rm -------------------------------------------------------------


def test_detached_exec_stop_rm(podman: Podman) -> None:
    script = 'trap "exit 0" TERM; sleep 1000 & wait'
    cid = podman("run", "-d", "--network", "none", IMAGE, "sh", "-c", script).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), cid
    try:
        assert podman("inspect", "--format", "{{.State.Status}}", cid).stdout.strip() == "running"
        assert os.path.exists(f"{RUNTIME_ROOT}/{cid}/state.json")
        assert _cgroup_dirs(cid), "the container's cgroup should exist while it runs"

        assert podman("exec", cid, "sh", "-c", "echo from exec").stdout == "from exec\n"
        assert podman("exec", cid, "sh", "-c", "exit 4", check=False).returncode == 4
        ps = podman("exec", cid, "ps", "-o", "pid,comm").stdout.split()
        assert ps[2:4] == ["1", "sh"], ps  # the trap script is the container's pid 1

        began = time.monotonic()
        podman("stop", cid)
        took = time.monotonic() - began
        assert took < 5, f"stop took {took:.1f}s: SIGTERM should end it, not the 10 s SIGKILL"
        state = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", cid)
        assert state.stdout.split() == ["exited", "0"]
    finally:
        podman("rm", "-f", "-t", "0", cid, check=False)
    assert podman("ps", "-a", "-q").stdout == ""
    assert not os.path.exists(f"{RUNTIME_ROOT}/{cid}"), "delete left the runtime's state"
    assert _cgroup_dirs(cid) == [], "delete left the container's cgroup"


def test_stop_kills_a_process_that_ignores_sigterm(podman: Podman) -> None:
    # busybox sleep as pid 1 has no SIGTERM handler, so the kernel drops SIGTERM.
    cid = podman("run", "-d", "--network", "none", IMAGE, "sleep", "1000").stdout.strip()
    try:
        began = time.monotonic()
        podman("stop", "-t", "1", cid)
        took = time.monotonic() - began
        assert 1 <= took < 6, took
        assert podman("inspect", "--format", "{{.State.ExitCode}}", cid).stdout.strip() == "137"
        podman("rm", cid)
    finally:
        podman("rm", "-f", "-t", "0", cid, check=False)
    assert podman("ps", "-a", "-q").stdout == ""


def test_start_recovers_from_an_aborted_create(podman: Podman) -> None:
    # A create killed before it wrote state.json leaves ROOT/ID and its exec.fifo;
    # podman re-creates a container under the same id, so delete --force (which
    # podman runs after the failed create) must free the id, as runc's does.
    cid = podman("create", "--network", "none", IMAGE, "echo", "hello").stdout.strip()
    leftover = Path(RUNTIME_ROOT) / cid
    try:
        os.makedirs(RUNTIME_ROOT, mode=0o700, exist_ok=True)
        leftover.mkdir(mode=0o700)
        os.mkfifo(leftover / "exec.fifo", 0o600)
        first = podman("start", "-a", cid, check=False)
        assert first.returncode != 0 and "already in use" in first.stderr, first.stderr
        assert not leftover.exists(), "delete --force should remove an aborted create's dir"
        assert podman("start", "-a", cid).stdout == "hello\n"
    finally:
        podman("rm", "-f", "-t", "0", cid, check=False)
        shutil.rmtree(leftover, ignore_errors=True)


# -- 3. terminals -------------------------------------------------------------------------


def test_interactive_shell_on_a_pty(podman: Podman) -> None:
    out, code = podman.in_pty("run", "--rm", "-it", "--network", "none", IMAGE, "sh",
                              after=b"# ", send=b"echo $((6*7)); exit\r")  # fmt: skip
    assert code == 0, out
    assert "42" in out.replace("\r", "").split("\n"), out


def test_tty_names_a_pts_device(podman: Podman) -> None:
    out, code = podman.in_pty("run", "--rm", "-t", "--network", "none", IMAGE, "sh", "-c",
                              "tty; stty size")  # fmt: skip
    assert code == 0, out
    assert re.search(r"^/dev/pts/\d+\r?$", out, re.M), out
    assert re.search(r"^33 111\r?$", out, re.M), out  # the terminal's size reached it


def test_exec_with_a_tty(podman: Podman) -> None:
    cid = podman("run", "-d", "--network", "none", IMAGE, "sleep", "1000").stdout.strip()
    try:
        out, code = podman.in_pty("exec", "-it", cid, "sh",
                                  after=b"# ", send=b"tty; exit 5\r")  # fmt: skip
        assert code == 5, out
        assert re.search(r"^/dev/pts/\d+\r?$", out, re.M), out
    finally:
        podman("rm", "-f", "-t", "0", cid, check=False)


# -- 4. resources ---------------------------------------------------------------------------


def test_memory_limit_visible_inside(podman: Podman) -> None:
    if V2_HOST:
        files = "/sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max"
    else:
        files = "/sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max"
    # Several runs: init must see its own cgroup, never the runtime's (a race once).
    for _ in range(3):
        proc = podman("run", "--rm", "--network", "none", "--memory", "64m", "--pids-limit",
                      "50", IMAGE, "sh", "-c", f"cat {files}")  # fmt: skip
        assert proc.stdout.split() == ["67108864", "50"]


def test_tmpfs_copies_up_what_it_hides(podman: Podman) -> None:
    # podman marks its tmpfs mounts tmpcopyup: /etc keeps passwd and its 0755 mode.
    script = (
        "grep -c ' /etc .* - tmpfs ' /proc/self/mountinfo; stat -c %a /etc; head -1 /etc/passwd"
    )
    proc = podman("run", "--rm", "--network", "none", "--tmpfs", "/etc", IMAGE, "sh", "-c", script)
    assert proc.stdout.splitlines() == ["1", "755", "root:x:0:0:root:/root:/bin/sh"]
    script = "touch /tmp/ok /x 2>&1; stat -c %a /tmp"
    proc = podman("run", "--rm", "--network", "none", "--read-only", IMAGE, "sh", "-c", script)
    assert proc.stdout.splitlines() == ["touch: /x: Read-only file system", "1777"]


# -- 5. exit codes and errors -------------------------------------------------------------


def test_exit_code_passes_through(podman: Podman) -> None:
    proc = podman("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "exit 3", check=False)
    assert proc.returncode == 3, proc.stderr


@pytest.mark.parametrize("json_log", [False, True], ids=["stderr", "json-log"])
def test_runtime_errors_reach_podman(podman: Podman, json_log: bool) -> None:
    ok = podman("run", "--rm", "--network", "none", IMAGE, "echo", "hi", json_log=json_log)
    assert ok.stdout == "hi\n"
    proc = podman("run", "--rm", "--network", "none", IMAGE, "/nonexistent", check=False,
                  json_log=json_log)  # fmt: skip
    assert proc.returncode == 127, proc.stderr
    assert "/nonexistent" in proc.stderr and "not found" in proc.stderr, proc.stderr
    proc = podman("run", "--rm", "--network", "none", IMAGE, "/etc/passwd", check=False,
                  json_log=json_log)  # fmt: skip
    assert proc.returncode == 126, proc.stderr
    assert "permission denied" in proc.stderr, proc.stderr
    assert podman("ps", "-a", "-q").stdout == ""
