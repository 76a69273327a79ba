"""Bad input to ``create``: one clear error line, a non-zero exit, nothing left behind.

"Nothing left" is checked on the host: no state directory under --root, no
cgroup directory for the test's own linux.cgroupsPath in any hierarchy, no
mount whose path is in the bundle or the rootfs, and no process that is the
container's (its id in the command line, or its root or cwd in the rootfs).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.root
Bundle = Callable[..., Path]
CGROUP_PARENT = f"/sampan-test-bad-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module", autouse=True)
def _remove_cgroup_parent() -> Iterator[None]:
    yield
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        try:
            (hierarchy / CGROUP_PARENT.lstrip("/")).rmdir()
        except OSError:
            pass


def cgroup_dirs(cgroups_path: str) -> list[Path]:
    """Where CGROUPS_PATH (absolute) exists, in any hierarchy of the host."""
    found = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        if hierarchy.is_dir() and (hierarchy / cgroups_path.lstrip("/")).is_dir():
            found.append(hierarchy / cgroups_path.lstrip("/"))
    return found


def container_processes(cid: str, paths: list[Path]) -> list[int]:
    """Processes with CID in their command line, or their root or cwd under PATHS."""
    found = []
    prefixes = tuple(str(p) for p in paths)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue  # dead, waiting for the slow reaper of this machine
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            places = [os.readlink(entry / "root"), os.readlink(entry / "cwd")]
        except OSError:
            continue
        if cid in cmdline or any(p.startswith(prefixes) for p in places):
            found.append(int(entry.name))
    return found


def host_mounts_under(paths: list[Path]) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if any(p.startswith(str(path)) for path in paths)]


class Case:
    """One container that must fail to be created: its id, bundle and cgroupsPath."""

    def __init__(self, runtime: Runtime, bundle: Bundle, rootfs: Path) -> None:
        self.runtime = runtime
        self.make_bundle = bundle
        self.rootfs = rootfs
        self.cid = f"bad{uuid.uuid4().hex[:10]}"
        self.cgroups_path = f"{CGROUP_PARENT}/{self.cid}"
        self.bundle: Path | None = None

    def config(self, args: list[str] | None = None, overrides: dict[str, Any] | None = None,
               edit: Callable[[dict[str, Any]], None] | None = None) -> Path:  # fmt: skip
        """Write the bundle: sleep with a unique argument, in the test's own cgroup."""
        linux = {"linux": {"cgroupsPath": self.cgroups_path}}
        args = args if args is not None else ["sleep", "3600"]
        self.bundle = self.make_bundle(args, {**linux, **(overrides or {})}, edit)
        return self.bundle

    def fails(self, *needles: str, cid: str | None = None, extra: tuple[str, ...] = ()) -> str:
        """Create; assert it fails with one error line holding NEEDLES; return the line."""
        assert self.bundle is not None
        cid = cid or self.cid
        proc = self.runtime("create", *extra, "--bundle", str(self.bundle), cid)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode != 0, proc
        assert len(lines) == 1, proc.stderr
        for needle in needles:
            assert needle in lines[0], lines[0]
        return lines[0]

    def assert_nothing_left(self, cid: str | None = None) -> None:
        cid = cid or self.cid
        assert not (self.runtime.root / cid).exists()
        assert cgroup_dirs(self.cgroups_path) == []
        places = [p for p in (self.bundle, self.rootfs) if p is not None]
        assert host_mounts_under(places) == []
        deadline = time.monotonic() + 5
        while (left := container_processes(cid, places)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left == []


@pytest.fixture
def case(runtime: Runtime, bundle: Bundle, busybox_rootfs: Path) -> Case:
    return Case(runtime, bundle, busybox_rootfs)


def test_missing_config(case: Case) -> None:
    (case.config() / "config.json").unlink()
    case.fails("config.json", "no such file")
    case.assert_nothing_left()


def test_malformed_json(case: Case) -> None:
    (case.config() / "config.json").write_text('{"ociVersion": "1.0.2", "root": ')
    case.fails("config.json", "malformed JSON")
    case.assert_nothing_left()


@pytest.mark.parametrize("args", [None, []], ids=["missing", "empty"])
def test_process_args(case: Case, args: list[str] | None) -> None:
    def edit(config: dict[str, Any]) -> None:
        if args is None:
            del config["process"]["args"]
        else:
            config["process"]["args"] = args

    case.config(edit=edit)
    case.fails("process.args", "non-empty list")
    case.assert_nothing_left()


def test_unknown_namespace_type(case: Case) -> None:
    case.config(edit=lambda c: c["linux"]["namespaces"].append({"type": "bogus"}))
    case.fails("linux.namespaces[5].type", "unknown namespace type 'bogus'")
    case.assert_nothing_left()


def test_bind_source_missing(case: Case, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    mount = {"destination": "/mnt", "type": "bind", "source": str(missing), "options": ["rbind"]}
    case.config(edit=lambda c: c["mounts"].append(mount))
    case.fails("mounts[7]", str(missing), "No such file or directory")
    case.assert_nothing_left()


def test_rlimit_above_hard_limit(case: Case) -> None:
    rlimit = {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1048576}
    case.config(overrides={"process": {"rlimits": [rlimit]}})
    case.fails("process.rlimits[0]", "RLIMIT_NOFILE", "1048576", "CAP_SYS_RESOURCE")
    case.assert_nothing_left()


def test_rootfs_missing(case: Case, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-rootfs"
    case.config(edit=lambda c: c["root"].update(path=str(missing)))
    case.fails("root.path", str(missing), "does not exist")
    case.assert_nothing_left()


def test_id_in_use(case: Case, runtime: Runtime, bundle: Bundle) -> None:
    first = bundle(["sleep", "3600"], {"linux": {"cgroupsPath": f"{CGROUP_PARENT}/first"}})
    runtime.ok("create", "--bundle", str(first), case.cid)
    before = runtime.state(case.cid)
    case.config()
    case.fails(case.cid, "already in use")
    assert cgroup_dirs(case.cgroups_path) == []
    after = runtime.state(case.cid)
    assert after == before
    assert after["status"] == "created"
    assert Path(f"/proc/{after['pid']}").exists()
    assert cgroup_dirs(f"{CGROUP_PARENT}/first") != []
    runtime.ok("start", case.cid)
    assert runtime.state(case.cid)["status"] == "running"
    runtime.ok("delete", "--force", case.cid)
    case.assert_nothing_left()
    assert cgroup_dirs(f"{CGROUP_PARENT}/first") == []


@pytest.mark.parametrize(
    ("caps", "needle"),
    [({"bounding": "CAP_KILL"}, "process.capabilities.bounding: must be a list"),
     ({"effective": [7]}, "process.capabilities.effective[0]: must be a string"),
     ({"permited": ["CAP_KILL"]}, "process.capabilities.permited: unknown capability set"),
     (["CAP_KILL"], "process.capabilities: must be an object")],
    ids=["string", "number", "misspelt", "list"],
)  # fmt: skip
def test_bad_capabilities(case: Case, caps: object, needle: str) -> None:
    case.config(edit=lambda c: c["process"].update(capabilities=caps))
    case.fails(needle)
    case.assert_nothing_left()


def test_invalid_id(case: Case) -> None:
    case.config()
    case.fails("invalid container id", "'a/b'", cid="a/b")
    assert not (case.runtime.root / "a").exists()
    case.assert_nothing_left()


def test_command_not_found(case: Case) -> None:
    case.config(["no-such-command", "3600"])
    case.fails('"no-such-command"', "not found")
    case.assert_nothing_left()


def test_failing_prestart_hook(case: Case, tmp_path: Path) -> None:
    marker = tmp_path / "hook-ran"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}; exit 3"]}
    case.config(overrides={"hooks": {"prestart": [hook]}})
    case.fails("prestart", "exit status 3")
    assert marker.exists()
    case.assert_nothing_left()


def test_unknown_rlimit(case: Case) -> None:
    case.config(overrides={"process": {"rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1,
                                                     "hard": 1}]}})  # fmt: skip
    case.fails("process.rlimits[0].type", "RLIMIT_BOGUS")
    case.assert_nothing_left()


def test_state_json_untouched_by_failures(case: Case) -> None:
    """After several failures under one --root, ``list`` is still empty and valid JSON."""
    (case.config() / "config.json").write_text("[]")
    case.fails("config.json")
    assert json.loads(case.runtime.ok("list", "--format", "json").stdout) in ([], None)
    case.assert_nothing_left()


def test_cgroup_with_processes_is_refused_and_untouched(case: Case) -> None:
    """A cgroupsPath whose cgroup already holds processes: refused, and they live on."""
    case.config()
    pids = Path("/sys/fs/cgroup/pids") / case.cgroups_path.lstrip("/")
    pids.mkdir(parents=True)
    pid = os.fork()
    if pid == 0:  # a bystander in that cgroup
        time.sleep(60)
        os._exit(0)
    try:
        (pids / "cgroup.procs").write_text(str(pid))
        case.fails("cgroup", "is not empty")
        os.kill(pid, 0)  # still alive: nothing killed it
        assert (pids / "cgroup.procs").read_text().split() == [str(pid)]
        assert not (case.runtime.root / case.cid).exists()
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pids.rmdir()
    case.assert_nothing_left()


def no_mount_namespace_and_a_bad_bind(missing: Path, rootfs: Path | None = None
                                      ) -> Callable[[dict[str, Any]], None]:  # fmt: skip
    """A config edit: no mount namespace; a tmpfs mounted, then a bind of MISSING that fails."""

    def edit(config: dict[str, Any]) -> None:
        if rootfs is not None:
            config["root"]["path"] = str(rootfs)
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                         if ns["type"] != "mount"]  # fmt: skip
        config["linux"].pop("maskedPaths")
        config["linux"].pop("readonlyPaths")
        config["mounts"] = [
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/mnt", "type": "bind", "source": str(missing), "options": ["rbind"]},
        ]

    return edit


def test_failure_without_a_mount_namespace_leaves_no_mounts(case: Case, tmp_path: Path) -> None:
    """Mounts made in the host's namespace are detached when create fails later."""
    case.config(edit=no_mount_namespace_and_a_bad_bind(tmp_path / "missing"))
    case.fails("mounts[1]", "cannot mount")
    case.assert_nothing_left()


@pytest.mark.parametrize(
    ("key", "drop", "needle"),
    [
        ("net.ipv4.tcp_keepalive_time", "network", "needs a private network namespace"),
        ("kernel.msgmax", "ipc", "needs a private ipc namespace"),
        ("kernel.core_pattern", None, "not in a namespace of the container's own"),
        ("kernel.hostname", None, "set the config's hostname instead"),
    ],
)
def test_sysctl_that_would_change_the_host(case: Case, key: str, drop: str | None,
                                           needle: str) -> None:  # fmt: skip
    with open(f"/proc/sys/{key.replace('.', '/')}") as f:
        before = f.read()

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["sysctl"] = {key: "7201"}
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                         if ns["type"] != drop]  # fmt: skip

    case.config(edit=edit)
    case.fails(f"linux.sysctl.{key}", needle)
    with open(f"/proc/sys/{key.replace('.', '/')}") as f:
        assert f.read() == before
    case.assert_nothing_left()


def test_negative_preserve_fds(case: Case) -> None:
    case.config()
    case.fails("--preserve-fds -5", "must not be negative", extra=("--preserve-fds", "-5"))
    case.assert_nothing_left()


def test_cwd_through_a_leaked_fd_is_refused(case: Case, tmp_path: Path) -> None:
    """process.cwd /proc/self/fd/N with a host directory open at N (CVE-2024-21626)."""
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    fd = os.open(host_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.set_inheritable(fd, True)
        case.config(["sh", "-c", "pwd; cat ../../etc/hostname"],
                    {"process": {"cwd": f"/proc/self/fd/{fd}"}})  # fmt: skip
        proc = subprocess.run(
            case.runtime.argv("create", "--bundle", str(case.bundle), case.cid),
            capture_output=True, text=True, pass_fds=(fd,), check=False,
        )  # fmt: skip
    finally:
        os.close(fd)
    assert proc.returncode != 0
    assert proc.stdout == ""  # refused at create: nothing ran with a host cwd
    assert "outside the container's root" in proc.stderr
    case.assert_nothing_left()


def test_failure_without_a_mount_namespace_keeps_the_callers_mount(
    case: Case, rootfs_copy: Callable[..., Path], tmp_path: Path
) -> None:
    """An engine's own mount of the rootfs (an overlay, here a bind) outlives the cleanup."""
    rootfs = rootfs_copy()
    subprocess.run(["mount", "--bind", str(rootfs), str(rootfs)], check=True)
    try:
        case.config(edit=no_mount_namespace_and_a_bad_bind(tmp_path / "missing", rootfs))
        case.fails("mounts[1]", "cannot mount")
        assert host_mounts_under([rootfs]) == [str(rootfs)]  # the caller's, and only it
    finally:
        subprocess.run(["umount", "-l", str(rootfs)], check=False)
    case.assert_nothing_left()
