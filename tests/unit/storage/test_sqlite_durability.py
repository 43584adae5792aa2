"""SQLite specifics: the file, its schema, several processes at once, and ``kill -9``."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipstack.storage import Binding, User
from sipstack.storage.sqlite import SCHEMA_VERSION, SqliteStore

NOW = 1_700_000_000.0
AOR = "sip:alice@example.com"
DEADLINE = 15.0  # seconds; a child still running then is killed and the test fails

# A child process: `python -c CHILD path worker count` opens the store, says "ready", waits
# for a line on stdin, then performs `count` updates on AOR, each adding one contact, and
# prints each contact as soon as update() has returned (that is, after COMMIT). Between
# updates it pauses a little, as a server does between REGISTERs, so that the others get
# the write lock (SQLite's busy handler polls; a process looping on update() would keep it).
CHILD = """
import asyncio, random, sys
from sipstack.storage import Binding
from sipstack.storage.sqlite import SqliteStore

AOR, NOW = "sip:alice@example.com", 1_700_000_000.0

async def main(path, worker, count, pause):
    store = SqliteStore(path)
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(count):
        contact = f"sip:{worker}-{i}@192.0.2.1"
        def updater(current, contact=contact, i=i):
            # cseq records the order in which the updates were serialised.
            new = Binding(AOR, contact, NOW + 3600, f"{worker}-call", len(current), updated_at=NOW)
            return [*current, new]
        await store.update(AOR, updater, NOW)
        print(contact, flush=True)
        await asyncio.sleep(random.random() * pause)
    await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""


def spawn(path: Path, worker: str, count: int, pause: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), worker, str(count), str(pause)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    """Child processes, SIGKILLed by a watchdog at DEADLINE and in any case at teardown."""
    started: list[subprocess.Popen[str]] = []

    def kill_all() -> None:
        for child in started:
            if child.poll() is None:
                child.kill()

    watchdog = threading.Timer(DEADLINE, kill_all)
    watchdog.start()
    try:
        yield started
    finally:
        watchdog.cancel()
        kill_all()
        for child in started:
            child.wait(timeout=5)
            for stream in (child.stdin, child.stdout, child.stderr):
                if stream is not None:
                    stream.close()


def binding(contact: str, **fields) -> Binding:
    return Binding(aor=AOR, contact=contact, expires_at=NOW + 3600, call_id="c", cseq=1, **fields)


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sip.db"
    user = User("alice@example.com", "alice", "example.com", {"MD5": "0" * 32, "SHA-256": "1" * 64})
    kept = binding("sip:alice@192.0.2.1", q=0.5, path=["<sip:edge;lr>"], instance="<urn:uuid:1>", reg_id=2)
    store = SqliteStore(path)
    await store.put_user(user)
    await store.update(AOR, lambda current: [kept], NOW)
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(sqlite3.ProgrammingError):
        await store.bindings(AOR, NOW)

    store = SqliteStore(path)
    try:
        assert await store.get_user(user.aor) == user
        assert await store.find_user("alice", "example.com") == user
        assert await store.bindings(AOR, NOW) == [kept]
    finally:
        await store.close()


async def test_file_schema_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "data" / "deeper" / "sip.db"  # parent directories are created
    store = SqliteStore(path)
    try:
        assert path.exists()
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
            assert SCHEMA_VERSION == 2
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            assert {"users", "bindings", "schema_version", "users_login", "bindings_expiry"} <= names
            user_index = db.execute("PRAGMA index_info(users_login)").fetchall()
            assert [row[2] for row in user_index] == ["username", "realm"]
            assert [row[2] for row in db.execute("PRAGMA index_info(bindings_expiry)")] == ["expires_at"]
        db.close()
        # Per connection, so asked of the store's own: FULL is 2, NORMAL 1.
        assert store._db.execute("PRAGMA synchronous").fetchone() == (2,)
        assert store._db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    finally:
        await store.close()
    store = SqliteStore(path, synchronous="normal")
    try:
        assert store._db.execute("PRAGMA synchronous").fetchone() == (1,)
        with sqlite3.connect(path) as db:  # reopening does not add a second version row
            assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        db.close()
    finally:
        await store.close()


def test_bad_synchronous_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(tmp_path / "sip.db", synchronous="FULL; DROP TABLE users")


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sip.db"
    await SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.close()
    with pytest.raises(RuntimeError, match=f"schema version {SCHEMA_VERSION + 1}"):
        SqliteStore(path)


# The schema of the first release (version 1), as such files are on disk: one binding per
# contact, no flow column.
SCHEMA_V1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (1);
CREATE TABLE users (
    aor TEXT PRIMARY KEY NOT NULL, username TEXT NOT NULL, realm TEXT NOT NULL, ha1 TEXT NOT NULL
);
CREATE INDEX users_login ON users (username, realm);
CREATE TABLE bindings (
    aor TEXT NOT NULL, contact TEXT NOT NULL, expires_at REAL NOT NULL, call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL, q REAL, path TEXT NOT NULL, instance TEXT, reg_id INTEGER,
    params TEXT NOT NULL, source TEXT NOT NULL, user_agent TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (aor, contact)
);
CREATE INDEX bindings_expiry ON bindings (expires_at);
INSERT INTO users VALUES ('alice@example.com', 'alice', 'example.com', '{"MD5": "00"}');
INSERT INTO bindings VALUES ('sip:alice@example.com', 'sip:alice@192.0.2.1', 1700003600.0, 'c', 7,
    0.5, '["<sip:edge;lr>"]', '<urn:uuid:1>', 2, ';reg-id=2', 'udp:192.0.2.1:5060', 'ua/1', 1700000000.0);
"""


async def test_a_version_1_file_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    """A database written before outbound support opens: its users and bindings are kept (no
    flow), the schema is version 2, and two outbound flows may now share a Contact URI."""
    path = tmp_path / "sip.db"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_V1)
    db.close()
    store = SqliteStore(path)
    try:
        old = Binding(
            AOR,
            "sip:alice@192.0.2.1",
            NOW + 3600,
            "c",
            7,
            q=0.5,
            path=["<sip:edge;lr>"],
            instance="<urn:uuid:1>",
            reg_id=2,
            params=";reg-id=2",
            source="udp:192.0.2.1:5060",
            user_agent="ua/1",
            updated_at=NOW,
        )
        assert await store.bindings(AOR, NOW) == [old]
        assert old.flow == ""
        assert await store.find_user("alice", "example.com") == User(
            "alice@example.com", "alice", "example.com", {"MD5": "00"}
        )
        flows = [
            binding(
                "sip:alice@192.0.2.1;ob", instance="<urn:uuid:2>", reg_id=n, flow="path", updated_at=NOW + n
            )
            for n in (1, 2)
        ]
        await store.update(AOR, lambda current: [*current, *flows], NOW)
        assert [b.reg_id for b in await store.bindings(AOR, NOW)] == [2, 1, 2]
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert {"bindings", "bindings_expiry", "users_login"} <= names
        assert "bindings_v2" not in names
    db.close()
    reopened = SqliteStore(path)  # a migrated file opens as it is
    try:
        assert len(await reopened.bindings(AOR, NOW)) == 3
    finally:
        await reopened.close()


async def test_two_store_objects_on_one_file_see_each_other(tmp_path: Path) -> None:
    one, two = SqliteStore(tmp_path / "sip.db"), SqliteStore(tmp_path / "sip.db")
    try:
        await one.update(AOR, lambda current: [*current, binding("sip:one")], NOW)
        await two.update(AOR, lambda current: [*current, binding("sip:two")], NOW)
        assert {b.contact for b in await one.bindings(AOR, NOW)} == {"sip:one", "sip:two"}
    finally:
        await one.close()
        await two.close()


async def test_updates_from_several_processes_serialise(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    path = tmp_path / "shared" / "sip.db"  # new: the workers also race to create it
    workers, count = 4, 100
    children += [spawn(path, f"w{n}", count, pause=0.004) for n in range(workers)]
    for child in children:
        assert child.stdout.readline() == "ready\n", child.stderr.read()
    for child in children:  # start them together
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        out, err = child.communicate(timeout=DEADLINE)
        assert child.returncode == 0, err
        assert len(out.splitlines()) == count

    store = SqliteStore(path)
    try:
        stored = await store.bindings(AOR, NOW)
    finally:
        await store.close()
    assert len(stored) == workers * count
    assert {b.contact for b in stored} == {
        f"sip:w{n}-{i}@192.0.2.1" for n in range(workers) for i in range(count)
    }
    # Each update saw every earlier one: the serialisation order is a permutation of 0..399.
    order = sorted(stored, key=lambda b: b.cseq)
    assert [b.cseq for b in order] == list(range(workers * count))
    # And the workers did run at once: their updates are interleaved.
    switches = sum(a.call_id != b.call_id for a, b in itertools.pairwise(order))
    assert switches >= 20, f"the workers ran one after the other ({switches} switches)"


async def test_acknowledged_bindings_survive_kill_9(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    path = tmp_path / "sip.db"
    child = spawn(path, "k", 5000)
    children.append(child)
    assert child.stdout.readline() == "ready\n", child.stderr.read()
    child.stdin.write("go\n")
    child.stdin.flush()
    acknowledged: list[str] = []
    while len(acknowledged) < 50:
        line = child.stdout.readline()
        assert line, f"child ended early: {child.stderr.read()}"
        acknowledged.append(line.strip())
    os.kill(child.pid, signal.SIGKILL)
    # Whatever it printed before dying was acknowledged too.
    acknowledged += [line.strip() for line in child.stdout.read().splitlines() if line.strip()]
    assert child.wait(timeout=5) == -signal.SIGKILL
    assert len(acknowledged) < 5000, "the child finished before it was killed"

    store = SqliteStore(path)
    try:
        stored = {b.contact for b in await store.bindings(AOR, NOW)}
    finally:
        await store.close()
    assert set(acknowledged) <= stored
    # At most the one update committed but not yet printed when the signal came.
    assert len(stored) - len(acknowledged) in (0, 1)
