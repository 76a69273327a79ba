"""Start the kernel's cgroup-migration grace period early, in the background.

The first write to any cgroup.procs after a quiet spell waits for an RCU
grace period (the kernel switches cgroup_threadgroup_rwsem to its slow
path): ~10 ms on these machines, unless the hierarchy is mounted with
``favordynmods``.  Later writes within the window are fast.  ``create``
and ``exec`` must move a process, so they call ``start()`` first thing:
a thread writes our own pid into the cgroup we are already in (a no-op
move) while the main thread validates the config and forks.

The thread touches only os.open/os.write/os.close on a path computed
before it starts; a fork while it blocks in the kernel is safe, as the
child gets only the forking thread.
"""

from __future__ import annotations

import os


def _own_procs_file() -> str | None:
    try:
        with open("/proc/self/cgroup", "rb") as f:
            lines = f.read().decode().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):  # the v2 tree: hybrid or pure
            path = line[3:].rstrip("/")
            for mount in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
                procs = f"{mount}{path}/cgroup.procs"
                if os.path.exists(procs):
                    return procs
    return None


def _touch(path: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    except OSError:
        pass  # only an optimisation


def start() -> None:
    path = _own_procs_file()
    if path is not None:
        import _thread

        _thread.start_new_thread(_touch, (path,))
