"""Shared fixtures of the runtime's tests on the real kernel (integration and parity).

    busybox_rootfs   a session-wide busybox root filesystem (never write into it)
    rootfs_copy      copy_rootfs(dest=None) -> a private copy, for tests that write
    bundle           make(args, overrides=..., edit=..., rootfs=...) -> a bundle dir
    runtime          a Runtime on a private --root; deletes every container at teardown
    cid              a fresh container id

Tests marked ``pytest.mark.root`` are skipped unless run as root.  The runtime
is sampan-runtime; the parity suite overrides ``runtime_binary`` with
$OCI_RUNTIME so that the same tests run against runc.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPAN_RUNTIME = str(REPO / ".venv" / "bin" / "sampan-runtime")
IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs root and the real kernel")
    for item in items:
        if not IS_ROOT and item.get_closest_marker("root"):
            item.add_marker(skip)


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """BASE with OVERRIDES merged in: dicts recursively, anything else replaced."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class Runtime:
    """Runs an OCI runtime binary with a private ``--root``; output goes through files.

    Files, not pipes: a container made by ``create`` inherits the runtime's
    stdio, and would keep a pipe open (and ``subprocess.run`` waiting) until
    it exits.  Pass ``stdout=PATH`` to keep a container's output in PATH.
    """

    def __init__(self, binary: str, root: Path, scratch: Path) -> None:
        self.binary = binary
        self.root = root
        self.scratch = scratch
        self._calls = 0

    @property
    def is_runc(self) -> bool:
        return os.path.basename(self.binary) == "runc"

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.root), *args]

    def __call__(
        self,
        *args: str,
        stdout: Path | None = None,
        stdin: str | None = None,
        timeout: float = 30.0,
        pass_fds: tuple[int, ...] = (),
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        self._calls += 1
        out = stdout or self.scratch / f"call{self._calls}.out"
        err = self.scratch / f"call{self._calls}.err"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            feed = {"input": stdin.encode()} if stdin is not None else {"stdin": subprocess.DEVNULL}
            proc = subprocess.run(
                self.argv(*args),
                **feed,  # type: ignore[arg-type]
                stdout=fo,
                stderr=fe,
                timeout=timeout,
                pass_fds=pass_fds,
                cwd=cwd,
                check=False,
            )
        return subprocess.CompletedProcess(
            proc.args, proc.returncode, out.read_text(errors="replace"), err.read_text()
        )

    def ok(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run and assert that the runtime exited 0."""
        proc = self(*args, **kwargs)
        assert proc.returncode == 0, f"{args}: exit {proc.returncode}: {proc.stderr.strip()}"
        return proc

    def state(self, cid: str) -> dict[str, Any]:
        return json.loads(self.ok("state", cid).stdout)  # type: ignore[no-any-return]

    def wait_status(self, cid: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
        """Poll ``state`` until it reads STATUS (a dead init may be reaped slowly here)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(cid)
            if state["status"] == status or time.monotonic() > deadline:
                assert state["status"] == status, state
                return state
            time.sleep(0.05)

    def ids(self) -> set[str]:
        """Every container under our root: what ``list -q`` says, and every state dir."""
        found = set(self("list", "-q").stdout.split())
        if self.root.is_dir():
            found |= {p.name for p in self.root.iterdir() if p.is_dir() and p.name[0] != "."}
        return found

    def cleanup(self) -> None:
        for cid in sorted(self.ids()):
            self("delete", "--force", cid)


def cgroup_dir(pid: int, controller: str) -> Path:
    """The host directory of PID's cgroup in a v1 CONTROLLER's hierarchy."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return Path(f"/sys/fs/cgroup/{controller}{path}")
    raise LookupError(f"pid {pid} has no {controller} cgroup")


def proc_gone(pid: int, timeout: float = 10.0) -> bool:
    """Wait until PID no longer runs (gone, or a zombie not yet reaped)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


@pytest.fixture
def runtime_binary() -> str:
    return SAMPAN_RUNTIME


@pytest.fixture
def runtime(runtime_binary: str, tmp_path: Path) -> Iterator[Runtime]:
    scratch = tmp_path / "runtime-io"
    scratch.mkdir()
    rt = Runtime(runtime_binary, tmp_path / "state", scratch)
    try:
        yield rt
    finally:
        rt.cleanup()


@pytest.fixture
def cid() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not IS_ROOT:
        pytest.skip("needs root")
    path = tmp_path_factory.mktemp("busybox") / "rootfs"
    subprocess.run([str(REPO / "scripts" / "busybox-rootfs.sh"), str(path)], check=True)
    return path


def _special_files(directory: str, names: list[str]) -> list[str]:
    """Device nodes, fifos and sockets a container left in the rootfs: never copied as data
    (copying /dev/zero's "content" would fill the disk)."""
    skip = []
    for name in names:
        mode = os.lstat(os.path.join(directory, name)).st_mode
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            skip.append(name)
    return skip


@pytest.fixture
def rootfs_copy(busybox_rootfs: Path, tmp_path: Path) -> Callable[..., Path]:
    """copy_rootfs(dest=None): a private, writable copy of the busybox rootfs."""

    def copy_rootfs(dest: Path | None = None) -> Path:
        dest = dest or tmp_path / "rootfs-copy"
        shutil.copytree(busybox_rootfs, dest, symlinks=True, ignore=_special_files)
        return dest

    return copy_rootfs


def default_config(args: list[str], rootfs: Path) -> dict[str, Any]:
    """runc's default spec, without a terminal or rlimits, running ARGS in ROOTFS."""
    from sampan.oci.runtime_config import default_spec

    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"].pop("rlimits", None)
    spec["process"]["args"] = list(args)
    spec["root"]["path"] = str(rootfs)
    return spec


@pytest.fixture
def bundle(busybox_rootfs: Path, tmp_path: Path) -> Callable[..., Path]:
    """make(args, overrides=None, edit=None, rootfs=None, base=None) -> a bundle directory.

    OVERRIDES are deep-merged into the default config; EDIT(config) may change
    it in place afterwards.  ROOTFS defaults to the shared (read-only) busybox.
    """
    made = 0

    def make(
        args: list[str],
        overrides: dict[str, Any] | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
        rootfs: Path | None = None,
        base: Path | None = None,
    ) -> Path:
        nonlocal made
        made += 1
        path = (base or tmp_path) / f"bundle{made}"
        path.mkdir()
        config = default_config(args, (rootfs or busybox_rootfs).resolve())
        if overrides:
            config = deep_merge(config, overrides)
        if edit is not None:
            edit(config)
        (path / "config.json").write_text(json.dumps(config, indent=2))
        return path

    return make
