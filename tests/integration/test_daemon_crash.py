"""Kill -9 of the daemon at arbitrary moments of a burst of runs and removals.

The issue's crash-safety rule: after ``kill -9`` at any point and a restart,
no container is lost, no metadata is corrupted, and no mount, cgroup,
runtime state or monitor is leaked.  A burst of ``docker run -d`` and
``docker rm -f`` runs in a thread while the test kills the daemon after a
random delay (seeded, so a failure replays), several rounds on one root;
after each restart every container the daemon lists must be consistent
(running ones have their monitor and init, others have nothing mounted and
no runtime state), nothing may exist that the daemon does not know about,
and the database must pass SQLite's integrity check.  At the end everything
is removed and nothing at all may remain.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.integration.daemon_fixtures import (
    SampanDaemon,
    TestNetns,
    bootstrapped,
    needs_docker_cli,
    wait_until,
)
from tests.integration.test_daemon_containers import _cgroup_dirs, _monitors

pytestmark = needs_docker_cli

ROUNDS = 5


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


def _runtime_dirs(sd: SampanDaemon) -> list[str]:
    runtime = sd.exec_root / "runtime"
    if not runtime.exists():
        return []
    return [p.name for p in runtime.iterdir() if not p.name.startswith(".")]


def _all_ids(sd: SampanDaemon) -> list[str]:
    out = sd.docker("ps", "-aq", "--no-trunc").stdout.split()
    return out


class _Burst:
    """``docker run -d`` and ``rm -f`` one after the other; what was created and what an
    ``rm -f`` was attempted on (one in flight at the kill may or may not have happened)."""

    def __init__(self, sd: SampanDaemon, rng: random.Random, publish: bool = False) -> None:
        self.sd = sd
        self.rng = rng
        self.publish = ["-p", "80"] if publish else []  # a random host port each
        self.created: list[str] = []
        self.removing: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        mine: list[str] = []
        while not self.stop.is_set():
            if mine and self.rng.random() < 0.4:
                cid = mine.pop(0)
                self.removing.add(cid)
                self.sd.docker("rm", "-f", cid, check=False, timeout=30)
            else:
                done = self.sd.docker(
                    "run", "-d", *self.publish, "busybox", "sleep", "300", check=False,
                    timeout=30,
                )  # fmt: skip
                if done.returncode == 0:
                    mine.append(done.stdout.strip())
                    self.created.append(done.stdout.strip())


def _check_consistent(sd: SampanDaemon) -> list[str]:
    ids = _all_ids(sd)
    for cid in ids:
        doc = json.loads(sd.docker("inspect", cid).stdout)[0]
        state = doc["State"]
        rootfs = sd.root / "containers" / cid / "rootfs"
        if state["Running"]:
            assert _monitors(cid), f"{cid}: running without a monitor"
            assert Path(f"/proc/{state['Pid']}").exists(), f"{cid}: running without its init"
        else:
            assert not _monitors(cid), f"{cid}: {state['Status']} but its monitor runs"
            assert str(rootfs) not in _mounts_under(sd.root), f"{cid}: rootfs left mounted"
            assert not (sd.exec_root / "runtime" / cid).exists(), f"{cid}: runtime state left"
            assert not _cgroup_dirs(cid), f"{cid}: cgroup left"
    known = set(ids)
    runtime = sd.exec_root / "runtime"
    strays = (
        [p.name for p in runtime.iterdir() if not p.name.startswith(".")]
        if runtime.exists()
        else []
    )
    assert set(strays) <= known, f"runtime state of unknown containers: {set(strays) - known}"
    for mount in _mounts_under(sd.root / "containers"):
        cid = mount[len(str(sd.root / "containers")) + 1 :].split("/")[0]
        assert cid in known, f"mount of an unknown container: {mount}"
    with sqlite3.connect(sd.root / "engine.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return ids


def _check_network(sd: SampanDaemon, ns: TestNetns, ids: list[str]) -> None:
    """Networking matches what runs: veths, namespaces, addresses and published ports of
    running containers only, no address twice (the veths of a removed namespace go in
    the background: waited for)."""
    running = {
        cid: json.loads(sd.docker("inspect", cid).stdout)[0]
        for cid in ids
        if sd.docker("inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "true"
    }

    def stray_veths() -> set[str]:
        out = ns.run(["ip", "-o", "link", "show"]).stdout
        names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}
        return {n for n in names if n.startswith("vs") and n[2:14] not in {c[:12] for c in running}}

    wait_until("the veths of stopped containers to go", lambda: not stray_veths())
    netns_dir = sd.exec_root / "netns"
    files = {p.name for p in netns_dir.iterdir()} if netns_dir.exists() else set()
    assert files == set(running), f"namespaces of containers not running: {files - set(running)}"
    addresses = [d["NetworkSettings"]["IPAddress"] for d in running.values()]
    assert all(addresses) and len(set(addresses)) == len(addresses), addresses
    with sqlite3.connect(sd.root / "engine.db") as db:
        held = {r[0] for r in db.execute("SELECT container FROM endpoints WHERE address != ''")}
    assert held == set(running), f"addresses held by containers not running: {held}"
    rules = ns.run(["nft", "list", "ruleset"]).stdout
    for doc in running.values():
        port = doc["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
        assert rules.count(f'{port} comment "{doc["Id"]}') == 1, f"port {port} not once"
    for line in rules.splitlines():
        if "comment" in line and " : " in line:  # a map element: its owner runs
            owner = line.split('comment "')[1].split()[0]
            assert owner in running, f"a published port of {owner}, which does not run"


@pytest.mark.parametrize("network", [False, True], ids=["no-bridge", "bridge"])
def test_kill_9_at_random_moments_loses_and_leaks_nothing(tmp_path: Path, network: bool) -> None:
    """With ``bridge``: the daemon in a namespace of its own with its default bridge, each
    run publishing a port -- the network side must come back consistent too."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    rng = random.Random(20261122)
    ns = TestNetns("crash") if network else None
    sd = bootstrapped(tmp_path, netns=ns.path if ns else "")
    seen: set[str] = set()
    removing: set[str] = set()
    try:
        for _ in range(ROUNDS):
            burst = _Burst(sd, rng, publish=network)
            worker = threading.Thread(target=burst.run)
            worker.start()
            time.sleep(rng.uniform(0.3, 1.5))
            assert sd.proc is not None
            os.kill(sd.proc.pid, signal.SIGKILL)
            sd.proc.wait()
            burst.stop.set()
            worker.join(60)
            assert not worker.is_alive()
            seen |= set(burst.created)
            removing |= burst.removing
            sd.start()
            ids = _check_consistent(sd)
            if ns is not None:
                _check_network(sd, ns, ids)
            # No container lost: every one created and never removed is there, still running.
            for cid in seen - removing:
                assert cid in ids, f"{cid} was lost"
                state = sd.docker("inspect", "-f", "{{.State.Status}}", cid).stdout.strip()
                assert state == "running", f"{cid} is {state} after the restart"
        print(f"{len(seen)} containers created, {len(removing)} removals, {ROUNDS} kills")
        assert len(seen) >= ROUNDS  # the burst did run between the kills
        ids = _all_ids(sd)
        if ids:
            sd.docker("rm", "-f", *ids)
        assert _all_ids(sd) == []
        for cid in seen | set(ids):
            assert not _monitors(cid)
            assert not _cgroup_dirs(cid)
        assert _mounts_under(sd.root / "containers") == []
        runtime = sd.exec_root / "runtime"
        assert (
            not runtime.exists()
            or [p for p in runtime.iterdir() if not p.name.startswith(".")] == []
        )
        leftovers = [p.name for p in (sd.root / "containers").iterdir()]
        assert leftovers == []
        if ns is not None:
            _check_network(sd, ns, [])
    finally:
        ids = sd.docker("ps", "-aq", check=False).stdout.split() if sd.proc else []
        if ids:
            sd.docker("rm", "-f", *ids, check=False)
        sd.stop()
        if ns is not None:
            ns.close()


def test_a_removal_cut_short_is_finished_at_the_next_start(tmp_path: Path) -> None:
    """rm records the removal first and deletes the files after (renamed away first):
    what a daemon killed in between leaves is deleted when the next one starts."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    sd = bootstrapped(tmp_path)
    try:
        trash = sd.root / "containers" / (".trash-" + "ab" * 32)
        (trash / "rootfs" / "deep").mkdir(parents=True)
        (trash / "config.json").write_text("{}")
        snapshot_tmp = sd.root / "image" / "snapshots" / ".tmp-rmactive-leftover"
        (snapshot_tmp / "fs").mkdir(parents=True)
        cid = sd.docker("run", "-d", "busybox", "sleep", "300").stdout.strip()
        sd.docker("rm", "-f", cid)
        assert not (sd.root / "containers" / cid).exists()
        assert trash.exists()  # only a start sweeps
        assert sd.proc is not None
        os.kill(sd.proc.pid, signal.SIGKILL)
        sd.proc.wait()
        sd.start()
        sd.docker("run", "--rm", "busybox", "true")  # the store is opened by now
        assert not trash.exists()
        assert not snapshot_tmp.exists()
        # the last run's own files go just after its removal is recorded
        wait_until("the run's files", lambda: list((sd.root / "containers").iterdir()) == [])
    finally:
        sd.stop()
