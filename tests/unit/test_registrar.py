"""The registrar: RFC 3261 §10.3 steps 1-8 (domain, Require, authentication and
authorisation, the address-of-record, Contact * and the Contacts, expiry, Call-ID/CSeq
ordering, the 200 OK), §10.2 and §20.10/§20.19 expiry semantics, §19.1.4 URI equality of
bindings, the To tag of §8.2.6.2, Path (RFC 3327) and the RFC 5626 binding data.

Requests are built as a UA sends them and re-parsed from their wire form; responses are
re-parsed too. One clock (a float) drives the registrar, the nonces and the authenticator.
The main flows run over both stores (memory and SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import pytest
from registrar_kit import (
    AOR,
    CALL_ID,
    DOMAIN,
    T0,
    FakeClock,
    Harness,
    challenge_of,
    credentials,
    expiries,
    listed,
    make_user,
    register,
    to_tag,
    uris,
)

from sipstack.registrar import RegistrarConfig
from sipstack.storage.memory import MemoryStore
from sipstack.storage.sqlite import SqliteStore

A = "sip:alice@192.0.2.10:5060"
B = "sip:alice@198.51.100.7:5070;transport=tcp"
C = "sip:alice@203.0.113.3"
BOB = "sip:bob@example.com"
INSTANCE = "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"


@pytest.fixture
def harness() -> Harness:
    """A registrar without authentication over a MemoryStore."""
    return Harness(MemoryStore())


@pytest.fixture(params=["memory", "sqlite"])
async def any_harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """The same registrar over each store, for the main flows."""
    store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "db")
    yield Harness(store)
    await store.close()


@pytest.fixture
async def auth_harness() -> Harness:
    """A registrar authenticating users alice (password "secret") and bob ("bobpass")."""
    h = Harness(MemoryStore(), auth=True)
    await h.add_user(make_user("alice", "secret"))
    await h.add_user(make_user("bob", "bobpass"))
    return h


# ---------------------------------------------------------------------------------------
# Main flows (both stores)
# ---------------------------------------------------------------------------------------


async def test_register_adds_a_binding_and_lists_it(any_harness: Harness) -> None:
    h = any_harness
    response = await h.ok(register(f"<{A}>", expires=1800))
    assert expiries(response) == {A: 1800}
    [binding] = await h.bindings()
    assert binding.aor == AOR
    assert binding.contact == A
    assert binding.expires_at == T0 + 1800
    assert (binding.call_id, binding.cseq) == (CALL_ID, 1)
    assert binding.source == "udp:192.0.2.10:5060"


async def test_register_without_contact_is_a_query(any_harness: Harness) -> None:
    """§10.3 step 6: no Contact → skip to step 8, which lists the current bindings."""
    h = any_harness
    await h.ok(register(f"<{A}>", expires=1800, call_id="ua1"))
    await h.ok(register(f"<{B}>", expires=900, call_id="ua2"))
    h.clock.advance(100)
    before = await h.bindings()
    # A query does not touch the bindings, so Call-ID/CSeq ordering does not apply to it.
    response = await h.ok(register(call_id="ua1", cseq=1))
    assert expiries(response) == {A: 1700, B: 800}
    assert await h.bindings() == before


async def test_query_of_an_aor_without_bindings_lists_nothing(any_harness: Harness) -> None:
    response = await any_harness.ok(register())
    assert response.contact == []


async def test_refresh_extends_the_expiry(any_harness: Harness) -> None:
    h = any_harness
    await h.ok(register(f"<{A}>", expires=600, cseq=1))
    h.clock.advance(500)
    response = await h.ok(register(f"<{A}>", expires=600, cseq=2))
    assert expiries(response) == {A: 600}
    h.clock.advance(200)  # 700 s after the first REGISTER: alive only thanks to the refresh
    assert expiries(await h.ok(register(cseq=3))) == {A: 400}
    [binding] = await h.bindings()
    assert binding.cseq == 2
    assert binding.expires_at == T0 + 500 + 600


async def test_expires_zero_removes_that_binding_only(any_harness: Harness) -> None:
    h = any_harness
    await h.ok(register(f"<{A}>", f"<{B}>", expires=600, cseq=1))
    response = await h.ok(register(f"<{A}>;expires=0", cseq=2))
    assert uris(response) == [B]
    assert [b.contact for b in await h.bindings()] == [B]


async def test_star_with_expires_zero_removes_every_binding(any_harness: Harness) -> None:
    h = any_harness
    await h.ok(register(f"<{A}>", call_id="ua1", cseq=7))
    await h.ok(register(f"<{B}>", call_id="ua2", cseq=40))
    response = await h.ok(register("*", expires=0, call_id="ua1", cseq=8))
    assert response.contact == []
    assert await h.bindings() == []


async def test_one_request_adds_refreshes_and_removes(any_harness: Harness) -> None:
    h = any_harness
    await h.ok(register(f"<{A}>", f"<{B}>", expires=600, cseq=1))
    h.clock.advance(60)
    response = await h.ok(register(f"<{A}>;expires=0", f"<{B}>;expires=1200", f"<{C}>", expires=300, cseq=2))
    assert expiries(response) == {B: 1200, C: 300}
    assert sorted(b.contact for b in await h.bindings()) == sorted([B, C])


async def test_contacts_lapse_with_time_and_leave_the_200(any_harness: Harness) -> None:
    h = any_harness
    await h.ok(register(f"<{A}>;expires=60", f"<{B}>;expires=3600"))
    h.clock.advance(59.5)
    assert expiries(await h.ok(register(cseq=2))) == {A: 1, B: 3541}  # rounded up, never 0
    h.clock.advance(0.5)
    assert expiries(await h.ok(register(cseq=3))) == {B: 3540}
    assert [b.contact for b in await h.bindings()] == [B]


async def test_same_call_id_with_cseq_not_higher_fails_and_changes_nothing(any_harness: Harness) -> None:
    """§10.3 step 7: same Call-ID and a CSeq not higher → the update is aborted and the
    request fails; every tentative change is dropped (500)."""
    h = any_harness
    await h.ok(register(f"<{A}>", expires=600, cseq=5))
    before = await h.bindings()
    for cseq in (5, 4):
        response = await h.send(register(f"<{A}>", expires=1800, cseq=cseq))
        assert response.status_code == 500
        assert response.contact == []
    assert await h.bindings() == before


async def test_a_failing_binding_aborts_the_whole_request(any_harness: Harness) -> None:
    """§10.3 step 7: updates are committed if and only if all of them succeed."""
    h = any_harness
    await h.ok(register(f"<{A}>", expires=600, call_id="ua1", cseq=5))
    await h.ok(register(f"<{B}>", expires=600, call_id="ua2", cseq=1))
    before = await h.bindings()
    # C would be added and B refreshed, but A is out of order for Call-ID ua1.
    response = await h.send(register(f"<{C}>", f"<{B}>", f"<{A}>", expires=1800, call_id="ua1", cseq=3))
    assert response.status_code == 500
    assert await h.bindings() == before


async def test_a_different_call_id_replaces_the_binding(any_harness: Harness) -> None:
    """§10.3 step 7: another Call-ID updates the binding whatever its CSeq (a UA rebooted)."""
    h = any_harness
    await h.ok(register(f"<{A}>", expires=600, call_id="before-reboot", cseq=90))
    response = await h.ok(register(f"<{A}>", expires=1200, call_id="after-reboot", cseq=1))
    assert expiries(response) == {A: 1200}
    [binding] = await h.bindings()
    assert (binding.call_id, binding.cseq) == ("after-reboot", 1)


async def test_a_different_call_id_with_expires_zero_removes(any_harness: Harness) -> None:
    h = any_harness
    await h.ok(register(f"<{A}>", call_id="ua1", cseq=90))
    response = await h.ok(register(f"<{A}>", expires=0, call_id="ua2", cseq=1))
    assert response.contact == []
    assert await h.bindings() == []


async def test_the_200_lists_bindings_by_q_descending(any_harness: Harness) -> None:
    h = any_harness
    await h.ok(register(f"<{A}>;q=0.1", f"<{B}>;q=0.9", f"<{C}>;q=0.5"))
    assert uris(await h.ok(register(cseq=2))) == [B, C, A]
    assert {b.contact: b.q for b in await h.bindings()} == {A: 0.1, B: 0.9, C: 0.5}


async def test_binding_data_is_kept_and_echoed(any_harness: Harness) -> None:
    """Contact parameters other than expires and q are echoed (feature tags, RFC 5626
    +sip.instance and reg-id, kept on the Binding too), with Path (RFC 3327)."""
    h = any_harness
    contact = f'<{A}>;expires=600;q=0.7;+sip.instance="{INSTANCE}";reg-id=1;audio;foo=bar'
    path = [("Path", "<sip:edge1.example.net;lr>, <sip:edge2.example.net;lr>"), ("Supported", "path")]
    response = await h.ok(register(contact, headers=[*path, ("User-Agent", "kit/1.0")]))
    [item] = listed(response)
    assert item.uri == A
    assert item.expires == 600
    assert item.params == {"+sip.instance": INSTANCE, "reg-id": "1", "audio": None, "foo": "bar"}
    [line] = response.header_values("Contact")
    assert line.count("expires=") == 1
    assert response.header_values("Path") == ["<sip:edge1.example.net;lr>", "<sip:edge2.example.net;lr>"]
    [binding] = await h.bindings()
    assert binding.instance == INSTANCE
    assert binding.reg_id == 1
    assert binding.q == 0.7
    assert binding.path == ["<sip:edge1.example.net;lr>", "<sip:edge2.example.net;lr>"]
    assert binding.user_agent == "kit/1.0"
    # A query by another UA still lists them.
    [again] = listed(await h.ok(register(call_id="other")))
    assert again.params == item.params


async def test_the_200_carries_the_date(any_harness: Harness) -> None:
    """§10.3 step 8: the response SHOULD include a Date header field."""
    h = any_harness
    h.clock.advance(0.25)
    for request in (register(f"<{A}>"), register(cseq=2)):
        response = await h.ok(request)
        date = response.header("Date")
        assert date == formatdate(T0, usegmt=True)
        assert parsedate_to_datetime(date).timestamp() == int(h.clock())


async def test_bindings_survive_a_restart(tmp_path: Path) -> None:
    """A 200 OK acknowledges a durable binding: a new registrar over the same file has it."""
    clock = FakeClock()
    first = SqliteStore(tmp_path / "db")
    await Harness(first, clock=clock).ok(register(f"<{A}>", expires=600))
    await first.close()
    second = SqliteStore(tmp_path / "db")
    try:
        clock.advance(10)
        assert expiries(await Harness(second, clock=clock).ok(register(cseq=2))) == {A: 590}
    finally:
        await second.close()


# ---------------------------------------------------------------------------------------
# Expiry (§10.2.1, §10.3 step 7, §20.10, §20.19)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contact", "header", "expected"),
    [
        pytest.param(f"<{A}>;expires=300", 1200, 300, id="contact-param-over-header"),
        pytest.param(f"<{A}>", 1200, 1200, id="header-over-default"),
        pytest.param(f"<{A}>", None, 3600, id="default"),
        pytest.param(f"<{A}>;expires=600", 0, 600, id="contact-param-over-header-zero"),
        pytest.param(f"<{A}>;expires=600", 30, 600, id="contact-param-over-too-brief-header"),
        pytest.param(f"<{A}>", 60, 60, id="exactly-min-expires"),
        pytest.param(f"<{A}>", 100_000, 7200, id="clamped-to-max"),
        pytest.param(f"<{A}>;expires=7201", None, 7200, id="contact-param-clamped-to-max"),
        pytest.param(f"<{A}>", 2**32 - 1, 7200, id="max-delta-seconds"),
        pytest.param(f"<{A}>", "99999999999999999999", 7200, id="above-2**32-1"),
    ],
)
async def test_expiry_is_chosen_per_contact(
    harness: Harness, contact: str, header: int | str | None, expected: int
) -> None:
    response = await harness.ok(register(contact, expires=header))
    assert expiries(response) == {A: expected}
    [binding] = await harness.bindings()
    assert binding.expires_at == T0 + expected


async def test_default_expires_is_configurable() -> None:
    h = Harness(MemoryStore(), config=RegistrarConfig(domains={DOMAIN}, default_expires=900))
    assert expiries(await h.ok(register(f"<{A}>"))) == {A: 900}


async def test_each_contact_has_its_own_expiry(harness: Harness) -> None:
    response = await harness.ok(register(f"<{A}>;expires=120", f"<{B}>", expires=2400))
    assert expiries(response) == {A: 120, B: 2400}


async def test_contact_param_zero_removes_despite_the_expires_header(harness: Harness) -> None:
    await harness.ok(register(f"<{A}>", cseq=1))
    response = await harness.ok(register(f"<{A}>;expires=0", expires=3600, cseq=2))
    assert response.contact == []


@pytest.mark.parametrize(
    ("contacts", "header"),
    [
        pytest.param([f"<{A}>"], 30, id="expires-header"),
        pytest.param([f"<{A}>;expires=59"], None, id="contact-param"),
        pytest.param([f"<{A}>;expires=1"], 3600, id="contact-param-over-header"),
        pytest.param([f"<{B}>;expires=600", f"<{A}>;expires=10"], None, id="one-of-two"),
    ],
)
async def test_too_brief_is_423_with_min_expires(harness: Harness, contacts: list[str], header: int) -> None:
    """§10.3 step 7: 423 Interval Too Brief with Min-Expires; nothing is registered."""
    response = await harness.send(register(*contacts, expires=header))
    assert response.status_code == 423
    assert response.header("Min-Expires") == "60"
    assert response.contact == []
    assert await harness.bindings() == []


async def test_423_leaves_existing_bindings_alone(harness: Harness) -> None:
    await harness.ok(register(f"<{A}>", expires=600, cseq=1))
    before = await harness.bindings()
    response = await harness.send(register(f"<{A}>", f"<{B}>", expires=10, cseq=2))
    assert response.status_code == 423
    assert await harness.bindings() == before


async def test_min_expires_is_configurable() -> None:
    h = Harness(MemoryStore(), config=RegistrarConfig(domains={DOMAIN}, min_expires=300))
    response = await h.send(register(f"<{A}>", expires=299))
    assert response.status_code == 423
    assert response.header("Min-Expires") == "300"
    assert expiries(await h.ok(register(f"<{A}>", expires=300, cseq=2))) == {A: 300}


async def test_no_423_for_an_hour_or_more_even_below_min_expires() -> None:
    h = Harness(MemoryStore(), config=RegistrarConfig(domains={DOMAIN}, min_expires=7200, max_expires=9000))
    response = await h.send(register(f"<{A}>", expires=3600))
    assert response.status_code == 200


# ---------------------------------------------------------------------------------------
# Contact: * (§10.2.2, §10.3 step 6)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contacts", "header"),
    [
        pytest.param(["*"], None, id="no-expires"),
        pytest.param(["*"], 3600, id="expires-not-zero"),
        pytest.param(["*", f"<{A}>"], 0, id="star-then-contact"),
        pytest.param(["*", f"<{A}>;expires=0"], 0, id="star-then-removal"),
    ],
)
async def test_star_needs_expires_zero_and_no_other_contact(
    harness: Harness, contacts: list[str], header: int | None
) -> None:
    await harness.ok(register(f"<{B}>", call_id="ua0"))
    before = await harness.bindings()
    response = await harness.send(register(*contacts, expires=header))
    assert response.status_code == 400
    assert await harness.bindings() == before


@pytest.mark.parametrize("header", [0, 3600])
async def test_star_after_another_contact_is_400(harness: Harness, header: int) -> None:
    response = await harness.send(register(f"<{A}>", "*", expires=header))
    assert response.status_code == 400
    assert await harness.bindings() == []


async def test_star_without_bindings_is_fine(harness: Harness) -> None:
    response = await harness.ok(register("*", expires=0))
    assert response.contact == []


async def test_star_with_same_call_id_and_old_cseq_fails(harness: Harness) -> None:
    """§10.3 step 6: for '*', a binding with the same Call-ID is removed only if the CSeq is
    higher; otherwise the update is aborted and the request fails."""
    await harness.ok(register(f"<{A}>", call_id="ua1", cseq=9))
    await harness.ok(register(f"<{B}>", call_id="ua2", cseq=1))
    before = await harness.bindings()
    response = await harness.send(register("*", expires=0, call_id="ua1", cseq=9))
    assert response.status_code == 500
    assert await harness.bindings() == before


# ---------------------------------------------------------------------------------------
# Binding identity: URI equality (§19.1.4) and the address-of-record (§10.3 step 5)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("sip:alice@PC33.Example.COM", "sip:alice@pc33.example.com", id="host-case"),
        pytest.param("sip:%61lice@pc33.example.com", "sip:alice@pc33.example.com", id="escaped-user"),
        pytest.param(
            "sip:alice@pc33.example.com;transport=TCP",
            "sip:alice@pc33.example.com;Transport=tcp",
            id="param-case",
        ),
        pytest.param(
            "sip:alice@pc33.example.com;transport=tcp;lr",
            "sip:alice@pc33.example.com;lr;transport=tcp",
            id="param-order",
        ),
        pytest.param(
            "sip:alice@pc33.example.com;foo=1", "sip:alice@pc33.example.com", id="unknown-param-dropped"
        ),
        pytest.param("sip:alice@[2001:db8::10]", "sip:alice@[2001:DB8:0:0:0:0:0:10]", id="ipv6-forms"),
    ],
)
async def test_equal_uris_written_differently_update_one_binding(
    harness: Harness, first: str, second: str
) -> None:
    await harness.ok(register(f"<{first}>", expires=600, cseq=1))
    harness.clock.advance(100)
    response = await harness.ok(register(f"<{second}>", expires=1200, cseq=2))
    [item] = listed(response)
    assert item.expires == 1200
    [binding] = await harness.bindings()
    assert binding.cseq == 2


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("sip:alice@pc33.example.com", "sip:ALICE@pc33.example.com", id="user-case"),
        pytest.param("sip:alice@pc33.example.com", "sip:alice@pc33.example.com:5060", id="default-port"),
        pytest.param(
            "sip:alice@pc33.example.com", "sip:alice@pc33.example.com;transport=udp", id="transport"
        ),
        pytest.param("sip:alice@pc33.example.com", "sips:alice@pc33.example.com", id="scheme"),
    ],
)
async def test_different_uris_are_different_bindings(harness: Harness, first: str, second: str) -> None:
    await harness.ok(register(f"<{first}>", cseq=1))
    response = await harness.ok(register(f"<{second}>", cseq=2))
    assert len(response.contact) == 2


async def test_same_uri_out_of_order_is_caught_even_when_written_differently(harness: Harness) -> None:
    await harness.ok(register("<sip:alice@PC33.example.com>", cseq=5))
    response = await harness.send(register("<sip:%61lice@pc33.example.com>", cseq=5))
    assert response.status_code == 500


@pytest.mark.parametrize(
    "to",
    [
        pytest.param("<sip:alice@EXAMPLE.COM>", id="host-case"),
        pytest.param("<sip:%61lice@example.com>", id="escaped-user"),
        pytest.param("<sip:alice@example.com;user=ip;transport=tcp>", id="uri-params"),
        pytest.param('"Alice" <sip:alice@example.com>', id="display-name"),
        pytest.param("sip:alice@example.com", id="addr-spec"),
    ],
)
async def test_the_aor_is_canonical(harness: Harness, to: str) -> None:
    """§10.3 step 5: URI parameters removed, escaped characters unescaped (and the host is
    case-insensitive, §19.1.4): all these name sip:alice@example.com."""
    await harness.ok(register(f"<{A}>", to=to))
    assert uris(await harness.ok(register(cseq=2))) == [A]
    [binding] = await harness.bindings(AOR)
    assert binding.aor == AOR


async def test_aors_are_separate(harness: Harness) -> None:
    await harness.ok(register(f"<{A}>"))
    await harness.ok(register("<sip:bob@192.0.2.20>", aor=BOB, call_id="bob"))
    assert uris(await harness.ok(register(cseq=2))) == [A]
    assert uris(await harness.ok(register(aor=BOB, call_id="bob", cseq=2))) == ["sip:bob@192.0.2.20"]


async def test_user_part_of_the_aor_is_case_sensitive(harness: Harness) -> None:
    await harness.ok(register(f"<{A}>"))
    response = await harness.ok(register(aor="sip:ALICE@example.com", call_id="other"))
    assert response.contact == []


# ---------------------------------------------------------------------------------------
# Step 1 (domain), step 5 (AoR domain) and step 2 (Require)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("aor", [AOR, "sip:alice@example.net"])
async def test_request_uri_domain_not_served_is_404(harness: Harness, aor: str) -> None:
    """§10.3 step 1: the Request-URI names a domain whose bindings we do not keep."""
    response = await harness.send(register(f"<{A}>", ruri="sip:example.net", aor=aor))
    assert response.status_code == 404
    assert await harness.store.bindings(aor, T0) == []


async def test_request_uri_host_is_case_insensitive(harness: Harness) -> None:
    await harness.ok(register(f"<{A}>", ruri="sip:EXAMPLE.com"))


async def test_to_domain_not_served_is_404(harness: Harness) -> None:
    response = await harness.send(register(f"<{A}>", aor="sip:alice@example.net"))
    assert response.status_code == 404
    assert await harness.store.bindings("sip:alice@example.net", T0) == []


async def test_to_without_user_is_404(harness: Harness) -> None:
    response = await harness.send(register(f"<{A}>", aor="sip:example.com"))
    assert response.status_code == 404


async def test_aor_of_another_served_domain_than_the_request_uri_is_404() -> None:
    h = Harness(MemoryStore(), config=RegistrarConfig(domains={"example.com", "example.org"}))
    response = await h.send(register(f"<{A}>", ruri="sip:example.com", aor="sip:alice@example.org"))
    assert response.status_code == 404


async def test_each_served_domain_keeps_its_own_aors() -> None:
    h = Harness(MemoryStore(), config=RegistrarConfig(domains={"example.com", "example.org"}))
    await h.ok(register(f"<{A}>", ruri="sip:example.org", aor="sip:alice@example.org"))
    assert uris(await h.ok(register(ruri="sip:example.org", aor="sip:alice@example.org", cseq=2))) == [A]
    assert (await h.ok(register(cseq=2))).contact == []


async def test_unknown_required_extension_is_420_with_unsupported(harness: Harness) -> None:
    """§8.2.2.3 (§10.3 step 2): 420 Bad Extension listing, in Unsupported, the option tags of
    Require not understood; nothing is registered."""
    response = await harness.send(register(f"<{A}>", headers=[("Require", "path, foo, bar")]))
    assert response.status_code == 420
    assert response.unsupported == ["foo", "bar"]
    assert await harness.bindings() == []


async def test_supported_required_extension_is_accepted(harness: Harness) -> None:
    await harness.ok(register(f"<{A}>", headers=[("Require", "path"), ("Supported", "path")]))


async def test_proxy_require_is_not_for_the_registrar(harness: Harness) -> None:
    """Proxy-Require names what proxies must support; a UAS applies only Require (§8.2.2.3)."""
    await harness.ok(register(f"<{A}>", headers=[("Proxy-Require", "foo")]))


async def test_420_comes_before_authentication(auth_harness: Harness) -> None:
    response = await auth_harness.send(register(f"<{A}>", headers=[("Require", "foo")]))
    assert response.status_code == 420
    assert response.unsupported == ["foo"]


# ---------------------------------------------------------------------------------------
# Path (RFC 3327)
# ---------------------------------------------------------------------------------------


async def test_path_is_stored_and_echoed_when_supported(harness: Harness) -> None:
    headers = [
        ("Supported", "replaces, path"),
        ("Path", "<sip:p1.example.net;lr>"),
        ("Path", "<sip:p2.example.net;lr>"),
    ]
    response = await harness.ok(register(f"<{A}>", headers=headers))
    assert response.header_values("Path") == ["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"]
    [binding] = await harness.bindings()
    assert binding.path == ["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"]


@pytest.mark.parametrize(
    "supported",
    [
        pytest.param([], id="no-supported"),
        pytest.param([("Supported", "replaces, outbound")], id="other-tags"),
    ],
)
async def test_path_is_not_echoed_without_supported_path(harness: Harness, supported: list) -> None:
    response = await harness.ok(register(f"<{A}>", headers=[("Path", "<sip:p1.example.net;lr>"), *supported]))
    assert not response.has_header("Path")


async def test_path_is_replaced_on_refresh(harness: Harness) -> None:
    await harness.ok(register(f"<{A}>", headers=[("Supported", "path"), ("Path", "<sip:p1.example.net;lr>")]))
    await harness.ok(
        register(f"<{A}>", cseq=2, headers=[("Supported", "path"), ("Path", "<sip:p9.example.net;lr>")])
    )
    [binding] = await harness.bindings()
    assert binding.path == ["<sip:p9.example.net;lr>"]


# ---------------------------------------------------------------------------------------
# RFC 5626 hooks and Contact parameters
# ---------------------------------------------------------------------------------------


async def test_instance_and_reg_id_are_kept_per_binding(harness: Harness) -> None:
    other = "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"
    await harness.ok(
        register(
            f'<{A}>;+sip.instance="{INSTANCE}";reg-id=1',
            f'<{B}>;+sip.instance="{other}";reg-id=2',
            f"<{C}>",
        )
    )
    by_contact = {b.contact: (b.instance, b.reg_id) for b in await harness.bindings()}
    assert by_contact == {A: (INSTANCE, 1), B: (other, 2), C: (None, None)}
    echoed = {item.uri: item.params for item in listed(await harness.ok(register(cseq=2)))}
    assert echoed == {
        A: {"+sip.instance": INSTANCE, "reg-id": "1"},
        B: {"+sip.instance": other, "reg-id": "2"},
        C: {},
    }


async def test_refresh_replaces_the_echoed_parameters(harness: Harness) -> None:
    await harness.ok(register(f"<{A}>;video;foo=1"))
    response = await harness.ok(register(f"<{A}>;audio", cseq=2))
    assert [item.params for item in listed(response)] == [{"audio": None}]


async def test_q_is_kept_and_ranks_unspecified_as_one(harness: Harness) -> None:
    await harness.ok(register(f"<{A}>;q=0.3", f"<{B}>", f"<{C}>;q=1.0"))
    order = uris(await harness.ok(register(cseq=2)))
    assert order[-1] == A
    assert sorted(order[:2]) == sorted([B, C])
    assert {b.contact: b.q for b in await harness.bindings()} == {A: 0.3, B: None, C: 1.0}


async def test_every_listed_contact_has_one_expires(harness: Harness) -> None:
    """§10.3 step 8: each Contact value of the 200 MUST feature an expires parameter — the
    registrar's own, not a second copy of the UA's."""
    await harness.ok(register(f"<{A}>;expires=7000", f"<{B}>;expires=600;q=0.5", expires=900))
    response = await harness.ok(register(f"<{C}>", cseq=2))
    lines = response.header_values("Contact")
    assert len(lines) == 3
    assert all(line.count("expires=") == 1 for line in lines)
    assert expiries(response) == {A: 7000, B: 600, C: 3600}


# ---------------------------------------------------------------------------------------
# The To tag (§8.2.6.2)
# ---------------------------------------------------------------------------------------


async def test_responses_get_a_to_tag(harness: Harness) -> None:
    ok = await harness.ok(register(f"<{A}>"))
    assert to_tag(ok)
    not_found = await harness.send(register(f"<{A}>", aor="sip:alice@example.net"))
    assert not_found.status_code == 404 and to_tag(not_found)
    too_brief = await harness.send(register(f"<{A}>", expires=5, cseq=2))
    assert too_brief.status_code == 423 and to_tag(too_brief)
    bad = await harness.send(register("*", cseq=3))
    assert bad.status_code == 400 and to_tag(bad)


async def test_retransmission_gets_the_same_to_tag(harness: Harness) -> None:
    first = await harness.ok(register(branch="z9hG4bKsame", cseq=1))
    again = await harness.ok(register(branch="z9hG4bKsame", cseq=1))
    other = await harness.ok(register(branch="z9hG4bKother", cseq=2))
    assert to_tag(first) == to_tag(again)
    assert to_tag(other) != to_tag(first)


async def test_retransmitted_challenge_gets_the_same_to_tag(auth_harness: Harness) -> None:
    first = await auth_harness.send(register(f"<{A}>", branch="z9hG4bKchal"))
    again = await auth_harness.send(register(f"<{A}>", branch="z9hG4bKchal"))
    assert first.status_code == again.status_code == 401
    assert to_tag(first) is not None and to_tag(first) == to_tag(again)


async def test_a_to_tag_in_the_request_is_kept(harness: Harness) -> None:
    request = register(f"<{A}>", to=f"<{AOR}>;tag=already")
    response = await harness.ok(request)
    assert to_tag(response) == "already"
    assert response.header("To") == request.header("To")


async def test_the_response_copies_via_from_call_id_cseq(harness: Harness) -> None:
    request = register(f"<{A}>", cseq=77)
    response = await harness.ok(request)
    for name in ("Via", "From", "Call-ID", "CSeq"):
        assert response.header(name) == request.header(name)
    assert not response.has_header("Record-Route")


# ---------------------------------------------------------------------------------------
# Authentication (§10.3 step 3, §22) and authorisation (step 4)
# ---------------------------------------------------------------------------------------


async def test_no_credentials_is_401_with_a_challenge(auth_harness: Harness) -> None:
    response = await auth_harness.send(register(f"<{A}>"))
    assert response.status_code == 401
    challenges = response.www_authenticate
    assert [c.params["algorithm"] for c in challenges] == ["SHA-512-256", "SHA-256", "MD5"]
    for challenge in challenges:
        assert challenge.scheme == "Digest"
        assert challenge.params["realm"] == DOMAIN
        assert "auth" in challenge.params["qop"].split(",")
        assert "stale" not in challenge.params
    assert response.contact == []
    assert await auth_harness.bindings() == []


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "SHA-512-256"])
async def test_valid_credentials_register(auth_harness: Harness, algorithm: str) -> None:
    h = auth_harness
    nonce = await h.nonce(f"<{A}>", cseq=1)
    response = await h.send(register(f"<{A}>", cseq=2, headers=[credentials(nonce, algorithm=algorithm)]))
    assert response.status_code == 200
    assert uris(response) == [A]
    assert [b.contact for b in await h.bindings()] == [A]


async def test_authenticated_query_and_removal(auth_harness: Harness) -> None:
    h = auth_harness
    nonce = await h.nonce(f"<{A}>", cseq=1)
    await h.ok(register(f"<{A}>", cseq=2, headers=[credentials(nonce, nc=1)]))
    assert uris(await h.ok(register(cseq=3, headers=[credentials(nonce, nc=2)]))) == [A]
    response = await h.ok(register("*", expires=0, cseq=4, headers=[credentials(nonce, nc=3)]))
    assert response.contact == []


async def test_wrong_password_and_unknown_user_get_the_same_answer(auth_harness: Harness) -> None:
    h = auth_harness
    nonce = await h.nonce(f"<{A}>", cseq=1)
    wrong = await h.send(register(f"<{A}>", cseq=2, headers=[credentials(nonce, password="guess")]))
    unknown = await h.send(
        register(f"<{A}>", cseq=3, headers=[credentials(nonce, username="mallory", password="guess")])
    )

    def shape(response):  # everything but the fresh nonce and the To tag
        challenges = [{k: v for k, v in c.params.items() if k != "nonce"} for c in response.www_authenticate]
        return response.status_code, response.reason, response.header_names(), challenges

    assert wrong.status_code == 401
    assert shape(wrong) == shape(unknown)
    assert all("stale" not in c.params for c in wrong.www_authenticate)
    assert await h.bindings() == []


async def test_stale_nonce_is_401_with_stale_true(auth_harness: Harness) -> None:
    h = auth_harness
    nonce = await h.nonce(f"<{A}>", cseq=1)
    h.clock.advance(301)  # past the nonce lifetime (300 s)
    response = await h.send(register(f"<{A}>", cseq=2, headers=[credentials(nonce)]))
    assert response.status_code == 401
    fresh = challenge_of(response)
    assert fresh["stale"].lower() == "true"
    assert fresh["nonce"] != nonce
    assert await h.bindings() == []
    await h.ok(register(f"<{A}>", cseq=3, headers=[credentials(fresh["nonce"])]))


async def test_replayed_nonce_count_is_refused(auth_harness: Harness) -> None:
    h = auth_harness
    nonce = await h.nonce(f"<{A}>", cseq=1)
    await h.ok(register(f"<{A}>", expires=600, cseq=2, headers=[credentials(nonce, nc=1)]))
    before = await h.bindings()
    # The same credentials again (the digest does not cover CSeq or Contact).
    replay = await h.send(register(f"<{B}>", expires=600, cseq=3, headers=[credentials(nonce, nc=1)]))
    assert replay.status_code == 401
    assert await h.bindings() == before
    await h.ok(register(f"<{B}>", expires=600, cseq=4, headers=[credentials(nonce, nc=2)]))


async def test_credentials_for_another_uri_are_refused(auth_harness: Harness) -> None:
    h = auth_harness
    nonce = await h.nonce(f"<{A}>", cseq=1)
    response = await h.send(register(f"<{A}>", cseq=2, headers=[credentials(nonce, uri="sip:example.org")]))
    assert response.status_code == 401
    assert await h.bindings() == []


async def test_credentials_for_another_realm_are_ignored(auth_harness: Harness) -> None:
    h = auth_harness
    nonce = await h.nonce(f"<{A}>", cseq=1)
    response = await h.send(register(f"<{A}>", cseq=2, headers=[credentials(nonce, realm="example.org")]))
    assert response.status_code == 401
    assert await h.bindings() == []


async def test_registering_someone_elses_aor_is_403(auth_harness: Harness) -> None:
    """§10.3 step 4: the authenticated user may not modify the bindings of another AoR."""
    h = auth_harness
    nonce = await h.nonce(f"<{A}>", aor=BOB, cseq=1)
    response = await h.send(register(f"<{A}>", aor=BOB, cseq=2, headers=[credentials(nonce)]))
    assert response.status_code == 403
    assert to_tag(response)
    assert await h.bindings(BOB) == []
    # A query of someone else's bindings is refused too.
    query = await h.send(register(aor=BOB, cseq=3, headers=[credentials(nonce, nc=2)]))
    assert query.status_code == 403
    assert query.contact == []


async def test_aor_authorisation_respects_user_case(auth_harness: Harness) -> None:
    h = auth_harness
    await h.add_user(make_user("Alice", "someone-else"))
    other = "sip:Alice@example.com"
    nonce = await h.nonce(f"<{A}>", aor=other, cseq=1)
    response = await h.send(register(f"<{A}>", aor=other, cseq=2, headers=[credentials(nonce)]))
    assert response.status_code == 403
    assert await h.bindings(other) == []


async def test_own_aor_written_differently_is_authorised(auth_harness: Harness) -> None:
    h = auth_harness
    to = "<sip:%61lice@EXAMPLE.com;user=ip>"
    nonce = await h.nonce(f"<{A}>", to=to, cseq=1)
    await h.ok(register(f"<{A}>", to=to, cseq=2, headers=[credentials(nonce)]))
    assert [b.contact for b in await h.bindings(AOR)] == [A]


async def test_authenticator_shares_the_registrar_clock(auth_harness: Harness) -> None:
    """A nonce issued now is still good just inside its lifetime (the fake clock drives both)."""
    h = auth_harness
    nonce = await h.nonce(f"<{A}>", cseq=1)
    h.clock.advance(299)
    await h.ok(register(f"<{A}>", cseq=2, headers=[credentials(nonce)]))
