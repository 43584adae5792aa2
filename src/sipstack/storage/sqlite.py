"""The SQLite store: one file, shared by every worker process of a server.

Durability: the database is in WAL mode with ``PRAGMA synchronous=FULL`` by default, so a
commit is on disk (the WAL is fsynced) before :meth:`SqliteStore.update` returns, and the
registrar's 200 OK therefore never acknowledges a binding that a ``kill -9`` or an OS crash
could lose (RFC 3261 §10.3). ``synchronous="NORMAL"`` still survives the death of the
process, but an OS crash or power loss may drop the last commits.

Concurrency: :meth:`SqliteStore.update` runs its read-modify-write inside ``BEGIN
IMMEDIATE``, which takes the database's write lock before reading, so updates from several
processes (and from several store objects in one process) serialise instead of losing one
another's bindings. A writer waits for the lock up to ``busy_timeout`` seconds, then
:class:`sqlite3.OperationalError` ("database is locked") is raised.

The methods are coroutines to fit the :class:`~sipstack.storage.base.Store` interface, but
do their work inline on the event loop's thread: the file is local and a transaction takes
a fraction of a millisecond plus the fsync. No transaction is left open across an ``await``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .base import Binding, BindingUpdater, User
from .memory import prepare_bindings

SCHEMA_VERSION = 2
"""The version of the schema this module creates and understands. Version 1 files (before
RFC 5626 outbound registrations: no ``flow``, one binding per contact) are migrated when
opened."""

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")

_USERS = """
CREATE TABLE IF NOT EXISTS users (
    aor TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    realm TEXT NOT NULL,
    ha1 TEXT NOT NULL  -- JSON object: algorithm -> hex HA1
);
CREATE INDEX IF NOT EXISTS users_login ON users (username, realm);
"""

_BINDINGS_TABLE = """
CREATE TABLE {name} (
    aor TEXT NOT NULL,
    contact TEXT NOT NULL,
    expires_at REAL NOT NULL,
    call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL,
    q REAL,
    path TEXT NOT NULL,  -- JSON array of Path header values
    instance TEXT,
    reg_id INTEGER,
    params TEXT NOT NULL,
    source TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    updated_at REAL NOT NULL,
    flow TEXT NOT NULL DEFAULT '',  -- RFC 5626 §6 (schema 2)
    binding_key TEXT NOT NULL,  -- Binding.key: the contact, or instance and reg-id (schema 2)
    PRIMARY KEY (aor, binding_key)
)
"""
_BINDINGS_INDEX = "CREATE INDEX IF NOT EXISTS bindings_expiry ON bindings (expires_at)"

_V1_COLUMNS = (
    "aor, contact, expires_at, call_id, cseq, q, path, instance, reg_id, params, source, user_agent,"
    " updated_at"
)
# Schema 1 → 2: the bindings table gains flow and binding_key, and its primary key becomes
# (aor, binding_key); SQLite changes a primary key only by copying into a new table.
_MIGRATE_1_TO_2 = (
    _BINDINGS_TABLE.format(name="bindings_v2"),
    f"INSERT INTO bindings_v2 ({_V1_COLUMNS}, flow, binding_key)"
    f" SELECT {_V1_COLUMNS}, '', contact FROM bindings",
    "DROP TABLE bindings",
    "ALTER TABLE bindings_v2 RENAME TO bindings",
    _BINDINGS_INDEX,
)

_BINDING_COLUMNS = f"{_V1_COLUMNS}, flow"
_BINDING_ORDER = "COALESCE(q, 1.0) DESC, updated_at DESC, contact, binding_key"
_SELECT_BINDINGS = f"SELECT {_BINDING_COLUMNS} FROM bindings"
_INSERT_BINDING = (
    f"INSERT INTO bindings ({_BINDING_COLUMNS}, binding_key)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_USERS = "SELECT aor, username, realm, ha1 FROM users"


def _retry_while_busy(action: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as error:
            primary = error.sqlite_errorcode & 0xFF  # extended code → primary code
            if primary not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.05)


@contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; on any exception (the updater's, or a failed
    ``COMMIT``) ``ROLLBACK`` and re-raise."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back by itself (e.g. disk full)
            db.execute("ROLLBACK")
        raise


def _binding_from_row(row: tuple) -> Binding:
    # The columns are in the order of Binding's fields (flow last); only path needs decoding.
    values = list(row)
    values[6] = json.loads(values[6])
    return Binding(*values)


def _binding_row(b: Binding) -> tuple:
    return (
        b.aor,
        b.contact,
        float(b.expires_at),
        b.call_id,
        b.cseq,
        None if b.q is None else float(b.q),
        json.dumps(list(b.path)),
        b.instance,
        b.reg_id,
        b.params,
        b.source,
        b.user_agent,
        float(b.updated_at),
        b.flow,
        b.key,
    )


def _user_from_row(row: tuple) -> User:
    aor, username, realm, ha1 = row
    return User(aor=aor, username=username, realm=realm, ha1=json.loads(ha1))


class SqliteStore:
    """A :class:`~sipstack.storage.base.Store` in an SQLite file (created if missing, with
    its parent directory). ``synchronous`` is the ``PRAGMA synchronous`` level ("OFF",
    "NORMAL", "FULL" or "EXTRA"); ``busy_timeout`` is how long, in seconds, to wait for
    another process's write lock."""

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: str = "FULL", busy_timeout: float = 5.0
    ) -> None:
        level = synchronous.upper()
        if level not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, not {synchronous!r}")
        self.path = os.fspath(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; every BEGIN/COMMIT is ours.
        self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None)
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._db.execute(f"PRAGMA synchronous = {level}")
            # Switching a new file to WAL can fail with "database is locked" at once, without
            # the busy handler, while another process does the same: retry until the timeout.
            _retry_while_busy(lambda: self._db.execute("PRAGMA journal_mode = WAL"), busy_timeout)
            _retry_while_busy(self._create_schema, busy_timeout)
        except BaseException:
            self._db.close()
            raise

    def _create_schema(self) -> None:
        # Under the write lock, so that worker processes opening a new file at once agree.
        with _immediate(self._db) as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            version = row[0]
            if version is None:
                # Not executescript(), which would COMMIT first.
                for statement in _USERS.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(_BINDINGS_TABLE.format(name="bindings"))
                db.execute(_BINDINGS_INDEX)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: schema version {version} is newer than this sipstack "
                    f"understands ({SCHEMA_VERSION})"
                )
            elif version < SCHEMA_VERSION:
                # Step by step from the file's version, in this transaction: all or nothing.
                if version == 1:
                    for statement in _MIGRATE_1_TO_2:
                        db.execute(statement)
                db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    # Users.

    async def get_user(self, aor: str) -> User | None:
        row = self._db.execute(f"{_SELECT_USERS} WHERE aor = ?", (aor,)).fetchone()
        return None if row is None else _user_from_row(row)

    async def find_user(self, username: str, realm: str) -> User | None:
        row = self._db.execute(
            f"{_SELECT_USERS} WHERE username = ? AND realm = ? ORDER BY aor LIMIT 1", (username, realm)
        ).fetchone()
        return None if row is None else _user_from_row(row)

    async def put_user(self, user: User) -> None:
        self._db.execute(
            "INSERT INTO users (aor, username, realm, ha1) VALUES (?, ?, ?, ?) ON CONFLICT (aor) DO UPDATE"
            " SET username = excluded.username, realm = excluded.realm, ha1 = excluded.ha1",
            (user.aor, user.username, user.realm, json.dumps(dict(user.ha1))),
        )

    async def remove_user(self, aor: str) -> bool:
        return self._db.execute("DELETE FROM users WHERE aor = ?", (aor,)).rowcount > 0

    async def list_users(self) -> list[User]:
        return [_user_from_row(row) for row in self._db.execute(f"{_SELECT_USERS} ORDER BY aor")]

    # Bindings.

    async def bindings(self, aor: str, now: float) -> list[Binding]:
        rows = self._db.execute(
            f"{_SELECT_BINDINGS} WHERE aor = ? AND expires_at > ? ORDER BY {_BINDING_ORDER}", (aor, now)
        )
        return [_binding_from_row(row) for row in rows]

    async def update(self, aor: str, updater: BindingUpdater, now: float) -> list[Binding]:
        with _immediate(self._db) as db:
            rows = db.execute(
                f"{_SELECT_BINDINGS} WHERE aor = ? AND expires_at > ? ORDER BY {_BINDING_ORDER}", (aor, now)
            ).fetchall()
            new = prepare_bindings(aor, list(updater([_binding_from_row(row) for row in rows])), now)
            db.execute("DELETE FROM bindings WHERE aor = ?", (aor,))
            db.executemany(_INSERT_BINDING, [_binding_row(b) for b in new])
        return new

    async def all_bindings(self, now: float) -> list[Binding]:
        rows = self._db.execute(
            f"{_SELECT_BINDINGS} WHERE expires_at > ? ORDER BY aor, {_BINDING_ORDER}", (now,)
        )
        return [_binding_from_row(row) for row in rows]

    async def purge_expired(self, now: float) -> int:
        return self._db.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,)).rowcount

    async def close(self) -> None:
        """Close the connection (idempotent). The store is unusable afterwards."""
        self._db.close()
