"""engine.db: the one SQLite file of the engine's records (containers, volumes, networks
and endpoints), each service with a connection of its own over it.

Autocommit (a service opens its own transactions), WAL so readers never wait for a
writer, synchronous=NORMAL (a crash loses at most the last transactions, never the
file's consistency), and a 30 s busy timeout for the moments two services write.
"""

from __future__ import annotations

import os
import sqlite3

__all__ = ["connect"]


def connect(root: str, schema: tuple[str, ...] = ()) -> sqlite3.Connection:
    """A connection to ROOT/engine.db, usable from any thread, with SCHEMA applied."""
    db = sqlite3.connect(
        os.path.join(root, "engine.db"), check_same_thread=False, isolation_level=None, timeout=30
    )
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    for statement in schema:
        db.execute(statement)
    return db
