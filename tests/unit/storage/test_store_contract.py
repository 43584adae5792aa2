"""One contract, every backend: the registrar and the proxy must not tell them apart."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sipstack.storage import BACKENDS, Binding, Store, User, open_store

NOW = 1_700_000_000.0
AOR = "sip:alice@example.com"


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    options = {"path": tmp_path / "sip.db"} if request.param == "sqlite" else {}
    store = open_store(request.param, **options)
    yield store
    await store.close()


def make_binding(contact: str, *, expires: float = 3600, aor: str = AOR, **fields) -> Binding:
    values = {"call_id": "call-1", "cseq": 1, "updated_at": NOW, **fields}
    return Binding(aor=aor, contact=contact, expires_at=NOW + expires, **values)


def add(*bindings: Binding) -> Callable[[list[Binding]], list[Binding]]:
    """An updater adding (or replacing, by contact) the given bindings."""

    def updater(current: list[Binding]) -> list[Binding]:
        contacts = {b.contact for b in bindings}
        return [b for b in current if b.contact not in contacts] + list(bindings)

    return updater


def contacts(bindings: list[Binding]) -> list[str]:
    return [b.contact for b in bindings]


# Users.


ALICE = User(
    aor="alice@example.com",
    username="alice",
    realm="example.com",
    ha1={"MD5": "0" * 32, "SHA-256": "a" * 64, "SHA-512-256": "b" * 64},
)
BOB = User(aor="bob@example.com", username="bob", realm="example.com", ha1={"MD5": "1" * 32})


async def test_user_put_get_round_trip(store: Store) -> None:
    assert await store.get_user(ALICE.aor) is None
    await store.put_user(ALICE)
    got = await store.get_user(ALICE.aor)
    assert got == ALICE
    assert list(got.ha1) == list(ALICE.ha1)  # algorithm order kept
    assert got is not ALICE


async def test_user_put_replaces(store: Store) -> None:
    await store.put_user(ALICE)
    changed = User(aor=ALICE.aor, username="al", realm="other.example", ha1={"MD5": "f" * 32})
    await store.put_user(changed)
    assert await store.get_user(ALICE.aor) == changed
    assert await store.find_user("alice", "example.com") is None
    assert await store.find_user("al", "other.example") == changed
    assert await store.list_users() == [changed]


async def test_find_user_by_username_and_realm(store: Store) -> None:
    await store.put_user(ALICE)
    await store.put_user(BOB)
    assert await store.find_user("alice", "example.com") == ALICE
    assert await store.find_user("bob", "example.com") == BOB
    assert await store.find_user("alice", "example.org") is None
    assert await store.find_user("carol", "example.com") is None
    assert await store.find_user("ALICE", "example.com") is None  # digest usernames are exact


async def test_remove_and_list_users(store: Store) -> None:
    assert await store.list_users() == []
    await store.put_user(BOB)
    await store.put_user(ALICE)
    assert await store.list_users() == [ALICE, BOB]  # by AoR
    assert await store.remove_user(ALICE.aor) is True
    assert await store.remove_user(ALICE.aor) is False
    assert await store.get_user(ALICE.aor) is None
    assert await store.find_user("alice", "example.com") is None
    assert await store.list_users() == [BOB]


async def test_mutating_a_returned_user_does_not_change_the_store(store: Store) -> None:
    await store.put_user(ALICE)
    got = await store.get_user(ALICE.aor)
    got.ha1["MD5"] = "changed"
    assert await store.get_user(ALICE.aor) == ALICE


# Bindings.


async def test_update_adds_and_returns_the_new_set(store: Store) -> None:
    assert await store.bindings(AOR, NOW) == []
    one = make_binding("sip:alice@10.0.0.1:5060")
    result = await store.update(AOR, add(one), NOW)
    assert result == [one]
    assert await store.bindings(AOR, NOW) == [one]
    two = make_binding("sip:alice@10.0.0.2:5060", updated_at=NOW + 1)
    result = await store.update(AOR, add(two), NOW + 1)
    assert result == [two, one]  # most recently updated first
    assert await store.bindings(AOR, NOW + 1) == [two, one]


async def test_update_sees_the_current_bindings(store: Store) -> None:
    one = make_binding("sip:alice@10.0.0.1:5060")
    await store.update(AOR, add(one), NOW)
    seen: list[list[Binding]] = []

    def updater(current: list[Binding]) -> list[Binding]:
        seen.append(list(current))
        return current

    await store.update(AOR, updater, NOW + 1)
    assert seen == [[one]]


async def test_update_replaces_a_binding(store: Store) -> None:
    await store.update(AOR, add(make_binding("sip:alice@10.0.0.1", cseq=1)), NOW)
    newer = make_binding("sip:alice@10.0.0.1", expires=60, cseq=2, updated_at=NOW + 5)
    assert await store.update(AOR, add(newer), NOW + 5) == [newer]
    assert await store.bindings(AOR, NOW + 5) == [newer]


async def test_update_removes_bindings(store: Store) -> None:
    keep = make_binding("sip:alice@10.0.0.1")
    drop = make_binding("sip:alice@10.0.0.2")
    await store.update(AOR, add(keep, drop), NOW)
    result = await store.update(AOR, lambda current: [b for b in current if b.contact != drop.contact], NOW)
    assert result == [keep]
    assert await store.bindings(AOR, NOW) == [keep]
    assert await store.update(AOR, lambda current: [], NOW) == []
    assert await store.bindings(AOR, NOW) == []
    assert await store.all_bindings(NOW) == []


async def test_update_files_bindings_under_the_aor(store: Store) -> None:
    stray = make_binding("sip:alice@10.0.0.1", aor="")
    (stored,) = await store.update(AOR, add(stray), NOW)
    assert stored.aor == AOR
    assert (await store.bindings(AOR, NOW))[0].aor == AOR


async def test_update_rejects_a_contact_twice(store: Store) -> None:
    first = make_binding("sip:alice@10.0.0.1")
    await store.update(AOR, add(first), NOW)
    twice = [make_binding("sip:alice@10.0.0.2"), make_binding("sip:alice@10.0.0.2", cseq=2)]
    with pytest.raises(ValueError, match="twice"):
        await store.update(AOR, lambda current: twice, NOW)
    assert await store.bindings(AOR, NOW) == [first]


async def test_aors_are_independent(store: Store) -> None:
    bob_aor = "sip:bob@example.com"
    alice = make_binding("sip:alice@10.0.0.1")
    bob = make_binding("sip:bob@10.0.0.9", aor=bob_aor)
    await store.update(AOR, add(alice), NOW)
    await store.update(bob_aor, add(bob), NOW)
    await store.update(AOR, lambda current: [], NOW)
    assert await store.bindings(bob_aor, NOW) == [bob]
    assert await store.all_bindings(NOW) == [bob]


async def test_values_round_trip_exactly(store: Store) -> None:
    full = make_binding(
        "sip:alice@192.0.2.7:5061;transport=tls;ob",
        expires=1234.5678,
        call_id="a84b4c76e66710@pc33.example.com",
        cseq=2**31 - 1,
        q=0.7,
        path=["<sip:edge1.example.com;lr>", "<sip:edge2.example.com;lr;ob>"],
        instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>",
        reg_id=1,
        params=';+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1;audio',
        source="tls:192.0.2.7:49152",
        user_agent="Softphone/1.0 (ünïcödé)",
        updated_at=NOW + 0.123456789,
    )
    bare = make_binding("sip:alice@192.0.2.8", q=None, path=[], instance=None, reg_id=None)
    zero = make_binding("sip:alice@192.0.2.9", q=0.0, reg_id=0, instance="")
    await store.update(AOR, add(full, bare, zero), NOW)
    got = {b.contact: b for b in await store.bindings(AOR, NOW)}
    for binding in (full, bare, zero):
        stored = got[binding.contact]
        assert stored == binding
        for name in ("q", "reg_id", "instance", "path", "cseq"):
            assert type(getattr(stored, name)) is type(getattr(binding, name)), name


async def test_outbound_flows_of_one_contact_are_separate_bindings(store: Store) -> None:
    """RFC 5626 §6: an outbound binding is keyed by instance and reg-id, so two flows of a UA
    with one Contact URI are two bindings; a plain binding stays one per contact."""
    instance = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"
    contact = "sip:alice@192.0.2.7;ob"
    one = make_binding(contact, instance=instance, reg_id=1, flow="path", updated_at=NOW + 1)
    two = make_binding(
        contact, instance=instance, reg_id=2, flow="TCP 192.0.2.7 5 - 0 3 e", updated_at=NOW + 2
    )
    await store.update(AOR, lambda current: [one, two], NOW)
    assert await store.bindings(AOR, NOW) == [two, one]
    assert [b.key for b in await store.bindings(AOR, NOW)] == [f"{instance};reg-id=2", f"{instance};reg-id=1"]
    with pytest.raises(ValueError, match="twice"):
        await store.update(
            AOR, lambda current: [one, make_binding(contact, instance=instance, reg_id=1, flow="x")], NOW
        )
    plain = [
        make_binding(contact, instance=instance, reg_id=1),
        make_binding(contact, instance=instance, reg_id=2),
    ]
    with pytest.raises(ValueError, match="twice"):  # not outbound (no flow): keyed by contact
        await store.update(AOR, lambda current: plain, NOW)
    assert await store.bindings(AOR, NOW) == [two, one]


async def test_mutating_bindings_does_not_change_the_store(store: Store) -> None:
    original = make_binding("sip:alice@10.0.0.1", path=["<sip:edge.example.com;lr>"])
    passed = make_binding("sip:alice@10.0.0.1", path=["<sip:edge.example.com;lr>"])
    returned = await store.update(AOR, add(passed), NOW)
    passed.path.append("<sip:changed>")
    returned[0].path.append("<sip:changed>")
    (got,) = await store.bindings(AOR, NOW)
    got.path.append("<sip:changed>")
    got.expires_at = 0
    assert await store.bindings(AOR, NOW) == [original]


async def test_order_q_descending_unspecified_as_one_then_most_recent(store: Store) -> None:
    bindings = [
        make_binding("sip:low@h", q=0.1, updated_at=NOW + 9),
        make_binding("sip:none-old@h", q=None, updated_at=NOW + 1),
        make_binding("sip:one-new@h", q=1.0, updated_at=NOW + 3),
        make_binding("sip:none-new@h", q=None, updated_at=NOW + 5),
        make_binding("sip:half@h", q=0.5, updated_at=NOW),
        make_binding("sip:one-old@h", q=1.0, updated_at=NOW + 2),
    ]
    expected = [
        "sip:none-new@h",
        "sip:one-new@h",
        "sip:one-old@h",
        "sip:none-old@h",
        "sip:half@h",
        "sip:low@h",
    ]
    assert contacts(await store.update(AOR, add(*bindings), NOW)) == expected
    assert contacts(await store.bindings(AOR, NOW)) == expected


async def test_all_bindings_by_aor_then_q(store: Store) -> None:
    aors = ["sip:carol@example.com", "sip:alice@example.com", "sip:bob@example.com"]
    for aor in aors:
        await store.update(
            aor,
            add(
                make_binding(f"{aor}-low", aor=aor, q=0.2),
                make_binding(f"{aor}-high", aor=aor, q=0.9),
                make_binding(f"{aor}-gone", aor=aor, expires=10),
            ),
            NOW,
        )
    got = await store.all_bindings(NOW + 10)
    assert [(b.aor, b.contact) for b in got] == [
        (aor, f"{aor}-{tag}") for aor in sorted(aors) for tag in ("high", "low")
    ]


async def test_expired_bindings_are_invisible(store: Store) -> None:
    short = make_binding("sip:alice@short", expires=30)
    long = make_binding("sip:alice@long", expires=3600)
    await store.update(AOR, add(short, long), NOW)
    assert contacts(await store.bindings(AOR, NOW + 29.9)) == ["sip:alice@long", "sip:alice@short"]
    # expires_at itself is the first instant without the binding.
    assert await store.bindings(AOR, NOW + 30) == [long]
    assert await store.all_bindings(NOW + 30) == [long]
    seen: list[list[Binding]] = []

    def updater(current: list[Binding]) -> list[Binding]:
        seen.append(current)
        return current

    assert await store.update(AOR, updater, NOW + 30) == [long]
    assert seen == [[long]]


async def test_update_drops_already_expired_results(store: Store) -> None:
    lapsed = make_binding("sip:alice@lapsed", expires=-1)
    live = make_binding("sip:alice@live")
    assert await store.update(AOR, add(lapsed, live), NOW) == [live]
    assert await store.purge_expired(NOW) == 0


async def test_purge_expired(store: Store) -> None:
    bob_aor = "sip:bob@example.com"
    await store.update(AOR, add(make_binding("sip:a1", expires=10), make_binding("sip:a2", expires=100)), NOW)
    await store.update(bob_aor, add(make_binding("sip:b1", aor=bob_aor, expires=10)), NOW)
    assert await store.purge_expired(NOW + 9) == 0
    assert await store.purge_expired(NOW + 10) == 2
    assert await store.purge_expired(NOW + 10) == 0
    # Purged rows are gone even for a reader whose clock is behind.
    assert contacts(await store.all_bindings(NOW)) == ["sip:a2"]
    assert await store.bindings(bob_aor, NOW) == []
    assert await store.purge_expired(NOW + 1000) == 1
    assert await store.all_bindings(0) == []


class Refused(Exception):
    pass


async def test_updater_exception_leaves_the_store_unchanged(store: Store) -> None:
    one = make_binding("sip:alice@10.0.0.1", path=["<sip:edge;lr>"])
    await store.update(AOR, add(one), NOW)
    before = await store.all_bindings(NOW)

    def failing(current: list[Binding]) -> list[Binding]:
        current[0].expires_at = NOW + 1  # mutations of `current` must not leak either
        current[0].path.append("<sip:x>")
        current.append(make_binding("sip:alice@10.0.0.2"))
        raise Refused("out of order")

    with pytest.raises(Refused, match="out of order"):
        await store.update(AOR, failing, NOW)
    assert await store.all_bindings(NOW) == before == [one]
    # And the store still works.
    assert len(await store.update(AOR, add(make_binding("sip:alice@10.0.0.3")), NOW)) == 2


async def test_concurrent_updates_lose_nothing(store: Store) -> None:
    count = 200

    async def register(i: int) -> None:
        await asyncio.sleep(0)
        await store.update(AOR, add(make_binding(f"sip:alice@10.0.{i // 256}.{i % 256}")), NOW)

    async with asyncio.timeout(10):
        await asyncio.gather(*(register(i) for i in range(count)))
    assert len(await store.bindings(AOR, NOW)) == count
    assert len(set(contacts(await store.bindings(AOR, NOW)))) == count


# The factory.


async def test_open_store_by_name(tmp_path: Path) -> None:
    from sipstack.storage.memory import MemoryStore
    from sipstack.storage.sqlite import SqliteStore

    memory = open_store("memory")
    assert isinstance(memory, MemoryStore)
    sqlite = open_store(" SQLite ", path=str(tmp_path / "sip.db"), synchronous="NORMAL")
    assert isinstance(sqlite, SqliteStore)
    await sqlite.close()
    await memory.close()


def test_open_store_refuses_unknown_and_unavailable_backends() -> None:
    with pytest.raises(ValueError, match=r"redis.*not available yet"):
        open_store("redis", url="redis://localhost")
    with pytest.raises(ValueError, match="unknown store 'postgres'"):
        open_store("postgres")
    with pytest.raises(TypeError):
        open_store("memory", path="x")


def test_backends_are_imported_lazily() -> None:
    code = "import sys, sipstack.storage; print(sorted(m for m in sys.modules if 'storage.' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=10, check=True)
    assert out.stdout.strip() == "['sipstack.storage.base']"
