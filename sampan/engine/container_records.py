"""A container's record and the table that keeps it: what the engine knows of a container.

    ROOT/engine.db     containers(id, name UNIQUE, image, image_name, created,
                       config, host_config, state): JSON columns, one
                       transaction per change (a crash never half-writes)

Separate from the service (containers.py) because it is plain data: the
``Container`` record with its in-memory marks (starting, removing, the
filesystem's users), the SQLite table, names, signals and docker's zero
time -- what the start, exit and listing modules all read, with no
process, mount or lock of its own.  The service holds the lock that every
change of a record is made under.

    table = ContainerTable("/var/lib/sampan")     # its engine.db
    for c in table.load(): ...
    table.insert(c); table.update(c); table.delete(c.id)
"""

from __future__ import annotations

from sampan import _json
from sampan.errors import Conflict, InvalidArgument, SampanError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

__all__ = [
    "FS_WAIT",
    "STATUSES",
    "ZERO_TIME",
    "Container",
    "ContainerTable",
    "NotModified",
    "name_conflict",
    "new_state",
    "parse_signal",
    "random_name",
    "read_text",
]

ZERO_TIME = "0001-01-01T00:00:00Z"
# How long a start or rm waits for the cp/export that has the container's snapshot
# mounted (Container.fs_busy), and a cp for a start under way, before a Conflict.
FS_WAIT = 60.0
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, image TEXT NOT NULL,
    image_name TEXT NOT NULL, created REAL NOT NULL, config TEXT NOT NULL,
    host_config TEXT NOT NULL, state TEXT NOT NULL)
"""
_LEFT = ("admiring", "brave", "clever", "dreamy", "eager", "festive", "gallant", "jolly")
_RIGHT = ("babbage", "curie", "darwin", "euler", "fermi", "hopper", "kepler", "turing")


class NotModified(SampanError):
    """The container is already in the state asked for (HTTP 304)."""


def parse_signal(text: str) -> int:
    """docker's signal: "SIGKILL", "KILL", "kill", "9" or "RTMIN+3"."""
    from sampan.linux.constants import parse_signal as parse

    try:
        return parse(text)
    except ValueError:
        raise InvalidArgument(f"invalid signal: {text}") from None


def read_text(path: str) -> str:
    """The text of a small file of a bundle or run dir, "" when there is none."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return ""


class Container:
    """One container's record (mutated only under the service's lock)."""

    def __init__(
        self,
        cid: str,
        name: str,
        image: str,
        image_name: str,
        created: float,
        config: dict[str, Any],
        host_config: dict[str, Any],
        state: dict[str, Any],
    ) -> None:
        self.id = cid
        self.name = name
        self.image = image
        self.image_name = image_name
        self.created = created
        self.config = config
        self.host_config = host_config
        self.state = state
        self.starting = False
        self.removing = False
        self.removed = False
        self.exits = 0  # exits seen since the daemon started (wait next-exit, attach)
        # Operations that have the stopped container's snapshot mounted in a namespace
        # of their own (cp, export: container_fs.private_root); start and rm wait for 0.
        self.fs_busy = 0

    @property
    def status(self) -> str:
        status: str = self.state.get("Status", "created")
        return "removing" if self.removing else status

    @property
    def running(self) -> bool:
        return bool(self.state.get("Running"))

    def row(self) -> tuple[Any, ...]:
        return (self.id, self.name, self.image, self.image_name, self.created,
                _json.dumps(self.config), _json.dumps(self.host_config),
                _json.dumps(self.state))  # fmt: skip


def new_state() -> dict[str, Any]:
    """The state of a container just created."""
    return {"Status": "created", "Running": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME, "MonitorPid": 0,
            "MonitorStart": 0}  # fmt: skip


def random_name(taken: Iterable[str]) -> str:
    """docker's adjective_scientist name, not one of TAKEN."""
    import secrets

    used = set(taken)
    while True:
        name = f"{secrets.choice(_LEFT)}_{secrets.choice(_RIGHT)}"
        if name in used:
            name += str(secrets.randbelow(10))
        if name not in used:
            return name


class ContainerTable:
    """The containers table of engine.db; callers hold the service's lock."""

    def __init__(self, root: str) -> None:
        from sampan.engine.db import connect

        self._db = connect(root, (_SCHEMA,))

    def load(self) -> list[Container]:
        found = []
        for cid, name, image, image_name, created, config, host, state in self._db.execute(
            "SELECT * FROM containers"
        ):
            found.append(Container(cid, name, image, image_name, created, _json.loads(config),
                                   _json.loads(host), _json.loads(state)))  # fmt: skip
        return found

    def insert(self, c: Container, others: Iterable[Container]) -> None:
        """C's row; docker's conflict when one of OTHERS has its name."""
        for other in others:
            if other.name == c.name:
                raise name_conflict(c.name, other.id)
        self._db.execute("INSERT INTO containers VALUES (?,?,?,?,?,?,?,?)", c.row())

    def update(self, c: Container) -> None:
        """C's state, config and host config."""
        self._db.execute(
            "UPDATE containers SET state=?, config=?, host_config=? WHERE id=?",
            (_json.dumps(c.state), _json.dumps(c.config), _json.dumps(c.host_config), c.id),
        )

    def rename(self, cid: str, name: str) -> None:
        self._db.execute("UPDATE containers SET name=? WHERE id=?", (name, cid))

    def delete(self, cid: str) -> None:
        self._db.execute("DELETE FROM containers WHERE id=?", (cid,))


def name_conflict(name: str, holder: str) -> Conflict:
    """docker's error for a name already taken by container HOLDER."""
    return Conflict(
        f'Conflict. The container name "/{name}" is already in use by container '
        f'"{holder}". You have to remove (or rename) that container to be able '
        "to reuse that name."
    )
